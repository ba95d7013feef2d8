"""The stack's schema registry (contrib/registry/registry.sh): Apicurio
Registry, driven through its Confluent-compatible REST API the way
hopper's contracts will use it.

The module's registry runs on a free port with its own data directory in
the test's tmp dir, so it neither needs nor disturbs the one `make run`
starts. Its first start on a machine builds the registry with Maven (about
a minute; `make setup` does it beforehand), so the fixture's deadline is
generous; each test body has the usual 120 s."""

import json
import uuid

import pytest

from registryproc import Registry

pytestmark = pytest.mark.stack


def avro_record(name, fields):
    return json.dumps({"type": "record", "name": name, "namespace": "hopper.test", "fields": fields})


ORDER_V1 = avro_record("Order", [
    {"name": "id", "type": "string"},
    {"name": "amount", "type": "long"},
])
# BACKWARD-compatible with v1: the new field has a default.
ORDER_V2 = avro_record("Order", [
    {"name": "id", "type": "string"},
    {"name": "amount", "type": "long"},
    {"name": "currency", "type": "string", "default": "EUR"},
])
# Not BACKWARD-compatible with v1: a reader of this version cannot read
# v1 data, which has no `currency`.
ORDER_NO_DEFAULT = avro_record("Order", [
    {"name": "id", "type": "string"},
    {"name": "amount", "type": "long"},
    {"name": "currency", "type": "string"},
])

EVENT_JSON_SCHEMA = json.dumps({
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {"id": {"type": "string"}, "count": {"type": "integer", "minimum": 0}},
    "required": ["id"],
    "additionalProperties": False,
})


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = Registry(tmp_path_factory.mktemp("registry"))
    reg.start()
    yield reg
    reg.stop()


def subject(topic):
    """TopicNameStrategy's value subject of a topic unique to this run."""
    return "%s-%s-value" % (topic, uuid.uuid4().hex[:12])


def test_json_schema_registered_and_read_back_by_id(registry):
    s = subject("events-topic")
    sid = registry.register_ok(s, EVENT_JSON_SCHEMA, "JSON")

    status, body = registry.call("GET", "/schemas/ids/%d" % sid)
    assert status == 200, body
    assert body["schemaType"] == "JSON", body
    assert json.loads(body["schema"]) == json.loads(EVENT_JSON_SCHEMA)

    status, body = registry.call("GET", "/subjects/%s/versions/latest" % s)
    assert status == 200, body
    assert (body["subject"], body["version"], body["id"]) == (s, 1, sid), body

    # The same schema again is the same id, not a new version; the lookup
    # a producer does before publishing finds it.
    assert registry.register_ok(s, EVENT_JSON_SCHEMA, "JSON") == sid
    status, body = registry.call("POST", "/subjects/%s" % s, {"schema": EVENT_JSON_SCHEMA, "schemaType": "JSON"})
    assert status == 200, body
    assert (body["id"], body["version"]) == (sid, 1), body
    assert registry.call("GET", "/subjects/%s/versions" % s) == (200, [1])


def test_avro_schema_registered_and_read_back_by_id(registry):
    s = subject("orders")
    sid = registry.register_ok(s, ORDER_V1, "AVRO")

    status, body = registry.call("GET", "/schemas/ids/%d" % sid)
    assert status == 200, body
    # Confluent's API leaves schemaType out for Avro, its default.
    assert body.get("schemaType", "AVRO") == "AVRO", body
    assert json.loads(body["schema"]) == json.loads(ORDER_V1)

    status, subjects = registry.call("GET", "/subjects")
    assert status == 200 and s in subjects, subjects

    # Ids name contents: the same schema under another subject has the same id.
    assert registry.register_ok(subject("orders-copy"), ORDER_V1, "AVRO") == sid


def test_unknown_ids_and_subjects_are_404(registry):
    status, body = registry.call("GET", "/schemas/ids/999999")
    assert status == 404 and body["error_code"] == 40403, (status, body)
    status, body = registry.call("GET", "/subjects/%s/versions" % subject("nowhere"))
    assert status == 404 and body["error_code"] == 40401, (status, body)


def test_versions_are_listed_in_order(registry):
    s = subject("orders")
    id1 = registry.register_ok(s, ORDER_V1, "AVRO")
    id2 = registry.register_ok(s, ORDER_V2, "AVRO")
    assert id1 != id2
    assert registry.call("GET", "/subjects/%s/versions" % s) == (200, [1, 2])
    for version, sid, schema in ((1, id1, ORDER_V1), (2, id2, ORDER_V2)):
        status, body = registry.call("GET", "/subjects/%s/versions/%d" % (s, version))
        assert status == 200, body
        assert (body["version"], body["id"]) == (version, sid), body
        assert json.loads(body["schema"]) == json.loads(schema)
    status, body = registry.call("GET", "/subjects/%s/versions/latest" % s)
    assert (status, body["version"], body["id"]) == (200, 2, id2), body


def test_backward_compatibility_refuses_an_incompatible_avro_schema(registry):
    s = subject("payments")
    registry.register_ok(s, ORDER_V1, "AVRO")
    status, body = registry.call("PUT", "/config/%s" % s, {"compatibility": "BACKWARD"})
    assert (status, body) == (200, {"compatibility": "BACKWARD"})
    assert registry.call("GET", "/config/%s" % s) == (200, {"compatibilityLevel": "BACKWARD"})

    # The check alone, then the registration: both refuse, and no version
    # is added. The refusal is a 409 as with Confluent, whose error_code is
    # 409 too; Apicurio's is 0, so only the status is asserted.
    status, body = registry.call("POST", "/compatibility/subjects/%s/versions/latest" % s,
                                 {"schema": ORDER_NO_DEFAULT, "schemaType": "AVRO"})
    assert status == 200 and body["is_compatible"] is False, (status, body)
    status, body = registry.register(s, ORDER_NO_DEFAULT, "AVRO")
    assert status == 409, (status, body)
    assert "currency" in body["message"], body
    assert registry.call("GET", "/subjects/%s/versions" % s) == (200, [1])

    # A compatible evolution still goes in.
    registry.register_ok(s, ORDER_V2, "AVRO")
    assert registry.call("GET", "/subjects/%s/versions" % s) == (200, [1, 2])


def test_a_schema_must_say_what_it_is(registry):
    """Differences from Confluent's registry that a contract's schema must
    allow for: Apicurio takes JSON text as a JSON Schema only if it names a
    json-schema.org `$schema` or has `properties` (Confluent takes any JSON
    Schema), and refuses content that does not match schemaType; both 422."""
    status, body = registry.register(subject("bare"), json.dumps({"type": "string"}), "JSON")
    assert status == 422, (status, body)
    status, body = registry.register(subject("avro-as-json"), ORDER_V1, "JSON")
    assert status == 422, (status, body)
    status, body = registry.register(subject("broken"), '{"type": "record", "name": ', "AVRO")
    assert status == 422, (status, body)


def test_schemas_survive_a_restart(registry):
    s = subject("events-topic")
    sid = registry.register_ok(s, EVENT_JSON_SCHEMA, "JSON")
    assert registry.call("PUT", "/config/%s" % s, {"compatibility": "BACKWARD"})[0] == 200

    registry.stop()
    registry.start()

    status, body = registry.call("GET", "/schemas/ids/%d" % sid)
    assert status == 200, body
    assert json.loads(body["schema"]) == json.loads(EVENT_JSON_SCHEMA)
    assert registry.call("GET", "/subjects/%s/versions" % s) == (200, [1])
    assert registry.call("GET", "/config/%s" % s) == (200, {"compatibilityLevel": "BACKWARD"})
    # A new schema gets a new id after the old ones, none reused.
    fresh = avro_record("Fresh%s" % uuid.uuid4().hex, [{"name": "id", "type": "string"}])
    assert registry.register_ok(subject("orders"), fresh, "AVRO") > sid
