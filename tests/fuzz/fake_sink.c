/* fake_sink.c - an in-process stand-in for src/sink.c, for the fuzz
 * harnesses: no librdkafka producer, no threads, no timers.
 *
 * It keeps src/sink.c's contract (include/sink.h): sink_produce takes
 * ownership of body and headers on SINK_OK and SINK_FAILED and none on
 * SINK_FULL; an outcome is reported through confirm_resolve and the
 * `resolved` callback, and each batch of reports ends with `drained`.
 * Reports are queued and delivered from an event made active by hand (the
 * next loop iteration, no real time involved), in order or newest first,
 * or held until the harness releases them. The outcome of each message
 * (ack, nack, refusal) follows the policy the harness sets from its input,
 * so a run is deterministic.
 *
 * Every produced message is read through (topic, key, body, headers) so
 * that ASan sees any buffer the server hands over that is too short. */
#include "fake_sink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "router.h"

struct report {
    struct confirm *tracker;
    uint64_t tag;
    uint64_t cost;
    bool ok;
};

struct sink {
    struct event_base *base;
    const struct config *cfg;
    struct sink_callbacks cb;
    struct event *drain_ev;
    unsigned policy;
    bool held;

    struct report *queue; /* reports not yet delivered */
    size_t n_queue, cap_queue;

    size_t in_flight;
    uint64_t bytes_in_flight;
    uint64_t seq; /* messages offered, for the mixed outcome patterns */
    unsigned long settled;
    volatile uint8_t sink_hole; /* keeps the read-through from being optimised away */
    struct sink_stats stats;
};

static void settle(struct sink *s, const struct report *r)
{
    s->in_flight--;
    s->bytes_in_flight -= r->cost;
    s->settled++;
    if (r->ok)
        s->stats.persisted++;
    else
        s->stats.failed++;
    if (r->tracker && !confirm_resolve(r->tracker, r->tag, r->ok)) {
        void *owner = confirm_owner(r->tracker);
        if (owner)
            s->cb.resolved(s->cb.arg, owner);
    }
}

/* Deliver every queued report, then tell the server the batch is done.
 * Reports queued by the server while it handles `drained` (a parked
 * publish handed over again) wait for the next batch. */
static void deliver(struct sink *s)
{
    size_t n = s->n_queue;
    struct report *batch = s->queue;
    s->queue = NULL;
    s->n_queue = s->cap_queue = 0;
    for (size_t i = 0; i < n; i++)
        settle(s, &batch[(s->policy & FAKE_SINK_REVERSE) ? n - 1 - i : i]);
    free(batch);
    s->cb.drained(s->cb.arg);
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    struct sink *s = arg;
    if (!s->held)
        deliver(s);
}

static void schedule(struct sink *s)
{
    if (!s->held && s->n_queue)
        event_active(s->drain_ev, EV_TIMEOUT, 1);
}

struct sink *sink_new(struct event_base *base, const struct config *cfg,
                      const struct sink_callbacks *cb, char *err, size_t errlen)
{
    struct sink *s = xcalloc(1, sizeof *s);
    s->base = base;
    s->cfg = cfg;
    s->cb = *cb;
    s->drain_ev = event_new(base, -1, 0, on_drain, s);
    if (!s->drain_ev) {
        snprintf(err, errlen, "fake sink: event_new failed");
        free(s);
        return NULL;
    }
    return s;
}

void fake_sink_set_policy(struct sink *s, unsigned policy)
{
    s->policy = policy;
    s->held = (policy & FAKE_SINK_HOLD) != 0;
}

void fake_sink_release(struct sink *s)
{
    s->held = false;
    schedule(s);
}

size_t fake_sink_pending(const struct sink *s)
{
    return s->n_queue;
}

unsigned long fake_sink_settled(const struct sink *s)
{
    return s->settled;
}

void sink_abandon(struct sink *s)
{
    if (!s->in_flight)
        return;
    for (size_t i = 0; i < s->n_queue; i++)
        s->queue[i].ok = false;
    bool held = s->held;
    s->held = false;
    deliver(s);
    s->held = held;
}

void sink_free(struct sink *s)
{
    if (!s)
        return;
    sink_abandon(s);
    if (s->in_flight)
        abort(); /* every produced message must have had its report */
    event_free(s->drain_ev);
    free(s->queue);
    free(s);
}

/* Touch every byte the server hands over, and check what must hold for
 * librdkafka to accept the message. */
static void read_through(struct sink *s, const struct sink_msg *m)
{
    uint8_t acc = 0;
    if (!m->topic || !router_topic_valid(m->topic, strlen(m->topic)))
        abort(); /* the router only hands out legal topic names */
    if (m->body_len && !m->body)
        abort();
    for (size_t i = 0; i < m->body_len; i++)
        acc ^= ((const uint8_t *)m->body)[i];
    if (m->key)
        for (size_t i = 0; i < m->key_len; i++)
            acc ^= ((const uint8_t *)m->key)[i];
    if (m->headers) {
        const char *name;
        const void *val;
        size_t size;
        for (size_t i = 0; rd_kafka_header_get_all(m->headers, i, &name, &val, &size) ==
                           RD_KAFKA_RESP_ERR_NO_ERROR;
             i++) {
            acc ^= (uint8_t)strlen(name);
            for (size_t j = 0; j < size; j++)
                acc ^= ((const uint8_t *)val)[j];
        }
    }
    s->sink_hole = acc;
}

enum sink_status sink_produce(struct sink *s, struct sink_msg *m)
{
    if ((s->policy & FAKE_SINK_SMALL_QUEUE) && s->in_flight >= 2)
        return SINK_FULL; /* nothing taken: the server parks the message */
    read_through(s, m);
    uint64_t seq = ++s->seq;
    unsigned mode = s->policy & FAKE_SINK_OUTCOME_MASK;
    struct report r = {m->tracker, m->tag, m->body_len + m->key_len + FAKE_SINK_MSG_OVERHEAD,
                       mode == 0 || (mode >= 2 && seq % 3 != 0)};
    /* The sink owns body and headers from here. */
    FREE_AND_NULL(m->body);
    rd_kafka_headers_destroy(m->headers);
    m->headers = NULL;
    s->in_flight++;
    s->bytes_in_flight += r.cost;
    if (mode == 3 && seq % 5 == 4) {
        /* Refused at once (as sink.c does for an over-size message): nacked
         * before sink_produce returns. */
        r.ok = false;
        settle(s, &r);
        return SINK_FAILED;
    }
    s->stats.produced++;
    if (s->n_queue == s->cap_queue) {
        s->cap_queue = s->cap_queue ? s->cap_queue * 2 : 16;
        s->queue = xrealloc(s->queue, s->cap_queue * sizeof *s->queue);
    }
    s->queue[s->n_queue++] = r;
    schedule(s);
    return SINK_OK;
}

bool sink_over_limit(const struct sink *s)
{
    return s->bytes_in_flight >= FAKE_SINK_MAX_INFLIGHT_BYTES;
}

bool sink_under_resume(const struct sink *s)
{
    return s->bytes_in_flight <= FAKE_SINK_MAX_INFLIGHT_BYTES / 100 * 75;
}

size_t sink_in_flight(const struct sink *s)
{
    return s->in_flight;
}

/* A fatal producer error in the real sink nacks everything in flight and
 * goes on with a new producer: the same, without the producer. */
void sink_inject_fatal(struct sink *s, const char *reason)
{
    for (size_t i = 0; i < s->n_queue; i++)
        s->queue[i].ok = false;
    s->stats.fatal_rebuilds++;
    bool held = s->held;
    s->held = false;
    deliver(s);
    s->held = held;
}

const struct sink_stats *sink_stats(const struct sink *s)
{
    return &s->stats;
}

/* Every topic exists here: the rule's questions go to a real Kafka. */
enum topicrule_answer sink_topic_check(struct sink *s, const char *topic,
                                       struct topicrule_refusal *refusal)
{
    (void)s;
    (void)topic;
    (void)refusal;
    return TOPICRULE_ALLOWED;
}

void sink_ensure_topic(struct sink *s, const char *topic)
{
    (void)s;
    (void)topic;
}
