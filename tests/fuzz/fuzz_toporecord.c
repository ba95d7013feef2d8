/* fuzz_toporecord.c - libFuzzer harness for the records of the topology
 * topic (src/toporecord.c): anyone with write access to the topic can put
 * any key and value there, and every hopper decodes them at startup.
 *
 * Input: one byte of flags (bit 0: the value is null, a tombstone), two
 * bytes of key length (big-endian, cut to what is there), the key, and the
 * rest as the value. For every input toporecord_decode must refuse cleanly
 * or decode; what it decodes must encode again (toporecord_key gives the
 * same key bytes back; toporecord_value a value that decodes to the same
 * declaration). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amqp.h>

#include "toporecord.h"

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_toporecord: " __VA_ARGS__);                                      \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool bytes_eq(amqp_bytes_t a, amqp_bytes_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.bytes, b.bytes, a.len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    bool tombstone = data[0] & 1;
    size_t key_len = (size_t)data[1] << 8 | data[2];
    data += 3;
    size -= 3;
    if (key_len > size)
        key_len = size;
    const uint8_t *val = data + key_len;
    size_t val_len = size - key_len;

    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    struct toporecord r, again;
    char why[256];
    if (toporecord_decode(data, key_len, tombstone ? NULL : val, tombstone ? 0 : val_len, &pool, &r,
                          why, sizeof why) == 0) {
        struct buf key = {0}, value = {0};
        toporecord_key(&r, &key);
        CHECK(key.len == key_len && !memcmp(key.data, data, key_len),
              "the key does not encode back to itself");
        if (!r.deleted) {
            CHECK(toporecord_value(&r, &value) == 0, "a decoded value does not encode");
            CHECK(toporecord_decode(key.data, key.len, value.data, value.len, &pool, &again, why,
                                    sizeof why) == 0,
                  "its own encoding is refused: %s", why);
            CHECK(again.durable == r.durable && again.auto_delete == r.auto_delete &&
                      again.internal == r.internal && again.exclusive == r.exclusive &&
                      !strcmp(again.type, r.type) && bytes_eq(again.args, r.args),
                  "the declaration changed on its way through");
        }
        buf_free(&key);
        buf_free(&value);
    } else {
        CHECK(why[0], "refused without a reason");
    }
    empty_amqp_pool(&pool);
    return 0;
}
