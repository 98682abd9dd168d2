#ifndef CTL_BACKOFF_H
#define CTL_BACKOFF_H

#include <stdint.h>

/*
 * The reference Backoff (sky/utils/common_utils.py): the first value is
 * min(initial, initial*max_factor); each later one is min(prev*multiplier,
 * initial*max_factor). Every value is then jittered by +-jitter (40%), and the
 * jittered value is the base of the next step, so values may exceed the cap.
 * The random source is injected so tests and trace replays are reproducible.
 */
#define CTL_BACKOFF_DEFAULT_MAX_FACTOR 5.0
#define CTL_BACKOFF_DEFAULT_MULTIPLIER 1.6
#define CTL_BACKOFF_DEFAULT_JITTER     0.4

/* Returns a uniform double in [0, 1). */
typedef double (*ctl_rng_fn)(void *arg);

typedef struct ctl_backoff {
    double initial;
    double max_factor;
    double multiplier;
    double jitter;  /* fraction: 0.4 = +-40% */
    double backoff; /* last value returned (the next step's base) */
    int started;
    ctl_rng_fn rng; /* NULL: no jitter */
    void *rng_arg;
} ctl_backoff_t;

/* Reference defaults for multiplier and jitter. */
void ctl_backoff_init(ctl_backoff_t *b, double initial, double max_factor, ctl_rng_fn rng,
                      void *rng_arg);
/* current_backoff(): the next sleep in seconds. */
double ctl_backoff_next(ctl_backoff_t *b);
void ctl_backoff_reset(ctl_backoff_t *b);

/* A small deterministic RNG (splitmix64) usable as ctl_rng_fn with &state. */
typedef struct ctl_rng {
    uint64_t state;
} ctl_rng_t;
void ctl_rng_seed(ctl_rng_t *r, uint64_t seed);
double ctl_rng_uniform(void *rng /* ctl_rng_t * */);

#endif
