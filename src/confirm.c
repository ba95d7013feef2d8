/* confirm.c - publisher-confirm bookkeeping for one channel.
 *
 * One state byte per delivery tag, kept in a power-of-two ring over the
 * window [base, next): base is the lowest tag whose outcome the client has
 * not yet been told cumulatively, next the tag the next publish gets. Every
 * tag below base is settled on the client side. The ring doubles when the
 * window fills and never shrinks, so steady-state publishing allocates
 * nothing.
 *
 * confirm_flush() works in two phases:
 *  1. From base, take maximal runs of resolved tags with one outcome and
 *     send each run as one frame at its last tag (multiple=true when the
 *     run has more than one tag). Tags in the run that were already sent
 *     one by one are settled for the client, so a cumulative frame of the
 *     same outcome may pass over them. base moves past the run.
 *  2. base is now pending (or the window is empty). Tags resolved past it
 *     are sent one by one and marked SENT; they stay in the window until
 *     phase 1 passes over them.
 * Every resolved-but-unsent tag was resolved since the previous flush, so
 * the lowest and highest tag resolved since then bound the phase-2 scan,
 * and a counter of resolved-unsent tags makes a flush with nothing new
 * O(1). */
#include "confirm.h"

enum {
    ST_RESOLVED = 1 << 0, /* the outcome is known; 0 means pending */
    ST_ACK = 1 << 1,      /* with ST_RESOLVED: ack, else nack */
    ST_SENT = 1 << 2,     /* sent to the client individually */
};

#define CONFIRM_INITIAL_CAP 64

struct confirm {
    uint8_t *ring;     /* state of tag t at ring[t & (cap - 1)]; owned */
    size_t cap;        /* power of two, >= next - base */
    uint64_t base;     /* lowest tag not yet covered cumulatively */
    uint64_t next;     /* next tag to hand out */
    size_t pending;    /* tags in the window without an outcome */
    size_t unsent;     /* resolved tags in the window not yet sent */
    size_t sent;       /* tags in the window sent individually */
    uint64_t dirty_lo; /* lowest tag resolved since the last flush */
    uint64_t dirty_hi; /* highest tag resolved since the last flush */
    bool detached;
    struct confirm_owner *owner; /* until detached */
};

static inline uint8_t *slot(const struct confirm *c, uint64_t tag)
{
    return &c->ring[tag & (c->cap - 1)];
}

struct confirm *confirm_new(void)
{
    struct confirm *c = xcalloc(1, sizeof *c);
    c->cap = CONFIRM_INITIAL_CAP;
    c->ring = xcalloc(c->cap, 1);
    c->base = 1;
    c->next = 1;
    c->dirty_lo = UINT64_MAX;
    return c;
}

static void confirm_free(struct confirm *c)
{
    FREE_AND_NULL(c->ring);
    free(c);
}

/* Double the ring, moving each tag of the window to its new slot. */
static void confirm_grow(struct confirm *c)
{
    size_t ncap = c->cap * 2;
    uint8_t *nring = xmalloc(ncap);
    for (uint64_t t = c->base; t < c->next; t++)
        nring[t & (ncap - 1)] = c->ring[t & (c->cap - 1)];
    free(c->ring);
    c->ring = nring;
    c->cap = ncap;
}

uint64_t confirm_next(struct confirm *c)
{
    if (c->detached)
        return 0; /* no channel, no publishes; 0 is never a valid tag */
    if (c->next - c->base == c->cap)
        confirm_grow(c);
    uint64_t tag = c->next++;
    *slot(c, tag) = 0;
    c->pending++;
    return tag;
}

bool confirm_resolve(struct confirm *c, uint64_t tag, bool ack)
{
    /* Tags below base are settled; tags at or above next do not exist. */
    if (tag < c->base || tag >= c->next)
        return false;
    uint8_t *s = slot(c, tag);
    if (*s & ST_RESOLVED)
        return false;
    *s = (uint8_t)(ST_RESOLVED | (ack ? ST_ACK : 0));
    c->pending--;
    if (c->detached) {
        if (c->pending > 0)
            return false;
        confirm_free(c);
        return true;
    }
    c->unsent++;
    if (tag < c->dirty_lo)
        c->dirty_lo = tag;
    if (tag > c->dirty_hi)
        c->dirty_hi = tag;
    return false;
}

/* Phase 1: cumulative runs from base. */
static void flush_runs(struct confirm *c, confirm_emit_fn emit, void *arg)
{
    while (c->base < c->next) {
        uint8_t first = *slot(c, c->base);
        if (!(first & ST_RESOLVED))
            return;
        uint8_t outcome = first & ST_ACK;
        uint64_t t = c->base;
        uint64_t last_unsent = 0; /* 0 is never a tag */
        for (; t < c->next; t++) {
            uint8_t s = *slot(c, t);
            if (!(s & ST_RESOLVED) || (s & ST_ACK) != outcome)
                break;
            if (s & ST_SENT) {
                c->sent--;
            } else {
                c->unsent--;
                last_unsent = t;
            }
        }
        /* The frame names the highest tag the client has not been told
         * about, as RabbitMQ does: clients reject a confirm for a tag they
         * already settled (php-amqplib: "Server ack'ed unknown
         * delivery_tag"). Tags of the run above it were sent one by one;
         * those below it that were are covered again, which is harmless. */
        if (last_unsent)
            emit(arg, last_unsent, last_unsent > c->base, outcome != 0);
        c->base = t;
    }
}

/* Phase 2: tags resolved past the first pending one, one by one. */
static void flush_singles(struct confirm *c, confirm_emit_fn emit, void *arg)
{
    uint64_t t = c->dirty_lo > c->base ? c->dirty_lo : c->base;
    for (; c->unsent > 0 && t <= c->dirty_hi; t++) {
        uint8_t *s = slot(c, t);
        if ((*s & (ST_RESOLVED | ST_SENT)) != ST_RESOLVED)
            continue;
        *s |= ST_SENT;
        c->unsent--;
        c->sent++;
        emit(arg, t, false, (*s & ST_ACK) != 0);
    }
}

void confirm_flush(struct confirm *c, confirm_emit_fn emit, void *arg)
{
    /* With nothing unsent, base is pending or the window is empty: both
     * phases would find nothing. */
    if (c->detached || c->unsent == 0)
        return;
    flush_runs(c, emit, arg);
    if (c->unsent > 0)
        flush_singles(c, emit, arg);
    c->dirty_lo = UINT64_MAX;
    c->dirty_hi = 0;
}

size_t confirm_unconfirmed(const struct confirm *c)
{
    return (size_t)(c->next - c->base) - c->sent;
}

bool confirm_dirty(const struct confirm *c)
{
    return !c->detached && c->unsent > 0;
}

void confirm_set_owner(struct confirm *c, struct confirm_owner *owner)
{
    c->owner = owner;
}

struct confirm_owner *confirm_owner(const struct confirm *c)
{
    return c->owner;
}

void confirm_detach(struct confirm *c)
{
    c->owner = NULL;
    if (c->pending == 0) {
        confirm_free(c);
        return;
    }
    c->detached = true;
}
