# For the kill-safety test: a thread blocked in accept() serving HTTP, and
# a main thread inside time.sleep(SECONDS) that reports how long it slept.
from __future__ import print_function
import sys
import threading
import time

try:
    from http.server import BaseHTTPRequestHandler, HTTPServer
except ImportError:                 # 2.7
    from BaseHTTPServer import BaseHTTPRequestHandler, HTTPServer

monotonic = getattr(time, "monotonic", time.time)     # 2.7 has none


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
serving = threading.Thread(target=server.serve_forever, args=(3600,))
serving.daemon = True
serving.start()
seconds = float(sys.argv[1])
print("READY %d" % server.server_address[1])
t0 = monotonic()
try:
    time.sleep(seconds)
    print("SLEPT %.3f" % (monotonic() - t0))
except BaseException as exc:
    print("RAISED %r" % (exc,))
sys.stdin.readline()
