/* record_view.h - a Kafka record read back as what basic.deliver needs:
 * exchange, routing key, and the content header's properties, both as the
 * bytes to send and decoded (for headers-exchange matching). The inverse
 * of record_headers; record.h has the format contract. The body is the
 * record's value, which the caller sends as it is.
 *
 * hopper's own records carry amqp.exchange, amqp.routing_key (the first
 * header of each name) and amqp.properties (the LAST header of that name:
 * record_headers writes it after the application headers, which keep
 * their own names). Their properties are the publisher's bytes exactly.
 *
 * Any Kafka producer can write those headers, so they are checked like a
 * client's content header (wire_check_basic_properties, then rabbitmq-c
 * decodes). A record is read as foreign when it lacks one of the three,
 * one is a null value, the exchange or routing key is longer than an AMQP
 * short string (255 bytes), or the properties do not pass the check or
 * do not decode (malformed, or headers nested deeper than max_table_depth).
 *
 * A foreign record is delivered from the default exchange with the topic
 * name as routing key, and these properties (encoded by rabbitmq-c):
 *  - delivery_mode 2 (persistent: it is in Kafka);
 *  - timestamp: the record's, in seconds (milliseconds truncated), when
 *    librdkafka has one;
 *  - message_id: the key as it is, with key_as_message_id, when the key is
 *    not null and at most 255 bytes;
 *  - headers: every Kafka header in record order (duplicates kept), the
 *    name as it is (up to a NUL: librdkafka hands names over as C strings)
 *    and the value as a long string ('S', bytes as they are, UTF-8 or
 *    not), a null value as void ('V'), so that null and empty stay
 *    apart. Set only when at least one header is kept. A header named
 *    longer than 255 bytes is left out (AMQP field names are short
 *    strings), and so is every header that would take the encoded
 *    properties past RECORD_VIEW_MAX_PROPS; later, smaller ones may still
 *    fit. The count left out is in headers_skipped.
 *
 * The view borrows: from the record's headers, topic and key, and from
 * pool. It is valid while the record lives and until the pool is recycled.
 * Whether the content header fits the consumer's frame_max is the
 * caller's check (12 + raw_props_len bytes of payload): hopper's records
 * fit the publisher's frame_max, which may be larger, and a forged one
 * that passes the checks is bounded only by the record's size. */
#ifndef HOPPER_RECORD_VIEW_H
#define HOPPER_RECORD_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <librdkafka/rdkafka.h>

#include "util.h"

/* Bound on a foreign record's encoded properties, flags word included. */
#define RECORD_VIEW_MAX_PROPS 65536

struct record_view {
    const char *exchange; /* borrowed from the record's headers, or "" */
    size_t exchange_len;
    const char *routing_key; /* borrowed, or the topic name for foreign records */
    size_t routing_key_len;
    const void *raw_props; /* property bytes for the content header, flags word first:
                              the amqp.properties header exactly, or encoded into pool */
    size_t raw_props_len;
    /* Decoded (into pool, or pointing into the record): for headers-exchange
     * matching. Only the fields whose flag is set mean anything, except
     * headers, which is an empty table when its flag is clear. */
    amqp_basic_properties_t props;
    bool foreign;           /* the record was not written by hopper */
    size_t headers_skipped; /* foreign: Kafka headers left out of props */
};

struct record_decode_opts {
    bool key_as_message_id;   /* foreign records: the key becomes message_id */
    uint32_t max_table_depth; /* limits.max_table_depth, for amqp.properties */
};

/* The parts of a record that a view is made from, all borrowed. */
struct record_view_src {
    const rd_kafka_headers_t *headers; /* NULL: the record has none */
    const char *topic;
    int64_t timestamp_ms; /* negative: not available */
    const void *key;      /* NULL: null key */
    size_t key_len;
};

/* Fill v from src. Returns 0, or -1 when the record cannot be delivered at
 * all: no topic, a topic name longer than 255 bytes (Kafka allows 249), or
 * the pool cannot allocate. */
int record_view_from(const struct record_view_src *src, const struct record_decode_opts *o,
                     amqp_pool_t *pool, struct record_view *v) MUST_CHECK;

/* Fill v from a consumed message (record_view_from over its headers, topic,
 * timestamp and key). Returns 0, or -1 as record_view_from does and also
 * when rkm is an error event (rkm->err set: no record) or librdkafka cannot
 * parse its headers. */
int record_view(const rd_kafka_message_t *rkm, const struct record_decode_opts *o,
                amqp_pool_t *pool, struct record_view *v) MUST_CHECK;

#endif
