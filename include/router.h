/* router.h - which Kafka topic a publish goes to, and what its record key is.
 *
 * Rules, in order (the routing contract in README.md):
 *  1. `routes` from the config, first match wins: exact exchange name and a
 *     routing-key pattern in AMQP topic syntax ("*" one word, "#" zero or
 *     more words, words separated by "."). The route names the topic as is.
 *  2. Otherwise, if the default route is on for the exchange (per-exchange
 *     setting, else the global one): exchange E goes to topic
 *     <topic_prefix>E, and the default exchange "" goes to topic
 *     <topic_prefix><routing key>.
 *  3. Otherwise, or when the resulting name is not a legal Kafka topic
 *     name, the message is unroutable. */
#ifndef HOPPER_ROUTER_H
#define HOPPER_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct router;

enum route_status { ROUTE_OK, ROUTE_UNROUTABLE };

struct route_target {
    const char *topic; /* NUL-terminated; valid until the next call with the same scratch */
    enum key_source key;
    const char *key_header;              /* header name when key == KEY_HEADER */
    const struct contract_cfg *contract; /* the route's, else the exchange's; NULL: none */
};

/* Build a router from cfg. The router borrows cfg: cfg must outlive it. */
struct router *router_new(const struct config *cfg);
void router_free(struct router *r);

/* Resolve one publish. `vhost` selects per-exchange settings from config
 * exchanges. `scratch` holds a composed topic name when needed. */
enum route_status router_route(const struct router *r, const char *vhost, const char *exchange,
                               size_t exchange_len, const char *routing_key, size_t rk_len,
                               struct buf *scratch, struct route_target *out) MUST_CHECK;

/* Every topic a publish to `exchange` (not "") can go to: the topics of
 * the routes for it, then its default-route topic when that is on. A
 * superset for any one routing key. */
void router_exchange_topics(const struct router *r, const char *vhost, const char *exchange,
                            void (*fn)(void *arg, const char *topic), void *arg);

/* AMQP topic-exchange matching of routing key against pattern. */
bool router_pattern_match(const char *pattern, const char *rk, size_t rk_len);

/* Kafka's legal topic names: 1..249 of [a-zA-Z0-9._-], not "." or "..". */
bool router_topic_valid(const char *name, size_t len);

#endif
