/* Shared handler helpers. See common.h. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "cluster/cluster.h"
#include "ledger/local_health.h"
#include "rpc/common.h"
#include "rpc/validate.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/metrics.h"

/* Reads: time spent serving from the local LMDB snapshot (txn begin to end). */
static void observe_read(uint64_t start_ns)
{
    static struct ldg_metric_family *f;
    if (f == NULL)
        f = ldg_metrics_histogram("ledger_read_latency_seconds",
                                  "Time to serve a read from this node's local state "
                                  "(read transaction begin to end).",
                                  0, NULL, ldg_metrics_latency_buckets,
                                  ldg_metrics_latency_buckets_len);
    ldg_metrics_observe(f, NULL, (double)(uv_hrtime() - start_ns) / 1e9);
}

void ldg_rpc_observe_write(uint64_t start_ns, bool ok)
{
    static const char *const labels[] = {"status"};
    static struct ldg_metric_family *f;
    if (f == NULL)
        f = ldg_metrics_histogram("ledger_write_latency_seconds",
                                  "Time from accepting a write to its result (Raft commit and "
                                  "apply included).",
                                  1, labels, ldg_metrics_latency_buckets,
                                  ldg_metrics_latency_buckets_len);
    const char *v[] = {ok ? "ok" : "error"};
    ldg_metrics_observe(f, v, (double)(uv_hrtime() - start_ns) / 1e9);
}

struct ldg_ledger *ldg_rpc_ledger(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx)
{
    if (ctx->cluster == NULL) {
        ldg_grpc_call_fail(call, LDG_GRPC_UNAVAILABLE,
                           "no leader: this node has not started its cluster yet "
                           "(bootstrapping or joining); retry shortly");
        return NULL;
    }
    return ldg_cluster_ledger(ctx->cluster);
}

void ldg_rpc_fail_storage(struct ldg_grpc_call *call, int rv, const char *what)
{
    LDG_LOG(LDG_LOG_ERROR, "rpc", "storage error op=%s err=%s", what, ldg_strerror(rv));
    ldg_grpc_call_fail(call, LDG_GRPC_INTERNAL, "%s: storage error (%s); see the server log",
                       what, ldg_strerror(rv));
}

int ldg_rpc_txn_begin(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx,
                      struct ldg_rpc_read *r)
{
    memset(r, 0, sizeof *r);
    r->ledger = ldg_rpc_ledger(call, ctx);
    if (r->ledger == NULL)
        return -1;
    int rv = ldg_store_txn_begin(r->ledger->store, true, &r->txn);
    if (rv != 0) {
        r->txn = NULL;
        ldg_rpc_fail_storage(call, rv, "begin read transaction");
        return -1;
    }
    r->start_ns = uv_hrtime();
    return 0;
}

void ldg_rpc_read_end(struct ldg_rpc_read *r)
{
    if (r->txn) {
        mdb_txn_abort(r->txn);
        if (r->start_ns != 0)
            observe_read(r->start_ns);
    }
    r->txn = NULL;
}

int ldg_rpc_open_chain(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx,
                       const Ledger__V1__OrganizationSlug *o, const Ledger__V1__VaultSlug *v,
                       enum ldg_rpc_access access, struct ldg_rpc_read *r)
{
    char msg[256];
    uint64_t org, vault;
    if (ldg_rpc_check_chain(o, v, &org, &vault, msg, sizeof msg) != 0) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT, "%s", msg);
        return -1;
    }
    return ldg_rpc_chain_begin(call, ctx, org, vault, access, r);
}

int ldg_rpc_chain_begin(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx, uint64_t org,
                        uint64_t vault, enum ldg_rpc_access access, struct ldg_rpc_read *r)
{
    if (ldg_rpc_txn_begin(call, ctx, r) != 0)
        return -1;
    int rv = ldg_ledger_get_org(r->ledger, r->txn, org, &r->org);
    if (rv == LDG_ENOTFOUND) {
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND,
                           "organization %" PRIu64 " not found (ListOrganizations shows the "
                           "existing ones)", org);
        goto fail;
    }
    if (rv != 0) {
        ldg_rpc_fail_storage(call, rv, "read organization");
        goto fail;
    }
    if (r->org.status == LDG_STATUS_DELETED && access != LDG_RPC_INSPECT) {
        if (access == LDG_RPC_WRITE)
            ldg_grpc_call_fail(call, LDG_GRPC_FAILED_PRECONDITION,
                               "organization %" PRIu64 " is deleted: writes refused", org);
        else
            ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND,
                               "organization %" PRIu64 " not found (deleted)", org);
        goto fail;
    }
    if (access == LDG_RPC_WRITE && r->org.status != LDG_STATUS_ACTIVE) {
        ldg_grpc_call_fail(call, LDG_GRPC_FAILED_PRECONDITION,
                           "organization %" PRIu64 " is not ACTIVE: writes refused", org);
        goto fail;
    }
    rv = ldg_ledger_get_chain(r->ledger, r->txn, org, vault, &r->chain);
    if (rv == LDG_ENOTFOUND) {
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND,
                           "vault %" PRIu64 " of organization %" PRIu64 " not found "
                           "(ListVaults shows the existing ones)", vault, org);
        goto fail;
    }
    if (rv != 0) {
        ldg_rpc_fail_storage(call, rv, "read chain");
        goto fail;
    }
    rv = ldg_local_health_apply(r->ledger->store, r->txn, &r->chain);
    if (rv != 0) {
        ldg_rpc_fail_storage(call, rv, "read this node's chain health");
        goto fail;
    }
    int st = r->chain.status;
    if (access == LDG_RPC_INSPECT)
        return 0;
    if (access == LDG_RPC_READ) {
        if (st == LDG_STATUS_DELETED) {
            ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND,
                               "vault %" PRIu64 " of organization %" PRIu64 " not found (deleted)",
                               vault, org);
            goto fail;
        }
        if (st == LDG_STATUS_DIVERGED || st == LDG_STATUS_RECOVERING) {
            ldg_grpc_call_fail(call, LDG_GRPC_UNAVAILABLE,
                               "vault %" PRIu64 " of organization %" PRIu64 " is %s on this "
                               "node: read from another node, or run RecoverVault here",
                               vault, org, st == LDG_STATUS_DIVERGED ? "DIVERGED" : "RECOVERING");
            goto fail;
        }
    } else if (st != LDG_STATUS_ACTIVE) {
        const char *name = st == LDG_STATUS_READ_ONLY    ? "READ_ONLY"
                           : st == LDG_STATUS_DIVERGED   ? "DIVERGED"
                           : st == LDG_STATUS_RECOVERING ? "RECOVERING"
                           : st == LDG_STATUS_DELETED    ? "DELETED"
                                                         : "not ACTIVE";
        ldg_grpc_call_fail(call, LDG_GRPC_FAILED_PRECONDITION,
                           "vault %" PRIu64 " of organization %" PRIu64 " is %s: writes refused "
                           "until it is ACTIVE again (see GetVault / HealthService)",
                           vault, org, name);
        goto fail;
    }
    return 0;
fail:
    ldg_rpc_read_end(r);
    return -1;
}

void ldg_rpc_fail_cluster(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx, int status,
                          const char *what)
{
    switch (status) {
    case LDG_ENOTLEADER: {
        struct ldg_cluster_status st;
        memset(&st, 0, sizeof st);
        if (ctx->cluster)
            ldg_cluster_get_status(ctx->cluster, &st);
        if (st.leader_address) {
            ldg_grpc_call_add_trailer(call, "x-ledger-leader", st.leader_address);
            ldg_grpc_call_fail(call, LDG_GRPC_UNAVAILABLE,
                               "no leader: this node is not the leader; %s must go to the leader "
                               "at %s", what, st.leader_address);
        } else {
            ldg_grpc_call_fail(call, LDG_GRPC_UNAVAILABLE,
                               "no leader: this node is not the leader and knows no leader "
                               "(election in progress or quorum lost); retry %s later", what);
        }
        return;
    }
    case LDG_ENOLEADER:
        ldg_grpc_call_fail(call, LDG_GRPC_UNAVAILABLE,
                           "no leader: quorum lost or election in progress; retry %s later", what);
        return;
    case LDG_ETIMEDOUT:
        ldg_grpc_call_fail(call, LDG_GRPC_DEADLINE_EXCEEDED,
                           "deadline exceeded before %s completed; a write may still commit: "
                           "retry with the same idempotency_key", what);
        return;
    case LDG_ECANCELED:
        ldg_grpc_call_fail(call, LDG_GRPC_UNAVAILABLE,
                           "no leader: this node is stopping or lost leadership during %s; "
                           "retry (with the same idempotency_key for writes)", what);
        return;
    case LDG_EFULL:
    case LDG_EBUSY:
        ldg_grpc_call_fail(call, LDG_GRPC_RESOURCE_EXHAUSTED,
                           "server overloaded during %s: retry with backoff", what);
        return;
    default:
        LDG_LOG(LDG_LOG_ERROR, "rpc", "cluster error op=%s err=%s", what, ldg_strerror(status));
        ldg_grpc_call_fail(call, LDG_GRPC_INTERNAL, "%s failed: %s", what, ldg_strerror(status));
        return;
    }
}

int ldg_rpc_timeout_ms(struct ldg_grpc_call *call, uint64_t *timeout_ms)
{
    int64_t rem = ldg_grpc_call_remaining_ms(call);
    if (rem < 0) {
        *timeout_ms = 0;
        return 0;
    }
    if (rem == 0) {
        ldg_grpc_call_fail(call, LDG_GRPC_DEADLINE_EXCEEDED, "deadline exceeded before the "
                           "request was started");
        return -1;
    }
    *timeout_ms = (uint64_t)rem;
    return 0;
}

int64_t ldg_rpc_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

struct lin_req {
    struct ldg_grpc_call *call;
    struct ldg_rpc_ctx *ctx;
    const ProtobufCMessageDescriptor *desc;
    uint8_t *bytes;
    size_t len;
    ldg_rpc_read_fn fn;
};

static void lin_barrier_cb(void *arg, int status)
{
    struct lin_req *lr = arg;
    if (status != 0) {
        ldg_rpc_fail_cluster(lr->call, lr->ctx, status, "the linearizable read");
    } else {
        ProtobufCMessage *req = protobuf_c_message_unpack(lr->desc, NULL, lr->len, lr->bytes);
        if (req == NULL) {
            ldg_grpc_call_fail(lr->call, LDG_GRPC_INTERNAL, "request copy unreadable");
        } else {
            lr->fn(lr->call, req, lr->ctx);
            protobuf_c_message_free_unpacked(req, NULL);
        }
    }
    ldg_free(lr->bytes);
    ldg_free(lr);
}

void ldg_rpc_linearizable(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx,
                          const ProtobufCMessage *req, ldg_rpc_read_fn fn)
{
    if (ctx->cluster == NULL) {
        ldg_rpc_ledger(call, ctx); /* fails the call */
        return;
    }
    uint64_t timeout_ms;
    if (ldg_rpc_timeout_ms(call, &timeout_ms) != 0)
        return;
    struct lin_req *lr = ldg_calloc(1, sizeof *lr);
    lr->call = call;
    lr->ctx = ctx;
    lr->fn = fn;
    lr->desc = req->descriptor;
    lr->len = protobuf_c_message_get_packed_size(req);
    lr->bytes = ldg_malloc(lr->len ? lr->len : 1);
    protobuf_c_message_pack(req, lr->bytes);
    int rv = ldg_cluster_barrier(ctx->cluster, timeout_ms, lin_barrier_cb, lr);
    if (rv != 0) {
        ldg_free(lr->bytes);
        ldg_free(lr);
        ldg_rpc_fail_cluster(call, ctx, rv, "the linearizable read");
    }
}
