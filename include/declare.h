/* declare.h - a channel's exchange and queue methods: exchange.declare and
 * delete, queue.declare, bind, unbind, purge and delete, answered from the
 * topology (topology.h) and, with task queues on, from Kafka (feed.h).
 *
 * A durable queue's declare-ok (and a new binding's bind-ok) waits until its
 * consumer group is placed at the ends of its topics, and the connection
 * reads no further frames meanwhile, so that what the client publishes next
 * is the queue's; purge-ok waits for Kafka the same way (ch->placing).
 * Before that, with task queues on, a method that makes or deletes a kept
 * durable entity waits until Kafka has persisted its record
 * (ch->storing, topostore.h): persist, then place, then reply. */
#ifndef HOPPER_DECLARE_H
#define HOPPER_DECLARE_H

#include <stdbool.h>

#include <amqp.h>
#include <amqp_framing.h>

struct chan;

void declare_exchange(struct chan *ch, amqp_exchange_declare_t *m);
void declare_exchange_delete(struct chan *ch, amqp_exchange_delete_t *m);
void declare_queue(struct chan *ch, amqp_queue_declare_t *m);
/* queue.bind and queue.unbind (id says which). */
void declare_bind(struct chan *ch, amqp_method_number_t id, amqp_bytes_t queue,
                  amqp_bytes_t exchange, amqp_bytes_t routing_key, amqp_table_t *args, bool nowait);
void declare_purge(struct chan *ch, amqp_queue_purge_t *m);
void declare_queue_delete(struct chan *ch, amqp_queue_delete_t *m);

/* A reply that waits on Kafka is no longer wanted (the channel closes). */
void declare_cancel_wait(struct chan *ch);

#endif
