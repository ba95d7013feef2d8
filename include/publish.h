/* publish.h - the publishing half of a channel: basic.publish assembled
 * from its method, content header and body frames (across frames and
 * reads), routed (router.h) and handed to the sink as one Kafka record
 * (record.h), basic.return for an unroutable mandatory publish, and the
 * channel's publisher confirms.
 *
 * A publish the sink has no room for (SINK_FULL) is parked on its channel
 * and the connection stops reading until publish_retry_parked hands it
 * over. Confirms are sent when the sink reports outcomes: the channel's
 * confirm tracker (confirm.h) names the channel as its owner. */
#ifndef HOPPER_PUBLISH_H
#define HOPPER_PUBLISH_H

#include <stdbool.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "frame.h"

struct chan;
struct intake_pub;
struct sink_msg;

void publish_begin(struct chan *ch, amqp_basic_publish_t *m);
void publish_header(struct chan *ch, const struct frame *f);
void publish_body(struct chan *ch, const struct frame *f);

/* Forget a publish being assembled (the channel closes). */
void publish_discard(struct chan *ch);
/* Nack and free a parked publish (the channel goes). */
void publish_drop_parked(struct chan *ch);
/* Try again to hand a parked publish to the sink. Returns true when done
 * (the channel's held publishes then go on: intake.h). */
bool publish_retry_parked(struct chan *ch);
/* Keep a publish the sink had no room for (SINK_FULL); the connection
 * stops reading until publish_retry_parked hands it over. */
void publish_park(struct chan *ch, const struct sink_msg *m);
/* basic.return of p's message with this code and reply text (cut to 255
 * bytes). */
void publish_send_return(struct chan *ch, uint16_t code, const char *text,
                         const struct intake_pub *p);
/* Re-check the channel's bounds (unconfirmed and held publishes) and
 * the connection's reading. */
void publish_update_limits(struct chan *ch);

void publish_confirm_select(struct chan *ch, amqp_confirm_select_t *m);
/* Send the confirms whose outcomes are known. */
void publish_flush_confirms(struct chan *ch);

#endif
