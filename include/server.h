/* server.h - the process-wide state: listener, connections, the Kafka sink,
 * topology, and the back-pressure switch shared by every connection.
 *
 * Back-pressure: when the sink's in-flight bytes reach their bound the
 * server is "blocked": every connection stops reading its socket (TCP holds
 * the publishers back) and clients that advertised the capability get
 * connection.blocked; once in-flight bytes fall to the resume mark, reading
 * resumes and they get connection.unblocked. */
#ifndef HOPPER_SERVER_H
#define HOPPER_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "router.h"
#include "sink.h"
#include "topology.h"

struct conn;
struct chan;

struct server_stats {
    uint64_t connections_accepted, connections_refused;
    uint64_t published, unroutable_dropped, returned;
    uint64_t acks_sent, nacks_sent;
    uint64_t delivered;
    /* contracts (intake.h) */
    uint64_t contract_refused, contract_dead_lettered, contract_unavailable;
    /* the topic rule (topicrule.h): unroutable, and nacked without an answer */
    uint64_t topic_refused, topic_unanswered;
};

struct server {
    struct event_base *base;
    struct config *cfg; /* owned */
    struct router *router;
    struct sink *sink;
    struct topology *topo;
    struct feeds *feeds;             /* task queues; NULL unless rabbit.enabled */
    struct deadletters *deadletters; /* with feeds */
    struct topostore *store;         /* the durable topology in Kafka; with feeds */
    struct evconnlistener *listener;
    struct contracts *contracts; /* with registry.url */
    struct bridges *bridges;     /* rabbit.upstream, with the RabbitMQ side on; else NULL */

    /* Channels holding publishes for their schema or their topic's answer
     * (intake.h), the timer that enforces their deadlines, and the bodies
     * they hold. */
    struct chan *holding;
    size_t n_holding;
    struct event *hold_timer;
    uint64_t held_bytes;

    struct conn *conns; /* doubly linked list of live connections */
    size_t n_conns;
    uint64_t next_conn_id;

    struct confirm_owner **dirty; /* channels (and others) with confirms to flush */
    size_t n_dirty, cap_dirty;

    /* Scratch space for the hot path: the topic name a route composes,
     * and a record key rendered from a header. Two buffers, since the
     * topic must survive the key's rendering. */
    struct buf scratch, key_scratch;
    struct buf contract_scratch; /* a body a contract re-encoded */

    bool blocked;  /* sink over its bound: no connection reads */
    bool draining; /* shutdown in progress: no intake */
    struct server_stats stats;
};

/* Build everything from cfg (taking ownership of it) and start listening. */
struct server *server_new(struct event_base *base, struct config *cfg, char *err, size_t errlen);
void server_free(struct server *srv);

/* Stop accepting and reading; in-flight messages finish or are nacked by
 * server_abandon. Returns when nothing is in flight (caller checks). */
void server_begin_drain(struct server *srv);
/* Deadline passed or nothing in flight: nack what is left, send the
 * confirms, close every client with 320 CONNECTION_FORCED. */
void server_finish_drain(struct server *srv);

/* A channel has outcomes to send. */
void server_mark_dirty(struct server *srv, struct confirm_owner *o);
void server_forget_owner(struct server *srv, struct confirm_owner *o);
/* Send pending confirms of every dirty channel. */
void server_flush_confirms(struct server *srv);

/* Re-evaluate the blocked switch after in-flight bytes changed. */
void server_update_blocked(struct server *srv);

/* Publishes in flight to Kafka or held (intake.h): the drain waits for
 * them. */
bool server_busy(const struct server *srv);

#endif
