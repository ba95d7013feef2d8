#!/usr/bin/python3
"""make_seeds.py - derive the rest of the seed corpora from the recorded
client sessions, plus handmade inputs.

Reads tests/fuzz/corpus/conn/{pika,kombu,pyamqp,amqplib}-* (written by
record_sessions.py) and writes:
  corpus/conn/    variants of the sessions under other control bytes (sink
                  outcomes, held reports, tight config, timers, client
                  close), truncated sessions, and handmade hostile streams;
  corpus/table/   every field table the sessions carry (bare, as method
                  payloads, and as content-header properties), and deep or
                  odd handmade tables;
  corpus/config/  config/hopper.yaml and variants;
  corpus/record_view/  Kafka records as fuzz_record_view reads them:
                  hopper's own (every property, headers named like ours,
                  nesting at and past the limit) and foreign or forged ones.
Deterministic: running it again rewrites the same files.

Usage: tests/fuzz/record/make_seeds.py"""

import struct
from pathlib import Path

FUZZ = Path(__file__).resolve().parents[1]
REPO = FUZZ.parents[1]
CONN = FUZZ / "corpus" / "conn"
TABLE = FUZZ / "corpus" / "table"
CONFIG = FUZZ / "corpus" / "config"
RECORD_VIEW = FUZZ / "corpus" / "record_view"
RECORDED = ("pika-", "kombu-", "pyamqp-", "amqplib-")

HEADER = b"AMQP\x00\x00\x09\x01"


# ---- AMQP encoding helpers ---------------------------------------------------


def shortstr(s):
    s = s.encode() if isinstance(s, str) else s
    return bytes([len(s)]) + s


def longstr(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack(">I", len(s)) + s


def table(entries):
    """entries: list of (key, encoded value with its type letter)."""
    body = b"".join(shortstr(k) + v for k, v in entries)
    return struct.pack(">I", len(body)) + body


def array(values):
    body = b"".join(values)
    return struct.pack(">I", len(body)) + body


def S(s):
    return b"S" + longstr(s)


def F(entries):
    return b"F" + table(entries)


def A(values):
    return b"A" + array(values)


def frame(ftype, channel, payload):
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + b"\xce"


def method(channel, cls, mid, args=b""):
    return frame(1, channel, struct.pack(">HH", cls, mid) + args)


def content(channel, body, props=b"\x00\x00", chunk=None):
    out = frame(2, channel, struct.pack(">HHQ", 60, 0, len(body)) + props)
    chunk = chunk or max(1, len(body))
    for i in range(0, len(body), chunk):
        out += frame(3, channel, body[i : i + chunk])
    return out


def handshake(user="guest", password="guest", vhost="/", frame_max=131072, channel_max=2047, heartbeat=0,
              caps=True):
    props = table([("capabilities", F([("connection.blocked", b"t\x01"),
                                       ("authentication_failure_close", b"t\x01")]))]) if caps else table([])
    resp = b"\x00" + user.encode() + b"\x00" + password.encode()
    return (HEADER
            + method(0, 10, 11, props + shortstr("PLAIN") + longstr(resp) + shortstr("en_US"))
            + method(0, 10, 31, struct.pack(">HIH", channel_max, frame_max, heartbeat))
            + method(0, 10, 40, shortstr(vhost) + shortstr("") + b"\x00"))


def channel_open(ch):
    return method(ch, 20, 10, shortstr(""))


def confirm_select(ch):
    return method(ch, 85, 10, b"\x00")


def publish(ch, exchange, rk, body, props=b"\x00\x00", mandatory=False, chunk=None):
    bits = 1 if mandatory else 0
    return (method(ch, 60, 40, struct.pack(">H", 0) + shortstr(exchange) + shortstr(rk) + bytes([bits]))
            + content(ch, body, props, chunk))


def close():
    return method(0, 10, 50, struct.pack(">H", 200) + shortstr("bye") + struct.pack(">HH", 0, 0))


def props_headers(headers_table, message_id=None):
    flags = 0x2000
    rest = headers_table
    if message_id is not None:
        flags |= 0x0080
        rest += shortstr(message_id)
    return struct.pack(">H", flags) + rest


# ---- reading recorded sessions -----------------------------------------------


def frames_of(stream):
    """(type, channel, payload) of each frame after the protocol header."""
    p = 8
    while p + 7 <= len(stream):
        t, ch, size = struct.unpack(">BHI", stream[p : p + 7])
        if p + 8 + size > len(stream):
            break
        yield t, ch, stream[p + 7 : p + 7 + size]
        p += 8 + size


def tables_in_method(payload):
    """Field tables inside a method payload (class, method, args), found by
    the argument layouts hopper's wire.c knows."""
    cls, mid = struct.unpack(">HH", payload[:4])
    a = payload[4:]
    layouts = {(10, 11): "T", (40, 10): "2ssbT", (50, 10): "2sbT", (50, 20): "2sssbT", (50, 50): "2sssT",
               (40, 30): "2sssbT", (60, 20): "2ssbT"}
    layout = layouts.get((cls, mid))
    if not layout:
        return []
    p = 0
    for f in layout:
        if f in "1b":
            p += 1
        elif f == "2":
            p += 2
        elif f == "s":
            p += 1 + a[p]
        else:
            n = struct.unpack(">I", a[p : p + 4])[0]
            return [a[p : p + 4 + n]]
    return []


def headers_in_props(props):
    flags = struct.unpack(">H", props[:2])[0]
    p = 2
    for bit in (0x8000, 0x4000):
        if flags & bit:
            p += 1 + props[p]
    if flags & 0x2000:
        n = struct.unpack(">I", props[p : p + 4])[0]
        return props[p : p + 4 + n]
    return None


# ---- writers -----------------------------------------------------------------


def write(dirpath, name, data):
    dirpath.mkdir(parents=True, exist_ok=True)
    (dirpath / name).write_bytes(data)


def conn_seeds(sessions):
    # The sessions under other control bytes (see fuzz_conn.c): byte 1 bits
    # 0-1 outcome, 2 reverse, 3 small queue, 4 hold, 5 timers, 6 client
    # closes, 7 tight config.
    variants = {"nack": 0x01, "mixed-reverse": 0x06, "refuse": 0x03, "full-hold": 0x18,
                "hold-close": 0x50, "tight": 0x80, "timers": 0x20}
    for name, data in sessions.items():
        stream = data[2:]
        for vname, ctl in variants.items():
            if name.startswith(("pika-confirm", "kombu-confirm", "amqplib-confirm")) or vname == "tight":
                write(CONN, "%s.%s" % (name, vname), bytes([1, ctl]) + stream)
        write(CONN, "%s.chunks" % name, bytes([7, 0]) + stream)
        # Cut short: after the handshake's first frames.
        cut = 8
        for i, (t, ch, payload) in enumerate(frames_of(stream)):
            cut += 8 + len(payload)
            if i == 2:
                break
        write(CONN, "%s.cut" % name, bytes([1, 0x20]) + stream[:cut])

    hs = handshake()
    body = b"hello"
    hand = {
        "bad-header": HEADER[:7] + b"\x00",
        "http": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "header-then-garbage": HEADER + b"\x01\x00\x00\xff\xff\xff\xff",
        "bad-end-octet": HEADER + frame(1, 0, b"\x00\x0a\x00\x0b")[:-1] + b"\x00",
        "wrong-password": HEADER + method(0, 10, 11, table([("capabilities", F([("authentication_failure_close",
                                                                                   b"t\x01")]))])
                                             + shortstr("PLAIN") + longstr(b"\x00guest\x00nope") + shortstr("en_US")),
        "amqplain": HEADER + method(0, 10, 11, table([]) + shortstr("AMQPLAIN")
                                    + longstr(table([("LOGIN", S("guest")), ("PASSWORD", S("guest"))])[4:])
                                    + shortstr("en_US"))
                    + method(0, 10, 31, struct.pack(">HIH", 0, 4096, 1)) + method(0, 10, 40, shortstr("/") + b"\x00\x00"),
        "heartbeat-on-channel": hs + frame(8, 1, b""),
        # Announces 140000 bytes; refused on the header alone.
        "oversize-frame": hs + struct.pack(">BHI", 1, 1, 140000) + b"\x00\x14\x00\x0a",
        "publish-confirm-multi": hs + channel_open(1) + confirm_select(1)
                                 + b"".join(publish(1, "events", "orders.eu.created", body,
                                                    props_headers(table([("customer", S("c%d" % i))])), chunk=2)
                                            for i in range(6))
                                 + close(),
        "publish-mandatory-unroutable": hs + channel_open(1) + confirm_select(1)
                                        + publish(1, "quiet", "x.y", body, mandatory=True)
                                        + publish(1, "", "bad topic name!", body, mandatory=True) + close(),
        "publish-message-id": hs + channel_open(1) + publish(1, "", "mid.1", body,
                                                             props_headers(table([]), "m-42")) + close(),
        "deep-headers": hs + channel_open(1) + publish(
            1, "events", "k", body, props_headers(table([("d", nest_tables(20))]))) + close(),
        "immediate": hs + channel_open(1) + method(1, 60, 40, b"\x00\x00" + shortstr("events") + shortstr("k") + b"\x02"),
        "content-without-method": hs + channel_open(1) + content(1, body),
        "body-overrun": hs + channel_open(1) + method(1, 60, 40, b"\x00\x00" + shortstr("events") + shortstr("k") + b"\x00")
                        + frame(2, 1, struct.pack(">HHQ", 60, 0, 3) + b"\x00\x00") + frame(3, 1, b"hello"),
        "channel-max": hs + channel_open(65535) + channel_open(2048),
        "two-channel-open": hs + channel_open(1) + channel_open(1),
        "vhost-v2-app": handshake("app", "secret", "v2") + channel_open(1)
                        + publish(1, "hx", "k", body) + close(),
        "closing-then-more": hs + channel_open(1) + method(1, 60, 40, b"\x00\x00" + shortstr("nope") + shortstr("k") + b"\x00")
                             + publish(1, "events", "k", body) + method(1, 20, 41) + close() + method(0, 10, 51),
        "declare-all": hs + channel_open(1)
                       + method(1, 40, 10, b"\x00\x00" + shortstr("x1") + shortstr("headers") + b"\x02"
                                + table([("alternate-exchange", S("ae"))]))
                       + method(1, 50, 10, b"\x00\x00" + shortstr("") + b"\x08" + table([("x-max-length", b"I\x00\x00\x00\x0a")]))
                       + method(1, 50, 20, b"\x00\x00" + shortstr("") + shortstr("x1") + shortstr("rk") + b"\x00"
                                + table([("x-match", S("all"))]))
                       + method(1, 50, 50, b"\x00\x00" + shortstr("") + shortstr("x1") + shortstr("rk") + table([]))
                       + method(1, 50, 30, b"\x00\x00" + shortstr("") + b"\x00")
                       + method(1, 50, 40, b"\x00\x00" + shortstr("") + b"\x00")
                       + method(1, 40, 20, b"\x00\x00" + shortstr("x1") + b"\x00")
                       + method(1, 60, 10, struct.pack(">IHB", 0, 10, 0))
                       + method(1, 20, 20, b"\x01") + method(1, 20, 40, struct.pack(">H", 200) + shortstr("ok") + b"\x00\x00\x00\x00")
                       + close(),
    }
    for name, stream in hand.items():
        write(CONN, "hand-%s" % name, bytes([1, 0]) + stream)
    write(CONN, "hand-publish-confirm-multi.tight-hold", bytes([1, 0x9a]) + hand["publish-confirm-multi"])
    write(CONN, "hand-publish-confirm-multi.full", bytes([1, 0x0b]) + hand["publish-confirm-multi"])


def nest_tables(depth):
    v = S("leaf")
    for i in range(depth):
        v = F([("n%d" % i, v)])
    return v


def nest_arrays(depth):
    v = b"V"
    for _ in range(depth):
        v = A([v])
    return v


def table_seeds(sessions):
    n = 0
    seen = set()
    for name, data in sorted(sessions.items()):
        for t, ch, payload in frames_of(data[2:]):
            found = []
            if t == 1 and len(payload) >= 4:
                found = [(x, "table") for x in tables_in_method(payload)]
                if found:
                    found.append((payload, "method"))
            elif t == 2 and len(payload) >= 14:
                h = headers_in_props(payload[12:])
                if h:
                    found = [(h, "table")]
                found.append((payload[:4] + payload[12:], "props"))
            for blob, kind in found:
                if blob in seen:
                    continue
                seen.add(blob)
                write(TABLE, "%s-%s-%d" % (name.split(".")[0], kind, n), blob)
                n += 1

    every_type = table([
        ("t", b"t\x01"), ("b", b"b\x80"), ("B", b"B\xff"), ("s", b"s\x80\x00"), ("u", b"u\xff\xff"),
        ("I", b"I\x80\x00\x00\x00"), ("i", b"i\xff\xff\xff\xff"), ("f", b"f\x7f\xc0\x00\x00"),
        ("l", b"l\x80" + b"\x00" * 7), ("L", b"L" + b"\xff" * 8), ("d", b"d\x7f\xf0" + b"\x00" * 6),
        ("d2", b"d\x3f\xb9\x99\x99\x99\x99\x99\x9a"), ("D", b"D\x02\xff\xff\xff\x85"), ("T", b"T" + b"\x00" * 7 + b"\x01"),
        ("V", b"V"), ("S", S(b"\xff\xfe\"\\\x01 utf8 \xc3\xa9 \xed\xa0\x80")), ("x", b"x" + longstr(b"\x00\x01")),
        ("A", A([b"t\x00", S("a"), F([("k", b"V")])])), ("F", F([])),
    ])
    hand = {
        "every-type": every_type,
        "empty": table([]),
        "deep-16-tables": table([("d", nest_tables(15))]),
        "deep-17-tables": table([("d", nest_tables(16))]),
        "deep-16-arrays": table([("d", nest_arrays(15))]),
        "deep-17-arrays": table([("d", nest_arrays(16))]),
        "deep-200": table([("d", nest_arrays(200))]),
        "spill-past-container": struct.pack(">I", 6) + b"\x01kS\x00\x00\x00\x05abcde",
        "unknown-type": table([("z", b"Z")]),
        "length-too-big": struct.pack(">I", 0xffffffff) + b"\x00",
        "dup-keys": table([("a", S("1")), ("a", S("2"))]),
        "key-255": table([("k" * 255, b"V")]),
        "method-start-ok": struct.pack(">HH", 10, 11) + every_type + shortstr("PLAIN") + longstr("\x00u\x00p") + shortstr("en_US"),
        "method-exchange-declare": struct.pack(">HH", 40, 10) + b"\x00\x00" + shortstr("x") + shortstr("topic") + b"\x00"
                                   + table([("d", nest_tables(14))]),
        "method-queue-unbind": struct.pack(">HH", 50, 50) + b"\x00\x00" + shortstr("q") + shortstr("x") + shortstr("k") + every_type,
        "method-basic-consume": struct.pack(">HH", 60, 20) + b"\x00\x00" + shortstr("q") + shortstr("c") + b"\x00" + every_type,
        "method-exchange-bind": struct.pack(">HH", 40, 30) + b"\x00\x00" + shortstr("a") + shortstr("b") + shortstr("k") + b"\x00" + every_type,
        "props-all": struct.pack(">HH", 60, 0) + struct.pack(">H", 0xfffc) + shortstr("ct") + shortstr("ce") + every_type
                     + b"\x02\x05" + shortstr("corr") + shortstr("reply") + shortstr("1000") + shortstr("mid")
                     + struct.pack(">Q", 1700000000) + shortstr("type") + shortstr("user") + shortstr("app") + shortstr("cluster"),
        "props-continuation-flag": struct.pack(">HH", 60, 0) + struct.pack(">HH", 0x2001, 0x0000) + table([]),
        "props-headers-deep": struct.pack(">HH", 60, 0) + props_headers(table([("d", nest_arrays(15))])),
    }
    for name, blob in hand.items():
        write(TABLE, "hand-%s" % name, blob)


# ---- Kafka records for fuzz_record_view (layout in fuzz_record_view.c) ------

EXCHANGE, ROUTING_KEY, PROPERTIES, LONG_NAME = 0xf0, 0xf1, 0xf2, 0xf3
BIG = object()


def rv_header(name, value):
    head = bytes([name]) if isinstance(name, int) else bytes([len(name)]) + name.encode()
    if value is None:
        return head + b"\xff\xff"
    if value is BIG:
        return head + b"\xff\xfe"
    value = value.encode() if isinstance(value, str) else value
    return head + struct.pack(">H", len(value)) + value


def rv_record(headers, depth=16, key=None, ts=None, key_as_message_id=False):
    ctl = depth << 3 | (1 if key_as_message_id else 0) | (2 if key is not None else 0) | (4 if ts is not None else 0)
    out = bytes([ctl])
    if key is not None:
        out += bytes([len(key)]) + key.encode()
    if ts is not None:
        out += struct.pack(">q", ts)
    return out + b"".join(rv_header(n, v) for n, v in headers)


def props_all():
    return (struct.pack(">H", 0xfffc) + shortstr("ct") + shortstr("ce") + table([("a", S("1")), ("t", F([("n", b"V")]))])
            + b"\x02\x05" + shortstr("corr") + shortstr("reply") + shortstr("1000") + shortstr("mid")
            + struct.pack(">Q", 1700000000) + shortstr("type") + shortstr("user") + shortstr("app") + shortstr("cluster"))


def record_view_seeds():
    ours = [(EXCHANGE, "events"), (ROUTING_KEY, "orders.created")]
    seeds = {
        "own-all-properties": ours + [("a", "1"), ("t", '{"n":null}'), (PROPERTIES, props_all())],
        "own-no-properties": ours + [(PROPERTIES, b"\x00\x00")],
        "own-names-like-ours": ours + [("amqp.properties", b"\xff\xff"), ("amqp.exchange", "forged"),
                                       (PROPERTIES, props_headers(table([("amqp.properties", S("\xff\xff"))])))],
        "own-deep-16": ours + [(PROPERTIES, props_headers(table([("d", nest_tables(15))])))],
        "forged-deep-17": ours + [(PROPERTIES, props_headers(table([("d", nest_tables(16))])))],
        "forged-continuation": ours + [(PROPERTIES, struct.pack(">HH", 0x2001, 0) + table([]))],
        "forged-garbage": ours + [(PROPERTIES, b"\xff\xff\xff")],
        "forged-null-exchange": [(EXCHANGE, None), (ROUTING_KEY, "rk"), (PROPERTIES, b"\x00\x00")],
        "foreign-empty": [],
        "foreign-key-timestamp": [("trace", "t-1"), ("null", None), ("empty", ""), ("dup", "1"), ("dup", "2")],
        "foreign-big-then-small": [("big", BIG), ("small", "s"), (LONG_NAME, "long name")],
        "foreign-many": [("h%d" % i, "v%d" % i) for i in range(200)],
    }
    for name, headers in seeds.items():
        if name == "foreign-key-timestamp":
            data = rv_record(headers, key="order-7", ts=1700000000123, key_as_message_id=True)
        else:
            data = rv_record(headers)
        write(RECORD_VIEW, name, data)


def config_seeds():
    shipped = (REPO / "config" / "hopper.yaml").read_text()
    write(CONFIG, "hopper.yaml", shipped.encode())
    variants = {
        "empty.yaml": "",
        "null.yaml": "~\n",
        "flow.yaml": "{listen: {address: '::1', port: 5673}, limits: {frame_max: 4096, heartbeat: 0}, default_route: off}\n",
        "routes.yaml": (
            "kafka:\n  topic_prefix: amqp.\n  properties: {linger.ms: 5, acks: all, compression.type: lz4}\n"
            "users:\n  - {name: app, password: s3cret, loopback_only: false}\n  - {name: guest, password: guest}\n"
            "vhosts: [\"/\", staging]\n"
            "exchanges:\n  - {name: orders, type: topic, vhost: staging, default_route: false}\n"
            "  - {name: logs, type: fanout}\n"
            "routes:\n  - {exchange: orders, routing_key: \"orders.*.created\", topic: created, key: \"header:customer\"}\n"
            "  - {exchange: \"\", routing_key: \"#\", topic: all, key: message_id}\n"
            "  - {exchange: logs, routing_key: \"*.#.x\", topic: logs, key: none}\n"),
        "anchors.yaml": "limits: &l\n  heartbeat: 30\nx: *l\n",
        "unknown-key.yaml": "limits:\n  frame_mux: 4096\n",
        "bad-int.yaml": "limits:\n  frame_max: 0x1000\n  channel_max: \"12\"\n",
        "out-of-range.yaml": "limits:\n  frame_max: 1024\n",
        "duplicate.yaml": "listen: {port: 1}\nlisten: {port: 2}\n",
        "multi-doc.yaml": "listen: {port: 1}\n---\nlisten: {port: 2}\n",
        "tabs.yaml": "listen:\n\tport: 1\n",
        "bad-topic.yaml": "routes:\n  - {exchange: x, routing_key: \"#\", topic: \"bad topic\\n\"}\n",
        "control-chars.yaml": "users:\n  - {name: \"a\\x1b[31m\", password: \"\\t\"}\n  - {name: \"a\\x1b[31m\", password: x}\n",
        "tag.yaml": "!!map {listen: !!str x}\n",
    }
    for name, text in variants.items():
        write(CONFIG, name, text.encode())


def main():
    sessions = {p.name: p.read_bytes() for p in sorted(CONN.iterdir())
                if p.name.startswith(RECORDED) and "." not in p.name}
    if not sessions:
        raise SystemExit("no recorded sessions in %s: run record_sessions.py first" % CONN)
    conn_seeds(sessions)
    table_seeds(sessions)
    config_seeds()
    record_view_seeds()


if __name__ == "__main__":
    main()
