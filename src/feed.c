/* feed.c - a durable queue's consumer group and the records it holds, and
 * the transient queues held in memory (see feed.h). */
#include "feed.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "consume.h"
#include "log.h"
#include "offsets.h"
#include "qargs.h"
#include "record_view.h"
#include "router.h"
#include "topology.h"

/* Records handled per wake-up of the loop; the rest on the next turn, so
 * a busy queue does not starve the connections. */
#define POLL_BATCH 1000
/* An admin request's timeout (placing a queue, reading an assignment's
 * committed offsets): one coordinator round trip, or a few. */
#define ADMIN_TIMEOUT_MS 5000
/* Leaving a group takes a commit's and a LeaveGroup's round trips to the
 * coordinator; at shutdown, or before the same group is joined again,
 * hopper waits this long for them. */
#define FEED_LEAVE_MS 3000
/* Placing a queue (feeds_place) tries again this often, for this long: its
 * new topic appears within a few tens of milliseconds, a cluster just
 * started loads its coordinators within seconds. */
#define PLACE_RETRY_MS 100
#define PLACE_DEADLINE_MS 30000
/* Reading an assignment's committed offsets tries again while the group
 * coordinator is away (it moves within seconds when its broker dies): a
 * read given up assigns without the metadata, and records acked above a
 * hole come again. Nothing could be fetched meanwhile anyway: librdkafka
 * needs the coordinator for the committed offsets too. */
#define READ_RETRY_MS 250
#define READ_DEADLINE_MS 30000
/* Deleting a deleted queue's group: tries, a second apart. */
#define GROUP_DELETE_TRIES 30
/* Kafka's offset.metadata.max.bytes is 4096 by default. */
#define METADATA_CAP OFFSETS_METADATA_CAP
/* Paused partitions resume when the records held fall below this share of
 * the bound. Pausing drops what librdkafka had fetched and resuming fetches
 * it again: half the bound keeps that round trip rare. */
#define RESUME_PERCENT 50
/* Publishers held back by full transient queues go on once these hold this
 * share of rabbit.max_transient_bytes. */
#define RESUME_TRANSIENT 75

/* A librdkafka queue the loop serves: librdkafka writes a byte to the pipe
 * when an event arrives, and the callback (which drains the pipe) runs on
 * the loop. Closed: both fds -1. */
struct qwatch {
    int pipefd[2];
    struct event *ev;
};

static void qwatch_stop(struct qwatch *w, rd_kafka_queue_t *q)
{
    if (w->pipefd[0] < 0)
        return;
    rd_kafka_queue_io_event_enable(q, -1, NULL, 0);
    if (w->ev)
        event_free(w->ev);
    close(w->pipefd[0]);
    close(w->pipefd[1]);
    *w = (struct qwatch){.pipefd = {-1, -1}};
}

static bool qwatch_start(struct qwatch *w, struct event_base *base, rd_kafka_queue_t *q,
                         event_callback_fn cb, void *arg)
{
    *w = (struct qwatch){.pipefd = {-1, -1}};
    if (pipe2(w->pipefd, O_NONBLOCK | O_CLOEXEC) == -1) {
        w->pipefd[0] = w->pipefd[1] = -1;
        return false;
    }
    rd_kafka_queue_io_event_enable(q, w->pipefd[1], "1", 1);
    w->ev = event_new(base, w->pipefd[0], EV_READ | EV_PERSIST, cb, arg);
    if (!w->ev || event_add(w->ev, NULL)) {
        qwatch_stop(w, q);
        return false;
    }
    return true;
}

struct fpart {
    struct fpart *next;
    char *topic;
    int32_t partition;
    struct offsets *off; /* NULL until the first fetch when nothing was committed */
    bool gone;           /* revoked: records that name it settle into nothing */
    bool recommit;       /* the last commit failed (Kafka away): send it again */
    /* Records at or below this offset may have been delivered by an
     * earlier owner (committed metadata says how far it got): they are
     * delivered with redelivered = true. */
    int64_t maybe_seen;
    int64_t delivered_max; /* highest offset this owner delivered */
    int64_t start;         /* the committed offset it started from, or -1 */
    int64_t committed;     /* the last offset Kafka took from us (start before) */
    /* Lost (a commit refused with ILLEGAL_GENERATION, a session expired):
     * kept, tracker and deliveries, until the next assignment says whether
     * it came back to this hopper untouched. */
    bool lost;
    int64_t purge_below; /* queue.purge: records below are done unread */
};

/* What an admin request's opaque points at, where the result's type alone
 * does not tell (ListConsumerGroupOffsets serves both). */
enum admin_ask { ASK_PLACE = 1, ASK_COMMITTED };

struct feed {
    struct feeds *fs;
    struct feed *next;
    char *vhost, *queue;
    struct buf group;
    const struct queue_cfg *qcfg; /* a queue over topics from the config, or NULL */

    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    struct qwatch watch; /* the consumer queue (on_pipe) */
    struct event *commit_ev;
    struct event *idle_ev; /* rabbit.idle_leave: no consumer here, nothing unsettled */
    bool consumed;         /* had a consumer since it joined (only then does it leave) */
    bool paused;
    /* Between a cooperative revocation and the assignment that follows,
     * this member's JoinGroup waits at the coordinator for the others, and
     * a commit sent meanwhile is answered after the generation moved on:
     * ILLEGAL_GENERATION, which librdkafka takes for a lost assignment.
     * Periodic commits wait until the assignment. */
    bool rejoining;
    /* An assignment waiting for its committed offsets (assigned). */
    struct committed_read *reading;
    char **topics; /* subscription, sorted; NULL-terminated */
    size_t n_topics;

    struct fpart *parts;
    struct fpart *orphans; /* revoked, still named by delivered records */
    uint64_t last_warn_ms;
    struct feed_msg *ready_head, *ready_tail;
    size_t n_ready, n_held;
    uint64_t bytes_held;
    uint64_t next_seq;

    bool placed; /* its group's starting offsets are set (feeds_place) */
    rd_kafka_topic_partition_list_t *starts; /* placement's offsets, for assignment */
    rd_kafka_topic_partition_list_t *purged; /* a purge's ends, for later assignments */

    struct consumer **cons;
    size_t n_cons, cap_cons, rr;
    bool dispatching;

    /* A transient queue: its records are published into it, not fetched. */
    bool memory;
    bool auto_delete;     /* goes with its last consumer */
    bool deleted;         /* freed once the records its consumers hold are settled */
    bool dispatch_due;    /* took a publish: deal to consumers (on_later) */
    uint64_t routed;      /* the last publish it took (feeds.route_seq) */
    struct qargs args;    /* its TTL, expiry and length limits */
    uint64_t bytes_ready; /* bodies of the ready records (x-max-length-bytes) */
    bool discarding;      /* dead-lettering from here: a copy coming back is a cycle */
    bool cycle_logged;
    struct event *ttl_ev;    /* the ready head's expiry */
    struct event *unused_ev; /* x-expires */
};

struct feeds {
    struct event_base *base;
    const struct config *cfg;
    struct topology *topo;
    const struct router *router;
    struct feed *list;
    rd_kafka_t *admin; /* for placements; made on first need */
    rd_kafka_queue_t *admin_q;
    struct qwatch admin_watch;
    struct feed_place *places;
    struct committed_read *reads; /* answered or abandoned, until the answer */
    struct group_delete *deletes;
    struct leaver *leavers;

    /* Transient queues. */
    size_t n_memory;
    uint64_t transient_bytes;
    bool transient_over; /* at rabbit.max_transient_bytes, until back under RESUME_TRANSIENT */
    bool eased;          /* came back under: tell the server (from reap) */
    uint64_t route_seq;
    /* Deals what publishes put in transient queues and frees deleted ones,
     * outside any caller's loop: a publish can come from inside a
     * channel's settling (dead letters), which a delivery must not touch. */
    struct event *later_ev;
    struct feeds_hooks hooks;
};

struct group_delete;
struct leaver;
static bool admin_start(struct feeds *fs);
static rd_kafka_AdminOptions_t *admin_options(struct feeds *fs, rd_kafka_admin_op_t op,
                                              void *opaque);
static void leavers_wait(struct feeds *fs, const char *group, uint32_t ms, bool at_exit);
static struct feed *feed_find(struct feeds *fs, const char *vhost, const char *queue);
static void feed_free(struct feed *f);
static void expire(struct feed *f);
static void check_idle(struct feed *f);
static void delete_group(struct group_delete *d);
static void group_deleted(struct group_delete *d, rd_kafka_event_t *ev);

/* ---- names ---- */

static void put_escaped(struct buf *out, const char *s, bool keep_dot)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char ch = *p;
        bool keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || (keep_dot && ch == '.');
        if (keep) {
            buf_append(out, &ch, 1);
        } else {
            char esc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            buf_append(out, esc, 3);
        }
    }
}

void feed_group_name(const char *prefix, const char *vhost, const char *queue, struct buf *out)
{
    out->len = 0;
    buf_append(out, prefix, strlen(prefix));
    put_escaped(out, vhost, false);
    buf_append(out, ".", 1);
    put_escaped(out, queue, true);
    buf_append(out, "", 1);
}

/* ---- the topics a queue reads ---- */

struct topic_set {
    char **names;
    size_t n, cap;
};

static void topic_add(void *arg, const char *topic)
{
    struct topic_set *ts = arg;
    for (size_t i = 0; i < ts->n; i++)
        if (!strcmp(ts->names[i], topic))
            return;
    if (ts->n + 1 >= ts->cap) {
        ts->cap = ts->cap ? 2 * ts->cap : 8;
        ts->names = xrealloc(ts->names, ts->cap * sizeof *ts->names);
    }
    ts->names[ts->n++] = xstrdup(topic);
    ts->names[ts->n] = NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void exchange_topics(void *arg, const char *exchange)
{
    void **ctx = arg;
    struct feed *f = ctx[0];
    router_exchange_topics(f->fs->router, f->vhost, exchange, topic_add, ctx[1]);
}

/* Every topic a record for this queue can be on: the default exchange's
 * topic for the queue and the topics of each bound exchange. */
static struct topic_set queue_topics(struct feed *f)
{
    struct topic_set ts = {0};
    if (f->qcfg) {
        /* A queue over topics reads them, not the default exchange's. */
        for (size_t i = 0; i < f->qcfg->n_topics; i++)
            topic_add(&ts, f->qcfg->topics[i]);
    } else {
        struct buf scratch = {0};
        struct route_target t;
        if (router_route(f->fs->router, f->vhost, "", 0, f->queue, strlen(f->queue), &scratch,
                         &t) == ROUTE_OK)
            topic_add(&ts, t.topic);
        buf_free(&scratch);
    }
    void *ctx[2] = {f, &ts};
    topology_queue_exchanges(f->fs->topo, f->vhost, f->queue, exchange_topics, ctx);
    if (ts.n)
        qsort(ts.names, ts.n, sizeof *ts.names, cmp_str);
    return ts;
}

static void topics_free(char **names)
{
    for (char **p = names; p && *p; p++)
        free(*p);
    free(names);
}

/* ---- partitions ---- */

static struct fpart *part_find(struct feed *f, const char *topic, int32_t partition)
{
    for (struct fpart *p = f->parts; p; p = p->next)
        if (p->partition == partition && !strcmp(p->topic, topic))
            return p;
    return NULL;
}

/* Metadata: the offsets module's text, then "|" and the highest offset
 * delivered, so the next owner knows what may have been seen. */
static void part_metadata(const struct fpart *p, char *out, size_t cap)
{
    size_t n = offsets_metadata(p->off, out, cap - 24);
    int64_t seen = p->delivered_max > p->maybe_seen ? p->delivered_max : p->maybe_seen;
    snprintf(out + n, cap - n, "|%lld", (long long)seen);
}

static struct fpart *part_new(struct feed *f, const char *topic, int32_t partition,
                              int64_t committed, const char *md, size_t md_len)
{
    struct fpart *p = xcalloc(1, sizeof *p);
    p->topic = xstrdup(topic);
    p->partition = partition;
    p->maybe_seen = -1;
    p->delivered_max = -1;
    p->start = committed;
    p->committed = committed;
    const rd_kafka_topic_partition_t *purged =
        f->purged ? rd_kafka_topic_partition_list_find(f->purged, topic, partition) : NULL;
    p->purge_below = purged ? purged->offset : 0;
    const char *bar = md ? memchr(md, '|', md_len) : NULL;
    if (bar) {
        char tail[24] = {0};
        size_t n = md_len - (size_t)(bar + 1 - md);
        if (n < sizeof tail) {
            memcpy(tail, bar + 1, n);
            char *end;
            long long v = strtoll(tail, &end, 10);
            if (*end == '\0' && end != tail)
                p->maybe_seen = v;
        }
        md_len = (size_t)(bar - md);
    }
    p->off = committed >= 0 ? offsets_restore(committed, md, md ? md_len : 0) : NULL;
    p->next = f->parts;
    f->parts = p;
    return p;
}

/* The partition is no longer ours: its records go (ready ones are
 * dropped, delivered ones become orphans whose settlement is a no-op). */
/* What a record held in a transient queue costs against
 * rabbit.max_transient_bytes. */
static uint64_t msg_cost(const struct feed_msg *m)
{
    return sizeof *m + m->exchange_len + m->routing_key_len + m->props_len + m->body_len;
}

/* A held record leaves its feed (settled, or gone with its partition or
 * queue) and is freed. */
static void release(struct feed *f, struct feed_msg *m)
{
    f->n_held--;
    f->bytes_held -= m->body_len;
    if (f->memory) {
        struct feeds *fs = f->fs;
        fs->transient_bytes -= msg_cost(m);
        if (fs->transient_over &&
            fs->transient_bytes * 100 <= fs->cfg->max_transient_bytes * RESUME_TRANSIENT) {
            fs->transient_over = false;
            fs->eased = true;
            event_active(fs->later_ev, 0, 0);
        }
        if (f->deleted && !f->n_held)
            event_active(fs->later_ev, 0, 0);
    }
    free(m);
}

static void parts_free(struct fpart **list)
{
    for (struct fpart *p = *list, *next; p; p = next) {
        next = p->next;
        offsets_free(p->off);
        free(p->topic);
        free(p);
    }
    *list = NULL;
}

static void part_drop(struct feed *f, struct fpart *p)
{
    for (struct feed_msg *m = f->ready_head, *next; m; m = next) {
        next = m->next;
        if (m->part != p)
            continue;
        if (m->prev)
            m->prev->next = m->next;
        else
            f->ready_head = m->next;
        if (m->next)
            m->next->prev = m->prev;
        else
            f->ready_tail = m->prev;
        f->n_ready--;
        f->bytes_ready -= m->body_len;
        release(f, m);
    }
    for (struct fpart **pp = &f->parts; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    /* Delivered records of p still point at it: p lives on without
     * offsets, and settling them changes nothing here (the next owner
     * delivers them again from the committed offset). */
    offsets_free(p->off);
    p->off = NULL;
    p->gone = true;
    p->next = f->orphans;
    f->orphans = p;
}

/* ---- commits ---- */

static rd_kafka_topic_partition_list_t *commit_list(struct feed *f, bool all)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    for (struct fpart *p = f->parts; p; p = p->next) {
        /* No tracker: nothing fetched yet, the committed offset stands.
         * A lost partition has no generation to commit with. */
        if (!p->off || p->lost || (!all && !offsets_dirty(p->off) && !p->recommit))
            continue;
        p->recommit = false;
        int64_t at = offsets_commit_point(p->off);
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
        tp->offset = at;
        char md[METADATA_CAP];
        part_metadata(p, md, sizeof md);
        tp->metadata_size = strlen(md);
        tp->metadata = xstrdup(md);
        offsets_committed(p->off);
    }
    return l;
}

/* handover: the partitions change hands (revoked): every one is
 * committed, acked or not, so that its metadata tells the next owner how
 * far deliveries went ("|seen", part_metadata). Without that, records a
 * consumer here received and never acked came back from a rejoin as new,
 * redelivered = false (test_celery.py's SIGKILLed acks_late worker, once
 * the queue sat idle past rabbit.idle_leave).
 *
 * Never waited for on the loop: librdkafka does not finish an unassign
 * (nor rejoin, nor close) while commits sent before it are unanswered
 * (wait_commit_cnt, rdkafka_assignment.c), so the next owner reads this
 * commit all the same. */
static void commit(struct feed *f, bool handover)
{
    if (!f->rk || (!handover && f->rejoining))
        return;
    rd_kafka_topic_partition_list_t *l = commit_list(f, handover);
    if (l->cnt) {
        rd_kafka_resp_err_t err = rd_kafka_commit(f->rk, l, 1);
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
            log_warn("queue '%s': offset commit: %s", f->queue, rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* An asynchronous commit's answer (from consumer_poll, on the loop). A
 * failed one is sent again on the next tick, so acks made while Kafka was
 * away are committed once it is back. */
static void on_committed(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct feed *f = opaque;
    for (int i = 0; parts && i < parts->cnt; i++) {
        rd_kafka_resp_err_t e = err ? err : parts->elems[i].err;
        struct fpart *p = part_find(f, parts->elems[i].topic, parts->elems[i].partition);
        if (!e) {
            if (p && parts->elems[i].offset > p->committed)
                p->committed = parts->elems[i].offset;
            continue;
        }
        if (p)
            p->recommit = true;
        uint64_t now = monotonic_ms();
        if (now - f->last_warn_ms >= 1000) {
            f->last_warn_ms = now;
            log_warn("queue '%s': offset commit: %s (%s)", f->queue, rd_kafka_err2str(e),
                     p ? "trying again"
                       : "a revoked partition: its next owner delivers again what was acked "
                         "since the last commit");
        }
    }
}

static void poll_feed(struct feed *f);

/* Commits, and a poll: librdkafka counts a consumer that has not polled
 * for max.poll.interval.ms (5 min) as gone and leaves its group, and a
 * quiet queue (or a paused one, while an ETA task waits for hours)
 * signals nothing. */
static void on_commit_timer(evutil_socket_t fd, short what, void *arg)
{
    commit(arg, false);
    poll_feed(arg);
}

/* ---- flow ---- */

static bool over_bound(const struct feed *f, unsigned percent)
{
    const struct config *cfg = f->fs->cfg;
    return f->n_held * 100 >= (uint64_t)cfg->max_unacked * percent ||
           f->bytes_held * 100 >= cfg->max_unacked_bytes * percent;
}

static void set_paused(struct feed *f, bool pause)
{
    if (!f->rk || f->paused == pause)
        return;
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(f->rk, &l) == RD_KAFKA_RESP_ERR_NO_ERROR && l) {
        if (pause)
            rd_kafka_pause_partitions(f->rk, l);
        else
            rd_kafka_resume_partitions(f->rk, l);
        rd_kafka_topic_partition_list_destroy(l);
    }
    f->paused = pause;
}

static void check_flow(struct feed *f)
{
    if (!f->paused && over_bound(f, 100))
        set_paused(f, true);
    else if (f->paused && !over_bound(f, RESUME_PERCENT))
        set_paused(f, false);
}

/* ---- the ready list ---- */

static void ready_insert(struct feed *f, struct feed_msg *m)
{
    /* In fetch order: new records go to the tail, requeued ones back
     * between the records fetched around them. */
    struct feed_msg *after = f->ready_tail;
    while (after && after->seq > m->seq)
        after = after->prev;
    m->prev = after;
    m->next = after ? after->next : f->ready_head;
    if (m->next)
        m->next->prev = m;
    else
        f->ready_tail = m;
    if (after)
        after->next = m;
    else
        f->ready_head = m;
    m->ready = true;
    f->n_ready++;
    f->bytes_ready += m->body_len;
}

static struct feed_msg *ready_pop(struct feed *f)
{
    struct feed_msg *m = f->ready_head;
    if (!m)
        return NULL;
    f->ready_head = m->next;
    if (f->ready_head)
        f->ready_head->prev = NULL;
    else
        f->ready_tail = NULL;
    m->next = m->prev = NULL;
    m->ready = false;
    f->n_ready--;
    f->bytes_ready -= m->body_len;
    return m;
}

static void note_delivered(struct feed_msg *m)
{
    if (m->part && !m->part->gone && m->offset > m->part->delivered_max)
        m->part->delivered_max = m->offset;
}

void feed_dispatch(struct feed *f)
{
    if (f->dispatching)
        return; /* a delivery led back here */
    if (f->memory && f->ready_head && f->ready_head->expires_at)
        expire(f);
    f->dispatching = true;
    while (f->ready_head && f->n_cons) {
        struct consumer *taker = NULL;
        for (size_t i = 0; i < f->n_cons; i++) {
            struct consumer *c = f->cons[(f->rr + i) % f->n_cons];
            if (consume_can_take(c)) {
                taker = c;
                f->rr = (f->rr + i + 1) % f->n_cons;
                break;
            }
        }
        if (!taker)
            break;
        struct feed_msg *m = ready_pop(f);
        note_delivered(m);
        consume_deliver(taker, m);
    }
    f->dispatching = false;
}

void feed_done(struct feed_msg *m)
{
    struct feed *f = m->feed;
    if (m->part && !m->part->gone && !offsets_done(m->part->off, m->offset))
        log_warn("queue '%s': %s/%d offset %lld settled twice", f->queue, m->part->topic,
                 m->part->partition, (long long)m->offset);
    release(f, m);
    check_flow(f);
    check_idle(f);
}

void feed_requeue(struct feed_msg *m)
{
    struct feed *f = m->feed;
    m->redelivered = true;
    /* Its partition went to another owner, who delivers it again; or its
     * transient queue was deleted. */
    if (f->memory ? f->deleted : (!m->part || m->part->gone))
        release(f, m);
    else
        ready_insert(f, m);
    check_idle(f);
}

size_t feed_ready_count(const struct feed *f)
{
    return f->n_ready;
}

/* ---- records in ---- */

static bool queue_topic(const struct feed *f, const char *topic)
{
    for (size_t i = 0; f->qcfg && i < f->qcfg->n_topics; i++)
        if (!strcmp(f->qcfg->topics[i], topic))
            return true;
    return false;
}

/* A record just fetched needs no delivery (acked before a restart, or no
 * binding wants it). */
static void mark_done(struct fpart *p, int64_t off)
{
    if (!offsets_done(p->off, off))
        log_warn("%s/%d offset %lld: done twice", p->topic, p->partition, (long long)off);
}

/* A copy of a message, held by f (not yet on the ready list). */
static struct feed_msg *hold(struct feed *f, const struct feed_src *s)
{
    size_t el = s->exchange_len > 255 ? 255 : s->exchange_len;
    size_t rl = s->routing_key_len > 255 ? 255 : s->routing_key_len;
    struct feed_msg *m = xmalloc(sizeof *m + el + rl + s->props_len + s->body_len);
    *m = (struct feed_msg){
        .feed = f,
        .offset = -1,
        .seq = f->next_seq++,
        .exchange_len = (uint8_t)el,
        .routing_key_len = (uint8_t)rl,
        .props_len = s->props_len,
        .body_len = s->body_len,
    };
    m->exchange = m->data;
    m->routing_key = m->exchange + el;
    m->props = m->routing_key + rl;
    m->body = m->props + s->props_len;
    if (el)
        memcpy(m->exchange, s->exchange, el);
    if (rl)
        memcpy(m->routing_key, s->routing_key, rl);
    if (s->props_len)
        memcpy(m->props, s->props, s->props_len);
    if (s->body_len)
        memcpy(m->body, s->body, s->body_len);
    f->n_held++;
    f->bytes_held += m->body_len;
    return m;
}

static void take_record(struct feed *f, const rd_kafka_message_t *rkm)
{
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    struct fpart *p = part_find(f, topic, rkm->partition);
    if (!p)
        return; /* from before a revocation */
    if (!p->off)
        p->off = offsets_new(rkm->offset); /* nothing was committed: start here */
    if (!p->off || !offsets_fetched(p->off, rkm->offset))
        return; /* fetched again after a seek: already tracked */
    if (rkm->offset < p->purge_below) {
        mark_done(p, rkm->offset);
        return; /* purged before it was read */
    }
    if (offsets_skip(p->off, rkm->offset)) {
        mark_done(p, rkm->offset);
        return; /* acked before a restart */
    }
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    struct record_view v;
    struct record_decode_opts o = {
        .max_table_depth = f->fs->cfg->max_table_depth,
        .key_as_message_id = f->qcfg && f->qcfg->key_as_message_id,
    };
    bool wanted = record_view(rkm, &o, &pool, &v) == 0;
    /* Every record of a configured queue's own topics is its. */
    if (wanted && !v.foreign && !queue_topic(f, topic)) {
        const amqp_table_t *headers =
            (v.props._flags & AMQP_BASIC_HEADERS_FLAG) ? &v.props.headers : NULL;
        wanted = topology_queue_matches(f->fs->topo, f->vhost, f->queue, v.exchange, v.exchange_len,
                                        v.routing_key, v.routing_key_len, headers);
    }
    if (!wanted) {
        mark_done(p, rkm->offset);
        empty_amqp_pool(&pool);
        return;
    }
    struct feed_src src = {
        v.exchange,    v.exchange_len,
        v.routing_key, v.routing_key_len,
        v.raw_props,   v.raw_props_len,
        rkm->payload,  rkm->len,
        NULL,          NULL,
    };
    struct feed_msg *m = hold(f, &src);
    m->part = p;
    m->offset = rkm->offset;
    m->redelivered = rkm->offset <= p->maybe_seen;
    empty_amqp_pool(&pool);
    ready_insert(f, m);
}

/* ---- rebalance ---- */

/* Merge `ends` into *list (made on first need): the later offset wins. */
static void remember(rd_kafka_topic_partition_list_t **list,
                     const rd_kafka_topic_partition_list_t *ends)
{
    if (!*list)
        *list = rd_kafka_topic_partition_list_new(ends->cnt);
    for (int i = 0; i < ends->cnt; i++) {
        const rd_kafka_topic_partition_t *e = &ends->elems[i];
        rd_kafka_topic_partition_t *have =
            rd_kafka_topic_partition_list_find(*list, e->topic, e->partition);
        if (!have)
            have = rd_kafka_topic_partition_list_add(*list, e->topic, e->partition);
        have->offset = e->offset;
    }
}

static void forget(rd_kafka_topic_partition_list_t **list)
{
    if (*list)
        rd_kafka_topic_partition_list_destroy(*list);
    *list = NULL;
}

/* Take partitions just assigned, with what the group committed for them
 * (c; NULL when unread, why says why), then let librdkafka fetch. */
static void assign_read(struct feed *f, rd_kafka_topic_partition_list_t *parts,
                        const rd_kafka_topic_partition_list_t *c, const char *why)
{
    if (why)
        log_warn("queue '%s': reading committed offsets: %s (records acked above a hole may "
                 "come again)",
                 f->queue, why);
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        const rd_kafka_topic_partition_t *ct =
            c ? rd_kafka_topic_partition_list_find(c, tp->topic, tp->partition) : NULL;
        bool have = ct && !ct->err && ct->offset >= 0;
        /* Fetching starts there: librdkafka need not ask the coordinator
         * again. */
        if (have)
            tp->offset = ct->offset;
        struct fpart *old = part_find(f, tp->topic, tp->partition);
        if (old && old->lost && have && ct->offset == old->committed) {
            /* Lost and back, and nobody committed it meanwhile: what our
             * consumers acked since our last commit stays acked (the
             * tracker ignores the records it has seen when they are
             * fetched again), instead of all of it coming again. */
            old->lost = false;
            log_info("queue '%s': %s [%" PRId32 "] came back: resumed", f->queue, old->topic,
                     old->partition);
            continue;
        }
        if (old && old->lost)
            part_drop(f, old);
        else if (old)
            continue;
        const rd_kafka_topic_partition_t *start =
            f->starts ? rd_kafka_topic_partition_list_find(f->starts, tp->topic, tp->partition)
                      : NULL;
        if (!have && start) {
            /* Placed while the group was busy: start where placement said. */
            tp->offset = start->offset;
            part_new(f, tp->topic, tp->partition, start->offset, NULL, 0);
            continue;
        }
        part_new(f, tp->topic, tp->partition, have ? ct->offset : -1, have ? ct->metadata : NULL,
                 have ? ct->metadata_size : 0);
    }
    /* Lost partitions that did not come back are another member's now. */
    for (struct fpart *p = f->parts, *next; p; p = next) {
        next = p->next;
        if (p->lost)
            part_drop(f, p);
    }
    f->rejoining = false;
    rd_kafka_error_t *e = rd_kafka_incremental_assign(f->rk, parts);
    if (e) {
        log_error("queue '%s': assign: %s", f->queue, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    if (f->paused)
        rd_kafka_pause_partitions(f->rk, parts);
    if (parts->cnt) /* a cooperative rebalance's first round may give none */
        log_info("queue '%s': %d partition(s) assigned", f->queue, parts->cnt);
}

/* What an admin request about one group came back with: the request's
 * error or the group's, with its text, else the group's partitions. */
struct group_answer {
    rd_kafka_resp_err_t err;
    const char *why; /* NULL when err is 0 */
    const rd_kafka_topic_partition_list_t *parts;
};

static struct group_answer group_answer(rd_kafka_event_t *ev,
                                        const rd_kafka_group_result_t **groups, size_t n)
{
    const rd_kafka_error_t *ge = n == 1 ? rd_kafka_group_result_error(groups[0]) : NULL;
    if (rd_kafka_event_error(ev))
        return (struct group_answer){.err = rd_kafka_event_error(ev),
                                     .why = rd_kafka_event_error_string(ev)};
    if (ge)
        return (struct group_answer){.err = rd_kafka_error_code(ge),
                                     .why = rd_kafka_error_string(ge)};
    if (n != 1)
        return (struct group_answer){.err = RD_KAFKA_RESP_ERR__FAIL,
                                     .why = "no answer for the group"};
    return (struct group_answer){.parts = rd_kafka_group_result_partitions(groups[0])};
}

/* ListConsumerGroupOffsets' answer. */
static struct group_answer offsets_listed(rd_kafka_event_t *ev)
{
    const rd_kafka_ListConsumerGroupOffsets_result_t *res =
        rd_kafka_event_ListConsumerGroupOffsets_result(ev);
    size_t n = 0;
    const rd_kafka_group_result_t **groups =
        res ? rd_kafka_ListConsumerGroupOffsets_result_groups(res, &n) : NULL;
    return group_answer(ev, groups, n);
}

/* Reading what the group committed for an assignment: the committed
 * offsets, and the metadata that says which records above them were acked
 * already. The admin client asks (ListConsumerGroupOffsets) while the loop
 * goes on; the group waits meanwhile, as librdkafka holds a rebalance
 * until its assign call (WAIT_ASSIGN_CALL). */
struct committed_read {
    enum admin_ask ask;          /* ASK_COMMITTED: on_admin tells it from a placement */
    struct committed_read *next; /* fs->reads */
    struct feeds *fs;
    struct feed *f; /* NULL once the feed went on without it (read_abandon) */
    rd_kafka_topic_partition_list_t *parts;
    uint64_t deadline_ms; /* monotonic_ms(): tries again until then */
    struct event *retry;  /* the next try: while it is pending no request is out */
};

static void read_free(struct committed_read *r)
{
    for (struct committed_read **pp = &r->fs->reads; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    rd_kafka_topic_partition_list_destroy(r->parts);
    if (r->retry)
        event_free(r->retry);
    free(r);
}

static void read_send(struct committed_read *r)
{
    rd_kafka_ListConsumerGroupOffsets_t *l =
        rd_kafka_ListConsumerGroupOffsets_new((const char *)r->f->group.data, r->parts);
    rd_kafka_AdminOptions_t *o =
        admin_options(r->fs, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, r);
    /* As rd_kafka_committed asks with the default isolation.level. */
    rd_kafka_error_t *e = rd_kafka_AdminOptions_set_require_stable_offsets(o, 1);
    if (e)
        rd_kafka_error_destroy(e);
    rd_kafka_ListConsumerGroupOffsets(r->fs->admin, &l, 1, o, r->fs->admin_q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_ListConsumerGroupOffsets_destroy(l);
}

static void on_read_retry(evutil_socket_t fd, short what, void *arg)
{
    read_send(arg);
}

/* Errors of a coordinator that is moving or loading. */
static bool coordinator_away(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
        return true;
    default:
        return false;
    }
}

/* The answer came (from on_admin). */
static void read_answered(struct committed_read *r, rd_kafka_event_t *ev)
{
    struct group_answer a = offsets_listed(ev);
    struct feed *f = r->f;
    if (f && a.err && coordinator_away(a.err) && monotonic_ms() < r->deadline_ms) {
        log_debug("queue '%s': reading committed offsets: %s; trying again", f->queue, a.why);
        static const struct timeval retry = {0, READ_RETRY_MS * 1000};
        if (!r->retry)
            r->retry = evtimer_new(r->fs->base, on_read_retry, r);
        if (!r->retry || evtimer_add(r->retry, &retry))
            abort(); /* as xmalloc does when memory runs out */
        return;
    }
    if (f) {
        f->reading = NULL;
        assign_read(f, r->parts, a.parts, a.why);
    }
    read_free(r);
}

/* Assign what a read still waits for, without its answer: a revocation
 * that overtook it, or the close, needs the assign call made first. */
static void read_abandon(struct feed *f, const char *why)
{
    struct committed_read *r = f->reading;
    if (!r)
        return;
    f->reading = NULL;
    r->f = NULL;
    assign_read(f, r->parts, NULL, why);
    if (r->retry && evtimer_pending(r->retry, NULL))
        read_free(r); /* no request out: no answer will free it */
}

static void assigned(struct feed *f, rd_kafka_topic_partition_list_t *parts)
{
    if (!parts->cnt || !admin_start(f->fs)) {
        assign_read(f, parts, NULL, parts->cnt ? "no admin client" : NULL);
        return;
    }
    read_abandon(f, "a second assignment came first"); /* librdkafka sends none such */
    struct committed_read *r = xcalloc(1, sizeof *r);
    r->ask = ASK_COMMITTED;
    r->fs = f->fs;
    r->f = f;
    r->parts = rd_kafka_topic_partition_list_copy(parts);
    r->deadline_ms = monotonic_ms() + READ_DEADLINE_MS;
    r->next = f->fs->reads;
    f->fs->reads = r;
    f->reading = r;
    read_send(r);
}

static void revoked(struct feed *f, rd_kafka_topic_partition_list_t *parts)
{
    /* Commit what is acked before another owner starts from it; a lost
     * assignment has no generation to commit with: kept until the next
     * assignment (assigned). */
    read_abandon(f, "revoked before the answer");
    bool lost = rd_kafka_assignment_lost(f->rk);
    if (!lost)
        commit(f, true);
    for (int i = 0; i < parts->cnt; i++) {
        struct fpart *p = part_find(f, parts->elems[i].topic, parts->elems[i].partition);
        if (p && lost)
            p->lost = true;
        else if (p)
            part_drop(f, p);
    }
    f->rejoining = true;
    rd_kafka_error_t *e = rd_kafka_incremental_unassign(f->rk, parts);
    if (e) {
        log_error("queue '%s': unassign: %s", f->queue, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    if (parts->cnt)
        log_info("queue '%s': %d partition(s) %s", f->queue, parts->cnt,
                 lost ? "lost (kept until the next assignment)" : "revoked");
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct feed *f = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
        assigned(f, parts);
    else
        revoked(f, parts);
}

static void poll_feed(struct feed *f)
{
    int i;
    for (i = 0; i < POLL_BATCH && f->rk; i++) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(f->rk, 0);
        if (!rkm)
            break;
        if (rkm->err) {
            uint64_t now = monotonic_ms();
            if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && now - f->last_warn_ms >= 1000) {
                f->last_warn_ms = now;
                log_warn("queue '%s': %s", f->queue, rd_kafka_message_errstr(rkm));
            }
        } else {
            take_record(f, rkm);
        }
        rd_kafka_message_destroy(rkm);
    }
    /* Past the bound the partitions pause after this batch: the records
     * librdkafka had fetched (queued.max.messages.kbytes, 1 MiB) are taken
     * whole, since pausing would drop them only to fetch them again. */
    check_flow(f);
    feed_dispatch(f);
    /* The queue signals only when it turns non-empty: poll on next turn. */
    if (i == POLL_BATCH && f->watch.ev)
        event_active(f->watch.ev, EV_READ, 0);
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
    drain_pipe(fd);
    poll_feed(arg);
}

/* ---- the consumer handle ---- */

static bool set_prop(rd_kafka_conf_t *conf, const char *k, const char *v, struct feed *f)
{
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) == RD_KAFKA_CONF_OK)
        return true;
    log_error("queue '%s': consumer property %s: %s", f->queue, k, err);
    return false;
}

static void subscribe(struct feed *f)
{
    struct topic_set ts = queue_topics(f);
    bool same = ts.n == f->n_topics;
    for (size_t i = 0; same && i < ts.n; i++)
        same = !strcmp(ts.names[i], f->topics[i]);
    if (same) {
        topics_free(ts.names);
        return;
    }
    topics_free(f->topics);
    f->topics = ts.names;
    f->n_topics = ts.n;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)ts.n);
    for (size_t i = 0; i < ts.n; i++)
        rd_kafka_topic_partition_list_add(l, ts.names[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = ts.n ? rd_kafka_subscribe(f->rk, l) : rd_kafka_unsubscribe(f->rk);
    if (err)
        log_error("queue '%s': subscribe: %s", f->queue, rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

static bool start(struct feed *f)
{
    if (f->rk || f->memory)
        return true;
    /* Its last member here must be gone first: with group.instance.id the
     * new one would fence it out of its last commit. */
    leavers_wait(f->fs, (const char *)f->group.data, FEED_LEAVE_MS, false);
    const struct config *cfg = f->fs->cfg;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char session[16], heartbeat[16];
    snprintf(session, sizeof session, "%u", cfg->session_timeout_ms);
    /* A tenth of the session: a rebalance's second round waits for every
     * member to hear of it through a heartbeat (librdkafka's 3 s default
     * made each round take up to that). */
    snprintf(heartbeat, sizeof heartbeat, "%u",
             cfg->session_timeout_ms / 10 > 100 ? cfg->session_timeout_ms / 10 : 100);
    /* Offsets move only by acks; positions never reset past unread
     * records: partitions without a committed offset start at their
     * beginning (feeds_place put the group at the end of every topic that
     * had records when the queue was declared). */
    bool ok = set_prop(conf, "bootstrap.servers", cfg->bootstrap_servers, f) &&
              set_prop(conf, "group.id", (const char *)f->group.data, f) &&
              set_prop(conf, "enable.auto.commit", "false", f) &&
              set_prop(conf, "enable.auto.offset.store", "false", f) &&
              set_prop(conf, "auto.offset.reset", "earliest", f) &&
              set_prop(conf, "partition.assignment.strategy", "cooperative-sticky", f) &&
              set_prop(conf, "topic.metadata.refresh.interval.ms", "2000", f) &&
              set_prop(conf, "queued.max.messages.kbytes", "1024", f) &&
              /* librdkafka postpones the next fetch this long once a
               * partition's queue is full (1000 ms by default): with a
               * 1 MiB queue that capped a queue at ~5,000 msg/s of 1 KiB. */
              set_prop(conf, "fetch.queue.backoff.ms", "5", f) &&
              set_prop(conf, "client.id", "hopper", f) &&
              set_prop(conf, "session.timeout.ms", session, f) &&
              set_prop(conf, "heartbeat.interval.ms", heartbeat, f) &&
              (!cfg->instance_id[0] || set_prop(conf, "group.instance.id", cfg->instance_id, f));
    if (!ok) {
        rd_kafka_conf_destroy(conf);
        return false;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf, on_committed);
    rd_kafka_conf_set_opaque(conf, f);
    char err[512];
    f->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!f->rk) {
        log_error("queue '%s': consumer: %s", f->queue, err);
        rd_kafka_conf_destroy(conf);
        return false;
    }
    rd_kafka_poll_set_consumer(f->rk);
    f->rejoining = false;
    f->q = rd_kafka_queue_get_consumer(f->rk);
    f->commit_ev = event_new(f->fs->base, -1, EV_PERSIST, on_commit_timer, f);
    struct timeval tv = {cfg->commit_interval_ms / 1000, (cfg->commit_interval_ms % 1000) * 1000};
    if (!qwatch_start(&f->watch, f->fs->base, f->q, on_pipe, f) || !f->commit_ev ||
        event_add(f->commit_ev, &tv)) {
        log_error("queue '%s': cannot watch the consumer: %s", f->queue, strerror(errno));
        goto fail;
    }
    subscribe(f);
    log_info("queue '%s' in vhost '%s': consuming through group %s", f->queue, f->vhost,
             (const char *)f->group.data);
    return true;
fail:
    qwatch_stop(&f->watch, f->q);
    if (f->commit_ev)
        event_free(f->commit_ev);
    f->commit_ev = NULL;
    rd_kafka_queue_destroy(f->q);
    rd_kafka_destroy(f->rk);
    f->rk = NULL;
    f->q = NULL;
    return false;
}

/* ---- leaving the group ---- */

/* A consumer on its way out of its group. Its close (the last commit's
 * answer, the last revocation, LeaveGroup) runs in librdkafka's threads and
 * posts to the leaver's queue, which the loop serves through a pipe until
 * the consumer is closed: leaving never holds up the loop, however long
 * the coordinator takes. A feed that starts again meanwhile waits for its
 * leaver first (start), and shutdown gives the leavers FEED_LEAVE_MS
 * between them (feeds_free). */
struct leaver {
    struct leaver *next;
    struct feeds *fs;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    struct qwatch watch;
    char *queue, *group;
};

static void leaver_unlink(struct leaver *lv)
{
    for (struct leaver **pp = &lv->fs->leavers; *pp; pp = &(*pp)->next) {
        if (*pp == lv) {
            *pp = lv->next;
            break;
        }
    }
    qwatch_stop(&lv->watch, lv->q);
}

static void leaver_free(struct leaver *lv, bool closed)
{
    leaver_unlink(lv);
    rd_kafka_queue_destroy(lv->q);
    if (closed)
        rd_kafka_destroy(lv->rk);
    else
        rd_kafka_destroy_flags(lv->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    free(lv->queue);
    free(lv->group);
    free(lv);
}

static void last_commit_answered(const struct leaver *lv, rd_kafka_event_t *ev)
{
    rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
    const rd_kafka_topic_partition_list_t *parts = rd_kafka_event_topic_partition_list(ev);
    for (int i = 0; !err && parts && i < parts->cnt; i++)
        err = parts->elems[i].err;
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        log_warn("queue '%s': last offset commit: %s (records acked since the one before come "
                 "again)",
                 lv->queue, rd_kafka_err2str(err));
}

/* Serve what the close posted, waiting up to timeout_ms for the first of
 * it: revocations, and the assignment a join in progress may still bring,
 * are applied as they come, without a commit (the last one went out before
 * the close, which waits for its answer); records fetched meanwhile are
 * dropped, for the next owner to read. Returns whether the consumer is
 * closed. */
static bool leaver_serve(struct leaver *lv, int timeout_ms)
{
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(lv->q, timeout_ms))) {
        timeout_ms = 0;
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE) {
            rd_kafka_topic_partition_list_t *parts = rd_kafka_event_topic_partition_list(ev);
            rd_kafka_error_t *e = rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS
                                      ? rd_kafka_incremental_assign(lv->rk, parts)
                                      : rd_kafka_incremental_unassign(lv->rk, parts);
            if (e) {
                log_warn("queue '%s': leaving group %s: %s", lv->queue, lv->group,
                         rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            }
        } else if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT) {
            last_commit_answered(lv, ev);
        }
        rd_kafka_event_destroy(ev);
    }
    return rd_kafka_consumer_closed(lv->rk);
}

static void on_leaver_pipe(evutil_socket_t fd, short what, void *arg)
{
    drain_pipe(fd);
    struct leaver *lv = arg;
    if (leaver_serve(lv, 0))
        leaver_free(lv, true);
}

/* Consumers abandoned at exit (leavers_wait): librdkafka's destroy would
 * wait for their requests to time out. Kept here, reachable, until the
 * process ends. */
static struct leaver *abandoned;

/* Wait up to ms for the leavers of `group` (all of them: NULL) to close.
 * At exit, those still open then are abandoned; before a group is joined
 * again they go on leaving in the background. */
static void leavers_wait(struct feeds *fs, const char *group, uint32_t ms, bool at_exit)
{
    uint64_t deadline = monotonic_ms() + ms;
    for (;;) {
        bool left = false, late = monotonic_ms() >= deadline;
        int wait_ms = 10; /* on the first one served: the others' closes go on meanwhile */
        for (struct leaver *lv = fs->leavers, *next; lv; lv = next) {
            next = lv->next;
            if (group && strcmp(lv->group, group))
                continue;
            if (leaver_serve(lv, wait_ms)) {
                leaver_free(lv, true);
            } else if (late && at_exit) {
                log_warn("queue '%s': still leaving group %s after %u ms: abandoned (the group "
                         "takes this member for gone after session.timeout.ms)",
                         lv->queue, lv->group, ms);
                leaver_unlink(lv);
                lv->next = abandoned;
                abandoned = lv;
            } else if (late) {
                log_warn("queue '%s': its last member here still leaving group %s after %u ms: "
                         "joining again meanwhile",
                         lv->queue, lv->group, ms);
            } else {
                left = true;
            }
            wait_ms = 0;
        }
        if (!left)
            return;
    }
}

/* Hand f's consumer to a leaver: the last commit of every partition, acked
 * or not, with the metadata that tells the next owner how far deliveries
 * went (commit), then the close. */
static void leave(struct feed *f)
{
    struct leaver *lv = xcalloc(1, sizeof *lv);
    lv->fs = f->fs;
    lv->rk = f->rk;
    lv->q = rd_kafka_queue_new(lv->rk);
    lv->watch = (struct qwatch){.pipefd = {-1, -1}};
    lv->queue = xstrdup(f->queue);
    lv->group = xstrdup((const char *)f->group.data);
    lv->next = f->fs->leavers;
    f->fs->leavers = lv;
    rd_kafka_topic_partition_list_t *l = commit_list(f, true);
    if (l->cnt) {
        rd_kafka_resp_err_t err = rd_kafka_commit_queue(lv->rk, l, lv->q, NULL, NULL);
        if (err)
            log_warn("queue '%s': last offset commit: %s", f->queue, rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(lv->rk, lv->q);
    if (e) {
        log_warn("queue '%s': leaving group %s: %s", f->queue, lv->group, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        leaver_free(lv, false);
        return;
    }
    if (!qwatch_start(&lv->watch, f->fs->base, lv->q, on_leaver_pipe, lv)) {
        log_error("queue '%s': cannot watch its consumer leave: waiting for it", f->queue);
        leavers_wait(f->fs, lv->group, FEED_LEAVE_MS, false);
        return;
    }
    if (leaver_serve(lv, 0)) /* what came before the pipe was watched */
        leaver_free(lv, true);
}

/* Commit, leave the group, and forget every record. */
static void stop(struct feed *f)
{
    if (f->idle_ev)
        evtimer_del(f->idle_ev);
    if (!f->rk)
        return;
    qwatch_stop(&f->watch, f->q);
    event_free(f->commit_ev);
    f->commit_ev = NULL;
    rd_kafka_queue_destroy(f->q);
    read_abandon(f, NULL); /* the close waits for the assign call */
    leave(f);
    f->rk = NULL;
    f->q = NULL;
    topics_free(f->topics);
    f->topics = NULL;
    f->n_topics = 0;
    /* What the close will find (partitions lost, kept for the next
     * assignment) is not this hopper's any more either. */
    while (f->parts)
        part_drop(f, f->parts);
    f->paused = false;
    f->consumed = false;
}

/* A durable queue's consumer group holds partitions for this hopper only
 * while something here reads them: once its last consumer is gone and
 * every delivery is settled, it leaves the group after rabbit.idle_leave,
 * so that the partitions go to a hopper whose consumers wait for them
 * (otherwise their records would wait for this hopper's next consumer).
 * The records it fetched and did not deliver are not committed: the next
 * owner reads them again. A consume or get in the meantime keeps it. A
 * queue only ever read by basic.get stays: a get that joins the group
 * answers get-empty, and a client polling more slowly than idle_leave
 * would get nothing else. */
static void on_idle(evutil_socket_t fd, short what, void *arg)
{
    struct feed *f = arg;
    (void)fd, (void)what;
    if (f->n_cons || f->n_held > f->n_ready)
        return; /* in use again: the next detach or settle arms it anew */
    log_info("queue '%s' in vhost '%s': no consumer here for %u ms, leaving group %s", f->queue,
             f->vhost, f->fs->cfg->idle_leave_ms, (const char *)f->group.data);
    stop(f);
    parts_free(&f->orphans); /* nothing delivered names them */
}

static void check_idle(struct feed *f)
{
    if (f->memory)
        return;
    bool settled = f->n_held == f->n_ready; /* nothing delivered and unsettled */
    /* Ready records never name an orphan (feed_requeue), so once every
     * delivery is settled nothing does: a queue that rebalances or leaves
     * its group over and over does not pile them up. */
    if (settled && f->orphans)
        parts_free(&f->orphans);
    if (!f->rk || !f->consumed)
        return;
    if (f->n_cons || !settled) {
        if (f->idle_ev)
            evtimer_del(f->idle_ev);
        return;
    }
    if (!f->idle_ev)
        f->idle_ev = evtimer_new(f->fs->base, on_idle, f);
    uint32_t ms = f->fs->cfg->idle_leave_ms;
    struct timeval tv = {ms / 1000, ms % 1000 * 1000};
    if (!f->idle_ev || evtimer_add(f->idle_ev, &tv))
        log_error("queue '%s': cannot arm its idle timer; it stays in its group", f->queue);
}

/* ---- transient queues ---- */

/* A transient queue was deleted: its consumers are cancelled, its ready
 * records dropped; the feed is freed (reap) once the records its consumers
 * hold are settled, and a queue declared again with its name is a new one. */
static void transient_gone(struct feed *f)
{
    f->deleted = true; /* first: cancelling consumers comes back to feed_detach */
    f->fs->n_memory--;
    if (f->ttl_ev)
        evtimer_del(f->ttl_ev);
    if (f->unused_ev)
        evtimer_del(f->unused_ev);
    while (f->n_cons)
        consume_cancelled_by_server(f->cons[f->n_cons - 1]); /* detaches it */
    feed_purge(f);
    event_active(f->fs->later_ev, 0, 0);
}

/* The queue deletes itself (auto-delete, x-expires), as if its owner had. */
static void transient_delete(struct feed *f)
{
    const struct queue *q = topology_queue(f->fs->topo, f->vhost, f->queue);
    struct topo_reply r;
    topology_delete_queue(f->fs->topo, f->vhost, f->queue, q ? q->owner : 0, &r);
    transient_gone(f);
}

static void on_unused(evutil_socket_t fd, short what, void *arg)
{
    struct feed *f = arg;
    if (f->deleted || f->n_cons)
        return; /* in use: its last consumer's going arms it again */
    log_info("queue '%s' in vhost '%s': unused for x-expires (%" PRId64 " ms), deleted", f->queue,
             f->vhost, f->args.expires_ms);
    transient_delete(f);
}

/* x-expires: the queue goes once this long unused (no consumer, no
 * declare, get or other method naming it). */
static void arm_unused(struct feed *f)
{
    if (!f->memory || f->deleted || f->args.expires_ms <= 0)
        return;
    if (!f->unused_ev)
        f->unused_ev = evtimer_new(f->fs->base, on_unused, f);
    struct timeval tv = {f->args.expires_ms / 1000, f->args.expires_ms % 1000 * 1000};
    if (!f->unused_ev || evtimer_add(f->unused_ev, &tv))
        log_error("queue '%s': cannot arm its x-expires timer", f->queue);
}

/* A message leaves a transient queue unconsumed (expired, over its
 * length): dead-lettered if the queue says so, else gone. */
static void discard(struct feed *f, struct feed_msg *m, const char *reason)
{
    const struct feeds_hooks *h = &f->fs->hooks;
    bool was = f->discarding;
    f->discarding = true;
    if (!h->dead_letter || !h->dead_letter(h->arg, m, f->vhost, f->queue, reason))
        feed_done(m);
    f->discarding = was;
}

static void on_ttl(evutil_socket_t fd, short what, void *arg);

/* Expired messages at the head go (as RabbitMQ's classic queues expire
 * them: from the head, so one with a long expiration holds back shorter
 * ones behind it); the timer waits for the next head's expiry. */
static void expire(struct feed *f)
{
    if (f->discarding)
        return; /* the loop below, further up the stack, goes on */
    int64_t now = (int64_t)monotonic_ms();
    while (f->ready_head && f->ready_head->expires_at && f->ready_head->expires_at < now)
        discard(f, ready_pop(f), "expired");
    const struct feed_msg *h = f->ready_head;
    if (!h || !h->expires_at || f->deleted) {
        if (f->ttl_ev)
            evtimer_del(f->ttl_ev);
        return;
    }
    if (!f->ttl_ev)
        f->ttl_ev = evtimer_new(f->fs->base, on_ttl, f);
    int64_t wait = h->expires_at - now + 1;
    struct timeval tv = {wait / 1000, wait % 1000 * 1000};
    if (!f->ttl_ev || evtimer_add(f->ttl_ev, &tv))
        log_error("queue '%s': cannot arm its message TTL timer", f->queue);
}

static void on_ttl(evutil_socket_t fd, short what, void *arg)
{
    expire(arg);
}

/* Over x-max-length or x-max-length-bytes with `more` messages of `bytes`
 * added. */
static bool too_long(const struct feed *f, size_t more, uint64_t bytes)
{
    return (f->args.max_length >= 0 && f->n_ready + more > (uint64_t)f->args.max_length) ||
           (f->args.max_length_bytes >= 0 &&
            f->bytes_ready + bytes > (uint64_t)f->args.max_length_bytes);
}

static void on_later(evutil_socket_t fd, short what, void *arg)
{
    struct feeds *fs = arg;
    for (struct feed *f = fs->list; f; f = f->next) {
        if (f->dispatch_due && !f->deleted)
            feed_dispatch(f);
        f->dispatch_due = false;
    }
    for (struct feed **pp = &fs->list; *pp;) {
        struct feed *f = *pp;
        if (f->deleted && !f->n_held) {
            *pp = f->next;
            feed_free(f);
        } else {
            pp = &f->next;
        }
    }
    if (fs->eased) {
        fs->eased = false;
        if (fs->hooks.eased)
            fs->hooks.eased(fs->hooks.arg);
    }
}

struct route {
    struct feeds *fs;
    const char *vhost;
    const struct feed_src *src;
    struct feed_routed *out;
};

/* Put a copy of the message in f, for its consumers. Returns false when
 * f refuses it (x-overflow reject-publish, reject-publish-dlx). */
static bool push(struct feed *f, const struct feed_src *src)
{
    if (f->discarding) {
        /* A message this queue expired or dropped, dead-lettered back into
         * it by the same turn of events: RabbitMQ drops such a cycle too
         * (rabbit_dead_letter's cycle detection), and here it would not
         * end. */
        if (!f->cycle_logged)
            log_warn("queue '%s' in vhost '%s': dead-letter cycle, its messages are dropped "
                     "(logged once)",
                     f->queue, f->vhost);
        f->cycle_logged = true;
        return true;
    }
    if (f->args.overflow != OVERFLOW_DROP_HEAD && too_long(f, 1, src->body_len)) {
        if (f->args.overflow == OVERFLOW_REJECT_PUBLISH_DLX)
            discard(f, hold(f, src), "maxlen");
        return false;
    }
    struct feed_msg *m = hold(f, src);
    int64_t ttl = f->args.message_ttl_ms;
    if (src->expiration_ms && (ttl < 0 || *src->expiration_ms < ttl))
        ttl = *src->expiration_ms;
    if (ttl >= 0)
        m->expires_at = (int64_t)monotonic_ms() + ttl;
    f->fs->transient_bytes += msg_cost(m);
    if (f->fs->transient_bytes >= f->fs->cfg->max_transient_bytes)
        f->fs->transient_over = true;
    ready_insert(f, m);
    while (too_long(f, 0, 0))
        discard(f, ready_pop(f), "maxlen"); /* drop-head */
    if (ttl >= 0)
        expire(f);
    f->dispatch_due = true;
    event_active(f->fs->later_ev, 0, 0);
    return true;
}

static void push_counted(struct feed *f, const struct feed_src *src, struct feed_routed *out)
{
    if (push(f, src))
        out->taken++;
    else
        out->rejected = true;
}

static bool push_bound(void *arg, const char *queue)
{
    struct route *r = arg;
    struct feed *f = feed_find(r->fs, r->vhost, queue);
    /* One copy per queue, however many of its bindings match. */
    if (f && f->memory && f->routed != r->fs->route_seq) {
        f->routed = r->fs->route_seq;
        push_counted(f, r->src, r->out);
    }
    return true;
}

void feeds_route_transient(struct feeds *fs, const char *vhost, const struct feed_src *src,
                           struct feed_routed *out)
{
    *out = (struct feed_routed){0};
    if (!fs->n_memory)
        return;
    if (src->exchange_len == 0) {
        /* The default exchange: the queue its routing key names. */
        char name[256];
        if (src->routing_key_len > 255)
            return;
        memcpy(name, src->routing_key, src->routing_key_len);
        name[src->routing_key_len] = '\0';
        struct feed *f = feed_find(fs, vhost, name);
        if (!f || !f->memory)
            return;
        push_counted(f, src, out);
        out->only_here = true;
        return;
    }
    struct route r = {fs, vhost, src, out};
    fs->route_seq++;
    topology_route(fs->topo, vhost, (const char *)src->exchange, src->exchange_len,
                   (const char *)src->routing_key, src->routing_key_len, src->headers, push_bound,
                   &r);
}

struct feed *feeds_get_hidden(struct feeds *fs, const char *vhost, const char *queue, bool make)
{
    struct feed *f = feed_find(fs, vhost, queue);
    if (f || !make)
        return f && f->memory ? f : NULL;
    f = feeds_get(fs, vhost, queue); /* no topology queue: made as a Kafka one */
    f->memory = f->auto_delete = true;
    fs->n_memory++;
    return f;
}

bool feeds_transient_full(const struct feeds *fs)
{
    return fs->transient_over;
}

void feeds_set_hooks(struct feeds *fs, const struct feeds_hooks *hooks)
{
    fs->hooks = *hooks;
}

/* ---- consumers ---- */

void feed_attach(struct feed *f, struct consumer *c)
{
    if (f->n_cons == f->cap_cons) {
        f->cap_cons = f->cap_cons ? 2 * f->cap_cons : 4;
        f->cons = xrealloc(f->cons, f->cap_cons * sizeof *f->cons);
    }
    f->cons[f->n_cons++] = c;
    if (start(f)) {
        f->consumed = true;
        feed_dispatch(f);
    }
    check_idle(f);
}

void feed_detach(struct feed *f, struct consumer *c)
{
    for (size_t i = 0; i < f->n_cons; i++) {
        if (f->cons[i] == c) {
            memmove(&f->cons[i], &f->cons[i + 1], (f->n_cons - i - 1) * sizeof *f->cons);
            f->n_cons--;
            break;
        }
    }
    if (f->rr >= f->n_cons)
        f->rr = 0;
    if (f->memory && !f->n_cons && !f->deleted) {
        if (f->auto_delete)
            transient_delete(f); /* RabbitMQ's auto-delete: with its last consumer */
        else
            arm_unused(f);
    }
    check_idle(f);
}

size_t feed_consumer_count(const struct feed *f)
{
    return f->n_cons;
}

bool feed_has_exclusive(const struct feed *f)
{
    for (size_t i = 0; i < f->n_cons; i++)
        if (consume_exclusive(f->cons[i]))
            return true;
    return false;
}

const char *feed_queue_name(const struct feed *f)
{
    return f->queue;
}

size_t feed_purge(struct feed *f)
{
    size_t n = 0;
    struct feed_msg *m;
    while ((m = ready_pop(f))) {
        feed_done(m);
        n++;
    }
    return n;
}

struct feed_msg *feed_take(struct feed *f)
{
    if (!start(f))
        return NULL;
    if (f->memory && f->ready_head && f->ready_head->expires_at)
        expire(f);
    struct feed_msg *m = ready_pop(f);
    if (m)
        note_delivered(m);
    check_idle(f); /* a get keeps the group, as a consumer would */
    return m;
}

/* ---- the registry ---- */

static void config_queue_placed(void *arg, bool ok, const char *why)
{
    const struct queue_cfg *q = arg;
    if (ok)
        log_info("queue '%s' in vhost '%s' (config) reads %zu topic(s)", q->name, q->vhost,
                 q->n_topics);
    else
        log_warn("queue '%s' in vhost '%s' (config): could not set where it starts (%s)", q->name,
                 q->vhost, why ? why : "unknown");
}

struct feeds *feeds_new(struct event_base *base, const struct config *cfg, struct topology *topo,
                        const struct router *router)
{
    struct feeds *fs = xcalloc(1, sizeof *fs);
    fs->base = base;
    fs->cfg = cfg;
    fs->topo = topo;
    fs->router = router;
    fs->admin_watch = (struct qwatch){.pipefd = {-1, -1}};
    fs->later_ev = event_new(base, -1, 0, on_later, fs);
    if (!fs->later_ev)
        abort(); /* as xmalloc does when memory runs out */
    /* A configured queue starts, like a declared one, where its topics end
     * when hopper first has it; later starts keep its place. */
    for (size_t i = 0; i < cfg->n_queues; i++)
        feeds_place(fs, cfg->queues[i].vhost, cfg->queues[i].name, config_queue_placed,
                    &cfg->queues[i]);
    return fs;
}

static void feed_free(struct feed *f)
{
    stop(f);
    if (f->idle_ev)
        event_free(f->idle_ev);
    if (f->ttl_ev)
        event_free(f->ttl_ev);
    if (f->unused_ev)
        event_free(f->unused_ev);
    while (f->ready_head)
        free(ready_pop(f));
    parts_free(&f->parts);
    parts_free(&f->orphans);
    forget(&f->starts);
    forget(&f->purged);
    free(f->cons);
    free(f->vhost);
    free(f->queue);
    buf_free(&f->group);
    free(f);
}

static struct feed *feed_find(struct feeds *fs, const char *vhost, const char *queue)
{
    for (struct feed *f = fs->list; f; f = f->next)
        if (!f->deleted && !strcmp(f->queue, queue) && !strcmp(f->vhost, vhost))
            return f;
    return NULL;
}

/* A transient queue's TTL, expiry and length limits, from the arguments
 * queue.declare checked (qargs.h). */
static void transient_args(struct feed *f, const struct queue *q)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 1024);
    amqp_table_t args = {0, NULL};
    size_t off = 0;
    if (q->args.len &&
        amqp_decode_table((amqp_bytes_t){q->args.len, q->args.data}, &pool, &args, &off) != 0)
        args = (amqp_table_t){0, NULL};
    qargs_parse(&args, &f->args);
    empty_amqp_pool(&pool);
}

struct feed *feeds_get(struct feeds *fs, const char *vhost, const char *queue)
{
    const struct queue *q = topology_queue(fs->topo, vhost, queue);
    bool memory = q && !topology_queue_in_kafka(q);
    struct feed *f = feed_find(fs, vhost, queue);
    if (f && memory && !f->memory && !f->rk && !f->n_held) {
        /* A durable queue deleted, then declared again as a transient one. */
        f->memory = true;
        f->auto_delete = q->auto_delete;
        transient_args(f, q);
        fs->n_memory++;
    }
    if (f) {
        if (!f->n_cons)
            arm_unused(f); /* named by a method: used */
        return f;
    }
    f = xcalloc(1, sizeof *f);
    f->fs = fs;
    f->vhost = xstrdup(vhost);
    f->queue = xstrdup(queue);
    f->memory = memory;
    f->auto_delete = memory && q->auto_delete;
    f->args = (struct qargs){-1, -1, -1, -1, OVERFLOW_DROP_HEAD};
    if (memory) {
        transient_args(f, q);
        fs->n_memory++;
        arm_unused(f);
    }
    f->watch = (struct qwatch){.pipefd = {-1, -1}};
    feed_group_name(fs->cfg->group_prefix, vhost, queue, &f->group);
    for (size_t i = 0; i < fs->cfg->n_queues; i++)
        if (!strcmp(fs->cfg->queues[i].name, queue) && !strcmp(fs->cfg->queues[i].vhost, vhost))
            f->qcfg = &fs->cfg->queues[i];
    f->next = fs->list;
    fs->list = f;
    return f;
}

void feeds_bindings_changed(struct feeds *fs, const char *vhost, const char *queue)
{
    struct feed *f = feed_find(fs, vhost, queue);
    if (f && f->rk)
        subscribe(f);
}

/* ---- placement: where a new queue starts ---- */

enum place_step { PLACE_GROUP, PLACE_DESCRIBE, PLACE_ENDS, PLACE_ALTER };

struct feed_place {
    enum admin_ask ask; /* ASK_PLACE */
    struct feeds *fs;
    struct feed_place *next;
    struct feed *f;
    enum place_step step;
    struct topic_set todo; /* topics the group has no offsets for */
    rd_kafka_topic_partition_list_t *parts;
    feed_placed_fn done;
    feed_purged_fn purged;                      /* set for a purge (feeds_purge), not a placement */
    rd_kafka_topic_partition_list_t *committed; /* a purge's starting points */
    uint64_t count;                             /* records a purge removed */
    void *arg;
    bool cancelled;
    struct event *later;  /* to answer from the loop, or to try again */
    uint64_t deadline_ms; /* monotonic_ms() */
};

static void place_finish(struct feed_place *p, bool ok, const char *why)
{
    struct feeds *fs = p->fs;
    if (ok)
        p->f->placed = true;
    if (!p->cancelled && p->purged)
        p->purged(p->arg, p->count);
    else if (!p->cancelled)
        p->done(p->arg, ok, why);
    for (struct feed_place **pp = &fs->places; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    topics_free(p->todo.names);
    if (p->parts)
        rd_kafka_topic_partition_list_destroy(p->parts);
    if (p->committed)
        rd_kafka_topic_partition_list_destroy(p->committed);
    if (p->later)
        event_free(p->later);
    free(p);
}

static rd_kafka_AdminOptions_t *admin_options(struct feeds *fs, rd_kafka_admin_op_t op,
                                              void *opaque)
{
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(fs->admin, op);
    char err[128];
    if (rd_kafka_AdminOptions_set_request_timeout(o, ADMIN_TIMEOUT_MS, err, sizeof err))
        log_warn("admin options: %s", err);
    rd_kafka_AdminOptions_set_opaque(o, opaque);
    return o;
}

static void place_start(struct feed_place *p);

static void on_place_retry(evutil_socket_t fd, short what, void *arg)
{
    place_start(arg);
}

/* A step failed. On a cluster just started the group coordinator takes a
 * while (COORDINATOR_LOAD_IN_PROGRESS, timeouts): try again until the
 * deadline, then answer with what was learnt. */
static void place_failed(struct feed_place *p, const char *why)
{
    if (monotonic_ms() >= p->deadline_ms) {
        place_finish(p, false, why);
        return;
    }
    log_debug("queue '%s': placing its group: %s; trying again", p->f->queue, why);
    static const struct timeval retry = {0, PLACE_RETRY_MS * 1000};
    if (!p->later)
        p->later = evtimer_new(p->fs->base, on_place_retry, p);
    if (!p->later || evtimer_add(p->later, &retry))
        abort(); /* as xmalloc does when memory runs out */
}

static void place_describe(struct feed_place *p)
{
    p->step = PLACE_DESCRIBE;
    rd_kafka_TopicCollection_t *tc =
        rd_kafka_TopicCollection_of_topic_names((const char **)p->todo.names, p->todo.n);
    rd_kafka_AdminOptions_t *o = admin_options(p->fs, RD_KAFKA_ADMIN_OP_DESCRIBETOPICS, p);
    rd_kafka_DescribeTopics(p->fs->admin, tc, o, p->fs->admin_q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_TopicCollection_destroy(tc);
}

static void place_group_listed(struct feed_place *p, rd_kafka_event_t *ev)
{
    struct group_answer a = offsets_listed(ev);
    if (a.err) {
        place_failed(p, a.why);
        return;
    }
    const rd_kafka_topic_partition_list_t *have = a.parts;
    if (p->purged && have)
        p->committed = rd_kafka_topic_partition_list_copy(have);
    struct topic_set all = queue_topics(p->f);
    for (size_t i = 0; i < all.n; i++) {
        bool placed = false; /* a purge moves every topic */
        for (int j = 0; !p->purged && have && j < have->cnt && !placed; j++)
            placed = have->elems[j].offset >= 0 && !strcmp(have->elems[j].topic, all.names[i]);
        if (!placed)
            topic_add(&p->todo, all.names[i]);
    }
    topics_free(all.names);
    if (!p->todo.n) {
        place_finish(p, true, NULL);
        return;
    }
    place_describe(p);
}

static void place_described(struct feed_place *p, rd_kafka_event_t *ev)
{
    const rd_kafka_DescribeTopics_result_t *res = rd_kafka_event_DescribeTopics_result(ev);
    size_t n = 0;
    const rd_kafka_TopicDescription_t **d =
        res ? rd_kafka_DescribeTopics_result_topics(res, &n) : NULL;
    if (rd_kafka_event_error(ev)) {
        place_failed(p, rd_kafka_event_error_string(ev));
        return;
    }
    /* The queue's topics were asked for at its declaration and bindings
     * (sink_ensure_topic), and the cluster creates them a moment later:
     * wait until they exist. A group whose coordinator does not know a
     * topic yet is assigned none of its partitions, and librdkafka 2.8.0
     * does not notice once the topic appears (its leader compares later
     * metadata with what it saw at join time, not with what its assignor
     * saw), so its records would stay unread. */
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_error_t *te = rd_kafka_TopicDescription_error(d[i]);
        if (rd_kafka_error_code(te)) {
            char why[512];
            snprintf(why, sizeof why, "topic %s: %s", rd_kafka_TopicDescription_name(d[i]),
                     rd_kafka_error_string(te));
            place_failed(p, why);
            return;
        }
    }
    p->parts = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < n; i++) {
        size_t np = 0;
        const rd_kafka_TopicPartitionInfo_t **pi = rd_kafka_TopicDescription_partitions(d[i], &np);
        for (size_t j = 0; j < np; j++)
            rd_kafka_topic_partition_list_add(p->parts, rd_kafka_TopicDescription_name(d[i]),
                                              rd_kafka_TopicPartitionInfo_partition(pi[j]))
                ->offset = RD_KAFKA_OFFSET_SPEC_LATEST;
    }
    if (!p->parts->cnt) {
        place_finish(p, true, NULL);
        return;
    }
    p->step = PLACE_ENDS;
    rd_kafka_AdminOptions_t *o = admin_options(p->fs, RD_KAFKA_ADMIN_OP_LISTOFFSETS, p);
    rd_kafka_ListOffsets(p->fs->admin, p->parts, o, p->fs->admin_q);
    rd_kafka_AdminOptions_destroy(o);
}

/* Records between a group's committed offsets and the ends: what moving
 * it to the ends removes (partitions without an offset count none). */
static uint64_t lag(const rd_kafka_topic_partition_list_t *committed,
                    const rd_kafka_topic_partition_list_t *ends)
{
    uint64_t n = 0;
    for (int i = 0; committed && i < ends->cnt; i++) {
        const rd_kafka_topic_partition_t *e = &ends->elems[i];
        const rd_kafka_topic_partition_t *c =
            rd_kafka_topic_partition_list_find(committed, e->topic, e->partition);
        if (c && c->offset >= 0 && e->offset > c->offset)
            n += (uint64_t)(e->offset - c->offset);
    }
    return n;
}

/* A purge while this hopper consumes the queue: the ready records are
 * done, and so is every record up to `ends`, as it is fetched here,
 * unread: now for the partitions assigned here, on assignment for the
 * others (a group still joining). Returns how many records that removes
 * (delivered, unacked ones stay with their consumers, as on RabbitMQ).
 * Partitions another hopper holds keep their records. */
static uint64_t purge_assigned(struct feed *f, const rd_kafka_topic_partition_list_t *committed,
                               const rd_kafka_topic_partition_list_t *ends)
{
    remember(&f->purged, ends);
    uint64_t n = feed_purge(f);
    rd_kafka_topic_partition_list_t *elsewhere = rd_kafka_topic_partition_list_copy(ends);
    rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_new(8);
    for (struct fpart *p = f->parts; p; p = p->next)
        rd_kafka_topic_partition_list_add(pos, p->topic, p->partition);
    rd_kafka_position(f->rk, pos); /* what was read so far: local, does not block */
    for (int i = 0; i < pos->cnt; i++) {
        const rd_kafka_topic_partition_t *at = &pos->elems[i];
        const rd_kafka_topic_partition_t *e =
            rd_kafka_topic_partition_list_find(ends, at->topic, at->partition);
        struct fpart *p = part_find(f, at->topic, at->partition);
        if (!e || !p)
            continue;
        int64_t from = at->offset >= 0 ? at->offset : p->start;
        if (from < p->purge_below) /* an earlier purge's part */
            from = p->purge_below;
        if (e->offset > from)
            n += (uint64_t)(e->offset - from);
        if (e->offset > p->purge_below)
            p->purge_below = e->offset;
        rd_kafka_topic_partition_list_del(elsewhere, at->topic, at->partition);
    }
    rd_kafka_topic_partition_list_destroy(pos);
    n += lag(committed, elsewhere);
    rd_kafka_topic_partition_list_destroy(elsewhere);
    return n;
}

static void place_ends(struct feed_place *p, rd_kafka_event_t *ev)
{
    const rd_kafka_ListOffsets_result_t *res = rd_kafka_event_ListOffsets_result(ev);
    size_t n = 0;
    const rd_kafka_ListOffsetsResultInfo_t **infos =
        res ? rd_kafka_ListOffsets_result_infos(res, &n) : NULL;
    if (rd_kafka_event_error(ev)) {
        place_failed(p, rd_kafka_event_error_string(ev));
        return;
    }
    rd_kafka_topic_partition_list_t *ends = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_topic_partition_t *tp =
            rd_kafka_ListOffsetsResultInfo_topic_partition(infos[i]);
        if (tp->err) {
            rd_kafka_topic_partition_list_destroy(ends);
            place_failed(p, rd_kafka_err2str(tp->err));
            return;
        }
        rd_kafka_topic_partition_list_add(ends, tp->topic, tp->partition)->offset = tp->offset;
    }
    rd_kafka_topic_partition_list_destroy(p->parts);
    p->parts = ends;
    if (p->purged && p->f->rk) {
        /* The group cannot move under this hopper's own member. */
        p->count = purge_assigned(p->f, p->committed, ends);
        place_finish(p, true, NULL);
        return;
    }
    if (p->purged)
        p->count = lag(p->committed, ends);
    else /* kept in memory too: if the group is already active here, the
          * commit below is refused, and assignment starts these
          * partitions there */
        remember(&p->f->starts, ends);
    p->step = PLACE_ALTER;
    rd_kafka_AlterConsumerGroupOffsets_t *a =
        rd_kafka_AlterConsumerGroupOffsets_new((const char *)p->f->group.data, ends);
    rd_kafka_AdminOptions_t *o =
        admin_options(p->fs, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS, p);
    rd_kafka_AlterConsumerGroupOffsets(p->fs->admin, &a, 1, o, p->fs->admin_q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_AlterConsumerGroupOffsets_destroy(a);
}

static void place_altered(struct feed_place *p, rd_kafka_event_t *ev)
{
    const rd_kafka_AlterConsumerGroupOffsets_result_t *res =
        rd_kafka_event_AlterConsumerGroupOffsets_result(ev);
    size_t n = 0;
    const rd_kafka_group_result_t **groups =
        res ? rd_kafka_AlterConsumerGroupOffsets_result_groups(res, &n) : NULL;
    struct group_answer a = group_answer(ev, groups, n);
    /* The coordinator refuses offsets of a topic it does not know yet:
     * try again, so that it knows every partition before the group's first
     * member joins (see place_described). Refusals because the group is
     * active (a member's generation) leave the starts remembered above. */
    const rd_kafka_topic_partition_list_t *done = a.parts;
    rd_kafka_resp_err_t refused = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; done && i < done->cnt; i++) {
        if (done->elems[i].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            char why[512];
            snprintf(why, sizeof why, "offset of %s [%" PRId32 "]: %s", done->elems[i].topic,
                     done->elems[i].partition, rd_kafka_err2str(done->elems[i].err));
            place_failed(p, why);
            return;
        }
        if (!refused)
            refused = done->elems[i].err;
    }
    if (p->purged && refused) {
        log_warn("queue '%s': purge: consumers on another hopper hold its group (%s); it keeps "
                 "its records",
                 p->f->queue, rd_kafka_err2str(refused));
        p->count = 0;
    }
    if (a.err) {
        if (p->f->rk) {
            /* Our own member holds the group: the remembered starts place it. */
            place_finish(p, true, NULL);
            return;
        }
        place_failed(p, a.why);
        return;
    }
    place_finish(p, true, NULL);
}

static void on_admin(evutil_socket_t fd, short what, void *arg)
{
    struct feeds *fs = arg;
    drain_pipe(fd);
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(fs->admin_q, 0))) {
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_DELETEGROUPS_RESULT) {
            group_deleted(rd_kafka_event_opaque(ev), ev);
            rd_kafka_event_destroy(ev);
            continue;
        }
        const enum admin_ask *ask = rd_kafka_event_opaque(ev);
        if (ask && *ask == ASK_COMMITTED) {
            read_answered(rd_kafka_event_opaque(ev), ev);
            rd_kafka_event_destroy(ev);
            continue;
        }
        struct feed_place *p = rd_kafka_event_opaque(ev);
        if (p) {
            switch (rd_kafka_event_type(ev)) {
            case RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT:
                place_group_listed(p, ev);
                break;
            case RD_KAFKA_EVENT_DESCRIBETOPICS_RESULT:
                place_described(p, ev);
                break;
            case RD_KAFKA_EVENT_LISTOFFSETS_RESULT:
                place_ends(p, ev);
                break;
            case RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT:
                place_altered(p, ev);
                break;
            default:
                break;
            }
        }
        rd_kafka_event_destroy(ev);
    }
}

static bool admin_start(struct feeds *fs)
{
    if (fs->admin)
        return true;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[512];
    /* A consumer handle with a group of its own, never joined: librdkafka
     * 2.8.0 answers an admin OffsetFetch's NOT_COORDINATOR (a cluster whose
     * coordinator is still loading) by poking the handle's consumer group,
     * and crashed on a producer handle, which has none (librdkafka issue
     * 5040). "<prefix>admin" cannot be a queue's group: those have a dot
     * between vhost and queue after the prefix. */
    struct buf group = {0};
    buf_append(&group, fs->cfg->group_prefix, strlen(fs->cfg->group_prefix));
    buf_append(&group, "admin", 6);
    bool ok =
        rd_kafka_conf_set(conf, "bootstrap.servers", fs->cfg->bootstrap_servers, err, sizeof err) ==
            RD_KAFKA_CONF_OK &&
        rd_kafka_conf_set(conf, "client.id", "hopper-admin", err, sizeof err) == RD_KAFKA_CONF_OK &&
        rd_kafka_conf_set(conf, "group.id", group.data, err, sizeof err) == RD_KAFKA_CONF_OK;
    buf_free(&group);
    if (!ok) {
        log_error("queue admin client: %s", err);
        rd_kafka_conf_destroy(conf);
        return false;
    }
    fs->admin = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!fs->admin) {
        log_error("queue admin client: %s", err);
        rd_kafka_conf_destroy(conf);
        return false;
    }
    fs->admin_q = rd_kafka_queue_new(fs->admin);
    if (!qwatch_start(&fs->admin_watch, fs->base, fs->admin_q, on_admin, fs)) {
        log_error("queue admin client: cannot watch its queue: %s", strerror(errno));
        rd_kafka_queue_destroy(fs->admin_q);
        rd_kafka_destroy(fs->admin);
        fs->admin = NULL;
        fs->admin_q = NULL;
        return false;
    }
    return true;
}

static void on_place_later(evutil_socket_t fd, short what, void *arg)
{
    place_finish(arg, true, NULL);
}

/* A placement or purge of the queue. It is answered from the loop: on the
 * next turn when there is nothing to ask Kafka (place_go's `now`), else
 * once the admin steps are done. */
static struct feed_place *place_new(struct feeds *fs, const char *vhost, const char *queue,
                                    void *arg)
{
    struct feed_place *p = xcalloc(1, sizeof *p);
    p->ask = ASK_PLACE;
    p->fs = fs;
    p->f = feeds_get(fs, vhost, queue);
    p->arg = arg;
    p->next = fs->places;
    fs->places = p;
    return p;
}

static struct feed_place *place_go(struct feed_place *p, bool now)
{
    if (now) {
        static const struct timeval next_turn = {0, 0};
        p->later = evtimer_new(p->fs->base, on_place_later, p);
        if (!p->later || evtimer_add(p->later, &next_turn))
            abort(); /* as xmalloc does when memory runs out */
        return p;
    }
    p->deadline_ms = monotonic_ms() + PLACE_DEADLINE_MS;
    place_start(p);
    return p;
}

struct feed_place *feeds_place(struct feeds *fs, const char *vhost, const char *queue,
                               feed_placed_fn done, void *arg)
{
    struct feed_place *p = place_new(fs, vhost, queue, arg);
    p->done = done;
    /* Declared before by this process, or no admin client to ask: answer
     * on the next turn. Without an admin client the queue starts where its
     * consumer first reads; say so rather than refuse the declaration. */
    bool known = p->f->placed;
    if (!known && !admin_start(fs)) {
        log_warn("queue '%s': cannot place its group at the topics' ends", queue);
        known = true;
    }
    return place_go(p, known);
}

struct feed_place *feeds_purge(struct feeds *fs, const char *vhost, const char *queue,
                               feed_purged_fn done, void *arg)
{
    struct feed_place *p = place_new(fs, vhost, queue, arg);
    p->purged = done;
    bool local = !admin_start(fs);
    if (local) /* without an admin client only what this hopper holds goes */
        p->count = feed_purge(p->f);
    return place_go(p, local);
}

static void place_start(struct feed_place *p)
{
    topics_free(p->todo.names);
    p->todo = (struct topic_set){0};
    if (p->parts)
        rd_kafka_topic_partition_list_destroy(p->parts);
    p->parts = NULL;
    if (p->committed)
        rd_kafka_topic_partition_list_destroy(p->committed);
    p->committed = NULL;
    p->count = 0;
    p->step = PLACE_GROUP;
    rd_kafka_ListConsumerGroupOffsets_t *l =
        rd_kafka_ListConsumerGroupOffsets_new((const char *)p->f->group.data, NULL);
    rd_kafka_AdminOptions_t *o =
        admin_options(p->fs, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, p);
    rd_kafka_ListConsumerGroupOffsets(p->fs->admin, &l, 1, o, p->fs->admin_q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_ListConsumerGroupOffsets_destroy(l);
}

void feeds_place_cancel(struct feed_place *p)
{
    p->cancelled = true;
}

/* ---- the end ---- */

/* Deleting a queue's group. The coordinator refuses while the member that
 * just left is still counted (GROUP_NOT_EMPTY): try again for a while. */
struct group_delete {
    struct feeds *fs;
    struct group_delete *next;
    char *group;
    int tries;
    struct event *timer;
};

static void delete_group(struct group_delete *d)
{
    rd_kafka_DeleteGroup_t *g = rd_kafka_DeleteGroup_new(d->group);
    rd_kafka_AdminOptions_t *o =
        rd_kafka_AdminOptions_new(d->fs->admin, RD_KAFKA_ADMIN_OP_DELETEGROUPS);
    rd_kafka_AdminOptions_set_opaque(o, d);
    rd_kafka_DeleteGroups(d->fs->admin, &g, 1, o, d->fs->admin_q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_DeleteGroup_destroy(g);
}

static void group_delete_free(struct group_delete *d)
{
    for (struct group_delete **pp = &d->fs->deletes; *pp; pp = &(*pp)->next) {
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    }
    if (d->timer)
        event_free(d->timer);
    free(d->group);
    free(d);
}

static void on_delete_retry(evutil_socket_t fd, short what, void *arg)
{
    delete_group(arg);
}

static void group_deleted(struct group_delete *d, rd_kafka_event_t *ev)
{
    const rd_kafka_DeleteGroups_result_t *res = rd_kafka_event_DeleteGroups_result(ev);
    size_t n = 0;
    const rd_kafka_group_result_t **groups =
        res ? rd_kafka_DeleteGroups_result_groups(res, &n) : NULL;
    rd_kafka_resp_err_t err = group_answer(ev, groups, n).err;
    if (!err || err == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) {
        log_info("consumer group %s deleted with its queue", d->group);
        group_delete_free(d);
        return;
    }
    static const struct timeval retry = {1, 0};
    if (++d->tries >= GROUP_DELETE_TRIES) {
        log_warn("consumer group %s of a deleted queue stays: %s (a queue declared again with "
                 "its name starts at its offsets)",
                 d->group, rd_kafka_err2str(err));
        group_delete_free(d);
        return;
    }
    if (!d->timer)
        d->timer = evtimer_new(d->fs->base, on_delete_retry, d);
    if (!d->timer || evtimer_add(d->timer, &retry))
        abort(); /* as xmalloc does when memory runs out */
}

void feeds_queue_deleted(struct feeds *fs, const char *vhost, const char *queue, bool forget_group)
{
    struct feed *f = feed_find(fs, vhost, queue);
    if (!f)
        return;
    if (f->memory) {
        transient_gone(f);
        return;
    }
    while (f->n_cons)
        consume_cancelled_by_server(f->cons[f->n_cons - 1]); /* detaches it */
    stop(f);
    /* The group goes with the queue; a queue declared again with the same
     * name starts afresh, as on RabbitMQ. Only the hopper that deleted the
     * queue deletes it (retrying while other hoppers still leave): another
     * may read the tombstone after the queue was declared again and its
     * new group placed, which a late deletion would undo. */
    if (forget_group && admin_start(fs)) {
        struct group_delete *d = xcalloc(1, sizeof *d);
        d->fs = fs;
        d->group = xstrdup((const char *)f->group.data);
        d->next = fs->deletes;
        fs->deletes = d;
        delete_group(d);
    }
    /* Delivered records of this queue are orphans from here: the channels
     * holding them settle them into nothing. */
    f->placed = false;
    forget(&f->starts);
    forget(&f->purged);
}

void feeds_free(struct feeds *fs)
{
    if (!fs)
        return;
    while (fs->places) {
        fs->places->cancelled = true;
        place_finish(fs->places, false, "shutting down");
    }
    while (fs->deletes)
        group_delete_free(fs->deletes);
    while (fs->list) {
        struct feed *f = fs->list;
        fs->list = f->next;
        feed_free(f);
    }
    leavers_wait(fs, NULL, FEED_LEAVE_MS, true);
    event_free(fs->later_ev);
    if (fs->admin) {
        qwatch_stop(&fs->admin_watch, fs->admin_q);
        rd_kafka_queue_destroy(fs->admin_q);
        rd_kafka_destroy(fs->admin);
    }
    while (fs->reads) /* abandoned by their feeds' stop */
        read_free(fs->reads);
    free(fs);
}
