#ifndef CORE_ERR_H
#define CORE_ERR_H

/*
 * Error convention: every fallible function returns 0 or a negative errno.
 * libuv's UV_E* are negative errnos on Linux and pass through unchanged.
 * Project-specific codes live in a range libuv does not use.
 */
#define CORE_ERRNO_MAP(XX)                                                     \
    XX(ESPEC, -5001, "invalid task or service spec")                          \
    XX(ENOCAPACITY, -5002, "no capacity for the requested resources")         \
    XX(EINVALREQ, -5003, "invalid request")                                   \
    XX(EHTTP, -5004, "unexpected HTTP status")                                \
    XX(EJSON, -5005, "malformed JSON")                                        \
    XX(ESTORE, -5006, "database error")                                       \
    XX(ENOTFOUND, -5007, "not found")                                         \
    XX(EPREEMPTED, -5008, "instance preempted")                               \
    XX(EINFEASIBLE, -5009, "no instance type satisfies the requirements")     \
    XX(ECONFLICT, -5010, "conflicting state")

enum core_errno {
#define XX(name, val, msg) CORE_##name = val,
    CORE_ERRNO_MAP(XX)
#undef XX
};

/* Static strings; never NULL. Fall back to uv_strerror()/uv_err_name(). */
const char *core_strerror(int err);
const char *core_err_name(int err);

#endif
