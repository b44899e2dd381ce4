# multiprocessing.Pool (fork): one pool exists before covinject attaches;
# stdin commands run work in it ("old") or in a pool created now ("new").
# Lines tagged "# @sq" run in the pool's worker processes.
import multiprocessing
import sys


def square(x):
    y = x * x  # @sq
    return y  # @sq


def main():
    ctx = multiprocessing.get_context("fork")
    old = ctx.Pool(2)
    old.map(square, range(4))  # the workers are up before the attach
    print("READY", flush=True)
    pools = []
    for line in sys.stdin:
        pool = old if line.strip() == "old" else ctx.Pool(2)
        pools.append(pool)
        print("DONE %d %s" % (sum(pool.map(square, range(20))),
                              " ".join(str(p.pid) for p in pool._pool)), flush=True)


if __name__ == "__main__":
    main()
