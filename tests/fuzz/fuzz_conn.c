/* fuzz_conn.c - libFuzzer harness: one whole inbound byte stream fed to one
 * client connection of a real server (conn, chan, frame, wire, auth,
 * topology, router, record, confirm), with the Kafka side replaced by the
 * in-process fake sink (fake_sink.c).
 *
 * Input layout:
 *   byte 0   how the stream is cut, the event loop running between pieces:
 *            0 one piece, 1 one frame at a time (as a client that waits
 *            for each answer would send it; the recorded sessions use
 *            this), otherwise pieces of 1..97 bytes from a fixed PRNG
 *            seeded with the byte
 *   byte 1   control bits: 0-4 the fake sink's policy (fake_sink.h),
 *            5 fire the connection's pending timer at the end (handshake
 *            timeout, heartbeat, close timeout), 6 the client closes its
 *            socket before held reports are released, 7 the tight config
 *            (small frame_max, channel_max, message size, table depth,
 *            unconfirmed bound) instead of the ordinary one
 *   rest     what the client sends, from the protocol header on
 *
 * Each run builds a fresh server (fresh config, router, topology, fake
 * sink, no listener) on a fresh event base, accepts one end of a
 * socketpair as if from 127.0.0.1, writes the stream into the other end,
 * drains what the server writes back, and frees everything, so that
 * LeakSanitizer sees what a connection leaves behind. Nothing waits for
 * real time: timers stay pending (or are fired by hand, bit 5) and are
 * freed with the connection. */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "chan.h"
#include "config.h"
#include "conn.h"
#include "fake_sink.h"
#include "log.h"
#include "publish.h"
#include "router.h"
#include "server.h"
#include "sink.h"
#include "topology.h"

#define CTL_FIRE_TIMERS 0x20
#define CTL_CLIENT_CLOSES 0x40
#define CTL_TIGHT 0x80

/* Loop iterations without progress before we call the server quiescent. */
#define QUIET_ROUNDS 2
#define MAX_ROUNDS 64

/* Close to config/hopper.yaml, plus what routing and auth can tell apart:
 * a second user and vhost, a route per key source, an exchange without the
 * default route, a prefix. */
static const char ordinary_yaml[] =
    "users:\n"
    "  - {name: guest, password: guest}\n"
    "  - {name: app, password: secret, loopback_only: false}\n"
    "vhosts: [\"/\", v2]\n"
    "kafka: {topic_prefix: \"amqp.\"}\n"
    "exchanges:\n"
    "  - {name: events, type: topic}\n"
    "  - {name: quiet, type: direct, default_route: false}\n"
    "  - {name: hx, type: headers, vhost: v2}\n"
    "routes:\n"
    "  - {exchange: events, routing_key: \"orders.*.created\", topic: orders, "
    "key: \"header:customer\"}\n"
    "  - {exchange: events, routing_key: \"#\", topic: events-topic, key: routing_key}\n"
    "  - {exchange: \"\", routing_key: \"mid.#\", topic: by-id, key: message_id}\n"
    "  - {exchange: quiet, routing_key: \"a.#.b\", topic: ab, key: none}\n";

/* Every limit small enough for a short input to cross it. */
static const char tight_yaml[] = "limits:\n"
                                 "  channel_max: 3\n"
                                 "  frame_max: 4096\n"
                                 "  max_message_size: 600\n"
                                 "  heartbeat: 1\n"
                                 "  max_table_depth: 3\n"
                                 "  max_unconfirmed: 2\n"
                                 "exchanges:\n"
                                 "  - {name: events, type: fanout}\n"
                                 "routes:\n"
                                 "  - {exchange: events, routing_key: \"#\", topic: t, "
                                 "key: \"header:k\"}\n";

struct harness {
    struct event_base *base;
    struct server *srv;
    int fd; /* the client's end */
    unsigned seed;
    unsigned long client_bytes; /* what the server sent, read by the client */
};

/* Server state that changes when anything happens; equal twice in a row
 * (with nothing read by the client) means quiescent. */
static unsigned long long signature(const struct harness *h)
{
    const struct server *srv = h->srv;
    unsigned long long sig = h->client_bytes * 31 + fake_sink_settled(srv->sink) * 17 +
                             sink_in_flight(srv->sink) * 13 + srv->n_conns * 7 + srv->blocked;
    for (const struct conn *c = srv->conns; c; c = c->next)
        sig = sig * 131 + evbuffer_get_length(bufferevent_get_input(c->bev)) * 3 +
              evbuffer_get_length(bufferevent_get_output(c->bev)) + c->state;
    return sig;
}

static void drain_client(struct harness *h)
{
    if (h->fd < 0)
        return;
    char buf[65536];
    ssize_t n;
    while ((n = read(h->fd, buf, sizeof buf)) > 0)
        h->client_bytes += (unsigned long)n;
}

static void pump(struct harness *h)
{
    unsigned long long last = 0;
    int quiet = 0;
    for (int i = 0; i < MAX_ROUNDS && quiet < QUIET_ROUNDS; i++) {
        event_base_loop(h->base, EVLOOP_NONBLOCK);
        drain_client(h);
        unsigned long long sig = signature(h);
        quiet = (i > 0 && sig == last) ? quiet + 1 : 0;
        last = sig;
    }
}

static unsigned next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

/* Length of the next piece to write: everything (seed 0), one frame as the
 * stream's own framing says (seed 1: a client that waits for each answer,
 * like the recorded sessions), or 1..97 bytes at random. */
static size_t next_piece(struct harness *h, const uint8_t *p, size_t len, bool first)
{
    if (h->seed == 0)
        return len;
    if (h->seed == 1) {
        if (first || len < 7)
            return first && len >= 8 ? 8 : len; /* the protocol header */
        uint32_t size = (uint32_t)p[3] << 24 | (uint32_t)p[4] << 16 | (uint32_t)p[5] << 8 | p[6];
        return size > len - 8 ? len : 8 + (size_t)size;
    }
    return 1 + next_rand(&h->seed) % 97;
}

static void send_stream(struct harness *h, const uint8_t *p, size_t len)
{
    int stalls = 0;
    bool first = true;
    size_t piece = 0; /* bytes left of the current piece */
    while (len && stalls < 16) {
        if (piece == 0) {
            piece = next_piece(h, p, len, first);
            first = false;
        }
        if (piece > len)
            piece = len;
        ssize_t w = write(h->fd, p, piece);
        if (w > 0) {
            p += w;
            len -= (size_t)w;
            piece -= (size_t)w;
            stalls = 0;
        } else if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            stalls++; /* the server stopped reading (a bound, or it closed) */
        } else {
            break; /* the server closed the connection */
        }
        pump(h);
        if (!h->srv->conns)
            break;
    }
}

static struct server *server_build(struct event_base *base, bool tight)
{
    const char *yaml = tight ? tight_yaml : ordinary_yaml;
    struct config *cfg;
    char err[512];
    if (config_load_string("fuzz.yaml", yaml, strlen(yaml), &cfg, err, sizeof err)) {
        fprintf(stderr, "fuzz_conn: built-in config: %s\n", err);
        abort();
    }
    /* server_new without the listener, the fake sink in place of Kafka. */
    struct server *srv = xcalloc(1, sizeof *srv);
    srv->base = base;
    srv->cfg = cfg;
    srv->router = router_new(cfg);
    srv->topo = topology_new(cfg);
    return srv;
}

/* The server's sink callbacks (static in server.c), rebuilt from its
 * public functions exactly as server.c wires them. */
static void on_resolved(void *arg, void *owner)
{
    server_mark_dirty(arg, owner);
}

static void on_drained(void *arg)
{
    struct server *srv = arg;
    server_flush_confirms(srv);
    for (struct conn *c = srv->conns; c; c = c->next) {
        if (c->parked && publish_retry_parked(c->parked)) {
            c->parked = NULL;
            conn_update_reading(c);
        }
    }
    server_update_blocked(srv);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    signal(SIGPIPE, SIG_IGN); /* as main.c: a closed peer is EPIPE, not death */
    /* Thousands of connections a second: only errors, unless a person
     * triaging one input asks for the server's story. */
    log_threshold = getenv("FUZZ_VERBOSE") ? LOG_DEBUG : LOG_ERROR;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t ctl = data[1];
    struct harness h = {.seed = data[0]};
    h.base = event_base_new();
    h.srv = server_build(h.base, ctl & CTL_TIGHT);
    struct sink_callbacks cb = {on_resolved, on_drained, h.srv};
    char err[256];
    h.srv->sink = sink_new(h.base, h.srv->cfg, &cb, err, sizeof err);
    if (!h.srv->sink)
        abort();
    fake_sink_set_policy(h.srv->sink, ctl & 0x1f);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == -1)
        abort();
    struct sockaddr_in peer = {
        .sin_family = AF_INET, .sin_port = htons(40000), .sin_addr.s_addr = htonl(0x7f000001)};
    conn_accept(h.srv, sv[1], (struct sockaddr *)&peer, sizeof peer);
    h.fd = sv[0];

    send_stream(&h, data + 2, size - 2);
    pump(&h);

    if (ctl & CTL_FIRE_TIMERS) {
        for (struct conn *c = h.srv->conns; c; c = c->next)
            if (evtimer_pending(c->timer, NULL))
                event_active(c->timer, EV_TIMEOUT, 1);
        pump(&h);
    }
    if (ctl & CTL_CLIENT_CLOSES) {
        close(h.fd);
        h.fd = -1;
        pump(&h);
    }
    fake_sink_release(h.srv->sink);
    pump(&h);

    if (log_threshold == LOG_DEBUG)
        fprintf(stderr,
                "fuzz_conn: published %llu, returned %llu, dropped %llu, acks %llu, nacks %llu, "
                "server sent %lu bytes\n",
                (unsigned long long)h.srv->stats.published,
                (unsigned long long)h.srv->stats.returned,
                (unsigned long long)h.srv->stats.unroutable_dropped,
                (unsigned long long)h.srv->stats.acks_sent,
                (unsigned long long)h.srv->stats.nacks_sent, h.client_bytes);
    /* server_free destroys the connection, nacks what is left in the sink
     * (every tracker must be freed by then) and frees the rest. */
    server_free(h.srv);
    event_base_free(h.base);
    if (h.fd >= 0)
        close(h.fd);
    return 0;
}
