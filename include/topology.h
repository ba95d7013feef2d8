/* topology.h - exchanges, queues and bindings per virtual host.
 *
 * hopper keeps the topology clients declare so that applications which
 * declare before they publish work unchanged, and so that publishing to an
 * exchange that does not exist fails as on RabbitMQ. Routing into Kafka
 * does not follow bindings (see router.h): a topic keeps every message
 * published to its exchange, bound queue or not.
 *
 * Every operation answers with an AMQP reply code (200 = ok) and a reply
 * text in RabbitMQ's wording, so that the channel only has to send it. */
#ifndef HOPPER_TOPOLOGY_H
#define HOPPER_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>

#include "config.h"

struct topology;

struct exchange {
    char *name;
    enum exchange_type type;
    bool durable, auto_delete, internal;
    bool builtin;    /* amq.* and the default exchange: cannot be deleted */
    struct buf args; /* encoded arguments table, for equivalence checks */
};

struct queue {
    char *name;
    bool durable, exclusive, auto_delete;
    uint64_t owner; /* connection id for exclusive queues, else 0 */
    struct buf args;
};

/* Reply of a topology operation. */
struct topo_reply {
    uint16_t code;  /* 200 ok, else the channel or connection close code */
    char text[256]; /* "NOT_FOUND - no exchange 'x' in vhost '/'" */
};

struct topology *topology_new(const struct config *cfg);
void topology_free(struct topology *t);

/* Parse an exchange type name; returns -1 when unknown. */
int topology_exchange_type(const char *name, size_t len);

const struct exchange *topology_exchange(const struct topology *t, const char *vhost,
                                         const char *name);

struct exchange_decl {
    const char *name;
    const char *type;
    bool passive, durable, auto_delete, internal;
    amqp_bytes_t args; /* encoded table, may be empty */
};

void topology_declare_exchange(struct topology *t, const char *vhost, const struct exchange_decl *d,
                               struct topo_reply *r);
void topology_delete_exchange(struct topology *t, const char *vhost, const char *name,
                              bool if_unused, struct topo_reply *r);

struct queue_decl {
    const char *name; /* "" asks the server for a name */
    bool passive, durable, exclusive, auto_delete;
    amqp_bytes_t args;
    uint64_t conn_id; /* declaring connection */
};

/* On success name_out (256 bytes) holds the queue name. */
void topology_declare_queue(struct topology *t, const char *vhost, const struct queue_decl *d,
                            char *name_out, struct topo_reply *r);
void topology_delete_queue(struct topology *t, const char *vhost, const char *name,
                           uint64_t conn_id, struct topo_reply *r);
/* Checks the queue exists and is usable by conn_id (exclusive). */
void topology_check_queue(struct topology *t, const char *vhost, const char *name, uint64_t conn_id,
                          struct topo_reply *r);

void topology_bind(struct topology *t, const char *vhost, const char *queue, const char *exchange,
                   const char *routing_key, amqp_bytes_t args, uint64_t conn_id,
                   struct topo_reply *r);
void topology_unbind(struct topology *t, const char *vhost, const char *queue, const char *exchange,
                     const char *routing_key, amqp_bytes_t args, uint64_t conn_id,
                     struct topo_reply *r);

/* Whether task queues serve q from Kafka: durable, and neither exclusive,
 * auto-delete nor server-named (amq.gen-), which live and die with
 * connections and consumers: transient queues, held in memory (feed.h). */
bool topology_queue_in_kafka(const struct queue *q);

/* The queue, or NULL. */
const struct queue *topology_queue(const struct topology *t, const char *vhost, const char *name);

/* Call fn for the exchange of each of the queue's bindings (repeats
 * possible). */
void topology_queue_exchanges(const struct topology *t, const char *vhost, const char *queue,
                              void (*fn)(void *arg, const char *exchange), void *arg);

/* Whether a message published to exchange with routing key rk and headers
 * reaches queue: the default exchange's implicit binding, or one of the
 * queue's bindings by its exchange's type (binding.h). */
bool topology_queue_matches(const struct topology *t, const char *vhost, const char *queue,
                            const char *exchange, size_t exchange_len, const char *rk,
                            size_t rk_len, const amqp_table_t *headers);

/* Call fn with the queue of each binding of exchange (not the default
 * exchange) that a message with routing key rk and headers matches: a
 * queue bound twice comes twice. fn returns false to stop. */
void topology_route(const struct topology *t, const char *vhost, const char *exchange,
                    size_t exchange_len, const char *rk, size_t rk_len, const amqp_table_t *headers,
                    bool (*fn)(void *arg, const char *queue), void *arg);

/* A connection closed: its exclusive queues go away, each told to gone
 * (may be NULL) before it is freed. */
void topology_connection_closed(struct topology *t, uint64_t conn_id,
                                void (*gone)(void *arg, const char *vhost, const char *queue),
                                void *arg);

/* ---- for the topology store (topostore.h) ---- */

/* Whether the binding exists (args: encoded, as declare.c has them). */
bool topology_has_binding(const struct topology *t, const char *vhost, const char *queue,
                          const char *exchange, const char *routing_key, amqp_bytes_t args);

/* Call fn for every binding in vhost whose queue is `queue` or whose
 * exchange is `exchange` (NULL matches none). fn must not change them. */
typedef void (*topology_binding_fn)(void *arg, const char *queue, const char *exchange,
                                    const char *routing_key, amqp_bytes_t args);
void topology_each_binding(const struct topology *t, const char *vhost, const char *queue,
                           const char *exchange, topology_binding_fn fn, void *arg);

/* A declaration read back from the store: the entity is made, or made to
 * match d when it differs (the last record wins). None of the checks a
 * client gets (passive, reserved names, exclusive owner): the hopper that
 * wrote the record made them. A built-in exchange, a queue exclusive to a
 * connection here, an unknown vhost or exchange type are left alone.
 * Returns whether anything changed. */
bool topology_put_exchange(struct topology *t, const char *vhost, const struct exchange_decl *d);
bool topology_put_queue(struct topology *t, const char *vhost, const struct queue_decl *d);

#endif
