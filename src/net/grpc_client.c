/* gRPC client: one nghttp2 client session per connection, one connection per
 * client (address).
 *
 * Happy path: call -> queued -> (connection: getaddrinfo -> connect ->
 * SETTINGS) -> submitted as a stream -> response headers, DATA (deframed),
 * trailers -> stream close -> callback with the status and decoded response.
 *
 * Failure modes: resolve/connect failure or connection loss completes every
 * call waiting on that connection with UNAVAILABLE, and the next call opens a
 * new connection; GOAWAY from the server retires the connection (its streams
 * finish, new calls use a new connection); a call's timer completes it with
 * DEADLINE_EXCEEDED and resets its stream; close completes the rest with
 * CANCELLED. */
#include "net/grpc_client.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "net/grpc.h"
#include "net/grpc_frame.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

#define CLIENT_MAX_RESP (64u << 20)

struct cconn {
    struct ldg_grpc_client *cl;
    struct cconn *prev, *next; /* cl->conns */
    uv_getaddrinfo_t gai;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    nghttp2_session *s;
    struct ldg_buf wbuf;
    int tcp_open;  /* tcp initialised */
    int ready;     /* connected, session up */
    int retired;   /* no new streams (GOAWAY or failure) */
    int closing;
    int writing;
    int in_ng;
    uint8_t rbuf[16384];
};

struct ccall {
    struct ldg_grpc_client *cl;
    struct ccall *prev, *next; /* cl->calls, until completed */
    struct cconn *conn;        /* set once submitted */
    int32_t stream_id;
    char *path;
    struct ldg_buf req; /* framed request */
    size_t req_off;
    const ProtobufCMessageDescriptor *resp_desc;
    uint64_t timeout_ms;
    uv_timer_t timer;
    struct ldg_grpc_deframer deframer;
    struct ldg_buf resp; /* last response message */
    unsigned nresp;
    int http_status;
    int grpc_status; /* -1 until seen */
    char *grpc_message;
    char **md; /* name, value, ..., NULL */
    size_t nmd;
    char **hdrs; /* request metadata: name, value, ... (nhdrs entries) */
    size_t nhdrs;
    ldg_grpc_client_cb cb;
    void *arg;
    int done;
};

struct ldg_grpc_client {
    uv_loop_t *loop;
    char addr[300];
    char host[256];
    char port[8];
    nghttp2_session_callbacks *cbs;
    struct cconn *conn;  /* the usable connection, or NULL */
    struct cconn *conns; /* every connection not yet freed (list) */
    struct ccall *calls; /* not yet completed */
    size_t live;         /* calls and connections not yet freed */
    int closing;
    ldg_grpc_client_close_cb close_cb;
    void *close_arg;
};

static void conn_close(struct cconn *conn);
static void conn_flush(struct cconn *conn);

static void client_maybe_free(struct ldg_grpc_client *cl)
{
    if (!cl->closing || cl->live > 0)
        return;
    ldg_grpc_client_close_cb cb = cl->close_cb;
    void *arg = cl->close_arg;
    nghttp2_session_callbacks_del(cl->cbs);
    ldg_free(cl);
    if (cb)
        cb(arg);
}

/* ---- calls ---- */

static void call_timer_close_cb(uv_handle_t *h)
{
    struct ccall *c = LDG_CONTAINER_OF((uv_timer_t *)h, struct ccall, timer);
    struct ldg_grpc_client *cl = c->cl;
    ldg_free(c->path);
    ldg_buf_close(&c->req);
    ldg_grpc_deframer_close(&c->deframer);
    ldg_buf_close(&c->resp);
    ldg_free(c->grpc_message);
    for (size_t i = 0; i < c->nmd; i++)
        ldg_free(c->md[i]);
    ldg_free(c->md);
    for (size_t i = 0; i < c->nhdrs; i++)
        ldg_free(c->hdrs[i]);
    ldg_free(c->hdrs);
    ldg_free(c);
    cl->live--;
    client_maybe_free(cl);
}

static void call_complete(struct ccall *c, int code, const char *msg)
{
    if (c->done)
        return;
    c->done = 1;
    struct ldg_grpc_client *cl = c->cl;
    if (c->prev)
        c->prev->next = c->next;
    else
        cl->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->conn && c->conn->s && c->stream_id > 0) {
        nghttp2_session_set_stream_user_data(c->conn->s, c->stream_id, NULL);
        if (code == LDG_GRPC_DEADLINE_EXCEEDED || code == LDG_GRPC_CANCELLED) {
            nghttp2_submit_rst_stream(c->conn->s, NGHTTP2_FLAG_NONE, c->stream_id,
                                      NGHTTP2_CANCEL);
            conn_flush(c->conn);
        }
    }
    uv_timer_stop(&c->timer);
    struct ldg_grpc_client_result res = {.code = code, .message = msg ? msg : ""};
    ProtobufCMessage *resp = NULL;
    if (code == LDG_GRPC_OK) {
        res.raw = c->resp.data ? c->resp.data : (const uint8_t *)"";
        res.raw_len = c->resp.len;
        if (c->resp_desc) {
            resp = protobuf_c_message_unpack(c->resp_desc, NULL, res.raw_len, res.raw);
            if (!resp) {
                res.code = LDG_GRPC_INTERNAL;
                res.message = "response does not decode";
                res.raw = NULL;
                res.raw_len = 0;
            }
        }
    }
    res.resp = resp;
    c->md = ldg_realloc(c->md, (c->nmd + 1) * sizeof *c->md);
    c->md[c->nmd] = NULL;
    res.trailers = (const char *const *)c->md;
    c->cb(&res, c->arg);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    uv_close((uv_handle_t *)&c->timer, call_timer_close_cb);
}

static void call_timeout_cb(uv_timer_t *t)
{
    struct ccall *c = LDG_CONTAINER_OF(t, struct ccall, timer);
    char msg[64];
    snprintf(msg, sizeof msg, "deadline of %" PRIu64 " ms exceeded", c->timeout_ms);
    call_complete(c, LDG_GRPC_DEADLINE_EXCEEDED, msg);
}

static int http_to_grpc(int http)
{
    switch (http) {
    case 400: return LDG_GRPC_INTERNAL;
    case 401: return LDG_GRPC_UNAUTHENTICATED;
    case 403: return LDG_GRPC_PERMISSION_DENIED;
    case 404: return LDG_GRPC_UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return LDG_GRPC_UNAVAILABLE;
    default: return LDG_GRPC_UNKNOWN;
    }
}

/* The stream ended: decide the status. */
static void call_stream_closed(struct ccall *c, uint32_t error_code)
{
    char msg[128];
    if (c->grpc_status >= 0) {
        if (c->grpc_status == LDG_GRPC_OK && c->nresp != 1) {
            snprintf(msg, sizeof msg, "unary response with %u messages", c->nresp);
            call_complete(c, LDG_GRPC_INTERNAL, msg);
            return;
        }
        call_complete(c, c->grpc_status, c->grpc_message);
        return;
    }
    if (c->http_status != 0 && c->http_status != 200) {
        snprintf(msg, sizeof msg, "HTTP status %d from %s", c->http_status, c->cl->addr);
        call_complete(c, http_to_grpc(c->http_status), msg);
        return;
    }
    snprintf(msg, sizeof msg, "stream closed without status (%s)",
             nghttp2_http2_strerror(error_code));
    call_complete(c, error_code == NGHTTP2_REFUSED_STREAM ? LDG_GRPC_UNAVAILABLE
                                                          : LDG_GRPC_INTERNAL, msg);
}

static ssize_t call_data_read_cb(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                                 uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct ccall *c = src->ptr;
    size_t n = c->req.len - c->req_off;
    if (n > len)
        n = len;
    memcpy(buf, c->req.data + c->req_off, n);
    c->req_off += n;
    if (c->req_off == c->req.len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void call_submit(struct ccall *c, struct cconn *conn)
{
    char tmo[16];
    nghttp2_nv *nv = ldg_malloc((8 + c->nhdrs / 2) * sizeof *nv);
    size_t n = 0;
#define NV(k, v) nv[n++] = (nghttp2_nv){(uint8_t *)(uintptr_t)(k), (uint8_t *)(uintptr_t)(v), \
                                        strlen(k), strlen(v), NGHTTP2_NV_FLAG_NONE}
    NV(":method", "POST");
    NV(":scheme", "http");
    NV(":path", c->path);
    NV(":authority", c->cl->addr);
    NV("content-type", "application/grpc");
    NV("te", "trailers");
    NV("user-agent", "inferadb-ledger/" LDG_VERSION);
    if (c->timeout_ms > 0) {
        ldg_grpc_timeout_format((int64_t)c->timeout_ms, tmo, sizeof tmo);
        NV("grpc-timeout", tmo);
    }
    for (size_t i = 0; i + 1 < c->nhdrs; i += 2)
        NV(c->hdrs[i], c->hdrs[i + 1]);
#undef NV
    nghttp2_data_provider prd = {.source.ptr = c, .read_callback = call_data_read_cb};
    c->conn = conn;
    /* nghttp2 copies the header block; |nv| is ours to free right away. */
    int32_t id = nghttp2_submit_request(conn->s, NULL, nv, n, &prd, c);
    ldg_free(nv);
    if (id < 0) {
        c->conn = NULL;
        call_complete(c, LDG_GRPC_UNAVAILABLE, nghttp2_strerror(id));
        return;
    }
    c->stream_id = id;
}

/* ---- nghttp2 callbacks ---- */

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    struct ccall *c = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!c)
        return 0;
    char v[16];
    if (nl == 7 && memcmp(name, ":status", 7) == 0) {
        snprintf(v, sizeof v, "%.*s", (int)(vl < 15 ? vl : 15), (const char *)value);
        c->http_status = atoi(v);
    } else if (nl == 11 && memcmp(name, "grpc-status", 11) == 0) {
        snprintf(v, sizeof v, "%.*s", (int)(vl < 15 ? vl : 15), (const char *)value);
        c->grpc_status = atoi(v);
    } else if (nl == 12 && memcmp(name, "grpc-message", 12) == 0) {
        struct ldg_buf d;
        ldg_buf_init(&d);
        ldg_grpc_percent_decode(&d, (const char *)value, vl);
        ldg_free(c->grpc_message);
        c->grpc_message = (char *)ldg_buf_steal(&d, &vl);
    } else if (nl > 0 && name[0] != ':' && c->nmd < 64) {
        c->md = ldg_realloc(c->md, (c->nmd + 3) * sizeof *c->md);
        c->md[c->nmd++] = ldg_strdup((const char *)name);
        c->md[c->nmd++] = ldg_memdup(value, vl + 1); /* nghttp2 NUL-terminates */
    }
    return 0;
}

static int resp_msg_cb(void *arg, const uint8_t *msg, size_t len)
{
    struct ccall *c = arg;
    c->nresp++;
    ldg_buf_reset(&c->resp);
    ldg_buf_append(&c->resp, msg, len);
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *ud)
{
    struct ccall *c = nghttp2_session_get_stream_user_data(s, id);
    if (!c)
        return 0;
    int rv = ldg_grpc_deframer_feed(&c->deframer, data, len, resp_msg_cb, c);
    if (rv != 0)
        call_complete(c, LDG_GRPC_INTERNAL, rv == LDG_ETOOBIG ? "response message too large"
                                                              : "malformed response framing");
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t error_code, void *ud)
{
    struct ccall *c = nghttp2_session_get_stream_user_data(s, id);
    if (c) {
        nghttp2_session_set_stream_user_data(s, id, NULL);
        c->stream_id = 0;
        call_stream_closed(c, error_code);
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct cconn *conn = ud;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        conn->retired = 1;
        if (conn->cl->conn == conn)
            conn->cl->conn = NULL;
    }
    return 0;
}

/* ---- connection ---- */

static void conn_fail(struct cconn *conn, const char *what, int uv_err)
{
    struct ldg_grpc_client *cl = conn->cl;
    char msg[400];
    snprintf(msg, sizeof msg, "%s %s: %s", what, cl->addr, uv_strerror(uv_err));
    LDG_LOG(LDG_LOG_DEBUG, "grpc-client", "%s", msg);
    if (cl->conn == conn)
        cl->conn = NULL;
    /* Calls on this connection, and calls still waiting for one. */
    struct ccall *c = cl->calls;
    while (c) {
        struct ccall *next = c->next;
        if (c->conn == conn || (!c->conn && !cl->conn))
            call_complete(c, LDG_GRPC_UNAVAILABLE, msg);
        c = next;
    }
    conn_close(conn);
}

static void conn_free_cb(uv_handle_t *h)
{
    struct cconn *conn = LDG_CONTAINER_OF((uv_tcp_t *)h, struct cconn, tcp);
    struct ldg_grpc_client *cl = conn->cl;
    if (conn->s)
        nghttp2_session_del(conn->s);
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        cl->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    ldg_buf_close(&conn->wbuf);
    ldg_free(conn);
    cl->live--;
    client_maybe_free(cl);
}

static void conn_close(struct cconn *conn)
{
    if (conn->closing)
        return;
    conn->closing = 1;
    conn->retired = 1;
    if (conn->cl->conn == conn)
        conn->cl->conn = NULL;
    if (!conn->tcp_open) /* still resolving: gai_cb finishes the close */
        return;
    uv_close((uv_handle_t *)&conn->tcp, conn_free_cb);
}

static void conn_write_cb(uv_write_t *req, int status)
{
    struct cconn *conn = LDG_CONTAINER_OF(req, struct cconn, wreq);
    conn->writing = 0;
    if (conn->closing)
        return;
    if (status < 0) {
        conn_fail(conn, "write to", status);
        return;
    }
    conn_flush(conn);
}

static void conn_flush(struct cconn *conn)
{
    if (conn->closing || !conn->ready || conn->writing || conn->in_ng)
        return;
    ldg_buf_reset(&conn->wbuf);
    conn->in_ng = 1;
    for (;;) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(conn->s, &p);
        if (n <= 0)
            break;
        ldg_buf_append(&conn->wbuf, p, (size_t)n);
    }
    conn->in_ng = 0;
    if (conn->closing)
        return;
    if (conn->wbuf.len > 0) {
        uv_buf_t b = uv_buf_init((char *)conn->wbuf.data, (unsigned)conn->wbuf.len);
        int rv = uv_write(&conn->wreq, (uv_stream_t *)&conn->tcp, &b, 1, conn_write_cb);
        if (rv != 0)
            conn_fail(conn, "write to", rv);
        else
            conn->writing = 1;
        return;
    }
    if (!nghttp2_session_want_read(conn->s) && !nghttp2_session_want_write(conn->s))
        conn_fail(conn, "connection ended by", UV_EOF);
}

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct cconn *conn = LDG_CONTAINER_OF((uv_tcp_t *)h, struct cconn, tcp);
    *buf = uv_buf_init((char *)conn->rbuf, sizeof conn->rbuf);
}

static void conn_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct cconn *conn = LDG_CONTAINER_OF((uv_tcp_t *)st, struct cconn, tcp);
    if (nread == 0 || conn->closing)
        return;
    if (nread < 0) {
        conn_fail(conn, "connection lost to", (int)nread);
        return;
    }
    conn->in_ng = 1;
    ssize_t rv = nghttp2_session_mem_recv(conn->s, (const uint8_t *)buf->base, (size_t)nread);
    conn->in_ng = 0;
    if (conn->closing)
        return;
    if (rv < 0) {
        conn_fail(conn, "protocol error from", UV_EPROTO);
        return;
    }
    conn_flush(conn);
}

static void conn_connect_cb(uv_connect_t *req, int status)
{
    struct cconn *conn = LDG_CONTAINER_OF(req, struct cconn, creq);
    struct ldg_grpc_client *cl = conn->cl;
    if (conn->closing)
        return;
    if (status < 0) {
        conn_fail(conn, "connect to", status);
        return;
    }
    if (nghttp2_session_client_new(&conn->s, cl->cbs, conn) != 0) {
        conn_fail(conn, "session for", UV_ENOMEM);
        return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    nghttp2_submit_settings(conn->s, NGHTTP2_FLAG_NONE, NULL, 0);
    int rv = uv_read_start((uv_stream_t *)&conn->tcp, conn_alloc_cb, conn_read_cb);
    if (rv != 0) {
        conn_fail(conn, "read from", rv);
        return;
    }
    conn->ready = 1;
    for (struct ccall *c = cl->calls, *next; c; c = next) {
        next = c->next;
        if (!c->conn)
            call_submit(c, conn);
    }
    conn_flush(conn);
}

static void conn_gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct cconn *conn = LDG_CONTAINER_OF(req, struct cconn, gai);
    uv_tcp_init(conn->cl->loop, &conn->tcp);
    conn->tcp_open = 1;
    if (conn->closing) {
        conn->closing = 0;
        conn_close(conn);
    } else if (status < 0) {
        conn_fail(conn, "resolve", status);
    } else {
        int rv = uv_tcp_connect(&conn->creq, &conn->tcp, res->ai_addr, conn_connect_cb);
        if (rv != 0)
            conn_fail(conn, "connect to", rv);
    }
    if (res)
        uv_freeaddrinfo(res);
}

static void client_ensure_conn(struct ldg_grpc_client *cl)
{
    if (cl->conn)
        return;
    struct cconn *conn = ldg_calloc(1, sizeof *conn);
    conn->cl = cl;
    ldg_buf_init(&conn->wbuf);
    cl->live++;
    cl->conn = conn;
    conn->next = cl->conns;
    if (cl->conns)
        cl->conns->prev = conn;
    cl->conns = conn;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rv = uv_getaddrinfo(cl->loop, &conn->gai, conn_gai_cb, cl->host, cl->port, &hints);
    if (rv != 0) {
        conn->tcp_open = 1;
        uv_tcp_init(cl->loop, &conn->tcp);
        conn_fail(conn, "resolve", rv);
    }
}

/* ---- public API ---- */

int ldg_grpc_client_new(uv_loop_t *loop, const char *addr, struct ldg_grpc_client **out)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || strlen(colon + 1) == 0 || strlen(colon + 1) > 5 ||
        strlen(addr) >= 300)
        return LDG_EINVAL;
    struct ldg_grpc_client *cl = ldg_calloc(1, sizeof *cl);
    cl->loop = loop;
    snprintf(cl->addr, sizeof cl->addr, "%s", addr);
    size_t hl = (size_t)(colon - addr);
    const char *h = addr;
    if (addr[0] == '[' && hl >= 2 && addr[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    snprintf(cl->host, sizeof cl->host, "%.*s", (int)hl, h);
    snprintf(cl->port, sizeof cl->port, "%s", colon + 1);
    if (nghttp2_session_callbacks_new(&cl->cbs) != 0) {
        ldg_free(cl);
        return LDG_ENOMEM;
    }
    nghttp2_session_callbacks_set_on_header_callback(cl->cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cl->cbs, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cl->cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cl->cbs, on_frame_recv);
    *out = cl;
    return 0;
}

/* Headers the caller may not set: pseudo-headers, gRPC's reserved "grpc-"
 * names (grpc-timeout comes from |timeout_ms|), the ones call_submit sends
 * itself and HTTP/1 connection-specific ones HTTP/2 forbids. */
static const char *const reserved_headers[] = {
    "content-type", "te", "user-agent", "content-length", "host", "connection",
    "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
};

bool ldg_grpc_client_header_allowed(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > LDG_GRPC_CLIENT_MAX_HEADER_NAME || strncmp(name, "grpc-", 5) == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
              ch == '.'))
            return false; /* also refuses ':' (pseudo-headers) and upper case */
    }
    for (size_t i = 0; i < LDG_ARRAY_SIZE(reserved_headers); i++)
        if (strcmp(name, reserved_headers[i]) == 0)
            return false;
    return true;
}

static bool header_value_ok(const char *v)
{
    size_t n = strlen(v);
    if (n > LDG_GRPC_CLIENT_MAX_HEADER_VALUE)
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] == '\r' || v[i] == '\n')
            return false;
    return true;
}

int ldg_grpc_client_call_raw_ex(struct ldg_grpc_client *cl, const char *path, const uint8_t *req,
                                size_t req_len, const char *const *headers,
                                const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_ms,
                                ldg_grpc_client_cb cb, void *arg)
{
    if (cl->closing)
        return LDG_ECLOSED;
    if (!path || path[0] != '/' || !cb)
        return LDG_EINVAL;
    size_t nh = 0;
    for (; headers && headers[nh]; nh += 2) {
        if (headers[nh + 1] == NULL || !ldg_grpc_client_header_allowed(headers[nh]) ||
            !header_value_ok(headers[nh + 1]) || nh / 2 >= LDG_GRPC_CLIENT_MAX_HEADERS)
            return LDG_EINVAL;
    }
    struct ccall *c = ldg_calloc(1, sizeof *c);
    c->cl = cl;
    c->path = ldg_strdup(path);
    if (nh > 0) {
        c->hdrs = ldg_malloc(nh * sizeof *c->hdrs);
        for (size_t i = 0; i < nh; i++)
            c->hdrs[i] = ldg_strdup(headers[i]);
        c->nhdrs = nh;
    }
    ldg_buf_init(&c->req);
    ldg_grpc_frame_append(&c->req, req, req_len);
    c->resp_desc = resp_desc;
    c->timeout_ms = timeout_ms;
    c->grpc_status = -1;
    c->cb = cb;
    c->arg = arg;
    ldg_grpc_deframer_init(&c->deframer, CLIENT_MAX_RESP);
    ldg_buf_init(&c->resp);
    uv_timer_init(cl->loop, &c->timer);
    if (timeout_ms > 0)
        uv_timer_start(&c->timer, call_timeout_cb, timeout_ms, 0);
    c->next = cl->calls;
    if (cl->calls)
        cl->calls->prev = c;
    cl->calls = c;
    cl->live++;
    client_ensure_conn(cl);
    if (cl->conn && cl->conn->ready && !c->done) {
        call_submit(c, cl->conn);
        conn_flush(cl->conn);
    }
    return 0;
}

int ldg_grpc_client_call_raw(struct ldg_grpc_client *cl, const char *path, const uint8_t *req,
                             size_t req_len, const ProtobufCMessageDescriptor *resp_desc,
                             uint64_t timeout_ms, ldg_grpc_client_cb cb, void *arg)
{
    return ldg_grpc_client_call_raw_ex(cl, path, req, req_len, NULL, resp_desc, timeout_ms, cb,
                                       arg);
}

int ldg_grpc_client_call_ex(struct ldg_grpc_client *cl, const char *path,
                            const ProtobufCMessage *req, const char *const *headers,
                            const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_ms,
                            ldg_grpc_client_cb cb, void *arg)
{
    size_t len = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = ldg_malloc(len ? len : 1);
    protobuf_c_message_pack(req, buf);
    int rv = ldg_grpc_client_call_raw_ex(cl, path, buf, len, headers, resp_desc, timeout_ms, cb,
                                         arg);
    ldg_free(buf);
    return rv;
}

int ldg_grpc_client_call(struct ldg_grpc_client *cl, const char *path,
                         const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                         uint64_t timeout_ms, ldg_grpc_client_cb cb, void *arg)
{
    return ldg_grpc_client_call_ex(cl, path, req, NULL, resp_desc, timeout_ms, cb, arg);
}

const char *ldg_grpc_client_result_trailer(const struct ldg_grpc_client_result *res,
                                           const char *name)
{
    for (size_t i = 0; res->trailers && res->trailers[i]; i += 2)
        if (strcmp(res->trailers[i], name) == 0)
            return res->trailers[i + 1];
    return NULL;
}

size_t ldg_grpc_client_pending(const struct ldg_grpc_client *cl)
{
    size_t n = 0;
    for (const struct ccall *c = cl->calls; c; c = c->next)
        n++;
    return n;
}

static void close_defer_cb(uv_handle_t *h)
{
    struct ldg_grpc_client *cl = h->data;
    ldg_free(h);
    cl->live--;
    client_maybe_free(cl);
}

void ldg_grpc_client_close(struct ldg_grpc_client *cl, ldg_grpc_client_close_cb cb, void *arg)
{
    cl->closing = 1;
    cl->close_cb = cb;
    cl->close_arg = arg;
    /* A handle closed here holds the client until the next loop turn, so the
     * callback never runs inside this function. */
    uv_timer_t *t = ldg_malloc(sizeof *t);
    uv_timer_init(cl->loop, t);
    t->data = cl;
    cl->live++;
    uv_close((uv_handle_t *)t, close_defer_cb);
    while (cl->calls)
        call_complete(cl->calls, LDG_GRPC_CANCELLED, "client closed");
    for (struct cconn *c = cl->conns; c; c = c->next)
        conn_close(c);
}
