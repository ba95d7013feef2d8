/* replyto.c - direct reply-to (see replyto.h). Codes and texts are
 * RabbitMQ 3.10's, checked against Debian's rabbitmq-server 3.10.8. */
#include "replyto.h"

#include <stdio.h>
#include <string.h>

#include "chan.h"
#include "conn.h"
#include "feed.h"

/* "amq.rabbitmq.reply-to." */
#define PREFIX_LEN (sizeof REPLYTO_QUEUE)

bool replyto_is_pseudo(amqp_bytes_t queue)
{
    return queue.len == PREFIX_LEN - 1 && !memcmp(queue.bytes, REPLYTO_QUEUE, queue.len);
}

bool replyto_is_reply(size_t exchange_len, const void *routing_key, size_t routing_key_len)
{
    return exchange_len == 0 && routing_key_len >= PREFIX_LEN &&
           !memcmp(routing_key, REPLYTO_QUEUE ".", PREFIX_LEN);
}

struct feed *replyto_consume(struct chan *ch, bool no_ack)
{
    struct conn *c = ch->conn;
    if (!no_ack) {
        chan_close(ch, AMQP_PRECONDITION_FAILED,
                   "PRECONDITION_FAILED - reply consumer cannot acknowledge",
                   AMQP_BASIC_CONSUME_METHOD);
        return NULL;
    }
    if (ch->reply_queue[0]) {
        chan_close(ch, AMQP_PRECONDITION_FAILED, "PRECONDITION_FAILED - reply consumer already set",
                   AMQP_BASIC_CONSUME_METHOD);
        return NULL;
    }
    /* The connection and channel for the logs and the reader; the random
     * part (132 bits) so that nobody replies into a name they guessed. */
    char prefix[64];
    snprintf(prefix, sizeof prefix, REPLYTO_QUEUE ".%llu-%u.", (unsigned long long)c->id, ch->id);
    random_name(ch->reply_queue, prefix);
    return feeds_get_hidden(c->srv->feeds, c->vhost, ch->reply_queue, true);
}

bool replyto_rewrite(struct chan *ch, amqp_basic_properties_t **props)
{
    amqp_basic_properties_t *p = *props;
    if (!(p->_flags & AMQP_BASIC_REPLY_TO_FLAG) || !replyto_is_pseudo(p->reply_to))
        return true;
    if (!ch->reply_queue[0]) {
        chan_close(ch, AMQP_PRECONDITION_FAILED,
                   "PRECONDITION_FAILED - fast reply consumer does not exist",
                   AMQP_BASIC_PUBLISH_METHOD);
        return false;
    }
    struct conn *c = ch->conn;
    p->reply_to = amqp_cstring_bytes(ch->reply_queue);
    /* The encoding grows by the token's length, nothing else changes. */
    amqp_bytes_t out;
    amqp_pool_alloc_bytes(&c->pool, ch->raw_props.len + strlen(ch->reply_queue), &out);
    int n = out.bytes ? amqp_encode_properties(AMQP_BASIC_CLASS, p, out) : -1;
    if (n >= 0) {
        ch->raw_props.len = 0;
        buf_append(&ch->raw_props, out.bytes, (size_t)n);
        /* The decoded strings pointed into the old bytes: decode the new. */
        amqp_bytes_t enc = {ch->raw_props.len, ch->raw_props.data};
        n = amqp_decode_properties(AMQP_BASIC_CLASS, &c->pool, enc, (void **)props);
    }
    if (n < 0) {
        conn_close(c, AMQP_INTERNAL_ERROR, "INTERNAL_ERROR - cannot encode properties",
                   AMQP_BASIC_PUBLISH_METHOD);
        return false;
    }
    return true;
}

bool replyto_declare(struct chan *ch, const char *queue, bool nowait)
{
    struct conn *c = ch->conn;
    /* RabbitMQ takes every name that starts so: the pseudo-queue, a live
     * reply queue, and 404 for the rest. */
    if (!c->srv->feeds || strncmp(queue, REPLYTO_QUEUE, PREFIX_LEN - 1))
        return false;
    bool live = !queue[PREFIX_LEN - 1] || (queue[PREFIX_LEN - 1] == '.' &&
                                           feeds_get_hidden(c->srv->feeds, c->vhost, queue, false));
    if (!live) {
        char text[600];
        snprintf(text, sizeof text, "NOT_FOUND - no queue '%s' in vhost '%s'", queue, c->vhost);
        chan_close(ch, AMQP_NOT_FOUND, text, AMQP_QUEUE_DECLARE_METHOD);
        return true;
    }
    if (!nowait) {
        amqp_queue_declare_ok_t ok = {amqp_cstring_bytes(queue), 0, 1};
        chan_send(ch, AMQP_QUEUE_DECLARE_OK_METHOD, &ok);
    }
    return true;
}
