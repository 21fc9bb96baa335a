/* ledger.v1.HealthService: node and vault health (SPEC §4).
 *
 * Node check: HEALTHY when this node is a cluster member, knows a leader and
 * its disk is writable; DEGRADED when it has no quorum, no leader, or its
 * disk probe failed; UNAVAILABLE while shutting down. Details always carry
 * role, leader, term, applied_index and commit_index. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "crypto/sha256.h"
#include "ledger/local_health.h"
#include "ledger/v1/ledger.pb-c.h"
#include "rpc/common.h"
#include "rpc/rpc.h"

int ldg_rpc_node_health(const struct ldg_node_status *st, char *msg, size_t msg_size)
{
    if (st->shutting_down) {
        snprintf(msg, msg_size, "node is shutting down");
        return LEDGER__V1__HEALTH_STATUS__HEALTH_STATUS_UNAVAILABLE;
    }
    if (!st->disk_writable) {
        snprintf(msg, msg_size, "data directory is not writable: check disk space and permissions");
        return LEDGER__V1__HEALTH_STATUS__HEALTH_STATUS_DEGRADED;
    }
    if (!st->is_member) {
        snprintf(msg, msg_size, "node is not a member of a cluster (waiting to bootstrap or join)");
        return LEDGER__V1__HEALTH_STATUS__HEALTH_STATUS_DEGRADED;
    }
    if (!st->has_leader) {
        snprintf(msg, msg_size, "no leader: quorum lost or election in progress");
        return LEDGER__V1__HEALTH_STATUS__HEALTH_STATUS_DEGRADED;
    }
    if (!st->has_quorum) {
        snprintf(msg, msg_size, "leader has no quorum: writes unavailable");
        return LEDGER__V1__HEALTH_STATUS__HEALTH_STATUS_DEGRADED;
    }
    if (st->lagging) {
        snprintf(msg, msg_size, "node lags the leader (applied %llu of %llu committed)",
                 (unsigned long long)st->applied_index, (unsigned long long)st->commit_index);
        return LEDGER__V1__HEALTH_STATUS__HEALTH_STATUS_DEGRADED;
    }
    snprintf(msg, msg_size, "node is healthy");
    return LEDGER__V1__HEALTH_STATUS__HEALTH_STATUS_HEALTHY;
}

#define N_DETAILS 7

/* Vault check: this node's copy of the chain. UNAVAILABLE when DIVERGED,
 * DEGRADED while RECOVERING or READ_ONLY, HEALTHY otherwise. */
static void vault_health(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx,
                         const Ledger__V1__HealthCheckRequest *req)
{
    if (req->organization_slug == NULL || req->organization_slug->id == 0) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT,
                           "organization_slug is required when vault is set");
        return;
    }
    uint64_t org = req->organization_slug->id, vault = req->vault->slug;
    struct ldg_rpc_read r;
    if (ldg_rpc_txn_begin(call, ctx, &r) != 0)
        return;
    struct ldg_chain_info ch;
    int rv = ldg_ledger_get_chain(r.ledger, r.txn, org, vault, &ch);
    if (rv == 0)
        rv = ldg_local_health_apply(r.ledger->store, r.txn, &ch);
    if (rv == 0 && (vault == 0 || ch.status == LDG_STATUS_DELETED))
        rv = LDG_ENOTFOUND;
    if (rv != 0) {
        ldg_rpc_read_end(&r);
        if (rv == LDG_ENOTFOUND)
            ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND,
                               "vault %" PRIu64 " of organization %" PRIu64 " not found",
                               vault, org);
        else
            ldg_rpc_fail_storage(call, rv, "vault health");
        return;
    }
    Ledger__V1__HealthCheckResponse resp = LEDGER__V1__HEALTH_CHECK_RESPONSE__INIT;
    char message[160];
    const char *status_name;
    switch (ch.status) {
    case LDG_STATUS_DIVERGED:
        resp.status = LEDGER__V1__HEALTH_STATUS__HEALTH_STATUS_UNAVAILABLE;
        status_name = "diverged";
        snprintf(message, sizeof message,
                 "this node's copy of the vault diverged: reads go to a healthy replica; "
                 "run AdminService/RecoverVault");
        break;
    case LDG_STATUS_RECOVERING:
        resp.status = LEDGER__V1__HEALTH_STATUS__HEALTH_STATUS_DEGRADED;
        status_name = "recovering";
        snprintf(message, sizeof message, "vault is being rebuilt on this node");
        break;
    case LDG_STATUS_READ_ONLY:
        resp.status = LEDGER__V1__HEALTH_STATUS__HEALTH_STATUS_DEGRADED;
        status_name = "read_only";
        snprintf(message, sizeof message, "vault is read-only: writes are refused");
        break;
    default:
        resp.status = LEDGER__V1__HEALTH_STATUS__HEALTH_STATUS_HEALTHY;
        status_name = "active";
        snprintf(message, sizeof message, "vault is healthy");
        break;
    }
    resp.message = message;
    char height[24], root[2 * LDG_HASH_LEN + 1], tip[2 * LDG_HASH_LEN + 1];
    snprintf(height, sizeof height, "%" PRIu64, ch.height);
    ldg_hash_to_hex(ch.state_root, root);
    ldg_hash_to_hex(ch.tip_hash, tip);
    ldg_rpc_read_end(&r);

    const char *keys[] = {"height", "state_root", "block_hash", "status"};
    const char *vals[] = {height, root, tip, status_name};
    Ledger__V1__HealthCheckResponse__DetailsEntry entries[4];
    Ledger__V1__HealthCheckResponse__DetailsEntry *ptrs[4];
    for (int i = 0; i < 4; i++) {
        ledger__v1__health_check_response__details_entry__init(&entries[i]);
        entries[i].key = (char *)keys[i];
        entries[i].value = (char *)vals[i];
        ptrs[i] = &entries[i];
    }
    resp.n_details = 4;
    resp.details = ptrs;
    ldg_grpc_call_reply(call, &resp.base);
}

static void health_check(struct ldg_grpc_call *call, const ProtobufCMessage *reqm, void *ud)
{
    const Ledger__V1__HealthCheckRequest *req = (const Ledger__V1__HealthCheckRequest *)reqm;
    struct ldg_rpc_ctx *ctx = ud;

    if (req->vault != NULL) {
        vault_health(call, ctx, req);
        return;
    }

    struct ldg_node_status st;
    memset(&st, 0, sizeof st);
    ctx->node_status(ctx->node_status_arg, &st);

    char message[160];
    Ledger__V1__HealthCheckResponse resp = LEDGER__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = (Ledger__V1__HealthStatus)ldg_rpc_node_health(&st, message, sizeof message);
    resp.message = message;

    char vals[N_DETAILS][32];
    const char *keys[N_DETAILS] = {"role", "leader", "term", "applied_index",
                                   "commit_index", "node_id", "disk_writable"};
    snprintf(vals[0], sizeof vals[0], "%s", st.role ? st.role : "none");
    snprintf(vals[1], sizeof vals[1], "%" PRIu64, st.leader_id);
    snprintf(vals[2], sizeof vals[2], "%" PRIu64, st.term);
    snprintf(vals[3], sizeof vals[3], "%" PRIu64, st.applied_index);
    snprintf(vals[4], sizeof vals[4], "%" PRIu64, st.commit_index);
    snprintf(vals[5], sizeof vals[5], "%" PRIu64, st.node_id);
    snprintf(vals[6], sizeof vals[6], "%s", st.disk_writable ? "true" : "false");

    Ledger__V1__HealthCheckResponse__DetailsEntry entries[N_DETAILS];
    Ledger__V1__HealthCheckResponse__DetailsEntry *ptrs[N_DETAILS];
    for (int i = 0; i < N_DETAILS; i++) {
        ledger__v1__health_check_response__details_entry__init(&entries[i]);
        entries[i].key = (char *)keys[i];
        entries[i].value = vals[i];
        ptrs[i] = &entries[i];
    }
    resp.n_details = N_DETAILS;
    resp.details = ptrs;
    ldg_grpc_call_reply(call, &resp.base);
}

const struct ldg_rpc_impl ldg_rpc_health_impls[] = {
    {"ledger.v1.HealthService", "Check", LDG_GRPC_UNARY, health_check},
    {NULL, NULL, LDG_GRPC_UNARY, NULL},
};
