#!/usr/bin/env python3
"""covinject's test runner: the C unit tests, then the end-to-end tests.

End-to-end tests start real Python processes (every CPython >= 3.9 found:
the system's python3, every version under `pyenv root`, and any listed in
COVINJECT_PYTHONS), attach the real ./covinject, and read the data files
through coverage.py itself.  Nothing is mocked.

Every test prints PASS, FAIL or SKIP with its name; the last line is
"N passed, M failed, K skipped" and the exit status is 1 on any failure.
Run a subset with: test/run.py -k NAME-SUBSTRING

No process a test started outlives it (procs.py says how): a test that
leaves one running fails, naming it, and so does the run if any is left
at its end.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

import containers
import core
import parity
import probes
import procs
import safety
import servers
from lib import ROOT, Failure, Skip, Target, check, discover

# ---- runner -----------------------------------------------------------------

class Results:
    def __init__(self, pattern):
        self.passed = self.failed = self.skipped = 0
        self.pattern = pattern
        self.by_label = {}      # "[label]" of a test's name -> [passed, failed]

    def count(self, name, failed):
        m = re.search(r"\[([^\]]+)\]$", name)
        if m:
            self.by_label.setdefault(m.group(1), [0, 0])[failed] += 1

    def run(self, name, fn, exe=None):
        if self.pattern and self.pattern not in name:
            return
        tmp = tempfile.mkdtemp(prefix="covinject-test-")
        t0 = time.monotonic()
        try:
            try:
                fn(exe, tmp) if exe else fn(tmp) if fn.__code__.co_argcount == 1 else fn()
            finally:
                left = end_processes()
            check(not left, "left running: %s" % "; ".join(left))
            self.passed += 1
            self.count(name, 0)
            print("PASS %s (%.1f s)" % (name, time.monotonic() - t0), flush=True)
        except Skip as e:
            self.skip(name, str(e))
        except Exception as e:
            self.failed += 1
            self.count(name, 1)
            where = ""
            if not isinstance(e, Failure):
                tb = traceback.extract_tb(e.__traceback__)[-1]
                where = " (at %s:%d)" % (os.path.basename(tb.filename), tb.lineno)
            print("FAIL %s: %s: %s%s" % (name, type(e).__name__, e, where), flush=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def skip(self, name, why):
        if self.pattern and self.pattern not in name:
            return
        self.skipped += 1
        print("SKIP %s: %s" % (name, why), flush=True)


def end_processes():
    """Every target ends with everything it forked; then whatever else is
    still below the runner is killed: "PID CMDLINE" of each of those."""
    try:
        Target.kill_all()
    except (OSError, subprocess.TimeoutExpired):
        pass                            # sweep() names what did not end
    return procs.sweep()


def unit_tests(res):
    if res.pattern and res.pattern not in "unit":
        return
    r = subprocess.run([os.path.join(ROOT, "test", "unit")], capture_output=True, text=True)
    sys.stdout.write(r.stdout)
    m = re.search(r"unit: (\d+) passed, (\d+) failed", r.stdout)
    if not m:
        res.failed += 1
        print("FAIL unit: no summary (exit %d) %s" % (r.returncode, r.stderr), flush=True)
        return
    res.passed += int(m.group(1))
    res.failed += int(m.group(2)) + (1 if r.returncode and not int(m.group(2)) else 0)


def main():
    pattern = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else None
    if os.geteuid() != 0:
        sys.exit("test/run.py: the end-to-end tests need root (ptrace and setuid)")
    procs.become_subreaper()
    # the targets lead sessions of their own, out of reach of a signal to
    # the runner's group: end them on the way out (see __main__ below)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    res = Results(pattern)
    unit_tests(res)
    found, skipped = discover()
    for why in skipped:
        res.skip("interpreter " + why.split(":")[0], why.split(": ", 1)[1])
    print("interpreters: %s" % ", ".join("%s (%d.%d)" % (l, v[0], v[1]) for l, _, v in found),
          flush=True)
    for label, exe, ver in found:
        for fn in core.E2E + servers.E2E + safety.E2E + parity.E2E + containers.E2E + \
                probes.E2E:
            if ver >= getattr(fn, "since", ver) and ver < getattr(fn, "until", (99,)):
                res.run("%s [%s]" % (fn.__name__[2:], label), fn, exe)
            elif hasattr(fn, "until"):          # a feature of some versions
                res.skip("%s [%s]" % (fn.__name__[2:], label),
                         "for %d.%d-%d.%d only" % (fn.since + (fn.until[0], fn.until[1] - 1)))
            else:
                res.skip("%s [%s]" % (fn.__name__[2:], label),
                         "a feature of %d.%d and later" % fn.since)
    # the matrix again with --collector trace, where there is a choice
    # (3.9-3.11, one interpreter per minor version): the default there is
    # probes, and every feature must keep working with either
    choice = {}
    for f in found:
        if (3, 9) <= f[2] < (3, 12) and (f[2] not in choice or f[0] != "system"):
            choice[f[2]] = f
    os.environ["COVINJECT_TEST_START"] = "--collector trace"
    try:
        for label, exe, ver in sorted(choice.values(), key=lambda f: f[2]):
            for fn in core.E2E + servers.E2E + safety.E2E + parity.E2E + containers.E2E:
                if ver >= getattr(fn, "since", ver):
                    res.run("%s [%s +trace]" % (fn.__name__[2:], label), fn, exe)
        for name, fn in servers.SYSTEM if any(f[0] == "system" for f in found) else []:
            res.run(name.replace("]", " +trace]"), fn)
    finally:
        del os.environ["COVINJECT_TEST_START"]
    res.run("install", core.t_install)
    res.run("help and version", core.t_help)
    for label, exe, _ in [f for f in found if f[0] == "system" or f[0].startswith("sid-")]:
        res.run("gunicorn and flask [%s]" % label, servers.GUNICORN, exe)
    for name, fn in servers.SYSTEM + parity.SYSTEM:
        res.run(name, fn)
    system = [f for f in found if f[0] == "system"] or found[:1]
    # the kill and fault tests: on the system python3, the sid root's (3.14+)
    # and the oldest (2.7, 3.6: cov_start may make their GIL); on every
    # interpreter only in make test-long
    every = os.environ.get("COVINJECT_KILL_TRIALS") and found or system + [
        f for f in found if f[0].startswith("sid-") or f[2] < (3, 7)]
    for label, exe, _ in every:
        for fn in safety.SYSTEM_EXE:
            res.run("%s [%s]" % (fn.__name__[2:], label), fn, exe)
    for label, exe, _ in system:
        for fn in containers.SYSTEM_EXE:
            res.run("%s [%s]" % (fn.__name__[2:], label), fn, exe)
    if os.environ.get("COVINJECT_LONG"):
        for label, exe, _ in found:
            for fn in safety.LONG:
                res.run("%s [%s]" % (fn.__name__[2:], label), fn, exe)
    # the refusals: on the system python3, and on the oldest versions, whose
    # C-API covinject makes up in part (payload/oldapi.c)
    for label, exe, _ in system + [f for f in found if f[2] < (3, 7)]:
        tmp = tempfile.mkdtemp(prefix="covinject-refusal-")
        try:
            for name, fn in core.refusal_tests(exe, tmp):
                res.run("refusal: %s [%s]" % (name, label), fn)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print("by interpreter: " + ", ".join("%s (%d.%d) %d passed, %d failed" % (
        (label,) + ver + tuple(res.by_label.get(label, (0, 0)))) for label, _, ver in found))
    for left in procs.sweep():
        res.failed += 1
        print("FAIL left running at the end of the run: %s" % left, flush=True)
    print("%d passed, %d failed, %d skipped" % (res.passed, res.failed, res.skipped))
    return 1 if res.failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        procs.sweep()                   # an interrupted run leaves none either

