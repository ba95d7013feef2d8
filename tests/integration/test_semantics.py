"""AMQP answers clients depend on (DESIGN.md section 2): declare errors,
authentication, message size, bodies split across many frames."""

import os
import time

import pika
import pytest

import amqpwire as w
from pikautil import connect


def test_redeclare_with_other_type_is_406_and_connection_survives(hopper, uid):
    with connect(hopper.url) as conn:
        ch = conn.channel()
        # `events` exists from the config as a topic exchange.
        ch.exchange_declare("events", exchange_type="topic", durable=True)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
            ch.exchange_declare("events", exchange_type="direct", durable=True)
        assert exc.value.reply_code == 406, exc.value
        ch2 = conn.channel()
        ch2.exchange_declare("events", exchange_type="topic", passive=True)


def test_declare_reserved_amq_name_is_403(hopper, uid):
    with connect(hopper.url) as conn:
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
            ch.exchange_declare("amq.hopper-" + uid, exchange_type="topic")
        assert exc.value.reply_code == 403, exc.value
        assert conn.is_open


def test_passive_declare_of_missing_exchange_is_404(hopper, uid):
    with connect(hopper.url) as conn:
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
            ch.exchange_declare("missing-" + uid, exchange_type="topic", passive=True)
        assert exc.value.reply_code == 404, exc.value
        assert conn.is_open


def test_unknown_exchange_type_is_connection_error_503(hopper, uid):
    conn = pika.BlockingConnection(pika.URLParameters(hopper.url))
    try:
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as exc:
            ch.exchange_declare("odd-" + uid, exchange_type="x-no-such-type")
        assert exc.value.reply_code == 503, exc.value
    finally:
        if conn.is_open:
            conn.close()


def test_wrong_password_is_refused(hopper, uid):
    password = "not-guest-" + uid
    url = hopper.url.replace("guest:guest@", "guest:%s@" % password)
    # pika advertises authentication_failure_close: hopper answers 403.
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as exc:
        pika.BlockingConnection(pika.URLParameters(url))
    assert "403" in str(exc.value) or "ACCESS_REFUSED" in str(exc.value), exc.value
    hopper.wait_for_log("failed to authenticate", timeout=5)
    assert password not in hopper.log_text(), "password in the log"


def test_message_over_max_size_closes_channel_406(hopper_factory, kafka, uid):
    exchange = "size-" + uid
    h = hopper_factory(
        {"limits": {"max_message_size": 65536}, "exchanges": [{"name": exchange, "type": "direct", "vhost": "/"}]}
    )
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
            # Body frames follow the header hopper refused; they must be
            # ignored on the closing channel, not break the connection.
            ch.basic_publish(exchange, "big", b"x" * 300000)
        assert exc.value.reply_code == 406, exc.value
        ch2 = conn.channel()
        ch2.confirm_delivery()
        ch2.basic_publish(exchange, "fits", b"y" * 65536)
    [rec] = kafka.read_exactly(exchange, 1, timeout=30)
    assert rec.value == b"y" * 65536


@pytest.mark.parametrize("frame_max", [4096, 131072])
def test_large_body_across_many_frames(hopper_factory, kafka, uid, frame_max):
    exchange = "large-%d-%s" % (frame_max, uid)
    h = hopper_factory({"exchanges": [{"name": exchange, "type": "direct", "vhost": "/"}]})
    body = os.urandom(1 << 20)  # 1 MiB: 257 body frames at frame_max 4096
    # frame_max 4096 is what old clients ask for in tune-ok; hopper must take it.
    with connect(h.url, frame_max=frame_max) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(exchange, "big", body, pika.BasicProperties(headers={"size": len(body)}))
        ch.basic_publish(exchange, "empty", b"")
    recs = kafka.read_exactly(exchange, 2, timeout=30)
    by_key = {r.key: r for r in recs}
    assert by_key[b"big"].value == body
    assert by_key[b"big"].header("size") == str(len(body))
    # An empty body is an empty value (confluent-kafka shows it as None or b"").
    assert by_key[b"empty"].value in (b"", None)


def _settle(c, trackers, until, timeout=30):
    deadline = time.monotonic() + timeout
    while not until():
        f = c.read_frame(timeout=max(0.01, deadline - time.monotonic()))
        assert f is not None, "EOF while waiting for confirms"
        assert f.method in (w.BASIC_ACK, w.BASIC_NACK), f
        assert f.channel in trackers, "confirm on channel %d, which is not in confirm mode: %r" % (f.channel, f)
        trackers[f.channel].feed(f)


def test_confirms_are_numbered_per_channel(hopper_factory, kafka, uid):
    exchange = "chans-" + uid
    h = hopper_factory({"exchanges": [{"name": exchange, "type": "direct", "vhost": "/"}]})
    trackers = {ch: w.ConfirmTracker() for ch in (1, 2, 3)}
    with w.RawClient(h.port) as c:
        c.handshake()
        for ch in (1, 2, 3):
            c.open_channel(ch, confirm=True)
        c.open_channel(4)  # no confirm.select: must never see a confirm
        frames = []
        for i in range(100):
            for ch in (1, 2, 3, 4):
                if ch in trackers:
                    trackers[ch].publish(i)
                frames.append(w.publish_frames(ch, exchange, "ch%d" % ch, b"%d:%d" % (ch, i)))
        c.send(b"".join(frames))
        _settle(c, trackers, lambda: not any(t.pending for t in trackers.values()))
        for ch, t in trackers.items():
            assert not t.nacked, (ch, sorted(t.nacked)[:10])
            assert sorted(t.acked) == list(range(1, 101)), ch
        # A round trip after all of it: a stray confirm on channel 4 would
        # have arrived before channel 5's open-ok.
        c.send(w.method_frame(5, w.CHANNEL_OPEN, w.shortstr("")))
        f = c.read_frame(timeout=10)
        assert f is not None and f.method == w.CHANNEL_OPEN_OK, f
    recs = kafka.read_exactly(exchange, 400, timeout=30)
    for ch in (1, 2, 3, 4):
        vals = [int(r.value.split(b":")[1]) for r in recs if r.key == b"ch%d" % ch]
        assert vals == list(range(100)), "channel %d: %r" % (ch, vals[:20])


def test_publish_sent_one_byte_at_a_time(hopper_factory, kafka, uid):
    exchange = "bytes-" + uid
    h = hopper_factory({"exchanges": [{"name": exchange, "type": "direct", "vhost": "/"}]})
    props = pika.BasicProperties(content_type="text/plain", headers={"x-split": "yes"})
    raw_props = b"".join(props.encode())
    body = b"assembled across reads " + uid.encode()
    tracker = w.ConfirmTracker()
    with w.RawClient(h.port) as c:
        c.handshake()
        c.open_channel(1, confirm=True)
        data = w.publish_frames(1, exchange, "split", body, raw_props=raw_props)
        tracker.publish(1)
        for i in range(len(data)):
            c.send(data[i : i + 1])  # TCP_NODELAY: one segment per byte
        _settle(c, {1: tracker}, lambda: not tracker.pending)
        assert list(tracker.acked) == [1]
    [rec] = kafka.read_exactly(exchange, 1, timeout=30)
    assert rec.value == body
    assert rec.headers["amqp.properties"] == raw_props
    assert rec.header("x-split") == "yes"
