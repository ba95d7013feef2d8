/* bench_kafka.c - the Kafka side of the benchmark, on librdkafka.
 *
 *   bench_kafka create  --topic T [--partitions 3 --rf 3 --min-isr 2]
 *       (every benchmark topic keeps at most BENCH_RETENTION_BYTES per
 *       partition, see there)
 *   bench_kafka delete  --topic T
 *   bench_kafka produce --topic T [opts]   the direct-producer baseline:
 *       idempotent, acks=all, the same stamped bodies as bench_amqp, a
 *       window of unacknowledged messages, fixed rate or max; one JSON line
 *       (confirm latency = delivery report time - send time, counted only
 *       when the report says PERSISTED, as hopper does)
 *   bench_kafka consume --topic T --run ID   the end-to-end timer: assigns
 *       every partition at its end, prints "ready", then times each
 *       message of the run (receive time - send time) until SIGTERM/SIGINT
 *       (then --settle seconds of silence, at most 10 s) or --hold seconds; one JSON line
 *       With --from-start it reads the topic from its beginning; with
 *       --count N it also counts the run's distinct messages and
 *       duplicates (by sequence number: N messages sent by --senders
 *       bench_amqp connections, as bench_amqp publish --count N --conns K
 *       numbers them), stops once all N are in and --settle seconds passed
 *       without a record (at most 10 s more; duplicates still count), or
 *       after --stall seconds without a record once one came, and says when
 *       the last one came in, in CLOCK_MONOTONIC nanoseconds; --progress S prints
 *       "progress DISTINCT MEASURED" every S seconds (distinct messages
 *       with --count, else 0; messages timed so far)
 *   bench_kafka coordinator --topic T   waits (up to --hold seconds) until a
 *       consumer group's coordinator answers an offset fetch for T: on a
 *       cluster just made, __consumer_offsets is created on the first
 *       group request and loaded after that
 *
 * Bodies carry the stamp of bench_common.h; the timer also finds it in the
 * records hopper writes for JSON bodies under a contract (the JSON text,
 * behind a Confluent frame, or Avro binary). Everything waits with a bound. */
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "bench_common.h"

struct opts {
    const char *mode;
    const char *brokers;
    const char *topic;
    int partitions, rf, min_isr;
    struct bench_load load;
    const char *linger;
    int with_key;
    bool from_start;
    uint64_t count;  /* consume: distinct messages of the run to wait for */
    int senders;     /* consume with --count: bench_amqp connections that sent them */
    double stall;    /* consume with --count: give up after this long without a record */
    double progress; /* consume: seconds between "progress" lines (0: none) */
};

static struct opts O = {
    .brokers = "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094",
    .partitions = 3,
    .rf = 3,
    .min_isr = 2,
    .load = {.window = 4096, BENCH_LOAD_DEFAULTS},
    .linger = "1",
    .senders = 1,
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_kafka: %s: %s\n", what, why);
    exit(1);
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK)
        die(k, err);
}

static rd_kafka_t *new_client(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
    char err[512];
    set(conf, "bootstrap.servers", O.brokers);
    set(conf, "log_level", "4");
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
    if (!rk)
        die("rd_kafka_new", err);
    return rk;
}

/* Partition count of the topic once every partition has a leader; waits
 * up to timeout_ms. */
static int topic_partitions(rd_kafka_t *rk, int timeout_ms)
{
    uint64_t end = bench_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, O.topic, NULL);
    int n = -1;
    while (bench_now_ns() < end) {
        const struct rd_kafka_metadata *md;
        if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
                md->topics[0].partition_cnt > 0) {
                bool leaders = true;
                for (int i = 0; i < md->topics[0].partition_cnt; i++)
                    if (md->topics[0].partitions[i].leader < 0)
                        leaders = false;
                if (leaders)
                    n = md->topics[0].partition_cnt;
            }
            rd_kafka_metadata_destroy(md);
        }
        if (n > 0)
            break;
        struct timespec ts = {0, 200000000};
        nanosleep(&ts, NULL);
    }
    rd_kafka_topic_destroy(rkt);
    return n;
}

/* ---- create / delete ---- */

/* A benchmark topic's disk is bounded. On a quiet machine the full run's
 * max-rate rounds wrote 76 GB into its two topics and filled the disk
 * (2026-12-07). Kafka deletes whole segments past retention.bytes, at its
 * broker's log.retention.check.interval.ms (bench.py sets 10 s on the
 * cluster it starts; Kafka's default is 5 minutes), and removes their files
 * file.delete.delay.ms later (60 s by default, 1 s here: at 50 MB/s into a
 * partition a minute is 3 GB). Every reader of a benchmark topic stays far
 * less than retention.bytes behind the log's end. */
#define BENCH_RETENTION_BYTES "536870912"
#define BENCH_SEGMENT_BYTES "134217728"
#define BENCH_FILE_DELETE_DELAY_MS "1000"

static int run_admin(bool create)
{
    rd_kafka_t *rk = new_client(RD_KAFKA_PRODUCER, rd_kafka_conf_new());
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    char err[256], num[16];
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ANY);
    rd_kafka_AdminOptions_set_operation_timeout(ao, 30000, err, sizeof err);
    rd_kafka_AdminOptions_set_request_timeout(ao, 30000, err, sizeof err);
    if (create) {
        rd_kafka_NewTopic_t *nt =
            rd_kafka_NewTopic_new(O.topic, O.partitions, O.rf, err, sizeof err);
        if (!nt)
            die("NewTopic", err);
        snprintf(num, sizeof num, "%d", O.min_isr);
        rd_kafka_NewTopic_set_config(nt, "min.insync.replicas", num);
        rd_kafka_NewTopic_set_config(nt, "retention.bytes", BENCH_RETENTION_BYTES);
        rd_kafka_NewTopic_set_config(nt, "segment.bytes", BENCH_SEGMENT_BYTES);
        rd_kafka_NewTopic_set_config(nt, "file.delete.delay.ms", BENCH_FILE_DELETE_DELAY_MS);
        rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
        rd_kafka_NewTopic_destroy(nt);
    } else {
        rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(O.topic);
        rd_kafka_DeleteTopics(rk, &dt, 1, ao, q);
        rd_kafka_DeleteTopic_destroy(dt);
    }
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 60000);
    if (!ev)
        die(O.topic, "no admin result within 60 s");
    if (rd_kafka_event_error(ev))
        die(O.topic, rd_kafka_event_error_string(ev));
    const rd_kafka_topic_result_t **res;
    size_t n;
    if (create)
        res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    else
        res = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR ||
            (create && e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) ||
            (!create && e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART))
            continue;
        fprintf(stderr, "bench_kafka: %s %s: %s\n", create ? "create" : "delete", O.topic,
                rd_kafka_topic_result_error_string(res[i]));
        rc = 1;
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(ao);
    if (create && rc == 0 && topic_partitions(rk, 30000) < 0) {
        fprintf(stderr, "bench_kafka: %s: no leaders after 30 s\n", O.topic);
        rc = 1;
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- produce (direct baseline) ---- */

struct prod {
    uint64_t warm_end, t_end;
    uint64_t inflight, sent, measured_sent, acked, nacked, window_confirmed;
    struct samples confirm;
    rd_kafka_resp_err_t last_err;
};

static struct prod P;

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    uint64_t now = bench_now_ns();
    P.inflight--;
    if (m->err || rd_kafka_message_status(m) != RD_KAFKA_MSG_STATUS_PERSISTED) {
        P.nacked++;
        P.last_err = m->err;
        return;
    }
    P.acked++;
    if (now >= P.warm_end && now < P.t_end)
        P.window_confirmed++;
    struct bench_stamp st;
    if (bench_stamp_get(m->payload, m->len, O.load.run, &st) && (st.flags & BENCH_F_MEASURED))
        samples_add(&P.confirm, now > st.send_ns ? now - st.send_ns : 0);
}

/* Waits for the main queue's wake-up pipe at most timeout_ns, then serves
 * every delivery report queued. */
static void serve(rd_kafka_t *rk, int fd, uint64_t timeout_ns)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    struct timespec ts = {(time_t)(timeout_ns / 1000000000ull), (long)(timeout_ns % 1000000000ull)};
    if (ppoll(&pfd, 1, &ts, NULL) > 0) {
        char junk[256];
        while (read(fd, junk, sizeof junk) > 0)
            ;
    }
    while (rd_kafka_poll(rk, 0) > 0)
        ;
}

static int run_produce(void)
{
    if (O.load.size < BENCH_STAMP)
        die("--size", "must be at least 32 bytes");
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char num[32];
    set(conf, "enable.idempotence", "true");
    set(conf, "acks", "all");
    set(conf, "partitioner", "murmur2_random");
    set(conf, "linger.ms", O.linger);
    set(conf, "socket.nagle.disable", "true");
    set(conf, "queue.buffering.max.messages", "2000000");
    set(conf, "queue.buffering.max.kbytes", "2097151");
    snprintf(num, sizeof num, "%d", O.load.size + (1 << 20));
    set(conf, "message.max.bytes", num);
    rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
    rd_kafka_t *rk = new_client(RD_KAFKA_PRODUCER, conf);
    int pipefd[2];
    if (pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) == -1)
        die("pipe", strerror(errno));
    rd_kafka_queue_t *mainq = rd_kafka_queue_get_main(rk);
    rd_kafka_queue_io_event_enable(mainq, pipefd[1], "1", 1);
    if (topic_partitions(rk, 30000) < 0)
        die(O.topic, "topic not available");
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, O.topic, NULL);

    uint8_t *body = malloc((size_t)O.load.size);
    bench_fill(body, (size_t)O.load.size);
    double cpu0 = bench_self_cpu();
    uint64_t t_start = bench_now_ns();
    P.warm_end = t_start + (uint64_t)(O.load.warmup * 1e9);
    P.t_end = P.warm_end + (uint64_t)(O.load.duration * 1e9);
    uint64_t interval = O.load.rate > 0 ? (uint64_t)(1e9 / O.load.rate) : 0;
    uint64_t next_due = t_start, n = 0;
    const char *error = NULL;
    char errbuf[256];
    while (!stop_flag && !error) {
        uint64_t now = bench_now_ns();
        if (now >= P.t_end)
            break;
        int burst = 0;
        while (burst < 256 && P.inflight < (uint64_t)O.load.window) {
            if (interval && now < next_due)
                break;
            uint64_t ts = interval ? next_due : now;
            bool measured = ts >= P.warm_end && ts < P.t_end;
            struct bench_stamp st = {.magic = BENCH_MAGIC,
                                     .run = O.load.run,
                                     .send_ns = ts,
                                     .seq = n,
                                     .flags = measured ? BENCH_F_MEASURED : 0,
                                     .size = (uint32_t)O.load.size};
            bench_stamp_put(body, &st);
            char key[16];
            int klen = O.with_key ? snprintf(key, sizeof key, "k%d", (int)(n % 64)) : 0;
            if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, body,
                                 (size_t)O.load.size, klen ? key : NULL, (size_t)klen,
                                 NULL) == -1) {
                rd_kafka_resp_err_t e = rd_kafka_last_error();
                if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                    break;
                snprintf(errbuf, sizeof errbuf, "produce: %s", rd_kafka_err2str(e));
                error = errbuf;
                break;
            }
            P.inflight++;
            P.sent++;
            if (measured)
                P.measured_sent++;
            n++;
            burst++;
            if (interval) {
                next_due += interval;
                now = bench_now_ns();
            }
        }
        now = bench_now_ns();
        uint64_t wait;
        if (P.inflight >= (uint64_t)O.load.window)
            wait = 50000000;
        else if (interval)
            wait = next_due > now ? next_due - now : 0;
        else
            wait = 0;
        if (now + wait > P.t_end)
            wait = P.t_end > now ? P.t_end - now : 0;
        serve(rk, pipefd[0], wait);
    }
    uint64_t deadline = bench_now_ns() + (uint64_t)(O.load.drain * 1e9);
    while (P.inflight && bench_now_ns() < deadline)
        serve(rk, pipefd[0], 50000000);
    double rate = (double)P.window_confirmed / O.load.duration;
    printf("{\"mode\":\"produce\",\"window\":%d,\"rate\":%.0f,\"size\":%d,\"duration\":%.3f,"
           "\"warmup\":%.3f,\"run\":%" PRIu32 ",\"linger_ms\":\"%s\",\"sent\":%" PRIu64
           ",\"measured_sent\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"nacked\":%" PRIu64
           ",\"unconfirmed\":%" PRIu64 ",\"window_confirmed\":%" PRIu64
           ",\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,\"cpu_s\":%.3f,",
           O.load.window, O.load.rate, O.load.size, O.load.duration, O.load.warmup, O.load.run,
           O.linger, P.sent, P.measured_sent, P.acked, P.nacked, P.inflight, P.window_confirmed,
           rate, rate * O.load.size / 1e6, bench_self_cpu() - cpu0);
    samples_json(stdout, "confirm", &P.confirm);
    if (!error && P.nacked) {
        snprintf(errbuf, sizeof errbuf, "%" PRIu64 " not persisted, last: %s", P.nacked,
                 rd_kafka_err2str(P.last_err));
        error = errbuf;
    }
    printf(",\"error\":");
    if (error)
        printf("\"%s\"}\n", error);
    else
        printf("null}\n");
    fflush(stdout);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_queue_io_event_enable(mainq, -1, NULL, 0);
    rd_kafka_queue_destroy(mainq);
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(rk, 5000);
    rd_kafka_destroy(rk);
    free(body);
    return error ? 1 : 0;
}

/* ---- consume (end-to-end timer, drain counter) ---- */

/* Distinct messages of a run seen so far (--count): one bit each. Sender i
 * of K numbers its share of N as i << 40 | 0.., with shares of N / K
 * messages, the first N % K senders one more (bench_amqp publish). */
struct seen {
    uint8_t *bits;
    uint64_t n, per, distinct, dups, out_of_range;
};

static void seen_add(struct seen *s, uint64_t seq)
{
    uint64_t sender = seq >> 40, i = seq & ((1ull << 40) - 1);
    if (i >= s->per) {
        s->out_of_range++;
        return;
    }
    seq = sender * s->per + i;
    if (seq >= s->n) {
        s->out_of_range++;
        return;
    }
    uint8_t m = (uint8_t)(1u << (seq & 7));
    if (s->bits[seq >> 3] & m) {
        s->dups++;
        return;
    }
    s->bits[seq >> 3] |= m;
    s->distinct++;
}

static int run_consume(void)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char group[64];
    snprintf(group, sizeof group, "hopper-bench-e2e-%d", (int)getpid());
    set(conf, "group.id", group);
    set(conf, "enable.auto.commit", "false");
    set(conf, "enable.auto.offset.store", "false");
    set(conf, "fetch.wait.max.ms", "100");
    set(conf, "socket.nagle.disable", "true");
    rd_kafka_t *rk = new_client(RD_KAFKA_CONSUMER, conf);
    int np = topic_partitions(rk, 30000);
    if (np < 0)
        die(O.topic, "topic not available");
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(np);
    for (int i = 0; i < np; i++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, O.topic, i, &lo, &hi, 10000);
        if (e)
            die("query_watermark_offsets", rd_kafka_err2str(e));
        rd_kafka_topic_partition_list_add(parts, O.topic, i)->offset = O.from_start ? lo : hi;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
    if (e)
        die("assign", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(parts);
    uint64_t per = (O.count + (uint64_t)O.senders - 1) / (uint64_t)O.senders;
    struct seen seen = {.n = per * (uint64_t)O.senders, .per = per};
    if (O.count && !(seen.bits = calloc((size_t)(seen.n + 7) / 8, 1)))
        die("--count", "out of memory");
    printf("ready\n");
    fflush(stdout);

    struct samples e2e = {0};
    uint64_t received = 0, measured = 0, foreign = 0, errors = 0;
    uint64_t start = bench_now_ns(), hard_end = start + (uint64_t)(O.load.hold * 1e9);
    uint64_t last_msg = start, stop_at = 0, first_ns = 0, last_ns = 0, all_ns = 0;
    uint64_t next_progress = start;
    bool stalled = false;
    for (;;) {
        uint64_t now = bench_now_ns();
        if (stop_flag && !stop_at)
            stop_at = now;
        if (O.progress > 0 && now >= next_progress) {
            printf("progress %" PRIu64 " %" PRIu64 "\n", seen.distinct, measured);
            fflush(stdout);
            next_progress = now + (uint64_t)(O.progress * 1e9);
        }
        if (O.count && seen.distinct >= O.count && !stop_at)
            stop_at = now;
        if (O.count && O.stall > 0 && first_ns && now - last_msg > (uint64_t)(O.stall * 1e9)) {
            stalled = true;
            break;
        }
        if (now >= hard_end || (stop_at && (now - last_msg > (uint64_t)(O.load.settle * 1e9) ||
                                            now - stop_at > 10000000000ull)))
            break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        uint64_t t = bench_now_ns();
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                errors++;
            rd_kafka_message_destroy(m);
            continue;
        }
        received++;
        last_msg = t;
        struct bench_stamp st;
        if (bench_stamp_get(m->payload, m->len, O.load.run, &st)) {
            if (!first_ns)
                first_ns = t;
            last_ns = t;
            if (O.count) {
                seen_add(&seen, st.seq);
                if (seen.distinct == O.count && !all_ns)
                    all_ns = t;
            }
            if (st.flags & BENCH_F_MEASURED) {
                measured++;
                samples_add(&e2e, t > st.send_ns ? t - st.send_ns : 0);
            }
        } else {
            foreign++;
        }
        rd_kafka_message_destroy(m);
    }
    printf("{\"mode\":\"consume\",\"topic\":\"%s\",\"received\":%" PRIu64 ",\"measured\":%" PRIu64
           ",\"foreign\":%" PRIu64 ",\"errors\":%" PRIu64 ",",
           O.topic, received, measured, foreign, errors);
    if (O.count)
        printf("\"count\":%" PRIu64 ",\"distinct\":%" PRIu64 ",\"duplicates\":%" PRIu64
               ",\"out_of_range\":%" PRIu64 ",\"stalled\":%s,\"start_ns\":%" PRIu64
               ",\"first_ns\":%" PRIu64 ",\"last_ns\":%" PRIu64 ",\"all_ns\":%" PRIu64 ",",
               O.count, seen.distinct, seen.dups, seen.out_of_range, stalled ? "true" : "false",
               start, first_ns, last_ns, all_ns);
    samples_json(stdout, "e2e", &e2e);
    printf(",\"error\":null}\n");
    fflush(stdout);
    free(seen.bits);
    free(e2e.v);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}

/* ---- coordinator: the cluster serves consumer groups ---- */

static int run_coordinator(void)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "group.id", "hopper-bench-coordinator");
    set(conf, "enable.auto.commit", "false");
    rd_kafka_t *rk = new_client(RD_KAFKA_CONSUMER, conf);
    uint64_t start = bench_now_ns(), end = start + (uint64_t)(O.load.hold * 1e9);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    int tries = 0;
    while (!stop_flag && bench_now_ns() < end) {
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(parts, O.topic, 0);
        e = rd_kafka_committed(rk, parts, 5000);
        if (!e)
            e = parts->elems[0].err;
        rd_kafka_topic_partition_list_destroy(parts);
        tries++;
        if (!e)
            break;
        struct timespec ts = {0, 500000000};
        nanosleep(&ts, NULL);
    }
    printf("{\"mode\":\"coordinator\",\"tries\":%d,\"wait_s\":%.3f,\"error\":", tries,
           (bench_now_ns() - start) / 1e9);
    if (e)
        printf("\"%s\"}\n", rd_kafka_err2str(e));
    else
        printf("null}\n");
    fflush(stdout);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return e ? 1 : 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_kafka create|delete|produce|consume|coordinator --topic T [options]\n"
            "       bench_kafka version\n"
            "  --brokers LIST --partitions N --rf N --min-isr N\n"
            "  --window N --rate R (msg/s, 0 = max) --size BYTES --duration S --warmup S\n"
            "  --drain S --hold S --settle S --run ID --linger MS --keyed\n"
            "  consume: --from-start --count N --senders K --stall S --progress S\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    O.mode = argv[1];
    if (!strcmp(O.mode, "version")) {
        printf("%s\n", rd_kafka_version_str());
        return 0;
    }
    static const struct option lo[] = {
        {"brokers", 1, 0, 'b'},    {"topic", 1, 0, 't'},
        {"partitions", 1, 0, 'n'}, {"rf", 1, 0, 'f'},
        {"min-isr", 1, 0, 'i'},    {"linger", 1, 0, 'l'},
        {"keyed", 0, 0, 'k'},      {"from-start", 0, 0, 'F'},
        {"count", 1, 0, 'c'},      {"stall", 1, 0, 'S'},
        {"progress", 1, 0, 'P'},   {"senders", 1, 0, 'K'},
        BENCH_LOAD_OPTIONS,        {0, 0, 0, 0},
    };
    int opt;
    optind = 2;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'b':
            O.brokers = optarg;
            break;
        case 't':
            O.topic = optarg;
            break;
        case 'n':
            O.partitions = (int)bench_num("--partitions", optarg, 1, 10000);
            break;
        case 'f':
            O.rf = (int)bench_num("--rf", optarg, 1, 100);
            break;
        case 'i':
            O.min_isr = (int)bench_num("--min-isr", optarg, 1, 100);
            break;
        case 'l':
            O.linger = optarg;
            break;
        case 'k':
            O.with_key = 1;
            break;
        case 'F':
            O.from_start = true;
            break;
        case 'c':
            O.count = (uint64_t)bench_num("--count", optarg, 1, 1e10);
            break;
        case 'S':
            O.stall = bench_num("--stall", optarg, 0, 3600);
            break;
        case 'K':
            O.senders = (int)bench_num("--senders", optarg, 1, 100000);
            break;
        case 'P':
            O.progress = bench_num("--progress", optarg, 0.05, 60);
            break;
        default:
            if (!bench_load_option(&O.load, opt, optarg))
                usage();
        }
    }
    if (optind != argc || !O.topic)
        usage();
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (!strcmp(O.mode, "create"))
        return run_admin(true);
    if (!strcmp(O.mode, "delete"))
        return run_admin(false);
    if (!strcmp(O.mode, "produce"))
        return run_produce();
    if (!strcmp(O.mode, "consume"))
        return run_consume();
    if (!strcmp(O.mode, "coordinator"))
        return run_coordinator();
    usage();
    return 2;
}
