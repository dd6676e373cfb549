#!/usr/bin/env bash
# The GPU rows of bench/training_overhead.py and bench/data_pipeline.py, in one command on a bare
# GPU machine: Python 3.12 with torch, numpy, scikit-learn... but no network, no Postgres, no Redis,
# no Django. Run in the repository root with .gpu/ beside it (made by bench/device_carry.sh):
#
#   bash bench/device_check.sh
#
# What it does: installs .gpu/whl into $WORK/site (on PYTHONPATH; nothing the machine has, so
# torch keeps its own numpy); unpacks .gpu/deb into $WORK/svc with dpkg -x (never into /) and starts a
# private Postgres 15 (as an unprivileged user, trust auth, superuser role root) and Redis 7 on
# 127.0.0.1, their shared libraries from $WORK/svc too (LD_LIBRARY_PATH for those processes only);
# checks Postgres, the Redis channel layer and the imports; runs both benchmarks with
# bench/device_settings.py, each under a timeout; stops the servers. $OUT gets (8 files):
# nvidia-smi.txt, training_overhead.json/.txt, data_pipeline.json/.txt (the results and the printed
# tables), postgres.log, redis.log and device_check.log (all of this script's output).
#
# Environment (the defaults suit the GPU machine; the rest is for trying it elsewhere):
#   OUT ($WORK/out)  PYTHON (python3)  DEVICE (cuda)  PG_PORT (5432)  REDIS_PORT (6379)
#   WORK (/tmp/nasweb-device: removed and made anew)  CARRY (.gpu)  WHEELS ($CARRY/whl)
#   SKIP_WHEELS=1 (use $PYTHON's own packages)  QUICK=1 (--quick)  ONLY=training_overhead|data_pipeline
#   TRAIN_ARGS, DATA_ARGS (more arguments)  TRAIN_TIMEOUT (240 s)  DATA_TIMEOUT (150 s)
#   PG_OS_USER (the user Postgres runs as when this runs as root: default a new system user
#   nasweb_pg, else nobody)  UNPACK_WITH_PYTHON=1 (unpack the .debs without dpkg)
set -euo pipefail
umask 022
export PYTHONUNBUFFERED=1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WORK=${WORK:-/tmp/nasweb-device}
OUT=${OUT:-$WORK/out}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
PG_PORT=${PG_PORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}
CARRY=${CARRY:-$ROOT/.gpu}
WHEELS=${WHEELS:-$CARRY/whl}
TRAIN_TIMEOUT=${TRAIN_TIMEOUT:-240}
DATA_TIMEOUT=${DATA_TIMEOUT:-150}
QUICK_ARG=()
[ "${QUICK:-0}" = 1 ] && QUICK_ARG=(--quick)

say() { printf '[device_check %s +%ss] %s\n' "$(date -u +%T)" "$SECONDS" "$*"; }
die() { say "FAILED: $*"; exit 1; }

# --- a fresh work folder and $OUT; everything printed also goes to $OUT/device_check.log -------------
case "$WORK" in /tmp/?*|/var/tmp/?*) ;; *) echo "WORK must be under /tmp or /var/tmp, not $WORK" >&2; exit 2 ;; esac
if [ -e "$WORK" ]; then
    [ -f "$WORK/.device_check" ] || { echo "$WORK exists and was not made by this script" >&2; exit 2; }
    rm -rf "$WORK"
fi
mkdir -p "$WORK" "$OUT"
touch "$WORK/.device_check"
exec 3>&1 4>&2
exec > >(tee -a "$OUT/device_check.log" >&3) 2>&1
TEE_PID=$!

SVC=$WORK/svc                 # the unpacked .debs
SVC_LD=$SVC/usr/lib/x86_64-linux-gnu:$SVC/lib/x86_64-linux-gnu
PGBIN=$SVC/usr/lib/postgresql/15/bin
PGSHARE=$SVC/usr/share/postgresql/15
PGROOT=$WORK/pg               # data, socket, logs: owned by the Postgres user
REDIS_DIR=$WORK/redis
PG_STARTED='' REDIS_STARTED='' MADE_USER='' MADE_ZONEINFO=''
AS_PG=()

cleanup() {
    local rc=$?
    set +e
    if [ -n "$REDIS_STARTED" ]; then
        kill "$(cat "$REDIS_DIR/redis.pid" 2>/dev/null)" 2>/dev/null && say "redis stopped"
    fi
    if [ -n "$PG_STARTED" ]; then
        pg "$PGBIN/pg_ctl" -D "$PGROOT/data" -m fast -w -t 30 stop >/dev/null && say "postgres stopped"
    fi
    cat "$PGROOT/initdb.log" "$PGROOT/postgres.log" > "$OUT/postgres.log" 2>/dev/null
    cp "$REDIS_DIR/redis.log" "$OUT/redis.log" 2>/dev/null
    [ -n "$MADE_ZONEINFO" ] && rm -f /usr/share/zoneinfo
    [ -n "$MADE_USER" ] && userdel "$MADE_USER" 2>/dev/null
    say "exit $rc; $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
    exec 1>&3 2>&4
    wait "$TEE_PID" 2>/dev/null
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

port_free() {  # nothing listening on 127.0.0.1:$1 (a server there would not be ours)
    "$PYTHON" -c 'import socket, sys; s = socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0)' "$1"
}

# --- the machine ------------------------------------------------------------------------------------
say "repository $ROOT, work $WORK, out $OUT, device $DEVICE, python $(command -v "$PYTHON" || echo "$PYTHON: not found")"
{
    nvidia-smi -L || echo "nvidia-smi -L failed"
    echo
    nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit,clocks.max.sm --format=csv || true
    echo
    grep -h PRETTY_NAME /etc/os-release || true
    echo "kernel $(uname -r), $(nproc) cores, $(free -g 2>/dev/null | awk '/Mem:/ {print $2 " GiB memory"}')"
} > "$OUT/nvidia-smi.txt" 2>&1
cat "$OUT/nvidia-smi.txt"

# --- Python packages: the wheels into $WORK/site -----------------------------------------------------
if [ "${SKIP_WHEELS:-0}" != 1 ]; then
    wheels=("$WHEELS"/*.whl)
    [ -e "${wheels[0]}" ] || die "no wheels in $WHEELS (make them with bench/device_carry.sh)"
    say "installing ${#wheels[@]} wheels into $WORK/site"
    if "$PYTHON" -m pip --version >/dev/null 2>&1 &&
       "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
           --disable-pip-version-check --target "$WORK/site" "${wheels[@]}"; then
        :
    else
        say "no pip for $PYTHON, or it failed: unzipping the wheels instead"
        rm -rf "$WORK/site"
        "$PYTHON" - "$WORK/site" "${wheels[@]}" <<'EOF'
import pathlib, shutil, sys, zipfile
site = pathlib.Path(sys.argv[1])
site.mkdir(parents=True, exist_ok=True)
for whl in sys.argv[2:]:
    with zipfile.ZipFile(whl) as z:
        z.extractall(site)
for data in site.glob("*.data"):  # a wheel's purelib/platlib parts belong at the top
    for part in ("purelib", "platlib"):
        for item in (data / part).glob("*"):
            shutil.move(str(item), str(site / item.name))
    shutil.rmtree(data)
EOF
    fi
    export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
say "python packages:"
"$PYTHON" - "$DEVICE" "$WORK/site" <<'EOF'
import importlib, sys
device, site = sys.argv[1], sys.argv[2]
print(f"  python {sys.version.split()[0]} at {sys.executable}")
for name in ("numpy", "torch", "torchvision", "sklearn", "django", "channels", "channels_redis", "redis",
             "celery", "kombu", "psycopg2", "rest_framework", "drf_spectacular", "whitenoise", "dj_database_url"):
    mod = importlib.import_module(name)
    print(f"  {name:16s} {getattr(mod, '__version__', '?'):12s} {mod.__file__}")
    if name in ("numpy", "torch") and mod.__file__.startswith(site):
        sys.exit(f"{name} comes from {site}: it would shadow the machine's own")
import torch
if device.startswith("cuda"):
    if not torch.cuda.is_available():
        sys.exit("DEVICE is cuda but torch.cuda.is_available() is False")
    print(f"  cuda: {torch.cuda.get_device_name(0)}, torch CUDA {torch.version.cuda}")
EOF

# --- Postgres and Redis from the .debs ------------------------------------------------------------------
debs=("$CARRY"/deb/*.deb)
[ -e "${debs[0]}" ] || die "no .debs in $CARRY/deb (make them with bench/device_carry.sh)"
say "unpacking ${#debs[@]} .debs into $SVC"
mkdir -p "$SVC"
if command -v dpkg >/dev/null 2>&1 && [ "${UNPACK_WITH_PYTHON:-0}" != 1 ]; then
    for deb in "${debs[@]}"; do dpkg -x "$deb" "$SVC"; done
else
    "$PYTHON" - "$SVC" "${debs[@]}" <<'EOF'
import io, sys, tarfile
dest = sys.argv[1]
for deb in sys.argv[2:]:
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            sys.exit(f"{deb}: not a .deb")
        while len(header := f.read(60)) == 60:  # an ar archive: debian-binary, control.tar.*, data.tar.*
            name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
            body = f.read(size + size % 2)[:size]
            if name.startswith("data.tar"):
                with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                    kw = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
                    tar.extractall(dest, **kw)
EOF
fi
chmod -R a+rX "$SVC"
# redis-tools has the binary; the redis-server package (config, systemd unit) only this link to it,
# and the binary runs as the server when called by that name.
[ -e "$SVC/usr/bin/redis-server" ] || ln -s redis-check-rdb "$SVC/usr/bin/redis-server"

libs_report() {  # what the loader finds for the servers' binaries, with and without the carried libraries
    command -v ldd >/dev/null 2>&1 || { say "no ldd here"; return 0; }
    local bins=("$PGBIN/postgres" "$PGBIN/initdb" "$SVC/usr/bin/redis-check-rdb")
    local lacking missing
    lacking=$(ldd "${bins[@]}" 2>&1 | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
    missing=$(LD_LIBRARY_PATH=$SVC_LD ldd "${bins[@]}" 2>&1 | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
    say "shared libraries this machine lacks (carried ones used for all): ${lacking:-none}"
    if [ -n "$missing" ]; then
        say "MISSING even with the carried libraries: $missing"
        LD_LIBRARY_PATH=$SVC_LD ldd "${bins[@]}" 2>&1 | grep -E '^/|not found' || true
    fi
}
libs_report

if [ ! -e /usr/share/zoneinfo/UTC ]; then  # Postgres reads time zones there only (Django sets UTC)
    if [ ! -e /usr/share/zoneinfo ] && [ "$(id -u)" = 0 ] && ln -s "$SVC/usr/share/zoneinfo" /usr/share/zoneinfo; then
        MADE_ZONEINFO=1
        say "no /usr/share/zoneinfo here: linked it to the carried tzdata (removed at the end)"
    else
        say "WARNING: no /usr/share/zoneinfo/UTC: Postgres will refuse Django's SET TIME ZONE 'UTC'"
    fi
fi

port_free "$PG_PORT" || die "something already listens on 127.0.0.1:$PG_PORT (set PG_PORT)"
port_free "$REDIS_PORT" || die "something already listens on 127.0.0.1:$REDIS_PORT (set REDIS_PORT)"
mkdir -p "$PGROOT" "$REDIS_DIR"
if [ "$(id -u)" = 0 ]; then  # Postgres refuses to run as root
    if [ -z "${PG_OS_USER:-}" ]; then
        if id nasweb_pg >/dev/null 2>&1; then
            PG_OS_USER=nasweb_pg
        elif command -v useradd >/dev/null 2>&1 &&
             useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --user-group nasweb_pg 2>/dev/null; then
            PG_OS_USER=nasweb_pg MADE_USER=nasweb_pg
        else
            PG_OS_USER=nobody
        fi
    fi
    pg_uid=$(id -u "$PG_OS_USER") pg_gid=$(id -g "$PG_OS_USER")
    chown -R "$pg_uid:$pg_gid" "$PGROOT"
    if command -v setpriv >/dev/null 2>&1; then
        AS_PG=(setpriv "--reuid=$pg_uid" "--regid=$pg_gid" --clear-groups --)
    elif command -v runuser >/dev/null 2>&1; then
        AS_PG=(runuser -u "$PG_OS_USER" --)
    else
        su_pg() { su -s /bin/sh "$PG_OS_USER" -c "$(printf '%q ' "$@")"; }
        AS_PG=(su_pg)
    fi
    say "postgres runs as $PG_OS_USER (uid $pg_uid) through ${AS_PG[0]}"
fi
pg() { "${AS_PG[@]}" env LD_LIBRARY_PATH="$SVC_LD" LC_ALL=C LANG=C "$@"; }
pg_failed() {
    say "postgres: $1; its log:"
    tail -n 30 "$PGROOT/initdb.log" "$PGROOT/postgres.log" 2>/dev/null || true
    LD_LIBRARY_PATH=$SVC_LD "$PGBIN/postgres" --version || true
    libs_report
    die "postgres: $1"
}

say "initdb"
pg "$PGBIN/initdb" -D "$PGROOT/data" -U root --auth=trust -E UTF8 --locale=C -L "$PGSHARE" -N \
    > "$PGROOT/initdb.log" 2>&1 || pg_failed "initdb failed"
say "starting postgres on 127.0.0.1:$PG_PORT"
PG_STARTED=1
pg "$PGBIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$PGROOT -c jit=off" start \
    >> "$PGROOT/initdb.log" 2>&1 || pg_failed "it did not start"

say "starting redis on 127.0.0.1:$REDIS_PORT"
REDIS_STARTED=1
env LD_LIBRARY_PATH="$SVC_LD" "$SVC/usr/bin/redis-server" --bind 127.0.0.1 --port "$REDIS_PORT" \
    --save '' --appendonly no --daemonize yes --dir "$REDIS_DIR" --logfile "$REDIS_DIR/redis.log" \
    --pidfile "$REDIS_DIR/redis.pid" || { libs_report; die "redis-server did not start"; }
redis_up=
for _ in $(seq 50); do
    if [ "$(env LD_LIBRARY_PATH="$SVC_LD" "$SVC/usr/bin/redis-cli" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; then
        redis_up=1
        break
    fi
    sleep 0.2
done
[ -n "$redis_up" ] || { tail -n 20 "$REDIS_DIR/redis.log"; die "redis-server did not answer"; }

# --- the benchmarks' environment, checked once: Postgres through Django, the channel layer, Celery's broker
export BENCH_PG_HOST=127.0.0.1 BENCH_PG_PORT="$PG_PORT" BENCH_PG_USER=root
export BENCH_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/13"
export BENCH_SETTINGS_MODULE=bench.device_settings DJANGO_SETTINGS_MODULE=bench.device_settings
say "checking Django against them"
DATABASE_URL="postgres://root@127.0.0.1:$PG_PORT/postgres" REDIS_URL="$BENCH_REDIS_URL" \
CHANNEL_PREFIX=nasweb-device-check LOG_LEVEL=WARNING "$PYTHON" - <<'EOF'
import asyncio, sys
sys.path.insert(0, ".")
import django
django.setup()
from django.db import connection
with connection.cursor() as cur:
    cur.execute("SELECT version(), current_setting('TimeZone'), now()")
    version, tz, now = cur.fetchone()
print(f"  postgres: {version.split(',')[0]}; TimeZone {tz}; now() {now.isoformat()}")
from channels.layers import get_channel_layer
async def round_trip():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("device-check", channel)
    await layer.group_send("device-check", {"type": "check", "n": 1})
    message = await asyncio.wait_for(layer.receive(channel), 5)
    await layer.group_discard("device-check", channel)
    await layer.flush()
    return message
print(f"  channel layer {type(get_channel_layer()).__name__}: group_send came back as {asyncio.run(round_trip())}")
from nasweb.celery import app
with app.connection_for_write() as conn:
    conn.ensure_connection(max_retries=1)
    print(f"  celery broker: {conn.as_uri()}")
import workers.training  # noqa: F401 - the worker's imports (torch, the services, the NAS core)
print(f"  installed apps: {', '.join(a.label for a in django.apps.apps.get_app_configs())}")
EOF

# --- the benchmarks ---------------------------------------------------------------------------------------
failed=()
run_bench() {  # name, seconds, arguments...
    local name=$1 limit=$2 rc
    shift 2
    say "bench/$name.py $* (at most ${limit}s)"
    set +e
    timeout -k 20 "$limit" "$PYTHON" "bench/$name.py" "$@" --json "$OUT/$name.json" 2>&1 | tee "$OUT/$name.txt"
    rc=${PIPESTATUS[0]}
    set -e
    if [ "$rc" = 0 ]; then
        say "bench/$name.py done"
    else
        [ "$rc" = 124 ] && say "bench/$name.py ran past ${limit}s and was stopped"
        say "bench/$name.py failed (exit $rc)"
        failed+=("$name")
    fi
}
# shellcheck disable=SC2086 # TRAIN_ARGS and DATA_ARGS are word lists
if [ -z "${ONLY:-}" ] || [ "$ONLY" = training_overhead ]; then
    run_bench training_overhead "$TRAIN_TIMEOUT" --device "$DEVICE" "${QUICK_ARG[@]}" ${TRAIN_ARGS:-}
fi
# shellcheck disable=SC2086
if [ -z "${ONLY:-}" ] || [ "$ONLY" = data_pipeline ]; then
    run_bench data_pipeline "$DATA_TIMEOUT" --device "$DEVICE" "${QUICK_ARG[@]}" ${DATA_ARGS:-}
fi
[ ${#failed[@]} = 0 ] || die "${failed[*]}"
say "all done"
