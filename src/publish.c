/* publish.c - basic.publish assembled into a Kafka record, and the
 * channel's publisher confirms (see publish.h). */
#include "publish.h"

#include <stdio.h>
#include <string.h>

#include "chan.h"
#include "conn.h"
#include "feed.h"
#include "intake.h"
#include "log.h"
#include "qargs.h"
#include "record.h"
#include "replyto.h"
#include "router.h"
#include "wire.h"

void publish_discard(struct chan *ch)
{
    if (ch->content == CONTENT_AWAIT_BODY)
        ch->conn->assembling -= ch->body_size;
    FREE_AND_NULL(ch->body);
    ch->content = CONTENT_NONE;
    ch->body_size = ch->body_have = 0;
}

void publish_drop_parked(struct chan *ch)
{
    if (!ch->has_parked)
        return;
    ch->has_parked = false;
    FREE_AND_NULL(ch->parked.body);
    rd_kafka_headers_destroy(ch->parked.headers);
    /* Never handed to Kafka: the publisher must republish. */
    if (ch->parked.tracker && confirm_resolve(ch->parked.tracker, ch->parked.tag, false))
        ch->parked.tracker = NULL;
    if (ch->conn->parked == ch)
        ch->conn->parked = NULL;
}

static void emit_confirm(void *arg, uint64_t tag, bool multiple, bool ack)
{
    struct chan *ch = arg;
    struct server *srv = ch->conn->srv;
    if (ack) {
        amqp_basic_ack_t m = {tag, multiple};
        chan_send(ch, AMQP_BASIC_ACK_METHOD, &m);
        srv->stats.acks_sent++;
    } else {
        amqp_basic_nack_t m = {tag, multiple, 0};
        chan_send(ch, AMQP_BASIC_NACK_METHOD, &m);
        srv->stats.nacks_sent++;
    }
}

void publish_update_limits(struct chan *ch)
{
    struct conn *c = ch->conn;
    uint32_t max = c->srv->cfg->max_unconfirmed;
    bool over = (ch->confirm && confirm_unconfirmed(ch->confirm) >= max) || intake_held(ch) >= max;
    if (over == ch->over_limit)
        return;
    ch->over_limit = over;
    if (over)
        c->n_over_limit++;
    else
        c->n_over_limit--;
    conn_update_reading(c);
}

static void flush_owned(struct confirm_owner *o)
{
    publish_flush_confirms(CONTAINER_OF(o, struct chan, owner));
}

void publish_flush_confirms(struct chan *ch)
{
    if (!ch->confirm)
        return;
    /* After a close, only close/close-ok may be sent on the channel or the
     * connection; the outcomes are dropped (the client saw the close). */
    if (ch->state == CHAN_OPEN && ch->conn->state == CONN_OPEN)
        confirm_flush(ch->confirm, emit_confirm, ch);
    publish_update_limits(ch);
}

void publish_confirm_select(struct chan *ch, amqp_confirm_select_t *m)
{
    if (!ch->confirm) {
        ch->confirm = confirm_new();
        ch->owner.flush = flush_owned;
        confirm_set_owner(ch->confirm, &ch->owner);
    }
    if (!m->nowait)
        chan_send(ch, AMQP_CONFIRM_SELECT_OK_METHOD, NULL);
}

void publish_begin(struct chan *ch, amqp_basic_publish_t *m)
{
    struct conn *c = ch->conn;
    c->published = true;
    if (m->immediate) {
        conn_close(c, AMQP_NOT_IMPLEMENTED, "NOT_IMPLEMENTED - immediate=true",
                   AMQP_BASIC_PUBLISH_METHOD);
        return;
    }
    char x[256];
    if (!chan_copy_name(ch, x, m->exchange, AMQP_BASIC_PUBLISH_METHOD))
        return;
    const struct exchange *e = topology_exchange(c->srv->topo, c->vhost, x);
    char text[640];
    if (!e) {
        snprintf(text, sizeof text, "NOT_FOUND - no exchange '%s' in vhost '%s'", x, c->vhost);
        chan_close(ch, AMQP_NOT_FOUND, text, AMQP_BASIC_PUBLISH_METHOD);
        return;
    }
    if (e->internal) {
        snprintf(text, sizeof text,
                 "ACCESS_REFUSED - cannot publish to internal exchange '%s' in vhost '%s'", x,
                 c->vhost);
        chan_close(ch, AMQP_ACCESS_REFUSED, text, AMQP_BASIC_PUBLISH_METHOD);
        return;
    }
    memcpy(ch->exchange, m->exchange.bytes, m->exchange.len);
    ch->exchange_len = (uint8_t)m->exchange.len;
    memcpy(ch->routing_key, m->routing_key.bytes, m->routing_key.len);
    ch->routing_key_len = (uint8_t)m->routing_key.len;
    ch->mandatory = m->mandatory;
    ch->content = CONTENT_AWAIT_HEADER;
}

void publish_send_return(struct chan *ch, uint16_t code, const char *text,
                         const struct intake_pub *p)
{
    struct conn *c = ch->conn;
    /* reply-text is a short string */
    size_t len = strlen(text);
    amqp_basic_return_t m = {
        code,
        {len > 255 ? 255 : len, (void *)text},
        {p->exchange_len, (void *)p->exchange},
        {p->routing_key_len, (void *)p->routing_key},
    };
    chan_send(ch, AMQP_BASIC_RETURN_METHOD, &m);
    if (frame_put_content(conn_out(c), ch->id, NULL, p->raw_props, p->raw_props_len, p->m.body,
                          p->m.body_len, c->frame_max))
        conn_close(c, AMQP_INTERNAL_ERROR, "INTERNAL_ERROR - cannot encode basic.return",
                   AMQP_BASIC_RETURN_METHOD);
    c->srv->stats.returned++;
}

/* The publish assembled on the channel, as intake.h takes it (the strings
 * borrowed from the channel). */
static struct intake_pub assembled(struct chan *ch)
{
    return (struct intake_pub){
        .m = {.body = ch->body, .body_len = ch->body_size},
        .mandatory = ch->mandatory,
        .exchange = ch->exchange,
        .exchange_len = ch->exchange_len,
        .routing_key = ch->routing_key,
        .routing_key_len = ch->routing_key_len,
        .raw_props = ch->raw_props.data,
        .raw_props_len = ch->raw_props.len,
    };
}

static void send_return(struct chan *ch)
{
    struct intake_pub p = assembled(ch);
    publish_send_return(ch, AMQP_NO_ROUTE, "NO_ROUTE", &p);
}

void publish_park(struct chan *ch, const struct sink_msg *m)
{
    ch->has_parked = true;
    ch->parked = *m;
    snprintf(ch->parked_topic, sizeof ch->parked_topic, "%s", m->topic);
    ch->parked.topic = ch->parked_topic;
    ch->parked_key.len = 0;
    if (m->key) {
        buf_append(&ch->parked_key, m->key, m->key_len);
        ch->parked.key = ch->parked_key.data;
    }
    ch->conn->parked = ch;
    conn_update_reading(ch->conn);
}

bool publish_retry_parked(struct chan *ch)
{
    if (!ch->has_parked)
        return true;
    if (sink_produce(ch->conn->srv->sink, &ch->parked) == SINK_FULL)
        return false;
    ch->has_parked = false;
    ch->conn->parked = NULL;
    intake_release(ch);
    return true;
}

/* The transient queues (feed.h) the publish reaches take their copies.
 * expiration: the message's, checked, or NULL. A direct reply-to queue's
 * name (replyto.h) goes nowhere else, whether or not it still exists. */
static void to_transient_queues(struct chan *ch, const amqp_basic_properties_t *props,
                                const int64_t *expiration, struct feed_routed *out)
{
    struct conn *c = ch->conn;
    struct feed_src src = {
        ch->exchange,
        ch->exchange_len,
        ch->routing_key,
        ch->routing_key_len,
        ch->raw_props.data,
        ch->raw_props.len,
        ch->body,
        ch->body_size,
        props->_flags & AMQP_BASIC_HEADERS_FLAG ? &props->headers : NULL,
        expiration,
    };
    feeds_route_transient(c->srv->feeds, c->vhost, &src, out);
    if (replyto_is_reply(ch->exchange_len, ch->routing_key, ch->routing_key_len))
        out->only_here = true;
}

static void complete_publish(struct chan *ch)
{
    struct conn *c = ch->conn;
    struct server *srv = c->srv;
    amqp_basic_properties_t *props = NULL;
    amqp_bytes_t enc = {ch->raw_props.len, ch->raw_props.data};
    if (amqp_decode_properties(AMQP_BASIC_CLASS, &c->pool, enc, (void **)&props) < 0) {
        publish_discard(ch);
        conn_close(c, AMQP_SYNTAX_ERROR, "SYNTAX_ERROR - cannot decode content header properties",
                   AMQP_BASIC_PUBLISH_METHOD);
        return;
    }
    if (srv->feeds && !replyto_rewrite(ch, &props)) {
        publish_discard(ch);
        return;
    }
    int64_t ttl;
    char text[400];
    bool expires = props->_flags & AMQP_BASIC_EXPIRATION_FLAG;
    if (expires && !qargs_expiration(props->expiration, &ttl, text, sizeof text)) {
        publish_discard(ch);
        chan_close(ch, AMQP_PRECONDITION_FAILED, text, AMQP_BASIC_PUBLISH_METHOD);
        return;
    }
    srv->stats.published++;
    uint64_t tag = ch->confirm ? confirm_next(ch->confirm) : 0;
    struct feed_routed mem = {0};
    if (srv->feeds)
        to_transient_queues(ch, props, expires ? &ttl : NULL, &mem);
    bool in_memory = mem.taken || mem.rejected;
    struct buf *scratch = &srv->scratch;
    struct route_target target;
    enum route_status rs =
        mem.only_here ? ROUTE_UNROUTABLE
                      : router_route(srv->router, c->vhost, ch->exchange, ch->exchange_len,
                                     ch->routing_key, ch->routing_key_len, scratch, &target);
    if (rs == ROUTE_UNROUTABLE) {
        /* RabbitMQ 3.10 routes a reply to no queue: mandatory returns it,
         * delivered or not. */
        bool routed =
            in_memory && !replyto_is_reply(ch->exchange_len, ch->routing_key, ch->routing_key_len);
        if (!routed && ch->mandatory)
            send_return(ch);
        else if (!in_memory)
            srv->stats.unroutable_dropped++;
        /* RabbitMQ acks unroutable messages, and transient ones once
         * queued (nacks them when a queue refused one): there is nothing
         * to persist. When the message goes to Kafka too, Kafka's outcome
         * is the confirm, even if a transient queue refused its copy. */
        if (ch->confirm && !confirm_resolve(ch->confirm, tag, !mem.rejected))
            server_mark_dirty(srv, &ch->owner);
        publish_discard(ch);
        if (in_memory)
            server_update_blocked(srv);
        return;
    }
    struct record_src src = {
        ch->exchange, ch->exchange_len,   ch->routing_key,   ch->routing_key_len,
        props,        ch->raw_props.data, ch->raw_props.len,
    };
    struct intake_pub p = assembled(ch);
    p.m.topic = target.topic;
    p.m.headers = record_headers(&src);
    p.m.tracker = ch->confirm;
    p.m.tag = tag;
    p.contract = target.contract;
    p.in_memory = in_memory;
    p.memory_refused = mem.rejected;
    record_key(&src, &target, &srv->key_scratch, &p.m.key, &p.m.key_len);
    /* intake owns the body from here. */
    ch->body = NULL;
    intake_publish(ch, &p);
    publish_discard(ch);
    server_update_blocked(srv);
    if (ch->confirm)
        publish_update_limits(ch);
}

void publish_header(struct chan *ch, const struct frame *f)
{
    struct conn *c = ch->conn;
    if (ch->content != CONTENT_AWAIT_HEADER) {
        conn_close(c, AMQP_UNEXPECTED_FRAME, "UNEXPECTED_FRAME - content header without a method",
                   0);
        return;
    }
    const uint8_t *p = f->payload;
    if (f->size < 14) {
        conn_close(c, AMQP_FRAME_ERROR, "FRAME_ERROR - content header too short", 0);
        return;
    }
    uint16_t class_id = (uint16_t)(p[0] << 8 | p[1]);
    uint64_t size = 0;
    for (int i = 4; i < 12; i++)
        size = size << 8 | p[i];
    if (class_id != AMQP_BASIC_CLASS) {
        conn_close(c, AMQP_UNEXPECTED_FRAME,
                   "UNEXPECTED_FRAME - expected content header for class 60", 0);
        return;
    }
    if (wire_check_basic_properties(p + 12, f->size - 12, c->srv->cfg->max_table_depth)) {
        conn_close(c, AMQP_SYNTAX_ERROR,
                   "SYNTAX_ERROR - malformed properties, or headers nested deeper than allowed",
                   AMQP_BASIC_PUBLISH_METHOD);
        return;
    }
    uint32_t max = c->srv->cfg->max_message_size;
    if (size > max) {
        char text[160];
        snprintf(text, sizeof text,
                 "PRECONDITION_FAILED - message size %llu is larger than configured max size %u",
                 (unsigned long long)size, max);
        chan_close(ch, AMQP_PRECONDITION_FAILED, text, AMQP_BASIC_PUBLISH_METHOD);
        return;
    }
    /* Bodies are kept until their last byte arrives and count nowhere else:
     * one connection may not park more than one maximal message in them,
     * however many channels it opens. */
    if (c->assembling + size > max) {
        char text[200];
        snprintf(text, sizeof text,
                 "PRECONDITION_FAILED - message bodies in progress on this connection would "
                 "exceed %u bytes",
                 max);
        chan_close(ch, AMQP_PRECONDITION_FAILED, text, AMQP_BASIC_PUBLISH_METHOD);
        return;
    }
    c->assembling += size;
    ch->raw_props.len = 0;
    buf_append(&ch->raw_props, p + 12, f->size - 12);
    ch->body_size = size;
    ch->body_have = 0;
    ch->body = xmalloc(size ? size : 1);
    ch->content = CONTENT_AWAIT_BODY;
    if (size == 0)
        complete_publish(ch);
}

void publish_body(struct chan *ch, const struct frame *f)
{
    if (ch->content != CONTENT_AWAIT_BODY) {
        conn_close(ch->conn, AMQP_UNEXPECTED_FRAME,
                   "UNEXPECTED_FRAME - content body without a content header", 0);
        return;
    }
    if (f->size > ch->body_size - ch->body_have) {
        conn_close(ch->conn, AMQP_FRAME_ERROR,
                   "FRAME_ERROR - content body longer than the header announced", 0);
        return;
    }
    memcpy(ch->body + ch->body_have, f->payload, f->size);
    ch->body_have += f->size;
    if (ch->body_have == ch->body_size)
        complete_publish(ch);
}
