/* The one table from LDG_E* codes to gRPC status codes, and code names. */
#include "net/grpc.h"
#include "util/err.h"

static const char *const code_names[] = {
    [LDG_GRPC_OK] = "OK",
    [LDG_GRPC_CANCELLED] = "CANCELLED",
    [LDG_GRPC_UNKNOWN] = "UNKNOWN",
    [LDG_GRPC_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
    [LDG_GRPC_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
    [LDG_GRPC_NOT_FOUND] = "NOT_FOUND",
    [LDG_GRPC_ALREADY_EXISTS] = "ALREADY_EXISTS",
    [LDG_GRPC_PERMISSION_DENIED] = "PERMISSION_DENIED",
    [LDG_GRPC_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
    [LDG_GRPC_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
    [LDG_GRPC_ABORTED] = "ABORTED",
    [LDG_GRPC_OUT_OF_RANGE] = "OUT_OF_RANGE",
    [LDG_GRPC_UNIMPLEMENTED] = "UNIMPLEMENTED",
    [LDG_GRPC_INTERNAL] = "INTERNAL",
    [LDG_GRPC_UNAVAILABLE] = "UNAVAILABLE",
    [LDG_GRPC_DATA_LOSS] = "DATA_LOSS",
    [LDG_GRPC_UNAUTHENTICATED] = "UNAUTHENTICATED",
};

const char *ldg_grpc_code_name(int code)
{
    if (code < 0 || code > LDG_GRPC_UNAUTHENTICATED)
        return "UNKNOWN";
    return code_names[code];
}

int ldg_grpc_code_from_err(int ldg_err)
{
    switch (ldg_err) {
    case 0:
        return LDG_GRPC_OK;
    case LDG_EINVAL:
    case LDG_ETOOBIG:
        return LDG_GRPC_INVALID_ARGUMENT;
    case LDG_ENOTFOUND:
        return LDG_GRPC_NOT_FOUND;
    case LDG_EEXIST:
        return LDG_GRPC_ALREADY_EXISTS;
    case LDG_ECANCELED:
        return LDG_GRPC_CANCELLED;
    case LDG_ETIMEDOUT:
        return LDG_GRPC_DEADLINE_EXCEEDED;
    case LDG_ENOTLEADER: /* the handler adds x-ledger-leader to the trailers */
    case LDG_ENOLEADER:
    case LDG_EBUSY:
    case LDG_ECLOSED:
    case LDG_EAGAIN:
        return LDG_GRPC_UNAVAILABLE;
    case LDG_EPRECOND:
    case LDG_ELOCKED:
        return LDG_GRPC_FAILED_PRECONDITION;
    case LDG_EUNIMPL:
        return LDG_GRPC_UNIMPLEMENTED;
    case LDG_EPERM:
        return LDG_GRPC_PERMISSION_DENIED;
    case LDG_EFULL:
        return LDG_GRPC_RESOURCE_EXHAUSTED;
    case LDG_ECORRUPT:
        return LDG_GRPC_DATA_LOSS;
    case LDG_ENOMEM:
    case LDG_EIO:
    case LDG_EPROTO:
    case LDG_EINTERNAL:
        return LDG_GRPC_INTERNAL;
    default:
        return LDG_GRPC_UNKNOWN;
    }
}
