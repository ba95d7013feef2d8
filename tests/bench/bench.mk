# bench.mk - hopper's benchmark (tests/bench/), included by the top Makefile.
#
#   make bench        the full benchmark, about 25 minutes: starts its own
#                     Kafka cluster (ports 9192-9194), a private RabbitMQ and
#                     a private schema registry, writes tests/bench/RESULTS.md
#                     (+ RESULTS.json)
#   make bench-smoke  every piece for a few seconds on the default cluster,
#                     asserting no timing (CI), about 100 s with the cluster
#                     up; writes build/bench/SMOKE.md
#   make bench-contracts
#                     message contracts alone, about 5 minutes: 1 KiB JSON
#                     without a contract, with a JSON Schema one and with an
#                     Avro one, on the default cluster (or KAFKA_*'s) and a
#                     private schema registry; writes tests/bench/CONTRACTS.md
#                     (+ CONTRACTS.json)
#   make bench-bridge the RabbitMQ -> Kafka bridge against Kafka Connect with
#                     jcustenborder's RabbitMQ source connector (issue 14),
#                     about 30-40 minutes on a loaded 2-core machine (Connect
#                     drains 1,000,000 x 1 KiB at ~1,000-5,000 msg/s): its own
#                     Kafka cluster (9292-9294) and RabbitMQ (5972); writes
#                     tests/bench/BRIDGE.md (+ BRIDGE.json).
#                     BRIDGE_SYSTEMS=connect (or hopper) measures one alone
#   make bench-bridge-short
#                     the same with a 20,000 backlog and 3 s rate runs, hopper
#                     only (skipped, exit 0, when the binary has no bridge);
#                     part of bench-smoke; writes build/bench/BRIDGE-SHORT.md
#
# Needs librabbitmq-dev, librdkafka-dev, python3, valgrind, linux-perf,
# maven (PerfTest, the schema registry's build), java (the registry),
# rabbitmq-server (installed by tests/bench/rabbitmq.sh when missing).

BUILD ?= build
HOPPER ?= $(BUILD)/hopper
PYTHON ?= /usr/bin/python3
BENCH_BIN := $(BUILD)/bench
# The direct producer links the same librdkafka as hopper (the Makefile's
# PKG_CONFIG finds the one make setup builds).
BENCH_CFLAGS := -std=gnu11 -D_GNU_SOURCE -O2 -g -Wall -Wextra \
                $(patsubst -I%,-isystem %,$(shell $(PKG_CONFIG) --cflags librabbitmq rdkafka-static 2>/dev/null))
BENCH_TOOLS := $(BENCH_BIN)/bench_amqp $(BENCH_BIN)/bench_kafka

.PHONY: bench bench-smoke bench-contracts bench-tools bench-bridge bench-bridge-short

BRIDGE_SYSTEMS ?= hopper,connect

bench-tools: $(BENCH_TOOLS)

$(BENCH_BIN)/bench_amqp: tests/bench/bench_amqp.c tests/bench/bench_common.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< $(shell $(PKG_CONFIG) --libs librabbitmq 2>/dev/null) -lpthread

$(BENCH_BIN)/bench_kafka: tests/bench/bench_kafka.c tests/bench/bench_common.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< $(shell $(PKG_CONFIG) --libs rdkafka-static 2>/dev/null)

bench: $(HOPPER) $(BENCH_TOOLS)
	BENCH_BIN=$(abspath $(BENCH_BIN)) HOPPER=$(abspath $(HOPPER)) \
	  timeout 1800 $(PYTHON) tests/bench/bench.py full

bench-smoke: $(HOPPER) $(BENCH_TOOLS)
	BENCH_BIN=$(abspath $(BENCH_BIN)) HOPPER=$(abspath $(HOPPER)) \
	  timeout 300 $(PYTHON) tests/bench/bench.py smoke
	$(MAKE) --no-print-directory bench-bridge-short

bench-bridge: $(BENCH_TOOLS) $(if $(findstring hopper,$(BRIDGE_SYSTEMS)),$(HOPPER))
	BENCH_BIN=$(abspath $(BENCH_BIN)) HOPPER=$(abspath $(HOPPER)) \
	  timeout 3600 $(PYTHON) tests/bench/bridge.py full --systems $(BRIDGE_SYSTEMS)

# Hopper only: Connect's JVM start and drain would cost CI minutes.
bench-bridge-short: $(HOPPER) $(BENCH_TOOLS)
	BENCH_BIN=$(abspath $(BENCH_BIN)) HOPPER=$(abspath $(HOPPER)) \
	  timeout 150 $(PYTHON) tests/bench/bridge.py short --systems hopper

bench-contracts: $(HOPPER) $(BENCH_TOOLS)
	BENCH_BIN=$(abspath $(BENCH_BIN)) HOPPER=$(abspath $(HOPPER)) \
	  timeout 1200 $(PYTHON) tests/bench/bench.py contracts
