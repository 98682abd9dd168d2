/*
 * A CA of our own and leaf certificates for SSH pool hosts (OpenSSL 3).
 */
#include "core/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/mem.h"
#include "core/util.h"

#define VALID_DAYS (10 * 365)

char *core_tls_ca_path(void)
{
    return core_home_path("ssh/ca.crt");
}

static int set_err(char **err, const char *what)
{
    if (err) {
        char buf[256];
        unsigned long e = ERR_get_error();
        ERR_error_string_n(e, buf, sizeof(buf));
        *err = core_xasprintf("%s: %s", what, e ? buf : "failed");
    }
    ERR_clear_error();
    return -EIO;
}

static EVP_PKEY *new_key(void)
{
    return EVP_EC_gen("P-256");
}

static char *pem_of(int (*write)(BIO *, const void *), const void *obj)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (b && write(b, obj) == 1) {
        char *p = NULL;
        long n = BIO_get_mem_data(b, &p);
        out = core_xstrndup(p, (size_t)n);
    }
    BIO_free(b);
    return out;
}

static int write_cert(BIO *b, const void *x)
{
    return PEM_write_bio_X509(b, (X509 *)x);
}

static int write_key(BIO *b, const void *k)
{
    return PEM_write_bio_PrivateKey(b, (EVP_PKEY *)k, NULL, NULL, 0, NULL, NULL);
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ex)
        return -1;
    int ok = X509_add_ext(cert, ex, -1);
    X509_EXTENSION_free(ex);
    return ok ? 0 : -1;
}

/* A certificate for <key> named <cn>, signed by issuer/ikey (itself when NULL). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey)
{
    X509 *x = X509_new();
    if (!x)
        return NULL;
    unsigned char serial[16];
    RAND_bytes(serial, sizeof(serial));
    serial[0] &= 0x7f; /* positive */
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
        goto fail;
    BN_free(bn);
    bn = NULL;
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600); /* clocks of hosts differ a little */
    X509_gmtime_adj(X509_getm_notAfter(x), (long)VALID_DAYS * 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"sky", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    if (!issuer) {
        if (add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
            add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
            add_ext(x, x, NID_subject_key_identifier, "hash"))
            goto fail;
    } else {
        unsigned char buf[16];
        char san[300];
        if (inet_pton(AF_INET, cn, buf) == 1 || inet_pton(AF_INET6, cn, buf) == 1)
            snprintf(san, sizeof(san), "IP:%s", cn);
        else
            snprintf(san, sizeof(san), "DNS:%s", cn);
        if (add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE") ||
            add_ext(x, issuer, NID_key_usage, "critical,digitalSignature") ||
            add_ext(x, issuer, NID_ext_key_usage, "serverAuth") ||
            add_ext(x, issuer, NID_authority_key_identifier, "keyid") ||
            add_ext(x, issuer, NID_subject_alt_name, san))
            goto fail;
    }
    if (!X509_sign(x, issuer ? ikey : key, EVP_sha256()))
        goto fail;
    return x;
fail:
    BN_free(bn);
    X509_free(x);
    return NULL;
}

int core_tls_ca_ensure(const char *dir, char **err)
{
    char *kpath = core_xasprintf("%s/ca.key", dir), *cpath = core_xasprintf("%s/ca.crt", dir);
    char *kpem = NULL, *cpem = NULL;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    int rc = 0;
    if (access(kpath, R_OK) == 0 && access(cpath, R_OK) == 0)
        goto out;
    if ((rc = core_mkdir_p(dir, 0700)) < 0) {
        if (err)
            *err = core_xasprintf("cannot create %s: %s", dir, strerror(-rc));
        goto out;
    }
    if (!(key = new_key()) || !(cert = make_cert(key, "sky pool agents CA", NULL, NULL))) {
        rc = set_err(err, "cannot create the pool CA");
        goto out;
    }
    kpem = pem_of(write_key, key);
    cpem = pem_of(write_cert, cert);
    /* The key first: a certificate without its key would be taken as a CA. */
    if (!kpem || !cpem || (rc = core_write_file(kpath, kpem, strlen(kpem), 0600)) < 0 ||
        (rc = core_write_file(cpath, cpem, strlen(cpem), 0644)) < 0) {
        if (rc == 0)
            rc = -ENOMEM;
        if (err)
            *err = core_xasprintf("cannot write the pool CA in %s: %s", dir, strerror(-rc));
    }
out:
    if (kpem)
        OPENSSL_cleanse(kpem, strlen(kpem));
    free(kpem);
    free(cpem);
    EVP_PKEY_free(key);
    X509_free(cert);
    free(kpath);
    free(cpath);
    return rc;
}

static int load_ca(const char *dir, X509 **cert, EVP_PKEY **key, char **err)
{
    char *kpath = core_xasprintf("%s/ca.key", dir), *cpath = core_xasprintf("%s/ca.crt", dir);
    FILE *kf = fopen(kpath, "r"), *cf = fopen(cpath, "r");
    *key = kf ? PEM_read_PrivateKey(kf, NULL, NULL, NULL) : NULL;
    *cert = cf ? PEM_read_X509(cf, NULL, NULL, NULL) : NULL;
    if (kf)
        fclose(kf);
    if (cf)
        fclose(cf);
    int rc = 0;
    if (!*key || !*cert) {
        rc = set_err(err, "cannot read the pool CA");
        EVP_PKEY_free(*key);
        X509_free(*cert);
        *key = NULL;
        *cert = NULL;
    }
    free(kpath);
    free(cpath);
    return rc;
}

int core_tls_issue(const char *dir, const char *host, char **cert_pem, char **key_pem, char **err)
{
    X509 *ca = NULL, *cert = NULL;
    EVP_PKEY *cakey = NULL, *key = NULL;
    *cert_pem = *key_pem = NULL;
    int rc = load_ca(dir, &ca, &cakey, err);
    if (rc < 0)
        return rc;
    if (!(key = new_key()) || !(cert = make_cert(key, host, ca, cakey))) {
        rc = set_err(err, "cannot issue a certificate");
        goto out;
    }
    *cert_pem = pem_of(write_cert, cert);
    *key_pem = pem_of(write_key, key);
    if (!*cert_pem || !*key_pem) {
        free(*cert_pem);
        free(*key_pem);
        *cert_pem = *key_pem = NULL;
        rc = set_err(err, "cannot encode a certificate");
    }
out:
    X509_free(ca);
    X509_free(cert);
    EVP_PKEY_free(cakey);
    EVP_PKEY_free(key);
    return rc;
}

void core_host_token(const char *pool_token, const char *addr, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = sizeof(md);
    char *msg = core_xasprintf("sky-agent:%s", addr);
    HMAC(EVP_sha256(), pool_token, (int)strlen(pool_token), (const unsigned char *)msg,
         strlen(msg), md, &mdlen);
    free(msg);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void core_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int core_sha256_file(const char *path, char out[65])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    char buf[65536];
    ssize_t n;
    int rc = 0;
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        EVP_DigestUpdate(ctx, buf, (size_t)n);
    }
    close(fd);
    unsigned char md[32];
    EVP_DigestFinal_ex(ctx, md, NULL);
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 32 && rc == 0; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return rc;
}
