# Parity corpus: imported with sys.dont_write_bytecode, so no .pyc exists
# and covinject's import context compiles this source; "\d" below makes
# Python 3.12+ warn at compile time, which must not reach the target's
# stderr.
import sys

PATTERN = "\d+"
if sys.version_info >= (3, 0):
    MODERN = True
else:
    MODERN = False                      # @import-not-run


class Holder:
    kind = "holder"

    def method(self):
        return PATTERN


def unused():
    return 1
