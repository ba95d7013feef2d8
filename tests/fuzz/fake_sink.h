/* fake_sink.h - controls of the in-process sink that replaces src/sink.c in
 * the fuzz harnesses (see fake_sink.c). The sink itself implements every
 * function of include/sink.h. */
#ifndef HOPPER_FUZZ_FAKE_SINK_H
#define HOPPER_FUZZ_FAKE_SINK_H

#include <stdbool.h>
#include <stddef.h>

#include "sink.h"

/* Policy bits, from the fuzz input. */
#define FAKE_SINK_OUTCOME_MASK 0x03 /* 0 ack all, 1 nack all, 2 mixed, 3 mixed + refusals */
#define FAKE_SINK_REVERSE 0x04      /* deliver a batch of reports newest first */
#define FAKE_SINK_SMALL_QUEUE 0x08  /* SINK_FULL past two messages in flight */
#define FAKE_SINK_HOLD 0x10         /* keep every report until fake_sink_release */

/* Every message costs its body and key plus this, as in slot.c. */
#define FAKE_SINK_MSG_OVERHEAD 1024
/* The fake's own in-flight bound: a handful of messages, so that the
 * blocked / unblocked switch is reachable with small inputs. */
#define FAKE_SINK_MAX_INFLIGHT_BYTES 4096

void fake_sink_set_policy(struct sink *s, unsigned policy);

/* Stop holding reports: they are delivered on the next loop iteration. */
void fake_sink_release(struct sink *s);

/* Reports queued and not yet delivered. */
size_t fake_sink_pending(const struct sink *s);

/* Reports delivered so far (for the harness's progress check). */
unsigned long fake_sink_settled(const struct sink *s);

#endif
