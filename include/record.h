/* record.h - the Kafka record a publish becomes (record-format contract).
 *
 * value   = body bytes exactly.
 * key     = per route: routing key, an application header as text,
 *           message_id, or none (NULL key).
 * headers = amqp.exchange, amqp.routing_key; one amqp.<property> per basic
 *           property that is set; each application header under its own
 *           name as text (numbers decimal, booleans true/false, arrays and
 *           tables as JSON); amqp.properties = the property bytes exactly as
 *           the client encoded them (flags word included). */
#ifndef HOPPER_RECORD_H
#define HOPPER_RECORD_H

#include <amqp.h>
#include <amqp_framing.h>
#include <librdkafka/rdkafka.h>

#include "router.h"
#include "util.h"

/* What a publish carries, as borrowed views. */
struct record_src {
    const char *exchange;
    size_t exchange_len;
    const char *routing_key;
    size_t routing_key_len;
    const amqp_basic_properties_t *props; /* decoded properties */
    const void *raw_props;                /* encoded property bytes, flags first */
    size_t raw_props_len;
};

/* New headers list for src; the caller owns it (rd_kafka_producev takes it
 * over on success). */
rd_kafka_headers_t *record_headers(const struct record_src *src);

/* The record key for src under target. Sets *key and *key_len (borrowed from
 * src, or written into scratch) or *key = NULL for a null key. A missing
 * header gives a null key. */
void record_key(const struct record_src *src, const struct route_target *target,
                struct buf *scratch, const void **key, size_t *key_len);

/* Text form of a header value: strings as is, numbers in decimal,
 * booleans true/false, void empty, arrays and tables as JSON. */
void record_field_text(struct buf *out, const amqp_field_value_t *v);

/* JSON form of a value (strings quoted and escaped; bytes as a string). */
void record_field_json(struct buf *out, const amqp_field_value_t *v);

#endif
