/* test_gate.c - unit tests for the partition gate's held queues: messages
 * wait in publish order behind their partition's batch and go over
 * together when it is answered, in one request's worth, through the
 * producer that suits the release; messages reported with a lost partition
 * go back ahead of those that waited behind their release.
 *
 * The gate runs against a fake owner (gate_ops) that records what it is
 * asked to hand over and to nack, on a topic with one partition and no
 * librdkafka: the Makefile links this test with
 * -Wl,--wrap=rd_kafka_message_detach_headers, the one librdkafka call the
 * gate makes on a report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gate.h"

rd_kafka_resp_err_t __wrap_rd_kafka_message_detach_headers(rd_kafka_message_t *rkmessage,
                                                           rd_kafka_headers_t **hdrsp);

/* The test's reports carry no headers. */
rd_kafka_resp_err_t __wrap_rd_kafka_message_detach_headers(rd_kafka_message_t *rkmessage,
                                                           rd_kafka_headers_t **hdrsp)
{
    *hdrsp = NULL;
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

#define MAX_EVENTS 64
#define KEY "same"

struct fixture {
    struct slot_table slots;
    struct producer_limits limits;
    struct gate gate;
    struct topic topic;
    struct topic_cache topics;       /* holds only `topic`, for gate_sweep */
    rd_kafka_resp_err_t produce_err; /* what the fake producer answers */
    /* Tags handed over and the lanes they took, and tags nacked, in order. */
    uint64_t handed[MAX_EVENTS];
    enum producer_lane lanes[MAX_EVENTS];
    size_t n_handed;
    uint64_t nacked[MAX_EVENTS];
    size_t n_nacked;
};

static rd_kafka_resp_err_t fake_produce(void *arg, uint32_t i, enum producer_lane lane, void *body,
                                        size_t body_len, const void *key, size_t key_len,
                                        rd_kafka_headers_t *headers)
{
    struct fixture *fx = arg;
    if (fx->produce_err)
        return fx->produce_err;
    assert_true(fx->n_handed < MAX_EVENTS);
    fx->handed[fx->n_handed] = fx->slots.at[i].tag;
    fx->lanes[fx->n_handed++] = lane;
    free(body); /* librdkafka's now */
    if (headers)
        rd_kafka_headers_destroy(headers);
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static void fake_refuse(void *arg, uint32_t i, rd_kafka_resp_err_t err)
{
    struct fixture *fx = arg;
    assert_true(fx->n_nacked < MAX_EVENTS);
    fx->nacked[fx->n_nacked++] = fx->slots.at[i].tag;
    slot_free_payload(&fx->slots.at[i]);
    slot_release(&fx->slots, i);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    slot_table_init(&fx->slots);
    fx->limits = (struct producer_limits){.batch_bytes = 1000000,
                                          .batch_msgs = 10000,
                                          .msg_timeout_ms = 300000,
                                          .refresh_ms = INT64_MAX / 2};
    gate_init(&fx->gate, &fx->slots, &fx->limits,
              &(struct gate_ops){.produce = fake_produce, .refuse = fake_refuse, .arg = fx});
    /* As topic_get makes it, with the count the partitioner callback saw;
     * no relearning probe falls due during a test. */
    fx->topic = (struct topic){.name = "t",
                               .partitioner = partition_default(),
                               .learned_cnt = 1,
                               .learn_due_ms = INT64_MAX / 2};
    strmap_put(&fx->topics.handles, fx->topic.name, &fx->topic);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    for (uint32_t i = 0; i < fx->slots.n_slots; i++)
        slot_free_payload(&fx->slots.at[i]);
    slot_table_free(&fx->slots);
    free(fx->topic.parts);
    strmap_free(&fx->topics.handles);
    free(fx);
    return 0;
}

/* What sink_produce does with a message: hand it over if its partition is
 * open, else hold it. Returns its slot. */
static uint32_t publish(struct fixture *fx, uint64_t tag)
{
    char body[16];
    snprintf(body, sizeof body, "m%02u", (unsigned)tag);
    size_t len = strlen(body);
    uint32_t i = slot_take(&fx->slots, NULL, tag, slot_cost(len, strlen(KEY)));
    struct slot *sl = &fx->slots.at[i];
    sl->topic = &fx->topic;
    sl->partition = gate_pick_partition(&fx->gate, &fx->topic, KEY, strlen(KEY));
    assert_int_equal(sl->partition, 0);
    if (gate_open(&fx->topic, 0))
        assert_int_equal(gate_hand_over(&fx->gate, i, PRODUCER_PROMPT, strdup(body), len, KEY,
                                        strlen(KEY), NULL),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
    else
        gate_hold(&fx->gate, i, strdup(body), len, KEY, strlen(KEY), NULL);
    return i;
}

/* A delivery report that settles slot i. Returns the batches released. */
static unsigned report_ok(struct fixture *fx, uint32_t i)
{
    int32_t p = fx->slots.at[i].partition;
    slot_free_payload(&fx->slots.at[i]);
    slot_release(&fx->slots, i);
    return gate_reported(&fx->gate, &fx->topic, p);
}

/* A delivery report for slot i with a lost partition: queued again. */
static unsigned report_lost(struct fixture *fx, uint32_t i)
{
    char body[] = "again";
    rd_kafka_message_t m = {.err = RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION,
                            .payload = body,
                            .len = strlen(body),
                            .key = KEY,
                            .key_len = strlen(KEY)};
    int32_t p = fx->slots.at[i].partition;
    assert_true(gate_lost_partition(m.err));
    gate_requeue(&fx->gate, i, &m);
    assert_int_equal(fx->slots.at[i].state, SLOT_HELD);
    return gate_reported(&fx->gate, &fx->topic, p);
}

/* Publish tags 1 to n, slot[tag] their slots: 1 goes over, the rest
 * wait. Then 1 is answered, and they go over as one release. */
static void release_behind_first(struct fixture *fx, uint64_t n, uint32_t *slot)
{
    for (uint64_t tag = 1; tag <= n; tag++)
        slot[tag] = publish(fx, tag);
    assert_int_equal(fx->n_handed, 1);
    assert_int_equal(fx->gate.held, n - 1);
    assert_false(gate_open(&fx->topic, 0));
    assert_int_equal(report_ok(fx, slot[1]), 1);
}

static void assert_handed(const struct fixture *fx, size_t from, const uint64_t *tags, size_t n,
                          enum producer_lane lane)
{
    assert_int_equal(fx->n_handed, from + n);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(fx->handed[from + k], tags[k]);
        assert_int_equal(fx->lanes[from + k], lane);
    }
}

/* Messages behind one in librdkafka wait, then go over in publish order as
 * one release; five or fewer take the prompt producer. */
static void test_held_messages_go_over_in_order(void **state)
{
    struct fixture *fx = *state;
    uint32_t slot[5];
    release_behind_first(fx, 4, slot);
    assert_handed(fx, 1, (uint64_t[]){2, 3, 4}, 3, PRODUCER_PROMPT);
    assert_int_equal(fx->gate.held, 0);
    assert_int_equal(fx->topic.held, 0);
}

/* A release of more than five goes to the batch producer. */
static void test_large_release_takes_the_batch_producer(void **state)
{
    struct fixture *fx = *state;
    uint32_t slot[8];
    release_behind_first(fx, 7, slot);
    assert_handed(fx, 1, (uint64_t[]){2, 3, 4, 5, 6, 7}, 6, PRODUCER_BATCH);
}

/* A release is at most batch.num.messages; the rest goes when that one is
 * answered. */
static void test_release_is_one_request_at_most(void **state)
{
    struct fixture *fx = *state;
    fx->limits.batch_msgs = 3;
    uint32_t slot[7];
    release_behind_first(fx, 6, slot);
    assert_handed(fx, 1, (uint64_t[]){2, 3, 4}, 3, PRODUCER_PROMPT);
    assert_int_equal(fx->gate.held, 2);
    assert_int_equal(report_ok(fx, slot[2]), 0);
    assert_int_equal(report_ok(fx, slot[3]), 0);
    assert_int_equal(fx->n_handed, 4);
    assert_int_equal(report_ok(fx, slot[4]), 1);
    assert_handed(fx, 4, (uint64_t[]){5, 6}, 2, PRODUCER_PROMPT);
}

/* A record counts as librdkafka's msgset writer counts it: 36 bytes of
 * framing at most, body, key, and each header's name and value with their
 * zigzag varint lengths (a null value counts one byte). */
static void test_record_size_is_librdkafkas(void **state)
{
    (void)state;
    assert_int_equal(gate_record_size(1024, 4, NULL), 36 + 1024 + 4);
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    char big[100] = {0};
    rd_kafka_header_add(h, "amqp.exchange", -1, "x", 1); /* 1+13 + 1+1 */
    rd_kafka_header_add(h, "n", -1, NULL, 0);            /* 1+1 + 1 */
    rd_kafka_header_add(h, "b", -1, big, sizeof big);    /* 1+1 + 2+100 (200 > 127) */
    assert_int_equal(gate_record_size(10, 0, h), 36 + 10 + 16 + 3 + 104);
    rd_kafka_headers_destroy(h);
}

/* A release of 1 KiB messages fills one request as far as batch.size
 * allows by librdkafka's count: eight of 1,061 bytes (36 + 1,000 + key
 * "same" + 21 of headers) in 10,000 less the request's own 1,024 and the
 * topic name; the ninth waits for the next release. */
static void test_release_fills_the_request(void **state)
{
    struct fixture *fx = *state;
    fx->limits.batch_bytes = 10000;
    static char body[1000];
    uint32_t slot[11];
    for (uint64_t tag = 1; tag <= 10; tag++) {
        uint32_t i = slot[tag] =
            slot_take(&fx->slots, NULL, tag, slot_cost(sizeof body, strlen(KEY)));
        struct slot *sl = &fx->slots.at[i];
        sl->topic = &fx->topic;
        sl->partition = gate_pick_partition(&fx->gate, &fx->topic, KEY, strlen(KEY));
        rd_kafka_headers_t *h = rd_kafka_headers_new(1);
        rd_kafka_header_add(h, "amqp.exchange", -1, "ex", 2); /* 1+13 + 1+2 = 17: 21 with below */
        rd_kafka_header_add(h, "k", -1, "v", 1);              /* 1+1 + 1+1 */
        void *copy = malloc(sizeof body);
        memcpy(copy, body, sizeof body);
        if (tag == 1) {
            assert_int_equal(gate_hand_over(&fx->gate, i, PRODUCER_PROMPT, copy, sizeof body, KEY,
                                            strlen(KEY), h),
                             RD_KAFKA_RESP_ERR_NO_ERROR);
        } else {
            gate_hold(&fx->gate, i, copy, sizeof body, KEY, strlen(KEY), h);
        }
    }
    assert_int_equal(gate_record_size(sizeof body, strlen(KEY), fx->slots.at[slot[2]].headers),
                     1061);
    assert_int_equal(report_ok(fx, slot[1]), 1);
    assert_int_equal(fx->n_handed, 1 + 8);
    assert_int_equal(fx->gate.held, 1);
}

/* Messages of a release reported with a lost partition go back to the
 * head of the queue, in their order, ahead of what waited behind the
 * release; once released, the next lost one goes to the head again. */
static void test_requeued_messages_go_ahead_of_later_ones(void **state)
{
    struct fixture *fx = *state;
    uint32_t slot[8];
    release_behind_first(fx, 4, slot);
    assert_handed(fx, 1, (uint64_t[]){2, 3, 4}, 3, PRODUCER_PROMPT);
    slot[5] = publish(fx, 5);
    slot[6] = publish(fx, 6);
    assert_int_equal(report_lost(fx, slot[2]), 0);
    assert_int_equal(report_lost(fx, slot[3]), 0);
    assert_int_equal(fx->gate.held, 4);
    assert_int_equal(fx->slots.at[slot[2]].requeues, 1);
    assert_int_equal(report_ok(fx, slot[4]), 1);
    assert_handed(fx, 4, (uint64_t[]){2, 3, 5, 6}, 4, PRODUCER_PROMPT);

    /* The queue's requeued mark went with the release: 2 goes back to the
     * head, 7 waits behind it. */
    assert_int_equal(report_lost(fx, slot[2]), 0);
    slot[7] = publish(fx, 7);
    assert_int_equal(report_ok(fx, slot[3]), 0);
    assert_int_equal(report_ok(fx, slot[5]), 0);
    assert_int_equal(report_ok(fx, slot[6]), 1);
    assert_handed(fx, 8, (uint64_t[]){2, 7}, 2, PRODUCER_PROMPT);
    assert_int_equal(fx->slots.at[slot[2]].requeues, 2);
}

/* A release librdkafka refuses for a full queue stays held, in order, and
 * the timer's sweep hands it over later. */
static void test_full_queue_keeps_messages_for_the_sweep(void **state)
{
    struct fixture *fx = *state;
    uint32_t first = publish(fx, 1);
    publish(fx, 2);
    publish(fx, 3);
    fx->produce_err = RD_KAFKA_RESP_ERR__QUEUE_FULL;
    assert_int_equal(report_ok(fx, first), 0);
    assert_int_equal(fx->gate.held, 2);
    assert_int_equal(fx->n_nacked, 0);
    fx->produce_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    assert_int_equal(gate_sweep(&fx->gate, &fx->topics, false, true), 1);
    assert_handed(fx, 1, (uint64_t[]){2, 3}, 2, PRODUCER_PROMPT);
}

/* Before a purge, everything held is nacked in order; what is in
 * librdkafka stays for its report. */
static void test_sweep_nacks_everything_held(void **state)
{
    struct fixture *fx = *state;
    publish(fx, 1);
    for (uint64_t tag = 2; tag <= 4; tag++)
        publish(fx, tag);
    assert_int_equal(gate_sweep(&fx->gate, &fx->topics, true, true), 0);
    assert_int_equal(fx->n_nacked, 3);
    for (size_t k = 0; k < 3; k++)
        assert_int_equal(fx->nacked[k], 2 + k);
    assert_int_equal(fx->gate.held, 0);
    assert_int_equal(fx->slots.in_flight, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_held_messages_go_over_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_release_takes_the_batch_producer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_release_is_one_request_at_most, setup, teardown),
        cmocka_unit_test(test_record_size_is_librdkafkas),
        cmocka_unit_test_setup_teardown(test_release_fills_the_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requeued_messages_go_ahead_of_later_ones, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_full_queue_keeps_messages_for_the_sweep, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sweep_nacks_everything_held, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
