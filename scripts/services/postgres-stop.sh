#!/usr/bin/env bash
# Stops the PostgreSQL that postgres-start.sh started (same DIR / environment).
# Its data stays; postgres-start.sh brings it back. With --purge, the data
# directory is removed too. Stopping a server that is not running does nothing.
#
# Usage: postgres-stop.sh [--purge] [DIR]
#   LARDER_POSTGRES_DIR  as for postgres-start.sh  [$DIR, else ${TMPDIR:-/tmp}/larder-postgres]
set -euo pipefail

purge=0
if [ "${1:-}" = --purge ]; then purge=1; shift; fi
DIR="${1:-${LARDER_POSTGRES_DIR:-${TMPDIR:-/tmp}/larder-postgres}}"
log() { echo "[postgres-stop] $*" >&2; }

[ -d "$DIR" ] || { log "nothing at $DIR"; exit 0; }
DIR="$(cd "$DIR" && pwd)"
DATA="$DIR/data"
exec 9>"$DIR/lock"
flock -w 600 9 || { log "could not take $DIR/lock"; exit 1; }

BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
if [ "$(id -u)" = 0 ]; then as_pg() { runuser -u postgres -- "$@"; }; else as_pg() { "$@"; }; fi

rm -f "$DIR/stamp"
if [ -n "$BIN" ] && [ -f "$DATA/postmaster.pid" ] && as_pg "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; then
  log "stopping the server in $DATA"
  as_pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 >&2 9>&-
else
  log "not running"
fi
if [ "$purge" = 1 ]; then
  log "removing $DATA"
  rm -rf "$DATA" "$DIR/url" "$DIR/postgres.log" "$DIR/initdb.log" "$DIR/socket"
fi
