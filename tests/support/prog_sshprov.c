/*
 * sshprov: drives the SSH Node Pool provider (core/prov_ssh.c) for
 * tests/e2e/test_ssh_provider.py. One JSON line on stdout per call.
 *
 *   sshprov launch OWNER POOL[/HOST] [cpus=N] [mem=N] [gpu=NAME:N] [spot]
 *   sshprov describe ID | terminate ID | list
 *   sshprov candidates INFRA [cpus=N] [spot]      core_prov_ssh_candidates
 *   sshprov sftp-sandbox BUCKET                   exec the bucket mounts' sftp-server
 *   sshprov run ID COMMAND [workdir=DIR] [mount=DST:SRC] [copy=DST:SRC] [nowait]
 *                                                 a task on the instance's agent
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/agent.h"
#include "core/err.h"
#include "core/log.h"
#include "core/prov_ssh.h"
#include "core/spec.h"
#include "core/ssh_stage.h"

#include <unistd.h>

static cJSON *inst_json(const core_instance_t *in)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", in->id);
    cJSON_AddStringToObject(o, "cloud", in->cloud);
    cJSON_AddStringToObject(o, "region", in->region);
    cJSON_AddStringToObject(o, "zone", in->zone);
    cJSON_AddStringToObject(o, "state", core_inst_state_name(in->state));
    cJSON_AddStringToObject(o, "ip", in->ip);
    cJSON_AddNumberToObject(o, "agent_port", in->agent_port);
    cJSON_AddBoolToObject(o, "spot", in->spot);
    cJSON_AddStringToObject(o, "owner", in->owner);
    return o;
}

static int emit(cJSON *o, int rc, char *err)
{
    cJSON_AddNumberToObject(o, "rc", rc);
    cJSON_AddStringToObject(o, "err_name", rc ? core_err_name(rc) : "");
    cJSON_AddStringToObject(o, "error", err ? err : "");
    free(err);
    char *s = cJSON_PrintUnformatted(o);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
    return 0;
}

static void opts(int argc, char **argv, int from, double *cpus, double *mem, char *gpu,
                 size_t gpulen, int *gpus, int *spot)
{
    for (int i = from; i < argc; i++) {
        if (!strncmp(argv[i], "cpus=", 5))
            *cpus = atof(argv[i] + 5);
        else if (!strncmp(argv[i], "mem=", 4))
            *mem = atof(argv[i] + 4);
        else if (!strncmp(argv[i], "gpu=", 4)) {
            const char *c = strchr(argv[i] + 4, ':');
            snprintf(gpu, gpulen, "%.*s", c ? (int)(c - argv[i] - 4) : 23, argv[i] + 4);
            *gpus = c ? atoi(c + 1) : 1;
        } else if (!strcmp(argv[i], "spot"))
            *spot = 1;
    }
}

int main(int argc, char **argv)
{
    core_log_init("sshprov", CORE_LOG_WARN);
    if (argc < 2) {
        fprintf(stderr, "usage: sshprov launch OWNER POOL[/HOST] [cpus=N] [mem=N] [gpu=X:N] "
                        "[spot] | describe ID | terminate ID | list | candidates INFRA | "
                        "run ID CMD\n");
        return 2;
    }
    if (!strcmp(argv[1], "sftp-sandbox") && argc == 3) {
        char **sb = NULL;
        if (core_ssh_sftp_sandbox_argv(argv[2], &sb) < 0)
            return 1;
        execvp(sb[0], sb);
        return 127;
    }
    core_prov_t *p = NULL;
    char *oerr = NULL;
    int rc = core_prov_ssh_open(&p, &oerr);
    if (rc < 0) {
        fprintf(stderr, "sshprov: cannot open the provider: %s\n", oerr ? oerr : "?");
        free(oerr);
        return 1;
    }
    cJSON *o = cJSON_CreateObject();
    char *err = NULL;
    if (!strcmp(argv[1], "launch") && argc >= 4) {
        core_candidate_t c;
        memset(&c, 0, sizeof(c));
        snprintf(c.cloud, sizeof(c.cloud), "ssh");
        const char *slash = strchr(argv[3], '/');
        snprintf(c.region, sizeof(c.region), "%.*s",
                 slash ? (int)(slash - argv[3]) : (int)strlen(argv[3]), argv[3]);
        snprintf(c.zone, sizeof(c.zone), "%s", slash ? slash + 1 : "");
        opts(argc, argv, 4, &c.vcpus, &c.memory_gb, c.accelerator, sizeof(c.accelerator),
             &c.accelerator_count, &c.spot);
        core_instance_t in;
        memset(&in, 0, sizeof(in));
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = core_prov_launch(p, &c, argv[2], &in, &err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (rc == 0)
            cJSON_AddItemToObject(o, "instance", inst_json(&in));
        cJSON_AddNumberToObject(o, "seconds",
                                (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    } else if (!strcmp(argv[1], "describe") && argc == 3) {
        core_instance_t in;
        rc = core_prov_describe(p, argv[2], &in);
        if (rc == 0)
            cJSON_AddItemToObject(o, "instance", inst_json(&in));
    } else if (!strcmp(argv[1], "terminate") && argc == 3) {
        rc = core_prov_terminate(p, argv[2]);
    } else if (!strcmp(argv[1], "list") && argc == 2) {
        core_instance_t *list = NULL;
        size_t n = 0;
        rc = core_prov_list(p, &list, &n);
        cJSON *arr = cJSON_AddArrayToObject(o, "instances");
        for (size_t i = 0; i < n; i++)
            cJSON_AddItemToArray(arr, inst_json(&list[i]));
        free(list);
    } else if (!strcmp(argv[1], "candidates") && argc >= 3) {
        core_resources_t r;
        memset(&r, 0, sizeof(r));
        char region[64] = "", gpu[24] = "";
        const char *slash = strchr(argv[2], '/');
        if (slash)
            snprintf(region, sizeof(region), "%s", slash + 1);
        r.region = region[0] ? region : NULL;
        r.use_spot = -1;
        int spot = 0;
        opts(argc, argv, 3, &r.cpus, &r.memory_gb, gpu, sizeof(gpu), &r.accelerator_count, &spot);
        r.accelerator = gpu[0] ? gpu : NULL;
        if (spot)
            r.use_spot = 1;
        core_candidate_t *c = NULL;
        size_t n = 0;
        rc = core_prov_ssh_candidates(&r, &c, &n, &err);
        cJSON *arr = cJSON_AddArrayToObject(o, "candidates");
        for (size_t i = 0; i < n; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "cloud", c[i].cloud);
            cJSON_AddStringToObject(e, "region", c[i].region);
            cJSON_AddNumberToObject(e, "vcpus", c[i].vcpus);
            cJSON_AddItemToArray(arr, e);
        }
        free(c);
    } else if (!strcmp(argv[1], "run") && argc >= 4) {
        core_instance_t in;
        rc = core_prov_describe(p, argv[2], &in);
        int tid = 0, wait = 1;
        if (rc == 0) {
            cJSON *task = cJSON_CreateObject();
            cJSON_AddStringToObject(task, "name", "t");
            cJSON_AddStringToObject(task, "run", argv[3]);
            cJSON *fms = cJSON_AddArrayToObject(task, "file_mounts");
            for (int i = 4; i < argc; i++) {
                if (!strncmp(argv[i], "workdir=", 8)) {
                    cJSON_AddStringToObject(task, "workdir", argv[i] + 8);
                } else if (!strcmp(argv[i], "nowait")) {
                    wait = 0;
                } else {
                    const char *eq = strchr(argv[i], '='), *colon = strchr(argv[i], ':');
                    if (!eq || !colon)
                        continue;
                    cJSON *m = cJSON_CreateObject();
                    char dst[512];
                    snprintf(dst, sizeof(dst), "%.*s", (int)(colon - eq - 1), eq + 1);
                    cJSON_AddStringToObject(m, "dst", dst);
                    cJSON_AddStringToObject(m, "src", colon + 1);
                    cJSON_AddStringToObject(m, "mode", !strncmp(argv[i], "mount=", 6) ? "MOUNT"
                                                                                       : "COPY");
                    cJSON_AddItemToArray(fms, m);
                }
            }
            rc = core_agent_submit(in.ip, in.agent_port, NULL, task, &tid);
            cJSON_Delete(task);
        }
        core_agent_task_t t;
        memset(&t, 0, sizeof(t));
        for (int i = 0; rc == 0 && wait && i < 400; i++) {
            core_agent_task_free(&t);
            rc = core_agent_task_get(in.ip, in.agent_port, NULL, tid, &t);
            if (rc == 0 && core_agent_status_is_terminal(t.status))
                break;
            struct timespec ts = {0, 50000000};
            nanosleep(&ts, NULL);
        }
        if (rc == 0 && wait) {
            cJSON_AddStringToObject(o, "status", core_agent_status_name(t.status));
            cJSON_AddNumberToObject(o, "exit_code", t.exit_code);
            cJSON_AddStringToObject(o, "failure_reason", t.failure_reason ? t.failure_reason : "");
        }
        cJSON_AddNumberToObject(o, "task_id", tid);
        core_agent_task_free(&t);
    } else {
        fprintf(stderr, "sshprov: bad arguments\n");
        cJSON_Delete(o);
        core_prov_destroy(p);
        return 2;
    }
    core_prov_destroy(p);
    return emit(o, rc, err);
}
