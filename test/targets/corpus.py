# The parity corpus (test/parity.py): tricky Python, set up before covinject
# attaches (functions defined, lambdas stored, generators and coroutines
# suspended, threads waiting), then run after it.
#
# Protocol: prints READY, waits for "go" on stdin (covinject attaches
# before it), runs every case, prints DONE and a summary, waits for "quit".
# With --oracle KIND:FILE the program measures itself instead, from the
# same point (parity_oracle.py).  --late-delay SECONDS: how long the C
# thread started after "go" sleeps before it works (covinject picks up such
# threads within a second on 3.9-3.11).
import sys

import parity_oracle

ORACLE = parity_oracle.open_oracle(sys.argv)

import _thread  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import corpus_lib as lib  # noqa: E402

with warnings.catch_warnings():     # its import warns on 3.12+
    warnings.simplefilter("ignore")
    write_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    import corpus_nopyc  # noqa: E402
    sys.dont_write_bytecode = write_bytecode

corpus_38 = corpus_310 = corpus_311 = corpus_314 = None
if sys.version_info >= (3, 8):
    import corpus_38
if sys.version_info >= (3, 10):
    import corpus_310
if sys.version_info >= (3, 11):
    import corpus_311
if sys.version_info >= (3, 14):
    with warnings.catch_warnings():     # PEP 765's SyntaxWarnings, when compiled
        warnings.simplefilter("ignore")
        import corpus_314

EXEC_SRC = __file__.replace("corpus.py", "corpus_exec_src.py")


def park_lines():
    """{function name: line} of the lines marked '# parks: NAME' in corpus_lib."""
    with open(lib.__file__) as f:
        return {line.split("# parks: ")[1].split()[0]: n
                for n, line in enumerate(f, 1) if "# parks: " in line}


PARK = park_lines()


def frame_parked(frame, code):
    while frame is not None and frame.f_code is not code:
        frame = frame.f_back
    return frame is not None and frame.f_lineno == PARK[code.co_name]


def wait_parked(*conditions):
    """Until every thread and coroutine waits on its marked line: the line
    it is blocked on began before the attach, in every run."""
    while not all(cond() for cond in conditions):
        time.sleep(0.001)
    time.sleep(0.05)


class State:
    """What setup() starts before the attach and run() finishes after."""

    def __init__(self):
        self.log = []
        self.gen = lib.counter_gen(5)
        self.first = next(self.gen)
        self.deleg = lib.delegating()
        self.first_deleg = next(self.deleg)
        self.closing = lib.gen_with_finally(self.log)
        next(self.closing)
        self.coro = lib.suspended_coro(self.log)
        self.coro.send(None)
        self.go = threading.Event()
        self.catcher = lib.catching_gen()
        next(self.catcher)
        self.stop_spin, self.spin_counts = threading.Event(), [0, 0]
        self.spinners = [threading.Thread(target=fn, args=(self.stop_spin, self.spin_counts, i))
                         for i, fn in enumerate((lib.spinner, lib.spinner_true))]
        for t in self.spinners:
            t.start()
        self.worker_out = []
        self.worker = threading.Thread(target=lib.worker_main,
                                       args=(self.go, self.worker_out))
        self.worker.start()
        self.c_go, self.c_done = _thread.allocate_lock(), _thread.allocate_lock()
        self.c_go.acquire()
        self.c_done.acquire()
        self.c_out = []
        c_ident = _thread.start_new_thread(lib.c_thread_worker,
                                           (self.c_go, self.c_done, self.c_out))
        self.loop_out, started = [], threading.Event()
        self.looper = threading.Thread(target=lib.loop_thread,
                                       args=(started, self.loop_out))
        self.looper.start()
        started.wait()
        frames = sys._current_frames
        wait_parked(
            lambda: frame_parked(frames().get(self.worker.ident),
                                 lib.waiting_worker.__code__),
            lambda: frame_parked(frames().get(c_ident), lib.c_thread_worker.__code__),
            lambda: frame_parked(self.loop_out[2].cr_frame, self.loop_out[2].cr_code))


# ---- cases run after the attach --------------------------------------------

def case_before_defined(state):
    out = [lib.decorated_before(2), lib.decorated_before.calls,
           lib.COUNTER(), lib.COUNTER(5)]
    out.append(lib.never_called_before(1, 2, 3, key="ab", z=1, y=2))
    out.append(lib.never_called_before(1))
    return out


def case_lambdas(state):
    out = [lib.HANDLERS[k](v) for k, v in (("double", 4), ("clip", 7),
                                           ("clip", 700), ("nested", 1))]
    text = " Mixed "
    for step in lib.PIPELINE:
        text = step(text)
    inline = list(map(lambda v: v + 1,
                      [1, 2]))
    return out, text, inline, lib.SORT_KEY


def case_decorators_after(state):
    @lib.trace_calls
    @lib.repeat(3)
    def inner(x):
        return x + 1

    @lib.register(lib.REGISTRY)
    class Registered:
        pass

    cached = lib.functools.lru_cache(maxsize=None)(lambda n: n * n)
    return inner(1), inner.calls, Registered.__name__, cached(3), cached(3)


def case_closures(state):
    def outer(a):
        b = a * 2

        def middle(c):
            def innermost(d):
                return a + b + c + d
            return innermost
        return middle

    adders = [outer(i)(i) for i in range(3)]
    fresh = lib.make_counter(0)
    fresh()
    return [f(1) for f in adders], fresh(2)


def case_generators(state):
    out = [state.first, state.gen.send(2), next(state.gen)]
    out.extend(state.gen)
    out.append(state.first_deleg)
    out.extend(state.deleg)
    state.closing.close()
    out.append(state.catcher.throw(ValueError("thrown in")))
    try:
        next(lib.gen_raises())
        next_gen = lib.gen_raises()
        next(next_gen)
        next(next_gen)
    except RuntimeError as exc:
        out.append(type(exc).__name__)
    squares = (n * n for n in range(3)
               if n != 1)
    out.append(sum(squares))
    return out


def case_coroutines(state):
    try:
        state.coro.send(3)
        state.coro.send(4)
    except StopIteration as stop:
        state.log.append(stop.value)
    state.log.append(lib.run_coroutine(lib.suspended_coro(state.log)))
    return lib.run_async(lib.async_main(state.log))


def case_comprehensions(state):
    grid = [[r * c for c in range(3)] for r in range(3)]
    flat = [x for row in grid for x in row if x % 2 == 0]
    index = {k: v
             for k, v in enumerate(flat)
             if v}
    odd = {x % 3 for x in flat}
    total = sum(x
                for x in flat)
    nested = [[y for y in range(x)] for x in range(3)]
    walrus = corpus_38.walrus() if corpus_38 else [6, 8]
    return grid, flat, index, sorted(odd), total, nested, walrus


def case_class_bodies(state):
    class Local:
        values = [v * 2 for v in range(3)]
        total = sum(values)
        if total > 3:
            big = True
        else:
            big = False

        def method(self):
            return self.total

    return lib.define_classes(), Local().method(), Local.big, lib.Base.subclasses


def case_exceptions(state):
    out = [lib.try_matrix(x) for x in (0, 1, 2, 5)]
    out.append(lib.finally_return())
    out.append(lib.reraise())
    lib.propagate(state.log)
    try:
        lib.deep_raise(2)
    except KeyError:
        out.append("caught deep")
    try:
        assert len(out) < 0, "never true"
    except AssertionError as e:
        out.append(str(e))
    return out


def case_with(state):
    log = lib.with_blocks([])
    if corpus_310:
        corpus_310.parenthesized_with(log)
    return log


def case_loops(state):
    found = None
    for i in range(10):
        if i == 2:
            continue
        if i * i > 20:
            found = i
            break
    else:
        found = -1
    n = 0
    while n < 3:
        n += 1
    else:
        n = -n
    for _ in []:
        pass
    else:
        empty = True
    k = 0
    while True:
        k += 1
        if k > 2:
            break
    return found, n, empty, k


def case_multiline(state):
    text = """first line
second line
    third line"""
    joined = ("implicit "
              "concatenation "
              'of literals')
    total = 1 + \
        2 + \
        3
    data = {
        "a": [1,
              2],
        "b": {"c": (3,
                    4)},
    }
    if (total > 5
            and data["a"]
            and not text.startswith("x")):
        flag = "long condition"
    else:
        flag = "short"
    call = max(
        1,
        total,
        key=lambda v: -v,
    )
    chained = (
        " spaced ".strip()
        .upper()
        .replace("S", "z")
    )
    ternary = ("big"
               if total > 100
               else "small")
    return len(text), joined, total, data, flag, call, chained, ternary


def case_exec(state):
    ns = {}
    exec("a = 1\nb = a + 1", ns)
    value = eval("lambda x: x * 3")(ns["b"])
    with open(EXEC_SRC) as f:
        code = compile(f.read(), EXEC_SRC, "exec")
    exec(code, ns)
    return value, ns["executed"], ns["result"], ns["from_exec"](0)


def case_recursion(state):
    return lib.fib(8), lib.is_even(6), lib.is_odd(3)


def case_version_specific(state):
    out = []
    if corpus_310:
        out.append(corpus_310.matches())
    if corpus_311:
        out.append(corpus_311.groups([]))
        out.append(corpus_nopyc.Holder().method())
        out.append(lib.asyncio.run(corpus_311.tasks([])))
    if corpus_314:
        out.append(corpus_314.finally_flow([]))
        out.append(corpus_314.finally_return(1))
        out.append(corpus_314.bare_excepts([0, 1, 2]))
        out.append(corpus_314.bare_star_excepts([]))
        out.append(corpus_314.templates("x", ["a", "b"]))
        out.append(corpus_314.lazy_annotations())
    return out


CASES = [case_before_defined, case_lambdas, case_decorators_after, case_closures,
         case_generators, case_coroutines, case_comprehensions, case_class_bodies,
         case_exceptions, case_with, case_loops, case_multiline, case_exec,
         case_recursion, case_version_specific]


def run(state, late_delay):
    late_done = _thread.allocate_lock()
    late_done.acquire()
    late_out = []
    _thread.start_new_thread(lib.late_c_thread, (late_delay, late_done, late_out))
    state.go.set()
    state.c_go.release()
    state.loop_out[0].call_soon_threadsafe(state.loop_out[1].set)
    spun = list(state.spin_counts)
    results = [case(state) for case in CASES]
    # every loop line of the spinners runs after the start point
    parity_oracle.wait_until(lambda: all(c >= s + 2 for c, s in zip(state.spin_counts, spun)))
    state.stop_spin.set()
    for t in state.spinners:
        t.join()
    state.worker.join()
    state.looper.join()
    state.c_done.acquire()
    late_done.acquire()
    return results, state.worker_out, state.c_out, late_out, state.loop_out[3:]


def main():
    late = float(sys.argv[sys.argv.index("--late-delay") + 1]) \
        if "--late-delay" in sys.argv else 0.0
    state = State()
    parity_oracle.wait_go(ORACLE)       # @diff-running
    results = run(state, late)
    parity_oracle.finish(ORACLE, results)


if __name__ == "__main__":
    main()
