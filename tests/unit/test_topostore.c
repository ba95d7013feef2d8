/* test_topostore.c - the records of the topology store (toporecord.h):
 * every kind round-trips through its key and value, a tombstone decodes
 * as a deletion, and bytes that are not a record hopper wrote (truncated,
 * garbage, oversized, nested too deep, a later format) are refused with a
 * reason, never decoded half-way. The store's Kafka side is covered by
 * tests/integration/test_topology_store.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <amqp.h>

#include "toporecord.h"

/* A small arguments table, encoded as declare.c does. */
static amqp_bytes_t encoded_args(amqp_pool_t *pool)
{
    static amqp_table_entry_t inner_e[1];
    static amqp_table_entry_t e[3];
    inner_e[0].key = amqp_cstring_bytes("deep");
    inner_e[0].value = (amqp_field_value_t){.kind = AMQP_FIELD_KIND_I64, .value.i64 = -7};
    e[0].key = amqp_cstring_bytes("x-dead-letter-exchange");
    e[0].value = (amqp_field_value_t){.kind = AMQP_FIELD_KIND_UTF8,
                                      .value.bytes = amqp_cstring_bytes("dlx")};
    e[1].key = amqp_cstring_bytes("x-max-priority");
    e[1].value = (amqp_field_value_t){.kind = AMQP_FIELD_KIND_U8, .value.u8 = 9};
    e[2].key = amqp_cstring_bytes("nested");
    e[2].value = (amqp_field_value_t){.kind = AMQP_FIELD_KIND_TABLE, .value.table = {1, inner_e}};
    amqp_table_t t = {3, e};
    amqp_bytes_t out;
    amqp_pool_alloc_bytes(pool, 512, &out);
    size_t off = 0;
    assert_true(amqp_encode_table(out, &t, &off) >= 0);
    out.len = off;
    return out;
}

static bool bytes_eq(amqp_bytes_t a, amqp_bytes_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.bytes, b.bytes, a.len) == 0);
}

/* Encode r, decode it again into *out. */
static void round_trip(const struct toporecord *r, struct toporecord *out, amqp_pool_t *pool,
                       struct buf *key, struct buf *val)
{
    toporecord_key(r, key);
    if (!r->deleted)
        assert_int_equal(toporecord_value(r, val), 0);
    char why[256] = "";
    int rc = toporecord_decode(key->data, key->len, r->deleted ? NULL : val->data,
                               r->deleted ? 0 : val->len, pool, out, why, sizeof why);
    if (rc)
        fail_msg("decode refused its own record: %s", why);
    assert_int_equal(out->kind, r->kind);
    assert_int_equal(out->deleted, r->deleted);
    assert_string_equal(out->vhost, r->vhost);
    assert_string_equal(out->name, r->name);
}

static void test_exchange_round_trip(void **state)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    struct buf key = {0}, val = {0};
    for (int with_args = 0; with_args < 2; with_args++) {
        struct toporecord r = {.kind = TOPOREC_EXCHANGE, .durable = true, .internal = true};
        strcpy(r.vhost, "/");
        strcpy(r.name, "orders.x");
        strcpy(r.type, "topic");
        r.args = with_args ? encoded_args(&pool) : amqp_empty_bytes;
        struct toporecord out;
        round_trip(&r, &out, &pool, &key, &val);
        assert_string_equal(out.type, "topic");
        assert_true(out.durable);
        assert_false(out.auto_delete);
        assert_true(out.internal);
        /* The bytes the topology compares for equivalence come back as they went. */
        assert_true(bytes_eq(out.args, r.args));
    }
    /* The key names the kind, the vhost and the name: nothing else. */
    assert_int_equal(key.len, 1 + 2 + strlen("orders.x"));
    assert_memory_equal(key.data, "E/\0orders.x", key.len);
    buf_free(&key);
    buf_free(&val);
    empty_amqp_pool(&pool);
}

static void test_queue_round_trip(void **state)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    struct buf key = {0}, val = {0};
    struct toporecord r = {.kind = TOPOREC_QUEUE, .durable = true, .auto_delete = false};
    strcpy(r.vhost, "v2");
    strcpy(r.name, "celery");
    r.args = encoded_args(&pool);
    struct toporecord out;
    round_trip(&r, &out, &pool, &key, &val);
    assert_true(out.durable);
    assert_false(out.exclusive);
    assert_false(out.auto_delete);
    assert_true(bytes_eq(out.args, r.args));
    buf_free(&key);
    buf_free(&val);
    empty_amqp_pool(&pool);
}

static void test_binding_round_trip(void **state)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    struct buf key = {0}, val = {0}, key2 = {0};
    struct toporecord r = {.kind = TOPOREC_BINDING};
    strcpy(r.vhost, "/");
    strcpy(r.name, "q");
    strcpy(r.exchange, "x");
    strcpy(r.routing_key, ""); /* an empty routing key is a name like any other */
    r.binding_args = encoded_args(&pool);
    struct toporecord out;
    round_trip(&r, &out, &pool, &key, &val);
    assert_string_equal(out.exchange, "x");
    assert_string_equal(out.routing_key, "");
    assert_true(bytes_eq(out.binding_args, r.binding_args));

    /* Arguments are part of the identity: the same binding without them
     * is another key. */
    r.binding_args = amqp_empty_bytes;
    toporecord_key(&r, &key2);
    assert_false(key.len == key2.len && !memcmp(key.data, key2.data, key.len));
    round_trip(&r, &out, &pool, &key, &val);
    assert_int_equal(out.binding_args.len, 0);
    buf_free(&key);
    buf_free(&key2);
    buf_free(&val);
    empty_amqp_pool(&pool);
}

static void test_tombstone(void **state)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    struct buf key = {0}, val = {0};
    struct toporecord r = {.kind = TOPOREC_QUEUE, .deleted = true};
    strcpy(r.vhost, "/");
    strcpy(r.name, "gone");
    struct toporecord out;
    round_trip(&r, &out, &pool, &key, &val);
    assert_true(out.deleted);
    /* A tombstone of a binding names it whole. */
    r = (struct toporecord){.kind = TOPOREC_BINDING, .deleted = true};
    strcpy(r.vhost, "/");
    strcpy(r.name, "q");
    strcpy(r.exchange, "x");
    strcpy(r.routing_key, "a.#");
    round_trip(&r, &out, &pool, &key, &val);
    assert_true(out.deleted);
    assert_string_equal(out.routing_key, "a.#");
    buf_free(&key);
    buf_free(&val);
    empty_amqp_pool(&pool);
}

static int decode(const void *key, size_t klen, const void *val, size_t vlen, char *why)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    struct toporecord out;
    why[0] = '\0';
    int rc = toporecord_decode(key, klen, val, vlen, &pool, &out, why, 256);
    empty_amqp_pool(&pool);
    return rc;
}

static void test_bad_keys_refused(void **state)
{
    char why[256];
    static const uint8_t empty_table[4] = {0};
    assert_int_equal(decode(NULL, 0, NULL, 0, why), -1);
    assert_string_equal(why, "null key");
    assert_int_equal(decode("", 0, NULL, 0, why), -1);
    assert_int_equal(decode("Z/\0q", 4, NULL, 0, why), -1); /* unknown kind */
    assert_non_null(strstr(why, "unknown kind"));
    assert_int_equal(decode("Q/", 2, NULL, 0, why), -1);       /* vhost not ended */
    assert_int_equal(decode("Q/\0q\0", 5, NULL, 0, why), -1);  /* NUL inside the last name */
    assert_int_equal(decode("B/\0q\0x", 6, NULL, 0, why), -1); /* truncated binding */
    /* A binding's arguments must be exactly one table. */
    uint8_t k[16] = "B/\0q\0x\0r\0";
    assert_int_equal(decode(k, 9, empty_table, 4, why), -1); /* the value is not v=1 */
    memcpy(k + 9, "\0\0\0\5ab", 6);                          /* length past the end */
    assert_int_equal(decode(k, 15, NULL, 0, why), -1);
    assert_non_null(strstr(why, "arguments"));
    /* A name of 256 bytes is longer than a short string. */
    char longkey[300];
    memset(longkey, 'a', sizeof longkey);
    memcpy(longkey, "E/", 3);
    assert_int_equal(decode(longkey, 3 + 256, NULL, 0, why), -1);
    assert_int_equal(decode(longkey, 3 + 255, NULL, 0, why), 0);
}

static void test_bad_values_refused(void **state)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    struct buf key = {0}, val = {0};
    char why[256];
    struct toporecord r = {.kind = TOPOREC_EXCHANGE, .durable = true};
    strcpy(r.vhost, "/");
    strcpy(r.name, "x");
    strcpy(r.type, "direct");
    r.args = encoded_args(&pool);
    toporecord_key(&r, &key);
    assert_int_equal(toporecord_value(&r, &val), 0);

    /* Every truncation of a good value is refused. */
    for (size_t n = 0; n < val.len; n++)
        assert_int_equal(decode(key.data, key.len, val.data, n, why), -1);
    assert_int_equal(decode(key.data, key.len, val.data, val.len, why), 0);
    /* Trailing bytes after the table. */
    buf_putc(&val, 'x');
    assert_int_equal(decode(key.data, key.len, val.data, val.len, why), -1);
    /* Garbage. */
    assert_int_equal(decode(key.data, key.len, "not a table at all", 18, why), -1);
    /* An empty table: no version. */
    static const uint8_t empty_table[4] = {0};
    assert_int_equal(decode(key.data, key.len, empty_table, 4, why), -1);
    assert_non_null(strstr(why, "version"));
    /* Oversized: refused before anything reads it. */
    size_t big = TOPORECORD_MAX_LEN + 1;
    char *huge = calloc(1, big);
    assert_int_equal(decode(key.data, key.len, huge, big, why), -1);
    assert_non_null(strstr(why, "too long"));
    assert_int_equal(decode(huge, big, NULL, 0, why), -1);
    free(huge);
    /* A queue's value read as an exchange's lacks "type" and "internal". */
    struct toporecord q = {.kind = TOPOREC_QUEUE, .durable = true};
    strcpy(q.vhost, "/");
    strcpy(q.name, "x");
    assert_int_equal(toporecord_value(&q, &val), 0);
    assert_int_equal(decode(key.data, key.len, val.data, val.len, why), -1);
    assert_non_null(strstr(why, "field"));
    buf_free(&key);
    buf_free(&val);
    empty_amqp_pool(&pool);
}

/* A value hand-built with another version, and one nested past the bound. */
static void test_version_and_depth(void **state)
{
    char why[256];
    amqp_table_entry_t e[1] = {
        {amqp_cstring_bytes("v"), {.kind = AMQP_FIELD_KIND_I32, .value.i32 = 2}}};
    amqp_table_t t = {1, e};
    uint8_t out[64];
    size_t off = 0;
    assert_true(amqp_encode_table((amqp_bytes_t){sizeof out, out}, &t, &off) >= 0);
    assert_int_equal(decode("B/\0q\0x\0r\0", 9, out, off, why), -1);
    assert_non_null(strstr(why, "format version 2"));
    e[0].value.value.i32 = 1;
    off = 0;
    assert_true(amqp_encode_table((amqp_bytes_t){sizeof out, out}, &t, &off) >= 0);
    assert_int_equal(decode("B/\0q\0x\0r\0", 9, out, off, why), 0);

    /* 100 tables in one another, each {"a": F <the next>}: well formed
     * (rabbitmq-c, which has no bound, decodes it) and refused for depth. */
    enum { DEPTH = 100 };
    struct buf deep = {0};
    for (int i = 0; i < DEPTH; i++) {
        uint32_t content = (uint32_t)(DEPTH - 1 - i) * 7;
        uint8_t hdr[7] = {(uint8_t)(content >> 24),
                          (uint8_t)(content >> 16),
                          (uint8_t)(content >> 8),
                          (uint8_t)content,
                          1,
                          'a',
                          'F'};
        buf_append(&deep, hdr, i == DEPTH - 1 ? 4 : 7);
    }
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_table_t decoded;
    off = 0;
    assert_int_equal(amqp_decode_table((amqp_bytes_t){deep.len, deep.data}, &pool, &decoded, &off),
                     AMQP_STATUS_OK);
    assert_int_equal(off, deep.len);
    empty_amqp_pool(&pool);
    assert_int_equal(decode("B/\0q\0x\0r\0", 9, deep.data, deep.len, why), -1);
    assert_non_null(strstr(why, "too deep"));
    buf_free(&deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exchange_round_trip), cmocka_unit_test(test_queue_round_trip),
        cmocka_unit_test(test_binding_round_trip),  cmocka_unit_test(test_tombstone),
        cmocka_unit_test(test_bad_keys_refused),    cmocka_unit_test(test_bad_values_refused),
        cmocka_unit_test(test_version_and_depth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
