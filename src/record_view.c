/* record_view.c - reads a Kafka record back as an AMQP message: hopper's
 * own records from their amqp.* headers, any other record from its topic,
 * headers, key and timestamp (rules in record_view.h).
 *
 * A module of its own rather than more of record.c: record.c serves the
 * publish path (headers, key, text forms), this serves deliveries, and it
 * is the only place a Kafka record's headers meet rabbitmq-c's decoder, so
 * the untrusted-input handling sits in one short file. */
#include "record_view.h"

#include <string.h>

#include "wire.h"

#define SHORTSTR_MAX 255

/* rabbitmq-c's views take non-const pointers but only read through them;
 * an empty one gets "" rather than NULL, which no memcpy may see. */
static amqp_bytes_t view_bytes(const void *p, size_t n)
{
    return (amqp_bytes_t){n, n ? (void *)p : (void *)""};
}

/* The first (or last) header called name, when it exists, has a value and
 * is at most max bytes. */
static bool header_value(const rd_kafka_headers_t *h, const char *name, bool last, size_t max,
                         const void **val, size_t *len)
{
    rd_kafka_resp_err_t err = last ? rd_kafka_header_get_last(h, name, val, len)
                                   : rd_kafka_header_get(h, 0, name, val, len);
    return err == RD_KAFKA_RESP_ERR_NO_ERROR && *val && *len <= max;
}

/* A record of hopper's: returns 1 and fills v, 0 when the record does not
 * qualify (then v is untouched), -1 when the pool cannot allocate. */
static int view_own(const struct record_view_src *src, const struct record_decode_opts *o,
                    amqp_pool_t *pool, struct record_view *v)
{
    const rd_kafka_headers_t *h = src->headers;
    const void *ex, *rk, *raw;
    size_t ex_len, rk_len, raw_len;
    /* record_headers writes amqp.properties after the application headers,
     * which may use any name: ours is the last of that name. */
    if (!h || !header_value(h, "amqp.exchange", false, SHORTSTR_MAX, &ex, &ex_len) ||
        !header_value(h, "amqp.routing_key", false, SHORTSTR_MAX, &rk, &rk_len) ||
        !header_value(h, "amqp.properties", true, SIZE_MAX, &raw, &raw_len))
        return 0;
    /* rabbitmq-c 0.11 decodes tables recursively without a depth limit. */
    if (wire_check_basic_properties(raw, raw_len, o->max_table_depth) != 0)
        return 0;
    amqp_basic_properties_t *p = NULL;
    int rc = amqp_decode_properties(AMQP_BASIC_CLASS, pool, view_bytes(raw, raw_len), (void **)&p);
    if (rc == AMQP_STATUS_NO_MEMORY)
        return -1;
    if (rc < 0)
        return 0;
    v->exchange = ex;
    v->exchange_len = ex_len;
    v->routing_key = rk;
    v->routing_key_len = rk_len;
    v->raw_props = raw;
    v->raw_props_len = raw_len;
    v->props = *p;
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
        v->props.headers = (amqp_table_t){0, NULL};
    return 1;
}

/* Kafka headers as a table of long strings (null values void), within
 * what is left of the encoded size; *used grows by what the kept entries
 * take. Returns the number kept, or -1 when the pool cannot allocate. */
static int headers_table(const rd_kafka_headers_t *h, amqp_pool_t *pool, size_t *used,
                         struct record_view *v)
{
    size_t n = h ? rd_kafka_header_cnt(h) : 0;
    if (n == 0)
        return 0;
    /* An entry takes at least 2 bytes (name length, type): room for more
     * than this many would never be used, however many headers come. */
    size_t room = n < RECORD_VIEW_MAX_PROPS / 2 ? n : RECORD_VIEW_MAX_PROPS / 2;
    amqp_table_entry_t *e = amqp_pool_alloc(pool, room * sizeof *e);
    if (!e)
        return -1;
    int kept = 0;
    const char *name;
    const void *val;
    size_t size;
    for (size_t i = 0;
         rd_kafka_header_get_all(h, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
        size_t name_len = strlen(name);
        /* name length, name, type, then a long string's length and bytes */
        size_t cost = 1 + name_len + 1 + (val ? 4 + size : 0);
        if (name_len > SHORTSTR_MAX || cost > RECORD_VIEW_MAX_PROPS - *used ||
            (size_t)kept == room) {
            v->headers_skipped++;
            continue;
        }
        *used += cost;
        e[kept].key = view_bytes(name, name_len);
        if (val) {
            e[kept].value.kind = AMQP_FIELD_KIND_UTF8;
            e[kept].value.value.bytes = view_bytes(val, size);
        } else {
            e[kept].value.kind = AMQP_FIELD_KIND_VOID;
        }
        kept++;
    }
    v->props.headers = (amqp_table_t){kept, kept ? e : NULL};
    return kept;
}

static int view_foreign(const struct record_view_src *src, const struct record_decode_opts *o,
                        amqp_pool_t *pool, struct record_view *v)
{
    amqp_basic_properties_t *p = &v->props;
    v->exchange = "";
    v->routing_key = src->topic;
    v->routing_key_len = strlen(src->topic);
    v->foreign = true;

    /* Sizes as amqp_encode_properties writes them: flags word, then the
     * set properties in flag order. */
    size_t used = 2;
    p->_flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    p->delivery_mode = AMQP_DELIVERY_PERSISTENT;
    used += 1;
    if (o->key_as_message_id && src->key && src->key_len <= SHORTSTR_MAX) {
        p->_flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        p->message_id = view_bytes(src->key, src->key_len);
        used += 1 + src->key_len;
    }
    if (src->timestamp_ms >= 0) {
        p->_flags |= AMQP_BASIC_TIMESTAMP_FLAG;
        p->timestamp = (uint64_t)src->timestamp_ms / 1000;
        used += 8;
    }
    size_t with_table = used + 4; /* the table's length word */
    int kept = headers_table(src->headers, pool, &with_table, v);
    if (kept < 0)
        return -1;
    if (kept > 0) {
        p->_flags |= AMQP_BASIC_HEADERS_FLAG;
        used = with_table;
    }

    void *buf = amqp_pool_alloc(pool, used);
    if (!buf)
        return -1;
    int n = amqp_encode_properties(AMQP_BASIC_CLASS, p, (amqp_bytes_t){used, buf});
    if (n < 0 || (size_t)n != used)
        return -1; /* the sizes above disagree with rabbitmq-c: a bug */
    v->raw_props = buf;
    v->raw_props_len = used;
    return 0;
}

int record_view_from(const struct record_view_src *src, const struct record_decode_opts *o,
                     amqp_pool_t *pool, struct record_view *v)
{
    *v = (struct record_view){.exchange = "", .routing_key = ""};
    if (!src->topic || strlen(src->topic) > SHORTSTR_MAX)
        return -1;
    int own = view_own(src, o, pool, v);
    if (own != 0)
        return own > 0 ? 0 : -1;
    return view_foreign(src, o, pool, v);
}

int record_view(const rd_kafka_message_t *rkm, const struct record_decode_opts *o,
                amqp_pool_t *pool, struct record_view *v)
{
    if (rkm->err || !rkm->rkt)
        return -1;
    /* The list stays the message's; librdkafka parses it on first use. */
    rd_kafka_headers_t *h = NULL;
    rd_kafka_resp_err_t err = rd_kafka_message_headers(rkm, &h);
    if (err == RD_KAFKA_RESP_ERR__NOENT)
        h = NULL;
    else if (err)
        return -1;
    struct record_view_src src = {
        .headers = h,
        .topic = rd_kafka_topic_name(rkm->rkt),
        .timestamp_ms = rd_kafka_message_timestamp(rkm, NULL),
        .key = rkm->key,
        .key_len = rkm->key_len,
    };
    return record_view_from(&src, o, pool, v);
}
