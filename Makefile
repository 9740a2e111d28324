# The notification gateway: build, test and run.
#
#   make                 build build/consumer and build/producer
#   make run             install what is missing, build, and start the gateway with
#                        its embedded broker and a SQLite store in data/ (Ctrl-C stops it)
#   make test            install what the tests need, build, run every test
#   make unit            C unit tests only
#   make integration     integration tests only (real Kafka, mongo-java-server, FerretDB)
#   make soak            the fault suite's SIGKILL scenario, 100 cycles
#   make SANITIZE=address,undefined test
#   make deps            install the build dependencies (Debian packages)
#   make install         the binaries, web files, systemd unit and README under PREFIX
#                        (/usr/local), below DESTDIR when set

CC      ?= cc
# A sanitizer build gets its own folder, so no object is half-instrumented.
ifdef SANITIZE
BUILD   ?= build-$(subst $(comma),-,$(SANITIZE))
else
BUILD   ?= build
endif
comma   := ,
PKGS    := rdkafka libmongoc-1.0 libbson-1.0 libwebsockets jansson sqlite3 libcrypto
CSTD    := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2
OPT     ?= -O2 -g
CFLAGS  += $(CSTD) $(WARN) $(OPT) -pthread -Icommon $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libev has no pkg-config file in Debian.
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -pthread

ifdef SANITIZE
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
LDFLAGS += -fsanitize=$(SANITIZE)
endif

COMMON_SRC   := $(wildcard common/*.c)
CONSUMER_SRC := $(wildcard consumer/*.c)
PRODUCER_SRC := $(wildcard producer/*.c)
UNIT_SRC     := $(wildcard tests/unit/test_*.c)

OBJ          := $(BUILD)/obj
COMMON_OBJ   := $(COMMON_SRC:%.c=$(OBJ)/%.o)
CONSUMER_OBJ := $(CONSUMER_SRC:%.c=$(OBJ)/%.o)
PRODUCER_OBJ := $(PRODUCER_SRC:%.c=$(OBJ)/%.o)
# Unit tests link the consumer's modules, not its main().
CONSUMER_LIB_OBJ := $(filter-out $(OBJ)/consumer/main.o,$(CONSUMER_OBJ))
UNIT_BIN     := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps test-deps test unit unit-bin integration clean check-docker run bench bench-quick soak \
        install test-container \
        fuzz fuzz-bins fuzz-replay
all: $(BUILD)/consumer $(BUILD)/producer

deps:
	scripts/install-deps.sh build

test-deps:
	scripts/install-deps.sh test

$(BUILD)/libcommon.a: $(COMMON_OBJ)
	$(Q)$(AR) rcs $@ $^

$(BUILD)/consumer: $(CONSUMER_OBJ) $(BUILD)/libcommon.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/producer: $(PRODUCER_OBJ) $(BUILD)/libcommon.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(CONSUMER_LIB_OBJ) $(BUILD)/libcommon.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(CFLAGS) -Iconsumer $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# V=1 shows the whole command lines.
Q := $(if $(V),,@)

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

unit-bin: $(UNIT_BIN)

# A sanitizer report fails the unit test that made it.
unit: unit-bin
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; \
	    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 $$t; done

# Fuzz targets (tests/fuzz/fuzz_NAME.c): replayed over their corpus and
# every crash found, with this build's compiler and sanitizers (make test);
# fuzzed with clang's libFuzzer by make fuzz.
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(filter-out tests/fuzz/fuzz_common.c,\
                    $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_DEPS    := tests/fuzz/fuzz_common.c $(CONSUMER_LIB_OBJ) $(BUILD)/libcommon.a
REPLAY_BIN   := $(FUZZ_NAMES:%=$(BUILD)/fuzz/replay_%)

$(BUILD)/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -Iconsumer -Itests/fuzz $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -Iconsumer -Itests/fuzz $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzz-replay: $(REPLAY_BIN)
	@set -e; for n in $(FUZZ_NAMES); do printf '%-14s ' $$n; \
	    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 $(BUILD)/fuzz/replay_$$n \
	        tests/fuzz/corpus/$$n tests/fuzz/crashes/$$n; done

fuzz-bins: $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)

# Each target for FUZZ_SECONDS with clang's libFuzzer, from the checked-in
# corpus; new inputs go to build-fuzz/corpus/NAME, crashes to
# tests/fuzz/crashes/NAME/ (commit them: make test replays them).
FUZZ_SECONDS ?= 60
fuzz:
	scripts/install-deps.sh fuzz
	$(MAKE) CC=clang BUILD=build-fuzz SANITIZE=fuzzer-no-link,address,undefined fuzz-bins
	@set -e; for n in $(FUZZ_NAMES); do \
	    mkdir -p build-fuzz/corpus/$$n tests/fuzz/crashes/$$n; \
	    build-fuzz/fuzz/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -artifact_prefix=tests/fuzz/crashes/$$n/ build-fuzz/corpus/$$n tests/fuzz/corpus/$$n \
	        2>&1 | tee build-fuzz/$$n.log | grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec|==[0-9]+==ERROR)' \
	        | sed "s/^/$$n: /"; done; \
	if grep -l 'ERROR' build-fuzz/*.log; then \
	    echo "fuzz: a crash (above): its input is in tests/fuzz/crashes/"; exit 1; fi

# The integration tests run the binaries of this build; the slowest are
# listed at the end, to keep `make test` inside its budget.
PYTEST_ARGS ?= tests/integration
PYTEST  = BUILD_DIR=$(abspath $(BUILD)) python3 -m pytest -v --durations=10 $(PYTEST_ARGS)

integration: all unit-bin
	$(PYTEST)

# The newcomer's command: no Kafka, no MongoDB, no Docker needed. Settings
# can still come from the environment (PORT=9000 make run).
run: deps
	@$(MAKE) --no-print-directory all
	@mkdir -p data
	$(BUILD)/consumer --embedded --store sqlite:data/notifications.db --web-root web

# The compose file's JWT_SECRET: 32 random bytes, written once, never committed.
.env:
	@umask 077; printf 'JWT_SECRET=%s\n' "$$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" > $@
	@echo "wrote $@ (JWT_SECRET for docker compose; keep it out of git)"

# GCC's "undefined" leaves out float-cast-overflow (a double too large for
# an integer): asked for by name.
TEST_SANITIZERS := address,undefined,float-cast-overflow

# The README's test command: everything, from a clean clone on a fresh machine.
# Then the C code once more under AddressSanitizer and UBSan: the unit tests
# and the gateway's integration tests (a report in its log fails the test).
test: test-deps
	$(MAKE) all unit
	$(MAKE) check-docker
	$(PYTEST)
	$(MAKE) test-container
	$(MAKE) SANITIZE=$(TEST_SANITIZERS) unit fuzz-replay
	$(MAKE) SANITIZE=$(TEST_SANITIZERS) integration \
	    PYTEST_ARGS="tests/integration/test_gateway.py tests/integration/test_security.py tests/integration/test_store_suite.py \
	                 tests/integration/test_inbox.py tests/integration/test_operations.py \
	                 tests/integration/test_rebalance.py"

# Installed under names fit for a shared bin/; the gateway finds its web
# files from where its binary is (BIN/../share/notification-gateway/web).
PREFIX  ?= /usr/local
SHARE   := $(DESTDIR)$(PREFIX)/share/notification-gateway
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(SHARE)/web $(DESTDIR)$(PREFIX)/lib/systemd/system \
	    $(DESTDIR)$(PREFIX)/share/doc/notification-gateway
	install -m 0755 $(BUILD)/consumer $(DESTDIR)$(PREFIX)/bin/notification-gateway
	install -m 0755 $(BUILD)/producer $(DESTDIR)$(PREFIX)/bin/notification-producer
	install -m 0644 web/*.html $(SHARE)/web/
	sed 's|@PREFIX@|$(PREFIX)|g' packaging/systemd/notification-gateway.service.in \
	    > $(DESTDIR)$(PREFIX)/lib/systemd/system/notification-gateway.service
	install -m 0644 packaging/systemd/gateway.env.example README.md \
	    $(DESTDIR)$(PREFIX)/share/doc/notification-gateway/

# The Dockerfile built and run with podman (tests/container/conftest.py says
# how); skipped with a banner when podman cannot run a container at all,
# a failure then with REQUIRE_CONTAINER=1.
test-container: test-deps
	python3 -m pytest -v -s -p no:cacheprovider tests/container

# Benchmarks (not tests): real Kafka and FerretDB on loopback; see bench/README.md.
bench: all
	python3 bench/run.py

bench-quick: all
	python3 bench/run.py --quick

# The fault suite's SIGKILL scenario a hundred times instead of ten.
soak:
	FAULT_KILL_CYCLES=100 $(MAKE) integration \
	    PYTEST_ARGS="tests/integration/test_faults.py -k sigkills -s"

# No Docker engine runs on the test machines: validate what can be validated.
check-docker:
	scripts/check-docker.sh

clean:
	rm -rf build build-*

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
