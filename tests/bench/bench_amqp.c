/* bench_amqp.c - AMQP 0-9-1 load generator and timer on rabbitmq-c, for
 * hopper and for RabbitMQ alike.
 *
 *   bench_amqp publish [opts]   N connections x M channels publish with
 *                               confirms, a window of unconfirmed messages
 *                               per channel, at a fixed total rate or as
 *                               fast as confirms allow (or --count messages
 *                               in all, to fill a queue); prints one JSON
 *                               line: throughput and confirm latency
 *   bench_amqp consume [opts]   consume a queue and time each message end
 *                               to end: with no-ack, or with --prefetch N
 *                               (basic.qos N, each delivery acked on its
 *                               own, multiple=false) as a task queue's
 *                               worker; prints "ready" once consuming,
 *                               "first S" at the first delivery, and one
 *                               JSON line after --count messages of the run,
 *                               or after SIGTERM/SIGINT and --settle seconds
 *                               of silence (or --hold seconds, or --stall
 *                               seconds without a delivery once one came);
 *                               --delete deletes the queue afterwards
 *   bench_amqp depth --queue Q  passive queue.declare: one JSON line with
 *                               the queue's ready messages and consumers
 *                               (the bridge benchmark checks a drained
 *                               queue is empty); --delete deletes it then
 *   bench_amqp idle [opts]      open N connections with one channel each
 *                               (with --queue, each channel also consumes,
 *                               prefetch --prefetch, from the queue or from
 *                               one of --queues queues), print one JSON line
 *                               when all are open, hold them until
 *                               SIGTERM/SIGINT or --hold seconds
 *
 * --json makes every published body a JSON object of --size bytes carrying
 * the stamp in hex (bench_common.h), for message contracts.
 *
 * --queue-type transient declares the queue not durable (a transient classic
 * queue on RabbitMQ, an in-memory queue on hopper) and publishes with
 * delivery mode 1.
 *
 * One thread per publishing connection; every wait is bounded. Confirm
 * latency = confirm time - send time, delivery latency = receive time -
 * send time (see bench_common.h for the stamp and why scheduled send times
 * are used at fixed rates). */
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>

#include "bench_common.h"

struct opts {
    const char *mode;
    const char *host;
    int port;
    const char *user, *pass, *vhost;
    int conns, chans;
    struct bench_load load;
    const char *exchange, *rkey;
    bool persistent;
    const char *queue, *queue_type; /* declare (and purge) before publishing */
    bool transient;                 /* --queue-type transient: durable=0, delivery mode 1 */
    int frame_max;
    uint64_t count;    /* publish: messages in all; consume: of the run, then stop */
    int prefetch;      /* consume, idle: basic.qos and acks; 0: no-ack */
    int queues;        /* idle: consumers spread over queues <queue>-0 .. -(queues-1) */
    bool delete_queue; /* consume: queue.delete at the end */
    double stall;      /* consume: give up after this long without a delivery (0: never) */
    bool json;         /* publish: JSON bodies (bench_json_put) */
};

static struct opts O = {
    .host = "127.0.0.1",
    .port = 5672,
    .user = "guest",
    .pass = "guest",
    .vhost = "/",
    .conns = 1,
    .chans = 1,
    .load = {.window = 256, BENCH_LOAD_DEFAULTS},
    .exchange = "",
    .rkey = "bench",
    .frame_max = 131072,
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "bench_amqp: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

static const char *reply_text(amqp_rpc_reply_t r)
{
    static __thread char text[300];
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return "ok";
    case AMQP_RESPONSE_NONE:
        return "no reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return amqp_error_string2(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;
            snprintf(text, sizeof text, "connection closed: %u %.*s", m->reply_code,
                     (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            snprintf(text, sizeof text, "channel closed: %u %.*s", m->reply_code,
                     (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else {
            snprintf(text, sizeof text, "server exception 0x%08x", r.reply.id);
        }
        return text;
    }
    return "?";
}

/* Connects and logs in; NULL (with a message in err) on failure. */
static amqp_connection_state_t open_conn(int frame_max, char *err, size_t errlen)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    struct timeval tv = {10, 0};
    if (!s) {
        snprintf(err, errlen, "cannot create socket");
        amqp_destroy_connection(c);
        return NULL;
    }
    amqp_set_handshake_timeout(c, &tv);
    amqp_set_rpc_timeout(c, &tv);
    int rc = amqp_socket_open_noblock(s, O.host, O.port, &tv);
    if (rc != AMQP_STATUS_OK) {
        snprintf(err, errlen, "connect %s:%d: %s", O.host, O.port, amqp_error_string2(rc));
        amqp_destroy_connection(c);
        return NULL;
    }
    amqp_rpc_reply_t r =
        amqp_login(c, O.vhost, 0, frame_max, 0, AMQP_SASL_METHOD_PLAIN, O.user, O.pass);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(err, errlen, "login: %s", reply_text(r));
        amqp_destroy_connection(c);
        return NULL;
    }
    return c;
}

static bool open_channel(amqp_connection_state_t c, uint16_t ch, bool confirms, char *err,
                         size_t errlen)
{
    amqp_channel_open(c, ch);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(err, errlen, "channel.open %u: %s", ch, reply_text(r));
        return false;
    }
    if (confirms) {
        amqp_confirm_select(c, ch);
        r = amqp_get_rpc_reply(c);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            snprintf(err, errlen, "confirm.select %u: %s", ch, reply_text(r));
            return false;
        }
    }
    return true;
}

/* ---- publish ---- */

enum { SL_PENDING = 1, SL_MEASURED = 2 };

struct slot {
    uint64_t ns;
    uint8_t st;
};

struct pchan {
    uint16_t id;
    uint64_t next_tag; /* next delivery tag (confirm.select numbers from 1) */
    uint64_t base;     /* lowest tag possibly pending */
    uint32_t inflight;
    uint64_t mask;
    struct slot *ring;
};

struct pub {
    int index;
    pthread_t thread;
    uint64_t t_start, warm_end, t_end;
    /* results */
    struct samples confirm;
    uint64_t sent, measured_sent, acked, nacked, returned, blocked;
    uint64_t window_confirmed; /* acks that arrived inside the measured window */
    uint64_t unconfirmed;
    const char *error;
    char errbuf[300];
};

static void settle(struct pub *p, struct pchan *ch, uint64_t tag, bool ack, uint64_t now)
{
    struct slot *s = &ch->ring[tag & ch->mask];
    if (!(s->st & SL_PENDING))
        return;
    if (ack) {
        p->acked++;
        if (now >= p->warm_end && now < p->t_end)
            p->window_confirmed++;
        if (s->st & SL_MEASURED)
            samples_add(&p->confirm, now > s->ns ? now - s->ns : 0);
    } else {
        p->nacked++;
    }
    s->st = 0;
    ch->inflight--;
}

static void confirm_tags(struct pub *p, struct pchan *ch, uint64_t tag, bool multiple, bool ack)
{
    uint64_t now = bench_now_ns();
    if (tag >= ch->next_tag)
        return;
    if (multiple) {
        for (uint64_t t = ch->base; t <= tag; t++)
            settle(p, ch, t, ack, now);
    } else if (tag >= ch->base) {
        settle(p, ch, tag, ack, now);
    }
    while (ch->base < ch->next_tag && !(ch->ring[ch->base & ch->mask].st & SL_PENDING))
        ch->base++;
}

static bool has_room(const struct pchan *ch)
{
    return ch->inflight < (uint32_t)O.load.window && ch->next_tag - ch->base <= ch->mask;
}

/* Handles frames until none is buffered; the first wait is bounded by
 * timeout_ns. Returns false on a connection or channel error. */
static bool pump(struct pub *p, amqp_connection_state_t c, struct pchan *chans, uint64_t timeout_ns)
{
    /* The wait is ours: rabbitmq-c rounds timeouts to milliseconds and
     * spins on sub-millisecond ones. */
    if (timeout_ns > 0 && !amqp_frames_enqueued(c) && !amqp_data_in_buffer(c)) {
        struct pollfd pfd = {amqp_get_sockfd(c), POLLIN, 0};
        struct timespec ts = {(time_t)(timeout_ns / 1000000000ull),
                              (long)(timeout_ns % 1000000000ull)};
        if (ppoll(&pfd, 1, &ts, NULL) == 0)
            return true;
    }
    struct timeval tv = {0, 0};
    /* Then only frames already read are handled (no extra syscalls), at
     * most a bounded number, so a steady stream of confirms cannot starve
     * sending. */
    for (int k = 0; k < 4096; k++) {
        amqp_maybe_release_buffers(c);
        if (k > 0 && !amqp_frames_enqueued(c) && !amqp_data_in_buffer(c))
            break;
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(c, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            break;
        if (rc != AMQP_STATUS_OK) {
            snprintf(p->errbuf, sizeof p->errbuf, "reading: %s", amqp_error_string2(rc));
            p->error = p->errbuf;
            return false;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue; /* content of a basic.return */
        struct pchan *ch = f.channel >= 1 && f.channel <= O.chans ? &chans[f.channel - 1] : NULL;
        switch (f.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD: {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            if (ch)
                confirm_tags(p, ch, a->delivery_tag, a->multiple, true);
            break;
        }
        case AMQP_BASIC_NACK_METHOD: {
            amqp_basic_nack_t *n = f.payload.method.decoded;
            if (ch)
                confirm_tags(p, ch, n->delivery_tag, n->multiple, false);
            break;
        }
        case AMQP_BASIC_RETURN_METHOD:
            p->returned++;
            break;
        case AMQP_CONNECTION_BLOCKED_METHOD:
            p->blocked++;
            break;
        case AMQP_CONNECTION_UNBLOCKED_METHOD:
            break;
        case AMQP_CHANNEL_CLOSE_METHOD: {
            amqp_channel_close_t *m = f.payload.method.decoded;
            snprintf(p->errbuf, sizeof p->errbuf, "channel %u closed by server: %u %.*s", f.channel,
                     m->reply_code, (int)m->reply_text.len, (char *)m->reply_text.bytes);
            p->error = p->errbuf;
            return false;
        }
        case AMQP_CONNECTION_CLOSE_METHOD: {
            amqp_connection_close_t *m = f.payload.method.decoded;
            snprintf(p->errbuf, sizeof p->errbuf, "connection closed by server: %u %.*s",
                     m->reply_code, (int)m->reply_text.len, (char *)m->reply_text.bytes);
            p->error = p->errbuf;
            return false;
        }
        default:
            break;
        }
    }
    return true;
}

static void *publisher(void *arg)
{
    struct pub *p = arg;
    char err[256];
    amqp_connection_state_t c = open_conn(O.frame_max, err, sizeof err);
    if (!c) {
        snprintf(p->errbuf, sizeof p->errbuf, "%s", err);
        p->error = p->errbuf;
        return NULL;
    }
    struct pchan *chans = calloc((size_t)O.chans, sizeof *chans);
    uint64_t ring = 1;
    while (ring < 2 * (uint64_t)O.load.window)
        ring *= 2;
    for (int i = 0; i < O.chans; i++) {
        chans[i] = (struct pchan){.id = (uint16_t)(i + 1), .next_tag = 1, .base = 1};
        chans[i].mask = ring - 1;
        chans[i].ring = calloc(ring, sizeof(struct slot));
        if (!chans[i].ring || !open_channel(c, chans[i].id, true, err, sizeof err)) {
            snprintf(p->errbuf, sizeof p->errbuf, "%s", err);
            p->error = p->errbuf;
            return NULL;
        }
    }
    uint8_t *body = malloc((size_t)O.load.size);
    if (!O.json)
        bench_fill(body, (size_t)O.load.size);
    amqp_basic_properties_t props = {0};
    if (O.persistent || O.transient) {
        /* Transient: delivery mode 1 said outright, as RabbitMQ would not
         * persist a message to a non-durable queue either. */
        props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
        props.delivery_mode = O.persistent ? 2 : 1;
    }
    amqp_bytes_t xb = amqp_cstring_bytes(O.exchange), kb = amqp_cstring_bytes(O.rkey);
    amqp_bytes_t bb = {(size_t)O.load.size, body};

    double rate = O.load.rate / O.conns;
    uint64_t interval = rate > 0 ? (uint64_t)(1e9 / rate) : 0;
    /* Spread the connections' schedules over one interval. */
    uint64_t next_due = p->t_start + interval * (uint64_t)p->index / (uint64_t)O.conns;
    /* With --count, this connection's share of the messages. */
    uint64_t quota =
        O.count ? O.count / (uint64_t)O.conns + ((uint64_t)p->index < O.count % O.conns) : 0;
    uint64_t n = 0;
    int rr = 0;
    bool ok = true;
    while (ok && !stop_flag) {
        uint64_t now = bench_now_ns();
        if (now >= p->t_end || (quota && n >= quota))
            break;
        int burst = 0;
        bool room = true;
        while (burst < 256 && !(quota && n >= quota)) {
            if (interval && now < next_due)
                break;
            struct pchan *ch = NULL;
            for (int k = 0; k < O.chans; k++) {
                struct pchan *cand = &chans[(rr + k) % O.chans];
                if (has_room(cand)) {
                    ch = cand;
                    rr = (rr + k + 1) % O.chans;
                    break;
                }
            }
            if (!ch) {
                room = false;
                break;
            }
            uint64_t ts = interval ? next_due : now;
            bool measured = ts >= p->warm_end && ts < p->t_end;
            struct bench_stamp st = {BENCH_MAGIC,
                                     O.load.run,
                                     ts,
                                     (uint64_t)p->index << 40 | n,
                                     measured ? BENCH_F_MEASURED : 0,
                                     (uint32_t)O.load.size};
            if (O.json)
                bench_json_put(body, (size_t)O.load.size, &st);
            else
                bench_stamp_put(body, &st);
            uint64_t tag = ch->next_tag++;
            ch->ring[tag & ch->mask] =
                (struct slot){ts, (uint8_t)(SL_PENDING | (measured ? SL_MEASURED : 0))};
            ch->inflight++;
            int rc = amqp_basic_publish(c, ch->id, xb, kb, 0, 0, &props, bb);
            if (rc != AMQP_STATUS_OK) {
                snprintf(p->errbuf, sizeof p->errbuf, "publish: %s", amqp_error_string2(rc));
                p->error = p->errbuf;
                ok = false;
                break;
            }
            p->sent++;
            if (measured)
                p->measured_sent++;
            n++;
            burst++;
            if (interval) {
                next_due += interval;
                now = bench_now_ns();
            }
        }
        if (!ok)
            break;
        now = bench_now_ns();
        uint64_t wait;
        if (!room)
            wait = 50000000; /* window full: confirms will wake us */
        else if (interval)
            wait = next_due > now ? next_due - now : 0;
        else
            wait = 0;
        if (now + wait > p->t_end)
            wait = p->t_end > now ? p->t_end - now : 0;
        ok = pump(p, c, chans, wait);
    }
    /* Wait for the outstanding confirms, within the drain deadline. */
    uint64_t deadline = bench_now_ns() + (uint64_t)(O.load.drain * 1e9);
    while (ok) {
        uint64_t inflight = 0;
        for (int i = 0; i < O.chans; i++)
            inflight += chans[i].inflight;
        p->unconfirmed = inflight;
        uint64_t now = bench_now_ns();
        if (!inflight || now >= deadline)
            break;
        ok = pump(p, c, chans, deadline - now < 50000000 ? deadline - now : 50000000);
    }
    if (ok) {
        amqp_rpc_reply_t r = amqp_connection_close(c, AMQP_REPLY_SUCCESS);
        (void)r;
    }
    amqp_destroy_connection(c);
    for (int i = 0; i < O.chans; i++)
        free(chans[i].ring);
    free(chans);
    free(body);
    return NULL;
}

/* Declares queue q on channel 1 of c: durable, of --queue-type (an
 * argument hopper keeps and ignores), or with --queue-type transient not
 * durable and without arguments (a transient classic queue on RabbitMQ, an
 * in-memory queue on hopper; neither exclusive nor auto-delete, so the
 * filler's and the consumer's connections share it); empties it when purge
 * is set. */
static bool declare_queue_on(amqp_connection_state_t c, const char *q, bool purge, char *err,
                             size_t errlen)
{
    amqp_table_entry_t e = {amqp_cstring_bytes("x-queue-type"),
                            {AMQP_FIELD_KIND_UTF8, {.bytes = amqp_cstring_bytes(O.queue_type)}}};
    amqp_table_t args = O.transient ? amqp_empty_table : (amqp_table_t){1, &e};
    amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 0, !O.transient, 0, 0, args);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(err, errlen, "queue.declare %s: %s", q, reply_text(r));
        return false;
    }
    if (!purge)
        return true;
    amqp_queue_purge(c, 1, amqp_cstring_bytes(q));
    r = amqp_get_rpc_reply(c);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(err, errlen, "queue.purge %s: %s", q, reply_text(r));
        return false;
    }
    return true;
}

/* On a connection of its own: declare (and purge) --queue before
 * publishing, or delete it after consuming. */
static bool queue_admin(bool delete, char *err, size_t errlen)
{
    amqp_connection_state_t c = open_conn(O.frame_max, err, errlen);
    if (!c)
        return false;
    bool ok = open_channel(c, 1, false, err, errlen);
    if (ok && delete) {
        amqp_queue_delete(c, 1, amqp_cstring_bytes(O.queue), 0, 0);
        amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            snprintf(err, errlen, "queue.delete %s: %s", O.queue, reply_text(r));
            ok = false;
        }
    } else if (ok) {
        ok = declare_queue_on(c, O.queue, true, err, errlen);
    }
    if (ok)
        amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
    return ok;
}

/* Declares queue q, sets the prefetch (with acks) and starts consuming on
 * channel 1 of c. */
static bool start_consumer(amqp_connection_state_t c, const char *q, char *err, size_t errlen)
{
    if (!declare_queue_on(c, q, false, err, errlen))
        return false;
    amqp_rpc_reply_t r;
    if (O.prefetch) {
        amqp_basic_qos(c, 1, 0, (uint16_t)O.prefetch, 0);
        r = amqp_get_rpc_reply(c);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            snprintf(err, errlen, "basic.qos: %s", reply_text(r));
            return false;
        }
    }
    amqp_basic_consume(c, 1, amqp_cstring_bytes(q), amqp_empty_bytes, 0, O.prefetch == 0, 0,
                       amqp_empty_table);
    r = amqp_get_rpc_reply(c);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(err, errlen, "basic.consume %s: %s", q, reply_text(r));
        return false;
    }
    return true;
}

static int run_publish(void)
{
    if (O.load.size < BENCH_STAMP)
        die("--size must be at least %s bytes", "32");
    if (O.json && O.load.size < BENCH_JSON_MIN)
        die("--size must be at least %s bytes with --json", "128");
    if (O.count && O.count < (uint64_t)O.conns)
        die("--count must be at least %s", "--conns");
    char err[256];
    if (O.queue && !queue_admin(false, err, sizeof err))
        die("%s", err);
    struct pub *pubs = calloc((size_t)O.conns, sizeof *pubs);
    uint64_t t0 = bench_now_ns() + 200000000ull; /* connections open meanwhile */
    double cpu0 = bench_self_cpu();
    for (int i = 0; i < O.conns; i++) {
        pubs[i].index = i;
        pubs[i].t_start = t0;
        pubs[i].warm_end = t0 + (uint64_t)(O.load.warmup * 1e9);
        pubs[i].t_end = pubs[i].warm_end + (uint64_t)(O.load.duration * 1e9);
        if (pthread_create(&pubs[i].thread, NULL, publisher, &pubs[i]))
            die("%s", "pthread_create failed");
    }
    struct samples all = {0};
    uint64_t sent = 0, msent = 0, acked = 0, nacked = 0, returned = 0, blocked = 0, wc = 0,
             unconf = 0;
    const char *error = NULL;
    for (int i = 0; i < O.conns; i++) {
        pthread_join(pubs[i].thread, NULL);
        struct pub *p = &pubs[i];
        samples_merge(&all, &p->confirm);
        sent += p->sent;
        msent += p->measured_sent;
        acked += p->acked;
        nacked += p->nacked;
        returned += p->returned;
        blocked += p->blocked;
        wc += p->window_confirmed;
        unconf += p->unconfirmed;
        if (p->error && !error)
            error = p->error;
    }
    double rate = (double)wc / O.load.duration;
    printf("{\"mode\":\"publish\",\"conns\":%d,\"chans\":%d,\"window\":%d,\"rate\":%.0f,"
           "\"size\":%d,\"duration\":%.3f,\"warmup\":%.3f,\"run\":%" PRIu32 ",\"sent\":%" PRIu64
           ",\"measured_sent\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"nacked\":%" PRIu64
           ",\"returned\":%" PRIu64 ",\"blocked\":%" PRIu64 ",\"unconfirmed\":%" PRIu64
           ",\"window_confirmed\":%" PRIu64 ",\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,"
           "\"cpu_s\":%.3f,",
           O.conns, O.chans, O.load.window, O.load.rate, O.load.size, O.load.duration,
           O.load.warmup, O.load.run, sent, msent, acked, nacked, returned, blocked, unconf, wc,
           rate, rate * O.load.size / 1e6, bench_self_cpu() - cpu0);
    samples_json(stdout, "confirm", &all);
    printf(",\"error\":");
    if (error)
        printf("\"%s\"}\n", error);
    else
        printf("null}\n");
    fflush(stdout);
    free(all.v);
    return error ? 1 : 0;
}

/* ---- consume (end-to-end timer, task-queue worker) ---- */

static int run_consume(void)
{
    char err[256];
    amqp_connection_state_t c = open_conn(O.frame_max, err, sizeof err);
    if (!c)
        die("%s", err);
    if (!open_channel(c, 1, false, err, sizeof err) || !start_consumer(c, O.queue, err, sizeof err))
        die("%s", err);
    printf("ready\n");
    fflush(stdout);
    struct samples e2e = {0};
    uint64_t received = 0, measured = 0, foreign = 0, redelivered = 0, acked = 0, of_run = 0;
    uint64_t start = bench_now_ns(), hard_end = start + (uint64_t)(O.load.hold * 1e9);
    uint64_t last_msg = start, stop_at = 0, first = 0, run_first = 0, run_last = 0;
    bool stalled = false;
    const char *error = NULL;
    for (;;) {
        uint64_t now = bench_now_ns();
        if (stop_flag && !stop_at)
            stop_at = now;
        if (O.stall > 0 && first && now - last_msg > (uint64_t)(O.stall * 1e9)) {
            stalled = true;
            break;
        }
        /* After the stop request: go on until --settle seconds of silence, at
         * most 10 s. */
        if (now >= hard_end || (O.count && of_run >= O.count) ||
            (stop_at &&
             (now - last_msg > (uint64_t)(O.load.settle * 1e9) || now - stop_at > 10000000000ull)))
            break;
        struct timeval tv = {0, 100000};
        amqp_envelope_t env;
        amqp_maybe_release_buffers(c);
        amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            error = reply_text(r);
            break;
        }
        uint64_t t = bench_now_ns();
        if (!first) {
            first = t;
            printf("first %.3f\n", (t - start) / 1e9);
            fflush(stdout);
        }
        /* The worker's ack follows the delivery at once, as a task
         * consumer's would after a task of no work. */
        if (O.prefetch) {
            int rc = amqp_basic_ack(c, 1, env.delivery_tag, 0);
            if (rc != AMQP_STATUS_OK) {
                error = amqp_error_string2(rc);
                amqp_destroy_envelope(&env);
                break;
            }
            acked++;
        }
        struct bench_stamp st;
        received++;
        last_msg = t;
        if (env.redelivered)
            redelivered++;
        if (bench_stamp_get(env.message.body.bytes, env.message.body.len, O.load.run, &st)) {
            if (!of_run++)
                run_first = t;
            run_last = t;
            if (st.flags & BENCH_F_MEASURED) {
                measured++;
                samples_add(&e2e, t > st.send_ns ? t - st.send_ns : 0);
            }
        } else {
            foreign++;
        }
        amqp_destroy_envelope(&env);
    }
    if (!error)
        amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
    if (!error && O.delete_queue && !queue_admin(true, err, sizeof err))
        error = err;
    /* Throughput: the run's messages after its first, over the time from its
     * first delivery to its last. */
    double drain_s = (run_last - run_first) / 1e9;
    printf("{\"mode\":\"consume\",\"prefetch\":%d,\"received\":%" PRIu64 ",\"of_run\":%" PRIu64
           ",\"measured\":%" PRIu64 ",\"foreign\":%" PRIu64 ",\"redelivered\":%" PRIu64
           ",\"acked\":%" PRIu64 ",\"stalled\":%s,\"first_s\":%.3f,\"drain_s\":%.3f,"
           "\"msgs_per_s\":%.1f,",
           O.prefetch, received, of_run, measured, foreign, redelivered, acked,
           stalled ? "true" : "false", first ? (first - start) / 1e9 : -1.0, drain_s,
           of_run > 1 && drain_s > 0 ? (of_run - 1) / drain_s : 0.0);
    samples_json(stdout, "e2e", &e2e);
    printf(",\"error\":");
    if (error)
        printf("\"%s\"}\n", error);
    else
        printf("null}\n");
    fflush(stdout);
    free(e2e.v);
    return error ? 1 : 0;
}

/* ---- depth ---- */

static int run_depth(void)
{
    char err[256];
    amqp_connection_state_t c = open_conn(O.frame_max, err, sizeof err);
    if (!c)
        die("%s", err);
    if (!open_channel(c, 1, false, err, sizeof err))
        die("%s", err);
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(c, 1, amqp_cstring_bytes(O.queue), 1, 0, 0, 0, amqp_empty_table);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type != AMQP_RESPONSE_NORMAL || !ok) {
        printf("{\"mode\":\"depth\",\"queue\":\"%s\",\"error\":\"%s\"}\n", O.queue, reply_text(r));
        amqp_destroy_connection(c);
        return 1;
    }
    printf("{\"mode\":\"depth\",\"queue\":\"%s\",\"messages\":%" PRIu32 ",\"consumers\":%" PRIu32
           ",\"error\":null}\n",
           O.queue, ok->message_count, ok->consumer_count);
    fflush(stdout);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
    if (O.delete_queue && !queue_admin(true, err, sizeof err))
        die("%s", err);
    return 0;
}

/* ---- idle connections ---- */

struct idler {
    pthread_t thread;
    int from, to;
    amqp_connection_state_t *conns;
    int opened, failed;
    char err[256];
};

static void *idle_opener(void *arg)
{
    struct idler *w = arg;
    for (int i = w->from; i < w->to && !stop_flag; i++) {
        char err[256];
        /* The smallest frame_max keeps the client side small too. */
        amqp_connection_state_t c = open_conn(4096, err, sizeof err);
        char q[300];
        if (O.queues)
            snprintf(q, sizeof q, "%s-%d", O.queue, i % O.queues);
        else if (O.queue)
            snprintf(q, sizeof q, "%s", O.queue);
        if (c && (!open_channel(c, 1, false, err, sizeof err) ||
                  (O.queue && !start_consumer(c, q, err, sizeof err)))) {
            amqp_destroy_connection(c);
            c = NULL;
        }
        if (!c) {
            if (!w->failed)
                snprintf(w->err, sizeof w->err, "%s", err);
            w->failed++;
            continue;
        }
        w->conns[i] = c;
        w->opened++;
    }
    return NULL;
}

static int run_idle(void)
{
    rlim_t nofile = bench_raise_nofile();
    if (nofile < (rlim_t)O.conns + 64) {
        fprintf(stderr, "bench_amqp: open-file limit %llu is too low for %d connections\n",
                (unsigned long long)nofile, O.conns);
        return 1;
    }
    amqp_connection_state_t *conns = calloc((size_t)O.conns, sizeof *conns);
    enum { WORKERS = 4 };
    struct idler w[WORKERS];
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < WORKERS; i++) {
        w[i] = (struct idler){
            .from = O.conns * i / WORKERS, .to = O.conns * (i + 1) / WORKERS, .conns = conns};
        pthread_create(&w[i].thread, NULL, idle_opener, &w[i]);
    }
    int opened = 0, failed = 0;
    const char *first_err = NULL;
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(w[i].thread, NULL);
        opened += w[i].opened;
        failed += w[i].failed;
        if (w[i].failed && !first_err)
            first_err = w[i].err;
    }
    printf("{\"mode\":\"idle\",\"requested\":%d,\"opened\":%d,\"failed\":%d,\"open_s\":%.3f,"
           "\"consumers\":%d,\"queues\":%d,\"error\":",
           O.conns, opened, failed, (bench_now_ns() - t0) / 1e9, O.queue ? opened : 0,
           O.queue ? (O.queues ? O.queues : 1) : 0);
    if (first_err)
        printf("\"%s\"}\n", first_err);
    else
        printf("null}\n");
    fflush(stdout);
    /* Hold until told to stop (or the hold time passes). */
    uint64_t end = bench_now_ns() + (uint64_t)(O.load.hold * 1e9);
    while (!stop_flag && bench_now_ns() < end) {
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    /* Closing sockets is enough; the kernel does it at exit. */
    return failed ? 1 : 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_amqp publish|consume|idle|depth [options]\n"
            "  --host H --port P --user U --pass P --vhost V\n"
            "  --conns N --chans M --window W --rate R (total msg/s, 0 = max) --size BYTES\n"
            "  --duration S --warmup S --drain S --hold S --settle S --run ID --frame-max N\n"
            "  --exchange X --routing-key K --persistent\n"
            "  --queue Q [--queue-type classic|quorum|transient]  (publish: declare+purge;\n"
            "    consume; transient: not durable, published with delivery mode 1)\n"
            "  --count N (publish: in all; consume: of the run, then stop)\n"
            "  --prefetch N (consume, idle: basic.qos N and an ack per delivery; 0 = no-ack)\n"
            "  --queues K (idle: consume from Q-0 .. Q-(K-1)) --delete (consume, depth: delete Q)\n"
            "  --stall S (consume: give up after S s without a delivery once one came)\n"
            "  --json (publish: JSON bodies {\"stamp\":\"<hex>\",\"seq\":N,\"pad\":\"..\"})\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    O.mode = argv[1];
    /* clang-format off */
    static const struct option lo[] = {
        {"host", 1, 0, 'H'},
        {"port", 1, 0, 'P'},
        {"user", 1, 0, 'u'},
        {"pass", 1, 0, 'p'},
        {"vhost", 1, 0, 'V'},
        {"conns", 1, 0, 'c'},
        {"chans", 1, 0, 'm'},
        BENCH_LOAD_OPTIONS,
        {"exchange", 1, 0, 'e'},
        {"routing-key", 1, 0, 'k'},
        {"persistent", 0, 0, 'x'},
        {"queue", 1, 0, 'q'},
        {"queue-type", 1, 0, 't'},
        {"frame-max", 1, 0, 'f'},
        {"count", 1, 0, 'n'},
        {"prefetch", 1, 0, 'Q'},
        {"queues", 1, 0, 'K'},
        {"delete", 0, 0, 'D'},
        {"stall", 1, 0, 'S'},
        {"json", 0, 0, 'j'},
        {0, 0, 0, 0},
    };
    /* clang-format on */
    int opt;
    optind = 2;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'H':
            O.host = optarg;
            break;
        case 'P':
            O.port = (int)bench_num("--port", optarg, 1, 65535);
            break;
        case 'u':
            O.user = optarg;
            break;
        case 'p':
            O.pass = optarg;
            break;
        case 'V':
            O.vhost = optarg;
            break;
        case 'c':
            O.conns = (int)bench_num("--conns", optarg, 1, 100000);
            break;
        case 'm':
            O.chans = (int)bench_num("--chans", optarg, 1, 2047);
            break;
        case 'e':
            O.exchange = optarg;
            break;
        case 'k':
            O.rkey = optarg;
            break;
        case 'x':
            O.persistent = true;
            break;
        case 'q':
            O.queue = optarg;
            break;
        case 't':
            O.queue_type = optarg;
            break;
        case 'f':
            O.frame_max = (int)bench_num("--frame-max", optarg, 4096, 1 << 20);
            break;
        case 'n':
            O.count = (uint64_t)bench_num("--count", optarg, 1, 1e12);
            break;
        case 'Q':
            O.prefetch = (int)bench_num("--prefetch", optarg, 0, 65535);
            break;
        case 'K':
            O.queues = (int)bench_num("--queues", optarg, 1, 100000);
            break;
        case 'D':
            O.delete_queue = true;
            break;
        case 'S':
            O.stall = bench_num("--stall", optarg, 0, 3600);
            break;
        case 'j':
            O.json = true;
            break;
        default:
            if (!bench_load_option(&O.load, opt, optarg))
                usage();
        }
    }
    if (optind != argc)
        usage();
    if (!O.queue_type)
        O.queue_type = "classic";
    if (strcmp(O.queue_type, "classic") && strcmp(O.queue_type, "quorum") &&
        strcmp(O.queue_type, "transient"))
        die("--queue-type %s: classic, quorum or transient", O.queue_type);
    O.transient = !strcmp(O.queue_type, "transient");
    if (O.transient && O.persistent)
        die("%s", "--persistent contradicts --queue-type transient");
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(O.mode, "publish"))
        return run_publish();
    if (!strcmp(O.mode, "consume")) {
        if (!O.queue)
            usage();
        return run_consume();
    }
    if (!strcmp(O.mode, "depth")) {
        if (!O.queue)
            usage();
        return run_depth();
    }
    if (!strcmp(O.mode, "idle")) {
        if (O.queues && !O.queue)
            usage();
        return run_idle();
    }
    usage();
    return 2;
}
