#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/ssh_pool.h"

static core_ssh_pools_t *parse_ok(const char *text)
{
    core_ssh_pools_t *ps = NULL;
    char *err = NULL;
    int rc = core_ssh_pools_parse(text, strlen(text), "/etc/sky/pools.yaml", &ps, &err);
    if (rc != 0)
        fail_msg("unexpected error %d: %s", rc, err ? err : "(none)");
    assert_non_null(ps);
    return ps;
}

static void expect_err(const char *text, const char *want)
{
    core_ssh_pools_t *ps = NULL;
    char *err = NULL;
    assert_int_equal(core_ssh_pools_parse(text, strlen(text), "p.yaml", &ps, &err), CORE_ESPEC);
    assert_null(ps);
    assert_non_null(err);
    assert_string_equal(err, want);
    free(err);
}

static void test_skypilot_quickstart(void **state)
{
    (void)state;
    /* The quickstart of SkyPilot's docs, verbatim. */
    core_ssh_pools_t *ps = parse_ok("# ~/.sky/ssh_node_pools.yaml\n"
                                    "\n"
                                    "my-cluster:  # Give the pool a name.\n"
                                    "   hosts:\n"
                                    "     - 1.2.3.4  # Ensure `ssh 1.2.3.4` works.\n"
                                    "     - 1.2.3.5\n"
                                    "\n"
                                    "my-box:\n"
                                    "  hosts:\n"
                                    "    - hostname_in_ssh_config\n");
    assert_int_equal(ps->n_pools, 2);
    assert_string_equal(ps->pools[0].name, "my-cluster");
    assert_int_equal(ps->pools[0].mark.line, 3);
    assert_int_equal(ps->pools[0].n_hosts, 2);
    assert_string_equal(ps->pools[0].hosts[1].host, "1.2.3.5");
    assert_null(ps->pools[0].hosts[1].user);
    assert_null(ps->pools[0].hosts[1].identity_file);
    assert_int_equal(ps->pools[0].hosts[1].port, 0);
    assert_int_equal(ps->pools[0].hosts[1].mark.line, 6);
    assert_int_equal(ps->pools[0].hosts[1].mark.col, 8);
    assert_string_equal(ps->pools[1].hosts[0].host, "hostname_in_ssh_config");
    assert_ptr_equal(core_ssh_pools_find(ps, "my-box"), &ps->pools[1]);
    assert_null(core_ssh_pools_find(ps, "nope"));
    core_ssh_pools_free(ps);
}

static void test_defaults_and_overrides(void **state)
{
    (void)state;
    setenv("HOME", "/home/al", 1);
    core_ssh_pools_t *ps = parse_ok("gpus:\n"
                                    "  user: root\n"
                                    "  identity_file: ~/.ssh/id_rsa\n"
                                    "  hosts:\n"
                                    "    - ip: 10.0.0.1\n"
                                    "      user: alice\n"
                                    "      identity_file: alice-key\n"
                                    "    - ip: 10.0.0.2\n"
                                    "      port: 2222\n"
                                    "    - 10.0.0.3\n"
                                    "    - ip: fe80::1%eth0\n"
                                    "      identity_file: /keys/k\n");
    const core_ssh_pool_t *p = &ps->pools[0];
    assert_int_equal(p->n_hosts, 4);
    assert_string_equal(p->hosts[0].user, "alice");
    /* Relative key paths start at the pool file's directory, not the cwd. */
    assert_string_equal(p->hosts[0].identity_file, "/etc/sky/alice-key");
    assert_int_equal(p->hosts[0].identity_mark.line, 7);
    assert_string_equal(p->hosts[1].user, "root");
    assert_string_equal(p->hosts[1].identity_file, "/home/al/.ssh/id_rsa");
    assert_int_equal(p->hosts[1].identity_mark.line, 3);
    assert_int_equal(p->hosts[1].port, 2222);
    assert_string_equal(p->hosts[2].host, "10.0.0.3");
    assert_string_equal(p->hosts[2].user, "root");
    assert_string_equal(p->hosts[3].host, "fe80::1%eth0");
    assert_string_equal(p->hosts[3].identity_file, "/keys/k");
    core_ssh_pools_free(ps);
}

static void test_password_refused(void **state)
{
    (void)state;
    expect_err("p:\n  password: hunter2\n  hosts: [1.2.3.4]\n",
               "p.yaml:2:3: password: not supported, use a key: set identity_file to a private "
               "key whose public key is in the host's ~/.ssh/authorized_keys (and let the user "
               "run without a sudo password)");
    expect_err("p:\n  hosts:\n    - ip: 1.2.3.4\n      password: x\n",
               "p.yaml:4:7: password: not supported, use a key: set identity_file to a private "
               "key whose public key is in the host's ~/.ssh/authorized_keys (and let the user "
               "run without a sudo password)");
}

static void test_errors_name_line_and_column(void **state)
{
    (void)state;
    expect_err("", "p.yaml: no SSH Node Pools defined (see docs/ssh-node-pools.md)");
    expect_err("# nothing\n", "p.yaml: no SSH Node Pools defined (see docs/ssh-node-pools.md)");
    expect_err("- a\n", "p.yaml:1:1: expected a mapping of pool names to pools, got a list");
    expect_err("p:\n  hosts: [a\n", "p.yaml:3:1: YAML syntax error: did not find expected ',' "
                                    "or ']' while parsing a flow sequence");
    expect_err("p:\n", "p.yaml:1:1: pool 'p' must be a mapping with 'hosts', got empty");
    expect_err("p: 3\n", "p.yaml:1:4: pool 'p' must be a mapping with 'hosts', got a string");
    expect_err("p:\n  user: x\n", "p.yaml:1:1: pool 'p': no hosts (add a 'hosts:' list)");
    expect_err("p:\n  hosts: []\n", "p.yaml:2:3: pool 'p': hosts must be a non-empty list");
    expect_err("p:\n  hosts:\n", "p.yaml:2:3: pool 'p': hosts must be a non-empty list");
    expect_err("p:\n  hosts: a\n", "p.yaml:2:10: pool 'p': hosts must be a non-empty list");
    expect_err("p:\n  hosts: [a]\n  hostz: [b]\n",
               "p.yaml:3:3: pool 'p': unknown key 'hostz' (expected hosts, user, identity_file)");
    expect_err("p:\n  hosts:\n    - ip: a\n      usr: b\n",
               "p.yaml:4:7: pool 'p': host: unknown key 'usr' (expected ip, user, "
               "identity_file, port)");
    expect_err("p:\n  hosts:\n    - user: b\n",
               "p.yaml:3:7: pool 'p': host: missing 'ip' (the host's address or ssh-config name)");
    expect_err("p:\n  hosts:\n    - [a]\n",
               "p.yaml:3:7: pool 'p': host must be an address, an ssh-config name or a mapping "
               "with 'ip', got a list");
    expect_err("p:\n  hosts:\n    - ip: a\n      port: 0\n",
               "p.yaml:4:13: port must be an integer in 1..65535");
    expect_err("p:\n  hosts:\n    - ip: a\n      port: 22x\n",
               "p.yaml:4:13: port must be an integer in 1..65535");
    expect_err("p:\n  hosts: [a]\np:\n  hosts: [b]\n",
               "p.yaml:3:1: pools: duplicate key 'p' (first at line 1)");
    expect_err("p:\n  hosts: [a]\n  hosts: [b]\n",
               "p.yaml:3:3: pool 'p': duplicate key 'hosts' (first at line 2)");
    expect_err("p:\n  hosts: [a, b, a]\n",
               "p.yaml:2:17: host 'a' is listed twice (first in pool 'p' at line 2): a host "
               "belongs to one pool");
    expect_err("p:\n  hosts: [a]\nq:\n  hosts:\n    - b\n    - a\n",
               "p.yaml:6:7: host 'a' is listed twice (first in pool 'p' at line 2): a host "
               "belongs to one pool");
    expect_err("p:\n  identity_file: ~bob/k\n  hosts: [a]\n",
               "p.yaml:2:18: identity_file '~bob/k': only '~/' is expanded, not '~user/'");
    expect_err("p:\n  identity_file:\n  hosts: [a]\n",
               "p.yaml:2:17: identity_file must be a non-empty string, got empty");
}

static void test_names_that_ssh_would_misread(void **state)
{
    (void)state;
    expect_err("p:\n  hosts: [-oProxyCommand=x]\n",
               "p.yaml:2:11: pool 'p': host '-oProxyCommand=x' is not a valid address or host "
               "name");
    expect_err("p:\n  hosts: ['a b']\n",
               "p.yaml:2:11: pool 'p': host 'a b' is not a valid address or host name");
    expect_err("p:\n  user: -lroot\n  hosts: [a]\n",
               "p.yaml:2:9: user '-lroot' is not a valid user name");
    expect_err("p:\n  hosts: [\"a\\nb\"]\n", "p.yaml:2:11: a host contains a control character");
    expect_err("../x:\n  hosts: [a]\n",
               "p.yaml:1:1: pool name '../x' must be 1-63 letters, digits, '.', '_' or '-', "
               "starting with a letter or digit");
    assert_true(core_ssh_pool_name_valid("a.b_c-1"));
    assert_false(core_ssh_pool_name_valid(""));
    assert_false(core_ssh_pool_name_valid("-a"));
    assert_false(core_ssh_pool_name_valid("a/b"));
}

static void test_load_missing_file(void **state)
{
    (void)state;
    core_ssh_pools_t *ps = (void *)1;
    char *err = NULL;
    assert_int_equal(core_ssh_pools_load("/nonexistent/pools.yaml", &ps, &err), -ENOENT);
    assert_null(ps);
    assert_string_equal(err, "SSH Node Pools file not found: /nonexistent/pools.yaml");
    free(err);
}

static void test_load_reads_the_file(void **state)
{
    (void)state;
    char path[] = "/tmp/sky-test-pools-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "p:\n  hosts: [h1]\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    core_ssh_pools_t *ps = NULL;
    char *err = NULL;
    assert_int_equal(core_ssh_pools_load(path, &ps, &err), 0);
    assert_string_equal(ps->file, path);
    assert_string_equal(ps->pools[0].hosts[0].host, "h1");
    core_ssh_pools_free(ps);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_skypilot_quickstart),
        cmocka_unit_test(test_defaults_and_overrides),
        cmocka_unit_test(test_password_refused),
        cmocka_unit_test(test_errors_name_line_and_column),
        cmocka_unit_test(test_names_that_ssh_would_misread),
        cmocka_unit_test(test_load_missing_file),
        cmocka_unit_test(test_load_reads_the_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
