#include <uv.h>

#include "core/err.h"

const char *core_strerror(int err)
{
    switch (err) {
#define XX(name, val, msg)                                                     \
    case val:                                                                  \
        return msg;
        CORE_ERRNO_MAP(XX)
#undef XX
    }
    return uv_strerror(err);
}

const char *core_err_name(int err)
{
    switch (err) {
#define XX(name, val, msg)                                                     \
    case val:                                                                  \
        return "CORE_" #name;
        CORE_ERRNO_MAP(XX)
#undef XX
    }
    return uv_err_name(err);
}
