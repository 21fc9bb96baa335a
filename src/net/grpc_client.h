/* gRPC client over h2c (nghttp2 client session on a uv_tcp), unary calls
 * only, for leader forwarding and join. One client talks to one address and
 * keeps at most one connection to it: calls share the connection as HTTP/2
 * streams; the connection is opened on the first call and re-opened on the
 * next call after it fails or the server sends GOAWAY.
 *
 *   struct ldg_grpc_client *cl;
 *   ldg_grpc_client_new(loop, "10.0.0.2:50051", &cl);
 *   ldg_grpc_client_call(cl, "/ledger.v1.AdminService/JoinCluster", &req.base,
 *                        &ledger__v1__join_cluster_response__descriptor, 5000, done_cb, ctx);
 *
 * Errors are reported as gRPC status codes: a connection failure or loss is
 * UNAVAILABLE (message names the address and the libuv error), an expired
 * timeout is DEADLINE_EXCEEDED (the stream is reset), a response that does
 * not decode is INTERNAL. */
#ifndef LDG_NET_GRPC_CLIENT_H
#define LDG_NET_GRPC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>
#include <uv.h>

struct ldg_grpc_client;

struct ldg_grpc_client_result {
    int code;                    /* enum ldg_grpc_code */
    const char *message;         /* grpc-message, decoded ("" when none) */
    ProtobufCMessage *resp;      /* decoded response when code is OK and a
                                    descriptor was given, else NULL */
    const uint8_t *raw;          /* encoded response message (OK only) */
    size_t raw_len;
    const char *const *trailers; /* name, value, name, value, ..., NULL */
};

/* Called exactly once per successful ldg_grpc_client_call. |res| and
 * everything it points to (including res->resp) are freed when the callback
 * returns: copy what you keep. */
typedef void (*ldg_grpc_client_cb)(const struct ldg_grpc_client_result *res, void *arg);
typedef void (*ldg_grpc_client_close_cb)(void *arg);

/* Value of trailing (or initial) response metadata |name|, or NULL. */
const char *ldg_grpc_client_result_trailer(const struct ldg_grpc_client_result *res,
                                           const char *name);

/* A client for |addr| ("host:port", "[v6]:port"; host may be a name). No
 * connection is made yet. Caller closes with ldg_grpc_client_close.
 * Returns 0, LDG_EINVAL (malformed address) or LDG_ENOMEM (nghttp2). */
int ldg_grpc_client_new(uv_loop_t *loop, const char *addr, struct ldg_grpc_client **out);

/* Start a unary call to |path| ("/pkg.Service/Method") with |req| (encoded
 * now; borrowed). |resp_desc| (may be NULL: only raw bytes) decodes the
 * response. |timeout_ms| > 0 sets a deadline, sent as grpc-timeout too; 0
 * means none. On 0, |cb| fires exactly once, later. Returns LDG_EINVAL (bad
 * path) or LDG_ECLOSED (client closing), and then never calls |cb|. */
int ldg_grpc_client_call(struct ldg_grpc_client *cl, const char *path,
                         const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                         uint64_t timeout_ms, ldg_grpc_client_cb cb, void *arg);
/* Same with an already-encoded request message (forwarding). */
int ldg_grpc_client_call_raw(struct ldg_grpc_client *cl, const char *path, const uint8_t *req,
                             size_t req_len, const ProtobufCMessageDescriptor *resp_desc,
                             uint64_t timeout_ms, ldg_grpc_client_cb cb, void *arg);

/* Same with request metadata |headers|: name, value, name, value, ...,
 * NULL (may be NULL; copied). At most LDG_GRPC_CLIENT_MAX_HEADERS pairs;
 * every name must pass ldg_grpc_client_header_allowed and no value may hold
 * CR or LF or be longer than LDG_GRPC_CLIENT_MAX_HEADER_VALUE, else
 * LDG_EINVAL (and |cb| is never called). */
#define LDG_GRPC_CLIENT_MAX_HEADERS 32
#define LDG_GRPC_CLIENT_MAX_HEADER_NAME 128
#define LDG_GRPC_CLIENT_MAX_HEADER_VALUE 4096
int ldg_grpc_client_call_raw_ex(struct ldg_grpc_client *cl, const char *path, const uint8_t *req,
                                size_t req_len, const char *const *headers,
                                const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_ms,
                                ldg_grpc_client_cb cb, void *arg);
/* ldg_grpc_client_call with request metadata (same rules as above). */
int ldg_grpc_client_call_ex(struct ldg_grpc_client *cl, const char *path,
                            const ProtobufCMessage *req, const char *const *headers,
                            const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_ms,
                            ldg_grpc_client_cb cb, void *arg);

/* Whether a caller may send request metadata |name|: lower-case token
 * characters [a-z0-9-_.] only, and not a pseudo-header (":path"), not a
 * gRPC-reserved "grpc-*" name (grpc-timeout is derived from the call's
 * timeout), not one the client sets itself (content-type, te, user-agent)
 * and not an HTTP/1 connection-specific header (connection, host, ...). */
bool ldg_grpc_client_header_allowed(const char *name);

/* Calls still waiting for their callback. */
size_t ldg_grpc_client_pending(const struct ldg_grpc_client *cl);

/* Fail the pending calls with CANCELLED, close the connection, free the
 * client, then call |cb| (may be NULL) once, later. */
void ldg_grpc_client_close(struct ldg_grpc_client *cl, ldg_grpc_client_close_cb cb, void *arg);

#endif
