# The main thread is inside a busy loop, and there is no other thread, when
# covinject attaches: the loop body (tagged @w) must be recorded.
from __future__ import print_function
import sys

print("READY")
n = 0
while True:
    n += 1  # @w
    if n % 1000 == 0:  # @w
        sys.stdout.flush()  # @w
