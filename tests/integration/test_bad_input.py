"""Bad input gets the right AMQP answer, and never disturbs anyone else."""

import struct
import threading
import time

import pika
import pytest

import amqpwire as w
from hopperproc import scaled
from pikautil import connect


def test_publish_to_unknown_exchange_closes_channel_404(hopper, kafka, uid):
    with connect(hopper.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
            ch.basic_publish("never-declared-" + uid, "rk", b"lost")
        assert exc.value.reply_code == 404, exc.value
        assert ch.is_closed
        assert conn.is_open

        # The connection stays usable.
        ch2 = conn.channel()
        ch2.confirm_delivery()
        ch2.basic_publish("events", "after.404." + uid, b"still works")
    assert not kafka.topic_exists("never-declared-" + uid)


def test_wrong_protocol_header_gets_ours_and_close(hopper):
    with w.Wire(hopper.port) as s:
        s.send(b"HTTP/1.1 GET /\r\n\r\n")
        assert s.read_until_eof(timeout=10) == w.PROTOCOL_HEADER


def test_oversize_frame_before_tune_gets_501(hopper):
    with w.Wire(hopper.port) as s:
        s.send(w.PROTOCOL_HEADER)
        s.expect_method(w.CONNECTION_START)
        # A method frame on channel 0 announcing 100000 payload bytes, far
        # over the 4096 allowed before tune; the payload never comes.
        s.send(struct.pack(">BHI", w.FRAME_METHOD, 0, 100000))
        f = s.read_frame(timeout=10)
        assert f is not None and f.method == w.CONNECTION_CLOSE, f
        code, text, _, _ = w.parse_close(f.args)
        assert code == 501, (code, text)
        # hopper cannot resync after a bad frame: it closes the socket
        # without waiting for close-ok (leftover frames would be an error too).
        assert s.read_until_eof(timeout=10) == b""


# ---- malformed input, one case per connection ---------------------------------------

# What hopper must answer:
#   HEADER     its protocol header, then EOF (bad protocol header)
#   CLOSE_501  connection.close 501 FRAME_ERROR, then EOF
#   CLOSE_505  connection.close 505 UNEXPECTED_FRAME
#   CLOSE_540  connection.close 540 NOT_IMPLEMENTED
#   CLOSE      a connection.close or channel.close with an error code
#   HANG_UP    nothing; the client goes away without finishing
HEADER, CLOSE, HANG_UP = "header", "close", "hang up"
CLOSE_501, CLOSE_505, CLOSE_540 = "close 501", "close 505", "close 540"


def _publish_with_body_overrun(exchange):
    out = w.method_frame(1, w.BASIC_PUBLISH, struct.pack(">H", 0) + w.shortstr(exchange) + w.shortstr("k") + b"\x00")
    out += w.frame(w.FRAME_HEADER, 1, struct.pack(">HHQ", 60, 0, 3) + b"\x00\x00")
    return out + w.frame(w.FRAME_BODY, 1, b"0123456789")  # 10 bytes where 3 were announced


# (name, after handshake + channel 1 in confirm mode?, bytes, expected)
BAD_CASES = [
    ("tls-client-hello", False, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200), HEADER),
    ("amqp-0-8-header", False, b"AMQP\x01\x01\x00\x09", HEADER),
    ("half-header", False, w.PROTOCOL_HEADER[:5], HANG_UP),
    ("noise-after-header", False, w.PROTOCOL_HEADER + bytes(range(256)) * 4, CLOSE_501),
    ("bad-frame-end", False, w.PROTOCOL_HEADER + w.frame(w.FRAME_METHOD, 0, b"\x00\x0a\x00\x0b", end=0), CLOSE_501),
    ("4gib-frame", False, w.PROTOCOL_HEADER + struct.pack(">BHI", 1, 0, 0xFFFFFFFF), CLOSE_501),
    ("unknown-frame-type", False, w.PROTOCOL_HEADER + w.frame(77, 0, b"junk"), CLOSE_501),
    ("short-method-frame", False, w.PROTOCOL_HEADER + w.frame(w.FRAME_METHOD, 0, b"\x00"), CLOSE_501),
    ("heartbeat-on-channel-5", False, w.PROTOCOL_HEADER + w.frame(w.FRAME_HEARTBEAT, 5, b""), CLOSE_501),
    ("unknown-method", False, w.PROTOCOL_HEADER + w.method_frame(0, (999, 999)), CLOSE),
    ("content-without-method", True, w.content_frames(1, b"orphan body"), CLOSE_505),
    (
        "headers-nested-5000-deep",
        True,
        w.publish_frames(1, "events", "deep", b"x", raw_props=w.headers_properties(w.nested_table(5000))),
        CLOSE,
    ),
    ("body-longer-than-announced", True, _publish_with_body_overrun("events"), CLOSE),
    ("body-frame-over-frame-max", True, w.frame(w.FRAME_BODY, 1, bytes(200000)), CLOSE_501),
    (
        "publish-immediate",
        True,
        w.method_frame(1, w.BASIC_PUBLISH, struct.pack(">H", 0) + w.shortstr("events") + w.shortstr("k") + b"\x02")
        + w.content_frames(1, b"now"),
        CLOSE_540,
    ),
]


def run_bad_case(port, after_handshake, data, expected, timeout=8.0):
    """Send one bad input on a fresh connection; return None if hopper answered
    as `expected`, else a description of what it did."""
    with w.RawClient(port) as c:
        if after_handshake:
            c.handshake()
            c.open_channel(1, confirm=True)
        try:
            c.send(data)
        except ConnectionError:
            pass  # hopper may close before reading everything we send
        if expected == HANG_UP:
            return None
        try:
            if expected == HEADER:
                got = c.read_until_eof(timeout)
                return None if got == w.PROTOCOL_HEADER else "expected our header then EOF, got %r" % got
            deadline = time.monotonic() + timeout
            while True:
                f = c.read_frame(max(0.01, deadline - time.monotonic()))
                if f is None:
                    return "EOF without connection.close or channel.close"
                if f.method == w.CONNECTION_CLOSE:
                    code, text, _, _ = w.parse_close(f.args)
                    if expected != CLOSE and expected != "close %d" % code:
                        return "expected %s, got connection.close %d %s" % (expected, code, text)
                    if code < 300:
                        return "connection.close with non-error code %d %s" % (code, text)
                    try:
                        c.send(w.method_frame(0, w.CONNECTION_CLOSE_OK))
                    except ConnectionError:
                        pass
                    rest = c.read_until_eof(timeout)
                    return None if not rest else "bytes after connection.close: %r" % rest[:64]
                if f.method == w.CHANNEL_CLOSE and expected == CLOSE:
                    code, text, _, _ = w.parse_close(f.args)
                    return None if code >= 300 else "channel.close with non-error code %d" % code
                if f.channel == 0 and f.method in (w.CONNECTION_START, w.CONNECTION_TUNE) or f.kind == w.FRAME_HEARTBEAT:
                    continue  # the handshake went on before hopper saw the bad bytes
                return "unexpected frame %r" % f
        except TimeoutError:
            return "no answer within %.0fs (connection left open)" % timeout


@pytest.mark.parametrize("name,after_handshake,data,expected", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_gets_the_right_answer(hopper, name, after_handshake, data, expected):
    problem = run_bad_case(hopper.port, after_handshake, data, expected)
    assert problem is None, "%s: %s\n%s" % (name, problem, hopper.log_tail(20))
    assert hopper.alive(), hopper.log_tail()


def test_bad_clients_do_not_disturb_a_good_publisher(hopper, kafka, uid):
    stop = threading.Event()
    errors = []
    rounds = [0]

    def vandal():
        try:
            while not stop.is_set():
                for name, after, data, expected in BAD_CASES:
                    problem = run_bad_case(hopper.port, after, data, expected)
                    if problem:
                        errors.append("%s: %s" % (name, problem))
                rounds[0] += 1
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append("vandal crashed: %r" % e)

    start = kafka.end_offsets("events-topic")
    t = threading.Thread(target=vandal, daemon=True)
    keys = []
    try:
        with connect(hopper.url) as conn:
            ch = conn.channel()
            ch.confirm_delivery()
            t.start()
            deadline = time.monotonic() + 90
            # Publish until the bad clients went through every case at least
            # twice, and at least 50 messages.
            while (rounds[0] < 2 or len(keys) < 50) and t.is_alive():
                assert time.monotonic() < deadline, "bad clients made only %d rounds: %r" % (rounds[0], errors)
                key = "good.%s.%d" % (uid, len(keys))
                ch.basic_publish("events", key, b"good")  # raises unless acked
                keys.append(key)
    finally:
        stop.set()
        if t.is_alive():
            t.join(60)
    assert not errors, "bad clients got unexpected answers: %r" % errors
    assert hopper.alive(), hopper.log_tail()
    prefix = "good.%s." % uid
    recs = kafka.read_exactly("events-topic", len(keys), start=start, timeout=30, match=lambda r: (r.key or b"").decode().startswith(prefix))
    assert sorted(r.key.decode() for r in recs) == sorted(keys)


def test_crossing_channel_closes_keep_the_connection(hopper, uid):
    """hopper closes channel 1 (404) while the client closes it too: each
    side answers the other's close with close-ok, as on RabbitMQ, and the
    connection and its other channels go on (amqp091-go's
    TestChannelExceptionWithCloseIssue43 does exactly this)."""
    with w.RawClient(hopper.port) as c:
        c.handshake()
        c.open_channel(1)
        c.open_channel(2)
        # The publish that makes hopper close channel 1, and the client's own
        # close, sent before either side has seen the other's.
        c.send(w.publish_frames(1, "never-declared-" + uid, "rk", b"x")
               + w.method_frame(1, w.CHANNEL_CLOSE, struct.pack(">H", 200) + w.shortstr("bye") + struct.pack(">HH", 0, 0)))
        closes = [c.expect_method(w.CHANNEL_CLOSE), c.expect_method(w.CHANNEL_CLOSE_OK)]
        assert w.parse_close(closes[0].args)[0] == 404
        c.send(w.method_frame(1, w.CHANNEL_CLOSE_OK))
        # Channel 2 still works, and channel 1 can be opened again.
        c.send(w.method_frame(2, w.QUEUE_DECLARE, struct.pack(">H", 0) + w.shortstr("q-" + uid) + b"\x00" + w.table({})))
        c.expect_method(w.QUEUE_DECLARE_OK)
        c.open_channel(1)


def test_consuming_methods_get_540_named_as_in_the_spec(hopper):
    """Without --enable-rabbit hopper publishes only: basic.consume is
    refused with 540 and a text that names the method the way the spec and
    RabbitMQ's logs do, and says how to turn task queues on."""
    with w.RawClient(hopper.port) as c:
        c.handshake()
        c.open_channel(1)
        args = struct.pack(">H", 0) + w.shortstr("q") + w.shortstr("") + b"\x00" + w.table({})
        c.send(w.method_frame(1, w.BASIC_CONSUME, args))
        f = c.expect_method(w.CONNECTION_CLOSE)
        code, text, cls, meth = w.parse_close(f.args)
        assert (code, cls, meth) == (540, 60, 20), (code, text, cls, meth)
        assert text == (
            "NOT_IMPLEMENTED - method basic.consume needs task queues: run hopper with "
            "--enable-rabbit or set rabbit.enabled: true"
        )
        c.send(w.method_frame(0, w.CONNECTION_CLOSE_OK))
        assert c.read_until_eof(timeout=10) == b""


def test_client_close_waits_for_the_client_to_hang_up(hopper):
    """After close-ok, the client closes TCP first (as with RabbitMQ): hopper
    closing at once can make a client's read of close-ok fail with a reset.
    A client that never hangs up is let go after a few seconds."""
    bye = w.method_frame(0, w.CONNECTION_CLOSE, struct.pack(">H", 200) + w.shortstr("bye") + struct.pack(">HH", 0, 0))
    with w.RawClient(hopper.port) as c:
        c.handshake()
        c.send(bye)
        c.expect_method(w.CONNECTION_CLOSE_OK)
        c.sock.settimeout(1.0)  # not scaled: hopper waits 3 s, even under valgrind
        with pytest.raises(TimeoutError):
            c.sock.recv(1)  # hopper keeps its end open
        t0 = time.monotonic()
        assert c.read_until_eof(timeout=15) == b""  # and closes it in the end
        assert time.monotonic() - t0 < scaled(6)
