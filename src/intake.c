/* intake.c - the topic rule and contracts on the way to the sink, and the
 * publishes held for an answer (see intake.h). */
#include "intake.h"

#include <stdio.h>
#include <string.h>

#include "chan.h"
#include "conn.h"
#include "contract.h"
#include "log.h"
#include "publish.h"
#include "server.h"
#include "topicrule.h"

/* A held publish: its own copies of what intake_pub borrows. */
struct held {
    struct held *next;
    struct intake_pub p;
    char topic[256];
    char exchange[256], routing_key[256];
    void *key, *raw_props;
    size_t bytes; /* the body as held, counted in the server's held_bytes */
    int64_t since_ms;
};

/* How often held publishes look at their deadline (registry.wait,
 * TOPICRULE_WAIT_MS). */
#define HOLD_TICK_MS 50

enum step {
    STEP_DONE,
    STEP_WAIT_TOPIC,  /* Kafka is asked whether the topic exists */
    STEP_WAIT_SCHEMA, /* the contract's schema is being fetched */
};

static void settle(struct chan *ch, struct sink_msg *m, bool ack)
{
    struct server *srv = ch->conn->srv;
    if (m->tracker && !confirm_resolve(m->tracker, m->tag, ack))
        server_mark_dirty(srv, &ch->owner);
    FREE_AND_NULL(m->body);
    rd_kafka_headers_destroy(m->headers);
    m->headers = NULL;
}

static void produce(struct chan *ch, struct sink_msg *m)
{
    struct server *srv = ch->conn->srv;
    if (sink_produce(srv->sink, m) == SINK_FULL)
        publish_park(ch, m);
}

/* The reason headers of a dead-lettered record. */
static void dead_letter(struct chan *ch, struct intake_pub *p, const char *subject, const char *why)
{
    struct server *srv = ch->conn->srv;
    char topic[300];
    contract_dead_letter_topic(p->contract, p->m.topic, topic, sizeof topic);
    if (!p->m.headers)
        p->m.headers = rd_kafka_headers_new(3);
    (void)rd_kafka_header_add(p->m.headers, "hopper.contract.error", -1, why, -1);
    (void)rd_kafka_header_add(p->m.headers, "hopper.contract.subject", -1, subject, -1);
    (void)rd_kafka_header_add(p->m.headers, "hopper.contract.topic", -1, p->m.topic, -1);
    struct sink_msg m = p->m;
    m.topic = topic;
    srv->stats.contract_dead_lettered++;
    produce(ch, &m);
}

static void refuse(struct chan *ch, struct intake_pub *p, const char *why)
{
    struct server *srv = ch->conn->srv;
    char subject[CONTRACT_SUBJECT_MAX], text[CONTRACT_SUBJECT_MAX + 600];
    contract_subject(p->contract, p->m.topic, subject, sizeof subject);
    if (p->mandatory) {
        snprintf(text, sizeof text, "PRECONDITION_FAILED - contract %s: %s", subject, why);
        publish_send_return(ch, AMQP_PRECONDITION_FAILED, text, p);
    }
    srv->stats.contract_refused++;
    if (p->contract->dead_letter) {
        dead_letter(ch, p, subject, why);
        return;
    }
    if (ch->refused && p->m.tracker)
        ch->refused(ch, p->m.tag);
    settle(ch, &p->m, false);
}

/* The topic may not be created and does not exist (topicrule.h): the
 * publish is unroutable, with the outcome of one no route matches
 * (publish.c): basic.return 312 to a mandatory publisher, then the ack. */
static void unroutable(struct chan *ch, struct intake_pub *p, const struct topicrule_refusal *r)
{
    struct server *srv = ch->conn->srv;
    if (r->log)
        log_warn("%s: unroutable: topic %s does not exist and %s (%lu such lines left out "
                 "since the last one)",
                 ch->conn->name, p->m.topic, r->why, r->left_out);
    if (!p->in_memory && p->mandatory)
        publish_send_return(ch, AMQP_NO_ROUTE, "NO_ROUTE", p);
    else if (!p->in_memory)
        srv->stats.unroutable_dropped++;
    srv->stats.topic_refused++;
    /* A bridged delivery is refused upstream rather than acked (dropped). */
    if (ch->refused && p->m.tracker) {
        ch->refused(ch, p->m.tag);
        settle(ch, &p->m, false);
        return;
    }
    settle(ch, &p->m, !p->memory_refused);
}

/* Check and hand over one publish, unless an answer it needs is not there
 * yet. */
static enum step try_one(struct chan *ch, struct intake_pub *p)
{
    struct server *srv = ch->conn->srv;
    struct topicrule_refusal refusal;
    switch (sink_topic_check(srv->sink, p->m.topic, &refusal)) {
    case TOPICRULE_ALLOWED:
        break;
    case TOPICRULE_UNKNOWN:
        return STEP_WAIT_TOPIC;
    case TOPICRULE_FORBIDDEN:
        unroutable(ch, p, &refusal);
        return STEP_DONE;
    }
    if (!p->contract) {
        produce(ch, &p->m);
        return STEP_DONE;
    }
    char why[512];
    struct buf *out = &srv->contract_scratch;
    switch (contracts_check(srv->contracts, p->contract, p->m.topic, p->m.body, p->m.body_len, out,
                            why, sizeof why)) {
    case CONTRACT_WAIT:
        return STEP_WAIT_SCHEMA;
    case CONTRACT_PASS:
        if (out->len) {
            free(p->m.body);
            p->m.body = xmalloc(out->len);
            memcpy(p->m.body, out->data, out->len);
            p->m.body_len = out->len;
        }
        produce(ch, &p->m);
        return STEP_DONE;
    case CONTRACT_VIOLATION:
        refuse(ch, p, why);
        return STEP_DONE;
    case CONTRACT_UNAVAILABLE:
        break;
    }
    srv->stats.contract_unavailable++;
    log_debug("%s: nack: %s", ch->conn->name, why);
    settle(ch, &p->m, false);
    return STEP_DONE;
}

static void holding_add(struct chan *ch)
{
    struct server *srv = ch->conn->srv;
    ch->hold_prev = NULL;
    ch->hold_next = srv->holding;
    if (srv->holding)
        srv->holding->hold_prev = ch;
    srv->holding = ch;
    srv->n_holding++;
    if (srv->n_holding == 1) {
        struct timeval tick = {0, HOLD_TICK_MS * 1000};
        if (event_add(srv->hold_timer, &tick) == -1)
            log_error("cannot arm the timer of held publishes: they wait for their schema");
    }
}

static void holding_remove(struct chan *ch)
{
    struct server *srv = ch->conn->srv;
    if (ch->hold_prev)
        ch->hold_prev->hold_next = ch->hold_next;
    else
        srv->holding = ch->hold_next;
    if (ch->hold_next)
        ch->hold_next->hold_prev = ch->hold_prev;
    ch->hold_prev = ch->hold_next = NULL;
    if (--srv->n_holding == 0)
        event_del(srv->hold_timer);
}

static void hold(struct chan *ch, const struct intake_pub *p)
{
    struct server *srv = ch->conn->srv;
    struct held *h = xcalloc(1, sizeof *h);
    h->p = *p;
    snprintf(h->topic, sizeof h->topic, "%s", p->m.topic);
    h->p.m.topic = h->topic;
    memcpy(h->exchange, p->exchange, p->exchange_len);
    h->p.exchange = h->exchange;
    memcpy(h->routing_key, p->routing_key, p->routing_key_len);
    h->p.routing_key = h->routing_key;
    if (p->m.key) {
        h->key = xmalloc(p->m.key_len ? p->m.key_len : 1);
        memcpy(h->key, p->m.key, p->m.key_len);
        h->p.m.key = h->key;
    }
    h->raw_props = xmalloc(p->raw_props_len ? p->raw_props_len : 1);
    memcpy(h->raw_props, p->raw_props, p->raw_props_len);
    h->p.raw_props = h->raw_props;
    h->since_ms = (int64_t)monotonic_ms();
    if (ch->held_tail)
        ch->held_tail->next = h;
    else
        ch->held_head = h;
    ch->held_tail = h;
    if (ch->n_held++ == 0)
        holding_add(ch);
    h->bytes = p->m.body_len;
    srv->held_bytes += h->bytes;
    publish_update_limits(ch);
}

static void held_free(struct held *h)
{
    free(h->key);
    free(h->raw_props);
    free(h);
}

/* The head is done with: unlink it. */
static void pop(struct chan *ch)
{
    struct server *srv = ch->conn->srv;
    struct held *h = ch->held_head;
    ch->held_head = h->next;
    if (!ch->held_head)
        ch->held_tail = NULL;
    srv->held_bytes -= h->bytes;
    held_free(h);
    if (--ch->n_held == 0)
        holding_remove(ch);
}

void intake_publish(struct chan *ch, struct intake_pub *p)
{
    if (ch->held_head || try_one(ch, p) != STEP_DONE)
        hold(ch, p);
}

/* The held publish waited for its answer as long as it may: nack it. */
static bool expired(struct chan *ch, struct held *h, enum step waiting)
{
    struct server *srv = ch->conn->srv;
    int64_t waited = (int64_t)monotonic_ms() - h->since_ms;
    if (waiting == STEP_WAIT_TOPIC) {
        if (waited < TOPICRULE_WAIT_MS)
            return false;
        log_warn("%s: nack: Kafka did not say within %d ms whether topic %s exists", ch->conn->name,
                 TOPICRULE_WAIT_MS, h->topic);
        srv->stats.topic_unanswered++;
    } else {
        if (waited < (int64_t)srv->cfg->registry_wait_ms)
            return false;
        log_warn("%s: nack: no schema for topic %s within registry.wait (%u ms)", ch->conn->name,
                 h->topic, srv->cfg->registry_wait_ms);
        srv->stats.contract_unavailable++;
    }
    return true;
}

void intake_release(struct chan *ch)
{
    struct server *srv = ch->conn->srv;
    size_t before = ch->n_held;
    /* A connection parks one publish at a time (publish.h): while one of
     * its channels has one parked, the others' held publishes wait (the
     * hold timer comes back to them). */
    while (ch->held_head && !ch->conn->parked) {
        struct held *h = ch->held_head;
        enum step st = try_one(ch, &h->p);
        if (st != STEP_DONE) {
            if (!expired(ch, h, st))
                break;
            settle(ch, &h->p.m, false);
        }
        pop(ch);
    }
    if (ch->n_held != before) {
        publish_update_limits(ch);
        server_update_blocked(srv);
    }
}

void intake_release_all(struct server *srv)
{
    struct chan *next;
    for (struct chan *ch = srv->holding; ch; ch = next) {
        next = ch->hold_next;
        intake_release(ch);
    }
    server_flush_confirms(srv);
}

void intake_drop(struct chan *ch)
{
    while (ch->held_head) {
        settle(ch, &ch->held_head->p.m, false);
        pop(ch);
    }
}

size_t intake_held(const struct chan *ch)
{
    return ch->n_held;
}
