/* topicrule.c - which topics a publish may go to (see topicrule.h).
 *
 * One cache, name -> entry: ALLOWED for the rest of the run (the
 * operator's, let through to be created, or known to exist), or one of the
 * states of the question "does it exist?": ASKING (a DescribeTopics is
 * out), ABSENT (no; asked again after ABSENT_MS), FAILED (no answer; asked
 * again after RETRY_MS). Entries that are not ALLOWED are bounded by
 * MAX_QUESTIONS: a client publishing to random names costs a bounded
 * cache, and past it new names wait (and are nacked at their deadline)
 * until old answers expire. */
#include "topicrule.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* An absent topic is asked about again after this long. */
#define ABSENT_MS 5000
/* A question librdkafka did not answer (an error, a timeout) is asked again
 * after this long. */
#define RETRY_MS 1000
/* After a first "no such topic", Kafka is asked again this much later
 * before the topic counts as absent. */
#define CONFIRM_MS 1000
/* librdkafka's deadline for one question; an ASKING entry older than twice
 * this lost its answer (the producers were rebuilt) and is asked again. */
#define ASK_TIMEOUT_MS TOPICRULE_WAIT_MS
/* Entries other than ALLOWED. */
#define MAX_QUESTIONS 16384
/* Refusal lines: at most LOG_BURST per LOG_WINDOW_MS, the rest counted. */
#define LOG_BURST 10
#define LOG_WINDOW_MS 10000

enum entry_state { ENTRY_ALLOWED, ENTRY_ASKING, ENTRY_ABSENT, ENTRY_FAILED };

struct entry {
    enum entry_state state;
    bool counted;     /* holds one of auto_create_max */
    bool logged;      /* its refusal was logged */
    bool absent_once; /* Kafka said "no such topic" once; a second answer decides */
    int64_t at_ms;    /* ASKING: since; ABSENT, FAILED: when to ask again */
    uint64_t ask;     /* ASKING: the question's id */
};

struct topicrule {
    const struct config *cfg;
    const struct producer *producers;
    struct strmap entries;
    size_t n_questions; /* entries not ALLOWED */
    uint32_t n_counted; /* against auto_create_max */
    uint64_t next_ask;
    int64_t swept_ms;
    int64_t log_window_ms;
    unsigned log_lines;
    unsigned long log_left_out;
};

static int64_t now_ms(void)
{
    return (int64_t)monotonic_ms();
}

bool topicrule_match(const char *pattern, const char *name)
{
    /* Greedy with one backtrack point, the last '*': linear enough for
     * names of at most 249 characters. */
    const char *star = NULL, *resume = NULL;
    while (*name) {
        if (*pattern == '*') {
            star = pattern++;
            resume = name;
        } else if (*pattern == *name) {
            pattern++;
            name++;
        } else if (star) {
            pattern = star + 1;
            name = ++resume;
        } else {
            return false;
        }
    }
    while (*pattern == '*')
        pattern++;
    return !*pattern;
}

static struct entry *entry_put(struct topicrule *r, const char *name, enum entry_state state)
{
    struct entry *e = strmap_get(&r->entries, name);
    if (!e) {
        e = xcalloc(1, sizeof *e);
        e->state = ENTRY_ALLOWED;
        strmap_put(&r->entries, name, e);
    }
    if (e->state != ENTRY_ALLOWED)
        r->n_questions--;
    if (state != ENTRY_ALLOWED)
        r->n_questions++;
    e->state = state;
    return e;
}

static void allow(struct topicrule *r, const char *name)
{
    if (name && *name)
        entry_put(r, name, ENTRY_ALLOWED);
}

/* The operator's topics (topicrule.h), allowed from the start. */
static void allow_configured(struct topicrule *r)
{
    const struct config *cfg = r->cfg;
    char name[600];
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const struct route_cfg *rt = &cfg->routes[i];
        allow(r, rt->topic);
        if (rt->contract && rt->contract->dead_letter && !rt->contract->dead_letter_topic) {
            snprintf(name, sizeof name, "%s.dlq", rt->topic);
            allow(r, name);
        }
        if (rt->contract)
            allow(r, rt->contract->dead_letter_topic);
    }
    for (size_t i = 0; i < cfg->n_queues; i++)
        for (size_t j = 0; j < cfg->queues[i].n_topics; j++)
            allow(r, cfg->queues[i].topics[j]);
    for (size_t i = 0; i < cfg->n_exchanges; i++) {
        const struct exchange_cfg *x = &cfg->exchanges[i];
        bool routed = x->default_route == 1 || (x->default_route == -1 && cfg->default_route);
        if (routed) {
            snprintf(name, sizeof name, "%s%s", cfg->topic_prefix, x->name);
            allow(r, name);
        }
        if (x->contract && x->contract->dead_letter && !x->contract->dead_letter_topic) {
            snprintf(name, sizeof name, "%s%s.dlq", cfg->topic_prefix, x->name);
            allow(r, name);
        }
        if (x->contract)
            allow(r, x->contract->dead_letter_topic);
    }
    allow(r, cfg->topology_topic);
}

struct topicrule *topicrule_new(const struct config *cfg, const struct producer *producers)
{
    struct topicrule *r = xcalloc(1, sizeof *r);
    r->cfg = cfg;
    r->producers = producers;
    allow_configured(r);
    return r;
}

void topicrule_free(struct topicrule *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->entries.cap; i++)
        free(r->entries.slots[i].value);
    strmap_free(&r->entries);
    free(r);
}

/* Whether hopper may create name: a pattern, and the cap. */
static bool may_create(const struct topicrule *r, const char *name, bool *capped)
{
    const struct config *cfg = r->cfg;
    *capped = false;
    if (!cfg->auto_create_topics)
        return false;
    bool matched = cfg->n_create_patterns == 0;
    for (size_t i = 0; !matched && i < cfg->n_create_patterns; i++)
        matched = topicrule_match(cfg->create_patterns[i], name);
    if (!matched)
        return false;
    *capped = r->n_counted >= cfg->auto_create_max;
    return !*capped;
}

/* Forget the answers that are due to be asked again, to make room. */
static void sweep(struct topicrule *r, int64_t now)
{
    if (now - r->swept_ms < RETRY_MS)
        return;
    r->swept_ms = now;
    char **due = xcalloc(r->n_questions + 1, sizeof *due);
    size_t n = 0;
    for (size_t i = 0; i < r->entries.cap && n < r->n_questions; i++) {
        const struct strmap_entry *se = &r->entries.slots[i];
        const struct entry *e = se->key ? se->value : NULL;
        if (e && (e->state == ENTRY_ABSENT || e->state == ENTRY_FAILED) && now >= e->at_ms)
            due[n++] = se->key;
    }
    /* strmap_del moves slots and frees the key: copy first. */
    for (size_t i = 0; i < n; i++)
        due[i] = xstrdup(due[i]);
    for (size_t i = 0; i < n; i++) {
        free(strmap_del(&r->entries, due[i]));
        free(due[i]);
        r->n_questions--;
    }
    free(due);
}

/* Send the question "does name exist?". */
static void ask(struct topicrule *r, const char *name, int64_t now)
{
    struct entry *e = entry_put(r, name, ENTRY_ASKING);
    e->at_ms = now;
    e->ask = ++r->next_ask;
    rd_kafka_t *rk = r->producers[PRODUCER_PROMPT].rk;
    if (!rk) {
        /* No producers (a rebuild failed): try again later. */
        e->state = ENTRY_FAILED;
        e->at_ms = now + RETRY_MS;
        return;
    }
    char errstr[256];
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBETOPICS);
    if (rd_kafka_AdminOptions_set_request_timeout(opts, ASK_TIMEOUT_MS, errstr, sizeof errstr))
        log_warn("kafka: DescribeTopics timeout: %s", errstr);
    rd_kafka_AdminOptions_set_opaque(opts, (void *)(uintptr_t)e->ask);
    const char *names[1] = {name};
    rd_kafka_TopicCollection_t *topics = rd_kafka_TopicCollection_of_topic_names(names, 1);
    rd_kafka_DescribeTopics(rk, topics, opts, r->producers[PRODUCER_PROMPT].mainq);
    rd_kafka_TopicCollection_destroy(topics);
    rd_kafka_AdminOptions_destroy(opts);
}

static void refuse(struct topicrule *r, struct entry *e, const char *name, bool capped,
                   struct topicrule_refusal *out, int64_t now)
{
    const struct config *cfg = r->cfg;
    if (capped)
        snprintf(out->why, sizeof out->why,
                 "kafka.auto_create_max (%" PRIu32 ") topics were created by this hopper already",
                 cfg->auto_create_max);
    else if (!cfg->auto_create_topics)
        snprintf(out->why, sizeof out->why, "kafka.auto_create_topics is false");
    else
        snprintf(out->why, sizeof out->why, "no pattern of kafka.auto_create_topics matches it");
    out->log = false;
    out->left_out = 0;
    if (e->logged)
        return;
    e->logged = true;
    if (now - r->log_window_ms >= LOG_WINDOW_MS) {
        r->log_window_ms = now;
        r->log_lines = 0;
    }
    if (r->log_lines >= LOG_BURST) {
        r->log_left_out++;
        return;
    }
    r->log_lines++;
    out->log = true;
    out->left_out = r->log_left_out;
    r->log_left_out = 0;
}

enum topicrule_answer topicrule_check(struct topicrule *r, const char *topic,
                                      struct topicrule_refusal *refusal)
{
    struct entry *e = strmap_get(&r->entries, topic);
    if (e && e->state == ENTRY_ALLOWED)
        return TOPICRULE_ALLOWED;
    bool capped;
    if (may_create(r, topic, &capped)) {
        e = entry_put(r, topic, ENTRY_ALLOWED);
        e->counted = true;
        r->n_counted++;
        return TOPICRULE_ALLOWED;
    }
    int64_t now = now_ms();
    if (!e) {
        if (r->n_questions >= MAX_QUESTIONS)
            sweep(r, now);
        if (r->n_questions >= MAX_QUESTIONS)
            return TOPICRULE_UNKNOWN; /* the caller's deadline bounds the wait */
        ask(r, topic, now);
        return TOPICRULE_UNKNOWN;
    }
    switch (e->state) {
    case ENTRY_ALLOWED:
        break;
    case ENTRY_ASKING:
        if (now - e->at_ms > 2 * ASK_TIMEOUT_MS)
            ask(r, topic, now);
        return TOPICRULE_UNKNOWN;
    case ENTRY_FAILED:
        if (now >= e->at_ms)
            ask(r, topic, now);
        return TOPICRULE_UNKNOWN;
    case ENTRY_ABSENT:
        if (now >= e->at_ms) {
            ask(r, topic, now);
            return TOPICRULE_UNKNOWN;
        }
        refuse(r, e, topic, capped, refusal, now);
        return TOPICRULE_FORBIDDEN;
    }
    return TOPICRULE_ALLOWED;
}

void topicrule_created(struct topicrule *r, const char *name, rd_kafka_resp_err_t err)
{
    struct entry *e = strmap_get(&r->entries, name);
    if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS && e && e->counted) {
        /* Not a creation: give its count back. */
        e->counted = false;
        r->n_counted--;
    }
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        entry_put(r, name, ENTRY_ALLOWED);
}

/* The question ask got no answer: every name it asked about is asked again
 * later. */
static void unanswered(struct topicrule *r, uint64_t ask_id, int64_t now)
{
    for (size_t i = 0; i < r->entries.cap; i++) {
        struct entry *e = r->entries.slots[i].key ? r->entries.slots[i].value : NULL;
        if (e && e->state == ENTRY_ASKING && e->ask == ask_id) {
            e->state = ENTRY_FAILED;
            e->at_ms = now + RETRY_MS;
        }
    }
}

bool topicrule_described(struct topicrule *r, rd_kafka_event_t *ev)
{
    int64_t now = now_ms();
    uint64_t ask_id = (uint64_t)(uintptr_t)rd_kafka_event_opaque(ev);
    if (rd_kafka_event_error(ev)) {
        log_warn("kafka: cannot learn whether a topic exists: %s", rd_kafka_event_error_string(ev));
        unanswered(r, ask_id, now);
        return true;
    }
    const rd_kafka_DescribeTopics_result_t *res = rd_kafka_event_DescribeTopics_result(ev);
    size_t n = 0;
    const rd_kafka_TopicDescription_t **topics =
        res ? rd_kafka_DescribeTopics_result_topics(res, &n) : NULL;
    for (size_t i = 0; i < n; i++) {
        const char *name = rd_kafka_TopicDescription_name(topics[i]);
        const rd_kafka_error_t *error = rd_kafka_TopicDescription_error(topics[i]);
        rd_kafka_resp_err_t err = error ? rd_kafka_error_code(error) : RD_KAFKA_RESP_ERR_NO_ERROR;
        struct entry *e = strmap_get(&r->entries, name);
        /* Only the question still open for the name counts: an older one
         * may have been overtaken. */
        if (!e || e->state != ENTRY_ASKING || e->ask != ask_id)
            continue;
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            entry_put(r, name, ENTRY_ALLOWED);
        } else if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART && !e->absent_once) {
            /* A topic created a moment ago is not known to every broker
             * yet (Kafka 3.9 answered so for a second, test_topic_rule.py):
             * ask again before refusing; its publishes wait meanwhile. */
            e->absent_once = true;
            e->state = ENTRY_FAILED;
            e->at_ms = now + CONFIRM_MS;
        } else if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            e->state = ENTRY_ABSENT;
            e->at_ms = now + ABSENT_MS;
        } else {
            log_warn("kafka: cannot learn whether topic %s exists: %s", name,
                     rd_kafka_err2str(err));
            e->state = ENTRY_FAILED;
            e->at_ms = now + RETRY_MS;
        }
    }
    unanswered(r, ask_id, now); /* a name the result left out */
    return true;
}
