/* sink.c - the Kafka producers, driven from the libevent loop (see sink.h).
 *
 * Every accepted message holds a slot in the table of messages in flight
 * (slot.h); the slot's index (plus one) is the message's opaque, so a
 * delivery report finds its channel's confirm tracker without a
 * per-message allocation.
 *
 * The partition gate. librdkafka's idempotent producer stops sending a
 * partition once five of its messages are in flight (it counts messages
 * against a limit meant for requests; librdkafka PR #4989), and while it
 * is stopped, its broker thread polls with a zero timeout as soon as the
 * partition's next batch has waited linger.ms: a spin that takes the
 * brokers' CPU and makes round trips longer still (tests/bench/NOTES.md).
 * So hopper picks each message's partition itself, as the configured
 * partitioner would, and hands a partition's messages to librdkafka only
 * while none of its earlier ones are there. The rest are held here, in
 * order, and go over together, at most one request's worth, when the last
 * delivery report of the previous batch arrives. They wait no longer than
 * they would have inside librdkafka, and no batch sits expired behind a
 * request in flight.
 *
 * Two producers, a prompt one and a batch one: producer.c says why, and
 * the gate below chooses between them for each release.
 *
 * The partition count comes from librdkafka: a topic's first messages are
 * handed over unpartitioned and the partitioner callback that places them
 * records the count. It is learned again the same way every
 * topic.metadata.refresh.interval.ms, at a moment when nothing of the topic
 * is held (so a topic that never stops queueing notices added partitions
 * late; keys keep their old partitions meanwhile). While an unpartitioned
 * message of a topic is in librdkafka, all of the topic's partitions hold,
 * so nothing overtakes it, and it goes to the producer that has its
 * partition's messages, so it overtakes nothing either. */
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "partition.h"
#include "producer.h"
#include "slot.h"
#include "topic.h"

/* A record's size in a produce request beyond body and key (headers,
 * framing), estimated high so that one release never outgrows batch.size
 * and leaves in two requests. */
#define RECORD_OVERHEAD 512
/* Resume intake once in-flight bytes fell to this share of the bound. */
#define RESUME_PERCENT 75
/* Repeats of the same producer error, or of nacks for the same reason, are
 * logged at most this often; the next line says how many were left out. */
#define ERROR_LOG_INTERVAL_S 10
/* A keyless message goes to the first partition with nothing in
 * librdkafka among this many, looking from a rotating start. */
#define SPREAD_SCAN 8
/* The largest release the prompt producer takes: librdkafka's idempotent
 * producer sends a partition's messages while fewer than five
 * (RD_KAFKA_IDEMP_MAX_INFLIGHT) are in flight, so a release of five or
 * fewer never waits behind its own first request. */
#define PROMPT_MAX 5
/* How often a message may go back to its partition's queue because
 * librdkafka lost the partition (requeue()) before it is nacked. */
#define MAX_REQUEUES 10
/* After a failed producer rebuild, the next try comes this much later;
 * publishes are nacked meanwhile. */
#define REBUILD_RETRY_MS 1000

struct log_limit {
    rd_kafka_resp_err_t err;
    int64_t logged; /* monotonic ms */
    uint64_t left_out;
};

struct gate_part {
    uint32_t in_kafka;       /* handed over, no report yet */
    enum producer_lane lane; /* whose producer has them, while in_kafka */
    uint32_t head, tail;     /* held queue, SLOT_NONE when empty */
    uint32_t requeued_tail;  /* last of the release's messages put back at the head */
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
    size_t held;
    /* Messages sent unpartitioned whose topic librdkafka lost before hopper
     * knew its partition count: resent unpartitioned, in order, from the
     * timer (limbo_retry). Linked through slot.next. */
    uint32_t limbo_head, limbo_tail;
    size_t n_limbo;

    struct topic_cache topics;
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

static bool part_open(const struct topic *t, int32_t p)
{
    return !t->unpartitioned && !t->parts[p].in_kafka && t->parts[p].head == SLOT_NONE;
}

/* A keyless message: the first partition with nothing in librdkafka, from
 * a rotating start, else the one with the fewest messages there. */
static int32_t spread_pick(struct topic *t)
{
    int32_t best = t->spread_next % t->cnt;
    int32_t n = t->cnt < SPREAD_SCAN ? t->cnt : SPREAD_SCAN;
    for (int32_t k = 0; k < n; k++) {
        int32_t p = (t->spread_next + k) % t->cnt;
        if (part_open(t, p)) {
            best = p;
            break;
        }
        if (t->parts[p].in_kafka < t->parts[best].in_kafka)
            best = p;
    }
    t->spread_next = (best + 1) % t->cnt;
    return best;
}

/* Take the partition count librdkafka's partitioner last saw. Returns
 * false while none is known. */
static bool learn_count(struct topic *t)
{
    int32_t learned = __atomic_load_n(&t->learned_cnt, __ATOMIC_ACQUIRE);
    if (learned <= 0)
        return false;
    if (learned > t->n_parts) {
        t->parts = xrealloc(t->parts, (size_t)learned * sizeof *t->parts);
        for (int32_t p = t->n_parts; p < learned; p++)
            t->parts[p] = (struct gate_part){
                .head = SLOT_NONE, .tail = SLOT_NONE, .requeued_tail = SLOT_NONE};
        t->n_parts = learned;
    }
    if (learned != t->cnt) {
        if (t->cnt)
            log_info("kafka: topic %s now has %" PRId32 " partitions", t->name, learned);
        t->cnt = learned;
    }
    return true;
}

/* The partition for a message, or RD_KAFKA_PARTITION_UA to let librdkafka
 * place it (and learn the count). */
static int32_t pick_partition(struct sink *s, struct topic *t, const void *key, size_t key_len)
{
    if (!learn_count(t))
        return RD_KAFKA_PARTITION_UA;
    if (!t->held && !t->unpartitioned) {
        int64_t now = mono_ms();
        if (now >= t->learn_due_ms) {
            t->learn_due_ms = now + s->limits.refresh_ms;
            return RD_KAFKA_PARTITION_UA;
        }
    }
    if (partition_spreads(t->partitioner, key, key_len))
        return spread_pick(t);
    return partition_of_key(t->partitioner, key, key_len, t->cnt);
}

/* Hand slot i's message to librdkafka, through the producer of lane. On
 * success librdkafka owns body and headers; on failure nothing was taken. */
static rd_kafka_resp_err_t hand_over(struct sink *s, uint32_t i, enum producer_lane lane,
                                     void *body, size_t body_len, const void *key, size_t key_len,
                                     rd_kafka_headers_t *headers)
{
    struct slot *sl = &s->slots.at[i];
    struct topic *t = sl->topic;
    rd_kafka_resp_err_t err = rd_kafka_producev(
        s->producers[lane].rk, RD_KAFKA_V_RKT(t->rkt[lane]), RD_KAFKA_V_PARTITION(sl->partition),
        RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(body, body_len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_HEADERS(headers),
        RD_KAFKA_V_OPAQUE((void *)(uintptr_t)(i + 1)), RD_KAFKA_V_END);
    if (err)
        return err;
    sl->state = SLOT_IN_KAFKA;
    s->stats.handed[lane]++;
    if (sl->partition == RD_KAFKA_PARTITION_UA) {
        t->unpartitioned++;
    } else {
        t->parts[sl->partition].in_kafka++;
        t->parts[sl->partition].lane = lane;
    }
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* The producer for a message handed over unpartitioned. When the partition
 * count is known (a relearning probe), the one that has messages in flight
 * in the partition the message will land in, unless the count changed: in
 * one producer librdkafka keeps them in order, through the other the probe
 * could overtake them. Spread messages promise no order. */
static enum producer_lane unpartitioned_lane(const struct topic *t, const void *key, size_t key_len)
{
    if (t->cnt <= 0 || partition_spreads(t->partitioner, key, key_len))
        return PRODUCER_PROMPT;
    const struct gate_part *pt = &t->parts[partition_of_key(t->partitioner, key, key_len, t->cnt)];
    return pt->in_kafka ? pt->lane : PRODUCER_PROMPT;
}

/* librdkafka refused slot i's message for good: nack it. */
static void refused(struct sink *s, uint32_t i, rd_kafka_resp_err_t err)
{
    /* A fatal error refuses every produce until the producers are rebuilt;
     * the error event may not have been polled yet. */
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        s->fatal_pending = true;
    log_nack(s, s->slots.at[i].topic->name, s->slots.at[i].partition, err);
    settle(s, i, false);
}

static uint32_t held_pop(struct sink *s, struct topic *t, int32_t p)
{
    struct gate_part *pt = &t->parts[p];
    uint32_t i = pt->head;
    pt->head = s->slots.at[i].next;
    if (pt->head == SLOT_NONE)
        pt->tail = SLOT_NONE;
    if (i == pt->requeued_tail)
        pt->requeued_tail = SLOT_NONE;
    t->held--;
    s->held--;
    return i;
}

/* librdkafka lost track of the message's partition. A topic just created
 * can be missing from one broker's metadata for a moment, and librdkafka
 * before 2.10 then takes the topic for gone at once (it waits
 * topic.metadata.propagation.max.ms only for a topic it never saw): the
 * partition count drops to 0 and the partition's messages fail, those
 * already sent once with POSSIBLY_PERSISTED. Such a message waits in its
 * partition's queue, in order, and is handed over again, instead of being
 * nacked: for one that was in fact written this gives a duplicate, as the
 * nack would have (its publisher sends it again). */
static bool lost_partition(rd_kafka_resp_err_t err)
{
    /* __DESTROY: the lost partition's queue was dropped from its broker's
     * thread (seen in the mock-cluster test); hopper's own teardown never
     * polls reports. */
    return err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
           err == RD_KAFKA_RESP_ERR__DESTROY;
}

/* The partition a message reported with a lost partition waits in: its
 * own, or for one handed over unpartitioned (a relearning probe) the one
 * it would have landed in, while the count is known. UA: none (a topic
 * never seen, whose messages are nacked). */
static int32_t requeue_partition(struct topic *t, int32_t p, const rd_kafka_message_t *m)
{
    /* A topic's first message goes over before hopper has the count that
     * librdkafka's partitioner saw for it: take it now. */
    if (p != RD_KAFKA_PARTITION_UA || (t->cnt <= 0 && !learn_count(t)))
        return p;
    if (partition_spreads(t->partitioner, m->key, m->key_len))
        return spread_pick(t);
    return partition_of_key(t->partitioner, m->key, m->key_len, t->cnt);
}

/* Take slot i's message back from its report, to hand it over again:
 * librdkafka frees its payload and key with the report; the headers can be
 * taken back. */
static void take_back(struct sink *s, uint32_t i, const rd_kafka_message_t *m)
{
    struct slot *sl = &s->slots.at[i];
    sl->state = SLOT_HELD;
    sl->held_since_ms = mono_ms();
    sl->requeues++;
    sl->body = xmalloc(m->len ? m->len : 1);
    memcpy(sl->body, m->payload, m->len);
    sl->body_len = m->len;
    slot_keep_key(sl, m->key, m->key_len);
    rd_kafka_headers_t *headers = NULL;
    rd_kafka_message_detach_headers((rd_kafka_message_t *)m, &headers);
    sl->headers = headers;
    s->stats.requeued++;
}

/* Slot i's message went unpartitioned and its topic was lost before its
 * partition count was known: it waits in the limbo list. */
static void limbo_add(struct sink *s, uint32_t i, const rd_kafka_message_t *m)
{
    take_back(s, i, m);
    s->slots.at[i].next = SLOT_NONE;
    if (s->limbo_tail == SLOT_NONE)
        s->limbo_head = i;
    else
        s->slots.at[s->limbo_tail].next = i;
    s->limbo_tail = i;
    s->n_limbo++;
}

/* Put slot i's message, which librdkafka reported with a lost partition,
 * back into its partition's queue: after the ones of the same release put
 * back before it, before everything that waited behind the release. */
static void requeue(struct sink *s, uint32_t i, const rd_kafka_message_t *m)
{
    struct slot *sl = &s->slots.at[i];
    struct gate_part *pt = &sl->topic->parts[sl->partition];
    take_back(s, i, m);
    uint32_t after = pt->requeued_tail;
    sl->next = after == SLOT_NONE ? pt->head : s->slots.at[after].next;
    if (after == SLOT_NONE)
        pt->head = i;
    else
        s->slots.at[after].next = i;
    if (pt->tail == after)
        pt->tail = i;
    pt->requeued_tail = i;
    sl->topic->held++;
    s->held++;
}

/* The producer for a partition's next release: the prompt one when at most
 * PROMPT_MAX messages wait. */
static enum producer_lane release_lane(const struct sink *s, const struct gate_part *pt)
{
    uint32_t n = 0;
    for (uint32_t i = pt->head; i != SLOT_NONE && n <= PROMPT_MAX; i = s->slots.at[i].next)
        n++;
    return n <= PROMPT_MAX ? PRODUCER_PROMPT : PRODUCER_BATCH;
}

/* Hand partition p's held messages over, at most one request's worth, if
 * nothing of it is in librdkafka. */
static void part_release(struct sink *s, struct topic *t, int32_t p)
{
    struct gate_part *pt = &t->parts[p];
    if (t->unpartitioned || pt->in_kafka || pt->head == SLOT_NONE)
        return;
    enum producer_lane lane = release_lane(s, pt);
    uint64_t bytes = 0;
    uint32_t n = 0;
    while (pt->head != SLOT_NONE) {
        struct slot *sl = &s->slots.at[pt->head];
        uint64_t size = sl->body_len + sl->key_len + RECORD_OVERHEAD;
        if (n && (n >= s->limits.batch_msgs || bytes + size > s->limits.batch_bytes))
            break;
        rd_kafka_resp_err_t err =
            hand_over(s, pt->head, lane, sl->body, sl->body_len, sl->key, sl->key_len, sl->headers);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL || lost_partition(err))
            break; /* the timer tries again, within message.timeout.ms */
        uint32_t i = held_pop(s, t, p);
        sl = &s->slots.at[i];
        FREE_AND_NULL(sl->key); /* librdkafka copied it */
        if (err) {
            refused(s, i, err);
            continue;
        }
        sl->body = NULL;
        sl->headers = NULL;
        bytes += size;
        n++;
    }
    if (n)
        s->stats.batches_released++;
}

/* A report came for a message handed over to partition p (or UA). */
static void gate_reported(struct sink *s, struct topic *t, int32_t p)
{
    if (p == RD_KAFKA_PARTITION_UA) {
        if (--t->unpartitioned == 0)
            for (int32_t q = 0; q < t->n_parts; q++)
                part_release(s, t, q);
    } else if (--t->parts[p].in_kafka == 0) {
        part_release(s, t, p);
    }
}

/* Nack partition p's held messages that have waited since older_than or
 * longer. */
static void nack_held(struct sink *s, struct topic *t, int32_t p, int64_t older_than,
                      rd_kafka_resp_err_t why)
{
    struct gate_part *pt = &t->parts[p];
    while (pt->head != SLOT_NONE && s->slots.at[pt->head].held_since_ms <= older_than)
        refused(s, held_pop(s, t, p), why);
}

/* Hand the limbo's messages over again, in order, while librdkafka takes
 * them; nack those that waited past the deadline (all of them when
 * older_than is INT64_MAX). */
static void limbo_retry(struct sink *s, int64_t older_than, rd_kafka_resp_err_t why)
{
    while (s->limbo_head != SLOT_NONE) {
        uint32_t i = s->limbo_head;
        struct slot *sl = &s->slots.at[i];
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
        bool late = older_than == INT64_MAX || sl->held_since_ms < older_than;
        if (!late && s->producers[PRODUCER_PROMPT].rk) {
            err = hand_over(s, i, unpartitioned_lane(sl->topic, sl->key, sl->key_len), sl->body,
                            sl->body_len, sl->key, sl->key_len, sl->headers);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL || lost_partition(err))
                return; /* still lost: the next tick tries again */
        }
        s->limbo_head = sl->next;
        if (s->limbo_head == SLOT_NONE)
            s->limbo_tail = SLOT_NONE;
        s->n_limbo--;
        FREE_AND_NULL(sl->key); /* librdkafka copied it, or it is refused */
        if (!late && !err) {
            sl->body = NULL; /* librdkafka owns body and headers now */
            sl->headers = NULL;
            continue;
        }
        refused(s, i, late ? why : err);
    }
}

/* Nack held messages whose wait passed message.timeout.ms (librdkafka's
 * own deadline starts again when a message is handed over), or all of
 * them; retry releases refused for a full queue. */
static void sweep_held(struct sink *s, bool nack_all)
{
    int64_t older_than = nack_all ? INT64_MAX : mono_ms() - s->limits.msg_timeout_ms;
    rd_kafka_resp_err_t why =
        nack_all ? RD_KAFKA_RESP_ERR__PURGE_QUEUE : RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
    if (s->n_limbo)
        limbo_retry(s, older_than, why);
    if (!s->held)
        return;
    struct topic *t;
    TOPIC_FOR_EACH(&s->topics, t)
    {
        if (!t->held)
            continue;
        for (int32_t p = 0; p < t->n_parts; p++) {
            nack_held(s, t, p, older_than, why);
            part_release(s, t, p);
        }
    }
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
        if (!ok && lost_partition(m->err) && s->slots.at[i].requeues < MAX_REQUEUES) {
            int32_t q = requeue_partition(t, p, m);
            if (q != RD_KAFKA_PARTITION_UA) {
                s->slots.at[i].partition = q;
                requeue(s, i, m);
            } else {
                limbo_add(s, i, m);
            }
            gate_reported(s, t, p);
            continue;
        }
        if (!ok)
            log_nack(s, rd_kafka_topic_name(m->rkt), m->partition, m->err);
        settle(s, i, ok);
        /* The partition could not be reached for message.timeout.ms: what
         * waits behind the batch would only wait as long again. */
        if (m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT && p != RD_KAFKA_PARTITION_UA)
            nack_held(s, t, p, INT64_MAX, m->err);
        gate_reported(s, t, p);
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
    s->limbo_head = s->limbo_tail = SLOT_NONE;
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
    if (pipe2(s->pipefd, O_NONBLOCK | O_CLOEXEC) == -1) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        free(s);
        return NULL;
    }
    if (build_producers(s, err, errlen)) {
        close(s->pipefd[0]);
        close(s->pipefd[1]);
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

/* Keep slot i's message in its partition's queue. Takes body and headers. */
static void hold(struct sink *s, uint32_t i, struct sink_msg *m)
{
    struct slot *sl = &s->slots.at[i];
    struct topic *t = sl->topic;
    struct gate_part *pt = &t->parts[sl->partition];
    sl->state = SLOT_HELD;
    sl->held_since_ms = mono_ms();
    sl->body = m->body;
    sl->body_len = m->body_len;
    sl->headers = m->headers;
    slot_keep_key(sl, m->key, m->key_len);
    if (pt->tail == SLOT_NONE)
        pt->head = i;
    else
        s->slots.at[pt->tail].next = i;
    pt->tail = i;
    t->held++;
    s->held++;
    s->stats.held++;
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
        s->slots.at[i].partition = pick_partition(s, t, m->key, m->key_len);
        if (s->slots.at[i].partition != RD_KAFKA_PARTITION_UA &&
            !part_open(t, s->slots.at[i].partition)) {
            hold(s, i, m);
            s->stats.produced++;
            return SINK_OK;
        }
        /* One message to an idle partition goes at once, and so do a
         * topic's first messages (unpartitioned): a burst of those before
         * librdkafka knows the topic may spin for a round trip, once. */
        enum producer_lane lane = s->slots.at[i].partition == RD_KAFKA_PARTITION_UA
                                      ? unpartitioned_lane(t, m->key, m->key_len)
                                      : PRODUCER_PROMPT;
        err = hand_over(s, i, lane, m->body, m->body_len, m->key, m->key_len, m->headers);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            s->stats.produced++;
            return SINK_OK;
        }
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            /* Give the slot back without an outcome: the caller retries. */
            slot_release(&s->slots, i);
            return SINK_FULL;
        }
        if (lost_partition(err) && s->slots.at[i].partition != RD_KAFKA_PARTITION_UA) {
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
