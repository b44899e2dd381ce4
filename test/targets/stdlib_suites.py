# CPython's own test suites run in a live process (test/parity.py,
# t_parity_stdlib_suites).  argv: SUITES [oracle DATAFILE INCLUDE].
# READY, then on "go" the suites run (with coverage.py started in-process
# at that point when "oracle" is given), then "DONE tests failures
# errors skipped"; "quit" ends it.
import io
import os
import sys
import unittest

sys.path.append("/usr/lib/python3/dist-packages")
import coverage  # noqa: E402  (imported in both modes: the same modules loaded)

names = sys.argv[1].split(",")
oracle = len(sys.argv) > 2 and sys.argv[2] == "oracle"
# coverage.py set up in both modes, started only in one: what its set-up
# runs (sysconfig, say) runs before "go" either way.
cov = coverage.Coverage(data_file=sys.argv[3] if oracle else None,
                        include=sys.argv[4].split(",") if oracle else None,
                        config_file=False)
cov._init()
cov._post_init()
cov._init_for_start()
cov._inited_for_start = True
print("READY", flush=True)
sys.stdin.readline()
commands, sys.stdin = sys.stdin, open(os.devnull)  # a suite reading stdin gets EOF
if oracle:
    cov.start()
suite = unittest.defaultTestLoader.loadTestsFromNames(["test." + n for n in names])
result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(suite)
if oracle:
    cov.stop()
    cov.save()
for test, _ in result.failures + result.errors:
    print("FAILED", test.id(), flush=True)
print("DONE", result.testsRun, len(result.failures), len(result.errors),
      len(result.skipped), flush=True)
commands.readline()
