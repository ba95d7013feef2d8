/* contract.h - message contracts: the schemas in a schema registry that
 * records must match before they reach Kafka (docs/contracts.md).
 *
 * A contract (config.h, struct contract_cfg) names a subject, by default
 * "<topic>-value" (Confluent's TopicNameStrategy), and a version, by
 * default the latest. This module keeps every subject's schema it was
 * asked for, compiled (jsonschema.h for JSON Schema, avrojson.h for
 * Avro), and checks bodies against it:
 *
 *  - A cached schema is used at once. A `latest` one older than
 *    registry.cache is asked for again in the background while the cached
 *    one goes on serving, so a new version is picked up without a restart,
 *    and a registry that went away changes nothing for cached subjects.
 *  - A schema not cached yet: the check answers CONTRACT_WAIT and the
 *    registry is asked (registry.h); `ready` runs when the answer is in, and
 *    the caller checks again. The caller bounds the wait (registry.wait).
 *  - No answer, or no such subject: CONTRACT_UNAVAILABLE, and the registry
 *    is asked again at the next check a second later at the earliest.
 *
 * Bodies: JSON Schema checks the JSON text, and with `encode: confluent`
 * the record is the Confluent frame (byte 0, the 4-byte schema id) and the
 * text. Avro: the JSON body is validated and encoded to Avro binary, framed.
 * A body that carries the frame already (first byte 0) keeps it when its id
 * is one of the subject's versions, and its payload is checked against that
 * version. An id not loaded yet is looked up in the registry (the check
 * answers CONTRACT_WAIT meanwhile); a pinned contract takes its own
 * version's id only. */
#ifndef HOPPER_CONTRACT_H
#define HOPPER_CONTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "config.h"
#include "util.h"

/* Longest subject: a topic (249) and "-value", or a configured name. */
#define CONTRACT_SUBJECT_MAX 512
/* The Confluent frame: magic byte 0 and the schema id, big-endian. */
#define CONTRACT_FRAME_LEN 5

struct contracts;

enum contract_verdict {
    CONTRACT_PASS,        /* send it; the record body is `out` when out->len > 0 */
    CONTRACT_VIOLATION,   /* the body breaks the contract: why says where */
    CONTRACT_WAIT,        /* the schema is being fetched: check again after `ready` */
    CONTRACT_UNAVAILABLE, /* no schema to check with (registry down, no such subject) */
};

struct contract_stats {
    uint64_t passed, violations, unavailable; /* checks by outcome */
    uint64_t fetches, fetch_failures, versions_loaded;
};

/* A registry client on base (cfg->registry_url must be set). ready(arg)
 * runs from the loop each time a fetch some check waited for finished. */
struct contracts *contracts_new(struct event_base *base, const struct config *cfg,
                                void (*ready)(void *arg), void *arg, char *err, size_t errlen);
void contracts_free(struct contracts *cs);

/* Check one body against contract k for a record to `topic`. On
 * CONTRACT_PASS `out` is either empty (send the body as it is) or holds the
 * record's body; `why` is set for the other verdicts. */
enum contract_verdict contracts_check(struct contracts *cs, const struct contract_cfg *k,
                                      const char *topic, const void *body, size_t len,
                                      struct buf *out, char *why, size_t whylen) MUST_CHECK;

/* The subject contract k names for records to topic. */
void contract_subject(const struct contract_cfg *k, const char *topic, char *out, size_t outlen);
/* Where k sends what violates it: its dead_letter_topic or "<topic>.dlq". */
void contract_dead_letter_topic(const struct contract_cfg *k, const char *topic, char *out,
                                size_t outlen);

/* Before serving: fetch and compile every subject the config names for a
 * known topic (routes' topics, exchanges' default topics). A subject
 * missing from a registry that answers, or a schema hopper cannot use, is
 * a configuration error: -1 and "file:line:col: key: problem" in err. An
 * unreachable registry is only logged (0). With cs, the schemas fetched
 * are cached there, so the first publishes do not wait. */
int contracts_preflight(const struct config *cfg, struct contracts *cs, char *err,
                        size_t errlen) MUST_CHECK;

#endif
