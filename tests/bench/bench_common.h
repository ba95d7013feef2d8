/* bench_common.h - shared by the benchmark tools (bench_amqp, bench_kafka):
 * the message body layout, clocks, latency samples and their percentiles,
 * and small helpers for option parsing and JSON output.
 *
 * Every benchmark message body starts with a 32-byte stamp, so any of the
 * tools can time a message another one sent:
 *
 *   0  u32 magic BENCH_MAGIC
 *   4  u32 run id (chosen by the driver; messages of other runs are ignored)
 *   8  u64 send time, CLOCK_MONOTONIC nanoseconds (system-wide on Linux, so
 *        a consumer in another process on the same machine can subtract it)
 *  16  u64 sequence number (unique within a run: sender index << 40 | n)
 *  24  u32 flags: BENCH_F_MEASURED when sent inside the measured window
 *  28  u32 body size
 *  32  filler up to the body size
 *
 * Fields are in host byte order: sender and receiver are on one machine.
 * At fixed rates the send time is the scheduled one, not the moment the
 * bytes left: a sender that falls behind charges the delay to latency
 * (no coordinated omission).
 *
 * JSON bodies (bench_amqp publish --json, for message contracts) carry the
 * same 32 bytes as 64 lowercase hex characters, in one JSON object of
 * exactly the body size:
 *
 *   {"stamp":"<64 hex>","seq":N,"pad":"abcd..."}
 *
 * stamp first, so that whatever hopper makes of the body the hex sits
 * within the record's first bytes: at 10 in the JSON text, at 15 behind a
 * Confluent frame (byte 0 + 4-byte schema id), at 7 in Avro binary behind
 * the frame (the string's zigzag varint length, 2 bytes for 64, then the
 * characters). bench_stamp_get reads all of these. */
#ifndef HOPPER_BENCH_COMMON_H
#define HOPPER_BENCH_COMMON_H

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define BENCH_MAGIC 0x314e4248u /* "HBN1" */
#define BENCH_STAMP 32
#define BENCH_F_MEASURED 1u

struct bench_stamp {
    uint32_t magic;
    uint32_t run;
    uint64_t send_ns;
    uint64_t seq;
    uint32_t flags;
    uint32_t size;
};

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void bench_stamp_put(uint8_t *body, const struct bench_stamp *s)
{
    memcpy(body, s, sizeof *s);
}

/* JSON bodies: the hex stamp is looked for at offsets 0..BENCH_HEX_SCAN of
 * a record; the JSON text needs bodies of at least BENCH_JSON_MIN bytes
 * (the object around the stamp with a 20-digit seq and an empty pad). */
#define BENCH_HEX_SCAN 24
#define BENCH_JSON_MIN 128

static inline int bench_unhex(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The hex stamp starting with BENCH_MAGIC's bytes in the first
 * BENCH_HEX_SCAN + 1 offsets of p, decoded into s; false if none. */
static inline bool bench_stamp_hex(const uint8_t *p, size_t len, struct bench_stamp *s)
{
    uint32_t magic = BENCH_MAGIC;
    const uint8_t *m = (const uint8_t *)&magic;
    static const char digits[] = "0123456789abcdef";
    char want[8];
    for (int i = 0; i < 4; i++) {
        want[2 * i] = digits[m[i] >> 4];
        want[2 * i + 1] = digits[m[i] & 15];
    }
    for (size_t off = 0; off <= BENCH_HEX_SCAN && off + 2 * BENCH_STAMP <= len; off++) {
        if (memcmp(p + off, want, sizeof want))
            continue;
        uint8_t raw[BENCH_STAMP];
        size_t i = 0;
        for (; i < BENCH_STAMP; i++) {
            int hi = bench_unhex(p[off + 2 * i]), lo = bench_unhex(p[off + 2 * i + 1]);
            if (hi < 0 || lo < 0)
                break;
            raw[i] = (uint8_t)(hi << 4 | lo);
        }
        if (i == BENCH_STAMP) {
            memcpy(s, raw, sizeof *s);
            return true;
        }
    }
    return false;
}

/* Reads the stamp of a body or record: the binary stamp at its start, else
 * the hex stamp of a JSON body, as published or as hopper wrote it (see
 * the top of this file); false if it is not one of this run's. */
static inline bool bench_stamp_get(const void *body, size_t len, uint32_t run,
                                   struct bench_stamp *s)
{
    if (len >= BENCH_STAMP) {
        memcpy(s, body, sizeof *s);
        if (s->magic == BENCH_MAGIC)
            return s->run == run;
    }
    return bench_stamp_hex(body, len, s) && s->magic == BENCH_MAGIC && s->run == run;
}

/* A JSON body of exactly len bytes (len >= BENCH_JSON_MIN) carrying the
 * stamp s: {"stamp":"<64 hex>","seq":<s->seq>,"pad":"abc..."}. */
static inline void bench_json_put(uint8_t *body, size_t len, const struct bench_stamp *s)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *raw = (const uint8_t *)s;
    char head[BENCH_JSON_MIN];
    memcpy(head, "{\"stamp\":\"", 10);
    for (int i = 0; i < BENCH_STAMP; i++) {
        head[10 + 2 * i] = digits[raw[i] >> 4];
        head[10 + 2 * i + 1] = digits[raw[i] & 15];
    }
    int n = 10 + 2 * BENCH_STAMP;
    n += snprintf(head + n, sizeof head - (size_t)n, "\",\"seq\":%" PRIu64 ",\"pad\":\"", s->seq);
    memcpy(body, head, (size_t)n);
    for (size_t i = (size_t)n; i < len - 2; i++)
        body[i] = (uint8_t)('a' + i % 26);
    memcpy(body + len - 2, "\"}", 2);
}

static inline void bench_fill(uint8_t *body, size_t len)
{
    for (size_t i = BENCH_STAMP; i < len; i++)
        body[i] = (uint8_t)('a' + i % 26);
}

/* Latency samples in microseconds; bounded so a long run cannot exhaust
 * memory (samples past the cap are counted but not kept). */
#define BENCH_MAX_SAMPLES (32u << 20)

struct samples {
    uint32_t *v;
    size_t n, cap;
    uint64_t dropped;
};

static inline void samples_add(struct samples *s, uint64_t ns)
{
    if (s->n == s->cap) {
        if (s->cap >= BENCH_MAX_SAMPLES) {
            s->dropped++;
            return;
        }
        size_t cap = s->cap ? s->cap * 2 : 65536;
        uint32_t *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            s->dropped++;
            return;
        }
        s->v = v;
        s->cap = cap;
    }
    uint64_t us = ns / 1000;
    s->v[s->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static inline void samples_merge(struct samples *into, const struct samples *from)
{
    for (size_t i = 0; i < from->n; i++)
        samples_add(into, (uint64_t)from->v[i] * 1000);
    into->dropped += from->dropped;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts the samples; then samples_pct reads percentiles. */
static inline void samples_sort(struct samples *s)
{
    if (s->n)
        qsort(s->v, s->n, sizeof *s->v, cmp_u32);
}

/* Nearest-rank percentile in milliseconds; -1 without samples. */
static inline double samples_pct(const struct samples *s, double pct)
{
    if (!s->n)
        return -1;
    size_t rank = (size_t)(pct / 100.0 * (double)s->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return s->v[rank - 1] / 1000.0;
}

/* "name":{"n":..,"p50":..,...} with values in milliseconds. */
static inline void samples_json(FILE *out, const char *name, struct samples *s)
{
    samples_sort(s);
    fprintf(out,
            "\"%s\":{\"n\":%zu,\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
            "\"max\":%.3f}",
            name, s->n, samples_pct(s, 50), samples_pct(s, 95), samples_pct(s, 99),
            samples_pct(s, 99.9), samples_pct(s, 100));
}

/* CPU time of this process in seconds (user + system). */
static inline double bench_self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* Raise the open-file limit to the hard limit; returns the new soft limit. */
static inline rlim_t bench_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
        return 0;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
        getrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur;
}

/* Strict number parsing for options; exits with usage status 2. */
static inline double bench_num(const char *opt, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || d < lo || d > hi) {
        fprintf(stderr, "%s: '%s' is not a number in %g..%g\n", opt, v, lo, hi);
        exit(2);
    }
    return d;
}

/* The load shape both generators take, with the same options and meaning. */
struct bench_load {
    int window;  /* messages in flight per channel (producer: in all) */
    double rate; /* total msg/s; 0: as fast as confirms allow */
    int size;    /* body bytes */
    double duration, warmup, drain, hold, settle; /* seconds */
    uint32_t run;                                 /* run id stamped into every body */
};

#define BENCH_LOAD_DEFAULTS                                                                        \
    .size = 1024, .duration = 10, .warmup = 2, .drain = 10, .hold = 600, .settle = 1

/* getopt_long entries for struct bench_load; values are getopt codes >= 256
 * so that they never clash with a program's own options. */
enum {
    BENCH_OPT_WINDOW = 256,
    BENCH_OPT_RATE,
    BENCH_OPT_SIZE,
    BENCH_OPT_DURATION,
    BENCH_OPT_WARMUP,
    BENCH_OPT_DRAIN,
    BENCH_OPT_HOLD,
    BENCH_OPT_SETTLE,
    BENCH_OPT_RUN,
};
#define BENCH_LOAD_OPTIONS                                                                         \
    {"window", 1, 0, BENCH_OPT_WINDOW}, {"rate", 1, 0, BENCH_OPT_RATE},                            \
        {"size", 1, 0, BENCH_OPT_SIZE}, {"duration", 1, 0, BENCH_OPT_DURATION},                    \
        {"warmup", 1, 0, BENCH_OPT_WARMUP}, {"drain", 1, 0, BENCH_OPT_DRAIN},                      \
        {"hold", 1, 0, BENCH_OPT_HOLD}, {"settle", 1, 0, BENCH_OPT_SETTLE},                        \
    {                                                                                              \
        "run", 1, 0, BENCH_OPT_RUN                                                                 \
    }

/* Apply one of BENCH_LOAD_OPTIONS; false if opt is not one of them. */
static inline bool bench_load_option(struct bench_load *l, int opt, const char *v)
{
    switch (opt) {
    case BENCH_OPT_WINDOW:
        l->window = (int)bench_num("--window", v, 1, 10000000);
        return true;
    case BENCH_OPT_RATE:
        l->rate = bench_num("--rate", v, 0, 1e7);
        return true;
    case BENCH_OPT_SIZE:
        l->size = (int)bench_num("--size", v, 0, 1 << 24);
        return true;
    case BENCH_OPT_DURATION:
        l->duration = bench_num("--duration", v, 0.1, 3600);
        return true;
    case BENCH_OPT_WARMUP:
        l->warmup = bench_num("--warmup", v, 0, 3600);
        return true;
    case BENCH_OPT_DRAIN:
        l->drain = bench_num("--drain", v, 0, 3600);
        return true;
    case BENCH_OPT_HOLD:
        l->hold = bench_num("--hold", v, 0, 86400);
        return true;
    case BENCH_OPT_SETTLE:
        l->settle = bench_num("--settle", v, 0.05, 60);
        return true;
    case BENCH_OPT_RUN:
        l->run = (uint32_t)bench_num("--run", v, 0, UINT32_MAX);
        return true;
    default:
        return false;
    }
}

#endif
