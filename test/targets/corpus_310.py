# Parity corpus, Python 3.10+: match statements and parenthesized context
# managers.  Imported by corpus.py only where the syntax exists.
import contextlib


def classify(value):
    match value:
        case 0:
            return "zero"
        case int(n) if n < 0:
            return "negative"
        case [x, y, *rest]:
            return "seq %d %d %d" % (x, y, len(rest))
        case {"kind": "point", "x": x, **others}:
            return "point %s %d" % (x, len(others))
        case str() | bytes():
            return "text"
        case Shape(sides=3):
            return "triangle"
        case Shape(sides=s) if s > 3:
            return "polygon"
        case _:
            return "other"


class Shape:
    __match_args__ = ("sides",)

    def __init__(self, sides):
        self.sides = sides


def matches():
    values = [0, -3, [1, 2, 3, 4], {"kind": "point", "x": 1, "y": 2},
              "s", Shape(3), Shape(5), 3.5]
    return [classify(v) for v in values]


def parenthesized_with(log):
    with (
        contextlib.nullcontext(1) as a,
        contextlib.nullcontext(2) as b,
    ):
        log.append(a + b)
    return log
