/*
 * sky-lb's command line (lb_config_parse_args): the input is argv, NUL-
 * separated after "sky-lb". Every outcome must be clean: 0 with a usable
 * config, 1 (--help) or -EINVAL with a message, and nothing leaked.
 */
#define FUZZ_NO_DNS
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "lb.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = 0;
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = (char *)"sky-lb";
    for (char *p = copy; p <= copy + size && argc <= MAX_ARGS; p += strlen(p) + 1)
        argv[argc++] = p;
    argv[argc] = NULL;
    lb_config_t c;
    char *err = NULL;
    int rc = lb_config_parse_args(&c, argc, argv, &err);
    if (rc == 0) {
        FUZZ_CHECK(err == NULL);
        FUZZ_CHECK(c.listen_port >= 0 && c.listen_port <= 65535);
        FUZZ_CHECK(c.low_wm < c.high_wm && c.max_uri <= c.max_head);
        FUZZ_CHECK(c.admin_port < 0 || c.token_file || c.admin_token_file);
        for (size_t i = 0; i < c.n_replicas; i++)
            FUZZ_CHECK(strncmp(c.replicas[i], "http://", 7) == 0);
        lb_config_free(&c);
    } else {
        FUZZ_CHECK((rc == 1 || rc == -EINVAL) && err && *err);
    }
    free(err);
    free(copy);
    return 0;
}
