#include <errno.h>

#include "lb_algo.h"

/*
 * Power of two choices: two distinct random candidates among the untried
 * ready slots, the one with fewer requests in flight wins (the first drawn
 * on a tie). Near least_load's balance without its herding on stale counts.
 */
static int p2c_pick(lb_algo_t *a, const uint8_t *tried)
{
    if (a->n_ready == 0)
        return -ENOENT;
    uint16_t cand[LB_ALGO_MAX_SLOTS];
    uint32_t n = 0;
    for (uint32_t k = 0; k < a->n_ready; k++)
        if (!lb_tried_get(tried, a->ready[k]))
            cand[n++] = a->ready[k];
    if (n == 0)
        return -EAGAIN;
    if (n == 1)
        return cand[0];
    uint32_t i = (uint32_t)(lb_algo_rand(a) % n);
    uint32_t j = (uint32_t)(lb_algo_rand(a) % (n - 1));
    if (j >= i)
        j++;
    int x = cand[i], y = cand[j];
    return a->in_flight[y] < a->in_flight[x] ? y : x;
}

const lb_algo_ops_t lb_algo_p2c_ops = {
    .name = "power_of_two",
    .pick = p2c_pick,
    .on_ready_changed = NULL,
};
