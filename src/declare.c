/* declare.c - a channel's exchange and queue methods (see declare.h). */
#include "declare.h"

#include <stdio.h>
#include <string.h>

#include "chan.h"
#include "conn.h"
#include "deadletter.h"
#include "feed.h"
#include "log.h"
#include "qargs.h"
#include "replyto.h"
#include "router.h"
#include "topology.h"
#include "topostore.h"

/* A method whose reply waits until Kafka has persisted its topology
 * records (topostore.h), and what it does then. A method that made a kept
 * entity made it in memory at once (undone if Kafka refuses the record);
 * one that deletes a kept entity deletes it once the tombstones are
 * persisted. Either way the topology ends as Kafka has it. */
struct store_wait {
    struct chan *ch; /* NULL once the channel went away: no reply */
    struct server *srv;
    amqp_method_number_t id;
    bool nowait;
    bool made;      /* undo on failure */
    uint32_t count; /* queue.delete-ok's message_count */
    char vhost[256], queue[256], exchange[256], routing_key[256];
    struct buf args;
};

/* A reply that waited on Kafka (storing or placing) is no longer wanted. */
void declare_cancel_wait(struct chan *ch)
{
    if (ch->storing) {
        /* The store answers all the same: the topology follows Kafka. */
        ch->storing->ch = NULL;
        ch->storing = NULL;
    } else if (ch->placing) {
        feeds_place_cancel(ch->placing);
        ch->placing = NULL;
    } else {
        return;
    }
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

static void stored(void *arg, bool ok);

/* The method's reply, and the connection's frames after it, wait for
 * Kafka to persist its records (ch->storing); the caller then hands sw to
 * a topostore_* write. */
static struct store_wait *await_store(struct chan *ch, amqp_method_number_t id, bool nowait,
                                      const char *queue, const char *exchange,
                                      const char *routing_key, amqp_bytes_t args)
{
    struct conn *c = ch->conn;
    struct store_wait *sw = xcalloc(1, sizeof *sw);
    sw->ch = ch;
    sw->srv = c->srv;
    sw->id = id;
    sw->nowait = nowait;
    snprintf(sw->vhost, sizeof sw->vhost, "%s", c->vhost);
    snprintf(sw->queue, sizeof sw->queue, "%s", queue ? queue : "");
    snprintf(sw->exchange, sizeof sw->exchange, "%s", exchange ? exchange : "");
    snprintf(sw->routing_key, sizeof sw->routing_key, "%s", routing_key ? routing_key : "");
    buf_append(&sw->args, args.bytes, args.len);
    ch->storing = sw;
    c->awaiting++;
    conn_update_reading(c);
    return sw;
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
    struct server *srv = ch->conn->srv;
    const char *vhost = ch->conn->vhost;
    bool existed = topology_exchange(srv->topo, vhost, name) != NULL;
    topology_declare_exchange(srv->topo, vhost, &d, &r);
    if (reply_failed(ch, &r, AMQP_EXCHANGE_DECLARE_METHOD))
        return;
    const struct exchange *e = topology_exchange(srv->topo, vhost, name);
    if (!existed && topostore_keeps_exchange(srv->store, vhost, e)) {
        struct store_wait *sw = await_store(ch, AMQP_EXCHANGE_DECLARE_METHOD, m->nowait, NULL, name,
                                            NULL, amqp_empty_bytes);
        sw->made = true;
        topostore_put_exchange(srv->store, vhost, e, stored, sw);
        return;
    }
    if (!m->nowait)
        chan_send(ch, AMQP_EXCHANGE_DECLARE_OK_METHOD, NULL);
}

static void count_binding(void *arg, const char *queue, const char *exchange,
                          const char *routing_key, amqp_bytes_t args)
{
    ++*(size_t *)arg;
}

void declare_exchange_delete(struct chan *ch, amqp_exchange_delete_t *m)
{
    char name[256];
    if (!chan_copy_name(ch, name, m->exchange, AMQP_EXCHANGE_DELETE_METHOD))
        return;
    struct server *srv = ch->conn->srv;
    const char *vhost = ch->conn->vhost;
    size_t in_use = 0;
    if (m->if_unused)
        topology_each_binding(srv->topo, vhost, NULL, name, count_binding, &in_use);
    if (!in_use &&
        topostore_keeps_exchange(srv->store, vhost, topology_exchange(srv->topo, vhost, name))) {
        struct store_wait *sw = await_store(ch, AMQP_EXCHANGE_DELETE_METHOD, m->nowait, NULL, name,
                                            NULL, amqp_empty_bytes);
        topostore_delete_exchange(srv->store, vhost, name, stored, sw);
        return;
    }
    struct topo_reply r;
    topology_delete_exchange(srv->topo, vhost, name, m->if_unused, &r);
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

/* Whether the queue is read from Kafka (task queues on, a durable queue)
 * and so placed at its declaration or a new binding; if it is, the topics
 * it reads from there on exist from now, so that its group sees them at
 * once. */
static bool to_place(struct server *srv, const char *vhost, const char *queue, const char *exchange,
                     amqp_method_number_t id)
{
    const struct queue *q = topology_queue(srv->topo, vhost, queue);
    if (!srv->feeds || !topology_queue_in_kafka(q))
        return false;
    struct route_target t;
    if (id == AMQP_QUEUE_DECLARE_METHOD &&
        router_route(srv->router, vhost, "", 0, queue, strlen(queue), &srv->scratch, &t) ==
            ROUTE_OK)
        sink_ensure_topic(srv->sink, t.topic);
    if (exchange)
        router_exchange_topics(srv->router, vhost, exchange, ensure_topic, srv->sink);
    return true;
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
    if (!to_place(c->srv, c->vhost, queue, exchange, id))
        return false;
    await_kafka(ch, queue, id, nowait);
    ch->placing = feeds_place(c->srv->feeds, c->vhost, queue, placed, ch);
    return true;
}

/* A placement nobody waits for: the channel that declared or bound went
 * away while Kafka stored the topology. */
struct unattended {
    struct server *srv;
    amqp_method_number_t id;
    char vhost[256], queue[256];
};

static void placed_unattended(void *arg, bool ok, const char *why)
{
    struct unattended *u = arg;
    if (!ok)
        log_warn("queue '%s' in vhost '%s': could not set where it starts (%s); its consumers "
                 "start where the group's offsets are, or at the topics' beginnings",
                 u->queue, u->vhost, why ? why : "unknown");
    else
        log_info("queue '%s' in vhost '%s': starts at its declaration, placed after the channel "
                 "that declared it closed",
                 u->queue, u->vhost);
    if (u->id == AMQP_QUEUE_BIND_METHOD)
        feeds_bindings_changed(u->srv->feeds, u->vhost, u->queue);
    free(u);
}

/* The queue starts at its declaration (or the binding's) even when the
 * channel is gone: the stored topology keeps it, and a group never placed
 * would start at the topics' beginnings. */
static void place_unattended(struct server *srv, const char *vhost, const char *queue,
                             const char *exchange, amqp_method_number_t id)
{
    if (!to_place(srv, vhost, queue, exchange, id)) {
        if (id == AMQP_QUEUE_BIND_METHOD && srv->feeds)
            feeds_bindings_changed(srv->feeds, vhost, queue);
        return;
    }
    struct unattended *u = xcalloc(1, sizeof *u);
    u->srv = srv;
    u->id = id;
    snprintf(u->vhost, sizeof u->vhost, "%s", vhost);
    snprintf(u->queue, sizeof u->queue, "%s", queue);
    feeds_place(srv->feeds, vhost, queue, placed_unattended, u);
}

void declare_queue(struct chan *ch, amqp_queue_declare_t *m)
{
    char name[256], actual[256];
    if (!chan_copy_name(ch, name, m->queue, AMQP_QUEUE_DECLARE_METHOD) ||
        replyto_declare(ch, name, m->nowait))
        return;
    struct server *srv = ch->conn->srv;
    const char *vhost = ch->conn->vhost;
    bool existed = name[0] && topology_queue(srv->topo, vhost, name);
    /* As RabbitMQ: a new queue's arguments are checked; an existing one's
     * are only compared with what it has (topology_declare_queue). */
    char why[512];
    if (!m->passive && !existed &&
        (!deadletter_args_valid(&m->arguments, vhost, name, why, sizeof why) ||
         !qargs_valid(&m->arguments, vhost, name, why, sizeof why))) {
        chan_close(ch, AMQP_PRECONDITION_FAILED, why, AMQP_QUEUE_DECLARE_METHOD);
        return;
    }
    struct queue_decl d = {name,         m->passive,     m->durable,
                           m->exclusive, m->auto_delete, encode_args(ch, &m->arguments),
                           ch->conn->id};
    struct topo_reply r;
    topology_declare_queue(srv->topo, vhost, &d, actual, &r);
    if (reply_failed(ch, &r, AMQP_QUEUE_DECLARE_METHOD))
        return;
    memcpy(ch->last_queue, actual, sizeof actual);
    if (srv->feeds) /* a transient queue holds messages from here */
        feeds_get(srv->feeds, vhost, actual);
    const struct queue *q = topology_queue(srv->topo, vhost, actual);
    if (!existed && topostore_keeps_queue(srv->store, vhost, q)) {
        struct store_wait *sw = await_store(ch, AMQP_QUEUE_DECLARE_METHOD, m->nowait, actual, NULL,
                                            NULL, amqp_empty_bytes);
        sw->made = true;
        topostore_put_queue(srv->store, vhost, q, stored, sw);
        return;
    }
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
    amqp_bytes_t encoded = encode_args(ch, args);
    bool had = topology_has_binding(c->srv->topo, c->vhost, q, x, rk, encoded);
    bool kept = topostore_keeps_binding(c->srv->store, c->vhost, q, x);
    if (id == AMQP_QUEUE_UNBIND_METHOD && had && kept) {
        struct store_wait *sw = await_store(ch, id, nowait, q, x, rk, encoded);
        topostore_put_binding(c->srv->store, c->vhost, q, x, rk, encoded, true, stored, sw);
        return;
    }
    if (id == AMQP_QUEUE_BIND_METHOD)
        topology_bind(c->srv->topo, c->vhost, q, x, rk, encoded, c->id, &r);
    else
        topology_unbind(c->srv->topo, c->vhost, q, x, rk, encoded, c->id, &r);
    if (reply_failed(ch, &r, id))
        return;
    if (id == AMQP_QUEUE_BIND_METHOD && !had && kept) {
        struct store_wait *sw = await_store(ch, id, nowait, q, x, rk, encoded);
        sw->made = true;
        topostore_put_binding(c->srv->store, c->vhost, q, x, rk, encoded, false, stored, sw);
        return;
    }
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
    if (topostore_keeps_queue(c->srv->store, c->vhost, queue)) {
        struct store_wait *sw =
            await_store(ch, AMQP_QUEUE_DELETE_METHOD, m->nowait, q, NULL, NULL, amqp_empty_bytes);
        sw->count = count;
        topostore_delete_queue(c->srv->store, c->vhost, q, stored, sw);
        return;
    }
    topology_delete_queue(c->srv->topo, c->vhost, q, c->id, &r);
    if (reply_failed(ch, &r, AMQP_QUEUE_DELETE_METHOD))
        return;
    if (f)
        feeds_queue_deleted(c->srv->feeds, c->vhost, q, true);
    if (m->nowait)
        return;
    amqp_queue_delete_ok_t ok = {count};
    chan_send(ch, AMQP_QUEUE_DELETE_OK_METHOD, &ok);
}

/* ---- after the topology store answered ---- */

static amqp_bytes_t args_of(const struct store_wait *sw)
{
    return (amqp_bytes_t){sw->args.len, sw->args.data};
}

/* Kafka refused a record: what the method made goes again. */
static void undo(struct store_wait *sw)
{
    struct topology *t = sw->srv->topo;
    struct topo_reply r;
    if (sw->id == AMQP_EXCHANGE_DECLARE_METHOD)
        topology_delete_exchange(t, sw->vhost, sw->exchange, false, &r);
    else if (sw->id == AMQP_QUEUE_DECLARE_METHOD)
        topology_delete_queue(t, sw->vhost, sw->queue, 0, &r);
    else if (sw->id == AMQP_QUEUE_BIND_METHOD)
        topology_unbind(t, sw->vhost, sw->queue, sw->exchange, sw->routing_key, args_of(sw), 0, &r);
}

/* Kafka has the records: a deletion is made here too, and the reply goes
 * (a queue's after its placement, as without the store). */
static void apply_stored(struct store_wait *sw)
{
    struct server *srv = sw->srv;
    struct chan *ch = sw->ch;
    struct topo_reply r;
    amqp_method_number_t ok_id = 0;
    void *ok = NULL;
    amqp_queue_delete_ok_t delete_ok = {sw->count};
    switch (sw->id) {
    case AMQP_EXCHANGE_DECLARE_METHOD:
        ok_id = AMQP_EXCHANGE_DECLARE_OK_METHOD;
        break;
    case AMQP_EXCHANGE_DELETE_METHOD:
        topology_delete_exchange(srv->topo, sw->vhost, sw->exchange, false, &r);
        ok_id = AMQP_EXCHANGE_DELETE_OK_METHOD;
        break;
    case AMQP_QUEUE_DECLARE_METHOD:
        if (!ch)
            place_unattended(srv, sw->vhost, sw->queue, NULL, sw->id);
        else if (!wait_for_place(ch, sw->queue, NULL, sw->id, sw->nowait) && !sw->nowait)
            declare_ok(ch, sw->queue);
        return;
    case AMQP_QUEUE_BIND_METHOD:
        if (!ch) {
            place_unattended(srv, sw->vhost, sw->queue, sw->exchange, sw->id);
            return;
        }
        if (wait_for_place(ch, sw->queue, sw->exchange, sw->id, sw->nowait))
            return;
        if (srv->feeds)
            feeds_bindings_changed(srv->feeds, sw->vhost, sw->queue);
        ok_id = AMQP_QUEUE_BIND_OK_METHOD;
        break;
    case AMQP_QUEUE_UNBIND_METHOD:
        topology_unbind(srv->topo, sw->vhost, sw->queue, sw->exchange, sw->routing_key, args_of(sw),
                        0, &r);
        if (srv->feeds)
            feeds_bindings_changed(srv->feeds, sw->vhost, sw->queue);
        ok_id = AMQP_QUEUE_UNBIND_OK_METHOD;
        break;
    case AMQP_QUEUE_DELETE_METHOD:
        topology_delete_queue(srv->topo, sw->vhost, sw->queue, 0, &r);
        if (srv->feeds)
            feeds_queue_deleted(srv->feeds, sw->vhost, sw->queue, true);
        ok_id = AMQP_QUEUE_DELETE_OK_METHOD;
        ok = &delete_ok;
        break;
    }
    if (ch && !sw->nowait)
        chan_send(ch, ok_id, ok);
}

static void stored(void *arg, bool ok)
{
    struct store_wait *sw = arg;
    struct chan *ch = sw->ch;
    if (ch) {
        ch->storing = NULL;
        ch->conn->awaiting--;
    }
    if (ok) {
        apply_stored(sw);
    } else {
        if (sw->made)
            undo(sw);
        /* A declaration Kafka did not persist fails with a connection
         * error, 541 INTERNAL_ERROR (a hard error in 0-9-1: the client
         * must not go on as if it held): it reconnects and declares
         * again, which the topology allows since nothing of it was kept. */
        if (ch) {
            char text[700];
            snprintf(text, sizeof text,
                     "INTERNAL_ERROR - Kafka did not persist the topology change to %s '%s' in "
                     "vhost '%s' (topic %s)",
                     sw->queue[0] ? "queue" : "exchange", sw->queue[0] ? sw->queue : sw->exchange,
                     sw->vhost, sw->srv->cfg->topology_topic);
            conn_close(ch->conn, AMQP_INTERNAL_ERROR, text, sw->id);
        }
    }
    if (ch)
        conn_update_reading(ch->conn);
    buf_free(&sw->args);
    free(sw);
}
