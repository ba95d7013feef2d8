"""A confirm means Kafka has the record: while all three brokers are down a
publish gets no confirm; when they are back it gets its ack and the record
is in Kafka. A shutdown while they are down nacks instead of hanging."""

import signal
import threading
import time

import pika
import pytest

import amqpwire as w
from hopperproc import cluster, ensure_cluster
from pikautil import connect

NO_CONFIRM_WINDOW = 5.0  # seconds the publish must stay unconfirmed while Kafka is down
RECOVERY_TIMEOUT = 120.0


class Publisher:
    """A pika connection owned by one worker thread (pika is not
    thread-safe): publishes `first` at once, then `second` when go() is
    called; result is "ack", "nack" or "error: ..."."""

    def __init__(self, url, exchange, first, second):
        self.url, self.exchange, self.first, self.second = url, exchange, first, second
        self.ready = threading.Event()
        self._go = threading.Event()
        self.done = threading.Event()
        self.sent = False
        self.result = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def go(self):
        self._go.set()

    def _run(self):
        try:
            # A long heartbeat: the cluster restart takes a while.
            with connect(self.url, heartbeat=600, blocked_connection_timeout=600) as conn:
                ch = conn.channel()
                ch.confirm_delivery()
                # Creates the topic and proves the path while Kafka is up.
                ch.basic_publish(self.exchange, "k", self.first)
                self.ready.set()
                while not self._go.wait(0.2):
                    conn.process_data_events(0)  # keep heartbeats flowing
                self.sent = True
                ch.basic_publish(self.exchange, "k", self.second)
                self.result = "ack"
        except pika.exceptions.NackError:
            self.result = "nack"
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.result = self.result or "error: %r" % e
        finally:
            self.done.set()


def stop_cluster():
    r = cluster("stop")
    assert r.returncode == 0, r.stdout
    assert cluster("status", timeout=60).returncode != 0, "cluster still running after stop"


@pytest.mark.slow
@pytest.mark.deadline(420)
def test_no_confirm_while_kafka_is_down_then_ack(hopper_factory, kafka, uid):
    exchange = "outage-" + uid
    h = hopper_factory({"exchanges": [{"name": exchange, "type": "direct", "vhost": "/"}]})
    second = b"during outage " + uid.encode()
    p = Publisher(h.url, exchange, b"before outage", second)
    try:
        assert p.ready.wait(60), "first publish not confirmed: %r\n%s" % (p.result, h.log_tail())
        stop_cluster()

        p.go()
        # The confirm must not come while every broker is down.
        assert not p.done.wait(NO_CONFIRM_WINDOW), "publisher got %r with all brokers down\n%s" % (
            p.result,
            h.log_tail(),
        )
        assert p.sent, "the publisher never sent its message"

        r = cluster("start")
        assert r.returncode == 0, r.stdout
        assert p.done.wait(RECOVERY_TIMEOUT), "no confirm %.0fs after Kafka came back\n%s" % (
            RECOVERY_TIMEOUT,
            h.log_tail(),
        )
        assert p.result == "ack", "%s\n%s" % (p.result, h.log_tail())
    finally:
        p.go()
        ensure_cluster()  # whatever happened, leave the cluster running
        p.thread.join(30)

    recs = kafka.read_exactly(exchange, 2, timeout=60)
    assert sorted(r.value for r in recs) == sorted([b"before outage", second])


@pytest.mark.slow
@pytest.mark.deadline(420)
def test_sigterm_while_kafka_is_down_nacks_and_exits_0(hopper_factory, uid):
    exchange = "downstop-" + uid
    h = hopper_factory(
        {"limits": {"drain_timeout": 2000}, "exchanges": [{"name": exchange, "type": "direct", "vhost": "/"}]}
    )
    # A raw client: pika drops a nack that arrives together with the
    # connection.close that follows it, so it cannot tell the order.
    tracker = w.ConfirmTracker()
    try:
        with w.RawClient(h.port) as c:
            c.handshake()
            c.open_channel(1, confirm=True)
            tracker.publish("before")
            c.send(w.publish_frames(1, exchange, "k", b"before outage"))
            f = c.expect_method(w.BASIC_ACK, timeout=60)
            tracker.feed(f)

            stop_cluster()
            tracker.publish("during")
            c.send(w.publish_frames(1, exchange, "k", b"never persisted"))
            with pytest.raises(TimeoutError):
                f = c.read_frame(timeout=2)
                raise AssertionError("got %r with all brokers down" % f)

            # First SIGTERM: drain for drain_timeout (2 s), then nack what is
            # left, close connections with 320 and exit 0, Kafka or not.
            t0 = time.monotonic()
            h.signal(signal.SIGTERM)
            frames = []
            while True:
                f = c.read_frame(timeout=15)
                if f is None:
                    break
                frames.append(f)
                if f.method in (w.BASIC_ACK, w.BASIC_NACK):
                    tracker.feed(f)
                elif f.method == w.CONNECTION_CLOSE:
                    c.send(w.method_frame(0, w.CONNECTION_CLOSE_OK))
            methods = [f.method for f in frames]
            assert methods == [w.BASIC_NACK, w.CONNECTION_CLOSE], frames
            assert w.parse_close(frames[-1].args)[0] == 320
            assert tracker.nacked == {2: "during"}
        code = h.wait(timeout=15)
        took = time.monotonic() - t0
        assert code == 0, "exit code %r after SIGTERM with Kafka down\n%s" % (code, h.log_tail())
        assert took < 10, "exit took %.1fs with drain_timeout 2 s" % took
    finally:
        ensure_cluster()
