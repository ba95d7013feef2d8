/* test_binding.c - unit tests for the binding rules (RabbitMQ 3.13+).
 *
 * Tables are rabbitmq-c structs built in place, as the decoder would leave
 * them. The headers cases are one table, each row citing the rule it
 * checks (binding.c lists them); integer equality is also checked against
 * a model that works in 128-bit arithmetic, for every pair of integer
 * kinds over boundary values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "binding.h"

/* Initializers for rabbitmq-c's structs; clang-format would take each
 * brace-initializer macro for a block and spread it over several lines. */
// clang-format off
#define BYTES(s) {sizeof(s) - 1, (void *)(s)}
#define UTF8(s) {AMQP_FIELD_KIND_UTF8, {.bytes = BYTES(s)}}
#define BIN(s) {AMQP_FIELD_KIND_BYTES, {.bytes = BYTES(s)}}
#define BOOL(v) {AMQP_FIELD_KIND_BOOLEAN, {.boolean = (v)}}
#define I8(v) {AMQP_FIELD_KIND_I8, {.i8 = (v)}}
#define U8(v) {AMQP_FIELD_KIND_U8, {.u8 = (v)}}
#define I16(v) {AMQP_FIELD_KIND_I16, {.i16 = (v)}}
#define U16(v) {AMQP_FIELD_KIND_U16, {.u16 = (v)}}
#define I32(v) {AMQP_FIELD_KIND_I32, {.i32 = (v)}}
#define U32(v) {AMQP_FIELD_KIND_U32, {.u32 = (v)}}
#define I64(v) {AMQP_FIELD_KIND_I64, {.i64 = (v)}}
#define U64(v) {AMQP_FIELD_KIND_U64, {.u64 = (v)}}
#define F32(v) {AMQP_FIELD_KIND_F32, {.f32 = (v)}}
#define F64(v) {AMQP_FIELD_KIND_F64, {.f64 = (v)}}
#define TS(v) {AMQP_FIELD_KIND_TIMESTAMP, {.u64 = (v)}}
#define DEC(d, v) {AMQP_FIELD_KIND_DECIMAL, {.decimal = {(d), (v)}}}
#define VOID {AMQP_FIELD_KIND_VOID, {0}}
#define E(k, v) {BYTES(k), v}
#define XM(mode) E("x-match", UTF8(mode))
#define TABLE(...) \
    {(int)ARRAY_LEN(((amqp_table_entry_t[]){__VA_ARGS__})), (amqp_table_entry_t[]){__VA_ARGS__}}
#define EMPTY {0, NULL}
#define TBL(...) {AMQP_FIELD_KIND_TABLE, {.table = TABLE(__VA_ARGS__)}}
#define ARR(...) \
    {AMQP_FIELD_KIND_ARRAY, {.array = {(int)ARRAY_LEN(((amqp_field_value_t[]){__VA_ARGS__})), \
                                       (amqp_field_value_t[]){__VA_ARGS__}}}}
#define EMPTY_TBL {AMQP_FIELD_KIND_TABLE, {.table = EMPTY}}
#define EMPTY_ARR {AMQP_FIELD_KIND_ARRAY, {.array = EMPTY}}
// clang-format on

/* Headers exchange: binding arguments, message headers, routed or not. */
struct headers_case {
    const char *name;
    amqp_table_t args;
    amqp_table_t headers;
    bool match;
};

static const struct headers_case headers_cases[] = {
    /* Modes, and what there is to test. */
    {"no arguments: all of nothing", EMPTY, EMPTY, true},
    {"no arguments, some headers", EMPTY, TABLE(E("a", I8(1))), true},
    {"all of nothing: x- arguments skipped", TABLE(XM("all"), E("x-foo", UTF8("1"))),
     TABLE(E("x-foo", UTF8("2"))), true},
    {"any of nothing", TABLE(XM("any")), TABLE(E("a", I8(1))), false},
    {"any: x- arguments skipped", TABLE(XM("any"), E("x-foo", UTF8("1"))),
     TABLE(E("x-foo", UTF8("1"))), false},
    {"all: every one matches", TABLE(XM("all"), E("a", UTF8("1")), E("b", UTF8("2"))),
     TABLE(E("b", UTF8("2")), E("c", UTF8("3")), E("a", UTF8("1"))), true},
    {"all is the default", TABLE(E("a", UTF8("1")), E("b", UTF8("2"))),
     TABLE(E("a", UTF8("1")), E("b", UTF8("2"))), true},
    {"all: one missing", TABLE(XM("all"), E("a", UTF8("1")), E("b", UTF8("2"))),
     TABLE(E("a", UTF8("1"))), false},
    {"all: one differs", TABLE(XM("all"), E("a", UTF8("1")), E("b", UTF8("2"))),
     TABLE(E("a", UTF8("1")), E("b", UTF8("3"))), false},
    {"all: empty headers", TABLE(E("a", UTF8("1"))), EMPTY, false},
    {"any: one of two", TABLE(XM("any"), E("a", UTF8("1")), E("b", UTF8("2"))),
     TABLE(E("b", UTF8("2"))), true},
    {"any: none", TABLE(XM("any"), E("a", UTF8("1")), E("b", UTF8("2"))),
     TABLE(E("a", UTF8("2")), E("c", UTF8("1"))), false},
    {"any: empty headers", TABLE(XM("any"), E("a", UTF8("1"))), EMPTY, false},
    {"x-match need not come first", TABLE(E("a", UTF8("1")), XM("any"), E("b", UTF8("2"))),
     TABLE(E("b", UTF8("2"))), true},
    {"keys compare byte for byte", TABLE(E("A", UTF8("1"))), TABLE(E("a", UTF8("1"))), false},
    {"X- is not x-", TABLE(E("X-foo", UTF8("1"))), EMPTY, false},

    /* Void: presence only. */
    {"void: present", TABLE(E("a", VOID)), TABLE(E("a", UTF8("anything"))), true},
    {"void: present with a table", TABLE(E("a", VOID)), TABLE(E("a", TBL(E("b", I8(1))))), true},
    {"void: present as void", TABLE(E("a", VOID)), TABLE(E("a", VOID)), true},
    {"void: absent", TABLE(E("a", VOID)), TABLE(E("b", VOID)), false},
    {"void, and another differs", TABLE(E("a", VOID), E("b", I8(1))),
     TABLE(E("a", I8(0)), E("b", I8(2))), false},
    {"any: void absent, another matches", TABLE(XM("any"), E("a", VOID), E("b", I8(1))),
     TABLE(E("b", I64(1))), true},
    {"void header against a value", TABLE(E("a", UTF8(""))), TABLE(E("a", VOID)), false},

    /* Integers compare by value, whatever their width and sign. */
    {"byte 1 = long 1", TABLE(E("a", I8(1))), TABLE(E("a", I64(1))), true},
    {"unsignedbyte 255 = short 255", TABLE(E("a", U8(255))), TABLE(E("a", I16(255))), true},
    {"unsignedint max = long", TABLE(E("a", U32(UINT32_MAX))), TABLE(E("a", I64(UINT32_MAX))),
     true},
    {"signedint -5 = long -5", TABLE(E("a", I32(-5))), TABLE(E("a", I64(-5))), true},
    {"unsignedshort 1 = unsignedint 1", TABLE(E("a", U16(1))), TABLE(E("a", U32(1))), true},
    {"byte -1 != unsignedbyte 255", TABLE(E("a", I8(-1))), TABLE(E("a", U8(255))), false},
    {"'L' is signed: max = -1", TABLE(E("a", U64(UINT64_MAX))), TABLE(E("a", I64(-1))), true},
    {"'L' max != unsignedint max", TABLE(E("a", U64(UINT64_MAX))), TABLE(E("a", U32(UINT32_MAX))),
     false},

    /* Floats are floats: never equal to an integer. */
    {"signedint 1 != double 1.0", TABLE(E("a", I32(1))), TABLE(E("a", F64(1.0))), false},
    {"double 1.0 != long 1", TABLE(E("a", F64(1.0))), TABLE(E("a", I64(1))), false},
    {"float 1.5 = double 1.5", TABLE(E("a", F32(1.5f))), TABLE(E("a", F64(1.5))), true},
    {"float 0.1 != double 0.1", TABLE(E("a", F32(0.1f))), TABLE(E("a", F64(0.1))), false},
    {"double 0.1 = double 0.1", TABLE(E("a", F64(0.1))), TABLE(E("a", F64(0.1))), true},
    {"double 0.1 != 0.2", TABLE(E("a", F64(0.1))), TABLE(E("a", F64(0.2))), false},

    /* Strings, booleans, decimals. */
    {"longstr = binary, same bytes", TABLE(E("a", UTF8("x"))), TABLE(E("a", BIN("x"))), true},
    {"longstr case counts", TABLE(E("a", UTF8("x"))), TABLE(E("a", UTF8("X"))), false},
    {"longstr prefix", TABLE(E("a", UTF8("x"))), TABLE(E("a", UTF8("xy"))), false},
    {"empty longstr", TABLE(E("a", UTF8(""))), TABLE(E("a", BIN(""))), true},
    {"bool true = true", TABLE(E("a", BOOL(1))), TABLE(E("a", BOOL(1))), true},
    {"bool true != false", TABLE(E("a", BOOL(1))), TABLE(E("a", BOOL(0))), false},
    {"bool is not an integer", TABLE(E("a", BOOL(1))), TABLE(E("a", I8(1))), false},
    {"bool is not a string", TABLE(E("a", BOOL(0))), TABLE(E("a", UTF8("false"))), false},
    {"decimal = decimal", TABLE(E("a", DEC(2, 100))), TABLE(E("a", DEC(2, 100))), true},
    {"decimal: scale counts", TABLE(E("a", DEC(2, 100))), TABLE(E("a", DEC(1, 10))), false},
    {"decimal is not an integer", TABLE(E("a", DEC(0, 1))), TABLE(E("a", I8(1))), false},

    /* A header timestamp counts in milliseconds, an argument's does not. */
    {"long 5000 = header timestamp 5", TABLE(E("a", I64(5000))), TABLE(E("a", TS(5))), true},
    {"timestamp 5 != header timestamp 5", TABLE(E("a", TS(5))), TABLE(E("a", TS(5))), false},
    {"timestamp 5000 = header timestamp 5", TABLE(E("a", TS(5000))), TABLE(E("a", TS(5))), true},
    {"timestamp 0 = header timestamp 0", TABLE(E("a", TS(0))), TABLE(E("a", TS(0))), true},
    {"long 5 != header timestamp 5", TABLE(E("a", I64(5))), TABLE(E("a", TS(5))), false},
    {"timestamp 5 = header long 5", TABLE(E("a", TS(5))), TABLE(E("a", I64(5))), true},
    {"largest scaled header timestamp", TABLE(E("a", TS(UINT64_MAX / 1000 * 1000))),
     TABLE(E("a", TS(UINT64_MAX / 1000))), true},
    {"scaled header timestamp past 2^64", TABLE(E("a", TS(UINT64_MAX))),
     TABLE(E("a", TS(UINT64_MAX / 1000 + 1))), false},
    {"x- header timestamps scale too", TABLE(XM("all-with-x"), E("x-t", I32(7000))),
     TABLE(E("x-t", TS(7))), true},

    /* Tables and arrays: deep, typed, ordered, unscaled. */
    {"equal tables", TABLE(E("a", TBL(E("k", UTF8("v")), E("n", I32(1))))),
     TABLE(E("a", TBL(E("k", UTF8("v")), E("n", I32(1))))), true},
    {"table order counts", TABLE(E("a", TBL(E("k", UTF8("v")), E("n", I32(1))))),
     TABLE(E("a", TBL(E("n", I32(1)), E("k", UTF8("v"))))), false},
    {"table length counts", TABLE(E("a", TBL(E("k", UTF8("v"))))),
     TABLE(E("a", TBL(E("k", UTF8("v")), E("k", UTF8("v"))))), false},
    {"table keys count", TABLE(E("a", TBL(E("k", UTF8("v"))))),
     TABLE(E("a", TBL(E("K", UTF8("v"))))), false},
    {"nested types count: signedint 1 != long 1", TABLE(E("a", TBL(E("n", I32(1))))),
     TABLE(E("a", TBL(E("n", I64(1))))), false},
    {"nested longstr != binary", TABLE(E("a", TBL(E("s", UTF8("x"))))),
     TABLE(E("a", TBL(E("s", BIN("x"))))), false},
    {"nested 'L' = 'l', same bits", TABLE(E("a", TBL(E("n", I64(-1))))),
     TABLE(E("a", TBL(E("n", U64(UINT64_MAX))))), true},
    {"nested timestamps are not scaled", TABLE(E("a", TBL(E("t", TS(5))))),
     TABLE(E("a", TBL(E("t", TS(5))))), true},
    {"nested void = void", TABLE(E("a", TBL(E("v", VOID)))), TABLE(E("a", TBL(E("v", VOID)))),
     true},
    {"tables in tables", TABLE(E("a", TBL(E("t", TBL(E("u", F64(2.5))))))),
     TABLE(E("a", TBL(E("t", TBL(E("u", F64(2.5))))))), true},
    {"tables in tables differ", TABLE(E("a", TBL(E("t", TBL(E("u", F64(2.5))))))),
     TABLE(E("a", TBL(E("t", TBL(E("u", F64(3.5))))))), false},
    {"equal arrays", TABLE(E("a", ARR(UTF8("x"), I8(2), BOOL(1)))),
     TABLE(E("a", ARR(UTF8("x"), I8(2), BOOL(1)))), true},
    {"array element differs", TABLE(E("a", ARR(UTF8("x"), I8(2)))),
     TABLE(E("a", ARR(UTF8("x"), I8(3)))), false},
    {"array element type counts", TABLE(E("a", ARR(I8(2)))), TABLE(E("a", ARR(U8(2)))), false},
    {"array length counts", TABLE(E("a", ARR(UTF8("x")))), TABLE(E("a", ARR(UTF8("x"), UTF8("x")))),
     false},
    {"arrays of tables", TABLE(E("a", ARR(TBL(E("k", I16(-3)))))),
     TABLE(E("a", ARR(TBL(E("k", I16(-3)))))), true},
    {"empty table = empty array", TABLE(E("a", EMPTY_TBL)), TABLE(E("a", EMPTY_ARR)), true},
    {"empty table = empty table", TABLE(E("a", EMPTY_TBL)), TABLE(E("a", EMPTY_TBL)), true},
    {"but not nested", TABLE(E("a", ARR(EMPTY_TBL))), TABLE(E("a", ARR(EMPTY_ARR))), false},
    {"array != table", TABLE(E("a", ARR(UTF8("x")))), TABLE(E("a", TBL(E("x", UTF8("x"))))), false},
    {"empty array != array", TABLE(E("a", EMPTY_ARR)), TABLE(E("a", ARR(VOID))), false},

    /* The -with-x modes test x- arguments, but never x-match. */
    {"all-with-x: all match", TABLE(XM("all-with-x"), E("x-foo", UTF8("1")), E("a", UTF8("2"))),
     TABLE(E("x-foo", UTF8("1")), E("a", UTF8("2"))), true},
    {"all-with-x: x- missing", TABLE(XM("all-with-x"), E("x-foo", UTF8("1")), E("a", UTF8("2"))),
     TABLE(E("a", UTF8("2"))), false},
    {"all-with-x: x- differs", TABLE(XM("all-with-x"), E("x-foo", UTF8("1"))),
     TABLE(E("x-foo", UTF8("2"))), false},
    {"all-with-x: void x-", TABLE(XM("all-with-x"), E("x-foo", VOID)), TABLE(E("x-foo", I8(0))),
     true},
    {"all-with-x of nothing", TABLE(XM("all-with-x")), EMPTY, true},
    {"any-with-x: only x- matches", TABLE(XM("any-with-x"), E("x-foo", UTF8("1")), E("a", VOID)),
     TABLE(E("x-foo", UTF8("1"))), true},
    {"any-with-x: x-match is not tested", TABLE(XM("any-with-x")),
     TABLE(E("x-match", UTF8("any-with-x"))), false},
    {"all: x- differs, skipped", TABLE(E("x-foo", UTF8("1")), E("a", UTF8("2"))),
     TABLE(E("x-foo", UTF8("9")), E("a", UTF8("2"))), true},

    /* Other x-match values mean all (bind refuses them). */
    {"x-match \"ANY\" is all", TABLE(XM("ANY"), E("a", UTF8("1")), E("b", UTF8("2"))),
     TABLE(E("a", UTF8("1"))), false},
    {"x-match as binary is all",
     TABLE(E("x-match", BIN("any")), E("a", UTF8("1")), E("b", UTF8("2"))),
     TABLE(E("a", UTF8("1"))), false},

    /* Repeated keys: the header's last value; each argument on its own;
     * the first x-match. */
    {"repeated header: last value counts", TABLE(E("a", I8(2))),
     TABLE(E("a", I8(1)), E("a", I8(2))), true},
    {"repeated header: first value ignored", TABLE(E("a", I8(1))),
     TABLE(E("a", I8(1)), E("a", I8(2))), false},
    {"repeated argument, all", TABLE(E("a", I8(1)), E("a", I8(2))), TABLE(E("a", I8(1))), false},
    {"repeated argument, any", TABLE(XM("any"), E("a", I8(1)), E("a", I8(2))), TABLE(E("a", I8(2))),
     true},
    {"repeated x-match: first counts",
     TABLE(XM("any"), XM("all"), E("a", UTF8("1")), E("b", UTF8("2"))), TABLE(E("a", UTF8("1"))),
     true},
};

static bool headers_match(const amqp_table_t *args, const amqp_table_t *headers)
{
    return binding_match(EXCHANGE_HEADERS, "", 0, args, "rk", 2, headers);
}

static void test_headers_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(headers_cases); i++) {
        const struct headers_case *c = &headers_cases[i];
        bool got = headers_match(&c->args, &c->headers);
        if (got != c->match)
            fail_msg("%s: got %d want %d", c->name, got, c->match);
        /* No table at all is the same as an empty one. */
        if (c->headers.num_entries == 0 && headers_match(&c->args, NULL) != c->match)
            fail_msg("%s, NULL headers: got %d", c->name, !c->match);
        if (c->args.num_entries == 0 && headers_match(NULL, &c->headers) != c->match)
            fail_msg("%s, NULL arguments: got %d", c->name, !c->match);
    }
}

/* The headers exchange ignores the routing and binding keys. */
static void test_headers_ignore_keys(void **state)
{
    (void)state;
    amqp_table_entry_t arg = {amqp_cstring_bytes("a"), {AMQP_FIELD_KIND_UTF8, {.bytes = {0}}}};
    arg.value.value.bytes = amqp_cstring_bytes("1");
    amqp_table_t args = {1, &arg};
    assert_true(binding_match(EXCHANGE_HEADERS, "k", 1, &args, "other", 5, &args));
    assert_false(binding_match(EXCHANGE_HEADERS, "k", 1, &args, "k", 1, NULL));
    assert_true(binding_match(EXCHANGE_HEADERS, NULL, 0, NULL, NULL, 0, NULL));
}

/* Integer kinds, and the values a field of each kind can hold. */
static const uint8_t int_kinds[] = {
    AMQP_FIELD_KIND_I8,  AMQP_FIELD_KIND_U8,  AMQP_FIELD_KIND_I16,
    AMQP_FIELD_KIND_U16, AMQP_FIELD_KIND_I32, AMQP_FIELD_KIND_U32,
    AMQP_FIELD_KIND_I64, AMQP_FIELD_KIND_U64, AMQP_FIELD_KIND_TIMESTAMP,
};

/* Set *f to v as a field of `kind`, if it can hold v; 'L' holds what a
 * signed long does, since RabbitMQ reads it as one. */
static bool make_int(uint8_t kind, __int128 v, amqp_field_value_t *f)
{
    f->kind = kind;
    switch (kind) {
    case AMQP_FIELD_KIND_I8:
        f->value.i8 = (int8_t)v;
        return v >= INT8_MIN && v <= INT8_MAX;
    case AMQP_FIELD_KIND_U8:
        f->value.u8 = (uint8_t)v;
        return v >= 0 && v <= UINT8_MAX;
    case AMQP_FIELD_KIND_I16:
        f->value.i16 = (int16_t)v;
        return v >= INT16_MIN && v <= INT16_MAX;
    case AMQP_FIELD_KIND_U16:
        f->value.u16 = (uint16_t)v;
        return v >= 0 && v <= UINT16_MAX;
    case AMQP_FIELD_KIND_I32:
        f->value.i32 = (int32_t)v;
        return v >= INT32_MIN && v <= INT32_MAX;
    case AMQP_FIELD_KIND_U32:
        f->value.u32 = (uint32_t)v;
        return v >= 0 && v <= UINT32_MAX;
    case AMQP_FIELD_KIND_I64:
        f->value.i64 = (int64_t)v;
        return v >= INT64_MIN && v <= INT64_MAX;
    case AMQP_FIELD_KIND_U64:
        f->value.u64 = (uint64_t)(int64_t)v;
        return v >= INT64_MIN && v <= INT64_MAX;
    default:
        f->value.u64 = (uint64_t)v;
        return v >= 0 && v <= UINT64_MAX;
    }
}

static void test_integers_against_model(void **state)
{
    (void)state;
    const __int128 values[] = {
        0,
        1,
        -1,
        5,
        1000,
        5000,
        INT8_MAX,
        INT8_MAX + 1,
        UINT8_MAX,
        INT8_MIN,
        INT8_MIN - 1,
        INT16_MAX,
        UINT16_MAX,
        UINT16_MAX + 1,
        INT16_MIN,
        INT32_MAX,
        (__int128)INT32_MAX + 1,
        UINT32_MAX,
        (__int128)UINT32_MAX + 1,
        INT32_MIN,
        (__int128)UINT32_MAX * 1000,
        INT64_MAX,
        INT64_MIN,
        (__int128)INT64_MAX + 1,
        UINT64_MAX / 1000,
        UINT64_MAX / 1000 + 1,
        UINT64_MAX / 1000 * 1000,
        UINT64_MAX,
    };
    size_t pairs = 0;
    for (size_t ka = 0; ka < ARRAY_LEN(int_kinds); ka++)
        for (size_t va = 0; va < ARRAY_LEN(values); va++) {
            amqp_table_entry_t arg = {amqp_cstring_bytes("n"), {0}};
            if (!make_int(int_kinds[ka], values[va], &arg.value))
                continue;
            for (size_t kh = 0; kh < ARRAY_LEN(int_kinds); kh++)
                for (size_t vh = 0; vh < ARRAY_LEN(values); vh++) {
                    amqp_table_entry_t hdr = {amqp_cstring_bytes("n"), {0}};
                    if (!make_int(int_kinds[kh], values[vh], &hdr.value))
                        continue;
                    __int128 h = values[vh];
                    if (int_kinds[kh] == AMQP_FIELD_KIND_TIMESTAMP)
                        h *= 1000;
                    bool want = values[va] == h;
                    amqp_table_t args = {1, &arg}, headers = {1, &hdr};
                    if (headers_match(&args, &headers) != want)
                        fail_msg("kind %c value #%zu against header kind %c value #%zu: want %d",
                                 int_kinds[ka], va, int_kinds[kh], vh, want);
                    pairs++;
                }
        }
    assert_true(pairs > 10000);
}

static void test_direct(void **state)
{
    (void)state;
    assert_true(binding_match(EXCHANGE_DIRECT, "a.b", 3, NULL, "a.b", 3, NULL));
    assert_false(binding_match(EXCHANGE_DIRECT, "a.b", 3, NULL, "a.B", 3, NULL));
    assert_false(binding_match(EXCHANGE_DIRECT, "a.b", 3, NULL, "a.b.c", 5, NULL));
    assert_false(binding_match(EXCHANGE_DIRECT, "a.b", 3, NULL, "a.", 2, NULL));
    assert_false(binding_match(EXCHANGE_DIRECT, "#", 1, NULL, "a", 1, NULL)); /* no wildcards */
    assert_true(binding_match(EXCHANGE_DIRECT, "abcd", 3, NULL, "abcX", 3, NULL));
    assert_true(binding_match(EXCHANGE_DIRECT, "a\0b", 3, NULL, "a\0b", 3, NULL));
    assert_false(binding_match(EXCHANGE_DIRECT, "a\0b", 3, NULL, "a\0c", 3, NULL));
    assert_true(binding_match(EXCHANGE_DIRECT, "", 0, NULL, "", 0, NULL));
    assert_true(binding_match(EXCHANGE_DIRECT, NULL, 0, NULL, "", 0, NULL));
    assert_false(binding_match(EXCHANGE_DIRECT, "", 0, NULL, "a", 1, NULL));
}

static void test_fanout(void **state)
{
    (void)state;
    amqp_table_t args = TABLE(XM("any"), E("a", I8(1)));
    assert_true(binding_match(EXCHANGE_FANOUT, "a", 1, &args, "b", 1, NULL));
    assert_true(binding_match(EXCHANGE_FANOUT, NULL, 0, NULL, NULL, 0, NULL));
}

struct topic_case {
    const char *key;
    const char *rk;
    bool match;
};

/* router_pattern_match() has its own tests (test_router.c); these check
 * that binding_match() hands it the key and routing key intact. */
static const struct topic_case topic_cases[] = {
    {"#", "", true},
    {"#", "a.b", true},
    {"a.#", "a", true},
    {"a.#", "a.b.c", true},
    {"a.#", "b", false},
    {"*.b", "b", false},
    {"*.b", "a.b", true},
    {"*", "", false},
    {"a.*.c", "a.b.c", true},
    {"a.*.c", "a.c", false},
    {"a.*.c", "a.b.b.c", false},
    {"a.b", "a.b", true},
    {"a.b", "a.B", false},
    {"", "", true},
    {"", "a", false},
};

static void test_topic(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(topic_cases); i++) {
        const struct topic_case *c = &topic_cases[i];
        bool got =
            binding_match(EXCHANGE_TOPIC, c->key, strlen(c->key), NULL, c->rk, strlen(c->rk), NULL);
        if (got != c->match)
            fail_msg("key \"%s\" routing key \"%s\": got %d want %d", c->key, c->rk, got, c->match);
    }
}

/* The key is length-delimited; at most 255 bytes, and no NUL, match. */
static void test_topic_key_bounds(void **state)
{
    (void)state;
    assert_true(binding_match(EXCHANGE_TOPIC, "a.#junk", 3, NULL, "a", 1, NULL));
    assert_false(binding_match(EXCHANGE_TOPIC, "a.bc", 3, NULL, "a.bc", 4, NULL));
    assert_true(binding_match(EXCHANGE_TOPIC, "a.*", 3, NULL, "a.bXX", 3, NULL));
    assert_true(binding_match(EXCHANGE_TOPIC, NULL, 0, NULL, NULL, 0, NULL));

    char key[257];
    memset(key, 'k', sizeof key);
    assert_true(binding_match(EXCHANGE_TOPIC, key, 255, NULL, key, 255, NULL));
    assert_false(binding_match(EXCHANGE_TOPIC, key, 256, NULL, key, 256, NULL));
    key[0] = '#';
    assert_true(binding_match(EXCHANGE_TOPIC, key, 1, NULL, key, 256, NULL));
    assert_false(binding_match(EXCHANGE_TOPIC, "a\0b", 3, NULL, "a\0b", 3, NULL));
}

struct valid_case {
    amqp_table_t args;
    const char *err; /* NULL: valid */
};

#define XM_EXPECTED "; expected all, any, all-with-x, or any-with-x"

static const struct valid_case valid_cases[] = {
    {EMPTY, NULL},
    {TABLE(E("a", UTF8("b"))), NULL},
    {TABLE(XM("all")), NULL},
    {TABLE(XM("any")), NULL},
    {TABLE(XM("all-with-x")), NULL},
    {TABLE(E("a", I8(1)), XM("any-with-x")), NULL},
    {TABLE(XM("all"), XM("foo")), NULL}, /* the first counts */
    {TABLE(XM("foo"), XM("all")),
     "PRECONDITION_FAILED - Invalid x-match field value <<\"foo\">>" XM_EXPECTED},
    {TABLE(XM("ALL")), "PRECONDITION_FAILED - Invalid x-match field value <<\"ALL\">>" XM_EXPECTED},
    {TABLE(XM("")), "PRECONDITION_FAILED - Invalid x-match field value <<>>" XM_EXPECTED},
    {TABLE(XM("a\"b\\c\n")),
     "PRECONDITION_FAILED - Invalid x-match field value <<\"a\\\"b\\\\c\\n\">>" XM_EXPECTED},
    {TABLE(XM("\001\377")),
     "PRECONDITION_FAILED - Invalid x-match field value <<1,255>>" XM_EXPECTED},
    {TABLE(E("x-match", BIN("any"))),
     "PRECONDITION_FAILED - Invalid x-match field type binary (value <<\"any\">>); "
     "expected longstr"},
    {TABLE(E("x-match", I32(-5))),
     "PRECONDITION_FAILED - Invalid x-match field type signedint (value -5); expected longstr"},
    {TABLE(E("x-match", U64(UINT64_MAX))),
     "PRECONDITION_FAILED - Invalid x-match field type long (value -1); expected longstr"},
    {TABLE(E("x-match", TS(5))),
     "PRECONDITION_FAILED - Invalid x-match field type timestamp (value 5); expected longstr"},
    {TABLE(E("x-match", BOOL(1))),
     "PRECONDITION_FAILED - Invalid x-match field type bool (value true); expected longstr"},
    {TABLE(E("x-match", VOID)),
     "PRECONDITION_FAILED - Invalid x-match field type void (value undefined); expected longstr"},
    {TABLE(E("x-match", DEC(2, 100))),
     "PRECONDITION_FAILED - Invalid x-match field type decimal (value {2,100}); expected "
     "longstr"},
    {TABLE(E("x-match", F64(1.5))),
     "PRECONDITION_FAILED - Invalid x-match field type double (value 1.5); expected longstr"},
    {TABLE(E("x-match", F64(100))),
     "PRECONDITION_FAILED - Invalid x-match field type double (value 100.0); expected longstr"},
    {TABLE(E("x-match", F32(0.1f))),
     "PRECONDITION_FAILED - Invalid x-match field type float (value 0.10000000149011612); "
     "expected longstr"},
    {TABLE(E("x-match", F64(1e20))),
     "PRECONDITION_FAILED - Invalid x-match field type double (value 1.0e20); expected longstr"},
    {TABLE(E("x-match", F64(-2.5e-7))),
     "PRECONDITION_FAILED - Invalid x-match field type double (value -2.5e-7); expected "
     "longstr"},
    {TABLE(E("x-match", F64(0.001))),
     "PRECONDITION_FAILED - Invalid x-match field type double (value 0.001); expected longstr"},
    {TABLE(E("x-match", F64(0.0001))),
     "PRECONDITION_FAILED - Invalid x-match field type double (value 1.0e-4); expected longstr"},
    {TABLE(E("x-match", F64(123456789.0))),
     "PRECONDITION_FAILED - Invalid x-match field type double (value 123456789.0); expected "
     "longstr"},
    {TABLE(E("x-match", F64(0x1p53))),
     "PRECONDITION_FAILED - Invalid x-match field type double (value 9.007199254740992e15); "
     "expected longstr"},
    {TABLE(E("x-match", F64(-0.0))),
     "PRECONDITION_FAILED - Invalid x-match field type double (value -0.0); expected longstr"},
    {TABLE(E("x-match", TBL(E("a", I64(1))))),
     "PRECONDITION_FAILED - Invalid x-match field type table (value [{<<\"a\">>,long,1}]); "
     "expected longstr"},
    {TABLE(E("x-match", ARR(UTF8("x"), I32(-2)))),
     "PRECONDITION_FAILED - Invalid x-match field type array (value "
     "[{longstr,<<\"x\">>},{signedint,-2}]); expected longstr"},
    {TABLE(E("x-match", EMPTY_ARR)),
     "PRECONDITION_FAILED - Invalid x-match field type array (value []); expected longstr"},
};

static void test_args_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(valid_cases); i++) {
        const struct valid_case *c = &valid_cases[i];
        char err[256] = "untouched";
        bool ok = binding_args_valid(EXCHANGE_HEADERS, &c->args, err, sizeof err);
        if (ok != !c->err)
            fail_msg("case %zu: got %d, err \"%s\"", i, ok, err);
        if (c->err)
            assert_string_equal(err, c->err);
    }
    assert_true(binding_args_valid(EXCHANGE_HEADERS, NULL, NULL, 0));
}

/* Only headers exchanges look at x-match. */
static void test_args_valid_other_types(void **state)
{
    (void)state;
    amqp_table_t args = TABLE(XM("foo"));
    char err[8] = "";
    assert_true(binding_args_valid(EXCHANGE_DIRECT, &args, err, sizeof err));
    assert_true(binding_args_valid(EXCHANGE_FANOUT, &args, err, sizeof err));
    assert_true(binding_args_valid(EXCHANGE_TOPIC, &args, err, sizeof err));
    assert_string_equal(err, "");
}

/* The reply text is cut to the caller's buffer, or not written at all. */
static void test_args_valid_truncates(void **state)
{
    (void)state;
    amqp_table_t args = TABLE(XM("foo"));
    char err[16];
    memset(err, 'x', sizeof err);
    assert_false(binding_args_valid(EXCHANGE_HEADERS, &args, err, 8));
    assert_string_equal(err, "PRECOND");
    assert_int_equal(err[8], 'x');
    assert_false(binding_args_valid(EXCHANGE_HEADERS, &args, NULL, 0));

    /* A long value is cut short, not copied whole. */
    static char big[4096];
    memset(big, 'v', sizeof big);
    amqp_table_entry_t e = {amqp_cstring_bytes("x-match"), {AMQP_FIELD_KIND_UTF8, {.bytes = {0}}}};
    e.value.value.bytes = (amqp_bytes_t){sizeof big, big};
    amqp_table_t long_args = {1, &e};
    char out[300];
    assert_false(binding_args_valid(EXCHANGE_HEADERS, &long_args, out, sizeof out));
    assert_int_equal(strlen(out), sizeof out - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_table),
        cmocka_unit_test(test_headers_ignore_keys),
        cmocka_unit_test(test_integers_against_model),
        cmocka_unit_test(test_direct),
        cmocka_unit_test(test_fanout),
        cmocka_unit_test(test_topic),
        cmocka_unit_test(test_topic_key_bounds),
        cmocka_unit_test(test_args_valid),
        cmocka_unit_test(test_args_valid_other_types),
        cmocka_unit_test(test_args_valid_truncates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
