/* sink.c - the Kafka producers, driven from the libevent loop (see sink.h).
 *
 * Every accepted message holds a slot in the table of messages in flight
 * (slot.h); the slot's index (plus one) is the message's opaque, so a
 * delivery report finds its channel's confirm tracker without a
 * per-message allocation.
 *
 * Between sink_produce and librdkafka sits the partition gate (gate.c):
 * it picks each message's partition and holds what must wait. The gate's
 * releases go to one of two producers, a prompt one and a batch one
 * (producer.c says why); both are one unit for errors: a fatal error in
 * either rebuilds both. Topics and their librdkafka handles live in the
 * topic cache (topic.c); which topics a publish may go to, and whether
 * they exist, in the topic rule (topicrule.c), whose questions are
 * answered on the prompt producer's main queue like CreateTopics.
 *
 * This file keeps what ties them together: sink_produce, the delivery
 * reports and other events drained from both producers' main queues
 * (signalled through a pipe, polled from a timer too), and the rebuild
 * after a fatal error. */
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gate.h"
#include "log.h"
#include "partition.h"
#include "producer.h"
#include "slot.h"
#include "topic.h"
#include "topicrule.h"

/* Resume intake once in-flight bytes fell to this share of the bound. */
#define RESUME_PERCENT 75
/* Repeats of the same producer error, or of nacks for the same reason, are
 * logged at most this often; the next line says how many were left out. */
#define ERROR_LOG_INTERVAL_S 10
/* How often a message may go back to its partition's queue because
 * librdkafka lost the partition (gate_requeue) before it is nacked. */
#define MAX_REQUEUES 10
/* After a failed producer rebuild, the next try comes this much later;
 * publishes are nacked meanwhile. */
#define REBUILD_RETRY_MS 1000

struct log_limit {
    rd_kafka_resp_err_t err;
    int64_t logged; /* monotonic ms */
    uint64_t left_out;
};

struct sink {
    struct event_base *base;
    const struct config *cfg;
    struct sink_callbacks cb;

    /* Both NULL after a failed rebuild, until the retry at rebuild_due_ms. */
    struct producer producers[PRODUCER_LANES];
    int pipefd[2]; /* both producers' main queues signal it */
    struct event *pipe_ev;
    struct event *timer_ev;
    bool fatal_pending;
    int64_t rebuild_due_ms;
    /* From the producers' configuration (the same in both). */
    struct producer_limits limits;

    struct slot_table slots;
    struct gate gate;

    struct topic_cache topics;
    struct topicrule *rule;
    bool topics_known;          /* the rule got answers in this drain */
    struct log_limit error_log; /* producer error events */
    struct log_limit nack_log;  /* messages Kafka did not persist */
    struct sink_stats stats;
};

/* Signed, since deadlines here are computed by subtraction. */
static int64_t mono_ms(void)
{
    return (int64_t)monotonic_ms();
}

/* Whether a line about err is due now; if not, it is counted as left out. */
static bool log_due(struct log_limit *l, rd_kafka_resp_err_t err)
{
    int64_t now = mono_ms();
    if (err == l->err && now - l->logged < ERROR_LOG_INTERVAL_S * 1000) {
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

/* Settle slot i with its outcome and free it. */
static void settle(struct sink *s, uint32_t i, bool ok)
{
    if (i >= s->slots.n_slots || s->slots.at[i].state == SLOT_FREE) {
        log_error("kafka: delivery report for unknown message %" PRIu32, i);
        return;
    }
    struct confirm *c = s->slots.at[i].tracker;
    uint64_t tag = s->slots.at[i].tag;
    slot_free_payload(&s->slots.at[i]);
    slot_release(&s->slots, i);
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

/* After the old producers are gone: no report will come for what is left.
 * Held messages were nacked before (purge_all), so their counts are 0. */
static void nack_all_slots(struct sink *s)
{
    for (uint32_t i = 0; i < s->slots.n_slots; i++)
        if (s->slots.at[i].state != SLOT_FREE)
            settle(s, i, false);
}

/* gate_ops.produce: slot i's message to librdkafka, through the producer of
 * lane. On success librdkafka owns body and headers; on failure nothing was
 * taken. */
static rd_kafka_resp_err_t produce(void *arg, uint32_t i, enum producer_lane lane, void *body,
                                   size_t body_len, const void *key, size_t key_len,
                                   rd_kafka_headers_t *headers)
{
    struct sink *s = arg;
    struct slot *sl = &s->slots.at[i];
    rd_kafka_resp_err_t err = rd_kafka_producev(
        s->producers[lane].rk, RD_KAFKA_V_RKT(sl->topic->rkt[lane]),
        RD_KAFKA_V_PARTITION(sl->partition), RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_VALUE(body, body_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)(i + 1)), RD_KAFKA_V_END);
    if (!err)
        s->stats.handed[lane]++;
    return err;
}

/* librdkafka refused slot i's message for good: nack it (gate_ops.refuse
 * too). */
static void refused(void *arg, uint32_t i, rd_kafka_resp_err_t err)
{
    struct sink *s = arg;
    /* A fatal error refuses every produce until the producers are rebuilt;
     * the error event may not have been polled yet. */
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        s->fatal_pending = true;
    log_nack(s, s->slots.at[i].topic->name, s->slots.at[i].partition, err);
    settle(s, i, false);
}

/* The gate's timer work (gate_sweep), counted; nack_all before a purge. */
static void sweep_held(struct sink *s, bool nack_all)
{
    bool producing = s->producers[PRODUCER_PROMPT].rk != NULL;
    s->stats.batches_released += gate_sweep(&s->gate, &s->topics, nack_all, producing);
}

/* Keep slot i's message in its partition's queue. Takes body and headers. */
static void hold(struct sink *s, uint32_t i, struct sink_msg *m)
{
    gate_hold(&s->gate, i, m->body, m->body_len, m->key, m->key_len, m->headers);
    s->stats.held++;
}

static void handle_dr(struct sink *s, rd_kafka_event_t *ev)
{
    const rd_kafka_message_t *m;
    while ((m = rd_kafka_event_message_next(ev))) {
        /* Only PERSISTED counts: POSSIBLY_PERSISTED (a timeout after send)
         * may or may not be in Kafka, so the publisher must republish. */
        bool ok = m->err == RD_KAFKA_RESP_ERR_NO_ERROR &&
                  rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_PERSISTED;
        uint32_t i = (uint32_t)((uintptr_t)m->_private - 1);
        if (i >= s->slots.n_slots || s->slots.at[i].state != SLOT_IN_KAFKA) {
            log_error("kafka: delivery report for unknown message %" PRIu32, i);
            continue;
        }
        struct topic *t = s->slots.at[i].topic;
        int32_t p = s->slots.at[i].partition;
        if (!ok && gate_lost_partition(m->err) && s->slots.at[i].requeues < MAX_REQUEUES) {
            gate_requeue(&s->gate, i, m);
            s->stats.requeued++;
            s->stats.batches_released += gate_reported(&s->gate, t, p);
            continue;
        }
        if (!ok)
            log_nack(s, rd_kafka_topic_name(m->rkt), m->partition, m->err);
        settle(s, i, ok);
        /* The partition could not be reached for message.timeout.ms: what
         * waits behind the batch would only wait as long again. */
        if (m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT && p != RD_KAFKA_PARTITION_UA)
            gate_nack_held(&s->gate, t, p, INT64_MAX, m->err);
        s->stats.batches_released += gate_reported(&s->gate, t, p);
    }
}

static const char *const lane_names[PRODUCER_LANES] = {"prompt", "batch"};

static void handle_error(struct sink *s, enum producer_lane lane, rd_kafka_event_t *ev)
{
    rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
    if (rd_kafka_event_error_is_fatal(ev)) {
        char reason[512];
        rd_kafka_fatal_error(s->producers[lane].rk, reason, sizeof reason);
        log_error("kafka: fatal error in the %s producer: %s", lane_names[lane], reason);
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
        topicrule_created(s->rule, name, err);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            log_info("kafka: created topic %s", name);
            s->stats.topics_created++;
        } else if (err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            /* Forget it, so the next publish to it tries again. Messages
             * already queued fail after topic.metadata.propagation.max.ms
             * and are nacked. */
            log_error("kafka: cannot create topic %s: %s", name,
                      rd_kafka_topic_result_error_string(topics[i]));
            topic_create_failed(&s->topics, name);
        }
    }
}

static void handle_log(enum producer_lane lane, rd_kafka_event_t *ev)
{
    const char *fac, *str;
    int level;
    if (rd_kafka_event_log(ev, &fac, &str, &level) == 0)
        log_msg(level <= 3   ? LOG_ERROR
                : level <= 4 ? LOG_WARN
                             : LOG_INFO,
                "kafka: %s producer: %s: %s", lane_names[lane], fac, str);
}

static void drain_lane(struct sink *s, enum producer_lane lane)
{
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(s->producers[lane].mainq, 0))) {
        switch (rd_kafka_event_type(ev)) {
        case RD_KAFKA_EVENT_DR:
            handle_dr(s, ev);
            break;
        case RD_KAFKA_EVENT_ERROR:
            handle_error(s, lane, ev);
            break;
        case RD_KAFKA_EVENT_CREATETOPICS_RESULT:
            handle_create_topics(s, ev);
            break;
        case RD_KAFKA_EVENT_DESCRIBETOPICS_RESULT:
            if (topicrule_described(s->rule, ev))
                s->topics_known = true;
            break;
        case RD_KAFKA_EVENT_LOG:
            handle_log(lane, ev);
            break;
        default:
            break;
        }
        rd_kafka_event_destroy(ev);
    }
}

/* Poll both producers' main queues until empty. Returns with fatal_pending
 * set when the producers must be rebuilt. */
static void drain_queue(struct sink *s)
{
    for (enum producer_lane lane = 0; lane < PRODUCER_LANES; lane++)
        if (s->producers[lane].mainq)
            drain_lane(s, lane);
}

static void destroy_producers(struct sink *s)
{
    for (enum producer_lane lane = 0; lane < PRODUCER_LANES; lane++)
        producer_close(&s->producers[lane]);
}

/* Build both producers, their main queues signalling the pipe. On failure
 * neither exists and err says why. */
static int build_producers(struct sink *s, char *err, size_t errlen)
{
    for (enum producer_lane lane = 0; lane < PRODUCER_LANES; lane++) {
        if (producer_open(&s->producers[lane], s->cfg, lane, s->pipefd[1], &s->limits, err,
                          errlen)) {
            destroy_producers(s);
            return -1;
        }
    }
    return 0;
}

static void detach_producers(struct sink *s)
{
    topic_cache_drop_handles(&s->topics);
    destroy_producers(s);
    /* Only now: librdkafka's partitioner callback has the topics as its
     * opaque until the producers are gone. */
    topic_cache_clear(&s->topics);
}

/* Purge whatever librdkafka holds and settle it as nacked. Held messages
 * are nacked first, so that the purge's reports release nothing. */
static void purge_all(struct sink *s)
{
    sweep_held(s, true);
    for (enum producer_lane lane = 0; lane < PRODUCER_LANES; lane++)
        rd_kafka_purge(s->producers[lane].rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    drain_queue(s);
}

/* After a fatal error: nack everything unconfirmed, then new producers. If
 * they cannot be built (only resource exhaustion gets there: the same
 * properties worked at startup), publishes are nacked until a retry
 * succeeds; hopper stays up and says why. */
static void rebuild(struct sink *s)
{
    s->fatal_pending = false;
    if (s->producers[PRODUCER_PROMPT].rk) {
        log_error("kafka: rebuilding producers, nacking %zu messages in flight",
                  s->slots.in_flight);
        purge_all(s);
        s->fatal_pending = false;
        detach_producers(s);
        nack_all_slots(s);
    }
    char err[512];
    if (build_producers(s, err, sizeof err)) {
        log_error("kafka: cannot rebuild the producers, nacking every publish until they are "
                  "(next try in %d ms): %s",
                  REBUILD_RETRY_MS, err);
        s->rebuild_due_ms = mono_ms() + REBUILD_RETRY_MS;
        return;
    }
    s->stats.fatal_rebuilds++;
}

static void poll_and_notify(struct sink *s)
{
    drain_queue(s);
    if (s->fatal_pending)
        rebuild(s);
    s->cb.drained(s->cb.arg);
    if (s->topics_known && s->cb.topics_known) {
        s->topics_known = false;
        s->cb.topics_known(s->cb.arg);
    }
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
    drain_pipe(fd);
    poll_and_notify(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sink *s = arg;
    if (!s->producers[PRODUCER_PROMPT].rk && mono_ms() >= s->rebuild_due_ms)
        rebuild(s);
    sweep_held(s, false);
    poll_and_notify(s);
}

struct sink *sink_new(struct event_base *base, const struct config *cfg,
                      const struct sink_callbacks *cb, char *err, size_t errlen)
{
    struct sink *s = xcalloc(1, sizeof *s);
    s->base = base;
    s->cfg = cfg;
    s->cb = *cb;
    slot_table_init(&s->slots);
    const struct partitioner *partitioner = partition_default();
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        const struct kv *p = &cfg->kafka_props[i];
        if (strcmp(p->key, "partitioner"))
            continue;
        partitioner = partition_find(p->value);
        if (!partitioner) {
            snprintf(err, errlen, "kafka.properties.partitioner: unknown partitioner \"%s\"",
                     p->value);
            free(s);
            return NULL;
        }
    }
    topic_cache_init(&s->topics, cfg, partitioner, s->producers, &s->limits);
    s->rule = topicrule_new(cfg, s->producers);
    gate_init(&s->gate, &s->slots, &s->limits,
              &(struct gate_ops){.produce = produce, .refuse = refused, .arg = s});
    if (pipe2(s->pipefd, O_NONBLOCK | O_CLOEXEC) == -1) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        topicrule_free(s->rule);
        free(s);
        return NULL;
    }
    if (build_producers(s, err, errlen)) {
        close(s->pipefd[0]);
        close(s->pipefd[1]);
        topicrule_free(s->rule);
        free(s);
        return NULL;
    }
    s->pipe_ev = event_new(base, s->pipefd[0], EV_READ | EV_PERSIST, on_pipe, s);
    s->timer_ev = event_new(base, -1, EV_PERSIST, on_timer, s);
    struct timeval tv = {0, 200 * 1000};
    if (!s->pipe_ev || !s->timer_ev || event_add(s->pipe_ev, NULL) || event_add(s->timer_ev, &tv)) {
        snprintf(err, errlen, "kafka: cannot set up the delivery report events");
        sink_free(s);
        return NULL;
    }
    return s;
}

void sink_free(struct sink *s)
{
    if (!s)
        return;
    sink_abandon(s);
    detach_producers(s);
    if (s->pipe_ev)
        event_free(s->pipe_ev);
    if (s->timer_ev)
        event_free(s->timer_ev);
    close(s->pipefd[0]);
    close(s->pipefd[1]);
    topic_cache_free(&s->topics);
    topicrule_free(s->rule);
    slot_table_free(&s->slots);
    free(s);
}

void sink_abandon(struct sink *s)
{
    if (!s->slots.in_flight)
        return;
    log_warn("kafka: giving up on %zu messages in flight (nacked)", s->slots.in_flight);
    if (s->producers[PRODUCER_PROMPT].rk)
        purge_all(s);
    /* Purged in-flight requests report only when their broker answers. */
    nack_all_slots(s);
    s->cb.drained(s->cb.arg);
}

void sink_ensure_topic(struct sink *s, const char *topic)
{
    topic_ensure(&s->topics, topic);
}

enum topicrule_answer sink_topic_check(struct sink *s, const char *topic,
                                       struct topicrule_refusal *refusal)
{
    return topicrule_check(s->rule, topic, refusal);
}

enum sink_status sink_produce(struct sink *s, struct sink_msg *m)
{
    /* Without producers (a rebuild failed) nothing can be persisted. */
    bool producing = s->producers[PRODUCER_PROMPT].rk != NULL;
    struct topic *t = producing ? topic_get(&s->topics, m->topic) : NULL;
    uint64_t cost = slot_cost(m->body_len, m->key_len);
    uint32_t i = slot_take(&s->slots, m->tracker, m->tag, cost);
    rd_kafka_resp_err_t err = producing ? RD_KAFKA_RESP_ERR__INVALID_ARG : RD_KAFKA_RESP_ERR__FATAL;
    if (t) {
        s->slots.at[i].topic = t;
        s->slots.at[i].partition = gate_pick_partition(&s->gate, t, m->key, m->key_len);
        if (s->slots.at[i].partition != RD_KAFKA_PARTITION_UA &&
            !gate_open(t, s->slots.at[i].partition)) {
            hold(s, i, m);
            s->stats.produced++;
            return SINK_OK;
        }
        /* One message to an idle partition goes at once, and so do a
         * topic's first messages (unpartitioned): a burst of those before
         * librdkafka knows the topic may spin for a round trip, once. */
        enum producer_lane lane = s->slots.at[i].partition == RD_KAFKA_PARTITION_UA
                                      ? gate_unpartitioned_lane(t, m->key, m->key_len)
                                      : PRODUCER_PROMPT;
        err =
            gate_hand_over(&s->gate, i, lane, m->body, m->body_len, m->key, m->key_len, m->headers);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            s->stats.produced++;
            return SINK_OK;
        }
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            /* Give the slot back without an outcome: the caller retries. */
            slot_release(&s->slots, i);
            return SINK_FULL;
        }
        if (gate_lost_partition(err) && s->slots.at[i].partition != RD_KAFKA_PARTITION_UA) {
            hold(s, i, m);
            s->stats.produced++;
            return SINK_OK;
        }
    }
    /* On failure librdkafka took neither body nor headers. */
    FREE_AND_NULL(m->body);
    rd_kafka_headers_destroy(m->headers);
    m->headers = NULL;
    if (t) {
        refused(s, i, err);
    } else {
        log_nack(s, m->topic, RD_KAFKA_PARTITION_UA, err);
        settle(s, i, false);
    }
    return SINK_FAILED;
}

bool sink_over_limit(const struct sink *s)
{
    return s->slots.bytes_in_flight >= s->cfg->max_inflight_bytes;
}

bool sink_under_resume(const struct sink *s)
{
    return s->slots.bytes_in_flight <= s->cfg->max_inflight_bytes / 100 * RESUME_PERCENT;
}

size_t sink_in_flight(const struct sink *s)
{
    return s->slots.in_flight;
}

void sink_inject_fatal(struct sink *s, const char *reason)
{
    if (!s->producers[PRODUCER_PROMPT].rk)
        return;
    rd_kafka_resp_err_t err = rd_kafka_test_fatal_error(
        s->producers[PRODUCER_PROMPT].rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, reason);
    if (err)
        log_warn("kafka: cannot inject fatal error: %s", rd_kafka_err2str(err));
}

const struct sink_stats *sink_stats(const struct sink *s)
{
    return &s->stats;
}
