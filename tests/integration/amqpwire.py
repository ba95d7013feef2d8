"""amqpwire - a tiny AMQP 0-9-1 frame codec and raw client for tests.

Real clients (pika, kombu) never send malformed traffic and hide the frames
the server sends, so the bad-input tests talk to hopper through this module:
build frames byte by byte, read frames back with a deadline, and run just
enough of the handshake to get a channel open.

Only what the tests need is here; every read has a deadline (multiplied by
HOPPER_TIMEOUT_SCALE, see hopperproc.py).
"""

import socket
import struct
import time

from hopperproc import scaled

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_END = 0xCE

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8

# (class id, method id)
CONNECTION_START = (10, 10)
CONNECTION_START_OK = (10, 11)
CONNECTION_TUNE = (10, 30)
CONNECTION_TUNE_OK = (10, 31)
CONNECTION_OPEN = (10, 40)
CONNECTION_OPEN_OK = (10, 41)
CONNECTION_CLOSE = (10, 50)
CONNECTION_CLOSE_OK = (10, 51)
CONNECTION_BLOCKED = (10, 60)
CONNECTION_UNBLOCKED = (10, 61)
CHANNEL_OPEN = (20, 10)
CHANNEL_OPEN_OK = (20, 11)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)
QUEUE_DECLARE = (50, 10)
QUEUE_DECLARE_OK = (50, 11)
BASIC_CONSUME = (60, 20)
BASIC_PUBLISH = (60, 40)
BASIC_RETURN = (60, 50)
BASIC_ACK = (60, 80)
BASIC_NACK = (60, 120)
CONFIRM_SELECT = (85, 10)
CONFIRM_SELECT_OK = (85, 11)


class ProtocolError(AssertionError):
    """The server sent something other than what the test expected."""


# ---- encoding ----------------------------------------------------------------


def shortstr(s):
    b = s.encode() if isinstance(s, str) else s
    assert len(b) < 256
    return struct.pack(">B", len(b)) + b


def longstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">I", len(b)) + b


def table(fields):
    """Encode a field table from a dict of str -> str/bool/int/dict/raw.

    A value given as a (type byte, encoded bytes) tuple is used as is."""
    out = b""
    for name, value in fields.items():
        out += shortstr(name) + field_value(value)
    return struct.pack(">I", len(out)) + out


def field_value(value):
    if isinstance(value, tuple):
        kind, raw = value
        return kind + raw
    if isinstance(value, bool):
        return b"t" + struct.pack(">B", int(value))
    if isinstance(value, int):
        return b"l" + struct.pack(">q", value)
    if isinstance(value, dict):
        return b"F" + table(value)
    return b"S" + longstr(value)


def nested_table(depth):
    """A field table nested `depth` levels deep: {"n": {"n": {...}}}."""
    inner = struct.pack(">I", 0)
    for _ in range(depth):
        body = shortstr("n") + b"F" + inner
        inner = struct.pack(">I", len(body)) + body
    return inner


def frame(kind, channel, payload, end=FRAME_END):
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + bytes([end])


def method_frame(channel, method, args=b""):
    return frame(FRAME_METHOD, channel, struct.pack(">HH", *method) + args)


def content_frames(channel, body, raw_props=b"\x00\x00", class_id=60):
    """Content header (properties given encoded, flags first) and one body frame."""
    header = struct.pack(">HHQ", class_id, 0, len(body)) + raw_props
    out = frame(FRAME_HEADER, channel, header)
    if body:
        out += frame(FRAME_BODY, channel, body)
    return out


def publish_frames(channel, exchange, routing_key, body, raw_props=b"\x00\x00", mandatory=False):
    args = struct.pack(">H", 0) + shortstr(exchange) + shortstr(routing_key)
    args += struct.pack(">B", 1 if mandatory else 0)
    return method_frame(channel, BASIC_PUBLISH, args) + content_frames(channel, body, raw_props)


def headers_properties(encoded_table):
    """Encoded basic properties carrying only the headers table."""
    return struct.pack(">H", 0x2000) + encoded_table


# ---- decoding ----------------------------------------------------------------


class Frame:
    def __init__(self, kind, channel, payload):
        self.kind = kind
        self.channel = channel
        self.payload = payload

    @property
    def method(self):
        if self.kind != FRAME_METHOD or len(self.payload) < 4:
            return None
        return struct.unpack(">HH", self.payload[:4])

    @property
    def args(self):
        return self.payload[4:]

    def __repr__(self):
        return "Frame(type=%d, channel=%d, method=%r, payload=%r)" % (
            self.kind,
            self.channel,
            self.method,
            self.payload[:64],
        )


def parse_close(args):
    """connection.close / channel.close arguments -> (code, text, class, method)."""
    (code,) = struct.unpack(">H", args[:2])
    n = args[2]
    text = args[3 : 3 + n].decode(errors="replace")
    cls, meth = struct.unpack(">HH", args[3 + n : 7 + n])
    return code, text, cls, meth


def parse_confirm(method, args):
    """basic.ack / basic.nack arguments -> (delivery tag, multiple)."""
    (tag,) = struct.unpack(">Q", args[:8])
    multiple = bool(args[8] & 1)
    return tag, multiple


# ---- socket helpers --------------------------------------------------------------


class Wire:
    """A TCP connection that reads exact byte counts with a deadline."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=scaled(timeout))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Read more bytes; returns False on EOF. Raises TimeoutError at the deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data from hopper before the deadline")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data from hopper before the deadline") from None
        except ConnectionResetError:
            return False
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read_exact(self, n, timeout=10.0):
        """n bytes, or fewer if the peer closed (the caller compares)."""
        deadline = time.monotonic() + scaled(timeout)
        while len(self.buf) < n:
            if not self._fill(deadline):
                break
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until_eof(self, timeout=10.0):
        """Everything the peer sends until it closes; TimeoutError if it does not."""
        deadline = time.monotonic() + scaled(timeout)
        while self._fill(deadline):
            pass
        out, self.buf = self.buf, b""
        return out

    def read_frame(self, timeout=10.0):
        """The next frame, or None on a clean EOF between frames."""
        return self._read_frame_by(time.monotonic() + scaled(timeout))

    def _read_frame_by(self, deadline):
        while len(self.buf) < 7:
            if not self._fill(deadline):
                if self.buf:
                    raise ProtocolError("EOF inside a frame header: %r" % self.buf)
                return None
        kind, channel, size = struct.unpack(">BHI", self.buf[:7])
        while len(self.buf) < 7 + size + 1:
            if not self._fill(deadline):
                raise ProtocolError("EOF inside a frame of %d bytes" % size)
        payload = self.buf[7 : 7 + size]
        end = self.buf[7 + size]
        self.buf = self.buf[8 + size :]
        if end != FRAME_END:
            raise ProtocolError("frame end octet 0x%02x, not 0xCE" % end)
        return Frame(kind, channel, payload)

    def expect_method(self, method, timeout=10.0, skip_heartbeats=True):
        deadline = time.monotonic() + scaled(timeout)
        while True:
            f = self._read_frame_by(deadline)
            if f is None:
                raise ProtocolError("EOF while waiting for method %r" % (method,))
            if skip_heartbeats and f.kind == FRAME_HEARTBEAT:
                continue
            if f.method != method:
                raise ProtocolError("expected method %r, got %r" % (method, f))
            return f


class RawClient(Wire):
    """Wire plus the handshake: guest/guest PLAIN, heartbeats off."""

    def login(self, user="guest", password="guest", capabilities=None):
        """Protocol header and start-ok (PLAIN); returns the server's tune
        proposal (channel_max, frame_max, heartbeat). `capabilities`: the
        client capabilities table, e.g. {"connection.blocked": True}."""
        self.send(PROTOCOL_HEADER)
        self.expect_method(CONNECTION_START)
        props = table({"product": "hopper-integration-tests", "capabilities": capabilities or {}})
        response = b"\x00" + user.encode() + b"\x00" + password.encode()
        args = props + shortstr("PLAIN") + longstr(response) + shortstr("en_US")
        self.send(method_frame(0, CONNECTION_START_OK, args))
        tune = self.expect_method(CONNECTION_TUNE)
        return struct.unpack(">HIH", tune.args[:8])

    def tune_ok(self, channel_max, frame_max, heartbeat=0):
        self.send(method_frame(0, CONNECTION_TUNE_OK, struct.pack(">HIH", channel_max, frame_max, heartbeat)))

    def handshake(self, vhost="/", user="guest", password="guest", frame_max=131072, channel_max=None, capabilities=None):
        """The whole handshake. frame_max and channel_max are capped at the
        server's proposal (channel_max None: take the server's)."""
        server_channel_max, server_frame_max, _ = self.login(user, password, capabilities)
        self.frame_max = min(frame_max, server_frame_max) if server_frame_max else frame_max
        self.channel_max = server_channel_max if channel_max is None else min(channel_max, server_channel_max)
        self.tune_ok(self.channel_max, self.frame_max)
        self.send(method_frame(0, CONNECTION_OPEN, shortstr(vhost) + shortstr("") + b"\x00"))
        self.expect_method(CONNECTION_OPEN_OK)

    def open_channel(self, channel=1, confirm=False):
        self.send(method_frame(channel, CHANNEL_OPEN, shortstr("")))
        self.expect_method(CHANNEL_OPEN_OK)
        if confirm:
            self.send(method_frame(channel, CONFIRM_SELECT, b"\x00"))
            self.expect_method(CONFIRM_SELECT_OK)


class ConfirmTracker:
    """Publisher-confirm bookkeeping for a raw client channel.

    publish() returns the delivery tag the server will use; feed() takes
    basic.ack / basic.nack frames. Raises ProtocolError on a confirm for an
    unknown or already settled tag."""

    def __init__(self):
        self.next_tag = 1
        self.pending = {}  # tag -> message id
        self.acked = {}  # tag -> message id
        self.nacked = {}

    def publish(self, msg_id):
        tag = self.next_tag
        self.next_tag += 1
        self.pending[tag] = msg_id
        return tag

    def feed(self, f):
        tag, multiple = parse_confirm(f.method, f.args)
        into = self.acked if f.method == BASIC_ACK else self.nacked
        if multiple:
            tags = [t for t in self.pending if t <= tag]
        else:
            if tag not in self.pending:
                raise ProtocolError("confirm for tag %d, which is not pending (settled twice?)" % tag)
            tags = [tag]
        for t in tags:
            into[t] = self.pending.pop(t)

    def acked_ids(self):
        return set(self.acked.values())
