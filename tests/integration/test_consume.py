"""Task queues (README, "Task queues"): with --enable-rabbit, AMQP consumers
read durable queues from Kafka through consumer groups, and an ack becomes a
committed offset. pika against the real cluster; confluent-kafka reads what
the group committed."""

import os
import re
import signal
import time
import urllib.parse

import pika
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from hopperproc import cluster
from pikautil import connect, deliveries

RABBIT = {"rabbit": {"enabled": True, "commit_interval": 50}}


def group_of(queue, vhost="/"):
    """The group hopper uses for a queue (feed.h spells it)."""
    keep = lambda s, dot: "".join(  # noqa: E731
        c if c.isalnum() or c in "_-" or (dot and c == ".") else "%%%02X" % ord(c) for c in s
    )
    return "hopper." + keep(vhost, False) + "." + keep(queue, True)


def consume(ch, queue, n, timeout=30.0, auto_ack=False):
    """Up to n deliveries from queue as (method, properties, body); the
    consumer is cancelled afterwards."""
    out = deliveries(ch, queue, n, timeout=timeout, auto_ack=auto_ack, idle=0.5)
    ch.cancel()
    return out


def committed(bootstrap, group, topic, partitions=(0, 1, 2)):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in partitions], timeout=15)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def publish(ch, queue, bodies, **props):
    for b in bodies:
        ch.basic_publish("", queue, b, pika.BasicProperties(delivery_mode=2, **props))


def test_queue_keeps_what_was_published_after_its_declaration_with_exact_properties(hopper_factory, uid):
    h = hopper_factory(RABBIT)
    q = "tasks-" + uid
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        publish(ch, q, [b"before-%d" % i for i in range(5)])  # creates the topic
        ch.queue_declare(q, durable=True)
        props = dict(
            content_type="application/json",
            headers={"n": 7, "s": "x", "nested": {"a": [1, "b"]}},
            message_id="m-1",
            correlation_id="c-1",
            priority=3,
            timestamp=1700000000,
        )
        publish(ch, q, [b'{"i": %d}' % i for i in range(10)], **props)
        got = consume(ch, q, 10)
        assert [b for _, _, b in got] == [b'{"i": %d}' % i for i in range(10)]
        for method, p, _ in got:
            assert method.exchange == "" and method.routing_key == q and not method.redelivered
            assert (p.content_type, p.message_id, p.correlation_id, p.priority, p.timestamp) == (
                "application/json",
                "m-1",
                "c-1",
                3,
                1700000000,
            )
            assert p.headers == {"n": 7, "s": "x", "nested": {"a": [1, "b"]}}
            assert p.delivery_mode == 2
        for method, _, _ in got:
            ch.basic_ack(method.delivery_tag)


def test_acks_commit_and_a_restart_redelivers_only_the_unacked(hopper_factory, kafka_cluster, uid):
    q = "acks-" + uid
    h = hopper_factory(RABBIT)
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(q, durable=True)
        publish(ch, q, [b"%d" % i for i in range(10)])
        ch.basic_qos(prefetch_count=10)
        got = {}
        for method, _, body in ch.consume(q, inactivity_timeout=0.5):
            if method is not None:
                got[body] = method.delivery_tag
            if len(got) == 10:
                break
        # Holes: 3 and 7 stay unacked.
        for b in [b"0", b"1", b"2", b"4", b"5", b"6", b"8", b"9"]:
            ch.basic_ack(got[b])
        time.sleep(0.5)  # a commit interval is 50 ms
    h.stop()
    # Everything below the first hole is committed; the rest is in metadata.
    offs = committed(kafka_cluster, group_of(q), q)
    assert max(offs.values()) == 3, offs
    h2 = hopper_factory(RABBIT)
    with connect(h2.url) as conn:
        ch = conn.channel()
        ch.queue_declare(q, durable=True)
        again = consume(ch, q, 10, timeout=10)
        assert sorted(b for _, _, b in again) == [b"3", b"7"], again
        assert all(m.redelivered for m, _, _ in again)
        for m, _, _ in again:
            ch.basic_ack(m.delivery_tag)


def test_nack_requeue_and_closing_the_channel_give_messages_back(hopper_factory, uid):
    q = "requeue-" + uid
    h = hopper_factory(RABBIT)
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(q, durable=True)
        publish(ch, q, [b"a", b"b"])
        ch.basic_qos(prefetch_count=1)
        (m1, _, b1), = consume(ch, q, 1)
        assert b1 == b"a" and not m1.redelivered
        ch.basic_nack(m1.delivery_tag, requeue=True)
        first = consume(ch, q, 1)
        assert [(b, m.redelivered) for m, _, b in first] == [(b"a", True)]
        ch.basic_reject(first[0][0].delivery_tag, requeue=False)  # dropped for good
        ch2 = conn.channel()
        (m2, _, b2), = consume(ch2, q, 1)
        assert b2 == b"b"
        ch2.close()  # unacked: back to the queue
        (m3, _, b3), = consume(ch, q, 1)
        assert (b3, m3.redelivered) == (b"b", True)
        ch.basic_ack(m3.delivery_tag)
        assert ch.basic_get(q)[0] is None


def test_bindings_choose_records_by_exchange_type(hopper_factory, uid):
    h = hopper_factory(RABBIT)
    x, q = "x-" + uid, "bound-" + uid
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare(x, exchange_type="topic", durable=True)
        ch.queue_declare(q, durable=True)
        ch.queue_bind(q, x, routing_key="a.*")
        for rk in ["a.x", "b.x", "a.y.z", "a.w"]:
            ch.basic_publish(x, rk, rk.encode(), pika.BasicProperties(delivery_mode=2))
        got = consume(ch, q, 2)
        assert sorted(b for _, _, b in got) == [b"a.w", b"a.x"]
        assert {m.exchange for m, _, _ in got} == {x}
        for m, _, _ in got:
            ch.basic_ack(m.delivery_tag)
        assert consume(ch, q, 1, timeout=2) == []


def test_basic_get_and_get_empty(hopper_factory, uid):
    h = hopper_factory(RABBIT)
    q = "get-" + uid
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(q, durable=True)
        publish(ch, q, [b"one", b"two"])
        deadline = time.monotonic() + 30
        got = []
        while len(got) < 2 and time.monotonic() < deadline:
            m, _, body = ch.basic_get(q, auto_ack=False)
            if m is None:
                time.sleep(0.05)  # hopper fetches from Kafka after the first get
                continue
            got.append(body)
            ch.basic_ack(m.delivery_tag)
        assert got == [b"one", b"two"]
        assert ch.basic_get(q)[0] is None


def test_purge_without_consumers_moves_the_group_past_everything(hopper_factory, uid):
    """queue.purge with nobody consuming moves the group to the topics'
    ends: purge-ok counts what was there, nothing of it is delivered later,
    what is published after the purge is."""
    h = hopper_factory(RABBIT)
    q = "purge-" + uid
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(q, durable=True)
        publish(ch, q, [b"old-%d" % i for i in range(40)])
        assert ch.queue_purge(q).method.message_count == 40
        publish(ch, q, [b"new-%d" % i for i in range(3)])
        got = consume(ch, q, 3, timeout=30)
        assert sorted(b for _, _, b in got) == [b"new-0", b"new-1", b"new-2"]
        for m, _, _ in got:
            ch.basic_ack(m.delivery_tag)
        assert consume(ch, q, 1, timeout=3) == []


def test_purge_while_consuming_keeps_the_unacked(hopper_factory, uid):
    """With a consumer holding unacked messages, queue.purge drops the
    rest of the queue, fetched or not, and leaves the unacked ones with the
    consumer (as RabbitMQ does): rejected with requeue they come back."""
    h = hopper_factory(RABBIT)
    q = "purge-busy-" + uid
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(q, durable=True)
        publish(ch, q, [b"%03d" % i for i in range(200)])
        held = []
        ch.basic_qos(prefetch_count=5)
        ch.basic_consume(q, lambda c, m, p, b: held.append((m.delivery_tag, b)))
        deadline = time.monotonic() + 30
        while len(held) < 5 and time.monotonic() < deadline:
            conn.process_data_events(0.1)
        assert len(held) == 5
        admin = conn.channel()
        purged = admin.queue_purge(q).method.message_count
        assert 195 <= purged <= 200, purged
        for tag, _ in held[:4]:
            ch.basic_ack(tag)
        ch.basic_reject(held[4][0], requeue=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            conn.process_data_events(0.1)
        assert [b for _, b in held[5:]] == [held[4][1]]  # the requeued one, nothing purged
        ch.basic_ack(held[5][0])
        publish(admin, q, [b"after"])
        deadline = time.monotonic() + 30
        while len(held) < 7 and time.monotonic() < deadline:
            conn.process_data_events(0.1)
        assert [b for _, b in held[6:]] == [b"after"]


def death_of(props):
    """The x-death entries as plain dicts (pika gives bytes for longstr)."""
    text = lambda v: v.decode() if isinstance(v, bytes) else v  # noqa: E731
    return [
        {k: ([text(x) for x in v] if isinstance(v, list) else text(v)) for k, v in d.items()}
        for d in props.headers["x-death"]
    ]


def test_rejected_messages_are_dead_lettered_with_x_death(hopper_factory, uid):
    """reject and nack without requeue on a queue with
    x-dead-letter-exchange republish the message there, with RabbitMQ's
    x-death; an ack does not; the dead letter keeps body and properties,
    its expiration moves to original-expiration; once persisted, the
    rejected record is committed (a new consumer gets nothing again)."""
    h = hopper_factory(RABBIT)
    work, dead, dlx = "work-" + uid, "dead-" + uid, "dlx-" + uid
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare(dlx, "direct", durable=True)
        ch.queue_declare(dead, durable=True)
        ch.queue_bind(dead, dlx, "failed")
        ch.queue_declare(
            work, durable=True, arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "failed"}
        )
        publish(ch, work, [b"a", b"b", b"c"], headers={"app": "x"}, expiration="600000", message_id="m")
        got = consume(ch, work, 3)
        assert [b for _, _, b in got] == [b"a", b"b", b"c"]
        ch.basic_reject(got[0][0].delivery_tag, requeue=False)
        ch.basic_nack(got[1][0].delivery_tag, requeue=False)
        ch.basic_ack(got[2][0].delivery_tag)
        letters = consume(ch, dead, 2)
        assert sorted(b for _, _, b in letters) == [b"a", b"b"]
        for m, p, _ in letters:
            ch.basic_ack(m.delivery_tag)
            assert m.exchange == dlx and m.routing_key == "failed"
            assert p.message_id == "m" and p.headers["app"] in ("x", b"x") and p.expiration is None
            (d,) = death_of(p)
            assert d["count"] == 1 and d["reason"] == "rejected" and d["queue"] == work
            assert d["exchange"] == "" and d["routing-keys"] == [work]
            assert d["original-expiration"] == "600000" and d["time"] is not None
            assert p.headers["x-first-death-queue"] in (work, work.encode())
            assert p.headers["x-last-death-reason"] in ("rejected", b"rejected")
        assert consume(ch, dead, 1, timeout=2) == []
    with connect(h.url) as conn:  # the rejected records were committed
        assert consume(conn.channel(), work, 1, timeout=3) == []


def test_a_dead_letter_cycle_counts_its_deaths(hopper_factory, uid):
    """A queue whose dead-letter exchange routes back to itself: rejected
    twice, the message carries one x-death entry with count 2."""
    h = hopper_factory(RABBIT)
    q = "cycle-" + uid
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(q, durable=True, arguments={"x-dead-letter-exchange": ""})
        publish(ch, q, [b"again"])
        for n in (1, 2):
            ((m, p, body),) = consume(ch, q, 1)
            assert body == b"again"
            if n == 2:
                (d,) = death_of(p)
                assert d["count"] == 1
            ch.basic_reject(m.delivery_tag, requeue=False)
        ((m, p, _),) = consume(ch, q, 1)
        (d,) = death_of(p)
        assert d["count"] == 2 and d["queue"] == q and d["reason"] == "rejected"
        ch.basic_ack(m.delivery_tag)


def test_a_dead_letter_exchange_that_does_not_exist_drops(hopper_factory, uid):
    """As RabbitMQ: dead-lettering to a missing exchange drops the message
    (and commits it)."""
    h = hopper_factory(RABBIT)
    q = "nodlx-" + uid
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(q, durable=True, arguments={"x-dead-letter-exchange": "missing-" + uid})
        publish(ch, q, [b"gone"])
        ((m, _, _),) = consume(ch, q, 1)
        ch.basic_reject(m.delivery_tag, requeue=False)
        assert consume(ch, q, 1, timeout=3) == []


@pytest.mark.parametrize(
    "args, text",
    [
        # RabbitMQ 3.10's words (Debian 12), checked against it
        ({"x-dead-letter-exchange": 5}, "invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue '%s' in vhost '/'"),
        ({"x-dead-letter-routing-key": "k"}, "invalid arg 'x-dead-letter-routing-key' for queue '%s' in vhost '/': routing_key_but_no_dlx_defined"),
    ],
)
def test_dead_letter_arguments_are_checked_as_rabbitmq_does(hopper_factory, uid, args, text):
    h = hopper_factory(RABBIT)
    q = "badargs-" + uid
    with connect(h.url) as conn:
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare(q, durable=True, arguments=args)
        assert e.value.reply_code == 406
        assert e.value.reply_text == "PRECONDITION_FAILED - " + text % q


def test_a_record_from_a_kafka_producer_is_delivered(hopper_factory, kafka_cluster, uid):
    """A queue's topic may hold records no AMQP client wrote: the body is
    the value and the properties come from the record."""
    h = hopper_factory(RABBIT)
    q = "foreign-" + uid
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.queue_declare(q, durable=True)
        p = Producer({"bootstrap.servers": kafka_cluster, "acks": "all"})
        p.produce(q, value=b"from kafka", key=b"k1", headers=[("source", b"billing")], timestamp=1700000000123)
        assert p.flush(30) == 0
        (m, props, body), = consume(ch, q, 1)
        assert body == b"from kafka"
        assert (m.exchange, m.routing_key) == ("", q)
        assert props.headers == {"source": b"billing"} or props.headers == {"source": "billing"}
        assert props.timestamp == 1700000000
        ch.basic_ack(m.delivery_tag)


def test_consumer_errors_are_rabbitmqs(hopper_factory, uid):
    h = hopper_factory(RABBIT)
    q = "errors-" + uid
    with connect(h.url) as conn:
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.basic_consume("missing-" + uid, lambda *a: None)
        assert e.value.reply_code == 404
        ch = conn.channel()
        ch.queue_declare(q, durable=True)
        ch.basic_consume(q, lambda *a: None, exclusive=True)
        ch2 = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch2.basic_consume(q, lambda *a: None)
        assert e.value.reply_code == 403
        ch3 = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch3.basic_ack(42)
            ch3.queue_declare(q, passive=True)  # the close arrives before this answer
        assert e.value.reply_code == 406
        assert "unknown delivery tag 42" in e.value.reply_text


def test_queue_delete_cancels_consumers_and_if_unused_refuses(hopper_factory, uid):
    h = hopper_factory(RABBIT)
    q = "del-" + uid
    cancelled = []
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.queue_declare(q, durable=True)
        ch.basic_consume(q, lambda *a: None)
        ch.add_on_cancel_callback(lambda frame: cancelled.append(frame))
        other = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            other.queue_delete(q, if_unused=True)
        assert e.value.reply_code == 406
        other = conn.channel()
        other.queue_delete(q)
        deadline = time.monotonic() + 10
        while not cancelled and time.monotonic() < deadline:
            conn.process_data_events(0.1)
        assert cancelled, "no basic.cancel from hopper after queue.delete"
        # Its group went with it: declared again, the queue starts empty
        # although the topic still holds what was published before.
        other.confirm_delivery()
        h.wait_for_log("deleted with its queue")
        publish(other, q, [b"old-1", b"old-2"])
        other.queue_declare(q, durable=True)
        publish(other, q, [b"new"])
        assert [b for _, _, b in consume(other, q, 2, timeout=5)] == [b"new"]


def test_kombu_simple_queue_round_trip(hopper_factory, uid):
    """kombu (Celery's transport) declares a direct exchange, a durable
    queue and its binding, publishes with confirms and consumes with acks."""
    from kombu import Connection

    h = hopper_factory(RABBIT)
    name = "kombu-" + uid
    with Connection(h.url, transport_options={"confirm_publish": True}) as conn:
        q = conn.SimpleQueue(name)
        for i in range(20):
            q.put({"i": i})
        got = []
        for _ in range(20):
            msg = q.get(timeout=30)
            got.append(msg.payload["i"])
            msg.ack()
        assert sorted(got) == list(range(20))
        q.close()


def kill_hard(h):
    """SIGKILL hopper: no drain, no last commit."""
    h.signal(signal.SIGKILL)
    h.proc.wait(10)
    h.proc = None  # the fixture's SIGTERM check is for hoppers that should exit cleanly


def test_hopper_killed_while_consumers_hold_unacked_messages(hopper_factory, uid):
    """After a crash the next hopper delivers again what was not acked,
    flagged redelivered, and nothing that was acked and committed. The
    restart has the same rabbit.instance_id (static membership), so it gets
    the partitions back at once instead of after the session timeout."""
    q = "crash-" + uid
    cfg = {"rabbit": dict(RABBIT["rabbit"], instance_id="it-" + uid)}
    h = hopper_factory(cfg)
    conn = pika.BlockingConnection(pika.URLParameters(h.url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(q, durable=True)
    publish(ch, q, [b"%d" % i for i in range(10)])
    ch.basic_qos(prefetch_count=10)
    tags = {}
    for method, _, body in ch.consume(q, inactivity_timeout=0.5):
        if method is not None:
            tags[body] = method.delivery_tag
        if len(tags) == 10:
            break
    for i in range(5):
        ch.basic_ack(tags[b"%d" % i])
    conn.process_data_events(0.5)  # the commit interval is 50 ms
    kill_hard(h)  # the connection dies with it
    h2 = hopper_factory(cfg)
    with connect(h2.url) as conn:
        ch = conn.channel()
        ch.queue_declare(q, durable=True)
        again = consume(ch, q, 10, timeout=15)
        assert sorted(b for _, _, b in again) == [b"%d" % i for i in range(5, 10)]
        assert all(m.redelivered for m, _, _ in again)
        for m, _, _ in again:
            ch.basic_ack(m.delivery_tag)


CONSUMER_THAT_DIES = r"""
import os, sys, pika
conn = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = conn.channel()
ch.basic_qos(prefetch_count=3)
n = 0
for method, props, body in ch.consume(sys.argv[2], inactivity_timeout=30):
    n += 1
    if n == 3:
        print("holding", flush=True)
        os.kill(os.getpid(), 9)
"""


def test_a_killed_consumers_unacked_messages_go_to_the_next(hopper_factory, uid, tmp_path):
    import subprocess
    import sys

    q = "dies-" + uid
    h = hopper_factory(RABBIT)
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(q, durable=True)
        publish(ch, q, [b"a", b"b", b"c", b"d"])
        script = tmp_path / "dies.py"
        script.write_text(CONSUMER_THAT_DIES)
        r = subprocess.run([sys.executable, str(script), h.url, q], capture_output=True, text=True, timeout=60)
        assert r.returncode == -9 and "holding" in r.stdout, (r.returncode, r.stdout, r.stderr)
        got = consume(ch, q, 4)
        assert [(b, m.redelivered) for m, _, b in got] == [(b"a", True), (b"b", True), (b"c", True), (b"d", False)]
        for m, _, _ in got:
            ch.basic_ack(m.delivery_tag)


def test_two_hoppers_share_a_queue_through_the_group(hopper_factory, kafka, kafka_cluster, uid):
    """Consumers on two instances split the queue's partitions: every
    message reaches one of them. The queue is one topic of three partitions
    (a configured queue), so the group has exactly those to share."""
    topic, q = "shared-" + uid, "shared-q-" + uid
    kafka.create_topic(topic)
    cfg = dict(RABBIT, queues=[{"name": q, "topics": [topic]}])
    h1 = hopper_factory(cfg)
    h2 = hopper_factory(cfg)
    got = {1: [], 2: []}
    conns = []
    try:
        for n, h in ((1, h1), (2, h2)):
            h.wait_for_log("(config) reads 1 topic(s)", timeout=60)
            conn = pika.BlockingConnection(pika.URLParameters(h.url))
            conns.append(conn)
            ch = conn.channel()
            ch.basic_qos(prefetch_count=50)

            def on_msg(ch, method, props, body, n=n):
                got[n].append(body)
                ch.basic_ack(method.delivery_tag)

            ch.basic_consume(q, on_msg)
        # Both members hold partitions before anything is produced, so no
        # rebalance moves unacked messages.
        deadline = time.monotonic() + 60
        while not all("partition(s) assigned" in h.log_text() for h in (h1, h2)):
            assert time.monotonic() < deadline, "both hoppers never got partitions"
            for c in conns:
                c.process_data_events(0.1)
        for c in conns:
            c.process_data_events(1)
        p = Producer({"bootstrap.servers": kafka_cluster, "acks": "all"})
        bodies = [b"%d" % i for i in range(300)]
        for i, b in enumerate(bodies):
            p.produce(topic, value=b, key=b"k.%d" % (i % 30))
        assert p.flush(30) == 0
        deadline = time.monotonic() + 60
        while set(got[1] + got[2]) != set(bodies) and time.monotonic() < deadline:
            for c in conns:
                c.process_data_events(0.05)
        for c in conns:
            c.process_data_events(0.5)  # anything delivered twice shows now
        assert set(got[1] + got[2]) == set(bodies)
        assert got[1] and got[2], "one instance got no partition: %d / %d" % (len(got[1]), len(got[2]))
        # Nothing moved between the members: nothing came twice.
        assert len(got[1]) + len(got[2]) == len(bodies)
    finally:
        for c in conns:
            if c.is_open:
                c.close()


def test_a_hopper_whose_consumers_left_gives_the_queue_to_the_other(hopper_factory, kafka, kafka_cluster, uid):
    """Partitions follow the consumers: hopper 1's consumer reads the queue
    and goes away; hopper 1 leaves the group after rabbit.idle_leave, and
    hopper 2's consumer gets every message, not only the partitions the
    group happened to give hopper 2 (before, the rest waited for a consumer
    on hopper 1)."""
    topic, q = "idle-" + uid, "idle-q-" + uid
    kafka.create_topic(topic)
    cfg = dict(RABBIT, queues=[{"name": q, "topics": [topic]}])
    cfg["rabbit"] = dict(RABBIT["rabbit"], idle_leave=1000)
    h1, h2 = hopper_factory(cfg), hopper_factory(cfg)
    for h in (h1, h2):
        h.wait_for_log("(config) reads 1 topic(s)", timeout=60)
    with connect(h1.url) as c1:
        ch1 = c1.channel()
        ch1.basic_consume(q, lambda *a: None)
        deadline = time.monotonic() + 60
        while "partition(s) assigned" not in h1.log_text():
            assert time.monotonic() < deadline, "hopper 1 never got the queue's partitions"
            c1.process_data_events(0.1)
    h1.wait_for_log("no consumer here for 1000 ms, leaving group " + group_of(q), timeout=30)
    c2 = pika.BlockingConnection(pika.URLParameters(h2.url))
    try:
        ch2 = c2.channel()
        got = []

        def on_msg(ch, method, props, body):
            got.append(body)
            ch.basic_ack(method.delivery_tag)

        ch2.basic_consume(q, on_msg)
        p = Producer({"bootstrap.servers": kafka_cluster, "acks": "all"})
        bodies = [b"%d" % i for i in range(300)]
        for i, b in enumerate(bodies):
            p.produce(topic, value=b, key=b"k.%d" % (i % 30))  # all three partitions
        assert p.flush(30) == 0
        deadline = time.monotonic() + 60
        while len(got) < len(bodies) and time.monotonic() < deadline:
            c2.process_data_events(0.05)
        assert sorted(got) == sorted(bodies), "hopper 2 got %d of %d" % (len(got), len(bodies))
    finally:
        c2.close()


def test_a_configured_queue_serves_a_topic_that_kafka_producers_write(hopper_factory, kafka, kafka_cluster, uid):
    """queues: in the config: legacy AMQP workers consume what Kafka
    services produce, with the record key as message_id."""
    topic, q = "billing-" + uid, "bill-" + uid
    kafka.create_topic(topic)
    h = hopper_factory(dict(RABBIT, queues=[{"name": q, "topics": [topic], "message_id": "key"}]))
    h.wait_for_log("queue '%s' in vhost '/' (config) reads 1 topic(s)" % q, timeout=60)
    p = Producer({"bootstrap.servers": kafka_cluster, "acks": "all"})
    for i in range(3):
        p.produce(topic, value=b"invoice-%d" % i, key=b"inv-%d" % i, headers=[("currency", b"EUR")])
    assert p.flush(30) == 0
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.queue_declare(q, passive=True)
        got = consume(ch, q, 3)
        assert sorted((b, pr.message_id) for _, pr, b in got) == [(b"invoice-%d" % i, "inv-%d" % i) for i in range(3)]
        assert all(m.routing_key == topic and m.exchange == "" for m, _, _ in got)
        for m, _, _ in got:
            ch.basic_ack(m.delivery_tag)


@pytest.mark.slow
@pytest.mark.deadline(420)
def test_acks_made_while_kafka_is_down_are_committed_when_it_is_back(hopper_factory, uid):
    """Kafka away: consumers keep their deliveries and acks are accepted;
    the commits go through once Kafka is back, so a restart redelivers
    nothing that was acked. (An outage longer than rabbit.session_timeout
    gives the partitions away and all that was delivered comes again: the
    session here outlasts the cluster's restart.)"""
    from hopperproc import ensure_cluster
    from test_outage import stop_cluster

    q = "outage-q-" + uid
    h = hopper_factory({"rabbit": dict(RABBIT["rabbit"], session_timeout=120000)})
    with connect(h.url, heartbeat=600) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(q, durable=True)
        publish(ch, q, [b"%d" % i for i in range(6)])
        ch.basic_qos(prefetch_count=10)
        got = {}
        for method, _, body in ch.consume(q, inactivity_timeout=0.5):
            if method is not None:
                got[body] = method.delivery_tag
            if len(got) == 6:
                break
        stop_cluster()
        try:
            for i in range(4):
                ch.basic_ack(got[b"%d" % i])
            conn.process_data_events(3)  # commits fail meanwhile
        finally:
            ensure_cluster()
        h.wait_for_log("consuming through group", timeout=5)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            conn.process_data_events(1)
            if committed_max(h, q) == 4:
                break
        assert committed_max(h, q) == 4
    h.stop()
    h2 = hopper_factory(RABBIT)
    with connect(h2.url) as conn:
        ch = conn.channel()
        ch.queue_declare(q, durable=True)
        again = consume(ch, q, 6, timeout=30)
        assert sorted(b for _, _, b in again) == [b"4", b"5"]
        for m, _, _ in again:
            ch.basic_ack(m.delivery_tag)


def committed_max(h, q):
    offs = committed(h.config["kafka"]["bootstrap_servers"], group_of(q), q)
    return max(offs.values())


def test_a_queue_holds_at_most_max_unacked_then_pauses(hopper_factory, uid):
    """Past rabbit.max_unacked hopper pauses the queue's partitions: a
    consumer without a prefetch limit that never acks gets the bound plus
    what librdkafka had fetched already (at most 1 MiB), not the queue; as
    it acks, the rest comes, none lost."""
    q = "bound-" + uid
    h = hopper_factory({"rabbit": dict(RABBIT["rabbit"], max_unacked=100)})
    n, body = 3000, b"x" * 1024
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.queue_declare(q, durable=True)
        pub = conn.channel()  # no confirms: the queue fills while the consumer waits
        for i in range(n):
            pub.basic_publish("", q, b"%06d" % i + body, pika.BasicProperties(delivery_mode=2))
        held = []
        ch.basic_consume(q, lambda c, m, p, b: held.append(m.delivery_tag))
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            conn.process_data_events(0.2)
        assert 100 <= len(held) <= 100 + 1100, len(held)  # 1 MiB of 1 KiB records
        acked = 0
        deadline = time.monotonic() + 90
        while acked < n and time.monotonic() < deadline:
            if held and held[-1] > acked:
                acked = held[-1]
                ch.basic_ack(acked, multiple=True)
            conn.process_data_events(0.05)
        assert len(held) == n and acked == n, (len(held), acked)


def broker_pids():
    """The local cluster's broker processes (cluster.sh status)."""
    pids = [int(p) for p in re.findall(r"running \(pid (\d+)\)", cluster("status").stdout)]
    assert len(pids) == 3, "cluster.sh status shows %d running nodes" % len(pids)
    return pids


def test_shutdown_leaves_a_group_in_bounded_time_when_kafka_does_not_answer(hopper_factory, uid):
    """A queue's consumer leaves its group as hopper stops: a last commit and
    the close, round trips to a coordinator. With every broker stopped
    (SIGSTOP: connections open, no answers) hopper waits FEED_LEAVE_MS (3 s)
    for them, says so, and exits 0, instead of waiting as long as the
    requests could (socket.timeout.ms, 60 s)."""
    h = hopper_factory(RABBIT)
    q = "leave-" + uid
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(q, durable=True)
        publish(ch, q, [b"one", b"two"])
        got = consume(ch, q, 2)
        assert [b for _, _, b in got] == [b"one", b"two"]
        ch.basic_ack(got[0][0].delivery_tag)
    pids = broker_pids()
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        h.signal(signal.SIGTERM)
        code = h.wait(timeout=30)
        took = time.monotonic() - t0
    finally:
        for p in pids:
            os.kill(p, signal.SIGCONT)
    assert code == 0
    log = h.log_text()
    assert "queue '%s': still leaving group" % q in log, log[-3000:]
    # Nothing in flight to drain: the leave's 3 s and the teardown's own.
    assert took < 8, "hopper took %.1f s to stop\n%s" % (took, h.log_tail())
