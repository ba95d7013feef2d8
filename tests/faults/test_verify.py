"""The verifier must catch what it claims to catch: a history that Kafka
holds correctly passes, and one missing, misplaced or reordered record (or
a duplicate, or a foreign record) is reported. No Kafka needed."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from verify import Message, Record, drain_prefix_check, murmur2, partition_for, partition_gaps, timing, verify  # noqa: E402

PARTITIONS = 6


def test_murmur2_matches_kafka():
    # Vectors from Kafka's UtilsTest.testMurmur2.
    cases = {
        "21": -973932308,
        "foobar": -790332482,
        "a-little-bit-long-string": -985981536,
        "a-little-bit-longer-string": -1486304829,
        "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        "abc": 479470107,
    }
    for s, want in cases.items():
        assert murmur2(s.encode()) == want, s


def history(n_keys=4, per_key=5):
    """Messages over a few keys, all acked, and the records Kafka would hold
    for them: each key in its murmur2 partition, in sequence order."""
    msgs, recs = [], []
    next_off = {p: 0 for p in range(PARTITIONS)}
    t = 1000.0
    for s in range(per_key):
        for k in range(n_keys):
            key = "k1-1-%d" % k
            mid = "1-1-%d" % len(msgs)
            msgs.append(Message(mid, key, s, "A", t_send=t, t_outcome=t + 0.005, tag=len(msgs) + 1, conn=1, chan=1))
            p = partition_for(key, PARTITIONS)
            recs.append(Record(p, next_off[p], key.encode(), ("%s %s %d ....." % (mid, key, s)).encode()))
            next_off[p] += 1
            t += 0.01
    return msgs, recs


def test_correct_history_passes():
    msgs, recs = history()
    rep = verify(msgs, recs, PARTITIONS)
    assert (rep["lost"], rep["misplaced"], rep["reordered"], rep["phantom"], rep["duplicates"]) == (0, 0, 0, 0, 0)
    assert rep["confirmed"] == len(msgs) == len(rep["offsets"])
    # every confirmed id is mapped to where it is
    r = recs[7]
    assert rep["offsets"][r.parsed()[0]] == (r.partition, r.offset)


def test_missing_record_is_lost():
    msgs, recs = history()
    gone = recs.pop(6)
    rep = verify(msgs, recs, PARTITIONS)
    assert rep["lost"] == 1
    assert rep["examples"]["lost"] == [gone.parsed()[0]]


def test_missing_unconfirmed_record_is_not_lost():
    msgs, recs = history()
    msgs[6].outcome = "N"
    recs.pop(6)
    rep = verify(msgs, recs, PARTITIONS)
    assert rep["lost"] == 0 and rep["nacked"] == 1 and rep["nacked_in_kafka"] == 0


def test_record_in_wrong_partition_is_misplaced():
    msgs, recs = history()
    r = recs[5]
    wrong = (r.partition + 1) % PARTITIONS
    recs[5] = Record(wrong, 999, r.key, r.value)
    rep = verify(msgs, recs, PARTITIONS)
    assert rep["misplaced"] == 1
    assert rep["examples"]["misplaced"][0][:2] == (r.parsed()[0], wrong)
    assert rep["lost"] == 0


def test_record_with_wrong_key_is_misplaced():
    msgs, recs = history()
    r = recs[5]
    recs[5] = Record(r.partition, r.offset, b"another-key", r.value)
    assert verify(msgs, recs, PARTITIONS)["misplaced"] == 1


def test_swapped_records_of_one_key_are_reordered():
    msgs, recs = history()
    # Records 0 and 4 are key k1-1-0, seq 0 and 1: swap their offsets.
    a, b = recs[0], recs[4]
    assert a.key == b.key and a.partition == b.partition
    recs[0] = Record(a.partition, b.offset, a.key, a.value)
    recs[4] = Record(b.partition, a.offset, b.key, b.value)
    rep = verify(msgs, recs, PARTITIONS)
    assert rep["reordered"] == 1
    assert rep["lost"] == 0 and rep["misplaced"] == 0


def test_duplicate_and_phantom_are_counted():
    msgs, recs = history()
    r = recs[3]
    recs.append(Record(r.partition, 500, r.key, r.value))
    recs.append(Record(0, 501, b"x", b"not-from-this-load 1 2"))
    rep = verify(msgs, recs, PARTITIONS)
    assert rep["duplicates"] == 1 and rep["phantom"] == 1 and rep["lost"] == 0 and rep["reordered"] == 0


def test_drain_prefix_check():
    msgs = [Message("1-1-%d" % i, "k", i, "A" if i < 3 else "U", tag=i + 1, conn=1, chan=1) for i in range(5)]
    assert drain_prefix_check(msgs, set()) == []
    # an unsettled message hopper must not have read is in Kafka
    assert drain_prefix_check(msgs, {"1-1-4"})
    # a hole in the settled prefix
    msgs[1].outcome = "U"
    assert drain_prefix_check(msgs, set())


def test_timing_gap_and_percentiles():
    msgs = [Message("m%d" % i, "k", i, "A", t_send=i * 0.1, t_outcome=i * 0.1 + 0.01) for i in range(100)]
    msgs[50].t_outcome = 5.0 + 3.0  # a 3 s stall
    for m in msgs[51:]:
        m.t_outcome += 3.0
    t = timing(msgs)
    assert t["unavailable_s"] == pytest.approx(3.0, abs=0.11)
    assert t["latency_p50_ms"] == pytest.approx(10, abs=1)
    assert t["latency_p99_ms"] > 2000


def test_partition_gap_sees_a_stall_the_global_gap_hides():
    # Two partitions: p0 confirms every 0.1 s throughout, p1 stalls 5 s.
    msgs, offsets = [], {}
    for i in range(100):
        t = i * 0.1
        for p in (0, 1):
            mid = "m%d-%d" % (p, i)
            done = t + 0.01 if not (p == 1 and 30 <= i < 80) else 8.0
            msgs.append(Message(mid, "k", i, "A", t_send=t, t_outcome=done))
            offsets[mid] = (p, i)
    assert timing(msgs)["unavailable_s"] < 0.2
    gaps = partition_gaps(msgs, offsets, 0.0, 10.0)
    assert gaps[0][0] < 0.2
    assert gaps[1][0] == pytest.approx(5.1, abs=0.11)


def test_gap_from_window_start_counts():
    # Acks stop just before the window opens and resume 4 s into it.
    msgs = [Message("a%d" % i, "k", i, "A", t_send=i * 0.1, t_outcome=i * 0.1 + 0.01) for i in range(50)]
    msgs += [Message("b%d" % i, "k", 50 + i, "A", t_send=5.0 + i * 0.1, t_outcome=9.0 + i * 0.01) for i in range(10)]
    t = timing(msgs, t_start=5.0, t_end=10.0)
    assert t["unavailable_s"] == pytest.approx(4.0, abs=0.01)
    # nacks are not availability
    msgs.append(Message("n", "k", 99, "N", t_send=6.0, t_outcome=7.0))
    assert timing(msgs, t_start=5.0, t_end=10.0)["unavailable_s"] == pytest.approx(4.0, abs=0.01)
