/* conn.c - client connections (see conn.h for the states). */
#include "conn.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>

#include "auth.h"
#include "binding.h"
#include "chan.h"
#include "consume.h"
#include "feed.h"
#include "frame.h"
#include "log.h"
#include "version.h"
#include "wire.h"

/* Stop reading a client whose unsent output passed this: it does not read
 * its socket, and everything it sends makes more output. */
#define OUT_LIMIT (1u << 20)
/* Bytes read ahead beyond one whole frame. */
#define READ_AHEAD (64u << 10)
/* How long we wait for close-ok after sending connection.close, and for the
 * client to hang up after our close-ok. */
#define CLOSE_TIMEOUT_MS 3000

static const char *const state_names[] = {
    [CONN_AWAIT_HEADER] = "await-header",
    [CONN_AWAIT_START_OK] = "await-start-ok",
    [CONN_AWAIT_TUNE_OK] = "await-tune-ok",
    [CONN_AWAIT_OPEN] = "await-open",
    [CONN_OPEN] = "open",
    [CONN_CLOSING] = "closing",
    [CONN_LINGER] = "linger",
    [CONN_FLUSHING] = "flushing",
};

static void arm_timer(struct conn *c, uint32_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

/* The only place the state changes. */
static void conn_set_state(struct conn *c, enum conn_state s)
{
    log_debug("%s: %s -> %s", c->name, state_names[c->state], state_names[s]);
    c->state = s;
    switch (s) {
    case CONN_OPEN:
        evtimer_del(c->timer);
        if (c->heartbeat)
            arm_timer(c, c->heartbeat * 1000u / 2);
        break;
    case CONN_CLOSING:
    case CONN_LINGER:
        arm_timer(c, CLOSE_TIMEOUT_MS);
        break;
    case CONN_FLUSHING:
        evtimer_del(c->timer);
        /* Wake on_write once everything is sent. */
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            c->dead = true;
        break;
    default:
        break;
    }
    conn_update_reading(c);
}

struct evbuffer *conn_out(struct conn *c)
{
    c->last_write_ms = monotonic_ms();
    return bufferevent_get_output(c->bev);
}

static uint32_t read_frame_max(const struct conn *c)
{
    return c->state >= CONN_AWAIT_OPEN ? c->frame_max : FRAME_MIN_MAX;
}

static bool wants_input(const struct conn *c)
{
    if (c->dead || c->state == CONN_FLUSHING)
        return false;
    if (c->state == CONN_CLOSING || c->state == CONN_LINGER)
        return true; /* to see close-ok, or the client's EOF */
    const struct server *srv = c->srv;
    /* The Kafka bound holds publishes back, not logins: a connection still in
     * its handshake is read (frames of at most 4096 bytes); once open it
     * hears connection.blocked and is held like the others. With task
     * queues on, as on RabbitMQ, only connections that publish are held: a
     * consumer's acks must still be read. */
    bool intake_blocked = srv->blocked && c->state == CONN_OPEN && (c->published || !srv->feeds);
    return !intake_blocked && !srv->draining && !c->parked && c->n_over_limit == 0 &&
           c->awaiting == 0 && evbuffer_get_length(bufferevent_get_output(c->bev)) < OUT_LIMIT;
}

void conn_update_reading(struct conn *c)
{
    bool want = wants_input(c);
    if (want == c->reading)
        return;
    c->reading = want;
    if (!want) {
        bufferevent_disable(c->bev, EV_READ);
        return;
    }
    bufferevent_enable(c->bev, EV_READ);
    /* While we were not reading, silence proved nothing. */
    c->last_read_ms = monotonic_ms();
    if (evbuffer_get_length(bufferevent_get_input(c->bev)))
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

void conn_close(struct conn *c, uint16_t code, const char *text, amqp_method_number_t failing)
{
    if (c->state >= CONN_CLOSING)
        return;
    if (code) {
        log_warn("%s: closing connection: %s", c->name, text);
        amqp_connection_close_t m = {
            .reply_code = code,
            .reply_text = frame_reply_text(text),
            .class_id = (uint16_t)(failing >> 16),
            .method_id = (uint16_t)failing,
        };
        if (frame_put_method(conn_out(c), 0, AMQP_CONNECTION_CLOSE_METHOD, &m) == 0) {
            conn_set_state(c, CONN_CLOSING);
            return;
        }
    }
    conn_set_state(c, CONN_FLUSHING);
}

/* Closes the connection after a framing error: the byte stream cannot be
 * followed any further, so we do not wait for close-ok. */
static void conn_fail_framing(struct conn *c, uint16_t code, const char *text)
{
    conn_close(c, code, text, 0);
    if (c->state == CONN_CLOSING)
        conn_set_state(c, CONN_FLUSHING);
}

static void send_method(struct conn *c, uint16_t channel, amqp_method_number_t id, void *m)
{
    if (frame_put_method(conn_out(c), channel, id, m))
        conn_close(c, AMQP_INTERNAL_ERROR, "INTERNAL_ERROR - cannot encode reply", id);
}

void conn_notify_blocked(struct conn *c, bool blocked)
{
    if (!c->cap_blocked || c->state != CONN_OPEN || c->blocked_notified == blocked)
        return;
    c->blocked_notified = blocked;
    if (blocked) {
        amqp_connection_blocked_t m = {amqp_cstring_bytes("kafka backlog over its bound")};
        send_method(c, 0, AMQP_CONNECTION_BLOCKED_METHOD, &m);
    } else {
        send_method(c, 0, AMQP_CONNECTION_UNBLOCKED_METHOD, NULL);
    }
}

/* ---- handshake ---- */

static amqp_table_entry_t bool_entry(const char *key, bool v)
{
    amqp_table_entry_t e = {amqp_cstring_bytes(key), {AMQP_FIELD_KIND_BOOLEAN, {.boolean = v}}};
    return e;
}

static amqp_table_entry_t str_entry(const char *key, const char *v)
{
    amqp_table_entry_t e = {amqp_cstring_bytes(key),
                            {AMQP_FIELD_KIND_UTF8, {.bytes = amqp_cstring_bytes(v)}}};
    return e;
}

/* The RabbitMQ release whose semantics task queues follow (binding rules,
 * x-death fields, qos), as the version advertised with them. */
#define RABBITMQ_COMPAT_VERSION "3.13.7"

static void send_start(struct conn *c)
{
    /* Only what works is advertised: pika needs publisher_confirms and
     * basic.nack for confirm_delivery; py-amqp sends its own capabilities
     * only when the server lists some. */
    amqp_table_entry_t caps[] = {
        bool_entry("publisher_confirms", true),
        bool_entry("basic.nack", true),
        bool_entry("connection.blocked", true),
        bool_entry("authentication_failure_close", true),
        /* With task queues on, as RabbitMQ: consumers hear of a deleted queue. */
        bool_entry("consumer_cancel_notify", true),
    };
    bool rabbit = c->srv->cfg->rabbit_enabled;
    int n_caps = (int)ARRAY_LEN(caps) - (rabbit ? 0 : 1);
    /* Clients choose how to use a server by its product and version: kombu
     * (Celery) sends basic.qos with global=true only to RabbitMQ 3.3-3.x,
     * and Celery's prefetch for ETA tasks grows only through it. With task
     * queues on hopper consumes as RabbitMQ 3.13 does, and says so; platform
     * and information say what it is. Publishing alone, nothing a client
     * does depends on it. README, "AMQP behaviour". */
    amqp_table_entry_t props[] = {
        str_entry("product", rabbit ? "RabbitMQ" : "hopper"),
        str_entry("version", rabbit ? RABBITMQ_COMPAT_VERSION : HOPPER_VERSION),
        str_entry("platform", "hopper " HOPPER_VERSION " (C, libevent, librdkafka)"),
        str_entry("copyright", "the hopper authors"),
        str_entry("information", rabbit ? "hopper: AMQP 0-9-1 over Apache Kafka, with RabbitMQ "
                                          "3.13's queue semantics"
                                        : "hopper: AMQP 0-9-1 publishers into Apache Kafka"),
        {amqp_cstring_bytes("capabilities"), {AMQP_FIELD_KIND_TABLE, {.table = {n_caps, caps}}}},
    };
    amqp_connection_start_t m = {
        .version_major = 0,
        .version_minor = 9,
        .server_properties = {(int)ARRAY_LEN(props), props},
        .mechanisms = amqp_cstring_bytes(AUTH_MECHANISMS),
        .locales = amqp_cstring_bytes("en_US"),
    };
    send_method(c, 0, AMQP_CONNECTION_START_METHOD, &m);
}

static bool client_capability(const amqp_table_t *client_props, const char *name)
{
    const amqp_field_value_t *caps = table_lookup(client_props, "capabilities");
    if (!caps || caps->kind != AMQP_FIELD_KIND_TABLE)
        return false;
    const amqp_field_value_t *v = table_lookup(&caps->value.table, name);
    return v && v->kind == AMQP_FIELD_KIND_BOOLEAN && v->value.boolean;
}

static void handle_start_ok(struct conn *c, amqp_connection_start_ok_t *m)
{
    c->cap_blocked = client_capability(&m->client_properties, "connection.blocked");
    c->cap_auth_close = client_capability(&m->client_properties, "authentication_failure_close");
    c->cap_cancel_notify = client_capability(&m->client_properties, "consumer_cancel_notify");
    const char *why;
    enum auth_result r = auth_check(c->srv->cfg, m->mechanism, m->response, c->peer_loopback,
                                    c->srv->cfg->max_table_depth, c->user, &why);
    char mech[32];
    snprintf(mech, sizeof mech, "%.*s", (int)(m->mechanism.len < 31 ? m->mechanism.len : 31),
             (char *)m->mechanism.bytes);
    if (r == AUTH_BAD_MECHANISM) {
        char text[128];
        snprintf(text, sizeof text, "COMMAND_INVALID - unknown authentication mechanism '%s'",
                 mech);
        conn_close(c, AMQP_COMMAND_INVALID, text, AMQP_CONNECTION_START_OK_METHOD);
        return;
    }
    if (r != AUTH_OK) {
        log_warn("%s: user '%s' failed to authenticate with %s: %s", c->name, c->user, mech, why);
        if (!c->cap_auth_close) {
            conn_set_state(c, CONN_FLUSHING);
            return;
        }
        char text[160];
        snprintf(text, sizeof text,
                 "ACCESS_REFUSED - Login was refused using authentication mechanism %s. For "
                 "details see the broker logfile.",
                 mech);
        conn_close(c, AMQP_ACCESS_REFUSED, text, AMQP_CONNECTION_START_OK_METHOD);
        /* Nothing follows a refused login: do not wait for close-ok. */
        conn_set_state(c, CONN_FLUSHING);
        return;
    }
    const struct config *cfg = c->srv->cfg;
    amqp_connection_tune_t tune = {cfg->channel_max, cfg->frame_max, cfg->heartbeat};
    send_method(c, 0, AMQP_CONNECTION_TUNE_METHOD, &tune);
    conn_set_state(c, CONN_AWAIT_TUNE_OK);
}

static void handle_tune_ok(struct conn *c, const amqp_connection_tune_ok_t *m)
{
    const struct config *cfg = c->srv->cfg;
    char text[200];
    /* 0 means "no limit of my own": take ours. Lower values are honoured
     * (old amqplib asks for 4096, old clients for channel_max 0). */
    uint32_t frame_max = m->frame_max ? m->frame_max : cfg->frame_max;
    uint16_t channel_max = m->channel_max ? m->channel_max : cfg->channel_max;
    if (frame_max < FRAME_MIN_MAX || frame_max > cfg->frame_max) {
        snprintf(text, sizeof text, "NOT_ALLOWED - frame_max=%u outside the allowed range %u..%u",
                 frame_max, FRAME_MIN_MAX, cfg->frame_max);
        conn_close(c, AMQP_NOT_ALLOWED, text, AMQP_CONNECTION_TUNE_OK_METHOD);
        return;
    }
    if (channel_max > cfg->channel_max) {
        snprintf(text, sizeof text,
                 "NOT_ALLOWED - negotiated channel_max = %u is higher than the maximum allowed "
                 "value (%u)",
                 channel_max, cfg->channel_max);
        conn_close(c, AMQP_NOT_ALLOWED, text, AMQP_CONNECTION_TUNE_OK_METHOD);
        return;
    }
    c->frame_max = frame_max;
    c->channel_max = channel_max;
    c->heartbeat = m->heartbeat;
    bufferevent_setwatermark(c->bev, EV_READ, 0, frame_max + READ_AHEAD);
    conn_set_state(c, CONN_AWAIT_OPEN);
}

static void handle_open(struct conn *c, const amqp_connection_open_t *m)
{
    snprintf(c->vhost, sizeof c->vhost, "%.*s", (int)m->virtual_host.len,
             (char *)m->virtual_host.bytes);
    if (memchr(m->virtual_host.bytes, '\0', m->virtual_host.len) ||
        !config_has_vhost(c->srv->cfg, c->vhost)) {
        char text[320];
        snprintf(text, sizeof text, "NOT_ALLOWED - vhost %s not found", c->vhost);
        conn_close(c, AMQP_NOT_ALLOWED, text, AMQP_CONNECTION_OPEN_METHOD);
        return;
    }
    amqp_connection_open_ok_t ok = {amqp_empty_bytes};
    send_method(c, 0, AMQP_CONNECTION_OPEN_OK_METHOD, &ok);
    log_info("%s: user '%s' opened vhost '%s' (frame_max %u, channel_max %u, heartbeat %us)",
             c->name, c->user, c->vhost, c->frame_max, c->channel_max, c->heartbeat);
    conn_set_state(c, CONN_OPEN);
    if (c->srv->blocked)
        conn_notify_blocked(c, true);
}

/* ---- frames ---- */

int conn_decode_method(struct conn *c, const struct frame *f, amqp_method_number_t *id,
                       void **decoded)
{
    if (f->size < 4) {
        conn_fail_framing(c, AMQP_FRAME_ERROR, "FRAME_ERROR - method frame too short");
        return -1;
    }
    const uint8_t *p = f->payload;
    *id = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (wire_check_method(*id, p + 4, f->size - 4, c->srv->cfg->max_table_depth)) {
        conn_close(c, AMQP_SYNTAX_ERROR,
                   "SYNTAX_ERROR - malformed field table, or nested deeper than allowed", *id);
        return -1;
    }
    int rc =
        amqp_decode_method(*id, &c->pool, (amqp_bytes_t){f->size - 4, (void *)(p + 4)}, decoded);
    if (rc == AMQP_STATUS_UNKNOWN_METHOD || rc == AMQP_STATUS_UNKNOWN_CLASS) {
        char text[96];
        snprintf(text, sizeof text, "NOT_IMPLEMENTED - unknown method 0x%08x", *id);
        conn_close(c, AMQP_NOT_IMPLEMENTED, text, *id);
        return -1;
    }
    if (rc < 0) {
        conn_close(c, AMQP_SYNTAX_ERROR, "SYNTAX_ERROR - cannot decode method arguments", *id);
        return -1;
    }
    return 0;
}

/* Methods on channel 0 once the connection is open, or while closing. */
static void handle_channel0(struct conn *c, const struct frame *f)
{
    if (f->type == FRAME_HEARTBEAT)
        return;
    if (f->type != FRAME_METHOD) {
        if (c->state != CONN_CLOSING)
            conn_close(c, AMQP_COMMAND_INVALID, "COMMAND_INVALID - content frame on channel 0", 0);
        return;
    }
    amqp_method_number_t id;
    void *m;
    if (conn_decode_method(c, f, &id, &m))
        return;
    switch (id) {
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_t *cl = m;
        log_info("%s: client closed connection (%u %.*s)", c->name, cl->reply_code,
                 (int)cl->reply_text.len, (char *)cl->reply_text.bytes);
        send_method(c, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, NULL);
        /* The client hangs up first, as with RabbitMQ: closing our end at
         * once can turn its read of close-ok into a reset (amqp091-go sees
         * an EOF error then). */
        conn_set_state(c, c->state >= CONN_CLOSING ? CONN_FLUSHING : CONN_LINGER);
        return;
    }
    case AMQP_CONNECTION_CLOSE_OK_METHOD:
        if (c->state == CONN_CLOSING)
            conn_set_state(c, CONN_FLUSHING);
        return;
    default:
        break;
    }
    if (c->state == CONN_CLOSING)
        return;
    switch (c->state) {
    case CONN_AWAIT_START_OK:
        if (id == AMQP_CONNECTION_START_OK_METHOD) {
            handle_start_ok(c, m);
            return;
        }
        break;
    case CONN_AWAIT_TUNE_OK:
        if (id == AMQP_CONNECTION_TUNE_OK_METHOD) {
            handle_tune_ok(c, m);
            return;
        }
        break;
    case CONN_AWAIT_OPEN:
        if (id == AMQP_CONNECTION_OPEN_METHOD) {
            handle_open(c, m);
            return;
        }
        break;
    case CONN_OPEN:
        if (id == AMQP_CONNECTION_BLOCKED_METHOD || id == AMQP_CONNECTION_UNBLOCKED_METHOD)
            return; /* a client has no business sending these; ignore */
        break;
    default:
        break;
    }
    char text[128];
    snprintf(text, sizeof text, "COMMAND_INVALID - method 0x%08x not allowed in state %s", id,
             state_names[c->state]);
    conn_close(c, AMQP_COMMAND_INVALID, text, id);
}

static struct chan *chan_get(struct conn *c, uint16_t id)
{
    return id < c->n_chans ? c->chans[id] : NULL;
}

static void open_channel(struct conn *c, const struct frame *f)
{
    amqp_method_number_t id;
    void *m;
    if (f->type != FRAME_METHOD || f->size < 4) {
        conn_close(c, AMQP_CHANNEL_ERROR, "CHANNEL_ERROR - expected 'channel.open'", 0);
        return;
    }
    if (conn_decode_method(c, f, &id, &m))
        return;
    if (id != AMQP_CHANNEL_OPEN_METHOD) {
        conn_close(c, AMQP_CHANNEL_ERROR, "CHANNEL_ERROR - expected 'channel.open'", id);
        return;
    }
    if (f->channel >= c->n_chans) {
        uint32_t n = c->n_chans ? c->n_chans : 8;
        while (n <= f->channel)
            n *= 2;
        c->chans = xrealloc(c->chans, n * sizeof *c->chans);
        memset(c->chans + c->n_chans, 0, (n - c->n_chans) * sizeof *c->chans);
        c->n_chans = n;
    }
    c->chans[f->channel] = chan_new(c, f->channel);
    amqp_channel_open_ok_t ok = {amqp_empty_bytes};
    send_method(c, f->channel, AMQP_CHANNEL_OPEN_OK_METHOD, &ok);
}

void conn_forget_chan(struct conn *c, uint16_t id)
{
    if (id < c->n_chans)
        c->chans[id] = NULL;
}

static void handle_frame(struct conn *c, const struct frame *f)
{
    if (f->type != FRAME_METHOD && f->type != FRAME_HEADER && f->type != FRAME_BODY &&
        f->type != FRAME_HEARTBEAT) {
        char text[64];
        snprintf(text, sizeof text, "FRAME_ERROR - unknown frame type %u", f->type);
        conn_fail_framing(c, AMQP_FRAME_ERROR, text);
        return;
    }
    if (f->type == FRAME_HEARTBEAT && f->channel != 0) {
        conn_close(c, AMQP_FRAME_ERROR, "FRAME_ERROR - heartbeat frame on non-zero channel", 0);
        return;
    }
    if (f->channel == 0 || c->state != CONN_OPEN) {
        if (f->channel != 0 && c->state != CONN_CLOSING) {
            conn_close(c, AMQP_CHANNEL_ERROR,
                       "CHANNEL_ERROR - channel used before the connection is open", 0);
            return;
        }
        if (f->channel == 0)
            handle_channel0(c, f);
        return;
    }
    if (f->channel > c->channel_max) {
        char text[96];
        snprintf(text, sizeof text, "CHANNEL_ERROR - channel %u above channel_max %u", f->channel,
                 c->channel_max);
        conn_close(c, AMQP_CHANNEL_ERROR, text, 0);
        return;
    }
    struct chan *ch = chan_get(c, f->channel);
    if (!ch) {
        open_channel(c, f);
        return;
    }
    if (f->type == FRAME_METHOD && f->size >= 4 && ch->state == CHAN_OPEN && f->payload[0] == 0 &&
        f->payload[1] == 20 && f->payload[2] == 0 && f->payload[3] == 10) {
        conn_close(c, AMQP_CHANNEL_ERROR, "CHANNEL_ERROR - second 'channel.open' seen",
                   AMQP_CHANNEL_OPEN_METHOD);
        return;
    }
    chan_handle_frame(ch, f);
}

static void handle_protocol_header(struct conn *c, struct evbuffer *in)
{
    uint8_t hdr[FRAME_PROTOCOL_HEADER_LEN];
    size_t n = evbuffer_get_length(in);
    if (n > sizeof hdr)
        n = sizeof hdr;
    evbuffer_copyout(in, hdr, n);
    bool match = memcmp(hdr, FRAME_PROTOCOL_HEADER, n) == 0;
    if (match && n < sizeof hdr)
        return; /* a correct prefix: wait for the rest */
    evbuffer_drain(in, n);
    if (!match) {
        /* The spec's answer to an unknown protocol: our header, then close. */
        log_warn("%s: not an AMQP 0-9-1 protocol header; closing", c->name);
        evbuffer_add(conn_out(c), FRAME_PROTOCOL_HEADER, FRAME_PROTOCOL_HEADER_LEN);
        conn_set_state(c, CONN_FLUSHING);
        return;
    }
    send_start(c);
    conn_set_state(c, CONN_AWAIT_START_OK);
}

static void process_input(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct frame_reader r = {in, 0};
    while (wants_input(c) && c->state != CONN_LINGER && evbuffer_get_length(in) > r.consumed) {
        if (c->state == CONN_AWAIT_HEADER) {
            handle_protocol_header(c, in);
            if (c->state == CONN_AWAIT_HEADER)
                break;
            continue;
        }
        struct frame f;
        uint32_t max = read_frame_max(c);
        enum frame_status st = frame_next(&r, max, &f);
        if (st == FRAME_INCOMPLETE)
            break;
        if (st == FRAME_TOO_LARGE) {
            char text[128];
            snprintf(text, sizeof text,
                     "FRAME_ERROR - type %u, channel %u: frame size %llu exceeds frame_max %u",
                     f.type, f.channel, (unsigned long long)f.size + FRAME_OVERHEAD, max);
            conn_fail_framing(c, AMQP_FRAME_ERROR, text);
            break;
        }
        if (st == FRAME_BAD_END) {
            conn_fail_framing(c, AMQP_FRAME_ERROR, "FRAME_ERROR - frame end octet is not 0xCE");
            break;
        }
        handle_frame(c, &f);
        recycle_amqp_pool(&c->pool);
    }
    frame_reader_finish(&r);
    if (c->state >= CONN_LINGER)
        evbuffer_drain(in, evbuffer_get_length(in));
}

/* ---- libevent callbacks ---- */

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    c->busy++;
    c->last_read_ms = monotonic_ms();
    process_input(c);
    server_flush_confirms(c->srv);
    conn_update_reading(c);
    c->busy--;
    conn_release(c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->state == CONN_FLUSHING) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            c->dead = true;
    } else {
        c->busy++;
        conn_update_reading(c);
        if (c->srv->feeds && c->state == CONN_OPEN)
            consume_conn_writable(c);
        c->busy--;
    }
    conn_release(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (c->state < CONN_LINGER)
            log_info("%s: client closed TCP connection%s", c->name,
                     c->state == CONN_OPEN ? " without connection.close" : "");
        c->dead = true;
    }
    conn_release(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    uint64_t now = monotonic_ms();
    switch (c->state) {
    case CONN_OPEN: {
        uint64_t hb_ms = c->heartbeat * 1000ull;
        if (c->reading && now - c->last_read_ms > 2 * hb_ms) {
            log_warn("%s: missed heartbeats from client, timeout: %us", c->name, c->heartbeat);
            conn_set_state(c, CONN_FLUSHING);
            break;
        }
        /* Ticks come every heartbeat/2; the slack absorbs timer jitter. */
        if (now - c->last_write_ms + 100 >= hb_ms / 2)
            frame_put_heartbeat(conn_out(c));
        arm_timer(c, (uint32_t)(hb_ms / 2));
        break;
    }
    case CONN_CLOSING:
        log_info("%s: no close-ok within %u ms", c->name, CLOSE_TIMEOUT_MS);
        conn_set_state(c, CONN_FLUSHING);
        break;
    case CONN_LINGER:
        log_debug("%s: client did not hang up within %u ms", c->name, CLOSE_TIMEOUT_MS);
        conn_set_state(c, CONN_FLUSHING);
        break;
    case CONN_FLUSHING:
        break;
    default:
        log_warn("%s: handshake not completed within %u ms (%s)", c->name,
                 c->srv->cfg->handshake_timeout_ms, state_names[c->state]);
        conn_set_state(c, CONN_FLUSHING);
        break;
    }
    conn_release(c);
}

/* ---- life cycle ---- */

static void describe_peer(struct conn *c, const struct sockaddr *addr)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        c->peer_loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        c->peer_loopback =
            IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
            (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
    }
    snprintf(c->name, sizeof c->name, "conn %" PRIu64 " %s:%u", c->id, host, port);
}

void conn_accept(struct server *srv, evutil_socket_t fd, const struct sockaddr *addr, int addrlen)
{
    if (srv->n_conns >= srv->cfg->max_connections || srv->draining) {
        srv->stats.connections_refused++;
        log_warn("refusing connection: %s",
                 srv->draining ? "shutting down" : "max_connections reached");
        evutil_closesocket(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = xcalloc(1, sizeof *c);
    c->srv = srv;
    c->id = ++srv->next_conn_id;
    describe_peer(c, addr);
    c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(srv->base, on_timer, c);
    if (!c->bev || !c->timer) {
        srv->stats.connections_refused++;
        log_error("%s: cannot set up the connection (libevent %s failed); closing it", c->name,
                  c->bev ? "evtimer_new" : "bufferevent_socket_new");
        if (c->bev)
            bufferevent_free(c->bev); /* closes fd */
        else
            evutil_closesocket(fd);
        if (c->timer)
            event_free(c->timer);
        free(c);
        return;
    }
    c->frame_max = FRAME_MIN_MAX;
    init_amqp_pool(&c->pool, 4096);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, FRAME_MIN_MAX + READ_AHEAD);
    bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LIMIT / 2, 0);
    bufferevent_enable(c->bev, EV_WRITE);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    srv->stats.connections_accepted++;
    c->last_read_ms = c->last_write_ms = monotonic_ms();
    arm_timer(c, srv->cfg->handshake_timeout_ms);
    log_debug("%s: accepted", c->name);
    conn_update_reading(c);
}

/* An exclusive queue of a closed connection is gone. */
static void exclusive_gone(void *feeds, const char *vhost, const char *queue)
{
    feeds_queue_deleted(feeds, vhost, queue, true);
}

void conn_destroy(struct conn *c)
{
    struct server *srv = c->srv;
    for (uint32_t i = 0; i < c->n_chans; i++)
        if (c->chans[i])
            chan_free(c->chans[i]);
    free(c->chans);
    topology_connection_closed(srv->topo, c->id, srv->feeds ? exclusive_gone : NULL, srv->feeds);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_conns--;
    bufferevent_free(c->bev);
    event_free(c->timer);
    empty_amqp_pool(&c->pool);
    log_debug("%s: destroyed", c->name);
    free(c);
}

void conn_release(struct conn *c)
{
    if (c->dead && c->busy == 0)
        conn_destroy(c);
}
