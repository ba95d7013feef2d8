/* sink.c - the Kafka producer, driven from the libevent loop (see sink.h).
 *
 * Every produced message holds a slot in a table; the slot's index (plus
 * one) is the message's opaque, so a delivery report finds its channel's
 * confirm tracker without a per-message allocation. Slots are the unit of
 * the in-flight bound: their cost (body plus a fixed allowance for key,
 * headers and librdkafka's bookkeeping) is summed against
 * limits.max_inflight_bytes. */
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Per-message allowance on top of body and key: headers, topic, librdkafka's
 * message struct. Generous so that a flood of empty messages is bounded too. */
#define MSG_OVERHEAD 512
/* Resume intake once in-flight bytes fell to this share of the bound. */
#define RESUME_PERCENT 75
/* Repeats of the same producer error, or of nacks for the same reason, are
 * logged at most this often; the next line says how many were left out. */
#define ERROR_LOG_INTERVAL_S 10

struct log_limit {
    rd_kafka_resp_err_t err;
    time_t logged;
    uint64_t left_out;
};

struct slot {
    struct confirm *tracker; /* NULL: no confirm wanted (or slot free) */
    uint64_t tag;
    uint64_t cost;
    uint32_t next_free; /* free list link, valid while free */
    bool busy;
};

struct sink {
    struct event_base *base;
    const struct config *cfg;
    struct sink_callbacks cb;

    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    int pipefd[2];
    struct event *pipe_ev;
    struct event *timer_ev;
    bool fatal_pending;

    struct slot *slots;
    uint32_t n_slots; /* slots ever used (high mark) */
    uint32_t cap_slots;
    uint32_t free_head; /* UINT32_MAX: empty */
    size_t in_flight;
    uint64_t bytes_in_flight;

    struct strmap topics;       /* created (or being created) this run */
    struct strmap handles;      /* topic name -> rd_kafka_topic_t of the current producer */
    struct log_limit error_log; /* producer error events */
    struct log_limit nack_log;  /* messages Kafka did not persist */
    struct sink_stats stats;
};

/* Whether a line about err is due now; if not, it is counted as left out. */
static bool log_due(struct log_limit *l, rd_kafka_resp_err_t err)
{
    time_t now = time(NULL);
    if (err == l->err && now - l->logged < ERROR_LOG_INTERVAL_S) {
        l->left_out++;
        return false;
    }
    l->err = err;
    l->logged = now;
    return true;
}

/* A message that will be nacked: why, once per reason and interval. */
static void log_nack(struct sink *s, const char *topic, int32_t partition, rd_kafka_resp_err_t err)
{
    struct log_limit *l = &s->nack_log;
    if (!log_due(l, err))
        return;
    log_warn("kafka: message to %s [%" PRId32 "] not persisted, nacked: %s (%" PRIu64
             " more nacks since the last such line)",
             topic, partition, rd_kafka_err2str(err), l->left_out);
    l->left_out = 0;
}

static uint32_t slot_take(struct sink *s, struct confirm *tracker, uint64_t tag, uint64_t cost)
{
    uint32_t i;
    if (s->free_head != UINT32_MAX) {
        i = s->free_head;
        s->free_head = s->slots[i].next_free;
    } else {
        if (s->n_slots == s->cap_slots) {
            s->cap_slots = s->cap_slots ? s->cap_slots * 2 : 1024;
            s->slots = xrealloc(s->slots, s->cap_slots * sizeof *s->slots);
        }
        i = s->n_slots++;
    }
    s->slots[i] = (struct slot){.tracker = tracker, .tag = tag, .cost = cost, .busy = true};
    s->in_flight++;
    s->bytes_in_flight += cost;
    return i;
}

/* Put slot i back on the free list. */
static void slot_release(struct sink *s, uint32_t i)
{
    struct slot *sl = &s->slots[i];
    s->in_flight--;
    s->bytes_in_flight -= sl->cost;
    sl->busy = false;
    sl->tracker = NULL;
    sl->next_free = s->free_head;
    s->free_head = i;
}

/* Settle slot i with its outcome and free it. */
static void slot_settle(struct sink *s, uint32_t i, bool ok)
{
    if (i >= s->n_slots || !s->slots[i].busy) {
        log_error("kafka: delivery report for unknown message %" PRIu32, i);
        return;
    }
    struct confirm *c = s->slots[i].tracker;
    uint64_t tag = s->slots[i].tag;
    slot_release(s, i);
    if (ok)
        s->stats.persisted++;
    else
        s->stats.failed++;
    if (c && !confirm_resolve(c, tag, ok)) {
        void *owner = confirm_owner(c);
        if (owner)
            s->cb.resolved(s->cb.arg, owner);
    }
}

static void nack_all_slots(struct sink *s)
{
    for (uint32_t i = 0; i < s->n_slots; i++)
        if (s->slots[i].busy)
            slot_settle(s, i, false);
}

static void handle_dr(struct sink *s, rd_kafka_event_t *ev)
{
    const rd_kafka_message_t *m;
    while ((m = rd_kafka_event_message_next(ev))) {
        /* Only PERSISTED counts: POSSIBLY_PERSISTED (a timeout after send)
         * may or may not be in Kafka, so the publisher must republish. */
        bool ok = m->err == RD_KAFKA_RESP_ERR_NO_ERROR &&
                  rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_PERSISTED;
        if (!ok)
            log_nack(s, rd_kafka_topic_name(m->rkt), m->partition, m->err);
        slot_settle(s, (uint32_t)((uintptr_t)m->_private - 1), ok);
    }
}

static void handle_error(struct sink *s, rd_kafka_event_t *ev)
{
    rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
    if (rd_kafka_event_error_is_fatal(ev)) {
        char reason[512];
        rd_kafka_fatal_error(s->rk, reason, sizeof reason);
        log_error("kafka: fatal producer error: %s", reason);
        s->fatal_pending = true;
        return;
    }
    if (log_due(&s->error_log, err)) {
        log_warn("kafka: %s (%" PRIu64 " error lines left out since the last one)",
                 rd_kafka_event_error_string(ev), s->error_log.left_out);
        s->error_log.left_out = 0;
    }
}

static void handle_create_topics(struct sink *s, rd_kafka_event_t *ev)
{
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t n;
    const rd_kafka_topic_result_t **topics = rd_kafka_CreateTopics_result_topics(res, &n);
    for (size_t i = 0; i < n; i++) {
        const char *name = rd_kafka_topic_result_name(topics[i]);
        rd_kafka_resp_err_t err = rd_kafka_topic_result_error(topics[i]);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            log_info("kafka: created topic %s", name);
            s->stats.topics_created++;
        } else if (err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            /* Forget it, so the next publish to it tries again. Messages
             * already queued fail after topic.metadata.propagation.max.ms
             * and are nacked. */
            log_error("kafka: cannot create topic %s: %s", name,
                      rd_kafka_topic_result_error_string(topics[i]));
            strmap_del(&s->topics, name);
            rd_kafka_topic_t *rkt = strmap_del(&s->handles, name);
            if (rkt)
                rd_kafka_topic_destroy(rkt);
        }
    }
}

static void handle_log(rd_kafka_event_t *ev)
{
    const char *fac, *str;
    int level;
    if (rd_kafka_event_log(ev, &fac, &str, &level) == 0)
        log_msg(level <= 3   ? LOG_ERROR
                : level <= 4 ? LOG_WARN
                             : LOG_INFO,
                "kafka: %s: %s", fac, str);
}

/* Poll the main queue until empty. Returns with fatal_pending set when the
 * producer must be rebuilt. */
static void drain_queue(struct sink *s)
{
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(s->mainq, 0))) {
        switch (rd_kafka_event_type(ev)) {
        case RD_KAFKA_EVENT_DR:
            handle_dr(s, ev);
            break;
        case RD_KAFKA_EVENT_ERROR:
            handle_error(s, ev);
            break;
        case RD_KAFKA_EVENT_CREATETOPICS_RESULT:
            handle_create_topics(s, ev);
            break;
        case RD_KAFKA_EVENT_LOG:
            handle_log(ev);
            break;
        default:
            break;
        }
        rd_kafka_event_destroy(ev);
    }
}

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

static rd_kafka_t *build_producer(struct sink *s, char *err, size_t errlen)
{
    const struct config *cfg = s->cfg;
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
        /* Same partition for the same key as the Java client. */
        set_prop(conf, "partitioner", "murmur2_random", err, errlen) ||
        set_prop(conf, "linger.ms", "5", err, errlen) ||
        set_prop(conf, "queue.buffering.max.kbytes", num, err, errlen) ||
        set_prop(conf, "queue.buffering.max.messages", "2000000", err, errlen) ||
        set_prop(conf, "log.queue", "true", err, errlen))
        goto fail;
    snprintf(num, sizeof num, "%" PRIu32, cfg->max_message_size + (1u << 20));
    if (set_prop(conf, "message.max.bytes", num, err, errlen))
        goto fail;
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        const struct kv *p = &cfg->kafka_props[i];
        if (check_durability_prop(p, err, errlen) || set_prop(conf, p->key, p->value, err, errlen))
            goto fail;
    }
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
    return rk;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static void attach_producer(struct sink *s, rd_kafka_t *rk)
{
    s->rk = rk;
    s->mainq = rd_kafka_queue_get_main(rk);
    rd_kafka_queue_io_event_enable(s->mainq, s->pipefd[1], "1", 1);
}

static void drop_handles(struct sink *s)
{
    for (size_t i = 0; i < s->handles.cap; i++)
        if (s->handles.slots[i].key && s->handles.slots[i].value)
            rd_kafka_topic_destroy(s->handles.slots[i].value);
    strmap_free(&s->handles);
}

static void detach_producer(struct sink *s)
{
    drop_handles(s);
    rd_kafka_queue_io_event_enable(s->mainq, -1, NULL, 0);
    rd_kafka_queue_destroy(s->mainq);
    rd_kafka_destroy(s->rk);
    s->mainq = NULL;
    s->rk = NULL;
}

/* Purge whatever librdkafka holds and settle it as nacked. */
static void purge_all(struct sink *s)
{
    rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    drain_queue(s);
}

static void rebuild(struct sink *s)
{
    s->fatal_pending = false;
    log_error("kafka: rebuilding producer, nacking %zu messages in flight", s->in_flight);
    purge_all(s);
    s->fatal_pending = false;
    detach_producer(s);
    /* The old producer is gone: no report will come for what is left. */
    nack_all_slots(s);
    char err[512];
    rd_kafka_t *rk = build_producer(s, err, sizeof err);
    if (!rk) {
        /* The same properties worked at startup; only resource exhaustion
         * gets here. Without a producer hopper cannot keep its promise. */
        log_error("%s", err);
        abort();
    }
    attach_producer(s, rk);
    s->stats.fatal_rebuilds++;
}

static void poll_and_notify(struct sink *s)
{
    drain_queue(s);
    if (s->fatal_pending)
        rebuild(s);
    s->cb.drained(s->cb.arg);
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
    char junk[256];
    while (read(fd, junk, sizeof junk) > 0)
        ;
    poll_and_notify(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    poll_and_notify(arg);
}

struct sink *sink_new(struct event_base *base, const struct config *cfg,
                      const struct sink_callbacks *cb, char *err, size_t errlen)
{
    struct sink *s = xcalloc(1, sizeof *s);
    s->base = base;
    s->cfg = cfg;
    s->cb = *cb;
    s->free_head = UINT32_MAX;
    if (pipe2(s->pipefd, O_NONBLOCK | O_CLOEXEC) == -1) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        free(s);
        return NULL;
    }
    rd_kafka_t *rk = build_producer(s, err, errlen);
    if (!rk) {
        close(s->pipefd[0]);
        close(s->pipefd[1]);
        free(s);
        return NULL;
    }
    attach_producer(s, rk);
    s->pipe_ev = event_new(base, s->pipefd[0], EV_READ | EV_PERSIST, on_pipe, s);
    s->timer_ev = event_new(base, -1, EV_PERSIST, on_timer, s);
    struct timeval tv = {0, 200 * 1000};
    event_add(s->pipe_ev, NULL);
    event_add(s->timer_ev, &tv);
    return s;
}

void sink_free(struct sink *s)
{
    if (!s)
        return;
    sink_abandon(s);
    detach_producer(s);
    event_free(s->pipe_ev);
    event_free(s->timer_ev);
    close(s->pipefd[0]);
    close(s->pipefd[1]);
    strmap_free(&s->topics);
    free(s->slots);
    free(s);
}

void sink_abandon(struct sink *s)
{
    if (!s->in_flight)
        return;
    log_warn("kafka: giving up on %zu messages in flight (nacked)", s->in_flight);
    purge_all(s);
    /* Purged in-flight requests report only when their broker answers. */
    nack_all_slots(s);
    s->cb.drained(s->cb.arg);
}

static void ensure_topic(struct sink *s, const char *topic)
{
    if (strmap_has(&s->topics, topic))
        return;
    strmap_put(&s->topics, topic, NULL);
    if (!s->cfg->auto_create_topics)
        return;
    char why[256], num[16];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, s->cfg->topic_partitions,
                                                    s->cfg->replication_factor, why, sizeof why);
    if (!nt) {
        log_error("kafka: cannot create topic %s: %s", topic, why);
        return;
    }
    snprintf(num, sizeof num, "%" PRId32, s->cfg->min_insync_replicas);
    if (rd_kafka_NewTopic_set_config(nt, "min.insync.replicas", num))
        log_error("kafka: topic %s: cannot set min.insync.replicas", topic);
    /* The result arrives on the main queue. Messages produced meanwhile wait
     * for the topic's metadata (topic.metadata.propagation.max.ms). */
    rd_kafka_CreateTopics(s->rk, &nt, 1, NULL, s->mainq);
    rd_kafka_NewTopic_destroy(nt);
}

enum sink_status sink_produce(struct sink *s, struct sink_msg *m)
{
    rd_kafka_topic_t *rkt = strmap_get(&s->handles, m->topic);
    if (!rkt) {
        ensure_topic(s, m->topic);
        rkt = rd_kafka_topic_new(s->rk, m->topic, NULL);
        strmap_put(&s->handles, m->topic, rkt);
    }
    uint64_t cost = m->body_len + m->key_len + MSG_OVERHEAD;
    uint32_t i = slot_take(s, m->tracker, m->tag, cost);
    rd_kafka_resp_err_t err =
        rd_kafka_producev(s->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_KEY(m->key, m->key_len),
                          RD_KAFKA_V_VALUE(m->body, m->body_len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_HEADERS(m->headers),
                          RD_KAFKA_V_OPAQUE((void *)(uintptr_t)(i + 1)), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        s->stats.produced++;
        return SINK_OK;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        /* Give the slot back without an outcome: the caller retries. */
        slot_release(s, i);
        return SINK_FULL;
    }
    /* A fatal error refuses every produce until the producer is rebuilt;
     * the error event may not have been polled yet. */
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        s->fatal_pending = true;
    /* On failure librdkafka did not take body or headers. */
    log_nack(s, m->topic, RD_KAFKA_PARTITION_UA, err);
    FREE_AND_NULL(m->body);
    rd_kafka_headers_destroy(m->headers);
    m->headers = NULL;
    slot_settle(s, i, false);
    return SINK_FAILED;
}

bool sink_over_limit(const struct sink *s)
{
    return s->bytes_in_flight >= s->cfg->max_inflight_bytes;
}

bool sink_under_resume(const struct sink *s)
{
    return s->bytes_in_flight <= s->cfg->max_inflight_bytes / 100 * RESUME_PERCENT;
}

size_t sink_in_flight(const struct sink *s)
{
    return s->in_flight;
}

void sink_inject_fatal(struct sink *s, const char *reason)
{
    rd_kafka_resp_err_t err =
        rd_kafka_test_fatal_error(s->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, reason);
    if (err)
        log_warn("kafka: cannot inject fatal error: %s", rd_kafka_err2str(err));
}

const struct sink_stats *sink_stats(const struct sink *s)
{
    return &s->stats;
}
