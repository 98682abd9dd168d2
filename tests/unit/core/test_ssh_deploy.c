/* The pure parts of core/ssh_exec.c and core/ssh_deploy.c: what a host's
 * answers and ssh's failures mean. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/ssh.h"
#include "core/ssh_deploy.h"

static void test_classify_ssh_failures(void **state)
{
    (void)state;
    assert_int_equal(core_ssh_classify(0, ""), CORE_SSH_OK);
    assert_int_equal(core_ssh_classify(3, "sky-agent cannot run"), CORE_SSH_FAILED);
    assert_int_equal(core_ssh_classify(255, "root@10.0.0.1: Permission denied (publickey).\n"),
                     CORE_SSH_AUTH);
    assert_int_equal(
        core_ssh_classify(255, "ssh: connect to host 10.0.0.9 port 22: Connection timed out\n"),
        CORE_SSH_UNREACHABLE);
    assert_int_equal(core_ssh_classify(255, "ssh: Could not resolve hostname nope: Name or "
                                            "service not known\n"),
                     CORE_SSH_UNREACHABLE);
    assert_int_equal(core_ssh_classify(255, "@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS "
                                            "CHANGED!     @\n...\nHost key verification failed.\n"),
                     CORE_SSH_HOSTKEY);
    assert_int_equal(core_ssh_classify(255, ""), CORE_SSH_UNREACHABLE);
}

static void test_reason_is_the_last_meaningful_line(void **state)
{
    (void)state;
    char why[128];
    core_ssh_reason("Warning: Permanently added '10.0.0.1' (ED25519) to the list of known hosts."
                    "\r\nroot@10.0.0.1: Permission denied (publickey).\r\n\n",
                    why, sizeof(why));
    assert_string_equal(why, "root@10.0.0.1: Permission denied (publickey).");
    core_ssh_reason("", why, sizeof(why));
    assert_string_equal(why, "no message from ssh");
    core_ssh_reason("  spaced out  \n", why, 8);
    assert_string_equal(why, "spaced ");
}

static void test_probe_answers(void **state)
{
    (void)state;
    core_ssh_hostinfo_t h;
    core_ssh_probe_t p;
    memset(&h, 0, sizeof(h));
    const char *out = "arch=x86_64\ncpus=32\nmem_kb=263856128\naddr=10.0.0.5\nbash=1\npython3=0\n"
                      "gpu=NVIDIA A100-SXM4-80GB, 81920\ngpu=NVIDIA A100-SXM4-80GB, 81920\n"
                      "agent_sha=" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
                      "cert_sha=short\nagent_port=41237\nnoise without equals\n";
    assert_int_equal(core_ssh_parse_probe(out, &h, &p), 0);
    assert_string_equal(h.arch, "x86_64");
    assert_int_equal(h.cpus, 32);
    assert_true(h.memory_gb > 251.6 && h.memory_gb < 251.7);
    assert_string_equal(h.addr, "10.0.0.5");
    assert_int_equal(h.gpus, 2);
    assert_string_equal(h.gpu_name, "NVIDIA A100-SXM4-80GB");
    assert_int_equal(p.bash, 1);
    assert_int_equal(p.python3, 0);
    assert_string_equal(p.agent_sha,
                        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    assert_string_equal(p.cert_sha, ""); /* not a sha256: nothing installed as far as we know */
    assert_int_equal(p.agent_running, 1);
    assert_int_equal(p.agent_port, 41237);

    /* A host that says nothing useful (or lies at length) is not taken for one. */
    memset(&h, 0, sizeof(h));
    assert_int_equal(core_ssh_parse_probe("cpus=4\n", &h, &p), -EINVAL);
    char *big = malloc(100000);
    memset(big, 'a', 99999);
    memcpy(big, "arch=", 5);
    big[99999] = '\0';
    memset(&h, 0, sizeof(h));
    assert_int_equal(core_ssh_parse_probe(big, &h, &p), -EINVAL); /* no addr */
    assert_int_equal(strlen(h.arch), sizeof(h.arch) - 1);
    free(big);
}

static void test_elf_arch(void **state)
{
    (void)state;
    unsigned char elf[64] = {0x7f, 'E', 'L', 'F', 2, 1};
    char arch[32];
    elf[18] = 62;
    core_ssh_elf_arch(elf, sizeof(elf), arch, sizeof(arch));
    assert_string_equal(arch, "x86_64");
    elf[18] = 183;
    core_ssh_elf_arch(elf, sizeof(elf), arch, sizeof(arch));
    assert_string_equal(arch, "aarch64");
    elf[18] = 0x99;
    core_ssh_elf_arch(elf, sizeof(elf), arch, sizeof(arch));
    assert_string_equal(arch, "elf-machine-153");
    core_ssh_elf_arch("#!/bin/sh\n", 10, arch, sizeof(arch));
    assert_string_equal(arch, "");
    core_ssh_elf_arch(elf, 8, arch, sizeof(arch));
    assert_string_equal(arch, "");
}

static void test_ssh_argv(void **state)
{
    (void)state;
    setenv("SKY_HOME", "/tmp/sky-home-argv", 1);
    core_ssh_host_t h = {.host = "10.0.0.5", .user = "alice", .identity_file = "/k/id", .port = 2222};
    char **argv = core_ssh_argv(&h, "echo 'hi'");
    char joined[2048] = "";
    for (char **a = argv; *a; a++) {
        strcat(joined, *a);
        strcat(joined, "|");
    }
    assert_non_null(strstr(joined, "ssh|-T|-o|BatchMode=yes|-o|StrictHostKeyChecking=accept-new|"));
    assert_non_null(strstr(joined, "|-o|ConnectTimeout=5|"));
    assert_non_null(strstr(joined, "|-o|UserKnownHostsFile=/tmp/sky-home-argv/ssh/known_hosts|"));
    assert_non_null(strstr(joined, "|-o|IdentitiesOnly=yes|-i|/k/id|-l|alice|-p|2222|--|10.0.0.5|"));
    /* One argument for the remote shell, single quotes escaped. */
    assert_non_null(strstr(joined, "|exec sh -c 'echo '\\''hi'\\'''|"));
    core_ssh_argv_free(argv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_ssh_failures),
        cmocka_unit_test(test_reason_is_the_last_meaningful_line),
        cmocka_unit_test(test_probe_answers),
        cmocka_unit_test(test_elf_arch),
        cmocka_unit_test(test_ssh_argv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
