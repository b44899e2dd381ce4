# covinject: build, test, demo, install.  One flat file.
#
#   make                 ./covinject and payload/covinject-payload.so
#   make test            unit tests, then end-to-end tests on every CPython found
#   make demo            attach to a bundled example server and report its coverage
#   make install PREFIX=/usr/local DESTDIR=
#   make WERROR=1        warnings are errors (CI)

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib/covinject
PYTHON ?= /usr/bin/python3

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
	inject/elf.o inject/maps.o \
	inject/arch/$(ARCH).o
CLI_OBJ := cli/main.o cli/start.o cli/control.o cli/tree.o cli/util.o \
	cli/proc.o cli/signames.o
PAYLOAD_OBJ := payload/payload.o payload/pyapi.o payload/collect.o \
	payload/store.o payload/writer.o payload/config.o payload/signals.o \
	payload/hooks.o
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
		payload/store.o payload/config.o inject/inject.o inject/borrow.o \
		inject/remote.o inject/ptrace.o \
		inject/arch/$(ARCH).o
	$(CC) $(CFLAGS) -o $@ $^

deps:
	@sh test/deps.sh $(PYTHON)

test: all test/unit deps
	$(PYTHON) test/run.py

# make test, plus 200 kills of covinject on every interpreter and 1,000
# start/dump/stop cycles under request load per interpreter (~10 minutes)
test-long: all test/unit deps
	COVINJECT_KILL_TRIALS=200 COVINJECT_LONG=1 $(PYTHON) test/run.py

demo: all deps
	$(PYTHON) examples/demo.py

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)
	install -m 755 covinject $(DESTDIR)$(BINDIR)/covinject
	install -m 644 $(PAYLOAD) $(DESTDIR)$(LIBDIR)/covinject-payload.so

clean:
	rm -rf covinject $(PAYLOAD) test/unit examples/out $(shell find . -name '*.[od]')

.PHONY: all deps test test-long demo install clean
-include $(shell find . -name '*.d' 2>/dev/null)
