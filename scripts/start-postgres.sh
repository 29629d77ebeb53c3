#!/usr/bin/env bash
# Start (or reuse) a throwaway PostgreSQL server for the catalog tests and print its
# SQLAlchemy URL on the last stdout line; everything else goes to stderr, so
#   export SYNTHGEN_TEST_POSTGRES_URL="$(bash scripts/start-postgres.sh | tail -n 1)"
# works. The catalog must pass the same tests on SQLite and on a real server, and CI
# machines have no server running, so this script owns one under a fixed directory:
#   ${SYNTHGEN_PG_DIR:-${TMPDIR:-/tmp}/synthgen-pg}/{data,socket,server.log}
# It listens on 127.0.0.1 only (port ${SYNTHGEN_PG_PORT:-54329}) with trust auth, so it
# must never hold real data. PostgreSQL refuses to run as root: as root, the server runs
# as the `postgres` system user (created by Debian's postgresql package).
#
# Usage: start-postgres.sh          start or reuse the server, print its URL
#        start-postgres.sh --stop   stop the server started here (data dir is kept)
set -euo pipefail

PORT=${SYNTHGEN_PG_PORT:-54329}
BASE=${SYNTHGEN_PG_DIR:-${TMPDIR:-/tmp}/synthgen-pg}
DATA=$BASE/data
SOCK=$BASE/socket
LOG=$BASE/server.log
ROLE=synthgen
DB=synthgen
URL="postgresql+psycopg://$ROLE@127.0.0.1:$PORT/$DB"
WAIT_S=30

say() { echo "start-postgres: $*" >&2; }
die() {
  say "error: $*"
  exit 1
}

case "${1:-}" in
  "" | --stop) ;;
  -h | --help)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 0
    ;;
  *) die "unknown argument '$1' (use no argument, --stop or --help)" ;;
esac

[[ $PORT =~ ^[0-9]+$ ]] || die "SYNTHGEN_PG_PORT='$PORT' is not a port number"

# Debian keeps the binaries in /usr/lib/postgresql/<major>/bin, off PATH; take the
# highest major there, else whatever PATH has. $PG_BIN overrides both.
find_bin_dir() {
  if [ -n "${PG_BIN:-}" ]; then
    [ -x "$PG_BIN/initdb" ] || die "PG_BIN='$PG_BIN' has no initdb"
    echo "$PG_BIN"
    return
  fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$found" ] && [ -x "$found/initdb" ]; then
    echo "$found"
  elif command -v initdb >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v initdb)")"
  else
    die "PostgreSQL binaries not found (no /usr/lib/postgresql/*/bin/initdb, no initdb on" \
      "PATH); run scripts/setup-dev.sh as root or apt-get install -y postgresql"
  fi
}
BIN=$(find_bin_dir)
for tool in initdb pg_ctl pg_isready psql; do
  [ -x "$BIN/$tool" ] || die "$BIN/$tool is missing; reinstall the postgresql package"
done

# Run a server-side command as the user that owns the data dir.
if [ "$(id -u)" = "0" ]; then
  id -u postgres >/dev/null 2>&1 \
    || die "running as root but there is no 'postgres' system user to run the server" \
      "(install the Debian postgresql package, or run this script as a normal user)"
  OWNER=postgres
  as_owner() {
    if command -v runuser >/dev/null 2>&1; then
      runuser -u postgres -- "$@"
    else
      su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  }
else
  OWNER=$(id -un)
  as_owner() { "$@"; }
fi

running() { as_owner "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; }
log_tail() {
  if [ -f "$LOG" ]; then
    say "last lines of $LOG:"
    tail -n 30 "$LOG" >&2 || true
  fi
}

if [ "${1:-}" = "--stop" ]; then
  if [ -d "$DATA" ] && running; then
    as_owner "$BIN/pg_ctl" stop -D "$DATA" -m fast -w >/dev/null
    say "stopped the server in $DATA"
  else
    say "no server running in $DATA"
  fi
  exit 0
fi

mkdir -p "$BASE"
if [ "$OWNER" = postgres ]; then
  chown postgres: "$BASE"
  as_owner test -w "$BASE" \
    || die "user postgres cannot write $BASE (a parent directory is closed to it);" \
      "set SYNTHGEN_PG_DIR or TMPDIR to a directory under /tmp"
fi

# A data dir from another major version cannot be started; it is throwaway, so re-create it.
# `pg_ctl (PostgreSQL) 15.8 (Debian ...)` -> 15
MAJOR=$("$BIN/pg_ctl" --version | awk '{print $3}' | sed 's/[^0-9].*//')
if [ -f "$DATA/PG_VERSION" ] && [ "$(cat "$DATA/PG_VERSION")" != "$MAJOR" ]; then
  running && die "a PostgreSQL $(cat "$DATA/PG_VERSION") server is running in $DATA;" \
    "stop it first (pg_ctl stop -D $DATA)"
  say "data dir $DATA is from PostgreSQL $(cat "$DATA/PG_VERSION"), binaries are $MAJOR;" \
    "re-creating it"
  rm -rf "$DATA"
fi

if [ ! -f "$DATA/PG_VERSION" ]; then
  rm -rf "$DATA"
  install -d -m 700 -o "$OWNER" -g "$(id -g "$OWNER")" "$DATA"
  say "initdb in $DATA (PostgreSQL $MAJOR, user $OWNER)"
  # The bootstrap superuser is the role the tests use, so no extra role is needed.
  as_owner "$BIN/initdb" -D "$DATA" -U "$ROLE" --encoding=UTF8 --locale=C \
    --auth-local=trust --auth-host=reject >"$BASE/initdb.log" 2>&1 \
    || {
      tail -n 30 "$BASE/initdb.log" >&2
      die "initdb failed (full output in $BASE/initdb.log)"
    }
  # Trust only the local socket and 127.0.0.1: nothing else may connect.
  printf '%s\n' "local all all trust" "host all all 127.0.0.1/32 trust" >"$DATA/pg_hba.conf"
  echo "include_if_exists = 'synthgen.conf'" >>"$DATA/postgresql.conf"
fi
install -d -m 700 -o "$OWNER" -g "$(id -g "$OWNER")" "$SOCK"

if running; then
  live_port=$(sed -n 4p "$DATA/postmaster.pid" 2>/dev/null || true)
  [ "$live_port" = "$PORT" ] \
    || die "the server in $DATA is already running on port ${live_port:-?}, not $PORT;" \
      "unset SYNTHGEN_PG_PORT or stop it first (bash $0 --stop)"
  say "reusing the server already running in $DATA on port $PORT"
else
  # Settings are rewritten on every start, so a new SYNTHGEN_PG_PORT takes effect.
  cat >"$DATA/synthgen.conf" <<CONF
# written by scripts/start-postgres.sh; edits are overwritten
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
shared_buffers = 32MB
max_connections = 100
synchronous_commit = off
CONF
  touch "$LOG"
  if [ "$OWNER" = postgres ]; then
    chown postgres: "$DATA/synthgen.conf" "$DATA/pg_hba.conf" "$LOG"
  fi
  say "starting the server (port $PORT, log $LOG)"
  # -w waits until the server is ready or has exited (pg_ctl watches its pid file).
  as_owner "$BIN/pg_ctl" start -D "$DATA" -l "$LOG" -w -t "$WAIT_S" >/dev/null \
    || {
      log_tail
      die "the server failed to start within ${WAIT_S}s (is port $PORT already in use?" \
        "set SYNTHGEN_PG_PORT to another port)"
    }
fi

# pg_ctl only proves the socket works; the tests connect over TCP.
deadline=$((SECONDS + WAIT_S))
until "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U "$ROLE" -d postgres -t 2; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    log_tail
    die "the server did not accept connections on 127.0.0.1:$PORT within ${WAIT_S}s" \
      "(is another program using port $PORT? set SYNTHGEN_PG_PORT to another port)"
  fi
  sleep 0.5
done

psql_q() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U "$ROLE" "$@"; }
exists=$(psql_q -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'") \
  || die "cannot connect as role $ROLE to 127.0.0.1:$PORT; is it a server started by this" \
    "script? (data dir $DATA)"
if [ "$exists" != 1 ]; then
  psql_q -d postgres -c "CREATE DATABASE $DB OWNER $ROLE" >/dev/null
  say "created database $DB"
fi

say "ready"
echo "$URL"
