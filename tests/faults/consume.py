#!/usr/bin/python3
"""consume.py - a consumer of the fault tests' task-queue scenarios.

Declares the durable queue --queue, binds it to --exchange with "#" (the
publisher load's exchange), and consumes it with manual acks and
--prefetch, acking with `multiple` every --ack-every messages (and
whatever is left after 0.2 s without a delivery), so that it always holds
some unacked messages, as a worker busy with a batch does. Each delivery
is logged before its ack is sent, so a message acked to hopper is always
in the log (the converse does not hold: a consumer killed between the
two is redelivered the message, which the verifier counts as a
duplicate).

The message id is the body's first word (load.py's "<id> <key> <seq> ").
Reconnects (every 0.5 s) when hopper goes away, until stopped.

Output in --out:
  deliveries.tsv  id redelivered t gen   (gen counts connections)
  ready           written once the first consume is set up
  events.jsonl    connects and losses

Stops on SIGUSR1 or SIGTERM: cancels, closes, exit 0."""

import argparse
import json
import signal
import time
from pathlib import Path

import pika
import pika.exceptions

LOST = (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError, ConnectionError, OSError)


class Consumer:
    def __init__(self, a):
        self.a = a
        self.out = Path(a.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.log = open(self.out / "deliveries.tsv", "a", buffering=1)
        self.events = open(self.out / "events.jsonl", "a", buffering=1)
        self.stopping = False
        self.gen = 0
        self.delivered = 0
        self.unacked = 0  # deliveries logged, not acked yet (this connection)
        self.last_tag = 0

    def event(self, kind, **kw):
        self.events.write(json.dumps(dict(kw, event=kind, t=time.time())) + "\n")

    def on_message(self, ch, method, props, body):
        mid = body.split(b" ", 1)[0].decode(errors="replace")
        # Line-buffered: the write reaches the kernel before the ack is
        # sent, so a SIGKILL after it loses nothing that was acked.
        self.log.write("%s\t%d\t%.6f\t%d\n" % (mid, int(method.redelivered), time.time(), self.gen))
        self.delivered += 1
        self.unacked += 1
        self.last_tag = method.delivery_tag
        if self.unacked >= self.a.ack_every:
            self.ack(ch)

    def ack(self, ch):
        if self.unacked:
            ch.basic_ack(self.last_tag, multiple=True)
            self.unacked = 0

    def session(self):
        params = pika.ConnectionParameters(
            self.a.host,
            self.a.port,
            credentials=pika.PlainCredentials(self.a.user, self.a.password),
            heartbeat=10,
            blocked_connection_timeout=None,
            socket_timeout=5,
        )
        conn = pika.BlockingConnection(params)
        self.gen += 1
        self.event("connected", gen=self.gen)
        try:
            ch = conn.channel()
            ch.queue_declare(self.a.queue, durable=True)
            ch.queue_bind(self.a.queue, self.a.exchange, "#")
            ch.basic_qos(prefetch_count=self.a.prefetch)
            ch.basic_consume(self.a.queue, self.on_message)
            self.unacked = 0
            (self.out / "ready").touch()
            while not self.stopping:
                before = self.delivered
                conn.process_data_events(0.2)
                if self.delivered == before:
                    self.ack(ch)
            self.ack(ch)
        finally:
            if conn.is_open:
                try:
                    conn.close()
                except LOST:
                    pass

    def run(self):
        while not self.stopping:
            try:
                self.session()
            except LOST as e:
                self.event("lost", gen=self.gen, why=repr(e)[:200])
                if not self.stopping:
                    time.sleep(0.5)
        self.event("stopped", delivered=self.delivered)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=5672)
    p.add_argument("--user", default="guest")
    p.add_argument("--password", default="guest")
    p.add_argument("--queue", required=True)
    p.add_argument("--exchange", default="load")
    p.add_argument("--prefetch", type=int, default=100)
    p.add_argument("--ack-every", type=int, default=50)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    c = Consumer(a)

    def stop(signum, frame):
        c.stopping = True

    signal.signal(signal.SIGUSR1, stop)
    signal.signal(signal.SIGTERM, stop)
    c.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
