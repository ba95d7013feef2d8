/* fuzz_record_view.c - libFuzzer harness for reading Kafka records back
 * (src/record_view.c): any producer can write a record's headers, so the
 * headers, key and timestamp are all fuzzed.
 *
 * Input layout:
 *   byte 0   bit 0 key_as_message_id; bit 1 the record has a key; bit 2 it
 *            has a timestamp; bits 3-7 max_table_depth (0..31)
 *   [key]    when bit 1: length (1 byte), then the key
 *   [ts]     when bit 2: 8 bytes, big-endian, signed milliseconds
 *   headers  until the input ends, each: a name byte (0xf0 amqp.exchange,
 *            0xf1 amqp.routing_key, 0xf2 amqp.properties, 0xf3 a 300-byte
 *            name, else that many bytes of name from the input), then a
 *            2-byte big-endian value length (0xffff a null value, 0xfffe
 *            70,000 bytes, else that many bytes from the input, cut at its
 *            end)
 *
 * Checked for every input: record_view_from succeeds (the topic is
 * valid); the record is read as hopper's exactly when it qualifies (worked
 * out here again from the rules in record_view.h); raw_props passes
 * hopper's own content-header check and decodes; for hopper's records the
 * view is exactly the last amqp.properties and the first amqp.exchange and
 * amqp.routing_key, and the decoded headers nest no deeper than allowed;
 * for foreign records the exchange is empty, the routing key the topic,
 * the encoding within RECORD_VIEW_MAX_PROPS, the decoded properties those
 * of the view, and every header either kept (as it is, in order) or
 * counted as skipped. Anything else aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "record_view.h"
#include "wire.h"

#define TOPIC "fuzz-topic"
#define BIG_VALUE 70000

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_record_view: " __VA_ARGS__);                                     \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool same(const void *a, size_t a_len, const void *b, size_t b_len)
{
    return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

static int value_depth(const amqp_field_value_t *v);

static int table_depth(const amqp_table_t *t)
{
    int d = 0;
    for (int i = 0; i < t->num_entries; i++) {
        int e = value_depth(&t->entries[i].value);
        d = e > d ? e : d;
    }
    return 1 + d;
}

static int value_depth(const amqp_field_value_t *v)
{
    if (v->kind == AMQP_FIELD_KIND_TABLE)
        return table_depth(&v->value.table);
    if (v->kind != AMQP_FIELD_KIND_ARRAY)
        return 0;
    int d = 0;
    for (int i = 0; i < v->value.array.num_entries; i++) {
        int e = value_depth(&v->value.array.entries[i]);
        d = e > d ? e : d;
    }
    return 1 + d;
}

static void check_own(const rd_kafka_headers_t *h, const struct record_view *v,
                      const amqp_basic_properties_t *decoded, unsigned depth)
{
    const void *val;
    size_t len;
    CHECK(h && rd_kafka_header_get_last(h, "amqp.properties", &val, &len) == 0 && val,
          "hopper's record without amqp.properties");
    CHECK(v->raw_props == val && v->raw_props_len == len, "raw_props is not amqp.properties");
    CHECK(rd_kafka_header_get(h, 0, "amqp.exchange", &val, &len) == 0 && val == v->exchange &&
              len == v->exchange_len && len <= 255,
          "exchange is not the first amqp.exchange");
    CHECK(rd_kafka_header_get(h, 0, "amqp.routing_key", &val, &len) == 0 && val == v->routing_key &&
              len == v->routing_key_len && len <= 255,
          "routing key is not the first amqp.routing_key");
    CHECK(decoded->_flags == v->props._flags, "decoded flags differ");
    if (decoded->_flags & AMQP_BASIC_HEADERS_FLAG) {
        int d = table_depth(&v->props.headers);
        CHECK((unsigned)d <= depth, "headers nest %d deep, %u allowed", d, depth);
    }
}

/* Whether the record's header (name, val, size) is entry e, as it is. */
static bool kept_as_is(const char *name, const void *val, size_t size, const amqp_table_entry_t *e)
{
    if (!same(name, strlen(name), e->key.bytes, e->key.len))
        return false;
    if (!val)
        return e->value.kind == AMQP_FIELD_KIND_VOID;
    return e->value.kind == AMQP_FIELD_KIND_UTF8 &&
           same(val, size, e->value.value.bytes.bytes, e->value.value.bytes.len);
}

static void check_foreign(const rd_kafka_headers_t *h, const struct record_view *v,
                          const amqp_basic_properties_t *decoded,
                          const struct record_decode_opts *o, const void *key, size_t key_len)
{
    const amqp_basic_properties_t *p = &v->props;
    CHECK(v->exchange_len == 0 && same(v->routing_key, v->routing_key_len, TOPIC, strlen(TOPIC)),
          "foreign record not from the default exchange with the topic as routing key");
    CHECK(v->raw_props_len <= RECORD_VIEW_MAX_PROPS, "encoded properties over the bound: %zu",
          v->raw_props_len);
    CHECK(decoded->_flags == p->_flags, "decoded flags differ");
    CHECK(p->delivery_mode == 2 && decoded->delivery_mode == 2, "not persistent");
    bool want_id = o->key_as_message_id && key && key_len <= 255;
    CHECK(!(p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) == !want_id, "message_id flag wrong");
    if (want_id)
        CHECK(same(decoded->message_id.bytes, decoded->message_id.len, key, key_len),
              "message_id is not the key");
    size_t n = h ? rd_kafka_header_cnt(h) : 0;
    size_t kept = (size_t)p->headers.num_entries;
    CHECK(kept + v->headers_skipped == n, "headers neither kept nor skipped");
    CHECK(!(p->_flags & AMQP_BASIC_HEADERS_FLAG) == (kept == 0), "headers flag wrong");
    if (!kept)
        return;
    CHECK(decoded->headers.num_entries == p->headers.num_entries, "decoded header count differs");
    /* Kept headers are a subsequence of the record's, in order, as is. */
    size_t j = 0;
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i], *d = &decoded->headers.entries[i];
        const char *name;
        const void *val;
        size_t size;
        bool found = false;
        while (!found && rd_kafka_header_get_all(h, j++, &name, &val, &size) == 0)
            found = kept_as_is(name, val, size, e) && kept_as_is(name, val, size, d);
        CHECK(found, "header %d is not one of the record's, in order", i);
    }
}

/* Whether the record qualifies as hopper's, worked out here on its own:
 * the first amqp.exchange and amqp.routing_key and the last
 * amqp.properties present, not null, the first two short strings, the last
 * passing the content-header check and decoding. */
static bool looks_own(const rd_kafka_headers_t *h, unsigned depth, amqp_pool_t *pool)
{
    const void *val;
    size_t len;
    if (!h)
        return false;
    if (rd_kafka_header_get(h, 0, "amqp.exchange", &val, &len) || !val || len > 255)
        return false;
    if (rd_kafka_header_get(h, 0, "amqp.routing_key", &val, &len) || !val || len > 255)
        return false;
    if (rd_kafka_header_get_last(h, "amqp.properties", &val, &len) || !val ||
        wire_check_basic_properties(val, len, depth) != 0)
        return false;
    void *decoded;
    return amqp_decode_properties(AMQP_BASIC_CLASS, pool, (amqp_bytes_t){len, (void *)val},
                                  &decoded) == 0;
}

struct input {
    const uint8_t *p;
    size_t len;
};

static bool take(struct input *in, size_t n, const uint8_t **out)
{
    if (n > in->len)
        return false;
    *out = in->p;
    in->p += n;
    in->len -= n;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char long_name[301];
    static uint8_t big[BIG_VALUE];
    if (!long_name[0]) {
        memset(long_name, 'n', 300);
        memset(big, 'b', sizeof big);
    }
    struct input in = {data, size};
    const uint8_t *b;
    if (!take(&in, 1, &b))
        return 0;
    const uint8_t ctl = b[0];
    struct record_decode_opts o = {.key_as_message_id = ctl & 1, .max_table_depth = ctl >> 3u};
    const void *key = NULL;
    size_t key_len = 0;
    int64_t ts = -1;
    if (ctl & 2) {
        const uint8_t *k;
        if (!take(&in, 1, &b) || !take(&in, b[0], &k))
            return 0;
        key = k;
        key_len = b[0];
    }
    if ((ctl & 4) && take(&in, 8, &b)) {
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
            u = u << 8 | b[i];
        ts = (int64_t)u;
    }

    rd_kafka_headers_t *h = in.len ? rd_kafka_headers_new(8) : NULL;
    static const char *const ours[] = {"amqp.exchange", "amqp.routing_key", "amqp.properties"};
    while (in.len) {
        char name[256];
        if (!take(&in, 1, &b))
            break;
        const char *nm = name;
        if (b[0] >= 0xf0 && b[0] <= 0xf2) {
            nm = ours[b[0] - 0xf0];
        } else if (b[0] == 0xf3) {
            nm = long_name;
        } else {
            size_t n = b[0];
            const uint8_t *q;
            if (!take(&in, n, &q))
                break;
            memcpy(name, q, n);
            name[n] = '\0'; /* a NUL inside shortens it, as librdkafka would */
        }
        if (!take(&in, 2, &b))
            break;
        size_t vlen = (size_t)b[0] << 8 | b[1];
        const void *val;
        if (vlen == 0xffff) {
            val = NULL;
            vlen = 0;
        } else if (vlen == 0xfffe) {
            val = big;
            vlen = sizeof big;
        } else {
            if (vlen > in.len)
                vlen = in.len;
            const uint8_t *q;
            (void)take(&in, vlen, &q);
            val = q;
        }
        rd_kafka_header_add(h, nm, -1, val, (ssize_t)vlen);
    }

    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    struct record_view_src src = {h, TOPIC, ts, key, key_len};
    struct record_view v;
    CHECK(record_view_from(&src, &o, &pool, &v) == 0, "record_view_from failed");
    unsigned depth = o.max_table_depth > 64 ? 64 : o.max_table_depth; /* wire.c's clamp */
    CHECK(wire_check_basic_properties(v.raw_props, v.raw_props_len, v.foreign ? 1 : depth) == 0,
          "raw_props fails the content-header check");
    amqp_basic_properties_t *decoded = NULL;
    CHECK(amqp_decode_properties(AMQP_BASIC_CLASS, &pool,
                                 (amqp_bytes_t){v.raw_props_len, (void *)v.raw_props},
                                 (void **)&decoded) == 0,
          "raw_props does not decode");
    CHECK(v.foreign != looks_own(h, depth, &pool), "read as %s",
          v.foreign ? "foreign, but qualifies as hopper's" : "hopper's, but does not qualify");
    if (v.foreign)
        check_foreign(h, &v, decoded, &o, key, key_len);
    else
        check_own(h, &v, decoded, depth);
    empty_amqp_pool(&pool);
    if (h)
        rd_kafka_headers_destroy(h);
    return 0;
}
