/* confirm.h - publisher-confirm bookkeeping for one channel.
 *
 * After confirm.select every basic.publish on the channel gets the next
 * delivery tag (1, 2, ...). Outcomes (ack: Kafka persisted it, or nack)
 * arrive in any order. confirm_flush() turns them into basic.ack /
 * basic.nack frames: `multiple` is used only over an unbroken run of tags
 * that all have the same outcome, so a cumulative ack never covers a nack
 * and vice versa. Tags resolved past a still-pending one are sent one by
 * one, so a slow partition does not delay the others' confirms.
 *
 * A channel that closes with messages in flight detaches its tracker; the
 * tracker then lives until the last outcome arrives, and emits nothing. */
#ifndef HOPPER_CONFIRM_H
#define HOPPER_CONFIRM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct confirm;

typedef void (*confirm_emit_fn)(void *arg, uint64_t tag, bool multiple, bool ack);

/* Whom a tracker's outcomes go back to: a channel's publisher, or hopper
 * itself for a message it publishes on its own (a dead letter). The sink
 * reports an outcome to the server, which lists the owner (dirty) and
 * calls flush once per batch of reports. */
struct confirm_owner {
    void (*flush)(struct confirm_owner *o);
    bool dirty; /* on the server's flush list */
};

struct confirm *confirm_new(void);

/* Assign the next delivery tag to a new publish (now pending). */
uint64_t confirm_next(struct confirm *c);

/* Record the outcome of `tag`. Returns true if this freed a detached
 * tracker (the caller must not touch c again). Unknown or repeated tags
 * are ignored. */
bool confirm_resolve(struct confirm *c, uint64_t tag, bool ack) MUST_CHECK;

/* Emit every frame that can be sent now. */
void confirm_flush(struct confirm *c, confirm_emit_fn emit, void *arg);

/* Tags published but not yet sent to the client. */
size_t confirm_unconfirmed(const struct confirm *c);

/* Whether outcomes wait to be flushed. */
bool confirm_dirty(const struct confirm *c);

/* Who owns c, for routing outcomes back to it; NULL once detached. */
void confirm_set_owner(struct confirm *c, struct confirm_owner *owner);
struct confirm_owner *confirm_owner(const struct confirm *c);

/* The channel is gone. Frees c at once if nothing is pending; else c lives
 * until the last pending tag resolves. */
void confirm_detach(struct confirm *c);

#endif
