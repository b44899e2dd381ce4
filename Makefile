# covinject: build, test, demo, install.  One flat file.
#
#   make                 ./covinject and payload/covinject-payload.so
#   make test            unit tests, then end-to-end tests on every CPython found
#   make demo            attach to a bundled example server and report its coverage
#   make install PREFIX=/usr/local DESTDIR=
#   make sid-root        a Debian sid root with CPython 3.14 and 3.15 for make test
#   make WERROR=1        warnings are errors (CI)

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib/covinject
PYTHON ?= /usr/bin/python3
# The Debian sid root whose python3.14 and python3.15 make test also runs
# (test/pythons.py); make sid-root builds it, or keeps it if it matches.
SID_ROOT ?= /var/cache/covinject/sid
export COVINJECT_SID_ROOT := $(SID_ROOT)

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes \
	-Wmissing-prototypes -Wno-unused-parameter -Wvla
ifeq ($(WERROR),1)
WARN += -Werror
endif
# A floor, not a default: users may add flags, not drop these.
override CFLAGS := -std=gnu11 -O2 -g -MD -D_GNU_SOURCE $(WARN) $(CFLAGS)

ARCH := $(shell uname -m)
ifeq ($(wildcard inject/arch/$(ARCH).c),)
$(error covinject does not support $(ARCH) yet: add inject/arch/$(ARCH).c (see inject/arch.h))
endif

INJECT_OBJ := inject/inject.o inject/borrow.o inject/remote.o inject/ptrace.o \
	inject/elf.o inject/maps.o inject/fdpass.o \
	inject/arch/$(ARCH).o
CLI_OBJ := cli/main.o cli/start.o cli/control.o cli/tree.o cli/util.o \
	cli/proc.o cli/signames.o cli/paths.o cli/needs.o cli/access.o cli/uwsgi.o
PAYLOAD_OBJ := payload/payload.o payload/pyapi.o payload/collect.o \
	payload/store.o payload/writer.o payload/config.o payload/signals.o \
	payload/hooks.o payload/modules.o payload/arcs.o payload/got.o payload/trace.o \
	payload/interps.o payload/oldapi.o payload/probes.o payload/variant.o \
	payload/bytecode.o
PAYLOAD := payload/covinject-payload.so
UNIT_OBJ := test/unit.o

all: covinject $(PAYLOAD)

covinject: $(CLI_OBJ) $(INJECT_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^

cli/start.o: CFLAGS += -DCOVINJECT_LIBDIR='"$(LIBDIR)"'

# The payload: position independent, only cov_start and cov_state
# exported, and -z defs so that any symbol beyond libc fails the link.
$(PAYLOAD_OBJ): CFLAGS += -fPIC -fvisibility=hidden
$(PAYLOAD): $(PAYLOAD_OBJ)
	$(CC) $(CFLAGS) -shared -Wl,-z,defs -Wl,-z,now -o $@ $^ -ldl

test/unit: $(UNIT_OBJ) inject/elf.o inject/maps.o cli/signames.o cli/proc.o \
		payload/store.o payload/config.o payload/bytecode.o inject/inject.o inject/borrow.o \
		inject/remote.o inject/ptrace.o inject/fdpass.o \
		inject/arch/$(ARCH).o
	$(CC) $(CFLAGS) -o $@ $^

deps:
	@sh test/deps.sh $(PYTHON)

test: all test/unit deps
	$(PYTHON) test/run.py

# make test, plus 200 kills of covinject on every interpreter, all seven
# CPython test suites of the stdlib parity test, and 1,000 start/dump/stop
# cycles under request load per interpreter (~15 minutes)
test-long: all test/unit deps
	COVINJECT_KILL_TRIALS=200 COVINJECT_LONG=1 $(PYTHON) test/run.py

sid-root:
	@sh test/sid-root.sh $(SID_ROOT)

demo: all deps
	$(PYTHON) examples/demo.py

# Overhead, attach, snapshot and memory benchmarks (bench/run.py --help);
# about 12 minutes; writes bench/RESULTS.md.  Not part of make test.
bench: all
	$(PYTHON) bench/run.py

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)
	install -m 755 covinject $(DESTDIR)$(BINDIR)/covinject
	install -m 644 $(PAYLOAD) $(DESTDIR)$(LIBDIR)/covinject-payload.so

clean:
	rm -rf covinject $(PAYLOAD) test/unit examples/out $(shell find . -name '*.[od]')

.PHONY: all deps test test-long sid-root demo bench install clean
-include $(shell find . -name '*.d' 2>/dev/null)

# ---------------------------------------------------------------------------
# Analysis (README, "Tests"):
#
#   make analyze    cppcheck over cli/ inject/ payload/ test/unit.c
#   make sanitize   the CLI and test/unit with AddressSanitizer and UBSan, in
#                   build-san/ (never mixed with the normal objects); runs the
#                   unit tests, then the CLI on --help, bad invocations and a
#                   start/status/dump/stop round trip.  The payload is not
#                   sanitized: it is loaded into other processes.
#   make fuzz       libFuzzer (Debian's clang) on the parsers of data read from
#                   another process, FUZZ_TIME seconds each

# cppcheck: warnings, not style.  Suppressed, with the reason:
#  readdirCalled: readdir_r is deprecated (glibc 2.24); readdir is safe on a
#    stream only one thread uses.
#  ctuuninitvar in inject/inject.c: inject_read's buf is an output buffer
#    (process_vm_readv fills it), which cppcheck's whole-program check takes
#    for an input when a caller passes an uninitialized struct.
CPPCHECK ?= cppcheck
CPPCHECK_FLAGS := --enable=warning,performance,portability --std=c11 \
	--library=posix --library=gnu -D__x86_64__ -D_GNU_SOURCE \
	--error-exitcode=1 --inline-suppr -q \
	--suppress=readdirCalled --suppress=ctuuninitvar:inject/inject.c

analyze:
	@command -v $(CPPCHECK) >/dev/null || \
		{ echo "make analyze needs cppcheck (apt-get install cppcheck)"; exit 1; }
	$(CPPCHECK) $(CPPCHECK_FLAGS) cli/ inject/ payload/ test/unit.c
	@echo "analyze: cppcheck clean"

SAN_DIR := build-san
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=all
# A sanitizer report exits 99, never 1 or 2, which are covinject's own.
SAN_ENV := ASAN_OPTIONS=exitcode=99:detect_leaks=1 \
	UBSAN_OPTIONS=exitcode=99:halt_on_error=1:print_stacktrace=1
SAN_CLI_OBJ := $(addprefix $(SAN_DIR)/,$(CLI_OBJ) $(INJECT_OBJ))
SAN_UNIT_OBJ := $(addprefix $(SAN_DIR)/,$(UNIT_OBJ) $(INJECT_OBJ) \
	cli/signames.o cli/proc.o payload/store.o payload/config.o payload/bytecode.o)

$(SAN_DIR)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN_FLAGS) -c -o $@ $<

$(SAN_DIR)/cli/start.o: CFLAGS += -DCOVINJECT_LIBDIR='"$(LIBDIR)"'

$(SAN_DIR)/covinject: $(SAN_CLI_OBJ)
	$(CC) $(CFLAGS) $(SAN_FLAGS) $(LDFLAGS) -o $@ $^

$(SAN_DIR)/test/unit: $(SAN_UNIT_OBJ)
	$(CC) $(CFLAGS) $(SAN_FLAGS) -o $@ $^

# The sanitized CLI finds the normal payload as it would in the build tree.
$(SAN_DIR)/payload/covinject-payload.so: $(PAYLOAD)
	@mkdir -p $(@D)
	ln -sf ../../$(PAYLOAD) $@

# san EXIT ARGS...: the sanitized CLI exits with EXIT and reports nothing.
SAN_CLI_RUN = san() { want=$$1; shift; \
	$(SAN_ENV) $(SAN_DIR)/covinject "$$@" >/dev/null 2>$(SAN_DIR)/stderr; \
	got=$$?; if [ $$got != $$want ]; then \
		echo "sanitize: covinject $$*: exit $$got, expected $$want"; \
		cat $(SAN_DIR)/stderr; exit 1; fi; }

sanitize: $(SAN_DIR)/covinject $(SAN_DIR)/test/unit \
		$(SAN_DIR)/payload/covinject-payload.so
	$(SAN_ENV) $(SAN_DIR)/test/unit
	@$(SAN_CLI_RUN); \
	san 0 --help; san 0 --version; san 0 start --help; san 0 status --help; \
	san 2; san 2 bogus; san 2 start; san 2 start abc; san 2 start 0; \
	san 1 start 1; san 2 start 1 2; san 2 start --bogus 2; \
	san 2 start --dump-signal KILL 2; san 2 start --dump-signal NOPE 2; \
	san 2 start --dump-signal USR1 --stop-signal USR1 2; \
	san 2 start --timeout -1 2; san 2 start --interval x 2; \
	san 2 status -o /tmp 2; san 2 start --source; \
	san 1 status 4194304; san 1 start 4194304; san 0 status $$$$; \
	san 1 start $$$$; san 1 dump --tree $$$$; san 1 start -o /nonexistent $$$$; \
	echo "sanitize: covinject --help and bad invocations: clean"
	@$(SAN_CLI_RUN); d=$$(mktemp -d); \
	$(PYTHON) -u test/targets/idle.py >$$d/out & p=$$!; \
	trap 'kill $$p; rm -rf $$d' EXIT; \
	for i in $$(seq 50); do grep -q READY $$d/out && break; sleep 0.1; done; \
	san 0 start -o $$d $$p; san 0 status $$p; san 0 dump $$p; \
	san 0 stop $$p; san 0 status --tree $$p; \
	echo "sanitize: covinject start, status, dump, stop on $(PYTHON): clean"

# Each harness (fuzz/NAME.c) runs FUZZ_TIME seconds from its seeds
# (fuzz/seeds.sh, made afresh) and what earlier runs kept in
# build-fuzz/corpus/NAME; a crash fails, its input in build-fuzz/crash-NAME-*.
FUZZ_CC ?= clang
FUZZ_TIME ?= 30
FUZZ_DIR := build-fuzz
FUZZ_NAMES := elf_lookup maps_line proc_status stat_ppid config_parse
FUZZ_BIN := $(addprefix $(FUZZ_DIR)/fuzz-,$(FUZZ_NAMES))
FUZZ_LIB_OBJ := $(addprefix $(FUZZ_DIR)/,$(filter-out cli/main.o,$(CLI_OBJ)) \
	$(INJECT_OBJ) payload/config.o)
# The longest input each parser gets from its caller (libc is ~2 MB).
FUZZ_MAX_elf_lookup := 4194304
FUZZ_MAX_maps_line := 639
FUZZ_MAX_proc_status := 8191
FUZZ_MAX_stat_ppid := 1023
FUZZ_MAX_config_parse := 12287

ifneq ($(filter fuzz fuzz-% $(FUZZ_DIR)/%,$(MAKECMDGOALS)),)
ifeq ($(shell command -v $(FUZZ_CC)),)
$(error make fuzz needs clang with libFuzzer (apt-get install clang))
endif
endif

$(FUZZ_DIR)/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CFLAGS) $(SAN_FLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/cli/start.o: CFLAGS += -DCOVINJECT_LIBDIR='"$(LIBDIR)"'

# An archive: each harness links only the objects it needs.
$(FUZZ_DIR)/parsers.a: $(FUZZ_LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_BIN): $(FUZZ_DIR)/fuzz-%: $(FUZZ_DIR)/fuzz/%.o $(FUZZ_DIR)/parsers.a
	$(FUZZ_CC) $(CFLAGS) $(SAN_FLAGS) -fsanitize=fuzzer -o $@ $^

# One run per harness: `make -j5 fuzz` runs them side by side.
fuzz: $(addprefix fuzz-run-,$(FUZZ_NAMES))

fuzz-seeds: fuzz/seeds.sh fuzz/tiny.c fuzz/tiny.map
	@sh fuzz/seeds.sh $(FUZZ_DIR)/seeds $(FUZZ_CC)

fuzz-run-%: $(FUZZ_DIR)/fuzz-% fuzz-seeds
	@mkdir -p $(FUZZ_DIR)/corpus/$*
	@if ! $< -max_total_time=$(FUZZ_TIME) -max_len=$(FUZZ_MAX_$*) \
		-artifact_prefix=$(FUZZ_DIR)/crash-$*- -print_final_stats=1 \
		$(FUZZ_DIR)/corpus/$* $(FUZZ_DIR)/seeds/$* \
		>$(FUZZ_DIR)/$*.log 2>&1; then \
		tail -40 $(FUZZ_DIR)/$*.log; \
		echo "fuzz $*: FAILED (input in $(FUZZ_DIR)/crash-$*-*)"; exit 1; \
	fi
	@runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $(FUZZ_DIR)/$*.log); \
	echo "fuzz $*: $(FUZZ_TIME) s, $$runs runs," \
		"$$(ls $(FUZZ_DIR)/corpus/$* | wc -l) inputs in corpus, no failure"

clean: clean-analysis
clean-analysis:
	rm -rf $(SAN_DIR) $(FUZZ_DIR)

.PHONY: analyze sanitize fuzz fuzz-seeds clean-analysis
