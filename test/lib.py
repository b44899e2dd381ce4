"""Helpers shared by covinject's end-to-end tests: interpreters, target
processes, the CLI, and reading data files through coverage.py."""
import glob
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

import procs
from pythons import SPAN, SPAN_WORDS, SUPPORTED, sid_pythons

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COVINJECT = os.path.join(ROOT, "covinject")
TARGETS = os.path.join(ROOT, "test", "targets")
# Docker's default capability set (moby's oci/caps/defaults.go), for setpriv.
DOCKER_CAPS = ("-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,"
               "+setpcap,+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write,"
               "+setfcap")

try:
    import coverage  # noqa: F401
except ImportError:
    sys.exit("test/run.py: coverage.py is not importable by %s: install "
             "python3-coverage (apt-get install python3-coverage)" % sys.executable)


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def wait_for(cond, what, timeout=10.0, interval=0.02):
    """Poll cond() until it returns a true value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failure("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---- interpreters -----------------------------------------------------------

def py_version(exe):
    try:
        out = subprocess.run([exe, "-c", "import sys; sys.stdout.write('%d %d' % "
                              "sys.version_info[:2])"],      # 2.7 too
                             capture_output=True, text=True, timeout=20).stdout
        major, minor = out.split()
        return int(major), int(minor)
    except Exception:
        return None


FREE_THREADED = []     # free-threaded interpreters found: not run, refused


def free_threaded(exe):
    try:
        r = subprocess.run([exe, "-c", "import sysconfig; "
                            "print(sysconfig.get_config_var('Py_GIL_DISABLED'))"],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.stdout.strip() == "1"


def discover():
    """[(label, exe, (major, minor))], and names of versions not found.
    The sid root's interpreters are reported by name when it is missing."""
    candidates = [("system", "/usr/bin/python3")]
    pyenv_root = None
    if shutil.which("pyenv"):
        pyenv_root = subprocess.run(["pyenv", "root"], capture_output=True,
                                    text=True).stdout.strip()
    pyenv_root = pyenv_root or os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for d in sorted(glob.glob(os.path.join(pyenv_root, "versions", "*", "bin"))):
        exe = os.path.join(d, "python3")
        if not os.path.exists(exe):
            exe = os.path.join(d, "python2")     # 2.7 has no python3
        if os.path.exists(exe):
            candidates.append(("pyenv-" + exe.split(os.sep)[-3], exe))
    sid, skipped = sid_pythons()
    candidates += sid
    for exe in re.split(r"[:\s]+", os.environ.get("COVINJECT_PYTHONS", "")):
        if exe:
            candidates.append(("env-" + os.path.basename(exe), exe))
    found, seen = [], set()
    for label, exe in candidates:
        if not os.path.exists(exe):
            if label.startswith("env-"):
                skipped.append("%s (%s): not found" % (label, exe))
            continue
        real = os.path.realpath(exe)
        if real in seen:
            continue
        seen.add(real)
        ver = py_version(exe)
        if ver is None:
            skipped.append("%s (%s): does not run" % (label, exe))
        elif ver not in SUPPORTED:
            skipped.append("%s: Python %d.%d is not supported" % ((label,) + ver))
        elif free_threaded(exe):
            FREE_THREADED.append(exe)
            skipped.append("%s: Python %d.%dt is a free-threaded build, which covinject "
                           "refuses (the refusal test uses it)" % ((label,) + ver))
        else:
            found.append((label, exe, ver))
    have = {v for _, _, v in found}
    for v in SUPPORTED:
        if v not in have and not any(s.startswith("sid-%d.%d:" % v) for s in skipped):
            skipped.append("python%d.%d: not found on this machine" % v)
    return found, skipped


# ---- processes --------------------------------------------------------------

class Target:
    """A Python process running one of test/targets, killed at the end with
    everything it forked: it leads a process group of its own (procs.py)."""

    live = []

    def __init__(self, exe, script, *args, preexec=None, env=None, wrap=None):
        """wrap: a command that runs the interpreter in namespaces of its own
        (unshare, setpriv); the target is then the process below it that
        runs the script, which its stdout reaches through."""
        path = os.path.join(TARGETS, script)
        # unbuffered: the targets print their protocol lines without
        # flush=True, which 2.7's print has not
        env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            (wrap or []) + [exe, path] + list(args),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, preexec_fn=preexec, env=env, start_new_session=True)
        Target.live.append(self)
        self.pid = self.proc.pid
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            raise Failure("%s did not start: %r %s" % (script, line, self.proc.stderr.read()))
        self.ready = line.split()
        if wrap:
            runs = [p for p in [self.pid] + procs.descendants(self.pid)
                    if procs.cmdline(p).split()[1:2] == [path]]
            check(runs, "no process runs %s below %s" % (script, wrap[0]))
            self.pid = runs[0]

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def alive(self):
        return self.proc.poll() is None and procs.alive(self.pid)

    def sigcgt(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return int(line.split()[1], 16)
        return 0

    def payload_mapped(self):
        with open("/proc/%d/maps" % self.pid) as f:
            return "covinject-payload" in f.read()

    def kill(self):
        """The target and every process it forked end, and it is reaped."""
        procs.end_group(self.proc)

    @classmethod
    def adopt(cls, proc):
        """A process a test started itself, with start_new_session=True, to
        be ended like a target at the end of the test."""
        t = cls.__new__(cls)
        t.proc, t.pid = proc, proc.pid
        cls.live.append(t)
        return t

    @classmethod
    def kill_all(cls):
        """Every target ends, even after one of them would not."""
        live, cls.live, first = cls.live, [], None
        for t in live:
            try:
                t.kill()
            except (OSError, subprocess.TimeoutExpired) as e:
                first = first or e
        if first:
            raise first


def probes_used(exe):
    """Whether a plain start collects with bytecode probes: on 3.9-3.11
    (--collector auto), but in test/run.py's pass with --collector trace."""
    return (3, 9) <= py_version(exe) < (3, 12) and \
        "trace" not in os.environ.get("COVINJECT_TEST_START", "")


def cli(*args, timeout=30, user=None, prefix=None):
    """covinject ARGS; as nobody with user, under a wrapper command with prefix
    (setpriv, nsenter)."""
    def drop():
        os.setgid(65534)
        os.setgroups([])
        os.setuid(65534)
    args = [str(a) for a in args]
    extra = os.environ.get("COVINJECT_TEST_START", "").split()
    if extra and args[:1] == ["start"] and "--collector" not in args:
        args[1:1] = extra           # run.py: the matrix again with the trace function
    r = subprocess.run((prefix or []) + [COVINJECT] + args,
                       capture_output=True, text=True, timeout=timeout,
                       preexec_fn=drop if user else None)
    return r


def diagnose(stderr=""):
    """For a failure: the status of each pid a covinject message names, and
    the threads of every live target (state, wait channel, system call and
    its user pc), so that a hang seen once in CI says where it was."""
    out = []
    named = sorted(set(re.findall(r"\b(?:start|dump|stop) (\d+):", stderr)))
    for pid in named:
        r = cli("status", pid)
        out.append((r.stdout + r.stderr).strip())
    for task in sorted(glob.glob("/proc/[0-9]*/task/[0-9]*")):
        try:
            with open(task.rsplit("/task", 1)[0] + "/cmdline") as f:
                cmd = f.read().replace("\0", " ")
            if "targets" not in cmd and task.split("/")[2] not in named:
                continue
            with open(task + "/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(task + "/wchan") as f, open(task + "/syscall") as g:
                call = g.read().split()
                out.append("%s %s %s syscall %s pc %s %s" % (
                    task, state, f.read(), call[0], call[-1], cmd[-40:]))
        except (OSError, IndexError):
            pass
    return "\n".join(out)


HANGS = ("did not start collecting", "no answer from the collector")


def cli_ok(*args, **kw):
    r = cli(*args, **kw)
    why = r.stderr.strip()
    if r.returncode and (os.environ.get("COVINJECT_DIAGNOSE") or
                         any(h in why for h in HANGS)):
        why += "\n" + diagnose(why)
    check(r.returncode == 0, "covinject %s exited %d: %s" % (
        " ".join(map(str, args)), r.returncode, why))
    return r.stdout


def tagged(script, tag):
    """Line numbers of script that carry '# @tag'."""
    lines = set()
    with open(os.path.join(TARGETS, script)) as f:
        for n, line in enumerate(f, 1):
            if re.search(r"#\s+@%s\s*$" % tag, line):
                lines.add(n)
    return lines


def function_body(script, name):
    """Line numbers strictly inside def name(): up to the next blank line."""
    lines, inside = set(), False
    with open(os.path.join(TARGETS, script)) as f:
        for n, line in enumerate(f, 1):
            if line.startswith("def %s(" % name):
                inside = True
            elif inside and not line.strip():
                break
            elif inside:
                lines.add(n)
    return lines


def measured(datafile, script):
    """Lines of script recorded in datafile, as coverage.py reads them."""
    data = coverage.CoverageData(datafile)
    data.read()
    path = os.path.realpath(os.path.join(TARGETS, script))
    return set(data.lines(path) or ())


def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        return r.read().decode()



def dumps(pid):
    m = re.search(r"snapshots: (\d+) written", cli_ok("status", pid))
    return int(m.group(1))



def as_nobody():
    os.setgid(65534)
    os.setgroups([])
    os.setuid(65534)



class Skip(Exception):
    pass


