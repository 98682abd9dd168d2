/*
 * sky-controller: the serve controller (--mode serve, one daemon for every
 * service) and the managed-jobs controller (--mode jobs).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "ctl_jobs.h"
#include "ctl_serve.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: sky-controller --mode serve|jobs [--port N] [--home DIR] "
               "[--log-level debug|info|warn|error]\n\n"
               "serve-mode settings ($SKY_HOME/config.yaml `serve:` or SKY_SERVE_<NAME>):\n");
    for (const ctl_serve_cfg_doc_t *d = ctl_serve_cfg_docs; d->name; d++)
        fprintf(f, "  %-30s %6s  %s\n", d->name, d->def, d->meaning);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"mode", required_argument, NULL, 'm'}, {"port", required_argument, NULL, 'p'},
        {"home", required_argument, NULL, 'H'}, {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    const char *mode = NULL, *home = NULL;
    enum core_log_level level = CORE_LOG_INFO;
    int port = 0, c;
    char *end;

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            mode = optarg;
            break;
        case 'p':
            port = (int)strtol(optarg, &end, 10);
            if (*end || port < 0 || port > 65535) {
                fprintf(stderr, "sky-controller: bad --port '%s'\n", optarg);
                return 2;
            }
            break;
        case 'H':
            home = optarg;
            break;
        case 'l':
            if (core_log_parse_level(optarg, &level) < 0) {
                fprintf(stderr, "sky-controller: bad --log-level '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || !mode) {
        usage(stderr);
        return 2;
    }
    /* Everything below (home paths, the local cloud client) reads $SKY_HOME. */
    if (home && setenv("SKY_HOME", home, 1) != 0) {
        perror("sky-controller: setenv");
        return 1;
    }
    /* Launches block a pool thread for the whole provisioning: allow many. */
    setenv("UV_THREADPOOL_SIZE", "64", 0);
    if (strcmp(mode, "serve") == 0) {
        ctl_serve_opts_t o = {.port = port, .home = home};

        core_log_init("serve-controller", level);
        return ctl_serve_main(&o);
    }
    if (strcmp(mode, "jobs") == 0) {
        ctl_jobs_opts_t o = {.listen_host = NULL, .port = port};

        core_log_init("jobs-controller", level);
        return ctl_jobs_main(&o);
    }
    fprintf(stderr, "sky-controller: unknown --mode '%s' (serve or jobs)\n", mode);
    return 2;
}
