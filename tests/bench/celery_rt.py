"""celery_rt.py - the Celery round trip of tests/bench (bench.py's celery
phase): the app, its one task, and the client that times it.

    celery -A celery_rt worker -c 4 ...          the worker (prefork)
    python celery_rt.py client --seq N --conc M --total T

Run with tests/bench on PYTHONPATH and, for both, BENCH_CELERY_BROKER (an
amqp:// URL) and BENCH_CELERY_QUEUE. The task queue is the named one,
durable, behind a direct exchange of the same name (Celery's defaults with
another name: on hopper a Kafka consumer group); results come back through
the rpc:// backend: the client's own queue, not durable and auto-delete
(in memory on hopper), to which the worker publishes on the default
exchange.

The client prints "ready S" once the first task came back (the worker is
up: S seconds of waiting), then one JSON line: the sequential round trips
(apply_async, then result.get(), N times in a row) and the concurrent run
(T tasks, M in flight: when the oldest comes back, one more is sent). A
task that does not come back within --timeout seconds ends the run with
"error" naming it."""
import argparse
import collections
import json
import math
import os
import sys
import time

from celery import Celery

QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "bench-celery")

app = Celery("celery_rt", broker=os.environ.get("BENCH_CELERY_BROKER", "amqp://"),
             backend="rpc://")
app.conf.update(
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    # Celery's defaults otherwise: JSON, protocol 2, no publisher confirms,
    # ack on receipt, prefetch multiplier 4 (16 for -c 4).
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.add")
def add(x, y):
    return x + y


def pct(v, q):
    """The q-quantile of sorted v (nearest rank), in ms."""
    if not v:
        return None
    i = min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))
    return round(v[i] * 1000.0, 3)


def summary(v):
    v = sorted(v)
    return {"n": len(v), "p50": pct(v, 0.50), "p95": pct(v, 0.95), "p99": pct(v, 0.99),
            "max": pct(v, 1.0), "mean": round(1000.0 * sum(v) / len(v), 3) if v else None}


def client(args):
    out = {"mode": "celery-client", "seq": args.seq, "conc": args.conc, "total": args.total,
           "error": None}
    t0 = time.monotonic()
    # The worker is up once a task comes back (its queue declared, consuming).
    first = add.apply_async((0, 0))
    try:
        first.get(timeout=args.ready_timeout)
    except Exception as e:  # noqa: BLE001 - the finding is what failed
        out["error"] = "first task %s did not come back in %ss: %r" % (
            first.id, args.ready_timeout, e)
        print(json.dumps(out), flush=True)
        return 1
    print("ready %.3f" % (time.monotonic() - t0), flush=True)
    for _ in range(args.warmup):
        add.apply_async((1, 1)).get(timeout=args.timeout)

    rtt = []
    done = 0
    try:
        t1 = time.monotonic()
        for i in range(args.seq):
            s = time.monotonic()
            r = add.apply_async((i, 1))
            if r.get(timeout=args.timeout) != i + 1:
                raise RuntimeError("task %s: wrong result" % r.id)
            rtt.append(time.monotonic() - s)
        out["seq_s"] = round(time.monotonic() - t1, 3)
        inflight = collections.deque()
        sent = 0
        t2 = time.monotonic()
        while done < args.total:
            while len(inflight) < args.conc and sent < args.total:
                inflight.append((sent, add.apply_async((sent, 2))))
                sent += 1
            i, r = inflight.popleft()
            if r.get(timeout=args.timeout) != i + 2:
                raise RuntimeError("task %s: wrong result" % r.id)
            done += 1
        out["conc_s"] = round(time.monotonic() - t2, 3)
        out["tasks_per_s"] = round(args.total / out["conc_s"], 1)
    except Exception as e:  # noqa: BLE001
        tid = r.id if "r" in locals() else "?"
        out["error"] = "task %s did not complete: %r (after %d sequential, %d concurrent)" % (
            tid, e, len(rtt), done)
    out["rtt_ms"] = summary(rtt)
    out["conc_done"] = done
    print(json.dumps(out), flush=True)
    return 1 if out["error"] else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("client",))
    ap.add_argument("--seq", type=int, default=2000, help="sequential round trips")
    ap.add_argument("--conc", type=int, default=32, help="tasks in flight")
    ap.add_argument("--total", type=int, default=5000, help="tasks in the concurrent run")
    ap.add_argument("--warmup", type=int, default=20, help="unmeasured round trips first")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per task")
    ap.add_argument("--ready-timeout", type=float, default=90.0,
                    help="seconds for the first task (the worker starting)")
    args = ap.parse_args()
    return client(args)


if __name__ == "__main__":
    sys.exit(main())
