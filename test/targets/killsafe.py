# For the kill-safety test: a thread blocked in accept() serving HTTP, and
# a main thread inside time.sleep(SECONDS) that reports how long it slept.
import http.server
import sys
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, args=(3600,), daemon=True).start()
seconds = float(sys.argv[1])
print("READY %d" % server.server_address[1], flush=True)
t0 = time.monotonic()
try:
    time.sleep(seconds)
    print("SLEPT %.3f" % (time.monotonic() - t0), flush=True)
except BaseException as exc:
    print("RAISED %r" % (exc,), flush=True)
sys.stdin.readline()
