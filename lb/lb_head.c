#include <errno.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>

#include "lb.h"

int lb_head_scan(const char *head, size_t len, size_t *start_line_len, lb_hdr_t *hdrs, size_t max,
                 size_t *n)
{
    const char *p = head, *end = head + len;
    const char *nl = memchr(p, '\n', len);
    if (!nl || len > 65535)
        return -EINVAL;
    *start_line_len = (size_t)(nl + 1 - head);
    p = nl + 1;
    *n = 0;
    while (p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return -EINVAL;
        size_t ll = (size_t)(nl - p); /* without LF */
        if (ll > 0 && p[ll - 1] == '\r')
            ll--;
        if (ll == 0)
            break; /* the blank line */
        if (*p == ' ' || *p == '\t')
            return -EINVAL; /* obsolete line folding */
        const char *colon = memchr(p, ':', ll);
        if (!colon || colon == p)
            return -EINVAL;
        for (const char *q = p; q < colon; q++)
            if (*q == ' ' || *q == '\t')
                return -EINVAL;
        if (*n >= max)
            return -ENOSPC;
        const char *v = colon + 1, *ve = p + ll;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        lb_hdr_t *h = &hdrs[(*n)++];
        h->line_off = (uint16_t)(p - head);
        h->line_len = (uint16_t)(nl + 1 - p);
        h->name_len = (uint16_t)(colon - p);
        h->val_off = (uint16_t)(v - head);
        h->val_len = (uint16_t)(ve - v);
        p = nl + 1;
    }
    return 0;
}

static int name_is(const char *head, const lb_hdr_t *h, const char *name, size_t nl)
{
    return h->name_len == nl && strncasecmp(head + h->line_off, name, nl) == 0;
}
#define NAME_IS(h, lit) name_is(head, (h), lit, sizeof(lit) - 1)

/* Does the comma-separated list <v> contain token <tok> (case-insensitive)? */
static int list_has(const char *v, size_t vl, const char *tok, size_t tl)
{
    size_t i = 0;
    while (i < vl) {
        while (i < vl && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < vl && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (i - s == tl && strncasecmp(v + s, tok, tl) == 0)
            return 1;
        while (i < vl && v[i] != ',')
            i++;
    }
    return 0;
}

#define LB_HEAD_MAX_HDRS 256

int lb_head_rewrite(const char *head, size_t len, const lb_rewrite_t *rw, uv_buf_t *iov,
                    size_t max_iov, size_t *n_iov, char *extra, size_t *extra_len)
{
    lb_hdr_t hdrs[LB_HEAD_MAX_HDRS];
    size_t sl, n, ni = 0, xl = 0;
    int r = lb_head_scan(head, len, &sl, hdrs, LB_HEAD_MAX_HDRS, &n);
    if (r < 0)
        return r;
    /* Headers named in Connection are hop-by-hop too (RFC 9110 7.6.1). */
    const lb_hdr_t *conn_hdrs[8];
    size_t n_conn = 0;
    for (size_t i = 0; i < n; i++)
        if (NAME_IS(&hdrs[i], "connection") && n_conn < 8)
            conn_hdrs[n_conn++] = &hdrs[i];
    int xff_last = -1;
    if (rw->is_request)
        for (size_t i = 0; i < n; i++)
            if (NAME_IS(&hdrs[i], "x-forwarded-for"))
                xff_last = (int)i;

    size_t run_start = 0, run_end = sl; /* current run of kept bytes */
#define FLUSH_RUN()                                                                                \
    do {                                                                                           \
        if (run_end > run_start) {                                                                 \
            if (ni >= max_iov)                                                                     \
                return -ENOSPC;                                                                    \
            iov[ni++] = uv_buf_init((char *)head + run_start, (unsigned)(run_end - run_start));    \
        }                                                                                          \
    } while (0)
#define EMIT_EXTRA(...)                                                                            \
    do {                                                                                           \
        int k_ = snprintf(extra + xl, LB_HEAD_EXTRA - xl, __VA_ARGS__);                            \
        if (k_ < 0 || (size_t)k_ >= LB_HEAD_EXTRA - xl || ni >= max_iov)                           \
            return -ENOSPC;                                                                        \
        iov[ni++] = uv_buf_init(extra + xl, (unsigned)k_);                                         \
        xl += (size_t)k_;                                                                          \
    } while (0)

    for (size_t i = 0; i < n; i++) {
        const lb_hdr_t *h = &hdrs[i];
        int drop = 0;
        if (NAME_IS(h, "connection") || NAME_IS(h, "keep-alive") ||
            NAME_IS(h, "proxy-connection") || NAME_IS(h, "te") || NAME_IS(h, "trailer"))
            drop = 1;
        else if (NAME_IS(h, "upgrade"))
            drop = !rw->upgrade;
        else if (rw->is_request && NAME_IS(h, "x-forwarded-proto"))
            drop = 1;
        else if (rw->drop_te && NAME_IS(h, "transfer-encoding"))
            drop = 1;
        else if (!NAME_IS(h, "transfer-encoding") && !NAME_IS(h, "content-length") &&
                 !NAME_IS(h, "host")) {
            for (size_t c = 0; c < n_conn && !drop; c++)
                drop = list_has(head + conn_hdrs[c]->val_off, conn_hdrs[c]->val_len,
                                head + h->line_off, h->name_len);
        }
        if (drop) {
            FLUSH_RUN();
            run_start = run_end = (size_t)h->line_off + h->line_len;
        } else if ((int)i == xff_last) {
            /* Keep the client's list and append our peer to it. */
            run_end = (size_t)h->val_off + h->val_len;
            FLUSH_RUN();
            EMIT_EXTRA(", %s\r\n", rw->client_ip ? rw->client_ip : "unknown");
            run_start = run_end = (size_t)h->line_off + h->line_len;
        } else {
            run_end = (size_t)h->line_off + h->line_len;
        }
    }
    /* Nothing to append: the original blank line ends the head, so the
     * head (and a body after it) stays one contiguous piece. */
    size_t blank = n ? (size_t)hdrs[n - 1].line_off + hdrs[n - 1].line_len : sl;
    if (!rw->is_request && rw->conn == LB_CONN_HDR_NONE && run_end == blank) {
        run_end = len;
        FLUSH_RUN();
        *n_iov = ni;
        *extra_len = xl;
        return 0;
    }
    FLUSH_RUN();
    if (rw->is_request) {
        if (xff_last < 0)
            EMIT_EXTRA("X-Forwarded-For: %s\r\nX-Forwarded-Proto: %s\r\n",
                       rw->client_ip ? rw->client_ip : "unknown", rw->tls ? "https" : "http");
        else
            EMIT_EXTRA("X-Forwarded-Proto: %s\r\n", rw->tls ? "https" : "http");
    }
    switch (rw->conn) {
    case LB_CONN_HDR_CLOSE:
        EMIT_EXTRA("Connection: close\r\n");
        break;
    case LB_CONN_HDR_KEEPALIVE:
        EMIT_EXTRA("Connection: keep-alive\r\n");
        break;
    case LB_CONN_HDR_UPGRADE:
        EMIT_EXTRA("Connection: upgrade\r\n");
        break;
    default:
        break;
    }
    if (ni >= max_iov)
        return -ENOSPC;
    iov[ni++] = uv_buf_init((char *)"\r\n", 2);
    *n_iov = ni;
    *extra_len = xl;
    return 0;
#undef FLUSH_RUN
#undef EMIT_EXTRA
}
