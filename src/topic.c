/* topic.c - the sink's topic cache (see topic.h).
 *
 * A topic's partition count comes from librdkafka: the partitioner
 * callback below records the count it is called with, and the gate takes
 * it from there (gate.c, "The partition count"). */
#include "topic.h"

#include <inttypes.h>
#include <stdio.h>

#include "log.h"

void topic_cache_init(struct topic_cache *c, const struct config *cfg,
                      const struct partitioner *partitioner, const struct producer *producers,
                      const struct producer_limits *limits)
{
    *c = (struct topic_cache){
        .cfg = cfg, .partitioner = partitioner, .producers = producers, .limits = limits};
}

/* librdkafka's partitioner callback, for messages handed over
 * unpartitioned: places them as the configured partitioner would, and
 * tells the loop thread the partition count. Runs under the topic's lock,
 * on the producing thread or a librdkafka thread. */
static int32_t partition_and_learn(const rd_kafka_topic_t *rkt, const void *key, size_t key_len,
                                   int32_t partition_cnt, void *rkt_opaque, void *msg_opaque)
{
    struct topic *t = rkt_opaque;
    __atomic_store_n(&t->learned_cnt, partition_cnt, __ATOMIC_RELEASE);
    if (partition_spreads(t->partitioner, key, key_len))
        return rd_kafka_msg_partitioner_random(rkt, key, key_len, partition_cnt, rkt_opaque,
                                               msg_opaque);
    return t->partitioner->hash(rkt, key, key_len, partition_cnt, rkt_opaque, msg_opaque);
}

void topic_ensure(struct topic_cache *c, const char *name)
{
    if (strmap_has(&c->created, name))
        return;
    strmap_put(&c->created, name, NULL);
    if (!c->cfg->auto_create_topics)
        return;
    char why[256], num[16];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(name, c->cfg->topic_partitions,
                                                    c->cfg->replication_factor, why, sizeof why);
    if (!nt) {
        log_error("kafka: cannot create topic %s: %s", name, why);
        return;
    }
    snprintf(num, sizeof num, "%" PRId32, c->cfg->min_insync_replicas);
    if (rd_kafka_NewTopic_set_config(nt, "min.insync.replicas", num))
        log_error("kafka: topic %s: cannot set min.insync.replicas", name);
    /* The result arrives on the main queue. Messages produced meanwhile wait
     * for the topic's metadata (topic.metadata.propagation.max.ms). */
    rd_kafka_CreateTopics(c->producers[PRODUCER_PROMPT].rk, &nt, 1, NULL,
                          c->producers[PRODUCER_PROMPT].mainq);
    rd_kafka_NewTopic_destroy(nt);
}

void topic_create_failed(struct topic_cache *c, const char *name)
{
    strmap_del(&c->created, name);
    struct topic *t = strmap_get(&c->handles, name);
    if (t)
        t->retry_create = true;
}

struct topic *topic_get(struct topic_cache *c, const char *name)
{
    struct topic *t = strmap_get(&c->handles, name);
    if (t) {
        if (t->retry_create) {
            t->retry_create = false;
            topic_ensure(c, name);
        }
        return t;
    }
    t = xcalloc(1, sizeof *t);
    for (enum producer_lane lane = 0; lane < PRODUCER_LANES; lane++) {
        rd_kafka_t *rk = c->producers[lane].rk;
        rd_kafka_topic_conf_t *tconf = rd_kafka_default_topic_conf_dup(rk);
        rd_kafka_topic_conf_set_partitioner_cb(tconf, partition_and_learn);
        rd_kafka_topic_conf_set_opaque(tconf, t);
        /* tconf belongs to librdkafka from here, whatever the outcome. */
        t->rkt[lane] = rd_kafka_topic_new(rk, name, tconf);
        if (!t->rkt[lane]) {
            log_error("kafka: cannot use topic %s: %s", name,
                      rd_kafka_err2str(rd_kafka_last_error()));
            if (lane > PRODUCER_PROMPT)
                rd_kafka_topic_destroy(t->rkt[PRODUCER_PROMPT]);
            free(t);
            return NULL;
        }
    }
    topic_ensure(c, name);
    t->name = xstrdup(name);
    t->partitioner = c->partitioner;
    t->learn_due_ms = (int64_t)monotonic_ms() + c->limits->refresh_ms;
    strmap_put(&c->handles, name, t);
    return t;
}

void topic_cache_drop_handles(struct topic_cache *c)
{
    struct topic *t;
    TOPIC_FOR_EACH(c, t)
    for (enum producer_lane lane = 0; lane < PRODUCER_LANES; lane++)
        rd_kafka_topic_destroy(t->rkt[lane]);
}

void topic_cache_clear(struct topic_cache *c)
{
    struct topic *t;
    TOPIC_FOR_EACH(c, t)
    {
        free(t->name);
        free(t->parts);
        free(t);
    }
    strmap_free(&c->handles);
}

void topic_cache_free(struct topic_cache *c)
{
    strmap_free(&c->created);
}
