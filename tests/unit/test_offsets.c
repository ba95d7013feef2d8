/* test_offsets.c - unit tests for the per-partition offset tracker.
 *
 * Besides fixed scenarios, a randomized test runs a consumer over a log
 * with gaps: it fetches, acks in some order, commits and restarts from its
 * last commit, and checks the tracker against a naive model (a state per
 * log record) after every step. At every commit, and again after every
 * restart, the metadata must make the next owner skip exactly the records
 * known done above the commit point (a prefix of them when truncated),
 * and never one that was not done. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "offsets.h"
#include "rng.h"

static void fetch(struct offsets *o, int64_t off)
{
    assert_true(offsets_fetched(o, off));
}

static void done(struct offsets *o, int64_t off)
{
    assert_true(offsets_done(o, off));
}

static void fetch_range(struct offsets *o, int64_t lo, int64_t hi)
{
    for (int64_t off = lo; off <= hi; off++)
        fetch(o, off);
}

static void done_range(struct offsets *o, int64_t lo, int64_t hi)
{
    for (int64_t off = lo; off <= hi; off++)
        done(o, off);
}

static void expect_metadata(const struct offsets *o, const char *want)
{
    char md[OFFSETS_METADATA_CAP];
    size_t n = offsets_metadata(o, md, sizeof md);
    assert_string_equal(md, want);
    assert_int_equal(n, strlen(want));
}

static struct offsets *restore(int64_t committed, const char *md)
{
    struct offsets *o = offsets_restore(committed, md, strlen(md));
    assert_non_null(o);
    return o;
}

/* Offsets in [lo, hi] that o says to skip must be exactly those in want
 * (sorted, terminated by -1). */
static void expect_skips(const struct offsets *o, int64_t lo, int64_t hi, const int64_t *want)
{
    for (int64_t off = lo; off <= hi; off++) {
        bool expected = *want == off;
        if (expected)
            want++;
        assert_int_equal(offsets_skip(o, off), expected);
    }
    assert_int_equal(*want, -1);
}

static const int64_t no_skips[] = {-1};

static void test_in_order(void **state)
{
    struct offsets *o = offsets_new(100);
    assert_int_equal(offsets_commit_point(o), 100);
    assert_int_equal(offsets_outstanding(o), 0);
    assert_false(offsets_dirty(o));

    fetch_range(o, 100, 102);
    assert_int_equal(offsets_outstanding(o), 3);
    assert_int_equal(offsets_commit_point(o), 100);
    assert_false(offsets_dirty(o)); /* fetching alone changes nothing to commit */

    done(o, 100);
    assert_int_equal(offsets_commit_point(o), 101);
    assert_int_equal(offsets_outstanding(o), 2);
    assert_true(offsets_dirty(o));
    offsets_committed(o);
    assert_false(offsets_dirty(o));

    done(o, 101);
    done(o, 102);
    assert_int_equal(offsets_commit_point(o), 103);
    assert_int_equal(offsets_outstanding(o), 0);
    assert_true(offsets_dirty(o));
    expect_metadata(o, "h1:103:");
    offsets_free(o);
}

static void test_out_of_order_holes(void **state)
{
    struct offsets *o = offsets_new(10);
    fetch_range(o, 10, 14);
    done(o, 12);
    done(o, 14);
    assert_int_equal(offsets_commit_point(o), 10);
    assert_int_equal(offsets_outstanding(o), 3);
    assert_true(offsets_dirty(o)); /* the commit point did not move, the metadata did */
    expect_metadata(o, "h1:10:2,0");

    done(o, 10);
    assert_int_equal(offsets_commit_point(o), 11);
    expect_metadata(o, "h1:11:1,0");
    done(o, 11); /* passes over 12, done before */
    assert_int_equal(offsets_commit_point(o), 13);
    assert_int_equal(offsets_outstanding(o), 1);
    expect_metadata(o, "h1:13:1");
    done(o, 13);
    assert_int_equal(offsets_commit_point(o), 15);
    assert_int_equal(offsets_outstanding(o), 0);
    expect_metadata(o, "h1:15:");
    offsets_free(o);
}

/* Offsets never fetched between fetched ones do not exist: they are done. */
static void test_gaps_in_fetched_offsets(void **state)
{
    struct offsets *o = offsets_new(5);
    fetch(o, 8);
    assert_int_equal(offsets_commit_point(o), 8);
    assert_true(offsets_dirty(o)); /* 5 to 7 are gone: a commit moves on */
    offsets_committed(o);

    fetch(o, 10);
    fetch(o, 15);
    done(o, 15);
    expect_metadata(o, "h1:8:7");
    done(o, 10); /* one run of done records, over the gaps between them */
    expect_metadata(o, "h1:8:2+5");
    assert_int_equal(offsets_outstanding(o), 1);
    done(o, 8);
    assert_int_equal(offsets_commit_point(o), 16);
    assert_int_equal(offsets_outstanding(o), 0);

    /* Empty window, then a fetch past a gap. */
    fetch(o, 30);
    assert_int_equal(offsets_commit_point(o), 30);
    done(o, 30);
    assert_int_equal(offsets_commit_point(o), 31);
    offsets_free(o);
}

static void test_done_not_outstanding(void **state)
{
    struct offsets *o = offsets_new(100);
    assert_false(offsets_done(o, 100)); /* nothing fetched */
    fetch(o, 100);
    fetch(o, 102);
    offsets_committed(o);

    assert_false(offsets_done(o, 99));  /* below the start */
    assert_false(offsets_done(o, 101)); /* a gap */
    assert_false(offsets_done(o, 103)); /* not fetched yet */
    assert_false(offsets_done(o, -1));
    assert_false(offsets_done(o, INT64_MIN));
    assert_false(offsets_done(o, INT64_MAX));
    assert_false(offsets_dirty(o));
    assert_int_equal(offsets_outstanding(o), 2);

    done(o, 102);
    assert_false(offsets_done(o, 102)); /* twice */
    assert_int_equal(offsets_outstanding(o), 1);
    done(o, 100);
    assert_false(offsets_done(o, 100)); /* twice, now below the commit point */
    assert_false(offsets_done(o, 102));
    assert_int_equal(offsets_commit_point(o), 103);
    assert_int_equal(offsets_outstanding(o), 0);
    offsets_committed(o);
    assert_false(offsets_done(o, 103));
    assert_false(offsets_dirty(o));
    offsets_free(o);
}

static void test_fetched_not_increasing(void **state)
{
    assert_null(offsets_new(-1));
    assert_null(offsets_new(-1001)); /* RD_KAFKA_OFFSET_INVALID */
    assert_null(offsets_restore(-2, "h1:-2:", 6));
    offsets_free(NULL);

    struct offsets *o = offsets_new(100);
    assert_false(offsets_fetched(o, 99)); /* below the start */
    assert_false(offsets_fetched(o, -1));
    fetch(o, 100);
    assert_false(offsets_fetched(o, 100)); /* a re-fetch */
    assert_false(offsets_fetched(o, 50));
    assert_false(offsets_fetched(o, INT64_MAX)); /* next would overflow */
    assert_int_equal(offsets_outstanding(o), 1);

    fetch(o, INT64_MAX - 1);
    assert_false(offsets_fetched(o, INT64_MAX - 1));
    done(o, 100);
    assert_int_equal(offsets_commit_point(o), INT64_MAX - 1);
    done(o, INT64_MAX - 1);
    assert_int_equal(offsets_commit_point(o), INT64_MAX);
    assert_int_equal(offsets_outstanding(o), 0);
    expect_metadata(o, "h1:9223372036854775807:");
    assert_false(offsets_fetched(o, INT64_MAX));
    offsets_free(o);
}

static void test_nothing_outstanding(void **state)
{
    struct offsets *o = offsets_new(0);
    assert_int_equal(offsets_commit_point(o), 0);
    assert_int_equal(offsets_outstanding(o), 0);
    assert_false(offsets_dirty(o));
    expect_metadata(o, "h1:0:");
    offsets_committed(o);
    assert_int_equal(offsets_commit_point(o), 0);
    assert_false(offsets_dirty(o));
    offsets_free(o);

    o = offsets_new(42);
    fetch(o, 42);
    fetch(o, 44);
    done(o, 44);
    done(o, 42);
    assert_int_equal(offsets_commit_point(o), 45); /* next to fetch */
    offsets_free(o);
}

/* The example of the header. */
static void test_metadata_example(void **state)
{
    struct offsets *o = offsets_new(1200);
    fetch_range(o, 1200, 1220);
    done_range(o, 1203, 1205);
    done(o, 1209);
    done_range(o, 1212, 1220);
    expect_metadata(o, "h1:1200:3+2,2,1+8");
    assert_int_equal(offsets_outstanding(o), 8);
    offsets_free(o);
}

static void test_metadata_round_trip(void **state)
{
    const char *md = "h1:1200:3+2,2,1+8";
    static const int64_t was_done[] = {1203, 1204, 1205, 1209, 1212, 1213, 1214,
                                       1215, 1216, 1217, 1218, 1219, 1220, -1};
    struct offsets *o = restore(1200, md);
    assert_int_equal(offsets_commit_point(o), 1200);
    assert_int_equal(offsets_outstanding(o), 0);
    assert_false(offsets_dirty(o));
    expect_skips(o, 1190, 1230, was_done);
    expect_metadata(o, md); /* an unchanged tracker writes back what it read */

    /* The records come again; those done before are not delivered. */
    for (int64_t off = 1200; off <= 1220; off++) {
        fetch(o, off);
        if (offsets_skip(o, off))
            done(o, off);
        /* The commit point waits at 1200, never done; the metadata keeps
         * naming the done offsets, fetched or not. */
        assert_int_equal(offsets_commit_point(o), 1200);
        expect_metadata(o, md);
    }
    assert_int_equal(offsets_outstanding(o), 8);
    done_range(o, 1200, 1202);
    assert_int_equal(offsets_commit_point(o), 1206);
    expect_metadata(o, "h1:1206:3,1+8");
    offsets_free(o);

    /* The base may itself be named (restored, not yet fetched). */
    o = restore(7, "h1:7:0+2");
    assert_int_equal(offsets_commit_point(o), 7);
    expect_skips(o, 0, 20, (const int64_t[]){7, 8, 9, -1});
    expect_metadata(o, "h1:7:0+2");
    fetch(o, 7);
    assert_true(offsets_skip(o, 7));
    done(o, 7);
    assert_int_equal(offsets_commit_point(o), 8);
    expect_metadata(o, "h1:8:0+1");
    offsets_free(o);
}

/* A done run of the window and the restored range right above it are one
 * range; restored ranges are forgotten as fetching passes them. */
static void test_restored_ranges_pass(void **state)
{
    struct offsets *o = restore(100, "h1:100:2+7");
    fetch(o, 100);
    assert_false(offsets_skip(o, 100));
    fetch(o, 101);
    fetch(o, 102);
    assert_true(offsets_skip(o, 102));
    done(o, 102);
    expect_metadata(o, "h1:100:2+7");
    /* 103 to 109 are gone (compacted): the fetch passes the range. */
    fetch(o, 115);
    assert_false(offsets_skip(o, 115));
    assert_false(offsets_skip(o, 105));
    expect_metadata(o, "h1:100:2");
    offsets_free(o);

    o = restore(0, "h1:0:5,5,5"); /* 5, 12, 19 */
    expect_skips(o, 0, 25, (const int64_t[]){5, 12, 19, -1});
    fetch(o, 13);
    expect_skips(o, 0, 25, (const int64_t[]){19, -1});
    expect_metadata(o, "h1:13:6");
    fetch(o, 19);
    assert_true(offsets_skip(o, 19)); /* the one just fetched */
    done(o, 19);
    fetch(o, 20);
    expect_skips(o, 0, 25, no_skips);
    expect_metadata(o, "h1:13:6");
    offsets_free(o);
}

/* 0 to 999 fetched, the odd ones done: 500 ranges of one offset. */
static struct offsets *odd_done(void)
{
    struct offsets *o = offsets_new(0);
    fetch_range(o, 0, 999);
    for (int64_t off = 1; off < 1000; off += 2)
        done(o, off);
    return o;
}

/* Restore md and check the skips: a prefix of the odd offsets below 1000,
 * all of them if complete. Returns how many. */
static int64_t check_odd_prefix(const char *md, size_t len, bool complete)
{
    struct offsets *r = offsets_restore(0, md, len);
    int64_t kept = 0;
    bool cut = false;
    for (int64_t off = 0; off < 1100; off++) {
        bool skip = offsets_skip(r, off);
        if (off % 2 == 0 || off >= 1000) {
            assert_false(skip);
        } else if (skip) {
            assert_false(cut);
            kept++;
        } else {
            cut = true;
        }
    }
    assert_int_equal(cut, !complete);
    offsets_free(r);
    return kept;
}

static void test_truncation(void **state)
{
    struct offsets *o = odd_done();
    char full[OFFSETS_METADATA_CAP];
    size_t full_len = offsets_metadata(o, full, sizeof full);
    assert_int_equal(full_len, strlen("h1:0:1") + 499 * strlen(",0"));
    assert_int_equal(check_odd_prefix(full, full_len, true), 500);

    /* Exactly enough room: complete. */
    char md[OFFSETS_METADATA_CAP];
    assert_int_equal(offsets_metadata(o, md, full_len + 1), full_len);
    assert_string_equal(md, full);

    /* One byte short, and shorter: the lowest ranges and the mark. */
    size_t caps[] = {full_len, full_len - 1, 100, 33, OFFSETS_METADATA_MIN_CAP};
    int64_t last_kept = 499;
    for (size_t i = 0; i < ARRAY_LEN(caps); i++) {
        memset(md, 'x', sizeof md);
        size_t n = offsets_metadata(o, md, caps[i]);
        assert_true(n < caps[i]);
        assert_int_equal(strlen(md), n);
        assert_true(n >= 2 && strcmp(md + n - 2, ":t") == 0);
        int64_t kept = check_odd_prefix(md, n, false);
        assert_true(kept <= last_kept);
        last_kept = kept;
        /* The restored tracker names what it kept, without the mark. */
        struct offsets *r = offsets_restore(0, md, n);
        char again[OFFSETS_METADATA_CAP];
        size_t m = offsets_metadata(r, again, sizeof again);
        assert_int_equal(m, n - 2);
        assert_memory_equal(again, md, m);
        offsets_free(r);
    }
    /* "h1:0:1", eight ",0" and ":t" take 24 bytes: a ninth ",0" would
     * leave no room for the mark. */
    assert_int_equal(last_kept, 9);

    /* Too small for anything: an empty string, then nothing at all. */
    memset(md, 'x', sizeof md);
    assert_int_equal(offsets_metadata(o, md, OFFSETS_METADATA_MIN_CAP - 1), 0);
    assert_string_equal(md, "");
    memset(md, 'x', sizeof md);
    assert_int_equal(offsets_metadata(o, md, 0), 0);
    assert_int_equal(md[0], 'x');
    offsets_free(o);

    /* The longest base leaves room for one short range, or the mark. */
    const int64_t big = 1000000000000000000; /* 19 digits */
    o = offsets_new(big);
    fetch_range(o, big, big + 3);
    done(o, big + 1);
    assert_int_equal(offsets_metadata(o, md, OFFSETS_METADATA_MIN_CAP), 24);
    assert_string_equal(md, "h1:1000000000000000000:1");
    done(o, big + 3);
    assert_int_equal(offsets_metadata(o, md, OFFSETS_METADATA_MIN_CAP), 25);
    assert_string_equal(md, "h1:1000000000000000000::t");
    expect_metadata(o, "h1:1000000000000000000:1,0");
    offsets_free(o);
}

static void test_base_mismatch(void **state)
{
    const char *md = "h1:1200:3+2,2,1+8";
    int64_t committed[] = {0, 1199, 1201, 1203, INT64_MAX};
    for (size_t i = 0; i < ARRAY_LEN(committed); i++) {
        struct offsets *o = restore(committed[i], md);
        expect_skips(o, 1190, 1230, no_skips);
        assert_int_equal(offsets_commit_point(o), committed[i]);
        offsets_free(o);
    }
}

static void test_garbage_metadata(void **state)
{
    static const char *const bad[] = {
        "",
        "h",
        "h1",
        "h1:",
        "h1:1200",
        "h2:1200:3",
        "H1:1200:3",
        " h1:1200:3",
        "h1:1200:3 ",
        "h1: 1200:3",
        "h1:+1200:3",
        "h1:-1200:3",
        "h1:abc:3",
        "h1:1200:x",
        "h1:1200:-3",
        "h1:1200:+3",
        "h1:1200:3+",
        "h1:1200:3+-2",
        "h1:1200:3++2",
        "h1:1200:3,",
        "h1:1200:,3",
        "h1:1200:3,,4",
        "h1:1200:3-5",
        "h1:1200:3:",
        "h1:1200:3:x",
        "h1:1200:3:t:t",
        "h1:1200:3:tt",
        "h1:1200:3;t",
        "h1:1200:0x10",
        "h1:1200:1e3",
        "h1:1200:3.5",
        "h1:99999999999999999999:3",
        "h1:1200:99999999999999999999",
        "h1:1200:9223372036854775807",   /* past INT64_MAX from 1200 */
        "h1:1200:0+9223372036854775807", /* likewise */
        "h1:1200:9223372036854774606,0", /* the next range would pass it */
        "{\"offset\":1203}",             /* another tool's */
        "bGlzdCBvZiBvZmZzZXRz",          /* base64, as parallel-consumer */
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct offsets *o = restore(1200, bad[i]);
        expect_skips(o, 1190, 1260, no_skips);
        expect_metadata(o, "h1:1200:");
        assert_false(offsets_dirty(o));
        offsets_free(o);
    }

    /* A NUL inside, and the bytes past md_len, are not metadata. */
    struct offsets *o = offsets_restore(1200, "h1:1200:3\0", 10);
    expect_skips(o, 1190, 1260, no_skips);
    offsets_free(o);
    o = offsets_restore(1200, "h1:1200:3,4", 9);
    expect_skips(o, 1190, 1260, (const int64_t[]){1203, -1});
    offsets_free(o);
    o = offsets_restore(1200, NULL, 0);
    expect_skips(o, 1190, 1260, no_skips);
    offsets_free(o);

    /* Well-formed edge cases. Ranges cannot go backwards or overlap: each
     * starts after the one before, so "5,3" is 1205 and 1210. */
    o = restore(1200, "h1:1200:5,3");
    expect_skips(o, 1190, 1260, (const int64_t[]){1205, 1210, -1});
    offsets_free(o);
    o = restore(1200, "h1:1200::t");
    expect_skips(o, 1190, 1260, no_skips);
    offsets_free(o);
    o = restore(1200, "h1:01200:003"); /* leading zeros: not written, but harmless */
    expect_skips(o, 1190, 1260, (const int64_t[]){1203, -1});
    offsets_free(o);
    o = restore(1200, "h1:1200:9223372036854774606"); /* the last offset that can be named */
    assert_true(offsets_skip(o, INT64_MAX - 1));
    assert_false(offsets_skip(o, INT64_MAX));
    offsets_free(o);
    o = restore(1200, "h1:1200:9223372036854774605,0"); /* INT64_MAX - 2 and INT64_MAX */
    assert_true(offsets_skip(o, INT64_MAX - 2));
    assert_false(offsets_skip(o, INT64_MAX - 1));
    assert_true(offsets_skip(o, INT64_MAX));
    fetch(o, INT64_MAX - 2);
    done(o, INT64_MAX - 2);
    expect_metadata(o, "h1:9223372036854775806:1");
    offsets_free(o);
}

/* The window grows by doubling while its first record stays outstanding,
 * and wraps around the ring once it is done. */
static void test_window_growth(void **state)
{
    const int64_t n = (1 << 20) + 12345;
    struct offsets *o = offsets_new(0);
    for (int64_t i = 0; i < n; i++)
        fetch(o, 2 * i); /* every other offset is a gap */
    assert_int_equal(offsets_outstanding(o), n);
    for (int64_t i = n - 1; i >= 1; i--)
        done(o, 2 * i);
    assert_int_equal(offsets_outstanding(o), 1);
    assert_int_equal(offsets_commit_point(o), 0);
    char want[64];
    snprintf(want, sizeof want, "h1:0:2+%lld", (long long)(2 * n - 4));
    expect_metadata(o, want);
    done(o, 0);
    assert_int_equal(offsets_commit_point(o), 2 * n - 1);
    assert_int_equal(offsets_outstanding(o), 0);

    /* Steady state in the big ring, across its wrap point: 100
     * outstanding, done in order. */
    int64_t from = 2 * n;
    for (int64_t off = from; off < from + 3 * n; off++) {
        fetch(o, off);
        if (off - from >= 100)
            done(o, off - 100);
        assert_int_equal(offsets_commit_point(o), off - from >= 99 ? off - 99 : from);
    }
    assert_int_equal(offsets_outstanding(o), 100);
    offsets_free(o);
}

/* ---- randomized property test ---- */

/* What the tracker knows of a record it has not fetched (restored). */
enum know {
    K_NOT,   /* not done, as far as it knows */
    K_DONE,  /* restored as done: must be skipped */
    K_MAYBE, /* done, and restored through a truncation: may be skipped */
    K_CUT,   /* known done at the commit, whose metadata was truncated */
};

enum { UNFETCHED, OUTSTANDING, DONE };

enum order { IN_ORDER, UNIFORM, PINNED };

struct params {
    int64_t start;  /* first offset of the log */
    size_t nrec;    /* records in the log */
    unsigned gap;   /* percent of offsets missing */
    size_t cap;     /* metadata cap */
    size_t max_out; /* the caller's bound on outstanding records */
    enum order order;
    unsigned restarts;
};

struct model {
    const struct params *p;
    int64_t *log;  /* the offsets that exist, increasing */
    uint8_t *st;   /* UNFETCHED, OUTSTANDING or DONE, in this generation */
    uint8_t *know; /* enum know, for UNFETCHED records */
    bool *ever;    /* done in any generation */
    size_t first;  /* first record of this generation (at or above its start) */
    size_t fi;     /* next record to fetch */
    size_t lo;     /* no OUTSTANDING record below it */
    int64_t start; /* where this generation's tracker started */
    size_t *outs;  /* OUTSTANDING records, in fetch order */
    size_t nout;
    bool lost;            /* a truncated restore left out a record */
    int64_t committed_cp; /* the last commit of this generation */
    bool done_since;      /* a record done since then */
    char *gen_md;         /* the tracker's metadata at that commit */
    /* The last commit (of any generation), for the next restart. */
    int64_t c_off;
    char *c_md;
    size_t c_len;
    bool c_trunc;
    uint8_t *c_snap; /* enum know for each record at or above c_off */
};

static int64_t model_cp(struct model *m)
{
    while (m->lo < m->fi && m->st[m->lo] == DONE)
        m->lo++;
    if (m->lo < m->fi)
        return m->log[m->lo];
    return m->fi > m->first ? m->log[m->fi - 1] + 1 : m->start;
}

/* What the tracker knows of record i, as the commit would record it. */
static uint8_t model_knows(const struct model *m, size_t i)
{
    switch (m->st[i]) {
    case DONE:
        return K_DONE;
    case OUTSTANDING:
        return K_NOT;
    default:
        return m->know[i] == K_CUT ? K_MAYBE : m->know[i];
    }
}

static void model_check(struct model *m, const struct offsets *o)
{
    int64_t cp = model_cp(m);
    assert_int_equal(offsets_commit_point(o), cp);
    assert_int_equal(offsets_outstanding(o), m->nout);
    assert_int_equal(offsets_dirty(o), m->done_since || cp != m->committed_cp);
    if (!offsets_dirty(o)) {
        /* Nothing to commit: what a commit would carry is what it did. */
        char md[OFFSETS_METADATA_CAP];
        offsets_metadata(o, md, m->p->cap);
        assert_string_equal(md, m->gen_md);
    }
}

static void mark_done(struct model *m, size_t i)
{
    m->st[i] = DONE;
    m->ever[i] = true;
    m->done_since = true;
}

static void step_fetch(struct model *m, struct offsets *o)
{
    uint64_t burst = 1 + rnd_below(50);
    for (uint64_t k = 0; k < burst && m->fi < m->p->nrec && m->nout < m->p->max_out; k++) {
        size_t i = m->fi++;
        fetch(o, m->log[i]);
        bool skip = offsets_skip(o, m->log[i]);
        if (skip) {
            assert_true(m->ever[i]); /* never skip a record not done */
            assert_false(m->lost);   /* a truncation keeps the lowest */
            assert_int_not_equal(m->know[i], K_NOT);
        } else {
            assert_int_not_equal(m->know[i], K_DONE);
            if (m->know[i] == K_CUT)
                m->lost = true;
        }
        if (skip) {
            done(o, m->log[i]);
            mark_done(m, i);
        } else {
            m->st[i] = OUTSTANDING;
            m->outs[m->nout++] = i;
        }
    }
}

static void step_done(struct model *m, struct offsets *o)
{
    uint64_t batch = 1 + rnd_below(20);
    for (uint64_t k = 0; k < batch && m->nout > 0; k++) {
        size_t j;
        switch (m->p->order) {
        case IN_ORDER:
            j = 0;
            break;
        case UNIFORM:
            j = rnd_below(m->nout);
            break;
        default:
            /* The oldest stays outstanding for long (an ETA task). */
            j = m->nout == 1 || rnd_below(100) < 2 ? 0 : 1 + rnd_below(m->nout - 1);
            break;
        }
        size_t i = m->outs[j];
        memmove(&m->outs[j], &m->outs[j + 1], (m->nout - j - 1) * sizeof *m->outs);
        m->nout--;
        done(o, m->log[i]);
        mark_done(m, i);
    }
}

/* Calls the tracker must refuse, changing nothing. */
static void step_noise(struct model *m, struct offsets *o)
{
    size_t n = m->p->nrec;
    size_t i = rnd_below(n);
    int64_t off;
    switch (rnd_below(5)) {
    case 0: /* a record not outstanding, if it is not */
        off = m->st[i] == OUTSTANDING ? -1 : m->log[i];
        break;
    case 1: /* a gap, if there is one */
        off = m->log[i] + 1;
        if (i + 1 < n && m->log[i + 1] == off)
            off = -1;
        break;
    case 2:
        off = m->start - 1;
        break;
    case 3:
        off = m->fi < n ? m->log[m->fi] : INT64_MAX; /* not fetched yet */
        break;
    default:
        off = INT64_MIN;
        break;
    }
    assert_false(offsets_done(o, off));

    /* A fetch at or below one fetched before, or below the start. */
    if (m->fi > m->first)
        off = m->log[m->first + rnd_below(m->fi - m->first)];
    else
        off = m->start - 1 - (int64_t)rnd_below(3);
    assert_false(offsets_fetched(o, off));
}

/* The state a restore from `md` at cp must give: skips exactly the records
 * the tracker knew done, or a prefix of them when truncated. */
static void check_restored_skips(const struct model *m, int64_t cp, const char *md, size_t len,
                                 bool trunc)
{
    struct offsets *r = offsets_restore(cp, md, len);
    assert_non_null(r);
    bool cut = false;
    for (size_t i = 0; i < m->p->nrec; i++) {
        if (m->log[i] < cp)
            continue;
        uint8_t k = model_knows(m, i);
        bool skip = offsets_skip(r, m->log[i]);
        if (skip) {
            assert_true(m->ever[i]);
            assert_int_not_equal(k, K_NOT);
            assert_false(cut);
        } else if (k == K_DONE) {
            assert_true(trunc);
            cut = true;
        }
    }
    /* Restored and untouched, it writes back what it read, less the mark. */
    char again[OFFSETS_METADATA_CAP];
    size_t n = offsets_metadata(r, again, m->p->cap);
    assert_int_equal(n, trunc ? len - 2 : len);
    assert_memory_equal(again, md, n);
    assert_false(offsets_dirty(r));
    offsets_free(r);
}

static void step_commit(struct model *m, struct offsets *o)
{
    int64_t cp = offsets_commit_point(o);
    size_t cap = m->p->cap;
    char *md = xmalloc(cap);
    size_t len = offsets_metadata(o, md, cap);
    assert_true(len < cap);
    assert_int_equal(strlen(md), len);
    bool trunc = len >= 2 && strcmp(md + len - 2, ":t") == 0;
    if (cap >= OFFSETS_METADATA_MIN_CAP) {
        char head[32];
        int h = snprintf(head, sizeof head, "h1:%lld:", (long long)cp);
        assert_memory_equal(md, head, (size_t)h);
    }
    check_restored_skips(m, cp, md, len, trunc);

    offsets_committed(o);
    assert_false(offsets_dirty(o));
    m->committed_cp = cp;
    m->done_since = false;
    free(m->gen_md);
    m->gen_md = xstrdup(md);
    free(m->c_md);
    m->c_md = md;
    m->c_len = len;
    m->c_off = cp;
    m->c_trunc = trunc;
    for (size_t i = 0; i < m->p->nrec; i++)
        m->c_snap[i] = m->log[i] >= cp ? model_knows(m, i) : K_NOT;
}

/* The tracker's owner restarts from the last commit. */
static struct offsets *step_restart(struct model *m, struct offsets *o)
{
    offsets_free(o);
    o = offsets_restore(m->c_off, m->c_md, m->c_len);
    assert_non_null(o);
    m->start = m->c_off;
    m->first = 0;
    while (m->first < m->p->nrec && m->log[m->first] < m->start)
        m->first++;
    m->fi = m->lo = m->first;
    for (size_t i = m->first; i < m->p->nrec; i++) {
        uint8_t k = m->c_snap[i];
        if (m->c_trunc && k == K_DONE)
            k = K_CUT;
        else if (m->c_trunc && k != K_NOT)
            k = K_MAYBE;
        m->st[i] = UNFETCHED;
        m->know[i] = k;
    }
    m->nout = 0;
    m->lost = false;
    m->committed_cp = m->start;
    m->done_since = false;
    char md[OFFSETS_METADATA_CAP];
    offsets_metadata(o, md, m->p->cap);
    free(m->gen_md);
    m->gen_md = xstrdup(md);
    return o;
}

static void run_property(uint64_t seed, const struct params *p)
{
    rng_state = seed;
    size_t n = p->nrec;
    struct model m = {.p = p, .start = p->start, .c_off = p->start};
    m.log = xmalloc(n * sizeof *m.log);
    int64_t off = p->start;
    for (size_t i = 0; i < n; i++) {
        while (rnd_below(100) < p->gap)
            off++;
        m.log[i] = off++;
    }
    m.st = xcalloc(n, 1);
    m.know = xcalloc(n, 1);
    m.ever = xcalloc(n, sizeof *m.ever);
    m.c_snap = xcalloc(n, 1);
    m.outs = xmalloc(n * sizeof *m.outs);
    m.committed_cp = p->start;
    m.c_md = xstrdup("");
    struct offsets *o = offsets_new(p->start);
    assert_non_null(o);
    char md[OFFSETS_METADATA_CAP];
    offsets_metadata(o, md, p->cap);
    m.gen_md = xstrdup(md);

    unsigned restarts = 0;
    while (m.fi < n || m.nout > 0) {
        uint64_t r = rnd_below(100);
        if (r < 40)
            step_fetch(&m, o);
        else if (r < 80)
            step_done(&m, o);
        else if (r < 88)
            step_noise(&m, o);
        else if (r < 97 || restarts >= p->restarts)
            step_commit(&m, o);
        else {
            o = step_restart(&m, o);
            restarts++;
        }
        model_check(&m, o);
    }
    assert_int_equal(offsets_commit_point(o), m.log[n - 1] + 1);
    assert_int_equal(offsets_outstanding(o), 0);
    step_commit(&m, o);

    offsets_free(o);
    free(m.log);
    free(m.st);
    free(m.know);
    free(m.ever);
    free(m.c_snap);
    free(m.outs);
    free(m.c_md);
    free(m.gen_md);
}

static void test_property_random(void **state)
{
    static const int64_t starts[] = {0, 1, 123456789, INT64_MAX / 2, INT64_MAX - 100000};
    static const unsigned gaps[] = {0, 10, 60};
    static const size_t caps[] = {OFFSETS_METADATA_CAP, OFFSETS_METADATA_MIN_CAP, 40, 120, 600};
    static const size_t max_outs[] = {1, 4, 64, 500, 3000};
    for (uint64_t seed = 1; seed <= 90; seed++) {
        struct params p = {
            .start = starts[seed % ARRAY_LEN(starts)],
            .nrec = 2000 + seed * 40,
            .gap = gaps[seed % ARRAY_LEN(gaps)],
            .cap = caps[seed % ARRAY_LEN(caps)],
            .max_out = max_outs[(seed / 3) % ARRAY_LEN(max_outs)],
            .order = (enum order)((seed / 2) % 3),
            .restarts = (unsigned)(seed % 7) * 3,
        };
        run_property(seed, &p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_out_of_order_holes),
        cmocka_unit_test(test_gaps_in_fetched_offsets),
        cmocka_unit_test(test_done_not_outstanding),
        cmocka_unit_test(test_fetched_not_increasing),
        cmocka_unit_test(test_nothing_outstanding),
        cmocka_unit_test(test_metadata_example),
        cmocka_unit_test(test_metadata_round_trip),
        cmocka_unit_test(test_restored_ranges_pass),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_base_mismatch),
        cmocka_unit_test(test_garbage_metadata),
        cmocka_unit_test(test_window_growth),
        cmocka_unit_test(test_property_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
