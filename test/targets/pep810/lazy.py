# Target of the lazy-import test (CPython 3.15+, PEP 810): modules imported
# lazily before covinject attaches must stay lazy through its import-context
# pass (payload/modules.c), which reads lazy_holder, an eager import whose
# own namespace holds a lazy import.  Commands on stdin: "state" prints
# whether lazy_victim was imported and what the two names hold; "use" reifies
# them.  lazy_victim says on stderr when it is imported.
import sys

import lazy_holder
lazy import lazy_victim

print("READY", flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "state":
        print("STATE", "lazy_victim" in sys.modules,
              type(globals()["lazy_victim"]).__name__,
              type(vars(lazy_holder)["lazy_victim"]).__name__, flush=True)
    elif cmd == "use":
        print("USED", lazy_victim.value(), lazy_holder.use(), flush=True)    # @u
