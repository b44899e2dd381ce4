"""A small example web shop: the server `make demo` attaches covinject to.

It serves a few routes on 127.0.0.1; the demo sends traffic to some of them,
so the coverage report shows which code ran and which never did.
"""
import http.server
import json
import sys
import threading
import time

PRODUCTS = {1: ("tea", 4.5), 2: ("coffee", 6.0), 3: ("cocoa", 5.25)}
CARTS = {}
STATS = {"requests": 0}


def list_products():
    return [{"id": k, "name": n, "price": p} for k, (n, p) in PRODUCTS.items()]


def add_to_cart(user, product_id):
    if product_id not in PRODUCTS:
        raise KeyError("no product %d" % product_id)
    CARTS.setdefault(user, []).append(product_id)
    return len(CARTS[user])


def checkout(user):
    items = CARTS.pop(user, [])
    total = sum(PRODUCTS[i][1] for i in items)
    if total > 100:
        total = apply_bulk_discount(total)
    return {"items": len(items), "total": round(total, 2)}


def apply_bulk_discount(total):
    # never reached by the demo's traffic: shows up as missed
    return total * 0.9


def admin_report():
    # nobody calls this in the demo
    return {"carts": len(CARTS), "requests": STATS["requests"]}


def housekeeping():
    """A background thread, already running when covinject attaches."""
    while True:
        STATS["requests"] += 0
        time.sleep(0.05)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        STATS["requests"] += 1
        parts = self.path.strip("/").split("/")
        try:
            if parts == ["products"]:
                body = list_products()
            elif parts[0] == "add" and len(parts) == 3:
                body = {"count": add_to_cart(parts[1], int(parts[2]))}
            elif parts[0] == "checkout" and len(parts) == 2:
                body = checkout(parts[1])
            elif parts == ["admin"]:
                body = admin_report()
            else:
                self.send_error(404)
                return
        except KeyError as exc:
            self.send_error(400, str(exc))
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=housekeeping, daemon=True).start()
    print("READY %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
