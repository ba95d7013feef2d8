/* test_qargs.c - unit tests for queue arguments and message expiration:
 * the reply texts are RabbitMQ 3.10.8's, as Debian's rabbitmq-server
 * answered them (tests/integration/test_transient.py asks hopper the same
 * through a client). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "qargs.h"

static amqp_table_entry_t entry(const char *key, amqp_field_value_t v)
{
    return (amqp_table_entry_t){amqp_cstring_bytes(key), v};
}

static amqp_field_value_t i64(int64_t n)
{
    return (amqp_field_value_t){.kind = AMQP_FIELD_KIND_I64, .value.i64 = n};
}

static amqp_field_value_t u8(uint8_t n)
{
    return (amqp_field_value_t){.kind = AMQP_FIELD_KIND_U8, .value.u8 = n};
}

static amqp_field_value_t str(const char *s)
{
    return (amqp_field_value_t){.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(s)};
}

static void refused(amqp_table_entry_t e, const char *why)
{
    amqp_table_t t = {1, &e};
    char err[300], want[300];
    assert_false(qargs_valid(&t, "/", "q", err, sizeof err));
    snprintf(want, sizeof want,
             "PRECONDITION_FAILED - invalid arg '%.*s' for queue 'q' in vhost '/': %s",
             (int)e.key.len, (const char *)e.key.bytes, why);
    assert_string_equal(err, want);
}

static void accepted(amqp_table_entry_t e)
{
    amqp_table_t t = {1, &e};
    char err[300];
    assert_true(qargs_valid(&t, "/", "q", err, sizeof err));
}

static void test_integer_arguments(void **state)
{
    refused(entry("x-message-ttl", i64(-1)), "{value_negative,-1}");
    refused(entry("x-message-ttl", str("10")), "\"expected integer, got longstr\"");
    refused(entry("x-message-ttl", i64(QARGS_MAX_TTL_MS + 1)), "{value_too_large,315360000001}");
    accepted(entry("x-message-ttl", i64(0)));
    accepted(entry("x-message-ttl", i64(QARGS_MAX_TTL_MS)));
    accepted(entry("x-message-ttl", u8(7))); /* any integer type */
    refused(entry("x-expires", i64(0)), "{value_zero,0}");
    refused(entry("x-expires", i64(QARGS_MAX_TTL_MS + 1)), "{value_too_large,315360000001}");
    accepted(entry("x-expires", i64(1)));
    refused(entry("x-max-length", i64(-1)), "{value_negative,-1}");
    accepted(entry("x-max-length", i64(INT64_C(1) << 40))); /* no upper bound */
    accepted(entry("x-max-length-bytes", i64(0)));
}

static void test_overflow(void **state)
{
    refused(entry("x-overflow", str("bad")), "invalid_overflow");
    refused(entry("x-overflow", u8(5)), "{unacceptable_type,unsignedbyte}");
    accepted(entry("x-overflow", str("drop-head")));
    accepted(entry("x-overflow", str("reject-publish-dlx")));
}

static void test_parse(void **state)
{
    amqp_table_entry_t e[] = {entry("x-message-ttl", i64(300)), entry("x-max-length", u8(2)),
                              entry("x-overflow", str("reject-publish"))};
    amqp_table_t t = {3, e};
    struct qargs a;
    qargs_parse(&t, &a);
    assert_int_equal(a.message_ttl_ms, 300);
    assert_int_equal(a.max_length, 2);
    assert_int_equal(a.expires_ms, -1);
    assert_int_equal(a.max_length_bytes, -1);
    assert_int_equal(a.overflow, OVERFLOW_REJECT_PUBLISH);
    amqp_table_t none = {0, NULL};
    qargs_parse(&none, &a);
    assert_int_equal(a.message_ttl_ms, -1);
    assert_int_equal(a.overflow, OVERFLOW_DROP_HEAD);
}

static void expiration(const char *text, int64_t want_ms, const char *why)
{
    int64_t ms = -1;
    char err[300], want[300];
    bool ok = qargs_expiration(amqp_cstring_bytes(text), &ms, err, sizeof err);
    if (!why) {
        assert_true(ok);
        assert_int_equal(ms, want_ms);
        return;
    }
    assert_false(ok);
    snprintf(want, sizeof want, "PRECONDITION_FAILED - invalid expiration '%s': %s", text, why);
    assert_string_equal(err, want);
}

static void test_expiration(void **state)
{
    expiration("0", 0, NULL);
    expiration("+5", 5, NULL);
    expiration("-0", 0, NULL);
    expiration("007", 7, NULL);
    expiration("315360000000", QARGS_MAX_TTL_MS, NULL);
    expiration("", 0, "no_integer");
    expiration(" 5", 0, "no_integer");
    expiration("-", 0, "no_integer");
    expiration("5 ", 0, "{leftover_string,\" \"}");
    expiration("5x5", 0, "{leftover_string,\"x5\"}");
    expiration("-5", 0, "{value_negative,-5}");
    expiration("315360000001", 0, "{value_too_large,315360000001}");
    expiration("99999999999999999999", 0, "{value_too_large,99999999999999999999}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integer_arguments),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_expiration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
