/* router.c - maps (vhost, exchange, routing key) to a Kafka topic and a key
 * source, following the routing contract in router.h.
 *
 * router_route() is on the publish hot path: it allocates nothing (a
 * composed topic name goes into the caller's scratch buffer) and the work
 * that depends only on the config (lengths, pattern shape, topic validity)
 * is done once in router_new().
 *
 * Pattern semantics are RabbitMQ's topic exchange (rabbit_db_topic_exchange,
 * split_topic_key_binary/1 and trie_match/5):
 *  - a key is split on '.' into words; empty words count ("a..b" is three
 *    words, "a." is two), but the empty key "" is ZERO words, not one empty
 *    word (split_topic_key_binary(<<>>) -> []). Patterns split the same way.
 *    So "*" does not match "" (while "#" and "" do), and "." is two empty
 *    words: "*.*" matches it, "*" does not.
 *  - "*" matches exactly one word, "#" zero or more, only as whole words:
 *    "a*" and "#b" are literal words.
 *  - anything else compares byte for byte, case-sensitively. */
#include "router.h"

#include <stdint.h>
#include <string.h>

/* Kafka's limit (Topic.MAX_NAME_LENGTH). */
#define TOPIC_MAX_LEN 249

enum pattern_shape {
    PAT_ANY,     /* only '#' words: matches every key */
    PAT_LITERAL, /* no wildcard word: matches iff the key is byte-equal */
    PAT_WILD,    /* anything else: the general matcher */
};

struct route_rt {
    const struct route_cfg *cfg;
    size_t exchange_len;
    size_t pattern_len;
    enum pattern_shape shape;
    bool topic_ok; /* config validation should make this always true */
};

struct exchange_rt {
    const struct exchange_cfg *cfg;
    size_t name_len;
};

struct router {
    const struct config *cfg;
    struct route_rt *routes;
    size_t n_routes;
    struct exchange_rt *exchanges;
    size_t n_exchanges;
    size_t prefix_len;
    bool has_contracts; /* some exchange has one: worth looking up */
};

/* Words are addressed by the byte offset of their first byte, 0..len. An
 * offset of len + 1 is the end of the word list, which lets "a." (a last,
 * empty word at offset 2 == len) be told apart from "a" (end at 2). */
static size_t words_first(size_t len)
{
    return len ? 0 : len + 1; /* "" has no words */
}

static size_t word_len(const char *s, size_t len, size_t pos)
{
    const char *dot = memchr(s + pos, '.', len - pos);
    return dot ? (size_t)(dot - (s + pos)) : len - pos;
}

static bool is_hash(const char *w, size_t n)
{
    return n == 1 && w[0] == '#';
}

static bool is_star(const char *w, size_t n)
{
    return n == 1 && w[0] == '*';
}

/* Wildcard matching over words, greedy with one backtrack point: when a
 * literal or '*' fails, the most recent '#' swallows one more key word and
 * matching resumes after it. Earlier '#'s never need to be revisited, since
 * whatever they would absorb the later one can absorb too. This is the
 * classic linear-space glob algorithm ('#' = glob '*', '*' = glob '?');
 * it runs in O(len(pattern) * len(key)) time with no allocation and no
 * recursion, whatever the key. */
static bool match_words(const char *p, size_t plen, const char *k, size_t klen)
{
    const size_t pend = plen + 1, kend = klen + 1;
    size_t pi = words_first(plen), ki = words_first(klen);
    size_t back_p = SIZE_MAX; /* pattern word after the last '#' seen */
    size_t back_k = 0;        /* key word where that '#' stopped absorbing */

    while (ki != kend) {
        if (pi != pend) {
            size_t pl = word_len(p, plen, pi);
            if (is_hash(p + pi, pl)) {
                pi += pl + 1;
                back_p = pi;
                back_k = ki;
                continue;
            }
            size_t kl = word_len(k, klen, ki);
            if (is_star(p + pi, pl) || (pl == kl && memcmp(p + pi, k + ki, pl) == 0)) {
                pi += pl + 1;
                ki += kl + 1;
                continue;
            }
        }
        if (back_p == SIZE_MAX)
            return false;
        back_k += word_len(k, klen, back_k) + 1;
        ki = back_k;
        pi = back_p;
    }
    while (pi != pend) { /* key used up: only '#'s may remain */
        size_t pl = word_len(p, plen, pi);
        if (!is_hash(p + pi, pl))
            return false;
        pi += pl + 1;
    }
    return true;
}

static enum pattern_shape pattern_shape(const char *p, size_t plen)
{
    bool any_hash = false, all_hash = true;
    bool wild = false;
    for (size_t pi = words_first(plen); pi != plen + 1;) {
        size_t pl = word_len(p, plen, pi);
        if (is_hash(p + pi, pl)) {
            any_hash = true;
            wild = true;
        } else {
            all_hash = false;
            if (is_star(p + pi, pl))
                wild = true;
        }
        pi += pl + 1;
    }
    if (any_hash && all_hash)
        return PAT_ANY;
    return wild ? PAT_WILD : PAT_LITERAL;
}

bool router_pattern_match(const char *pattern, const char *rk, size_t rk_len)
{
    return match_words(pattern, strlen(pattern), rk ? rk : "", rk_len);
}

bool router_topic_valid(const char *name, size_t len)
{
    if (len == 0 || len > TOPIC_MAX_LEN)
        return false;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

struct router *router_new(const struct config *cfg)
{
    struct router *r = xcalloc(1, sizeof *r);
    r->cfg = cfg;
    r->n_routes = cfg->n_routes;
    r->routes = xcalloc(cfg->n_routes, sizeof *r->routes);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const struct route_cfg *rc = &cfg->routes[i];
        struct route_rt *rt = &r->routes[i];
        rt->cfg = rc;
        rt->exchange_len = strlen(rc->exchange);
        rt->pattern_len = strlen(rc->pattern);
        rt->shape = pattern_shape(rc->pattern, rt->pattern_len);
        rt->topic_ok = router_topic_valid(rc->topic, strlen(rc->topic));
    }
    r->n_exchanges = cfg->n_exchanges;
    r->exchanges = xcalloc(cfg->n_exchanges, sizeof *r->exchanges);
    for (size_t i = 0; i < cfg->n_exchanges; i++) {
        r->exchanges[i].cfg = &cfg->exchanges[i];
        r->exchanges[i].name_len = strlen(cfg->exchanges[i].name);
        r->has_contracts = r->has_contracts || cfg->exchanges[i].contract;
    }
    r->prefix_len = cfg->topic_prefix ? strlen(cfg->topic_prefix) : 0;
    return r;
}

void router_free(struct router *r)
{
    if (!r)
        return;
    FREE_AND_NULL(r->routes);
    FREE_AND_NULL(r->exchanges);
    free(r);
}

static bool route_matches(const struct route_rt *rt, const char *exchange, size_t exchange_len,
                          const char *rk, size_t rk_len)
{
    if (rt->exchange_len != exchange_len || memcmp(rt->cfg->exchange, exchange, exchange_len) != 0)
        return false;
    switch (rt->shape) {
    case PAT_ANY:
        return true;
    case PAT_LITERAL:
        return rt->pattern_len == rk_len && memcmp(rt->cfg->pattern, rk, rk_len) == 0;
    case PAT_WILD:
        break;
    }
    return match_words(rt->cfg->pattern, rt->pattern_len, rk, rk_len);
}

/* The config's exchange (vhost, exchange), or NULL. A NULL vhost on either
 * side stands for "/". */
static const struct exchange_cfg *find_exchange(const struct router *r, const char *vhost,
                                                const char *exchange, size_t exchange_len)
{
    const char *vh = vhost ? vhost : "/";
    for (size_t i = 0; i < r->n_exchanges; i++) {
        const struct exchange_rt *x = &r->exchanges[i];
        if (x->name_len != exchange_len || memcmp(x->cfg->name, exchange, exchange_len) != 0)
            continue;
        if (strcmp(x->cfg->vhost ? x->cfg->vhost : "/", vh) != 0)
            continue;
        return x->cfg;
    }
    return NULL;
}

/* Per-exchange default_route for (vhost, exchange), else the global one. */
static bool default_route_on(const struct router *r, const char *vhost, const char *exchange,
                             size_t exchange_len)
{
    const struct exchange_cfg *x = find_exchange(r, vhost, exchange, exchange_len);
    if (x && x->default_route != -1)
        return x->default_route != 0;
    return r->cfg->default_route;
}

/* A route's own contract, else its exchange's. */
static const struct contract_cfg *contract_of(const struct router *r, const struct route_cfg *rc,
                                              const char *vhost, const char *exchange,
                                              size_t exchange_len)
{
    if (rc && rc->contract)
        return rc->contract;
    if (!r->has_contracts)
        return NULL;
    const struct exchange_cfg *x = find_exchange(r, vhost, exchange, exchange_len);
    return x ? x->contract : NULL;
}

enum route_status router_route(const struct router *r, const char *vhost, const char *exchange,
                               size_t exchange_len, const char *routing_key, size_t rk_len,
                               struct buf *scratch, struct route_target *out)
{
    if (!exchange) /* empty views may come as NULL; memcmp must not see it */
        exchange = "";
    if (!routing_key)
        routing_key = "";
    out->topic = NULL;
    out->key = KEY_ROUTING_KEY;
    out->key_header = NULL;
    out->contract = NULL;

    for (size_t i = 0; i < r->n_routes; i++) {
        const struct route_rt *rt = &r->routes[i];
        if (!route_matches(rt, exchange, exchange_len, routing_key, rk_len))
            continue;
        if (!rt->topic_ok)
            return ROUTE_UNROUTABLE;
        out->topic = rt->cfg->topic;
        out->key = rt->cfg->key;
        out->key_header = rt->cfg->key == KEY_HEADER ? rt->cfg->key_header : NULL;
        out->contract = contract_of(r, rt->cfg, vhost, exchange, exchange_len);
        return ROUTE_OK;
    }

    if (!default_route_on(r, vhost, exchange, exchange_len))
        return ROUTE_UNROUTABLE;

    /* The default exchange "" delivers to the queue named by the routing
     * key, so its default topic is the routing key. */
    const char *tail = exchange_len ? exchange : routing_key;
    size_t tail_len = exchange_len ? exchange_len : rk_len;
    size_t len = r->prefix_len + tail_len;
    if (len == 0 || len > TOPIC_MAX_LEN)
        return ROUTE_UNROUTABLE;
    scratch->len = 0;
    buf_append(scratch, r->cfg->topic_prefix ? r->cfg->topic_prefix : "", r->prefix_len);
    buf_append(scratch, tail, tail_len);
    if (!router_topic_valid(scratch->data, scratch->len))
        return ROUTE_UNROUTABLE;
    out->topic = scratch->data;
    out->contract = contract_of(r, NULL, vhost, exchange, exchange_len);
    return ROUTE_OK;
}

void router_exchange_topics(const struct router *r, const char *vhost, const char *exchange,
                            void (*fn)(void *arg, const char *topic), void *arg)
{
    size_t elen = strlen(exchange);
    for (size_t i = 0; i < r->n_routes; i++) {
        const struct route_rt *rt = &r->routes[i];
        if (rt->topic_ok && !strcmp(rt->cfg->exchange, exchange))
            fn(arg, rt->cfg->topic);
    }
    if (elen == 0 || !default_route_on(r, vhost, exchange, elen))
        return;
    size_t len = r->prefix_len + elen;
    if (len > TOPIC_MAX_LEN)
        return;
    char topic[TOPIC_MAX_LEN + 1];
    memcpy(topic, r->cfg->topic_prefix ? r->cfg->topic_prefix : "", r->prefix_len);
    memcpy(topic + r->prefix_len, exchange, elen);
    topic[len] = '\0';
    if (router_topic_valid(topic, len))
        fn(arg, topic);
}
