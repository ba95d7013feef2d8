/* chan.c - channel methods, publish assembly and confirms (see chan.h). */
#include "chan.h"

#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "consume.h"
#include "deadletter.h"
#include "feed.h"
#include "log.h"
#include "record.h"
#include "router.h"
#include "wire.h"

static void flush_owned(struct confirm_owner *o);

struct chan *chan_new(struct conn *c, uint16_t id)
{
    struct chan *ch = xcalloc(1, sizeof *ch);
    ch->owner.flush = flush_owned;
    ch->conn = c;
    ch->id = id;
    ch->state = CHAN_OPEN;
    ch->active = true;
    return ch;
}

/* A reply that waited on Kafka (placing) is no longer wanted. */
static void stop_waiting(struct chan *ch)
{
    if (!ch->placing)
        return;
    feeds_place_cancel(ch->placing);
    ch->placing = NULL;
    ch->conn->awaiting--;
    conn_update_reading(ch->conn);
}

static void discard_publish(struct chan *ch)
{
    if (ch->content == CONTENT_AWAIT_BODY)
        ch->conn->assembling -= ch->body_size;
    FREE_AND_NULL(ch->body);
    ch->content = CONTENT_NONE;
    ch->body_size = ch->body_have = 0;
}

static void drop_parked(struct chan *ch)
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

void chan_free(struct chan *ch)
{
    struct conn *c = ch->conn;
    drop_parked(ch);
    discard_publish(ch);
    stop_waiting(ch);
    consume_chan_closed(ch);
    if (ch->over_limit)
        c->n_over_limit--;
    server_forget_owner(c->srv, &ch->owner);
    if (ch->confirm)
        confirm_detach(ch->confirm);
    buf_free(&ch->raw_props);
    buf_free(&ch->parked_key);
    conn_forget_chan(c, ch->id);
    free(ch);
}

static void send_method(struct chan *ch, amqp_method_number_t id, void *m)
{
    if (frame_put_method(conn_out(ch->conn), ch->id, id, m))
        conn_close(ch->conn, AMQP_INTERNAL_ERROR, "INTERNAL_ERROR - cannot encode reply", id);
}

void chan_close(struct chan *ch, uint16_t code, const char *text, amqp_method_number_t failing)
{
    log_warn("%s: channel %u: %s", ch->conn->name, ch->id, text);
    amqp_channel_close_t m = {
        .reply_code = code,
        .reply_text = frame_reply_text(text),
        .class_id = (uint16_t)(failing >> 16),
        .method_id = (uint16_t)failing,
    };
    discard_publish(ch);
    stop_waiting(ch);
    consume_chan_closed(ch);
    ch->state = CHAN_CLOSING;
    send_method(ch, AMQP_CHANNEL_CLOSE_METHOD, &m);
}

/* A topology reply: channel errors close the channel, 5xx the connection. */
static bool reply_failed(struct chan *ch, const struct topo_reply *r, amqp_method_number_t id)
{
    if (r->code == 200)
        return false;
    if (r->code >= 500)
        conn_close(ch->conn, r->code, r->text, id);
    else
        chan_close(ch, r->code, r->text, id);
    return true;
}

/* Copy a short string into a C string; refuses embedded NULs. */
static bool copy_name(struct chan *ch, char out[256], amqp_bytes_t b, amqp_method_number_t id)
{
    if (b.len > 255 || memchr(b.bytes, '\0', b.len)) {
        chan_close(ch, AMQP_PRECONDITION_FAILED, "PRECONDITION_FAILED - name contains a NUL byte",
                   id);
        return false;
    }
    memcpy(out, b.bytes, b.len);
    out[b.len] = '\0';
    return true;
}

/* A queue name, or the channel's last declared queue when empty. */
static bool queue_name(struct chan *ch, char out[256], amqp_bytes_t b, amqp_method_number_t id)
{
    if (!copy_name(ch, out, b, id))
        return false;
    if (out[0])
        return true;
    if (!ch->last_queue[0]) {
        chan_close(ch, AMQP_NOT_FOUND, "NOT_FOUND - no previously declared queue", id);
        return false;
    }
    memcpy(out, ch->last_queue, sizeof ch->last_queue);
    return true;
}

/* Arguments re-encoded canonically, for equivalence checks. */
static amqp_bytes_t encode_args(struct chan *ch, amqp_table_t *t)
{
    if (t->num_entries == 0)
        return amqp_empty_bytes;
    size_t room = ch->conn->frame_max;
    amqp_bytes_t out;
    amqp_pool_alloc_bytes(&ch->conn->pool, room, &out);
    size_t off = 0;
    if (!out.bytes || amqp_encode_table(out, t, &off) < 0)
        return amqp_empty_bytes;
    out.len = off;
    return out;
}

/* ---- topology methods ---- */

static void exchange_declare(struct chan *ch, amqp_exchange_declare_t *m)
{
    char name[256], type[256];
    if (!copy_name(ch, name, m->exchange, AMQP_EXCHANGE_DECLARE_METHOD) ||
        !copy_name(ch, type, m->type, AMQP_EXCHANGE_DECLARE_METHOD))
        return;
    struct exchange_decl d = {name,
                              type,
                              m->passive,
                              m->durable,
                              m->auto_delete,
                              m->internal,
                              encode_args(ch, &m->arguments)};
    struct topo_reply r;
    topology_declare_exchange(ch->conn->srv->topo, ch->conn->vhost, &d, &r);
    if (reply_failed(ch, &r, AMQP_EXCHANGE_DECLARE_METHOD) || m->nowait)
        return;
    send_method(ch, AMQP_EXCHANGE_DECLARE_OK_METHOD, NULL);
}

static void exchange_delete(struct chan *ch, amqp_exchange_delete_t *m)
{
    char name[256];
    if (!copy_name(ch, name, m->exchange, AMQP_EXCHANGE_DELETE_METHOD))
        return;
    struct topo_reply r;
    topology_delete_exchange(ch->conn->srv->topo, ch->conn->vhost, name, m->if_unused, &r);
    if (reply_failed(ch, &r, AMQP_EXCHANGE_DELETE_METHOD) || m->nowait)
        return;
    send_method(ch, AMQP_EXCHANGE_DELETE_OK_METHOD, NULL);
}

/* declare-ok. Without task queues messages live only in Kafka topics and
 * both counts are 0; with them, message_count is the records hopper has
 * fetched for the queue and not delivered (a lower bound: records not yet
 * fetched are not counted). */
static void declare_ok(struct chan *ch, const char *queue)
{
    struct conn *c = ch->conn;
    amqp_queue_declare_ok_t ok = {amqp_cstring_bytes(queue), 0, 0};
    const struct queue *q = topology_queue(c->srv->topo, c->vhost, queue);
    if (c->srv->feeds && topology_queue_in_kafka(q)) {
        struct feed *f = feeds_get(c->srv->feeds, c->vhost, queue);
        ok.message_count = (uint32_t)feed_ready_count(f);
        ok.consumer_count = (uint32_t)feed_consumer_count(f);
    }
    send_method(ch, AMQP_QUEUE_DECLARE_OK_METHOD, &ok);
}

static void kafka_answered(struct chan *ch)
{
    ch->placing = NULL;
    ch->conn->awaiting--;
}

static void purged(void *arg, uint64_t count)
{
    struct chan *ch = arg;
    kafka_answered(ch);
    if (ch->placing_reply) {
        amqp_queue_purge_ok_t ok = {count > UINT32_MAX ? UINT32_MAX : (uint32_t)count};
        send_method(ch, AMQP_QUEUE_PURGE_OK_METHOD, &ok);
    }
    conn_update_reading(ch->conn);
}

static void placed(void *arg, bool ok, const char *why)
{
    struct chan *ch = arg;
    struct conn *c = ch->conn;
    kafka_answered(ch);
    if (!ok)
        log_warn("%s: queue '%s': could not set where it starts (%s); its consumers start "
                 "where the group's offsets are, or at the topics' beginnings",
                 c->name, ch->placing_queue, why ? why : "unknown");
    if (ch->placing_method == AMQP_QUEUE_BIND_METHOD)
        feeds_bindings_changed(c->srv->feeds, c->vhost, ch->placing_queue);
    if (ch->placing_reply && ch->placing_method == AMQP_QUEUE_DECLARE_METHOD)
        declare_ok(ch, ch->placing_queue);
    else if (ch->placing_reply)
        send_method(ch, AMQP_QUEUE_BIND_OK_METHOD, NULL);
    conn_update_reading(c);
}

/* With task queues on, a durable queue starts at its declaration (or a new
 * binding's): the reply waits until its group is placed at the ends of its
 * topics (feed.h), and the connection's later frames wait with it. Returns
 * true when the reply will come from there (none for nowait; the frames
 * after still wait for the placement). */
static void ensure_topic(void *sink, const char *topic)
{
    sink_ensure_topic(sink, topic);
}

/* The method's reply, and the connection's frames after it, wait for
 * Kafka (ch->placing). */
static void await_kafka(struct chan *ch, const char *queue, amqp_method_number_t id, bool nowait)
{
    snprintf(ch->placing_queue, sizeof ch->placing_queue, "%s", queue);
    ch->placing_method = id;
    ch->placing_reply = !nowait;
    ch->conn->awaiting++;
    conn_update_reading(ch->conn);
}

static bool wait_for_place(struct chan *ch, const char *queue, const char *exchange,
                           amqp_method_number_t id, bool nowait)
{
    struct conn *c = ch->conn;
    const struct queue *q = topology_queue(c->srv->topo, c->vhost, queue);
    if (!c->srv->feeds || !topology_queue_in_kafka(q))
        return false;
    /* The topics a durable queue reads exist from its declaration and its
     * bindings on, so that its group sees them at once. */
    struct route_target t;
    if (id == AMQP_QUEUE_DECLARE_METHOD &&
        router_route(c->srv->router, c->vhost, "", 0, queue, strlen(queue), &c->srv->scratch, &t) ==
            ROUTE_OK)
        sink_ensure_topic(c->srv->sink, t.topic);
    if (exchange)
        router_exchange_topics(c->srv->router, c->vhost, exchange, ensure_topic, c->srv->sink);
    await_kafka(ch, queue, id, nowait);
    ch->placing = feeds_place(c->srv->feeds, c->vhost, queue, placed, ch);
    return true;
}

static void queue_declare(struct chan *ch, amqp_queue_declare_t *m)
{
    char name[256], actual[256];
    if (!copy_name(ch, name, m->queue, AMQP_QUEUE_DECLARE_METHOD))
        return;
    char why[512];
    if (!m->passive &&
        !deadletter_args_valid(&m->arguments, ch->conn->vhost, name, why, sizeof why)) {
        chan_close(ch, AMQP_PRECONDITION_FAILED, why, AMQP_QUEUE_DECLARE_METHOD);
        return;
    }
    struct queue_decl d = {name,         m->passive,     m->durable,
                           m->exclusive, m->auto_delete, encode_args(ch, &m->arguments),
                           ch->conn->id};
    struct topo_reply r;
    topology_declare_queue(ch->conn->srv->topo, ch->conn->vhost, &d, actual, &r);
    if (reply_failed(ch, &r, AMQP_QUEUE_DECLARE_METHOD))
        return;
    memcpy(ch->last_queue, actual, sizeof actual);
    if (wait_for_place(ch, actual, NULL, AMQP_QUEUE_DECLARE_METHOD, m->nowait))
        return;
    if (!m->nowait)
        declare_ok(ch, actual);
}

static void queue_bind(struct chan *ch, amqp_method_number_t id, amqp_bytes_t queue,
                       amqp_bytes_t exchange, amqp_bytes_t routing_key, amqp_table_t *args,
                       bool nowait)
{
    char q[256], x[256], rk[256];
    if (!queue_name(ch, q, queue, id) || !copy_name(ch, x, exchange, id) ||
        !copy_name(ch, rk, routing_key, id))
        return;
    struct topo_reply r;
    struct conn *c = ch->conn;
    if (id == AMQP_QUEUE_BIND_METHOD)
        topology_bind(c->srv->topo, c->vhost, q, x, rk, encode_args(ch, args), c->id, &r);
    else
        topology_unbind(c->srv->topo, c->vhost, q, x, rk, encode_args(ch, args), c->id, &r);
    if (reply_failed(ch, &r, id))
        return;
    if (id == AMQP_QUEUE_BIND_METHOD && wait_for_place(ch, q, x, id, nowait))
        return;
    if (c->srv->feeds)
        feeds_bindings_changed(c->srv->feeds, c->vhost, q);
    if (nowait)
        return;
    send_method(
        ch, id == AMQP_QUEUE_BIND_METHOD ? AMQP_QUEUE_BIND_OK_METHOD : AMQP_QUEUE_UNBIND_OK_METHOD,
        NULL);
}

static void queue_purge(struct chan *ch, amqp_queue_purge_t *m)
{
    char q[256];
    if (!queue_name(ch, q, m->queue, AMQP_QUEUE_PURGE_METHOD))
        return;
    struct topo_reply r;
    struct conn *c = ch->conn;
    topology_check_queue(c->srv->topo, c->vhost, q, c->id, &r);
    if (reply_failed(ch, &r, AMQP_QUEUE_PURGE_METHOD))
        return;
    const struct queue *queue = topology_queue(c->srv->topo, c->vhost, q);
    if (c->srv->feeds && topology_queue_in_kafka(queue)) {
        await_kafka(ch, q, AMQP_QUEUE_PURGE_METHOD, m->nowait);
        ch->placing = feeds_purge(c->srv->feeds, c->vhost, q, purged, ch);
        return;
    }
    if (m->nowait)
        return;
    amqp_queue_purge_ok_t ok = {0};
    send_method(ch, AMQP_QUEUE_PURGE_OK_METHOD, &ok);
}

static void queue_delete(struct chan *ch, amqp_queue_delete_t *m)
{
    char q[256];
    if (!queue_name(ch, q, m->queue, AMQP_QUEUE_DELETE_METHOD))
        return;
    struct topo_reply r;
    struct conn *c = ch->conn;
    const struct queue *queue = topology_queue(c->srv->topo, c->vhost, q);
    struct feed *f = c->srv->feeds && topology_queue_in_kafka(queue)
                         ? feeds_get(c->srv->feeds, c->vhost, q)
                         : NULL;
    uint32_t count = f ? (uint32_t)feed_ready_count(f) : 0;
    if (f && m->if_unused && feed_consumer_count(f)) {
        char text[600];
        snprintf(text, sizeof text, "PRECONDITION_FAILED - queue '%s' in vhost '%s' in use", q,
                 c->vhost);
        chan_close(ch, AMQP_PRECONDITION_FAILED, text, AMQP_QUEUE_DELETE_METHOD);
        return;
    }
    if (f && m->if_empty && count) {
        char text[600];
        snprintf(text, sizeof text, "PRECONDITION_FAILED - queue '%s' in vhost '%s' not empty", q,
                 c->vhost);
        chan_close(ch, AMQP_PRECONDITION_FAILED, text, AMQP_QUEUE_DELETE_METHOD);
        return;
    }
    topology_delete_queue(c->srv->topo, c->vhost, q, c->id, &r);
    if (reply_failed(ch, &r, AMQP_QUEUE_DELETE_METHOD))
        return;
    if (f)
        feeds_queue_deleted(c->srv->feeds, c->vhost, q);
    if (m->nowait)
        return;
    amqp_queue_delete_ok_t ok = {count};
    send_method(ch, AMQP_QUEUE_DELETE_OK_METHOD, &ok);
}

/* ---- confirms ---- */

static void emit_confirm(void *arg, uint64_t tag, bool multiple, bool ack)
{
    struct chan *ch = arg;
    struct server *srv = ch->conn->srv;
    if (ack) {
        amqp_basic_ack_t m = {tag, multiple};
        send_method(ch, AMQP_BASIC_ACK_METHOD, &m);
        srv->stats.acks_sent++;
    } else {
        amqp_basic_nack_t m = {tag, multiple, 0};
        send_method(ch, AMQP_BASIC_NACK_METHOD, &m);
        srv->stats.nacks_sent++;
    }
}

static void update_over_limit(struct chan *ch)
{
    struct conn *c = ch->conn;
    bool over = ch->confirm && confirm_unconfirmed(ch->confirm) >= c->srv->cfg->max_unconfirmed;
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
    chan_flush_confirms(CONTAINER_OF(o, struct chan, owner));
}

void chan_flush_confirms(struct chan *ch)
{
    if (!ch->confirm)
        return;
    /* After a close, only close/close-ok may be sent on the channel or the
     * connection; the outcomes are dropped (the client saw the close). */
    if (ch->state == CHAN_OPEN && ch->conn->state == CONN_OPEN)
        confirm_flush(ch->confirm, emit_confirm, ch);
    update_over_limit(ch);
}

static void confirm_select(struct chan *ch, amqp_confirm_select_t *m)
{
    if (!ch->confirm) {
        ch->confirm = confirm_new();
        confirm_set_owner(ch->confirm, &ch->owner);
    }
    if (!m->nowait)
        send_method(ch, AMQP_CONFIRM_SELECT_OK_METHOD, NULL);
}

/* ---- publish ---- */

static void begin_publish(struct chan *ch, amqp_basic_publish_t *m)
{
    struct conn *c = ch->conn;
    c->published = true;
    if (m->immediate) {
        conn_close(c, AMQP_NOT_IMPLEMENTED, "NOT_IMPLEMENTED - immediate=true",
                   AMQP_BASIC_PUBLISH_METHOD);
        return;
    }
    char x[256];
    if (!copy_name(ch, x, m->exchange, AMQP_BASIC_PUBLISH_METHOD))
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

static void send_return(struct chan *ch, const amqp_basic_properties_t *props)
{
    struct conn *c = ch->conn;
    amqp_basic_return_t m = {
        AMQP_NO_ROUTE,
        amqp_cstring_bytes("NO_ROUTE"),
        {ch->exchange_len, ch->exchange},
        {ch->routing_key_len, ch->routing_key},
    };
    send_method(ch, AMQP_BASIC_RETURN_METHOD, &m);
    if (frame_put_content(conn_out(c), ch->id, props, ch->raw_props.data, ch->raw_props.len,
                          ch->body, ch->body_size, c->frame_max))
        conn_close(c, AMQP_INTERNAL_ERROR, "INTERNAL_ERROR - cannot encode basic.return",
                   AMQP_BASIC_RETURN_METHOD);
    c->srv->stats.returned++;
}

/* Keep a publish the sink had no room for; the connection stops reading
 * until chan_retry_parked hands it over. */
static void park(struct chan *ch, const struct sink_msg *m)
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

bool chan_retry_parked(struct chan *ch)
{
    if (!ch->has_parked)
        return true;
    if (sink_produce(ch->conn->srv->sink, &ch->parked) == SINK_FULL)
        return false;
    ch->has_parked = false;
    ch->conn->parked = NULL;
    return true;
}

static void complete_publish(struct chan *ch)
{
    struct conn *c = ch->conn;
    struct server *srv = c->srv;
    amqp_basic_properties_t *props = NULL;
    amqp_bytes_t enc = {ch->raw_props.len, ch->raw_props.data};
    if (amqp_decode_properties(AMQP_BASIC_CLASS, &c->pool, enc, (void **)&props) < 0) {
        discard_publish(ch);
        conn_close(c, AMQP_SYNTAX_ERROR, "SYNTAX_ERROR - cannot decode content header properties",
                   AMQP_BASIC_PUBLISH_METHOD);
        return;
    }
    srv->stats.published++;
    uint64_t tag = ch->confirm ? confirm_next(ch->confirm) : 0;
    struct buf *scratch = &srv->scratch;
    struct route_target target;
    enum route_status rs = router_route(srv->router, c->vhost, ch->exchange, ch->exchange_len,
                                        ch->routing_key, ch->routing_key_len, scratch, &target);
    if (rs == ROUTE_UNROUTABLE) {
        if (ch->mandatory)
            send_return(ch, props);
        else
            srv->stats.unroutable_dropped++;
        /* RabbitMQ acks unroutable messages: there is nothing to persist. */
        if (ch->confirm && !confirm_resolve(ch->confirm, tag, true))
            server_mark_dirty(srv, &ch->owner);
        discard_publish(ch);
        return;
    }
    struct record_src src = {
        ch->exchange, ch->exchange_len,   ch->routing_key,   ch->routing_key_len,
        props,        ch->raw_props.data, ch->raw_props.len,
    };
    struct sink_msg m = {
        .topic = target.topic,
        .body = ch->body,
        .body_len = ch->body_size,
        .headers = record_headers(&src),
        .tracker = ch->confirm,
        .tag = tag,
    };
    record_key(&src, &target, &srv->key_scratch, &m.key, &m.key_len);
    /* The sink owns the body from here (or the parked copy does). */
    ch->body = NULL;
    discard_publish(ch);
    if (sink_produce(srv->sink, &m) == SINK_FULL)
        park(ch, &m);
    server_update_blocked(srv);
    if (ch->confirm)
        update_over_limit(ch);
}

static void content_header(struct chan *ch, const struct frame *f)
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

static void content_body(struct chan *ch, const struct frame *f)
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

/* ---- dispatch ---- */

/* Methods of the RabbitMQ side that the switch gates (config.h, rabbit). */
static bool consuming_method(amqp_method_number_t id)
{
    switch (id) {
    case AMQP_BASIC_CONSUME_METHOD:
    case AMQP_BASIC_CANCEL_METHOD:
    case AMQP_BASIC_GET_METHOD:
    case AMQP_BASIC_ACK_METHOD:
    case AMQP_BASIC_NACK_METHOD:
    case AMQP_BASIC_REJECT_METHOD:
    case AMQP_BASIC_RECOVER_METHOD:
    case AMQP_BASIC_RECOVER_ASYNC_METHOD:
        return true;
    default:
        return false;
    }
}

static void not_implemented(struct chan *ch, amqp_method_number_t id)
{
    char name[64], text[200];
    frame_method_name(id, name, sizeof name);
    if (consuming_method(id) && !ch->conn->srv->cfg->rabbit_enabled)
        snprintf(text, sizeof text,
                 "NOT_IMPLEMENTED - method %s needs task queues: run hopper with "
                 "--enable-rabbit or set rabbit.enabled: true",
                 name);
    else
        snprintf(text, sizeof text,
                 "NOT_IMPLEMENTED - method %s is not supported by hopper (publishing only)", name);
    conn_close(ch->conn, AMQP_NOT_IMPLEMENTED, text, id);
}

/* The consuming methods, with task queues on. Returns false for others. */
static bool consuming(struct chan *ch, amqp_method_number_t id, void *m)
{
    switch (id) {
    case AMQP_BASIC_CONSUME_METHOD:
        consume_basic_consume(ch, m);
        return true;
    case AMQP_BASIC_CANCEL_METHOD:
        consume_basic_cancel(ch, m);
        return true;
    case AMQP_BASIC_GET_METHOD:
        consume_basic_get(ch, m);
        return true;
    case AMQP_BASIC_ACK_METHOD:
        consume_basic_ack(ch, m);
        return true;
    case AMQP_BASIC_NACK_METHOD:
        consume_basic_nack(ch, m);
        return true;
    case AMQP_BASIC_REJECT_METHOD:
        consume_basic_reject(ch, m);
        return true;
    case AMQP_BASIC_RECOVER_METHOD:
        consume_basic_recover(ch, ((amqp_basic_recover_t *)m)->requeue, id);
        return true;
    case AMQP_BASIC_RECOVER_ASYNC_METHOD:
        consume_basic_recover(ch, ((amqp_basic_recover_async_t *)m)->requeue, id);
        return true;
    default:
        return false;
    }
}

static void handle_method(struct chan *ch, amqp_method_number_t id, void *m)
{
    switch (id) {
    case AMQP_CHANNEL_CLOSE_METHOD:
        send_method(ch, AMQP_CHANNEL_CLOSE_OK_METHOD, NULL);
        chan_free(ch);
        return;
    case AMQP_CHANNEL_CLOSE_OK_METHOD:
        return; /* we sent no close: ignore */
    case AMQP_CHANNEL_FLOW_METHOD: {
        /* Pauses deliveries (there are none without task queues). */
        amqp_channel_flow_ok_t ok = {((amqp_channel_flow_t *)m)->active};
        ch->active = ok.active;
        send_method(ch, AMQP_CHANNEL_FLOW_OK_METHOD, &ok);
        if (ch->active)
            consume_conn_writable(ch->conn);
        return;
    }
    case AMQP_CHANNEL_FLOW_OK_METHOD:
        return;
    case AMQP_EXCHANGE_DECLARE_METHOD:
        exchange_declare(ch, m);
        return;
    case AMQP_EXCHANGE_DELETE_METHOD:
        exchange_delete(ch, m);
        return;
    case AMQP_QUEUE_DECLARE_METHOD:
        queue_declare(ch, m);
        return;
    case AMQP_QUEUE_BIND_METHOD: {
        amqp_queue_bind_t *b = m;
        queue_bind(ch, id, b->queue, b->exchange, b->routing_key, &b->arguments, b->nowait);
        return;
    }
    case AMQP_QUEUE_UNBIND_METHOD: {
        amqp_queue_unbind_t *u = m;
        queue_bind(ch, id, u->queue, u->exchange, u->routing_key, &u->arguments, false);
        return;
    }
    case AMQP_QUEUE_PURGE_METHOD:
        queue_purge(ch, m);
        return;
    case AMQP_QUEUE_DELETE_METHOD:
        queue_delete(ch, m);
        return;
    case AMQP_BASIC_QOS_METHOD:
        if (ch->conn->srv->feeds) {
            consume_basic_qos(ch, m);
            return;
        }
        /* Accepted for clients that set it before publishing; it limits
         * deliveries, and there are none without task queues. */
        send_method(ch, AMQP_BASIC_QOS_OK_METHOD, NULL);
        return;
    case AMQP_BASIC_PUBLISH_METHOD:
        begin_publish(ch, m);
        return;
    case AMQP_CONFIRM_SELECT_METHOD:
        confirm_select(ch, m);
        return;
    default:
        break;
    }
    if (ch->conn->srv->feeds && consuming(ch, id, m))
        return;
    if ((id >> 16) == AMQP_CONNECTION_CLASS) {
        conn_close(ch->conn, AMQP_COMMAND_INVALID,
                   "COMMAND_INVALID - connection method on a non-zero channel", id);
        return;
    }
    not_implemented(ch, id);
}

void chan_handle_frame(struct chan *ch, const struct frame *f)
{
    struct conn *c = ch->conn;
    if (ch->state == CHAN_CLOSING) {
        /* Everything but close and close-ok is dropped after our close. */
        amqp_method_number_t id;
        void *m;
        if (f->type != FRAME_METHOD || conn_decode_method(c, f, &id, &m))
            return;
        /* Crossing closes: answer the client's close, but stay closing
         * until the close-ok for ours, which the client still sends (as
         * RabbitMQ's reader does). Freeing here made that close-ok look
         * like a frame on an unopened channel: connection error 504. */
        if (id == AMQP_CHANNEL_CLOSE_METHOD)
            send_method(ch, AMQP_CHANNEL_CLOSE_OK_METHOD, NULL);
        else if (id == AMQP_CHANNEL_CLOSE_OK_METHOD)
            chan_free(ch);
        return;
    }
    switch (f->type) {
    case FRAME_METHOD: {
        if (ch->content != CONTENT_NONE) {
            conn_close(c, AMQP_UNEXPECTED_FRAME,
                       "UNEXPECTED_FRAME - expected content frame for class 60, got a method", 0);
            return;
        }
        amqp_method_number_t id;
        void *m;
        if (conn_decode_method(c, f, &id, &m) == 0)
            handle_method(ch, id, m);
        return;
    }
    case FRAME_HEADER:
        content_header(ch, f);
        return;
    case FRAME_BODY:
        content_body(ch, f);
        return;
    default:
        return;
    }
}
