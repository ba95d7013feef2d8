#!/usr/bin/env bash
# registry.sh - run a local schema registry for hopper's stack and tests.
#
# Apicurio Registry 2.4.2.Final, assembled from Maven Central jars by the
# Maven project next to this script (pom.xml, README.md) into
# .cache/registry/app, runs as one JVM on a loopback address. Clients use
# its Confluent-compatible API under /apis/ccompat/v7. Schemas are kept in
# an H2 database file, so they survive a restart.
#
# Usage: registry.sh COMMAND [ARGS]
#   fetch [--quiet]   build the registry with Maven unless the build in
#                     .cache/registry/app matches pom.xml and src/
#                     (--quiet: say nothing if it does)
#   start             start the registry (building it first if needed) and
#                     wait until its API answers; does nothing if it runs
#   stop              stop it (SIGTERM, then SIGKILL after the deadline)
#   status            address, pid and whether the API answers; exit 0
#                     only if it does
#   url               print the Confluent-compatible API's base URL
#   logs [LINES]      tail the registry's log
#
# Environment (defaults in brackets):
#   REGISTRY_HOST           address the HTTP listener binds [127.0.0.1]
#   REGISTRY_PORT           HTTP port [8081]
#   REGISTRY_DATA           database, logs and pid file; relative paths are
#                           taken from the repository root
#                           [.cache/registry/data]
#   REGISTRY_HEAP           JVM heap flags [-Xmx256m]
#   REGISTRY_PROPERTIES     extra key=value system properties (Quarkus's or
#                           Apicurio's, separated by blanks or newlines);
#                           they come last, so they override []
#   REGISTRY_START_TIMEOUT  seconds to wait for the API to answer [120]
#   REGISTRY_STOP_TIMEOUT   seconds to wait after SIGTERM [30]
#
# Works from any directory; needs java (17), mvn (for fetch) and curl.

set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
readonly SCRIPT_DIR REPO_ROOT

readonly REGISTRY_HOST="${REGISTRY_HOST:-127.0.0.1}"
readonly REGISTRY_PORT="${REGISTRY_PORT:-8081}"
REGISTRY_DATA="${REGISTRY_DATA:-.cache/registry/data}"
[[ "$REGISTRY_DATA" == /* ]] || REGISTRY_DATA="$REPO_ROOT/$REGISTRY_DATA"
readonly REGISTRY_DATA
readonly REGISTRY_HEAP="${REGISTRY_HEAP:--Xmx256m}"
readonly START_TIMEOUT="${REGISTRY_START_TIMEOUT:-120}"
readonly STOP_TIMEOUT="${REGISTRY_STOP_TIMEOUT:-30}"

# What pom.xml builds; keep in step with its apicurio.version.
readonly APICURIO_VERSION=2.4.2.Final
readonly RUNNER_NAME="apicurio-registry-$APICURIO_VERSION-runner.jar"
readonly CCOMPAT_PATH=/apis/ccompat/v7

readonly CACHE_DIR="$REPO_ROOT/.cache/registry"
readonly APP_DIR="$CACHE_DIR/app"
readonly APP_STAMP="$CACHE_DIR/app.complete"
readonly RUNNER="$APP_DIR/$RUNNER_NAME"

readonly DB_DIR="$REGISTRY_DATA/db"
readonly PID_FILE="$REGISTRY_DATA/registry.pid"
readonly LOG_FILE="$REGISTRY_DATA/registry.log"
readonly CONSOLE_LOG="$REGISTRY_DATA/console.log"

log() { printf 'registry.sh: %s\n' "$*"; }
die() {
  printf 'registry.sh: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '/^# Usage:/,/^# Works from/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

require() {
  command -v "$1" >/dev/null || die "$1 not found; run scripts/setup.sh ($2)"
}

base_url() { printf 'http://%s:%s' "$REGISTRY_HOST" "$REGISTRY_PORT"; }
api_url() { printf '%s%s' "$(base_url)" "$CCOMPAT_PATH"; }

# --- the build ------------------------------------------------------------------

# Checksum of everything the build depends on, so that editing the pom or
# the supplied class rebuilds.
build_inputs_sum() {
  (cd "$SCRIPT_DIR" && find pom.xml src -type f | LC_ALL=C sort | xargs sha256sum) |
    sha256sum | cut -d' ' -f1
}

app_complete() {
  [[ -f "$APP_STAMP" && -f "$RUNNER" ]] &&
    [[ "$(<"$APP_STAMP")" == "$(build_inputs_sum)" ]]
}

cmd_fetch() {
  local quiet=false
  [[ "${1:-}" == --quiet ]] && quiet=true
  if app_complete; then
    $quiet || log "Apicurio Registry $APICURIO_VERSION built in $APP_DIR"
    return 0
  fi
  require mvn "Debian package maven"
  require java "Debian package openjdk-17-jdk-headless"
  mkdir -p "$CACHE_DIR"
  # Parallel builds would share the temporary directory.
  exec 8>"$CACHE_DIR/.fetch.lock"
  flock -w 900 8 || die "timed out waiting for another build of the registry"
  if app_complete; then
    exec 8>&-
    $quiet || log "Apicurio Registry $APICURIO_VERSION built in $APP_DIR"
    return 0
  fi
  log "building Apicurio Registry $APICURIO_VERSION with Maven into $APP_DIR" \
    "(about a minute and 210 MB of jars the first time)"
  local tmp="$CACHE_DIR/build.tmp" started=$EPOCHREALTIME
  rm -rf "$tmp"
  # Maven's output goes to a log: Debian's 3.8.7 litters even -q output
  # with colour escapes, and the full log is what one needs on failure.
  if ! mvn -B --no-transfer-progress -f "$SCRIPT_DIR/pom.xml" \
    -Dhopper.registry.build="$tmp" package >"$CACHE_DIR/build.log" 2>&1; then
    tail -n 30 "$CACHE_DIR/build.log" >&2
    die "mvn failed to build the registry; see $CACHE_DIR/build.log"
  fi
  [[ -f "$tmp/$RUNNER_NAME" && -d "$tmp/lib" ]] ||
    die "mvn finished but $tmp has no $RUNNER_NAME and lib/"
  # The runner's manifest names its jars as lib/..., so the two move together.
  rm -rf "$APP_DIR" "$APP_DIR.new"
  mkdir "$APP_DIR.new"
  mv "$tmp/$RUNNER_NAME" "$tmp/lib" "$APP_DIR.new/"
  mv "$APP_DIR.new" "$APP_DIR"
  rm -rf "$tmp"
  build_inputs_sum >"$APP_STAMP"
  exec 8>&-
  log "Apicurio Registry $APICURIO_VERSION built in $(elapsed_since "$started") s:" \
    "$(find "$APP_DIR/lib" -name '*.jar' | wc -l) jars, $(du -sh "$APP_DIR" | cut -f1) in $APP_DIR"
}

# --- the process ------------------------------------------------------------------

# Seconds since $1 (an $EPOCHREALTIME), with one decimal.
elapsed_since() {
  local now=$EPOCHREALTIME
  awk -v a="$1" -v b="$now" 'BEGIN { printf "%.1f", b - a }'
}

# Prints the pid of the registry's JVM if it runs. The command line is
# checked too, so a stale pid file whose pid was reused does not count,
# nor a registry with another REGISTRY_DATA.
registry_pid() {
  local pid cmdline
  [[ -s "$PID_FILE" ]] || return 1
  pid="$(<"$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
  [[ "$cmdline" == *"-Dhopper.registry.data=$REGISTRY_DATA "*"$RUNNER_NAME"* ]] || return 1
  printf '%s' "$pid"
}

registry_running() { registry_pid >/dev/null; }

# True if the Confluent-compatible API answers a subject listing.
registry_answers() {
  curl -sf -o /dev/null --max-time 2 "$(api_url)/subjects"
}

port_in_use() {
  [[ -n "$(ss -Htln "( sport = :$REGISTRY_PORT )" 2>/dev/null)" ]]
}

show_log_tail() {
  local f
  for f in "$CONSOLE_LOG" "$LOG_FILE"; do
    [[ -s "$f" ]] || continue
    printf '\n----- last 40 lines of %s -----\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
}

describe() {
  local pid state
  if pid="$(registry_pid)"; then
    if registry_answers; then
      state="running (pid $pid)"
    else
      state="not answering (pid $pid)"
    fi
  else
    state="stopped"
  fi
  printf 'registry: %-26s api %s  data %s\n' "$state" "$(api_url)" "$REGISTRY_DATA"
}

# Serialises registry.sh runs that start or stop a registry: fd 9 locks
# REGISTRY_DATA, fd 7 every registry on the machine, so that registries
# with different data directories cannot both find a port free and then
# fight over it (one taking the other's answers for its own). One file for
# all ports: the tests start registries on random ports, and a lock file
# per port would pile up.
lock_registry() {
  local wait=$((START_TIMEOUT + STOP_TIMEOUT))
  mkdir -p "$REGISTRY_DATA"
  exec 9>"$REGISTRY_DATA/.lock"
  flock -w "$wait" 9 || die "timed out waiting for another registry.sh using $REGISTRY_DATA"
  exec 7>"${TMPDIR:-/tmp}/hopper-registry.lock"
  flock -w "$wait" 7 || die "timed out waiting for another registry.sh to start or stop a registry"
}

# System properties of the registry. Quarkus reads them before Apicurio's
# application.properties (a plain key here beats a %prod. one there).
registry_properties() {
  local props=(
    # Marks the JVM as this REGISTRY_DATA's registry (registry_pid).
    "hopper.registry.data=$REGISTRY_DATA"
    "quarkus.http.host=$REGISTRY_HOST"
    "quarkus.http.port=$REGISTRY_PORT"
    # Apicurio's default is an in-memory H2 database.
    # WRITE_DELAY=0: a commit is on disk before its answer. H2 flushes
    # up to 500 ms later by default, and a registry killed then lost the
    # schema it had just registered (test_contracts, CI).
    "quarkus.datasource.jdbc.url=jdbc:h2:file:$DB_DIR/registry;WRITE_DELAY=0"
    # Apicurio keeps 20 connections open to a database that serves one
    # local user; 2 start faster and smaller.
    "quarkus.datasource.jdbc.initial-size=2"
    "quarkus.datasource.jdbc.min-size=2"
    # The log goes to a file of bounded size; console.log keeps what the
    # JVM itself prints (crashes).
    "quarkus.log.console.enable=false"
    "quarkus.log.file.enable=true"
    "quarkus.log.file.path=$LOG_FILE"
    "quarkus.log.file.rotation.max-file-size=50M"
    "quarkus.log.file.rotation.max-backup-index=3"
  )
  printf '%s\n' "${props[@]}"
  # Extras last: the JVM keeps the last -D of a repeated key.
  if [[ -n "${REGISTRY_PROPERTIES:-}" ]]; then
    tr -s ' \t' '\n' <<<"$REGISTRY_PROPERTIES" | grep -v '^$'
  fi
}

launch() {
  ! port_in_use ||
    die "port $REGISTRY_PORT is in use by another process (a registry with another REGISTRY_DATA?);" \
      "set REGISTRY_PORT"
  mkdir -p "$DB_DIR"
  local flags=() p
  while IFS= read -r p; do
    [[ "$p" == *=* ]] || die "REGISTRY_PROPERTIES: '$p' is not key=value"
    flags+=("-D$p")
  done < <(registry_properties)

  rm -f "$PID_FILE"
  printf '\n===== %s starting Apicurio Registry %s on %s\n' "$(date -Is)" "$APICURIO_VERSION" \
    "$(base_url)" >>"$CONSOLE_LOG"
  # The inner shell records its own pid and then becomes the JVM, so the
  # pid file is right whether or not setsid forks. Its working directory
  # is REGISTRY_DATA, where stray files (a transaction log) would land. The
  # lock fds 7 and 9 must not leak into the daemon.
  # shellcheck disable=SC2016,SC2086
  (cd "$REGISTRY_DATA" && exec nohup setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    java -server -Djava.awt.headless=true -XX:+ExitOnOutOfMemoryError $REGISTRY_HEAP \
    "${flags[@]}" -jar "$RUNNER" \
    </dev/null >>"$CONSOLE_LOG" 2>&1 7>&- 9>&-) &

  local deadline=$((SECONDS + 10))
  until registry_running; do
    ((SECONDS < deadline)) || {
      show_log_tail
      die "the registry's JVM did not come up"
    }
    sleep 0.1
  done
}

# Waits until the API answers; a JVM that dies meanwhile fails at once
# instead of at the deadline.
wait_answering() {
  local deadline=$((SECONDS + START_TIMEOUT))
  until registry_answers; do
    if ! registry_running; then
      show_log_tail
      die "the registry exited during startup; see above"
    fi
    if ((SECONDS >= deadline)); then
      show_log_tail
      die "the registry's API $(api_url) did not answer within ${START_TIMEOUT}s; see above," \
        "then run '$0 stop'"
    fi
    sleep 0.5
  done
}

# --- commands ---------------------------------------------------------------------

cmd_start() {
  require curl "Debian package curl"
  # Built before the lock is taken: a first build takes a minute, and other
  # registries' starts need not wait for it. Never under a running
  # registry, whose jars the build would replace.
  registry_running || cmd_fetch --quiet
  lock_registry
  if registry_running && registry_answers; then
    log "Apicurio Registry already running"
  else
    registry_running || cmd_fetch --quiet
    local started=$EPOCHREALTIME
    registry_running || launch
    log "waiting up to ${START_TIMEOUT}s for the registry to answer"
    wait_answering
    log "Apicurio Registry $APICURIO_VERSION is up (answered after $(elapsed_since "$started") s)"
  fi
  describe
}

cmd_stop() {
  lock_registry
  local pid deadline
  if ! pid="$(registry_pid)"; then
    rm -f "$PID_FILE"
    log "registry not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while registry_running; do
    if ((SECONDS >= deadline)); then
      log "the registry ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
      while registry_running; do
        ((SECONDS < deadline)) || die "the registry (pid $pid) survived SIGKILL"
        sleep 0.1
      done
      break
    fi
    sleep 0.2
  done
  rm -f "$PID_FILE"
  log "registry stopped"
}

cmd_status() {
  describe
  registry_running && registry_answers
}

cmd_logs() {
  local lines="${1:-100}"
  [[ "$lines" =~ ^[0-9]+$ ]] || die "LINES must be a number, not '$lines'"
  [[ -f "$LOG_FILE" ]] || die "the registry has no log yet ($LOG_FILE)"
  tail -n "$lines" "$LOG_FILE"
}

main() {
  [[ "$REGISTRY_PORT" =~ ^[0-9]+$ ]] && ((REGISTRY_PORT > 0 && REGISTRY_PORT < 65536)) ||
    die "REGISTRY_PORT must be a port number, not '$REGISTRY_PORT'"
  [[ "$START_TIMEOUT" =~ ^[0-9]+$ && "$STOP_TIMEOUT" =~ ^[0-9]+$ ]] ||
    die "REGISTRY_START_TIMEOUT and REGISTRY_STOP_TIMEOUT must be whole seconds"
  [[ "$REGISTRY_DATA" != *\;* ]] ||
    die "REGISTRY_DATA must not contain ';' (it goes into a JDBC URL): '$REGISTRY_DATA'"
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    fetch) cmd_fetch "$@" ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    url) api_url && echo ;;
    logs) cmd_logs "$@" ;;
    *) usage ;;
  esac
}

main "$@"
