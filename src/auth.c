/* auth.c - PLAIN and AMQPLAIN authentication (see auth.h). */
#include "auth.h"

#include <stdio.h>
#include <string.h>

#include "wire.h"

static bool bytes_is(amqp_bytes_t b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.bytes, s, b.len) == 0;
}

/* Constant-time comparison: a password check must not leak its prefix. */
static bool secret_equal(const char *want, const void *got, size_t got_len)
{
    size_t want_len = strlen(want);
    unsigned diff = (unsigned)(want_len ^ got_len);
    const unsigned char *g = got;
    for (size_t i = 0; i < want_len; i++)
        diff |= (unsigned)want[i] ^ (i < got_len ? g[i] : 0u);
    return diff == 0;
}

static int parse_plain(amqp_bytes_t r, amqp_bytes_t *user, amqp_bytes_t *pass)
{
    const char *p = r.bytes, *end = p + r.len;
    const char *nul1 = memchr(p, '\0', r.len);
    if (!nul1)
        return -1;
    const char *nul2 = memchr(nul1 + 1, '\0', (size_t)(end - nul1 - 1));
    if (!nul2)
        return -1;
    *user = (amqp_bytes_t){(size_t)(nul2 - nul1 - 1), (void *)(nul1 + 1)};
    *pass = (amqp_bytes_t){(size_t)(end - nul2 - 1), (void *)(nul2 + 1)};
    return 0;
}

static int parse_amqplain(amqp_bytes_t r, unsigned max_depth, amqp_pool_t *pool, amqp_bytes_t *user,
                          amqp_bytes_t *pass)
{
    /* Put the length prefix back so the table codec can read it. */
    if (r.len > UINT32_MAX - 4)
        return -1;
    uint8_t *framed = amqp_pool_alloc(pool, r.len + 4);
    if (!framed)
        return -1;
    framed[0] = (uint8_t)(r.len >> 24);
    framed[1] = (uint8_t)(r.len >> 16);
    framed[2] = (uint8_t)(r.len >> 8);
    framed[3] = (uint8_t)r.len;
    memcpy(framed + 4, r.bytes, r.len);
    size_t consumed;
    if (wire_check_table(framed, r.len + 4, max_depth, &consumed) || consumed != r.len + 4)
        return -1;
    amqp_table_t t;
    size_t offset = 0;
    if (amqp_decode_table((amqp_bytes_t){r.len + 4, framed}, pool, &t, &offset))
        return -1;
    bool have_user = false, have_pass = false;
    for (int i = 0; i < t.num_entries; i++) {
        const amqp_table_entry_t *e = &t.entries[i];
        if (e->value.kind != AMQP_FIELD_KIND_UTF8 && e->value.kind != AMQP_FIELD_KIND_BYTES)
            continue;
        if (bytes_is(e->key, "LOGIN")) {
            *user = e->value.value.bytes;
            have_user = true;
        } else if (bytes_is(e->key, "PASSWORD")) {
            *pass = e->value.value.bytes;
            have_pass = true;
        }
    }
    return have_user && have_pass ? 0 : -1;
}

enum auth_result auth_check(const struct config *cfg, amqp_bytes_t mechanism, amqp_bytes_t response,
                            bool peer_loopback, unsigned max_depth, char *user_out,
                            const char **why_out)
{
    amqp_bytes_t user = {0}, pass = {0};
    amqp_pool_t pool;
    init_amqp_pool(&pool, 1024);
    enum auth_result res;
    user_out[0] = '\0';
    *why_out = "";
    if (bytes_is(mechanism, "PLAIN")) {
        res = parse_plain(response, &user, &pass) ? AUTH_MALFORMED : AUTH_REFUSED;
    } else if (bytes_is(mechanism, "AMQPLAIN")) {
        res = parse_amqplain(response, max_depth, &pool, &user, &pass) ? AUTH_MALFORMED
                                                                       : AUTH_REFUSED;
    } else {
        empty_amqp_pool(&pool);
        *why_out = "unknown mechanism";
        return AUTH_BAD_MECHANISM;
    }
    if (res == AUTH_MALFORMED) {
        *why_out = "malformed response";
        empty_amqp_pool(&pool);
        return res;
    }
    snprintf(user_out, 256, "%.*s", (int)(user.len > 255 ? 255 : user.len), (char *)user.bytes);
    const struct user_cfg *u =
        memchr(user.bytes, '\0', user.len) ? NULL : config_find_user(cfg, user_out);
    if (!u) {
        *why_out = "no such user";
    } else if (!secret_equal(u->password, pass.bytes, pass.len)) {
        *why_out = "wrong password";
    } else if (u->loopback_only && !peer_loopback) {
        *why_out = "user can only connect via localhost";
    } else {
        res = AUTH_OK;
    }
    empty_amqp_pool(&pool);
    return res;
}
