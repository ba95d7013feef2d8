/* test_bridge.c - the bridge's pure parts: rabbit.upstream in config.c
 * (defaults, a full entry, every error with its position), the reconnect
 * backoff, and tagmap.c against a naive model. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "config.h"
#include "rng.h"
#include "tagmap.h"

static char err[512];

static struct config *load_ok(const char *text)
{
    struct config *cfg = NULL;
    err[0] = '\0';
    if (config_load_string("t.yaml", text, strlen(text), &cfg, err, sizeof err) != 0)
        fail_msg("unexpected error: %s", err);
    return cfg;
}

static void expect_error(const char *text, const char *want)
{
    struct config *cfg = (struct config *)1;
    err[0] = '\0';
    assert_int_equal(config_load_string("t.yaml", text, strlen(text), &cfg, err, sizeof err), -1);
    assert_null(cfg);
    assert_string_equal(err, want);
}

static void test_defaults(void **state)
{
    struct config *cfg = load_ok("rabbit:\n"
                                 "  upstream:\n"
                                 "    - name: orders\n"
                                 "      nodes: [amqp://guest:guest@127.0.0.1:5672/]\n"
                                 "      queue: orders\n");
    assert_int_equal(cfg->n_upstreams, 1);
    const struct upstream_cfg *u = &cfg->upstreams[0];
    assert_string_equal(u->name, "orders");
    assert_int_equal(u->n_nodes, 1);
    assert_string_equal(u->queue, "orders");
    assert_int_equal(u->n_taps, 0);
    assert_int_equal(u->prefetch, 1000);
    assert_int_equal(u->heartbeat, 60);
    assert_int_equal(u->reconnect_min_ms, 500);
    assert_int_equal(u->reconnect_max_ms, 30000);
    assert_string_equal(u->vhost_route, "/");
    assert_null(u->tls_ca_file);
    assert_true(u->tls_verify);
    assert_int_equal(u->line, 3);
    char q[300];
    config_tap_queue(u, q, sizeof q);
    assert_string_equal(q, "hopper.tap.orders");
    config_free(cfg);

    cfg = load_ok("vhosts: [/]\n");
    assert_int_equal(cfg->n_upstreams, 0);
    assert_null(cfg->upstreams);
    config_free(cfg);
}

static void test_full(void **state)
{
    struct config *cfg =
        load_ok("vhosts: [/, legacy]\n"
                "rabbit:\n"
                "  enabled: true\n"
                "  upstream:\n"
                "    - name: a.b_c-1\n"
                "      nodes:\n"
                "        - amqps://u:p@rabbit1:5671/prod\n"
                "        - amqps://u:p@rabbit2:5671/prod\n"
                "      tap:\n"
                "        - {exchange: orders, routing_key: 'eu.#'}\n"
                "        - exchange: audit\n"
                "      prefetch: 20\n"
                "      heartbeat: 0\n"
                "      reconnect_min: 10\n"
                "      reconnect_max: 10\n"
                "      vhost_route: legacy\n"
                "      tls: {ca_file: /ca.pem, cert_file: /c.pem, key_file: /k.pem,"
                " verify: false}\n"
                "    - name: second\n"
                "      nodes: ['amqp://localhost']\n"
                "      queue: q\n");
    assert_int_equal(cfg->n_upstreams, 2);
    const struct upstream_cfg *u = &cfg->upstreams[0];
    assert_int_equal(u->n_nodes, 2);
    assert_string_equal(u->nodes[1], "amqps://u:p@rabbit2:5671/prod");
    assert_null(u->queue);
    assert_int_equal(u->n_taps, 2);
    assert_string_equal(u->taps[0].exchange, "orders");
    assert_string_equal(u->taps[0].routing_key, "eu.#");
    assert_string_equal(u->taps[1].exchange, "audit");
    assert_string_equal(u->taps[1].routing_key, "#");
    assert_int_equal(u->prefetch, 20);
    assert_int_equal(u->heartbeat, 0);
    assert_int_equal(u->reconnect_min_ms, 10);
    assert_int_equal(u->reconnect_max_ms, 10);
    assert_string_equal(u->vhost_route, "legacy");
    assert_string_equal(u->tls_ca_file, "/ca.pem");
    assert_string_equal(u->tls_cert_file, "/c.pem");
    assert_string_equal(u->tls_key_file, "/k.pem");
    assert_false(u->tls_verify);
    assert_string_equal(cfg->upstreams[1].queue, "q");
    config_free(cfg);
}

#define UP "rabbit:\n  upstream:\n    - name: x\n"
#define NODES "      nodes: [amqp://h/]\n"

static void test_errors(void **state)
{
    expect_error("rabbit:\n  upstream: x\n", "t.yaml:2:13: rabbit.upstream: must be a list");
    expect_error("rabbit:\n  upstream:\n    - nodes: [amqp://h/]\n      queue: q\n",
                 "t.yaml:3:7: rabbit.upstream[0].name: is required");
    expect_error("rabbit:\n  upstream:\n    - name: 'a b'\n" NODES "      queue: q\n",
                 "t.yaml:3:13: rabbit.upstream[0].name: may only contain a-z, A-Z, 0-9, '.', '_' "
                 "and '-'");
    expect_error(UP "      queue: q\n", "t.yaml:3:7: rabbit.upstream[0].nodes: is required");
    expect_error(UP "      nodes: amqp://h/\n      queue: q\n",
                 "t.yaml:4:14: rabbit.upstream[0].nodes: must be a list of amqp:// or amqps:// "
                 "URIs");
    expect_error(UP "      nodes: [http://h/]\n      queue: q\n",
                 "t.yaml:4:15: rabbit.upstream[0].nodes[0]: must be an amqp:// or amqps:// URI");
    expect_error(UP "      nodes: ['amqp://h:notaport/']\n      queue: q\n",
                 "t.yaml:4:15: rabbit.upstream[0].nodes[0]: is not a valid URI: "
                 "amqp[s]://[user[:password]@]host[:port][/vhost]");
    expect_error(UP "      nodes: [amqp://h/, amqp://h/]\n      queue: q\n",
                 "t.yaml:4:26: rabbit.upstream[0].nodes[1]: duplicate node (first at line 4)");
    expect_error(UP NODES, "t.yaml:3:7: rabbit.upstream[0]: needs queue (drain an existing queue) "
                           "or tap (bindings)");
    expect_error(UP NODES "      queue: q\n      tap: [{exchange: e}]\n",
                 "t.yaml:6:7: rabbit.upstream[0].tap: cannot go with queue: drain a queue or tap "
                 "exchanges");
    expect_error(UP NODES "      tap: []\n",
                 "t.yaml:5:12: rabbit.upstream[0].tap: must list at least one binding");
    expect_error(UP NODES "      tap: [{routing_key: k}]\n",
                 "t.yaml:5:13: rabbit.upstream[0].tap[0].exchange: is required");
    expect_error(UP NODES "      tap: [{exchange: ''}]\n",
                 "t.yaml:5:24: rabbit.upstream[0].tap[0].exchange: must not be empty (the default "
                 "exchange cannot be bound)");
    expect_error(UP NODES "      tap: [{exchange: e, bogus: 1}]\n",
                 "t.yaml:5:27: rabbit.upstream[0].tap[0].bogus: unknown key");
    expect_error(UP NODES "      queue: q\n      prefetch: 0\n",
                 "t.yaml:6:17: rabbit.upstream[0].prefetch: must be between 1 and 65535");
    expect_error(UP NODES "      queue: q\n      reconnect_min: 2000\n      reconnect_max: 1000\n",
                 "t.yaml:7:22: rabbit.upstream[0].reconnect_max: must be at least reconnect_min "
                 "(2000)");
    expect_error(UP NODES "      queue: q\n      vhost_route: other\n",
                 "t.yaml:6:20: rabbit.upstream[0].vhost_route: is not listed in vhosts");
    expect_error(UP NODES "      queue: q\n      tls: {cert_file: /c}\n",
                 "t.yaml:6:12: rabbit.upstream[0].tls.key_file: is required with cert_file");
    expect_error(UP NODES "      queue: q\n      tls: {verify: maybe}\n",
                 "t.yaml:6:21: rabbit.upstream[0].tls.verify: must be true or false");
    expect_error(UP NODES "      queue: q\n      colour: red\n",
                 "t.yaml:6:7: rabbit.upstream[0].colour: unknown key");
    expect_error(UP NODES "      queue: q\n    - name: x\n" NODES "      queue: r\n",
                 "t.yaml:6:7: rabbit.upstream[1].name: duplicate upstream name (first at line 3)");
}

static void test_backoff(void **state)
{
    /* min doubled per attempt, capped, then jittered within its upper half */
    assert_int_equal(bridge_backoff_ms(100, 1000, 0, 0), 100);
    assert_int_equal(bridge_backoff_ms(100, 1000, 0, 50), 100);
    assert_int_equal(bridge_backoff_ms(100, 1000, 1, 0), 100);
    assert_int_equal(bridge_backoff_ms(100, 1000, 1, 100), 200);
    assert_int_equal(bridge_backoff_ms(100, 1000, 3, 400), 800);
    assert_int_equal(bridge_backoff_ms(100, 1000, 4, 500), 1000);
    assert_int_equal(bridge_backoff_ms(100, 1000, 60, 500), 1000);
    assert_int_equal(bridge_backoff_ms(100, 1000, 1000000, UINT32_MAX), 500 + UINT32_MAX % 501);
    for (unsigned a = 0; a < 40; a++)
        for (uint32_t r = 0; r < 2000; r += 37) {
            uint32_t d = bridge_backoff_ms(10, 3600000, a, r);
            assert_true(d >= 10 && d <= 3600000);
        }
}

/* What a cumulative take handed back: each pair the model holds, in key
 * order. */
struct taken {
    const uint64_t *model;
    uint64_t last;
    long count;
};

static void check_taken(void *arg, uint64_t key, uint64_t value)
{
    struct taken *tk = arg;
    assert_true(key >= tk->last);
    assert_true(tk->model[key] != 0 && tk->model[key] == value);
    tk->last = key + 1;
    tk->count++;
}

/* The map against an array model: puts, single takes and cumulative takes
 * in random order, the bound never exceeded. */
static void test_tagmap_model(void **state)
{
    enum { MAX = 50, TAGS = 20000 };
    struct tagmap m;
    tagmap_init(&m, MAX);
    static uint64_t model[TAGS + 1]; /* 0: absent */
    uint64_t next = 1, floor = 1;
    size_t live = 0;
    rng_state = 7;
    while (next <= TAGS) {
        uint64_t r = rnd_below(10);
        if (r < 5 && live < MAX) {
            assert_int_equal(tagmap_put(&m, next, next * 3 + 1), 0);
            model[next] = next * 3 + 1;
            next++;
            live++;
        } else if (r < 8 && live) {
            uint64_t t = floor + rnd_below(next - floor);
            uint64_t v = 0;
            bool had = model[t] != 0;
            assert_int_equal(tagmap_take(&m, t, &v), had);
            if (had) {
                assert_true(v == model[t]);
                model[t] = 0;
                live--;
            }
        } else if (live) {
            uint64_t upto = floor + rnd_below(next - floor);
            struct taken tk = {model, floor, 0};
            tagmap_take_upto(&m, upto, check_taken, &tk);
            for (uint64_t t = floor; t <= upto; t++)
                if (model[t]) {
                    model[t] = 0;
                    live--;
                    tk.count--;
                }
            assert_int_equal(tk.count, 0);
            floor = upto + 1;
        }
        assert_int_equal(m.n, live);
        if (live == MAX)
            assert_int_equal(tagmap_put(&m, next, 1), -1);
    }
    for (uint64_t t = floor; t < next; t++) {
        uint64_t v;
        assert_int_equal(tagmap_take(&m, t, &v), model[t] != 0);
    }
    assert_int_equal(m.n, 0);
    tagmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_full),
        cmocka_unit_test(test_errors),       cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_tagmap_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
