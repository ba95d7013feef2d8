/* test_wire.c - unit tests for the bounded field-table checks.
 *
 * rabbitmq-c's own decoder is the reference: what wire accepts it must
 * decode along the same boundaries, and what it rejects wire must reject.
 * Methods and properties are encoded by rabbitmq-c itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <limits.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "wire.h"

/* ---- building encoded tables by hand ---- */

static void put8(struct buf *b, uint8_t v)
{
    buf_putc(b, (char)v);
}

static void put16(struct buf *b, uint16_t v)
{
    put8(b, (uint8_t)(v >> 8));
    put8(b, (uint8_t)v);
}

static void put32(struct buf *b, uint32_t v)
{
    put16(b, (uint16_t)(v >> 16));
    put16(b, (uint16_t)v);
}

static void put64(struct buf *b, uint64_t v)
{
    put32(b, (uint32_t)(v >> 32));
    put32(b, (uint32_t)v);
}

static void put_key(struct buf *b, const char *key)
{
    put8(b, (uint8_t)strlen(key));
    buf_puts(b, key);
}

static void set32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Start a length-prefixed block; returns where its length goes. */
static size_t open_block(struct buf *b)
{
    size_t at = b->len;
    put32(b, 0);
    return at;
}

static void close_block(struct buf *b, size_t at)
{
    set32((uint8_t *)b->data + at, (uint32_t)(b->len - at - 4));
}

static const uint8_t *bytes(const struct buf *b)
{
    return (const uint8_t *)b->data;
}

/* Every type letter rabbitmq-c 0.11 decodes. */
static const char all_types[] = "tbBsuIilLfdDSxATFV";

/* Append type letter and payload of a sample value. */
static void put_value(struct buf *b, char type)
{
    put8(b, (uint8_t)type);
    switch (type) {
    case 't':
        put8(b, 1);
        break;
    case 'b':
        put8(b, 0xfe);
        break;
    case 'B':
        put8(b, 0xab);
        break;
    case 's':
    case 'u':
        put16(b, 0x8001);
        break;
    case 'I':
    case 'i':
    case 'f':
        put32(b, 0x80000001u);
        break;
    case 'l':
    case 'L':
    case 'd':
    case 'T':
        put64(b, 0x8000000000000001ull);
        break;
    case 'D':
        put8(b, 2);
        put32(b, 12345);
        break;
    case 'S':
        put32(b, 5);
        buf_puts(b, "hello");
        break;
    case 'x':
        put32(b, 3);
        buf_append(b, "\0\1\2", 3);
        break;
    case 'A': {
        size_t at = open_block(b);
        put_value(b, 'I');
        put_value(b, 'S');
        put_value(b, 'V');
        close_block(b, at);
        break;
    }
    case 'F': {
        size_t at = open_block(b);
        put_key(b, "n");
        put_value(b, 't');
        close_block(b, at);
        break;
    }
    case 'V':
        break;
    default:
        fail_msg("no sample for type %c", type);
    }
}

/* rabbitmq-c's verdict: 0 and the offset after the table, or -1. */
static int rmq_decode_table(const uint8_t *p, size_t len, size_t *off, int *entries)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_table_t t = {0};
    amqp_bytes_t e = {len, (void *)p};
    *off = 0;
    int r = amqp_decode_table(e, &pool, &t, off);
    if (entries)
        *entries = t.num_entries;
    empty_amqp_pool(&pool);
    return r < 0 ? -1 : 0;
}

/* ---- tables ---- */

static void test_every_type_accepted(void **state)
{
    struct buf b = {0};
    size_t at = open_block(&b);
    for (const char *t = all_types; *t; t++) {
        char key[] = {'k', *t, '\0'};
        put_key(&b, key);
        put_value(&b, *t);
    }
    close_block(&b, at);
    size_t table_len = b.len;
    buf_append(&b, "trailing", 8);

    size_t used = 0;
    assert_int_equal(wire_check_table(bytes(&b), b.len, 2, &used), 0);
    assert_int_equal(used, table_len);
    assert_int_equal(wire_check_table(bytes(&b), table_len, 2, &used), 0);
    assert_int_equal(used, table_len);

    size_t off;
    int n;
    assert_int_equal(rmq_decode_table(bytes(&b), b.len, &off, &n), 0);
    assert_int_equal(off, table_len);
    assert_int_equal(n, (int)strlen(all_types));

    /* The empty table. */
    static const uint8_t empty[] = {0, 0, 0, 0};
    assert_int_equal(wire_check_table(empty, sizeof empty, 1, &used), 0);
    assert_int_equal(used, 4);
    buf_free(&b);
}

/* The same, encoded by rabbitmq-c's amqp_encode_table. */
static void test_rabbitmq_encoded_types_accepted(void **state)
{
    amqp_field_value_t arr_vals[] = {
        {.kind = AMQP_FIELD_KIND_I64, .value.i64 = -5},
        {.kind = AMQP_FIELD_KIND_VOID},
    };
    amqp_table_entry_t inner_ents[] = {
        {amqp_cstring_bytes("deep"), {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1}},
    };
    amqp_table_entry_t ents[] = {
        {amqp_cstring_bytes("t"), {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1}},
        {amqp_cstring_bytes("b"), {.kind = AMQP_FIELD_KIND_I8, .value.i8 = -1}},
        {amqp_cstring_bytes("B"), {.kind = AMQP_FIELD_KIND_U8, .value.u8 = 200}},
        {amqp_cstring_bytes("s"), {.kind = AMQP_FIELD_KIND_I16, .value.i16 = -2}},
        {amqp_cstring_bytes("u"), {.kind = AMQP_FIELD_KIND_U16, .value.u16 = 2}},
        {amqp_cstring_bytes("I"), {.kind = AMQP_FIELD_KIND_I32, .value.i32 = -3}},
        {amqp_cstring_bytes("i"), {.kind = AMQP_FIELD_KIND_U32, .value.u32 = 3}},
        {amqp_cstring_bytes("l"), {.kind = AMQP_FIELD_KIND_I64, .value.i64 = -4}},
        {amqp_cstring_bytes("L"), {.kind = AMQP_FIELD_KIND_U64, .value.u64 = 4}},
        {amqp_cstring_bytes("f"), {.kind = AMQP_FIELD_KIND_F32, .value.f32 = 1.5f}},
        {amqp_cstring_bytes("d"), {.kind = AMQP_FIELD_KIND_F64, .value.f64 = 2.5}},
        {amqp_cstring_bytes("D"), {.kind = AMQP_FIELD_KIND_DECIMAL, .value.decimal = {2, 314}}},
        {amqp_cstring_bytes("S"),
         {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("text")}},
        {amqp_cstring_bytes("x"),
         {.kind = AMQP_FIELD_KIND_BYTES, .value.bytes = amqp_cstring_bytes("raw")}},
        {amqp_cstring_bytes("A"), {.kind = AMQP_FIELD_KIND_ARRAY, .value.array = {2, arr_vals}}},
        {amqp_cstring_bytes("T"), {.kind = AMQP_FIELD_KIND_TIMESTAMP, .value.u64 = 1700000000}},
        {amqp_cstring_bytes("F"), {.kind = AMQP_FIELD_KIND_TABLE, .value.table = {1, inner_ents}}},
        {amqp_cstring_bytes("V"), {.kind = AMQP_FIELD_KIND_VOID}},
    };
    amqp_table_t table = {(int)ARRAY_LEN(ents), ents};
    uint8_t out[1024];
    size_t off = 0;
    assert_int_equal(amqp_encode_table((amqp_bytes_t){sizeof out, out}, &table, &off), 0);

    size_t used = 0;
    assert_int_equal(wire_check_table(out, sizeof out, 2, &used), 0);
    assert_int_equal(used, off);
    assert_int_equal(wire_check_table(out, off, 1, &used), -1);
}

/* Cutting a value short by one byte or more is refused: when the table
 * length still counts the missing bytes, when it does not, and when the
 * bytes are there but past the end of the table. */
static void test_truncated_payloads_rejected(void **state)
{
    for (const char *t = all_types; *t; t++) {
        struct buf b = {0};
        size_t at = open_block(&b);
        put_key(&b, "k");
        size_t value_at = b.len;
        put_value(&b, *t);
        close_block(&b, at);
        size_t full = b.len;
        size_t payload = full - value_at - 1;
        size_t used;
        assert_int_equal(wire_check_table(bytes(&b), full, 64, &used), 0);

        for (size_t cut = 1; cut <= payload; cut++) {
            /* The buffer ends early; the table length is unchanged. */
            assert_int_equal(wire_check_table(bytes(&b), full - cut, 64, &used), -1);
            /* The table length agrees with the shorter buffer. */
            uint8_t *copy = xmalloc(full);
            memcpy(copy, b.data, full);
            set32(copy, (uint32_t)(full - cut - 4));
            assert_int_equal(wire_check_table(copy, full - cut, 64, &used), -1);
            size_t off;
            assert_int_equal(rmq_decode_table(copy, full - cut, &off, NULL), -1);
            /* The same table with the rest of the value still in the
             * buffer after it: the value spills out of its table. */
            assert_int_equal(wire_check_table(copy, full, 64, &used), -1);
            free(copy);
        }
        buf_free(&b);
    }
}

static void test_lengths_past_buffer_rejected(void **state)
{
    static const uint8_t four[] = {0, 0, 0, 0};
    size_t used;
    for (size_t n = 0; n < 4; n++)
        assert_int_equal(wire_check_table(four, n, 64, &used), -1);

    struct buf b = {0};
    size_t at = open_block(&b);
    put_key(&b, "k");
    put_value(&b, 'S');
    close_block(&b, at);
    uint8_t *p = (uint8_t *)b.data;

    set32(p, (uint32_t)(b.len - 4 + 1));
    assert_int_equal(wire_check_table(p, b.len, 64, &used), -1);
    set32(p, UINT32_MAX);
    assert_int_equal(wire_check_table(p, b.len, 64, &used), -1);
    set32(p, (uint32_t)(b.len - 4));

    /* The string's length runs past the table but not past the buffer.
     * rabbitmq-c accepts that (it only checks entries against the end of
     * the buffer); wire does not. */
    size_t slen_at = 4 + 2 + 1;
    size_t table_end = b.len;
    set32(p + slen_at, 5 + 3);
    buf_append(&b, "xyz", 3);
    p = (uint8_t *)b.data;
    assert_int_equal(wire_check_table(p, b.len, 64, &used), -1);
    size_t off;
    assert_int_equal(rmq_decode_table(p, b.len, &off, NULL), 0);
    assert_true(off > table_end);
    set32(p + slen_at, UINT32_MAX);
    assert_int_equal(wire_check_table(p, b.len, 64, &used), -1);
    buf_free(&b);

    /* A key longer than what is left of the table. */
    static const uint8_t long_key[] = {0, 0, 0, 3, 9, 'a', 'b'};
    assert_int_equal(wire_check_table(long_key, sizeof long_key, 64, &used), -1);
    /* A key with no room for its type. */
    static const uint8_t no_type[] = {0, 0, 0, 2, 1, 'a'};
    assert_int_equal(wire_check_table(no_type, sizeof no_type, 64, &used), -1);
    /* An array longer than its table. */
    static const uint8_t long_array[] = {0, 0, 0, 7, 1, 'a', 'A', 0, 0, 0, 1, 'V'};
    assert_int_equal(wire_check_table(long_array, sizeof long_array, 64, &used), -1);
    /* An array value without its type byte's payload. */
    static const uint8_t short_elem[] = {0, 0, 0, 8, 1, 'a', 'A', 0, 0, 0, 1, 'I'};
    assert_int_equal(wire_check_table(short_elem, sizeof short_elem, 64, &used), -1);
}

/* Only the letters in all_types are values; rabbitmq-c agrees. */
static void test_unknown_types_rejected(void **state)
{
    for (int c = 0; c < 256; c++) {
        struct buf b = {0};
        size_t at = open_block(&b);
        put_key(&b, "k");
        bool known = c != 0 && strchr(all_types, c) != NULL;
        if (known)
            put_value(&b, (char)c);
        else
            put8(&b, (uint8_t)c);
        close_block(&b, at);
        size_t used, off;
        int ours = wire_check_table(bytes(&b), b.len, 64, &used);
        int theirs = rmq_decode_table(bytes(&b), b.len, &off, NULL);
        assert_int_equal(ours, known ? 0 : -1);
        assert_int_equal(theirs, ours);
        buf_free(&b);
    }
}

/* ---- nesting ---- */

/* Write `depth` nested containers into p (at most cap bytes): the outer
 * one a table, then tables, or tables and arrays by turns. Returns the
 * size written. */
static size_t build_nested(uint8_t *p, size_t cap, size_t depth, bool alternate)
{
    size_t pos = 0;
    size_t *heads = xmalloc(depth * sizeof *heads);
    for (size_t i = 0; i < depth; i++) {
        bool is_array = alternate && i % 2 == 1;
        bool next_array = alternate && (i + 1) % 2 == 1;
        assert_true(pos + 11 <= cap);
        heads[i] = pos;
        pos += 4;
        if (i + 1 == depth)
            break;
        if (!is_array) {
            p[pos++] = 1;
            p[pos++] = 'k';
        }
        p[pos++] = next_array ? 'A' : 'F';
    }
    for (size_t i = 0; i < depth; i++)
        set32(p + heads[i], (uint32_t)(pos - heads[i] - 4));
    free(heads);
    return pos;
}

static void test_nesting_limit(void **state)
{
    static const unsigned limits[] = {1, 2, 3, 10, 63, 64};
    uint8_t *p = xmalloc(4096);
    size_t used, off;
    for (int alt = 0; alt < 2; alt++) {
        for (size_t i = 0; i < ARRAY_LEN(limits); i++) {
            unsigned max = limits[i];
            size_t n = build_nested(p, 4096, max, alt);
            assert_int_equal(wire_check_table(p, n, max, &used), 0);
            assert_int_equal(used, n);
            assert_int_equal(rmq_decode_table(p, n, &off, NULL), 0);
            assert_int_equal(off, n);
            if (max > 1)
                assert_int_equal(wire_check_table(p, n, max - 1, &used), -1);

            n = build_nested(p, 4096, max + 1, alt);
            assert_int_equal(wire_check_table(p, n, max, &used), -1);
        }
        /* Limits above 64 are clamped to 64. */
        size_t n = build_nested(p, 4096, 65, alt);
        assert_int_equal(wire_check_table(p, n, 1000, &used), -1);
        n = build_nested(p, 4096, 64, alt);
        assert_int_equal(wire_check_table(p, n, 1000, &used), 0);
    }
    /* Depth 0 admits nothing. */
    size_t n = build_nested(p, 4096, 1, false);
    assert_int_equal(wire_check_table(p, n, 0, &used), -1);
    free(p);
}

struct deep_job {
    const uint8_t *p;
    size_t len;
    int result;
};

static void *deep_check(void *arg)
{
    struct deep_job *j = arg;
    size_t used;
    j->result = wire_check_table(j->p, j->len, 64, &used);
    return NULL;
}

/* 100000 levels in a 1 MiB buffer. The check runs on a thread with the
 * smallest stack allowed, and every page but the first is unreadable, so
 * recursing or scanning past the 65th level would crash the test. */
static void test_deep_nesting_rejected_early(void **state)
{
    const size_t size = 1u << 20;
    long page = sysconf(_SC_PAGESIZE);
    assert_true(page > 0);
    for (int alt = 0; alt < 2; alt++) {
        uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(p != MAP_FAILED);
        size_t n = build_nested(p, size, 100000, alt);
        assert_true(n > 500000 && n <= size);
        assert_int_equal(mprotect(p + page, size - (size_t)page, PROT_NONE), 0);

        struct deep_job job = {p, size, 0};
        pthread_attr_t attr;
        assert_int_equal(pthread_attr_init(&attr), 0);
        /* ASan's instrumentation needs more than the minimum; 64 KiB is
         * still far below what an unbounded recursion over 100000 levels
         * would take. */
        assert_int_equal(
            pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN < 65536 ? 65536 : PTHREAD_STACK_MIN),
            0);
        pthread_t th;
        assert_int_equal(pthread_create(&th, &attr, deep_check, &job), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
        pthread_attr_destroy(&attr);
        assert_int_equal(job.result, -1);
        assert_int_equal(munmap(p, size), 0);
    }
}

/* ---- differential test against amqp_decode_table ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void put_random_table(struct buf *b, int depth);

static void put_random_value(struct buf *b, int depth)
{
    char type = all_types[rnd() % strlen(all_types)];
    if ((type == 'A' || type == 'F') && depth >= 5)
        type = 'V';
    if (type == 'F') {
        put8(b, 'F');
        put_random_table(b, depth + 1);
    } else if (type == 'A') {
        put8(b, 'A');
        size_t at = open_block(b);
        for (uint64_t i = rnd() % 4; i > 0; i--)
            put_random_value(b, depth + 1);
        close_block(b, at);
    } else {
        put_value(b, type);
    }
}

static void put_random_table(struct buf *b, int depth)
{
    size_t at = open_block(b);
    for (uint64_t i = rnd() % 5; i > 0; i--) {
        char key[8];
        size_t klen = rnd() % sizeof key;
        for (size_t k = 0; k < klen; k++)
            key[k] = (char)('a' + rnd() % 26);
        put8(b, (uint8_t)klen);
        buf_append(b, key, klen);
        put_random_value(b, depth);
    }
    close_block(b, at);
}

static void test_differential_random(void **state)
{
    rng_state = 42;
    unsigned both_ok = 0, both_bad = 0;
    for (int iter = 0; iter < 20000; iter++) {
        struct buf b = {0};
        put_random_table(&b, 1);
        size_t len = b.len;
        uint8_t *p = (uint8_t *)b.data;
        switch (rnd() % 4) {
        case 0:
            break;
        case 1:
            len = rnd() % (len + 1);
            break;
        default:
            for (uint64_t k = 1 + rnd() % 3; k > 0; k--)
                p[rnd() % len] = (uint8_t)rnd();
            break;
        }
        size_t used = 0, off = 0;
        int ours = wire_check_table(p, len, 64, &used);
        int theirs = rmq_decode_table(p, len, &off, NULL);
        if (ours == 0) {
            assert_int_equal(theirs, 0);
            assert_int_equal(off, used);
            both_ok++;
        }
        if (theirs != 0) {
            assert_int_equal(ours, -1);
            both_bad++;
        }
        buf_free(&b);
    }
    assert_true(both_ok > 5000);
    assert_true(both_bad > 2000);
}

/* ---- methods and properties ---- */

/* rabbitmq-c field tables nested `depth` deep: tables and arrays take
 * turns, the outermost (level 1) a table. */
struct nest {
    amqp_table_entry_t ents[66][2]; /* indexed by level, 1..65 */
    amqp_field_value_t vals[66][2];
};

static amqp_table_t nested_table(struct nest *n, int depth)
{
    amqp_field_value_t inner = {0};
    bool have_inner = false;
    for (int i = depth; i >= 1; i--) {
        int k = 0;
        if (i % 2 == 1) {
            n->ents[i][k++] = (amqp_table_entry_t){amqp_cstring_bytes("x-level"),
                                                   {.kind = AMQP_FIELD_KIND_I32, .value.i32 = i}};
            if (have_inner)
                n->ents[i][k++] = (amqp_table_entry_t){amqp_cstring_bytes("x-nested"), inner};
            inner =
                (amqp_field_value_t){.kind = AMQP_FIELD_KIND_TABLE, .value.table = {k, n->ents[i]}};
        } else {
            n->vals[i][k++] = (amqp_field_value_t){.kind = AMQP_FIELD_KIND_UTF8,
                                                   .value.bytes = amqp_cstring_bytes("v")};
            if (have_inner)
                n->vals[i][k++] = inner;
            inner =
                (amqp_field_value_t){.kind = AMQP_FIELD_KIND_ARRAY, .value.array = {k, n->vals[i]}};
        }
        have_inner = true;
    }
    return inner.value.table;
}

/* Encode a method and check: accepted at exactly its depth, refused one
 * below, refused when cut anywhere before the end of its table. */
static void check_method(uint32_t id, void *decoded, size_t trailing, int depth)
{
    uint8_t out[4096];
    int n = amqp_encode_method(id, decoded, (amqp_bytes_t){sizeof out, out});
    assert_true(n > 0);
    size_t len = (size_t)n;

    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    void *back = NULL;
    assert_int_equal(amqp_decode_method(id, &pool, (amqp_bytes_t){len, out}, &back), 0);
    empty_amqp_pool(&pool);

    assert_int_equal(wire_check_method(id, out, len, (unsigned)depth), 0);
    assert_int_equal(wire_check_method(id, out, len, (unsigned)depth - 1), -1);
    for (size_t cut = 0; cut < len - trailing; cut++)
        assert_int_equal(wire_check_method(id, out, cut, (unsigned)depth), -1);
    assert_int_equal(wire_check_method(id, out, len - trailing, (unsigned)depth), 0);
}

static void test_methods(void **state)
{
    struct nest nest;
    const int depth = 4;
    amqp_table_t args = nested_table(&nest, depth);
    amqp_bytes_t a = amqp_cstring_bytes("a");
    amqp_bytes_t bb = amqp_cstring_bytes("bb");
    amqp_bytes_t ccc = amqp_cstring_bytes("ccc");

    amqp_connection_start_t start = {0, 9, args, amqp_cstring_bytes("PLAIN AMQPLAIN"),
                                     amqp_cstring_bytes("en_US")};
    check_method(AMQP_CONNECTION_START_METHOD, &start, 4 + 14 + 4 + 5, depth);

    amqp_connection_start_ok_t start_ok = {args, amqp_cstring_bytes("PLAIN"),
                                           amqp_cstring_bytes("\0guest\0guest"),
                                           amqp_cstring_bytes("en_US")};
    start_ok.response.len = 12;
    check_method(AMQP_CONNECTION_START_OK_METHOD, &start_ok, 1 + 5 + 4 + 12 + 1 + 5, depth);

    amqp_exchange_declare_t xd = {
        .ticket = 0, .exchange = a, .type = bb, .durable = 1, .nowait = 1, .arguments = args};
    check_method(AMQP_EXCHANGE_DECLARE_METHOD, &xd, 0, depth);

    amqp_exchange_bind_t xb = {
        .destination = a, .source = bb, .routing_key = ccc, .arguments = args};
    check_method(AMQP_EXCHANGE_BIND_METHOD, &xb, 0, depth);

    amqp_exchange_unbind_t xu = {
        .destination = a, .source = bb, .routing_key = ccc, .nowait = 1, .arguments = args};
    check_method(AMQP_EXCHANGE_UNBIND_METHOD, &xu, 0, depth);

    amqp_queue_declare_t qd = {.queue = ccc, .durable = 1, .exclusive = 1, .arguments = args};
    check_method(AMQP_QUEUE_DECLARE_METHOD, &qd, 0, depth);

    amqp_queue_bind_t qb = {.queue = a, .exchange = bb, .routing_key = ccc, .arguments = args};
    check_method(AMQP_QUEUE_BIND_METHOD, &qb, 0, depth);

    amqp_queue_unbind_t qu = {.queue = a, .exchange = bb, .routing_key = ccc, .arguments = args};
    check_method(AMQP_QUEUE_UNBIND_METHOD, &qu, 0, depth);

    amqp_basic_consume_t bc = {.queue = bb, .consumer_tag = ccc, .no_ack = 1, .arguments = args};
    check_method(AMQP_BASIC_CONSUME_METHOD, &bc, 0, depth);

    /* Methods without tables pass, whatever their bytes. */
    assert_int_equal(wire_check_method(AMQP_BASIC_PUBLISH_METHOD, NULL, 0, 1), 0);
    assert_int_equal(wire_check_method(AMQP_CONNECTION_OPEN_METHOD, (const uint8_t *)"x", 1, 1), 0);
}

/* The depth check reaches a too-deep table at the 65th level. */
static void test_method_too_deep(void **state)
{
    struct nest *nest = xmalloc(sizeof *nest);
    amqp_table_t args = nested_table(nest, 65);
    amqp_queue_declare_t qd = {.queue = amqp_cstring_bytes("q"), .arguments = args};
    uint8_t out[4096];
    int n = amqp_encode_method(AMQP_QUEUE_DECLARE_METHOD, &qd, (amqp_bytes_t){sizeof out, out});
    assert_true(n > 0);
    assert_int_equal(wire_check_method(AMQP_QUEUE_DECLARE_METHOD, out, (size_t)n, 64), -1);
    free(nest);
}

static void test_basic_properties(void **state)
{
    struct nest nest;
    uint8_t out[4096];
    size_t used;

    /* Headers between content-encoding and the fields after them. */
    amqp_basic_properties_t p = {0};
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
               AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
               AMQP_BASIC_CORRELATION_ID_FLAG;
    p.content_type = amqp_cstring_bytes("application/json");
    p.content_encoding = amqp_cstring_bytes("gzip");
    p.headers = nested_table(&nest, 3);
    p.delivery_mode = 2;
    p.correlation_id = amqp_cstring_bytes("id-1");
    int n = amqp_encode_properties(AMQP_BASIC_CLASS, &p, (amqp_bytes_t){sizeof out, out});
    assert_true(n > 0);
    size_t len = (size_t)n;
    assert_int_equal(wire_check_basic_properties(out, len, 3), 0);
    assert_int_equal(wire_check_basic_properties(out, len, 2), -1);
    size_t trailing = 1 + 1 + 4;
    for (size_t cut = 0; cut < len - trailing; cut++)
        assert_int_equal(wire_check_basic_properties(out, cut, 3), -1);
    /* Only as far as the headers: the fields after them are not walked. */
    assert_int_equal(wire_check_basic_properties(out, len - trailing, 3), 0);

    /* Headers alone. */
    p._flags = AMQP_BASIC_HEADERS_FLAG;
    n = amqp_encode_properties(AMQP_BASIC_CLASS, &p, (amqp_bytes_t){sizeof out, out});
    assert_true(n > 0);
    assert_int_equal(wire_check_basic_properties(out, (size_t)n, 3), 0);
    assert_int_equal(wire_check_table(out + 2, (size_t)n - 2, 3, &used), 0);
    assert_int_equal(used, (size_t)n - 2);
    assert_int_equal(wire_check_basic_properties(out, (size_t)n, 2), -1);

    /* No headers: nothing to check past the strings. */
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    n = amqp_encode_properties(AMQP_BASIC_CLASS, &p, (amqp_bytes_t){sizeof out, out});
    assert_true(n > 0);
    assert_int_equal(wire_check_basic_properties(out, (size_t)n, 1), 0);
    assert_int_equal(wire_check_basic_properties(out, 2 + 5, 1), -1);
    static const uint8_t none[] = {0, 0};
    assert_int_equal(wire_check_basic_properties(none, sizeof none, 1), 0);
    assert_int_equal(wire_check_basic_properties(none, 1, 1), -1);
    assert_int_equal(wire_check_basic_properties(none, 0, 1), -1);

    /* A continuation flags word is refused. rabbitmq-c 0.11 would read
     * this as three words and, shifting the third by 32 bits, take its
     * headers bit for the first word's. */
    static const uint8_t cont[] = {0x00, 0x01, 0x00, 0x01, 0x20, 0x00, 0, 0, 0, 0};
    assert_int_equal(wire_check_basic_properties(cont, sizeof cont, 64), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type_accepted),
        cmocka_unit_test(test_rabbitmq_encoded_types_accepted),
        cmocka_unit_test(test_truncated_payloads_rejected),
        cmocka_unit_test(test_lengths_past_buffer_rejected),
        cmocka_unit_test(test_unknown_types_rejected),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_deep_nesting_rejected_early),
        cmocka_unit_test(test_differential_random),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_method_too_deep),
        cmocka_unit_test(test_basic_properties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
