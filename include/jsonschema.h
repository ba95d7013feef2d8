/* jsonschema.h - validating message bodies against a JSON Schema.
 *
 * A small C API over valijson 1.0 (header-only C++, Debian's
 * libvalijson-dev, unpacked by scripts/valijson.sh) and nlohmann-json,
 * implemented in src/jsonschema.cc. No C++ exception crosses it.
 *
 * Drafts: 4, 6 and 7, chosen by the schema's "$schema" (http or https,
 * with or without the trailing '#'); without one, draft 7. Draft 6 is
 * compiled as draft 7 (valijson 1.0 has no draft 6 mode; 7 only adds
 * keywords). Any other "$schema" (draft 3, 2019-09, 2020-12, unknown) is
 * refused. What the drafts' official test suite shows unsupported is in
 * docs/contracts.md ("JSON Schema validation"); in short: "$id" does not
 * set a base URI (valijson 1.0 reads only draft 4's "id"), and most
 * "format"s are not checked.
 *
 * Remote "$ref"s are not fetched: the validator never opens a connection.
 * A schema that needs one does not compile ("remote $ref ... not
 * fetched"). References inside the schema ("#/definitions/x") work.
 *
 * Bodies are untrusted. Before any library walks a body it must be JSON
 * (RFC 8259, UTF-8; a leading BOM is skipped) of at most
 * JSONSCHEMA_MAX_DEPTH nested arrays and objects: nlohmann's parser
 * callback stops the parse at the first container past the bound, so
 * neither the parser nor valijson's recursive walk ever goes deeper.
 * Schemas get the same treatment with JSONSCHEMA_MAX_SCHEMA_DEPTH.
 *
 * Thread safety: compiled schemas share nothing. One compiled schema may
 * be used by one thread at a time (validation caches compiled regular
 * expressions inside it); hopper validates on its event loop only. */
#ifndef HOPPER_JSONSCHEMA_H
#define HOPPER_JSONSCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Deepest nesting of arrays and objects in a body: the top-level array or
 * object is depth 1. 64 is far beyond real messages; valijson's walk then
 * recurses at most a few frames per level. */
#define JSONSCHEMA_MAX_DEPTH 64
/* Deepest nesting in a schema: a body level takes two or three schema
 * levels ("properties", the name, the subschema). */
#define JSONSCHEMA_MAX_SCHEMA_DEPTH 192
/* Longest string a "pattern", "patternProperties" or date/time "format"
 * may be matched against, in bytes. valijson matches with libstdc++'s
 * std::regex, whose backtracking matcher recurses per character and
 * retries from every position: measured with gcc 12 -O2 on an 8 MiB
 * stack, "(a|b)*" overflows it at about 11,000 characters ("[a-z]+" at
 * 26,000; under ASan at 2,200 and 5,200), and an unanchored pattern that
 * fails takes 0.15 s at 4,096 characters, 3 s at 16,384. So when a schema
 * uses regular expressions at all, a body with a longer string (or member
 * name) anywhere is refused before validation. A pattern with nested
 * quantifiers ("(a+)+b") is exponential even within the bound: schemas
 * come from the registry and are trusted that far. */
#define JSONSCHEMA_MAX_REGEX_INPUT 4096

struct jsonschema;

/* Compile the JSON Schema in schema[0..len). Returns the compiled schema
 * (owned by the caller: jsonschema_free) or NULL with a one-line reason in
 * err (always NUL-terminated when errlen > 0; printable ASCII, other bytes
 * written as \xNN). */
struct jsonschema *jsonschema_compile(const char *schema, size_t len, char *err,
                                      size_t errlen) MUST_CHECK;

/* Whether body[0..len) is a JSON document within the bounds above that
 * the schema accepts. When it is, why is set to "" (when whylen > 0);
 * when not, why says so in one line (same form as err above), naming the
 * place in the body as a JSON pointer:
 *   "/items/2/price: Expected number greater than or equal to 0.000000"
 *   "body is not JSON: parse error at line 1, column 4: ..."
 * Of several failures, the one reported is the most specific (deepest)
 * first one in document order, object members taken in the order of
 * their names (nlohmann keeps objects sorted), ties in valijson's order:
 * the same body always gets the same answer. */
bool jsonschema_validate(const struct jsonschema *s, const void *body, size_t len, char *why,
                         size_t whylen) MUST_CHECK;

/* The same answer by the reference path alone: nlohmann-json's parser,
 * without the RapidJSON fast path jsonschema_validate takes first for
 * valid bodies (src/jsonschema.cc says why both). For the tests and the
 * fuzzer, which check that the two never disagree. */
bool jsonschema_validate_reference(const struct jsonschema *s, const void *body, size_t len,
                                   char *why, size_t whylen) MUST_CHECK;

/* The fast path's JSON reading lent to other readers of JSON bodies
 * (avrojson.c): a jansson tree of text (a leading BOM skipped), exactly what
 * json_loadb(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL)
 * would give, or NULL where the fast path declines (not JSON, nesting
 * past max_depth, numbers other than integers of at most 18 digits,
 * NUL in a string, repeated member names, invalid UTF-8): the caller then
 * asks jansson, which decides and says why. RapidJSON in place is several
 * times faster than jansson's own parser on long strings. */
struct json_t;
struct json_t *jsonschema_fast_tree(const void *text, size_t len, int max_depth);

/* Free a compiled schema; NULL is fine. */
void jsonschema_free(struct jsonschema *s);

#ifdef __cplusplus
}
#endif

#endif
