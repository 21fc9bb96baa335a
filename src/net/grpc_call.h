/* Internal to src/net: the server, connection and call structs shared by
 * h2_server.c (connections, nghttp2 callbacks, routing) and grpc_call.c (the
 * call API of net/grpc.h and response sending). Nothing outside src/net
 * includes this. */
#ifndef LDG_NET_GRPC_CALL_H
#define LDG_NET_GRPC_CALL_H

#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>
#include <uv.h>

#include "net/grpc.h"
#include "net/grpc_frame.h"
#include "net/h2_server.h"
#include "util/buf.h"

struct ldg_metric_family;

struct ldg_h2_method {
    struct ldg_grpc_method m; /* strings point to owned copies */
    char *path;               /* "/service/method" */
};

struct ldg_grpc_server {
    uv_loop_t *loop;
    struct ldg_grpc_server_opts opts;
    nghttp2_session_callbacks *callbacks; /* shared by every session */
    struct ldg_h2_method **methods;       /* registered routes */
    size_t nmethods, cap_methods;
    struct ldg_h2_conn *conns; /* open connections (list) */
    size_t nconns;
    uint64_t next_conn_id;
    uv_timer_t grace_timer; /* shutdown grace period */
    int shutting_down;
    int shutdown_done;      /* shutdown cb fired */
    ldg_grpc_server_shutdown_cb shutdown_cb;
    void *shutdown_arg;
    struct ldg_metric_family *m_requests; /* ledger_grpc_requests_total */
    struct ldg_metric_family *m_duration; /* ledger_grpc_request_duration_seconds */
};

#define LDG_H2_READ_BUF 16384

struct ldg_h2_conn {
    struct ldg_grpc_server *srv;
    struct ldg_h2_conn *prev, *next; /* srv->conns */
    uv_tcp_t *tcp;                   /* owned; from the listener */
    uv_timer_t idle_timer;           /* no streams for idle_timeout_ms */
    nghttp2_session *session;
    struct ldg_grpc_call *calls; /* calls with an open stream (list) */
    size_t nstreams;
    size_t queued_bytes; /* response bytes queued in calls, not yet given to nghttp2 */
    uv_write_t wreq;
    struct ldg_buf wbuf; /* bytes of the write in flight */
    int writing;         /* wreq in flight */
    int in_nghttp2;      /* inside mem_recv/mem_send: flush later */
    int closing;
    int pending_closes; /* uv handles still closing */
    uint64_t id;
    char peer[64];
    uint8_t rbuf[LDG_H2_READ_BUF];
};

struct ldg_h2_header {
    char *name;
    char *value;
};

struct ldg_grpc_call {
    struct ldg_h2_conn *conn; /* NULL once the stream is gone */
    struct ldg_grpc_call *prev, *next; /* conn->calls */
    int32_t stream_id;
    const struct ldg_h2_method *hm; /* route, NULL when unknown */
    char *path;
    char *http_method;
    char *content_type;
    char *timeout;
    struct ldg_h2_header *hdrs; /* other request headers */
    size_t nhdrs;
    size_t hdr_bytes;
    struct ldg_grpc_deframer deframer;
    struct ldg_buf req_bytes;         /* last request message */
    ProtobufCMessage *pending_req;    /* unary/server-stream: until half-close */
    unsigned nreq;                    /* request messages received */
    int64_t timeout_ms;               /* -1: none */
    uint64_t deadline;                /* uv_now() value, when timeout_ms >= 0 */
    uv_timer_t deadline_timer;
    int has_timer;                    /* deadline_timer initialised */
    struct ldg_buf outq;              /* framed response bytes for nghttp2 */
    size_t out_off;                   /* bytes of outq already given */
    struct ldg_h2_header *trailers;   /* extra trailing metadata */
    size_t ntrailers;
    int status;                       /* final grpc-status once wire_done */
    char *status_msg;
    uint64_t start_ns;                /* uv_hrtime at the request headers */
    ldg_grpc_cancel_fn cancel_cb;
    void *cancel_arg;
    int busy;                         /* inside our code that still uses the call */
    char peer[64];                    /* copy of conn->peer */
    unsigned headers_sent : 1;        /* response HEADERS with a data provider */
    unsigned deferred : 1;            /* data provider returned DEFERRED */
    unsigned handler_started : 1;     /* the handler owns the call... */
    unsigned ended : 1;               /* ...until it ends it */
    unsigned wire_done : 1;           /* final status submitted (or stream gone) */
    unsigned stream_closed : 1;
    unsigned remote_closed : 1;       /* client half-closed */
    unsigned cancelled : 1;
};

/* grpc_call.c */
struct ldg_grpc_call *ldg_h2_call_new(struct ldg_h2_conn *conn, int32_t stream_id);
/* Submit the final status (trailers-only when no response HEADERS went out;
 * |http_status| is used only then). No-op once wire_done. */
void ldg_h2_call_end_wire(struct ldg_grpc_call *c, int http_status, int code, const char *msg);
/* The stream is gone (closed by nghttp2 or the connection died). */
void ldg_h2_call_stream_closed(struct ldg_grpc_call *c, uint32_t error_code);
/* Free the call if nothing uses it any more. */
void ldg_h2_call_maybe_free(struct ldg_grpc_call *c);
/* Fire the cancel callback if the handler still owns the call. */
void ldg_h2_call_cancel(struct ldg_grpc_call *c);

/* h2_server.c */
/* Hand pending nghttp2 output to the socket (deferred while inside nghttp2). */
void ldg_h2_conn_flush(struct ldg_h2_conn *conn);
/* Start the idle timer when the connection has no stream. */
void ldg_h2_conn_update_idle(struct ldg_h2_conn *conn);

#endif
