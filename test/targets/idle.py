# An idle target for the refusal tests.  argv: [catch-USR1] [block-markers]
import signal
import sys
import time

if "catch-USR1" in sys.argv:
    signal.signal(signal.SIGUSR1, lambda *a: print("GOT USR1", flush=True))
if "block-markers" in sys.argv:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGURG, signal.SIGWINCH})
print("READY", flush=True)
while True:
    time.sleep(0.1)
