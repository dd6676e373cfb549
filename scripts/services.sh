#!/usr/bin/env bash
# Make sure Postgres (DATABASE_URL) and Redis (REDIS_URL) answer.
#
# Whatever does not answer is started as a private instance under .run/ on a
# free port, when its server is installed, and the matching URL is exported;
# when it is not installed, this says which Debian package to install and fails.
#
# Sourced by scripts/demo.sh (services_ensure / services_stop), or run directly:
#   scripts/services.sh -- COMMAND ARGS...   run COMMAND with both answering, then stop what was started
#   scripts/services.sh                       start what is missing, print the URLs, wait for Ctrl-C
#
# A private Postgres keeps its data in .run/pg between runs (superuser and
# database "nasweb", trust auth, 127.0.0.1 only); a private Redis keeps its
# queues in .run/redis (append-only file), so that tasks queued when the demo
# was stopped are still there when it starts again. Both listen on 127.0.0.1 only.

SERVICES_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${RUN_DIR:-$SERVICES_ROOT/.run}"
LOG_DIR="${LOG_DIR:-$RUN_DIR/logs}"
PY="${PY:-$SERVICES_ROOT/.venv/bin/python}"

: "${DATABASE_URL:=postgres://root@127.0.0.1:5432/root}"
: "${REDIS_URL:=redis://127.0.0.1:6379/0}"
export DATABASE_URL REDIS_URL

# Set when this shell started a private instance; services_stop stops exactly those.
PRIVATE_PG_DATA=""
PRIVATE_PG_BIN=""
PRIVATE_REDIS_PID=""

mask_url() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

postgres_answers() {  # URL -> 0 when a connection with these credentials works
    "$PY" - "$1" <<'PY'
import sys
import psycopg2
try:
    psycopg2.connect(sys.argv[1], connect_timeout=3).close()
except Exception as exc:
    lines = str(exc).strip().splitlines()
    print(f"    ({type(exc).__name__}: {lines[0] if lines else ''})", file=sys.stderr)
    sys.exit(1)
PY
}

redis_answers() {  # URL -> 0 when PING works
    "$PY" - "$1" <<'PY'
import sys
import redis
try:
    redis.Redis.from_url(sys.argv[1], socket_connect_timeout=2, socket_timeout=2).ping()
except Exception as exc:
    print(f"    ({type(exc).__name__}: {exc})", file=sys.stderr)
    sys.exit(1)
PY
}

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

pg_bindir() {  # the directory holding initdb and pg_ctl of one Postgres version
    local p d
    if p="$(command -v initdb)"; then
        d="$(dirname "$(readlink -f "$p")")"
        if [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
    done
    return 1
}

# Postgres refuses to run as root: as root, run it as "postgres" (or "nobody").
PG_OS_USER=""
if [ "$(id -u)" = 0 ]; then
    if id postgres >/dev/null 2>&1; then PG_OS_USER=postgres; else PG_OS_USER=nobody; fi
fi

as_pg() {
    if [ -z "$PG_OS_USER" ]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u "$PG_OS_USER" -- "$@"
    else
        su -s /bin/sh "$PG_OS_USER" -c "$(printf '%q ' "$@")"
    fi
}

pg_owned_dir() {  # mkdir -p, owned by the Postgres OS user, mode 700
    mkdir -p "$1"
    if [ -n "$PG_OS_USER" ]; then chown "$PG_OS_USER" "$1"; fi
    chmod 700 "$1"
}

start_private_postgres() {
    local bin base data sock port log
    bin="$(pg_bindir)" || return 1
    base="$RUN_DIR"
    log="$LOG_DIR/postgres.log"
    mkdir -p "$base" "$LOG_DIR"
    # The Postgres user must reach .run/; when the checkout sits somewhere it
    # cannot enter (under /root, say), keep the cluster under /tmp instead.
    if ! as_pg test -x "$base"; then
        base="${TMPDIR:-/tmp}/nasweb-$(printf '%s' "$SERVICES_ROOT" | cksum | cut -d' ' -f1)"
        mkdir -p "$base"; chmod 755 "$base"
        log="$base/postgres.log"
        echo "  ($PG_OS_USER cannot enter $RUN_DIR; the private Postgres and its log live in $base)"
    fi
    data="$base/pg"
    sock="$base/pgsock"
    # Unix socket paths are limited to ~107 bytes.
    if [ "${#sock}" -gt 80 ]; then sock="$(mktemp -d "${TMPDIR:-/tmp}/nasweb-pgsock.XXXXXX")"; fi
    pg_owned_dir "$sock"
    touch "$log"
    if [ -n "$PG_OS_USER" ]; then chown "$PG_OS_USER" "$log"; fi

    if [ ! -s "$data/PG_VERSION" ]; then
        pg_owned_dir "$data"
        echo "  initdb $data"
        as_pg "$bin/initdb" -D "$data" -U nasweb --auth=trust -E UTF8 --locale=C >>"$log" 2>&1 || {
            echo "initdb failed; see $log" >&2; return 1; }
    fi
    if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        # Left running by an earlier run that did not stop it: take it over.
        port="$(sed -n 4p "$data/postmaster.pid")"
    else
        port="$(free_port)"
        as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k '$sock'" start >/dev/null || {
            echo "Postgres did not start; see $log" >&2; tail -n 20 "$log" >&2; return 1; }
    fi
    PRIVATE_PG_DATA="$data"
    PRIVATE_PG_BIN="$bin"
    "$PY" - "postgres://nasweb@127.0.0.1:$port/postgres" <<'PY' || return 1
import sys
import psycopg2
conn = psycopg2.connect(sys.argv[1], connect_timeout=10)
conn.autocommit = True
with conn.cursor() as cur:
    cur.execute("SELECT 1 FROM pg_database WHERE datname = 'nasweb'")
    if cur.fetchone() is None:
        cur.execute("CREATE DATABASE nasweb")
conn.close()
PY
    DATABASE_URL="postgres://nasweb@127.0.0.1:$port/nasweb"
    export DATABASE_URL
}

start_private_redis() {
    local port i
    command -v redis-server >/dev/null 2>&1 || return 1
    mkdir -p "$RUN_DIR/redis" "$LOG_DIR"
    port="$(free_port)"
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly yes \
        --dir "$RUN_DIR/redis" --logfile "$LOG_DIR/redis.log" --daemonize no </dev/null &
    PRIVATE_REDIS_PID=$!
    REDIS_URL="redis://127.0.0.1:$port/0"
    export REDIS_URL
    for i in $(seq 50); do
        if redis_answers "$REDIS_URL" 2>/dev/null; then return 0; fi
        if ! kill -0 "$PRIVATE_REDIS_PID" 2>/dev/null; then break; fi
        sleep 0.2
    done
    echo "Redis did not start; see $LOG_DIR/redis.log" >&2
    return 1
}

services_ensure() {
    echo "Postgres at $(mask_url "$DATABASE_URL") ..."
    if postgres_answers "$DATABASE_URL"; then
        echo "  answers"
    elif pg_bindir >/dev/null; then
        echo "  does not answer; starting a private Postgres under .run/"
        start_private_postgres || return 1
        echo "  private Postgres: $DATABASE_URL"
    else
        cat >&2 <<EOF
Postgres does not answer at $(mask_url "$DATABASE_URL") and no Postgres server is installed here.
Install it (Debian/Ubuntu: sudo apt-get install postgresql) or set DATABASE_URL to a Postgres that answers.
EOF
        return 1
    fi

    echo "Redis at $(mask_url "$REDIS_URL") ..."
    if redis_answers "$REDIS_URL"; then
        echo "  answers"
    elif command -v redis-server >/dev/null 2>&1; then
        echo "  does not answer; starting a private Redis under .run/"
        start_private_redis || return 1
        echo "  private Redis: $REDIS_URL"
    else
        cat >&2 <<EOF
Redis does not answer at $(mask_url "$REDIS_URL") and no Redis server is installed here.
Install it (Debian/Ubuntu: sudo apt-get install redis-server) or set REDIS_URL to a Redis that answers.
EOF
        return 1
    fi
}

services_stop() {  # stop the private instances this shell started; safe to call twice
    local i
    if [ -n "$PRIVATE_REDIS_PID" ]; then
        kill -TERM "$PRIVATE_REDIS_PID" 2>/dev/null || true
        for i in $(seq 50); do kill -0 "$PRIVATE_REDIS_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PRIVATE_REDIS_PID" 2>/dev/null || true
        wait "$PRIVATE_REDIS_PID" 2>/dev/null || true
        echo "stopped the private Redis"
        PRIVATE_REDIS_PID=""
    fi
    if [ -n "$PRIVATE_PG_DATA" ]; then
        as_pg "$PRIVATE_PG_BIN/pg_ctl" -D "$PRIVATE_PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1 \
            || echo "could not stop the private Postgres in $PRIVATE_PG_DATA" >&2
        echo "stopped the private Postgres"
        PRIVATE_PG_DATA=""
    fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    SLEEP_PID=""
    trap 'if [ -n "$SLEEP_PID" ]; then kill "$SLEEP_PID" 2>/dev/null || true; fi; services_stop' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    services_ensure
    if [ "${1:-}" = "--" ]; then shift; fi
    if [ $# -gt 0 ]; then
        rc=0
        "$@" || rc=$?
        exit "$rc"
    fi
    echo "DATABASE_URL=$DATABASE_URL"
    echo "REDIS_URL=$REDIS_URL"
    echo "Press Ctrl-C to stop what was started here."
    while true; do sleep 3600 & SLEEP_PID=$!; wait "$SLEEP_PID" || true; done
fi
