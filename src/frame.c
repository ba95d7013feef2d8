/* frame.c - frame reader and writer (see frame.h). */
#include "frame.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
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

enum frame_status frame_next(struct frame_reader *r, uint32_t frame_max, struct frame *f)
{
    size_t avail = evbuffer_get_length(r->in) - r->consumed;
    if (avail < 7)
        return FRAME_INCOMPLETE;
    struct evbuffer_ptr pos;
    if (evbuffer_ptr_set(r->in, &pos, r->consumed, EVBUFFER_PTR_SET) == -1)
        return FRAME_INCOMPLETE;
    uint8_t hdr[7];
    if (evbuffer_copyout_from(r->in, &pos, hdr, sizeof hdr) != (ev_ssize_t)sizeof hdr)
        return FRAME_INCOMPLETE;
    uint32_t size = get_u32(hdr + 3);
    f->type = hdr[0];
    f->channel = (uint16_t)(hdr[1] << 8 | hdr[2]);
    f->size = size;
    f->payload = NULL;
    if (size > frame_max - FRAME_OVERHEAD)
        return FRAME_TOO_LARGE;
    size_t total = (size_t)size + FRAME_OVERHEAD;
    if (avail < total)
        return FRAME_INCOMPLETE;
    /* Usually the frame lies inside one chain: read it in place. Otherwise
     * drop the frames already handled and make this one contiguous. */
    struct evbuffer_iovec v;
    const uint8_t *p;
    if (evbuffer_peek(r->in, (ev_ssize_t)total, &pos, &v, 1) >= 1 && v.iov_len >= total) {
        p = v.iov_base;
    } else {
        evbuffer_drain(r->in, r->consumed);
        r->consumed = 0;
        p = evbuffer_pullup(r->in, (ev_ssize_t)total);
        if (!p)
            return FRAME_INCOMPLETE;
    }
    if (p[total - 1] != FRAME_END)
        return FRAME_BAD_END;
    f->payload = p + 7;
    r->consumed += total;
    return FRAME_OK;
}

enum frame_status frame_peek(struct evbuffer *in, uint32_t frame_max, struct frame *f)
{
    struct frame_reader r = {in, 0};
    return frame_next(&r, frame_max, f);
}

void frame_reader_finish(struct frame_reader *r)
{
    if (r->consumed)
        evbuffer_drain(r->in, r->consumed);
    r->consumed = 0;
}

void frame_drain(struct evbuffer *in, const struct frame *f)
{
    evbuffer_drain(in, (size_t)f->size + FRAME_OVERHEAD);
}

static void put_header(uint8_t *p, uint8_t type, uint16_t channel, size_t size)
{
    p[0] = type;
    put_u16(p + 1, channel);
    put_u32(p + 3, (uint32_t)size);
}

/* Appends header, payload and end octet of one frame. */
static int put_frame(struct evbuffer *out, uint8_t type, uint16_t channel, const void *payload,
                     size_t size)
{
    uint8_t hdr[7], end = FRAME_END;
    put_header(hdr, type, channel, size);
    if (evbuffer_add(out, hdr, sizeof hdr) || evbuffer_add(out, payload, size) ||
        evbuffer_add(out, &end, 1))
        return -1;
    return 0;
}

/* Our methods are small except connection.start (server properties) and
 * channel/connection close (reply text <= 255): 4 KiB holds any of them.
 * They are built on the stack and appended in one copy. */
#define METHOD_ROOM 4096

int frame_put_method(struct evbuffer *out, uint16_t channel, amqp_method_number_t id, void *decoded)
{
    uint8_t f[METHOD_ROOM + FRAME_OVERHEAD];
    put_u32(f + 7, id);
    int n = amqp_encode_method(id, decoded, (amqp_bytes_t){METHOD_ROOM - 4, f + 11});
    if (n < 0) {
        log_error("cannot encode method 0x%08x: %s", id, amqp_error_string2(n));
        return -1;
    }
    size_t size = (size_t)n + 4;
    put_header(f, FRAME_METHOD, channel, size);
    f[7 + size] = FRAME_END;
    return evbuffer_add(out, f, size + FRAME_OVERHEAD);
}

int frame_put_content(struct evbuffer *out, uint16_t channel, const amqp_basic_properties_t *props,
                      const void *raw_props, size_t raw_props_len, const void *body,
                      size_t body_len, uint32_t frame_max)
{
    uint8_t *encoded = NULL;
    if (!raw_props) {
        /* A header frame fits in frame_max, which is never below 4096. */
        size_t room = (frame_max < FRAME_MIN_MAX ? FRAME_MIN_MAX : frame_max) - FRAME_OVERHEAD - 12;
        encoded = xmalloc(room);
        int n =
            amqp_encode_properties(AMQP_BASIC_CLASS, (void *)props, (amqp_bytes_t){room, encoded});
        if (n < 0) {
            free(encoded);
            return -1;
        }
        raw_props = encoded;
        raw_props_len = (size_t)n;
    }
    uint8_t hdr[7 + 12], end = FRAME_END;
    put_header(hdr, FRAME_HEADER, channel, raw_props_len + 12);
    put_u16(hdr + 7, AMQP_BASIC_CLASS);
    put_u16(hdr + 9, 0); /* weight */
    put_u64(hdr + 11, body_len);
    int rc = evbuffer_add(out, hdr, sizeof hdr) || evbuffer_add(out, raw_props, raw_props_len) ||
                     evbuffer_add(out, &end, 1)
                 ? -1
                 : 0;
    free(encoded);

    size_t chunk_max = frame_max - FRAME_OVERHEAD;
    const uint8_t *b = body;
    for (size_t off = 0; rc == 0 && off < body_len; off += chunk_max) {
        size_t chunk = body_len - off < chunk_max ? body_len - off : chunk_max;
        rc = put_frame(out, FRAME_BODY, channel, b + off, chunk);
    }
    return rc;
}

void frame_put_heartbeat(struct evbuffer *out)
{
    static const uint8_t hb[8] = {FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END};
    evbuffer_add(out, hb, sizeof hb);
}

void frame_method_name(amqp_method_number_t id, char *out, size_t size)
{
    /* rabbitmq-c names methods AMQP_<CLASS>_<METHOD>_METHOD; class names have
     * no underscore, so the first one is the dot and the others dashes. */
    const char *macro = amqp_method_name(id);
    const char *prefix = "AMQP_", *suffix = "_METHOD";
    size_t n = macro ? strlen(macro) : 0;
    if (n <= strlen(prefix) + strlen(suffix) || strncmp(macro, prefix, strlen(prefix)) != 0 ||
        strcmp(macro + n - strlen(suffix), suffix) != 0) {
        snprintf(out, size, "method 0x%08x", id);
        return;
    }
    size_t j = 0;
    bool dot = false;
    for (size_t i = strlen(prefix); i < n - strlen(suffix) && j + 1 < size; i++) {
        char ch = macro[i];
        if (ch == '_') {
            ch = dot ? '-' : '.';
            dot = true;
        }
        out[j++] = (char)tolower((unsigned char)ch);
    }
    if (size)
        out[j] = '\0';
}

amqp_bytes_t frame_reply_text(const char *text)
{
    amqp_bytes_t b = amqp_cstring_bytes(text);
    if (b.len > 255)
        b.len = 255;
    return b;
}
