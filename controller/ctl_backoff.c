#include "ctl_backoff.h"

#include <stddef.h>

void ctl_backoff_init(ctl_backoff_t *b, double initial, double max_factor, ctl_rng_fn rng,
                      void *rng_arg)
{
    b->initial = initial;
    b->max_factor = max_factor;
    b->multiplier = CTL_BACKOFF_DEFAULT_MULTIPLIER;
    b->jitter = CTL_BACKOFF_DEFAULT_JITTER;
    b->backoff = 0;
    b->started = 0;
    b->rng = rng;
    b->rng_arg = rng_arg;
}

void ctl_backoff_reset(ctl_backoff_t *b)
{
    b->backoff = 0;
    b->started = 0;
}

double ctl_backoff_next(ctl_backoff_t *b)
{
    double cap = b->initial * b->max_factor;

    if (!b->started) {
        b->started = 1;
        b->backoff = b->initial < cap ? b->initial : cap;
    } else {
        double v = b->backoff * b->multiplier;
        b->backoff = v < cap ? v : cap;
    }
    if (b->rng != NULL) {
        /* random.uniform(-j*b, j*b); kept as the next base, as the reference does. */
        double u = b->rng(b->rng_arg);
        b->backoff += (2.0 * u - 1.0) * b->jitter * b->backoff;
    }
    return b->backoff;
}

void ctl_rng_seed(ctl_rng_t *r, uint64_t seed)
{
    r->state = seed;
}

double ctl_rng_uniform(void *rng)
{
    ctl_rng_t *r = rng;
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}
