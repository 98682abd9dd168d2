/*
 * The jobs controller's /metrics, from the jobs store at scrape time.
 */
#include <stdio.h>
#include <stdlib.h>

#include "ctl_jobs_logic.h"
#include "ctl_jobs_metrics.h"
#include "ctl_jobs_store.h"
#include "ctl_metrics.h"

char *ctl_jobs_metrics_render(ctl_jobs_t *d, size_t *len)
{
    ctl_job_row_t *rows = NULL;
    size_t n = 0, by_status[CTL_JOB_STATUS_COUNT] = {0};
    ctl_prom_t p = {0};
    char id[24];

    if (ctl_jobs_store_list(d->store, &rows, &n) < 0)
        return NULL;
    ctl_metrics_proc_render(&p, &d->proc);
    ctl_prom_family(&p, "sky_jobs", "gauge", "Managed jobs by status.");
    for (size_t i = 0; i < n; i++)
        if (rows[i].t.status < CTL_JOB_STATUS_COUNT)
            by_status[rows[i].t.status]++;
    for (int st = 0; st < CTL_JOB_STATUS_COUNT; st++)
        ctl_prom_sample(&p, "sky_jobs", (double)by_status[st], "status",
                        ctl_job_status_name((ctl_job_status_t)st), NULL);
    /* One series a job, labelled with its current status (an info-style
     * gauge): a job's history is its series changing label. */
    ctl_prom_family(&p, "sky_jobs_job_status", "gauge",
                    "1 for each managed job, labelled with its current status.");
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%ld", rows[i].id);
        ctl_prom_sample(&p, "sky_jobs_job_status", 1, "job_id", id, "name",
                        rows[i].name ? rows[i].name : "", "status",
                        ctl_job_status_name(rows[i].t.status), NULL);
    }
    ctl_prom_family(&p, "sky_jobs_job_recoveries_total", "counter",
                    "Times a managed job was recovered after a preemption or a lost instance.");
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%ld", rows[i].id);
        ctl_prom_sample(&p, "sky_jobs_job_recoveries_total", rows[i].t.recovery_count, "job_id", id,
                        "name", rows[i].name ? rows[i].name : "", NULL);
    }
    ctl_prom_family(&p, "sky_jobs_job_restarts_total", "counter",
                    "Times a managed job's task was restarted after it failed "
                    "(max_restarts_on_errors).");
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%ld", rows[i].id);
        ctl_prom_sample(&p, "sky_jobs_job_restarts_total", rows[i].restart_count, "job_id", id,
                        "name", rows[i].name ? rows[i].name : "", NULL);
    }
    for (size_t i = 0; i < n; i++)
        ctl_job_row_free(&rows[i]);
    free(rows);
    return ctl_prom_take(&p, len);
}
