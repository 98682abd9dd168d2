/*
 * Managed spot jobs (reference managed_jobs.md §8.1), a client of the jobs
 * controller daemon (sky-controller --mode jobs, ctl_jobs.h): `sky spot
 * launch|status|logs|cancel`, each with its options in its table below.
 * Exit codes: 0 success, 1 failure, 2 usage error; launch (unless detached)
 * and following logs end with the job's JobExitCode (0 SUCCEEDED, 100 failed,
 * 101 not finished, 103 CANCELLED).
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cli_util.h"
#include "core/err.h"
#include "core/mem.h"
#include "core/spec.h"
#include "core/util.h"
#include "ctl_jobs_logic.h"

#define DAEMON_WAIT_MS 20000L
#define API_TIMEOUT_MS 30000L
#define MAX_YAML       (4u << 20)
/* How often a broken log stream is resumed before giving up (daemon restarts). */
#define STREAM_RETRIES 30

/* Failures print one line "sky spot: ..." and return 1. */
#define fail_msg(...)     ctl_cli_fail("sky spot", __VA_ARGS__)
#define connect_daemon(d) ctl_cli_connect("sky spot", "jobs", DAEMON_WAIT_MS, d)

/* One API call; prints the error. */
static int call(ctl_cli_daemon_t *d, const char *method, const char *path, const cJSON *req,
                long *status, cJSON **resp)
{
    char *err = NULL;
    int rc = ctl_cli_api(d, method, path, req, API_TIMEOUT_MS, status, resp, &err);
    if (rc < 0) {
        fail_msg("%s", err ? err : core_strerror(rc));
        free(err);
    }
    return rc;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double jnum(const cJSON *o, const char *k, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static bool jtrue(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static ctl_job_status_t job_status(const cJSON *job)
{
    ctl_job_status_t s;
    if (ctl_job_status_parse(jstr(job, "status"), &s) < 0)
        return CTL_JOB_FAILED_CONTROLLER;
    return s;
}

/* The job list (newest first); NULL after printing the error. */
static cJSON *fetch_jobs(ctl_cli_daemon_t *d, bool all)
{
    cJSON *resp = NULL;
    if (call(d, "GET", all ? "/api/jobs?all=1" : "/api/jobs", NULL, NULL, &resp) < 0)
        return NULL;
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(resp, "jobs"))) {
        cJSON_Delete(resp);
        fail_msg("the jobs controller sent a malformed job list");
        return NULL;
    }
    return resp;
}

static cJSON *fetch_job(ctl_cli_daemon_t *d, long id, bool quiet)
{
    char path[64];
    snprintf(path, sizeof(path), "/api/jobs/%ld", id);
    cJSON *resp = NULL;
    char *err = NULL;
    int rc = ctl_cli_api(d, "GET", path, NULL, API_TIMEOUT_MS, NULL, &resp, &err);
    if (rc < 0) {
        if (!quiet)
            fail_msg("%s", err ? err : core_strerror(rc));
        free(err);
        return NULL;
    }
    return resp;
}

/* ------------------------------------------------------------------ logs */

/*
 * Counts what a log stream wrote, so that a stream broken by a controller
 * restart resumes at the same byte instead of repeating the output.
 */
typedef struct counted {
    FILE *out;
    long long n;
} counted_t;

static ssize_t counted_write(void *cookie, const char *buf, size_t size)
{
    counted_t *c = cookie;
    size_t w = fwrite(buf, 1, size, c->out);
    fflush(c->out);
    c->n += (long long)w;
    return (ssize_t)w;
}

/*
 * Streams the job's logs (run output of every attempt, or the controller's
 * log) to stdout, resuming after a broken connection. Returns 0 when the
 * daemon ended the stream, 1 after printing an error.
 */
static int stream_logs(ctl_cli_daemon_t *d, long id, bool controller, bool follow)
{
    counted_t cnt = {stdout, 0};
    cookie_io_functions_t io = {.write = counted_write};
    FILE *f = fopencookie(&cnt, "w", io);
    if (f == NULL)
        return fail_msg("cannot set up the log stream: %s", strerror(errno));
    setvbuf(f, NULL, _IONBF, 0);
    int code = 1;
    for (int tries = 0;; tries++) {
        char *path = core_xasprintf("/api/jobs/%ld/%s?follow=%d&offset=%lld", id,
                                    controller ? "controller_log" : "logs", follow ? 1 : 0, cnt.n);
        long status = 0;
        char *err = NULL;
        int rc = ctl_cli_stream(d, path, 0, f, &status, &err);
        free(path);
        if (rc == 0) {
            code = 0;
            break;
        }
        if (rc == CORE_EHTTP || tries >= STREAM_RETRIES) {
            fflush(stdout);
            fail_msg("%s", err ? err : core_strerror(rc));
            free(err);
            break;
        }
        free(err);
        /* The controller went away (restart, kill): find or restart it and resume. */
        usleep(500000);
        ctl_cli_daemon_t nd;
        char *cerr = NULL;
        if (ctl_cli_daemon_connect("jobs", DAEMON_WAIT_MS, &nd, &cerr) == 0) {
            ctl_cli_daemon_free(d);
            *d = nd;
        }
        free(cerr);
    }
    fclose(f);
    return code;
}

/*
 * After following a job's logs: waits for its final status (the stream may
 * end a moment before the row does), prints it and returns its exit code.
 */
static int report_final(ctl_cli_daemon_t *d, long id)
{
    ctl_job_status_t s = CTL_JOB_PENDING;
    cJSON *job = NULL;
    for (int tries = 0; tries < 100; tries++) {
        cJSON_Delete(job);
        job = fetch_job(d, id, tries < 99);
        if (job) {
            s = job_status(job);
            if (ctl_job_status_is_terminal(s))
                break;
        }
        usleep(200000);
    }
    if (job == NULL)
        return 1;
    cJSON_Delete(job);
    fflush(stdout);
    if (!ctl_job_status_is_terminal(s)) {
        printf("Job %ld has not finished (status: %s).\n", id, ctl_job_status_name(s));
        return ctl_job_status_exit_code(s);
    }
    printf("Job finished (status: %s).\n", ctl_job_status_name(s));
    return ctl_job_status_exit_code(s);
}

/* ---------------------------------------------------------------- launch */

static int cmd_launch(ctl_cli_t *cli, int argc, char **argv)
{
    const char *file = NULL, *name = NULL;
    ctl_cli_env_t env = {0};
    bool yes = false, detach = false;
    const ctl_opt_t opts[] = {
        CTL_OPT_STR('n', "name", "NAME", "the job's name (default: the YAML's, else sky-job)",
                    &name),
        CTL_OPT_YES(&yes),
        CTL_OPT_DETACH(&detach),
        CTL_OPTS_ENV(&env),
        CTL_ARG_STR("ENTRYPOINT", "the task YAML", &file),
        CTL_OPT_END,
    };
    cJSON *envs = NULL;
    int code = ctl_cli_parse(cli, opts, argc, argv);
    if (code != CTL_CLI_RUN)
        return code;
    if (name && (name[0] == '\0' || strlen(name) > 128))
        return ctl_cli_usage_error(cli, "the job name must be 1 to 128 characters");
    char *err = NULL;
    if ((code = ctl_cli_envs(&env, &envs, &err)) != 0) {
        fail_msg("%s", err);
        free(err);
        goto out;
    }
    code = 1;
    char *text = NULL;
    size_t len = 0;
    int rc = core_read_file(file, MAX_YAML, &text, &len);
    if (rc < 0) {
        fail_msg("cannot read %s: %s", file, core_strerror(rc));
        goto out;
    }
    /* Check the YAML here too: errors then point at the user's file at once. */
    core_task_t *t = NULL;
    /* With the overrides, as the controller will check it: --env may fill an empty env. */
    int parsed = core_task_parse(text, len, file, &t, &err);
    if (parsed == 0)
        core_task_set_envs(t, envs);
    if (parsed < 0 || core_task_validate_job(t, &err) < 0) {
        fprintf(stderr, "%s\n", err ? err : "invalid task");
        free(err);
        core_task_free(t);
        free(text);
        goto out;
    }
    const char *jname = name ? name : t->name ? t->name : "sky-job";
    char question[256];
    snprintf(question, sizeof(question), "Launching the managed spot job '%s'. Proceed?", jname);
    if (!yes && !ctl_cli_confirm(question, true)) {
        printf("Aborted.\n");
        core_task_free(t);
        free(text);
        goto out;
    }
    core_task_free(t);
    char cwd[PATH_MAX], abs_path[PATH_MAX];
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "yaml", text);
    free(text);
    cJSON_AddStringToObject(req, "yaml_path", realpath(file, abs_path) ? abs_path : file);
    if (getcwd(cwd, sizeof(cwd)))
        cJSON_AddStringToObject(req, "cwd", cwd);
    if (name)
        cJSON_AddStringToObject(req, "name", name);
    cJSON_AddItemReferenceToObject(req, "envs", envs);
    ctl_cli_daemon_t d;
    if (connect_daemon(&d) != 0) {
        cJSON_Delete(req);
        goto out;
    }
    cJSON *resp = NULL;
    rc = call(&d, "POST", "/api/jobs", req, NULL, &resp);
    cJSON_Delete(req);
    if (rc < 0) {
        ctl_cli_daemon_free(&d);
        goto out;
    }
    long id = (long)jnum(resp, "job_id", 0);
    printf("Managed spot job '%s' (ID %ld) submitted.\n", jstr(resp, "name"), id);
    cJSON_Delete(resp);
    fflush(stdout);
    if (detach) {
        printf("To stream its logs: sky spot logs %ld\n", id);
        code = 0;
    } else {
        code = stream_logs(&d, id, false, true);
        if (code == 0)
            code = report_final(&d, id);
    }
    ctl_cli_daemon_free(&d);
out:
    cJSON_Delete(envs);
    return code;
}

/* ---------------------------------------------------------------- status */

static void fmt_dur(const cJSON *job, const char *key, const char *dash_key, char *out, size_t n)
{
    if (jtrue(job, dash_key))
        snprintf(out, n, "-");
    else
        core_fmt_duration(jnum(job, key, 0), out, n);
}

static int cmd_status(ctl_cli_t *cli, int argc, char **argv)
{
    bool all = false, json = false;
    const ctl_opt_t opts[] = {
        CTL_OPT_FLAG('a', "all", "every column, finished jobs too", &all),
        CTL_OPT_FLAG(0, "json", "print the controller's JSON", &json),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    if (!json) {
        printf("Fetching managed spot job status...\n");
        fflush(stdout);
    }
    ctl_cli_daemon_t d;
    if (connect_daemon(&d) != 0)
        return 1;
    cJSON *resp = fetch_jobs(&d, all);
    ctl_cli_daemon_free(&d);
    if (resp == NULL)
        return 1;
    if (json) {
        ctl_cli_print_json(stdout, resp);
        cJSON_Delete(resp);
        return 0;
    }
    static const char *hdr[] = {
        "ID",           "NAME",        "RESOURCES", "SUBMITTED", "TOT. DURATION",
        "JOB DURATION", "#RECOVERIES", "STATUS",    "STARTED",   "CLOUD",
        "REGION",       "ZONE",        "FAILURE"};
    size_t ncols = all ? 13 : 8;
    ctl_table_t *t = ctl_table_new(ncols, hdr);
    double now = core_now();
    const cJSON *job;
    cJSON_ArrayForEach(job, cJSON_GetObjectItemCaseSensitive(resp, "jobs"))
    {
        char id[32], sub[64], tot[64], dur[64], rec[32], started[64];
        snprintf(id, sizeof(id), "%.0f", jnum(job, "job_id", 0));
        double s = jnum(job, "submitted_at", -1);
        if (s > 0)
            core_fmt_ago(now - s, sub, sizeof(sub));
        else
            snprintf(sub, sizeof(sub), "-");
        fmt_dur(job, "total_duration", "total_dash", tot, sizeof(tot));
        fmt_dur(job, "job_duration", "job_duration_dash", dur, sizeof(dur));
        snprintf(rec, sizeof(rec), "%.0f", jnum(job, "recovery_count", 0));
        double st = jnum(job, "start_at", -1);
        if (st > 0)
            core_fmt_ago(now - st, started, sizeof(started));
        else
            snprintf(started, sizeof(started), "-");
        const char *fr = jstr(job, "failure_reason");
        const char *cells[] = {id,
                               jstr(job, "name"),
                               jstr(job, "resources"),
                               sub,
                               tot,
                               dur,
                               rec,
                               jstr(job, "status"),
                               started,
                               *jstr(job, "cloud") ? jstr(job, "cloud") : "-",
                               *jstr(job, "region") ? jstr(job, "region") : "-",
                               *jstr(job, "zone") ? jstr(job, "zone") : "-",
                               *fr ? fr : "-"};
        ctl_table_add_row(t, cells);
    }
    if (ctl_table_nrows(t) == 0) {
        printf("No in-progress managed spot jobs.\n");
    } else {
        printf("Managed spot jobs:\n");
        ctl_table_print(t, stdout);
    }
    ctl_table_free(t);
    cJSON_Delete(resp);
    return 0;
}

/* --------------------------------------------------------- job selection */

/*
 * The non-terminal jobs named <name> (with <cancellable>: not already CANCELLING),
 * newest first, as an array of ids; *latest gets the newest job of that name in any
 * status. Returns their count, or -1 after printing an error.
 */
static int ids_by_name(ctl_cli_daemon_t *d, const char *name, bool cancellable, long *ids, int max,
                       long *latest)
{
    cJSON *resp = fetch_jobs(d, true);
    if (resp == NULL)
        return -1;
    int n = 0;
    *latest = 0;
    const cJSON *job;
    cJSON_ArrayForEach(job, cJSON_GetObjectItemCaseSensitive(resp, "jobs"))
    {
        if (strcmp(jstr(job, "name"), name) != 0)
            continue;
        long id = (long)jnum(job, "job_id", 0);
        if (*latest == 0)
            *latest = id;
        ctl_job_status_t st = job_status(job);
        if ((cancellable ? ctl_job_status_is_processing(st) : !ctl_job_status_is_terminal(st)) &&
            n < max)
            ids[n++] = id;
    }
    cJSON_Delete(resp);
    return n;
}

static void print_ids(FILE *f, const long *ids, int n, const char *sep)
{
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%ld", i ? sep : "", ids[i]);
}

static void print_ambiguous(const char *name, const long *ids, int n)
{
    fprintf(stderr, "sky spot: Multiple running jobs found with name '%s'.\nJob IDs: [", name);
    print_ids(stderr, ids, n, ", ");
    fprintf(stderr, "]\n");
}

/* ------------------------------------------------------------------ logs */

static int cmd_logs(ctl_cli_t *cli, int argc, char **argv)
{
    const char *name = NULL;
    long id = 0;
    bool controller = false;
    int follow = 1;
    const ctl_opt_t opts[] = {
        CTL_OPT_STR('n', "name", "NAME", "the job of this name", &name),
        CTL_OPT_FLAG(0, "controller", "the job controller's log of the job", &controller),
        CTL_OPT_BOOL(0, "follow", "keep streaming until the job ends (default)", &follow),
        CTL_ARG_INT_OPT("JOB_ID", "the job (default: the latest)", &id, 1, INT_MAX),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    if (name && id)
        return ctl_cli_usage_error(cli, "Can only specify one of JOB_ID or --name.");
    ctl_cli_daemon_t d;
    if (connect_daemon(&d) != 0)
        return 1;
    int code = 1;
    if (name) {
        long ids[64], latest = 0;
        int n = ids_by_name(&d, name, false, ids, 64, &latest);
        if (n < 0)
            goto out;
        if (n > 1) {
            print_ambiguous(name, ids, n);
            goto out;
        }
        id = n == 1 ? ids[0] : latest;
        if (id == 0) {
            fail_msg("No job found with name '%s'.", name);
            goto out;
        }
    } else if (id == 0) {
        cJSON *resp = fetch_jobs(&d, true);
        if (resp == NULL)
            goto out;
        /* Newest first: the latest job is the first one. */
        const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(resp, "jobs"), 0);
        id = first ? (long)jnum(first, "job_id", 0) : 0;
        cJSON_Delete(resp);
        if (id == 0) {
            fail_msg("No managed spot job found.");
            goto out;
        }
    } else {
        cJSON *job = fetch_job(&d, id, false);
        if (job == NULL)
            goto out;
        cJSON_Delete(job);
    }
    code = stream_logs(&d, id, controller, follow);
    if (code == 0 && follow && !controller)
        code = report_final(&d, id);
out:
    ctl_cli_daemon_free(&d);
    return code;
}

/* ---------------------------------------------------------------- cancel */

static int cmd_cancel(ctl_cli_t *cli, int argc, char **argv)
{
    const char *name = NULL;
    bool all = false, yes = false;
    char **args = NULL;
    int nargs = 0;
    const ctl_opt_t opts[] = {
        CTL_OPT_STR('n', "name", "NAME", "the job of this name", &name),
        CTL_OPT_FLAG('a', "all", "every job not yet finished", &all),
        CTL_OPT_YES(&yes),
        CTL_ARG_REST_OPT("JOB_IDS", "the jobs to cancel", &args, &nargs),
        CTL_OPT_END,
    };
    long ids[256];
    int n_ids = 0;
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    if (nargs > (int)CORE_ARRAY_SIZE(ids))
        return ctl_cli_usage_error(cli, "too many job IDs (at most %zu)", CORE_ARRAY_SIZE(ids));
    for (; n_ids < nargs; n_ids++) {
        if ((rc = ctl_cli_int(cli, "JOB_ID", args[n_ids], 1, INT_MAX, &ids[n_ids])) != CTL_CLI_RUN)
            return rc;
    }
    if ((name != NULL) + (all ? 1 : 0) + (n_ids > 0) != 1)
        return ctl_cli_usage_error(cli, "Can only specify one of JOB_IDS or --name or --all.");
    ctl_cli_daemon_t d;
    if (connect_daemon(&d) != 0)
        return 1;
    int code = 1;
    if (name) {
        long latest = 0;
        n_ids = ids_by_name(&d, name, true, ids, 256, &latest);
        if (n_ids < 0)
            goto out;
        if (n_ids > 1) {
            print_ambiguous(name, ids, n_ids);
            goto out;
        }
        if (n_ids == 0) {
            printf("No running job found with name '%s'.\n", name);
            code = 0;
            goto out;
        }
    } else if (all) {
        cJSON *resp = fetch_jobs(&d, true);
        if (resp == NULL)
            goto out;
        const cJSON *job;
        cJSON_ArrayForEach(job, cJSON_GetObjectItemCaseSensitive(resp, "jobs"))
        {
            /* CANCELLING ones are on their way already. */
            if (ctl_job_status_is_processing(job_status(job)) && n_ids < 256)
                ids[n_ids++] = (long)jnum(job, "job_id", 0);
        }
        cJSON_Delete(resp);
        /* Oldest first, as the reference lists them. */
        for (int i = 0; i < n_ids / 2; i++) {
            long tmp = ids[i];
            ids[i] = ids[n_ids - 1 - i];
            ids[n_ids - 1 - i] = tmp;
        }
    }
    if (n_ids == 0) {
        printf("No job to cancel.\n");
        code = 0;
        goto out;
    }
    if (!yes) {
        char q[512];
        int o = snprintf(q, sizeof(q), "Cancelling managed spot jobs with IDs ");
        for (int i = 0; i < n_ids && o < (int)sizeof(q) - 32; i++)
            o += snprintf(q + o, sizeof(q) - (size_t)o, "%s%ld", i ? "," : "", ids[i]);
        snprintf(q + o, sizeof(q) - (size_t)o, ". Proceed?");
        if (!ctl_cli_confirm(q, true)) {
            printf("Aborted.\n");
            code = 0;
            goto out;
        }
    }
    long done[256];
    int n_done = 0;
    code = 0;
    for (int i = 0; i < n_ids; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/api/jobs/%ld/cancel", ids[i]);
        long status = 0;
        cJSON *resp = NULL;
        char *err = NULL;
        rc = ctl_cli_api(&d, "POST", path, NULL, API_TIMEOUT_MS, &status, &resp, &err);
        cJSON_Delete(resp);
        if (rc == 0) {
            done[n_done++] = ids[i];
        } else if (rc == CORE_EHTTP && status == 409) {
            /* Already ended: nothing to do, as the reference skips it. */
            printf("Job %ld is already in a terminal state. Skipped.\n", ids[i]);
        } else if (rc == CORE_EHTTP && status == 404) {
            fail_msg("Job %ld not found.", ids[i]);
            code = 1;
        } else {
            fail_msg("%s", err ? err : core_strerror(rc));
            code = 1;
        }
        free(err);
    }
    if (n_done == 0) {
        printf("No job to cancel.\n");
    } else if (n_done == 1) {
        printf("Job with ID %ld is scheduled to be cancelled.\n", done[0]);
    } else {
        printf("Jobs with IDs ");
        print_ids(stdout, done, n_done, ", ");
        printf(" are scheduled to be cancelled.\n");
    }
out:
    ctl_cli_daemon_free(&d);
    return code;
}

const ctl_cli_cmd_t ctl_cli_spot_cmds[] = {
    {"launch", "Launch a managed spot job from a task YAML", cmd_launch, NULL},
    {"status", "Show managed spot jobs", cmd_status, NULL},
    {"queue", "Same as status", cmd_status, NULL},
    {"logs", "Show a managed spot job's logs", cmd_logs, NULL},
    {"cancel", "Cancel managed spot jobs", cmd_cancel, NULL},
    {NULL, NULL, NULL, NULL},
};
