/*
 * The task/service YAML parser (core_task_parse_with): the input is a YAML
 * file, optionally followed by a NUL and the JSON overrides object that the
 * CLI and the stores carry (--cpus, --secret, ... as core/spec.h lists
 * them). Every outcome must be clean: a task whose validators and repr run,
 * or CORE_ESPEC with a "file[:line:col]: message", and nothing leaked.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/spec.h"
#include "fuzz_util.h"

#define FILE_NAME "fuzz.yaml"

/* Errors name the file (or the overrides) first. */
static int well_formed(const char *err)
{
    return err && (strncmp(err, FILE_NAME ":", sizeof(FILE_NAME)) == 0 ||
                   strncmp(err, "task overrides: ", 16) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t ylen = nul ? (size_t)(nul - data) : size;
    cJSON *over = NULL;
    if (nul) {
        size_t jlen = size - ylen - 1;
        over = cJSON_ParseWithLength((const char *)nul + 1, jlen);
    }
    /* --env values, as the CLI sends them: the YAML may name them in ${VAR}. */
    cJSON *envs = cJSON_CreateObject();
    cJSON_AddStringToObject(envs, "MODEL", "m-${MODEL}");
    cJSON_AddStringToObject(envs, "BUCKET", "fuzz-bucket");
    core_task_t *t = NULL;
    char *err = NULL;
    int rc = core_task_parse_with((const char *)data, ylen, FILE_NAME, envs, over, &t, &err);
    if (rc == 0) {
        FUZZ_CHECK(t != NULL && err == NULL);
        FUZZ_CHECK(t->num_nodes == 1);
        for (size_t i = 0; i < t->n_warnings; i++)
            FUZZ_CHECK(well_formed(t->warnings[i]) && strstr(t->warnings[i], ": warning: "));
        for (size_t i = 0; i < t->n_file_mounts; i++)
            FUZZ_CHECK(t->file_mounts[i].dst && (t->file_mounts[i].dst[0] == '/' ||
                                                 t->file_mounts[i].dst[0] == '~'));
        if (t->service) {
            rc = core_task_validate_service(t, &err);
            FUZZ_CHECK(rc > 0 ? rc <= 65535 && !err : rc == CORE_ESPEC && well_formed(err));
            char *repr = core_service_repr(t->service);
            FUZZ_CHECK(repr != NULL && strncmp(repr, "Readiness probe method:", 23) == 0);
            free(repr);
        } else {
            rc = core_task_validate_job(t, &err);
            FUZZ_CHECK(rc == 0 ? !err : rc == CORE_ESPEC && well_formed(err));
        }
        const core_job_recovery_t *jr = core_task_job_recovery(t);
        FUZZ_CHECK(jr->n_recover_on_exit_codes <= 256);
    } else {
        FUZZ_CHECK(t == NULL && rc == CORE_ESPEC && well_formed(err));
    }
    free(err);
    core_task_free(t);
    cJSON_Delete(envs);
    cJSON_Delete(over);
    return 0;
}
