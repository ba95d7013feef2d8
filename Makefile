# hopper - AMQP 0-9-1 front door to Apache Kafka.
#
#   make            build build/hopper
#   make run        set up what is missing, start the 3-node Kafka cluster, the schema
#                   registry and hopper
#   make run ARGS=--enable-rabbit   the same plus a local RabbitMQ node, hopper with
#                   task queues on and tapping the node's amq.topic into Kafka
#   make check      set up what is missing, run unit and integration tests
#   make stop       stop hopper, the RabbitMQ node (if it runs), the schema registry
#                   and the Kafka cluster
#   make status     each part of the local stack: address, up or down (exit 0 if all
#                   started parts are up)
#   make install    bin/hopper and etc/hopper/hopper.yaml under $(DESTDIR)$(PREFIX)
#                   (an existing hopper.yaml is kept)
#   make SANITIZE=address,undefined check   the same under ASan/UBSan
#   make format / make format-check         clang-format

PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
CXX ?= g++
PYTHON ?= /usr/bin/python3

# librdkafka is Debian 13's 2.8.0, which `make setup` builds from its source
# package into .cache (scripts/librdkafka.sh) and hopper links statically;
# README ("librdkafka") says why not Debian 12's 2.0.2.
RDKAFKA_PREFIX ?= $(CURDIR)/.cache/librdkafka-2.8.0
PKG_CONFIG_PATH := $(RDKAFKA_PREFIX)/lib/pkgconfig$(if $(PKG_CONFIG_PATH),:$(PKG_CONFIG_PATH))
export PKG_CONFIG_PATH
# make 4.3 does not export variables to $(shell): say it there.
PKG_CONFIG := PKG_CONFIG_PATH=$(PKG_CONFIG_PATH) pkg-config
PKGS := librabbitmq libevent libevent_openssl openssl rdkafka-static yaml-0.1 avro-c jansson
# Empty while a package is missing: the pkg-check rules below stop the build
# then, before the first compile. The libraries' headers are system headers
# (-isystem): their warnings are not ours.
PKG_CFLAGS := $(patsubst -I%,-isystem %,$(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null))
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

# The JSON Schema validator (src/jsonschema.cc) is C++17 over valijson's
# headers, which `make setup` unpacks into .cache (scripts/valijson.sh says
# why they are not installed), nlohmann-json and RapidJSON (the fast path
# for valid bodies). Everything that links
# libhopper.a links the C++ runtime.
VALIJSON_INCLUDE ?= $(CURDIR)/.cache/valijson-1.0/usr/include
CXX_PKGS := nlohmann_json RapidJSON
CXX_PKG_CFLAGS := $(patsubst -I%,-isystem %,$(shell $(PKG_CONFIG) --cflags $(CXX_PKGS) 2>/dev/null)) \
                  -isystem $(VALIJSON_INCLUDE)
CXX_LIBS := -lstdc++ -lm
# RapidJSON 1.1.0 (Debian 12's) adds an offset to its parse stack's null
# pointer before the stack's first allocation (internal/stack.h, Reserve;
# fixed upstream after 1.1.0): UBSan's pointer-overflow check would stop
# every parse. Only the C++ file that includes it goes without that check.
RAPIDJSON_NO_SANITIZE := -fno-sanitize=pointer-overflow

CFLAGS ?= -O2 -g
WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
            -Wno-unused-parameter
ifdef WERROR
WARNINGS += -Werror
endif
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE -Iinclude $(WARNINGS) $(PKG_CFLAGS) $(CFLAGS) -MMD -MP
# The C warnings that mean something in C++.
CXX_WARNINGS := -Wall -Wextra -Wshadow -Wformat=2 -Wno-unused-parameter $(filter -Werror,$(WARNINGS))
CXXFLAGS ?= -O2 -g
ALL_CXXFLAGS := -std=c++17 -D_GNU_SOURCE -Iinclude $(CXX_WARNINGS) $(CXX_PKG_CFLAGS) $(CXXFLAGS) -MMD -MP
ALL_LDFLAGS := $(LDFLAGS)

# A sanitized build lives in its own directory so objects never mix.
ifneq ($(SANITIZE),)
BUILD ?= build-san
ALL_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
# GCC 12 under the sanitizers warns that libstdc++'s own std::regex
# compiler uses a std::function uninitialized (a false positive: GCC bug
# 105562's family); it is not our code.
ALL_CXXFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all \
                -Wno-maybe-uninitialized $(RAPIDJSON_NO_SANITIZE)
ALL_LDFLAGS += -fsanitize=$(SANITIZE)
# A small quarantine keeps ASan's RSS near the real one for the memory
# bounds the limits tests measure (they allow 2x under a sanitizer).
SAN_ENV := HOPPER_SANITIZE=$(SANITIZE) ASAN_OPTIONS=quarantine_size_mb=16
# The Celery workers (test_celery.py, minutes, their RabbitMQ reference runs
# testing no hopper code at all), the stack's own parts (the schema
# registry, the RabbitMQ profile) and the tests marked slow (they stop the Kafka cluster and wait
# out its recovery: minutes of waiting for a few ms of hopper code, which
# the plain pass and the fault suite run) run once, in the plain
# `make check`.
PYTEST_MARKS := -m "not celery and not stack and not slow"
else
BUILD ?= build
SAN_ENV :=
PYTEST_MARKS :=
endif

# hopper allocates with jemalloc: with glibc's malloc, allocating and
# freeing were a quarter of its instructions per message, and jemalloc cut
# its CPU per message by about a third (README, "Memory allocator").
# MALLOC=libc builds without it, for valgrind's memcheck; sanitizer builds
# always do (ASan brings its own allocator).
MALLOC ?= jemalloc
ifneq ($(SANITIZE),)
override MALLOC := libc
endif
MALLOC_PKG := $(filter jemalloc,$(MALLOC))
MALLOC_LIBS := $(if $(MALLOC_PKG),$(shell $(PKG_CONFIG) --libs $(MALLOC_PKG) 2>/dev/null))

LIB_SRC := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_CXX_SRC := $(wildcard src/*.cc)
LIB_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(patsubst src/%.cc,$(BUILD)/obj/%.o,$(LIB_CXX_SRC))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
HOPPER := $(BUILD)/hopper

.PHONY: all setup run stop status check unit integration integration-kafka39 format format-check install clean
all: $(HOPPER)

# Whether pkg-config finds the packages: a rule that building depends on,
# not a check while the Makefile is read, so that setup, check and run can
# install them first on a fresh machine.
.PHONY: pkg-check pkg-check-unit valijson-check
define check_pkgs
@if ! command -v pkg-config >/dev/null; then \
    echo "hopper: pkg-config is not installed. Run 'make setup' (it installs what is missing)." >&2; \
    exit 1; \
fi; \
missing=; for p in $(1); do pkg-config --exists $$p || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then \
    echo "hopper: pkg-config cannot find:$$missing. Run 'make setup' (it installs what is missing), or set PKG_CONFIG_PATH." >&2; \
    exit 1; \
fi
endef
pkg-check:
	$(call check_pkgs,$(PKGS) $(MALLOC_PKG))
pkg-check-unit:
	$(call check_pkgs,cmocka)
valijson-check:
	$(call check_pkgs,$(CXX_PKGS))
	@test -f $(VALIJSON_INCLUDE)/valijson/validator.hpp || { \
	    echo "hopper: the valijson headers are not in $(VALIJSON_INCLUDE). Run 'make setup' (scripts/valijson.sh unpacks them)." >&2; \
	    exit 1; }

$(BUILD)/obj/%.o: src/%.c | pkg-check
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: src/%.cc | pkg-check valijson-check
	@mkdir -p $(dir $@)
	$(CXX) $(ALL_CXXFLAGS) -c -o $@ $<

$(BUILD)/libhopper.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(HOPPER): $(BUILD)/obj/main.o $(BUILD)/libhopper.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(MALLOC_LIBS) $(CXX_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libhopper.a | pkg-check-unit
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libhopper.a $(PKG_LIBS) $(CMOCKA_LIBS) $(CXX_LIBS)

# Link seams: a unit test that must see a call it cannot observe otherwise
# wraps the function (ld --wrap) and defines __wrap_NAME.
$(BUILD)/tests/test_confirm: ALL_LDFLAGS += -Wl,--wrap=free
$(BUILD)/tests/test_conn: ALL_LDFLAGS += -Wl,--wrap=bufferevent_socket_new,--wrap=event_new
$(BUILD)/tests/test_publish: ALL_LDFLAGS += -Wl,--wrap=rd_kafka_new
$(BUILD)/tests/test_gate: ALL_LDFLAGS += -Wl,--wrap=rd_kafka_message_detach_headers

# Installs missing Debian packages, fetches the Kafka jars and builds the
# schema registry (idempotent).
setup:
	@scripts/setup.sh

# The build runs in a new make, which reads the pkg-config flags setup may
# just have made available. contrib/stack.sh starts the parts and execs
# hopper; ARGS=--enable-rabbit is its RabbitMQ profile (README, "The local
# stack").
ARGS ?=
STACK_ENV = HOPPER_BIN=$(abspath $(HOPPER))
run: setup
	@$(MAKE) --no-print-directory all
	@$(STACK_ENV) exec contrib/stack.sh run $(ARGS)

stop:
	@$(STACK_ENV) contrib/stack.sh stop

# Every part is shown even when one is down; the exit status says whether
# all started parts are up.
status:
	@$(STACK_ENV) contrib/stack.sh status

# The official JSON-Schema-Test-Suite (Debian's json-schema-test-suite)
# through hopper's validator: counts per draft, and a failure of any case
# not on its known-failures list fails (tests/unit/jsonschema_suite.cc).
JSONSCHEMA_SUITE_DIR ?= /usr/share/json-schema-test-suite/tests
JSONSCHEMA_SUITE := $(BUILD)/tests/jsonschema_suite
$(JSONSCHEMA_SUITE): tests/unit/jsonschema_suite.cc $(BUILD)/libhopper.a | valijson-check
	@mkdir -p $(dir $@)
	$(CXX) $(ALL_CXXFLAGS) $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libhopper.a $(PKG_LIBS)
.PHONY: jsonschema-suite
jsonschema-suite: $(JSONSCHEMA_SUITE)
	$(JSONSCHEMA_SUITE) $(JSONSCHEMA_SUITE_DIR)

unit: $(UNIT_BIN) $(JSONSCHEMA_SUITE)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done
	@echo "== $(JSONSCHEMA_SUITE) $(JSONSCHEMA_SUITE_DIR)"; $(JSONSCHEMA_SUITE) $(JSONSCHEMA_SUITE_DIR)

integration: $(HOPPER)
	@contrib/kafka/cluster.sh start
	HOPPER_BIN=$(abspath $(HOPPER)) $(SAN_ENV) $(PYTHON) -m pytest -v $(PYTEST_MARKS) tests/integration

# The same suite against the Kafka 3.9 line, on its own ports and data;
# what does not depend on Kafka's version (Celery workers, the registry and
# the contracts checked against it, the bridge's RabbitMQ side) runs in the
# plain pass only.
KAFKA39_ENV := KAFKA_VERSION=3.9.1 KAFKA_DATA=.cache/kafka-cluster-3.9 \
               KAFKA_BROKER_PORTS="9292 9293 9294" KAFKA_CONTROLLER_PORTS="19292 19293 19294"
KAFKA39_MARKS ?= not celery and not stack and not contracts and not bridge
# What asks nothing of Kafka a version could answer differently: client
# input refused before any record (bad input, limits, config checks),
# clocks and signals, the build, in-memory queues. CI's hour is better
# spent elsewhere; KAFKA39_IGNORE= runs them too.
KAFKA39_IGNORE ?= test_bad_input.py test_limits.py test_config_check.py test_clock_step.py \
                  test_signals.py test_build.py test_transient.py
integration-kafka39: $(HOPPER)
	@$(KAFKA39_ENV) contrib/kafka/cluster.sh start
	@$(KAFKA39_ENV) HOPPER_BIN=$(abspath $(HOPPER)) $(SAN_ENV) $(PYTHON) -m pytest -q -m "$(KAFKA39_MARKS)" \
	  $(addprefix --ignore=tests/integration/,$(KAFKA39_IGNORE)) tests/integration; \
	rc=$$?; $(KAFKA39_ENV) contrib/kafka/cluster.sh stop; exit $$rc

check: setup
	@$(MAKE) --no-print-directory WERROR=1 all unit
	@$(MAKE) --no-print-directory integration

FORMAT_FILES = src/*.c src/*.cc include/*.h tests/unit/*.c tests/unit/*.cc
format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

# An existing config is the operator's: the shipped one goes in only where
# there is none.
INSTALLED_CONFIG = $(DESTDIR)$(PREFIX)/etc/hopper/hopper.yaml
install: $(HOPPER)
	install -D -m 755 $(HOPPER) $(DESTDIR)$(PREFIX)/bin/hopper
	@if [ -e "$(INSTALLED_CONFIG)" ]; then \
	    echo "install: keeping the existing $(INSTALLED_CONFIG) (the shipped one is config/hopper.yaml)"; \
	else \
	    echo "install -D -m 644 config/hopper.yaml $(INSTALLED_CONFIG)"; \
	    install -D -m 644 config/hopper.yaml "$(INSTALLED_CONFIG)"; \
	fi

clean:
	rm -rf build build-san build-fuzz

# Longer suites, each with its own targets (see the fragments).
include tests/fuzz/fuzz.mk
include tests/bench/bench.mk
include tests/faults/faults.mk
include tests/compat/compat.mk

-include $(LIB_OBJ:.o=.d) $(BUILD)/obj/main.d $(JSONSCHEMA_SUITE).d
