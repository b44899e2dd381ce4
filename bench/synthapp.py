#!/usr/bin/env python3
"""A synthetic application for the dump and memory benchmarks: many
generated modules (bench/dumpmem.py writes them), a ticking thread, and a
command loop on stdin.

    synthapp.py APPDIR

Imports every module mNNNN.py of APPDIR, starts a thread that timestamps a
tight loop and remembers the largest gap between two of its iterations,
prints "READY N" (N modules) and answers one line per command:

    run       call run() of every module once      -> "RAN SECONDS"
    rss       VmRSS from /proc/self/status         -> "RSS KB"
    gap       largest gap since the previous gap   -> "GAP MS TICKS"
    coverage  start coverage.py here (for comparison) -> "COVERAGE VERSION"
    quit      exit

On a machine with several CPUs the ticking thread is pinned to the last one
and the main thread to the first: a thread covinject borrows, and the
collector thread it starts, inherit the main thread's CPU, so the ticking
thread's gaps come from the GIL rather than from sharing its CPU.
"""
import glob
import importlib
import os
import sys
import threading
import time

max_gap = 0.0
ticks = 0
cov = None


def pin(cpu):
    """Pin the calling thread to cpu (Linux: pid 0 is this thread)."""
    try:
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass


def ticker(cpu):
    """Timestamp a tight loop; a long gap means this thread was held off
    (waiting for the GIL, or its CPU was taken)."""
    global max_gap, ticks
    pin(cpu)
    clock = time.perf_counter
    last = clock()
    while True:
        now = clock()
        if now - last > max_gap:
            max_gap = now - last
        last = now
        ticks += 1


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def load(appdir):
    sys.path.insert(0, appdir)
    names = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(appdir, "m*.py")))
    return [importlib.import_module(name) for name in names]


def main():
    global max_gap, ticks, cov
    modules = load(sys.argv[1])
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        pin(cpus[0])    # the main thread, and the collector thread it will lend
    threading.Thread(target=ticker, args=(cpus[-1],), daemon=True).start()
    print("READY %d" % len(modules), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "run":
            t0 = time.perf_counter()
            for i, module in enumerate(modules):
                module.run(i)
            print("RAN %.6f" % (time.perf_counter() - t0), flush=True)
        elif cmd == "rss":
            print("RSS %d" % rss_kb(), flush=True)
        elif cmd == "gap":
            gap, n = max_gap, ticks
            max_gap, ticks = 0.0, 0
            print("GAP %.3f %d" % (gap * 1000, n), flush=True)
        elif cmd == "coverage":
            import coverage
            cov = coverage.Coverage(data_file=None)
            cov.start()
            print("COVERAGE %s" % coverage.__version__, flush=True)
        elif cmd == "quit":
            break


if __name__ == "__main__":
    main()
