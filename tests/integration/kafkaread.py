"""kafkaread - read back what hopper wrote to Kafka, always with a deadline.

Tests use unique topic names, so reading a topic from the beginning is the
normal case. For shared topics (events-topic) take `end_offsets()` before
publishing and pass it as `start` so only new records are read.
"""

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


class Record:
    """One Kafka record, decoded for assertions."""

    def __init__(self, msg):
        self.topic = msg.topic()
        self.partition = msg.partition()
        self.offset = msg.offset()
        self.key = msg.key()
        self.value = msg.value()
        self.timestamp = msg.timestamp()[1]  # ms; the producer's CreateTime
        self.header_list = msg.headers() or []
        self.headers = {}
        for name, value in self.header_list:
            self.headers.setdefault(name, value)

    def header(self, name):
        """Text of header `name` (UTF-8), or None."""
        v = self.headers.get(name)
        return None if v is None else v.decode()

    def __repr__(self):
        return "Record(%s[%d]@%d key=%r value=%r headers=%r)" % (
            self.topic,
            self.partition,
            self.offset,
            self.key,
            self.value[:80] if self.value else self.value,
            self.header_list,
        )


class KafkaReader:
    def __init__(self, bootstrap):
        self.bootstrap = bootstrap

    def _consumer(self):
        return Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": "hopper-it-" + uuid.uuid4().hex,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                "allow.auto.create.topics": False,
                "socket.timeout.ms": 10000,
            }
        )

    def create_topic(self, topic, partitions=3, replication_factor=3, min_insync_replicas=2, timeout=30.0,
                     exist_ok=False):
        """Create topic as hopper would (for tests that run hopper with
        auto_create_topics off); returns once Kafka has created it."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        new = NewTopic(topic, partitions, replication_factor, config={"min.insync.replicas": str(min_insync_replicas)})
        try:
            admin.create_topics([new], operation_timeout=timeout)[topic].result(timeout)
        except KafkaException as e:
            if not (exist_ok and e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise
        self.wait_known_everywhere(topic, timeout)

    def wait_known_everywhere(self, topic, timeout=30.0):
        """Wait until every broker's metadata shows topic. A KRaft broker
        applies the metadata log at its own pace: just after CreateTopics one
        may still answer that the topic does not exist, and a producer that
        asks it then waits for its next metadata refresh (seen in CI with
        Kafka 3.9: a record held 1.1 s behind one sent later to another
        topic). A fresh client asks its one bootstrap broker first, so each
        broker is asked in turn; a broker that knows the topic knows its
        partitions' leaders too (one metadata record carries both)."""
        deadline = time.monotonic() + timeout
        for broker in self.bootstrap.split(","):
            c = Consumer({"bootstrap.servers": broker, "group.id": "hopper-it-md", "socket.timeout.ms": 10000})
            try:
                self.partitions(topic, max(0.0, deadline - time.monotonic()), consumer=c)
            finally:
                c.close()

    def topic_exists(self, topic, timeout=10.0):
        c = self._consumer()
        try:
            md = c.list_topics(timeout=timeout)
            t = md.topics.get(topic)
            return t is not None and t.error is None and len(t.partitions) > 0
        finally:
            c.close()

    def partitions(self, topic, timeout=30.0, consumer=None):
        """Partition ids of topic; waits (with a deadline) until metadata shows them."""
        c = consumer or self._consumer()
        deadline = time.monotonic() + timeout
        last = None
        try:
            while True:
                try:
                    md = c.list_topics(topic, timeout=5)
                    t = md.topics.get(topic)
                    if t is not None and t.error is None and t.partitions:
                        return sorted(t.partitions)
                    last = t.error if t is not None else "missing"
                except KafkaException as e:
                    last = e
                if time.monotonic() >= deadline:
                    raise AssertionError("topic %s has no partitions in Kafka metadata: %s" % (topic, last))
                time.sleep(0.2)
        finally:
            if consumer is None:
                c.close()

    def end_offsets(self, topic, timeout=30.0):
        """{partition: high watermark}; {} if the topic does not exist yet."""
        if not self.topic_exists(topic):
            return {}
        c = self._consumer()
        try:
            out = {}
            for p in self.partitions(topic, timeout, consumer=c):
                _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
                out[p] = high
            return out
        finally:
            c.close()

    def count(self, topic, timeout=30.0):
        """Records currently in topic (high - low summed); 0 if it does not exist."""
        if not self.topic_exists(topic):
            return 0
        c = self._consumer()
        try:
            total = 0
            for p in self.partitions(topic, timeout, consumer=c):
                low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
                total += high - low
            return total
        finally:
            c.close()

    def read(self, topic, count, start=None, timeout=30.0, match=None):
        """Read until `count` records (that satisfy `match`) arrived or the
        deadline passed; returns what was read, in per-partition order.

        start: {partition: offset} to begin at; partitions not in it (or all,
        if None) are read from the beginning."""
        deadline = time.monotonic() + timeout
        c = self._consumer()
        out = []
        try:
            parts = self.partitions(topic, timeout, consumer=c)
            start = start or {}
            c.assign([TopicPartition(topic, p, start.get(p, OFFSET_BEGINNING)) for p in parts])
            while len(out) < count and time.monotonic() < deadline:
                msg = c.poll(min(0.5, max(0.01, deadline - time.monotonic())))
                if msg is None:
                    continue
                if msg.error():
                    # Transient errors (leader moves) are retried by librdkafka.
                    continue
                rec = Record(msg)
                if match is None or match(rec):
                    out.append(rec)
            return out
        finally:
            c.close()

    def read_exactly(self, topic, count, start=None, timeout=30.0, match=None):
        """Like read(), but asserts exactly `count` records arrived."""
        recs = self.read(topic, count, start=start, timeout=timeout, match=match)
        assert len(recs) == count, "expected %d records in %s within %.0fs, got %d: %r" % (
            count,
            topic,
            timeout,
            len(recs),
            recs[:5],
        )
        return recs
