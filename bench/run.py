#!/usr/bin/env python3
"""covinject's benchmark: the overhead a running program pays, and what
attaching, snapshots and the collector's memory cost.  `make bench` runs it.

    /usr/bin/python3 bench/run.py [--reps N] [--chunks N] [--python VER]...
                                  [--workload NAME]... [--only PART]...

Parts (all by default; --only picks some):

  overhead  for every interpreter found (/usr/bin/python3, every pyenv
            version >= 3.9, the sid root's 3.14 and 3.15) and every workload
            of bench/workloads.py (web,
            calls, hot): a baseline run with no tool, covinject attached from
            outside after warm-up (on 3.9-3.11 with --collector trace, and
            again with --collector probe), covinject attached then stopped before the
            timed work, and coverage.py in-process where it is importable
            (its default core, and COVERAGE_CORE=sysmon on 3.12+), and on
            3.12+ the sys.monitoring floor: an in-process LINE tool whose
            callback only returns DISABLE, the least any collector built on
            sys.monitoring can cost; covinject start --branch on the hot
            workload (3.12+).  Each rep runs B T1 B T2 B ... B:
            every tool run sits between two baseline runs and its ratio is
            taken against their mean, for the first chunk, the last chunk
            and the whole run; the table gives the median over reps.
  attach    bench/attach.py: covinject start/stop against an idle server and
            one under request load; borrowed-thread stop time, start wall time.
  dump      bench/dumpmem.py: covinject dump of a 1,000-module app, and the
            largest gap a ticking Python thread in the target saw meanwhile.
  memory    bench/dumpmem.py: VmRSS growth of the target per 100,000 lines.

Writes bench/RESULTS.md (date, machine, interpreters, command, tables, the
issue's targets met or not) and prints it.  Every process started is killed
on the way out.  COVINJECT_BIN=/path/to/covinject measures another build
(its payload must sit next to it, as in a build tree).

Noise: ratios are medians over reps of B T B sequences as the issue asks,
with "best-of" estimates next to them (fastest tool chunk over fastest
baseline chunk), since on a shared or virtual machine noise only adds time;
each part also reports how much CPU other processes used while it ran.
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import fmt, log, median  # noqa: E402

WORKLOADS_PY = os.path.join(common.BENCH, "workloads.py")
WORKLOADS = ["web", "calls", "hot"]
TOOL_NAMES = {
    "covinject": "covinject (on 3.9-3.11 with --collector trace)",
    "after-stop": "covinject, stopped before the timed work",
    "coverage": "coverage.py in-process (default core)",
    "sysmon": "coverage.py in-process, COVERAGE_CORE=sysmon",
    "floor": "sys.monitoring floor: an in-process LINE tool that only returns DISABLE",
    "branch": "covinject start --branch (3.12+, the hot workload)",
}


# ---- one run ------------------------------------------------------------------

def tools_for(py, workload=None):
    """The tools measured on py; --branch only on the hot workload, whose
    clamp() has a branch that always goes the same way."""
    tools = ["covinject", "after-stop"]
    if (3, 9) <= py["ver"] < (3, 12):
        tools += ["probe", "probe-after-stop"]
    if py.get("slipcover"):
        tools.append("slipcover")
    if py["ver"] >= (3, 12):
        tools.append("floor")
        if workload in (None, "hot"):
            tools.append("branch")
    if py["coverage"]:
        tools.append("coverage")
        if py["ver"] >= (3, 12):
            tools.append("sysmon")
    return tools


def measured_lines(pid):
    """Lines covinject has recorded in pid: a snapshot refreshes the count,
    then covinject status reports it."""
    common.covinject_ok("dump", pid)
    r, _ = common.covinject("status", pid)
    for line in r.stdout.splitlines():
        if line.startswith("measured:"):
            return int(line.split()[3])
    return -1


def run_once(py, workload, tool, opts, out_dir):
    """One process: warm up, maybe attach, time the chunks.  A dict."""
    argv = [py["exe"], WORKLOADS_PY, workload, "--chunks", str(opts.chunks),
            "--scale", str(opts.scale)]
    env = dict(os.environ)
    env.pop("COVERAGE_CORE", None)
    if tool in ("coverage", "sysmon"):
        argv.append("--coverage")
    if tool == "sysmon":
        env["COVERAGE_CORE"] = "sysmon"
    if tool == "floor":
        argv.append("--monitoring-floor")
    if tool == "slipcover":
        # SlipCover (bytecode probes, instrumented at import: it cannot
        # attach) where the interpreter imports it, PYTHONPATH included;
        # only its steady state compares (README, "Probes")
        argv[1:1] = ["-m", "slipcover", "--silent", "--out", os.devnull]
    result = {"tool": tool}
    with common.Target(argv, env=env) as target:
        target.expect("READY")
        if tool in ("covinject", "after-stop", "branch"):
            # on 3.9-3.11 the trace function, which the probes (the
            # default there) are compared with
            extra = ("--branch",) if tool == "branch" else \
                ("--collector", "trace") if (3, 9) <= py["ver"] < (3, 12) else ()
            result["start_ms"], result["borrowed_ms"] = common.start(
                target.pid, out_dir, *extra)
        if tool in ("probe", "probe-after-stop"):
            # start --collector probe: timed once the watch window of the
            # frames running at start (the workload's main) is over, so the
            # figure is the probes' steady state (README, "Probes")
            result["start_ms"], result["borrowed_ms"] = common.start(
                target.pid, out_dir, "--collector", "probe", "--watch-window", "0.2")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and "watch window ended" not in \
                    common.covinject_ok("status", target.pid)[0].stdout:
                time.sleep(0.05)
            if tool == "probe-after-stop":
                common.stop(target.pid)
        if tool == "after-stop":
            common.stop(target.pid)
        target.send("go")
        result.update(json.loads(target.expect("{")))
        if tool in ("covinject", "probe"):
            result["lines"] = measured_lines(target.pid)
        target.send("exit")
    return result


# ---- a sequence B T1 B T2 ... B and its ratios --------------------------------

def run_sequence(py, workload, tools, opts, out_dir):
    """[(tool, tool run, baseline before, baseline after)]."""
    base = run_once(py, workload, "baseline", opts, out_dir)
    pairs = []
    for tool in tools:
        run = run_once(py, workload, tool, opts, out_dir)
        after = run_once(py, workload, "baseline", opts, out_dir)
        pairs.append((tool, run, base, after))
        base = after
    return pairs


def ratios(run, before, after):
    """first, last and whole-run ratios against the mean of two baselines."""
    def mean_of(pick):
        return (pick(before["chunks"]) + pick(after["chunks"])) / 2
    return {
        "first": run["chunks"][0] / mean_of(lambda c: c[0]),
        "last": run["chunks"][-1] / mean_of(lambda c: c[-1]),
        "all": sum(run["chunks"]) / mean_of(sum),
    }


def best_ratios(runs, bases):
    """Noise-robust companion: the fastest tool chunk over the fastest
    baseline chunk, from as many baseline runs as tool runs (the one right
    before each); for the first chunk, and for the steady state (chunks 2
    to N).  On a machine whose speed varies, noise only ever adds time."""
    def steady(chunks):
        return min(chunks[1:] or chunks)
    return {
        "first_best": min(r["chunks"][0] for r in runs) / min(b["chunks"][0] for b in bases),
        "steady_best": (min(steady(r["chunks"]) for r in runs) /
                        min(steady(b["chunks"]) for b in bases)),
    }


def overhead(pythons, opts, out_dir):
    """{(label, workload, tool): summary}, and the raw runs."""
    raw = {}
    total = opts.reps * len(pythons) * len(opts.workload)
    done = 0
    for rep in range(opts.reps):
        for py in pythons:
            for workload in opts.workload:
                done += 1
                t0 = time.monotonic()
                for tool, run, before, after in run_sequence(
                        py, workload, tools_for(py, workload), opts, out_dir):
                    raw.setdefault((py["label"], workload, tool), []).append(
                        (run, before, after))
                log("overhead %d/%d: %s %s rep %d (%.0f s)" % (
                    done, total, py["version"], workload, rep + 1,
                    time.monotonic() - t0))
    summary = {}
    for key, runs in raw.items():
        rs = [ratios(*r) for r in runs]
        s = {k: median([r[k] for r in rs]) for k in ("first", "last", "all")}
        s.update(best_ratios([r[0] for r in runs], [r[1] for r in runs]))
        s["n"] = len(runs)
        s["start_ms"] = median([r[0]["start_ms"] for r in runs if "start_ms" in r[0]])
        s["lines"] = min([r[0].get("lines", 0) for r in runs]) \
            if key[2] in ("covinject", "probe") else None
        infos = [r[0]["coverage"] for r in runs if r[0].get("coverage")]
        s["coverage"] = infos[0] if infos else None
        summary[key] = s
    return summary, raw


# ---- reporting ----------------------------------------------------------------

def cell(s, keys=("first", "last")):
    if not s:
        return "n/a"
    return " / ".join(fmt(s[k]) + "x" for k in keys)


def overhead_table(pythons, opts, summary):
    lines = [
        "| Python | workload | covinject first / last | covinject best-of: first / steady "
        "| after stop: whole run / best-of steady | coverage.py first / last "
        "| coverage.py best-of: first / steady | coverage.py sysmon first / last "
        "| sys.monitoring floor best-of: first / steady | covinject start (ms) "
        "| --collector probe best-of: first / steady | after probes stop: whole run / "
        "best-of steady | SlipCover best-of steady |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for py in pythons:
        for w in opts.workload:
            get = lambda tool: summary.get((py["label"], w, tool))  # noqa: E731
            ci, cov, sysmon = get("covinject"), get("coverage"), get("sysmon")
            if py["ver"] < (3, 12):
                sysmon_cell = "n/a (< 3.12)"
            elif not py["coverage"]:
                sysmon_cell = "n/a (no coverage.py)"
            elif sysmon and sysmon["coverage"] and "sys" not in sysmon["coverage"]["tracer"].lower():
                sysmon_cell = "ignored (%s ran)" % sysmon["coverage"]["tracer"]
            else:
                sysmon_cell = cell(sysmon)
            no_cov = "n/a (not importable)"
            floor = get("floor")
            probe, slip, pstop = get("probe"), get("slipcover"), get("probe-after-stop")
            lines.append("| %s%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                py["version"], " (system)" if py["label"] == "system" else "", w,
                cell(ci), cell(ci, ("first_best", "steady_best")),
                cell(get("after-stop"), ("all", "steady_best")),
                cell(cov) if py["coverage"] else no_cov,
                cell(cov, ("first_best", "steady_best")) if py["coverage"] else no_cov,
                sysmon_cell,
                cell(floor, ("first_best", "steady_best")) if floor else "n/a (< 3.12)",
                fmt(ci["start_ms"], "%.1f") if ci else "n/a",
                cell(probe, ("first_best", "steady_best")) if probe else "n/a (3.9-3.11)",
                cell(pstop, ("all", "steady_best")) if pstop else "n/a (3.9-3.11)",
                cell(slip, ("steady_best",)) if slip else "n/a (not importable)"))
    return lines


def detail_table(pythons, opts, summary):
    lines = ["| Python | workload | tool | n | first | last | whole run | first, best-of "
             "| steady, best-of | lines seen |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for py in pythons:
        for w in opts.workload:
            for tool in tools_for(py, w):
                s = summary.get((py["label"], w, tool))
                if not s:
                    continue
                seen = s["lines"] if s["lines"] is not None else (
                    s["coverage"]["lines"] if s["coverage"] else "")
                lines.append("| %s | %s | %s | %d | %s | %s | %s | %s | %s | %s |" % (
                    py["version"], w, tool, s["n"], fmt(s["first"], "%.3f"),
                    fmt(s["last"], "%.3f"), fmt(s["all"], "%.3f"),
                    fmt(s["first_best"], "%.3f"), fmt(s["steady_best"], "%.3f"), seen))
    return lines


def branch_table(pythons, opts, summary):
    """--branch on the hot workload, beside lines only: a branch that always
    goes one way keeps reporting on 3.12/3.13 (one BRANCH event for both
    directions), once per direction on 3.14+ (BRANCH_LEFT, BRANCH_RIGHT)."""
    lines = ["| Python | branch events | --branch first / last | --branch best-of: first / "
             "steady | lines only, best-of: first / steady |",
             "| --- | --- | --- | --- | --- |"]
    for py in pythons:
        b = summary.get((py["label"], "hot", "branch"))
        if not b:
            continue
        lines.append("| %s | %s | %s | %s | %s |" % (
            py["version"], "BRANCH_LEFT, BRANCH_RIGHT" if py["ver"] >= (3, 14) else "BRANCH",
            cell(b), cell(b, ("first_best", "steady_best")),
            cell(summary.get((py["label"], "hot", "covinject")), ("first_best", "steady_best"))))
    return lines


def baseline_table(pythons, opts, raw):
    """Absolute baseline chunk times, to judge the machine's noise."""
    lines = ["| Python | workload | baseline chunk, median (ms) | min | max |",
             "| --- | --- | --- | --- | --- |"]
    for py in pythons:
        for w in opts.workload:
            chunks = [c for run in raw.get((py["label"], w, "covinject"), [])
                      for b in run[1:] for c in b["chunks"]]
            if chunks:
                lines.append("| %s | %s | %.1f | %.1f | %.1f |" % (
                    py["version"], w, 1000 * median(chunks), 1000 * min(chunks),
                    1000 * max(chunks)))
    return lines


def overhead_targets(pythons, opts, summary):
    """[(target, verdict, detail)] for the issue's overhead targets."""
    out = []

    def worst(vers, tool, key):
        vals = [(summary[(p["label"], w, tool)][key], p["version"], w)
                for p in pythons if p["ver"] in vers for w in opts.workload
                if (p["label"], w, tool) in summary]
        return max(vals) if vals else None

    def verdict(name, found, limit, best=None):
        """Judged on the median ratio; the best-of estimate is given too, and
        where the two disagree the verdict says so."""
        if found is None:
            out.append((name, "not measured", "no such interpreter here"))
            return
        v, ver, w = found
        detail = "median: worst %.3fx (%s, %s)" % (v, ver, w)
        word = "met" if v <= limit else "NOT met"
        if best is not None:
            detail += "; best-of: worst %.3fx (%s, %s)" % best
            if (best[0] <= limit) != (v <= limit):
                word += " (best-of: %s)" % ("met" if best[0] <= limit else "NOT met")
        out.append((name, word, detail))

    new = [v for v in common.SUPPORTED if v >= (3, 12)]
    old = [(3, 9), (3, 10), (3, 11)]
    span = "%d.%d-%d.%d" % (new[0] + new[-1])
    verdict("%s steady state (last chunk; best-of: steady) <= 1.02x" % span,
            worst(new, "covinject", "last"),
            1.02, worst(new, "covinject", "steady_best"))
    floor = worst(new, "floor", "steady_best")
    if floor and out[-1][1] != "not measured":
        out[-1] = out[-1][:2] + (out[-1][2] + "; for reference, the sys.monitoring "
                                 "floor (in-process tool returning DISABLE), best-of: "
                                 "worst %.3fx (%s, %s)" % floor,)
    verdict("%s first chunk <= 1.15x" % span, worst(new, "covinject", "first"), 1.15,
            worst(new, "covinject", "first_best"))
    two_way = [v for v in new if v >= (3, 14)]
    verdict("3.14+ --branch steady state, a one-way branch in a hot loop (last chunk; "
            "best-of: steady) <= 1.05x", worst(two_way, "branch", "last"), 1.05,
            worst(two_way, "branch", "steady_best"))
    verdict("3.9-3.11 web <= 2.0x (whole run; best-of: steady)",
            _worst_workload(summary, pythons, old, "web", "all"), 2.0,
            _worst_workload(summary, pythons, old, "web", "steady_best"))
    verdict("after stop <= 1.02x (whole run; best-of: steady)",
            worst([v for v in common.SUPPORTED], "after-stop", "all"), 1.02,
            worst([v for v in common.SUPPORTED], "after-stop", "steady_best"))
    # below coverage.py's C tracer: only where coverage.py is importable
    rows, bad, bad_best = [], [], []
    for p in pythons:
        if p["ver"] not in old or not p["coverage"]:
            continue
        for w in opts.workload:
            a = summary.get((p["label"], w, "covinject"))
            b = summary.get((p["label"], w, "coverage"))
            if a and b:
                rows.append("%s %s: %.2fx vs %.2fx (best-of %.2fx vs %.2fx)" % (
                    p["version"], w, a["all"], b["all"], a["steady_best"], b["steady_best"]))
                if a["all"] >= b["all"]:
                    bad.append(w)
                if a["steady_best"] >= b["steady_best"]:
                    bad_best.append(w)
    if rows:
        word = "NOT met" if bad else "met"
        if bool(bad) != bool(bad_best):
            word += " (best-of: %s)" % ("NOT met" if bad_best else "met")
        out.append(("3.9-3.11 below coverage.py's C tracer (whole run; best-of: steady)",
                    word, "; ".join(rows) +
                    "; only measurable where coverage.py is importable (/usr/bin/python3)"))
    else:
        out.append(("3.9-3.11 below coverage.py's C tracer", "not measured",
                    "coverage.py importable by no 3.9-3.11 interpreter"))
    return out


def _worst_workload(summary, pythons, vers, workload, key):
    vals = [(summary[(p["label"], workload, "covinject")][key], p["version"], workload)
            for p in pythons if p["ver"] in vers
            and (p["label"], workload, "covinject") in summary]
    return max(vals) if vals else None


# ---- main ---------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="repetitions of every "
                    "B T B sequence (default 3)")
    ap.add_argument("--chunks", type=int, default=10, help="timed chunks per run")
    ap.add_argument("--scale", type=float, default=1.0, help="work per chunk")
    ap.add_argument("--workload", action="append", choices=WORKLOADS)
    ap.add_argument("--python", action="append", help="only these interpreters "
                    "(label, version prefix such as 3.12, or path)")
    ap.add_argument("--only", action="append",
                    choices=["overhead", "attach", "dump", "memory"])
    ap.add_argument("--attaches", type=int, default=50, help="start/stop cycles "
                    "per interpreter and scenario (attach part)")
    ap.add_argument("--output", default=os.path.join(common.BENCH, "RESULTS.md"))
    opts = ap.parse_args(argv)
    opts.workload = opts.workload or WORKLOADS
    opts.only = opts.only or ["overhead", "attach", "dump", "memory"]
    return opts


def main():
    opts = parse_args()
    if not os.access(common.COVINJECT, os.X_OK):
        sys.exit("bench/run.py: %s not built (run make)" % common.COVINJECT)
    import attach
    import dumpmem
    command = " ".join([sys.executable] + sys.argv)
    t_start = time.monotonic()
    pythons = common.select(common.discover(), opts.python)
    if not pythons:
        sys.exit("bench/run.py: no supported interpreter found")
    log("interpreters: " + ", ".join(p["version"] for p in pythons))
    out = ["# covinject benchmark results", ""]
    out += common.machine_lines(pythons, command)
    targets = []
    out.append("- covinject: %s" % common.revision())
    with tempfile.TemporaryDirectory(prefix="covinject-bench-") as tmp:
        out.append("- data files written to %s (%s)" % (tmp, common.fs_type(tmp)))
        out.append("")
        if "overhead" in opts.only:
            with common.CpuMonitor() as mon:
                summary, raw = overhead(pythons, opts, tmp)
            out += ["## Overhead: tool / baseline time", "",
                    "Ratios of chunk times, median over %d reps of B T B sequences "
                    "(%d chunks per run). *first*: the first timed chunk after "
                    "attaching; *last*: the last chunk; *whole run*: the sum of all "
                    "chunks.  *best-of*: the fastest tool chunk over the fastest "
                    "baseline chunk (the baseline run right before each tool run), for "
                    "the first chunk and for the *steady* state (chunks 2 to N): on a "
                    "machine whose speed varies, noise only ever adds time, so these "
                    "are the estimates least disturbed by it."
                    % (opts.reps, opts.chunks), "",
                    "While this part ran, " + mon.summary() + ".", ""]
            out += overhead_table(pythons, opts, summary) + [""]
            if "hot" in opts.workload:
                out += ["### Branch coverage (hot workload)", "",
                        "covinject `start --branch` against lines only.  The hot "
                        "workload's `clamp()` has a branch that always goes the same "
                        "way: on 3.12/3.13 its BRANCH event can only be disabled once "
                        "both directions ran, so it costs a call every time; on 3.14+ "
                        "each direction reports once and is disabled.", ""]
                out += branch_table(pythons, opts, summary) + [""]
            out += ["### Details", ""] + detail_table(pythons, opts, summary) + [""]
            out += ["### Baseline chunk times (noise)", ""]
            out += baseline_table(pythons, opts, raw) + [""]
            targets += overhead_targets(pythons, opts, summary)
        if "attach" in opts.only:
            with common.CpuMonitor() as mon:
                res = attach.measure(pythons, opts.attaches, tmp)
            out += attach.report(res) + ["", "While this part ran, " + mon.summary() + ".", ""]
            targets += attach.targets(res)
        if "dump" in opts.only or "memory" in opts.only:
            with common.CpuMonitor() as mon:
                res = dumpmem.measure(pythons, tmp, dump="dump" in opts.only,
                                      memory="memory" in opts.only)
            out += dumpmem.report(res) + ["", "While this part ran, " + mon.summary() + ".", ""]
            targets += dumpmem.targets(res)
    out += ["## Targets", "", "| target | verdict | numbers |", "| --- | --- | --- |"]
    out += ["| %s | %s | %s |" % t for t in targets]
    out += ["", "Total benchmark time: %.0f s." % (time.monotonic() - t_start)]
    text = "\n".join(out) + "\n"
    with open(opts.output, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
