/* contract.c - the schema cache and the check of one body (see contract.h). */
#include "contract.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "avrojson.h"
#include "jsonschema.h"
#include "log.h"
#include "registry.h"

/* After a failed fetch, checks answer CONTRACT_UNAVAILABLE for this long
 * before the registry is asked again: a registry that is down is not asked
 * once per message. */
#define RETRY_MS 1000
/* At most one violation logged per second; the others are counted. */
#define LOG_EVERY_MS 1000
/* Schema ids framed bodies named that are no version of the subject,
 * remembered per subject so that a publisher repeating one is refused
 * without asking the registry each time (the oldest is forgotten). */
#define REFUSED_IDS 16

/* One version of a subject, compiled. */
struct schema {
    int32_t id, version;
    enum schema_type type;
    struct jsonschema *json;
    struct avrojson *avro;
};

/* Why the last fetch failed. */
enum problem { PROBLEM_NONE, PROBLEM_NO_ANSWER, PROBLEM_NOT_FOUND, PROBLEM_UNUSABLE };

/* A (subject, version) asked for, and what is known of it. */
struct entry {
    struct contracts *cs;
    char *subject;
    int32_t version;       /* asked for; 0: latest */
    struct schema **known; /* every version loaded this run, the current one last */
    size_t n_known;
    bool fetching;
    /* A framed body's id not loaded yet is looked up (registry_fetch_id),
     * one at a time; a lookup that found no answer is not repeated for
     * RETRY_MS. */
    bool looking_up;
    int32_t lookup_id; /* of the last lookup */
    int64_t lookup_failed_ms;
    char lookup_why[512];
    int32_t refused[REFUSED_IDS];
    size_t n_refused;
    int64_t fetched_ms; /* when the current one was confirmed by the registry */
    int64_t failed_ms;  /* last failed fetch, 0: none since the last success */
    enum problem problem;
    char why[1200]; /* of the last failure */
};

struct contracts {
    struct event_base *base;
    const struct config *cfg;
    struct registry *registry;
    struct strmap entries; /* "subject\nversion" -> struct entry */
    void (*ready)(void *arg);
    void *arg;
    size_t fetching;
    struct contract_stats stats;
    int64_t log_due_ms;
    uint64_t log_suppressed;
};

struct contracts *contracts_new(struct event_base *base, const struct config *cfg,
                                void (*ready)(void *arg), void *arg, char *err, size_t errlen)
{
    struct registry *r = registry_new(base, cfg, err, errlen);
    if (!r)
        return NULL;
    struct contracts *cs = xcalloc(1, sizeof *cs);
    *cs = (struct contracts){.base = base, .cfg = cfg, .registry = r, .ready = ready, .arg = arg};
    return cs;
}

static void schema_free(struct schema *s)
{
    if (!s)
        return;
    jsonschema_free(s->json);
    avrojson_free(s->avro);
    free(s);
}

static void entries_free(struct strmap *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        struct entry *e = m->slots[i].key ? m->slots[i].value : NULL;
        if (!e)
            continue;
        for (size_t j = 0; j < e->n_known; j++)
            schema_free(e->known[j]);
        free(e->known);
        free(e->subject);
        free(e);
    }
    strmap_free(m);
}

void contracts_free(struct contracts *cs)
{
    if (!cs)
        return;
    registry_free(cs->registry); /* no callback runs after this */
    entries_free(&cs->entries);
    free(cs);
}

void contract_subject(const struct contract_cfg *k, const char *topic, char *out, size_t outlen)
{
    if (k->subject)
        snprintf(out, outlen, "%s", k->subject);
    else
        snprintf(out, outlen, "%s-value", topic);
}

void contract_dead_letter_topic(const struct contract_cfg *k, const char *topic, char *out,
                                size_t outlen)
{
    if (k->dead_letter_topic)
        snprintf(out, outlen, "%s", k->dead_letter_topic);
    else
        snprintf(out, outlen, "%s.dlq", topic);
}

static const char *type_name(enum schema_type t)
{
    return t == SCHEMA_AVRO ? "Avro" : t == SCHEMA_JSON ? "JSON Schema" : "Protobuf";
}

/* Compile what the registry answered; NULL with why when hopper cannot use
 * it. */
static struct schema *compile(const struct registry_schema *rs, char *why, size_t whylen)
{
    struct schema *s = xcalloc(1, sizeof *s);
    *s = (struct schema){.id = rs->id, .version = rs->version, .type = rs->type};
    char err[256];
    switch (rs->type) {
    case SCHEMA_JSON:
        s->json = jsonschema_compile(rs->text, rs->len, err, sizeof err);
        if (s->json)
            return s;
        snprintf(why, whylen, "its JSON Schema (id %" PRId32 ") does not compile: %s", rs->id, err);
        break;
    case SCHEMA_AVRO:
        s->avro = avrojson_compile(rs->text, rs->len, err, sizeof err);
        if (s->avro)
            return s;
        snprintf(why, whylen, "its Avro schema (id %" PRId32 ") does not compile: %s", rs->id, err);
        break;
    case SCHEMA_PROTOBUF:
        snprintf(why, whylen, "its schema (id %" PRId32 ") is %s, which hopper cannot check yet",
                 rs->id, type_name(rs->type));
        break;
    }
    schema_free(s);
    return NULL;
}

static struct schema *current(const struct entry *e)
{
    return e->n_known ? e->known[e->n_known - 1] : NULL;
}

static struct schema *known_id(const struct entry *e, int32_t id)
{
    for (size_t i = e->n_known; i-- > 0;)
        if (e->known[i]->id == id)
            return e->known[i];
    return NULL;
}

/* A fetched version becomes the current one (a known id moves last). */
static void adopt(struct entry *e, const struct registry_schema *rs)
{
    struct schema *cur = current(e);
    if (cur && cur->id == rs->id)
        return;
    for (size_t i = 0; i < e->n_known; i++) {
        if (e->known[i]->id != rs->id)
            continue;
        struct schema *s = e->known[i];
        memmove(&e->known[i], &e->known[i + 1], (e->n_known - i - 1) * sizeof *e->known);
        e->known[e->n_known - 1] = s;
        return;
    }
    char why[384];
    struct schema *s = compile(rs, why, sizeof why);
    if (!s) {
        snprintf(e->why, sizeof e->why, "version %" PRId32 ": %s", rs->version, why);
        log_error("contract: subject %s: %s%s", e->subject, e->why,
                  cur ? "; the previous version stays in use" : "");
        if (!cur) {
            e->failed_ms = (int64_t)monotonic_ms();
            e->problem = PROBLEM_UNUSABLE;
        }
        return;
    }
    e->known = xrealloc(e->known, (e->n_known + 1) * sizeof *e->known);
    e->known[e->n_known++] = s;
    e->cs->stats.versions_loaded++;
    log_info("contract: subject %s: using version %" PRId32 " (schema id %" PRId32 ", %s)",
             e->subject, rs->version, rs->id, type_name(rs->type));
}

static bool refused_id(const struct entry *e, int32_t id)
{
    for (size_t i = 0; i < e->n_refused && i < REFUSED_IDS; i++)
        if (e->refused[i] == id)
            return true;
    return false;
}

static void refuse_id(struct entry *e, int32_t id)
{
    e->refused[e->n_refused++ % REFUSED_IDS] = id;
}

/* The answer to a framed body's id: an older (or newer) version of the
 * subject joins the known ones behind the current one. */
static void on_looked_up(void *arg, enum registry_status status, const struct registry_schema *rs,
                         const char *why)
{
    struct entry *e = arg;
    struct contracts *cs = e->cs;
    e->looking_up = false;
    cs->fetching--;
    char text[384];
    if (status == REGISTRY_OK && !known_id(e, rs->id)) {
        struct schema *s = compile(rs, text, sizeof text);
        if (s) {
            e->known = xrealloc(e->known, (e->n_known + 1) * sizeof *e->known);
            e->known[e->n_known++] = s;
            /* The current one stays last. */
            if (e->n_known > 1) {
                e->known[e->n_known - 1] = e->known[e->n_known - 2];
                e->known[e->n_known - 2] = s;
            }
            cs->stats.versions_loaded++;
            log_info("contract: subject %s: framed bodies may name version %" PRId32
                     " (schema id %" PRId32 ", %s)",
                     e->subject, rs->version, rs->id, type_name(rs->type));
        } else {
            log_warn("contract: subject %s: version %" PRId32 ": %s", e->subject, rs->version,
                     text);
            refuse_id(e, rs->id);
        }
    } else if (status == REGISTRY_NOT_FOUND) {
        log_info("contract: subject %s: %s; framed bodies naming it are refused", e->subject, why);
        refuse_id(e, e->lookup_id);
    } else if (status != REGISTRY_OK) {
        cs->stats.fetch_failures++;
        e->lookup_failed_ms = (int64_t)monotonic_ms();
        snprintf(e->lookup_why, sizeof e->lookup_why, "%s", why);
        log_warn("contract: subject %s: cannot look up schema id %" PRId32 ": %s", e->subject,
                 e->lookup_id, why);
    }
    if (cs->ready)
        cs->ready(cs->arg);
}

static void on_fetched(void *arg, enum registry_status status, const struct registry_schema *rs,
                       const char *why)
{
    struct entry *e = arg;
    struct contracts *cs = e->cs;
    e->fetching = false;
    cs->fetching--;
    int64_t now = (int64_t)monotonic_ms();
    if (status == REGISTRY_OK) {
        e->fetched_ms = now;
        e->failed_ms = 0;
        e->problem = PROBLEM_NONE;
        adopt(e, rs);
    } else {
        cs->stats.fetch_failures++;
        snprintf(e->why, sizeof e->why, "%s", why);
        /* A cached schema goes on serving; the next refresh is due at once
         * after the back-off. */
        e->failed_ms = now;
        e->problem = status == REGISTRY_NOT_FOUND ? PROBLEM_NOT_FOUND : PROBLEM_NO_ANSWER;
        if (current(e))
            log_warn("contract: cannot refresh subject %s (%s); the cached version stays in use",
                     e->subject, e->why);
        else
            log_warn("contract: subject %s: %s", e->subject, e->why);
    }
    if (cs->ready)
        cs->ready(cs->arg);
}

static void fetch(struct entry *e)
{
    e->fetching = true;
    e->cs->fetching++;
    e->cs->stats.fetches++;
    registry_fetch(e->cs->registry, e->subject, e->version, on_fetched, e);
}

static struct entry *entry_get(struct contracts *cs, const char *subject, int32_t version)
{
    char key[CONTRACT_SUBJECT_MAX + 16];
    snprintf(key, sizeof key, "%s\n%" PRId32, subject, version);
    struct entry *e = strmap_get(&cs->entries, key);
    if (e)
        return e;
    e = xcalloc(1, sizeof *e);
    *e = (struct entry){.cs = cs, .subject = xstrdup(subject), .version = version};
    strmap_put(&cs->entries, key, e);
    return e;
}

static void log_violation(struct contracts *cs, const char *subject, const char *topic,
                          const char *why)
{
    int64_t now = (int64_t)monotonic_ms();
    if (now < cs->log_due_ms) {
        cs->log_suppressed++;
        return;
    }
    cs->log_due_ms = now + LOG_EVERY_MS;
    char more[64] = "";
    if (cs->log_suppressed)
        snprintf(more, sizeof more, " (and %" PRIu64 " more since the last line)",
                 cs->log_suppressed);
    cs->log_suppressed = 0;
    log_warn("contract: a message for topic %s breaks subject %s: %s%s", topic, subject, why, more);
}

static void frame(struct buf *out, int32_t id)
{
    uint8_t f[CONTRACT_FRAME_LEN] = {0, (uint8_t)(id >> 24), (uint8_t)(id >> 16),
                                     (uint8_t)(id >> 8), (uint8_t)id};
    buf_append(out, f, sizeof f);
}

/* The schema a framed body names: one loaded already, or, for a `latest`
 * contract, any version of the subject, looked up in the registry (a
 * pinned contract takes its version only). CONTRACT_PASS with *s set, or
 * another verdict with why. */
static enum contract_verdict framed_schema(const struct contract_cfg *k, struct entry *e,
                                           const uint8_t *body, size_t len, const struct schema **s,
                                           char *why, size_t whylen)
{
    if (len < CONTRACT_FRAME_LEN) {
        snprintf(why, whylen,
                 "a body starting with byte 0 must be a Confluent frame "
                 "(5 bytes or more)");
        return CONTRACT_VIOLATION;
    }
    int32_t id = (int32_t)((uint32_t)body[1] << 24 | (uint32_t)body[2] << 16 |
                           (uint32_t)body[3] << 8 | body[4]);
    if ((*s = known_id(e, id)))
        return CONTRACT_PASS;
    if (k->version || id < 0 || refused_id(e, id)) {
        snprintf(why, whylen,
                 "its frame names schema id %" PRId32 ", not %s of subject %s (current: id "
                 "%" PRId32 ")",
                 id, k->version ? "the pinned version" : "a version", e->subject, current(e)->id);
        return CONTRACT_VIOLATION;
    }
    if (e->looking_up)
        return CONTRACT_WAIT;
    if (e->lookup_id == id && (int64_t)monotonic_ms() - e->lookup_failed_ms < RETRY_MS) {
        snprintf(why, whylen, "cannot look up schema id %" PRId32 ": %s", id, e->lookup_why);
        return CONTRACT_UNAVAILABLE;
    }
    e->looking_up = true;
    e->lookup_id = id;
    e->cs->fetching++;
    e->cs->stats.fetches++;
    registry_fetch_id(e->cs->registry, e->subject, id, on_looked_up, e);
    return CONTRACT_WAIT;
}

/* The body against schema s (the current one, or the one its frame names). */
static enum contract_verdict apply(const struct contract_cfg *k, const struct schema *cur,
                                   struct entry *e, const uint8_t *body, size_t len,
                                   struct buf *out, char *why, size_t whylen)
{
    const struct schema *s = cur;
    bool framed = len > 0 && body[0] == 0;
    if (framed) {
        enum contract_verdict v = framed_schema(k, e, body, len, &s, why, whylen);
        if (v != CONTRACT_PASS)
            return v;
        body += CONTRACT_FRAME_LEN;
        len -= CONTRACT_FRAME_LEN;
    }
    if ((k->format == CONTRACT_JSON && s->type != SCHEMA_JSON) ||
        (k->format == CONTRACT_AVRO && s->type != SCHEMA_AVRO)) {
        snprintf(why, whylen, "subject %s holds %s, the contract says %s", e->subject,
                 type_name(s->type), k->format == CONTRACT_JSON ? "json" : "avro");
        return CONTRACT_UNAVAILABLE;
    }
    if (s->type == SCHEMA_AVRO) {
        /* Avro binary is unreadable without its schema id: always framed. */
        if (framed)
            return avrojson_check_binary(s->avro, body, len, why, whylen) ? CONTRACT_PASS
                                                                          : CONTRACT_VIOLATION;
        frame(out, s->id);
        if (avrojson_encode(s->avro, body, len, out, why, whylen))
            return CONTRACT_PASS;
        out->len = 0;
        return CONTRACT_VIOLATION;
    }
    if (!jsonschema_validate(s->json, body, len, why, whylen))
        return CONTRACT_VIOLATION;
    if (!framed && k->confluent) {
        frame(out, s->id);
        buf_append(out, body, len);
    }
    return CONTRACT_PASS;
}

enum contract_verdict contracts_check(struct contracts *cs, const struct contract_cfg *k,
                                      const char *topic, const void *body, size_t len,
                                      struct buf *out, char *why, size_t whylen)
{
    char subject[CONTRACT_SUBJECT_MAX];
    contract_subject(k, topic, subject, sizeof subject);
    struct entry *e = entry_get(cs, subject, k->version);
    struct schema *cur = current(e);
    int64_t now = (int64_t)monotonic_ms();
    out->len = 0;
    if (!cur) {
        if (e->fetching)
            return CONTRACT_WAIT;
        if (!e->failed_ms || now - e->failed_ms >= RETRY_MS) {
            fetch(e);
            return CONTRACT_WAIT;
        }
        snprintf(why, whylen, "subject %s: %s", subject, e->why);
        cs->stats.unavailable++;
        return CONTRACT_UNAVAILABLE;
    }
    /* `latest` is asked again when it is older than registry.cache (or a
     * second after a failed refresh); the cached one serves meanwhile. */
    bool stale = now - e->fetched_ms >= (int64_t)cs->cfg->registry_cache_ms &&
                 (!e->failed_ms || now - e->failed_ms >= RETRY_MS);
    if (k->version == 0 && stale && !e->fetching)
        fetch(e);
    enum contract_verdict v = apply(k, cur, e, body, len, out, why, whylen);
    if (v == CONTRACT_PASS) {
        cs->stats.passed++;
    } else if (v == CONTRACT_VIOLATION) {
        cs->stats.violations++;
        log_violation(cs, subject, topic, why);
    } else if (v == CONTRACT_UNAVAILABLE) {
        cs->stats.unavailable++;
    }
    return v;
}

/* ---- preflight ---- */

struct preflight {
    const struct config *cfg;
    struct contracts *cs;
    char *err;
    size_t errlen;
    int rc;
};

/* One subject the config names: fetch it (the cache keeps the answer), and
 * place a problem at the contract. */
static void preflight_one(struct preflight *p, const struct contract_cfg *k, const char *topic,
                          const char *key)
{
    if (p->rc)
        return;
    char subject[CONTRACT_SUBJECT_MAX];
    contract_subject(k, topic, subject, sizeof subject);
    struct entry *e = entry_get(p->cs, subject, k->version);
    if (!current(e) && !e->fetching && !e->failed_ms)
        fetch(e);
    while (e->fetching)
        if (event_base_loop(p->cs->base, EVLOOP_ONCE) < 0)
            break;
    struct schema *cur = current(e);
    const char *problem = NULL;
    char text[1300];
    if (!cur && e->problem == PROBLEM_NOT_FOUND) {
        snprintf(text, sizeof text, "is not in the registry (%s)", e->why);
        problem = text;
    } else if (!cur && e->problem == PROBLEM_UNUSABLE) {
        snprintf(text, sizeof text, "cannot be used: %s", e->why);
        problem = text;
    } else if (cur && ((k->format == CONTRACT_JSON && cur->type != SCHEMA_JSON) ||
                       (k->format == CONTRACT_AVRO && cur->type != SCHEMA_AVRO))) {
        snprintf(text, sizeof text, "holds %s, the contract says %s", type_name(cur->type),
                 k->format == CONTRACT_JSON ? "json" : "avro");
        problem = text;
    } else if (!cur) {
        log_warn("%s:%d: %s: cannot check subject %s now (%s); publishes to it wait for the "
                 "registry",
                 p->cfg->path, k->line, key, subject, e->why);
        return;
    }
    if (!problem)
        return;
    snprintf(p->err, p->errlen, "%s:%d:%d: %s: subject %s %s", p->cfg->path, k->line, k->column,
             key, subject, problem);
    p->rc = -1;
}

static bool default_route_on(const struct config *cfg, const struct exchange_cfg *x)
{
    return x->default_route == -1 ? cfg->default_route : x->default_route != 0;
}

int contracts_preflight(const struct config *cfg, struct contracts *cs, char *err, size_t errlen)
{
    struct event_base *base = event_base_new();
    if (!base) {
        snprintf(err, errlen, "registry: cannot make an event base");
        return -1;
    }
    struct contracts *tmp = contracts_new(base, cfg, NULL, NULL, err, errlen);
    if (!tmp) {
        event_base_free(base);
        return -1;
    }
    struct preflight p = {cfg, tmp, err, errlen, 0};
    char key[96], topic[512];
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const struct route_cfg *r = &cfg->routes[i];
        const struct contract_cfg *k = r->contract;
        snprintf(key, sizeof key, "routes[%zu].contract", i);
        /* A route without a contract has its exchange's. */
        for (size_t j = 0; !k && j < cfg->n_exchanges; j++) {
            if (strcmp(cfg->exchanges[j].name, r->exchange) || !cfg->exchanges[j].contract)
                continue;
            k = cfg->exchanges[j].contract;
            snprintf(key, sizeof key, "exchanges[%zu].contract (for routes[%zu])", j, i);
        }
        if (k)
            preflight_one(&p, k, r->topic, key);
    }
    for (size_t i = 0; i < cfg->n_exchanges; i++) {
        const struct exchange_cfg *x = &cfg->exchanges[i];
        if (!x->contract || !default_route_on(cfg, x))
            continue;
        snprintf(key, sizeof key, "exchanges[%zu].contract", i);
        snprintf(topic, sizeof topic, "%s%s", cfg->topic_prefix, x->name);
        preflight_one(&p, x->contract, topic, key);
    }
    /* What was fetched serves the first publishes. */
    if (p.rc == 0 && cs && cs->entries.len == 0) {
        struct strmap swap = cs->entries;
        cs->entries = tmp->entries;
        tmp->entries = swap;
        for (size_t i = 0; i < cs->entries.cap; i++) {
            struct entry *e = cs->entries.slots[i].key ? cs->entries.slots[i].value : NULL;
            if (e) {
                e->cs = cs;
                e->fetched_ms = e->failed_ms ? 0 : e->fetched_ms;
            }
        }
    }
    contracts_free(tmp);
    event_base_free(base);
    return p.rc;
}
