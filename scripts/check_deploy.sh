#!/usr/bin/env bash
# Checks the deploy files (deploy/) as far as a machine without a container
# engine or a Kubernetes cluster can, and installs nothing (scripts/setup.sh
# installs nginx and python3-yaml):
#   - nginx -t on a wrapper config that includes deploy/nginx/surge-grpc.conf,
#     then the same config live: three surge-server replicas (each on its own
#     SQLite file: a stand-in for the shared PostgreSQL) behind nginx on free
#     loopback ports; health, round robin of calls, the dashboard through the
#     proxy, and a killed replica skipped;
#   - systemd-analyze verify and an offline security score of deploy/surge.service;
#   - YAML parse of deploy/compose.yaml and every deploy/k8s manifest, with
#     structural assertions (kinds, probes on 50051, non-root, secrets, ...);
#     `kubectl kustomize` of both modes when kubectl is installed;
#   - the Dockerfile's required lines; its build packages against setup.sh and
#     against the packages the local configure used (CMakeCache); its runtime
#     package list (deploy/runtime-packages.sh) on the local build;
#   - the flags table of docs/operations.md against `surge-server --helpfull`.
# Usage: scripts/check_deploy.sh [BUILD_DIR]      (default: build)
#        scripts/check_deploy.sh --flags-table [BUILD_DIR]
#            prints the table of docs/operations.md, "Flags and environment"
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODE=check
if [ "${1:-}" = --flags-table ]; then
  MODE=table
  shift
fi
BUILD_DIR="$(cd "${1:-$ROOT/build}" 2>/dev/null && pwd || echo "${1:-$ROOT/build}")"
SERVER="$BUILD_DIR/server/surge-server"
CLI="$BUILD_DIR/client/surge"
# Debian's python3 (python3-yaml); another python3 on PATH may lack yaml.
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3

# Prints the markdown table of the flags of server/main.cc from --helpfull.
flags_table() {
  # --helpfull exits 1 after printing.
  { "$SERVER" --helpfull || true; } | "$PYTHON" -c '
import re, sys
text = sys.stdin.read()
# The section of server/main.cc: "  Flags from .../server/main.cc:" up to the next section.
m = re.search(r"^  Flags from \S*server/main\.cc:\n(.*?)(?=^\S|^  Flags from |\Z)", text, re.M | re.S)
if not m:
    sys.exit("check_deploy: no server/main.cc section in --helpfull")
print("| flag | environment variable | default | meaning |")
print("| --- | --- | --- | --- |")
for entry in re.split(r"\n    (?=--)", "\n" + m.group(1).strip("\n")):
    entry = " ".join(entry.split())
    if not entry:
        continue
    name, rest = entry[2:].split(" ", 1)
    cut = rest.rfind("; default: ")
    help_text, default = rest[1:cut - 1], rest[cut + len("; default: "):].rstrip(";")
    default = "(empty)" if default in ("", "\"\"") else "`" + default.strip("\"") + "`"
    print("| `--%s` | `SURGE_%s` | %s | %s |" % (name, name.upper(), default, help_text.replace("|", "\\|")))
'
}

if [ "$MODE" = table ]; then
  flags_table
  exit 0
fi

FAILED=0
ok() { echo "ok:   $*"; }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
skip() { echo "skip: $*"; }
HAVE_BINARIES=0
if [ -x "$SERVER" ] && [ -x "$CLI" ]; then HAVE_BINARIES=1; fi

WORK="$(mktemp -d)"
chmod 0755 "$WORK"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    { kill "$pid" && wait "$pid"; } 2>/dev/null || true
  done
  if [ -s "$WORK/nginx.pid" ]; then
    pid=$(cat "$WORK/nginx.pid")
    kill -QUIT "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# ------------------------------------------------------------------ nginx
# A wrapper nginx.conf in $WORK that includes CONF (temp paths and the pid in $WORK).
nginx_wrapper() {
  local conf="$1"
  mkdir -p "$WORK/nginx-temp"
  chmod 1777 "$WORK/nginx-temp"
  cat <<EOF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events {}
http {
    access_log off;
    client_body_temp_path $WORK/nginx-temp/body;
    proxy_temp_path $WORK/nginx-temp/proxy;
    fastcgi_temp_path $WORK/nginx-temp/fastcgi;
    uwsgi_temp_path $WORK/nginx-temp/uwsgi;
    scgi_temp_path $WORK/nginx-temp/scgi;
    include $conf;
}
EOF
}

check_nginx_syntax() {
  if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    fail "nginx is not installed (scripts/setup.sh installs it)"
    return
  fi
  nginx_wrapper "$ROOT/deploy/nginx/surge-grpc.conf" > "$WORK/nginx-syntax.conf"
  if out=$(PATH="$PATH:/usr/sbin" nginx -t -q -e "$WORK/nginx-error.log" -p "$WORK" \
             -c "$WORK/nginx-syntax.conf" 2>&1); then
    ok "nginx -t: deploy/nginx/surge-grpc.conf"
  else
    fail "nginx -t: deploy/nginx/surge-grpc.conf: $out"
  fi
}

# N free loopback TCP ports, one per line.
free_ports() {
  "$PYTHON" -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))
' "$1"
}

# Waits for FILE to hold a port; fails after 30 s.
wait_port_file() {
  for _ in $(seq 300); do
    [ -s "$1" ] && return 0
    sleep 0.1
  done
  return 1
}

# An HTTP GET through Python: prints "STATUS BODY".
http_get() {
  "$PYTHON" -c '
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
        print(r.status, r.read().decode()[:2000])
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode()[:2000])
' "$1"
}

check_nginx_live() {
  if [ "$HAVE_BINARIES" = 0 ]; then
    skip "nginx with three replicas: no $SERVER / $CLI (build them, or pass BUILD_DIR)"
    return
  fi
  if ! PATH="$PATH:/usr/sbin" command -v nginx >/dev/null 2>&1; then
    skip "nginx with three replicas: nginx is not installed"
    return
  fi
  mapfile -t P < <(free_ports 8)
  local grpc_front=${P[0]} http_front=${P[1]}
  # The same config (comments dropped) with the fixed ports 5006x/806x moved to free ones.
  local fixed=(50060 8060 50061 50062 50063 8061 8062 8063) script="s/#.*//" k
  for k in 0 1 2 3 4 5 6 7; do
    script+="; s/127\.0\.0\.1:${fixed[$k]}\b/127.0.0.1:${P[$k]}/g"
  done
  sed -e "$script" "$ROOT/deploy/nginx/surge-grpc.conf" > "$WORK/surge-grpc.conf"
  if grep -qE '127\.0\.0\.1:(5006[0-3]|806[0-3])\b' "$WORK/surge-grpc.conf"; then
    fail "nginx live: could not move every port of surge-grpc.conf"
    return
  fi
  local replicas=()
  for i in 0 1 2; do
    "$SERVER" --listen="127.0.0.1:${P[$((2 + i))]}" --http="127.0.0.1:${P[$((5 + i))]}" \
      --db="$WORK/replica$i.db" --port_file="$WORK/replica$i.port" --shutdown_grace_s=1 \
      > "$WORK/replica$i.log" 2>&1 &
    PIDS+=($!)
    replicas+=("127.0.0.1:${P[$((2 + i))]}")
  done
  for i in 0 1 2; do
    if ! wait_port_file "$WORK/replica$i.port"; then
      fail "nginx live: replica $i did not start: $(cat "$WORK/replica$i.log")"
      return
    fi
  done
  nginx_wrapper "$WORK/surge-grpc.conf" > "$WORK/nginx-live.conf"
  if ! PATH="$PATH:/usr/sbin" nginx -e "$WORK/nginx-error.log" -p "$WORK" -c "$WORK/nginx-live.conf"; then
    fail "nginx live: nginx did not start: $(cat "$WORK/nginx-error.log")"
    return
  fi
  for _ in $(seq 50); do [ -s "$WORK/nginx.pid" ] && break; sleep 0.1; done

  local front="127.0.0.1:$grpc_front" out
  if out=$("$CLI" --server "$front" --timeout 5 health 2>&1) && [ "$out" = SERVING ]; then
    ok "nginx live: surge health through nginx (grpc_pass): SERVING"
  else
    fail "nginx live: surge health through nginx: $out"
  fi
  # Six CreateJob calls through nginx: round robin spreads them over the
  # three replicas (each has its own database here, so each shows its share).
  for j in 1 2 3 4 5 6; do
    "$CLI" --server "$front" --timeout 5 job create "rr$j" > /dev/null 2>&1 ||
      fail "nginx live: job create rr$j through nginx"
  done
  local counts=() total=0 n
  for r in "${replicas[@]}"; do
    n=$("$CLI" --server "$r" --timeout 5 jobs --json | "$PYTHON" -c \
        'import json,sys; print(len(json.load(sys.stdin).get("jobs", [])))')
    counts+=("$n")
    total=$((total + n))
  done
  if [ "$total" = 6 ] && [ "${counts[0]}" -ge 1 ] && [ "${counts[1]}" -ge 1 ] &&
     [ "${counts[2]}" -ge 1 ]; then
    ok "nginx live: 6 calls through nginx reached all three replicas (${counts[*]})"
  else
    fail "nginx live: round robin: jobs per replica ${counts[*]} (want 6 in all, each >= 1)"
  fi
  out=$(http_get "http://127.0.0.1:$http_front/api/v1/jobs")
  if [[ "$out" == "200 "*'"jobs"'* ]]; then
    ok "nginx live: dashboard API through nginx: 200"
  else
    fail "nginx live: GET /api/v1/jobs through nginx: $out"
  fi
  out=$(http_get "http://127.0.0.1:$http_front/healthz")
  [[ "$out" == "200 "* ]] && ok "nginx live: /healthz through nginx: 200" ||
    fail "nginx live: GET /healthz through nginx: $out"
  # A dead replica: connections to it fail before anything is sent, so nginx
  # passes each call to the next one.
  { kill -9 "${PIDS[0]}" && wait "${PIDS[0]}"; } 2>/dev/null || true
  local healthy=0
  for _ in 1 2 3 4 5 6; do
    out=$("$CLI" --server "$front" --timeout 5 health 2>&1) && [ "$out" = SERVING ] &&
      healthy=$((healthy + 1))
  done
  if [ "$healthy" = 6 ]; then
    ok "nginx live: one replica killed (kill -9): 6 of 6 health calls through nginx SERVING"
  else
    fail "nginx live: one replica killed: $healthy of 6 health calls SERVING"
  fi
}

# ---------------------------------------------------------------- systemd
check_systemd() {
  local unit="$ROOT/deploy/surge.service"
  for line in 'ProtectSystem=strict' 'ReadWritePaths=/var/lib/surge' 'NoNewPrivileges=true' \
      'PrivateTmp=true' 'ProtectHome=true' 'CapabilityBoundingSet=' \
      'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'ExecReload=/bin/kill -HUP $MAINPID' \
      'EnvironmentFile=-/etc/surge/surge.env' 'RestartPreventExitStatus=2' 'User=surge'; do
    grep -qxF "$line" "$unit" || fail "deploy/surge.service lacks the line '$line'"
  done
  if ! command -v systemd-analyze >/dev/null 2>&1; then
    skip "systemd-analyze verify: systemd-analyze is not installed"
    return
  fi
  # verify needs ExecStart to exist: point it at the local build (or /bin/true).
  local binary=/bin/true
  [ "$HAVE_BINARIES" = 1 ] && binary="$SERVER"
  mkdir -p "$WORK/systemd"
  sed "s#^ExecStart=/usr/local/bin/surge-server#ExecStart=$binary#" "$unit" \
    > "$WORK/systemd/surge.service"
  # verify exits 0 on unknown keys and bad values (it only warns): any output fails.
  local out
  out=$(cd "$WORK/systemd" && systemd-analyze verify ./surge.service 2>&1) || true
  if [ -z "$out" ]; then
    ok "systemd-analyze verify deploy/surge.service (ExecStart=$binary): no warnings"
  else
    fail "systemd-analyze verify deploy/surge.service: $out"
  fi
  out=$(cd "$WORK/systemd" && systemd-analyze security --offline=true --no-pager ./surge.service 2>&1 |
        grep 'Overall exposure level' || true)
  local level
  level=$(echo "$out" | sed -n 's/.*: \([0-9.]*\) .*/\1/p')
  if [ -n "$level" ] && "$PYTHON" -c "import sys; sys.exit(0 if float('$level') <= 2.0 else 1)"; then
    ok "systemd-analyze security --offline: exposure $level (<= 2.0)"
  else
    fail "systemd-analyze security --offline: '$out' (want <= 2.0)"
  fi
}

# ------------------------------------------------------- compose and k8s YAML
check_yaml() {
  if ! "$PYTHON" -c 'import yaml' 2>/dev/null; then
    fail "python3-yaml is not installed (scripts/setup.sh installs it)"
    return
  fi
  "$PYTHON" - "$ROOT" <<'PY' || FAILED=$((FAILED + 1))
import glob, os, sys, yaml

root = sys.argv[1]
problems = []
def need(cond, what):
    if not cond:
        problems.append(what)

def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]

# compose
compose = load(os.path.join(root, "deploy/compose.yaml"))[0]
services = compose.get("services", {})
need({"postgres", "surge", "surge-sqlite"} <= set(services), "compose: services postgres, surge, surge-sqlite")
need(services.get("postgres", {}).get("image") == "postgres:15", "compose: postgres image postgres:15")
for name in ("postgres", "surge", "surge-sqlite"):
    need("healthcheck" in services.get(name, {}), "compose: %s has a healthcheck" % name)
surge = services.get("surge", {})
need(str(surge.get("environment", {}).get("SURGE_DB", "")).startswith("postgresql://"),
     "compose: surge gets its database URL from SURGE_DB")
need(surge.get("depends_on", {}).get("postgres", {}).get("condition") == "service_healthy",
     "compose: surge waits for a healthy postgres")
need("health" in surge.get("healthcheck", {}).get("test", []), "compose: surge health check runs `surge health`")
need(surge.get("read_only") is True, "compose: read-only root filesystem")
need(surge.get("build", {}).get("dockerfile") == "deploy/Dockerfile", "compose: builds deploy/Dockerfile")
need({"pgdata", "surge-data"} <= set(compose.get("volumes", {})), "compose: volumes pgdata and surge-data")
need(any(str(v).endswith(":/var/lib/surge") for v in services.get("surge-sqlite", {}).get("volumes", [])),
     "compose: surge-sqlite keeps /var/lib/surge on a volume")

# k8s
docs = {}
for path in sorted(glob.glob(os.path.join(root, "deploy/k8s/**/*.yaml"), recursive=True)):
    for d in load(path):
        need("kind" in d and "apiVersion" in d, "%s: kind and apiVersion" % path)
        docs.setdefault(d.get("kind"), []).append((os.path.relpath(path, root), d))
for kind in ("StatefulSet", "Deployment", "Service", "Secret", "Kustomization"):
    need(kind in docs, "k8s: a %s" % kind)
secrets = {d["metadata"]["name"]: d for _, d in docs.get("Secret", [])}
need("surge-db" in secrets and "url" in secrets["surge-db"].get("stringData", {}), "k8s: Secret surge-db with key url")
need("surge-tokens" in secrets and "tokens" in secrets["surge-tokens"].get("stringData", {}),
     "k8s: Secret surge-tokens with key tokens")
service = docs.get("Service", [(None, {})])[0][1]
need({p.get("port") for p in service.get("spec", {}).get("ports", [])} == {50051, 8080}, "k8s: Service ports 50051 and 8080")
workloads = docs.get("StatefulSet", []) + docs.get("Deployment", [])
for path, w in workloads:
    spec = w["spec"]
    pod = spec["template"]["spec"]
    need(spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items(),
         "%s: selector matches the pod labels" % path)
    need(service.get("spec", {}).get("selector", {}).items() <= spec["template"]["metadata"]["labels"].items(),
         "%s: the Service selects its pods" % path)
    need(pod.get("enableServiceLinks") is False,
         "%s: enableServiceLinks: false (Service variables are SURGE_*)" % path)
    psc = pod.get("securityContext", {})
    need(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) > 0, "%s: runAsNonRoot with a uid" % path)
    for c in pod["containers"]:
        csc = c.get("securityContext", {})
        need(csc.get("readOnlyRootFilesystem") is True, "%s: read-only root filesystem" % path)
        need(csc.get("allowPrivilegeEscalation") is False, "%s: no privilege escalation" % path)
        need(csc.get("capabilities", {}).get("drop") == ["ALL"], "%s: capabilities dropped" % path)
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            need(c.get(probe, {}).get("grpc", {}).get("port") == 50051, "%s: %s is grpc on 50051" % (path, probe))
        res = c.get("resources", {})
        need({"cpu", "memory"} <= set(res.get("requests", {})) and "memory" in res.get("limits", {}),
             "%s: resource requests and a memory limit" % path)
        env = {e["name"]: e for e in c.get("env", [])}
        need(env.get("SURGE_TOKENS_FILE", {}).get("value", "").startswith("/etc/surge/tokens"),
             "%s: SURGE_TOKENS_FILE from the mounted secret" % path)
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        need("/tmp" in mounts, "%s: a writable /tmp" % path)
        if w["kind"] == "Deployment":
            need(env.get("SURGE_DB", {}).get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "surge-db",
                 "%s: SURGE_DB from the Secret surge-db" % path)
        else:
            need(env.get("SURGE_DB", {}).get("value", "").startswith("/var/lib/surge/"),
                 "%s: SURGE_DB on the volume" % path)
            need("/var/lib/surge" in mounts, "%s: /var/lib/surge mounted" % path)
    if w["kind"] == "StatefulSet":
        need(spec.get("replicas") == 1, "%s: SQLite mode has exactly 1 replica" % path)
        claims = [t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])]
        need("data" in claims, "%s: a PersistentVolumeClaim template 'data'" % path)
    else:
        need(spec.get("replicas") == 3, "%s: PostgreSQL mode has 3 replicas" % path)
        need("volumeClaimTemplates" not in spec, "%s: stateless" % path)
for path, k in docs.get("Kustomization", []):
    for r in k.get("resources", []):
        need(os.path.exists(os.path.join(root, os.path.dirname(path), r)), "%s: resource %s exists" % (path, r))

for p in problems:
    print("FAIL: " + p)
n = sum(len(v) for v in docs.values())
if not problems:
    print("ok:   YAML of deploy/compose.yaml and %d k8s documents parses; structure as required" % n)
sys.exit(1 if problems else 0)
PY
  if command -v kubectl >/dev/null 2>&1; then
    for mode in sqlite postgresql; do
      if out=$(kubectl kustomize "$ROOT/deploy/k8s/$mode" 2>&1); then
        ok "kubectl kustomize deploy/k8s/$mode: $(echo "$out" | grep -c '^kind:') objects"
      else
        fail "kubectl kustomize deploy/k8s/$mode: $out"
      fi
    done
  else
    skip "kubectl kustomize: kubectl is not installed"
  fi
}

# -------------------------------------------------------------- Dockerfile
check_dockerfile() {
  local df="$ROOT/deploy/Dockerfile"
  local patterns=(
    '^FROM debian:12 AS build$'
    '^FROM debian:12$'
    '^USER 10001:10001$'
    '^VOLUME /var/lib/surge$'
    '^EXPOSE 50051 8080$'
    '^HEALTHCHECK .*'
    '^  CMD surge .* health'
    'useradd --system --uid 10001 .* surge'
    'cmake --build /build .*--target surge-server surge surge-backup'
    '^ENTRYPOINT \["/usr/local/bin/surge-server"\]$'
    'SURGE_DB=/var/lib/surge/surge.db'
    'SURGE_TOKENS_FILE=/etc/surge/tokens'
  )
  local missing=0
  for p in "${patterns[@]}"; do
    grep -qE -- "$p" "$df" || { fail "deploy/Dockerfile: no line matching '$p'"; missing=1; }
  done
  [ "$missing" = 0 ] && ok "deploy/Dockerfile: ${#patterns[@]} required lines present"
  [ "$(grep -c '^FROM ' "$df")" = 2 ] || fail "deploy/Dockerfile: two stages"
  # Build packages: every one is in scripts/setup.sh's PACKAGES.
  local setup_packages build_packages extra=()
  setup_packages=$(sed -n '/^PACKAGES=(/,/^)/p' "$ROOT/scripts/setup.sh" | tr -s ' ()' '\n')
  build_packages=$(awk '/^FROM debian:12 AS build/,/rm -rf/' "$df" |
    sed -n '/install -y/,/rm -rf/p' | tr -s ' \\&' '\n' | grep -E '^[a-z0-9][a-z0-9+.-]+$' |
    grep -vxE 'apt-get|install|rm|DEBIAN_FRONTEND=noninteractive')
  for p in $build_packages; do
    echo "$setup_packages" | grep -qxF "$p" || extra+=("$p")
  done
  if [ ${#extra[@]} = 0 ]; then
    ok "deploy/Dockerfile: its $(echo "$build_packages" | wc -l) build packages are all in scripts/setup.sh"
  else
    fail "deploy/Dockerfile: build packages not in scripts/setup.sh: ${extra[*]}"
  fi
  # Every Debian package the local configure found (the CMakeCache's config
  # dirs, include dirs, libraries, programs) is in the apt closure of them.
  if [ -f "$BUILD_DIR/CMakeCache.txt" ] && command -v apt-cache >/dev/null 2>&1; then
    local closure found=() outside=() path owners
    # shellcheck disable=SC2086
    closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
                --no-breaks --no-replaces --no-enhances $build_packages 2>/dev/null | grep -v '^ ')
    while read -r path; do
      owners=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | sed 's/: .*//' | tr ',' '\n' |
               sed 's/^ *//; s/:.*//' | sort -u) || continue
      # A folder many packages share (/usr/include, ...) tells nothing.
      [ -n "$owners" ] && [ "$(echo "$owners" | wc -l)" -le 2 ] || continue
      for p in $owners; do
        found+=("$p")
        echo "$closure" | grep -qxF "$p" || outside+=("$p ($path)")
      done
    done < <(grep -E '^[A-Za-z0-9_-]+(_DIR|_INCLUDE_DIR[A-Z_]*|_LIBRARY[A-Z_]*|_EXECUTABLE):[A-Z]+=/' \
               "$BUILD_DIR/CMakeCache.txt" | grep -vi cuda | sed 's/^[^=]*=//' | tr ';' '\n' | sort -u)
    if [ ${#outside[@]} = 0 ] && [ ${#found[@]} -gt 0 ]; then
      ok "deploy/Dockerfile: the $(printf '%s\n' "${found[@]}" | sort -u | wc -l) packages the local configure used are in its build packages' closure"
    else
      fail "deploy/Dockerfile: the local configure used packages its build stage lacks: ${outside[*]:-none found}"
    fi
  else
    skip "deploy/Dockerfile: configure packages (no $BUILD_DIR/CMakeCache.txt or no apt-cache)"
  fi
  for p in .git 'build-*' build; do
    grep -qxF "$p" "$ROOT/deploy/Dockerfile.dockerignore" ||
      fail "deploy/Dockerfile.dockerignore does not exclude $p"
  done
  # Runtime packages: the script the build stage runs, on the local build.
  if [ "$HAVE_BINARIES" = 1 ]; then
    local packages
    if packages=$("$ROOT/deploy/runtime-packages.sh" "$SERVER" "$CLI" 2>&1); then
      local not_installed=()
      for p in $packages; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
          not_installed+=("$p")
      done
      if [ ${#not_installed[@]} = 0 ] && echo "$packages" | grep -qx libgrpc++1.51; then
        ok "deploy/runtime-packages.sh: $(echo "$packages" | wc -l) runtime packages for surge-server and surge"
      else
        fail "deploy/runtime-packages.sh: unexpected list: $packages"
      fi
    else
      fail "deploy/runtime-packages.sh: $packages"
    fi
  else
    skip "deploy/runtime-packages.sh: no local build"
  fi
}

# ------------------------------------------------------------ flags table
check_flags_table() {
  if [ "$HAVE_BINARIES" = 0 ]; then
    skip "flags table: no $SERVER"
    return
  fi
  flags_table > "$WORK/flags-table.md"
  sed -n '/<!-- flags-table:begin/,/<!-- flags-table:end/p' "$ROOT/docs/operations.md" |
    grep '^|' > "$WORK/flags-doc.md" || true
  # Flags, variables and defaults must match exactly; the meaning column is
  # the help text when the table was generated (reported, not failed, if it moved).
  if diff <(cut -d'|' -f2-4 "$WORK/flags-table.md") <(cut -d'|' -f2-4 "$WORK/flags-doc.md") \
       > "$WORK/flags.diff"; then
    ok "docs/operations.md flags table: $(($(wc -l < "$WORK/flags-table.md") - 2)) flags, variables and defaults as in --helpfull"
    diff -q "$WORK/flags-table.md" "$WORK/flags-doc.md" > /dev/null ||
      echo "note: a flag's help text changed since the table was made (scripts/check_deploy.sh --flags-table)"
  else
    fail "docs/operations.md flags table differs from --helpfull (regenerate: scripts/check_deploy.sh --flags-table):
$(cat "$WORK/flags.diff")"
  fi
}

check_nginx_syntax
check_nginx_live
check_systemd
check_yaml
check_dockerfile
check_flags_table
if [ "$FAILED" -gt 0 ]; then
  echo "check_deploy: $FAILED check(s) FAILED"
  exit 1
fi
echo "check_deploy: all checks passed (not run here: docker build/run, a Kubernetes cluster)"
