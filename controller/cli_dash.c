/*
 * `sky dashboard`: the login link of the serve controller's dashboard
 * (ctl_dash.h). The token travels in the link's fragment, which the browser
 * keeps to itself: no server or proxy log ever sees it.
 */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_util.h"
#include "core/mem.h"

#define DAEMON_WAIT_MS 10000L

extern char **environ;

/* The first <name> on $PATH, or NULL. */
static char *on_path(const char *name)
{
    const char *path = getenv("PATH");
    char *copy, *save = NULL, *hit = NULL;

    if (!path)
        return NULL;
    copy = core_xstrdup(path);
    for (char *dir = strtok_r(copy, ":", &save); dir && !hit; dir = strtok_r(NULL, ":", &save)) {
        char *p = core_xasprintf("%s/%s", *dir ? dir : ".", name);

        if (access(p, X_OK) == 0)
            hit = p;
        else
            free(p);
    }
    free(copy);
    return hit;
}

/* xdg-open <url> in the background, quiet; 0 when it started. Only with a
 * desktop session: elsewhere it would start a text browser on our terminal. */
static int open_browser(const char *url)
{
    char *prog;
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int rc;

    if (!getenv("DISPLAY") && !getenv("WAYLAND_DISPLAY"))
        return -1;
    if (!(prog = on_path("xdg-open")))
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    rc = posix_spawn(&pid, prog, &fa, NULL, (char *const[]){prog, (char *)url, NULL}, environ);
    posix_spawn_file_actions_destroy(&fa);
    free(prog);
    return rc == 0 ? 0 : -1;
}

int ctl_cli_dashboard(ctl_cli_t *cli, int argc, char **argv)
{
    bool url_only = false;
    const ctl_opt_t opts[] = {
        CTL_OPT_FLAG(0, "url", "print the login link only; do not open a browser", &url_only),
        CTL_OPT_END,
    };
    ctl_cli_daemon_t d;
    char *tok, *url;
    int rc = ctl_cli_parse(cli, opts, argc, argv);

    if (rc != CTL_CLI_RUN)
        return rc;
    if (ctl_cli_connect("sky dashboard", "serve", DAEMON_WAIT_MS, &d) != 0)
        return 1;
    tok = ctl_url_escape(d.token);
    url = core_xasprintf("%s/#token=%s", d.base_url, tok);
    if (url_only) {
        printf("%s\n", url);
    } else {
        printf("Dashboard (services, replicas, managed jobs): %s\n", url);
        if (open_browser(url) == 0)
            printf("Opened in your browser.\n");
        else
            printf("Open this link in a browser on this machine (it carries the token).\n");
    }
    free(tok);
    free(url);
    ctl_cli_daemon_free(&d);
    return 0;
}
