#ifndef CORE_MEM_H
#define CORE_MEM_H

#include <stddef.h>

/* Allocation failure aborts (h2o_mem_alloc): the callers never test for NULL. */
void *core_xmalloc(size_t n);
void *core_xcalloc(size_t nmemb, size_t n);
void *core_xrealloc(void *p, size_t n);
char *core_xstrdup(const char *s);
char *core_xstrndup(const char *s, size_t n);
/* Caller frees the returned string. */
char *core_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define CORE_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
