#!/usr/bin/env bash
# Starts a real S3-compatible object store for larder's tests: OpenStack Swift
# with the s3api middleware (Debian's packages), one node, one replica, every
# port on 127.0.0.1, no systemd. Installs the packages when missing (as root).
#
# Idempotent and safe to run concurrently: a lock serialises callers, and when
# the service is already up with the same settings it only prints the endpoint.
# A warm start (packages installed, rings built) takes a couple of seconds.
#
# Environment (all optional):
#   LARDER_SWIFT_DIR           config, data, logs, pids          [${TMPDIR:-/tmp}/larder-swift]
#   LARDER_SWIFT_PORT          the S3 endpoint's port            [18080]
#   LARDER_SWIFT_BACKEND_PORT  first of 5 internal ports: object, container,
#                              account, memcached, log sink      [LARDER_SWIFT_PORT + 1]
#   LARDER_SWIFT_RESET=1       start with no buckets or objects
#   LARDER_SWIFT_TIMEOUT       seconds to wait for readiness      [60]
#
# Prints, and writes to $LARDER_SWIFT_DIR/s3.env:
#   LARDER_S3_ENDPOINT=http://127.0.0.1:PORT  LARDER_S3_ACCESS_KEY_ID=…  LARDER_S3_SECRET_ACCESS_KEY=…
#   LARDER_S3_REGION=us-east-1  LARDER_S3_FORCE_PATH_STYLE=true
# Progress goes to stderr. Stop with swift-stop.sh (same environment).
set -euo pipefail

DIR="${LARDER_SWIFT_DIR:-${TMPDIR:-/tmp}/larder-swift}"
PORT="${LARDER_SWIFT_PORT:-18080}"
BACKEND="${LARDER_SWIFT_BACKEND_PORT:-$((PORT + 1))}"
TIMEOUT="${LARDER_SWIFT_TIMEOUT:-60}"
HOST=127.0.0.1
OBJ_PORT=$BACKEND CONT_PORT=$((BACKEND + 1)) ACC_PORT=$((BACKEND + 2)) MC_PORT=$((BACKEND + 3)) LOG_PORT=$((BACKEND + 4))
ACCESS_KEY="test:tester"
SECRET_KEY="testing"
PY=/usr/bin/python3 # Debian's python, where the swift modules live (not a pyenv/venv one)
CONF="$DIR/conf" DATA="$DIR/data" RUN="$DIR/run" LOGD="$DIR/log"
SERVERS=(proxy object container account memcached logsink)
log() { echo "[swift-start] $*" >&2; }

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)" CONF="$DIR/conf" DATA="$DIR/data" RUN="$DIR/run" LOGD="$DIR/log"
# One start (or stop) at a time; the servers must not inherit this descriptor.
exec 9>"$DIR/lock"
flock -w 900 9 || { log "could not take $DIR/lock"; exit 1; }

ENDPOINT="http://$HOST:$PORT"
STAMP="v1 port=$PORT backend=$BACKEND"
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [ -n "$st" ] && [ "${st:0:1}" != Z ]; }
all_alive() {
  local n; for n in "${SERVERS[@]}"; do
    [ -f "$RUN/$n.pid" ] && alive "$(cat "$RUN/$n.pid")" || return 1
  done
}
healthy() { [ "$(curl -s -m 2 "$ENDPOINT/healthcheck" 2>/dev/null || true)" = OK ]; }
print_env() {
  cat >"$DIR/s3.env.tmp" <<EOF
LARDER_S3_ENDPOINT=$ENDPOINT
LARDER_S3_ACCESS_KEY_ID=$ACCESS_KEY
LARDER_S3_SECRET_ACCESS_KEY=$SECRET_KEY
LARDER_S3_REGION=us-east-1
LARDER_S3_FORCE_PATH_STYLE=true
EOF
  mv "$DIR/s3.env.tmp" "$DIR/s3.env"
  cat "$DIR/s3.env"
}

# ------------------------------------------------------------ already running?
if [ "${LARDER_SWIFT_RESET:-0}" != 1 ] && [ "$(cat "$DIR/stamp" 2>/dev/null)" = "$STAMP" ] && all_alive && healthy; then
  log "already running at $ENDPOINT"
  print_env
  exit 0
fi

# ------------------------------------------------------------ install
missing_packages() {
  need=()
  for pair in swift-proxy-server:swift-proxy swift-object-server:swift-object swift-container-server:swift-container \
              swift-account-server:swift-account memcached:memcached curl:curl; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
  done
  ((${#need[@]}))
}
# Instances in other directories (a test's private one) may install at the same time: one apt at a time.
if missing_packages && exec 8>"${TMPDIR:-/tmp}/larder-swift-install.lock" && flock -w 900 8 && missing_packages; then
  [ "$(id -u)" = 0 ] || { log "missing ${need[*]}; run as root (or apt-get install ${need[*]} python3-swift)"; exit 1; }
  log "installing ${need[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  # The packages' maintainer scripts would start default services on 8080,
  # 6200-6202 and 11211: forbid that with a deny-all policy-rc.d for the install.
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    own_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  install() { apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends "${need[@]}" python3-swift >"$DIR/apt.log" 2>&1; }
  install || { apt-get update -q >"$DIR/apt-update.log" 2>&1 && install; } || { tail -20 "$DIR/apt.log" >&2; exit 1; }
  if [ "$own_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
fi
exec 8>&-

# ------------------------------------------------------------ stop what we started before
stop_all() {
  local n f pid pids=() left
  for n in "${SERVERS[@]}"; do
    f="$RUN/$n.pid"; [ -f "$f" ] || continue
    pid=$(cat "$f"); rm -f "$f"
    [ -n "$pid" ] && alive "$pid" || continue
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid")
  done
  for _ in $(seq 100); do
    left=0; for pid in "${pids[@]}"; do alive "$pid" && left=1; done
    [ $left = 0 ] && break; sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
}
stop_all
port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
for p in "$PORT" "$OBJ_PORT" "$CONT_PORT" "$ACC_PORT" "$MC_PORT"; do
  if port_busy "$p"; then log "port $HOST:$p is already in use (set LARDER_SWIFT_PORT / LARDER_SWIFT_BACKEND_PORT)"; exit 1; fi
done

# ------------------------------------------------------------ configuration
# Swift reads the hash path prefix/suffix and storage policies from the fixed
# path /etc/swift/swift.conf. Write one if there is none; use an existing one.
if [ ! -s /etc/swift/swift.conf ]; then
  mkdir -p /etc/swift 2>/dev/null && cat >/etc/swift/swift.conf 2>/dev/null <<'EOF' || { log "cannot write /etc/swift/swift.conf (run as root once)"; exit 1; }
# written by larder's scripts/services/swift-start.sh (test service on 127.0.0.1)
[swift-hash]
swift_hash_path_suffix = larder-test-suffix
swift_hash_path_prefix = larder-test-prefix

[storage-policy:0]
name = Policy-0
default = yes

[swift-constraints]
max_file_size = 5368709122
EOF
fi

[ "${LARDER_SWIFT_RESET:-0}" = 1 ] && rm -rf "$DATA"
mkdir -p "$CONF" "$DATA/node/d1" "$RUN" "$LOGD"
if [ "$(cat "$DIR/stamp" 2>/dev/null)" != "$STAMP" ] || [ ! -s "$CONF/object.ring.gz" ]; then
  rm -rf "$CONF" "$DIR/stamp"; mkdir -p "$CONF"
  common() {
    cat <<EOF
[DEFAULT]
bind_ip = $HOST
bind_port = $1
workers = 0
user = $(id -un)
swift_dir = $CONF
devices = $DATA/node
mount_check = false
disable_fallocate = true
log_udp_host = $HOST
log_udp_port = $LOG_PORT
log_level = INFO
EOF
  }
  { common "$OBJ_PORT"; printf '\n[pipeline:main]\npipeline = object-server\n\n[app:object-server]\nuse = egg:swift#object\ncontainer_update_timeout = 10\n'; } >"$CONF/object-server.conf"
  { common "$CONT_PORT"; printf '\n[pipeline:main]\npipeline = container-server\n\n[app:container-server]\nuse = egg:swift#container\n'; } >"$CONF/container-server.conf"
  { common "$ACC_PORT"; printf '\n[pipeline:main]\npipeline = account-server\n\n[app:account-server]\nuse = egg:swift#account\n'; } >"$CONF/account-server.conf"
  {
    common "$PORT"
    cat <<EOF

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = us-east-1
s3_acl = false
allow_multipart_uploads = true
max_upload_part_num = 10000
min_segment_size = 5242880
allowable_clock_skew = 900

[filter:tempauth]
use = egg:swift#tempauth
user_admin_admin = admin .admin .reseller_admin
user_test_tester = $SECRET_KEY .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = $HOST:$MC_PORT

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
access_log_udp_host = $HOST
access_log_udp_port = $LOG_PORT
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
max_manifest_segments = 10000
max_manifest_size = 16777216
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
[filter:symlink]
use = egg:swift#symlink
EOF
  } >"$CONF/proxy-server.conf"
  # Rings: one device, one replica, 2^8 partitions; built once and kept.
  "$PY" - "$CONF" "$HOST" "$OBJ_PORT" "$CONT_PORT" "$ACC_PORT" <<'PYEOF' || { log "ring build failed"; exit 1; }
import os, sys
from swift.common.ring import RingBuilder
conf, host = sys.argv[1], sys.argv[2]
for name, port in zip(("object", "container", "account"), map(int, sys.argv[3:6])):
    b = RingBuilder(8, 1, 1)
    b.add_dev({"id": 0, "region": 1, "zone": 1, "ip": host, "port": port, "device": "d1", "weight": 1, "meta": ""})
    b.rebalance()
    b.get_ring().save(os.path.join(conf, name + ".ring.gz"))
PYEOF
  echo "$STAMP" >"$DIR/stamp"
fi

# ------------------------------------------------------------ start
launch() { # name command…: its own session (so its pid is its process group), pid in $RUN/name.pid
  local name=$1; shift
  setsid "$@" </dev/null >>"$LOGD/$name.out" 2>&1 9>&- &
  echo $! >"$RUN/$name.pid"
}
: >"$LOGD/swift.log"
# Swift logs (the proxy's access log too) over UDP syslog; keep them in a file.
launch logsink "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
with open(sys.argv[3], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536).rstrip(b"\0\n") + b"\n")
' "$HOST" "$LOG_PORT" "$LOGD/swift.log"
launch memcached memcached -l "$HOST" -p "$MC_PORT" -U 0 -m 64 -u "$(id -un)"
launch object swift-object-server "$CONF/object-server.conf"
launch container swift-container-server "$CONF/container-server.conf"
launch account swift-account-server "$CONF/account-server.conf"
launch proxy swift-proxy-server "$CONF/proxy-server.conf"

# ------------------------------------------------------------ wait until it answers end to end
deadline=$((SECONDS + TIMEOUT))
fail() {
  log "$*"
  for f in "$LOGD"/*.out; do echo "== $f" >&2; tail -15 "$f" >&2; done
  echo "== $LOGD/swift.log" >&2; tail -30 "$LOGD/swift.log" >&2 || true
  stop_all; exit 1
}
for p in "$MC_PORT" "$OBJ_PORT" "$CONT_PORT" "$ACC_PORT" "$PORT"; do
  until port_busy "$p"; do
    for n in "${SERVERS[@]}"; do alive "$(cat "$RUN/$n.pid")" || fail "$n exited early"; done
    [ $SECONDS -lt $deadline ] || fail "timeout waiting for port $p"
    sleep 0.1
  done
done
until healthy; do [ $SECONDS -lt $deadline ] || fail "timeout waiting for $ENDPOINT/healthcheck"; sleep 0.1; done
# A container PUT goes through proxy, account and container servers.
TOKEN=$(curl -s -m 5 -D - -o /dev/null -H "X-Auth-User: $ACCESS_KEY" -H "X-Auth-Key: $SECRET_KEY" "$ENDPOINT/auth/v1.0" |
  tr -d '\r' | sed -n 's/^[Xx]-[Aa]uth-[Tt]oken: //p')
[ -n "$TOKEN" ] || fail "tempauth gave no token"
until code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X PUT -H "X-Auth-Token: $TOKEN" "$ENDPOINT/v1/AUTH_test/.larder-ready") &&
  [ "${code:0:1}" = 2 ]; do
  [ $SECONDS -lt $deadline ] || fail "container PUT never succeeded (last HTTP $code)"; sleep 0.2
done
curl -s -m 5 -o /dev/null -X DELETE -H "X-Auth-Token: $TOKEN" "$ENDPOINT/v1/AUTH_test/.larder-ready" || true

log "Swift s3api ready at $ENDPOINT (state and logs in $DIR)"
print_env
