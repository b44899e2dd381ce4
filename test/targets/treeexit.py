# A parent whose child ends while covinject waits for it.  "fork" forks a
# child (its pid printed as CHILD PID) that waits on pipe A with the GIL
# released; "hold" wakes it, and it then reads pipe B through
# ctypes.PyDLL, which keeps the GIL, so its collector cannot answer;
# "release" wakes that read, and the child ends with libc's _exit, the GIL
# still held.  The parent reaps it and prints REAPED; "quit" ends it.
from __future__ import print_function
import ctypes
import os
import sys
import warnings

# 3.12+ warns of a fork in a process with more than one thread, as this one
# is while covinject collects (README, "Limits")
warnings.filterwarnings("ignore", "This process", DeprecationWarning)

libc = ctypes.PyDLL(None)


def child(a, b):
    os.read(a, 1)
    libc.read(b, ctypes.create_string_buffer(8), 8)
    libc._exit(0)


def main():
    print("READY")
    pid = None
    for line in iter(sys.stdin.readline, ""):  # 2.7: no read-ahead
        cmd = line.strip()
        if cmd == "fork":
            a, wa = os.pipe()
            b, wb = os.pipe()
            pid = os.fork()
            if pid == 0:
                child(a, b)
            print("CHILD %d %d" % (pid, b))
        elif cmd == "hold":
            os.write(wa, b"h")
        elif cmd == "release":
            os.write(wb, b"r")
            os.waitpid(pid, 0)
            print("REAPED")
        elif cmd == "quit":
            break


if __name__ == "__main__":
    main()
