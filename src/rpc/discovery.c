/* SystemDiscoveryService (node to node; used by bootstrap, SPEC §3.2-3.3).
 *
 * Every method answers with this node's own PeerInfo: node id, advertised
 * address, cluster id and membership (empty / false before it joined),
 * expected cluster size (CLUSTER N in cluster mode, else 0) and the leader
 * it knows. Announced callers are remembered (up to MAX_ANNOUNCED, newest
 * replaces oldest) and listed by GetPeers together with the members of the
 * current configuration. Served before the node is a member. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/cluster.h"
#include "ledger/v1/ledger.pb-c.h"
#include "node/config.h"
#include "rpc/rpc.h"
#include "util/mem.h"

#define MAX_ANNOUNCED 64

struct announced {
    uint64_t id;
    char address[128];
    char cluster_id[40];
    bool member;
    time_t seen;
};
static struct announced announced[MAX_ANNOUNCED];
static size_t n_announced;

/* Storage for one PeerInfo with its strings. */
struct peer_buf {
    Ledger__V1__PeerInfo info;
    Ledger__V1__NodeId id, leader;
    char idtext[24], leadertext[24], uuid[37], leader_addr[128];
};

static void self_info(struct ldg_rpc_ctx *ctx, struct peer_buf *b)
{
    memset(b, 0, sizeof *b);
    ledger__v1__peer_info__init(&b->info);
    ledger__v1__node_id__init(&b->id);
    ledger__v1__node_id__init(&b->leader);
    snprintf(b->idtext, sizeof b->idtext, "%" PRIu64, ctx->node_id);
    b->id.id = b->idtext;
    b->info.node_id = &b->id;
    b->info.address = (char *)(ctx->cfg ? ctx->cfg->advertise : "");
    b->info.cluster_id = b->uuid;
    b->info.leader_address = b->leader_addr;
    if (ctx->cfg != NULL && ctx->cfg->mode == LDG_MODE_CLUSTER)
        b->info.expected_cluster_size = ctx->cfg->cluster_size;
    if (ctx->cluster == NULL)
        return;
    struct ldg_cluster_status st;
    ldg_cluster_get_status(ctx->cluster, &st);
    ldg_cluster_id_format(st.cluster_id, b->uuid);
    b->info.is_cluster_member = st.is_member;
    if (st.leader_id != 0) {
        snprintf(b->leadertext, sizeof b->leadertext, "%" PRIu64, st.leader_id);
        b->leader.id = b->leadertext;
        b->info.leader_id = &b->leader;
        snprintf(b->leader_addr, sizeof b->leader_addr, "%s",
                 st.leader_address ? st.leader_address : "");
    }
}

/* Record |p|; returns whether it was a usable announcement. */
static bool remember(const Ledger__V1__PeerInfo *p)
{
    if (p == NULL || p->node_id == NULL || p->node_id->id == NULL || p->address == NULL ||
        p->address[0] == '\0')
        return false;
    uint64_t id = strtoull(p->node_id->id, NULL, 10);
    if (id == 0)
        return false;
    size_t slot = n_announced;
    for (size_t i = 0; i < n_announced; i++)
        if (announced[i].id == id)
            slot = i;
    if (slot == MAX_ANNOUNCED) {
        size_t oldest = 0;
        for (size_t i = 1; i < MAX_ANNOUNCED; i++)
            if (announced[i].seen < announced[oldest].seen)
                oldest = i;
        slot = oldest;
    } else if (slot == n_announced) {
        n_announced++;
    }
    struct announced *a = &announced[slot];
    a->id = id;
    snprintf(a->address, sizeof a->address, "%s", p->address);
    snprintf(a->cluster_id, sizeof a->cluster_id, "%s", p->cluster_id ? p->cluster_id : "");
    a->member = p->is_cluster_member;
    a->seen = time(NULL);
    return true;
}

static void exchange(struct ldg_grpc_call *call, const ProtobufCMessage *req, void *ud)
{
    const Ledger__V1__ExchangeNodeInfoRequest *r = (const Ledger__V1__ExchangeNodeInfoRequest *)req;
    remember(r->caller);
    struct peer_buf b;
    self_info(ud, &b);
    Ledger__V1__ExchangeNodeInfoResponse resp = LEDGER__V1__EXCHANGE_NODE_INFO_RESPONSE__INIT;
    resp.responder = &b.info;
    ldg_grpc_call_reply(call, &resp.base);
}

static void announce(struct ldg_grpc_call *call, const ProtobufCMessage *req, void *ud)
{
    const Ledger__V1__AnnouncePeerRequest *r = (const Ledger__V1__AnnouncePeerRequest *)req;
    bool ok = remember(r->peer);
    struct peer_buf b;
    self_info(ud, &b);
    Ledger__V1__AnnouncePeerResponse resp = LEDGER__V1__ANNOUNCE_PEER_RESPONSE__INIT;
    resp.accepted = ok;
    resp.responder = &b.info;
    ldg_grpc_call_reply(call, &resp.base);
}

static void get_peers(struct ldg_grpc_call *call, const ProtobufCMessage *req, void *ud)
{
    (void)req;
    struct ldg_rpc_ctx *ctx = ud;
    struct ldg_cluster_member *mem = NULL;
    size_t nm = 0;
    if (ctx->cluster != NULL)
        ldg_cluster_members(ctx->cluster, &mem, &nm);
    size_t cap = 1 + nm + n_announced;
    struct peer_buf *bufs = ldg_calloc(cap, sizeof *bufs);
    Ledger__V1__PeerInfo **ps = ldg_calloc(cap, sizeof *ps);
    Google__Protobuf__Timestamp *ts = ldg_calloc(cap, sizeof *ts);
    size_t n = 0;
    self_info(ctx, &bufs[n]);
    ps[n] = &bufs[n].info;
    n++;
    char uuid[37] = "";
    if (ctx->cluster != NULL) {
        struct ldg_cluster_status st;
        ldg_cluster_get_status(ctx->cluster, &st);
        ldg_cluster_id_format(st.cluster_id, uuid);
    }
    for (size_t i = 0; i < nm; i++) {
        if (mem[i].id == ctx->node_id)
            continue;
        struct peer_buf *b = &bufs[n];
        ledger__v1__peer_info__init(&b->info);
        ledger__v1__node_id__init(&b->id);
        snprintf(b->idtext, sizeof b->idtext, "%" PRIu64, mem[i].id);
        b->id.id = b->idtext;
        b->info.node_id = &b->id;
        b->info.address = mem[i].address;
        memcpy(b->uuid, uuid, sizeof b->uuid);
        b->info.cluster_id = b->uuid;
        b->info.is_cluster_member = 1;
        ps[n++] = &b->info;
    }
    for (size_t i = 0; i < n_announced; i++) {
        bool dup = false;
        for (size_t j = 0; j < nm; j++)
            dup = dup || mem[j].id == announced[i].id;
        if (dup || announced[i].id == ctx->node_id)
            continue;
        struct peer_buf *b = &bufs[n];
        ledger__v1__peer_info__init(&b->info);
        ledger__v1__node_id__init(&b->id);
        snprintf(b->idtext, sizeof b->idtext, "%" PRIu64, announced[i].id);
        b->id.id = b->idtext;
        b->info.node_id = &b->id;
        b->info.address = announced[i].address;
        b->info.cluster_id = announced[i].cluster_id;
        b->info.is_cluster_member = announced[i].member;
        google__protobuf__timestamp__init(&ts[n]);
        ts[n].seconds = announced[i].seen;
        b->info.last_seen = &ts[n];
        ps[n++] = &b->info;
    }
    Ledger__V1__GetPeersResponse resp = LEDGER__V1__GET_PEERS_RESPONSE__INIT;
    resp.n_peers = n;
    resp.peers = ps;
    ldg_grpc_call_reply(call, &resp.base);
    ldg_free(ts);
    ldg_free(ps);
    ldg_free(bufs);
    ldg_free(mem);
}

const struct ldg_rpc_impl ldg_rpc_discovery_impls[] = {
    {"ledger.v1.SystemDiscoveryService", "GetPeers", LDG_GRPC_UNARY, get_peers},
    {"ledger.v1.SystemDiscoveryService", "AnnouncePeer", LDG_GRPC_UNARY, announce},
    {"ledger.v1.SystemDiscoveryService", "ExchangeNodeInfo", LDG_GRPC_UNARY, exchange},
    {NULL, NULL, 0, NULL},
};
