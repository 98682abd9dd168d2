/*
 * Idle stop of a controller daemon and its "stopped" mark (ctl_idle.h).
 */
#include <stdlib.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "ctl_idle.h"

/* How often the timer asks; the stop comes at most this late. */
#define TICK_MAX_MS 5000

bool ctl_idle_tick(ctl_idle_t *i, bool busy, double now)
{
    if (busy || i->idle_s <= 0 || i->fired) {
        i->since = -1;
        return false;
    }
    if (i->since < 0)
        i->since = now;
    if (now - i->since < i->idle_s)
        return false;
    i->fired = true;
    return true;
}

static void on_tick(uv_timer_t *t)
{
    ctl_idle_t *i = t->data;
    if (ctl_idle_tick(i, i->busy(i->arg), (double)core_mono_ms() / 1000.0)) {
        CORE_INFO("no work for %g s: stopping (the next command that needs me starts me again)",
                  i->idle_s);
        uv_timer_stop(&i->timer);
        i->stop(i->arg);
    }
}

void ctl_idle_start(ctl_idle_t *i, uv_loop_t *loop, double idle_s, bool (*busy)(void *arg),
                    void (*stop)(void *arg), void *arg)
{
    i->idle_s = idle_s;
    i->since = -1;
    i->fired = false;
    i->busy = busy;
    i->stop = stop;
    i->arg = arg;
    uv_timer_init(loop, &i->timer);
    i->timer.data = i;
    if (idle_s <= 0)
        return;
    double tick_ms = idle_s * 1000 / 4;
    uint64_t ms = tick_ms < 100 ? 100 : tick_ms > TICK_MAX_MS ? TICK_MAX_MS : (uint64_t)tick_ms;
    uv_timer_start(&i->timer, on_tick, ms, ms);
}

void ctl_idle_close(ctl_idle_t *i)
{
    if (!uv_is_closing((uv_handle_t *)&i->timer))
        uv_close((uv_handle_t *)&i->timer, NULL);
}

void ctl_stopped_mark(const char *dir, bool no_work)
{
    char *path = core_xasprintf("%s/controller.stopped", dir);
    if (no_work)
        core_write_file(path, "", 0, 0600);
    else
        unlink(path);
    free(path);
}
