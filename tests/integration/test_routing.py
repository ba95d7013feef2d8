"""Routing contract: routes override the default route; with the default
route off, a publish no route matches is unroutable."""

import pika
import pytest

from partitioner import partition_for
from pikautil import connect


def test_mandatory_unroutable_is_returned_then_acked(hopper_factory, kafka, uid):
    exchange = "noroute-" + uid
    routed_topic = "routed-" + uid
    h = hopper_factory(
        {
            "exchanges": [{"name": exchange, "type": "direct", "vhost": "/", "default_route": False}],
            "routes": [{"exchange": exchange, "routing_key": "keep.#", "topic": routed_topic, "key": "routing_key"}],
        }
    )
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(exchange, "keep.first", b"first", mandatory=True)

        # basic.return 312 NO_ROUTE, then the ack: pika reports it this way.
        with pytest.raises(pika.exceptions.UnroutableError) as exc:
            ch.basic_publish(exchange, "lost." + uid, b"unroutable", mandatory=True)
        [returned] = exc.value.messages
        assert returned.method.reply_code == 312
        assert returned.method.reply_text == "NO_ROUTE"
        assert returned.method.exchange == exchange
        assert returned.method.routing_key == "lost." + uid
        assert returned.body == b"unroutable"
        assert ch.is_open

        # Not mandatory: acked (no exception), dropped.
        ch.basic_publish(exchange, "lost." + uid, b"dropped", mandatory=False)
        ch.basic_publish(exchange, "keep.last", b"last", mandatory=True)

    recs = kafka.read_exactly(routed_topic, 2, timeout=30)
    assert sorted(r.value for r in recs) == [b"first", b"last"]
    # The dropped publish was acked before keep.last was: had it gone to
    # the routed topic, it would be counted already.
    assert kafka.count(routed_topic) == 2
    # No default-route topic appeared for the exchange or the routing key.
    assert not kafka.topic_exists(exchange)
    assert not kafka.topic_exists("lost." + uid)


def test_default_exchange_routes_to_topic_named_by_routing_key(hopper, kafka, uid):
    topic = "direct-" + uid
    with connect(hopper.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("", topic, b"via default exchange")
    [rec] = kafka.read_exactly(topic, 1, timeout=30)
    assert rec.value == b"via default exchange"
    assert rec.key == topic.encode()
    assert rec.header("amqp.exchange") == ""
    assert rec.header("amqp.routing_key") == topic


def test_keyed_records_land_in_the_java_clients_partition(hopper, kafka, uid):
    """hopper picks partitions itself (the partition gate, gate.c): a key
    must still land where the Java client would put it."""
    exchange = "part-" + uid
    keys = ["key-%d-%s" % (i, uid) for i in range(30)]
    with connect(hopper.url) as conn:
        ch = conn.channel()
        ch.exchange_declare(exchange, exchange_type="topic", durable=True)
        ch.confirm_delivery()
        for k in keys:
            ch.basic_publish(exchange, k, k.encode())
    recs = kafka.read_exactly(exchange, len(keys), timeout=60)
    n = len(kafka.partitions(exchange))
    assert n == 3
    for r in recs:
        assert r.partition == partition_for(r.key, n), r.key
    assert len({r.partition for r in recs}) == n


def test_keyless_records_spread_over_partitions(hopper_factory, kafka, uid):
    exchange = "keyless-" + uid
    h = hopper_factory(
        {
            "exchanges": [{"name": exchange, "type": "direct", "vhost": "/", "default_route": False}],
            "routes": [{"exchange": exchange, "routing_key": "#", "topic": exchange, "key": "none"}],
        }
    )
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        for i in range(30):
            ch.basic_publish(exchange, "any", b"keyless %d" % i)
    recs = kafka.read_exactly(exchange, 30, timeout=60)
    assert all(r.key is None for r in recs)
    assert len({r.partition for r in recs}) > 1, "every keyless record went to one partition"
