/* test_registry.c - reading a schema registry's answers (registry.h). The
 * answers are untrusted input: every malformed one is refused with a
 * reason, and nothing is taken from a half-valid one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "registry.h"

static bool parse(const char *body, struct registry_schema *s, json_t **root, char *why)
{
    return registry_parse_answer(body, strlen(body), s, root, why, 256);
}

static void test_answers(void **state)
{
    struct registry_schema s;
    json_t *root = NULL;
    char why[256];
    assert_true(parse("{\"subject\":\"t-value\",\"version\":3,\"id\":17,"
                      "\"schema\":\"{\\\"type\\\":\\\"object\\\"}\",\"schemaType\":\"JSON\"}",
                      &s, &root, why));
    assert_int_equal(s.id, 17);
    assert_int_equal(s.version, 3);
    assert_int_equal(s.type, SCHEMA_JSON);
    assert_int_equal(s.len, strlen("{\"type\":\"object\"}"));
    assert_memory_equal(s.text, "{\"type\":\"object\"}", s.len);
    json_decref(root);

    /* Confluent leaves schemaType out for Avro. */
    assert_true(parse("{\"version\":1,\"id\":0,\"schema\":\"\\\"string\\\"\"}", &s, &root, why));
    assert_int_equal(s.type, SCHEMA_AVRO);
    assert_int_equal(s.id, 0);
    json_decref(root);
    assert_true(parse("{\"version\":1,\"id\":2,\"schema\":\"x\",\"schemaType\":\"PROTOBUF\"}", &s,
                      &root, why));
    assert_int_equal(s.type, SCHEMA_PROTOBUF);
    json_decref(root);
}

static void test_bad_answers(void **state)
{
    static const struct {
        const char *body, *why;
    } bad[] = {
        {"", "the registry's answer is not JSON"},
        {"<html>", "the registry's answer is not JSON"},
        {"[1]", "the registry's answer lacks id, version or schema"},
        {"{\"version\":1,\"schema\":\"s\"}", "the registry's answer lacks id, version or schema"},
        {"{\"version\":1,\"id\":\"7\",\"schema\":\"s\"}", "lacks id, version or schema"},
        {"{\"version\":0,\"id\":7,\"schema\":\"s\"}", "lacks id, version or schema"},
        {"{\"version\":1,\"id\":-1,\"schema\":\"s\"}", "lacks id, version or schema"},
        {"{\"version\":1,\"id\":4294967296,\"schema\":\"s\"}", "lacks id, version or schema"},
        {"{\"version\":1,\"id\":7,\"schema\":{}}", "lacks id, version or schema"},
        {"{\"version\":1,\"id\":7,\"schema\":\"s\",\"schemaType\":3}",
         "lacks id, version or schema"},
        {"{\"version\":1,\"id\":7,\"schema\":\"s\",\"schemaType\":\"XML\"}",
         "unknown schemaType in the registry's answer"},
        /* Two ids: which one would be meant? */
        {"{\"version\":1,\"id\":7,\"id\":8,\"schema\":\"s\"}", "the registry's answer is not JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct registry_schema s;
        json_t *root = (json_t *)1;
        char why[256] = "";
        if (parse(bad[i].body, &s, &root, why))
            fail_msg("accepted: %s", bad[i].body);
        assert_null(root);
        if (!strstr(why, bad[i].why))
            fail_msg("%s: why is \"%s\", wanted \"%s\"", bad[i].body, why, bad[i].why);
    }
}

static int32_t version_of(const char *body, const char *subject, bool *ok, char *why)
{
    int32_t v = -1;
    *ok = registry_parse_versions(body, strlen(body), subject, &v, why, 256);
    return v;
}

/* GET /schemas/ids/N/versions, as Apicurio 2.4's ccompat API answers it. */
static void test_versions_of_an_id(void **state)
{
    (void)state;
    const char *two = "[{\"subject\":\"probe-value\",\"version\":1},"
                      "{\"subject\":\"probe2-value\",\"version\":3}]";
    bool ok;
    char why[256] = "";
    assert_int_equal(version_of(two, "probe2-value", &ok, why), 3);
    assert_true(ok);
    assert_int_equal(version_of(two, "probe-value", &ok, why), 1);
    /* Not a prefix match, and an empty list is an answer too. */
    assert_int_equal(version_of(two, "probe", &ok, why), 0);
    assert_true(ok);
    assert_int_equal(version_of("[]", "probe-value", &ok, why), 0);
    assert_true(ok);
    const char *bad[] = {
        "{}",
        "[1]",
        "[{\"subject\":\"s\"}]",
        "[{\"subject\":\"s\",\"version\":0}]",
        "[{\"subject\":\"s\",\"version\":2147483648}]",
        "[{\"subject\":7,\"version\":1}]",
        /* one good entry does not excuse a bad one */
        "[{\"subject\":\"s\",\"version\":2},{\"version\":1}]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = 0;
        assert_int_equal(version_of(bad[i], "s", &ok, why), 0);
        if (ok)
            fail_msg("accepted: %s", bad[i]);
        assert_string_equal(why, "the registry's answer is not a list of subjects and versions");
    }
    assert_int_equal(version_of("[", "s", &ok, why), 0);
    assert_false(ok);
    assert_non_null(strstr(why, "not JSON"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers),
        cmocka_unit_test(test_bad_answers),
        cmocka_unit_test(test_versions_of_an_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
