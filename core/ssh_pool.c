/*
 * $SKY_HOME/ssh_node_pools.yaml: SkyPilot's SSH Node Pools file (libyaml
 * document API). Validation is strict where a mistake would otherwise show
 * up later as a confusing ssh failure: unknown keys, duplicate keys, a host
 * listed twice, names that ssh would read as options.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* vasprintf */
#endif
#include "core/ssh_pool.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/util.h"

#define MAX_FILE_BYTES (1024 * 1024)
#define MAX_FIELD      4096

typedef struct pctx {
    yaml_document_t *doc;
    const char *file;
    char *dir; /* of <file>: relative identity_file paths start there */
    char **err;
} pctx_t;

static core_mark_t mark_of(const yaml_node_t *n)
{
    core_mark_t m = {(int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
    return m;
}

static int fail(pctx_t *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(pctx_t *c, const yaml_node_t *n, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    va_end(ap);
    if (c->err) {
        free(*c->err);
        if (n)
            *c->err = core_xasprintf("%s:%zu:%zu: %s", c->file, n->start_mark.line + 1,
                                     n->start_mark.column + 1, msg);
        else
            *c->err = core_xasprintf("%s: %s", c->file, msg);
    }
    free(msg);
    return CORE_ESPEC;
}

static yaml_node_t *node(pctx_t *c, int id)
{
    return yaml_document_get_node(c->doc, id);
}

static const char *sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = sval(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

static const char *type_name(const yaml_node_t *n)
{
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    return is_null(n) ? "empty" : "a string";
}

/* A non-empty scalar without control characters, at most MAX_FIELD bytes. */
static int get_str(pctx_t *c, const yaml_node_t *n, const char *what, const char **out)
{
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail(c, n, "%s must be a non-empty string, got %s", what, type_name(n));
    const char *s = sval(n);
    if (n->data.scalar.length > MAX_FIELD || strlen(s) != n->data.scalar.length)
        return fail(c, n, "%s is too long or contains a NUL byte", what);
    for (const char *p = s; *p; p++)
        if (iscntrl((unsigned char)*p))
            return fail(c, n, "%s contains a control character", what);
    *out = s;
    return 0;
}

/* Host and user names go on ssh's command line: nothing it could take for an
 * option or a second argument. Hosts: names, IPv4, IPv6 (with ':' and '%zone'). */
static int host_ok(const char *s)
{
    if (!*s || *s == '-' || strlen(s) > 253)
        return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".-_:%", *p))
            return 0;
    return 1;
}

static int user_ok(const char *s)
{
    if (!*s || *s == '-' || strlen(s) > 64)
        return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-$", *p))
            return 0;
    return 1;
}

int core_ssh_pool_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CORE_SSH_MAX_NAME || !isalnum((unsigned char)name[0]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i]))
            return 0;
    return 1;
}

static char *home_of_user(void)
{
    const char *h = getenv("HOME");
    if (h && *h)
        return core_xstrdup(h);
    struct passwd *pw = getpwuid(getuid());
    return core_xstrdup(pw && pw->pw_dir ? pw->pw_dir : "/");
}

/* "~" and "~/x" from $HOME; relative paths from the pool file's directory. */
static int expand_path(pctx_t *c, const yaml_node_t *n, const char *s, char **out)
{
    if (s[0] == '~') {
        if (s[1] != '\0' && s[1] != '/')
            return fail(c, n, "identity_file '%s': only '~/' is expanded, not '~user/'", s);
        char *home = home_of_user();
        *out = core_xasprintf("%s%s", home, s + 1);
        free(home);
    } else if (s[0] == '/') {
        *out = core_xstrdup(s);
    } else {
        *out = core_xasprintf("%s/%s", c->dir, s);
    }
    return 0;
}

/* Mapping pairs with duplicate-key detection (SkyPilot's UniqueKeySafeLoader). */
static int check_keys(pctx_t *c, const yaml_node_t *map, const char *where)
{
    for (yaml_node_pair_t *a = map->data.mapping.pairs.start; a < map->data.mapping.pairs.top;
         a++) {
        yaml_node_t *k = node(c, a->key);
        if (k->type != YAML_SCALAR_NODE || is_null(k))
            return fail(c, k, "%s: keys must be non-empty strings", where);
        for (yaml_node_pair_t *b = map->data.mapping.pairs.start; b < a; b++) {
            yaml_node_t *k2 = node(c, b->key);
            if (!strcmp(sval(k), sval(k2)))
                return fail(c, k, "%s: duplicate key '%s' (first at line %zu)", where, sval(k),
                            k2->start_mark.line + 1);
        }
    }
    return 0;
}

static int no_password(pctx_t *c, const yaml_node_t *k)
{
    return fail(c, k,
                "password: not supported, use a key: set identity_file to a private key "
                "whose public key is in the host's ~/.ssh/authorized_keys (and let the user "
                "run without a sudo password)");
}

typedef struct defaults {
    const char *user;
    const char *identity;
    const yaml_node_t *identity_node;
} defaults_t;

static int parse_host(pctx_t *c, const yaml_node_t *n, const defaults_t *d, const char *pool,
                      core_ssh_host_t *h)
{
    const char *host = NULL, *user = d->user, *identity = d->identity;
    const yaml_node_t *identity_node = d->identity_node, *host_node = n;
    char where[128];
    snprintf(where, sizeof(where), "pool '%s': host", pool);
    if (n->type == YAML_SCALAR_NODE) {
        int rc = get_str(c, n, "a host", &host);
        if (rc)
            return rc;
    } else if (n->type == YAML_MAPPING_NODE) {
        int rc = check_keys(c, n, where);
        if (rc)
            return rc;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = node(c, p->key), *v = node(c, p->value);
            const char *key = sval(k);
            if (!strcmp(key, "ip")) {
                if ((rc = get_str(c, v, "ip", &host)))
                    return rc;
                host_node = v;
            } else if (!strcmp(key, "user")) {
                if ((rc = get_str(c, v, "user", &user)))
                    return rc;
                if (!user_ok(user))
                    return fail(c, v, "user '%s' is not a valid user name", user);
            } else if (!strcmp(key, "identity_file")) {
                if ((rc = get_str(c, v, "identity_file", &identity)))
                    return rc;
                identity_node = v;
            } else if (!strcmp(key, "port")) {
                char *end = NULL;
                long port = v->type == YAML_SCALAR_NODE ? strtol(sval(v), &end, 10) : 0;
                if (v->type != YAML_SCALAR_NODE || end == sval(v) || *end || port < 1 ||
                    port > 65535)
                    return fail(c, v, "port must be an integer in 1..65535");
                h->port = (int)port;
            } else if (!strcmp(key, "password")) {
                return no_password(c, k);
            } else {
                return fail(c, k, "%s: unknown key '%s' (expected ip, user, identity_file, port)",
                            where, key);
            }
        }
        if (!host)
            return fail(c, n, "%s: missing 'ip' (the host's address or ssh-config name)", where);
    } else {
        return fail(c, n, "%s must be an address, an ssh-config name or a mapping with 'ip', "
                          "got %s", where, type_name(n));
    }
    if (!host_ok(host))
        return fail(c, host_node, "%s '%s' is not a valid address or host name", where, host);
    h->host = core_xstrdup(host);
    h->user = user ? core_xstrdup(user) : NULL;
    h->mark = mark_of(host_node);
    if (identity) {
        int rc = expand_path(c, identity_node, identity, &h->identity_file);
        if (rc)
            return rc;
        h->identity_mark = mark_of(identity_node);
    }
    return 0;
}

static int parse_pool(pctx_t *c, const yaml_node_t *k, const yaml_node_t *v, core_ssh_pool_t *p)
{
    const char *name = sval(k);
    char where[128];
    if (!core_ssh_pool_name_valid(name))
        return fail(c, k, "pool name '%s' must be 1-%d letters, digits, '.', '_' or '-', "
                          "starting with a letter or digit", name, CORE_SSH_MAX_NAME);
    snprintf(where, sizeof(where), "pool '%s'", name);
    p->name = core_xstrdup(name);
    p->mark = mark_of(k);
    if (v->type != YAML_MAPPING_NODE)
        return fail(c, is_null(v) ? k : v, "%s must be a mapping with 'hosts', got %s", where,
                    type_name(v));
    int rc = check_keys(c, v, where);
    if (rc)
        return rc;
    defaults_t d = {0};
    const yaml_node_t *hosts = NULL;
    for (yaml_node_pair_t *pr = v->data.mapping.pairs.start; pr < v->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *pk = node(c, pr->key), *pv = node(c, pr->value);
        const char *key = sval(pk);
        if (!strcmp(key, "hosts")) {
            hosts = pv;
            if (pv->type != YAML_SEQUENCE_NODE || pv->data.sequence.items.top ==
                                                      pv->data.sequence.items.start)
                return fail(c, pv->type == YAML_SEQUENCE_NODE || is_null(pv) ? pk : pv,
                            "%s: hosts must be a non-empty list", where);
        } else if (!strcmp(key, "user")) {
            if ((rc = get_str(c, pv, "user", &d.user)))
                return rc;
            if (!user_ok(d.user))
                return fail(c, pv, "user '%s' is not a valid user name", d.user);
        } else if (!strcmp(key, "identity_file")) {
            if ((rc = get_str(c, pv, "identity_file", &d.identity)))
                return rc;
            d.identity_node = pv;
        } else if (!strcmp(key, "password")) {
            return no_password(c, pk);
        } else {
            return fail(c, pk, "%s: unknown key '%s' (expected hosts, user, identity_file)",
                        where, key);
        }
    }
    if (!hosts)
        return fail(c, k, "%s: no hosts (add a 'hosts:' list)", where);
    size_t n = (size_t)(hosts->data.sequence.items.top - hosts->data.sequence.items.start);
    if (n > CORE_SSH_MAX_HOSTS)
        return fail(c, hosts, "%s: %zu hosts, at most %d", where, n, CORE_SSH_MAX_HOSTS);
    p->hosts = core_xcalloc(n, sizeof(*p->hosts));
    for (size_t i = 0; i < n; i++) {
        p->n_hosts++; /* zeroed: freed whole even if half parsed */
        if ((rc = parse_host(c, node(c, hosts->data.sequence.items.start[i]), &d, name,
                             &p->hosts[i])))
            return rc;
    }
    return 0;
}

/* One host, one pool: a host's capacity is claimed through its pool. Hosts
 * compare by name and port as written (ssh-config aliases are not resolved). */
static int check_unique_hosts(pctx_t *c, const core_ssh_pools_t *ps)
{
    for (size_t i = 0; i < ps->n_pools; i++) {
        for (size_t j = 0; j < ps->pools[i].n_hosts; j++) {
            const core_ssh_host_t *h = &ps->pools[i].hosts[j];
            for (size_t a = 0; a <= i; a++) {
                size_t lim = a == i ? j : ps->pools[a].n_hosts;
                for (size_t b = 0; b < lim; b++) {
                    const core_ssh_host_t *o = &ps->pools[a].hosts[b];
                    if (strcmp(o->host, h->host) != 0 || o->port != h->port)
                        continue;
                    free(*c->err);
                    *c->err = core_xasprintf(
                        "%s:%d:%d: host '%s' is listed twice (first in pool '%s' at line %d): "
                        "a host belongs to one pool",
                        c->file, h->mark.line, h->mark.col, h->host, ps->pools[a].name,
                        o->mark.line);
                    return CORE_ESPEC;
                }
            }
        }
    }
    return 0;
}

static int syntax_error(pctx_t *c, const yaml_parser_t *p)
{
    const yaml_mark_t *m = p->problem ? &p->problem_mark : &p->context_mark;
    free(*c->err);
    *c->err = core_xasprintf("%s:%zu:%zu: YAML syntax error: %s%s%s", c->file, m->line + 1,
                             m->column + 1, p->problem ? p->problem : "invalid YAML",
                             p->context ? " " : "", p->context ? p->context : "");
    return CORE_ESPEC;
}

int core_ssh_pools_parse(const char *text, size_t len, const char *file, core_ssh_pools_t **out,
                         char **err)
{
    char *dummy = NULL;
    pctx_t c = {.file = file ? file : "<string>", .err = err ? err : &dummy};
    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = 0, have_doc = 0;
    core_ssh_pools_t *ps = NULL;
    *out = NULL;
    if (len > MAX_FILE_BYTES) {
        rc = fail(&c, NULL, "too large (%zu bytes, at most %d)", len, MAX_FILE_BYTES);
        goto out;
    }
    const char *slash = file ? strrchr(file, '/') : NULL;
    c.dir = slash ? core_xstrndup(file, (size_t)(slash - file + (slash == file))) : NULL;
    if (!c.dir) {
        char cwd[4096];
        c.dir = core_xstrdup(getcwd(cwd, sizeof(cwd)) ? cwd : ".");
    }
    if (!yaml_parser_initialize(&parser))
        abort();
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = syntax_error(&c, &parser);
        yaml_parser_delete(&parser);
        goto out;
    }
    have_doc = 1;
    c.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || is_null(root)) {
        rc = fail(&c, NULL, "no SSH Node Pools defined (see docs/ssh-node-pools.md)");
    } else if (root->type != YAML_MAPPING_NODE) {
        rc = fail(&c, root, "expected a mapping of pool names to pools, got %s", type_name(root));
    } else if ((rc = check_keys(&c, root, "pools")) == 0) {
        size_t n = (size_t)(root->data.mapping.pairs.top - root->data.mapping.pairs.start);
        ps = core_xcalloc(1, sizeof(*ps));
        ps->file = core_xstrdup(c.file);
        if (n > CORE_SSH_MAX_POOLS) {
            rc = fail(&c, root, "%zu pools, at most %d", n, CORE_SSH_MAX_POOLS);
            goto out_parser;
        }
        ps->pools = core_xcalloc(n, sizeof(*ps->pools));
        for (size_t i = 0; i < n && rc == 0; i++) {
            yaml_node_pair_t *p = &root->data.mapping.pairs.start[i];
            rc = parse_pool(&c, node(&c, p->key), node(&c, p->value), &ps->pools[i]);
            ps->n_pools++;
        }
        if (rc == 0)
            rc = check_unique_hosts(&c, ps);
    }
out_parser:
    yaml_parser_delete(&parser);
out:
    if (have_doc)
        yaml_document_delete(&doc);
    free(c.dir);
    free(dummy);
    if (rc) {
        core_ssh_pools_free(ps);
        return rc;
    }
    *out = ps;
    return 0;
}

char *core_ssh_pools_default_path(void)
{
    return core_home_path("ssh_node_pools.yaml");
}

int core_ssh_pools_load(const char *path, core_ssh_pools_t **out, char **err)
{
    char *p = path ? core_xstrdup(path) : core_ssh_pools_default_path();
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = core_read_file(p, MAX_FILE_BYTES, &text, &len);
    if (rc < 0) {
        if (err)
            *err = rc == -ENOENT ? core_xasprintf("SSH Node Pools file not found: %s", p)
                                 : core_xasprintf("%s: %s", p, core_strerror(rc));
        free(p);
        return rc;
    }
    rc = core_ssh_pools_parse(text, len, p, out, err);
    free(text);
    free(p);
    return rc;
}

const core_ssh_pool_t *core_ssh_pools_find(const core_ssh_pools_t *ps, const char *name)
{
    for (size_t i = 0; ps && i < ps->n_pools; i++)
        if (!strcmp(ps->pools[i].name, name))
            return &ps->pools[i];
    return NULL;
}

void core_ssh_pools_free(core_ssh_pools_t *ps)
{
    if (!ps)
        return;
    for (size_t i = 0; i < ps->n_pools; i++) {
        core_ssh_pool_t *p = &ps->pools[i];
        for (size_t j = 0; j < p->n_hosts; j++) {
            free(p->hosts[j].host);
            free(p->hosts[j].user);
            free(p->hosts[j].identity_file);
        }
        free(p->hosts);
        free(p->name);
    }
    free(ps->pools);
    free(ps->file);
    free(ps);
}
