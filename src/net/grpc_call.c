/* The server side of one gRPC call: the handler-facing API of net/grpc.h and
 * the response path into nghttp2.
 *
 * Happy path: the handler queues framed messages in c->outq; the first one
 * submits the response HEADERS with a data provider that drains outq; ending
 * the call records the status, and once outq is drained the data provider
 * ends the DATA with NO_END_STREAM and submits the trailers. An error before
 * any message becomes a trailers-only response.
 *
 * Failure modes: the stream or connection goes away first (stream_closed:
 * ending the call is a no-op on the wire, the cancel callback fires if the
 * handler still owns the call); the deadline passes (DEADLINE_EXCEEDED is
 * sent, queued data dropped, the cancel callback fires). The call is freed
 * when the stream is gone and the handler has ended it (or never got it). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "net/grpc_call.h"
#include "util/assert.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/metrics.h"

struct ldg_grpc_call *ldg_h2_call_new(struct ldg_h2_conn *conn, int32_t stream_id)
{
    struct ldg_grpc_call *c = ldg_calloc(1, sizeof *c);
    c->conn = conn;
    c->stream_id = stream_id;
    c->timeout_ms = -1;
    c->start_ns = uv_hrtime();
    snprintf(c->peer, sizeof c->peer, "%s", conn->peer);
    ldg_grpc_deframer_init(&c->deframer, conn->srv->opts.max_recv_msg_bytes);
    ldg_buf_init(&c->req_bytes);
    ldg_buf_init(&c->outq);
    c->next = conn->calls;
    if (conn->calls)
        conn->calls->prev = c;
    conn->calls = c;
    conn->nstreams++;
    return c;
}

static void free_headers(struct ldg_h2_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ldg_free(h[i].name);
        ldg_free(h[i].value);
    }
    ldg_free(h);
}

static void call_free(struct ldg_grpc_call *c)
{
    ldg_free(c->path);
    ldg_free(c->http_method);
    ldg_free(c->content_type);
    ldg_free(c->timeout);
    free_headers(c->hdrs, c->nhdrs);
    free_headers(c->trailers, c->ntrailers);
    ldg_grpc_deframer_close(&c->deframer);
    ldg_buf_close(&c->req_bytes);
    ldg_buf_close(&c->outq);
    if (c->pending_req)
        protobuf_c_message_free_unpacked(c->pending_req, NULL);
    ldg_free(c->status_msg);
    ldg_free(c);
}

static void call_timer_close_cb(uv_handle_t *h)
{
    call_free(LDG_CONTAINER_OF((uv_timer_t *)h, struct ldg_grpc_call, deadline_timer));
}

void ldg_h2_call_maybe_free(struct ldg_grpc_call *c)
{
    if (c->busy > 0 || !c->stream_closed || (c->handler_started && !c->ended))
        return;
    if (c->has_timer) {
        c->has_timer = 0;
        c->busy = 1; /* never freed twice */
        uv_timer_stop(&c->deadline_timer);
        uv_close((uv_handle_t *)&c->deadline_timer, call_timer_close_cb);
        return;
    }
    call_free(c);
}

/* ---- metrics and logging, once per call ---- */

static void call_record(struct ldg_grpc_call *c, int code)
{
    struct ldg_grpc_server *srv = c->conn->srv;
    const char *service = c->hm ? c->hm->m.service : "unknown";
    const char *method = c->hm ? c->hm->m.method : "unknown";
    double secs = (double)(uv_hrtime() - c->start_ns) / 1e9;
    const char *v[] = {service, method, ldg_grpc_code_name(code)};
    ldg_metrics_inc(srv->m_requests, v, 1);
    ldg_metrics_observe(srv->m_duration, v, secs);
    LDG_LOG(LDG_LOG_DEBUG, "grpc", "request conn=%" PRIu64 " stream=%d path=%s code=%s "
            "latency_ms=%.3f peer=%s", c->conn->id, c->stream_id, c->path ? c->path : "-",
            ldg_grpc_code_name(code), secs * 1000.0, c->conn->peer);
}

/* ---- response path ---- */

static void make_nv(nghttp2_nv *nv, const char *name, const char *value)
{
    nv->name = (uint8_t *)(uintptr_t)name;
    nv->namelen = strlen(name);
    nv->value = (uint8_t *)(uintptr_t)value;
    nv->valuelen = strlen(value);
    nv->flags = NGHTTP2_NV_FLAG_NONE;
}

/* Build the status trailers into |nv| (size >= 2 + ntrailers); returns count.
 * |code_buf| and |msg_buf| hold the values. */
static size_t status_nv(struct ldg_grpc_call *c, nghttp2_nv *nv, char *code_buf,
                        struct ldg_buf *msg_buf)
{
    size_t n = 0;
    snprintf(code_buf, 12, "%d", c->status);
    make_nv(&nv[n++], "grpc-status", code_buf);
    if (c->status_msg && c->status_msg[0]) {
        ldg_grpc_percent_encode(msg_buf, c->status_msg);
        make_nv(&nv[n++], "grpc-message", (const char *)msg_buf->data);
    }
    for (size_t i = 0; i < c->ntrailers; i++)
        make_nv(&nv[n++], c->trailers[i].name, c->trailers[i].value);
    return n;
}

static void submit_trailers(struct ldg_grpc_call *c)
{
    nghttp2_nv *nv = ldg_calloc(2 + c->ntrailers, sizeof *nv);
    char code_buf[12];
    struct ldg_buf msg;
    ldg_buf_init(&msg);
    size_t n = status_nv(c, nv, code_buf, &msg);
    int rv = nghttp2_submit_trailer(c->conn->session, c->stream_id, nv, n);
    if (rv != 0)
        nghttp2_submit_rst_stream(c->conn->session, NGHTTP2_FLAG_NONE, c->stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
    ldg_buf_close(&msg);
    ldg_free(nv);
}

static ssize_t call_data_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                                 size_t length, uint32_t *data_flags,
                                 nghttp2_data_source *source, void *user_data)
{
    struct ldg_grpc_call *c = source->ptr;
    size_t avail = c->outq.len - c->out_off;
    if (avail == 0 && !c->wire_done) {
        c->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = avail < length ? avail : length;
    if (n > 0)
        memcpy(buf, c->outq.data + c->out_off, n);
    c->out_off += n;
    c->conn->queued_bytes -= n;
    if (c->out_off == c->outq.len) {
        ldg_buf_reset(&c->outq);
        c->out_off = 0;
    } else if (c->out_off > 65536 && c->out_off > c->outq.len / 2) {
        ldg_buf_consume(&c->outq, c->out_off);
        c->out_off = 0;
    }
    if (c->outq.len == 0 && c->wire_done) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        submit_trailers(c);
    }
    return (ssize_t)n;
}

/* Response HEADERS (with a data provider) on first use. */
static void ensure_headers(struct ldg_grpc_call *c)
{
    if (c->headers_sent)
        return;
    nghttp2_nv nv[3];
    make_nv(&nv[0], ":status", "200");
    make_nv(&nv[1], "content-type", "application/grpc");
    make_nv(&nv[2], "grpc-accept-encoding", "identity");
    nghttp2_data_provider prd = {.source.ptr = c, .read_callback = call_data_read_cb};
    if (nghttp2_submit_response(c->conn->session, c->stream_id, nv, 3, &prd) != 0)
        nghttp2_submit_rst_stream(c->conn->session, NGHTTP2_FLAG_NONE, c->stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
    c->headers_sent = 1;
}

static void resume(struct ldg_grpc_call *c)
{
    if (c->deferred) {
        c->deferred = 0;
        nghttp2_session_resume_data(c->conn->session, c->stream_id);
    }
    ldg_h2_conn_flush(c->conn);
}

void ldg_h2_call_end_wire(struct ldg_grpc_call *c, int http_status, int code, const char *msg)
{
    if (c->wire_done || c->stream_closed)
        return;
    c->wire_done = 1;
    c->status = code;
    c->status_msg = ldg_strdup(msg ? msg : "");
    call_record(c, code);
    if (c->headers_sent) {
        resume(c); /* the data provider sends the trailers after outq */
        return;
    }
    /* Trailers-only response. */
    nghttp2_nv *nv = ldg_calloc(5 + c->ntrailers, sizeof *nv);
    char status_buf[12], code_buf[12];
    struct ldg_buf mbuf;
    ldg_buf_init(&mbuf);
    snprintf(status_buf, sizeof status_buf, "%d", http_status);
    make_nv(&nv[0], ":status", status_buf);
    make_nv(&nv[1], "content-type", "application/grpc");
    make_nv(&nv[2], "grpc-accept-encoding", "identity");
    size_t n = 3 + status_nv(c, nv + 3, code_buf, &mbuf);
    if (nghttp2_submit_response(c->conn->session, c->stream_id, nv, n, NULL) != 0)
        nghttp2_submit_rst_stream(c->conn->session, NGHTTP2_FLAG_NONE, c->stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
    c->headers_sent = 1;
    ldg_buf_close(&mbuf);
    ldg_free(nv);
    ldg_h2_conn_flush(c->conn);
}

void ldg_h2_call_cancel(struct ldg_grpc_call *c)
{
    if (c->cancelled)
        return;
    c->cancelled = 1;
    if (!c->handler_started || c->ended || !c->cancel_cb)
        return;
    c->busy++;
    c->cancel_cb(c, c->cancel_arg);
    c->busy--;
}

void ldg_h2_call_stream_closed(struct ldg_grpc_call *c, uint32_t error_code)
{
    if (c->stream_closed)
        return;
    struct ldg_h2_conn *conn = c->conn;
    if (!c->wire_done) {
        c->wire_done = 1;
        call_record(c, LDG_GRPC_CANCELLED);
    }
    c->stream_closed = 1;
    conn->queued_bytes -= c->outq.len - c->out_off;
    if (c->prev)
        c->prev->next = c->next;
    else
        conn->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    conn->nstreams--;
    if (c->has_timer)
        uv_timer_stop(&c->deadline_timer);
    c->conn = NULL;
    LDG_LOG(LDG_LOG_TRACE, "grpc", "stream closed conn=%" PRIu64 " stream=%d error=%u",
            conn->id, c->stream_id, error_code);
    c->busy++;
    ldg_h2_call_cancel(c);
    c->busy--;
    ldg_h2_call_maybe_free(c);
}

/* ---- handler API (net/grpc.h) ---- */

static void end_by_handler(struct ldg_grpc_call *c, int code, const char *msg)
{
    LDG_ASSERT(!c->ended); /* a handler ends its call exactly once */
    c->ended = 1;
    /* Ending on the wire may close the stream synchronously (nghttp2 sends
     * and reports the close at once when the handler ends from a later
     * callback): hold the call until this function is done with it. */
    c->busy++;
    if (c->conn)
        ldg_h2_call_end_wire(c, 200, code, msg);
    c->busy--;
    ldg_h2_call_maybe_free(c);
}

static int queue_message(struct ldg_grpc_call *c, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    ldg_buf_reserve(&c->outq, len + LDG_GRPC_PREFIX_LEN);
    ldg_buf_u8(&c->outq, 0);
    ldg_buf_u32be(&c->outq, (uint32_t)len);
    protobuf_c_message_pack(msg, c->outq.data + c->outq.len);
    c->outq.len += len;
    c->conn->queued_bytes += len + LDG_GRPC_PREFIX_LEN;
    ensure_headers(c);
    return 0;
}

void ldg_grpc_call_reply(struct ldg_grpc_call *c, const ProtobufCMessage *resp)
{
    if (c->conn && !c->wire_done)
        queue_message(c, resp);
    end_by_handler(c, LDG_GRPC_OK, NULL);
}

void ldg_grpc_call_reply_raw(struct ldg_grpc_call *c, const uint8_t *data, size_t len)
{
    if (c->conn && !c->wire_done) {
        ldg_grpc_frame_append(&c->outq, data, len);
        c->conn->queued_bytes += len + LDG_GRPC_PREFIX_LEN;
        ensure_headers(c);
    }
    end_by_handler(c, LDG_GRPC_OK, NULL);
}

void ldg_grpc_call_fail(struct ldg_grpc_call *c, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    end_by_handler(c, code == LDG_GRPC_OK ? LDG_GRPC_UNKNOWN : code, msg);
}

int ldg_grpc_call_send(struct ldg_grpc_call *c, const ProtobufCMessage *msg)
{
    if (c->ended || !c->conn || c->wire_done)
        return LDG_ECLOSED;
    const struct ldg_grpc_server_opts *o = &c->conn->srv->opts;
    if (c->outq.len - c->out_off > o->stream_send_limit_bytes ||
        c->conn->queued_bytes > o->conn_send_limit_bytes)
        return LDG_EFULL;
    queue_message(c, msg);
    resume(c);
    return 0;
}

void ldg_grpc_call_finish(struct ldg_grpc_call *c, int code, const char *msg)
{
    end_by_handler(c, code, msg);
}

void ldg_grpc_call_on_cancel(struct ldg_grpc_call *c, ldg_grpc_cancel_fn cb, void *arg)
{
    c->cancel_cb = cb;
    c->cancel_arg = arg;
}

int ldg_grpc_call_is_cancelled(const struct ldg_grpc_call *c)
{
    return c->cancelled;
}

int64_t ldg_grpc_call_remaining_ms(const struct ldg_grpc_call *c)
{
    if (c->timeout_ms < 0)
        return -1;
    if (!c->has_timer)
        return 0;
    uint64_t now = uv_now(c->deadline_timer.loop);
    return now >= c->deadline ? 0 : (int64_t)(c->deadline - now);
}

const char *ldg_grpc_call_header(const struct ldg_grpc_call *c, const char *name)
{
    if (strcmp(name, "content-type") == 0)
        return c->content_type;
    if (strcmp(name, "grpc-timeout") == 0)
        return c->timeout;
    for (size_t i = 0; i < c->nhdrs; i++)
        if (strcmp(c->hdrs[i].name, name) == 0)
            return c->hdrs[i].value;
    return NULL;
}

int ldg_grpc_call_header_at(const struct ldg_grpc_call *c, size_t i, const char **name,
                            const char **value)
{
    if (i >= c->nhdrs)
        return 0;
    *name = c->hdrs[i].name;
    *value = c->hdrs[i].value;
    return 1;
}

const char *ldg_grpc_call_path(const struct ldg_grpc_call *c)
{
    return c->path ? c->path : "";
}

const struct ldg_grpc_method *ldg_grpc_call_method(const struct ldg_grpc_call *c)
{
    return c->hm ? &c->hm->m : NULL;
}

const uint8_t *ldg_grpc_call_request_bytes(const struct ldg_grpc_call *c, size_t *len)
{
    *len = c->req_bytes.len;
    return c->req_bytes.data ? c->req_bytes.data : (const uint8_t *)"";
}

const char *ldg_grpc_call_peer(const struct ldg_grpc_call *c)
{
    return c->peer;
}

void ldg_grpc_call_add_trailer(struct ldg_grpc_call *c, const char *name, const char *value)
{
    c->trailers = ldg_realloc(c->trailers, (c->ntrailers + 1) * sizeof *c->trailers);
    c->trailers[c->ntrailers].name = ldg_strdup(name);
    c->trailers[c->ntrailers].value = ldg_strdup(value);
    c->ntrailers++;
}
