/* gRPC server call API (the contract between src/net and src/rpc).
 *
 * A service registers methods; the server decodes each request message with
 * the method's protobuf-c descriptor and calls the handler on the loop thread.
 *
 * Lifetime rule: a call stays valid from the handler invocation until the
 * handler ends it, exactly once, with ldg_grpc_call_reply (unary),
 * ldg_grpc_call_fail (any kind) or ldg_grpc_call_finish (streaming) — even if
 * the client cancels or the connection dies meanwhile (then the end is a
 * no-op on the wire). The cancel callback tells an async handler to end
 * early. Request messages passed to handlers are freed by the server when the
 * handler returns: copy what you keep. */
#ifndef LDG_NET_GRPC_H
#define LDG_NET_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

enum ldg_grpc_code {
    LDG_GRPC_OK = 0,
    LDG_GRPC_CANCELLED = 1,
    LDG_GRPC_UNKNOWN = 2,
    LDG_GRPC_INVALID_ARGUMENT = 3,
    LDG_GRPC_DEADLINE_EXCEEDED = 4,
    LDG_GRPC_NOT_FOUND = 5,
    LDG_GRPC_ALREADY_EXISTS = 6,
    LDG_GRPC_PERMISSION_DENIED = 7,
    LDG_GRPC_RESOURCE_EXHAUSTED = 8,
    LDG_GRPC_FAILED_PRECONDITION = 9,
    LDG_GRPC_ABORTED = 10,
    LDG_GRPC_OUT_OF_RANGE = 11,
    LDG_GRPC_UNIMPLEMENTED = 12,
    LDG_GRPC_INTERNAL = 13,
    LDG_GRPC_UNAVAILABLE = 14,
    LDG_GRPC_DATA_LOSS = 15,
    LDG_GRPC_UNAUTHENTICATED = 16,
};

/* "OK", "INVALID_ARGUMENT", ... ("UNKNOWN" for out-of-range codes). */
const char *ldg_grpc_code_name(int code);
/* The one mapping from LDG_E* codes to gRPC codes. */
int ldg_grpc_code_from_err(int ldg_err);

enum ldg_grpc_kind {
    LDG_GRPC_UNARY = 0,         /* one request, one response */
    LDG_GRPC_SERVER_STREAM = 1, /* one request, many responses */
    LDG_GRPC_BIDI_STREAM = 2,   /* many requests, many responses */
};

struct ldg_grpc_call;

/* Unary and server-streaming: called once, when the request message is
 * complete. Bidi: called once per request message, then once more with
 * req == NULL when the client half-closes. */
typedef void (*ldg_grpc_handler_fn)(struct ldg_grpc_call *call,
                                    const ProtobufCMessage *req, void *ud);
/* Called at most once, when the client cancels, the deadline passes or the
 * connection dies, while the handler has not ended the call yet. */
typedef void (*ldg_grpc_cancel_fn)(struct ldg_grpc_call *call, void *arg);

struct ldg_grpc_method {
    const char *service; /* "ledger.v1.ReadService" */
    const char *method;  /* "Read" */
    enum ldg_grpc_kind kind;
    const ProtobufCMessageDescriptor *request;
    const ProtobufCMessageDescriptor *response;
    ldg_grpc_handler_fn handler; /* NULL: answers UNIMPLEMENTED with |unimplemented| */
    void *ud;
    const char *unimplemented;   /* message for a NULL handler */
};

/* ---- replying ---- */

/* Unary: send |resp| and status OK; ends the call. */
void ldg_grpc_call_reply(struct ldg_grpc_call *c, const ProtobufCMessage *resp);
/* Unary: send already-encoded response bytes (forwarding) and OK; ends the call. */
void ldg_grpc_call_reply_raw(struct ldg_grpc_call *c, const uint8_t *data, size_t len);
/* Any kind: end the call with a non-OK |code| and a message (percent-encoded
 * on the wire). */
void ldg_grpc_call_fail(struct ldg_grpc_call *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Streaming: queue one response message. Returns 0; LDG_EFULL when more than
 * the per-stream send limit is queued (slow consumer: end the call with
 * RESOURCE_EXHAUSTED); LDG_ECLOSED when the stream is gone (cancel pending). */
int ldg_grpc_call_send(struct ldg_grpc_call *c, const ProtobufCMessage *msg);
/* Streaming: end with |code| (LDG_GRPC_OK for a normal end) and |msg| (may be NULL). */
void ldg_grpc_call_finish(struct ldg_grpc_call *c, int code, const char *msg);

/* ---- call information ---- */

void ldg_grpc_call_on_cancel(struct ldg_grpc_call *c, ldg_grpc_cancel_fn cb, void *arg);
/* Non-zero once the client cancelled / the deadline passed / the connection died. */
int ldg_grpc_call_is_cancelled(const struct ldg_grpc_call *c);
/* Milliseconds left before the client's grpc-timeout, or -1 when none was sent. */
int64_t ldg_grpc_call_remaining_ms(const struct ldg_grpc_call *c);
/* Value of request header |name| (lower-case, e.g. "authorization"), or NULL. */
const char *ldg_grpc_call_header(const struct ldg_grpc_call *c, const char *name);
/* Request header number |i| in arrival order, pseudo-headers, content-type
 * and grpc-timeout excepted: sets *name and *value (valid until the call
 * ends) and returns 1; returns 0 when |i| is past the last one. */
int ldg_grpc_call_header_at(const struct ldg_grpc_call *c, size_t i, const char **name,
                            const char **value);
/* "/ledger.v1.ReadService/Read" */
const char *ldg_grpc_call_path(const struct ldg_grpc_call *c);
const struct ldg_grpc_method *ldg_grpc_call_method(const struct ldg_grpc_call *c);
/* The encoded bytes of the (last) request message, valid until the call ends. */
const uint8_t *ldg_grpc_call_request_bytes(const struct ldg_grpc_call *c, size_t *len);
/* Peer address "ip:port" of the connection. */
const char *ldg_grpc_call_peer(const struct ldg_grpc_call *c);
/* Add a trailing metadata entry sent with the status (e.g. "x-ledger-leader"). */
void ldg_grpc_call_add_trailer(struct ldg_grpc_call *c, const char *name, const char *value);

#endif
