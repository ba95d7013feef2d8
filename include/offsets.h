/* offsets.h - which offsets of one Kafka partition a task queue may commit.
 *
 * One tracker serves one partition of one queue (consumer group). Records
 * are fetched in increasing offset order, with gaps (compaction,
 * transaction markers): an offset never fetched between two fetched ones
 * does not exist and counts as done. Each fetched record is later done, in
 * any order: acked, skipped because no binding matched, or rejected
 * without requeue. A requeued record is not done; the caller redelivers it
 * and tells the tracker nothing.
 *
 * The commit point is the lowest offset not done: committing it tells
 * Kafka that everything below is finished. Offsets done above it would
 * come back after a restart, so the commit also carries metadata naming
 * them (offsets_metadata), and the next owner of the partition restores
 * the tracker from both (offsets_restore) and skips those records when
 * they are fetched again (offsets_skip).
 *
 * The caller owns each tracker (offsets_new/offsets_restore to
 * offsets_free) and bounds how many records are outstanding; the tracker
 * itself takes whatever it is given, growing geometrically. Offsets are
 * real ones (0 to INT64_MAX - 1), never librdkafka's logical
 * RD_KAFKA_OFFSET_* values: a partition with no committed offset gets its
 * tracker at the offset of its first fetched record.
 *
 * Invariants, after every call:
 *  - commit point <= next offset to fetch, and it never decreases;
 *  - every offset below the commit point is done or does not exist;
 *  - offsets_outstanding() = records fetched and not done;
 *  - the commit point never passes an offset not yet fetched, even one
 *    that offsets_skip() will call done: such offsets stay in the
 *    metadata until fetched.
 *
 * Metadata format (a contract: other hopper instances read it).
 *
 *     metadata = "h1:" base ":" [ range *( "," range ) ] [ ":t" ]
 *     range    = gap [ "+" extra ]
 *     base, gap, extra = 1*DIGIT  (decimal, each at most INT64_MAX)
 *
 * base is the committed offset the metadata goes with. The ranges name
 * offsets known done at or above base, in increasing order, each as
 * [start, start + extra]. A cursor starts at base; a range starts at
 * cursor + gap, and the cursor then moves to two past the range's end
 * (two ranges that touched would be one). Ranges thus never touch,
 * overlap or go backwards, and every well-formed string names a valid
 * set. A range may cover offsets that do
 * not exist (gaps between fetched records). ":t" says the set was
 * truncated to fit: done offsets above the last range were left out and
 * will be redelivered. Example: base 1200 with 1203-1205, 1209 and
 * 1212-1220 done is "h1:1200:3+2,2,1+8".
 *
 * Restoring is strict: anything but a well-formed string whose base is the
 * committed offset (empty metadata, another tool's, a commit that moved
 * the offset since) restores no skips. Skipping a record that was not done
 * would lose it; redelivering one that was is what at-least-once allows. */
#ifndef HOPPER_OFFSETS_H
#define HOPPER_OFFSETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* The cap callers pass: Kafka refuses a commit whose metadata is longer
 * than offset.metadata.max.bytes, 4096 by default. */
#define OFFSETS_METADATA_CAP 4000

/* The smallest cap for which offsets_metadata() writes anything: "h1:",
 * the longest base, ":", ":t" and the NUL. */
#define OFFSETS_METADATA_MIN_CAP 26

struct offsets;

/* A tracker whose next offset to fetch is `position`: the committed offset
 * it starts from, which is also its commit point. Returns NULL if position
 * is not a real offset (negative). Free with offsets_free(). */
struct offsets *offsets_new(int64_t position) MUST_CHECK;

/* Accepts NULL. */
void offsets_free(struct offsets *o);

/* The record at `off` was fetched; it is outstanding. Returns false, and
 * changes nothing, unless off is above every offset fetched before and
 * not below the starting position (a re-fetch after a seek, or a caller
 * bug: do not deliver it twice). O(1) amortized. */
bool offsets_fetched(struct offsets *o, int64_t off) MUST_CHECK;

/* The outstanding record at `off` is done. Returns false, and changes
 * nothing, if off is not outstanding: never fetched, below the commit
 * point, or already done. O(1) amortized for the oldest outstanding
 * record, O(log outstanding) for any other. */
bool offsets_done(struct offsets *o, int64_t off) MUST_CHECK;

/* The lowest offset not done: the first outstanding record, or the next
 * offset to fetch when none is. The offset to commit. */
int64_t offsets_commit_point(const struct offsets *o);

/* Whether a commit is due: the commit point moved or a record was done
 * since the last offsets_committed() (or since the tracker was made). */
bool offsets_dirty(const struct offsets *o);

/* The caller committed offsets_commit_point() with offsets_metadata() as
 * they are now. */
void offsets_committed(struct offsets *o);

/* Fetched records not yet done. */
size_t offsets_outstanding(const struct offsets *o);

/* Writes the metadata for offsets_commit_point() into out: at most cap - 1
 * bytes and a NUL. When the ranges do not fit, it keeps the lowest ones
 * that do and ends with ":t". With cap below OFFSETS_METADATA_MIN_CAP it
 * writes "" (no skips after a restore); with cap 0, nothing. Returns the
 * length written. O(records fetched above the commit point + restored
 * ranges). */
size_t offsets_metadata(const struct offsets *o, char *out, size_t cap);

/* A tracker starting at `committed` (as offsets_new()) that remembers the
 * done offsets `md` names: md_len bytes, no NUL needed (md may be NULL if
 * md_len is 0). md is not kept. Memory for the remembered ranges is
 * linear in md_len (the broker bounds it) and freed once fetching has
 * passed them all. Returns NULL only if committed is negative. */
struct offsets *offsets_restore(int64_t committed, const char *md, size_t md_len) MUST_CHECK;

/* Whether the record at `off`, just fetched, was done before the restore:
 * then the caller marks it done (offsets_done) instead of delivering it.
 * Ask before the next offsets_fetched(): ranges below the last fetched
 * offset are forgotten, and for those this says false. */
bool offsets_skip(const struct offsets *o, int64_t off);

#endif
