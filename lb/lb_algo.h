#ifndef LB_LB_ALGO_H
#define LB_LB_ALGO_H

#include <stddef.h>
#include <stdint.h>

/*
 * Balancing policies: pure code over a table of replica slots, no sockets,
 * no clock (the RNG state is seeded by the caller), so they are unit tested
 * directly. A slot keeps its index for as long as it has requests in
 * flight: a replica removed from the ready set becomes RETIRED and is freed
 * only when its in-flight count reaches 0, so counters never leak, never go
 * negative and never get recreated at -1 (the reference's least_load bugs).
 */
#define LB_ALGO_MAX_SLOTS 256
#define LB_ALGO_URL_MAX   128

enum lb_slot_state {
    LB_SLOT_FREE = 0,
    LB_SLOT_READY,
    LB_SLOT_RETIRED,
};

typedef struct lb_algo lb_algo_t;

typedef struct lb_algo_ops {
    const char *name;
    /* A READY slot whose bit in <tried> (may be NULL) is clear: the slot
     * index, -ENOENT when nothing is ready, -EAGAIN when all were tried. */
    int (*pick)(lb_algo_t *a, const uint8_t *tried);
    /* Called after the ready list changed. */
    void (*on_ready_changed)(lb_algo_t *a);
} lb_algo_ops_t;

struct lb_algo {
    const lb_algo_ops_t *ops;
    uint32_t in_flight[LB_ALGO_MAX_SLOTS];
    uint8_t state[LB_ALGO_MAX_SLOTS];
    char url[LB_ALGO_MAX_SLOTS][LB_ALGO_URL_MAX];
    uint16_t ready[LB_ALGO_MAX_SLOTS]; /* READY slots in ready-set order */
    uint32_t n_ready;
    uint32_t cursor; /* round-robin position / least-load tie breaker */
    uint64_t rng;
};

extern const lb_algo_ops_t lb_algo_rr_ops;
extern const lb_algo_ops_t lb_algo_ll_ops;
extern const lb_algo_ops_t lb_algo_p2c_ops;

/* <policy>: round_robin | least_load | power_of_two. -EINVAL otherwise. */
int lb_algo_init(lb_algo_t *a, const char *policy, uint64_t seed);
const lb_algo_ops_t *lb_algo_find(const char *policy);

/*
 * Replaces the ready set with <urls> (order kept). slots[i] receives the
 * slot of urls[i] (-1 if the table is full or the URL repeats). Slots of
 * URLs no longer listed are RETIRED if they have requests in flight, FREE
 * otherwise.
 */
void lb_algo_set_ready(lb_algo_t *a, const char *const *urls, size_t n, int *slots);

static inline int lb_algo_pick(lb_algo_t *a, const uint8_t *tried)
{
    return a->ops->pick(a, tried);
}
void lb_algo_begin(lb_algo_t *a, int slot);
/* Returns 1 if <slot> was retired and is now FREE. */
int lb_algo_end(lb_algo_t *a, int slot);

static inline int lb_tried_get(const uint8_t *t, int slot)
{
    return t && (t[slot >> 3] >> (slot & 7)) & 1;
}
static inline void lb_tried_set(uint8_t *t, int slot)
{
    t[slot >> 3] |= (uint8_t)(1u << (slot & 7));
}
/* xorshift64*: deterministic for a given seed. */
uint64_t lb_algo_rand(lb_algo_t *a);

#endif
