"""SIGTERM drains: every publish hopper took in gets its confirm before the
connection closes, and hopper exits 0."""

import re
import signal
import time

import amqpwire as w

N_MESSAGES = 300


def test_sigterm_with_messages_in_flight_confirms_them_and_exits_0(hopper_factory, kafka, uid):
    exchange = "drain-" + uid
    # hopper does not create the topic: the test does, after SIGTERM, so no
    # publish can be confirmed before the drain begins.
    h = hopper_factory(
        {
            "kafka": {"auto_create_topics": False},
            "exchanges": [{"name": exchange, "type": "direct", "vhost": "/"}],
        }
    )
    tracker = w.ConfirmTracker()

    with w.RawClient(h.port) as c:
        c.handshake()
        c.open_channel(1, confirm=True)
        # Pipelined to a topic that does not exist yet: librdkafka holds the
        # messages (up to topic.metadata.propagation.max.ms, 30 s) until it
        # does, so all of them are in flight when SIGTERM comes.
        data = b"".join(w.publish_frames(1, exchange, "k", b"%d" % tracker.publish(i)) for i in range(1, N_MESSAGES + 1))
        # hopper handles a connection's frames in order: once channel 2 is
        # open, it has taken in all the publishes sent before.
        c.send(data + w.method_frame(2, w.CHANNEL_OPEN, w.shortstr("")))
        deadline = time.monotonic() + 30
        while True:
            f = c.read_frame(timeout=max(0.01, deadline - time.monotonic()))
            assert f is not None, "EOF before channel.open-ok"
            if f.method == w.CHANNEL_OPEN_OK:
                break
            assert f.method in (w.BASIC_ACK, w.BASIC_NACK), f
            tracker.feed(f)
        h.signal(signal.SIGTERM)
        h.wait_for_log("shutting down:")
        kafka.create_topic(exchange)
        deadline = time.monotonic() + 20
        close = None
        while True:
            f = c.read_frame(timeout=max(0.01, deadline - time.monotonic()))
            if f is None:
                break
            if f.method in (w.BASIC_ACK, w.BASIC_NACK):
                assert close is None, "confirm after connection.close"
                tracker.feed(f)
            elif f.method == w.CONNECTION_CLOSE:
                close = w.parse_close(f.args)
                c.send(w.method_frame(0, w.CONNECTION_CLOSE_OK))
            elif f.kind != w.FRAME_HEARTBEAT:
                raise AssertionError("unexpected frame %r" % f)

    code = h.wait()
    assert code == 0, "exit code %r after SIGTERM\n%s" % (code, h.log_tail())
    assert close is not None and close[0] == 320, "expected connection.close 320 CONNECTION_FORCED, got %r" % (close,)
    # Every publish hopper took in has an outcome (Kafka is up: acks).
    assert not tracker.pending, "no confirm for %d publishes, e.g. %r\n%s" % (
        len(tracker.pending),
        sorted(tracker.pending)[:10],
        h.log_tail(),
    )
    recs = kafka.read(exchange, len(tracker.acked), timeout=30)
    in_kafka = {int(r.value) for r in recs}
    lost = sorted(tracker.acked_ids() - in_kafka)
    assert not lost, "acked but not in Kafka: %r" % lost[:20]
    # The drain had work to do: every publish was in flight at SIGTERM.
    in_flight = re.search(r"shutting down: .*; (\d+) messages in flight", h.log_text())
    assert in_flight, "no 'shutting down' line in hopper's log\n%s" % h.log_tail()
    assert int(in_flight.group(1)) == N_MESSAGES, "%s of %d messages in flight at SIGTERM\n%s" % (
        in_flight.group(1),
        N_MESSAGES,
        h.log_tail(),
    )
