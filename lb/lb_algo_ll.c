#include <errno.h>

#include "lb_algo.h"

/*
 * Fewest requests in flight. The scan starts at a rotating cursor and keeps
 * the first strictly smaller count, so equally loaded replicas take turns
 * instead of the first one in the list taking every tie.
 */
static int ll_pick(lb_algo_t *a, const uint8_t *tried)
{
    if (a->n_ready == 0)
        return -ENOENT;
    int best = -1;
    uint32_t best_pos = 0;
    for (uint32_t k = 0; k < a->n_ready; k++) {
        uint32_t pos = (a->cursor + k) % a->n_ready;
        int s = a->ready[pos];
        if (lb_tried_get(tried, s))
            continue;
        if (best < 0 || a->in_flight[s] < a->in_flight[best]) {
            best = s;
            best_pos = pos;
        }
    }
    if (best < 0)
        return -EAGAIN;
    a->cursor = (best_pos + 1) % a->n_ready;
    return best;
}

static void ll_changed(lb_algo_t *a)
{
    if (a->n_ready)
        a->cursor %= a->n_ready;
    else
        a->cursor = 0;
}

const lb_algo_ops_t lb_algo_ll_ops = {
    .name = "least_load",
    .pick = ll_pick,
    .on_ready_changed = ll_changed,
};
