"""End-to-end tests with real servers: process trees, forks after start,
workers that exit or are killed, dump --reset, periodic snapshots, signals
a server already uses, and two covinject commands at once."""
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import coverage

from lib import (COVINJECT, TARGETS, Skip, Target, check, cli, cli_ok, function_body,
                 get, measured, tagged, wait_for)


def files_of(tmp):
    return glob.glob(os.path.join(tmp, ".coverage.*"))


def pid_of(path):
    return int(re.search(r"\.pid(\d+)\.", path).group(1))


def ask(port, text):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(text.encode())
        return s.recv(1024).decode()


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def t_prefork(exe, tmp):
    """start --tree on a prefork master with 3 workers; requests over all
    workers; a worker that exits after 5 requests keeps its data; the
    replacement the master forks collects too; SIGKILL loses at most one
    interval; stop --tree leaves everything serving."""
    t = Target(exe, "prefork.py", "5")
    port, workers = int(t.ready[1]), [int(p) for p in t.ready[2:]]
    out = cli_ok("start", "--tree", "--interval", "0.5", "-o", tmp, t.pid)
    for pid in [t.pid] + workers:
        check("collecting in %d " % pid in out, "start --tree missed %d: %r" % (pid, out))
    for i in range(20):                       # 3 x 5: some workers recycle
        check(ask(port, "req%d" % i).startswith("pid "), "bad reply")
    h = tagged("prefork.py", "h")
    first = {w for w in workers if not alive(w)}
    check(first, "no worker recycled after 20 requests")
    for w in first:                            # exited normally: final snapshot
        f = [p for p in files_of(tmp) if pid_of(p) == w]
        check(f and h <= measured(f[0], "prefork.py"), "worker %d lost its data" % w)
    def replacement_dumped():
        out = cli_ok("dump", "--tree", t.pid)
        return set(int(m) for m in re.findall(r"^(\d+): /", out, re.M)) - set(workers) - {t.pid}
    wait_for(replacement_dumped, "a replacement worker to answer dump --tree")
    replacements = {pid_of(p) for p in files_of(tmp)} - set(workers) - {t.pid}
    served = [p for p in files_of(tmp) if pid_of(p) in replacements and h <= measured(p, "prefork.py")]
    check(served, "no data from the replacement workers %s" % replacements)
    # SIGKILL a live worker whose requests a periodic snapshot holds
    for i in range(2):
        ask(port, "more%d" % i)

    def snapshotted_live_worker():
        for p in files_of(tmp):
            w = pid_of(p)
            if w != t.pid and alive(w) and h <= measured(p, "prefork.py"):
                return w
    victim = wait_for(snapshotted_live_worker, "a live worker with a periodic snapshot")
    try:
        os.kill(victim, signal.SIGKILL)
    except ProcessLookupError:
        pass                                   # it exited: its final snapshot is there
    out = cli_ok("stop", "--tree", t.pid)
    check(any(pid_of(p) == victim for p in files_of(tmp)), "the killed worker left no data")
    for i in range(6):
        check(ask(port, "after%d" % i).startswith("pid "), "not serving after stop --tree")
    combined = coverage.CoverageData(os.path.join(tmp, "combined"))
    for p in files_of(tmp):
        d = coverage.CoverageData(p)
        d.read()
        combined.update(d)
    check(h <= set(combined.lines(os.path.realpath(os.path.join(TARGETS, "prefork.py")))),
          "combined data lacks the request handler")


def t_mp_pool(exe, tmp):
    """multiprocessing.Pool (fork): workers that existed at start (--tree)
    and workers of a pool created after start both collect."""
    t = Target(exe, "mppool.py")
    cli_ok("start", "--tree", "-o", tmp, t.pid)
    sq = tagged("mppool.py", "sq")

    def run(cmd):
        t.send(cmd)
        line = t.proc.stdout.readline().split()
        check(line and line[0] == "DONE", "pool did not answer %r" % line)
        return [int(p) for p in line[2:]]
    for name in ("old", "new"):
        pids = run(name)
        out = cli_ok("dump", "--tree", t.pid)
        paths = {int(m.group(1)): m.group(2) for m in re.finditer(r"^(\d+): (\S+)", out, re.M)}
        hit = [p for p in pids if p in paths and sq <= measured(paths[p], "mppool.py")]
        check(hit, "%s pool workers %s: no data (%r)" % (name, pids, out))
    cli_ok("stop", "--tree", t.pid)
    run("old")
    check(t.alive(), "target died")


def t_exit_snapshot(exe, tmp):
    """A process that returns from main, or ends on a SIGTERM that Python
    handles, writes its final snapshot."""
    for how in ("exit", "term"):
        t = Target(exe, "exiter.py")
        cli_ok("start", "-o", tmp, "--interval", "0", t.pid)
        t.send(how)
        if how == "term":
            time.sleep(0.3)
            t.proc.terminate()
        check(t.proc.wait(timeout=10) == 0, "exit status %s" % t.proc.returncode)
        err = t.proc.stderr.read()
        check(err == "", "the target printed %r" % err)
        f = [p for p in files_of(tmp) if pid_of(p) == t.pid]
        check(f and tagged("exiter.py", "e") <= measured(f[0], "exiter.py"),
              "%s: no final snapshot" % how)


def t_reset_and_interval(exe, tmp):
    """dump --reset: what ran before is gone from the next snapshot, which
    goes to a new file, and comes back when it runs again.  --interval 1:
    a snapshot appears with no request."""
    script = "http_server.py"
    t = Target(exe, script)
    port = int(t.ready[1])
    cli_ok("start", "--interval", "1", "-o", tmp, t.pid)
    a, b = tagged(script, "a"), tagged(script, "b")
    body_a = function_body(script, "route_a")
    get(port, "/a")
    wait_for(lambda: files_of(tmp) and a <= measured(files_of(tmp)[0], script),
             "a periodic snapshot with route /a", timeout=5)
    first = cli_ok("dump", "--reset", t.pid).strip()
    check(a <= measured(first, script), "the reset snapshot lacks /a")
    get(port, "/b")
    second = cli_ok("dump", t.pid).strip()
    check(second != first, "after --reset the snapshot overwrote %s" % first)
    got = measured(second, script)
    check(b <= got and not got & body_a, "after reset: %s" % sorted(got))
    get(port, "/a")
    check(a <= measured(cli_ok("dump", t.pid).strip(), script), "/a not seen again after reset")
    check(a <= measured(first, script), "the first file changed")
    cli_ok("stop", t.pid)


def t_chain(exe, tmp):
    """--chain: a program's own USR1 handler keeps running after ours, and
    is back in place alone after stop."""
    t = Target(exe, "idle.py", "catch-USR1")
    r = cli("start", "-o", tmp, t.pid)
    check(r.returncode == 1 and "--chain" in r.stderr, "taken signal not refused: %r" % r.stderr)
    cli_ok("start", "--chain", "-o", tmp, t.pid)
    os.kill(t.pid, signal.SIGUSR1)
    check(t.proc.stdout.readline().strip() == "GOT USR1", "the program's handler did not run")
    wait_for(lambda: files_of(tmp), "a snapshot from the chained USR1")
    cli_ok("stop", t.pid)
    os.kill(t.pid, signal.SIGUSR1)
    check(t.proc.stdout.readline().strip() == "GOT USR1", "handler lost after stop")
    check(t.alive(), "target died")


def t_concurrent(exe, tmp):
    """Two covinject commands at once on one process: the payload is loaded
    once, one start wins, the other waits and then says it is collecting."""
    t = Target(exe, "idle.py")
    procs = [subprocess.Popen([COVINJECT, "start", "-o", tmp, str(t.pid)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    res = [(p.wait(timeout=30), p.stderr.read()) for p in procs]
    check(sorted(r for r, _ in res) == [0, 1], "exits %s" % res)
    check(any("already collecting" in e for _, e in res), "loser said %s" % res)
    with open("/proc/%d/maps" % t.pid) as f:
        check(f.read().count("covinject-payload") >= 1, "payload not loaded")
    dumps = [subprocess.Popen([COVINJECT, "dump", str(t.pid)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    check(all(p.wait(timeout=30) == 0 for p in dumps), "concurrent dumps failed")
    cli_ok("stop", t.pid)
    check(t.alive(), "target died")


def t_gunicorn(exe, tmp):
    """gunicorn + Flask, 3 sync workers recycled by --max-requests, attached
    through free real-time signals: traffic, dump --tree, recycled workers'
    data kept, views in the combined report (by exe's own coverage.py); USR1
    still reopens gunicorn's logs; everything serves after stop --tree.
    Debian 12's gunicorn 20.1 on the system python3, sid's 26 on 3.14+."""
    if subprocess.run([exe, "-c", "import gunicorn, flask"], capture_output=True).returncode:
        raise Skip("gunicorn and flask are not importable by %s (apt-get install "
                   "gunicorn python3-flask%s)" % (exe, "" if exe == "/usr/bin/python3" else
                                                 "; for the sid root: make sid-root"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = os.path.join(tmp, "error.log")
    g = subprocess.Popen([exe, "-m", "gunicorn", "-w", "3", "--max-requests", "4",
                          "-b", "127.0.0.1:%d" % port, "--error-logfile", log,
                          "--chdir", TARGETS, "flaskapp:app"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = "http://127.0.0.1:%d/hello" % port

        def hello():
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.read().decode()
        wait_for(lambda: _try(hello), "gunicorn to serve", timeout=30, interval=0.2)
        wait_for(lambda: len(children(g.pid)) == 3, "3 workers", timeout=30)
        out = cli_ok("start", "--tree", "--dump-signal", "RTMIN+3", "--stop-signal",
                     "RTMIN+4", "-o", tmp, g.pid)
        check(out.count("collecting in") == 4, "start --tree: %r" % out)
        for _ in range(30):
            check(hello() == "hello world", "bad answer")
        cli_ok("dump", "--tree", g.pid)
        v = tagged("flaskapp.py", "v")
        app = os.path.realpath(os.path.join(TARGETS, "flaskapp.py"))
        gone = [p for p in files_of(tmp) if not alive(pid_of(p))]
        check(gone, "no recycled worker left a data file")
        check(any(v <= measured(p, "flaskapp.py") for p in gone), "recycled workers lost data")
        env = dict(os.environ, COVERAGE_FILE=os.path.join(tmp, ".coverage"))
        subprocess.run([exe, "-m", "coverage", "combine", "--keep", tmp], env=env,
                       capture_output=True, check=True, cwd=tmp)
        rep = subprocess.run([exe, "-m", "coverage", "report", "-m", "--include", app],
                             env=env, capture_output=True, text=True, cwd=tmp).stdout
        check(re.search(r"flaskapp\.py.*\s%d\s*$" % tagged("flaskapp.py", "n").pop(), rep, re.M),
              "the report should show only the unrequested view as missing: %s" % rep)
        os.rename(log, log + ".1")
        os.kill(g.pid, signal.SIGUSR1)          # gunicorn: reopen log files
        wait_for(lambda: os.path.exists(log), "gunicorn to reopen its log on USR1")
        cli_ok("stop", "--tree", g.pid)
        for _ in range(10):
            check(hello() == "hello world", "not serving after stop --tree")
        check(g.poll() is None, "gunicorn died")
    finally:
        g.terminate()
        g.wait(timeout=30)


def t_uwsgi(tmp):
    """uWSGI (Debian's uwsgi-plugin-python3): refused without
    --enable-threads (it never releases the GIL then); with it, a master and
    2 workers attached with --tree, requests recorded, all serving after stop."""
    exe = shutil.which("uwsgi_python3")
    if not exe:
        raise Skip("uwsgi_python3 not installed (apt-get install uwsgi-core "
                   "uwsgi-plugin-python3)")
    for threads in (False, True):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        pidfile = os.path.join(tmp, "uwsgi.pid")
        args = [exe, "--http-socket", "127.0.0.1:%d" % port, "--master", "--processes", "2",
                "--wsgi-file", os.path.join(TARGETS, "wsgiapp.py"), "--pidfile", pidfile,
                "--disable-logging", "--logto", os.path.join(tmp, "uwsgi.log")]
        u = subprocess.Popen(args + (["--enable-threads"] if threads else []),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = "http://127.0.0.1:%d/x" % port
            wait_for(lambda: _try(lambda: urllib.request.urlopen(url, timeout=5).read()),
                     "uWSGI to serve", timeout=30, interval=0.2)
            master = int(open(pidfile).read())
            if not threads:
                r = cli("start", "--tree", "-o", tmp, master)
                check(r.returncode == 1 and "--enable-threads" in r.stderr,
                      "no refusal without --enable-threads: %r" % r.stderr)
                check(not any("covinject" in open("/proc/%d/maps" % p).read()
                              for p in [master] + children(master)), "payload loaded")
                continue
            out = cli_ok("start", "--tree", "--dump-signal", "RTMIN+3", "--stop-signal",
                         "RTMIN+4", "-o", tmp, master)
            check(out.count("collecting in") == 3, "start --tree: %r" % out)
            for _ in range(10):
                check(urllib.request.urlopen(url, timeout=5).read() == b"hello /x", "bad answer")
            cli_ok("dump", "--tree", master)
            v = tagged("wsgiapp.py", "v")
            check(any(v <= measured(p, "wsgiapp.py") for p in files_of(tmp)), "no view lines")
            cli_ok("stop", "--tree", master)
            check(urllib.request.urlopen(url, timeout=5).read() == b"hello /x", "not serving")
        finally:
            for kid in children(u.pid):
                os.kill(kid, signal.SIGKILL)
            u.kill()
            u.wait()
            for p in files_of(tmp):
                os.unlink(p)


def _try(fn):
    try:
        return fn()
    except OSError:
        return None


def children(pid):
    kids = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                if int(f.read().split(")")[-1].split()[1]) == pid:
                    kids.append(int(stat.split("/")[2]))
        except (OSError, ValueError):
            pass
    return kids


E2E = [t_prefork, t_mp_pool, t_exit_snapshot, t_reset_and_interval, t_chain, t_concurrent]
SYSTEM = [("uwsgi [system]", t_uwsgi)]
# gunicorn on the system python3 and on every sid interpreter (test/run.py)
GUNICORN = t_gunicorn
