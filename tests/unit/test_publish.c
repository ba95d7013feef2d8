/* test_publish.c - the whole publish path in one process: a scripted AMQP
 * client on a socketpair talks to a real server (conn, chan, router,
 * record, sink) whose producer points at librdkafka's mock cluster.
 *
 * The mock cluster only adds error paths and a fast, hermetic check of
 * publish assembly; the integration suite proves the same against a real
 * 3-node Kafka cluster. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>

#include <event2/event.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "chan.h"
#include "config.h"
#include "conn.h"
#include "frame.h"
#include "partition.h"
#include "record_view.h"
#include "server.h"
#include "sink.h"

#define TOPIC "orders"
#define DEADLINE_MS 15000

struct fixture {
    struct event_base *base;
    struct server *srv;
    rd_kafka_t *mock_rk;
    rd_kafka_mock_cluster_t *mock;
    int fd; /* client end of the socketpair */
    struct evbuffer *in;
    amqp_pool_t pool;
    unsigned seed;
};

/* The next this many rd_kafka_new() calls fail, as they would if the
 * process ran out of threads or memory (the Makefile links this test with
 * ld --wrap=rd_kafka_new). */
static int failing_builds;

rd_kafka_t *__real_rd_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *errstr,
                                size_t errstr_size);
rd_kafka_t *__wrap_rd_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *errstr,
                                size_t errstr_size);

rd_kafka_t *__wrap_rd_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *errstr,
                                size_t errstr_size)
{
    if (failing_builds > 0) {
        failing_builds--;
        snprintf(errstr, errstr_size, "simulated: cannot create thread");
        return NULL;
    }
    return __real_rd_kafka_new(type, conf, errstr, errstr_size);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pump(struct fixture *fx)
{
    event_base_loop(fx->base, EVLOOP_NONBLOCK);
}

/* Write bytes to the server in random pieces, running the loop between. */
static void send_split(struct fixture *fx, const uint8_t *p, size_t len)
{
    while (len) {
        size_t n = 1 + (size_t)rand_r(&fx->seed) % 97;
        if (n > len)
            n = len;
        ssize_t w = write(fx->fd, p, n);
        if (w > 0) {
            p += w;
            len -= (size_t)w;
        }
        pump(fx);
    }
}

static void send_buffer(struct fixture *fx, struct evbuffer *b)
{
    size_t len = evbuffer_get_length(b);
    send_split(fx, evbuffer_pullup(b, (ev_ssize_t)len), len);
    evbuffer_drain(b, len);
}

static void send_method(struct fixture *fx, uint16_t ch, amqp_method_number_t id, void *m)
{
    struct evbuffer *b = evbuffer_new();
    assert_int_equal(frame_put_method(b, ch, id, m), 0);
    send_buffer(fx, b);
    evbuffer_free(b);
}

/* Publish with its body split into body frames of at most `chunk` bytes. */
static void send_publish(struct fixture *fx, uint16_t ch, const char *exchange, const char *rk,
                         const amqp_basic_properties_t *props, const void *body, size_t len,
                         uint32_t chunk)
{
    amqp_basic_publish_t pub = {0, amqp_cstring_bytes(exchange), amqp_cstring_bytes(rk), 0, 0};
    amqp_basic_properties_t none = {0};
    struct evbuffer *b = evbuffer_new();
    assert_int_equal(frame_put_method(b, ch, AMQP_BASIC_PUBLISH_METHOD, &pub), 0);
    assert_int_equal(
        frame_put_content(b, ch, props ? props : &none, NULL, 0, body, len, chunk + FRAME_OVERHEAD),
        0);
    send_buffer(fx, b);
    evbuffer_free(b);
}

/* Wait for the next frame from the server (heartbeats skipped). */
static struct frame next_frame(struct fixture *fx)
{
    uint64_t deadline = now_ms() + DEADLINE_MS;
    for (;;) {
        struct frame f;
        enum frame_status st = frame_peek(fx->in, 1 << 20, &f);
        if (st == FRAME_OK && f.type != FRAME_HEARTBEAT)
            return f;
        if (st == FRAME_OK) {
            frame_drain(fx->in, &f);
            continue;
        }
        assert_int_equal(st, FRAME_INCOMPLETE);
        pump(fx);
        uint8_t buf[65536];
        ssize_t n = read(fx->fd, buf, sizeof buf);
        if (n > 0)
            evbuffer_add(fx->in, buf, (size_t)n);
        else
            usleep(1000);
        if (now_ms() > deadline)
            fail_msg("no frame from the server within %d ms", DEADLINE_MS);
    }
}

/* The next method frame from the server, decoded into fx->pool. */
static void *next_method(struct fixture *fx, uint16_t *ch, amqp_method_number_t *id)
{
    struct frame f = next_frame(fx);
    assert_int_equal(f.type, FRAME_METHOD);
    *ch = f.channel;
    *id = (amqp_method_number_t)f.payload[0] << 24 | (amqp_method_number_t)f.payload[1] << 16 |
          (amqp_method_number_t)f.payload[2] << 8 | f.payload[3];
    void *m = NULL;
    assert_int_equal(
        amqp_decode_method(*id, &fx->pool, (amqp_bytes_t){f.size - 4, (void *)(f.payload + 4)}, &m),
        0);
    /* Decoded byte fields point into the frame: only tests that read no
     * strings after the next frame arrives rely on them. */
    frame_drain(fx->in, &f);
    return m;
}

/* Wait for method `want` on channel `want_ch`; returns its arguments. */
static void *expect_method(struct fixture *fx, uint16_t want_ch, amqp_method_number_t want)
{
    uint16_t ch;
    amqp_method_number_t id;
    void *m = next_method(fx, &ch, &id);
    if (id != want)
        fail_msg("expected %s, got %s", amqp_method_name(want), amqp_method_name(id));
    assert_int_equal(ch, want_ch);
    return m;
}

static void handshake(struct fixture *fx)
{
    send_split(fx, (const uint8_t *)FRAME_PROTOCOL_HEADER, FRAME_PROTOCOL_HEADER_LEN);
    expect_method(fx, 0, AMQP_CONNECTION_START_METHOD);
    amqp_connection_start_ok_t so = {
        .client_properties = {0, NULL},
        .mechanism = amqp_cstring_bytes("PLAIN"),
        .response = {12, "\0guest\0guest"},
        .locale = amqp_cstring_bytes("en_US"),
    };
    send_method(fx, 0, AMQP_CONNECTION_START_OK_METHOD, &so);
    amqp_connection_tune_t *tune = expect_method(fx, 0, AMQP_CONNECTION_TUNE_METHOD);
    assert_int_equal(tune->frame_max, 131072);
    amqp_connection_tune_ok_t tok = {2047, 131072, 0};
    send_method(fx, 0, AMQP_CONNECTION_TUNE_OK_METHOD, &tok);
    amqp_connection_open_t open = {amqp_cstring_bytes("/"), amqp_empty_bytes, 0};
    send_method(fx, 0, AMQP_CONNECTION_OPEN_METHOD, &open);
    expect_method(fx, 0, AMQP_CONNECTION_OPEN_OK_METHOD);
    amqp_channel_open_t co = {amqp_empty_bytes};
    send_method(fx, 1, AMQP_CHANNEL_OPEN_METHOD, &co);
    expect_method(fx, 1, AMQP_CHANNEL_OPEN_OK_METHOD);
    amqp_exchange_declare_t xd = {
        0, amqp_cstring_bytes(TOPIC), amqp_cstring_bytes("topic"), 0, 1, 0, 0, 0, {0, NULL}};
    send_method(fx, 1, AMQP_EXCHANGE_DECLARE_METHOD, &xd);
    expect_method(fx, 1, AMQP_EXCHANGE_DECLARE_OK_METHOD);
    amqp_confirm_select_t cs = {0};
    send_method(fx, 1, AMQP_CONFIRM_SELECT_METHOD, &cs);
    expect_method(fx, 1, AMQP_CONFIRM_SELECT_OK_METHOD);
}

/* props: NULL, or librdkafka properties as name, value, ..., NULL. */
static int setup_with(void **state, const char *const *props)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    fx->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(fx->mock_rk);
    fx->mock = rd_kafka_mock_cluster_new(fx->mock_rk, 3);
    assert_non_null(fx->mock);
    assert_int_equal(rd_kafka_mock_topic_create(fx->mock, TOPIC, 3, 3), 0);

    struct config *cfg = config_default();
    free(cfg->bootstrap_servers);
    cfg->bootstrap_servers = strdup(rd_kafka_mock_cluster_bootstraps(fx->mock));
    free(cfg->listen_address);
    cfg->listen_address = strdup("127.0.0.1");
    cfg->listen_port = 0; /* any free port: the test never connects to it */
    cfg->auto_create_topics = false;
    /* The exchange the tests declare, in the config too: its topic is the
     * operator's, so the topic rule lets it through without asking the
     * mock cluster (which does not answer DescribeTopics). */
    cfg->exchanges = calloc(1, sizeof *cfg->exchanges);
    cfg->exchanges[0] = (struct exchange_cfg){strdup(TOPIC), strdup("/"), EXCHANGE_TOPIC, -1, NULL};
    cfg->n_exchanges = 1;
    for (size_t i = 0; props && props[i]; i += 2) {
        cfg->kafka_props = realloc(cfg->kafka_props, (i / 2 + 1) * sizeof *cfg->kafka_props);
        cfg->kafka_props[i / 2] = (struct kv){strdup(props[i]), strdup(props[i + 1])};
        cfg->n_kafka_props = i / 2 + 1;
    }
    fx->base = event_base_new();
    fx->srv = server_new(fx->base, cfg, err, sizeof err);
    if (!fx->srv)
        fail_msg("server_new: %s", err);

    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    evutil_make_socket_nonblocking(sv[0]);
    evutil_make_socket_nonblocking(sv[1]);
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    conn_accept(fx->srv, sv[1], (struct sockaddr *)&peer, sizeof peer);
    fx->fd = sv[0];
    fx->in = evbuffer_new();
    init_amqp_pool(&fx->pool, 4096);
    fx->seed = 7;
    *state = fx;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, NULL);
}

/* The batch producer would hold a batch for a minute. */
static int setup_long_linger(void **state)
{
    static const char *const props[] = {"linger.ms", "60000", NULL};
    return setup_with(state, props);
}

/* hopper relearns partition counts with a probe every 100 ms. */
static int setup_fast_refresh(void **state)
{
    static const char *const props[] = {"topic.metadata.refresh.interval.ms", "100", NULL};
    return setup_with(state, props);
}

static int setup_short_timeout(void **state)
{
    static const char *const props[] = {"message.timeout.ms", "2000", NULL};
    return setup_with(state, props);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    close(fx->fd);
    server_free(fx->srv);
    event_base_free(fx->base);
    rd_kafka_mock_cluster_destroy(fx->mock);
    rd_kafka_destroy(fx->mock_rk);
    evbuffer_free(fx->in);
    empty_amqp_pool(&fx->pool);
    free(fx);
    return 0;
}

/* Collect acks/nacks until every tag 1..n has an outcome; outcome[t] is
 * 'a' or 'n'. Fails if a tag is covered twice or a cumulative frame would
 * cover a tag of the other kind. */
static void collect_confirms(struct fixture *fx, uint64_t n, char *outcome)
{
    memset(outcome, 0, n + 1);
    uint64_t settled = 0, low = 1;
    while (settled < n) {
        uint16_t ch;
        amqp_method_number_t id;
        void *m = next_method(fx, &ch, &id);
        uint64_t tag = 0;
        bool multiple = false;
        char kind = 0;
        if (id == AMQP_BASIC_ACK_METHOD) {
            tag = ((amqp_basic_ack_t *)m)->delivery_tag;
            multiple = ((amqp_basic_ack_t *)m)->multiple;
            kind = 'a';
        } else if (id == AMQP_BASIC_NACK_METHOD) {
            tag = ((amqp_basic_nack_t *)m)->delivery_tag;
            multiple = ((amqp_basic_nack_t *)m)->multiple;
            kind = 'n';
        } else {
            fail_msg("unexpected %s", amqp_method_name(id));
        }
        assert_true(tag >= 1 && tag <= n);
        for (uint64_t t = multiple ? low : tag; t <= tag; t++) {
            if (!outcome[t]) {
                outcome[t] = kind;
                settled++;
            } else if (multiple) {
                assert_int_equal(outcome[t], kind); /* never spans the other kind */
            } else {
                fail_msg("tag %llu confirmed twice", (unsigned long long)t);
            }
        }
        while (low <= n && outcome[low])
            low++;
    }
}

/* Consume `n` records of TOPIC from the mock cluster into out[]; the
 * caller hands them back with close_consumer(). */
static rd_kafka_t *consume(struct fixture *fx, size_t n, rd_kafka_message_t **out)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", rd_kafka_mock_cluster_bootstraps(fx->mock), err,
                      sizeof err);
    rd_kafka_conf_set(conf, "group.id", "test", err, sizeof err);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null(c);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(3);
    for (int p = 0; p < 3; p++)
        rd_kafka_topic_partition_list_add(parts, TOPIC, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(c, parts), 0);
    rd_kafka_topic_partition_list_destroy(parts);
    size_t got = 0;
    uint64_t deadline = now_ms() + DEADLINE_MS;
    while (got < n && now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (m && !m->err)
            out[got++] = m;
        else if (m)
            rd_kafka_message_destroy(m);
    }
    assert_int_equal(got, n);
    return c;
}

static void close_consumer(rd_kafka_t *c, rd_kafka_message_t **msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rd_kafka_message_destroy(msgs[i]);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
}

/* Read `n` records of TOPIC back from the mock cluster. */
static void read_back(struct fixture *fx, size_t n, char values[][64], char keys[][64])
{
    rd_kafka_message_t **msgs = calloc(n, sizeof *msgs);
    rd_kafka_t *c = consume(fx, n, msgs);
    for (size_t i = 0; i < n; i++) {
        snprintf(values[i], 64, "%.*s", (int)msgs[i]->len, (char *)msgs[i]->payload);
        snprintf(keys[i], 64, "%.*s", (int)msgs[i]->key_len, (char *)msgs[i]->key);
    }
    close_consumer(c, msgs, n);
    free(msgs);
}

/* Read n records back: those with key `key` must be "<prefix> 00",
 * "<prefix> 01", ... in that order, `count` of them. */
static void assert_key_in_order(struct fixture *fx, size_t n, const char *key, const char *prefix,
                                int count)
{
    char(*values)[64] = calloc(n, sizeof *values);
    char(*keys)[64] = calloc(n, sizeof *keys);
    read_back(fx, n, values, keys);
    int next = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(keys[i], key))
            continue;
        char want[64];
        snprintf(want, sizeof want, "%s %02d", prefix, next++);
        assert_string_equal(values[i], want);
    }
    assert_int_equal(next, count);
    free(values);
    free(keys);
}

static bool contains(char arr[][64], size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(arr[i], s))
            return true;
    return false;
}

/* Bodies split over several body frames, the byte stream in random pieces:
 * every message confirmed, every record intact. */
static void test_publish_assembled_and_confirmed(void **state)
{
    struct fixture *fx = *state;
    handshake(fx);
    enum { N = 20 };
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_CONTENT_TYPE_FLAG,
                                     .content_type = amqp_cstring_bytes("text/plain")};
    for (int i = 0; i < N; i++) {
        char body[64], rk[32];
        snprintf(body, sizeof body, "message number %02d, split into small frames", i);
        snprintf(rk, sizeof rk, "key.%d", i % 4);
        send_publish(fx, 1, TOPIC, rk, &props, body, strlen(body), 1 + (uint32_t)i % 9);
    }
    char outcome[N + 1];
    collect_confirms(fx, N, outcome);
    for (int t = 1; t <= N; t++)
        assert_int_equal(outcome[t], 'a');
    char values[N][64], keys[N][64];
    read_back(fx, N, values, keys);
    for (int i = 0; i < N; i++) {
        char body[64];
        snprintf(body, sizeof body, "message number %02d, split into small frames", i);
        assert_true(contains(values, N, body));
    }
    assert_true(contains(keys, N, "key.3"));
}

/* A message Kafka refuses for good is nacked, and no cumulative ack covers
 * it; the ones around it are acked. */
static void test_refused_message_is_nacked(void **state)
{
    struct fixture *fx = *state;
    handshake(fx);
    /* Publish one, let it settle, then make the next Produce fail with a
     * non-retriable error. */
    send_publish(fx, 1, TOPIC, "k", NULL, "first", 5, 100);
    char outcome[4];
    collect_confirms(fx, 1, outcome);
    assert_int_equal(outcome[1], 'a');
    rd_kafka_mock_push_request_errors(fx->mock, 0 /* ApiKey Produce */, 1,
                                      RD_KAFKA_RESP_ERR_INVALID_RECORD);
    send_publish(fx, 1, TOPIC, "k", NULL, "second", 6, 100);
    amqp_basic_nack_t *m = expect_method(fx, 1, AMQP_BASIC_NACK_METHOD);
    assert_int_equal(m->delivery_tag, 2);
    assert_false(m->multiple);
    send_publish(fx, 1, TOPIC, "k", NULL, "third", 5, 100);
    amqp_basic_ack_t *ack = expect_method(fx, 1, AMQP_BASIC_ACK_METHOD);
    assert_int_equal(ack->delivery_tag, 3);
    assert_false(ack->multiple); /* a cumulative ack would cover the nacked 2 */
}

/* A fatal producer error nacks what is in flight, rebuilds the producer,
 * and later publishes are acked again. */
static void test_fatal_error_rebuilds(void **state)
{
    struct fixture *fx = *state;
    handshake(fx);
    /* Hold produce responses back so messages are in flight. */
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_rtt(fx->mock, b, 2000);
    send_publish(fx, 1, TOPIC, "k1", NULL, "in flight 1", 11, 100);
    send_publish(fx, 1, TOPIC, "k2", NULL, "in flight 2", 11, 100);
    uint64_t deadline = now_ms() + DEADLINE_MS;
    while (sink_in_flight(fx->srv->sink) < 2 && now_ms() < deadline)
        pump(fx);
    assert_int_equal(sink_in_flight(fx->srv->sink), 2);
    sink_inject_fatal(fx->srv->sink, "test");
    char outcome[3];
    collect_confirms(fx, 2, outcome);
    assert_int_equal(outcome[1], 'n');
    assert_int_equal(outcome[2], 'n');
    assert_int_equal(sink_stats(fx->srv->sink)->fatal_rebuilds, 1);
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_rtt(fx->mock, b, 0);
    send_publish(fx, 1, TOPIC, "k3", NULL, "after rebuild", 13, 100);
    amqp_basic_ack_t *ack = expect_method(fx, 1, AMQP_BASIC_ACK_METHOD);
    assert_int_equal(ack->delivery_tag, 3);
}

/* A producer rebuild that fails does not stop hopper: publishes are nacked
 * while there is no producer, and a retry builds one. */
static void test_failed_rebuild_nacks_then_retries(void **state)
{
    struct fixture *fx = *state;
    handshake(fx);
    send_publish(fx, 1, TOPIC, "k1", NULL, "before", 6, 100);
    expect_method(fx, 1, AMQP_BASIC_ACK_METHOD);
    failing_builds = 1; /* the first of the two producers */
    sink_inject_fatal(fx->srv->sink, "test");
    uint64_t deadline = now_ms() + DEADLINE_MS;
    while (failing_builds && now_ms() < deadline)
        pump(fx);
    assert_int_equal(failing_builds, 0);
    send_publish(fx, 1, TOPIC, "k2", NULL, "no producer", 11, 100);
    amqp_basic_nack_t *nack = expect_method(fx, 1, AMQP_BASIC_NACK_METHOD);
    assert_int_equal(nack->delivery_tag, 2);
    assert_int_equal(sink_stats(fx->srv->sink)->fatal_rebuilds, 0);
    /* The retry comes from the sink's timer within about a second. */
    deadline = now_ms() + DEADLINE_MS;
    while (!sink_stats(fx->srv->sink)->fatal_rebuilds && now_ms() < deadline)
        pump(fx);
    assert_int_equal(sink_stats(fx->srv->sink)->fatal_rebuilds, 1);
    send_publish(fx, 1, TOPIC, "k3", NULL, "rebuilt", 7, 100);
    amqp_basic_ack_t *ack = expect_method(fx, 1, AMQP_BASIC_ACK_METHOD);
    assert_int_equal(ack->delivery_tag, 3);
}

/* Publish one message and wait until Kafka has answered for it: hopper
 * then knows the topic's partition count and partitions by itself. */
static void learn_partitions(struct fixture *fx)
{
    send_publish(fx, 1, TOPIC, "learn", NULL, "learn", 5, 100);
    uint64_t deadline = now_ms() + DEADLINE_MS;
    while (sink_in_flight(fx->srv->sink) && now_ms() < deadline)
        pump(fx);
    assert_int_equal(sink_in_flight(fx->srv->sink), 0);
}

/* The partition gate: while a partition's request is out, later messages
 * for it wait in hopper, then go over as one batch when it is answered;
 * all are confirmed and land in publish order. */
static void test_partition_gate_batches_while_a_request_is_out(void **state)
{
    struct fixture *fx = *state;
    handshake(fx);
    learn_partitions(fx);
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_rtt(fx->mock, b, 500);
    enum { N = 40 };
    for (int i = 0; i < N; i++) {
        char body[32];
        snprintf(body, sizeof body, "same key %02d", i);
        send_publish(fx, 1, TOPIC, "same", NULL, body, strlen(body), 100);
    }
    char outcome[N + 2];
    collect_confirms(fx, N + 1, outcome);
    for (int t = 1; t <= N + 1; t++)
        assert_int_equal(outcome[t], 'a');
    const struct sink_stats *st = sink_stats(fx->srv->sink);
    assert_int_equal(st->held, N - 1); /* all but the first waited */
    assert_int_equal(st->batches_released, 1);
    assert_int_equal(st->handed[1], N - 1); /* too many for the prompt producer */
    assert_key_in_order(fx, N + 1, "same", "same key", N);
}

/* A message to a partition with nothing in flight goes to the prompt
 * producer and is sent at once: with the batch producer lingering for a
 * minute, it is still confirmed. So are small releases (at most five). */
static void test_idle_partition_sends_at_once(void **state)
{
    struct fixture *fx = *state;
    handshake(fx);
    learn_partitions(fx);
    assert_int_equal(
        ((amqp_basic_ack_t *)expect_method(fx, 1, AMQP_BASIC_ACK_METHOD))->delivery_tag, 1);
    const struct sink_stats *st = sink_stats(fx->srv->sink);
    uint64_t prompt0 = st->handed[0], batch0 = st->handed[1];
    for (int i = 0; i < 3; i++) {
        send_publish(fx, 1, TOPIC, "one", NULL, "alone", 5, 100);
        amqp_basic_ack_t *ack = expect_method(fx, 1, AMQP_BASIC_ACK_METHOD);
        assert_int_equal(ack->delivery_tag, 2 + (uint64_t)i);
    }
    /* One in flight, four held behind it: five in two releases. */
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_rtt(fx->mock, b, 300);
    for (int i = 0; i < 5; i++)
        send_publish(fx, 1, TOPIC, "five", NULL, "small release", 13, 100);
    char outcome[10];
    collect_confirms(fx, 9, outcome);
    for (int t = 5; t <= 9; t++)
        assert_int_equal(outcome[t], 'a');
    assert_int_equal(st->handed[0] - prompt0, 8);
    assert_int_equal(st->handed[1] - batch0, 0);
    assert_int_equal(st->batches_released, 1);
}

/* The message that relearns a topic's partition count goes over
 * unpartitioned; while its partition has a batch in the batch producer, it
 * must follow that batch there, or librdkafka could write it first.
 *
 * Timing: the first of the seven goes over as a probe (the count is known,
 * none was sent yet) and the others wait behind it, then go over as a
 * batch; on a slow machine one of them may go over alone first. Either way
 * a batch is in the batch producer for the RTT (400 ms; much longer times
 * out the 100 ms metadata refreshes), and a probe is due again (100 ms
 * after the last, which was answered before the batch went): the next
 * message must join the batch there. */
static void test_relearning_probe_follows_its_partition(void **state)
{
    struct fixture *fx = *state;
    handshake(fx);
    learn_partitions(fx);
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_rtt(fx->mock, b, 400);
    enum { N = 8 };
    for (int i = 0; i < N - 1; i++) {
        char body[32];
        snprintf(body, sizeof body, "keyed %02d", i);
        send_publish(fx, 1, TOPIC, "same", NULL, body, strlen(body), 100);
    }
    /* All handed over (the learning message too), some in a batch. */
    const struct sink_stats *st = sink_stats(fx->srv->sink);
    uint64_t deadline = now_ms() + DEADLINE_MS;
    while ((st->handed[0] + st->handed[1] < N || !st->handed[1]) && now_ms() < deadline)
        pump(fx);
    if (st->handed[0] + st->handed[1] != N || !st->handed[1])
        fail_msg("handed over: %" PRIu64 " prompt, %" PRIu64 " batched, of %d", st->handed[0],
                 st->handed[1], N);
    uint64_t prompt = st->handed[0], batched = st->handed[1];
    send_publish(fx, 1, TOPIC, "same", NULL, "keyed 07", 8, 100);
    assert_int_equal(st->handed[0], prompt);
    assert_int_equal(st->handed[1], batched + 1);
    char outcome[N + 2];
    collect_confirms(fx, N + 1, outcome);
    for (int t = 1; t <= N + 1; t++)
        assert_int_equal(outcome[t], 'a');
    assert_key_in_order(fx, N + 1, "same", "keyed", N);
}

/* A topic that a broker's metadata briefly lacks (a new one, not yet on
 * every broker): librdkafka 2.8 takes it for gone and fails its
 * partitions' queued messages locally. hopper puts them back in their
 * partition's queue and hands them over again once the topic is back: all
 * confirmed, in order, none nacked. */
static void test_lost_partition_is_retried_not_nacked(void **state)
{
    struct fixture *fx = *state;
    handshake(fx);
    learn_partitions(fx);
    assert_int_equal(
        ((amqp_basic_ack_t *)expect_method(fx, 1, AMQP_BASIC_ACK_METHOD))->delivery_tag, 1);
    /* With its leader down the partition's messages wait in librdkafka's
     * queue. */
    int32_t p = partition_of_key(partition_default(), "same", 4, 3);
    rd_kafka_mock_partition_set_leader(fx->mock, TOPIC, p, 1);
    rd_kafka_mock_broker_set_down(fx->mock, 1);
    enum { N = 6 };
    for (int i = 0; i < N; i++) {
        char body[32];
        snprintf(body, sizeof body, "lost %02d", i);
        send_publish(fx, 1, TOPIC, "same", NULL, body, strlen(body), 100);
    }
    rd_kafka_mock_topic_set_error(fx->mock, TOPIC, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    const struct sink_stats *st = sink_stats(fx->srv->sink);
    uint64_t deadline = now_ms() + DEADLINE_MS;
    while (!st->requeued && now_ms() < deadline)
        pump(fx);
    assert_true(st->requeued > 0);
    rd_kafka_mock_topic_set_error(fx->mock, TOPIC, RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_mock_broker_set_up(fx->mock, 1);
    char outcome[N + 2];
    collect_confirms(fx, N + 1, outcome);
    for (int t = 2; t <= N + 1; t++)
        assert_int_equal(outcome[t], 'a');
    assert_key_in_order(fx, N + 1, "same", "lost", N);
}

/* Messages held behind a batch that times out are nacked with it, not
 * handed over for a second message.timeout.ms. */
static void test_held_messages_nacked_when_their_partition_times_out(void **state)
{
    struct fixture *fx = *state;
    handshake(fx);
    learn_partitions(fx);
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_down(fx->mock, b);
    enum { N = 10 };
    for (int i = 0; i < N; i++)
        send_publish(fx, 1, TOPIC, "same", NULL, "unreachable", 11, 100);
    char outcome[N + 2];
    collect_confirms(fx, N + 1, outcome);
    assert_int_equal(outcome[1], 'a');
    for (int t = 2; t <= N + 1; t++)
        assert_int_equal(outcome[t], 'n');
    const struct sink_stats *st = sink_stats(fx->srv->sink);
    assert_int_equal(st->held, N - 1);
    assert_int_equal(st->batches_released, 0); /* nacked where they waited */
    assert_int_equal(sink_in_flight(fx->srv->sink), 0);
}

/* Unknown exchange: channel.close 404; the connection goes on. */
static void test_unknown_exchange_closes_channel(void **state)
{
    struct fixture *fx = *state;
    handshake(fx);
    send_publish(fx, 1, "no-such-exchange", "k", NULL, "x", 1, 100);
    amqp_channel_close_t *cl = expect_method(fx, 1, AMQP_CHANNEL_CLOSE_METHOD);
    assert_int_equal(cl->reply_code, 404);
    assert_int_equal(cl->method_id, AMQP_BASIC_PUBLISH_METHOD & 0xffff);
    send_method(fx, 1, AMQP_CHANNEL_CLOSE_OK_METHOD, NULL);
    amqp_channel_open_t co = {amqp_empty_bytes};
    send_method(fx, 2, AMQP_CHANNEL_OPEN_METHOD, &co);
    expect_method(fx, 2, AMQP_CHANNEL_OPEN_OK_METHOD);
}

/* A body frame longer than the header announced is a connection error. */
static void test_body_overrun_closes_connection(void **state)
{
    struct fixture *fx = *state;
    handshake(fx);
    amqp_basic_publish_t pub = {0, amqp_cstring_bytes(TOPIC), amqp_cstring_bytes("k"), 0, 0};
    struct evbuffer *b = evbuffer_new();
    assert_int_equal(frame_put_method(b, 1, AMQP_BASIC_PUBLISH_METHOD, &pub), 0);
    /* Header says 3 bytes; the body frame carries 5. */
    uint8_t hdr[] = {FRAME_HEADER, 0, 1, 0, 0, 0, 14, 0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0,
                     FRAME_END};
    uint8_t body[] = {FRAME_BODY, 0, 1, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o', FRAME_END};
    evbuffer_add(b, hdr, sizeof hdr);
    evbuffer_add(b, body, sizeof body);
    send_buffer(fx, b);
    evbuffer_free(b);
    amqp_connection_close_t *cl = expect_method(fx, 0, AMQP_CONNECTION_CLOSE_METHOD);
    assert_int_equal(cl->reply_code, 501);
}

static bool bytes_are(amqp_bytes_t b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.bytes, s, b.len) == 0;
}

/* record_view over consumed messages: hopper's record gives back the
 * publisher's property bytes, exchange and routing key (an application
 * header named amqp.properties does not confuse it); a record another
 * producer wrote is foreign, with its topic, key, timestamp and headers. */
static void test_records_read_back_for_delivery(void **state)
{
    struct fixture *fx = *state;
    handshake(fx);
    amqp_table_entry_t inner[] = {
        {amqp_cstring_bytes("n"), {.kind = AMQP_FIELD_KIND_I32, .value.i32 = -7}}};
    amqp_table_entry_t app[] = {
        {amqp_cstring_bytes("amqp.properties"),
         {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("not hopper's")}},
        {amqp_cstring_bytes("nested"), {.kind = AMQP_FIELD_KIND_TABLE, .value.table = {1, inner}}},
    };
    amqp_basic_properties_t props = {
        ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_HEADERS_FLAG |
                  AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                  AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_APP_ID_FLAG,
        .content_type = amqp_cstring_bytes("application/json"),
        .headers = {2, app},
        .delivery_mode = 1,
        .message_id = amqp_cstring_bytes("msg-1"),
        .timestamp = 1600000000,
        .app_id = amqp_cstring_bytes("shop"),
    };
    send_publish(fx, 1, TOPIC, "rk.1", &props, "published", 9, 100);
    char outcome[2];
    collect_confirms(fx, 1, outcome);
    assert_int_equal(outcome[1], 'a');

    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", rd_kafka_mock_cluster_bootstraps(fx->mock), err,
                      sizeof err);
    rd_kafka_t *other = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(other);
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, "trace", -1, "t-1", -1);
    rd_kafka_header_add(h, "null", -1, NULL, 0);
    assert_int_equal(rd_kafka_producev(other, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_KEY("order-7", 7),
                                       RD_KAFKA_V_VALUE("foreign", 7),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_TIMESTAMP(1700000000123), RD_KAFKA_V_HEADERS(h),
                                       RD_KAFKA_V_END),
                     0);
    assert_int_equal(rd_kafka_flush(other, DEADLINE_MS), 0);
    rd_kafka_destroy(other);

    uint8_t wire[1024];
    int n = amqp_encode_properties(AMQP_BASIC_CLASS, &props, (amqp_bytes_t){sizeof wire, wire});
    assert_true(n > 0);
    const struct record_decode_opts o = {.key_as_message_id = true, .max_table_depth = 16};
    rd_kafka_message_t *msgs[2];
    rd_kafka_t *c = consume(fx, 2, msgs);
    for (int i = 0; i < 2; i++) {
        struct record_view v;
        assert_int_equal(record_view(msgs[i], &o, &fx->pool, &v), 0);
        const amqp_basic_properties_t *p = &v.props;
        if (msgs[i]->len == 9) { /* "published" */
            assert_false(v.foreign);
            assert_int_equal(v.exchange_len, strlen(TOPIC));
            assert_memory_equal(v.exchange, TOPIC, strlen(TOPIC));
            assert_int_equal(v.routing_key_len, 4);
            assert_memory_equal(v.routing_key, "rk.1", 4);
            assert_int_equal(v.raw_props_len, (size_t)n);
            assert_memory_equal(v.raw_props, wire, (size_t)n);
            assert_int_equal(p->_flags, props._flags);
            assert_true(bytes_are(p->message_id, "msg-1")); /* not the key */
            assert_int_equal(p->timestamp, 1600000000);
            assert_int_equal(p->headers.num_entries, 2);
            assert_int_equal(p->headers.entries[1].value.value.table.entries[0].value.value.i32,
                             -7);
        } else {
            assert_true(v.foreign);
            assert_int_equal(v.exchange_len, 0);
            assert_int_equal(v.routing_key_len, strlen(TOPIC));
            assert_memory_equal(v.routing_key, TOPIC, strlen(TOPIC));
            assert_int_equal(p->_flags, AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                                            AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG);
            assert_int_equal(p->delivery_mode, 2);
            assert_true(bytes_are(p->message_id, "order-7"));
            assert_int_equal(p->timestamp, 1700000000);
            assert_int_equal(p->headers.num_entries, 2);
            assert_true(bytes_are(p->headers.entries[0].key, "trace"));
            assert_int_equal(p->headers.entries[0].value.kind, AMQP_FIELD_KIND_UTF8);
            assert_true(bytes_are(p->headers.entries[0].value.value.bytes, "t-1"));
            assert_true(bytes_are(p->headers.entries[1].key, "null"));
            assert_int_equal(p->headers.entries[1].value.kind, AMQP_FIELD_KIND_VOID);
        }
    }
    close_consumer(c, msgs, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publish_assembled_and_confirmed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_message_is_nacked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fatal_error_rebuilds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_rebuild_nacks_then_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_partition_sends_at_once, setup_long_linger,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_relearning_probe_follows_its_partition,
                                        setup_fast_refresh, teardown),
        /* hopper's 2 s metadata refresh: the message goes to its partition
         * and comes back; 100 ms: it is a relearning probe, unpartitioned. */
        cmocka_unit_test_setup_teardown(test_lost_partition_is_retried_not_nacked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_partition_is_retried_not_nacked,
                                        setup_fast_refresh, teardown),
        cmocka_unit_test_setup_teardown(test_partition_gate_batches_while_a_request_is_out, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_held_messages_nacked_when_their_partition_times_out,
                                        setup_short_timeout, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_exchange_closes_channel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_overrun_closes_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_read_back_for_delivery, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
