# A main interpreter and one sub-interpreter (as mod_wsgi runs each
# application group), which stays alive; "run" on stdin runs code in it.
import sys

try:
    import _interpreters as interpreters        # 3.13+
except ImportError:
    import _xxsubinterpreters as interpreters   # 3.8-3.12

iid = interpreters.create()
interpreters.run_string(iid, "x = 1")
print("READY", flush=True)
for line in sys.stdin:
    interpreters.run_string(iid, "x += 1")
    print("ran", flush=True)
