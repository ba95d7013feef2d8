/* test_record_view.c - Kafka records read back for basic.deliver: hopper's
 * own records round-trip through record_headers (every combination of the
 * 14 basic properties, nested header tables, application headers named
 * like ours), and foreign or forged records become well-formed properties
 * within their bound. Headers lists are built with librdkafka's own API
 * and go through record_view_from: rd_kafka_message_headers() reads
 * librdkafka's private message struct around a consumed message, so a
 * message built here cannot carry them. record_view() over consumed
 * messages is tested in test_publish.c against the mock cluster. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "record.h"
#include "record_view.h"
#include "wire.h"

#define DEPTH 16
#define TOPIC "orders"

static const struct record_decode_opts opts = {.key_as_message_id = false,
                                               .max_table_depth = DEPTH};

static amqp_bytes_t bytes(const char *s)
{
    return amqp_cstring_bytes((char *)s);
}

/* ---- deep comparison of decoded properties ---- */

static bool bytes_eq(amqp_bytes_t a, amqp_bytes_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.bytes, b.bytes, a.len) == 0);
}

static bool table_eq(const amqp_table_t *a, const amqp_table_t *b);

static bool value_eq(const amqp_field_value_t *a, const amqp_field_value_t *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
        return !a->value.boolean == !b->value.boolean;
    case AMQP_FIELD_KIND_I8:
    case AMQP_FIELD_KIND_U8:
        return a->value.u8 == b->value.u8;
    case AMQP_FIELD_KIND_I16:
    case AMQP_FIELD_KIND_U16:
        return a->value.u16 == b->value.u16;
    case AMQP_FIELD_KIND_I32:
    case AMQP_FIELD_KIND_U32:
    case AMQP_FIELD_KIND_F32: /* bit for bit */
        return a->value.u32 == b->value.u32;
    case AMQP_FIELD_KIND_I64:
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_F64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        return a->value.u64 == b->value.u64;
    case AMQP_FIELD_KIND_DECIMAL:
        return a->value.decimal.decimals == b->value.decimal.decimals &&
               a->value.decimal.value == b->value.decimal.value;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        return bytes_eq(a->value.bytes, b->value.bytes);
    case AMQP_FIELD_KIND_ARRAY:
        if (a->value.array.num_entries != b->value.array.num_entries)
            return false;
        for (int i = 0; i < a->value.array.num_entries; i++)
            if (!value_eq(&a->value.array.entries[i], &b->value.array.entries[i]))
                return false;
        return true;
    case AMQP_FIELD_KIND_TABLE:
        return table_eq(&a->value.table, &b->value.table);
    case AMQP_FIELD_KIND_VOID:
        return true;
    default:
        return false;
    }
}

static bool table_eq(const amqp_table_t *a, const amqp_table_t *b)
{
    if (a->num_entries != b->num_entries)
        return false;
    for (int i = 0; i < a->num_entries; i++)
        if (!bytes_eq(a->entries[i].key, b->entries[i].key) ||
            !value_eq(&a->entries[i].value, &b->entries[i].value))
            return false;
    return true;
}

#define SAME_BYTES(flag, field)                                                                    \
    if ((got->_flags & (flag)) && !bytes_eq(got->field, want->field))                              \
    fail_msg("property " #field " differs")

static void assert_props_equal(const amqp_basic_properties_t *got,
                               const amqp_basic_properties_t *want)
{
    if (got->_flags != want->_flags)
        fail_msg("flags 0x%04x, want 0x%04x", (unsigned)got->_flags, (unsigned)want->_flags);
    SAME_BYTES(AMQP_BASIC_CONTENT_TYPE_FLAG, content_type);
    SAME_BYTES(AMQP_BASIC_CONTENT_ENCODING_FLAG, content_encoding);
    if ((got->_flags & AMQP_BASIC_HEADERS_FLAG) && !table_eq(&got->headers, &want->headers))
        fail_msg("property headers differs");
    if ((got->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG) && got->delivery_mode != want->delivery_mode)
        fail_msg("property delivery_mode differs");
    if ((got->_flags & AMQP_BASIC_PRIORITY_FLAG) && got->priority != want->priority)
        fail_msg("property priority differs");
    SAME_BYTES(AMQP_BASIC_CORRELATION_ID_FLAG, correlation_id);
    SAME_BYTES(AMQP_BASIC_REPLY_TO_FLAG, reply_to);
    SAME_BYTES(AMQP_BASIC_EXPIRATION_FLAG, expiration);
    SAME_BYTES(AMQP_BASIC_MESSAGE_ID_FLAG, message_id);
    if ((got->_flags & AMQP_BASIC_TIMESTAMP_FLAG) && got->timestamp != want->timestamp)
        fail_msg("property timestamp differs");
    SAME_BYTES(AMQP_BASIC_TYPE_FLAG, type);
    SAME_BYTES(AMQP_BASIC_USER_ID_FLAG, user_id);
    SAME_BYTES(AMQP_BASIC_APP_ID_FLAG, app_id);
    SAME_BYTES(AMQP_BASIC_CLUSTER_ID_FLAG, cluster_id);
    if (!(got->_flags & AMQP_BASIC_HEADERS_FLAG))
        assert_int_equal(got->headers.num_entries, 0);
}

/* raw_props is what a client would decode: it passes hopper's own check
 * of a content header and decodes to exactly v->props. */
static void assert_raw_decodes_to_props(const struct record_view *v)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    assert_int_equal(wire_check_basic_properties(v->raw_props, v->raw_props_len, DEPTH), 0);
    amqp_basic_properties_t *p = NULL;
    assert_int_equal(amqp_decode_properties(AMQP_BASIC_CLASS, &pool,
                                            (amqp_bytes_t){v->raw_props_len, (void *)v->raw_props},
                                            (void **)&p),
                     0);
    assert_props_equal(&v->props, p);
    empty_amqp_pool(&pool);
}

static void assert_raw(const struct record_view *v, const void *want, size_t len)
{
    assert_int_equal(v->raw_props_len, len);
    assert_memory_equal(v->raw_props, want, len);
}

/* ---- hopper's own records ---- */

/* Property values worth crossing: empty, plain, the longest short string,
 * bytes that are not text. */
static char long255[255];
static const amqp_bytes_t strs[] = {
    {0, NULL},
    {10, "text/plain"},
    {sizeof long255, long255},
    {5, "a\0b\xff\n"},
};

static const amqp_flags_t wire_order[14] = {
    AMQP_BASIC_CONTENT_TYPE_FLAG, AMQP_BASIC_CONTENT_ENCODING_FLAG,
    AMQP_BASIC_HEADERS_FLAG,      AMQP_BASIC_DELIVERY_MODE_FLAG,
    AMQP_BASIC_PRIORITY_FLAG,     AMQP_BASIC_CORRELATION_ID_FLAG,
    AMQP_BASIC_REPLY_TO_FLAG,     AMQP_BASIC_EXPIRATION_FLAG,
    AMQP_BASIC_MESSAGE_ID_FLAG,   AMQP_BASIC_TIMESTAMP_FLAG,
    AMQP_BASIC_TYPE_FLAG,         AMQP_BASIC_USER_ID_FLAG,
    AMQP_BASIC_APP_ID_FLAG,       AMQP_BASIC_CLUSTER_ID_FLAG,
};

#define FV(k, member, ...)                                                                         \
    {                                                                                              \
        .kind = (k), .value.member = __VA_ARGS__                                                   \
    }

/* Header tables the loop below cycles through. */
static amqp_field_value_t arr[] = {
    FV(AMQP_FIELD_KIND_I32, i32, -1),
    FV(AMQP_FIELD_KIND_UTF8, bytes, {3, "two"}),
    {.kind = AMQP_FIELD_KIND_VOID},
    FV(AMQP_FIELD_KIND_ARRAY, array, {0, NULL}),
};
static amqp_table_entry_t inner[] = {
    {{1, "d"}, {.kind = AMQP_FIELD_KIND_DECIMAL, .value.decimal = {2, 1234}}},
    {{1, "a"}, FV(AMQP_FIELD_KIND_ARRAY, array, {4, arr})},
};
static amqp_table_entry_t every_kind[] = {
    {{1, "t"}, FV(AMQP_FIELD_KIND_BOOLEAN, boolean, 1)},
    {{1, "b"}, FV(AMQP_FIELD_KIND_I8, i8, -8)},
    {{1, "B"}, FV(AMQP_FIELD_KIND_U8, u8, 200)},
    {{1, "s"}, FV(AMQP_FIELD_KIND_I16, i16, -300)},
    {{1, "u"}, FV(AMQP_FIELD_KIND_U16, u16, 60000)},
    {{1, "I"}, FV(AMQP_FIELD_KIND_I32, i32, INT32_MIN)},
    {{1, "i"}, FV(AMQP_FIELD_KIND_U32, u32, UINT32_MAX)},
    {{1, "l"}, FV(AMQP_FIELD_KIND_I64, i64, INT64_MIN)},
    {{1, "L"}, FV(AMQP_FIELD_KIND_U64, u64, UINT64_MAX)},
    {{1, "f"}, FV(AMQP_FIELD_KIND_F32, f32, 0.1f)},
    {{1, "d"}, FV(AMQP_FIELD_KIND_F64, f64, -0.25)},
    {{1, "D"}, {.kind = AMQP_FIELD_KIND_DECIMAL, .value.decimal = {3, (uint32_t)-5}}},
    {{1, "S"}, FV(AMQP_FIELD_KIND_UTF8, bytes, {4, "h\0\xc3\xa9"})},
    {{1, "x"}, FV(AMQP_FIELD_KIND_BYTES, bytes, {3, "\xff\x00\x01"})},
    {{1, "T"}, FV(AMQP_FIELD_KIND_TIMESTAMP, u64, 1700000000)},
    {{1, "V"}, {.kind = AMQP_FIELD_KIND_VOID}},
    {{1, "A"}, FV(AMQP_FIELD_KIND_ARRAY, array, {4, arr})},
    {{1, "F"}, FV(AMQP_FIELD_KIND_TABLE, table, {2, inner})},
    {{0, ""}, FV(AMQP_FIELD_KIND_UTF8, bytes, {0, ""})}, /* empty name */
};
/* Application headers named like hopper's: the record then has two of
 * each name. */
static amqp_table_entry_t like_ours[] = {
    {{15, "amqp.properties"}, FV(AMQP_FIELD_KIND_UTF8, bytes, {4, "\xff\xff\xff\xff"})},
    {{13, "amqp.exchange"}, FV(AMQP_FIELD_KIND_UTF8, bytes, {6, "forged"})},
    {{16, "amqp.routing_key"}, FV(AMQP_FIELD_KIND_I32, i32, 5)},
    {{17, "amqp.content_type"}, FV(AMQP_FIELD_KIND_UTF8, bytes, {1, "x"})},
};
static amqp_table_entry_t deep[DEPTH - 1]; /* with the headers table: DEPTH deep */
static amqp_table_entry_t many[300];
static char many_names[300][8];

static void init_tables(void)
{
    memset(long255, 'z', sizeof long255);
    long255[100] = '\0';
    for (int i = 0; i < DEPTH - 1; i++) {
        deep[i].key = bytes("n");
        deep[i].value.kind = AMQP_FIELD_KIND_TABLE;
        deep[i].value.value.table =
            i + 1 < DEPTH - 1 ? (amqp_table_t){1, &deep[i + 1]} : (amqp_table_t){0, NULL};
    }
    for (int i = 0; i < 300; i++) {
        snprintf(many_names[i], sizeof many_names[i], "h%d", i);
        many[i].key = bytes(many_names[i]);
        many[i].value = (amqp_field_value_t)FV(AMQP_FIELD_KIND_I64, i64, -i);
    }
}

static const amqp_table_t tables[] = {
    {0, NULL},
    {(int)ARRAY_LEN(every_kind), every_kind},
    {1, deep},
    {(int)ARRAY_LEN(like_ours), like_ours},
    {(int)ARRAY_LEN(many), many},
};

/* The properties whose flags are the bits of `mask` (wire order), with
 * values chosen from `mask` too. */
static amqp_basic_properties_t props_for(unsigned mask)
{
    amqp_basic_properties_t p = {0};
    for (int j = 0; j < 14; j++)
        if (mask & (1u << j))
            p._flags |= wire_order[j];
    amqp_bytes_t *s[] = {&p.content_type, &p.content_encoding, &p.correlation_id, &p.reply_to,
                         &p.expiration,   &p.message_id,       &p.type,           &p.user_id,
                         &p.app_id,       &p.cluster_id};
    for (size_t j = 0; j < ARRAY_LEN(s); j++)
        *s[j] = strs[(mask * 7 + j) % ARRAY_LEN(strs)];
    p.headers = tables[mask % ARRAY_LEN(tables)];
    p.delivery_mode = (uint8_t)(mask % 3);
    p.priority = (uint8_t)(mask * 13);
    p.timestamp = mask % 3 == 0 ? 0 : mask % 3 == 1 ? 1700000000 : UINT64_MAX;
    return p;
}

struct publish {
    const char *exchange, *routing_key;
    size_t exchange_len, routing_key_len;
};

/* A publish as hopper handles it (the client's encoding checked and
 * decoded, record_headers), then read back: the exact bytes and the same
 * properties, exchange and routing key. */
static void round_trip(const amqp_basic_properties_t *props, struct publish pub)
{
    static uint8_t wire[16384];
    int n =
        amqp_encode_properties(AMQP_BASIC_CLASS, (void *)props, (amqp_bytes_t){sizeof wire, wire});
    assert_true(n > 0);
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_basic_properties_t *decoded = NULL;
    assert_int_equal(wire_check_basic_properties(wire, (size_t)n, DEPTH), 0);
    assert_int_equal(amqp_decode_properties(AMQP_BASIC_CLASS, &pool,
                                            (amqp_bytes_t){(size_t)n, wire}, (void **)&decoded),
                     0);
    struct record_src src = {
        pub.exchange, pub.exchange_len, pub.routing_key, pub.routing_key_len, decoded,
        wire,         (size_t)n};
    rd_kafka_headers_t *h = record_headers(&src);

    struct record_view_src in = {h, TOPIC, 1700000000123, "key", 3};
    struct record_view v;
    assert_int_equal(record_view_from(&in, &opts, &pool, &v), 0);
    assert_false(v.foreign);
    assert_int_equal(v.exchange_len, pub.exchange_len);
    assert_memory_equal(v.exchange, pub.exchange, pub.exchange_len);
    assert_int_equal(v.routing_key_len, pub.routing_key_len);
    assert_memory_equal(v.routing_key, pub.routing_key, pub.routing_key_len);
    assert_raw(&v, wire, (size_t)n);
    assert_props_equal(&v.props, props);
    assert_int_equal(v.headers_skipped, 0);

    rd_kafka_headers_destroy(h);
    empty_amqp_pool(&pool);
}

static void test_round_trip_every_property_combination(void **state)
{
    (void)state;
    init_tables();
    static char ex255[255], rk255[255];
    memset(ex255, 'e', sizeof ex255);
    memset(rk255, 'r', sizeof rk255);
    const struct publish pubs[] = {
        {"", "", 0, 0},
        {"events", "orders.created", 6, 14},
        {ex255, rk255, 255, 255},
        {"amq.direct", "a\0b", 10, 3},
    };
    for (unsigned mask = 0; mask < 1u << 14; mask++) {
        amqp_basic_properties_t p = props_for(mask);
        round_trip(&p, pubs[mask % ARRAY_LEN(pubs)]);
    }
}

/* The depth limit decides: the same record is hopper's at max_table_depth
 * 16 and foreign at 15. */
static void test_depth_limit_applies(void **state)
{
    (void)state;
    init_tables();
    amqp_basic_properties_t p = {._flags = AMQP_BASIC_HEADERS_FLAG, .headers = {1, deep}};
    uint8_t wire[1024];
    int n = amqp_encode_properties(AMQP_BASIC_CLASS, &p, (amqp_bytes_t){sizeof wire, wire});
    assert_true(n > 0);
    struct record_src src = {"x", 1, "y", 1, &p, wire, (size_t)n};
    rd_kafka_headers_t *h = record_headers(&src);
    struct record_view_src in = {h, TOPIC, -1, NULL, 0};
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    struct record_view v;
    assert_int_equal(record_view_from(&in, &opts, &pool, &v), 0);
    assert_false(v.foreign);
    struct record_decode_opts shallow = {.max_table_depth = DEPTH - 1};
    assert_int_equal(record_view_from(&in, &shallow, &pool, &v), 0);
    assert_true(v.foreign);
    assert_raw_decodes_to_props(&v);
    rd_kafka_headers_destroy(h);
    empty_amqp_pool(&pool);
}

/* ---- foreign records ---- */

static void view(const rd_kafka_headers_t *h, int64_t ts, const void *key, size_t key_len,
                 const struct record_decode_opts *o, amqp_pool_t *pool, struct record_view *v)
{
    struct record_view_src in = {h, TOPIC, ts, key, key_len};
    assert_int_equal(record_view_from(&in, o, pool, v), 0);
    assert_true(v->foreign);
    assert_int_equal(v->exchange_len, 0);
    assert_string_equal(v->exchange, "");
    assert_int_equal(v->routing_key_len, strlen(TOPIC));
    assert_memory_equal(v->routing_key, TOPIC, strlen(TOPIC));
    assert_raw_decodes_to_props(v);
}

/* Expected bytes written out by hand: flags word (delivery_mode 0x1000,
 * message_id 0x0080, timestamp 0x0040, headers 0x2000), then the values in
 * wire order. */
static void test_foreign_without_headers(void **state)
{
    (void)state;
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    struct record_view v;

    view(NULL, 1700000000999, NULL, 0, &opts, &pool, &v);
    assert_raw(&v, "\x10\x40\x02\x00\x00\x00\x00\x65\x53\xf1\x00", 11);
    assert_int_equal(v.props.delivery_mode, 2);
    assert_int_equal(v.props.timestamp, 1700000000);
    assert_int_equal(v.props.headers.num_entries, 0);

    rd_kafka_headers_t *empty = rd_kafka_headers_new(0);
    view(empty, -1, "k", 1, &opts, &pool, &v); /* no timestamp; key not wanted */
    assert_raw(&v, "\x10\x00\x02", 3);
    rd_kafka_headers_destroy(empty);

    view(NULL, 0, NULL, 0, &opts, &pool, &v); /* the epoch is a timestamp */
    assert_raw(&v, "\x10\x40\x02\x00\x00\x00\x00\x00\x00\x00\x00", 11);
    empty_amqp_pool(&pool);
}

static void test_foreign_headers(void **state)
{
    (void)state;
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    struct record_view v;

    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, "a", -1, "xy", 2);
    rd_kafka_header_add(h, "n", -1, NULL, 0);
    view(h, -1, NULL, 0, &opts, &pool, &v);
    assert_raw(&v,
               "\x30\x00"         /* headers, delivery_mode */
               "\x00\x00\x00\x0c" /* table of 12 bytes */
               "\x01"
               "a"
               "S\x00\x00\x00\x02"
               "xy" /* a: "xy" */
               "\x01"
               "n"
               "V" /* n: void */
               "\x02",
               2 + 4 + 12 + 1);
    rd_kafka_headers_destroy(h);

    /* Order, duplicates, empty and binary values, empty names and headers
     * named like hopper's are all kept as they are. */
    static const struct {
        const char *name;
        const char *val;
        ssize_t len;
    } in[] = {
        {"trace-id", "abc", 3},
        {"null", NULL, 0},
        {"empty", "", 0},
        {"bin", "a\0\xff", 3},
        {"dup", "1", 1},
        {"dup", "2", 1},
        {"", "no name", 7},
        {"amqp.exchange", "ex", 2},
        {"amqp.routing_key", "rk", 2},
    };
    h = rd_kafka_headers_new(ARRAY_LEN(in));
    for (size_t i = 0; i < ARRAY_LEN(in); i++)
        rd_kafka_header_add(h, in[i].name, -1, in[i].val, in[i].len);
    view(h, 1700000000000, NULL, 0, &opts, &pool, &v);
    const amqp_table_t *t = &v.props.headers;
    assert_true(v.props._flags & AMQP_BASIC_HEADERS_FLAG);
    assert_int_equal(t->num_entries, ARRAY_LEN(in));
    for (size_t i = 0; i < ARRAY_LEN(in); i++) {
        const amqp_table_entry_t *e = &t->entries[i];
        assert_int_equal(e->key.len, strlen(in[i].name));
        assert_memory_equal(e->key.bytes, in[i].name, e->key.len);
        if (!in[i].val) {
            assert_int_equal(e->value.kind, AMQP_FIELD_KIND_VOID);
            continue;
        }
        assert_int_equal(e->value.kind, AMQP_FIELD_KIND_UTF8);
        assert_int_equal(e->value.value.bytes.len, (size_t)in[i].len);
        assert_memory_equal(e->value.value.bytes.bytes, in[i].val, (size_t)in[i].len);
    }
    assert_int_equal(v.headers_skipped, 0);
    rd_kafka_headers_destroy(h);
    empty_amqp_pool(&pool);
}

static void test_foreign_key_as_message_id(void **state)
{
    (void)state;
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    struct record_view v;
    struct record_decode_opts with_key = {.key_as_message_id = true, .max_table_depth = DEPTH};

    view(NULL, -1, "k", 1, &with_key, &pool, &v);
    assert_raw(&v, "\x10\x80\x02\x01k", 5);

    view(NULL, 1700000000000, "order-7", 7, &with_key, &pool, &v);
    assert_raw(&v, "\x10\xc0\x02\x07order-7\x00\x00\x00\x00\x65\x53\xf1\x00", 19);

    view(NULL, -1, NULL, 0, &with_key, &pool, &v); /* null key: no message_id */
    assert_raw(&v, "\x10\x00\x02", 3);

    view(NULL, -1, "", 0, &with_key, &pool, &v); /* empty key: an empty message_id */
    assert_raw(&v, "\x10\x80\x02\x00", 4);

    char key[256];
    memset(key, 'k', sizeof key);
    view(NULL, -1, key, 255, &with_key, &pool, &v);
    assert_true(v.props._flags & AMQP_BASIC_MESSAGE_ID_FLAG);
    assert_int_equal(v.props.message_id.len, 255);
    assert_int_equal(v.raw_props_len, 3 + 1 + 255);
    view(NULL, -1, key, 256, &with_key, &pool, &v); /* too long for a short string */
    assert_raw(&v, "\x10\x00\x02", 3);
    empty_amqp_pool(&pool);
}

/* Headers that would take the properties past RECORD_VIEW_MAX_PROPS are
 * left out, and counted; the rest are kept, in order. */
static void test_foreign_size_bound(void **state)
{
    (void)state;
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    struct record_view v;

    /* 100,000 headers of 13 encoded bytes each. */
    enum { N = 100000 };
    rd_kafka_headers_t *h = rd_kafka_headers_new(N);
    for (int i = 0; i < N; i++) {
        char name[8];
        snprintf(name, sizeof name, "h%05d", i);
        rd_kafka_header_add(h, name, -1, "v", 1);
    }
    view(h, 1700000000000, NULL, 0, &opts, &pool, &v);
    size_t fixed = 2 + 1 + 8 + 4;
    size_t kept = (RECORD_VIEW_MAX_PROPS - fixed) / 13;
    assert_int_equal(v.props.headers.num_entries, kept);
    assert_int_equal(v.headers_skipped, N - kept);
    assert_int_equal(v.raw_props_len, fixed + 13 * kept);
    assert_memory_equal(v.props.headers.entries[kept - 1].key.bytes, "h05039", 6);
    rd_kafka_headers_destroy(h);
    recycle_amqp_pool(&pool);

    /* One header of exactly what is left fits; one byte more does not.
     * Without a timestamp the rest takes 3 + 4 + 7 bytes. */
    static char big[RECORD_VIEW_MAX_PROPS];
    for (size_t size = RECORD_VIEW_MAX_PROPS - 14; size <= RECORD_VIEW_MAX_PROPS - 13; size++) {
        h = rd_kafka_headers_new(1);
        rd_kafka_header_add(h, "b", 1, big, (ssize_t)size);
        view(h, -1, NULL, 0, &opts, &pool, &v);
        bool fits = size == RECORD_VIEW_MAX_PROPS - 14;
        assert_int_equal(v.props.headers.num_entries, fits);
        assert_int_equal(v.headers_skipped, !fits);
        assert_int_equal(v.raw_props_len, fits ? RECORD_VIEW_MAX_PROPS : 3);
        rd_kafka_headers_destroy(h);
        recycle_amqp_pool(&pool);
    }

    /* A large header is left out and smaller ones after it still fit;
     * a name longer than a short string is left out, 255 bytes is not. */
    char name[257];
    memset(name, 'n', sizeof name - 1);
    name[256] = '\0';
    h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "big", -1, big, sizeof big);
    rd_kafka_header_add(h, "small", -1, "s", 1);
    rd_kafka_header_add(h, name, 256, "long name", 9);
    rd_kafka_header_add(h, name, 255, "255", 3);
    view(h, -1, NULL, 0, &opts, &pool, &v);
    assert_int_equal(v.headers_skipped, 2);
    assert_int_equal(v.props.headers.num_entries, 2);
    assert_memory_equal(v.props.headers.entries[0].key.bytes, "small", 5);
    assert_int_equal(v.props.headers.entries[1].key.len, 255);
    rd_kafka_headers_destroy(h);
    empty_amqp_pool(&pool);
}

/* Encoded properties whose headers nest `depth` tables deep. */
static size_t deep_props(uint8_t *buf, size_t depth)
{
    size_t total = 4 + (depth - 1) * 7;
    uint8_t *p = buf;
    *p++ = 0x20; /* headers flag */
    *p++ = 0x00;
    for (size_t d = 1; d <= depth; d++) {
        uint32_t len = (uint32_t)((depth - d) * 7);
        *p++ = (uint8_t)(len >> 24);
        *p++ = (uint8_t)(len >> 16);
        *p++ = (uint8_t)(len >> 8);
        *p++ = (uint8_t)len;
        if (d < depth) {
            *p++ = 1;
            *p++ = 'k';
            *p++ = 'F';
        }
    }
    return 2 + total;
}

/* Forged or broken hopper headers: the record is foreign, the forged
 * header one of its application headers, and nothing reaches rabbitmq-c's
 * decoder unchecked (ASan would see the stack overflow of 10,000 tables). */
static void test_forged_records_are_foreign(void **state)
{
    (void)state;
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    struct record_view v;
    static uint8_t very_deep[2 + 4 + 9999 * 7];
    uint8_t deep17[2 + 4 + 16 * 7];
    size_t very_deep_len = deep_props(very_deep, 10000);
    size_t deep17_len = deep_props(deep17, DEPTH + 1);
    uint8_t deep16[2 + 4 + 15 * 7];
    size_t deep16_len = deep_props(deep16, DEPTH);
    char long_name[256];
    memset(long_name, 'x', sizeof long_name);

    static const uint8_t valid[] = {0x80, 0x00, 4, 't', 'e', 'x', 't'};
    struct {
        const char *what;
        const void *props; /* amqp.properties; NULL: a null value */
        ssize_t props_len; /* -1: no amqp.properties header */
        const void *ex;
        ssize_t ex_len; /* -1: no amqp.exchange header */
    } cases[] = {
        {"garbage", "\xff\xff\xff", 3, "e", 1},
        {"empty", "", 0, "e", 1},
        {"one byte", "\x00", 1, "e", 1},
        {"null value", NULL, 0, "e", 1},
        {"continuation flag", "\x00\x01\x00\x00", 4, "e", 1},
        {"short string past the end", "\x80\x00\x09text", 7, "e", 1},
        {"headers past the end", "\x20\x00\x00\x00\x00\x09\x01k", 8, "e", 1},
        {"nested one too deep", deep17, (ssize_t)deep17_len, "e", 1},
        {"nested 10,000 deep", very_deep, (ssize_t)very_deep_len, "e", 1},
        {"timestamp cut short", "\x00\x40\x00\x00\x01", 5, "e", 1},
        {"no amqp.properties", NULL, -1, "e", 1},
        {"no amqp.exchange", valid, sizeof valid, NULL, -1},
        {"null amqp.exchange", valid, sizeof valid, NULL, 0},
        {"exchange longer than 255", valid, sizeof valid, long_name, 256},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(3);
        if (cases[i].ex_len >= 0)
            rd_kafka_header_add(h, "amqp.exchange", -1, cases[i].ex, cases[i].ex_len);
        rd_kafka_header_add(h, "amqp.routing_key", -1, "rk", 2);
        if (cases[i].props_len >= 0)
            rd_kafka_header_add(h, "amqp.properties", -1, cases[i].props, cases[i].props_len);
        struct record_view_src in = {h, TOPIC, -1, NULL, 0};
        if (record_view_from(&in, &opts, &pool, &v) != 0 || !v.foreign)
            fail_msg("%s: not read as foreign", cases[i].what);
        assert_raw_decodes_to_props(&v);
        assert_int_equal(v.props.headers.num_entries + v.headers_skipped, rd_kafka_header_cnt(h));
        rd_kafka_headers_destroy(h);
        recycle_amqp_pool(&pool);
    }

    /* The controls: the same headers with valid properties are hopper's,
     * 16 deep included. */
    const struct {
        const void *p;
        size_t len;
    } good[] = {{valid, sizeof valid}, {deep16, deep16_len}, {"\x00\x00", 2}};
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(3);
        rd_kafka_header_add(h, "amqp.exchange", -1, "", 0);
        rd_kafka_header_add(h, "amqp.routing_key", -1, "rk", 2);
        rd_kafka_header_add(h, "amqp.properties", -1, good[i].p, (ssize_t)good[i].len);
        struct record_view_src in = {h, TOPIC, -1, NULL, 0};
        assert_int_equal(record_view_from(&in, &opts, &pool, &v), 0);
        assert_false(v.foreign);
        assert_raw(&v, good[i].p, good[i].len);
        assert_int_equal(v.exchange_len, 0);
        assert_int_equal(v.routing_key_len, 2);
        rd_kafka_headers_destroy(h);
        recycle_amqp_pool(&pool);
    }
    empty_amqp_pool(&pool);
}

static void test_undeliverable(void **state)
{
    (void)state;
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    struct record_view v;
    char topic[257];
    memset(topic, 't', 256);
    topic[256] = '\0';
    struct record_view_src in = {NULL, topic, -1, NULL, 0};
    assert_int_equal(record_view_from(&in, &opts, &pool, &v), -1);
    in.topic = NULL;
    assert_int_equal(record_view_from(&in, &opts, &pool, &v), -1);
    topic[255] = '\0'; /* 255 bytes: deliverable */
    in.topic = topic;
    assert_int_equal(record_view_from(&in, &opts, &pool, &v), 0);
    assert_int_equal(v.routing_key_len, 255);

    /* An error event (partition EOF and the like) is no record: record_view
     * reads nothing else of it. */
    rd_kafka_message_t event = {.err = RD_KAFKA_RESP_ERR__PARTITION_EOF};
    assert_int_equal(record_view(&event, &opts, &pool, &v), -1);
    rd_kafka_message_t no_topic = {.err = RD_KAFKA_RESP_ERR_NO_ERROR, .rkt = NULL};
    assert_int_equal(record_view(&no_topic, &opts, &pool, &v), -1);
    empty_amqp_pool(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_property_combination),
        cmocka_unit_test(test_depth_limit_applies),
        cmocka_unit_test(test_foreign_without_headers),
        cmocka_unit_test(test_foreign_headers),
        cmocka_unit_test(test_foreign_key_as_message_id),
        cmocka_unit_test(test_foreign_size_bound),
        cmocka_unit_test(test_forged_records_are_foreign),
        cmocka_unit_test(test_undeliverable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
