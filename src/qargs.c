/* qargs.c - queue arguments and message expiration as RabbitMQ checks
 * them (see qargs.h). The texts are RabbitMQ 3.10.8's, taken from Debian's
 * rabbitmq-server: rabbit_amqqueue's argument checks and rabbit_basic's
 * parse_expiration. */
#include "qargs.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "binding.h"

enum check { NON_NEG, POSITIVE, TTL_NON_NEG, TTL_POSITIVE };

static const struct {
    const char *key;
    enum check check;
} integer_args[] = {
    {"x-message-ttl", TTL_NON_NEG},
    {"x-expires", TTL_POSITIVE},
    {"x-max-length", NON_NEG},
    {"x-max-length-bytes", NON_NEG},
};

static bool overflow_named(amqp_bytes_t b, const char *name)
{
    return b.len == strlen(name) && !memcmp(b.bytes, name, b.len);
}

bool qargs_valid(const amqp_table_t *args, const char *vhost, const char *queue, char *err,
                 size_t errlen)
{
    for (size_t i = 0; i < ARRAY_LEN(integer_args); i++) {
        const amqp_field_value_t *v = table_lookup(args, integer_args[i].key);
        if (!v)
            continue;
        char why[64];
        int64_t n;
        enum check c = integer_args[i].check;
        if (!field_integer(v, &n))
            snprintf(why, sizeof why, "\"expected integer, got %s\"", field_type_name(v->kind));
        else if (n < 0)
            snprintf(why, sizeof why, "{value_negative,%" PRId64 "}", n);
        else if (n == 0 && (c == POSITIVE || c == TTL_POSITIVE))
            snprintf(why, sizeof why, "{value_zero,0}");
        else if (n > QARGS_MAX_TTL_MS && (c == TTL_NON_NEG || c == TTL_POSITIVE))
            snprintf(why, sizeof why, "{value_too_large,%" PRId64 "}", n);
        else
            continue;
        snprintf(err, errlen,
                 "PRECONDITION_FAILED - invalid arg '%s' for queue '%s' in vhost '%s': %s",
                 integer_args[i].key, queue, vhost, why);
        return false;
    }
    const amqp_field_value_t *v = table_lookup(args, "x-overflow");
    if (!v)
        return true;
    const char *why = NULL;
    if (v->kind != AMQP_FIELD_KIND_UTF8)
        why = field_type_name(v->kind);
    else if (!overflow_named(v->value.bytes, "drop-head") &&
             !overflow_named(v->value.bytes, "reject-publish") &&
             !overflow_named(v->value.bytes, "reject-publish-dlx"))
        why = "";
    if (!why)
        return true;
    if (*why)
        snprintf(err, errlen,
                 "PRECONDITION_FAILED - invalid arg 'x-overflow' for queue '%s' in vhost '%s': "
                 "{unacceptable_type,%s}",
                 queue, vhost, why);
    else
        snprintf(err, errlen,
                 "PRECONDITION_FAILED - invalid arg 'x-overflow' for queue '%s' in vhost '%s': "
                 "invalid_overflow",
                 queue, vhost);
    return false;
}

static int64_t integer_or(const amqp_table_t *args, const char *key, int64_t dflt)
{
    int64_t n;
    const amqp_field_value_t *v = table_lookup(args, key);
    return v && field_integer(v, &n) ? n : dflt;
}

void qargs_parse(const amqp_table_t *args, struct qargs *out)
{
    out->message_ttl_ms = integer_or(args, "x-message-ttl", -1);
    out->expires_ms = integer_or(args, "x-expires", -1);
    out->max_length = integer_or(args, "x-max-length", -1);
    out->max_length_bytes = integer_or(args, "x-max-length-bytes", -1);
    out->overflow = OVERFLOW_DROP_HEAD;
    const amqp_field_value_t *v = table_lookup(args, "x-overflow");
    if (v && v->kind == AMQP_FIELD_KIND_UTF8) {
        if (overflow_named(v->value.bytes, "reject-publish"))
            out->overflow = OVERFLOW_REJECT_PUBLISH;
        else if (overflow_named(v->value.bytes, "reject-publish-dlx"))
            out->overflow = OVERFLOW_REJECT_PUBLISH_DLX;
    }
}

bool qargs_expiration(amqp_bytes_t text, int64_t *ms, char *err, size_t errlen)
{
    /* Erlang's string:to_integer/1: a sign, then at least one digit. */
    const char *s = text.bytes;
    size_t i = 0, n = text.len;
    bool negative = false;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        negative = s[i++] == '-';
    size_t digits = i;
    int64_t v = 0;
    bool huge = false;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (INT64_MAX - 9) / 10)
            huge = true;
        else
            v = v * 10 + (s[i] - '0');
    }
    char why[300];
    if (i == digits)
        snprintf(why, sizeof why, "no_integer");
    else if (i < n)
        snprintf(why, sizeof why, "{leftover_string,\"%.*s\"}", (int)(n - i), s + i);
    else if (negative && v)
        snprintf(why, sizeof why, "{value_negative,-%" PRId64 "}", v);
    else if (huge)
        snprintf(why, sizeof why, "{value_too_large,%.*s}", (int)(n - digits), s + digits);
    else if (v > QARGS_MAX_TTL_MS)
        snprintf(why, sizeof why, "{value_too_large,%" PRId64 "}", v);
    else {
        *ms = v;
        return true;
    }
    snprintf(err, errlen, "PRECONDITION_FAILED - invalid expiration '%.*s': %s", (int)n, s, why);
    return false;
}
