# Imported eagerly by lazy.py: its import lines are derived at start, while
# the lazy import below must stay a lazy_import object in its namespace.
lazy import lazy_victim


def use():
    return lazy_victim.value() + 1
