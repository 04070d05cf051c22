#!/usr/bin/env bash
# Start a private PostgreSQL server on localhost for the multi-worker search tests (issue 5).
#
# Installs Debian's `postgresql` package when no server binaries are found (needs root and apt),
# creates a throw-away cluster in $REXNET_PG_DIR (default /tmp/rexnet-pg) listening on
# localhost:$REXNET_PG_PORT (default 55432) with trust authentication, creates database `rexnet`,
# and prints its URL on the last line of stdout, e.g.
#     postgresql://postgres@localhost:55432/rexnet
# Idempotent: a server already answering on that port is reused. Use from CI as
#     export REXNET_TEST_POSTGRES_URL="$(.ci/postgres.sh | tail -n1)"
# Stop it with:  .ci/postgres.sh stop
set -euo pipefail

DIR="${REXNET_PG_DIR:-/tmp/rexnet-pg}"
PORT="${REXNET_PG_PORT:-55432}"
DB=rexnet
URL="postgresql://postgres@localhost:${PORT}/${DB}"

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

BIN="$(find_bin || true)"
if [ -z "$BIN" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "postgres.sh: PostgreSQL not installed and cannot apt-get install it (need root + apt)" >&2
    exit 1
  fi
  echo "postgres.sh: installing postgresql from Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  BIN="$(find_bin)"
fi

# The server refuses to run as root: run it as `postgres` (created by the package) when we are root.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$DIR" postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if [ "${1:-}" = stop ]; then
  [ -d "$DIR/data" ] && as_owner "$BIN/pg_ctl" -D "$DIR/data" -m fast stop >&2 || true
  exit 0
fi

ready() { "$BIN/pg_isready" -q -h localhost -p "$PORT" 2>/dev/null; }

if ! ready; then
  mkdir -p "$DIR"
  [ "$(id -u)" = 0 ] && { id postgres >/dev/null 2>&1 || useradd --system --home-dir "$DIR" postgres; chown postgres "$DIR"; }
  if [ ! -s "$DIR/data/PG_VERSION" ]; then
    as_owner "$BIN/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 >/dev/null
  fi
  as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-p $PORT -c listen_addresses=localhost -k $DIR -c max_connections=200 -c fsync=off" start >&2
fi
for _ in $(seq 1 60); do ready && break; sleep 0.5; done
ready || { echo "postgres.sh: server did not come up; see $DIR/server.log" >&2; exit 1; }

if ! "$BIN/psql" -h localhost -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1; then
  "$BIN/createdb" -h localhost -p "$PORT" -U postgres "$DB" >&2 || true
fi
echo "$URL"
