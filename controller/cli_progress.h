#ifndef CTL_CLI_PROGRESS_H
#define CTL_CLI_PROGRESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <cjson/cJSON.h>

#include "cli_util.h"

/*
 * One live line of progress on a terminal: "⠹ <text> (12 s)", redrawn in place
 * five times a second by a thread while the command waits (a blocking launch
 * included), erased when it ends. Only when the stream is a terminal (and
 * TERM is not "dumb"); otherwise every call is a no-op and the command's
 * plain lines are all the output, as scripts and tests read it.
 */
typedef struct ctl_progress {
    FILE *f;
    bool live;
    double start;
    char text[256];
    pthread_mutex_t mu;
    pthread_t thread;
    bool stop;
    unsigned frame;
} ctl_progress_t;

bool ctl_progress_is_tty(FILE *f);
void ctl_progress_begin(ctl_progress_t *p, FILE *f);
void ctl_progress_set(ctl_progress_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Stops the redraws and erases the line. */
void ctl_progress_end(ctl_progress_t *p);

/* The line as drawn: spinner frame, text, elapsed seconds, cut to <width>
 * columns (the text shortened, never the elapsed time). */
void ctl_progress_line(char *out, size_t n, unsigned frame, const char *text, double elapsed,
                       int width);

/*
 * A service (SERVICE JSON of the serve API) as a progress text:
 * "<name>: provisioning, 0/2 replicas ready (2 PROVISIONING)". *state is 1
 * once it is READY with its target of ready replicas, -1 when it failed, 0
 * while it starts.
 */
void ctl_progress_service_text(const cJSON *svc, char *out, size_t n, int *state);

/*
 * On a terminal: waits with a live line until service <name> is READY with
 * its target (0), or failed (1, message printed). Elsewhere returns 0 at
 * once: scripts keep `sky serve up`'s contract (it returns once the service
 * is registered).
 */
int ctl_progress_wait_service(const ctl_cli_daemon_t *d, const char *name);
/* On a terminal: waits with a live line until managed job <id> runs or ends. */
void ctl_progress_wait_job(const ctl_cli_daemon_t *d, long id);

#endif
