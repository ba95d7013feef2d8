/* sink.h - the Kafka side: two idempotent librdkafka producers driven from
 * the libevent loop, the table of messages in flight, and the delivery
 * reports that become publisher confirms.
 *
 * librdkafka signals its main queues through a pipe (io_event_enable); an
 * EV_READ event on the pipe drains them and polls each with timeout 0
 * until it is empty. A slow timer polls too, in case an edge was missed.
 * The loop never blocks on Kafka.
 *
 * Confirm rule: a message is acked only when its delivery report has no
 * error and rd_kafka_message_status() is PERSISTED; everything else is a
 * nack. A fatal producer error (idempotence desync and friends) purges
 * and nacks everything in flight, destroys the producers, builds new ones
 * and goes on (or, if that fails, nacks publishes and retries).
 *
 * Partition gate: hopper chooses each message's partition (as the
 * configured partitioner would) and hands a partition's messages to
 * librdkafka only when none of its earlier ones are still there; the rest
 * wait here, in order, counted in the in-flight bound, and are nacked if
 * they wait longer than message.timeout.ms. A release of a few messages
 * goes to a producer that sends at once, a larger one to a producer that
 * lingers until it is whole. gate.c and producer.c say why. */
#ifndef HOPPER_SINK_H
#define HOPPER_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <librdkafka/rdkafka.h>

#include "config.h"
#include "confirm.h"
#include "topicrule.h"
#include "util.h"

struct sink;

struct sink_callbacks {
    /* An outcome was recorded in a tracker whose owner is `owner`. */
    void (*resolved)(void *arg, void *owner);
    /* A batch of reports was handled: flush confirms, re-check bounds. */
    void (*drained)(void *arg);
    void *arg;
    /* Kafka said whether topics exist (sink_topic_check): what waited on
     * TOPICRULE_UNKNOWN may go on. NULL: nobody waits. */
    void (*topics_known)(void *arg);
};

/* One message to produce. The sink takes ownership of body (malloc'd) and
 * headers only when sink_produce returns SINK_OK or SINK_FAILED. */
struct sink_msg {
    const char *topic;
    const void *key; /* NULL for a null key */
    size_t key_len;
    void *body;
    size_t body_len;
    rd_kafka_headers_t *headers;
    struct confirm *tracker; /* NULL when the channel is not in confirm mode */
    uint64_t tag;
};

enum sink_status {
    SINK_OK,     /* queued; its outcome will be reported */
    SINK_FULL,   /* librdkafka's queue is full: nothing taken, retry later */
    SINK_FAILED, /* refused at once (size, topic): already nacked, freed */
};

struct sink_stats {
    uint64_t produced, persisted, failed, fatal_rebuilds, topics_created;
    uint64_t held;             /* messages that waited for their partition's previous batch */
    uint64_t batches_released; /* times held messages were handed over together */
    uint64_t handed[2];        /* messages handed to the prompt [0] and the batch [1] producer */
    uint64_t requeued;         /* reported with a lost partition and queued again */
};

/* Create the producer. Returns NULL with err set on a bad property. */
struct sink *sink_new(struct event_base *base, const struct config *cfg,
                      const struct sink_callbacks *cb, char *err, size_t errlen);

/* Nack whatever is still in flight, then destroy the producer. */
void sink_free(struct sink *s);

enum sink_status sink_produce(struct sink *s, struct sink_msg *m) MUST_CHECK;

/* True while bytes in flight exceed the configured bound; intake must stop. */
bool sink_over_limit(const struct sink *s);
/* True once in-flight bytes fell back under the resume mark. */
bool sink_under_resume(const struct sink *s);

size_t sink_in_flight(const struct sink *s);

/* Ask Kafka to create topic (kafka.auto_create_topics) unless this sink
 * did already; the answer is only logged. A declared durable queue's
 * topic exists before anything is published to it. */
void sink_ensure_topic(struct sink *s, const char *topic);

/* May a publish go to topic (topicrule.h)? TOPICRULE_UNKNOWN: ask again
 * after the topics_known callback (or a deadline); TOPICRULE_FORBIDDEN:
 * the publish is unroutable, *refusal says why. */
enum topicrule_answer sink_topic_check(struct sink *s, const char *topic,
                                       struct topicrule_refusal *refusal);

/* Give up on everything in flight (shutdown deadline): purge, nack all. */
void sink_abandon(struct sink *s);

/* Test hook: raise a fatal producer error (rd_kafka_test_fatal_error). */
void sink_inject_fatal(struct sink *s, const char *reason);

const struct sink_stats *sink_stats(const struct sink *s);

#endif
