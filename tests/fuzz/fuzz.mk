# fuzz.mk - libFuzzer harnesses (tests/fuzz/README.md). Included from the
# top Makefile; every path is relative to the repository root.
#
#   make fuzz-build      build build-fuzz/fuzz_{conn,table,config,offsets,record_view,toporecord,jsonschema,registry,avrojson}
#   make fuzz            run each for FUZZ_SECONDS (default 600)
#   make fuzz-smoke      run each for 20 s (CI)
#   make fuzz-regress    run each once over its corpus and regressions
#                        (fast; non-zero exit on a crash, leak or abort)
#
# Needs clang and its libFuzzer runtime (Debian 12: clang, libclang-rt-14-dev).
# Fuzzing runs write only under FUZZ_BUILD: new inputs go to a scratch
# corpus per harness, seeded from tests/fuzz/corpus/<name> (read only);
# crashes go to FUZZ_BUILD/artifacts/<harness>/.

# An include placed before the top Makefile's first rule must not make one
# of ours the default goal.
FUZZ_SAVED_DEFAULT_GOAL := $(.DEFAULT_GOAL)

FUZZ_CC ?= clang
FUZZ_CXX ?= clang++
FUZZ_BUILD ?= build-fuzz
FUZZ_DIR := tests/fuzz
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 20
# Extra libFuzzer flags for fuzz and fuzz-smoke, e.g. FUZZ_FLAGS=-jobs=2.
FUZZ_FLAGS ?=

FUZZ_PKG_CFLAGS := $(PKG_CFLAGS)
FUZZ_PKG_LIBS := $(PKG_LIBS)
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -Iinclude -I$(FUZZ_DIR) -g -O1 $(FUZZ_SAN) \
               -Wall -Wextra -Wno-unused-parameter $(FUZZ_PKG_CFLAGS) -MMD -MP
# src/jsonschema.cc (valijson, nlohmann-json: the top Makefile's CXX_PKG_CFLAGS)
FUZZ_CXXFLAGS := -std=c++17 -D_GNU_SOURCE -Iinclude -g -O1 $(FUZZ_SAN) $(RAPIDJSON_NO_SANITIZE) \
                 -Wall -Wextra -Wno-unused-parameter $(CXX_PKG_CFLAGS) -MMD -MP

# hopper's code without main.c (the harness is the program) and sink.c
# (fuzz_conn links fake_sink.c instead; the others need no sink).
FUZZ_LIB_SRC := $(filter-out src/main.c src/sink.c,$(wildcard src/*.c))
FUZZ_LIB_OBJ := $(patsubst src/%.c,$(FUZZ_BUILD)/obj/%.o,$(FUZZ_LIB_SRC)) \
                $(patsubst src/%.cc,$(FUZZ_BUILD)/obj/%.o,$(wildcard src/*.cc))
FUZZ_HARNESSES := conn table config offsets record_view toporecord jsonschema registry avrojson
FUZZ_BINS := $(addprefix $(FUZZ_BUILD)/fuzz_,$(FUZZ_HARNESSES))

# Per-harness libFuzzer options: input size bound and dictionary.
FUZZ_OPTS_conn := -max_len=16384 -dict=$(FUZZ_DIR)/amqp.dict
FUZZ_OPTS_table := -max_len=4096 -dict=$(FUZZ_DIR)/amqp.dict
FUZZ_OPTS_config := -max_len=8192 -dict=$(FUZZ_DIR)/config.dict
FUZZ_OPTS_offsets := -max_len=4096 -dict=$(FUZZ_DIR)/offsets.dict
FUZZ_OPTS_record_view := -max_len=8192 -dict=$(FUZZ_DIR)/amqp.dict
FUZZ_OPTS_toporecord := -max_len=4096 -dict=$(FUZZ_DIR)/amqp.dict
FUZZ_OPTS_jsonschema := -max_len=20000 -dict=$(FUZZ_DIR)/json.dict
FUZZ_OPTS_registry := -max_len=8192 -dict=$(FUZZ_DIR)/json.dict
# avrojson: a JSON body after one byte choosing the schema (json.dict)
FUZZ_OPTS_avrojson := -max_len=8192 -dict=$(FUZZ_DIR)/json.dict
FUZZ_COMMON_OPTS := -timeout=10 -rss_limit_mb=2048 -print_final_stats=1

.PHONY: fuzz-build fuzz fuzz-smoke fuzz-regress fuzz-clean

fuzz-build: $(FUZZ_BINS)

$(FUZZ_BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/obj/%.o: src/%.cc | valijson-check
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/obj/fuzz/%.o: $(FUZZ_DIR)/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

# An archive, so that each harness links only the modules it reaches.
# Harnesses link with clang++: the C++ runtime (and UBSan's C++ part) for
# the validator.
$(FUZZ_BUILD)/libhopper-fuzz.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

.PRECIOUS: $(FUZZ_BUILD)/obj/fuzz/%.o

$(FUZZ_BUILD)/fuzz_conn: $(FUZZ_BUILD)/obj/fuzz/fuzz_conn.o $(FUZZ_BUILD)/obj/fuzz/fake_sink.o \
                         $(FUZZ_BUILD)/libhopper-fuzz.a
	$(FUZZ_CXX) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(FUZZ_PKG_LIBS) -lm

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/fuzz/fuzz_%.o $(FUZZ_BUILD)/libhopper-fuzz.a
	$(FUZZ_CXX) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(FUZZ_PKG_LIBS) -lm

# fuzz and fuzz-smoke run the harnesses one after the other (with make -j,
# side by side). Each keeps its libFuzzer output in FUZZ_BUILD/fuzz_<h>.log
# and prints the final stats; on a crash, the log's tail.
FUZZ_RUNS := $(addprefix fuzz-run-,$(FUZZ_HARNESSES))
.PHONY: $(FUZZ_RUNS)

fuzz: FUZZ_TIME = $(FUZZ_SECONDS)
fuzz: $(FUZZ_RUNS)
fuzz-smoke: FUZZ_TIME = $(FUZZ_SMOKE_SECONDS)
fuzz-smoke: $(addprefix fuzz-run-,$(FUZZ_HARNESSES))

$(FUZZ_RUNS): fuzz-run-%: fuzz-build
	@mkdir -p $(FUZZ_BUILD)/corpus/$* $(FUZZ_BUILD)/artifacts/$*
	@echo "== fuzz_$* for $(FUZZ_TIME) s (scratch corpus $(FUZZ_BUILD)/corpus/$*, log $(FUZZ_BUILD)/fuzz_$*.log)"
	@rc=0; $(FUZZ_BUILD)/fuzz_$* $(FUZZ_COMMON_OPTS) $(FUZZ_OPTS_$*) -max_total_time=$(FUZZ_TIME) \
	  -artifact_prefix=$(FUZZ_BUILD)/artifacts/$*/ $(FUZZ_FLAGS) \
	  $(FUZZ_BUILD)/corpus/$* $(FUZZ_DIR)/corpus/$* \
	  $$(test -d $(FUZZ_DIR)/regressions/$* && echo $(FUZZ_DIR)/regressions/$*) \
	  > $(FUZZ_BUILD)/fuzz_$*.log 2>&1 || rc=$$?; \
	if [ $$rc -ne 0 ]; then tail -n 80 $(FUZZ_BUILD)/fuzz_$*.log; \
	  echo "fuzz_$*: FAILED (exit $$rc); reproducer in $(FUZZ_BUILD)/artifacts/$*/"; exit $$rc; fi; \
	grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::' $(FUZZ_BUILD)/fuzz_$*.log

# Each harness runs every file of its corpus and regressions once (file
# arguments: libFuzzer executes them and exits, writes nothing).
fuzz-regress: fuzz-build
	@set -e; for h in $(FUZZ_HARNESSES); do \
	  files=$$(find $(FUZZ_DIR)/corpus/$$h $(FUZZ_DIR)/regressions/$$h -type f \
	           ! -name '*.md' 2>/dev/null | sort); \
	  n=$$(printf '%s\n' $$files | grep -c . || true); \
	  echo "== fuzz_$$h: $$n inputs"; \
	  if [ "$$n" -gt 0 ]; then \
	    $(FUZZ_BUILD)/fuzz_$$h $(FUZZ_COMMON_OPTS) $$files > $(FUZZ_BUILD)/regress_$$h.log 2>&1 \
	      || { tail -n 60 $(FUZZ_BUILD)/regress_$$h.log; echo "fuzz_$$h: FAILED"; exit 1; }; \
	  fi; \
	done; echo "fuzz-regress: all inputs passed"

fuzz-clean:
	rm -rf $(FUZZ_BUILD)

-include $(FUZZ_LIB_OBJ:.o=.d) $(patsubst %,$(FUZZ_BUILD)/obj/fuzz/%.d,fuzz_conn fuzz_table fuzz_config fuzz_offsets fuzz_record_view fuzz_toporecord fuzz_jsonschema fuzz_registry fuzz_avrojson fake_sink)

.DEFAULT_GOAL := $(FUZZ_SAVED_DEFAULT_GOAL)
