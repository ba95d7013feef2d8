"""The durable topology kept in Kafka (README, "Task queues": what is kept
and where; topostore.h): durable exchanges, durable queues and their
bindings outlive a restart and reach every hopper reading the same
topology topic; deletions too; transient ones are not kept; a record that
is not hopper's is skipped. pika against real hoppers and the real
cluster; confluent-kafka writes into the topic as anyone with access
could. Each test has a topology topic of its own."""

import time

import pika
import pytest
from confluent_kafka import Producer

from hopperproc import scaled
from kafkaread import KafkaReader
from pikautil import connect

# Generous: two cores shared with other clusters.
LEARN_TIMEOUT = 30.0


def rabbit(uid):
    return {"rabbit": {"enabled": True, "commit_interval": 50, "topology_topic": "_topo-" + uid}}


def consume(ch, queue, n, timeout=30.0):
    """Up to n bodies from queue, acked, within timeout."""
    out = []
    deadline = time.monotonic() + scaled(timeout)
    for method, _, body in ch.consume(queue, inactivity_timeout=0.5):
        if method is not None:
            out.append(body)
            ch.basic_ack(method.delivery_tag)
        if len(out) >= n or time.monotonic() > deadline:
            break
    ch.cancel()
    return out


def exists(conn, kind, name):
    """Whether a passive declare of the exchange or queue succeeds (a 404
    closes the channel it was tried on)."""
    ch = conn.channel()
    try:
        if kind == "exchange":
            ch.exchange_declare(name, passive=True)
        else:
            ch.queue_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404, e
        return False
    ch.close()
    return True


def wait_until(pred, what, timeout=LEARN_TIMEOUT):
    deadline = time.monotonic() + scaled(timeout)
    while not pred():
        if time.monotonic() >= deadline:
            raise AssertionError("not within %.0fs: %s" % (scaled(timeout), what))
        time.sleep(0.2)


def records(bootstrap, topic):
    """Every record of the topology topic, in order."""
    reader = KafkaReader(bootstrap)
    return reader.read(topic, reader.count(topic))


def publish(ch, exchange, routing_key, body):
    ch.basic_publish(exchange, routing_key, body, pika.BasicProperties(delivery_mode=2))


def test_exchange_queue_and_binding_survive_a_restart(hopper_factory, kafka_cluster, uid):
    cfg = rabbit(uid)
    x, q = "orders-" + uid, "billing-" + uid
    h = hopper_factory(cfg)
    with connect(h.url) as conn:
        ch = conn.channel()
        for _ in range(2):  # declared again, identical: nothing more is written
            ch.exchange_declare(x, "topic", durable=True)
            ch.queue_declare(q, durable=True, arguments={"x-dead-letter-exchange": "dlx"})
            ch.queue_bind(q, x, "order.*")
    recs = records(kafka_cluster, cfg["rabbit"]["topology_topic"])
    assert [r.key for r in recs] == [
        b"E/\0" + x.encode(),
        b"Q/\0" + q.encode(),
        b"B/\0" + q.encode() + b"\0" + x.encode() + b"\0order.*\0",
    ], recs
    assert all(r.value for r in recs)
    h.stop()

    h2 = hopper_factory(cfg)
    with connect(h2.url) as conn:
        ch = conn.channel()
        # What a client re-declares identically after the restart is there,
        # arguments included (else this would be 406).
        ch.queue_declare(q, durable=True, arguments={"x-dead-letter-exchange": "dlx"})
        ch.confirm_delivery()
        publish(ch, x, "order.new", b"hello")
        assert consume(ch, q, 1) == [b"hello"]
    assert "records applied" in h2.log_text()


def test_a_second_hopper_learns_what_the_first_declared(hopper_factory, uid):
    cfg = rabbit(uid)
    x, q = "fan-" + uid, "work-" + uid
    a = hopper_factory(cfg)
    b = hopper_factory(cfg)
    with connect(a.url) as ca, connect(b.url) as cb:
        cha = ca.channel()
        cha.exchange_declare(x, "direct", durable=True)
        cha.queue_declare(q, durable=True)
        cha.queue_bind(q, x, "job")
        wait_until(lambda: exists(cb, "queue", q), "hopper B knows queue %s" % q)
        # The binding is the last record; B has it once it routes through it.
        chb = cb.channel()
        cha.confirm_delivery()
        publish(cha, x, "job", b"from-a")
        assert consume(chb, q, 1) == [b"from-a"]
        # And B takes publishes to the exchange it never declared.
        chb.confirm_delivery()
        publish(chb, x, "job", b"from-b")
        assert consume(chb, q, 1) == [b"from-b"]


def test_queue_delete_elsewhere_cancels_consumers_and_stays_deleted(hopper_factory, uid):
    cfg = rabbit(uid)
    q = "gone-" + uid
    a = hopper_factory(cfg)
    b = hopper_factory(cfg)
    cancelled = []
    with connect(a.url) as ca:
        ca.channel().queue_declare(q, durable=True)
        with connect(b.url) as cb:
            wait_until(lambda: exists(cb, "queue", q), "hopper B knows queue %s" % q)
            chb = cb.channel()
            chb.add_on_cancel_callback(lambda frame: cancelled.append(frame))
            chb.basic_consume(q, lambda *a: None)
            ca.channel().queue_delete(q)
            deadline = time.monotonic() + scaled(LEARN_TIMEOUT)
            while not cancelled and time.monotonic() < deadline:
                cb.process_data_events(0.2)
            assert cancelled, "no basic.cancel on hopper B after queue.delete on A"
            assert not exists(cb, "queue", q)
    # The group goes, deleted by the hopper that deleted the queue only: B
    # read a tombstone, which may come after the queue was declared again.
    a.wait_for_log("deleted with its queue", timeout=LEARN_TIMEOUT)
    assert "deleted with its queue" not in b.log_text()
    b.stop()
    b2 = hopper_factory(cfg)
    with connect(b2.url) as conn:
        assert not exists(conn, "queue", q)


def test_transient_entities_are_not_kept(hopper_factory, kafka_cluster, uid):
    cfg = rabbit(uid)
    h = hopper_factory(cfg)
    kept = "kept-" + uid
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.queue_declare("excl-" + uid, durable=True, exclusive=True)
        ch.queue_declare("autodel-" + uid, durable=True, auto_delete=True)
        ch.queue_declare("transient-" + uid, durable=False)
        named = ch.queue_declare("", durable=True).method.queue
        assert named.startswith("amq.gen-")
        ch.exchange_declare("tx-" + uid, "fanout", durable=False)
        # A binding of a kept queue to a transient exchange is not kept.
        ch.queue_declare(kept, durable=True)
        ch.queue_bind(kept, "tx-" + uid, "")
    assert [r.key for r in records(kafka_cluster, cfg["rabbit"]["topology_topic"])] == [
        b"Q/\0" + kept.encode()
    ]
    h.stop()
    h2 = hopper_factory(cfg)
    with connect(h2.url) as conn:
        assert exists(conn, "queue", kept)
        for q in ["excl-" + uid, "autodel-" + uid, "transient-" + uid, named]:
            assert not exists(conn, "queue", q), q
        assert not exists(conn, "exchange", "tx-" + uid)


def test_a_record_that_is_not_hoppers_is_skipped(hopper_factory, kafka_cluster, uid):
    cfg = rabbit(uid)
    topic = cfg["rabbit"]["topology_topic"]
    h = hopper_factory(cfg)
    before, after = "before-" + uid, "after-" + uid
    with connect(h.url) as conn:
        conn.channel().queue_declare(before, durable=True)
        # (A compacted topic refuses records without a key: Kafka keeps
        # those out.)
        p = Producer({"bootstrap.servers": kafka_cluster, "acks": "all"})
        failed = []
        report = lambda err, msg: err and failed.append(err)  # noqa: E731
        p.produce(topic, key=b"Q/\0forged-" + uid.encode(), value=b"not a field table", on_delivery=report)
        p.produce(topic, key=b"\xffjunk", value=b"\x00\x00\x00\x05ab", on_delivery=report)
        bad_args = b"B/\0" + before.encode() + b"\0x\0rk\0\x00\x00\x01\x00"
        p.produce(topic, key=bad_args, value=None, on_delivery=report)
        v2 = b"\x00\x00\x00\x08\x01vI\x00\x00\x00\x02"  # {"v": 2}: a later format
        p.produce(topic, key=b"Q/\0later-" + uid.encode(), value=v2, on_delivery=report)
        assert p.flush(30) == 0 and not failed, failed
        h.wait_for_log("record skipped", timeout=LEARN_TIMEOUT)
        conn.channel().queue_declare(after, durable=True)
        assert exists(conn, "queue", before)
    h.stop()
    log = h.log_text()
    assert log.count("record skipped") == 4, log
    h2 = hopper_factory(cfg)
    with connect(h2.url) as conn:
        assert exists(conn, "queue", before) and exists(conn, "queue", after)
        assert not exists(conn, "queue", "forged-" + uid)
        ch = conn.channel()
        ch.confirm_delivery()
        publish(ch, "", after, b"served")
        assert consume(ch, after, 1) == [b"served"]
    assert h2.log_text().count("record skipped") == 4


def test_unbind_and_exchange_delete_survive_a_restart(hopper_factory, uid):
    cfg = rabbit(uid)
    x1, x2, q = "keep-" + uid, "drop-" + uid, "q-" + uid
    h = hopper_factory(cfg)
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.exchange_declare(x1, "direct", durable=True)
        ch.exchange_declare(x2, "direct", durable=True)
        ch.queue_declare(q, durable=True)
        ch.queue_bind(q, x1, "k")
        ch.queue_bind(q, x1, "stays")
        ch.queue_bind(q, x2, "k")
        ch.queue_unbind(q, x1, "k")
        ch.exchange_delete(x2)
    h.stop()
    h2 = hopper_factory(cfg)
    with connect(h2.url) as conn:
        assert exists(conn, "exchange", x1)
        assert not exists(conn, "exchange", x2)
        ch = conn.channel()
        ch.confirm_delivery()
        publish(ch, x1, "k", b"unbound")
        publish(ch, x1, "stays", b"bound")
        assert consume(ch, q, 2, timeout=8) == [b"bound"]
        # Bound again, the binding is new: it writes and counts again.
        ch.queue_bind(q, x1, "k")
    h2.stop()
    h3 = hopper_factory(cfg)
    with connect(h3.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        publish(ch, x1, "k", b"rebound")
        assert consume(ch, q, 1) == [b"rebound"]


def test_startup_waits_for_the_topology_only_until_its_deadline(hopper_factory, uid):
    """A topology topic that cannot be read (its replication factor is
    more than the cluster has brokers, so it is never created): hopper
    says so, starts accepting at the deadline, and serves."""
    cfg = rabbit(uid)
    cfg["rabbit"]["topology_load_timeout"] = 1000
    cfg["kafka"] = {"replication_factor": 5, "min_insync_replicas": 1}
    h = hopper_factory(cfg)
    h.wait_for_log("not read to its end after 1000 ms")
    with connect(h.url) as conn:
        assert exists(conn, "exchange", "amq.topic")
    assert "cannot create topic _topo-" + uid in h.log_text()


@pytest.mark.parametrize("enabled", [False])
def test_without_task_queues_nothing_is_kept(hopper_factory, kafka_cluster, uid, enabled):
    cfg = rabbit(uid)
    cfg["rabbit"]["enabled"] = enabled
    h = hopper_factory(cfg)
    with connect(h.url) as conn:
        conn.channel().exchange_declare("x-" + uid, "topic", durable=True)
    assert not KafkaReader(kafka_cluster).topic_exists(cfg["rabbit"]["topology_topic"])
    assert "topology" not in h.log_text()
