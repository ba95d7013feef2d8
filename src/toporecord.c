/* toporecord.c - keys and values of the topology topic (toporecord.h). */
#include "toporecord.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "binding.h"
#include "wire.h"

/* Tables nest at most limits.max_table_depth (64 at most) in a client's
 * arguments; a value holds them one level down. wire.c bounds the scan
 * at 64 whatever it is asked. */
#define MAX_DEPTH 64

static void put_name(struct buf *out, const char *s, bool last)
{
    buf_append(out, s, strlen(s) + (last ? 0 : 1));
}

void toporecord_key(const struct toporecord *r, struct buf *out)
{
    out->len = 0;
    buf_putc(out, (char)r->kind);
    put_name(out, r->vhost, false);
    if (r->kind != TOPOREC_BINDING) {
        put_name(out, r->name, true);
        return;
    }
    put_name(out, r->name, false);
    put_name(out, r->exchange, false);
    put_name(out, r->routing_key, false);
    buf_append(out, r->binding_args.bytes, r->binding_args.len);
}

static amqp_field_value_t boolean(bool b)
{
    return (amqp_field_value_t){.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = b};
}

static void put(amqp_table_entry_t *e, int *n, const char *key, amqp_field_value_t v)
{
    e[*n].key = amqp_cstring_bytes(key);
    e[*n].value = v;
    (*n)++;
}

int toporecord_value(const struct toporecord *r, struct buf *out)
{
    out->len = 0;
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_table_t args = amqp_empty_table;
    size_t off = 0;
    /* r->args came from a client's checked table or from a checked record. */
    if (r->kind != TOPOREC_BINDING && r->args.len &&
        amqp_decode_table(r->args, &pool, &args, &off) != AMQP_STATUS_OK) {
        empty_amqp_pool(&pool);
        return -1;
    }
    amqp_table_entry_t e[6];
    int n = 0;
    put(e, &n, "v",
        (amqp_field_value_t){.kind = AMQP_FIELD_KIND_I32, .value.i32 = TOPORECORD_VERSION});
    if (r->kind == TOPOREC_EXCHANGE) {
        put(e, &n, "type",
            (amqp_field_value_t){.kind = AMQP_FIELD_KIND_UTF8,
                                 .value.bytes = amqp_cstring_bytes((char *)r->type)});
        put(e, &n, "durable", boolean(r->durable));
        put(e, &n, "auto_delete", boolean(r->auto_delete));
        put(e, &n, "internal", boolean(r->internal));
    } else if (r->kind == TOPOREC_QUEUE) {
        put(e, &n, "durable", boolean(r->durable));
        put(e, &n, "exclusive", boolean(r->exclusive));
        put(e, &n, "auto_delete", boolean(r->auto_delete));
    }
    if (r->kind != TOPOREC_BINDING)
        put(e, &n, "arguments",
            (amqp_field_value_t){.kind = AMQP_FIELD_KIND_TABLE, .value.table = args});
    amqp_table_t value = {n, e};
    /* The value is its arguments plus a few dozen bytes. */
    size_t room = r->args.len + 256;
    buf_reserve(out, room);
    amqp_bytes_t into = {room, out->data};
    off = 0;
    int rc = amqp_encode_table(into, &value, &off);
    empty_amqp_pool(&pool);
    if (rc < 0)
        return -1;
    out->len = off;
    return 0;
}

/* ---- decoding ---- */

static int refuse(char *why, size_t whylen, const char *fmt, ...) PRINTF_LIKE(3, 4);

static int refuse(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

/* The name at *p (up to a NUL, or to end when last) into out (256 bytes);
 * false when it is longer than a short string or its NUL is missing. */
static bool take_name(const char **p, const char *end, bool last, char out[256])
{
    const char *nul = memchr(*p, '\0', (size_t)(end - *p));
    if (last && nul)
        return false;
    if (!last && !nul)
        return false;
    size_t len = (size_t)((last ? end : nul) - *p);
    if (len > 255)
        return false;
    memcpy(out, *p, len);
    out[len] = '\0';
    *p += len + (last ? 0 : 1);
    return true;
}

static int decode_key(const char *p, size_t len, struct toporecord *r, char *why, size_t whylen)
{
    if (len < 1)
        return refuse(why, whylen, "empty key");
    const char *end = p + len;
    r->kind = (enum toporecord_kind)(unsigned char)*p++;
    if (r->kind != TOPOREC_EXCHANGE && r->kind != TOPOREC_QUEUE && r->kind != TOPOREC_BINDING)
        return refuse(why, whylen, "unknown kind 0x%02x", (unsigned char)r->kind);
    bool binding = r->kind == TOPOREC_BINDING;
    if (!take_name(&p, end, false, r->vhost) || !take_name(&p, end, !binding, r->name))
        return refuse(why, whylen, "key: a name is too long or not ended");
    if (!binding)
        return 0;
    if (!take_name(&p, end, false, r->exchange) || !take_name(&p, end, false, r->routing_key))
        return refuse(why, whylen, "key: a name is too long or not ended");
    r->binding_args = (amqp_bytes_t){(size_t)(end - p), (void *)p};
    size_t used;
    if (r->binding_args.len &&
        (wire_check_table((const uint8_t *)p, r->binding_args.len, MAX_DEPTH, &used) ||
         used != r->binding_args.len))
        return refuse(why, whylen, "key: the binding's arguments are not one field table");
    return 0;
}

static const amqp_field_value_t *field(const amqp_table_t *t, const char *key, uint8_t kind)
{
    const amqp_field_value_t *v = table_lookup(t, key);
    return v && v->kind == kind ? v : NULL;
}

static bool flag(const amqp_table_t *t, const char *key, bool *out)
{
    const amqp_field_value_t *v = field(t, key, AMQP_FIELD_KIND_BOOLEAN);
    if (v)
        *out = v->value.boolean != 0;
    return v != NULL;
}

/* The arguments table, encoded again into pool: the bytes the topology
 * keeps for equivalence (empty for none, as declare.c has them). */
static bool arguments(const amqp_table_t *t, amqp_pool_t *pool, size_t room, amqp_bytes_t *out)
{
    const amqp_field_value_t *v = field(t, "arguments", AMQP_FIELD_KIND_TABLE);
    if (!v)
        return false;
    *out = amqp_empty_bytes;
    if (v->value.table.num_entries == 0)
        return true;
    amqp_bytes_t into;
    amqp_pool_alloc_bytes(pool, room, &into);
    size_t off = 0;
    amqp_table_t args = v->value.table;
    if (!into.bytes || amqp_encode_table(into, &args, &off) < 0)
        return false;
    *out = (amqp_bytes_t){off, into.bytes};
    return true;
}

static int decode_value(const void *val, size_t len, amqp_pool_t *pool, struct toporecord *r,
                        char *why, size_t whylen)
{
    size_t used;
    if (wire_check_table(val, len, MAX_DEPTH, &used) || used != len)
        return refuse(why, whylen, "value: not one field table (or nested too deep)");
    amqp_table_t t;
    size_t off = 0;
    if (amqp_decode_table((amqp_bytes_t){len, (void *)val}, pool, &t, &off) != AMQP_STATUS_OK)
        return refuse(why, whylen, "value: rabbitmq-c cannot decode it");
    const amqp_field_value_t *v = field(&t, "v", AMQP_FIELD_KIND_I32);
    if (!v)
        return refuse(why, whylen, "value: no format version");
    if (v->value.i32 != TOPORECORD_VERSION)
        return refuse(why, whylen, "value: format version %d (this hopper reads %d)",
                      (int)v->value.i32, TOPORECORD_VERSION);
    if (r->kind == TOPOREC_BINDING)
        return 0;
    bool ok = flag(&t, "durable", &r->durable) && flag(&t, "auto_delete", &r->auto_delete) &&
              arguments(&t, pool, len, &r->args);
    if (ok && r->kind == TOPOREC_EXCHANGE) {
        const amqp_field_value_t *type = field(&t, "type", AMQP_FIELD_KIND_UTF8);
        ok = flag(&t, "internal", &r->internal) && type && type->value.bytes.len < sizeof r->type &&
             !memchr(type->value.bytes.bytes, '\0', type->value.bytes.len);
        if (ok) {
            memcpy(r->type, type->value.bytes.bytes, type->value.bytes.len);
            r->type[type->value.bytes.len] = '\0';
        }
    } else if (ok) {
        ok = flag(&t, "exclusive", &r->exclusive);
    }
    if (!ok)
        return refuse(why, whylen, "value: a field is missing or of the wrong type");
    return 0;
}

int toporecord_decode(const void *key, size_t key_len, const void *val, size_t val_len,
                      amqp_pool_t *pool, struct toporecord *r, char *why, size_t whylen)
{
    *r = (struct toporecord){0};
    if (!key || key_len > TOPORECORD_MAX_LEN || val_len > TOPORECORD_MAX_LEN)
        return refuse(why, whylen, "%s", key ? "key or value too long" : "null key");
    if (decode_key(key, key_len, r, why, whylen))
        return -1;
    r->deleted = val == NULL;
    return r->deleted ? 0 : decode_value(val, val_len, pool, r, why, whylen);
}
