#!/usr/bin/env python3
"""Benchmark workloads for covinject: pure Python, standard library only.

    workloads.py WORKLOAD [--chunks N] [--warmup N] [--scale X] [--coverage]

WORKLOAD is one of:

  web    a request loop: routing by regular expressions, a middleware chain,
         a view over an in-memory table, string-template rendering and JSON
         encoding;
  calls  a call-heavy CPU kernel: an n-body simulation where every vector
         operation is a method call;
  hot    a few tiny functions called millions of times.

Protocol (driven by bench/run.py):

  1. run --warmup chunks of work (not timed);
  2. print "READY" and flush;
  3. wait for one line on stdin ("go"); this is where a tool is attached from
     outside;
  4. with --coverage, start coverage.py in this process now, right before
     timing (COVERAGE_CORE from the environment is honoured by coverage.py
     versions that know it, 7.4 and later; older ones ignore it, and the
     "coverage" field of the result says which tracer actually ran); with
     --monitoring-floor (3.12+), start a sys.monitoring tool whose LINE
     callback only returns DISABLE: the floor of any line collector built
     on sys.monitoring;
  5. time --chunks equal chunks of work and print one JSON line:
     {"workload", "python", "chunks": [seconds, ...], "coverage": {...}|null};
  6. wait for one more line (or end of file) on stdin, then exit: the driver
     may ask covinject for the target's status in between.

A chunk takes roughly 0.1 s on a 2 GHz machine with no tool; --scale
multiplies the work of every chunk.
"""
import argparse
import json
import math
import os
import re
import string
import sys
import time


# ---- web: a request loop ----------------------------------------------------

class Request:
    def __init__(self, method, path, query, headers):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.user = None
        self.params = {}


class Response:
    def __init__(self, body, status=200, content_type="text/html"):
        self.body = body
        self.status = status
        self.headers = {"Content-Type": content_type}


PRODUCTS = [
    {"id": i, "name": "product %d" % i, "price": (i * 37) % 1000 / 10.0,
     "stock": (i * 13) % 50, "tags": ["t%d" % (i % 7), "t%d" % (i % 5)]}
    for i in range(200)
]
USERS = {"token-%d" % i: {"id": i, "name": "user%d" % i, "admin": i % 10 == 0}
         for i in range(50)}

PAGE = string.Template(
    "<html><head><title>$title</title></head><body>"
    "<h1>$title</h1><p>Hello, $user.</p><table>$rows</table>"
    "<p>$count items, total $total</p></body></html>")
ROW = string.Template(
    "<tr><td>$id</td><td>$name</td><td>$price</td><td>$stock</td></tr>")


def escape(text):
    text = str(text)
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def render_page(title, user, items):
    rows = []
    total = 0.0
    for item in items:
        rows.append(ROW.substitute(id=item["id"], name=escape(item["name"]),
                                   price="%.2f" % item["price"],
                                   stock=item["stock"]))
        total += item["price"]
    return PAGE.substitute(title=escape(title), user=escape(user),
                           rows="".join(rows), count=len(items),
                           total="%.2f" % total)


def view_index(request):
    items = [p for p in PRODUCTS[:20] if p["stock"] > 0]
    return Response(render_page("Shop", request.user["name"], items))


def view_product(request):
    pid = int(request.params["id"])
    product = PRODUCTS[pid % len(PRODUCTS)]
    related = [p for p in PRODUCTS if p["tags"][0] == product["tags"][0]][:8]
    return Response(render_page(product["name"], request.user["name"], related))


def view_search(request):
    term = request.query.get("q", "")
    limit = int(request.query.get("limit", "10"))
    found = [p for p in PRODUCTS if term in p["name"]][:limit]
    return Response(render_page("Search: " + term, request.user["name"], found))


def view_api_products(request):
    page = int(request.query.get("page", "0"))
    items = PRODUCTS[page * 25:(page + 1) * 25]
    body = json.dumps({"page": page, "items": items, "count": len(items)})
    return Response(body, content_type="application/json")


def view_api_cart(request):
    cart = [{"id": p["id"], "qty": 1 + p["id"] % 3, "price": p["price"]}
            for p in PRODUCTS[:12]]
    total = sum(line["qty"] * line["price"] for line in cart)
    body = json.dumps({"user": request.user["id"], "lines": cart,
                       "total": round(total, 2)})
    return Response(body, content_type="application/json")


def not_found(request):
    return Response("not found: " + escape(request.path), status=404)


ROUTES = [
    (re.compile(r"^/$"), view_index),
    (re.compile(r"^/product/(?P<id>\d+)$"), view_product),
    (re.compile(r"^/search$"), view_search),
    (re.compile(r"^/api/products$"), view_api_products),
    (re.compile(r"^/api/cart$"), view_api_cart),
]


def route(request):
    for pattern, view in ROUTES:
        match = pattern.match(request.path)
        if match:
            request.params = match.groupdict()
            return view
    return not_found


def auth_middleware(handler):
    def wrapped(request):
        token = request.headers.get("Authorization", "").replace("Bearer ", "")
        request.user = USERS.get(token)
        if request.user is None:
            return Response("unauthorised", status=401)
        return handler(request)
    return wrapped


def session_middleware(handler):
    def wrapped(request):
        cookie = request.headers.get("Cookie", "")
        session = dict(part.split("=", 1) for part in cookie.split("; ") if "=" in part)
        request.session = session
        response = handler(request)
        response.headers["Set-Cookie"] = "sid=%s" % session.get("sid", "new")
        return response
    return wrapped


def headers_middleware(handler):
    def wrapped(request):
        response = handler(request)
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Length"] = str(len(response.body))
        return response
    return wrapped


def timing_middleware(handler):
    def wrapped(request):
        start = time.perf_counter()
        response = handler(request)
        response.headers["X-Time"] = "%.6f" % (time.perf_counter() - start)
        return response
    return wrapped


def dispatch(request):
    return route(request)(request)


def build_app():
    app = dispatch
    for middleware in (auth_middleware, session_middleware,
                       headers_middleware, timing_middleware):
        app = middleware(app)
    return app


def parse_target(target):
    path, _, qs = target.partition("?")
    query = {}
    for pair in qs.split("&"):
        if pair:
            key, _, value = pair.partition("=")
            query[key] = value
    return path, query


def make_requests():
    targets = ["/", "/product/17", "/search?q=product 1&limit=12",
               "/api/products?page=3", "/api/cart", "/product/123",
               "/missing/page", "/search?q=9"]
    requests = []
    for i, target in enumerate(targets * 4):
        headers = {"Authorization": "Bearer token-%d" % (i % 60),
                   "Cookie": "sid=s%d; theme=dark" % i}
        requests.append(("GET",) + parse_target(target) + (headers,))
    return requests


def make_web(scale):
    app = build_app()
    requests = make_requests()
    rounds = max(1, int(50 * scale))

    def chunk():
        size = 0
        for _ in range(rounds):
            for method, path, query, headers in requests:
                response = app(Request(method, path, query, headers))
                size += len(response.body)
        return size
    return chunk


# ---- calls: n-body with a vector class --------------------------------------

class Vec:
    __slots__ = ("x", "y", "z")

    def __init__(self, x, y, z):
        self.x = x
        self.y = y
        self.z = z

    def __add__(self, other):
        return Vec(self.x + other.x, self.y + other.y, self.z + other.z)

    def __sub__(self, other):
        return Vec(self.x - other.x, self.y - other.y, self.z - other.z)

    def scale(self, k):
        return Vec(self.x * k, self.y * k, self.z * k)

    def dot(self, other):
        return self.x * other.x + self.y * other.y + self.z * other.z


class Body:
    def __init__(self, pos, vel, mass):
        self.pos = pos
        self.vel = vel
        self.mass = mass

    def kinetic(self):
        return 0.5 * self.mass * self.vel.dot(self.vel)


def make_bodies(n):
    bodies = []
    for i in range(n):
        angle = 2 * math.pi * i / n
        pos = Vec(math.cos(angle) * (1 + i), math.sin(angle) * (1 + i), 0.1 * i)
        vel = Vec(-math.sin(angle), math.cos(angle), 0.0).scale(0.3)
        bodies.append(Body(pos, vel, 1.0 + (i % 3)))
    return bodies


def pull(a, b, dt):
    delta = a.pos - b.pos
    dist2 = delta.dot(delta) + 0.01
    magnitude = dt / (dist2 * math.sqrt(dist2))
    a.vel = a.vel - delta.scale(b.mass * magnitude)
    b.vel = b.vel + delta.scale(a.mass * magnitude)


def advance(bodies, dt):
    for i, a in enumerate(bodies):
        for b in bodies[i + 1:]:
            pull(a, b, dt)
    for body in bodies:
        body.pos = body.pos + body.vel.scale(dt)


def energy(bodies):
    total = 0.0
    for i, a in enumerate(bodies):
        total += a.kinetic()
        for b in bodies[i + 1:]:
            delta = a.pos - b.pos
            total -= a.mass * b.mass / math.sqrt(delta.dot(delta) + 0.01)
    return total


def make_calls(scale):
    bodies = make_bodies(8)
    steps = max(1, int(1600 * scale))

    def chunk():
        for _ in range(steps):
            advance(bodies, 0.001)
        return energy(bodies)
    return chunk


# ---- hot: tiny functions, millions of calls ---------------------------------

def inc(x):
    return x + 1


def is_odd(n):
    return n & 1


def clamp(value, low, high):
    return low if value < low else high if value > high else value


def hot_loop(n):
    total = 0
    for i in range(n):
        if is_odd(i):
            total = inc(total)
        else:
            total = clamp(total + i, 0, 1 << 20)
    return total


def make_hot(scale):
    n = max(1, int(600000 * scale))

    def chunk():
        return hot_loop(n)
    return chunk


WORKLOADS = {"web": make_web, "calls": make_calls, "hot": make_hot}


# ---- driver -----------------------------------------------------------------

def start_coverage():
    """Start coverage.py here, honouring COVERAGE_CORE where it is known."""
    import coverage
    cov = coverage.Coverage(data_file=None)
    cov.start()
    return cov


def start_monitoring_floor():
    """The least a sys.monitoring line collector can cost (3.12+): a tool
    whose LINE callback does nothing but return DISABLE."""
    mon = sys.monitoring
    tool = next(i for i in (5, 4, 3, 2) if mon.get_tool(i) is None)
    disable = mon.DISABLE
    mon.use_tool_id(tool, "bench-floor")
    mon.register_callback(tool, mon.events.LINE, lambda code, line: disable)
    mon.set_events(tool, mon.events.LINE)


def coverage_info(cov):
    """Which coverage.py and tracer ran (call before cov.stop())."""
    import coverage
    collector = getattr(cov, "_collector", None)
    tracer = collector.tracer_name() if collector else "unknown"
    return {"version": coverage.__version__, "tracer": tracer,
            "coverage_core": os.environ.get("COVERAGE_CORE")}


def measured_lines(cov):
    """Lines coverage.py recorded (call after cov.stop()): a sanity check."""
    data = cov.get_data()
    return sum(len(data.lines(name) or ()) for name in data.measured_files())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--coverage", action="store_true",
                        help="measure with coverage.py in this process")
    parser.add_argument("--monitoring-floor", action="store_true",
                        help="3.12+: a sys.monitoring LINE tool that only "
                        "returns DISABLE, started in this process")
    args = parser.parse_args()

    chunk = WORKLOADS[args.workload](args.scale)
    for _ in range(args.warmup):
        chunk()
    print("READY", flush=True)
    sys.stdin.readline()
    cov = start_coverage() if args.coverage else None
    if args.monitoring_floor:
        start_monitoring_floor()
    times = []
    for _ in range(args.chunks):
        start = time.perf_counter()
        chunk()
        times.append(time.perf_counter() - start)
    info = None
    if cov is not None:
        info = coverage_info(cov)
        cov.stop()
        info["lines"] = measured_lines(cov)
    print(json.dumps({"workload": args.workload,
                      "python": sys.version.split()[0],
                      "chunks": times, "coverage": info}), flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main()
