"""A fatal librdkafka producer error (injected with SIGUSR2 under
HOPPER_TEST_HOOKS=1) nacks what is in flight and rebuilds the producer;
publishers republish nacked messages and nothing is lost."""

import signal
import threading
import time

import pika

import amqpwire as w
from pikautil import connect

N_MESSAGES = 500
N_PUBLISHERS = 4  # a few connections, so several messages are in flight at the signal


def test_fatal_producer_error_nacks_rebuilds_and_loses_nothing(hopper_factory, kafka, uid):
    exchange = "fatal-" + uid
    h = hopper_factory(
        {"exchanges": [{"name": exchange, "type": "topic", "vhost": "/"}]},
        env={"HOPPER_TEST_HOOKS": "1"},
    )
    lock = threading.Lock()
    confirmed = [0]
    nacks = [0]
    signalled = threading.Event()
    errors = []

    def publisher(worker):
        try:
            with connect(h.url) as conn:
                ch = conn.channel()
                ch.confirm_delivery()
                for i in range(worker, N_MESSAGES, N_PUBLISHERS):
                    body = b"%d" % i
                    for attempt in range(20):
                        try:
                            ch.basic_publish(exchange, "w%d" % worker, body)
                            break
                        except pika.exceptions.NackError:
                            with lock:
                                nacks[0] += 1
                    else:
                        raise AssertionError("message %d nacked 20 times" % i)
                    with lock:
                        confirmed[0] += 1
                        if confirmed[0] == N_MESSAGES // 2 and not signalled.is_set():
                            signalled.set()
                            h.signal(signal.SIGUSR2)
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append("publisher %d: %r" % (worker, e))

    threads = [threading.Thread(target=publisher, args=(n,), daemon=True) for n in range(N_PUBLISHERS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "publishers still running after 120 s\n" + h.log_tail()
    assert not errors, "%r\n%s" % (errors, h.log_tail())
    assert signalled.is_set()
    assert confirmed[0] == N_MESSAGES

    h.wait_for_log("rebuilding producer", timeout=15)
    assert h.alive(), h.log_tail()

    # Publishing still works after the rebuild.
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(exchange, "after", b"after")

    # At least once: every message is there (duplicates allowed after nacks).
    total = kafka.count(exchange)
    assert total >= N_MESSAGES + 1
    recs = kafka.read(exchange, total, timeout=60)
    bodies = {r.value for r in recs}
    missing = sorted(set(range(N_MESSAGES)) - {int(b) for b in bodies if b != b"after"})
    assert not missing, "lost %d confirmed messages, e.g. %r (nacks seen: %d)" % (len(missing), missing[:10], nacks[0])
    assert b"after" in bodies
    print("fatal error test: %d nacks republished, %d records for %d messages" % (nacks[0], total, N_MESSAGES + 1))


def test_fatal_error_with_pipelined_publishes_acks_only_what_kafka_has(hopper_factory, kafka, uid):
    """The verifier of DESIGN.md section 4 on one pipelined channel: each tag
    settled exactly once, every acked message in Kafka, nacked ones
    republished until acked."""
    exchange = "fatal-pipe-" + uid
    h = hopper_factory(
        {"exchanges": [{"name": exchange, "type": "topic", "vhost": "/"}]},
        env={"HOPPER_TEST_HOOKS": "1"},
    )
    n = 2000
    tracker = w.ConfirmTracker()

    def send(c, ids):
        frames = []
        for i in ids:
            tracker.publish(i)
            frames.append(w.publish_frames(1, exchange, "k%d" % (i % 8), b"%d" % i))
        c.send(b"".join(frames))

    def settle(c, until, timeout=60):
        deadline = time.monotonic() + timeout
        while not until():
            f = c.read_frame(timeout=max(0.01, deadline - time.monotonic()))
            assert f is not None, "EOF while waiting for confirms\n" + h.log_tail()
            assert f.method in (w.BASIC_ACK, w.BASIC_NACK), f
            tracker.feed(f)

    with w.RawClient(h.port) as c:
        c.handshake()
        c.open_channel(1, confirm=True)
        send(c, range(n // 2))
        settle(c, lambda: tracker.acked or tracker.nacked)
        h.signal(signal.SIGUSR2)
        send(c, range(n // 2, n))
        settle(c, lambda: not tracker.pending)
        h.wait_for_log("rebuilding producer", timeout=15)
        nacked_first = len(tracker.nacked)
        # Republish what was nacked until everything is acked.
        for _ in range(10):
            todo = sorted(set(range(n)) - tracker.acked_ids())
            if not todo:
                break
            send(c, todo)
            settle(c, lambda: not tracker.pending)
        assert not set(range(n)) - tracker.acked_ids(), "still nacked after 10 rounds\n" + h.log_tail()
    # Nacks are logged, but not one line per message: once per reason and
    # 10 s, with a count of what was left out.
    nack_lines = h.log_text().count("not persisted, nacked")
    assert (1 if tracker.nacked else 0) <= nack_lines <= 10, "%d nack lines for %d nacks" % (nack_lines, len(tracker.nacked))

    total = kafka.count(exchange)
    recs = kafka.read(exchange, total, timeout=60)
    assert len(recs) == total
    in_kafka = {int(r.value) for r in recs}
    # Acked must mean persisted: with the whole history of acks (before and
    # after the fatal error), nothing acked is missing.
    lost = sorted(set(tracker.acked.values()) - in_kafka)
    assert not lost, "acked but not in Kafka: %d, e.g. %r" % (len(lost), lost[:10])
    print(
        "pipelined fatal error: %d nacked at first, %d nacks in all, %d records for %d messages"
        % (nacked_first, len(tracker.nacked), total, n)
    )
