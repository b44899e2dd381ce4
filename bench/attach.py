#!/usr/bin/env python3
"""Attach cost: repeated `covinject start -v` then `covinject stop` against a
threaded HTTP server (bench/httpload.py serve), idle and under request load.

    /usr/bin/python3 bench/attach.py [--attaches N] [--python VER]...

Scenarios: "idle" (main thread in time.sleep, the server in a thread),
"load" (the same server hammered by a client process), and, on the first
interpreter only, "idle, poll main" (serve_forever on the main thread, which
waits in poll() with a 0.5 s timeout: after one attach that poll restarts as
restart_syscall, which shows whether the injector still finds an idle thread).

For every interpreter and scenario: the time the borrowed thread was
stopped (parsed from start's "-v" line "thread TID was borrowed for X ms"),
the wall time of `covinject start` and of `covinject stop`; median, p99 and
max.  The first start of a process also loads the payload (memfd + dlopen)
and is reported on its own.  Under load, a client process
(httpload.py hammer, 4 keep-alive connections, bounded in requests and time)
hammers the server; its request latency before and during the attaches and
its error count are reported too.

On the idle server the GIL is free, so start's wall time there is the cost
without any GIL wait; under load it includes waiting for the GIL (up to the
switch interval, 5 ms, per acquisition).  bench/run.py calls measure().
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import fmt, median, percentile  # noqa: E402

HTTPLOAD = os.path.join(common.BENCH, "httpload.py")


def cycles(pid, n, out_dir):
    """n start/stop cycles; lists of start wall, borrowed, stop wall (ms)."""
    res = {"start": [], "borrowed": [], "stop": []}
    for _ in range(n):
        wall, borrowed = common.start(pid, out_dir)
        res["start"].append(wall)
        res["borrowed"].append(borrowed)
        res["stop"].append(common.stop(pid))
    return res


SCENARIOS = {
    "idle": "no requests; main thread in time.sleep, server thread in poll",
    "load": "4 keep-alive connections hammering it (client process)",
    "idle, poll main": "no requests; serve_forever on the main thread, in "
                       "poll() with a 0.5 s timeout",
}


def scenario(py, name, n, out_dir):
    argv = [py["exe"], HTTPLOAD, "serve"] + (["--main-loop"] if "poll" in name else [])
    with common.Target(argv) as server:
        port = server.expect("READY").split()[1]
        if name != "load":
            time.sleep(0.3)
            return cycles(server.pid, n, out_dir)
        client_argv = [sys.executable, HTTPLOAD, "hammer", port, "--threads", "4",
                       "--max-requests", "3000000", "--max-seconds", "300"]
        with common.Target(client_argv) as client:
            client.expect("RUNNING")
            time.sleep(1.0)
            client.ask("stats", "{")            # drop the ramp-up
            time.sleep(2.0)
            before = json.loads(client.ask("stats", "{"))
            t0 = time.monotonic()
            res = cycles(server.pid, n, out_dir)
            res["seconds"] = time.monotonic() - t0
            during = json.loads(client.ask("stats", "{"))
            client.send("quit")
        res["client_before"], res["client_during"] = before, during
        return res


def measure(pythons, n, out_dir, poll_cycles=8):
    """{(label, scenario): raw lists}.  The "idle, poll main" scenario runs
    poll_cycles cycles on the first interpreter only: what it shows is the
    injector's, not the interpreter's."""
    results = {}
    for i, py in enumerate(pythons):
        for name in SCENARIOS:
            count = n
            if "poll" in name:
                if i or not poll_cycles:
                    continue
                count = poll_cycles
            t0 = time.monotonic()
            results[(py["label"], name)] = dict(scenario(py, name, count, out_dir),
                                                python=py["version"])
            common.log("attach: %s %s: %d cycles (%.0f s)" % (
                py["version"], name, count, time.monotonic() - t0))
    return results


def stats(xs):
    return "%s / %s / %s" % (fmt(median(xs)), fmt(percentile(xs, 99)), fmt(max(xs)))


def report(results):
    lines = ["## Attach cost", "",
             "`covinject start -v` then `covinject stop`, repeated back to back "
             "against a threaded http.server (bench/httpload.py).  Times in ms as "
             "median / p99 / max over the cycles after the first; the first cycle "
             "also loads the payload (memfd + dlopen).  Scenarios:", ""]
    lines += ["- *%s*: %s" % kv for kv in SCENARIOS.items()]
    lines += ["",
             "| Python | scenario | cycles | borrowed thread stopped | start wall "
             "| stop wall | first start: borrowed, wall |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for (label, name), r in results.items():
        lines.append("| %s | %s | %d | %s | %s | %s | %s, %s |" % (
            r["python"], name, len(r["start"]), stats(r["borrowed"][1:]),
            stats(r["start"][1:]), stats(r["stop"][1:]), fmt(r["borrowed"][0]),
            fmt(r["start"][0])))
    loads = [(k, r) for k, r in results.items() if k[1] == "load"]
    if loads:
        lines += ["", "Client under load: requests/s and latency in ms (p50 / p99 / max) "
                  "before the attaches and during them; errors must be 0.", "",
                  "| Python | before: req/s, latency | during: req/s, latency | errors |",
                  "| --- | --- | --- | --- |"]
        for _, r in loads:
            b, d = r["client_before"], r["client_during"]
            lines.append("| %s | %.0f, %s / %s / %s | %.0f, %s / %s / %s | %d |" % (
                r["python"], b["requests"] / 2.0, fmt(b["p50_ms"]), fmt(b["p99_ms"]),
                fmt(b["max_ms"]), d["requests"] / r["seconds"], fmt(d["p50_ms"]),
                fmt(d["p99_ms"]), fmt(d["max_ms"]), b["errors"] + d["errors"]))
    return lines


def targets(results):
    idle = [r for k, r in results.items() if k[1] == "idle"]
    out = []
    if not idle:
        return out
    med = max((median(r["borrowed"][1:]), r["python"]) for r in idle)
    p99 = max((percentile(r["borrowed"][1:], 99), r["python"]) for r in idle)
    out.append(("borrowed thread stopped <= 1 ms median (idle)",
                "met" if med[0] <= 1 else "NOT met",
                "worst median %.3f ms (%s); first start (payload load) excluded" % med))
    out.append(("borrowed thread stopped <= 5 ms p99 (idle)",
                "met" if p99[0] <= 5 else "NOT met", "worst p99 %.3f ms (%s)" % p99))
    wall = max((median(r["start"][1:]), r["python"]) for r in idle)
    wall99 = max((percentile(r["start"][1:], 99), r["python"]) for r in idle)
    first = max((r["start"][0], r["python"]) for r in idle)
    out.append(("start wall time <= 50 ms excluding the GIL wait (idle server: GIL free)",
                "met" if wall[0] <= 50 else "NOT met",
                "worst median %.1f ms (%s), worst p99 %.1f ms (%s), first start with "
                "payload load worst %.1f ms (%s)" % (wall + wall99 + first)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--attaches", type=int, default=50)
    ap.add_argument("--python", action="append")
    opts = ap.parse_args()
    import tempfile
    pythons = common.select(common.discover(), opts.python)
    with tempfile.TemporaryDirectory(prefix="covinject-attach-") as tmp:
        res = measure(pythons, opts.attaches, tmp)
    print("\n".join(report(res)))
    print()
    for t in targets(res):
        print("- %s: %s (%s)" % t)


if __name__ == "__main__":
    main()
