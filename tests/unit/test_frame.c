/* test_frame.c - the frame reader fed byte by byte and in random splits,
 * its error cases, and the writer's body splitting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "frame.h"

/* A stream of frames of assorted types, sizes and channels. */
static struct evbuffer *sample_stream(size_t *n_frames)
{
    struct evbuffer *out = evbuffer_new();
    amqp_channel_open_t open = {amqp_empty_bytes};
    assert_int_equal(frame_put_method(out, 1, AMQP_CHANNEL_OPEN_METHOD, &open), 0);
    amqp_basic_publish_t pub = {0, amqp_cstring_bytes("events"), amqp_cstring_bytes("a.b"), 1, 0};
    assert_int_equal(frame_put_method(out, 1, AMQP_BASIC_PUBLISH_METHOD, &pub), 0);
    uint8_t body[10000];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (uint8_t)(i * 7);
    amqp_basic_properties_t props = {0};
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.content_type = amqp_cstring_bytes("text/plain");
    /* 10000 bytes at frame_max 4096: a header and three body frames. */
    assert_int_equal(frame_put_content(out, 1, &props, NULL, 0, body, sizeof body, FRAME_MIN_MAX),
                     0);
    frame_put_heartbeat(out);
    *n_frames = 7;
    return out;
}

/* Reads every frame from `in` as it grows by `steps` bytes at a time and
 * checks each matches the next frame of `ref`. */
static void feed(struct evbuffer *ref, size_t n_frames, const size_t *steps, size_t n_steps)
{
    size_t total = evbuffer_get_length(ref);
    uint8_t *all = malloc(total);
    evbuffer_copyout(ref, all, total);
    struct evbuffer *in = evbuffer_new();
    size_t fed = 0, got = 0, offset = 0;
    for (size_t s = 0; fed < total; s++) {
        size_t n = s < n_steps ? steps[s] : 1;
        if (n > total - fed)
            n = total - fed;
        evbuffer_add(in, all + fed, n);
        fed += n;
        /* As the server reads: frames in place, one drain per batch. */
        struct frame_reader r = {in, 0};
        struct frame f;
        enum frame_status st;
        while ((st = frame_next(&r, FRAME_MIN_MAX, &f)) == FRAME_OK) {
            /* The frame must be exactly the bytes at this offset. */
            assert_int_equal(f.type, all[offset]);
            assert_memory_equal(f.payload, all + offset + 7, f.size);
            offset += f.size + FRAME_OVERHEAD;
            got++;
        }
        assert_int_equal(st, FRAME_INCOMPLETE);
        frame_reader_finish(&r);
    }
    assert_int_equal(got, n_frames);
    assert_int_equal(evbuffer_get_length(in), 0);
    evbuffer_free(in);
    free(all);
}

static void test_byte_by_byte(void **state)
{
    size_t n;
    struct evbuffer *ref = sample_stream(&n);
    feed(ref, n, NULL, 0);
    evbuffer_free(ref);
}

static void test_random_splits(void **state)
{
    size_t n;
    struct evbuffer *ref = sample_stream(&n);
    srand(42);
    for (int round = 0; round < 200; round++) {
        size_t steps[512];
        for (size_t i = 0; i < 512; i++)
            steps[i] = 1 + (size_t)rand() % (round % 2 ? 64 : 5000);
        feed(ref, n, steps, 512);
    }
    evbuffer_free(ref);
}

static void test_whole_stream_at_once(void **state)
{
    size_t n;
    struct evbuffer *ref = sample_stream(&n);
    size_t steps[1] = {evbuffer_get_length(ref)};
    feed(ref, n, steps, 1);
    evbuffer_free(ref);
}

static void test_oversize_refused_from_header(void **state)
{
    struct evbuffer *in = evbuffer_new();
    /* Only the 7-byte header of a 100000-byte frame: refused at once, no
     * need to buffer the payload first. */
    uint8_t hdr[7] = {FRAME_METHOD, 0, 3, 0, 0x01, 0x86, 0xa0};
    evbuffer_add(in, hdr, sizeof hdr);
    struct frame f;
    assert_int_equal(frame_peek(in, FRAME_MIN_MAX, &f), FRAME_TOO_LARGE);
    assert_int_equal(f.size, 100000);
    assert_int_equal(f.channel, 3);
    /* The same frame is fine under a larger frame_max (once it is whole). */
    assert_int_equal(frame_peek(in, 131072, &f), FRAME_INCOMPLETE);
    evbuffer_free(in);
}

static void test_exact_frame_max_accepted(void **state)
{
    struct evbuffer *in = evbuffer_new();
    uint32_t size = FRAME_MIN_MAX - FRAME_OVERHEAD;
    uint8_t hdr[7] = {FRAME_BODY, 0, 1, 0, 0, (uint8_t)(size >> 8), (uint8_t)size};
    evbuffer_add(in, hdr, sizeof hdr);
    uint8_t *payload = calloc(1, size + 1);
    payload[size] = FRAME_END;
    evbuffer_add(in, payload, size + 1);
    struct frame f;
    assert_int_equal(frame_peek(in, FRAME_MIN_MAX, &f), FRAME_OK);
    assert_int_equal(f.size, size);
    /* One byte more is over. */
    hdr[6]++;
    struct evbuffer *in2 = evbuffer_new();
    evbuffer_add(in2, hdr, sizeof hdr);
    assert_int_equal(frame_peek(in2, FRAME_MIN_MAX, &f), FRAME_TOO_LARGE);
    free(payload);
    evbuffer_free(in);
    evbuffer_free(in2);
}

static void test_bad_end_octet(void **state)
{
    struct evbuffer *in = evbuffer_new();
    uint8_t frame[8 + 4] = {FRAME_METHOD, 0, 0, 0, 0, 0, 4, 0, 10, 0, 10, 0xCD};
    evbuffer_add(in, frame, sizeof frame);
    struct frame f;
    assert_int_equal(frame_peek(in, FRAME_MIN_MAX, &f), FRAME_BAD_END);
    evbuffer_free(in);
}

static void test_body_split_to_frame_max(void **state)
{
    struct evbuffer *out = evbuffer_new();
    uint8_t body[20000] = {1};
    assert_int_equal(frame_put_content(out, 5, NULL, "\x00\x00", 2, body, sizeof body, 8192), 0);
    struct frame f;
    assert_int_equal(frame_peek(out, 8192, &f), FRAME_OK);
    assert_int_equal(f.type, FRAME_HEADER);
    assert_int_equal(f.size, 14); /* class, weight, size, 2 property bytes */
    frame_drain(out, &f);
    size_t sizes[3], n = 0, sum = 0;
    while (frame_peek(out, 8192, &f) == FRAME_OK) {
        assert_int_equal(f.type, FRAME_BODY);
        assert_int_equal(f.channel, 5);
        assert_true(n < 3);
        sizes[n++] = f.size;
        sum += f.size;
        frame_drain(out, &f);
    }
    assert_int_equal(n, 3);
    assert_int_equal(sizes[0], 8184);
    assert_int_equal(sizes[1], 8184);
    assert_int_equal(sum, sizeof body);
    evbuffer_free(out);
}

static void test_method_names_as_in_the_spec(void **state)
{
    (void)state;
    char name[64];
    frame_method_name(AMQP_BASIC_CONSUME_METHOD, name, sizeof name);
    assert_string_equal(name, "basic.consume");
    frame_method_name(AMQP_BASIC_GET_OK_METHOD, name, sizeof name);
    assert_string_equal(name, "basic.get-ok");
    frame_method_name(AMQP_CONFIRM_SELECT_METHOD, name, sizeof name);
    assert_string_equal(name, "confirm.select");
    frame_method_name(0x03e703e7, name, sizeof name);
    assert_string_equal(name, "method 0x03e703e7");
    char small[6];
    frame_method_name(AMQP_BASIC_CONSUME_METHOD, small, sizeof small);
    assert_string_equal(small, "basic");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_random_splits),
        cmocka_unit_test(test_whole_stream_at_once),
        cmocka_unit_test(test_oversize_refused_from_header),
        cmocka_unit_test(test_exact_frame_max_accepted),
        cmocka_unit_test(test_bad_end_octet),
        cmocka_unit_test(test_body_split_to_frame_max),
        cmocka_unit_test(test_method_names_as_in_the_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
