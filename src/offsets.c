/* offsets.c - which offsets of one Kafka partition a task queue may commit.
 *
 * The window is a power-of-two ring of the records fetched and not yet
 * passed by the commit point, in fetch (so offset) order, each with a done
 * flag. Its first entry is never done: offsets_done() on it pops it and
 * every done entry behind it, so the commit point is the first entry's
 * offset, or `next` when the window is empty. Done in fetch order costs
 * O(1); any other entry is found by binary search. The ring doubles when
 * full and never shrinks: the caller's bound on outstanding records bounds
 * it, apart from done records held behind a long-outstanding one.
 *
 * The restored skip set is a sorted array of disjoint ranges, consumed
 * from the front as fetching passes them, and freed when all are passed.
 *
 * The metadata names the done entries of the window (a run of consecutive
 * done entries is one range, spanning the gaps between them) followed by
 * the restored ranges not yet reached. */
#include "offsets.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define OFFSETS_INITIAL_CAP 64
#define MD_VERSION "h1:"
#define MD_TRUNCATED ":t"

struct entry {
    int64_t off;
    bool done;
};

struct range {
    int64_t lo, hi; /* inclusive */
};

struct offsets {
    struct entry *ring;   /* entry i of the window at ring[(head + i) & (cap - 1)]; owned */
    size_t cap;           /* power of two, >= len */
    size_t head;          /* ring index of the first entry */
    size_t len;           /* entries in the window */
    size_t ndone;         /* done entries in the window (never the first) */
    int64_t next;         /* one past the last fetched offset; the start at first */
    int64_t committed_at; /* commit point at the last offsets_committed() */
    bool changed;         /* a record was done since then */
    struct range *skip;   /* restored ranges, sorted, disjoint; owned, NULL when none left */
    size_t nskip;         /* ranges in skip */
    size_t skip_head;     /* ranges before it were passed by fetching */
};

static inline struct entry *at(const struct offsets *o, size_t i)
{
    return &o->ring[(o->head + i) & (o->cap - 1)];
}

struct offsets *offsets_new(int64_t position)
{
    if (position < 0)
        return NULL;
    struct offsets *o = xcalloc(1, sizeof *o);
    o->cap = OFFSETS_INITIAL_CAP;
    o->ring = xmalloc(o->cap * sizeof *o->ring);
    o->next = position;
    o->committed_at = position;
    return o;
}

void offsets_free(struct offsets *o)
{
    if (!o)
        return;
    FREE_AND_NULL(o->ring);
    FREE_AND_NULL(o->skip);
    free(o);
}

/* Double the ring, the window moving to the front of the new one. */
static void offsets_grow(struct offsets *o)
{
    size_t ncap = o->cap * 2;
    struct entry *nring = xmalloc(ncap * sizeof *nring);
    for (size_t i = 0; i < o->len; i++)
        nring[i] = *at(o, i);
    free(o->ring);
    o->ring = nring;
    o->cap = ncap;
    o->head = 0;
}

/* Forget restored ranges wholly below off. */
static void release_skips(struct offsets *o, int64_t off)
{
    while (o->skip_head < o->nskip && o->skip[o->skip_head].hi < off)
        o->skip_head++;
    if (o->skip && o->skip_head == o->nskip) {
        FREE_AND_NULL(o->skip);
        o->nskip = o->skip_head = 0;
    }
}

bool offsets_fetched(struct offsets *o, int64_t off)
{
    /* INT64_MAX would overflow next; Kafka never gets there. */
    if (off < o->next || off == INT64_MAX)
        return false;
    if (o->len == o->cap)
        offsets_grow(o);
    *at(o, o->len++) = (struct entry){off, false};
    o->next = off + 1;
    release_skips(o, off);
    return true;
}

/* Index in the window of the entry for off, or len if there is none. */
static size_t find(const struct offsets *o, int64_t off)
{
    if (o->len == 0 || off < at(o, 0)->off || off > at(o, o->len - 1)->off)
        return o->len;
    /* The common case: done in fetch order. */
    if (at(o, 0)->off == off)
        return 0;
    size_t lo = 1, hi = o->len; /* the entry, if any, is in [lo, hi) */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t m = at(o, mid)->off;
        if (m == off)
            return mid;
        if (m < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return o->len;
}

bool offsets_done(struct offsets *o, int64_t off)
{
    size_t i = find(o, off);
    if (i == o->len || at(o, i)->done)
        return false;
    o->changed = true;
    if (i > 0) {
        at(o, i)->done = true;
        o->ndone++;
        return true;
    }
    /* The first entry: pop it and the done entries behind it. */
    o->head = (o->head + 1) & (o->cap - 1);
    o->len--;
    while (o->len > 0 && at(o, 0)->done) {
        o->head = (o->head + 1) & (o->cap - 1);
        o->len--;
        o->ndone--;
    }
    return true;
}

int64_t offsets_commit_point(const struct offsets *o)
{
    return o->len > 0 ? at(o, 0)->off : o->next;
}

bool offsets_dirty(const struct offsets *o)
{
    return o->changed || offsets_commit_point(o) != o->committed_at;
}

void offsets_committed(struct offsets *o)
{
    o->committed_at = offsets_commit_point(o);
    o->changed = false;
}

size_t offsets_outstanding(const struct offsets *o)
{
    return o->len - o->ndone;
}

bool offsets_skip(const struct offsets *o, int64_t off)
{
    size_t lo = o->skip_head, hi = o->nskip;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (o->skip[mid].hi < off)
            lo = mid + 1;
        else if (o->skip[mid].lo > off)
            hi = mid;
        else
            return true;
    }
    return false;
}

/* ---- metadata ---- */

/* The done ranges above the commit point in increasing order: runs of
 * done window entries, then the restored ranges at or above next, with
 * touching ones merged (a run ending at next - 1 and a range from next). */
struct range_iter {
    const struct offsets *o;
    size_t i;  /* next window entry to look at */
    size_t s;  /* next restored range to look at */
    bool have; /* pending holds a range not yet returned */
    struct range pending;
};

static bool next_raw(struct range_iter *it, struct range *r)
{
    const struct offsets *o = it->o;
    while (it->i < o->len && !at(o, it->i)->done)
        it->i++;
    if (it->i < o->len) {
        r->lo = r->hi = at(o, it->i)->off;
        while (++it->i < o->len && at(o, it->i)->done)
            r->hi = at(o, it->i)->off;
        return true;
    }
    while (it->s < o->nskip) {
        struct range s = o->skip[it->s++];
        if (s.hi < o->next)
            continue; /* the window has its part, if fetched */
        r->lo = s.lo > o->next ? s.lo : o->next;
        r->hi = s.hi;
        return true;
    }
    return false;
}

static bool next_range(struct range_iter *it, struct range *r)
{
    if (!it->have && !next_raw(it, &it->pending))
        return false;
    *r = it->pending;
    /* n.lo - 1, not r->hi + 1: a restored range may end at INT64_MAX. */
    while ((it->have = next_raw(it, &it->pending)) && it->pending.lo - 1 == r->hi)
        r->hi = it->pending.hi;
    return true;
}

size_t offsets_metadata(const struct offsets *o, char *out, size_t cap)
{
    if (cap == 0)
        return 0;
    out[0] = '\0';
    if (cap < OFFSETS_METADATA_MIN_CAP)
        return 0;
    int64_t base = offsets_commit_point(o);
    size_t len = (size_t)snprintf(out, cap, MD_VERSION "%" PRId64 ":", base);

    struct range_iter it = {.o = o, .s = o->skip_head};
    struct range r;
    bool have = next_range(&it, &r), first = true, truncated = false;
    int64_t cursor = base;
    while (have) {
        char item[48]; /* ",", two int64s, "+", NUL */
        const char *sep = first ? "" : ",";
        int64_t gap = r.lo - cursor, extra = r.hi - r.lo;
        int n = extra > 0 ? snprintf(item, sizeof item, "%s%" PRId64 "+%" PRId64, sep, gap, extra)
                          : snprintf(item, sizeof item, "%s%" PRId64, sep, gap);
        struct range nr;
        bool more = next_range(&it, &nr);
        /* Unless r is the last, leave room for the truncation mark. */
        size_t need = (size_t)n + (more ? strlen(MD_TRUNCATED) : 0);
        if (len + need >= cap) {
            truncated = true;
            break;
        }
        memcpy(out + len, item, (size_t)n + 1);
        len += (size_t)n;
        /* Ranges never touch, so with one after r, r.hi + 2 <= nr.lo. */
        if (more)
            cursor = r.hi + 2;
        r = nr;
        have = more;
        first = false;
    }
    if (truncated) {
        memcpy(out + len, MD_TRUNCATED, sizeof MD_TRUNCATED);
        len += strlen(MD_TRUNCATED);
    }
    return len;
}

/* ---- restore ---- */

/* A decimal number of at most INT64_MAX at *p, with no sign. */
static bool parse_num(const char **p, const char *end, int64_t *v)
{
    const char *s = *p;
    int64_t n = 0;
    if (s == end || *s < '0' || *s > '9')
        return false;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        int d = *s - '0';
        if (n > (INT64_MAX - d) / 10)
            return false;
        n = n * 10 + d;
    }
    *p = s;
    *v = n;
    return true;
}

static bool eat(const char **p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
        return false;
    *p += n;
    return true;
}

/* Parse md into ranges (room for one per comma, plus one). Returns the
 * number of ranges, or -1 if md is not metadata for committed. */
static ptrdiff_t parse_metadata(int64_t committed, const char *md, size_t md_len,
                                struct range *ranges)
{
    const char *p = md, *end = md + md_len;
    int64_t base;
    if (!eat(&p, end, MD_VERSION) || !parse_num(&p, end, &base) || base != committed ||
        !eat(&p, end, ":"))
        return -1;
    ptrdiff_t n = 0;
    int64_t cursor = base; /* the lowest offset the next range may start at */
    bool room = true;      /* false once a range ends too near INT64_MAX for another */
    while (p < end && *p != ':') {
        int64_t gap, extra = 0;
        if ((n > 0 && !eat(&p, end, ",")) || !room || !parse_num(&p, end, &gap) ||
            (eat(&p, end, "+") && !parse_num(&p, end, &extra)))
            return -1;
        if (gap > INT64_MAX - cursor || extra > INT64_MAX - cursor - gap)
            return -1;
        ranges[n].lo = cursor + gap;
        ranges[n].hi = ranges[n].lo + extra;
        room = ranges[n].hi <= INT64_MAX - 2;
        cursor = room ? ranges[n].hi + 2 : INT64_MAX;
        n++;
    }
    if (p < end && !eat(&p, end, MD_TRUNCATED))
        return -1;
    return p == end ? n : -1;
}

struct offsets *offsets_restore(int64_t committed, const char *md, size_t md_len)
{
    struct offsets *o = offsets_new(committed);
    if (!o || !md || md_len == 0)
        return o;
    size_t max = 1;
    for (size_t i = 0; i < md_len; i++)
        max += md[i] == ',';
    struct range *ranges = xmalloc(max * sizeof *ranges);
    ptrdiff_t n = parse_metadata(committed, md, md_len, ranges);
    if (n <= 0) {
        free(ranges);
        return o;
    }
    o->skip = ranges;
    o->nskip = (size_t)n;
    return o;
}
