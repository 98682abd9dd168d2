#ifndef CTL_CLI_OPT_H
#define CTL_CLI_OPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/*
 * The `sky` CLI's command tree and option parser, both tables.
 *
 * A command group is an array of ctl_cli_cmd_t ended by an entry whose name
 * is NULL: each entry runs a handler or opens a sub-group. ctl_cli_main()
 * walks the tree from argv; at a group, -h/--help lists its commands (exit
 * 0) and a missing or unknown command is a usage error (exit 2). An alias
 * group (say `sky spot` next to `sky jobs`) is a second entry pointing at
 * the same array, or at an array of its own whose entries share handlers
 * and differ where the alias behaves differently; messages and usage name
 * what the user typed (cli->prog).
 *
 * A handler declares its options and positional arguments in one ctl_opt_t
 * array whose entries point at the handler's own variables, then parses:
 *
 *     const char *name = NULL, *file = NULL;
 *     bool yes = false;
 *     ctl_cli_env_t env = {0};
 *     const ctl_opt_t opts[] = {
 *         CTL_OPT_STR('n', "service-name", "NAME", "the service's name", &name),
 *         CTL_OPTS_ENV(&env),
 *         CTL_OPT_YES(&yes),
 *         CTL_ARG_STR("SERVICE_YAML", "the task YAML", &file),
 *         CTL_OPT_END,
 *     };
 *     int rc = ctl_cli_parse(cli, opts, argc, argv);
 *     if (rc != CTL_CLI_RUN)
 *         return rc;
 *
 * ctl_cli_parse() answers -h/--help with the usage built from the table
 * (exit 0), and rejects an unknown option, a missing value, a value that
 * is not a number in range, and missing or extra positional arguments with
 * the usage (exit 2), all before the handler does anything: no daemon is
 * reached for a usage error or for --help. Options and arguments mix in any
 * order; "--" ends the options; "--opt=value", "-nNAME" and "-yd" work as
 * with getopt_long, abbreviations of long names do not.
 *
 * Options that several commands share are one CTL_OPTS_<GROUP>(values)
 * macro over a struct of their values (CTL_OPTS_ENV below), so that each
 * command lists them with the same names, metavars and help. A group opens
 * with a CTL_OPT_SECTION heading, under which --help lists it; a command
 * lists its own options first, then the groups it takes.
 */

/* ctl_cli_parse() returns this when the handler should go on. */
#define CTL_CLI_RUN (-1)

typedef struct ctl_opt ctl_opt_t;
typedef struct ctl_cli_cmd ctl_cli_cmd_t;

/* What a handler knows of its call. */
typedef struct ctl_cli {
    char prog[128];           /* "sky serve up": message prefix and usage */
    const ctl_cli_cmd_t *cmd; /* the entry being run */
    const ctl_opt_t *opts;    /* set by ctl_cli_parse() for later usage errors */
    FILE *out, *err;          /* where help and usage errors go */
} ctl_cli_t;

struct ctl_cli_cmd {
    const char *name;
    /* One line, in the group's listing and the command's --help; what follows a
     * blank line ("line\n\nmore") is printed by --help only. */
    const char *summary;
    /* Exactly one of: */
    int (*run)(ctl_cli_t *cli, int argc, char **argv); /* argv[0] is the command's name */
    const ctl_cli_cmd_t *sub;                          /* a group */
};

/*
 * Runs the command that argv names under <root> (argv[0] is the program,
 * argv[1] the first command). Returns the exit code: the handler's, or 0
 * after a group's help, 2 after a usage error.
 */
int ctl_cli_main(const ctl_cli_cmd_t *root, int argc, char **argv, FILE *out, FILE *err);

typedef enum {
    CTL_OPT_TYPE_END = 0,
    CTL_OPT_TYPE_SECTION, /* a heading in --help */
    CTL_OPT_TYPE_FLAG,    /* bool: true when given */
    CTL_OPT_TYPE_BOOL,    /* int: 1 for --X, 0 for --no-X, untouched when absent */
    CTL_OPT_TYPE_STR,     /* const char *: the value; the last one wins */
    CTL_OPT_TYPE_CHOICE,  /* const char *: one of choices[] */
    CTL_OPT_TYPE_LIST,    /* const char *[cap] + size_t count: every value, in order */
    CTL_OPT_TYPE_INT,     /* long in [lo, hi] */
    CTL_OPT_TYPE_NUM,     /* double in [lo, hi] */
    CTL_OPT_TYPE_REST,    /* positional only: char ** into argv + int count */
} ctl_opt_type_t;

struct ctl_opt {
    ctl_opt_type_t type;
    char short_name;       /* 0: none */
    const char *long_name; /* without "--"; NULL for a positional argument */
    const char *metavar;   /* the value's (or the positional's) name in usage */
    const char *help;
    bool positional;
    bool optional; /* positional only: may be left out */
    union {        /* by type, so that the macros below check the variable's type */
        bool *flag;
        int *tristate;
        const char **str;
        const char **list;
        long *num_long;
        double *num;
        char ***rest;
    } dest;
    union {
        size_t *list;
        int *rest;
    } count;
    size_t cap;                 /* LIST: at most this many values */
    double lo, hi;              /* INT, NUM: the accepted range */
    const char *const *choices; /* CHOICE: NULL-terminated */
};

/* ------------------------------------------------------------ declaring */

#define CTL_OPT_END {.type = CTL_OPT_TYPE_END}
#define CTL_OPT_SECTION(title) {.type = CTL_OPT_TYPE_SECTION, .help = (title)}

#define CTL_OPT_FLAG(s, l, h, p)                                                                  \
    {.type = CTL_OPT_TYPE_FLAG, .short_name = (s), .long_name = (l), .help = (h), .dest.flag = (p)}
/* --l sets *p to 1 and --no-l to 0; the caller's value (-1 for "unset") stays otherwise. */
#define CTL_OPT_BOOL(s, l, h, p)                                                                  \
    {.type = CTL_OPT_TYPE_BOOL, .short_name = (s), .long_name = (l), .help = (h),                 \
     .dest.tristate = (p)}
#define CTL_OPT_STR(s, l, mv, h, p)                                                               \
    {.type = CTL_OPT_TYPE_STR, .short_name = (s), .long_name = (l), .metavar = (mv), .help = (h), \
     .dest.str = (p)}
#define CTL_OPT_CHOICE(s, l, h, p, choice_list)                                                   \
    {.type = CTL_OPT_TYPE_CHOICE, .short_name = (s), .long_name = (l), .help = (h),               \
     .dest.str = (p), .choices = (choice_list)}
/* <arr> is an array of const char * with room for <max> values; *n counts them. */
#define CTL_OPT_LIST(s, l, mv, h, arr, n, max)                                                    \
    {.type = CTL_OPT_TYPE_LIST, .short_name = (s), .long_name = (l), .metavar = (mv),             \
     .help = (h), .dest.list = (arr), .count.list = (n), .cap = (max)}
#define CTL_OPT_INT(s, l, mv, h, p, min, max)                                                     \
    {.type = CTL_OPT_TYPE_INT, .short_name = (s), .long_name = (l), .metavar = (mv), .help = (h), \
     .dest.num_long = (p), .lo = (min), .hi = (max)}
#define CTL_OPT_NUM(s, l, mv, h, p, min, max)                                                     \
    {.type = CTL_OPT_TYPE_NUM, .short_name = (s), .long_name = (l), .metavar = (mv), .help = (h), \
     .dest.num = (p), .lo = (min), .hi = (max)}

/* Positional arguments, matched in table order; optional ones take what the
 * required ones leave, left to right; REST (the last) takes the remainder. */
#define CTL_ARG_STR(name, h, p)                                                                   \
    {.type = CTL_OPT_TYPE_STR, .positional = true, .metavar = (name), .help = (h),                \
     .dest.str = (p)}
#define CTL_ARG_STR_OPT(name, h, p)                                                               \
    {.type = CTL_OPT_TYPE_STR, .positional = true, .optional = true, .metavar = (name),           \
     .help = (h), .dest.str = (p)}
#define CTL_ARG_INT_OPT(name, h, p, min, max)                                                     \
    {.type = CTL_OPT_TYPE_INT, .positional = true, .optional = true, .metavar = (name),           \
     .help = (h), .dest.num_long = (p), .lo = (min), .hi = (max)}
/* One or more arguments (REST), or any number (REST_OPT); *pv points into argv. */
#define CTL_ARG_REST(name, h, pv, pn)                                                             \
    {.type = CTL_OPT_TYPE_REST, .positional = true, .metavar = (name), .help = (h),               \
     .dest.rest = (pv), .count.rest = (pn)}
#define CTL_ARG_REST_OPT(name, h, pv, pn)                                                         \
    {.type = CTL_OPT_TYPE_REST, .positional = true, .optional = true, .metavar = (name),          \
     .help = (h), .dest.rest = (pv), .count.rest = (pn)}

/* ------------------------------------------------- shared options and groups */

#define CTL_OPT_YES(p) CTL_OPT_FLAG('y', "yes", "do not ask for confirmation", p)
#define CTL_OPT_DETACH(p)                                                                         \
    CTL_OPT_FLAG('d', "detach-run", "return once submitted instead of following the logs", p)

/* --env and --env-file, merged by ctl_cli_envs() (cli_util.h). */
#define CTL_CLI_MAX_ENVS 256
typedef struct ctl_cli_env {
    const char *file;
    const char *kv[CTL_CLI_MAX_ENVS];
    size_t n;
} ctl_cli_env_t;

#define CTL_OPTS_ENV(e)                                                                           \
    CTL_OPT_SECTION("Task environment"),                                                          \
        CTL_OPT_STR(0, "env-file", "FILE", "task environment from a dotenv file", &(e)->file),    \
        CTL_OPT_LIST(0, "env", "KEY[=VALUE]",                                                     \
                     "one variable (KEY alone: its value here); overrides --env-file; "           \
                     "repeatable",                                                                \
                     (e)->kv, &(e)->n, CTL_CLI_MAX_ENVS)

/*
 * The task flags of `sky launch`, `sky exec`, `sky serve up|update` and
 * `sky jobs launch` (SkyPilot's TASK_OPTIONS and EXTRA_RESOURCES_OPTIONS,
 * sky/client/cli/flags.py), turned into the overrides that
 * core_task_parse_with() applies by ctl_cli_task_overrides() (cli_util.h).
 */
#define CTL_CLI_MAX_SECRETS 256
#define CTL_CLI_MAX_PORTS   64
typedef struct ctl_cli_task {
    const char *workdir, *infra, *cloud, *region, *zone;
    const char *cpus, *memory, *gpus, *instance_type, *image_id, *disk_tier, *network_tier;
    long num_nodes; /* 0: not given */
    long disk_size; /* 0: not given */
    int use_spot;   /* -1: not given */
    int async;      /* --async / --no-async */
    const char *ports[CTL_CLI_MAX_PORTS];
    size_t n_ports;
    const char *secrets[CTL_CLI_MAX_SECRETS];
    size_t n_secrets;
} ctl_cli_task_t;

#define CTL_CLI_TASK_INIT {.use_spot = -1}

extern const char *const ctl_cli_disk_tiers[];
extern const char *const ctl_cli_network_tiers[];

#define CTL_OPTS_TASK(t)                                                                          \
    CTL_OPT_SECTION("Task overrides (each replaces the YAML's value; 'none' resets it)"),         \
        CTL_OPT_STR(0, "workdir", "DIR", "the directory synced to the task's working directory",  \
                    &(t)->workdir),                                                               \
        CTL_OPT_STR(0, "infra", "INFRA", "cloud[/region[/zone]], '*' for any (e.g. gcp/us-east1)",\
                    &(t)->infra),                                                                 \
        CTL_OPT_STR(0, "cloud", "CLOUD", "the cloud (deprecated: use --infra)", &(t)->cloud),     \
        CTL_OPT_STR(0, "region", "REGION", "the region (deprecated: use --infra)", &(t)->region), \
        CTL_OPT_STR(0, "zone", "ZONE", "the zone (deprecated: use --infra)", &(t)->zone),         \
        CTL_OPT_INT(0, "num-nodes", "N", "nodes to run the task on (only 1 for now)",             \
                    &(t)->num_nodes, 1, 1000000),                                                 \
        CTL_OPT_STR(0, "cpus", "N[+]", "vCPUs per instance: exactly N, or at least N with +",     \
                    &(t)->cpus),                                                                  \
        CTL_OPT_STR(0, "memory", "GB[+]", "memory per instance: exactly, or at least with +",     \
                    &(t)->memory),                                                                \
        CTL_OPT_STR(0, "gpus", "NAME[:N]", "accelerators per instance, e.g. V100:1", &(t)->gpus), \
        CTL_OPT_STR('t', "instance-type", "TYPE", "the instance type", &(t)->instance_type),      \
        CTL_OPT_BOOL(0, "use-spot", "spot instances (--no-use-spot: on-demand)", &(t)->use_spot), \
        CTL_OPT_LIST(0, "ports", "PORT[-PORT]", "ports to open; repeatable", (t)->ports,          \
                     &(t)->n_ports, CTL_CLI_MAX_PORTS),                                           \
        CTL_OPT_STR(0, "image-id", "IMAGE", "a machine image (ignored here, with a warning)",     \
                    &(t)->image_id),                                                              \
        CTL_OPT_INT(0, "disk-size", "GB", "disk size (ignored here, with a warning)",             \
                    &(t)->disk_size, 1, 1000000),                                                 \
        CTL_OPT_CHOICE(0, "disk-tier", "disk tier (ignored here, with a warning)",                \
                       &(t)->disk_tier, ctl_cli_disk_tiers),                                      \
        CTL_OPT_CHOICE(0, "network-tier", "network tier (ignored here, with a warning)",          \
                       &(t)->network_tier, ctl_cli_network_tiers),                                \
        CTL_OPT_LIST(0, "secret", "KEY[=VALUE]",                                                  \
                     "one secret variable (KEY alone: its value here); repeatable",               \
                     (t)->secrets, &(t)->n_secrets, CTL_CLI_MAX_SECRETS),                         \
        CTL_OPT_BOOL(0, "async", "return once the request is accepted, without waiting",          \
                     &(t)->async)

/* -------------------------------------------------------------- parsing */

/*
 * Parses argv[1..] against <opts> (argv[0] is the command's name) and
 * stores each value through its entry. Positional arguments are moved to
 * argv[1..] in their order (REST points there). Returns CTL_CLI_RUN, or an
 * exit code after printing: 0 for --help (cli->out), 2 for a usage error
 * (cli->err), 1 for a table that contradicts itself (a bug, also reported).
 */
int ctl_cli_parse(ctl_cli_t *cli, const ctl_opt_t *opts, int argc, char **argv);

/* Prints "<prog>: <message>" and the command's usage to cli->err; returns 2. */
int ctl_cli_usage_error(const ctl_cli_t *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * A whole number in [lo, hi] (core_parse_num: no blanks after, no junk)
 * named <what> in the error. Returns CTL_CLI_RUN, or 2 after a usage error.
 */
int ctl_cli_int(const ctl_cli_t *cli, const char *what, const char *s, long lo, long hi,
                long *out);

/* The command's --help text. */
void ctl_cli_help(const ctl_cli_t *cli, const ctl_opt_t *opts, FILE *f);

/*
 * 0 if <opts> is well formed (names unique and not -h/--help, values where
 * a type needs them, REST last), else -EINVAL and *why (static text).
 */
int ctl_opt_check(const ctl_opt_t *opts, const char **why);

#endif
