#!/usr/bin/python3
"""verify.py - check a load run against what Kafka holds.

Input: the publisher's messages.tsv (see load.py) and the topic, read back
from its first offset to its end in every partition. What is checked, as
Kafka's verifiable producer and Jepsen do:

  lost        a confirmed (acked) id that is in no partition: must be 0
  misplaced   a record in a partition other than the one its key hashes to
              (murmur2, as hopper's librdkafka and the Java client), or
              whose key differs from the key the message was sent with
  reordered   two confirmed records of one key whose offsets and per-key
              sequence numbers disagree (publish order on one channel must
              be log order): must be 0
  phantom     a record whose id the publisher never sent, or whose body
              does not parse: must be 0
  duplicates  extra copies of an id (at least once allows them; reported)

plus counts: sent, confirmed, nacked, unconfirmed, and how many nacked or
unconfirmed messages are in Kafka anyway (allowed: a nack or a lost
connection promises nothing). Every confirmed id is mapped to its
(partition, offset), written as confirmed_offsets.tsv.

Also derived from the publisher's log: confirm latency percentiles and the
unavailability window (longest gap between consecutive confirms).

The checking functions take plain lists so that test_verify.py can feed
them hand-made histories; only read_topic() talks to Kafka.
"""

import argparse
import bisect
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from partitioner import murmur2, partition_for  # noqa: E402,F401 - test_verify uses murmur2 too


# ---- inputs --------------------------------------------------------------------------


class Message:
    """One publish as the publisher logged it."""

    __slots__ = ("id", "key", "seq", "conn", "chan", "gen", "tag", "t_send", "outcome", "t_outcome")

    def __init__(self, id, key, seq, outcome, t_send=0.0, t_outcome=0.0, conn=0, chan=0, gen=0, tag=0):
        self.id = id
        self.key = key
        self.seq = int(seq)
        self.outcome = outcome
        self.t_send = float(t_send)
        self.t_outcome = float(t_outcome)
        self.conn = int(conn)
        self.chan = int(chan)
        self.gen = int(gen)
        self.tag = int(tag)


class Record:
    """One Kafka record: where it is and what it says."""

    __slots__ = ("partition", "offset", "key", "value")

    def __init__(self, partition, offset, key, value):
        self.partition = partition
        self.offset = offset
        self.key = key.decode(errors="replace") if isinstance(key, bytes) else key
        self.value = value.decode(errors="replace") if isinstance(value, bytes) else value

    def parsed(self):
        """(id, key, seq) from the body, or None."""
        parts = (self.value or "").split(" ", 3)
        if len(parts) < 3:
            return None
        try:
            return parts[0], parts[1], int(parts[2])
        except ValueError:
            return None


def load_messages(path):
    out = []
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        assert header[0] == "id", "not a messages.tsv: %s" % path
        for line in f:
            v = line.rstrip("\n").split("\t")
            out.append(
                Message(v[0], v[1], v[2], v[8], t_send=v[7], t_outcome=v[9], conn=v[3], chan=v[4], gen=v[5], tag=v[6])
            )
    return out


def read_topic(bootstrap, topic, timeout=120.0):
    """Every record of topic, each partition from its start to the end
    offset it had when reading began. Returns (records, partition count)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "hopper-faults-verify-%d" % time.time_ns(),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "allow.auto.create.topics": False,
            "isolation.level": "read_uncommitted",
        }
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            md = c.list_topics(topic, timeout=10)
            t = md.topics.get(topic)
            if t is not None and t.error is None and t.partitions:
                parts = sorted(t.partitions)
                break
            if time.monotonic() > deadline:
                raise RuntimeError("topic %s not in metadata: %s" % (topic, t and t.error))
            time.sleep(0.5)
        ends = {}
        for p in parts:
            while True:
                try:
                    low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                    ends[p] = high
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        pos = {p: -1 for p in parts}
        records = []
        todo = {p for p in parts if ends[p] > 0}
        while todo:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "reading %s: partitions %s not read to their end %s within %.0fs (at %s)"
                    % (topic, sorted(todo), ends, timeout, pos)
                )
            batch = c.consume(10000, timeout=1.0)
            for m in batch:
                if m.error():
                    continue
                p = m.partition()
                records.append(Record(p, m.offset(), m.key(), m.value()))
                pos[p] = m.offset()
                if m.offset() + 1 >= ends[p]:
                    todo.discard(p)
        return records, len(parts)
    finally:
        c.close()


# ---- checks --------------------------------------------------------------------------


def verify(messages, records, partitions, examples=10):
    """Compare the publisher's history with the records. Returns a dict."""
    by_id = {}
    for m in messages:
        by_id[m.id] = m
    copies = defaultdict(list)  # id -> [record], in (partition, offset) order
    phantom = []
    misplaced = []
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        p = r.parsed()
        m = by_id.get(p[0]) if p else None
        if m is None or p[1] != m.key or p[2] != m.seq:
            phantom.append(r)
            continue
        copies[m.id].append(r)
        if r.key != m.key or r.partition != partition_for(m.key, partitions):
            misplaced.append((m.id, r.partition, r.offset, partition_for(m.key, partitions)))

    confirmed = [m for m in messages if m.outcome == "A"]
    lost = [m.id for m in confirmed if m.id not in copies]
    duplicates = sum(len(v) - 1 for v in copies.values())
    duplicate_ids = [i for i, v in copies.items() if len(v) > 1]

    # Per-key order among confirmed records (first copy of each id): in each
    # partition, offsets must grow with the per-key sequence number.
    per_key = defaultdict(list)
    for m in confirmed:
        if m.id in copies:
            r = copies[m.id][0]
            per_key[m.key].append((r.partition, r.offset, m.seq, m.id))
    reordered = []
    for key, lst in per_key.items():
        lst.sort()
        for a, b in zip(lst, lst[1:]):
            if a[0] == b[0] and a[2] > b[2]:
                reordered.append((key, a[3], a[1], a[2], b[3], b[1], b[2]))

    nacked = [m for m in messages if m.outcome == "N"]
    unconfirmed = [m for m in messages if m.outcome == "U"]
    return {
        "sent": len(messages),
        "confirmed": len(confirmed),
        "nacked": len(nacked),
        "unconfirmed": len(unconfirmed),
        "records": len(records),
        "lost": len(lost),
        "misplaced": len(misplaced),
        "reordered": len(reordered),
        "phantom": len(phantom),
        "duplicates": duplicates,
        "nacked_in_kafka": sum(1 for m in nacked if m.id in copies),
        "unconfirmed_in_kafka": sum(1 for m in unconfirmed if m.id in copies),
        "examples": {
            "lost": lost[:examples],
            "misplaced": misplaced[:examples],
            "reordered": reordered[:examples],
            "phantom": [(r.partition, r.offset, (r.value or "")[:60]) for r in phantom[:examples]],
            "duplicates": duplicate_ids[:examples],
        },
        "offsets": {m.id: (copies[m.id][0].partition, copies[m.id][0].offset) for m in confirmed if m.id in copies},
    }


def drain_prefix_check(messages, in_kafka):
    """For a SIGTERM drain: on each channel connection (conn, chan, gen) the
    settled tags must be a prefix 1..k (hopper settles everything it read),
    and no message after that prefix may be in Kafka (hopper did not read
    it, so it cannot have forwarded it). Returns a list of problems."""
    groups = defaultdict(list)
    for m in messages:
        groups[(m.conn, m.chan, m.gen)].append(m)
    problems = []
    for g, lst in sorted(groups.items()):
        lst.sort(key=lambda m: m.tag)
        settled = [m.outcome != "U" for m in lst]
        k = settled.index(False) if False in settled else len(lst)
        if any(settled[k:]):
            problems.append("channel %s: settled tags are not a prefix (first unsettled tag %d)" % (g, lst[k].tag))
        leaked = [m.id for m in lst[k:] if m.id in in_kafka]
        if leaked:
            problems.append("channel %s: %d unsettled messages after the settled prefix are in Kafka, e.g. %s" % (g, len(leaked), leaked[:3]))
    return problems


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(q / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[i]


def longest_gap(times, t_start, t_end):
    """Longest interval without an event in [t_start, t_end], the window's
    ends included (a stall from t_start to the first event counts).
    Returns (seconds, start of the gap)."""
    w = [t_start] + [t for t in times if t_start <= t <= t_end] + [t_end]
    gap, at = 0.0, t_start
    for a, b in zip(w, w[1:]):
        if b - a > gap:
            gap, at = b - a, a
    return gap, at


def timing(messages, t_start=None, t_end=None):
    """Confirm latency of the acked messages sent in [t_start, t_end], and
    the unavailability window: the longest gap between consecutive acks
    (of any message) in [t_start, t_end]. Nacks do not count as available."""
    acks = sorted(m.t_outcome for m in messages if m.outcome == "A")
    if t_start is None:
        t_start = min((m.t_send for m in messages), default=0.0)
    if t_end is None:
        t_end = acks[-1] if acks else t_start
    lat = sorted(m.t_outcome - m.t_send for m in messages if m.outcome == "A" and t_start <= m.t_send <= t_end)
    gap, gap_at = longest_gap(acks, t_start, t_end)
    return {
        "latency_p50_ms": None if not lat else round(percentile(lat, 50) * 1000, 1),
        "latency_p95_ms": None if not lat else round(percentile(lat, 95) * 1000, 1),
        "latency_p99_ms": None if not lat else round(percentile(lat, 99) * 1000, 1),
        "latency_max_ms": None if not lat else round(lat[-1] * 1000, 1),
        "unavailable_s": round(gap, 2),
        "unavailable_from": gap_at,
    }


def partition_gaps(messages, offsets, t_start, t_end):
    """Longest gap between acks per partition (placed by the offsets map
    id -> (partition, offset)) in [t_start, t_end]: a partition that stalls
    while others flow shows here and not in timing()'s gap.
    Returns {partition: (gap seconds, gap start)}."""
    times = defaultdict(list)
    for m in messages:
        if m.outcome == "A" and m.id in offsets:
            times[offsets[m.id][0]].append(m.t_outcome)
    out = {}
    for p, ts in times.items():
        ts.sort()
        g, at = longest_gap(ts, t_start, t_end)
        out[p] = (round(g, 2), at)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description="check a load run (messages.tsv) against a Kafka topic")
    p.add_argument("--messages", required=True)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--out", help="directory for verify.json and confirmed_offsets.tsv")
    a = p.parse_args(argv)
    msgs = load_messages(a.messages)
    records, parts = read_topic(a.bootstrap, a.topic)
    rep = verify(msgs, records, parts)
    rep.update(timing(msgs))
    offsets = rep.pop("offsets")
    if a.out:
        with open(a.out + "/confirmed_offsets.tsv", "w") as f:
            for i, (part, off) in offsets.items():
                f.write("%s\t%d\t%d\n" % (i, part, off))
        with open(a.out + "/verify.json", "w") as f:
            json.dump(rep, f, indent=1)
    print(json.dumps(rep, indent=1))
    bad = rep["lost"] or rep["misplaced"] or rep["reordered"] or rep["phantom"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
