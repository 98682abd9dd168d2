#ifndef CTL_IDLE_H
#define CTL_IDLE_H

#include <stdbool.h>

#include <uv.h>

/*
 * A controller daemon's idle stop and its "stopped" mark.
 *
 * The reference's controllers stop themselves once idle (autostop after 10
 * minutes without work). ctl_idle_start() asks <busy> every few seconds on
 * the loop; once it has answered "no work" for <idle_s> seconds in a row,
 * <stop> (the daemon's clean shutdown) is called, once. idle_s 0 disables it.
 *
 * $SKY_HOME/<mode>/controller.stopped says the daemon stopped with nothing
 * left to do, whatever stopped it: the CLI then answers its questions without
 * starting it (ctl_cli_connect_read). A daemon removes the mark when it
 * starts and writes it when it stops with no work.
 */
typedef struct ctl_idle {
    uv_timer_t timer;
    double idle_s;
    double since; /* when the work ran out (monotonic seconds), < 0 while busy */
    bool fired;
    bool (*busy)(void *arg);
    void (*stop)(void *arg);
    void *arg;
} ctl_idle_t;

/* The rule, with the clock passed in: true when <stop> is due now. */
bool ctl_idle_tick(ctl_idle_t *i, bool busy, double now);

void ctl_idle_start(ctl_idle_t *i, uv_loop_t *loop, double idle_s, bool (*busy)(void *arg),
                    void (*stop)(void *arg), void *arg);
void ctl_idle_close(ctl_idle_t *i);

/* Writes <dir>/controller.stopped when <no_work>, removes it otherwise. */
void ctl_stopped_mark(const char *dir, bool no_work);

#endif
