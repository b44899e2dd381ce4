# The main thread is inside time.sleep(SECONDS) when covinject attaches: the
# sleep must last as long as asked and raise nothing.
import sys
import time

seconds = float(sys.argv[1])
print("READY", flush=True)
t0 = time.monotonic()
try:
    time.sleep(seconds)
    print("SLEPT %.3f" % (time.monotonic() - t0), flush=True)
except BaseException as exc:
    print("RAISED %r" % (exc,), flush=True)
