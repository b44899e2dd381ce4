# Forks with libc's fork() through ctypes.CDLL (the GIL released, as uWSGI's
# master does) on "storm N" on stdin: N children one after another, each of
# which runs a line of Python (it needs the GIL for that) and leaves with
# os._exit(0).  A child that is not gone within 2 s hangs: it is killed and
# counted.  Prints "DONE N HUNG".
import ctypes
import os
import signal
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
print("READY", flush=True)
for line in sys.stdin:
    words = line.split()
    if words[:1] != ["storm"]:
        break
    hung = 0
    for _ in range(int(words[1])):
        pid = libc.fork()
        if pid == 0:
            os._exit(0)
        deadline = time.monotonic() + 2
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                hung += 1
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.001)
    print("DONE", words[1], hung, flush=True)
