# Run inside the sub-interpreters of subinterp.py.


def shared():
    total = 0  # @s
    for i in range(3):  # @s
        total += i  # @s
    return total  # @s


def isolated():
    total = 1  # @i
    return total  # @i
