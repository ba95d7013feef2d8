/* replyto.h - RabbitMQ's direct reply-to (amq.rabbitmq.reply-to) for RPC,
 * with task queues on; answers as RabbitMQ 3.10 gives them.
 *
 * A channel's reply consumer (basic.consume of the pseudo-queue
 * amq.rabbitmq.reply-to, no-ack) is a consumer like any other (consume.c),
 * of a hidden transient queue (feeds_get_hidden) named
 * amq.rabbitmq.reply-to.<conn>-<chan>.<22 random characters>: no topology
 * holds it, so no client can declare, bind, get from, purge or delete it,
 * and it goes with its consumer (auto-delete). A publish on that channel
 * with reply_to amq.rabbitmq.reply-to carries that name instead, in the
 * properties the request's consumer sees and in the Kafka record. A reply
 * is a default-exchange publish to that name: it takes the transient
 * queues' path (publish.c, feeds_route_transient), so the same dispatch,
 * backpressure and rabbit.max_transient_bytes serve it, and it never
 * reaches Kafka; a name no reply consumer holds drops it. The hidden queue
 * lives in its consumer's vhost: a reply from another vhost is dropped
 * (RabbitMQ delivers it).
 *
 * RabbitMQ 3.10's quirks kept: a reply delivery carries the channel's next
 * delivery tag without using it up (consume.c), and a mandatory reply is
 * returned (NO_ROUTE) even when delivered. */
#ifndef HOPPER_REPLYTO_H
#define HOPPER_REPLYTO_H

#include <stdbool.h>
#include <stddef.h>

#include <amqp.h>
#include <amqp_framing.h>

struct chan;
struct feed;

#define REPLYTO_QUEUE "amq.rabbitmq.reply-to"

/* The pseudo-queue's name itself. */
bool replyto_is_pseudo(amqp_bytes_t queue);
/* A default-exchange routing key that names a reply consumer's queue: the
 * publish never goes to Kafka. */
bool replyto_is_reply(size_t exchange_len, const void *routing_key, size_t routing_key_len);

/* basic.consume of the pseudo-queue: the channel's hidden queue, made now,
 * or NULL after closing the channel with RabbitMQ's answer. The consumer
 * made on it must be no-ack; consume.c forgets ch->reply_queue with it. */
struct feed *replyto_consume(struct chan *ch, bool no_ack);

/* A publish's reply_to amq.rabbitmq.reply-to becomes the channel's reply
 * queue in the channel's raw property bytes, and *props (decoded from
 * them, in the connection's pool) is decoded anew from those. Returns
 * false after closing the channel (no reply consumer, as RabbitMQ). */
bool replyto_rewrite(struct chan *ch, amqp_basic_properties_t **props)
    __attribute__((warn_unused_result));

/* queue.declare of the pseudo-queue or of a reply queue, answered here as
 * RabbitMQ does (ok, or 404 for a reply queue nobody holds). Returns false
 * for any other name. */
bool replyto_declare(struct chan *ch, const char *queue, bool nowait);

#endif
