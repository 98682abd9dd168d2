/*
 * Task / service YAML parser: good files with every field and default, bad
 * files with the exact error text (file:line:col), service and job validation.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/spec.h"

#define DATA SKY_SOURCE_DIR "/tests/data/spec/"

static core_task_t *parse_ok(const char *yaml)
{
    core_task_t *t = NULL;
    char *err = NULL;
    int rc = core_task_parse(yaml, strlen(yaml), "t.yaml", &t, &err);
    if (rc)
        fail_msg("unexpected parse error %d: %s", rc, err ? err : "(null)");
    assert_null(err);
    assert_non_null(t);
    return t;
}

static core_task_t *load_ok(const char *path)
{
    core_task_t *t = NULL;
    char *err = NULL;
    int rc = core_task_load(path, &t, &err);
    if (rc)
        fail_msg("unexpected load error %d: %s", rc, err ? err : "(null)");
    return t;
}

/* ------------------------------------------------------------------ */
/* bad YAML: exact messages */

typedef struct bad_case {
    const char *name;
    const char *yaml;
    const char *err;
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"unknown top-level field", "name: x\nfoo: 1\n", "t.yaml:2:1: unknown field 'foo' in task"},
    {"unknown field in replica_policy",
     "service:\n  replica_policy:\n    min_replicas: 1\n    foo: 2\n",
     "t.yaml:4:5: unknown field 'foo' in service.replica_policy"},
    {"unknown field in service", "service:\n  replicas: 1\n  autoscale: true\n",
     "t.yaml:3:3: unknown field 'autoscale' in service"},
    {"unknown field in readiness_probe",
     "service:\n  readiness_probe:\n    path: /h\n    method: GET\n",
     "t.yaml:4:5: unknown field 'method' in service.readiness_probe"},
    {"unknown field in resources", "resources:\n  gpus: 1\n",
     "t.yaml:2:3: unknown field 'gpus' in resources"},
    {"unknown field in any_of entry", "resources:\n  any_of:\n    - cloud: aws\n      bogus: 1\n",
     "t.yaml:4:7: unknown field 'bogus' in resources.any_of[0]"},
    {"unknown field in job_recovery",
     "resources:\n  job_recovery:\n    strategy: FAILOVER\n    retries: 3\n",
     "t.yaml:4:5: unknown field 'retries' in resources.job_recovery"},
    {"unknown field in tls", "service:\n  tls:\n    keyfile: k\n    certfile: c\n    ca: x\n",
     "t.yaml:5:5: unknown field 'ca' in service.tls"},
    {"unknown field in storage mount", "file_mounts:\n  /d:\n    name: my-bucket\n    size: 3\n",
     "t.yaml:4:5: unknown field 'size' in file_mounts./d"},
    {"duplicate key", "name: a\nname: b\n", "t.yaml:2:1: duplicate field 'name' in task"},
    {"syntax error: bad indentation", "service:\n  replicas: 1\n bad: 2\n",
     "t.yaml:3:2: YAML syntax error: did not find expected key while parsing a block mapping"},
    {"syntax error: unterminated quote", "name: \"abc\n",
     "t.yaml:2:1: YAML syntax error: found unexpected end of stream while scanning a quoted "
     "scalar"},
    {"syntax error: tab indentation", "service:\n\treplicas: 1\n",
     "t.yaml:2:1: YAML syntax error: found character that cannot start any token while scanning "
     "for the next token"},
    {"top level is a list", "- a\n- b\n", "t.yaml:1:1: task: expected a mapping, got a list"},
    {"two documents", "name: a\n---\nname: b\n",
     "t.yaml:3:1: multiple YAML documents (pipelines) are not supported"},
    {"name is a mapping", "name:\n  a: 1\n", "t.yaml:2:3: name: expected a string, got a mapping"},
    {"run is a list", "run:\n  - echo\n", "t.yaml:2:3: run: expected a string, got a list"},
    {"num_nodes zero", "num_nodes: 0\n", "t.yaml:1:12: num_nodes: must be >= 1, got 0"},
    {"num_nodes string", "num_nodes: two\n",
     "t.yaml:1:12: num_nodes: expected an integer, got 'two'"},
    {"min_replicas quoted", "service:\n  replica_policy:\n    min_replicas: \"2\"\n",
     "t.yaml:3:19: service.replica_policy.min_replicas: expected an integer, got a string"},
    {"min_replicas float", "service:\n  replica_policy:\n    min_replicas: 1.5\n",
     "t.yaml:3:19: service.replica_policy.min_replicas: expected an integer, got '1.5'"},
    {"min_replicas negative", "service:\n  replica_policy:\n    min_replicas: -1\n",
     "t.yaml:3:19: service.replica_policy.min_replicas: must be >= 0, got -1"},
    {"min_replicas empty", "service:\n  replica_policy:\n    min_replicas:\n",
     "t.yaml:3:5: service.replica_policy.min_replicas: expected an integer, got null"},
    {"min_replicas missing", "service:\n  replica_policy:\n    max_replicas: 2\n",
     "t.yaml:3:5: service.replica_policy: min_replicas is required"},
    {"replica_policy is a list", "service:\n  replica_policy: [1]\n",
     "t.yaml:2:19: service.replica_policy: expected a mapping, got a list"},
    {"replicas negative", "service:\n  replicas: -2\n",
     "t.yaml:2:13: service.replicas: must be >= 0, got -2"},
    {"replicas and replica_policy",
     "service:\n  replicas: 2\n  replica_policy:\n    min_replicas: 1\n",
     "t.yaml:3:3: Cannot specify both `replicas` and `replica_policy` in the Service section. "
     "Please specify one of them."},
    {"max below min", "service:\n  replica_policy:\n    min_replicas: 3\n    max_replicas: 2\n",
     "t.yaml:4:19: max_replicas must be greater than or equal to min_replicas. Found: "
     "min_replicas=3, max_replicas=2"},
    {"target qps without max",
     "service:\n  replica_policy:\n    min_replicas: 1\n    target_qps_per_replica: 2\n",
     "t.yaml:4:29: max_replicas must be set where target_qps_per_replica is set."},
    {"min != max without target qps",
     "service:\n  replica_policy:\n    min_replicas: 1\n    max_replicas: 3\n",
     "t.yaml:3:5: Detected different min_replicas and max_replicas while target_qps_per_replica "
     "is not set. To enable autoscaling, please set target_qps_per_replica."},
    {"target qps zero",
     "service:\n  replica_policy:\n    min_replicas: 1\n    max_replicas: 3\n"
     "    target_qps_per_replica: 0\n",
     "t.yaml:5:29: target_qps_per_replica must be greater than 0. Found: 0"},
    {"target qps negative",
     "service:\n  replica_policy:\n    min_replicas: 1\n    max_replicas: 3\n"
     "    target_qps_per_replica: -1\n",
     "t.yaml:5:29: service.replica_policy.target_qps_per_replica: must be >= 0, got -1"},
    {"target qps dict",
     "service:\n  replica_policy:\n    min_replicas: 1\n    max_replicas: 3\n"
     "    target_qps_per_replica:\n      A100: 2\n",
     "t.yaml:6:7: service.replica_policy.target_qps_per_replica: a per-accelerator mapping "
     "requires load_balancing_policy instance_aware_least_load, which is not supported"},
    {"base fallback above max",
     "service:\n  replica_policy:\n    min_replicas: 1\n    max_replicas: 2\n"
     "    target_qps_per_replica: 1\n    base_ondemand_fallback_replicas: 3\n",
     "t.yaml:6:38: base_ondemand_fallback_replicas must be less than or equal to max_replicas. "
     "Found: base_ondemand_fallback_replicas=3, max_replicas=2"},
    {"unknown service field after replicas", "service:\n  replicas: 1\n  replica_policy_x: 1\n",
     "t.yaml:3:3: unknown field 'replica_policy_x' in service"},
    {"base fallback above fixed min",
     "service:\n  replica_policy:\n    min_replicas: 1\n    base_ondemand_fallback_replicas: 2\n",
     "t.yaml:4:38: base_ondemand_fallback_replicas must be less than or equal to max_replicas. "
     "Found: base_ondemand_fallback_replicas=2, max_replicas=1"},
    {"dynamic fallback not bool",
     "service:\n  replica_policy:\n    min_replicas: 1\n    dynamic_ondemand_fallback: maybe\n",
     "t.yaml:4:32: service.replica_policy.dynamic_ondemand_fallback: expected true or false, "
     "got 'maybe'"},
    {"unknown spot placer",
     "service:\n  replica_policy:\n    min_replicas: 1\n    spot_placer: greedy\n",
     "t.yaml:4:18: Unknown spot placer: greedy. Available spot placers: ['dynamic_fallback', "
     "'spread_backoff']"},
    {"fallback_covers_overprovision not bool",
     "service:\n  replica_policy:\n    min_replicas: 1\n    dynamic_ondemand_fallback: true\n"
     "    fallback_covers_overprovision: sometimes\n",
     "t.yaml:5:36: service.replica_policy.fallback_covers_overprovision: expected true or false, "
     "got 'sometimes'"},
    {"fallback_covers_overprovision without dynamic fallback",
     "service:\n  replica_policy:\n    min_replicas: 1\n    num_overprovision: 1\n"
     "    fallback_covers_overprovision: false\n",
     "t.yaml:5:36: `fallback_covers_overprovision` applies only with "
     "`dynamic_ondemand_fallback: true`."},
    {"fallback_covers_overprovision with dynamic fallback false",
     "service:\n  replica_policy:\n    min_replicas: 1\n    fallback_covers_overprovision: true\n"
     "    dynamic_ondemand_fallback: false\n",
     "t.yaml:4:36: `fallback_covers_overprovision` applies only with "
     "`dynamic_ondemand_fallback: true`."},
    {"unknown lb policy", "service:\n  load_balancing_policy: random\n",
     "t.yaml:2:26: Unknown load balancing policy: random. Available policies: ['round_robin', "
     "'least_load', 'power_of_two']"},
    {"instance aware lb rejected", "service:\n  load_balancing_policy: instance_aware_least_load\n",
     "t.yaml:2:26: Unknown load balancing policy: instance_aware_least_load. Available policies: "
     "['round_robin', 'least_load', 'power_of_two']"},
    {"probe path without slash", "service:\n  readiness_probe: health\n",
     "t.yaml:2:20: readiness_path must start with a slash (/). Got: health"},
    {"probe object path without slash", "service:\n  readiness_probe:\n    path: v1/models\n",
     "t.yaml:3:11: readiness_path must start with a slash (/). Got: v1/models"},
    {"probe object without path", "service:\n  readiness_probe:\n    timeout_seconds: 5\n",
     "t.yaml:3:5: service.readiness_probe: path is required"},
    {"probe bad json post_data",
     "service:\n  readiness_probe:\n    path: /p\n    post_data: '{\"a\": '\n",
     "t.yaml:4:16: Invalid JSON string for `post_data` in the `readiness_probe` section of your "
     "service YAML."},
    {"probe timeout zero", "service:\n  readiness_probe:\n    path: /\n    timeout_seconds: 0\n",
     "t.yaml:4:22: service.readiness_probe.timeout_seconds: must be > 0, got 0"},
    {"probe delay string",
     "service:\n  readiness_probe:\n    path: /\n    initial_delay_seconds: soon\n",
     "t.yaml:4:28: service.readiness_probe.initial_delay_seconds: expected a number, got 'soon'"},
    {"probe header without value",
     "service:\n  readiness_probe:\n    path: /\n    headers:\n      Authorization:\n",
     "t.yaml:5:7: service.readiness_probe.headers.Authorization: value required"},
    {"tls missing certfile", "service:\n  tls:\n    keyfile: k.pem\n",
     "t.yaml:3:5: service.tls: both keyfile and certfile are required"},
    {"service port out of range", "service:\n  ports: 70000\n",
     "t.yaml:2:10: Port must be between 1 and 65535."},
    {"service port string", "service:\n  ports: http\n",
     "t.yaml:2:10: service.ports: expected an integer port, got 'http'"},
    {"resource port zero", "resources:\n  ports: 0\n",
     "t.yaml:2:10: resources.ports: Port must be between 1 and 65535."},
    {"resource port range reversed", "resources:\n  ports: 8081-8080\n",
     "t.yaml:2:10: resources.ports: invalid port range '8081-8080'"},
    {"resource port in list", "resources:\n  ports: [8080, abc]\n",
     "t.yaml:2:17: resources.ports[1]: invalid port 'abc': expected a port such as 8081 or a "
     "range such as 8080-8081"},
    {"resource ports mapping", "resources:\n  ports:\n    a: 1\n",
     "t.yaml:3:5: resources.ports: expected a port, a port range or a list of them, got a mapping"},
    {"cpus garbage", "resources:\n  cpus: lots\n",
     "t.yaml:2:9: resources.cpus: invalid value 'lots': expected a positive number, optionally "
     "followed by '+' (e.g. 2 or 2+)"},
    {"cpus zero", "resources:\n  cpus: 0\n",
     "t.yaml:2:9: resources.cpus: invalid value '0': expected a positive number, optionally "
     "followed by '+' (e.g. 2 or 2+)"},
    {"cpus double plus", "resources:\n  cpus: 2++\n",
     "t.yaml:2:9: resources.cpus: invalid value '2++': expected a positive number, optionally "
     "followed by '+' (e.g. 2 or 2+)"},
    {"memory list", "resources:\n  memory: [1]\n",
     "t.yaml:2:11: resources.memory: expected a number such as 2 or 2+, got a list"},
    {"accelerator bad count", "resources:\n  accelerators: V100:x\n",
     "t.yaml:2:17: resources.accelerators: invalid accelerator count in 'V100:x': expected a "
     "positive integer"},
    {"accelerator zero count", "resources:\n  accelerators: V100:0\n",
     "t.yaml:2:17: resources.accelerators: invalid accelerator count in 'V100:0': expected a "
     "positive integer"},
    {"accelerator dict two entries", "resources:\n  accelerators:\n    V100: 1\n    A100: 1\n",
     "t.yaml:3:5: resources.accelerators: exactly one accelerator type is supported (use any_of "
     "for alternatives)"},
    {"accelerator dict bad count", "resources:\n  accelerators:\n    V100: two\n",
     "t.yaml:3:11: resources.accelerators.V100: expected an integer, got 'two'"},
    {"use_spot not bool", "resources:\n  use_spot: sometimes\n",
     "t.yaml:2:13: resources.use_spot: expected true or false, got 'sometimes'"},
    {"disk_size zero", "resources:\n  disk_size: 0\n",
     "t.yaml:2:14: resources.disk_size: invalid size '0': expected GB such as 256, 256GB or 1TB"},
    {"cloud bad name", "resources:\n  cloud: \"a b\"\n",
     "t.yaml:2:10: resources.cloud: invalid name 'a b'"},
    {"infra and cloud", "resources:\n  cloud: aws\n  infra: gcp\n",
     "t.yaml:2:3: resources: cannot specify both infra and cloud/region/zone"},
    {"infra too many parts", "resources:\n  infra: aws/us-east-1/us-east-1a/x\n",
     "t.yaml:2:10: resources.infra: invalid infra 'aws/us-east-1/us-east-1a/x': expected "
     "cloud[/region[/zone]]"},
    {"unknown recovery strategy", "resources:\n  job_recovery: RETRY\n",
     "t.yaml:2:17: resources.job_recovery: unknown recovery strategy 'RETRY'. Available "
     "strategies: ['EAGER_NEXT_REGION', 'FAILOVER']"},
    {"unknown spot_recovery strategy", "resources:\n  spot_recovery:\n    strategy: nope\n",
     "t.yaml:3:15: resources.spot_recovery.strategy: unknown recovery strategy 'nope'. "
     "Available strategies: ['EAGER_NEXT_REGION', 'FAILOVER']"},
    {"both recovery spellings", "resources:\n  job_recovery: FAILOVER\n  spot_recovery: FAILOVER\n",
     "t.yaml:3:3: resources: cannot specify both job_recovery and spot_recovery (spot_recovery "
     "is the old name of job_recovery)"},
    {"negative max restarts", "resources:\n  job_recovery:\n    max_restarts_on_errors: -1\n",
     "t.yaml:3:29: resources.job_recovery.max_restarts_on_errors: must be >= 0, got -1"},
    {"exit code out of range", "resources:\n  job_recovery:\n    recover_on_exit_codes: [1, 256]\n",
     "t.yaml:3:32: resources.job_recovery.recover_on_exit_codes: must be between 0 and 255, "
     "got 256"},
    {"nested any_of", "resources:\n  any_of:\n    - any_of: []\n",
     "t.yaml:3:7: resources.any_of[0]: any_of cannot be nested"},
    {"any_of and ordered", "resources:\n  any_of: [{cloud: aws}]\n  ordered: [{cloud: gcp}]\n",
     "t.yaml:3:3: resources: cannot specify both any_of and ordered"},
    {"any_of empty", "resources:\n  any_of: []\n",
     "t.yaml:2:11: resources.any_of: expected at least one entry"},
    {"any_of scalar entry", "resources:\n  any_of:\n    - aws\n",
     "t.yaml:3:7: resources.any_of[0]: expected a mapping, got a scalar"},
    {"env bad name", "envs:\n  1X: a\n",
     "t.yaml:2:3: envs: invalid name '1X' (letters, digits and '_', not starting with a digit)"},
    {"env value list", "envs:\n  X: [1]\n",
     "t.yaml:2:6: envs.X: expected a string or a number, got a list"},
    {"file mount bucket name null", "file_mounts:\n  /ckpt:\n    name:\n    mode: MOUNT\n",
     "t.yaml:3:5: file_mounts./ckpt.name: bucket name required"},
    {"file mount bucket name missing", "file_mounts:\n  /ckpt:\n    mode: MOUNT\n",
     "t.yaml:3:5: file_mounts./ckpt.name: bucket name required"},
    {"file mount bad bucket name", "file_mounts:\n  /ckpt:\n    name: ../etc\n",
     "t.yaml:3:11: file_mounts./ckpt.name: invalid bucket name '../etc': use 3-63 lowercase "
     "letters, digits, '-', '_' or '.', starting and ending with a letter or digit"},
    {"file mount bad mode", "file_mounts:\n  /ckpt:\n    name: my-bucket\n    mode: SYNC\n",
     "t.yaml:4:11: file_mounts./ckpt.mode: unknown mode 'SYNC'. Available modes: ['MOUNT', "
     "'COPY', 'MOUNT_CACHED']"},
    {"file mount relative destination", "file_mounts:\n  data: ./local\n",
     "t.yaml:2:3: file_mounts: destination 'data' must be an absolute path or start with ~"},
    {"file mount dotdot destination", "file_mounts:\n  /a/../etc: ./local\n",
     "t.yaml:2:3: file_mounts: destination '/a/../etc' must not contain '..'"},
    {"file mount null source", "file_mounts:\n  /a:\n",
     "t.yaml:2:3: file_mounts./a: expected a local path or a storage object, got null"},
    {"file mount persistent not bool",
     "file_mounts:\n  /a:\n    name: my-bucket\n    persistent: 2\n",
     "t.yaml:4:17: file_mounts./a.persistent: expected true or false, got '2'"},
    {"workdir empty string", "workdir: \"\"\n", "t.yaml:1:10: workdir: expected a non-empty path"},
    {"nul in string", "name: \"a\\0b\"\n", "t.yaml:1:7: name: string contains a NUL character"},
    /* SkyPilot keys that cannot be honoured are still checked for the schema's type. */
    {"ignored key wrong type", "resources:\n  labels: [a]\n",
     "t.yaml:2:11: resources.labels: unexpected a list"},
    {"disk_tier not a tier", "resources:\n  disk_tier: fastest\n",
     "t.yaml:2:14: resources.disk_tier: invalid value 'fastest'"},
    {"priority out of range", "resources:\n  priority: 5000\n",
     "t.yaml:2:13: resources.priority: must be between -1000 and 1000, got 5000"},
    {"disk_size junk", "resources:\n  disk_size: 10XB\n",
     "t.yaml:2:14: resources.disk_size: invalid size '10XB': expected GB such as 256, 256GB or "
     "1TB"},
    {"num_nodes above one", "name: x\nnum_nodes: 4\n",
     "t.yaml:2:12: num_nodes: 4: multi-node tasks are not supported yet; every task runs on one "
     "instance (use num_nodes: 1)"},
    {"pool section", "pool:\n  workers: 2\n",
     "t.yaml:1:1: pool: SkyPilot pools are not supported (launch managed jobs without a pool)"},
    {"secret store references", "secrets:\n  - secrets:HF_TOKEN\n",
     "t.yaml:2:3: secrets: references to SkyPilot's secret store are not supported: give the "
     "values in the YAML or with --secret"},
    {"git workdir", "workdir:\n  url: https://github.com/x/y\n",
     "t.yaml:2:3: workdir: a git repository as workdir is not supported: clone it and give its "
     "local path"},
    /* Substitution happens before validation: a bucket name from an env is checked as such. */
    {"substituted bucket name invalid",
     "envs:\n  B: Not_A_Bucket\nfile_mounts:\n  /ckpt:\n    name: ${B}\n",
     "t.yaml:5:11: file_mounts./ckpt.name: invalid bucket name 'Not_A_Bucket': use 3-63 "
     "lowercase letters, digits, '-', '_' or '.', starting and ending with a letter or digit"},
};

static void test_bad_cases(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const bad_case_t *bc = &bad_cases[i];
        core_task_t *t = NULL;
        char *err = NULL;
        int rc = core_task_parse(bc->yaml, strlen(bc->yaml), "t.yaml", &t, &err);
        if (rc != CORE_ESPEC || !err || strcmp(err, bc->err)) {
            print_error("case '%s': rc=%d\n  want: %s\n  got:  %s\n", bc->name, rc, bc->err,
                        err ? err : "(no error)");
            failures++;
        }
        assert_null(t);
        free(err);
    }
    assert_int_equal(failures, 0);
}

/* Bad fixture files, verbatim documents included. */
static void test_bad_files(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        const char *err; /* after DATA */
    } cases[] = {
        {"bad_bert_qa_no_bucket_name.yaml",
         "bad_bert_qa_no_bucket_name.yaml:14:5: file_mounts./checkpoint.name: bucket name "
         "required"},
        {"bad_service_unknown_key.yaml",
         "bad_service_unknown_key.yaml:5:5: unknown field 'target_qps' in "
         "service.replica_policy"},
        {"bad_syntax.yaml",
         "bad_syntax.yaml:4:2: YAML syntax error: did not find expected key while parsing a "
         "block mapping"},
        {"bad_ports_type.yaml",
         "bad_ports_type.yaml:7:7: resources.ports[1]: expected a port or a port range, got a "
         "mapping"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[512], want[512];
        core_task_t *t = NULL;
        char *err = NULL;
        snprintf(path, sizeof(path), "%s%s", DATA, cases[i].file);
        snprintf(want, sizeof(want), "%s%s", DATA, cases[i].err);
        assert_int_equal(core_task_load(path, &t, &err), CORE_ESPEC);
        assert_null(t);
        assert_non_null(err);
        assert_string_equal(err, want);
        free(err);
    }
}

static void test_load_errors(void **state)
{
    (void)state;
    core_task_t *t = NULL;
    char *err = NULL;
    assert_int_equal(core_task_load(DATA "does_not_exist.yaml", &t, &err), -ENOENT);
    assert_string_equal(err, DATA "does_not_exist.yaml: cannot open: No such file or directory");
    free(err);
    err = NULL;

    /* Size bound: refused before parsing, both through load and parse. */
    char tmpl[] = "/tmp/test_spec_XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    size_t big = CORE_SPEC_MAX_BYTES + 1;
    char *buf = malloc(big);
    memset(buf, '#', big);
    assert_int_equal(write(fd, buf, big), (ssize_t)big);
    close(fd);
    assert_int_equal(core_task_load(tmpl, &t, &err), CORE_ESPEC);
    char want[256];
    snprintf(want, sizeof(want), "%s: YAML too large (more than %d bytes)", tmpl,
             CORE_SPEC_MAX_BYTES);
    assert_string_equal(err, want);
    free(err);
    err = NULL;
    unlink(tmpl);
    assert_int_equal(core_task_parse(buf, big, NULL, &t, &err), CORE_ESPEC);
    snprintf(want, sizeof(want), "<string>: YAML too large (%zu bytes, at most %d)", big,
             CORE_SPEC_MAX_BYTES);
    assert_string_equal(err, want);
    free(err);
    free(buf);

    /* err may be NULL. */
    assert_int_equal(core_task_parse("foo: 1\n", 7, NULL, &t, NULL), CORE_ESPEC);
    assert_null(t);
}

/* Aliases can make a few lines name millions of nodes; the walk is bounded. */
static void test_alias_bomb_and_depth(void **state)
{
    (void)state;
    const char *bomb = "service:\n"
                       "  readiness_probe:\n"
                       "    path: /\n"
                       "    post_data:\n"
                       "      a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
                       "      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                       "      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "      e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                       "      f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                       "      g: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    core_task_t *t = NULL;
    char *err = NULL;
    assert_int_equal(core_task_parse(bomb, strlen(bomb), "t.yaml", &t, &err), CORE_ESPEC);
    assert_non_null(strstr(err, "YAML too complex"));
    free(err);
    err = NULL;

    char deep[512] = "service:\n  readiness_probe:\n    path: /\n    post_data: ";
    for (int i = 0; i < 40; i++)
        strcat(deep, "[");
    for (int i = 0; i < 40; i++)
        strcat(deep, "]");
    strcat(deep, "\n");
    assert_int_equal(core_task_parse(deep, strlen(deep), "t.yaml", &t, &err), CORE_ESPEC);
    assert_string_equal(err, "t.yaml:4:49: service.readiness_probe.post_data: nested too "
                             "deeply (at most 32 levels)");
    free(err);
}

/* ------------------------------------------------------------------ */
/* good YAML */

static const char *const REPR_BASE =
    "Readiness probe method:           GET /health\n"
    "Readiness initial delay seconds:  1200\n"
    "Readiness probe timeout seconds:  15\n"
    "Replica autoscaling policy:       Autoscaling from 2 to 3 replicas (target QPS per "
    "replica: 1)\n"
    "TLS Certificates:                 No TLS Enabled\n"
    "Spot Policy:                      Static spot mixture with 1 base on-demand replica\n"
    "Load Balancing Policy:            least_load\n";

static void check_seed_common(const core_task_t *t)
{
    char cwd[4096], want[4200];
    assert_non_null(t->service);
    assert_null(t->name);
    assert_string_equal(t->service->probe.path, "/health");
    assert_null(t->service->probe.post_data);
    assert_int_equal(t->service->policy.min_replicas, 2);
    assert_int_equal(t->service->policy.max_replicas, 3);
    assert_true(t->service->policy.has_target_qps);
    assert_true(t->service->policy.target_qps_per_replica == 1.0);
    assert_int_equal(t->resources.n_ports, 1);
    assert_int_equal(t->resources.ports[0].lo, 8081);
    assert_int_equal(t->resources.ports[0].hi, 8081);
    assert_true(t->resources.cpus == 2.0);
    assert_true(t->resources.cpus_plus);
    assert_int_equal(t->resources.use_spot, 1);
    assert_string_equal(t->workdir, "examples/serve/http_server");
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    snprintf(want, sizeof(want), "%s/examples/serve/http_server", strcmp(cwd, "/") ? cwd : "");
    assert_string_equal(t->workdir_resolved, want);
    assert_string_equal(t->run, "python3 server.py");
    assert_null(t->setup);
    assert_int_equal(t->num_nodes, 1);
    assert_int_equal(core_task_validate_service(t, NULL), 8081);
}

static void test_seed_base_ondemand(void **state)
{
    (void)state;
    core_task_t *t =
        load_ok(SKY_SOURCE_DIR "/examples/serve/spot_policy/base_ondemand_fallback.yaml");
    check_seed_common(t);
    assert_int_equal(t->service->policy.base_ondemand_fallback_replicas, 1);
    assert_int_equal(t->service->policy.dynamic_ondemand_fallback, -1);
    assert_true(t->service->use_ondemand_fallback);
    char *r = core_service_repr(t->service);
    assert_string_equal(r, REPR_BASE);
    free(r);
    core_task_free(t);
}

static void test_seed_dynamic_ondemand(void **state)
{
    (void)state;
    core_task_t *t =
        load_ok(SKY_SOURCE_DIR "/examples/serve/spot_policy/dynamic_on_demand_fallback.yaml");
    check_seed_common(t);
    assert_int_equal(t->service->policy.base_ondemand_fallback_replicas, -1);
    assert_int_equal(t->service->policy.dynamic_ondemand_fallback, 1);
    assert_true(t->service->use_ondemand_fallback);
    char *r = core_service_repr(t->service);
    assert_non_null(strstr(r, "\nSpot Policy:                      Dynamic on-demand "
                              "fallback\n"));
    free(r);
    core_task_free(t);
}

static void test_seed_bert_qa(void **state)
{
    (void)state;
    char want[4200];
    const char *home = getenv("HOME");
    core_task_t *t = load_ok(DATA "good_bert_qa.yaml");
    assert_string_equal(t->name, "bert_qa");
    assert_string_equal(t->resources.accelerator, "V100");
    assert_int_equal(t->resources.accelerator_count, 1);
    assert_int_equal(t->resources.use_spot, -1);
    assert_string_equal(t->workdir, "~/transformers");
    snprintf(want, sizeof(want), "%s/transformers", home && strcmp(home, "/") ? home : "");
    assert_string_equal(t->workdir_resolved, want);
    assert_non_null(strstr(t->setup, "git checkout v4.18.0\npip install -e .\n"));
    static const char run_head[] = "cd ./examples/pytorch/question-answering/\n"
                                   "python run_qa.py \\\n";
    assert_true(strncmp(t->run, run_head, sizeof(run_head) - 1) == 0);
    assert_null(t->service);
    assert_int_equal(t->n_file_mounts, 0);
    assert_int_equal(core_task_validate_job(t, NULL), 0);
    const core_job_recovery_t *jr = core_task_job_recovery(t);
    assert_false(jr->set);
    assert_int_equal(jr->strategy, CORE_RECOVERY_EAGER_NEXT_REGION);
    char *err = NULL;
    assert_int_equal(core_task_validate_service(t, &err), CORE_ESPEC);
    assert_string_equal(err, DATA "good_bert_qa.yaml: Service section not found.");
    free(err);
    core_task_free(t);

    t = load_ok(DATA "good_bert_qa_checkpoint.yaml");
    assert_int_equal(t->n_file_mounts, 1);
    const core_file_mount_t *fm = &t->file_mounts[0];
    assert_string_equal(fm->dst, "/checkpoint");
    assert_true(fm->is_storage);
    assert_string_equal(fm->name, "sky-bert-qa-checkpoints");
    assert_int_equal(fm->mode, CORE_MOUNT_MOUNT);
    assert_true(fm->persistent);
    assert_null(fm->src);
    assert_null(fm->src_resolved);
    assert_int_equal(fm->mark.line, 13);
    assert_int_equal(fm->mark.col, 3);
    assert_non_null(strstr(t->run, "--run_name $SKYPILOT_RUN_ID \\\n"));
    assert_int_equal(core_task_validate_job(t, NULL), 0);
    core_task_free(t);

    t = load_ok(DATA "good_file_mounts_snippet.yaml");
    assert_int_equal(t->n_file_mounts, 1);
    assert_string_equal(t->file_mounts[0].name, "my-bucket");
    core_task_free(t);
}

static void test_service_defaults(void **state)
{
    (void)state;
    core_task_t *t = parse_ok("service:\n  readiness_probe: /\nresources:\n  ports: 8080\n"
                              "run: echo hi\n");
    const core_service_spec_t *s = t->service;
    assert_non_null(s);
    assert_string_equal(s->probe.path, "/");
    assert_true(s->probe.initial_delay_seconds == 1200);
    assert_true(s->probe.timeout_seconds == 15);
    assert_null(s->probe.post_data);
    assert_int_equal(s->probe.n_headers, 0);
    assert_int_equal(s->policy.min_replicas, 1);
    assert_int_equal(s->policy.max_replicas, -1);
    assert_false(s->policy.has_target_qps);
    assert_true(s->policy.upscale_delay_seconds == 300);
    assert_true(s->policy.downscale_delay_seconds == 1200);
    assert_int_equal(s->policy.num_overprovision, -1);
    assert_int_equal(s->policy.base_ondemand_fallback_replicas, -1);
    assert_int_equal(s->policy.dynamic_ondemand_fallback, -1);
    assert_int_equal(s->policy.fallback_covers_overprovision, -1);
    assert_int_equal(s->policy.spot_placer, CORE_SPOT_PLACER_NONE);
    assert_false(s->has_replicas_shorthand);
    assert_int_equal(s->lb_policy, CORE_LB_LEAST_LOAD);
    assert_null(s->tls_keyfile);
    assert_null(s->tls_certfile);
    assert_int_equal(s->ports, 0);
    assert_false(s->use_ondemand_fallback);
    assert_int_equal(core_task_validate_service(t, NULL), 8080);
    char *r = core_service_repr(s);
    assert_string_equal(r, "Readiness probe method:           GET /\n"
                           "Readiness initial delay seconds:  1200\n"
                           "Readiness probe timeout seconds:  15\n"
                           "Replica autoscaling policy:       Fixed 1 replica\n"
                           "TLS Certificates:                 No TLS Enabled\n"
                           "Spot Policy:                      No spot policy\n"
                           "Load Balancing Policy:            least_load\n");
    free(r);
    core_task_free(t);

    /* An empty service section takes every default, readiness path included. */
    t = parse_ok("service: {}\nresources:\n  ports: 8080\n");
    assert_string_equal(t->service->probe.path, "/");
    assert_int_equal(t->service->policy.min_replicas, 1);
    core_task_free(t);

    /* `service:` with no value is no service (the reference pops None). */
    t = parse_ok("service:\nrun: echo\n");
    assert_null(t->service);
    core_task_free(t);
}

static void test_task_defaults(void **state)
{
    (void)state;
    core_task_t *t = parse_ok("run: echo hi\n");
    assert_null(t->service);
    assert_null(t->name);
    assert_null(t->workdir);
    assert_null(t->workdir_resolved);
    assert_int_equal(t->num_nodes, 1);
    assert_int_equal(t->n_envs, 0);
    assert_int_equal(t->n_file_mounts, 0);
    const core_resources_t *r = &t->resources;
    assert_null(r->cloud);
    assert_null(r->region);
    assert_null(r->zone);
    assert_true(r->cpus == 0);
    assert_true(r->memory_gb == 0);
    assert_null(r->accelerator);
    assert_null(r->instance_type);
    assert_int_equal(r->use_spot, -1);
    assert_int_equal(r->n_ports, 0);
    assert_int_equal(r->disk_size, 0);
    assert_false(r->job_recovery.set);
    assert_int_equal(r->n_any_of, 0);
    assert_string_equal(t->filename, "t.yaml");
    core_task_free(t);

    /* Empty documents and comment-only files are empty tasks. */
    t = parse_ok("");
    assert_null(t->run);
    core_task_free(t);
    t = parse_ok("# nothing\n");
    core_task_free(t);
}

static void test_full_service(void **state)
{
    (void)state;
    core_task_t *t = load_ok(DATA "good_full_service.yaml");
    const core_service_spec_t *s = t->service;
    assert_string_equal(t->name, "llm-svc");
    assert_string_equal(s->probe.path, "/v1/chat/completions");
    assert_true(s->probe.initial_delay_seconds == 1800);
    assert_true(s->probe.timeout_seconds == 2.5);
    assert_string_equal(s->probe.post_data,
                        "{\"model\": \"llama3\", \"messages\": [{\"role\": \"user\", "
                        "\"content\": \"Hello! What is your name?\"}], \"max_tokens\": 1, "
                        "\"stream\": false, \"temperature\": 0.5, \"stop\": null}");
    assert_int_equal(s->probe.n_headers, 2);
    assert_string_equal(s->probe.headers[0].key, "Authorization");
    /* $TOKEN is one of the task's envs: substituted, as the reference does. */
    assert_string_equal(s->probe.headers[0].value, "Bearer secret-token");
    assert_string_equal(s->probe.headers[1].key, "X-Num");
    assert_string_equal(s->probe.headers[1].value, "7");
    assert_int_equal(s->policy.min_replicas, 1);
    assert_int_equal(s->policy.max_replicas, 5);
    assert_true(s->policy.target_qps_per_replica == 2.5);
    assert_true(s->policy.upscale_delay_seconds == 60);
    assert_true(s->policy.downscale_delay_seconds == 120.5);
    assert_int_equal(s->policy.num_overprovision, 1);
    assert_int_equal(s->policy.base_ondemand_fallback_replicas, 1);
    assert_int_equal(s->policy.dynamic_ondemand_fallback, 1);
    assert_int_equal(s->policy.spot_placer, CORE_SPOT_PLACER_DYNAMIC_FALLBACK);
    assert_int_equal(s->lb_policy, CORE_LB_POWER_OF_TWO);
    assert_string_equal(s->tls_keyfile, "~/certs/key.pem");
    assert_string_equal(s->tls_certfile, "~/certs/cert.pem");
    assert_int_equal(s->ports, 8000);
    assert_true(s->use_ondemand_fallback);
    assert_int_equal(t->resources.n_any_of, 2);
    assert_int_equal(core_task_validate_service(t, NULL), 8000);
    char *r = core_service_repr(s);
    assert_string_equal(
        r, "Readiness probe method:           POST /v1/chat/completions {\"model\": \"llama3\", "
           "\"messages\": [{\"role\": \"user\", \"content\": \"Hello! What is your name?\"}], "
           "\"max_tokens\": 1, \"stream\": false, \"temperature\": 0.5, \"stop\": null} with "
           "custom headers\n"
           "Readiness initial delay seconds:  1800\n"
           "Readiness probe timeout seconds:  2.5\n"
           "Replica autoscaling policy:       Autoscaling from 1 to 5 replicas with 1 "
           "overprovisioned replicas (target QPS per replica: 2.5)\n"
           "TLS Certificates:                 Keyfile: ~/certs/key.pem, Certfile: "
           "~/certs/cert.pem\n"
           "Spot Policy:                      SpotHedge\n"
           "Load Balancing Policy:            power_of_two\n");
    free(r);
    assert_string_equal(core_lb_policy_name(s->lb_policy), "power_of_two");
    core_task_free(t);
}

static void test_probe_forms(void **state)
{
    (void)state;
    core_task_t *t = parse_ok("service:\n  readiness_probe:\n    path: /p\n"
                              "    post_data: '{\"a\":1, \"b\" : [true,null,\"\\u00e9\"]}'\n");
    assert_string_equal(t->service->probe.post_data,
                        "{\"a\": 1, \"b\": [true, null, \"\\u00e9\"]}");
    core_task_free(t);

    t = parse_ok("service:\n  readiness_probe:\n    path: /p\n    post_data: [1, 'x', 2.25]\n");
    assert_string_equal(t->service->probe.post_data, "[1, \"x\", 2.25]");
    core_task_free(t);

    t = parse_ok("service:\n  readiness_probe:\n    path: /p\n    post_data:\n");
    assert_null(t->service->probe.post_data);
    core_task_free(t);
}

static void test_replicas_and_policies(void **state)
{
    (void)state;
    static const struct {
        const char *service;
        const char *autoscaling;
        const char *spot;
        const char *lb;
    } cases[] = {
        {"  replicas: 3\n", "Fixed 3 replicas", "No spot policy", "least_load"},
        {"  replicas: 0\n", "Fixed 0 replicas", "No spot policy", "least_load"},
        {"  replica_policy:\n    min_replicas: 2\n    max_replicas: 2\n", "Fixed 2 replicas",
         "No spot policy", "least_load"},
        {"  replica_policy:\n    min_replicas: 0\n    max_replicas: 1\n"
         "    target_qps_per_replica: 0.5\n",
         "Autoscaling from 0 to 1 replica (target QPS per replica: 0.5)", "No spot policy",
         "least_load"},
        {"  replica_policy:\n    min_replicas: 1\n    base_ondemand_fallback_replicas: 1\n"
         "    dynamic_ondemand_fallback: true\n",
         "Fixed 1 replica", "Dynamic on-demand fallback with 1 base on-demand replicas",
         "least_load"},
        {"  replica_policy:\n    min_replicas: 2\n    base_ondemand_fallback_replicas: 2\n"
         "    spot_placer: DYNAMIC_FALLBACK\n",
         "Fixed 2 replicas",
         "Static spot mixture with 2 base on-demand replicas with dynamic_fallback placer",
         "least_load"},
        {"  replica_policy:\n    min_replicas: 1\n    spot_placer: dynamic_fallback\n",
         "Fixed 1 replica", "Spot placement with dynamic_fallback placer", "least_load"},
        {"  replica_policy:\n    min_replicas: 1\n    spot_placer: Spread_Backoff\n",
         "Fixed 1 replica", "Spot placement with spread_backoff placer", "least_load"},
        {"  replica_policy:\n    min_replicas: 2\n    num_overprovision: 1\n"
         "    dynamic_ondemand_fallback: true\n    spot_placer: spread_backoff\n"
         "    fallback_covers_overprovision: false\n",
         "Fixed 2 replicas",
         "SpotHedge with spread_backoff placer (on-demand fallback for the target only)",
         "least_load"},
        {"  replica_policy:\n    min_replicas: 2\n    num_overprovision: 1\n"
         "    dynamic_ondemand_fallback: true\n    spot_placer: dynamic_fallback\n"
         "    fallback_covers_overprovision: true\n",
         "Fixed 2 replicas", "SpotHedge", "least_load"},
        {"  replica_policy:\n    min_replicas: 1\n    dynamic_ondemand_fallback: true\n"
         "    fallback_covers_overprovision: false\n",
         "Fixed 1 replica", "Dynamic on-demand fallback (on-demand fallback for the target only)",
         "least_load"},
        {"  replica_policy:\n    min_replicas: 1\n    base_ondemand_fallback_replicas: 0\n",
         "Fixed 1 replica", "Static spot mixture with 0 base on-demand replicas", "least_load"},
        {"  replica_policy:\n    min_replicas: 1\n    dynamic_ondemand_fallback: false\n",
         "Fixed 1 replica", "No spot policy", "least_load"},
        {"  load_balancing_policy: ROUND_ROBIN\n", "Fixed 1 replica", "No spot policy",
         "round_robin"},
        {"  load_balancing_policy: Least_Load\n", "Fixed 1 replica", "No spot policy",
         "least_load"},
        {"  load_balancing_policy: power_of_two\n", "Fixed 1 replica", "No spot policy",
         "power_of_two"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[512], want[256];
        snprintf(yaml, sizeof(yaml), "service:\n%s", cases[i].service);
        core_task_t *t = parse_ok(yaml);
        char *r = core_service_repr(t->service);
        snprintf(want, sizeof(want), "Replica autoscaling policy:       %s\n",
                 cases[i].autoscaling);
        if (!strstr(r, want))
            fail_msg("case %zu: want '%s' in:\n%s", i, want, r);
        snprintf(want, sizeof(want), "Spot Policy:                      %s\n", cases[i].spot);
        if (!strstr(r, want))
            fail_msg("case %zu: want '%s' in:\n%s", i, want, r);
        snprintf(want, sizeof(want), "Load Balancing Policy:            %s\n", cases[i].lb);
        if (!strstr(r, want))
            fail_msg("case %zu: want '%s' in:\n%s", i, want, r);
        free(r);
        core_task_free(t);
    }
    core_task_t *t = parse_ok("service:\n  replicas: 4\n");
    assert_true(t->service->has_replicas_shorthand);
    assert_int_equal(t->service->policy.min_replicas, 4);
    assert_int_equal(t->service->policy.max_replicas, -1);
    core_task_free(t);
}

static void test_resources_forms(void **state)
{
    (void)state;
    static const struct {
        const char *yaml;
        double cpus;
        int cpus_plus;
        double mem;
        int mem_plus;
        const char *acc;
        int acc_count;
    } cases[] = {
        {"cpus: 2", 2, 0, 0, 0, NULL, 0},
        {"cpus: 2+", 2, 1, 0, 0, NULL, 0},
        {"cpus: \"2+\"", 2, 1, 0, 0, NULL, 0},
        {"cpus: '4'", 4, 0, 0, 0, NULL, 0},
        {"cpus: 0.5", 0.5, 0, 0, 0, NULL, 0},
        {"cpus: 1.5+", 1.5, 1, 0, 0, NULL, 0},
        {"memory: 16", 0, 0, 16, 0, NULL, 0},
        {"memory: 16+", 0, 0, 16, 1, NULL, 0},
        {"memory: \"32GB+\"", 0, 0, 32, 1, NULL, 0},
        {"memory: 7.5gb", 0, 0, 7.5, 0, NULL, 0},
        {"accelerators: V100", 0, 0, 0, 0, "V100", 1},
        {"accelerators: V100:1", 0, 0, 0, 0, "V100", 1},
        {"accelerators: A100-80GB:8", 0, 0, 0, 0, "A100-80GB", 8},
        {"accelerators: {V100: 4}", 0, 0, 0, 0, "V100", 4},
        {"accelerators:\n    T4:", 0, 0, 0, 0, "T4", 1},
        {"accelerators:", 0, 0, 0, 0, NULL, 0},
        {"cpus:", 0, 0, 0, 0, NULL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml), "resources:\n  %s\n", cases[i].yaml);
        core_task_t *t = parse_ok(yaml);
        const core_resources_t *r = &t->resources;
        if (r->cpus != cases[i].cpus || r->cpus_plus != cases[i].cpus_plus ||
            r->memory_gb != cases[i].mem || r->memory_plus != cases[i].mem_plus ||
            r->accelerator_count != cases[i].acc_count ||
            (cases[i].acc ? !r->accelerator || strcmp(r->accelerator, cases[i].acc)
                          : r->accelerator != NULL))
            fail_msg("case '%s': cpus=%g%s mem=%g%s acc=%s:%d", cases[i].yaml, r->cpus,
                     r->cpus_plus ? "+" : "", r->memory_gb, r->memory_plus ? "+" : "",
                     r->accelerator ? r->accelerator : "-", r->accelerator_count);
        core_task_free(t);
    }
}

static void test_ports_and_spot_forms(void **state)
{
    (void)state;
    static const struct {
        const char *yaml;
        size_t n;
        int lo0, hi0, lo1, hi1;
    } cases[] = {
        {"ports: 8081", 1, 8081, 8081, 0, 0},
        {"ports: \"8081\"", 1, 8081, 8081, 0, 0},
        {"ports: 8080-8081", 1, 8080, 8081, 0, 0},
        {"ports: [8080, \"9000-9002\"]", 2, 8080, 8080, 9000, 9002},
        {"ports:\n    - 1\n    - 65535", 2, 1, 1, 65535, 65535},
        {"ports: []", 0, 0, 0, 0, 0},
        {"ports:", 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml), "resources:\n  %s\n", cases[i].yaml);
        core_task_t *t = parse_ok(yaml);
        const core_resources_t *r = &t->resources;
        assert_int_equal(r->n_ports, cases[i].n);
        if (cases[i].n >= 1) {
            assert_int_equal(r->ports[0].lo, cases[i].lo0);
            assert_int_equal(r->ports[0].hi, cases[i].hi0);
        }
        if (cases[i].n >= 2) {
            assert_int_equal(r->ports[1].lo, cases[i].lo1);
            assert_int_equal(r->ports[1].hi, cases[i].hi1);
        }
        core_task_free(t);
    }
    static const struct {
        const char *v;
        int want;
    } spot[] = {{"true", 1}, {"True", 1}, {"yes", 1}, {"on", 1}, {"false", 0},
                {"NO", 0},   {"off", 0},  {"", -1},   {"~", -1}, {"null", -1}};
    for (size_t i = 0; i < sizeof(spot) / sizeof(spot[0]); i++) {
        char yaml[128];
        snprintf(yaml, sizeof(yaml), "resources:\n  use_spot: %s\n", spot[i].v);
        core_task_t *t = parse_ok(yaml);
        assert_int_equal(t->resources.use_spot, spot[i].want);
        core_task_free(t);
    }
    core_task_t *t = parse_ok("resources:\n  disk_size: 256\n  instance_type: p3.2xlarge\n"
                              "  cloud: AWS\n  region: us-east-1\n  zone: us-east-1a\n");
    assert_int_equal(t->resources.disk_size, 256);
    assert_string_equal(t->resources.instance_type, "p3.2xlarge");
    assert_string_equal(t->resources.cloud, "aws");
    assert_string_equal(t->resources.region, "us-east-1");
    assert_string_equal(t->resources.zone, "us-east-1a");
    core_task_free(t);

    t = parse_ok("resources:\n  infra: gcp/us-central1\n");
    assert_string_equal(t->resources.cloud, "gcp");
    assert_string_equal(t->resources.region, "us-central1");
    assert_null(t->resources.zone);
    core_task_free(t);
    t = parse_ok("resources:\n  infra: '*/us-east-2/us-east-2a'\n");
    assert_null(t->resources.cloud);
    assert_string_equal(t->resources.region, "us-east-2");
    assert_string_equal(t->resources.zone, "us-east-2a");
    core_task_free(t);
}

static void test_job_recovery_forms(void **state)
{
    (void)state;
    static const struct {
        const char *yaml;
        int set;
        core_recovery_strategy_t strategy;
        int max_restarts;
        size_t n_codes;
        int code0;
    } cases[] = {
        {"job_recovery: FAILOVER", 1, CORE_RECOVERY_FAILOVER, 0, 0, 0},
        {"job_recovery: failover", 1, CORE_RECOVERY_FAILOVER, 0, 0, 0},
        {"job_recovery: eager_next_region", 1, CORE_RECOVERY_EAGER_NEXT_REGION, 0, 0, 0},
        {"spot_recovery: FAILOVER", 1, CORE_RECOVERY_FAILOVER, 0, 0, 0},
        {"job_recovery:", 0, CORE_RECOVERY_EAGER_NEXT_REGION, 0, 0, 0},
        {"job_recovery:\n    max_restarts_on_errors: 3", 1, CORE_RECOVERY_EAGER_NEXT_REGION, 3, 0,
         0},
        {"job_recovery:\n    strategy: FAILOVER\n    max_restarts_on_errors: 2\n"
         "    recover_on_exit_codes: [33, 34]",
         1, CORE_RECOVERY_FAILOVER, 2, 2, 33},
        {"spot_recovery:\n    strategy:\n    recover_on_exit_codes: 137", 1,
         CORE_RECOVERY_EAGER_NEXT_REGION, 0, 1, 137},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml), "resources:\n  %s\n", cases[i].yaml);
        core_task_t *t = parse_ok(yaml);
        const core_job_recovery_t *jr = &t->resources.job_recovery;
        assert_int_equal(jr->set, cases[i].set);
        assert_int_equal(jr->strategy, cases[i].strategy);
        assert_int_equal(jr->max_restarts_on_errors, cases[i].max_restarts);
        assert_int_equal(jr->n_recover_on_exit_codes, cases[i].n_codes);
        if (cases[i].n_codes)
            assert_int_equal(jr->recover_on_exit_codes[0], cases[i].code0);
        assert_ptr_equal(core_task_job_recovery(t)->strategy, cases[i].strategy);
        assert_int_equal(core_task_validate_job(t, NULL), 0);
        core_task_free(t);
    }
    assert_string_equal(core_recovery_strategy_name(CORE_RECOVERY_FAILOVER), "FAILOVER");
    assert_string_equal(core_recovery_strategy_name(CORE_RECOVERY_EAGER_NEXT_REGION),
                        "EAGER_NEXT_REGION");
}

static void test_any_of_merge(void **state)
{
    (void)state;
    core_task_t *t = parse_ok("resources:\n"
                              "  cpus: 2+\n"
                              "  use_spot: true\n"
                              "  ports: 8080\n"
                              "  region: us-east-1\n"
                              "  job_recovery: FAILOVER\n"
                              "  any_of:\n"
                              "    - cloud: aws\n"
                              "    - cloud: gcp\n"
                              "      cpus: 4\n"
                              "    - region: us-west-2\n"
                              "      use_spot: false\n"
                              "      ports: [9000]\n");
    const core_resources_t *r = &t->resources;
    assert_int_equal(r->n_any_of, 3);
    assert_false(r->ordered);
    const core_resources_t *a = &r->any_of[0], *b = &r->any_of[1], *c = &r->any_of[2];
    assert_string_equal(a->cloud, "aws");
    assert_null(a->region); /* a new cloud drops the outer region */
    assert_true(a->cpus == 2 && a->cpus_plus);
    assert_int_equal(a->use_spot, 1);
    assert_int_equal(a->n_ports, 1);
    assert_int_equal(a->ports[0].lo, 8080);
    assert_true(a->job_recovery.set);
    assert_int_equal(a->job_recovery.strategy, CORE_RECOVERY_FAILOVER);
    assert_int_equal(a->n_any_of, 0);
    assert_int_equal(a->mark.line, 8);
    assert_int_equal(a->mark.col, 7);
    assert_string_equal(b->cloud, "gcp");
    assert_true(b->cpus == 4 && !b->cpus_plus);
    assert_null(c->cloud);
    assert_string_equal(c->region, "us-west-2");
    assert_int_equal(c->use_spot, 0);
    assert_int_equal(c->ports[0].lo, 9000);
    core_task_free(t);

    t = parse_ok("resources:\n  ordered:\n    - zone: us-east-1a\n    - zone: us-east-2a\n");
    assert_true(t->resources.ordered);
    assert_int_equal(t->resources.n_any_of, 2);
    assert_string_equal(t->resources.any_of[1].zone, "us-east-2a");
    assert_false(core_task_uses_spot(t));
    core_task_free(t);

    /* Spot asked for only inside the candidates, or only outside them. */
    t = parse_ok("resources:\n  any_of:\n    - {zone: a, use_spot: true}\n"
                 "    - {zone: b, use_spot: true}\n");
    assert_int_equal(t->resources.use_spot, -1);
    assert_true(core_task_uses_spot(t));
    core_task_free(t);
    t = parse_ok("resources:\n  use_spot: true\n  any_of:\n    - {zone: a}\n");
    assert_true(core_task_uses_spot(t));
    core_task_free(t);
    t = parse_ok("resources:\n  use_spot: true\n");
    assert_true(core_task_uses_spot(t));
    core_task_free(t);
    t = parse_ok("resources:\n  use_spot: true\n  any_of:\n    - {zone: a, use_spot: false}\n");
    assert_false(core_task_uses_spot(t));
    core_task_free(t);
}

static void test_resources_copy(void **state)
{
    (void)state;
    core_task_t *t = parse_ok("resources:\n  cpus: 2+\n  ports: [8080, 9000-9001]\n"
                              "  any_of:\n    - cloud: aws\n    - cloud: gcp\n");
    core_resources_t cp;
    core_resources_copy(&cp, &t->resources, 1, NULL, NULL, NULL);
    assert_int_equal(cp.use_spot, 1);
    assert_int_equal(cp.n_any_of, 2);
    assert_int_equal(cp.any_of[1].use_spot, 1);
    assert_string_equal(cp.any_of[1].cloud, "gcp");
    assert_int_equal(cp.n_ports, 2);
    assert_int_equal(cp.ports[1].hi, 9001);
    core_resources_clear(&cp);

    core_resources_copy(&cp, &t->resources, -1, "GCP", "us-east1", "us-east1-b");
    assert_int_equal(cp.use_spot, -1);
    assert_string_equal(cp.cloud, "gcp");
    assert_string_equal(cp.any_of[0].cloud, "gcp");
    assert_string_equal(cp.any_of[0].zone, "us-east1-b");
    core_resources_clear(&cp);
    core_resources_clear(&cp); /* idempotent */
    core_task_free(t);
}

static void test_envs_and_file_mounts(void **state)
{
    (void)state;
    char cwd[4096], want[4300];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    core_task_t *t = parse_ok("envs:\n"
                              "  B: 1\n"
                              "  A: x\n"
                              "  C: 1.50\n"
                              "  D: true\n"
                              "  E:\n"
                              "  F: ''\n"
                              "secrets:\n"
                              "  TOKEN: abc\n"
                              "file_mounts:\n"
                              "  /data: ./local/../data/\n"
                              "  ~/cfg: ~/x.cfg\n"
                              "  /remote: s3://bucket/path\n"
                              "  /ckpt:\n"
                              "    name: my.bucket_1\n"
                              "    mode: copy\n"
                              "    persistent: false\n"
                              "    store: s3\n"
                              "  /in:\n"
                              "    source: gs://train-data/sub/dir\n");
    assert_int_equal(t->n_envs, 6);
    static const char *const keys[] = {"B", "A", "C", "D", "E", "F"};
    static const char *const vals[] = {"1", "x", "1.50", "true", NULL, ""};
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(t->envs[i].key, keys[i]);
        if (vals[i])
            assert_string_equal(t->envs[i].value, vals[i]);
        else
            assert_null(t->envs[i].value);
    }
    assert_int_equal(t->envs[4].mark.line, 6);
    assert_int_equal(t->n_secrets, 1);
    assert_string_equal(t->secrets[0].value, "abc");

    assert_int_equal(t->n_file_mounts, 5);
    const core_file_mount_t *fm = t->file_mounts;
    assert_string_equal(fm[0].dst, "/data");
    assert_false(fm[0].is_storage);
    assert_int_equal(fm[0].mode, CORE_MOUNT_COPY);
    assert_string_equal(fm[0].src, "./local/../data/");
    snprintf(want, sizeof(want), "%s/data", strcmp(cwd, "/") ? cwd : "");
    assert_string_equal(fm[0].src_resolved, want);
    assert_string_equal(fm[1].dst, "~/cfg");
    assert_string_equal(fm[2].src_resolved, "s3://bucket/path");
    assert_true(fm[3].is_storage);
    assert_string_equal(fm[3].name, "my.bucket_1");
    assert_int_equal(fm[3].mode, CORE_MOUNT_COPY);
    assert_false(fm[3].persistent);
    assert_string_equal(fm[3].store, "s3");
    assert_true(fm[4].is_storage);
    assert_string_equal(fm[4].name, "train-data");
    assert_int_equal(fm[4].mode, CORE_MOUNT_MOUNT);
    assert_true(fm[4].persistent);

    char *err = NULL;
    assert_int_equal(core_task_validate_job(t, &err), CORE_ESPEC);
    assert_string_equal(err, "t.yaml:6:3: envs.E: value required (set it in the YAML or with "
                             "--env E=VALUE)");
    free(err);
    cJSON *over = cJSON_Parse("{\"E\":\"filled\",\"NUM\":1,\"NEW\":\"v\"}");
    core_task_set_envs(t, over); /* the number is not an env value: skipped */
    cJSON_Delete(over);
    assert_int_equal(t->n_envs, 7);
    assert_string_equal(t->envs[4].value, "filled");
    assert_string_equal(t->envs[6].key, "NEW");
    assert_string_equal(t->envs[6].value, "v");
    core_task_set_env(t, "NEW", "w");
    assert_int_equal(t->n_envs, 7);
    assert_string_equal(t->envs[6].value, "w");
    assert_int_equal(core_task_validate_job(t, NULL), 0);
    core_task_free(t);
}

static void test_workdir_resolution(void **state)
{
    (void)state;
    char cwd[4096], want[4300];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    const char *root = strcmp(cwd, "/") ? cwd : "";
    static const struct {
        const char *in;
        const char *suffix;
    } cases[] = {{".", ""}, {"./a/b/", "/a/b"}, {"a//b/./c", "/a/b/c"}, {"a/../b", "/b"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[128];
        snprintf(yaml, sizeof(yaml), "workdir: %s\n", cases[i].in);
        core_task_t *t = parse_ok(yaml);
        snprintf(want, sizeof(want), "%s%s", root, cases[i].suffix);
        if (!*want)
            snprintf(want, sizeof(want), "/");
        assert_string_equal(t->workdir, cases[i].in);
        assert_string_equal(t->workdir_resolved, want);
        core_task_free(t);
    }
    core_task_t *t = parse_ok("workdir: /abs/./dir/\n");
    assert_string_equal(t->workdir_resolved, "/abs/dir");
    core_task_free(t);

    char *old = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    setenv("HOME", "/home/tester", 1);
    t = parse_ok("workdir: ~/proj\n");
    assert_string_equal(t->workdir_resolved, "/home/tester/proj");
    core_task_free(t);
    t = parse_ok("workdir: \"~\"\n"); /* a bare ~ is YAML null */
    assert_string_equal(t->workdir_resolved, "/home/tester");
    core_task_free(t);
    if (old) {
        setenv("HOME", old, 1);
        free(old);
    } else {
        unsetenv("HOME");
    }
}

/* ------------------------------------------------------------------ */
/* service / job validation */

typedef struct vcase {
    const char *name;
    const char *yaml;
    int port;        /* > 0: expected main port */
    const char *err; /* else the error */
} vcase_t;

static const vcase_t service_cases[] = {
    {"port from resources", "service:\n  replicas: 1\nresources:\n  ports: 8080\n", 8080, NULL},
    {"port from single range", "service:\n  replicas: 1\nresources:\n  ports: 8080-8080\n", 8080,
     NULL},
    {"service.ports without resource ports", "service:\n  ports: 9000\n", 9000, NULL},
    {"service.ports among resource ports",
     "service:\n  ports: 9001\nresources:\n  ports: [8080, 9000-9002]\n", 9001, NULL},
    {"same port in every any_of entry",
     "service:\n  replicas: 1\nresources:\n  any_of:\n    - ports: 8081\n      cloud: aws\n"
     "    - ports: [8081]\n      cloud: gcp\n",
     8081, NULL},
    {"spot placer with same config",
     "service:\n  replica_policy:\n    min_replicas: 1\n    spot_placer: dynamic_fallback\n"
     "resources:\n  cpus: 2+\n  use_spot: true\n  ports: 80\n  any_of:\n    - cloud: aws\n"
     "    - zone: us-central1-a\n",
     80, NULL},
    {"no ports at all", "service:\n  replicas: 1\nresources:\n  cpus: 2\n", 0,
     "t.yaml:4:3: Must specify at least one ports in resources. Each replica will use the port "
     "specified as application ingress port."},
    {"no ports, no resources", "service:\n  replicas: 1\n", 0,
     "t.yaml:2:3: Must specify at least one ports in resources. Each replica will use the port "
     "specified as application ingress port."},
    {"multiple ports", "service:\n  replicas: 1\nresources:\n  ports: [8080, 8081]\n", 0,
     "t.yaml:4:10: Multiple ports specified in resources. Please specify the main port in the "
     "`service.ports` field."},
    {"port range", "service:\n  replicas: 1\nresources:\n  ports: 8080-8081\n", 0,
     "t.yaml:4:10: Multiple ports specified in resources. Please specify the main port in the "
     "`service.ports` field."},
    {"different ports in any_of",
     "service:\n  replicas: 1\nresources:\n  ports: 8080\n  any_of:\n    - cloud: aws\n"
     "    - cloud: gcp\n      ports: 8081\n",
     0,
     "t.yaml:8:14: Got multiple ports: 8081 and 8080 in different resources. Please specify the "
     "same port instead."},
    {"service.ports not among resource ports",
     "service:\n  ports: 9000\nresources:\n  ports: 8080\n", 0,
     "t.yaml:2:10: The service port 9000 (service.ports) is not among the ports of the "
     "resources. Add it to resources.ports or remove resources.ports."},
    {"mixed spot in any_of",
     "service:\n  replicas: 1\nresources:\n  ports: 8080\n  any_of:\n    - use_spot: true\n"
     "    - use_spot: false\n",
     0,
     "t.yaml:7:17: Resources must either all use spot or none use spot. To use on-demand and "
     "spot instances together, use `dynamic_ondemand_fallback` or set "
     "base_ondemand_fallback_replicas."},
    {"mixed spot, one unset",
     "service:\n  replicas: 1\nresources:\n  ports: 8080\n  any_of:\n    - use_spot: true\n"
     "    - cloud: aws\n",
     0,
     "t.yaml:7:7: Resources must either all use spot or none use spot. To use on-demand and "
     "spot instances together, use `dynamic_ondemand_fallback` or set "
     "base_ondemand_fallback_replicas."},
    {"job_recovery forbidden",
     "service:\n  replicas: 1\nresources:\n  ports: 8080\n  job_recovery: FAILOVER\n", 0,
     "t.yaml:5:17: job_recovery is disabled for SkyServe. SkyServe will replenish preempted "
     "spot with spot instances."},
    {"job_recovery forbidden, dynamic fallback",
     "service:\n  replica_policy:\n    min_replicas: 1\n    dynamic_ondemand_fallback: true\n"
     "resources:\n  ports: 8080\n  use_spot: true\n  spot_recovery:\n    strategy: FAILOVER\n",
     0,
     "t.yaml:9:5: job_recovery is disabled for SkyServe. SkyServe will replenish preempted "
     "spot with on-demand instances."},
    {"fallback needs spot (unset)",
     "service:\n  replica_policy:\n    min_replicas: 1\n    base_ondemand_fallback_replicas: 1\n"
     "resources:\n  ports: 8080\n",
     0,
     "t.yaml:4:38: `use_ondemand_fallback` is only supported for spot resources. Please "
     "explicitly specify `use_spot: true` in resources for on-demand fallback."},
    {"fallback needs spot (false)",
     "service:\n  replica_policy:\n    min_replicas: 1\n    dynamic_ondemand_fallback: true\n"
     "resources:\n  ports: 8080\n  use_spot: false\n",
     0,
     "t.yaml:7:13: `use_ondemand_fallback` is only supported for spot resources. Please "
     "explicitly specify `use_spot: true` in resources for on-demand fallback."},
    {"spot placer needs spot",
     "service:\n  replica_policy:\n    min_replicas: 1\n    spot_placer: dynamic_fallback\n"
     "resources:\n  ports: 8080\n",
     0,
     "t.yaml:4:18: `spot_placer` is only supported for spot resources. Please explicitly "
     "specify `use_spot: true` in resources."},
    {"spot placer with different configs",
     "service:\n  replica_policy:\n    min_replicas: 1\n    spot_placer: dynamic_fallback\n"
     "resources:\n  use_spot: true\n  ports: 8080\n  any_of:\n    - cpus: 2\n    - cpus: 4\n",
     0,
     "t.yaml:10:7: Different resource configurations are not supported for spot placement. All "
     "resources must have the same configuration except for cloud/region/zone."},
    {"env without value", "service:\n  replicas: 1\nresources:\n  ports: 80\nenvs:\n  K:\n", 0,
     "t.yaml:6:3: envs.K: value required (set it in the YAML or with --env K=VALUE)"},
    {"secret without value", "service:\n  replicas: 1\nresources:\n  ports: 80\nsecrets:\n  S:\n",
     0, "t.yaml:6:3: secrets.S: value required (set it in the YAML or with --secret S=VALUE)"},
};

static void test_validate_service(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(service_cases) / sizeof(service_cases[0]); i++) {
        const vcase_t *vc = &service_cases[i];
        core_task_t *t = parse_ok(vc->yaml);
        char *err = NULL;
        int rc = core_task_validate_service(t, &err);
        if (vc->port > 0 ? rc != vc->port : (rc != CORE_ESPEC || !err || strcmp(err, vc->err))) {
            print_error("case '%s': rc=%d\n  want: %s\n  got:  %s\n", vc->name, rc,
                        vc->err ? vc->err : "(port)", err ? err : "(no error)");
            failures++;
        }
        free(err);
        core_task_free(t);
    }
    assert_int_equal(failures, 0);
}

static void test_validate_job(void **state)
{
    (void)state;
    static const vcase_t cases[] = {
        {"plain job", "run: echo\n", 0, NULL},
        {"same recovery everywhere",
         "resources:\n  job_recovery: FAILOVER\n  any_of:\n    - cloud: aws\n    - cloud: gcp\n", 0,
         NULL},
        {"service section", "service:\n  replicas: 1\nrun: echo\n", 0,
         "t.yaml:2:3: a task with a service section cannot run as a managed job (use `sky serve "
         "up`)"},
        {"different recovery",
         "resources:\n  any_of:\n    - job_recovery: FAILOVER\n    - job_recovery: "
         "EAGER_NEXT_REGION\n",
         0, "t.yaml:4:21: All resources of a task must use the same job_recovery strategy."},
        {"recovery on one entry only",
         "resources:\n  any_of:\n    - job_recovery: FAILOVER\n    - cloud: aws\n", 0,
         "t.yaml:4:7: All resources of a task must use the same job_recovery strategy."},
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        core_task_t *t = parse_ok(cases[i].yaml);
        char *err = NULL;
        int rc = core_task_validate_job(t, &err);
        if (cases[i].err ? (rc != CORE_ESPEC || !err || strcmp(err, cases[i].err)) : rc != 0) {
            print_error("case '%s': rc=%d\n  want: %s\n  got:  %s\n", cases[i].name, rc,
                        cases[i].err ? cases[i].err : "(ok)", err ? err : "(no error)");
            failures++;
        }
        free(err);
        core_task_free(t);
    }
    assert_int_equal(failures, 0);
}


static core_task_t *parse_with_ok(const char *yaml, const char *envs, const char *overrides)
{
    core_task_t *t = NULL;
    char *err = NULL;
    cJSON *e = envs ? cJSON_Parse(envs) : NULL, *o = overrides ? cJSON_Parse(overrides) : NULL;
    assert_true(!envs || e);
    assert_true(!overrides || o);
    int rc = core_task_parse_with(yaml, strlen(yaml), "t.yaml", e, o, &t, &err);
    if (rc)
        fail_msg("unexpected parse error %d: %s", rc, err ? err : "(null)");
    cJSON_Delete(e);
    cJSON_Delete(o);
    return t;
}

static void parse_with_err(const char *yaml, const char *envs, const char *overrides,
                           const char *want)
{
    core_task_t *t = NULL;
    char *err = NULL;
    cJSON *e = envs ? cJSON_Parse(envs) : NULL, *o = overrides ? cJSON_Parse(overrides) : NULL;
    assert_int_equal(core_task_parse_with(yaml, strlen(yaml), "t.yaml", e, o, &t, &err),
                     CORE_ESPEC);
    assert_null(t);
    assert_string_equal(err, want);
    free(err);
    cJSON_Delete(e);
    cJSON_Delete(o);
}

/* ${VAR} and $VAR, filled from envs and secrets where task_yaml.py fills them in. */
static void test_env_substitution(void **state)
{
    (void)state;
    static const char yaml[] = "envs:\n"
                               "  SIZE: 7\n"
                               "  MODEL: llama\n"
                               "  BUCKET:\n"
                               "secrets:\n"
                               "  SIZE: 13\n"
                               "  KEY: k3y\n"
                               "workdir: /srv/$MODEL\n"
                               "file_mounts:\n"
                               "  /models/llama-${SIZE}b: s3://weights/llama-${SIZE}b\n"
                               "  /ckpt:\n"
                               "    name: ${BUCKET}\n"
                               "    mode: MOUNT\n"
                               "  /keep: /data/$UNKNOWN/${ALSO_UNKNOWN}/$5/$$MODEL/${\n"
                               "service:\n"
                               "  readiness_probe:\n"
                               "    path: /v1/$MODEL\n"
                               "    headers:\n"
                               "      X-$MODEL: Bearer ${KEY}\n"
                               "    post_data:\n"
                               "      model: $MODEL\n"
                               "      n: 1\n"
                               "  replicas: 1\n"
                               "run: echo $MODEL\n";
    /* --env fills BUCKET and replaces MODEL before anything is substituted; --secret KEY too. */
    core_task_t *t = parse_with_ok(yaml, "{\"BUCKET\": \"ckpt-bucket\", \"MODEL\": \"mistral\"}",
                                   "{\"secrets\": {\"KEY\": \"over\"}}");
    assert_string_equal(t->workdir, "/srv/mistral");
    assert_string_equal(t->workdir_resolved, "/srv/mistral");
    /* A secret of the same name wins over the env. */
    assert_string_equal(t->file_mounts[0].dst, "/models/llama-13b");
    assert_string_equal(t->file_mounts[0].src, "s3://weights/llama-13b");
    assert_string_equal(t->file_mounts[1].name, "ckpt-bucket");
    /* Names that are neither stay as written. */
    assert_string_equal(t->file_mounts[2].src, "/data/$UNKNOWN/${ALSO_UNKNOWN}/$5/$mistral/${");
    const core_service_spec_t *s = t->service;
    assert_string_equal(s->probe.path, "/v1/mistral");
    assert_string_equal(s->probe.headers[0].key, "X-mistral");
    assert_string_equal(s->probe.headers[0].value, "Bearer over");
    assert_string_equal(s->probe.post_data, "{\"model\": \"mistral\", \"n\": 1}");
    /* run and setup are the shell's to expand. */
    assert_string_equal(t->run, "echo $MODEL");
    assert_string_equal(t->envs[1].value, "mistral");
    assert_int_equal(t->n_warnings, 0);
    core_task_free(t);

    /* A post_data string is substituted before it is read as JSON. */
    t = parse_with_ok("envs:\n  M: m1\nservice:\n  readiness_probe:\n    path: /\n"
                      "    post_data: '{\"model\": \"$M\"}'\n  replicas: 1\n",
                      NULL, NULL);
    assert_string_equal(t->service->probe.post_data, "{\"model\": \"m1\"}");
    core_task_free(t);

    /* A name whose env has no value cannot be put in: say which, and how to set it. */
    parse_with_err("envs:\n  BUCKET:\nfile_mounts:\n  /ckpt:\n    name: ${BUCKET}\n", NULL, NULL,
                   "t.yaml:5:11: file_mounts./ckpt.name: BUCKET has no value to put in (set it "
                   "in the YAML or with --env BUCKET=VALUE)");
    parse_with_err("secrets:\n  TOK:\nservice:\n  readiness_probe:\n    path: /\n    headers:\n"
                   "      A: $TOK\n  replicas: 1\n",
                   NULL, NULL,
                   "t.yaml:7:10: service.readiness_probe.headers.A: TOK has no value to put in "
                   "(set it in the YAML or with --secret TOK=VALUE)");
    /* Without a substituted section, an env without value is the validators' business. */
    t = parse_with_ok("envs:\n  E:\nrun: echo $E\n", NULL, NULL);
    assert_null(t->envs[0].value);
    core_task_free(t);
}

/* Valid SkyPilot keys that cannot be honoured parse, each with one warning naming it. */
static void test_ignored_keys_warn(void **state)
{
    (void)state;
    core_task_t *t = parse_ok("name: x\n"
                              "event_callback: echo done\n"
                              "resources:\n"
                              "  cpus: 2\n"
                              "  image_id: docker:ubuntu:22.04\n"
                              "  disk_size: 256GB\n"
                              "  disk_tier: best\n"
                              "  network_tier: standard\n"
                              "  labels:\n"
                              "    team: ml\n"
                              "  autostop: 10\n"
                              "  any_of:\n"
                              "    - labels: {a: b}\n"
                              "file_mounts:\n"
                              "  /ckpt:\n"
                              "    name: my-bucket\n"
                              "    mode: MOUNT_CACHED\n"
                              "    mount_options: ro\n");
    static const char *const want[] = {
        "t.yaml:2:1: warning: event_callback is ignored: job events run no callback",
        "t.yaml:5:3: warning: resources.image_id is ignored: instances run the host's system, "
        "not an image",
        "t.yaml:6:3: warning: resources.disk_size is ignored: instances use the host's disk",
        "t.yaml:7:3: warning: resources.disk_tier is ignored: instances use the host's disk",
        "t.yaml:8:3: warning: resources.network_tier is ignored: instances share the host's "
        "network",
        "t.yaml:9:3: warning: resources.labels is ignored: instances carry no labels",
        "t.yaml:11:3: warning: resources.autostop is ignored: clusters are not stopped when idle "
        "(tear them down with sky down)",
        "t.yaml:13:7: warning: resources.any_of[0].labels is ignored: instances carry no labels",
        "t.yaml:17:11: warning: file_mounts./ckpt.mode: MOUNT_CACHED is MOUNT here (writes are "
        "not cached)",
        "t.yaml:18:5: warning: file_mounts./ckpt.mount_options is ignored: buckets are "
        "directories of the local cloud",
    };
    for (size_t i = 0; i < t->n_warnings && i < sizeof(want) / sizeof(want[0]); i++)
        assert_string_equal(t->warnings[i], want[i]);
    assert_int_equal(t->n_warnings, sizeof(want) / sizeof(want[0]));
    assert_int_equal(t->resources.disk_size, 256);
    assert_int_equal(t->file_mounts[0].mode, CORE_MOUNT_MOUNT);
    assert_int_equal(t->num_nodes, 1);
    core_task_free(t);
    t = parse_ok("num_nodes: 1\nresources:\n  disk_size: 1TB\n");
    assert_int_equal(t->resources.disk_size, 1024);
    core_task_free(t);
}

/* The CLI's task flags as the API carries them (command.py _parse_override_params). */
static void test_overrides(void **state)
{
    (void)state;
    static const char yaml[] = "resources:\n"
                               "  cpus: 2+\n"
                               "  use_spot: true\n"
                               "  region: us-east1\n"
                               "  job_recovery:\n"
                               "    max_restarts_on_errors: 3\n"
                               "  any_of:\n"
                               "    - cloud: gcp\n"
                               "    - cloud: aws\n"
                               "      instance_type: m6i.large\n"
                               "workdir: /orig\n"
                               "run: echo hi\n";
    core_task_t *t = parse_with_ok(
        yaml, NULL,
        "{\"resources\": {\"cpus\": \"4\", \"memory\": \"16+\", \"accelerators\": \"T4:1\", "
        "\"use_spot\": false, \"infra\": \"aws/*/us-east-1a\", \"instance_type\": null, "
        "\"job_recovery\": \"FAILOVER\", \"ports\": [\"8080-8081\"], \"image_id\": \"img\"}, "
        "\"workdir\": \"/tmp/w/../wd\", \"num_nodes\": 1}");
    for (size_t i = 0; i <= t->resources.n_any_of; i++) {
        const core_resources_t *r = i ? &t->resources.any_of[i - 1] : &t->resources;
        assert_true(r->cpus == 4 && !r->cpus_plus);
        assert_true(r->memory_gb == 16 && r->memory_plus);
        assert_string_equal(r->accelerator, "T4");
        assert_int_equal(r->accelerator_count, 1);
        assert_int_equal(r->use_spot, 0);
        assert_string_equal(r->cloud, "aws");
        assert_null(r->region); /* "*": any */
        assert_string_equal(r->zone, "us-east-1a");
        assert_null(r->instance_type);
        assert_int_equal(r->job_recovery.strategy, CORE_RECOVERY_FAILOVER);
        assert_int_equal(r->job_recovery.max_restarts_on_errors, 0);
        assert_int_equal(r->n_ports, 1);
        assert_int_equal(r->ports[0].hi, 8081);
    }
    assert_string_equal(t->workdir_resolved, "/tmp/wd");
    assert_int_equal(t->n_warnings, 1);
    assert_string_equal(t->warnings[0],
                        "task overrides: warning: resources.image_id is ignored: instances run "
                        "the host's system, not an image");
    core_task_free(t);

    /* Only what is given changes. */
    t = parse_with_ok(yaml, NULL, "{\"resources\": {\"use_spot\": false}}");
    assert_true(t->resources.cpus == 2 && t->resources.cpus_plus);
    assert_string_equal(t->resources.region, "us-east1");
    assert_string_equal(t->resources.any_of[1].instance_type, "m6i.large");
    assert_int_equal(t->resources.any_of[1].use_spot, 0);
    assert_int_equal(t->resources.job_recovery.max_restarts_on_errors, 3);
    core_task_free(t);

    /* Values are checked as the YAML's; errors name the overrides. */
    parse_with_err(yaml, NULL, "{\"resources\": {\"cpus\": \"many\"}}",
                   "task overrides: resources.cpus: invalid value 'many': expected a positive "
                   "number, optionally followed by '+' (e.g. 2 or 2+)");
    parse_with_err(yaml, NULL, "{\"resources\": {\"infra\": \"aws\", \"zone\": \"z\"}}",
                   "task overrides: resources: cannot specify both infra and cloud/region/zone");
    parse_with_err(yaml, NULL, "{\"resources\": {\"frobnicate\": 1}}",
                   "task overrides: unknown field 'frobnicate' in resources");
    parse_with_err(yaml, NULL, "{\"resources\": {\"any_of\": []}}",
                   "task overrides: resources: any_of cannot be nested");
    parse_with_err(yaml, NULL, "{\"num_nodes\": 4}",
                   "task overrides: num_nodes: 4: multi-node tasks are not supported yet; every "
                   "task runs on one instance");
    parse_with_err(yaml, NULL, "{\"num_nodes\": 0}",
                   "task overrides: num_nodes: expected a positive integer");
    parse_with_err(yaml, NULL, "{\"colour\": \"red\"}", "task overrides: unknown override 'colour'");
    parse_with_err(yaml, NULL, "{\"secrets\": {\"1A\": \"x\"}}",
                   "task overrides: secrets: invalid name '1A'");
    parse_with_err(yaml, NULL, "[1]", "task overrides: expected an object");
    parse_with_err(yaml, NULL,
                   "{\"resources\": {\"labels\": {\"a\": {\"b\": {\"c\": {\"d\": {\"e\": {\"f\": "
                   "{\"g\": {\"h\": {\"i\": 1}}}}}}}}}}}",
                   "task overrides: resources: nested too deeply");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_cases),          cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_load_errors),        cmocka_unit_test(test_alias_bomb_and_depth),
        cmocka_unit_test(test_seed_base_ondemand), cmocka_unit_test(test_seed_dynamic_ondemand),
        cmocka_unit_test(test_seed_bert_qa),       cmocka_unit_test(test_service_defaults),
        cmocka_unit_test(test_task_defaults),      cmocka_unit_test(test_full_service),
        cmocka_unit_test(test_probe_forms),        cmocka_unit_test(test_replicas_and_policies),
        cmocka_unit_test(test_resources_forms),    cmocka_unit_test(test_ports_and_spot_forms),
        cmocka_unit_test(test_job_recovery_forms), cmocka_unit_test(test_any_of_merge),
        cmocka_unit_test(test_resources_copy),     cmocka_unit_test(test_envs_and_file_mounts),
        cmocka_unit_test(test_workdir_resolution), cmocka_unit_test(test_validate_service),
        cmocka_unit_test(test_validate_job),       cmocka_unit_test(test_env_substitution),
        cmocka_unit_test(test_ignored_keys_warn),  cmocka_unit_test(test_overrides),
    };
    /* Paths are resolved against the cwd: run from the source tree like the CLI would be. */
    if (chdir(SKY_SOURCE_DIR) != 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
