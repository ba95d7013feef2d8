/* avrojson.h - JSON message bodies checked against an Avro schema and
 * encoded to Avro binary; Avro binary bodies checked against one.
 *
 * A building block of message contracts: a producer that publishes plain
 * JSON to a topic whose registry subject holds an Avro schema gets its
 * body validated and turned into the Avro binary datum Kafka consumers
 * expect (the caller adds the Confluent framing). avro-c 1.11
 * (libavro-dev) builds and writes the datum through its generic value
 * API; it has no JSON decoder, so the walk over the body (jansson) is
 * ours. avro-c also ignores field defaults and logical types, so the
 * schema text is parsed here too, and the two readings are compared at
 * compile time: a schema they disagree on does not compile.
 *
 * Mapping from JSON (the body as legacy apps publish it):
 *   null              null
 *   boolean           true / false
 *   int               a JSON integer in [-2^31, 2^31); 1.0 is not one
 *   long              a JSON integer in int64 (beyond it: not JSON)
 *   float, double     a JSON integer or real (a float beyond +-FLT_MAX
 *                     is refused; integers beyond 2^53 round)
 *   string            a JSON string (UTF-8, no NUL: "\u0000" is refused)
 *   bytes, fixed      Avro's JSON encoding: a string whose code points are
 *                     0..255, one byte each; a fixed needs exactly size
 *   enum              one of the symbols, as a string
 *   array             a JSON array
 *   map               a JSON object (member names are the keys)
 *   record            a JSON object holding every field; a missing field
 *                     takes the schema's default, else it is an error; a
 *                     member that is not a field is an error (hopper never
 *                     drops data silently)
 *   union             either Avro's JSON encoding, an object with exactly
 *                     one member whose name names a branch ("null",
 *                     "string", "array", "map", or a named type's full
 *                     name, e.g. {"com.acme.User": {...}}), or the plain
 *                     value: null takes the null branch, anything else the
 *                     first branch in schema order it converts to without
 *                     an error. An object of one member named like a
 *                     branch is always the wrapped form, so a record or
 *                     map branch whose only member is called "string"
 *                     must be sent wrapped ({"R": {"string": ...}}).
 * Defaults follow the spec: a union field's default is a value of its
 * first branch (plain, not wrapped); bytes and fixed defaults are strings
 * as above. Every default is checked at compile time.
 *
 * Logical types (anything else, or one with invalid attributes, is its
 * underlying type, as the spec says):
 *   date (int), timestamp-millis, timestamp-micros, local-timestamp-millis,
 *   local-timestamp-micros (long): JSON integers
 *   time-millis (int) in [0, 86400000), time-micros (long) in
 *   [0, 86400000000): JSON integers
 *   uuid (string): 8-4-4-4-12 hex digits, either case
 *   decimal (bytes or fixed, with precision > 0 and 0 <= scale <=
 *   precision): the unscaled two's-complement big-endian bytes in Avro's
 *   JSON bytes encoding, as for bytes and fixed; JSON numbers are refused
 *   (a JSON real has no exact decimal value in jansson); the precision is
 *   not checked.
 *
 * Schemas: the registry's text (a JSON string, object or array). Named
 * types, namespaces (a dotted name, "namespace", or the enclosing one)
 * and recursion work. Refused: duplicate field names, enum symbols or
 * union branches, a union directly in a union, an unknown type name, a
 * fixed of size 0 (avro-c 1.11 cannot read one back).
 *
 * Bodies are untrusted. Before jansson parses a body it must be JSON
 * (RFC 8259, UTF-8; a leading BOM is skipped; no NUL byte) of at most
 * AVROJSON_MAX_DEPTH nested arrays and objects (a bounded scan of the
 * text first: jansson's own bound is 2048). Duplicate member names are
 * refused. The datum's records, arrays and maps nest at most
 * AVROJSON_MAX_DEPTH deep, defaults included, in both directions; so a
 * recursive schema with deep data gets an error, never a deep recursion.
 * Choosing a union branch by trial costs at most AVROJSON_TRIAL_STEPS per
 * body byte in total, so nested unions cannot take exponential time. Out
 * of bounded memory: at most AVROJSON_MAX_EMPTY_ITEMS array or map items
 * that encode to no bytes at all (null, records of only nulls) per
 * datum; every other item takes at least one byte of output,
 * which is at most the body's size times the largest default's.
 *
 * Threads: a compiled schema is not changed by encode or check, but
 * avro-c counts references to its classes without atomics, so use one
 * from one thread at a time; hopper uses it from its event loop only. */
#ifndef HOPPER_AVROJSON_H
#define HOPPER_AVROJSON_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* Deepest nesting of arrays and objects in a body (the top-level one is
 * depth 1), and of records, arrays and maps in a datum: the same bound
 * as JSONSCHEMA_MAX_DEPTH. */
#define AVROJSON_MAX_DEPTH 64
/* Deepest nesting of arrays and objects in a schema's text. */
#define AVROJSON_MAX_SCHEMA_DEPTH 192
/* Items of zero-byte encoding allowed in one datum: a few bytes of Avro
 * binary could otherwise claim 2^63 of them. */
#define AVROJSON_MAX_EMPTY_ITEMS 65536
/* Steps (JSON values visited) of union branch trials per body byte. */
#define AVROJSON_TRIAL_STEPS 64

struct avrojson; /* a compiled Avro schema */

/* Parse the Avro schema in schema[0..len) (as a registry returns it).
 * Returns the compiled schema (owned by the caller: avrojson_free) or
 * NULL with a one-line reason in err (always NUL-terminated when errlen >
 * 0; printable ASCII, other bytes as \xNN), e.g.
 *   "schema: /fields/1/type: unknown type \"Usr\"". */
struct avrojson *avrojson_compile(const char *schema, size_t len, char *err,
                                  size_t errlen) MUST_CHECK;

/* Validate the JSON body[0..len) against the schema and append its Avro
 * binary encoding to out. On failure returns false, leaves out->len as it
 * was, and why says in one line (same form as err above) where and what,
 * naming the place as a JSON pointer into the body:
 *   "/user/age: expected int, got string \"x\""
 *   "/: missing field \"id\" (no default)"
 *   "body is not JSON: ..."
 * On success why is "" (when whylen > 0). */
bool avrojson_encode(const struct avrojson *s, const void *body, size_t len, struct buf *out,
                     char *why, size_t whylen) MUST_CHECK;

/* Whether data[0..len) is exactly one datum of the schema in Avro binary
 * (nothing left over): for bodies that already carry the Confluent
 * framing (hopper strips the 5-byte prefix first). A bounded pre-scan
 * checks every length, count, index and varint against the bytes left
 * (and strings are UTF-8, booleans 0 or 1, uuids of the form above,
 * block sizes right) before avro-c decodes: avro-c 1.11 allocates
 * whatever length a string claims. why as above, naming the byte offset:
 *   "offset 3: string length 1000 exceeds the 2 bytes left" */
bool avrojson_check_binary(const struct avrojson *s, const void *data, size_t len, char *why,
                           size_t whylen) MUST_CHECK;

/* Free a compiled schema; NULL is fine. */
void avrojson_free(struct avrojson *s);

#endif
