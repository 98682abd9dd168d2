#include <stdlib.h>

#include "core/mem.h"
#include "lb.h"

/*
 * Per-worker pool of 64 KiB read blocks (HAProxy pools, Node's 64 KiB read
 * buffer). No locks: a pool and its blocks belong to one loop. A block is
 * referenced by the reader that filled it and by every write that still
 * points into it; it returns to the pool when the last reference goes.
 */
void lb_pool_init(lb_pool_t *p, size_t max_free)
{
    p->free = NULL;
    p->n_free = 0;
    p->max_free = max_free;
    p->n_out = 0;
    p->n_total = 0;
}

lb_buf_t *lb_pool_get(lb_pool_t *p)
{
    lb_buf_t *b = p->free;
    if (b) {
        p->free = b->next;
        p->n_free--;
    } else {
        b = core_xmalloc(sizeof(*b));
        b->pool = p;
        p->n_total++;
    }
    b->next = NULL;
    b->refs = 1;
    p->n_out++;
    return b;
}

void lb_buf_unref(lb_buf_t *b)
{
    if (--b->refs > 0)
        return;
    lb_pool_t *p = b->pool;
    p->n_out--;
    if (p->n_free < p->max_free) {
        b->next = p->free;
        p->free = b;
        p->n_free++;
    } else {
        p->n_total--;
        free(b);
    }
}

void lb_pool_destroy(lb_pool_t *p)
{
    while (p->free) {
        lb_buf_t *b = p->free;
        p->free = b->next;
        free(b);
        p->n_total--;
    }
    p->n_free = 0;
}
