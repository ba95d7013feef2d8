/* deadletter.c - dead-lettering (deadletter.h).
 *
 * The x-death bookkeeping follows RabbitMQ 3.13's rabbit_dead_letter: the
 * entry for this (queue, reason) moves to the head of the array with its
 * count raised by one, its other fields kept; a first death adds an entry
 * with count 1. x-first-death-{reason,queue,exchange} are set once,
 * x-last-death-{reason,queue,exchange} every time. */
#include "deadletter.h"

#include <string.h>
#include <time.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "binding.h"
#include "confirm.h"
#include "log.h"
#include "record.h"
#include "router.h"
#include "server.h"
#include "sink.h"
#include "topology.h"

struct deadletters {
    struct server *srv;
    struct confirm *confirm; /* hopper as the dead letters' publisher */
    struct confirm_owner owner;
    /* Dead letters waiting for Kafka: slots[tag - base], NULL once
     * settled. Tags come in order, one per dead letter. */
    struct feed_msg **slots;
    uint64_t base;
    size_t n, cap;
    uint64_t last_warn_ms;
};

static void flush(struct confirm_owner *o);

struct deadletters *deadletters_new(struct server *srv)
{
    struct deadletters *d = xcalloc(1, sizeof *d);
    d->srv = srv;
    d->confirm = confirm_new();
    d->owner.flush = flush;
    confirm_set_owner(d->confirm, &d->owner);
    d->base = 1; /* confirm_next's first tag */
    return d;
}

void deadletters_free(struct deadletters *d)
{
    if (!d)
        return;
    server_forget_owner(d->srv, &d->owner);
    /* Not persisted: back to the queue, which commits nothing past them. */
    for (size_t i = 0; i < d->n; i++)
        if (d->slots[i])
            feed_requeue(d->slots[i]);
    confirm_detach(d->confirm);
    free(d->slots);
    free(d);
}

static void hold(struct deadletters *d, struct feed_msg *m)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 64;
        d->slots = xrealloc(d->slots, d->cap * sizeof *d->slots);
    }
    d->slots[d->n++] = m;
}

static struct feed_msg *take(struct deadletters *d, uint64_t tag)
{
    if (tag < d->base || tag - d->base >= d->n)
        return NULL;
    struct feed_msg *m = d->slots[tag - d->base];
    d->slots[tag - d->base] = NULL;
    return m;
}

/* confirm_flush's emit: Kafka's answer for one dead letter, or for every
 * one up to tag. */
static void settle(void *arg, uint64_t tag, bool multiple, bool ack)
{
    struct deadletters *d = arg;
    for (uint64_t t = multiple ? d->base : tag; t <= tag; t++) {
        struct feed_msg *m = take(d, t);
        if (!m)
            continue;
        struct feed *f = m->feed;
        if (ack) {
            feed_done(m);
            continue;
        }
        uint64_t now = monotonic_ms();
        if (now - d->last_warn_ms >= 1000) {
            d->last_warn_ms = now;
            log_warn("queue '%s': Kafka did not take a dead letter; the message goes back to "
                     "the queue",
                     feed_queue_name(f));
        }
        feed_requeue(m);
        feed_dispatch(f);
    }
}

static void flush(struct confirm_owner *o)
{
    struct deadletters *d = CONTAINER_OF(o, struct deadletters, owner);
    confirm_flush(d->confirm, settle, d);
    size_t k = 0;
    while (k < d->n && !d->slots[k])
        k++;
    memmove(d->slots, d->slots + k, (d->n - k) * sizeof *d->slots);
    d->n -= k;
    d->base += k;
}

/* ---- x-death ---- */

static bool bytes_is(amqp_bytes_t b, const char *s)
{
    return b.len == strlen(s) && !memcmp(b.bytes, s, b.len);
}

static bool is_text(const amqp_field_value_t *v)
{
    return v && (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES);
}

static amqp_field_value_t text(amqp_bytes_t b)
{
    return (amqp_field_value_t){.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = b};
}

static int64_t integer(const amqp_field_value_t *v)
{
    int64_t n;
    return v && field_integer(v, &n) ? n : 0;
}

struct death {
    amqp_bytes_t queue, reason, exchange, routing_key;
    const amqp_bytes_t *expiration; /* the message's, or NULL */
};

static void put(amqp_table_entry_t *e, int *n, const char *key, amqp_field_value_t v)
{
    e[*n].key = amqp_cstring_bytes(key);
    e[*n].value = v;
    (*n)++;
}

/* The x-death entry of a first death of this kind. */
static amqp_field_value_t first_death(amqp_pool_t *pool, const struct death *dt)
{
    amqp_table_entry_t *e = amqp_pool_alloc(pool, 7 * sizeof *e);
    amqp_field_value_t *keys = amqp_pool_alloc(pool, sizeof *keys);
    if (!e || !keys)
        return (amqp_field_value_t){.kind = AMQP_FIELD_KIND_VOID};
    keys[0] = text(dt->routing_key);
    int n = 0;
    put(e, &n, "count", (amqp_field_value_t){.kind = AMQP_FIELD_KIND_I64, .value.i64 = 1});
    put(e, &n, "reason", text(dt->reason));
    put(e, &n, "queue", text(dt->queue));
    put(e, &n, "time",
        (amqp_field_value_t){.kind = AMQP_FIELD_KIND_TIMESTAMP, .value.u64 = (uint64_t)time(NULL)});
    put(e, &n, "exchange", text(dt->exchange));
    put(e, &n, "routing-keys",
        (amqp_field_value_t){.kind = AMQP_FIELD_KIND_ARRAY, .value.array = {1, keys}});
    if (dt->expiration)
        put(e, &n, "original-expiration", text(*dt->expiration));
    return (amqp_field_value_t){.kind = AMQP_FIELD_KIND_TABLE, .value.table = {n, e}};
}

/* An earlier entry for the same queue and reason: count + 1, the rest kept. */
static amqp_field_value_t again(amqp_pool_t *pool, const amqp_table_t *old)
{
    amqp_table_entry_t *e = amqp_pool_alloc(pool, (size_t)(old->num_entries + 1) * sizeof *e);
    if (!e)
        return (amqp_field_value_t){.kind = AMQP_FIELD_KIND_VOID};
    int n = 0;
    int64_t count = integer(table_lookup(old, "count"));
    for (int i = 0; i < old->num_entries; i++)
        if (!bytes_is(old->entries[i].key, "count"))
            e[n++] = old->entries[i];
    put(e, &n, "count", (amqp_field_value_t){.kind = AMQP_FIELD_KIND_I64, .value.i64 = count + 1});
    return (amqp_field_value_t){.kind = AMQP_FIELD_KIND_TABLE, .value.table = {n, e}};
}

static bool same_death(const amqp_field_value_t *v, const struct death *dt)
{
    if (v->kind != AMQP_FIELD_KIND_TABLE)
        return false;
    const amqp_field_value_t *q = table_lookup(&v->value.table, "queue");
    const amqp_field_value_t *r = table_lookup(&v->value.table, "reason");
    return is_text(q) && is_text(r) && q->value.bytes.len == dt->queue.len &&
           !memcmp(q->value.bytes.bytes, dt->queue.bytes, dt->queue.len) &&
           r->value.bytes.len == dt->reason.len &&
           !memcmp(r->value.bytes.bytes, dt->reason.bytes, dt->reason.len);
}

static bool is_death_key(amqp_bytes_t k)
{
    return bytes_is(k, "x-death") || bytes_is(k, "x-last-death-reason") ||
           bytes_is(k, "x-last-death-queue") || bytes_is(k, "x-last-death-exchange");
}

/* headers (may be NULL) with this death recorded. */
static amqp_table_t with_death(amqp_pool_t *pool, const amqp_table_t *headers,
                               const struct death *dt)
{
    int n_old = headers ? headers->num_entries : 0;
    const amqp_field_value_t *xd = headers ? table_lookup(headers, "x-death") : NULL;
    const amqp_array_t *prev = xd && xd->kind == AMQP_FIELD_KIND_ARRAY ? &xd->value.array : NULL;
    int n_prev = prev ? prev->num_entries : 0;
    amqp_field_value_t *deaths = amqp_pool_alloc(pool, (size_t)(n_prev + 1) * sizeof *deaths);
    amqp_table_entry_t *e = amqp_pool_alloc(pool, (size_t)(n_old + 7) * sizeof *e);
    if (!deaths || !e)
        return headers ? *headers : amqp_empty_table;
    int nd = 1;
    bool found = false;
    for (int i = 0; i < n_prev; i++) {
        if (!found && same_death(&prev->entries[i], dt)) {
            deaths[0] = again(pool, &prev->entries[i].value.table);
            found = true;
        } else {
            deaths[nd++] = prev->entries[i];
        }
    }
    if (!found)
        deaths[0] = first_death(pool, dt);

    int n = 0;
    for (int i = 0; i < n_old; i++)
        if (!is_death_key(headers->entries[i].key))
            e[n++] = headers->entries[i];
    put(e, &n, "x-death",
        (amqp_field_value_t){.kind = AMQP_FIELD_KIND_ARRAY, .value.array = {nd, deaths}});
    if (!headers || !table_lookup(headers, "x-first-death-reason")) {
        put(e, &n, "x-first-death-reason", text(dt->reason));
        put(e, &n, "x-first-death-queue", text(dt->queue));
        put(e, &n, "x-first-death-exchange", text(dt->exchange));
    }
    put(e, &n, "x-last-death-reason", text(dt->reason));
    put(e, &n, "x-last-death-queue", text(dt->queue));
    put(e, &n, "x-last-death-exchange", text(dt->exchange));
    return (amqp_table_t){n, e};
}

/* ---- publishing ---- */

/* Encode props into the pool; {0, NULL} when they do not fit in a frame. */
static amqp_bytes_t encode(amqp_pool_t *pool, amqp_basic_properties_t *props, size_t hint)
{
    for (size_t cap = hint + 4096; cap <= 4 * (hint + 4096); cap *= 2) {
        amqp_bytes_t out;
        amqp_pool_alloc_bytes(pool, cap, &out);
        if (!out.bytes)
            break;
        int len = amqp_encode_properties(AMQP_BASIC_CLASS, props, out);
        if (len >= 0) {
            out.len = (size_t)len;
            return out;
        }
    }
    return (amqp_bytes_t){0, NULL};
}

/* Publish m's dead letter: copies to the transient queues it reaches, a
 * record to Kafka if it routes there. false when nothing waits for Kafka
 * (no such exchange, no route, transient queues only) or it cannot be
 * built: then m is simply done. */
static bool publish(struct deadletters *d, struct feed_msg *m, const char *vhost, const char *queue,
                    amqp_bytes_t dlx, amqp_bytes_t rk, const char *reason, amqp_pool_t *pool)
{
    struct server *srv = d->srv;
    char xname[256];
    snprintf(xname, sizeof xname, "%.*s", (int)dlx.len, (const char *)dlx.bytes);
    if (dlx.len && !topology_exchange(srv->topo, vhost, xname))
        return false; /* RabbitMQ drops it too */
    amqp_basic_properties_t *props = NULL;
    if (amqp_decode_properties(AMQP_BASIC_CLASS, pool, (amqp_bytes_t){m->props_len, m->props},
                               (void **)&props) < 0)
        return false;
    struct death dt = {
        .queue = amqp_cstring_bytes(queue),
        .reason = amqp_cstring_bytes(reason),
        .exchange = {m->exchange_len, m->exchange},
        .routing_key = {m->routing_key_len, m->routing_key},
    };
    if (props->_flags & AMQP_BASIC_EXPIRATION_FLAG) {
        dt.expiration = &props->expiration;
        props->_flags &= ~AMQP_BASIC_EXPIRATION_FLAG;
    }
    props->headers =
        with_death(pool, (props->_flags & AMQP_BASIC_HEADERS_FLAG) ? &props->headers : NULL, &dt);
    props->_flags |= AMQP_BASIC_HEADERS_FLAG;
    amqp_bytes_t raw = encode(pool, props, m->props_len);
    if (!raw.bytes)
        return false;

    struct feed_routed mem = {0};
    if (srv->feeds) {
        struct feed_src copy = {dlx.bytes, dlx.len, rk.bytes,    rk.len,          raw.bytes,
                                raw.len,   m->body, m->body_len, &props->headers, NULL};
        feeds_route_transient(srv->feeds, vhost, &copy, &mem);
    }
    struct route_target target;
    if (mem.only_here || router_route(srv->router, vhost, dlx.bytes, dlx.len, rk.bytes, rk.len,
                                      &srv->scratch, &target) != ROUTE_OK)
        return false;
    /* The record says what the dead letter was published with: the
     * dead-letter exchange and routing key, the new properties. */
    struct record_src src = {dlx.bytes, dlx.len, rk.bytes, rk.len, props, raw.bytes, raw.len};
    void *body = xmalloc(m->body_len ? m->body_len : 1);
    memcpy(body, m->body, m->body_len);
    struct sink_msg sm = {
        .topic = target.topic,
        .body = body,
        .body_len = m->body_len,
        .headers = record_headers(&src),
        .tracker = d->confirm,
        .tag = confirm_next(d->confirm),
    };
    record_key(&src, &target, &srv->key_scratch, &sm.key, &sm.key_len);
    hold(d, m);
    if (sink_produce(srv->sink, &sm) == SINK_FULL) {
        /* Nothing taken: Kafka is behind. The message goes back to its
         * queue when this outcome is flushed. */
        free(body);
        rd_kafka_headers_destroy(sm.headers);
        if (!confirm_resolve(d->confirm, sm.tag, false))
            server_mark_dirty(srv, &d->owner);
    }
    server_update_blocked(srv);
    return true;
}

bool deadletter_args_valid(const amqp_table_t *args, const char *vhost, const char *queue,
                           char *err, size_t errlen)
{
    static const char *const keys[] = {"x-dead-letter-exchange", "x-dead-letter-routing-key"};
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        const amqp_field_value_t *v = table_lookup(args, keys[i]);
        if (v && v->kind != AMQP_FIELD_KIND_UTF8) {
            snprintf(err, errlen,
                     "PRECONDITION_FAILED - invalid type '%s' for arg '%s' in queue '%s' in vhost "
                     "'%s'",
                     field_type_name(v->kind), keys[i], queue, vhost);
            return false;
        }
    }
    if (table_lookup(args, keys[1]) && !table_lookup(args, keys[0])) {
        snprintf(err, errlen,
                 "PRECONDITION_FAILED - invalid arg '%s' for queue '%s' in vhost '%s': "
                 "routing_key_but_no_dlx_defined",
                 keys[1], queue, vhost);
        return false;
    }
    return true;
}

bool deadletter(struct deadletters *d, struct feed_msg *m, const char *vhost, const char *queue,
                const char *reason)
{
    const struct queue *q = d ? topology_queue(d->srv->topo, vhost, queue) : NULL;
    if (!q || !q->args.len)
        return false;
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_table_t args;
    size_t off = 0;
    bool taken = false;
    if (amqp_decode_table((amqp_bytes_t){q->args.len, q->args.data}, &pool, &args, &off) == 0) {
        const amqp_field_value_t *dlx = table_lookup(&args, "x-dead-letter-exchange");
        const amqp_field_value_t *dlrk = table_lookup(&args, "x-dead-letter-routing-key");
        if (is_text(dlx)) {
            amqp_bytes_t rk = is_text(dlrk) ? dlrk->value.bytes
                                            : (amqp_bytes_t){m->routing_key_len, m->routing_key};
            if (!publish(d, m, vhost, queue, dlx->value.bytes, rk, reason, &pool))
                feed_done(m); /* nowhere to go: dropped, as on RabbitMQ */
            taken = true;
        }
    }
    empty_amqp_pool(&pool);
    return taken;
}
