"""Every limit in `limits.*` (docs/limits.md), crossed with a real socket.

Each test checks two things: what the client that crosses the limit sees
(the exact close code, a refused socket, a stalled send), and that another
connection, opened before and publishing with confirms, kept working: its
publishes are acked and its records are in Kafka.

Tests that need publishes to stay unconfirmed do not touch the shared
cluster: they turn off hopper's topic creation and publish to a topic that
does not exist, which librdkafka holds for
`topic.metadata.propagation.max.ms` before failing it; the bystander
publishes to a topic the test created, so its confirms still come.
"""

import json
import select
import signal
import struct
import threading
import time

import pika
import pytest

import amqpwire as w
from hopperproc import TIMEOUT_SCALE, sanitized, scaled, under_valgrind

MIB = 1 << 20
# Memory bounds are about hopper; valgrind's shadow memory and freed-block
# queue come on top of whatever hopper allocates.
MEM_SCALE = 3 if under_valgrind() else 2 if sanitized() else 1


# ---- helpers -----------------------------------------------------------------------


def direct(*names):
    return [{"name": n, "type": "direct", "vhost": "/"} for n in names]


def kafka_props(**extra):
    props = {"socket.nagle.disable": True}
    props.update(extra)
    return props


def stuck_config(stuck_exchange, ok_exchange, limits, propagation_ms=120000):
    """Publishes to `stuck_exchange` go to a topic that never exists: they
    stay unconfirmed for propagation_ms, then are nacked."""
    return {
        "limits": limits,
        "exchanges": direct(stuck_exchange, ok_exchange),
        "kafka": {
            "auto_create_topics": False,
            "properties": kafka_props(**{"topic.metadata.propagation.max.ms": propagation_ms}),
        },
    }


class Bystander:
    """A pika publisher with confirms on its own exchange, connected before
    a limit is crossed; used from the test's thread only."""

    def __init__(self, hopper, exchange, tag, heartbeat=None):
        self.exchange = exchange
        self.tag = tag
        self.keys = []
        self.blocked = []
        self.unblocked = []
        url = hopper.url if heartbeat is None else hopper.url + "?heartbeat=%d" % heartbeat
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        self.conn.add_on_connection_blocked_callback(lambda c, m: self.blocked.append(m.method.reason))
        self.conn.add_on_connection_unblocked_callback(lambda c, m: self.unblocked.append(True))
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()

    def publish(self, n=3):
        """n publishes; pika raises unless each one is acked."""
        for _ in range(n):
            key = "%s.%d" % (self.tag, len(self.keys))
            self.ch.basic_publish(self.exchange, key, b"bystander " + key.encode())
            self.keys.append(key)

    def wait_for(self, what, timeout=15):
        deadline = time.monotonic() + scaled(timeout)
        while not what():
            left = deadline - time.monotonic()
            assert left > 0, "bystander: condition not met within %.0fs" % scaled(timeout)
            self.conn.process_data_events(time_limit=min(0.2, left))

    def close(self):
        if self.conn.is_open:
            self.conn.close()

    def check_kafka(self, kafka, timeout=30):
        recs = kafka.read_exactly(self.exchange, len(self.keys), timeout=timeout)
        assert sorted(r.key.decode() for r in recs) == sorted(self.keys)


class BystanderThread:
    """A Bystander that publishes continuously in its own thread (pika is
    not thread-safe: the connection lives and dies in that thread)."""

    def __init__(self, hopper, exchange, tag):
        self.hopper, self.exchange, self.tag = hopper, exchange, tag
        self.keys = []
        self.error = None
        self.ready = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(scaled(30)), "bystander did not connect: %r" % self.error

    def _run(self):
        try:
            b = Bystander(self.hopper, self.exchange, self.tag)
            try:
                b.publish(1)
                self.keys = b.keys
                self.ready.set()
                while not self._stop.is_set():
                    b.publish(1)
                    time.sleep(0.02)  # pacing only; every publish waits for its ack
            finally:
                b.close()
        except Exception as e:  # noqa: BLE001 - reported by the test's thread
            self.error = e
        finally:
            self.ready.set()

    def acked(self):
        return len(self.keys)

    def stop(self):
        self._stop.set()
        self.thread.join(scaled(30))
        assert not self.thread.is_alive(), "bystander stuck in a publish"
        assert self.error is None, "bystander failed: %r" % self.error

    def check_kafka(self, kafka, timeout=60):
        recs = kafka.read_exactly(self.exchange, len(self.keys), timeout=timeout)
        assert sorted(r.key.decode() for r in recs) == sorted(self.keys)


def expect_close(c, code, timeout=10):
    """The next non-heartbeat frame is connection.close `code`; returns its text."""
    f = c.expect_method(w.CONNECTION_CLOSE, timeout=timeout)
    got, text, _, _ = w.parse_close(f.args)
    assert got == code, "connection.close %d %s, expected %d" % (got, text, code)
    return text


def close_ok_then_eof(c, timeout=10):
    """Answer close-ok; hopper must then close the socket and send nothing."""
    try:
        c.send(w.method_frame(0, w.CONNECTION_CLOSE_OK))
    except OSError:
        pass  # hopper may already have closed (framing errors do not wait)
    rest = c.read_until_eof(timeout)
    assert rest == b"", "bytes after connection.close: %r" % rest[:64]


def read_frames_until(c, stop, timeout):
    """Frames (heartbeats skipped) until stop(frame) is true; returns them all."""
    deadline = time.monotonic() + scaled(timeout)
    out = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("condition not met within %.0fs; got %r" % (scaled(timeout), out[-5:]))
        f = c._read_frame_by(deadline)
        if f is None:
            raise w.ProtocolError("EOF; got %r" % out[-5:])
        if f.kind == w.FRAME_HEARTBEAT:
            continue
        out.append(f)
        if stop(f):
            return out


def publish_bytes(channel, exchange, key, body, frame_max=131072, mandatory=False):
    """basic.publish, content header and the body split to frame_max."""
    args = struct.pack(">H", 0) + w.shortstr(exchange) + w.shortstr(key) + struct.pack(">B", 1 if mandatory else 0)
    out = [w.method_frame(channel, w.BASIC_PUBLISH, args)]
    out.append(w.frame(w.FRAME_HEADER, channel, struct.pack(">HHQ", 60, 0, len(body)) + b"\x00\x00"))
    step = frame_max - 8
    for i in range(0, len(body), step):
        out.append(w.frame(w.FRAME_BODY, channel, body[i : i + step]))
    return b"".join(out)


class Pusher:
    """Writes a byte stream to a non-blocking socket without ever reading it.

    push() stops when the budget (bytes or seconds) is used up, or when the
    socket accepted nothing for `stall` seconds: the peer stopped reading
    and every buffer between us is full."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.setblocking(False)
        self.sent = 0
        self.pending = b""

    def push(self, make_chunk, max_bytes, budget, stall, sample=None):
        deadline = time.monotonic() + budget
        last_progress = time.monotonic()
        while self.sent < max_bytes:
            now = time.monotonic()
            if now >= deadline:
                return "budget"
            if now - last_progress >= stall:
                return "stalled"
            if not self.pending:
                self.pending = make_chunk()
            _, writable, _ = select.select([], [self.sock], [], 0.1)
            if sample:
                sample()
            if not writable:
                continue
            try:
                n = self.sock.send(self.pending)
            except BlockingIOError:
                continue
            if n > 0:
                self.sent += n
                self.pending = self.pending[n:]
                last_progress = time.monotonic()
        return "done"


class RssWatch:
    """Largest VmRSS of hopper seen by sample()."""

    def __init__(self, hopper):
        self.hopper = hopper
        self.base = hopper.rss_kib()
        self.peak = self.base
        self._next = 0.0

    def sample(self):
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + 0.05
        self.peak = max(self.peak, self.hopper.rss_kib())

    def growth_mib(self):
        return (self.peak - self.base) / 1024.0


def raw_refused(port, timeout=3):
    """Connect and send the protocol header: True if hopper closed the
    socket without sending a single byte."""
    with w.Wire(port) as s:
        try:
            s.send(w.PROTOCOL_HEADER)
        except OSError:
            return True
        try:
            got = s.read_exact(7, timeout=timeout)
        except TimeoutError:
            return False
        return got == b""


def clean_close(c):
    """connection.close, close-ok, then hang up first, as clients do."""
    c.send(w.method_frame(0, w.CONNECTION_CLOSE, struct.pack(">H", 200) + w.shortstr("bye") + struct.pack(">HH", 0, 0)))
    c.expect_method(w.CONNECTION_CLOSE_OK)
    c.close()


# ---- max_connections --------------------------------------------------------------------


def test_max_connections_refuses_the_extra_socket_at_once(hopper_factory, kafka, uid):
    x = "lim-conns-" + uid
    h = hopper_factory({"limits": {"max_connections": 3}, "exchanges": direct(x)})
    b = Bystander(h, x, "conns")
    b.publish()
    a, c = w.RawClient(h.port), w.RawClient(h.port)
    try:
        a.handshake()
        c.handshake()  # three connections now: the bystander, a, c

        # The fourth: accepted by the kernel, closed by hopper at once,
        # without a byte of AMQP (no connection.start, no close).
        t0 = time.monotonic()
        assert raw_refused(h.port), "a 4th connection got AMQP bytes with max_connections: 3"
        assert time.monotonic() - t0 < scaled(2), "refusal was not immediate"
        h.wait_for_log("refusing connection: max_connections reached", timeout=5)

        b.publish()  # the open ones are unaffected
        a.open_channel(1, confirm=True)

        # Once one closes, a new connection is accepted.
        clean_close(a)
        deadline = time.monotonic() + scaled(10)
        while True:
            d = w.RawClient(h.port)
            try:
                d.handshake()
                break
            except (w.ProtocolError, OSError):
                d.close()
                # hopper frees the slot when its close-ok is written; retry until then
                assert time.monotonic() < deadline, "no connection accepted after one closed\n%s" % h.log_tail()
                time.sleep(0.05)
        d.open_channel(1)
        assert raw_refused(h.port), "over the limit again, but not refused"
        d.close()
        b.publish()
    finally:
        a.close()
        c.close()
        b.close()
    b.check_kafka(kafka)
    assert h.alive()


# ---- channel_max ------------------------------------------------------------------------


def test_channel_above_negotiated_channel_max_is_504(hopper_factory, kafka, uid):
    x = "lim-chan-" + uid
    h = hopper_factory({"exchanges": direct(x)})
    b = Bystander(h, x, "chan")
    b.publish()
    with w.RawClient(h.port) as c:
        c.handshake(channel_max=10)
        assert c.channel_max == 10
        c.open_channel(10)  # the last one allowed
        c.send(w.method_frame(11, w.CHANNEL_OPEN, w.shortstr("")))
        text = expect_close(c, 504)
        assert "11" in text, text
        close_ok_then_eof(c)
    b.publish()
    b.close()
    b.check_kafka(kafka)


@pytest.mark.parametrize("configured", [None, 100])
def test_tune_ok_channel_max_above_the_servers_is_530(hopper_factory, kafka, uid, configured):
    x = "lim-tunech-" + uid
    overrides = {"exchanges": direct(x)}
    if configured:
        overrides["limits"] = {"channel_max": configured}
    h = hopper_factory(overrides)
    b = Bystander(h, x, "tunech")
    b.publish()
    with w.RawClient(h.port) as c:
        channel_max, frame_max, _ = c.login()
        assert channel_max == (configured or 2047), "tune proposed channel_max %d" % channel_max
        c.tune_ok(channel_max + 1, frame_max)
        expect_close(c, 530)
        close_ok_then_eof(c)
    # channel_max 0 in tune-ok means "no limit of mine": the server's applies.
    with w.RawClient(h.port) as c:
        channel_max, frame_max, _ = c.login()
        c.tune_ok(0, frame_max)
        c.send(w.method_frame(0, w.CONNECTION_OPEN, w.shortstr("/") + w.shortstr("") + b"\x00"))
        c.expect_method(w.CONNECTION_OPEN_OK)
        c.open_channel(channel_max)
        c.send(w.method_frame(channel_max + 1, w.CHANNEL_OPEN, w.shortstr("")))
        expect_close(c, 504)
    b.publish()
    b.close()
    b.check_kafka(kafka)


# ---- frame_max --------------------------------------------------------------------------


def test_frame_above_negotiated_frame_max_is_501(hopper_factory, kafka, uid):
    x, bx = "lim-frame-" + uid, "lim-frame-by-" + uid
    h = hopper_factory({"exchanges": direct(x, bx)})
    b = Bystander(h, bx, "frame")
    b.publish()
    with w.RawClient(h.port) as c:
        c.handshake(frame_max=8192)
        assert c.frame_max == 8192
        c.open_channel(1, confirm=True)
        # A body frame of exactly frame_max bytes (7 header + payload + end) is fine.
        body = bytes(range(256)) * 32  # 8192
        c.send(publish_bytes(1, x, "fits", body[: 8192 - 8], frame_max=8192))
        f = c.expect_method(w.BASIC_ACK, timeout=30)
        assert w.parse_confirm(f.method, f.args)[0] == 1
        # One byte more: frame error, and hopper hangs up without close-ok.
        c.send(publish_bytes(1, x, "too-big", body[: 8192 - 7], frame_max=8193))  # one 8193-byte body frame
        text = expect_close(c, 501)
        assert "8193" in text, text
        assert c.read_until_eof(timeout=10) == b""
    b.publish()
    b.close()
    b.check_kafka(kafka)
    [rec] = kafka.read_exactly(x, 1, timeout=30, match=lambda r: r.key == b"fits")
    assert rec.value == body[: 8192 - 8]


@pytest.mark.parametrize("asked", [131073, 4095, 1024])
def test_tune_ok_frame_max_out_of_range_is_530(hopper_factory, kafka, uid, asked):
    x = "lim-tunefm-" + uid
    h = hopper_factory({"exchanges": direct(x)})
    b = Bystander(h, x, "tunefm")
    b.publish()
    with w.RawClient(h.port) as c:
        channel_max, frame_max, _ = c.login()
        assert frame_max == 131072, "tune proposed frame_max %d" % frame_max
        c.tune_ok(channel_max, asked)
        text = expect_close(c, 530)
        assert str(asked) in text, text
        close_ok_then_eof(c)
    b.publish()
    b.close()
    b.check_kafka(kafka)


def test_tune_ok_frame_max_4096_and_0_are_accepted(hopper_factory, uid):
    h = hopper_factory()
    for asked, effective in ((4096, 4096), (0, 131072)):
        with w.RawClient(h.port) as c:
            channel_max, _, _ = c.login()
            c.tune_ok(channel_max, asked)
            c.send(w.method_frame(0, w.CONNECTION_OPEN, w.shortstr("/") + w.shortstr("") + b"\x00"))
            c.expect_method(w.CONNECTION_OPEN_OK)
            c.open_channel(1)
            # A frame of exactly the effective frame_max passes the reader:
            # a body frame without a publish is 505, not 501.
            c.send(w.frame(w.FRAME_BODY, 1, bytes(effective - 8)))
            expect_close(c, 505)


# ---- max_message_size -------------------------------------------------------------------


def test_message_over_max_message_size_is_406_and_others_keep_publishing(hopper_factory, kafka, uid):
    x = "lim-size-" + uid
    h = hopper_factory({"limits": {"max_message_size": 65536}, "exchanges": direct(x)})
    b = Bystander(h, x, "size")
    b.publish()
    with w.RawClient(h.port) as c:
        c.handshake()
        c.open_channel(1, confirm=True)
        c.send(publish_bytes(1, x, "exact", b"e" * 65536))
        c.expect_method(w.BASIC_ACK, timeout=30)
        # 65537: channel.close 406 PRECONDITION_FAILED, as RabbitMQ; the body
        # frames that follow are dropped with the channel.
        c.send(publish_bytes(1, x, "over", b"o" * 65537))
        f = c.expect_method(w.CHANNEL_CLOSE, timeout=10)
        code, text, cls, meth = w.parse_close(f.args)
        assert (code, cls, meth) == (406, 60, 40), (code, text, cls, meth)
        c.send(w.method_frame(1, w.CHANNEL_CLOSE_OK))
        # The connection survives, as on RabbitMQ.
        c.open_channel(2, confirm=True)
        c.send(publish_bytes(2, x, "after", b"a"))
        c.expect_method(w.BASIC_ACK, timeout=30)
    b.publish()
    b.close()
    recs = kafka.read_exactly(x, 2 + len(b.keys), timeout=30)
    by_key = {r.key: r.value for r in recs}
    assert by_key[b"exact"] == b"e" * 65536 and by_key[b"after"] == b"a"
    assert b"over" not in by_key


# ---- max_table_depth --------------------------------------------------------------------
# Depth counts tables and arrays, the outermost one (the headers table, the
# arguments table) included: nested_table(d) is d + 1 levels deep.


def nested_json(levels_below):
    v = {}
    for _ in range(levels_below):
        v = {"n": v}
    return json.dumps(v, separators=(",", ":"))


@pytest.mark.parametrize("limit", [16, 4])
def test_headers_at_max_table_depth_pass_one_more_is_502(hopper_factory, kafka, uid, limit):
    x = "lim-depth-%d-%s" % (limit, uid)
    overrides = {"exchanges": direct(x)}
    if limit != 16:
        overrides["limits"] = {"max_table_depth": limit}
    h = hopper_factory(overrides)
    b = Bystander(h, x, "depth")
    b.publish()
    with w.RawClient(h.port) as c:
        c.handshake()
        c.open_channel(1, confirm=True)
        props = w.headers_properties(w.nested_table(limit - 1))  # exactly `limit` deep
        c.send(w.publish_frames(1, x, "deep", b"deep enough", raw_props=props))
        c.expect_method(w.BASIC_ACK, timeout=30)
        props = w.headers_properties(w.nested_table(limit))  # one more
        c.send(w.publish_frames(1, x, "deeper", b"too deep", raw_props=props))
        expect_close(c, 502)
        close_ok_then_eof(c)
    b.publish()
    b.close()
    [rec] = kafka.read_exactly(x, 1, timeout=30, match=lambda r: r.key == b"deep")
    assert rec.value == b"deep enough"
    assert rec.header("n") == nested_json(limit - 2)
    keys = sorted(r.key.decode() for r in kafka.read(x, 1 + len(b.keys), timeout=30) if r.key != b"deep")
    assert keys == sorted(b.keys)


def nested_array(depth):
    """A field value: arrays nested `depth` deep, [[...[]...]]."""
    inner = struct.pack(">I", 0)
    for _ in range(depth - 1):
        body = b"A" + inner
        inner = struct.pack(">I", len(body)) + body
    return (b"A", inner)


def test_arguments_at_max_table_depth_pass_one_more_is_502(hopper_factory, kafka, uid):
    x = "lim-argdepth-" + uid
    h = hopper_factory({"exchanges": direct(x)})
    b = Bystander(h, x, "argdepth")
    b.publish()

    def declare(c, name, args):
        c.send(w.method_frame(1, w.QUEUE_DECLARE, struct.pack(">H", 0) + w.shortstr(name) + b"\x00" + args))

    with w.RawClient(h.port) as c:
        c.handshake()
        c.open_channel(1)
        # 16 deep: the arguments table plus 15 nested tables; then the same
        # depth reached through arrays.
        declare(c, "q-tables-" + uid, w.nested_table(15))
        c.expect_method(w.QUEUE_DECLARE_OK)
        declare(c, "q-arrays-" + uid, w.table({"x-a": nested_array(15)}))
        c.expect_method(w.QUEUE_DECLARE_OK)
        declare(c, "q-deeper-" + uid, w.table({"x-a": nested_array(16)}))
        text = expect_close(c, 502)
        close_ok_then_eof(c)
    with w.RawClient(h.port) as c:
        c.handshake()
        c.open_channel(1)
        declare(c, "q-deeper2-" + uid, w.nested_table(16))
        expect_close(c, 502)
    b.publish()
    b.close()
    b.check_kafka(kafka)
    assert "SYNTAX_ERROR" in text


# ---- a client that never reads ----------------------------------------------------------


@pytest.mark.deadline(240)
def test_client_that_never_reads_its_returns_is_stopped_memory_bounded(hopper_factory, kafka, uid):
    """Mandatory unroutable publishes make hopper send every body back
    (basic.return). A client that never reads them fills hopper's output:
    past ~1 MiB hopper stops reading that client, whose sends then stall."""
    x, noroute = "lim-noread-" + uid, "lim-noroute-" + uid
    h = hopper_factory(
        {"exchanges": direct(x) + [{"name": noroute, "type": "direct", "vhost": "/", "default_route": False}]}
    )
    by = BystanderThread(h, x, "noread")
    c = w.RawClient(h.port)
    try:
        c.handshake()
        c.open_channel(1, confirm=True)
        body = b"r" * (64 << 10)
        one = publish_bytes(1, noroute, "back", body, mandatory=True)
        rss = RssWatch(h)
        p = Pusher(c.sock)
        outcome = p.push(lambda: one * 16, max_bytes=200 * MIB, budget=scaled(90), stall=3.0, sample=rss.sample)
        assert outcome == "stalled", "sent %.0f MiB without hopper pushing back (%s)" % (p.sent / MIB, outcome)
        # Kernel buffers on both sides hold some tens of MiB at most.
        assert p.sent < 100 * MIB, "hopper read %.0f MiB from a client that reads nothing" % (p.sent / MIB)
        acked_at_stall = by.acked()
        # While the pusher stays stuck, the bystander goes on.
        deadline = time.monotonic() + scaled(30)
        while by.acked() < acked_at_stall + 20:
            assert by.error is None, by.error
            assert time.monotonic() < deadline, "bystander made no progress while a client was stuck"
            rss.sample()
            time.sleep(0.05)
        rss.sample()
        print("never-reading client: %.1f MiB sent before the stall; hopper RSS %d -> %d KiB" % (p.sent / MIB, rss.base, rss.peak))
        assert rss.growth_mib() < 64 * MEM_SCALE, "hopper's RSS grew %.0f MiB (%d -> %d KiB)" % (
            rss.growth_mib(),
            rss.base,
            rss.peak,
        )
        # What the client gets once it reads: its returns (312 NO_ROUTE) and acks.
        c.sock.setblocking(True)
        f = c.read_frame(timeout=10)
        assert f.method == w.BASIC_RETURN and struct.unpack(">H", f.args[:2])[0] == 312, f
    finally:
        c.close()
        by.stop()
    by.check_kafka(kafka)
    assert h.alive()


@pytest.mark.deadline(300)
def test_client_that_never_reads_its_confirms_memory_bounded(hopper_factory, kafka, uid):
    """A publisher with confirms that never reads: hopper keeps forwarding
    (acks are small, coalesced with `multiple`), its memory bounded by
    limits.max_inflight_bytes; when the client finally reads, every tag is
    acked and every record is in Kafka."""
    x, bx = "lim-noreadk-" + uid, "lim-noreadk-by-" + uid
    h = hopper_factory({"exchanges": direct(x, bx)})
    by = BystanderThread(h, bx, "noreadk")
    c = w.RawClient(h.port)
    body = b"k" * (64 << 10)
    one = publish_bytes(1, x, "k", body)
    try:
        c.handshake()
        c.open_channel(1, confirm=True)
        rss = RssWatch(h)
        p = Pusher(c.sock)
        p.push(lambda: one * 16, max_bytes=200 * MIB, budget=scaled(60), stall=scaled(30), sample=rss.sample)
        # Finish the message in progress, then count.
        c.sock.setblocking(True)
        c.sock.settimeout(scaled(60))
        c.sock.sendall(p.pending)
        p.sent += len(p.pending)
        assert p.sent % len(one) == 0
        published = p.sent // len(one)
        assert published >= 200, "only %d messages pushed in the time budget" % published
        tracker = w.ConfirmTracker()
        for i in range(published):
            tracker.publish(i)
        deadline = time.monotonic() + scaled(120)
        while tracker.pending:
            f = c._read_frame_by(deadline)
            assert f is not None, "EOF with %d confirms pending" % len(tracker.pending)
            if f.kind == w.FRAME_HEARTBEAT:
                continue
            assert f.method in (w.BASIC_ACK, w.BASIC_NACK), f
            tracker.feed(f)
            rss.sample()
        assert not tracker.nacked, sorted(tracker.nacked)[:10]
        print("never-reading publisher: %d messages (%.0f MiB); hopper RSS %d -> %d KiB" % (published, p.sent / MIB, rss.base, rss.peak))
        assert rss.growth_mib() < (64 + 64) * MEM_SCALE, (
            "hopper's RSS grew %.0f MiB with max_inflight_bytes 64 MiB" % rss.growth_mib()
        )
    finally:
        c.close()
        by.stop()
    assert kafka.count(x) == published
    by.check_kafka(kafka)


@pytest.mark.deadline(240)
def test_half_sent_bodies_on_many_channels_memory_bounded(hopper_factory, kafka, uid):
    """Content headers announce large bodies on many channels and each body
    stops one byte short: nothing reaches Kafka, so max_inflight_bytes does
    not see it, but hopper holds every partial body. The bytes a client can
    park in hopper this way must have a bound too."""
    x = "lim-partial-" + uid
    h = hopper_factory({"exchanges": direct(x)})
    b = Bystander(h, x, "partial")
    b.publish()
    size = 4 * MIB
    n_channels = 48  # 192 MiB announced, all but 48 bytes sent
    c = w.RawClient(h.port)
    try:
        c.handshake()
        for ch in range(1, n_channels + 1):
            c.open_channel(ch, confirm=True)
        rss = RssWatch(h)
        chunks = [publish_bytes_short(ch, x, size) for ch in range(1, n_channels + 1)]
        p = Pusher(c.sock)
        outcome = p.push(lambda: chunks.pop(0) if chunks else b"", max_bytes=n_channels * (size + 4096), budget=scaled(60), stall=3.0, sample=rss.sample)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            rss.sample()
            time.sleep(0.05)
        assert rss.growth_mib() < 64 * MEM_SCALE, (
            "hopper holds %.0f MiB of half-sent bodies from one connection (%.0f MiB sent, %s)"
            % (rss.growth_mib(), p.sent / MIB, outcome)
        )
    finally:
        c.close()
    b.publish()
    b.close()
    b.check_kafka(kafka)


def publish_bytes_short(channel, exchange, size, frame_max=131072):
    """A publish announcing `size` body bytes, followed by size - 1 of them."""
    args = struct.pack(">H", 0) + w.shortstr(exchange) + w.shortstr("partial") + b"\x00"
    out = [w.method_frame(channel, w.BASIC_PUBLISH, args)]
    out.append(w.frame(w.FRAME_HEADER, channel, struct.pack(">HHQ", 60, 0, size) + b"\x00\x00"))
    step = frame_max - 8
    left = size - 1
    while left:
        n = min(step, left)
        out.append(w.frame(w.FRAME_BODY, channel, b"p" * n))
        left -= n
    return b"".join(out)


# ---- handshake_timeout ------------------------------------------------------------------


def _until_eof(c, timeout):
    """Read (and drop) what hopper sends until it closes; returns when."""
    deadline = time.monotonic() + timeout
    while c._fill(deadline):
        c.buf = b""
    return time.monotonic()


@pytest.mark.parametrize("stage", ["silent", "partial-header", "header-only", "after-start-ok", "after-tune-ok"])
def test_handshake_not_finished_within_handshake_timeout_is_closed(hopper_factory, kafka, uid, stage):
    # 500 ms; longer under a wrapper such as valgrind, where the bystander's
    # own handshake takes longer than that.
    timeout_ms = int(500 * TIMEOUT_SCALE)
    x = "lim-hs-" + uid
    h = hopper_factory({"limits": {"handshake_timeout": timeout_ms}, "exchanges": direct(x)})
    b = Bystander(h, x, "hs")  # its handshake is quicker than the timeout
    b.publish()
    with w.RawClient(h.port) as c:
        t0 = time.monotonic()
        if stage == "partial-header":
            c.send(w.PROTOCOL_HEADER[:5])
        elif stage == "header-only":
            c.send(w.PROTOCOL_HEADER)
        elif stage in ("after-start-ok", "after-tune-ok"):
            channel_max, frame_max, _ = c.login()
            if stage == "after-tune-ok":
                c.tune_ok(channel_max, frame_max)
        # Not closed early...
        early = 0.4 * timeout_ms / 1000
        with pytest.raises(TimeoutError):
            _until_eof(c, max(0.0, t0 + early - time.monotonic()))
            raise AssertionError("closed within %.1f s of connecting (%s)" % (early, stage))
        # ...and closed soon after the timeout.
        latest = timeout_ms / 1000 + scaled(2.5)
        closed = _until_eof(c, latest)
        took = closed - t0
        assert 0.8 * timeout_ms / 1000 <= took <= latest, "closed after %.2fs with handshake_timeout %d ms" % (took, timeout_ms)
    h.wait_for_log("handshake not completed within %d ms" % timeout_ms, timeout=5)
    b.publish()
    b.close()
    b.check_kafka(kafka)


# ---- heartbeat --------------------------------------------------------------------------


def test_client_silent_for_two_heartbeat_intervals_is_closed(hopper_factory, kafka, uid):
    x = "lim-hb-" + uid
    h = hopper_factory({"limits": {"heartbeat": 1}, "exchanges": direct(x)})
    b = Bystander(h, x, "hb", heartbeat=0)  # idle between its publishes
    b.publish()

    def open_with_heartbeat(c):
        channel_max, frame_max, heartbeat = c.login()
        assert heartbeat == 1, "tune proposed heartbeat %d" % heartbeat
        c.tune_ok(channel_max, frame_max, heartbeat=1)
        c.send(w.method_frame(0, w.CONNECTION_OPEN, w.shortstr("/") + w.shortstr("") + b"\x00"))
        c.expect_method(w.CONNECTION_OPEN_OK)

    with w.RawClient(h.port) as live, w.RawClient(h.port) as silent:
        open_with_heartbeat(live)
        open_with_heartbeat(silent)
        t0 = time.monotonic()
        # `live` sends a heartbeat every half interval and must stay open;
        # `silent` sends nothing: closed after two intervals (no close frame).
        beats = 0
        closed = None
        # Until the silent one is closed and the live one has outlived it
        # by a full interval.
        while closed is None or time.monotonic() - closed < 1.0:
            assert time.monotonic() - t0 < scaled(6), "silent client still open after %.0fs" % scaled(6)
            live.send(w.frame(w.FRAME_HEARTBEAT, 0, b""))
            deadline = time.monotonic() + 0.5
            if closed is not None:
                time.sleep(0.5)
                continue
            try:
                if not silent._fill(deadline):
                    closed = time.monotonic()
            except TimeoutError:
                pass
            while len(silent.buf) >= 8:
                assert silent.buf[:8] == w.frame(w.FRAME_HEARTBEAT, 0, b""), silent.buf[:16]
                silent.buf = silent.buf[8:]
                beats += 1
            time.sleep(max(0.0, deadline - time.monotonic()))
        assert 1.5 <= closed - t0 <= scaled(4), "silent client closed after %.2fs with heartbeat 1 s" % (closed - t0)
        assert beats >= 2, "hopper sent %d heartbeats in two intervals" % beats
        live.open_channel(1, confirm=True)  # still open and answering
        clean_close(live)
    h.wait_for_log("missed heartbeats from client", timeout=5)
    b.publish()
    b.close()
    b.check_kafka(kafka)


# ---- max_unconfirmed --------------------------------------------------------------------


@pytest.mark.deadline(180)
def test_max_unconfirmed_stops_reading_that_connection_only(hopper_factory, kafka, uid):
    stuck, ok = "lim-unconf-stuck-" + uid, "lim-unconf-ok-" + uid
    kafka.create_topic(ok)
    h = hopper_factory(stuck_config(stuck, ok, {"max_unconfirmed": 50, "drain_timeout": 1000}))
    b = Bystander(h, ok, "unconf")
    b.publish()
    c = w.RawClient(h.port)
    c.handshake()
    c.open_channel(1, confirm=True)
    # 1000 small publishes in one go; hopper may take 50, then must stop
    # reading this connection until confirms come (they never do here).
    data = b"".join(w.publish_frames(1, stuck, "s", b"m%d" % i) for i in range(1000))
    sender = threading.Thread(target=lambda: c.sock.sendall(data), daemon=True)
    sender.start()
    try:
        with pytest.raises(TimeoutError):
            f = c.read_frame(timeout=2)
            raise AssertionError("got %r for publishes that cannot be confirmed" % f)
        # Other connections are not held back: a new one completes its
        # handshake and declares, the bystander's publishes are confirmed.
        with w.RawClient(h.port) as d:
            d.handshake()
            d.open_channel(1)
            d.send(w.method_frame(1, w.QUEUE_DECLARE, struct.pack(">H", 0) + w.shortstr("q-" + uid) + b"\x00" + w.table({})))
            d.expect_method(w.QUEUE_DECLARE_OK)
            clean_close(d)
        b.publish(10)
        b.close()

        # Shutdown nacks what hopper took: exactly the first 50.
        h.signal(signal.SIGTERM)
        tracker = w.ConfirmTracker()
        for i in range(1000):
            tracker.publish(i)
        frames = read_frames_until(c, lambda f: f.method == w.CONNECTION_CLOSE, timeout=30)
        for f in frames[:-1]:
            assert f.method in (w.BASIC_ACK, w.BASIC_NACK), f
            tracker.feed(f)
        assert w.parse_close(frames[-1].args)[0] == 320
        assert not tracker.acked, sorted(tracker.acked)[:10]
        assert sorted(tracker.nacked) == list(range(1, 51)), "hopper took %d publishes with max_unconfirmed 50: %r" % (
            len(tracker.nacked),
            sorted(tracker.nacked)[-5:],
        )
    finally:
        c.close()
        sender.join(scaled(10))
    assert h.wait(timeout=30) == 0
    b.check_kafka(kafka)


# ---- max_inflight_bytes -----------------------------------------------------------------


@pytest.mark.deadline(180)
def test_max_inflight_bytes_blocks_publishers_then_unblocks(hopper_factory, kafka, uid):
    stuck, ok = "lim-inflight-stuck-" + uid, "lim-inflight-ok-" + uid
    kafka.create_topic(ok)
    # The stuck messages fail (nack) after 8 s, which frees the bound.
    h = hopper_factory(stuck_config(stuck, ok, {"max_inflight_bytes": MIB}, propagation_ms=8000))
    b = Bystander(h, ok, "inflight")
    b.publish()
    rss = RssWatch(h)
    plain = w.RawClient(h.port)  # does not advertise connection.blocked
    plain.handshake()
    plain.open_channel(1, confirm=True)
    c = w.RawClient(h.port)
    c.handshake(capabilities={"connection.blocked": True})
    c.open_channel(1, confirm=True)
    n = 24
    body = b"i" * (64 << 10)
    data = b"".join(publish_bytes(1, stuck, "s", body) for _ in range(n))
    sender = threading.Thread(target=lambda: c.sock.sendall(data), daemon=True)
    sender.start()
    try:
        # Each message costs its body plus 1 KiB: the 16th reaches 1 MiB.
        c.expect_method(w.CONNECTION_BLOCKED, timeout=10)
        h.wait_for_log("kafka has 16 messages in flight, over limits.max_inflight_bytes", timeout=5)
        b.wait_for(lambda: b.blocked, timeout=10)  # pika hears it too
        # A client without the capability is held back silently: its
        # publish is not read, so no confirm (and no connection.blocked).
        plain.send(w.publish_frames(1, ok, "plain", b"sent while blocked"))
        with pytest.raises(TimeoutError):
            f = plain.read_frame(timeout=1)
            raise AssertionError("client without the capability got %r while blocked" % f)
        rss.sample()

        # After 8 s librdkafka gives up on the stuck ones: nacks, then
        # connection.unblocked; the rest are read and nacked in turn.
        tracker = w.ConfirmTracker()
        for i in range(n):
            tracker.publish(i)
        frames = read_frames_until(c, lambda f: f.method == w.CONNECTION_UNBLOCKED, timeout=60)
        for f in frames[:-1]:
            assert f.method == w.BASIC_NACK, f
            tracker.feed(f)
        assert tracker.nacked and max(tracker.nacked) <= 16, "confirms for messages read while blocked: %r" % sorted(tracker.nacked)
        while tracker.pending:
            f = c.expect_method(w.BASIC_NACK, timeout=60)
            tracker.feed(f)
        assert not tracker.acked
        b.wait_for(lambda: b.unblocked, timeout=10)
        b.publish(5)
        plain.expect_method(w.BASIC_ACK, timeout=30)  # read once unblocked
        rss.sample()
        assert rss.growth_mib() < 32 * MEM_SCALE, "RSS grew %.0f MiB with a 1 MiB bound" % rss.growth_mib()
    finally:
        c.close()
        plain.close()
        sender.join(scaled(10))
        b.close()
    recs = kafka.read(ok, len(b.keys) + 1, timeout=30)
    assert sorted(r.key.decode() for r in recs if r.key != b"plain") == sorted(b.keys)
    assert any(r.key == b"plain" for r in recs)


@pytest.mark.deadline(120)
def test_new_connection_completes_handshake_while_publishers_are_blocked(hopper_factory, kafka, uid):
    """The bound holds publishes back, not logins: as on RabbitMQ, a client
    connecting while intake is blocked gets through the handshake and then
    hears connection.blocked (hopper's handle_open means to send it)."""
    stuck, ok = "lim-blockhs-stuck-" + uid, "lim-blockhs-ok-" + uid
    kafka.create_topic(ok)
    h = hopper_factory(stuck_config(stuck, ok, {"max_inflight_bytes": MIB, "drain_timeout": 1000, "handshake_timeout": 60000}))
    c = w.RawClient(h.port)
    c.handshake(capabilities={"connection.blocked": True})
    c.open_channel(1, confirm=True)
    body = b"i" * (64 << 10)
    c.sock.sendall(b"".join(publish_bytes(1, stuck, "s", body) for _ in range(16)))
    try:
        c.expect_method(w.CONNECTION_BLOCKED, timeout=10)
        with w.RawClient(h.port) as d:
            try:
                d.handshake(capabilities={"connection.blocked": True})
            except (TimeoutError, w.ProtocolError) as e:
                pytest.fail("no handshake while publishers are blocked (%r): hopper stops reading every socket" % e)
            d.expect_method(w.CONNECTION_BLOCKED, timeout=5)
    finally:
        c.close()


# ---- wrong credentials ------------------------------------------------------------------


def _log_lines_about(h, needle):
    return [line for line in h.log_text().splitlines() if needle in line]


@pytest.mark.parametrize("user", ["guest", "nobody"])
def test_wrong_credentials_with_capability_get_403(hopper_factory, kafka, uid, user):
    x = "lim-auth-" + uid
    h = hopper_factory({"exchanges": direct(x)})
    b = Bystander(h, x, "auth")
    b.publish()
    user_name = "%s-%s" % (user, uid) if user == "nobody" else user
    password = "secret-" + uid
    url = "amqp://%s:%s@127.0.0.1:%d/%%2F" % (user_name, password, h.port)
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as exc:
        pika.BlockingConnection(pika.URLParameters(url))  # pika advertises authentication_failure_close
    assert "403" in str(exc.value) and "ACCESS_REFUSED" in str(exc.value), exc.value
    h.wait_for_log("user '%s' failed to authenticate" % user_name, timeout=5)
    [line] = _log_lines_about(h, "failed to authenticate")
    assert ("no such user" if user == "nobody" else "wrong password") in line, line
    assert password not in h.log_text(), "password in the log"
    b.publish()
    b.close()
    b.check_kafka(kafka)


def test_wrong_credentials_without_capability_socket_closed(hopper_factory, kafka, uid):
    x = "lim-auth2-" + uid
    h = hopper_factory({"exchanges": direct(x)})
    b = Bystander(h, x, "auth2")
    b.publish()
    password = "hunter2-" + uid
    with w.RawClient(h.port) as c:
        c.send(w.PROTOCOL_HEADER)
        c.expect_method(w.CONNECTION_START)
        props = w.table({"product": "no-capabilities"})
        args = props + w.shortstr("PLAIN") + w.longstr(b"\x00guest\x00" + password.encode()) + w.shortstr("en_US")
        c.send(w.method_frame(0, w.CONNECTION_START_OK, args))
        assert c.read_until_eof(timeout=10) == b"", "bytes after a refused login without the capability"
    # AMQPLAIN, the same.
    with w.RawClient(h.port) as c:
        c.send(w.PROTOCOL_HEADER)
        c.expect_method(w.CONNECTION_START)
        response = w.table({"LOGIN": "guest", "PASSWORD": password})[4:]  # AMQPLAIN: no length prefix
        args = w.table({"product": "no-capabilities"}) + w.shortstr("AMQPLAIN") + w.longstr(response) + w.shortstr("en_US")
        c.send(w.method_frame(0, w.CONNECTION_START_OK, args))
        assert c.read_until_eof(timeout=10) == b""
    h.wait_for_log("user 'guest' failed to authenticate with AMQPLAIN: wrong password", timeout=5)
    assert len(_log_lines_about(h, "user 'guest' failed to authenticate with PLAIN: wrong password")) == 1
    assert password not in h.log_text(), "password in the log"
    b.publish()
    b.close()
    b.check_kafka(kafka)
