/* chan.h - one AMQP channel: its state, its life (open, flow, close) and
 * the dispatch of its frames to the modules that serve them: declare.h
 * (exchanges and queues), publish.h (publishing and confirms), consume.h
 * (consuming, with task queues on). The channel's fields below are theirs.
 *
 * A channel is OPEN or CLOSING (we sent channel.close and ignore all but
 * close-ok). A publish is assembled in three steps: basic.publish, then
 * the content header, then body frames until body_size bytes arrived. */
#ifndef HOPPER_CHAN_H
#define HOPPER_CHAN_H

#include <stdbool.h>
#include <stdint.h>

#include "confirm.h"
#include "frame.h"
#include "sink.h"
#include "util.h"

struct conn;
struct consumer;
struct unacked;
struct feed_place;
struct store_wait;
struct held;

enum chan_state { CHAN_OPEN, CHAN_CLOSING };
enum chan_content { CONTENT_NONE, CONTENT_AWAIT_HEADER, CONTENT_AWAIT_BODY };

struct chan {
    struct conn *conn;
    uint16_t id;
    enum chan_state state;
    struct confirm *confirm;    /* non-NULL after confirm.select */
    struct confirm_owner owner; /* its outcomes come back here (publish_flush_confirms) */
    bool over_limit;            /* at max_unconfirmed: the connection stops reading */
    char last_queue[256];       /* for queue.bind etc. with an empty queue name */
    struct feed_place *placing; /* a queue.declare or bind waiting for its group's place */
    char placing_queue[256];
    amqp_method_number_t placing_method;
    bool placing_reply;         /* not nowait */
    struct store_wait *storing; /* a method waiting for Kafka to persist its topology (declare.c) */

    /* consuming (consume.c) */
    struct consumer *consumers;
    uint16_t prefetch_next;   /* basic.qos global=false: for consumers made afterwards */
    uint16_t prefetch_global; /* basic.qos global=true: shared by the channel, 0 none */
    uint64_t next_tag;        /* last delivery tag given */
    struct unacked *unacked;  /* deliveries not yet settled, in tag order */
    size_t un_head, un_len, un_cap, n_unacked;
    char reply_queue[96]; /* the reply consumer's hidden queue (replyto.h), "" for none */

    /* publish being assembled */
    enum chan_content content;
    char exchange[256];
    char routing_key[256];
    uint8_t exchange_len, routing_key_len;
    bool mandatory;
    struct buf raw_props; /* the content header's property bytes, as sent */
    uint8_t *body;
    uint64_t body_size, body_have;

    /* publishes waiting for their contract's schema, and every publish
     * after them, in order (intake.c) */
    struct held *held_head, *held_tail;
    size_t n_held;
    struct chan *hold_prev, *hold_next; /* the server's channels that hold some */

    /* A channel whose publishes are deliveries hopper consumed from an
     * upstream broker (bridge.h): told which tags may not go to Kafka at
     * all (their contract refused them, their topic may not exist), just
     * before their outcome, a nack. NULL on a client's channel. */
    void (*refused)(struct chan *ch, uint64_t tag);

    /* a complete publish the sink could not take yet (SINK_FULL) */
    bool has_parked;
    struct sink_msg parked;
    char parked_topic[256];
    struct buf parked_key;
};

struct chan *chan_new(struct conn *c, uint16_t id);
/* Free the channel; its in-flight confirms are detached. */
void chan_free(struct chan *ch);

/* A frame for this channel (method already known not to be a channel.open). */
void chan_handle_frame(struct chan *ch, const struct frame *f);

/* Close this channel with channel.close. */
void chan_close(struct chan *ch, uint16_t code, const char *text, amqp_method_number_t failing);

/* Send method id (m decoded, NULL for none) on the channel. */
void chan_send(struct chan *ch, amqp_method_number_t id, void *m);

/* Copy a short string into a C string (out: 256 bytes); an embedded NUL
 * closes the channel (406) and returns false. */
bool chan_copy_name(struct chan *ch, char out[256], amqp_bytes_t b, amqp_method_number_t id);
/* A queue name, or the channel's last declared queue when empty (404 when
 * there is none, as RabbitMQ). */
bool chan_queue_name(struct chan *ch, char out[256], amqp_bytes_t b, amqp_method_number_t id);

#endif
