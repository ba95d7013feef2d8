/* binding.h - whether a queue binding routes a message, by RabbitMQ's rules.
 *
 * One binding, one message, one answer: the exchange's list of bindings
 * and what happens to a match are the caller's. The rules per exchange
 * type are RabbitMQ 3.13 and later's (the same through 4.3); binding.c
 * names the Erlang functions each one follows.
 *  - direct: the binding key equals the routing key, byte for byte.
 *  - fanout: every message.
 *  - topic: the binding key is a pattern, as router_pattern_match().
 *  - headers: the binding arguments are compared with the message's
 *    application headers; "x-match" (all, any, all-with-x, any-with-x)
 *    says how. Values compare as the Erlang terms RabbitMQ decodes them
 *    to, so a signed 8-bit 1 equals a 64-bit 1 but not the double 1.0;
 *    binding.c lists every case.
 * Direct and topic exchanges route a message once per routing key: with
 * sender-selected distribution (CC and BCC headers) the caller asks once
 * per key. */
#ifndef HOPPER_BINDING_H
#define HOPPER_BINDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>

#include "config.h"
#include "util.h"

/* Whether a message with routing key rk and application headers `headers`
 * (NULL or an empty table when it has none) is routed by a binding with
 * key `key` and arguments `args` (NULL or empty when none) on an exchange
 * of type `type`. Neither string needs a terminating NUL. A topic binding
 * key longer than 255 bytes or holding a NUL byte matches nothing; AMQP
 * keys are at most 255 bytes and hopper refuses NULs at queue.bind.
 * Tables nest as deep as wire.c lets them in, and no deeper. */
bool binding_match(enum exchange_type type, const char *key, size_t key_len,
                   const amqp_table_t *args, const char *rk, size_t rk_len,
                   const amqp_table_t *headers);

/* rabbit_misc:table_lookup/2: the value of the first entry of t (NULL:
 * none) named key, or NULL. */
const amqp_field_value_t *table_lookup(const amqp_table_t *t, const char *key);

/* Erlang's =:= on the decoded values of two fields (an integer equals an
 * integer of another width, never a float). */
bool field_equal(const amqp_field_value_t *a, const amqp_field_value_t *b);

/* An integer field of any of AMQP's integer types (RabbitMQ's
 * ?INTEGER_ARG_TYPES), as *out; false for any other type. */
bool field_integer(const amqp_field_value_t *v, int64_t *out);

/* rabbit_binary_parser's name for a field's type (rabbitmq-c's kind), as
 * RabbitMQ's messages show it: "signedint", "longstr", ... */
const char *field_type_name(uint8_t kind);

/* Whether RabbitMQ accepts `args` for a binding on an exchange of type
 * `type` (only headers exchanges check anything: x-match). When not, err
 * gets the channel.close reply text for code 406, in RabbitMQ's words:
 * "PRECONDITION_FAILED - Invalid x-match field value <<\"foo\">>; expected
 * all, any, all-with-x, or any-with-x". err may be NULL when errlen is 0. */
bool binding_args_valid(enum exchange_type type, const amqp_table_t *args, char *err,
                        size_t errlen) MUST_CHECK;

#endif
