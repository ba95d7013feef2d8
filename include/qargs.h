/* qargs.h - a queue's optional arguments that change how it holds
 * messages: x-message-ttl, x-expires, x-max-length, x-max-length-bytes and
 * x-overflow, and a message's expiration property.
 *
 * queue.declare checks them as RabbitMQ 3.10 does, with its reply texts
 * (406 PRECONDITION_FAILED): integers of any AMQP integer type, TTLs and
 * expiry at most ten years. Transient queues (feed.h) apply them; durable
 * queues, whose messages Kafka keeps, accept and keep them without
 * applying them (README, "Task queues"). */
#ifndef HOPPER_QARGS_H
#define HOPPER_QARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>

#include "util.h"

/* RabbitMQ's ?MAX_EXPIRY_TIMER-like bound on TTLs: ten years in ms. */
#define QARGS_MAX_TTL_MS INT64_C(315360000000)

enum qargs_overflow { OVERFLOW_DROP_HEAD, OVERFLOW_REJECT_PUBLISH, OVERFLOW_REJECT_PUBLISH_DLX };

struct qargs {
    int64_t message_ttl_ms;   /* -1: none */
    int64_t expires_ms;       /* -1: none */
    int64_t max_length;       /* -1: none; ready messages */
    int64_t max_length_bytes; /* -1: none; ready messages' bodies */
    enum qargs_overflow overflow;
};

/* Check a queue.declare's arguments; on failure err gets RabbitMQ's reply
 * text, e.g. "PRECONDITION_FAILED - invalid arg 'x-expires' for queue 'q'
 * in vhost '/': {value_zero,0}". */
bool qargs_valid(const amqp_table_t *args, const char *vhost, const char *queue, char *err,
                 size_t errlen) MUST_CHECK;

/* The arguments of a queue that passed qargs_valid (defaults for the rest). */
void qargs_parse(const amqp_table_t *args, struct qargs *out);

/* A message's expiration property as RabbitMQ reads it (an optional sign,
 * then digits, nothing else, 0..QARGS_MAX_TTL_MS). Returns true with *ms
 * set, or false with err set to RabbitMQ's text for basic.publish: "PRECONDITION_FAILED - invalid
 * expiration 'abc': no_integer". */
bool qargs_expiration(amqp_bytes_t text, int64_t *ms, char *err, size_t errlen) MUST_CHECK;

#endif
