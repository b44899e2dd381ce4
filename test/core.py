"""End-to-end tests of the core loop: start, snapshots, stop, refusals."""
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import coverage

from lib import (COVINJECT, DOCKER_CAPS, FREE_THREADED, ROOT, SPAN, SPAN_WORDS, SUPPORTED,
                 TARGETS, Skip,
                 Target, as_nobody, check, cli, cli_ok, dumps, function_body, get, measured,
                 probes_used, py_version,
                 tagged, wait_for)


# ---- end-to-end tests -------------------------------------------------------

def t_http_server(exe, tmp):
    """Routes hit after start are recorded exactly, others are not; the
    worker thread's running loop is recorded; dump, stop, start again, and
    a third time for a route that ran in the first session only."""
    script = "http_server.py"
    t = Target(exe, script)
    port = int(t.ready[1])
    get(port, "/c")                       # before attach: must not count
    out = cli_ok("start", "-o", tmp, t.pid)
    check("collecting in %d" % t.pid in out, "start said: %r" % out)
    check(get(port, "/a") == "a2", "route /a answered wrongly")
    body = {r: function_body(script, "route_" + r) for r in "abc"}

    def dump_has(lines):
        path = cli_ok("dump", t.pid).strip()
        got = measured(path, script)
        return (path, got) if lines <= got else None
    path, got = wait_for(lambda: dump_has(tagged(script, "w")), "the worker loop in a snapshot")
    check(got & body["a"] == tagged(script, "a"), "route_a lines %s, expected %s" % (
        sorted(got & body["a"]), sorted(tagged(script, "a"))))
    check(not got & (body["b"] | body["c"]), "routes not hit after start recorded: %s" % sorted(got & (body["b"] | body["c"])))
    before = dumps(t.pid)
    os.kill(t.pid, signal.SIGUSR1)          # the user's way: kill -USR1 PID
    wait_for(lambda: dumps(t.pid) > before, "a snapshot after kill -USR1")
    check(set(measured(path, script)) >= tagged(script, "a"), "kill -USR1 snapshot lost data")
    get(port, "/b")
    path2 = cli_ok("dump", t.pid).strip()
    check(path2 == path, "second snapshot went to %s, not %s" % (path2, path))
    got = measured(path2, script)
    check(got & body["b"] == tagged(script, "b"), "route_b lines %s after dump" % sorted(got & body["b"]))
    data = coverage.CoverageData(path2)
    data.read()
    stray = [f for f in data.measured_files() if not f.startswith(os.path.realpath(TARGETS))]
    check(not stray, "files outside the program measured by default: %s" % stray)
    final = cli_ok("stop", t.pid).strip()
    check(final == path, "stop printed %s" % final)
    check(not t.sigcgt() & (1 << (signal.SIGUSR1 - 1) | 1 << (signal.SIGUSR2 - 1)),
          "USR1/USR2 handlers still installed after stop")
    check(get(port, "/c") == "c3", "server does not answer after stop")
    check(not measured(final, script) & body["c"], "route /c recorded after stop")
    # start again: only what runs in between is in the new file
    out = cli_ok("start", "-o", tmp, t.pid)
    get(port, "/c")
    second = cli_ok("stop", t.pid).strip()
    check(second != final, "the second session overwrote the first file")
    got = measured(second, script)
    check(got & body["c"] == tagged(script, "c"), "route_c lines %s in 2nd session" % sorted(got & body["c"]))
    check(not got & (body["a"] | body["b"]), "2nd session has lines run before it: %s" % sorted(got & (body["a"] | body["b"])))
    check(get(port, "/a") == "a2" and t.alive(), "server unhealthy after the second stop")
    # a third: route_b ran in the first session and not since; its lines,
    # disabled then (3.12+: sys.monitoring's DISABLE), count again
    cli_ok("start", "-o", tmp, t.pid)
    get(port, "/b")
    third = cli_ok("stop", t.pid).strip()
    got = measured(third, script)
    check(got & body["b"] == tagged(script, "b"), "route_b lines %s in the 3rd session" %
          sorted(got & body["b"]))
    t.proc.kill()
    out, err = t.proc.communicate()
    check(out == "" and err == "", "the target printed %r / %r" % (out, err))


def t_busy_main(exe, tmp):
    """The only thread is inside a busy loop at attach: its body is recorded,
    and start returns well under a second."""
    t = Target(exe, "busy.py")
    t0 = time.monotonic()
    cli_ok("start", "-o", tmp, t.pid)
    took = time.monotonic() - t0
    check(took < 1.0, "start took %.2f s" % took)
    want = tagged("busy.py", "w")
    wait_for(lambda: want <= measured(cli_ok("dump", t.pid).strip(), "busy.py"),
             "the busy loop's body in a snapshot")
    cli_ok("stop", t.pid)
    check(t.alive(), "target died")


def t_sleep_intact(exe, tmp):
    """time.sleep(3) in progress at attach still lasts 3 s and raises nothing."""
    t = Target(exe, "killsafe.py", "3")
    time.sleep(0.3)
    cli_ok("start", "-o", tmp, t.pid)
    cli_ok("stop", t.pid)
    out, err = t.proc.communicate(timeout=10)
    check(t.proc.returncode == 0, "target exited %s: %s" % (t.proc.returncode, err))
    m = re.match(r"SLEPT ([\d.]+)", out)
    check(m, "sleep did not complete: %r %r" % (out, err))
    check(2.99 <= float(m.group(1)) < 3.5, "time.sleep(3) took %s s" % m.group(1))


def t_c_sleep_intact(exe, tmp):
    """A C sleep and a C poll with a timeout in progress (their remaining
    time would be lost to a remote call) last their whole time and return 0:
    start borrows the thread waiting on stdin instead."""
    t = Target(exe, "csleep.py")
    time.sleep(0.3)
    cli_ok("start", "-o", tmp, t.pid)   # in the sleep
    cli_ok("stop", t.pid)
    line = t.proc.stdout.readline()
    time.sleep(0.3)
    cli_ok("start", "-o", tmp, t.pid)   # in the poll
    line += t.proc.stdout.readline()
    cli_ok("stop", t.pid)
    got = re.findall(r"^(\w+) (-?\d+) (\d+) ([\d.]+)$", line, re.M)
    check([g[:2] for g in got] == [("usleep", "0"), ("poll", "0")] and
          all(float(g[3]) >= 1.99 for g in got), "C calls cut short: %r" % line)
    t.send("")
    out, err = t.proc.communicate(timeout=10)
    check(t.proc.returncode == 0 and not err, "target: %s %r" % (t.proc.returncode, err))


def t_single_thread(exe, tmp):
    """A process that never started a second thread nor imported threading
    (3.6 has no GIL then, until start makes one): it collects; its own
    Python signal handler still runs; a child of os.fork, which no hook of
    threading's reaches, gets a collector of its own (it answers dump
    --tree with its lines); covinject imported no threading (where site
    had not); the program ends normally."""
    t = Target(exe, "nothread.py")
    cli_ok("start", "-o", tmp, t.pid)
    os.kill(t.pid, signal.SIGHUP)
    check(t.proc.stdout.readline().strip() == "HUP", "the program's SIGHUP handler did not run")
    t.send("fork")
    line = t.proc.stdout.readline().split()
    check(line[:1] == ["CHILD"], "no child: %r" % line)
    child, work = line[1], tagged("nothread.py", "child")

    def child_dumped():
        files = dict(re.findall(r"^(\d+): (/\S+)", cli_ok("dump", "--tree", t.pid), re.M))
        return child in files and work <= measured(files[child], "nothread.py")
    wait_for(child_dumped, "the forked child to answer dump --tree with its lines")
    st = cli_ok("status", "--tree", t.pid)
    check("pid %s: covinject loaded, collecting" % child in st, "the child: %r" % st)
    t.send("reap")
    out = cli_ok("stop", t.pid)
    check(tagged("nothread.py", "hup") <= measured(out.strip(), "nothread.py"),
          "the signal handler's line is not in %s" % out)
    t.send("check")
    check(t.proc.stdout.readline().split() == ["THREADING", t.ready[1]],
          "covinject imported threading")
    t.send("quit")
    _, err = t.proc.communicate(timeout=10)
    check(t.proc.returncode == 0 and not err, "target: %s %r" % (t.proc.returncode, err))


def t_import_from_pyc(exe, tmp):
    """The import context holds the lines of the code that was imported:
    that of the .pyc (12-byte header on 3.6, 16 from 3.7), not of a source
    changed since with the same size and mtime."""
    src = os.path.join(tmp, "pycmod.py")
    with open(src, "w") as f:
        f.write("def f():\n    return 1\nX = 2\n")
    os.utime(src, (1700000000, 1700000000))
    subprocess.run([exe, "-c", "import py_compile, sys; py_compile.compile(sys.argv[1], "
                    "doraise=True)", src], check=True)
    with open(src, "w") as f:
        f.write("X = 2\ndef f():\n    return 1\n")      # same size
    os.utime(src, (1700000000, 1700000000))
    t = Target(exe, "pycimport.py", tmp)
    path = cli_ok("start", "-o", tmp, t.pid).split("data file: ")[1].strip()
    cli_ok("stop", t.pid)
    data = coverage.CoverageData(path)
    data.read()
    data.set_query_context("import")
    got = sorted(data.lines(os.path.realpath(src)) or ())
    check(got == [1, 3], "import context of pycmod.py: %s, its .pyc has [1, 3]" % got)
    t.send("")
    t.proc.communicate(timeout=10)


def t_coverage_report(exe, tmp):
    """coverage combine + report read our files as their own."""
    t = Target(exe, "http_server.py")
    port = int(t.ready[1])
    cli_ok("start", "-o", tmp, t.pid)
    get(port, "/a")
    cli_ok("stop", t.pid)
    env = dict(os.environ, COVERAGE_FILE=os.path.join(tmp, ".coverage"))
    combine = subprocess.run([sys.executable, "-m", "coverage", "combine", tmp],
                             capture_output=True, text=True, cwd=tmp, env=env)
    check(combine.returncode == 0, "coverage combine: %s" % combine.stderr)
    report = subprocess.run([sys.executable, "-m", "coverage", "report", "-m"],
                            capture_output=True, text=True, cwd=tmp, env=env)
    check(report.returncode == 0, "coverage report: %s" % report.stderr)
    check("http_server.py" in report.stdout, "report lacks the target: %s" % report.stdout)


def t_dump_error_kept(exe, tmp):
    """The collector holds the output directory open: renamed, it is still
    where snapshots go; removed, a snapshot fails with a clear message in
    dump and status and the data stays, the next `dump -o DIR` writes all
    of it elsewhere; a final snapshot that fails makes `stop` fail without
    discarding anything, and `stop -o DIR` then succeeds."""
    out, away = os.path.join(tmp, "out"), os.path.join(tmp, "away")
    os.mkdir(out)
    t = Target(exe, "busy.py")
    cli_ok("start", "-o", out, t.pid)
    os.rename(out, away)
    path = cli_ok("dump", t.pid).strip()
    check(os.listdir(away) == [os.path.basename(path)], "renamed: %s" % os.listdir(away))
    os.unlink(os.path.join(away, os.path.basename(path)))
    os.rmdir(away)
    r = cli("dump", t.pid)
    check(r.returncode == 1 and re.search(
        r"^covinject: dump %d: snapshot failed: .*No such file.*data stays in memory" % t.pid,
        r.stderr), "dump into a removed directory: %d %r" % (r.returncode, r.stderr))
    st = cli_ok("status", t.pid)
    check(re.search(r"snapshots: 1 written, 1 failed", st) and "No such file" in st,
          "status does not show the failure: %r" % st)
    r = cli("stop", t.pid)
    check(r.returncode == 1 and re.search(
        r"^covinject: stop %d: the final snapshot failed: .*No such file.*nothing was "
        r"discarded and collection goes on" % t.pid, r.stderr),
        "stop into a removed directory: %d %r" % (r.returncode, r.stderr))
    check("collecting" in cli_ok("status", t.pid), "not collecting after the failed stop")
    os.mkdir(out)
    path = cli_ok("dump", "-o", out, t.pid).strip()
    check(os.path.dirname(path) == out, "dump -o wrote %s" % path)
    check(tagged("busy.py", "w") <= measured(path, "busy.py"), "data lost after the failure")
    check("last error: none" in cli_ok("status", t.pid), "error not cleared")
    again = os.path.join(tmp, "again")
    os.mkdir(again)
    path = cli_ok("stop", "-o", again, t.pid).strip()
    check(os.path.dirname(path) == again and tagged("busy.py", "w") <= measured(path, "busy.py"),
          "stop -o wrote %s" % path)
    check(os.listdir(out) + os.listdir(again) == [os.path.basename(path)] * 2,
          "files: %s %s" % (os.listdir(out), os.listdir(again)))
    check(t.alive(), "target died")


def t_signals_and_scope(exe, tmp):
    """Real-time signals by name; --source limits the files; no -o means the
    current directory of the covinject command."""
    t = Target(exe, "busy.py")
    rt3, rt4 = signal.SIGRTMIN + 3, signal.SIGRTMIN + 4
    r = subprocess.run([COVINJECT, "start", "--dump-signal", "RTMIN+3", "--stop-signal",
                        "SIGRTMIN+4", "--source", TARGETS, str(t.pid)],
                       capture_output=True, text=True, cwd=tmp)
    check(r.returncode == 0, "start: %s" % r.stderr)
    check("kill -RTMIN+3 %d" % t.pid in r.stdout, "start output: %r" % r.stdout)
    path = re.search(r"data file: (\S+)", r.stdout).group(1)
    check(os.path.dirname(path) == os.path.realpath(tmp), "data file %s not in the cwd" % path)
    check(t.sigcgt() & (1 << (rt3 - 1)) and t.sigcgt() & (1 << (rt4 - 1)), "handlers not installed")
    def snapshot_by_signal():
        os.kill(t.pid, rt3)     # again each time: the first may come before the loop ran
        time.sleep(0.05)
        return os.path.exists(path) and tagged("busy.py", "w") <= measured(path, "busy.py")
    wait_for(snapshot_by_signal, "a snapshot after kill -RTMIN+3")
    cli_ok("stop", t.pid)
    check(not t.sigcgt() & ((1 << (rt3 - 1)) | (1 << (rt4 - 1))), "handlers left after stop")
    # a --source that holds none of the program's files: nothing measured
    empty = tempfile.mkdtemp(dir=tmp)
    cli_ok("start", "-o", tmp, "--source", empty, t.pid)
    path = cli_ok("stop", t.pid).strip()
    data = coverage.CoverageData(path)
    data.read()
    check(not data.measured_files(), "--source %s measured %s" % (empty, data.measured_files()))
    check(t.alive(), "target died")


def t_lazy_imports(exe, tmp):
    """PEP 810 (3.15+): the import-context pass at start reads the modules
    in sys.modules, one of which holds a lazy import in its namespace, and
    reifies nothing and imports nothing: the lazily imported module is
    still absent, both names still lazy_import objects, nothing printed.
    Used after start, the module is imported and its lines are recorded."""
    script = os.path.join("pep810", "lazy.py")
    here = lambda name: os.path.realpath(os.path.join(TARGETS, "pep810", name))
    t = Target(exe, script)
    cli_ok("start", "-o", tmp, t.pid)

    def import_context(name):
        data = coverage.CoverageData(cli_ok("dump", t.pid).strip())
        data.read()
        data.set_query_context("import")
        return data.lines(here(name))
    # lazy_holder's import lines are derived: the pass has read it
    wait_for(lambda: import_context("lazy_holder.py"), "the import context of lazy_holder.py")
    t.send("state")
    state = t.proc.stdout.readline().split()
    check(state == ["STATE", "False", "lazy_import", "lazy_import"],
          "after the import-context pass: %r (expected lazy_victim not imported, "
          "both names lazy)" % state)
    t.send("use")
    check(t.proc.stdout.readline().split() == ["USED", "41", "42"], "lazy imports did not work")
    path = cli_ok("stop", t.pid).strip()
    check(tagged(os.path.join("pep810", "lazy_victim.py"), "v") <= measured(
        path, os.path.join("pep810", "lazy_victim.py")), "the reified module's lines not recorded")
    t.proc.stdin.close()
    check(t.proc.wait(timeout=10) == 0, "lazy.py exited %s" % t.proc.returncode)
    err = t.proc.stderr.read()
    check(err.count("lazy_victim imported") == 1 and err.strip() == "lazy_victim imported",
          "stderr of the target: %r" % err)


t_lazy_imports.since = (3, 15)



def t_trace_idioms(exe, tmp):
    """What programs do to the trace function (test/targets/tracing.py):
    sys.settrace(sys.gettrace()), save/None/restore, a doctest, threading's
    hook saved, removed and restored, in the target after start; files and
    lines in status before any snapshot; then on 3.9-3.11 a thread left
    with sys.settrace(None) and pdb's set_trace() then continue (driven on
    the target's stdin): status, dump and stop say where collection is
    gone, and covinject does not come back by itself.  On 3.12+ nothing of
    it touches covinject."""
    old = py_version(exe) < (3, 12)
    t = Target(exe, "tracing.py")

    def run(cmd, *answers):
        t.send(cmd)
        for a in answers:
            t.send(a)
        out = []
        while True:
            line = t.proc.stdout.readline()
            if not line:
                check(False, "the target ended during %s: %s" % (cmd, t.proc.stderr.read()[-2000:]))
            out.append(line)
            if "DONE " + cmd in line:
                return "".join(out)
    cli_ok("start", "--interval", "0", "-o", tmp, t.pid)
    run("counted")
    m = wait_for(lambda: re.search(r"measured: (\d+) files, (\d+) lines",
                                   cli_ok("status", t.pid)), "status")
    check(int(m.group(1)) >= 1 and int(m.group(2)) >= 2 and dumps(t.pid) == 0,
          "status before the first snapshot: %s" % m.group(0))
    for cmd in ("restored", "juggled", "doctest", "threads"):
        run(cmd)
    time.sleep(1.3)                       # a sweep: nothing is lost yet
    st = cli_ok("status", t.pid)
    check("not collecting" not in st, "status after the save/restore idioms: %s" % st)
    run("removed")
    out = run("debugged", "p f", "c")
    check("(Pdb) 6" in out, "pdb did not work: %r" % out)
    time.sleep(1.3)
    st = cli_ok("status", t.pid)
    removed = re.search(r"^not collecting: the program removed the trace function.*: "
                        r"on 2 of 2 threads since \d\d:\d\d:\d\d", st, re.M)
    check(bool(removed) == old and (old or "not collecting" not in st),
          "status after sys.settrace(None) and pdb: %s" % st)
    r = cli("dump", t.pid)
    check(r.returncode == 0 and bool(re.search(
        r"^covinject: dump %d: warning: not collecting everywhere: the program removed"
        % t.pid, r.stderr)) == old, "dump: %d %r" % (r.returncode, r.stderr))
    run("release")
    if old:     # join() returns a moment before the thread's state is unlinked
        wait_for(lambda: "on 1 of 1 threads" in cli_ok("status", t.pid),
                 "the released thread gone from status")
    r = cli("stop", t.pid)
    check(r.returncode == 0 and bool(re.search(
        r"^covinject: stop %d: warning: not collecting everywhere: the program removed"
        r".*on 1 of 1 threads" % t.pid, r.stderr)) == old, "stop: %d %r" % (r.returncode, r.stderr))
    got = measured(r.stdout.strip(), "tracing.py")
    missing = sorted(tagged("tracing.py", "kept") - got)
    check(not missing, "lines not recorded: %s" % missing)
    lost = tagged("tracing.py", "lost")
    # with probes their lines are recorded all the same: only frames from
    # start needed the trace function the program removed
    check(not (got & lost) if old and not probes_used(exe) else lost <= got,
          "lines of removed tracing: recorded %s of %s" % (sorted(got & lost), sorted(lost)))
    t.send("quit")
    out, err = t.proc.communicate(timeout=10)
    check(t.proc.returncode == 0 and not err, "target: %s %r" % (t.proc.returncode, err))



def t_gil_held(exe, tmp):
    """A start while a thread holds the GIL in native code says so and where
    its collector waits; status says it too, the collector starts once the
    GIL is free, and the target is unharmed."""
    t = Target(exe, "gilheld.py")
    t.send("hold")
    check(t.proc.stdout.readline().strip() == "HOLDING", "no HOLDING")
    r = cli("start", "--timeout", "1", "-o", tmp, t.pid)
    check(r.returncode == 1 and re.search(
        r"did not start collecting within 1 s: its thread is waiting for the GIL "
        r"\(a thread may hold it in native code\), for [\d.]+ s", r.stderr),
        "start: %d %r" % (r.returncode, r.stderr))
    st = cli_ok("status", t.pid)
    check("pid %d: covinject loaded, starting" % t.pid in st and
          "starting: the collector's thread is waiting for the GIL" in st, "status: %r" % st)
    t.send("release")
    check(t.proc.stdout.readline().strip() == "FREE", "no FREE")
    wait_for(lambda: "covinject loaded, collecting" in cli_ok("status", t.pid),
             "collecting once the GIL is free")
    cli_ok("stop", t.pid)
    t.send("quit")
    out, err = t.proc.communicate(timeout=10)
    check(t.proc.returncode == 0 and not err, "target: %s %r" % (t.proc.returncode, err))


def t_tree_member_exits(exe, tmp):
    """stop --tree, when a child ends while covinject waits for its final
    snapshot (it held the GIL in native code, then called libc's _exit):
    the child is skipped with a note, the parent's file is printed, and the
    command succeeds."""
    t = Target(exe, "treeexit.py")
    cli_ok("start", "-o", tmp, t.pid)
    t.send("fork")
    line = t.proc.stdout.readline().split()
    check(line[:1] == ["CHILD"], "no child: %r" % line)
    child, fd_b = int(line[1]), line[2]
    wait_for(lambda: "pid %d: covinject loaded, collecting" % child in
             cli_ok("status", "--tree", t.pid), "the child to collect")
    t.send("hold")

    def reading_b():
        with open("/proc/%d/syscall" % child) as f:
            sc = f.read().split()
        return sc[:2] == ["0", hex(int(fd_b))]
    wait_for(reading_b, "the child to read pipe B with the GIL held")

    def collector_waits():
        """The collector's thread waits for the GIL (its sweep, once a
        second), so a request stays in its pipe until the child ends."""
        tasks = "/proc/%d/task" % child
        for tid in os.listdir(tasks):
            with open(os.path.join(tasks, tid, "syscall")) as f:
                if int(tid) != child and f.read().split()[:1] == ["202"]:
                    return True
        return False
    wait_for(collector_waits, "the child's collector to wait for the GIL")
    stop = subprocess.Popen([COVINJECT, "stop", "--tree", str(t.pid)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def request_sent():
        """A pipe of the child's (the collector's request pipe) holds bytes."""
        import fcntl
        import struct
        import termios
        fds = "/proc/%d/fd" % child
        for n in os.listdir(fds):
            try:
                if not os.readlink(os.path.join(fds, n)).startswith("pipe:"):
                    continue
                fd = os.open(os.path.join(fds, n), os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                if struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]:
                    return True
            finally:
                os.close(fd)
        return False
    wait_for(request_sent, "stop --tree to send the child its request")
    t.send("release")
    check(t.proc.stdout.readline().strip() == "REAPED", "the child was not reaped")
    out, err = stop.communicate(timeout=30)
    check(stop.returncode == 0, "stop --tree exited %d: %r" % (stop.returncode, err))
    check("%d: skipped: it exited while covinject stop waited" % child in out and
          re.search(r"^%d: /\S+" % t.pid, out, re.M), "stop --tree said: %r %r" % (out, err))
    t.send("quit")
    _, err = t.proc.communicate(timeout=10)
    check(t.proc.returncode == 0 and not err, "target: %s %r" % (t.proc.returncode, err))


E2E = [t_http_server, t_signals_and_scope, t_busy_main, t_sleep_intact, t_coverage_report,
       t_dump_error_kept, t_lazy_imports, t_trace_idioms, t_gil_held,
       t_c_sleep_intact, t_single_thread, t_import_from_pyc, t_tree_member_exits]


def t_install(tmp):
    """make install puts a command that finds its installed payload."""
    dest = os.path.join(tmp, "root")
    r = subprocess.run(["make", "-s", "-C", ROOT, "install", "PREFIX=/usr",
                        "DESTDIR=" + dest], capture_output=True, text=True)
    check(r.returncode == 0, "make install: %s" % r.stderr)
    exe = os.path.join(dest, "usr", "bin", "covinject")
    check(os.path.exists(os.path.join(dest, "usr/lib/covinject/covinject-payload.so")),
          "payload not installed")
    # The target runs as nobody and cannot read the installed payload (tmp
    # is 0700 root): it must arrive through the memfd.
    out = os.path.join(tmp, "out")
    os.mkdir(out)
    os.chown(out, 65534, 65534)
    os.chmod(tmp, 0o711)
    os.chmod(os.path.join(dest, "usr"), 0o700)
    t = Target("/usr/bin/python3", "busy.py", preexec=as_nobody)
    for args in (["start", "-o", out, t.pid], ["stop", t.pid]):
        r = subprocess.run([exe] + [str(a) for a in args], capture_output=True, text=True)
        check(r.returncode == 0, "installed covinject %s: %s" % (args[0], r.stderr))
    path = r.stdout.strip()
    check(os.stat(path).st_uid == 65534, "data file not owned by the target's user")
    check(tagged("busy.py", "w") <= measured(path, "busy.py"), "no data from the nobody target")


def t_help(tmp):
    """--version, and --help for the command and each subcommand; --help
    and the README's table of versions say what payload/versions.h says."""
    out = cli_ok("--version")
    check(re.match(r"covinject \d+\.\d+\.\d+$", out.strip()), "--version: %r" % out)
    out = cli_ok("--help")
    check("commands:" in out, "covinject --help")
    check("CPython %s process" % SPAN in out, "--help does not say %s: %r" % (SPAN, out))
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    table = readme[readme.index("| Python | collector |"):].split("\n\n", 1)[0]
    rows = [tuple(map(int, m)) for m in re.findall(r"^\s*\| (\d+)\.(\d+) \|", table, re.M)]
    check(rows == SUPPORTED, "README's table of versions %s, payload/versions.h %s" % (
        rows, SUPPORTED))
    check("CPython %s in the target" % SPAN_WORDS in readme,
          "README's requirements do not name %s" % SPAN_WORDS)
    for sub in ("start", "dump", "stop", "status"):
        check(cli_ok(sub, "--help").startswith("usage: covinject %s" % sub), sub + " --help")


# ---- refusals: message, exit status, target untouched -----------------------

def refusal(args, status, pattern, target=None, user=None, prefix=None):
    r = cli(*args, user=user, prefix=prefix)
    check(r.returncode == status, "exit %d, expected %d: %s" % (r.returncode, status, r.stderr.strip()))
    lines = r.stderr.strip().splitlines()
    check(len(lines) == 1, "expected one line, got %r" % r.stderr)
    check(re.search(pattern, lines[0]), "message %r does not match %r" % (lines[0], pattern))
    if target:
        check(target.alive(), "target died")
        check(not target.payload_mapped(), "payload loaded despite the refusal")


def refusal_tests(exe, tmp):
    """(name, function) pairs; each builds what it needs."""
    tests = []

    def add(name):
        def deco(fn):
            tests.append((name, fn))
            return fn
        return deco

    @add("no such process")
    def _():
        pid = 4194000
        while os.path.exists("/proc/%d" % pid):
            pid += 1
        refusal(["start", "-o", tmp, pid], 1, r"^covinject: start %d: no such process" % pid)

    @add("an older Python 2 is named, not taken for another program")
    def _():
        p = renamed_python("python2.6")
        try:
            refusal(["start", "-o", tmp, p.pid], 1, r"^covinject: start %d: Python 2\.6 \(.*\) "
                    r"is not supported: covinject supports CPython %s \(" % (
                        p.pid, re.escape(SPAN)))
            check(p.poll() is None and "covinject-payload" not in open("/proc/%d/maps" % p.pid).read(),
                  "the target was touched")
        finally:
            p.kill()
            p.wait()

    @add("not a Python process")
    def _():
        p = subprocess.Popen(["sleep", "60"])
        try:
            refusal(["start", "-o", tmp, p.pid], 1,
                    r"^covinject: start %d: sleep is not a CPython process.*give the pid" % p.pid)
        finally:
            p.kill()
            p.wait()

    @add("unsupported Python version")
    def _():
        # a real one, if an older Python 3 is installed; else one by name
        old = [e for e in glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/python3"))
               if py_version(e) not in SUPPORTED + [None]]
        p = subprocess.Popen([old[0], "-c", "import time; time.sleep(60)"]) if old else \
            renamed_python("python3.5")
        try:
            wait_for(lambda: "python3" in open("/proc/%d/maps" % p.pid).read(), "python up")
            refusal(["start", "-o", tmp, p.pid], 1, r"Python 3\.\d \(.*\) is not supported: "
                    r"covinject supports CPython %s \(" % re.escape(SPAN))
            check(p.poll() is None, "old python died")
        finally:
            p.kill()
            p.wait()

    def renamed_python(name):
        """Debian's python3.11 under another file name, which is all the
        command judges a version and a build by before touching anything
        (no 3.16 exists, and Debian sid packages no free-threaded 3.14t:
        a real free-threaded interpreter is used when one was found)."""
        copy = os.path.join(tmp, name)
        shutil.copy("/usr/bin/python3.11", copy)
        return subprocess.Popen([copy, "-c", "import time; time.sleep(60)"])

    @add("newer Python version than the table")
    def _():
        p = renamed_python("python3.%d" % (SUPPORTED[-1][1] + 1))
        try:
            refusal(["start", "-o", tmp, p.pid], 1,
                    r"^covinject: start %d: Python 3\.%d \(.*\) is newer than covinject "
                    r"knows: the newest version it supports is 3\.%d \(" % (
                        p.pid, SUPPORTED[-1][1] + 1, SUPPORTED[-1][1]))
            check(p.poll() is None and "covinject-payload" not in open("/proc/%d/maps" % p.pid).read(),
                  "the target was touched")
        finally:
            p.kill()
            p.wait()

    @add("free-threaded build")
    def _():
        # a real one if discover() found any (COVINJECT_PYTHONS, pyenv 3.13t)
        if FREE_THREADED:
            minor = py_version(FREE_THREADED[0])[1]
            p = subprocess.Popen([FREE_THREADED[0], "-c", "import time; time.sleep(60)"])
        else:
            minor = SUPPORTED[-1][1]
            p = renamed_python("python3.%dt" % minor)
        try:
            refusal(["start", "-o", tmp, p.pid], 1,
                    r"^covinject: start %d: Python 3\.%dt \(.*\) is a free-threaded build "
                    r"\(Py_GIL_DISABLED\): covinject supports only the default builds" % (
                        p.pid, minor))
            check(p.poll() is None and "covinject-payload" not in open("/proc/%d/maps" % p.pid).read(),
                  "the target was touched")
        finally:
            p.kill()
            p.wait()

    @add("already collecting")
    def _():
        t = Target(exe, "idle.py")
        cli_ok("start", "-o", tmp, t.pid)
        r = cli("start", "-o", tmp, t.pid)
        check(r.returncode == 1 and re.search(
            r"^covinject: start %d: covinject is already collecting.*covinject stop %d" % (t.pid, t.pid),
            r.stderr), "second start: %d %r" % (r.returncode, r.stderr))
        cli_ok("stop", t.pid)
        check(t.alive(), "target died")

    @add("output directory missing")
    def _():
        t = Target(exe, "idle.py")
        refusal(["start", "-o", os.path.join(tmp, "nope"), t.pid], 1,
                r"^covinject: start %d: output directory .*/nope: No such file" % t.pid, t)

    @add("output directory not writable by the target")
    def _():
        def as_nobody():
            os.setgid(65534)
            os.setgroups([])
            os.setuid(65534)
        locked = tempfile.mkdtemp(dir=tmp)
        os.chmod(locked, 0o755)
        os.chmod(tmp, 0o755)
        try:
            t = Target(exe, "idle.py", preexec=as_nobody)
        except PermissionError:
            raise Skip("uid 65534 may not run %s (pyenv's are under /root)" % exe)
        refusal(["start", "-o", locked, t.pid], 1,
                r"^covinject: start %d: output directory .* is not writable by the process \(uid 65534\)" % t.pid, t)

    @add("dump signal already handled")
    def _():
        t = Target(exe, "idle.py", "catch-USR1")
        before = t.sigcgt()
        refusal(["start", "-o", tmp, t.pid], 1,
                r"^covinject: start %d: the process already handles SIGUSR1.*--dump-signal RTMIN\+3" % t.pid, t)
        check(t.sigcgt() == before, "signal handlers changed")

    @add("already traced")
    def _():
        t = Target(exe, "idle.py")
        tracer = subprocess.Popen([sys.executable, "-c", (
            "import ctypes, sys, time\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "assert libc.ptrace(0x4206, %d, None, None) == 0\n"   # PTRACE_SEIZE
            "print('ok', flush=True)\n"
            "time.sleep(60)\n") % t.pid], stdout=subprocess.PIPE, text=True)
        try:
            check(tracer.stdout.readline().strip() == "ok", "could not set up a tracer")
            refusal(["start", "-o", tmp, t.pid], 1,
                    r"^covinject: start %d: it is already traced by pid %d" % (t.pid, tracer.pid), t)
        finally:
            tracer.kill()
            tracer.wait()

    @add("ptrace not permitted")
    def _():
        t = Target(exe, "idle.py")
        os.chmod(tmp, 0o777)
        refusal(["start", "-o", tmp, t.pid], 1,
                r"^covinject: start %d: cannot read /proc/%d/maps: Permission denied \(it "
                r"runs as uid 0 and covinject as uid 65534: run as that user, as root, "
                r"or with CAP_SYS_PTRACE\)$" % (t.pid, t.pid), t, user=65534)

    @add("root without CAP_SYS_PTRACE, as in a container")
    def _():
        t = Target(exe, "idle.py")
        refusal(["start", "-o", tmp, t.pid], 1,
                r"^covinject: start %d: cannot read /proc/%d/maps: Permission denied "
                r"\(covinject runs as root without CAP_SYS_PTRACE, as in a container: add "
                r"it with docker run --cap-add SYS_PTRACE" % (t.pid, t.pid), t,
                prefix=["setpriv", "--bounding-set", DOCKER_CAPS])

    @add("dump when not attached")
    def _():
        t = Target(exe, "idle.py")
        refusal(["dump", t.pid], 1,
                r"^covinject: dump %d: covinject is not loaded in this process.*covinject start %d" % (t.pid, t.pid), t)

    @add("stop after stop")
    def _():
        t = Target(exe, "idle.py")
        cli_ok("start", "-o", tmp, t.pid)
        cli_ok("stop", t.pid)
        r = cli("stop", t.pid)
        check(r.returncode == 1 and "is stopped in this process, not collecting" in r.stderr,
              "second stop: %d %r" % (r.returncode, r.stderr))
        check(t.alive(), "target died")

    @add("kernel thread")
    def _():
        refusal(["start", "-o", tmp, 2], 1, r"^covinject: start 2: kthreadd is a kernel thread")

    @add("covinject itself")
    def _():
        r = subprocess.run(["sh", "-c", 'exec "$0" start -o "$1" $$', COVINJECT, tmp],
                           capture_output=True, text=True)
        check(r.returncode == 1 and re.match(r"^covinject: start \d+: that is covinject itself",
                                             r.stderr), "got %d %r" % (r.returncode, r.stderr))

    @add("stopped process")
    def _():
        t = Target(exe, "idle.py")
        os.kill(t.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: open("/proc/%d/stat" % t.pid).read().split(")")[1].split()[0] == "T",
                     "the target to stop")
            refusal(["start", "-o", tmp, t.pid], 1,
                    r"^covinject: start %d: the process is stopped \(state T\): resume it with "
                    r"kill -CONT %d" % (t.pid, t.pid), t)
        finally:
            os.kill(t.pid, signal.SIGCONT)

    @add("zombie")
    def _():
        p = subprocess.Popen([exe, "-c", "pass"])
        wait_for(lambda: open("/proc/%d/stat" % p.pid).read().split(")")[1].split()[0] == "Z",
                 "a zombie")
        try:
            refusal(["start", "-o", tmp, p.pid], 1,
                    r"^covinject: start %d: the process has exited \(zombie" % p.pid)
        finally:
            p.wait()

    usage = [
        (["start", "--interval", "abc", "123"], "--interval 'abc'"),
        (["start", "--interval", "-5", "123"], "--interval '-5'"),
        (["start", "--reset", "123"], "option '--reset' belongs to dump"),
        (["status", "--chain", "123"], "option '--chain' belongs to start"),
        ([], "missing command"),
        (["frobnicate", "1"], "unknown command 'frobnicate'"),
        (["start"], "missing PID"),
        (["start", "abc"], "'abc' is not a process id"),
        (["start", "0"], "'0' is not a process id"),
        (["start", "--", "-5"], "'-5' is not a process id"),
        (["start", "99999999999"], "'99999999999' is not a process id"),
        (["start", "--bogus", "123"], "unknown option '--bogus'"),
        (["start", "--dump-signal", "FOO", "123"], "unknown signal 'FOO'"),
        (["start", "--dump-signal", "KILL", "123"], "signal 'KILL' cannot be used: it cannot be caught"),
        (["start", "--stop-signal", "SEGV", "123"], "signal 'SEGV' cannot be used: it reports a fault"),
        (["start", "--dump-signal", "RTMIN+3", "--stop-signal", "RTMIN+3", "123"], "must differ"),
        (["start", "--timeout", "-1", "123"], "--timeout '-1'"),
        (["status", "-o", "/tmp", "123"], "option '-o' belongs to start, dump and stop"),
        (["start", "12", "13"], "unexpected argument '13'"),
    ]
    for args, msg in usage:
        def run(args=args, msg=msg):
            refusal(args, 2, re.escape(msg))
        tests.append(("usage: covinject %s" % " ".join(args), run))
    return tests


