/* fuzz_offsets.c - libFuzzer harness for commit metadata (offsets_restore
 * and offsets_metadata, src/offsets.c). The metadata comes back from
 * Kafka as any client of the consumer group wrote it.
 *
 * The input is the metadata that went with committed offset 1200 (the
 * corpus and dictionary carry "h1:1200:"). For every input:
 *  1. restore it, write its metadata and restore that: the second tracker
 *     must write the same string, less a ":t" mark (what one owner of a
 *     partition writes, the next reads back unchanged);
 *  2. both fetch the same offsets from 1200 on (steps and which records
 *     are done taken from the input's bytes), marking done those
 *     offsets_skip() names. Unless the first metadata was truncated they
 *     must agree on every skip, commit point and (every 32 steps)
 *     metadata string; when it was, the second skips only what the first
 *     does;
 *  3. the commit point never decreases, never passes an outstanding
 *     record, and is the next offset once all are done.
 * A broken invariant aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "offsets.h"

#define COMMITTED 1200
#define STEPS 300

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_offsets: %s:%d: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static size_t metadata(const struct offsets *o, char *md)
{
    size_t n = offsets_metadata(o, md, OFFSETS_METADATA_CAP);
    CHECK(n < OFFSETS_METADATA_CAP && strlen(md) == n);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct offsets *a = offsets_restore(COMMITTED, (const char *)data, size);
    CHECK(a && offsets_commit_point(a) == COMMITTED && !offsets_dirty(a));
    char md_a[OFFSETS_METADATA_CAP], md_b[OFFSETS_METADATA_CAP];
    size_t len_a = metadata(a, md_a);
    bool trunc = len_a >= 2 && strcmp(md_a + len_a - 2, ":t") == 0;
    struct offsets *b = offsets_restore(COMMITTED, md_a, len_a);
    CHECK(b);
    size_t len_b = metadata(b, md_b);
    CHECK(len_b == (trunc ? len_a - 2 : len_a) && memcmp(md_a, md_b, len_b) == 0);

    int64_t outs[STEPS];
    size_t nout = 0;
    int64_t off = COMMITTED, cp = COMMITTED;
    for (size_t i = 0; i < STEPS; i++) {
        uint8_t c = size ? data[i % size] : 0;
        CHECK(offsets_fetched(a, off) && offsets_fetched(b, off));
        bool skip_a = offsets_skip(a, off), skip_b = offsets_skip(b, off);
        CHECK(trunc ? !skip_b || skip_a : skip_a == skip_b);
        if (skip_a)
            CHECK(offsets_done(a, off));
        if (skip_b)
            CHECK(offsets_done(b, off));
        if (!skip_a && !skip_b) {
            if (c & 1) {
                CHECK(offsets_done(a, off) && offsets_done(b, off));
            } else {
                outs[nout++] = off;
                CHECK(offsets_commit_point(a) <= outs[0]);
            }
        }
        int64_t cp_a = offsets_commit_point(a);
        CHECK(cp_a >= cp && cp_a <= off + 1);
        cp = cp_a;
        if (!trunc) {
            CHECK(offsets_commit_point(b) == cp_a);
            /* Each costs up to 2000 ranges: not every step. */
            if (i % 32 == 0 || i == STEPS - 1) {
                metadata(a, md_a);
                metadata(b, md_b);
                CHECK(strcmp(md_a, md_b) == 0);
            }
        }
        /* Mostly the next offset, sometimes past a gap. */
        int64_t step = (c & 0x80) ? 1 + ((c >> 1) & 0x3f) : 1;
        if (off > INT64_MAX - 2 - step)
            break;
        off += step;
    }
    for (size_t i = 0; i < nout; i++)
        CHECK(offsets_done(a, outs[i]) && offsets_done(b, outs[i]));
    CHECK(offsets_outstanding(a) == 0 && offsets_outstanding(b) == 0);
    CHECK(offsets_commit_point(a) == offsets_commit_point(b));
    offsets_free(a);
    offsets_free(b);
    return 0;
}
