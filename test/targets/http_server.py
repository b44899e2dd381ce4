# A threaded HTTP server with a worker thread, started before covinject
# attaches.  Lines tagged "# @x" are what the tests expect to see recorded
# once route x ran (or, for @w, once the worker looped) after the attach.
from __future__ import print_function
import sys
import threading
import time

try:
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from socketserver import ThreadingMixIn
except ImportError:                 # 2.7
    from BaseHTTPServer import BaseHTTPRequestHandler, HTTPServer
    from SocketServer import ThreadingMixIn


def route_a():
    x = 1  # @a
    y = x + 1  # @a
    return "a%d" % y  # @a


def route_b():
    words = ["b", "e"]  # @b
    return "".join(words)  # @b


def route_c():
    total = 0  # @c
    total += 3  # @c
    return "c%d" % total  # @c


ROUTES = {"/a": route_a, "/b": route_b, "/c": route_c}


def beat(n):
    return n * 2  # @w


def worker():
    n = 0
    while True:
        n += 1  # @w
        beat(n)  # @w
        time.sleep(0.02)  # @w


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        fn = ROUTES.get(self.path)
        body = (fn() if fn else "none").encode()
        self.send_response(200 if fn else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingMixIn, HTTPServer):
    """http.server.ThreadingHTTPServer, which 2.7 and 3.6 lack."""
    daemon_threads = True


def main():
    server = Server(("127.0.0.1", 0), Handler)
    looper = threading.Thread(target=worker)
    looper.daemon = True
    looper.start()
    print("READY %d" % server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
