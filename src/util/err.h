/* Error codes shared by every layer.
 *
 * Functions return 0 on success or a negative LDG_E* code. Operations an
 * operator sees also fill an optional struct ldg_err with a message that each
 * layer prefixes with its context ("open store /var/lib/ledger: ...").
 * Library codes are translated once, at the boundary (ldg_err_from_*). */
#ifndef LDG_UTIL_ERR_H
#define LDG_UTIL_ERR_H

#include <stddef.h>

/* X(name, value, text) */
#define LDG_ERR_TABLE(X)                                                     \
    X(LDG_EINVAL, -1, "invalid argument")                                    \
    X(LDG_ENOMEM, -2, "out of memory")                                       \
    X(LDG_EIO, -3, "I/O error")                                              \
    X(LDG_ENOTFOUND, -4, "not found")                                        \
    X(LDG_EEXIST, -5, "already exists")                                      \
    X(LDG_ETOOBIG, -6, "too large")                                          \
    X(LDG_ECORRUPT, -7, "corrupt data")                                      \
    X(LDG_ECANCELED, -8, "canceled")                                         \
    X(LDG_ETIMEDOUT, -9, "timed out")                                        \
    X(LDG_ENOTLEADER, -10, "not the leader")                                 \
    X(LDG_ENOLEADER, -11, "no leader")                                       \
    X(LDG_EBUSY, -12, "busy")                                                \
    X(LDG_ECLOSED, -13, "closed")                                            \
    X(LDG_EPROTO, -14, "protocol error")                                     \
    X(LDG_EPRECOND, -15, "failed precondition")                              \
    X(LDG_EUNIMPL, -16, "not implemented")                                   \
    X(LDG_EAGAIN, -17, "try again")                                          \
    X(LDG_EPERM, -18, "permission denied")                                   \
    X(LDG_EINTERNAL, -19, "internal error")                                  \
    X(LDG_EFULL, -20, "resource exhausted")                                  \
    X(LDG_ELOCKED, -21, "locked by another process")

enum {
#define LDG_ERR_ENUM(name, value, text) name = value,
    LDG_ERR_TABLE(LDG_ERR_ENUM)
#undef LDG_ERR_ENUM
};

#define LDG_ERRMSG_SIZE 256

/* An error with a human-readable message, for operator-facing operations. */
struct ldg_err {
    int code;                    /* negative LDG_E* code, 0 when unset */
    char msg[LDG_ERRMSG_SIZE];   /* NUL-terminated message */
};

/* Text for an LDG_E* code (static storage). Unknown codes give "unknown error". */
const char *ldg_strerror(int code);

/* Set |e| (may be NULL) to |code| with a printf-style message. Returns |code|. */
int ldg_err_set(struct ldg_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the message already in |e| (may be NULL) with context: "ctx: old".
 * Returns e->code (or LDG_EINTERNAL when |e| is NULL). */
int ldg_err_wrap(struct ldg_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Translate library error codes (errno-style and library-specific). */
int ldg_err_from_errno(int err);   /* positive errno value */
int ldg_err_from_uv(int uv_err);   /* negative libuv code */
int ldg_err_from_mdb(int mdb_err); /* LMDB return code */

#endif
