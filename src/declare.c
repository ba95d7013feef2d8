/* declare.c - a channel's exchange and queue methods (see declare.h). */
#include "declare.h"

#include <stdio.h>
#include <string.h>

#include "chan.h"
#include "conn.h"
#include "deadletter.h"
#include "feed.h"
#include "log.h"
#include "router.h"
#include "topology.h"

/* A reply that waited on Kafka (placing) is no longer wanted. */
void declare_cancel_wait(struct chan *ch)
{
    if (!ch->placing)
        return;
    feeds_place_cancel(ch->placing);
    ch->placing = NULL;
    ch->conn->awaiting--;
    conn_update_reading(ch->conn);
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

void declare_exchange(struct chan *ch, amqp_exchange_declare_t *m)
{
    char name[256], type[256];
    if (!chan_copy_name(ch, name, m->exchange, AMQP_EXCHANGE_DECLARE_METHOD) ||
        !chan_copy_name(ch, type, m->type, AMQP_EXCHANGE_DECLARE_METHOD))
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
    chan_send(ch, AMQP_EXCHANGE_DECLARE_OK_METHOD, NULL);
}

void declare_exchange_delete(struct chan *ch, amqp_exchange_delete_t *m)
{
    char name[256];
    if (!chan_copy_name(ch, name, m->exchange, AMQP_EXCHANGE_DELETE_METHOD))
        return;
    struct topo_reply r;
    topology_delete_exchange(ch->conn->srv->topo, ch->conn->vhost, name, m->if_unused, &r);
    if (reply_failed(ch, &r, AMQP_EXCHANGE_DELETE_METHOD) || m->nowait)
        return;
    chan_send(ch, AMQP_EXCHANGE_DELETE_OK_METHOD, NULL);
}

/* declare-ok. Without task queues messages live only in Kafka topics and
 * both counts are 0; with them, message_count is the records hopper holds
 * for the queue and has not delivered: all of a transient queue's, a lower
 * bound for a durable one (records not yet fetched are not counted). */
static void declare_ok(struct chan *ch, const char *queue)
{
    struct conn *c = ch->conn;
    amqp_queue_declare_ok_t ok = {amqp_cstring_bytes(queue), 0, 0};
    if (c->srv->feeds && topology_queue(c->srv->topo, c->vhost, queue)) {
        struct feed *f = feeds_get(c->srv->feeds, c->vhost, queue);
        ok.message_count = (uint32_t)feed_ready_count(f);
        ok.consumer_count = (uint32_t)feed_consumer_count(f);
    }
    chan_send(ch, AMQP_QUEUE_DECLARE_OK_METHOD, &ok);
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
        chan_send(ch, AMQP_QUEUE_PURGE_OK_METHOD, &ok);
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
        chan_send(ch, AMQP_QUEUE_BIND_OK_METHOD, NULL);
    conn_update_reading(c);
}

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

/* With task queues on, a durable queue starts at its declaration (or a new
 * binding's): the reply waits until its group is placed at the ends of its
 * topics (feed.h), and the connection's later frames wait with it. Returns
 * true when the reply will come from there (none for nowait; the frames
 * after still wait for the placement). */
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

void declare_queue(struct chan *ch, amqp_queue_declare_t *m)
{
    char name[256], actual[256];
    if (!chan_copy_name(ch, name, m->queue, AMQP_QUEUE_DECLARE_METHOD))
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
    if (ch->conn->srv->feeds) /* a transient queue holds messages from here */
        feeds_get(ch->conn->srv->feeds, ch->conn->vhost, actual);
    if (wait_for_place(ch, actual, NULL, AMQP_QUEUE_DECLARE_METHOD, m->nowait))
        return;
    if (!m->nowait)
        declare_ok(ch, actual);
}

void declare_bind(struct chan *ch, amqp_method_number_t id, amqp_bytes_t queue,
                  amqp_bytes_t exchange, amqp_bytes_t routing_key, amqp_table_t *args, bool nowait)
{
    char q[256], x[256], rk[256];
    if (!chan_queue_name(ch, q, queue, id) || !chan_copy_name(ch, x, exchange, id) ||
        !chan_copy_name(ch, rk, routing_key, id))
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
    chan_send(
        ch, id == AMQP_QUEUE_BIND_METHOD ? AMQP_QUEUE_BIND_OK_METHOD : AMQP_QUEUE_UNBIND_OK_METHOD,
        NULL);
}

void declare_purge(struct chan *ch, amqp_queue_purge_t *m)
{
    char q[256];
    if (!chan_queue_name(ch, q, m->queue, AMQP_QUEUE_PURGE_METHOD))
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
    size_t count = c->srv->feeds ? feed_purge(feeds_get(c->srv->feeds, c->vhost, q)) : 0;
    if (m->nowait)
        return;
    amqp_queue_purge_ok_t ok = {count > UINT32_MAX ? UINT32_MAX : (uint32_t)count};
    chan_send(ch, AMQP_QUEUE_PURGE_OK_METHOD, &ok);
}

void declare_queue_delete(struct chan *ch, amqp_queue_delete_t *m)
{
    char q[256];
    if (!chan_queue_name(ch, q, m->queue, AMQP_QUEUE_DELETE_METHOD))
        return;
    struct topo_reply r;
    struct conn *c = ch->conn;
    const struct queue *queue = topology_queue(c->srv->topo, c->vhost, q);
    struct feed *f = c->srv->feeds && queue ? feeds_get(c->srv->feeds, c->vhost, q) : NULL;
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
    chan_send(ch, AMQP_QUEUE_DELETE_OK_METHOD, &ok);
}
