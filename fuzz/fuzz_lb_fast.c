/*
 * sky-lb's fast path against llhttp: every head lb_resp_fast takes, llhttp
 * (strict, as the data path builds it) must read the same way: a complete
 * head of the same length, the same status and version, one Content-Length
 * of the same value, no chunking, no upgrade, and a connection that stays
 * open. The fast path may leave anything to llhttp; it may never accept
 * what llhttp would reject or frame differently (a framing differential is
 * how requests get smuggled).
 *
 * Input: the bytes a replica sends.
 */
#include <stdint.h>
#include <string.h>

#define FUZZ_WITH_UV
#include "fuzz_util.h"
#include "lb.h"

static int on_hc(llhttp_t *p)
{
    *(int *)p->data = 1;
    return HPE_PAUSED;
}

static lb_hdr_t hdrs[LB_HDRS_FOR(LB_MAX_HEAD_CAP)];
static lb_hdr_t ref[LB_HDRS_FOR(LB_MAX_HEAD_CAP)];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    lb_head_t h;
    lb_resp_fast_t f;
    if (lb_resp_fast(buf, size, hdrs, LB_HDRS_FOR(LB_MAX_HEAD_CAP), &h, &f) < 0)
        return 0;
    FUZZ_CHECK(f.head_len <= size && h.len == f.head_len);

    int seen = 0;
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_headers_complete = on_hc;
    llhttp_t p;
    llhttp_init(&p, HTTP_RESPONSE, &s);
    p.data = &seen;
    llhttp_errno_t e = llhttp_execute(&p, buf, size);
    FUZZ_CHECK(e == HPE_PAUSED && seen);
    FUZZ_CHECK(llhttp_get_error_pos(&p) == buf + f.head_len);
    FUZZ_CHECK(p.status_code == f.status && p.http_major == 1 && p.http_minor == 1);
    FUZZ_CHECK((p.flags & F_CONTENT_LENGTH) && !(p.flags & F_CHUNKED));
    FUZZ_CHECK(p.content_length == f.content_length);
    FUZZ_CHECK(!p.upgrade && llhttp_should_keep_alive(&p));

    /* The same lines as the scan of the llhttp path, which the rewrite uses. */
    lb_head_t r;
    FUZZ_CHECK(lb_head_scan(buf, f.head_len, ref, LB_HDRS_FOR(LB_MAX_HEAD_CAP), &r) == 0);
    FUZZ_CHECK(lb_resp_check(&r) == 0);
    FUZZ_CHECK(r.n == h.n && r.sl == h.sl && r.len == h.len);
    for (size_t i = 0; i < h.n; i++)
        FUZZ_CHECK(memcmp(&h.hdrs[i], &r.hdrs[i], sizeof(lb_hdr_t)) == 0);
    return 0;
}
