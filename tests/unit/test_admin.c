/* test_admin.c - the admin requests hopper's task queues make to a group
 * coordinator (feed.c: placing a queue's group, deleting it) survive a
 * request that cannot be sent.
 *
 * librdkafka up to at least 2.13 frees an admin request's enqueue-once
 * handle when the request to the coordinator cannot be built (an API the
 * broker does not offer; one whose versions are not known, as after a
 * reconnect), then hands the freed handle to the failed request's reply:
 * the process aborts on "rd_kafka_enq_once_del_source_return: Assertion
 * `eonce->refcnt > 0'" (librdkafka issue #4605). A Kafka outage while a
 * queue was being placed brought hopper down that way.
 * scripts/librdkafka-patches/0001 fixes it; here the mock cluster withholds
 * DeleteGroups, so the request fails at exactly that point, and the call
 * must come back with an error instead. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/* Kafka's ApiKey of DeleteGroups. */
#define API_DELETE_GROUPS 42

static void test_delete_groups_without_the_api_fails_cleanly(void **state)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "test.mock.num.brokers", "3", err, sizeof err),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err), RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(rk);
    rd_kafka_mock_cluster_t *mock = rd_kafka_handle_mock_cluster(rk);
    assert_non_null(mock);
    assert_int_equal(rd_kafka_mock_set_apiversion(mock, API_DELETE_GROUPS, -1, -1),
                     RD_KAFKA_RESP_ERR_NO_ERROR);

    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteGroup_t *group = rd_kafka_DeleteGroup_new("hopper.%2F.q");
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETEGROUPS);
    assert_int_equal(rd_kafka_AdminOptions_set_request_timeout(opts, 10000, err, sizeof err),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_DeleteGroups(rk, &group, 1, opts, q);

    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    assert_non_null(ev);
    assert_int_equal(rd_kafka_event_type(ev), RD_KAFKA_EVENT_DELETEGROUPS_RESULT);
    /* DeleteGroups answers per group. */
    size_t n = 0;
    const rd_kafka_group_result_t **groups =
        rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(ev), &n);
    assert_int_equal(n, 1);
    const rd_kafka_error_t *gerr = rd_kafka_group_result_error(groups[0]);
    assert_non_null(gerr);
    assert_int_equal(rd_kafka_error_code(gerr), RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE);
    rd_kafka_event_destroy(ev);

    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_DeleteGroup_destroy(group);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk); /* the reply queue's references add up too */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delete_groups_without_the_api_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
