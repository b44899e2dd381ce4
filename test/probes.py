"""End-to-end tests of the probe collector (start --collector probe,
CPython 3.9-3.11: payload/probes.c)."""
import os

from lib import Target, check, cli, cli_ok, measured, tagged, wait_for
from parity import line_from, parity_lines


def probe_only(fn):
    fn.since, fn.until = (3, 9), (3, 12)
    return fn


@probe_only
def t_probe_parity_lines(exe, tmp):
    """With probes, the corpus's lines equal coverage.py's, as with the trace
    function: the same tags, no new ones."""
    parity_lines(exe, tmp, "--collector", "probe", "--watch-window", "0")


def answer(t, cmd, prefix):
    t.send(cmd)
    return line_from(t, prefix)[len(prefix):].strip()


def late_module(tmp):
    """A module the target imports only after start."""
    with open(os.path.join(tmp, "late_mod.py"), "w") as f:
        f.write("X = 1\n\n\ndef f():\n    return X + 1\n\n\ndef g():\n    return 2\n")
    return os.path.realpath(os.path.join(tmp, "late_mod.py"))


@probe_only
def t_probe_lifecycle(exe, tmp):
    """Functions, closures, methods, lambdas and generators made before start
    run probed copies: their lines are recorded; a module imported after
    start is measured; tracebacks read as before; dump --reset records them
    again; stop puts every original code object and importlib back, and
    the process runs on."""
    out = os.path.join(tmp, "out")
    os.mkdir(out)
    late = late_module(tmp)
    t = Target(exe, "probed.py", tmp)
    tb_before = answer(t, "tb", "TB")
    check(answer(t, "check", "ORIG") == "1 1 None", "the target's own check")
    cli_ok("start", "--collector", "probe", "-o", out, t.pid)
    status = cli_ok("status", t.pid)
    check("bytecode probes in" in status, "status: %s" % status)
    answer(t, "call", "DONE")
    answer(t, "import", "DONE")
    check(answer(t, "tb", "TB") == tb_before, "tracebacks differ with probes")
    path = cli_ok("dump", "--reset", t.pid).strip()
    want = tagged("probed.py", "call") | tagged("probed.py", "tb")
    got = measured(path, "probed.py")
    check(want <= got, "not recorded: %s" % sorted(want - got))
    from coverage import CoverageData
    d = CoverageData(path)
    d.read()
    check(sorted(d.lines(late) or ()) == [1, 4, 5, 8], "late_mod.py: %s" % (
        sorted(d.lines(late) or ())))
    answer(t, "call", "DONE")
    path = cli_ok("stop", t.pid).strip()
    got = measured(path, "probed.py")
    check(tagged("probed.py", "call") <= got, "after --reset, not recorded: %s" % (
        sorted(tagged("probed.py", "call") - got)))
    now = answer(t, "check", "ORIG")
    check(now == "1 1 None", "after stop, code objects, exec_module or the trace "
          "function are not the originals: %s" % now)
    answer(t, "call", "DONE")
    t.send("quit")
    t.proc.wait(timeout=10)
    check(t.proc.returncode == 0, "target exit status %s" % t.proc.returncode)


@probe_only
def t_probe_watch_window(exe, tmp):
    """Frames running at start are watched by the trace function for the
    window, then status names them as not measured and the trace function
    is gone."""
    t = Target(exe, "probed.py", tmp)
    cli_ok("start", "--collector", "probe", "--watch-window", "0.5", "-o", tmp, t.pid)
    now = answer(t, "check", "ORIG")
    check(now.endswith("covinject_tracer"), "no trace function for the running "
          "main() at start: %s" % now)
    wait_for(lambda: "watch window ended" in cli_ok("status", t.pid),
             "status: the watch window ended", timeout=10)
    now = answer(t, "check", "ORIG")
    check(now.endswith("None"), "the trace function is still set: %s" % now)
    answer(t, "call", "DONE")
    got = measured(cli_ok("stop", t.pid).strip(), "probed.py")
    check(tagged("probed.py", "call") <= got, "not recorded: %s" % (
        sorted(tagged("probed.py", "call") - got)))


@probe_only
def t_probe_watch_done(exe, tmp):
    """A frame running at start is watched until every line of its code has
    run: then the trace function no longer runs for it, and its lines were
    recorded."""
    t = Target(exe, "probed.py", tmp)
    cli_ok("start", "--collector", "probe", "--watch-window", "0", "-o", tmp, t.pid)
    wait_for(lambda: "for 3 frames that were running" in cli_ok("status", t.pid),
             "status: 3 frames watched (the module, main, the worker's loop)")
    answer(t, "work", "DONE")
    wait_for(lambda: "for 2 frames that were running" in cli_ok("status", t.pid),
             "status: the worker's loop no longer watched", timeout=10)
    got = measured(cli_ok("stop", t.pid).strip(), "probed.py")
    check(tagged("probed.py", "work") <= got, "not recorded: %s" % (
        sorted(tagged("probed.py", "work") - got)))


@probe_only
def t_probe_refusals(exe, tmp):
    """--collector takes trace or probe."""
    r = cli("start", "--collector", "fast", "1")
    check(r.returncode == 2 and "give trace or probe" in r.stderr, r.stderr)


E2E = [t_probe_parity_lines, t_probe_lifecycle, t_probe_watch_window, t_probe_watch_done,
       t_probe_refusals]
