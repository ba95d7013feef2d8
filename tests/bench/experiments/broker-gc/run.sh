#!/usr/bin/env bash
# run.sh - hopper's confirm latency at 10,000 msg/s of 1 KiB on a fresh
# local cluster whose brokers use G1 (cluster.sh's default), ZGC or
# Shenandoah, in alternating blocks (G1 ZGC Shenandoah, twice). Each block:
# a fresh cluster in $KAFKA_DATA, a 5 s warm-up round (not printed), then
# three rounds of tests/bench/cpu_per_msg.sh; each broker's GC log goes to
# $OUT/gc-<collector>-<pid>.log, and the pause summary is printed at the end.
#
#   make all bench-tools
#   tests/bench/experiments/broker-gc/run.sh [HOPPER]     # ~15 min
#
# Ports 9392-9394 / 19392-19394 and KAFKA_DATA /tmp/kexp unless set: it must
# not share a cluster with anything else.
set -u
cd "$(dirname "$0")/../../../.."
HOPPER=${1:-build/hopper}
OUT=${OUT:-/tmp/broker-gc}
export KAFKA_BROKER_PORTS=${KAFKA_BROKER_PORTS:-"9392 9393 9394"}
export KAFKA_CONTROLLER_PORTS=${KAFKA_CONTROLLER_PORTS:-"19392 19393 19394"}
export KAFKA_DATA=${KAFKA_DATA:-/tmp/kexp}
mkdir -p "$OUT"
rm -f "$OUT"/gc-*.log

block() { # name heap-and-gc-flags
  contrib/kafka/cluster.sh stop >/dev/null 2>&1
  rm -rf "$KAFKA_DATA"
  KAFKA_HEAP="$2 -Xlog:gc,gc+phases:file=$OUT/gc-$1-%p.log" contrib/kafka/cluster.sh start >/dev/null 2>&1 ||
    { echo "$1: the cluster did not start"; return; }
  sleep 5
  ROUNDS=1 RATE=10000 WARMUP=5 tests/bench/cpu_per_msg.sh "$HOPPER" >/dev/null 2>&1
  ROUNDS=3 RATE=10000 WARMUP=2 tests/bench/cpu_per_msg.sh "$HOPPER" 2>&1 | sed "s/^/$1 /"
}

for _ in 1 2; do
  block g1 "-Xms512m -Xmx512m"
  block zgc "-Xms512m -Xmx512m -XX:-UseG1GC -XX:+UseZGC"
  block shenandoah "-Xms512m -Xmx512m -XX:-UseG1GC -XX:+UseShenandoahGC"
done
contrib/kafka/cluster.sh stop >/dev/null 2>&1
rm -rf "$KAFKA_DATA"

# Pauses per broker JVM, both blocks of each collector.
for f in "$OUT"/gc-*.log; do
  awk -v f="$(basename "$f")" '/Pause/ { v = $NF; sub("ms", "", v); n++; if (v + 0 >= 10) long++;
    if (v + 0 > max) max = v + 0 }
    END { printf "%s: %d pauses, %d of 10 ms or more, longest %.1f ms\n", f, n, long, max }' "$f"
done
