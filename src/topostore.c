/* topostore.c - the durable topology kept in Kafka (see topostore.h).
 *
 * The topic is hopper's own: it is created here whatever
 * kafka.auto_create_topics says (1 partition, cleanup.policy=compact, the
 * replication factor and min.insync.replicas of hopper's other topics),
 * with the admin API of the store's consumer handle. A topic that already
 * exists is used as it is. Records are written through the sink, so they
 * get its idempotent acks=all producer and its confirms; the sink would
 * create the topic itself (kafka.auto_create_topics, not compacted) only
 * if the store's creation failed, which the log says. */
#include "topostore.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <librdkafka/rdkafka.h>

#include "confirm.h"
#include "feed.h"
#include "log.h"
#include "server.h"
#include "sink.h"
#include "topology.h"
#include "toporecord.h"

/* Names the process that wrote a record: "<writer id>:<tag>". */
#define WRITER_HEADER "hopper.writer"
#define POLL_BATCH 500
/* A quiet queue signals nothing; a missed edge is caught by this. */
#define TICK_MS 500
#define CREATE_TIMEOUT_MS 10000

struct topostore_write {
    struct topostore *s;
    struct topostore_write *next; /* s->writes, in tag order */
    uint64_t first;               /* the tag of its first record; the rest follow */
    size_t n, left;
    bool *settled; /* per record: Kafka answered */
    bool failed;
    topostore_done_fn done;
    void *arg;
};

/* A record of this process written and not yet read back: its echo is
 * skipped while a later one of the same key is still to come. */
struct echo {
    uint64_t tag;
    struct buf key;
};

enum store_state { STORE_CREATING, STORE_LOADING, STORE_LOADED };

struct topostore {
    struct server *srv;
    const struct config *cfg;
    void (*loaded)(struct server *srv);
    enum store_state state;
    bool late; /* the load deadline passed first */
    rd_kafka_t *rk;
    rd_kafka_queue_t *q, *admin_q;
    int pipefd[2];
    struct event *pipe_ev, *tick_ev, *deadline_ev;
    uint64_t started_ms;
    uint64_t applied, skipped;
    uint64_t last_warn_ms;

    char writer[32]; /* random, per process */
    struct confirm *confirm;
    struct confirm_owner owner;
    struct topostore_write *writes;
    struct echo *echoes; /* in tag order (the topic's order: one partition) */
    size_t n_echoes, cap_echoes;
    struct buf key, val;
};

/* ---- what is kept ---- */

static bool from_config(const struct config *cfg, enum toporecord_kind kind, const char *vhost,
                        const char *name)
{
    if (kind == TOPOREC_EXCHANGE) {
        for (size_t i = 0; i < cfg->n_exchanges; i++)
            if (!strcmp(cfg->exchanges[i].vhost, vhost) && !strcmp(cfg->exchanges[i].name, name))
                return true;
    } else {
        for (size_t i = 0; i < cfg->n_queues; i++)
            if (!strcmp(cfg->queues[i].vhost, vhost) && !strcmp(cfg->queues[i].name, name))
                return true;
    }
    return false;
}

bool topostore_keeps_exchange(const struct topostore *s, const char *vhost,
                              const struct exchange *e)
{
    return s && e && e->durable && !e->builtin &&
           !from_config(s->cfg, TOPOREC_EXCHANGE, vhost, e->name);
}

bool topostore_keeps_queue(const struct topostore *s, const char *vhost, const struct queue *q)
{
    return s && topology_queue_in_kafka(q) && !from_config(s->cfg, TOPOREC_QUEUE, vhost, q->name);
}

bool topostore_keeps_binding(const struct topostore *s, const char *vhost, const char *queue,
                             const char *exchange)
{
    if (!s)
        return false;
    const struct exchange *e = topology_exchange(s->srv->topo, vhost, exchange);
    return exchange[0] && e && e->durable &&
           topostore_keeps_queue(s, vhost, topology_queue(s->srv->topo, vhost, queue));
}

/* ---- writing ---- */

static void echo_forget(struct topostore *s, uint64_t tag)
{
    for (size_t i = 0; i < s->n_echoes; i++) {
        if (s->echoes[i].tag == tag) {
            buf_free(&s->echoes[i].key);
            memmove(&s->echoes[i], &s->echoes[i + 1], (s->n_echoes - i - 1) * sizeof *s->echoes);
            s->n_echoes--;
            return;
        }
    }
}

static void finish(struct topostore *s, struct topostore_write *w)
{
    for (struct topostore_write **pp = &s->writes; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    w->done(w->arg, !w->failed);
    free(w->settled);
    free(w);
}

/* confirm_flush's emit: Kafka's answer for one record, or for every one
 * not yet answered up to tag. */
static void settle(void *arg, uint64_t tag, bool multiple, bool ack)
{
    struct topostore *s = arg;
    struct topostore_write *next;
    for (struct topostore_write *w = s->writes; w && w->first <= tag; w = next) {
        next = w->next;
        for (size_t i = 0; i < w->n; i++) {
            uint64_t t = w->first + i;
            if (t > tag || (!multiple && t != tag) || w->settled[i])
                continue;
            w->settled[i] = true;
            w->left--;
            if (!ack) {
                w->failed = true;
                echo_forget(s, t);
            }
        }
        if (!ack) {
            uint64_t now = monotonic_ms();
            if (now - s->last_warn_ms >= 1000) {
                s->last_warn_ms = now;
                log_warn("topology: Kafka did not persist a record of topic %s",
                         s->cfg->topology_topic);
            }
        }
        if (!w->left)
            finish(s, w);
    }
}

static void flush(struct confirm_owner *o)
{
    struct topostore *s = CONTAINER_OF(o, struct topostore, owner);
    confirm_flush(s->confirm, settle, s);
}

/* Hand one record to the sink; returns its tag. */
static uint64_t produce(struct topostore *s, const struct toporecord *r)
{
    uint64_t tag = confirm_next(s->confirm);
    toporecord_key(r, &s->key);
    void *body = NULL;
    size_t body_len = 0;
    if (!r->deleted) {
        if (toporecord_value(r, &s->val)) {
            /* Arguments rabbitmq-c encoded a moment ago: cannot happen. */
            if (!confirm_resolve(s->confirm, tag, false))
                server_mark_dirty(s->srv, &s->owner);
            return tag;
        }
        body_len = s->val.len;
        body = xmalloc(body_len);
        memcpy(body, s->val.data, body_len);
    }
    char writer[64];
    snprintf(writer, sizeof writer, "%s:%" PRIu64, s->writer, tag);
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, WRITER_HEADER, -1, writer, -1);
    struct sink_msg m = {
        .topic = s->cfg->topology_topic,
        .key = s->key.data,
        .key_len = s->key.len,
        .body = body,
        .body_len = body_len,
        .headers = h,
        .tracker = s->confirm,
        .tag = tag,
    };
    if (s->n_echoes == s->cap_echoes) {
        s->cap_echoes = s->cap_echoes ? s->cap_echoes * 2 : 16;
        s->echoes = xrealloc(s->echoes, s->cap_echoes * sizeof *s->echoes);
    }
    struct echo *e = &s->echoes[s->n_echoes++];
    *e = (struct echo){.tag = tag};
    buf_append(&e->key, s->key.data, s->key.len);
    if (sink_produce(s->srv->sink, &m) == SINK_FULL) {
        /* Nothing taken: Kafka is behind; the method fails. */
        free(body);
        rd_kafka_headers_destroy(h);
        if (!confirm_resolve(s->confirm, tag, false))
            server_mark_dirty(s->srv, &s->owner);
    }
    return tag;
}

static void write_records(struct topostore *s, const struct toporecord *recs, size_t n,
                          topostore_done_fn done, void *arg)
{
    struct topostore_write *w = xcalloc(1, sizeof *w);
    w->s = s;
    w->n = w->left = n;
    w->settled = xcalloc(n, sizeof *w->settled);
    w->done = done;
    w->arg = arg;
    struct topostore_write **tail = &s->writes;
    while (*tail)
        tail = &(*tail)->next;
    *tail = w;
    /* Outcomes are flushed from the loop (server_flush_confirms), never
     * from in here: the caller is done with its arg before done runs. */
    for (size_t i = 0; i < n; i++) {
        uint64_t tag = produce(s, &recs[i]);
        if (i == 0)
            w->first = tag;
    }
    server_update_blocked(s->srv);
}

static void name_record(struct toporecord *r, enum toporecord_kind kind, const char *vhost,
                        const char *name)
{
    *r = (struct toporecord){.kind = kind};
    snprintf(r->vhost, sizeof r->vhost, "%s", vhost);
    snprintf(r->name, sizeof r->name, "%s", name);
}

static const char *const type_names[] = {
    [EXCHANGE_DIRECT] = "direct",
    [EXCHANGE_FANOUT] = "fanout",
    [EXCHANGE_TOPIC] = "topic",
    [EXCHANGE_HEADERS] = "headers",
};

void topostore_put_exchange(struct topostore *s, const char *vhost, const struct exchange *e,
                            topostore_done_fn done, void *arg)
{
    struct toporecord r;
    name_record(&r, TOPOREC_EXCHANGE, vhost, e->name);
    snprintf(r.type, sizeof r.type, "%s", type_names[e->type]);
    r.durable = e->durable;
    r.auto_delete = e->auto_delete;
    r.internal = e->internal;
    r.args = (amqp_bytes_t){e->args.len, e->args.data};
    write_records(s, &r, 1, done, arg);
}

void topostore_put_queue(struct topostore *s, const char *vhost, const struct queue *q,
                         topostore_done_fn done, void *arg)
{
    struct toporecord r;
    name_record(&r, TOPOREC_QUEUE, vhost, q->name);
    r.durable = q->durable;
    r.auto_delete = q->auto_delete;
    r.exclusive = q->exclusive;
    r.args = (amqp_bytes_t){q->args.len, q->args.data};
    write_records(s, &r, 1, done, arg);
}

static void binding_record(struct toporecord *r, const char *vhost, const char *queue,
                           const char *exchange, const char *routing_key, amqp_bytes_t args,
                           bool deleted)
{
    name_record(r, TOPOREC_BINDING, vhost, queue);
    snprintf(r->exchange, sizeof r->exchange, "%s", exchange);
    snprintf(r->routing_key, sizeof r->routing_key, "%s", routing_key);
    r->binding_args = args;
    r->deleted = deleted;
}

void topostore_put_binding(struct topostore *s, const char *vhost, const char *queue,
                           const char *exchange, const char *routing_key, amqp_bytes_t args,
                           bool deleted, topostore_done_fn done, void *arg)
{
    struct toporecord r;
    binding_record(&r, vhost, queue, exchange, routing_key, args, deleted);
    write_records(s, &r, 1, done, arg);
}

/* The tombstones of an entity and of its kept bindings. */
struct tombstones {
    struct topostore *s;
    const char *vhost;
    struct toporecord *recs;
    size_t n, cap;
    struct buf args; /* the bindings' arguments, one after the other */
    size_t *args_at;
};

static struct toporecord *tombstone(struct tombstones *ts)
{
    if (ts->n == ts->cap) {
        ts->cap = ts->cap ? ts->cap * 2 : 4;
        ts->recs = xrealloc(ts->recs, ts->cap * sizeof *ts->recs);
        ts->args_at = xrealloc(ts->args_at, ts->cap * sizeof *ts->args_at);
    }
    ts->args_at[ts->n] = ts->args.len;
    return &ts->recs[ts->n++];
}

static void binding_tombstone(void *arg, const char *queue, const char *exchange,
                              const char *routing_key, amqp_bytes_t args)
{
    struct tombstones *ts = arg;
    if (!topostore_keeps_binding(ts->s, ts->vhost, queue, exchange))
        return;
    struct toporecord *r = tombstone(ts);
    /* The topology's bytes may move while bindings are walked: copy. */
    buf_append(&ts->args, args.bytes, args.len);
    binding_record(r, ts->vhost, queue, exchange, routing_key, (amqp_bytes_t){args.len, NULL},
                   true);
}

static void delete_with_bindings(struct topostore *s, const char *vhost, enum toporecord_kind kind,
                                 const char *name, topostore_done_fn done, void *arg)
{
    struct tombstones ts = {.s = s, .vhost = vhost};
    topology_each_binding(s->srv->topo, vhost, kind == TOPOREC_QUEUE ? name : NULL,
                          kind == TOPOREC_EXCHANGE ? name : NULL, binding_tombstone, &ts);
    name_record(tombstone(&ts), kind, vhost, name);
    ts.recs[ts.n - 1].deleted = true;
    for (size_t i = 0; i + 1 < ts.n; i++)
        if (ts.recs[i].binding_args.len)
            ts.recs[i].binding_args.bytes = ts.args.data + ts.args_at[i];
    write_records(s, ts.recs, ts.n, done, arg);
    free(ts.recs);
    free(ts.args_at);
    buf_free(&ts.args);
}

void topostore_delete_exchange(struct topostore *s, const char *vhost, const char *name,
                               topostore_done_fn done, void *arg)
{
    delete_with_bindings(s, vhost, TOPOREC_EXCHANGE, name, done, arg);
}

void topostore_delete_queue(struct topostore *s, const char *vhost, const char *name,
                            topostore_done_fn done, void *arg)
{
    delete_with_bindings(s, vhost, TOPOREC_QUEUE, name, done, arg);
}

/* ---- reading ---- */

/* Whether m is an echo of this process's that a later write of the same
 * key overtakes. Every echo up to m's is read back (or lost) by now. */
static bool overtaken(struct topostore *s, const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *hdrs;
    const void *v;
    size_t size;
    if (rd_kafka_message_headers(m, &hdrs) ||
        rd_kafka_header_get_last(hdrs, WRITER_HEADER, &v, &size))
        return false;
    size_t id_len = strlen(s->writer);
    char text[64];
    if (size <= id_len + 1 || size >= sizeof text || memcmp(v, s->writer, id_len) ||
        ((const char *)v)[id_len] != ':')
        return false;
    memcpy(text, (const char *)v + id_len + 1, size - id_len - 1);
    text[size - id_len - 1] = '\0';
    uint64_t tag = strtoull(text, NULL, 10);
    size_t k = 0;
    while (k < s->n_echoes && s->echoes[k].tag <= tag)
        buf_free(&s->echoes[k++].key);
    memmove(s->echoes, s->echoes + k, (s->n_echoes - k) * sizeof *s->echoes);
    s->n_echoes -= k;
    for (size_t i = 0; i < s->n_echoes; i++)
        if (s->echoes[i].key.len == m->key_len &&
            !memcmp(s->echoes[i].key.data, m->key, m->key_len))
            return true;
    return false;
}

static bool has_vhost(const struct topology *t, const char *vhost)
{
    return topology_exchange(t, vhost, "") != NULL; /* every vhost has the default exchange */
}

static void log_redeclared(const char *what, const struct toporecord *r)
{
    log_warn("topology: %s '%s' in vhost '%s' was declared again with other properties; the "
             "last declaration in the topology topic wins",
             what, r->name, r->vhost);
}

static void apply_exchange(struct topostore *s, const struct toporecord *r)
{
    struct topology *t = s->srv->topo;
    const struct exchange *e = topology_exchange(t, r->vhost, r->name);
    if (r->deleted) {
        if (!e || e->builtin)
            return;
        struct topo_reply rep;
        topology_delete_exchange(t, r->vhost, r->name, false, &rep);
        log_info("topology: exchange '%s' in vhost '%s' deleted (topology topic)", r->name,
                 r->vhost);
        return;
    }
    struct exchange_decl d = {r->name,        r->type,     false,  r->durable,
                              r->auto_delete, r->internal, r->args};
    if (topology_put_exchange(t, r->vhost, &d) && e)
        log_redeclared("exchange", r);
}

static void apply_queue(struct topostore *s, const struct toporecord *r)
{
    struct topology *t = s->srv->topo;
    const struct queue *q = topology_queue(t, r->vhost, r->name);
    if (r->deleted) {
        if (!topology_queue_in_kafka(q))
            return;
        struct topo_reply rep;
        topology_delete_queue(t, r->vhost, r->name, 0, &rep);
        /* Its consumers here are told with basic.cancel; its group is the
         * deleting hopper's to delete (feeds_queue_deleted). */
        if (s->srv->feeds)
            feeds_queue_deleted(s->srv->feeds, r->vhost, r->name, false);
        log_info("topology: queue '%s' in vhost '%s' deleted (topology topic)", r->name, r->vhost);
        return;
    }
    struct queue_decl d = {r->name, false, r->durable, false, r->auto_delete, r->args, 0};
    if (topology_put_queue(t, r->vhost, &d) && q)
        log_redeclared("queue", r);
}

static void apply_binding(struct topostore *s, const struct toporecord *r)
{
    struct topology *t = s->srv->topo;
    if (!topology_queue(t, r->vhost, r->name) || !topology_exchange(t, r->vhost, r->exchange))
        return; /* one of them was deleted since, or never made it here */
    bool has =
        topology_has_binding(t, r->vhost, r->name, r->exchange, r->routing_key, r->binding_args);
    if (has == !r->deleted)
        return;
    struct topo_reply rep;
    if (r->deleted)
        topology_unbind(t, r->vhost, r->name, r->exchange, r->routing_key, r->binding_args, 0,
                        &rep);
    else
        topology_bind(t, r->vhost, r->name, r->exchange, r->routing_key, r->binding_args, 0, &rep);
    if (rep.code != 200)
        log_warn("topology: binding of queue '%s' to exchange '%s' in vhost '%s' (topology "
                 "topic) skipped: %s",
                 r->name, r->exchange, r->vhost, rep.text);
    else if (s->srv->feeds)
        feeds_bindings_changed(s->srv->feeds, r->vhost, r->name);
}

static void apply(struct topostore *s, const rd_kafka_message_t *m)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    struct toporecord r;
    char why[256];
    if (toporecord_decode(m->key, m->key_len, m->payload, m->len, &pool, &r, why, sizeof why)) {
        log_warn("topology: %s offset %" PRId64 ": record skipped: %s", s->cfg->topology_topic,
                 m->offset, why);
        s->skipped++;
    } else if (overtaken(s, m)) {
        log_debug("topology: offset %" PRId64 ": an earlier write of this hopper, overtaken",
                  m->offset);
    } else if (!has_vhost(s->srv->topo, r.vhost) ||
               from_config(s->cfg, r.kind == TOPOREC_EXCHANGE ? TOPOREC_EXCHANGE : TOPOREC_QUEUE,
                           r.vhost, r.name)) {
        /* Another hopper's vhost, or what this hopper's config says. */
        log_debug("topology: offset %" PRId64 ": not this hopper's to apply", m->offset);
    } else {
        if (r.kind == TOPOREC_EXCHANGE)
            apply_exchange(s, &r);
        else if (r.kind == TOPOREC_QUEUE)
            apply_queue(s, &r);
        else
            apply_binding(s, &r);
        s->applied++;
    }
    empty_amqp_pool(&pool);
}

static void reached_end(struct topostore *s)
{
    if (s->state == STORE_LOADED)
        return;
    s->state = STORE_LOADED;
    if (s->deadline_ev)
        event_del(s->deadline_ev);
    log_info("topology: read %s to its end in %" PRIu64 " ms: %" PRIu64 " records applied, %" PRIu64
             " skipped%s",
             s->cfg->topology_topic, monotonic_ms() - s->started_ms, s->applied, s->skipped,
             s->late ? " (after the load deadline)" : "");
    if (!s->late)
        s->loaded(s->srv);
}

static void poll_store(struct topostore *s)
{
    int i;
    for (i = 0; i < POLL_BATCH; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(s->rk, 0);
        if (!m)
            break;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            reached_end(s);
        } else if (m->err) {
            uint64_t now = monotonic_ms();
            if (now - s->last_warn_ms >= 1000) {
                s->last_warn_ms = now;
                log_warn("topology: %s: %s", s->cfg->topology_topic, rd_kafka_message_errstr(m));
            }
        } else {
            apply(s, m);
        }
        rd_kafka_message_destroy(m);
    }
    if (i == POLL_BATCH) /* more to read: on the loop's next turn */
        event_active(s->pipe_ev, EV_READ, 0);
}

static void assign(struct topostore *s)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, s->cfg->topology_topic, 0)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t err = rd_kafka_assign(s->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err)
        log_error("topology: cannot read %s: %s", s->cfg->topology_topic, rd_kafka_err2str(err));
    s->state = STORE_LOADING;
}

static void created(struct topostore *s, rd_kafka_event_t *ev)
{
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t **topics =
        res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
    rd_kafka_resp_err_t err =
        n == 1 ? rd_kafka_topic_result_error(topics[0]) : rd_kafka_event_error(ev);
    const char *why =
        n == 1 ? rd_kafka_topic_result_error_string(topics[0]) : rd_kafka_event_error_string(ev);
    if (!err)
        log_info("topology: created topic %s (compacted, 1 partition)", s->cfg->topology_topic);
    else if (err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        log_error("topology: cannot create topic %s: %s (reading it anyway; writes fail until it "
                  "exists, and if kafka.auto_create_topics makes it, it is not compacted)",
                  s->cfg->topology_topic, why ? why : rd_kafka_err2str(err));
    assign(s);
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
    struct topostore *s = arg;
    drain_pipe(fd);
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(s->admin_q, 0))) {
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_CREATETOPICS_RESULT &&
            s->state == STORE_CREATING)
            created(s, ev);
        rd_kafka_event_destroy(ev);
    }
    if (s->state != STORE_CREATING)
        poll_store(s);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    on_pipe(-1, 0, arg);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct topostore *s = arg;
    if (s->state == STORE_LOADED)
        return;
    s->late = true;
    log_warn("topology: %s not read to its end after %u ms: the durable topology is not loaded "
             "yet; accepting connections anyway, what it holds is applied as it comes",
             s->cfg->topology_topic, s->cfg->topology_load_timeout_ms);
    s->loaded(s->srv);
}

static bool set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err, size_t errlen)
{
    char why[256];
    if (rd_kafka_conf_set(conf, k, v, why, sizeof why) == RD_KAFKA_CONF_OK)
        return true;
    snprintf(err, errlen, "topology consumer: %s: %s", k, why);
    return false;
}

static void create_topic(struct topostore *s)
{
    char why[256], num[16];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(s->cfg->topology_topic, 1,
                                                    s->cfg->replication_factor, why, sizeof why);
    if (!nt) {
        log_error("topology: cannot create topic %s: %s", s->cfg->topology_topic, why);
        assign(s);
        return;
    }
    snprintf(num, sizeof num, "%" PRId32, s->cfg->min_insync_replicas);
    if (rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact") ||
        rd_kafka_NewTopic_set_config(nt, "min.insync.replicas", num))
        log_error("topology: topic %s: cannot set its configuration", s->cfg->topology_topic);
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(s->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(o, CREATE_TIMEOUT_MS, why, sizeof why);
    rd_kafka_CreateTopics(s->rk, &nt, 1, o, s->admin_q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_NewTopic_destroy(nt);
}

static bool start_consumer(struct topostore *s, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The store reads the whole topic every time, from its beginning
     * (assign, not subscribe), and commits nothing. librdkafka's consumer
     * queue needs a group.id; the group is never joined. "<prefix>topology"
     * cannot be a queue's group: those have a dot between vhost and queue
     * after the prefix. EOF events say where the end is. */
    struct buf group = {0};
    buf_printf(&group, "%stopology", s->cfg->group_prefix);
    bool ok = set(conf, "group.id", group.data, err, errlen);
    buf_free(&group);
    if (!ok || !set(conf, "bootstrap.servers", s->cfg->bootstrap_servers, err, errlen) ||
        !set(conf, "client.id", "hopper-topology", err, errlen) ||
        !set(conf, "enable.auto.commit", "false", err, errlen) ||
        !set(conf, "enable.auto.offset.store", "false", err, errlen) ||
        !set(conf, "enable.partition.eof", "true", err, errlen) ||
        !set(conf, "auto.offset.reset", "earliest", err, errlen) ||
        !set(conf, "topic.metadata.refresh.interval.ms", "2000", err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return false;
    }
    char why[512];
    s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    if (!s->rk) {
        snprintf(err, errlen, "topology consumer: %s", why);
        rd_kafka_conf_destroy(conf);
        return false;
    }
    rd_kafka_poll_set_consumer(s->rk);
    s->q = rd_kafka_queue_get_consumer(s->rk);
    s->admin_q = rd_kafka_queue_new(s->rk);
    if (pipe2(s->pipefd, O_NONBLOCK | O_CLOEXEC) == -1) {
        snprintf(err, errlen, "topology consumer: pipe: %s", strerror(errno));
        s->pipefd[0] = s->pipefd[1] = -1;
        return false;
    }
    rd_kafka_queue_io_event_enable(s->q, s->pipefd[1], "1", 1);
    rd_kafka_queue_io_event_enable(s->admin_q, s->pipefd[1], "1", 1);
    struct event_base *base = s->srv->base;
    s->pipe_ev = event_new(base, s->pipefd[0], EV_READ | EV_PERSIST, on_pipe, s);
    s->tick_ev = event_new(base, -1, EV_PERSIST, on_tick, s);
    s->deadline_ev = evtimer_new(base, on_deadline, s);
    uint32_t ms = s->cfg->topology_load_timeout_ms;
    struct timeval tick = {0, TICK_MS * 1000}, deadline = {ms / 1000, (ms % 1000) * 1000};
    if (!s->pipe_ev || !s->tick_ev || !s->deadline_ev || event_add(s->pipe_ev, NULL) ||
        event_add(s->tick_ev, &tick) || evtimer_add(s->deadline_ev, &deadline)) {
        snprintf(err, errlen, "topology consumer: cannot watch its queue");
        return false;
    }
    return true;
}

struct topostore *topostore_new(struct server *srv, void (*loaded)(struct server *srv), char *err,
                                size_t errlen)
{
    struct topostore *s = xcalloc(1, sizeof *s);
    s->srv = srv;
    s->cfg = srv->cfg;
    s->loaded = loaded;
    s->pipefd[0] = s->pipefd[1] = -1;
    s->started_ms = monotonic_ms();
    random_name(s->writer, "");
    s->confirm = confirm_new();
    s->owner.flush = flush;
    confirm_set_owner(s->confirm, &s->owner);
    if (!start_consumer(s, err, errlen)) {
        topostore_free(s);
        return NULL;
    }
    log_info("topology: reading %s (load deadline %u ms)", s->cfg->topology_topic,
             s->cfg->topology_load_timeout_ms);
    create_topic(s);
    return s;
}

void topostore_free(struct topostore *s)
{
    if (!s)
        return;
    server_forget_owner(s->srv, &s->owner);
    confirm_detach(s->confirm);
    while (s->writes) {
        struct topostore_write *w = s->writes;
        w->failed = true; /* abandoned: the sink is about to nack it */
        finish(s, w);
    }
    for (size_t i = 0; i < s->n_echoes; i++)
        buf_free(&s->echoes[i].key);
    free(s->echoes);
    struct event *evs[] = {s->pipe_ev, s->tick_ev, s->deadline_ev};
    for (size_t i = 0; i < ARRAY_LEN(evs); i++)
        if (evs[i])
            event_free(evs[i]);
    if (s->rk) {
        rd_kafka_queue_io_event_enable(s->q, -1, NULL, 0);
        rd_kafka_queue_io_event_enable(s->admin_q, -1, NULL, 0);
        rd_kafka_queue_destroy(s->q);
        rd_kafka_queue_destroy(s->admin_q);
        rd_kafka_consumer_close(s->rk);
        rd_kafka_destroy(s->rk);
    }
    if (s->pipefd[0] != -1) {
        close(s->pipefd[0]);
        close(s->pipefd[1]);
    }
    buf_free(&s->key);
    buf_free(&s->val);
    free(s);
}
