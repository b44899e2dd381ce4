"""End-to-end tests that covinject never harms its target: killed at any
instant of an attach, the target runs on correctly."""
import glob
import os
import random
import re
import signal
import stat
import subprocess
import threading
import time

import coverage

from lib import (COVINJECT, Skip, Target, check, cli, cli_ok, get, measured, tagged,
                 wait_for)

SLEEP = 0.4


def trials():
    return int(os.environ.get("COVINJECT_KILL_TRIALS", "40"))


def attach_time(exe, tmp):
    """Wall time of one whole `covinject start`, to spread the kills over."""
    t = Target(exe, "killsafe.py", "5")
    t0 = time.monotonic()
    subprocess.run([COVINJECT, "start", "--interval", "0", "-o", tmp, str(t.pid)],
                   capture_output=True, check=True)
    took = time.monotonic() - t0
    t.kill()
    return took


def state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().split(")")[-1].split()[0]


def t_kill_anywhere(exe, tmp):
    """SIGKILL covinject at random instants of `start` (COVINJECT_KILL_TRIALS,
    default 40; `make test-long` runs 200): every time the target keeps
    serving, is not left stopped, its interrupted sleep lasts as asked and
    raises nothing, and it prints nothing."""
    window = attach_time(exe, tmp) * 1.2
    rng = random.Random(int(os.environ.get("COVINJECT_SEED", "0")) or None)
    landed = 0
    for i in range(trials()):
        t = Target(exe, "killsafe.py", str(SLEEP))
        port = int(t.ready[1])
        c = subprocess.Popen([COVINJECT, "start", "--interval", "0", "-o", tmp, str(t.pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, window))
        c.kill()
        c.wait()
        landed += c.returncode == -9
        check(state(t.pid) not in "tT", "trial %d: target left stopped" % i)
        check(get(port, "/") == "ok", "trial %d: target does not serve" % i)
        line = t.proc.stdout.readline()
        m = re.match(r"SLEPT ([\d.]+)", line)
        check(m and SLEEP - 0.001 <= float(m.group(1)) < SLEEP + 0.25,
              "trial %d: the sleep says %r" % (i, line))
        check(t.alive(), "trial %d: target died" % i)
        t.send("")
        t.proc.wait(timeout=10)
        check(t.proc.returncode == 0, "trial %d: exit status %s" % (i, t.proc.returncode))
        err = t.proc.stderr.read()
        check(err == "", "trial %d: target printed %r" % (i, err))
        Target.live.remove(t)
    check(landed > 0, "no kill landed before covinject finished")


def t_leftover_memfd(exe, tmp):
    """A start killed mid-way may leave its memfd open in the target: the
    next start reuses it, so at most one ever exists."""
    t = Target(exe, "killsafe.py", "30")
    for delay in (0.002, 0.004, 0.006, 0.008):
        c = subprocess.Popen([COVINJECT, "start", "-o", tmp, str(t.pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        c.kill()
        c.wait()
    r = subprocess.run([COVINJECT, "status", str(t.pid)], capture_output=True, text=True)
    if "collecting" not in r.stdout:
        subprocess.run([COVINJECT, "start", "-o", tmp, str(t.pid)], check=True,
                       capture_output=True)
    def link(fd):
        try:
            return os.readlink("/proc/%d/fd/%s" % (t.pid, fd))
        except FileNotFoundError:   # closed meanwhile
            return ""
    memfds = [fd for fd in os.listdir("/proc/%d/fd" % t.pid) if "covinject" in link(fd)]
    check(len(memfds) <= 1, "memfds left: %s" % memfds)
    check(t.alive(), "target died")


E2E = [t_leftover_memfd]
SYSTEM_EXE = [t_kill_anywhere]


def t_dump_storm(exe, tmp):
    """10,000 dump signals in a burst: the target stays healthy and keeps
    serving, the collector coalesces them, and the data file is a valid
    database every time it is read meanwhile."""
    t = Target(exe, "http_server.py")
    port = int(t.ready[1])
    out = cli_ok("start", "-o", tmp, t.pid)
    path = re.search(r"data file: (\S+)", out).group(1)
    get(port, "/a")
    cli_ok("dump", t.pid)
    reads = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            d = coverage.CoverageData(path)
            d.read()
            reads.append(len(d.measured_files()))
    th = threading.Thread(target=reader)
    th.start()
    try:
        for _ in range(10000):
            os.kill(t.pid, signal.SIGUSR1)
    finally:
        stop.set()
        th.join()
    check(get(port, "/b") == "be", "not serving after the storm")
    check(reads and min(reads) >= 1, "a read found no data: %s" % reads[:5])
    def written():
        return int(re.search(r"snapshots: (\d+) written", cli_ok("status", t.pid)).group(1))
    wait_for(lambda: written() > 1, "snapshots from the storm")
    check(written() < 10000, "%d snapshots for 10,000 signals: not coalesced" % written())
    cli_ok("stop", t.pid)
    check(t.alive(), "target died")


def t_planted_symlink(exe, tmp):
    """A symlink planted at the data file's name is replaced, not followed."""
    t = Target(exe, "busy.py")
    out = cli_ok("start", "-o", tmp, t.pid)
    path = re.search(r"data file: (\S+)", out).group(1)
    victim = os.path.join(tmp, "victim")
    with open(victim, "w") as f:
        f.write("precious")
    os.symlink(victim, path)
    check(cli_ok("dump", t.pid).strip() == path, "dump went elsewhere")
    with open(victim) as f:
        check(f.read() == "precious", "the symlink's target was overwritten")
    check(not os.path.islink(path) and measured(path, "busy.py"), "data file not replaced")
    check(stat.S_IMODE(os.stat(path).st_mode) == 0o644, "data file mode %o" % os.stat(path).st_mode)
    cli_ok("stop", t.pid)


def t_symlinked_output(exe, tmp):
    """-o given as a symlink is resolved once, at start: pointing the link
    elsewhere later redirects nothing."""
    real, other = os.path.join(tmp, "real"), os.path.join(tmp, "other")
    link = os.path.join(tmp, "link")
    os.mkdir(real)
    os.mkdir(other)
    os.symlink(real, link)
    t = Target(exe, "busy.py")
    out = cli_ok("start", "-o", link, t.pid)
    check(re.search(r"data file: %s/" % re.escape(real), out), "start said %r" % out)
    os.unlink(link)
    os.symlink(other, link)
    path = cli_ok("dump", t.pid).strip()
    check(os.path.dirname(path) == real and os.listdir(other) == [],
          "went to %s; other holds %s" % (path, os.listdir(other)))
    cli_ok("stop", t.pid)


def t_target_dies_during_attach(exe, tmp):
    """The target killed at random instants of an attach: covinject says so,
    exits 1, and leaves no process stopped."""
    rng = random.Random(7)
    for i in range(10):
        t = Target(exe, "killsafe.py", "30")
        c = subprocess.Popen([COVINJECT, "start", "-o", tmp, str(t.pid)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0, 0.012))
        t.proc.kill()
        out, err = c.communicate(timeout=20)
        t.proc.wait()
        check(c.returncode in (0, 1), "trial %d: exit %d" % (i, c.returncode))
        if c.returncode:
            check(re.match(r"^covinject: start %d: " % t.pid, err) and err.count("\n") == 1,
                  "trial %d: message %r" % (i, err))
        Target.live.remove(t)


def t_fork_during_attach(exe, tmp):
    """A target forking every few milliseconds while covinject attaches:
    start works, the children run and exit normally."""
    t = Target(exe, "forkloop.py")

    def count():
        t.send("count")
        return int(t.proc.stdout.readline())
    wait_for(lambda: count() > 0, "the target to fork")
    cli_ok("start", "-o", tmp, t.pid)
    n = count()
    wait_for(lambda: count() > n + 5, "children forked while collecting")
    cli_ok("stop", t.pid)
    n = count()
    wait_for(lambda: count() > n + 5, "children forked after stop")


def t_disk_full_and_read_only(exe, tmp):
    """A full disk, then a read-only one: each snapshot fails with a clear
    message, leaves no temporary file, keeps the data, and the next one
    succeeds once the cause is gone."""
    out = os.path.join(tmp, "small")
    os.mkdir(out)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "covinject-test", out],
                      capture_output=True).returncode:
        raise Skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN)")
    try:
        t = Target(exe, "busy.py")
        cli_ok("start", "-o", out, t.pid)
        filler = os.path.join(out, "filler")
        subprocess.run(["dd", "if=/dev/zero", "of=" + filler, "bs=4k", "count=1000"],
                       capture_output=True)
        r = cli("dump", t.pid)
        check(r.returncode == 1 and re.search(r"No space left on device|disk is full", r.stderr),
              "full disk: %d %r" % (r.returncode, r.stderr))
        check(os.listdir(out) == ["filler"], "left behind: %s" % os.listdir(out))
        os.unlink(filler)
        path = cli_ok("dump", t.pid).strip()
        subprocess.run(["mount", "-o", "remount,ro", out], check=True)
        r = cli("dump", t.pid)
        check(r.returncode == 1 and "Read-only file system" in r.stderr,
              "read-only: %d %r" % (r.returncode, r.stderr))
        subprocess.run(["mount", "-o", "remount,rw", out], check=True)
        check(tagged("busy.py", "w") <= measured(cli_ok("dump", t.pid).strip(), "busy.py"),
              "data lost")
        check(os.listdir(out) == [os.path.basename(path)], "files: %s" % os.listdir(out))
        cli_ok("stop", t.pid)
        t.kill()
    finally:
        Target.kill_all()
        subprocess.run(["umount", out], capture_output=True)


def t_load_cycles(exe, tmp):
    """(make test-long) start/dump/stop cycles against a threaded server
    under constant request load: no failed request, no crash, no growth of
    threads, descriptors or memory beyond the data itself."""
    cycles = int(os.environ.get("COVINJECT_LOAD_CYCLES", "1000"))
    t = Target(exe, "http_server.py")
    port = int(t.ready[1])
    stop, counts = threading.Event(), {"ok": 0, "failed": 0}

    def client():
        while not stop.is_set():
            try:
                counts["ok" if get(port, "/a") == "a2" else "failed"] += 1
            except OSError:
                counts["failed"] += 1

    def figures():
        with open("/proc/%d/status" % t.pid) as f:
            st = dict(line.split(":", 1) for line in f)
        return (int(st["Threads"]), len(os.listdir("/proc/%d/fd" % t.pid)),
                int(st["VmRSS"].split()[0]))
    # threads and fds are counted with no request in flight (each request
    # has a thread and a socket while it is served)
    cli_ok("start", "--interval", "0", "-o", tmp, t.pid)  # first load, then measure
    cli_ok("stop", t.pid)
    time.sleep(0.3)
    before = figures()
    clients = [threading.Thread(target=client) for _ in range(2)]
    for c in clients:
        c.start()
    try:
        t0 = time.monotonic()
        for i in range(cycles):
            cli_ok("start", "--interval", "0", "-o", tmp, t.pid)
            cli_ok("dump", t.pid)
            cli_ok("stop", t.pid)
            for f in glob.glob(os.path.join(tmp, ".coverage.*")):
                os.unlink(f)
        took = time.monotonic() - t0
    finally:
        stop.set()
        for c in clients:
            c.join()
    time.sleep(0.3)
    after = figures()
    print("    load: %d cycles in %.1f s, %d requests ok, %d failed; threads %d -> %d, "
          "fds %d -> %d, RSS %d -> %d kB" % ((cycles, took, counts["ok"], counts["failed"]) +
                                            (before[0], after[0], before[1], after[1],
                                             before[2], after[2])), flush=True)
    check(counts["failed"] == 0 and counts["ok"] > 0, "requests: %s" % counts)
    check(after[0] <= before[0] and after[1] <= before[1], "threads or fds grew")
    check(after[2] - before[2] < 4096, "RSS grew by %d kB" % (after[2] - before[2]))
    check(t.alive(), "target died")


def t_markers_blocked(exe, tmp):
    """A program that blocks SIGURG and SIGWINCH (the signals that mark the
    end of a remote call): the injector steps through syscalls instead, and
    the attach works all the same; the mask is the program's afterwards."""
    t = Target(exe, "idle.py", "block-markers")

    def blocked():
        with open("/proc/%d/status" % t.pid) as f:
            return [l for l in f if l.startswith("SigBlk")][0].split()[1]
    before = blocked()
    cli_ok("start", "-o", tmp, t.pid)
    check(blocked() == before, "signal mask changed: %s -> %s" % (before, blocked()))
    cli_ok("stop", t.pid)
    cli_ok("start", "-o", tmp, t.pid)
    cli_ok("stop", t.pid)
    check(blocked() == before and t.alive(), "target changed or died")


E2E += [t_markers_blocked, t_dump_storm, t_planted_symlink, t_symlinked_output,
        t_fork_during_attach]
SYSTEM_EXE += [t_target_dies_during_attach, t_disk_full_and_read_only]
LONG = [t_load_cycles]
