/* util.h - small helpers shared by every module: ownership macros,
 * attributes, the monotonic clock, and the growable byte buffer used for
 * JSON and topic names. */
#ifndef HOPPER_UTIL_H
#define HOPPER_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define MUST_CHECK __attribute__((warn_unused_result))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* The struct of type `type` whose member `member` is at p. */
#define CONTAINER_OF(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

/* Free and forget in one step, so a dangling pointer cannot be reused. */
#define FREE_AND_NULL(p)                                                                           \
    do {                                                                                           \
        free(p);                                                                                   \
        (p) = NULL;                                                                                \
    } while (0)

/* Allocation failure is not recoverable in a daemon whose every buffer is
 * bounded: these abort with a message instead of returning NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Milliseconds on CLOCK_MONOTONIC, for timeouts and intervals: the wall
 * clock can step (NTP, an administrator) and would make them wrong. */
uint64_t monotonic_ms(void);

/* Read a non-blocking wake-up pipe (librdkafka's io_event_enable) empty. */
void drain_pipe(int fd);

/* RabbitMQ's server-made names: prefix ("amq.gen-", "amq.ctag-") and 22
 * random characters of URL-safe base64. out holds 256 bytes. */
void random_name(char *out, const char *prefix);

/* A growable byte buffer. `data` is owned by the buffer. */
struct buf {
    char *data;
    size_t len;
    size_t cap;
};

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) PRINTF_LIKE(2, 3);
void buf_free(struct buf *b);

/* A map from strings to pointers (open addressing, FNV-1a). Keys are
 * copied and owned by the map; values are not. */
struct strmap {
    struct strmap_entry *slots;
    size_t cap; /* power of two or 0 */
    size_t len;
};

struct strmap_entry {
    char *key; /* NULL: empty slot */
    void *value;
};

void *strmap_get(const struct strmap *m, const char *key);
bool strmap_has(const struct strmap *m, const char *key);
void strmap_put(struct strmap *m, const char *key, void *value);
/* Remove key; returns its value (or NULL). */
void *strmap_del(struct strmap *m, const char *key);
void strmap_free(struct strmap *m);

/* Iterate: for (size_t i = 0; i < m.cap; i++) if (m.slots[i].key) ... */

#endif
