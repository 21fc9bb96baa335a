/* gRPC server over HTTP/2 cleartext (h2c), one nghttp2 server session per
 * connection. Connections come from the listener (net/listener.h), which has
 * already read the 24-byte client preface; the server routes each stream by
 * its :path to a registered struct ldg_grpc_method and runs the call API of
 * net/grpc.h on the loop thread.
 *
 * Limits (struct ldg_grpc_server_opts): request message size (larger ->
 * RESOURCE_EXHAUSTED, rejected from the 5-byte prefix, never buffered),
 * concurrent streams per connection (SETTINGS; more -> REFUSED_STREAM),
 * queued response bytes per stream and per connection (ldg_grpc_call_send ->
 * LDG_EFULL), idle connections (no stream for idle_timeout_ms -> GOAWAY and
 * close), request header bytes per stream (more -> RST_STREAM).
 *
 * Records ledger_grpc_requests_total{service,method,code} and
 * ledger_grpc_request_duration_seconds{service,method}; logs each finished
 * request at DEBUG (module "grpc"). */
#ifndef LDG_NET_H2_SERVER_H
#define LDG_NET_H2_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "net/grpc.h"

struct ldg_grpc_server;

struct ldg_grpc_server_opts {
    size_t max_recv_msg_bytes;       /* request message limit; default 4 MiB */
    uint32_t max_concurrent_streams; /* per connection; default 100 */
    size_t stream_send_limit_bytes;  /* queued response bytes per stream; default 8 MiB */
    size_t conn_send_limit_bytes;    /* queued response bytes per connection; default 64 MiB */
    uint64_t idle_timeout_ms;        /* connection without streams; default 300000 */
    uint64_t shutdown_grace_ms;      /* shutdown: then close what is left; default 10000 */
    size_t max_header_bytes;         /* request header bytes per stream; default 32 KiB */
};

/* Fill |o| with the defaults above. */
void ldg_grpc_server_opts_default(struct ldg_grpc_server_opts *o);

/* Create a server on |loop|. |opts| may be NULL (defaults); fields left 0 take
 * their default. Caller frees with ldg_grpc_server_free after shutdown.
 * Returns 0 or LDG_EINTERNAL (nghttp2 setup). */
int ldg_grpc_server_new(uv_loop_t *loop, const struct ldg_grpc_server_opts *opts,
                        struct ldg_grpc_server **out);

/* Register a method; |m| and its strings are copied. The route is
 * "/<service>/<method>". Returns 0, LDG_EINVAL (missing service, method or
 * descriptors) or LDG_EEXIST (route already registered). */
int ldg_grpc_server_add_method(struct ldg_grpc_server *srv, const struct ldg_grpc_method *m);

/* Call |cb| once per distinct registered service name, in registration order
 * (for server reflection). |service| is valid while the server lives. */
typedef void (*ldg_grpc_service_cb)(const char *service, void *arg);
void ldg_grpc_server_services(const struct ldg_grpc_server *srv, ldg_grpc_service_cb cb,
                              void *arg);

/* Look up a registered method by route ("/svc/Method"), or NULL. */
const struct ldg_grpc_method *ldg_grpc_server_find(const struct ldg_grpc_server *srv,
                                                   const char *path);

/* Serve an accepted connection. |tcp| was allocated with ldg_malloc and is not
 * reading; |prefix| holds the |n| bytes the listener already read from it (the
 * HTTP/2 client preface), copied here. On 0 the server owns |tcp| (closes it
 * and ldg_frees it) and uses tcp->data. Returns LDG_ECLOSED while shutting
 * down, or a libuv error via ldg_err_from_uv; then the caller still owns |tcp|. */
int ldg_grpc_server_accept(struct ldg_grpc_server *srv, uv_tcp_t *tcp, const uint8_t *prefix,
                           size_t n);

/* Open connections (for the listener's connection bound). */
size_t ldg_grpc_server_conn_count(const struct ldg_grpc_server *srv);

/* Graceful stop: every connection gets GOAWAY (no new streams), in-flight
 * calls run to their end, then connections close. After shutdown_grace_ms the
 * remaining connections are closed (their calls are cancelled). New
 * connections are refused. |cb| fires once, later, when every connection is
 * closed. Returns 0, or LDG_EBUSY when a shutdown was already started. */
typedef void (*ldg_grpc_server_shutdown_cb)(struct ldg_grpc_server *srv, void *arg);
int ldg_grpc_server_shutdown(struct ldg_grpc_server *srv, ldg_grpc_server_shutdown_cb cb,
                             void *arg);

/* Free the server. Only after the shutdown cb has fired. Calls whose handler
 * has not ended them yet must be ended first (they reference the methods). */
void ldg_grpc_server_free(struct ldg_grpc_server *srv);

#endif
