# The parity corpus of Python 2.7 (corpus27.py), part 1: what is defined,
# and partly started, before covinject attaches.  Every line must run the
# same way every time.  Lines tagged "# @diff-KEY" differ for a reason
# test/parity.py gives; "# parks: NAME" marks where a thread waits at "go".
from __future__ import print_function

import functools
import thread
import threading


def trace_calls(fn):
    calls = []

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        calls.append(args)
        return fn(*args, **kwargs)
    wrapper.calls = calls
    return wrapper


@trace_calls
def decorated(x):
    return x * 2


def make_counter():
    box = [0]

    def bump(step=1):
        box[0] += step
        return box[0]
    return bump


COUNTER = make_counter()
HANDLERS = {
    "double": lambda v: v * 2,
    "clip": lambda v: (v
                       if v < 10
                       else 10),
}


def counter_gen(n):
    i = 0
    while i < n:
        yield i
        i += 1


def gen_with_finally(log):
    try:
        yield 1
        yield 2
    finally:
        log.append("closed")


class OldStyle:
    kind = "old"

    def __init__(self, v):
        self.v = v

    def twice(self):
        return self.v * 2


class NewStyle(object):
    label = "new"

    @property
    def value(self):
        return 42

    @staticmethod
    def static(x):
        return x + 1

    @classmethod
    def make(cls):
        return cls()


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def raises(kind):
    try:
        if kind == "key":
            raise KeyError(kind)
        return "none"
    except KeyError as exc:
        return "caught %s" % exc
    finally:
        fib(3)


class Managed(object):
    def __init__(self, log):
        self.log = log

    def __enter__(self):
        self.log.append("enter")
        return self

    def __exit__(self, *exc):
        self.log.append("exit")
        return False


def loops(n):
    out = []
    for i in range(n):
        if i == 3:
            break
        out.append(i)
    else:
        out.append("no break")
    while n:
        n -= 1
    else:
        out.append("while done")
    return out


def comprehensions():
    squares = [i * i for i in range(4)]
    evens = set(i for i in range(6) if i % 2 == 0)
    table = dict((k, len(k)) for k in ("a", "bb"))
    return squares, sorted(evens), sorted(table.items())


def waiting_worker(go, out):
    out.append("waiting")
    go.wait()                           # parks: waiting_worker  # @diff-running
    out.append(fib(6))


def worker_main(go, out):
    waiting_worker(go, out)             # @diff-running
    out.append("worker done")


def c_thread_worker(go_lock, done_lock, out):
    go_lock.acquire()                   # parks: c_thread_worker
    value = fib(7)                      # @diff-cthread
    out.append(value)                   # @diff-cthread
    done_lock.release()                 # @diff-cthread


def start_c_thread(go_lock, done_lock, out):
    return thread.start_new_thread(c_thread_worker, (go_lock, done_lock, out))


def start_worker(go, out):
    t = threading.Thread(target=worker_main, args=(go, out))
    t.start()
    return t
