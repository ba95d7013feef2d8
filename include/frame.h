/* frame.h - AMQP 0-9-1 framing: reading frames out of a connection's input
 * buffer and writing methods, content and heartbeats into its output.
 *
 * A frame is: type u8, channel u16, size u32, `size` payload bytes, 0xCE.
 * Method and property payloads are encoded with rabbitmq-c's codecs. */
#ifndef HOPPER_FRAME_H
#define HOPPER_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <event2/buffer.h>

#include "util.h"

#define FRAME_METHOD 1
#define FRAME_HEADER 2
#define FRAME_BODY 3
#define FRAME_HEARTBEAT 8
#define FRAME_END 0xCE

#define FRAME_OVERHEAD 8   /* 7-byte header + end octet */
#define FRAME_MIN_MAX 4096 /* frame_max before tune, and its floor */
#define FRAME_PROTOCOL_HEADER "AMQP\x00\x00\x09\x01"
#define FRAME_PROTOCOL_HEADER_LEN 8

struct frame {
    uint8_t type;
    uint16_t channel;
    uint32_t size;
    const uint8_t *payload; /* points into the input buffer until it is drained */
};

enum frame_status {
    FRAME_OK,         /* *f is a whole frame; drain f->size + FRAME_OVERHEAD bytes after use */
    FRAME_INCOMPLETE, /* wait for more bytes */
    FRAME_TOO_LARGE,  /* frame larger than frame_max: connection error 501 */
    FRAME_BAD_END,    /* end octet is not 0xCE: connection error 501 */
};

/* Look at the start of `in` for one whole frame no larger than frame_max
 * bytes (overhead included). Consumes nothing. Type, channel and size are
 * set once the 7-byte header is in, so errors can name them. */
enum frame_status frame_peek(struct evbuffer *in, uint32_t frame_max, struct frame *f);

/* Reads frames one after another without draining each: frames handled
 * are dropped in one evbuffer_drain by frame_reader_finish (each drain runs
 * the bufferevent's callbacks). A frame's payload stays valid until the
 * next frame_next or frame_reader_finish. */
struct frame_reader {
    struct evbuffer *in;
    size_t consumed; /* bytes of frames already returned */
};

enum frame_status frame_next(struct frame_reader *r, uint32_t frame_max, struct frame *f);
void frame_reader_finish(struct frame_reader *r);

/* Remove the frame returned by frame_peek from `in`. */
void frame_drain(struct evbuffer *in, const struct frame *f);

/* Append one method frame. Returns 0, or -1 if the method could not be
 * encoded (a bug: our own methods always fit). */
int frame_put_method(struct evbuffer *out, uint16_t channel, amqp_method_number_t id,
                     void *decoded) MUST_CHECK;

/* Append a content header frame and the body split into body frames that
 * respect frame_max. raw_props, when not NULL, are the encoded property
 * bytes (flags first) to send as is; otherwise props is encoded. */
int frame_put_content(struct evbuffer *out, uint16_t channel, const amqp_basic_properties_t *props,
                      const void *raw_props, size_t raw_props_len, const void *body,
                      size_t body_len, uint32_t frame_max) MUST_CHECK;

void frame_put_heartbeat(struct evbuffer *out);

/* The spec's name of a method, "basic.consume" or "basic.get-ok", written to
 * out (NUL-terminated, cut to size); "method 0x%08x" when unknown. */
void frame_method_name(amqp_method_number_t id, char *out, size_t size);

/* A close reply text as a short string: cut to 255 bytes. */
amqp_bytes_t frame_reply_text(const char *text);

#endif
