#ifndef CORE_TLS_H
#define CORE_TLS_H

#include <stddef.h>

/*
 * The product's own small PKI for reaching sky-agent on SSH pool hosts over
 * TLS (docs/ssh-node-pools.md, "Transport"). One CA per $SKY_HOME, created
 * by the first `sky ssh up`: its key never leaves $SKY_HOME/ssh/ (0600).
 * Each pool host gets a leaf certificate for its address, whose key is
 * created here and carried to the host over SSH. Clients trust that CA
 * only (never the system's store) and check the address, so a host's
 * certificate cannot stand in for another's.
 *
 * Functions return 0 or a negative errno; *err (may be NULL) gets a sentence.
 */

/* $SKY_HOME/ssh/ca.crt: what https clients of pool agents trust. Caller frees. */
char *core_tls_ca_path(void);

/* Creates <dir>/ca.key and <dir>/ca.crt (EC P-256, self-signed) unless both exist. */
int core_tls_ca_ensure(const char *dir, char **err);

/*
 * A leaf certificate for <host> (an IPv4/IPv6 address gets an IP SAN, a name a
 * DNS SAN) signed by the CA in <dir>, valid for 10 years. PEM texts in
 * *cert_pem and *key_pem (caller frees).
 */
int core_tls_issue(const char *dir, const char *host, char **cert_pem, char **key_pem, char **err);

/*
 * The token of the agents on the host at <addr>: HMAC-SHA256(<pool_token>,
 * "sky-agent:" <addr>) in hex. Each host gets only its own, so what one
 * host holds opens no other host's agents; the controller derives any of
 * them from the pool's token, which never leaves $SKY_HOME.
 */
void core_host_token(const char *pool_token, const char *addr, char out[65]);

/* SHA-256 of <len> bytes as 64 lowercase hex digits plus NUL in <out>. */
void core_sha256_hex(const void *data, size_t len, char out[65]);
/* SHA-256 of a file's content; -errno if it cannot be read. */
int core_sha256_file(const char *path, char out[65]);

#endif
