/* partition.h - librdkafka's partitioners by their `partitioner` property
 * names, for hopper to choose a message's partition itself (the sink's
 * partition gate, see gate.c).
 *
 * The hashes are librdkafka's own (murmur2 is the Java client's), pure
 * functions of the key. Where a partitioner spreads instead (no key, or
 * "random"), the caller picks: librdkafka's random choice may only run
 * inside its partitioner callback. */
#ifndef HOPPER_PARTITION_H
#define HOPPER_PARTITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

typedef int32_t (*partition_fn)(const rd_kafka_topic_t *rkt, const void *key, size_t key_len,
                                int32_t partition_cnt, void *rkt_opaque, void *msg_opaque);

/* When a partitioner ignores the key and spreads messages instead. */
enum partition_spread {
    SPREAD_NEVER,
    SPREAD_NULL_KEY,
    SPREAD_EMPTY_KEY, /* NULL or zero length */
    SPREAD_ALWAYS,
};

struct partitioner {
    const char *name;
    partition_fn hash; /* NULL for "random" */
    enum partition_spread spread;
};

/* NULL for a name librdkafka does not have. */
const struct partitioner *partition_find(const char *name);

/* murmur2_random: the Java client's partition for a key. */
const struct partitioner *partition_default(void);

/* Whether this key is spread rather than hashed. */
bool partition_spreads(const struct partitioner *pt, const void *key, size_t key_len);

/* The key's partition among cnt; only for keys that are not spread. */
int32_t partition_of_key(const struct partitioner *pt, const void *key, size_t key_len,
                         int32_t cnt);

#endif
