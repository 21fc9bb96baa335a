/* AdminService cluster methods: JoinCluster, LeaveCluster, GetClusterInfo,
 * GetNodeInfo (SPEC §4, §3.5).
 *
 * JoinCluster and LeaveCluster run on the leader (the registry forwards
 * them from followers). JoinCluster answers once the node is in the
 * configuration (libraft SPARE; promotion continues on the leader) with the
 * cluster id the joiner persists. LeaveCluster answers once the removal is
 * committed; removing the leader transfers leadership first and then
 * forwards the same request to the new leader. GetClusterInfo and
 * GetNodeInfo answer from this node's view, and work before it is a
 * member (empty cluster id, no members). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "ledger/v1/ledger.pb-c.h"
#include "node/config.h"
#include "rpc/forward.h"
#include "rpc/rpc.h"
#include "util/mem.h"

static int parse_node_id(const Ledger__V1__NodeId *n, uint64_t *out)
{
    if (n == NULL || n->id == NULL || n->id[0] < '0' || n->id[0] > '9')
        return LDG_EINVAL;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(n->id, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0)
        return LDG_EINVAL;
    *out = v;
    return 0;
}

/* ---- JoinCluster ---- */

struct join_op {
    struct ldg_rpc_ctx *ctx;
    struct ldg_grpc_call *call;
    uint64_t id;
};

static void join_done(void *arg, int status, const char *msg)
{
    struct join_op *op = arg;
    if (status != 0) {
        ldg_grpc_call_fail(op->call, ldg_grpc_code_from_err(status), "join of node %" PRIu64
                           " failed: %s", op->id, msg);
        ldg_free(op);
        return;
    }
    struct ldg_cluster_status st;
    ldg_cluster_get_status(op->ctx->cluster, &st);
    char uuid[37], lid[24];
    ldg_cluster_id_format(st.cluster_id, uuid);
    snprintf(lid, sizeof lid, "%" PRIu64, op->ctx->node_id);
    Ledger__V1__NodeId leader = LEDGER__V1__NODE_ID__INIT;
    leader.id = lid;
    Ledger__V1__JoinClusterResponse resp = LEDGER__V1__JOIN_CLUSTER_RESPONSE__INIT;
    resp.success = 1;
    resp.message = (char *)msg;
    resp.leader_id = &leader;
    resp.leader_address = (char *)(op->ctx->cfg ? op->ctx->cfg->advertise : "");
    resp.cluster_id = uuid;
    ldg_grpc_call_reply(op->call, &resp.base);
    ldg_free(op);
}

static void join_cluster(struct ldg_grpc_call *call, const ProtobufCMessage *req, void *ud)
{
    struct ldg_rpc_ctx *ctx = ud;
    const Ledger__V1__JoinClusterRequest *r = (const Ledger__V1__JoinClusterRequest *)req;
    uint64_t id;
    if (parse_node_id(r->node_id, &id) != 0) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT,
                           "node_id.id: a non-zero decimal 64-bit node ID is required");
        return;
    }
    if (r->address == NULL || strchr(r->address, ':') == NULL || strlen(r->address) >= 128) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT,
                           "address: host:port of the joining node is required (under 128 "
                           "bytes)");
        return;
    }
    struct join_op *op = ldg_calloc(1, sizeof *op);
    op->ctx = ctx;
    op->call = call;
    op->id = id;
    int rv = ldg_cluster_join(ctx->cluster, id, r->address, join_done, op);
    if (rv == 0)
        return;
    ldg_free(op);
    if (rv == LDG_ENOTLEADER && ldg_rpc_route_to_leader(ctx, call))
        return;
    if (rv == LDG_EEXIST)
        ldg_grpc_call_fail(call, LDG_GRPC_FAILED_PRECONDITION,
                           "node %" PRIu64 " is already a member at another address; remove it "
                           "with LeaveCluster first, then join again", id);
    else
        ldg_grpc_call_fail(call, ldg_grpc_code_from_err(rv), "join of node %" PRIu64 ": %s", id,
                           ldg_strerror(rv));
}

/* ---- LeaveCluster ---- */

struct leave_op {
    struct ldg_rpc_ctx *ctx;
    struct ldg_grpc_call *call;
    uint64_t id;
};

static void leave_done(void *arg, int status, const char *msg)
{
    struct leave_op *op = arg;
    if (status == LDG_ENOTLEADER) {
        /* We were the leader and handed leadership over: the new leader
         * removes us. */
        if (!ldg_rpc_route_to_leader(op->ctx, op->call))
            ldg_grpc_call_fail(op->call, LDG_GRPC_UNAVAILABLE, "%s; retry", msg);
    } else if (status != 0) {
        ldg_grpc_call_fail(op->call, ldg_grpc_code_from_err(status),
                           "removal of node %" PRIu64 " failed: %s", op->id, msg);
    } else {
        Ledger__V1__LeaveClusterResponse resp = LEDGER__V1__LEAVE_CLUSTER_RESPONSE__INIT;
        resp.success = 1;
        resp.message = (char *)msg;
        ldg_grpc_call_reply(op->call, &resp.base);
    }
    ldg_free(op);
}

static void leave_cluster(struct ldg_grpc_call *call, const ProtobufCMessage *req, void *ud)
{
    struct ldg_rpc_ctx *ctx = ud;
    const Ledger__V1__LeaveClusterRequest *r = (const Ledger__V1__LeaveClusterRequest *)req;
    uint64_t id;
    if (parse_node_id(r->node_id, &id) != 0) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT,
                           "node_id.id: a non-zero decimal 64-bit node ID is required (see "
                           "GetClusterInfo for the members)");
        return;
    }
    struct leave_op *op = ldg_calloc(1, sizeof *op);
    op->ctx = ctx;
    op->call = call;
    op->id = id;
    int rv = ldg_cluster_leave(ctx->cluster, id, leave_done, op);
    if (rv == 0)
        return;
    ldg_free(op);
    if (rv == LDG_ENOTLEADER && ldg_rpc_route_to_leader(ctx, call))
        return;
    if (rv == LDG_ENOTFOUND)
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND,
                           "node %" PRIu64 " is not a member of this cluster (see "
                           "GetClusterInfo)", id);
    else if (rv == LDG_EPRECOND)
        ldg_grpc_call_fail(call, LDG_GRPC_FAILED_PRECONDITION,
                           "refused: node %" PRIu64 " is the last voter; removing it would "
                           "leave the cluster without a voter", id);
    else
        ldg_grpc_call_fail(call, ldg_grpc_code_from_err(rv), "removal of node %" PRIu64 ": %s",
                           id, ldg_strerror(rv));
}

/* ---- GetClusterInfo ---- */

static Ledger__V1__NodeRole proto_role(enum ldg_member_role r)
{
    return r == LDG_MEMBER_VOTER ? LEDGER__V1__NODE_ROLE__NODE_ROLE_VOTER
                                 : LEDGER__V1__NODE_ROLE__NODE_ROLE_LEARNER;
}

static void get_cluster_info(struct ldg_grpc_call *call, const ProtobufCMessage *req, void *ud)
{
    (void)req;
    struct ldg_rpc_ctx *ctx = ud;
    Ledger__V1__GetClusterInfoResponse resp = LEDGER__V1__GET_CLUSTER_INFO_RESPONSE__INIT;
    if (ctx->cluster == NULL) {
        ldg_grpc_call_reply(call, &resp.base);
        return;
    }
    struct ldg_cluster_status st;
    ldg_cluster_get_status(ctx->cluster, &st);
    struct ldg_cluster_member *mem = NULL;
    size_t n = 0;
    ldg_cluster_members(ctx->cluster, &mem, &n);
    char uuid[37], lid[24];
    ldg_cluster_id_format(st.cluster_id, uuid);
    Ledger__V1__ClusterMember *ms = ldg_calloc(n ? n : 1, sizeof *ms);
    Ledger__V1__ClusterMember **mp = ldg_calloc(n ? n : 1, sizeof *mp);
    Ledger__V1__NodeId *ids = ldg_calloc(n ? n : 1, sizeof *ids);
    char (*idtext)[24] = ldg_calloc(n ? n : 1, sizeof *idtext);
    for (size_t i = 0; i < n; i++) {
        ledger__v1__cluster_member__init(&ms[i]);
        ledger__v1__node_id__init(&ids[i]);
        snprintf(idtext[i], sizeof idtext[i], "%" PRIu64, mem[i].id);
        ids[i].id = idtext[i];
        ms[i].node_id = &ids[i];
        ms[i].address = mem[i].address;
        ms[i].role = proto_role(mem[i].role);
        ms[i].is_leader = mem[i].is_leader;
        ms[i].reachable = mem[i].reachable;
        ms[i].match_index = mem[i].match_index;
        mp[i] = &ms[i];
    }
    Ledger__V1__NodeId leader = LEDGER__V1__NODE_ID__INIT;
    resp.cluster_id = uuid;
    resp.n_members = n;
    resp.members = mp;
    if (st.leader_id != 0) {
        snprintf(lid, sizeof lid, "%" PRIu64, st.leader_id);
        leader.id = lid;
        resp.leader_id = &leader;
    }
    resp.term = st.term;
    resp.commit_index = st.commit_index;
    ldg_grpc_call_reply(call, &resp.base);
    ldg_free(idtext);
    ldg_free(ids);
    ldg_free(mp);
    ldg_free(ms);
    ldg_free(mem);
}

/* ---- GetNodeInfo ---- */

static void get_node_info(struct ldg_grpc_call *call, const ProtobufCMessage *req, void *ud)
{
    (void)req;
    struct ldg_rpc_ctx *ctx = ud;
    Ledger__V1__GetNodeInfoResponse resp = LEDGER__V1__GET_NODE_INFO_RESPONSE__INIT;
    Ledger__V1__NodeId self = LEDGER__V1__NODE_ID__INIT, leader = LEDGER__V1__NODE_ID__INIT;
    char sid[24], lid[24], uuid[37] = "";
    snprintf(sid, sizeof sid, "%" PRIu64, ctx->node_id);
    self.id = sid;
    resp.node_id = &self;
    resp.address = (char *)(ctx->cfg ? ctx->cfg->advertise : "");
    resp.version = (char *)LDG_VERSION;
    if (ctx->cluster != NULL) {
        struct ldg_cluster_status st;
        ldg_cluster_get_status(ctx->cluster, &st);
        ldg_cluster_id_format(st.cluster_id, uuid);
        resp.is_cluster_member = st.is_member;
        resp.role = !st.is_member ? LEDGER__V1__NODE_ROLE__NODE_ROLE_UNSPECIFIED
                    : st.is_voter ? LEDGER__V1__NODE_ROLE__NODE_ROLE_VOTER
                                  : LEDGER__V1__NODE_ROLE__NODE_ROLE_LEARNER;
        resp.term = st.term;
        resp.applied_index = st.applied_index;
        resp.is_leader = st.is_leader;
        if (st.leader_id != 0) {
            snprintf(lid, sizeof lid, "%" PRIu64, st.leader_id);
            leader.id = lid;
            resp.leader_id = &leader;
        }
    }
    resp.cluster_id = uuid;
    ldg_grpc_call_reply(call, &resp.base);
}

const struct ldg_rpc_impl ldg_rpc_admin_cluster_impls[] = {
    {"ledger.v1.AdminService", "JoinCluster", LDG_GRPC_UNARY, join_cluster},
    {"ledger.v1.AdminService", "LeaveCluster", LDG_GRPC_UNARY, leave_cluster},
    {"ledger.v1.AdminService", "GetClusterInfo", LDG_GRPC_UNARY, get_cluster_info},
    {"ledger.v1.AdminService", "GetNodeInfo", LDG_GRPC_UNARY, get_node_info},
    {NULL, NULL, 0, NULL},
};
