/* gRPC server: connections (uv glue) and the nghttp2 server session callbacks.
 *
 * Happy path: the listener hands over a socket after the client preface;
 * accept feeds the preface to a new nghttp2 session, submits SETTINGS and
 * starts reading. Each read goes to nghttp2_session_mem_recv; its callbacks
 * build a call per stream (headers), route it by :path, deframe DATA into
 * request messages and run the handler. After every batch of input, and
 * whenever a handler queues output, conn_flush pulls bytes with
 * nghttp2_session_mem_send and writes them (one write in flight at a time).
 *
 * Failure modes: read error/EOF or a fatal nghttp2 error close the
 * connection (open calls are cancelled); an nghttp2 protocol error makes
 * nghttp2 send GOAWAY, after which the session wants neither read nor write
 * and the connection closes; an idle connection gets GOAWAY; a bad request
 * gets a trailers-only error status. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "net/grpc_call.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/metrics.h"

static void conn_close(struct ldg_h2_conn *conn);
static void server_maybe_done(struct ldg_grpc_server *srv);

void ldg_grpc_server_opts_default(struct ldg_grpc_server_opts *o)
{
    o->max_recv_msg_bytes = 4u << 20;
    o->max_concurrent_streams = 100;
    o->stream_send_limit_bytes = 8u << 20;
    o->conn_send_limit_bytes = 64u << 20;
    o->idle_timeout_ms = 300000;
    o->shutdown_grace_ms = 10000;
    o->max_header_bytes = 32768;
}

/* ---- request routing (called from the nghttp2 callbacks) ---- */

static void call_fail_early(struct ldg_grpc_call *c, int http_status, int code,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void call_fail_early(struct ldg_grpc_call *c, int http_status, int code,
                            const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ldg_h2_call_end_wire(c, http_status, code, msg);
}

static void call_deadline_cb(uv_timer_t *t)
{
    struct ldg_grpc_call *c = LDG_CONTAINER_OF(t, struct ldg_grpc_call, deadline_timer);
    if (c->wire_done || !c->conn)
        return;
    c->conn->queued_bytes -= c->outq.len - c->out_off;
    ldg_buf_reset(&c->outq);
    c->out_off = 0;
    char msg[64];
    snprintf(msg, sizeof msg, "deadline exceeded after %" PRId64 " ms", c->timeout_ms);
    c->busy++;
    ldg_h2_call_end_wire(c, 200, LDG_GRPC_DEADLINE_EXCEEDED, msg);
    ldg_h2_call_cancel(c);
    c->busy--;
    ldg_h2_call_maybe_free(c);
}

/* Request headers complete: validate and route. */
static void call_headers_done(struct ldg_grpc_call *c)
{
    struct ldg_grpc_server *srv = c->conn->srv;
    if (!c->http_method || strcmp(c->http_method, "POST") != 0) {
        call_fail_early(c, 405, LDG_GRPC_UNIMPLEMENTED, "method %s not allowed; use POST",
                        c->http_method ? c->http_method : "-");
        return;
    }
    if (!c->content_type || strncmp(c->content_type, "application/grpc", 16) != 0 ||
        (c->content_type[16] != 0 && c->content_type[16] != '+' && c->content_type[16] != ';')) {
        call_fail_early(c, 415, LDG_GRPC_INTERNAL, "invalid content-type %s; "
                        "this port speaks gRPC (application/grpc)",
                        c->content_type ? c->content_type : "(none)");
        return;
    }
    const struct ldg_grpc_method *m = ldg_grpc_server_find(srv, c->path ? c->path : "");
    if (!m) {
        call_fail_early(c, 200, LDG_GRPC_UNIMPLEMENTED, "unknown method %s",
                        c->path ? c->path : "-");
        return;
    }
    c->hm = LDG_CONTAINER_OF(m, struct ldg_h2_method, m);
    if (!m->handler) {
        call_fail_early(c, 200, LDG_GRPC_UNIMPLEMENTED, "%s",
                        m->unimplemented ? m->unimplemented : "method not implemented");
        return;
    }
    if (c->timeout) {
        if (ldg_grpc_timeout_parse(c->timeout, &c->timeout_ms) != 0) {
            call_fail_early(c, 200, LDG_GRPC_INVALID_ARGUMENT, "malformed grpc-timeout %s",
                            c->timeout);
            return;
        }
        uv_timer_init(srv->loop, &c->deadline_timer);
        c->has_timer = 1;
        c->deadline = uv_now(srv->loop) + (uint64_t)c->timeout_ms;
        uv_timer_start(&c->deadline_timer, call_deadline_cb, (uint64_t)c->timeout_ms, 0);
    }
}

static void call_dispatch(struct ldg_grpc_call *c, ProtobufCMessage *req)
{
    c->handler_started = 1;
    c->hm->m.handler(c, req, c->hm->m.ud);
    if (req)
        protobuf_c_message_free_unpacked(req, NULL);
}

/* One complete request message. Returns non-zero to stop the deframer. */
static int call_message_cb(void *arg, const uint8_t *msg, size_t len)
{
    struct ldg_grpc_call *c = arg;
    const struct ldg_grpc_method *m = &c->hm->m;
    c->nreq++;
    ldg_buf_reset(&c->req_bytes);
    ldg_buf_append(&c->req_bytes, msg, len);
    if (m->kind != LDG_GRPC_BIDI_STREAM && c->nreq > 1) {
        call_fail_early(c, 200, LDG_GRPC_INVALID_ARGUMENT,
                        "%s takes exactly one request message", c->path);
        return 1;
    }
    ProtobufCMessage *req = protobuf_c_message_unpack(m->request, NULL, len, msg);
    if (!req) {
        call_fail_early(c, 200, LDG_GRPC_INVALID_ARGUMENT, "request is not a valid %s message",
                        m->request->name);
        return 1;
    }
    if (m->kind != LDG_GRPC_BIDI_STREAM) {
        c->pending_req = req;
        return 0;
    }
    call_dispatch(c, req);
    return (c->ended || c->wire_done || c->stream_closed) ? 1 : 0;
}

static void call_data(struct ldg_grpc_call *c, const uint8_t *data, size_t len)
{
    if (!c->hm || c->wire_done || c->ended)
        return;
    int rv = ldg_grpc_deframer_feed(&c->deframer, data, len, call_message_cb, c);
    if (rv == LDG_ETOOBIG) {
        char msg[160];
        snprintf(msg, sizeof msg, "request message of %" PRIu32 " bytes exceeds the limit of "
                 "%zu bytes", c->deframer.msg_len, c->deframer.max_len);
        ldg_h2_call_end_wire(c, 200, LDG_GRPC_RESOURCE_EXHAUSTED, msg);
    } else if (rv == LDG_EUNIMPL) {
        ldg_h2_call_end_wire(c, 200, LDG_GRPC_UNIMPLEMENTED,
                             "compressed messages are not supported");
    } else if (rv == LDG_EPROTO) {
        ldg_h2_call_end_wire(c, 200, LDG_GRPC_INTERNAL, "invalid message compression flag");
    }
}

/* The client half-closed its side. */
static void call_half_closed(struct ldg_grpc_call *c)
{
    c->remote_closed = 1;
    if (!c->hm || c->wire_done || c->ended)
        return;
    if (ldg_grpc_deframer_partial(&c->deframer)) {
        call_fail_early(c, 200, LDG_GRPC_INVALID_ARGUMENT, "truncated request message");
        return;
    }
    if (c->hm->m.kind == LDG_GRPC_BIDI_STREAM) {
        call_dispatch(c, NULL);
        return;
    }
    if (!c->pending_req) {
        call_fail_early(c, 200, LDG_GRPC_INVALID_ARGUMENT, "%s needs a request message",
                        c->path);
        return;
    }
    ProtobufCMessage *req = c->pending_req;
    c->pending_req = NULL;
    call_dispatch(c, req);
}

/* ---- nghttp2 callbacks ---- */

static struct ldg_grpc_call *stream_call(nghttp2_session *s, int32_t stream_id)
{
    return nghttp2_session_get_stream_user_data(s, stream_id);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct ldg_h2_conn *conn = ud;
    if (conn->closing || frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct ldg_grpc_call *c = ldg_h2_call_new(conn, frame->hd.stream_id);
    nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, c);
    uv_timer_stop(&conn->idle_timer);
    return 0;
}

static char *dup_n(const uint8_t *p, size_t n)
{
    char *s = ldg_malloc(n + 1);
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud)
{
    struct ldg_h2_conn *conn = ud;
    if (conn->closing || frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers from the client are ignored */
    struct ldg_grpc_call *c = stream_call(s, frame->hd.stream_id);
    if (!c)
        return 0;
    c->hdr_bytes += namelen + valuelen + 32;
    if (c->hdr_bytes > conn->srv->opts.max_header_bytes)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM */
    char **slot = NULL;
    if (namelen == 5 && memcmp(name, ":path", 5) == 0)
        slot = &c->path;
    else if (namelen == 7 && memcmp(name, ":method", 7) == 0)
        slot = &c->http_method;
    else if (namelen == 12 && memcmp(name, "content-type", 12) == 0)
        slot = &c->content_type;
    else if (namelen == 12 && memcmp(name, "grpc-timeout", 12) == 0)
        slot = &c->timeout;
    if (slot) {
        ldg_free(*slot);
        *slot = dup_n(value, valuelen);
        return 0;
    }
    if (namelen > 0 && name[0] == ':')
        return 0;
    c->hdrs = ldg_realloc(c->hdrs, (c->nhdrs + 1) * sizeof *c->hdrs);
    c->hdrs[c->nhdrs].name = dup_n(name, namelen);
    c->hdrs[c->nhdrs].value = dup_n(value, valuelen);
    c->nhdrs++;
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct ldg_h2_conn *conn = ud;
    if (conn->closing)
        return 0;
    struct ldg_grpc_call *c = NULL;
    if (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA)
        c = stream_call(s, frame->hd.stream_id);
    if (!c)
        return 0;
    c->busy++;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        call_headers_done(c);
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        call_half_closed(c);
    c->busy--;
    ldg_h2_call_maybe_free(c);
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *ud)
{
    struct ldg_h2_conn *conn = ud;
    struct ldg_grpc_call *c = conn->closing ? NULL : stream_call(s, stream_id);
    if (!c)
        return 0;
    c->busy++;
    call_data(c, data, len);
    c->busy--;
    ldg_h2_call_maybe_free(c);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code,
                           void *ud)
{
    struct ldg_h2_conn *conn = ud;
    struct ldg_grpc_call *c = stream_call(s, stream_id);
    if (!c || conn->closing)
        return 0;
    nghttp2_session_set_stream_user_data(s, stream_id, NULL);
    ldg_h2_call_stream_closed(c, error_code);
    ldg_h2_conn_update_idle(conn);
    return 0;
}

/* Once our END_STREAM is out, stop reading a request nobody will use. */
static int on_frame_send(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct ldg_h2_conn *conn = ud;
    if (conn->closing || !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    struct ldg_grpc_call *c = stream_call(s, frame->hd.stream_id);
    if (c && !c->remote_closed)
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

/* ---- connection glue ---- */

static void conn_idle_cb(uv_timer_t *t)
{
    struct ldg_h2_conn *conn = LDG_CONTAINER_OF(t, struct ldg_h2_conn, idle_timer);
    LDG_LOG(LDG_LOG_DEBUG, "grpc", "idle connection conn=%" PRIu64 " peer=%s", conn->id,
            conn->peer);
    nghttp2_session_terminate_session(conn->session, NGHTTP2_NO_ERROR);
    ldg_h2_conn_flush(conn);
}

void ldg_h2_conn_update_idle(struct ldg_h2_conn *conn)
{
    if (!conn->closing && conn->nstreams == 0)
        uv_timer_start(&conn->idle_timer, conn_idle_cb, conn->srv->opts.idle_timeout_ms, 0);
}

static void conn_write_cb(uv_write_t *req, int status)
{
    struct ldg_h2_conn *conn = LDG_CONTAINER_OF(req, struct ldg_h2_conn, wreq);
    conn->writing = 0;
    if (status < 0 || conn->closing) {
        conn_close(conn);
        return;
    }
    ldg_h2_conn_flush(conn);
}

void ldg_h2_conn_flush(struct ldg_h2_conn *conn)
{
    if (conn->closing || conn->writing || conn->in_nghttp2)
        return;
    ldg_buf_reset(&conn->wbuf);
    conn->in_nghttp2 = 1;
    while (conn->wbuf.len < (1u << 20)) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(conn->session, &p);
        if (n < 0) {
            conn->in_nghttp2 = 0;
            LDG_LOG(LDG_LOG_DEBUG, "grpc", "send failed conn=%" PRIu64 " err=%s", conn->id,
                    nghttp2_strerror((int)n));
            conn_close(conn);
            return;
        }
        if (n == 0)
            break;
        ldg_buf_append(&conn->wbuf, p, (size_t)n);
    }
    conn->in_nghttp2 = 0;
    if (conn->closing)
        return;
    if (conn->wbuf.len > 0) {
        uv_buf_t b = uv_buf_init((char *)conn->wbuf.data, (unsigned)conn->wbuf.len);
        int rv = uv_write(&conn->wreq, (uv_stream_t *)conn->tcp, &b, 1, conn_write_cb);
        if (rv != 0) {
            conn_close(conn);
            return;
        }
        conn->writing = 1;
        return;
    }
    if (!nghttp2_session_want_read(conn->session) && !nghttp2_session_want_write(conn->session))
        conn_close(conn);
}

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct ldg_h2_conn *conn = h->data;
    *buf = uv_buf_init((char *)conn->rbuf, sizeof conn->rbuf);
}

static void conn_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct ldg_h2_conn *conn = stream->data;
    if (nread == 0 || conn->closing)
        return;
    if (nread < 0) {
        conn_close(conn);
        return;
    }
    conn->in_nghttp2 = 1;
    ssize_t rv = nghttp2_session_mem_recv(conn->session, (const uint8_t *)buf->base,
                                          (size_t)nread);
    conn->in_nghttp2 = 0;
    if (conn->closing)
        return;
    if (rv < 0) {
        LDG_LOG(LDG_LOG_DEBUG, "grpc", "protocol error conn=%" PRIu64 " peer=%s err=%s",
                conn->id, conn->peer, nghttp2_strerror((int)rv));
        conn_close(conn);
        return;
    }
    ldg_h2_conn_flush(conn);
}

static void conn_free(struct ldg_h2_conn *conn)
{
    struct ldg_grpc_server *srv = conn->srv;
    nghttp2_session_del(conn->session);
    ldg_buf_close(&conn->wbuf);
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        srv->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    srv->nconns--;
    ldg_free(conn);
    server_maybe_done(srv);
}

static void conn_tcp_close_cb(uv_handle_t *h)
{
    struct ldg_h2_conn *conn = h->data;
    ldg_free(h);
    if (--conn->pending_closes == 0)
        conn_free(conn);
}

static void conn_timer_close_cb(uv_handle_t *h)
{
    struct ldg_h2_conn *conn = h->data;
    if (--conn->pending_closes == 0)
        conn_free(conn);
}

/* Close the socket, cancel the calls still open; freed in the close cbs. */
static void conn_close(struct ldg_h2_conn *conn)
{
    if (conn->closing)
        return;
    conn->closing = 1;
    LDG_LOG(LDG_LOG_DEBUG, "grpc", "connection closed conn=%" PRIu64 " peer=%s", conn->id,
            conn->peer);
    while (conn->calls) {
        struct ldg_grpc_call *c = conn->calls;
        nghttp2_session_set_stream_user_data(conn->session, c->stream_id, NULL);
        ldg_h2_call_stream_closed(c, NGHTTP2_CANCEL);
    }
    conn->pending_closes = 2;
    uv_close((uv_handle_t *)conn->tcp, conn_tcp_close_cb);
    uv_close((uv_handle_t *)&conn->idle_timer, conn_timer_close_cb);
}

int ldg_grpc_server_accept(struct ldg_grpc_server *srv, uv_tcp_t *tcp, const uint8_t *prefix,
                           size_t n)
{
    if (srv->shutting_down)
        return LDG_ECLOSED;
    struct ldg_h2_conn *conn = ldg_calloc(1, sizeof *conn);
    conn->srv = srv;
    conn->tcp = tcp;
    conn->id = ++srv->next_conn_id;
    ldg_buf_init(&conn->wbuf);
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &sslen) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    snprintf(conn->peer, sizeof conn->peer, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip,
             port);
    if (nghttp2_session_server_new(&conn->session, srv->callbacks, conn) != 0) {
        ldg_free(conn);
        return LDG_ENOMEM;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, srv->opts.max_concurrent_streams},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)srv->opts.max_header_bytes},
    };
    nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, iv, 2);
    int rv = uv_read_start((uv_stream_t *)tcp, conn_alloc_cb, conn_read_cb);
    if (rv != 0) {
        nghttp2_session_del(conn->session);
        ldg_free(conn);
        return ldg_err_from_uv(rv);
    }
    tcp->data = conn;
    uv_timer_init(srv->loop, &conn->idle_timer);
    conn->idle_timer.data = conn;
    conn->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = conn;
    srv->conns = conn;
    srv->nconns++;
    LDG_LOG(LDG_LOG_DEBUG, "grpc", "connection accepted conn=%" PRIu64 " peer=%s", conn->id,
            conn->peer);
    ldg_h2_conn_update_idle(conn);
    if (n > 0) {
        conn->in_nghttp2 = 1;
        ssize_t r = nghttp2_session_mem_recv(conn->session, prefix, n);
        conn->in_nghttp2 = 0;
        if (r < 0) {
            conn_close(conn);
            return 0;
        }
    }
    ldg_h2_conn_flush(conn);
    return 0;
}

/* ---- server ---- */

int ldg_grpc_server_new(uv_loop_t *loop, const struct ldg_grpc_server_opts *opts,
                        struct ldg_grpc_server **out)
{
    struct ldg_grpc_server *srv = ldg_calloc(1, sizeof *srv);
    struct ldg_grpc_server_opts d;
    ldg_grpc_server_opts_default(&d);
    srv->loop = loop;
    srv->opts = opts ? *opts : d;
#define LDG_DEFAULT(f) if (srv->opts.f == 0) srv->opts.f = d.f
    LDG_DEFAULT(max_recv_msg_bytes);
    LDG_DEFAULT(max_concurrent_streams);
    LDG_DEFAULT(stream_send_limit_bytes);
    LDG_DEFAULT(conn_send_limit_bytes);
    LDG_DEFAULT(idle_timeout_ms);
    LDG_DEFAULT(shutdown_grace_ms);
    LDG_DEFAULT(max_header_bytes);
#undef LDG_DEFAULT
    if (nghttp2_session_callbacks_new(&srv->callbacks) != 0) {
        ldg_free(srv);
        return LDG_EINTERNAL;
    }
    nghttp2_session_callbacks *cb = srv->callbacks;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    uv_timer_init(loop, &srv->grace_timer);
    static const char *const lbl[] = {"service", "method", "code"};
    srv->m_requests = ldg_metrics_counter("ledger_grpc_requests_total",
                                          "gRPC requests by final status", 3, lbl);
    srv->m_duration = ldg_metrics_histogram("ledger_grpc_request_duration_seconds",
                                            "gRPC request latency", 2, lbl,
                                            ldg_metrics_latency_buckets,
                                            ldg_metrics_latency_buckets_len);
    *out = srv;
    return 0;
}

int ldg_grpc_server_add_method(struct ldg_grpc_server *srv, const struct ldg_grpc_method *m)
{
    if (!m->service || !m->method || !m->request || !m->response || !m->service[0] ||
        !m->method[0])
        return LDG_EINVAL;
    char path[512];
    snprintf(path, sizeof path, "/%s/%s", m->service, m->method);
    if (ldg_grpc_server_find(srv, path))
        return LDG_EEXIST;
    if (srv->nmethods == srv->cap_methods) {
        srv->cap_methods = srv->cap_methods ? srv->cap_methods * 2 : 16;
        srv->methods = ldg_realloc(srv->methods, srv->cap_methods * sizeof *srv->methods);
    }
    struct ldg_h2_method *hm = ldg_calloc(1, sizeof *hm); /* calls point to it */
    srv->methods[srv->nmethods++] = hm;
    hm->m = *m;
    hm->m.service = ldg_strdup(m->service);
    hm->m.method = ldg_strdup(m->method);
    hm->m.unimplemented = m->unimplemented ? ldg_strdup(m->unimplemented) : NULL;
    hm->path = ldg_strdup(path);
    return 0;
}

const struct ldg_grpc_method *ldg_grpc_server_find(const struct ldg_grpc_server *srv,
                                                   const char *path)
{
    for (size_t i = 0; i < srv->nmethods; i++)
        if (strcmp(srv->methods[i]->path, path) == 0)
            return &srv->methods[i]->m;
    return NULL;
}

void ldg_grpc_server_services(const struct ldg_grpc_server *srv, ldg_grpc_service_cb cb,
                              void *arg)
{
    for (size_t i = 0; i < srv->nmethods; i++) {
        size_t j = 0;
        while (j < i && strcmp(srv->methods[j]->m.service, srv->methods[i]->m.service) != 0)
            j++;
        if (j == i)
            cb(srv->methods[i]->m.service, arg);
    }
}

size_t ldg_grpc_server_conn_count(const struct ldg_grpc_server *srv)
{
    return srv->nconns;
}

static void grace_close_cb(uv_handle_t *h)
{
    struct ldg_grpc_server *srv = LDG_CONTAINER_OF((uv_timer_t *)h, struct ldg_grpc_server,
                                                   grace_timer);
    srv->shutdown_done = 1;
    if (srv->shutdown_cb)
        srv->shutdown_cb(srv, srv->shutdown_arg);
}

static void server_maybe_done(struct ldg_grpc_server *srv)
{
    if (!srv->shutting_down || srv->nconns > 0 || uv_is_closing((uv_handle_t *)&srv->grace_timer))
        return;
    uv_close((uv_handle_t *)&srv->grace_timer, grace_close_cb);
}

static void grace_timer_cb(uv_timer_t *t)
{
    struct ldg_grpc_server *srv = LDG_CONTAINER_OF(t, struct ldg_grpc_server, grace_timer);
    LDG_LOG(LDG_LOG_INFO, "grpc", "shutdown grace period over, closing connections=%zu",
            srv->nconns);
    for (struct ldg_h2_conn *c = srv->conns; c; c = c->next)
        conn_close(c);
}

int ldg_grpc_server_shutdown(struct ldg_grpc_server *srv, ldg_grpc_server_shutdown_cb cb,
                             void *arg)
{
    if (srv->shutting_down)
        return LDG_EBUSY;
    srv->shutting_down = 1;
    srv->shutdown_cb = cb;
    srv->shutdown_arg = arg;
    for (struct ldg_h2_conn *c = srv->conns; c; c = c->next) {
        nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->session),
                              NGHTTP2_NO_ERROR, NULL, 0);
        ldg_h2_conn_flush(c);
    }
    uv_timer_start(&srv->grace_timer, grace_timer_cb, srv->opts.shutdown_grace_ms, 0);
    server_maybe_done(srv);
    return 0;
}

void ldg_grpc_server_free(struct ldg_grpc_server *srv)
{
    if (!srv)
        return;
    for (size_t i = 0; i < srv->nmethods; i++) {
        struct ldg_h2_method *hm = srv->methods[i];
        ldg_free((char *)hm->m.service);
        ldg_free((char *)hm->m.method);
        ldg_free((char *)hm->m.unimplemented);
        ldg_free(hm->path);
        ldg_free(hm);
    }
    ldg_free(srv->methods);
    nghttp2_session_callbacks_del(srv->callbacks);
    ldg_free(srv);
}
