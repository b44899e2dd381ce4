# A Celery application on a redis broker at 127.0.0.1:$COVINJECT_REDIS_PORT
# (a redis-server the test starts).  Lines tagged "# @t" run in the pool's
# worker processes, once per task.
import os

from celery import Celery

url = "redis://127.0.0.1:%s" % os.environ["COVINJECT_REDIS_PORT"]
app = Celery("celeryapp", broker=url + "/0", backend=url + "/1")


@app.task
def add(x, y):
    z = x + y  # @t
    return z  # @t
