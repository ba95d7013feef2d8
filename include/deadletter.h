/* deadletter.h - dead-lettering, from Kafka-backed and transient queues
 * (README, "Task queues").
 *
 * A message rejected or nacked without requeue from a queue declared with
 * x-dead-letter-exchange is published again, to that exchange, through the
 * same routing and record format as a client's publish: routing key
 * x-dead-letter-routing-key, or the message's own; RabbitMQ's x-death
 * header (one table per queue and reason, the latest first, with count,
 * reason, queue, time, exchange, routing-keys), x-first-death-* and
 * x-last-death-* (RabbitMQ 3.13 added those; Debian 12's 3.10 has the
 * rest, field for field); an expiration property moves to
 * original-expiration.
 *
 * Transient queues the dead letter reaches take their copies at once. The
 * rejected record is done (its offset may be committed) only once Kafka has
 * persisted the dead letter, if it routes to Kafka; if Kafka refuses it,
 * the record goes back to its queue, redelivered (and a transient queue
 * that took a copy gets another when it is dead-lettered again). Hopper is the publisher here: it
 * owns a confirm tracker whose outcomes the server hands back like a channel's. A dead-letter
 * exchange that routes nowhere drops the message, as on RabbitMQ. */
#ifndef HOPPER_DEADLETTER_H
#define HOPPER_DEADLETTER_H

#include <stdbool.h>

#include "feed.h"

struct server;
struct deadletters;

struct deadletters *deadletters_new(struct server *srv);
/* Dead letters still waiting for Kafka go back to their queues (before the
 * feeds are freed). */
void deadletters_free(struct deadletters *d);

/* Whether RabbitMQ accepts a queue.declare's dead-letter arguments:
 * x-dead-letter-exchange and x-dead-letter-routing-key longstr, the
 * routing key only with the exchange. When not, err gets the 406 reply
 * text in RabbitMQ's words. */
bool deadletter_args_valid(const amqp_table_t *args, const char *vhost, const char *queue,
                           char *err, size_t errlen);

/* m was settled without requeue by a consumer of `queue` in `vhost`. If the
 * queue has a dead-letter exchange, m is now the dead letters' (done or
 * requeued when Kafka answers) and true is returned; else false, and m is
 * still the caller's. reason is RabbitMQ's: "rejected". */
bool deadletter(struct deadletters *d, struct feed_msg *m, const char *vhost, const char *queue,
                const char *reason);

#endif
