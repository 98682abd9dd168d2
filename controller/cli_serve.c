/*
 * `sky serve ...`: the client side of the serve controller's API
 * (docs/serve-api.md). Output follows the reference CLI (reference/skyserve.md
 * §8) without colours or spinners, so that it can be read by scripts.
 */
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
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

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *args;
    const char *help;
} serve_cmd_t;

static int cmd_up(int argc, char **argv);
static int cmd_status(int argc, char **argv);
static int cmd_update(int argc, char **argv);
static int cmd_down(int argc, char **argv);
static int cmd_logs(int argc, char **argv);

static const serve_cmd_t cmds[] = {
    {"up", cmd_up, "SERVICE_YAML [-n NAME] [--env-file F] [--env K=V]... [-y]",
     "launch a service from a task YAML"},
    {"status", cmd_status, "[NAMES...] [-v] [--endpoint] [--json]",
     "show services and their replicas"},
    {"update", cmd_update,
     "NAME SERVICE_YAML [--mode rolling|blue_green] [--env-file F] [--env K=V]... [-y]",
     "roll a service to a new version"},
    {"down", cmd_down, "NAMES...|-a [-p] [--replica-id N] [-y]",
     "tear down services (or one replica)"},
    {"logs", cmd_logs, "NAME [REPLICA_ID] [--controller|--load-balancer] [--no-follow] [--tail N]",
     "show replica, controller or load balancer logs"},
};

static void group_usage(FILE *f)
{
    fprintf(f, "usage: sky serve COMMAND [ARGS]...\n\ncommands:\n");
    for (size_t i = 0; i < CORE_ARRAY_SIZE(cmds); i++)
        fprintf(f, "  %-7s %s\n", cmds[i].name, cmds[i].help);
}

static const serve_cmd_t *find_cmd(const char *name)
{
    for (size_t i = 0; i < CORE_ARRAY_SIZE(cmds); i++) {
        if (strcmp(cmds[i].name, name) == 0)
            return &cmds[i];
    }
    return NULL;
}

static void cmd_usage(FILE *f, const char *name)
{
    const serve_cmd_t *c = find_cmd(name);
    fprintf(f, "usage: sky serve %s %s\n", name, c ? c->args : "");
}

/* Prints "sky serve <cmd>: <msg>" and the usage line; returns 2. */
static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sky serve %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    cmd_usage(stderr, cmd);
    return 2;
}

/* One clear line on stderr; returns 1. */
static int fail_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail_msg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sky serve: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

/* Reports an unknown option or missing argument as getopt saw it. */
static int bad_option(const char *cmd, char **argv, int c)
{
    if (c == ':')
        return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
    return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
}

static int connect_daemon(ctl_cli_daemon_t *d)
{
    char *err = NULL;
    int rc = ctl_cli_daemon_connect("serve", DAEMON_WAIT_MS, d, &err);
    if (rc < 0) {
        fail_msg("%s", err ? err : core_strerror(rc));
        free(err);
        return 1;
    }
    return 0;
}

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

/* --env / --env-file of up and update, gathered by their option loops. */
typedef struct {
    const char *file;
    const char *kv[CTL_CLI_MAX_ENVS];
    size_t n;
} env_opts_t;

static int env_opt(const char *cmd, env_opts_t *e, int c, const char *arg)
{
    if (c == 'E') {
        e->file = arg;
        return 0;
    }
    if (e->n == CTL_CLI_MAX_ENVS)
        return usage_error(cmd, "too many --env options");
    e->kv[e->n++] = arg;
    return 0;
}

/* The YAML text, its absolute path, the cwd and the env overrides, as the
 * controller wants them. 0 or the CLI's exit code. */
static int task_payload(const char *file, const env_opts_t *eo, cJSON *req)
{
    cJSON *envs = NULL;
    char *err = NULL;
    int code = ctl_cli_envs(eo->file, eo->kv, eo->n, &envs, &err);
    if (code != 0) {
        fail_msg("%s", err);
        free(err);
        return code;
    }
    if (cJSON_GetArraySize(envs) > 0)
        cJSON_AddItemToObject(req, "envs", envs);
    else
        cJSON_Delete(envs);

    char *text = NULL;
    size_t len = 0;
    int rc = core_read_file(file, CORE_SPEC_MAX_BYTES, &text, &len);
    if (rc < 0) {
        if (rc == -EFBIG)
            return fail_msg("%s: larger than %d bytes", file, CORE_SPEC_MAX_BYTES);
        return fail_msg("cannot read '%s': %s", file, core_strerror(rc));
    }
    if (memchr(text, '\0', len)) {
        free(text);
        return fail_msg("%s: not a text file", file);
    }
    char abs[PATH_MAX], cwd[PATH_MAX];
    if (realpath(file, abs) == NULL)
        snprintf(abs, sizeof(abs), "%s", file);
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        snprintf(cwd, sizeof(cwd), "/");
    cJSON_AddStringToObject(req, "yaml", text);
    cJSON_AddStringToObject(req, "yaml_path", abs);
    cJSON_AddStringToObject(req, "cwd", cwd);
    free(text);
    return 0;
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

static int cmd_up(int argc, char **argv)
{
    static const struct option opts[] = {
        {"service-name", required_argument, NULL, 'n'},
        {"env", required_argument, NULL, 'e'},
        {"env-file", required_argument, NULL, 'E'},
        {"yes", no_argument, NULL, 'y'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *name = NULL;
    env_opts_t eo = {0};
    bool yes = false;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":n:yh", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            name = optarg;
            break;
        case 'e':
        case 'E':
            if (env_opt("up", &eo, c, optarg) != 0)
                return 2;
            break;
        case 'y':
            yes = true;
            break;
        case 'h':
            cmd_usage(stdout, "up");
            return 0;
        default:
            return bad_option("up", argv, c);
        }
    }
    if (argc - optind != 1)
        return usage_error("up", argc - optind == 0 ? "missing SERVICE_YAML"
                                                    : "expected exactly one SERVICE_YAML");
    const char *file = argv[optind];
    char gen[32];
    if (name == NULL) {
        char hex[5];
        ctl_random_hex(hex, 4);
        snprintf(gen, sizeof(gen), "sky-service-%s", hex);
        name = gen;
    } else if (!valid_service_name(name)) {
        return usage_error("up",
                           "invalid service name '%s': use lowercase letters, digits and "
                           "dashes, starting with a letter (at most 63 characters)",
                           name);
    }

    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "name", name);
    int code = task_payload(file, &eo, req);
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
    if (connect_daemon(&d) != 0) {
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
    rc = wait_registered(&d, svc, &endpoint);
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
    static const char *hdr[] = {"SERVICE_NAME", "ID",     "VERSION", "ENDPOINT", "LAUNCHED",
                                "RESOURCES",    "STATUS", "REGION",  "ZONE"};
    ctl_table_t *t = ctl_table_new(CORE_ARRAY_SIZE(hdr), hdr);
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

static int cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {
        {"verbose", no_argument, NULL, 'v'},
        {"endpoint", no_argument, NULL, 'e'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool verbose = false, endpoint = false, json = false;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":vh", opts, NULL)) != -1) {
        switch (c) {
        case 'v':
            verbose = true;
            break;
        case 'e':
            endpoint = true;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            cmd_usage(stdout, "status");
            return 0;
        default:
            return bad_option("status", argv, c);
        }
    }
    if (endpoint && json)
        return usage_error("status", "--endpoint and --json cannot be used together");
    ctl_cli_daemon_t d;
    if (connect_daemon(&d) != 0)
        return 1;
    cJSON *doc = NULL, *services = NULL;
    char *err = NULL;
    int rc = fetch_services(&d, argv + optind, argc - optind, &doc, &services, &err);
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
            return usage_error("status",
                               "%s service%s found. Please specify an existing service to show "
                               "its endpoint. Usage: sky serve status --endpoint <service-name>",
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

static int cmd_update(int argc, char **argv)
{
    static const struct option opts[] = {
        {"mode", required_argument, NULL, 'm'},
        {"env", required_argument, NULL, 'e'},
        {"env-file", required_argument, NULL, 'E'},
        {"yes", no_argument, NULL, 'y'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *mode = "rolling";
    env_opts_t eo = {0};
    bool yes = false;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":yh", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            mode = optarg;
            break;
        case 'e':
        case 'E':
            if (env_opt("update", &eo, c, optarg) != 0)
                return 2;
            break;
        case 'y':
            yes = true;
            break;
        case 'h':
            cmd_usage(stdout, "update");
            return 0;
        default:
            return bad_option("update", argv, c);
        }
    }
    if (strcmp(mode, "rolling") != 0 && strcmp(mode, "blue_green") != 0)
        return usage_error("update", "invalid --mode '%s' (rolling or blue_green)", mode);
    if (argc - optind != 2)
        return usage_error("update", "expected NAME and SERVICE_YAML");
    const char *name = argv[optind], *file = argv[optind + 1];

    cJSON *req = cJSON_CreateObject();
    int code = task_payload(file, &eo, req);
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
    if (connect_daemon(&d) != 0) {
        cJSON_Delete(req);
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

static int cmd_down(int argc, char **argv)
{
    static const struct option opts[] = {
        {"all", no_argument, NULL, 'a'},
        {"purge", no_argument, NULL, 'p'},
        {"replica-id", required_argument, NULL, 'r'},
        {"yes", no_argument, NULL, 'y'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool all = false, purge = false, yes = false;
    long replica_id = -1;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":apyh", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            all = true;
            break;
        case 'p':
            purge = true;
            break;
        case 'r':
            if (ctl_parse_long(optarg, 1, INT_MAX, &replica_id) < 0)
                return usage_error("down", "invalid --replica-id '%s'", optarg);
            break;
        case 'y':
            yes = true;
            break;
        case 'h':
            cmd_usage(stdout, "down");
            return 0;
        default:
            return bad_option("down", argv, c);
        }
    }
    int nnames = argc - optind;
    char **names = argv + optind;
    if (all && nnames > 0)
        return usage_error("down", "cannot use service names together with -a/--all");
    if (!all && nnames == 0)
        return usage_error("down", "specify service names or -a/--all");
    if (replica_id >= 0 && (all || nnames != 1))
        return usage_error("down", "--replica-id needs exactly one service name");

    ctl_cli_daemon_t d;
    if (connect_daemon(&d) != 0)
        return 1;
    if (replica_id >= 0) {
        int rc = down_replica(&d, names[0], replica_id, purge, yes);
        ctl_cli_daemon_free(&d);
        return rc;
    }

    /* Resolve -a and globs against the current list; plain names go as given. */
    cJSON *doc = NULL, *services = NULL;
    char *err = NULL;
    int rc = fetch_services(&d, NULL, 0, &doc, &services, &err);
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

static int cmd_logs(int argc, char **argv)
{
    static const struct option opts[] = {
        {"controller", no_argument, NULL, 'c'},
        {"load-balancer", no_argument, NULL, 'l'},
        {"follow", no_argument, NULL, 'f'},
        {"no-follow", no_argument, NULL, 'F'},
        {"tail", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool controller = false, lb = false, follow = true;
    long tail = -1;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            controller = true;
            break;
        case 'l':
            lb = true;
            break;
        case 'f':
            follow = true;
            break;
        case 'F':
            follow = false;
            break;
        case 't':
            if (ctl_parse_long(optarg, 0, INT_MAX, &tail) < 0)
                return usage_error("logs", "invalid --tail '%s'", optarg);
            break;
        case 'h':
            cmd_usage(stdout, "logs");
            return 0;
        default:
            return bad_option("logs", argv, c);
        }
    }
    int npos = argc - optind;
    if (npos < 1)
        return usage_error("logs", "missing NAME");
    if (npos > 2)
        return usage_error("logs", "tailing needs exactly one target; got %d replica ids",
                           npos - 1);
    const char *name = argv[optind];
    long replica_id = -1;
    if (npos == 2 && ctl_parse_long(argv[optind + 1], 1, INT_MAX, &replica_id) < 0)
        return usage_error("logs", "invalid REPLICA_ID '%s'", argv[optind + 1]);
    int ntargets = (controller ? 1 : 0) + (lb ? 1 : 0) + (replica_id > 0 ? 1 : 0);
    if (ntargets != 1)
        return usage_error("logs", "give exactly one of REPLICA_ID, --controller or "
                                   "--load-balancer");
    if (tail >= 0)
        follow = false;

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
    if (connect_daemon(&d) != 0) {
        free(path);
        return 1;
    }
    char *err = NULL;
    long status = 0;
    int rc = ctl_cli_stream(&d, path, 0, stdout, &status, &err);
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

/* ------------------------------------------------------------------- group */

int ctl_cli_serve(int argc, char **argv)
{
    if (argc < 2) {
        group_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        group_usage(stdout);
        return 0;
    }
    const serve_cmd_t *cmd = find_cmd(argv[1]);
    if (cmd == NULL) {
        fprintf(stderr, "sky serve: unknown command '%s'\n", argv[1]);
        group_usage(stderr);
        return 2;
    }
    return cmd->run(argc - 1, argv + 1);
}
