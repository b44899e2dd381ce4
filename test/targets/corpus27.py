# The parity corpus of Python 2.7 (test/parity.py), with the protocol of
# corpus.py: READY, "go" (covinject attaches before it, or the oracle
# starts measuring at it), every case, DONE and a summary, "quit".
from __future__ import print_function

import sys

import parity_oracle

ORACLE = parity_oracle.open_oracle(sys.argv)

import thread  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import corpus27_lib as lib  # noqa: E402


with open(lib.__file__.rstrip("c")) as f:      # 2.7's __file__ may be the .pyc
    PARK = dict((line.split("# parks: ")[1].split()[0], n)
                for n, line in enumerate(f, 1) if "# parks: " in line)


def frame_parked(frame, code):
    """Does frame, or a caller of it, run code on its "# parks:" line?"""
    while frame is not None and frame.f_code is not code:
        frame = frame.f_back
    return frame is not None and frame.f_lineno == PARK[code.co_name]


class State(object):
    """What is started before the attach and finished after."""

    def __init__(self):
        self.log = []
        self.gen = lib.counter_gen(4)
        self.first = next(self.gen)
        self.closing = lib.gen_with_finally(self.log)
        next(self.closing)
        self.go = threading.Event()
        self.worker_out = []
        self.worker = lib.start_worker(self.go, self.worker_out)
        self.c_go, self.c_done = thread.allocate_lock(), thread.allocate_lock()
        self.c_go.acquire()
        self.c_done.acquire()
        self.c_out = []
        c_ident = lib.start_c_thread(self.c_go, self.c_done, self.c_out)
        frames = sys._current_frames
        while not (frame_parked(frames().get(self.worker.ident), lib.waiting_worker.__code__)
                   and frame_parked(frames().get(c_ident), lib.c_thread_worker.__code__)):
            time.sleep(0.001)
        time.sleep(0.05)


def case_defined_before(state):
    return [lib.decorated(2), lib.decorated.calls, lib.COUNTER(), lib.COUNTER(5),
            lib.HANDLERS["double"](4), lib.HANDLERS["clip"](70)]


def case_generators(state):
    out = list(state.gen)
    state.closing.close()
    out.append(state.log)
    out.append(sum(x for x in lib.counter_gen(3)))
    return out


def case_classes(state):
    o = lib.OldStyle(3)
    n = lib.NewStyle.make()
    return [o.twice(), o.kind, n.value, lib.NewStyle.static(1), n.label]


def case_flow(state):
    log = []
    with lib.Managed(log):
        log.append(lib.raises("key"))
        log.append(lib.raises("none"))
    return [log, lib.loops(5), lib.loops(2), lib.comprehensions()]


def case_multiline(state):
    total = (1 +
             2 +
             3)
    text = ("a"
            "b")
    return [total, text, lib.fib(8)]


def case_exec(state):
    code = compile("x = 1\ny = x + 1\n", "<corpus27 exec>", "exec")
    scope = {}
    exec(code, scope)
    return scope["y"]


CASES = [case_defined_before, case_generators, case_classes, case_flow, case_multiline,
         case_exec]


def run(state):
    state.go.set()
    state.c_go.release()
    results = [case(state) for case in CASES]
    state.worker.join()
    state.c_done.acquire()
    return results, state.worker_out, state.c_out


def main():
    state = State()
    parity_oracle.wait_go(ORACLE)       # @diff-running
    results = run(state)
    parity_oracle.finish(ORACLE, results)


if __name__ == "__main__":
    main()
