#include "util/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <lmdb.h>
#include <uv.h>

const char *ldg_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define LDG_ERR_CASE(name, value, text) \
    case name:                          \
        return text;
        LDG_ERR_TABLE(LDG_ERR_CASE)
#undef LDG_ERR_CASE
    default:
        return "unknown error";
    }
}

int ldg_err_set(struct ldg_err *e, int code, const char *fmt, ...)
{
    if (e == NULL)
        return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

int ldg_err_wrap(struct ldg_err *e, const char *fmt, ...)
{
    if (e == NULL)
        return LDG_EINTERNAL;
    char prefix[LDG_ERRMSG_SIZE];
    char old[LDG_ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    snprintf(e->msg, sizeof e->msg, "%s: %s", prefix, old);
    return e->code != 0 ? e->code : LDG_EINTERNAL;
}

int ldg_err_from_errno(int err)
{
    switch (err) {
    case 0:
        return 0;
    case ENOMEM:
        return LDG_ENOMEM;
    case ENOENT:
        return LDG_ENOTFOUND;
    case EEXIST:
        return LDG_EEXIST;
    case EINVAL:
        return LDG_EINVAL;
    case ETIMEDOUT:
        return LDG_ETIMEDOUT;
    case ECANCELED:
        return LDG_ECANCELED;
    case EACCES:
    case EPERM:
        return LDG_EPERM;
    case EAGAIN:
        return LDG_EAGAIN;
    case ENOSPC:
    case EDQUOT:
        return LDG_EFULL;
    default:
        return LDG_EIO;
    }
}

int ldg_err_from_uv(int uv_err)
{
    if (uv_err == 0)
        return 0;
    if (uv_err == UV_ECANCELED)
        return LDG_ECANCELED;
    if (uv_err == UV_EOF)
        return LDG_ECLOSED;
    if (uv_err < 0)
        return ldg_err_from_errno(-uv_err);
    return LDG_EIO;
}

int ldg_err_from_mdb(int mdb_err)
{
    switch (mdb_err) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return LDG_ENOTFOUND;
    case MDB_KEYEXIST:
        return LDG_EEXIST;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case MDB_READERS_FULL:
        return LDG_EFULL;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
        return LDG_ECORRUPT;
    case MDB_BAD_VALSIZE:
        return LDG_EINVAL;
    default:
        if (mdb_err > 0)
            return ldg_err_from_errno(mdb_err);
        return LDG_EIO;
    }
}
