/* config.c - loads hopper.yaml into a fresh struct config.
 *
 * libyaml's document API builds the whole tree first, so every node keeps
 * the mark (line, column) that error messages quote. Scalar settings are
 * described once, in settings[] below (name, type, bounds, default,
 * validator, reload): parsing, defaults and range checks all come from that
 * table. The lists (users, vhosts, kafka.properties,
 * kafka.auto_create_topics, exchanges, routes, queues) have small parsers
 * of their own. Nothing outside the new struct is written, and the caller
 * sees it only once it validated whole; the first problem found ends the
 * load with one line "file:line:col: key: problem".
 *
 * Rules shared by every key: unknown and duplicate keys are errors; an empty
 * value (`key:` or `key: ~`) is the same as leaving the key out; integers
 * and booleans must be plain (unquoted) scalars; list indices in messages
 * count from 0. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include <amqp.h>

#include "partition.h"

#define MAX_FILE_SIZE (16u << 20) /* a config is a few KiB; refuse to slurp a disk image */
#define MAX_SHORTSTR 255          /* AMQP short string: vhost, exchange, routing key, header */
#define MAX_TOPIC 249             /* Kafka's limit on topic names */
#define MAX_QUEUE_TOPICS 64       /* queues[].topics: a group reads a few topics, not hundreds */
#define MAX_CREATE_PATTERNS 256   /* kafka.auto_create_topics: names a few families of topics */
#define PATH_LEN 256              /* dotted key in messages; longer ones are cut */

/* ---- the table of scalar settings ---- */

enum setting_type { T_STRING, T_BOOL, T_U16, T_U32, T_U64, T_I16, T_I32 };

/* The type comes from the field itself, so table and struct cannot disagree. */
#define FIELD_TYPE(f)                                                                              \
    _Generic(((struct config *)0)->f, char *: T_STRING, bool: T_BOOL, uint16_t: T_U16,            \
             uint32_t: T_U32, uint64_t: T_U64, int16_t: T_I16, int32_t: T_I32)

/* A validator looks at a parsed string and returns NULL or the problem. */
typedef const char *(*check_fn)(const char *value);

struct setting {
    const char *name;       /* dotted path in the YAML */
    enum setting_type type; /* derived from the field */
    size_t offset;          /* into struct config */
    int64_t min, max;       /* integers: inclusive bounds */
    int64_t def;            /* integers and booleans */
    const char *def_str;    /* strings */
    check_fn check;         /* strings: extra validation, or NULL */
    bool reload;            /* a reload may change it without a restart (for the reload code) */
};

#define SETTING(n, f, lo, hi, d, ds, chk, rl)                                                      \
    {                                                                                              \
        .name = n, .type = FIELD_TYPE(f), .offset = offsetof(struct config, f), .min = lo,         \
        .max = hi, .def = d, .def_str = ds, .check = chk, .reload = rl                             \
    }
#define STRING(n, f, d, chk, rl) SETTING(n, f, 0, 0, 0, d, chk, rl)
#define INTEGER(n, f, lo, hi, d, rl) SETTING(n, f, lo, hi, d, NULL, NULL, rl)
#define BOOLEAN(n, f, d, rl) SETTING(n, f, 0, 1, d, NULL, NULL, rl)

static const char *check_address(const char *s);
static const char *check_not_empty(const char *s);
static const char *check_topic_prefix(const char *s);
static const char *check_group_prefix(const char *s);
static const char *check_instance_id(const char *s);
static const char *check_topic(const char *s);
static const char *check_registry_url(const char *s);

/* Every scalar setting. docs/config-reference.md documents each one; keep
 * the two in step. Listener and Kafka client settings need a restart: the
 * socket and the producer are built once. */
static const struct setting settings[] = {
    STRING("listen.address", listen_address, "127.0.0.1", check_address, false),
    INTEGER("listen.port", listen_port, 1, 65535, 5672, false),

    INTEGER("limits.max_connections", max_connections, 1, 1000000, 1024, true),
    INTEGER("limits.channel_max", channel_max, 1, 65535, 2047, true),
    INTEGER("limits.frame_max", frame_max, 4096, 1048576, 131072, true),
    INTEGER("limits.max_message_size", max_message_size, 1, 134217728, 8388608, true),
    INTEGER("limits.heartbeat", heartbeat, 0, 3600, 60, true),
    INTEGER("limits.handshake_timeout", handshake_timeout_ms, 100, 600000, 10000, true),
    INTEGER("limits.max_table_depth", max_table_depth, 1, 64, 16, true),
    INTEGER("limits.max_unconfirmed", max_unconfirmed, 1, 10000000, 10000, true),
    INTEGER("limits.max_inflight_bytes", max_inflight_bytes, INT64_C(1) << 20, INT64_C(16) << 30,
            INT64_C(64) << 20, true),
    INTEGER("limits.drain_timeout", drain_timeout_ms, 0, 600000, 10000, true),

    STRING("kafka.bootstrap_servers", bootstrap_servers,
           "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094", check_not_empty, false),
    STRING("kafka.topic_prefix", topic_prefix, "", check_topic_prefix, false),
    INTEGER("kafka.auto_create_max", auto_create_max, 0, 1000000, 1000, false),
    INTEGER("kafka.topic_partitions", topic_partitions, 1, 10000, 3, false),
    INTEGER("kafka.replication_factor", replication_factor, 1, 32767, 3, false),
    INTEGER("kafka.min_insync_replicas", min_insync_replicas, 1, 32767, 2, false),

    STRING("registry.url", registry_url, "", check_registry_url, false),
    STRING("registry.username", registry_username, "", NULL, false),
    STRING("registry.password", registry_password, "", NULL, false),
    INTEGER("registry.timeout", registry_timeout_ms, 100, 600000, 5000, false),
    INTEGER("registry.cache", registry_cache_ms, 0, 86400000, 30000, false),
    INTEGER("registry.wait", registry_wait_ms, 0, 600000, 5000, false),

    BOOLEAN("rabbit.enabled", rabbit_enabled, false, false),
    STRING("rabbit.group_prefix", group_prefix, "hopper.", check_group_prefix, false),
    INTEGER("rabbit.max_unacked", max_unacked, 1, 10000000, 10000, true),
    INTEGER("rabbit.max_unacked_bytes", max_unacked_bytes, INT64_C(1) << 20, INT64_C(16) << 30,
            INT64_C(64) << 20, true),
    INTEGER("rabbit.max_transient_bytes", max_transient_bytes, INT64_C(1) << 20, INT64_C(64) << 30,
            INT64_C(256) << 20, true),
    INTEGER("rabbit.commit_interval", commit_interval_ms, 1, 60000, 200, true),
    INTEGER("rabbit.session_timeout", session_timeout_ms, 6000, 300000, 10000, false),
    INTEGER("rabbit.idle_leave", idle_leave_ms, 0, 600000, 3000, true),
    STRING("rabbit.instance_id", instance_id, "", check_instance_id, false),
    STRING("rabbit.topology_topic", topology_topic, "_hopper_topology", check_topic, false),
    INTEGER("rabbit.topology_load_timeout", topology_load_timeout_ms, 0, 600000, 30000, false),

    BOOLEAN("default_route", default_route, true, true),
};

#define N_SETTINGS ARRAY_LEN(settings)

/* ---- loader state and error reporting ---- */

struct loader {
    const char *name; /* file name for messages */
    const char *text; /* the input, to place reader errors */
    size_t len;
    yaml_document_t *doc;
    struct config *cfg; /* the config being built; owned by config_load_string */
    char *err;          /* caller's message buffer */
    size_t errlen;
    yaml_node_t *set_by[N_SETTINGS]; /* value node of each setting the file set */
    yaml_node_t **exchange_vhost;    /* per exchange: vhost node, or the item if absent */
    yaml_node_t **queue_vhost;       /* per queue: the same */
    yaml_node_t **upstream_vhost;    /* per rabbit.upstream: its vhost_route node, or the item */
};

static int fail_at(struct loader *ld, yaml_mark_t mark, const char *key, const char *fmt, ...)
    PRINTF_LIKE(4, 5);

static int fail_at(struct loader *ld, yaml_mark_t mark, const char *key, const char *fmt, ...)
{
    if (!ld->err || ld->errlen == 0)
        return -1;
    int n = snprintf(ld->err, ld->errlen, "%s:%zu:%zu: %s: ", ld->name, mark.line + 1,
                     mark.column + 1, key);
    if (n >= 0 && (size_t)n < ld->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

#define fail(ld, node, key, ...) fail_at(ld, (node)->start_mark, key, __VA_ARGS__)

/* Paths name keys in messages: "routes[2].topic". They are cut at PATH_LEN,
 * and bytes that would break the one-line message become '?' (keys are the
 * user's text). */
static void path_append(char *dst, const char *s, size_t len)
{
    size_t n = strlen(dst);
    for (size_t i = 0; i < len && n < PATH_LEN - 1; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    dst[n] = '\0';
}

static void path_field(char *dst, const char *parent, const char *field)
{
    dst[0] = '\0';
    path_append(dst, parent, strlen(parent));
    if (*parent)
        path_append(dst, ".", 1);
    path_append(dst, field, strlen(field));
}

static void path_key(char *dst, const char *parent, const yaml_node_t *key)
{
    path_field(dst, parent, "");
    path_append(dst, (const char *)key->data.scalar.value, key->data.scalar.length);
}

static void path_index(char *dst, const char *parent, size_t i)
{
    char index[32];
    int n = snprintf(index, sizeof index, "[%zu]", i);
    dst[0] = '\0';
    path_append(dst, parent, strlen(parent));
    path_append(dst, index, (size_t)n);
}

/* ---- scalars ---- */

static yaml_node_t *node_at(struct loader *ld, int index)
{
    return yaml_document_get_node(ld->doc, index);
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static bool is_plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* Whether n is the scalar s, byte for byte ("key\0x" is not "key"). */
static bool scalar_is(const yaml_node_t *n, const char *s)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.length == strlen(s) &&
           !memcmp(n->data.scalar.value, s, n->data.scalar.length);
}

/* YAML's null: an empty plain scalar, "~" or "null". */
static bool is_null(const yaml_node_t *n)
{
    if (!is_plain(n))
        return false;
    const char *s = scalar(n);
    return !strcmp(s, "") || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

static int get_string(struct loader *ld, const yaml_node_t *n, const char *key, char **out)
{
    if (n->type != YAML_SCALAR_NODE)
        return fail(ld, n, key, "must be a string");
    if (strlen(scalar(n)) != n->data.scalar.length)
        return fail(ld, n, key, "must not contain NUL characters");
    *out = xstrndup(scalar(n), n->data.scalar.length);
    return 0;
}

/* Like get_string, for the AMQP names that travel as short strings. */
static int get_shortstr(struct loader *ld, const yaml_node_t *n, const char *key, char **out)
{
    if (get_string(ld, n, key, out))
        return -1;
    if (strlen(*out) > MAX_SHORTSTR) {
        FREE_AND_NULL(*out);
        return fail(ld, n, key, "must be at most %d bytes", MAX_SHORTSTR);
    }
    return 0;
}

/* Decimal integers only: YAML 1.1 would read 010 as octal and 0x10 as hex,
 * so anything but an optional '-' and plain digits is refused. */
static int get_int(struct loader *ld, const yaml_node_t *n, const char *key, int64_t min,
                   int64_t max, int64_t *out)
{
    if (!is_plain(n))
        return fail(ld, n, key, "must be an integer");
    const char *s = scalar(n);
    bool neg = *s == '-';
    if (neg)
        s++;
    const char *digits = s;
    uint64_t v = 0;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10) /* saturate: out of every range we have */
            v = (uint64_t)INT64_MAX;
        else
            v = v * 10 + d;
    }
    if (s == digits || *s != '\0')
        return fail(ld, n, key, "must be an integer");
    if (digits[0] == '0' && s - digits > 1)
        return fail(ld, n, key, "must be an integer without leading zeros");
    int64_t value = neg ? -(int64_t)v : (int64_t)v;
    if (value < min || value > max)
        return fail(ld, n, key, "must be between %lld and %lld", (long long)min, (long long)max);
    *out = value;
    return 0;
}

/* YAML 1.1 booleans, which is what users of other YAML configs type. */
static int get_bool(struct loader *ld, const yaml_node_t *n, const char *key, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    if (is_plain(n)) {
        for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
            if (!strcasecmp(scalar(n), yes[i]))
                return *out = true, 0;
            if (!strcasecmp(scalar(n), no[i]))
                return *out = false, 0;
        }
    }
    return fail(ld, n, key, "must be true or false");
}

/* ---- validators for string settings ---- */

static const char *check_not_empty(const char *s)
{
    return *s ? NULL : "must not be empty";
}

static bool is_hostname(const char *s)
{
    size_t len = strlen(s), label = 0;
    bool all_digits = true; /* of the last label: "1.2.3.999" is a bad address, not a name */
    if (len > 253)
        return false;
    for (size_t i = 0; i <= len; i++) {
        char c = s[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63 || s[i - 1] == '-')
                return false;
            if (c == '\0')
                break;
            label = 0;
            all_digits = true;
        } else if (isalnum((unsigned char)c) || (c == '-' && label > 0)) {
            label++;
            all_digits = all_digits && isdigit((unsigned char)c);
        } else {
            return false;
        }
    }
    return !all_digits;
}

static const char *check_address(const char *s)
{
    unsigned char addr[16];
    if (!*s)
        return "must not be empty";
    if (inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1 || is_hostname(s))
        return NULL;
    return "must be an IPv4 address, an IPv6 address (no brackets) or a host name";
}

static bool topic_chars(const char *s)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
            return false;
    return true;
}

static const char *check_topic(const char *s)
{
    if (!*s)
        return "must not be empty";
    if (strlen(s) > MAX_TOPIC)
        return "must be at most 249 characters (Kafka's limit)";
    if (!topic_chars(s))
        return "may only contain a-z, A-Z, 0-9, '.', '_' and '-' (Kafka topic name)";
    if (!strcmp(s, ".") || !strcmp(s, ".."))
        return "must not be \".\" or \"..\"";
    return NULL;
}

static const char *check_topic_prefix(const char *s)
{
    if (strlen(s) >= MAX_TOPIC)
        return "must be at most 248 characters (Kafka's topic limit is 249)";
    if (!topic_chars(s))
        return "may only contain a-z, A-Z, 0-9, '.', '_' and '-' (Kafka topic name)";
    return NULL;
}

static const char *check_group_prefix(const char *s)
{
    if (strlen(s) > 100)
        return "must be at most 100 characters";
    if (!topic_chars(s))
        return "may only contain a-z, A-Z, 0-9, '.', '_' and '-'";
    return NULL;
}

static const char *check_instance_id(const char *s)
{
    if (strlen(s) > 200)
        return "must be at most 200 characters";
    if (!topic_chars(s))
        return "may only contain a-z, A-Z, 0-9, '.', '_' and '-'";
    return NULL;
}

/* http://HOST[:PORT][/BASE/PATH]: the registry's Confluent-compatible API
 * (Apicurio's lives under /apis/ccompat/v7). */
static const char *check_registry_url(const char *s)
{
    if (!*s)
        return NULL;
    if (!strncmp(s, "https://", 8))
        return "https is not supported yet: use http (the registry on loopback, or a local TLS "
               "proxy)";
    if (strncmp(s, "http://", 7) || !s[7] || s[7] == '/')
        return "must be an http URL, http://HOST[:PORT][/PATH]";
    for (const char *p = s; *p; p++)
        if (*p <= ' ' || *p == 0x7f || *p == '?' || *p == '#')
            return "must be an http URL without spaces, query or fragment";
    return NULL;
}

/* ---- the table at work ---- */

static const struct setting *find_setting(const char *name)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (!strcmp(settings[i].name, name))
            return &settings[i];
    return NULL;
}

static void *field(struct config *cfg, const struct setting *s)
{
    return (char *)cfg + s->offset;
}

static void store_int(struct config *cfg, const struct setting *s, int64_t v)
{
    void *p = field(cfg, s);
    switch (s->type) {
    case T_BOOL:
        *(bool *)p = v != 0;
        break;
    case T_U16:
        *(uint16_t *)p = (uint16_t)v;
        break;
    case T_U32:
        *(uint32_t *)p = (uint32_t)v;
        break;
    case T_U64:
        *(uint64_t *)p = (uint64_t)v;
        break;
    case T_I16:
        *(int16_t *)p = (int16_t)v;
        break;
    case T_I32:
        *(int32_t *)p = (int32_t)v;
        break;
    case T_STRING:
        break;
    }
}

static void store_string(struct config *cfg, const struct setting *s, char *v)
{
    char **p = field(cfg, s);
    free(*p);
    *p = v;
}

static int parse_setting(struct loader *ld, const struct setting *s, yaml_node_t *val,
                         const char *key)
{
    if (is_null(val))
        return 0;
    if (s->type == T_STRING) {
        char *v = NULL;
        if (get_string(ld, val, key, &v))
            return -1;
        const char *problem = s->check ? s->check(v) : NULL;
        if (problem) {
            free(v);
            return fail(ld, val, key, "%s", problem);
        }
        store_string(ld->cfg, s, v);
    } else if (s->type == T_BOOL) {
        bool b = false;
        if (get_bool(ld, val, key, &b))
            return -1;
        store_int(ld->cfg, s, b);
    } else {
        int64_t v = 0;
        if (get_int(ld, val, key, s->min, s->max, &v))
            return -1;
        store_int(ld->cfg, s, v);
    }
    ld->set_by[s - settings] = val;
    return 0;
}

/* ---- mappings with a fixed set of keys ---- */

struct field_node {
    yaml_node_t *key, *val; /* NULL when absent or empty */
};

/* Matches the keys of `map` against `names`; fails on a non-mapping, an
 * unknown or a repeated key. out[i] receives names[i]'s nodes. */
static int map_fields(struct loader *ld, yaml_node_t *map, const char *key,
                      const char *const *names, size_t n_names, struct field_node *out)
{
    memset(out, 0, n_names * sizeof *out);
    if (map->type != YAML_MAPPING_NODE)
        return fail(ld, map, key, "must be a mapping");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_at(ld, p->key), *v = node_at(ld, p->value);
        char sub[PATH_LEN];
        if (k->type != YAML_SCALAR_NODE)
            return fail(ld, k, key, "keys must be strings");
        path_key(sub, key, k);
        size_t i = 0;
        while (i < n_names && strcmp(names[i], scalar(k)))
            i++;
        if (i == n_names)
            return fail(ld, k, sub, "unknown key");
        if (out[i].key)
            return fail(ld, k, sub, "duplicate key (first at line %zu)",
                        out[i].key->start_mark.line + 1);
        out[i].key = k;
        out[i].val = is_null(v) ? NULL : v;
    }
    return 0;
}

/* "is required" points at the key when it is there with an empty value,
 * else at the mapping that lacks it. */
static int fail_required(struct loader *ld, yaml_node_t *map, const struct field_node *f,
                         const char *key)
{
    return fail(ld, f->key ? f->key : map, key, "is required");
}

/* ---- uniqueness over lists, in O(n log n) ---- */

struct name_ref {
    const char *a, *b; /* compared as the pair (a, b) */
    size_t idx;
};

static int name_ref_cmp(const void *x, const void *y)
{
    const struct name_ref *p = x, *q = y;
    int c = strcmp(p->a, q->a);
    if (!c)
        c = strcmp(p->b, q->b);
    if (!c)
        c = (p->idx > q->idx) - (p->idx < q->idx);
    return c;
}

/* Sorts refs; returns the index of the earliest entry that repeats an earlier
 * one (the first occurrence in *first), or n when all are distinct. */
static size_t find_duplicate(struct name_ref *refs, size_t n, size_t *first)
{
    size_t best = n;
    qsort(refs, n, sizeof *refs, name_ref_cmp);
    for (size_t i = 1; i < n; i++) {
        bool same_as_prev = !strcmp(refs[i].a, refs[i - 1].a) && !strcmp(refs[i].b, refs[i - 1].b);
        bool prev_starts_group =
            i == 1 || strcmp(refs[i - 1].a, refs[i - 2].a) || strcmp(refs[i - 1].b, refs[i - 2].b);
        if (same_as_prev && prev_starts_group && refs[i].idx < best) {
            best = refs[i].idx;
            *first = refs[i - 1].idx;
        }
    }
    return best;
}

/* Fails at the second of two list items with the same name: nodes[i] is
 * where item i's name stands, reported as KEY[i].name. */
static int check_unique_names(struct loader *ld, struct name_ref *refs, size_t n,
                              yaml_node_t **nodes, const char *key, const char *what)
{
    size_t first = 0, dup = find_duplicate(refs, n, &first);
    if (dup == n)
        return 0;
    char ikey[PATH_LEN], fkey[PATH_LEN];
    path_index(ikey, key, dup);
    path_field(fkey, ikey, "name");
    fail(ld, nodes[dup], fkey, "%s (first at line %zu)", what, nodes[first]->start_mark.line + 1);
    return -1;
}

/* ---- the lists ---- */

static size_t seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static yaml_node_t *seq_item(struct loader *ld, const yaml_node_t *n, size_t i)
{
    return node_at(ld, n->data.sequence.items.start[i]);
}

static void free_users(struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_users; i++) {
        free(cfg->users[i].name);
        free(cfg->users[i].password);
    }
    FREE_AND_NULL(cfg->users);
    cfg->n_users = 0;
}

static void free_vhosts(struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_vhosts; i++)
        free(cfg->vhosts[i]);
    FREE_AND_NULL(cfg->vhosts);
    cfg->n_vhosts = 0;
}

static int parse_users(struct loader *ld, yaml_node_t *seq, const char *key)
{
    static const char *const names[] = {"name", "password", "loopback_only"};
    struct config *cfg = ld->cfg;
    if (seq->type != YAML_SEQUENCE_NODE)
        return fail(ld, seq, key, "must be a list");
    size_t n = seq_len(seq);
    if (n == 0)
        return fail(ld, seq, key, "must list at least one user");
    free_users(cfg);
    cfg->users = xcalloc(n, sizeof *cfg->users);
    cfg->n_users = n; /* zeroed entries free cleanly if we fail half way */
    struct name_ref *refs = xcalloc(n, sizeof *refs);
    yaml_node_t **name_nodes = xcalloc(n, sizeof *name_nodes);
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        struct user_cfg *u = &cfg->users[i];
        yaml_node_t *item = seq_item(ld, seq, i);
        struct field_node f[ARRAY_LEN(names)];
        char ikey[PATH_LEN], fkey[PATH_LEN];
        path_index(ikey, key, i);
        if (map_fields(ld, item, ikey, names, ARRAY_LEN(names), f))
            goto out;
        path_field(fkey, ikey, "name");
        if (!f[0].val) {
            fail_required(ld, item, &f[0], fkey);
            goto out;
        }
        if (get_string(ld, f[0].val, fkey, &u->name))
            goto out;
        if (!*u->name) {
            fail(ld, f[0].val, fkey, "must not be empty");
            goto out;
        }
        path_field(fkey, ikey, "password");
        if (!f[1].val) {
            fail_required(ld, item, &f[1], fkey);
            goto out;
        }
        if (get_string(ld, f[1].val, fkey, &u->password))
            goto out;
        path_field(fkey, ikey, "loopback_only");
        u->loopback_only = !strcmp(u->name, "guest"); /* as RabbitMQ does */
        if (f[2].val && get_bool(ld, f[2].val, fkey, &u->loopback_only))
            goto out;
        refs[i] = (struct name_ref){u->name, "", i};
        name_nodes[i] = f[0].val;
    }
    rc = check_unique_names(ld, refs, n, name_nodes, key, "duplicate user");
out:
    free(refs);
    free(name_nodes);
    return rc;
}

static int parse_vhosts(struct loader *ld, yaml_node_t *seq, const char *key)
{
    struct config *cfg = ld->cfg;
    if (seq->type != YAML_SEQUENCE_NODE)
        return fail(ld, seq, key, "must be a list");
    size_t n = seq_len(seq);
    if (n == 0)
        return fail(ld, seq, key, "must list at least one vhost");
    free_vhosts(cfg);
    cfg->vhosts = xcalloc(n, sizeof *cfg->vhosts);
    cfg->n_vhosts = n;
    struct name_ref *refs = xcalloc(n, sizeof *refs);
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = seq_item(ld, seq, i);
        char ikey[PATH_LEN];
        path_index(ikey, key, i);
        if (is_null(item)) {
            fail(ld, item, ikey, "must not be empty");
            goto out;
        }
        if (get_shortstr(ld, item, ikey, &cfg->vhosts[i]))
            goto out;
        if (!*cfg->vhosts[i]) {
            fail(ld, item, ikey, "must not be empty");
            goto out;
        }
        refs[i] = (struct name_ref){cfg->vhosts[i], "", i};
    }
    size_t first = 0, dup = find_duplicate(refs, n, &first);
    if (dup < n) {
        char ikey[PATH_LEN];
        path_index(ikey, key, dup);
        fail(ld, seq_item(ld, seq, dup), ikey, "duplicate vhost (first at line %zu)",
             seq_item(ld, seq, first)->start_mark.line + 1);
        goto out;
    }
    rc = 0;
out:
    free(refs);
    return rc;
}

/* librdkafka properties hopper sets itself. A confirm means "on
 * min.insync.replicas brokers", which needs acks=all and idempotence; the
 * sink refuses these too, but here the error can say where. A property
 * may repeat hopper's own value (`ok`), never change it. */
static const struct {
    const char *name;
    const char *ok[2]; /* values that change nothing */
    const char *why;
} fixed_props[] = {
    {"bootstrap.servers", {NULL, NULL}, "use kafka.bootstrap_servers"},
    {"metadata.broker.list", {NULL, NULL}, "use kafka.bootstrap_servers"},
    {"acks", {"all", "-1"}, "must be all: confirms mean the record is on min.insync.replicas"},
    {"request.required.acks",
     {"all", "-1"},
     "must be all: confirms mean the record is on min.insync.replicas"},
    {"enable.idempotence", {"true", NULL}, "must be true: retries must not duplicate records"},
    {"transactional.id", {NULL, NULL}, "is not supported: hopper does not use transactions"},
    {"sticky.partitioning.linger.ms",
     {"0", NULL},
     "must be 0: hopper spreads keyless messages over partitions itself"},
};

/* NULL, or why hopper cannot take this property. */
static const char *fixed_prop(const char *name, const char *value)
{
    for (size_t i = 0; i < ARRAY_LEN(fixed_props); i++) {
        if (strcmp(name, fixed_props[i].name))
            continue;
        for (size_t j = 0; j < ARRAY_LEN(fixed_props[i].ok); j++)
            if (fixed_props[i].ok[j] && !strcmp(value, fixed_props[i].ok[j]))
                return NULL;
        return fixed_props[i].why;
    }
    return NULL;
}

static int parse_properties(struct loader *ld, yaml_node_t *map, const char *key)
{
    struct config *cfg = ld->cfg;
    if (map->type != YAML_MAPPING_NODE)
        return fail(ld, map, key, "must be a mapping");
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    cfg->kafka_props = xcalloc(n, sizeof *cfg->kafka_props);
    struct name_ref *refs = xcalloc(n, sizeof *refs);
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        yaml_node_pair_t *p = &map->data.mapping.pairs.start[i];
        yaml_node_t *k = node_at(ld, p->key), *v = node_at(ld, p->value);
        struct kv *prop = &cfg->kafka_props[i];
        char pkey[PATH_LEN];
        if (k->type != YAML_SCALAR_NODE) {
            fail(ld, k, key, "property names must be strings");
            goto out;
        }
        path_key(pkey, key, k);
        if (k->data.scalar.length == 0) {
            fail(ld, k, key, "property names must not be empty");
            goto out;
        }
        if (is_null(v)) {
            fail(ld, k, pkey, "needs a value");
            goto out;
        }
        if (v->type != YAML_SCALAR_NODE) {
            fail(ld, v, pkey, "must be a scalar (librdkafka takes every value as a string)");
            goto out;
        }
        cfg->n_kafka_props = i + 1;
        if (get_string(ld, k, pkey, &prop->key) || get_string(ld, v, pkey, &prop->value))
            goto out;
        const char *why = fixed_prop(prop->key, prop->value);
        if (!why && !strcmp(prop->key, "partitioner") && !partition_find(prop->value))
            why = "unknown partitioner (murmur2_random, murmur2, consistent_random, consistent, "
                  "fnv1a_random, fnv1a or random)";
        if (why) {
            fail(ld, v, pkey, "%s", why);
            goto out;
        }
        refs[i] = (struct name_ref){prop->key, "", i};
    }
    size_t first = 0, dup = find_duplicate(refs, n, &first);
    if (dup < n) {
        yaml_node_t *k = node_at(ld, map->data.mapping.pairs.start[dup].key);
        yaml_node_t *k0 = node_at(ld, map->data.mapping.pairs.start[first].key);
        char pkey[PATH_LEN];
        path_key(pkey, key, k);
        fail(ld, k, pkey, "duplicate key (first at line %zu)", k0->start_mark.line + 1);
        goto out;
    }
    rc = 0;
out:
    free(refs);
    return rc;
}

static const char *const exchange_types[] = {
    [EXCHANGE_DIRECT] = "direct",
    [EXCHANGE_FANOUT] = "fanout",
    [EXCHANGE_TOPIC] = "topic",
    [EXCHANGE_HEADERS] = "headers",
};

/* The name of an exchange or queue the config declares (field *name):
 * required, a non-empty shortstr outside AMQP's "amq." namespace. */
static int parse_declared_name(struct loader *ld, yaml_node_t *item, const struct field_node *name,
                               const char *ikey, char **out, yaml_node_t **name_node)
{
    char fkey[PATH_LEN];
    path_field(fkey, ikey, "name");
    if (!name->val)
        return fail_required(ld, item, name, fkey);
    if (get_shortstr(ld, name->val, fkey, out))
        return -1;
    if (!**out)
        return fail(ld, name->val, fkey, "must not be empty");
    if (!strncmp(*out, "amq.", 4))
        return fail(ld, name->val, fkey, "must not start with \"amq.\" (reserved by AMQP)");
    *name_node = name->val;
    return 0;
}

/* Its vhost (field *vhost), "/" when absent; *vhost_node is what a later
 * check of the vhost points at: the field, or the item. */
static int parse_declared_vhost(struct loader *ld, yaml_node_t *item,
                                const struct field_node *vhost, const char *ikey, char **out,
                                yaml_node_t **vhost_node)
{
    char fkey[PATH_LEN];
    path_field(fkey, ikey, "vhost");
    *vhost_node = vhost->val ? vhost->val : item;
    if (!vhost->val) {
        *out = xstrdup("/");
        return 0;
    }
    return get_shortstr(ld, vhost->val, fkey, out);
}

static void free_contract(struct contract_cfg *k)
{
    if (!k)
        return;
    free(k->subject);
    free(k->dead_letter_topic);
    free(k);
}

/* contract: {subject, format, version, encode, on_violation,
 * dead_letter_topic} (docs/contracts.md). */
static int parse_contract(struct loader *ld, yaml_node_t *map, const char *key,
                          struct contract_cfg **out)
{
    static const char *const names[] = {"subject", "format",       "version",
                                        "encode",  "on_violation", "dead_letter_topic"};
    struct field_node f[ARRAY_LEN(names)];
    char fkey[PATH_LEN];
    if (map_fields(ld, map, key, names, ARRAY_LEN(names), f))
        return -1;
    struct contract_cfg *k = xcalloc(1, sizeof *k);
    *out = k; /* freed with its owner if we fail */
    k->line = (int)map->start_mark.line + 1;
    k->column = (int)map->start_mark.column + 1;

    path_field(fkey, key, "subject");
    if (f[0].val) {
        if (get_string(ld, f[0].val, fkey, &k->subject))
            return -1;
        if (!*k->subject)
            return fail(ld, f[0].val, fkey, "must not be empty");
    }
    path_field(fkey, key, "format");
    if (f[1].val) {
        if (scalar_is(f[1].val, "json"))
            k->format = CONTRACT_JSON;
        else if (scalar_is(f[1].val, "avro"))
            k->format = CONTRACT_AVRO;
        else
            return fail(ld, f[1].val, fkey, "must be json or avro");
    }
    path_field(fkey, key, "version");
    if (f[2].val && !scalar_is(f[2].val, "latest")) {
        int64_t v = 0;
        if (!is_plain(f[2].val) || get_int(ld, f[2].val, fkey, 1, INT32_MAX, &v))
            return fail(ld, f[2].val, fkey, "must be latest or a version number (1 or more)");
        k->version = (int32_t)v;
    }
    path_field(fkey, key, "encode");
    k->confluent = k->format == CONTRACT_AVRO;
    if (f[3].val) {
        if (scalar_is(f[3].val, "confluent"))
            k->confluent = true;
        else if (scalar_is(f[3].val, "none") && k->format != CONTRACT_AVRO)
            k->confluent = false;
        else
            return fail(ld, f[3].val, fkey,
                        k->format == CONTRACT_AVRO
                            ? "must be confluent for avro (Avro binary is unreadable without "
                              "its schema id)"
                            : "must be confluent or none");
    }
    path_field(fkey, key, "on_violation");
    if (f[4].val) {
        if (scalar_is(f[4].val, "dead_letter"))
            k->dead_letter = true;
        else if (!scalar_is(f[4].val, "reject"))
            return fail(ld, f[4].val, fkey, "must be reject or dead_letter");
    }
    path_field(fkey, key, "dead_letter_topic");
    if (f[5].val) {
        if (!k->dead_letter)
            return fail(ld, f[5].key, fkey, "needs on_violation: dead_letter");
        if (get_string(ld, f[5].val, fkey, &k->dead_letter_topic))
            return -1;
        const char *problem = check_topic(k->dead_letter_topic);
        if (problem)
            return fail(ld, f[5].val, fkey, "%s", problem);
    }
    return 0;
}

/* *name_node and *vhost_node receive the nodes later checks point at. */
static int parse_exchange(struct loader *ld, yaml_node_t *item, const char *ikey, void *elem,
                          yaml_node_t **name_node, yaml_node_t **vhost_node)
{
    struct exchange_cfg *x = elem;
    static const char *const names[] = {"name", "type", "vhost", "default_route", "contract"};
    struct field_node f[ARRAY_LEN(names)];
    char fkey[PATH_LEN];
    if (map_fields(ld, item, ikey, names, ARRAY_LEN(names), f))
        return -1;
    if (parse_declared_name(ld, item, &f[0], ikey, &x->name, name_node))
        return -1;

    path_field(fkey, ikey, "type");
    x->type = EXCHANGE_TOPIC;
    if (f[1].val) {
        size_t t = 0;
        while (t < ARRAY_LEN(exchange_types) && !(f[1].val->type == YAML_SCALAR_NODE &&
                                                  !strcmp(scalar(f[1].val), exchange_types[t])))
            t++;
        if (t == ARRAY_LEN(exchange_types))
            return fail(ld, f[1].val, fkey, "must be direct, fanout, topic or headers");
        x->type = (enum exchange_type)t;
    }

    if (parse_declared_vhost(ld, item, &f[2], ikey, &x->vhost, vhost_node))
        return -1;

    path_field(fkey, ikey, "default_route");
    x->default_route = -1;
    if (f[3].val) {
        bool b = false;
        if (get_bool(ld, f[3].val, fkey, &b))
            return -1;
        x->default_route = b;
    }
    path_field(fkey, ikey, "contract");
    if (f[4].val && parse_contract(ld, f[4].val, fkey, &x->contract))
        return -1;
    return 0;
}

/* exchanges: and queues: are lists of things named in a vhost. */
typedef int (*declared_fn)(struct loader *ld, yaml_node_t *item, const char *ikey, void *elem,
                           yaml_node_t **name_node, yaml_node_t **vhost_node);
struct declared_kind {
    size_t size;        /* of one element */
    declared_fn one;    /* parses one into its element */
    size_t name, vhost; /* offsets of its char * fields */
    const char *duplicate;
};

static int parse_declared(struct loader *ld, yaml_node_t *seq, const char *key,
                          const struct declared_kind *kind, void **elems, size_t *n_elems,
                          yaml_node_t ***vhost_nodes)
{
    if (seq->type != YAML_SEQUENCE_NODE)
        return fail(ld, seq, key, "must be a list");
    size_t n = seq_len(seq);
    char *base = xcalloc(n, kind->size);
    *elems = base;
    *n_elems = n;
    *vhost_nodes = xcalloc(n, sizeof **vhost_nodes);
    struct name_ref *refs = xcalloc(n, sizeof *refs);
    yaml_node_t **name_nodes = xcalloc(n, sizeof *name_nodes);
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = seq_item(ld, seq, i);
        char ikey[PATH_LEN];
        path_index(ikey, key, i);
        char *elem = base + i * kind->size;
        /* the vhost is checked against vhosts once the whole file is read */
        if (kind->one(ld, item, ikey, elem, &name_nodes[i], &(*vhost_nodes)[i]))
            goto out;
        refs[i] =
            (struct name_ref){*(char **)(elem + kind->vhost), *(char **)(elem + kind->name), i};
    }
    rc = check_unique_names(ld, refs, n, name_nodes, key, kind->duplicate);
out:
    free(refs);
    free(name_nodes);
    return rc;
}

static int parse_exchanges(struct loader *ld, yaml_node_t *seq, const char *key)
{
    static const struct declared_kind kind = {
        sizeof(struct exchange_cfg), parse_exchange, offsetof(struct exchange_cfg, name),
        offsetof(struct exchange_cfg, vhost), "duplicate exchange in its vhost"};
    void *elems = NULL;
    int rc =
        parse_declared(ld, seq, key, &kind, &elems, &ld->cfg->n_exchanges, &ld->exchange_vhost);
    ld->cfg->exchanges = elems;
    return rc;
}

static int parse_key_source(struct loader *ld, yaml_node_t *v, const char *key, struct route_cfg *r)
{
    if (v->type != YAML_SCALAR_NODE)
        return fail(ld, v, key, "must be routing_key, message_id, none or header:NAME");
    const char *s = scalar(v);
    if (!strcmp(s, "routing_key")) {
        r->key = KEY_ROUTING_KEY;
    } else if (!strcmp(s, "message_id")) {
        r->key = KEY_MESSAGE_ID;
    } else if (!strcmp(s, "none")) {
        r->key = KEY_NONE;
    } else if (!strncmp(s, "header:", 7)) {
        if (strlen(s) != v->data.scalar.length)
            return fail(ld, v, key, "must not contain NUL characters");
        if (s[7] == '\0')
            return fail(ld, v, key, "header:NAME needs a non-empty NAME");
        if (strlen(s + 7) > MAX_SHORTSTR)
            return fail(ld, v, key, "header name must be at most %d bytes", MAX_SHORTSTR);
        r->key = KEY_HEADER;
        r->key_header = xstrdup(s + 7);
    } else {
        return fail(ld, v, key, "must be routing_key, message_id, none or header:NAME");
    }
    return 0;
}

static int parse_route(struct loader *ld, yaml_node_t *item, const char *ikey, struct route_cfg *r)
{
    static const char *const names[] = {"exchange", "routing_key", "topic", "key", "contract"};
    struct field_node f[ARRAY_LEN(names)];
    char fkey[PATH_LEN];
    if (map_fields(ld, item, ikey, names, ARRAY_LEN(names), f))
        return -1;
    r->line = (int)item->start_mark.line + 1;

    path_field(fkey, ikey, "exchange");
    if (!f[0].val)
        return fail_required(ld, item, &f[0], fkey);
    if (get_shortstr(ld, f[0].val, fkey, &r->exchange))
        return -1;

    path_field(fkey, ikey, "routing_key");
    if (f[1].val) {
        if (get_shortstr(ld, f[1].val, fkey, &r->pattern))
            return -1;
    } else {
        r->pattern = xstrdup("#");
    }

    path_field(fkey, ikey, "topic");
    if (!f[2].val)
        return fail_required(ld, item, &f[2], fkey);
    if (get_string(ld, f[2].val, fkey, &r->topic))
        return -1;
    const char *problem = check_topic(r->topic);
    if (problem)
        return fail(ld, f[2].val, fkey, "%s", problem);

    path_field(fkey, ikey, "key");
    r->key = KEY_ROUTING_KEY;
    if (f[3].val && parse_key_source(ld, f[3].val, fkey, r))
        return -1;
    path_field(fkey, ikey, "contract");
    if (f[4].val && parse_contract(ld, f[4].val, fkey, &r->contract))
        return -1;
    return 0;
}

static int parse_routes(struct loader *ld, yaml_node_t *seq, const char *key)
{
    struct config *cfg = ld->cfg;
    if (seq->type != YAML_SEQUENCE_NODE)
        return fail(ld, seq, key, "must be a list");
    size_t n = seq_len(seq);
    cfg->routes = xcalloc(n, sizeof *cfg->routes);
    cfg->n_routes = n;
    for (size_t i = 0; i < n; i++) {
        char ikey[PATH_LEN];
        path_index(ikey, key, i);
        if (parse_route(ld, seq_item(ld, seq, i), ikey, &cfg->routes[i]))
            return -1;
    }
    return 0;
}

/* A list of names, each checked by kind->check, none twice: a queue's
 * topics, kafka.auto_create_topics' patterns. *out gets n_out strings
 * (zeroed ones too when a later item fails: they free cleanly). */
struct name_list {
    size_t max;
    check_fn check;
    const char *noun; /* in messages: "topic", "pattern" */
    const char *none; /* the problem of an empty list */
};

static int parse_name_list(struct loader *ld, yaml_node_t *v, const char *key,
                           const struct name_list *kind, char ***out, size_t *n_out)
{
    size_t n = seq_len(v);
    if (n == 0)
        return fail(ld, v, key, "%s", kind->none);
    if (n > kind->max)
        return fail(ld, v, key, "must list at most %zu %ss", kind->max, kind->noun);
    *out = xcalloc(n, sizeof **out);
    *n_out = n;
    struct name_ref *refs = xcalloc(n, sizeof *refs);
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = seq_item(ld, v, i);
        char ikey[PATH_LEN];
        path_index(ikey, key, i);
        if (is_null(item)) {
            fail(ld, item, ikey, "must not be empty");
            goto out;
        }
        if (get_string(ld, item, ikey, &(*out)[i]))
            goto out;
        const char *problem = kind->check((*out)[i]);
        if (problem) {
            fail(ld, item, ikey, "%s", problem);
            goto out;
        }
        refs[i] = (struct name_ref){(*out)[i], "", i};
    }
    size_t first = 0, dup = find_duplicate(refs, n, &first);
    if (dup < n) {
        char ikey[PATH_LEN];
        path_index(ikey, key, dup);
        fail(ld, seq_item(ld, v, dup), ikey, "duplicate %s (first at line %zu)", kind->noun,
             seq_item(ld, v, first)->start_mark.line + 1);
        goto out;
    }
    rc = 0;
out:
    free(refs);
    return rc;
}

/* `topics: t` stands for `topics: [t]`. Each must be a legal Kafka topic
 * name (the rules routes[].topic follows, router_topic_valid's), and a
 * topic listed twice is a mistake, not a wish to read it twice. */
static int parse_queue_topics(struct loader *ld, yaml_node_t *v, const char *key,
                              struct queue_cfg *q)
{
    static const struct name_list topics = {MAX_QUEUE_TOPICS, check_topic, "topic",
                                            "must list at least one topic"};
    if (v->type == YAML_SCALAR_NODE) {
        q->topics = xcalloc(1, sizeof *q->topics);
        q->n_topics = 1;
        if (get_string(ld, v, key, &q->topics[0]))
            return -1;
        const char *problem = check_topic(q->topics[0]);
        return problem ? fail(ld, v, key, "%s", problem) : 0;
    }
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(ld, v, key, "must be a topic name or a list of them");
    return parse_name_list(ld, v, key, &topics, &q->topics, &q->n_topics);
}

/* *name_node and *vhost_node receive the nodes later checks point at. */
static int parse_queue(struct loader *ld, yaml_node_t *item, const char *ikey, void *elem,
                       yaml_node_t **name_node, yaml_node_t **vhost_node)
{
    struct queue_cfg *q = elem;
    static const char *const names[] = {"name", "vhost", "topics", "message_id"};
    struct field_node f[ARRAY_LEN(names)];
    char fkey[PATH_LEN];
    if (map_fields(ld, item, ikey, names, ARRAY_LEN(names), f))
        return -1;
    q->line = (int)item->start_mark.line + 1;

    if (parse_declared_name(ld, item, &f[0], ikey, &q->name, name_node) ||
        parse_declared_vhost(ld, item, &f[1], ikey, &q->vhost, vhost_node))
        return -1;

    path_field(fkey, ikey, "topics");
    if (!f[2].val)
        return fail_required(ld, item, &f[2], fkey);
    if (parse_queue_topics(ld, f[2].val, fkey, q))
        return -1;

    path_field(fkey, ikey, "message_id");
    q->key_as_message_id = false;
    if (f[3].val) {
        bool key = scalar_is(f[3].val, "key");
        if (!key && !scalar_is(f[3].val, "none"))
            return fail(ld, f[3].val, fkey, "must be key or none");
        q->key_as_message_id = key;
    }
    return 0;
}

static int parse_queues(struct loader *ld, yaml_node_t *seq, const char *key)
{
    static const struct declared_kind kind = {
        sizeof(struct queue_cfg), parse_queue, offsetof(struct queue_cfg, name),
        offsetof(struct queue_cfg, vhost), "duplicate queue in its vhost"};
    void *elems = NULL;
    int rc = parse_declared(ld, seq, key, &kind, &elems, &ld->cfg->n_queues, &ld->queue_vhost);
    ld->cfg->queues = elems;
    return rc;
}

/* ---- kafka.auto_create_topics ---- */

static void free_create_patterns(struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_create_patterns; i++)
        free(cfg->create_patterns[i]);
    FREE_AND_NULL(cfg->create_patterns);
    cfg->n_create_patterns = 0;
}

/* A pattern is a Kafka topic name in which '*' stands for any run of
 * characters (topicrule_match). */
static const char *check_create_pattern(const char *s)
{
    if (!*s)
        return "must not be empty";
    if (strlen(s) > MAX_TOPIC)
        return "must be at most 249 characters (Kafka's limit on topic names)";
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-*", *p))
            return "may only contain a-z, A-Z, 0-9, '.', '_', '-' (Kafka topic name) and '*' "
                   "(any run of characters)";
    if (!strcmp(s, ".") || !strcmp(s, ".."))
        return "must not be \".\" or \"..\"";
    return NULL;
}

/* true (any topic), false (none) or a list of name patterns. */
static int parse_create_topics(struct loader *ld, yaml_node_t *v, const char *key)
{
    struct config *cfg = ld->cfg;
    free_create_patterns(cfg);
    if (v->type == YAML_SCALAR_NODE) {
        bool b = false;
        if (!is_plain(v) || get_bool(ld, v, key, &b))
            return fail(ld, v, key, "must be true, false or a list of topic name patterns");
        cfg->auto_create_topics = b;
        return 0;
    }
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(ld, v, key, "must be true, false or a list of topic name patterns");
    static const struct name_list patterns = {MAX_CREATE_PATTERNS, check_create_pattern, "pattern",
                                              "must list at least one pattern (false allows none)"};
    cfg->auto_create_topics = true;
    return parse_name_list(ld, v, key, &patterns, &cfg->create_patterns, &cfg->n_create_patterns);
}

/* ---- rabbit.upstream: the bridge's brokers ---- */

#define MAX_UPSTREAM_NODES 16
#define MAX_UPSTREAM_TAPS 64
#define MAX_UPSTREAM_NAME 200 /* hopper.tap.<name> must stay a short string */

static const char *check_upstream_name(const char *s)
{
    if (!*s)
        return "must not be empty";
    if (strlen(s) > MAX_UPSTREAM_NAME)
        return "must be at most 200 characters";
    if (!topic_chars(s))
        return "may only contain a-z, A-Z, 0-9, '.', '_' and '-'";
    return NULL;
}

/* amqp[s]://[user[:pass]@]host[:port][/vhost], as rabbitmq-c reads it. */
static const char *check_upstream_node(const char *s)
{
    if (strncmp(s, "amqp://", 7) && strncmp(s, "amqps://", 8))
        return "must be an amqp:// or amqps:// URI";
    if (strlen(s) > 1024)
        return "must be at most 1024 characters";
    char *copy = xstrdup(s);
    struct amqp_connection_info info;
    int rc = amqp_parse_url(copy, &info);
    bool empty_host = rc == AMQP_STATUS_OK && !*info.host;
    free(copy);
    if (rc != AMQP_STATUS_OK)
        return "is not a valid URI: amqp[s]://[user[:password]@]host[:port][/vhost]";
    if (empty_host)
        return "needs a host";
    return NULL;
}

static int parse_upstream_tls(struct loader *ld, yaml_node_t *map, const char *key,
                              struct upstream_cfg *u)
{
    static const char *const names[] = {"ca_file", "cert_file", "key_file", "verify"};
    struct field_node f[ARRAY_LEN(names)];
    char fkey[PATH_LEN];
    if (map_fields(ld, map, key, names, ARRAY_LEN(names), f))
        return -1;
    char **files[] = {&u->tls_ca_file, &u->tls_cert_file, &u->tls_key_file};
    for (size_t i = 0; i < ARRAY_LEN(files); i++) {
        path_field(fkey, key, names[i]);
        if (!f[i].val)
            continue;
        if (get_string(ld, f[i].val, fkey, files[i]))
            return -1;
        if (!**files[i])
            return fail(ld, f[i].val, fkey, "must not be empty");
    }
    if (!u->tls_cert_file != !u->tls_key_file) {
        path_field(fkey, key, u->tls_cert_file ? "key_file" : "cert_file");
        return fail(ld, map, fkey, "is required with %s",
                    u->tls_cert_file ? "cert_file" : "key_file");
    }
    path_field(fkey, key, "verify");
    return f[3].val ? get_bool(ld, f[3].val, fkey, &u->tls_verify) : 0;
}

static int parse_upstream_taps(struct loader *ld, yaml_node_t *seq, const char *key,
                               struct upstream_cfg *u)
{
    if (seq->type != YAML_SEQUENCE_NODE)
        return fail(ld, seq, key, "must be a list of {exchange, routing_key}");
    size_t n = seq_len(seq);
    if (n == 0)
        return fail(ld, seq, key, "must list at least one binding");
    if (n > MAX_UPSTREAM_TAPS)
        return fail(ld, seq, key, "must list at most %d bindings", MAX_UPSTREAM_TAPS);
    u->taps = xcalloc(n, sizeof *u->taps);
    u->n_taps = n;
    static const char *const names[] = {"exchange", "routing_key"};
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = seq_item(ld, seq, i);
        struct field_node f[ARRAY_LEN(names)];
        char ikey[PATH_LEN], fkey[PATH_LEN];
        path_index(ikey, key, i);
        if (map_fields(ld, item, ikey, names, ARRAY_LEN(names), f))
            return -1;
        path_field(fkey, ikey, "exchange");
        if (!f[0].val)
            return fail_required(ld, item, &f[0], fkey);
        if (get_shortstr(ld, f[0].val, fkey, &u->taps[i].exchange))
            return -1;
        if (!*u->taps[i].exchange)
            return fail(ld, f[0].val, fkey,
                        "must not be empty (the default exchange cannot be bound)");
        path_field(fkey, ikey, "routing_key");
        if (f[1].val) {
            if (get_shortstr(ld, f[1].val, fkey, &u->taps[i].routing_key))
                return -1;
        } else {
            u->taps[i].routing_key = xstrdup("#");
        }
    }
    return 0;
}

static int parse_upstream(struct loader *ld, yaml_node_t *item, const char *ikey,
                          struct upstream_cfg *u, yaml_node_t **vhost_node)
{
    static const char *const names[] = {
        "name",      "nodes",         "queue",         "tap",         "prefetch",
        "heartbeat", "reconnect_min", "reconnect_max", "vhost_route", "tls"};
    struct field_node f[ARRAY_LEN(names)];
    char fkey[PATH_LEN];
    u->prefetch = 1000;
    u->heartbeat = 60;
    u->reconnect_min_ms = 500;
    u->reconnect_max_ms = 30000;
    u->tls_verify = true;
    if (map_fields(ld, item, ikey, names, ARRAY_LEN(names), f))
        return -1;
    u->line = (int)item->start_mark.line + 1;

    path_field(fkey, ikey, "name");
    if (!f[0].val)
        return fail_required(ld, item, &f[0], fkey);
    if (get_string(ld, f[0].val, fkey, &u->name))
        return -1;
    const char *problem = check_upstream_name(u->name);
    if (problem)
        return fail(ld, f[0].val, fkey, "%s", problem);

    path_field(fkey, ikey, "nodes");
    if (!f[1].val)
        return fail_required(ld, item, &f[1], fkey);
    if (f[1].val->type == YAML_SCALAR_NODE)
        return fail(ld, f[1].val, fkey, "must be a list of amqp:// or amqps:// URIs");
    static const struct name_list nodes = {MAX_UPSTREAM_NODES, check_upstream_node, "node",
                                           "must list at least one node"};
    if (f[1].val->type != YAML_SEQUENCE_NODE)
        return fail(ld, f[1].val, fkey, "must be a list of amqp:// or amqps:// URIs");
    if (parse_name_list(ld, f[1].val, fkey, &nodes, &u->nodes, &u->n_nodes))
        return -1;

    if (!f[2].val == !f[3].val) {
        path_field(fkey, ikey, f[2].val ? "tap" : "queue");
        if (f[2].val)
            return fail(ld, f[3].key, fkey, "cannot go with queue: drain a queue or tap exchanges");
        return fail(ld, item, ikey, "needs queue (drain an existing queue) or tap (bindings)");
    }
    path_field(fkey, ikey, "queue");
    if (f[2].val) {
        if (get_shortstr(ld, f[2].val, fkey, &u->queue))
            return -1;
        if (!*u->queue)
            return fail(ld, f[2].val, fkey, "must not be empty");
    }
    path_field(fkey, ikey, "tap");
    if (f[3].val && parse_upstream_taps(ld, f[3].val, fkey, u))
        return -1;

    struct {
        size_t i;
        int64_t min, max;
        void *out;
        int bits;
    } ints[] = {
        {4, 1, 65535, &u->prefetch, 16},
        {5, 0, 3600, &u->heartbeat, 16},
        {6, 10, 600000, &u->reconnect_min_ms, 32},
        {7, 10, 3600000, &u->reconnect_max_ms, 32},
    };
    for (size_t k = 0; k < ARRAY_LEN(ints); k++) {
        if (!f[ints[k].i].val)
            continue;
        int64_t v;
        path_field(fkey, ikey, names[ints[k].i]);
        if (get_int(ld, f[ints[k].i].val, fkey, ints[k].min, ints[k].max, &v))
            return -1;
        if (ints[k].bits == 16)
            *(uint16_t *)ints[k].out = (uint16_t)v;
        else
            *(uint32_t *)ints[k].out = (uint32_t)v;
    }
    if (u->reconnect_min_ms > u->reconnect_max_ms) {
        path_field(fkey, ikey, "reconnect_max");
        return fail(ld, f[7].val ? f[7].val : item, fkey, "must be at least reconnect_min (%u)",
                    u->reconnect_min_ms);
    }

    path_field(fkey, ikey, "vhost_route");
    *vhost_node = f[8].val ? f[8].val : item;
    if (f[8].val) {
        if (get_shortstr(ld, f[8].val, fkey, &u->vhost_route))
            return -1;
    } else {
        u->vhost_route = xstrdup("/");
    }

    path_field(fkey, ikey, "tls");
    return f[9].val ? parse_upstream_tls(ld, f[9].val, fkey, u) : 0;
}

static int parse_upstreams(struct loader *ld, yaml_node_t *seq, const char *key)
{
    struct config *cfg = ld->cfg;
    if (seq->type != YAML_SEQUENCE_NODE)
        return fail(ld, seq, key, "must be a list");
    size_t n = seq_len(seq);
    cfg->upstreams = xcalloc(n, sizeof *cfg->upstreams);
    cfg->n_upstreams = n;
    ld->upstream_vhost = xcalloc(n, sizeof *ld->upstream_vhost);
    for (size_t i = 0; i < n; i++) {
        char ikey[PATH_LEN];
        path_index(ikey, key, i);
        yaml_node_t *item = seq_item(ld, seq, i);
        if (parse_upstream(ld, item, ikey, &cfg->upstreams[i], &ld->upstream_vhost[i]))
            return -1;
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(cfg->upstreams[j].name, cfg->upstreams[i].name)) {
                char fkey[PATH_LEN];
                path_field(fkey, ikey, "name");
                return fail(ld, item, fkey, "duplicate upstream name (first at line %d)",
                            cfg->upstreams[j].line);
            }
        }
    }
    return 0;
}

void config_tap_queue(const struct upstream_cfg *u, char *out, size_t size)
{
    snprintf(out, size, "hopper.tap.%s", u->name);
}

static void free_upstreams(struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        struct upstream_cfg *u = &cfg->upstreams[i];
        free(u->name);
        for (size_t j = 0; j < u->n_nodes; j++)
            free(u->nodes[j]);
        free(u->nodes);
        free(u->queue);
        for (size_t j = 0; j < u->n_taps; j++) {
            free(u->taps[j].exchange);
            free(u->taps[j].routing_key);
        }
        free(u->taps);
        free(u->vhost_route);
        free(u->tls_ca_file);
        free(u->tls_cert_file);
        free(u->tls_key_file);
    }
    free(cfg->upstreams);
}

/* ---- the document ---- */

typedef int (*list_fn)(struct loader *ld, yaml_node_t *val, const char *key);

static const struct {
    const char *name;
    list_fn parse;
} lists[] = {
    {"users", parse_users},
    {"vhosts", parse_vhosts},
    {"kafka.properties", parse_properties},
    {"kafka.auto_create_topics", parse_create_topics},
    {"exchanges", parse_exchanges},
    {"routes", parse_routes},
    {"queues", parse_queues},
    {"rabbit.upstream", parse_upstreams},
};

static list_fn find_list(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(lists); i++)
        if (!strcmp(lists[i].name, name))
            return lists[i].parse;
    return NULL;
}

/* A section is any prefix "x" of a setting or list named "x.y". */
static bool is_section(const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (!strncmp(settings[i].name, name, len) && settings[i].name[len] == '.')
            return true;
    for (size_t i = 0; i < ARRAY_LEN(lists); i++)
        if (!strncmp(lists[i].name, name, len) && lists[i].name[len] == '.')
            return true;
    return false;
}

/* The top level and the sections: every key is a setting, a list or a
 * section. Known keys are few, so repeats are found by a linear look back. */
static int parse_section(struct loader *ld, yaml_node_t *map, const char *key)
{
    yaml_node_t *seen[N_SETTINGS + ARRAY_LEN(lists) + 8];
    size_t n_seen = 0;
    if (map->type != YAML_MAPPING_NODE)
        return fail(ld, map, *key ? key : "(top level)", "must be a mapping");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_at(ld, p->key), *v = node_at(ld, p->value);
        char sub[PATH_LEN];
        if (k->type != YAML_SCALAR_NODE)
            return fail(ld, k, *key ? key : "(top level)", "keys must be strings");
        path_key(sub, key, k);
        /* names in the tables are dotted paths; a key holds one level */
        bool one_level = !strchr(scalar(k), '.');
        const struct setting *s = one_level ? find_setting(sub) : NULL;
        list_fn list = one_level && !s ? find_list(sub) : NULL;
        if (!s && !list && !(one_level && is_section(sub)))
            return fail(ld, k, sub, "unknown key");
        for (size_t i = 0; i < n_seen; i++)
            if (!strcmp(scalar(seen[i]), scalar(k)))
                return fail(ld, k, sub, "duplicate key (first at line %zu)",
                            seen[i]->start_mark.line + 1);
        if (n_seen < ARRAY_LEN(seen))
            seen[n_seen++] = k;
        int rc;
        if (is_null(v))
            rc = 0; /* empty means absent: keep the defaults */
        else if (s)
            rc = parse_setting(ld, s, v, sub);
        else if (list)
            rc = list(ld, v, sub);
        else
            rc = parse_section(ld, v, sub);
        if (rc)
            return -1;
    }
    return 0;
}

/* LIST[i].vhost must be one of vhosts. `node` is the vhost's value, or the
 * item itself when the vhost was left to its default. */
static int check_listed_vhost(struct loader *ld, const char *list, size_t i, const char *vhost,
                              yaml_node_t *node)
{
    if (config_has_vhost(ld->cfg, vhost))
        return 0;
    char ikey[PATH_LEN], fkey[PATH_LEN];
    path_index(ikey, list, i);
    path_field(fkey, ikey, "vhost");
    if (node->type == YAML_MAPPING_NODE)
        return fail(ld, node, fkey, "the default vhost \"/\" is not listed in vhosts");
    return fail(ld, node, fkey, "is not listed in vhosts");
}

/* Rules that span keys, checked once everything is read. */
static int cross_check(struct loader *ld)
{
    struct config *cfg = ld->cfg;
    if (cfg->min_insync_replicas > cfg->replication_factor) {
        const struct setting *mi = find_setting("kafka.min_insync_replicas");
        const struct setting *rf = find_setting("kafka.replication_factor");
        yaml_node_t *mi_node = ld->set_by[mi - settings], *rf_node = ld->set_by[rf - settings];
        if (mi_node)
            return fail(ld, mi_node, mi->name, "must not exceed kafka.replication_factor (%d)",
                        (int)cfg->replication_factor);
        /* only rf was set, below the default min_insync_replicas */
        return fail(ld, rf_node, rf->name,
                    "must be at least kafka.min_insync_replicas (%d, the default)",
                    (int)cfg->min_insync_replicas);
    }
    for (size_t i = 0; i < cfg->n_exchanges; i++)
        if (check_listed_vhost(ld, "exchanges", i, cfg->exchanges[i].vhost, ld->exchange_vhost[i]))
            return -1;
    for (size_t i = 0; i < cfg->n_queues; i++)
        if (check_listed_vhost(ld, "queues", i, cfg->queues[i].vhost, ld->queue_vhost[i]))
            return -1;
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        const char *v = cfg->upstreams[i].vhost_route;
        yaml_node_t *node = ld->upstream_vhost[i];
        if (config_has_vhost(cfg, v))
            continue;
        char ikey[PATH_LEN], fkey[PATH_LEN];
        path_index(ikey, "rabbit.upstream", i);
        path_field(fkey, ikey, "vhost_route");
        return fail(ld, node, fkey,
                    node->type == YAML_MAPPING_NODE
                        ? "the default vhost \"/\" is not listed in vhosts"
                        : "is not listed in vhosts");
    }
    /* A contract names a schema in the registry: there must be one. */
    const struct contract_cfg *k = NULL;
    const char *where = NULL;
    size_t at = 0;
    for (size_t i = 0; !k && i < cfg->n_routes; i++)
        if ((k = cfg->routes[i].contract))
            where = "routes", at = i;
    for (size_t i = 0; !k && i < cfg->n_exchanges; i++)
        if ((k = cfg->exchanges[i].contract))
            where = "exchanges", at = i;
    if (k && !*cfg->registry_url) {
        char ikey[PATH_LEN], fkey[PATH_LEN];
        path_index(ikey, where, at);
        path_field(fkey, ikey, "contract");
        yaml_mark_t mark = {0, (size_t)k->line - 1, (size_t)k->column - 1};
        return fail_at(ld, mark, fkey, "needs registry.url (the schema registry to read it from)");
    }
    return 0;
}

/* libyaml's own error, placed like ours. Reader errors (bad UTF-8, control
 * characters) come with a byte offset only, so count lines to it. */
static int fail_yaml(struct loader *ld, const yaml_parser_t *parser)
{
    yaml_mark_t mark = parser->problem_mark;
    const char *problem = parser->problem ? parser->problem : "cannot parse";
    if (parser->error == YAML_MEMORY_ERROR)
        problem = "out of memory";
    if (parser->error == YAML_READER_ERROR) {
        memset(&mark, 0, sizeof mark);
        for (size_t i = 0; i < parser->problem_offset && i < ld->len; i++) {
            if (ld->text[i] == '\n') {
                mark.line++;
                mark.column = 0;
            } else {
                mark.column++;
            }
        }
    }
    if (parser->context)
        return fail_at(ld, mark, "yaml", "%s (%s at line %zu)", problem, parser->context,
                       parser->context_mark.line + 1);
    return fail_at(ld, mark, "yaml", "%s", problem);
}

/* Reads one document and makes sure no second one follows. */
static int load_document(struct loader *ld, yaml_document_t *doc)
{
    yaml_parser_t parser;
    yaml_document_t extra;
    int rc = -1;
    if (!yaml_parser_initialize(&parser)) {
        yaml_mark_t start = {0, 0, 0};
        return fail_at(ld, start, "yaml", "out of memory");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)ld->text, ld->len);
    if (!yaml_parser_load(&parser, doc)) {
        fail_yaml(ld, &parser);
        goto out;
    }
    if (!yaml_parser_load(&parser, &extra)) {
        yaml_document_delete(doc);
        fail_yaml(ld, &parser);
        goto out;
    }
    yaml_node_t *root = yaml_document_get_root_node(&extra);
    if (root) {
        fail_at(ld, root->start_mark, "yaml", "a config file holds a single document");
        yaml_document_delete(&extra);
        yaml_document_delete(doc);
        goto out;
    }
    yaml_document_delete(&extra);
    rc = 0;
out:
    yaml_parser_delete(&parser);
    return rc;
}

/* ---- public API ---- */

struct config *config_default(void)
{
    struct config *cfg = xcalloc(1, sizeof *cfg);
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *s = &settings[i];
        if (s->type == T_STRING)
            store_string(cfg, s, xstrdup(s->def_str));
        else
            store_int(cfg, s, s->def);
    }
    cfg->users = xcalloc(1, sizeof *cfg->users);
    cfg->users[0] = (struct user_cfg){xstrdup("guest"), xstrdup("guest"), true};
    cfg->n_users = 1;
    cfg->vhosts = xcalloc(1, sizeof *cfg->vhosts);
    cfg->vhosts[0] = xstrdup("/");
    cfg->n_vhosts = 1;
    cfg->auto_create_topics = true; /* any topic, as before the rule existed */
    return cfg;
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (settings[i].type == T_STRING)
            free(*(char **)field(cfg, &settings[i]));
    free_users(cfg);
    free_vhosts(cfg);
    free_create_patterns(cfg);
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        free(cfg->kafka_props[i].key);
        free(cfg->kafka_props[i].value);
    }
    free(cfg->kafka_props);
    for (size_t i = 0; i < cfg->n_exchanges; i++) {
        free(cfg->exchanges[i].name);
        free(cfg->exchanges[i].vhost);
        free_contract(cfg->exchanges[i].contract);
    }
    free(cfg->exchanges);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        free(cfg->routes[i].exchange);
        free(cfg->routes[i].pattern);
        free(cfg->routes[i].topic);
        free(cfg->routes[i].key_header);
        free_contract(cfg->routes[i].contract);
    }
    free(cfg->routes);
    for (size_t i = 0; i < cfg->n_queues; i++) {
        free(cfg->queues[i].name);
        free(cfg->queues[i].vhost);
        for (size_t j = 0; j < cfg->queues[i].n_topics; j++)
            free(cfg->queues[i].topics[j]);
        free(cfg->queues[i].topics);
    }
    free(cfg->queues);
    free_upstreams(cfg);
    free(cfg->path);
    free(cfg);
}

int config_load_string(const char *name, const char *text, size_t len, struct config **out,
                       char *err, size_t errlen)
{
    yaml_document_t doc;
    struct loader ld = {.name = name, .text = text, .len = len, .err = err, .errlen = errlen};
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (load_document(&ld, &doc))
        return -1;
    ld.doc = &doc;
    ld.cfg = config_default();
    ld.cfg->path = xstrdup(name);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    int rc = 0;
    if (root && !is_null(root))
        rc = parse_section(&ld, root, "");
    if (rc == 0)
        rc = cross_check(&ld);
    yaml_document_delete(&doc);
    free(ld.exchange_vhost);
    free(ld.queue_vhost);
    free(ld.upstream_vhost);
    if (rc) {
        config_free(ld.cfg);
        return -1;
    }
    *out = ld.cfg;
    return 0;
}

int config_load(const char *path, struct config **out, char *err, size_t errlen)
{
    struct buf text = {0};
    char chunk[8192];
    size_t n;
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (text.len + n > MAX_FILE_SIZE) {
            if (err && errlen)
                snprintf(err, errlen, "%s: larger than %u MiB, not a config file", path,
                         MAX_FILE_SIZE >> 20);
            fclose(f);
            buf_free(&text);
            return -1;
        }
        buf_append(&text, chunk, n);
    }
    if (ferror(f)) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        fclose(f);
        buf_free(&text);
        return -1;
    }
    fclose(f);
    int rc = config_load_string(path, text.data ? text.data : "", text.len, out, err, errlen);
    buf_free(&text);
    return rc;
}

const struct user_cfg *config_find_user(const struct config *cfg, const char *name)
{
    for (size_t i = 0; cfg && i < cfg->n_users; i++)
        if (!strcmp(cfg->users[i].name, name))
            return &cfg->users[i];
    return NULL;
}

bool config_has_vhost(const struct config *cfg, const char *vhost)
{
    for (size_t i = 0; cfg && i < cfg->n_vhosts; i++)
        if (!strcmp(cfg->vhosts[i], vhost))
            return true;
    return false;
}
