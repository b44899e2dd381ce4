# A target that plays with the trace function after covinject attached
# (test/core.py, t_trace_idioms).  Commands on stdin, one a line; each
# answers "DONE name".  Lines tagged "kept" must be recorded; "lost" ones
# must not be on 3.9-3.11 (the program removed tracing there on purpose),
# and are on 3.12+, where sys.settrace does not touch covinject.
from __future__ import print_function
import doctest
import sys
import threading
import time

print("READY")


def restored():
    sys.settrace(sys.gettrace())
    a = 1  # @kept
    return a  # @kept


def juggled():
    old = sys.gettrace()
    sys.settrace(None)
    b = 2
    sys.settrace(old)
    return b  # @kept


def squared(n):
    """
    >>> squared(3)
    9
    """
    return n * n  # @kept


def after_doctest():
    c = 3  # @kept
    return c  # @kept


def run_doctest():
    doctest.run_docstring_examples(squared, {"squared": squared})
    after_doctest()


def untraced_thread():
    for i in range(15):  # @lost
        time.sleep(0.1)  # @lost


def traced_thread():
    sys.settrace(sys.gettrace())
    d = 4  # @kept
    return d  # @kept


def threads():
    old = threading.gettrace() if hasattr(threading, "gettrace") else threading._trace_hook
    threading.settrace(None)
    t = threading.Thread(target=untraced_thread)
    t.start()
    t.join()
    threading.settrace(old)
    t = threading.Thread(target=traced_thread)
    t.start()
    t.join()


removed_ready = threading.Event()
removed_go = threading.Event()
removed_threads = []


def removed_body():
    sys.settrace(None)
    removed_ready.set()
    removed_go.wait()
    e = 5  # @lost
    return e  # @lost


def removed():
    t = threading.Thread(target=removed_body)
    t.daemon = True
    t.start()
    removed_ready.wait()
    removed_threads.append(t)


def release():
    removed_go.set()
    removed_threads.pop().join()    # its lines have run when DONE is said


def debugged():
    f = 6  # @kept
    import pdb
    pdb.set_trace()
    g = 7  # @lost
    return f + g  # @lost


def counted():
    h = 8  # @kept
    return h  # @kept


COMMANDS = {"restored": restored, "juggled": juggled, "doctest": run_doctest,
            "threads": threads, "removed": removed, "release": release,
            "debugged": debugged, "counted": counted}

while True:
    cmd = sys.stdin.readline().strip()
    if not cmd or cmd == "quit":
        break
    COMMANDS[cmd]()
    print("DONE " + cmd)
