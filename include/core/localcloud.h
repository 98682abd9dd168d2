#ifndef CORE_LOCALCLOUD_H
#define CORE_LOCALCLOUD_H

#include <cjson/cJSON.h>

#include "core/prov.h"

/*
 * Client side of sky-localcloud beyond the provider ops: finding (or
 * starting) the daemon of $SKY_HOME, for the `sky cloud` operator commands.
 *
 * The daemon writes its port to $SKY_HOME/localcloud/port; its token is
 * $SKY_HOME/token. When <start> is set and GET /v1/health fails, the daemon
 * is started (core_spawn_daemon, log in $SKY_HOME/localcloud/localcloud.log;
 * $SKY_LOCALCLOUD_PROVISION_DELAY, if set, becomes its --provision-delay)
 * and awaited for up to 10 s. *base_url ("http://127.0.0.1:PORT") and
 * *token are allocated (caller frees); *err (may be NULL) gets a sentence.
 * -ENOENT when not running and <start> is 0.
 */
int core_localcloud_connect(int start, char **base_url, char **token, char **err);

/* Fills <out> from the daemon's instance JSON; -EINVAL if malformed. */
int core_instance_from_json(const cJSON *o, core_instance_t *out);

#endif
