#ifndef CTL_JOBS_API_H
#define CTL_JOBS_API_H

#include "core/http.h"

/* The jobs controller's HTTP handler (routes in ctl_jobs.h); <ud> is the ctl_jobs_t. */
void ctl_jobs_api_handle(core_http_conn_t *c, const core_http_req_t *req, void *ud);

#endif
