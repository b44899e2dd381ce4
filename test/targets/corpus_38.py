# Parity corpus, Python 3.8+: assignment expressions.  Imported by corpus.py
# only where the syntax exists.


def walrus():
    return [y for x in range(5) if (y := x * 2) > 4]
