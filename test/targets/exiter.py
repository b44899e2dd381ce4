# Ends normally when told: "exit" on stdin returns from main, "term" waits
# for a SIGTERM that Python turns into SystemExit.  Lines tagged "# @e" run
# after the attach, just before the end.
from __future__ import print_function
import signal
import sys

signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))


def last_words():
    a = 1  # @e
    return a + 1  # @e


def main():
    print("READY")
    how = sys.stdin.readline().strip()
    last_words()
    if how == "term":
        signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
