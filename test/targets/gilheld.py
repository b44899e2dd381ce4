# Holds the GIL in native code on request, as a C extension can: on "hold"
# it prints HOLDING and calls libc's read() on stdin through ctypes.PyDLL,
# which keeps the GIL, until the next line arrives; then it prints FREE.
# "quit" exits.
from __future__ import print_function
import ctypes
import sys

libc = ctypes.PyDLL(None)
print("READY")
while True:
    line = sys.stdin.readline()
    if line.strip() == "hold":
        print("HOLDING")
        libc.read(0, ctypes.create_string_buffer(64), 64)
        print("FREE")
    elif line.strip() in ("quit", ""):
        break
