/* fuzz_config.c - libFuzzer harness for the YAML config loader
 * (src/config.c, libyaml underneath).
 *
 * config_load_string on the input as "fuzz.yaml". A config it accepts is
 * freed (LeakSanitizer checks the rest). A refusal must come with the
 * promised message: one line "fuzz.yaml:LINE:COL: key: problem", so no
 * control characters that would break a log line or a terminal (tab
 * excepted); anything else is reported with abort(). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static void bad_message(const char *why, const char *err)
{
    fprintf(stderr, "fuzz_config: %s: \"", why);
    for (const unsigned char *p = (const unsigned char *)err; *p; p++)
        fprintf(stderr, (*p < 0x20 || *p >= 0x7f) ? "\\x%02x" : "%c", *p);
    fprintf(stderr, "\"\n");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config *cfg = NULL;
    char err[1024];
    memset(err, 0x55, sizeof err);
    if (config_load_string("fuzz.yaml", (const char *)data, size, &cfg, err, sizeof err) == 0) {
        if (!cfg)
            abort();
        config_free(cfg);
        return 0;
    }
    if (cfg)
        abort(); /* a refusal leaves *out NULL */
    if (!memchr(err, '\0', sizeof err))
        abort(); /* not terminated */
    if (strncmp(err, "fuzz.yaml:", 10) != 0)
        bad_message("message does not start with the file name", err);
    /* "fuzz.yaml:LINE:COL: " */
    const char *p = err + 10;
    char *e;
    if (strtoul(p, &e, 10) == 0 || *e != ':' || strtoul(e + 1, &e, 10) == 0 || *e != ':')
        bad_message("message has no line:column", err);
    for (const unsigned char *q = (const unsigned char *)err; *q; q++)
        if ((*q < 0x20 && *q != '\t') || *q == 0x7f)
            bad_message("message is not a single printable line", err);
    return 0;
}
