#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

static void *check(void *p)
{
    if (p == NULL) {
        fputs("fatal: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *core_xmalloc(size_t n)
{
    return check(malloc(n ? n : 1));
}

void *core_xcalloc(size_t nmemb, size_t n)
{
    return check(calloc(nmemb ? nmemb : 1, n ? n : 1));
}

void *core_xrealloc(void *p, size_t n)
{
    return check(realloc(p, n ? n : 1));
}

char *core_xstrdup(const char *s)
{
    return check(strdup(s));
}

char *core_xstrndup(const char *s, size_t n)
{
    return check(strndup(s, n));
}

char *core_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int r = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (r < 0)
        check(NULL);
    return s;
}
