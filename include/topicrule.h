/* topicrule.h - which Kafka topics a publish may go to: the rule of
 * kafka.auto_create_topics and kafka.auto_create_max.
 *
 * A publish routed to topic T goes to Kafka when
 *  - T is the operator's: named in the config (a route's topic, a queue's
 *    topics, the topic of a configured exchange with the default route on,
 *    a contract's dead-letter topic, the topology topic); or
 *  - hopper may create T: auto_create_topics is true or T matches one of
 *    its patterns, and fewer than auto_create_max topics were allowed to be
 *    created in this run; or
 *  - T exists in Kafka.
 * Otherwise the publish is unroutable (intake.h).
 *
 * Whether T exists is asked from librdkafka without blocking the loop
 * (DescribeTopics, its result on the prompt producer's main queue) and
 * kept in a cache: a topic that exists is known for the rest of the run,
 * one that does not is asked again after ABSENT_MS. While the question is
 * out the answer is TOPICRULE_UNKNOWN and the caller waits; the sink calls
 * its topics_known callback when answers arrive.
 *
 * The cap counts names the rule let through because hopper may create
 * them; a name Kafka then reports as existing already gives its count back.
 * Topics created for declared queues and dead letters are not checked
 * here (docs/limits.md). */
#ifndef HOPPER_TOPICRULE_H
#define HOPPER_TOPICRULE_H

#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "producer.h"

/* How long a publish waits for the answer before it is nacked (the
 * question's own deadline in librdkafka is as long). */
#define TOPICRULE_WAIT_MS 5000

enum topicrule_answer {
    TOPICRULE_ALLOWED,   /* to Kafka */
    TOPICRULE_UNKNOWN,   /* Kafka is being asked whether the topic exists: wait */
    TOPICRULE_FORBIDDEN, /* unroutable */
};

/* Why a topic was refused, for the log and the client. */
struct topicrule_refusal {
    char why[200];
    bool log; /* the first refusal of this name since it was asked, and the log is not flooded */
    unsigned long left_out; /* refusal lines not logged since the last one */
};

struct topicrule;

/* Whether name matches pattern, where '*' stands for any run of characters
 * (none included) and every other character for itself. */
bool topicrule_match(const char *pattern, const char *name);

/* The rule of cfg. producers is the sink's array (PRODUCER_LANES of them,
 * possibly rebuilt or empty later): questions go through the prompt one.
 * Both must outlive the rule. */
struct topicrule *topicrule_new(const struct config *cfg, const struct producer *producers);
void topicrule_free(struct topicrule *r);

/* May a publish go to topic? With FORBIDDEN, *refusal says why. */
enum topicrule_answer topicrule_check(struct topicrule *r, const char *topic,
                                      struct topicrule_refusal *refusal);

/* Kafka answered a CreateTopics for name (whoever asked): the topic exists
 * unless err says otherwise. */
void topicrule_created(struct topicrule *r, const char *name, rd_kafka_resp_err_t err);

/* A DESCRIBETOPICS_RESULT event from a producer's main queue. Returns true
 * when it settled a question (callers waiting on UNKNOWN may go on). */
bool topicrule_described(struct topicrule *r, rd_kafka_event_t *ev);

#endif
