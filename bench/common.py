"""Helpers shared by covinject's benchmarks (bench/run.py, attach.py, dumpmem.py).

Interpreter discovery, the covinject command, target processes that are
always killed, /proc readings, statistics and the machine description.
Standard library only; run with /usr/bin/python3.
"""
import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
COVINJECT = os.environ.get("COVINJECT_BIN") or os.path.join(ROOT, "covinject")
sys.path.insert(0, os.path.join(ROOT, "test"))
from pythons import SUPPORTED, sid_pythons  # noqa: E402  (payload/versions.h)
BORROWED_RE = re.compile(r"thread (\d+) was borrowed for ([0-9.]+) ms")


# ---- interpreters -----------------------------------------------------------

def py_version(exe):
    """(major, minor, "3.X.Y") of exe, or None if it does not run."""
    try:
        out = subprocess.run(
            [exe, "-c", "import sys; print(*sys.version_info[:3])"],
            capture_output=True, text=True, timeout=20).stdout.split()
        return int(out[0]), int(out[1]), "%s.%s.%s" % tuple(out)
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def has_module(exe, name):
    r = subprocess.run([exe, "-c", "import " + name], capture_output=True,
                       timeout=30)
    return r.returncode == 0


def discover():
    """[{label, exe, ver, version, coverage}] for /usr/bin/python3, every
    pyenv version >= 3.9 and the sid root's 3.14 and 3.15 (make sid-root),
    as test/run.py finds them."""
    candidates = [("system", "/usr/bin/python3")]
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    if shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True,
                              text=True).stdout.strip() or root
    for exe in sorted(glob.glob(os.path.join(root, "versions", "*", "bin", "python3"))):
        candidates.append(("pyenv-" + exe.split(os.sep)[-3], exe))
    sid, missing = sid_pythons()
    candidates += sid
    for why in missing:
        log("bench: skipping %s" % why)
    found, seen = [], set()
    for label, exe in candidates:
        real = os.path.realpath(exe)
        if not os.path.exists(exe) or real in seen:
            continue
        seen.add(real)
        v = py_version(exe)
        if v is None or v[:2] not in SUPPORTED:
            continue
        found.append({"label": label, "exe": exe, "ver": v[:2], "version": v[2],
                      "coverage": has_module(exe, "coverage"),
                      "slipcover": v[:2] < (3, 12) and has_module(exe, "slipcover.probe")})
    found.sort(key=lambda p: (p["ver"], p["label"] != "system"))
    return found


def select(pythons, wanted):
    """Filter by --python values (a label, a version prefix like 3.12, a path)."""
    if not wanted:
        return pythons
    keep = []
    for p in pythons:
        if any(w in (p["label"], p["exe"]) or p["version"].startswith(w) for w in wanted):
            keep.append(p)
    return keep


# ---- the covinject command --------------------------------------------------

def covinject(*args, timeout=60, cpus=None):
    """Run covinject (on the CPU set cpus, if given); (CompletedProcess, wall
    seconds)."""
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    t0 = time.perf_counter()
    r = subprocess.run([COVINJECT] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout, preexec_fn=pin)
    return r, time.perf_counter() - t0


def covinject_ok(*args, **kw):
    r, wall = covinject(*args, **kw)
    if r.returncode != 0:
        raise RuntimeError("covinject %s exited %d: %s" % (
            " ".join(map(str, args)), r.returncode, r.stderr.strip()))
    return r, wall


def start(pid, out_dir, *extra):
    """covinject start -v [extra...]: (wall ms, borrowed ms)."""
    r, wall = covinject_ok("start", "-v", "-o", out_dir, *(extra + (pid,)))
    m = BORROWED_RE.search(r.stderr)
    return wall * 1000, float(m.group(2)) if m else float("nan")


def stop(pid):
    """covinject stop: wall ms."""
    return covinject_ok("stop", pid)[1] * 1000


# ---- processes --------------------------------------------------------------

class Target:
    """A child process talking lines over stdin/stdout, killed on exit.

    Use as a context manager: the process is killed in __exit__ whatever
    happened, so no benchmark leaves a process behind.
    """

    def __init__(self, argv, env=None, cwd=None):
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=self.env, cwd=self.cwd)
        return self

    def __exit__(self, *exc):
        self.kill()

    @property
    def pid(self):
        return self.proc.pid

    def expect(self, prefix, timeout=120):
        """Read lines until one starts with prefix; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("%s exited: %s" % (
                    " ".join(self.argv), self.proc.stderr.read()[-2000:]))
            if line.startswith(prefix):
                return line.rstrip("\n")
        raise RuntimeError("%s: no %r within %.0f s" % (self.argv, prefix, timeout))

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def ask(self, line, prefix):
        self.send(line)
        return self.expect(prefix)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()
            for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                try:
                    f.close()
                except OSError:
                    pass


class Background:
    """A child process running on its own (a load generator), killed on exit."""

    def __init__(self, argv):
        self.argv = argv
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def finish(self, timeout=60):
        """Wait for it (killing it after timeout); (stdout, stderr)."""
        try:
            return self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.communicate()


def rss_kb(pid):
    """VmRSS of pid in kB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


# ---- statistics -------------------------------------------------------------

def median(xs):
    xs = sorted(xs)
    n = len(xs)
    if not n:
        return float("nan")
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def percentile(xs, p):
    """Nearest-rank percentile (p in 0-100)."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, int(-(-p * len(xs) // 100)) - 1))
    return xs[k]


def fmt(x, spec="%.2f"):
    return "n/a" if x is None or x != x else spec % x


# ---- the machine ------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fs_type(path):
    """Filesystem type of path, from /proc/self/mounts (longest mount prefix)."""
    path = os.path.realpath(path)
    best, kind = "", "unknown"
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            mnt = parts[1]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                best, kind = mnt, parts[2]
    return kind


def revision():
    """The checkout's commit, and whether files outside bench/ differ from it."""
    def git(*args):
        r = subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""
    head = git("rev-parse", "--short", "HEAD") or "unknown commit"
    changed = [line[3:] for line in git("status", "--porcelain").splitlines()
               if not line[3:].startswith("bench/")]
    return "%s (%s), binary %s" % (
        head, "uncommitted changes in %d files" % len(changed) if changed else "clean",
        COVINJECT)


def machine():
    return {"date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "nproc": os.cpu_count(),
            "cpu": cpu_model(),
            "kernel": platform.release(),
            "runner": "%s %s" % (sys.executable, platform.python_version())}


def machine_lines(pythons, command):
    m = machine()
    lines = ["- date: %s" % m["date"],
             "- machine: %d CPUs, %s, Linux %s" % (m["nproc"], m["cpu"], m["kernel"]),
             "- interpreters: " + ", ".join(
                 "%s (%s%s)" % (p["version"], p["exe"],
                                ", coverage.py importable" if p["coverage"] else "")
                 for p in pythons),
             "- command: `%s`" % command]
    return lines


class CpuMonitor:
    """CPU time the rest of the machine used while we measured: the busy
    time in /proc/stat minus our own and our children's (reaped) time."""

    def __enter__(self):
        self.start = self._sample()
        return self

    def __exit__(self, *exc):
        self.end = self._sample()

    @staticmethod
    def _sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        busy = (v[0] + v[1] + v[2] + v[5] + v[6]) / hz   # user nice system irq softirq
        steal = (v[7] if len(v) > 7 else 0) / hz
        t = os.times()
        return time.monotonic(), busy, steal, t.user + t.system + t.children_user + t.children_system

    def summary(self):
        wall = self.end[0] - self.start[0]
        other = max(0.0, (self.end[1] - self.start[1]) - (self.end[3] - self.start[3]))
        steal = self.end[2] - self.start[2]
        return ("other processes used %.0f%% of one CPU on average (%.1f CPU-s in %.0f s); "
                "steal %.1f s" % (100 * other / wall if wall else 0, other, wall, steal))


def log(*args):
    print(*args, file=sys.stderr, flush=True)
