/* gate.c - the partition gate (see gate.h).
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
 * A release of up to PROMPT_MAX messages goes to the prompt producer, a
 * larger one to the batch producer (producer.c, "Two producers").
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
#include "gate.h"

#include <inttypes.h>
#include <string.h>

#include "log.h"
#include "partition.h"

/* A release fills one produce request as librdkafka fills it (its
 * msgset writer, rd_kafka_msg_wire_size): a message counts its body, key,
 * serialized headers and RECORD_OVERHEAD, the most a v2 record's varints
 * and attributes take (RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD); the request
 * counts everything written before the first record against batch.size
 * too, which REQUEST_OVERHEAD bounds (request and record-batch headers,
 * the topic's name apart, and a client.id of up to 500 bytes). A release
 * that outgrew the request would leave in two, the second behind the
 * first; one estimated too small sends fewer messages per round trip (a
 * flat 512 bytes per record left a quarter of each 1 KiB request empty;
 * tests/bench/NOTES.md, seventh session, has what it cost). */
#define RECORD_OVERHEAD 36
#define REQUEST_OVERHEAD 1024
/* A keyless message goes to the first partition with nothing in
 * librdkafka among this many, looking from a rotating start. */
#define SPREAD_SCAN 8
/* The largest release the prompt producer takes: librdkafka's idempotent
 * producer sends a partition's messages while fewer than five
 * (RD_KAFKA_IDEMP_MAX_INFLIGHT) are in flight, so a release of five or
 * fewer never waits behind its own first request. */
#define PROMPT_MAX 5

/* Signed, since deadlines here are computed by subtraction. */
static int64_t mono_ms(void)
{
    return (int64_t)monotonic_ms();
}

void gate_init(struct gate *g, struct slot_table *slots, const struct producer_limits *limits,
               const struct gate_ops *ops)
{
    *g = (struct gate){.slots = slots,
                       .limits = limits,
                       .ops = *ops,
                       .limbo_head = SLOT_NONE,
                       .limbo_tail = SLOT_NONE};
}

bool gate_open(const struct topic *t, int32_t p)
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
        if (gate_open(t, p)) {
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

int32_t gate_pick_partition(struct gate *g, struct topic *t, const void *key, size_t key_len)
{
    if (!learn_count(t))
        return RD_KAFKA_PARTITION_UA;
    if (!t->held && !t->unpartitioned) {
        int64_t now = mono_ms();
        if (now >= t->learn_due_ms) {
            t->learn_due_ms = now + g->limits->refresh_ms;
            return RD_KAFKA_PARTITION_UA;
        }
    }
    if (partition_spreads(t->partitioner, key, key_len))
        return spread_pick(t);
    return partition_of_key(t->partitioner, key, key_len, t->cnt);
}

rd_kafka_resp_err_t gate_hand_over(struct gate *g, uint32_t i, enum producer_lane lane, void *body,
                                   size_t body_len, const void *key, size_t key_len,
                                   rd_kafka_headers_t *headers)
{
    rd_kafka_resp_err_t err =
        g->ops.produce(g->ops.arg, i, lane, body, body_len, key, key_len, headers);
    if (err)
        return err;
    struct slot *sl = &g->slots->at[i];
    struct topic *t = sl->topic;
    sl->state = SLOT_IN_KAFKA;
    if (sl->partition == RD_KAFKA_PARTITION_UA) {
        t->unpartitioned++;
    } else {
        t->parts[sl->partition].in_kafka++;
        t->parts[sl->partition].lane = lane;
    }
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* When the partition count is known (a relearning probe), the one that has
 * messages in flight in the partition the message will land in, unless
 * the count changed: in one producer librdkafka keeps them in order,
 * through the other the probe could overtake them. Spread messages promise
 * no order. */
enum producer_lane gate_unpartitioned_lane(const struct topic *t, const void *key, size_t key_len)
{
    if (t->cnt <= 0 || partition_spreads(t->partitioner, key, key_len))
        return PRODUCER_PROMPT;
    const struct gate_part *pt = &t->parts[partition_of_key(t->partitioner, key, key_len, t->cnt)];
    return pt->in_kafka ? pt->lane : PRODUCER_PROMPT;
}

static uint32_t held_pop(struct gate *g, struct topic *t, int32_t p)
{
    struct gate_part *pt = &t->parts[p];
    uint32_t i = pt->head;
    pt->head = g->slots->at[i].next;
    if (pt->head == SLOT_NONE)
        pt->tail = SLOT_NONE;
    if (i == pt->requeued_tail)
        pt->requeued_tail = SLOT_NONE;
    t->held--;
    g->held--;
    return i;
}

void gate_hold(struct gate *g, uint32_t i, void *body, size_t body_len, const void *key,
               size_t key_len, rd_kafka_headers_t *headers)
{
    struct slot *sl = &g->slots->at[i];
    struct topic *t = sl->topic;
    struct gate_part *pt = &t->parts[sl->partition];
    sl->state = SLOT_HELD;
    sl->held_since_ms = mono_ms();
    sl->body = body;
    sl->body_len = body_len;
    sl->headers = headers;
    slot_keep_key(sl, key, key_len);
    if (pt->tail == SLOT_NONE)
        pt->head = i;
    else
        g->slots->at[pt->tail].next = i;
    pt->tail = i;
    t->held++;
    g->held++;
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
bool gate_lost_partition(rd_kafka_resp_err_t err)
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
static void take_back(struct gate *g, uint32_t i, const rd_kafka_message_t *m)
{
    struct slot *sl = &g->slots->at[i];
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
}

/* Slot i's message went unpartitioned and its topic was lost before its
 * partition count was known: it waits in the limbo list. */
static void limbo_add(struct gate *g, uint32_t i, const rd_kafka_message_t *m)
{
    take_back(g, i, m);
    g->slots->at[i].next = SLOT_NONE;
    if (g->limbo_tail == SLOT_NONE)
        g->limbo_head = i;
    else
        g->slots->at[g->limbo_tail].next = i;
    g->limbo_tail = i;
    g->n_limbo++;
}

/* Put slot i's message, which librdkafka reported with a lost partition,
 * back into its partition's queue: after the ones of the same release put
 * back before it, before everything that waited behind the release. */
static void requeue(struct gate *g, uint32_t i, const rd_kafka_message_t *m)
{
    struct slot *sl = &g->slots->at[i];
    struct gate_part *pt = &sl->topic->parts[sl->partition];
    take_back(g, i, m);
    uint32_t after = pt->requeued_tail;
    sl->next = after == SLOT_NONE ? pt->head : g->slots->at[after].next;
    if (after == SLOT_NONE)
        pt->head = i;
    else
        g->slots->at[after].next = i;
    if (pt->tail == after)
        pt->tail = i;
    pt->requeued_tail = i;
    sl->topic->held++;
    g->held++;
}

void gate_requeue(struct gate *g, uint32_t i, const rd_kafka_message_t *m)
{
    struct slot *sl = &g->slots->at[i];
    int32_t q = requeue_partition(sl->topic, sl->partition, m);
    if (q != RD_KAFKA_PARTITION_UA) {
        sl->partition = q;
        requeue(g, i, m);
    } else {
        limbo_add(g, i, m);
    }
}

/* The producer for a partition's next release: the prompt one when at most
 * PROMPT_MAX messages wait. */
static enum producer_lane release_lane(const struct gate *g, const struct gate_part *pt)
{
    uint32_t n = 0;
    for (uint32_t i = pt->head; i != SLOT_NONE && n <= PROMPT_MAX; i = g->slots->at[i].next)
        n++;
    return n <= PROMPT_MAX ? PRODUCER_PROMPT : PRODUCER_BATCH;
}

/* The bytes of a varint holding n (zigzag-encoded, as librdkafka writes
 * header lengths). */
static size_t varint_size(size_t n)
{
    uint64_t v = (uint64_t)n << 1;
    size_t k = 1;
    while (v >= 0x80) {
        v >>= 7;
        k++;
    }
    return k;
}

size_t gate_record_size(size_t body_len, size_t key_len, const rd_kafka_headers_t *headers)
{
    size_t size = RECORD_OVERHEAD + body_len + key_len;
    const char *name;
    const void *value;
    size_t value_len;
    for (size_t k = 0;
         headers && rd_kafka_header_get_all(headers, k, &name, &value, &value_len) == 0; k++) {
        size_t name_len = strlen(name);
        size += varint_size(name_len) + name_len + varint_size(value_len) + value_len;
    }
    return size;
}

/* Hand partition p's held messages over, at most one request's worth, if
 * nothing of it is in librdkafka. */
static unsigned part_release(struct gate *g, struct topic *t, int32_t p)
{
    struct gate_part *pt = &t->parts[p];
    if (t->unpartitioned || pt->in_kafka || pt->head == SLOT_NONE)
        return 0;
    enum producer_lane lane = release_lane(g, pt);
    uint64_t bytes = REQUEST_OVERHEAD + strlen(t->name);
    uint32_t n = 0;
    while (pt->head != SLOT_NONE) {
        struct slot *sl = &g->slots->at[pt->head];
        uint64_t size = gate_record_size(sl->body_len, sl->key_len, sl->headers);
        if (n && (n >= g->limits->batch_msgs || bytes + size > g->limits->batch_bytes))
            break;
        rd_kafka_resp_err_t err = gate_hand_over(g, pt->head, lane, sl->body, sl->body_len, sl->key,
                                                 sl->key_len, sl->headers);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL || gate_lost_partition(err))
            break; /* the timer tries again, within message.timeout.ms */
        uint32_t i = held_pop(g, t, p);
        sl = &g->slots->at[i];
        FREE_AND_NULL(sl->key); /* librdkafka copied it */
        if (err) {
            g->ops.refuse(g->ops.arg, i, err);
            continue;
        }
        sl->body = NULL;
        sl->headers = NULL;
        bytes += size;
        n++;
    }
    return n ? 1 : 0;
}

unsigned gate_reported(struct gate *g, struct topic *t, int32_t p)
{
    unsigned released = 0;
    if (p == RD_KAFKA_PARTITION_UA) {
        if (--t->unpartitioned == 0)
            for (int32_t q = 0; q < t->n_parts; q++)
                released += part_release(g, t, q);
    } else if (--t->parts[p].in_kafka == 0) {
        released += part_release(g, t, p);
    }
    return released;
}

void gate_nack_held(struct gate *g, struct topic *t, int32_t p, int64_t older_than,
                    rd_kafka_resp_err_t why)
{
    struct gate_part *pt = &t->parts[p];
    while (pt->head != SLOT_NONE && g->slots->at[pt->head].held_since_ms <= older_than)
        g->ops.refuse(g->ops.arg, held_pop(g, t, p), why);
}

/* Hand the limbo's messages over again, in order, while librdkafka takes
 * them; nack those that waited past the deadline (all of them when
 * older_than is INT64_MAX). */
static void limbo_retry(struct gate *g, int64_t older_than, rd_kafka_resp_err_t why, bool producing)
{
    while (g->limbo_head != SLOT_NONE) {
        uint32_t i = g->limbo_head;
        struct slot *sl = &g->slots->at[i];
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
        bool late = older_than == INT64_MAX || sl->held_since_ms < older_than;
        if (!late && producing) {
            err = gate_hand_over(g, i, gate_unpartitioned_lane(sl->topic, sl->key, sl->key_len),
                                 sl->body, sl->body_len, sl->key, sl->key_len, sl->headers);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL || gate_lost_partition(err))
                return; /* still lost: the next tick tries again */
        }
        g->limbo_head = sl->next;
        if (g->limbo_head == SLOT_NONE)
            g->limbo_tail = SLOT_NONE;
        g->n_limbo--;
        FREE_AND_NULL(sl->key); /* librdkafka copied it, or it is refused */
        if (!late && !err) {
            sl->body = NULL; /* librdkafka owns body and headers now */
            sl->headers = NULL;
            continue;
        }
        g->ops.refuse(g->ops.arg, i, late ? why : err);
    }
}

/* Nack held messages whose wait passed message.timeout.ms (librdkafka's
 * own deadline starts again when a message is handed over), or all of
 * them; retry releases refused for a full queue. */
unsigned gate_sweep(struct gate *g, struct topic_cache *topics, bool nack_all, bool producing)
{
    int64_t older_than = nack_all ? INT64_MAX : mono_ms() - g->limits->msg_timeout_ms;
    rd_kafka_resp_err_t why =
        nack_all ? RD_KAFKA_RESP_ERR__PURGE_QUEUE : RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
    if (g->n_limbo)
        limbo_retry(g, older_than, why, producing);
    if (!g->held)
        return 0;
    unsigned released = 0;
    struct topic *t;
    TOPIC_FOR_EACH(topics, t)
    {
        if (!t->held)
            continue;
        for (int32_t p = 0; p < t->n_parts; p++) {
            gate_nack_held(g, t, p, older_than, why);
            released += part_release(g, t, p);
        }
    }
    return released;
}
