/* conn.h - one client connection: the AMQP handshake, channel 0, heartbeats,
 * reading frames, back-pressure on its socket, and closing.
 *
 * States (changed only by conn_set_state):
 *
 *   AWAIT_HEADER --header--> AWAIT_START_OK --start-ok--> AWAIT_TUNE_OK
 *   --tune-ok--> AWAIT_OPEN --open--> OPEN
 *   any before CLOSING --we send connection.close--> CLOSING
 *   CLOSING --close-ok / the client's connection.close / timeout--> FLUSHING
 *   any before CLOSING --client's connection.close, we send close-ok--> LINGER
 *   LINGER --timeout--> FLUSHING (normally the client hangs up first)
 *   any --bad header / auth failure / framing error / handshake or
 *         heartbeat timeout--> FLUSHING
 *   LINGER, FLUSHING: nothing more is read. FLUSHING: the socket closes
 *   once output is sent.
 *   In every state, the client hanging up or a socket error ends the
 *   connection.
 *
 * A connection is destroyed only at the end of a libevent callback (never
 * while its own frame handlers run), when `dead` is set. */
#ifndef HOPPER_CONN_H
#define HOPPER_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include <amqp.h>
#include <event2/bufferevent.h>

#include "frame.h"
#include "server.h"

/* The order is the life cycle, and code compares states with < and >=:
 *   >= CONN_AWAIT_OPEN: tune-ok is done, the negotiated frame_max applies;
 *   >= CONN_CLOSING: a close is under way (conn_close does nothing, the
 *      client's connection.close ends in FLUSHING instead of LINGER);
 *   >= CONN_LINGER: input is discarded (and EOF is the expected end).
 * A new state goes where those comparisons stay true for it; the static
 * assertion below catches a reordering. */
enum conn_state {
    CONN_AWAIT_HEADER,
    CONN_AWAIT_START_OK,
    CONN_AWAIT_TUNE_OK,
    CONN_AWAIT_OPEN,
    CONN_OPEN,
    CONN_CLOSING,  /* we sent connection.close; waiting for close-ok */
    CONN_LINGER,   /* we sent close-ok; waiting for the client to hang up */
    CONN_FLUSHING, /* writing what is left, then the socket closes */
};
_Static_assert(CONN_AWAIT_HEADER < CONN_AWAIT_START_OK &&
                   CONN_AWAIT_START_OK < CONN_AWAIT_TUNE_OK &&
                   CONN_AWAIT_TUNE_OK < CONN_AWAIT_OPEN && CONN_AWAIT_OPEN < CONN_OPEN &&
                   CONN_OPEN < CONN_CLOSING && CONN_CLOSING < CONN_LINGER &&
                   CONN_LINGER < CONN_FLUSHING,
               "conn.c compares connection states by their order");

struct conn {
    struct server *srv;
    struct conn *prev, *next;
    uint64_t id;
    char name[80]; /* "conn 7 127.0.0.1:53422" for log lines */
    bool peer_loopback;

    struct bufferevent *bev;
    enum conn_state state;
    struct event *timer;
    uint64_t last_read_ms, last_write_ms; /* monotonic_ms() */

    char user[256];
    char vhost[256];
    uint16_t channel_max;
    uint32_t frame_max;
    uint16_t heartbeat;
    bool cap_blocked;       /* client understands connection.blocked */
    bool cap_auth_close;    /* authentication_failure_close */
    bool cap_cancel_notify; /* consumer_cancel_notify */
    bool blocked_notified;  /* we sent connection.blocked */

    struct chan **chans; /* indexed by channel number, grown on demand */
    uint32_t n_chans;
    uint32_t n_over_limit; /* channels at max_unconfirmed */
    struct chan *parked;   /* a channel holding a publish the sink refused */
    uint64_t assembling;   /* body bytes announced by publishes in progress */
    uint32_t awaiting;     /* channels waiting on Kafka for a reply: frames wait too */
    bool published;        /* sent a basic.publish: Kafka back-pressure holds it */

    amqp_pool_t pool; /* decoded methods; recycled after each frame */
    bool reading;
    bool dead;
    int busy; /* >0 while inside a callback: destruction is deferred */
};

/* Accept a new socket. */
void conn_accept(struct server *srv, evutil_socket_t fd, const struct sockaddr *addr, int addrlen);

/* Close with connection.close (code >= 300), or just the socket. */
void conn_close(struct conn *c, uint16_t code, const char *text, amqp_method_number_t failing);

/* Start or stop reading the socket according to every bound; resumes
 * processing buffered frames when reading may go on. */
void conn_update_reading(struct conn *c);

/* Output buffer for frames; notes the time for heartbeats. */
struct evbuffer *conn_out(struct conn *c);

/* Tell a capable client that intake is blocked or unblocked. */
void conn_notify_blocked(struct conn *c, bool blocked);

/* Decode a method frame's arguments into c->pool, after checking its
 * tables. On failure the connection is being closed and -1 returned. */
int conn_decode_method(struct conn *c, const struct frame *f, amqp_method_number_t *id,
                       void **decoded) MUST_CHECK;

/* A channel is gone: clear its slot. */
void conn_forget_chan(struct conn *c, uint16_t id);

/* Destroy now (server shutdown). */
void conn_destroy(struct conn *c);

/* Run deferred destruction if the connection died in a callback. */
void conn_release(struct conn *c);

#endif
