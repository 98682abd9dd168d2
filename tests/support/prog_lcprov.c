/*
 * lcprov: drives the local provider client (core/prov_local.c) for
 * tests/integration/test_localcloud.py. One JSON line on stdout per call.
 *
 *   lcprov failover OWNER ZONE:spot|od[:TYPE] ...   core_prov_launch_failover
 *   lcprov describe ID | terminate ID | list
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/log.h"
#include "core/prov.h"

static cJSON *inst_json(const core_instance_t *in)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", in->id);
    cJSON_AddStringToObject(o, "zone", in->zone);
    cJSON_AddStringToObject(o, "state", core_inst_state_name(in->state));
    cJSON_AddStringToObject(o, "ip", in->ip);
    cJSON_AddNumberToObject(o, "agent_port", in->agent_port);
    cJSON_AddBoolToObject(o, "spot", in->spot);
    cJSON_AddNumberToObject(o, "price", in->price);
    cJSON_AddStringToObject(o, "owner", in->owner);
    return o;
}

static int emit(cJSON *o, int rc)
{
    cJSON_AddNumberToObject(o, "rc", rc);
    cJSON_AddStringToObject(o, "err_name", rc ? core_err_name(rc) : "");
    char *s = cJSON_PrintUnformatted(o);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
    return 0;
}

int main(int argc, char **argv)
{
    core_log_init("lcprov", CORE_LOG_WARN);
    if (argc < 2) {
        fprintf(stderr, "usage: lcprov failover OWNER ZONE:spot|od[:TYPE]... | describe ID | "
                        "terminate ID | list\n");
        return 2;
    }
    core_prov_t *p = NULL;
    int rc = core_prov_local_open(&p, NULL);
    if (rc < 0) {
        fprintf(stderr, "lcprov: cannot open the local provider: %s\n", core_strerror(rc));
        return 1;
    }
    cJSON *o = cJSON_CreateObject();
    if (strcmp(argv[1], "failover") == 0 && argc >= 4) {
        size_t n = (size_t)argc - 3;
        core_candidate_t *c = calloc(n, sizeof(*c));
        for (size_t i = 0; i < n; i++) {
            char buf[128];
            snprintf(buf, sizeof(buf), "%s", argv[3 + i]);
            char *zone = strtok(buf, ":"), *kind = strtok(NULL, ":"), *type = strtok(NULL, ":");
            snprintf(c[i].cloud, sizeof(c[i].cloud), "aws");
            snprintf(c[i].zone, sizeof(c[i].zone), "%s", zone ? zone : "");
            snprintf(c[i].region, sizeof(c[i].region), "%.*s",
                     zone && *zone ? (int)strlen(zone) - 1 : 0, zone ? zone : "");
            snprintf(c[i].instance_type, sizeof(c[i].instance_type), "%s",
                     type ? type : "m6i.large");
            c[i].spot = kind && strcmp(kind, "spot") == 0;
            c[i].price = c[i].spot ? 0.039 : 0.096;
        }
        core_instance_t in;
        size_t chosen = (size_t)-1;
        char *err = NULL;
        rc = core_prov_launch_failover(p, c, n, NULL, argv[2], &in, &chosen, &err);
        if (rc == 0) {
            cJSON_AddItemToObject(o, "instance", inst_json(&in));
            cJSON_AddNumberToObject(o, "chosen", (double)chosen);
        }
        cJSON_AddStringToObject(o, "error", err ? err : "");
        free(err);
        free(c);
    } else if (strcmp(argv[1], "describe") == 0 && argc == 3) {
        core_instance_t in;
        rc = core_prov_describe(p, argv[2], &in);
        if (rc == 0)
            cJSON_AddItemToObject(o, "instance", inst_json(&in));
    } else if (strcmp(argv[1], "terminate") == 0 && argc == 3) {
        rc = core_prov_terminate(p, argv[2]);
    } else if (strcmp(argv[1], "list") == 0 && argc == 2) {
        core_instance_t *v = NULL;
        size_t n = 0;
        rc = core_prov_list(p, &v, &n);
        cJSON *arr = cJSON_AddArrayToObject(o, "instances");
        for (size_t i = 0; i < n; i++)
            cJSON_AddItemToArray(arr, inst_json(&v[i]));
        free(v);
    } else {
        cJSON_Delete(o);
        core_prov_destroy(p);
        fprintf(stderr, "lcprov: bad arguments\n");
        return 2;
    }
    emit(o, rc);
    core_prov_destroy(p);
    return 0;
}
