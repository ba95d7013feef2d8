"""Unmodified AMQP clients publish through hopper and are confirmed; the
records read back from Kafka match what they sent."""

import json
import subprocess
from collections import defaultdict

import pika

from pikautil import connect

N_MESSAGES = 200
KEYS = ["orders.eu", "orders.us", "payments.eu", "payments.us"]


def test_pika_declares_then_publishes_200_confirmed(hopper, kafka, uid):
    exchange = "pika-" + uid
    with connect(hopper.url) as conn:
        ch = conn.channel()
        # Clients that declare their topology before publishing must work.
        ch.exchange_declare(exchange, exchange_type="topic", durable=True)
        q = ch.queue_declare("q-" + uid, durable=True)
        assert q.method.queue == "q-" + uid
        ch.queue_bind(q.method.queue, exchange, routing_key="orders.#")
        anon = ch.queue_declare("", exclusive=True)
        assert anon.method.queue, "queue.declare with an empty name must generate one"
        ch.confirm_delivery()
        for i in range(N_MESSAGES):
            key = KEYS[i % len(KEYS)]
            body = ("%s:%d" % (key, i)).encode()
            # BlockingChannel waits for the confirm; a nack raises NackError.
            ch.basic_publish(exchange, key, body, pika.BasicProperties(message_id=str(i)))

    # Default route: exchange E -> topic E, key = routing key.
    recs = kafka.read_exactly(exchange, N_MESSAGES, timeout=60)
    assert kafka.count(exchange) == N_MESSAGES, "duplicates or extra records in %s" % exchange
    seen = defaultdict(list)
    for r in recs:
        key = r.key.decode()
        prefix, _, idx = r.value.decode().partition(":")
        assert prefix == key, r
        assert r.header("amqp.message_id") == idx
        assert r.header("amqp.exchange") == exchange
        assert r.header("amqp.routing_key") == key
        seen[key].append(int(idx))
    assert sorted(i for v in seen.values() for i in v) == list(range(N_MESSAGES))
    for key, idxs in seen.items():
        # One key lives in one partition, in publish order.
        assert len({r.partition for r in recs if r.key == key.encode()}) == 1, key
        assert idxs == sorted(idxs), "order of key %s not preserved: %r" % (key, idxs)
        assert idxs == list(range(KEYS.index(key), N_MESSAGES, len(KEYS)))


def test_amqp_publish_cli(hopper_factory, kafka, uid):
    exchange = "cli-" + uid
    h = hopper_factory({"exchanges": [{"name": exchange, "type": "direct", "vhost": "/"}]})
    body = "hello from amqp-tools " + uid
    r = subprocess.run(
        [
            "amqp-publish",
            "-u",
            "amqp://guest:guest@127.0.0.1:%d" % h.port,
            "-e",
            exchange,
            "-r",
            "cli.key",
            "-b",
            body,
            "-C",
            "text/plain",
            "-H",
            "x-origin: amqp-tools",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, "amqp-publish failed (%d): %s %s\n%s" % (r.returncode, r.stdout, r.stderr, h.log_tail())

    # amqp-publish does not ask for confirms: the record shows up shortly after.
    [rec] = kafka.read_exactly(exchange, 1, timeout=30)
    assert rec.value == body.encode()
    assert rec.key == b"cli.key"
    assert rec.header("amqp.content_type") == "text/plain"
    assert rec.header("x-origin") == "amqp-tools"
    assert rec.header("amqp.exchange") == exchange
    assert rec.header("amqp.routing_key") == "cli.key"


def test_kombu_producer_json_confirmed(hopper, kafka, uid):
    from kombu import Connection, Exchange

    exchange = Exchange("kombu-" + uid, type="direct", durable=True)
    payload = {"id": uid, "items": [1, 2, 3], "ok": True, "name": "Zoë"}
    with Connection(
        "amqp://guest:guest@127.0.0.1:%d//" % hopper.port,
        transport_options={"confirm_publish": True},
        connect_timeout=10,
    ) as conn:
        producer = conn.Producer()
        # With confirm_publish, publish() returns only after the ack (py-amqp
        # raises on a nack).
        producer.publish(
            payload,
            exchange=exchange,
            routing_key="kombu.key",
            serializer="json",
            declare=[exchange],
            retry=False,
        )

    [rec] = kafka.read_exactly(exchange.name, 1, timeout=30)
    assert rec.header("amqp.content_type") == "application/json"
    assert rec.header("amqp.content_encoding") == "utf-8"
    assert json.loads(rec.value.decode("utf-8")) == payload
    assert rec.key == b"kombu.key"
    assert rec.header("amqp.exchange") == exchange.name
