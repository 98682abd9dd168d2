/*
 * sky ssh up [--infra POOL] / sky ssh down [--infra POOL] / sky check [INFRA...]
 *
 * SSH Node Pools (docs/ssh-node-pools.md). The command logic (ssh_up,
 * ssh_down, check) takes plain values; the option parsing at the bottom is
 * the only part that knows about argv.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/err.h"
#include "core/mem.h"
#include "core/ssh_deploy.h"
#include "core/ssh_pool.h"
#include "core/util.h"

#define CHECK_TIMEOUT_MS 3000L

/* "POOL" or "ssh/POOL" -> "POOL"; NULL if it is something else. */
static const char *pool_of_infra(const char *infra)
{
    if (strncmp(infra, "ssh/", 4) == 0)
        infra += 4;
    return core_ssh_pool_name_valid(infra) ? infra : NULL;
}

/* "  HOST: STATE (DETAIL)"; after a down, an ok host's line is what was done. */
static void print_hosts(const core_ssh_hostinfo_t *hs, size_t n, int down)
{
    for (size_t i = 0; i < n; i++) {
        if (down && hs[i].state == CORE_SSH_HOST_OK)
            printf("  %s: %s\n", hs[i].host, hs[i].reason);
        else
            printf("  %s: %s (%s)\n", hs[i].host, core_ssh_host_state_name(hs[i].state),
                   hs[i].reason);
    }
}

static size_t count_ok(const core_ssh_hostinfo_t *hs, size_t n)
{
    size_t ok = 0;
    for (size_t i = 0; i < n; i++)
        ok += hs[i].state == CORE_SSH_HOST_OK;
    return ok;
}

/* Every pool of the file, or the one named: 0, or an exit code after a message. */
static int load_pools(const char *only, core_ssh_pools_t **ps)
{
    char *err = NULL;
    int rc = core_ssh_pools_load(NULL, ps, &err);
    if (rc < 0) {
        fprintf(stderr, "sky: %s\n", err);
        free(err);
        return 1;
    }
    if (only && !core_ssh_pools_find(*ps, only)) {
        fprintf(stderr, "sky: no SSH Node Pool '%s' in %s\n", only, (*ps)->file);
        core_ssh_pools_free(*ps);
        *ps = NULL;
        return 1;
    }
    return 0;
}

static int ssh_up(const char *only)
{
    core_ssh_pools_t *ps = NULL;
    int rc = load_pools(only, &ps);
    if (rc)
        return rc;
    core_ssh_agent_bin_t bin;
    char *err = NULL;
    if (core_ssh_agent_bin_load(&bin, &err) < 0) {
        fprintf(stderr, "sky: %s\n", err);
        free(err);
        core_ssh_pools_free(ps);
        return 1;
    }
    int failed = 0;
    for (size_t i = 0; i < ps->n_pools; i++) {
        const core_ssh_pool_t *p = &ps->pools[i];
        if (only && strcmp(p->name, only) != 0)
            continue;
        printf("Deploying SSH Node Pool '%s' (%zu host%s)...\n", p->name, p->n_hosts,
               p->n_hosts == 1 ? "" : "s");
        fflush(stdout);
        core_ssh_hostinfo_t *hs = NULL;
        size_t n = 0;
        if (core_ssh_pool_up(p, &bin, &hs, &n, &err) < 0) {
            fprintf(stderr, "sky: SSH Node Pool '%s': %s\n", p->name, err);
            free(err);
            err = NULL;
            failed = 1;
        }
        print_hosts(hs, n, 0);
        size_t ok = count_ok(hs, n);
        failed |= ok != n;
        if (ok)
            printf("SSH Node Pool '%s': %zu of %zu hosts ready. Use it with `infra: ssh/%s`.\n",
                   p->name, ok, n, p->name);
        else
            printf("SSH Node Pool '%s': no host ready.\n", p->name);
        free(hs);
    }
    core_ssh_agent_bin_free(&bin);
    core_ssh_pools_free(ps);
    return failed ? 1 : 0;
}

static int ssh_down(const char *only)
{
    /* The record says what is installed; the file may have lost a pool. */
    core_ssh_pools_t *ps = NULL;
    char *err = NULL;
    int file_rc = core_ssh_pools_load(NULL, &ps, &err);
    if (file_rc < 0 && file_rc != -ENOENT) {
        fprintf(stderr, "sky: %s\n", err);
        free(err);
        return 1;
    }
    free(err);
    err = NULL;
    char **names = NULL;
    size_t n_names = 0;
    core_ssh_record_pools(&names, &n_names);
    /* Pools to take down: the recorded ones, then the file's others. */
    size_t cap = n_names + (ps ? ps->n_pools : 0) + 1, m = 0;
    const char **todo = core_xcalloc(cap, sizeof(*todo));
    for (size_t i = 0; i < n_names; i++)
        todo[m++] = names[i];
    for (size_t i = 0; ps && i < ps->n_pools; i++) {
        int dup = 0;
        for (size_t k = 0; k < n_names; k++)
            dup |= !strcmp(names[k], ps->pools[i].name);
        if (!dup)
            todo[m++] = ps->pools[i].name;
    }
    int failed = 0, matched = 0;
    for (size_t i = 0; i < m; i++) {
        if (only && strcmp(todo[i], only) != 0)
            continue;
        matched = 1;
        const core_ssh_pool_t *p = core_ssh_pools_find(ps, todo[i]);
        printf("Cleaning up SSH Node Pool '%s'...\n", todo[i]);
        fflush(stdout);
        core_ssh_hostinfo_t *hs = NULL;
        size_t n = 0;
        if (core_ssh_pool_down(todo[i], p, &hs, &n, &err) < 0) {
            fprintf(stderr, "sky: SSH Node Pool '%s': %s\n", todo[i], err);
            free(err);
            err = NULL;
            failed = 1;
        }
        print_hosts(hs, n, 1);
        failed |= count_ok(hs, n) != n;
        free(hs);
    }
    if (only && !matched) {
        fprintf(stderr, "sky: no SSH Node Pool '%s' (not in the pool file, not set up)\n", only);
        failed = 1;
    } else if (m == 0) {
        printf("No SSH Node Pools to clean up.\n");
    }
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    free(todo);
    core_ssh_pools_free(ps);
    return failed ? 1 : 0;
}

/* ------------------------------------------------------------------ check */

static int wanted(const char *infra, char **only, int n_only)
{
    if (n_only == 0)
        return 1;
    for (int i = 0; i < n_only; i++) {
        size_t l = strlen(only[i]);
        /* "ssh" selects every pool, "ssh/p" one, "local" the local cloud. */
        if (!strcmp(infra, only[i]) || (!strncmp(infra, only[i], l) && infra[l] == '/'))
            return 1;
    }
    return 0;
}

/* One pool's line; returns 1 when it is usable. */
static int check_pool(const char *name, int in_file, char *line, size_t len)
{
    core_ssh_hostinfo_t *hs = NULL;
    size_t n = 0;
    if (core_ssh_record_load(name, &hs, &n) < 0) {
        snprintf(line, len, "disabled: not set up; run `sky ssh up --infra %s`", name);
        return 0;
    }
    int *rcs = core_xcalloc(n + 1, sizeof(*rcs));
    core_ssh_hosts_alive(hs, n, CHECK_TIMEOUT_MS, rcs);
    size_t alive = 0, off = 0;
    char why[1024] = "";
    for (size_t i = 0; i < n; i++) {
        const char *bad = NULL;
        char buf[600];
        if (hs[i].state != CORE_SSH_HOST_OK) {
            snprintf(buf, sizeof(buf), "%s at `sky ssh up`: %s", core_ssh_host_state_name(hs[i].state),
                     hs[i].reason);
            bad = buf;
        } else if (rcs[i] < 0) {
            snprintf(buf, sizeof(buf), "agent not answering: %s", core_strerror(rcs[i]));
            bad = buf;
        } else {
            alive++;
        }
        if (bad && off < sizeof(why))
            off += (size_t)snprintf(why + off, sizeof(why) - off, "; %s: %s", hs[i].host, bad);
    }
    const char *note = in_file ? "" : " (no longer in ssh_node_pools.yaml: `sky ssh down` removes it)";
    if (alive)
        snprintf(line, len, "enabled (%zu of %zu hosts ready%s)%s", alive, n, why, note);
    else
        snprintf(line, len, "disabled: no host ready%s%s", why, note);
    free(rcs);
    free(hs);
    return alive > 0;
}

static int check(char **only, int n_only)
{
    char **enabled = NULL;
    size_t n_enabled = 0;
    int rc = 0;
    printf("Checking infra...\n");
    if (wanted("local", only, n_only)) {
        char *lc = core_find_program("sky-localcloud");
        if (!lc)
            printf("  local: disabled: cannot find the sky-localcloud program\n");
        else
            printf("  local: enabled (%s)\n",
                   geteuid() == 0 ? "network-namespace hosts"
                                  : "process hosts on 127.0.0.x: not root, no namespaces");
        if (lc) {
            enabled = core_xrealloc(enabled, (n_enabled + 1) * sizeof(*enabled));
            enabled[n_enabled++] = core_xstrdup("local");
        }
        free(lc);
    }
    int want_ssh = n_only == 0;
    for (int i = 0; i < n_only; i++)
        want_ssh |= !strcmp(only[i], "ssh") || !strncmp(only[i], "ssh/", 4);
    if (want_ssh) {
        core_ssh_pools_t *ps = NULL;
        char *err = NULL;
        int frc = core_ssh_pools_load(NULL, &ps, &err);
        char **rec = NULL;
        size_t n_rec = 0;
        core_ssh_record_pools(&rec, &n_rec);
        if (frc < 0 && frc != -ENOENT) {
            printf("  ssh: disabled: %s\n", err);
            rc = 1;
        } else if (frc == -ENOENT && n_rec == 0) {
            printf("  ssh: disabled: no SSH Node Pools (%s)\n", err);
        }
        free(err);
        /* The file's pools, then recorded ones the file lost. */
        size_t total = (ps ? ps->n_pools : 0) + n_rec, shown = 0;
        for (size_t i = 0; i < total; i++) {
            const char *name;
            int in_file = 1;
            if (ps && i < ps->n_pools) {
                name = ps->pools[i].name;
            } else {
                name = rec[i - (ps ? ps->n_pools : 0)];
                if (core_ssh_pools_find(ps, name))
                    continue;
                in_file = 0;
            }
            char infra[80];
            snprintf(infra, sizeof(infra), "ssh/%s", name);
            if (!wanted(infra, only, n_only))
                continue;
            if (shown++ == 0)
                printf("  SSH Node Pools:\n");
            char line[2048];
            int ok = check_pool(name, in_file, line, sizeof(line));
            printf("    %s: %s\n", infra, line);
            if (ok) {
                enabled = core_xrealloc(enabled, (n_enabled + 1) * sizeof(*enabled));
                enabled[n_enabled++] = core_xstrdup(infra);
            }
        }
        for (size_t i = 0; i < n_rec; i++)
            free(rec[i]);
        free(rec);
        core_ssh_pools_free(ps);
    }
    printf("\nEnabled infra:");
    for (size_t i = 0; i < n_enabled; i++) {
        printf("%s %s", i ? "," : "", enabled[i]);
        free(enabled[i]);
    }
    printf("%s\n", n_enabled ? "" : " none");
    free(enabled);
    return rc;
}

/* ------------------------------------------------------------ arguments */

/* "--infra POOL" (or ssh/POOL) -> *pool; CTL_CLI_RUN or a usage error. */
static int infra_arg(const ctl_cli_t *cli, const char *infra, const char **pool)
{
    *pool = NULL;
    if (infra && !(*pool = pool_of_infra(infra)))
        return ctl_cli_usage_error(cli, "--infra wants a pool name (or ssh/NAME), got '%s'",
                                   infra);
    /* ssh may die while we still feed it the agent: an error, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    return CTL_CLI_RUN;
}

static int cmd_up(ctl_cli_t *cli, int argc, char **argv)
{
    const char *infra = NULL, *pool;
    const ctl_opt_t opts[] = {
        CTL_OPT_STR(0, "infra", "POOL", "only this pool of $SKY_HOME/ssh_node_pools.yaml",
                    &infra),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc == CTL_CLI_RUN)
        rc = infra_arg(cli, infra, &pool);
    return rc == CTL_CLI_RUN ? ssh_up(pool) : rc;
}

static int cmd_down(ctl_cli_t *cli, int argc, char **argv)
{
    const char *infra = NULL, *pool;
    const ctl_opt_t opts[] = {
        CTL_OPT_STR(0, "infra", "POOL", "only this pool", &infra),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc == CTL_CLI_RUN)
        rc = infra_arg(cli, infra, &pool);
    return rc == CTL_CLI_RUN ? ssh_down(pool) : rc;
}

int ctl_cli_check(ctl_cli_t *cli, int argc, char **argv)
{
    char **infra = NULL;
    int n = 0;
    const ctl_opt_t opts[] = {
        CTL_ARG_REST_OPT("INFRA", "local, ssh or ssh/POOL (default: all)", &infra, &n),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(cli, opts, argc, argv);
    if (rc != CTL_CLI_RUN)
        return rc;
    for (int i = 0; i < n; i++) {
        if (strcmp(infra[i], "local") && strcmp(infra[i], "ssh") &&
            !(strncmp(infra[i], "ssh/", 4) == 0 && core_ssh_pool_name_valid(infra[i] + 4)))
            return ctl_cli_usage_error(cli, "unknown infra '%s' (local, ssh or ssh/POOL)",
                                       infra[i]);
    }
    return check(infra, n);
}

const ctl_cli_cmd_t ctl_cli_ssh_cmds[] = {
    {"up", "Install and start sky-agent on the hosts of $SKY_HOME/ssh_node_pools.yaml "
           "(one line per host)", cmd_up, NULL},
    {"down", "Stop the pools' agents and their tasks, remove what `up` installed", cmd_down,
     NULL},
    {NULL, NULL, NULL, NULL},
};
