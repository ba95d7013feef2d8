"""The compat scenario for Celery: an app with Celery's default settings and
only the broker URL pointed at the server publishes tasks with delay() and
apply_async(). Defaults mean: exchange and queue `celery`, protocol 2, JSON,
py-amqp, no publisher confirms (so the runner, not Celery, checks that every
task arrived). Output contract: tests/compat/README.md."""

import os
import sys
import time

import celery
from celery import Celery

from scenario_common import RUN, TIMEOUT, close_step, step

N = 10  # tasks per API

app = Celery("compat", broker=os.environ["COMPAT_URL"])


@app.task(name="compat.add")
def add(x, y):
    return x + y


def main():
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=TIMEOUT)
            raw = conn.connection
            mech = next((a.mechanism for a in raw.authentication if a.mechanism in raw.mechanisms), b"?").decode()
    except Exception as e:  # noqa: BLE001
        step("connect", False, "error=%r" % (e,))
        return 1
    step("connect", True, "mechanism=%s _version=%s" % (mech, celery.__version__))

    ids = []
    t0 = time.monotonic()
    try:
        for i in range(N):
            ids.append(add.delay(i, 1).id)
        for i in range(N):
            ids.append(add.apply_async((i, 2), task_id="%s-%d" % (RUN, i), countdown=0).id)
        step("publish", True, "published=%d _ms=%d task_ids=%s" % (len(ids), (time.monotonic() - t0) * 1000, ",".join(ids)))
    except Exception as e:  # noqa: BLE001
        step("publish", False, "published=%d error=%r" % (len(ids), e))
        return 1

    return close_step(app.close, "")


if __name__ == "__main__":
    sys.exit(main())
