#!/usr/bin/env bash
# connect.sh - Kafka Connect with a RabbitMQ source connector: what users
# would otherwise run to move a RabbitMQ queue into Kafka, as the baseline
# of the bridge benchmark (tests/bench/bridge.py).
#
# Connect 3.8.x and jcustenborder's kafka-connect-rabbitmq (0.0.2.16) come
# from Maven Central (tests/bench/connect-pom.xml) into .cache/connect/lib;
# nothing is built. One standalone worker (ConnectStandalone, offsets in a
# file) runs as a plain background process with a pid file, one task,
# draining one queue into one topic. Its records carry the message body as
# is (the ExtractField$Value transform on the connector's `body` field and
# the ByteArrayConverter) and no key (ExtractField$Key on the absent
# messageId). The worker's producer keeps Connect's own defaults (acks=all,
# one request in flight per connection, linger.ms 0); the connector acks
# RabbitMQ from commitRecord, once Kafka acked the record.
#
# Usage: connect.sh COMMAND
#   fetch     resolve the jars (idempotent; the stamp holds the pom's hash)
#   start     write worker.properties and source.properties, start the
#             worker, wait until its task runs
#   stop      SIGTERM, then SIGKILL after CONNECT_STOP_TIMEOUT
#   kill      SIGKILL at once, as a crash would (the loss scenario)
#   status    exit 0 if the worker runs (prints its pid)
#   pid       print the worker's pid, if it runs
#   version   print the Connect and connector versions
#
# Environment (defaults in brackets):
#   CONNECT_RUN         properties, offsets, logs, pid file
#                       [.cache/connect/run]
#   CONNECT_BOOTSTRAP   Kafka bootstrap servers [contrib/kafka/cluster.sh
#                       bootstrap, which reads KAFKA_BROKER_PORTS]
#   CONNECT_RABBIT_PORT RabbitMQ's AMQP port on 127.0.0.1
#                       [$BENCH_RABBIT_PORT, else 5972]
#   CONNECT_QUEUE       queue to drain (must exist) [bench-bridge]
#   CONNECT_TOPIC       Kafka topic to write [bench-bridge-connect]
#   CONNECT_PREFETCH    rabbitmq.prefetch.count (the connector sets it after
#                       basic.consume, so RabbitMQ does not apply it) [1000]
#   CONNECT_REST_PORT   the worker's REST listener on 127.0.0.1 [18083]
#   CONNECT_HEAP        JVM heap flags, connect-standalone.sh's defaults
#                       [-Xms256m -Xmx2g]
#   CONNECT_START_TIMEOUT seconds to wait for the task to run [120]
#   CONNECT_STOP_TIMEOUT  seconds to wait after SIGTERM [30]

set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
readonly SCRIPT_DIR REPO_ROOT
readonly POM="$SCRIPT_DIR/connect-pom.xml"
readonly CACHE_DIR="$REPO_ROOT/.cache/connect"
readonly LIB_DIR="$CACHE_DIR/lib"
readonly LIB_STAMP="$CACHE_DIR/lib.complete"
RUN="${CONNECT_RUN:-.cache/connect/run}"
[[ "$RUN" == /* ]] || RUN="$REPO_ROOT/$RUN"
readonly RUN
readonly PID_FILE="$RUN/worker.pid"
readonly RABBIT_PORT="${CONNECT_RABBIT_PORT:-${BENCH_RABBIT_PORT:-5972}}"
readonly QUEUE="${CONNECT_QUEUE:-bench-bridge}"
readonly TOPIC="${CONNECT_TOPIC:-bench-bridge-connect}"
readonly PREFETCH="${CONNECT_PREFETCH:-1000}"
readonly REST_PORT="${CONNECT_REST_PORT:-18083}"
readonly HEAP="${CONNECT_HEAP:--Xms256m -Xmx2g}"
readonly START_TIMEOUT="${CONNECT_START_TIMEOUT:-120}"
readonly STOP_TIMEOUT="${CONNECT_STOP_TIMEOUT:-30}"
readonly NAME=rabbitmq-source
# As kafka-run-class.sh starts Connect, minus GC logging and JMX.
readonly JVM=(-server -Djava.awt.headless=true -XX:+UseG1GC -XX:MaxGCPauseMillis=20
  -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent)

log() { printf 'connect.sh: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

usage() {
  sed -n '/^# Usage:/,/^# Environment/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# --- jars --------------------------------------------------------------------

jars_complete() {
  [[ -f "$LIB_STAMP" && -d "$LIB_DIR" ]] &&
    [[ "$(<"$LIB_STAMP")" == "$(sha256sum <"$POM" | cut -d' ' -f1)" ]]
}

ensure_tools() {
  local missing=()
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]}"
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq || die "apt-get update failed"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed"
}

cmd_fetch() {
  jars_complete && return 0
  ensure_tools
  mkdir -p "$CACHE_DIR"
  exec 8>"$CACHE_DIR/.fetch.lock"
  flock -w 600 8 || die "timed out waiting for another fetch"
  if jars_complete; then
    exec 8>&-
    return 0
  fi
  log "resolving Kafka Connect and the RabbitMQ connector with Maven into $LIB_DIR"
  local tmp="$CACHE_DIR/lib.tmp"
  rm -rf "$tmp"
  # An absolute output directory: Maven takes relative ones from the pom's.
  if ! timeout 900 mvn -B --no-transfer-progress -f "$POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$CACHE_DIR/fetch.log" 2>&1; then
    tail -n 30 "$CACHE_DIR/fetch.log" >&2
    die "mvn failed; see $CACHE_DIR/fetch.log"
  fi
  compgen -G "$tmp/connect-runtime-*.jar" >/dev/null &&
    compgen -G "$tmp/kafka-connect-rabbitmq-*.jar" >/dev/null ||
    die "mvn finished but $tmp lacks connect-runtime or kafka-connect-rabbitmq"
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  sha256sum <"$POM" | cut -d' ' -f1 >"$LIB_STAMP"
  exec 8>&-
  log "$(find "$LIB_DIR" -name '*.jar' | wc -l) jars in $LIB_DIR"
}

# --- the worker --------------------------------------------------------------

# The worker's pid if it runs; the command line is checked so that a stale
# pid file whose pid was reused does not count.
worker_pid() {
  [[ -s "$PID_FILE" ]] || return 1
  local pid cmdline
  pid="$(<"$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
  [[ "$cmdline" == *ConnectStandalone*"$RUN/worker.properties"* ]] || return 1
  printf '%s' "$pid"
}

bootstrap() {
  if [[ -n "${CONNECT_BOOTSTRAP:-}" ]]; then
    printf '%s' "$CONNECT_BOOTSTRAP"
  else
    "$REPO_ROOT/contrib/kafka/cluster.sh" bootstrap
  fi
}

write_properties() {
  local servers
  servers="$(bootstrap)"
  [[ -n "$servers" ]] || die "no bootstrap servers"
  cat >"$RUN/worker.properties" <<EOF
# Written by tests/bench/connect.sh; edits are lost.
bootstrap.servers=$servers
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.converters.ByteArrayConverter
offset.storage.file.filename=$RUN/connect.offsets
offset.flush.interval.ms=10000
listeners=http://127.0.0.1:$REST_PORT
rest.advertised.host.name=127.0.0.1
EOF
  cat >"$RUN/source.properties" <<EOF
# Written by tests/bench/connect.sh; edits are lost.
name=$NAME
connector.class=com.github.jcustenborder.kafka.connect.rabbitmq.RabbitMQSourceConnector
tasks.max=1
kafka.topic=$TOPIC
rabbitmq.queue=$QUEUE
rabbitmq.host=127.0.0.1
rabbitmq.port=$RABBIT_PORT
rabbitmq.username=guest
rabbitmq.password=guest
rabbitmq.prefetch.count=$PREFETCH
transforms=body,key
transforms.body.type=org.apache.kafka.connect.transforms.ExtractField\$Value
transforms.body.field=body
transforms.key.type=org.apache.kafka.connect.transforms.ExtractField\$Key
transforms.key.field=messageId
EOF
  cat >"$RUN/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$RUN/connect.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

cmd_start() {
  cmd_fetch
  mkdir -p "$RUN"
  local pid
  if pid="$(worker_pid)"; then
    log "worker already runs (pid $pid)"
    return 0
  fi
  if [[ -n "$(ss -Htln "( sport = :$REST_PORT )" 2>/dev/null)" ]]; then
    die "port $REST_PORT is taken; set CONNECT_REST_PORT"
  fi
  write_properties
  # Each start has its own log, so the wait below reads only this start's.
  : >"$RUN/connect.log"
  log "starting Connect (queue $QUEUE -> topic $TOPIC, REST 127.0.0.1:$REST_PORT)"
  # shellcheck disable=SC2086 # HEAP is a list of flags
  setsid nohup java $HEAP "${JVM[@]}" -Dlog4j.configuration="file:$RUN/log4j.properties" \
    -cp "$LIB_DIR/*" org.apache.kafka.connect.cli.ConnectStandalone \
    "$RUN/worker.properties" "$RUN/source.properties" >>"$RUN/console.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$PID_FILE"
  local deadline=$((SECONDS + START_TIMEOUT))
  until grep -q "WorkerSourceTask{id=$NAME-0} Source task finished initialization and start" \
    "$RUN/connect.log" 2>/dev/null; do
    # kill -0, not worker_pid: until the fork has exec'd java its command
    # line is this script's.
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$RUN/connect.log" "$RUN/console.log" >&2 || true
      die "the worker exited during startup"
    fi
    if grep -q "WorkerSourceTask{id=$NAME-0} Task threw an uncaught" "$RUN/connect.log"; then
      tail -n 30 "$RUN/connect.log" >&2
      kill -KILL "$pid" 2>/dev/null || true
      die "the connector's task failed"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 30 "$RUN/connect.log" >&2 || true
      kill -KILL "$pid" 2>/dev/null || true
      die "the task did not run within ${START_TIMEOUT}s"
    fi
    sleep 0.2
  done
  log "worker $(worker_pid) runs its task"
}

cmd_stop() {
  local pid
  if ! pid="$(worker_pid)"; then
    rm -f "$PID_FILE"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "worker $pid still runs ${STOP_TIMEOUT}s after SIGTERM; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$PID_FILE"
}

cmd_kill() {
  local pid
  pid="$(worker_pid)" || die "the worker does not run"
  kill -KILL "$pid"
  local deadline=$((SECONDS + 10))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  rm -f "$PID_FILE"
}

cmd_version() {
  local f c=? r=?
  for f in "$LIB_DIR"/connect-runtime-*.jar; do
    [[ -e "$f" ]] && c="${f##*/connect-runtime-}" && c="${c%.jar}"
  done
  for f in "$LIB_DIR"/kafka-connect-rabbitmq-*.jar; do
    [[ -e "$f" ]] && r="${f##*/kafka-connect-rabbitmq-}" && r="${r%.jar}"
  done
  printf 'Kafka Connect %s, kafka-connect-rabbitmq %s\n' "$c" "$r"
}

case "${1:-}" in
  fetch) cmd_fetch ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  kill) cmd_kill ;;
  status) worker_pid ;;
  pid) worker_pid ;;
  version) cmd_version ;;
  *) usage ;;
esac
