/*
 * Unmanaged tasks, the baseline that replicas and managed jobs build on:
 * `sky launch|exec|status|down|logs`, each with its options in its table.
 * A cluster is one instance of the local cloud running sky-agent; the CLI
 * keeps its record in $SKY_HOME/clusters.db.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_progress.h"
#include "cli_util.h"
#include "core/agent.h"
#include "core/catalog.h"
#include "core/err.h"
#include "core/mem.h"
#include "core/prov.h"
#include "core/prov_registry.h"
#include "core/spec.h"
#include "core/store.h"
#include "core/taskrun.h"
#include "core/util.h"

/* sky launch/exec exit codes follow the reference's JobExitCode. */
#define EXIT_JOB_FAILED 100
#define EXIT_JOB_CANCELLED 103

typedef struct cluster {
    char name[128];
    char status[16]; /* INIT while launching, UP once the agent answers */
    char label[128];
    double launched_at;
    core_instance_t inst;
} cluster_t;

/* Version 1: the schema as it was before versions. */
static const core_store_step_t db_steps[] = {
    {"CREATE TABLE IF NOT EXISTS clusters ("
     " name TEXT PRIMARY KEY, status TEXT NOT NULL, resources TEXT, launched_at REAL,"
     " instance_id TEXT, cloud TEXT, region TEXT, zone TEXT, instance_type TEXT,"
     " spot INTEGER, ip TEXT, agent_port INTEGER, port_offset INTEGER, price REAL);",
     NULL},
};

#define DB_COLS                                                                                    \
    "name, status, resources, launched_at, instance_id, cloud, region, zone, instance_type,"      \
    " spot, ip, agent_port, port_offset, price"

static int db_open(core_store_t **out)
{
    static const core_store_schema_t schema = {"cluster database", db_steps,
                                               CORE_ARRAY_SIZE(db_steps), NULL};
    char *path = core_home_path("clusters.db"), *err = NULL;
    int rc = core_store_open(path, &schema, out, &err);
    free(path);
    if (rc < 0) {
        fprintf(stderr, "sky: %s\n", err ? err : "cannot open the cluster database");
        free(err);
        return -EIO;
    }
    return 0;
}

static int db_put(core_store_t *db, const cluster_t *c)
{
    sqlite3_stmt *st = core_store_prepare(
        db, "INSERT OR REPLACE INTO clusters (" DB_COLS ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,"
            "?10,?11,?12,?13,?14)");
    if (st == NULL)
        return -EIO;
    const core_instance_t *i = &c->inst;
    sqlite3_bind_text(st, 1, c->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->status, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, c->label, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, c->launched_at);
    sqlite3_bind_text(st, 5, i->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, i->cloud, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, i->region, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, i->zone, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, i->instance_type, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 10, i->spot);
    sqlite3_bind_text(st, 11, i->ip, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 12, i->agent_port);
    sqlite3_bind_int(st, 13, i->port_offset);
    sqlite3_bind_double(st, 14, i->price);
    return core_store_run(db, st) < 0 ? -EIO : 0;
}

static void row_to_cluster(sqlite3_stmt *st, cluster_t *c)
{
    memset(c, 0, sizeof(*c));
    core_store_col_text(st, 0, c->name, sizeof(c->name));
    core_store_col_text(st, 1, c->status, sizeof(c->status));
    core_store_col_text(st, 2, c->label, sizeof(c->label));
    c->launched_at = sqlite3_column_double(st, 3);
    core_instance_t *i = &c->inst;
    core_store_col_text(st, 4, i->id, sizeof(i->id));
    core_store_col_text(st, 5, i->cloud, sizeof(i->cloud));
    core_store_col_text(st, 6, i->region, sizeof(i->region));
    core_store_col_text(st, 7, i->zone, sizeof(i->zone));
    core_store_col_text(st, 8, i->instance_type, sizeof(i->instance_type));
    i->spot = sqlite3_column_int(st, 9);
    core_store_col_text(st, 10, i->ip, sizeof(i->ip));
    i->agent_port = sqlite3_column_int(st, 11);
    i->port_offset = sqlite3_column_int(st, 12);
    i->price = sqlite3_column_double(st, 13);
}

/* 0 and *c filled, or -ENOENT. */
static int db_get(core_store_t *db, const char *name, cluster_t *c)
{
    sqlite3_stmt *st = core_store_prepare(db, "SELECT " DB_COLS " FROM clusters WHERE name = ?1");
    if (st == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int r = core_store_step(db, st);
    if (r == 1) {
        row_to_cluster(st, c);
        core_store_reset(st);
        return 0;
    }
    return r < 0 ? -EIO : -ENOENT;
}

static int db_del(core_store_t *db, const char *name)
{
    sqlite3_stmt *st = core_store_prepare(db, "DELETE FROM clusters WHERE name = ?1");
    if (st == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    return core_store_run(db, st) < 0 ? -EIO : 0;
}

static int print_chunk(const char *data, size_t len, void *arg)
{
    (void)arg;
    fwrite(data, 1, len, stdout);
    fflush(stdout);
    return 0;
}

/*
 * Follows the task's logs until it ends, then reports its final status.
 * Returns the CLI exit code.
 */
static int follow_task(const cluster_t *c, int task_id)
{
    const core_instance_t *i = &c->inst;
    int port = i->agent_port;
    int r = core_agent_logs(i->ip, port, NULL, task_id, 1, -1, print_chunk, NULL);
    if (r < 0)
        fprintf(stderr, "sky: log stream ended: %s\n", core_strerror(r));
    core_agent_task_t t;
    /* The log stream ends when the task does; the status may lag a moment. */
    for (int tries = 0; tries < 50; tries++) {
        r = core_agent_task_get(i->ip, port, NULL, task_id, &t);
        if (r < 0)
            break;
        if (core_agent_status_is_terminal(t.status))
            break;
        core_agent_task_free(&t);
        usleep(100000);
    }
    if (r < 0) {
        fprintf(stderr, "sky: cannot read the task's status on %s: %s\n", c->name,
                core_strerror(r));
        return 1;
    }
    int code = t.status == CORE_AGENT_SUCCEEDED   ? 0
               : t.status == CORE_AGENT_CANCELLED ? EXIT_JOB_CANCELLED
                                                  : EXIT_JOB_FAILED;
    printf("Task %d on cluster '%s' finished: %s", task_id, c->name,
           core_agent_status_name(t.status));
    if (t.has_exit_code && t.status != CORE_AGENT_SUCCEEDED)
        printf(" (exit code %d)", t.exit_code);
    printf(".\n");
    core_agent_task_free(&t);
    return code;
}

/* Submits <t> to the cluster's agent with the SKYPILOT_* variables set. */
static int submit(const cluster_t *c, const core_task_t *t, int *task_id)
{
    const core_instance_t *i = &c->inst;
    cJSON *envs = cJSON_CreateObject();
    char id[256], ts[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%d-%H-%M-%S", &tm);
    snprintf(id, sizeof(id), "sky-%s_%s", ts, c->name);
    cJSON_AddStringToObject(envs, "SKYPILOT_TASK_ID", id);
    cJSON_AddStringToObject(envs, "SKYPILOT_NODE_RANK", "0");
    cJSON_AddStringToObject(envs, "SKYPILOT_NUM_NODES", "1");
    cJSON_AddStringToObject(envs, "SKYPILOT_NODE_IPS", i->ip);
    cJSON_AddStringToObject(envs, "SKYPILOT_NUM_GPUS_PER_NODE", "0");
    char *info = core_xasprintf(
        "{\"cluster_name\":\"%s\",\"cloud\":\"%s\",\"region\":\"%s\",\"zone\":\"%s\"}", c->name,
        i->cloud, i->region, i->zone);
    cJSON_AddStringToObject(envs, "SKYPILOT_CLUSTER_INFO", info);
    free(info);
    char *err = NULL;
    char cwd[PATH_MAX];
    core_task_req_opts_t o = {
        .cwd = getcwd(cwd, sizeof(cwd)) ? cwd : NULL, .extra_envs = envs, .check_sources = 1};
    cJSON *job = core_task_agent_json(t, &o, &err);
    cJSON_Delete(envs);
    if (job == NULL) {
        fprintf(stderr, "sky: %s\n", err);
        free(err);
        return -EINVAL;
    }
    int r = core_agent_submit(i->ip, i->agent_port, NULL, job, task_id);
    cJSON_Delete(job);
    if (r < 0)
        fprintf(stderr, "sky: submitting the task to '%s' (%s) failed: %s\n", c->name, i->ip,
                core_strerror(r));
    return r;
}

static void default_cluster_name(char *out, size_t n)
{
    char hex[5];
    ctl_random_hex(hex, 4);
    snprintf(out, n, "sky-%s", hex);
}

static int provision(core_store_t *db, core_task_t *t, cluster_t *c)
{
    core_catalog_t *cat = NULL;
    core_candidate_t *cands = NULL;
    size_t n = 0, chosen = 0;
    core_prov_registry_t *provs = NULL;
    core_prov_t *def = NULL;
    char *err = NULL;
    int r;
    if ((r = core_catalog_load(NULL, &cat, &err)) < 0)
        goto fail;
    if ((r = core_catalog_resolve(cat, &t->resources, &cands, &n, &err)) < 0)
        goto fail;
    if ((r = core_prov_registry_new(NULL, 0, &provs)) < 0 ||
        (r = core_prov_registry_get(provs, cands[0].cloud, &def, NULL)) < 0) {
        err = core_xasprintf("cannot reach the local cloud: %s", core_strerror(r));
        goto fail;
    }
    snprintf(c->status, sizeof(c->status), "INIT");
    c->launched_at = core_now();
    core_candidate_label(&cands[0], c->label, sizeof(c->label));
    db_put(db, c);
    printf("Launching cluster '%s' (cheapest of %zu candidates: %s %s %s, $%.3f/h)...\n", c->name,
           n, cands[0].cloud, cands[0].zone[0] ? cands[0].zone : cands[0].region,
           cands[0].instance_type, cands[0].price);
    fflush(stdout);
    char owner[160];
    snprintf(owner, sizeof(owner), "cluster:%s", c->name);
    ctl_progress_t prog;
    ctl_progress_begin(&prog, stdout); /* a live line on a terminal only */
    ctl_progress_set(&prog, "Cluster '%s': provisioning", c->name);
    r = core_prov_registry_launch(provs, cands, n, NULL, owner, &c->inst, &chosen, &err);
    ctl_progress_end(&prog);
    if (r < 0) {
        db_del(db, c->name);
        goto fail;
    }
    core_candidate_label(&cands[chosen], c->label, sizeof(c->label));
    snprintf(c->status, sizeof(c->status), "UP");
    db_put(db, c);
    printf("Cluster '%s' is UP: %s in %s/%s (%s%s), IP %s.\n", c->name, c->inst.id,
           c->inst.region, c->inst.zone, c->inst.instance_type, c->inst.spot ? ", spot" : "",
           c->inst.ip);
fail:
    if (r < 0)
        fprintf(stderr, "sky: %s\n", err ? err : core_strerror(r));
    free(err);
    free(cands);
    core_catalog_free(cat);
    core_prov_registry_free(provs);
    return r;
}

/*
 * Shared by launch (cluster may be new) and exec (cluster must exist): runs
 * <t> (the caller's) on cluster <name>. <entry> names the task in hints.
 */
static int launch_or_exec(const char *name, core_task_t *t, const char *entry, bool detach,
                          int is_exec)
{
    core_store_t *db = NULL;
    if (db_open(&db) < 0)
        return 1;
    cluster_t c;
    memset(&c, 0, sizeof(c));
    int code = 1;
    int have = db_get(db, name, &c) == 0 && strcmp(c.status, "UP") == 0;
    if (have) {
        /* Reuse only a live instance; a preempted one is relaunched. */
        core_prov_t *prov = NULL;
        core_instance_t now;
        if (core_prov_open(c.inst.cloud, &prov, NULL) == 0 &&
            core_prov_describe(prov, c.inst.id, &now) == 0 && now.state == CORE_INST_RUNNING) {
            if (!is_exec)
                printf("Cluster '%s' is UP; running the task on it.\n", name);
        } else {
            have = 0;
        }
        core_prov_destroy(prov);
    }
    if (!have && is_exec) {
        fprintf(stderr, "sky: cluster '%s' is not UP; use sky launch -c %s %s\n", name, name,
                entry);
        goto out;
    }
    if (!have) {
        if (c.inst.id[0]) {
            core_prov_t *prov = NULL;
            if (core_prov_open(c.inst.cloud, &prov, NULL) == 0)
                core_prov_terminate(prov, c.inst.id);
            core_prov_destroy(prov);
        }
        memset(&c, 0, sizeof(c));
        snprintf(c.name, sizeof(c.name), "%s", name);
        if (provision(db, t, &c) < 0)
            goto out;
    }
    int task_id = 0;
    if (submit(&c, t, &task_id) < 0)
        goto out;
    printf("Submitted task %d to cluster '%s'.\n", task_id, name);
    fflush(stdout);
    if (detach) {
        printf("Logs: sky logs %s %d\n", name, task_id);
        code = 0;
        goto out;
    }
    code = follow_task(&c, task_id);
out:
    core_store_close(db);
    return code;
}

static const char *state_to_status(const cluster_t *c, const core_instance_t *live, int found)
{
    if (strcmp(c->status, "UP") != 0)
        return c->status;
    if (!found)
        return "TERMINATED";
    if (live->state == CORE_INST_RUNNING)
        return "UP";
    return core_inst_state_name(live->state);
}

int ctl_cli_status(ctl_cli_t *cli, int argc, char **argv)
{
    bool json = false;
    const ctl_opt_t opts[] = {
        CTL_OPT_FLAG(0, "json", "print the clusters as JSON", &json),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    core_store_t *db = NULL;
    if (db_open(&db) < 0)
        return 1;
    core_prov_registry_t *provs = NULL;
    core_prov_t *def = NULL;
    if (core_prov_registry_new(NULL, 0, &provs) == 0)
        core_prov_registry_get(provs, NULL, &def, NULL);
    sqlite3_stmt *st =
        core_store_prepare(db, "SELECT " DB_COLS " FROM clusters ORDER BY launched_at");
    static const char *hdr[] = {"NAME", "LAUNCHED", "RESOURCES", "REGION", "ZONE", "STATUS"};
    ctl_table_t *tab = ctl_table_new(6, hdr);
    cJSON *arr = cJSON_CreateArray();
    while (st && core_store_step(db, st) == 1) {
        cluster_t c;
        row_to_cluster(st, &c);
        core_instance_t live;
        memset(&live, 0, sizeof(live));
        int found = def && c.inst.id[0] &&
                    core_prov_registry_describe(provs, c.inst.cloud, c.inst.id, &live) == 0;
        const char *status = state_to_status(&c, &live, found);
        char ago[64];
        core_fmt_ago(core_now() - c.launched_at, ago, sizeof(ago));
        const char *row[] = {c.name, ago, c.label, c.inst.region, c.inst.zone, status};
        ctl_table_add_row(tab, row);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", c.name);
        cJSON_AddNumberToObject(o, "launched_at", c.launched_at);
        cJSON_AddStringToObject(o, "resources", c.label);
        cJSON_AddStringToObject(o, "cloud", c.inst.cloud);
        cJSON_AddStringToObject(o, "region", c.inst.region);
        cJSON_AddStringToObject(o, "zone", c.inst.zone);
        cJSON_AddStringToObject(o, "instance_type", c.inst.instance_type);
        cJSON_AddBoolToObject(o, "spot", c.inst.spot);
        cJSON_AddStringToObject(o, "status", status);
        cJSON_AddStringToObject(o, "instance_id", c.inst.id);
        cJSON_AddStringToObject(o, "ip", c.inst.ip);
        cJSON_AddNumberToObject(o, "agent_port", c.inst.agent_port);
        cJSON_AddItemToArray(arr, o);
    }
    core_store_close(db);
    core_prov_registry_free(provs);
    if (json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddItemToObject(doc, "clusters", arr);
        ctl_cli_print_json(stdout, doc);
        cJSON_Delete(doc);
    } else {
        cJSON_Delete(arr);
        if (ctl_table_nrows(tab) == 0)
            printf("No existing clusters.\n");
        else {
            printf("Clusters\n");
            ctl_table_print(tab, stdout);
        }
    }
    ctl_table_free(tab);
    return 0;
}

int ctl_cli_down(ctl_cli_t *cli, int argc, char **argv)
{
    char **names = NULL;
    int nnames = 0;
    bool yes = false;
    const ctl_opt_t opts[] = {
        CTL_OPT_YES(&yes),
        CTL_ARG_REST("CLUSTERS", "the clusters to terminate", &names, &nnames),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    core_store_t *db = NULL;
    if (db_open(&db) < 0)
        return 1;
    core_prov_registry_t *provs = NULL;
    core_prov_t *def = NULL;
    int r = core_prov_registry_new(NULL, 0, &provs);
    if (r == 0)
        r = core_prov_registry_get(provs, NULL, &def, NULL);
    if (r < 0) {
        core_prov_registry_free(provs);
        fprintf(stderr, "sky: cannot reach the local cloud: %s\n", core_strerror(r));
        core_store_close(db);
        return 1;
    }
    int code = 0;
    for (int i = 0; i < nnames; i++) {
        cluster_t c;
        if (db_get(db, names[i], &c) < 0) {
            fprintf(stderr, "sky: cluster '%s' not found\n", names[i]);
            code = 1;
            continue;
        }
        if (c.inst.id[0] &&
            (r = core_prov_registry_terminate(provs, c.inst.cloud, c.inst.id)) < 0) {
            fprintf(stderr, "sky: terminating '%s' (%s) failed: %s\n", c.name, c.inst.id,
                    core_strerror(r));
            code = 1;
            continue;
        }
        db_del(db, c.name);
        printf("Terminated cluster '%s'.\n", c.name);
    }
    core_prov_registry_free(provs);
    core_store_close(db);
    return code;
}

int ctl_cli_logs(ctl_cli_t *cli, int argc, char **argv)
{
    const char *name = NULL;
    long task_id = 0;
    int follow = 1;
    const ctl_opt_t opts[] = {
        CTL_OPT_BOOL(0, "follow", "keep streaming until the task ends (default)", &follow),
        CTL_ARG_STR("CLUSTER", "the cluster", &name),
        CTL_ARG_INT_OPT("TASK_ID", "the task (default: the latest)", &task_id, 1, INT_MAX),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    core_store_t *db = NULL;
    cluster_t c;
    if (db_open(&db) < 0)
        return 1;
    int r = db_get(db, name, &c);
    core_store_close(db);
    if (r < 0) {
        fprintf(stderr, "sky: cluster '%s' not found\n", name);
        return 1;
    }
    if (task_id == 0) {
        core_agent_task_t *tasks = NULL;
        size_t n = 0;
        if (core_agent_task_list(c.inst.ip, c.inst.agent_port, NULL, &tasks, &n) == 0 && n > 0)
            task_id = tasks[n - 1].task_id;
        for (size_t i = 0; i < n; i++)
            core_agent_task_free(&tasks[i]);
        free(tasks);
        if (task_id == 0) {
            fprintf(stderr, "sky: no task on cluster '%s'\n", name);
            return 1;
        }
    }
    r = core_agent_logs(c.inst.ip, c.inst.agent_port, NULL, task_id, follow, -1, print_chunk,
                        NULL);
    if (r < 0) {
        fprintf(stderr, "sky: logs of task %ld on '%s': %s\n", task_id, name, core_strerror(r));
        return 1;
    }
    return 0;
}

/*
 * --async: the rest of the command runs in a child of its own session whose
 * output goes to <log>; the parent returns 1 at once, the child 0.
 */
static int background(const char *log)
{
    fflush(stdout);
    fflush(stderr);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        return -errno;
    }
    if (pid > 0) {
        close(fd);
        return 1;
    }
    setsid();
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in >= 0)
        dup2(in, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    return 0;
}

/* The log of an --async launch or exec on <cluster>, under $SKY_HOME/sky_logs/. */
static char *async_log(const char *cluster)
{
    char *dir = core_home_path("sky_logs");
    core_mkdir_p(dir, 0700);
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%d-%H-%M-%S", &tm);
    char *log = core_xasprintf("%s/%s-%s.log", dir, cluster, ts);
    free(dir);
    return log;
}

/* Runs launch_or_exec in the background for --async; returns the exit code. */
static int run_async(const char *name, core_task_t *t, const char *entry, int is_exec)
{
    char *log = async_log(name);
    int rc = background(log);
    if (rc < 0) {
        fprintf(stderr, "sky: cannot go to the background: %s\n", core_strerror(rc));
        free(log);
        return 1;
    }
    if (rc == 1) {
        printf("%s cluster '%s' in the background; its output goes to %s\n",
               is_exec ? "Submitting the task to" : "Launching", name, log);
        printf("To check: sky status %s; to see the task's output: sky logs %s\n", name, name);
        free(log);
        return 0;
    }
    free(log);
    exit(launch_or_exec(name, t, entry, false, is_exec));
}

/* The reference's exec ignores these task flags (field_to_ignore in command.py exec). */
static void exec_ignored_flags(ctl_cli_task_t *f)
{
    const struct {
        const char *flag;
        const char **val;
    } strs[] = {{"cpus", &f->cpus}, {"memory", &f->memory}, {"disk_tier", &f->disk_tier}};
    for (size_t i = 0; i < CORE_ARRAY_SIZE(strs); i++) {
        if (*strs[i].val)
            printf("Override param %s=%s is ignored.\n", strs[i].flag, *strs[i].val);
        *strs[i].val = NULL;
    }
    if (f->disk_size > 0)
        printf("Override param disk_size=%ld is ignored.\n", f->disk_size);
    f->disk_size = 0;
    if (f->n_ports > 0)
        printf("Override param ports=%s is ignored.\n", f->ports[0]);
    f->n_ports = 0;
}

/*
 * exec with resource flags: the cluster's instance must be one the task could
 * have been launched on (the reference's check_resources_fit_cluster).
 */
static int check_fits(const char *name, const core_task_t *t)
{
    core_store_t *db = NULL;
    cluster_t c;
    if (db_open(&db) < 0)
        return 1;
    int found = db_get(db, name, &c) == 0;
    core_store_close(db);
    if (!found)
        return 0; /* launch_or_exec says the cluster is not UP */
    core_catalog_t *cat = NULL;
    core_candidate_t *cands = NULL;
    size_t n = 0;
    char *err = NULL;
    int fits = 0;
    if (core_catalog_load(NULL, &cat, &err) == 0 &&
        core_catalog_resolve(cat, &t->resources, &cands, &n, &err) == 0) {
        for (size_t i = 0; i < n && !fits; i++)
            fits = !strcasecmp(cands[i].cloud, c.inst.cloud) &&
                   !strcmp(cands[i].zone, c.inst.zone) &&
                   !strcmp(cands[i].instance_type, c.inst.instance_type) &&
                   cands[i].spot == c.inst.spot;
    }
    if (!fits)
        fprintf(stderr,
                "sky: the task's resources do not fit cluster '%s' (%s, %s%s in %s)%s%s\n", name,
                c.label, c.inst.instance_type, c.inst.spot ? " spot" : "", c.inst.zone,
                err ? ": " : "", err ? err : "");
    free(err);
    free(cands);
    core_catalog_free(cat);
    return fits ? 0 : 1;
}

/* launch or exec of <src> (-n renames its task), now or --async. */
static int run_task(const char *name, ctl_cli_src_t *src, const char *entry,
                    const char *task_name, bool detach, bool async, int is_exec)
{
    if (task_name) {
        free(src->task->name);
        src->task->name = core_xstrdup(task_name);
    }
    const char *what = src->yaml_path ? entry : "COMMAND";
    return async ? run_async(name, src->task, what, is_exec)
                 : launch_or_exec(name, src->task, what, detach, is_exec);
}

int ctl_cli_launch(ctl_cli_t *cli, int argc, char **argv)
{
    const char *name = NULL, *task_name = NULL;
    char **entry = NULL;
    int nentry = 0;
    ctl_cli_env_t env = {0};
    ctl_cli_task_t flags = CTL_CLI_TASK_INIT;
    bool yes = false, detach = false, dryrun = false;
    const ctl_opt_t opts[] = {
        CTL_OPT_STR('c', "cluster", "NAME", "the cluster (default sky-XXXX); reused when UP",
                    &name),
        CTL_OPT_STR('n', "name", "NAME", "the task's name (default: the YAML's)", &task_name),
        CTL_OPT_FLAG(0, "dryrun", "print the chosen resources and their price; launch nothing",
                     &dryrun),
        /* Accepted for SkyPilot's habits: nothing is asked beyond the printed plan. */
        CTL_OPT_YES(&yes),
        CTL_OPT_DETACH(&detach),
        CTL_OPTS_ENV(&env),
        CTL_OPTS_TASK(&flags),
        CTL_ARG_REST("ENTRYPOINT", "a task YAML, or a command to run", &entry, &nentry),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    ctl_cli_src_t src;
    rc = ctl_cli_src_load(cli, "sky", entry, nentry, &env, &flags, NULL, &src);
    if (rc != 0)
        goto out;
    if (src.task->service)
        printf("Service section will be ignored when using `sky launch`.\nTo spin up a service, "
               "use SkyServe CLI: sky serve up\n");
    if (dryrun) {
        rc = ctl_cli_print_plan(stdout, "sky", src.task);
        if (rc == 0)
            printf("Dryrun finished.\n");
        goto out;
    }
    char defname[32];
    if (name == NULL) {
        default_cluster_name(defname, sizeof(defname));
        name = defname;
    }
    if ((rc = ctl_cli_cloud_up("sky")) != 0)
        goto out;
    rc = run_task(name, &src, entry[0], task_name, detach, flags.async == 1, 0);
out:
    ctl_cli_src_free(&src);
    return rc;
}

int ctl_cli_exec(ctl_cli_t *cli, int argc, char **argv)
{
    const char *name = NULL, *task_name = NULL;
    char **entry = NULL;
    int nentry = 0;
    ctl_cli_env_t env = {0};
    ctl_cli_task_t flags = CTL_CLI_TASK_INIT;
    bool yes = false, detach = false;
    const ctl_opt_t opts[] = {
        CTL_OPT_STR('n', "name", "NAME", "the task's name (default: the YAML's)", &task_name),
        CTL_OPT_YES(&yes),
        CTL_OPT_DETACH(&detach),
        CTL_OPTS_ENV(&env),
        CTL_OPTS_TASK(&flags),
        CTL_ARG_STR("CLUSTER", "a cluster that is UP", &name),
        CTL_ARG_REST("ENTRYPOINT", "a task YAML, or a command to run", &entry, &nentry),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    exec_ignored_flags(&flags);
    bool placed = flags.gpus || flags.instance_type || flags.use_spot >= 0 || flags.infra ||
                  flags.cloud || flags.region || flags.zone;
    ctl_cli_src_t src;
    rc = ctl_cli_src_load(cli, "sky", entry, nentry, &env, &flags, NULL, &src);
    if (rc != 0)
        goto out;
    if (placed && (rc = check_fits(name, src.task)) != 0)
        goto out;
    rc = run_task(name, &src, entry[0], task_name, detach, flags.async == 1, 1);
out:
    ctl_cli_src_free(&src);
    return rc;
}
