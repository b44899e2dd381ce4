# A main interpreter and sub-interpreters that stay alive, as mod_wsgi runs
# each application group: one that shares the main interpreter's GIL and
# allocator ("legacy"; every one does on 3.9-3.11) and, on 3.12+, an
# isolated one (its own GIL and allocator).  Each line on stdin runs
# subinterp_work in each of them; "new" makes one more shared one, "drop"
# destroys the newest.
# READY <shared> <isolated>.
from __future__ import print_function
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

try:
    import _interpreters as interpreters        # 3.13+
except ImportError:
    import _xxsubinterpreters as interpreters   # 3.9-3.12


def create(isolated):
    if sys.version_info >= (3, 13):
        return interpreters.create("isolated" if isolated else "legacy")
    if sys.version_info >= (3, 12):
        return interpreters.create(isolated=isolated)
    return interpreters.create()


def run(iid, call):
    interpreters.run_string(iid, "import sys\nif %r not in sys.path: sys.path.insert(0, %r)\n"
                            "import subinterp_work\nsubinterp_work.%s\n" % (HERE, HERE, call))


shared = [create(False)]
isolated = create(True) if sys.version_info >= (3, 12) else None
print("READY 1 %d" % (isolated is not None))
for line in iter(sys.stdin.readline, ""):  # 2.7: no read-ahead
    if line.strip() == "new":
        shared.append(create(False))
        print("made")
        continue
    if line.strip() == "drop":
        interpreters.destroy(shared.pop())
        print("dropped")
        continue
    for iid in shared:
        run(iid, "shared()")
    if isolated is not None:
        run(isolated, "isolated()")
    print("ran")
