#ifndef CTL_JOBS_API_H
#define CTL_JOBS_API_H

#include "core/http.h"
#include "ctl_jobs_store.h"

/* The jobs controller's HTTP handler (routes in ctl_jobs.h); <ud> is the ctl_jobs_t. */
void ctl_jobs_api_handle(core_http_conn_t *c, const core_http_req_t *req, void *ud);

/* A job as the API shows it (JOB in ctl_jobs.h); also the dashboard's rows. */
cJSON *ctl_jobs_job_json(const ctl_job_row_t *r);

#endif
