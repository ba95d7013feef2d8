/* frame.c - frame reader and writer (see frame.h). */
#include "frame.h"

#include <string.h>

#include "log.h"

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)(v >> 32));
    put_u32(p + 4, (uint32_t)v);
}

enum frame_status frame_peek(struct evbuffer *in, uint32_t frame_max, struct frame *f)
{
    size_t avail = evbuffer_get_length(in);
    if (avail < 7)
        return FRAME_INCOMPLETE;
    uint8_t hdr[7];
    if (evbuffer_copyout(in, hdr, sizeof hdr) != (ev_ssize_t)sizeof hdr)
        return FRAME_INCOMPLETE;
    uint32_t size = get_u32(hdr + 3);
    f->type = hdr[0];
    f->channel = (uint16_t)(hdr[1] << 8 | hdr[2]);
    f->size = size;
    f->payload = NULL;
    /* Checked before waiting for the payload, so an oversize frame is
     * refused at once instead of being buffered. */
    if (size > frame_max - FRAME_OVERHEAD)
        return FRAME_TOO_LARGE;
    size_t total = (size_t)size + FRAME_OVERHEAD;
    if (avail < total)
        return FRAME_INCOMPLETE;
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)total);
    if (!p)
        return FRAME_INCOMPLETE;
    if (p[total - 1] != FRAME_END)
        return FRAME_BAD_END;
    f->payload = p + 7;
    return FRAME_OK;
}

void frame_drain(struct evbuffer *in, const struct frame *f)
{
    evbuffer_drain(in, (size_t)f->size + FRAME_OVERHEAD);
}

/* Writes a frame header and returns where its payload goes, inside a
 * reserved region of `out` of room bytes; frame_commit finishes it. */
static uint8_t *frame_begin(struct evbuffer *out, struct evbuffer_iovec *v, size_t room)
{
    if (evbuffer_reserve_space(out, (ev_ssize_t)(room + FRAME_OVERHEAD), v, 1) != 1)
        return NULL;
    return (uint8_t *)v->iov_base + 7;
}

static void frame_commit(struct evbuffer *out, struct evbuffer_iovec *v, uint8_t type,
                         uint16_t channel, size_t size)
{
    uint8_t *p = v->iov_base;
    p[0] = type;
    put_u16(p + 1, channel);
    put_u32(p + 3, (uint32_t)size);
    p[7 + size] = FRAME_END;
    v->iov_len = size + FRAME_OVERHEAD;
    evbuffer_commit_space(out, v, 1);
}

/* Our methods are small except connection.start (server properties) and
 * channel/connection close (reply text <= 255): 4 KiB holds any of them. */
#define METHOD_ROOM 4096

int frame_put_method(struct evbuffer *out, uint16_t channel, amqp_method_number_t id, void *decoded)
{
    struct evbuffer_iovec v;
    uint8_t *p = frame_begin(out, &v, METHOD_ROOM);
    if (!p)
        return -1;
    put_u32(p, id);
    amqp_bytes_t args = {METHOD_ROOM - 4, p + 4};
    int n = amqp_encode_method(id, decoded, args);
    if (n < 0) {
        log_error("cannot encode method 0x%08x: %s", id, amqp_error_string2(n));
        v.iov_len = 0;
        evbuffer_commit_space(out, &v, 1);
        return -1;
    }
    frame_commit(out, &v, FRAME_METHOD, channel, (size_t)n + 4);
    return 0;
}

int frame_put_content(struct evbuffer *out, uint16_t channel, const amqp_basic_properties_t *props,
                      const void *raw_props, size_t raw_props_len, const void *body,
                      size_t body_len, uint32_t frame_max)
{
    size_t room = raw_props ? raw_props_len + 12 : frame_max - FRAME_OVERHEAD;
    struct evbuffer_iovec v;
    uint8_t *p = frame_begin(out, &v, room);
    if (!p)
        return -1;
    put_u16(p, AMQP_BASIC_CLASS);
    put_u16(p + 2, 0); /* weight */
    put_u64(p + 4, body_len);
    size_t plen;
    if (raw_props) {
        memcpy(p + 12, raw_props, raw_props_len);
        plen = raw_props_len;
    } else {
        amqp_bytes_t enc = {room - 12, p + 12};
        int n = amqp_encode_properties(AMQP_BASIC_CLASS, (void *)props, enc);
        if (n < 0) {
            v.iov_len = 0;
            evbuffer_commit_space(out, &v, 1);
            return -1;
        }
        plen = (size_t)n;
    }
    frame_commit(out, &v, FRAME_HEADER, channel, plen + 12);

    size_t chunk_max = frame_max - FRAME_OVERHEAD;
    const uint8_t *b = body;
    for (size_t off = 0; off < body_len;) {
        size_t chunk = body_len - off < chunk_max ? body_len - off : chunk_max;
        uint8_t hdr[7] = {FRAME_BODY};
        put_u16(hdr + 1, channel);
        put_u32(hdr + 3, (uint32_t)chunk);
        uint8_t end = FRAME_END;
        if (evbuffer_add(out, hdr, sizeof hdr) || evbuffer_add(out, b + off, chunk) ||
            evbuffer_add(out, &end, 1))
            return -1;
        off += chunk;
    }
    return 0;
}

void frame_put_heartbeat(struct evbuffer *out)
{
    static const uint8_t hb[8] = {FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END};
    evbuffer_add(out, hb, sizeof hb);
}

amqp_bytes_t frame_reply_text(const char *text)
{
    amqp_bytes_t b = amqp_cstring_bytes(text);
    if (b.len > 255)
        b.len = 255;
    return b;
}
