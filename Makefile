# Convenience targets; each calls the scripts the README names.
#   make demo   == ./scripts/demo.sh    (set up, build, run the demo end to end)
#   make test   == ./scripts/test.sh    (set up, build, run the default test suite)
#   make bench  == ./scripts/bench.sh   (benchmarks; long, never part of `make test`)
.PHONY: build demo test bench clean
build:
	./scripts/build.sh
demo:
	./scripts/demo.sh
test:
	./scripts/test.sh
bench:
	./scripts/bench.sh
clean:
	rm -rf build
