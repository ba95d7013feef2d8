/* producer.h - one of the sink's two librdkafka producers, built from
 * struct config: the properties hopper sets, the user's kafka.properties
 * (refused where they would break "a confirm means persisted"), the
 * events it reports, and its main queue signalling the sink's pipe.
 *
 * The two are lanes: the prompt producer sends what it is given at once
 * (linger.ms 0), the batch producer lingers until a batch is whole.
 * producer.c says why there are two. */
#ifndef HOPPER_PRODUCER_H
#define HOPPER_PRODUCER_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "util.h"

enum producer_lane { PRODUCER_PROMPT, PRODUCER_BATCH, PRODUCER_LANES };

struct producer {
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
};

/* Numbers from a producer's effective configuration that the partition
 * gate works with (gate.h), as librdkafka reads them. */
struct producer_limits {
    uint64_t batch_bytes;   /* batch.size */
    uint32_t batch_msgs;    /* batch.num.messages */
    int64_t msg_timeout_ms; /* message.timeout.ms; "infinite" is INT64_MAX / 2 */
    int64_t refresh_ms;     /* topic.metadata.refresh.interval.ms; "never" is INT64_MAX / 2 */
};

/* Build lane's producer into p, its main queue signalling signal_fd, and
 * read its numbers into limits. Returns 0, or -1 with p empty and err
 * saying why (a property librdkafka or hopper refuses, or rd_kafka_new
 * failing). */
int producer_open(struct producer *p, const struct config *cfg, enum producer_lane lane,
                  int signal_fd, struct producer_limits *limits, char *err,
                  size_t errlen) MUST_CHECK;

/* Destroy p's queue and producer, if it has them; p is empty afterwards. */
void producer_close(struct producer *p);

#endif
