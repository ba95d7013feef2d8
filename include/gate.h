/* gate.h - the partition gate: hopper picks each message's partition
 * itself and hands a partition's messages to librdkafka only while none of
 * its earlier ones are there; the rest wait here, in order, in a queue per
 * partition, and go over together when the previous batch is answered.
 * gate.c says why.
 *
 * The gate keeps its queues in the slot table (slot.h), linked through
 * slot.next, and its per-topic state in struct topic (topic.h). Its owner
 * (sink.c) hands messages to librdkafka and nacks them: the gate asks it
 * to through struct gate_ops. */
#ifndef HOPPER_GATE_H
#define HOPPER_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "producer.h"
#include "slot.h"
#include "topic.h"

/* One partition of a topic. */
struct gate_part {
    uint32_t in_kafka;       /* handed over, no report yet */
    enum producer_lane lane; /* whose producer has them, while in_kafka */
    uint32_t head, tail;     /* held queue, SLOT_NONE when empty */
    uint32_t requeued_tail;  /* last of the release's messages put back at the head */
};

/* What the gate asks of its owner. */
struct gate_ops {
    /* Give slot i's message to librdkafka through lane's producer, to the
     * slot's topic and partition. On success librdkafka owns body and
     * headers; on failure nothing was taken. */
    rd_kafka_resp_err_t (*produce)(void *arg, uint32_t i, enum producer_lane lane, void *body,
                                   size_t body_len, const void *key, size_t key_len,
                                   rd_kafka_headers_t *headers);
    /* librdkafka refused slot i's message for good: nack it (and settle
     * its slot). */
    void (*refuse)(void *arg, uint32_t i, rd_kafka_resp_err_t err);
    void *arg;
};

struct gate {
    struct slot_table *slots;
    const struct producer_limits *limits;
    struct gate_ops ops;
    size_t held; /* messages held, all topics */
    /* Messages sent unpartitioned whose topic librdkafka lost before hopper
     * knew its partition count: resent unpartitioned, in order, from the
     * timer (gate_sweep). Linked through slot.next. */
    uint32_t limbo_head, limbo_tail;
    size_t n_limbo;
};

void gate_init(struct gate *g, struct slot_table *slots, const struct producer_limits *limits,
               const struct gate_ops *ops);

/* The partition for a message to t, or RD_KAFKA_PARTITION_UA to let
 * librdkafka place it (and learn the count). */
int32_t gate_pick_partition(struct gate *g, struct topic *t, const void *key, size_t key_len);

/* Whether a message for partition p may go to librdkafka now. */
bool gate_open(const struct topic *t, int32_t p);

/* The producer for a message handed over unpartitioned. */
enum producer_lane gate_unpartitioned_lane(const struct topic *t, const void *key, size_t key_len);

/* Hand slot i's message over (gate_ops.produce) through lane's producer and
 * count it against its partition, or its topic when unpartitioned. On
 * success librdkafka owns body and headers; on failure nothing was taken. */
rd_kafka_resp_err_t gate_hand_over(struct gate *g, uint32_t i, enum producer_lane lane, void *body,
                                   size_t body_len, const void *key, size_t key_len,
                                   rd_kafka_headers_t *headers);

/* The bytes a message takes in a produce request as librdkafka counts them
 * against batch.size (an upper bound: varints at their widest). */
size_t gate_record_size(size_t body_len, size_t key_len, const rd_kafka_headers_t *headers);

/* Keep slot i's message at the tail of its partition's queue. Takes body
 * and headers; copies the key. */
void gate_hold(struct gate *g, uint32_t i, void *body, size_t body_len, const void *key,
               size_t key_len, rd_kafka_headers_t *headers);

/* Whether err says librdkafka lost track of the message's partition: such
 * a message is queued again (gate_requeue), not nacked. */
bool gate_lost_partition(rd_kafka_resp_err_t err);

/* Take slot i's message back from m, its report with a lost partition, and
 * queue it again: in its partition's queue ahead of what waited behind its
 * release, or in the limbo while the topic's partition count is unknown.
 * Its report must still be counted (gate_reported). */
void gate_requeue(struct gate *g, uint32_t i, const rd_kafka_message_t *m);

/* A report came for a message handed over to partition p of t (or UA):
 * release what waits, if nothing is left in librdkafka. Returns the number
 * of batches released. */
unsigned gate_reported(struct gate *g, struct topic *t, int32_t p);

/* Nack partition p's held messages that have waited since older_than or
 * longer. */
void gate_nack_held(struct gate *g, struct topic *t, int32_t p, int64_t older_than,
                    rd_kafka_resp_err_t why);

/* From the timer: nack held messages whose wait passed message.timeout.ms,
 * or all of them (nack_all); retry releases and the limbo (the limbo only
 * while producing). Returns the number of batches released. */
unsigned gate_sweep(struct gate *g, struct topic_cache *topics, bool nack_all, bool producing);

#endif
