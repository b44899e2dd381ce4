# Forks with libc's fork() through ctypes, as a C server does (uWSGI's
# workers, by default): none of Python's after-fork hooks run in the child.
# argv: a directory for the flag files that drive the children.
# On "fork" on stdin the parent prints the child's pid ("osfork": the same
# through os.fork, whose hooks run).  The child runs
# first() (lines "# @k"), waits for DIR/go-PID, runs second() ("# @s"),
# waits for DIR/exit-PID and returns normally (its atexit hooks run).
from __future__ import print_function
import ctypes
import os
import sys
import time

# CDLL: the GIL is released around fork(), as uWSGI's master does; no thread
# of this program holds it then, and covinject's waits for the fork to end
# (payload.c, gil_take), so the child finds the GIL free
libc = ctypes.CDLL(None, use_errno=True)
FLAGS = sys.argv[1]


def first():
    a = 1  # @k
    return a + 1  # @k


def second():
    b = 2  # @s
    return b * 2  # @s


def wait_for(name):
    path = os.path.join(FLAGS, "%s-%d" % (name, os.getpid()))
    while not os.path.exists(path):
        time.sleep(0.01)


def child():
    first()
    wait_for("go")
    second()
    wait_for("exit")
    sys.exit(0)


def main():
    print("READY")
    for line in iter(sys.stdin.readline, ""):  # 2.7: no read-ahead
        if line.strip() in ("fork", "osfork"):
            pid = libc.fork() if line.strip() == "fork" else os.fork()
            if pid == 0:
                child()
            print(pid)


if __name__ == "__main__":
    main()
