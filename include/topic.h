/* topic.h - the sink's topic cache: for each topic published to, its
 * librdkafka handle in each producer, the partitioner that places its
 * messages and the partition count librdkafka last saw, with the partition
 * gate's state for it; and the set of topics this run asked Kafka to
 * create (kafka.auto_create_topics).
 *
 * The handles belong to the current producers: after a rebuild the cache
 * starts empty. Teardown is in two steps around destroying the producers:
 * topic_cache_drop_handles() before, topic_cache_clear() after, because
 * librdkafka's partitioner callback has the topics as its opaque until the
 * producers are gone. */
#ifndef HOPPER_TOPIC_H
#define HOPPER_TOPIC_H

#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "partition.h"
#include "producer.h"
#include "util.h"

struct gate_part;

struct topic {
    char *name;
    rd_kafka_topic_t *rkt[PRODUCER_LANES];
    const struct partitioner *partitioner;
    /* Written by the partitioner callback, possibly on a librdkafka thread. */
    int32_t learned_cnt;
    bool retry_create; /* CreateTopics failed: the next use asks again */
    /* The partition gate's (gate.c). */
    int32_t cnt;     /* partition count in use, 0 = not known yet */
    int32_t n_parts; /* size of parts (never shrinks) */
    struct gate_part *parts;
    uint32_t unpartitioned; /* handed over with PARTITION_UA, no report yet */
    uint32_t held;
    int32_t spread_next;
    int64_t learn_due_ms;
};

struct topic_cache {
    const struct config *cfg;
    const struct partitioner *partitioner;
    /* The sink's producers (PRODUCER_LANES of them; empty after a failed
     * rebuild) and the numbers read from them. */
    const struct producer *producers;
    const struct producer_limits *limits;
    struct strmap created; /* created (or being created) this run */
    struct strmap handles; /* topic name -> struct topic of the current producers */
};

void topic_cache_init(struct topic_cache *c, const struct config *cfg,
                      const struct partitioner *partitioner, const struct producer *producers,
                      const struct producer_limits *limits);

/* The topic's state for the current producers, made on first use; NULL if
 * librdkafka refuses the name. The producers must exist. */
struct topic *topic_get(struct topic_cache *c, const char *name);

/* Ask Kafka to create the topic (kafka.auto_create_topics) unless this run
 * did already. The result arrives on the prompt producer's main queue. */
void topic_ensure(struct topic_cache *c, const char *name);

/* CreateTopics failed for name: forget it, so the next publish to it asks
 * again. */
void topic_create_failed(struct topic_cache *c, const char *name);

/* Destroy every topic's librdkafka handles: before the producers go. */
void topic_cache_drop_handles(struct topic_cache *c);
/* Forget every topic: after the producers are gone. */
void topic_cache_clear(struct topic_cache *c);
/* Free the cache, after topic_cache_clear. */
void topic_cache_free(struct topic_cache *c);

/* Every topic of the current producers. */
#define TOPIC_FOR_EACH(c, t)                                                                       \
    for (size_t k_ = 0; k_ < (c)->handles.cap; k_++)                                               \
        if (((t) = (c)->handles.slots[k_].key ? (c)->handles.slots[k_].value : NULL))

#endif
