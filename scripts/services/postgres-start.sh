#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for larder's tests from Debian's packages: its
# own data directory, TCP on 127.0.0.1 only, trust authentication, no durability
# (fsync off), no systemd. As root the server runs as the `postgres` OS user
# (PostgreSQL refuses to run as root); as anyone else, as that user. Installs
# the `postgresql` package when missing (as root), without letting the package
# start a cluster of its own.
#
# Idempotent and safe to run concurrently: a lock serialises callers, and when
# the server is already up on the same port it only prints the URL. A cold
# start (initdb) takes a few seconds, a warm one about one.
#
# Usage: postgres-start.sh [DIR]
# Environment (all optional):
#   LARDER_POSTGRES_DIR      data, socket, log, lock  [$1, else ${TMPDIR:-/tmp}/larder-postgres]
#   LARDER_POSTGRES_PORT     TCP port on 127.0.0.1    [54329]
#   LARDER_POSTGRES_TIMEOUT  seconds to wait for it   [60]
#
# Prints the URL of its `postgres` database, for the superuser `postgres`:
#   postgres://postgres@127.0.0.1:PORT/postgres
# (also written to DIR/url). Progress goes to stderr. Stop with postgres-stop.sh.
set -euo pipefail

DIR="${1:-${LARDER_POSTGRES_DIR:-${TMPDIR:-/tmp}/larder-postgres}}"
PORT="${LARDER_POSTGRES_PORT:-54329}"
TIMEOUT="${LARDER_POSTGRES_TIMEOUT:-60}"
HOST=127.0.0.1
SUPERUSER=postgres
log() { echo "[postgres-start] $*" >&2; }

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
DATA="$DIR/data" SOCK="$DIR/socket" LOGFILE="$DIR/postgres.log"
URL="postgres://$SUPERUSER@$HOST:$PORT/postgres"

# One start (or stop) at a time; the server must not inherit this descriptor.
exec 9>"$DIR/lock"
flock -w 600 9 || { log "could not take $DIR/lock"; exit 1; }

# ------------------------------------------------------------ install
bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if [ -z "$(bindir)" ] || [ ! -x "$(bindir)/initdb" ]; then
  [ "$(id -u)" = 0 ] || { log "PostgreSQL is not installed; run as root, or: apt-get install postgresql"; exit 1; }
  log "installing postgresql (apt)"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the package's maintainer scripts from starting a cluster of their own
  # (no systemd here; invoke-rc.d consults policy-rc.d, exit 101 = not allowed).
  policy=/usr/sbin/policy-rc.d own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
  fi
  trap '[ "$own_policy" = 1 ] && rm -f "$policy"' EXIT
  if ! apt-get install -y -q postgresql >&2; then
    apt-get update -q >&2
    apt-get install -y -q postgresql >&2
  fi
fi
BIN="$(bindir)"
VERSION="$(basename "$(dirname "$BIN")")"

# ------------------------------------------------------------ as whom
if [ "$(id -u)" = 0 ]; then
  id -u "$SUPERUSER" >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash "$SUPERUSER"
  as_pg() { runuser -u "$SUPERUSER" -- "$@"; }
  OWNER="$SUPERUSER"
  chmod 755 "$DIR"
  if ! as_pg test -x "$DIR"; then
    log "the postgres user cannot reach $DIR (a parent directory is closed to it); choose another LARDER_POSTGRES_DIR"
    exit 1
  fi
else
  as_pg() { "$@"; }
  OWNER="$(id -un)"
fi
# A Unix socket path is limited to about 107 bytes; a deep DIR goes without one (TCP is what counts).
SOCKDIR="$SOCK"
[ ${#SOCK} -le 90 ] || SOCKDIR=""
mkdir -p "$SOCK"
chown "$OWNER" "$SOCK"
touch "$LOGFILE"
chown "$OWNER" "$LOGFILE"

ready() { "$BIN/pg_isready" -q -h "$HOST" -p "$PORT" -d postgres -U "$SUPERUSER" -t 2; }
running() { as_pg "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; }
print_url() {
  echo "$URL" >"$DIR/url.tmp" && mv "$DIR/url.tmp" "$DIR/url"
  echo "$URL"
}

# ------------------------------------------------------------ already running?
STAMP="v1 postgresql=$VERSION port=$PORT"
if [ -f "$DATA/PG_VERSION" ] && [ "$(cat "$DIR/stamp" 2>/dev/null)" = "$STAMP" ] && running && ready; then
  log "already running at $URL"
  print_url
  exit 0
fi
if [ -f "$DATA/postmaster.pid" ] && running; then
  log "restarting (settings changed)"
  as_pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t "$TIMEOUT" >&2 || true
fi

# ------------------------------------------------------------ initdb
if [ ! -f "$DATA/PG_VERSION" ] || [ "$(cat "$DATA/PG_VERSION")" != "${VERSION%%.*}" ]; then
  log "initialising $DATA (PostgreSQL $VERSION)"
  rm -rf "$DATA"
  mkdir -p "$DATA"
  chown "$OWNER" "$DATA"
  chmod 700 "$DATA"
  as_pg "$BIN/initdb" -D "$DATA" -U "$SUPERUSER" -A trust -E UTF8 --no-locale --no-sync >"$DIR/initdb.log" 2>&1 || {
    cat "$DIR/initdb.log" >&2
    exit 1
  }
  # Loopback only, and disposable: speed over durability.
  cat >>"$DATA/postgresql.conf" <<EOF

# larder test server (scripts/services/postgres-start.sh)
listen_addresses = '$HOST'
unix_socket_directories = '$SOCKDIR'
max_connections = 300
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
EOF
fi

# ------------------------------------------------------------ start
rm -f "$DIR/stamp"
log "starting PostgreSQL $VERSION on $HOST:$PORT"
# -p on the command line so that the port can change without a new initdb.
if ! as_pg "$BIN/pg_ctl" start -D "$DATA" -l "$LOGFILE" -o "-p $PORT" -w -t "$TIMEOUT" >&2 9>&-; then
  log "PostgreSQL did not start; the end of $LOGFILE:"
  tail -n 30 "$LOGFILE" >&2
  exit 1
fi
deadline=$((SECONDS + TIMEOUT))
until ready; do
  if ((SECONDS >= deadline)); then
    log "PostgreSQL is not answering on $HOST:$PORT; the end of $LOGFILE:"
    tail -n 30 "$LOGFILE" >&2
    exit 1
  fi
  sleep 0.2
done
echo "$STAMP" >"$DIR/stamp"
log "ready at $URL"
print_url
