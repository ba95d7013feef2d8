#!/usr/bin/env bash
# cpu_per_msg.sh - hopper's CPU time per confirmed message, for two or more
# hopper binaries in alternating runs (A B A B ...), so that builds compare
# under the same machine load. Each run: a fresh hopper on a free port, the
# benchmark's load shape (2 connections x 4 channels, window 2,048, 1 KiB
# persistent, as fast as confirms allow, 1 s warm-up + 8 s), then hopper's
# utime+stime from /proc/PID/stat over the messages it confirmed, and the
# load generator's confirm latencies. RATE=N runs at N msg/s instead,
# WARMUP=S warms up S seconds;
# KAFKA_PROPS adds producer properties ("linger.ms: 0.1").
#
#   make MALLOC=libc BUILD=build-libc all          # e.g. glibc's malloc
#   tests/bench/cpu_per_msg.sh build/hopper build-libc/hopper
#   ROUNDS=5 RATE=20000 tests/bench/cpu_per_msg.sh build/hopper build-libc/hopper
#
# Uses the local cluster (contrib/kafka/cluster.sh start; the default one
# unless KAFKA_BROKER_PORTS or BROKERS say otherwise) and
# build/bench/bench_amqp (make bench-tools). Prints one line per run.

set -euo pipefail
cd "$(dirname "$0")/../.."

((${#@} >= 1)) || { echo "usage: $0 HOPPER [HOPPER...]" >&2; exit 2; }
readonly ROUNDS=${ROUNDS:-3} RATE=${RATE:-0} WARMUP=${WARMUP:-1}
# The cluster's listeners as contrib/kafka/cluster.sh reports them (it reads
# KAFKA_BROKER_PORTS and KAFKA_HOST(S)).
BROKERS=${BROKERS:-$(contrib/kafka/cluster.sh bootstrap)}
readonly BROKERS
readonly TICK=$(getconf CLK_TCK)
work=$(mktemp -d)
topic=cpu-per-msg-$$
# Its records are gigabytes: delete the topic afterwards.
trap 'build/bench/bench_kafka delete --brokers "$BROKERS" --topic "$topic" >/dev/null 2>&1; rm -rf "$work"' EXIT

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/hopper.yaml" <<EOF
listen: {address: 127.0.0.1, port: $port}
limits: {max_unconfirmed: 10000, max_inflight_bytes: 268435456}
kafka:
  bootstrap_servers: "$BROKERS"
  topic_partitions: 3
  properties: {socket.nagle.disable: true${KAFKA_PROPS:+, $KAFKA_PROPS}}
default_route: false
exchanges: [{name: bench, type: topic}]
routes: [{exchange: bench, routing_key: "#", topic: $topic, key: none}]
EOF

for ((r = 1; r <= ROUNDS; r++)); do
  for bin in "$@"; do
    "$bin" -c "$work/hopper.yaml" 2>"$work/hopper.log" &
    pid=$!
    for _ in $(seq 50); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      sleep 0.2
    done
    build/bench/bench_amqp publish --port "$port" --exchange bench --routing-key cpu \
      --conns 2 --chans 4 --window 2048 --rate "$RATE" --size 1024 --duration 8 --warmup "$WARMUP" \
      --persistent >"$work/pub.json"
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    kill -TERM "$pid"
    wait "$pid" || true
    /usr/bin/python3 - "$bin" "$ticks" "$TICK" "$work/pub.json" <<'EOF'
import json, sys
binary, ticks, tick, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
d = json.loads(open(path).read().strip().splitlines()[-1])
cpu = ticks / tick
c = d["confirm"]
print("%-24s %8.0f msg/s  %6.2f CPU-s for %7d confirmed  %5.2f us/msg  confirm p50 %.2f p95 %.2f p99 %.2f ms" %
      (binary, d["msgs_per_s"], cpu, d["acked"], cpu / d["acked"] * 1e6, c["p50"], c["p95"], c["p99"]))
EOF
  done
done
