/* test_record.c - the Kafka record format: headers from basic properties
 * and application headers, text and JSON forms of field values, raw
 * property bytes, and record keys. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "record.h"

/* Header values compared with explicit lengths: they may hold NULs. */
struct want {
    const char *name;
    const char *val;
    size_t len;
};

#define W(n, v)                                                                                    \
    {                                                                                              \
        (n), (v), sizeof(v) - 1                                                                    \
    }

static void assert_headers(const rd_kafka_headers_t *h, const struct want *want, size_t n)
{
    size_t i = 0;
    const char *name;
    const void *val;
    size_t size;
    for (; rd_kafka_header_get_all(h, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
        if (i >= n)
            fail_msg("unexpected header %zu \"%s\"", i, name);
        if (strcmp(name, want[i].name) != 0)
            fail_msg("header %zu: name \"%s\", want \"%s\"", i, name, want[i].name);
        if (!val)
            fail_msg("header %s: null value", name);
        if (size != want[i].len || memcmp(val, want[i].val, size) != 0)
            fail_msg("header %s: value \"%.*s\" (%zu), want \"%s\" (%zu)", name, (int)size,
                     (const char *)val, size, want[i].val, want[i].len);
    }
    assert_int_equal(i, n);
}

static amqp_bytes_t bytes(const char *s)
{
    return amqp_cstring_bytes((char *)s);
}

static const char raw_props[] = "\xff\xfc\x00raw\x00\x01";

static struct record_src make_src(const amqp_basic_properties_t *props)
{
    return (struct record_src){
        .exchange = "events",
        .exchange_len = 6,
        .routing_key = "orders.created",
        .routing_key_len = 14,
        .props = props,
        .raw_props = raw_props,
        .raw_props_len = sizeof raw_props - 1,
    };
}

static void test_all_properties(void **state)
{
    (void)state;
    amqp_table_entry_t app[] = {
        {.key = bytes("x-app"),
         .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes("v")}}};
    amqp_basic_properties_t p = {
        ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
                  AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                  AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
                  AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_EXPIRATION_FLAG |
                  AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_TYPE_FLAG |
                  AMQP_BASIC_USER_ID_FLAG | AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_CLUSTER_ID_FLAG,
        .content_type = bytes("application/json"),
        .content_encoding = bytes("gzip"),
        .headers = {.num_entries = 1, .entries = app},
        .delivery_mode = 2,
        .priority = 255,
        .correlation_id = bytes("corr-1"),
        .reply_to = bytes("amq.rabbitmq.reply-to"),
        .expiration = bytes("60000"),
        .message_id = bytes("msg-42"),
        .timestamp = 1700000000,
        .type = bytes("order.created"),
        .user_id = bytes("guest"),
        .app_id = bytes("shop"),
        .cluster_id = bytes("c1"),
    };
    struct record_src src = make_src(&p);
    rd_kafka_headers_t *h = record_headers(&src);
    const struct want want[] = {
        W("amqp.exchange", "events"),
        W("amqp.routing_key", "orders.created"),
        W("amqp.content_type", "application/json"),
        W("amqp.content_encoding", "gzip"),
        W("amqp.delivery_mode", "2"),
        W("amqp.priority", "255"),
        W("amqp.correlation_id", "corr-1"),
        W("amqp.reply_to", "amq.rabbitmq.reply-to"),
        W("amqp.expiration", "60000"),
        W("amqp.message_id", "msg-42"),
        W("amqp.timestamp", "1700000000"),
        W("amqp.type", "order.created"),
        W("amqp.user_id", "guest"),
        W("amqp.app_id", "shop"),
        W("amqp.cluster_id", "c1"),
        W("x-app", "v"),
        W("amqp.properties", "\xff\xfc\x00raw\x00\x01"),
    };
    assert_headers(h, want, ARRAY_LEN(want));
    rd_kafka_headers_destroy(h);
}

/* Only the properties whose flag is set appear, whatever the fields hold;
 * a set but empty property is an empty value, not a missing header. */
static void test_some_properties(void **state)
{
    (void)state;
    amqp_basic_properties_t p = {
        ._flags =
            AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG,
        .content_type = bytes("ignored"),
        .delivery_mode = 1,
        .priority = 9,
        .message_id = {0, NULL},
        .timestamp = UINT64_MAX,
    };
    struct record_src src = make_src(&p);
    src.exchange = "";
    src.exchange_len = 0;
    src.routing_key = NULL;
    src.routing_key_len = 0;
    rd_kafka_headers_t *h = record_headers(&src);
    const struct want want[] = {
        W("amqp.exchange", ""),
        W("amqp.routing_key", ""),
        W("amqp.delivery_mode", "1"),
        W("amqp.message_id", ""),
        W("amqp.timestamp", "18446744073709551615"),
        W("amqp.properties", "\xff\xfc\x00raw\x00\x01"),
    };
    assert_headers(h, want, ARRAY_LEN(want));
    rd_kafka_headers_destroy(h);

    /* No properties at all: the fixed headers only. Headers with the flag
     * clear are ignored even if entries are filled in. */
    amqp_table_entry_t app[] = {{.key = bytes("x"), .value = {.kind = AMQP_FIELD_KIND_VOID}}};
    amqp_basic_properties_t none = {._flags = 0, .headers = {1, app}};
    src = make_src(&none);
    src.raw_props = "\x00\x00";
    src.raw_props_len = 2;
    h = record_headers(&src);
    const struct want want2[] = {
        W("amqp.exchange", "events"),
        W("amqp.routing_key", "orders.created"),
        W("amqp.properties", "\x00\x00"),
    };
    assert_headers(h, want2, ARRAY_LEN(want2));
    rd_kafka_headers_destroy(h);

    src.props = NULL;
    h = record_headers(&src);
    assert_headers(h, want2, ARRAY_LEN(want2));
    rd_kafka_headers_destroy(h);
}

#define FV(k, member, v)                                                                           \
    {                                                                                              \
        .kind = (k), .value.member = (v)                                                           \
    }

static void test_app_header_kinds(void **state)
{
    (void)state;
    amqp_table_entry_t inner[] = {
        {bytes("d"), {.kind = AMQP_FIELD_KIND_DECIMAL, .value.decimal = {2, 1234}}},
        {bytes("e"), {.kind = AMQP_FIELD_KIND_TABLE, .value.table = {0, NULL}}},
    };
    amqp_field_value_t arr_in_table[] = {
        FV(AMQP_FIELD_KIND_I32, i32, 1),
        FV(AMQP_FIELD_KIND_UTF8, bytes, bytes("two")),
        {.kind = AMQP_FIELD_KIND_VOID},
        FV(AMQP_FIELD_KIND_BOOLEAN, boolean, 1),
        FV(AMQP_FIELD_KIND_F64, f64, 2.5),
        {.kind = AMQP_FIELD_KIND_TABLE, .value.table = {2, inner}},
        {.kind = AMQP_FIELD_KIND_ARRAY, .value.array = {0, NULL}},
    };
    amqp_table_entry_t nested[] = {
        {bytes("n"), FV(AMQP_FIELD_KIND_I64, i64, -5)},
        {bytes("arr"), {.kind = AMQP_FIELD_KIND_ARRAY, .value.array = {7, arr_in_table}}},
        {bytes("v"), {.kind = AMQP_FIELD_KIND_VOID}},
        {bytes("q\"k"), FV(AMQP_FIELD_KIND_UTF8, bytes, bytes("x\\y"))},
        {bytes("n"), FV(AMQP_FIELD_KIND_BOOLEAN, boolean, 0)}, /* duplicates stay */
    };
    amqp_field_value_t top_arr[] = {
        FV(AMQP_FIELD_KIND_U64, u64, UINT64_MAX),
        FV(AMQP_FIELD_KIND_TIMESTAMP, u64, 1700000000),
        FV(AMQP_FIELD_KIND_F64, f64, NAN),
        FV(AMQP_FIELD_KIND_BYTES, bytes, ((amqp_bytes_t){3, "a\0b"})),
    };
    amqp_table_entry_t app[] = {
        {bytes("bool-t"), FV(AMQP_FIELD_KIND_BOOLEAN, boolean, 1)},
        {bytes("bool-f"), FV(AMQP_FIELD_KIND_BOOLEAN, boolean, 0)},
        {bytes("i8"), FV(AMQP_FIELD_KIND_I8, i8, INT8_MIN)},
        {bytes("u8"), FV(AMQP_FIELD_KIND_U8, u8, UINT8_MAX)},
        {bytes("i16"), FV(AMQP_FIELD_KIND_I16, i16, INT16_MIN)},
        {bytes("u16"), FV(AMQP_FIELD_KIND_U16, u16, UINT16_MAX)},
        {bytes("i32"), FV(AMQP_FIELD_KIND_I32, i32, INT32_MIN)},
        {bytes("u32"), FV(AMQP_FIELD_KIND_U32, u32, UINT32_MAX)},
        {bytes("i64"), FV(AMQP_FIELD_KIND_I64, i64, INT64_MIN)},
        {bytes("u64"), FV(AMQP_FIELD_KIND_U64, u64, UINT64_MAX)},
        {bytes("f32"), FV(AMQP_FIELD_KIND_F32, f32, 0.1f)},
        {bytes("f64"), FV(AMQP_FIELD_KIND_F64, f64, 0.1)},
        {bytes("dec"), {.kind = AMQP_FIELD_KIND_DECIMAL, .value.decimal = {2, 1234}}},
        {bytes("str"), FV(AMQP_FIELD_KIND_UTF8, bytes, bytes("h\xc3\xa9llo \"q\""))},
        {bytes("bin"), FV(AMQP_FIELD_KIND_BYTES, bytes, ((amqp_bytes_t){4, "\x00\xff\n1"}))},
        {bytes("ts"), FV(AMQP_FIELD_KIND_TIMESTAMP, u64, 1700000000)},
        {bytes("void"), {.kind = AMQP_FIELD_KIND_VOID}},
        {bytes("arr"), {.kind = AMQP_FIELD_KIND_ARRAY, .value.array = {4, top_arr}}},
        {bytes("tbl"), {.kind = AMQP_FIELD_KIND_TABLE, .value.table = {5, nested}}},
        {bytes("empty-arr"), {.kind = AMQP_FIELD_KIND_ARRAY, .value.array = {0, NULL}}},
        {bytes("empty-str"), FV(AMQP_FIELD_KIND_UTF8, bytes, ((amqp_bytes_t){0, NULL}))},
    };
    amqp_basic_properties_t p = {
        ._flags = AMQP_BASIC_HEADERS_FLAG,
        .headers = {(int)ARRAY_LEN(app), app},
    };
    struct record_src src = make_src(&p);
    rd_kafka_headers_t *h = record_headers(&src);
    const struct want want[] = {
        W("amqp.exchange", "events"),
        W("amqp.routing_key", "orders.created"),
        W("bool-t", "true"),
        W("bool-f", "false"),
        W("i8", "-128"),
        W("u8", "255"),
        W("i16", "-32768"),
        W("u16", "65535"),
        W("i32", "-2147483648"),
        W("u32", "4294967295"),
        W("i64", "-9223372036854775808"),
        W("u64", "18446744073709551615"),
        W("f32", "0.1"),
        W("f64", "0.1"),
        W("dec", "12.34"),
        W("str", "h\xc3\xa9llo \"q\""),
        W("bin", "\x00\xff\n1"),
        W("ts", "1700000000"),
        W("void", ""),
        W("arr", "[18446744073709551615,1700000000,null,\"a\\u0000b\"]"),
        W("tbl", "{\"n\":-5,\"arr\":[1,\"two\",null,true,2.5,{\"d\":12.34,\"e\":{}},[]],"
                 "\"v\":null,\"q\\\"k\":\"x\\\\y\",\"n\":false}"),
        W("empty-arr", "[]"),
        W("empty-str", ""),
        W("amqp.properties", "\xff\xfc\x00raw\x00\x01"),
    };
    assert_headers(h, want, ARRAY_LEN(want));
    rd_kafka_headers_destroy(h);
}

static void assert_text(const amqp_field_value_t *v, const char *want)
{
    struct buf b = {0};
    record_field_text(&b, v);
    if (b.len != strlen(want) || (b.len && memcmp(b.data, want, b.len) != 0))
        fail_msg("text \"%.*s\", want \"%s\"", (int)b.len, b.data ? b.data : "", want);
    buf_free(&b);
}

static void assert_json(const amqp_field_value_t *v, const char *want, size_t want_len)
{
    struct buf b = {0};
    record_field_json(&b, v);
    if (b.len != want_len || memcmp(b.data, want, b.len) != 0)
        fail_msg("json \"%.*s\", want \"%s\"", (int)b.len, b.data ? b.data : "", want);
    buf_free(&b);
}

static void text_f64(double d, const char *want)
{
    amqp_field_value_t v = FV(AMQP_FIELD_KIND_F64, f64, d);
    assert_text(&v, want);
}

static void text_f32(float f, const char *want)
{
    amqp_field_value_t v = FV(AMQP_FIELD_KIND_F32, f32, f);
    assert_text(&v, want);
}

static void test_floats(void **state)
{
    (void)state;
    text_f64(0.0, "0");
    text_f64(-0.0, "-0");
    text_f64(1.0, "1");
    text_f64(100.0, "100");
    text_f64(2.5, "2.5");
    text_f64(-123.456, "-123.456");
    text_f64(1.0 / 3.0, "0.3333333333333333");
    text_f64(M_PI, "3.141592653589793");
    text_f64(0.0001, "0.0001");
    text_f64(0.00001, "1e-05");
    text_f64(1e15, "1000000000000000");
    text_f64(1e16, "1e+16");
    text_f64(1e20, "1e+20");
    text_f64(123456789012345678.0, "1.2345678901234568e+17");
    text_f64(DBL_MAX, "1.7976931348623157e+308");
    text_f64(5e-324, "5e-324");
    text_f64(0.1 + 0.2, "0.30000000000000004");
    text_f64(NAN, "NaN");
    text_f64(INFINITY, "Infinity");
    text_f64(-INFINITY, "-Infinity");
    text_f32(0.1f, "0.1");
    text_f32(3.14159265f, "3.1415927");
    text_f32(16777216.0f, "16777216");
    text_f32(1e15f, "1000000000000000"); /* 999999986991104 reads back as 1e15f */
    text_f32(FLT_MAX, "3.4028235e+38");
    text_f32(FLT_TRUE_MIN, "1e-45");
    text_f32(-INFINITY, "-Infinity");

    /* Every double written reads back the same. */
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < 2000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        memcpy(&d, &x, sizeof d);
        if (!isfinite(d))
            continue;
        amqp_field_value_t v = FV(AMQP_FIELD_KIND_F64, f64, d);
        struct buf b = {0};
        record_field_text(&b, &v);
        if (strtod(b.data, NULL) != d)
            fail_msg("%.17g written as %s", d, b.data);
        buf_free(&b);
    }

    amqp_field_value_t nan64 = FV(AMQP_FIELD_KIND_F64, f64, NAN);
    amqp_field_value_t inf32 = FV(AMQP_FIELD_KIND_F32, f32, INFINITY);
    amqp_field_value_t half = FV(AMQP_FIELD_KIND_F32, f32, 0.5f);
    assert_json(&nan64, "null", 4);
    assert_json(&inf32, "null", 4);
    assert_json(&half, "0.5", 3);
}

static void test_decimals(void **state)
{
    (void)state;
    static const struct {
        uint8_t scale;
        uint32_t value;
        const char *want;
    } cases[] = {
        {2, 1234, "12.34"},
        {3, 5, "0.005"},
        {0, 42, "42"},
        {2, 1200, "12.00"},
        {2, 0, "0.00"},
        {1, 7, "0.7"},
        {2, (uint32_t)-123, "-1.23"},
        {0, 0x80000000u, "-2147483648"},
        {4, 0x7fffffffu, "214748.3647"},
        {12, 1, "0.000000000001"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        amqp_field_value_t v = {.kind = AMQP_FIELD_KIND_DECIMAL,
                                .value.decimal = {cases[i].scale, cases[i].value}};
        assert_text(&v, cases[i].want);
        assert_json(&v, cases[i].want, strlen(cases[i].want));
    }
}

static void test_json_escaping(void **state)
{
    (void)state;
    static const char in[] = "q\" b\\ \n\r\t\b\f \x01\x1f\x7f "
                             "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 "      /* valid UTF-8 */
                             "\xff \xc0\x80 \xed\xa0\x80 \xf5\x80\x80\x80 " /* invalid */
                             "\xe2\x82 \x00 \xc3";                          /* truncated */
    static const char want[] = "\"q\\\" b\\\\ \\n\\r\\t\\b\\f \\u0001\\u001f\x7f "
                               "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 "
                               "\\u00ff \\u00c0\\u0080 \\u00ed\\u00a0\\u0080 "
                               "\\u00f5\\u0080\\u0080\\u0080 "
                               "\\u00e2\\u0082 \\u0000 \\u00c3\"";
    amqp_field_value_t s =
        FV(AMQP_FIELD_KIND_UTF8, bytes, ((amqp_bytes_t){sizeof in - 1, (void *)in}));
    assert_json(&s, want, sizeof want - 1);
    s.kind = AMQP_FIELD_KIND_BYTES;
    assert_json(&s, want, sizeof want - 1);
    /* The text form is the bytes as they are. */
    struct buf b = {0};
    record_field_text(&b, &s);
    assert_int_equal(b.len, sizeof in - 1);
    assert_memory_equal(b.data, in, sizeof in - 1);
    buf_free(&b);

    amqp_table_entry_t t[] = {{((amqp_bytes_t){3, "k\n\xff"}), {.kind = AMQP_FIELD_KIND_VOID}}};
    amqp_field_value_t tv = {.kind = AMQP_FIELD_KIND_TABLE, .value.table = {1, t}};
    static const char want_t[] = "{\"k\\n\\u00ff\":null}";
    assert_json(&tv, want_t, sizeof want_t - 1);
    assert_text(&tv, want_t);

    amqp_field_value_t scalars[] = {
        FV(AMQP_FIELD_KIND_BOOLEAN, boolean, 7),
        FV(AMQP_FIELD_KIND_I8, i8, -1),
        {.kind = AMQP_FIELD_KIND_VOID},
        FV(AMQP_FIELD_KIND_UTF8, bytes, ((amqp_bytes_t){0, NULL})),
    };
    assert_json(&scalars[0], "true", 4);
    assert_json(&scalars[1], "-1", 2);
    assert_json(&scalars[2], "null", 4);
    assert_json(&scalars[3], "\"\"", 2);
    assert_text(&scalars[2], "");
}

/* Tables as rabbitmq-c decodes them from the wire, not only as built by
 * hand: encode a table holding every kind, decode it, render it. */
static void test_decoded_table(void **state)
{
    (void)state;
    amqp_field_value_t arr[] = {{.kind = AMQP_FIELD_KIND_VOID}, FV(AMQP_FIELD_KIND_I16, i16, -2)};
    amqp_table_entry_t entries[] = {
        {bytes("t"), FV(AMQP_FIELD_KIND_BOOLEAN, boolean, 1)},
        {bytes("b"), FV(AMQP_FIELD_KIND_I8, i8, -8)},
        {bytes("B"), FV(AMQP_FIELD_KIND_U8, u8, 200)},
        {bytes("s"), FV(AMQP_FIELD_KIND_I16, i16, -300)},
        {bytes("u"), FV(AMQP_FIELD_KIND_U16, u16, 60000)},
        {bytes("I"), FV(AMQP_FIELD_KIND_I32, i32, -70000)},
        {bytes("i"), FV(AMQP_FIELD_KIND_U32, u32, 3000000000u)},
        {bytes("l"), FV(AMQP_FIELD_KIND_I64, i64, -5000000000)},
        {bytes("f"), FV(AMQP_FIELD_KIND_F32, f32, 1.5f)},
        {bytes("d"), FV(AMQP_FIELD_KIND_F64, f64, -0.25)},
        {bytes("D"), {.kind = AMQP_FIELD_KIND_DECIMAL, .value.decimal = {2, (uint32_t)-123}}},
        {bytes("S"), FV(AMQP_FIELD_KIND_UTF8, bytes, bytes("str"))},
        {bytes("x"), FV(AMQP_FIELD_KIND_BYTES, bytes, bytes("raw"))},
        {bytes("T"), FV(AMQP_FIELD_KIND_TIMESTAMP, u64, 1234567890)},
        {bytes("V"), {.kind = AMQP_FIELD_KIND_VOID}},
        {bytes("A"), {.kind = AMQP_FIELD_KIND_ARRAY, .value.array = {2, arr}}},
    };
    amqp_table_t in = {(int)ARRAY_LEN(entries), entries};
    char wire[1024];
    size_t off = 0;
    assert_int_equal(amqp_encode_table((amqp_bytes_t){sizeof wire, wire}, &in, &off), 0);
    size_t wire_len = off;

    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_field_value_t v = {.kind = AMQP_FIELD_KIND_TABLE};
    off = 0;
    assert_int_equal(amqp_decode_table((amqp_bytes_t){wire_len, wire}, &pool, &v.value.table, &off),
                     0);
    static const char want[] = "{\"t\":true,\"b\":-8,\"B\":200,\"s\":-300,\"u\":60000,"
                               "\"I\":-70000,\"i\":3000000000,\"l\":-5000000000,\"f\":1.5,"
                               "\"d\":-0.25,\"D\":-1.23,\"S\":\"str\",\"x\":\"raw\","
                               "\"T\":1234567890,\"V\":null,\"A\":[null,-2]}";
    assert_json(&v, want, sizeof want - 1);
    assert_text(&v, want);
    empty_amqp_pool(&pool);
}

/* Nesting beyond the backstop depth is cut off as null, without recursing
 * without bound. */
static void test_json_depth_backstop(void **state)
{
    (void)state;
    enum { DEPTH = 1000 };
    amqp_field_value_t *chain = calloc(DEPTH, sizeof *chain);
    for (int i = 0; i < DEPTH; i++) {
        chain[i].kind = AMQP_FIELD_KIND_ARRAY;
        chain[i].value.array.num_entries = i + 1 < DEPTH ? 1 : 0;
        chain[i].value.array.entries = i + 1 < DEPTH ? &chain[i + 1] : NULL;
    }
    struct buf b = {0};
    record_field_json(&b, &chain[0]);
    assert_non_null(strstr(b.data, "[null]"));
    assert_true(b.len < 2 * DEPTH);
    buf_free(&b);
    free(chain);
}

static void test_raw_props_passthrough(void **state)
{
    (void)state;
    /* Real encoded properties, then arbitrary bytes: copied exactly. */
    amqp_basic_properties_t p = {
        ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG,
        .content_type = bytes("text/plain"),
        .delivery_mode = 2,
    };
    char wire[256];
    int n = amqp_encode_properties(AMQP_BASIC_CLASS, &p, (amqp_bytes_t){sizeof wire, wire});
    assert_true(n > 0);
    struct record_src src = make_src(&p);
    src.raw_props = wire;
    src.raw_props_len = (size_t)n;
    rd_kafka_headers_t *h = record_headers(&src);
    const void *val;
    size_t size;
    assert_int_equal(rd_kafka_header_get_last(h, "amqp.properties", &val, &size),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(size, (size_t)n);
    assert_memory_equal(val, wire, size);
    assert_int_equal(rd_kafka_header_cnt(h), 5);
    rd_kafka_headers_destroy(h);

    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    src.raw_props = all;
    src.raw_props_len = sizeof all;
    h = record_headers(&src);
    assert_int_equal(rd_kafka_header_get_last(h, "amqp.properties", &val, &size),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(size, sizeof all);
    assert_memory_equal(val, all, sizeof all);
    rd_kafka_headers_destroy(h);
}

static void key_of(const struct record_src *src, enum key_source ks, const char *header,
                   struct buf *scratch, const void **key, size_t *len)
{
    struct route_target t = {.topic = "t", .key = ks, .key_header = header};
    *key = (const void *)1; /* must be overwritten */
    *len = 99;
    record_key(src, &t, scratch, key, len);
}

static void test_key_sources(void **state)
{
    (void)state;
    amqp_table_entry_t app[] = {
        {bytes("tenant"), FV(AMQP_FIELD_KIND_UTF8, bytes, bytes("acme"))},
        {bytes("n"), FV(AMQP_FIELD_KIND_I32, i32, -42)},
        {bytes("v"), {.kind = AMQP_FIELD_KIND_VOID}},
        {bytes("tenant"), FV(AMQP_FIELD_KIND_UTF8, bytes, bytes("second"))},
        {bytes("tbl"), {.kind = AMQP_FIELD_KIND_TABLE, .value.table = {0, NULL}}},
    };
    amqp_basic_properties_t p = {
        ._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG,
        .headers = {(int)ARRAY_LEN(app), app},
        .message_id = bytes("m-1"),
    };
    struct record_src src = make_src(&p);
    struct buf scratch = {0};
    const void *key;
    size_t len;

    key_of(&src, KEY_ROUTING_KEY, NULL, &scratch, &key, &len);
    assert_ptr_equal(key, src.routing_key);
    assert_int_equal(len, 14);

    key_of(&src, KEY_MESSAGE_ID, NULL, &scratch, &key, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(key, "m-1", 3);

    key_of(&src, KEY_HEADER, "tenant", &scratch, &key, &len); /* first one */
    assert_int_equal(len, 4);
    assert_memory_equal(key, "acme", 4);

    key_of(&src, KEY_HEADER, "n", &scratch, &key, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(key, "-42", 3);
    assert_ptr_equal(key, scratch.data);

    key_of(&src, KEY_HEADER, "tbl", &scratch, &key, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(key, "{}", 2);

    key_of(&src, KEY_HEADER, "v", &scratch, &key, &len); /* present, empty */
    assert_non_null(key);
    assert_int_equal(len, 0);

    key_of(&src, KEY_HEADER, "missing", &scratch, &key, &len);
    assert_null(key);
    assert_int_equal(len, 0);
    key_of(&src, KEY_HEADER, "tenan", &scratch, &key, &len);
    assert_null(key);

    key_of(&src, KEY_NONE, NULL, &scratch, &key, &len);
    assert_null(key);
    assert_int_equal(len, 0);

    /* Empty routing key: an empty key, not a null one. */
    src.routing_key = "";
    src.routing_key_len = 0;
    key_of(&src, KEY_ROUTING_KEY, NULL, &scratch, &key, &len);
    assert_non_null(key);
    assert_int_equal(len, 0);
    src.routing_key = NULL;
    key_of(&src, KEY_ROUTING_KEY, NULL, &scratch, &key, &len);
    assert_non_null(key);
    assert_int_equal(len, 0);

    /* Empty message_id: empty key; absent: null key. */
    p.message_id = (amqp_bytes_t){0, NULL};
    key_of(&src, KEY_MESSAGE_ID, NULL, &scratch, &key, &len);
    assert_non_null(key);
    assert_int_equal(len, 0);
    p._flags &= ~(amqp_flags_t)AMQP_BASIC_MESSAGE_ID_FLAG;
    key_of(&src, KEY_MESSAGE_ID, NULL, &scratch, &key, &len);
    assert_null(key);

    /* Headers flag clear: no headers, whatever the table holds. */
    p._flags &= ~(amqp_flags_t)AMQP_BASIC_HEADERS_FLAG;
    key_of(&src, KEY_HEADER, "tenant", &scratch, &key, &len);
    assert_null(key);
    src.props = NULL;
    key_of(&src, KEY_HEADER, "tenant", &scratch, &key, &len);
    assert_null(key);
    key_of(&src, KEY_MESSAGE_ID, NULL, &scratch, &key, &len);
    assert_null(key);

    buf_free(&scratch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_properties),
        cmocka_unit_test(test_some_properties),
        cmocka_unit_test(test_app_header_kinds),
        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_decimals),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_decoded_table),
        cmocka_unit_test(test_json_depth_backstop),
        cmocka_unit_test(test_raw_props_passthrough),
        cmocka_unit_test(test_key_sources),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
