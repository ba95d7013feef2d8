#!/usr/bin/env bash
# rabbitmq.sh - the local stack's RabbitMQ node (`make run ARGS=--enable-rabbit`).
#
# The same private node as the benchmark's baseline: tests/bench/rabbitmq.sh
# runs Debian's rabbitmq-server (installed with apt-get if missing) as a
# plain process, never as the system service, with its own node name, AMQP
# port, data, Erlang distribution port and epmd port, all on 127.0.0.1.
# This script only gives it the stack's defaults and adds a status line.
#
# Usage: rabbitmq.sh start|stop|status|url
#   start    start the node and wait until it serves (nothing if it runs)
#   stop     stop it (nothing if it does not run)
#   status   one line: state, AMQP address, node, data; exit 0 only if the
#            node's process runs and its AMQP port listens
#   url      the AMQP URI of the node's "/" vhost (user guest, loopback only)
#
# Environment (defaults in brackets):
#   RABBIT_PORT       AMQP port [5673; hopper itself listens on 5672]
#   RABBIT_DIR        data, logs, cookie, config [.cache/stack/rabbitmq]
#   RABBIT_NODE       Erlang node name [hopperstack@localhost]
#   RABBIT_EPMD       epmd port [4489]
#   RABBIT_DIST_PORT  Erlang distribution port [AMQP port + 20000]
#   RABBIT_TIMEOUT    seconds to wait for start or stop [120]

set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
NODE_SH="$REPO_ROOT/tests/bench/rabbitmq.sh"

PORT="${RABBIT_PORT:-5673}"
DIR="${RABBIT_DIR:-.cache/stack/rabbitmq}"
[[ "$DIR" == /* ]] || DIR="$REPO_ROOT/$DIR"
NODE="${RABBIT_NODE:-hopperstack@localhost}"
EPMD="${RABBIT_EPMD:-4489}"
DIST_PORT="${RABBIT_DIST_PORT:-$((PORT + 20000))}"

export BENCH_RABBIT_PORT="$PORT" BENCH_RABBIT_DIR="$DIR" BENCH_RABBIT_NODE="$NODE" \
  BENCH_RABBIT_EPMD="$EPMD" BENCH_RABBIT_DIST_PORT="$DIST_PORT" \
  BENCH_RABBIT_TIMEOUT="${RABBIT_TIMEOUT:-120}"

url() { printf 'amqp://guest:guest@127.0.0.1:%s/%%2F' "$PORT"; }

listening() {
  if command -v ss >/dev/null; then
    [[ -n "$(ss -Hltn "sport = :$PORT" 2>/dev/null)" ]]
  else
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null
  fi
}

# Up: the node's process runs and its AMQP port listens (rabbitmqctl status
# would boot an Erlang VM for seconds).
cmd_status() {
  local state pid=
  [[ -s "$DIR/rabbit.pid" ]] && pid="$(<"$DIR/rabbit.pid")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
    if listening; then state="running (pid $pid)"; else state="not listening (pid $pid)"; fi
  else
    state="stopped"
  fi
  printf 'rabbitmq: %-26s amqp 127.0.0.1:%s  node %s  data %s\n' "$state" "$PORT" "$NODE" "$DIR"
  [[ "$state" == running* ]]
}

case "${1:-}" in
  start | stop) exec "$NODE_SH" "$1" ;;
  status) cmd_status ;;
  url) url && echo ;;
  *)
    sed -n '/^# Usage:/,/^# Environment/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
