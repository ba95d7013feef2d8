/* tagmap.h - which upstream delivery tag a bridged record's confirm tag
 * stands for (bridge.h).
 *
 * The bridge numbers the deliveries it hands to Kafka with a confirm
 * tracker (confirm.h), 1, 2, ...; RabbitMQ numbers its deliveries too, but
 * not every delivery reaches the tracker (one no route matches is
 * rejected at once), so the two sequences differ. The map holds the pairs
 * whose outcome was not yet sent upstream: at most the consumer's prefetch,
 * in a fixed table of twice that many slots (open addressing, linear
 * probing, deletion by backward shift). Nothing grows. */
#ifndef HOPPER_TAGMAP_H
#define HOPPER_TAGMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct tagmap {
    struct tagmap_slot {
        uint64_t key; /* confirm tag; 0: empty */
        uint64_t value;
    } * slots;
    size_t mask; /* slots - 1, a power of two */
    size_t n, max;
    uint64_t floor; /* every key below it was taken out (tagmap_take_upto) */
};

/* A map for at most max pairs. */
void tagmap_init(struct tagmap *m, size_t max);
void tagmap_free(struct tagmap *m);

/* Add key (> 0) -> value. -1 when the map holds max pairs already. */
int tagmap_put(struct tagmap *m, uint64_t key, uint64_t value) MUST_CHECK;

/* Take key out; its value in *value. false when absent. */
bool tagmap_take(struct tagmap *m, uint64_t key, uint64_t *value);

/* Take out every key <= upto (a cumulative confirm), calling fn (when
 * not NULL) with each pair taken, in key order. */
void tagmap_take_upto(struct tagmap *m, uint64_t upto,
                      void (*fn)(void *arg, uint64_t key, uint64_t value), void *arg);

#endif
