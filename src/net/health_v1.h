/* The standard gRPC health service, grpc.health.v1.Health (Check, Watch),
 * for Kubernetes gRPC probes and grpc-health-probe.
 *
 * Status comes from a provider callback set by the node layer. Check answers
 * the current status, or NOT_FOUND for an unknown service name. Watch sends
 * the current status (SERVICE_UNKNOWN for an unknown name, without ending the
 * call), then one message each time ldg_health_v1_notify finds that the
 * status changed, until the client cancels.
 *
 * Everything here runs on the loop thread; the module state is global. */
#ifndef LDG_NET_HEALTH_V1_H
#define LDG_NET_HEALTH_V1_H

#include <stddef.h>

#include "net/grpc.h"

/* Values as in grpc.health.v1.HealthCheckResponse.ServingStatus. */
enum ldg_health_v1_status {
    LDG_HEALTH_V1_UNKNOWN = 0,
    LDG_HEALTH_V1_SERVING = 1,
    LDG_HEALTH_V1_NOT_SERVING = 2,
    LDG_HEALTH_V1_SERVICE_UNKNOWN = 3, /* Watch only */
};

/* Status of |service| ("" = the whole server; never NULL): return
 * LDG_HEALTH_V1_SERVING or LDG_HEALTH_V1_NOT_SERVING, or LDG_ENOTFOUND when
 * the name is unknown. Any other value counts as NOT_SERVING. Called on the
 * loop thread from the handlers and from ldg_health_v1_notify; it must not
 * call back into this module. */
typedef int (*ldg_health_v1_provider_fn)(const char *service, void *arg);

/* Set the provider (NULL restores the default: "" is SERVING, every other
 * name is unknown). |arg| is borrowed and passed to |fn|. Does not notify. */
void ldg_health_v1_set_provider(ldg_health_v1_provider_fn fn, void *arg);

/* The status the provider gives |service| right now: an enum
 * ldg_health_v1_status value, SERVICE_UNKNOWN for an unknown name. */
int ldg_health_v1_status(const char *service);

/* The status may have changed: ask the provider again for every Watch and
 * send the new status to those whose status differs from the last one sent.
 * A watcher whose send queue is full is ended with RESOURCE_EXHAUSTED. */
void ldg_health_v1_notify(void);

/* Number of Watch calls in progress. */
size_t ldg_health_v1_watch_count(void);

/* End every Watch call with UNAVAILABLE ("server shutting down"), e.g. when
 * the server stops. */
void ldg_health_v1_shutdown(void);

/* The methods to register on the server: *out points to a static array of
 * *n = 2 entries (grpc.health.v1.Health/Check LDG_GRPC_UNARY and /Watch
 * LDG_GRPC_SERVER_STREAM). Returns 0. */
int ldg_health_v1_methods(const struct ldg_grpc_method **out, size_t *n);

/* Register both methods through |add| (same shape as ldg_rpc_add_fn in
 * rpc/rpc.h) on |server|. Returns 0 or the first error of |add|. */
int ldg_health_v1_register(int (*add)(void *server, const struct ldg_grpc_method *m),
                           void *server);

#endif
