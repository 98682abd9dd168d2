/*
 * Task / service YAML parser (libyaml document API) and validation.
 * Behaviour, defaults and messages follow reference/skyserve.md §2/§2.1 and
 * reference/managed_jobs.md §4.1; deviations are marked "fix:".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* vasprintf */
#endif
#include "core/spec.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <yaml.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/util.h"

/* Bounds on lists that are walked quadratically (duplicate checks). */
#define MAX_MAP_ENTRIES 4096
#define MAX_PORT_ITEMS  64
#define MAX_ANY_OF      256
#define MAX_EXIT_CODES  256
#define MAX_JSON_DEPTH  32
/* Aliases let a small document name the same subtree many times. */
#define MAX_NODE_VISITS 200000

typedef struct pctx {
    yaml_document_t *doc;
    const char *file;
    char **err;
    size_t visits;
    /* Key of the pair being parsed: an empty value has no useful position of its
     * own (libyaml marks the end of the line), so errors about it point here. */
    const yaml_node_t *cur_key;
    core_task_t *task; /* gets the warnings; its envs/secrets fill ${VAR} */
    int subst;         /* set while parsing the parts SkyPilot substitutes in */
    int no_marks;      /* a document built from JSON: no line:col to report */
    const cJSON *env_over, *secret_over; /* --env/--env-file, --secret */
} pctx_t;

/* ------------------------------------------------------------------ */
/* errors */

static int verrf(char **err, const char *file, core_mark_t m, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static int verrf(char **err, const char *file, core_mark_t m, const char *fmt, va_list ap)
{
    char *msg = NULL;
    if (!err)
        return CORE_ESPEC;
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    free(*err);
    if (m.line > 0)
        *err = core_xasprintf("%s:%d:%d: %s", file, m.line, m.col, msg);
    else
        *err = core_xasprintf("%s: %s", file, msg);
    free(msg);
    return CORE_ESPEC;
}

static int errf(char **err, const char *file, core_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int errf(char **err, const char *file, core_mark_t m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = verrf(err, file, m, fmt, ap);
    va_end(ap);
    return rc;
}

static core_mark_t mark_of(const yaml_node_t *n)
{
    core_mark_t m = {(int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
    return m;
}

static int fail(pctx_t *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(pctx_t *c, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    core_mark_t none = {0, 0};
    if (n->type == YAML_SCALAR_NODE && n->data.scalar.length == 0 &&
        n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && c->cur_key)
        n = c->cur_key;
    va_start(ap, fmt);
    int rc = verrf(c->err, c->file, c->no_marks ? none : mark_of(n), fmt, ap);
    va_end(ap);
    return rc;
}

static void add_warning(core_task_t *t, char *w)
{
    t->warnings = core_xrealloc(t->warnings, (t->n_warnings + 1) * sizeof(*t->warnings));
    t->warnings[t->n_warnings++] = w;
}

/* "file:line:col: warning: <message>" about node <n>. */
static void warn(pctx_t *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void warn(pctx_t *c, const yaml_node_t *n, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    va_end(ap);
    if (c->no_marks)
        add_warning(c->task, core_xasprintf("%s: warning: %s", c->file, msg));
    else
        add_warning(c->task,
                    core_xasprintf("%s:%d:%d: warning: %s", c->file, (int)n->start_mark.line + 1,
                                   (int)n->start_mark.column + 1, msg));
    free(msg);
}

static void warn_ignored(pctx_t *c, const yaml_node_t *k, const char *path, const char *why)
{
    warn(c, k, "%s is ignored: %s", path, why);
}

/* ------------------------------------------------------------------ */
/* small string helpers */

typedef struct sbuf {
    char *p;
    size_t len;
    size_t cap;
} sbuf_t;

static void sb_putn(sbuf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = core_xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf_t *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    va_end(ap);
    sb_puts(b, s);
    free(s);
}

/* Python's repr of a float/int as it would print a YAML number. */
static void py_num(double v, char *out, size_t outlen)
{
    if (v == floor(v) && fabs(v) < 1e16) {
        snprintf(out, outlen, "%.0f", v);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, outlen, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
}

static char *dup_lower(const char *s)
{
    char *d = core_xstrdup(s);
    for (char *p = d; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

/* Lexically normalises an absolute path: drops "." and empty components, applies "..". */
static char *normalize_abs(const char *path)
{
    size_t n = strlen(path);
    char *out = core_xmalloc(n + 2);
    size_t len = 0;
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        const char *e = p;
        while (*e && *e != '/')
            e++;
        size_t cl = (size_t)(e - p);
        if (cl == 0 || (cl == 1 && p[0] == '.')) {
            /* skip */
        } else if (cl == 2 && p[0] == '.' && p[1] == '.') {
            while (len > 0 && out[len - 1] != '/')
                len--;
            if (len > 0)
                len--;
        } else {
            out[len++] = '/';
            memcpy(out + len, p, cl);
            len += cl;
        }
        p = e;
    }
    if (len == 0)
        out[len++] = '/';
    out[len] = '\0';
    return out;
}

/* "~" / "~/x" expanded with $HOME, relative paths made absolute against the cwd. */
static char *resolve_local_path(const char *p)
{
    char *joined;
    if (p[0] == '~' && (p[1] == '\0' || p[1] == '/')) {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            struct passwd *pw = getpwuid(getuid());
            home = pw && pw->pw_dir ? pw->pw_dir : "/";
        }
        joined = core_xasprintf("%s/%s", home, p + 1);
    } else if (p[0] == '/') {
        joined = core_xstrdup(p);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof(cwd)))
            snprintf(cwd, sizeof(cwd), "/");
        joined = core_xasprintf("%s/%s", cwd, p);
    }
    char *out = normalize_abs(joined);
    free(joined);
    return out;
}

/* ------------------------------------------------------------------ */
/* YAML node helpers */

static yaml_node_t *get_node(pctx_t *c, yaml_node_item_t id)
{
    return yaml_document_get_node(c->doc, id);
}

static int visit(pctx_t *c, const yaml_node_t *n)
{
    if (++c->visits > MAX_NODE_VISITS)
        return fail(c, n, "YAML too complex (more than %d nodes visited)", MAX_NODE_VISITS);
    return 0;
}

static const char *sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static int is_plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static int is_null(const yaml_node_t *n)
{
    if (!is_plain(n))
        return 0;
    const char *s = sval(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static const char *kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return is_null(n) ? "null" : "a scalar";
    }
}

/* YAML 1.1 booleans, as PyYAML (the reference's loader) resolves them. */
static int bool_value(const yaml_node_t *n, int *out)
{
    static const char *const t[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
    static const char *const f[] = {"false", "False", "FALSE", "no", "No",
                                    "NO",    "off",   "Off",   "OFF"};
    if (!is_plain(n))
        return -1;
    for (size_t i = 0; i < CORE_ARRAY_SIZE(t); i++) {
        if (!strcmp(sval(n), t[i])) {
            *out = 1;
            return 0;
        }
        if (!strcmp(sval(n), f[i])) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int parse_long(const char *s, long *out)
{
    char *end;
    if (!*s || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* Decimal numbers only: strtod alone would also take "inf", "nan" and hex. */
static int parse_double(const char *s, double *out)
{
    char *end;
    if (!*s)
        return -1;
    for (const char *p = s; *p; p++)
        if (!strchr("0123456789+-.eE", *p))
            return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static int scalar_has_nul(const yaml_node_t *n)
{
    return strlen(sval(n)) != n->data.scalar.length;
}

/* ------------------------------------------------------------------ */
/* ${VAR} substitution (task_yaml.py _fill_in_env_vars) */

/* The env or secret NAME[len] (secrets win); NULL if neither. */
static const core_kv_t *var_find(const core_task_t *t, const char *name, size_t len)
{
    const core_kv_t *lists[] = {t->secrets, t->envs};
    size_t counts[] = {t->n_secrets, t->n_envs};
    for (size_t l = 0; l < 2; l++)
        for (size_t i = 0; i < counts[l]; i++)
            if (strlen(lists[l][i].key) == len && !memcmp(lists[l][i].key, name, len))
                return &lists[l][i];
    return NULL;
}

static int is_word(int ch)
{
    return isalnum(ch) || ch == '_';
}

/*
 * The reference dumps the section to JSON and replaces every match of
 * \$\{?\b([a-zA-Z_][a-zA-Z0-9_]*)\b\}? whose name is an env or secret
 * (secrets win), leaving the others as written. Done here string by string,
 * so a value with quotes or backslashes is inserted as is. A name whose env
 * has no value yet returns NULL with *missing set (the reference refuses
 * such a task before substituting).
 */
static char *subst_vars(const core_task_t *t, const char *s, const core_kv_t **missing)
{
    sbuf_t b = {0};
    sb_putn(&b, "", 0);
    for (const char *p = s; *p;) {
        const char *q = p + 1;
        if (*p != '$') {
            sb_putn(&b, p++, 1);
            continue;
        }
        if (*q == '{')
            q++;
        if (!isalpha((unsigned char)*q) && *q != '_') {
            sb_putn(&b, p++, 1);
            continue;
        }
        const char *name = q;
        while (is_word((unsigned char)*q))
            q++;
        size_t len = (size_t)(q - name);
        if (*q == '}')
            q++;
        const core_kv_t *v = var_find(t, name, len);
        if (v && !v->value) {
            *missing = v;
            free(b.p);
            return NULL;
        }
        if (v)
            sb_puts(&b, v->value);
        else
            sb_putn(&b, p, (size_t)(q - p));
        p = q;
    }
    return b.p;
}

/* The scalar's text, substituted where the reference substitutes. */
static int scalar_text(pctx_t *c, const yaml_node_t *n, const char *path, char **out)
{
    const core_kv_t *missing = NULL;
    *out = c->subst ? subst_vars(c->task, sval(n), &missing) : core_xstrdup(sval(n));
    if (*out)
        return 0;
    int is_env = missing >= c->task->envs && missing < c->task->envs + c->task->n_envs;
    return fail(c, n, "%s: %s has no value to put in (set it in the YAML or with --%s %s=VALUE)",
                path, missing->key, is_env ? "env" : "secret", missing->key);
}

/* A string; null gives *out NULL. Numbers/bools are taken as written. */
static int get_str(pctx_t *c, const yaml_node_t *n, const char *path, char **out)
{
    *out = NULL;
    if (n->type != YAML_SCALAR_NODE)
        return fail(c, n, "%s: expected a string, got %s", path, kind(n));
    if (is_null(n))
        return 0;
    if (scalar_has_nul(n))
        return fail(c, n, "%s: string contains a NUL character", path);
    return scalar_text(c, n, path, out);
}

/* Like get_str but null and "" are errors. */
static int get_req_str(pctx_t *c, const yaml_node_t *n, const char *path, char **out)
{
    int rc = get_str(c, n, path, out);
    if (rc)
        return rc;
    if (!*out || !**out) {
        free(*out);
        *out = NULL;
        return fail(c, n, "%s: expected a non-empty string", path);
    }
    return 0;
}

static int get_int(pctx_t *c, const yaml_node_t *n, const char *path, long min, long max, int *out)
{
    long v;
    if (n->type != YAML_SCALAR_NODE || !is_plain(n) || is_null(n))
        return fail(c, n, "%s: expected an integer, got %s", path,
                    n->type == YAML_SCALAR_NODE && !is_null(n) ? "a string" : kind(n));
    if (parse_long(sval(n), &v))
        return fail(c, n, "%s: expected an integer, got '%s'", path, sval(n));
    if (v < min || v > max) {
        if (max == INT_MAX)
            return fail(c, n, "%s: must be >= %ld, got %ld", path, min, v);
        return fail(c, n, "%s: must be between %ld and %ld, got %ld", path, min, max, v);
    }
    *out = (int)v;
    return 0;
}

static int get_num(pctx_t *c, const yaml_node_t *n, const char *path, double min, double *out)
{
    double v;
    if (n->type != YAML_SCALAR_NODE || !is_plain(n) || is_null(n))
        return fail(c, n, "%s: expected a number, got %s", path,
                    n->type == YAML_SCALAR_NODE && !is_null(n) ? "a string" : kind(n));
    if (parse_double(sval(n), &v))
        return fail(c, n, "%s: expected a number, got '%s'", path, sval(n));
    if (v < min) {
        char b[32];
        py_num(min, b, sizeof(b));
        return fail(c, n, "%s: must be >= %s, got %s", path, b, sval(n));
    }
    *out = v;
    return 0;
}

static int get_bool(pctx_t *c, const yaml_node_t *n, const char *path, int *out)
{
    if (n->type != YAML_SCALAR_NODE || bool_value(n, out))
        return fail(c, n, "%s: expected true or false, got %s%s%s", path,
                    n->type == YAML_SCALAR_NODE && !is_null(n) ? "'" : "",
                    n->type == YAML_SCALAR_NODE && !is_null(n) ? sval(n) : kind(n),
                    n->type == YAML_SCALAR_NODE && !is_null(n) ? "'" : "");
    return 0;
}

/*
 * Checks that <n> is a mapping with string keys, no duplicates, at most
 * MAX_MAP_ENTRIES. <what> names it in messages ("service.replica_policy").
 */
static int check_map(pctx_t *c, const yaml_node_t *n, const char *what)
{
    if (n->type != YAML_MAPPING_NODE)
        return fail(c, n, "%s: expected a mapping, got %s", what, kind(n));
    yaml_node_pair_t *b = n->data.mapping.pairs.start, *e = n->data.mapping.pairs.top;
    if (e - b > MAX_MAP_ENTRIES)
        return fail(c, n, "%s: too many entries (at most %d)", what, MAX_MAP_ENTRIES);
    for (yaml_node_pair_t *p = b; p < e; p++) {
        yaml_node_t *k = get_node(c, p->key);
        int rc = visit(c, k);
        if (rc)
            return rc;
        if (k->type != YAML_SCALAR_NODE || is_null(k) || scalar_has_nul(k))
            return fail(c, k, "%s: keys must be non-empty strings", what);
        for (yaml_node_pair_t *q = b; q < p; q++) {
            yaml_node_t *k2 = get_node(c, q->key);
            if (!strcmp(sval(k), sval(k2)))
                return fail(c, k, "duplicate field '%s' in %s", sval(k), what);
        }
    }
    return 0;
}

static int unknown(pctx_t *c, const yaml_node_t *k, const char *what)
{
    return fail(c, k, "unknown field '%s' in %s", sval(k), what);
}

/*
 * Keys of SkyPilot's schema (sky/utils/schemas.py) that mean nothing here:
 * they are checked for the schema's type and ignored with one warning each,
 * so that a YAML written for SkyPilot runs as it is.
 */
enum {
    K_NULL = 1 << 0,
    K_STR = 1 << 1, /* any non-null scalar */
    K_INT = 1 << 2,
    K_NUM = 1 << 3,
    K_BOOL = 1 << 4,
    K_MAP = 1 << 5,
    K_LIST = 1 << 6,
};

typedef struct ignored_key {
    const char *key;
    unsigned kinds;
    const char *const *choices; /* K_STR only; case-insensitive; NULL = any */
    const char *why;
} ignored_key_t;

static const char *const disk_tiers[] = {"low", "medium", "high", "ultra", "best", NULL};
static const char *const network_tiers[] = {"standard", "best", NULL};

#define DISK_WHY "instances use the host's disk"
static const ignored_key_t ignored_resource_keys[] = {
    {"image_id", K_STR | K_MAP | K_NULL, NULL, "instances run the host's system, not an image"},
    {"disk_tier", K_STR, disk_tiers, DISK_WHY},
    {"network_tier", K_STR, network_tiers, "instances share the host's network"},
    {"labels", K_MAP, NULL, "instances carry no labels"},
    {"autostop", K_BOOL | K_INT | K_STR | K_MAP, NULL,
     "clusters are not stopped when idle (tear them down with sky down)"},
    {"accelerator_args", K_MAP, NULL, "there are no TPUs"},
    {"priority", K_INT, NULL, "managed jobs are not ordered by priority"},
    {"priority_class", K_STR, NULL, "there is no Kubernetes scheduler"},
    {"local_disk", K_STR, NULL, DISK_WHY},
    {"ephemeral_storage", K_INT | K_STR, NULL, DISK_WHY},
    {"max_hourly_cost", K_NUM, NULL, "candidates are not capped by price"},
    {"volumes", K_LIST, NULL, "volumes are not supported"},
    {NULL, 0, NULL, NULL},
};

static const ignored_key_t ignored_task_keys[] = {
    {"event_callback", K_STR, NULL, "job events run no callback"},
    {"inputs", K_MAP, NULL, "data transfer is not priced"},
    {"outputs", K_MAP, NULL, "data transfer is not priced"},
    {"config", K_MAP, NULL, "per-task SkyPilot configuration is not supported"},
    {"volumes", K_MAP, NULL, "volumes are not supported"},
    {"api_server_access", K_BOOL, NULL, "there is no API server"},
    {"managed_secrets", K_LIST, NULL,
     "there is no secret store (give secrets in the YAML or with --secret)"},
    {NULL, 0, NULL, NULL},
};

static const ignored_key_t ignored_storage_keys[] = {
    {"mount_options", K_STR, NULL, "buckets are directories of the local cloud"},
    {"config", K_MAP, NULL, "buckets are directories of the local cloud"},
    {"type", K_STR, NULL, "buckets are directories of the local cloud"},
    {NULL, 0, NULL, NULL},
};

static unsigned node_kinds(const yaml_node_t *n)
{
    int b;
    long l;
    double d;
    if (n->type == YAML_MAPPING_NODE)
        return K_MAP;
    if (n->type == YAML_SEQUENCE_NODE)
        return K_LIST;
    if (is_null(n))
        return K_NULL;
    unsigned k = K_STR;
    if (is_plain(n) && !bool_value(n, &b))
        k |= K_BOOL;
    if (is_plain(n) && !parse_long(sval(n), &l))
        k |= K_INT | K_NUM;
    else if (is_plain(n) && !parse_double(sval(n), &d))
        k |= K_NUM;
    return k;
}

/*
 * <k> is a key of a mapping at <what> that the parser does not know: an
 * ignored key of <table> (checked, one warning) or an unknown field (error).
 */
static int ignored_or_unknown(pctx_t *c, const yaml_node_t *k, const yaml_node_t *v,
                              const char *what, const ignored_key_t *table)
{
    const ignored_key_t *ig = table;
    char path[192];
    while (ig->key && strcmp(ig->key, sval(k)))
        ig++;
    if (!ig->key)
        return unknown(c, k, what);
    if (!strcmp(what, "task"))
        snprintf(path, sizeof(path), "%s", ig->key);
    else
        snprintf(path, sizeof(path), "%s.%s", what, ig->key);
    unsigned have = node_kinds(v);
    if (!(have & ig->kinds))
        return fail(c, v, "%s: unexpected %s", path, kind(v));
    if (ig->choices && (have & K_STR)) {
        const char *const *ch = ig->choices;
        while (*ch && strcasecmp(*ch, sval(v)))
            ch++;
        if (!*ch)
            return fail(c, v, "%s: invalid value '%s'", path, sval(v));
    }
    if (!strcmp(ig->key, "priority") && (have & K_INT)) {
        int prio;
        int rc = get_int(c, v, path, -1000, 1000, &prio);
        if (rc)
            return rc;
    }
    if (v->type == YAML_MAPPING_NODE) {
        int rc = check_map(c, v, path);
        if (rc)
            return rc;
    }
    warn_ignored(c, k, path, ig->why);
    return 0;
}

#define FOR_PAIRS(c, map, k, v)                                                                    \
    for (yaml_node_pair_t *p_ = (map)->data.mapping.pairs.start;                                   \
         p_ < (map)->data.mapping.pairs.top &&                                                     \
         ((k) = get_node((c), p_->key), (v) = get_node((c), p_->value), (c)->cur_key = (k), 1);    \
         p_++)

/* ------------------------------------------------------------------ */
/* YAML -> JSON (post_data), printed the way Python's json.dumps does */

static cJSON *yaml_to_json(pctx_t *c, const yaml_node_t *n, int depth, const char *path)
{
    if (visit(c, n))
        return NULL;
    if (depth > MAX_JSON_DEPTH) {
        fail(c, n, "%s: nested too deeply (at most %d levels)", path, MAX_JSON_DEPTH);
        return NULL;
    }
    if (n->type == YAML_SCALAR_NODE) {
        int b;
        double d;
        if (scalar_has_nul(n)) {
            fail(c, n, "%s: string contains a NUL character", path);
            return NULL;
        }
        if (is_plain(n) && is_null(n))
            return cJSON_CreateNull();
        if (is_plain(n) && !bool_value(n, &b))
            return cJSON_CreateBool(b);
        if (is_plain(n) && !parse_double(sval(n), &d) && strpbrk(sval(n), "0123456789"))
            return cJSON_CreateNumber(d);
        char *str = NULL;
        if (scalar_text(c, n, path, &str))
            return NULL;
        cJSON *j = cJSON_CreateString(str);
        free(str);
        return j;
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        cJSON *arr = cJSON_CreateArray();
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            cJSON *v = yaml_to_json(c, get_node(c, *it), depth + 1, path);
            if (!v) {
                cJSON_Delete(arr);
                return NULL;
            }
            cJSON_AddItemToArray(arr, v);
        }
        return arr;
    }
    if (check_map(c, n, path))
        return NULL;
    cJSON *obj = cJSON_CreateObject();
    yaml_node_t *k, *v;
    FOR_PAIRS(c, n, k, v)
    {
        cJSON *jv = yaml_to_json(c, v, depth + 1, path);
        if (!jv) {
            cJSON_Delete(obj);
            return NULL;
        }
        char *key = NULL;
        if (scalar_text(c, k, path, &key)) {
            cJSON_Delete(jv);
            cJSON_Delete(obj);
            return NULL;
        }
        cJSON_AddItemToObject(obj, key, jv);
        free(key);
    }
    return obj;
}

static void py_json_str(sbuf_t *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    sb_putn(b, "\"", 1);
    while (*p) {
        unsigned cp = *p;
        int extra = 0;
        if (cp >= 0xf0 && cp < 0xf8) {
            cp &= 0x07;
            extra = 3;
        } else if (cp >= 0xe0) {
            cp &= 0x0f;
            extra = 2;
        } else if (cp >= 0xc0) {
            cp &= 0x1f;
            extra = 1;
        } else if (cp >= 0x80) {
            cp = 0xfffd; /* stray continuation byte */
        }
        p++;
        for (int i = 0; i < extra; i++) {
            if ((*p & 0xc0) != 0x80) {
                cp = 0xfffd;
                break;
            }
            cp = (cp << 6) | (*p++ & 0x3f);
        }
        switch (cp) {
        case '"':
            sb_puts(b, "\\\"");
            break;
        case '\\':
            sb_puts(b, "\\\\");
            break;
        case '\n':
            sb_puts(b, "\\n");
            break;
        case '\r':
            sb_puts(b, "\\r");
            break;
        case '\t':
            sb_puts(b, "\\t");
            break;
        case '\b':
            sb_puts(b, "\\b");
            break;
        case '\f':
            sb_puts(b, "\\f");
            break;
        default:
            if (cp < 0x20 || (cp >= 0x7f && cp < 0x10000)) {
                if (cp == 0x7f) {
                    char ch = 0x7f;
                    sb_putn(b, &ch, 1);
                } else {
                    sb_printf(b, "\\u%04x", cp);
                }
            } else if (cp >= 0x10000) {
                cp -= 0x10000;
                sb_printf(b, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
            } else {
                char ch = (char)cp;
                sb_putn(b, &ch, 1);
            }
        }
    }
    sb_putn(b, "\"", 1);
}

static void py_json(sbuf_t *b, const cJSON *j)
{
    char num[40];
    if (cJSON_IsNull(j)) {
        sb_puts(b, "null");
    } else if (cJSON_IsTrue(j)) {
        sb_puts(b, "true");
    } else if (cJSON_IsFalse(j)) {
        sb_puts(b, "false");
    } else if (cJSON_IsNumber(j)) {
        py_num(j->valuedouble, num, sizeof(num));
        sb_puts(b, num);
    } else if (cJSON_IsString(j)) {
        py_json_str(b, j->valuestring);
    } else if (cJSON_IsArray(j)) {
        sb_puts(b, "[");
        for (const cJSON *e = j->child; e; e = e->next) {
            py_json(b, e);
            if (e->next)
                sb_puts(b, ", ");
        }
        sb_puts(b, "]");
    } else if (cJSON_IsObject(j)) {
        sb_puts(b, "{");
        for (const cJSON *e = j->child; e; e = e->next) {
            py_json_str(b, e->string);
            sb_puts(b, ": ");
            py_json(b, e);
            if (e->next)
                sb_puts(b, ", ");
        }
        sb_puts(b, "}");
    } else {
        sb_puts(b, "null");
    }
}

/* ------------------------------------------------------------------ */
/* resources */

static void resources_init(core_resources_t *r)
{
    memset(r, 0, sizeof(*r));
    r->use_spot = -1;
    r->job_recovery.strategy = CORE_RECOVERY_EAGER_NEXT_REGION;
}

static int parse_amount(pctx_t *c, const yaml_node_t *n, const char *path, int allow_gb,
                        double *out, int *plus)
{
    char buf[64];
    double v;
    if (n->type != YAML_SCALAR_NODE)
        return fail(c, n, "%s: expected a number such as 2 or 2+, got %s", path, kind(n));
    if (is_null(n))
        return 0;
    size_t len = strlen(sval(n));
    if (len == 0 || len >= sizeof(buf))
        goto bad;
    memcpy(buf, sval(n), len + 1);
    *plus = 0;
    if (buf[len - 1] == '+') {
        *plus = 1;
        buf[--len] = '\0';
    }
    if (allow_gb && len > 2 && !strcasecmp(buf + len - 2, "gb"))
        buf[len -= 2] = '\0';
    if (parse_double(buf, &v) || !(v > 0))
        goto bad;
    *out = v;
    return 0;
bad:
    return fail(c, n,
                "%s: invalid value '%s': expected a positive number, optionally followed "
                "by '+' (e.g. 2 or 2+)",
                path, sval(n));
}

static int valid_acc_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return 0;
    return 1;
}

static int parse_accelerators(pctx_t *c, const yaml_node_t *n, const char *path,
                              core_resources_t *r)
{
    char name[64];
    long cnt = 1;
    if (n->type == YAML_SEQUENCE_NODE ||
        (n->type == YAML_MAPPING_NODE &&
         n->data.mapping.pairs.top - n->data.mapping.pairs.start != 1))
        return fail(c, n,
                    "%s: exactly one accelerator type is supported (use any_of for "
                    "alternatives)",
                    path);
    if (n->type == YAML_MAPPING_NODE) {
        if (check_map(c, n, path))
            return CORE_ESPEC;
        yaml_node_t *k = get_node(c, n->data.mapping.pairs.start->key);
        yaml_node_t *v = get_node(c, n->data.mapping.pairs.start->value);
        if (strlen(sval(k)) >= sizeof(name) || !valid_acc_name(sval(k)))
            return fail(c, k, "%s: invalid accelerator name '%s'", path, sval(k));
        snprintf(name, sizeof(name), "%s", sval(k));
        if (!is_null(v)) {
            int ci;
            char p2[128];
            snprintf(p2, sizeof(p2), "%s.%s", path, name);
            if (get_int(c, v, p2, 1, 1024, &ci))
                return CORE_ESPEC;
            cnt = ci;
        }
    } else {
        if (is_null(n))
            return 0;
        const char *s = sval(n);
        const char *colon = strrchr(s, ':');
        size_t nl = colon ? (size_t)(colon - s) : strlen(s);
        if (nl >= sizeof(name))
            return fail(c, n, "%s: invalid accelerator '%s'", path, s);
        memcpy(name, s, nl);
        name[nl] = '\0';
        if (!valid_acc_name(name))
            return fail(c, n,
                        "%s: invalid accelerator '%s': expected NAME or NAME:COUNT (e.g. "
                        "V100:1)",
                        path, s);
        if (colon && (parse_long(colon + 1, &cnt) || cnt < 1 || cnt > 1024))
            return fail(c, n,
                        "%s: invalid accelerator count in '%s': expected a positive "
                        "integer",
                        path, s);
    }
    free(r->accelerator);
    r->accelerator = core_xstrdup(name);
    r->accelerator_count = (int)cnt;
    return 0;
}

static int parse_port_item(pctx_t *c, const yaml_node_t *n, const char *path,
                           core_port_range_t *out)
{
    long lo, hi;
    char buf[32];
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail(c, n, "%s: expected a port or a port range, got %s", path, kind(n));
    const char *s = sval(n);
    if (strlen(s) >= sizeof(buf))
        goto bad;
    snprintf(buf, sizeof(buf), "%s", s);
    char *dash = strchr(buf, '-');
    if (dash) {
        *dash = '\0';
        if (parse_long(buf, &lo) || parse_long(dash + 1, &hi))
            goto bad;
    } else {
        if (parse_long(buf, &lo))
            goto bad;
        hi = lo;
    }
    if (lo < 1 || lo > 65535 || hi < 1 || hi > 65535)
        return fail(c, n, "%s: Port must be between 1 and 65535.", path);
    if (lo > hi)
        return fail(c, n, "%s: invalid port range '%s'", path, s);
    out->lo = (int)lo;
    out->hi = (int)hi;
    return 0;
bad:
    return fail(c, n,
                "%s: invalid port '%s': expected a port such as 8081 or a range such as "
                "8080-8081",
                path, s);
}

static int parse_ports(pctx_t *c, const yaml_node_t *n, const char *path, core_resources_t *r)
{
    free(r->ports);
    r->ports = NULL;
    r->n_ports = 0;
    r->ports_mark = mark_of(n);
    if (n->type == YAML_MAPPING_NODE)
        return fail(c, n, "%s: expected a port, a port range or a list of them, got a mapping",
                    path);
    if (n->type == YAML_SCALAR_NODE) {
        if (is_null(n))
            return 0;
        r->ports = core_xmalloc(sizeof(*r->ports));
        r->n_ports = 1;
        return parse_port_item(c, n, path, &r->ports[0]);
    }
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (cnt > MAX_PORT_ITEMS)
        return fail(c, n, "%s: too many entries (at most %d)", path, MAX_PORT_ITEMS);
    if (cnt == 0)
        return 0;
    r->ports = core_xcalloc(cnt, sizeof(*r->ports));
    for (size_t i = 0; i < cnt; i++) {
        char p2[128];
        snprintf(p2, sizeof(p2), "%s[%zu]", path, i);
        int rc = parse_port_item(c, get_node(c, n->data.sequence.items.start[i]), p2, &r->ports[i]);
        if (rc)
            return rc;
        r->n_ports = i + 1;
    }
    return 0;
}

static int parse_strategy(pctx_t *c, const yaml_node_t *n, const char *path,
                          core_recovery_strategy_t *out)
{
    char *s = NULL;
    int rc = get_str(c, n, path, &s);
    if (rc)
        return rc;
    if (!s) {
        *out = CORE_RECOVERY_EAGER_NEXT_REGION;
        return 0;
    }
    if (core_recovery_strategy_parse(s, out) < 0)
        rc = fail(c, n,
                  "%s: unknown recovery strategy '%s'. Available strategies: "
                  "['EAGER_NEXT_REGION', 'FAILOVER']",
                  path, s);
    free(s);
    return rc;
}

static int parse_recovery(pctx_t *c, const yaml_node_t *n, const char *path,
                          core_job_recovery_t *jr)
{
    int rc;
    free(jr->recover_on_exit_codes);
    memset(jr, 0, sizeof(*jr));
    jr->strategy = CORE_RECOVERY_EAGER_NEXT_REGION;
    if (n->type == YAML_SCALAR_NODE) {
        if (is_null(n))
            return 0;
        jr->set = 1;
        jr->mark = mark_of(n);
        return parse_strategy(c, n, path, &jr->strategy);
    }
    if ((rc = check_map(c, n, path)))
        return rc;
    jr->set = 1;
    jr->mark = mark_of(n);
    yaml_node_t *k, *v;
    FOR_PAIRS(c, n, k, v)
    {
        char p2[160];
        snprintf(p2, sizeof(p2), "%s.%s", path, sval(k));
        if (!strcmp(sval(k), "strategy")) {
            rc = parse_strategy(c, v, p2, &jr->strategy);
        } else if (!strcmp(sval(k), "max_restarts_on_errors")) {
            rc = get_int(c, v, p2, 0, INT_MAX, &jr->max_restarts_on_errors);
        } else if (!strcmp(sval(k), "recover_on_exit_codes")) {
            if (v->type == YAML_SCALAR_NODE) {
                jr->recover_on_exit_codes = core_xmalloc(sizeof(int));
                rc = get_int(c, v, p2, 0, 255, &jr->recover_on_exit_codes[0]);
                if (!rc)
                    jr->n_recover_on_exit_codes = 1;
            } else if (v->type == YAML_SEQUENCE_NODE) {
                size_t cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
                if (cnt > MAX_EXIT_CODES)
                    return fail(c, v, "%s: too many entries (at most %d)", p2, MAX_EXIT_CODES);
                jr->recover_on_exit_codes = core_xcalloc(cnt ? cnt : 1, sizeof(int));
                for (size_t i = 0; i < cnt && !rc; i++) {
                    rc = get_int(c, get_node(c, v->data.sequence.items.start[i]), p2, 0, 255,
                                 &jr->recover_on_exit_codes[i]);
                    if (!rc)
                        jr->n_recover_on_exit_codes = i + 1;
                }
            } else {
                rc = fail(c, v, "%s: expected an exit code or a list of exit codes, got %s", p2,
                          kind(v));
            }
        } else {
            rc = unknown(c, k, path);
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int valid_location_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return 0;
    return 1;
}

static int parse_location(pctx_t *c, const yaml_node_t *n, const char *path, char **out, int lower)
{
    int rc = get_str(c, n, path, out);
    if (rc || !*out)
        return rc;
    if (!valid_location_name(*out)) {
        rc = fail(c, n, "%s: invalid name '%s'", path, *out);
        free(*out);
        *out = NULL;
        return rc;
    }
    if (lower) {
        char *l = dup_lower(*out);
        free(*out);
        *out = l;
    }
    return 0;
}

/* infra: "cloud[/region[/zone]]", "*" meaning any. */
static int parse_infra(pctx_t *c, const yaml_node_t *n, const char *path, core_resources_t *r)
{
    char *s = NULL;
    char *parts[3] = {NULL, NULL, NULL};
    int rc = get_str(c, n, path, &s), np = 0;
    if (rc || !s)
        return rc;
    char *save = NULL;
    for (char *tok = strtok_r(s, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        if (np == 3 || (strcmp(tok, "*") && !valid_location_name(tok))) {
            rc =
                fail(c, n, "%s: invalid infra '%s': expected cloud[/region[/zone]]", path, sval(n));
            goto out;
        }
        parts[np++] = tok;
    }
    if (np == 0) {
        rc = fail(c, n, "%s: invalid infra '%s': expected cloud[/region[/zone]]", path, sval(n));
        goto out;
    }
    if (parts[0] && strcmp(parts[0], "*"))
        r->cloud = dup_lower(parts[0]);
    if (parts[1] && strcmp(parts[1], "*"))
        r->region = core_xstrdup(parts[1]);
    if (parts[2] && strcmp(parts[2], "*"))
        r->zone = core_xstrdup(parts[2]);
out:
    free(s);
    return rc;
}

/* disk_size: GB as an integer, or "<n>", "<n>G[B]", "<n>T[B]" (schemas.py MEMORY_SIZE_PATTERN). */
static int parse_disk_size(pctx_t *c, const yaml_node_t *n, const char *path, int *out)
{
    char *end;
    if (n->type == YAML_SCALAR_NODE && is_null(n))
        return 0;
    if (n->type != YAML_SCALAR_NODE)
        return fail(c, n, "%s: expected a size in GB, got %s", path, kind(n));
    const char *s = sval(n);
    errno = 0;
    long v = isdigit((unsigned char)*s) ? strtol(s, &end, 10) : -1;
    long mult = 1;
    if (v >= 0 && !errno) {
        if (!strcasecmp(end, "t") || !strcasecmp(end, "tb"))
            mult = 1024;
        else if (*end && strcasecmp(end, "g") && strcasecmp(end, "gb"))
            v = -1;
    }
    if (v < 1 || errno || v > INT_MAX / mult)
        return fail(c, n, "%s: invalid size '%s': expected GB such as 256, 256GB or 1TB", path, s);
    *out = (int)(v * mult);
    return 0;
}

void core_resources_clear(core_resources_t *r)
{
    if (!r)
        return;
    free(r->cloud);
    free(r->region);
    free(r->zone);
    free(r->accelerator);
    free(r->instance_type);
    free(r->ports);
    free(r->job_recovery.recover_on_exit_codes);
    for (size_t i = 0; i < r->n_any_of; i++)
        core_resources_clear(&r->any_of[i]);
    free(r->any_of);
    resources_init(r);
}

static char *xdup_or_null(const char *s)
{
    return s ? core_xstrdup(s) : NULL;
}

static void job_recovery_copy(core_job_recovery_t *d, const core_job_recovery_t *s)
{
    *d = *s;
    d->recover_on_exit_codes = NULL;
    if (s->n_recover_on_exit_codes) {
        d->recover_on_exit_codes = core_xcalloc(s->n_recover_on_exit_codes, sizeof(int));
        memcpy(d->recover_on_exit_codes, s->recover_on_exit_codes,
               s->n_recover_on_exit_codes * sizeof(int));
    }
}

static void ports_copy(core_resources_t *d, const core_resources_t *s)
{
    d->ports = NULL;
    d->n_ports = s->n_ports;
    d->ports_mark = s->ports_mark;
    if (s->n_ports) {
        d->ports = core_xcalloc(s->n_ports, sizeof(*d->ports));
        memcpy(d->ports, s->ports, s->n_ports * sizeof(*d->ports));
    }
}

void core_resources_copy(core_resources_t *dst, const core_resources_t *src, int use_spot,
                         const char *cloud, const char *region, const char *zone)
{
    resources_init(dst);
    dst->cloud = xdup_or_null(cloud ? cloud : src->cloud);
    dst->region = xdup_or_null(region ? region : src->region);
    dst->zone = xdup_or_null(zone ? zone : src->zone);
    if (cloud) {
        char *l = dup_lower(dst->cloud);
        free(dst->cloud);
        dst->cloud = l;
    }
    dst->cpus = src->cpus;
    dst->cpus_plus = src->cpus_plus;
    dst->memory_gb = src->memory_gb;
    dst->memory_plus = src->memory_plus;
    dst->accelerator = xdup_or_null(src->accelerator);
    dst->accelerator_count = src->accelerator_count;
    dst->instance_type = xdup_or_null(src->instance_type);
    dst->use_spot = use_spot >= 0 ? (use_spot ? 1 : 0) : src->use_spot;
    ports_copy(dst, src);
    dst->disk_size = src->disk_size;
    job_recovery_copy(&dst->job_recovery, &src->job_recovery);
    dst->ordered = src->ordered;
    dst->mark = src->mark;
    dst->use_spot_mark = src->use_spot_mark;
    if (src->n_any_of) {
        dst->any_of = core_xcalloc(src->n_any_of, sizeof(*dst->any_of));
        for (size_t i = 0; i < src->n_any_of; i++)
            core_resources_copy(&dst->any_of[i], &src->any_of[i], use_spot, cloud, region, zone);
        dst->n_any_of = src->n_any_of;
    }
}

/* An any_of entry merged over the enclosing resources (<over> wins where set). */
static void resources_merge(core_resources_t *out, const core_resources_t *base,
                            const core_resources_t *over)
{
    resources_init(out);
#define PICK_STR(f) out->f = xdup_or_null(over->f ? over->f : base->f)
    PICK_STR(cloud);
    PICK_STR(region);
    PICK_STR(zone);
    PICK_STR(instance_type);
#undef PICK_STR
    /* A location given in the entry replaces the outer location as a whole. */
    if (over->cloud || over->region || over->zone) {
        free(out->region);
        free(out->zone);
        out->region =
            xdup_or_null(over->region ? over->region : (over->cloud ? NULL : base->region));
        out->zone = xdup_or_null(over->zone ? over->zone
                                            : (over->cloud || over->region ? NULL : base->zone));
    }
    const core_resources_t *s = over->cpus > 0 ? over : base;
    out->cpus = s->cpus;
    out->cpus_plus = s->cpus_plus;
    s = over->memory_gb > 0 ? over : base;
    out->memory_gb = s->memory_gb;
    out->memory_plus = s->memory_plus;
    s = over->accelerator ? over : base;
    out->accelerator = xdup_or_null(s->accelerator);
    out->accelerator_count = s->accelerator_count;
    if (over->use_spot >= 0) {
        out->use_spot = over->use_spot;
        out->use_spot_mark = over->use_spot_mark;
    } else {
        out->use_spot = base->use_spot;
        out->use_spot_mark = base->use_spot_mark;
    }
    ports_copy(out, over->n_ports ? over : base);
    out->disk_size = over->disk_size ? over->disk_size : base->disk_size;
    job_recovery_copy(&out->job_recovery,
                      over->job_recovery.set ? &over->job_recovery : &base->job_recovery);
    out->mark = over->mark;
}

static int parse_resources(pctx_t *c, const yaml_node_t *n, const char *path, core_resources_t *r,
                           int is_entry)
{
    int rc;
    const yaml_node_t *list = NULL, *list_key = NULL, *infra = NULL, *loc_key = NULL;
    const yaml_node_t *recovery_key = NULL;
    resources_init(r);
    r->mark = mark_of(n);
    if (n->type == YAML_SCALAR_NODE && is_null(n))
        return 0;
    if ((rc = check_map(c, n, path)))
        return rc;
    yaml_node_t *k, *v;
    FOR_PAIRS(c, n, k, v)
    {
        const char *key = sval(k);
        char p2[160];
        snprintf(p2, sizeof(p2), "%s.%s", path, key);
        if ((rc = visit(c, v)))
            return rc;
        if (!strcmp(key, "cloud")) {
            rc = parse_location(c, v, p2, &r->cloud, 1);
            loc_key = k;
        } else if (!strcmp(key, "region")) {
            rc = parse_location(c, v, p2, &r->region, 0);
            loc_key = k;
        } else if (!strcmp(key, "zone")) {
            rc = parse_location(c, v, p2, &r->zone, 0);
            loc_key = k;
        } else if (!strcmp(key, "infra")) {
            infra = v;
        } else if (!strcmp(key, "cpus")) {
            rc = parse_amount(c, v, p2, 0, &r->cpus, &r->cpus_plus);
        } else if (!strcmp(key, "memory")) {
            rc = parse_amount(c, v, p2, 1, &r->memory_gb, &r->memory_plus);
        } else if (!strcmp(key, "accelerators")) {
            rc = parse_accelerators(c, v, p2, r);
        } else if (!strcmp(key, "instance_type")) {
            rc = get_str(c, v, p2, &r->instance_type);
        } else if (!strcmp(key, "use_spot")) {
            r->use_spot_mark = mark_of(v);
            if (is_null(v))
                r->use_spot = -1;
            else
                rc = get_bool(c, v, p2, &r->use_spot);
        } else if (!strcmp(key, "ports")) {
            rc = parse_ports(c, v, p2, r);
        } else if (!strcmp(key, "disk_size")) {
            rc = parse_disk_size(c, v, p2, &r->disk_size);
            if (!rc)
                warn_ignored(c, k, p2, DISK_WHY);
        } else if (!strcmp(key, "job_recovery") || !strcmp(key, "spot_recovery")) {
            if (recovery_key)
                return fail(c, k,
                            "%s: cannot specify both job_recovery and spot_recovery "
                            "(spot_recovery is the old name of job_recovery)",
                            path);
            recovery_key = k;
            rc = parse_recovery(c, v, p2, &r->job_recovery);
        } else if (!strcmp(key, "any_of") || !strcmp(key, "ordered")) {
            if (is_entry)
                return fail(c, k, "%s: %s cannot be nested", path, key);
            if (list)
                return fail(c, k, "%s: cannot specify both any_of and ordered", path);
            list = v;
            list_key = k;
        } else {
            rc = ignored_or_unknown(c, k, v, path, ignored_resource_keys);
        }
        if (rc)
            return rc;
    }
    if (infra) {
        if (loc_key)
            return fail(c, loc_key, "%s: cannot specify both infra and cloud/region/zone", path);
        char p2[160];
        snprintf(p2, sizeof(p2), "%s.infra", path);
        if ((rc = parse_infra(c, infra, p2, r)))
            return rc;
    }
    if (!list)
        return 0;

    char lp[160];
    snprintf(lp, sizeof(lp), "%s.%s", path, sval(list_key));
    if (list->type != YAML_SEQUENCE_NODE)
        return fail(c, list, "%s: expected a list of resources, got %s", lp, kind(list));
    size_t cnt = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    if (cnt == 0)
        return fail(c, list, "%s: expected at least one entry", lp);
    if (cnt > MAX_ANY_OF)
        return fail(c, list, "%s: too many entries (at most %d)", lp, MAX_ANY_OF);
    r->ordered = !strcmp(sval(list_key), "ordered");
    r->any_of = core_xcalloc(cnt, sizeof(*r->any_of));
    for (size_t i = 0; i < cnt; i++) {
        core_resources_t entry;
        yaml_node_t *en = get_node(c, list->data.sequence.items.start[i]);
        char ep[192];
        snprintf(ep, sizeof(ep), "%s[%zu]", lp, i);
        if (en->type != YAML_MAPPING_NODE) {
            return fail(c, en, "%s: expected a mapping, got %s", ep, kind(en));
        }
        rc = parse_resources(c, en, ep, &entry, 1);
        if (rc) {
            core_resources_clear(&entry);
            return rc;
        }
        resources_merge(&r->any_of[i], r, &entry);
        r->n_any_of = i + 1;
        core_resources_clear(&entry);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* envs, file_mounts */

static int valid_env_name(const char *s)
{
    if (!isalpha((unsigned char)*s) && *s != '_')
        return 0;
    for (s++; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return 0;
    return 1;
}

static int parse_kv(pctx_t *c, const yaml_node_t *n, const char *what, int env_names,
                    core_kv_t **out, size_t *nout)
{
    int rc;
    if (n->type == YAML_SCALAR_NODE && is_null(n))
        return 0;
    if ((rc = check_map(c, n, what)))
        return rc;
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    *out = core_xcalloc(cnt ? cnt : 1, sizeof(**out));
    yaml_node_t *k, *v;
    FOR_PAIRS(c, n, k, v)
    {
        char p2[192];
        snprintf(p2, sizeof(p2), "%s.%s", what, sval(k));
        if (env_names && !valid_env_name(sval(k)))
            return fail(c, k,
                        "%s: invalid name '%s' (letters, digits and '_', not starting "
                        "with a digit)",
                        what, sval(k));
        if (v->type != YAML_SCALAR_NODE)
            return fail(c, v, "%s: expected a string or a number, got %s", p2, kind(v));
        core_kv_t *kv = &(*out)[*nout];
        if ((rc = scalar_text(c, k, what, &kv->key)))
            return rc;
        kv->mark = mark_of(k);
        (*nout)++;
        /* A bare `KEY:` (null) leaves value NULL: it must come from --env. */
        if ((rc = get_str(c, v, p2, &kv->value)))
            return rc;
    }
    return 0;
}

static int valid_bucket_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
        return 0;
    for (; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '-' || *s == '_' ||
              *s == '.'))
            return 0;
    return 1;
}

static int has_dotdot(const char *p)
{
    for (const char *s = p; (s = strstr(s, "..")); s += 2) {
        int start = s == p || s[-1] == '/';
        int end = s[2] == '\0' || s[2] == '/';
        if (start && end)
            return 1;
    }
    return 0;
}

/* "s3://bucket/sub" -> "bucket"; NULL for local paths. */
static char *url_bucket(const char *src)
{
    const char *p = strstr(src, "://");
    if (!p)
        return NULL;
    p += 3;
    return core_xstrndup(p, strcspn(p, "/"));
}

static int parse_storage(pctx_t *c, const yaml_node_t *n, const char *path, core_file_mount_t *fm)
{
    int rc;
    const yaml_node_t *name_node = NULL;
    if ((rc = check_map(c, n, path)))
        return rc;
    fm->is_storage = 1;
    fm->mode = CORE_MOUNT_MOUNT;
    fm->persistent = 1;
    yaml_node_t *k, *v;
    FOR_PAIRS(c, n, k, v)
    {
        char p2[256];
        snprintf(p2, sizeof(p2), "%s.%s", path, sval(k));
        if (!strcmp(sval(k), "name")) {
            name_node = is_null(v) ? k : v;
            rc = get_str(c, v, p2, &fm->name);
        } else if (!strcmp(sval(k), "source")) {
            rc = get_str(c, v, p2, &fm->src);
        } else if (!strcmp(sval(k), "store")) {
            rc = get_str(c, v, p2, &fm->store);
        } else if (!strcmp(sval(k), "mode")) {
            char *m = NULL;
            rc = get_str(c, v, p2, &m);
            if (!rc && m) {
                if (!strcasecmp(m, "MOUNT"))
                    fm->mode = CORE_MOUNT_MOUNT;
                else if (!strcasecmp(m, "COPY"))
                    fm->mode = CORE_MOUNT_COPY;
                else if (!strcasecmp(m, "MOUNT_CACHED")) {
                    /* Writes reach the bucket at once here, which MOUNT_CACHED only promises
                     * eventually: MOUNT keeps every guarantee it makes. */
                    fm->mode = CORE_MOUNT_MOUNT;
                    warn(c, v, "%s: MOUNT_CACHED is MOUNT here (writes are not cached)", p2);
                } else
                    rc = fail(c, v,
                              "%s: unknown mode '%s'. Available modes: ['MOUNT', 'COPY', "
                              "'MOUNT_CACHED']",
                              p2, m);
            }
            free(m);
        } else if (!strcmp(sval(k), "persistent")) {
            rc = get_bool(c, v, p2, &fm->persistent);
        } else {
            rc = ignored_or_unknown(c, k, v, path, ignored_storage_keys);
        }
        if (rc)
            return rc;
    }
    if (fm->src && !strstr(fm->src, "://"))
        fm->src_resolved = resolve_local_path(fm->src);
    else if (fm->src)
        fm->src_resolved = core_xstrdup(fm->src);
    if (!fm->name && fm->src)
        fm->name = url_bucket(fm->src);
    if (!fm->name || !*fm->name)
        return fail(c, name_node ? name_node : n, "%s.name: bucket name required", path);
    if (!valid_bucket_name(fm->name))
        return fail(c, name_node ? name_node : n,
                    "%s.name: invalid bucket name '%s': use 3-63 lowercase letters, digits, "
                    "'-', '_' or '.', starting and ending with a letter or digit",
                    path, fm->name);
    return 0;
}

static int parse_file_mounts(pctx_t *c, const yaml_node_t *n, core_task_t *t)
{
    int rc;
    if (n->type == YAML_SCALAR_NODE && is_null(n))
        return 0;
    if ((rc = check_map(c, n, "file_mounts")))
        return rc;
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    t->file_mounts = core_xcalloc(cnt ? cnt : 1, sizeof(*t->file_mounts));
    yaml_node_t *k, *v;
    FOR_PAIRS(c, n, k, v)
    {
        char *dst = NULL;
        if ((rc = scalar_text(c, k, "file_mounts", &dst)))
            return rc;
        char p2[256];
        snprintf(p2, sizeof(p2), "file_mounts.%s", dst);
        rc = visit(c, v);
        if (!rc && dst[0] != '/' && dst[0] != '~')
            rc = fail(c, k,
                      "file_mounts: destination '%s' must be an absolute path or start "
                      "with ~",
                      dst);
        if (!rc && has_dotdot(dst))
            rc = fail(c, k, "file_mounts: destination '%s' must not contain '..'", dst);
        if (rc) {
            free(dst);
            return rc;
        }
        core_file_mount_t *fm = &t->file_mounts[t->n_file_mounts++];
        fm->dst = dst;
        fm->mark = mark_of(k);
        if (v->type == YAML_MAPPING_NODE) {
            if ((rc = parse_storage(c, v, p2, fm)))
                return rc;
        } else if (v->type == YAML_SCALAR_NODE && !is_null(v)) {
            if ((rc = get_req_str(c, v, p2, &fm->src)))
                return rc;
            fm->mode = CORE_MOUNT_COPY;
            fm->src_resolved =
                strstr(fm->src, "://") ? core_xstrdup(fm->src) : resolve_local_path(fm->src);
        } else {
            return fail(c, v, "%s: expected a local path or a storage object, got %s", p2, kind(v));
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* service */

static const char *const lb_names[] = {"round_robin", "least_load", "power_of_two"};

const char *core_lb_policy_name(core_lb_policy_t p)
{
    return (unsigned)p < CORE_ARRAY_SIZE(lb_names) ? lb_names[p] : "unknown";
}

#define XX(name) #name,
static const char *const recovery_names[] = {CORE_RECOVERY_STRATEGY_MAP(XX)};
#undef XX

const char *core_recovery_strategy_name(core_recovery_strategy_t s)
{
    return core_enum_name(recovery_names, CORE_ARRAY_SIZE(recovery_names), (int)s,
                          "EAGER_NEXT_REGION");
}

int core_recovery_strategy_parse(const char *name, core_recovery_strategy_t *out)
{
    for (size_t i = 0; i < CORE_ARRAY_SIZE(recovery_names); i++) {
        if (strcasecmp(name, recovery_names[i]) == 0) {
            *out = (core_recovery_strategy_t)i;
            return 0;
        }
    }
    return CORE_ENOTFOUND;
}

static int parse_probe(pctx_t *c, const yaml_node_t *n, core_readiness_probe_t *pr)
{
    int rc;
    const yaml_node_t *path_node = n;
    if (n->type == YAML_SCALAR_NODE) {
        if (is_null(n))
            return 0;
        free(pr->path);
        if ((rc = get_req_str(c, n, "service.readiness_probe", &pr->path)))
            return rc;
    } else {
        if ((rc = check_map(c, n, "service.readiness_probe")))
            return rc;
        free(pr->path);
        pr->path = NULL;
        yaml_node_t *k, *v;
        FOR_PAIRS(c, n, k, v)
        {
            const char *key = sval(k);
            char p2[128];
            snprintf(p2, sizeof(p2), "service.readiness_probe.%s", key);
            if (!strcmp(key, "path")) {
                path_node = v;
                rc = get_req_str(c, v, p2, &pr->path);
            } else if (!strcmp(key, "initial_delay_seconds")) {
                rc = get_num(c, v, p2, 0, &pr->initial_delay_seconds);
            } else if (!strcmp(key, "timeout_seconds")) {
                /* fix: the schema allows 0, which would make every probe time out. */
                rc = get_num(c, v, p2, 0, &pr->timeout_seconds);
                if (!rc && !(pr->timeout_seconds > 0))
                    rc = fail(c, v, "%s: must be > 0, got %s", p2, sval(v));
            } else if (!strcmp(key, "post_data")) {
                cJSON *j = NULL;
                if (is_null(v))
                    continue;
                if (v->type == YAML_SCALAR_NODE) {
                    char *text = NULL;
                    if ((rc = scalar_text(c, v, p2, &text)))
                        return rc;
                    j = scalar_has_nul(v) ? NULL : cJSON_Parse(text);
                    free(text);
                    if (!j)
                        return fail(c, v,
                                    "Invalid JSON string for `post_data` in the "
                                    "`readiness_probe` section of your service YAML.");
                } else {
                    j = yaml_to_json(c, v, 0, p2);
                    if (!j)
                        return CORE_ESPEC;
                }
                sbuf_t b = {0};
                py_json(&b, j);
                cJSON_Delete(j);
                free(pr->post_data);
                pr->post_data = b.p;
            } else if (!strcmp(key, "headers")) {
                rc = parse_kv(c, v, "service.readiness_probe.headers", 0, &pr->headers,
                              &pr->n_headers);
                for (size_t i = 0; !rc && i < pr->n_headers; i++)
                    if (!pr->headers[i].value)
                        rc = errf(c->err, c->file, pr->headers[i].mark,
                                  "service.readiness_probe.headers.%s: value required",
                                  pr->headers[i].key);
            } else {
                rc = unknown(c, k, "service.readiness_probe");
            }
            if (rc)
                return rc;
        }
        if (!pr->path)
            return fail(c, n, "service.readiness_probe: path is required");
    }
    if (pr->path[0] != '/')
        return fail(c, path_node, "readiness_path must start with a slash (/). Got: %s", pr->path);
    return 0;
}

static int parse_replica_policy(pctx_t *c, const yaml_node_t *n, core_service_spec_t *s)
{
    int rc, have_min = 0;
    core_replica_policy_t *p = &s->policy;
    const char *what = "service.replica_policy";
    if ((rc = check_map(c, n, what)))
        return rc;
    p->mark = mark_of(n);
    yaml_node_t *k, *v;
    FOR_PAIRS(c, n, k, v)
    {
        const char *key = sval(k);
        char p2[128];
        snprintf(p2, sizeof(p2), "%s.%s", what, key);
        if (!strcmp(key, "min_replicas")) {
            rc = get_int(c, v, p2, 0, INT_MAX, &p->min_replicas);
            have_min = 1;
        } else if (!strcmp(key, "max_replicas")) {
            p->max_replicas_mark = mark_of(v);
            if (!is_null(v))
                rc = get_int(c, v, p2, 0, INT_MAX, &p->max_replicas);
        } else if (!strcmp(key, "target_qps_per_replica")) {
            p->target_qps_mark = mark_of(v);
            if (v->type == YAML_MAPPING_NODE)
                rc = fail(c, v,
                          "%s: a per-accelerator mapping requires load_balancing_policy "
                          "instance_aware_least_load, which is not supported",
                          p2);
            else if (!is_null(v)) {
                rc = get_num(c, v, p2, 0, &p->target_qps_per_replica);
                p->has_target_qps = !rc;
            }
        } else if (!strcmp(key, "upscale_delay_seconds")) {
            rc = get_num(c, v, p2, 0, &p->upscale_delay_seconds);
        } else if (!strcmp(key, "downscale_delay_seconds")) {
            rc = get_num(c, v, p2, 0, &p->downscale_delay_seconds);
        } else if (!strcmp(key, "num_overprovision")) {
            if (!is_null(v))
                rc = get_int(c, v, p2, 0, INT_MAX, &p->num_overprovision);
        } else if (!strcmp(key, "base_ondemand_fallback_replicas")) {
            p->base_ondemand_mark = mark_of(v);
            s->fallback_mark = mark_of(v);
            if (!is_null(v))
                rc = get_int(c, v, p2, 0, INT_MAX, &p->base_ondemand_fallback_replicas);
        } else if (!strcmp(key, "dynamic_ondemand_fallback")) {
            s->fallback_mark = mark_of(v);
            if (!is_null(v))
                rc = get_bool(c, v, p2, &p->dynamic_ondemand_fallback);
        } else if (!strcmp(key, "fallback_covers_overprovision")) {
            p->covers_overprovision_mark = mark_of(v);
            if (!is_null(v))
                rc = get_bool(c, v, p2, &p->fallback_covers_overprovision);
        } else if (!strcmp(key, "spot_placer")) {
            char *sp = NULL;
            s->spot_placer_mark = mark_of(v);
            rc = get_str(c, v, p2, &sp);
            if (!rc && sp) {
                if (!strcasecmp(sp, "dynamic_fallback"))
                    p->spot_placer = CORE_SPOT_PLACER_DYNAMIC_FALLBACK;
                else if (!strcasecmp(sp, "spread_backoff"))
                    p->spot_placer = CORE_SPOT_PLACER_SPREAD_BACKOFF;
                else
                    rc = fail(c, v,
                              "Unknown spot placer: %s. Available spot placers: "
                              "['dynamic_fallback', 'spread_backoff']",
                              sp);
            }
            free(sp);
        } else {
            rc = unknown(c, k, what);
        }
        if (rc)
            return rc;
    }
    if (!have_min)
        return fail(c, n, "%s: min_replicas is required", what);
    return 0;
}

/* The rules SkyServiceSpec.__init__ enforces; run at parse and again at validation. */
static int check_service_policy(const core_service_spec_t *s, const char *file, char **err)
{
    const core_replica_policy_t *p = &s->policy;
    char q[32];
    if (p->max_replicas >= 0 && p->max_replicas < p->min_replicas)
        return errf(err, file, p->max_replicas_mark,
                    "max_replicas must be greater than or equal to min_replicas. Found: "
                    "min_replicas=%d, max_replicas=%d",
                    p->min_replicas, p->max_replicas);
    if (p->has_target_qps) {
        if (p->max_replicas < 0)
            return errf(err, file, p->target_qps_mark,
                        "max_replicas must be set where target_qps_per_replica is set.");
        /* fix: the reference accepts 0 and later divides the QPS by it. */
        if (!(p->target_qps_per_replica > 0)) {
            py_num(p->target_qps_per_replica, q, sizeof(q));
            return errf(err, file, p->target_qps_mark,
                        "target_qps_per_replica must be greater than 0. Found: %s", q);
        }
    } else if (p->max_replicas >= 0 && p->max_replicas != p->min_replicas) {
        return errf(err, file, p->mark,
                    "Detected different min_replicas and max_replicas while "
                    "target_qps_per_replica is not set. To enable autoscaling, please set "
                    "target_qps_per_replica.");
    }
    if (p->fallback_covers_overprovision >= 0 && p->dynamic_ondemand_fallback != 1)
        return errf(err, file, p->covers_overprovision_mark,
                    "`fallback_covers_overprovision` applies only with "
                    "`dynamic_ondemand_fallback: true`.");
    /* fix: the reference accepts this and then fails on every autoscaler tick. */
    int max = p->max_replicas >= 0 ? p->max_replicas : p->min_replicas;
    if (p->base_ondemand_fallback_replicas > max)
        return errf(err, file, p->base_ondemand_mark,
                    "base_ondemand_fallback_replicas must be less than or equal to "
                    "max_replicas. Found: base_ondemand_fallback_replicas=%d, max_replicas=%d",
                    p->base_ondemand_fallback_replicas, max);
    return 0;
}

static int parse_tls(pctx_t *c, const yaml_node_t *n, core_service_spec_t *s)
{
    int rc;
    if ((rc = check_map(c, n, "service.tls")))
        return rc;
    yaml_node_t *k, *v;
    FOR_PAIRS(c, n, k, v)
    {
        if (!strcmp(sval(k), "keyfile"))
            rc = get_req_str(c, v, "service.tls.keyfile", &s->tls_keyfile);
        else if (!strcmp(sval(k), "certfile"))
            rc = get_req_str(c, v, "service.tls.certfile", &s->tls_certfile);
        else
            rc = unknown(c, k, "service.tls");
        if (rc)
            return rc;
    }
    return 0;
}

static int parse_service(pctx_t *c, const yaml_node_t *n, core_service_spec_t *s)
{
    int rc;
    const yaml_node_t *replicas_key = NULL, *policy_key = NULL, *tls = NULL;
    s->probe.path = core_xstrdup("/");
    s->probe.initial_delay_seconds = 1200;
    s->probe.timeout_seconds = 15;
    s->policy.min_replicas = 1;
    s->policy.max_replicas = -1;
    s->policy.upscale_delay_seconds = 300;
    s->policy.downscale_delay_seconds = 1200;
    s->policy.num_overprovision = -1;
    s->policy.base_ondemand_fallback_replicas = -1;
    s->policy.dynamic_ondemand_fallback = -1;
    s->policy.fallback_covers_overprovision = -1;
    s->lb_policy = CORE_LB_LEAST_LOAD;
    s->mark = mark_of(n);
    s->policy.mark = s->mark;
    if ((rc = check_map(c, n, "service")))
        return rc;
    yaml_node_t *k, *v;
    FOR_PAIRS(c, n, k, v)
    {
        const char *key = sval(k);
        char p2[128];
        snprintf(p2, sizeof(p2), "service.%s", key);
        if ((rc = visit(c, v)))
            return rc;
        if (!strcmp(key, "readiness_probe")) {
            rc = parse_probe(c, v, &s->probe);
        } else if (!strcmp(key, "replicas")) {
            replicas_key = k;
            /* fix: the schema sets no minimum; a negative count means nothing. */
            rc = get_int(c, v, p2, 0, INT_MAX, &s->policy.min_replicas);
            s->policy.mark = mark_of(v);
            s->has_replicas_shorthand = 1;
        } else if (!strcmp(key, "replica_policy")) {
            policy_key = k;
            rc = parse_replica_policy(c, v, s);
        } else if (!strcmp(key, "load_balancing_policy")) {
            char *lp = NULL;
            rc = get_str(c, v, p2, &lp);
            if (!rc && lp) {
                size_t i;
                for (i = 0; i < CORE_ARRAY_SIZE(lb_names); i++)
                    if (!strcasecmp(lp, lb_names[i]))
                        break;
                if (i == CORE_ARRAY_SIZE(lb_names))
                    rc = fail(c, v,
                              "Unknown load balancing policy: %s. Available policies: "
                              "['round_robin', 'least_load', 'power_of_two']",
                              lp);
                else
                    s->lb_policy = (core_lb_policy_t)i;
            }
            free(lp);
        } else if (!strcmp(key, "tls")) {
            tls = v;
            rc = parse_tls(c, v, s);
        } else if (!strcmp(key, "ports")) {
            long port;
            s->ports_mark = mark_of(v);
            if (v->type != YAML_SCALAR_NODE || !is_plain(v) || parse_long(sval(v), &port))
                rc = fail(c, v, "service.ports: expected an integer port, got %s%s%s",
                          v->type == YAML_SCALAR_NODE ? "'" : "",
                          v->type == YAML_SCALAR_NODE ? sval(v) : kind(v),
                          v->type == YAML_SCALAR_NODE ? "'" : "");
            else if (port < 1 || port > 65535)
                rc = fail(c, v, "Port must be between 1 and 65535.");
            else
                s->ports = (int)port;
        } else {
            rc = unknown(c, k, "service");
        }
        if (rc)
            return rc;
    }
    if (replicas_key && policy_key)
        return fail(c,
                    replicas_key->start_mark.index > policy_key->start_mark.index ? replicas_key
                                                                                  : policy_key,
                    "Cannot specify both `replicas` and `replica_policy` in the Service section. "
                    "Please specify one of them.");
    if (tls && (!s->tls_keyfile || !s->tls_certfile))
        return fail(c, tls, "service.tls: both keyfile and certfile are required");
    s->use_ondemand_fallback =
        s->policy.dynamic_ondemand_fallback == 1 || s->policy.base_ondemand_fallback_replicas > 0;
    return check_service_policy(s, c->file, c->err);
}

static void service_free(core_service_spec_t *s)
{
    if (!s)
        return;
    free(s->probe.path);
    free(s->probe.post_data);
    for (size_t i = 0; i < s->probe.n_headers; i++) {
        free(s->probe.headers[i].key);
        free(s->probe.headers[i].value);
    }
    free(s->probe.headers);
    free(s->tls_keyfile);
    free(s->tls_certfile);
    free(s);
}

/* ------------------------------------------------------------------ */
/* task */

static void kv_free(core_kv_t *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

void core_task_free(core_task_t *t)
{
    if (!t)
        return;
    free(t->filename);
    free(t->name);
    free(t->workdir);
    free(t->workdir_resolved);
    free(t->setup);
    free(t->run);
    kv_free(t->envs, t->n_envs);
    kv_free(t->secrets, t->n_secrets);
    for (size_t i = 0; i < t->n_file_mounts; i++) {
        core_file_mount_t *fm = &t->file_mounts[i];
        free(fm->dst);
        free(fm->src);
        free(fm->src_resolved);
        free(fm->name);
        free(fm->store);
    }
    free(t->file_mounts);
    core_resources_clear(&t->resources);
    service_free(t->service);
    for (size_t i = 0; i < t->n_warnings; i++)
        free(t->warnings[i]);
    free(t->warnings);
    free(t);
}

static void kv_set(core_kv_t **kv, size_t *n, const char *key, const char *value)
{
    for (size_t i = 0; i < *n; i++) {
        if (!strcmp((*kv)[i].key, key)) {
            free((*kv)[i].value);
            (*kv)[i].value = core_xstrdup(value);
            return;
        }
    }
    *kv = core_xrealloc(*kv, (*n + 1) * sizeof(**kv));
    core_kv_t *e = &(*kv)[(*n)++];
    memset(e, 0, sizeof(*e));
    e->key = core_xstrdup(key);
    e->value = core_xstrdup(value);
}

/* A SkyPilot form this implementation refuses rather than half-honours. */
static int unsupported(pctx_t *c, const yaml_node_t *n, const char *what)
{
    return fail(c, n, "%s", what);
}

/* --env and --secret, before anything names them. Non-string env members are skipped. */
static int apply_env_overrides(pctx_t *c, core_task_t *t)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, c->env_over)
    {
        if (cJSON_IsString(e))
            kv_set(&t->envs, &t->n_envs, e->string, e->valuestring);
    }
    if (c->secret_over && !cJSON_IsObject(c->secret_over)) {
        core_mark_t none = {0, 0};
        return errf(c->err, "task overrides", none, "secrets: expected an object");
    }
    cJSON_ArrayForEach(e, c->secret_over)
    {
        core_mark_t none = {0, 0};
        if (!valid_env_name(e->string))
            return errf(c->err, "task overrides", none, "secrets: invalid name '%s'", e->string);
        if (!cJSON_IsString(e))
            return errf(c->err, "task overrides", none, "secrets.%s: expected a string",
                        e->string);
        kv_set(&t->secrets, &t->n_secrets, e->string, e->valuestring);
    }
    return 0;
}

/* Pass 1 of parse_task: the envs and secrets that the other keys may name. */
static int parse_env_sections(pctx_t *c, const yaml_node_t *root, core_task_t *t)
{
    int rc = 0;
    yaml_node_t *k, *v;
    FOR_PAIRS(c, root, k, v)
    {
        if ((rc = visit(c, v)))
            return rc;
        if (!strcmp(sval(k), "envs")) {
            rc = parse_kv(c, v, "envs", 1, &t->envs, &t->n_envs);
        } else if (!strcmp(sval(k), "secrets")) {
            if (v->type == YAML_SEQUENCE_NODE)
                rc = unsupported(c, v,
                                 "secrets: references to SkyPilot's secret store are not "
                                 "supported: give the values in the YAML or with --secret");
            else
                rc = parse_kv(c, v, "secrets", 1, &t->secrets, &t->n_secrets);
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int parse_task(pctx_t *c, const yaml_node_t *root, core_task_t *t)
{
    int rc;
    if (!root || (root->type == YAML_SCALAR_NODE && is_null(root)))
        return apply_env_overrides(c, t);
    if (root->type != YAML_MAPPING_NODE)
        return fail(c, root, "task: expected a mapping, got %s", kind(root));
    if ((rc = check_map(c, root, "task")))
        return rc;
    if ((rc = parse_env_sections(c, root, t)))
        return rc;
    if ((rc = apply_env_overrides(c, t)))
        return rc;
    yaml_node_t *k, *v;
    FOR_PAIRS(c, root, k, v)
    {
        const char *key = sval(k);
        if (!strcmp(key, "name")) {
            rc = get_str(c, v, "name", &t->name);
        } else if (!strcmp(key, "workdir")) {
            if (v->type == YAML_MAPPING_NODE)
                return unsupported(c, v,
                                   "workdir: a git repository as workdir is not supported: "
                                   "clone it and give its local path");
            c->subst = 1;
            rc = get_str(c, v, "workdir", &t->workdir);
            c->subst = 0;
            if (!rc && t->workdir) {
                if (!*t->workdir)
                    rc = fail(c, v, "workdir: expected a non-empty path");
                else
                    t->workdir_resolved = resolve_local_path(t->workdir);
            }
        } else if (!strcmp(key, "setup")) {
            rc = get_str(c, v, "setup", &t->setup);
        } else if (!strcmp(key, "run")) {
            rc = get_str(c, v, "run", &t->run);
        } else if (!strcmp(key, "envs") || !strcmp(key, "secrets")) {
            /* pass 1 */
        } else if (!strcmp(key, "file_mounts")) {
            c->subst = 1;
            rc = parse_file_mounts(c, v, t);
            c->subst = 0;
        } else if (!strcmp(key, "num_nodes")) {
            if (!is_null(v))
                rc = get_int(c, v, "num_nodes", 1, INT_MAX, &t->num_nodes);
            if (!rc && t->num_nodes > 1)
                rc = fail(c, v,
                          "num_nodes: %d: multi-node tasks are not supported yet; every task "
                          "runs on one instance (use num_nodes: 1)",
                          t->num_nodes);
        } else if (!strcmp(key, "resources")) {
            core_resources_clear(&t->resources);
            rc = parse_resources(c, v, "resources", &t->resources, 0);
        } else if (!strcmp(key, "service")) {
            if (!is_null(v)) {
                t->service = core_xcalloc(1, sizeof(*t->service));
                c->subst = 1;
                rc = parse_service(c, v, t->service);
                c->subst = 0;
            }
        } else if (!strcmp(key, "pool")) {
            rc = unsupported(c, k,
                             "pool: SkyPilot pools are not supported (launch managed jobs "
                             "without a pool)");
        } else {
            rc = ignored_or_unknown(c, k, v, "task", ignored_task_keys);
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int syntax_error(const yaml_parser_t *p, const char *file, char **err)
{
    const yaml_mark_t *m = p->problem ? &p->problem_mark : &p->context_mark;
    core_mark_t cm = {(int)m->line + 1, (int)m->column + 1};
    const char *what = p->problem ? p->problem : "invalid YAML";
    if (p->context)
        return errf(err, file, cm, "YAML syntax error: %s %s", what, p->context);
    return errf(err, file, cm, "YAML syntax error: %s", what);
}

/* ------------------------------------------------------------------ */
/* overrides (the CLI's task flags) */

#define OVERRIDES         "task overrides"
#define MAX_OVERRIDE_DEPTH 8

/* <j> as a node of <d> (strings as plain scalars, as a flag's value would be
 * read in a YAML); 0 when it nests too deeply. */
static int json_to_yaml(yaml_document_t *d, const cJSON *j, int depth)
{
    char num[40];
    const char *text = "null";
    if (depth > MAX_OVERRIDE_DEPTH)
        return 0;
    if (cJSON_IsArray(j) || cJSON_IsObject(j)) {
        int id = cJSON_IsArray(j)
                     ? yaml_document_add_sequence(d, NULL, YAML_ANY_SEQUENCE_STYLE)
                     : yaml_document_add_mapping(d, NULL, YAML_ANY_MAPPING_STYLE);
        const cJSON *e;
        cJSON_ArrayForEach(e, j)
        {
            int v = json_to_yaml(d, e, depth + 1);
            if (!id || !v)
                return 0;
            if (cJSON_IsArray(j)) {
                yaml_document_append_sequence_item(d, id, v);
                continue;
            }
            int k = yaml_document_add_scalar(d, NULL, (yaml_char_t *)e->string,
                                             (int)strlen(e->string), YAML_PLAIN_SCALAR_STYLE);
            if (!k)
                return 0;
            yaml_document_append_mapping_pair(d, id, k, v);
        }
        return id;
    }
    if (cJSON_IsString(j))
        text = j->valuestring;
    else if (cJSON_IsBool(j))
        text = cJSON_IsTrue(j) ? "true" : "false";
    else if (cJSON_IsNumber(j)) {
        py_num(j->valuedouble, num, sizeof(num));
        text = num;
    }
    return yaml_document_add_scalar(d, NULL, (yaml_char_t *)text, (int)strlen(text),
                                    YAML_PLAIN_SCALAR_STYLE);
}

static void replace_str(char **dst, const char *src)
{
    free(*dst);
    *dst = xdup_or_null(src);
}

/* Resources.copy(<key>=...): the field <key> of <o> replaces <dst>'s. */
static void override_field(core_resources_t *dst, const core_resources_t *o, const char *key)
{
    if (!strcmp(key, "infra") || !strcmp(key, "cloud"))
        replace_str(&dst->cloud, o->cloud);
    if (!strcmp(key, "infra") || !strcmp(key, "region"))
        replace_str(&dst->region, o->region);
    if (!strcmp(key, "infra") || !strcmp(key, "zone"))
        replace_str(&dst->zone, o->zone);
    if (!strcmp(key, "cpus")) {
        dst->cpus = o->cpus;
        dst->cpus_plus = o->cpus_plus;
    } else if (!strcmp(key, "memory")) {
        dst->memory_gb = o->memory_gb;
        dst->memory_plus = o->memory_plus;
    } else if (!strcmp(key, "accelerators")) {
        replace_str(&dst->accelerator, o->accelerator);
        dst->accelerator_count = o->accelerator_count;
    } else if (!strcmp(key, "instance_type")) {
        replace_str(&dst->instance_type, o->instance_type);
    } else if (!strcmp(key, "use_spot")) {
        dst->use_spot = o->use_spot;
    } else if (!strcmp(key, "ports")) {
        free(dst->ports);
        ports_copy(dst, o);
    } else if (!strcmp(key, "disk_size")) {
        dst->disk_size = o->disk_size;
    } else if (!strcmp(key, "job_recovery") || !strcmp(key, "spot_recovery")) {
        free(dst->job_recovery.recover_on_exit_codes);
        job_recovery_copy(&dst->job_recovery, &o->job_recovery);
    }
}

static int override_resources(pctx_t *c, const cJSON *res, core_task_t *t)
{
    yaml_document_t doc;
    core_resources_t o;
    core_mark_t none = {0, 0};
    if (!cJSON_IsObject(res))
        return errf(c->err, OVERRIDES, none, "resources: expected an object");
    if (!yaml_document_initialize(&doc, NULL, NULL, NULL, 1, 1))
        abort();
    int root = json_to_yaml(&doc, res, 0);
    int rc = root ? 0 : errf(c->err, OVERRIDES, none, "resources: nested too deeply");
    c->doc = &doc;
    resources_init(&o);
    if (!rc)
        rc = parse_resources(c, yaml_document_get_node(&doc, root), "resources", &o, 1);
    for (const cJSON *e = res->child; !rc && e; e = e->next) {
        override_field(&t->resources, &o, e->string);
        for (size_t i = 0; i < t->resources.n_any_of; i++)
            override_field(&t->resources.any_of[i], &o, e->string);
    }
    core_resources_clear(&o);
    yaml_document_delete(&doc);
    c->doc = NULL;
    return rc;
}

static int apply_overrides(pctx_t *c, const cJSON *ov, core_task_t *t)
{
    core_mark_t none = {0, 0};
    if (!ov)
        return 0;
    if (!cJSON_IsObject(ov))
        return errf(c->err, OVERRIDES, none, "expected an object");
    for (const cJSON *e = ov->child; e; e = e->next) {
        int rc = 0;
        if (!strcmp(e->string, "secrets")) {
            /* applied with the envs, before substitution */
        } else if (!strcmp(e->string, "resources")) {
            rc = override_resources(c, e, t);
        } else if (!strcmp(e->string, "workdir")) {
            if (!cJSON_IsNull(e) && (!cJSON_IsString(e) || !e->valuestring[0]))
                return errf(c->err, OVERRIDES, none, "workdir: expected a path");
            replace_str(&t->workdir, cJSON_IsString(e) ? e->valuestring : NULL);
            free(t->workdir_resolved);
            t->workdir_resolved = t->workdir ? resolve_local_path(t->workdir) : NULL;
        } else if (!strcmp(e->string, "num_nodes")) {
            if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) ||
                e->valuedouble < 1 || e->valuedouble > INT_MAX)
                return errf(c->err, OVERRIDES, none, "num_nodes: expected a positive integer");
            if (e->valuedouble > 1)
                return errf(c->err, OVERRIDES, none,
                            "num_nodes: %.0f: multi-node tasks are not supported yet; every "
                            "task runs on one instance",
                            e->valuedouble);
            t->num_nodes = 1;
        } else {
            return errf(c->err, OVERRIDES, none, "unknown override '%s'", e->string);
        }
        if (rc)
            return rc;
    }
    return 0;
}

int core_task_parse_with(const char *text, size_t len, const char *filename, const cJSON *envs,
                         const cJSON *overrides, core_task_t **out, char **err)
{
    yaml_parser_t parser;
    yaml_document_t doc, doc2;
    int rc = 0, have_doc = 0;
    const char *file = filename ? filename : "<string>";
    core_task_t *t = NULL;
    *out = NULL;
    if (len > CORE_SPEC_MAX_BYTES) {
        core_mark_t none = {0, 0};
        return errf(err, file, none, "YAML too large (%zu bytes, at most %d)", len,
                    CORE_SPEC_MAX_BYTES);
    }
    if (!yaml_parser_initialize(&parser))
        abort();
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = syntax_error(&parser, file, err);
        goto out;
    }
    have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) {
        /* A second document would be a pipeline (multi-task job). */
        if (!yaml_parser_load(&parser, &doc2)) {
            rc = syntax_error(&parser, file, err);
            goto out;
        }
        yaml_node_t *r2 = yaml_document_get_root_node(&doc2);
        core_mark_t m2 = {0, 0};
        if (r2)
            m2 = mark_of(r2);
        yaml_document_delete(&doc2);
        if (r2) {
            rc = errf(err, file, m2, "multiple YAML documents (pipelines) are not supported");
            goto out;
        }
    }
    t = core_xcalloc(1, sizeof(*t));
    t->filename = core_xstrdup(file);
    t->num_nodes = 1;
    resources_init(&t->resources);
    pctx_t c = {.doc = &doc,
                .file = file,
                .err = err,
                .task = t,
                .env_over = envs,
                .secret_over = cJSON_GetObjectItemCaseSensitive(overrides, "secrets")};
    if ((rc = parse_task(&c, root, t)))
        goto out;
    pctx_t oc = {.file = OVERRIDES, .err = err, .task = t, .no_marks = 1};
    if ((rc = apply_overrides(&oc, overrides, t)))
        goto out;
    *out = t;
    t = NULL;
out:
    core_task_free(t);
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

int core_task_parse(const char *text, size_t len, const char *filename, core_task_t **out,
                    char **err)
{
    return core_task_parse_with(text, len, filename, NULL, NULL, out, err);
}

int core_task_load(const char *path, core_task_t **out, char **err)
{
    core_mark_t none = {0, 0};
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        errf(err, path, none, "cannot open: %s", strerror(e));
        return -e;
    }
    char *buf = core_xmalloc(CORE_SPEC_MAX_BYTES + 1);
    size_t n = fread(buf, 1, CORE_SPEC_MAX_BYTES + 1, f);
    int rerr = ferror(f);
    fclose(f);
    int rc;
    if (rerr) {
        errf(err, path, none, "read error");
        rc = -EIO;
    } else if (n > CORE_SPEC_MAX_BYTES)
        rc = errf(err, path, none, "YAML too large (more than %d bytes)", CORE_SPEC_MAX_BYTES);
    else
        rc = core_task_parse(buf, n, path, out, err);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------ */
/* validation */

static const core_resources_t *candidates(const core_task_t *t, size_t *n)
{
    if (t->resources.n_any_of) {
        *n = t->resources.n_any_of;
        return t->resources.any_of;
    }
    *n = 1;
    return &t->resources;
}

int core_task_uses_spot(const core_task_t *t)
{
    size_t n;
    return candidates(t, &n)[0].use_spot == 1;
}

static core_mark_t pick_mark(core_mark_t a, core_mark_t b)
{
    return a.line ? a : b;
}

static int check_env_values(const core_task_t *t, char **err)
{
    for (size_t i = 0; i < t->n_envs; i++)
        if (!t->envs[i].value)
            return errf(err, t->filename, t->envs[i].mark,
                        "envs.%s: value required (set it in the YAML or with --env %s=VALUE)",
                        t->envs[i].key, t->envs[i].key);
    for (size_t i = 0; i < t->n_secrets; i++)
        if (!t->secrets[i].value)
            return errf(err, t->filename, t->secrets[i].mark,
                        "secrets.%s: value required (set it in the YAML or with --secret "
                        "%s=VALUE)",
                        t->secrets[i].key, t->secrets[i].key);
    return 0;
}

static int str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcasecmp(a, b));
}

/* Same resources apart from cloud/region/zone (spot placement's requirement). */
static int same_config(const core_resources_t *a, const core_resources_t *b)
{
    if (a->cpus != b->cpus || a->cpus_plus != b->cpus_plus || a->memory_gb != b->memory_gb ||
        a->memory_plus != b->memory_plus || !str_eq(a->accelerator, b->accelerator) ||
        a->accelerator_count != b->accelerator_count ||
        !str_eq(a->instance_type, b->instance_type) || (a->use_spot == 1) != (b->use_spot == 1) ||
        a->disk_size != b->disk_size || a->n_ports != b->n_ports)
        return 0;
    for (size_t i = 0; i < a->n_ports; i++)
        if (a->ports[i].lo != b->ports[i].lo || a->ports[i].hi != b->ports[i].hi)
            return 0;
    return 1;
}

static int cmp_range(const void *x, const void *y)
{
    const core_port_range_t *a = x, *b = y;
    return a->lo != b->lo ? (a->lo < b->lo ? -1 : 1) : (a->hi < b->hi ? -1 : a->hi > b->hi);
}

/* Number of distinct ports of <r> and the lowest one. */
static long port_count(const core_resources_t *r, int *first)
{
    core_port_range_t tmp[MAX_PORT_ITEMS];
    long total = 0;
    int end = 0;
    *first = 0;
    if (!r->n_ports)
        return 0;
    memcpy(tmp, r->ports, r->n_ports * sizeof(tmp[0]));
    qsort(tmp, r->n_ports, sizeof(tmp[0]), cmp_range);
    *first = tmp[0].lo;
    for (size_t i = 0; i < r->n_ports; i++) {
        int lo = tmp[i].lo > end ? tmp[i].lo : end + 1;
        if (tmp[i].hi >= lo)
            total += tmp[i].hi - lo + 1;
        if (tmp[i].hi > end)
            end = tmp[i].hi;
    }
    return total;
}

static int has_port(const core_resources_t *r, int port)
{
    for (size_t i = 0; i < r->n_ports; i++)
        if (port >= r->ports[i].lo && port <= r->ports[i].hi)
            return 1;
    return 0;
}

int core_task_validate_service(const core_task_t *t, char **err)
{
    core_mark_t none = {0, 0};
    const core_service_spec_t *s = t->service;
    size_t nc;
    int rc;
    if (!s)
        return errf(err, t->filename, none, "Service section not found.");
    if ((rc = check_service_policy(s, t->filename, err)))
        return rc;
    if ((rc = check_env_values(t, err)))
        return rc;
    const core_resources_t *cands = candidates(t, &nc);

    size_t spot = 0;
    for (size_t i = 0; i < nc; i++)
        spot += cands[i].use_spot == 1;
    if (spot != 0 && spot != nc) {
        const core_resources_t *odd = NULL;
        for (size_t i = 0; i < nc && !odd; i++)
            if ((cands[i].use_spot == 1) != (cands[0].use_spot == 1))
                odd = &cands[i];
        return errf(err, t->filename, pick_mark(odd->use_spot_mark, odd->mark),
                    "Resources must either all use spot or none use spot. To use on-demand and "
                    "spot instances together, use `dynamic_ondemand_fallback` or set "
                    "base_ondemand_fallback_replicas.");
    }
    for (size_t i = 0; i < nc; i++)
        if (cands[i].job_recovery.set)
            return errf(err, t->filename, pick_mark(cands[i].job_recovery.mark, cands[i].mark),
                        "job_recovery is disabled for SkyServe. SkyServe will replenish "
                        "preempted spot with %s instances.",
                        s->policy.dynamic_ondemand_fallback == 1 ? "on-demand" : "spot");
    if (s->policy.spot_placer != CORE_SPOT_PLACER_NONE)
        for (size_t i = 1; i < nc; i++)
            if (!same_config(&cands[0], &cands[i]))
                return errf(err, t->filename, cands[i].mark,
                            "Different resource configurations are not supported for spot "
                            "placement. All resources must have the same configuration except "
                            "for cloud/region/zone.");

    int port = s->ports;
    for (size_t i = 0; i < nc; i++) {
        const core_resources_t *r = &cands[i];
        if (s->use_ondemand_fallback && r->use_spot != 1)
            return errf(err, t->filename, pick_mark(r->use_spot_mark, s->fallback_mark),
                        "`use_ondemand_fallback` is only supported for spot resources. Please "
                        "explicitly specify `use_spot: true` in resources for on-demand "
                        "fallback.");
        if (s->policy.spot_placer != CORE_SPOT_PLACER_NONE && r->use_spot != 1)
            return errf(err, t->filename, pick_mark(r->use_spot_mark, s->spot_placer_mark),
                        "`spot_placer` is only supported for spot resources. Please explicitly "
                        "specify `use_spot: true` in resources.");
        if (s->ports) {
            if (r->n_ports && !has_port(r, s->ports))
                return errf(err, t->filename, s->ports_mark,
                            "The service port %d (service.ports) is not among the ports of the "
                            "resources. Add it to resources.ports or remove resources.ports.",
                            s->ports);
            continue;
        }
        int first;
        long cnt = port_count(r, &first);
        if (cnt == 0)
            return errf(err, t->filename, pick_mark(r->mark, s->mark),
                        "Must specify at least one ports in resources. Each replica will use "
                        "the port specified as application ingress port.");
        if (cnt > 1)
            return errf(err, t->filename, r->ports_mark,
                        "Multiple ports specified in resources. Please specify the main port in "
                        "the `service.ports` field.");
        if (port == 0)
            port = first;
        else if (first != port)
            return errf(err, t->filename, r->ports_mark,
                        "Got multiple ports: %d and %d in different resources. Please specify "
                        "the same port instead.",
                        first, port);
    }
    return port;
}

int core_task_validate_job(const core_task_t *t, char **err)
{
    core_mark_t none = {0, 0};
    size_t nc;
    int rc;
    if (t->service)
        return errf(err, t->filename, t->service->mark.line ? t->service->mark : none,
                    "a task with a service section cannot run as a managed job (use `sky serve "
                    "up`)");
    if ((rc = check_env_values(t, err)))
        return rc;
    const core_resources_t *cands = candidates(t, &nc);
    for (size_t i = 1; i < nc; i++)
        if (cands[i].job_recovery.set != cands[0].job_recovery.set ||
            cands[i].job_recovery.strategy != cands[0].job_recovery.strategy)
            return errf(err, t->filename, pick_mark(cands[i].job_recovery.mark, cands[i].mark),
                        "All resources of a task must use the same job_recovery strategy.");
    return 0;
}

const core_job_recovery_t *core_task_job_recovery(const core_task_t *t)
{
    static const core_job_recovery_t def = {.strategy = CORE_RECOVERY_EAGER_NEXT_REGION};
    size_t nc;
    const core_resources_t *cands = candidates(t, &nc);
    return cands[0].job_recovery.set ? &cands[0].job_recovery : &def;
}

void core_task_set_env(core_task_t *t, const char *key, const char *value)
{
    for (size_t i = 0; i < t->n_envs; i++) {
        if (!strcmp(t->envs[i].key, key)) {
            free(t->envs[i].value);
            t->envs[i].value = core_xstrdup(value);
            return;
        }
    }
    t->envs = core_xrealloc(t->envs, (t->n_envs + 1) * sizeof(*t->envs));
    core_kv_t *kv = &t->envs[t->n_envs++];
    memset(kv, 0, sizeof(*kv));
    kv->key = core_xstrdup(key);
    kv->value = core_xstrdup(value);
}

void core_task_set_envs(core_task_t *t, const cJSON *envs)
{
    const cJSON *e;

    cJSON_ArrayForEach(e, envs)
        if (cJSON_IsString(e))
            core_task_set_env(t, e->string, e->valuestring);
}

/* ------------------------------------------------------------------ */
/* repr */

static void spot_policy_str(sbuf_t *b, const core_service_spec_t *s)
{
    const core_replica_policy_t *p = &s->policy;
    size_t start = b->len;
    int placer = p->spot_placer != CORE_SPOT_PLACER_NONE;
    const char *placer_name =
        p->spot_placer == CORE_SPOT_PLACER_SPREAD_BACKOFF ? "spread_backoff" : "dynamic_fallback";
    if (p->dynamic_ondemand_fallback == 1) {
        if (placer) {
            sb_puts(b, "SpotHedge");
            /* the reference's SpotHedge is the dynamic_fallback placer: name any other */
            if (p->spot_placer != CORE_SPOT_PLACER_DYNAMIC_FALLBACK)
                sb_printf(b, " with %s placer", placer_name);
        } else {
            sb_puts(b, "Dynamic on-demand fallback");
            /* The reference omits the space before "base" here; we do not. */
            if (p->base_ondemand_fallback_replicas >= 0)
                sb_printf(b, " with %d base on-demand replicas",
                          p->base_ondemand_fallback_replicas);
        }
        if (p->fallback_covers_overprovision == 0)
            sb_puts(b, " (on-demand fallback for the target only)");
        return;
    } else if (p->base_ondemand_fallback_replicas >= 0) {
        sb_printf(b, "Static spot mixture with %d base on-demand replica%s",
                  p->base_ondemand_fallback_replicas,
                  p->base_ondemand_fallback_replicas == 1 ? "" : "s");
    }
    if (placer) {
        if (b->len == start)
            sb_puts(b, "Spot placement");
        sb_printf(b, " with %s placer", placer_name);
    }
    if (b->len == start)
        sb_puts(b, "No spot policy");
}

char *core_service_repr(const core_service_spec_t *s)
{
    sbuf_t b = {0};
    char n1[32], n2[32];
    const core_replica_policy_t *p = &s->policy;

    sb_puts(&b, "Readiness probe method:           ");
    if (s->probe.post_data)
        sb_printf(&b, "POST %s %s", s->probe.path, s->probe.post_data);
    else
        sb_printf(&b, "GET %s", s->probe.path);
    if (s->probe.n_headers)
        sb_puts(&b, " with custom headers");
    py_num(s->probe.initial_delay_seconds, n1, sizeof(n1));
    py_num(s->probe.timeout_seconds, n2, sizeof(n2));
    sb_printf(&b, "\nReadiness initial delay seconds:  %s\n", n1);
    sb_printf(&b, "Readiness probe timeout seconds:  %s\n", n2);
    sb_puts(&b, "Replica autoscaling policy:       ");
    if (p->max_replicas < 0 || p->max_replicas == p->min_replicas) {
        sb_printf(&b, "Fixed %d replica%s", p->min_replicas, p->min_replicas == 1 ? "" : "s");
    } else {
        sb_printf(&b, "Autoscaling from %d to %d replica%s", p->min_replicas, p->max_replicas,
                  p->max_replicas == 1 ? "" : "s");
        if (p->num_overprovision >= 0)
            sb_printf(&b, " with %d overprovisioned replicas", p->num_overprovision);
        py_num(p->target_qps_per_replica, n1, sizeof(n1));
        sb_printf(&b, " (target QPS per replica: %s)", p->has_target_qps ? n1 : "None");
    }
    sb_puts(&b, "\nTLS Certificates:                 ");
    if (s->tls_keyfile)
        sb_printf(&b, "Keyfile: %s, Certfile: %s", s->tls_keyfile, s->tls_certfile);
    else
        sb_puts(&b, "No TLS Enabled");
    sb_puts(&b, "\nSpot Policy:                      ");
    spot_policy_str(&b, s);
    sb_printf(&b, "\nLoad Balancing Policy:            %s\n", core_lb_policy_name(s->lb_policy));
    return b.p;
}
