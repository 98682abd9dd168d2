#ifndef CTL_CLI_UTIL_H
#define CTL_CLI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "cli_opt.h"
#include "core/spec.h"

/*
 * Helpers shared by the `sky` CLI's command groups (serve, spot, ...):
 * the reference's borderless tables, finding or starting a controller
 * daemon, calling its JSON API, and small argument/prompt utilities.
 */

/* ------------------------------------------------------------------ tables */

/*
 * A borderless table as the reference prints them (prettytable with
 * border=False, left-aligned, two spaces between columns): the header row
 * first, each column as wide as its widest cell. Trailing blanks of each
 * line are dropped. Cells are copied; widths count UTF-8 code points.
 */
typedef struct ctl_table ctl_table_t;

ctl_table_t *ctl_table_new(size_t ncols, const char *const *headers);
/* <cells> has ncols entries; NULL and empty cells print as "-". */
void ctl_table_add_row(ctl_table_t *t, const char *const *cells);
size_t ctl_table_nrows(const ctl_table_t *t);
/* The whole table, one '\n'-terminated line per row. Caller frees. */
char *ctl_table_render(const ctl_table_t *t);
void ctl_table_print(const ctl_table_t *t, FILE *f);
void ctl_table_free(ctl_table_t *t);

/* Display width of a UTF-8 string (code points). */
size_t ctl_utf8_width(const char *s);

/* ------------------------------------------------------------------ daemon */

/*
 * A controller daemon ("serve" or "jobs" mode): its base URL and bearer
 * token. State lives in $SKY_HOME/<mode>/ (controller.port, controller.log).
 */
typedef struct ctl_cli_daemon {
    char *mode;     /* "serve", "jobs" */
    char *base_url; /* "http://127.0.0.1:PORT" */
    char *token;
    int pid; /* from /health, 0 if unknown */
} ctl_cli_daemon_t;

/*
 * Finds the running daemon of <mode> ($SKY_HOME/<mode>/controller.port and
 * GET /health) or starts `sky-controller --mode <mode>` and waits up to
 * <wait_ms> for it to answer. Concurrent CLIs agree on one daemon through a
 * lock file. *err gets a sentence on failure.
 */
int ctl_cli_daemon_connect(const char *mode, long wait_ms, ctl_cli_daemon_t *out, char **err);
/*
 * ctl_cli_daemon_connect() for a command of <group> ("sky serve"): prints
 * its error as ctl_cli_fail() does. Returns 0, or 1 (the exit code).
 */
int ctl_cli_connect(const char *group, const char *mode, long wait_ms, ctl_cli_daemon_t *out);
/*
 * What ctl_cli_connect_read() answers when there is no daemon to ask:
 * NONE, it never ran here (or its state is gone); STOPPED, it stopped by
 * itself or was told to, with nothing left to do ($SKY_HOME/<mode>/
 * controller.stopped, which it removes when it starts).
 */
#define CTL_CLI_NONE    (-2)
#define CTL_CLI_STOPPED (-3)
/*
 * For commands that only ask (status, queue, logs, cancel): the daemon of
 * <mode> if it runs. Otherwise it is started only when <refresh> is set, or
 * when its state ($SKY_HOME/<mode>/<db>) says it died with work to do;
 * else nothing is started and CTL_CLI_NONE or CTL_CLI_STOPPED is returned.
 * 0 connected, 1 after printing an error (prefixed with <group>).
 */
int ctl_cli_connect_read(const char *group, const char *mode, const char *db, bool refresh,
                         long wait_ms, ctl_cli_daemon_t *out);
/*
 * Starts the local cloud if it does not run, for a command that needs
 * instances (after `sky cloud down`, nothing else starts it). 0, or 1 after
 * printing why not.
 */
int ctl_cli_cloud_up(const char *group);
/*
 * Stops the daemon of <mode> if one runs (SIGTERM to the pid its health
 * check gives, SIGKILL after <wait_ms>) and waits for it to exit. 1 when
 * it stopped one, 0 when none ran, negative on failure.
 */
int ctl_cli_stop_daemon(const char *mode, long wait_ms);
/* Same discovery, never starts anything: -ENOENT when no daemon answers. */
int ctl_cli_daemon_find(const char *mode, ctl_cli_daemon_t *out);
void ctl_cli_daemon_free(ctl_cli_daemon_t *d);

/*
 * One JSON call to the daemon. <path> starts with '/' and may carry a query.
 * Returns 0 on 2xx (*resp gets the parsed reply, may be NULL if not JSON),
 * CORE_EHTTP on another status (*status set, *err gets the reply's "error"
 * or "HTTP <status>"), or a transport errno (*err says the daemon is
 * unreachable). resp and status may be NULL.
 */
int ctl_cli_api(const ctl_cli_daemon_t *d, const char *method, const char *path, const cJSON *req,
                long timeout_ms, long *status, cJSON **resp, char **err);

/*
 * Streams a GET's body to <out> as it arrives (log follow). Non-2xx replies
 * are not written: *err gets their "error" instead. timeout_ms 0 = none.
 */
int ctl_cli_stream(const ctl_cli_daemon_t *d, const char *path, long timeout_ms, FILE *out,
                   long *status, char **err);

/* --------------------------------------------------------------- utilities */

/* Prints "<group>: <message>" on stderr; returns 1, the failure exit code. */
int ctl_cli_fail(const char *group, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Percent-encodes <s> for a query value. Caller frees. */
char *ctl_url_escape(const char *s);
/* Prints <doc> as indented JSON plus a newline. */
void ctl_cli_print_json(FILE *f, const cJSON *doc);
/*
 * Asks "<question> [Y/n]: " on stdout when stdin is a terminal; returns
 * true when the answer is yes (empty = default_yes). Without a terminal it
 * returns true: scripts pass -y or pipe nothing.
 */
bool ctl_cli_confirm(const char *question, bool default_yes);
/*
 * A task's environment from `--env-file F` and `--env K=V` / `--env K` (the
 * caller's value of K), merged as the reference does: the file first, --env
 * on top. Returns 0 with *out (a JSON object of strings; caller frees) or
 * an exit code with *err set: 2 for a malformed --env, 1 for a file that
 * cannot be read or parsed, or more than CTL_CLI_MAX_ENVS variables.
 */
int ctl_cli_envs(const ctl_cli_env_t *env, cJSON **out, char **err);

/*
 * The task flags (ctl_cli_task_t) as the overrides object that
 * core_task_parse_with() applies, as the reference's
 * _handle_infra_cloud_region_zone_options and _parse_override_params build
 * it: 'none' resets a field ('*' too for cloud, region, zone); --infra
 * replaces cloud, region and zone together and excludes them; --workdir
 * must be a directory and is sent absolute; --secret KEY takes KEY's value
 * from this environment. Returns CTL_CLI_RUN with *out (an object, maybe
 * empty; caller frees), or 2 after a usage error.
 */
int ctl_cli_task_overrides(const ctl_cli_t *cli, const ctl_cli_task_t *t, cJSON **out);

/*
 * A task as the CLI sends it: the YAML text with where it came from, and
 * the --env and task-flag overrides, parsed here too (so that errors and
 * warnings show at once, and for the plan). ENTRYPOINT is a YAML file, or
 * else a command, which becomes `run:` of a task named sky-cmd (as the
 * reference's `sky launch 'echo hi'`).
 */
typedef struct ctl_cli_src {
    char *yaml;
    char *yaml_path; /* absolute; NULL for a command */
    char *cwd;
    cJSON *envs;      /* object, maybe empty */
    cJSON *overrides; /* object, maybe empty */
    core_task_t *task;
} ctl_cli_src_t;

/*
 * Loads ENTRYPOINT (<entry>, <n> words) with <env> and <flags>; <extra>
 * (may be NULL) is merged into overrides.resources (--job-recovery, sky
 * spot's use_spot). Errors go to stderr prefixed by <group>; warnings too.
 * Returns 0, 1 (unreadable or invalid) or 2 (usage error).
 */
int ctl_cli_src_load(const ctl_cli_t *cli, const char *group, char **entry, int n,
                     const ctl_cli_env_t *env, const ctl_cli_task_t *flags, const cJSON *extra,
                     ctl_cli_src_t *out);
/* Adds yaml, yaml_path, cwd and the non-empty envs and overrides to <req>. */
void ctl_cli_src_to_json(const ctl_cli_src_t *s, cJSON *req);
void ctl_cli_src_free(ctl_cli_src_t *s);

/*
 * The reference optimizer's table for <t> from the catalog ($SKY_HOME's or
 * the shipped one; nothing else is read or started): the cheapest choice of
 * each cloud, the chosen one marked, and its hourly price. 0, or 1 after
 * printing why nothing fits.
 */
int ctl_cli_print_plan(FILE *f, const char *group, const core_task_t *t);

/* "sky-service-1a2b"-style random suffix: <n> lowercase hex digits. */
void ctl_random_hex(char *out, size_t n);

#endif
