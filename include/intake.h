/* intake.h - the last step of a publish bound for Kafka: its topic
 * allowed (topicrule.h), its contract (contract.h) checked, and the record
 * handed to the sink.
 *
 * A publish to a topic hopper may not create and that does not exist is
 * unroutable: basic.return 312 NO_ROUTE to a mandatory publisher, then
 * the ack, as for a publish no route matches. Whether the topic exists may
 * take a question to Kafka: the publish is held meanwhile, as below, at
 * most TOPICRULE_WAIT_MS, then nacked.
 *
 * Without a contract a publish goes to the sink at once, as before. With
 * one, its body is checked against the subject's schema: it passes (maybe
 * re-encoded, maybe framed) and goes on; or it breaks the contract and is
 * refused (nack; first basic.return 406 PRECONDITION_FAILED to a
 * mandatory publisher) or, with `on_violation: dead_letter`, written to the
 * dead-letter topic with the reason in a header and confirmed once that
 * record is persisted; or no schema can be had (registry down and nothing
 * cached, no such subject) and it is nacked.
 *
 * A publish whose schema is still being fetched, or whose topic Kafka is
 * asked about, is held on its channel, and every later publish of that
 * channel waits behind it, so the records of one channel are handed to the
 * sink (or come back unroutable) in the order they were published. Within
 * a partition that is the order Kafka keeps; records bound for different
 * partitions may still be persisted in another order, as when one
 * partition's leader is busy or moving (the sink holds its records, gate.h).
 * Other channels go on. A held publish waits at most registry.wait for a schema and
 * TOPICRULE_WAIT_MS for a topic's answer, then is nacked. Bounds: a channel holds at most
 * limits.max_unconfirmed publishes before its connection stops reading, and the held bodies of
 * every channel at most a quarter of limits.max_inflight_bytes before every publisher is blocked
 * (server.h). */
#ifndef HOPPER_INTAKE_H
#define HOPPER_INTAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "sink.h"

struct chan;
struct server;

/* A publish on its way to Kafka. Strings and props are borrowed for the
 * call; the body and headers of m belong to intake from the call on. */
struct intake_pub {
    struct sink_msg m;
    const struct contract_cfg *contract; /* NULL: none */
    bool mandatory;
    bool in_memory;      /* a transient queue (feed.h) took a copy too */
    bool memory_refused; /* a transient queue refused its copy */
    const char *exchange, *routing_key;
    uint8_t exchange_len, routing_key_len;
    const void *raw_props; /* the content header's property bytes, for a basic.return */
    size_t raw_props_len;
};

void intake_publish(struct chan *ch, struct intake_pub *p);

/* Go on with the channel's held publishes: a schema or an answer about a
 * topic arrived, or its parked publish was taken. */
void intake_release(struct chan *ch);
/* Every holding channel: a fetch or a question finished, or deadlines may
 * have passed. */
void intake_release_all(struct server *srv);
/* The channel goes: nack and free what it holds. */
void intake_drop(struct chan *ch);

/* Publishes held on the channel (its connection stops reading at
 * limits.max_unconfirmed). */
size_t intake_held(const struct chan *ch);

#endif
