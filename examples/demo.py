#!/usr/bin/env python3
"""make demo: covinject's main job, end to end, on the bundled example shop.

1. start examples/shop.py, a threaded web server, like any production server;
2. `covinject start` attaches to it: no restart, no code change;
3. send it traffic; `covinject dump` writes a snapshot while it serves;
4. `covinject stop` removes the collector; the server keeps serving;
5. `coverage combine` + `coverage report` show what ran and what never did.
"""
import os
import shutil
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
COVINJECT = os.path.join(ROOT, "covinject")
OUT = os.path.join(HERE, "out")


def step(msg):
    print("\n==> " + msg, flush=True)


def run(*args, **kw):
    print("$ " + " ".join(map(str, args)), flush=True)
    r = subprocess.run([str(a) for a in args], text=True, **kw)
    if r.returncode:
        sys.exit("demo: %s failed (exit %d)" % (args[0], r.returncode))
    return r


def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        return r.read().decode()


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    step("starting the example server (examples/shop.py) with %s" % sys.executable)
    server = subprocess.Popen([sys.executable, os.path.join(HERE, "shop.py")],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline().split()[1])
        print("serving on 127.0.0.1:%d, pid %d" % (port, server.pid))
        get(port, "/products")  # runs before attach: not measured
        step("attaching covinject to the running server")
        run(COVINJECT, "start", "-o", OUT, server.pid)
        step("sending traffic")
        for path in ["/products", "/add/ann/1", "/add/ann/3", "/checkout/ann",
                     "/add/bob/9"]:
            try:
                print("GET %-14s -> %s" % (path, get(port, path)))
            except urllib.error.HTTPError as exc:
                print("GET %-14s -> %d %s" % (path, exc.code, exc.reason))
        time.sleep(0.2)  # let the housekeeping thread go round its loop
        step("a snapshot while the server runs (kill -USR1 %d does the same)" % server.pid)
        run(COVINJECT, "dump", server.pid)
        step("stopping collection; the server keeps serving")
        run(COVINJECT, "stop", server.pid)
        print("GET /products after stop -> %s" % get(port, "/products")[:40] + "...")
    finally:
        server.kill()
        server.wait()
    step("coverage.py reads the data as its own")
    env = dict(os.environ, COVERAGE_FILE=os.path.join(OUT, ".coverage"))
    run(sys.executable, "-m", "coverage", "combine", OUT, env=env, cwd=OUT)
    run(sys.executable, "-m", "coverage", "report", "-m", env=env, cwd=HERE)
    print("\nLines of shop.py listed as Missing never ran while covinject was "
          "attached: the admin\nroute, the bulk discount, the 404 branch, and "
          "main(), which ran at start-up.\nThe module's top-level lines, run "
          "by its import before the attach, are in the\n'import' context "
          "(derived from the code): see them with\n  COVERAGE_FILE=%s "
          "python3 -m coverage html --show-contexts" % os.path.join(OUT, ".coverage"))


if __name__ == "__main__":
    main()
