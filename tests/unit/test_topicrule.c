/* test_topicrule.c - the topic rule (topicrule.h): its name patterns, and
 * the decisions it takes without asking Kafka (the operator's topics, the
 * patterns, the cap, CreateTopics results). Whether a topic exists is
 * asked from a real cluster in tests/integration/test_topic_rule.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "producer.h"
#include "topicrule.h"

static void test_match(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *name;
        bool match;
    } cases[] = {
        {"orders.*", "orders.eu", true},
        {"orders.*", "orders.", true},
        {"orders.*", "orders", false},
        {"orders.*", "xorders.eu", false},
        {"celery*", "celery", true},
        {"celery*", "celeryev", true},
        {"celery*", "cel", false},
        {"events-topic", "events-topic", true},
        {"events-topic", "events-topic2", false},
        {"events-topic", "events-topi", false},
        {"*", "anything", true},
        {"*", "", true},
        {"*.dlq", "orders.dlq", true},
        {"*.dlq", "orders.dlq.x", false},
        {"a*b*c", "abc", true},
        {"a*b*c", "a-b-b-c", true},
        {"a*b*c", "a-b-b-c-", false},
        {"a*b*c", "acb", false},
        {"**x", "yyx", true},
        {"a**", "a", true},
        {"*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
        /* '.' and '_' are themselves, not wildcards. */
        {"a.b", "axb", false},
        {"a_b", "a_b", true},
        {"A*", "a1", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (topicrule_match(cases[i].pattern, cases[i].name) != cases[i].match)
            fail_msg("topicrule_match(\"%s\", \"%s\") should be %d", cases[i].pattern,
                     cases[i].name, cases[i].match);
}

/* No producers: a question to Kafka cannot be sent, so a topic the rule
 * cannot decide alone stays UNKNOWN. */
static struct producer no_producers[PRODUCER_LANES];

static struct config *with_patterns(const char *const *patterns, size_t n, uint32_t max)
{
    struct config *cfg = config_default();
    cfg->create_patterns = calloc(n, sizeof *cfg->create_patterns);
    for (size_t i = 0; i < n; i++)
        cfg->create_patterns[i] = strdup(patterns[i]);
    cfg->n_create_patterns = n;
    cfg->auto_create_max = max;
    return cfg;
}

static enum topicrule_answer check(struct topicrule *r, const char *topic)
{
    struct topicrule_refusal refusal;
    return topicrule_check(r, topic, &refusal);
}

static void test_patterns_and_cap(void **state)
{
    (void)state;
    static const char *const patterns[] = {"orders.*", "celery*"};
    struct config *cfg = with_patterns(patterns, 2, 3);
    struct topicrule *r = topicrule_new(cfg, no_producers);
    assert_int_equal(check(r, "orders.a"), TOPICRULE_ALLOWED);
    assert_int_equal(check(r, "orders.a"), TOPICRULE_ALLOWED); /* counted once */
    assert_int_equal(check(r, "celery"), TOPICRULE_ALLOWED);
    /* Not matched: Kafka would be asked. */
    assert_int_equal(check(r, "stray"), TOPICRULE_UNKNOWN);
    /* An existing topic gives its count back. */
    topicrule_created(r, "celery", RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS);
    assert_int_equal(check(r, "orders.b"), TOPICRULE_ALLOWED);
    assert_int_equal(check(r, "orders.c"), TOPICRULE_ALLOWED); /* the third */
    assert_int_equal(check(r, "orders.d"), TOPICRULE_UNKNOWN); /* over the cap: ask */
    /* Created by someone (a declared queue): known to exist from then on. */
    topicrule_created(r, "stray", RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(check(r, "stray"), TOPICRULE_ALLOWED);
    /* A failed creation says nothing about existence. */
    topicrule_created(r, "orders.e", RD_KAFKA_RESP_ERR_POLICY_VIOLATION);
    assert_int_equal(check(r, "orders.e"), TOPICRULE_UNKNOWN);
    topicrule_free(r);
    config_free(cfg);
}

static void test_operator_topics(void **state)
{
    (void)state;
    struct config *cfg = NULL;
    char err[512];
    const char *text = "kafka:\n"
                       "  auto_create_topics: false\n"
                       "  topic_prefix: p.\n"
                       "exchanges:\n"
                       "  - {name: routed, type: topic}\n"
                       "  - {name: quiet, type: topic, default_route: false}\n"
                       "routes:\n"
                       "  - {exchange: routed, routing_key: \"#\", topic: route-topic}\n"
                       "queues:\n"
                       "  - {name: q, topics: [queue-topic-1, queue-topic-2]}\n";
    if (config_load_string("t.yaml", text, strlen(text), &cfg, err, sizeof err))
        fail_msg("%s", err);
    struct topicrule *r = topicrule_new(cfg, no_producers);
    const char *const operators[] = {"route-topic", "queue-topic-1", "queue-topic-2", "p.routed",
                                     "_hopper_topology"};
    for (size_t i = 0; i < sizeof operators / sizeof operators[0]; i++)
        if (check(r, operators[i]) != TOPICRULE_ALLOWED)
            fail_msg("%s is the operator's topic", operators[i]);
    /* The default route is off for quiet: p.quiet is nobody's. */
    assert_int_equal(check(r, "p.quiet"), TOPICRULE_UNKNOWN);
    assert_int_equal(check(r, "routed"), TOPICRULE_UNKNOWN);
    topicrule_free(r);
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_patterns_and_cap),
        cmocka_unit_test(test_operator_topics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
