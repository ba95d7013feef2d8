"""Direct reply-to (README, "Direct reply-to"): with --enable-rabbit a
channel consumes the pseudo-queue amq.rabbitmq.reply-to, its requests carry
a reply_to naming that consumer, and replies published to that name reach
it straight from memory, never Kafka. Every code and text asserted here
was checked against Debian's rabbitmq-server 3.10.8. pika against the real
cluster; the Kafka reader checks what did (not) land."""

import threading
import time

import pika
import pytest

from pikautil import connect

RABBIT = {"rabbit": {"enabled": True, "commit_interval": 50}}
RT = "amq.rabbitmq.reply-to"


def wait_for(conn, got, n, timeout=20.0):
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        conn.process_data_events(0.1)
    return got


def take(conn, ch, queue, n=1, auto_ack=True):
    """n deliveries from queue as (method, properties, body), by a consumer
    cancelled afterwards (unacked ones stay the channel's to ack)."""
    got = []
    tag = ch.basic_consume(queue, lambda c, m, p, b: got.append((m, p, b)), auto_ack=auto_ack)
    wait_for(conn, got, n, timeout=30)
    ch.basic_cancel(tag)
    return got


def closed_with(fn):
    """The (code, text) a channel error gave, or None if fn went through."""
    try:
        fn()
    except pika.exceptions.ChannelClosedByBroker as e:
        return (e.reply_code, e.reply_text)
    return None


def reply_name(conn, ch, uid):
    """The name hopper gives ch's reply consumer: a request published on ch
    to an exclusive queue shows it."""
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"probe", pika.BasicProperties(reply_to=RT, correlation_id=uid))
    (_, props, _), = take(conn, ch, q)
    return props.reply_to


def test_rpc_request_through_kafka_reply_straight_back(hopper_factory, kafka, uid):
    h = hopper_factory(RABBIT)
    rq = "rpc-rt-" + uid
    props = dict(content_type="application/json", correlation_id="c-" + uid, headers={"n": 7}, delivery_mode=2)
    with connect(h.url) as server, connect(h.url) as client:
        sch = server.channel()
        sch.queue_declare(rq, durable=True)
        sch.confirm_delivery()
        cch = client.channel()
        cch.confirm_delivery()
        replies = []
        ctag = cch.basic_consume(RT, lambda c, m, p, b: replies.append((m, p, b)), auto_ack=True)
        cch.basic_publish("", rq, b"ping", pika.BasicProperties(reply_to=RT, **props))

        (method, p, body), = take(server, sch, rq, auto_ack=False)
        name = p.reply_to
        assert name.startswith(RT + ".") and len(name) > len(RT) + 20
        assert (p.content_type, p.correlation_id, p.headers, p.delivery_mode, body) == (
            "application/json",
            "c-" + uid,
            {"n": 7},
            2,
            b"ping",
        )
        sch.basic_publish("", name, b"pong", pika.BasicProperties(correlation_id=p.correlation_id))  # acked
        sch.basic_ack(method.delivery_tag)

        (m, rp, rbody), = wait_for(client, replies, 1)
        assert (m.consumer_tag, m.exchange, m.routing_key, m.redelivered) == (ctag, "", name, False)
        assert (rp.correlation_id, rbody) == ("c-" + uid, b"pong")

    # The request's record carries the rewritten reply_to, in its header and
    # in the property bytes, encoded as the client would have.
    (rec,) = kafka.read_exactly(rq, 1)
    assert rec.header("amqp.reply_to") == name
    assert rec.headers["amqp.properties"] == b"".join(pika.BasicProperties(reply_to=name, **props).encode())
    # The reply never went to Kafka: no topic was even made for its name.
    assert not kafka.topic_exists(name, timeout=3)


def test_errors_and_declare_answers_are_rabbitmqs(hopper_factory, uid):
    h = hopper_factory(RABBIT)
    with connect(h.url) as conn:
        ch = conn.channel()
        ok = ch.queue_declare(RT, passive=True).method
        assert (ok.queue, ok.message_count, ok.consumer_count) == (RT, 0, 1)
        ok = ch.queue_declare(RT).method  # not passive: the same answer
        assert (ok.queue, ok.message_count, ok.consumer_count) == (RT, 0, 1)
        assert closed_with(lambda: ch.queue_declare(RT + ".nobody-" + uid, passive=True)) == (
            404,
            "NOT_FOUND - no queue '%s.nobody-%s' in vhost '/'" % (RT, uid),
        )
        ch = conn.channel()
        assert closed_with(lambda: ch.basic_consume(RT, lambda *a: None, auto_ack=False)) == (
            406,
            "PRECONDITION_FAILED - reply consumer cannot acknowledge",
        )
        ch = conn.channel()
        assert closed_with(lambda: ch.basic_get(RT, auto_ack=True)) == (
            404,
            "NOT_FOUND - no queue 'amq.rabbitmq.reply-to' in vhost '/'",
        )
        ch = conn.channel()
        ch.confirm_delivery()
        no_consumer = (406, "PRECONDITION_FAILED - fast reply consumer does not exist")
        assert closed_with(lambda: ch.basic_publish("", "x-" + uid, b"", pika.BasicProperties(reply_to=RT))) == no_consumer

        ch = conn.channel()
        ch.confirm_delivery()
        tag = ch.basic_consume(RT, lambda *a: None, auto_ack=True)
        name = reply_name(conn, ch, uid)
        ok = ch.queue_declare(name, passive=True).method
        assert (ok.queue, ok.message_count, ok.consumer_count) == (name, 0, 1)
        # Nobody else can reach the hidden queue as a queue.
        other = conn.channel()
        assert closed_with(lambda: other.basic_consume(name, lambda *a: None, auto_ack=True)) == (
            404,
            "NOT_FOUND - no queue '%s' in vhost '/'" % name,
        )
        assert closed_with(lambda: ch.basic_consume(RT, lambda *a: None, auto_ack=True)) == (
            406,
            "PRECONDITION_FAILED - reply consumer already set",
        )

        ch = conn.channel()
        ch.confirm_delivery()
        tag = ch.basic_consume(RT, lambda *a: None, auto_ack=True)
        ch.basic_cancel(tag)
        assert closed_with(lambda: ch.basic_publish("", "x-" + uid, b"", pika.BasicProperties(reply_to=RT))) == no_consumer
        # A reply_to the client spelt itself is left alone.
        ch = conn.channel()
        ch.confirm_delivery()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"", pika.BasicProperties(reply_to=RT + ".mine"))
        (_, p, _), = take(conn, ch, q)
        assert p.reply_to == RT + ".mine"


def test_a_reply_to_a_gone_consumer_is_dropped_and_hopper_goes_on(hopper_factory, kafka, uid):
    h = hopper_factory(RABBIT)
    with connect(h.url) as replier, connect(h.url) as client:
        rch = replier.channel()
        rch.confirm_delivery()
        cch = client.channel()
        cch.confirm_delivery()
        got = []
        cch.basic_consume(RT, lambda c, m, p, b: got.append(b), auto_ack=True)
        name = reply_name(client, cch, uid)

        # As RabbitMQ 3.10: a mandatory reply is returned even when delivered.
        with pytest.raises(pika.exceptions.UnroutableError):
            rch.basic_publish("", name, b"r1", mandatory=True)
        assert wait_for(client, got, 1) == [b"r1"]

        cch.close()  # the reply consumer goes with its channel
        rch.basic_publish("", name, b"r2")  # confirmed, dropped
        with pytest.raises(pika.exceptions.UnroutableError):
            rch.basic_publish("", name, b"r3", mandatory=True)
        with pytest.raises(pika.exceptions.UnroutableError):
            rch.basic_publish("", RT + ".never-" + uid, b"r4", mandatory=True)

        # A new reply consumer on the same connection gets a new name; the
        # old one stays dead.
        cch = client.channel()
        cch.confirm_delivery()
        got2 = []
        cch.basic_consume(RT, lambda c, m, p, b: got2.append(b), auto_ack=True)
        name2 = reply_name(client, cch, uid)
        assert name2 != name
        rch.basic_publish("", name, b"old")
        rch.basic_publish("", name2, b"new")
        assert wait_for(client, got2, 1) == [b"new"]
        client.process_data_events(0.5)
        assert got2 == [b"new"]
    # A closed connection takes its reply consumer with it.
    with connect(h.url) as replier:
        rch = replier.channel()
        rch.confirm_delivery()
        rch.basic_publish("", name2, b"late")
    assert not kafka.topic_exists(name, timeout=3)


@pytest.mark.deadline(300)
def test_two_hundred_rpcs_in_a_row_are_all_answered(hopper_factory, uid):
    h = hopper_factory(RABBIT)
    rq = "rpc-many-" + uid
    n = 200
    stop = threading.Event()
    served = []
    ready = threading.Event()

    def serve():
        with connect(h.url) as server:
            ch = server.channel()
            ch.queue_declare(rq, durable=True)
            ch.basic_qos(prefetch_count=10)

            def on_request(c, method, props, body):
                c.basic_publish("", props.reply_to, body.upper(), pika.BasicProperties(correlation_id=props.correlation_id))
                c.basic_ack(method.delivery_tag)
                served.append(props.reply_to)

            ch.basic_consume(rq, on_request)
            ready.set()
            while not stop.is_set():
                server.process_data_events(0.1)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert ready.wait(60)
    try:
        with connect(h.url) as client:
            ch = client.channel()
            answers = {}
            tags = set()

            def on_reply(c, method, props, body):
                answers[props.correlation_id] = body
                tags.add(method.delivery_tag)

            ch.basic_consume(RT, on_reply, auto_ack=True)
            for i in range(n):
                cid = "%s-%d" % (uid, i)
                ch.basic_publish("", rq, b"call %d" % i, pika.BasicProperties(reply_to=RT, correlation_id=cid))
                deadline = time.monotonic() + 30
                while cid not in answers and time.monotonic() < deadline:
                    client.process_data_events(0.05)
                assert answers.get(cid) == b"CALL %d" % i, "RPC %d not answered" % i
            assert len(answers) == n
            # RabbitMQ 3.10 gives replies the channel's next delivery tag
            # without using it up.
            assert tags == {1}
    finally:
        stop.set()
        t.join(30)
    assert len(served) == n and len(set(served)) == 1
