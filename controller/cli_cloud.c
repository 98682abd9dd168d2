/*
 * `sky cloud status|preempt|capacity|replay|usage|down`: operator commands
 * of the local cloud (sky-localcloud), each with its options in its table.
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

/*
 * The local cloud's daemon, started if <start> (commands that change the
 * cloud); questions and `down` never start it: 1 when it is not running.
 */
static int connect_cloud(ctl_cli_daemon_t *d, int start)
{
    memset(d, 0, sizeof(*d));
    char *err = NULL;
    int rc = core_localcloud_connect(start, &d->base_url, &d->token, &err);
    if (rc == -ENOENT && start == CORE_LC_NEVER) {
        free(err);
        return 1;
    }
    if (rc < 0) {
        ctl_cli_fail("sky cloud", "%s", err ? err : core_strerror(rc));
        free(err);
        ctl_cli_daemon_free(d);
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
        ctl_cli_fail("sky cloud", "%s", err ? err : core_strerror(rc));
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

/*
 * status and usage: [--json], then GET <path>. Returns CTL_CLI_RUN with *resp
 * to show as a table, or the exit code (after printing the JSON for --json).
 */
static int get_document(ctl_cli_t *cli, int argc, char **argv, const char *path, cJSON **resp)
{
    bool json = false;
    const ctl_opt_t opts[] = {
        CTL_OPT_FLAG(0, "json", "print the cloud's JSON", &json),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    ctl_cli_daemon_t d;
    if ((rc = connect_cloud(&d, CORE_LC_NEVER)) < 0)
        return 1;
    if (rc == 1) {
        /* A question does not start the cloud: when it is down, nothing runs on it. */
        if (strcmp(path, "/v1/instances") != 0) {
            printf(json ? "{}\n" : "The local cloud is not running.\n");
            return 0;
        }
        *resp = cJSON_Parse("{\"instances\": []}");
    } else {
        rc = call(&d, "GET", path, NULL, 30000, resp);
        ctl_cli_daemon_free(&d);
        if (rc < 0)
            return 1;
    }
    if (json) {
        ctl_cli_print_json(stdout, *resp);
        cJSON_Delete(*resp);
        return 0;
    }
    return CTL_CLI_RUN;
}

static int cmd_status(ctl_cli_t *cli, int argc, char **argv)
{
    cJSON *resp = NULL;
    int rc = get_document(cli, argc, argv, "/v1/instances", &resp);
    if (rc != CTL_CLI_RUN)
        return rc;
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

static int cmd_preempt(ctl_cli_t *cli, int argc, char **argv)
{
    char **ids = NULL;
    int n = 0;
    double notice = 0;
    const ctl_opt_t opts[] = {
        CTL_OPT_NUM(0, "notice", "SECONDS",
                    "announce the preemption this long ahead, as clouds do (AWS 120 s, GCP "
                    "30 s); the instance's agent serves the notice at GET /notice",
                    &notice, 0, 86400),
        CTL_ARG_REST("INSTANCE_IDS", "the spot instances to preempt", &ids, &n),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    for (int i = 0; i < n; i++) {
        if (strlen(ids[i]) > 60 || strchr(ids[i], '/'))
            return ctl_cli_usage_error(cli, "bad instance ID '%s'", ids[i]);
    }
    ctl_cli_daemon_t d;
    if (connect_cloud(&d, CORE_LC_START) < 0)
        return 1;
    int ret = 0;
    for (int i = 0; i < n; i++) {
        char *path = notice > 0
                         ? core_xasprintf("/v1/instances/%s/preempt?notice=%g", ids[i], notice)
                         : core_xasprintf("/v1/instances/%s/preempt", ids[i]);
        cJSON *resp = NULL;
        if (call(&d, "POST", path, NULL, 60000, &resp) == 0) {
            if (notice > 0)
                printf("Preemption notice sent to %s: preempted in %g s.\n", ids[i], notice);
            else
                printf("Preempted %s.\n", ids[i]);
        } else
            ret = 1;
        free(path);
        cJSON_Delete(resp);
    }
    ctl_cli_daemon_free(&d);
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

static int cmd_capacity(ctl_cli_t *cli, int argc, char **argv)
{
    const char *zone = NULL, *capacity = NULL;
    bool all = false;
    const ctl_opt_t opts[] = {
        CTL_OPT_FLAG(0, "all", "every zone (instead of ZONE)", &all),
        CTL_ARG_STR_OPT("ZONE", "the zone", &zone),
        CTL_ARG_STR("CAPACITY", "how many spot instances it can hold: N or unlimited", &capacity),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    if (all == (zone != NULL))
        return ctl_cli_usage_error(cli, "give either ZONE or --all");
    if (zone && strlen(zone) >= 40)
        return ctl_cli_usage_error(cli, "bad zone name '%s'", zone);
    long cap = -1;
    if (strcmp(capacity, "unlimited") != 0 &&
        (rc = ctl_cli_int(cli, "CAPACITY", capacity, 0, 1000000000, &cap)) != CTL_CLI_RUN)
        return rc;
    ctl_cli_daemon_t d;
    if (connect_cloud(&d, CORE_LC_START) < 0)
        return 1;
    cJSON *req = cJSON_CreateObject();
    if (all)
        cJSON_AddBoolToObject(req, "all", 1);
    else
        cJSON_AddStringToObject(req, "zone", zone);
    if (cap < 0)
        cJSON_AddNullToObject(req, "capacity");
    else
        cJSON_AddNumberToObject(req, "capacity", (double)cap);
    cJSON *resp = NULL;
    rc = call(&d, "POST", "/v1/capacity", req, 120000, &resp);
    cJSON_Delete(req);
    ctl_cli_daemon_free(&d);
    if (rc == 0) {
        char capbuf[32];
        if (cap < 0)
            snprintf(capbuf, sizeof(capbuf), "unlimited");
        else
            snprintf(capbuf, sizeof(capbuf), "%ld", cap);
        printf("Spot capacity of %s set to %s.\n", all ? "every zone" : zone, capbuf);
        print_preempted(resp);
    }
    cJSON_Delete(resp);
    return rc == 0 ? 0 : 1;
}

static int replay_stop(ctl_cli_daemon_t *d)
{
    cJSON *resp = NULL;
    int rc = call(d, "DELETE", "/v1/replay", NULL, 30000, &resp);
    if (rc == 0)
        printf("Trace replay stopped.\n");
    cJSON_Delete(resp);
    return rc == 0 ? 0 : 1;
}

static int replay_start(ctl_cli_daemon_t *d, const char *dir, const char *zones, double speed)
{
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
    cJSON *resp = NULL;
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

static int cmd_replay(ctl_cli_t *cli, int argc, char **argv)
{
    const char *dir = NULL, *zones = NULL;
    double speed = 1.0;
    bool stop = false;
    const ctl_opt_t opts[] = {
        CTL_OPT_NUM(0, "speed", "X", "trace seconds per real second (default 1)", &speed, 0, 1e9),
        CTL_OPT_STR(0, "zones", "A,B,C", "the zones that replay the trace's files, in order",
                    &zones),
        CTL_OPT_FLAG(0, "stop", "stop the replay that runs", &stop),
        CTL_ARG_STR_OPT("TRACE_DIR", "a folder of spot-availability traces", &dir),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    if (speed == 0)
        return ctl_cli_usage_error(cli, "--speed must be a positive number");
    if (stop ? (dir || zones) : !dir)
        return ctl_cli_usage_error(cli, stop ? "--stop takes no other argument"
                                             : "replay needs TRACE_DIR");
    ctl_cli_daemon_t d;
    if (connect_cloud(&d, CORE_LC_START) < 0)
        return 1;
    rc = stop ? replay_stop(&d) : replay_start(&d, dir, zones, speed);
    ctl_cli_daemon_free(&d);
    return rc;
}

static int cmd_usage(ctl_cli_t *cli, int argc, char **argv)
{
    cJSON *resp = NULL;
    int rc = get_document(cli, argc, argv, "/v1/usage", &resp);
    if (rc != CTL_CLI_RUN)
        return rc;
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

static int cmd_up(ctl_cli_t *cli, int argc, char **argv)
{
    const ctl_opt_t opts[] = {CTL_OPT_END};
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    ctl_cli_daemon_t d;
    if (connect_cloud(&d, CORE_LC_START) < 0)
        return 1;
    printf("The local cloud is up (%s).\n", d.base_url);
    ctl_cli_daemon_free(&d);
    return 0;
}

static int cmd_down(ctl_cli_t *cli, int argc, char **argv)
{
    bool yes = false;
    const ctl_opt_t opts[] = {
        CTL_OPT_YES(&yes),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    if (!yes && !ctl_cli_confirm("Terminating every instance of the local cloud and stopping it. "
                                 "Proceed?",
                                 true)) {
        printf("Aborted.\n");
        return 1;
    }
    /* The controllers first: they would take the vanishing instances for preemptions. Their
     * state stays on disk; a command that needs them starts them again. */
    static const char *const modes[] = {"serve", "jobs"};
    for (size_t i = 0; i < CORE_ARRAY_SIZE(modes); i++) {
        rc = ctl_cli_stop_daemon(modes[i], 30000);
        if (rc < 0)
            return ctl_cli_fail("sky cloud", "cannot stop the %s controller: %s", modes[i],
                                core_strerror(rc));
        if (rc == 1)
            printf("Stopped the %s controller.\n", modes[i]);
    }
    ctl_cli_daemon_t d;
    if ((rc = connect_cloud(&d, CORE_LC_NEVER)) < 0)
        return 1;
    if (rc == 1) {
        printf("The local cloud is not running.\n");
        return 0;
    }
    cJSON *resp = NULL;
    rc = call(&d, "POST", "/v1/down", NULL, 300000, &resp);
    ctl_cli_daemon_free(&d);
    if (rc == 0)
        printf("Terminated %d instance(s); the local cloud is down.\n",
               cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp, "terminated")));
    cJSON_Delete(resp);
    return rc == 0 ? 0 : 1;
}

const ctl_cli_cmd_t ctl_cli_cloud_cmds[] = {
    {"status", "List the local cloud's instances", cmd_status, NULL},
    {"preempt", "Preempt spot instances now", cmd_preempt, NULL},
    {"capacity", "Set how many spot instances a zone can hold", cmd_capacity, NULL},
    {"replay", "Replay spot-availability traces as capacity changes", cmd_replay, NULL},
    {"usage", "Instance-hours and cost so far", cmd_usage, NULL},
    {"up", "Start the local cloud (commands that launch start it too)", cmd_up, NULL},
    {"down", "Terminate every instance and stop the local cloud", cmd_down, NULL},
    {NULL, NULL, NULL, NULL},
};
