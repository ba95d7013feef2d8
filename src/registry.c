/* registry.c - asking a schema registry for a subject's schema (see
 * registry.h). */
#include "registry.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "log.h"
#include "util.h"

/* One question on the wire. Kept in a list so that registry_free can
 * free those evhttp drops without calling back. */
struct question {
    struct registry *r;
    struct question *prev, *next;
    registry_fn fn;
    void *arg;
    char *subject; /* registry_fetch_id's: the list of versions comes first */
    int32_t id;
    enum evhttp_request_error error;
    bool failed;
};

struct registry {
    struct event_base *base;
    struct evhttp_connection *conn;
    char *host;
    int port;
    char *base_path; /* without a trailing '/' */
    char *name;      /* for messages */
    char *auth;      /* "Basic ..." or NULL */
    struct timeval timeout;
    struct question *open;
};

struct registry *registry_new(struct event_base *base, const struct config *cfg, char *err,
                              size_t errlen)
{
    struct evhttp_uri *uri = evhttp_uri_parse(cfg->registry_url);
    if (!uri || !evhttp_uri_get_host(uri)) {
        snprintf(err, errlen, "registry.url: cannot parse %s", cfg->registry_url);
        if (uri)
            evhttp_uri_free(uri);
        return NULL;
    }
    struct registry *r = xcalloc(1, sizeof *r);
    r->base = base;
    r->host = xstrdup(evhttp_uri_get_host(uri));
    r->port = evhttp_uri_get_port(uri) > 0 ? evhttp_uri_get_port(uri) : 80;
    const char *path = evhttp_uri_get_path(uri);
    size_t plen = path ? strlen(path) : 0;
    while (plen && path[plen - 1] == '/')
        plen--;
    r->base_path = xstrndup(path ? path : "", plen);
    evhttp_uri_free(uri);
    struct buf name = {0};
    buf_printf(&name, "http://%s:%d%s", r->host, r->port, r->base_path);
    buf_putc(&name, '\0');
    r->name = (char *)name.data;
    if (*cfg->registry_username) {
        struct buf plain = {0};
        buf_printf(&plain, "%s:%s", cfg->registry_username, cfg->registry_password);
        size_t cap = 6 + 4 * ((plain.len + 2) / 3) + 1;
        r->auth = xmalloc(cap);
        memcpy(r->auth, "Basic ", 6);
        EVP_EncodeBlock((unsigned char *)r->auth + 6, (const unsigned char *)plain.data,
                        (int)plain.len);
        explicit_bzero(plain.data, plain.len);
        buf_free(&plain);
    }
    r->timeout.tv_sec = cfg->registry_timeout_ms / 1000;
    r->timeout.tv_usec = (cfg->registry_timeout_ms % 1000) * 1000;
    r->conn = evhttp_connection_base_new(base, NULL, r->host, (unsigned short)r->port);
    if (!r->conn) {
        snprintf(err, errlen, "registry: cannot make a connection to %s", r->name);
        registry_free(r);
        return NULL;
    }
    evhttp_connection_set_timeout_tv(r->conn, &r->timeout);
    evhttp_connection_set_retries(r->conn, 0);
    evhttp_connection_set_max_body_size(r->conn, REGISTRY_MAX_ANSWER);
    return r;
}

static void question_free(struct question *q)
{
    free(q->subject);
    free(q);
}

void registry_free(struct registry *r)
{
    if (!r)
        return;
    /* evhttp frees its requests without calling them back. */
    if (r->conn)
        evhttp_connection_free(r->conn);
    while (r->open) {
        struct question *q = r->open;
        r->open = q->next;
        question_free(q);
    }
    free(r->host);
    free(r->base_path);
    free(r->name);
    if (r->auth)
        explicit_bzero(r->auth, strlen(r->auth));
    free(r->auth);
    free(r);
}

static void forget(struct question *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        q->r->open = q->next;
    if (q->next)
        q->next->prev = q->prev;
}

static const char *request_error(enum evhttp_request_error e)
{
    switch (e) {
    case EVREQ_HTTP_TIMEOUT:
        return "no answer within registry.timeout";
    case EVREQ_HTTP_EOF:
        return "the registry closed the connection";
    case EVREQ_HTTP_INVALID_HEADER:
        return "the registry's answer is not HTTP";
    case EVREQ_HTTP_BUFFER_ERROR:
        return "cannot connect or write to the registry";
    case EVREQ_HTTP_DATA_TOO_LONG:
        return "the registry's answer is larger than 4 MiB";
    case EVREQ_HTTP_REQUEST_CANCEL:
        return "cancelled";
    }
    return "no answer";
}

static void on_error(enum evhttp_request_error e, void *arg)
{
    struct question *q = arg;
    q->failed = true;
    q->error = e;
}

/* A registry's words go into one log line: control bytes become '?'. */
static void one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < ' ' || (unsigned char)*s == 0x7f)
            *s = '?';
}

/* An answer's JSON, or NULL with why. */
static json_t *load_answer(const char *body, size_t len, char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        snprintf(why, whylen, "the registry's answer is not JSON: %s", jerr.text);
        one_line(why);
    }
    return j;
}

bool registry_parse_answer(const char *body, size_t len, struct registry_schema *s,
                           struct json_t **root, char *why, size_t whylen)
{
    json_t *j = load_answer(body, len, why, whylen);
    *root = NULL;
    if (!j)
        return false;
    json_t *id = json_object_get(j, "id"), *version = json_object_get(j, "version");
    json_t *schema = json_object_get(j, "schema"), *type = json_object_get(j, "schemaType");
    if (!json_is_integer(id) || !json_is_integer(version) || !json_is_string(schema) ||
        (type && !json_is_string(type)) || json_integer_value(id) < 0 ||
        json_integer_value(id) > INT32_MAX || json_integer_value(version) < 1 ||
        json_integer_value(version) > INT32_MAX) {
        snprintf(why, whylen, "the registry's answer lacks id, version or schema");
        json_decref(j);
        return false;
    }
    s->id = (int32_t)json_integer_value(id);
    s->version = (int32_t)json_integer_value(version);
    s->text = json_string_value(schema);
    s->len = json_string_length(schema);
    /* Confluent leaves schemaType out for Avro. */
    const char *t = type ? json_string_value(type) : "AVRO";
    if (!strcmp(t, "AVRO")) {
        s->type = SCHEMA_AVRO;
    } else if (!strcmp(t, "JSON")) {
        s->type = SCHEMA_JSON;
    } else if (!strcmp(t, "PROTOBUF")) {
        s->type = SCHEMA_PROTOBUF;
    } else {
        snprintf(why, whylen, "unknown schemaType in the registry's answer");
        json_decref(j);
        return false;
    }
    *root = j;
    return true;
}

bool registry_parse_versions(const char *body, size_t len, const char *subject, int32_t *version,
                             char *why, size_t whylen)
{
    json_t *j = load_answer(body, len, why, whylen);
    *version = 0;
    if (!j)
        return false;
    bool ok = json_is_array(j);
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v)
    {
        json_t *s = json_object_get(v, "subject"), *n = json_object_get(v, "version");
        if (!json_is_string(s) || !json_is_integer(n) || json_integer_value(n) < 1 ||
            json_integer_value(n) > INT32_MAX) {
            ok = false;
            break;
        }
        if (!strcmp(json_string_value(s), subject) && json_string_length(s) == strlen(subject))
            *version = (int32_t)json_integer_value(n);
    }
    if (!ok) {
        *version = 0;
        snprintf(why, whylen, "the registry's answer is not a list of subjects and versions");
    }
    json_decref(j);
    return ok;
}

/* The message of a registry's error answer ({"error_code":..,"message":..}),
 * or "". */
static void error_message(const char *body, size_t len, char *out, size_t outlen)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    json_t *m = j ? json_object_get(j, "message") : NULL;
    snprintf(out, outlen, "%s", json_is_string(m) ? json_string_value(m) : "");
    one_line(out);
    json_decref(j);
}

static void on_answer(struct evhttp_request *req, void *arg)
{
    struct question *q = arg;
    struct registry *r = q->r;
    char why[512];
    int code = req ? evhttp_request_get_response_code(req) : 0;
    forget(q);
    if (q->failed || code == 0) {
        snprintf(why, sizeof why, "registry %s: %s", r->name,
                 q->failed ? request_error(q->error) : "no answer");
        q->fn(q->arg, REGISTRY_UNAVAILABLE, NULL, why);
        question_free(q);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = (const char *)evbuffer_pullup(in, -1);
    if (!body)
        body = "", len = 0;
    if (code != 200) {
        char msg[256];
        error_message(body, len, msg, sizeof msg);
        snprintf(why, sizeof why, "registry %s answered %d%s%s", r->name, code, *msg ? ": " : "",
                 msg);
        q->fn(q->arg, code == 404 ? REGISTRY_NOT_FOUND : REGISTRY_UNAVAILABLE, NULL, why);
        question_free(q);
        return;
    }
    char problem[256];
    if (q->subject) {
        int32_t version;
        if (!registry_parse_versions(body, len, q->subject, &version, problem, sizeof problem)) {
            snprintf(why, sizeof why, "registry %s: %s", r->name, problem);
            q->fn(q->arg, REGISTRY_UNAVAILABLE, NULL, why);
        } else if (!version) {
            snprintf(why, sizeof why, "schema id %" PRId32 " is no version of subject %s", q->id,
                     q->subject);
            q->fn(q->arg, REGISTRY_NOT_FOUND, NULL, why);
        } else {
            registry_fetch(r, q->subject, version, q->fn, q->arg);
        }
        question_free(q);
        return;
    }
    struct registry_schema s;
    json_t *root = NULL;
    if (!registry_parse_answer(body, len, &s, &root, problem, sizeof problem)) {
        snprintf(why, sizeof why, "registry %s: %s", r->name, problem);
        q->fn(q->arg, REGISTRY_UNAVAILABLE, NULL, why);
    } else {
        q->fn(q->arg, REGISTRY_OK, &s, NULL);
    }
    json_decref(root);
    question_free(q);
}

static void fail_later(evutil_socket_t fd, short what, void *arg)
{
    struct question *q = arg;
    q->fn(q->arg, REGISTRY_UNAVAILABLE, NULL, "registry: cannot connect");
    question_free(q);
}

/* GET path (below the base path) for q. */
static void ask(struct registry *r, struct question *q, const char *path)
{
    q->r = r;
    q->next = r->open;
    if (r->open)
        r->open->prev = q;
    r->open = q;
    struct evhttp_request *req = evhttp_request_new(on_answer, q);
    evhttp_request_set_error_cb(req, on_error);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", r->host);
    evhttp_add_header(h, "Accept", "application/vnd.schemaregistry.v1+json, application/json");
    if (r->auth)
        evhttp_add_header(h, "Authorization", r->auth);
    struct buf full = {0};
    buf_printf(&full, "%s%s", r->base_path, path);
    buf_putc(&full, '\0');
    int rc = evhttp_make_request(r->conn, req, EVHTTP_REQ_GET, (const char *)full.data);
    buf_free(&full);
    if (rc == 0)
        return;
    /* A connect that fails at once (no socket, no route): unless evhttp
     * answered already, answer from the loop, as for any other failure.
     * evhttp keeps req in that case; it is not ours to free. */
    for (struct question *o = r->open; o; o = o->next) {
        if (o != q)
            continue;
        forget(q);
        if (event_base_once(r->base, -1, EV_TIMEOUT, fail_later, q, NULL))
            fail_later(-1, 0, q);
        return;
    }
}

void registry_fetch(struct registry *r, const char *subject, int32_t version, registry_fn fn,
                    void *arg)
{
    struct question *q = xcalloc(1, sizeof *q);
    *q = (struct question){.fn = fn, .arg = arg};
    char *enc = evhttp_uriencode(subject, -1, 0);
    struct buf path = {0};
    if (version > 0)
        buf_printf(&path, "/subjects/%s/versions/%" PRId32, enc, version);
    else
        buf_printf(&path, "/subjects/%s/versions/latest", enc);
    buf_putc(&path, '\0');
    free(enc);
    ask(r, q, (const char *)path.data);
    buf_free(&path);
}

void registry_fetch_id(struct registry *r, const char *subject, int32_t id, registry_fn fn,
                       void *arg)
{
    struct question *q = xcalloc(1, sizeof *q);
    *q = (struct question){.fn = fn, .arg = arg, .subject = xstrdup(subject), .id = id};
    char path[64];
    snprintf(path, sizeof path, "/schemas/ids/%" PRId32 "/versions", id);
    ask(r, q, path);
}
