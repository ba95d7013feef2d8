"""Transient queues (README, "Transient queues"): with --enable-rabbit,
exclusive, auto-delete, non-durable and server-named queues are held in
hopper's memory and served like RabbitMQ's, never written to Kafka. pika
against the real cluster; the Kafka reader checks what did (not) land."""

import threading
import time

import pika
import pytest

from hopperproc import sanitized
from pikautil import connect, deliveries

RABBIT = {"rabbit": {"enabled": True, "commit_interval": 50}}


drain = deliveries


def test_server_named_exclusive_queue_serves_the_default_exchange_from_memory(hopper_factory, kafka, uid):
    h = hopper_factory(RABBIT)
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        q = ch.queue_declare("", exclusive=True).method.queue
        assert q.startswith("amq.gen-")
        props = pika.BasicProperties(
            content_type="text/plain", headers={"k": "v", "n": 3}, correlation_id="c-" + uid, reply_to="r"
        )
        for i in range(5):
            ch.basic_publish("", q, b"m%d" % i, props, mandatory=True)  # confirmed: no exception
        assert ch.queue_declare(q, passive=True).method.message_count == 5
        got = drain(ch, q, 5)
        assert [b for _, _, b in got] == [b"m%d" % i for i in range(5)]
        for method, p, _ in got:
            assert (method.exchange, method.routing_key, method.redelivered) == ("", q, False)
            assert (p.content_type, p.headers, p.correlation_id, p.reply_to) == (
                "text/plain",
                {"k": "v", "n": 3},
                "c-" + uid,
                "r",
            )
        ch.basic_ack(got[-1][0].delivery_tag, multiple=True)
        ch.cancel()
    # Never in Kafka: no topic named after the queue was even created.
    assert not kafka.topic_exists(q, timeout=3)


def test_rpc_reply_to_an_exclusive_queue_through_a_durable_request_queue(hopper_factory, uid):
    """The RabbitMQ tutorial's RPC: requests through a Kafka-backed queue,
    replies to the client's exclusive callback queue in memory."""
    h = hopper_factory(RABBIT)
    rq = "rpc-" + uid
    with connect(h.url) as server, connect(h.url) as client:
        sch = server.channel()
        sch.queue_declare(rq, durable=True)
        cch = client.channel()
        cch.confirm_delivery()
        callback = cch.queue_declare("", exclusive=True).method.queue
        for i in range(3):
            cch.basic_publish(
                "", rq, b"%d" % i, pika.BasicProperties(reply_to=callback, correlation_id="id-%d" % i, delivery_mode=2)
            )
        requests = drain(sch, rq, 3, timeout=30)
        assert len(requests) == 3
        for method, p, body in requests:
            sch.basic_publish("", p.reply_to, b"%d" % (int(body) * 10), pika.BasicProperties(correlation_id=p.correlation_id))
            sch.basic_ack(method.delivery_tag)
        replies = drain(cch, callback, 3)
        assert sorted((p.correlation_id, b) for _, p, b in replies) == [
            ("id-0", b"0"),
            ("id-1", b"10"),
            ("id-2", b"20"),
        ]


def test_a_bound_exchange_copies_into_every_matching_transient_queue_once(hopper_factory, uid):
    h = hopper_factory(RABBIT)
    x = "fan-" + uid
    with connect(h.url) as c1, connect(h.url) as c2:
        ch1, ch2 = c1.channel(), c2.channel()
        ch1.exchange_declare(x, "topic")
        q1 = ch1.queue_declare("", exclusive=True).method.queue
        q2 = ch2.queue_declare("", exclusive=True).method.queue
        ch1.queue_bind(q1, x, "a.*")
        ch1.queue_bind(q1, x, "#")  # matches too: still one copy
        ch2.queue_bind(q2, x, "a.b")
        ch1.confirm_delivery()
        ch1.basic_publish(x, "a.b", b"both")
        ch1.basic_publish(x, "c.d", b"only-q1")
        got1 = drain(ch1, q1, 3, timeout=3, auto_ack=True)
        got2 = drain(ch2, q2, 2, timeout=3, auto_ack=True)
        assert [b for _, _, b in got1] == [b"both", b"only-q1"]
        assert [b for _, _, b in got2] == [b"both"]
        assert got2[0][0].exchange == x and got2[0][0].routing_key == "a.b"


def test_requeue_and_a_closed_channel_give_messages_back_redelivered(hopper_factory, uid):
    h = hopper_factory(RABBIT)
    q = "work-" + uid
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.queue_declare(q, durable=False)
        for i in range(3):
            ch.basic_publish("", q, b"%d" % i)
        got = drain(ch, q, 3)
        ch.basic_nack(got[0][0].delivery_tag, requeue=True)
        again = drain(ch, q, 1)
        assert again[0][2] == b"0" and again[0][0].redelivered
        ch.cancel()
        ch.close()  # 1, 2 and 0 unacked: back to the queue
        ch = conn.channel()
        back = drain(ch, q, 3)
        assert [b for _, _, b in back] == [b"0", b"1", b"2"]
        assert all(m.redelivered for m, _, _ in back)
        ch.basic_ack(0, multiple=True)
        ch.cancel()
        assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_get_purge_and_delete_counts(hopper_factory, uid):
    h = hopper_factory(RABBIT)
    q = "tmp-" + uid
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.queue_declare(q, auto_delete=True)
        for i in range(4):
            ch.basic_publish("", q, b"%d" % i)
        method, _, body = ch.basic_get(q, auto_ack=True)
        assert body == b"0" and method.message_count == 3
        assert ch.queue_purge(q).method.message_count == 3
        assert ch.basic_get(q)[0] is None
        ch.basic_publish("", q, b"x")
        assert ch.queue_delete(q).method.message_count == 1
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare(q, passive=True)
        assert e.value.reply_code == 404


def test_auto_delete_goes_with_its_last_consumer_and_exclusive_with_its_connection(hopper_factory, uid):
    h = hopper_factory(RABBIT)
    ad = "ad-" + uid
    ex = "ex-" + uid
    owner = pika.BlockingConnection(pika.URLParameters(h.url))
    with connect(h.url) as other:
        och = owner.channel()
        och.queue_declare(ad, auto_delete=True)
        och.queue_declare(ex, exclusive=True)
        tag = och.basic_consume(ad, lambda *a: None)
        xch = other.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            xch.queue_declare(ex, passive=True)
        assert e.value.reply_code == 405  # RESOURCE_LOCKED while its owner lives
        xch = other.channel()
        assert xch.queue_declare(ad, passive=True).method.consumer_count == 1
        och.basic_cancel(tag)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            xch.queue_declare(ad, passive=True)
        assert e.value.reply_code == 404
        owner.close()
        xch = other.channel()
        deadline = time.monotonic() + 10
        while True:  # the owner's close reaches hopper a moment later
            try:
                xch.queue_declare(ex, passive=True)
            except pika.exceptions.ChannelClosedByBroker as err:
                assert err.reply_code == 404
                break
            assert time.monotonic() < deadline, "exclusive queue outlived its connection"
            time.sleep(0.1)


def test_full_transient_queues_block_publishers_until_consumed_and_lose_nothing(hopper_factory, uid):
    h = hopper_factory({"rabbit": {"enabled": True, "max_transient_bytes": 1 << 20}})
    q = "big-" + uid
    n, body = 60, b"x" * 32 * 1024  # 1.9 MiB: twice the bound
    sent = []

    def publisher():
        with connect(h.url) as conn:
            ch = conn.channel()
            ch.confirm_delivery()  # each publish waits for its ack: stops where hopper stops reading
            for i in range(n):
                ch.basic_publish("", q, b"%d:" % i + body)
                sent.append(i)

    with connect(h.url) as conn:
        ch = conn.channel()
        ch.queue_declare(q, durable=False)
        t = threading.Thread(target=publisher, daemon=True)
        t.start()
        h.wait_for_log("transient queues hold rabbit.max_transient_bytes: blocking publishers", timeout=20)
        stalled = len(sent)
        time.sleep(1.0)
        assert len(sent) == stalled < n, "the publisher went on past the bound"
        got = drain(ch, q, n, timeout=60, auto_ack=True)
        t.join(30)
        assert len(sent) == n
        assert [int(b.split(b":")[0]) for _, _, b in got] == list(range(n))
    assert "unblocking publishers" in h.log_text()


def test_dead_letters_from_a_transient_queue_reach_a_transient_queue_at_once(hopper_factory, uid):
    h = hopper_factory(RABBIT)
    x, dlx = "dl-src-" + uid, "dl-x-" + uid
    q, dlq = "dl-q-" + uid, "dl-q-" + uid + "-dead"
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.exchange_declare(x, "fanout", auto_delete=True)
        ch.exchange_declare(dlx, "fanout", auto_delete=True)
        ch.queue_declare(dlq, auto_delete=True)
        ch.queue_bind(dlq, dlx, "#")
        ch.queue_declare(q, auto_delete=True, arguments={"x-dead-letter-exchange": dlx})
        ch.queue_bind(q, x, "#")
        ch.basic_publish(x, "poison", b"bad", pika.BasicProperties(expiration="60000"))
        got = drain(ch, q, 1)
        ch.basic_reject(got[0][0].delivery_tag, requeue=False)
        method, props, body = ch.basic_get(dlq, auto_ack=True)  # no wait: it is there at once
        assert body == b"bad" and method.exchange == dlx and method.routing_key == "poison"
        death = props.headers["x-death"]
        assert isinstance(death, list) and death[0]["queue"] == q and death[0]["reason"] == "rejected"
        assert death[0]["count"] == 1 and death[0]["original-expiration"] == "60000"
        assert props.expiration is None
        assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_channel_flow_false_is_540_as_on_rabbitmq(hopper_factory):
    h = hopper_factory(RABBIT)
    conn = pika.BlockingConnection(pika.URLParameters(h.url))
    ch = conn.channel()
    ch.flow(True)  # allowed, answered with flow-ok
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        ch.flow(False)
    assert e.value.reply_code == 540 and "active=false" in e.value.reply_text


def closed_with(h, method, code, text):
    """Run method(channel) on a fresh connection; assert the channel (or
    connection) closes with code and reply text, as RabbitMQ 3.10 answers."""
    conn = pika.BlockingConnection(pika.URLParameters(h.url))
    try:
        ch = conn.channel()
        with pytest.raises((pika.exceptions.ChannelClosedByBroker, pika.exceptions.ConnectionClosedByBroker)) as e:
            method(ch)
            ch.queue_declare("", exclusive=True)  # a round trip after a publish
        assert (e.value.reply_code, e.value.reply_text) == (code, text)
    finally:
        if conn.is_open:
            conn.close()


@pytest.mark.parametrize(
    "args,why",
    [
        ({"x-message-ttl": -1}, "{value_negative,-1}"),
        ({"x-message-ttl": "10"}, '"expected integer, got longstr"'),
        ({"x-message-ttl": True}, '"expected integer, got bool"'),
        ({"x-message-ttl": 315360000001}, "{value_too_large,315360000001}"),
        ({"x-expires": 0}, "{value_zero,0}"),
        ({"x-max-length": -1}, "{value_negative,-1}"),
        ({"x-max-length-bytes": -2}, "{value_negative,-2}"),
        ({"x-overflow": "bad"}, "invalid_overflow"),
        ({"x-overflow": 5}, "{unacceptable_type,signedint}"),
    ],
)
def test_queue_arguments_are_checked_as_rabbitmq_does(hopper_factory, uid, args, why):
    h = hopper_factory(RABBIT)
    key = next(iter(args))
    closed_with(
        h,
        lambda ch: ch.queue_declare("args-" + uid, auto_delete=True, arguments=args),
        406,
        "PRECONDITION_FAILED - invalid arg '%s' for queue 'args-%s' in vhost '/': %s" % (key, uid, why),
    )


@pytest.mark.parametrize(
    "expiration,why",
    [("abc", "no_integer"), ("", "no_integer"), ("5 ", '{leftover_string," "}'), ("-5", "{value_negative,-5}")],
)
def test_a_bad_expiration_closes_the_channel_as_on_rabbitmq(hopper_factory, expiration, why):
    h = hopper_factory(RABBIT)
    closed_with(
        h,
        lambda ch: ch.basic_publish("", "anywhere", b"x", pika.BasicProperties(expiration=expiration)),
        406,
        "PRECONDITION_FAILED - invalid expiration '%s': %s" % (expiration, why),
    )


def test_message_ttl_and_expiration_expire_from_the_head_into_the_dead_letter_queue(hopper_factory, uid):
    h = hopper_factory(RABBIT)
    q, dlq = "ttl-" + uid, "ttl-dead-" + uid
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.queue_declare(dlq, auto_delete=True)
        ch.queue_declare(
            q, auto_delete=True, arguments={"x-message-ttl": 300, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}
        )
        ch.basic_publish("", q, b"short", pika.BasicProperties(expiration="100"))
        ch.basic_publish("", q, b"queue-ttl")
        ch.basic_publish("", q, b"kept", pika.BasicProperties(expiration="60000"))  # the queue's 300 ms wins
        assert ch.queue_declare(q, passive=True).method.message_count == 3
        deadline = time.monotonic() + 10
        while ch.queue_declare(dlq, passive=True).method.message_count < 3:
            assert time.monotonic() < deadline, "messages did not expire into the dead-letter queue"
            time.sleep(0.05)
        assert ch.queue_declare(q, passive=True).method.message_count == 0
        dead = drain(ch, dlq, 3, auto_ack=True)
        assert [b for _, _, b in dead] == [b"short", b"queue-ttl", b"kept"]
        for _, p, _ in dead:
            assert p.headers["x-death"][0]["reason"] == "expired" and p.headers["x-death"][0]["queue"] == q


def test_max_length_drops_the_head_or_rejects_the_publish(hopper_factory, uid):
    h = hopper_factory(RABBIT)
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        head = "len-head-" + uid
        ch.queue_declare(head, auto_delete=True, arguments={"x-max-length": 2})
        for i in range(5):
            ch.basic_publish("", head, b"%d" % i)
        assert [b for _, _, b in drain(ch, head, 5, timeout=2, auto_ack=True)] == [b"3", b"4"]
        ch.cancel()
        rej = "len-reject-" + uid
        ch.queue_declare(rej, auto_delete=True, arguments={"x-max-length-bytes": 10, "x-overflow": "reject-publish"})
        ch.basic_publish("", rej, b"0123456789")
        with pytest.raises(pika.exceptions.NackError):
            ch.basic_publish("", rej, b"x")  # nacked: the queue is full
        assert ch.queue_declare(rej, passive=True).method.message_count == 1


def test_x_expires_deletes_an_unused_queue(hopper_factory, uid):
    h = hopper_factory(RABBIT)
    q = "exp-" + uid
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.queue_declare(q, arguments={"x-expires": 400}, durable=False)
        time.sleep(0.25)
        ch.queue_declare(q, passive=True, arguments=None)  # used: the clock starts again
        time.sleep(0.25)
        ch.queue_declare(q, passive=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                ch.queue_declare(q, passive=True)
            except pika.exceptions.ChannelClosedByBroker as e:
                assert e.reply_code == 404
                break
            assert time.monotonic() < deadline, "x-expires did not delete the queue"
            time.sleep(0.1)
            # each passive declare uses the queue again: wait without one
            time.sleep(0.6)
    assert "unused for x-expires (400 ms), deleted" in h.log_text()


def test_a_flood_nobody_consumes_is_held_back_and_rss_stays_near_the_bound(hopper_factory, uid):
    """64 MiB published without confirms into a transient queue bounded at
    8 MiB: hopper stops reading the publisher (TCP holds the rest) and its
    memory grows by about the bound, not by the flood."""
    bound = 8 << 20
    h = hopper_factory({"rabbit": {"enabled": True, "max_transient_bytes": bound}})
    q = "flood-" + uid
    body = b"f" * (32 << 10)
    with connect(h.url) as conn:
        conn.channel().queue_declare(q, auto_delete=False, durable=False)
        before = h.rss_kib()
        flooder = pika.BlockingConnection(pika.URLParameters(h.url))

        def flood():
            try:
                ch = flooder.channel()
                for _ in range(2048):  # 64 MiB
                    ch.basic_publish("", q, body)
            except Exception:  # noqa: BLE001 - torn down at the end of the test
                pass

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        h.wait_for_log("transient queues hold rabbit.max_transient_bytes: blocking publishers", timeout=30)
        time.sleep(1.0)
        grown_kib = h.rss_kib() - before
        assert t.is_alive(), "the whole flood went in: nothing held the publisher back"
        # ASan's redzones and quarantine double what an allocation costs,
        # as test_limits allows for too.
        limit_kib = 3 * bound // 1024 * (2 if sanitized() else 1)
        assert grown_kib < limit_kib, "RSS grew %d KiB for a %d KiB bound" % (grown_kib, bound // 1024)
        held = conn.channel().queue_declare(q, passive=True).method.message_count
        assert held * len(body) < 2 * bound
    h.stop()


def test_a_dead_letter_cycle_back_into_the_same_queue_is_dropped_as_on_rabbitmq(hopper_factory, uid):
    """RabbitMQ 3.10 answers the same: an expired or length-dropped message
    dead-lettered straight back into its own queue is dropped."""
    h = hopper_factory(RABBIT)
    ttl, length = "cyc-ttl-" + uid, "cyc-len-" + uid
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.queue_declare(
            ttl, auto_delete=True, arguments={"x-message-ttl": 50, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": ttl}
        )
        ch.queue_declare(
            length, auto_delete=True, arguments={"x-max-length": 1, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": length}
        )
        for i in range(500):
            ch.basic_publish("", ttl, b"x%d" % i)
        for i in range(3):
            ch.basic_publish("", length, b"y%d" % i)
        deadline = time.monotonic() + 10
        while ch.queue_declare(ttl, passive=True).method.message_count:
            assert time.monotonic() < deadline, "the TTL cycle never ended"
            time.sleep(0.1)
        assert ch.queue_declare(length, passive=True).method.message_count == 1
        assert ch.basic_get(length, auto_ack=True)[2] == b"y2"
    assert "dead-letter cycle" in h.log_text()


@pytest.mark.parametrize(
    "first,again,why",
    [
        ({"x-message-ttl": 100}, {"x-message-ttl": 200}, "received '200' but current is '100'"),
        ({"x-message-ttl": 100}, {}, "received none but current is the value '100' of type 'signedint'"),
        ({}, {"x-message-ttl": 100}, "received the value '100' of type 'signedint' but current is none"),
        ({"x-message-ttl": 100}, {"x-message-ttl": "100"}, "received '100' but current is '100'"),
        ({"x-overflow": "drop-head"}, {"x-overflow": "reject-publish"}, "received 'reject-publish' but current is 'drop-head'"),
        ({"foo": 1}, {"foo": 2}, None),  # not an argument RabbitMQ compares
        ({"x-max-length": 1}, {"x-max-length": 1, "foo": 3}, None),
    ],
)
def test_declaring_again_compares_the_arguments_rabbitmq_compares(hopper_factory, uid, first, again, why):
    """Answers and texts as Debian's RabbitMQ 3.10 gives them."""
    h = hopper_factory(RABBIT)
    q = "eq-" + uid
    key = next(iter(first or again))
    with connect(h.url) as conn:
        conn.channel().queue_declare(q, auto_delete=True, arguments=first)
        if why is None:
            conn.channel().queue_declare(q, auto_delete=True, arguments=again)
            return
    closed_with(
        h,
        lambda ch: ch.queue_declare(q, auto_delete=True, arguments=again),
        406,
        "PRECONDITION_FAILED - inequivalent arg '%s' for queue '%s' in vhost '/': %s" % (key, q, why),
    )
