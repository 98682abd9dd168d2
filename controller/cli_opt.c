/*
 * The `sky` CLI's command tree and option parser (cli_opt.h). Everything a
 * user can type is checked here, from the tables, before a handler runs.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli_opt.h"
#include "core/util.h"

const char *const ctl_cli_disk_tiers[] = {"low", "medium", "high", "ultra", "best", "none", NULL};
const char *const ctl_cli_network_tiers[] = {"standard", "best", "none", NULL};

/* Labels longer than this put their help on the next line. */
#define HELP_COLUMN_MAX 30

static bool takes_value(const ctl_opt_t *o)
{
    return o->type != CTL_OPT_TYPE_FLAG && o->type != CTL_OPT_TYPE_BOOL;
}

static bool is_option(const ctl_opt_t *o)
{
    return !o->positional && o->type != CTL_OPT_TYPE_SECTION;
}

static bool same_long(const ctl_opt_t *a, const char *name, size_t len)
{
    return strlen(a->long_name) == len && strncmp(a->long_name, name, len) == 0;
}

/* -------------------------------------------------------------- the table */

static const char *check_one(const ctl_opt_t *o)
{
    if (o->type == CTL_OPT_TYPE_SECTION)
        return o->help ? NULL : "a section without a title";
    if (o->dest.flag == NULL)
        return "an entry without a variable";
    if (o->positional) {
        if (o->metavar == NULL || o->long_name || o->short_name)
            return "a positional argument needs a name and no option name";
        if (o->type != CTL_OPT_TYPE_STR && o->type != CTL_OPT_TYPE_INT &&
            o->type != CTL_OPT_TYPE_REST)
            return "a positional argument is STR, INT or REST";
        if (o->type == CTL_OPT_TYPE_REST && o->count.rest == NULL)
            return "REST without a count";
        return NULL;
    }
    if (o->type == CTL_OPT_TYPE_REST)
        return "REST is for positional arguments";
    if (o->long_name == NULL || o->long_name[0] == '\0' || o->long_name[0] == '-')
        return "an option needs a long name, without dashes";
    if (strcmp(o->long_name, "help") == 0 || o->short_name == 'h' || o->short_name == '-')
        return "-h and --help are the parser's";
    if (takes_value(o) && o->type != CTL_OPT_TYPE_CHOICE && o->metavar == NULL)
        return "an option with a value needs a metavar";
    if (o->type == CTL_OPT_TYPE_CHOICE && (o->choices == NULL || o->choices[0] == NULL))
        return "CHOICE without choices";
    if (o->type == CTL_OPT_TYPE_LIST && (o->count.list == NULL || o->cap == 0))
        return "LIST without a count or room";
    if ((o->type == CTL_OPT_TYPE_INT || o->type == CTL_OPT_TYPE_NUM) && !(o->lo <= o->hi))
        return "a number with an empty range";
    return NULL;
}

int ctl_opt_check(const ctl_opt_t *opts, const char **why)
{
    bool rest_seen = false;
    for (const ctl_opt_t *o = opts; o->type != CTL_OPT_TYPE_END; o++) {
        const char *bad = check_one(o);
        if (bad == NULL && o->positional && rest_seen)
            bad = "REST must be the last positional argument";
        if (o->positional && o->type == CTL_OPT_TYPE_REST)
            rest_seen = true;
        for (const ctl_opt_t *p = opts; bad == NULL && is_option(o) && p != o; p++) {
            if (!is_option(p))
                continue;
            if (strcmp(p->long_name, o->long_name) == 0 ||
                (o->short_name && p->short_name == o->short_name))
                bad = "an option declared twice";
            /* --no-X of a BOOL X would shadow an option named no-X. */
            const ctl_opt_t *b = p->type == CTL_OPT_TYPE_BOOL ? p : o, *x = b == p ? o : p;
            if (b->type == CTL_OPT_TYPE_BOOL && strncmp(x->long_name, "no-", 3) == 0 &&
                strcmp(x->long_name + 3, b->long_name) == 0)
                bad = "an option named like the negation of a BOOL";
        }
        if (bad) {
            *why = bad;
            return -EINVAL;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ help */

/* "\n<first line>.\n", then the paragraphs after it, if any. */
static void print_summary(FILE *f, const char *summary)
{
    if (summary == NULL)
        return;
    size_t n = strcspn(summary, "\n");
    fprintf(f, "\n%.*s.\n", (int)n, summary);
    if (summary[n])
        fprintf(f, "%s\n", summary + n + 1);
}

static void label(const ctl_opt_t *o, char *buf, size_t n)
{
    if (o->positional) {
        snprintf(buf, n, "%s", o->metavar);
        return;
    }
    int k = o->short_name ? snprintf(buf, n, "-%c, ", o->short_name) : snprintf(buf, n, "    ");
    switch (o->type) {
    case CTL_OPT_TYPE_FLAG:
        snprintf(buf + k, n - (size_t)k, "--%s", o->long_name);
        break;
    case CTL_OPT_TYPE_BOOL:
        snprintf(buf + k, n - (size_t)k, "--%s / --no-%s", o->long_name, o->long_name);
        break;
    case CTL_OPT_TYPE_CHOICE:
        k += snprintf(buf + k, n - (size_t)k, "--%s [", o->long_name);
        for (size_t i = 0; o->choices[i] && (size_t)k < n; i++)
            k += snprintf(buf + k, n - (size_t)k, "%s%s", i ? "|" : "", o->choices[i]);
        if ((size_t)k < n)
            snprintf(buf + k, n - (size_t)k, "]");
        break;
    default:
        snprintf(buf + k, n - (size_t)k, "--%s %s", o->long_name, o->metavar);
        break;
    }
}

static void help_line(FILE *f, const char *lab, const char *help, int width)
{
    if ((int)strlen(lab) > width)
        fprintf(f, "  %s\n  %*s  %s\n", lab, width, "", help ? help : "");
    else
        fprintf(f, "  %-*s  %s\n", width, lab, help ? help : "");
}

static void synopsis(const ctl_cli_t *cli, const ctl_opt_t *opts, FILE *f)
{
    fprintf(f, "usage: %s [OPTIONS]", cli->prog);
    for (const ctl_opt_t *o = opts; o->type != CTL_OPT_TYPE_END; o++) {
        if (!o->positional)
            continue;
        if (o->type == CTL_OPT_TYPE_REST)
            fprintf(f, o->optional ? " [%s]..." : " %s...", o->metavar);
        else
            fprintf(f, o->optional ? " [%s]" : " %s", o->metavar);
    }
    fputc('\n', f);
}

void ctl_cli_help(const ctl_cli_t *cli, const ctl_opt_t *opts, FILE *f)
{
    static const ctl_opt_t help_opt = CTL_OPT_FLAG('h', "help", "show this help and exit", NULL);
    char buf[256];
    int width = 0;
    bool any_arg = false;
    for (const ctl_opt_t *o = opts;; o++) {
        const ctl_opt_t *x = o->type == CTL_OPT_TYPE_END ? &help_opt : o;
        if (x->type != CTL_OPT_TYPE_SECTION) {
            label(x, buf, sizeof(buf));
            int w = (int)strlen(buf);
            if (w <= HELP_COLUMN_MAX && w > width)
                width = w;
        }
        any_arg |= o->positional;
        if (o->type == CTL_OPT_TYPE_END)
            break;
    }
    synopsis(cli, opts, f);
    if (cli->cmd)
        print_summary(f, cli->cmd->summary);
    if (any_arg) {
        fprintf(f, "\nArguments:\n");
        for (const ctl_opt_t *o = opts; o->type != CTL_OPT_TYPE_END; o++) {
            if (o->positional)
                help_line(f, o->metavar, o->help, width);
        }
    }
    fprintf(f, "\nOptions:\n");
    bool help_shown = false;
    for (const ctl_opt_t *o = opts;; o++) {
        /* -h/--help closes the command's own options, before any section. */
        if (!help_shown && (o->type == CTL_OPT_TYPE_SECTION || o->type == CTL_OPT_TYPE_END)) {
            label(&help_opt, buf, sizeof(buf));
            help_line(f, buf, help_opt.help, width);
            help_shown = true;
        }
        if (o->type == CTL_OPT_TYPE_END)
            break;
        if (o->type == CTL_OPT_TYPE_SECTION) {
            fprintf(f, "\n%s:\n", o->help);
        } else if (!o->positional) {
            label(o, buf, sizeof(buf));
            help_line(f, buf, o->help, width);
        }
    }
}

int ctl_cli_usage_error(const ctl_cli_t *cli, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(cli->err, "%s: ", cli->prog);
    vfprintf(cli->err, fmt, ap);
    fputc('\n', cli->err);
    va_end(ap);
    if (cli->opts)
        synopsis(cli, cli->opts, cli->err);
    fprintf(cli->err, "Try '%s --help' for more information.\n", cli->prog);
    return 2;
}

/* --------------------------------------------------------------- values */

int ctl_cli_int(const ctl_cli_t *cli, const char *what, const char *s, long lo, long hi,
                long *out)
{
    double d;
    if (core_parse_num(s, (double)lo, (double)hi, &d) < 0 || d != floor(d))
        return ctl_cli_usage_error(cli, "invalid %s '%s': expected a whole number from %ld to %ld",
                                   what, s, lo, hi);
    *out = (long)d;
    return CTL_CLI_RUN;
}

/* Stores <v>, given for <o> as <shown> ("--tail", "-n", "REPLICA_ID"). */
static int set_value(const ctl_cli_t *cli, const ctl_opt_t *o, const char *shown, const char *v)
{
    switch (o->type) {
    case CTL_OPT_TYPE_STR:
        *o->dest.str = v;
        return CTL_CLI_RUN;
    case CTL_OPT_TYPE_CHOICE: {
        char choices[256];
        size_t k = 0;
        for (size_t i = 0; o->choices[i]; i++) {
            if (strcmp(o->choices[i], v) == 0) {
                *o->dest.str = o->choices[i];
                return CTL_CLI_RUN;
            }
            if (k < sizeof(choices))
                k += (size_t)snprintf(choices + k, sizeof(choices) - k, "%s'%s'", i ? ", " : "",
                                      o->choices[i]);
        }
        return ctl_cli_usage_error(cli, "invalid %s '%s' (choose from %s)", shown, v, choices);
    }
    case CTL_OPT_TYPE_LIST:
        if (*o->count.list >= o->cap)
            return ctl_cli_usage_error(cli, "too many %s options (at most %zu)", shown, o->cap);
        o->dest.list[(*o->count.list)++] = v;
        return CTL_CLI_RUN;
    case CTL_OPT_TYPE_INT:
        return ctl_cli_int(cli, shown, v, (long)o->lo, (long)o->hi, o->dest.num_long);
    case CTL_OPT_TYPE_NUM:
        if (core_parse_num(v, o->lo, o->hi, o->dest.num) < 0)
            return ctl_cli_usage_error(cli, "invalid %s '%s': expected a number from %g to %g",
                                       shown, v, o->lo, o->hi);
        return CTL_CLI_RUN;
    default:
        return ctl_cli_usage_error(cli, "%s takes no value", shown);
    }
}

static void set_flag(const ctl_opt_t *o, bool on)
{
    if (o->type == CTL_OPT_TYPE_FLAG)
        *o->dest.flag = on;
    else
        *o->dest.tristate = on ? 1 : 0;
}

/* ------------------------------------------------------------- parsing */

static const ctl_opt_t *find_long(const ctl_opt_t *opts, const char *name, size_t len,
                                  bool *negated)
{
    *negated = false;
    for (const ctl_opt_t *o = opts; o->type != CTL_OPT_TYPE_END; o++) {
        if (is_option(o) && same_long(o, name, len))
            return o;
    }
    if (len > 3 && strncmp(name, "no-", 3) == 0) {
        for (const ctl_opt_t *o = opts; o->type != CTL_OPT_TYPE_END; o++) {
            if (o->type == CTL_OPT_TYPE_BOOL && !o->positional && same_long(o, name + 3, len - 3)) {
                *negated = true;
                return o;
            }
        }
    }
    return NULL;
}

static const ctl_opt_t *find_short(const ctl_opt_t *opts, char c)
{
    for (const ctl_opt_t *o = opts; o->type != CTL_OPT_TYPE_END; o++) {
        if (is_option(o) && o->short_name == c)
            return o;
    }
    return NULL;
}

/* argv[*i] is "--name[=value]"; a value may also be the next argument. */
static int long_option(const ctl_cli_t *cli, const ctl_opt_t *opts, int argc, char **argv, int *i)
{
    const char *name = argv[*i] + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    char shown[128];
    snprintf(shown, sizeof(shown), "--%.*s", (int)len, name);
    if (len == 4 && strncmp(name, "help", 4) == 0) {
        if (eq)
            return ctl_cli_usage_error(cli, "option '%s' takes no value", shown);
        ctl_cli_help(cli, opts, cli->out);
        return 0;
    }
    bool negated;
    const ctl_opt_t *o = find_long(opts, name, len, &negated);
    if (o == NULL)
        return ctl_cli_usage_error(cli, "unknown option '%s'", shown);
    if (!takes_value(o)) {
        if (eq)
            return ctl_cli_usage_error(cli, "option '%s' takes no value", shown);
        set_flag(o, !negated);
        return CTL_CLI_RUN;
    }
    if (eq)
        return set_value(cli, o, shown, eq + 1);
    if (*i + 1 >= argc)
        return ctl_cli_usage_error(cli, "option '%s' needs a value", shown);
    return set_value(cli, o, shown, argv[++*i]);
}

/* argv[*i] is "-abc": flags, the last of which may take a value ("-nNAME", "-n NAME"). */
static int short_options(const ctl_cli_t *cli, const ctl_opt_t *opts, int argc, char **argv,
                         int *i)
{
    const char *arg = argv[*i];
    for (size_t j = 1; arg[j]; j++) {
        char shown[3] = {'-', arg[j], '\0'};
        if (arg[j] == 'h') {
            ctl_cli_help(cli, opts, cli->out);
            return 0;
        }
        const ctl_opt_t *o = find_short(opts, arg[j]);
        if (o == NULL)
            return ctl_cli_usage_error(cli, "unknown option '%s'", shown);
        if (!takes_value(o)) {
            set_flag(o, true);
            continue;
        }
        if (arg[j + 1])
            return set_value(cli, o, shown, arg + j + 1);
        if (*i + 1 >= argc)
            return ctl_cli_usage_error(cli, "option '%s' needs a value", shown);
        return set_value(cli, o, shown, argv[++*i]);
    }
    return CTL_CLI_RUN;
}

/*
 * argv[1..npos] are the positional arguments in order. Required ones are
 * served first; the optional ones share what is left, left to right; REST
 * takes the remainder.
 */
static int assign_positionals(const ctl_cli_t *cli, const ctl_opt_t *opts, char **argv, int npos)
{
    int nreq = 0, nopt = 0;
    bool rest = false;
    for (const ctl_opt_t *o = opts; o->type != CTL_OPT_TYPE_END; o++) {
        if (!o->positional)
            continue;
        if (o->type == CTL_OPT_TYPE_REST)
            rest = true;
        if (!o->optional)
            nreq++;
        else if (o->type != CTL_OPT_TYPE_REST)
            nopt++;
    }
    if (!rest && npos > nreq + nopt)
        return ctl_cli_usage_error(cli, "unexpected argument '%s'", argv[1 + nreq + nopt]);
    int spare = npos - nreq, k = 0;
    for (const ctl_opt_t *o = opts; o->type != CTL_OPT_TYPE_END; o++) {
        if (!o->positional)
            continue;
        if (o->type == CTL_OPT_TYPE_REST) {
            if (!o->optional && k >= npos)
                return ctl_cli_usage_error(cli, "missing %s", o->metavar);
            *o->dest.rest = argv + 1 + k;
            *o->count.rest = npos - k;
            k = npos;
            continue;
        }
        if (o->optional) {
            if (spare <= 0)
                continue;
            spare--;
        } else if (k >= npos) {
            return ctl_cli_usage_error(cli, "missing %s", o->metavar);
        }
        int rc = set_value(cli, o, o->metavar, argv[1 + k++]);
        if (rc != CTL_CLI_RUN)
            return rc;
    }
    return CTL_CLI_RUN;
}

int ctl_cli_parse(ctl_cli_t *cli, const ctl_opt_t *opts, int argc, char **argv)
{
    const char *why = NULL;
    cli->opts = opts;
    if (ctl_opt_check(opts, &why) < 0) {
        fprintf(cli->err, "%s: internal error in the option table: %s\n", cli->prog, why);
        return 1;
    }
    int npos = 0;
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        int rc = CTL_CLI_RUN;
        if (options_done || a[0] != '-' || a[1] == '\0')
            argv[1 + npos++] = a; /* never ahead of i: compacts in place */
        else if (strcmp(a, "--") == 0)
            options_done = true;
        else if (a[1] == '-')
            rc = long_option(cli, opts, argc, argv, &i);
        else
            rc = short_options(cli, opts, argc, argv, &i);
        if (rc != CTL_CLI_RUN)
            return rc;
    }
    return assign_positionals(cli, opts, argv, npos);
}

/* ----------------------------------------------------------- the tree */

static void group_help(const ctl_cli_t *cli, const ctl_cli_cmd_t *group, FILE *f)
{
    fprintf(f, "usage: %s COMMAND [ARGS]...\n", cli->prog);
    print_summary(f, group->summary);
    int width = 0;
    for (const ctl_cli_cmd_t *c = group->sub; c->name; c++) {
        if ((int)strlen(c->name) > width)
            width = (int)strlen(c->name);
    }
    fprintf(f, "\nCommands:\n");
    for (const ctl_cli_cmd_t *c = group->sub; c->name; c++) {
        const char *s = c->summary ? c->summary : "";
        fprintf(f, "  %-*s  %.*s\n", width, c->name, (int)strcspn(s, "\n"), s);
    }
    fprintf(f, "\nRun '%s COMMAND --help' for a command's options.\n", cli->prog);
}

int ctl_cli_main(const ctl_cli_cmd_t *root, int argc, char **argv, FILE *out, FILE *err)
{
    ctl_cli_t cli = {.cmd = root, .out = out, .err = err};
    snprintf(cli.prog, sizeof(cli.prog), "%s", root->name);
    int i = 1;
    while (cli.cmd->sub) {
        if (i >= argc) {
            fprintf(err, "%s: missing command\n", cli.prog);
            group_help(&cli, cli.cmd, err);
            return 2;
        }
        const char *word = argv[i];
        if (strcmp(word, "-h") == 0 || strcmp(word, "--help") == 0) {
            group_help(&cli, cli.cmd, out);
            return 0;
        }
        const ctl_cli_cmd_t *c = cli.cmd->sub;
        while (c->name && strcmp(c->name, word) != 0)
            c++;
        if (c->name == NULL) {
            fprintf(err, "%s: unknown command '%s'\n", cli.prog, word);
            group_help(&cli, cli.cmd, err);
            return 2;
        }
        size_t n = strlen(cli.prog);
        snprintf(cli.prog + n, sizeof(cli.prog) - n, " %s", c->name);
        cli.cmd = c;
        i++;
    }
    return cli.cmd->run(&cli, argc - (i - 1), argv + (i - 1));
}
