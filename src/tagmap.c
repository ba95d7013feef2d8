/* tagmap.c - confirm tag to delivery tag, bounded (see tagmap.h). */
#include "tagmap.h"

#include <stdlib.h>

void tagmap_init(struct tagmap *m, size_t max)
{
    size_t cap = 4;
    while (cap < 2 * max)
        cap *= 2;
    m->slots = xcalloc(cap, sizeof *m->slots);
    m->mask = cap - 1;
    m->n = 0;
    m->max = max;
    m->floor = 1;
}

void tagmap_free(struct tagmap *m)
{
    FREE_AND_NULL(m->slots);
    m->n = 0;
}

static size_t home(const struct tagmap *m, uint64_t key)
{
    return (size_t)(key * UINT64_C(0x9E3779B97F4A7C15) >> 32) & m->mask;
}

int tagmap_put(struct tagmap *m, uint64_t key, uint64_t value)
{
    if (m->n >= m->max || key == 0)
        return -1;
    size_t i = home(m, key);
    while (m->slots[i].key && m->slots[i].key != key)
        i = (i + 1) & m->mask;
    if (!m->slots[i].key)
        m->n++;
    m->slots[i] = (struct tagmap_slot){key, value};
    return 0;
}

bool tagmap_take(struct tagmap *m, uint64_t key, uint64_t *value)
{
    if (key == 0)
        return false;
    size_t i = home(m, key);
    while (m->slots[i].key != key) {
        if (!m->slots[i].key)
            return false;
        i = (i + 1) & m->mask;
    }
    if (value)
        *value = m->slots[i].value;
    /* Backward shift: move later members of the run into the hole when
     * their home does not lie (cyclically) between the hole and them. */
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        if (!m->slots[j].key)
            break;
        size_t h = home(m, m->slots[j].key);
        bool stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
        if (stays)
            continue;
        m->slots[hole] = m->slots[j];
        hole = j;
    }
    m->slots[hole].key = 0;
    m->n--;
    return true;
}

void tagmap_take_upto(struct tagmap *m, uint64_t upto,
                      void (*fn)(void *arg, uint64_t key, uint64_t value), void *arg)
{
    /* Each tag value is passed once over the map's life. */
    for (; m->floor <= upto && m->n; m->floor++) {
        uint64_t v;
        if (tagmap_take(m, m->floor, &v) && fn)
            fn(arg, m->floor, v);
    }
    if (m->floor <= upto)
        m->floor = upto + 1;
}
