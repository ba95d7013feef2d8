/* test_confirm.c - unit tests for the publisher-confirm tracker.
 *
 * Besides fixed scenarios, a randomized test replays every emitted frame
 * through a model client (multiple=true settles every outstanding tag up
 * to the given one) and checks that each tag is settled exactly once, with
 * its real outcome, and that no cumulative frame reaches over a tag of the
 * other outcome. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "confirm.h"

/* Link seam: the Makefile links this test with -Wl,--wrap=free, so every
 * free() in it and in confirm.c comes here first. It remembers the last
 * pointer freed, as a number (a freed pointer must not be used). */
void __real_free(void *p);
void __wrap_free(void *p);

static uintptr_t last_freed;

void __wrap_free(void *p)
{
    if (p)
        last_freed = (uintptr_t)p;
    __real_free(p);
}

struct frame {
    uint64_t tag;
    bool multiple;
    bool ack;
};

struct frames {
    struct frame *v;
    size_t n;
    size_t cap;
};

static void record(void *arg, uint64_t tag, bool multiple, bool ack)
{
    struct frames *f = arg;
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->v = xrealloc(f->v, f->cap * sizeof *f->v);
    }
    f->v[f->n++] = (struct frame){tag, multiple, ack};
}

static void frames_reset(struct frames *f)
{
    f->n = 0;
}

static void frames_free(struct frames *f)
{
    FREE_AND_NULL(f->v);
    f->n = f->cap = 0;
}

static void expect_frames(const struct frames *f, const struct frame *want, size_t n)
{
    assert_int_equal(f->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(f->v[i].tag, want[i].tag);
        assert_int_equal(f->v[i].multiple, want[i].multiple);
        assert_int_equal(f->v[i].ack, want[i].ack);
    }
}

static void publish(struct confirm *c, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        (void)confirm_next(c);
}

static void resolve(struct confirm *c, uint64_t tag, bool ack)
{
    bool freed = confirm_resolve(c, tag, ack);
    assert_false(freed);
}

/* Detach c; returns whether that freed it (the tracker is freed last). */
static bool detach_frees(struct confirm *c)
{
    last_freed = 0;
    confirm_detach(c);
    return last_freed == (uintptr_t)c;
}

static void test_tags_start_at_one(void **state)
{
    struct confirm *c = confirm_new();
    assert_int_equal(confirm_next(c), 1);
    assert_int_equal(confirm_next(c), 2);
    assert_int_equal(confirm_next(c), 3);
    assert_int_equal(confirm_unconfirmed(c), 3);
    assert_false(confirm_dirty(c));
    resolve(c, 1, true);
    resolve(c, 2, true);
    resolve(c, 3, true);
    struct frames f = {0};
    confirm_flush(c, record, &f);
    confirm_detach(c);
    frames_free(&f);
}

static void test_sequential_acks_coalesce(void **state)
{
    struct confirm *c = confirm_new();
    struct frames f = {0};
    publish(c, 100);
    for (uint64_t t = 1; t <= 100; t++)
        resolve(c, t, true);
    assert_true(confirm_dirty(c));
    assert_int_equal(confirm_unconfirmed(c), 100);
    confirm_flush(c, record, &f);
    expect_frames(&f, (struct frame[]){{100, true, true}}, 1);
    assert_false(confirm_dirty(c));
    assert_int_equal(confirm_unconfirmed(c), 0);

    /* Nothing new: a flush emits nothing. */
    frames_reset(&f);
    confirm_flush(c, record, &f);
    assert_int_equal(f.n, 0);

    /* A run of one tag is not cumulative. */
    publish(c, 1);
    resolve(c, 101, false);
    confirm_flush(c, record, &f);
    expect_frames(&f, (struct frame[]){{101, false, false}}, 1);
    confirm_detach(c);
    frames_free(&f);
}

static void test_nack_splits_runs(void **state)
{
    struct confirm *c = confirm_new();
    struct frames f = {0};
    publish(c, 10);
    for (uint64_t t = 1; t <= 10; t++)
        resolve(c, t, t != 5);
    confirm_flush(c, record, &f);
    expect_frames(&f, (struct frame[]){{4, true, true}, {5, false, false}, {10, true, true}}, 3);
    assert_int_equal(confirm_unconfirmed(c), 0);
    confirm_detach(c);
    frames_free(&f);
}

static void test_nack_runs_are_cumulative_too(void **state)
{
    struct confirm *c = confirm_new();
    struct frames f = {0};
    publish(c, 6);
    const bool ack[] = {false, false, false, true, false, false};
    for (uint64_t t = 1; t <= 6; t++)
        resolve(c, t, ack[t - 1]);
    confirm_flush(c, record, &f);
    expect_frames(&f, (struct frame[]){{3, true, false}, {4, false, true}, {6, true, false}}, 3);
    confirm_detach(c);
    frames_free(&f);
}

/* Three partitions complete in turn: tags 1,4,7 then 2,5,8 then 3,6,9. */
static void test_out_of_order_partitions(void **state)
{
    struct confirm *c = confirm_new();
    struct frames f = {0};
    publish(c, 9);

    for (uint64_t t = 1; t <= 9; t += 3)
        resolve(c, t, true);
    confirm_flush(c, record, &f);
    expect_frames(&f, (struct frame[]){{1, false, true}, {4, false, true}, {7, false, true}}, 3);
    assert_int_equal(confirm_unconfirmed(c), 6);
    assert_false(confirm_dirty(c));

    frames_reset(&f);
    for (uint64_t t = 2; t <= 9; t += 3)
        resolve(c, t, true);
    confirm_flush(c, record, &f);
    expect_frames(&f, (struct frame[]){{2, false, true}, {5, false, true}, {8, false, true}}, 3);
    assert_int_equal(confirm_unconfirmed(c), 3);

    /* The last partition closes the gaps: one cumulative ack finishes it,
     * passing over tags the client already has. */
    frames_reset(&f);
    for (uint64_t t = 3; t <= 9; t += 3)
        resolve(c, t, true);
    confirm_flush(c, record, &f);
    expect_frames(&f, (struct frame[]){{9, true, true}}, 1);
    assert_int_equal(confirm_unconfirmed(c), 0);
    assert_false(confirm_dirty(c));
    confirm_detach(c);
    frames_free(&f);
}

/* Runs whose tags were all sent one by one produce no frame. */
static void test_sent_runs_are_skipped(void **state)
{
    struct confirm *c = confirm_new();
    struct frames f = {0};
    publish(c, 3);
    resolve(c, 2, true);
    resolve(c, 3, false);
    confirm_flush(c, record, &f);
    expect_frames(&f, (struct frame[]){{2, false, true}, {3, false, false}}, 2);
    assert_int_equal(confirm_unconfirmed(c), 1);

    frames_reset(&f);
    resolve(c, 1, false);
    confirm_flush(c, record, &f);
    expect_frames(&f, (struct frame[]){{1, false, false}}, 1);
    assert_int_equal(confirm_unconfirmed(c), 0);

    /* The window moved past everything: these tags are too old now. */
    resolve(c, 2, false);
    resolve(c, 3, true);
    assert_false(confirm_dirty(c));
    confirm_detach(c);
    frames_free(&f);
}

static void test_ignored_resolutions(void **state)
{
    struct confirm *c = confirm_new();
    struct frames f = {0};
    resolve(c, 0, true); /* nothing published yet */
    resolve(c, 1, true);
    assert_false(confirm_dirty(c));

    publish(c, 3);
    resolve(c, 0, true);
    resolve(c, 4, true); /* future */
    resolve(c, UINT64_MAX, false);
    assert_false(confirm_dirty(c));

    resolve(c, 2, false);
    resolve(c, 2, true); /* repeated: the first outcome stands */
    confirm_flush(c, record, &f);
    expect_frames(&f, (struct frame[]){{2, false, false}}, 1);

    frames_reset(&f);
    resolve(c, 2, true); /* repeated after being sent */
    assert_false(confirm_dirty(c));
    confirm_flush(c, record, &f);
    assert_int_equal(f.n, 0);
    assert_int_equal(confirm_unconfirmed(c), 2);
    confirm_detach(c);
    resolve(c, 1, true);
    assert_true(confirm_resolve(c, 3, true));
    frames_free(&f);
}

/* The window grows by doubling while a first tag stays pending. */
struct counter {
    uint64_t next_tag;
    uint64_t n;
};

static void count_singles(void *arg, uint64_t tag, bool multiple, bool ack)
{
    struct counter *k = arg;
    assert_false(multiple);
    assert_true(ack);
    assert_int_equal(tag, k->next_tag);
    k->next_tag++;
    k->n++;
}

static void test_window_growth(void **state)
{
    const uint64_t n = (1u << 20) + 12345;
    struct confirm *c = confirm_new();
    struct frames f = {0};
    publish(c, n);
    assert_int_equal(confirm_unconfirmed(c), n);

    /* Everything but tag 1 completes: each is sent on its own. */
    for (uint64_t t = n; t >= 2; t--)
        resolve(c, t, true);
    struct counter k = {2, 0};
    confirm_flush(c, count_singles, &k);
    assert_int_equal(k.n, n - 1);
    assert_int_equal(confirm_unconfirmed(c), 1);
    confirm_flush(c, count_singles, &k);
    assert_int_equal(k.n, n - 1);

    /* Tag 1 closes the gap: a single ack for it, the one tag the client
     * has not heard about (a confirm never names a settled tag). */
    resolve(c, 1, true);
    confirm_flush(c, record, &f);
    expect_frames(&f, (struct frame[]){{1, false, true}}, 1);
    assert_int_equal(confirm_unconfirmed(c), 0);

    /* The big ring is reused across its wrap point. */
    frames_reset(&f);
    publish(c, n);
    for (uint64_t t = n + 1; t <= 2 * n; t++)
        resolve(c, t, t != n + 7);
    confirm_flush(c, record, &f);
    expect_frames(
        &f, (struct frame[]){{n + 6, true, true}, {n + 7, false, false}, {2 * n, true, true}}, 3);
    confirm_detach(c);
    frames_free(&f);
}

static void test_detach_with_pending(void **state)
{
    struct confirm *c = confirm_new();
    struct frames f = {0};
    publish(c, 4);
    resolve(c, 1, true);
    resolve(c, 3, false);
    assert_false(detach_frees(c));

    /* Detached: it emits nothing, ignores repeats and unknown tags. */
    assert_false(confirm_resolve(c, 3, true));
    assert_false(confirm_resolve(c, 9, true));
    assert_false(confirm_resolve(c, 2, true));
    assert_int_equal(confirm_next(c), 0);
    confirm_flush(c, record, &f);
    assert_int_equal(f.n, 0);
    /* The last pending tag frees it (valgrind checks nothing leaks). */
    assert_true(confirm_resolve(c, 4, false));
    frames_free(&f);
}

/* Detach frees the tracker at once when no outcome is pending, flushed or
 * not: nothing can reach it any more. */
static void test_detach_nothing_pending(void **state)
{
    /* Nothing published. */
    struct confirm *c = confirm_new();
    assert_true(detach_frees(c));

    /* All resolved, some never flushed. */
    c = confirm_new();
    publish(c, 200);
    for (uint64_t t = 1; t <= 200; t++)
        resolve(c, t, t % 3 != 0);
    assert_true(detach_frees(c));

    /* All resolved and flushed. */
    struct frames f = {0};
    c = confirm_new();
    publish(c, 2);
    resolve(c, 2, true);
    resolve(c, 1, true);
    confirm_flush(c, record, &f);
    assert_true(detach_frees(c));
    frames_free(&f);
}

/* ---- randomized property test ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rnd_below(uint64_t n)
{
    return rnd() % n;
}

enum { UNKNOWN = -1, NACK = 0, ACK = 1 };

/* What a client sees, and what really happened. */
struct model {
    uint64_t ntags;
    int8_t *real;       /* outcome passed to confirm_resolve, by tag */
    int8_t *seen;       /* outcome the client learnt, by tag */
    uint64_t published; /* tags 1..published exist */
    uint64_t resolved;  /* how many have an outcome */
    uint64_t nseen;     /* how many the client has settled */
    uint64_t low;       /* lowest tag the client has not settled */
};

static void model_frame(void *arg, uint64_t tag, bool multiple, bool ack)
{
    struct model *m = arg;
    int8_t o = ack ? ACK : NACK;
    assert_true(tag >= 1 && tag <= m->published);
    if (multiple) {
        /* The frame's range is [low, tag]: everything below low is settled
         * in order. Some clients (amqp091-go) hand the frame's outcome to
         * every tag of the range, so each one, settled individually or
         * not, must have that outcome. The client settles the outstanding
         * ones. */
        assert_true(tag >= m->low);
        uint64_t before = m->nseen;
        for (uint64_t t = m->low; t <= tag; t++) {
            assert_int_equal(m->real[t], o);
            if (m->seen[t] != UNKNOWN) {
                assert_int_equal(m->seen[t], o);
                continue;
            }
            m->seen[t] = o;
            m->nseen++;
        }
        assert_true(m->nseen > before); /* no useless frame */
    } else {
        assert_int_equal(m->seen[tag], UNKNOWN); /* exactly once */
        assert_int_equal(m->real[tag], o);
        m->seen[tag] = o;
        m->nseen++;
    }
    while (m->low <= m->published && m->seen[m->low] != UNKNOWN)
        m->low++;
}

static void model_check(const struct model *m, const struct confirm *c)
{
    assert_int_equal(confirm_unconfirmed(c), m->published - m->nseen);
    assert_int_equal(confirm_dirty(c), m->resolved > m->nseen);
}

/* Tags waiting for an outcome, grouped by "partition". Partitions complete
 * in order; uniform mode completes any pending tag. */
struct partition {
    uint64_t *tags;
    size_t head;
    size_t len;
};

static void run_property(uint64_t seed, uint64_t ntags, unsigned nparts, bool uniform,
                         unsigned nack_pct)
{
    rng_state = seed;
    struct model m = {.ntags = ntags, .low = 1};
    m.real = xmalloc(ntags + 2);
    m.seen = xmalloc(ntags + 2);
    memset(m.real, UNKNOWN, ntags + 2);
    memset(m.seen, UNKNOWN, ntags + 2);
    struct partition *parts = xcalloc(nparts, sizeof *parts);
    for (unsigned i = 0; i < nparts; i++)
        parts[i].tags = xmalloc(ntags * sizeof(uint64_t));
    uint64_t npending = 0;
    struct confirm *c = confirm_new();

    while (m.published < ntags || npending > 0) {
        uint64_t r = rnd_below(100);
        if (r < 30 && m.published < ntags) {
            uint64_t burst = 1 + rnd_below(40);
            for (uint64_t i = 0; i < burst && m.published < ntags; i++) {
                uint64_t tag = confirm_next(c);
                assert_int_equal(tag, m.published + 1);
                m.published = tag;
                struct partition *p = &parts[rnd_below(nparts)];
                p->tags[p->head + p->len++] = tag;
                npending++;
            }
        } else if (r < 85 && npending > 0) {
            /* A partition delivers a batch of reports. */
            struct partition *p = &parts[rnd_below(nparts)];
            uint64_t batch = 1 + rnd_below(20);
            for (uint64_t i = 0; i < batch && p->len > 0; i++) {
                uint64_t tag;
                if (uniform) {
                    size_t k = p->head + rnd_below(p->len);
                    tag = p->tags[k];
                    p->tags[k] = p->tags[p->head];
                } else {
                    tag = p->tags[p->head];
                }
                p->head++;
                p->len--;
                npending--;
                bool ack = rnd_below(100) >= nack_pct;
                m.real[tag] = ack ? ACK : NACK;
                m.resolved++;
                resolve(c, tag, ack);
            }
        } else if (r < 92) {
            /* Noise the tracker must ignore: repeats with the other
             * outcome, tag 0, future tags. */
            uint64_t tag;
            switch (rnd_below(3)) {
            case 0:
                tag = m.published ? 1 + rnd_below(m.published) : 0;
                if (tag && m.real[tag] == UNKNOWN)
                    tag = 0;
                break;
            case 1:
                tag = 0;
                break;
            default:
                tag = m.published + 1 + rnd_below(1000);
                break;
            }
            bool known = tag >= 1 && tag <= m.published && m.real[tag] != UNKNOWN;
            bool ack = known ? m.real[tag] == NACK : rnd_below(2);
            resolve(c, tag, ack);
        } else {
            confirm_flush(c, model_frame, &m);
            assert_false(confirm_dirty(c));
        }
        model_check(&m, c);
    }
    confirm_flush(c, model_frame, &m);
    model_check(&m, c);
    assert_int_equal(m.nseen, ntags);
    assert_int_equal(confirm_unconfirmed(c), 0);
    for (uint64_t t = 1; t <= ntags; t++)
        assert_int_equal(m.seen[t], m.real[t]);

    confirm_detach(c);
    for (unsigned i = 0; i < nparts; i++)
        free(parts[i].tags);
    free(parts);
    free(m.real);
    free(m.seen);
}

static void test_property_random(void **state)
{
    static const unsigned nack_pcts[] = {0, 2, 10, 50, 90, 100};
    for (uint64_t seed = 1; seed <= 48; seed++) {
        unsigned nparts = 1 + (unsigned)(seed % 8);
        bool uniform = seed % 3 == 0;
        unsigned nack = nack_pcts[seed % ARRAY_LEN(nack_pcts)];
        run_property(seed, 4000 + seed * 50, nparts, uniform, nack);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tags_start_at_one),
        cmocka_unit_test(test_sequential_acks_coalesce),
        cmocka_unit_test(test_nack_splits_runs),
        cmocka_unit_test(test_nack_runs_are_cumulative_too),
        cmocka_unit_test(test_out_of_order_partitions),
        cmocka_unit_test(test_sent_runs_are_skipped),
        cmocka_unit_test(test_ignored_resolutions),
        cmocka_unit_test(test_window_growth),
        cmocka_unit_test(test_detach_with_pending),
        cmocka_unit_test(test_detach_nothing_pending),
        cmocka_unit_test(test_property_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
