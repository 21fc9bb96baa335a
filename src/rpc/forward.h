/* Leader forwarding and node-to-node gRPC clients.
 *
 * A pool keeps one ldg_grpc_client (one HTTP/2 connection, calls as
 * streams) per peer address, made on first use and reused; the node layer
 * owns it (ldg_rpc_ctx.pool) and closes it at stop.
 *
 * ldg_rpc_forward sends the call's encoded request bytes unchanged to the
 * same method on |addr| and answers the caller with the peer's reply bytes,
 * or with the peer's status and message (a transport failure is
 * UNAVAILABLE naming the leader). The deadline is the caller's grpc-timeout
 * (default LDG_RPC_FORWARD_TIMEOUT_MS without one), so a forwarded call never
 * outlives it. The caller's request metadata goes along (so the leader sees
 * the same `authorization`), except pseudo-headers, gRPC-reserved grpc-*
 * headers (grpc-timeout is recomputed from the remaining deadline) and
 * connection-specific ones (see ldg_grpc_client_header_allowed). */
#ifndef LDG_RPC_FORWARD_H
#define LDG_RPC_FORWARD_H

#include <stdint.h>

#include <uv.h>

#include "net/grpc.h"
#include "net/grpc_client.h"

#define LDG_RPC_FORWARD_TIMEOUT_MS 30000

struct ldg_rpc_pool;
struct ldg_rpc_ctx;

struct ldg_rpc_pool *ldg_rpc_pool_new(uv_loop_t *loop);
/* The client for |addr| (made on first use; owned by the pool). Returns 0,
 * LDG_EINVAL (bad address) or LDG_ECLOSED (pool closing). */
int ldg_rpc_pool_get(struct ldg_rpc_pool *p, const char *addr, struct ldg_grpc_client **out);
/* Close every client (pending calls fail with CANCELLED), free the pool,
 * then |cb| (may be NULL) once, later. */
void ldg_rpc_pool_close(struct ldg_rpc_pool *p, void (*cb)(void *arg), void *arg);

/* Forward |call| to |addr| (the leader, node |leader_id|) and end it with
 * the answer. Ends the call in every case. */
void ldg_rpc_forward(struct ldg_rpc_ctx *ctx, struct ldg_grpc_call *call, uint64_t leader_id,
                     const char *addr);

/* Leader routing shared by the registry and the cluster handlers: when the
 * call must run on the leader and this node is not it, forward it (or fail
 * it with UNAVAILABLE when no leader is known / this node is not a member)
 * and return 1; return 0 when the caller should handle it locally. */
int ldg_rpc_route_to_leader(struct ldg_rpc_ctx *ctx, struct ldg_grpc_call *call);

#endif
