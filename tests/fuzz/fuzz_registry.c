/* fuzz_registry.c - libFuzzer harness for what a schema registry answers
 * (src/registry.c): the input is the body of an answer to GET
 * /subjects/S/versions/V, and of one to GET /schemas/ids/N/versions.
 * Whatever registry_parse_answer accepts, the
 * schema it carries is then compiled as the contract code would (JSON
 * Schema), since a registry's schema is as untrusted as its JSON. The
 * answer must be one printable line when refused; a crash, a sanitizer
 * report or a leak stops the run by itself. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonschema.h"
#include "registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct registry_schema s;
    json_t *root = NULL;
    char why[256];
    int32_t version;
    /* The same bytes as an answer to GET /schemas/ids/N/versions. */
    if (!registry_parse_versions((const char *)data, size, "s-value", &version, why, sizeof why) &&
        (version || !why[0] || strchr(why, '\n')))
        abort();
    if (!registry_parse_answer((const char *)data, size, &s, &root, why, sizeof why)) {
        if (root || !why[0] || strchr(why, '\n'))
            abort();
        return 0;
    }
    if (s.type == SCHEMA_JSON) {
        char err[256];
        jsonschema_free(jsonschema_compile(s.text, s.len, err, sizeof err));
    }
    json_decref(root);
    return 0;
}
