#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lb.h"

/*
 * Request and response heads as bytes: scanning, the checks RFC 9110/9112
 * ask of a server or gateway that llhttp does not make, and the rewrite into
 * the forwarded head. Pure functions (no loop, no allocation), so that the
 * fuzz harnesses in fuzz/ drive exactly what the data path runs.
 */

/*
 * Header names are recognised by loading them a word at a time with bit
 * 0x20 set: that lower-cases an ASCII letter and leaves '-' alone, and is
 * exact for the names below (letters and '-') because names with a control
 * byte, the only other bytes that could alias '-', are never compared.
 */
static inline uint64_t ld8(const char *s)
{
    uint64_t v;
    memcpy(&v, s, 8);
    return v;
}
static inline uint32_t ld4(const char *s)
{
    uint32_t v;
    memcpy(&v, s, 4);
    return v;
}
static inline uint16_t ld2(const char *s)
{
    uint16_t v;
    memcpy(&v, s, 2);
    return v;
}

/* <s> (<n> bytes, no control byte) is the lower-case <lit> (<ln> >= 2 bytes). */
static inline int name_eq(const char *s, size_t n, const char *lit, size_t ln)
{
    if (n != ln)
        return 0;
    if (n >= 8) {
        size_t i = 0;
        for (; i + 8 <= n; i += 8)
            if ((ld8(s + i) | 0x2020202020202020ull) != ld8(lit + i))
                return 0;
        return i == n || (ld8(s + n - 8) | 0x2020202020202020ull) == ld8(lit + n - 8);
    }
    if (n >= 4)
        return (ld4(s) | 0x20202020u) == ld4(lit) &&
               (ld4(s + n - 4) | 0x20202020u) == ld4(lit + n - 4);
    return (uint16_t)(ld2(s) | 0x2020u) == ld2(lit) &&
           (uint16_t)(ld2(s + n - 2) | 0x2020u) == ld2(lit + n - 2);
}

#define IS(lit) name_eq(name, n, lit, sizeof(lit) - 1)

/* Which header sky-lb acts on <name> is: by its first letter, then the
 * length, so that most names cost one or two compares. */
static uint8_t hdr_kind(const char *name, size_t n)
{
    if (n < 2)
        return LB_H_OTHER;
    switch (name[0] | 0x20) {
    case 'c':
        if (IS("connection"))
            return LB_H_CONNECTION;
        if (IS("content-length"))
            return LB_H_CONTENT_LENGTH;
        break;
    case 'h':
        if (IS("host"))
            return LB_H_HOST;
        break;
    case 'k':
        if (IS("keep-alive"))
            return LB_H_KEEP_ALIVE;
        break;
    case 'p':
        if (IS("proxy-connection"))
            return LB_H_PROXY_CONNECTION;
        break;
    case 't':
        if (IS("te"))
            return LB_H_TE;
        if (IS("trailer"))
            return LB_H_TRAILER;
        if (IS("transfer-encoding"))
            return LB_H_TRANSFER_ENCODING;
        break;
    case 'u':
        if (IS("upgrade"))
            return LB_H_UPGRADE;
        break;
    case 'x':
        if (IS("x-forwarded-for"))
            return LB_H_X_FORWARDED_FOR;
        if (IS("x-forwarded-proto"))
            return LB_H_X_FORWARDED_PROTO;
        break;
    default:
        break;
    }
    return LB_H_OTHER;
}
#undef IS

/* What a byte means to the header-name scan (0: an ordinary name byte). */
enum { NB_COLON = 1, NB_END = 2, NB_UNDERSCORE = 4, NB_CTL = 8 };
static const uint8_t name_byte[256] = {
    [0x00 ... 0x08] = NB_CTL, [0x0b ... 0x1f] = NB_CTL, [0x7f] = NB_CTL,
    ['\t'] = NB_END, ['\n'] = NB_END, [' '] = NB_END, /* no colon, or whitespace before it */
    [':'] = NB_COLON, ['_'] = NB_UNDERSCORE,
};

/*
 * Records one header line of the head at <base>: the name from <line> to
 * <colon>, the value up to <ve> (before its CRLF or LF) without the
 * surrounding whitespace, the next line at <next>. <classify>: the name may
 * be one sky-lb acts on (it has no control byte). Shared by lb_head_scan
 * and the fast path, which must record lines the same way.
 */
static inline lb_hdr_t *hdr_record(lb_hdr_t *hd, const char *base, const char *line,
                                   const char *colon, const char *ve, const char *next,
                                   int classify, int underscore)
{
    const char *v = colon + 1;
    while (v < ve && (*v == ' ' || *v == '\t'))
        v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    hd->line_off = (uint16_t)(line - base);
    hd->line_len = (uint16_t)(next - line);
    hd->name_len = (uint16_t)(colon - line);
    hd->val_off = (uint16_t)(v - base);
    hd->val_len = (uint16_t)(ve - v);
    hd->kind = classify ? hdr_kind(line, hd->name_len) : LB_H_OTHER;
    hd->underscore = (uint8_t)underscore;
    return hd;
}

/* Where the blank line that ends <h> starts. */
static size_t head_blank(const lb_head_t *h)
{
    return h->n ? (size_t)h->hdrs[h->n - 1].line_off + h->hdrs[h->n - 1].line_len : h->sl;
}

int lb_head_scan(const char *head, size_t len, lb_hdr_t *hdrs, size_t max, lb_head_t *out)
{
    const char *p = head, *end = head + len;
    if (len > 65535)
        return -EINVAL;
    const char *nl = memchr(p, '\n', len);
    if (!nl)
        return -EINVAL;
    out->base = head;
    out->len = len;
    out->hdrs = hdrs;
    out->sl = (size_t)(nl + 1 - head);
    out->n = 0;
    p = nl + 1;
    /* Lines end at an LF: none can end past the last one, so the loops below
     * need no other bound. */
    const char *lim = head[len - 1] == '\n' ? end : (const char *)memrchr(head, '\n', len) + 1;
    while (p < end) {
        if (p >= lim)
            return -EINVAL; /* a last line without its LF */
        if (*p == '\n' || (*p == '\r' && p[1] == '\n'))
            break; /* the blank line */
        if (*p == ' ' || *p == '\t')
            return -EINVAL; /* obsolete line folding (RFC 9112 5.2) */
        /* The name, in one pass: up to the colon, which must come before the
         * end of the line, with no whitespace before it (RFC 9112 5.1). */
        const char *q = p;
        unsigned seen = 0;
        for (;; q++) {
            uint8_t k = name_byte[(unsigned char)*q];
            if (k == 0)
                continue;
            if (k & NB_COLON)
                break;
            if (k & NB_END)
                return -EINVAL;
            seen |= k;
        }
        if (q == p)
            return -EINVAL;
        const char *colon = q;
        nl = memchr(colon, '\n', (size_t)(lim - colon));
        if (out->n >= max)
            return -ENOSPC;
        const char *ve = nl > colon + 1 && nl[-1] == '\r' ? nl - 1 : nl;
        hdr_record(&hdrs[out->n++], head, p, colon, ve, nl + 1, !(seen & NB_CTL),
                   (seen & NB_UNDERSCORE) != 0);
        p = nl + 1;
    }
    return 0;
}

/* The options of every Connection field (RFC 9110 7.6.1): at most <max>
 * tokens into <tok>; -E2BIG past that, which bounds the work per header. */
typedef struct lb_tok {
    const char *p;
    size_t n;
} lb_tok_t;

#define LB_MAX_CONN_TOKENS 64

static int conn_tokens(const lb_head_t *h, lb_tok_t *tok, size_t max)
{
    const char *head = h->base;
    size_t k = 0;
    for (size_t c = 0; c < h->n; c++) {
        const lb_hdr_t *hd = &h->hdrs[c];
        if (hd->kind != LB_H_CONNECTION)
            continue;
        const char *v = head + hd->val_off;
        size_t vl = hd->val_len, i = 0;
        while (i < vl) {
            while (i < vl && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
                i++;
            size_t s = i;
            while (i < vl && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
                i++;
            if (i > s) {
                if (k == max)
                    return -E2BIG;
                tok[k++] = (lb_tok_t){v + s, i - s};
            }
            while (i < vl && v[i] != ',')
                i++;
        }
    }
    return (int)k;
}

/* unreserved / sub-delims / pct-encoded's '%' (RFC 3986 3.2.2 reg-name) */
static const uint8_t reg_name_byte[256] = {
    ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['0' ... '9'] = 1, ['-'] = 1, ['.'] = 1, ['_'] = 1,
    ['~'] = 1, ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1,
    ['+'] = 1, [','] = 1, [';'] = 1, ['='] = 1, ['%'] = 1,
};

/* uri-host [ ":" port ] (RFC 9110 4.2.3, RFC 3986 3.2.2); <empty_ok> for a Host
 * field sent with a target that has no authority (RFC 9112 3.2). */
static int authority_ok(const char *s, size_t n, int empty_ok)
{
    size_t i = 0;
    if (n == 0)
        return empty_ok;
    if (s[0] == '[') {
        while (i < n && s[i] != ']') {
            char ch = s[i];
            if (i > 0 && !(ch == ':' || ch == '.' || (ch >= '0' && ch <= '9') ||
                           (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
                return 0;
            i++;
        }
        if (i == n || i < 2)
            return 0;
        i++;
    } else {
        for (; i < n && s[i] != ':'; i++)
            if (!reg_name_byte[(unsigned char)s[i]])
                return 0;
        if (i == 0)
            return 0;
    }
    if (i == n)
        return 1;
    if (s[i] != ':')
        return 0;
    for (i++; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

int lb_req_check(const lb_head_t *h, const lb_req_meta_t *p, size_t max_uri, size_t max_headers,
                 lb_req_info_t *o)
{
    const char *head = h->base;
    memset(o, 0, sizeof(*o));
#define REJECT(code, reason)                                                                       \
    do {                                                                                           \
        o->status = (code);                                                                        \
        o->why = (reason);                                                                         \
        return -EINVAL;                                                                            \
    } while (0)
    if (h->n > max_headers)
        REJECT(431, "too many header fields"); /* RFC 6585 5 */
    /* The request line as llhttp accepted it: method SP+ target SP+ version. */
    size_t el = h->sl;
    while (el > 0 && (head[el - 1] == '\n' || head[el - 1] == '\r'))
        el--;
    size_t i = 0;
    while (i < el && head[i] != ' ')
        i++;
    o->method_len = (uint16_t)i;
    size_t sp1 = 0;
    while (i < el && head[i] == ' ')
        i++, sp1++;
    size_t t0 = i;
    while (i < el && head[i] != ' ')
        i++;
    size_t tl = i - t0;
    size_t sp2 = 0;
    while (i < el && head[i] == ' ')
        i++, sp2++;
    if (p->http_major == 0)
        REJECT(400, "HTTP/0.9 request"); /* HAProxy too; nginx answers in 0.9 */
    if (p->http_major != 1)
        REJECT(505, "HTTP major version is not 1"); /* RFC 9110 15.6.6, as nginx */
    if (tl > max_uri)
        REJECT(414, "request-target too long"); /* RFC 9110 15.5.15 */
    if (tl == 0 || el - i != 8)
        REJECT(400, "malformed request line");
    o->target_off = (uint16_t)t0;
    o->target_len = (uint16_t)tl;
    /* RFC 9112 3: one SP between the parts; a recipient may accept more, and
     * then must not forward the odd spacing (nginx and HAProxy rebuild it). */
    o->respace = sp1 != 1 || sp2 != 1;
    o->http10 = p->http_minor == 0;
    const char *t = head + t0;
    if (tl == 1 && t[0] == '*') {
        if (p->method != HTTP_OPTIONS)
            REJECT(400, "asterisk-form for a method other than OPTIONS"); /* RFC 9112 3.2.4 */
    } else if (t[0] != '/') {
        /* absolute-form (RFC 9112 3.2.2): http(s)://authority[path] */
        size_t s = 0;
        if (tl > 7 && strncasecmp(t, "http://", 7) == 0)
            s = 7;
        else if (tl > 8 && strncasecmp(t, "https://", 8) == 0)
            s = 8;
        else
            REJECT(400, "request-target is neither origin-form nor absolute-form");
        size_t a = s;
        while (a < tl && t[a] != '/' && t[a] != '?')
            a++;
        if (memchr(t + s, '@', a - s))
            REJECT(400, "userinfo in the request-target"); /* RFC 9110 4.2.4 */
        if (!authority_ok(t + s, a - s, 0))
            REJECT(400, "invalid authority in the request-target");
        o->absolute = 1;
        o->auth_off = (uint16_t)(t0 + s);
        o->auth_len = (uint16_t)(a - s);
        o->target_off = (uint16_t)(t0 + a);
        o->target_len = (uint16_t)(tl - a);
    }
    int n_host = 0, te = 0;
    for (size_t k = 0; k < h->n; k++) {
        const lb_hdr_t *hd = &h->hdrs[k];
        if (hd->kind == LB_H_HOST) {
            n_host++;
            if (!authority_ok(head + hd->val_off, hd->val_len, 1))
                REJECT(400, "invalid Host"); /* RFC 9112 3.2 */
        } else if (hd->kind == LB_H_TRANSFER_ENCODING) {
            te = 1;
        }
    }
    /* RFC 9112 3.2: an HTTP/1.1 request without Host, or any with several. */
    if (n_host > 1 || (n_host == 0 && p->http_minor >= 1))
        REJECT(400, n_host ? "more than one Host" : "HTTP/1.1 request without Host");
    /* RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing (nginx: 400). */
    if (te && p->http_minor == 0)
        REJECT(400, "Transfer-Encoding in an HTTP/1.0 request");
    lb_tok_t tok[LB_MAX_CONN_TOKENS];
    if (conn_tokens(h, tok, LB_MAX_CONN_TOKENS) < 0)
        REJECT(400, "too many Connection options");
    return 0;
#undef REJECT
}

int lb_resp_check(const lb_head_t *h)
{
    const char *head = h->base;
    size_t el = h->sl;
    while (el > 0 && (head[el - 1] == '\n' || head[el - 1] == '\r'))
        el--;
    /* RFC 9112 4: reason-phrase = *( HTAB / SP / VCHAR / obs-text ), after
     * "HTTP/1.x NNN" (which llhttp checked). A control byte would reach the
     * client verbatim: the response is unusable (502). */
    for (size_t i = 12; i < el; i++) {
        unsigned char ch = (unsigned char)head[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return -EINVAL;
    }
    return 0;
}

/* tchar (RFC 9110 5.6.2): the bytes of a header name; 2 marks '_'. */
static const uint8_t tchar[256] = {
    ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['0' ... '9'] = 1, ['!'] = 1, ['#'] = 1, ['$'] = 1,
    ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1,
    ['_'] = 3, ['`'] = 1, ['|'] = 1, ['~'] = 1,
};

/* HTAB, SP and VCHAR: the field-value and reason-phrase bytes the fast path
 * takes (obs-text is left to llhttp). */
static const uint8_t visible[256] = {['\t'] = 1, [' ' ... '~'] = 1};

/* Past the visible bytes from <r>: eight at a time while none is below
 * 0x20 or above 0x7e (exact tests for "any byte" in a word), then one at a
 * time from the word that has one (a tab, or the CR that ends the line). */
static const char *skip_visible(const char *r, const char *end)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (end - r >= 8) {
        uint64_t x = ld8(r);
        if ((((x - 0x20 * ones) & ~x) | ((x + ones) | x)) & highs)
            break;
        r += 8;
    }
    while (r < end && visible[(unsigned char)*r])
        r++;
    return r;
}

static int is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* What fast_fields found of the framing and the connection. */
typedef struct fast_framing {
    int n_cl;    /* Content-Length fields (0 or 1) */
    uint64_t cl; /* the length, when n_cl */
    int conn;    /* Connection: 0 none, 1 close, 2 keep-alive (the only values taken) */
} fast_framing_t;

/* A Connection value the fast path takes: exactly "close" or "keep-alive",
 * as llhttp reads them (RFC 9112 9.3, 9.6). 0 for anything else. */
static int conn_value(const char *v, size_t n)
{
    if (n == 5 && strncasecmp(v, "close", 5) == 0)
        return 1;
    if (n == 10 && strncasecmp(v, "keep-alive", 10) == 0)
        return 2;
    return 0;
}

/*
 * The header lines of a fast-path head from <p> (just after the start line)
 * through the blank line, split, checked and classified in one pass: every
 * line ends in CRLF, names are tokens followed by the colon (RFC 9112 5.1:
 * no whitespace before it, no obsolete folding), values are visible bytes.
 * Fills h->hdrs, h->n and h->len, and <fr>. 0, or -EAGAIN for what the
 * fast path leaves to llhttp.
 */
static int fast_fields(const char *p, const char *end, size_t max, lb_head_t *h,
                       fast_framing_t *fr)
{
    const char *buf = h->base;
    h->n = 0;
    memset(fr, 0, sizeof(*fr));
    for (;;) {
        if (end - p < 2)
            return -EAGAIN;
        if (p[0] == '\r') {
            if (p[1] != '\n')
                return -EAGAIN;
            h->len = (size_t)(p + 2 - buf);
            return 0;
        }
        const char *q = p;
        unsigned k, seen = 0;
        while (q < end && (k = tchar[(unsigned char)*q]) != 0) {
            seen |= k;
            q++;
        }
        if (q == p || q == end || *q != ':')
            return -EAGAIN;
        const char *r = skip_visible(q + 1, end);
        if (end - r < 2 || r[0] != '\r' || r[1] != '\n' || h->n >= max)
            return -EAGAIN;
        const lb_hdr_t *hd = hdr_record(&h->hdrs[h->n++], buf, p, q, r, r + 2, 1, (seen & 2) != 0);
        const char *v = buf + hd->val_off, *ve = v + hd->val_len;
        switch (hd->kind) {
        case LB_H_CONNECTION:
            /* llhttp does not see "close" in "close<TAB>" (nor a length
             * in "5<TAB>", below). */
            if (fr->conn || (fr->conn = conn_value(v, hd->val_len)) == 0 ||
                memchr(ve, '\t', (size_t)(r - ve)))
                return -EAGAIN;
            break;
        case LB_H_PROXY_CONNECTION: /* llhttp reads it as Connection */
        case LB_H_UPGRADE:
        case LB_H_TRANSFER_ENCODING:
            return -EAGAIN;
        case LB_H_CONTENT_LENGTH:
            if (fr->n_cl++ || hd->val_len == 0 || hd->val_len > 15 ||
                memchr(ve, '\t', (size_t)(r - ve)))
                return -EAGAIN;
            for (; v < ve; v++) {
                if (!is_digit(*v))
                    return -EAGAIN;
                fr->cl = fr->cl * 10 + (uint64_t)(*v - '0');
            }
            break;
        default:
            break;
        }
        p = r + 2;
    }
}

static void fast_head_init(lb_head_t *h, const char *buf, lb_hdr_t *hdrs, const char *body)
{
    h->base = buf;
    h->hdrs = hdrs;
    h->sl = (size_t)(body - buf);
}

int lb_resp_fast(const char *buf, size_t len, lb_hdr_t *hdrs, size_t max, lb_head_t *h,
                 lb_resp_fast_t *f)
{
    /* "HTTP/1.1 NNN " then the reason phrase and CRLF (RFC 9112 4). */
    if (len < 17 || memcmp(buf, "HTTP/1.1 ", 9) != 0 || buf[9] < '2' || buf[9] > '5' ||
        !is_digit(buf[10]) || !is_digit(buf[11]) || buf[12] != ' ')
        return -EAGAIN;
    int status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    if (status == 204 || status == 304)
        return -EAGAIN; /* no body whatever the framing says: llhttp's business */
    const char *end = buf + (len < LB_MAX_HEAD_CAP ? len : LB_MAX_HEAD_CAP);
    const char *p = skip_visible(buf + 13, end);
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
        return -EAGAIN;
    fast_head_init(h, buf, hdrs, p + 2);
    fast_framing_t fr;
    if (fast_fields(p + 2, end, max, h, &fr) < 0 || fr.n_cl != 1)
        return -EAGAIN;
    f->head_len = (uint32_t)h->len;
    f->status = (uint16_t)status;
    f->keep_alive = fr.conn != 1;
    f->content_length = fr.cl;
    return 0;
}

/* origin-form (RFC 9112 3.2.1): absolute-path [ "?" query ], as pchar,
 * "/" and "?" (RFC 3986 3.3, 3.4). */
static const uint8_t target_byte[256] = {
    ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['0' ... '9'] = 1, ['-'] = 1, ['.'] = 1, ['_'] = 1,
    ['~'] = 1, ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1,
    ['+'] = 1, [','] = 1, [';'] = 1, ['='] = 1, ['%'] = 1, [':'] = 1, ['@'] = 1, ['/'] = 1,
    ['?'] = 1,
};

static const struct {
    char name[8];
    uint8_t len, method;
} fast_methods[] = {
    {"GET ", 4, HTTP_GET},         {"HEAD ", 5, HTTP_HEAD},   {"POST ", 5, HTTP_POST},
    {"PUT ", 4, HTTP_PUT},         {"DELETE ", 7, HTTP_DELETE}, {"OPTIONS ", 8, HTTP_OPTIONS},
    {"PATCH ", 6, HTTP_PATCH},
};

int lb_req_fast(const char *buf, size_t len, lb_hdr_t *hdrs, size_t max, lb_head_t *h,
                lb_req_meta_t *m)
{
    const char *p = NULL, *end = buf + (len < LB_MAX_HEAD_CAP ? len : LB_MAX_HEAD_CAP);
    for (size_t i = 0; i < sizeof(fast_methods) / sizeof(fast_methods[0]); i++) {
        size_t ml = fast_methods[i].len;
        if (len > ml && memcmp(buf, fast_methods[i].name, ml) == 0) {
            m->method = fast_methods[i].method;
            p = buf + ml;
            break;
        }
    }
    if (!p || p == end || *p != '/')
        return -EAGAIN;
    while (p < end && target_byte[(unsigned char)*p])
        p++;
    if (end - p < 11 || memcmp(p, " HTTP/1.", 8) != 0 || (p[8] != '0' && p[8] != '1') ||
        p[9] != '\r' || p[10] != '\n')
        return -EAGAIN;
    m->http_major = 1;
    m->http_minor = (uint8_t)(p[8] - '0');
    fast_head_init(h, buf, hdrs, p + 11);
    fast_framing_t fr;
    if (fast_fields(p + 11, end, max, h, &fr) < 0)
        return -EAGAIN;
    /* RFC 9112 9.3: 1.1 persists unless "close", 1.0 only with "keep-alive". */
    m->keep_alive = m->http_minor == 1 ? fr.conn != 1 : fr.conn == 2;
    m->upgrade = 0;
    m->has_cl = fr.n_cl != 0;
    m->content_length = fr.cl;
    return 0;
}

/* ---------------------------------------------------------------- rewrite */

/* Where the forwarded head goes: pieces of the original head as iovecs and
 * generated bytes copied into <x>; or, in copy mode, everything into <x>. */
typedef struct emit {
    const char *head;
    uv_buf_t *iov;
    size_t max_iov, n_iov;
    char *x;
    size_t xcap, xl;
    int copy;
} emit_t;

static inline int emit_bytes(emit_t *e, const char *s, size_t n, int generated)
{
    if (n == 0)
        return 0;
    if (e->copy || generated) {
        if (e->xl + n > e->xcap)
            return -ENOBUFS;
        memcpy(e->x + e->xl, s, n);
        s = e->x + e->xl;
        e->xl += n;
        if (e->copy)
            return 0;
    }
    if (e->n_iov > 0) {
        uv_buf_t *last = &e->iov[e->n_iov - 1];
        if (last->base + last->len == s) {
            last->len += n;
            return 0;
        }
    }
    if (e->n_iov >= e->max_iov)
        return -ENOBUFS;
    e->iov[e->n_iov++] = (uv_buf_t){.base = (char *)s, .len = n};
    return 0;
}

#define EMIT_HEAD(off, n)                                                                          \
    do {                                                                                           \
        if ((r = emit_bytes(&e, head + (off), (n), 0)) < 0)                                        \
            return r;                                                                              \
    } while (0)
#define EMIT_GEN(s, n)                                                                             \
    do {                                                                                           \
        if ((r = emit_bytes(&e, (s), (n), 1)) < 0)                                                 \
            return r;                                                                              \
    } while (0)
#define EMIT_LIT(lit) EMIT_GEN(lit, sizeof(lit) - 1)
#define EMIT_STR(s) EMIT_GEN(s, strlen(s))

/* Is header <hd> one the proxy must not forward? <tok> are the Connection
 * options (at most LB_MAX_CONN_TOKENS, so this stays linear in the head). */
static int hdr_dropped(const lb_head_t *h, const lb_hdr_t *hd, const lb_rewrite_t *rw,
                       const lb_tok_t *tok, size_t n_tok)
{
    switch (hd->kind) {
    case LB_H_CONNECTION:
    case LB_H_KEEP_ALIVE:
    case LB_H_PROXY_CONNECTION:
    case LB_H_TE:
    case LB_H_TRAILER:
        return 1; /* hop-by-hop (RFC 9110 7.6.1) */
    case LB_H_UPGRADE:
        return !rw->upgrade;
    case LB_H_TRANSFER_ENCODING:
        if (rw->drop_te)
            return 1;
        break;
    default:
        break;
    }
    if (rw->is_request) {
        if (hd->kind == LB_H_X_FORWARDED_PROTO)
            return 1; /* ours replaces it */
        if (rw->req && rw->req->absolute && hd->kind == LB_H_HOST)
            return 1; /* replaced by the target's authority (RFC 9112 3.2.2) */
        /* nginx's default (underscores_in_headers off): X_Forwarded_For would
         * reach a CGI/WSGI application as the same variable as X-Forwarded-For. */
        if (hd->underscore)
            return 1;
        /* What we generate or need for framing and routing cannot be made
         * hop-by-hop by the client (X-Forwarded-For would hide its address). */
        if (hd->kind == LB_H_X_FORWARDED_FOR || hd->kind == LB_H_HOST)
            return 0;
    }
    if (hd->kind == LB_H_TRANSFER_ENCODING || hd->kind == LB_H_CONTENT_LENGTH)
        return 0;
    /* Headers named in Connection are hop-by-hop too (RFC 9110 7.6.1). */
    for (size_t t = 0; t < n_tok; t++)
        if (tok[t].n == hd->name_len && strncasecmp(tok[t].p, h->base + hd->line_off, tok[t].n) == 0)
            return 1;
    return 0;
}

/* Kinds of header the rewrite may drop or extend: none of them in a head
 * means its lines go out as they are. */
#define LB_KIND_BIT(k) (1u << (k))
#define LB_KINDS_PLAIN                                                                             \
    (LB_KIND_BIT(LB_H_OTHER) | LB_KIND_BIT(LB_H_CONTENT_LENGTH) | LB_KIND_BIT(LB_H_HOST))

/* The common head, whose header lines all go out unchanged: the head up to
 * its blank line as one piece, then, for a request, the X-Forwarded fields
 * and the blank line (generated); a response goes out whole. 1 if it was
 * such a head, 0 if not, or -ENOBUFS. */
static int rewrite_plain(const lb_head_t *h, const lb_rewrite_t *rw, uv_buf_t *iov,
                         size_t max_iov, size_t *n_iov, char *x, size_t xcap, size_t *xl)
{
    const lb_req_info_t *rq = rw->is_request ? rw->req : NULL;
    if (rw->conn != LB_CONN_HDR_NONE || rw->drop_te || (rq && (rq->respace || rq->absolute)))
        return 0;
    for (size_t i = 0; i < h->n; i++)
        if (!(LB_KIND_BIT(h->hdrs[i].kind) & LB_KINDS_PLAIN) || h->hdrs[i].underscore)
            return 0;
    if (max_iov < 2)
        return -ENOBUFS;
    if (!rw->is_request) {
        iov[0] = uv_buf_init((char *)h->base, (unsigned)h->len);
        *n_iov = 1;
        *xl = 0;
        return 1;
    }
    static const char xff[] = "X-Forwarded-For: ", http[] = "\r\nX-Forwarded-Proto: http\r\n\r\n",
                      https[] = "\r\nX-Forwarded-Proto: https\r\n\r\n";
    const char *ip = rw->client_ip ? rw->client_ip : "unknown";
    const char *tail = rw->tls ? https : http;
    size_t il = strlen(ip), tl = rw->tls ? sizeof(https) - 1 : sizeof(http) - 1;
    size_t n = sizeof(xff) - 1 + il + tl;
    if (n > xcap)
        return -ENOBUFS;
    memcpy(x, xff, sizeof(xff) - 1);
    memcpy(x + sizeof(xff) - 1, ip, il);
    memcpy(x + sizeof(xff) - 1 + il, tail, tl);
    size_t blank = head_blank(h);
    iov[0] = uv_buf_init((char *)h->base, (unsigned)blank);
    iov[1] = uv_buf_init(x, (unsigned)n);
    *n_iov = 2;
    *xl = n;
    return 1;
}

int lb_head_rewrite(const lb_head_t *h, const lb_rewrite_t *rw, uv_buf_t *iov, size_t max_iov,
                    size_t *n_iov, char *extra, size_t extra_cap, size_t *extra_len, int copy)
{
    const char *head = h->base;
    emit_t e = {head, iov, max_iov, 0, extra, extra_cap, 0, copy};
    int r;
    if (!copy && (r = rewrite_plain(h, rw, iov, max_iov, n_iov, extra, extra_cap, extra_len)) != 0)
        return r < 0 ? r : 0;
    lb_tok_t tok[LB_MAX_CONN_TOKENS];
    int nt = conn_tokens(h, tok, LB_MAX_CONN_TOKENS);
    if (nt < 0)
        return -EINVAL;
    size_t n_tok = (size_t)nt;
    const lb_req_info_t *rq = rw->is_request ? rw->req : NULL;

    /* Start line, rebuilt only when it must change (odd spacing, absolute-form). */
    if (rq && (rq->respace || rq->absolute)) {
        EMIT_HEAD(0, rq->method_len);
        EMIT_LIT(" ");
        /* origin-form is absolute-path [ "?" query ] (RFC 9112 3.2.1): an
         * absolute-form with an empty path ("http://a?q") gets its "/". */
        if (rq->target_len == 0 || head[rq->target_off] != '/')
            EMIT_LIT("/");
        EMIT_HEAD(rq->target_off, rq->target_len);
        EMIT_GEN(rq->http10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n", 11);
    } else {
        EMIT_HEAD(0, h->sl);
    }
    /* Last forwarded X-Forwarded-For: the client's list, to which we append. */
    ssize_t xff_last = -1;
    for (size_t i = 0; rw->is_request && i < h->n; i++)
        if (h->hdrs[i].kind == LB_H_X_FORWARDED_FOR && !hdr_dropped(h, &h->hdrs[i], rw, tok, n_tok))
            xff_last = (ssize_t)i;
    /* Kept header lines go out as runs of consecutive lines: one piece for
     * the common head that keeps them all. */
    int dropped_any = 0;
    size_t run = 0, run_end = 0; /* [run, run_end) not yet emitted */
    for (size_t i = 0; i < h->n; i++) {
        const lb_hdr_t *hd = &h->hdrs[i];
        int drop = hdr_dropped(h, hd, rw, tok, n_tok);
        if (!drop && (ssize_t)i != xff_last) {
            if (run_end != hd->line_off) {
                EMIT_HEAD(run, run_end - run);
                run = hd->line_off;
            }
            run_end = (size_t)hd->line_off + hd->line_len;
            continue;
        }
        EMIT_HEAD(run, run_end - run);
        run = run_end = 0;
        if (drop) {
            dropped_any = 1;
            continue;
        }
        EMIT_HEAD(hd->line_off, (size_t)(hd->val_off + hd->val_len - hd->line_off));
        EMIT_LIT(", ");
        EMIT_STR(rw->client_ip ? rw->client_ip : "unknown");
        EMIT_LIT("\r\n");
    }
    EMIT_HEAD(run, run_end - run);
    size_t blank = head_blank(h);
    if (!rw->is_request && rw->conn == LB_CONN_HDR_NONE && !dropped_any) {
        /* Nothing to append: the original blank line ends the head, so the
         * head (and a body after it) stays one contiguous piece. */
        EMIT_HEAD(blank, h->len - blank);
    } else {
        if (rw->is_request) {
            if (xff_last < 0) {
                EMIT_LIT("X-Forwarded-For: ");
                EMIT_STR(rw->client_ip ? rw->client_ip : "unknown");
                EMIT_LIT("\r\n");
            }
            if (rw->tls)
                EMIT_LIT("X-Forwarded-Proto: https\r\n");
            else
                EMIT_LIT("X-Forwarded-Proto: http\r\n");
            if (rq && rq->absolute) {
                EMIT_LIT("Host: ");
                EMIT_HEAD(rq->auth_off, rq->auth_len);
                EMIT_LIT("\r\n");
            }
        }
        switch (rw->conn) {
        case LB_CONN_HDR_CLOSE:
            EMIT_LIT("Connection: close\r\n");
            break;
        case LB_CONN_HDR_KEEPALIVE:
            EMIT_LIT("Connection: keep-alive\r\n");
            break;
        case LB_CONN_HDR_UPGRADE:
            EMIT_LIT("Connection: upgrade\r\n");
            break;
        default:
            break;
        }
        EMIT_LIT("\r\n");
    }
    if (copy) {
        if (max_iov < 1)
            return -ENOBUFS;
        iov[0] = uv_buf_init(extra, (unsigned)e.xl);
        e.n_iov = 1;
    }
    *n_iov = e.n_iov;
    *extra_len = e.xl;
    return 0;
}
