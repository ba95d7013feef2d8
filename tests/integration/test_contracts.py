"""Message contracts (docs/contracts.md): hopper checks each publish against
its subject's schema in a real schema registry (the stack's Apicurio, one of
this module's own) before Kafka sees it.

Records are read back with confluent-kafka's own Confluent-format
deserializers pointed at the registry, not only by our code. Each test
registers its subjects under topics unique to it; registry.cache is short
where a test waits for a refresh."""

import json
import subprocess
import time
from pathlib import Path

import pika
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from hopperproc import Hopper, hopper_bin
import amqpwire as w
from pikautil import connect
from registryproc import Registry

pytestmark = pytest.mark.contracts

ORDER_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "item": {"type": "string"},
        "lines": {"type": "array", "items": {"type": "object", "properties": {"qty": {"type": "integer"}}}},
    },
    "required": ["id"],
    "additionalProperties": False,
}
# A compatible evolution: `note` becomes allowed.
ORDER_SCHEMA_V2 = dict(ORDER_SCHEMA, properties=dict(ORDER_SCHEMA["properties"], note={"type": "string"}))

GOOD = {"id": 7, "item": "tea", "lines": [{"qty": 2}]}
BAD = [
    ({"item": "no id"}, "Missing required property 'id'"),
    ({"id": "seven"}, "/id:"),
    ({"id": 7, "lines": [{"qty": "two"}]}, "/lines/0/qty:"),
    ({"id": 7, "note": "not in v1"}, "note"),
]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = Registry(tmp_path_factory.mktemp("registry"))
    reg.start()
    yield reg
    if reg.url:
        reg.stop()


def register_json(registry, subject, schema):
    return registry.register_ok(subject, json.dumps(schema), "JSON")


def contract_config(registry, exchange, topic, contract, **registry_settings):
    return {
        "registry": dict({"url": registry.url, "cache": 30000, "wait": 2000, "timeout": 2000}, **registry_settings),
        "exchanges": [{"name": "events", "type": "topic", "vhost": "/"}, {"name": exchange, "type": "topic"}],
        "routes": [
            {"exchange": "events", "routing_key": "#", "topic": "events-topic", "key": "routing_key"},
            {"exchange": exchange, "routing_key": "#", "topic": topic, "contract": contract},
        ],
    }


def publish(ch, exchange, body, mandatory=False, key="k"):
    """'ack', 'nack' or 'returned' (a mandatory publish returned, then acked)."""
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    try:
        ch.basic_publish(exchange, key, body, pika.BasicProperties(delivery_mode=2), mandatory=mandatory)
        return "ack"
    except pika.exceptions.NackError:
        return "nack"
    except pika.exceptions.UnroutableError:
        return "returned"


def deserialize(registry, record, topic):
    """The record's value through confluent-kafka's JSONDeserializer, which
    checks the frame and the schema id against the registry."""
    client = SchemaRegistryClient({"url": registry.url})
    schema = client.get_schema(int.from_bytes(record.value[1:5], "big"))
    return JSONDeserializer(schema.schema_str)(record.value, SerializationContext(topic, MessageField.VALUE))


def test_valid_json_is_framed_and_readable_by_the_confluent_deserializer(hopper_factory, registry, kafka, uid):
    topic = "orders-" + uid
    sid = register_json(registry, topic + "-value", ORDER_SCHEMA)
    h = hopper_factory(contract_config(registry, "orders", topic, {"encode": "confluent"}))
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        assert publish(ch, "orders", GOOD, mandatory=True) == "ack"
    [rec] = kafka.read_exactly(topic, 1)
    assert rec.value[:5] == b"\x00" + sid.to_bytes(4, "big"), rec
    assert deserialize(registry, rec, topic) == GOOD
    assert rec.header("amqp.exchange") == "orders"


def test_unframed_json_stays_as_published(hopper_factory, registry, kafka, uid):
    topic = "plain-" + uid
    register_json(registry, topic + "-value", ORDER_SCHEMA)
    h = hopper_factory(contract_config(registry, "orders", topic, {"format": "json"}))
    body = b'{"id": 1,   "item": "spaces kept"}'
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        assert publish(ch, "orders", body) == "ack"
    [rec] = kafka.read_exactly(topic, 1)
    assert rec.value == body


def test_a_violation_is_returned_406_and_nacked_and_never_reaches_the_topic(hopper_factory, registry, kafka, uid):
    topic = "strict-" + uid
    register_json(registry, topic + "-value", ORDER_SCHEMA)
    h = hopper_factory(contract_config(registry, "orders", topic, {"encode": "confluent"}))
    returned = []
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.add_on_return_callback(lambda _ch, method, _props, body: returned.append((method, body)))
        for body, _ in BAD:
            assert publish(ch, "orders", body, mandatory=True) == "nack", body
        assert publish(ch, "orders", b"{not json", mandatory=False) == "nack"
        assert publish(ch, "orders", GOOD) == "ack"
        conn.process_data_events(0.2)
    assert len(returned) == len(BAD), returned
    for (method, body), (sent, why) in zip(returned, BAD):
        assert method.reply_code == 406, method
        assert method.reply_text.startswith("PRECONDITION_FAILED - contract %s-value: " % topic), method
        assert why in method.reply_text, (why, method.reply_text)
        assert json.loads(body) == sent
    # Only the valid message is on the topic.
    assert kafka.count(topic) == 1
    [rec] = kafka.read_exactly(topic, 1)
    assert deserialize(registry, rec, topic) == GOOD
    h.wait_for_log("breaks subject %s-value" % topic)


def test_dead_letter_keeps_the_message_and_says_why(hopper_factory, registry, kafka, uid):
    topic = "dl-" + uid
    register_json(registry, topic + "-value", ORDER_SCHEMA)
    contract = {"encode": "confluent", "on_violation": "dead_letter"}
    h = hopper_factory(contract_config(registry, "orders", topic, contract))
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        # Acked once the dead letter is persisted: the message is safe.
        for body, _ in BAD:
            assert publish(ch, "orders", body) == "ack", body
        # A mandatory publisher still hears that it missed its topic.
        assert publish(ch, "orders", BAD[0][0], mandatory=True) == "returned"
        assert publish(ch, "orders", GOOD) == "ack"
    dead = kafka.read_exactly(topic + ".dlq", len(BAD) + 1)
    for rec, (body, why) in zip(dead, BAD + [BAD[0]]):
        assert json.loads(rec.value) == body, rec
        assert why in rec.header("hopper.contract.error"), rec
        assert rec.header("hopper.contract.subject") == topic + "-value"
        assert rec.header("hopper.contract.topic") == topic
        assert rec.header("amqp.exchange") == "orders"
    assert kafka.count(topic) == 1
    [rec] = kafka.read_exactly(topic, 1)
    assert deserialize(registry, rec, topic) == GOOD


def test_a_framed_body_must_name_the_subjects_schema(hopper_factory, registry, kafka, uid):
    topic = "framed-" + uid
    sid = register_json(registry, topic + "-value", ORDER_SCHEMA)
    other = register_json(registry, "other-" + uid + "-value", dict(ORDER_SCHEMA, title="other"))
    assert other != sid
    h = hopper_factory(contract_config(registry, "orders", topic, {"encode": "confluent"}))
    good = json.dumps(GOOD).encode()
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        assert publish(ch, "orders", b"\x00" + sid.to_bytes(4, "big") + good) == "ack"
        assert publish(ch, "orders", b"\x00" + other.to_bytes(4, "big") + good) == "nack"
        assert publish(ch, "orders", b"\x00" + sid.to_bytes(4, "big") + b'{"id": 0}') == "nack"
        assert publish(ch, "orders", b"\x00\x00") == "nack"
    # Passed through as framed, not framed twice.
    assert kafka.count(topic) == 1
    [rec] = kafka.read_exactly(topic, 1)
    assert rec.value == b"\x00" + sid.to_bytes(4, "big") + good


def test_a_framed_body_may_name_any_version_of_the_subject(hopper_factory, registry, kafka, uid):
    # hopper loads the latest version only; a producer still framing with
    # the older one's id is looked up in the registry and checked against
    # that version. A pinned contract takes its own version's id only.
    topic = "older-" + uid
    subject = topic + "-value"
    v1 = register_json(registry, subject, ORDER_SCHEMA)
    v2 = register_json(registry, subject, dict(ORDER_SCHEMA, title="v2"))
    assert v1 != v2
    other = register_json(registry, "elsewhere-" + uid + "-value", dict(ORDER_SCHEMA, title="x"))
    h = hopper_factory(contract_config(registry, "orders", topic, {"encode": "confluent"}))
    good = json.dumps(GOOD).encode()
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        assert publish(ch, "orders", b"\x00" + v2.to_bytes(4, "big") + good) == "ack"
        assert publish(ch, "orders", b"\x00" + v1.to_bytes(4, "big") + good) == "ack"
        # Checked against the version it names, not only found.
        assert publish(ch, "orders", b"\x00" + v1.to_bytes(4, "big") + b'{"id": 0}') == "nack"
        for _ in range(2):  # the second refusal is remembered, not asked again
            assert publish(ch, "orders", b"\x00" + other.to_bytes(4, "big") + good) == "nack"
        assert publish(ch, "orders", b"\x00" + (10 ** 9).to_bytes(4, "big") + good) == "nack"
    h.wait_for_log("framed bodies may name version 1 (schema id %d" % v1)
    assert h.log_text().count("schema id %d is no version of subject %s" % (other, subject)) == 1
    assert [r.value[1:5] for r in kafka.read_exactly(topic, 2)] == [
        v2.to_bytes(4, "big"), v1.to_bytes(4, "big")]
    pinned = hopper_factory(contract_config(registry, "orders", topic, {"version": 2, "encode": "confluent"}))
    with connect(pinned.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        assert publish(ch, "orders", b"\x00" + v1.to_bytes(4, "big") + good) == "nack"
    pinned.wait_for_log("not the pinned version of subject %s" % subject)


def test_a_new_version_is_picked_up_without_a_restart(hopper_factory, registry, kafka, uid):
    topic = "evolving-" + uid
    subject = topic + "-value"
    register_json(registry, subject, ORDER_SCHEMA)
    h = hopper_factory(contract_config(registry, "orders", topic, {"encode": "confluent"}, cache=500))
    with_note = {"id": 8, "note": "v2 allows it"}
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        assert publish(ch, "orders", with_note) == "nack"
        sid2 = register_json(registry, subject, ORDER_SCHEMA_V2)
        deadline = time.monotonic() + 20
        outcome = "nack"
        while outcome == "nack" and time.monotonic() < deadline:
            assert publish(ch, "orders", GOOD) == "ack"  # v1 data still passes meanwhile
            outcome = publish(ch, "orders", with_note)
            time.sleep(0.1)
        assert outcome == "ack", "version 2 was not picked up within 20 s"
    recs = kafka.read_exactly(topic, kafka.count(topic))
    [last] = [r for r in recs if deserialize(registry, r, topic) == with_note]
    assert last.value[1:5] == sid2.to_bytes(4, "big")
    assert deserialize(registry, last, topic) == with_note
    h.wait_for_log("subject %s: using version 2" % subject)


def test_a_pinned_version_is_kept(hopper_factory, registry, kafka, uid):
    topic = "pinned-" + uid
    subject = topic + "-value"
    sid1 = register_json(registry, subject, ORDER_SCHEMA)
    register_json(registry, subject, ORDER_SCHEMA_V2)
    h = hopper_factory(contract_config(registry, "orders", topic, {"encode": "confluent", "version": 1}, cache=0))
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        assert publish(ch, "orders", {"id": 8, "note": "only v2 allows it"}) == "nack"
        assert publish(ch, "orders", GOOD) == "ack"
    [rec] = kafka.read_exactly(topic, 1)
    assert rec.value[1:5] == sid1.to_bytes(4, "big")


@pytest.mark.parametrize("check_only", [True, False], ids=["-t", "start"])
def test_a_missing_subject_is_a_config_error(kafka_cluster, registry, uid, tmp_path, check_only):
    topic = "nosubject-" + uid
    config = contract_config(registry, "orders", topic, {"format": "json"})
    h = Hopper(tmp_path / "h", kafka_cluster, config_overrides=config)
    args = [hopper_bin(), "-c", str(h.config_path)] + (["-t"] if check_only else [])
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r
    want = "%s:%d:" % (h.config_path, contract_line(h.config_path))
    assert want in r.stderr, r.stderr
    assert "routes[1].contract: subject %s-value is not in the registry" % topic in r.stderr, r.stderr


def contract_line(path):
    """Line (from 1) of the second route's contract: mapping in a written config."""
    lines = path.read_text().splitlines()
    at = [i for i, line in enumerate(lines) if line.strip().strip('"').startswith("contract")][0]
    # The mapping starts on the next line.
    return at + 2


def test_registry_down_cached_subjects_flow_and_an_uncached_one_is_nacked(hopper_factory, registry, kafka, uid):
    cached, uncached = "cached-" + uid, "uncached-" + uid
    register_json(registry, cached + "-value", ORDER_SCHEMA)
    register_json(registry, uncached + "-value", ORDER_SCHEMA)
    config = contract_config(registry, "orders", cached, {"encode": "confluent"}, wait=1500, timeout=1000)
    config["exchanges"].append({"name": "later", "type": "topic"})
    config["routes"].append({"exchange": "later", "routing_key": "#", "topic": uncached, "contract": {}})
    # The registry is down when hopper starts: both subjects are uncached;
    # hopper starts anyway and says so.
    registry.kill()
    try:
        h = hopper_factory(config)
        h.wait_for_log("cannot check subject %s-value now" % cached)
        with connect(h.url) as conn:
            ch = conn.channel()
            ch.confirm_delivery()
            started = time.monotonic()
            assert publish(ch, "orders", GOOD) == "nack"
            assert time.monotonic() - started < 1.5 + 2.0
    finally:
        registry.start()
    n = 200
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        # Once the registry is back, the next publish fetches the schema.
        deadline = time.monotonic() + 20
        while publish(ch, "orders", GOOD) != "ack":
            assert time.monotonic() < deadline, "the schema was not fetched after the registry came back"
            time.sleep(0.2)
        before = kafka.count(cached)
        registry.kill()
        try:
            # Cached: keeps flowing with the registry gone.
            for i in range(n):
                assert publish(ch, "orders", dict(GOOD, id=i + 1)) == "ack", i
            # Uncached: nacked within registry.wait (and timeout).
            started = time.monotonic()
            assert publish(ch, "later", GOOD) == "nack"
            assert time.monotonic() - started < 1.5 + 2.0
        finally:
            registry.start()
    assert kafka.count(cached) == before + n
    assert kafka.count(uncached) == 0


def test_the_acceptance_story_with_a_contract_on_events_topic(hopper_factory, registry, kafka, uid):
    """STORY-MSG-01 (test_acceptance.py) with a JSON Schema contract on
    events-topic: the publish is confirmed, and a Kafka consumer reads it
    back through the Confluent deserializer, headers intact."""
    from test_acceptance import HEADERS

    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"order": {"type": "integer"}, "uid": {"type": "string"}},
        "required": ["order", "uid"],
    }
    sid = register_json(registry, "events-topic-value", schema)
    overrides = {
        "registry": {"url": registry.url},
        "routes": [{"exchange": "events", "routing_key": "#", "topic": "events-topic", "key": "routing_key",
                    "contract": {"encode": "confluent"}}],
    }
    h = hopper_factory(overrides)
    routing_key = "order.created." + uid
    body = {"order": 1, "uid": uid}
    start = kafka.end_offsets("events-topic")
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        props = pika.BasicProperties(content_type="application/json", headers=HEADERS, delivery_mode=2,
                                     message_id="msg-" + uid)
        ch.basic_publish("events", routing_key, json.dumps(body).encode(), props, mandatory=True)
        assert publish(ch, "events", {"order": "one", "uid": uid}, mandatory=True, key=routing_key) == "nack"
    [rec] = kafka.read_exactly("events-topic", 1, start=start, match=lambda r: r.key == routing_key.encode())
    assert rec.value[:5] == b"\x00" + sid.to_bytes(4, "big")
    assert deserialize(registry, rec, "events-topic") == body
    assert rec.header("amqp.message_id") == "msg-" + uid
    assert rec.header("amqp.content_type") == "application/json"
    assert rec.header("x-text") == HEADERS["x-text"]
    assert rec.header("x-int") == "42"


class SlowRegistry:
    """A stand-in registry (Confluent API, one subject) whose answers can be
    made to fail or to come late: what a real registry under load does,
    which the real one cannot be told to do."""

    def __init__(self, subject, schema):
        import http.server
        import threading

        self.mode, self.delay, self.asked = "fail", 0.0, 0
        self.auth = []  # the Authorization header of each request
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                outer.asked += 1
                outer.auth.append(self.headers.get("Authorization"))
                if outer.mode == "fail":
                    self.send_response(503)
                    self.end_headers()
                    return
                time.sleep(outer.delay)
                if self.path.endswith("/subjects/%s/versions/latest" % subject):
                    body = json.dumps({"subject": subject, "version": 1, "id": 41, "schema": json.dumps(schema),
                                       "schemaType": "JSON"}).encode()
                    self.send_response(200)
                else:
                    body = b'{"error_code":40401,"message":"no"}'
                    self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/base" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_publish_waiting_for_its_schema_holds_only_its_channel(hopper_factory, kafka, uid):
    topic = "slow-" + uid
    reg = SlowRegistry(topic + "-value", ORDER_SCHEMA)
    try:
        config = {
            "registry": {"url": reg.url, "wait": 3000, "timeout": 5000},
            "exchanges": [{"name": "orders", "type": "topic"}, {"name": "free", "type": "topic"}],
            "routes": [
                {"exchange": "orders", "routing_key": "#", "topic": topic, "contract": {"encode": "confluent"}},
                {"exchange": "free", "routing_key": "#", "topic": topic + "-free"},
            ],
        }
        # Topics made beforehand: creating one takes a second, which would
        # blur what is measured.
        kafka.create_topic(topic)
        kafka.create_topic(topic + "-free")
        # The registry fails at start: hopper starts with nothing cached.
        h = hopper_factory(config)
        h.wait_for_log("cannot check subject %s-value now" % topic)
        reg.mode, reg.delay = "slow", 1.5
        time.sleep(1.1)  # past the back-off after the failed fetch
        # One connection, two channels: 1 publishes to the contracted
        # route (held for its schema), then to a free route (behind it);
        # 2 publishes to the free route and must not wait.
        confirms = {}
        with w.RawClient(h.port) as c:
            c.handshake()
            c.open_channel(1, confirm=True)
            c.open_channel(2, confirm=True)
            started = time.monotonic()
            c.send(w.publish_frames(1, "orders", "k", json.dumps(GOOD).encode()))
            c.send(w.publish_frames(1, "free", "k", b"behind the held one"))
            c.send(w.publish_frames(2, "free", "k", b"not held"))
            while len(confirms) < 3:
                f = c.read_frame(timeout=20)
                assert f is not None and f.method in (w.BASIC_ACK, w.BASIC_NACK), f
                tag, multiple = w.parse_confirm(f.method, f.args)
                for t in range(1, tag + 1) if multiple else [tag]:
                    confirms.setdefault((f.channel, t), (f.method == w.BASIC_ACK, time.monotonic() - started))
        assert set(confirms) == {(1, 1), (1, 2), (2, 1)}, confirms
        assert all(ok for ok, _ in confirms.values()), confirms
        assert confirms[(2, 1)][1] < 1.0, "the other channel waited: %r" % confirms
        assert confirms[(1, 1)][1] >= 1.4, "the schema came after 1.5 s: %r" % confirms
        # Handed to Kafka after the held one (Kafka may confirm the two
        # topics in either order).
        assert confirms[(1, 2)][1] >= 1.4, confirms
        [rec] = kafka.read_exactly(topic, 1)
        assert rec.value[:5] == b"\x00" + (41).to_bytes(4, "big")
        assert kafka.count(topic + "-free") == 2
    finally:
        reg.close()


def test_a_schema_slower_than_registry_wait_means_a_nack_at_the_deadline(hopper_factory, uid):
    topic = "late-" + uid
    reg = SlowRegistry(topic + "-value", ORDER_SCHEMA)
    try:
        h = hopper_factory({
            "registry": {"url": reg.url, "wait": 1000, "timeout": 8000},
            "exchanges": [{"name": "orders", "type": "topic"}],
            "routes": [{"exchange": "orders", "routing_key": "#", "topic": topic, "contract": {}}],
        })
        h.wait_for_log("cannot check subject %s-value now" % topic)
        reg.mode, reg.delay = "slow", 3.0
        time.sleep(1.1)
        with connect(h.url) as conn:
            ch = conn.channel()
            ch.confirm_delivery()
            started = time.monotonic()
            assert publish(ch, "orders", GOOD) == "nack"
            waited = time.monotonic() - started
            assert 0.9 <= waited < 2.5, waited
            # The answer still arrives and is kept: later publishes pass.
            deadline = time.monotonic() + 15
            while publish(ch, "orders", GOOD) != "ack":
                assert time.monotonic() < deadline
        h.wait_for_log("within registry.wait (1000 ms)")
    finally:
        reg.close()


# ---- Avro ----------------------------------------------------------------------------

ORDER_AVRO = {
    "type": "record", "name": "Order", "namespace": "hopper.test",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "item", "type": "string"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "lines", "type": {"type": "array", "items": {
            "type": "record", "name": "Line", "fields": [{"name": "qty", "type": "int"}]}}, "default": []},
        {"name": "state", "type": {"type": "enum", "name": "State", "symbols": ["NEW", "PAID"]}, "default": "NEW"},
    ],
}


@pytest.fixture(scope="module")
def avro_reader():
    """A function decoding records with confluent-kafka's AvroDeserializer."""
    r = subprocess.run([str(Path(__file__).resolve().parents[2] / "scripts" / "test-venv.sh"), "contracts"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        pytest.fail("scripts/test-venv.sh contracts failed (%d):\n%s" % (r.returncode, r.stderr[-3000:]),
                    pytrace=False)
    python = Path(r.stdout.strip().splitlines()[-1]) / "bin" / "python"

    def read(registry, topic, records):
        lines = "".join(json.dumps({"topic": topic, "value": rec.value.hex()}) + "\n" for rec in records)
        out = subprocess.run([str(python), str(Path(__file__).with_name("avroread.py")), registry.url],
                             input=lines, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return [json.loads(line) for line in out.stdout.splitlines()]

    return read


def test_avro_json_bodies_are_encoded_and_readable_by_the_confluent_deserializer(
        hopper_factory, registry, kafka, uid, avro_reader):
    topic = "avro-" + uid
    sid = registry.register_ok(topic + "-value", json.dumps(ORDER_AVRO), "AVRO")
    h = hopper_factory(contract_config(registry, "orders", topic, {"format": "avro"}))
    bodies = [
        {"id": 1, "item": "tea"},  # defaults fill note, lines and state
        {"id": 2, "item": "cake", "note": "with cream", "lines": [{"qty": 2}, {"qty": 3}], "state": "PAID"},
        {"id": 3, "item": "union, Avro's JSON form", "note": {"string": "wrapped"}},
    ]
    bad = [
        ({"item": "no id"}, 'missing field "id"'),
        ({"id": "one", "item": "x"}, "/id:"),
        ({"id": 4, "item": "x", "state": "LOST"}, "/state:"),
        ({"id": 5, "item": "x", "lines": [{"qty": 2.5}]}, "/lines/0/qty:"),
        ({"id": 6, "item": "x", "colour": "red"}, "/colour:"),
    ]
    returned = []
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.add_on_return_callback(lambda _ch, method, _props, body: returned.append(method.reply_text))
        for body in bodies:
            assert publish(ch, "orders", body, mandatory=True) == "ack", body
        for body, _ in bad:
            assert publish(ch, "orders", body, mandatory=True) == "nack", body
        conn.process_data_events(0.2)
    for text, (_, why) in zip(returned, bad):
        assert why in text, (why, text)
    assert kafka.count(topic) == len(bodies)
    recs = kafka.read_exactly(topic, len(bodies))
    for rec in recs:
        assert rec.value[:5] == b"\x00" + sid.to_bytes(4, "big"), rec
    got = sorted((d["value"] for d in avro_reader(registry, topic, recs)), key=lambda v: v["id"])
    assert got == [
        {"id": 1, "item": "tea", "note": None, "lines": [], "state": "NEW"},
        {"id": 2, "item": "cake", "note": "with cream", "lines": [{"qty": 2}, {"qty": 3}], "state": "PAID"},
        {"id": 3, "item": "union, Avro's JSON form", "note": "wrapped", "lines": [], "state": "NEW"},
    ], got


def test_avro_framed_binary_is_checked_and_passed_through(hopper_factory, registry, kafka, uid, avro_reader):
    topic = "avrobin-" + uid
    sid = registry.register_ok(topic + "-value", json.dumps(ORDER_AVRO), "AVRO")
    h = hopper_factory(contract_config(registry, "orders", topic, {"format": "avro"}))
    frame = b"\x00" + sid.to_bytes(4, "big")
    # id 7 (zigzag 14), "tea", note null (branch 0), no lines (block 0), NEW (0)
    datum = bytes([14, 6]) + b"tea" + bytes([0, 0, 0])
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        assert publish(ch, "orders", frame + datum) == "ack"
        assert publish(ch, "orders", frame + datum[:-1]) == "nack"  # truncated
        assert publish(ch, "orders", frame + datum + b"\x00") == "nack"  # trailing bytes
        assert publish(ch, "orders", frame + bytes([14, 0x80, 0x80, 0x80, 0x80, 0x10])) == "nack"  # huge length
    [rec] = kafka.read_exactly(topic, 1)
    assert rec.value == frame + datum
    assert avro_reader(registry, topic, [rec]) == [
        {"value": {"id": 7, "item": "tea", "note": None, "lines": [], "state": "NEW"}}]


def test_registry_credentials_go_as_basic_auth(hopper_factory, uid):
    import base64

    topic = "auth-" + uid
    reg = SlowRegistry(topic + "-value", ORDER_SCHEMA)
    reg.mode = "slow"
    try:
        h = hopper_factory({
            "registry": {"url": reg.url, "username": "svc-hopper", "password": "s3cr:t"},
            "exchanges": [{"name": "orders", "type": "topic"}],
            "routes": [{"exchange": "orders", "routing_key": "#", "topic": topic, "contract": {}}],
        })
        with connect(h.url) as conn:
            ch = conn.channel()
            ch.confirm_delivery()
            assert publish(ch, "orders", GOOD) == "ack"
    finally:
        reg.close()
    want = "Basic " + base64.b64encode(b"svc-hopper:s3cr:t").decode()
    assert reg.auth and all(a == want for a in reg.auth), reg.auth
    assert "s3cr:t" not in h.log_text()


def test_an_exchange_contract_covers_its_default_route(hopper_factory, registry, kafka, uid):
    exchange = "payments-" + uid
    sid = register_json(registry, exchange + "-value", ORDER_SCHEMA)
    h = hopper_factory({
        "registry": {"url": registry.url},
        "exchanges": [{"name": exchange, "type": "topic", "contract": {"encode": "confluent"}}],
    })
    with connect(h.url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        assert publish(ch, exchange, GOOD) == "ack"
        assert publish(ch, exchange, {"id": "x"}) == "nack"
    [rec] = kafka.read_exactly(exchange, 1)
    assert rec.value[:5] == b"\x00" + sid.to_bytes(4, "big")
    assert kafka.count(exchange) == 1
