/* The metrics HTTP endpoint (SPEC §8): GET /metrics, /healthz, /readyz.
 *
 * Two layers:
 *  - ldg_metrics_http_handle: a pure function from request bytes to response
 *    bytes (no loop, no socket), reusable by the main listener for
 *    connections that start with "GET ".
 *  - ldg_metrics_http_start/close: a small HTTP/1.1 server on a libuv loop
 *    for the --metrics address. One request per connection: the response
 *    carries "Connection: close", then the server half-closes and drains.
 *
 * Responses:
 *   GET|HEAD /metrics  200, Content-Type "text/plain; version=0.0.4; charset=utf-8",
 *                      the whole registry (ldg_metrics_render)
 *   GET|HEAD /healthz  200 "ok\n" while the process runs
 *   GET|HEAD /readyz   200 or 503 from the readiness callback, body: one line
 *   other path         404;  other method 405 (Allow: GET, HEAD)
 *   malformed request  400;  headers over LDG_METRICS_HTTP_MAX_HEADER 431
 * A query string ("/metrics?x=1") is ignored. */
#ifndef LDG_NET_METRICS_HTTP_H
#define LDG_NET_METRICS_HTTP_H

#include <stddef.h>

#include <uv.h>

#include "util/buf.h"
#include "util/err.h"

#define LDG_METRICS_DEFAULT_ADDR "127.0.0.1:9090"
#define LDG_METRICS_HTTP_MAX_HEADER 8192         /* request line + headers, bytes */
#define LDG_METRICS_HTTP_TIMEOUT_MS 10000        /* default read timeout */
#define LDG_METRICS_HTTP_MAX_CONNS 64            /* more are accepted and closed */

/* Readiness: return non-zero when ready. Write a one-line reason (e.g.
 * "ready", "no leader") into |reason| (|reason_len| bytes, NUL-terminated;
 * may be left empty). Called on the thread that serves the request. */
typedef int (*ldg_ready_fn)(void *arg, char *reason, size_t reason_len);

enum {
    LDG_METRICS_HTTP_NEED_MORE = 0, /* request incomplete: nothing appended */
    LDG_METRICS_HTTP_RESPONDED = 1, /* a full response was appended; close after it */
};

/* Parse the HTTP/1.x request at the start of |req| (|len| bytes) and, once its
 * header block is complete (or it is already known to be invalid, or it
 * exceeds LDG_METRICS_HTTP_MAX_HEADER), append a complete response to |out|.
 * Garbage is rejected as soon as it is seen, without waiting for more bytes.
 * |ready| may be NULL (always ready). Never fails on any input; a request
 * body is ignored. Returns LDG_METRICS_HTTP_NEED_MORE or _RESPONDED. */
int ldg_metrics_http_handle(const char *req, size_t len, ldg_ready_fn ready, void *ready_arg,
                            struct ldg_buf *out);

struct ldg_metrics_http;

/* Start serving on |addr| ("host:port", "[v6]:port", ":port" for all
 * interfaces; port 0 picks a free one; "off" disables) on |loop|.
 * |ready|/|ready_arg| are borrowed until the close callback.
 * On success returns 0 and sets *out (NULL when disabled: "off", or when
 * |addr_is_default| is set and the address cannot be bound, which logs
 * WARN "metrics endpoint disabled: ADDR in use"). An explicit address that
 * cannot be bound, or an invalid address, returns LDG_EINVAL (bad address),
 * LDG_EBUSY (in use), LDG_EPERM (privileged port) or another LDG_E* code
 * with |err| filled, and *out = NULL. Binding is synchronous, so a bind
 * failure leaves nothing on the loop. */
int ldg_metrics_http_start(uv_loop_t *loop, const char *addr, int addr_is_default,
                           ldg_ready_fn ready, void *ready_arg, struct ldg_metrics_http **out,
                           struct ldg_err *err);

/* The bound TCP port (useful after binding port 0). */
int ldg_metrics_http_port(const struct ldg_metrics_http *h);

/* Change the read timeout for connections accepted from now on (tests). */
void ldg_metrics_http_set_timeout_ms(struct ldg_metrics_http *h, unsigned timeout_ms);

/* Stop listening and close every connection. |cb| (may be NULL) is called
 * exactly once, from the loop, after every handle is closed and |h| freed.
 * |h| may be NULL: then |cb| is not called. */
typedef void (*ldg_metrics_http_close_cb)(void *arg);
void ldg_metrics_http_close(struct ldg_metrics_http *h, ldg_metrics_http_close_cb cb,
                            void *arg);

#endif
