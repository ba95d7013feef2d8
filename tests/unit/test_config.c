/* test_config.c - config.c: defaults, a full valid file, the shipped
 * config/hopper.yaml, and every class of error with its exact position and
 * message. Run from the repository root (as `make unit` does). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "router.h"

static char err[512];

static struct config *load_ok(const char *text)
{
    struct config *cfg = NULL;
    err[0] = '\0';
    int rc = config_load_string("t.yaml", text, strlen(text), &cfg, err, sizeof err);
    if (rc != 0)
        fail_msg("unexpected error: %s", err);
    assert_non_null(cfg);
    return cfg;
}

/* Loads `text`, which must fail with exactly `want`. */
static void check_error(const char *text, size_t len, const char *want)
{
    struct config *cfg = (struct config *)1;
    err[0] = '\0';
    int rc = config_load_string("t.yaml", text, len, &cfg, err, sizeof err);
    assert_int_equal(rc, -1);
    assert_null(cfg);
    assert_string_equal(err, want);
}

#define expect_error(text, want) check_error(text, strlen(text), want)

static void assert_defaults(const struct config *cfg)
{
    assert_string_equal(cfg->listen_address, "127.0.0.1");
    assert_int_equal(cfg->listen_port, 5672);
    assert_int_equal(cfg->max_connections, 1024);
    assert_int_equal(cfg->channel_max, 2047);
    assert_int_equal(cfg->frame_max, 131072);
    assert_int_equal(cfg->max_message_size, 8388608);
    assert_int_equal(cfg->heartbeat, 60);
    assert_int_equal(cfg->handshake_timeout_ms, 10000);
    assert_int_equal(cfg->max_table_depth, 16);
    assert_int_equal(cfg->max_unconfirmed, 10000);
    assert_true(cfg->max_inflight_bytes == 67108864);
    assert_int_equal(cfg->drain_timeout_ms, 10000);
    assert_int_equal(cfg->n_users, 1);
    assert_string_equal(cfg->users[0].name, "guest");
    assert_string_equal(cfg->users[0].password, "guest");
    assert_true(cfg->users[0].loopback_only);
    assert_int_equal(cfg->n_vhosts, 1);
    assert_string_equal(cfg->vhosts[0], "/");
    assert_string_equal(cfg->bootstrap_servers, "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094");
    assert_string_equal(cfg->topic_prefix, "");
    assert_true(cfg->auto_create_topics);
    assert_null(cfg->create_patterns);
    assert_int_equal(cfg->n_create_patterns, 0);
    assert_int_equal(cfg->auto_create_max, 1000);
    assert_int_equal(cfg->topic_partitions, 3);
    assert_int_equal(cfg->replication_factor, 3);
    assert_int_equal(cfg->min_insync_replicas, 2);
    assert_int_equal(cfg->n_kafka_props, 0);
    assert_true(cfg->default_route);
    assert_int_equal(cfg->n_exchanges, 0);
    assert_int_equal(cfg->n_routes, 0);
    assert_int_equal(cfg->n_queues, 0);
    assert_null(cfg->queues);
}

static void test_defaults(void **state)
{
    struct config *cfg = config_default();
    assert_defaults(cfg);
    assert_null(cfg->path);
    config_free(cfg);

    /* An empty file, comments only, a bare document marker, empty
     * sections and empty values: all defaults. */
    const char *empty[] = {
        "",
        "# nothing here\n\n",
        "---\n",
        "--- ~\n",
        "listen:\nlimits:\nkafka:\n  properties:\nusers:\nvhosts: ~\nexchanges:\nroutes: null\n"
        "queues:\n",
        "listen:\n  port:\n  address: ~\n",
    };
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        cfg = load_ok(empty[i]);
        assert_defaults(cfg);
        assert_string_equal(cfg->path, "t.yaml");
        config_free(cfg);
    }
}

static const char full_yaml[] = "listen:\n"
                                "  address: ::1\n"
                                "  port: 5673\n"
                                "limits:\n"
                                "  max_connections: 1000000\n"
                                "  channel_max: 1\n"
                                "  frame_max: 4096\n"
                                "  max_message_size: 134217728\n"
                                "  heartbeat: 0\n"
                                "  handshake_timeout: 100\n"
                                "  max_table_depth: 64\n"
                                "  max_unconfirmed: 10000000\n"
                                "  max_inflight_bytes: 17179869184\n"
                                "  drain_timeout: 0\n"
                                "users:\n"
                                "  - name: guest\n"
                                "    password: ''\n"
                                "  - {name: app, password: 12345}\n"
                                "  - name: ops\n"
                                "    password: \"s3cr:t\"\n"
                                "    loopback_only: yes\n"
                                "vhosts: [\"/\", prod]\n"
                                "kafka:\n"
                                "  bootstrap_servers: k1:9092\n"
                                "  topic_prefix: amqp.\n"
                                "  auto_create_topics: off\n"
                                "  topic_partitions: 10000\n"
                                "  replication_factor: 1\n"
                                "  min_insync_replicas: 1\n"
                                "  properties:\n"
                                "    linger.ms: 0\n"
                                "    socket.nagle.disable: true\n"
                                "    acks: all\n"
                                "    client.id: \"hopper 1\"\n"
                                "default_route: No\n"
                                "exchanges:\n"
                                "  - name: events\n"
                                "  - name: events\n" /* same name, other vhost */
                                "    vhost: prod\n"
                                "    type: headers\n"
                                "    default_route: ON\n"
                                "  - {name: logs, type: fanout, default_route: false}\n"
                                "routes:\n"
                                "  - exchange: events\n"
                                "    topic: events-topic\n"
                                "  - exchange: \"\"\n"
                                "    routing_key: \"orders.*\"\n"
                                "    topic: orders_v1.x\n"
                                "    key: message_id\n"
                                "  - {exchange: logs, topic: logs, key: none}\n"
                                "  - exchange: events\n"
                                "    topic: by-header\n"
                                "    key: \"header:x-tenant\"\n";

static void test_full(void **state)
{
    struct config *cfg = load_ok(full_yaml);
    assert_string_equal(cfg->listen_address, "::1");
    assert_int_equal(cfg->listen_port, 5673);
    assert_int_equal(cfg->max_connections, 1000000);
    assert_int_equal(cfg->channel_max, 1);
    assert_int_equal(cfg->frame_max, 4096);
    assert_int_equal(cfg->max_message_size, 134217728);
    assert_int_equal(cfg->heartbeat, 0);
    assert_int_equal(cfg->handshake_timeout_ms, 100);
    assert_int_equal(cfg->max_table_depth, 64);
    assert_int_equal(cfg->max_unconfirmed, 10000000);
    assert_true(cfg->max_inflight_bytes == UINT64_C(17179869184));
    assert_int_equal(cfg->drain_timeout_ms, 0);

    assert_int_equal(cfg->n_users, 3);
    assert_string_equal(cfg->users[0].password, "");
    assert_true(cfg->users[0].loopback_only); /* guest */
    assert_string_equal(cfg->users[1].name, "app");
    assert_string_equal(cfg->users[1].password, "12345");
    assert_false(cfg->users[1].loopback_only); /* everyone else */
    assert_string_equal(cfg->users[2].password, "s3cr:t");
    assert_true(cfg->users[2].loopback_only);
    assert_ptr_equal(config_find_user(cfg, "app"), &cfg->users[1]);
    assert_null(config_find_user(cfg, "App"));

    assert_int_equal(cfg->n_vhosts, 2);
    assert_true(config_has_vhost(cfg, "/"));
    assert_true(config_has_vhost(cfg, "prod"));
    assert_false(config_has_vhost(cfg, "dev"));

    assert_string_equal(cfg->bootstrap_servers, "k1:9092");
    assert_string_equal(cfg->topic_prefix, "amqp.");
    assert_false(cfg->auto_create_topics);
    assert_int_equal(cfg->topic_partitions, 10000);
    assert_int_equal(cfg->replication_factor, 1);
    assert_int_equal(cfg->min_insync_replicas, 1);
    assert_int_equal(cfg->n_kafka_props, 4);
    assert_string_equal(cfg->kafka_props[0].key, "linger.ms");
    assert_string_equal(cfg->kafka_props[0].value, "0");
    assert_string_equal(cfg->kafka_props[1].value, "true");
    assert_string_equal(cfg->kafka_props[2].key, "acks");
    assert_string_equal(cfg->kafka_props[3].value, "hopper 1");
    assert_false(cfg->default_route);

    assert_int_equal(cfg->n_exchanges, 3);
    assert_string_equal(cfg->exchanges[0].name, "events");
    assert_string_equal(cfg->exchanges[0].vhost, "/");
    assert_int_equal(cfg->exchanges[0].type, EXCHANGE_TOPIC);
    assert_int_equal(cfg->exchanges[0].default_route, -1);
    assert_string_equal(cfg->exchanges[1].vhost, "prod");
    assert_int_equal(cfg->exchanges[1].type, EXCHANGE_HEADERS);
    assert_int_equal(cfg->exchanges[1].default_route, 1);
    assert_int_equal(cfg->exchanges[2].type, EXCHANGE_FANOUT);
    assert_int_equal(cfg->exchanges[2].default_route, 0);

    assert_int_equal(cfg->n_routes, 4);
    assert_string_equal(cfg->routes[0].exchange, "events");
    assert_string_equal(cfg->routes[0].pattern, "#");
    assert_string_equal(cfg->routes[0].topic, "events-topic");
    assert_int_equal(cfg->routes[0].key, KEY_ROUTING_KEY);
    assert_null(cfg->routes[0].key_header);
    assert_int_equal(cfg->routes[0].line, 44);
    assert_string_equal(cfg->routes[1].exchange, "");
    assert_string_equal(cfg->routes[1].pattern, "orders.*");
    assert_int_equal(cfg->routes[1].key, KEY_MESSAGE_ID);
    assert_int_equal(cfg->routes[1].line, 46);
    assert_int_equal(cfg->routes[2].key, KEY_NONE);
    assert_int_equal(cfg->routes[3].key, KEY_HEADER);
    assert_string_equal(cfg->routes[3].key_header, "x-tenant");
    config_free(cfg);
}

static void test_shipped(void **state)
{
    struct config *cfg = NULL;
    int rc = config_load("config/hopper.yaml", &cfg, err, sizeof err);
    if (rc != 0)
        fail_msg("config/hopper.yaml: %s", err);
    assert_string_equal(cfg->path, "config/hopper.yaml");
    assert_string_equal(cfg->listen_address, "127.0.0.1");
    assert_int_equal(cfg->listen_port, 5672);
    assert_non_null(config_find_user(cfg, "guest"));
    assert_true(config_has_vhost(cfg, "/"));
    assert_int_equal(cfg->n_exchanges, 1);
    assert_string_equal(cfg->exchanges[0].name, "events");
    assert_int_equal(cfg->exchanges[0].type, EXCHANGE_TOPIC);
    assert_int_equal(cfg->n_routes, 1);
    assert_string_equal(cfg->routes[0].exchange, "events");
    assert_string_equal(cfg->routes[0].pattern, "#");
    assert_string_equal(cfg->routes[0].topic, "events-topic");
    assert_int_equal(cfg->routes[0].key, KEY_ROUTING_KEY);
    /* Celery's topics may be made; stray routing keys make none. */
    assert_true(cfg->auto_create_topics);
    assert_int_equal(cfg->n_create_patterns, 2);
    assert_string_equal(cfg->create_patterns[0], "celery*");
    assert_string_equal(cfg->create_patterns[1], "reply.celery.pidbox");
    assert_int_equal(cfg->auto_create_max, 1000);
    config_free(cfg);
}

static void test_load_file_errors(void **state)
{
    struct config *cfg = NULL;
    assert_int_equal(config_load("tests/unit/no-such.yaml", &cfg, err, sizeof err), -1);
    assert_null(cfg);
    assert_string_equal(err, "tests/unit/no-such.yaml: cannot open: No such file or directory");
    assert_int_equal(config_load("tests/unit", &cfg, err, sizeof err), -1);
    assert_string_equal(err, "tests/unit: cannot read: Is a directory");

    /* The message is cut to the buffer, never overrun; no buffer is fine. */
    char small[12];
    memset(small, 'x', sizeof small);
    assert_int_equal(config_load_string("t.yaml", "foo: 1\n", 7, &cfg, small, 8), -1);
    assert_string_equal(small, "t.yaml:");
    assert_int_equal(small[9], 'x');
    assert_int_equal(config_load_string("t.yaml", "foo: 1\n", 7, &cfg, NULL, 0), -1);
}

static void test_unknown_keys(void **state)
{
    expect_error("foo: 1\n", "t.yaml:1:1: foo: unknown key");
    expect_error("listen:\n  port: 1\nlimits:\n  frame_mx: 5000\n",
                 "t.yaml:4:3: limits.frame_mx: unknown key");
    expect_error("kafka:\n  properties: {}\n  prefix: x\n",
                 "t.yaml:3:3: kafka.prefix: unknown key");
    expect_error("routes:\n  - {exchange: a, topic: b}\n  - exchange: a\n    topik: b\n",
                 "t.yaml:4:5: routes[1].topik: unknown key");
    expect_error("users:\n  - name: a\n    password: b\n    admin: true\n",
                 "t.yaml:4:5: users[0].admin: unknown key");
    /* a dotted name is not a path into a section */
    expect_error("listen.port: 1\n", "t.yaml:1:1: listen.port: unknown key");
    /* control characters in a key do not break the one-line message */
    expect_error("\"a\\nb\": 1\n", "t.yaml:1:1: a?b: unknown key");
    expect_error("? [a]\n: 1\n", "t.yaml:1:3: (top level): keys must be strings");
}

static void test_wrong_types(void **state)
{
    expect_error("listen:\n  port: abc\n", "t.yaml:2:9: listen.port: must be an integer");
    expect_error("listen:\n  port: \"5672\"\n", "t.yaml:2:9: listen.port: must be an integer");
    expect_error("listen:\n  port: [1]\n", "t.yaml:2:9: listen.port: must be an integer");
    expect_error("listen:\n  port: 10ms\n", "t.yaml:2:9: listen.port: must be an integer");
    expect_error("listen:\n  port: 0x10\n", "t.yaml:2:9: listen.port: must be an integer");
    expect_error("listen:\n  port: 1_000\n", "t.yaml:2:9: listen.port: must be an integer");
    expect_error("listen:\n  port: 5672.0\n", "t.yaml:2:9: listen.port: must be an integer");
    expect_error("listen:\n  port: +1\n", "t.yaml:2:9: listen.port: must be an integer");
    expect_error("listen:\n  port: 010\n",
                 "t.yaml:2:9: listen.port: must be an integer without leading zeros");
    expect_error("default_route: maybe\n", "t.yaml:1:16: default_route: must be true or false");
    expect_error("default_route: \"true\"\n", "t.yaml:1:16: default_route: must be true or false");
    expect_error("default_route: 1\n", "t.yaml:1:16: default_route: must be true or false");
    expect_error("listen:\n  address: {a: 1}\n", "t.yaml:2:12: listen.address: must be a string");
    expect_error("limits: 5\n", "t.yaml:1:9: limits: must be a mapping");
    expect_error("- a\n", "t.yaml:1:1: (top level): must be a mapping");
    expect_error("users: {name: a}\n", "t.yaml:1:8: users: must be a list");
    expect_error("vhosts: /\n", "t.yaml:1:9: vhosts: must be a list");
    expect_error("users:\n  - guest\n", "t.yaml:2:5: users[0]: must be a mapping");
    expect_error("kafka:\n  properties: [a]\n", "t.yaml:2:15: kafka.properties: must be a mapping");
    expect_error("kafka:\n  properties:\n    linger.ms: [1]\n",
                 "t.yaml:3:16: kafka.properties.linger.ms: must be a scalar (librdkafka takes "
                 "every value as a string)");
    expect_error("exchanges:\n  - name: x\n    type: Topic\n",
                 "t.yaml:3:11: exchanges[0].type: must be direct, fanout, topic or headers");
    expect_error("exchanges:\n  - name: x\n    default_route: inherit\n",
                 "t.yaml:3:20: exchanges[0].default_route: must be true or false");
}

static void test_bounds(void **state)
{
    expect_error("limits:\n  frame_max: 4095\n",
                 "t.yaml:2:14: limits.frame_max: must be between 4096 and 1048576");
    expect_error("limits:\n  frame_max: 1048577\n",
                 "t.yaml:2:14: limits.frame_max: must be between 4096 and 1048576");
    expect_error("listen:\n  port: 0\n", "t.yaml:2:9: listen.port: must be between 1 and 65535");
    expect_error("listen:\n  port: 65536\n",
                 "t.yaml:2:9: listen.port: must be between 1 and 65535");
    expect_error("listen:\n  port: -1\n", "t.yaml:2:9: listen.port: must be between 1 and 65535");
    expect_error("listen:\n  port: 99999999999999999999999999\n",
                 "t.yaml:2:9: listen.port: must be between 1 and 65535");
    expect_error("limits:\n  heartbeat: 3601\n",
                 "t.yaml:2:14: limits.heartbeat: must be between 0 and 3600");
    expect_error("limits:\n  max_inflight_bytes: 1048575\n",
                 "t.yaml:2:23: limits.max_inflight_bytes: must be between 1048576 and "
                 "17179869184");
    expect_error("limits:\n  max_inflight_bytes: 17179869185\n",
                 "t.yaml:2:23: limits.max_inflight_bytes: must be between 1048576 and "
                 "17179869184");
    expect_error("kafka:\n  replication_factor: 32768\n",
                 "t.yaml:2:23: kafka.replication_factor: must be between 1 and 32767");
}

static void test_duplicates(void **state)
{
    expect_error("listen:\n  port: 1\nlisten:\n  port: 2\n",
                 "t.yaml:3:1: listen: duplicate key (first at line 1)");
    expect_error("limits:\n  heartbeat: 1\n  frame_max: 4096\n  heartbeat: 2\n",
                 "t.yaml:4:3: limits.heartbeat: duplicate key (first at line 2)");
    expect_error("routes:\n  - exchange: a\n    topic: b\n    topic: c\n",
                 "t.yaml:4:5: routes[0].topic: duplicate key (first at line 3)");
    expect_error("kafka:\n  properties:\n    a: 1\n    b: 2\n    a: 3\n",
                 "t.yaml:5:5: kafka.properties.a: duplicate key (first at line 3)");
    expect_error("users:\n  - {name: a, password: x}\n  - {name: b, password: x}\n"
                 "  - {name: a, password: y}\n",
                 "t.yaml:4:12: users[2].name: duplicate user (first at line 2)");
    expect_error("vhosts: [/, a, /]\n",
                 "t.yaml:1:16: vhosts[2]: duplicate vhost (first at line 1)");
    expect_error("exchanges:\n  - name: x\n  - name: x\n    vhost: /\n",
                 "t.yaml:3:11: exchanges[1].name: duplicate exchange in its vhost (first at line "
                 "2)");
}

static void test_routes(void **state)
{
    expect_error("routes:\n  - {exchange: a, topic: ok}\n  - exchange: a\n    topic: bad topic\n",
                 "t.yaml:4:12: routes[1].topic: may only contain a-z, A-Z, 0-9, '.', '_' and '-' "
                 "(Kafka topic name)");
    expect_error("routes:\n  - {exchange: a, topic: ok}\n  - exchange: a\n    topic: \"\"\n",
                 "t.yaml:4:12: routes[1].topic: must not be empty");
    expect_error("routes:\n  - {exchange: a, topic: ..}\n",
                 "t.yaml:2:26: routes[0].topic: must not be \".\" or \"..\"");
    expect_error("routes:\n  - {exchange: a, topic: \"a\\0b\"}\n",
                 "t.yaml:2:26: routes[0].topic: must not contain NUL characters");
    char long_topic[400];
    snprintf(long_topic, sizeof long_topic, "routes:\n  - {exchange: a, topic: %0250d}\n", 7);
    expect_error(long_topic, "t.yaml:2:26: routes[0].topic: must be at most 249 characters "
                             "(Kafka's limit)");
    expect_error(
        "routes:\n  - exchange: a\n    topic: t\n    key: partition\n",
        "t.yaml:4:10: routes[0].key: must be routing_key, message_id, none or header:NAME");
    expect_error("routes:\n  - exchange: a\n    topic: t\n    key: \"header:\"\n",
                 "t.yaml:4:10: routes[0].key: header:NAME needs a non-empty NAME");
    expect_error("routes:\n  - exchange: a\n    routing_key: x\n",
                 "t.yaml:2:5: routes[0].topic: is required");
    expect_error("routes:\n  - topic: t\n", "t.yaml:2:5: routes[0].exchange: is required");
    expect_error("routes:\n  - exchange:\n    topic: t\n",
                 "t.yaml:2:5: routes[0].exchange: is required");
}

static void test_exchanges(void **state)
{
    expect_error("exchanges:\n  - name: amq.topic\n",
                 "t.yaml:2:11: exchanges[0].name: must not start with \"amq.\" (reserved by AMQP)");
    expect_error("exchanges:\n  - type: topic\n", "t.yaml:2:5: exchanges[0].name: is required");
    expect_error("exchanges:\n  - name: \"\"\n",
                 "t.yaml:2:11: exchanges[0].name: must not be empty");
    expect_error("exchanges:\n  - name: x\n    vhost: prod\n",
                 "t.yaml:3:12: exchanges[0].vhost: is not listed in vhosts");
    /* vhosts may come after the exchanges that use them */
    struct config *cfg = load_ok("exchanges:\n  - {name: x, vhost: prod}\nvhosts: [prod]\n");
    assert_string_equal(cfg->exchanges[0].vhost, "prod");
    config_free(cfg);
    expect_error("vhosts: [prod]\nexchanges:\n  - name: x\n",
                 "t.yaml:3:5: exchanges[0].vhost: the default vhost \"/\" is not listed in vhosts");
}

static void test_users_vhosts(void **state)
{
    expect_error("users:\n  - name: a\n", "t.yaml:2:5: users[0].password: is required");
    expect_error("users:\n  - name: a\n    password:\n",
                 "t.yaml:3:5: users[0].password: is required");
    expect_error("users:\n  - {name: \"\", password: x}\n",
                 "t.yaml:2:12: users[0].name: must not be empty");
    expect_error("users: []\n", "t.yaml:1:8: users: must list at least one user");
    expect_error("vhosts: []\n", "t.yaml:1:9: vhosts: must list at least one vhost");
    expect_error("vhosts: [a, \"\"]\n", "t.yaml:1:13: vhosts[1]: must not be empty");
    expect_error("vhosts:\n  - a\n  -\n", "t.yaml:3:4: vhosts[1]: must not be empty");
}

static void test_kafka(void **state)
{
    expect_error("kafka:\n  replication_factor: 3\n  min_insync_replicas: 4\n",
                 "t.yaml:3:24: kafka.min_insync_replicas: must not exceed "
                 "kafka.replication_factor (3)");
    expect_error("kafka:\n  replication_factor: 1\n",
                 "t.yaml:2:23: kafka.replication_factor: must be at least "
                 "kafka.min_insync_replicas (2, the default)");
    expect_error("kafka:\n  properties:\n    acks: 1\n",
                 "t.yaml:3:11: kafka.properties.acks: must be all: confirms mean the record is on "
                 "min.insync.replicas");
    expect_error("kafka:\n  properties:\n    enable.idempotence: false\n",
                 "t.yaml:3:25: kafka.properties.enable.idempotence: must be true: retries must "
                 "not duplicate records");
    expect_error("kafka:\n  properties:\n    bootstrap.servers: x:9092\n",
                 "t.yaml:3:24: kafka.properties.bootstrap.servers: use kafka.bootstrap_servers");
    expect_error("kafka:\n  properties:\n    sticky.partitioning.linger.ms: 10\n",
                 "t.yaml:3:36: kafka.properties.sticky.partitioning.linger.ms: must be 0: hopper "
                 "spreads keyless messages over partitions itself");
    expect_error("kafka:\n  properties:\n    partitioner: murmur3\n",
                 "t.yaml:3:18: kafka.properties.partitioner: unknown partitioner (murmur2_random, "
                 "murmur2, consistent_random, consistent, fnv1a_random, fnv1a or random)");
    expect_error("kafka:\n  properties:\n    linger.ms:\n",
                 "t.yaml:3:5: kafka.properties.linger.ms: needs a value");
    expect_error("kafka:\n  properties:\n    \"\": 1\n",
                 "t.yaml:3:5: kafka.properties: property names must not be empty");
    expect_error("kafka:\n  topic_prefix: \"a b\"\n",
                 "t.yaml:2:17: kafka.topic_prefix: may only contain a-z, A-Z, 0-9, '.', '_' and "
                 "'-' (Kafka topic name)");
    expect_error("kafka:\n  bootstrap_servers: \"\"\n",
                 "t.yaml:2:22: kafka.bootstrap_servers: must not be empty");
}

static void test_listen_address(void **state)
{
    const char *good[] = {"127.0.0.1", "0.0.0.0", "::", "fe80::1", "localhost", "kafka-1.example"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "listen:\n  address: \"%s\"\n", good[i]);
        struct config *cfg = load_ok(text);
        assert_string_equal(cfg->listen_address, good[i]);
        config_free(cfg);
    }
    const char *bad[] = {"", "[::1]", "1.2.3.256", "-host", "host-", "a..b", "a b", "host:5672"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "listen:\n  address: \"%s\"\n", bad[i]);
        expect_error(text, *bad[i] ? "t.yaml:2:12: listen.address: must be an IPv4 address, an "
                                     "IPv6 address (no brackets) or a host name"
                                   : "t.yaml:2:12: listen.address: must not be empty");
    }
}

static void test_booleans(void **state)
{
    const char *yes[] = {"true", "True", "TRUE", "yes", "Yes", "on", "ON"};
    const char *no[] = {"false", "False", "no", "NO", "off", "Off"};
    char text[64];
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        snprintf(text, sizeof text, "default_route: false\nkafka: {auto_create_topics: %s}\n",
                 yes[i]);
        struct config *cfg = load_ok(text);
        assert_true(cfg->auto_create_topics);
        config_free(cfg);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        snprintf(text, sizeof text, "default_route: %s\n", no[i]);
        struct config *cfg = load_ok(text);
        assert_false(cfg->default_route);
        config_free(cfg);
    }
}

static void test_yaml_errors(void **state)
{
    expect_error("listen:\n  port: 1\n bad: 2\n",
                 "t.yaml:3:2: yaml: did not find expected key (while parsing a block mapping at "
                 "line 1)");
    expect_error("listen:\n  address: \"127.0.0.1\n",
                 "t.yaml:3:1: yaml: found unexpected end of stream (while scanning a quoted "
                 "scalar at line 2)");
    expect_error("listen:\n\tport: 1\n",
                 "t.yaml:2:1: yaml: found character that cannot start any token (while scanning "
                 "for the next token at line 2)");
    expect_error("users: *nobody\n", "t.yaml:1:8: yaml: found undefined alias");
    expect_error("listen:\n  port: 1\n---\nlisten:\n  port: 2\n",
                 "t.yaml:4:1: yaml: a config file holds a single document");
    /* invalid UTF-8 and NUL bytes are placed by counting to their offset */
    expect_error("listen:\n  address: \"\xff\"\n",
                 "t.yaml:2:13: yaml: invalid leading UTF-8 octet");
    check_error("vhosts: [a]\nx: \0\n", 16, "t.yaml:2:4: yaml: control characters are not allowed");
}

static const char queues_yaml[] = "vhosts: [/, prod]\n"
                                  "queues:\n"
                                  "  - name: billing-events\n"
                                  "    vhost: /\n"
                                  "    topics: [billing.events]\n"
                                  "    message_id: key\n"
                                  "  - name: billing-events\n" /* same name, other vhost */
                                  "    vhost: prod\n"
                                  "    topics:\n"
                                  "      - billing.events\n" /* a topic may feed several queues */
                                  "      - billing.refunds\n"
                                  "    message_id: none\n"
                                  "  - {name: audit, topics: audit.log}\n"
                                  "  - name: \"legacy/worker \u00e9\"\n"
                                  "    topics: [a, b, c]\n"
                                  "    message_id:\n";

static void test_queues(void **state)
{
    struct config *cfg = load_ok(queues_yaml);
    assert_int_equal(cfg->n_queues, 4);

    const struct queue_cfg *q = &cfg->queues[0];
    assert_string_equal(q->name, "billing-events");
    assert_string_equal(q->vhost, "/");
    assert_int_equal(q->n_topics, 1);
    assert_string_equal(q->topics[0], "billing.events");
    assert_true(q->key_as_message_id);
    assert_int_equal(q->line, 3);

    q = &cfg->queues[1];
    assert_string_equal(q->name, "billing-events");
    assert_string_equal(q->vhost, "prod");
    assert_int_equal(q->n_topics, 2);
    assert_string_equal(q->topics[0], "billing.events");
    assert_string_equal(q->topics[1], "billing.refunds");
    assert_false(q->key_as_message_id);
    assert_int_equal(q->line, 7);

    /* defaults; a single string is a list of one topic */
    q = &cfg->queues[2];
    assert_string_equal(q->name, "audit");
    assert_string_equal(q->vhost, "/");
    assert_int_equal(q->n_topics, 1);
    assert_string_equal(q->topics[0], "audit.log");
    assert_false(q->key_as_message_id);
    assert_int_equal(q->line, 13);

    /* AMQP queue names are any bytes but NUL; an empty message_id is none */
    q = &cfg->queues[3];
    assert_string_equal(q->name, "legacy/worker \xc3\xa9");
    assert_int_equal(q->n_topics, 3);
    assert_string_equal(q->topics[2], "c");
    assert_false(q->key_as_message_id);
    config_free(cfg);

    /* vhosts may come after the queues that use them; queues: [] is none */
    cfg = load_ok("queues:\n  - {name: q, vhost: prod, topics: t}\nvhosts: [prod]\n");
    assert_string_equal(cfg->queues[0].vhost, "prod");
    config_free(cfg);
    cfg = load_ok("queues: []\n");
    assert_int_equal(cfg->n_queues, 0);
    config_free(cfg);

    /* the limits themselves are fine */
    char text[1200];
    int n = snprintf(text, sizeof text, "queues:\n  - name: %0255d\n    topics: [t0", 7);
    for (int i = 1; i < 64; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, ", t%d", i);
    snprintf(text + n, sizeof text - (size_t)n, "]\n");
    cfg = load_ok(text);
    assert_int_equal(strlen(cfg->queues[0].name), 255);
    assert_int_equal(cfg->queues[0].n_topics, 64);
    assert_string_equal(cfg->queues[0].topics[63], "t63");
    config_free(cfg);
}

static void test_queue_errors(void **state)
{
    expect_error("queues: {name: a}\n", "t.yaml:1:9: queues: must be a list");
    expect_error("queues:\n  - a\n", "t.yaml:2:5: queues[0]: must be a mapping");
    expect_error("queues:\n  - name: a\n    topics: t\n    group: g\n",
                 "t.yaml:4:5: queues[0].group: unknown key");
    expect_error("queues:\n  - name: a\n    topics: t\n    topics: u\n",
                 "t.yaml:4:5: queues[0].topics: duplicate key (first at line 3)");

    /* name */
    expect_error("queues:\n  - topics: t\n", "t.yaml:2:5: queues[0].name: is required");
    expect_error("queues:\n  - name:\n    topics: t\n", "t.yaml:2:5: queues[0].name: is required");
    expect_error("queues:\n  - {name: \"\", topics: t}\n",
                 "t.yaml:2:12: queues[0].name: must not be empty");
    expect_error("queues:\n  - name: amq.gen-1\n    topics: t\n",
                 "t.yaml:2:11: queues[0].name: must not start with \"amq.\" (reserved by AMQP)");
    expect_error("queues:\n  - name: \"a\\0b\"\n    topics: t\n",
                 "t.yaml:2:11: queues[0].name: must not contain NUL characters");
    expect_error("queues:\n  - name: [a]\n    topics: t\n",
                 "t.yaml:2:11: queues[0].name: must be a string");
    char long_name[400];
    snprintf(long_name, sizeof long_name, "queues:\n  - name: %0256d\n    topics: t\n", 7);
    expect_error(long_name, "t.yaml:2:11: queues[0].name: must be at most 255 bytes");

    /* vhost */
    expect_error("queues:\n  - name: a\n    vhost: prod\n    topics: t\n",
                 "t.yaml:3:12: queues[0].vhost: is not listed in vhosts");
    expect_error("vhosts: [prod]\nqueues:\n  - name: a\n    topics: t\n",
                 "t.yaml:3:5: queues[0].vhost: the default vhost \"/\" is not listed in vhosts");
    expect_error("queues:\n  - name: a\n    vhost: \"/\\0\"\n    topics: t\n",
                 "t.yaml:3:12: queues[0].vhost: must not contain NUL characters");

    /* duplicate (vhost, name), reported at the second */
    expect_error("queues:\n  - {name: a, topics: t}\n  - {name: b, topics: t}\n"
                 "  - name: a\n    vhost: /\n    topics: u\n",
                 "t.yaml:4:11: queues[2].name: duplicate queue in its vhost (first at line 2)");

    /* topics, the list and the single-string form */
    expect_error("queues:\n  - name: a\n", "t.yaml:2:5: queues[0].topics: is required");
    expect_error("queues:\n  - name: a\n    topics:\n",
                 "t.yaml:3:5: queues[0].topics: is required");
    expect_error("queues:\n  - name: a\n    topics: []\n",
                 "t.yaml:3:13: queues[0].topics: must list at least one topic");
    expect_error("queues:\n  - name: a\n    topics: {a: 1}\n",
                 "t.yaml:3:13: queues[0].topics: must be a topic name or a list of them");
    expect_error("queues:\n  - name: a\n    topics: \"a b\"\n",
                 "t.yaml:3:13: queues[0].topics: may only contain a-z, A-Z, 0-9, '.', '_' and '-' "
                 "(Kafka topic name)");
    expect_error("queues:\n  - name: a\n    topics: \"\"\n",
                 "t.yaml:3:13: queues[0].topics: must not be empty");
    expect_error("queues:\n  - name: a\n    topics: \"a\\0b\"\n",
                 "t.yaml:3:13: queues[0].topics: must not contain NUL characters");
    expect_error("queues:\n  - name: a\n    topics: [ok, \"a/b\"]\n",
                 "t.yaml:3:18: queues[0].topics[1]: may only contain a-z, A-Z, 0-9, '.', '_' and "
                 "'-' (Kafka topic name)");
    expect_error("queues:\n  - name: a\n    topics: [ok, ..]\n",
                 "t.yaml:3:18: queues[0].topics[1]: must not be \".\" or \"..\"");
    expect_error("queues:\n  - name: a\n    topics: [\"a\\0b\"]\n",
                 "t.yaml:3:14: queues[0].topics[0]: must not contain NUL characters");
    expect_error("queues:\n  - name: a\n    topics: [[a]]\n",
                 "t.yaml:3:14: queues[0].topics[0]: must be a string");
    expect_error("queues:\n  - name: a\n    topics:\n      - a\n      -\n",
                 "t.yaml:5:8: queues[0].topics[1]: must not be empty");
    char long_topic[400];
    snprintf(long_topic, sizeof long_topic, "queues:\n  - name: a\n    topics: [%0250d]\n", 7);
    expect_error(long_topic, "t.yaml:3:14: queues[0].topics[0]: must be at most 249 characters "
                             "(Kafka's limit)");
    char many[1200];
    int n = snprintf(many, sizeof many, "queues:\n  - name: a\n    topics: [t0");
    for (int i = 1; i < 65; i++)
        n += snprintf(many + n, sizeof many - (size_t)n, ", t%d", i);
    snprintf(many + n, sizeof many - (size_t)n, "]\n");
    expect_error(many, "t.yaml:3:13: queues[0].topics: must list at most 64 topics");
    expect_error("queues:\n  - name: a\n    topics:\n      - a\n      - b\n      - a\n",
                 "t.yaml:6:9: queues[0].topics[2]: duplicate topic (first at line 4)");
    expect_error("queues:\n  - name: a\n    topics: [a, b, a]\n",
                 "t.yaml:3:20: queues[0].topics[2]: duplicate topic (first at line 3)");

    /* message_id */
    expect_error("queues:\n  - name: a\n    topics: t\n    message_id: id\n",
                 "t.yaml:4:17: queues[0].message_id: must be key or none");
    expect_error("queues:\n  - name: a\n    topics: t\n    message_id: Key\n",
                 "t.yaml:4:17: queues[0].message_id: must be key or none");
    expect_error("queues:\n  - name: a\n    topics: t\n    message_id: \"key\\0\"\n",
                 "t.yaml:4:17: queues[0].message_id: must be key or none");
    expect_error("queues:\n  - name: a\n    topics: t\n    message_id: [key]\n",
                 "t.yaml:4:17: queues[0].message_id: must be key or none");
}

/* queues[].topics takes exactly the names the router calls legal. */
static void test_queue_topics_as_router(void **state)
{
    char t249[250], t250[251];
    memset(t249, 'x', sizeof t249 - 1);
    t249[sizeof t249 - 1] = '\0';
    memset(t250, 'y', sizeof t250 - 1);
    t250[sizeof t250 - 1] = '\0';
    const char *names[] = {"orders", "a.b_c-D9", "...", "-",   "_",   ".x",          t249, t250,
                           ".",      "..",       "a b", "a/b", "a:b", "caf\xc3\xa9", "a*", "A#"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char text[400];
        struct config *cfg = NULL;
        snprintf(text, sizeof text, "queues:\n  - name: q\n    topics: \"%s\"\n", names[i]);
        int rc = config_load_string("t.yaml", text, strlen(text), &cfg, err, sizeof err);
        if ((rc == 0) != router_topic_valid(names[i], strlen(names[i])))
            fail_msg("topic \"%s\": config says %s, router says the opposite", names[i],
                     rc == 0 ? "legal" : err);
        config_free(cfg);
    }
}

/* Anchors and aliases are plain YAML and work; merge keys are not YAML 1.2. */
static void test_aliases(void **state)
{
    struct config *cfg = load_ok("vhosts: [&v /]\nexchanges:\n  - {name: a, vhost: *v}\n");
    assert_string_equal(cfg->exchanges[0].vhost, "/");
    config_free(cfg);
    expect_error("base: &b {exchange: a}\n", "t.yaml:1:1: base: unknown key");
}

#define REG "registry:\n  url: http://127.0.0.1:8081/apis/ccompat/v7\n"

static void test_contracts(void **state)
{
    struct config *cfg = load_ok(REG "routes:\n"
                                     "  - exchange: a\n"
                                     "    topic: t\n"
                                     "    contract: {}\n"
                                     "  - exchange: b\n"
                                     "    topic: u\n"
                                     "    contract:\n"
                                     "      subject: orders-v\n"
                                     "      format: avro\n"
                                     "      version: 3\n"
                                     "      on_violation: dead_letter\n"
                                     "      dead_letter_topic: bad-orders\n"
                                     "exchanges:\n"
                                     "  - name: x\n"
                                     "    contract: {format: json, encode: confluent}\n");
    assert_string_equal(cfg->registry_url, "http://127.0.0.1:8081/apis/ccompat/v7");
    assert_int_equal(cfg->registry_timeout_ms, 5000);
    assert_int_equal(cfg->registry_cache_ms, 30000);
    assert_int_equal(cfg->registry_wait_ms, 5000);
    const struct contract_cfg *k = cfg->routes[0].contract;
    assert_non_null(k);
    assert_null(k->subject);
    assert_int_equal(k->format, CONTRACT_ANY);
    assert_int_equal(k->version, 0);
    assert_false(k->confluent);
    assert_false(k->dead_letter);
    assert_int_equal(k->line, 6);
    k = cfg->routes[1].contract;
    assert_string_equal(k->subject, "orders-v");
    assert_int_equal(k->format, CONTRACT_AVRO);
    assert_int_equal(k->version, 3);
    assert_true(k->confluent); /* Avro is always framed */
    assert_true(k->dead_letter);
    assert_string_equal(k->dead_letter_topic, "bad-orders");
    assert_int_equal(k->line, 10);
    assert_int_equal(k->column, 7);
    k = cfg->exchanges[0].contract;
    assert_int_equal(k->format, CONTRACT_JSON);
    assert_true(k->confluent);
    assert_null(cfg->routes[0].contract->dead_letter_topic);
    config_free(cfg);
}

static void test_contract_errors(void **state)
{
    expect_error("routes:\n  - {exchange: a, topic: t, contract: {}}\n",
                 "t.yaml:2:39: routes[0].contract: needs registry.url (the schema registry to "
                 "read it from)");
    expect_error("exchanges:\n  - {name: x, contract: {}}\n",
                 "t.yaml:2:25: exchanges[0].contract: needs registry.url (the schema registry "
                 "to read it from)");
    expect_error(REG "routes:\n  - {exchange: a, topic: t, contract: {format: xml}}\n",
                 "t.yaml:4:48: routes[0].contract.format: must be json or avro");
    expect_error(REG "routes:\n  - {exchange: a, topic: t, contract: {version: 0}}\n",
                 "t.yaml:4:49: routes[0].contract.version: must be latest or a version number "
                 "(1 or more)");
    expect_error(REG "routes:\n  - {exchange: a, topic: t, contract: {version: newest}}\n",
                 "t.yaml:4:49: routes[0].contract.version: must be latest or a version number "
                 "(1 or more)");
    expect_error(REG "routes:\n  - {exchange: a, topic: t, contract: {format: avro, encode: "
                     "none}}\n",
                 "t.yaml:4:62: routes[0].contract.encode: must be confluent for avro (Avro "
                 "binary is unreadable without its schema id)");
    expect_error(REG "routes:\n  - {exchange: a, topic: t, contract: {on_violation: drop}}\n",
                 "t.yaml:4:54: routes[0].contract.on_violation: must be reject or dead_letter");
    expect_error(REG "routes:\n  - {exchange: a, topic: t, contract: {dead_letter_topic: d}}\n",
                 "t.yaml:4:40: routes[0].contract.dead_letter_topic: needs on_violation: "
                 "dead_letter");
    expect_error(REG "routes:\n  - {exchange: a, topic: t, contract: {on_violation: "
                     "dead_letter, dead_letter_topic: 'a b'}}\n",
                 "t.yaml:4:86: routes[0].contract.dead_letter_topic: may only contain a-z, "
                 "A-Z, 0-9, '.', '_' and '-' (Kafka topic name)");
    expect_error(REG "routes:\n  - {exchange: a, topic: t, contract: {subject: ''}}\n",
                 "t.yaml:4:49: routes[0].contract.subject: must not be empty");
    expect_error(REG "routes:\n  - {exchange: a, topic: t, contract: {subjekt: x}}\n",
                 "t.yaml:4:40: routes[0].contract.subjekt: unknown key");
    expect_error("registry:\n  url: https://r:8081/\n",
                 "t.yaml:2:8: registry.url: https is not supported yet: use http (the registry "
                 "on loopback, or a local TLS proxy)");
    expect_error("registry:\n  url: r:8081\n",
                 "t.yaml:2:8: registry.url: must be an http URL, http://HOST[:PORT][/PATH]");
    expect_error("registry:\n  url: http://r/a b\n",
                 "t.yaml:2:8: registry.url: must be an http URL without spaces, query or "
                 "fragment");
    expect_error("registry:\n  wait: -1\n",
                 "t.yaml:2:9: registry.wait: must be between 0 and 600000");
}

/* kafka.auto_create_topics: true, false or a list of patterns; and its cap. */
static void test_auto_create_topics(void **state)
{
    struct config *cfg = load_ok("kafka:\n"
                                 "  auto_create_topics:\n"
                                 "    - orders.*\n"
                                 "    - \"celery*\"\n"
                                 "    - events-topic\n"
                                 "  auto_create_max: 0\n");
    assert_true(cfg->auto_create_topics);
    assert_int_equal(cfg->n_create_patterns, 3);
    assert_string_equal(cfg->create_patterns[0], "orders.*");
    assert_string_equal(cfg->create_patterns[1], "celery*");
    assert_string_equal(cfg->create_patterns[2], "events-topic");
    assert_int_equal(cfg->auto_create_max, 0);
    config_free(cfg);

    cfg = load_ok("kafka: {auto_create_topics: [\"*\"], auto_create_max: 1000000}\n");
    assert_int_equal(cfg->n_create_patterns, 1);
    assert_int_equal(cfg->auto_create_max, 1000000);
    config_free(cfg);

    cfg = load_ok("kafka: {auto_create_topics: false}\n");
    assert_false(cfg->auto_create_topics);
    assert_int_equal(cfg->n_create_patterns, 0);
    config_free(cfg);

    /* Empty means absent: the default, any topic. */
    cfg = load_ok("kafka: {auto_create_topics: ~}\n");
    assert_true(cfg->auto_create_topics);
    assert_int_equal(cfg->n_create_patterns, 0);
    config_free(cfg);

    expect_error("kafka:\n  auto_create_topics: maybe\n",
                 "t.yaml:2:23: kafka.auto_create_topics: must be true, false or a list of topic "
                 "name patterns");
    expect_error("kafka:\n  auto_create_topics: \"true\"\n",
                 "t.yaml:2:23: kafka.auto_create_topics: must be true, false or a list of topic "
                 "name patterns");
    expect_error("kafka:\n  auto_create_topics: {a: b}\n",
                 "t.yaml:2:23: kafka.auto_create_topics: must be true, false or a list of topic "
                 "name patterns");
    expect_error("kafka:\n  auto_create_topics: []\n",
                 "t.yaml:2:23: kafka.auto_create_topics: must list at least one pattern (false "
                 "allows none)");
    expect_error("kafka:\n  auto_create_topics:\n    - a\n    -\n",
                 "t.yaml:4:6: kafka.auto_create_topics[1]: must not be empty");
    expect_error("kafka:\n  auto_create_topics: [\"\"]\n",
                 "t.yaml:2:24: kafka.auto_create_topics[0]: must not be empty");
    expect_error("kafka:\n  auto_create_topics: [\"orders/*\"]\n",
                 "t.yaml:2:24: kafka.auto_create_topics[0]: may only contain a-z, A-Z, 0-9, '.', "
                 "'_', '-' (Kafka topic name) and '*' (any run of characters)");
    expect_error("kafka:\n  auto_create_topics: [\"..\"]\n",
                 "t.yaml:2:24: kafka.auto_create_topics[0]: must not be \".\" or \"..\"");
    expect_error("kafka:\n  auto_create_topics: [[a]]\n",
                 "t.yaml:2:24: kafka.auto_create_topics[0]: must be a string");
    expect_error("kafka:\n  auto_create_topics:\n    - a*\n    - b\n    - a*\n",
                 "t.yaml:5:7: kafka.auto_create_topics[2]: duplicate pattern (first at line 3)");
    char text[400], want[200];
    snprintf(text, sizeof text, "kafka:\n  auto_create_topics: [%0250d]\n", 0);
    snprintf(want, sizeof want,
             "t.yaml:2:24: kafka.auto_create_topics[0]: must be at most 249 characters (Kafka's "
             "limit on topic names)");
    expect_error(text, want);
    snprintf(text, sizeof text, "kafka:\n  auto_create_topics: [%0249d]\n", 0);
    config_free(load_ok(text));
    expect_error("kafka:\n  auto_create_max: -1\n",
                 "t.yaml:2:20: kafka.auto_create_max: must be between 0 and 1000000");
    expect_error("kafka:\n  auto_create_max: 1000001\n",
                 "t.yaml:2:20: kafka.auto_create_max: must be between 0 and 1000000");
    expect_error("kafka:\n  auto_create_topics: true\n  auto_create_topics: false\n",
                 "t.yaml:3:3: kafka.auto_create_topics: duplicate key (first at line 2)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_shipped),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_exchanges),
        cmocka_unit_test(test_users_vhosts),
        cmocka_unit_test(test_kafka),
        cmocka_unit_test(test_listen_address),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_queues),
        cmocka_unit_test(test_queue_errors),
        cmocka_unit_test(test_queue_topics_as_router),
        cmocka_unit_test(test_contracts),
        cmocka_unit_test(test_contract_errors),
        cmocka_unit_test(test_auto_create_topics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
