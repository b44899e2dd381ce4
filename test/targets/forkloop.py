# Forks a short-lived child every few milliseconds from a thread, while the
# main thread answers "count" on stdin with how many children exited well.
import os
import sys
import threading
import time

done = [0]


def forker():
    while True:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        done[0] += status == 0
        time.sleep(0.003)


threading.Thread(target=forker, daemon=True).start()
print("READY", flush=True)
for line in sys.stdin:
    print(done[0], flush=True)
