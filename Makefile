# Entry points a user runs. Each target calls the setup script first.
#   make demo   - set up, build, start a server on ./demo.db and run the demo end to end
#   make test   - set up, build, run the default test suite (ctest)
#   make bench  - set up, build, run the benchmarks (long; not part of `make test`)
BUILD_DIR ?= build
JOBS ?= $(shell nproc)

.PHONY: setup build demo test bench clean

setup:
	./scripts/setup.sh

build: setup
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD_DIR) -j $(JOBS)

demo: build
	./scripts/demo.sh $(BUILD_DIR)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) -LE "gpu|slow"

bench: build
	./scripts/bench.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)
