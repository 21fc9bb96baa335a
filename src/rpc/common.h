/* Helpers shared by the ledger.v1 service handlers: opening a chain for a
 * read, mapping cluster errors to gRPC status, deadlines, linearizable
 * reads. Functions that take a call either succeed (return 0) or END the
 * call with the right status and return non-zero: the handler then just
 * returns. */
#ifndef LDG_RPC_COMMON_H
#define LDG_RPC_COMMON_H

#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

#include "ledger/ledger.h"
#include "ledger/v1/ledger.pb-c.h"
#include "net/grpc.h"
#include "rpc/rpc.h"

/* A read transaction on one chain. */
struct ldg_rpc_read {
    struct ldg_ledger *ledger;
    MDB_txn *txn;
    struct ldg_chain_info chain;
    struct ldg_org_info org;
    uint64_t start_ns; /* uv_hrtime at begin: ledger_read_latency_seconds */
};

enum ldg_rpc_access {
    LDG_RPC_READ = 0,    /* DIVERGED/RECOVERING -> UNAVAILABLE, DELETED -> NOT_FOUND */
    LDG_RPC_WRITE = 1,   /* not ACTIVE -> FAILED_PRECONDITION */
    LDG_RPC_INSPECT = 2, /* any status (integrity checks, snapshots): existence only */
};

/* The ledger of the node, or NULL after failing the call UNAVAILABLE. */
struct ldg_ledger *ldg_rpc_ledger(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx);

/* Begin a read txn (r->txn) with no chain lookup. */
int ldg_rpc_txn_begin(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx,
                      struct ldg_rpc_read *r);

/* Begin a read txn and look up (org, vault): unknown -> NOT_FOUND; then the
 * access rules above, on this node's effective status (r->chain.status
 * includes the node-local divergence marker, ledger/local_health.h). On success the caller ends with ldg_rpc_read_end. */
int ldg_rpc_chain_begin(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx, uint64_t org,
                        uint64_t vault, enum ldg_rpc_access access, struct ldg_rpc_read *r);
void ldg_rpc_read_end(struct ldg_rpc_read *r);

/* The request's organization_slug and vault fields: validate them
 * (INVALID_ARGUMENT naming the field) then ldg_rpc_chain_begin. The chain is
 * r->chain (r->chain.org, r->chain.vault). */
int ldg_rpc_open_chain(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx,
                       const Ledger__V1__OrganizationSlug *o, const Ledger__V1__VaultSlug *v,
                       enum ldg_rpc_access access, struct ldg_rpc_read *r);

/* Fail |call| for a cluster status (LDG_ENOTLEADER, LDG_ENOLEADER,
 * LDG_ETIMEDOUT, LDG_ECANCELED, other). |what| names the operation. */
void ldg_rpc_fail_cluster(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx, int status,
                          const char *what);

/* Fail |call| for an unexpected storage error. */
void ldg_rpc_fail_storage(struct ldg_grpc_call *call, int rv, const char *what);

/* Record one write's latency (submit to result) in ledger_write_latency_seconds
 * with label status = "ok" (applied, even a condition failure) or "error". */
void ldg_rpc_observe_write(uint64_t start_ns, bool ok);

/* Submit timeout from the client's deadline: 0 = none. Fails the call with
 * DEADLINE_EXCEEDED (returns non-zero) when the deadline already passed. */
int ldg_rpc_timeout_ms(struct ldg_grpc_call *call, uint64_t *timeout_ms);

/* Serving node's clock, Unix seconds (hides expired entities on reads). */
int64_t ldg_rpc_now_s(void);

typedef void (*ldg_rpc_read_fn)(struct ldg_grpc_call *call, const ProtobufCMessage *req,
                                struct ldg_rpc_ctx *ctx);

/* Run |fn| with (a copy of) |req| once a linearizable barrier completed on
 * this node (the leader); fails the call UNAVAILABLE/DEADLINE_EXCEEDED when
 * the barrier fails. */
void ldg_rpc_linearizable(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx,
                          const ProtobufCMessage *req, ldg_rpc_read_fn fn);

#endif
