#ifndef CORE_LOCALCLOUD_H
#define CORE_LOCALCLOUD_H

#include <cjson/cJSON.h>

#include "core/prov.h"

/*
 * Client side of sky-localcloud beyond the provider ops: finding (or
 * starting) the daemon of $SKY_HOME.
 *
 * The daemon writes its port to $SKY_HOME/localcloud/port; its token is
 * $SKY_HOME/token. When GET /v1/health fails, <start> says what to do:
 *   CORE_LC_NEVER   nothing (questions);
 *   CORE_LC_RESTART start it again only if it died: never one taken down on
 *                   purpose (POST /v1/down, `sky cloud down`, which leaves
 *                   $SKY_HOME/localcloud/down until it starts again), for
 *                   the controllers and the provider's reconnects;
 *   CORE_LC_START   start it (a user's command that needs instances).
 * A start is core_spawn_daemon (log in $SKY_HOME/localcloud/localcloud.log;
 * $SKY_LOCALCLOUD_PROVISION_DELAY, if set, becomes its --provision-delay),
 * awaited for up to 10 s. *base_url ("http://127.0.0.1:PORT") and *token
 * are allocated (caller frees); *err (may be NULL) gets a sentence. -ENOENT
 * when it does not run and may not be started.
 */
#define CORE_LC_NEVER   0
#define CORE_LC_START   1
#define CORE_LC_RESTART 2
int core_localcloud_connect(int start, char **base_url, char **token, char **err);

/* Fills <out> from the daemon's instance JSON; -EINVAL if malformed. */
int core_instance_from_json(const cJSON *o, core_instance_t *out);

#endif
