"""The seed's acceptance story: given the 3-node cluster, a message published
through hopper to exchange `events` is confirmed, and a Kafka consumer reads
it back from events-topic with value and headers intact."""

import json
import time

import pika

from pikautil import connect

HEADERS = {
    "x-text": "héllo wörld",
    "x-int": 42,
    "x-negative": -7,
    "x-big": 2**40,
    "x-true": True,
    "x-false": False,
    "x-list": [1, "two", True, None],
    # JSON must stay valid whatever the strings hold.
    "x-table": {"k": "v", "n": 3, "inner": {"deep": False}, "esc": 'q"b\\s/\n\t\x01é'},
}


def test_publish_confirmed_and_archived_with_headers(hopper, kafka, uid):
    topic = "events-topic"
    routing_key = "order.created." + uid
    body = b'\x00\xff{"order": 1}\r\n\xce' + uid.encode()
    stamp = int(time.time())
    props = pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        headers=HEADERS,
        delivery_mode=2,
        priority=5,
        correlation_id="corr-" + uid,
        reply_to="replies",
        expiration="60000",
        message_id="msg-" + uid,
        timestamp=stamp,
        type="order.created",
        user_id="guest",
        app_id="hopper-it",
    )
    start = kafka.end_offsets(topic)

    with connect(hopper.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        # Raises NackError/UnroutableError unless hopper acked it.
        ch.basic_publish("events", routing_key, body, props, mandatory=True)

    [rec] = kafka.read_exactly(topic, 1, start=start, match=lambda r: r.key == routing_key.encode())
    assert rec.value == body
    assert rec.key == routing_key.encode()

    expected_text = {
        "amqp.exchange": "events",
        "amqp.routing_key": routing_key,
        "amqp.content_type": "application/json",
        "amqp.content_encoding": "utf-8",
        "amqp.delivery_mode": "2",
        "amqp.priority": "5",
        "amqp.correlation_id": "corr-" + uid,
        "amqp.reply_to": "replies",
        "amqp.expiration": "60000",
        "amqp.message_id": "msg-" + uid,
        "amqp.timestamp": str(stamp),
        "amqp.type": "order.created",
        "amqp.user_id": "guest",
        "amqp.app_id": "hopper-it",
        "x-text": "héllo wörld",
        "x-int": "42",
        "x-negative": "-7",
        "x-big": str(2**40),
        "x-true": "true",
        "x-false": "false",
    }
    for name, want in expected_text.items():
        assert rec.header(name) == want, "header %s: %r != %r (all: %r)" % (name, rec.header(name), want, rec.header_list)
    # Arrays and tables are JSON; spacing is not part of the contract.
    assert json.loads(rec.header("x-list")) == HEADERS["x-list"]
    assert json.loads(rec.header("x-table")) == HEADERS["x-table"]

    # Nothing set -> no header; each header once.
    assert "amqp.cluster_id" not in rec.headers
    names = [n for n, _ in rec.header_list]
    assert len(names) == len(set(names)), names
    assert set(names) == set(expected_text) | {"x-list", "x-table", "amqp.properties"}

    # amqp.properties: the property bytes exactly as pika encoded them.
    raw = rec.headers["amqp.properties"]
    assert raw == b"".join(props.encode())
    decoded = pika.BasicProperties()
    decoded.decode(raw)
    for attr in (
        "content_type",
        "content_encoding",
        "headers",
        "delivery_mode",
        "priority",
        "correlation_id",
        "reply_to",
        "expiration",
        "message_id",
        "timestamp",
        "type",
        "user_id",
        "app_id",
    ):
        assert getattr(decoded, attr) == getattr(props, attr), attr
