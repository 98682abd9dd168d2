/*
 * sky-lb's response path over bytes a replica sends: llhttp (strict), interim
 * (1xx) heads followed by the final one, lb_head_scan and lb_head_rewrite of
 * each head as up_process does (Connection for the client, Transfer-Encoding
 * dropped when de-chunking for an HTTP/1.0 client, Upgrade kept after an
 * accepted 101), then the body spans up to the end of the message.
 *
 * Input: one option byte (the request was HEAD, the client speaks HTTP/1.0,
 * it asked to upgrade, the client connection closes, few iovecs), then the
 * stream. Oracle: each forwarded head is one valid response head for llhttp
 * with the same status, without hop-by-hop fields, with the Connection the
 * LB chose, and a de-chunked body adds up to what the chunks carried.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#define FUZZ_WITH_UV
#include "fuzz_util.h"
#include "lb.h"

typedef struct st {
    int ev, is_head, dechunk;
    uint64_t body;
} st_t;

static int on_hc(llhttp_t *p)
{
    st_t *st = p->data;
    st->ev |= 1;
    if (st->is_head && p->status_code >= 200)
        return 1; /* no body, whatever the framing says (RFC 9110 9.3.2) */
    return HPE_PAUSED;
}

static int on_mc(llhttp_t *p)
{
    ((st_t *)p->data)->ev |= 2;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    (void)at;
    ((st_t *)p->data)->body += len;
    return 0;
}

static lb_hdr_t hdrs[LB_HDRS_FOR(LB_MAX_HEAD_CAP)];
static lb_hdr_t hdrs2[LB_HDRS_FOR(2 * LB_BLOCK_SIZE)];
static char spill[LB_BLOCK_SIZE];
static char out[2 * LB_BLOCK_SIZE];

static int name_is(const lb_head_t *h, const lb_hdr_t *hd, const char *n)
{
    return hd->name_len == strlen(n) && strncasecmp(h->base + hd->line_off, n, hd->name_len) == 0;
}

static void check_forwarded(const uv_buf_t *iov, size_t n_iov, int status, const lb_rewrite_t *rw)
{
    size_t len = fuzz_concat(iov, n_iov, out, sizeof(out));
    st_t st = {0};
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_headers_complete = on_hc;
    llhttp_t p;
    llhttp_init(&p, HTTP_RESPONSE, &s);
    p.data = &st;
    llhttp_errno_t e = llhttp_execute(&p, out, len);
    FUZZ_CHECK(e == HPE_PAUSED && (st.ev & 1) && p.status_code == status);
    FUZZ_CHECK(llhttp_get_error_pos(&p) == out + len);
    lb_head_t h;
    FUZZ_CHECK(lb_head_scan(out, len, hdrs2, LB_HDRS_FOR(len), &h) == 0);
    int conns = 0;
    for (size_t i = 0; i < h.n; i++) {
        const lb_hdr_t *hd = &h.hdrs[i];
        FUZZ_CHECK(!name_is(&h, hd, "keep-alive") && !name_is(&h, hd, "te") &&
                   !name_is(&h, hd, "trailer") && !name_is(&h, hd, "proxy-connection"));
        if (name_is(&h, hd, "upgrade"))
            FUZZ_CHECK(rw->upgrade);
        if (name_is(&h, hd, "transfer-encoding"))
            FUZZ_CHECK(!rw->drop_te);
        if (name_is(&h, hd, "connection"))
            conns++;
    }
    FUZZ_CHECK(conns == (rw->conn != LB_CONN_HDR_NONE));
    FUZZ_CHECK(lb_resp_check(&h) == 0);
}

static void forward_head(const char *head, size_t hl, const llhttp_t *p, const lb_rewrite_t *rw,
                         size_t max_iov)
{
    lb_head_t h;
    while (hl > 0 && (*head == '\r' || *head == '\n')) {
        head++;
        hl--;
    }
    if (lb_head_scan(head, hl, hdrs, LB_HDRS_FOR(hl), &h) < 0 || lb_resp_check(&h) < 0)
        return; /* 502 */
    uv_buf_t iov[48];
    char extra[LB_HEAD_EXTRA];
    size_t ni, xl;
    int rc = lb_head_rewrite(&h, rw, iov, max_iov, &ni, extra, sizeof(extra), &xl, 0);
    if (rc == -ENOBUFS)
        rc = lb_head_rewrite(&h, rw, iov, 1, &ni, spill, sizeof(spill), &xl, 1);
    if (rc < 0)
        return; /* 502 */
    check_forwarded(iov, ni, p->status_code, rw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t opt = data[0];
    int http10 = opt & 2, upgrade_req = opt & 4, client_close = opt & 8;
    size_t max_iov = (opt & 16) ? 3 : 48;
    const char *buf = (const char *)data + 1;
    size -= 1;
    st_t st = {.is_head = opt & 1};
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_headers_complete = on_hc;
    s.on_message_complete = on_mc;
    s.on_body = on_body;
    llhttp_t p;
    llhttp_init(&p, HTTP_RESPONSE, &s);
    p.data = &st;
    size_t pos = 0, head_off = 0;
    int in_head = 1, head_done = 0;
    for (int guard = 0; guard < 100000; guard++) {
        st.ev = 0;
        size_t len = size - pos;
        llhttp_errno_t e = llhttp_execute(&p, buf + pos, len);
        size_t used = e == HPE_OK ? len : (size_t)(llhttp_get_error_pos(&p) - (buf + pos));
        FUZZ_CHECK(used <= len);
        if (e == HPE_PAUSED)
            llhttp_resume(&p);
        else if (e == HPE_PAUSED_UPGRADE)
            return 0; /* tunnel */
        else if (e != HPE_OK)
            return 0; /* 502, or the client connection is cut */
        pos += used;
        if (!head_done) {
            if ((st.ev & 2) && !(st.ev & 1)) {
                in_head = 1; /* the end of an interim response */
                head_off = pos;
                continue;
            }
            if (!(st.ev & 1)) {
                FUZZ_CHECK(pos == size);
                return 0;
            }
            FUZZ_CHECK(in_head);
            int status = p.status_code;
            int up101 = status == 101 && upgrade_req;
            lb_rewrite_t rw = {.is_request = 0, .upgrade = up101};
            if (status >= 200) {
                int ka = !client_close && !http10 && llhttp_should_keep_alive(&p);
                st.dechunk = http10 && !st.is_head && (p.flags & F_CHUNKED);
                rw.drop_te = st.dechunk;
                if (st.dechunk || (!st.is_head && llhttp_message_needs_eof(&p)))
                    ka = 0;
                rw.conn = ka ? LB_CONN_HDR_NONE : LB_CONN_HDR_CLOSE;
            } else if (up101) {
                rw.conn = LB_CONN_HDR_UPGRADE;
            } else if (status == 101) {
                return 0; /* 101 nobody asked for: 502 */
            }
            if (!(status < 200 && !up101 && http10))
                forward_head(buf + head_off, pos - head_off, &p, &rw, max_iov);
            if (up101)
                return 0; /* then a tunnel */
            if (status >= 200)
                head_done = 1;
            in_head = status < 200;
            if (st.ev & 2)
                return 0; /* a response to HEAD: complete */
            continue;
        }
        if (st.ev & 2)
            return 0; /* complete; the LB reuses the connection or closes it */
        if (pos == size)
            return 0;
    }
    return 0;
}
