/*
 * Managed jobs, a client of the jobs controller daemon (sky-controller
 * --mode jobs, ctl_jobs.h): `sky jobs launch|queue|logs|cancel|dashboard`
 * with today's SkyPilot flags (reference managed_jobs.md §8.2), and the
 * seed-era `sky spot launch|status|queue|logs|cancel` (§8.1), whose jobs use
 * spot instances unless the YAML says `use_spot: false`. The two groups share
 * their handlers; a flavor says where they differ (name, messages, tables).
 * Exit codes: 0 success, 1 failure, 2 usage error; launch (unless detached)
 * and following logs end with the job's JobExitCode (0 SUCCEEDED, 100
 * failed, 101 not finished, 103 CANCELLED).
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "cli.h"
#include "cli_progress.h"
#include "cli_util.h"
#include "core/err.h"
#include "core/http.h"
#include "core/mem.h"
#include "core/spec.h"
#include "core/util.h"
#include "ctl_jobs_logic.h"

#define DAEMON_WAIT_MS 20000L
#define API_TIMEOUT_MS 30000L
/* How often a broken log stream is resumed before giving up (daemon restarts). */
#define STREAM_RETRIES 30
/* `sky jobs queue` shows this many jobs unless told (_NUM_MANAGED_JOBS_TO_SHOW). */
#define QUEUE_LIMIT 50
#define MAX_IDS     256

typedef struct flavor {
    const char *group; /* "sky jobs": message prefix */
    const char *noun;  /* "managed job" */
    const char *Noun;  /* "Managed job" */
    bool spot;         /* seed-era sky spot: spot unless the YAML says otherwise */
} flavor_t;

static const flavor_t JOBS = {"sky jobs", "managed job", "Managed job", false};
static const flavor_t SPOT = {"sky spot", "managed spot job", "Managed spot job", true};

/* ------------------------------------------------------------ API access */

static int connect_daemon(const flavor_t *fl, ctl_cli_daemon_t *d)
{
    return ctl_cli_connect(fl->group, "jobs", DAEMON_WAIT_MS, d);
}

/*
 * For questions (queue, logs, cancel): the controller if it runs or has work
 * it died with; 1 after an error; CTL_CLI_NONE when there is nothing to ask
 * (then nothing was started). A controller that stopped by itself had no
 * job left to run: say how to see the finished ones.
 */
static int connect_read(const flavor_t *fl, bool refresh, ctl_cli_daemon_t *d)
{
    int rc = ctl_cli_connect_read(fl->group, "jobs", "jobs.db", refresh, DAEMON_WAIT_MS, d);
    if (rc == CTL_CLI_STOPPED) {
        fprintf(stderr,
                "%s: the jobs controller has stopped (no job was left to run); its finished "
                "jobs are listed again with --refresh, which starts it\n",
                fl->group);
        rc = CTL_CLI_NONE;
    }
    return rc;
}

/* One API call; prints the error. */
static int call(const flavor_t *fl, ctl_cli_daemon_t *d, const char *method, const char *path,
                const cJSON *req, long *status, cJSON **resp)
{
    char *err = NULL;
    int rc = ctl_cli_api(d, method, path, req, API_TIMEOUT_MS, status, resp, &err);
    if (rc < 0) {
        ctl_cli_fail(fl->group, "%s", err ? err : core_strerror(rc));
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

static long job_id(const cJSON *job)
{
    return (long)jnum(job, "job_id", 0);
}

/* The job list (newest first); NULL after printing the error. */
static cJSON *fetch_jobs(const flavor_t *fl, ctl_cli_daemon_t *d, bool all)
{
    cJSON *resp = NULL;
    if (call(fl, d, "GET", all ? "/api/jobs?all=1" : "/api/jobs", NULL, NULL, &resp) < 0)
        return NULL;
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(resp, "jobs"))) {
        cJSON_Delete(resp);
        ctl_cli_fail(fl->group, "the jobs controller sent a malformed job list");
        return NULL;
    }
    return resp;
}

static cJSON *fetch_job(const flavor_t *fl, ctl_cli_daemon_t *d, long id, bool quiet)
{
    char path[64];
    snprintf(path, sizeof(path), "/api/jobs/%ld", id);
    cJSON *resp = NULL;
    char *err = NULL;
    int rc = ctl_cli_api(d, "GET", path, NULL, API_TIMEOUT_MS, NULL, &resp, &err);
    if (rc < 0) {
        if (!quiet)
            ctl_cli_fail(fl->group, "%s", err ? err : core_strerror(rc));
        free(err);
        return NULL;
    }
    return resp;
}

/* The user running this command: jobs are listed per user, as the reference does. */
static const char *user_name(void)
{
    const struct passwd *pw = getpwuid(getuid());
    const char *u = pw && pw->pw_name ? pw->pw_name : getenv("USER");
    return u ? u : "unknown";
}

/* A job of this user (jobs from before users were recorded count as everyone's). */
static bool is_mine(const cJSON *job)
{
    const char *u = jstr(job, "user");
    return !*u || strcmp(u, user_name()) == 0;
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
 * log) to <out>, resuming after a broken connection. Returns 0 when the
 * daemon ended the stream, 1 after printing an error.
 */
static int stream_logs(const flavor_t *fl, ctl_cli_daemon_t *d, long id, bool controller,
                       bool follow, FILE *out)
{
    counted_t cnt = {out, 0};
    cookie_io_functions_t io = {.write = counted_write};
    FILE *f = fopencookie(&cnt, "w", io);
    if (f == NULL)
        return ctl_cli_fail(fl->group, "cannot set up the log stream: %s", strerror(errno));
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
            fflush(out);
            ctl_cli_fail(fl->group, "%s", err ? err : core_strerror(rc));
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
static int report_final(const flavor_t *fl, ctl_cli_daemon_t *d, long id)
{
    ctl_job_status_t s = CTL_JOB_PENDING;
    cJSON *job = NULL;
    for (int tries = 0; tries < 100; tries++) {
        cJSON_Delete(job);
        job = fetch_job(fl, d, id, tries < 99);
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

/* 1 when no resource candidate asks for spot or on-demand: sky spot then picks spot. */
static bool spot_unsaid(const core_task_t *t)
{
    const core_resources_t *r = &t->resources;
    if (r->use_spot >= 0)
        return false;
    for (size_t i = 0; i < r->n_any_of; i++)
        if (r->any_of[i].use_spot >= 0)
            return false;
    return true;
}

static int launch(ctl_cli_t *cli, int argc, char **argv, const flavor_t *fl)
{
    const char *name = NULL, *recovery = NULL;
    char **entry = NULL;
    int nentry = 0;
    ctl_cli_env_t env = {0};
    ctl_cli_task_t flags = CTL_CLI_TASK_INIT;
    bool yes = false, detach = false;
    const ctl_opt_t opts[] = {
        CTL_OPT_STR('n', "name", "NAME", "the job's name (default: the YAML's, else sky-cmd)",
                    &name),
        CTL_OPT_STR(0, fl->spot ? "spot-recovery" : "job-recovery", "STRATEGY",
                    "recovery strategy: EAGER_NEXT_REGION (default) or FAILOVER", &recovery),
        CTL_OPT_YES(&yes),
        CTL_OPT_DETACH(&detach),
        CTL_OPTS_ENV(&env),
        CTL_OPTS_TASK(&flags),
        CTL_ARG_REST("ENTRYPOINT", "a task YAML, or a command to run", &entry, &nentry),
        CTL_OPT_END,
    };
    int code = ctl_cli_parse(cli, opts, argc, argv);
    if (code != CTL_CLI_RUN)
        return code;
    if (name && (name[0] == '\0' || strlen(name) > 128))
        return ctl_cli_usage_error(cli, "the job name must be 1 to 128 characters");
    cJSON *extra = cJSON_CreateObject();
    if (recovery)
        cJSON_AddStringToObject(extra, "job_recovery", recovery);
    ctl_cli_src_t src;
    code = ctl_cli_src_load(cli, fl->group, entry, nentry, &env, &flags, extra, &src);
    cJSON_Delete(extra);
    if (code != 0)
        goto out;
    code = 1;
    /* The seed's `sky spot launch` ran on spot: say so, where the YAML does not. */
    if (fl->spot && flags.use_spot < 0 && spot_unsaid(src.task)) {
        cJSON *res = cJSON_GetObjectItemCaseSensitive(src.overrides, "resources");
        if (res == NULL)
            res = cJSON_AddObjectToObject(src.overrides, "resources");
        cJSON_AddTrueToObject(res, "use_spot");
        core_task_free(src.task);
        src.task = NULL;
        char *err = NULL;
        if (core_task_parse_with(src.yaml, strlen(src.yaml), src.yaml_path ? entry[0] : NULL,
                                 src.envs, src.overrides, &src.task, &err) < 0) {
            fprintf(stderr, "%s\n", err);
            free(err);
            goto out;
        }
    }
    char *err = NULL;
    if (core_task_validate_job(src.task, &err) < 0) {
        fprintf(stderr, "%s\n", err ? err : "invalid task");
        free(err);
        goto out;
    }
    const char *jname = name ? name : src.task->name ? src.task->name : "sky-cmd";
    if (!yes) {
        printf("%s '%s' will be launched on (estimated):\n", fl->Noun, jname);
        if (ctl_cli_print_plan(stdout, fl->group, src.task) != 0)
            goto out;
        char *q = core_xasprintf("Launching the %s '%s'. Proceed?", fl->noun, jname);
        bool go = ctl_cli_confirm(q, true);
        free(q);
        if (!go) {
            printf("Aborted.\n");
            goto out;
        }
    }
    cJSON *req = cJSON_CreateObject();
    ctl_cli_src_to_json(&src, req);
    if (name)
        cJSON_AddStringToObject(req, "name", name);
    cJSON_AddStringToObject(req, "user", user_name());
    ctl_cli_daemon_t d;
    if (ctl_cli_cloud_up(fl->group) != 0 || connect_daemon(fl, &d) != 0) {
        cJSON_Delete(req);
        goto out;
    }
    cJSON *resp = NULL;
    int rc = call(fl, &d, "POST", "/api/jobs", req, NULL, &resp);
    cJSON_Delete(req);
    if (rc < 0) {
        ctl_cli_daemon_free(&d);
        goto out;
    }
    long id = job_id(resp);
    printf("%s '%s' (ID %ld) submitted.\n", fl->Noun, jstr(resp, "name"), id);
    cJSON_Delete(resp);
    fflush(stdout);
    if (detach || flags.async == 1) {
        printf("To stream its logs: %s logs %ld\n", fl->group, id);
        code = 0;
    } else {
        ctl_progress_wait_job(&d, id); /* on a terminal: until it runs */
        code = stream_logs(fl, &d, id, false, true, stdout);
        if (code == 0)
            code = report_final(fl, &d, id);
    }
    ctl_cli_daemon_free(&d);
out:
    ctl_cli_src_free(&src);
    return code;
}

static int jobs_launch(ctl_cli_t *cli, int argc, char **argv)
{
    return launch(cli, argc, argv, &JOBS);
}

static int spot_launch(ctl_cli_t *cli, int argc, char **argv)
{
    return launch(cli, argc, argv, &SPOT);
}

/* ----------------------------------------------------------------- queue */

static void fmt_dur(const cJSON *job, const char *key, const char *dash_key, char *out, size_t n)
{
    if (jtrue(job, dash_key))
        snprintf(out, n, "-");
    else
        core_fmt_duration(jnum(job, key, 0), out, n);
}

static void fmt_ago(const cJSON *job, const char *key, double now, char *out, size_t n)
{
    double t = jnum(job, key, -1);
    if (t > 0)
        core_fmt_ago(now - t, out, n);
    else
        snprintf(out, n, "-");
}

typedef struct queue_opts {
    bool skip_finished, all_users, refresh, json;
    bool fetch_all; /* else the controller's default: every unfinished job, the latest 50 */
    long limit;     /* 0: no limit */
} queue_opts_t;

/*
 * The jobs to show, newest first: fetched from the controller if there is
 * one to ask (none, and nothing started, when there is not), filtered by
 * user and status, at most <limit>. *total counts them before the limit.
 */
static cJSON *queue_jobs(const flavor_t *fl, const queue_opts_t *q, int *total)
{
    ctl_cli_daemon_t d;
    *total = 0;
    int rc = connect_read(fl, q->refresh, &d);
    if (rc == CTL_CLI_NONE)
        return cJSON_CreateArray();
    if (rc != 0)
        return NULL;
    cJSON *resp = fetch_jobs(fl, &d, q->fetch_all);
    ctl_cli_daemon_free(&d);
    if (resp == NULL)
        return NULL;
    cJSON *shown = cJSON_CreateArray();
    const cJSON *job;
    cJSON_ArrayForEach(job, cJSON_GetObjectItemCaseSensitive(resp, "jobs"))
    {
        if ((!q->all_users && !is_mine(job)) ||
            (q->skip_finished && ctl_job_status_is_terminal(job_status(job))))
            continue;
        if (q->limit <= 0 || *total < q->limit)
            cJSON_AddItemToArray(shown, cJSON_Duplicate(job, 1));
        (*total)++;
    }
    cJSON_Delete(resp);
    return shown;
}

/*
 * What queue and status begin with: "<fetching>" (not for --json), the jobs,
 * and --json's output. The jobs for a table, or NULL with *code the exit code.
 */
static cJSON *queue_begin(const flavor_t *fl, const queue_opts_t *q, const char *fetching,
                          int *total, int *code)
{
    if (!q->json) {
        printf("%s\n", fetching);
        fflush(stdout);
    }
    cJSON *jobs = queue_jobs(fl, q, total);
    *code = jobs ? 0 : 1;
    if (jobs && q->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddItemToObject(doc, "jobs", jobs);
        ctl_cli_print_json(stdout, doc);
        cJSON_Delete(doc);
        jobs = NULL;
    }
    return jobs;
}

/* "In progress tasks: 1 PENDING, 2 RUNNING" (sorted by status) or "No in-progress ...". */
static void print_in_progress(const cJSON *jobs, const char *none_msg)
{
    int counts[CTL_JOB_STATUS_COUNT] = {0};
    const cJSON *job;
    cJSON_ArrayForEach(job, jobs)
    {
        ctl_job_status_t s = job_status(job);
        if (!ctl_job_status_is_terminal(s))
            counts[s]++;
    }
    bool any = false;
    const char *names[CTL_JOB_STATUS_COUNT];
    size_t n = 0;
    for (int s = 0; s < CTL_JOB_STATUS_COUNT; s++)
        if (counts[s])
            names[n++] = ctl_job_status_name((ctl_job_status_t)s);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *tmp = names[j];
            names[j] = names[j - 1];
            names[j - 1] = tmp;
        }
    for (size_t i = 0; i < n; i++) {
        ctl_job_status_t s;
        ctl_job_status_parse(names[i], &s);
        printf("%s%d %s", any ? ", " : "In progress tasks: ", counts[s], names[i]);
        any = true;
    }
    printf("%s\n", any ? "" : none_msg);
}

/* `sky jobs queue`: the table of today's SkyPilot (utils.format_job_table). */
static int jobs_queue(ctl_cli_t *cli, int argc, char **argv)
{
    queue_opts_t q = {.fetch_all = true, .limit = QUEUE_LIMIT};
    bool verbose = false, all = false;
    const ctl_opt_t opts[] = {
        CTL_OPT_FLAG('v', "verbose", "more columns (STARTED, INFRA, DETAILS)", &verbose),
        CTL_OPT_INT('l', "limit", "N", "show the latest N jobs (default 50)", &q.limit, 1,
                    INT_MAX),
        CTL_OPT_FLAG('a', "all", "show every job (no limit)", &all),
        CTL_OPT_FLAG('r', "refresh", "start the jobs controller if it has stopped",
                     &q.refresh),
        CTL_OPT_FLAG('s', "skip-finished", "only pending and running jobs", &q.skip_finished),
        CTL_OPT_FLAG('u', "all-users", "jobs of every user, with a USER column", &q.all_users),
        CTL_OPT_FLAG(0, "json", "print the jobs as the controller's JSON", &q.json),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    if (all)
        q.limit = 0;
    int total;
    cJSON *jobs = queue_begin(&JOBS, &q, "Fetching managed job statuses...", &total, &rc);
    if (jobs == NULL)
        return rc;
    printf("Managed jobs%s\n", q.skip_finished ? " (showing in-progress jobs only)" : "");
    print_in_progress(jobs, "No in-progress managed jobs.");
    const char *hdr[16];
    size_t nh = 0;
    static const char *const base1[] = {"ID", "TASK", "NAME"};
    static const char *const base2[] = {"REQUESTED",    "SUBMITTED",   "TOT. DURATION",
                                        "JOB DURATION", "#RECOVERIES", "STATUS",
                                        "POOL"};
    static const char *const extra[] = {"STARTED", "INFRA", "DETAILS"};
    for (size_t i = 0; i < CORE_ARRAY_SIZE(base1); i++)
        hdr[nh++] = base1[i];
    if (q.all_users)
        hdr[nh++] = "USER";
    for (size_t i = 0; i < CORE_ARRAY_SIZE(base2); i++)
        hdr[nh++] = base2[i];
    for (size_t i = 0; verbose && i < CORE_ARRAY_SIZE(extra); i++)
        hdr[nh++] = extra[i];
    ctl_table_t *t = ctl_table_new(nh, hdr);
    double now = core_now();
    const cJSON *job;
    cJSON_ArrayForEach(job, jobs)
    {
        char id[32], sub[64], tot[64], dur[64], rec[32], started[64], infra[160], details[1024];
        snprintf(id, sizeof(id), "%ld", job_id(job));
        fmt_ago(job, "submitted_at", now, sub, sizeof(sub));
        fmt_dur(job, "total_duration", "total_dash", tot, sizeof(tot));
        fmt_dur(job, "job_duration", "job_duration_dash", dur, sizeof(dur));
        snprintf(rec, sizeof(rec), "%.0f", jnum(job, "recovery_count", 0));
        fmt_ago(job, "start_at", now, started, sizeof(started));
        const char *cloud = jstr(job, "cloud");
        if (*cloud)
            snprintf(infra, sizeof(infra), "%s (%s)", core_cloud_display_name(cloud),
                     *jstr(job, "zone") ? jstr(job, "zone") : jstr(job, "region"));
        else
            snprintf(infra, sizeof(infra), "-");
        const char *fr = jstr(job, "failure_reason");
        snprintf(details, sizeof(details), "%s%s", *fr ? "Failure: " : "-", fr);
        const char *cells[16];
        size_t nc = 0;
        cells[nc++] = id;
        cells[nc++] = "-";
        cells[nc++] = jstr(job, "name");
        if (q.all_users)
            cells[nc++] = *jstr(job, "user") ? jstr(job, "user") : "-";
        const char *rest[] = {jstr(job, "resources"), sub, tot, dur, rec, jstr(job, "status"),
                              "-",                    started, infra, details};
        for (size_t i = 0; i < CORE_ARRAY_SIZE(base2) + (verbose ? CORE_ARRAY_SIZE(extra) : 0);
             i++)
            cells[nc++] = rest[i];
        ctl_table_add_row(t, cells);
    }
    if (ctl_table_nrows(t) > 0)
        ctl_table_print(t, stdout);
    ctl_table_free(t);
    if (q.limit > 0 && total > q.limit)
        printf("Only showing the latest %ld managed jobs (use --limit to show more managed jobs "
               "or --all to show all managed jobs)\n",
               q.limit);
    cJSON_Delete(jobs);
    return 0;
}

/* `sky spot status|queue`: the seed's table. */
static int spot_status(ctl_cli_t *cli, int argc, char **argv)
{
    queue_opts_t q = {.all_users = true};
    bool all = false;
    const ctl_opt_t opts[] = {
        CTL_OPT_FLAG('a', "all", "every column, finished jobs too", &all),
        CTL_OPT_FLAG('s', "skip-finished", "only pending and running jobs", &q.skip_finished),
        CTL_OPT_FLAG('r', "refresh", "start the jobs controller if it has stopped",
                     &q.refresh),
        CTL_OPT_FLAG(0, "json", "print the controller's JSON", &q.json),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    q.fetch_all = all;
    int total;
    cJSON *jobs = queue_begin(&SPOT, &q, "Fetching managed spot job status...", &total, &rc);
    if (jobs == NULL)
        return rc;
    static const char *hdr[] = {
        "ID",           "NAME",        "RESOURCES", "SUBMITTED", "TOT. DURATION",
        "JOB DURATION", "#RECOVERIES", "STATUS",    "STARTED",   "CLOUD",
        "REGION",       "ZONE",        "FAILURE"};
    ctl_table_t *t = ctl_table_new(all ? 13 : 8, hdr);
    double now = core_now();
    const cJSON *job;
    cJSON_ArrayForEach(job, jobs)
    {
        char id[32], sub[64], tot[64], dur[64], rec[32], started[64];
        snprintf(id, sizeof(id), "%ld", job_id(job));
        fmt_ago(job, "submitted_at", now, sub, sizeof(sub));
        fmt_dur(job, "total_duration", "total_dash", tot, sizeof(tot));
        fmt_dur(job, "job_duration", "job_duration_dash", dur, sizeof(dur));
        snprintf(rec, sizeof(rec), "%.0f", jnum(job, "recovery_count", 0));
        fmt_ago(job, "start_at", now, started, sizeof(started));
        const char *cloud = jstr(job, "cloud");
        const char *cells[] = {id,
                               jstr(job, "name"),
                               jstr(job, "resources"),
                               sub,
                               tot,
                               dur,
                               rec,
                               jstr(job, "status"),
                               started,
                               *cloud ? core_cloud_display_name(cloud) : "-",
                               jstr(job, "region"),
                               jstr(job, "zone"),
                               jstr(job, "failure_reason")};
        ctl_table_add_row(t, cells);
    }
    if (ctl_table_nrows(t) == 0) {
        printf("No in-progress managed spot jobs.\n");
    } else {
        printf("Managed spot jobs:\n");
        ctl_table_print(t, stdout);
    }
    ctl_table_free(t);
    cJSON_Delete(jobs);
    return 0;
}

/* --------------------------------------------------------- job selection */

/*
 * The non-terminal jobs named <name> (with <cancellable>: not already CANCELLING),
 * newest first, as an array of ids; *latest gets the newest job of that name in any
 * status. Returns their count, or -1 after printing an error.
 */
static int ids_by_name(const flavor_t *fl, ctl_cli_daemon_t *d, const char *name,
                       bool cancellable, long *ids, int max, long *latest)
{
    cJSON *resp = fetch_jobs(fl, d, true);
    if (resp == NULL)
        return -1;
    int n = 0;
    *latest = 0;
    const cJSON *job;
    cJSON_ArrayForEach(job, cJSON_GetObjectItemCaseSensitive(resp, "jobs"))
    {
        if (strcmp(jstr(job, "name"), name) != 0)
            continue;
        long id = job_id(job);
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

static void print_ambiguous(const flavor_t *fl, const char *name, const long *ids, int n)
{
    fprintf(stderr, "%s: Multiple running jobs found with name '%s'.\nJob IDs: [", fl->group,
            name);
    print_ids(stderr, ids, n, ", ");
    fprintf(stderr, "]\n");
}

/* The job that -n NAME or JOB_ID names, or else the latest one; 0 after an error. */
static long pick_job(const flavor_t *fl, ctl_cli_daemon_t *d, const char *name, long id)
{
    if (name) {
        long ids[64], latest = 0;
        int n = ids_by_name(fl, d, name, false, ids, 64, &latest);
        if (n < 0)
            return 0;
        if (n > 1) {
            print_ambiguous(fl, name, ids, n);
            return 0;
        }
        id = n == 1 ? ids[0] : latest;
        if (id == 0)
            ctl_cli_fail(fl->group, "No job found with name '%s'.", name);
        return id;
    }
    if (id == 0) {
        cJSON *resp = fetch_jobs(fl, d, true);
        if (resp == NULL)
            return 0;
        /* Newest first: the latest job is the first one. */
        const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(resp, "jobs"), 0);
        id = first ? job_id(first) : 0;
        cJSON_Delete(resp);
        if (id == 0)
            ctl_cli_fail(fl->group, "No %s found.", fl->noun);
        return id;
    }
    cJSON *job = fetch_job(fl, d, id, false);
    cJSON_Delete(job);
    return job ? id : 0;
}

/* ------------------------------------------------------------------ logs */

/*
 * --sync-down: the job's log (or its controller log) into
 * $SKY_HOME/sky_logs/managed_jobs/job-<id>/, printed as "Job <id> logs: <path>".
 */
static int sync_down(const flavor_t *fl, ctl_cli_daemon_t *d, const long *ids, int n,
                     bool controller)
{
    int code = 0;
    for (int i = 0; i < n; i++) {
        char rel[96];
        snprintf(rel, sizeof(rel), "sky_logs/managed_jobs/job-%ld", ids[i]);
        char *dir = core_home_path(rel);
        char *path = core_xasprintf("%s/%s", dir, controller ? "controller.log" : "run.log");
        int rc = core_mkdir_p(dir, 0700);
        FILE *f = rc == 0 ? fopen(path, "w") : NULL;
        if (f == NULL) {
            code = ctl_cli_fail(fl->group, "cannot write %s: %s", path, strerror(errno));
        } else {
            rc = stream_logs(fl, d, ids[i], controller, false, f);
            if (fclose(f) != 0 || rc != 0)
                code = rc ? rc : ctl_cli_fail(fl->group, "cannot write %s", path);
            else
                printf("Job %ld logs%s: %s\n", ids[i], controller ? " (controller)" : "", path);
        }
        free(path);
        free(dir);
    }
    return code;
}

static int logs(ctl_cli_t *cli, int argc, char **argv, const flavor_t *fl)
{
    const char *name = NULL;
    long id = 0;
    bool controller = false, sync = false, refresh = false;
    int follow = 1;
    const ctl_opt_t opts[] = {
        CTL_OPT_STR('n', "name", "NAME", "the job of this name", &name),
        CTL_OPT_BOOL(0, "follow", "keep streaming until the job ends (default)", &follow),
        CTL_OPT_FLAG(0, "controller", "the job controller's log of the job (launches, recoveries)",
                     &controller),
        CTL_OPT_FLAG('s', "sync-down", "save the logs under $SKY_HOME/sky_logs/managed_jobs/ "
                     "(every listed job unless one is named)", &sync),
        CTL_OPT_FLAG('r', "refresh", "start the jobs controller if it has stopped", &refresh),
        CTL_ARG_INT_OPT("JOB_ID", "the job (default: the latest)", &id, 1, INT_MAX),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    if (name && id)
        return ctl_cli_usage_error(cli, "Can only specify one of JOB_ID or --name.");
    ctl_cli_daemon_t d;
    rc = connect_read(fl, refresh, &d);
    if (rc == CTL_CLI_NONE) {
        if (id)
            return ctl_cli_fail(fl->group, "Job %ld not found.", id);
        if (name)
            return ctl_cli_fail(fl->group, "No job found with name '%s'.", name);
        return ctl_cli_fail(fl->group, "No %s found.", fl->noun);
    }
    if (rc != 0)
        return 1;
    int code = 1;
    if (sync && !name && !id) {
        cJSON *resp = fetch_jobs(fl, &d, false);
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(resp, "jobs"), *job;
        long ids[MAX_IDS];
        int n = 0;
        cJSON_ArrayForEach(job, list)
        {
            if (n < MAX_IDS)
                ids[n++] = job_id(job);
        }
        cJSON_Delete(resp);
        if (resp != NULL)
            code = n ? sync_down(fl, &d, ids, n, controller)
                     : ctl_cli_fail(fl->group, "No %s found.", fl->noun);
        goto out;
    }
    if ((id = pick_job(fl, &d, name, id)) == 0)
        goto out;
    if (sync) {
        code = sync_down(fl, &d, &id, 1, controller);
        goto out;
    }
    code = stream_logs(fl, &d, id, controller, follow, stdout);
    if (code == 0 && follow && !controller)
        code = report_final(fl, &d, id);
out:
    ctl_cli_daemon_free(&d);
    return code;
}

static int jobs_logs(ctl_cli_t *cli, int argc, char **argv)
{
    return logs(cli, argc, argv, &JOBS);
}

static int spot_logs(ctl_cli_t *cli, int argc, char **argv)
{
    return logs(cli, argc, argv, &SPOT);
}

/* ---------------------------------------------------------------- cancel */

/* The processing jobs (CANCELLING ones are on their way already), oldest first. */
static int all_cancellable(const flavor_t *fl, ctl_cli_daemon_t *d, bool all_users, long *ids)
{
    cJSON *resp = fetch_jobs(fl, d, true);
    if (resp == NULL)
        return -1;
    int n = 0;
    const cJSON *job;
    cJSON_ArrayForEach(job, cJSON_GetObjectItemCaseSensitive(resp, "jobs"))
    {
        if (ctl_job_status_is_processing(job_status(job)) && (all_users || is_mine(job)) &&
            n < MAX_IDS)
            ids[n++] = job_id(job);
    }
    cJSON_Delete(resp);
    for (int i = 0; i < n / 2; i++) {
        long tmp = ids[i];
        ids[i] = ids[n - 1 - i];
        ids[n - 1 - i] = tmp;
    }
    return n;
}

static int cancel(ctl_cli_t *cli, int argc, char **argv, const flavor_t *fl)
{
    const char *name = NULL;
    bool all = false, all_users = false, yes = false;
    char **args = NULL;
    int nargs = 0;
    const ctl_opt_t jobs_opts[] = {
        CTL_OPT_STR('n', "name", "NAME", "the job of this name", &name),
        CTL_OPT_FLAG('a', "all", "every job of yours not yet finished", &all),
        CTL_OPT_FLAG('u', "all-users", "every job not yet finished, of every user", &all_users),
        CTL_OPT_YES(&yes),
        CTL_ARG_REST_OPT("JOB_IDS", "the jobs to cancel", &args, &nargs),
        CTL_OPT_END,
    };
    const ctl_opt_t spot_opts[] = {
        CTL_OPT_STR('n', "name", "NAME", "the job of this name", &name),
        CTL_OPT_FLAG('a', "all", "every job not yet finished", &all),
        CTL_OPT_YES(&yes),
        CTL_ARG_REST_OPT("JOB_IDS", "the jobs to cancel", &args, &nargs),
        CTL_OPT_END,
    };
    const ctl_opt_t *opts = fl->spot ? spot_opts : jobs_opts;
    long ids[MAX_IDS];
    int n_ids = 0;
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    if (nargs > MAX_IDS)
        return ctl_cli_usage_error(cli, "too many job IDs (at most %d)", MAX_IDS);
    for (; n_ids < nargs; n_ids++) {
        if ((rc = ctl_cli_int(cli, "JOB_ID", args[n_ids], 1, INT_MAX, &ids[n_ids])) != CTL_CLI_RUN)
            return rc;
    }
    if ((name != NULL) + (all || all_users) + (n_ids > 0) != 1)
        return ctl_cli_usage_error(cli, fl->spot
                                            ? "Can only specify one of JOB_IDS or --name or --all."
                                            : "Can only specify one of JOB_IDS, --name, or "
                                              "--all/--all-users.");
    ctl_cli_daemon_t d;
    rc = connect_read(fl, false, &d);
    if (rc == CTL_CLI_NONE) {
        if (name)
            printf("No running job found with name '%s'.\n", name);
        else if (n_ids)
            return ctl_cli_fail(fl->group, "Job %ld not found.", ids[0]);
        else
            printf("No job to cancel.\n");
        return 0;
    }
    if (rc != 0)
        return 1;
    int code = 1;
    if (name) {
        long latest = 0;
        n_ids = ids_by_name(fl, &d, name, true, ids, MAX_IDS, &latest);
        if (n_ids < 0)
            goto out;
        if (n_ids > 1) {
            print_ambiguous(fl, name, ids, n_ids);
            goto out;
        }
        if (n_ids == 0) {
            printf("No running job found with name '%s'.\n", name);
            code = 0;
            goto out;
        }
    } else if (all || all_users) {
        if ((n_ids = all_cancellable(fl, &d, all_users, ids)) < 0)
            goto out;
    }
    if (n_ids == 0) {
        printf("No job to cancel.\n");
        code = 0;
        goto out;
    }
    if (!yes) {
        char q[512];
        int o = snprintf(q, sizeof(q), "Cancelling %ss with IDs ", fl->noun);
        for (int i = 0; i < n_ids && o < (int)sizeof(q) - 32; i++)
            o += snprintf(q + o, sizeof(q) - (size_t)o, "%s%ld", i ? "," : "", ids[i]);
        snprintf(q + o, sizeof(q) - (size_t)o, ". Proceed?");
        if (!ctl_cli_confirm(q, true)) {
            printf("Aborted.\n");
            code = 0;
            goto out;
        }
    }
    long done[MAX_IDS];
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
            code = ctl_cli_fail(fl->group, "Job %ld not found.", ids[i]);
        } else {
            code = ctl_cli_fail(fl->group, "%s", err ? err : core_strerror(rc));
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

static int jobs_cancel(ctl_cli_t *cli, int argc, char **argv)
{
    return cancel(cli, argc, argv, &JOBS);
}

static int spot_cancel(ctl_cli_t *cli, int argc, char **argv)
{
    return cancel(cli, argc, argv, &SPOT);
}

/* ------------------------------------------------------------- dashboard */

/*
 * `sky jobs dashboard`: a read-only web page of the jobs on loopback, as the
 * seed-era `sky spot dashboard` forwarded the controller's Flask dashboard.
 * The page asks the controller at each load (and never starts it); the
 * controller's token stays in this process.
 */
typedef struct dash {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    core_http_server_t *server;
} dash_t;

static void html_put(char **buf, size_t *len, const char *s)
{
    size_t n = strlen(s);
    *buf = core_xrealloc(*buf, *len + n + 1);
    memcpy(*buf + *len, s, n + 1);
    *len += n;
}

static void html_text(char **buf, size_t *len, const char *s)
{
    for (; *s; s++) {
        char one[2] = {*s, '\0'};
        html_put(buf, len,
                 *s == '<'   ? "&lt;"
                 : *s == '>' ? "&gt;"
                 : *s == '&' ? "&amp;"
                 : *s == '"' ? "&quot;"
                             : one);
    }
}

static void dash_page(core_http_conn_t *c)
{
    char *page = NULL;
    size_t len = 0;
    html_put(&page, &len,
             "<!doctype html><html><head><meta charset=\"utf-8\">"
             "<meta http-equiv=\"refresh\" content=\"5\"><title>Managed jobs</title>"
             "<style>body{font-family:sans-serif}td,th{padding:2px 10px;text-align:left}"
             "</style></head><body><h1>Managed jobs</h1>\n");
    ctl_cli_daemon_t d;
    cJSON *resp = NULL;
    char *err = NULL;
    if (ctl_cli_daemon_find("jobs", &d) != 0) {
        html_put(&page, &len, "<p>The jobs controller is not running: no managed job is in "
                              "progress.</p>\n");
    } else if (ctl_cli_api(&d, "GET", "/api/jobs?all=1", NULL, API_TIMEOUT_MS, NULL, &resp,
                           &err) < 0) {
        html_put(&page, &len, "<p>");
        html_text(&page, &len, err ? err : "the jobs controller did not answer");
        html_put(&page, &len, "</p>\n");
    } else {
        static const char *const cols[] = {"ID",       "NAME",   "RESOURCES", "SUBMITTED",
                                           "DURATION", "#RECOVERIES", "STATUS",  "FAILURE"};
        html_put(&page, &len, "<table><tr>");
        for (size_t i = 0; i < CORE_ARRAY_SIZE(cols); i++) {
            html_put(&page, &len, "<th>");
            html_put(&page, &len, cols[i]);
            html_put(&page, &len, "</th>");
        }
        html_put(&page, &len, "</tr>\n");
        double now = core_now();
        const cJSON *job;
        cJSON_ArrayForEach(job, cJSON_GetObjectItemCaseSensitive(resp, "jobs"))
        {
            char id[32], sub[64], dur[64], rec[32];
            snprintf(id, sizeof(id), "%ld", job_id(job));
            fmt_ago(job, "submitted_at", now, sub, sizeof(sub));
            fmt_dur(job, "job_duration", "job_duration_dash", dur, sizeof(dur));
            snprintf(rec, sizeof(rec), "%.0f", jnum(job, "recovery_count", 0));
            const char *cells[] = {jstr(job, "name"), jstr(job, "resources"), sub, dur, rec,
                                   jstr(job, "status"), jstr(job, "failure_reason")};
            html_put(&page, &len, "<tr><td><a href=\"/jobs/");
            html_put(&page, &len, id);
            html_put(&page, &len, "/logs\">");
            html_put(&page, &len, id);
            html_put(&page, &len, "</a></td>");
            for (size_t i = 0; i < CORE_ARRAY_SIZE(cells); i++) {
                html_put(&page, &len, "<td>");
                html_text(&page, &len, *cells[i] ? cells[i] : "-");
                html_put(&page, &len, "</td>");
            }
            html_put(&page, &len, "</tr>\n");
        }
        html_put(&page, &len, "</table>\n");
    }
    html_put(&page, &len, "</body></html>\n");
    core_http_respond(c, 200, "text/html; charset=utf-8", page, len);
    free(page);
    free(err);
    cJSON_Delete(resp);
    ctl_cli_daemon_free(&d);
}

static void dash_logs(core_http_conn_t *c, long id)
{
    ctl_cli_daemon_t d;
    if (ctl_cli_daemon_find("jobs", &d) != 0) {
        core_http_respond(c, 503, "text/plain", "the jobs controller is not running\n", 35);
        return;
    }
    char *url = core_xasprintf("%s/api/jobs/%ld/logs?follow=0", d.base_url, id);
    core_http_resp_t r = {0};
    int rc = core_http_call("GET", url, d.token, NULL, API_TIMEOUT_MS, &r);
    if (rc < 0)
        core_http_respond(c, 502, "text/plain", "the jobs controller did not answer\n", 35);
    else
        core_http_respond(c, r.status == 200 ? 200 : 404, "text/plain; charset=utf-8", r.body,
                          r.len);
    core_http_resp_free(&r);
    free(url);
    ctl_cli_daemon_free(&d);
}

static void dash_handler(core_http_conn_t *c, const core_http_req_t *req, void *ud)
{
    (void)ud;
    long id = 0;
    int used = 0;
    if (strcmp(req->method, "GET") != 0)
        core_http_respond_error(c, 405, "method not allowed");
    else if (strcmp(req->path, "/") == 0)
        dash_page(c);
    else if (sscanf(req->path, "/jobs/%ld/logs%n", &id, &used) == 1 && used > 0 &&
             req->path[used] == '\0' && id > 0)
        dash_logs(c, id);
    else
        core_http_respond_error(c, 404, "not found");
}

static void dash_stop(uv_signal_t *h, int signum)
{
    (void)signum;
    dash_t *ds = h->data;
    core_http_server_close(ds->server);
    uv_close((uv_handle_t *)&ds->sigint, NULL);
    uv_close((uv_handle_t *)&ds->sigterm, NULL);
}

static int jobs_dashboard(ctl_cli_t *cli, int argc, char **argv)
{
    long port = 0;
    const ctl_opt_t opts[] = {
        CTL_OPT_INT('p', "port", "PORT", "local port of the page (default: a free one)", &port, 0,
                    65535),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    dash_t ds;
    memset(&ds, 0, sizeof(ds));
    uv_loop_init(&ds.loop);
    core_http_server_opts_t so = {0};
    rc = core_http_server_start(&ds.loop, "127.0.0.1", (int)port, &so, dash_handler, &ds,
                                &ds.server);
    if (rc < 0) {
        uv_loop_close(&ds.loop);
        return ctl_cli_fail("sky jobs", "cannot listen on 127.0.0.1:%ld: %s", port,
                            core_strerror(rc));
    }
    uv_signal_init(&ds.loop, &ds.sigint);
    uv_signal_init(&ds.loop, &ds.sigterm);
    ds.sigint.data = ds.sigterm.data = &ds;
    uv_signal_start(&ds.sigint, dash_stop, SIGINT);
    uv_signal_start(&ds.sigterm, dash_stop, SIGTERM);
    printf("Managed jobs dashboard: http://127.0.0.1:%d (Press Ctrl+C to stop.)\n",
           core_http_server_port(ds.server));
    fflush(stdout);
    uv_run(&ds.loop, UV_RUN_DEFAULT);
    uv_loop_close(&ds.loop);
    return 0;
}

const ctl_cli_cmd_t ctl_cli_jobs_cmds[] = {
    {"launch", "Launch a managed job from a task YAML or a command", jobs_launch, NULL},
    {"queue", "Show managed jobs", jobs_queue, NULL},
    {"logs", "Tail or sync down a managed job's logs", jobs_logs, NULL},
    {"cancel", "Cancel managed jobs", jobs_cancel, NULL},
    {"dashboard", "Serve a web page of the managed jobs on this machine", jobs_dashboard, NULL},
    {NULL, NULL, NULL, NULL},
};

const ctl_cli_cmd_t ctl_cli_spot_cmds[] = {
    {"launch", "Launch a managed spot job from a task YAML or a command", spot_launch, NULL},
    {"status", "Show managed spot jobs", spot_status, NULL},
    {"queue", "Same as status", spot_status, NULL},
    {"logs", "Show a managed spot job's logs", spot_logs, NULL},
    {"cancel", "Cancel managed spot jobs", spot_cancel, NULL},
    {NULL, NULL, NULL, NULL},
};
