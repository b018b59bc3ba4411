#!/usr/bin/env bash
# Stops the Swift started by swift-start.sh (same LARDER_SWIFT_DIR): only the
# processes it recorded, by process group. `swift-stop.sh --wipe` also deletes
# the directory (data, configuration, logs).
set -uo pipefail
DIR="${LARDER_SWIFT_DIR:-${TMPDIR:-/tmp}/larder-swift}"
RUN="$DIR/run"
[ -d "$DIR" ] || { echo "[swift-stop] nothing to stop ($DIR does not exist)" >&2; exit 0; }
exec 9>"$DIR/lock"
flock -w 900 9 || { echo "[swift-stop] could not take $DIR/lock" >&2; exit 1; }
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [ -n "$st" ] && [ "${st:0:1}" != Z ]; }
pids=()
for n in proxy object container account memcached logsink; do
  f="$RUN/$n.pid"; [ -f "$f" ] || continue
  pid=$(cat "$f"); rm -f "$f"
  [ -n "$pid" ] && alive "$pid" || continue
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  pids+=("$pid")
done
for _ in $(seq 100); do # up to 10 s for a clean exit
  left=0; for p in "${pids[@]}"; do alive "$p" && left=1; done
  [ $left = 0 ] && break
  sleep 0.1
done
for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
if [ "${1:-}" = --wipe ]; then rm -rf "$DIR"; fi
echo "[swift-stop] stopped (${#pids[@]} processes; $DIR)" >&2
