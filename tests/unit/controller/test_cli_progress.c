/* The terminal progress line of sky serve up / sky launch / sky jobs launch:
 * how a line is cut to the terminal's width, what a service's replicas read
 * as, and that nothing is drawn when the output is not a terminal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../../controller/cli_opt.c"
#include "../../../controller/cli_util.c"
#include "../../../controller/cli_progress.c"

static void test_line_fits_the_width(void **state)
{
    char out[256];

    (void)state;
    ctl_progress_line(out, sizeof(out), 0, "web: provisioning", 12.4, 80);
    assert_string_equal(out, "⠋ web: provisioning (12 s)");
    ctl_progress_line(out, sizeof(out), 1, "a very long text that does not fit", 3, 20);
    /* 20 columns: spinner + space, 11 of text, " (3 s)", one spare. */
    assert_string_equal(out, "⠙ a very long (3 s)");
    ctl_progress_line(out, sizeof(out), 10, "x", -1, 4);
    assert_string_equal(out, "⠋  (0 s)"); /* no room for text: the time stays */
}

static cJSON *service(const char *status, int target, const char *const *reps, int n)
{
    cJSON *s = cJSON_CreateObject(), *a;

    cJSON_AddStringToObject(s, "name", "web");
    cJSON_AddStringToObject(s, "status", status);
    cJSON_AddNumberToObject(s, "target_num_replicas", target);
    a = cJSON_AddArrayToObject(s, "replicas");
    for (int i = 0; i < n; i++) {
        cJSON *r = cJSON_CreateObject();

        cJSON_AddStringToObject(r, "status", reps[i]);
        cJSON_AddItemToArray(a, r);
    }
    return s;
}

static void check(const char *status, int target, const char *const *reps, int n, const char *want,
                  int want_state)
{
    char out[256];
    int st = 7;
    cJSON *s = service(status, target, reps, n);

    ctl_progress_service_text(s, out, sizeof(out), &st);
    assert_string_equal(out, want);
    assert_int_equal(st, want_state);
    cJSON_Delete(s);
}

static void test_service_text(void **state)
{
    static const char *const prov[] = {"PROVISIONING", "PENDING"};
    static const char *const start[] = {"STARTING", "READY", "PREEMPTED"};
    static const char *const ready[] = {"READY", "READY", "SHUTTING_DOWN"};

    (void)state;
    check("REPLICA_INIT", 2, prov, 2,
          "web: provisioning, 0/2 replicas ready (1 PENDING, 1 PROVISIONING)", 0);
    check("READY", 2, start, 3, "web: starting, 1/2 replicas ready (1 STARTING)", 0);
    check("READY", 2, ready, 3, "web: ready, 2/2 replicas ready", 1);
    check("FAILED", 2, NULL, 0, "web: provisioning, 0/2 replicas ready", -1);
    check("NO_REPLICA", 0, NULL, 0, "web: ready, 0/0 replicas ready", 1);
}

static void test_nothing_drawn_off_a_terminal(void **state)
{
    char buf[64] = "";
    FILE *f = fmemopen(buf, sizeof(buf), "w");
    ctl_progress_t p;

    (void)state;
    assert_false(ctl_progress_is_tty(f));
    ctl_progress_begin(&p, f);
    ctl_progress_set(&p, "anything %d", 1);
    ctl_progress_end(&p);
    fclose(f);
    assert_string_equal(buf, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_fits_the_width),
        cmocka_unit_test(test_service_text),
        cmocka_unit_test(test_nothing_drawn_off_a_terminal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
