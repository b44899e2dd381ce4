# One thread, never a second, and threading never imported: on 3.6 such a
# process has no GIL until covinject makes one (test/core.py,
# t_single_thread).  Its own SIGHUP handler prints HUP.  Commands on
# stdin: "fork" forks a child that runs child_work() and then waits to be
# killed (its pid printed as CHILD PID); "reap" kills and reaps it; "check"
# prints THREADING and whether the module is imported (READY says whether it
# was at startup: site may import it); "quit" ends it.
from __future__ import print_function
import os
import signal
import sys
import time
import warnings

# 3.12+ warns of a fork in a process with more than one thread, as this one
# is while covinject collects (README, "Limits")
warnings.filterwarnings("ignore", "This process", DeprecationWarning)


def on_hup(signum, frame):
    print("HUP")  # @hup


def child_work():
    total = 0  # @child
    for i in range(3):  # @child
        total += i  # @child
    return total  # @child


def child():
    child_work()
    while True:
        time.sleep(0.05)


def main():
    signal.signal(signal.SIGHUP, on_hup)
    print("READY %s" % ("threading" in sys.modules))
    pid = None
    for line in iter(sys.stdin.readline, ""):  # 2.7: no read-ahead
        cmd = line.strip()
        if cmd == "fork":
            pid = os.fork()
            if pid == 0:
                child()
            print("CHILD %d" % pid)
        elif cmd == "reap":
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        elif cmd == "check":
            print("THREADING %s" % ("threading" in sys.modules))
        elif cmd == "quit":
            break


if __name__ == "__main__":
    main()
