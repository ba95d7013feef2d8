/* fuzz_avrojson.c - libFuzzer harness for the Avro contract module
 * (src/avrojson.c: jansson and avro-c underneath).
 *
 * The first byte picks one of four fixed schemas, compiled once: a record
 * with every type, logical types and defaults; a recursive tree (so the
 * depth bounds are reached); a union of look-alike records (so branch
 * trials and their budget are reached); and a map of unions of arrays.
 * The rest is a JSON body for avrojson_encode. Whatever it encodes must
 * pass avrojson_check_binary (a round trip), and encoding the same body
 * again must give the same bytes. The rest is also fed to
 * avrojson_check_binary as raw Avro binary (hostile lengths and counts),
 * and to both JSON readings (jsonschema_fast_tree must give jansson's tree
 * or decline).
 * Every reason must be one printable line that starts as avrojson.h
 * says. Anything else is reported with abort(); a crash, a sanitizer
 * report or a leak stops the run by itself. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "avrojson.h"
#include "jsonschema.h"

static const char *const schema_texts[] = {
    "{\"type\": \"record\", \"name\": \"All\", \"namespace\": \"com.acme\", \"fields\": ["
    " {\"name\": \"n\", \"type\": \"null\", \"default\": null},"
    " {\"name\": \"b\", \"type\": \"boolean\", \"default\": false},"
    " {\"name\": \"i\", \"type\": \"int\", \"default\": 0},"
    " {\"name\": \"l\", \"type\": \"long\", \"default\": 0},"
    " {\"name\": \"f\", \"type\": \"float\", \"default\": 0},"
    " {\"name\": \"d\", \"type\": \"double\", \"default\": 0.5},"
    " {\"name\": \"s\", \"type\": \"string\", \"default\": \"\"},"
    " {\"name\": \"y\", \"type\": \"bytes\", \"default\": \"\\u0000\"},"
    " {\"name\": \"e\", \"type\": {\"type\": \"enum\", \"name\": \"E\", \"symbols\": [\"A\", "
    "\"B\", \"C\"]}, \"default\": \"A\"},"
    " {\"name\": \"x\", \"type\": {\"type\": \"fixed\", \"name\": \"F\", \"size\": 2}, "
    "\"default\": \"ab\"},"
    " {\"name\": \"a\", \"type\": {\"type\": \"array\", \"items\": [\"null\", \"int\", "
    "\"string\"]}, \"default\": []},"
    " {\"name\": \"m\", \"type\": {\"type\": \"map\", \"values\": \"E\"}, \"default\": {}},"
    " {\"name\": \"u\", \"type\": [\"null\", \"long\", \"double\", \"string\", \"bytes\", \"F\"], "
    "\"default\": null},"
    " {\"name\": \"id\", \"type\": {\"type\": \"string\", \"logicalType\": \"uuid\"}, "
    "\"default\": \"00000000-0000-0000-0000-000000000000\"},"
    " {\"name\": \"t\", \"type\": {\"type\": \"int\", \"logicalType\": \"time-millis\"}, "
    "\"default\": 0},"
    " {\"name\": \"tu\", \"type\": {\"type\": \"long\", \"logicalType\": \"time-micros\"}, "
    "\"default\": 0},"
    " {\"name\": \"ts\", \"type\": {\"type\": \"long\", \"logicalType\": \"timestamp-millis\"}, "
    "\"default\": 0},"
    " {\"name\": \"dt\", \"type\": {\"type\": \"int\", \"logicalType\": \"date\"}, "
    "\"default\": 0},"
    " {\"name\": \"dec\", \"type\": {\"type\": \"bytes\", \"logicalType\": \"decimal\", "
    "\"precision\": 9, \"scale\": 2}, \"default\": \"\"},"
    " {\"name\": \"in\", \"type\": {\"type\": \"record\", \"name\": \"In\", \"fields\": ["
    "{\"name\": \"k\", \"type\": \"int\", \"default\": 1}]}, \"default\": {}}]}",

    "{\"type\": \"record\", \"name\": \"Tree\", \"fields\": ["
    " {\"name\": \"v\", \"type\": \"int\", \"default\": 0},"
    " {\"name\": \"kids\", \"type\": {\"type\": \"array\", \"items\": \"Tree\"}, \"default\": []},"
    " {\"name\": \"next\", \"type\": [\"null\", \"Tree\"], \"default\": null},"
    " {\"name\": \"tags\", \"type\": {\"type\": \"map\", \"values\": [\"null\", \"Tree\"]}, "
    "\"default\": {}}]}",

    "[\"null\", {\"type\": \"record\", \"name\": \"A\", \"fields\": [{\"name\": \"x\", \"type\": "
    "[\"null\", \"A\", {\"type\": \"record\", \"name\": \"B\", \"fields\": [{\"name\": \"x\", "
    "\"type\": [\"null\", \"A\", \"B\", \"string\"]}]}, \"string\"]}]}, \"B\", \"string\","
    " {\"type\": \"array\", \"items\": \"null\"}]",

    "{\"type\": \"map\", \"values\": [\"null\", \"boolean\", {\"type\": \"array\", \"items\": "
    "[\"int\", \"float\", {\"type\": \"fixed\", \"name\": \"One\", \"size\": 1}]}, "
    "{\"type\": \"map\", \"values\": \"bytes\"}]}",
};

#define NSCHEMAS (sizeof schema_texts / sizeof schema_texts[0])

static struct avrojson *schemas[NSCHEMAS];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    for (size_t i = 0; i < NSCHEMAS; i++) {
        char err[512];
        schemas[i] = avrojson_compile(schema_texts[i], strlen(schema_texts[i]), err, sizeof err);
        if (!schemas[i]) {
            fprintf(stderr, "fuzz_avrojson: schema %zu does not compile: %s\n", i, err);
            abort();
        }
    }
    return 0;
}

static void bad_reason(const char *what, const char *why)
{
    fprintf(stderr, "fuzz_avrojson: %s: \"", what);
    for (const unsigned char *p = (const unsigned char *)why; *p; p++)
        fprintf(stderr, (*p < 0x20 || *p >= 0x7f) ? "\\x%02x" : "%c", *p);
    fprintf(stderr, "\"\n");
    abort();
}

static void check_line(const char *why, size_t len)
{
    if (!memchr(why, '\0', len))
        abort(); /* not terminated */
    for (const unsigned char *p = (const unsigned char *)why; *p; p++)
        if (*p < 0x20 || *p >= 0x7f)
            bad_reason("reason is not a single printable line", why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const struct avrojson *s = schemas[data[0] % NSCHEMAS];
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    char why[300];

    struct buf out = {0}, again = {0};
    memset(why, 0x55, sizeof why);
    bool ok = avrojson_encode(s, body, len, &out, why, sizeof why);
    check_line(why, sizeof why);
    if (ok) {
        if (why[0])
            bad_reason("success with a reason", why);
        if (!avrojson_check_binary(s, out.data, out.len, why, sizeof why))
            bad_reason("check_binary refuses what encode wrote", why);
        if (!avrojson_encode(s, body, len, &again, why, sizeof why) || again.len != out.len ||
            memcmp(again.data, out.data, out.len) != 0)
            bad_reason("a second encode gives other bytes", why);
    } else {
        if (out.len != 0)
            bad_reason("a failed encode wrote bytes", why);
        if (strncmp(why, "body is not JSON: ", 18) != 0 &&
            strncmp(why, "body is refused: ", 17) != 0 && why[0] != '/')
            bad_reason("reason names no place", why);
    }
    buf_free(&out);
    buf_free(&again);

    /* The fast JSON reading avrojson_encode takes first must give what
     * jansson's parser gives, or decline. */
    json_t *fast = jsonschema_fast_tree(body, len, AVROJSON_MAX_DEPTH);
    if (fast) {
        size_t bom = len >= 3 && !memcmp(body, "\xef\xbb\xbf", 3) ? 3 : 0; /* skipped by both */
        json_t *ref = json_loadb((const char *)body + bom, len - bom,
                                 JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (!ref || !json_equal(fast, ref))
            bad_reason("the fast JSON reading and jansson's differ", ref ? "unequal" : "refused");
        json_decref(ref);
        json_decref(fast);
    }

    memset(why, 0x55, sizeof why);
    ok = avrojson_check_binary(s, body, len, why, sizeof why);
    check_line(why, sizeof why);
    if (!ok && strncmp(why, "offset ", 7) != 0)
        bad_reason("check_binary's reason names no offset", why);
    return 0;
}
