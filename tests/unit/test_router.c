/* test_router.c - topic-pattern matching (RabbitMQ semantics), topic name
 * validity and the routing rules of router.h. Configs are built by hand so
 * the tests do not depend on config.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "router.h"

struct pattern_case {
    const char *pattern;
    const char *key;
    bool match;
};

/* Expected values follow RabbitMQ's topic exchange: the key "" is zero
 * words, every '.' separates words (so "a." and ".a" are two words). */
static const struct pattern_case pattern_cases[] = {
    {"a.b.c", "a.b.c", true},
    {"a.b.c", "a.b", false},
    {"a.b", "a.b.c", false},
    {"a.b.c", "a.B.c", false},
    {"*", "a", true},
    {"*", "", false}, /* "" has no words */
    {"*", "a.b", false},
    {"*", ".", false}, /* two empty words */
    {"*.*", ".", true},
    {"*.*", "a.b", true},
    {"*.*", "a", false},
    {"#", "", true},
    {"#", "a", true},
    {"#", "a.b.c", true},
    {"#", ".", true},
    {"", "", true},
    {"", "a", false},
    {"a.#", "a", true},
    {"a.#", "a.b.c", true},
    {"a.#", "b.a", false},
    {"a.#", "", false},
    {"#.b", "b", true},
    {"#.b", "x.y.b", true},
    {"#.b", "b.x", false},
    {"#.b", "", false},
    {"a.#.b", "a.b", true},
    {"a.#.b", "a.x.y.b", true},
    {"a.#.b", "a.x.y.c", false},
    {"a.*.b", "a.x.b", true},
    {"a.*.b", "a.b", false},
    {"a.*.b", "a..b", true}, /* the empty middle word is a word */
    {"a..b", "a..b", true},
    {"a..b", "a.b", false},
    {"a.", "a.", true},
    {"a.", "a", false},
    {"a.*", "a.", true},
    {".a", ".a", true},
    {"*.a", ".a", true},
    {"#.#", "", true},
    {"#.#", "a.b", true},
    {"#.*", "", false},
    {"#.*", "a", true},
    {"*.#", "a", true},
    {"#.*.#", "a.b.c", true},
    {"*.#.*", "a", false},
    {"*.#.*", "a.b", true},
    {"#.a.#.b.#", "x.a.y.b.z", true},
    {"#.a.#.b.#", "x.b.y.a.z", false},
    {"#.a.b", "a.b.a.b", true},
    {"#.a.b", "a.b.a.c", false},
    {"a*", "a*", true}, /* wildcards only as whole words */
    {"a*", "ab", false},
    {"#b", "xb", false},
    {"#b", "#b", true},
    {"a.#", "a#", false},
    {"*", "*", true},
    {"#", "#", true},
    {"a", "*", false}, /* a key word '*' is literal */
};

static void test_pattern_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(pattern_cases); i++) {
        const struct pattern_case *c = &pattern_cases[i];
        bool got = router_pattern_match(c->pattern, c->key, strlen(c->key));
        if (got != c->match)
            fail_msg("pattern \"%s\" key \"%s\": got %d want %d", c->pattern, c->key, got,
                     c->match);
    }
}

/* Keys are length-delimited: bytes after rk_len are not read, and a NUL
 * inside the key is an ordinary byte. */
static void test_pattern_uses_length(void **state)
{
    (void)state;
    assert_true(router_pattern_match("a.b", "a.bXXXX", 3));
    assert_false(router_pattern_match("a.b", "a.b.c", 4)); /* "a.b." */
    assert_true(router_pattern_match("a.*", "a.b.c", 3));
    assert_true(router_pattern_match("a.*.*", "a.b.c", 4)); /* last word empty */
    assert_true(router_pattern_match("*", "a\0b", 3));
    assert_false(router_pattern_match("a", "a\0b", 3));
    assert_true(router_pattern_match("#", NULL, 0));
}

/* Inputs on which a backtracking matcher explores exponentially many ways
 * to split the key among the '#'s. With C(60+127, 60) choices such a
 * matcher would never finish; a polynomial one takes microseconds. */
static void test_pattern_pathological(void **state)
{
    (void)state;
    char key[256];
    size_t n = 0;
    for (int i = 0; i < 127; i++)
        n += (size_t)snprintf(key + n, sizeof key - n, i ? ".a" : "a");
    assert_true(n <= 255);

    char pat[1024];
    size_t m = 0;
    for (int i = 0; i < 60; i++)
        m += (size_t)snprintf(pat + m, sizeof pat - m, "#.");
    snprintf(pat + m, sizeof pat - m, "b");
    assert_false(router_pattern_match(pat, key, n));
    snprintf(pat + m, sizeof pat - m, "*");
    assert_true(router_pattern_match(pat, key, n));

    /* Alternating "#.a" segments that almost match, then fail at the end. */
    m = 0;
    for (int i = 0; i < 60; i++)
        m += (size_t)snprintf(pat + m, sizeof pat - m, "#.a.");
    snprintf(pat + m, sizeof pat - m, "b.#");
    assert_false(router_pattern_match(pat, key, n));
    snprintf(pat + m, sizeof pat - m, "#");
    assert_true(router_pattern_match(pat, key, n));

    /* 128 words exactly versus 128 stars: one word too many fails. */
    m = 0;
    for (int i = 0; i < 128; i++)
        m += (size_t)snprintf(pat + m, sizeof pat - m, i ? ".*" : "*");
    assert_false(router_pattern_match(pat, key, n));
    assert_true(router_pattern_match(pat + 2, key, n));
}

/* Reference matcher, the textbook recursion over split words (RabbitMQ's
 * split: "" is no words). Exponential in general, fine for tiny inputs. */
struct words {
    const char *w[8];
    size_t len[8];
    size_t n;
};

static void split_words(const char *s, struct words *out)
{
    out->n = 0;
    if (!*s)
        return;
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);
        out->w[out->n] = s;
        out->len[out->n++] = l;
        if (!dot)
            return;
        s = dot + 1;
    }
}

static bool word_is(const struct words *w, size_t i, const char *lit)
{
    return w->len[i] == strlen(lit) && memcmp(w->w[i], lit, w->len[i]) == 0;
}

static bool ref_match(const struct words *p, size_t pi, const struct words *k, size_t ki)
{
    if (pi == p->n)
        return ki == k->n;
    if (word_is(p, pi, "#")) {
        for (size_t j = ki; j <= k->n; j++)
            if (ref_match(p, pi + 1, k, j))
                return true;
        return false;
    }
    if (ki == k->n)
        return false;
    if (word_is(p, pi, "*") ||
        (p->len[pi] == k->len[ki] && memcmp(p->w[pi], k->w[ki], p->len[pi]) == 0))
        return ref_match(p, pi + 1, k, ki + 1);
    return false;
}

/* Every string of up to `max` words over `alpha`, joined by '.'; index 0 is
 * the empty string (no words). Returns how many were written. */
static size_t all_strings(const char *const *alpha, size_t n_alpha, size_t max, char out[][32])
{
    size_t count = 0;
    out[count++][0] = '\0';
    size_t prev_start = 0, prev_end = 1; /* the strings one word shorter */
    for (size_t len = 1; len <= max; len++) {
        for (size_t i = prev_start; i < prev_end; i++)
            for (size_t a = 0; a < n_alpha; a++)
                snprintf(out[count++], 32, "%s%s%s", out[i], len == 1 ? "" : ".", alpha[a]);
        prev_start = prev_end;
        prev_end = count;
    }
    return count;
}

/* The matcher agrees with the reference on every pattern of up to four
 * words over {a, b, "", *, #} and every key of up to four words over
 * {a, b, ""}. */
static void test_pattern_exhaustive(void **state)
{
    (void)state;
    static const char *const pat_alpha[] = {"a", "b", "", "*", "#"};
    static const char *const key_alpha[] = {"a", "b", ""};
    static char pats[1 + 5 + 25 + 125 + 625][32];
    static char keys[1 + 3 + 9 + 27 + 81][32];
    size_t np = all_strings(pat_alpha, 5, 4, pats);
    size_t nk = all_strings(key_alpha, 3, 4, keys);
    assert_int_equal(np, ARRAY_LEN(pats));
    assert_int_equal(nk, ARRAY_LEN(keys));
    for (size_t i = 0; i < np; i++) {
        struct words pw;
        split_words(pats[i], &pw);
        for (size_t j = 0; j < nk; j++) {
            struct words kw;
            split_words(keys[j], &kw);
            bool want = ref_match(&pw, 0, &kw, 0);
            bool got = router_pattern_match(pats[i], keys[j], strlen(keys[j]));
            if (got != want)
                fail_msg("pattern \"%s\" key \"%s\": got %d want %d", pats[i], keys[j], got, want);
        }
    }
}

static void test_topic_valid(void **state)
{
    (void)state;
    char long_name[251];
    memset(long_name, 'x', sizeof long_name);
    assert_true(router_topic_valid("orders", 6));
    assert_true(router_topic_valid("a.b_c-D9", 8));
    assert_true(router_topic_valid("...", 3));
    assert_true(router_topic_valid(long_name, 249));
    assert_false(router_topic_valid(long_name, 250));
    assert_false(router_topic_valid("", 0));
    assert_false(router_topic_valid(".", 1));
    assert_false(router_topic_valid("..", 2));
    assert_false(router_topic_valid("a b", 3));
    assert_false(router_topic_valid("a/b", 3));
    assert_false(router_topic_valid("a\0b", 3));
    assert_false(router_topic_valid("caf\xc3\xa9", 5));
}

/* A config with the fields the router reads and defaults elsewhere. */
static struct config base_config(void)
{
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.topic_prefix = "";
    cfg.default_route = true;
    return cfg;
}

struct fixture {
    struct config cfg;
    struct router *r;
    struct buf scratch;
    struct route_target out;
};

static enum route_status route(struct fixture *f, const char *vhost, const char *exchange,
                               const char *rk)
{
    memset(&f->out, 0xA5, sizeof f->out); /* catch fields left unset */
    return router_route(f->r, vhost, exchange, strlen(exchange), rk, strlen(rk), &f->scratch,
                        &f->out);
}

static void fixture_done(struct fixture *f)
{
    router_free(f->r);
    buf_free(&f->scratch);
}

static struct route_cfg routes_cfg[] = {
    {.exchange = "events", .pattern = "orders.#", .topic = "orders", .key = KEY_ROUTING_KEY},
    {.exchange = "events", .pattern = "orders.eu.*", .topic = "never-reached", .key = KEY_NONE},
    {.exchange = "events",
     .pattern = "*.created",
     .topic = "created",
     .key = KEY_HEADER,
     .key_header = "tenant"},
    {.exchange = "events", .pattern = "#", .topic = "events-rest", .key = KEY_MESSAGE_ID},
    {.exchange = "", .pattern = "jobs", .topic = "job-queue", .key = KEY_NONE},
    {.exchange = "lit", .pattern = "exact.key", .topic = "lit-topic", .key = KEY_ROUTING_KEY},
    {.exchange = "bad", .pattern = "#", .topic = "no spaces allowed", .key = KEY_ROUTING_KEY},
};

static void test_first_match_in_order(void **state)
{
    (void)state;
    struct fixture f = {.cfg = base_config()};
    f.cfg.routes = routes_cfg;
    f.cfg.n_routes = ARRAY_LEN(routes_cfg);
    f.cfg.default_route = false;
    f.r = router_new(&f.cfg);

    assert_int_equal(route(&f, "/", "events", "orders.eu.fr"), ROUTE_OK);
    assert_string_equal(f.out.topic, "orders"); /* route 0, not route 1 */
    assert_int_equal(f.out.key, KEY_ROUTING_KEY);
    assert_null(f.out.key_header);

    assert_int_equal(route(&f, "/", "events", "user.created"), ROUTE_OK);
    assert_string_equal(f.out.topic, "created");
    assert_int_equal(f.out.key, KEY_HEADER);
    assert_string_equal(f.out.key_header, "tenant");

    assert_int_equal(route(&f, "/", "events", "orders.created"), ROUTE_OK);
    assert_string_equal(f.out.topic, "orders");

    assert_int_equal(route(&f, "/", "events", ""), ROUTE_OK);
    assert_string_equal(f.out.topic, "events-rest");
    assert_int_equal(f.out.key, KEY_MESSAGE_ID);
    assert_null(f.out.key_header);

    assert_int_equal(route(&f, "/", "", "jobs"), ROUTE_OK);
    assert_string_equal(f.out.topic, "job-queue");
    assert_int_equal(f.out.key, KEY_NONE);

    assert_int_equal(route(&f, "/", "lit", "exact.key"), ROUTE_OK);
    assert_string_equal(f.out.topic, "lit-topic");
    assert_int_equal(route(&f, "/", "lit", "exact.keys"), ROUTE_UNROUTABLE);
    assert_int_equal(route(&f, "/", "lit", "exact"), ROUTE_UNROUTABLE);

    /* A route whose topic is not a legal name never produces it. */
    assert_int_equal(route(&f, "/", "bad", "x"), ROUTE_UNROUTABLE);
    assert_null(f.out.topic);

    assert_int_equal(route(&f, "/", "", "jobs.x"), ROUTE_UNROUTABLE);
    fixture_done(&f);
}

static void test_exchange_exact(void **state)
{
    (void)state;
    struct fixture f = {.cfg = base_config()};
    f.cfg.routes = routes_cfg;
    f.cfg.n_routes = ARRAY_LEN(routes_cfg);
    f.cfg.default_route = false;
    f.r = router_new(&f.cfg);

    assert_int_equal(route(&f, "/", "Events", "orders.x"), ROUTE_UNROUTABLE);
    assert_int_equal(route(&f, "/", "event", "orders.x"), ROUTE_UNROUTABLE);
    assert_int_equal(route(&f, "/", "events2", "orders.x"), ROUTE_UNROUTABLE);
    assert_int_equal(route(&f, "/", "li", "exact.key"), ROUTE_UNROUTABLE);

    /* Exchange names come with a length and no NUL: a longer buffer whose
     * prefix is a route's exchange must not match, the exact length must. */
    const char *buf = "eventsXYZ";
    assert_int_equal(router_route(f.r, "/", buf, 6, "orders.a", 8, &f.scratch, &f.out), ROUTE_OK);
    assert_string_equal(f.out.topic, "orders");
    assert_int_equal(router_route(f.r, "/", buf, 9, "orders.a", 8, &f.scratch, &f.out),
                     ROUTE_UNROUTABLE);
    assert_int_equal(router_route(f.r, "/", "events\0", 7, "orders.a", 8, &f.scratch, &f.out),
                     ROUTE_UNROUTABLE);
    /* Routing keys likewise. */
    assert_int_equal(router_route(f.r, "/", "lit", 3, "exact.key.more", 9, &f.scratch, &f.out),
                     ROUTE_OK);
    assert_string_equal(f.out.topic, "lit-topic");
    fixture_done(&f);
}

static void test_default_route_global(void **state)
{
    (void)state;
    struct fixture f = {.cfg = base_config()};
    f.r = router_new(&f.cfg);

    assert_int_equal(route(&f, "/", "billing", "anything.at.all"), ROUTE_OK);
    assert_string_equal(f.out.topic, "billing");
    assert_int_equal(f.out.key, KEY_ROUTING_KEY);
    assert_null(f.out.key_header);
    assert_ptr_equal(f.out.topic, f.scratch.data);

    /* The default exchange publishes to the queue named by the key. */
    assert_int_equal(route(&f, "/", "", "celery"), ROUTE_OK);
    assert_string_equal(f.out.topic, "celery");
    assert_int_equal(route(&f, "/", "", ""), ROUTE_UNROUTABLE); /* empty topic name */
    assert_int_equal(route(&f, "/", "", "no/slash"), ROUTE_UNROUTABLE);
    assert_int_equal(route(&f, "/", "", "."), ROUTE_UNROUTABLE);
    assert_int_equal(route(&f, "/", "", ".."), ROUTE_UNROUTABLE);
    assert_int_equal(route(&f, "/", "", "..."), ROUTE_OK);
    assert_int_equal(route(&f, "/", "amq.topic", "x"), ROUTE_OK);
    assert_string_equal(f.out.topic, "amq.topic");
    assert_int_equal(route(&f, "/", "with space", "x"), ROUTE_UNROUTABLE);
    fixture_done(&f);

    f = (struct fixture){.cfg = base_config()};
    f.cfg.default_route = false;
    f.r = router_new(&f.cfg);
    assert_int_equal(route(&f, "/", "billing", "x"), ROUTE_UNROUTABLE);
    assert_null(f.out.topic);
    assert_int_equal(route(&f, "/", "", "celery"), ROUTE_UNROUTABLE);
    fixture_done(&f);
}

static void test_default_route_per_exchange(void **state)
{
    (void)state;
    struct exchange_cfg xs[] = {
        {.name = "quiet", .vhost = "/", .type = EXCHANGE_TOPIC, .default_route = 0},
        {.name = "loud", .vhost = "prod", .type = EXCHANGE_DIRECT, .default_route = 1},
        {.name = "inherit", .vhost = "/", .type = EXCHANGE_FANOUT, .default_route = -1},
        {.name = "", .vhost = "/", .type = EXCHANGE_DIRECT, .default_route = 0},
    };
    struct fixture f = {.cfg = base_config()};
    f.cfg.exchanges = xs;
    f.cfg.n_exchanges = ARRAY_LEN(xs);
    f.r = router_new(&f.cfg);

    assert_int_equal(route(&f, "/", "quiet", "x"), ROUTE_UNROUTABLE);
    assert_int_equal(route(&f, "other", "quiet", "x"), ROUTE_OK); /* other vhost: global */
    assert_int_equal(route(&f, "/", "inherit", "x"), ROUTE_OK);
    assert_int_equal(route(&f, "/", "", "celery"), ROUTE_UNROUTABLE);
    assert_int_equal(route(&f, "prod", "", "celery"), ROUTE_OK);
    fixture_done(&f);

    f = (struct fixture){.cfg = base_config()};
    f.cfg.default_route = false;
    f.cfg.exchanges = xs;
    f.cfg.n_exchanges = ARRAY_LEN(xs);
    f.r = router_new(&f.cfg);
    assert_int_equal(route(&f, "prod", "loud", "x"), ROUTE_OK);
    assert_string_equal(f.out.topic, "loud");
    assert_int_equal(route(&f, "/", "loud", "x"), ROUTE_UNROUTABLE);
    assert_int_equal(route(&f, "/", "inherit", "x"), ROUTE_UNROUTABLE);
    assert_int_equal(route(&f, "/", "other", "x"), ROUTE_UNROUTABLE);
    fixture_done(&f);
}

/* Routes take precedence over the default route. */
static void test_route_before_default(void **state)
{
    (void)state;
    struct fixture f = {.cfg = base_config()};
    f.cfg.routes = routes_cfg;
    f.cfg.n_routes = ARRAY_LEN(routes_cfg);
    f.r = router_new(&f.cfg);
    assert_int_equal(route(&f, "/", "", "jobs"), ROUTE_OK);
    assert_string_equal(f.out.topic, "job-queue");
    assert_int_equal(route(&f, "/", "", "jobs2"), ROUTE_OK);
    assert_string_equal(f.out.topic, "jobs2");
    assert_int_equal(route(&f, "/", "lit", "other"), ROUTE_OK);
    assert_string_equal(f.out.topic, "lit");
    fixture_done(&f);
}

static void test_prefix(void **state)
{
    (void)state;
    struct fixture f = {.cfg = base_config()};
    f.cfg.topic_prefix = "amqp.";
    f.cfg.routes = routes_cfg;
    f.cfg.n_routes = ARRAY_LEN(routes_cfg);
    f.r = router_new(&f.cfg);

    assert_int_equal(route(&f, "/", "billing", "x"), ROUTE_OK);
    assert_string_equal(f.out.topic, "amqp.billing");
    assert_int_equal(route(&f, "/", "", "celery"), ROUTE_OK);
    assert_string_equal(f.out.topic, "amqp.celery");
    /* Prefix alone is a legal name, so the empty routing key routes. */
    assert_int_equal(route(&f, "/", "", ""), ROUTE_OK);
    assert_string_equal(f.out.topic, "amqp.");
    /* Route topics are used as is, without the prefix. */
    assert_int_equal(route(&f, "/", "events", "orders"), ROUTE_OK);
    assert_string_equal(f.out.topic, "orders");

    /* Length limit counts the prefix: 244 + 5 = 249 fits, 245 + 5 does not. */
    char rk[256];
    memset(rk, 'k', 245);
    rk[245] = '\0';
    assert_int_equal(router_route(f.r, "/", "", 0, rk, 244, &f.scratch, &f.out), ROUTE_OK);
    assert_int_equal(strlen(f.out.topic), 249);
    assert_int_equal(router_route(f.r, "/", "", 0, rk, 245, &f.scratch, &f.out), ROUTE_UNROUTABLE);
    fixture_done(&f);

    f = (struct fixture){.cfg = base_config()};
    f.cfg.topic_prefix = "bad prefix.";
    f.r = router_new(&f.cfg);
    assert_int_equal(route(&f, "/", "billing", "x"), ROUTE_UNROUTABLE);
    fixture_done(&f);

    f = (struct fixture){.cfg = base_config()};
    f.cfg.topic_prefix = NULL; /* treated as "" */
    f.r = router_new(&f.cfg);
    assert_int_equal(route(&f, "/", "billing", "x"), ROUTE_OK);
    assert_string_equal(f.out.topic, "billing");
    fixture_done(&f);
}

/* The scratch buffer is reused, whatever it held before. */
static void test_scratch_reuse(void **state)
{
    (void)state;
    struct fixture f = {.cfg = base_config()};
    f.r = router_new(&f.cfg);
    buf_puts(&f.scratch, "leftover-content-from-before");
    assert_int_equal(route(&f, "/", "ab", "x"), ROUTE_OK);
    assert_string_equal(f.out.topic, "ab");
    assert_int_equal(f.scratch.len, 2);
    assert_int_equal(route(&f, NULL, "", "queue-name"), ROUTE_OK);
    assert_string_equal(f.out.topic, "queue-name");
    fixture_done(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pattern_table),
        cmocka_unit_test(test_pattern_uses_length),
        cmocka_unit_test(test_pattern_pathological),
        cmocka_unit_test(test_pattern_exhaustive),
        cmocka_unit_test(test_topic_valid),
        cmocka_unit_test(test_first_match_in_order),
        cmocka_unit_test(test_exchange_exact),
        cmocka_unit_test(test_default_route_global),
        cmocka_unit_test(test_default_route_per_exchange),
        cmocka_unit_test(test_route_before_default),
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_scratch_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
