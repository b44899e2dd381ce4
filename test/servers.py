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
import sys
import threading
import time
import urllib.request

import coverage

from lib import (COVINJECT, TARGETS, Failure, Skip, Target, check, cli, cli_ok, function_body,
                 get, measured, tagged, wait_for)
from procs import alive, children


def files_of(tmp):
    return glob.glob(os.path.join(tmp, ".coverage.*"))


def pid_of(path):
    return int(re.search(r"\.pid(\d+)\.", path).group(1))


def ask(port, text):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(text.encode())
        return s.recv(1024).decode()


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


def t_pool_exit(exe, tmp):
    """Pool workers recycled after one task end with os._exit, which runs no
    exit hook: each still writes its final snapshot (no periodic one here)."""
    t = Target(exe, "mppool.py")
    cli_ok("start", "--interval", "0", "-o", tmp, t.pid)
    t.send("recycle")
    check(t.proc.stdout.readline().split()[:1] == ["DONE"], "the pool did not answer")
    sq = tagged("mppool.py", "sq")
    workers = {pid_of(p) for p in files_of(tmp) if sq <= measured(p, "mppool.py")}
    check(len(workers - {t.pid}) >= 3, "recycled workers with data: %s" % workers)
    cli_ok("stop", t.pid)
    n = len(files_of(tmp))
    t.send("recycle")           # after stop: _exit is itself again
    check(t.proc.stdout.readline().split()[:1] == ["DONE"], "the pool after stop")
    check(len(files_of(tmp)) == n and t.alive(), "files after stop: %s" % files_of(tmp))


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
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    gunicorn = Target.adopt(g)
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
        gunicorn.kill()                 # the master with its workers at once


def t_uwsgi(tmp):
    """uWSGI (Debian's uwsgi-plugin-python3).  Without --enable-threads it
    keeps the GIL outside Python: under traffic the workers start at their
    requests, the master (no Python after boot) is skipped; without traffic
    dump and stop still write their snapshots (copied without the GIL) and
    the collector goes at the next request;
    with it, a master and
    2 workers attached with --tree, recycled every 3 requests: the workers
    it respawns are forked without Python's hooks (no --py-call-osafterfork)
    and keep every generation's data in files of their own, the master's
    file holds only the master's, the master collects on, all serve after
    stop.  Threads are judged from what uWSGI was given, not from words in
    its command line: a path holding "ini" does not pass for a
    configuration, UWSGI_ENABLE_THREADS in the environment and
    enable-threads in an --ini file count.  With --py-call-osafterfork the
    respawned workers run Python's hooks and collect on their own."""
    exe = shutil.which("uwsgi_python3")
    if not exe:
        raise Skip("uwsgi_python3 not installed (apt-get install uwsgi-core "
                   "uwsgi-plugin-python3)")
    mini = os.path.join(tmp, "mini")           # "ini" in a path: no configuration
    os.mkdir(mini)
    shutil.copy(os.path.join(TARGETS, "wsgiapp.py"), mini)
    ini = os.path.join(tmp, "threads.ini")
    with open(ini, "w") as f:
        f.write("[uwsgi]\noffload-threads = 2\nenable-threads = true\n")
    for mode in ("none", "ini", "env", "osafterfork"):
        threads = mode != "none"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        pidfile = os.path.join(tmp, "uwsgi.pid")
        args = [exe, "--http-socket", "127.0.0.1:%d" % port, "--master", "--processes", "2",
                "--wsgi-file", os.path.join(mini if mode == "none" else TARGETS, "wsgiapp.py"),
                "--pidfile", pidfile,
                "--disable-logging", "--logto", os.path.join(tmp, "uwsgi.log")]
        if threads:
            args += ["--max-requests", "3", "--min-worker-lifetime", "1"]
        env = dict(os.environ, UWSGI_ENABLE_THREADS="1") if mode == "env" else None
        args += {"ini": ["--ini", ini], "osafterfork": ["--enable-threads",
                                                     "--py-call-osafterfork"]}.get(mode, [])
        u = subprocess.Popen(args, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        uwsgi = Target.adopt(u)
        try:
            url = "http://127.0.0.1:%d/x" % port
            wait_for(lambda: _try(lambda: urllib.request.urlopen(url, timeout=5).read()),
                     "uWSGI to serve", timeout=30, interval=0.2)
            master = int(open(pidfile).read())
            if not threads:
                # the GIL only while a request runs Python: start at requests
                stop_traffic = threading.Event()

                def traffic():
                    while not stop_traffic.is_set():
                        _try(lambda: urllib.request.urlopen(url, timeout=5).read())
                        time.sleep(0.02)
                load = threading.Thread(target=traffic)
                load.start()
                try:
                    out = cli_ok("start", "--tree", "--timeout", "2", "--dump-signal",
                                 "RTMIN+3", "--stop-signal", "RTMIN+4", "-o", tmp, master)
                    check("%d: loaded; collection begins at its next request" % master in out
                          and out.count("collecting in") == 2, "start --tree: %r" % out)
                    wait_for(lambda: cli_ok("status", "--tree", master).count(
                        "covinject loaded, collecting") == 2, "both workers collecting")
                finally:
                    stop_traffic.set()
                    load.join()
                # no traffic: snapshots are copied without the GIL
                v = tagged("wsgiapp.py", "v")
                dumped = cli_ok("dump", "--tree", "--timeout", "5", master)
                check(any(v <= measured(p, os.path.join(mini, "wsgiapp.py"))
                          for p in re.findall(r"^\d+: (/\S+)", dumped, re.M)),
                      "no view lines in a snapshot without traffic: %r" % dumped)
                r = cli("stop", "--tree", "--timeout", "5", master)
                finals = re.findall(r"^\d+: (/\S+)", r.stdout, re.M)
                check(r.returncode == 0 and len(finals) == 2 and
                      r.stderr.count("the collector is removed at the next request") == 2,
                      "stop without traffic: %d %r %r" % (r.returncode, r.stdout, r.stderr))
                check(any(v <= measured(p, os.path.join(mini, "wsgiapp.py")) for p in finals),
                      "no view lines in the final snapshots: %r" % finals)

                def all_stopped():
                    _try(lambda: urllib.request.urlopen(url, timeout=5).read())
                    st = cli_ok("status", "--tree", master)
                    return st.count("covinject loaded, stopped") == 2
                wait_for(all_stopped, "the workers to remove the collector at a request",
                         timeout=20, interval=0.05)
                check(urllib.request.urlopen(url, timeout=5).read() == b"hello /x", "serving")
                continue
            if mode == "ini":
                out = cli_ok("start", "--tree", "--dump-signal", "RTMIN+3", "--stop-signal",
                             "RTMIN+4", "-o", tmp, master)
                check(out.count("collecting in") == 3, "start --tree with --ini: %r" % out)
                cli_ok("stop", "--tree", master)
                continue
            out = cli_ok("start", "--tree", "--dump-signal", "RTMIN+3", "--stop-signal",
                         "RTMIN+4", "-o", tmp, master)
            check(out.count("collecting in") == 3, "start --tree: %r" % out)
            first = set(children(master))

            def served_by_respawned():  # a worker recycles only after 1 s of life
                r = urllib.request.urlopen(url, timeout=5)
                check(r.read() == b"hello /x", "bad answer")
                return int(r.headers["X-Pid"]) not in first | {master}
            wait_for(served_by_respawned, "a request served by a respawned worker",
                     timeout=20, interval=0.1)
            v = tagged("wsgiapp.py", "v")
            respawned = set(children(master)) - first
            st = cli_ok("status", "--tree", master)
            # with --py-call-osafterfork Python's hooks run: a collector of its own
            own = "covinject loaded, collecting" if mode == "osafterfork" else \
                "covinject inherited from its parent"
            check("pid %d: covinject loaded, collecting" % master in st and all(
                "pid %d: %s" % (p, own) in st for p in respawned), "status --tree: %r" % st)
            cli_ok("dump", "--tree", master)
            mine = [p for p in files_of(tmp) if pid_of(p) == master]
            check(len(mine) == 1 and not v & measured(mine[0], "wsgiapp.py"),
                  "the master's file: %s" % mine)
            cli_ok("stop", "--tree", master)
            check(urllib.request.urlopen(url, timeout=5).read() == b"hello /x", "not serving")
            os.kill(master, signal.SIGINT)      # every worker ends normally: own files
            wait_for(lambda: u.poll() is not None, "uWSGI to end", timeout=30)
            workers = {pid_of(p) for p in files_of(tmp) if v <= measured(p, "wsgiapp.py")}
            check(workers & first and workers - first - {master},
                  "worker files: first %s, with data %s" % (first, workers))
        finally:
            uwsgi.kill()                # not worker by worker: the master respawns them
            for p in files_of(tmp):
                os.unlink(p)


APACHE_CONF = """ServerName localhost
ServerRoot {tmp}
Listen 127.0.0.1:{port}
PidFile {tmp}/httpd.pid
ErrorLog {tmp}/error.log
DefaultRuntimeDir {tmp}
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule wsgi_module /usr/lib/apache2/modules/mod_wsgi.so
User www-data
Group www-data
StartServers 1
ServerLimit 1
ThreadsPerChild 4
MaxRequestWorkers 4
WSGIScriptAlias /app {targets}/app.wsgi
<Directory {targets}>
Require all granted
</Directory>
"""


def t_apache(tmp):
    """Apache + mod_wsgi (Debian's apache2, libapache2-mod-wsgi-py3) on a
    loopback port: --tree on the parent (libpython loaded, no interpreter
    in it) skips it at once and attaches its children; the application's
    lines are measured in the main interpreter (WSGIApplicationGroup
    %{GLOBAL}), embedded and in a daemon process, from the first request
    after start (each request thread's state is made anew by
    PyGILState_Ensure), and in the default group's sub-interpreter (a
    thread state per request thread, made by mod_wsgi, entered with
    PyEval_AcquireThread), embedded and in a daemon process."""
    apache = shutil.which("apache2") or "/usr/sbin/apache2"
    if not os.path.exists(apache) or not os.path.exists(
            "/usr/lib/apache2/modules/mod_wsgi.so"):
        raise Skip("apache2 and mod_wsgi not installed (apt-get install apache2 "
                   "libapache2-mod-wsgi-py3)")
    os.chmod(tmp, 0o777)
    v = tagged("app.wsgi", "v")
    signals = ["--dump-signal", "RTMIN+3", "--stop-signal", "RTMIN+4"]
    modes = {"embedded": "WSGIApplicationGroup %{GLOBAL}\n",
             "daemon": "WSGIDaemonProcess covd processes=1 threads=2\n"
                       "WSGIProcessGroup covd\nWSGIApplicationGroup %{GLOBAL}\n",
             "sub-interpreter": "",
             "daemon-sub-interpreter": "WSGIDaemonProcess covd processes=1 threads=2\n"
                                       "WSGIProcessGroup covd\n"}
    for mode, extra in modes.items():
        out = os.path.join(tmp, mode)
        os.mkdir(out)
        os.chmod(out, 0o777)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        conf = os.path.join(tmp, "httpd.conf")
        with open(conf, "w") as f:
            f.write(APACHE_CONF.format(tmp=tmp, port=port, targets=TARGETS) + extra)
        a = Target.adopt(subprocess.Popen(
            [apache, "-f", conf, "-DFOREGROUND"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True))
        url = "http://127.0.0.1:%d/app/x" % port
        try:
            wait_for(lambda: _try(lambda: urllib.request.urlopen(url, timeout=5).read()),
                     "Apache to serve", timeout=30, interval=0.2)
            t0 = time.monotonic()
            started = cli_ok("start", "--tree", *signals, "-o", out, a.pid)
            check("%d: skipped: libpython is loaded but no interpreter runs in it" % a.pid
                  in started and "collecting in " in started and time.monotonic() - t0 < 5,
                  "%s: start --tree: %r" % (mode, started))
            check(urllib.request.urlopen(url, timeout=5).read() == b"hello /x", "answer")
            if mode.endswith("sub-interpreter"):
                status = cli_ok("status", "--tree", a.pid)
                check("interpreters: 2 (2 measured)" in status, "status: %r" % status)
            dumped = cli_ok("dump", "--tree", a.pid)
            lines = set()
            for p in re.findall(r"^\d+: (/\S+)", dumped, re.M):
                lines |= measured(p, "app.wsgi")
            check(v <= lines, "%s: the view after start: %s" % (mode, sorted(lines)))
            cli_ok("stop", "--tree", a.pid)
            check(urllib.request.urlopen(url, timeout=5).read() == b"hello /x", "after stop")
        finally:
            a.kill()


def t_django(tmp):
    """Django under gunicorn (2 sync workers): a view that uses the ORM and
    a middleware, measured in every worker attached with --tree."""
    exe = "/usr/bin/python3"
    if subprocess.run([exe, "-c", "import gunicorn, django"], capture_output=True).returncode:
        raise Skip("gunicorn and django are not importable by %s (apt-get install "
                   "gunicorn python3-django)" % exe)
    port = free_port()
    env = dict(os.environ, COVINJECT_DJANGO_DB=os.path.join(tmp, "db.sqlite3"))
    g = Target.adopt(subprocess.Popen(
        [exe, "-m", "gunicorn", "-w", "2", "-b", "127.0.0.1:%d" % port, "--chdir", TARGETS,
         "--error-logfile", os.path.join(tmp, "error.log"), "djangoapp.wsgi:application"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True))
    url = "http://127.0.0.1:%d/visits" % port

    def get_visits():
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.headers["X-Covinject"] == "seen" and r.read().decode()
    wait_for(lambda: _try(get_visits), "gunicorn + Django to serve", timeout=30, interval=0.2)
    wait_for(lambda: len(children(g.pid)) == 2, "2 workers", timeout=30)
    out = os.path.join(tmp, "out")
    os.mkdir(out)
    started = cli_ok("start", "--tree", "--dump-signal", "RTMIN+3", "--stop-signal",
                     "RTMIN+4", "-o", out, g.pid)
    check(started.count("collecting in") == 3, "start --tree: %r" % started)
    for _ in range(8):
        check(get_visits().startswith("visits "), "bad answer")
    dumped = cli_ok("dump", "--tree", g.pid)
    lines = {}
    for p in re.findall(r"^\d+: (/\S+)", dumped, re.M):
        for name in ("views.py", "middleware.py"):
            lines.setdefault(name, set()).update(measured(p, "djangoapp/" + name))
    check(tagged("djangoapp/views.py", "v") <= lines["views.py"] and
          not tagged("djangoapp/views.py", "n") & lines["views.py"], "views: %s" % lines)
    check(tagged("djangoapp/middleware.py", "m") <= lines["middleware.py"], "middleware")
    cli_ok("stop", "--tree", g.pid)
    check(get_visits().startswith("visits "), "not serving after stop")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def t_celery(tmp):
    """Celery's prefork pool (billiard) with --max-tasks-per-child 3, on a
    redis-server started on loopback: every child, the recycled ones that
    end with os._exit included, keeps its tasks' lines in its own file,
    with no periodic snapshot to rely on."""
    redis_server = shutil.which("redis-server")
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        redis_server = None
    if not redis_server:
        raise Skip("celery and redis not installed (apt-get install python3-celery "
                   "python3-redis redis-server)")
    port = free_port()
    Target.adopt(subprocess.Popen(
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True))
    env = dict(os.environ, COVINJECT_REDIS_PORT=str(port), PYTHONPATH=TARGETS)
    worker = Target.adopt(subprocess.Popen(
        ["/usr/bin/python3", "-m", "celery", "-A", "celeryapp", "worker", "--pool",
         "prefork", "--concurrency", "2", "--max-tasks-per-child", "3", "-l", "error"],
        cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True))
    os.environ["COVINJECT_REDIS_PORT"] = str(port)
    sys.path.insert(0, TARGETS)
    try:
        import celeryapp
        celeryapp.app.conf.broker_url = "redis://127.0.0.1:%d/0" % port
        celeryapp.app.conf.result_backend = "redis://127.0.0.1:%d/1" % port
        def answers():
            try:
                return celeryapp.add.delay(1, 1).get(timeout=2) == 2
            except Exception:       # not connected yet, or no worker yet
                return False
        wait_for(answers, "the Celery worker to answer", timeout=60, interval=0.5)
        wait_for(lambda: len(children(worker.pid)) == 2, "2 pool processes")
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        started = cli_ok("start", "--tree", "--interval", "0", "--dump-signal", "RTMIN+3",
                         "--stop-signal", "RTMIN+4", "-o", out, worker.pid)
        check(started.count("collecting in") == 3, "start --tree: %r" % started)
        for i in range(18):
            check(celeryapp.add.delay(i, i).get(timeout=10) == 2 * i, "task %d" % i)
        t = tagged("celeryapp.py", "t")
        wait_for(lambda: len({pid_of(p) for p in glob.glob(os.path.join(out, ".coverage.*"))
                              if t <= measured(p, "celeryapp.py")}) >= 5,
                 "5 recycled children's files with their tasks' lines")
        cli_ok("stop", "--tree", worker.pid)
    finally:
        sys.path.remove(TARGETS)
        sys.modules.pop("celeryapp", None)
        os.environ.pop("COVINJECT_REDIS_PORT", None)


def _try(fn):
    try:
        return fn()
    except OSError:
        return None


def pipes(pid):
    """The pipe inodes pid holds open."""
    out = set()
    for fd in glob.glob("/proc/%d/fd/*" % pid):
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("pipe:"):
            out.add(link)
    return out


def t_fork_without_hooks(exe, tmp):
    """Children forked with libc's fork(), which runs none of Python's
    after-fork hooks (uWSGI's workers by default), are never their parent's
    collector: they hold none of its pipes, a signal to them never reaches
    it, status says what they are, one that exits normally writes its own
    file and never the parent's, the parent collects on; `start` on one
    gives it a collector of its own, whose stop leaves the parent's alone."""
    flags = os.path.join(tmp, "flags")
    os.mkdir(flags)
    t = Target(exe, "rawfork.py", flags)
    out = cli_ok("start", "--interval", "0", "-o", tmp, t.pid)
    mine = re.search(r"data file: (\S+)", out).group(1)

    def fork():
        t.send("fork")
        return int(t.proc.stdout.readline())
    a, b = fork(), fork()
    k, s = tagged("rawfork.py", "k"), tagged("rawfork.py", "s")
    # a child holds no pipe of the collector's: only the target's stdio
    stdio = {os.readlink("/proc/%d/fd/%d" % (t.pid, fd)) for fd in (0, 1, 2)}
    for c in (a, b):    # dropped as the child starts to run
        wait_for(lambda: pipes(c) <= stdio, "child %d to drop the collector's pipes %s" %
                 (c, pipes(c) - stdio))
    st = cli_ok("status", a)
    check("forked without Python's after-fork hooks" in st, "status: %r" % st)
    r = cli("dump", a)
    check(r.returncode == 1 and "forked without Python's after-fork hooks" in r.stderr,
          "dump of the child: %r" % r.stderr)
    before = int(re.search(r"snapshots: (\d+) written", cli_ok("status", t.pid)).group(1))
    os.kill(a, signal.SIGUSR1)
    # a: second() then a normal exit; its own file, never the parent's
    open(os.path.join(flags, "go-%d" % a), "w").close()
    open(os.path.join(flags, "exit-%d" % a), "w").close()
    own = wait_for(lambda: [p for p in files_of(tmp) if pid_of(p) == a], "a's own file")
    check(k | s <= measured(own[0], "rawfork.py"), "a's data: %s" % own)
    st = cli_ok("status", t.pid)
    check("collecting" in st and "snapshots: %d written" % before in st,
          "the parent was reached by its child: %r" % st)
    path = cli_ok("dump", t.pid).strip()
    check(path == mine and not (k | s) & measured(path, "rawfork.py"),
          "the parent's file holds the child's lines: %s" % path)
    # b: a collector of its own, started after the fork
    out = cli_ok("start", "--interval", "0", "-o", tmp, b)
    check("collecting in %d " % b in out, "start on the child: %r" % out)
    open(os.path.join(flags, "go-%d" % b), "w").close()
    wait_for(lambda: s <= measured(cli_ok("dump", b).strip(), "rawfork.py"), "b's second()")
    cli_ok("stop", b)
    check("collecting" in cli_ok("status", t.pid), "stopping the child stopped the parent")
    open(os.path.join(flags, "exit-%d" % b), "w").close()
    cli_ok("stop", t.pid)


def t_fork_storm(exe, tmp):
    """1,500 children forked with libc's fork() (the GIL released, as
    uWSGI's master does) while the collector takes the GIL for snapshot
    after snapshot: not one child hangs on a GIL that the collector's
    thread held or waited for at the fork (payload.c, gil_take)."""
    t = Target(exe, "forkstorm.py")
    cli_ok("start", "-o", tmp, t.pid)
    done, n = [], [0]

    def dumps():
        while not done:
            n[0] += cli("dump", t.pid).returncode == 0
    th = threading.Thread(target=dumps)
    th.start()
    try:
        t.send("storm 1500")
        line = t.proc.stdout.readline().split()
    finally:
        done.append(1)
        th.join()
    check(line == ["DONE", "1500", "0"], "children that hung: %r" % line)
    check(n[0] > 100, "only %d snapshots during the storm" % n[0])
    cli_ok("stop", t.pid)
    t.send("quit")
    check(t.proc.wait(timeout=10) == 0, "target exited %s" % t.proc.returncode)


def t_fork_between_stop_and_start(exe, tmp):
    """A child forked after stop, then parent and child both started: each
    has its own request pipe, so dump and stop reach exactly the process
    named."""
    flags = os.path.join(tmp, "flags")
    os.mkdir(flags)
    t = Target(exe, "rawfork.py", flags)
    cli_ok("start", "--interval", "0", "-o", tmp, t.pid)
    cli_ok("stop", t.pid)
    t.send("osfork")
    c = int(t.proc.stdout.readline())
    cli_ok("start", "--interval", "0", "-o", tmp, c)
    cli_ok("start", "--interval", "0", "-o", tmp, t.pid)
    check(not pipes(c) & pipes(t.pid) - {os.readlink("/proc/%d/fd/%d" % (t.pid, fd))
                                         for fd in (0, 1, 2)}, "a pipe is shared")
    count = lambda pid: int(re.search(r"snapshots: (\d+) written", cli_ok("status", pid)).group(1))
    for i in range(5):
        cli_ok("dump", c)
        check(count(c) == i + 1 and count(t.pid) == 0, "dump %d of the child went astray" % i)
    cli_ok("stop", c)
    check("collecting" in cli_ok("status", t.pid), "stop of the child stopped the parent")
    cli_ok("dump", t.pid)
    check(count(t.pid) == 1, "the parent's dump")
    for name in ("go", "exit"):
        open(os.path.join(flags, "%s-%d" % (name, c)), "w").close()
    cli_ok("stop", t.pid)


def t_wsgi_script_import_lines(exe, tmp):
    """A .wsgi script loaded as mod_wsgi loads it gets its `import` context
    like any module: the lines its load ran, derived from its source."""
    t = Target(exe, "wsgiloader.py")
    cli_ok("start", "-o", tmp, t.pid)
    t.send("call")
    check(t.proc.stdout.readline().strip() == "hello /x", "the application")
    path = cli_ok("stop", t.pid).strip()
    data = coverage.CoverageData(path)
    data.read()
    wsgi = os.path.realpath(os.path.join(TARGETS, "app.wsgi"))
    data.set_query_contexts(["import"])
    imported = set(data.lines(wsgi) or ())
    data.set_query_contexts([""])
    ran = set(data.lines(wsgi) or ())
    check(tagged("app.wsgi", "i") <= imported, "import context of app.wsgi: %s" % sorted(imported))
    check(tagged("app.wsgi", "v") <= ran, "the view after start: %s" % sorted(ran))


def t_subinterpreters(exe, tmp):
    """Sub-interpreters (mod_wsgi's application groups) are measured when
    they share the main interpreter's GIL and allocator: their code run
    after start is in the data, start and stop again work in them, and the
    process runs on after stop; one made after start is met by the sweep
    and measured too, one destroyed while collecting is forgotten.  An isolated one (3.12+: a GIL and an allocator of
    its own) is not, and start and status say so."""
    try:
        t = Target(exe, "subinterp.py")
    except Failure as e:
        if "ModuleNotFoundError" in str(e) or "ImportError: No module named" in str(e):
            raise Skip("this Python has no _interpreters or _xxsubinterpreters module")
        raise
    isolated = t.ready[2] == "1"
    shared, iso = tagged("subinterp_work.py", "s"), tagged("subinterp_work.py", "i")
    for round in (1, 2):
        out = os.path.join(tmp, "r%d" % round)
        os.mkdir(out)
        r = cli("start", "-o", out, t.pid)
        check(r.returncode == 0, "start: %d %r" % (r.returncode, r.stderr))
        check(("1 of %d interpreters are not measured: 1 isolated" % (2 + round) in r.stderr)
              == isolated,
              "start's warning: %r" % r.stderr)
        status = cli_ok("status", t.pid)
        check("interpreters: %d (%d measured)" % (1 + round + isolated, 1 + round) in status
              and ("not measured: 1 of" in status) == isolated, "status: %r" % status)
        t.send("run")
        check(t.proc.stdout.readline().strip() == "ran", "the sub-interpreters ran")
        lines = measured(cli_ok("stop", t.pid).strip(), "subinterp_work.py")
        check(shared <= lines, "round %d: the shared sub-interpreter: %s" % (round, sorted(lines)))
        check(not iso & lines, "round %d: measured in an isolated one: %s" % (round, sorted(lines)))
        if round == 2:
            break
        # one more, made while collecting: the sweep meets it within a second
        cli_ok("start", "-o", out, t.pid)
        t.send("new")
        check(t.proc.stdout.readline().strip() == "made", "a new sub-interpreter")
        wait_for(lambda: "interpreters: %d (3 measured)" % (3 + isolated) in
                 cli_ok("status", t.pid), "the sweep to measure the new sub-interpreter")
        t.send("run")
        check(t.proc.stdout.readline().strip() == "ran", "the sub-interpreters ran")
        lines = measured(cli_ok("stop", t.pid).strip(), "subinterp_work.py")
        check(shared <= lines, "the new sub-interpreter: %s" % sorted(lines))
    # one destroyed while collecting: the sweep forgets it, stop leaves it be
    cli_ok("start", "-o", tmp, t.pid)
    t.send("drop")
    check(t.proc.stdout.readline().strip() == "dropped", "a sub-interpreter destroyed")
    wait_for(lambda: "interpreters: %d (2 measured)" % (2 + isolated) in
             cli_ok("status", t.pid), "status to count one less")
    cli_ok("stop", t.pid)
    t.send("run")
    check(t.proc.stdout.readline().strip() == "ran" and t.alive(), "runs on after stop")


def t_libpython_without_interpreter(exe, tmp):
    """A process that has libpython loaded but never started an interpreter
    (Apache's parent with mod_wsgi) is refused with that reason, and --tree
    skips it at once while attaching its Python child."""
    lib = subprocess.run([exe, "-c", "import sys, sysconfig as s; sys.stdout.write("
                          "'%s %s %s' % (s.get_config_var('LIBDIR'), "
                          "s.get_config_var('INSTSONAME'), s.get_config_var('Py_ENABLE_SHARED')))"],
                         capture_output=True, text=True).stdout.split()
    if len(lib) != 3 or lib[2] != "1":
        raise Skip("this Python links libpython into its executable: no libpython to load")
    if not os.path.exists(os.path.join(lib[0], lib[1])):
        raise Skip("its libpython is not in this machine's root (it runs in a chroot)")
    embed = os.path.join(tmp, "embed")
    subprocess.run(["cc", "-o", embed, os.path.join(TARGETS, "embed.c"), "-ldl"], check=True)
    t = Target(exe, "idle.py", wrap=[embed, os.path.join(lib[0], lib[1])])
    parent = t.proc.pid
    r = cli("start", "-o", tmp, parent)
    check(r.returncode == 1 and "no interpreter runs in this process" in r.stderr,
          "start on it: %d %r" % (r.returncode, r.stderr))
    t0 = time.monotonic()
    out = cli_ok("start", "--tree", "-o", tmp, parent)
    check("%d: skipped: libpython is loaded but no interpreter runs in it" % parent in out and
          "collecting in %d " % t.pid in out and time.monotonic() - t0 < 5,
          "start --tree: %r after %.1f s" % (out, time.monotonic() - t0))
    cli_ok("stop", t.pid)


E2E = [t_prefork, t_mp_pool, t_pool_exit, t_exit_snapshot, t_reset_and_interval, t_chain, t_concurrent,
       t_fork_without_hooks, t_fork_storm, t_fork_between_stop_and_start, t_wsgi_script_import_lines,
       t_subinterpreters, t_libpython_without_interpreter]
SYSTEM = [("uwsgi [system]", t_uwsgi), ("apache and mod_wsgi [system]", t_apache),
          ("celery [system]", t_celery), ("django under gunicorn [system]", t_django)]
# gunicorn on the system python3 and on every sid interpreter (test/run.py)
GUNICORN = t_gunicorn
