#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/dotenv.h"
#include "core/err.h"
#include "core/mem.h"
#include "core/util.h"

#define MAX_FILE (1u << 20)

typedef struct {
    const char *p, *end;
    int line;
} cursor_t;

static int fail(char **err, const char *filename, int line, const char *what)
{
    *err = core_xasprintf("%s:%d: %s", filename, line, what);
    return CORE_ESPEC;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static int is_key_char(char c, int first)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

static void skip_blanks(cursor_t *c)
{
    while (c->p < c->end && is_blank(*c->p))
        c->p++;
}

/* Past the end of the line: a comment or nothing may be left on it. */
static int end_of_line(cursor_t *c)
{
    skip_blanks(c);
    if (c->p < c->end && *c->p == '#')
        while (c->p < c->end && *c->p != '\n')
            c->p++;
    if (c->p < c->end && *c->p != '\n')
        return -1;
    if (c->p < c->end) {
        c->p++;
        c->line++;
    }
    return 0;
}

/* Appends one byte to the growing value. */
static void put(char **v, size_t *n, size_t *cap, char ch)
{
    if (*n + 1 >= *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = core_xrealloc(*v, *cap);
    }
    (*v)[(*n)++] = ch;
    (*v)[*n] = '\0';
}

static int quoted(cursor_t *c, char q, char **v, size_t *n, size_t *cap)
{
    c->p++; /* the opening quote */
    while (c->p < c->end && *c->p != q) {
        char ch = *c->p++;
        if (ch == '\n')
            c->line++;
        /* Unknown escapes stay as written, the backslash included. */
        if (ch == '\\' && q == '"' && c->p < c->end && strchr("nrt\\\"", *c->p)) {
            ch = *c->p++;
            ch = ch == 'n' ? '\n' : ch == 't' ? '\t' : ch == 'r' ? '\r' : ch;
        }
        put(v, n, cap, ch);
    }
    if (c->p == c->end)
        return -1;
    c->p++; /* the closing quote */
    return 0;
}

static void unquoted(cursor_t *c, char **v, size_t *n, size_t *cap)
{
    const char *s = c->p;
    while (c->p < c->end && *c->p != '\n' && !(*c->p == '#' && c->p > s && is_blank(c->p[-1])))
        c->p++;
    const char *e = c->p;
    while (e > s && is_blank(e[-1]))
        e--;
    for (; s < e; s++)
        put(v, n, cap, *s);
}

int core_dotenv_parse(const char *text, size_t len, const char *filename, core_dotenv_fn fn,
                      void *arg, char **err)
{
    cursor_t c = {text, text + len, 1};
    char *key = NULL, *val = NULL;
    size_t n, cap = 0;
    int rc = 0;

    if (memchr(text, '\0', len))
        return fail(err, filename, 1, "the file contains a NUL byte");
    while (c.p < c.end) {
        skip_blanks(&c);
        if (end_of_line(&c) == 0)
            continue; /* blank or comment line */
        int line = c.line;
        if (c.end - c.p > 7 && memcmp(c.p, "export", 6) == 0 && is_blank(c.p[6])) {
            c.p += 6;
            skip_blanks(&c);
        }
        const char *k = c.p;
        while (c.p < c.end && is_key_char(*c.p, c.p == k))
            c.p++;
        size_t klen = (size_t)(c.p - k);
        skip_blanks(&c);
        if (klen == 0 || c.p == c.end || *c.p != '=') {
            rc = fail(err, filename, line, "expected KEY=VALUE (a key is letters, digits and _)");
            goto out;
        }
        c.p++;
        skip_blanks(&c);
        free(key);
        key = core_xstrndup(k, klen);
        n = 0;
        if (val)
            val[0] = '\0';
        if (c.p < c.end && (*c.p == '"' || *c.p == '\'')) {
            if (quoted(&c, *c.p, &val, &n, &cap) < 0) {
                rc = fail(err, filename, line, "the quoted value is never closed");
                goto out;
            }
            if (end_of_line(&c) < 0) {
                rc = fail(err, filename, c.line, "unexpected text after the closing quote");
                goto out;
            }
        } else {
            unquoted(&c, &val, &n, &cap);
            end_of_line(&c);
        }
        if ((rc = fn(key, val ? val : "", arg)) < 0)
            goto out;
    }
out:
    free(key);
    free(val);
    return rc;
}

int core_dotenv_load(const char *path, core_dotenv_fn fn, void *arg, char **err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = core_read_file(path, MAX_FILE, &text, &len);

    if (rc < 0) {
        *err = core_xasprintf("cannot read %s: %s", path,
                              rc == -EFBIG ? "larger than 1 MiB" : core_strerror(rc));
        return rc;
    }
    rc = core_dotenv_parse(text, len, path, fn, arg, err);
    free(text);
    return rc;
}
