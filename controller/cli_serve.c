/*
 * `sky serve ...`: the client side of the serve controller's API
 * (docs/serve-api.md). Output follows the reference CLI (reference/skyserve.md
 * §8) without colours or spinners, so that it can be read by scripts.
 */
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_progress.h"
#include "cli_util.h"
#include "core/err.h"
#include "core/mem.h"
#include "core/spec.h"
#include "core/util.h"

#define DAEMON_WAIT_MS     10000L
#define API_TIMEOUT_MS     30000L
#define UP_TIMEOUT_MS      120000L
#define REGISTER_TIMEOUT_S 60.0 /* SERVICE_REGISTER_TIMEOUT_SECONDS */
#define REPLICA_TRUNC      10

/* Failures print one line "sky serve: ..." and return 1. */
#define fail_msg(...)     ctl_cli_fail("sky serve", __VA_ARGS__)
#define connect_daemon(d) ctl_cli_connect("sky serve", "serve", DAEMON_WAIT_MS, d)
/* Questions and changes to existing services: CTL_CLI_NONE (nothing started) when
 * there is no controller with services to ask. */
#define connect_read(d)                                                                       \
    ctl_cli_connect_read("sky serve", "serve", "services.db", false, DAEMON_WAIT_MS, d)

/* ------------------------------------------------------------- JSON access */

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jnum(const cJSON *o, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        return false;
    *out = v->valuedouble;
    return true;
}

static long jlong(const cJSON *o, const char *key, long dflt)
{
    double d;
    return jnum(o, key, &d) ? (long)d : dflt;
}

/* ---------------------------------------------------------- task payloads */

/*
 * The YAML with where it came from, the cwd, and the --env and task-flag
 * overrides, as the controller wants them; its warnings are printed here.
 * 0 or the CLI's exit code.
 */
static int task_payload(const ctl_cli_t *cli, const char *file, const ctl_cli_env_t *env,
                        const ctl_cli_task_t *flags, cJSON *req)
{
    ctl_cli_src_t src;
    char *entry[] = {(char *)file};
    int code = ctl_cli_src_load(cli, "sky serve", entry, 1, env, flags, NULL, &src);
    if (code == 0)
        ctl_cli_src_to_json(&src, req);
    ctl_cli_src_free(&src);
    return code;
}

/* Lowercase letters, digits and dashes; a letter first, no dash last. */
static bool valid_service_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] < 'a' || s[0] > 'z' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

/* GET /api/services[?names=...]; *services gets the array (owned by *doc). */
static int fetch_services(ctl_cli_daemon_t *d, char **names, int nnames, cJSON **doc,
                          cJSON **services, char **err)
{
    char *path;
    if (nnames > 0) {
        size_t cap = 64;
        for (int i = 0; i < nnames; i++)
            cap += 3 * strlen(names[i]) + 3;
        path = core_xmalloc(cap);
        strcpy(path, "/api/services?names=");
        for (int i = 0; i < nnames; i++) {
            char *e = ctl_url_escape(names[i]);
            if (i)
                strcat(path, "%2C");
            strcat(path, e);
            free(e);
        }
    } else {
        path = core_xstrdup("/api/services");
    }
    int rc = ctl_cli_api(d, "GET", path, NULL, API_TIMEOUT_MS, NULL, doc, err);
    free(path);
    if (rc < 0)
        return rc;
    *services = cJSON_GetObjectItemCaseSensitive(*doc, "services");
    if (!cJSON_IsArray(*services)) {
        cJSON_Delete(*doc);
        *doc = NULL;
        *err = core_xstrdup("the controller's service list is malformed");
        return CORE_EJSON;
    }
    return 0;
}

static const cJSON *find_service(const cJSON *services, const char *name)
{
    const cJSON *s;
    cJSON_ArrayForEach(s, services)
    {
        const char *n = jstr(s, "name");
        if (n && strcmp(n, name) == 0)
            return s;
    }
    return NULL;
}

/* ---------------------------------------------------------------------- up */

static void print_hints(const char *name, const char *endpoint)
{
    /* "%s" in the command is the service name, except for the curl line. */
    static const char *const hints[][2] = {
        {"To check service status:", "sky serve status %s"},
        {"To print only the endpoint:", "sky serve status %s --endpoint"},
        {"To see replica logs:", "sky serve logs %s [REPLICA_ID]"},
        {"To see load balancer logs:", "sky serve logs %s --load-balancer"},
        {"To see controller logs:", "sky serve logs %s --controller"},
        {"To monitor the status:", "watch -n10 sky serve status %s"},
        {"To send a test request:", "curl %s"},
        {"To tear down the service:", "sky serve down %s"},
    };
    printf("Useful commands:\n");
    for (size_t i = 0; i < CORE_ARRAY_SIZE(hints); i++) {
        const char *arg = strncmp(hints[i][1], "curl", 4) == 0 ? (endpoint ? endpoint : "-") : name;
        const char *pct = strstr(hints[i][1], "%s");
        printf("  %-30s%.*s%s%s\n", hints[i][0], (int)(pct - hints[i][1]), hints[i][1], arg,
               pct + 2);
    }
}

/*
 * The reference waits for the service's controller to register it. Ours
 * registers on POST; what is left to wait for is the first probe round that
 * moves the service out of CONTROLLER_INIT (LB started, replicas launched).
 */
static int wait_registered(ctl_cli_daemon_t *d, const char *name, char **endpoint)
{
    printf("Waiting for service '%s' to register...\n", name);
    fflush(stdout);
    double start = core_now();
    char *names[] = {(char *)name};
    for (;;) {
        cJSON *doc = NULL, *services = NULL;
        char *err = NULL;
        int rc = fetch_services(d, names, 1, &doc, &services, &err);
        if (rc < 0) {
            fail_msg("%s", err);
            free(err);
            return 1;
        }
        const cJSON *s = find_service(services, name);
        if (s == NULL) {
            cJSON_Delete(doc);
            return fail_msg("service '%s' disappeared while registering (see `sky serve logs "
                            "%s --controller`)",
                            name, name);
        }
        const char *status = jstr(s, "status");
        const char *ep = jstr(s, "endpoint");
        if (ep && !*endpoint)
            *endpoint = core_xstrdup(ep);
        if (status && (strcmp(status, "CONTROLLER_FAILED") == 0 || strcmp(status, "FAILED") == 0 ||
                       strcmp(status, "FAILED_CLEANUP") == 0)) {
            rc = fail_msg("service '%s' failed to start: status %s (see `sky serve logs %s "
                          "--controller`)",
                          name, status, name);
            cJSON_Delete(doc);
            return rc;
        }
        bool done = status && strcmp(status, "CONTROLLER_INIT") != 0;
        cJSON_Delete(doc);
        if (done) {
            printf("Service registered.\n");
            return 0;
        }
        if (core_now() - start > REGISTER_TIMEOUT_S) {
            fprintf(stderr,
                    "sky serve: warning: service '%s' is still initialising after %.0f s; "
                    "check `sky serve status %s`\n",
                    name, REGISTER_TIMEOUT_S, name);
            return 0;
        }
        usleep(500 * 1000);
    }
}

static int cmd_up(ctl_cli_t *cli, int argc, char **argv)
{
    const char *file = NULL, *name = NULL;
    ctl_cli_env_t env = {0};
    ctl_cli_task_t flags = CTL_CLI_TASK_INIT;
    bool yes = false;
    const ctl_opt_t opts[] = {
        CTL_OPT_STR('n', "service-name", "NAME", "the service's name (default sky-service-XXXX)",
                    &name),
        CTL_OPT_YES(&yes),
        CTL_OPTS_ENV(&env),
        CTL_OPTS_TASK(&flags),
        CTL_ARG_STR("SERVICE_YAML", "a task YAML with a service section", &file),
        CTL_OPT_END,
    };
    int code = ctl_cli_parse(cli, opts, argc, argv);
    if (code != CTL_CLI_RUN)
        return code;
    char gen[32];
    if (name == NULL) {
        char hex[5];
        ctl_random_hex(hex, 4);
        snprintf(gen, sizeof(gen), "sky-service-%s", hex);
        name = gen;
    } else if (!valid_service_name(name)) {
        return ctl_cli_usage_error(cli,
                                   "invalid service name '%s': use lowercase letters, digits and "
                                   "dashes, starting with a letter (at most 63 characters)",
                                   name);
    }

    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "name", name);
    code = task_payload(cli, file, &env, &flags, req);
    if (code != 0) {
        cJSON_Delete(req);
        return code;
    }
    char *q = core_xasprintf("Launching a new service '%s'. Proceed?", name);
    bool go = yes || ctl_cli_confirm(q, true);
    free(q);
    if (!go) {
        cJSON_Delete(req);
        printf("Aborted.\n");
        return 1;
    }

    ctl_cli_daemon_t d;
    if (ctl_cli_cloud_up("sky serve") != 0 || connect_daemon(&d) != 0) {
        cJSON_Delete(req);
        return 1;
    }
    cJSON *resp = NULL;
    char *err = NULL;
    long status = 0;
    int rc = ctl_cli_api(&d, "POST", "/api/services", req, UP_TIMEOUT_MS, &status, &resp, &err);
    cJSON_Delete(req);
    if (rc < 0) {
        /* Spec errors already read "file:line:col: message": print them bare. */
        if (status == 400)
            fprintf(stderr, "%s\n", err);
        else
            fail_msg("%s", err);
        free(err);
        ctl_cli_daemon_free(&d);
        return 1;
    }
    const char *real_name = jstr(resp, "name") ? jstr(resp, "name") : name;
    const char *repr = jstr(resp, "spec_repr");
    if (repr && *repr) {
        printf("Service spec:\n%s", repr);
        if (repr[strlen(repr) - 1] != '\n')
            putchar('\n');
        putchar('\n');
    }
    char *endpoint = jstr(resp, "endpoint") ? core_xstrdup(jstr(resp, "endpoint")) : NULL;
    char *svc = core_xstrdup(real_name);
    cJSON_Delete(resp);
    /* --async: the controller has the service; its start is for `sky serve status` to show. */
    rc = flags.async == 1 ? 0 : wait_registered(&d, svc, &endpoint);
    if (rc == 0 && flags.async != 1)
        rc = ctl_progress_wait_service(&d, svc); /* on a terminal only */
    if (rc == 0) {
        printf("Service name: %s\n", svc);
        printf("Endpoint URL: %s\n", endpoint ? endpoint : "-");
        print_hints(svc, endpoint);
    }
    free(endpoint);
    free(svc);
    ctl_cli_daemon_free(&d);
    return rc;
}

/* ------------------------------------------------------------------ status */

static void fmt_versions(const cJSON *s, char *out, size_t outlen)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(s, "active_versions");
    size_t o = 0;
    out[0] = '\0';
    const cJSON *v;
    cJSON_ArrayForEach(v, arr)
    {
        if (!cJSON_IsNumber(v) || o >= outlen)
            continue;
        o += (size_t)snprintf(out + o, outlen - o, "%s%ld", o ? "," : "", (long)v->valuedouble);
    }
    if (o == 0)
        snprintf(out, outlen, "-");
}

static void print_service_table(const cJSON *services, bool verbose, double now)
{
    static const char *hdr[] = {"NAME",
                                "VERSION",
                                "UPTIME",
                                "STATUS",
                                "REPLICAS",
                                "ENDPOINT",
                                "AUTOSCALING_POLICY",
                                "LOAD_BALANCING_POLICY",
                                "REQUESTED_RESOURCES"};
    size_t ncols = verbose ? 9 : 6;
    ctl_table_t *t = ctl_table_new(ncols, hdr);
    const cJSON *s;
    cJSON_ArrayForEach(s, services)
    {
        char version[128], uptime[64], replicas[48];
        fmt_versions(s, version, sizeof(version));
        double up;
        if (jnum(s, "uptime", &up) && up > 0)
            core_fmt_duration(now - up < 0 ? 0 : now - up, uptime, sizeof(uptime));
        else
            snprintf(uptime, sizeof(uptime), "-");
        snprintf(replicas, sizeof(replicas), "%ld/%ld", jlong(s, "ready", 0), jlong(s, "total", 0));
        const char *row[] = {jstr(s, "name"),
                             version,
                             uptime,
                             jstr(s, "status"),
                             replicas,
                             jstr(s, "endpoint"),
                             jstr(s, "autoscaling_policy"),
                             jstr(s, "load_balancing_policy"),
                             jstr(s, "requested_resources")};
        ctl_table_add_row(t, row);
    }
    ctl_table_print(t, stdout);
    ctl_table_free(t);
}

static void print_replica_table(const cJSON *services, bool verbose, double now)
{
    /* The seed's columns; -v adds the zone, where spot placement happens. */
    static const char *hdr[] = {"SERVICE_NAME", "ID",     "VERSION", "ENDPOINT", "LAUNCHED",
                                "RESOURCES",    "STATUS", "REGION",  "ZONE"};
    ctl_table_t *t = ctl_table_new(CORE_ARRAY_SIZE(hdr) - (verbose ? 0 : 1), hdr);
    bool truncated = false;
    const cJSON *s;
    cJSON_ArrayForEach(s, services)
    {
        const cJSON *reps = cJSON_GetObjectItemCaseSensitive(s, "replicas");
        const cJSON *r;
        size_t shown = 0;
        cJSON_ArrayForEach(r, reps)
        {
            if (!verbose && shown == REPLICA_TRUNC) {
                truncated = true;
                break;
            }
            shown++;
            char id[32], version[32], launched[64];
            snprintf(id, sizeof(id), "%ld", jlong(r, "replica_id", 0));
            snprintf(version, sizeof(version), "%ld", jlong(r, "version", 0));
            double at;
            if (jnum(r, "launched_at", &at) && at > 0)
                core_fmt_ago(now - at, launched, sizeof(launched));
            else
                snprintf(launched, sizeof(launched), "-");
            const char *row[] = {jstr(s, "name"),   id,
                                 version,           jstr(r, "endpoint"),
                                 launched,          jstr(r, "resources"),
                                 jstr(r, "status"), jstr(r, "region"),
                                 jstr(r, "zone")};
            ctl_table_add_row(t, row);
        }
    }
    if (ctl_table_nrows(t) == 0)
        printf("No existing replicas.\n");
    else
        ctl_table_print(t, stdout);
    if (truncated)
        printf("... (use -v to show all replicas)\n");
    ctl_table_free(t);
}

static int cmd_status(ctl_cli_t *cli, int argc, char **argv)
{
    bool verbose = false, endpoint = false, json = false;
    char **names = NULL;
    int nnames = 0;
    const ctl_opt_t opts[] = {
        CTL_OPT_FLAG('v', "verbose", "more columns, every replica", &verbose),
        CTL_OPT_FLAG(0, "endpoint", "print only the endpoint of the one service named", &endpoint),
        CTL_OPT_FLAG(0, "json", "print the controller's JSON", &json),
        CTL_ARG_REST_OPT("SERVICE_NAMES", "the services to show (default: all)", &names, &nnames),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    if (endpoint && json)
        return ctl_cli_usage_error(cli, "--endpoint and --json cannot be used together");
    ctl_cli_daemon_t d;
    cJSON *doc = NULL, *services = NULL;
    char *err = NULL;
    rc = connect_read(&d);
    if (rc == CTL_CLI_NONE || rc == CTL_CLI_STOPPED) {
        /* No controller to ask, and none is started to say that there is no service. */
        doc = cJSON_Parse("{\"services\": []}");
        services = cJSON_GetObjectItemCaseSensitive(doc, "services");
        rc = 0;
    } else if (rc != 0) {
        return 1;
    } else {
        rc = fetch_services(&d, names, nnames, &doc, &services, &err);
    }
    ctl_cli_daemon_free(&d);
    if (rc < 0) {
        fail_msg("%s", err);
        free(err);
        return 1;
    }
    int n = cJSON_GetArraySize(services);
    if (json) {
        ctl_cli_print_json(stdout, doc);
    } else if (endpoint) {
        if (n != 1) {
            cJSON_Delete(doc);
            return ctl_cli_usage_error(cli,
                                       "%s service%s found. Please specify an existing service "
                                       "to show its endpoint. Usage: sky serve status --endpoint "
                                       "<service-name>",
                                       n ? "Multiple" : "No", n > 1 ? "s" : "");
        }
        const char *ep = jstr(cJSON_GetArrayItem(services, 0), "endpoint");
        printf("%s\n", ep ? ep : "-");
    } else {
        double now = core_now();
        printf("Services\n");
        if (n == 0) {
            printf("No existing services.\n");
        } else {
            print_service_table(services, verbose, now);
            printf("\nService Replicas\n");
            print_replica_table(services, verbose, now);
        }
    }
    cJSON_Delete(doc);
    return 0;
}

/* ------------------------------------------------------------------ update */

static int cmd_update(ctl_cli_t *cli, int argc, char **argv)
{
    static const char *const modes[] = {"rolling", "blue_green", NULL};
    const char *name = NULL, *file = NULL, *mode = "rolling";
    ctl_cli_env_t env = {0};
    ctl_cli_task_t flags = CTL_CLI_TASK_INIT;
    bool yes = false;
    const ctl_opt_t opts[] = {
        CTL_OPT_CHOICE(0, "mode", "how replicas move to the new version (default rolling)", &mode,
                       modes),
        CTL_OPT_YES(&yes),
        CTL_OPTS_ENV(&env),
        CTL_OPTS_TASK(&flags),
        CTL_ARG_STR("SERVICE_NAME", "the service to update", &name),
        CTL_ARG_STR("SERVICE_YAML", "its new task YAML", &file),
        CTL_OPT_END,
    };
    int code = ctl_cli_parse(cli, opts, argc, argv);
    if (code != CTL_CLI_RUN)
        return code;
    cJSON *req = cJSON_CreateObject();
    code = task_payload(cli, file, &env, &flags, req);
    if (code != 0) {
        cJSON_Delete(req);
        return code;
    }
    cJSON_AddStringToObject(req, "mode", mode);
    char *q = core_xasprintf("Updating service '%s' (%s update). Proceed?", name, mode);
    bool go = yes || ctl_cli_confirm(q, true);
    free(q);
    if (!go) {
        cJSON_Delete(req);
        printf("Aborted.\n");
        return 1;
    }
    ctl_cli_daemon_t d;
    int crc = connect_read(&d);
    if (crc != 0) {
        cJSON_Delete(req);
        return crc == 1 ? 1 : fail_msg("service '%s' does not exist", name);
    }
    if (ctl_cli_cloud_up("sky serve") != 0) {
        cJSON_Delete(req);
        ctl_cli_daemon_free(&d);
        return 1;
    }
    char *esc = ctl_url_escape(name);
    char *path = core_xasprintf("/api/services/%s/update", esc);
    free(esc);
    cJSON *resp = NULL;
    char *err = NULL;
    long status = 0;
    int rc = ctl_cli_api(&d, "POST", path, req, UP_TIMEOUT_MS, &status, &resp, &err);
    free(path);
    cJSON_Delete(req);
    ctl_cli_daemon_free(&d);
    if (rc < 0) {
        if (status == 400)
            fprintf(stderr, "%s\n", err);
        else if (status == 404)
            fail_msg("service '%s' does not exist", name);
        else
            fail_msg("%s", err);
        free(err);
        return 1;
    }
    long version = jlong(resp, "version", 0);
    cJSON_Delete(resp);
    printf("Service '%s' update scheduled: version %ld, %s.\n", name, version, mode);
    printf("Please use `sky serve status %s` to check the latest status.\n", name);
    return 0;
}

/* -------------------------------------------------------------------- down */

static bool has_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

static int down_replica(ctl_cli_daemon_t *d, const char *name, long replica_id, bool purge,
                        bool yes)
{
    char *q = core_xasprintf("Terminating replica %ld of service '%s'. Proceed?", replica_id, name);
    bool go = yes || ctl_cli_confirm(q, true);
    free(q);
    if (!go) {
        printf("Aborted.\n");
        return 1;
    }
    char *esc = ctl_url_escape(name);
    char *path = core_xasprintf("/api/services/%s/terminate_replica", esc);
    free(esc);
    cJSON *req = cJSON_CreateObject();
    cJSON_AddNumberToObject(req, "replica_id", (double)replica_id);
    cJSON_AddBoolToObject(req, "purge", purge);
    char *err = NULL;
    int rc = ctl_cli_api(d, "POST", path, req, API_TIMEOUT_MS, NULL, NULL, &err);
    cJSON_Delete(req);
    free(path);
    if (rc < 0) {
        fail_msg("%s", err);
        free(err);
        return 1;
    }
    printf("Replica %ld of service '%s' is scheduled to be terminated.\n", replica_id, name);
    return 0;
}

static int cmd_down(ctl_cli_t *cli, int argc, char **argv)
{
    bool all = false, purge = false, yes = false;
    long replica_id = -1;
    char **names = NULL;
    int nnames = 0;
    const ctl_opt_t opts[] = {
        CTL_OPT_FLAG('a', "all", "every service", &all),
        CTL_OPT_FLAG('p', "purge", "also tear down failed services and replicas", &purge),
        CTL_OPT_INT(0, "replica-id", "ID", "only this replica of the one service named",
                    &replica_id, 1, INT_MAX),
        CTL_OPT_YES(&yes),
        CTL_ARG_REST_OPT("SERVICE_NAMES", "names or globs of the services", &names, &nnames),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    if (all && nnames > 0)
        return ctl_cli_usage_error(cli, "cannot use service names together with -a/--all");
    if (!all && nnames == 0)
        return ctl_cli_usage_error(cli, "specify service names or -a/--all");
    if (replica_id >= 0 && (all || nnames != 1))
        return ctl_cli_usage_error(cli, "--replica-id needs exactly one service name");

    ctl_cli_daemon_t d;
    rc = connect_read(&d);
    if (rc == CTL_CLI_NONE || rc == CTL_CLI_STOPPED) {
        if (replica_id >= 0)
            return fail_msg("service '%s' does not exist", names[0]);
        printf("No service to terminate.\n");
        return 0;
    }
    if (rc != 0)
        return 1;
    if (replica_id >= 0) {
        rc = down_replica(&d, names[0], replica_id, purge, yes);
        ctl_cli_daemon_free(&d);
        return rc;
    }

    /* Resolve -a and globs against the current list; plain names go as given. */
    cJSON *doc = NULL, *services = NULL;
    char *err = NULL;
    rc = fetch_services(&d, NULL, 0, &doc, &services, &err);
    if (rc < 0) {
        fail_msg("%s", err);
        free(err);
        ctl_cli_daemon_free(&d);
        return 1;
    }
    size_t cap = (size_t)cJSON_GetArraySize(services) + (size_t)nnames + 1, n = 0;
    const char **targets = core_xcalloc(cap, sizeof(*targets));
    const cJSON *s;
    cJSON_ArrayForEach(s, services)
    {
        const char *sn = jstr(s, "name");
        if (sn == NULL)
            continue;
        bool match = all;
        for (int i = 0; i < nnames && !match; i++)
            match = has_glob(names[i]) ? fnmatch(names[i], sn, 0) == 0 : strcmp(names[i], sn) == 0;
        if (match)
            targets[n++] = sn;
    }
    int result = 0;
    if (n == 0) {
        printf("No service to terminate.\n");
        goto out;
    }
    size_t qlen = 64;
    for (size_t i = 0; i < n; i++)
        qlen += strlen(targets[i]) + 4;
    char *q = core_xmalloc(qlen);
    strcpy(q, "Terminating service(s) ");
    for (size_t i = 0; i < n; i++) {
        strcat(q, i ? ", '" : "'");
        strcat(q, targets[i]);
        strcat(q, "'");
    }
    strcat(q, ". Proceed?");
    bool go = yes || ctl_cli_confirm(q, true);
    free(q);
    if (!go) {
        printf("Aborted.\n");
        result = 1;
        goto out;
    }
    size_t done = 0;
    const char **ok = core_xcalloc(n, sizeof(*ok));
    for (size_t i = 0; i < n; i++) {
        char *esc = ctl_url_escape(targets[i]);
        char *path = core_xasprintf("/api/services/%s/down", esc);
        free(esc);
        cJSON *req = cJSON_CreateObject();
        cJSON_AddBoolToObject(req, "purge", purge);
        /* -a: the controller exits once every service is gone, so that nothing of the
         * SKY_HOME's serving keeps running; the next `sky serve up` starts it again. */
        if (all)
            cJSON_AddBoolToObject(req, "stop_when_empty", true);
        long status = 0;
        err = NULL;
        rc = ctl_cli_api(&d, "POST", path, req, API_TIMEOUT_MS, &status, NULL, &err);
        cJSON_Delete(req);
        free(path);
        if (rc == 0) {
            ok[done++] = targets[i];
        } else if (status == 404) {
            /* Gone since the listing (finished tearing down): nothing to do. */
        } else {
            fail_msg("service '%s': %s", targets[i], err);
            result = 1;
        }
        free(err);
    }
    if (done == 0) {
        printf("No service to terminate.\n");
    } else if (done == 1) {
        printf("Service '%s' is scheduled to be terminated.\n", ok[0]);
    } else {
        printf("Services ");
        for (size_t i = 0; i < done; i++)
            printf("%s'%s'", i ? ", " : "", ok[i]);
        printf(" are scheduled to be terminated.\n");
    }
    free(ok);
out:
    free(targets);
    cJSON_Delete(doc);
    ctl_cli_daemon_free(&d);
    return result;
}

/* -------------------------------------------------------------------- logs */

static int cmd_logs(ctl_cli_t *cli, int argc, char **argv)
{
    const char *name = NULL;
    bool controller = false, lb = false;
    int follow = 1;
    long tail = -1, replica_id = -1;
    const ctl_opt_t opts[] = {
        CTL_OPT_FLAG(0, "controller", "the controller's log", &controller),
        CTL_OPT_FLAG(0, "load-balancer", "the load balancer's log", &lb),
        CTL_OPT_BOOL(0, "follow", "keep streaming new lines (default)", &follow),
        CTL_OPT_INT(0, "tail", "N", "only the last N lines (implies --no-follow)", &tail, 0,
                    INT_MAX),
        CTL_ARG_STR("SERVICE_NAME", "the service", &name),
        CTL_ARG_INT_OPT("REPLICA_ID", "the replica whose logs to show", &replica_id, 1, INT_MAX),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    int ntargets = (controller ? 1 : 0) + (lb ? 1 : 0) + (replica_id > 0 ? 1 : 0);
    if (ntargets != 1)
        return ctl_cli_usage_error(cli, "give exactly one of REPLICA_ID, --controller or "
                                        "--load-balancer");
    if (tail >= 0)
        follow = 0;

    char *esc = ctl_url_escape(name);
    char *path;
    char tailq[32] = "";
    if (tail >= 0)
        snprintf(tailq, sizeof(tailq), "&tail=%ld", tail);
    if (replica_id > 0)
        path = core_xasprintf("/api/services/%s/logs?target=replica&replica_id=%ld&follow=%d%s",
                              esc, replica_id, follow ? 1 : 0, tailq);
    else
        path = core_xasprintf("/api/services/%s/logs?target=%s&follow=%d%s", esc,
                              controller ? "controller" : "load_balancer", follow ? 1 : 0, tailq);
    free(esc);
    ctl_cli_daemon_t d;
    int crc = connect_read(&d);
    if (crc != 0) {
        free(path);
        return crc == 1 ? 1 : fail_msg("service '%s' does not exist", name);
    }
    char *err = NULL;
    long status = 0;
    rc = ctl_cli_stream(&d, path, 0, stdout, &status, &err);
    free(path);
    ctl_cli_daemon_free(&d);
    if (rc < 0) {
        fflush(stdout);
        fail_msg("%s", err);
        free(err);
        return 1;
    }
    return 0;
}

const ctl_cli_cmd_t ctl_cli_serve_cmds[] = {
    {"up", "Launch a service from a task YAML", cmd_up, NULL},
    {"status", "Show services and their replicas", cmd_status, NULL},
    {"update", "Roll a service to a new version", cmd_update, NULL},
    {"down", "Tear down services (or one replica)", cmd_down, NULL},
    {"logs", "Show replica, controller or load balancer logs", cmd_logs, NULL},
    {NULL, NULL, NULL, NULL},
};
