# An idle target for the refusal tests.  argv: [catch-USR1]
import signal
import sys
import time

if "catch-USR1" in sys.argv:
    signal.signal(signal.SIGUSR1, lambda *a: print("GOT USR1", flush=True))
print("READY", flush=True)
while True:
    time.sleep(0.1)
