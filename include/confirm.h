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

/* The channel that owns c, for routing outcomes back to it; NULL once
 * detached. */
void confirm_set_owner(struct confirm *c, void *owner);
void *confirm_owner(const struct confirm *c);

/* The channel is gone. Frees c at once if nothing is pending; else c lives
 * until the last pending tag resolves. */
void confirm_detach(struct confirm *c);

#endif
