/* chan.c - one channel: its life, and the dispatch of its frames to the
 * modules that serve them (see chan.h). */
#include "chan.h"

#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "consume.h"
#include "declare.h"
#include "intake.h"
#include "log.h"
#include "publish.h"

struct chan *chan_new(struct conn *c, uint16_t id)
{
    struct chan *ch = xcalloc(1, sizeof *ch);
    ch->conn = c;
    ch->id = id;
    ch->state = CHAN_OPEN;
    return ch;
}

void chan_free(struct chan *ch)
{
    struct conn *c = ch->conn;
    publish_drop_parked(ch);
    intake_drop(ch);
    publish_discard(ch);
    declare_cancel_wait(ch);
    consume_chan_closed(ch);
    if (ch->over_limit)
        c->n_over_limit--;
    server_forget_owner(c->srv, &ch->owner);
    if (ch->confirm)
        confirm_detach(ch->confirm);
    buf_free(&ch->raw_props);
    buf_free(&ch->parked_key);
    conn_forget_chan(c, ch->id);
    free(ch);
}

void chan_send(struct chan *ch, amqp_method_number_t id, void *m)
{
    if (frame_put_method(conn_out(ch->conn), ch->id, id, m))
        conn_close(ch->conn, AMQP_INTERNAL_ERROR, "INTERNAL_ERROR - cannot encode reply", id);
}

void chan_close(struct chan *ch, uint16_t code, const char *text, amqp_method_number_t failing)
{
    log_warn("%s: channel %u: %s", ch->conn->name, ch->id, text);
    amqp_channel_close_t m = {
        .reply_code = code,
        .reply_text = frame_reply_text(text),
        .class_id = (uint16_t)(failing >> 16),
        .method_id = (uint16_t)failing,
    };
    publish_discard(ch);
    declare_cancel_wait(ch);
    consume_chan_closed(ch);
    ch->state = CHAN_CLOSING;
    chan_send(ch, AMQP_CHANNEL_CLOSE_METHOD, &m);
}

/* Copy a short string into a C string; refuses embedded NULs. */
bool chan_copy_name(struct chan *ch, char out[256], amqp_bytes_t b, amqp_method_number_t id)
{
    if (b.len > 255 || memchr(b.bytes, '\0', b.len)) {
        chan_close(ch, AMQP_PRECONDITION_FAILED, "PRECONDITION_FAILED - name contains a NUL byte",
                   id);
        return false;
    }
    memcpy(out, b.bytes, b.len);
    out[b.len] = '\0';
    return true;
}

/* A queue name, or the channel's last declared queue when empty. */
bool chan_queue_name(struct chan *ch, char out[256], amqp_bytes_t b, amqp_method_number_t id)
{
    if (!chan_copy_name(ch, out, b, id))
        return false;
    if (out[0])
        return true;
    if (!ch->last_queue[0]) {
        chan_close(ch, AMQP_NOT_FOUND, "NOT_FOUND - no previously declared queue", id);
        return false;
    }
    memcpy(out, ch->last_queue, sizeof ch->last_queue);
    return true;
}

/* ---- dispatch ---- */

/* Methods of the RabbitMQ side that the switch gates (config.h, rabbit). */
static bool consuming_method(amqp_method_number_t id)
{
    switch (id) {
    case AMQP_BASIC_CONSUME_METHOD:
    case AMQP_BASIC_CANCEL_METHOD:
    case AMQP_BASIC_GET_METHOD:
    case AMQP_BASIC_ACK_METHOD:
    case AMQP_BASIC_NACK_METHOD:
    case AMQP_BASIC_REJECT_METHOD:
    case AMQP_BASIC_RECOVER_METHOD:
    case AMQP_BASIC_RECOVER_ASYNC_METHOD:
        return true;
    default:
        return false;
    }
}

static void not_implemented(struct chan *ch, amqp_method_number_t id)
{
    char name[64], text[200];
    frame_method_name(id, name, sizeof name);
    if (consuming_method(id) && !ch->conn->srv->cfg->rabbit_enabled)
        snprintf(text, sizeof text,
                 "NOT_IMPLEMENTED - method %s needs task queues: run hopper with "
                 "--enable-rabbit or set rabbit.enabled: true",
                 name);
    else
        snprintf(text, sizeof text,
                 "NOT_IMPLEMENTED - method %s is not supported by hopper (publishing only)", name);
    conn_close(ch->conn, AMQP_NOT_IMPLEMENTED, text, id);
}

/* The consuming methods, with task queues on. Returns false for others. */
static bool consuming(struct chan *ch, amqp_method_number_t id, void *m)
{
    switch (id) {
    case AMQP_BASIC_CONSUME_METHOD:
        consume_basic_consume(ch, m);
        return true;
    case AMQP_BASIC_CANCEL_METHOD:
        consume_basic_cancel(ch, m);
        return true;
    case AMQP_BASIC_GET_METHOD:
        consume_basic_get(ch, m);
        return true;
    case AMQP_BASIC_ACK_METHOD:
        consume_basic_ack(ch, m);
        return true;
    case AMQP_BASIC_NACK_METHOD:
        consume_basic_nack(ch, m);
        return true;
    case AMQP_BASIC_REJECT_METHOD:
        consume_basic_reject(ch, m);
        return true;
    case AMQP_BASIC_RECOVER_METHOD:
        consume_basic_recover(ch, ((amqp_basic_recover_t *)m)->requeue, id);
        return true;
    case AMQP_BASIC_RECOVER_ASYNC_METHOD:
        consume_basic_recover(ch, ((amqp_basic_recover_async_t *)m)->requeue, id);
        return true;
    default:
        return false;
    }
}

static void handle_method(struct chan *ch, amqp_method_number_t id, void *m)
{
    switch (id) {
    case AMQP_CHANNEL_CLOSE_METHOD:
        chan_send(ch, AMQP_CHANNEL_CLOSE_OK_METHOD, NULL);
        chan_free(ch);
        return;
    case AMQP_CHANNEL_CLOSE_OK_METHOD:
        return; /* we sent no close: ignore */
    case AMQP_CHANNEL_FLOW_METHOD: {
        /* As RabbitMQ 3.x: a client may not pause its deliveries this way
         * (prefetch does that); clients test for the 540. */
        if (!((amqp_channel_flow_t *)m)->active) {
            conn_close(ch->conn, AMQP_NOT_IMPLEMENTED, "NOT_IMPLEMENTED - active=false", id);
            return;
        }
        amqp_channel_flow_ok_t ok = {true};
        chan_send(ch, AMQP_CHANNEL_FLOW_OK_METHOD, &ok);
        return;
    }
    case AMQP_CHANNEL_FLOW_OK_METHOD:
        return;
    case AMQP_EXCHANGE_DECLARE_METHOD:
        declare_exchange(ch, m);
        return;
    case AMQP_EXCHANGE_DELETE_METHOD:
        declare_exchange_delete(ch, m);
        return;
    case AMQP_QUEUE_DECLARE_METHOD:
        declare_queue(ch, m);
        return;
    case AMQP_QUEUE_BIND_METHOD: {
        amqp_queue_bind_t *b = m;
        declare_bind(ch, id, b->queue, b->exchange, b->routing_key, &b->arguments, b->nowait);
        return;
    }
    case AMQP_QUEUE_UNBIND_METHOD: {
        amqp_queue_unbind_t *u = m;
        declare_bind(ch, id, u->queue, u->exchange, u->routing_key, &u->arguments, false);
        return;
    }
    case AMQP_QUEUE_PURGE_METHOD:
        declare_purge(ch, m);
        return;
    case AMQP_QUEUE_DELETE_METHOD:
        declare_queue_delete(ch, m);
        return;
    case AMQP_BASIC_QOS_METHOD:
        if (ch->conn->srv->feeds) {
            consume_basic_qos(ch, m);
            return;
        }
        /* Accepted for clients that set it before publishing; it limits
         * deliveries, and there are none without task queues. */
        chan_send(ch, AMQP_BASIC_QOS_OK_METHOD, NULL);
        return;
    case AMQP_BASIC_PUBLISH_METHOD:
        publish_begin(ch, m);
        return;
    case AMQP_CONFIRM_SELECT_METHOD:
        publish_confirm_select(ch, m);
        return;
    default:
        break;
    }
    if (ch->conn->srv->feeds && consuming(ch, id, m))
        return;
    if ((id >> 16) == AMQP_CONNECTION_CLASS) {
        conn_close(ch->conn, AMQP_COMMAND_INVALID,
                   "COMMAND_INVALID - connection method on a non-zero channel", id);
        return;
    }
    not_implemented(ch, id);
}

void chan_handle_frame(struct chan *ch, const struct frame *f)
{
    struct conn *c = ch->conn;
    if (ch->state == CHAN_CLOSING) {
        /* Everything but close and close-ok is dropped after our close. */
        amqp_method_number_t id;
        void *m;
        if (f->type != FRAME_METHOD || conn_decode_method(c, f, &id, &m))
            return;
        /* Crossing closes: answer the client's close, but stay closing
         * until the close-ok for ours, which the client still sends (as
         * RabbitMQ's reader does). Freeing here made that close-ok look
         * like a frame on an unopened channel: connection error 504. */
        if (id == AMQP_CHANNEL_CLOSE_METHOD)
            chan_send(ch, AMQP_CHANNEL_CLOSE_OK_METHOD, NULL);
        else if (id == AMQP_CHANNEL_CLOSE_OK_METHOD)
            chan_free(ch);
        return;
    }
    switch (f->type) {
    case FRAME_METHOD: {
        if (ch->content != CONTENT_NONE) {
            conn_close(c, AMQP_UNEXPECTED_FRAME,
                       "UNEXPECTED_FRAME - expected content frame for class 60, got a method", 0);
            return;
        }
        amqp_method_number_t id;
        void *m;
        if (conn_decode_method(c, f, &id, &m) == 0)
            handle_method(ch, id, m);
        return;
    }
    case FRAME_HEADER:
        publish_header(ch, f);
        return;
    case FRAME_BODY:
        publish_body(ch, f);
        return;
    default:
        return;
    }
}
