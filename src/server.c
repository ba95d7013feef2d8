/* server.c - listener, connection list, confirm flushing, back-pressure and
 * the shutdown drain (see server.h). */
#include "server.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "bridge.h"
#include "chan.h"
#include "conn.h"
#include "deadletter.h"
#include "feed.h"
#include "log.h"
#include "contract.h"
#include "intake.h"
#include "publish.h"
#include "topostore.h"

static void on_resolved(void *arg, void *owner)
{
    server_mark_dirty(arg, owner);
}

/* Publishes parked on a full producer queue get another try. */
static void retry_parked(struct server *srv)
{
    for (struct conn *c = srv->conns; c; c = c->next) {
        /* Handing it over may park the channel's next (held) publish:
         * publish_retry_parked leaves c->parked as it should be. */
        if (c->parked && publish_retry_parked(c->parked))
            conn_update_reading(c);
    }
}

static void on_drained(void *arg)
{
    struct server *srv = arg;
    server_flush_confirms(srv);
    retry_parked(srv);
    bridges_kick(srv->bridges);
    server_update_blocked(srv);
}

/* A schema or an answer about a topic arrived (or did not): held
 * publishes go on. */
static void answered(void *arg)
{
    intake_release_all(arg);
    server_update_blocked(arg);
}

static void on_hold_tick(evutil_socket_t fd, short what, void *arg)
{
    answered(arg);
}

static void transient_eased(void *arg)
{
    server_update_blocked(arg);
}

static bool dead_letter(void *arg, struct feed_msg *m, const char *vhost, const char *queue,
                        const char *reason)
{
    struct server *srv = arg;
    return deadletter(srv->deadletters, m, vhost, queue, reason);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
                      int addrlen, void *arg)
{
    conn_accept(arg, fd, addr, addrlen);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    /* EMFILE and friends: log and keep going; the listener stays armed. */
    log_error("accept: %s", strerror(errno));
}

static struct evconnlistener *listen_on(struct server *srv, char *err, size_t errlen)
{
    const struct config *cfg = srv->cfg;
    char port[8];
    snprintf(port, sizeof port, "%u", cfg->listen_port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res;
    int rc = getaddrinfo(cfg->listen_address, port, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "listen.address %s: %s", cfg->listen_address, gai_strerror(rc));
        return NULL;
    }
    /* With a topology store the port is bound now (an error shows at
     * startup) but nothing is accepted until the store is loaded. */
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC |
                     (srv->store ? LEV_OPT_DISABLED : 0);
    struct evconnlistener *l = evconnlistener_new_bind(srv->base, on_accept, srv, flags, 511,
                                                       res->ai_addr, (int)res->ai_addrlen);
    if (!l)
        snprintf(err, errlen, "cannot listen on %s:%u: %s", cfg->listen_address, cfg->listen_port,
                 strerror(errno));
    else
        evconnlistener_set_error_cb(l, on_accept_error);
    freeaddrinfo(res);
    return l;
}

/* The durable topology is loaded, or its deadline passed: clients may come. */
static void topology_loaded(struct server *srv)
{
    if (!srv->draining && evconnlistener_enable(srv->listener))
        log_error("cannot accept connections: libevent could not enable the listener");
}

struct server *server_new(struct event_base *base, struct config *cfg, char *err, size_t errlen)
{
    struct server *srv = xcalloc(1, sizeof *srv);
    srv->base = base;
    srv->cfg = cfg;
    srv->router = router_new(cfg);
    srv->topo = topology_new(cfg);
    if (cfg->rabbit_enabled) {
        srv->feeds = feeds_new(base, cfg, srv->topo, srv->router);
        srv->deadletters = deadletters_new(srv);
        struct feeds_hooks hooks = {transient_eased, dead_letter, srv};
        feeds_set_hooks(srv->feeds, &hooks);
    }
    /* Publishes wait for schemas and for answers about topics. */
    srv->hold_timer = event_new(base, -1, EV_PERSIST, on_hold_tick, srv);
    if (!srv->hold_timer) {
        snprintf(err, errlen, "cannot make the timer of held publishes");
        server_free(srv);
        return NULL;
    }
    if (*cfg->registry_url) {
        srv->contracts = contracts_new(base, cfg, answered, srv, err, errlen);
        if (!srv->contracts || contracts_preflight(cfg, srv->contracts, err, errlen)) {
            server_free(srv);
            return NULL;
        }
    }
    struct sink_callbacks cb = {
        .resolved = on_resolved, .drained = on_drained, .arg = srv, .topics_known = answered};
    srv->sink = sink_new(base, cfg, &cb, err, errlen);
    if (srv->sink && cfg->rabbit_enabled &&
        !(srv->store = topostore_new(srv, topology_loaded, err, errlen))) {
        server_free(srv);
        return NULL;
    }
    if (!srv->sink || !(srv->listener = listen_on(srv, err, errlen))) {
        server_free(srv);
        return NULL;
    }
    srv->bridges = bridges_new(srv);
    return srv;
}

void server_free(struct server *srv)
{
    if (!srv)
        return;
    if (srv->listener)
        evconnlistener_free(srv->listener);
    while (srv->conns)
        conn_destroy(srv->conns);
    bridges_free(srv->bridges);
    /* After the connections: their channels gave back what they held; the
     * dead letters not persisted go back before their feeds go. */
    deadletters_free(srv->deadletters);
    topostore_free(srv->store);
    feeds_free(srv->feeds);
    sink_free(srv->sink);
    contracts_free(srv->contracts);
    if (srv->hold_timer)
        event_free(srv->hold_timer);
    topology_free(srv->topo);
    router_free(srv->router);
    buf_free(&srv->scratch);
    buf_free(&srv->key_scratch);
    buf_free(&srv->contract_scratch);
    free(srv->dirty);
    config_free(srv->cfg);
    free(srv);
}

void server_mark_dirty(struct server *srv, struct confirm_owner *o)
{
    if (o->dirty)
        return;
    o->dirty = true;
    if (srv->n_dirty == srv->cap_dirty) {
        srv->cap_dirty = srv->cap_dirty ? srv->cap_dirty * 2 : 64;
        srv->dirty = xrealloc(srv->dirty, srv->cap_dirty * sizeof *srv->dirty);
    }
    srv->dirty[srv->n_dirty++] = o;
}

void server_forget_owner(struct server *srv, struct confirm_owner *o)
{
    if (!o->dirty)
        return;
    for (size_t i = 0; i < srv->n_dirty; i++) {
        if (srv->dirty[i] == o) {
            srv->dirty[i] = srv->dirty[--srv->n_dirty];
            break;
        }
    }
    o->dirty = false;
}

void server_flush_confirms(struct server *srv)
{
    /* Flushing may not mark owners dirty, so the list is stable here. */
    for (size_t i = 0; i < srv->n_dirty; i++) {
        struct confirm_owner *o = srv->dirty[i];
        o->dirty = false;
        o->flush(o);
    }
    srv->n_dirty = 0;
}

static bool transient_full(const struct server *srv)
{
    return srv->feeds && feeds_transient_full(srv->feeds);
}

/* Held publishes (intake.h) may take a quarter of the in-flight bound. */
static bool held_full(const struct server *srv)
{
    return srv->held_bytes >= srv->cfg->max_inflight_bytes / 4;
}

bool server_busy(const struct server *srv)
{
    return sink_in_flight(srv->sink) || srv->n_holding;
}

static void set_blocked(struct server *srv, bool blocked)
{
    srv->blocked = blocked;
    if (blocked && transient_full(srv))
        log_warn("transient queues hold rabbit.max_transient_bytes: blocking publishers");
    else if (blocked)
        log_warn("kafka has %zu messages in flight, over limits.max_inflight_bytes: blocking "
                 "publishers",
                 sink_in_flight(srv->sink));
    else
        log_info("kafka backlog and transient queues back under their bounds: unblocking "
                 "publishers");
    for (struct conn *c = srv->conns; c; c = c->next) {
        c->busy++;
        conn_notify_blocked(c, blocked);
        conn_update_reading(c);
        c->busy--;
    }
    bridges_kick(srv->bridges);
}

void server_update_blocked(struct server *srv)
{
    if (!srv->blocked && (sink_over_limit(srv->sink) || transient_full(srv) || held_full(srv)))
        set_blocked(srv, true);
    else if (srv->blocked && sink_under_resume(srv->sink) && !transient_full(srv) &&
             !held_full(srv))
        set_blocked(srv, false);
}

void server_begin_drain(struct server *srv)
{
    srv->draining = true;
    evconnlistener_disable(srv->listener);
    log_info("shutting down: no new connections or messages; %zu messages in flight",
             sink_in_flight(srv->sink));
    for (struct conn *c = srv->conns; c; c = c->next)
        conn_update_reading(c);
    bridges_begin_drain(srv->bridges);
}

void server_finish_drain(struct server *srv)
{
    while (srv->holding)
        intake_drop(srv->holding);
    sink_abandon(srv->sink);
    server_flush_confirms(srv);
    bridges_finish_drain(srv->bridges);
    struct conn *next;
    for (struct conn *c = srv->conns; c; c = next) {
        next = c->next;
        if (c->state == CONN_OPEN)
            conn_close(c, AMQP_CONNECTION_FORCED,
                       "CONNECTION_FORCED - broker forced connection closure with reason "
                       "'shutdown'",
                       0);
        else
            conn_close(c, 0, NULL, 0);
        conn_release(c);
    }
}
