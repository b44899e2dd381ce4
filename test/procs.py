"""The process trees the tests start, read from /proc: who is below whom,
how to end a tree whatever it does meanwhile, and what is left at the end.

How nothing outlives its test (issue #15):
- every target leads a session, so a process group, of its own
  (start_new_session=True); everything it forks is in that group unless
  it calls setsid() itself;
- end_group() sends SIGKILL to the whole group at once, so a master
  cannot fork a replacement for a worker it saw die, as it could while
  the workers were killed one pid at a time.  A fork racing with the
  signal does not escape it: kernel/fork.c copy_process() cancels and
  restarts a fork that a group signal came in during ("Process group and
  session signals need to be delivered to just the parent before the
  fork or both the parent and the child after the fork");
- the runner is a child subreaper (PR_SET_CHILD_SUBREAPER, Linux 3.4): a
  process whose parent dies is reparented to the runner, not to init, so
  every process the tests started stays below the runner until it is
  reaped, and sweep() finds it by parent links alone.
"""
import collections
import ctypes
import glob
import os
import signal
import time

PR_SET_CHILD_SUBREAPER = 36     # <linux/prctl.h>

Stat = collections.namedtuple("Stat", "ppid pgrp state")


def stat(pid):
    """pid's Stat from /proc/PID/stat, or None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            # "pid (comm) state ppid pgrp ...": comm may hold ") "
            fields = f.read().rsplit(")", 1)[1].split()
        return Stat(int(fields[1]), int(fields[2]), fields[0])
    except (OSError, ValueError, IndexError):
        return None


def table():
    """{pid: Stat} of every process now."""
    out = {}
    for path in glob.glob("/proc/[0-9]*"):
        st = stat(int(path[6:]))
        if st:                          # else it ended meanwhile
            out[int(path[6:])] = st
    return out


def running(st):
    return st.state not in "ZX"


def descendants(pid, procs=None):
    """Pids below pid by parent links, parents before their children."""
    procs = table() if procs is None else procs
    kids = collections.defaultdict(list)
    for p, st in procs.items():
        kids[st.ppid].append(p)
    found, todo = [], [pid]
    while todo:
        more = kids[todo.pop(0)]
        found += more
        todo += more
    return found


def children(pid):
    return [p for p, st in table().items() if st.ppid == pid]


def alive(pid):
    """pid exists and has not exited (a zombie has)."""
    st = stat(pid)
    return bool(st and running(st))


def cmdline(pid):
    """The command line on one line, for a message."""
    try:
        with open("/proc/%d/cmdline" % pid) as f:
            args = f.read().rstrip("\0").split("\0")
    except OSError:
        return "[exited]"
    return " ".join(args).replace("\n", "\\n") or "[exited]"


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def end_group(proc, timeout=10.0):
    """SIGKILL proc's process group and any descendant that left it, reap
    proc, and return once none of them runs.  proc leads its group
    (start_new_session=True); its pid is the group id, which the kernel
    does not hand out again while proc is unreaped.  Once proc is reaped
    that is no longer sure, so nothing is signalled: what it left behind
    is below the runner, where sweep() finds it."""
    if proc.returncode is not None:
        return
    procs = table()
    escaped = [p for p in descendants(proc.pid, procs) if procs[p].pgrp != proc.pid]
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass                            # proc does not lead a group
    kill(proc.pid)
    for p in escaped:                   # setsid() took them out of the group
        kill(p)
    proc.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p, st in table().items() if running(st) and
                (st.pgrp == proc.pid or p in escaped)]
        if not left:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("still running %.0f s after SIGKILL: %s" % (
                timeout, "; ".join("%d %s" % (p, cmdline(p)) for p in left)))
        time.sleep(0.01)


def become_subreaper():
    """Orphans of the tests are reparented to this process (see the top)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0):
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_CHILD_SUBREAPER): %s" % os.strerror(err))


def sweep(timeout=10.0):
    """SIGKILL every process below this one, and reap the orphans it
    adopted, until none is left.  Returns "PID CMDLINE" of each that was
    still running when found: what its test (or the run) left behind."""
    me, found = os.getpid(), {}
    deadline = time.monotonic() + timeout
    while True:
        procs = table()
        below = descendants(me, procs)
        if not below:
            break
        if time.monotonic() > deadline:
            for p in below:
                if p in found and running(procs[p]):
                    found[p] += " (still running %.0f s after SIGKILL)" % timeout
            break
        for p in below:
            if running(procs[p]):
                found.setdefault(p, cmdline(p))
                kill(p)
            elif procs[p].ppid == me:
                try:
                    os.waitpid(p, os.WNOHANG)
                except ChildProcessError:
                    pass                # reaped by its Popen meanwhile
        time.sleep(0.01)
    return ["%d %s" % kv for kv in sorted(found.items())]
