"""End-to-end tests of the probe collector (start --collector auto or
probe, CPython 3.9-3.11: payload/probes.c)."""
import os
import re
import subprocess

from core import refusal
from lib import TARGETS, Skip, Target, check, cli, cli_ok, measured, py_version, tagged, \
    wait_for
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


def pickle_path(exe, tmp):
    """PYTHONPATH for exe with Debian's cloudpickle and dill (pure Python,
    python3-cloudpickle and python3-dill), or Skip."""
    shim = os.path.join(tmp, "pickle-libs")
    os.mkdir(shim)
    for name in ("cloudpickle", "dill"):
        src = os.path.join("/usr/lib/python3/dist-packages", name)
        if not os.path.isdir(src):
            raise Skip("%s is not installed (Debian's python3-%s)" % (name, name))
        os.symlink(src, os.path.join(shim, name))
    r = subprocess.run([exe, "-c", "import cloudpickle, dill"], capture_output=True,
                       env=dict(os.environ, PYTHONPATH=shim))
    if r.returncode:
        raise Skip("Debian's cloudpickle or dill does not import here: %s" % (
            r.stderr.decode().strip().splitlines()[-1:],))
    return shim


@probe_only
def t_probe_pickle_by_value(exe, tmp):
    """cloudpickle and dill pickle probed functions by value (constants
    included), and what they load behaves as the original, in the process
    and in a fresh one without covinject; pickle by reference is unchanged;
    the probes still record."""
    shim = pickle_path(exe, tmp)
    t = Target(exe, "probed.py", tmp, env=dict(os.environ, PYTHONPATH=shim))
    want = "cloudpickle=9,3,-1 dill=9,3,-1 ref=1"
    check(answer(t, "pickle", "PICKLED") == want, "the target's own check")
    cli_ok("start", "--collector", "probe", "--watch-window", "0", "-o", tmp, t.pid)
    wait_for(lambda: "while functions are moved" not in cli_ok("status", t.pid),
             "the pass to move every function onto its copy")
    answer(t, "call", "DONE")
    got = answer(t, "pickle", "PICKLED")
    check(got == want, "with probes, pickled functions return %r, not %r" % (got, want))
    for name in ("cloudpickle", "dill"):
        with open(os.path.join(tmp, "by-value." + name), "rb") as f:
            check(b"covinject line probe" in f.read(), "%s did not pickle the probed "
                  "copies" % name)
    load = ("import sys\nfor name in ('cloudpickle', 'dill'):\n"
            "    m = __import__(name)\n"
            "    sq, add, neg = m.load(open(sys.argv[1] + '/by-value.' + name, 'rb'))\n"
            "    print(name, sq(3), add(2), neg(1))\n")
    r = subprocess.run([exe, "-c", load, tmp], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=shim))
    check(r.returncode == 0 and r.stdout.split() == ["cloudpickle", "9", "3", "-1", "dill",
                                                     "9", "3", "-1"],
          "loaded in a fresh process: %d %r %r" % (r.returncode, r.stdout, r.stderr))
    got = measured(cli_ok("stop", t.pid).strip(), "probed.py")
    check(tagged("probed.py", "call") <= got, "not recorded: %s" % (
        sorted(tagged("probed.py", "call") - got)))
    t.send("quit")
    t.proc.wait(timeout=10)
    check(t.proc.returncode == 0, "target exit status %s" % t.proc.returncode)


def probes_then_trace(exe, tmp, t, unsafe, why):
    """start --collector auto (the default) in target t: probes; stop; then
    t does unsafe (a command), and the same start chooses the trace
    function and says why; the lines are recorded all the same."""
    out = os.path.join(tmp, "out")
    os.mkdir(out)
    cli_ok("start", "-o", out, t.pid)
    st = cli_ok("status", t.pid)
    check("collector: bytecode probes in" in st and "not probes" not in st,
          "auto, before: %s" % st)
    cli_ok("stop", t.pid)
    unsafe()
    cli_ok("start", "-o", out, t.pid)
    st = cli_ok("status", t.pid)
    check("bytecode probes" not in st and "collector: the trace function, not probes: " +
          why in st, "auto, after: %s" % st)
    call_then_stop(t, "")


def call_then_stop(t, when):
    """The target's "call", then stop: clean, with every line of it."""
    answer(t, "call", "DONE")
    r = cli("stop", t.pid)
    check(r.returncode == 0 and not r.stderr, "stop: %d %r" % (r.returncode, r.stderr))
    got = measured(r.stdout.strip(), "probed.py")
    check(tagged("probed.py", "call") <= got, "not recorded%s: %s" % (
        when, sorted(tagged("probed.py", "call") - got)))


@probe_only
def t_probe_auto_eval_frame(exe, tmp):
    """Where a frame evaluation function of PEP 523 is installed (a JIT, a
    debugger), start --collector auto uses the trace function, not probes,
    and status says why; the program's function is left in place."""
    lib = os.path.join(tmp, "evalframe.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", lib,
                    os.path.join(TARGETS, "evalframe.c")], check=True)
    t = Target(exe, "probed.py", tmp)

    def install():
        check(answer(t, "evalframe " + lib, "EVAL") == "", "the target's own check")
    probes_then_trace(exe, tmp, t, install, "a frame evaluation function of PEP 523 "
                      "is installed")
    before = int(answer(t, "frames", "FRAMES"))
    answer(t, "call", "DONE")
    check(int(answer(t, "frames", "FRAMES")) > before, "the program's frame evaluation "
          "function is no longer called after stop")
    t.send("quit")
    t.proc.wait(timeout=10)
    check(t.proc.returncode == 0, "target exit status %s" % t.proc.returncode)


def numba_or_skip(exe):
    r = subprocess.run([exe, "-c", "import numba"], capture_output=True, text=True)
    if r.returncode:
        raise Skip("numba does not import here (Debian's python3-numba is for the "
                   "system python3): %s" % (r.stderr.strip().splitlines() or ["?"])[-1])


@probe_only
def t_probe_auto_numba(exe, tmp):
    """numba compiles functions from their bytecode, so probes must not be in
    it: with numba loaded, start --collector auto uses the trace function,
    and status says why; when the program imports numba after start, the
    probes are removed inside that import, the trace function takes over,
    and numba compiles the original code; the lines are recorded through
    both."""
    numba_or_skip(exe)
    t = Target(exe, "probed.py", tmp)
    probes_then_trace(exe, tmp, t, lambda: check(answer(t, "numba", "NUMBA") == "45",
                                                 "numba.njit"),
                      "numba is loaded")
    t.send("quit")
    t.proc.wait(timeout=10)
    t = Target(exe, "probed.py", tmp)
    cli_ok("start", "-o", tmp, t.pid)
    wait_for(lambda: "while functions are moved" not in cli_ok("status", t.pid),
             "the pass to move every function onto its copy")
    answer(t, "call", "DONE")
    check(answer(t, "numba", "NUMBA") == "45", "numba.njit with probes before")
    # the importer wakes the collector's thread, which publishes the status
    wait_for(lambda: "bytecode probes" not in cli_ok("status", t.pid),
             "status to stop naming probes", timeout=1.0)
    st = cli_ok("status", t.pid)
    check(re.search(r"collector: the trace function, not probes: numba was imported at "
                    r"\d\d:\d\d:\d\d, .* the probes were removed then", st),
          "status: %s" % st)
    path = cli_ok("dump", "--reset", t.pid).strip()
    want = tagged("probed.py", "call") | tagged("probed.py", "numba")
    check(want <= measured(path, "probed.py"), "not recorded before the switch: %s" % (
        sorted(want - measured(path, "probed.py"))))
    call_then_stop(t, " after the switch")
    check(answer(t, "check", "ORIG") == "1 1 None", "after stop, the originals and "
          "importlib are back and no trace function is left")
    t.send("quit")
    t.proc.wait(timeout=10)
    check(t.proc.returncode == 0, "target exit status %s" % t.proc.returncode)


@probe_only
def t_probe_refusals(exe, tmp):
    """--collector takes auto, trace or probe."""
    r = cli("start", "--collector", "fast", "1")
    check(r.returncode == 2 and "give auto, trace or probe" in r.stderr, r.stderr)


def t_collector_no_choice(exe, tmp):
    """Outside 3.9-3.11 the collector is not a choice: --collector probe
    (and on 3.12+ --collector trace) is refused, the target untouched."""
    ver = py_version(exe)
    if (3, 9) <= ver < (3, 12):
        raise Skip("a choice on %d.%d (t_probe_refusals)" % ver)
    t = Target(exe, "idle.py")
    for kind in ("probe", "trace") if ver >= (3, 12) else ("probe",):
        refusal(["start", "--collector", kind, "-o", tmp, t.pid], 1,
                r"^covinject: start %d: --collector %s is not supported on Python %d\.%d: "
                r"the choice is for 3\.9-3\.11" % ((t.pid, kind) + ver[:2]), t)


E2E = [t_probe_parity_lines, t_probe_lifecycle, t_probe_watch_window, t_probe_watch_done,
       t_probe_pickle_by_value, t_probe_auto_eval_frame, t_probe_auto_numba,
       t_probe_refusals, t_collector_no_choice]
