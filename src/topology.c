/* topology.c - exchanges, queues and bindings per virtual host (see
 * topology.h). Reply texts follow RabbitMQ's, since client code and
 * operators grep for them. */
#include "topology.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "log.h"

struct bound {
    char *queue, *exchange, *routing_key;
    struct buf args;    /* encoded, for equivalence */
    amqp_pool_t pool;   /* holds table */
    amqp_table_t table; /* decoded, for matching records (feed.c) */
};

struct vhost {
    struct strmap exchanges; /* name -> struct exchange */
    struct strmap queues;    /* name -> struct queue */
    struct bound *bindings;
    size_t n_bindings, cap_bindings;
};

struct topology {
    struct strmap vhosts; /* name -> struct vhost */
};

static const char *const type_names[] = {
    [EXCHANGE_DIRECT] = "direct",
    [EXCHANGE_FANOUT] = "fanout",
    [EXCHANGE_TOPIC] = "topic",
    [EXCHANGE_HEADERS] = "headers",
};

static void reply(struct topo_reply *r, uint16_t code, const char *fmt, ...) PRINTF_LIKE(3, 4);

static void reply(struct topo_reply *r, uint16_t code, const char *fmt, ...)
{
    r->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->text, sizeof r->text, fmt, ap);
    va_end(ap);
}

static void ok(struct topo_reply *r)
{
    r->code = 200;
    r->text[0] = '\0';
}

int topology_exchange_type(const char *name, size_t len)
{
    for (size_t i = 0; i < ARRAY_LEN(type_names); i++)
        if (strlen(type_names[i]) == len && memcmp(type_names[i], name, len) == 0)
            return (int)i;
    return -1;
}

static struct exchange *exchange_new(const char *name, enum exchange_type type, bool durable,
                                     bool builtin)
{
    struct exchange *e = xcalloc(1, sizeof *e);
    e->name = xstrdup(name);
    e->type = type;
    e->durable = durable;
    e->builtin = builtin;
    return e;
}

static void exchange_free(struct exchange *e)
{
    free(e->name);
    buf_free(&e->args);
    free(e);
}

static void queue_free(struct queue *q)
{
    free(q->name);
    buf_free(&q->args);
    free(q);
}

static void binding_clear(struct bound *b)
{
    free(b->queue);
    free(b->exchange);
    free(b->routing_key);
    buf_free(&b->args);
    empty_amqp_pool(&b->pool);
}

/* The exchanges every RabbitMQ vhost has. */
static void vhost_add_builtins(struct vhost *v)
{
    static const struct {
        const char *name;
        enum exchange_type type;
    } builtins[] = {
        {"", EXCHANGE_DIRECT},
        {"amq.direct", EXCHANGE_DIRECT},
        {"amq.fanout", EXCHANGE_FANOUT},
        {"amq.topic", EXCHANGE_TOPIC},
        {"amq.headers", EXCHANGE_HEADERS},
        {"amq.match", EXCHANGE_HEADERS},
    };
    for (size_t i = 0; i < ARRAY_LEN(builtins); i++)
        strmap_put(&v->exchanges, builtins[i].name,
                   exchange_new(builtins[i].name, builtins[i].type, true, true));
}

struct topology *topology_new(const struct config *cfg)
{
    struct topology *t = xcalloc(1, sizeof *t);
    for (size_t i = 0; i < cfg->n_vhosts; i++) {
        struct vhost *v = xcalloc(1, sizeof *v);
        vhost_add_builtins(v);
        strmap_put(&t->vhosts, cfg->vhosts[i], v);
    }
    for (size_t i = 0; i < cfg->n_exchanges; i++) {
        const struct exchange_cfg *x = &cfg->exchanges[i];
        struct vhost *v = strmap_get(&t->vhosts, x->vhost);
        if (v && !strmap_has(&v->exchanges, x->name))
            strmap_put(&v->exchanges, x->name, exchange_new(x->name, x->type, true, false));
    }
    /* queues: from the config exist from startup, durable, as if declared. */
    for (size_t i = 0; i < cfg->n_queues; i++) {
        const struct queue_cfg *qc = &cfg->queues[i];
        struct vhost *v = strmap_get(&t->vhosts, qc->vhost);
        if (!v || strmap_has(&v->queues, qc->name))
            continue;
        struct queue *q = xcalloc(1, sizeof *q);
        q->name = xstrdup(qc->name);
        q->durable = true;
        strmap_put(&v->queues, qc->name, q);
    }
    return t;
}

void topology_free(struct topology *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->vhosts.cap; i++) {
        struct vhost *v = t->vhosts.slots[i].value;
        if (!t->vhosts.slots[i].key)
            continue;
        for (size_t j = 0; j < v->exchanges.cap; j++)
            if (v->exchanges.slots[j].key)
                exchange_free(v->exchanges.slots[j].value);
        for (size_t j = 0; j < v->queues.cap; j++)
            if (v->queues.slots[j].key)
                queue_free(v->queues.slots[j].value);
        for (size_t j = 0; j < v->n_bindings; j++)
            binding_clear(&v->bindings[j]);
        strmap_free(&v->exchanges);
        strmap_free(&v->queues);
        free(v->bindings);
        free(v);
    }
    strmap_free(&t->vhosts);
    free(t);
}

static struct vhost *vhost(const struct topology *t, const char *name)
{
    return strmap_get(&t->vhosts, name);
}

const struct exchange *topology_exchange(const struct topology *t, const char *vhost_name,
                                         const char *name)
{
    struct vhost *v = vhost(t, vhost_name);
    return v ? strmap_get(&v->exchanges, name) : NULL;
}

static bool args_equal(const struct buf *have, amqp_bytes_t want)
{
    return have->len == want.len &&
           (want.len == 0 || memcmp(have->data, want.bytes, want.len) == 0);
}

static const char *yes_no(bool b)
{
    return b ? "true" : "false";
}

/* The arguments RabbitMQ 3.10 compares when a queue is declared again
 * (rabbit_amqqueue:declare_args/0), in its order; any others may differ. */
static const char *const queue_equivalent_args[] = {
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
};

/* rabbit_misc:val/1: a value as the reply text shows it. */
static void show_value(const amqp_field_value_t *v, bool with_type, char *out, size_t cap)
{
    char value[300];
    int64_t n;
    if (!v)
        snprintf(value, sizeof value, "none");
    else if (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES)
        snprintf(value, sizeof value, "%.*s",
                 (int)(v->value.bytes.len > 255 ? 255 : v->value.bytes.len),
                 (const char *)v->value.bytes.bytes);
    else if (field_integer(v, &n))
        snprintf(value, sizeof value, "%" PRId64, n);
    else if (v->kind == AMQP_FIELD_KIND_BOOLEAN)
        snprintf(value, sizeof value, "%s", yes_no(v->value.boolean));
    else
        snprintf(value, sizeof value, "(a %s)", field_type_name(v->kind));
    if (!v)
        snprintf(out, cap, "none");
    else if (with_type)
        snprintf(out, cap, "the value '%s' of type '%s'", value, field_type_name(v->kind));
    else
        snprintf(out, cap, "'%s'", value);
}

/* rabbit_misc:assert_args_equivalence/4 for a queue: the first of
 * queue_equivalent_args whose value (integers of any width alike) differs
 * makes r a 406 in RabbitMQ's words. Returns false then. */
static bool queue_args_equivalent(const struct buf *have, amqp_bytes_t want, const char *queue,
                                  const char *vhost_name, struct topo_reply *r)
{
    if (args_equal(have, want))
        return true;
    amqp_pool_t pool;
    init_amqp_pool(&pool, 1024);
    amqp_table_t cur = {0, NULL}, got = {0, NULL};
    size_t off = 0;
    if (have->len && amqp_decode_table((amqp_bytes_t){have->len, have->data}, &pool, &cur, &off))
        cur = (amqp_table_t){0, NULL};
    off = 0;
    if (want.len && amqp_decode_table(want, &pool, &got, &off))
        got = (amqp_table_t){0, NULL};
    bool same = true;
    for (size_t i = 0; same && i < ARRAY_LEN(queue_equivalent_args); i++) {
        const char *key = queue_equivalent_args[i];
        const amqp_field_value_t *a = table_lookup(&cur, key), *b = table_lookup(&got, key);
        int64_t x, y;
        if (!a && !b)
            continue;
        if (a && b) {
            bool ints = field_integer(a, &x) && field_integer(b, &y);
            same = ints ? x == y : a->kind == b->kind && field_equal(a, b);
        } else {
            same = false;
        }
        if (same)
            continue;
        char shown_got[400], shown_cur[400];
        show_value(b, !a || !b, shown_got, sizeof shown_got);
        show_value(a, !a || !b, shown_cur, sizeof shown_cur);
        reply(r, AMQP_PRECONDITION_FAILED,
              "PRECONDITION_FAILED - inequivalent arg '%s' for queue '%s' in vhost '%s': "
              "received %s but current is %s",
              key, queue, vhost_name, shown_got, shown_cur);
    }
    empty_amqp_pool(&pool);
    return same;
}

void topology_declare_exchange(struct topology *t, const char *vhost_name,
                               const struct exchange_decl *d, struct topo_reply *r)
{
    struct vhost *v = vhost(t, vhost_name);
    if (!d->name[0]) {
        reply(r, AMQP_ACCESS_REFUSED,
              "ACCESS_REFUSED - operation not permitted on the default "
              "exchange");
        return;
    }
    struct exchange *e = strmap_get(&v->exchanges, d->name);
    if (d->passive) {
        if (!e)
            reply(r, AMQP_NOT_FOUND, "NOT_FOUND - no exchange '%s' in vhost '%s'", d->name,
                  vhost_name);
        else
            ok(r);
        return;
    }
    int type = topology_exchange_type(d->type, strlen(d->type));
    if (type < 0) {
        /* A connection error on RabbitMQ too. */
        reply(r, AMQP_COMMAND_INVALID, "COMMAND_INVALID - unknown exchange type '%s'", d->type);
        return;
    }
    if (!e) {
        if (!strncmp(d->name, "amq.", 4)) {
            reply(r, AMQP_ACCESS_REFUSED,
                  "ACCESS_REFUSED - exchange name '%s' contains reserved prefix 'amq.*'", d->name);
            return;
        }
        e = exchange_new(d->name, (enum exchange_type)type, d->durable, false);
        e->auto_delete = d->auto_delete;
        e->internal = d->internal;
        buf_append(&e->args, d->args.bytes, d->args.len);
        strmap_put(&v->exchanges, d->name, e);
        ok(r);
        return;
    }
    const char *what = NULL;
    char got[16] = "", cur[16] = "";
    if ((int)e->type != type) {
        what = "type";
        snprintf(got, sizeof got, "%s", type_names[type]);
        snprintf(cur, sizeof cur, "%s", type_names[e->type]);
    } else if (e->durable != d->durable) {
        what = "durable";
        snprintf(got, sizeof got, "%s", yes_no(d->durable));
        snprintf(cur, sizeof cur, "%s", yes_no(e->durable));
    } else if (e->auto_delete != d->auto_delete) {
        what = "auto_delete";
        snprintf(got, sizeof got, "%s", yes_no(d->auto_delete));
        snprintf(cur, sizeof cur, "%s", yes_no(e->auto_delete));
    } else if (e->internal != d->internal) {
        what = "internal";
        snprintf(got, sizeof got, "%s", yes_no(d->internal));
        snprintf(cur, sizeof cur, "%s", yes_no(e->internal));
    }
    if (what)
        reply(r, AMQP_PRECONDITION_FAILED,
              "PRECONDITION_FAILED - inequivalent arg '%s' for exchange '%s' in vhost '%s': "
              "received '%s' but current is '%s'",
              what, d->name, vhost_name, got, cur);
    else if (!e->builtin && !args_equal(&e->args, d->args))
        reply(r, AMQP_PRECONDITION_FAILED,
              "PRECONDITION_FAILED - inequivalent arguments for exchange '%s' in vhost '%s'",
              d->name, vhost_name);
    else
        ok(r);
}

static bool exchange_in_use(const struct vhost *v, const char *name)
{
    for (size_t i = 0; i < v->n_bindings; i++)
        if (!strcmp(v->bindings[i].exchange, name))
            return true;
    return false;
}

/* Remove bindings matching queue (or exchange) name; NULL matches any. */
static void unbind_where(struct vhost *v, const char *queue, const char *exchange)
{
    size_t kept = 0;
    for (size_t i = 0; i < v->n_bindings; i++) {
        struct bound *b = &v->bindings[i];
        if ((queue && !strcmp(b->queue, queue)) || (exchange && !strcmp(b->exchange, exchange)))
            binding_clear(b);
        else
            v->bindings[kept++] = *b;
    }
    v->n_bindings = kept;
}

void topology_delete_exchange(struct topology *t, const char *vhost_name, const char *name,
                              bool if_unused, struct topo_reply *r)
{
    struct vhost *v = vhost(t, vhost_name);
    struct exchange *e = strmap_get(&v->exchanges, name);
    if (!name[0] || (e && e->builtin) || !strncmp(name, "amq.", 4)) {
        reply(r, AMQP_ACCESS_REFUSED, "ACCESS_REFUSED - operation not permitted on exchange '%s'",
              name);
        return;
    }
    if (!e) {
        /* Deleting what does not exist succeeds, as on RabbitMQ 3.x. */
        ok(r);
        return;
    }
    if (if_unused && exchange_in_use(v, name)) {
        reply(r, AMQP_PRECONDITION_FAILED,
              "PRECONDITION_FAILED - exchange '%s' in vhost '%s' in use", name, vhost_name);
        return;
    }
    unbind_where(v, NULL, name);
    exchange_free(strmap_del(&v->exchanges, name));
    ok(r);
}

static void queue_locked(struct topo_reply *r, const char *name, const char *vhost_name)
{
    reply(r, AMQP_RESOURCE_LOCKED,
          "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost '%s'",
          name, vhost_name);
}

static void queue_not_found(struct topo_reply *r, const char *name, const char *vhost_name)
{
    reply(r, AMQP_NOT_FOUND, "NOT_FOUND - no queue '%s' in vhost '%s'", name, vhost_name);
}

void topology_declare_queue(struct topology *t, const char *vhost_name, const struct queue_decl *d,
                            char *name_out, struct topo_reply *r)
{
    struct vhost *v = vhost(t, vhost_name);
    if (!d->name[0]) {
        if (d->passive) {
            queue_not_found(r, "", vhost_name);
            return;
        }
        do
            random_name(name_out, "amq.gen-");
        while (strmap_has(&v->queues, name_out));
    } else {
        snprintf(name_out, 256, "%s", d->name);
    }
    struct queue *q = strmap_get(&v->queues, name_out);
    if (q && q->exclusive && q->owner != d->conn_id) {
        queue_locked(r, name_out, vhost_name);
        return;
    }
    if (d->passive) {
        if (!q)
            queue_not_found(r, name_out, vhost_name);
        else
            ok(r);
        return;
    }
    if (!q) {
        if (d->name[0] && !strncmp(d->name, "amq.", 4)) {
            reply(r, AMQP_ACCESS_REFUSED,
                  "ACCESS_REFUSED - queue name '%s' contains reserved prefix 'amq.*'", d->name);
            return;
        }
        q = xcalloc(1, sizeof *q);
        q->name = xstrdup(name_out);
        q->durable = d->durable;
        q->exclusive = d->exclusive;
        q->auto_delete = d->auto_delete;
        q->owner = d->exclusive ? d->conn_id : 0;
        buf_append(&q->args, d->args.bytes, d->args.len);
        strmap_put(&v->queues, name_out, q);
        ok(r);
        return;
    }
    const char *what = NULL;
    bool got = false, cur = false;
    if (q->durable != d->durable) {
        what = "durable";
        got = d->durable;
        cur = q->durable;
    } else if (q->exclusive != d->exclusive) {
        /* RabbitMQ reports a changed exclusive flag as a lock. */
        queue_locked(r, name_out, vhost_name);
        return;
    } else if (q->auto_delete != d->auto_delete) {
        what = "auto_delete";
        got = d->auto_delete;
        cur = q->auto_delete;
    }
    if (what)
        reply(r, AMQP_PRECONDITION_FAILED,
              "PRECONDITION_FAILED - inequivalent arg '%s' for queue '%s' in vhost '%s': "
              "received '%s' but current is '%s'",
              what, name_out, vhost_name, yes_no(got), yes_no(cur));
    else if (queue_args_equivalent(&q->args, d->args, name_out, vhost_name, r))
        ok(r);
}

void topology_check_queue(struct topology *t, const char *vhost_name, const char *name,
                          uint64_t conn_id, struct topo_reply *r)
{
    struct queue *q = strmap_get(&vhost(t, vhost_name)->queues, name);
    if (!q)
        queue_not_found(r, name, vhost_name);
    else if (q->exclusive && q->owner != conn_id)
        queue_locked(r, name, vhost_name);
    else
        ok(r);
}

void topology_delete_queue(struct topology *t, const char *vhost_name, const char *name,
                           uint64_t conn_id, struct topo_reply *r)
{
    struct vhost *v = vhost(t, vhost_name);
    struct queue *q = strmap_get(&v->queues, name);
    if (!q) {
        ok(r); /* idempotent, as on RabbitMQ 3.x */
        return;
    }
    if (q->exclusive && q->owner != conn_id) {
        queue_locked(r, name, vhost_name);
        return;
    }
    unbind_where(v, name, NULL);
    queue_free(strmap_del(&v->queues, name));
    ok(r);
}

/* Common checks of bind and unbind. Returns the vhost, or NULL with r set. */
static struct vhost *check_binding(struct topology *t, const char *vhost_name, const char *queue,
                                   const char *exchange, uint64_t conn_id, struct topo_reply *r)
{
    struct vhost *v = vhost(t, vhost_name);
    if (!exchange[0]) {
        reply(r, AMQP_ACCESS_REFUSED,
              "ACCESS_REFUSED - operation not permitted on the default "
              "exchange");
        return NULL;
    }
    topology_check_queue(t, vhost_name, queue, conn_id, r);
    if (r->code != 200)
        return NULL;
    if (!strmap_has(&v->exchanges, exchange)) {
        reply(r, AMQP_NOT_FOUND, "NOT_FOUND - no exchange '%s' in vhost '%s'", exchange,
              vhost_name);
        return NULL;
    }
    return v;
}

static struct bound *find_binding(struct vhost *v, const char *queue, const char *exchange,
                                  const char *routing_key, amqp_bytes_t args)
{
    for (size_t i = 0; i < v->n_bindings; i++) {
        struct bound *b = &v->bindings[i];
        if (!strcmp(b->queue, queue) && !strcmp(b->exchange, exchange) &&
            !strcmp(b->routing_key, routing_key) && args_equal(&b->args, args))
            return b;
    }
    return NULL;
}

void topology_bind(struct topology *t, const char *vhost_name, const char *queue,
                   const char *exchange, const char *routing_key, amqp_bytes_t args,
                   uint64_t conn_id, struct topo_reply *r)
{
    struct vhost *v = check_binding(t, vhost_name, queue, exchange, conn_id, r);
    if (!v || find_binding(v, queue, exchange, routing_key, args))
        return;
    amqp_pool_t pool;
    init_amqp_pool(&pool, 512);
    amqp_table_t table = {0, NULL};
    size_t off = 0;
    /* The channel encoded these from a depth-checked table. */
    if (args.len && amqp_decode_table(args, &pool, &table, &off) != AMQP_STATUS_OK)
        table = (amqp_table_t){0, NULL};
    const struct exchange *e = strmap_get(&v->exchanges, exchange);
    char why[sizeof r->text];
    if (!binding_args_valid(e->type, &table, why, sizeof why)) {
        reply(r, AMQP_PRECONDITION_FAILED, "%s", why);
        empty_amqp_pool(&pool);
        return;
    }
    if (v->n_bindings == v->cap_bindings) {
        v->cap_bindings = v->cap_bindings ? v->cap_bindings * 2 : 16;
        v->bindings = xrealloc(v->bindings, v->cap_bindings * sizeof *v->bindings);
    }
    struct bound *b = &v->bindings[v->n_bindings++];
    *b = (struct bound){
        .queue = xstrdup(queue),
        .exchange = xstrdup(exchange),
        .routing_key = xstrdup(routing_key),
        .pool = pool, /* the decoded table lives in its blocks */
        .table = table,
    };
    buf_append(&b->args, args.bytes, args.len);
}

void topology_unbind(struct topology *t, const char *vhost_name, const char *queue,
                     const char *exchange, const char *routing_key, amqp_bytes_t args,
                     uint64_t conn_id, struct topo_reply *r)
{
    struct vhost *v = check_binding(t, vhost_name, queue, exchange, conn_id, r);
    if (!v)
        return;
    struct bound *b = find_binding(v, queue, exchange, routing_key, args);
    if (b) {
        binding_clear(b);
        *b = v->bindings[--v->n_bindings];
    }
}

void topology_connection_closed(struct topology *t, uint64_t conn_id,
                                void (*gone)(void *arg, const char *vhost, const char *queue),
                                void *arg)
{
    for (size_t i = 0; i < t->vhosts.cap; i++) {
        struct vhost *v = t->vhosts.slots[i].value;
        if (!t->vhosts.slots[i].key)
            continue;
        /* Deleting from a map while walking it moves entries: restart. */
        for (bool again = true; again;) {
            again = false;
            for (size_t j = 0; j < v->queues.cap; j++) {
                struct queue *q = v->queues.slots[j].value;
                if (v->queues.slots[j].key && q->exclusive && q->owner == conn_id) {
                    unbind_where(v, q->name, NULL);
                    if (gone)
                        gone(arg, t->vhosts.slots[i].key, q->name);
                    queue_free(strmap_del(&v->queues, q->name));
                    again = true;
                    break;
                }
            }
        }
    }
}

const struct queue *topology_queue(const struct topology *t, const char *vhost_name,
                                   const char *name)
{
    struct vhost *v = vhost(t, vhost_name);
    return v ? strmap_get(&v->queues, name) : NULL;
}

void topology_queue_exchanges(const struct topology *t, const char *vhost_name, const char *queue,
                              void (*fn)(void *arg, const char *exchange), void *arg)
{
    struct vhost *v = vhost(t, vhost_name);
    for (size_t i = 0; v && i < v->n_bindings; i++)
        if (!strcmp(v->bindings[i].queue, queue))
            fn(arg, v->bindings[i].exchange);
}

/* Call fn for each binding of exchange (not the default one) that a
 * message with rk and headers matches, once per binding, until fn returns
 * false; queue NULL selects every queue. Returns false when fn stopped. */
static bool each_match(const struct topology *t, const char *vhost_name, const char *exchange,
                       size_t exchange_len, const char *rk, size_t rk_len,
                       const amqp_table_t *headers, const char *queue,
                       bool (*fn)(void *arg, const char *queue), void *arg)
{
    struct vhost *v = vhost(t, vhost_name);
    if (!v || exchange_len == 0 || exchange_len > 255)
        return true;
    char name[256];
    memcpy(name, exchange, exchange_len);
    name[exchange_len] = '\0';
    const struct exchange *e = strmap_get(&v->exchanges, name);
    if (!e)
        return true;
    for (size_t i = 0; i < v->n_bindings; i++) {
        const struct bound *b = &v->bindings[i];
        if ((!queue || !strcmp(b->queue, queue)) && !strcmp(b->exchange, name) &&
            binding_match(e->type, b->routing_key, strlen(b->routing_key), &b->table, rk, rk_len,
                          headers) &&
            !fn(arg, b->queue))
            return false;
    }
    return true;
}

static bool stop_at_first(void *arg, const char *queue)
{
    return false;
}

bool topology_queue_matches(const struct topology *t, const char *vhost_name, const char *queue,
                            const char *exchange, size_t exchange_len, const char *rk,
                            size_t rk_len, const amqp_table_t *headers)
{
    /* The default exchange's implicit binding: routing key = queue name. */
    if (exchange_len == 0)
        return rk_len == strlen(queue) && !memcmp(rk, queue, rk_len);
    return !each_match(t, vhost_name, exchange, exchange_len, rk, rk_len, headers, queue,
                       stop_at_first, NULL);
}

void topology_route(const struct topology *t, const char *vhost_name, const char *exchange,
                    size_t exchange_len, const char *rk, size_t rk_len, const amqp_table_t *headers,
                    bool (*fn)(void *arg, const char *queue), void *arg)
{
    each_match(t, vhost_name, exchange, exchange_len, rk, rk_len, headers, NULL, fn, arg);
}

bool topology_queue_in_kafka(const struct queue *q)
{
    return q && q->durable && !q->exclusive && !q->auto_delete && strncmp(q->name, "amq.gen-", 8);
}

/* ---- for the topology store ---- */

bool topology_has_binding(const struct topology *t, const char *vhost_name, const char *queue,
                          const char *exchange, const char *routing_key, amqp_bytes_t args)
{
    struct vhost *v = vhost(t, vhost_name);
    return v && find_binding(v, queue, exchange, routing_key, args);
}

void topology_each_binding(const struct topology *t, const char *vhost_name, const char *queue,
                           const char *exchange, topology_binding_fn fn, void *arg)
{
    struct vhost *v = vhost(t, vhost_name);
    for (size_t i = 0; v && i < v->n_bindings; i++) {
        const struct bound *b = &v->bindings[i];
        if ((queue && !strcmp(b->queue, queue)) || (exchange && !strcmp(b->exchange, exchange)))
            fn(arg, b->queue, b->exchange, b->routing_key,
               (amqp_bytes_t){b->args.len, b->args.data});
    }
}

static void set_args(struct buf *have, amqp_bytes_t want)
{
    have->len = 0;
    buf_append(have, want.bytes, want.len);
}

bool topology_put_exchange(struct topology *t, const char *vhost_name,
                           const struct exchange_decl *d)
{
    struct vhost *v = vhost(t, vhost_name);
    int type = topology_exchange_type(d->type, strlen(d->type));
    if (!v || type < 0 || !d->name[0])
        return false;
    struct exchange *e = strmap_get(&v->exchanges, d->name);
    if (e && (e->builtin || ((int)e->type == type && e->durable == d->durable &&
                             e->auto_delete == d->auto_delete && e->internal == d->internal &&
                             args_equal(&e->args, d->args))))
        return false;
    if (!e) {
        e = exchange_new(d->name, (enum exchange_type)type, d->durable, false);
        strmap_put(&v->exchanges, d->name, e);
    }
    e->type = (enum exchange_type)type;
    e->durable = d->durable;
    e->auto_delete = d->auto_delete;
    e->internal = d->internal;
    set_args(&e->args, d->args);
    return true;
}

bool topology_put_queue(struct topology *t, const char *vhost_name, const struct queue_decl *d)
{
    struct vhost *v = vhost(t, vhost_name);
    if (!v || !d->name[0])
        return false;
    struct queue *q = strmap_get(&v->queues, d->name);
    if (q && (q->exclusive || (q->durable == d->durable && q->auto_delete == d->auto_delete &&
                               !d->exclusive && args_equal(&q->args, d->args))))
        return false;
    if (!q) {
        q = xcalloc(1, sizeof *q);
        q->name = xstrdup(d->name);
        strmap_put(&v->queues, d->name, q);
    }
    q->durable = d->durable;
    q->exclusive = false; /* the store keeps none: an exclusive queue is its connection's */
    q->auto_delete = d->auto_delete;
    set_args(&q->args, d->args);
    return true;
}
