# A hand-written prefork server: the master forks WORKERS workers that share
# the listening socket; each serves MAX requests, then exits normally, and
# the master forks a replacement.  Lines tagged "# @h" run for each request.
from __future__ import print_function
import os
import socket
import sys

WORKERS, MAX = 3, int(sys.argv[1]) if len(sys.argv) > 1 else 5


def handle(conn):
    data = conn.recv(1024)  # @h
    reply = b"pid %d: %s" % (os.getpid(), data.strip())  # @h
    conn.sendall(reply)  # @h


def worker(sock):
    for _ in range(MAX):
        conn, _ = sock.accept()
        try:                    # 2.7: a socket is not a context manager
            handle(conn)
        finally:
            conn.close()
    sys.exit(0)


def spawn(sock):
    pid = os.fork()
    if pid == 0:
        worker(sock)
    return pid


def main():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    pids = [spawn(sock) for _ in range(WORKERS)]
    print("READY %d %s" % (sock.getsockname()[1], " ".join(map(str, pids))))
    while True:
        pid, _ = os.wait()
        spawn(sock)


if __name__ == "__main__":
    main()
