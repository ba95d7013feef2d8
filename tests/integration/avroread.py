"""avroread - Avro records decoded by confluent-kafka's own AvroDeserializer
(from PyPI, in the venv of scripts/test-venv.sh contracts; Debian's
python3-confluent-kafka has no fastavro), so that test_contracts.py reads
what hopper wrote the way a Kafka consumer in the field would.

Run by that venv's python: argv[1] is the registry URL; stdin has one JSON
object per line, {"topic": T, "value": HEX}; stdout gets one line per
record, the decoded value as JSON, or {"error": "..."}."""

import json
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main():
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": sys.argv[1]}))
    for line in sys.stdin:
        rec = json.loads(line)
        try:
            value = deserialize(bytes.fromhex(rec["value"]), SerializationContext(rec["topic"], MessageField.VALUE))
            print(json.dumps({"value": value}, default=str))
        except Exception as e:  # noqa: BLE001 - reported to the test
            print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
