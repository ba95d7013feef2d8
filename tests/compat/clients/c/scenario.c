/* The compat scenario for rabbitmq-c (librabbitmq 0.11, Debian): every
 * publish of a step is sent before its confirms are read. Output contract:
 * tests/compat/README.md. The values mirror ../scenario.json (C has no JSON
 * reader here); the runner checks the records against scenario.json, so a
 * drift shows up as a failed check. */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define COUNT 1000
#define BIG_SIZE 1048576

static const char *client, *run;
static int timeout_s = 30;
static amqp_connection_state_t conn;

/* Confirm bookkeeping per channel (1 and 2). */
static struct {
    uint64_t next_tag, settled_upto; /* tags 1..next_tag-1 published */
    unsigned char *outcome;          /* per tag: 0 pending, 1 ack, 2 nack */
    int acks, nacks, returns, last_return_code;
    char last_return_text[64];
} ch[3];

static void step(const char *name, int ok, const char *fmt, ...)
{
    va_list ap;
    printf("STEP %s %s ", name, ok ? "ok" : "FAIL");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *reply_error(amqp_rpc_reply_t r)
{
    static char buf[256];
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return NULL;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(buf, sizeof buf, "library: %s", amqp_error_string2(r.library_error));
        return buf;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;
            snprintf(buf, sizeof buf, "connection.close %u %.*s", m->reply_code,
                     (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            snprintf(buf, sizeof buf, "channel.close %u %.*s", m->reply_code,
                     (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else {
            snprintf(buf, sizeof buf, "server method 0x%08x", r.reply.id);
        }
        return buf;
    default:
        return "no reply";
    }
}

static int published(int c)
{
    uint64_t tag = ch[c].next_tag++;
    ch[c].outcome = realloc(ch[c].outcome, ch[c].next_tag);
    ch[c].outcome[tag] = 0;
    return 0;
}

static void settle(int c, uint64_t tag, int multiple, int kind)
{
    uint64_t from = multiple ? 1 : tag;
    for (uint64_t t = from; t <= tag && t < ch[c].next_tag; t++) {
        if (ch[c].outcome[t])
            continue;
        ch[c].outcome[t] = (unsigned char)kind;
        if (kind == 1)
            ch[c].acks++;
        else
            ch[c].nacks++;
    }
}

static int pending(void)
{
    int n = 0;
    for (int c = 1; c <= 2; c++)
        for (uint64_t t = 1; t < ch[c].next_tag; t++)
            n += ch[c].outcome[t] == 0;
    return n;
}

/* Read frames until no confirm is pending or the deadline passes. Returns
 * NULL on success, else why it stopped. */
static const char *await_confirms(void)
{
    double deadline = now() + timeout_s;
    while (pending() > 0) {
        double left = deadline - now();
        if (left <= 0)
            return "timeout waiting for confirms";
        struct timeval tv = {(long)left, (long)((left - (long)left) * 1e6)};
        amqp_frame_t f;
        amqp_maybe_release_buffers(conn);
        int rc = amqp_simple_wait_frame_noblock(conn, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            return "timeout waiting for confirms";
        if (rc != AMQP_STATUS_OK)
            return amqp_error_string2(rc);
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        int c = f.channel;
        switch (f.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD: {
            amqp_basic_ack_t *m = f.payload.method.decoded;
            settle(c, m->delivery_tag, m->multiple, 1);
            break;
        }
        case AMQP_BASIC_NACK_METHOD: {
            amqp_basic_nack_t *m = f.payload.method.decoded;
            settle(c, m->delivery_tag, m->multiple, 2);
            break;
        }
        case AMQP_BASIC_RETURN_METHOD: {
            amqp_basic_return_t *m = f.payload.method.decoded;
            ch[c].returns++;
            ch[c].last_return_code = m->reply_code;
            snprintf(ch[c].last_return_text, sizeof ch[c].last_return_text, "%.*s",
                     (int)m->reply_text.len, (char *)m->reply_text.bytes);
            amqp_message_t msg;
            amqp_rpc_reply_t r = amqp_read_message(conn, f.channel, &msg, 0);
            if (r.reply_type != AMQP_RESPONSE_NORMAL)
                return "reading the returned message failed";
            amqp_destroy_message(&msg);
            break;
        }
        case AMQP_CHANNEL_CLOSE_METHOD:
            return "channel closed by the server";
        case AMQP_CONNECTION_CLOSE_METHOD:
            return "connection closed by the server";
        default:
            break;
        }
    }
    return NULL;
}

static int publish(int c, const char *exchange, const char *key, int mandatory,
                   const amqp_basic_properties_t *p, amqp_bytes_t body)
{
    published(c);
    return amqp_basic_publish(conn, (amqp_channel_t)c, amqp_cstring_bytes(exchange),
                              amqp_cstring_bytes(key), mandatory, 0, p, body);
}

static amqp_field_value_t str_value(const char *s)
{
    amqp_field_value_t v = {.kind = AMQP_FIELD_KIND_UTF8};
    v.value.bytes = amqp_cstring_bytes(s);
    return v;
}

static amqp_field_value_t int_value(int32_t i)
{
    amqp_field_value_t v = {.kind = AMQP_FIELD_KIND_I32};
    v.value.i32 = i;
    return v;
}

/* ---- the consume step ---- */

/* A new connection with channel 1 open, or NULL (why in *err). */
static amqp_connection_state_t open_again(const char **err)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(c);
    struct timeval tv = {timeout_s, 0};
    if (!sock || amqp_socket_open_noblock(sock, getenv("COMPAT_HOST"), atoi(getenv("COMPAT_PORT")),
                                          &tv) != AMQP_STATUS_OK) {
        *err = "socket open failed";
        amqp_destroy_connection(c);
        return NULL;
    }
    amqp_set_handshake_timeout(c, &tv);
    amqp_set_rpc_timeout(c, &tv);
    *err = reply_error(amqp_login(c, "/", 0, 131072, 60, AMQP_SASL_METHOD_PLAIN, "guest", "guest"));
    if (!*err) {
        amqp_channel_open(c, 1);
        *err = reply_error(amqp_get_rpc_reply(c));
    }
    if (*err) {
        amqp_destroy_connection(c);
        return NULL;
    }
    return c;
}

static const char *close_again(amqp_connection_state_t c)
{
    const char *err = reply_error(amqp_connection_close(c, AMQP_REPLY_SUCCESS));
    int rc = amqp_destroy_connection(c);
    return err ? err : rc != AMQP_STATUS_OK ? amqp_error_string2(rc) : NULL;
}

/* The delivered properties as JSON, the way the runner compares them. */
static void json_bytes(amqp_bytes_t b)
{
    putchar('"');
    for (size_t i = 0; i < b.len; i++) {
        unsigned char c = ((unsigned char *)b.bytes)[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void json_table(const amqp_table_t *t);

static void json_value(const amqp_field_value_t *v)
{
    switch (v->kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
        printf(v->value.boolean ? "true" : "false");
        break;
    case AMQP_FIELD_KIND_I8:
        printf("%d", v->value.i8);
        break;
    case AMQP_FIELD_KIND_U8:
        printf("%u", v->value.u8);
        break;
    case AMQP_FIELD_KIND_I16:
        printf("%d", v->value.i16);
        break;
    case AMQP_FIELD_KIND_U16:
        printf("%u", v->value.u16);
        break;
    case AMQP_FIELD_KIND_I32:
        printf("%" PRId32, v->value.i32);
        break;
    case AMQP_FIELD_KIND_U32:
        printf("%" PRIu32, v->value.u32);
        break;
    case AMQP_FIELD_KIND_I64:
        printf("%" PRId64, v->value.i64);
        break;
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        printf("%" PRIu64, v->value.u64);
        break;
    case AMQP_FIELD_KIND_F32:
        printf("%.9g", v->value.f32);
        break;
    case AMQP_FIELD_KIND_F64:
        printf("%.17g", v->value.f64);
        break;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        json_bytes(v->value.bytes);
        break;
    case AMQP_FIELD_KIND_ARRAY:
        putchar('[');
        for (int i = 0; i < v->value.array.num_entries; i++) {
            printf(i ? ", " : "");
            json_value(&v->value.array.entries[i]);
        }
        putchar(']');
        break;
    case AMQP_FIELD_KIND_TABLE:
        json_table(&v->value.table);
        break;
    default: /* void, decimal: not in the scenario */
        printf("null");
    }
}

static void json_table(const amqp_table_t *t)
{
    putchar('{');
    for (int i = 0; i < t->num_entries; i++) {
        printf(i ? ", " : "");
        json_bytes(t->entries[i].key);
        printf(": ");
        json_value(&t->entries[i].value);
    }
    putchar('}');
}

/* Starts `"name": ` when the property is present. */
static int key(const amqp_basic_properties_t *p, amqp_flags_t flag, const char *name,
               const char **sep)
{
    if (!(p->_flags & flag))
        return 0;
    printf("%s\"%s\": ", *sep, name);
    *sep = ", ";
    return 1;
}

static void print_delivered(const amqp_basic_properties_t *p)
{
    const char *sep = "";
    printf("DELIVERED {");
    if (key(p, AMQP_BASIC_CONTENT_TYPE_FLAG, "content_type", &sep))
        json_bytes(p->content_type);
    if (key(p, AMQP_BASIC_CONTENT_ENCODING_FLAG, "content_encoding", &sep))
        json_bytes(p->content_encoding);
    if (key(p, AMQP_BASIC_HEADERS_FLAG, "headers", &sep))
        json_table(&p->headers);
    if (key(p, AMQP_BASIC_DELIVERY_MODE_FLAG, "delivery_mode", &sep))
        printf("%u", p->delivery_mode);
    if (key(p, AMQP_BASIC_PRIORITY_FLAG, "priority", &sep))
        printf("%u", p->priority);
    if (key(p, AMQP_BASIC_CORRELATION_ID_FLAG, "correlation_id", &sep))
        json_bytes(p->correlation_id);
    if (key(p, AMQP_BASIC_REPLY_TO_FLAG, "reply_to", &sep))
        json_bytes(p->reply_to);
    if (key(p, AMQP_BASIC_EXPIRATION_FLAG, "expiration", &sep))
        json_bytes(p->expiration);
    if (key(p, AMQP_BASIC_MESSAGE_ID_FLAG, "message_id", &sep))
        json_bytes(p->message_id);
    if (key(p, AMQP_BASIC_TIMESTAMP_FLAG, "timestamp", &sep))
        printf("%" PRIu64, p->timestamp);
    if (key(p, AMQP_BASIC_TYPE_FLAG, "type", &sep))
        json_bytes(p->type);
    if (key(p, AMQP_BASIC_USER_ID_FLAG, "user_id", &sep))
        json_bytes(p->user_id);
    if (key(p, AMQP_BASIC_APP_ID_FLAG, "app_id", &sep))
        json_bytes(p->app_id);
    if (key(p, AMQP_BASIC_CLUSTER_ID_FLAG, "cluster_id", &sep))
        json_bytes(p->cluster_id);
    printf("}\n");
}

static int bytes_is(amqp_bytes_t b, const char *s)
{
    return b.len == strlen(s) && !memcmp(b.bytes, s, b.len);
}

/* Consume with manual acks and prefetch 100 until all 1002 came, the nacked
 * one (body <run>:0) again; then, on a new connection, basic.get. */
static int consume_step(const char *queue, const unsigned char *big)
{
    static unsigned char small[COUNT];
    int deliveries = 0, redelivered = 0, bad = 0, n_small = 0, big_seen = 0, big_ok = 0, props = 0;
    int nacked = 0, back = 0;
    const char *get = "not-run", *err = NULL;
    char first[64];
    snprintf(first, sizeof first, "%s:0", run);
    double t0 = now(), ms = 0;

    amqp_connection_state_t c = open_again(&err);
    if (c) {
        amqp_basic_qos(c, 1, 0, 100, 0);
        err = reply_error(amqp_get_rpc_reply(c));
    }
    if (c && !err) {
        amqp_basic_consume(c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                           amqp_empty_table);
        err = reply_error(amqp_get_rpc_reply(c));
    }
    double deadline = now() + timeout_s;
    while (c && !err && !(n_small + big_seen + props == COUNT + 2 && back)) {
        double left = deadline - now();
        if (left <= 0) {
            err = "timeout waiting for deliveries";
            break;
        }
        struct timeval tv = {(long)left, (long)((left - (long)left) * 1e6)};
        amqp_envelope_t env;
        amqp_maybe_release_buffers(c);
        amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            err = r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
                          r.library_error == AMQP_STATUS_TIMEOUT
                      ? "timeout waiting for deliveries"
                      : reply_error(r);
            break;
        }
        deliveries++;
        redelivered += !!env.redelivered;
        int nack = 0;
        amqp_bytes_t body = env.message.body;
        if (bytes_is(env.routing_key, "k.big")) {
            big_seen = 1;
            big_ok = body.len == BIG_SIZE && !memcmp(body.bytes, big, BIG_SIZE);
        } else if (bytes_is(env.routing_key, "k.props")) {
            props = 1;
            print_delivered(&env.message.properties);
        } else {
            char text[64] = "";
            int i = -1, end = 0;
            if (body.len < sizeof text)
                memcpy(text, body.bytes, body.len);
            const char *colon = strrchr(text, ':');
            if (colon && (size_t)(colon - text) == strlen(run) &&
                !strncmp(text, run, strlen(run)) && sscanf(colon + 1, "%d%n", &i, &end) == 1 &&
                colon[1 + end] == '\0' && i >= 0 && i < COUNT) {
                n_small += !small[i];
                small[i] = 1;
            } else {
                bad++;
            }
            if (!strcmp(text, first)) {
                if (!nacked)
                    nack = nacked = 1;
                else if (env.redelivered)
                    back = 1;
            }
        }
        int rc = nack ? amqp_basic_nack(c, 1, env.delivery_tag, 0, 1)
                      : amqp_basic_ack(c, 1, env.delivery_tag, 0);
        amqp_destroy_envelope(&env);
        if (rc != AMQP_STATUS_OK)
            err = amqp_error_string2(rc);
    }
    ms = (now() - t0) * 1000;
    char why[256]; /* reply_error's buffer is reused by the close */
    if (err) {
        snprintf(why, sizeof why, "%s", err);
        err = why;
    }
    if (c) {
        const char *e = close_again(c);
        err = err ? err : e;
    }
    int done = n_small + big_seen + props == COUNT + 2 && back;
    if (done && !err) {
        if (!strcmp(getenv("COMPAT_TARGET") ? getenv("COMPAT_TARGET") : "", "hopper"))
            sleep(1); /* a commit interval is 200 ms */
        c = open_again(&err);
        if (c) {
            amqp_basic_get(c, 1, amqp_cstring_bytes(queue), 0);
            amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
            err = reply_error(r);
            if (!err && r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) {
                get = "empty";
            } else if (!err) {
                amqp_message_t msg;
                get = "message";
                if (amqp_read_message(c, 1, &msg, 0).reply_type == AMQP_RESPONSE_NORMAL)
                    amqp_destroy_message(&msg);
            }
            const char *e = close_again(c);
            err = err ? err : e;
        }
    }
    int ok = done && redelivered == 1 && deliveries == COUNT + 3 && n_small == COUNT && !bad &&
             big_ok && !strcmp(get, "empty") && !err;
    step("consume", ok,
         "count=%d redelivered=%d deliveries=%d back=%s bodies=%s big=%s props=%s get=%s "
         "_ms=%d%s%s%s",
         n_small + big_seen + props, redelivered, deliveries, back ? "true" : "false",
         n_small == COUNT && !bad ? "ok" : "WRONG",
         !big_seen ? "missing"
         : big_ok  ? "ok"
                   : "WRONG",
         props ? "yes" : "missing", get, (int)ms, err ? " error=\"" : "", err ? err : "",
         err ? "\"" : "");
    return ok ? 0 : 1;
}

int main(void)
{
    client = getenv("COMPAT_CLIENT");
    run = getenv("COMPAT_RUN");
    if (getenv("COMPAT_TIMEOUT"))
        timeout_s = atoi(getenv("COMPAT_TIMEOUT"));
    char exchange[128], queue[140];
    snprintf(exchange, sizeof exchange, "compat.%s.%s", client, run);
    snprintf(queue, sizeof queue, "%s.q", exchange);
    ch[1].next_tag = ch[2].next_tag = 1;

    /* ---- connect: amqp_login with PLAIN (rabbitmq-c's only password mechanism) */
    conn = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(conn);
    struct timeval tv = {timeout_s, 0};
    if (!sock || amqp_socket_open_noblock(sock, getenv("COMPAT_HOST"), atoi(getenv("COMPAT_PORT")),
                                          &tv) != AMQP_STATUS_OK) {
        step("connect", 0, "error=\"socket open failed\"");
        return 1;
    }
    amqp_set_handshake_timeout(conn, &tv);
    amqp_set_rpc_timeout(conn, &tv);
    const char *err =
        reply_error(amqp_login(conn, "/", 0, 131072, 60, AMQP_SASL_METHOD_PLAIN, "guest", "guest"));
    if (err) {
        step("connect", 0, "error=\"%s\"", err);
        return 1;
    }
    step("connect", 1, "mechanism=PLAIN _version=%s", amqp_version());

    /* ---- declare */
    amqp_queue_declare_ok_t *qok = NULL;
    for (int c = 1; c <= 2 && !err; c++) {
        amqp_channel_open(conn, (amqp_channel_t)c);
        if (!(err = reply_error(amqp_get_rpc_reply(conn)))) {
            amqp_confirm_select(conn, (amqp_channel_t)c);
            err = reply_error(amqp_get_rpc_reply(conn));
        }
    }
    if (!err) {
        amqp_exchange_declare(conn, 1, amqp_cstring_bytes(exchange), amqp_cstring_bytes("topic"), 0,
                              0, 0, 0, amqp_empty_table);
        err = reply_error(amqp_get_rpc_reply(conn));
    }
    if (!err) {
        qok = amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, amqp_empty_table);
        err = reply_error(amqp_get_rpc_reply(conn));
    }
    if (!err) {
        amqp_queue_bind(conn, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                        amqp_cstring_bytes("k.#"), amqp_empty_table);
        err = reply_error(amqp_get_rpc_reply(conn));
    }
    if (!err) {
        amqp_exchange_declare(conn, 1, amqp_cstring_bytes("compat-noroute"),
                              amqp_cstring_bytes("topic"), 0, 1, 0, 0, amqp_empty_table);
        err = reply_error(amqp_get_rpc_reply(conn));
    }
    if (err) {
        step("declare", 0, "error=\"%s\"", err);
        return 1;
    }
    step("declare", 1, "queue_messages=%u", qok->message_count);

    /* ---- publish */
    double t0 = now();
    char key[16], body[64];
    for (int i = 0; i < COUNT; i++) {
        snprintf(key, sizeof key, "k.%d", i % 10);
        snprintf(body, sizeof body, "%s:%d", run, i);
        if (publish(i % 2 == 0 ? 1 : 2, exchange, key, 0, NULL, amqp_cstring_bytes(body)) !=
            AMQP_STATUS_OK) {
            step("publish", 0, "error=\"basic.publish failed\"");
            return 1;
        }
    }
    err = await_confirms();
    int acks = ch[1].acks + ch[2].acks, nacks = ch[1].nacks + ch[2].nacks;
    step("publish", !err && acks == COUNT && nacks == 0,
         "acks=%d nacks=%d returns=%d _max_in_flight=%d _ms=%d%s%s%s", acks, nacks,
         ch[1].returns + ch[2].returns, COUNT, (int)((now() - t0) * 1000), err ? " error=\"" : "",
         err ? err : "", err ? "\"" : "");
    if (err)
        return 1;

    /* ---- mandatory, unroutable */
    int before = ch[1].acks;
    publish(1, "compat-noroute", "nowhere", 1, NULL, amqp_cstring_bytes("unroutable"));
    err = await_confirms();
    int acked = !err && ch[1].acks == before + 1;
    if (ch[1].returns)
        step("mandatory", acked && ch[1].last_return_code == 312,
             "acked=%s returned=%d reply_code=%d reply_text=%s", acked ? "true" : "false",
             ch[1].returns, ch[1].last_return_code, ch[1].last_return_text);
    else
        step("mandatory", 0, "acked=%s returned=0 reply_code=- reply_text=-",
             acked ? "true" : "false");
    if (err)
        return 1;

    /* ---- 1 MiB */
    unsigned char *big = malloc(BIG_SIZE);
    for (int i = 0; i < BIG_SIZE; i++)
        big[i] = (unsigned char)(i % 251);
    before = ch[1].acks;
    publish(1, exchange, "k.big", 0, NULL, (amqp_bytes_t){BIG_SIZE, big});
    err = await_confirms();
    acked = !err && ch[1].acks == before + 1;
    step("big", acked, "acked=%s size=%d", acked ? "true" : "false", BIG_SIZE);
    if (err)
        return 1;

    /* ---- every property, nested headers */
    amqp_table_entry_t inner[2] = {{amqp_cstring_bytes("level"), int_value(2)},
                                   {amqp_cstring_bytes("name"), str_value("deep")}};
    amqp_table_entry_t nested[2] = {{amqp_cstring_bytes("level"), int_value(1)},
                                    {amqp_cstring_bytes("inner"), {.kind = AMQP_FIELD_KIND_TABLE}}};
    nested[1].value.value.table = (amqp_table_t){2, inner};
    amqp_field_value_t list[2] = {int_value(1), str_value("two")};
    amqp_field_value_t boolean = {.kind = AMQP_FIELD_KIND_BOOLEAN};
    boolean.value.boolean = 1;
    amqp_table_entry_t headers[5] = {
        {amqp_cstring_bytes("x-str"), str_value("text")},
        {amqp_cstring_bytes("x-int"), int_value(42)},
        {amqp_cstring_bytes("x-bool"), boolean},
        {amqp_cstring_bytes("x-list"), {.kind = AMQP_FIELD_KIND_ARRAY}},
        {amqp_cstring_bytes("x-nested"), {.kind = AMQP_FIELD_KIND_TABLE}}};
    headers[3].value.value.array = (amqp_array_t){2, list};
    headers[4].value.value.table = (amqp_table_t){2, nested};
    char corr[64], reply_to[64], msgid[64], app[64];
    snprintf(corr, sizeof corr, "corr-%s", run);
    snprintf(reply_to, sizeof reply_to, "reply.%s", run);
    snprintf(msgid, sizeof msgid, "mid-%s", run);
    snprintf(app, sizeof app, "compat-%s", client);
    amqp_basic_properties_t p = {
        ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
                  AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                  AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
                  AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_EXPIRATION_FLAG |
                  AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_TYPE_FLAG |
                  AMQP_BASIC_USER_ID_FLAG | AMQP_BASIC_APP_ID_FLAG,
        .content_type = amqp_cstring_bytes("application/json"),
        .content_encoding = amqp_cstring_bytes("utf-8"),
        .headers = {5, headers},
        .delivery_mode = 2,
        .priority = 5,
        .correlation_id = amqp_cstring_bytes(corr),
        .reply_to = amqp_cstring_bytes(reply_to),
        .expiration = amqp_cstring_bytes("60000"),
        .message_id = amqp_cstring_bytes(msgid),
        .timestamp = 1700000000,
        .type = amqp_cstring_bytes("compat.type"),
        .user_id = amqp_cstring_bytes("guest"),
        .app_id = amqp_cstring_bytes(app),
    };
    before = ch[1].acks;
    publish(1, exchange, "k.props", 0, &p, amqp_cstring_bytes("{\"props\":true}"));
    err = await_confirms();
    acked = !err && ch[1].acks == before + 1;
    step("props", acked, "acked=%s", acked ? "true" : "false");
    if (err)
        return 1;

    /* ---- close */
    const char *e1 = reply_error(amqp_channel_close(conn, 2, AMQP_REPLY_SUCCESS));
    const char *e2 = e1 ? e1 : reply_error(amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS));
    const char *e3 = e2 ? e2 : reply_error(amqp_connection_close(conn, AMQP_REPLY_SUCCESS));
    int rc = amqp_destroy_connection(conn);
    if (e3 || rc != AMQP_STATUS_OK) {
        step("close", 0, "error=\"%s\"", e3 ? e3 : amqp_error_string2(rc));
        return 1;
    }
    step("close", 1, "reply_code=200");
    rc = consume_step(queue, big);
    free(big);
    return rc;
}
