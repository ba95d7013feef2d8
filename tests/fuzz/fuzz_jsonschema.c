/* fuzz_jsonschema.c - libFuzzer harness for the JSON Schema validator
 * (src/jsonschema.cc: nlohmann-json and valijson underneath).
 *
 * One fixed schema, compiled once, that uses most keywords hopper's
 * contracts will: types, required and additional properties, recursion
 * into the body through "$ref", pattern and patternProperties (so the
 * long-string bound applies), an integer multipleOf (huge numbers),
 * bounds, enum, const, anyOf/oneOf/not, if/then/else, dependencies, a
 * date-time format and string lengths (valijson counts UTF-8 characters).
 * The input is the body. An answer must be deterministic (asked twice,
 * the same verdict and reason), the same as the reference path's (no
 * RapidJSON fast path: jsonschema.h) and the reason one printable line that
 * starts as jsonschema.h says; anything else is reported with abort().
 * A crash, a sanitizer report or a leak stops the run by itself. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonschema.h"

static const char schema_text[] =
    "{\"$schema\": \"http://json-schema.org/draft-07/schema#\","
    " \"definitions\": {"
    "  \"node\": {\"type\": [\"object\", \"array\", \"string\", \"number\", \"boolean\", \"null\"],"
    "   \"items\": {\"$ref\": \"#/definitions/node\"}, \"maxItems\": 64,"
    "   \"additionalProperties\": {\"$ref\": \"#/definitions/node\"},"
    "   \"propertyNames\": {\"maxLength\": 32}},"
    "  \"money\": {\"type\": \"number\", \"minimum\": 0, \"exclusiveMaximum\": 1e9}},"
    " \"type\": \"object\","
    " \"required\": [\"id\", \"kind\"],"
    " \"properties\": {"
    "  \"id\": {\"type\": \"string\", \"pattern\": \"^[a-z]{1,8}-[0-9]+$\", \"maxLength\": 40},"
    "  \"kind\": {\"enum\": [\"order\", \"refund\", \"ping\", 7, null, [1, {\"a\": 2}]]},"
    "  \"v\": {\"const\": 2},"
    "  \"at\": {\"type\": \"string\", \"format\": \"date-time\"},"
    "  \"qty\": {\"type\": \"integer\", \"multipleOf\": 3, \"minimum\": -1000000},"
    "  \"ratio\": {\"multipleOf\": 0.25},"
    "  \"price\": {\"$ref\": \"#/definitions/money\"},"
    "  \"name\": {\"type\": \"string\", \"minLength\": 2, \"maxLength\": 12},"
    "  \"tags\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}, \"uniqueItems\": true,"
    "   \"maxItems\": 16, \"contains\": {\"const\": \"x\"}},"
    "  \"lines\": {\"type\": \"array\", \"items\": [{\"type\": \"integer\"}, {\"type\": "
    "\"string\"}],"
    "   \"additionalItems\": {\"$ref\": \"#/definitions/money\"}},"
    "  \"either\": {\"anyOf\": [{\"type\": \"string\"}, {\"type\": \"integer\", \"maximum\": 9}]},"
    "  \"one\": {\"oneOf\": [{\"type\": \"number\"}, {\"multipleOf\": 2}]},"
    "  \"no\": {\"not\": {\"type\": \"null\"}},"
    "  \"tree\": {\"$ref\": \"#/definitions/node\"}},"
    " \"patternProperties\": {\"^x-[a-z]+$\": {\"type\": [\"string\", \"integer\"]}},"
    " \"additionalProperties\": {\"$ref\": \"#/definitions/node\"},"
    " \"dependencies\": {\"refund\": [\"price\"], \"price\": {\"required\": [\"qty\"]}},"
    " \"if\": {\"properties\": {\"kind\": {\"const\": \"order\"}}},"
    " \"then\": {\"required\": [\"lines\"]},"
    " \"else\": {\"maxProperties\": 40}}";

static struct jsonschema *schema;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[512];
    schema = jsonschema_compile(schema_text, sizeof schema_text - 1, err, sizeof err);
    if (!schema) {
        fprintf(stderr, "fuzz_jsonschema: the schema does not compile: %s\n", err);
        abort();
    }
    return 0;
}

static void bad_reason(const char *what, const char *why)
{
    fprintf(stderr, "fuzz_jsonschema: %s: \"", what);
    for (const unsigned char *p = (const unsigned char *)why; *p; p++)
        fprintf(stderr, (*p < 0x20 || *p >= 0x7f) ? "\\x%02x" : "%c", *p);
    fprintf(stderr, "\"\n");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[300], again[300];
    memset(why, 0x55, sizeof why);
    bool ok = jsonschema_validate(schema, data, size, why, sizeof why);
    if (!memchr(why, '\0', sizeof why))
        abort(); /* not terminated */
    bool ok2 = jsonschema_validate(schema, data, size, again, sizeof again);
    if (ok != ok2 || (!ok && strcmp(why, again) != 0))
        bad_reason("a second look gives another answer", again);
    /* The fast path (RapidJSON) only ever says "valid", and only when the
     * reference path (nlohmann-json) would. */
    bool ref = jsonschema_validate_reference(schema, data, size, again, sizeof again);
    if (ok != ref || (!ok && strcmp(why, again) != 0))
        bad_reason(ok ? "the fast path passed what the reference refuses"
                      : "the fast path and the reference disagree",
                   again);
    if (ok)
        return 0;
    for (const unsigned char *p = (const unsigned char *)why; *p; p++)
        if (*p < 0x20 || *p >= 0x7f)
            bad_reason("reason is not a single printable line", why);
    if (strncmp(why, "(root): validation failed", 25) == 0)
        bad_reason("valijson threw while validating", why);
    if (strncmp(why, "body is not JSON: ", 18) != 0 && strncmp(why, "body is refused: ", 17) != 0 &&
        strncmp(why, "(root): ", 8) != 0 && why[0] != '/')
        bad_reason("reason names no place", why);
    return 0;
}
