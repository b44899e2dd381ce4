# The parity corpus, part 1: tricky Python defined (and partly started)
# before covinject attaches, and run after it.  Every line here must run
# the same way every time: no timing, no hash order, no garbage collection.
# Lines tagged "# @diff-KEY" are expected to differ between covinject and
# an oracle; test/parity.py says how, and the README says why.
from __future__ import generator_stop    # the default from 3.7 (PEP 479)

import _thread
import asyncio
import contextlib
import functools
import sys
import threading
import time

try:
    from dataclasses import dataclass
except ImportError:                         # on 3.6  # @import-not-run
    def dataclass(cls):                     # @import-not-run
        """The __init__ of dataclasses.dataclass, which 3.6 lacks."""
        names = list(cls.__annotations__)
        defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}

        def __init__(self, *args):
            for n, v in zip(names, args):
                setattr(self, n, v)
            for n in names[len(args):]:
                setattr(self, n, defaults[n])
        cls.__init__ = __init__
        return cls


# ---- decorators -------------------------------------------------------------

def trace_calls(fn):
    calls = []

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        calls.append(args)
        return fn(*args, **kwargs)
    wrapper.calls = calls
    return wrapper


def repeat(times):
    def deco(fn):
        def again(*args):
            result = None
            for _ in range(times):
                result = fn(*args)
            return result
        return again
    return deco


def register(registry):
    return lambda cls: registry.setdefault(cls.__name__, cls)


@trace_calls
@repeat(2)
def decorated_before(x):
    return x * 3


# ---- closures and lambdas stored before attach ----------------------------

def make_counter(start):
    count = start

    def bump(step=1):
        nonlocal count
        count += step
        return count
    return bump


COUNTER = make_counter(10)

HANDLERS = {                                # @diff-exit-arc
    "double": lambda x: x * 2,
    "clip": lambda x: (x
                       if x < 100
                       else 100),
    "nested": lambda x: (lambda y: x + y)(1),
}
PIPELINE = [lambda s: s.strip(), lambda s: s.upper(), str.lower]
SORT_KEY = sorted([3, 1, 2], key=lambda v: -v)


def never_called_before(a, b=2, *rest, key=None, **extra):
    """A function defined before the attach and first called after it.

    The docstring spans lines: it is not a statement that runs.
    """
    total = a + b + sum(rest)
    if key is not None:
        total += len(key)
    for name in sorted(extra):
        total += extra[name]
    return total


# ---- generators and coroutines suspended across the attach ----------------

def counter_gen(n):
    i = 0
    while i < n:
        got = yield i
        if got:
            i += got
        else:
            i += 1
    return "counted"


def inner_gen():
    yield 1                             # @diff-running
    yield 2
    return 3


def delegating():
    result = yield from inner_gen()     # @diff-running
    yield result
    yield from (x * 10 for x in range(2))


def gen_with_finally(log):
    try:
        yield "open"                    # @diff-running
        yield "never resumed past here"
    finally:
        log.append("closed")


class Suspend:
    def __await__(self):
        value = yield "suspended"
        return value


async def suspended_coro(log):
    got = await Suspend()
    log.append(got)
    again = await Suspend()
    log.append(again)
    return got + again


async def agen(n):
    for i in range(n):
        yield i
        await asyncio.sleep(0)


async def async_with_and_for(log):
    async with AsyncCM(log) as cm:
        async for v in agen(3):
            log.append((cm, v))
    squares = [v * v async for v in agen(3)]
    return squares


class AsyncCM:
    def __init__(self, log):
        self.log = log

    async def __aenter__(self):
        self.log.append("enter")
        return "cm"

    async def __aexit__(self, *exc):
        self.log.append("exit")
        return False


async def gathered(n):
    await asyncio.sleep(0)
    if n % 2:
        raise ValueError(n)
    return n


async def async_main(log):
    log.append(await async_with_and_for(log))
    results = await asyncio.gather(*(gathered(i) for i in range(4)),
                                   return_exceptions=True)
    for r in results:
        if isinstance(r, ValueError):
            log.append("error %s" % r)
        else:
            log.append(r)
    try:
        await asyncio.wait_for(asyncio.sleep(10), timeout=0.001)
    except asyncio.TimeoutError:
        log.append("timeout")
    return len(log)


def run_coroutine(coro):
    """Drive a coroutine by hand, no event loop."""
    value = None
    try:
        while True:
            coro.send(value)
            value = 1
    except StopIteration as stop:
        return stop.value


# ---- threads waiting across the attach --------------------------------------

def worker_main(go, out):
    try:
        waiting_worker(go, out)         # @diff-running
    except LookupError as exc:
        out.append(repr(exc))
    finally:
        out.append("worker done")


def waiting_worker(go, out):
    out.append("waiting")
    go.wait()                           # parks: waiting_worker  # @diff-running
    total = 0
    for i in range(3):
        total += fib(i + 5)
    out.append(total)
    raise IndexError("through two frames that ran before the attach")


def spinner(stop, counts, i):
    while not stop.is_set():
        counts[i] += 1
    return counts[i] > 0


def spinner_true(stop, counts, i):
    while True:
        counts[i] += 1
        if stop.is_set():
            break
    return counts[i] > 0


def catching_gen():
    while True:
        try:
            yield "ready"               # @diff-running
        except ValueError as exc:
            yield "caught %s" % exc
            return


def c_thread_worker(go_lock, done_lock, out):
    go_lock.acquire()                   # parks: c_thread_worker
    value = fib(7)                      # @diff-cthread
    out.append(value)                   # @diff-cthread
    done_lock.release()                 # @diff-cthread


def late_c_thread(delay, done_lock, out):
    time.sleep(delay)                   # @diff-cthread-late-first
    out.append(sum(i * i for i in range(4)))   # @diff-cthread-late
    done_lock.release()                 # @diff-cthread-late


def run_async(coro):
    """asyncio.run, which 3.6 lacks."""
    if hasattr(asyncio, "run"):
        return asyncio.run(coro)
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def running_loop():
    """asyncio.get_running_loop, which 3.6 lacks."""
    return getattr(asyncio, "get_running_loop", asyncio.get_event_loop)()


def loop_thread(started, out):
    async def waiter(event):
        started.set()
        await event.wait()              # parks: waiter  # @diff-running
        out.append("woken")             # @diff-resumed
        await asyncio.sleep(0)          # @diff-resumed
        return "done"                   # @diff-resumed

    async def main():
        event = asyncio.Event()
        out.append(running_loop())
        out.append(event)
        coro = waiter(event)
        out.append(coro)
        return await coro               # @diff-running
    out.append(run_async(main()))       # @diff-running


# ---- recursion and exceptions ------------------------------------------------

def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def is_even(n):
    return True if n == 0 else is_odd(n - 1)


def is_odd(n):
    return False if n == 0 else is_even(n - 1)


def deep_raise(n):
    if n == 0:
        raise KeyError("bottom")
    try:
        deep_raise(n - 1)
    finally:
        n -= 1


def propagate(log):
    def middle():
        try:
            deep_raise(3)
        except ValueError:
            log.append("not this one")
        else:
            log.append("not reached")
        log.append("not reached either")

    try:
        middle()
    except KeyError as exc:
        log.append(str(exc))
    finally:
        log.append("outer finally")


def try_matrix(x):
    try:
        if x == 1:
            raise ValueError("one")
        elif x == 2:
            return "early"
        result = 10 // x
    except ValueError as e:
        result = str(e)
    except ZeroDivisionError:
        result = "zero"
    else:
        result = result + 1
    finally:
        x = None
    return result


def finally_return():
    try:
        return "try"
    finally:
        pass


def reraise():
    try:
        try:
            raise TypeError("inner")
        except TypeError:
            raise RuntimeError("outer") from None
    except RuntimeError as e:
        return e.__cause__ is None


def gen_raises():
    yield 1
    raise StopIteration("turned into RuntimeError")


# ---- with blocks -----------------------------------------------------------

class Managed:
    def __init__(self, log, suppress=False):
        self.log, self.suppress = log, suppress

    def __enter__(self):
        self.log.append("in")
        return self

    def __exit__(self, kind, value, tb):
        self.log.append("out %s" % (kind.__name__ if kind else None))
        return self.suppress


@contextlib.contextmanager
def managed_gen(log):
    log.append("before")
    try:
        yield len(log)
    finally:
        log.append("after")


def with_blocks(log):
    with Managed(log) as a, Managed(log) as b:
        log.append(a is not b)
    with Managed(log, suppress=True):
        raise ValueError("suppressed")
    with managed_gen(log) as n:
        log.append(n)
    try:
        with Managed(log):              # @branchdiff-dup
            1 / 0
    except ZeroDivisionError:
        log.append("escaped")
    return log


# ---- classes ---------------------------------------------------------------

REGISTRY = {}


class Base:
    subclasses = []

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Base.subclasses.append(cls.__name__)


class Meta(type):
    def __new__(mcs, name, bases, ns):
        ns.setdefault("made_by", "Meta")
        return super().__new__(mcs, name, bases, ns)


class Named:
    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        return self if obj is None else self.name.upper()


def define_classes():
    """Class bodies that execute after the attach."""
    @register(REGISTRY)
    class Point(Base, metaclass=Meta):
        dims = 2
        names = [c for c in "xy"]
        label = Named()

        def __init__(self, x, y):
            self.x, self.y = x, y

        @property
        def norm(self):
            return abs(self.x) + abs(self.y)

        @norm.setter
        def norm(self, value):
            raise AttributeError("read only")

        @staticmethod
        def origin():
            return Point(0, 0)

        @classmethod
        def unit(cls):
            return cls(1, 1)

        def __add__(self, other):
            return Point(self.x + other.x,
                         self.y + other.y)

        def __eq__(self, other):
            return (self.x, self.y) == (other.x, other.y)

        class Inner:
            kind = "inner"

    @dataclass
    class Item:
        name: str                           # @diff-annotate
        qty: int = 1

        def total(self, price):
            return self.qty * price

    p = Point.unit() + Point.origin()
    try:
        p.norm = 3
    except AttributeError:
        pass
    return (p.norm, p.label, Point.Inner.kind, Point.made_by,
            Item("a", 2).total(3), p == Point(1, 1))
