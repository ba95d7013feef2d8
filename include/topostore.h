/* topostore.h - the durable topology kept in Kafka, so that it outlives a
 * hopper and reaches every hopper of a shared gateway, as RabbitMQ keeps
 * durable exchanges, queues and bindings across restarts and across the
 * nodes of a cluster. Only with task queues on (rabbit.enabled).
 *
 * What is kept is what RabbitMQ keeps: durable exchanges (not the built-in
 * ones), durable queues that task queues serve from Kafka (not exclusive,
 * not auto-delete, not server-named: topology_queue_in_kafka), and the
 * bindings between a kept queue and a durable exchange. The `exchanges:`
 * and `queues:` of the config are the config's, not kept. One record per
 * entity in one compacted topic (rabbit.topology_topic, toporecord.h says
 * the format); a deletion writes a tombstone, and so does every binding a
 * deleted queue or exchange takes with it.
 *
 * Writing: declare.c writes a record when a method makes or deletes a kept
 * entity (an identical re-declaration writes nothing) and sends the reply
 * once Kafka has persisted it (acks=all, through the sink, as a publisher
 * confirm). A write hopper could not persist fails the method.
 *
 * Reading: the store reads the topic from its beginning with a plain
 * consumer (no group), driven from the loop, and applies every record to
 * the topology (topology_put_*, and the delete, bind and unbind a client
 * would make), the last record of a key winning; a deleted queue's
 * consumers here are cancelled. It keeps reading after startup, so what
 * another hopper declares or deletes reaches this one. Its own records
 * come back too: applying one is a no-op, and one that a later write of
 * this hopper to the same key has overtaken is skipped, so that a quick
 * declare-delete-declare is not undone for a moment by its own echo.
 * A record that does not decode is logged and skipped.
 *
 * Startup: server.c accepts no connection until the store has read to the
 * end of the topic (the end it found when it started reading), or until
 * rabbit.topology_load_timeout passed: then it logs that the topology is
 * not loaded yet, accepts connections and applies records as they come. */
#ifndef HOPPER_TOPOSTORE_H
#define HOPPER_TOPOSTORE_H

#include <stdbool.h>
#include <stdint.h>

#include <amqp.h>

#include "util.h"

struct server;
struct exchange;
struct queue;
struct topostore;

/* Create the topic if it is missing and start reading it. loaded is
 * called once, from the loop, when the topic was read to its end or the
 * load deadline passed. NULL (err set) when the consumer cannot be made. */
struct topostore *topostore_new(struct server *srv, void (*loaded)(struct server *srv), char *err,
                                size_t errlen);
/* Writes in flight are answered not ok (the sink goes next, and nacks
 * them). */
void topostore_free(struct topostore *s);

/* Whether the store keeps this entity (see above). */
bool topostore_keeps_exchange(const struct topostore *s, const char *vhost,
                              const struct exchange *e);
bool topostore_keeps_queue(const struct topostore *s, const char *vhost, const struct queue *q);
bool topostore_keeps_binding(const struct topostore *s, const char *vhost, const char *queue,
                             const char *exchange);

/* A write's outcome: ok when Kafka persisted every record of it. Called
 * once for every write, from the loop (or from topostore_free). */
typedef void (*topostore_done_fn)(void *arg, bool ok);

/* Records for an exchange, a queue, a binding as the topology has them. */
void topostore_put_exchange(struct topostore *s, const char *vhost, const struct exchange *e,
                            topostore_done_fn done, void *arg);
void topostore_put_queue(struct topostore *s, const char *vhost, const struct queue *q,
                         topostore_done_fn done, void *arg);
/* A binding's record, or its tombstone (deleted). */
void topostore_put_binding(struct topostore *s, const char *vhost, const char *queue,
                           const char *exchange, const char *routing_key, amqp_bytes_t args,
                           bool deleted, topostore_done_fn done, void *arg);
/* Tombstones for the exchange or the queue and for every kept binding it
 * has (those first). */
void topostore_delete_exchange(struct topostore *s, const char *vhost, const char *name,
                               topostore_done_fn done, void *arg);
void topostore_delete_queue(struct topostore *s, const char *vhost, const char *name,
                            topostore_done_fn done, void *arg);

#endif
