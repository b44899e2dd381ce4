# Imported lazily by lazy.py and lazy_holder.py (PEP 810): only a use reifies it.
import sys

sys.stderr.write("lazy_victim imported\n")


def value():
    return 41                                   # @v
