/* test_feed.c - how a queue's consumer group is named (feed.h, README
 * "Task queues"): the spelling is a contract, since operators find their
 * queues' groups with Kafka's tools and other hopper instances must agree.
 * Placing a queue's group runs against librdkafka's mock cluster for an
 * error the real one gives only while it starts. The rest of feed.c runs
 * against the real cluster in tests/integration/test_consume.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "config.h"
#include "feed.h"
#include "router.h"
#include "topology.h"

struct name_case {
    const char *prefix, *vhost, *queue, *group;
};

static const struct name_case cases[] = {
    {"hopper.", "/", "celery", "hopper.%2F.celery"},
    /* dots stay in the queue, not in the vhost: the first unescaped dot
     * after the prefix separates the two */
    {"hopper.", "/", "celery.pidbox", "hopper.%2F.celery.pidbox"},
    {"hopper.", "a.b", "c", "hopper.a%2Eb.c"},
    {"hopper.", "a", "b.c", "hopper.a.b.c"},
    {"", "prod", "orders_v2-eu", "prod.orders_v2-eu"},
    /* '%' itself is escaped, so a spelling never reads two ways */
    {"hopper.", "/", "50%", "hopper.%2F.50%25"},
    {"hopper.", "/", "a b/c:d", "hopper.%2F.a%20b%2Fc%3Ad"},
    /* bytes above 127 (UTF-8) one by one, upper-case hex */
    {"hopper.", "/", "caf\xc3\xa9", "hopper.%2F.caf%C3%A9"},
    {"x-", "", "", "x-."},
};

static void test_group_names(void **state)
{
    (void)state;
    struct buf out = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        feed_group_name(cases[i].prefix, cases[i].vhost, cases[i].queue, &out);
        assert_string_equal(out.data, cases[i].group);
        assert_int_equal(out.len, strlen(cases[i].group) + 1); /* NUL counted */
    }
    buf_free(&out);
}

/* Different (vhost, queue) pairs never share a group. */
static void test_group_names_are_distinct(void **state)
{
    (void)state;
    static const char *const vhosts[] = {"/", "a", "a.b", "a%2Eb", "%", ""};
    static const char *const queues[] = {"b", "b.c", "c", "%2F", ".", ""};
    enum { NV = sizeof vhosts / sizeof vhosts[0], NQ = sizeof queues / sizeof queues[0] };
    struct buf names[NV * NQ];
    memset(names, 0, sizeof names);
    for (size_t v = 0; v < NV; v++)
        for (size_t q = 0; q < NQ; q++)
            feed_group_name("hopper.", vhosts[v], queues[q], &names[v * NQ + q]);
    for (size_t i = 0; i < NV * NQ; i++)
        for (size_t j = i + 1; j < NV * NQ; j++)
            assert_string_not_equal(names[i].data, names[j].data);
    for (size_t i = 0; i < NV * NQ; i++)
        buf_free(&names[i]);
}

static void placed(void *arg, bool ok, const char *why)
{
    (void)why;
    *(int *)arg = ok;
}

/* The group coordinator answers NOT_COORDINATOR while it loads (a new
 * cluster). librdkafka 2.8.0 then pokes the requesting handle's consumer
 * group, and crashed (SIGSEGV) when the admin handle was a producer
 * (issue 5040): placing must survive it and try again. */
static void test_place_survives_not_coordinator(void **state)
{
    (void)state;
    char err[512];
    rd_kafka_t *mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof err);
    assert_non_null(mock_rk);
    rd_kafka_mock_cluster_t *mock = rd_kafka_mock_cluster_new(mock_rk, 3);
    assert_non_null(mock);
    assert_int_equal(rd_kafka_mock_topic_create(mock, "tasks", 3, 3), 0);
    /* ApiKey 9 is OffsetFetch, what ListConsumerGroupOffsets sends. */
    rd_kafka_mock_push_request_errors(mock, 9, 3, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                                      RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                                      RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS);

    struct config *cfg = config_default();
    free(cfg->bootstrap_servers);
    cfg->bootstrap_servers = strdup(rd_kafka_mock_cluster_bootstraps(mock));
    cfg->rabbit_enabled = true;
    struct event_base *base = event_base_new();
    struct topology *topo = topology_new(cfg);
    struct router *router = router_new(cfg);
    struct queue_decl d = {.name = "tasks", .durable = true, .conn_id = 1};
    char name[256];
    struct topo_reply r;
    topology_declare_queue(topo, "/", &d, name, &r);
    assert_int_equal(r.code, 200);

    struct feeds *fs = feeds_new(base, cfg, topo, router);
    int done = -1;
    feeds_place(fs, "/", "tasks", placed, &done);
    /* Three answers of the coordinator, each tried again 0.5 s later: the
     * crash came with the first. (The mock cluster then cannot describe
     * topics, which needs a controller: placing goes on past this test.) */
    time_t until = time(NULL) + 4;
    while (time(NULL) < until)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(done, -1); /* still placing, not failed: it retries */

    feeds_free(fs);
    router_free(router);
    topology_free(topo);
    event_base_free(base);
    config_free(cfg);
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(mock_rk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_names),
        cmocka_unit_test(test_group_names_are_distinct),
        cmocka_unit_test(test_place_survives_not_coordinator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
