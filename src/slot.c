/* slot.c - the table of messages in flight (see slot.h).
 *
 * Slots are the unit of the in-flight bound: their cost (body plus a fixed
 * allowance for key, headers and librdkafka's bookkeeping) is summed
 * against limits.max_inflight_bytes, whether the message is in librdkafka
 * or still held in the gate. */
#include "slot.h"

#include <string.h>

#include "util.h"

/* Per-message allowance on top of body and key, so that the bound holds for
 * what a message really costs: its record headers (~500 bytes for hopper's
 * four), librdkafka's message struct (~250), its slot here (~100, twice
 * that while the table has just doubled) and, while held, the key's copy.
 * Also what bounds a flood of empty messages. */
#define MSG_OVERHEAD 1024

void slot_table_init(struct slot_table *st)
{
    *st = (struct slot_table){.free_head = SLOT_NONE};
}

void slot_table_free(struct slot_table *st)
{
    FREE_AND_NULL(st->at);
}

uint64_t slot_cost(size_t body_len, size_t key_len)
{
    return body_len + key_len + MSG_OVERHEAD;
}

uint32_t slot_take(struct slot_table *st, struct confirm *tracker, uint64_t tag, uint64_t cost)
{
    uint32_t i;
    if (st->free_head != SLOT_NONE) {
        i = st->free_head;
        st->free_head = st->at[i].next;
    } else {
        if (st->n_slots == st->cap_slots) {
            st->cap_slots = st->cap_slots ? st->cap_slots * 2 : 1024;
            st->at = xrealloc(st->at, st->cap_slots * sizeof *st->at);
        }
        i = st->n_slots++;
    }
    st->at[i] = (struct slot){
        .state = SLOT_TAKEN, .tracker = tracker, .tag = tag, .cost = cost, .next = SLOT_NONE};
    st->in_flight++;
    st->bytes_in_flight += cost;
    return i;
}

void slot_release(struct slot_table *st, uint32_t i)
{
    struct slot *sl = &st->at[i];
    st->in_flight--;
    st->bytes_in_flight -= sl->cost;
    sl->state = SLOT_FREE;
    sl->tracker = NULL;
    sl->next = st->free_head;
    st->free_head = i;
}

void slot_free_payload(struct slot *sl)
{
    FREE_AND_NULL(sl->body);
    FREE_AND_NULL(sl->key);
    if (sl->headers)
        rd_kafka_headers_destroy(sl->headers);
    sl->headers = NULL;
}

void slot_keep_key(struct slot *sl, const void *key, size_t key_len)
{
    if (!key)
        return;
    sl->key = xmalloc(key_len ? key_len : 1);
    memcpy(sl->key, key, key_len);
    sl->key_len = key_len;
}
