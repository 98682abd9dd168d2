#include <errno.h>
#include <string.h>

#include "lb_algo.h"

const lb_algo_ops_t *lb_algo_find(const char *policy)
{
    static const lb_algo_ops_t *all[] = {&lb_algo_rr_ops, &lb_algo_ll_ops, &lb_algo_p2c_ops};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(all[i]->name, policy) == 0)
            return all[i];
    return NULL;
}

int lb_algo_init(lb_algo_t *a, const char *policy, uint64_t seed)
{
    const lb_algo_ops_t *ops = lb_algo_find(policy);
    if (!ops)
        return -EINVAL;
    memset(a, 0, sizeof(*a));
    a->ops = ops;
    a->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
    return 0;
}

uint64_t lb_algo_rand(lb_algo_t *a)
{
    uint64_t x = a->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    a->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static int find_slot(const lb_algo_t *a, const char *url)
{
    for (int i = 0; i < LB_ALGO_MAX_SLOTS; i++)
        if (a->state[i] != LB_SLOT_FREE && strcmp(a->url[i], url) == 0)
            return i;
    return -1;
}

void lb_algo_set_ready(lb_algo_t *a, const char *const *urls, size_t n, int *slots)
{
    uint8_t listed[LB_ALGO_MAX_SLOTS] = {0};
    a->n_ready = 0;
    for (size_t i = 0; i < n; i++) {
        int s = find_slot(a, urls[i]);
        if (s >= 0 && listed[s])
            s = -1; /* duplicate URL */
        else if (s < 0 && strlen(urls[i]) < LB_ALGO_URL_MAX) {
            for (int j = 0; j < LB_ALGO_MAX_SLOTS; j++) {
                if (a->state[j] == LB_SLOT_FREE) {
                    s = j;
                    strcpy(a->url[j], urls[i]);
                    a->in_flight[j] = 0;
                    break;
                }
            }
        }
        if (s >= 0) {
            a->state[s] = LB_SLOT_READY; /* a retired replica may come back */
            listed[s] = 1;
            a->ready[a->n_ready++] = (uint16_t)s;
        }
        if (slots)
            slots[i] = s;
    }
    for (int j = 0; j < LB_ALGO_MAX_SLOTS; j++) {
        if (a->state[j] == LB_SLOT_FREE || listed[j])
            continue;
        a->state[j] = a->in_flight[j] ? LB_SLOT_RETIRED : LB_SLOT_FREE;
    }
    if (a->ops->on_ready_changed)
        a->ops->on_ready_changed(a);
}

void lb_algo_begin(lb_algo_t *a, int slot)
{
    if (slot >= 0 && slot < LB_ALGO_MAX_SLOTS && a->state[slot] != LB_SLOT_FREE)
        a->in_flight[slot]++;
}

int lb_algo_end(lb_algo_t *a, int slot)
{
    if (slot < 0 || slot >= LB_ALGO_MAX_SLOTS || a->state[slot] == LB_SLOT_FREE)
        return 0;
    if (a->in_flight[slot] > 0)
        a->in_flight[slot]--;
    if (a->state[slot] == LB_SLOT_RETIRED && a->in_flight[slot] == 0) {
        a->state[slot] = LB_SLOT_FREE;
        return 1;
    }
    return 0;
}
