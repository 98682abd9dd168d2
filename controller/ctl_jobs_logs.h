#ifndef CTL_JOBS_LOGS_H
#define CTL_JOBS_LOGS_H

#include <uv.h>

#include "core/http_async.h"

/*
 * A managed job's files under $SKY_HOME/jobs/<id>/: controller.log (what the
 * controller did, one timestamped line per event) and run-<attempt>.log (the
 * output of each attempt, copied from the instance's agent as it is
 * produced, so that it outlives the instance).
 */

/* $SKY_HOME/jobs/<id>/<file>. Caller frees. */
char *ctl_jobs_path(const char *jobs_dir, long id, const char *file);

/* Appends a line to the job's controller.log (and the daemon's log). Any thread. */
void ctl_jobs_log(const char *jobs_dir, long id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Copying one attempt's output: follows the agent's log stream of the task
 * on the loop and appends it to run-<attempt>.log. The stream replays the
 * task's output from its start, so the bytes the file already has (a
 * controller restart) are skipped; a broken stream is reopened while the
 * attempt lasts. Loop thread only.
 */
typedef struct ctl_logsync ctl_logsync_t;

ctl_logsync_t *ctl_logsync_start(uv_loop_t *loop, core_http_async_t *http, const char *jobs_dir,
                                 long job, int attempt, const char *ip, int port, int task);
/* Stops at once (the instance is gone or going) and frees <ls>. */
void ctl_logsync_stop(ctl_logsync_t *ls);
/*
 * The task ended: waits until the copy has all of its output (the agent
 * ends the stream), at most <timeout_s> (an instance that vanished right
 * after its task ended must not hold the job's end), then frees <ls> and
 * calls <done>. <done> runs on a later loop iteration, never from here.
 */
void ctl_logsync_drain(ctl_logsync_t *ls, double timeout_s, void (*done)(void *arg), void *arg);

#endif
