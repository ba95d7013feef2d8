/* bridge.c - upstream RabbitMQ connections whose deliveries become Kafka
 * records (see bridge.h).
 *
 * Each upstream has one state, changed only by up_set_state:
 *
 *   WAIT --timer--> CONNECTING --connected--> AWAIT_START --start--> AWAIT_TUNE
 *   --tune--> AWAIT_OPEN_OK --open-ok--> AWAIT_CHANNEL --channel.open-ok-->
 *   [tap: AWAIT_DECLARE --declare-ok--> AWAIT_BIND (once per binding)]
 *   --> AWAIT_QOS --qos-ok--> AWAIT_CONSUME --consume-ok--> CONSUMING
 *   CONSUMING --shutdown: basic.cancel--> CANCELLING
 *   any connected --we send connection.close--> CLOSING --close-ok/timeout--> WAIT
 *   any --socket error, EOF, upstream connection.close, bad frame,
 *         handshake or heartbeat timeout--> WAIT (next node, after backoff)
 *   WAIT, CLOSING during shutdown --> STOPPED
 *
 * intake.h takes a channel: while consuming, the upstream owns a struct
 * conn (never in the server's list, never given to conn.c's frame code)
 * and a struct chan on it, so the bridged records follow the publish path
 * unchanged: held publishes, parking on a full producer, the sink's
 * back-pressure stopping the socket (conn_update_reading on our
 * bufferevent). */
#include "bridge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "chan.h"
#include "conn.h"
#include "frame.h"
#include "intake.h"
#include "log.h"
#include "publish.h"
#include "record.h"
#include "router.h"
#include "server.h"
#include "tagmap.h"
#include "version.h"
#include "wire.h"

#define TICK_MS 100           /* reconnects, deadlines and heartbeats are checked this often */
#define CLOSE_TIMEOUT_MS 3000 /* our connection.close waits this long for close-ok */
#define STABLE_MS 10000       /* consuming this long resets the backoff */
#define CHANNEL 1             /* the one channel we open */

enum up_state {
    UP_WAIT,          /* not connected; the timer makes the next attempt */
    UP_CONNECTING,    /* TCP (and TLS) connect under way */
    UP_AWAIT_START,   /* protocol header sent */
    UP_AWAIT_TUNE,    /* start-ok sent */
    UP_AWAIT_OPEN_OK, /* tune-ok and connection.open sent */
    UP_AWAIT_CHANNEL, /* channel.open sent */
    UP_AWAIT_DECLARE, /* tap: queue.declare sent */
    UP_AWAIT_BIND,    /* tap: queue.bind of binding `bound` sent */
    UP_AWAIT_QOS,     /* basic.qos sent */
    UP_AWAIT_CONSUME, /* basic.consume sent */
    UP_CONSUMING,     /* deliveries flow */
    UP_CANCELLING,    /* shutdown: basic.cancel sent; outcomes still go up */
    UP_CLOSING,       /* we sent connection.close; waiting for close-ok */
    UP_STOPPED,       /* shutdown: no more attempts */
};

static const char *const state_names[] = {
    "WAIT",          "CONNECTING",    "AWAIT_START", "AWAIT_TUNE", "AWAIT_OPEN_OK",
    "AWAIT_CHANNEL", "AWAIT_DECLARE", "AWAIT_BIND",  "AWAIT_QOS",  "AWAIT_CONSUME",
    "CONSUMING",     "CANCELLING",    "CLOSING",     "STOPPED",
};
_Static_assert(ARRAY_LEN(state_names) == UP_STOPPED + 1, "a name per state");

enum delivery_step { DELIVERY_NONE, DELIVERY_HEADER, DELIVERY_BODY };

struct upstream {
    struct bridges *b;
    const struct upstream_cfg *cfg;
    enum up_state state;
    struct conn conn; /* intake's view while consuming; its name prefixes our log lines */
    struct chan *ch;  /* channel 1 while consuming, else NULL */
    struct bufferevent *bev;
    struct event *timer;
    size_t node;      /* the node of the current or next attempt */
    unsigned attempt; /* failed attempts in a row */
    uint64_t next_ms; /* WAIT: when to try; handshakes and CLOSING: deadline */
    uint64_t consuming_since_ms;
    char *url; /* amqp_parse_url's copy: info points into it */
    struct amqp_connection_info info;
    uint16_t heartbeat;
    uint32_t frame_max;
    size_t bound; /* tap: bindings done */
    char queue[256];
    char consumer_tag[256];
    struct tagmap tags;
    amqp_pool_t pool;

    /* the delivery being assembled */
    enum delivery_step step;
    uint64_t dtag;
    bool redelivered, skip;
    char exchange[256], routing_key[256];
    uint8_t exchange_len, routing_key_len;
    struct buf props;
    uint8_t *body;
    uint64_t body_size, body_have;

    uint64_t delivered, rejected;
};

struct bridges {
    struct server *srv;
    struct evdns_base *dns;
    SSL_CTX **ssl; /* per upstream, NULL unless one of its nodes is amqps:// */
    struct upstream *ups;
    size_t n;
    bool stopping;
};

uint32_t bridge_backoff_ms(uint32_t min, uint32_t max, unsigned attempt, uint32_t rand)
{
    uint64_t d = min;
    for (unsigned i = 0; i < attempt && d < max; i++)
        d *= 2;
    if (d > max)
        d = max;
    /* Between d/2 and d: upstreams that failed together do not come back
     * together. */
    uint64_t half = d / 2;
    d = half + (half ? rand % (half + 1) : 0);
    return (uint32_t)(d < min ? min : d);
}

static void up_set_state(struct upstream *u, enum up_state s)
{
    log_debug("%s: %s -> %s", u->conn.name, state_names[u->state], state_names[s]);
    u->state = s;
}

static struct evbuffer *up_out(struct upstream *u)
{
    u->conn.last_write_ms = monotonic_ms();
    return bufferevent_get_output(u->bev);
}

static void send_method(struct upstream *u, uint16_t channel, amqp_method_number_t id, void *m)
{
    if (frame_put_method(up_out(u), channel, id, m))
        log_error("%s: cannot encode a method 0x%08x", u->conn.name, id);
}

static void reset_delivery(struct upstream *u)
{
    FREE_AND_NULL(u->body);
    u->step = DELIVERY_NONE;
    u->body_size = u->body_have = 0;
    u->skip = false;
}

/* Forget the connection: its channel (outcomes still in flight are
 * dropped: RabbitMQ requeues what we did not ack), its socket. */
static void teardown(struct upstream *u)
{
    if (u->ch) {
        chan_free(u->ch);
        u->ch = NULL;
        tagmap_free(&u->tags);
    }
    reset_delivery(u);
    if (u->bev) {
        bufferevent_free(u->bev);
        u->bev = NULL;
    }
    u->conn.bev = NULL;
    u->conn.parked = NULL;
    u->conn.n_over_limit = 0;
    u->conn.reading = false;
    recycle_amqp_pool(&u->pool);
}

/* Lost the connection, or gave up on it: try again after a backoff, at
 * the next node. */
static void drop(struct upstream *u, const char *why)
{
    uint64_t now = monotonic_ms();
    if (u->state == UP_CONSUMING && now - u->consuming_since_ms >= STABLE_MS)
        u->attempt = 0;
    teardown(u);
    if (u->b->stopping) {
        up_set_state(u, UP_STOPPED);
        return;
    }
    uint32_t delay = bridge_backoff_ms(u->cfg->reconnect_min_ms, u->cfg->reconnect_max_ms,
                                       u->attempt, (uint32_t)random());
    u->attempt++;
    log_warn("%s: %s; next attempt in %u ms", u->conn.name, why, delay);
    u->node = (u->node + 1) % u->cfg->n_nodes;
    u->next_ms = now + delay;
    up_set_state(u, UP_WAIT);
}

/* Close with connection.close and wait for close-ok. */
static void close_conn(struct upstream *u, uint16_t code, const char *text,
                       amqp_method_number_t failing)
{
    if (u->state >= UP_CLOSING || !u->bev)
        return;
    if (code != AMQP_REPLY_SUCCESS)
        log_warn("%s: closing the connection: %s", u->conn.name, text);
    if (u->ch) {
        chan_free(u->ch);
        u->ch = NULL;
        tagmap_free(&u->tags);
        u->conn.bev = NULL;
    }
    reset_delivery(u); /* a delivery cut short: the broker requeues it */
    amqp_connection_close_t m = {
        .reply_code = code,
        .reply_text = frame_reply_text(text),
        .class_id = (uint16_t)(failing >> 16),
        .method_id = (uint16_t)failing,
    };
    send_method(u, 0, AMQP_CONNECTION_CLOSE_METHOD, &m);
    bufferevent_enable(u->bev, EV_READ);
    u->next_ms = monotonic_ms() + CLOSE_TIMEOUT_MS;
    up_set_state(u, UP_CLOSING);
}

static void set_node_name(struct upstream *u)
{
    snprintf(u->conn.name, sizeof u->conn.name, "upstream %.40s %.24s:%d", u->cfg->name,
             u->info.host, u->info.port);
}

/* ---- the connection ---- */

static void on_read(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

static void connect_node(struct upstream *u)
{
    struct bridges *b = u->b;
    free(u->url);
    u->url = xstrdup(u->cfg->nodes[u->node]);
    if (amqp_parse_url(u->url, &u->info) != AMQP_STATUS_OK) {
        /* config.c checked it */
        drop(u, "cannot parse the node's URI");
        return;
    }
    set_node_name(u);
    if (u->info.ssl) {
        SSL *ssl = SSL_new(b->ssl[u - b->ups]);
        if (!ssl) {
            drop(u, "cannot make a TLS session");
            return;
        }
        /* The name (or address) in the URI is what the certificate must
         * name. */
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), u->info.host) != 1) {
            SSL_set_tlsext_host_name(ssl, u->info.host);
            if (u->cfg->tls_verify)
                SSL_set1_host(ssl, u->info.host);
        }
        u->bev = bufferevent_openssl_socket_new(b->srv->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE);
    } else {
        u->bev = bufferevent_socket_new(b->srv->base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!u->bev) {
        drop(u, "cannot make a socket buffer");
        return;
    }
    bufferevent_setcb(u->bev, on_read, NULL, on_event, u);
    u->next_ms = monotonic_ms() + b->srv->cfg->handshake_timeout_ms;
    up_set_state(u, UP_CONNECTING);
    log_info("%s: connecting", u->conn.name);
    if (bufferevent_socket_connect_hostname(u->bev, b->dns, AF_UNSPEC, u->info.host,
                                            u->info.port)) {
        drop(u, "cannot start connecting");
        return;
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct upstream *u = arg;
    if (what & BEV_EVENT_CONNECTED) {
        evbuffer_add(up_out(u), FRAME_PROTOCOL_HEADER, FRAME_PROTOCOL_HEADER_LEN);
        bufferevent_enable(bev, EV_READ | EV_WRITE);
        u->conn.last_read_ms = monotonic_ms();
        up_set_state(u, UP_AWAIT_START);
        return;
    }
    char why[300];
    if (u->state == UP_CLOSING && (what & BEV_EVENT_EOF)) {
        snprintf(why, sizeof why, "connection closed");
    } else if (what & BEV_EVENT_EOF) {
        snprintf(why, sizeof why, "the broker hung up (in %s)", state_names[u->state]);
    } else {
        int dns = bufferevent_socket_get_dns_error(bev);
        unsigned long ssl_err = bufferevent_get_openssl_error(bev);
        if (dns)
            snprintf(why, sizeof why, "cannot resolve %s: %s", u->info.host,
                     evutil_gai_strerror(dns));
        else if (ssl_err)
            snprintf(why, sizeof why, "TLS: %s", ERR_reason_error_string(ssl_err));
        else
            snprintf(why, sizeof why, "socket error: %s",
                     evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    }
    drop(u, why);
}

/* ---- the handshake ---- */

static amqp_field_value_t field_str(const char *s)
{
    amqp_field_value_t v = {.kind = AMQP_FIELD_KIND_UTF8};
    v.value.bytes = amqp_cstring_bytes(s);
    return v;
}

static amqp_field_value_t field_true(void)
{
    amqp_field_value_t v = {.kind = AMQP_FIELD_KIND_BOOLEAN};
    v.value.boolean = 1;
    return v;
}

static bool has_word(amqp_bytes_t list, const char *word)
{
    size_t wl = strlen(word);
    const char *s = list.bytes;
    for (size_t i = 0; i + wl <= list.len; i++)
        if ((i == 0 || s[i - 1] == ' ') && !memcmp(s + i, word, wl) &&
            (i + wl == list.len || s[i + wl] == ' '))
            return true;
    return false;
}

static void on_start(struct upstream *u, amqp_connection_start_t *m)
{
    if (m->version_major != 0 || m->version_minor != 9) {
        drop(u, "the broker does not speak AMQP 0-9-1");
        return;
    }
    if (!has_word(m->mechanisms, "PLAIN")) {
        drop(u, "the broker does not offer PLAIN authentication");
        return;
    }
    char name[300];
    snprintf(name, sizeof name, "hopper bridge %s", u->cfg->name);
    amqp_table_entry_t caps[] = {
        {amqp_cstring_bytes("consumer_cancel_notify"), field_true()},
        {amqp_cstring_bytes("basic.nack"), field_true()},
        {amqp_cstring_bytes("authentication_failure_close"), field_true()},
        {amqp_cstring_bytes("connection.blocked"), field_true()},
    };
    amqp_field_value_t captable = {.kind = AMQP_FIELD_KIND_TABLE};
    captable.value.table = (amqp_table_t){(int)ARRAY_LEN(caps), caps};
    amqp_table_entry_t props[] = {
        {amqp_cstring_bytes("product"), field_str("hopper")},
        {amqp_cstring_bytes("version"), field_str(HOPPER_VERSION)},
        {amqp_cstring_bytes("platform"), field_str("C")},
        {amqp_cstring_bytes("connection_name"), field_str(name)},
        {amqp_cstring_bytes("capabilities"), captable},
    };
    /* PLAIN: "\0user\0password" */
    char resp[520];
    size_t ul = strlen(u->info.user), pl = strlen(u->info.password);
    if (ul > 255 || pl > 255) {
        drop(u, "user or password longer than 255 bytes");
        return;
    }
    resp[0] = '\0';
    memcpy(resp + 1, u->info.user, ul);
    resp[1 + ul] = '\0';
    memcpy(resp + 2 + ul, u->info.password, pl);
    amqp_connection_start_ok_t ok = {
        .client_properties = {(int)ARRAY_LEN(props), props},
        .mechanism = amqp_cstring_bytes("PLAIN"),
        .response = {2 + ul + pl, resp},
        .locale = amqp_cstring_bytes("en_US"),
    };
    send_method(u, 0, AMQP_CONNECTION_START_OK_METHOD, &ok);
    up_set_state(u, UP_AWAIT_TUNE);
}

static void on_tune(struct upstream *u, amqp_connection_tune_t *m)
{
    uint32_t mine = u->b->srv->cfg->frame_max;
    u->frame_max = m->frame_max && m->frame_max < mine ? m->frame_max : mine;
    if (u->frame_max < FRAME_MIN_MAX)
        u->frame_max = FRAME_MIN_MAX;
    /* As RabbitMQ's clients: the lower of the two, 0 meaning "no opinion". */
    uint16_t hb = u->cfg->heartbeat;
    u->heartbeat = !m->heartbeat ? hb
                   : !hb         ? m->heartbeat
                                 : (m->heartbeat < hb ? m->heartbeat : hb);
    amqp_connection_tune_ok_t ok = {
        .channel_max = m->channel_max ? m->channel_max : 2047,
        .frame_max = u->frame_max,
        .heartbeat = u->heartbeat,
    };
    send_method(u, 0, AMQP_CONNECTION_TUNE_OK_METHOD, &ok);
    amqp_connection_open_t open = {
        .virtual_host = amqp_cstring_bytes(u->info.vhost),
        .capabilities = amqp_empty_bytes,
        .insist = 0,
    };
    send_method(u, 0, AMQP_CONNECTION_OPEN_METHOD, &open);
    up_set_state(u, UP_AWAIT_OPEN_OK);
}

static void send_qos(struct upstream *u)
{
    /* Before basic.consume, so it applies to our consumer. */
    amqp_basic_qos_t m = {.prefetch_size = 0, .prefetch_count = u->cfg->prefetch, .global = 0};
    send_method(u, CHANNEL, AMQP_BASIC_QOS_METHOD, &m);
    up_set_state(u, UP_AWAIT_QOS);
}

static void send_bind(struct upstream *u)
{
    const struct upstream_tap *t = &u->cfg->taps[u->bound];
    amqp_queue_bind_t m = {
        .queue = amqp_cstring_bytes(u->queue),
        .exchange = amqp_cstring_bytes(t->exchange),
        .routing_key = amqp_cstring_bytes(t->routing_key),
        .nowait = 0,
        .arguments = amqp_empty_table,
    };
    send_method(u, CHANNEL, AMQP_QUEUE_BIND_METHOD, &m);
    up_set_state(u, UP_AWAIT_BIND);
}

static void after_channel_open(struct upstream *u)
{
    if (u->cfg->queue) {
        snprintf(u->queue, sizeof u->queue, "%s", u->cfg->queue);
        send_qos(u);
        return;
    }
    config_tap_queue(u->cfg, u->queue, sizeof u->queue);
    amqp_queue_declare_t m = {
        .queue = amqp_cstring_bytes(u->queue),
        .passive = 0,
        .durable = 1,
        .exclusive = 0,
        .auto_delete = 0,
        .nowait = 0,
        .arguments = amqp_empty_table,
    };
    send_method(u, CHANNEL, AMQP_QUEUE_DECLARE_METHOD, &m);
    up_set_state(u, UP_AWAIT_DECLARE);
}

static void flush_owned(struct confirm_owner *o);
static void on_refused(struct chan *ch, uint64_t tag);

static void start_consuming(struct upstream *u)
{
    struct chan *ch = chan_new(&u->conn, CHANNEL);
    ch->confirm = confirm_new();
    ch->owner.flush = flush_owned;
    ch->refused = on_refused;
    confirm_set_owner(ch->confirm, &ch->owner);
    u->ch = ch;
    tagmap_init(&u->tags, u->cfg->prefetch);
    u->conn.bev = u->bev;
    u->conn.state = CONN_OPEN;
    u->conn.published = true; /* the sink's back-pressure holds it, as a publisher */
    u->conn.reading = true;
    u->consuming_since_ms = monotonic_ms();
    up_set_state(u, UP_CONSUMING);
    log_info("%s: consuming queue '%s' (prefetch %u, heartbeat %u s)", u->conn.name, u->queue,
             u->cfg->prefetch, u->heartbeat);
    conn_update_reading(&u->conn);
}

/* ---- deliveries ---- */

static void reject(struct upstream *u, uint64_t dtag, bool requeue)
{
    amqp_basic_nack_t m = {dtag, 0, requeue};
    send_method(u, CHANNEL, AMQP_BASIC_NACK_METHOD, &m);
    u->rejected++;
}

/* In a tagmap value, beside the delivery tag: intake refused the record
 * (chan.h's refused), so its nack does not requeue. RabbitMQ's delivery
 * tags count deliveries on one channel: they never reach this bit. */
#define REFUSED_BIT (UINT64_C(1) << 63)

static void on_refused(struct chan *ch, uint64_t tag)
{
    struct upstream *u = CONTAINER_OF(ch->conn, struct upstream, conn);
    uint64_t dtag;
    if (tagmap_take(&u->tags, tag, &dtag) && tagmap_put(&u->tags, tag, dtag | REFUSED_BIT))
        log_error("%s: cannot mark delivery %llu refused", u->conn.name, (unsigned long long)tag);
}

/* A nack of one delivery: Kafka did not persist it, so RabbitMQ delivers
 * it again; or intake refused it, so RabbitMQ dead-letters (or drops) it. */
static void nack_one(void *arg, uint64_t tag, uint64_t value)
{
    struct upstream *u = arg;
    reject(u, value & ~REFUSED_BIT, !(value & REFUSED_BIT));
}

static void emit(void *arg, uint64_t tag, bool multiple, bool ack)
{
    struct upstream *u = arg;
    if (!ack) {
        /* Nacks are rare and a run of them may mix requeue and refusal:
         * one frame each. */
        uint64_t v;
        if (!multiple && tagmap_take(&u->tags, tag, &v))
            nack_one(u, tag, v);
        else if (multiple)
            tagmap_take_upto(&u->tags, tag, nack_one, u);
        return;
    }
    uint64_t dtag;
    if (!tagmap_take(&u->tags, tag, &dtag)) {
        log_error("%s: no delivery for outcome %llu", u->conn.name, (unsigned long long)tag);
        return;
    }
    if (multiple)
        tagmap_take_upto(&u->tags, tag, NULL, NULL);
    amqp_basic_ack_t m = {dtag & ~REFUSED_BIT, multiple};
    send_method(u, CHANNEL, AMQP_BASIC_ACK_METHOD, &m);
}

static void flush_owned(struct confirm_owner *o)
{
    struct chan *ch = CONTAINER_OF(o, struct chan, owner);
    struct upstream *u = CONTAINER_OF(ch->conn, struct upstream, conn);
    if (u->bev && (u->state == UP_CONSUMING || u->state == UP_CANCELLING))
        confirm_flush(ch->confirm, emit, u);
    publish_update_limits(ch);
}

/* The whole delivery is here: route it as a publish on vhost_route and hand
 * it to intake, or reject it. */
static void deliver(struct upstream *u)
{
    struct server *srv = u->b->srv;
    uint64_t dtag = u->dtag;
    u->delivered++;
    if (u->skip) {
        log_warn("%s: delivery of %llu bytes is larger than limits.max_message_size: rejected "
                 "(requeue=false)",
                 u->conn.name, (unsigned long long)u->body_size);
        reject(u, dtag, false);
        reset_delivery(u);
        return;
    }
    if (u->state != UP_CONSUMING) {
        reject(u, dtag, true);
        reset_delivery(u);
        return;
    }
    amqp_basic_properties_t *props = NULL;
    amqp_bytes_t enc = {u->props.len, u->props.data};
    if (amqp_decode_properties(AMQP_BASIC_CLASS, &u->pool, enc, (void **)&props) < 0) {
        reset_delivery(u);
        close_conn(u, AMQP_SYNTAX_ERROR, "SYNTAX_ERROR - cannot decode content header properties",
                   AMQP_BASIC_DELIVER_METHOD);
        return;
    }
    struct route_target target;
    if (router_route(srv->router, u->cfg->vhost_route, u->exchange, u->exchange_len, u->routing_key,
                     u->routing_key_len, &srv->scratch, &target) == ROUTE_UNROUTABLE) {
        if (u->rejected < 10 || u->rejected % 1000 == 0)
            log_warn("%s: no route for exchange '%.*s' routing key '%.*s' in vhost '%s': rejected "
                     "(requeue=false; dead-lettered if the queue has a dead-letter exchange)",
                     u->conn.name, u->exchange_len, u->exchange, u->routing_key_len, u->routing_key,
                     u->cfg->vhost_route);
        srv->stats.unroutable_dropped++;
        reject(u, dtag, false);
        reset_delivery(u);
        return;
    }
    if (u->tags.n >= u->tags.max) {
        reset_delivery(u);
        close_conn(u, AMQP_PRECONDITION_FAILED,
                   "PRECONDITION_FAILED - more unacknowledged deliveries than the prefetch",
                   AMQP_BASIC_DELIVER_METHOD);
        return;
    }
    struct record_src src = {
        u->exchange, u->exchange_len, u->routing_key, u->routing_key_len,
        props,       u->props.data,   u->props.len,
    };
    struct intake_pub p = {
        .m = {.body = u->body, .body_len = u->body_size, .topic = target.topic},
        .contract = target.contract,
        .exchange = u->exchange,
        .exchange_len = u->exchange_len,
        .routing_key = u->routing_key,
        .routing_key_len = u->routing_key_len,
        .raw_props = u->props.data,
        .raw_props_len = u->props.len,
    };
    p.m.headers = record_headers(&src);
    if (u->redelivered)
        (void)rd_kafka_header_add(p.m.headers, "amqp.redelivered", -1, "true", 4);
    p.m.tracker = u->ch->confirm;
    p.m.tag = confirm_next(u->ch->confirm);
    if (tagmap_put(&u->tags, p.m.tag, dtag))
        log_error("%s: delivery map full", u->conn.name); /* checked above */
    record_key(&src, &target, &srv->key_scratch, &p.m.key, &p.m.key_len);
    srv->stats.published++;
    u->body = NULL; /* intake owns it */
    reset_delivery(u);
    intake_publish(u->ch, &p);
    server_update_blocked(srv);
    publish_update_limits(u->ch);
}

static void on_deliver(struct upstream *u, amqp_basic_deliver_t *m)
{
    if (u->step != DELIVERY_NONE || m->exchange.len > 255 || m->routing_key.len > 255 ||
        m->delivery_tag == 0 || (m->delivery_tag & REFUSED_BIT)) {
        close_conn(u, AMQP_UNEXPECTED_FRAME, "UNEXPECTED_FRAME - basic.deliver out of place",
                   AMQP_BASIC_DELIVER_METHOD);
        return;
    }
    u->dtag = m->delivery_tag;
    u->redelivered = m->redelivered;
    memcpy(u->exchange, m->exchange.bytes, m->exchange.len);
    u->exchange_len = (uint8_t)m->exchange.len;
    memcpy(u->routing_key, m->routing_key.bytes, m->routing_key.len);
    u->routing_key_len = (uint8_t)m->routing_key.len;
    u->step = DELIVERY_HEADER;
}

static void on_header(struct upstream *u, const struct frame *f)
{
    const uint8_t *p = f->payload;
    if (u->step != DELIVERY_HEADER || f->channel != CHANNEL) {
        close_conn(u, AMQP_UNEXPECTED_FRAME, "UNEXPECTED_FRAME - content header without a delivery",
                   0);
        return;
    }
    if (f->size < 14 || (p[0] << 8 | p[1]) != AMQP_BASIC_CLASS ||
        wire_check_basic_properties(p + 12, f->size - 12, u->b->srv->cfg->max_table_depth)) {
        close_conn(u, AMQP_SYNTAX_ERROR,
                   "SYNTAX_ERROR - malformed content header, or headers nested too deep", 0);
        return;
    }
    uint64_t size = 0;
    for (int i = 4; i < 12; i++)
        size = size << 8 | p[i];
    u->props.len = 0;
    buf_append(&u->props, p + 12, f->size - 12);
    u->body_size = size;
    u->body_have = 0;
    u->skip = size > u->b->srv->cfg->max_message_size;
    if (!u->skip)
        u->body = xmalloc(size ? size : 1);
    u->step = DELIVERY_BODY;
    if (size == 0)
        deliver(u);
}

static void on_body(struct upstream *u, const struct frame *f)
{
    if (u->step != DELIVERY_BODY || f->channel != CHANNEL ||
        f->size > u->body_size - u->body_have) {
        close_conn(u, AMQP_UNEXPECTED_FRAME, "UNEXPECTED_FRAME - content body out of place", 0);
        return;
    }
    if (!u->skip)
        memcpy(u->body + u->body_have, f->payload, f->size);
    u->body_have += f->size;
    if (u->body_have == u->body_size)
        deliver(u);
}

/* ---- methods ---- */

static void on_channel_close(struct upstream *u, amqp_channel_close_t *m)
{
    log_warn("%s: the broker closed the channel: %u %.*s", u->conn.name, m->reply_code,
             (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    send_method(u, CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, NULL);
    close_conn(u, AMQP_REPLY_SUCCESS, "channel closed by the broker", 0);
}

/* Methods on channel 1. */
static void on_channel_method(struct upstream *u, amqp_method_number_t id, void *m)
{
    switch (id) {
    case AMQP_CHANNEL_CLOSE_METHOD:
        on_channel_close(u, m);
        return;
    case AMQP_CHANNEL_FLOW_METHOD: {
        amqp_channel_flow_ok_t ok = {((amqp_channel_flow_t *)m)->active};
        send_method(u, CHANNEL, AMQP_CHANNEL_FLOW_OK_METHOD, &ok);
        return;
    }
    case AMQP_CHANNEL_OPEN_OK_METHOD:
        if (u->state == UP_AWAIT_CHANNEL) {
            after_channel_open(u);
            return;
        }
        break;
    case AMQP_QUEUE_DECLARE_OK_METHOD:
        if (u->state == UP_AWAIT_DECLARE) {
            u->bound = 0;
            send_bind(u);
            return;
        }
        break;
    case AMQP_QUEUE_BIND_OK_METHOD:
        if (u->state == UP_AWAIT_BIND) {
            if (++u->bound < u->cfg->n_taps)
                send_bind(u);
            else
                send_qos(u);
            return;
        }
        break;
    case AMQP_BASIC_QOS_OK_METHOD:
        if (u->state == UP_AWAIT_QOS) {
            snprintf(u->consumer_tag, sizeof u->consumer_tag, "hopper.bridge.%s", u->cfg->name);
            amqp_basic_consume_t c = {
                .queue = amqp_cstring_bytes(u->queue),
                .consumer_tag = amqp_cstring_bytes(u->consumer_tag),
                .no_local = 0,
                .no_ack = 0,
                .exclusive = 0,
                .nowait = 0,
                .arguments = amqp_empty_table,
            };
            send_method(u, CHANNEL, AMQP_BASIC_CONSUME_METHOD, &c);
            up_set_state(u, UP_AWAIT_CONSUME);
            return;
        }
        break;
    case AMQP_BASIC_CONSUME_OK_METHOD:
        if (u->state == UP_AWAIT_CONSUME) {
            start_consuming(u);
            return;
        }
        break;
    case AMQP_BASIC_DELIVER_METHOD:
        if (u->state == UP_CONSUMING || u->state == UP_CANCELLING) {
            on_deliver(u, m);
            return;
        }
        break;
    case AMQP_BASIC_CANCEL_METHOD:
        /* consumer_cancel_notify: the queue was deleted, or the node holding
         * it went away. */
        if (u->state == UP_CONSUMING) {
            log_warn("%s: the broker cancelled our consumer (queue '%s' deleted?)", u->conn.name,
                     u->queue);
            close_conn(u, AMQP_REPLY_SUCCESS, "consumer cancelled by the broker", 0);
            return;
        }
        return;
    case AMQP_BASIC_CANCEL_OK_METHOD:
        if (u->state == UP_CANCELLING)
            return;
        break;
    default:
        break;
    }
    if (u->state == UP_CLOSING)
        return; /* after our close, only close-ok matters */
    char name[64], text[160];
    frame_method_name(id, name, sizeof name);
    snprintf(text, sizeof text, "UNEXPECTED_FRAME - %s in state %s", name, state_names[u->state]);
    close_conn(u, AMQP_UNEXPECTED_FRAME, text, id);
}

static void on_conn_method(struct upstream *u, amqp_method_number_t id, void *m)
{
    switch (id) {
    case AMQP_CONNECTION_START_METHOD:
        if (u->state == UP_AWAIT_START) {
            on_start(u, m);
            return;
        }
        break;
    case AMQP_CONNECTION_TUNE_METHOD:
        if (u->state == UP_AWAIT_TUNE) {
            on_tune(u, m);
            return;
        }
        break;
    case AMQP_CONNECTION_OPEN_OK_METHOD:
        if (u->state == UP_AWAIT_OPEN_OK) {
            amqp_channel_open_t o = {amqp_empty_bytes};
            send_method(u, CHANNEL, AMQP_CHANNEL_OPEN_METHOD, &o);
            up_set_state(u, UP_AWAIT_CHANNEL);
            return;
        }
        break;
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_t *c = m;
        char why[400];
        snprintf(why, sizeof why, "the broker closed the connection: %u %.*s", c->reply_code,
                 (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        send_method(u, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, NULL);
        /* Let close-ok go out before the socket closes (one non-blocking
         * write; under TLS the buffer is plaintext, so it is left). */
        if (u->bev && !u->info.ssl)
            (void)evbuffer_write(bufferevent_get_output(u->bev), bufferevent_getfd(u->bev));
        drop(u, why);
        return;
    }
    case AMQP_CONNECTION_CLOSE_OK_METHOD:
        if (u->state == UP_CLOSING) {
            drop(u, "connection closed");
            return;
        }
        break;
    case AMQP_CONNECTION_BLOCKED_METHOD:
        log_warn("%s: the broker blocked its publishers (resource alarm); hopper only consumes",
                 u->conn.name);
        return;
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        return;
    default:
        break;
    }
    if (u->state == UP_CLOSING)
        return;
    char name[64], text[160];
    frame_method_name(id, name, sizeof name);
    snprintf(text, sizeof text, "UNEXPECTED_FRAME - %s in state %s", name, state_names[u->state]);
    close_conn(u, AMQP_UNEXPECTED_FRAME, text, id);
}

static void on_method(struct upstream *u, const struct frame *f)
{
    if (f->size < 4) {
        drop(u, "method frame too short");
        return;
    }
    const uint8_t *p = f->payload;
    amqp_method_number_t id =
        (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (wire_check_method(id, p + 4, f->size - 4, u->b->srv->cfg->max_table_depth)) {
        close_conn(u, AMQP_SYNTAX_ERROR,
                   "SYNTAX_ERROR - malformed field table, or nested deeper than allowed", id);
        return;
    }
    void *m = NULL;
    if (amqp_decode_method(id, &u->pool, (amqp_bytes_t){f->size - 4, (void *)(p + 4)}, &m) < 0) {
        close_conn(u, AMQP_SYNTAX_ERROR, "SYNTAX_ERROR - cannot decode method arguments", id);
        return;
    }
    if (u->step != DELIVERY_NONE && id != AMQP_CONNECTION_CLOSE_METHOD &&
        id != AMQP_CHANNEL_CLOSE_METHOD) {
        close_conn(u, AMQP_UNEXPECTED_FRAME, "UNEXPECTED_FRAME - method inside content", id);
        return;
    }
    if (f->channel == 0)
        on_conn_method(u, id, m);
    else if (f->channel == CHANNEL)
        on_channel_method(u, id, m);
    else
        close_conn(u, AMQP_CHANNEL_ERROR, "CHANNEL_ERROR - frame on a channel we did not open", id);
}

static void handle_frame(struct upstream *u, const struct frame *f)
{
    switch (f->type) {
    case FRAME_METHOD:
        on_method(u, f);
        return;
    case FRAME_HEADER:
        if (u->state != UP_CLOSING)
            on_header(u, f);
        return;
    case FRAME_BODY:
        if (u->state != UP_CLOSING)
            on_body(u, f);
        return;
    case FRAME_HEARTBEAT:
        if (f->channel != 0)
            close_conn(u, AMQP_COMMAND_INVALID, "COMMAND_INVALID - heartbeat on a channel", 0);
        return;
    default:
        close_conn(u, AMQP_FRAME_ERROR, "FRAME_ERROR - unknown frame type", 0);
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct upstream *u = arg;
    u->conn.last_read_ms = monotonic_ms();
    struct evbuffer *in = bufferevent_get_input(bev);
    if (u->state == UP_AWAIT_START && evbuffer_get_length(in) >= 1) {
        uint8_t c;
        evbuffer_copyout(in, &c, 1);
        if (c == 'A') {
            drop(u, "the broker refused our protocol header");
            return;
        }
    }
    struct frame_reader r = {in, 0};
    for (;;) {
        /* Back-pressure: leave the frames in the buffer; conn_update_reading
         * calls us again. */
        if (u->ch && !u->conn.reading)
            break;
        struct frame f;
        uint32_t max = u->state >= UP_AWAIT_OPEN_OK && u->frame_max ? u->frame_max : FRAME_MIN_MAX;
        enum frame_status st = frame_next(&r, max, &f);
        if (st == FRAME_INCOMPLETE)
            break;
        if (st != FRAME_OK) {
            drop(u, st == FRAME_TOO_LARGE ? "frame larger than frame_max"
                                          : "frame without its end octet");
            return;
        }
        handle_frame(u, &f);
        if (u->bev != bev)
            return; /* dropped: the buffer went with it */
        recycle_amqp_pool(&u->pool);
    }
    frame_reader_finish(&r);
}

/* ---- timers ---- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct upstream *u = arg;
    uint64_t now = monotonic_ms();
    switch (u->state) {
    case UP_STOPPED:
        return;
    case UP_WAIT:
        if (now >= u->next_ms)
            connect_node(u);
        return;
    case UP_CLOSING:
        if (now >= u->next_ms)
            drop(u, "no close-ok from the broker");
        return;
    case UP_CONNECTING:
    case UP_AWAIT_START:
    case UP_AWAIT_TUNE:
        if (now >= u->next_ms)
            drop(u, "handshake timed out");
        return;
    default:
        break;
    }
    if (u->state < UP_CONSUMING && now >= u->next_ms) {
        drop(u, "no answer from the broker in time while setting up the consumer");
        return;
    }
    if (!u->heartbeat)
        return;
    uint64_t hb = u->heartbeat * 1000u;
    if (now - u->conn.last_write_ms >= hb / 2)
        frame_put_heartbeat(up_out(u));
    bool reading = bufferevent_get_enabled(u->bev) & EV_READ;
    if (reading && now - u->conn.last_read_ms > 2 * hb)
        drop(u, "no heartbeat from the broker for two intervals");
}

/* ---- the set ---- */

static SSL_CTX *make_ssl(const struct upstream_cfg *c)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    int ok = c->tls_ca_file ? SSL_CTX_load_verify_locations(ctx, c->tls_ca_file, NULL)
                            : SSL_CTX_set_default_verify_paths(ctx);
    if (ok == 1 && c->tls_cert_file)
        ok = SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert_file) == 1 &&
             SSL_CTX_use_PrivateKey_file(ctx, c->tls_key_file, SSL_FILETYPE_PEM) == 1;
    if (ok != 1) {
        unsigned long e = ERR_get_error();
        log_error("rabbit.upstream %s: TLS files: %s", c->name,
                  e ? ERR_reason_error_string(e) : "cannot load");
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, c->tls_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    return ctx;
}

static bool wants_tls(const struct upstream_cfg *c)
{
    for (size_t i = 0; i < c->n_nodes; i++)
        if (!strncmp(c->nodes[i], "amqps://", 8))
            return true;
    return false;
}

struct bridges *bridges_new(struct server *srv)
{
    const struct config *cfg = srv->cfg;
    if (!cfg->n_upstreams)
        return NULL;
    if (!cfg->rabbit_enabled) {
        log_info("rabbit.upstream lists %zu upstream(s) but the RabbitMQ side is off "
                 "(rabbit.enabled, --enable-rabbit): the bridge is off",
                 cfg->n_upstreams);
        return NULL;
    }
    struct bridges *b = xcalloc(1, sizeof *b);
    b->srv = srv;
    b->n = cfg->n_upstreams;
    b->ups = xcalloc(b->n, sizeof *b->ups);
    b->ssl = xcalloc(b->n, sizeof *b->ssl);
    b->dns = evdns_base_new(srv->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!b->dns)
        b->dns = evdns_base_new(srv->base, 0);
    if (b->dns)
        (void)evdns_base_load_hosts(b->dns, NULL);
    for (size_t i = 0; i < b->n; i++) {
        struct upstream *u = &b->ups[i];
        u->b = b;
        u->cfg = &cfg->upstreams[i];
        u->conn.srv = srv;
        snprintf(u->conn.name, sizeof u->conn.name, "upstream %.60s", u->cfg->name);
        init_amqp_pool(&u->pool, 4096);
        if (wants_tls(u->cfg) && !(b->ssl[i] = make_ssl(u->cfg))) {
            up_set_state(u, UP_STOPPED);
            continue;
        }
        u->timer = event_new(srv->base, -1, EV_PERSIST, on_tick, u);
        struct timeval tick = {0, TICK_MS * 1000};
        if (!u->timer || event_add(u->timer, &tick) == -1) {
            log_error("%s: cannot arm its timer: not started", u->conn.name);
            up_set_state(u, UP_STOPPED);
            continue;
        }
        u->next_ms = 0;
        up_set_state(u, UP_WAIT);
        log_info("%s: bridging %s%s into Kafka (routes of vhost '%s')", u->conn.name,
                 u->cfg->queue ? "queue " : "tap queue hopper.tap.",
                 u->cfg->queue ? u->cfg->queue : u->cfg->name, u->cfg->vhost_route);
    }
    return b;
}

void bridges_free(struct bridges *b)
{
    if (!b)
        return;
    b->stopping = true;
    for (size_t i = 0; i < b->n; i++) {
        struct upstream *u = &b->ups[i];
        teardown(u);
        if (u->timer)
            event_free(u->timer);
        free(u->url);
        buf_free(&u->props);
        empty_amqp_pool(&u->pool);
        if (b->ssl[i])
            SSL_CTX_free(b->ssl[i]);
    }
    if (b->dns)
        evdns_base_free(b->dns, 0);
    free(b->ssl);
    free(b->ups);
    free(b);
}

void bridges_kick(struct bridges *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        struct upstream *u = &b->ups[i];
        if (!u->ch)
            continue;
        if (u->conn.parked)
            (void)publish_retry_parked(u->conn.parked);
        conn_update_reading(&u->conn);
    }
}

void bridges_begin_drain(struct bridges *b)
{
    if (!b)
        return;
    b->stopping = true;
    for (size_t i = 0; i < b->n; i++) {
        struct upstream *u = &b->ups[i];
        if (u->state == UP_CONSUMING) {
            amqp_basic_cancel_t m = {amqp_cstring_bytes(u->consumer_tag), 0};
            send_method(u, CHANNEL, AMQP_BASIC_CANCEL_METHOD, &m);
            up_set_state(u, UP_CANCELLING);
            conn_update_reading(&u->conn);
        } else if (u->state < UP_CONSUMING) {
            teardown(u);
            up_set_state(u, UP_STOPPED);
        }
    }
}

void bridges_finish_drain(struct bridges *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        struct upstream *u = &b->ups[i];
        if (u->state == UP_CONSUMING || u->state == UP_CANCELLING) {
            log_info("%s: closing: %llu deliveries, %llu of them nacked or rejected", u->conn.name,
                     (unsigned long long)u->delivered, (unsigned long long)u->rejected);
            close_conn(u, AMQP_REPLY_SUCCESS, "hopper shutting down", 0);
        }
    }
}

bool bridges_closing(const struct bridges *b)
{
    if (!b)
        return false;
    for (size_t i = 0; i < b->n; i++)
        if (b->ups[i].state == UP_CLOSING)
            return true;
    return false;
}
