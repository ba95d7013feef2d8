"""Routing contract: routes override the default route; with the default
route off, a publish no route matches is unroutable."""

import pika
import pytest

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


def java_murmur2(data):
    """org.apache.kafka.common.utils.Utils.murmur2, as an unsigned 32-bit value."""
    m, length = 0x5BD1E995, len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length & ~3
    rest = length % 4
    if rest >= 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def test_java_murmur2_oracle_matches_kafkas_own_vectors():
    # From Kafka's UtilsTest.testMurmur2 (signed 32-bit there).
    vectors = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
               b"a-little-bit-longer-string": -1486304829, b"abc": 479470107}
    for data, signed in vectors.items():
        assert java_murmur2(data) == signed & 0xFFFFFFFF, data


def test_keyed_records_land_in_the_java_clients_partition(hopper, kafka, uid):
    """hopper picks partitions itself (the partition gate in sink.c): a key
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
        assert r.partition == (java_murmur2(r.key) & 0x7FFFFFFF) % n, r.key
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
