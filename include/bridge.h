/* bridge.h - hopper as a client of upstream RabbitMQ brokers
 * (rabbit.upstream): each upstream's messages go into Kafka through the
 * same routing and record format as a publish to hopper, and each is
 * acked upstream only once Kafka persisted its record.
 *
 * One connection per upstream, driven from the loop with no blocking call:
 * our own bufferevent (bufferevent_openssl for amqps://), hopper's frame
 * reader and rabbitmq-c's codecs, upstream frames and tables checked like a
 * client's (wire.h). On consume-ok the connection gets a channel that
 * intake (intake.h) treats like a confirming publisher's: its confirm
 * tracker numbers the records, and its outcomes come back as basic.ack
 * (persisted) or basic.nack requeue=true (not persisted) upstream,
 * translated to RabbitMQ's delivery tags (tagmap.h). Prefetch bounds the
 * deliveries in flight; when Kafka is slow, acks stop, prefetch fills and
 * RabbitMQ stops delivering. Back-pressure from the sink stops reading the
 * upstream socket as it stops a publisher's.
 *
 * Runs only with the RabbitMQ side on (rabbit.enabled / --enable-rabbit). */
#ifndef HOPPER_BRIDGE_H
#define HOPPER_BRIDGE_H

#include <stdbool.h>
#include <stdint.h>

struct bridges;
struct server;

/* Start a connection per rabbit.upstream entry. NULL when there is none,
 * or the RabbitMQ side is off (one line says the bridge is off), or TLS
 * could not be set up (logged; the rest of hopper runs). */
struct bridges *bridges_new(struct server *srv);
void bridges_free(struct bridges *b);

/* The sink's bounds or a parked record changed: retry parked records and
 * re-check whether each upstream socket is read. */
void bridges_kick(struct bridges *b);

/* Shutdown: basic.cancel each consumer; records in flight settle. */
void bridges_begin_drain(struct bridges *b);
/* The drain is over (outcomes were flushed): close every upstream
 * connection with connection.close. */
void bridges_finish_drain(struct bridges *b);
/* Whether some upstream still waits for its close-ok. */
bool bridges_closing(const struct bridges *b);

/* Reconnect delay after `attempt` failures in a row (0: the first retry):
 * min doubled per attempt, capped at max, the upper half jittered by
 * `rand` (any 32-bit value). */
uint32_t bridge_backoff_ms(uint32_t min, uint32_t max, unsigned attempt, uint32_t rand);

#endif
