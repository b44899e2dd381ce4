# Forks a short-lived child every few milliseconds from a thread, while the
# main thread answers "count" on stdin with how many children exited well.
from __future__ import print_function
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


looper = threading.Thread(target=forker)
looper.daemon = True
looper.start()
print("READY")
for line in iter(sys.stdin.readline, ""):  # 2.7: no read-ahead
    print(done[0])
