# C code sleeping in the main thread, as an extension's sleep or poll loop
# does: libc's usleep(2 s) then poll(NULL, 0, 2000) through ctypes.CDLL
# (the GIL released), while a second thread waits on stdin.  Prints each
# call's result, errno and duration, then exits after a line on stdin.
from __future__ import print_function
import ctypes
import sys
import threading
import time

monotonic = getattr(time, "monotonic", time.time)     # 2.7 has none

libc = ctypes.CDLL(None, use_errno=True)
reader = threading.Thread(target=sys.stdin.readline)
reader.start()
print("READY")
for name, call in (("usleep", lambda: libc.usleep(2000000)),
                   ("poll", lambda: libc.poll(None, 0, 2000))):
    t0 = monotonic()
    r = call()
    print(name, r, ctypes.get_errno(), "%.3f" % (monotonic() - t0))
reader.join()
