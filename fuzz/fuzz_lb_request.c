/*
 * sky-lb's request path over bytes a client sends: llhttp (strict, as the LB
 * builds it), the empty-line skip, lb_head_scan, lb_req_check, lb_head_rewrite
 * (zero-copy, and the copy fallback), then the body framing up to the next
 * pipelined request, as lb_conn.c's conn_process drives them.
 *
 * Input: one option byte (small limits, TLS, few iovecs), then the stream.
 * Oracle: every head the LB would forward is itself one valid HTTP/1.x
 * request head for llhttp, with the same method, one Host for HTTP/1.1, none
 * of the hop-by-hop fields (RFC 9110 7.6.1), no '_' in names, and the
 * client's address last in X-Forwarded-For.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#define FUZZ_WITH_UV
#include "fuzz_util.h"
#include "lb.h"

typedef struct st {
    int ev;
} st_t;

static int on_hc(llhttp_t *p)
{
    ((st_t *)p->data)->ev |= 1;
    return HPE_PAUSED;
}

static int on_mc(llhttp_t *p)
{
    ((st_t *)p->data)->ev |= 2;
    return HPE_PAUSED;
}

static lb_hdr_t hdrs[LB_HDRS_FOR(LB_MAX_HEAD_CAP)];
static lb_hdr_t hdrs2[LB_HDRS_FOR(LB_MAX_HEAD_CAP + LB_BLOCK_SIZE)];
static char spill[LB_BLOCK_SIZE];
static char out[2 * LB_BLOCK_SIZE];

#define CLIENT_IP "192.0.2.7"

static int name_is(const lb_head_t *h, const lb_hdr_t *hd, const char *n)
{
    return hd->name_len == strlen(n) && strncasecmp(h->base + hd->line_off, n, hd->name_len) == 0;
}

static void check_forwarded(const uv_buf_t *iov, size_t n_iov, const llhttp_t *orig,
                            const lb_req_info_t *info)
{
    size_t len = fuzz_concat(iov, n_iov, out, sizeof(out));
    st_t st = {0};
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_headers_complete = on_hc;
    llhttp_t p;
    llhttp_init(&p, HTTP_REQUEST, &s);
    p.data = &st;
    llhttp_errno_t e = llhttp_execute(&p, out, len);
    FUZZ_CHECK(e == HPE_PAUSED && (st.ev & 1));
    FUZZ_CHECK(llhttp_get_error_pos(&p) == out + len); /* exactly one head */
    FUZZ_CHECK(p.method == orig->method && p.http_major == 1 &&
               p.http_minor == orig->http_minor);
    lb_head_t h;
    FUZZ_CHECK(lb_head_scan(out, len, hdrs2, LB_HDRS_FOR(len), &h) == 0);
    int hosts = 0, xff = -1;
    for (size_t i = 0; i < h.n; i++) {
        const lb_hdr_t *hd = &h.hdrs[i];
        FUZZ_CHECK(!name_is(&h, hd, "keep-alive") && !name_is(&h, hd, "te") &&
                   !name_is(&h, hd, "trailer") && !name_is(&h, hd, "proxy-connection"));
        FUZZ_CHECK(!memchr(h.base + hd->line_off, '_', hd->name_len));
        if (name_is(&h, hd, "connection"))
            FUZZ_CHECK(orig->upgrade && hd->val_len == 7); /* only our "upgrade" */
        if (name_is(&h, hd, "upgrade"))
            FUZZ_CHECK(orig->upgrade);
        if (name_is(&h, hd, "host"))
            hosts++;
        if (name_is(&h, hd, "x-forwarded-for"))
            xff = (int)i;
    }
    FUZZ_CHECK(hosts == 1 || (hosts == 0 && orig->http_minor == 0 && !info->absolute));
    FUZZ_CHECK(xff >= 0);
    const lb_hdr_t *x = &h.hdrs[xff];
    size_t il = strlen(CLIENT_IP);
    FUZZ_CHECK(x->val_len >= il && memcmp(h.base + x->val_off + x->val_len - il, CLIENT_IP, il) == 0);
}

static void forward_head(const char *head, size_t hl, const llhttp_t *p, uint8_t opt)
{
    size_t max_uri = (opt & 1) ? 64 : 8192;
    size_t max_headers = (opt & 2) ? 8 : 256;
    size_t max_iov = (opt & 8) ? 3 : 48;
    lb_head_t h;
    lb_req_info_t info;
    if (lb_head_scan(head, hl, hdrs, LB_HDRS_FOR(hl), &h) < 0)
        return; /* 400 */
    lb_req_meta_t m;
    lb_req_meta_of(p, &m);
    if (lb_req_check(&h, &m, max_uri, max_headers, &info) < 0) {
        FUZZ_CHECK(info.status == 400 || info.status == 414 || info.status == 431 ||
                   info.status == 505);
        return;
    }
    lb_rewrite_t rw = {
        .is_request = 1,
        .client_ip = CLIENT_IP,
        .tls = opt & 4,
        .upgrade = p->upgrade,
        .conn = p->upgrade ? LB_CONN_HDR_UPGRADE : LB_CONN_HDR_NONE,
        .req = &info,
    };
    uv_buf_t iov[48];
    char extra[LB_HEAD_EXTRA];
    size_t ni, xl;
    int rc = lb_head_rewrite(&h, &rw, iov, max_iov, &ni, extra, sizeof(extra), &xl, 0);
    if (rc == -ENOBUFS)
        rc = lb_head_rewrite(&h, &rw, iov, 1, &ni, spill, sizeof(spill), &xl, 1);
    if (rc < 0)
        return; /* 431 */
    check_forwarded(iov, ni, p, &info);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t opt = data[0];
    const char *buf = (const char *)data + 1;
    size -= 1;
    st_t st = {0};
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_headers_complete = on_hc;
    s.on_message_complete = on_mc;
    llhttp_t p;
    llhttp_init(&p, HTTP_REQUEST, &s);
    p.data = &st;
    size_t pos = 0, head_off = 0;
    int in_head = 1;
    for (int guard = 0; guard < 100000; guard++) {
        st.ev = 0;
        size_t len = size - pos;
        llhttp_errno_t e = llhttp_execute(&p, buf + pos, len);
        size_t used = e == HPE_OK ? len : (size_t)(llhttp_get_error_pos(&p) - (buf + pos));
        FUZZ_CHECK(used <= len);
        if (e == HPE_PAUSED)
            llhttp_resume(&p);
        else if (e != HPE_OK)
            return 0; /* 400 (or, after an upgrade, a tunnel) */
        pos += used;
        if (in_head) {
            if (!(st.ev & 1))
                return 0; /* the head is not complete: more input needed */
            const char *head = buf + head_off;
            size_t hl = pos - head_off;
            while (hl > 0 && (*head == '\r' || *head == '\n')) {
                head++;
                hl--;
            }
            if (hl > LB_MAX_HEAD_CAP)
                return 0; /* 431 */
            if (p.method == HTTP_CONNECT)
                return 0; /* 400 */
            forward_head(head, hl, &p, opt);
            in_head = 0;
            continue;
        }
        if (st.ev & 2) {
            in_head = 1; /* the next pipelined request starts here */
            head_off = pos;
            continue;
        }
        if (pos == size)
            return 0;
    }
    return 0;
}
