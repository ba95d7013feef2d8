/* consume.c - the consuming half of a channel (see consume.h). Reply
 * texts and codes follow RabbitMQ's: client code and operators know them. */
#include "consume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "chan.h"
#include "conn.h"
#include "deadletter.h"
#include "feed.h"
#include "frame.h"
#include "log.h"
#include "replyto.h"
#include "server.h"
#include "topology.h"

/* Deliveries stop while a connection has this much unsent output, well
 * under the bound at which it stops reading (conn.c): a consumer slow to
 * read must still be heard when it acks. */
#define DELIVER_OUT_LIMIT (256u << 10)

struct consumer {
    struct consumer *next; /* the channel's consumers */
    struct chan *ch;
    struct feed *feed;
    char tag[256];
    bool no_ack, exclusive;
    bool reply;        /* the channel's direct reply-to consumer (replyto.h) */
    uint16_t prefetch; /* 0: unlimited */
    uint32_t unacked;
};

/* One delivery not yet settled, in the channel's tag order. */
struct unacked {
    uint64_t tag;
    struct feed_msg *m;    /* NULL once settled */
    struct consumer *cons; /* NULL for basic.get, or after the consumer went */
};

/* ---- helpers ---- */

static bool usable(const struct chan *ch)
{
    return ch->state == CHAN_OPEN && ch->conn->state == CONN_OPEN && !ch->conn->dead;
}

static void unacked_push(struct chan *ch, uint64_t tag, struct feed_msg *m, struct consumer *c)
{
    if (ch->un_head + ch->un_len == ch->un_cap) {
        if (ch->un_head > ch->un_cap / 2) {
            memmove(ch->unacked, ch->unacked + ch->un_head, ch->un_len * sizeof *ch->unacked);
            ch->un_head = 0;
        } else {
            ch->un_cap = ch->un_cap ? 2 * ch->un_cap : 64;
            ch->unacked = xrealloc(ch->unacked, ch->un_cap * sizeof *ch->unacked);
        }
    }
    ch->unacked[ch->un_head + ch->un_len++] = (struct unacked){tag, m, c};
    ch->n_unacked++;
}

/* Drop settled entries from the front. */
static void unacked_trim(struct chan *ch)
{
    while (ch->un_len && !ch->unacked[ch->un_head].m) {
        ch->un_head++;
        ch->un_len--;
    }
    if (!ch->un_len)
        ch->un_head = 0;
}

/* Index of tag among live entries, or -1. Tags only grow, so binary search. */
static long unacked_find(const struct chan *ch, uint64_t tag)
{
    size_t lo = 0, hi = ch->un_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t t = ch->unacked[ch->un_head + mid].tag;
        if (t == tag)
            return ch->unacked[ch->un_head + mid].m ? (long)mid : -1;
        if (t < tag)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Take entry i out: the consumer gets its credit back. */
static struct feed_msg *unacked_take(struct chan *ch, size_t i)
{
    struct unacked *u = &ch->unacked[ch->un_head + i];
    struct feed_msg *m = u->m;
    if (u->cons)
        u->cons->unacked--;
    u->m = NULL;
    ch->n_unacked--;
    return m;
}

/* After settlements: queues with freed credit or requeued records deal
 * again. */
static void redispatch(struct chan *ch, struct feed **touched, size_t n)
{
    for (size_t i = 0; i < n; i++)
        feed_dispatch(touched[i]);
    for (struct consumer *c = ch->consumers; c; c = c->next)
        feed_dispatch(c->feed);
}

static void note_feed(struct feed **touched, size_t *n, size_t cap, struct feed *f)
{
    for (size_t i = 0; i < *n; i++)
        if (touched[i] == f)
            return;
    if (*n < cap)
        touched[(*n)++] = f;
}

enum settle { SETTLE_ACK, SETTLE_REQUEUE, SETTLE_DROP };

/* RabbitMQ's collect_acks: the tag itself must be unacked; multiple takes
 * every unacked tag up to it; tag 0 with multiple takes them all. */
static void settle(struct chan *ch, uint64_t tag, bool multiple, enum settle how,
                   amqp_method_number_t id)
{
    size_t from, to; /* entries [from, to] */
    if (tag == 0 && multiple) {
        if (!ch->un_len)
            return;
        from = 0;
        to = ch->un_len - 1;
    } else {
        long i = unacked_find(ch, tag);
        if (i < 0) {
            char text[96];
            snprintf(text, sizeof text, "PRECONDITION_FAILED - unknown delivery tag %llu",
                     (unsigned long long)tag);
            chan_close(ch, AMQP_PRECONDITION_FAILED, text, id);
            return;
        }
        from = multiple ? 0 : (size_t)i;
        to = (size_t)i;
    }
    struct feed *touched[16];
    size_t n_touched = 0;
    for (size_t i = from; i <= to; i++) {
        if (!ch->unacked[ch->un_head + i].m)
            continue;
        struct feed_msg *m = unacked_take(ch, i);
        note_feed(touched, &n_touched, ARRAY_LEN(touched), m->feed);
        if (how == SETTLE_REQUEUE)
            feed_requeue(m);
        else if (how == SETTLE_ACK || !deadletter(ch->conn->srv->deadletters, m, ch->conn->vhost,
                                                  feed_queue_name(m->feed), "rejected"))
            feed_done(m);
    }
    unacked_trim(ch);
    redispatch(ch, touched, n_touched);
}

/* ---- deliveries ---- */

static bool output_has_room(const struct conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev)) < DELIVER_OUT_LIMIT;
}

bool consume_can_take(const struct consumer *cons)
{
    const struct chan *ch = cons->ch;
    if (!usable(ch) || !output_has_room(ch->conn))
        return false;
    if (cons->no_ack)
        return true;
    if (cons->prefetch && cons->unacked >= cons->prefetch)
        return false;
    return !ch->prefetch_global || ch->n_unacked < ch->prefetch_global;
}

bool consume_exclusive(const struct consumer *cons)
{
    return cons->exclusive;
}

static void put_content(struct chan *ch, const struct feed_msg *m)
{
    struct conn *c = ch->conn;
    if (frame_put_content(conn_out(c), ch->id, NULL, m->props, m->props_len, m->body, m->body_len,
                          c->frame_max))
        conn_close(c, AMQP_INTERNAL_ERROR, "INTERNAL_ERROR - cannot encode a delivery", 0);
}

void consume_deliver(struct consumer *cons, struct feed_msg *m)
{
    struct chan *ch = cons->ch;
    /* RabbitMQ 3.10 gives a reply the channel's next tag without using it
     * up: the next delivery or get carries the same tag. */
    uint64_t tag = cons->reply ? ch->next_tag + 1 : ++ch->next_tag;
    amqp_basic_deliver_t d = {
        .consumer_tag = amqp_cstring_bytes(cons->tag),
        .delivery_tag = tag,
        .redelivered = m->redelivered,
        .exchange = {m->exchange_len, m->exchange},
        .routing_key = {m->routing_key_len, m->routing_key},
    };
    chan_send(ch, AMQP_BASIC_DELIVER_METHOD, &d);
    put_content(ch, m);
    ch->conn->srv->stats.delivered++;
    if (cons->no_ack) {
        feed_done(m);
        return;
    }
    cons->unacked++;
    unacked_push(ch, tag, m, cons);
}

void consume_conn_writable(struct conn *c)
{
    for (uint32_t i = 0; i < c->n_chans; i++) {
        struct chan *ch = c->chans[i];
        if (!ch)
            continue;
        for (struct consumer *cons = ch->consumers; cons; cons = cons->next)
            feed_dispatch(cons->feed);
    }
}

/* ---- queues ---- */

/* The queue behind a consume or get, or NULL after closing the channel
 * with RabbitMQ's answer. */
static struct feed *queue_feed(struct chan *ch, amqp_bytes_t name, amqp_method_number_t id)
{
    struct conn *c = ch->conn;
    char q[256];
    if (!chan_queue_name(ch, q, name, id))
        return NULL;
    struct topo_reply r;
    topology_check_queue(c->srv->topo, c->vhost, q, c->id, &r);
    if (r.code != 200) {
        chan_close(ch, r.code, r.text, id);
        return NULL;
    }
    return feeds_get(c->srv->feeds, c->vhost, q);
}

/* ---- methods ---- */

static struct consumer *find_consumer(struct chan *ch, amqp_bytes_t tag)
{
    for (struct consumer *c = ch->consumers; c; c = c->next)
        if (strlen(c->tag) == tag.len && !memcmp(c->tag, tag.bytes, tag.len))
            return c;
    return NULL;
}

void consume_basic_consume(struct chan *ch, amqp_basic_consume_t *m)
{
    struct conn *c = ch->conn;
    if (m->consumer_tag.len > 255 || memchr(m->consumer_tag.bytes, '\0', m->consumer_tag.len)) {
        chan_close(ch, AMQP_PRECONDITION_FAILED,
                   "PRECONDITION_FAILED - consumer tag contains a NUL byte",
                   AMQP_BASIC_CONSUME_METHOD);
        return;
    }
    if (m->consumer_tag.len && find_consumer(ch, m->consumer_tag)) {
        char text[320];
        snprintf(text, sizeof text, "NOT_ALLOWED - attempt to reuse consumer tag '%.*s'",
                 (int)m->consumer_tag.len, (const char *)m->consumer_tag.bytes);
        conn_close(c, AMQP_NOT_ALLOWED, text, AMQP_BASIC_CONSUME_METHOD);
        return;
    }
    bool reply = replyto_is_pseudo(m->queue);
    struct feed *f = reply ? replyto_consume(ch, m->no_ack)
                           : queue_feed(ch, m->queue, AMQP_BASIC_CONSUME_METHOD);
    if (!f)
        return;
    if ((m->exclusive && feed_consumer_count(f)) || feed_has_exclusive(f)) {
        char text[600];
        snprintf(text, sizeof text, "ACCESS_REFUSED - queue '%s' in vhost '%s' in exclusive use",
                 feed_queue_name(f), c->vhost);
        chan_close(ch, AMQP_ACCESS_REFUSED, text, AMQP_BASIC_CONSUME_METHOD);
        return;
    }
    struct consumer *cons = xcalloc(1, sizeof *cons);
    cons->ch = ch;
    cons->feed = f;
    cons->no_ack = m->no_ack;
    cons->exclusive = m->exclusive;
    cons->reply = reply;
    cons->prefetch = ch->prefetch_next;
    if (m->consumer_tag.len) {
        memcpy(cons->tag, m->consumer_tag.bytes, m->consumer_tag.len);
        cons->tag[m->consumer_tag.len] = '\0';
    } else {
        random_name(cons->tag, "amq.ctag-");
    }
    cons->next = ch->consumers;
    ch->consumers = cons;
    if (!m->nowait) {
        amqp_basic_consume_ok_t ok = {amqp_cstring_bytes(cons->tag)};
        chan_send(ch, AMQP_BASIC_CONSUME_OK_METHOD, &ok);
    }
    feed_attach(f, cons);
}

/* Forget cons; its unacked deliveries stay with the channel, as on
 * RabbitMQ, and can still be acked. */
static void consumer_free(struct chan *ch, struct consumer *cons)
{
    for (struct consumer **pp = &ch->consumers; *pp; pp = &(*pp)->next) {
        if (*pp == cons) {
            *pp = cons->next;
            break;
        }
    }
    for (size_t i = 0; i < ch->un_len; i++)
        if (ch->unacked[ch->un_head + i].cons == cons)
            ch->unacked[ch->un_head + i].cons = NULL;
    if (cons->reply) /* its hidden queue goes with it (auto-delete) */
        ch->reply_queue[0] = '\0';
    feed_detach(cons->feed, cons);
    free(cons);
}

void consume_basic_cancel(struct chan *ch, amqp_basic_cancel_t *m)
{
    struct consumer *cons = find_consumer(ch, m->consumer_tag);
    if (cons)
        consumer_free(ch, cons);
    /* An unknown tag is not an error (RabbitMQ answers cancel-ok too). */
    if (!m->nowait) {
        amqp_basic_cancel_ok_t ok = {m->consumer_tag};
        chan_send(ch, AMQP_BASIC_CANCEL_OK_METHOD, &ok);
    }
}

void consume_cancelled_by_server(struct consumer *cons)
{
    struct chan *ch = cons->ch;
    if (usable(ch) && ch->conn->cap_cancel_notify) {
        amqp_basic_cancel_t m = {amqp_cstring_bytes(cons->tag), true};
        chan_send(ch, AMQP_BASIC_CANCEL_METHOD, &m);
    }
    consumer_free(ch, cons);
}

void consume_basic_qos(struct chan *ch, amqp_basic_qos_t *m)
{
    if (m->prefetch_size) {
        char text[96];
        snprintf(text, sizeof text, "NOT_IMPLEMENTED - prefetch_size!=0 (%u)", m->prefetch_size);
        conn_close(ch->conn, AMQP_NOT_IMPLEMENTED, text, AMQP_BASIC_QOS_METHOD);
        return;
    }
    if (m->global)
        ch->prefetch_global = m->prefetch_count;
    else
        ch->prefetch_next = m->prefetch_count;
    chan_send(ch, AMQP_BASIC_QOS_OK_METHOD, NULL);
    /* A raised limit lets queues deal again. */
    redispatch(ch, NULL, 0);
}

void consume_basic_get(struct chan *ch, amqp_basic_get_t *m)
{
    struct feed *f = queue_feed(ch, m->queue, AMQP_BASIC_GET_METHOD);
    if (!f)
        return;
    struct feed_msg *msg = feed_take(f);
    if (!msg) {
        chan_send(ch, AMQP_BASIC_GET_EMPTY_METHOD, &(amqp_basic_get_empty_t){amqp_empty_bytes});
        return;
    }
    uint64_t tag = ++ch->next_tag;
    amqp_basic_get_ok_t ok = {
        .delivery_tag = tag,
        .redelivered = msg->redelivered,
        .exchange = {msg->exchange_len, msg->exchange},
        .routing_key = {msg->routing_key_len, msg->routing_key},
        .message_count = (uint32_t)feed_ready_count(f),
    };
    chan_send(ch, AMQP_BASIC_GET_OK_METHOD, &ok);
    put_content(ch, msg);
    ch->conn->srv->stats.delivered++;
    if (m->no_ack)
        feed_done(msg);
    else
        unacked_push(ch, tag, msg, NULL);
}

void consume_basic_ack(struct chan *ch, amqp_basic_ack_t *m)
{
    settle(ch, m->delivery_tag, m->multiple, SETTLE_ACK, AMQP_BASIC_ACK_METHOD);
}

void consume_basic_nack(struct chan *ch, amqp_basic_nack_t *m)
{
    settle(ch, m->delivery_tag, m->multiple, m->requeue ? SETTLE_REQUEUE : SETTLE_DROP,
           AMQP_BASIC_NACK_METHOD);
}

void consume_basic_reject(struct chan *ch, amqp_basic_reject_t *m)
{
    settle(ch, m->delivery_tag, false, m->requeue ? SETTLE_REQUEUE : SETTLE_DROP,
           AMQP_BASIC_REJECT_METHOD);
}

void consume_basic_recover(struct chan *ch, bool requeue, amqp_method_number_t id)
{
    if (!requeue) {
        /* RabbitMQ does not redeliver to the same consumer either. */
        conn_close(ch->conn, AMQP_NOT_IMPLEMENTED, "NOT_IMPLEMENTED - requeue=false", id);
        return;
    }
    settle(ch, 0, true, SETTLE_REQUEUE, id);
    if (id == AMQP_BASIC_RECOVER_METHOD)
        chan_send(ch, AMQP_BASIC_RECOVER_OK_METHOD, NULL);
}

void consume_chan_closed(struct chan *ch)
{
    while (ch->consumers)
        consumer_free(ch, ch->consumers);
    struct feed *touched[16];
    size_t n = 0;
    for (size_t i = 0; i < ch->un_len; i++) {
        if (!ch->unacked[ch->un_head + i].m)
            continue;
        struct feed_msg *m = unacked_take(ch, i);
        note_feed(touched, &n, ARRAY_LEN(touched), m->feed);
        feed_requeue(m);
    }
    free(ch->unacked);
    ch->unacked = NULL;
    ch->un_head = ch->un_len = ch->un_cap = 0;
    for (size_t i = 0; i < n; i++)
        feed_dispatch(touched[i]);
}
