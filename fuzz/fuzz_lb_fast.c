/*
 * sky-lb's fast paths against llhttp: every head lb_req_fast or
 * lb_resp_fast takes, llhttp (strict, as the data path builds it) must read
 * the same way: a complete head of the same length, the same method or
 * status and version, the same Content-Length (one, for a response), no
 * chunking, no upgrade, the same keep-alive; and the header lines must be
 * those lb_head_scan finds on the llhttp path. A fast path may leave
 * anything to llhttp; it may never accept what llhttp would reject or frame
 * differently (a framing differential is how requests get smuggled).
 *
 * Input: one byte (even: a request from a client, odd: a response from a
 * replica), then the bytes.
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

/* llhttp on <buf> up to the end of the first head: that head's length. */
static size_t llhttp_head(llhttp_t *p, llhttp_type_t type, const char *buf, size_t size)
{
    static int seen;
    static llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_headers_complete = on_hc;
    llhttp_init(p, type, &s);
    seen = 0;
    p->data = &seen;
    llhttp_errno_t e = llhttp_execute(p, buf, size);
    FUZZ_CHECK(e == HPE_PAUSED && seen);
    FUZZ_CHECK(!(p->flags & F_CHUNKED) && !p->upgrade);
    return (size_t)(llhttp_get_error_pos(p) - buf);
}

/* The fast path's lines are those of the llhttp path's scan. */
static void same_scan(const lb_head_t *h)
{
    lb_head_t r;
    FUZZ_CHECK(lb_head_scan(h->base, h->len, ref, LB_HDRS_FOR(LB_MAX_HEAD_CAP), &r) == 0);
    FUZZ_CHECK(r.n == h->n && r.sl == h->sl && r.len == h->len);
    for (size_t i = 0; i < h->n; i++)
        FUZZ_CHECK(memcmp(&h->hdrs[i], &r.hdrs[i], sizeof(lb_hdr_t)) == 0);
}

static void request(const char *buf, size_t size)
{
    lb_head_t h;
    lb_req_meta_t m, ref_m;
    if (lb_req_fast(buf, size, hdrs, LB_HDRS_FOR(LB_MAX_HEAD_CAP), &h, &m) < 0)
        return;
    FUZZ_CHECK(h.len <= size);
    llhttp_t p;
    FUZZ_CHECK(llhttp_head(&p, HTTP_REQUEST, buf, size) == h.len);
    lb_req_meta_of(&p, &ref_m);
    FUZZ_CHECK(m.method == ref_m.method && m.http_major == ref_m.http_major &&
               m.http_minor == ref_m.http_minor && m.keep_alive == ref_m.keep_alive &&
               m.upgrade == ref_m.upgrade && m.has_cl == ref_m.has_cl &&
               m.content_length == ref_m.content_length);
    same_scan(&h);
}

static void response(const char *buf, size_t size)
{
    lb_head_t h;
    lb_resp_fast_t f;
    if (lb_resp_fast(buf, size, hdrs, LB_HDRS_FOR(LB_MAX_HEAD_CAP), &h, &f) < 0)
        return;
    FUZZ_CHECK(f.head_len <= size && h.len == f.head_len);
    llhttp_t p;
    FUZZ_CHECK(llhttp_head(&p, HTTP_RESPONSE, buf, size) == f.head_len);
    FUZZ_CHECK(p.status_code == f.status && p.http_major == 1 && p.http_minor == 1);
    FUZZ_CHECK((p.flags & F_CONTENT_LENGTH) && p.content_length == f.content_length);
    FUZZ_CHECK(llhttp_should_keep_alive(&p) == f.keep_alive);
    same_scan(&h);
    FUZZ_CHECK(lb_resp_check(&h) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        response((const char *)data + 1, size - 1);
    else
        request((const char *)data + 1, size - 1);
    return 0;
}
