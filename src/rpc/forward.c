/* Leader forwarding and the peer client pool (see forward.h). */
#include "rpc/forward.h"

#include <inttypes.h>
#include <string.h>

#include "cluster/cluster.h"
#include "rpc/rpc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

struct pool_entry {
    struct pool_entry *next;
    char *addr;
    struct ldg_grpc_client *cl;
};

struct ldg_rpc_pool {
    uv_loop_t *loop;
    struct pool_entry *entries;
    bool closing;
    int pending;
    void (*close_cb)(void *);
    void *close_arg;
};

struct ldg_rpc_pool *ldg_rpc_pool_new(uv_loop_t *loop)
{
    struct ldg_rpc_pool *p = ldg_calloc(1, sizeof *p);
    p->loop = loop;
    return p;
}

int ldg_rpc_pool_get(struct ldg_rpc_pool *p, const char *addr, struct ldg_grpc_client **out)
{
    if (p->closing)
        return LDG_ECLOSED;
    for (struct pool_entry *e = p->entries; e != NULL; e = e->next)
        if (strcmp(e->addr, addr) == 0) {
            *out = e->cl;
            return 0;
        }
    struct ldg_grpc_client *cl;
    int rv = ldg_grpc_client_new(p->loop, addr, &cl);
    if (rv != 0)
        return rv;
    struct pool_entry *e = ldg_calloc(1, sizeof *e);
    e->addr = ldg_strdup(addr);
    e->cl = cl;
    e->next = p->entries;
    p->entries = e;
    *out = cl;
    return 0;
}

static void pool_client_closed_cb(void *arg)
{
    struct ldg_rpc_pool *p = arg;
    if (--p->pending > 0)
        return;
    void (*cb)(void *) = p->close_cb;
    void *cb_arg = p->close_arg;
    ldg_free(p);
    if (cb)
        cb(cb_arg);
}

void ldg_rpc_pool_close(struct ldg_rpc_pool *p, void (*cb)(void *arg), void *arg)
{
    p->closing = true;
    p->close_cb = cb;
    p->close_arg = arg;
    p->pending = 1;
    struct pool_entry *e = p->entries;
    p->entries = NULL;
    while (e != NULL) {
        struct pool_entry *next = e->next;
        p->pending++;
        ldg_grpc_client_close(e->cl, pool_client_closed_cb, p);
        ldg_free(e->addr);
        ldg_free(e);
        e = next;
    }
    pool_client_closed_cb(p);
}

/* ---- forwarding ---- */

struct fwd {
    struct ldg_grpc_call *call;
    uint64_t leader_id;
    char addr[128];
};

static void fwd_cb(const struct ldg_grpc_client_result *res, void *arg)
{
    struct fwd *f = arg;
    if (res->code == LDG_GRPC_OK)
        ldg_grpc_call_reply_raw(f->call, res->raw, res->raw_len);
    else if (res->code == LDG_GRPC_UNAVAILABLE || res->code == LDG_GRPC_CANCELLED)
        ldg_grpc_call_fail(f->call, res->code, "forwarding to the leader %" PRIu64 " at %s: %s",
                           f->leader_id, f->addr, res->message);
    else
        ldg_grpc_call_fail(f->call, res->code, "%s", res->message);
    ldg_free(f);
}

/* The caller's metadata that travels with a forwarded call (the leader
 * checks `authorization` itself): every header the client may send
 * (ldg_grpc_client_header_allowed: no pseudo-headers, no grpc-* — the
 * grpc-timeout is recomputed from the remaining deadline —, no
 * connection-specific ones), values within the client's limit, at most
 * LDG_GRPC_CLIENT_MAX_HEADERS. Fills |out| (name, value, ..., NULL) with
 * pointers into |call| and returns the number of entries (2 per header). */
static size_t forward_headers(const struct ldg_grpc_call *call,
                              const char *out[2 * LDG_GRPC_CLIENT_MAX_HEADERS + 1])
{
    size_t n = 0;
    const char *name, *value;
    for (size_t i = 0; n < 2 * LDG_GRPC_CLIENT_MAX_HEADERS &&
                       ldg_grpc_call_header_at(call, i, &name, &value);
         i++) {
        if (!ldg_grpc_client_header_allowed(name) ||
            strlen(value) > LDG_GRPC_CLIENT_MAX_HEADER_VALUE || strchr(value, '\r') ||
            strchr(value, '\n'))
            continue;
        out[n++] = name;
        out[n++] = value;
    }
    out[n] = NULL;
    return n;
}

void ldg_rpc_forward(struct ldg_rpc_ctx *ctx, struct ldg_grpc_call *call, uint64_t leader_id,
                     const char *addr)
{
    int64_t left = ldg_grpc_call_remaining_ms(call);
    if (left == 0) {
        ldg_grpc_call_fail(call, LDG_GRPC_DEADLINE_EXCEEDED, "deadline passed before forwarding");
        return;
    }
    uint64_t timeout = left < 0 ? LDG_RPC_FORWARD_TIMEOUT_MS : (uint64_t)left;
    struct ldg_grpc_client *cl = NULL;
    int rv = ctx->pool ? ldg_rpc_pool_get(ctx->pool, addr, &cl) : LDG_ECLOSED;
    if (rv != 0) {
        ldg_grpc_call_fail(call, LDG_GRPC_UNAVAILABLE,
                           "cannot forward to the leader %" PRIu64 " at %s: %s", leader_id, addr,
                           ldg_strerror(rv));
        return;
    }
    size_t len = 0;
    const uint8_t *bytes = ldg_grpc_call_request_bytes(call, &len);
    const char *hdrs[2 * LDG_GRPC_CLIENT_MAX_HEADERS + 1];
    size_t nh = forward_headers(call, hdrs);
    struct fwd *f = ldg_calloc(1, sizeof *f);
    f->call = call;
    f->leader_id = leader_id;
    snprintf(f->addr, sizeof f->addr, "%s", addr);
    rv = ldg_grpc_client_call_raw_ex(cl, ldg_grpc_call_path(call),
                                     bytes ? bytes : (const uint8_t *)"", len,
                                     nh > 0 ? hdrs : NULL, NULL, timeout, fwd_cb, f);
    if (rv != 0) {
        ldg_free(f);
        ldg_grpc_call_fail(call, LDG_GRPC_UNAVAILABLE,
                           "cannot forward to the leader %" PRIu64 " at %s: %s", leader_id, addr,
                           ldg_strerror(rv));
    }
}

int ldg_rpc_route_to_leader(struct ldg_rpc_ctx *ctx, struct ldg_grpc_call *call)
{
    if (ctx->cluster == NULL) {
        ldg_grpc_call_fail(call, LDG_GRPC_UNAVAILABLE,
                           "this node is not a member of a cluster yet (bootstrap or join in "
                           "progress); retry, or send the request to a member");
        return 1;
    }
    struct ldg_cluster_status st;
    ldg_cluster_get_status(ctx->cluster, &st);
    if (st.is_leader)
        return 0;
    if (!st.is_member) {
        ldg_grpc_call_fail(call, LDG_GRPC_UNAVAILABLE,
                           "this node is not a member of the cluster (it was removed); send "
                           "the request to a member");
        return 1;
    }
    if (st.leader_id == 0 || st.leader_address == NULL) {
        ldg_grpc_call_fail(call, LDG_GRPC_UNAVAILABLE,
                           "no leader: quorum lost or election in progress; retry shortly");
        return 1;
    }
    ldg_rpc_forward(ctx, call, st.leader_id, st.leader_address);
    return 1;
}
