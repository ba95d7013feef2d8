/* fuzz_table.c - libFuzzer harness for field tables: hopper's bounded
 * checker (src/wire.c) against rabbitmq-c 0.11's unbounded decoders, and
 * the text/JSON forms of the decoded values (src/record.c).
 *
 * For every input:
 *  1. wire_check_table over the whole input with max_depth 16. When it
 *     accepts, amqp_decode_table must decode the same bytes, end where the
 *     checker ended and nest no deeper than 16; then every value goes
 *     through record_field_text and record_field_json, and the JSON must
 *     parse (a small strict validator below).
 *  2. The first 4 bytes as a method id, the rest as its arguments:
 *     wire_check_method, and when it accepts, amqp_decode_method; every
 *     table in the decoded method must be within the depth allowed.
 *  3. The same rest as encoded basic properties (flags first):
 *     wire_check_basic_properties, and when it accepts,
 *     amqp_decode_properties, the headers depth, and the record headers and
 *     key a publish with these properties would get.
 * A decoder going deeper than the checker allowed is reported with
 * abort() at once, rather than waiting for a stack overflow that would
 * need inputs far larger than the fuzzer makes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "record.h"
#include "router.h"
#include "wire.h"

#define MAX_DEPTH 16

/* rabbitmq-c exports the table decoder but leaves it out of its headers. */
int amqp_decode_table(amqp_bytes_t encoded, amqp_pool_t *pool, amqp_table_t *output,
                      size_t *offset);

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_table: " __VA_ARGS__);                                           \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- depth of decoded values ---- */

static int value_depth(const amqp_field_value_t *v);

static int table_depth(const amqp_table_t *t)
{
    int d = 0;
    for (int i = 0; i < t->num_entries; i++) {
        int e = value_depth(&t->entries[i].value);
        if (e > d)
            d = e;
    }
    return 1 + d;
}

static int value_depth(const amqp_field_value_t *v)
{
    if (v->kind == AMQP_FIELD_KIND_TABLE)
        return table_depth(&v->value.table);
    if (v->kind == AMQP_FIELD_KIND_ARRAY) {
        int d = 0;
        for (int i = 0; i < v->value.array.num_entries; i++) {
            int e = value_depth(&v->value.array.entries[i]);
            if (e > d)
                d = e;
        }
        return 1 + d;
    }
    return 0;
}

/* ---- a strict JSON validator (RFC 8259, UTF-8 checked) ---- */

struct json {
    const unsigned char *p, *end;
};

static void ws(struct json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool lit(struct json *j, const char *s)
{
    size_t n = strlen(s);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, s, n) != 0)
        return false;
    j->p += n;
    return true;
}

static bool utf8(struct json *j)
{
    unsigned c = *j->p;
    size_t n;
    unsigned min;
    if (c < 0x80)
        return j->p++, true;
    if (c >= 0xc2 && c <= 0xdf)
        n = 1, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 2, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 3, min = 0x10000;
    else
        return false;
    if ((size_t)(j->end - j->p) <= n)
        return false;
    unsigned cp = c & (0x3f >> n);
    for (size_t i = 1; i <= n; i++) {
        if ((j->p[i] & 0xc0) != 0x80)
            return false;
        cp = cp << 6 | (j->p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return false;
    j->p += n + 1;
    return true;
}

static bool string(struct json *j)
{
    if (j->p >= j->end || *j->p != '"')
        return false;
    j->p++;
    while (j->p < j->end && *j->p != '"') {
        if (*j->p < 0x20)
            return false;
        if (*j->p == '\\') {
            j->p++;
            if (j->p >= j->end)
                return false;
            if (*j->p == 'u') {
                if (j->end - j->p < 5)
                    return false;
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", j->p[i]) || !j->p[i])
                        return false;
                j->p += 5;
            } else if (strchr("\"\\/bfnrt", *j->p) && *j->p) {
                j->p++;
            } else {
                return false;
            }
        } else if (!utf8(j)) {
            return false;
        }
    }
    if (j->p >= j->end)
        return false;
    j->p++;
    return true;
}

static bool digits(struct json *j)
{
    const unsigned char *s = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > s;
}

static bool number(struct json *j)
{
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (!digits(j))
        return false;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!digits(j))
            return false;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (!digits(j))
            return false;
    }
    return true;
}

static bool value(struct json *j, int depth)
{
    if (depth > 200)
        return false;
    ws(j);
    if (j->p >= j->end)
        return false;
    switch (*j->p) {
    case '"':
        return string(j);
    case 't':
        return lit(j, "true");
    case 'f':
        return lit(j, "false");
    case 'n':
        return lit(j, "null");
    case '[':
    case '{': {
        bool obj = *j->p == '{';
        j->p++;
        ws(j);
        if (j->p < j->end && *j->p == (obj ? '}' : ']'))
            return j->p++, true;
        for (;;) {
            if (obj) {
                ws(j);
                if (!string(j))
                    return false;
                ws(j);
                if (j->p >= j->end || *j->p != ':')
                    return false;
                j->p++;
            }
            if (!value(j, depth + 1))
                return false;
            ws(j);
            if (j->p >= j->end)
                return false;
            if (*j->p == ',') {
                j->p++;
                continue;
            }
            if (*j->p != (obj ? '}' : ']'))
                return false;
            j->p++;
            return true;
        }
    }
    default:
        return number(j);
    }
}

static bool json_valid(const char *s, size_t n)
{
    struct json j = {(const unsigned char *)s, (const unsigned char *)s + n};
    if (!value(&j, 0))
        return false;
    ws(&j);
    return j.p == j.end;
}

/* ---- the checks ---- */

static void render(const amqp_field_value_t *v)
{
    struct buf text = {0}, json = {0};
    record_field_text(&text, v);
    record_field_json(&json, v);
    CHECK(json_valid(json.data ? json.data : "", json.len),
          "record_field_json wrote invalid JSON: %.*s", (int)(json.len > 400 ? 400 : json.len),
          json.data);
    buf_free(&text);
    buf_free(&json);
}

static void render_table(const amqp_table_t *t)
{
    for (int i = 0; i < t->num_entries; i++)
        render(&t->entries[i].value);
    amqp_field_value_t whole = {AMQP_FIELD_KIND_TABLE, {.table = *t}};
    render(&whole);
}

static void check_table(const uint8_t *data, size_t size, amqp_pool_t *pool)
{
    size_t consumed;
    if (wire_check_table(data, size, MAX_DEPTH, &consumed))
        return;
    amqp_table_t t;
    size_t off = 0;
    int rc = amqp_decode_table((amqp_bytes_t){size, (void *)data}, pool, &t, &off);
    CHECK(rc == AMQP_STATUS_OK, "wire_check_table accepted what amqp_decode_table refuses (%d)",
          rc);
    CHECK(off == consumed, "decoder ended at %zu, checker at %zu", off, consumed);
    int d = table_depth(&t);
    CHECK(d <= MAX_DEPTH, "decoded table nests %d deep, checker allowed %d", d, MAX_DEPTH);
    render_table(&t);
}

/* Every table a decoded method carries (those of method_layouts in wire.c
 * and any other). */
static void method_tables(amqp_method_number_t id, void *m, const amqp_table_t **out, int *n)
{
    *n = 0;
    switch (id) {
    case AMQP_CONNECTION_START_METHOD:
        out[(*n)++] = &((amqp_connection_start_t *)m)->server_properties;
        break;
    case AMQP_CONNECTION_START_OK_METHOD:
        out[(*n)++] = &((amqp_connection_start_ok_t *)m)->client_properties;
        break;
    case AMQP_EXCHANGE_DECLARE_METHOD:
        out[(*n)++] = &((amqp_exchange_declare_t *)m)->arguments;
        break;
    case AMQP_EXCHANGE_BIND_METHOD:
        out[(*n)++] = &((amqp_exchange_bind_t *)m)->arguments;
        break;
    case AMQP_EXCHANGE_UNBIND_METHOD:
        out[(*n)++] = &((amqp_exchange_unbind_t *)m)->arguments;
        break;
    case AMQP_QUEUE_DECLARE_METHOD:
        out[(*n)++] = &((amqp_queue_declare_t *)m)->arguments;
        break;
    case AMQP_QUEUE_BIND_METHOD:
        out[(*n)++] = &((amqp_queue_bind_t *)m)->arguments;
        break;
    case AMQP_QUEUE_UNBIND_METHOD:
        out[(*n)++] = &((amqp_queue_unbind_t *)m)->arguments;
        break;
    case AMQP_BASIC_CONSUME_METHOD:
        out[(*n)++] = &((amqp_basic_consume_t *)m)->arguments;
        break;
    default:
        break;
    }
}

static void check_method(const uint8_t *data, size_t size, amqp_pool_t *pool)
{
    if (size < 4)
        return;
    amqp_method_number_t id = (amqp_method_number_t)data[0] << 24 |
                              (amqp_method_number_t)data[1] << 16 |
                              (amqp_method_number_t)data[2] << 8 | data[3];
    const uint8_t *args = data + 4;
    size_t len = size - 4;
    if (wire_check_method(id, args, len, MAX_DEPTH))
        return;
    void *m = NULL;
    if (amqp_decode_method(id, pool, (amqp_bytes_t){len, (void *)args}, &m) != AMQP_STATUS_OK)
        return;
    const amqp_table_t *tables[2];
    int n;
    method_tables(id, m, tables, &n);
    for (int i = 0; i < n; i++) {
        int d = table_depth(tables[i]);
        CHECK(d <= MAX_DEPTH, "method 0x%08x: decoded table nests %d deep, checker allowed %d", id,
              d, MAX_DEPTH);
        render_table(tables[i]);
    }
}

static void check_properties(const uint8_t *props, size_t len, amqp_pool_t *pool)
{
    if (wire_check_basic_properties(props, len, MAX_DEPTH))
        return;
    amqp_basic_properties_t *p = NULL;
    if (amqp_decode_properties(AMQP_BASIC_CLASS, pool, (amqp_bytes_t){len, (void *)props},
                               (void **)&p) != AMQP_STATUS_OK)
        return;
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG) {
        int d = table_depth(&p->headers);
        CHECK(d <= MAX_DEPTH, "properties: decoded headers nest %d deep, checker allowed %d", d,
              MAX_DEPTH);
        render_table(&p->headers);
    }
    /* What a publish with these properties becomes. */
    struct record_src src = {"ex", 2, "rk", 2, p, props, len};
    rd_kafka_headers_t *h = record_headers(&src);
    rd_kafka_headers_destroy(h);
    struct buf scratch = {0};
    const void *key;
    size_t key_len;
    struct route_target target = {"t", KEY_MESSAGE_ID, NULL};
    record_key(&src, &target, &scratch, &key, &key_len);
    if ((p->_flags & AMQP_BASIC_HEADERS_FLAG) && p->headers.num_entries > 0) {
        /* Key from a header: the first one's name, as a C string. */
        char name[256];
        amqp_bytes_t k = p->headers.entries[0].key;
        snprintf(name, sizeof name, "%.*s", (int)k.len, (char *)k.bytes);
        target = (struct route_target){"t", KEY_HEADER, name};
        record_key(&src, &target, &scratch, &key, &key_len);
        if (key) {
            volatile uint8_t acc = 0;
            for (size_t i = 0; i < key_len; i++)
                acc ^= ((const uint8_t *)key)[i];
            (void)acc;
        }
    }
    buf_free(&scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    check_table(data, size, &pool);
    recycle_amqp_pool(&pool);
    check_method(data, size, &pool);
    recycle_amqp_pool(&pool);
    if (size >= 4)
        check_properties(data + 4, size - 4, &pool);
    empty_amqp_pool(&pool);
    return 0;
}
