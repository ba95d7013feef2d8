"""amqpprops - decode AMQP 0-9-1 basic properties and render them the way
README.md's record-format contract says hopper writes Kafka headers.

Written from the spec, independently of hopper's C code (src/record.c), so
that the compat runner checks the contract rather than re-running hopper's
own logic. Field-table type letters are RabbitMQ's (the 0-9-1 errata):
t b B s u I i l L f d D S x A T F V.
"""

import math
import struct

# Basic properties in wire order: (flag bit, name, kind). Bit 15 comes first.
PROPERTIES = [
    (15, "content_type", "shortstr"),
    (14, "content_encoding", "shortstr"),
    (13, "headers", "table"),
    (12, "delivery_mode", "octet"),
    (11, "priority", "octet"),
    (10, "correlation_id", "shortstr"),
    (9, "reply_to", "shortstr"),
    (8, "expiration", "shortstr"),
    (7, "message_id", "shortstr"),
    (6, "timestamp", "timestamp"),
    (5, "type", "shortstr"),
    (4, "user_id", "shortstr"),
    (3, "app_id", "shortstr"),
    (2, "cluster_id", "shortstr"),
]


class Decimal:
    def __init__(self, scale, value):
        self.scale, self.value = scale, value

    def __eq__(self, other):
        return isinstance(other, Decimal) and (self.scale, self.value) == (other.scale, other.value)

    def __repr__(self):
        return "Decimal(%d, %d)" % (self.scale, self.value)


class Float:
    """A float with its width, so text rendering can pick the shortest form."""

    def __init__(self, value, single):
        self.value, self.single = value, single

    def __eq__(self, other):
        if isinstance(other, Float):
            return self.value == other.value
        return isinstance(other, (int, float)) and self.value == other

    def __repr__(self):
        return "Float(%r)" % self.value


class Timestamp(int):
    pass


class Void:
    def __eq__(self, other):
        return other is None or isinstance(other, Void)

    def __repr__(self):
        return "Void"


class Bytes(bytes):
    """A byte-array field ('x'), as opposed to a long string ('S')."""


class TableList(list):
    """A decoded table: list of (name, value) pairs, told apart from arrays."""


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated at %d (need %d of %d)" % (self.pos, n, len(self.data)))
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt):
        return struct.unpack(">" + fmt, self.take(struct.calcsize(">" + fmt)))[0]

    def shortstr(self):
        return self.take(self.unpack("B"))

    def longstr(self):
        return self.take(self.unpack("I"))

    def table(self):
        """TableList of (name bytes, value) in wire order (duplicates kept)."""
        sub = Reader(self.longstr())
        out = TableList()
        while sub.pos < len(sub.data):
            name = sub.shortstr()
            out.append((name, sub.field()))
        return out

    def array(self):
        sub = Reader(self.longstr())
        out = []
        while sub.pos < len(sub.data):
            out.append(sub.field())
        return out

    def field(self):
        kind = self.take(1)
        simple = {b"b": "b", b"B": "B", b"s": "h", b"u": "H", b"I": "i", b"i": "I", b"l": "q", b"L": "Q"}
        if kind in simple:
            return self.unpack(simple[kind])
        if kind == b"t":
            return self.unpack("B") != 0
        if kind == b"f":
            return Float(self.unpack("f"), True)
        if kind == b"d":
            return Float(self.unpack("d"), False)
        if kind == b"D":
            scale = self.unpack("B")
            return Decimal(scale, self.unpack("i"))
        if kind == b"S":
            return self.longstr()
        if kind == b"x":
            return Bytes(self.longstr())
        if kind == b"A":
            return self.array()
        if kind == b"T":
            return Timestamp(self.unpack("Q"))
        if kind == b"F":
            return self.table()
        if kind == b"V":
            return Void()
        raise ValueError("unknown field type %r at %d" % (kind, self.pos - 1))


def decode_properties(raw):
    """Property bytes (flags word first) -> list of (name, value) in wire order."""
    r = Reader(raw)
    word = r.unpack("H")
    more = word & 1
    while more:  # continuation words carry no 0-9-1 basic property
        more = r.unpack("H") & 1
    out = []
    for bit, name, kind in PROPERTIES:
        if not word & (1 << bit):
            continue
        if kind == "shortstr":
            out.append((name, r.shortstr()))
        elif kind == "octet":
            out.append((name, r.unpack("B")))
        elif kind == "timestamp":
            out.append((name, r.unpack("Q")))
        else:
            out.append((name, r.table()))
    if r.pos != len(raw):
        raise ValueError("%d bytes left after the properties" % (len(raw) - r.pos))
    return out


# ---- rendering, per the record-format contract ---------------------------------


def _utf8_len(s, i):
    """Length of the valid UTF-8 sequence at s[i] (RFC 3629), or 0."""
    c = s[i]
    if c < 0x80:
        return 1
    lo, hi = 0x80, 0xBF
    if 0xC2 <= c <= 0xDF:
        n = 2
    elif 0xE0 <= c <= 0xEF:
        n = 3
        lo, hi = (0xA0, 0xBF) if c == 0xE0 else (0x80, 0x9F) if c == 0xED else (lo, hi)
    elif 0xF0 <= c <= 0xF4:
        n = 4
        lo, hi = (0x90, 0xBF) if c == 0xF0 else (0x80, 0x8F) if c == 0xF4 else (lo, hi)
    else:
        return 0
    if len(s) - i < n or not lo <= s[i + 1] <= hi:
        return 0
    if any(not 0x80 <= s[i + k] <= 0xBF for k in range(2, n)):
        return 0
    return n


def json_string(b):
    """JSON string for bytes: valid UTF-8 kept, other bytes as \\u00XX."""
    out = bytearray(b'"')
    i = 0
    esc = {0x22: b'\\"', 0x5C: b"\\\\", 0x08: b"\\b", 0x0C: b"\\f", 0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t"}
    while i < len(b):
        c = b[i]
        n = _utf8_len(b, i) if c >= 0x20 and c not in (0x22, 0x5C) else 0
        if n:
            out += b[i : i + n]
            i += n
            continue
        out += esc.get(c) or ("\\u%04x" % c).encode()
        i += 1
    out += b'"'
    return bytes(out)


def _real(value, single):
    """Shortest round-trip decimal text: plain for exponents -4..15."""
    if single:
        for prec in range(1, 10):
            sci = "%.*e" % (prec - 1, value)
            if struct.unpack(">f", struct.pack(">f", float(sci)))[0] == value:
                break
    else:
        for prec in range(1, 18):
            sci = "%.*e" % (prec - 1, value)
            if float(sci) == value:
                break
    mant, exp = sci.split("e")
    exp = int(exp)
    if exp < -4 or exp >= 16:
        return sci
    sign = "-" if mant.startswith("-") else ""
    digits = mant.lstrip("-").replace(".", "")
    if exp < 0:
        return sign + "0." + "0" * (-exp - 1) + digits
    if exp + 1 >= len(digits):
        return sign + digits + "0" * (exp + 1 - len(digits))
    return sign + digits[: exp + 1] + "." + digits[exp + 1 :]


def _decimal(d):
    digits = str(abs(d.value))
    sign = "-" if d.value < 0 else ""
    if d.scale == 0:
        return sign + digits
    if len(digits) > d.scale:
        return sign + digits[: -d.scale] + "." + digits[-d.scale :]
    return sign + "0." + "0" * (d.scale - len(digits)) + digits


def _scalar(v):
    if isinstance(v, bool):
        return b"true" if v else b"false"
    if isinstance(v, int):  # includes Timestamp
        return str(int(v)).encode()
    if isinstance(v, Decimal):
        return _decimal(v).encode()
    return None


def field_json(v):
    s = _scalar(v)
    if s is not None:
        return s
    if isinstance(v, Float):
        return _real(v.value, v.single).encode() if math.isfinite(v.value) else b"null"
    if isinstance(v, bytes):
        return json_string(v)
    if isinstance(v, TableList):
        return b"{" + b",".join(json_string(k) + b":" + field_json(x) for k, x in v) + b"}"
    if isinstance(v, list):
        return b"[" + b",".join(field_json(x) for x in v) + b"]"
    return b"null"


def field_text(v):
    s = _scalar(v)
    if s is not None:
        return s
    if isinstance(v, Float):
        if math.isnan(v.value):
            return b"NaN"
        if math.isinf(v.value):
            return b"Infinity" if v.value > 0 else b"-Infinity"
        return _real(v.value, v.single).encode()
    if isinstance(v, bytes):
        return bytes(v)
    if isinstance(v, list):
        return field_json(v)
    return b""


def expected_headers(exchange, routing_key, raw_props):
    """The Kafka header list (name, value bytes) the contract prescribes for
    a publish with these property bytes."""
    props = decode_properties(raw_props)
    out = [("amqp.exchange", exchange.encode()), ("amqp.routing_key", routing_key.encode())]
    app = []
    for name, value in props:
        if name == "headers":
            app = [(k.decode("utf-8", "surrogateescape"), field_text(v)) for k, v in value]
        elif isinstance(value, bytes):
            out.append(("amqp." + name, value))
        else:
            out.append(("amqp." + name, str(value).encode()))
    return out + app + [("amqp.properties", raw_props)], props


def to_plain(v):
    """Decoded value -> plain Python (dict/list/str/int/bool/None) for
    comparing with the scenario's JSON values."""
    if isinstance(v, TableList):
        return {k.decode(): to_plain(x) for k, x in v}
    if isinstance(v, list):
        return [to_plain(x) for x in v]
    if isinstance(v, Float):
        return v.value
    if isinstance(v, Void):
        return None
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, Timestamp):
        return int(v)
    return v
