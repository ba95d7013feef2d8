/* binding.c - RabbitMQ's binding rules for direct, fanout, topic and
 * headers exchanges (see binding.h).
 *
 * Followed from rabbitmq-server v4.3.5; the headers rules are unchanged
 * since v3.13.0 (the "Message Containers" change, 119f034406):
 *  - direct: rabbit_exchange_type_direct:route/3 and
 *    rabbit_db_binding:match_routing_key/3, exact binary equality.
 *  - fanout: rabbit_exchange_type_fanout:route/3 matches every binding.
 *  - topic: rabbit_db_topic_exchange, as router.c describes.
 *  - headers: rabbit_exchange_type_headers:route/3, match/2, match_x/2,
 *    match_all/3, match_any/3 and validate_binding/2; header values as
 *    mc_amqpl:routing_headers/2 gives them, decoded by
 *    rabbit_binary_parser:parse_table/1.
 *
 * Headers matching, as those functions do it:
 *  - The mode is the first "x-match" argument when it is a longstr "any",
 *    "all-with-x" or "any-with-x"; any other value, or none, means "all".
 *    validate_binding/2 refuses other values at bind time, but route/3
 *    does not rely on that, and neither does binding_match().
 *  - Each binding argument is tested on its own: "all" wants every one to
 *    match, "any" one. "x-match" is never tested, other "x-" arguments only
 *    in the -with-x modes. So "all" with nothing to test matches every
 *    message, and "any" none.
 *  - A void argument matches when the header is present, whatever its
 *    value; any other argument when the header is present and its value
 *    =:= the argument's.
 *  - The headers become a map, folded in wire order, so when a key repeats
 *    its LAST value is the one compared. (record_key() takes the first, as
 *    RabbitMQ's single-header lookups do.) Repeated arguments are each
 *    tested.
 *
 * =:= on decoded values. rabbit_misc:type_class/1 is not involved: it
 * serves the equivalence of arguments at declare time only.
 *  - A top-level value loses its type tag, so integers of every width and
 *    sign compare by value (byte 1 =:= long 1), but an integer never
 *    equals a float (1 =/= 1.0).
 *  - 'L' decodes to a signed 64-bit long, as 'l' does; rabbitmq-c makes it
 *    a uint64_t, read back here as int64_t.
 *  - A top-level HEADER timestamp is multiplied by 1000 (routing_value/2,
 *    seconds to AMQP 1.0 milliseconds); an argument's is not. So a
 *    timestamp argument 5 does not match a timestamp header 5, 5000 (as a
 *    timestamp or an integer) does, and 0 matches 0.
 *  - float and double are both Erlang floats: 1.5f =:= 1.5, 0.1f =/= 0.1.
 *    0.0 equals -0.0 here, as on Erlang/OTP 26; OTP 27 tells them apart.
 *  - longstr and binary ('S', 'x') are both binaries: equal bytes match.
 *  - bool is true or false, decimal the pair {scale, value}.
 *  - Tables and arrays stay lists of {Key, Type, Value} and {Type, Value}
 *    in wire order: inside them types and order count (long 1 =/=
 *    signedint 1), nothing is scaled, and an empty table =:= an empty
 *    array.
 *
 * Before 3.13 (Debian's 3.10.8, tests/compat's reference, among them)
 * headers were matched by a merge of both tables sorted by key, with ==:
 * there 1 == 1.0, timestamps were not scaled, and a repeated header key
 * was paired with the arguments of that key in order. */
#include "binding.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

/* AMQP short strings, binding keys among them, are at most this long. */
#define BINDING_KEY_MAX 255

/* Enough of a value for a reply text, which is a short string. */
#define TERM_TEXT_MAX 256

enum x_match { XM_ALL, XM_ANY, XM_ALL_WITH_X, XM_ANY_WITH_X };

static const struct {
    const char *name;
    enum x_match mode;
} x_match_names[] = {
    {"all", XM_ALL},
    {"any", XM_ANY},
    {"all-with-x", XM_ALL_WITH_X},
    {"any-with-x", XM_ANY_WITH_X},
};

/* The kinds of Erlang term a field decodes to; =:= holds only within one. */
enum term { TERM_INT, TERM_FLOAT, TERM_BINARY, TERM_BOOL, TERM_UNDEFINED, TERM_DECIMAL, TERM_LIST };

static bool mem_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static bool bytes_eq(amqp_bytes_t a, amqp_bytes_t b)
{
    return mem_eq(a.bytes, a.len, b.bytes, b.len);
}

static bool bytes_is(amqp_bytes_t b, const char *s)
{
    return mem_eq(b.bytes, b.len, s, strlen(s));
}

static int table_len(const amqp_table_t *t)
{
    return t ? t->num_entries : 0;
}

const amqp_field_value_t *table_lookup(const amqp_table_t *t, const char *key)
{
    for (int i = 0; i < table_len(t); i++)
        if (bytes_is(t->entries[i].key, key))
            return &t->entries[i].value;
    return NULL;
}

/* What maps:get/3 finds in the map routing_headers/2 folds from the
 * headers: the last entry with that key. */
static const amqp_field_value_t *header_value(const amqp_table_t *h, amqp_bytes_t key)
{
    for (int i = table_len(h) - 1; i >= 0; i--)
        if (bytes_eq(h->entries[i].key, key))
            return &h->entries[i].value;
    return NULL;
}

static enum x_match x_match_mode(const amqp_table_t *args)
{
    const amqp_field_value_t *v = table_lookup(args, "x-match");
    if (v && v->kind == AMQP_FIELD_KIND_UTF8)
        for (size_t i = 0; i < ARRAY_LEN(x_match_names); i++)
            if (bytes_is(v->value.bytes, x_match_names[i].name))
                return x_match_names[i].mode;
    return XM_ALL;
}

/* -1 for a kind rabbitmq-c does not decode (never equal to anything). */
static int term_of(uint8_t kind)
{
    switch (kind) {
    case AMQP_FIELD_KIND_I8:
    case AMQP_FIELD_KIND_U8:
    case AMQP_FIELD_KIND_I16:
    case AMQP_FIELD_KIND_U16:
    case AMQP_FIELD_KIND_I32:
    case AMQP_FIELD_KIND_U32:
    case AMQP_FIELD_KIND_I64:
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        return TERM_INT;
    case AMQP_FIELD_KIND_F32:
    case AMQP_FIELD_KIND_F64:
        return TERM_FLOAT;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        return TERM_BINARY;
    case AMQP_FIELD_KIND_BOOLEAN:
        return TERM_BOOL;
    case AMQP_FIELD_KIND_VOID:
        return TERM_UNDEFINED;
    case AMQP_FIELD_KIND_DECIMAL:
        return TERM_DECIMAL;
    case AMQP_FIELD_KIND_TABLE:
    case AMQP_FIELD_KIND_ARRAY:
        return TERM_LIST;
    }
    return -1;
}

/* The type tag rabbit_binary_parser gives a field: rabbitmq-c's kind,
 * except that 'L' is a long like 'l'. */
static uint8_t type_tag(uint8_t kind)
{
    return kind == AMQP_FIELD_KIND_U64 ? AMQP_FIELD_KIND_I64 : kind;
}

/* An integer as it reaches =:=: sign and magnitude, since a value may be
 * anywhere from -2^63 to 2^64 - 1. */
struct wide_int {
    bool neg;
    uint64_t mag;
};

static struct wide_int from_signed(int64_t v)
{
    return (struct wide_int){v < 0, v < 0 ? 0 - (uint64_t)v : (uint64_t)v};
}

static struct wide_int from_unsigned(uint64_t v)
{
    return (struct wide_int){false, v};
}

static struct wide_int int_value(const amqp_field_value_t *v)
{
    switch (v->kind) {
    case AMQP_FIELD_KIND_I8:
        return from_signed(v->value.i8);
    case AMQP_FIELD_KIND_U8:
        return from_unsigned(v->value.u8);
    case AMQP_FIELD_KIND_I16:
        return from_signed(v->value.i16);
    case AMQP_FIELD_KIND_U16:
        return from_unsigned(v->value.u16);
    case AMQP_FIELD_KIND_I32:
        return from_signed(v->value.i32);
    case AMQP_FIELD_KIND_U32:
        return from_unsigned(v->value.u32);
    case AMQP_FIELD_KIND_I64:
        return from_signed(v->value.i64);
    case AMQP_FIELD_KIND_U64:
        return from_signed((int64_t)v->value.u64);
    default: /* AMQP_FIELD_KIND_TIMESTAMP: 64 bits unsigned */
        return from_unsigned(v->value.u64);
    }
}

/* `scale`: b is a top-level header, whose timestamp counts in ms. */
static bool int_eq(const amqp_field_value_t *a, const amqp_field_value_t *b, bool scale)
{
    struct wide_int x = int_value(a), y = int_value(b);
    if (scale && b->kind == AMQP_FIELD_KIND_TIMESTAMP) {
        /* Past 2^64, where no argument reaches. */
        if (y.mag > UINT64_MAX / 1000)
            return false;
        y.mag *= 1000;
    }
    return x.neg == y.neg && x.mag == y.mag;
}

static double float_value(const amqp_field_value_t *v)
{
    return v->kind == AMQP_FIELD_KIND_F32 ? (double)v->value.f32 : v->value.f64;
}

static bool term_eq(const amqp_field_value_t *a, const amqp_field_value_t *b, bool scale);

/* [{Key, Type, Value}] =:= [{Key, Type, Value}] */
static bool table_eq(const amqp_table_t *a, const amqp_table_t *b)
{
    if (a->num_entries != b->num_entries)
        return false;
    for (int i = 0; i < a->num_entries; i++) {
        const amqp_table_entry_t *x = &a->entries[i], *y = &b->entries[i];
        if (!bytes_eq(x->key, y->key) || type_tag(x->value.kind) != type_tag(y->value.kind) ||
            !term_eq(&x->value, &y->value, false))
            return false;
    }
    return true;
}

/* [{Type, Value}] =:= [{Type, Value}] */
static bool array_eq(const amqp_array_t *a, const amqp_array_t *b)
{
    if (a->num_entries != b->num_entries)
        return false;
    for (int i = 0; i < a->num_entries; i++) {
        const amqp_field_value_t *x = &a->entries[i], *y = &b->entries[i];
        if (type_tag(x->kind) != type_tag(y->kind) || !term_eq(x, y, false))
            return false;
    }
    return true;
}

static int list_len(const amqp_field_value_t *v)
{
    return v->kind == AMQP_FIELD_KIND_TABLE ? v->value.table.num_entries
                                            : v->value.array.num_entries;
}

static bool list_eq(const amqp_field_value_t *a, const amqp_field_value_t *b)
{
    if (list_len(a) == 0 && list_len(b) == 0)
        return true; /* [] whether table or array */
    if (a->kind != b->kind)
        return false; /* 3-tuples against 2-tuples */
    if (a->kind == AMQP_FIELD_KIND_TABLE)
        return table_eq(&a->value.table, &b->value.table);
    return array_eq(&a->value.array, &b->value.array);
}

/* Erlang's a =:= b on the decoded values of two fields. */
static bool term_eq(const amqp_field_value_t *a, const amqp_field_value_t *b, bool scale)
{
    int t = term_of(a->kind);
    if (t < 0 || t != term_of(b->kind))
        return false;
    switch ((enum term)t) {
    case TERM_INT:
        return int_eq(a, b, scale);
    case TERM_FLOAT:
        return float_value(a) == float_value(b);
    case TERM_BINARY:
        return bytes_eq(a->value.bytes, b->value.bytes);
    case TERM_BOOL:
        return !a->value.boolean == !b->value.boolean;
    case TERM_UNDEFINED:
        return true;
    case TERM_DECIMAL:
        return a->value.decimal.decimals == b->value.decimal.decimals &&
               a->value.decimal.value == b->value.decimal.value;
    case TERM_LIST:
        return list_eq(a, b);
    }
    return false;
}

static bool headers_match(const amqp_table_t *args, const amqp_table_t *headers)
{
    enum x_match mode = x_match_mode(args);
    bool any = mode == XM_ANY || mode == XM_ANY_WITH_X;
    bool with_x = mode == XM_ALL_WITH_X || mode == XM_ANY_WITH_X;

    for (int i = 0; i < table_len(args); i++) {
        const amqp_table_entry_t *arg = &args->entries[i];
        bool x_key = arg->key.len >= 2 && memcmp(arg->key.bytes, "x-", 2) == 0;
        if (bytes_is(arg->key, "x-match") || (x_key && !with_x))
            continue; /* match/2 and match_x/2 return skip */
        const amqp_field_value_t *h = header_value(headers, arg->key);
        bool ok = h && (arg->value.kind == AMQP_FIELD_KIND_VOID || term_eq(&arg->value, h, true));
        if (any && ok)
            return true;
        if (!any && !ok)
            return false;
    }
    return !any;
}

static bool topic_match(const char *key, size_t key_len, const char *rk, size_t rk_len)
{
    /* router_pattern_match() wants a C string. */
    char pattern[BINDING_KEY_MAX + 1];
    if (key_len > BINDING_KEY_MAX || (key_len && memchr(key, '\0', key_len)))
        return false;
    if (key_len)
        memcpy(pattern, key, key_len);
    pattern[key_len] = '\0';
    return router_pattern_match(pattern, rk, rk_len);
}

bool binding_match(enum exchange_type type, const char *key, size_t key_len,
                   const amqp_table_t *args, const char *rk, size_t rk_len,
                   const amqp_table_t *headers)
{
    switch (type) {
    case EXCHANGE_DIRECT:
        return mem_eq(key, key_len, rk, rk_len);
    case EXCHANGE_FANOUT:
        return true;
    case EXCHANGE_TOPIC:
        return topic_match(key, key_len, rk, rk_len);
    case EXCHANGE_HEADERS:
        return headers_match(args, headers);
    }
    return false;
}

bool field_equal(const amqp_field_value_t *a, const amqp_field_value_t *b)
{
    return term_eq(a, b, false);
}

bool field_integer(const amqp_field_value_t *v, int64_t *out)
{
    switch (v->kind) {
    case AMQP_FIELD_KIND_I8:
        *out = v->value.i8;
        return true;
    case AMQP_FIELD_KIND_U8:
        *out = v->value.u8;
        return true;
    case AMQP_FIELD_KIND_I16:
        *out = v->value.i16;
        return true;
    case AMQP_FIELD_KIND_U16:
        *out = v->value.u16;
        return true;
    case AMQP_FIELD_KIND_I32:
        *out = v->value.i32;
        return true;
    case AMQP_FIELD_KIND_U32:
        *out = v->value.u32;
        return true;
    case AMQP_FIELD_KIND_I64:
        *out = v->value.i64;
        return true;
    default:
        return false;
    }
}

const char *field_type_name(uint8_t kind)
{
    switch (type_tag(kind)) {
    case AMQP_FIELD_KIND_BOOLEAN:
        return "bool";
    case AMQP_FIELD_KIND_I8:
        return "byte";
    case AMQP_FIELD_KIND_U8:
        return "unsignedbyte";
    case AMQP_FIELD_KIND_I16:
        return "short";
    case AMQP_FIELD_KIND_U16:
        return "unsignedshort";
    case AMQP_FIELD_KIND_I32:
        return "signedint";
    case AMQP_FIELD_KIND_U32:
        return "unsignedint";
    case AMQP_FIELD_KIND_I64:
        return "long";
    case AMQP_FIELD_KIND_F32:
        return "float";
    case AMQP_FIELD_KIND_F64:
        return "double";
    case AMQP_FIELD_KIND_DECIMAL:
        return "decimal";
    case AMQP_FIELD_KIND_UTF8:
        return "longstr";
    case AMQP_FIELD_KIND_BYTES:
        return "binary";
    case AMQP_FIELD_KIND_TIMESTAMP:
        return "timestamp";
    case AMQP_FIELD_KIND_TABLE:
        return "table";
    case AMQP_FIELD_KIND_ARRAY:
        return "array";
    case AMQP_FIELD_KIND_VOID:
        return "void";
    }
    return "unknown";
}

/* The escapes Erlang prints inside a string, or 0 for none. */
static char erlang_escape(unsigned char c)
{
    static const char from[] = "\"\\\n\r\t\v\b\f\033", to[] = "\"\\nrtvbfe";
    const char *p = c ? strchr(from, c) : NULL;
    return p ? to[p - from] : 0;
}

/* A binary as ~tp prints it: <<"text">> when every byte is printable
 * ASCII or has an escape, else <<1,2,3>>. (Erlang also prints printable
 * Latin-1 and UTF-8 as text; those come out as bytes here.) */
static void put_binary(struct buf *b, amqp_bytes_t s)
{
    const unsigned char *p = s.bytes;
    bool text = true;
    for (size_t i = 0; i < s.len && text; i++)
        text = (p[i] >= 0x20 && p[i] < 0x7f) || erlang_escape(p[i]);
    buf_puts(b, text && s.len ? "<<\"" : "<<");
    for (size_t i = 0; i < s.len && b->len < TERM_TEXT_MAX; i++) {
        char e = erlang_escape(p[i]);
        if (!text)
            buf_printf(b, i ? ",%u" : "%u", p[i]);
        else if (e)
            buf_printf(b, "\\%c", e);
        else
            buf_putc(b, (char)p[i]);
    }
    buf_puts(b, text && s.len ? "\">>" : ">>");
}

/* A float as ~tp prints it (io_lib_format:fwrite_g/1 and its
 * insert_decimal/3): the shortest digits that read back as d, in plain
 * notation unless an exponent is shorter or |d| >= 2^53: 1.5, 100.0,
 * 0.001, 1.0e20, 2.5e-7. */
static void put_float(struct buf *b, double d)
{
    if (d == 0 || !isfinite(d)) { /* Erlang has no inf or nan */
        buf_puts(b, d == 0 ? (signbit(d) ? "-0.0" : "0.0") : "undefined");
        return;
    }
    char sci[32];
    for (int prec = 0; prec <= 16; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec, fabs(d));
        if (strtod(sci, NULL) == fabs(d))
            break;
    }
    /* sci is "D.DDDe+XX": digits S, and d = S * 10^place. */
    char digits[24];
    int len = 0;
    char *e = strchr(sci, 'e');
    for (const char *p = sci; p < e; p++)
        if (*p != '.')
            digits[len++] = *p;
    while (len > 1 && digits[len - 1] == '0')
        len--;
    digits[len] = '\0';
    int exp = atoi(e + 1);
    int place = exp - len + 1;
    char exp_text[8];
    int exp_cost = snprintf(exp_text, sizeof exp_text, "%d", exp) + 2;

    if (d < 0)
        buf_putc(b, '-');
    if (place < 0 && exp >= 0) {
        buf_append(b, digits, (size_t)(len + place));
        buf_printf(b, ".%s", digits + len + place);
    } else if (place < 0 && 2 - place - len <= exp_cost) {
        buf_puts(b, "0.");
        for (int i = 0; i < -place - len; i++)
            buf_putc(b, '0');
        buf_puts(b, digits);
    } else if (place >= 0 && exp_cost + (len == 1) >= place + 2 && fabs(d) < 0x1p53) {
        buf_puts(b, digits);
        for (int i = 0; i < place; i++)
            buf_putc(b, '0');
        buf_puts(b, ".0");
    } else {
        buf_printf(b, "%c.%se%s", digits[0], len == 1 ? "0" : digits + 1, exp_text);
    }
}

/* A decoded value as io_lib's ~tp prints it, cut off near TERM_TEXT_MAX.
 * Erlang lays a term too long for one 80-column line over several; this
 * does not, so such a value reads differently. */
static void put_term(struct buf *b, const amqp_field_value_t *v)
{
    if (b->len >= TERM_TEXT_MAX)
        return;
    switch (term_of(v->kind)) {
    case TERM_INT: {
        struct wide_int n = int_value(v);
        buf_printf(b, "%s%llu", n.neg ? "-" : "", (unsigned long long)n.mag);
        return;
    }
    case TERM_FLOAT:
        put_float(b, float_value(v));
        return;
    case TERM_BINARY:
        put_binary(b, v->value.bytes);
        return;
    case TERM_BOOL:
        buf_puts(b, v->value.boolean ? "true" : "false");
        return;
    case TERM_UNDEFINED:
        buf_puts(b, "undefined");
        return;
    case TERM_DECIMAL:
        buf_printf(b, "{%u,%u}", v->value.decimal.decimals, v->value.decimal.value);
        return;
    case TERM_LIST:
        buf_putc(b, '[');
        for (int i = 0; i < list_len(v) && b->len < TERM_TEXT_MAX; i++) {
            const amqp_field_value_t *x;
            buf_puts(b, i ? ",{" : "{");
            if (v->kind == AMQP_FIELD_KIND_TABLE) {
                x = &v->value.table.entries[i].value;
                put_binary(b, v->value.table.entries[i].key);
                buf_putc(b, ',');
            } else {
                x = &v->value.array.entries[i];
            }
            buf_printf(b, "%s,", field_type_name(x->kind));
            put_term(b, x);
            buf_putc(b, '}');
        }
        buf_putc(b, ']');
        return;
    }
    buf_puts(b, "undefined");
}

bool binding_args_valid(enum exchange_type type, const amqp_table_t *args, char *err, size_t errlen)
{
    /* Only the headers exchange type has a validate_binding/2 that looks
     * at arguments (topic's, in RabbitMQ's main branch after 4.3, limits
     * '#' words in the key). */
    if (type != EXCHANGE_HEADERS)
        return true;
    const amqp_field_value_t *v = table_lookup(args, "x-match");
    if (!v)
        return true; /* "spec is vague on whether it can be omitted" */
    if (v->kind == AMQP_FIELD_KIND_UTF8)
        for (size_t i = 0; i < ARRAY_LEN(x_match_names); i++)
            if (bytes_is(v->value.bytes, x_match_names[i].name))
                return true;

    struct buf text = {0};
    buf_puts(&text, "PRECONDITION_FAILED - Invalid x-match field ");
    if (v->kind == AMQP_FIELD_KIND_UTF8) {
        buf_puts(&text, "value ");
        put_term(&text, v);
        buf_puts(&text, "; expected all, any, all-with-x, or any-with-x");
    } else {
        buf_printf(&text, "type %s (value ", field_type_name(v->kind));
        put_term(&text, v);
        buf_puts(&text, "); expected longstr");
    }
    if (errlen)
        snprintf(err, errlen, "%s", text.data);
    buf_free(&text);
    return false;
}
