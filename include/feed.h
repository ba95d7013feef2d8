/* feed.h - the Kafka side of a durable queue: its consumer group, the
 * records fetched and not yet acked, their dispatch to consumers, and the
 * offset commits their acks become (README, "Task queues").
 *
 * A durable queue Q in vhost V reads, through consumer group
 * <rabbit.group_prefix><V>.<Q> (feed_group_name spells it), the topics its
 * bindings' exchanges route to plus the default exchange's topic for Q. A
 * record is ready for Q's consumers when one of Q's bindings matches it;
 * the others count as done at once.
 *
 * Life of a fetched record (struct feed_msg):
 *
 *   fetched -> ready -> delivered (unacked) -> done (acked, dropped)
 *                ^            |
 *                +-- requeued (nack/reject with requeue, recover, the
 *                    consumer's channel closed), redelivered = true
 *
 * Per partition the commit is the lowest offset not done (offsets.h); acks
 * above a hole travel in the commit metadata so that a restart does not
 * deliver them again. Records held (ready or unacked) are bounded per
 * queue (rabbit.max_unacked, rabbit.max_unacked_bytes): past the bound the
 * feed pauses its partitions and keeps polling, so the group keeps its
 * members; nothing is dropped.
 *
 * The consumer handle is driven from the libevent loop like the sink's
 * producers (a pipe signals its queue), and nothing a feed asks of Kafka
 * waits on the loop: partitions assigned are taken once the admin client
 * has read their committed offsets (the group waits for the assign call
 * meanwhile), the commit of partitions revoked is asynchronous (librdkafka
 * finishes the unassign after its answer), and a feed that stops (idle,
 * its queue deleted, shutdown) commits and closes in the background
 * (feed.c, "leaving the group"); shutdown waits for that FEED_LEAVE_MS at
 * most.
 *
 * Transient queues (exclusive, auto-delete, non-durable or server-named:
 * topology_queue_in_kafka says no) are feeds without Kafka: a publish that
 * one of their bindings matches puts a copy in them (feeds_route_transient)
 * and the same ready list, dispatch, ack and requeue serve it. They live in
 * this process only. Their records count against rabbit.max_transient_bytes
 * together; at the bound publishers are held back (the server's blocked
 * switch), never dropped. */
#ifndef HOPPER_FEED_H
#define HOPPER_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>
#include <event2/event.h>

#include "config.h"
#include "util.h"

struct feed;
struct feeds;
struct fpart;
struct consumer; /* consume.h */
struct topology;
struct router;

/* One fetched record, owned by its feed until feed_done. */
struct feed_msg {
    struct feed *feed;
    struct fpart *part; /* NULL once the partition was revoked: done is a no-op */
    int64_t offset;
    uint64_t seq; /* fetch order: requeued records go back in it */
    bool redelivered;
    bool ready;                   /* on the ready list (else delivered) */
    struct feed_msg *prev, *next; /* ready list */
    int64_t expires_at;           /* transient queues: monotonic ms it expires after, 0 never */
    uint8_t exchange_len, routing_key_len;
    size_t props_len, body_len;
    uint8_t *exchange, *routing_key; /* point into data */
    uint8_t *props, *body;           /* props: flags word first */
    uint8_t data[];
};

/* A message as a queue holds it: exchange and routing key (cut to 255
 * bytes), the content header's property bytes (flags word first), the body,
 * and the decoded headers table that headers exchanges match (or NULL). */
struct feed_src {
    const void *exchange;
    size_t exchange_len;
    const void *routing_key;
    size_t routing_key_len;
    const void *props;
    size_t props_len;
    const void *body;
    size_t body_len;
    const amqp_table_t *headers;
    const int64_t *expiration_ms; /* the expiration property, or NULL */
};

/* The registry of feeds, one per queue in use. Borrows everything. */
struct feeds *feeds_new(struct event_base *base, const struct config *cfg, struct topology *topo,
                        const struct router *router);
/* Commit what is acked, stop every consumer handle. */
void feeds_free(struct feeds *fs);

/* The queue's feed, made on first use (no Kafka work until a consumer or a
 * basic.get needs records). */
struct feed *feeds_get(struct feeds *fs, const char *vhost, const char *queue);
/* The queue is gone: cancel its consumers (they are told), drop its
 * records; with forget_group (the deletion was made here, not read from
 * the topology topic), delete its consumer group too. */
void feeds_queue_deleted(struct feeds *fs, const char *vhost, const char *queue, bool forget_group);
/* A binding changed: the queue may read other topics now. */
void feeds_bindings_changed(struct feeds *fs, const char *vhost, const char *queue);

/* Place a new queue's group at the ends of its topics (where RabbitMQ's
 * queue starts: at its declaration), unless the group already has offsets
 * for them. `done` is called from the loop, once, with true when placed
 * (or nothing needed placing) and false with a reason; never from inside
 * feeds_place. A placement can be abandoned (the channel went away) with
 * feeds_place_cancel: then done is not called. */
typedef void (*feed_placed_fn)(void *arg, bool ok, const char *why);
struct feed_place;
struct feed_place *feeds_place(struct feeds *fs, const char *vhost, const char *queue,
                               feed_placed_fn done, void *arg);
void feeds_place_cancel(struct feed_place *p);

/* queue.purge: the records this hopper holds ready are done, and the
 * group moves past everything its topics hold now. With this hopper
 * consuming the queue the group cannot move under its member: the
 * partitions assigned here skip, unread, what they hold now; partitions
 * another hopper's consumers hold keep their records (logged). `done`
 * gets how many records went (records that match none of the queue's
 * bindings included), from the loop, once, unless cancelled with
 * feeds_place_cancel. */
typedef void (*feed_purged_fn)(void *arg, uint64_t count);
struct feed_place *feeds_purge(struct feeds *fs, const char *vhost, const char *queue,
                               feed_purged_fn done, void *arg);

/* What a publish did in the transient queues. */
struct feed_routed {
    size_t taken;   /* queues that took a copy */
    bool rejected;  /* a queue refused it (x-overflow reject-publish*): nack */
    bool only_here; /* the default exchange named a transient queue: nowhere else */
};

/* A publish reaches the transient queues whose bindings match it, each
 * taking a copy (or refusing it, past x-max-length with reject-publish):
 * the message goes there and, unless only_here, on to Kafka. */
void feeds_route_transient(struct feeds *fs, const char *vhost, const struct feed_src *src,
                           struct feed_routed *out);
/* A transient, auto-delete queue that no topology holds (direct reply-to's,
 * replyto.h): found by name, made when `make`; NULL when there is none. */
struct feed *feeds_get_hidden(struct feeds *fs, const char *vhost, const char *queue, bool make);
/* Transient queues hold rabbit.max_transient_bytes: publishers must wait. */
bool feeds_transient_full(const struct feeds *fs);

/* What the feeds need from the server, called from the loop. */
struct feeds_hooks {
    /* Transient queues fell back under the resume mark. */
    void (*eased)(void *arg);
    /* A transient queue's message expired or fell off its length limit:
     * dead-letter it if queue says so (true: taken, settled later). */
    bool (*dead_letter)(void *arg, struct feed_msg *m, const char *vhost, const char *queue,
                        const char *reason);
    void *arg;
};
void feeds_set_hooks(struct feeds *fs, const struct feeds_hooks *hooks);

/* Consumer group of a queue: <prefix><vhost>.<queue>, where the vhost
 * keeps [A-Za-z0-9_-] and the queue [A-Za-z0-9._-]; every other byte is
 * %XX (upper-case hex), so "/" and "celery" give "hopper.%2F.celery". */
void feed_group_name(const char *prefix, const char *vhost, const char *queue, struct buf *out);

/* Consumers. attach starts fetching if this is the first need. */
void feed_attach(struct feed *f, struct consumer *c);
void feed_detach(struct feed *f, struct consumer *c);
size_t feed_consumer_count(const struct feed *f);
bool feed_has_exclusive(const struct feed *f);
const char *feed_queue_name(const struct feed *f);
/* Hand ready records to consumers that have room (round robin). */
void feed_dispatch(struct feed *f);

/* basic.get: the first ready record (now delivered), or NULL. Starts
 * fetching if nothing did yet. */
struct feed_msg *feed_take(struct feed *f);
/* Ready records held now (what declare-ok and get-ok report). */
size_t feed_ready_count(const struct feed *f);
/* Drop the ready records (a transient queue's purge); returns how many. */
size_t feed_purge(struct feed *f);

/* A delivered record was acked, or dropped: it is done and freed. */
void feed_done(struct feed_msg *m);
/* A delivered record goes back to the queue, redelivered, in fetch order. */
void feed_requeue(struct feed_msg *m);

#endif
