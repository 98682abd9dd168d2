#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/util.h"
#include "lb.h"

static const char usage[] =
    "usage: sky-lb --listen HOST:PORT [--workers N] [--policy round_robin|least_load|"
    "power_of_two]\n"
    "              [--replica URL]... [--controller URL --service NAME]\n"
    "              [--controller-token-file F] [--sync-interval S]\n"
    "              [--admin HOST:PORT [--admin-token-file F]]\n"
    "              [--tls-cert F --tls-key F] [--log-level debug|info|warn|error]\n"
    "              [--max-head-bytes N] [--max-uri-bytes N] [--max-headers N]\n"
    "              [--max-body-bytes N] [--head-timeout S] [--client-body-timeout S]\n"
    "              [--upstream-timeout S] [--upstream-read-timeout S] [--client-send-timeout S]\n"
    "              [--connect-timeout S] [--keepalive-timeout S] [--pool-idle-timeout S]\n"
    "              [--drain-timeout S] [--high-watermark BYTES] [--low-watermark BYTES]\n"
    "              [--max-conns N] [--retry-buffer BYTES] [--max-attempts N]\n"
    "              [--pool-size N] [--access-log]\n";

void lb_config_defaults(lb_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->listen_port = -1;
    c->workers = 1;
    snprintf(c->policy, sizeof(c->policy), "least_load");
    c->sync_interval = 1.0;
    c->admin_port = -1;
    c->log_level = CORE_LOG_INFO;
    c->max_head = 16384;
    c->max_uri = 8192;     /* nginx: large_client_header_buffers 8k */
    c->max_headers = 256;
    c->max_body = 0;
    c->head_timeout = 10;
    c->upstream_timeout = 120;
    c->upstream_read_timeout = 60; /* nginx: proxy_read_timeout */
    c->client_send_timeout = 60;   /* nginx: send_timeout */
    c->client_body_timeout = 60;   /* nginx: client_body_timeout */
    c->connect_timeout = 5;
    c->keepalive_timeout = 75;
    c->pool_idle_timeout = 30;
    c->drain_timeout = 30;
    c->high_wm = 512 * 1024;
    c->low_wm = 128 * 1024;
    c->max_conns = 16384;
    c->retry_buffer = 65536;
    c->max_attempts = 3;
    c->pool_size = 256;
}

void lb_config_free(lb_config_t *c)
{
    for (size_t i = 0; i < c->n_replicas; i++)
        free(c->replicas[i]);
    free(c->replicas);
    c->replicas = NULL;
    c->n_replicas = 0;
    free(c->controller);
    c->controller = NULL;
    free(c->service);
    c->service = NULL;
    free(c->token);
    c->token = NULL;
    free(c->admin_token);
    c->admin_token = NULL;
    free(c->token_file);
    c->token_file = NULL;
    free(c->admin_token_file);
    c->admin_token_file = NULL;
    free(c->tls_cert);
    c->tls_cert = NULL;
    free(c->tls_key);
    c->tls_key = NULL;
}

int lb_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    size_t hl;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return -EINVAL;
        hl = (size_t)(rb - s - 1);
        s++;
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -EINVAL;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return -EINVAL;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 0 || p > 65535)
        return -EINVAL;
    memcpy(host, s, hl);
    host[hl] = 0;
    *port = (int)p;
    return 0;
}

int lb_parse_url(const char *url, struct sockaddr_storage *addr, char *norm, size_t normlen)
{
    if (strncmp(url, "http://", 7) != 0)
        return -EINVAL;
    char hp[300];
    size_t l = strlen(url + 7);
    if (l == 0 || l >= sizeof(hp))
        return -EINVAL;
    memcpy(hp, url + 7, l + 1);
    if (hp[l - 1] == '/')
        hp[--l] = 0;
    if (strchr(hp, '/'))
        return -EINVAL;
    char host[256];
    int port;
    if (lb_parse_hostport(hp, host, sizeof(host), &port) < 0 || port == 0)
        return -EINVAL;
    memset(addr, 0, sizeof(*addr));
    struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
    int n;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        n = snprintf(norm, normlen, "http://%s:%d", host, port);
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        n = snprintf(norm, normlen, "http://[%s]:%d", host, port);
    } else {
        /* A name: resolved once here (sync thread or startup), never per request. */
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
        if (getaddrinfo(host, NULL, &hints, &res) != 0)
            return -EINVAL;
        memcpy(addr, res->ai_addr, res->ai_addrlen);
        if (res->ai_family == AF_INET)
            a4->sin_port = htons((uint16_t)port);
        else
            a6->sin6_port = htons((uint16_t)port);
        freeaddrinfo(res);
        n = snprintf(norm, normlen, "http://%s:%d", host, port);
    }
    if (n < 0 || (size_t)n >= normlen)
        return -EINVAL;
    return 0;
}

static char *read_token(const char *flag, const char *path, char **err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        *err = core_xasprintf("cannot read --%s %s: %s", flag, path, strerror(errno));
        return NULL;
    }
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = 0;
    if (n == 0 || strlen(buf) != n) {
        *err = core_xasprintf("--%s %s: empty or not a text token", flag, path);
        return NULL;
    }
    return core_xstrdup(buf);
}

enum {
    OPT_LISTEN = 256,
    OPT_WORKERS,
    OPT_POLICY,
    OPT_REPLICA,
    OPT_CONTROLLER,
    OPT_SERVICE,
    OPT_TOKEN_FILE,
    OPT_SYNC,
    OPT_ADMIN,
    OPT_CERT,
    OPT_KEY,
    OPT_LOG,
    OPT_MAX_HEAD,
    OPT_HEAD_TO,
    OPT_UP_TO,
    OPT_CONN_TO,
    OPT_KA_TO,
    OPT_POOL_TO,
    OPT_DRAIN_TO,
    OPT_HIGH,
    OPT_LOW,
    OPT_MAX_CONNS,
    OPT_RETRY_BUF,
    OPT_ATTEMPTS,
    OPT_POOL_SIZE,
    OPT_ACCESS,
    OPT_ADMIN_TOKEN_FILE,
    OPT_MAX_URI,
    OPT_MAX_HEADERS,
    OPT_MAX_BODY,
    OPT_UP_READ_TO,
    OPT_SEND_TO,
    OPT_BODY_TO,
    OPT_HELP,
};

int lb_config_parse_args(lb_config_t *c, int argc, char **argv, char **err)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"policy", required_argument, NULL, OPT_POLICY},
        {"replica", required_argument, NULL, OPT_REPLICA},
        {"controller", required_argument, NULL, OPT_CONTROLLER},
        {"service", required_argument, NULL, OPT_SERVICE},
        {"controller-token-file", required_argument, NULL, OPT_TOKEN_FILE},
        {"sync-interval", required_argument, NULL, OPT_SYNC},
        {"admin", required_argument, NULL, OPT_ADMIN},
        {"tls-cert", required_argument, NULL, OPT_CERT},
        {"tls-key", required_argument, NULL, OPT_KEY},
        {"log-level", required_argument, NULL, OPT_LOG},
        {"max-head-bytes", required_argument, NULL, OPT_MAX_HEAD},
        {"head-timeout", required_argument, NULL, OPT_HEAD_TO},
        {"upstream-timeout", required_argument, NULL, OPT_UP_TO},
        {"connect-timeout", required_argument, NULL, OPT_CONN_TO},
        {"keepalive-timeout", required_argument, NULL, OPT_KA_TO},
        {"pool-idle-timeout", required_argument, NULL, OPT_POOL_TO},
        {"drain-timeout", required_argument, NULL, OPT_DRAIN_TO},
        {"high-watermark", required_argument, NULL, OPT_HIGH},
        {"low-watermark", required_argument, NULL, OPT_LOW},
        {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
        {"retry-buffer", required_argument, NULL, OPT_RETRY_BUF},
        {"max-attempts", required_argument, NULL, OPT_ATTEMPTS},
        {"pool-size", required_argument, NULL, OPT_POOL_SIZE},
        {"access-log", no_argument, NULL, OPT_ACCESS},
        {"admin-token-file", required_argument, NULL, OPT_ADMIN_TOKEN_FILE},
        {"max-uri-bytes", required_argument, NULL, OPT_MAX_URI},
        {"max-headers", required_argument, NULL, OPT_MAX_HEADERS},
        {"max-body-bytes", required_argument, NULL, OPT_MAX_BODY},
        {"upstream-read-timeout", required_argument, NULL, OPT_UP_READ_TO},
        {"client-send-timeout", required_argument, NULL, OPT_SEND_TO},
        {"client-body-timeout", required_argument, NULL, OPT_BODY_TO},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    int have_listen = 0;
    double v;
    lb_config_defaults(c);
    optind = 0; /* full re-initialisation, so tests may parse several times */
    opterr = 0;
    for (;;) {
        int li = 0;
        int o = getopt_long(argc, argv, ":", opts, &li);
        if (o == -1)
            break;
        const char *name = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
        switch (o) {
        case OPT_LISTEN:
            if (lb_parse_hostport(optarg, c->listen_host, sizeof(c->listen_host), &c->listen_port) <
                0)
                goto bad_value;
            have_listen = 1;
            break;
        case OPT_WORKERS:
            if (core_parse_num(optarg, 1, 256, &v) < 0 || v != (int)v)
                goto bad_value;
            c->workers = (int)v;
            break;
        case OPT_POLICY:
            if (!lb_algo_find(optarg)) {
                *err = core_xasprintf("--policy: unknown policy '%s' (expected round_robin, "
                                      "least_load or power_of_two)",
                                      optarg);
                goto fail;
            }
            snprintf(c->policy, sizeof(c->policy), "%s", optarg);
            break;
        case OPT_REPLICA: {
            struct sockaddr_storage ss;
            char norm[LB_URL_MAX];
            if (lb_parse_url(optarg, &ss, norm, sizeof(norm)) < 0) {
                *err =
                    core_xasprintf("--replica: invalid URL '%s' (expected http://IP:PORT)", optarg);
                goto fail;
            }
            c->replicas = core_xrealloc(c->replicas, (c->n_replicas + 1) * sizeof(char *));
            c->replicas[c->n_replicas++] = core_xstrdup(norm);
            break;
        }
        case OPT_CONTROLLER: {
            size_t l = strlen(optarg);
            if ((strncmp(optarg, "http://", 7) != 0 && strncmp(optarg, "https://", 8) != 0) ||
                l < 8) {
                *err = core_xasprintf("--controller: invalid URL '%s'", optarg);
                goto fail;
            }
            free(c->controller);
            c->controller = core_xstrdup(optarg);
            while (l > 0 && c->controller[l - 1] == '/')
                c->controller[--l] = 0;
            break;
        }
        case OPT_SERVICE:
            free(c->service);
            c->service = core_xstrdup(optarg);
            break;
        case OPT_TOKEN_FILE:
            free(c->token_file);
            c->token_file = core_xstrdup(optarg);
            break;
        case OPT_SYNC:
            if (core_parse_num(optarg, 0.01, 3600, &c->sync_interval) < 0)
                goto bad_value;
            break;
        case OPT_ADMIN:
            if (lb_parse_hostport(optarg, c->admin_host, sizeof(c->admin_host), &c->admin_port) < 0)
                goto bad_value;
            break;
        case OPT_CERT:
            free(c->tls_cert);
            c->tls_cert = core_xstrdup(optarg);
            break;
        case OPT_KEY:
            free(c->tls_key);
            c->tls_key = core_xstrdup(optarg);
            break;
        case OPT_LOG:
            if (core_log_parse_level(optarg, &c->log_level) < 0)
                goto bad_value;
            break;
        case OPT_MAX_HEAD:
            if (core_parse_num(optarg, 256, LB_MAX_HEAD_CAP, &v) < 0)
                goto bad_value;
            c->max_head = (size_t)v;
            break;
        case OPT_HEAD_TO:
            if (core_parse_num(optarg, 0.001, 86400, &c->head_timeout) < 0)
                goto bad_value;
            break;
        case OPT_UP_TO:
            if (core_parse_num(optarg, 0.001, 86400, &c->upstream_timeout) < 0)
                goto bad_value;
            break;
        case OPT_CONN_TO:
            if (core_parse_num(optarg, 0.001, 86400, &c->connect_timeout) < 0)
                goto bad_value;
            break;
        case OPT_KA_TO:
            if (core_parse_num(optarg, 0, 86400, &c->keepalive_timeout) < 0)
                goto bad_value;
            break;
        case OPT_POOL_TO:
            if (core_parse_num(optarg, 0, 86400, &c->pool_idle_timeout) < 0)
                goto bad_value;
            break;
        case OPT_DRAIN_TO:
            if (core_parse_num(optarg, 0, 86400, &c->drain_timeout) < 0)
                goto bad_value;
            break;
        case OPT_HIGH:
            if (core_parse_num(optarg, 1024, 1 << 30, &v) < 0)
                goto bad_value;
            c->high_wm = (size_t)v;
            break;
        case OPT_LOW:
            if (core_parse_num(optarg, 0, 1 << 30, &v) < 0)
                goto bad_value;
            c->low_wm = (size_t)v;
            break;
        case OPT_MAX_CONNS:
            if (core_parse_num(optarg, 1, 10000000, &v) < 0)
                goto bad_value;
            c->max_conns = (int)v;
            break;
        case OPT_RETRY_BUF:
            if (core_parse_num(optarg, 0, 16 << 20, &v) < 0)
                goto bad_value;
            c->retry_buffer = (size_t)v;
            break;
        case OPT_ATTEMPTS:
            if (core_parse_num(optarg, 1, 64, &v) < 0)
                goto bad_value;
            c->max_attempts = (int)v;
            break;
        case OPT_POOL_SIZE:
            if (core_parse_num(optarg, 0, 100000, &v) < 0)
                goto bad_value;
            c->pool_size = (int)v;
            break;
        case OPT_ACCESS:
            c->access_log = 1;
            break;
        case OPT_ADMIN_TOKEN_FILE:
            free(c->admin_token_file);
            c->admin_token_file = core_xstrdup(optarg);
            break;
        case OPT_MAX_URI:
            if (core_parse_num(optarg, 16, LB_MAX_HEAD_CAP, &v) < 0)
                goto bad_value;
            c->max_uri = (size_t)v;
            break;
        case OPT_MAX_HEADERS:
            if (core_parse_num(optarg, 1, LB_HDRS_FOR(LB_MAX_HEAD_CAP), &v) < 0 || v != (int)v)
                goto bad_value;
            c->max_headers = (size_t)v;
            break;
        case OPT_MAX_BODY:
            if (core_parse_num(optarg, 0, 1e15, &v) < 0 || v != (double)(uint64_t)v)
                goto bad_value;
            c->max_body = (uint64_t)v;
            break;
        case OPT_UP_READ_TO:
            if (core_parse_num(optarg, 0.001, 86400, &c->upstream_read_timeout) < 0)
                goto bad_value;
            break;
        case OPT_SEND_TO:
            if (core_parse_num(optarg, 0.001, 86400, &c->client_send_timeout) < 0)
                goto bad_value;
            break;
        case OPT_BODY_TO:
            if (core_parse_num(optarg, 0.001, 86400, &c->client_body_timeout) < 0)
                goto bad_value;
            break;
        case OPT_HELP:
            *err = core_xstrdup(usage);
            lb_config_free(c);
            return 1;
        case ':':
            *err = core_xasprintf("option %s requires a value\n%s", name, usage);
            goto fail;
        default:
            *err = core_xasprintf("unknown option %s\n%s", name, usage);
            goto fail;
        bad_value:
            *err = core_xasprintf("invalid value '%s' for --%s", optarg, opts[li].name);
            goto fail;
        }
    }
    if (optind < argc) {
        *err = core_xasprintf("unexpected argument '%s'\n%s", argv[optind], usage);
        goto fail;
    }
    if (!have_listen) {
        *err = core_xasprintf("--listen HOST:PORT is required\n%s", usage);
        goto fail;
    }
    if (c->controller && !c->service) {
        *err = core_xstrdup("--controller requires --service NAME");
        goto fail;
    }
    if (!!c->tls_cert != !!c->tls_key) {
        *err = core_xstrdup("--tls-cert and --tls-key go together");
        goto fail;
    }
    if (c->low_wm >= c->high_wm) {
        *err = core_xstrdup("--low-watermark must be below --high-watermark");
        goto fail;
    }
    /* /metrics and /-/replicas describe the service's traffic: like every
     * other control API they need the bearer token. */
    if (c->admin_port >= 0 && !c->admin_token_file && !c->token_file) {
        *err = core_xstrdup("--admin needs a bearer token: --admin-token-file F (or "
                            "--controller-token-file F)");
        goto fail;
    }
    if (c->max_uri > c->max_head)
        c->max_uri = c->max_head;
    return 0;
fail:
    lb_config_free(c);
    return -EINVAL;
}

int lb_config_load_files(lb_config_t *c, char **err)
{
    const char *files[] = {c->tls_cert, c->tls_key};
    for (int i = 0; i < 2; i++) {
        if (files[i] && access(files[i], R_OK) != 0) {
            *err = core_xasprintf("cannot read %s: %s", files[i], strerror(errno));
            goto fail;
        }
    }
    if (c->token_file) {
        c->token = read_token("controller-token-file", c->token_file, err);
        if (!c->token)
            goto fail;
    }
    if (c->admin_token_file) {
        c->admin_token = read_token("admin-token-file", c->admin_token_file, err);
        if (!c->admin_token)
            goto fail;
    } else if (c->token) {
        c->admin_token = core_xstrdup(c->token);
    }
    return 0;
fail:
    lb_config_free(c);
    return -EINVAL;
}

int lb_config_parse(lb_config_t *c, int argc, char **argv, char **err)
{
    int rc = lb_config_parse_args(c, argc, argv, err);
    if (rc != 0)
        return rc;
    return lb_config_load_files(c, err);
}
