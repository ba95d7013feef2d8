/* test_feed.c - how a queue's consumer group is named (feed.h, README
 * "Task queues"): the spelling is a contract, since operators find their
 * queues' groups with Kafka's tools and other hopper instances must agree.
 * The rest of feed.c runs against the real cluster in
 * tests/integration/test_consume.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "feed.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_names),
        cmocka_unit_test(test_group_names_are_distinct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
