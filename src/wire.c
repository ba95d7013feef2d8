/* wire.c - bounded, non-recursive checks of AMQP field tables.
 *
 * The accepted grammar is the one rabbitmq-c 0.11 decodes (amqp_table.c),
 * made stricter in one place: every entry must end inside the length of the
 * table or array that holds it. rabbitmq-c only checks that the declared
 * length fits the buffer and then decodes entries until the offset reaches
 * or passes that length, so it accepts an entry that spills past its
 * container. Anything accepted here is therefore decoded by rabbitmq-c
 * along exactly the same boundaries, and so never deeper than max_depth.
 *
 * Type letters, as rabbitmq-c 0.11 maps them: t b B (1 byte), s u (2),
 * I i f (4), l L d T (8), D (1 + 4), S x (u32 length + bytes), A (u32
 * length + values), F (table), V (nothing). Any other letter makes
 * rabbitmq-c fail the whole decode, so it is rejected here too. */
#include "wire.h"

#include <stdbool.h>

#include <amqp.h>
#include <amqp_framing.h>

/* The walk keeps one end offset per open table or array on its own stack,
 * so its C stack use is fixed whatever the input. A larger max_depth is
 * clamped to this. */
#define WIRE_DEPTH_LIMIT 64

static inline uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Payload size of a fixed-size field value, or -1 for the types that carry
 * a length prefix and for unknown letters. */
static int fixed_size(uint8_t type)
{
    switch (type) {
    case 'V':
        return 0;
    case 't':
    case 'b':
    case 'B':
        return 1;
    case 's':
    case 'u':
        return 2;
    case 'I':
    case 'i':
    case 'f':
        return 4;
    case 'D':
        return 5;
    case 'l':
    case 'L':
    case 'd':
    case 'T':
        return 8;
    default:
        return -1;
    }
}

int wire_check_table(const uint8_t *p, size_t len, unsigned max_depth, size_t *consumed)
{
    size_t end[WIRE_DEPTH_LIMIT]; /* end offset of each open container */
    bool array[WIRE_DEPTH_LIMIT]; /* whether it is an array (no keys) */
    unsigned depth = 1;

    if (max_depth > WIRE_DEPTH_LIMIT)
        max_depth = WIRE_DEPTH_LIMIT;
    if (max_depth == 0 || len < 4 || rd32(p) > len - 4)
        return -1;
    end[0] = 4 + (size_t)rd32(p);
    array[0] = false;
    size_t pos = 4;

    /* Invariant: pos <= end[depth - 1] <= ... <= end[0] <= len. */
    while (depth > 0) {
        size_t lim = end[depth - 1];
        if (pos == lim) {
            depth--;
            continue;
        }
        if (!array[depth - 1]) {
            size_t klen = p[pos];
            if (1 + klen > lim - pos)
                return -1;
            pos += 1 + klen;
        }
        if (pos >= lim)
            return -1;
        uint8_t type = p[pos++];
        int fixed = fixed_size(type);
        if (fixed >= 0) {
            if ((size_t)fixed > lim - pos)
                return -1;
            pos += (size_t)fixed;
            continue;
        }
        if (type != 'S' && type != 'x' && type != 'A' && type != 'F')
            return -1;
        if (lim - pos < 4 || rd32(p + pos) > lim - pos - 4)
            return -1;
        size_t n = rd32(p + pos);
        pos += 4;
        if (type == 'S' || type == 'x') {
            pos += n;
            continue;
        }
        if (depth >= max_depth)
            return -1;
        end[depth] = pos + n;
        array[depth] = type == 'A';
        depth++;
    }
    *consumed = pos;
    return 0;
}

/* A cursor over method arguments or properties. */
struct walk {
    const uint8_t *p;
    size_t len;
    size_t pos;
};

static bool walk_skip(struct walk *w, size_t n)
{
    if (n > w->len - w->pos)
        return false;
    w->pos += n;
    return true;
}

static bool walk_shortstr(struct walk *w)
{
    if (w->pos >= w->len)
        return false;
    size_t n = w->p[w->pos++];
    return walk_skip(w, n);
}

static bool walk_table(struct walk *w, unsigned max_depth)
{
    size_t used;
    if (wire_check_table(w->p + w->pos, w->len - w->pos, max_depth, &used) != 0)
        return false;
    w->pos += used;
    return true;
}

/* Argument layouts up to the last table, from amqp_framing.c's decoders and
 * the 0-9-1 spec: '1' octet, '2' short, 'b' one octet of packed bits,
 * 's' shortstr, 'T' table. Fields after the last table are left to
 * rabbitmq-c, whose checks there are bounded. */
static const struct {
    uint32_t id;
    const char *layout;
} method_layouts[] = {
    /* version-major, version-minor, server-properties */
    {AMQP_CONNECTION_START_METHOD, "11T"},
    /* client-properties */
    {AMQP_CONNECTION_START_OK_METHOD, "T"},
    /* reserved-1, exchange, type, passive..no-wait, arguments */
    {AMQP_EXCHANGE_DECLARE_METHOD, "2ssbT"},
    /* reserved-1, destination, source, routing-key, no-wait, arguments */
    {AMQP_EXCHANGE_BIND_METHOD, "2sssbT"},
    {AMQP_EXCHANGE_UNBIND_METHOD, "2sssbT"},
    /* reserved-1, queue, passive..no-wait, arguments */
    {AMQP_QUEUE_DECLARE_METHOD, "2sbT"},
    /* reserved-1, queue, exchange, routing-key, no-wait, arguments */
    {AMQP_QUEUE_BIND_METHOD, "2sssbT"},
    /* reserved-1, queue, exchange, routing-key, arguments: no bits */
    {AMQP_QUEUE_UNBIND_METHOD, "2sssT"},
    /* reserved-1, queue, consumer-tag, no-local..no-wait, arguments */
    {AMQP_BASIC_CONSUME_METHOD, "2ssbT"},
};

int wire_check_method(uint32_t method_id, const uint8_t *args, size_t len, unsigned max_depth)
{
    const char *layout = NULL;
    for (size_t i = 0; i < ARRAY_LEN(method_layouts); i++) {
        if (method_layouts[i].id == method_id) {
            layout = method_layouts[i].layout;
            break;
        }
    }
    if (!layout)
        return 0;

    struct walk w = {args, len, 0};
    for (const char *f = layout; *f; f++) {
        bool ok;
        switch (*f) {
        case '1':
        case 'b':
            ok = walk_skip(&w, 1);
            break;
        case '2':
            ok = walk_skip(&w, 2);
            break;
        case 's':
            ok = walk_shortstr(&w);
            break;
        default: /* 'T' */
            ok = walk_table(&w, max_depth);
            break;
        }
        if (!ok)
            return -1;
    }
    return 0;
}

int wire_check_basic_properties(const uint8_t *props, size_t len, unsigned max_depth)
{
    if (len < 2)
        return -1;
    uint16_t flags = rd16(props);
    /* Bit 0 announces another flags word. Basic has 14 properties, so no
     * client needs one, and rabbitmq-c 0.11 mishandles it: it shifts the
     * k-th word by 16k bits in an int, so on x86 the third word lands on
     * the first again and can switch on the headers flag this walk did not
     * see. Refuse it. */
    if (flags & 1)
        return -1;

    struct walk w = {props, len, 2};
    if ((flags & AMQP_BASIC_CONTENT_TYPE_FLAG) && !walk_shortstr(&w))
        return -1;
    if ((flags & AMQP_BASIC_CONTENT_ENCODING_FLAG) && !walk_shortstr(&w))
        return -1;
    if ((flags & AMQP_BASIC_HEADERS_FLAG) && !walk_table(&w, max_depth))
        return -1;
    return 0;
}
