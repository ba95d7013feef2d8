/* producer.c - one of the sink's librdkafka producers, built from struct
 * config (see producer.h).
 *
 * Two producers. A batch must reach librdkafka whole: if the broker thread
 * wakes on its first message and sends those, the rest sit behind that
 * request, and the spin is back (gate.c, "The partition gate"). With
 * linger.ms 0 that happens all the time; with a linger the batch is whole
 * but waits the linger, which a publisher that waits for each confirm pays
 * on every message. librdkafka has no way to hand over a batch at once
 * with headers, and linger.ms is per producer. So there are two, and a
 * release takes the one that suits it (gate.c, release_lane). Up to
 * PROMPT_MAX messages go to the prompt producer (linger.ms 0):
 * if the broker thread sends only the first of them, fewer than five are
 * in flight, so it sends the rest at once and never spins. Larger releases
 * go to the batch producer, whose linger.ms (1 by default) is longer than
 * handing a batch over takes. A partition is in one producer at a time
 * (its previous release has been answered), so its records stay in order.
 * Both producers are one unit for errors: a fatal error in either rebuilds
 * both. */
#include "producer.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The batch producer's linger.ms unless kafka.properties sets one: more
 * than handing a batch over takes (microseconds), and the broker thread
 * wakes at millisecond granularity anyway. */
#define BATCH_LINGER_MS "1"
/* Producer timeouts unless kafka.properties sets them (build_producer). */
#define REQUEST_TIMEOUT_MS "5000"
#define SOCKET_TIMEOUT_MS "7000"
#define METADATA_REFRESH_MS "2000"

static int set_prop(rd_kafka_conf_t *conf, const char *key, const char *value, char *err,
                    size_t errlen)
{
    char why[256];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof why) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka.properties.%s: %s", key, why);
        return -1;
    }
    return 0;
}

/* Properties that would break "a confirm means persisted on
 * min.insync.replicas brokers" are refused, not silently overridden. */
static int check_durability_prop(const struct kv *p, char *err, size_t errlen)
{
    if (!strcmp(p->key, "acks") || !strcmp(p->key, "request.required.acks")) {
        if (strcmp(p->value, "all") != 0 && strcmp(p->value, "-1") != 0) {
            snprintf(err, errlen, "kafka.properties.%s: hopper requires acks=all", p->key);
            return -1;
        }
    } else if (!strcmp(p->key, "enable.idempotence") && strcmp(p->value, "true") != 0) {
        snprintf(err, errlen, "kafka.properties.%s: hopper requires the idempotent producer",
                 p->key);
        return -1;
    } else if (!strcmp(p->key, "transactional.id")) {
        snprintf(err, errlen, "kafka.properties.%s: not supported", p->key);
        return -1;
    }
    return 0;
}

/* A number from the producer's effective configuration. */
static int64_t conf_number(rd_kafka_t *rk, const char *name, int64_t dflt)
{
    char v[32];
    size_t n = sizeof v;
    if (rd_kafka_conf_get(rd_kafka_conf(rk), name, v, &n) != RD_KAFKA_CONF_OK)
        return dflt;
    return strtoll(v, NULL, 10);
}

static rd_kafka_t *build_producer(const struct config *cfg, enum producer_lane lane,
                                  struct producer_limits *limits, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char num[32];
    /* Our own in-flight bound is the one that pushes back on clients;
     * librdkafka's queue limits sit above it so produce() never fills up
     * in normal operation. */
    uint64_t kbytes = cfg->max_inflight_bytes / 1024 * 2 + 1024;
    if (kbytes > INT32_MAX)
        kbytes = INT32_MAX;
    snprintf(num, sizeof num, "%" PRIu64, kbytes);
    if (set_prop(conf, "bootstrap.servers", cfg->bootstrap_servers, err, errlen) ||
        set_prop(conf, "enable.idempotence", "true", err, errlen) ||
        set_prop(conf, "acks", "all", err, errlen) ||
        set_prop(conf, "linger.ms", BATCH_LINGER_MS, err, errlen) ||
        /* A broker cut off from its peers holds an acks=all produce until
         * this much has passed (the broker's own wait), one cut off from
         * hopper until the client gives up; librdkafka's 30 s and 60 s
         * stalled a partition for half a minute. Metadata every 2 s finds
         * the new leader when nothing else makes librdkafka ask
         * (tests/faults/README.md has the measurements). */
        set_prop(conf, "request.timeout.ms", REQUEST_TIMEOUT_MS, err, errlen) ||
        set_prop(conf, "socket.timeout.ms", SOCKET_TIMEOUT_MS, err, errlen) ||
        set_prop(conf, "topic.metadata.refresh.interval.ms", METADATA_REFRESH_MS, err, errlen) ||
        /* Keyless messages must reach the partitioner callback (the gate
         * learns partition counts there); hopper spreads them itself. */
        set_prop(conf, "sticky.partitioning.linger.ms", "0", err, errlen) ||
        set_prop(conf, "queue.buffering.max.kbytes", num, err, errlen) ||
        set_prop(conf, "queue.buffering.max.messages", "2000000", err, errlen) ||
        set_prop(conf, "log.queue", "true", err, errlen))
        goto fail;
    snprintf(num, sizeof num, "%" PRIu32, cfg->max_message_size + (1u << 20));
    if (set_prop(conf, "message.max.bytes", num, err, errlen))
        goto fail;
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        const struct kv *p = &cfg->kafka_props[i];
        if (check_durability_prop(p, err, errlen))
            goto fail;
        if (!strcmp(p->key, "partitioner"))
            continue; /* hopper partitions (sink_new) */
        if (set_prop(conf, p->key, p->value, err, errlen))
            goto fail;
    }
    /* The prompt producer sends what it is given at once, whatever
     * kafka.properties says linger.ms is (that is the batch producer's). */
    if (lane == PRODUCER_PROMPT && set_prop(conf, "linger.ms", "0", err, errlen))
        goto fail;
    rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR | RD_KAFKA_EVENT_LOG |
                                       RD_KAFKA_EVENT_CREATETOPICS_RESULT);
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (!rk) {
        snprintf(err, errlen, "kafka: %s", why);
        goto fail;
    }
    /* conf now belongs to rk. */
    rd_kafka_set_log_queue(rk, NULL);
    /* librdkafka fills a request up to the smaller of the two. */
    int64_t batch_size = conf_number(rk, "batch.size", 1000000);
    int64_t max_bytes = conf_number(rk, "message.max.bytes", 1000000);
    limits->batch_bytes = (uint64_t)(batch_size < max_bytes ? batch_size : max_bytes);
    limits->batch_msgs = (uint32_t)conf_number(rk, "batch.num.messages", 10000);
    limits->msg_timeout_ms = conf_number(rk, "message.timeout.ms", 300000);
    if (limits->msg_timeout_ms <= 0) /* 0: librdkafka's "infinite" */
        limits->msg_timeout_ms = INT64_MAX / 2;
    limits->refresh_ms = conf_number(rk, "topic.metadata.refresh.interval.ms", 300000);
    if (limits->refresh_ms <= 0) /* -1: never refresh */
        limits->refresh_ms = INT64_MAX / 2;
    return rk;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

int producer_open(struct producer *p, const struct config *cfg, enum producer_lane lane,
                  int signal_fd, struct producer_limits *limits, char *err, size_t errlen)
{
    p->rk = build_producer(cfg, lane, limits, err, errlen);
    if (!p->rk)
        return -1;
    p->mainq = rd_kafka_queue_get_main(p->rk);
    rd_kafka_queue_io_event_enable(p->mainq, signal_fd, "1", 1);
    return 0;
}

void producer_close(struct producer *p)
{
    if (!p->rk)
        return;
    rd_kafka_queue_io_event_enable(p->mainq, -1, NULL, 0);
    rd_kafka_queue_destroy(p->mainq);
    rd_kafka_destroy(p->rk);
    *p = (struct producer){NULL, NULL};
}
