"""A target for the probe collector (start --collector probe, 3.9-3.11).

Prints READY; then, one command per line on stdin:
  call     runs the functions below and prints "DONE"
  tb       prints the traceback of fails(), as one repr()'d line "TB ..."
  check    prints "ORIG x y t": x = 1 if every function's __code__ is the
           one it had at startup, y = 1 if importlib's exec_module is too,
           t the trace function of this thread (None or its name)
  import   imports late_mod (written next to this file by the test) and
           calls its f(), then prints "DONE"
  work     hands the worker thread (its loop runs at start) one job, waits
           for its answer, prints "DONE"
  pickle   pickles square, ADD and LAMBDAS["neg"] by value with each of
           cloudpickle and dill into DIR/by-value.NAME, loads them back, and
           prints "PICKLED" and, for each, NAME=what the loaded ones return;
           then "ref=" and whether pickle by reference gives square back
  evalframe PATH  installs PATH's covinject_test_eval (test/targets/
           evalframe.c) as the frame evaluation function (PEP 523) and
           prints "EVAL"; then "frames" prints "FRAMES n", how many frames
           it evaluated
  numba    imports numba, compiles total() with numba.njit, and prints
           "NUMBA" and what it returns
  quit     exits
"""
import os
import sys
import threading
import traceback
try:
    import queue
except ImportError:
    import Queue as queue

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else ".")


def square(x):
    return x * x  # @call


def branchy(x):
    if x > 0:  # @call
        return "pos"  # @call
    return "neg"


def make_adder(n):
    def add(x):
        return x + n  # @call
    return add


def gen(n):
    for i in range(n):  # @call
        yield i * 2  # @call


class Box:
    def __init__(self, v):
        self.v = v  # @call

    @property
    def double(self):
        return self.v * 2  # @call

    @staticmethod
    def static(x):
        return x + 1  # @call


ADD = make_adder(1)
LAMBDAS = {"neg": lambda x: -x}  # @call
FUNCS = [square, branchy, make_adder, gen, ADD, Box.__init__, Box.static,
         Box.double.fget, LAMBDAS["neg"]]
ORIG = [f.__code__ for f in FUNCS]


def fails():
    return {}["missing"] + len(  # @tb
        "x")


def tb():
    try:
        fails()
    except KeyError:
        return traceback.format_exc()


def call():
    square(3)
    branchy(1)
    ADD(2)
    list(gen(2))
    b = Box(4)
    b.double
    Box.static(1)
    LAMBDAS["neg"](1)


def check():
    import importlib._bootstrap_external as ext
    same = all(f.__code__ is c for f, c in zip(FUNCS, ORIG))
    exe = ext._LoaderBasics.__dict__["exec_module"]
    t = sys.gettrace()
    print("ORIG %d %d %s" % (same, type(exe).__name__ == "function",
                             None if t is None else getattr(t, "__name__", t)))


def by_value():
    import pickle
    out = []
    for name in ("cloudpickle", "dill"):
        m = __import__(name)
        data = m.dumps([square, ADD, LAMBDAS["neg"]])
        with open(os.path.join(sys.argv[1], "by-value." + name), "wb") as f:
            f.write(data)
        sq, add, neg = m.loads(data)
        out.append("%s=%s,%s,%s" % (name, sq(3), add(2), neg(1)))
    out.append("ref=%d" % (pickle.loads(pickle.dumps(square)) is square))
    return " ".join(out)


def total(n):
    s = 0
    for i in range(n):
        s += i
    return s


def eval_frame(path):
    import ctypes
    lib = ctypes.CDLL(path)
    api = ctypes.pythonapi
    api.PyInterpreterState_Get.restype = ctypes.c_void_p
    api._PyInterpreterState_SetEvalFrameFunc.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    api._PyInterpreterState_SetEvalFrameFunc(
        api.PyInterpreterState_Get(), ctypes.cast(lib.covinject_test_eval, ctypes.c_void_p))
    return ctypes.c_long.in_dll(lib, "covinject_test_frames")


JOBS, DONE = queue.Queue(), queue.Queue()


def worker():
    while True:
        item = JOBS.get()  # @work
        DONE.put(item * 2)  # @work


def main():
    t = threading.Thread(target=worker)
    t.daemon = True
    t.start()
    print("READY")
    for line in iter(sys.stdin.readline, ""):
        cmd = line.strip()
        if cmd == "call":
            call()
            print("DONE")
        elif cmd == "tb":
            print("TB %r" % tb())
        elif cmd == "check":
            check()
        elif cmd == "import":
            import late_mod
            late_mod.f()
            print("DONE")
        elif cmd == "pickle":
            print("PICKLED %s" % by_value())
        elif cmd == "work":
            JOBS.put(1)
            DONE.get()
            print("DONE")
        elif cmd.startswith("evalframe "):
            frames = eval_frame(cmd.split(" ", 1)[1])
            print("EVAL")
        elif cmd == "frames":
            print("FRAMES %d" % frames.value)
        elif cmd == "numba":
            import numba
            print("NUMBA %d" % numba.njit(total)(10))  # @numba
        elif cmd == "quit":
            break


main()
