/* test_producer.c - the numbers a producer hands the partition gate
 * (struct producer_limits) are the ones librdkafka fills its requests
 * with. A request holds at most batch.size bytes and at most
 * message.max.bytes: a gate that took batch.size alone would, with a
 * kafka.properties batch.size above message.max.bytes, release more than
 * one request's worth at a time, and the rest would wait behind the first
 * request (gate.c). No broker is needed: rd_kafka_new connects lazily. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "producer.h"

/* The limits of a producer built from a config with these
 * kafka.properties (a YAML flow mapping's inside). */
static struct producer_limits limits_with(const char *props)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "kafka:\n  bootstrap_servers: \"127.0.0.1:1\"\n  properties: {%s}\n", props);
    struct config *cfg = NULL;
    char err[512];
    if (config_load_string("test.yaml", yaml, strlen(yaml), &cfg, err, sizeof err) != 0)
        fail_msg("%s", err);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    struct producer p = {0};
    struct producer_limits limits = {0};
    if (producer_open(&p, cfg, PRODUCER_BATCH, fds[1], &limits, err, sizeof err) != 0)
        fail_msg("%s", err);
    producer_close(&p);
    close(fds[0]);
    close(fds[1]);
    config_free(cfg);
    return limits;
}

static void test_batch_bytes_is_batch_size(void **state)
{
    struct producer_limits l = limits_with("batch.size: 200000, batch.num.messages: 500");
    assert_int_equal(l.batch_bytes, 200000);
    assert_int_equal(l.batch_msgs, 500);
}

static void test_batch_bytes_is_capped_by_message_max_bytes(void **state)
{
    struct producer_limits l = limits_with("batch.size: 3000000, message.max.bytes: 2000000");
    assert_int_equal(l.batch_bytes, 2000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_bytes_is_batch_size),
        cmocka_unit_test(test_batch_bytes_is_capped_by_message_max_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
