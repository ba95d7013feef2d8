# faults.mk - fault-injection runs (tests/faults/README.md). Included from
# the top Makefile, after HOPPER and PYTHON are defined; every path is
# relative to the repository root. Needs root (network namespaces,
# iptables).
#
#   make faults           every scenario, Kafka-side ones under both KRaft
#                         timeout profiles; writes tests/faults/RESULTS.md
#                         (about 35 minutes)
#   make faults-short     every scenario in a short form, shipped profile
#                         only (CI; about 10 minutes on a busy 2-core
#                         machine, mostly JVM start-ups; hard limit 20);
#                         report in $(FAULTS_SHORT_RESULTS)/RESULTS.md
#   make faults-bridge-short  only the bridge scenarios (RabbitMQ upstream
#                         of hopper) in their short form (2.5-3 minutes plus
#                         the cluster's start); report in
#                         $(FAULTS_BRIDGE_SHORT_RESULTS)/RESULTS.md
#   make faults-SCENARIO  one scenario, full form (faults.py list names them)
#   make faults-unit      the verifier's own tests (no Kafka, no root)
#   make faults-down      remove leftovers of an interrupted run
#
# The fault cluster lives in .cache/kafka-faults on 10.77.0.11-13 inside
# namespaces hf-k1..3; it never touches the default cluster on 127.0.0.1.

FAULTS_SAVED_DEFAULT_GOAL := $(.DEFAULT_GOAL)

FAULTS_PYTHON ?= $(or $(PYTHON),/usr/bin/python3)
FAULTS_HOPPER := $(or $(HOPPER),build/hopper)
FAULTS_PY := HOPPER_BIN=$(abspath $(FAULTS_HOPPER)) PYTHON=$(FAULTS_PYTHON) $(FAULTS_PYTHON) tests/faults/faults.py
FAULTS_RESULTS ?= tests/faults/results
FAULTS_SHORT_RESULTS ?= build/faults-short
FAULTS_BRIDGE_SHORT_RESULTS ?= build/faults-bridge-short
# The bridge (rabbit.upstream): a RabbitMQ node in hf-rmq upstream of
# hopper. `make faults` and `make faults-short` run them (once, under the
# shipped timeouts); their short forms add 2.5-3 minutes to faults-short.
FAULTS_BRIDGE_SCENARIOS := bridge-rabbit-kill bridge-leader-kill bridge-hopper-kill bridge-rabbit-cut
FAULTS_SCENARIOS := steady broker-kill-leader controller-kill rolling-restart broker-isolate \
                    leader-isolate all-down hopper-kill hopper-term hopper-term-stalled \
                    fatal-error backpressure consumer-kill hopper-kill-consuming \
                    leader-kill-consuming hopper-pair-kill $(FAULTS_BRIDGE_SCENARIOS)
# CI's short set leaves out bridge-leader-kill (its short form is the
# slowest, 57-74 s, for a killed JVM's restart): its Kafka side is
# broker-kill-leader's, which the set has; `make faults` runs it.
FAULTS_SHORT_SCENARIOS ?= $(filter-out bridge-leader-kill,$(FAULTS_SCENARIOS))
# The profile the local cluster ships (contrib/kafka/cluster.sh KAFKA_TIMEOUTS).
FAULTS_PROFILE ?= fast

.PHONY: faults faults-short faults-bridge-short faults-unit faults-down $(addprefix faults-,$(FAULTS_SCENARIOS))

faults-unit:
	$(FAULTS_PYTHON) -m pytest -q tests/faults/test_verify.py

faults: $(FAULTS_HOPPER) faults-unit
	@rm -rf $(FAULTS_RESULTS)
	@rc=0; $(FAULTS_PY) run --profile fast --profile default --results $(FAULTS_RESULTS) all || rc=$$?; \
	  $(FAULTS_PY) report --results $(FAULTS_RESULTS) --out tests/faults/RESULTS.md || rc=1; \
	  exit $$rc

faults-short: $(FAULTS_HOPPER) faults-unit
	@rm -rf $(FAULTS_SHORT_RESULTS)
	@rc=0; $(FAULTS_PY) run --short --profile $(FAULTS_PROFILE) --deadline 1200 \
	    --results $(FAULTS_SHORT_RESULTS) $(FAULTS_SHORT_SCENARIOS) || rc=$$?; \
	  $(FAULTS_PY) report --results $(FAULTS_SHORT_RESULTS) --out $(FAULTS_SHORT_RESULTS)/RESULTS.md || rc=1; \
	  cat $(FAULTS_SHORT_RESULTS)/RESULTS.md 2>/dev/null | sed -n '/^| scenario | timeouts/,/^$$/p;/^## Bridge/,/^## Scenario/p'; \
	  exit $$rc

faults-bridge-short: $(FAULTS_HOPPER) faults-unit
	@rm -rf $(FAULTS_BRIDGE_SHORT_RESULTS)
	@rc=0; $(FAULTS_PY) run --short --profile $(FAULTS_PROFILE) --deadline 900 \
	    --results $(FAULTS_BRIDGE_SHORT_RESULTS) $(FAULTS_BRIDGE_SCENARIOS) || rc=$$?; \
	  $(FAULTS_PY) report --results $(FAULTS_BRIDGE_SHORT_RESULTS) --out $(FAULTS_BRIDGE_SHORT_RESULTS)/RESULTS.md || rc=1; \
	  cat $(FAULTS_BRIDGE_SHORT_RESULTS)/RESULTS.md 2>/dev/null | sed -n '/^| scenario | timeouts/,/^$$/p;/^## Bridge/,/^## Scenario/p'; \
	  exit $$rc

$(addprefix faults-,$(FAULTS_SCENARIOS)): faults-%: $(FAULTS_HOPPER)
	$(FAULTS_PY) run --profile $(FAULTS_PROFILE) --results $(FAULTS_RESULTS) $*

faults-down:
	$(FAULTS_PY) down

.DEFAULT_GOAL := $(FAULTS_SAVED_DEFAULT_GOAL)
