# Forks with libc's fork() through ctypes.CDLL (the GIL released, as uWSGI's
# master does) on "storm N" on stdin: N children one after another, each of
# which runs a line of Python (it needs the GIL for that) and leaves with
# os._exit(0).  A child that is not gone within 2 s hangs: it is killed and
# counted.  Prints "DONE N HUNG".
from __future__ import print_function
import ctypes
import os
import signal
import sys
import time

monotonic = getattr(time, "monotonic", time.time)     # 2.7 has none

libc = ctypes.CDLL(None, use_errno=True)
print("READY")
for line in iter(sys.stdin.readline, ""):  # 2.7: no read-ahead
    words = line.split()
    if words[:1] != ["storm"]:
        break
    hung = 0
    for _ in range(int(words[1])):
        pid = libc.fork()
        if pid == 0:
            os._exit(0)
        deadline = monotonic() + 2
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if monotonic() > deadline:
                hung += 1
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.001)
    print("DONE", words[1], hung)
