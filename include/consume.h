/* consume.h - the consuming half of a channel: basic.consume and cancel,
 * qos, deliveries with their delivery tags, basic.get, and ack, nack,
 * reject and recover (on with rabbit.enabled or --enable-rabbit).
 *
 * Delivery tags count per channel from 1. Every unacked delivery is held
 * here, in tag order, until the client settles it; a channel that closes
 * gives its unacked records back to their queues (redelivered), as
 * RabbitMQ does.
 *
 * Prefetch follows RabbitMQ 3.x: basic.qos with global=false sets the
 * limit of consumers created afterwards on the channel, global=true a
 * limit shared by all the channel's consumers; 0 is unlimited, still
 * bounded by the queue's rabbit.max_unacked and the connection's output
 * buffer. */
#ifndef HOPPER_CONSUME_H
#define HOPPER_CONSUME_H

#include <stdbool.h>
#include <stdint.h>

#include <amqp.h>
#include <amqp_framing.h>

struct chan;
struct consumer;
struct conn;
struct feed;
struct feed_msg;

/* Channel methods; m is the decoded method. */
void consume_basic_consume(struct chan *ch, amqp_basic_consume_t *m);
void consume_basic_cancel(struct chan *ch, amqp_basic_cancel_t *m);
void consume_basic_qos(struct chan *ch, amqp_basic_qos_t *m);
void consume_basic_get(struct chan *ch, amqp_basic_get_t *m);
void consume_basic_ack(struct chan *ch, amqp_basic_ack_t *m);
void consume_basic_nack(struct chan *ch, amqp_basic_nack_t *m);
void consume_basic_reject(struct chan *ch, amqp_basic_reject_t *m);
void consume_basic_recover(struct chan *ch, bool requeue, amqp_method_number_t id);

/* The channel is closing or gone: cancel its consumers, requeue what it
 * holds unacked. */
void consume_chan_closed(struct chan *ch);

/* The connection's output drained: its consumers may take more. */
void consume_conn_writable(struct conn *c);

/* Called by the feed. */
bool consume_can_take(const struct consumer *cons);
void consume_deliver(struct consumer *cons, struct feed_msg *m);
/* The queue was deleted: tell the client (consumer_cancel_notify) and
 * forget the consumer. */
void consume_cancelled_by_server(struct consumer *cons);
bool consume_exclusive(const struct consumer *cons);

#endif
