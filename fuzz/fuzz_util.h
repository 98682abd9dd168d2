#ifndef FUZZ_FUZZ_UTIL_H
#define FUZZ_FUZZ_UTIL_H
/*
 * Shared by the harnesses (each binary includes it from its one harness file).
 * FUZZ_CHECK aborts with the failed condition, so libFuzzer keeps the input.
 */
#include <netdb.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed\n", __FILE__, __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#ifdef FUZZ_WITH_UV
#include <string.h>
#include <uv.h>
/* The forwarded head as one buffer: <iov> concatenated into <out>. */
static inline size_t fuzz_concat(const uv_buf_t *iov, size_t n, char *out, size_t cap)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(len + iov[i].len <= cap);
        memcpy(out + len, iov[i].base, iov[i].len);
        len += iov[i].len;
    }
    return len;
}
#endif

#ifdef FUZZ_NO_DNS
/* Host names in fuzzed URLs must not reach a resolver (no network here, and a
 * lookup per input would make the harness crawl): this definition takes the
 * place of libc's for the whole binary. */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    (void)node;
    (void)service;
    (void)hints;
    *res = NULL;
    return EAI_NONAME;
}
#endif

#endif
