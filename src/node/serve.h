/* The node's network services: gRPC (listener + HTTP/2 server with the
 * ledger.v1 services, reflection and grpc.health.v1) and the metrics HTTP
 * endpoint, plus the data-directory probe that feeds health.
 *
 * Happy path: ldg_serve_start binds the metrics address and the listen
 * address, registers every service and starts accepting. ldg_serve_stop
 * marks the node as shutting down (health NOT_SERVING, Watch streams end),
 * stops accepting, sends GOAWAY, lets in-flight calls finish within the
 * grace period, and calls |done| once everything is closed.
 *
 * Failure modes: an address that cannot be bound is a startup error naming
 * it (except the default metrics address, which only warns). */
#ifndef LDG_NODE_SERVE_H
#define LDG_NODE_SERVE_H

#include <stdbool.h>

#include <uv.h>

#include "node/config.h"
#include "node/ttl.h"
#include "rpc/rpc.h"
#include "util/err.h"

struct ldg_grpc_server;
struct ldg_listener;
struct ldg_metrics_http;

typedef void (*ldg_serve_done_cb)(void *arg);

struct ldg_serve {
    uv_loop_t *loop;                  /* borrowed */
    const struct ldg_config *cfg;     /* borrowed */
    const char *data_path;            /* borrowed: probed for writability */
    uint64_t node_id;
    struct ldg_rpc_ctx rpc;           /* handed to every ledger.v1 handler */
    struct ldg_grpc_server *grpc;     /* owned */
    struct ldg_listener *listener;    /* owned */
    struct ldg_metrics_http *metrics; /* owned, NULL when disabled */
    uv_timer_t probe_timer;           /* data directory probe */
    uv_timer_t drain_timer;           /* stop: waits for thread-pool jobs */
    struct ldg_ttl ttl;               /* leader TTL job (when a cluster runs) */
    bool ttl_started;
    bool disk_writable;               /* last probe result */
    bool shutting_down;
    int pending_closes;               /* closes in flight during stop */
    ldg_serve_done_cb done;
    void *done_arg;
};

/* Start every network service. Returns 0, or an LDG_E* code with |err|
 * naming what failed; on failure only closing handles are left on the loop
 * (run it once more to release them). */
int ldg_serve_start(struct ldg_serve *s, uv_loop_t *loop, const struct ldg_config *cfg,
                    const char *data_path, uint64_t node_id, struct ldg_err *err);

/* Graceful stop; |done| fires once, later, when everything is closed and freed. */
void ldg_serve_stop(struct ldg_serve *s, ldg_serve_done_cb done, void *arg);

/* The node's current status as health checks see it. */
void ldg_serve_node_status(void *arg, struct ldg_node_status *out);

#endif
