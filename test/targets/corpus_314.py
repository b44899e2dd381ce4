# Parity corpus, Python 3.14+: what 3.14 compiles differently.  PEP 765
# (return, break and continue in a finally block: a SyntaxWarning, still
# allowed), PEP 758 (except without parentheses), PEP 750 template strings,
# PEP 649 annotations evaluated lazily, in their own __annotate__ code.
import annotationlib


def finally_flow(log):
    for i in range(4):
        try:
            if i == 1:
                continue
            if i == 3:
                raise ValueError(i)
            log.append(i)
        finally:
            if i == 2:
                continue                # PEP 765: warns
            if i == 3:
                break                   # PEP 765: swallows the ValueError
            log.append(-i)
    return log


def finally_return(x):
    try:
        return x / 0
    finally:
        return "finally"                # PEP 765: warns, swallows the error


def bare_excepts(values):
    out = []
    for v in values:
        try:
            if v == 0:
                raise ValueError(v)
            if v == 1:
                raise KeyError(v)
            out.append("ok")
        except ValueError, KeyError:                     # PEP 758
            out.append("caught")
        finally:
            out.append("done")
    return out


def bare_star_excepts(log):
    try:
        raise ExceptionGroup("g", [TypeError(1), OSError(2)])
    except* TypeError, OSError:                           # PEP 758
        log.append("grouped")
    return log


def templates(name, items):
    greeting = t"hello {name}!"
    table = t"""{len(items)} items:
{', '.join(items)!r:>10}
done"""
    return ([part if isinstance(part, str) else part.value
             for part in greeting], table.strings, table.values)


def lazy_annotations():
    def f(x: NotYetDefined, y: int = 1) -> AlsoLater:  # noqa: F821
        return x

    class Model:
        name: NotYetDefined                 # @diff-annotate
        size: int = 3

    fwd = annotationlib.get_annotations(f, format=annotationlib.Format.FORWARDREF)
    try:
        Model.__annotations__
    except NameError as exc:
        missing = exc.name
    return f(5), sorted(fwd), Model.size, missing
