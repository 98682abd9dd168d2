#ifndef CTL_API_H
#define CTL_API_H

#include "core/http.h"

/* The serve controller's HTTP API (docs/serve-api.md); <ud> is the ctl_serve_t. */
void ctl_api_handle(core_http_conn_t *conn, const core_http_req_t *req, void *ud);

#endif
