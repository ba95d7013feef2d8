/* registry.h - the client side of a schema registry's REST API (Confluent
 * Schema Registry's, which Apicurio serves under /apis/ccompat/v7): one
 * question, "what is version V of subject S" (or "which version of S has
 * schema id N"), asked over libevent's evhttp from the event loop, never
 * blocking it.
 *
 * One keep-alive HTTP connection per registry, requests queued on it in
 * order (evhttp's); each request has registry.timeout to finish, connect
 * included. Basic authentication when registry.username is set. Answers
 * are bounded (REGISTRY_MAX_ANSWER) and parsed with jansson; whatever the
 * registry says is untrusted input like a client's frames. */
#ifndef HOPPER_REGISTRY_H
#define HOPPER_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "config.h"

/* Largest answer read: a schema of a few hundred KiB is already unusual. */
#define REGISTRY_MAX_ANSWER (4u << 20)

struct registry;

enum registry_status {
    REGISTRY_OK,
    REGISTRY_NOT_FOUND,   /* 404: no such subject, or no such version of it */
    REGISTRY_UNAVAILABLE, /* no answer in time, refused, 5xx, 401, a malformed answer */
};

enum schema_type { SCHEMA_AVRO, SCHEMA_JSON, SCHEMA_PROTOBUF };

struct registry_schema {
    int32_t id;      /* the registry's global schema id (the Confluent frame's) */
    int32_t version; /* of the subject */
    enum schema_type type;
    const char *text; /* the schema itself; valid during the callback only */
    size_t len;
};

/* The outcome of one registry_fetch: s is set when status is REGISTRY_OK,
 * why (one line) otherwise. */
typedef void (*registry_fn)(void *arg, enum registry_status status, const struct registry_schema *s,
                            const char *why);

/* A client of cfg->registry_url (checked by the config: http, non-empty).
 * Returns NULL with err set when the URL cannot be used. */
struct registry *registry_new(struct event_base *base, const struct config *cfg, char *err,
                              size_t errlen);
/* Drop every question still open (their callbacks never run) and free. */
void registry_free(struct registry *r);

/* Ask for `version` of `subject` (0: the latest). fn runs later, from the
 * loop, exactly once (unless registry_free comes first). */
void registry_fetch(struct registry *r, const char *subject, int32_t version, registry_fn fn,
                    void *arg);

/* The version of `subject` whose schema id is `id`, for a framed body whose
 * id this hopper has not loaded: GET /schemas/ids/ID/versions, then that
 * version as registry_fetch gives it. REGISTRY_NOT_FOUND when the registry
 * knows no such id or the id is no version of the subject. */
void registry_fetch_id(struct registry *r, const char *subject, int32_t id, registry_fn fn,
                       void *arg);

/* Parse a registry's answer to GET /schemas/ids/ID/versions, a list of
 * {"subject", "version"}: true with *version the subject's version
 * holding the id (0: none), false with why when the answer is malformed. */
bool registry_parse_versions(const char *body, size_t len, const char *subject, int32_t *version,
                             char *why, size_t whylen);

/* Parse a registry's answer to GET /subjects/S/versions/V (exposed for
 * the unit tests and the fuzzer). Returns true and fills *s (s->text
 * points into *root, which the caller frees with json_decref) or false
 * with why. */
struct json_t;
bool registry_parse_answer(const char *body, size_t len, struct registry_schema *s,
                           struct json_t **root, char *why, size_t whylen);

#endif
