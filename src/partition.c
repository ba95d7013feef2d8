/* partition.c - librdkafka's partitioners by name (see partition.h). */
#include "partition.h"

#include <string.h>

#include "util.h"

static const struct partitioner partitioners[] = {
    {"murmur2_random", rd_kafka_msg_partitioner_murmur2, SPREAD_NULL_KEY},
    {"murmur2", rd_kafka_msg_partitioner_murmur2, SPREAD_NEVER},
    {"consistent_random", rd_kafka_msg_partitioner_consistent, SPREAD_EMPTY_KEY},
    {"consistent", rd_kafka_msg_partitioner_consistent, SPREAD_NEVER},
    {"fnv1a_random", rd_kafka_msg_partitioner_fnv1a, SPREAD_NULL_KEY},
    {"fnv1a", rd_kafka_msg_partitioner_fnv1a, SPREAD_NEVER},
    {"random", NULL, SPREAD_ALWAYS},
};

const struct partitioner *partition_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(partitioners); i++)
        if (!strcmp(name, partitioners[i].name))
            return &partitioners[i];
    return NULL;
}

const struct partitioner *partition_default(void)
{
    return &partitioners[0];
}

bool partition_spreads(const struct partitioner *pt, const void *key, size_t key_len)
{
    switch (pt->spread) {
    case SPREAD_NEVER:
        return false;
    case SPREAD_NULL_KEY:
        return !key;
    case SPREAD_EMPTY_KEY:
        return !key || !key_len;
    case SPREAD_ALWAYS:
        break;
    }
    return true;
}

int32_t partition_of_key(const struct partitioner *pt, const void *key, size_t key_len, int32_t cnt)
{
    /* librdkafka's hash partitioners never look at the topic or opaques. */
    return pt->hash(NULL, key, key_len, cnt, NULL, NULL);
}
