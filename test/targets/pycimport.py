# Imports the module pycmod from the directory argv[1], then waits for a
# line on stdin (test/core.py, t_import_from_pyc).
from __future__ import print_function
import sys

sys.path.insert(0, sys.argv[1])
import pycmod  # noqa: E402,F401

print("READY")
sys.stdin.readline()
