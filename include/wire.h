/* wire.h - checks on untrusted AMQP field tables before rabbitmq-c decodes
 * them. rabbitmq-c 0.11's amqp_decode_table recurses without a depth limit,
 * so a deeply nested table from a client would overflow our stack: every
 * table is walked here first, iteratively bounded by max_depth. */
#ifndef HOPPER_WIRE_H
#define HOPPER_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Check the field table at p (starting with its 4-byte length). The
 * outermost table is depth 1; each nested table or array adds one.
 * Returns 0 and sets *consumed when the table is well formed and within
 * max_depth; -1 otherwise. */
int wire_check_table(const uint8_t *p, size_t len, unsigned max_depth, size_t *consumed) MUST_CHECK;

/* Check the tables inside the arguments of method `method_id` (the bytes
 * after class and method id). Methods without tables pass. Returns 0 or -1
 * (malformed or too deep). */
int wire_check_method(uint32_t method_id, const uint8_t *args, size_t len,
                      unsigned max_depth) MUST_CHECK;

/* Check the headers table inside encoded basic-class properties (the bytes
 * after class id, weight and body size: flags first). */
int wire_check_basic_properties(const uint8_t *props, size_t len, unsigned max_depth) MUST_CHECK;

#endif
