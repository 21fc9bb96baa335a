/* ledger.v1.HealthService: node and vault health (SPEC §4).
 *
 * Node check: HEALTHY when this node is a cluster member, knows a leader and
 * its disk is writable; DEGRADED when it has no quorum, no leader, or its
 * disk probe failed; UNAVAILABLE while shutting down. Details always carry
 * role, leader, term, applied_index and commit_index. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ledger/v1/ledger.pb-c.h"
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

static void health_check(struct ldg_grpc_call *call, const ProtobufCMessage *reqm, void *ud)
{
    const Ledger__V1__HealthCheckRequest *req = (const Ledger__V1__HealthCheckRequest *)reqm;
    struct ldg_rpc_ctx *ctx = ud;

    if (req->vault != NULL) {
        /* Vault health needs the ledger state machine; until then every vault
         * slug is unknown to this node. */
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND,
                           "vault %" PRIu64 " of organization %" PRIu64 " not found",
                           req->vault->slug,
                           req->organization_slug ? req->organization_slug->id : 0);
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
