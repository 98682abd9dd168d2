/*
 * The --env-file reader (core_dotenv_parse, python-dotenv's format): every
 * input either yields entries with valid names, in order, or stops with
 * CORE_ESPEC and a "file:line: message", and leaks nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dotenv.h"
#include "core/err.h"
#include "fuzz_util.h"

typedef struct seen {
    size_t n;
    size_t bytes;
} seen_t;

static int valid_name(const char *k)
{
    if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
        return 0;
    for (k++; *k; k++)
        if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_' ||
              (*k >= '0' && *k <= '9')))
            return 0;
    return 1;
}

static int entry(const char *key, const char *value, void *arg)
{
    seen_t *s = arg;
    FUZZ_CHECK(key && value && valid_name(key));
    s->n++;
    s->bytes += strlen(key) + strlen(value);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    seen_t s = {0, 0};
    char *err = NULL;
    int rc = core_dotenv_parse((const char *)data, size, "fuzz.env", entry, &s, &err);
    if (rc == 0) {
        FUZZ_CHECK(err == NULL);
        /* A value cannot be longer than the file it came from. */
        FUZZ_CHECK(s.bytes <= size);
    } else {
        FUZZ_CHECK(rc == CORE_ESPEC && err && strncmp(err, "fuzz.env:", 9) == 0);
    }
    free(err);
    return 0;
}
