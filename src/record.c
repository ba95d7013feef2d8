/* record.c - turns a publish into the parts of a Kafka record: headers
 * (record-format contract in record.h) and key, plus the text and JSON
 * forms of AMQP field values used by both.
 *
 * Choices a consumer can rely on:
 *  - Header order: amqp.exchange, amqp.routing_key, the basic properties
 *    that are set in wire order (content_type ... app_id, cluster_id), the
 *    application headers in wire order, amqp.properties last. Application
 *    headers keep their own names, so one called "amqp.exchange" appears
 *    twice; Kafka allows that, and the first of a name is always ours,
 *    except amqp.properties: ours is the last of that name.
 *  - Integers, timestamps (seconds since the epoch, as AMQP carries them)
 *    and decimals are exact decimal text. A decimal's value is read as the
 *    signed 32-bit integer the Java client and pika encode, so scale 2 and
 *    value -123 is "-1.23"; trailing zeros of the scale are kept ("12.00").
 *  - Floats are the shortest text that reads back to the same float (or
 *    double): plain notation for exponents -4..15, else "1e+20" style.
 *    Non-finite values are "NaN", "Infinity", "-Infinity" as text and null
 *    in JSON. Formatting assumes the "C" locale (hopper never calls
 *    setlocale).
 *  - JSON strings: valid UTF-8 passes through; '"', '\\' and control
 *    characters are escaped; every byte that is not part of a valid UTF-8
 *    sequence becomes \u00XX (that is, it is read as Latin-1), so the
 *    output is always valid JSON but such bytes are not recoverable
 *    exactly. Byte arrays ('x') are treated like strings. Tables become
 *    objects with keys in wire order (duplicates kept), arrays arrays,
 *    void null. */
#include "record.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Decoded tables are depth-checked before decoding (config
 * max_table_depth); this is only a backstop for the recursion here. Deeper
 * values are written as null. */
#define JSON_MAX_DEPTH 128

/* buf_append for borrowed views: an empty amqp_bytes_t may have a NULL
 * pointer, which memcpy must not see even for zero bytes. */
static void put_bytes(struct buf *out, const void *p, size_t n)
{
    if (n)
        buf_append(out, p, n);
}

/* Decimal text of v into tmp (at least 20 bytes), right-aligned; returns
 * where it starts. snprintf costs ~650 instructions per call here. */
static char *fmt_u64(char *end, uint64_t v)
{
    char *p = end;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

static void put_u64(struct buf *out, uint64_t v)
{
    char tmp[24];
    char *p = fmt_u64(tmp + sizeof tmp, v);
    buf_append(out, p, (size_t)(tmp + sizeof tmp - p));
}

static void put_i64(struct buf *out, int64_t v)
{
    char tmp[24];
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char *p = fmt_u64(tmp + sizeof tmp, u);
    if (v < 0)
        *--p = '-';
    buf_append(out, p, (size_t)(tmp + sizeof tmp - p));
}

/* Shortest round-trip text for a finite value. `single` checks the round
 * trip through float instead of double. */
static void put_real(struct buf *out, double d, bool single)
{
    char sci[64];
    int max_prec = single ? 9 : 17; /* FLT/DBL_DECIMAL_DIG always round-trip */
    int prec = 1;
    for (;; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec - 1, d);
        if (prec == max_prec || (single ? strtof(sci, NULL) == (float)d : strtod(sci, NULL) == d))
            break;
    }
    /* sci is "[-]D[.DDD]e[+-]XX" with prec significant digits. */
    char *e = strchr(sci, 'e');
    int exp10 = atoi(e + 1);
    if (exp10 < -4 || exp10 >= 16) {
        buf_puts(out, sci);
        return;
    }
    const char *m = sci;
    if (*m == '-') {
        buf_putc(out, '-');
        m++;
    }
    char digits[24];
    size_t nd = 0;
    for (; m < e; m++)
        if (*m != '.')
            digits[nd++] = *m;
    if (exp10 < 0) {
        buf_puts(out, "0.");
        for (int i = -1; i > exp10; i--)
            buf_putc(out, '0');
        buf_append(out, digits, nd);
    } else if ((size_t)exp10 + 1 >= nd) {
        buf_append(out, digits, nd);
        for (size_t i = nd; i < (size_t)exp10 + 1; i++)
            buf_putc(out, '0');
    } else {
        buf_append(out, digits, (size_t)exp10 + 1);
        buf_putc(out, '.');
        buf_append(out, digits + exp10 + 1, nd - (size_t)exp10 - 1);
    }
}

static void put_float_text(struct buf *out, double d, bool single)
{
    if (isnan(d))
        buf_puts(out, "NaN");
    else if (isinf(d))
        buf_puts(out, d > 0 ? "Infinity" : "-Infinity");
    else
        put_real(out, d, single);
}

static void put_decimal(struct buf *out, amqp_decimal_t dec)
{
    int64_t v = (int32_t)dec.value;
    char digits[16];
    int n = snprintf(digits, sizeof digits, "%lld", (long long)(v < 0 ? -v : v));
    size_t nd = (size_t)n, scale = dec.decimals;
    if (v < 0)
        buf_putc(out, '-');
    if (scale == 0) {
        buf_append(out, digits, nd);
    } else if (nd > scale) {
        buf_append(out, digits, nd - scale);
        buf_putc(out, '.');
        buf_append(out, digits + nd - scale, scale);
    } else {
        buf_reserve(out, scale + 2);
        buf_append(out, "0.", 2);
        for (size_t i = nd; i < scale; i++)
            buf_putc(out, '0');
        buf_append(out, digits, nd);
    }
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 if there is none. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* bounds for the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

static void put_json_string(struct buf *out, const void *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = n ? p : (const void *)"";
    buf_reserve(out, n + 2);
    buf_putc(out, '"');
    size_t run = 0; /* start of bytes that need no escaping */
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len = c >= 0x20 && c != '"' && c != '\\' ? utf8_seq_len(s + i, n - i) : 0;
        if (len) {
            i += len;
            continue;
        }
        put_bytes(out, s + run, i - run);
        char esc[6] = {'\\', 0};
        size_t esc_len = 2;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default: /* other control characters and bytes that are not UTF-8 */
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xF];
            esc_len = 6;
            break;
        }
        buf_append(out, esc, esc_len);
        run = ++i;
    }
    put_bytes(out, s + run, n - run);
    buf_putc(out, '"');
}

static void field_json(struct buf *out, const amqp_field_value_t *v, int depth);

static void table_json(struct buf *out, const amqp_table_t *t, int depth)
{
    buf_putc(out, '{');
    for (int i = 0; i < t->num_entries; i++) {
        if (i)
            buf_putc(out, ',');
        put_json_string(out, t->entries[i].key.bytes, t->entries[i].key.len);
        buf_putc(out, ':');
        field_json(out, &t->entries[i].value, depth + 1);
    }
    buf_putc(out, '}');
}

static void array_json(struct buf *out, const amqp_array_t *a, int depth)
{
    buf_putc(out, '[');
    for (int i = 0; i < a->num_entries; i++) {
        if (i)
            buf_putc(out, ',');
        field_json(out, &a->entries[i], depth + 1);
    }
    buf_putc(out, ']');
}

/* Numbers and booleans: the same text in both forms. Returns false for
 * kinds that are not scalars. */
static bool scalar_text(struct buf *out, const amqp_field_value_t *v)
{
    switch (v->kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
        buf_puts(out, v->value.boolean ? "true" : "false");
        return true;
    case AMQP_FIELD_KIND_I8:
        put_i64(out, v->value.i8);
        return true;
    case AMQP_FIELD_KIND_U8:
        put_u64(out, v->value.u8);
        return true;
    case AMQP_FIELD_KIND_I16:
        put_i64(out, v->value.i16);
        return true;
    case AMQP_FIELD_KIND_U16:
        put_u64(out, v->value.u16);
        return true;
    case AMQP_FIELD_KIND_I32:
        put_i64(out, v->value.i32);
        return true;
    case AMQP_FIELD_KIND_U32:
        put_u64(out, v->value.u32);
        return true;
    case AMQP_FIELD_KIND_I64:
        put_i64(out, v->value.i64);
        return true;
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        put_u64(out, v->value.u64);
        return true;
    case AMQP_FIELD_KIND_DECIMAL:
        put_decimal(out, v->value.decimal);
        return true;
    default:
        return false;
    }
}

static void field_json(struct buf *out, const amqp_field_value_t *v, int depth)
{
    if (depth > JSON_MAX_DEPTH) {
        buf_puts(out, "null");
        return;
    }
    if (scalar_text(out, v))
        return;
    switch (v->kind) {
    case AMQP_FIELD_KIND_F32:
        if (isfinite(v->value.f32))
            put_real(out, v->value.f32, true);
        else
            buf_puts(out, "null");
        break;
    case AMQP_FIELD_KIND_F64:
        if (isfinite(v->value.f64))
            put_real(out, v->value.f64, false);
        else
            buf_puts(out, "null");
        break;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        put_json_string(out, v->value.bytes.bytes, v->value.bytes.len);
        break;
    case AMQP_FIELD_KIND_TABLE:
        table_json(out, &v->value.table, depth);
        break;
    case AMQP_FIELD_KIND_ARRAY:
        array_json(out, &v->value.array, depth);
        break;
    default: /* void, and kinds the decoder never produces */
        buf_puts(out, "null");
        break;
    }
}

void record_field_json(struct buf *out, const amqp_field_value_t *v)
{
    field_json(out, v, 0);
}

void record_field_text(struct buf *out, const amqp_field_value_t *v)
{
    if (scalar_text(out, v))
        return;
    switch (v->kind) {
    case AMQP_FIELD_KIND_F32:
        put_float_text(out, v->value.f32, true);
        break;
    case AMQP_FIELD_KIND_F64:
        put_float_text(out, v->value.f64, false);
        break;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        put_bytes(out, v->value.bytes.bytes, v->value.bytes.len);
        break;
    case AMQP_FIELD_KIND_TABLE:
    case AMQP_FIELD_KIND_ARRAY:
        field_json(out, v, 0);
        break;
    default: /* void: empty text */
        break;
    }
}

/* The basic properties that become headers, in wire order (headers, the
 * third property, is handled separately). */
enum prop_kind { PROP_BYTES, PROP_OCTET, PROP_U64 };

static const struct {
    amqp_flags_t flag;
    const char *name;
    enum prop_kind kind;
    size_t offset;
} props_table[] = {
    {AMQP_BASIC_CONTENT_TYPE_FLAG, "amqp.content_type", PROP_BYTES,
     offsetof(amqp_basic_properties_t, content_type)},
    {AMQP_BASIC_CONTENT_ENCODING_FLAG, "amqp.content_encoding", PROP_BYTES,
     offsetof(amqp_basic_properties_t, content_encoding)},
    {AMQP_BASIC_DELIVERY_MODE_FLAG, "amqp.delivery_mode", PROP_OCTET,
     offsetof(amqp_basic_properties_t, delivery_mode)},
    {AMQP_BASIC_PRIORITY_FLAG, "amqp.priority", PROP_OCTET,
     offsetof(amqp_basic_properties_t, priority)},
    {AMQP_BASIC_CORRELATION_ID_FLAG, "amqp.correlation_id", PROP_BYTES,
     offsetof(amqp_basic_properties_t, correlation_id)},
    {AMQP_BASIC_REPLY_TO_FLAG, "amqp.reply_to", PROP_BYTES,
     offsetof(amqp_basic_properties_t, reply_to)},
    {AMQP_BASIC_EXPIRATION_FLAG, "amqp.expiration", PROP_BYTES,
     offsetof(amqp_basic_properties_t, expiration)},
    {AMQP_BASIC_MESSAGE_ID_FLAG, "amqp.message_id", PROP_BYTES,
     offsetof(amqp_basic_properties_t, message_id)},
    {AMQP_BASIC_TIMESTAMP_FLAG, "amqp.timestamp", PROP_U64,
     offsetof(amqp_basic_properties_t, timestamp)},
    {AMQP_BASIC_TYPE_FLAG, "amqp.type", PROP_BYTES, offsetof(amqp_basic_properties_t, type)},
    {AMQP_BASIC_USER_ID_FLAG, "amqp.user_id", PROP_BYTES,
     offsetof(amqp_basic_properties_t, user_id)},
    {AMQP_BASIC_APP_ID_FLAG, "amqp.app_id", PROP_BYTES, offsetof(amqp_basic_properties_t, app_id)},
    {AMQP_BASIC_CLUSTER_ID_FLAG, "amqp.cluster_id", PROP_BYTES,
     offsetof(amqp_basic_properties_t, cluster_id)},
};

/* A header whose value is present but possibly empty: never a null value,
 * which librdkafka would make of a NULL pointer. rd_kafka_header_add copies
 * name and value and fails only on read-only lists, never on a new one. */
static void header_add(rd_kafka_headers_t *h, const void *name, size_t name_len, const void *val,
                       size_t val_len)
{
    (void)rd_kafka_header_add(h, name, (ssize_t)name_len, val ? val : "", (ssize_t)val_len);
}

static bool has_headers(const amqp_basic_properties_t *p)
{
    return p && (p->_flags & AMQP_BASIC_HEADERS_FLAG) && p->headers.num_entries > 0;
}

rd_kafka_headers_t *record_headers(const struct record_src *src)
{
    const amqp_basic_properties_t *p = src->props;
    amqp_flags_t flags = p ? p->_flags : 0;
    size_t n_app = has_headers(p) ? (size_t)p->headers.num_entries : 0;
    size_t n = 3 + n_app;
    for (size_t i = 0; i < ARRAY_LEN(props_table); i++)
        n += (flags & props_table[i].flag) != 0;
    rd_kafka_headers_t *h = rd_kafka_headers_new(n);

    header_add(h, "amqp.exchange", strlen("amqp.exchange"), src->exchange, src->exchange_len);
    header_add(h, "amqp.routing_key", strlen("amqp.routing_key"), src->routing_key,
               src->routing_key_len);

    for (size_t i = 0; i < ARRAY_LEN(props_table); i++) {
        if (!(flags & props_table[i].flag))
            continue;
        const char *field = (const char *)p + props_table[i].offset;
        char tmp[24], *t;
        switch (props_table[i].kind) {
        case PROP_BYTES: {
            /* rd_kafka_header_add copies: no need for our own copy. */
            const amqp_bytes_t *b = (const amqp_bytes_t *)(const void *)field;
            header_add(h, props_table[i].name, strlen(props_table[i].name), b->bytes, b->len);
            continue;
        }
        case PROP_OCTET:
            t = fmt_u64(tmp + sizeof tmp, *(const uint8_t *)field);
            break;
        case PROP_U64:
        default:
            t = fmt_u64(tmp + sizeof tmp, *(const uint64_t *)(const void *)field);
            break;
        }
        header_add(h, props_table[i].name, strlen(props_table[i].name), t,
                   (size_t)(tmp + sizeof tmp - t));
    }

    if (n_app) {
        struct buf text = {0};
        for (size_t i = 0; i < n_app; i++) {
            const amqp_table_entry_t *e = &p->headers.entries[i];
            text.len = 0;
            record_field_text(&text, &e->value);
            header_add(h, e->key.bytes ? e->key.bytes : "", e->key.len, text.data, text.len);
        }
        buf_free(&text);
    }

    header_add(h, "amqp.properties", strlen("amqp.properties"), src->raw_props, src->raw_props_len);
    return h;
}

static const amqp_field_value_t *find_header(const amqp_basic_properties_t *p, const char *name)
{
    if (!has_headers(p) || !name)
        return NULL;
    size_t n = strlen(name);
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_bytes_t *k = &p->headers.entries[i].key;
        if (k->len == n && (n == 0 || memcmp(k->bytes, name, n) == 0))
            return &p->headers.entries[i].value; /* first one wins, as in RabbitMQ */
    }
    return NULL;
}

/* An empty key (a publish with routing key "", an empty message_id or
 * header) stays an empty, non-null key: compacted topics reject null keys,
 * and Java's default partitioner hashes an empty key but spreads null ones.
 * (librdkafka's default partitioner treats both as unkeyed.) */
void record_key(const struct record_src *src, const struct route_target *target,
                struct buf *scratch, const void **key, size_t *key_len)
{
    const amqp_basic_properties_t *p = src->props;
    *key = NULL;
    *key_len = 0;
    switch (target->key) {
    case KEY_ROUTING_KEY:
        *key = src->routing_key ? src->routing_key : "";
        *key_len = src->routing_key_len;
        break;
    case KEY_MESSAGE_ID:
        if (p && (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)) {
            *key = p->message_id.bytes ? p->message_id.bytes : "";
            *key_len = p->message_id.len;
        }
        break;
    case KEY_HEADER: {
        const amqp_field_value_t *v = find_header(p, target->key_header);
        if (!v)
            break;
        if (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES) {
            /* Its text form is the bytes themselves: borrow them. */
            *key = v->value.bytes.bytes ? v->value.bytes.bytes : "";
            *key_len = v->value.bytes.len;
            break;
        }
        scratch->len = 0;
        buf_reserve(scratch, 0); /* non-NULL data even for an empty text */
        record_field_text(scratch, v);
        *key = scratch->data;
        *key_len = scratch->len;
        break;
    }
    case KEY_NONE:
        break;
    }
}
