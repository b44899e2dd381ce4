# An idle target for the refusal tests.  argv: [catch-USR1] [block-markers]
from __future__ import print_function
import signal
import sys
import time

if "catch-USR1" in sys.argv:
    signal.signal(signal.SIGUSR1, lambda *a: print("GOT USR1"))
if "block-markers" in sys.argv and hasattr(signal, "pthread_sigmask"):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGURG, signal.SIGWINCH})
elif "block-markers" in sys.argv:   # 2.7: libc's, SIG_BLOCK being 0 on Linux
    import ctypes
    mask = (ctypes.c_ulong * 16)()
    mask[0] = 1 << (signal.SIGURG - 1) | 1 << (signal.SIGWINCH - 1)
    ctypes.CDLL(None).pthread_sigmask(0, mask, None)
print("READY")
while True:
    time.sleep(0.1)
