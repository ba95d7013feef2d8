#!/usr/bin/python3
"""record_sessions.py - record the bytes real AMQP clients send to hopper,
for the fuzz_conn seed corpus (tests/fuzz/corpus/conn/).

Starts build/hopper on a free port (config/hopper.yaml with listen.port
changed) in front of the running Kafka cluster (contrib/kafka/cluster.sh
start), puts a logging TCP proxy in front of it, runs each client scenario
through the proxy and writes what the client sent (client -> server bytes
only, the whole connection) to OUT/<scenario>. Each file gets the two
fuzz_conn control bytes in front (see tests/fuzz/README.md): 0x01 0x00,
i.e. one frame at a time, as the client sent them, and every message
acked.

Usage: tests/fuzz/record/record_sessions.py OUTDIR [AMQPLIB_DIR]
  AMQPLIB_DIR: a directory with node_modules/amqplib (npm install amqplib);
  without it the amqplib scenarios are skipped.
Run with Debian's python3 (python3-pika, python3-kombu)."""

import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    """Accepts on a port, forwards to hopper, logs client->server bytes of
    the connection in progress into self.sessions (one bytes object per
    accepted connection, in order)."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.sessions = []
        self.lock = threading.Lock()
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                cli, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream))
            with self.lock:
                idx = len(self.sessions)
                self.sessions.append(bytearray())
            threading.Thread(target=self.pipe, args=(cli, up, idx), daemon=True).start()
            threading.Thread(target=self.pipe, args=(up, cli, None), daemon=True).start()

    def pipe(self, src, dst, idx):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if idx is not None:
                    with self.lock:
                        self.sessions[idx] += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def take(self):
        """Wait until the connections went quiet, then return and reset."""
        time.sleep(0.5)
        with self.lock:
            s, self.sessions = self.sessions, []
        return [bytes(x) for x in s]


def start_hopper(tmp, port):
    text = (REPO / "config" / "hopper.yaml").read_text()
    text = re.sub(r"(?m)^(\s*port:\s*)\d+", r"\g<1>%d" % port, text)
    # The sessions publish to topics of their own (fuzz-*): any may be made.
    text = re.sub(r"(?m)^(\s*)auto_create_topics:\n(\1\s+- .*\n)*", r"\g<1>auto_create_topics: true\n", text)
    cfg = Path(tmp) / "hopper.yaml"
    cfg.write_text(text)
    log = open(Path(tmp) / "hopper.log", "w")
    p = subprocess.Popen([str(REPO / "build" / "hopper"), "-c", str(cfg)], stdout=log, stderr=log)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p
        except OSError:
            time.sleep(0.1)
    p.kill()
    raise SystemExit("hopper did not come up; see %s" % (Path(tmp) / "hopper.log"))


# ---- client scenarios -------------------------------------------------------


def pika_confirm(port):
    import pika

    params = pika.ConnectionParameters("127.0.0.1", port, credentials=pika.PlainCredentials("guest", "guest"))
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare("fuzz-x", exchange_type="topic", durable=True)
    # Named queues: a server-named one gets a random name, which a replay
    # against a fresh server would not know. One server-named declare stays.
    ch.queue_declare("", exclusive=True)
    ch.queue_declare("fuzz-q-pika", exclusive=True, arguments={"x-message-ttl": 60000, "x-queue-type": "classic"})
    ch.queue_bind("fuzz-q-pika", "fuzz-x", routing_key="a.#")
    props = pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=2,
        priority=3,
        correlation_id="c-1",
        reply_to="amq.rabbitmq.reply-to",
        expiration="60000",
        message_id="m-1",
        timestamp=1700000000,
        type="order.created",
        user_id="guest",
        app_id="fuzz",
        headers={
            "str": "v",
            "int": 42,
            "neg": -7,
            "big": 2**40,
            "dec": __import__("decimal").Decimal("12.34"),
            "bool": True,
            "none": None,
            "list": [1, "two", [3, {"four": 4}]],
            "nested": {"a": {"b": {"c": {"d": "deep"}}}},
            "bytes": b"\x00\xff",
        },
    )
    ch.basic_publish("fuzz-x", "a.b.c", b'{"n": 1}', props)
    ch.basic_publish("fuzz-x", "a.b", b"x" * 300, pika.BasicProperties(delivery_mode=2))
    ch.basic_publish("", "fuzz-q", b"to the default exchange")
    try:
        ch.basic_publish("fuzz-x", "zzz", b"", mandatory=True)
    except pika.exceptions.UnroutableError:
        pass
    ch.close()
    conn.close()


def pika_plain(port):
    """No confirms, two channels, a channel closed by the server (404)."""
    import pika

    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    ch2 = conn.channel()
    ch.basic_qos(prefetch_count=10)
    ch.exchange_declare("fuzz-fan", exchange_type="fanout")
    ch.basic_publish("fuzz-fan", "", b"fanout body")
    ch2.basic_publish("events", "k.1", b"to a configured exchange")
    try:
        ch2.exchange_declare("fuzz-fan", exchange_type="direct")
    except pika.exceptions.ChannelClosedByBroker:
        pass
    try:
        ch.basic_publish("no-such-exchange", "k", b"x")
        ch.exchange_declare("fuzz-fan", exchange_type="fanout", passive=True)
    except pika.exceptions.ChannelClosedByBroker:
        pass
    conn.close()


def kombu_confirm(port):
    from kombu import Connection, Exchange, Producer, Queue

    with Connection("amqp://guest:guest@127.0.0.1:%d//" % port, transport_options={"confirm_publish": True}) as conn:
        ex = Exchange("celery", type="direct", durable=True)
        q = Queue("celery", ex, routing_key="celery")
        producer = Producer(conn.channel(), exchange=ex, routing_key="celery")
        q.declare(channel=producer.channel)
        for i in range(3):
            producer.publish(
                {"task": "tasks.add", "args": [i, i + 1], "kwargs": {}},
                serializer="json",
                headers={"lang": "py", "task": "tasks.add", "id": "id-%d" % i, "retries": 0, "eta": None,
                         "argsrepr": "(%d,)" % i, "timelimit": [None, None], "root_id": None},
                declare=[q],
                retry=False,
            )


def kombu_amqplain(port):
    """py-amqp with the AMQPLAIN mechanism (field table login response)."""
    import amqp

    conn = amqp.Connection("127.0.0.1:%d" % port, userid="guest", password="guest", login_method="AMQPLAIN",
                           confirm_publish=True)
    conn.connect()
    ch = conn.channel()
    ch.exchange_declare("fuzz-amqplain", "topic", durable=False, auto_delete=True)
    ch.basic_publish(amqp.Message(b"hello", application_headers={"x-n": 1, "x-arr": [1, 2]}), "fuzz-amqplain", "r.k")
    ch.close()
    conn.close()


AMQPLIB_JS = r"""
const amqp = require('amqplib');
(async () => {
  const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:' + process.argv[2]);
  const ch = await conn.createConfirmChannel();
  await ch.assertExchange('fuzz-js', 'topic', {durable: true});
  const q = await ch.assertQueue('fuzz-q-js', {exclusive: true, arguments: {'x-max-length': 10}});
  await ch.bindQueue(q.queue, 'fuzz-js', '#', {'x-match': 'any'});
  ch.publish('fuzz-js', 'js.1', Buffer.from('from amqplib'), {
    contentType: 'text/plain', persistent: true, messageId: 'js-1', timestamp: 1700000000,
    headers: {n: 1, f: 2.5, s: 'str', b: false, arr: [1, 'a', {x: 1}], t: {deep: {er: [true]}}},
  });
  ch.publish('fuzz-js', 'js.2', Buffer.alloc(5000, 0x61));
  await ch.waitForConfirms();
  await ch.close();
  await conn.close();
})().catch((e) => { console.error(e); process.exit(1); });
"""


def amqplib_confirm(port, amqplib_dir):
    script = Path(amqplib_dir) / "record_amqplib.js"
    script.write_text(AMQPLIB_JS)
    subprocess.run(["node", str(script), str(port)], cwd=amqplib_dir, check=True, timeout=60)


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    out = Path(sys.argv[1])
    amqplib_dir = sys.argv[2] if len(sys.argv) > 2 else None
    out.mkdir(parents=True, exist_ok=True)
    scenarios = [
        ("pika-confirm", pika_confirm),
        ("pika-plain", pika_plain),
        ("kombu-confirm", kombu_confirm),
        ("pyamqp-amqplain", kombu_amqplain),
    ]
    if amqplib_dir:
        scenarios.append(("amqplib-confirm", lambda port: amqplib_confirm(port, amqplib_dir)))
    with tempfile.TemporaryDirectory() as tmp:
        hport = free_port()
        hopper = start_hopper(tmp, hport)
        try:
            proxy = Proxy(hport)
            for name, fn in scenarios:
                try:
                    fn(proxy.port)
                except Exception:
                    sys.stderr.write((Path(tmp) / "hopper.log").read_text()[-3000:])
                    raise
                for i, data in enumerate(proxy.take()):
                    path = out / (name if i == 0 else "%s-%d" % (name, i))
                    path.write_bytes(b"\x01\x00" + data)
                    print("%s: %d bytes" % (path, len(data)))
        finally:
            hopper.terminate()
            hopper.wait(timeout=30)


if __name__ == "__main__":
    main()
