# multiprocessing.Pool (fork): one pool exists before covinject attaches;
# stdin commands run work in it ("old") or in a pool created now ("new"),
# or ("recycle") in a pool whose workers end after one task each, with
# os._exit as multiprocessing's workers always do.
# Lines tagged "# @sq" run in the pool's worker processes.
from __future__ import print_function
import multiprocessing
import sys


def square(x):
    y = x * x  # @sq
    return y  # @sq


def main():
    # fork: 3.14 defaults to forkserver; 2.7 has no contexts, and forks
    ctx = multiprocessing.get_context("fork") if hasattr(multiprocessing, "get_context") \
        else multiprocessing
    old = ctx.Pool(2)
    old.map(square, range(4))  # the workers are up before the attach
    print("READY")
    pools = []
    for line in iter(sys.stdin.readline, ""):  # 2.7: no read-ahead
        if line.strip() == "recycle":
            pool = ctx.Pool(2, maxtasksperchild=1)      # 2.7: not a context manager
            total = sum(pool.map(square, range(6), chunksize=1))
            pool.close()
            pool.join()
            print("DONE %d" % total)
            continue
        pool = old if line.strip() == "old" else ctx.Pool(2)
        pools.append(pool)
        print("DONE %d %s" % (sum(pool.map(square, range(20))),
                              " ".join(str(p.pid) for p in pool._pool)))


if __name__ == "__main__":
    main()
