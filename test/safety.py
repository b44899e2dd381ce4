"""End-to-end tests that covinject never harms its target: killed at any
instant of an attach, the target runs on correctly."""
import os
import random
import re
import subprocess
import time

from lib import COVINJECT, Target, check, get

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
    memfds = [fd for fd in os.listdir("/proc/%d/fd" % t.pid)
              if "covinject" in os.readlink("/proc/%d/fd/%s" % (t.pid, fd))]
    check(len(memfds) <= 1, "memfds left: %s" % memfds)
    check(t.alive(), "target died")


E2E = [t_leftover_memfd]
SYSTEM_EXE = [t_kill_anywhere]
