/* test_avrojson.c - unit tests for JSON bodies encoded against an Avro
 * schema (src/avrojson.c): the bytes of every type (some checked against
 * fastavro, an independent implementation), unions both ways, defaults,
 * logical types, recursive schemas, the exact reason given when a body
 * does not fit, schemas that must not compile, hostile bodies, and
 * avrojson_check_binary on round trips and on hostile binary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "avrojson.h"

static char why[512];
static struct buf out;

static void check_line(const char *s, size_t len)
{
    assert_non_null(memchr(s, '\0', len));
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
}

static struct avrojson *compile_ok(const char *schema)
{
    char err[256] = "";
    struct avrojson *s = avrojson_compile(schema, strlen(schema), err, sizeof err);
    if (!s)
        fail_msg("does not compile: %s: %s", schema, err);
    return s;
}

/* The compile error for schema (which must not compile). */
static const char *compile_err(const char *schema)
{
    static char err[256];
    memset(err, 0x55, sizeof err);
    struct avrojson *s = avrojson_compile(schema, strlen(schema), err, sizeof err);
    if (s) {
        avrojson_free(s);
        fail_msg("compiles: %s", schema);
    }
    check_line(err, sizeof err);
    return err;
}

/* Encode body[0..len) into a fresh out; on failure out stays as it was
 * and why must be one printable line. */
static bool enc_n(const struct avrojson *s, const char *body, size_t len)
{
    out.len = 0;
    buf_puts(&out, "pre");
    memset(why, 0x55, sizeof why);
    bool ok = avrojson_encode(s, body, len, &out, why, sizeof why);
    check_line(why, sizeof why);
    if (!ok) {
        assert_int_equal(out.len, 3);
        assert_memory_equal(out.data, "pre", 3);
    } else {
        assert_string_equal(why, "");
        /* every encoding is one datum of the schema */
        char why2[256];
        if (!avrojson_check_binary(s, out.data + 3, out.len - 3, why2, sizeof why2))
            fail_msg("encode gave what check_binary refuses: %s (body %s)", why2, body);
    }
    return ok;
}

static bool enc(const struct avrojson *s, const char *body)
{
    return enc_n(s, body, strlen(body));
}

/* The encoding's bytes, as lowercase hex. */
static const char *hex(void)
{
    static char h[4096];
    size_t n = out.len - 3;
    assert_true(2 * n < sizeof h);
    for (size_t i = 0; i < n; i++)
        snprintf(h + 2 * i, 3, "%02x", (unsigned char)out.data[3 + i]);
    h[2 * n] = '\0';
    return h;
}

static void enc_hex(const struct avrojson *s, const char *body, const char *want)
{
    if (!enc(s, body))
        fail_msg("%s: %s", body, why);
    assert_string_equal(hex(), want);
}

static void enc_fails(const struct avrojson *s, const char *body, const char *want)
{
    if (enc(s, body))
        fail_msg("encodes: %s", body);
    assert_string_equal(why, want);
}

static void enc_fails_prefix(const struct avrojson *s, const char *body, const char *prefix)
{
    if (enc(s, body))
        fail_msg("encodes: %s", body);
    if (strncmp(why, prefix, strlen(prefix)) != 0)
        fail_msg("\"%s\" does not start with \"%s\"", why, prefix);
}

static void one_type(const char *schema, const char *body, const char *want)
{
    struct avrojson *s = compile_ok(schema);
    enc_hex(s, body, want);
    avrojson_free(s);
}

static void one_type_fails(const char *schema, const char *body, const char *want)
{
    struct avrojson *s = compile_ok(schema);
    enc_fails(s, body, want);
    avrojson_free(s);
}

/* The bytes of hex text h, into a static buffer; *n their count. */
static const void *unhex(const char *h, size_t *n)
{
    static unsigned char b[1024];
    *n = strlen(h) / 2;
    for (size_t i = 0; i < *n; i++) {
        unsigned x;
        sscanf(h + 2 * i, "%2x", &x);
        b[i] = (unsigned char)x;
    }
    return b;
}

static bool bin(const struct avrojson *s, const char *h)
{
    size_t n;
    const void *b = unhex(h, &n);
    memset(why, 0x55, sizeof why);
    bool ok = avrojson_check_binary(s, b, n, why, sizeof why);
    check_line(why, sizeof why);
    if (ok)
        assert_string_equal(why, "");
    return ok;
}

static void bin_fails(const struct avrojson *s, const char *h, const char *want)
{
    if (bin(s, h))
        fail_msg("check_binary accepts %s", h);
    assert_string_equal(why, want);
}

/* Build n copies of open, then middle, then n copies of close. */
static char *nest(size_t n, const char *open, const char *middle, const char *close)
{
    size_t lo = strlen(open), lm = strlen(middle), lc = strlen(close);
    char *b = malloc(n * (lo + lc) + lm + 1);
    assert_non_null(b);
    char *p = b;
    for (size_t i = 0; i < n; i++, p += lo)
        memcpy(p, open, lo);
    memcpy(p, middle, lm);
    p += lm;
    for (size_t i = 0; i < n; i++, p += lc)
        memcpy(p, close, lc);
    *p = '\0';
    return b;
}

/* ---- primitives: the spec's examples and the edges ---- */

static void test_primitives(void **state)
{
    one_type("\"null\"", "null", "");
    one_type("\"boolean\"", "true", "01");
    one_type("\"boolean\"", "false", "00");
    /* the spec's examples: zigzag varints */
    one_type("\"long\"", "0", "00");
    one_type("\"long\"", "-1", "01");
    one_type("\"long\"", "1", "02");
    one_type("\"long\"", "-64", "7f");
    one_type("\"long\"", "64", "8001");
    one_type("\"long\"", "9223372036854775807", "feffffffffffffffff01");
    one_type("\"long\"", "-9223372036854775808", "ffffffffffffffffff01");
    one_type("\"int\"", "2147483647", "feffffff0f");
    one_type("\"int\"", "-2147483648", "ffffffff0f");
    one_type("\"string\"", "\"foo\"", "06666f6f");
    one_type("\"string\"", "\"\"", "00");
    one_type("\"string\"", "\"\\u00e9\"", "04c3a9");
    one_type("\"bytes\"", "\"\\u0001\\u00ff\"", "0401ff");
    one_type("\"float\"", "1.5", "0000c03f");
    one_type("\"float\"", "2", "00000040");
    one_type("\"double\"", "-0.25", "000000000000d0bf");
    one_type("\"double\"", "1", "000000000000f03f");
    /* a primitive as an object, and with unknown attributes */
    one_type("{\"type\": \"int\", \"doc\": \"x\"}", "3", "06");
}

static void test_primitive_errors(void **state)
{
    one_type_fails("\"int\"", "2147483648", "/: 2147483648 is out of range for int");
    one_type_fails("\"int\"", "-2147483649", "/: -2147483649 is out of range for int");
    one_type_fails("\"int\"", "1.0", "/: expected int, got number 1");
    one_type_fails("\"int\"", "\"x\"", "/: expected int, got string \"x\"");
    one_type_fails("\"long\"", "true", "/: expected long, got true");
    one_type_fails("\"null\"", "0", "/: expected null, got integer 0");
    one_type_fails("\"boolean\"", "null", "/: expected boolean, got null");
    one_type_fails("\"string\"", "[]", "/: expected string, got array");
    one_type_fails("\"double\"", "{}", "/: expected double, got object");
    one_type_fails("\"float\"", "1e39",
                   "/: number 9.9999999999999994e+38 is out of range for float");
    one_type_fails("\"bytes\"", "\"a\\u0100\"",
                   "/: a bytes string holds code points up to U+00FF only; character 1 is above");
    /* beyond int64: jansson refuses it rather than making it a double */
    struct avrojson *s = compile_ok("\"long\"");
    enc_fails_prefix(s, "9223372036854775808", "body is not JSON: too big integer");
    enc_fails_prefix(s, "-9223372036854775809", "body is not JSON: too big negative integer");
    avrojson_free(s);
    s = compile_ok("\"double\"");
    enc_fails_prefix(s, "1e400", "body is not JSON: real number overflow");
    avrojson_free(s);
}

/* ---- cross-checked with fastavro ---- */

/* Expected bytes produced by fastavro 1.13.1's schemaless_writer (Python
 * 3.11) from the same schemas and the equivalent Python values. */
static void test_fastavro_golden(void **state)
{
    struct avrojson *s =
        compile_ok("{\"type\":\"record\",\"name\":\"All\",\"namespace\":\"com.acme\",\"fields\":["
                   "{\"name\":\"n\",\"type\":\"null\"},{\"name\":\"b\",\"type\":\"boolean\"},"
                   "{\"name\":\"i\",\"type\":\"int\"},{\"name\":\"l\",\"type\":\"long\"},"
                   "{\"name\":\"f\",\"type\":\"float\"},{\"name\":\"d\",\"type\":\"double\"},"
                   "{\"name\":\"s\",\"type\":\"string\"},{\"name\":\"y\",\"type\":\"bytes\"}]}");
    enc_hex(s,
            "{\"n\":null,\"b\":true,\"i\":-3,\"l\":1234567890123,\"f\":1.5,\"d\":-0.25,"
            "\"s\":\"h\\u00e9llo\",\"y\":\"\\u0000\\u00ff\"}",
            "01059693d89fee470000c03f000000000000d0bf0c68c3a96c6c6f0400ff");
    avrojson_free(s);

    s = compile_ok("{\"type\":\"record\",\"name\":\"Node\",\"fields\":[{\"name\":\"v\",\"type\":"
                   "\"int\"},{\"name\":\"next\",\"type\":[\"null\",\"Node\"],\"default\":null}]}");
    enc_hex(s, "{\"v\":1,\"next\":{\"v\":2,\"next\":{\"v\":3,\"next\":null}}}", "020204020600");
    /* the same with the last "next" left to its default */
    enc_hex(s, "{\"v\":1,\"next\":{\"v\":2,\"next\":{\"v\":3}}}", "020204020600");
    avrojson_free(s);

    s = compile_ok("{\"type\":\"record\",\"name\":\"Mix\",\"fields\":["
                   "{\"name\":\"u\",\"type\":[\"null\",\"string\",\"long\"]},"
                   "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"int\"}},"
                   "{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
                   "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"Color\","
                   "\"symbols\":[\"RED\",\"GREEN\",\"BLUE\"]}},"
                   "{\"name\":\"x\",\"type\":{\"type\":\"fixed\",\"name\":\"Two\",\"size\":2}}]}");
    const char *mix = "04800102026b01000406666f6f0662617200040102";
    enc_hex(s,
            "{\"u\":64,\"m\":{\"k\":-1},\"a\":[\"foo\",\"bar\"],\"e\":\"BLUE\",\"x\":"
            "\"\\u0001\\u0002\"}",
            mix);
    enc_hex(s,
            "{\"u\":{\"long\":64},\"m\":{\"k\":-1},\"a\":[\"foo\",\"bar\"],\"e\":\"BLUE\","
            "\"x\":\"\\u0001\\u0002\"}",
            mix);
    avrojson_free(s);

    /* date 2024-01-02 = 19724 days; 2024-01-02T03:04:05.678Z; decimal
     * -12.34 at scale 2 is the unscaled -1234, bytes fb 2e */
    s = compile_ok(
        "{\"type\":\"record\",\"name\":\"Log\",\"fields\":["
        "{\"name\":\"day\",\"type\":{\"type\":\"int\",\"logicalType\":\"date\"}},"
        "{\"name\":\"at\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
        "{\"name\":\"id\",\"type\":{\"type\":\"string\",\"logicalType\":\"uuid\"}},"
        "{\"name\":\"amt\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\","
        "\"precision\":9,\"scale\":2}}]}");
    enc_hex(s,
            "{\"day\":19724,\"at\":1704164645678,\"id\":\"123e4567-e89b-12d3-a456-426614174000\","
            "\"amt\":\"\\u00fb.\"}",
            "98b402dcec868299634831323365343536372d653839622d313264332d6134"
            "35362d34323636313431373430303004fb2e");
    avrojson_free(s);
}

/* ---- records, arrays, maps, enums, fixed ---- */

static const char user_schema[] =
    "{\"type\": \"record\", \"name\": \"User\", \"namespace\": \"com.acme\", \"fields\": ["
    " {\"name\": \"id\", \"type\": \"long\"},"
    " {\"name\": \"name\", \"type\": \"string\", \"default\": \"anon\"},"
    " {\"name\": \"address\", \"type\": {\"type\": \"record\", \"name\": \"Address\","
    "   \"fields\": [{\"name\": \"city\", \"type\": \"string\"},"
    "                {\"name\": \"zip\", \"type\": \"int\"}]}},"
    " {\"name\": \"tags\", \"type\": {\"type\": \"array\", \"items\": \"string\"}, \"default\": "
    "[]},"
    " {\"name\": \"scores\", \"type\": {\"type\": \"map\", \"values\": \"double\"}, \"default\": "
    "{}},"
    " {\"name\": \"old\", \"type\": [\"null\", \"Address\"], \"default\": null}]}";

static void test_records(void **state)
{
    struct avrojson *s = compile_ok(user_schema);
    enc_hex(s,
            "{\"id\": 1, \"name\": \"a\", \"address\": {\"city\": \"b\", \"zip\": 2},"
            " \"tags\": [\"x\"], \"scores\": {\"m\": 1}, \"old\": null}",
            "02"
            "0261"
            "0262"
            "04"
            "02027800"
            "02026d000000000000f03f00"
            "00");
    /* defaults fill name, tags, scores and old */
    enc_hex(s, "{\"id\": 1, \"address\": {\"city\": \"b\", \"zip\": 2}}",
            "02"
            "08616e6f6e"
            "0262"
            "04"
            "00"
            "00"
            "00");
    /* the union field as a plain record and wrapped by its full name */
    enc_hex(s,
            "{\"id\": 1, \"address\": {\"city\": \"b\", \"zip\": 2},"
            " \"old\": {\"city\": \"c\", \"zip\": 3}}",
            "0208616e6f6e026204"
            "00"
            "00"
            "02"
            "0263"
            "06");
    enc_hex(s,
            "{\"id\": 1, \"address\": {\"city\": \"b\", \"zip\": 2},"
            " \"old\": {\"com.acme.Address\": {\"city\": \"c\", \"zip\": 3}}}",
            "0208616e6f6e026204"
            "00"
            "00"
            "02"
            "0263"
            "06");

    /* the exact place and cause */
    enc_fails(s, "{\"address\": {\"city\": \"b\", \"zip\": 2}}",
              "/: missing field \"id\" (no default)");
    enc_fails(s, "{\"id\": 1, \"address\": {\"city\": \"b\"}}",
              "/address: missing field \"zip\" (no default)");
    enc_fails(s, "{\"id\": 1, \"address\": {\"city\": \"b\", \"zip\": \"x\"}}",
              "/address/zip: expected int, got string \"x\"");
    enc_fails(s, "{\"id\": 1, \"address\": {\"city\": \"b\", \"zip\": 2}, \"tags\": [\"a\", 3]}",
              "/tags/1: expected string, got integer 3");
    enc_fails(s,
              "{\"id\": 1, \"address\": {\"city\": \"b\", \"zip\": 2}, \"scores\": {\"a/b\": "
              "\"x\"}}",
              "/scores/a~1b: expected double, got string \"x\"");
    enc_fails(s, "{\"id\": 1, \"address\": {\"city\": \"b\", \"zip\": 2}, \"old\": {\"city\": 1}}",
              "/old/city: expected string, got integer 1");
    /* a member that is no field: never dropped silently */
    enc_fails(s, "{\"id\": 1, \"address\": {\"city\": \"b\", \"zip\": 2, \"street\": \"s\"}}",
              "/address/street: not a field of record com.acme.Address");
    enc_fails(s, "{\"id\": 1, \"address\": {\"city\": \"b\", \"zip\": 2}, \"x~y\": 0}",
              "/x~0y: not a field of record com.acme.User");
    enc_fails(s, "[]", "/: expected record com.acme.User, got array");
    avrojson_free(s);
}

static void test_arrays_maps(void **state)
{
    one_type("{\"type\": \"array\", \"items\": \"long\"}", "[]", "00");
    one_type("{\"type\": \"array\", \"items\": \"long\"}", "[3, 27]",
             "04"
             "06"
             "36"
             "00");
    one_type("{\"type\": \"map\", \"values\": \"long\"}", "{}", "00");
    one_type("{\"type\": \"map\", \"values\": \"boolean\"}", "{\"a\": true}",
             "02"
             "0261"
             "01"
             "00");
    one_type("{\"type\": \"array\", \"items\": {\"type\": \"array\", \"items\": \"null\"}}",
             "[[null, null], []]",
             "04"
             "0400"
             "00"
             "00");
    one_type_fails("{\"type\": \"map\", \"values\": \"long\"}", "[]", "/: expected map, got array");
    one_type_fails("{\"type\": \"array\", \"items\": \"long\"}", "{}",
                   "/: expected array, got object");
}

static void test_enum_fixed_bytes(void **state)
{
    const char *e =
        "{\"type\": \"enum\", \"name\": \"Suit\", \"symbols\": [\"SPADES\", \"HEARTS\"]}";
    one_type(e, "\"HEARTS\"", "02");
    one_type_fails(e, "\"CLUBS\"", "/: string \"CLUBS\" is not a symbol of enum Suit");
    one_type_fails(e, "1", "/: expected enum Suit, got integer 1");
    const char *f = "{\"type\": \"fixed\", \"name\": \"md5\", \"namespace\": \"x\", \"size\": 4}";
    one_type(f, "\"\\u00de\\u00ad\\u00be\\u00ef\"", "deadbeef");
    one_type_fails(f, "\"abc\"", "/: fixed x.md5 needs 4 bytes, got 3");
    one_type_fails(f, "\"abcd\\u0101\"",
                   "/: a bytes string holds code points up to U+00FF only; character 4 is above");
    one_type("\"string\"", "\"\"", "00");
    one_type_fails("\"string\"", "\"a\\u0000b\"", "/: a string may not hold \\u0000");
    one_type_fails(e, "\"HEARTS\\u0000x\"", "/: string \"HEARTS\" is not a symbol of enum Suit");
    one_type("\"bytes\"", "\"\"", "00");
}

/* ---- unions ---- */

static void test_unions(void **state)
{
    const char *u = "[\"null\", \"int\", \"string\", {\"type\": \"record\", \"name\": \"R\","
                    " \"fields\": [{\"name\": \"a\", \"type\": \"int\"}]},"
                    " {\"type\": \"array\", \"items\": \"int\"}, {\"type\": \"map\", \"values\": "
                    "\"string\"}]";
    struct avrojson *s = compile_ok(u);
    enc_hex(s, "null", "00");
    enc_hex(s, "5", "020a");
    enc_hex(s, "\"x\"", "040278");
    enc_hex(s, "{\"a\": 1}", "0602");
    enc_hex(s, "[1]", "08020200");
    /* not a record (b is no field of R): the next branch, the map */
    enc_hex(s, "{\"b\": \"y\"}",
            "0a"
            "02"
            "0262"
            "0279"
            "00");
    /* Avro's JSON encoding */
    enc_hex(s, "{\"null\": null}", "00");
    enc_hex(s, "{\"int\": 5}", "020a");
    enc_hex(s, "{\"string\": \"x\"}", "040278");
    enc_hex(s, "{\"R\": {\"a\": 1}}", "0602");
    enc_hex(s, "{\"array\": [1]}", "08020200");
    enc_hex(s, "{\"map\": {}}", "0a00");
    /* the wrapped form is decided by the shape alone: no fallback */
    enc_fails(s, "{\"int\": \"x\"}", "/int: expected int, got string \"x\"");
    enc_fails(s, "1.5",
              "/: no branch of union [null, int, string, R, array, map] takes number 1.5");
    avrojson_free(s);

    /* with one branch besides null, its error is the answer */
    s = compile_ok("[\"null\", {\"type\": \"record\", \"name\": \"P\", \"fields\": "
                   "[{\"name\": \"age\", \"type\": \"int\"}]}]");
    enc_fails(s, "{\"age\": \"x\"}", "/age: expected int, got string \"x\"");
    avrojson_free(s);
    one_type_fails("[\"int\", \"string\"]", "null", "/: expected union, got null");

    /* schema order decides: a JSON integer goes to double when double
     * comes first */
    one_type("[\"double\", \"long\"]", "1", "00000000000000f03f");
    one_type("[\"long\", \"double\"]", "1", "0002");

    /* a record whose only field is named like a branch: the one-member
     * object is the wrapped string branch, the record needs wrapping */
    s = compile_ok("[\"string\", {\"type\": \"record\", \"name\": \"S\", \"fields\": "
                   "[{\"name\": \"string\", \"type\": \"string\"}]}]");
    enc_hex(s, "{\"string\": \"x\"}", "000278");
    enc_hex(s, "{\"S\": {\"string\": \"x\"}}", "020278");
    avrojson_free(s);
}

/* Two look-alike records under one union, nested: trying branches would
 * take 2^depth steps; the budget stops it. */
static void test_union_trial_budget(void **state)
{
    struct avrojson *s = compile_ok(
        "{\"type\": \"record\", \"name\": \"A\", \"fields\": [{\"name\": \"x\", \"type\": "
        "[\"null\", \"A\", {\"type\": \"record\", \"name\": \"B\", \"fields\": [{\"name\": "
        "\"x\", \"type\": [\"null\", \"A\", \"B\", \"string\"]}]}, \"string\"]}]}");
    char *body = nest(40, "{\"x\": ", "5", "}");
    clock_t t0 = clock();
    enc_fails_prefix(s, body, "/x: choosing union branches took more than ");
    assert_true(clock() - t0 < CLOCKS_PER_SEC);
    free(body);
    /* a fitting body goes through */
    body = nest(40, "{\"x\": ", "\"end\"", "}");
    assert_true(enc(s, body));
    free(body);
    avrojson_free(s);
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
    struct avrojson *s = compile_ok(
        "{\"type\": \"record\", \"name\": \"D\", \"fields\": ["
        " {\"name\": \"u\", \"type\": [\"string\", \"null\"], \"default\": \"z\"},"
        " {\"name\": \"b\", \"type\": \"bytes\", \"default\": \"\\u0000\\u00ff\"},"
        " {\"name\": \"f\", \"type\": {\"type\": \"fixed\", \"name\": \"F\", \"size\": 1},"
        "  \"default\": \"a\"},"
        " {\"name\": \"e\", \"type\": {\"type\": \"enum\", \"name\": \"E\", \"symbols\": [\"P\", "
        "\"Q\"]}, \"default\": \"Q\"},"
        " {\"name\": \"r\", \"type\": {\"type\": \"record\", \"name\": \"In\", \"fields\": "
        "[{\"name\": \"k\", \"type\": \"int\", \"default\": 7}]}, \"default\": {}},"
        " {\"name\": \"d\", \"type\": \"double\", \"default\": 1}]}");
    enc_hex(s, "{}",
            "00027a"
            "0400ff"
            "61"
            "02"
            "0e"
            "000000000000f03f");
    /* given values win */
    enc_hex(s,
            "{\"u\": null, \"b\": \"\", \"f\": \"b\", \"e\": \"P\", \"r\": {\"k\": 1},"
            " \"d\": 0}",
            "02"
            "00"
            "62"
            "00"
            "02"
            "0000000000000000");
    avrojson_free(s);

    /* a default that is not a value of its type does not compile */
    assert_string_equal(compile_err("{\"type\": \"record\", \"name\": \"X\", \"fields\": "
                                    "[{\"name\": \"a\", \"type\": \"int\", \"default\": \"no\"}]}"),
                        "schema: default of field \"a\" of record X: /fields/0/default: expected "
                        "int, got string \"no\"");
    /* a union's default belongs to its first branch */
    assert_string_equal(compile_err("{\"type\": \"record\", \"name\": \"X\", \"fields\": "
                                    "[{\"name\": \"a\", \"type\": [\"null\", \"int\"], "
                                    "\"default\": 1}]}"),
                        "schema: default of field \"a\" of record X: /fields/0/default: expected "
                        "null, got integer 1");
}

/* ---- logical types ---- */

static void test_logical(void **state)
{
    one_type("{\"type\": \"int\", \"logicalType\": \"date\"}", "-1", "01");
    one_type("{\"type\": \"int\", \"logicalType\": \"time-millis\"}", "86399999", "feefb252");
    one_type_fails("{\"type\": \"int\", \"logicalType\": \"time-millis\"}", "86400000",
                   "/: 86400000 is not a time of day in milliseconds");
    one_type_fails("{\"type\": \"int\", \"logicalType\": \"time-millis\"}", "-1",
                   "/: -1 is not a time of day in milliseconds");
    one_type("{\"type\": \"long\", \"logicalType\": \"time-micros\"}", "1", "02");
    one_type_fails("{\"type\": \"long\", \"logicalType\": \"time-micros\"}", "86400000000",
                   "/: 86400000000 is not a time of day in microseconds");
    one_type("{\"type\": \"long\", \"logicalType\": \"timestamp-millis\"}", "-2", "03");
    one_type("{\"type\": \"long\", \"logicalType\": \"timestamp-micros\"}", "64", "8001");
    one_type("{\"type\": \"long\", \"logicalType\": \"local-timestamp-millis\"}", "1", "02");
    one_type_fails("{\"type\": \"long\", \"logicalType\": \"timestamp-millis\"}", "\"2024\"",
                   "/: expected long, got string \"2024\"");
    const char *uuid = "{\"type\": \"string\", \"logicalType\": \"uuid\"}";
    one_type(uuid, "\"00000000-0000-0000-0000-00000000ABCD\"",
             "48"
             "30303030303030302d303030302d303030302d303030302d303030303030303041424344");
    one_type_fails(uuid, "\"0000000-00000-0000-0000-000000000000\"",
                   "/: string \"0000000-00000-0000-0000-000000000000\" is not a uuid (8-4-4-4-12 "
                   "hex digits)");
    one_type_fails(uuid, "\"g0000000-0000-0000-0000-000000000000\"",
                   "/: string \"g0000000-0000-0000-0000-000000000000\" is not a uuid (8-4-4-4-12 "
                   "hex digits)");
    /* decimal: the unscaled two's complement in Avro's bytes encoding */
    one_type("{\"type\": \"bytes\", \"logicalType\": \"decimal\", \"precision\": 4, \"scale\": "
             "2}",
             "\"\\u0004\\u00d2\"", "0404d2");
    one_type("{\"type\": \"fixed\", \"name\": \"Dec\", \"size\": 3, \"logicalType\": \"decimal\","
             " \"precision\": 5}",
             "\"\\u00ff\\u00fb\\u002e\"", "fffb2e");
    one_type_fails("{\"type\": \"bytes\", \"logicalType\": \"decimal\", \"precision\": 4}", "12.5",
                   "/: expected bytes, got number 12.5");
    /* unknown logical types, or on the wrong type: the underlying type */
    one_type("{\"type\": \"string\", \"logicalType\": \"color\"}", "\"red\"", "06726564");
    one_type("{\"type\": \"long\", \"logicalType\": \"uuid\"}", "1", "02");
    one_type("{\"type\": \"string\", \"logicalType\": \"time-millis\"}", "\"x\"", "0278");
}

/* ---- named types, namespaces, recursion ---- */

static void test_names(void **state)
{
    struct avrojson *s = compile_ok(
        "{\"type\": \"record\", \"name\": \"a.b.Outer\", \"fields\": ["
        " {\"name\": \"e\", \"type\": {\"type\": \"enum\", \"name\": \"E\", \"symbols\": "
        "[\"A\", \"B\"]}},"
        " {\"name\": \"e2\", \"type\": \"E\"},"
        " {\"name\": \"e3\", \"type\": \"a.b.E\"},"
        " {\"name\": \"in\", \"type\": {\"type\": \"record\", \"name\": \"In\", \"namespace\": "
        "\"c\", \"fields\": [{\"name\": \"e\", \"type\": \"a.b.E\"}, {\"name\": \"f\", \"type\":"
        " {\"type\": \"fixed\", \"name\": \"F\", \"size\": 1}}]}},"
        " {\"name\": \"f\", \"type\": [\"null\", \"c.F\"]}]}");
    enc_hex(s,
            "{\"e\": \"A\", \"e2\": \"B\", \"e3\": \"A\", \"in\": {\"e\": \"B\", \"f\": \"z\"},"
            " \"f\": {\"c.F\": \"y\"}}",
            "00020002"
            "7a"
            "0279");
    avrojson_free(s);
    /* the inner record's namespace is its own: F is c.F, not a.b.F */
    assert_string_equal(compile_err("{\"type\": \"record\", \"name\": \"a.R\", \"fields\": ["
                                    "{\"name\": \"x\", \"type\": {\"type\": \"fixed\", \"name\": "
                                    "\"F\", \"namespace\": \"c\", \"size\": 1}},"
                                    "{\"name\": \"y\", \"type\": \"F\"}]}"),
                        "schema: /fields/1/type: unknown type \"F\"");
}

static const char list_schema[] =
    "{\"type\": \"record\", \"name\": \"List\", \"fields\": ["
    " {\"name\": \"v\", \"type\": \"int\"},"
    " {\"name\": \"next\", \"type\": [\"null\", \"List\"], \"default\": null}]}";

static void test_recursive(void **state)
{
    struct avrojson *s = compile_ok(list_schema);
    enc_hex(s, "{\"v\": 1, \"next\": {\"v\": 2}}", "02020400");
    enc_hex(s, "{\"v\": 1, \"next\": {\"List\": {\"v\": 2}}}", "02020400");
    enc_fails(s, "{\"v\": 1, \"next\": {\"v\": 2, \"next\": {\"v\": \"3\"}}}",
              "/next/next/v: expected int, got string \"3\"");

    /* 64 records deep is the bound; 65 is refused cleanly, by the scan
     * of the text here (as deep in JSON) */
    char *body = nest(63, "{\"v\": 0, \"next\": ", "{\"v\": 1}", "}");
    assert_true(enc(s, body));
    assert_true(bin(s, hex()));
    free(body);
    body = nest(64, "{\"v\": 0, \"next\": ", "{\"v\": 1}", "}");
    enc_fails(s, body, "body is refused: arrays and objects nested deeper than 64");
    free(body);
    /* and in the binary: 65 records, each v 0 and branch 1, the last
     * branch 0 */
    struct buf b = {0};
    for (int i = 0; i < 65; i++)
        buf_puts(&b, "0002");
    buf_puts(&b, "0000");
    assert_false(bin(s, b.data));
    assert_string_equal(why, "offset 128: records, arrays and maps nested deeper than 64");
    buf_free(&b);
    avrojson_free(s);

    /* a default that adds a level below 64 levels of body: the walk's
     * own bound, since the text is only 64 deep */
    s = compile_ok("{\"type\": \"record\", \"name\": \"N\", \"fields\": ["
                   " {\"name\": \"next\", \"type\": [\"null\", \"N\"], \"default\": null},"
                   " {\"name\": \"leaf\", \"type\": {\"type\": \"record\", \"name\": \"Leaf\","
                   "  \"fields\": [{\"name\": \"x\", \"type\": \"int\", \"default\": 1}]},"
                   "  \"default\": {}}]}");
    body = nest(62, "{\"next\": ", "{\"leaf\": {}}", "}");
    assert_true(enc(s, body));
    free(body);
    body = nest(63, "{\"next\": ", "{}", "}");
    assert_false(enc(s, body));
    const char *p = strstr(why, ": records, arrays and maps nested deeper than 64");
    assert_non_null(p);
    assert_int_equal(p - why, 63 * 5 + 5); /* "/next" 63 times, "/leaf" */
    free(body);
    avrojson_free(s);
}

/* ---- hostile bodies ---- */

static void test_hostile_bodies(void **state)
{
    struct avrojson *s = compile_ok("{\"type\": \"array\", \"items\": [\"null\", \"string\","
                                    " {\"type\": \"array\", \"items\": \"null\"}]}");
    /* nesting beyond the bound is refused before jansson parses */
    char *deep = nest(65, "[", "", "]");
    enc_fails(s, deep, "body is refused: arrays and objects nested deeper than 64");
    free(deep);
    deep = nest(100000, "[", "", "]");
    enc_fails(s, deep, "body is refused: arrays and objects nested deeper than 64");
    free(deep);
    /* brackets inside strings (escaped quotes too) do not count */
    char *str = nest(70, "[", "\\\"", "");
    struct buf arr = {0};
    buf_printf(&arr, "[\"%s\"]", str);
    assert_true(enc(s, arr.data));
    assert_int_equal(out.len - 3, 1 + 1 + 2 + 71 + 1); /* count, branch, length, bytes, end */
    assert_int_equal(out.data[3 + 4], '[');
    buf_free(&arr);
    free(str);
    /* invalid UTF-8, NUL, "\u0000", duplicate names, trailing text */
    enc_fails_prefix(s, "[\"\xc3\x28\"]", "body is not JSON: unable to decode byte 0xc3");
    out.len = 0;
    assert_false(avrojson_encode(s, "[]\0[]", 5, &out, why, sizeof why));
    assert_string_equal(why, "body is not JSON: a NUL byte at offset 2");
    enc_fails(s, "[\"a\\u0000b\"]",
              "/0: no branch of union [null, string, array] takes string \"a\"");
    enc_fails_prefix(s, "[] []", "body is not JSON: end of file expected");
    enc_fails_prefix(s, "", "body is not JSON: ");
    avrojson_free(s);

    s = compile_ok("{\"type\": \"map\", \"values\": \"int\"}");
    enc_fails_prefix(s, "{\"a\": 1, \"a\": 2}", "body is not JSON: duplicate object key");
    /* a BOM is skipped */
    enc_hex(s, "\xef\xbb\xbf{\"a\": 1}", "0202610200");
    avrojson_free(s);

    /* too many items that encode to nothing: memory not bounded by the
     * output */
    s = compile_ok("{\"type\": \"array\", \"items\": \"null\"}");
    struct buf b = {0};
    buf_putc(&b, '[');
    for (int i = 0; i <= AVROJSON_MAX_EMPTY_ITEMS; i++)
        buf_puts(&b, i ? ",null" : "null");
    buf_putc(&b, ']');
    out.len = 0;
    assert_false(avrojson_encode(s, b.data, b.len, &out, why, sizeof why));
    assert_string_equal(why, "/: more than 65536 items that encode to no bytes");
    /* one fewer is fine, and check_binary accepts it */
    b.len -= strlen(",null]");
    buf_putc(&b, ']');
    assert_true(enc_n(s, b.data, b.len));
    buf_free(&b);
    avrojson_free(s);
}

/* ---- compile errors ---- */

static void test_compile_errors(void **state)
{
    assert_string_equal(compile_err("{\"type\": \"record\", \"name\": \"R\", \"fields\": ["
                                    "{\"name\": \"u\", \"type\": \"Usr\"}]}"),
                        "schema: /fields/0/type: unknown type \"Usr\"");
    assert_string_equal(compile_err("{\"type\": \"record\", \"name\": \"R\", \"fields\": ["
                                    "{\"name\": \"a\", \"type\": \"int\"},"
                                    "{\"name\": \"a\", \"type\": \"int\"}]}"),
                        "schema: /fields/1: record R has two fields \"a\"");
    assert_string_equal(compile_err("[\"int\", \"int\"]"),
                        "schema: /1: the union has two branches \"int\"");
    assert_string_equal(compile_err("[\"int\", [\"null\"]]"),
                        "schema: /1: a union directly inside a union");
    assert_string_equal(compile_err("{\"type\": \"enum\", \"name\": \"E\", \"symbols\": "
                                    "[\"A\", \"A\"]}"),
                        "schema: /: enum E has the symbol \"A\" twice");
    assert_string_equal(compile_err("{\"type\": \"fixed\", \"name\": \"F\", \"size\": -1}"),
                        "schema: /: fixed F needs a \"size\" from 1 to 2^31-1");
    assert_string_equal(compile_err("{\"type\": \"fixed\", \"name\": \"F\", \"size\": 0}"),
                        "schema: /: fixed F needs a \"size\" from 1 to 2^31-1");
    assert_string_equal(compile_err("{\"type\": \"record\", \"name\": \"R\", \"fields\": ["
                                    "{\"name\": \"a\", \"type\": {\"type\": \"record\", "
                                    "\"name\": \"R\", \"fields\": []}}]}"),
                        "schema: /fields/0/type: type \"R\" is defined twice");
    assert_string_equal(compile_err("[]"), "schema: /: a union needs at least one branch");
    assert_string_equal(compile_err("{\"type\": \"record\", \"name\": \"9x\", \"fields\": []}"),
                        "schema: /: record needs a \"name\" of letters, digits and '_'");
    assert_string_equal(compile_err("42"),
                        "schema: /: a type must be a name, an object or a union array");
    const char *e = compile_err("{\"type\": ");
    assert_int_equal(strncmp(e, "schema is not JSON: ", 20), 0);
    e = compile_err("{\"a\": 1, \"a\": 2}");
    assert_int_equal(strncmp(e, "schema is not JSON: duplicate object key", 40), 0);
    char *deep = nest(200, "[", "\"int\"", "]");
    assert_string_equal(compile_err(deep),
                        "schema is refused: arrays and objects nested deeper than 192");
    free(deep);
    /* NULL and empty */
    char err[64];
    assert_null(avrojson_compile(NULL, 0, err, sizeof err));
    assert_null(avrojson_compile("", 0, err, 0));
    avrojson_free(NULL);
}

/* ---- check_binary ---- */

static void test_check_binary(void **state)
{
    struct avrojson *s = compile_ok(user_schema);
    /* round trips */
    assert_true(enc(s, "{\"id\": -5, \"address\": {\"city\": \"\\u00e9\", \"zip\": 9},"
                       " \"tags\": [\"a\", \"b\"], \"scores\": {\"q\": 0.5}}"));
    char h[512];
    snprintf(h, sizeof h, "%s", hex());
    assert_true(bin(s, h));
    /* truncated anywhere, or with a byte more */
    size_t n = strlen(h);
    for (size_t cut = 0; cut < n; cut += 2) {
        char t[512];
        snprintf(t, sizeof t, "%.*s", (int)cut, h);
        assert_false(bin(s, t));
    }
    char more[520];
    snprintf(more, sizeof more, "%s00", h);
    bin_fails(s, more, "offset 29: 1 bytes left over after the datum");
    avrojson_free(s);

    s = compile_ok("\"string\"");
    assert_true(bin(s, "06666f6f"));
    bin_fails(s, "", "offset 0: truncated varint");
    /* a length of 2^62 would make avro-c allocate it */
    bin_fails(s, "80808080808080808001",
              "offset 0: string length 4611686018427387904 exceeds "
              "the 0 bytes left");
    bin_fails(s, "0566", "offset 0: negative string length -3");
    bin_fails(s, "04c328", "offset 0: string is not UTF-8");
    bin_fails(s, "06eda080", "offset 0: string is not UTF-8"); /* a surrogate */
    avrojson_free(s);

    s = compile_ok("\"long\"");
    assert_true(bin(s, "feffffffffffffffff01"));
    bin_fails(s, "ffffffffffffffffff02", "offset 0: varint beyond 64 bits");
    bin_fails(s, "ffffffffffffffffffff01", "offset 0: varint beyond 64 bits");
    avrojson_free(s);

    s = compile_ok("\"int\"");
    bin_fails(s, "8080808020", "offset 0: 4294967296 is out of range for int");
    avrojson_free(s);

    s = compile_ok("\"boolean\"");
    bin_fails(s, "02", "offset 0: boolean byte 2 is neither 0 nor 1");
    avrojson_free(s);

    s = compile_ok("[\"null\", \"int\"]");
    assert_true(bin(s, "00"));
    assert_true(bin(s, "0202"));
    bin_fails(s, "04", "offset 0: union has no branch 2");
    bin_fails(s, "01", "offset 0: union has no branch -1");
    avrojson_free(s);

    s = compile_ok("{\"type\": \"enum\", \"name\": \"E\", \"symbols\": [\"A\"]}");
    bin_fails(s, "02", "offset 0: enum E has no symbol 1");
    avrojson_free(s);

    s = compile_ok("{\"type\": \"array\", \"items\": \"int\"}");
    assert_true(bin(s, "04020400"));
    /* a block with a negative count carries its byte size */
    assert_true(bin(s, "03040204"
                       "00"));
    bin_fails(s,
              "03060204"
              "00",
              "offset 0: block size 3 but its items take 2 bytes");
    bin_fails(s, "ffffffffffffffffff01", "offset 0: block count -2^63");
    bin_fails(s, "feffffffffffffffff01",
              "offset 0: block count 9223372036854775807 exceeds the 0 "
              "bytes left");
    bin_fails(s, "0302", "offset 1: block size 1 does not fit the 0 bytes left");
    avrojson_free(s);

    /* items of no bytes: a count is all it takes to claim 2^62 of them */
    s = compile_ok("{\"type\": \"array\", \"items\": \"null\"}");
    assert_true(bin(s, "0600"));
    bin_fails(s,
              "808080808080808080"
              "01"
              "00",
              "offset 0: more than 65536 items that encode to no bytes");
    bin_fails(s, "8280080000", "offset 0: more than 65536 items that encode to no bytes");
    avrojson_free(s);

    s = compile_ok("{\"type\": \"map\", \"values\": \"null\"}");
    assert_true(bin(s, "040261026200"));
    bin_fails(s, "8080808080808080800100",
              "offset 0: block count 4611686018427387904 exceeds "
              "the 1 bytes left");
    avrojson_free(s);

    s = compile_ok("{\"type\": \"string\", \"logicalType\": \"uuid\"}");
    bin_fails(s, "0278", "offset 0: string is not a uuid");
    avrojson_free(s);

    s = compile_ok("{\"type\": \"fixed\", \"name\": \"F\", \"size\": 4}");
    assert_true(bin(s, "01020304"));
    bin_fails(s, "010203", "offset 0: fixed F needs 4 bytes, 3 left");
    avrojson_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_primitives),      cmocka_unit_test(test_primitive_errors),
        cmocka_unit_test(test_fastavro_golden), cmocka_unit_test(test_records),
        cmocka_unit_test(test_arrays_maps),     cmocka_unit_test(test_enum_fixed_bytes),
        cmocka_unit_test(test_unions),          cmocka_unit_test(test_union_trial_budget),
        cmocka_unit_test(test_defaults),        cmocka_unit_test(test_logical),
        cmocka_unit_test(test_names),           cmocka_unit_test(test_recursive),
        cmocka_unit_test(test_hostile_bodies),  cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_check_binary),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    buf_free(&out);
    return rc;
}
