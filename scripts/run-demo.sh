#!/usr/bin/env bash
# `make run`: serve the demo with the timer worker beside it.
#
# The worker (`flask --app wsgi lotsen worker`) fires due BPMN timers (deadline escalations);
# the web server is `flask run`. When either stops, or this script gets Ctrl-C / SIGTERM,
# both are stopped (SIGTERM, then waited for) through the EXIT trap.
set -uo pipefail

BIN="${BIN:-.venv/bin}"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-5000}"
pids=()

stop_all() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$BIN/flask" --app wsgi lotsen worker --interval "${LOTSEN_TIMER_INTERVAL:-15}" &
pids+=("$!")
"$BIN/flask" --app wsgi run --host "$HOST" --port "$PORT" &
pids+=("$!")

# `wait -n` returns when the first of the two exits (or a trapped signal arrives).
wait -n
