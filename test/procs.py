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
  fork or both the parent and the child after the fork").
"""
import collections
import glob
import os
import signal
import time

Stat = collections.namedtuple("Stat", "ppid pgrp state")


def table():
    """{pid: Stat} of every process now, from /proc/PID/stat."""
    out = {}
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(path) as f:
                # "pid (comm) state ppid pgrp ...": comm may hold ") "
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(path.split("/")[2])] = Stat(int(fields[1]), int(fields[2]), fields[0])
        except (OSError, ValueError, IndexError):
            pass                        # it ended meanwhile
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


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid) as f:
            return f.read().replace("\0", " ").strip() or "[exited]"
    except OSError:
        return "[exited]"


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
    that is no longer sure, so nothing is signalled."""
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
