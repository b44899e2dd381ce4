# Loads app.wsgi the way mod_wsgi does (a module object of its own name,
# __file__ the script, its source compiled and executed into it), then
# serves its application once per "call" line on stdin.
from __future__ import print_function
import os
import sys
import types

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "app.wsgi")
mod = types.ModuleType("_mod_wsgi_8f3b2c")
mod.__file__ = path
with open(path) as f:
    exec(compile(f.read(), path, "exec"), mod.__dict__)
sys.modules[mod.__name__] = mod
print("READY")
for line in iter(sys.stdin.readline, ""):  # 2.7: no read-ahead
    body = b"".join(mod.application({"PATH_INFO": "/x"}, lambda *a: None))
    print(body.decode())
