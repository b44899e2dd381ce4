# Parity corpus: source that corpus.py reads, compiles with this file's real
# name and runs with exec() after the attach: its lines belong to this file.
executed = []
for i in range(2):
    executed.append(i)


def from_exec(x):
    if x:
        return "yes"
    return "no"


result = from_exec(1)
