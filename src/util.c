/* util.c - allocation wrappers, the monotonic clock, server-made names
 * and the growable byte buffer. */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t n)
{
    fprintf(stderr, "hopper: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *d = xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void drain_pipe(int fd)
{
    char junk[256];
    while (read(fd, junk, sizeof junk) > 0)
        ;
}

void random_name(char *out, const char *prefix)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t rnd[22];
    arc4random_buf(rnd, sizeof rnd);
    size_t n = strlen(prefix);
    memcpy(out, prefix, n);
    for (size_t i = 0; i < sizeof rnd; i++)
        out[n + i] = alphabet[rnd[i] & 63];
    out[n + sizeof rnd] = '\0';
}

void buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_putc(struct buf *b, char c)
{
    buf_append(b, &c, 1);
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void buf_free(struct buf *b)
{
    FREE_AND_NULL(b->data);
    b->len = b->cap = 0;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

/* Index of key's slot, or of the empty slot where it would go. */
static size_t strmap_find(const struct strmap *m, const char *key)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)fnv1a(key) & mask;
    while (m->slots[i].key && strcmp(m->slots[i].key, key) != 0)
        i = (i + 1) & mask;
    return i;
}

void *strmap_get(const struct strmap *m, const char *key)
{
    return m->cap ? m->slots[strmap_find(m, key)].value : NULL;
}

bool strmap_has(const struct strmap *m, const char *key)
{
    return m->cap && m->slots[strmap_find(m, key)].key;
}

void strmap_put(struct strmap *m, const char *key, void *value)
{
    if ((m->len + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        struct strmap bigger = {xcalloc(cap, sizeof(struct strmap_entry)), cap, m->len};
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].key)
                bigger.slots[strmap_find(&bigger, m->slots[i].key)] = m->slots[i];
        free(m->slots);
        *m = bigger;
    }
    struct strmap_entry *e = &m->slots[strmap_find(m, key)];
    if (!e->key) {
        e->key = xstrdup(key);
        m->len++;
    }
    e->value = value;
}

void *strmap_del(struct strmap *m, const char *key)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1, i = strmap_find(m, key);
    if (!m->slots[i].key)
        return NULL;
    void *value = m->slots[i].value;
    FREE_AND_NULL(m->slots[i].key);
    m->slots[i].value = NULL;
    m->len--;
    /* Re-place the rest of the probe run so lookups still find them. */
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        struct strmap_entry e = m->slots[j];
        m->slots[j] = (struct strmap_entry){0};
        m->slots[strmap_find(m, e.key)] = e;
    }
    return value;
}

void strmap_free(struct strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    FREE_AND_NULL(m->slots);
    m->cap = m->len = 0;
}
