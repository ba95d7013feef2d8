#!/usr/bin/env bash
# cluster.sh - run a local three-node Kafka cluster for hopper's tests.
#
# Each node is a combined broker+controller (KRaft, static quorum) running
# from jars that Maven resolves into .cache/kafka/<version>/lib (see
# pom.xml); no binary distribution, no Docker. Topics default to
# replication factor 3 with min.insync.replicas=2, so one node may be down
# while acks=all producers keep working.
#
# Usage: cluster.sh COMMAND [ARGS]
#   fetch [--quiet]         resolve the jars for KAFKA_VERSION (idempotent;
#                           --quiet: say nothing if they are present)
#   start                   format storage once, start all nodes, wait until
#                           every node serves metadata for three brokers
#   stop                    stop all nodes (SIGTERM, then SIGKILL)
#   status                  per-node state; exit 0 only if all three run
#   logs N [LINES]          tail node N's server log
#   stop-node N             stop one node (SIGTERM, then SIGKILL)
#   kill-node N             SIGKILL one node, as a crash would
#   start-node N            start one node and wait until it serves
#   restart-node N          stop-node N, then start-node N
#   topics-create NAME [P]  create topic NAME, P partitions (default 3),
#                           rf 3, min.insync.replicas=2; no-op if it exists
#   tool CLASS [ARGS...]    run a Kafka tool class on the cached classpath,
#                           e.g. org.apache.kafka.tools.TopicCommand --list
#                           --bootstrap-server 127.0.0.1:9092
#   bootstrap               print the bootstrap server list
#
# Environment (defaults in brackets):
#   KAFKA_VERSION           Kafka release, 4.x or 3.9.x [4.1.1]
#   KAFKA_HOST              address every listener binds and advertises
#                           [127.0.0.1]
#   KAFKA_HOSTS             one address per node, nodes 1-3, instead of
#                           KAFKA_HOST for all ["$KAFKA_HOST" x 3]
#   KAFKA_NETNS             one network namespace per node (ip netns) to
#                           run the node in; each must reach the others'
#                           KAFKA_HOSTS, and this shell must reach them
#                           too [none: the current namespace]
#   KAFKA_TIMEOUTS          failure-detection profile: "fast" or
#                           "default" (Kafka's own values); see
#                           timeout_properties below and README.md
#                           [fast]
#   KAFKA_PROPERTIES        extra key=value properties (separated by
#                           blanks or newlines) for every node []
#   KAFKA_PROPERTIES_1..3   extra properties for node 1, 2 or 3 only;
#                           extras come last, so they override []
#   KAFKA_DATA              cluster state, logs and pid files; relative
#                           paths are taken from the repository root
#                           [.cache/kafka-cluster]
#   KAFKA_BROKER_PORTS      broker listener ports, nodes 1-3 [9092 9093 9094]
#   KAFKA_CONTROLLER_PORTS  controller ports, nodes 1-3 [19092 19093 19094]
#   KAFKA_HEAP              JVM heap flags per node [-Xms512m -Xmx512m]
#   KAFKA_START_TIMEOUT     seconds to wait for nodes to serve [120]
#   KAFKA_STOP_TIMEOUT      seconds to wait after SIGTERM [60]
#
# Works from any directory; needs java (17), mvn (for fetch) and kcat.

set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
readonly SCRIPT_DIR REPO_ROOT

readonly KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
readonly KAFKA_HOST="${KAFKA_HOST:-127.0.0.1}"
KAFKA_DATA="${KAFKA_DATA:-.cache/kafka-cluster}"
[[ "$KAFKA_DATA" == /* ]] || KAFKA_DATA="$REPO_ROOT/$KAFKA_DATA"
readonly KAFKA_DATA
read -r -a BROKER_PORTS <<<"${KAFKA_BROKER_PORTS:-9092 9093 9094}"
read -r -a CONTROLLER_PORTS <<<"${KAFKA_CONTROLLER_PORTS:-19092 19093 19094}"
read -r -a HOSTS <<<"${KAFKA_HOSTS:-$KAFKA_HOST $KAFKA_HOST $KAFKA_HOST}"
read -r -a NETNS <<<"${KAFKA_NETNS:-}"
readonly KAFKA_TIMEOUTS="${KAFKA_TIMEOUTS:-fast}"
readonly KAFKA_HEAP="${KAFKA_HEAP:--Xms512m -Xmx512m}"
readonly START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
readonly STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-60}"

readonly NODES=(1 2 3)

readonly CACHE_DIR="$REPO_ROOT/.cache/kafka/$KAFKA_VERSION"
readonly LIB_DIR="$CACHE_DIR/lib"
readonly LIB_STAMP="$CACHE_DIR/lib.complete"
readonly POM="$SCRIPT_DIR/pom.xml"

# Kafka 4.0 replaced reload4j with log4j2; everything that depends on the
# logging backend keys off this.
case "$KAFKA_VERSION" in
  3.9.*) readonly LOG_BACKEND=reload4j MVN_PROFILE=kafka-3.9 ;;
  4.*) readonly LOG_BACKEND=log4j2 MVN_PROFILE=kafka-4 ;;
  *)
    echo "cluster.sh: KAFKA_VERSION=$KAFKA_VERSION: only 3.9.x and 4.x are supported" >&2
    exit 2
    ;;
esac

readonly JVM_COMMON=(-server -Djava.awt.headless=true -XX:+ExitOnOutOfMemoryError)
# Like kafka-run-class.sh, minus GC logging and JMX.
readonly JVM_BROKER=(-XX:+UseG1GC -XX:MaxGCPauseMillis=20
  -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent)
# Short-lived admin tools: start fast, stay small.
readonly JVM_TOOL=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1)

log() { printf 'cluster.sh: %s\n' "$*"; }
die() {
  printf 'cluster.sh: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '/^# Usage:/,/^# Works from/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# --- per-node facts --------------------------------------------------------

check_node() {
  [[ "${1:-}" =~ ^[123]$ ]] || die "node must be 1, 2 or 3, not '${1:-}'"
}
node_dir() { printf '%s/node%s' "$KAFKA_DATA" "$1"; }
broker_port() { printf '%s' "${BROKER_PORTS[$1 - 1]}"; }
controller_port() { printf '%s' "${CONTROLLER_PORTS[$1 - 1]}"; }
node_host() { printf '%s' "${HOSTS[$1 - 1]}"; }

# Runs "${@:2}" inside node $1's network namespace, if nodes have one.
in_node_ns() {
  local n="$1"
  shift
  if ((${#NETNS[@]} > 0)); then
    ip netns exec "${NETNS[$n - 1]}" "$@"
  else
    "$@"
  fi
}

bootstrap_servers() {
  local n list=()
  for n in "${NODES[@]}"; do list+=("$(node_host "$n"):$(broker_port "$n")"); done
  local IFS=,
  printf '%s' "${list[*]}"
}

# Prints the pid of node $1's JVM if it runs. The command line is checked
# too, so a stale pid file whose pid was reused does not count.
node_pid() {
  local dir pid cmdline
  dir="$(node_dir "$1")"
  [[ -s "$dir/node.pid" ]] || return 1
  pid="$(<"$dir/node.pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
  [[ "$cmdline" == *kafka.Kafka*"$dir/node.properties"* ]] || return 1
  printf '%s' "$pid"
}

node_running() { node_pid "$1" >/dev/null; }

# True if node $1's broker port answers metadata requests listing all
# three brokers and a controller. kcat prints e.g.
#   "  broker 2 at 127.0.0.1:9093 (controller)".
node_serves() {
  local md
  md="$(kcat -L -b "$(node_host "$1"):$(broker_port "$1")" -m 3 2>/dev/null)" || return 1
  [[ "$(grep -cE '^ +broker [0-9]+ at ' <<<"$md")" -eq ${#NODES[@]} ]] &&
    grep -qE '^ +broker [0-9]+ at .*\(controller\)' <<<"$md"
}

# True if something listens on port $2 in node $1's network namespace.
port_in_use() {
  [[ -n "$(in_node_ns "$1" ss -Htln "( sport = :$2 )" 2>/dev/null)" ]]
}

show_log_tail() {
  local dir f
  dir="$(node_dir "$1")"
  for f in "$dir/console.log" "$dir/server.log"; do
    [[ -s "$f" ]] || continue
    printf '\n----- node %s: last 40 lines of %s -----\n' "$1" "$f" >&2
    tail -n 40 "$f" >&2
  done
}

describe_node() {
  local pid state
  if pid="$(node_pid "$1")"; then state="running (pid $pid)"; else state="stopped"; fi
  printf 'node %s: %-20s broker %s:%s  controller %s:%s  dir %s\n' "$1" "$state" \
    "$(node_host "$1")" "$(broker_port "$1")" "$(node_host "$1")" "$(controller_port "$1")" \
    "$(node_dir "$1")"
}

# --- jars --------------------------------------------------------------------

require() {
  command -v "$1" >/dev/null || die "$1 not found; run scripts/setup.sh ($2)"
}

# The stamp holds the pom's checksum, so editing the pom refetches.
jars_complete() {
  [[ -f "$LIB_STAMP" && -d "$LIB_DIR" ]] &&
    [[ "$(<"$LIB_STAMP")" == "$(sha256sum <"$POM" | cut -d' ' -f1)" ]]
}

cmd_fetch() {
  local quiet=false
  [[ "${1:-}" == --quiet ]] && quiet=true
  if jars_complete; then
    $quiet || log "Kafka $KAFKA_VERSION jars present in $LIB_DIR"
    return 0
  fi
  require mvn "Debian package maven"
  mkdir -p "$CACHE_DIR"
  # Parallel fetches would share the temporary directory.
  exec 8>"$CACHE_DIR/.fetch.lock"
  flock -w 600 8 || die "timed out waiting for another fetch of $KAFKA_VERSION"
  if jars_complete; then
    exec 8>&-
    $quiet || log "Kafka $KAFKA_VERSION jars present in $LIB_DIR"
    return 0
  fi
  log "resolving Kafka $KAFKA_VERSION ($LOG_BACKEND) with Maven into $LIB_DIR"
  local tmp="$CACHE_DIR/lib.tmp"
  rm -rf "$tmp"
  # Maven's output goes to a log: Debian's 3.8.7 litters even -q output
  # with colour escapes, and the full log is what one needs on failure.
  if ! mvn -B --no-transfer-progress -f "$POM" -P"$MVN_PROFILE" \
    -Dkafka.version="$KAFKA_VERSION" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$CACHE_DIR/fetch.log" 2>&1; then
    tail -n 30 "$CACHE_DIR/fetch.log" >&2
    die "mvn failed to resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION; see $CACHE_DIR/fetch.log"
  fi
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] ||
    die "mvn finished but $tmp has no kafka_2.13-$KAFKA_VERSION.jar"
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  sha256sum <"$POM" | cut -d' ' -f1 >"$LIB_STAMP"
  exec 8>&-
  log "Kafka $KAFKA_VERSION: $(find "$LIB_DIR" -name '*.jar' | wc -l) jars in $LIB_DIR"
}

# Also writes the logging config for short-lived tools (WARN to stderr, so
# their stdout stays parseable). Replaced only when it changed, and by
# rename, because tools may be running from it.
ensure_jars() {
  jars_complete || cmd_fetch
  require java "Debian package openjdk-17-jdk-headless"
  local cfg=log4j2.xml tmp="$CACHE_DIR/tools.$$"
  [[ "$LOG_BACKEND" == log4j2 ]] || cfg=log4j.properties
  mkdir -p "$tmp" "$CACHE_DIR/tools"
  write_log_config "$tmp" WARN stderr
  cmp -s "$tmp/$cfg" "$CACHE_DIR/tools/$cfg" || mv "$tmp/$cfg" "$CACHE_DIR/tools/$cfg"
  rm -rf "$tmp"
}

# Runs Kafka class $1 with arguments "${@:2}" as a short-lived tool.
run_tool() {
  java "${JVM_COMMON[@]}" "${JVM_TOOL[@]}" "$(log_config_flag "$CACHE_DIR/tools")" \
    -cp "$LIB_DIR/*" "$@"
}

# --- generated configuration --------------------------------------------------

write_node_config() {
  local n="$1" dir voters="" v
  dir="$(node_dir "$n")"
  for v in "${NODES[@]}"; do
    voters+="${voters:+,}$v@$(node_host "$v"):$(controller_port "$v")"
  done
  local host extra extra_var="KAFKA_PROPERTIES_$n"
  host="$(node_host "$n")"
  cat >"$dir/node.properties" <<EOF
# Generated by contrib/kafka/cluster.sh on each start; edits are lost.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://$host:$(broker_port "$n"),CONTROLLER://$host:$(controller_port "$n")
advertised.listeners=PLAINTEXT://$host:$(broker_port "$n")
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$dir/data

# Durability as hopper expects it: acks=all waits for two in-sync copies.
num.partitions=3
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
auto.create.topics.enable=false
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
group.initial.rebalance.delay.ms=0

# hopper accepts 8 MiB bodies; leave room for headers and batching.
message.max.bytes=16777216
replica.fetch.max.bytes=16777216

$(timeout_properties)
EOF
  # Extras last: Kafka keeps the last value of a repeated key.
  for extra in KAFKA_PROPERTIES "$extra_var"; do
    [[ -n "${!extra:-}" ]] || continue
    printf '\n# From %s\n' "$extra"
    tr -s ' \t' '\n' <<<"${!extra}" | grep -v '^$'
  done >>"$dir/node.properties"
}

# How fast the cluster notices a dead or cut-off node. Kafka's defaults
# suit data centres with long GC pauses; "fast" fences a dead broker after
# 3 s instead of 9 s and drops a lagging follower from the ISR after 10 s
# instead of 30 s. tests/faults measured both under load on two busy cores:
# no false fencing, election or ISR shrink with these values, but false
# controller elections with controller.quorum.fetch.timeout.ms=1000, so the
# quorum timeouts stay at Kafka's. See README.md and tests/faults/RESULTS.md.
timeout_properties() {
  local names=(broker.heartbeat.interval.ms broker.session.timeout.ms
    controller.quorum.election.timeout.ms controller.quorum.fetch.timeout.ms
    replica.lag.time.max.ms)
  local fast=(500 3000 1000 2000 10000) default=(2000 9000 1000 2000 30000) i
  local -n values="$KAFKA_TIMEOUTS"
  printf '# Failure detection: KAFKA_TIMEOUTS=%s (Kafka defaults: %s).\n' \
    "$KAFKA_TIMEOUTS" "${default[*]}"
  for i in "${!names[@]}"; do printf '%s=%s\n' "${names[i]}" "${values[i]}"; done
}

write_log_config() {
  local dir="$1" level="$2" target="$3"
  if [[ "$LOG_BACKEND" == log4j2 ]]; then
    local appender
    if [[ "$target" == stderr ]]; then
      appender='<Console name="out" target="SYSTEM_ERR">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>'
    else
      appender="<RollingFile name=\"out\" fileName=\"$target\" filePattern=\"$target.%i\">
      <PatternLayout pattern=\"[%d] %p %m (%c)%n\"/>
      <SizeBasedTriggeringPolicy size=\"50MB\"/>
      <DefaultRolloverStrategy max=\"3\"/>
    </RollingFile>"
    fi
    cat >"$dir/log4j2.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by contrib/kafka/cluster.sh; edits are lost. log4j2's own
     shutdown hook would close the log while Kafka is still shutting down. -->
<Configuration status="warn" shutdownHook="disable">
  <Appenders>
    $appender
  </Appenders>
  <Loggers>
    <Root level="$level"><AppenderRef ref="out"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
  </Loggers>
</Configuration>
EOF
  else
    {
      echo '# Generated by contrib/kafka/cluster.sh; edits are lost.'
      echo "log4j.rootLogger=$level, out"
      if [[ "$target" == stderr ]]; then
        echo 'log4j.appender.out=org.apache.log4j.ConsoleAppender'
        echo 'log4j.appender.out.Target=System.err'
      else
        echo 'log4j.appender.out=org.apache.log4j.RollingFileAppender'
        echo "log4j.appender.out.File=$target"
        echo 'log4j.appender.out.MaxFileSize=50MB'
        echo 'log4j.appender.out.MaxBackupIndex=3'
      fi
      echo 'log4j.appender.out.layout=org.apache.log4j.PatternLayout'
      echo 'log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n'
      echo 'log4j.logger.kafka.request.logger=WARN'
    } >"$dir/log4j.properties"
  fi
}

# JVM flag that points the logging backend at the file write_log_config wrote.
log_config_flag() {
  if [[ "$LOG_BACKEND" == log4j2 ]]; then
    printf -- '-Dlog4j2.configurationFile=%s/log4j2.xml' "$1"
  else
    printf -- '-Dlog4j.configuration=file:%s/log4j.properties' "$1"
  fi
}

# --- data directory -----------------------------------------------------------

# Storage formatted by one Kafka release is not meant for another; refuse
# rather than fail somewhere inside the JVM.
check_data_version() {
  local marker="$KAFKA_DATA/kafka.version"
  [[ -f "$marker" ]] || return 0
  local formatted
  formatted="$(<"$marker")"
  [[ "$formatted" == "$KAFKA_VERSION" ]] ||
    die "$KAFKA_DATA holds a Kafka $formatted cluster; set KAFKA_VERSION=$formatted," \
      "choose another KAFKA_DATA, or remove $KAFKA_DATA"
}

# The cluster id is generated once per KAFKA_DATA and kept in it. It is
# not a constant: two clusters sharing an id and, by mistake, ports join
# each other's quorum instead of failing.
cluster_id() {
  local f="$KAFKA_DATA/cluster.id" id=""
  if [[ ! -s "$f" ]]; then
    # Data formatted before cluster.id existed already carries an id.
    id="$(cat "$KAFKA_DATA"/node*/data/meta.properties 2>/dev/null |
      sed -n 's/^cluster\.id=//p' | head -n 1)" || true
    # 16 random bytes in base64url, like Uuid.randomUuid(); a leading '-'
    # would read as an option.
    while [[ -z "$id" || "$id" == -* ]]; do
      id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    done
    printf '%s\n' "$id" >"$f"
  fi
  printf '%s' "$(<"$f")"
}

# Serialises cluster.sh runs that change the cluster: fd 9 locks KAFKA_DATA,
# fd 7 the first broker port, so that clusters in different directories
# cannot both find the ports free and then fight over them.
lock_cluster() {
  local wait=$((START_TIMEOUT + STOP_TIMEOUT))
  mkdir -p "$KAFKA_DATA"
  exec 9>"$KAFKA_DATA/.lock"
  flock -w "$wait" 9 || die "timed out waiting for another cluster.sh using $KAFKA_DATA"
  exec 7>"${TMPDIR:-/tmp}/hopper-kafka-$(node_host 1)-$(broker_port 1).lock"
  flock -w "$wait" 7 || die "timed out waiting for another cluster.sh using port $(broker_port 1)"
}

# Formats node $1's storage unless it already is. With a static quorum
# (controller.quorum.voters) plain `format` is right for 3.9 and 4.x;
# --standalone and --initial-controllers are for dynamic quorums only.
format_node() {
  local dir
  dir="$(node_dir "$1")"
  [[ -f "$dir/data/meta.properties" ]] && return 0
  run_tool kafka.tools.StorageTool format -t "$(cluster_id)" -c "$dir/node.properties" \
    >"$dir/format.log" 2>&1 || {
    cat "$dir/format.log" >&2
    die "formatting node $1 failed"
  }
  printf '%s\n' "$KAFKA_VERSION" >"$KAFKA_DATA/kafka.version"
}

# --- starting and stopping ------------------------------------------------------

launch_node() {
  local n="$1" dir port
  dir="$(node_dir "$n")"
  for port in "$(broker_port "$n")" "$(controller_port "$n")"; do
    ! port_in_use "$n" "$port" ||
      die "node $n: port $port is in use by another process (a cluster with another KAFKA_DATA?)"
  done
  mkdir -p "$dir"
  write_node_config "$n"
  write_log_config "$dir" INFO "$dir/server.log"
  format_node "$n"

  rm -f "$dir/node.pid"
  printf '\n===== %s starting node %s (Kafka %s)\n' "$(date -Is)" "$n" "$KAFKA_VERSION" \
    >>"$dir/console.log"
  # The inner shell records its own pid and then becomes the JVM, so the
  # pid file is right whether or not setsid forks. The lock fds 7 and 9
  # must not leak into the daemon.
  local netns=()
  ((${#NETNS[@]} == 0)) || netns=(ip netns exec "${NETNS[$n - 1]}")
  # shellcheck disable=SC2016,SC2086
  nohup setsid "${netns[@]}" bash -c 'echo $$ >"$0"; exec "$@"' "$dir/node.pid" \
    java "${JVM_COMMON[@]}" "${JVM_BROKER[@]}" $KAFKA_HEAP \
    "$(log_config_flag "$dir")" -Dkafka.logs.dir="$dir" \
    -cp "$LIB_DIR/*" kafka.Kafka "$dir/node.properties" \
    </dev/null >>"$dir/console.log" 2>&1 7>&- 9>&- &

  local deadline=$((SECONDS + 10))
  until node_running "$n"; do
    ((SECONDS < deadline)) || {
      show_log_tail "$n"
      die "node $n: JVM did not come up"
    }
    sleep 0.1
  done
}

# Waits until every node in "$@" serves metadata for the whole cluster. A
# node that dies meanwhile fails at once instead of at the deadline.
wait_serving() {
  local deadline=$((SECONDS + START_TIMEOUT)) n pending
  while :; do
    pending=()
    for n in "$@"; do
      if ! node_running "$n"; then
        show_log_tail "$n"
        die "node $n exited during startup"
      fi
      node_serves "$n" || pending+=("$n")
    done
    ((${#pending[@]} == 0)) && return 0
    if ((SECONDS >= deadline)); then
      for n in "${pending[@]}"; do show_log_tail "$n"; done
      die "node(s) ${pending[*]} not serving after ${START_TIMEOUT}s; see above," \
        "then run '$0 stop'"
    fi
    sleep 1
  done
}

running_count() {
  local n count=0
  for n in "${NODES[@]}"; do node_running "$n" && count=$((count + 1)); done
  echo "$count"
}

# SIGTERM to every node in "$@" at once, so that their controlled shutdowns
# overlap while the controller quorum still exists; SIGKILL to any node
# still alive at the deadline.
#
# A broker's controlled shutdown must be approved by the active controller
# and Kafka waits up to 5 minutes for that. When the other nodes finish
# first, the last node has no controller quorum left and would sit out
# those minutes, so it gets only QUORUM_GRACE seconds before SIGKILL.
readonly QUORUM_GRACE=15
stop_nodes() {
  local n pid deadline quorum_lost=-1 alive=()
  for n in "$@"; do
    if pid="$(node_pid "$n")"; then
      kill -TERM "$pid" 2>/dev/null || true
      alive+=("$n")
    fi
  done
  ((${#alive[@]} > 0)) || return 0
  log "stopping node(s) ${alive[*]}"

  deadline=$((SECONDS + STOP_TIMEOUT))
  while :; do
    local still=()
    for n in "${alive[@]}"; do node_running "$n" && still+=("$n"); done
    alive=("${still[@]}")
    ((${#alive[@]} == 0)) && break
    if ((quorum_lost < 0 && $(running_count) < ${#NODES[@]} / 2 + 1)); then
      quorum_lost=$SECONDS
    fi
    if ((quorum_lost >= 0 && SECONDS - quorum_lost >= QUORUM_GRACE)); then
      log "node(s) ${alive[*]} cannot finish a controlled shutdown without a" \
        "controller quorum; sending SIGKILL"
      kill_nodes "${alive[@]}"
      break
    fi
    if ((SECONDS >= deadline)); then
      log "node(s) ${alive[*]} ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
      kill_nodes "${alive[@]}"
      break
    fi
    sleep 0.2
  done
  for n in "$@"; do rm -f "$(node_dir "$n")/node.pid"; done
}

kill_nodes() {
  local n pid deadline
  for n in "$@"; do
    if pid="$(node_pid "$n")"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  deadline=$((SECONDS + 10))
  for n in "$@"; do
    while node_running "$n"; do
      ((SECONDS < deadline)) || die "node $n survived SIGKILL"
      sleep 0.1
    done
    rm -f "$(node_dir "$n")/node.pid"
  done
}

# --- commands ---------------------------------------------------------------------

cmd_start() {
  require kcat "Debian package kcat"
  lock_cluster
  check_data_version
  local n missing=()
  for n in "${NODES[@]}"; do node_running "$n" || missing+=("$n"); done
  if ((${#missing[@]} == 0)) && node_serves 1 && node_serves 2 && node_serves 3; then
    log "Kafka $KAFKA_VERSION cluster already running"
  else
    ensure_jars
    for n in "${missing[@]}"; do launch_node "$n"; done
    log "waiting up to ${START_TIMEOUT}s for Kafka $KAFKA_VERSION to serve"
    wait_serving "${NODES[@]}"
    log "Kafka $KAFKA_VERSION cluster is up"
  fi
  for n in "${NODES[@]}"; do describe_node "$n"; done
  echo "bootstrap: $(bootstrap_servers)"
}

cmd_stop() {
  lock_cluster
  stop_nodes "${NODES[@]}"
  log "all nodes stopped"
}

cmd_status() {
  local n up=0
  for n in "${NODES[@]}"; do
    describe_node "$n"
    node_running "$n" && up=$((up + 1))
  done
  ((up == ${#NODES[@]}))
}

cmd_logs() {
  check_node "${1:-}"
  local lines="${2:-100}" f
  [[ "$lines" =~ ^[0-9]+$ ]] || die "LINES must be a number, not '$lines'"
  f="$(node_dir "$1")/server.log"
  [[ -f "$f" ]] || die "node $1 has no log yet ($f)"
  tail -n "$lines" "$f"
}

cmd_stop_node() {
  check_node "${1:-}"
  lock_cluster
  stop_nodes "$1"
  describe_node "$1"
}

cmd_kill_node() {
  check_node "${1:-}"
  lock_cluster
  node_running "$1" || die "node $1 is not running"
  kill_nodes "$1"
  describe_node "$1"
}

# Starts node $1 and waits until it serves metadata for all three brokers,
# so the other two must be up for this to succeed.
cmd_start_node() {
  check_node "${1:-}"
  require kcat "Debian package kcat"
  lock_cluster
  check_data_version
  if ! node_running "$1"; then
    ensure_jars
    launch_node "$1"
  fi
  wait_serving "$1"
  describe_node "$1"
}

cmd_restart_node() {
  check_node "${1:-}"
  cmd_stop_node "$1"
  cmd_start_node "$1"
}

cmd_tool() {
  [[ $# -ge 1 ]] || die "usage: $0 tool CLASS [ARGS...]"
  ensure_jars
  run_tool "$@"
}

cmd_topics_create() {
  local name="${1:-}" partitions="${2:-3}"
  [[ -n "$name" ]] || die "usage: $0 topics-create NAME [PARTITIONS]"
  [[ "$partitions" =~ ^[1-9][0-9]*$ ]] || die "PARTITIONS must be a positive number"
  cmd_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(bootstrap_servers)" \
    --create --if-not-exists --topic "$name" --partitions "$partitions" \
    --replication-factor 3 --config min.insync.replicas=2
}

main() {
  ((${#BROKER_PORTS[@]} == 3 && ${#CONTROLLER_PORTS[@]} == 3)) ||
    die "KAFKA_BROKER_PORTS and KAFKA_CONTROLLER_PORTS need three ports each"
  ((${#HOSTS[@]} == 3)) || die "KAFKA_HOSTS needs three addresses"
  ((${#NETNS[@]} == 0 || ${#NETNS[@]} == 3)) || die "KAFKA_NETNS needs three namespaces (or none)"
  [[ "$KAFKA_TIMEOUTS" == fast || "$KAFKA_TIMEOUTS" == default ]] ||
    die "KAFKA_TIMEOUTS must be fast or default, not '$KAFKA_TIMEOUTS'"
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    fetch) cmd_fetch "$@" ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    logs) cmd_logs "$@" ;;
    stop-node) cmd_stop_node "$@" ;;
    kill-node) cmd_kill_node "$@" ;;
    start-node) cmd_start_node "$@" ;;
    restart-node) cmd_restart_node "$@" ;;
    topics-create) cmd_topics_create "$@" ;;
    tool) cmd_tool "$@" ;;
    bootstrap) bootstrap_servers && echo ;;
    *) usage ;;
  esac
}

main "$@"
