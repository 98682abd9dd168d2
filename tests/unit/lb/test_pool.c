/* The per-worker 64 KiB block pool and its reference counting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lb.h"

static void test_get_unref_recycles(void **st)
{
    lb_pool_t p;
    lb_pool_init(&p, 4);
    lb_buf_t *a = lb_pool_get(&p);
    assert_int_equal(a->refs, 1);
    assert_int_equal(p.n_out, 1);
    a->data[LB_BLOCK_SIZE - 1] = 'x'; /* the whole block is usable */
    lb_buf_unref(a);
    assert_int_equal(p.n_out, 0);
    assert_int_equal(p.n_free, 1);
    lb_buf_t *b = lb_pool_get(&p);
    assert_ptr_equal(a, b); /* recycled, not reallocated */
    lb_buf_unref(b);
    lb_pool_destroy(&p);
    assert_int_equal(p.n_total, 0);
}

static void test_refcount_holds_block(void **st)
{
    lb_pool_t p;
    lb_pool_init(&p, 4);
    lb_buf_t *a = lb_pool_get(&p);
    lb_buf_ref(a); /* e.g. a write in flight */
    lb_buf_ref(a); /* and a held request segment */
    lb_buf_unref(a);
    lb_buf_unref(a);
    assert_int_equal(p.n_out, 1);
    assert_int_equal(p.n_free, 0);
    lb_buf_unref(a);
    assert_int_equal(p.n_out, 0);
    assert_int_equal(p.n_free, 1);
    lb_pool_destroy(&p);
}

static void test_cache_is_bounded(void **st)
{
    lb_pool_t p;
    lb_pool_init(&p, 2);
    lb_buf_t *b[5];
    for (int i = 0; i < 5; i++)
        b[i] = lb_pool_get(&p);
    assert_int_equal(p.n_total, 5);
    for (int i = 0; i < 5; i++)
        lb_buf_unref(b[i]);
    assert_int_equal(p.n_free, 2);
    assert_int_equal(p.n_total, 2); /* the rest went back to malloc */
    lb_pool_destroy(&p);
    assert_int_equal(p.n_total, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_unref_recycles),
        cmocka_unit_test(test_refcount_holds_block),
        cmocka_unit_test(test_cache_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
