/* test_conn.c - accepting a connection when libevent cannot set it up.
 *
 * Link seam: the Makefile links this test with
 * -Wl,--wrap=bufferevent_socket_new,--wrap=event_new, so hopper's calls to
 * those come here first and fail when the test asks. The server behind
 * conn_accept is real; its producer points at librdkafka's mock cluster and
 * never gets a message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "config.h"
#include "conn.h"
#include "frame.h"
#include "server.h"

static bool fail_bufferevent, fail_event;

struct bufferevent *__real_bufferevent_socket_new(struct event_base *base, evutil_socket_t fd,
                                                  int options);
struct bufferevent *__wrap_bufferevent_socket_new(struct event_base *base, evutil_socket_t fd,
                                                  int options);
struct event *__real_event_new(struct event_base *base, evutil_socket_t fd, short what,
                               event_callback_fn cb, void *arg);
struct event *__wrap_event_new(struct event_base *base, evutil_socket_t fd, short what,
                               event_callback_fn cb, void *arg);

struct bufferevent *__wrap_bufferevent_socket_new(struct event_base *base, evutil_socket_t fd,
                                                  int options)
{
    return fail_bufferevent ? NULL : __real_bufferevent_socket_new(base, fd, options);
}

struct event *__wrap_event_new(struct event_base *base, evutil_socket_t fd, short what,
                               event_callback_fn cb, void *arg)
{
    return fail_event ? NULL : __real_event_new(base, fd, what, cb, arg);
}

struct fixture {
    struct event_base *base;
    struct server *srv;
    rd_kafka_t *mock_rk;
    rd_kafka_mock_cluster_t *mock;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    char err[512];
    fx->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof err);
    assert_non_null(fx->mock_rk);
    fx->mock = rd_kafka_mock_cluster_new(fx->mock_rk, 1);
    assert_non_null(fx->mock);
    struct config *cfg = config_default();
    free(cfg->bootstrap_servers);
    cfg->bootstrap_servers = strdup(rd_kafka_mock_cluster_bootstraps(fx->mock));
    free(cfg->listen_address);
    cfg->listen_address = strdup("127.0.0.1");
    cfg->listen_port = 0; /* any free port: the test never connects to it */
    fx->base = event_base_new();
    fx->srv = server_new(fx->base, cfg, err, sizeof err);
    if (!fx->srv)
        fail_msg("server_new: %s", err);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    fail_bufferevent = fail_event = false;
    server_free(fx->srv);
    event_base_free(fx->base);
    rd_kafka_mock_cluster_destroy(fx->mock);
    rd_kafka_destroy(fx->mock_rk);
    free(fx);
    return 0;
}

/* Hand one end of a socketpair to conn_accept; returns the client's end. */
static int accept_one(struct fixture *fx)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    evutil_make_socket_nonblocking(sv[0]);
    evutil_make_socket_nonblocking(sv[1]);
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    conn_accept(fx->srv, sv[1], (struct sockaddr *)&peer, sizeof peer);
    return sv[0];
}

/* The server closed its end: the client reads EOF. A bufferevent closes
 * its socket from the loop, so the loop runs once first. */
static void expect_closed(struct fixture *fx, int fd)
{
    event_base_loop(fx->base, EVLOOP_NONBLOCK);
    struct pollfd p = {fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 1000), 1);
    char byte;
    assert_int_equal(read(fd, &byte, 1), 0);
}

/* The server still accepts and serves: a protocol header gets
 * connection.start. */
static void expect_served(struct fixture *fx)
{
    int fd = accept_one(fx);
    assert_int_equal(fx->srv->n_conns, 1);
    assert_int_equal(write(fd, FRAME_PROTOCOL_HEADER, FRAME_PROTOCOL_HEADER_LEN),
                     FRAME_PROTOCOL_HEADER_LEN);
    uint8_t buf[7];
    ssize_t n = -1;
    for (int i = 0; i < 1000 && n < 0; i++) {
        event_base_loop(fx->base, EVLOOP_NONBLOCK);
        n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EAGAIN)
            usleep(1000);
    }
    assert_int_equal(n, sizeof buf);
    assert_int_equal(buf[0], FRAME_METHOD);
    close(fd);
}

/* With *fail set, an accepted connection is refused and its socket closed;
 * the next one is served. */
static void expect_refused_then_served(struct fixture *fx, bool *fail)
{
    *fail = true;
    int fd = accept_one(fx);
    *fail = false;
    assert_int_equal(fx->srv->n_conns, 0);
    assert_null(fx->srv->conns);
    assert_int_equal(fx->srv->stats.connections_refused, 1);
    expect_closed(fx, fd);
    close(fd);
    expect_served(fx);
}

static void test_bufferevent_failure_closes_the_socket(void **state)
{
    expect_refused_then_served(*state, &fail_bufferevent);
}

static void test_timer_failure_closes_the_socket(void **state)
{
    expect_refused_then_served(*state, &fail_event);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bufferevent_failure_closes_the_socket, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_timer_failure_closes_the_socket, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
