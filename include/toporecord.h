/* toporecord.h - the records of the topology topic (topostore.h): one per
 * durable exchange, durable queue and binding between two durable ones,
 * keyed by what names it, valued by its declaration. Kafka compacts the
 * topic by key, so the last record of an entity is its state; a null value
 * (a tombstone) says it was deleted.
 *
 * Key: a kind byte and the names, each ended by a NUL but the last:
 *
 *   'E' vhost NUL exchange
 *   'Q' vhost NUL queue
 *   'B' vhost NUL queue NUL exchange NUL routing-key NUL arguments
 *
 * A binding's arguments are its table as declare.c encodes it (4-byte
 * length first), or nothing when it has none: RabbitMQ's binding identity
 * includes them, so two bindings that differ only there are two records.
 *
 * Value: an AMQP field table, encoded and decoded by rabbitmq-c:
 *
 *   "v"           I  format version, 1
 *   exchange:     "type" S, "durable" t, "auto_delete" t, "internal" t,
 *                 "arguments" F
 *   queue:        "durable" t, "exclusive" t, "auto_delete" t,
 *                 "arguments" F
 *   binding:      nothing more (the key says it all)
 *
 * Fields a reader does not know are ignored, so a later hopper can add
 * some; a higher "v" is refused (logged and skipped by the store).
 *
 * Anyone who may write to the topic can put bytes there: decoding bounds
 * every length first, and the tables go through the same bounded pre-scan
 * as a client's (wire_check_table) before rabbitmq-c decodes them. */
#ifndef HOPPER_TOPORECORD_H
#define HOPPER_TOPORECORD_H

#include <stdbool.h>
#include <stddef.h>

#include <amqp.h>

#include "util.h"

#define TOPORECORD_VERSION 1
/* Keys and values past this are refused: a binding's or a declaration's
 * arguments come in one frame, at most limits.frame_max (1 MiB). */
#define TOPORECORD_MAX_LEN ((1u << 20) + 4096)

enum toporecord_kind {
    TOPOREC_EXCHANGE = 'E',
    TOPOREC_QUEUE = 'Q',
    TOPOREC_BINDING = 'B',
};

struct toporecord {
    enum toporecord_kind kind;
    bool deleted; /* a tombstone: the value's fields below are unset */
    char vhost[256];
    char name[256];            /* the exchange, the queue, or the binding's queue */
    char exchange[256];        /* binding: its exchange */
    char routing_key[256];     /* binding */
    amqp_bytes_t binding_args; /* binding: encoded table, empty for none */

    /* The declaration (exchange and queue). */
    char type[16]; /* exchange type name */
    bool durable, auto_delete, internal, exclusive;
    amqp_bytes_t args; /* encoded arguments table, empty for none */
};

/* r's key into out (emptied first). */
void toporecord_key(const struct toporecord *r, struct buf *out);

/* r's value into out (emptied first); -1 when r's arguments are not a
 * table rabbitmq-c can decode and encode again. */
int toporecord_value(const struct toporecord *r, struct buf *out) MUST_CHECK;

/* A record read from the topic; val NULL is a tombstone. On success r's
 * byte fields point into key or into pool (valid while both are); on
 * failure -1 and why says what is wrong. */
int toporecord_decode(const void *key, size_t key_len, const void *val, size_t val_len,
                      amqp_pool_t *pool, struct toporecord *r, char *why, size_t whylen) MUST_CHECK;

#endif
