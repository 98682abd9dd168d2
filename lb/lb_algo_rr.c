#include <errno.h>

#include "lb_algo.h"

/* Next ready slot after the cursor that was not tried yet. */
static int rr_pick(lb_algo_t *a, const uint8_t *tried)
{
    if (a->n_ready == 0)
        return -ENOENT;
    for (uint32_t k = 0; k < a->n_ready; k++) {
        uint32_t pos = (a->cursor + k) % a->n_ready;
        int s = a->ready[pos];
        if (!lb_tried_get(tried, s)) {
            a->cursor = (pos + 1) % a->n_ready;
            return s;
        }
    }
    return -EAGAIN;
}

static void rr_changed(lb_algo_t *a)
{
    if (a->n_ready)
        a->cursor %= a->n_ready;
    else
        a->cursor = 0;
}

const lb_algo_ops_t lb_algo_rr_ops = {
    .name = "round_robin",
    .pick = rr_pick,
    .on_ready_changed = rr_changed,
};
