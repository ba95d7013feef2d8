/* test_jsonschema.c - unit tests for the JSON Schema validator's C API
 * (src/jsonschema.cc over valijson 1.0): what passes, the exact reason
 * given when something does not, schemas that must not compile, draft
 * selection, and hostile bodies (not JSON, invalid UTF-8, deep nesting,
 * huge numbers, empty). The official test suite runs separately
 * (jsonschema_suite.cc). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsonschema.h"

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

static void assert_prefix(const char *s, const char *prefix)
{
    if (strncmp(s, prefix, strlen(prefix)) != 0)
        fail_msg("\"%s\" does not start with \"%s\"", s, prefix);
}

static struct jsonschema *compile_ok(const char *schema)
{
    char err[256] = "";
    struct jsonschema *s = jsonschema_compile(schema, strlen(schema), err, sizeof err);
    if (!s)
        fail_msg("does not compile: %s: %s", schema, err);
    return s;
}

/* The compile error for schema (which must not compile). */
static const char *compile_err(const char *schema)
{
    static char err[256];
    memset(err, 0x55, sizeof err);
    struct jsonschema *s = jsonschema_compile(schema, strlen(schema), err, sizeof err);
    if (s) {
        jsonschema_free(s);
        fail_msg("compiles: %s", schema);
    }
    return err;
}

static bool valid_n(const struct jsonschema *s, const char *body, size_t len, char *why,
                    size_t whylen)
{
    memset(why, 0x55, whylen);
    bool ok = jsonschema_validate(s, body, len, why, whylen);
    assert_non_null(memchr(why, '\0', whylen));
    /* one line of printable ASCII */
    for (const unsigned char *p = (const unsigned char *)why; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
    return ok;
}

static char why[512];

static bool valid(const struct jsonschema *s, const char *body)
{
    return valid_n(s, body, strlen(body), why, sizeof why);
}

static const char order_schema[] =
    "{"
    " \"type\": \"object\","
    " \"required\": [\"id\", \"items\"],"
    " \"properties\": {"
    "  \"id\": {\"type\": \"string\", \"pattern\": \"^[a-z]+-[0-9]+$\"},"
    "  \"items\": {\"type\": \"array\", \"maxItems\": 4, \"items\": {"
    "   \"type\": \"object\", \"required\": [\"sku\"],"
    "   \"properties\": {\"sku\": {\"type\": \"string\"},"
    "    \"price\": {\"type\": \"number\", \"minimum\": 0},"
    "    \"qty\": {\"type\": \"integer\", \"multipleOf\": 2}},"
    "   \"additionalProperties\": false}}"
    " }"
    "}";

static void test_valid_and_invalid_bodies(void **state)
{
    struct jsonschema *s = compile_ok(order_schema);

    assert_true(valid(s, "{\"id\": \"order-1\", \"items\": []}"));
    assert_true(valid(s, "{\"id\": \"order-1\", \"items\": [{\"sku\": \"a\", \"price\": 0.5,"
                         " \"qty\": 4}], \"extra\": null}"));

    assert_false(valid(s, "{\"id\": \"order-1\", \"items\": [{\"sku\": \"a\"}, {\"sku\": \"b\"},"
                          " {\"sku\": \"c\", \"price\": -1}]}"));
    assert_string_equal(why, "/items/2/price: Expected number greater than or equal to 0.000000");

    assert_false(valid(s, "{\"id\": \"order-1\"}"));
    assert_string_equal(why, "(root): Missing required property 'items'.");

    assert_false(valid(s, "{\"id\": \"Order 1\", \"items\": []}"));
    assert_string_equal(why, "/id: Failed to match regex specified by 'pattern' constraint.");

    assert_false(valid(s, "[]"));
    assert_string_equal(why, "(root): Value type not permitted by 'type' constraint.");

    assert_false(valid(s, "{\"id\": \"order-1\", \"items\": [{\"sku\": \"a\", \"qty\": 3}]}"));
    assert_string_equal(why, "/items/0/qty: Value should be a multiple of 2");

    assert_false(valid(s, "{\"id\": \"order-1\", \"items\": [{\"sku\": \"a\", \"colour\": 1}]}"));
    assert_string_equal(why, "/items/0: Object contains a property that could not be validated "
                             "using 'properties' or 'additionalProperties' constraints: 'colour'.");

    /* Of two failures, the first in document order; within an object,
     * members in the order of their names. */
    assert_false(valid(s, "{\"id\": \"order-1\", \"items\": [{\"sku\": 1}, {\"sku\": \"b\","
                          " \"price\": -1, \"qty\": 1}]}"));
    assert_string_equal(why, "/items/0/sku: Value type not permitted by 'type' constraint.");
    assert_false(valid(s, "{\"id\": \"order-1\", \"items\": [{\"sku\": \"b\","
                          " \"qty\": 1, \"price\": -1}]}"));
    assert_string_equal(why, "/items/0/price: Expected number greater than or equal to 0.000000");

    /* The same body, the same answer. */
    char first[sizeof why];
    assert_false(valid(s, "{\"id\": 7, \"items\": {}, \"zz\": [1]}"));
    strcpy(first, why);
    for (int i = 0; i < 3; i++) {
        assert_false(valid(s, "{\"id\": 7, \"items\": {}, \"zz\": [1]}"));
        assert_string_equal(why, first);
    }

    jsonschema_free(s);
}

/* Member names in the pointer are escaped (~0, ~1) and the reason stays
 * one printable line, whatever the body's names hold. */
static void test_pointer_escaping(void **state)
{
    struct jsonschema *s = compile_ok("{\"additionalProperties\": {\"type\": \"integer\"}}");
    assert_false(valid(s, "{\"a/b~c\": \"x\"}"));
    assert_string_equal(why, "/a~1b~0c: Value type not permitted by 'type' constraint.");
    assert_false(valid(s, "{\"caf\xc3\xa9\\n\": \"x\"}"));
    assert_string_equal(why, "/caf\\xc3\\xa9\\x0a: Value type not permitted by 'type' constraint.");
    /* A member named like an index is a member. */
    assert_false(valid(s, "{\"2\": \"x\"}"));
    assert_string_equal(why, "/2: Value type not permitted by 'type' constraint.");
    jsonschema_free(s);
}

static void test_why_is_truncated(void **state)
{
    struct jsonschema *s = compile_ok(order_schema);
    char small[12];
    assert_false(valid_n(s, "[]", 2, small, sizeof small));
    assert_string_equal(small, "(root): Val");
    /* No room at all: nothing written, still an answer. */
    assert_false(jsonschema_validate(s, "[]", 2, NULL, 0));
    assert_true(jsonschema_validate(s, "{\"id\":\"a-1\",\"items\":[]}", 23, NULL, 0));
    jsonschema_free(s);
}

static void test_schemas_that_do_not_compile(void **state)
{
    assert_string_equal(compile_err(""), "schema is not JSON: parse error at line 1, column 1: "
                                         "syntax error while parsing value - unexpected end of "
                                         "input; expected '[', '{', or a literal");
    assert_string_equal(compile_err("{\"type\": \"string\""),
                        "schema is not JSON: parse error at line 1, column 18: syntax error while "
                        "parsing object - unexpected end of input; expected '}'");
    assert_string_equal(compile_err("{\"type\": 5}"), "schema: JSON value is not a string.");
    assert_string_equal(compile_err("{\"properties\": {\"a\": {\"multipleOf\": 0}}}"),
                        "schema: /properties/a/multipleOf: must be greater than 0");
    assert_string_equal(compile_err("{\"multipleOf\": -2.5}"),
                        "schema: /multipleOf: must be greater than 0");
    assert_prefix(compile_err("{\"items\": {\"pattern\": \"([a-z\"}}"),
                  "schema: /items/pattern: \"([a-z\" is not a regular expression "
                  "std::regex accepts (");
    assert_prefix(compile_err("{\"patternProperties\": {\"(\": {}}}"),
                  "schema: /patternProperties: \"(\" is not a regular expression");
    /* libstdc++ would overflow a long on these (undefined behaviour). */
    assert_string_equal(compile_err("{\"pattern\": \"(a)\\\\9223372036854775808\"}"),
                        "schema: /pattern: \"(a)\\9223372036854775808\" has a backreference or "
                        "repeat count of more than six digits");
    assert_prefix(compile_err("{\"patternProperties\": {\"a{1,99999999999999999999}\": {}}}"),
                  "schema: /patternProperties: \"a{1,99999999999999999999}\" has a backreference");
    /* Long digit runs elsewhere are literal text. */
    jsonschema_free(
        compile_ok("{\"pattern\": \"^12345678901234567890[0-9]{2,16}\\\\{123456789}$\"}"));
    /* Remote references are not fetched. */
    assert_string_equal(compile_err("{\"properties\": {\"a\": "
                                    "{\"$ref\": \"http://example.com/a.json#/x\"}}}"),
                        "schema: remote $ref \"http://example.com/a.json#/x\" is not fetched (the "
                        "validator opens no connections)");
    /* Nor is a "$ref" without '#' that no URL scheme names: valijson 1.0
     * took it for this document and recursed until the stack overflowed. */
    assert_string_equal(compile_err("{\"$ref\": \"%/definitions/x\", \"definitions\": "
                                    "{\"x\": {\"pattern\": \"^a+$\"}}}"),
                        "schema: remote $ref \"%/definitions/x\" is not fetched (the validator "
                        "opens no connections)");
    /* Cycles of references that never reach into the body: valijson 1.0
     * would recurse until the stack overflows. */
    assert_string_equal(compile_err("{\"$ref\": \"\"}"),
                        "schema: $ref cycle that never descends into the body (# -> #): "
                        "validation would not end");
    assert_string_equal(compile_err("{\"$ref\": \"#\"}"),
                        "schema: $ref cycle that never descends into the body (# -> #): "
                        "validation would not end");
    /* valijson trims a pointer's trailing slashes: "#/" is the root, even
     * where the root has a member "" (fuzz_registry). */
    assert_string_equal(compile_err("{\"$ref\": \"#/\", \"\": {\"x\": {\"pattern\": \"^a+$\"}}}"),
                        "schema: $ref cycle that never descends into the body (# -> #): "
                        "validation would not end");
    assert_string_equal(
        compile_err(
            "{\"$ref\": \"#/definitions/a\", \"definitions\": {"
            "\"a\": {\"$ref\": \"#/definitions/b\"}, \"b\": {\"$ref\": \"#/definitions/a\"}}}"),
        "schema: $ref cycle that never descends into the body (#/definitions/a -> "
        "#/definitions/b -> #/definitions/a): validation would not end");
    assert_string_equal(compile_err("{\"anyOf\": [{\"type\": \"string\"}, {\"allOf\": [{\"$ref\": "
                                    "\"#\"}]}]}"),
                        "schema: $ref cycle that never descends into the body (# -> #/anyOf/1 -> "
                        "#/anyOf/1/allOf/0 -> #): validation would not end");
    /* A reference that does reach into the body is fine: a tree. */
    struct jsonschema *tree =
        compile_ok("{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\"},"
                   " \"children\": {\"type\": \"array\", \"items\": {\"$ref\": \"#\"}}}}");
    assert_true(valid(tree, "{\"name\": \"a\", \"children\": [{\"name\": \"b\", \"children\": "
                            "[{\"name\": \"c\"}]}]}"));
    assert_false(valid(tree, "{\"name\": \"a\", \"children\": [{\"children\": [{\"name\": 3}]}]}"));
    assert_string_equal(why, "/children/0/children/0/name: Value type not permitted by 'type' "
                             "constraint.");
    jsonschema_free(tree);

    /* A schema at its nesting bound compiles (valijson's parser recurses
     * per level: this is the stack it may take) and validates. */
    char *at_bound = nest(JSONSCHEMA_MAX_SCHEMA_DEPTH - 1, "{\"items\":", "{}", "}");
    struct jsonschema *deep_ok = compile_ok(at_bound);
    char *body = nest(JSONSCHEMA_MAX_DEPTH, "[", "", "]");
    assert_true(valid(deep_ok, body));
    jsonschema_free(deep_ok);
    free(body);
    free(at_bound);

    /* A schema nested past its bound. */
    char deep[2 * (JSONSCHEMA_MAX_SCHEMA_DEPTH + 1) + 1];
    memset(deep, '[', JSONSCHEMA_MAX_SCHEMA_DEPTH + 1);
    memset(deep + JSONSCHEMA_MAX_SCHEMA_DEPTH + 1, ']', JSONSCHEMA_MAX_SCHEMA_DEPTH + 1);
    deep[sizeof deep - 1] = '\0';
    assert_string_equal(compile_err(deep),
                        "schema is refused: arrays and objects nested deeper than 192");

    /* NULL and errlen 0 are fine. */
    assert_null(jsonschema_compile(NULL, 0, NULL, 0));
    char err[8];
    assert_null(jsonschema_compile("{", 1, err, sizeof err));
    assert_string_equal(err, "schema ");
}

/* $schema picks the draft: draft 4's boolean exclusiveMinimum, draft 6
 * and 7's numeric one; no $schema means draft 7. */
static void test_draft_selection(void **state)
{
    struct jsonschema *s = compile_ok("{\"$schema\": \"http://json-schema.org/draft-04/schema#\","
                                      " \"minimum\": 5, \"exclusiveMinimum\": true}");
    assert_false(valid(s, "5"));
    assert_string_equal(why, "(root): Expected number greater than 5.000000");
    assert_true(valid(s, "5.5"));
    jsonschema_free(s);

    assert_string_equal(compile_err("{\"$schema\": \"http://json-schema.org/draft-07/schema#\","
                                    " \"minimum\": 5, \"exclusiveMinimum\": true}"),
                        "schema: Expected numeric value for exclusiveMinimum constraint.");
    assert_string_equal(compile_err("{\"minimum\": 5, \"exclusiveMinimum\": true}"),
                        "schema: Expected numeric value for exclusiveMinimum constraint.");

    for (int i = 0; i < 4; i++) {
        static const char *const uris[] = {
            "http://json-schema.org/draft-07/schema#",
            "https://json-schema.org/draft-07/schema",
            "http://json-schema.org/draft-06/schema#",
            "",
        };
        char text[256];
        snprintf(text, sizeof text, "{%s%s%s \"exclusiveMinimum\": 5}",
                 *uris[i] ? "\"$schema\": \"" : "", uris[i], *uris[i] ? "\"," : "");
        s = compile_ok(text);
        assert_false(valid(s, "5"));
        assert_string_equal(why, "(root): Expected number greater than 5.000000");
        assert_true(valid(s, "6"));
        jsonschema_free(s);
    }

    /* Draft 7's if/then/else. */
    s = compile_ok("{\"if\": {\"type\": \"string\"}, \"then\": {\"minLength\": 2},"
                   " \"else\": {\"type\": \"integer\"}}");
    assert_true(valid(s, "\"ab\""));
    assert_true(valid(s, "3"));
    assert_false(valid(s, "\"a\""));
    assert_false(valid(s, "3.5"));
    jsonschema_free(s);

    /* A boolean schema is draft 6 and 7 only. */
    s = compile_ok("false");
    assert_false(valid(s, "{}"));
    jsonschema_free(s);
    assert_prefix(
        compile_err("{\"$schema\": \"http://json-schema.org/draft-04/schema#\", \"not\": true}"),
        "schema: Expected object value for 'not' constraint.");

    assert_string_equal(
        compile_err("{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\"}"),
        "$schema \"https://json-schema.org/draft/2020-12/schema\": not a draft "
        "hopper validates (4, 6 or 7)");
    assert_string_equal(compile_err("{\"$schema\": \"http://json-schema.org/draft-03/schema#\"}"),
                        "$schema \"http://json-schema.org/draft-03/schema#\": not a draft hopper "
                        "validates (4, 6 or 7)");
    assert_string_equal(compile_err("{\"$schema\": 7}"), "$schema: must be a string");
}

static void test_bodies_that_are_not_json(void **state)
{
    struct jsonschema *s = compile_ok("{}");
    assert_true(valid(s, "{}"));
    assert_true(valid(s, " 1 "));
    assert_true(valid(s, "\xef\xbb\xbf[]")); /* a BOM */

    assert_false(valid_n(s, "", 0, why, sizeof why));
    assert_string_equal(why, "body is not JSON: parse error at line 1, column 1: syntax error "
                             "while parsing value - unexpected end of input; expected '[', '{', "
                             "or a literal");
    assert_false(jsonschema_validate(s, NULL, 0, why, sizeof why));
    assert_prefix(why, "body is not JSON: ");
    assert_false(valid(s, "{\"a\": 1"));
    assert_prefix(why, "body is not JSON: parse error at line 1, column 8: ");
    assert_false(valid(s, "{} x"));
    assert_string_equal(why, "body is not JSON: parse error at line 1, column 4: syntax error "
                             "while parsing value - invalid literal; last read: '{} x'; expected "
                             "end of input");
    assert_false(valid(s, "{'a': 1}"));
    assert_false(valid(s, "[1,]"));
    assert_false(valid(s, "NaN"));
    assert_false(valid(s, "/* c */ {}"));
    /* A NUL byte is not JSON anywhere (nlohmann would take it for the
     * end of the input and pass what follows unread). */
    assert_false(valid_n(s, "{}\0{}", 5, why, sizeof why));
    assert_string_equal(why, "body is not JSON: a NUL byte at offset 2");
    assert_false(valid_n(s, "{}\0", 3, why, sizeof why));
    assert_false(valid_n(s, "\"a\0\"", 4, why, sizeof why));
    assert_string_equal(why, "body is not JSON: a NUL byte at offset 2");
    char err[64];
    assert_null(jsonschema_compile("{}\0", 3, err, sizeof err));
    assert_string_equal(err, "schema is not JSON: a NUL byte at offset 2");
    /* Control characters must be escaped in JSON strings; the reason
     * shows them escaped too. */
    assert_false(valid(s, "\"a\x01\""));
    assert_string_equal(why, "body is not JSON: parse error at line 1, column 3: syntax error "
                             "while parsing value - invalid string: control character U+0001 "
                             "(SOH) must be escaped to \\u0001; last read: '\"a<U+0001>'");
    jsonschema_free(s);
}

static void test_invalid_utf8(void **state)
{
    struct jsonschema *s = compile_ok("{}");
    static const char *const bad[] = {
        "\"\xff\"",                /* not a UTF-8 byte */
        "\"\xc3\"",                /* truncated sequence */
        "\"\xc0\xaf\"",            /* overlong */
        "\"\xed\xa0\x80\"",        /* a surrogate */
        "\"\xf4\x90\x80\x80\"",    /* past U+10FFFF */
        "{\"\x80\": 1}",           /* in a member name */
        "[\"ok\", \"a\xe2\x82\"]", /* cut short */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_false(valid(s, bad[i]));
        assert_prefix(why, "body is not JSON: ");
        assert_non_null(strstr(why, "ill-formed UTF-8 byte"));
    }
    assert_false(valid(s, "\"\xff\""));
    assert_string_equal(why, "body is not JSON: parse error at line 1, column 2: syntax error "
                             "while parsing value - invalid string: ill-formed UTF-8 byte; last "
                             "read: '\"\\xff'");
    /* Escaped lone surrogates are not text either. */
    assert_false(valid(s, "\"\\ud800\""));
    assert_prefix(why, "body is not JSON: ");
    /* Valid UTF-8, four bytes included. */
    assert_true(valid(s, "\"caf\xc3\xa9 \xf0\x9f\x90\x87 \\ud83d\\udc07\""));
    jsonschema_free(s);
}

static void test_nesting_bound(void **state)
{
    /* A schema that walks every level: items and additionalProperties
     * refer back to the root. */
    struct jsonschema *s = compile_ok("{\"type\": [\"array\", \"object\", \"integer\"],"
                                      " \"items\": {\"$ref\": \"#\"},"
                                      " \"additionalProperties\": {\"$ref\": \"#\"}}");
    char *b = nest(JSONSCHEMA_MAX_DEPTH, "[", "1", "]");
    assert_true(valid(s, b));
    free(b);
    b = nest(JSONSCHEMA_MAX_DEPTH - 1, "[", "\"x\"", "]");
    assert_false(valid(s, b));
    assert_prefix(why, "/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/");
    free(b);
    b = nest(JSONSCHEMA_MAX_DEPTH + 1, "[", "1", "]");
    assert_false(valid(s, b));
    assert_string_equal(why, "body is refused: arrays and objects nested deeper than 64");
    free(b);
    b = nest(JSONSCHEMA_MAX_DEPTH, "{\"a\":", "1", "}");
    assert_true(valid(s, b));
    free(b);
    b = nest(JSONSCHEMA_MAX_DEPTH + 1, "{\"a\":", "1", "}");
    assert_false(valid(s, b));
    assert_string_equal(why, "body is refused: arrays and objects nested deeper than 64");
    free(b);

    /* 100,000 levels, unterminated and terminated: refused at level 65,
     * without the parser or valijson going deeper (the stack would not
     * hold them, least of all under ASan). */
    b = nest(100000, "[", "", "");
    assert_false(valid(s, b));
    assert_string_equal(why, "body is refused: arrays and objects nested deeper than 64");
    free(b);
    b = nest(100000, "[{\"a\":", "0", "}]");
    assert_false(valid(s, b));
    assert_string_equal(why, "body is refused: arrays and objects nested deeper than 64");
    free(b);
    jsonschema_free(s);
}

static void test_huge_numbers(void **state)
{
    struct jsonschema *s = compile_ok("{\"properties\": {"
                                      " \"n\": {\"type\": \"number\", \"maximum\": 100},"
                                      " \"m\": {\"multipleOf\": 3},"
                                      " \"p\": {\"minimum\": 0},"
                                      " \"i\": {\"type\": \"integer\"}}}");
    /* Beyond double's range: nlohmann refuses it. */
    assert_false(valid(s, "{\"n\": 1e400}"));
    assert_string_equal(why, "body is not JSON: number overflow parsing '1e400'");
    assert_false(valid(s, "{\"n\": -1e400}"));
    assert_false(valid(s, "{\"n\": 1e300}"));
    assert_string_equal(why, "/n: Expected number less than or equal to 100.000000");
    assert_true(valid(s, "{\"n\": -1e300, \"p\": 1e-300}"));
    assert_true(valid(s, "{\"n\": 1e-400}")); /* underflows to 0 */
    /* An integer divisor against numbers outside int64_t (the patched
     * valijson checks them in floating point instead of an undefined
     * cast). */
    assert_false(valid(s, "{\"m\": 1e20}"));
    assert_string_equal(why, "/m: Value should be a multiple of 3");
    assert_true(valid(s, "{\"m\": 3e20}"));
    assert_true(valid(s, "{\"m\": 1e300}")); /* as a double, it is */
    assert_true(valid(s, "{\"m\": -1e300}"));
    assert_false(valid(s, "{\"m\": 9223372036854775808}")); /* 2^63 */
    assert_false(valid(s, "{\"m\": 9223372036854775807}"));
    assert_true(valid(s, "{\"m\": 9223372036854775806}"));
    assert_true(valid(s, "{\"m\": -9223372036854775806}"));
    assert_false(valid(s, "{\"m\": -9223372036854775808}"));
    /* Integers from 2^63 on are compared as doubles, not wrapped to
     * negative ones... */
    assert_true(valid(s, "{\"p\": 18446744073709551615}"));
    assert_true(valid(s, "{\"p\": 9223372036854775808}"));
    assert_true(valid(s, "{\"i\": 9223372036854775807}"));
    /* ...so they no longer count as integers. */
    assert_false(valid(s, "{\"i\": 9223372036854775808}"));
    assert_string_equal(why, "/i: Value type not permitted by 'type' constraint.");
    /* Long digit strings. */
    char *digits = nest(5000, "9", "", "");
    assert_true(valid(s, digits) == false);
    assert_prefix(why, "body is not JSON: number overflow parsing '99999");
    free(digits);
    jsonschema_free(s);
}

/* With regular expressions in the schema, strings past the bound are
 * refused before std::regex (which recurses per character) sees them. */
static void test_long_strings(void **state)
{
    size_t n = JSONSCHEMA_MAX_REGEX_INPUT;
    char *at_bound = nest(n, "a", "", "");
    char *body = nest(1, "\"", at_bound, "\"");
    char *past_bound = nest(1, "\"a", at_bound, "\"");
    free(at_bound);

    struct jsonschema *s = compile_ok("{\"pattern\": \"^a+$\"}");
    assert_true(valid(s, body));
    assert_false(valid(s, past_bound));
    assert_string_equal(why, "body is refused: a string of 4097 bytes, longer than 4096 (the "
                             "bound for a schema with regular expressions)");
    jsonschema_free(s);
    /* Member names too (patternProperties). */
    s = compile_ok("{\"patternProperties\": {\"^a\": {}}}");
    char *member = malloc(strlen(past_bound) + 8);
    assert_non_null(member);
    sprintf(member, "{%s: 1}", past_bound);
    assert_false(valid(s, member));
    assert_prefix(why, "body is refused: a string of 4097 bytes");
    free(member);
    jsonschema_free(s);

    /* Without regular expressions, no bound. */
    s = compile_ok("{\"type\": \"string\", \"maxLength\": 10}");
    assert_false(valid(s, past_bound));
    assert_string_equal(why, "(root): String should be no more than 10 characters in length.");
    jsonschema_free(s);
    free(body);
    free(past_bound);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_and_invalid_bodies),
        cmocka_unit_test(test_pointer_escaping),
        cmocka_unit_test(test_why_is_truncated),
        cmocka_unit_test(test_schemas_that_do_not_compile),
        cmocka_unit_test(test_draft_selection),
        cmocka_unit_test(test_bodies_that_are_not_json),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_nesting_bound),
        cmocka_unit_test(test_huge_numbers),
        cmocka_unit_test(test_long_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
