#!/usr/bin/env bash
# make demo: everything NASWeb needs on one machine, in the foreground.
#
#   1. .venv with requirements.txt (make venv)
#   2. Postgres and Redis answering (scripts/services.sh starts private ones
#      under .run/ when the configured ones do not answer)
#   3. manage.py migrate, manage.py demo_setup (user "demo", a fresh password,
#      one small demo search)
#   4. gunicorn (several uvicorn processes, WEB_CONCURRENCY) on 127.0.0.1:${PORT:-8000}, a Celery worker for the "control"
#      queue, Celery beat (periodic tasks), and one "gpu" worker per GPU (one
#      CPU worker when there is none)
#
# Ctrl-C stops everything this script started. Logs: .run/logs/.
# Variables from .env are read when the file exists (see .env.example).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

make -s venv
if [ -f .env ]; then set -a; . ./.env; set +a; fi

BIN="$ROOT/.venv/bin"
PY="$BIN/python"
export PYTHONUNBUFFERED=1
# shellcheck source=scripts/services.sh
. "$ROOT/scripts/services.sh"
mkdir -p "$LOG_DIR"

PIDS=()
NAMES=()
CLEANED=0

alive() { local pid; for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && return 0; done; return 1; }

cleanup() {
    [ "$CLEANED" = 1 ] && return
    CLEANED=1
    trap '' INT TERM
    echo
    echo "Stopping NASWeb ..."
    local pid i
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    # Celery finishes the task in hand on TERM (warm shutdown); a task it does
    # not finish goes back to the queue (acks_late), so do not wait for long.
    for i in $(seq 100); do alive || break; sleep 0.1; done
    for pid in "${PIDS[@]}"; do kill -QUIT "$pid" 2>/dev/null || true; done
    for i in $(seq 50); do alive || break; sleep 0.1; done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    services_stop
    echo "Stopped."
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start() {  # NAME COMMAND... : run in the background, output to .run/logs/NAME.log
    local name=$1
    shift
    "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
    PIDS+=("$!")
    NAMES+=("$name")
}

port_busy() {
    "$PY" -c 'import socket, sys; s = socket.socket(); sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"
}

services_ensure

echo "Migrating ..."
"$PY" manage.py migrate --noinput >"$LOG_DIR/migrate.log" 2>&1 || {
    echo "manage.py migrate failed:" >&2; tail -n 30 "$LOG_DIR/migrate.log" >&2; exit 1; }
echo "Creating the demo user and search ..."
if ! SETUP_OUT="$("$PY" manage.py demo_setup 2>&1)"; then
    echo "manage.py demo_setup failed:" >&2; echo "$SETUP_OUT" >&2; exit 1
fi
(umask 077; echo "$SETUP_OUT" >"$LOG_DIR/demo_setup.log")  # holds the password

if [ -z "${PORT:-}" ]; then
    PORT=8000
    if port_busy "$PORT"; then
        PORT="$(free_port)"
        echo "Port 8000 is taken; using $PORT (set PORT to choose)."
    fi
elif port_busy "$PORT"; then
    echo "Port $PORT is taken; choose another with PORT=..." >&2
    exit 1
fi

start web "$BIN/gunicorn" -c nasweb/gunicorn_conf.py -b "127.0.0.1:$PORT" nasweb.asgi:application
start worker-control "$BIN/celery" -A nasweb worker -Q control --pool=threads --concurrency=4 \
    -n "control@%h" --loglevel=INFO
start beat "$BIN/celery" -A nasweb beat --loglevel=INFO

# One gpu worker per GPU, each seeing only its own. An existing
# CUDA_VISIBLE_DEVICES limits which GPUs are used.
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
    IFS=, read -r -a GPU_IDS <<<"$CUDA_VISIBLE_DEVICES"
    GPUS="$(CUDA_VISIBLE_DEVICES="$CUDA_VISIBLE_DEVICES" "$PY" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)"
    [ "$GPUS" -gt 0 ] || GPU_IDS=()
else
    GPUS="$("$PY" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)"
    GPU_IDS=()
    for ((i = 0; i < GPUS; i++)); do GPU_IDS+=("$i"); done
fi
if [ "${#GPU_IDS[@]}" -gt 0 ]; then
    for i in "${!GPU_IDS[@]}"; do
        start "worker-gpu$i" env CUDA_VISIBLE_DEVICES="${GPU_IDS[$i]}" "$BIN/celery" -A nasweb worker \
            -Q gpu --pool=solo --concurrency=1 -n "gpu$i@%h" --loglevel=INFO
    done
    echo "Training on ${#GPU_IDS[@]} GPU(s): ${GPU_IDS[*]}"
else
    start worker-cpu0 env CUDA_VISIBLE_DEVICES= "$BIN/celery" -A nasweb worker \
        -Q gpu --pool=solo --concurrency=1 -n "cpu0@%h" --loglevel=INFO
    echo "No GPU found; training on the CPU with one worker."
fi

URL="http://127.0.0.1:$PORT/"
echo "Waiting for the web server ..."
for i in $(seq 120); do
    if "$PY" - "$URL" <<'PY' 2>/dev/null; then break; fi
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError:
    pass  # any HTTP answer means it is up
PY
    if ! kill -0 "${PIDS[0]}" 2>/dev/null; then
        echo "The web server exited:" >&2; tail -n 30 "$LOG_DIR/web.log" >&2; exit 1
    fi
    sleep 0.5
done
for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
        echo "${NAMES[$i]} exited:" >&2; tail -n 30 "$LOG_DIR/${NAMES[$i]}.log" >&2; exit 1
    fi
done

cat <<EOF

NASWeb is running at $URL
Log in with
$(grep -E '^(user|password): ' <<<"$SETUP_OUT" | sed 's/^/  /')

Postgres: $(mask_url "$DATABASE_URL")
Redis:    $(mask_url "$REDIS_URL")
Logs:     .run/logs/ (${NAMES[*]})
Press Ctrl-C to stop everything this script started.
EOF

# Stay in the foreground until Ctrl-C, or until one of the processes exits.
wait -n "${PIDS[@]}" || true
for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
        echo "${NAMES[$i]} exited unexpectedly; the end of .run/logs/${NAMES[$i]}.log:" >&2
        tail -n 30 "$LOG_DIR/${NAMES[$i]}.log" >&2
    fi
done
exit 1
