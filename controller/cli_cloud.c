/*
 * `sky cloud ...`: operator commands of the local cloud (sky-localcloud).
 *
 *   sky cloud status [--json]
 *   sky cloud preempt ID...
 *   sky cloud capacity ZONE|--all N|unlimited
 *   sky cloud replay TRACE_DIR [--speed X] [--zones a,b,c] | sky cloud replay --stop
 *   sky cloud usage [--json]
 *   sky cloud down
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cli_util.h"
#include "core/err.h"
#include "core/localcloud.h"
#include "core/mem.h"
#include "core/util.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: sky cloud status [--json]\n"
               "       sky cloud preempt ID...\n"
               "       sky cloud capacity ZONE|--all N|unlimited\n"
               "       sky cloud replay TRACE_DIR [--speed X] [--zones a,b,c]\n"
               "       sky cloud replay --stop\n"
               "       sky cloud usage [--json]\n"
               "       sky cloud down\n");
}

static int bad_args(const char *msg)
{
    if (msg)
        fprintf(stderr, "sky cloud: %s\n", msg);
    usage(stderr);
    return 2;
}

static int connect_cloud(ctl_cli_daemon_t *d)
{
    memset(d, 0, sizeof(*d));
    char *err = NULL;
    int rc = core_localcloud_connect(1, &d->base_url, &d->token, &err);
    if (rc < 0) {
        fprintf(stderr, "sky cloud: %s\n", err ? err : core_strerror(rc));
        free(err);
        return rc;
    }
    d->mode = core_xstrdup("localcloud");
    return 0;
}

static int call(ctl_cli_daemon_t *d, const char *method, const char *path, const cJSON *req,
                long timeout_ms, cJSON **resp)
{
    char *err = NULL;
    int rc = ctl_cli_api(d, method, path, req, timeout_ms, NULL, resp, &err);
    if (rc < 0) {
        fprintf(stderr, "sky cloud: %s\n", err ? err : core_strerror(rc));
        free(err);
    }
    return rc;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static int cmd_status(ctl_cli_daemon_t *d, int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else
            return bad_args("status takes only --json");
    }
    if (connect_cloud(d) < 0)
        return 1;
    cJSON *resp = NULL;
    if (call(d, "GET", "/v1/instances", NULL, 30000, &resp) < 0)
        return 1;
    if (json) {
        ctl_cli_print_json(stdout, resp);
        cJSON_Delete(resp);
        return 0;
    }
    static const char *hdr[] = {"ID",   "CLOUD", "REGION", "ZONE", "TYPE",
                                "SPOT", "IP",    "STATE",  "AGE",  "$/h"};
    ctl_table_t *t = ctl_table_new(CORE_ARRAY_SIZE(hdr), hdr);
    double now = core_now();
    const cJSON *o;
    cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(resp, "instances"))
    {
        char age[64], price[32];
        core_fmt_duration(now - jnum(o, "launched_at"), age, sizeof(age));
        snprintf(price, sizeof(price), "%.3f", jnum(o, "price"));
        const char *cells[] = {jstr(o, "id"),
                               jstr(o, "cloud"),
                               jstr(o, "region"),
                               jstr(o, "zone"),
                               jstr(o, "instance_type"),
                               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "spot")) ? "yes"
                                                                                         : "no",
                               jstr(o, "ip")[0] ? jstr(o, "ip") : "-",
                               jstr(o, "state"),
                               age,
                               price};
        ctl_table_add_row(t, cells);
    }
    if (ctl_table_nrows(t) == 0)
        printf("No instances.\n");
    else
        ctl_table_print(t, stdout);
    ctl_table_free(t);
    cJSON_Delete(resp);
    return 0;
}

static int cmd_preempt(ctl_cli_daemon_t *d, int argc, char **argv)
{
    if (argc < 2)
        return bad_args("preempt needs at least one instance ID");
    for (int i = 1; i < argc; i++)
        if (argv[i][0] == '-' || strlen(argv[i]) > 60 || strchr(argv[i], '/'))
            return bad_args("bad instance ID");
    if (connect_cloud(d) < 0)
        return 1;
    int ret = 0;
    for (int i = 1; i < argc; i++) {
        char *path = core_xasprintf("/v1/instances/%s/preempt", argv[i]);
        cJSON *resp = NULL;
        if (call(d, "POST", path, NULL, 60000, &resp) == 0)
            printf("Preempted %s.\n", argv[i]);
        else
            ret = 1;
        free(path);
        cJSON_Delete(resp);
    }
    return ret;
}

static void print_preempted(const cJSON *resp)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(resp, "preempted");
    int n = cJSON_GetArraySize(v);
    if (n == 0)
        return;
    printf("Preempted %d instance(s):", n);
    const cJSON *id;
    cJSON_ArrayForEach(id, v)
    {
        if (cJSON_IsString(id))
            printf(" %s", id->valuestring);
    }
    printf("\n");
}

static int cmd_capacity(ctl_cli_daemon_t *d, int argc, char **argv)
{
    if (argc != 3)
        return bad_args("capacity takes ZONE|--all and N|unlimited");
    long cap = -1;
    if (strcmp(argv[2], "unlimited") != 0 && ctl_parse_long(argv[2], 0, 1000000000, &cap) < 0)
        return bad_args("capacity must be a non-negative integer or 'unlimited'");
    int all = strcmp(argv[1], "--all") == 0;
    if (!all && (argv[1][0] == '-' || strlen(argv[1]) >= 40))
        return bad_args("bad zone name");
    if (connect_cloud(d) < 0)
        return 1;
    cJSON *req = cJSON_CreateObject();
    if (all)
        cJSON_AddBoolToObject(req, "all", 1);
    else
        cJSON_AddStringToObject(req, "zone", argv[1]);
    if (cap < 0)
        cJSON_AddNullToObject(req, "capacity");
    else
        cJSON_AddNumberToObject(req, "capacity", (double)cap);
    cJSON *resp = NULL;
    int rc = call(d, "POST", "/v1/capacity", req, 120000, &resp);
    cJSON_Delete(req);
    if (rc == 0) {
        char capbuf[32];
        if (cap < 0)
            snprintf(capbuf, sizeof(capbuf), "unlimited");
        else
            snprintf(capbuf, sizeof(capbuf), "%ld", cap);
        printf("Spot capacity of %s set to %s.\n", all ? "every zone" : argv[1], capbuf);
        print_preempted(resp);
    }
    cJSON_Delete(resp);
    return rc == 0 ? 0 : 1;
}

static int cmd_replay(ctl_cli_daemon_t *d, int argc, char **argv)
{
    const char *dir = NULL, *zones = NULL;
    double speed = 1.0;
    int stop = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--stop") == 0) {
            stop = 1;
        } else if (strcmp(argv[i], "--speed") == 0 && i + 1 < argc) {
            if (core_parse_num(argv[++i], 0, 1e9, &speed) < 0 || speed == 0)
                return bad_args("--speed must be a positive number");
        } else if (strcmp(argv[i], "--zones") == 0 && i + 1 < argc) {
            zones = argv[++i];
        } else if (argv[i][0] != '-' && !dir) {
            dir = argv[i];
        } else {
            return bad_args(NULL);
        }
    }
    if (stop ? (dir || zones) : !dir)
        return bad_args(stop ? "--stop takes no other argument" : "replay needs TRACE_DIR");
    if (connect_cloud(d) < 0)
        return 1;
    cJSON *resp = NULL;
    if (stop) {
        int rc = call(d, "DELETE", "/v1/replay", NULL, 30000, &resp);
        if (rc == 0)
            printf("Trace replay stopped.\n");
        cJSON_Delete(resp);
        return rc == 0 ? 0 : 1;
    }
    /* The daemon runs elsewhere (cwd /): send an absolute path. */
    char abs[PATH_MAX];
    if (!realpath(dir, abs)) {
        fprintf(stderr, "sky cloud: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "dir", abs);
    cJSON_AddNumberToObject(req, "speed", speed);
    if (zones) {
        cJSON *arr = cJSON_AddArrayToObject(req, "zones");
        char *copy = core_xstrdup(zones), *save = NULL;
        for (char *z = strtok_r(copy, ",", &save); z; z = strtok_r(NULL, ",", &save))
            cJSON_AddItemToArray(arr, cJSON_CreateString(z));
        free(copy);
    }
    int rc = call(d, "POST", "/v1/replay", req, 30000, &resp);
    cJSON_Delete(req);
    if (rc == 0) {
        printf("Replaying %s at speed %g:\n", abs, speed);
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(resp, "mapping"))
        {
            printf("  %s -> %s (%.0f ticks of %gs)\n", jstr(m, "file"), jstr(m, "zone"),
                   jnum(m, "ticks"), jnum(m, "tick_seconds"));
        }
    }
    cJSON_Delete(resp);
    return rc == 0 ? 0 : 1;
}

static int cmd_usage(ctl_cli_daemon_t *d, int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else
            return bad_args("usage takes only --json");
    }
    if (connect_cloud(d) < 0)
        return 1;
    cJSON *resp = NULL;
    if (call(d, "GET", "/v1/usage", NULL, 30000, &resp) < 0)
        return 1;
    if (json) {
        ctl_cli_print_json(stdout, resp);
        cJSON_Delete(resp);
        return 0;
    }
    static const char *hdr[] = {"KIND", "INSTANCES", "INSTANCE-HOURS", "COST ($)"};
    ctl_table_t *t = ctl_table_new(4, hdr);
    static const char *kinds[][2] = {
        {"spot", "spot"}, {"on_demand", "on-demand"}, {"total", "total"}};
    for (size_t i = 0; i < 3; i++) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(resp, kinds[i][0]);
        char n[32], h[32], c[32];
        snprintf(n, sizeof(n), "%.0f", jnum(o, "instances"));
        snprintf(h, sizeof(h), "%.4f", jnum(o, "instance_seconds") / 3600.0);
        snprintf(c, sizeof(c), "%.4f", jnum(o, "cost"));
        const char *cells[] = {kinds[i][1], n, h, c};
        ctl_table_add_row(t, cells);
    }
    ctl_table_print(t, stdout);
    ctl_table_free(t);
    cJSON_Delete(resp);
    return 0;
}

static int cmd_down(ctl_cli_daemon_t *d, int argc, char **argv)
{
    if (argc != 1)
        return bad_args("down takes no argument");
    if (connect_cloud(d) < 0)
        return 1;
    cJSON *resp = NULL;
    int rc = call(d, "POST", "/v1/down", NULL, 300000, &resp);
    if (rc == 0)
        printf("Terminated %d instance(s); the local cloud is down.\n",
               cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp, "terminated")));
    cJSON_Delete(resp);
    return rc == 0 ? 0 : 1;
}

int ctl_cli_cloud(int argc, char **argv)
{
    if (argc < 2)
        return bad_args(NULL);
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0) {
        usage(stdout);
        return 0;
    }
    static const struct {
        const char *name;
        int (*run)(ctl_cli_daemon_t *d, int argc, char **argv);
    } cmds[] = {
        {"status", cmd_status}, {"preempt", cmd_preempt}, {"capacity", cmd_capacity},
        {"replay", cmd_replay}, {"usage", cmd_usage},     {"down", cmd_down},
    };
    for (size_t i = 0; i < CORE_ARRAY_SIZE(cmds); i++) {
        if (strcmp(sub, cmds[i].name) == 0) {
            ctl_cli_daemon_t d;
            memset(&d, 0, sizeof(d));
            int rc = cmds[i].run(&d, argc - 1, argv + 1);
            free(d.mode);
            free(d.base_url);
            free(d.token);
            return rc;
        }
    }
    fprintf(stderr, "sky cloud: unknown command '%s'\n", sub);
    usage(stderr);
    return 2;
}
