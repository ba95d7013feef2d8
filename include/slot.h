/* slot.h - the table of messages in flight: one slot per message the sink
 * has accepted and not yet settled, whether it waits in the partition gate
 * or sits in librdkafka.
 *
 * A slot's index (plus one) is the message's opaque in librdkafka, so a
 * delivery report finds its slot, and through it the channel's confirm
 * tracker, without a per-message allocation. Slots are also the unit of
 * the in-flight bound: the table sums their cost (slot_cost). Free slots
 * form a list through `next`; a held slot's `next` links its queue in the
 * gate (gate.h). */
#ifndef HOPPER_SLOT_H
#define HOPPER_SLOT_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "confirm.h"

/* The end of a list of slots. */
#define SLOT_NONE UINT32_MAX

enum slot_state {
    SLOT_FREE,
    SLOT_TAKEN,    /* accepted, not yet held or handed over */
    SLOT_HELD,     /* waiting in its partition's queue here */
    SLOT_IN_KAFKA, /* handed to librdkafka; a delivery report will come */
};

struct topic;

struct slot {
    enum slot_state state;
    struct confirm *tracker; /* NULL: no confirm wanted */
    uint64_t tag;
    uint64_t cost;
    struct topic *topic;
    int32_t partition; /* RD_KAFKA_PARTITION_UA: handed over unpartitioned */
    uint32_t next;     /* free list or held queue link */
    uint8_t requeues;  /* times librdkafka lost its partition (gate_requeue) */
    /* Held only: what producev will take, and since when it waits. */
    int64_t held_since_ms;
    void *body;
    size_t body_len;
    void *key; /* a copy: the caller's key lives only for the call */
    size_t key_len;
    rd_kafka_headers_t *headers;
};

struct slot_table {
    struct slot *at;
    uint32_t n_slots; /* slots ever used (high mark) */
    uint32_t cap_slots;
    uint32_t free_head; /* SLOT_NONE: empty */
    size_t in_flight;
    uint64_t bytes_in_flight;
};

void slot_table_init(struct slot_table *st);
/* Frees the table itself; what its slots own must be gone already. */
void slot_table_free(struct slot_table *st);

/* What a message counts against the in-flight bound. */
uint64_t slot_cost(size_t body_len, size_t key_len);

/* A slot for a message of the given cost; the table grows as needed. */
uint32_t slot_take(struct slot_table *st, struct confirm *tracker, uint64_t tag, uint64_t cost);
/* Put slot i back on the free list. */
void slot_release(struct slot_table *st, uint32_t i);

/* Drop what a held slot owns (it was never handed over). */
void slot_free_payload(struct slot *sl);
/* A copy of the record key in slot sl (none for a null key). */
void slot_keep_key(struct slot *sl, const void *key, size_t key_len);

#endif
