"""The compat scenario for Celery: an app with Celery's default settings, the
broker URL pointed at the server and the `rpc://` result backend, publishes
tasks with delay() and apply_async(), then a real `celery worker` (prefork
pool, two processes) runs them and every result comes back through the
backend's reply queue. Defaults mean: exchange and queue `celery`, protocol
2, JSON, py-amqp, no publisher confirms (so the runner also checks that
every task reached Kafka), mingle and gossip at worker start. Output
contract: tests/compat/README.md."""

import os
import signal
import subprocess
import sys
import threading
import time

import celery
from celery import Celery

from scenario_common import CLIENT, RUN, TARGET, TIMEOUT, close_step, step

N = 10  # tasks per API

app = Celery("compat", broker=os.environ["COMPAT_URL"], backend="rpc://")


@app.task(name="compat.add")
def add(x, y):
    return x + y


def start_worker():
    """`celery worker` in a process group of its own, so that a failed run
    takes the pool's children with it; its log goes into the program's, and
    `ready` is set once it says it is ready."""
    here = os.path.dirname(os.path.abspath(__file__))
    cmd = [sys.executable, "-m", "celery", "-A", "celery_scenario", "worker", "--pool=prefork",
           "-c", "2", "--loglevel=INFO", "-n", "compat-%s-%s@%%h" % (RUN, TARGET or CLIENT)]
    w = subprocess.Popen(cmd, cwd=here, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
    w.ready = threading.Event()

    def relay():
        for line in w.stdout:
            sys.stdout.write(line)
            if " ready." in line:
                w.ready.set()
        sys.stdout.flush()

    w.relay = threading.Thread(target=relay, daemon=True)
    w.relay.start()
    return w


def stop_worker(w):
    """Warm shutdown (SIGTERM: finish what runs, cancel the consumers, close)
    once the worker has finished starting (Celery 5 can hang on a SIGTERM
    that comes during its start); the exit code, or None if the group had
    to be killed."""
    try:
        w.ready.wait(TIMEOUT)
        w.send_signal(signal.SIGTERM)
        return w.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None
    finally:
        try:
            os.killpg(w.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        w.relay.join(5)


def work(results, want):
    """The consume step: a worker runs every published task, and each result
    arrives through rpc://, then the worker stops warm and exits 0."""
    t0 = time.monotonic()
    w = start_worker()
    got, wrong, err = 0, 0, None
    try:
        deadline = t0 + 3 * TIMEOUT  # a worker's start (mingle) takes seconds
        for r, v in zip(results, want):
            value = r.get(timeout=max(1.0, deadline - time.monotonic()))
            got += 1
            wrong += value != v
    except Exception as e:  # noqa: BLE001
        err = e
    ms = (time.monotonic() - t0) * 1000
    code = stop_worker(w)
    ok = err is None and wrong == 0 and code == 0
    step("consume", ok, "results=%d wrong=%d worker_exit=%s _ms=%d%s" % (
        got, wrong, code, ms, "" if err is None else " error=%r" % (err,)))
    return ok


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

    results, want = [], []
    t0 = time.monotonic()
    try:
        for i in range(N):
            results.append(add.delay(i, 1))
            want.append(i + 1)
        for i in range(N):
            results.append(add.apply_async((i, 2), task_id="%s-%d" % (RUN, i), countdown=0))
            want.append(i + 2)
        step("publish", True, "published=%d _ms=%d task_ids=%s" % (
            len(results), (time.monotonic() - t0) * 1000, ",".join(r.id for r in results)))
    except Exception as e:  # noqa: BLE001
        step("publish", False, "published=%d error=%r" % (len(results), e))
        return 1

    if not work(results, want):
        return 1
    return close_step(app.close, "")


if __name__ == "__main__":
    sys.exit(main())
