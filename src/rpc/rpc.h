/* The gRPC services of ledger.v1 (one file per service) and their
 * registration on the server.
 *
 * Every method of every ledger.v1 service is registered: methods whose
 * implementation has not landed answer UNIMPLEMENTED with a message naming
 * the method, so clients and operators see a clear status instead of
 * "unknown method". */
#ifndef LDG_RPC_RPC_H
#define LDG_RPC_RPC_H

#include <stdatomic.h>
#include <stdint.h>

#include "net/grpc.h"

/* What the node layer reports about itself, for health checks. */
struct ldg_node_status {
    int is_member;        /* this node is a member of a cluster */
    int has_leader;       /* a leader is known */
    int has_quorum;       /* the leader can commit */
    int disk_writable;    /* last probe of the data directory succeeded */
    int shutting_down;    /* SIGTERM received, draining */
    const char *role;     /* "leader", "follower", "learner", "none" */
    uint64_t node_id;
    uint64_t leader_id;   /* 0 when unknown */
    uint64_t term;
    uint64_t applied_index;
    uint64_t commit_index;
    int lagging;          /* far behind the leader (catching up) */
};

typedef void (*ldg_node_status_fn)(void *arg, struct ldg_node_status *out);

struct ldg_cluster;
struct ldg_config;
struct ldg_rpc_pool;
struct uv_loop_s;

struct ldg_rpc_route;

/* Shared by every service handler. Owned by the node layer; outlives the server. */
struct ldg_rpc_ctx {
    ldg_node_status_fn node_status;   /* required */
    void *node_status_arg;
    struct ldg_cluster *cluster;      /* the replicated ledger; NULL until started */
    const struct ldg_config *cfg;     /* limits and options */
    struct uv_loop_s *loop;           /* the server's loop (timers of streams, jobs) */
    char *admin_token;                /* owned; NULL: AdminService unrestricted */
    struct ldg_rpc_route **routes;    /* owned: one per implemented method */
    size_t nroutes;
    /* Additions (clustering branch): */
    uint64_t node_id;                 /* this node (0 in tests that do not care) */
    struct ldg_rpc_pool *pool;        /* peer clients for forwarding; NULL: none */
    /* Addition (integrity branch): */
    const char *data_path;            /* DATA directory (borrowed); NULL: none */
    unsigned pending_work;            /* thread-pool jobs borrowing the ledger */
    atomic_int stop_work;             /* set at shutdown: long jobs stop early */
};

/* Free what ldg_rpc_register_all and the node put in |ctx| (routes, token,
 * metrics collector). */
void ldg_rpc_ctx_close(struct ldg_rpc_ctx *ctx);

/* One implemented method: looked up by service + method name at registration. */
struct ldg_rpc_impl {
    const char *service;         /* "ledger.v1.HealthService" */
    const char *method;          /* "Check" */
    enum ldg_grpc_kind kind;
    ldg_grpc_handler_fn handler;
};

/* Registration sink: the server's add-method function, so this layer does not
 * depend on the server type. Returns 0 or a negative LDG_E* code. */
typedef int (*ldg_rpc_add_fn)(void *server, const struct ldg_grpc_method *m);

/* Register every ledger.v1 method on |server| through |add|. Implemented
 * methods go through one dispatcher (admin token check, then the handler,
 * which gets |ctx| as its user data). Returns 0 or the first error of |add|. */
int ldg_rpc_register_all(ldg_rpc_add_fn add, void *server, struct ldg_rpc_ctx *ctx);

/* Implemented methods of each service file (NULL-terminated by service == NULL). */
extern const struct ldg_rpc_impl ldg_rpc_health_impls[];
extern const struct ldg_rpc_impl ldg_rpc_admin_cluster_impls[]; /* Join/Leave/GetClusterInfo/GetNodeInfo */
extern const struct ldg_rpc_impl ldg_rpc_discovery_impls[];     /* SystemDiscoveryService */

/* Methods that run on the leader only (the registry forwards them from a
 * follower): writes, organization/vault create/delete, ForceGc, membership
 * changes, and any method whose request has a `consistency` field set to
 * LINEARIZABLE (forwarded whole; the leader's handler runs the barrier).
 * Returns non-zero when |req| of |service|/|method| must run on the leader. */
int ldg_rpc_needs_leader(const char *service, const char *method, const ProtobufCMessage *req);
extern const struct ldg_rpc_impl ldg_rpc_read_impls[];
extern const struct ldg_rpc_impl ldg_rpc_write_impls[];
extern const struct ldg_rpc_impl ldg_rpc_admin_impls[];
extern const struct ldg_rpc_impl ldg_rpc_admin_integrity_impls[]; /* CheckIntegrity, CreateSnapshot */
extern const struct ldg_rpc_impl ldg_rpc_admin_backup_impls[]; /* Create/List/RestoreBackup */
extern const struct ldg_rpc_impl ldg_rpc_admin_recover_impls[]; /* SimulateDivergence, RecoverVault */

/* Divergence metrics (admin_recover.c): register ledger_determinism_bug_total,
 * ledger_vault_recovery_{attempts,failures}_total and the ledger_vaults{status}
 * collector reading |ctx|'s ledger (called by ldg_rpc_register_all); close
 * removes the collector (called by ldg_rpc_ctx_close). */
void ldg_rpc_divergence_init(struct ldg_rpc_ctx *ctx);
void ldg_rpc_divergence_close(struct ldg_rpc_ctx *ctx);

/* Fill a node health check response (exposed for unit tests).
 * Returns the HealthStatus value and writes a reason to |msg|. */
int ldg_rpc_node_health(const struct ldg_node_status *st, char *msg, size_t msg_size);

#endif
