#!/usr/bin/env python3
"""A threaded HTTP server to attach to, and a client that hammers it.
Loopback only (127.0.0.1); standard library only.

    httpload.py serve [--main-loop]
        ThreadingHTTPServer on 127.0.0.1, a free port, HTTP/1.1 keep-alive,
        TCP_NODELAY; prints "READY PORT" and serves until killed.  Each
        request does a little routing, a loop over a table and string
        formatting.  serve_forever runs in a thread while the main thread
        sleeps in time.sleep; with --main-loop it runs on the main thread,
        which then waits in poll() with a 0.5 s timeout between requests.

    httpload.py hammer PORT [--threads N] [--max-requests N] [--max-seconds S]
        N keep-alive connections, one thread each, GET in a loop.  Bounded:
        stops after --max-requests in total or --max-seconds, or at end of
        input.  Prints "RUNNING" once the first responses arrived.  On a
        "stats" line on stdin it prints a JSON line with the requests, errors
        and latency (p50, p99, max in ms) since the previous "stats", and
        starts a new window.
"""
import argparse
import http.client
import http.server
import json
import sys
import threading
import time

ITEMS = [{"id": i, "name": "item %d" % i, "price": i * 1.25} for i in range(50)]


# ---- the server ---------------------------------------------------------------

def render(path):
    if path.startswith("/item/"):
        try:
            item = ITEMS[int(path[6:]) % len(ITEMS)]
        except ValueError:
            return 404, "bad item"
        return 200, "<h1>%s</h1><p>%.2f</p>" % (item["name"], item["price"])
    if path == "/":
        rows = ["<li>%s: %.2f</li>" % (i["name"], i["price"]) for i in ITEMS[:20]]
        return 200, "<ul>%s</ul>" % "".join(rows)
    return 404, "not found"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True      # headers and body are two writes

    def do_GET(self):
        status, text = render(self.path)
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(main_loop):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("READY %d" % server.server_address[1], flush=True)
    if main_loop:
        server.serve_forever()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    while True:
        time.sleep(3600)


# ---- the client ---------------------------------------------------------------

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = []
        self.errors = 0
        self.total = 0

    def add(self, seconds):
        with self.lock:
            self.latencies.append(seconds)
            self.total += 1

    def error(self):
        with self.lock:
            self.errors += 1

    def take(self):
        with self.lock:
            lat, err = self.latencies, self.errors
            self.latencies, self.errors = [], 0
        lat.sort()

        def pct(p):
            return 1000 * lat[min(len(lat) - 1, int(p * len(lat)))] if lat else None
        return {"requests": len(lat), "errors": err, "p50_ms": pct(0.5),
                "p99_ms": pct(0.99), "max_ms": 1000 * lat[-1] if lat else None}


def worker(port, n, stats, stop, limit):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    paths = ["/", "/item/%d" % n, "/item/7", "/missing"]
    i = 0
    while not stop.is_set() and stats.total < limit:
        t0 = time.perf_counter()
        try:
            conn.request("GET", paths[i % len(paths)])
            conn.getresponse().read()
            stats.add(time.perf_counter() - t0)
        except (OSError, http.client.HTTPException):
            stats.error()
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        i += 1
    conn.close()


def hammer(args):
    stats, stop = Stats(), threading.Event()
    threads = [threading.Thread(target=worker, args=(args.port, n, stats, stop,
                                                     args.max_requests), daemon=True)
               for n in range(args.threads)]
    for t in threads:
        t.start()
    timer = threading.Timer(args.max_seconds, stop.set)
    timer.daemon = True
    timer.start()
    while stats.total == 0 and not stop.is_set():
        time.sleep(0.01)
    print("RUNNING", flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            print(json.dumps(stats.take()), flush=True)
        else:
            break
    stop.set()
    for t in threads:
        t.join(timeout=15)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--main-loop", action="store_true")
    h = sub.add_parser("hammer")
    h.add_argument("port", type=int)
    h.add_argument("--threads", type=int, default=4)
    h.add_argument("--max-requests", type=int, default=2000000)
    h.add_argument("--max-seconds", type=float, default=600)
    args = ap.parse_args()
    if args.cmd == "serve":
        serve(args.main_loop)
    else:
        hammer(args)


if __name__ == "__main__":
    main()
