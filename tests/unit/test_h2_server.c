/* The gRPC server on a real loop, on 127.0.0.1:<ephemeral>, driven by a raw
 * nghttp2 client session on a blocking socket watched by a uv_poll in the
 * same loop. Every test builds and tears down its own server and checks that
 * the loop closes with no handle left. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>
#include <uv.h>

#include "grpc/health/v1/health.pb-c.h"
#include "net/grpc.h"
#include "net/grpc_frame.h"
#include "net/h2_server.h"
#include "net/listener.h"
#include "util/buf.h"
#include "util/mem.h"
#include "util/metrics.h"

typedef Grpc__Health__V1__HealthCheckRequest HcReq;
typedef Grpc__Health__V1__HealthCheckResponse HcResp;

#define MAX_STREAMS 8

struct tstream {
    int32_t id;
    int http_status;
    int grpc_status; /* -1 until seen */
    char grpc_message[512];
    int accept_identity;
    int x_test;
    struct ldg_buf data;   /* response DATA bytes */
    struct ldg_buf out;    /* request bytes to send */
    size_t out_off;
    int out_end;           /* END_STREAM after out */
    int closed;
    uint32_t rst_code;
};

struct tclient {
    int fd;
    uv_poll_t poll;
    int polling;
    nghttp2_session *s; /* NULL for raw connections */
    struct tstream st[MAX_STREAMS];
    size_t nst;
    struct ldg_buf raw; /* raw connections: bytes received */
    int eof;
    int goaway;
};

static struct {
    uv_loop_t loop;
    struct ldg_grpc_server *srv;
    struct ldg_listener *lst;
    int port;
    struct ldg_grpc_call *held;
    int cancels;
    int shutdown_done;
    int listener_closed;
    struct tclient cl;
    uv_tcp_t *handed;      /* registered-protocol connection */
    uint8_t handed_prefix[32];
    size_t handed_n;
    struct ldg_buf handed_rest;
} T;

/* ---- handlers ---- */

static void hang_cancel_cb(struct ldg_grpc_call *call, void *arg)
{
    T.cancels++;
    assert_true(ldg_grpc_call_is_cancelled(call));
    ldg_grpc_call_fail(call, LDG_GRPC_CANCELLED, "cancelled");
    T.held = NULL;
}

static int hold(struct ldg_grpc_call *call, const HcReq *r)
{
    if (strcmp(r->service, "hang") != 0)
        return 0;
    T.held = call;
    ldg_grpc_call_on_cancel(call, hang_cancel_cb, NULL);
    return 1;
}

static void check_handler(struct ldg_grpc_call *call, const ProtobufCMessage *req, void *ud)
{
    const HcReq *r = (const HcReq *)req;
    if (hold(call, r))
        return;
    if (strcmp(r->service, "fail") == 0) {
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND, "no such service: 100%% \"%s\"\n",
                           r->service);
        return;
    }
    HcResp resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    ldg_grpc_call_add_trailer(call, "x-test", "yes");
    ldg_grpc_call_reply(call, &resp.base);
}

static void watch_handler(struct ldg_grpc_call *call, const ProtobufCMessage *req, void *ud)
{
    const HcReq *r = (const HcReq *)req;
    if (hold(call, r))
        return;
    int n = 0;
    sscanf(r->service, "n=%d", &n);
    for (int i = 0; i < n; i++) {
        HcResp resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        resp.status = i % 3;
        assert_int_equal(ldg_grpc_call_send(call, &resp.base), 0);
    }
    ldg_grpc_call_finish(call, LDG_GRPC_OK, NULL);
}

static void chat_handler(struct ldg_grpc_call *call, const ProtobufCMessage *req, void *ud)
{
    if (!req) {
        ldg_grpc_call_finish(call, LDG_GRPC_OK, NULL);
        return;
    }
    HcReq echo = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    echo.service = ((const HcReq *)req)->service;
    assert_int_equal(ldg_grpc_call_send(call, &echo.base), 0);
}

/* ---- loop helpers ---- */

static void timeout_cb(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

typedef int (*pred_fn)(void);

/* Run the loop until |pred| holds; fail the test after |ms|. */
static void run_until(pred_fn pred, uint64_t ms)
{
    uv_timer_t timer;
    int expired = 0;
    uv_timer_init(&T.loop, &timer);
    timer.data = &expired;
    uv_timer_start(&timer, timeout_cb, ms, 0);
    while (!pred() && !expired)
        uv_run(&T.loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&T.loop, UV_RUN_NOWAIT);
    assert_true(pred());
}

/* ---- raw nghttp2 client ---- */

static struct tstream *find_stream(int32_t id)
{
    for (size_t i = 0; i < T.cl.nst; i++)
        if (T.cl.st[i].id == id)
            return &T.cl.st[i];
    return NULL;
}

static void client_flush(void)
{
    const uint8_t *p;
    ssize_t n;
    while (T.cl.s && (n = nghttp2_session_mem_send(T.cl.s, &p)) > 0)
        if (write(T.cl.fd, p, (size_t)n) != n)
            break;
}

static int c_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                       size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    struct tstream *st = find_stream(f->hd.stream_id);
    if (!st)
        return 0;
    char v[512];
    snprintf(v, sizeof v, "%.*s", (int)vl, (const char *)value);
    if (nl == 7 && memcmp(name, ":status", 7) == 0)
        st->http_status = atoi(v);
    else if (nl == 11 && memcmp(name, "grpc-status", 11) == 0)
        st->grpc_status = atoi(v);
    else if (nl == 20 && memcmp(name, "grpc-accept-encoding", 20) == 0)
        st->accept_identity = strcmp(v, "identity") == 0;
    else if (nl == 6 && memcmp(name, "x-test", 6) == 0)
        st->x_test = 1;
    else if (nl == 12 && memcmp(name, "grpc-message", 12) == 0) {
        struct ldg_buf d;
        ldg_buf_init(&d);
        ldg_grpc_percent_decode(&d, (const char *)value, vl);
        snprintf(st->grpc_message, sizeof st->grpc_message, "%s", (char *)d.data);
        ldg_buf_close(&d);
    }
    return 0;
}

static int c_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                     size_t len, void *ud)
{
    struct tstream *st = find_stream(id);
    if (st)
        ldg_buf_append(&st->data, data, len);
    return 0;
}

static int c_on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    struct tstream *st = find_stream(id);
    if (st) {
        st->closed = 1;
        st->rst_code = code;
    }
    return 0;
}

static int c_on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    if (f->hd.type == NGHTTP2_GOAWAY)
        T.cl.goaway = 1;
    return 0;
}

static void client_poll_cb(uv_poll_t *p, int status, int events)
{
    uint8_t buf[16384];
    ssize_t n = read(T.cl.fd, buf, sizeof buf);
    if (n <= 0) {
        T.cl.eof = 1;
        uv_poll_stop(p);
        return;
    }
    if (!T.cl.s) {
        ldg_buf_append(&T.cl.raw, buf, (size_t)n);
        return;
    }
    assert_true(nghttp2_session_mem_recv(T.cl.s, buf, (size_t)n) == n);
    client_flush();
}

static void client_connect(int h2)
{
    memset(&T.cl, 0, sizeof T.cl);
    ldg_buf_init(&T.cl.raw);
    T.cl.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)T.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(T.cl.fd, (struct sockaddr *)&a, sizeof a), 0);
    uv_poll_init(&T.loop, &T.cl.poll, T.cl.fd);
    uv_poll_start(&T.cl.poll, UV_READABLE, client_poll_cb);
    T.cl.polling = 1;
    if (!h2)
        return;
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, c_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, c_on_frame);
    nghttp2_session_client_new(&T.cl.s, cb, NULL);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(T.cl.s, NGHTTP2_FLAG_NONE, NULL, 0);
    client_flush();
}

static void client_close(void)
{
    if (!T.cl.polling)
        return;
    uv_close((uv_handle_t *)&T.cl.poll, NULL);
    uv_run(&T.loop, UV_RUN_NOWAIT);
    close(T.cl.fd);
    nghttp2_session_del(T.cl.s);
    for (size_t i = 0; i < T.cl.nst; i++) {
        ldg_buf_close(&T.cl.st[i].data);
        ldg_buf_close(&T.cl.st[i].out);
    }
    ldg_buf_close(&T.cl.raw);
    T.cl.polling = 0;
}

static ssize_t c_data_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                           uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct tstream *st = find_stream(id);
    size_t avail = st->out.len - st->out_off;
    if (avail == 0 && !st->out_end)
        return NGHTTP2_ERR_DEFERRED;
    size_t n = avail < len ? avail : len;
    memcpy(buf, st->out.data + st->out_off, n);
    st->out_off += n;
    if (st->out_off == st->out.len && st->out_end)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* Open a stream on |path| with |ctype| and optional grpc-timeout. */
static struct tstream *client_open(const char *path, const char *ctype, const char *timeout)
{
    nghttp2_nv nv[8];
    size_t n = 0;
#define NV(k, v) nv[n++] = (nghttp2_nv){(uint8_t *)(k), (uint8_t *)(v), strlen(k), strlen(v), 0}
    NV(":method", "POST");
    NV(":scheme", "http");
    NV(":path", path);
    NV(":authority", "localhost");
    NV("content-type", ctype);
    NV("te", "trailers");
    if (timeout)
        NV("grpc-timeout", timeout);
#undef NV
    struct tstream *st = &T.cl.st[T.cl.nst++];
    memset(st, 0, sizeof *st);
    st->grpc_status = -1;
    ldg_buf_init(&st->data);
    ldg_buf_init(&st->out);
    nghttp2_data_provider prd = {.read_callback = c_data_read};
    st->id = -1;
    int32_t id = nghttp2_submit_request(T.cl.s, NULL, nv, n, &prd, NULL);
    assert_true(id > 0);
    st->id = id;
    return st;
}

/* Queue raw bytes (already framed or not) on the stream. */
static void client_send(struct tstream *st, const void *p, size_t n, int end)
{
    ldg_buf_append(&st->out, p, n);
    st->out_end = end;
    nghttp2_session_resume_data(T.cl.s, st->id);
    client_flush();
}

static void client_send_req(struct tstream *st, const char *service, int end)
{
    HcReq r = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    r.service = (char *)service;
    uint8_t buf[256];
    size_t len = protobuf_c_message_pack(&r.base, buf);
    struct ldg_buf f;
    ldg_buf_init(&f);
    ldg_grpc_frame_append(&f, buf, len);
    client_send(st, f.data, f.len, end);
    ldg_buf_close(&f);
}

/* Unary helper: open, send one request, end. */
static struct tstream *client_call(const char *path, const char *service, const char *timeout)
{
    struct tstream *st = client_open(path, "application/grpc", timeout);
    client_send_req(st, service, 1);
    return st;
}

static struct tstream *wait_st;
static int pred_wait_st(void) { return wait_st->closed; }
static void wait_closed(struct tstream *st)
{
    wait_st = st;
    run_until(pred_wait_st, 5000);
}

/* Decode the response messages of a stream. */
struct msgs {
    size_t n;
    ProtobufCMessage *m[16];
    const ProtobufCMessageDescriptor *desc;
};

static int msgs_cb(void *arg, const uint8_t *msg, size_t len)
{
    struct msgs *ms = arg;
    assert_true(ms->n < 16);
    ms->m[ms->n] = protobuf_c_message_unpack(ms->desc, NULL, len, msg);
    assert_non_null(ms->m[ms->n]);
    ms->n++;
    return 0;
}

static void decode(struct tstream *st, const ProtobufCMessageDescriptor *desc, struct msgs *ms)
{
    memset(ms, 0, sizeof *ms);
    ms->desc = desc;
    struct ldg_grpc_deframer d;
    ldg_grpc_deframer_init(&d, 1 << 20);
    assert_int_equal(ldg_grpc_deframer_feed(&d, st->data.data, st->data.len, msgs_cb, ms), 0);
    assert_false(ldg_grpc_deframer_partial(&d));
    ldg_grpc_deframer_close(&d);
}

static void msgs_free(struct msgs *ms)
{
    for (size_t i = 0; i < ms->n; i++)
        protobuf_c_message_free_unpacked(ms->m[i], NULL);
}

/* ---- fixture ---- */

static void handed_cb(void *arg, uv_tcp_t *tcp, const uint8_t *prefix, size_t n)
{
    T.handed = tcp;
    memcpy(T.handed_prefix, prefix, n);
    T.handed_n = n;
}

static int setup(void **state)
{
    memset(&T, 0, sizeof T);
    ldg_metrics_reset();
    uv_loop_init(&T.loop);
    struct ldg_grpc_server_opts o;
    ldg_grpc_server_opts_default(&o);
    o.shutdown_grace_ms = 3000;
    assert_int_equal(ldg_grpc_server_new(&T.loop, &o, &T.srv), 0);
    struct ldg_grpc_method m = {
        .service = "grpc.health.v1.Health", .method = "Check", .kind = LDG_GRPC_UNARY,
        .request = &grpc__health__v1__health_check_request__descriptor,
        .response = &grpc__health__v1__health_check_response__descriptor,
        .handler = check_handler,
    };
    assert_int_equal(ldg_grpc_server_add_method(T.srv, &m), 0);
    assert_int_equal(ldg_grpc_server_add_method(T.srv, &m), LDG_EEXIST);
    m.method = "Watch";
    m.kind = LDG_GRPC_SERVER_STREAM;
    m.handler = watch_handler;
    assert_int_equal(ldg_grpc_server_add_method(T.srv, &m), 0);
    m.service = "test.v1.Echo";
    m.method = "Chat";
    m.kind = LDG_GRPC_BIDI_STREAM;
    m.response = &grpc__health__v1__health_check_request__descriptor;
    m.handler = chat_handler;
    assert_int_equal(ldg_grpc_server_add_method(T.srv, &m), 0);
    struct ldg_listener_opts lo = {.handshake_timeout_ms = 300, .max_conns = 16};
    assert_int_equal(ldg_listener_new(&T.loop, "127.0.0.1:0", &lo, T.srv, &T.lst, NULL), 0);
    T.port = ldg_listener_port(T.lst);
    assert_true(T.port > 0);
    *state = NULL;
    return 0;
}

static void shutdown_cb(struct ldg_grpc_server *srv, void *arg) { T.shutdown_done = 1; }
static void listener_closed_cb(void *arg) { T.listener_closed = 1; }
static int pred_torn_down(void) { return T.shutdown_done && T.listener_closed; }

static int teardown(void **state)
{
    client_close();
    if (T.held)
        ldg_grpc_call_fail(T.held, LDG_GRPC_UNAVAILABLE, "test over");
    if (!T.shutdown_done)
        ldg_grpc_server_shutdown(T.srv, shutdown_cb, NULL);
    ldg_listener_close(T.lst, listener_closed_cb, NULL);
    run_until(pred_torn_down, 5000);
    ldg_grpc_server_free(T.srv);
    uv_run(&T.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&T.loop), 0);
    ldg_buf_close(&T.handed_rest);
    return 0;
}

/* ---- tests ---- */

static void test_unary_ok_and_fail(void **state)
{
    client_connect(1);
    struct tstream *ok = client_call("/grpc.health.v1.Health/Check", "", "5S");
    struct tstream *bad = client_call("/grpc.health.v1.Health/Check", "fail", NULL);
    wait_closed(ok);
    wait_closed(bad);
    assert_int_equal(ok->http_status, 200);
    assert_int_equal(ok->grpc_status, 0);
    assert_true(ok->accept_identity);
    assert_true(ok->x_test);
    struct msgs ms;
    decode(ok, &grpc__health__v1__health_check_response__descriptor, &ms);
    assert_int_equal(ms.n, 1);
    assert_int_equal(((HcResp *)ms.m[0])->status,
                     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    msgs_free(&ms);
    /* Error with a message that needs percent-encoding, trailers-only. */
    assert_int_equal(bad->grpc_status, LDG_GRPC_NOT_FOUND);
    assert_string_equal(bad->grpc_message, "no such service: 100% \"fail\"\n");
    assert_int_equal(bad->data.len, 0);
    assert_int_equal(nghttp2_session_get_remote_settings(
                         T.cl.s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS), 100);
    struct ldg_buf m;
    ldg_buf_init(&m);
    ldg_metrics_render(&m);
    ldg_buf_u8(&m, 0);
    assert_non_null(strstr((char *)m.data, "ledger_grpc_requests_total{service=\"grpc.health.v1."
                                           "Health\",method=\"Check\",code=\"OK\"} 1"));
    assert_non_null(strstr((char *)m.data, "code=\"NOT_FOUND\"} 1"));
    assert_non_null(strstr((char *)m.data, "ledger_grpc_request_duration_seconds_count{service="
                                           "\"grpc.health.v1.Health\",method=\"Check\"} 2"));
    ldg_buf_close(&m);
}

static void test_unknown_method_and_content_type(void **state)
{
    client_connect(1);
    struct tstream *unk = client_call("/x/y", "", NULL);
    struct tstream *ct = client_open("/grpc.health.v1.Health/Check", "application/json", NULL);
    client_send(ct, "{}", 2, 1);
    wait_closed(unk);
    wait_closed(ct);
    assert_int_equal(unk->http_status, 200);
    assert_int_equal(unk->grpc_status, LDG_GRPC_UNIMPLEMENTED);
    assert_string_equal(unk->grpc_message, "unknown method /x/y");
    assert_int_equal(ct->http_status, 415);
    assert_int_equal(ct->grpc_status, LDG_GRPC_INTERNAL);
}

static void test_bad_requests(void **state)
{
    client_connect(1);
    /* Oversized: the 5-byte prefix alone declares 5 MiB; the stream stays open. */
    struct tstream *big = client_open("/grpc.health.v1.Health/Check", "application/grpc", NULL);
    const uint8_t big_prefix[] = {0, 0x00, 0x50, 0x00, 0x00, 'x', 'y'};
    client_send(big, big_prefix, sizeof big_prefix, 0);
    /* Not a HealthCheckRequest: field 1 with wire type 7 (invalid). */
    struct tstream *junk = client_open("/grpc.health.v1.Health/Check", "application/grpc", NULL);
    const uint8_t junk_msg[] = {0, 0, 0, 0, 3, 0x0f, 0xff, 0xff};
    client_send(junk, junk_msg, sizeof junk_msg, 1);
    /* Compressed flag. */
    struct tstream *comp = client_open("/grpc.health.v1.Health/Check", "application/grpc", NULL);
    const uint8_t comp_msg[] = {1, 0, 0, 0, 1, 0};
    client_send(comp, comp_msg, sizeof comp_msg, 1);
    wait_closed(big);
    wait_closed(junk);
    wait_closed(comp);
    assert_int_equal(big->grpc_status, LDG_GRPC_RESOURCE_EXHAUSTED);
    assert_string_equal(big->grpc_message,
                        "request message of 5242880 bytes exceeds the limit of 4194304 bytes");
    assert_int_equal(junk->grpc_status, LDG_GRPC_INVALID_ARGUMENT);
    assert_string_equal(junk->grpc_message,
                        "request is not a valid grpc.health.v1.HealthCheckRequest message");
    assert_int_equal(comp->grpc_status, LDG_GRPC_UNIMPLEMENTED);
    assert_string_equal(comp->grpc_message, "compressed messages are not supported");
    assert_true(comp->accept_identity);
    /* The connection still serves. */
    struct tstream *ok = client_call("/grpc.health.v1.Health/Check", "", NULL);
    wait_closed(ok);
    assert_int_equal(ok->grpc_status, 0);
}

static int pred_one_cancel(void) { return T.cancels == 1; }

static void test_deadline(void **state)
{
    client_connect(1);
    uint64_t t0 = uv_now(&T.loop);
    struct tstream *st = client_call("/grpc.health.v1.Health/Check", "hang", "100m");
    wait_closed(st);
    uv_update_time(&T.loop);
    assert_true(uv_now(&T.loop) - t0 >= 95);
    assert_int_equal(st->grpc_status, LDG_GRPC_DEADLINE_EXCEEDED);
    run_until(pred_one_cancel, 1000);
    assert_null(T.held);
}

static int pred_held(void) { return T.held != NULL; }

static void test_cancel_on_rst(void **state)
{
    client_connect(1);
    struct tstream *st = client_call("/grpc.health.v1.Health/Watch", "hang", NULL);
    run_until(pred_held, 2000);
    assert_int_equal(T.cancels, 0);
    assert_false(ldg_grpc_call_is_cancelled(T.held));
    nghttp2_submit_rst_stream(T.cl.s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    client_flush();
    run_until(pred_one_cancel, 2000);
    assert_null(T.held);
}

static void test_server_stream(void **state)
{
    client_connect(1);
    struct tstream *st = client_call("/grpc.health.v1.Health/Watch", "n=7", NULL);
    wait_closed(st);
    assert_int_equal(st->grpc_status, 0);
    struct msgs ms;
    decode(st, &grpc__health__v1__health_check_response__descriptor, &ms);
    assert_int_equal(ms.n, 7);
    for (size_t i = 0; i < ms.n; i++)
        assert_int_equal(((HcResp *)ms.m[i])->status, (int)(i % 3));
    msgs_free(&ms);
}

static struct tstream *bidi_st;
static int pred_bidi_one(void) { return bidi_st->data.len >= 5 + 3; }

static void test_bidi_echo(void **state)
{
    client_connect(1);
    struct tstream *st = client_open("/test.v1.Echo/Chat", "application/grpc", NULL);
    bidi_st = st;
    client_send_req(st, "a", 0);
    run_until(pred_bidi_one, 2000); /* answered before the client half-closes */
    assert_int_equal(st->closed, 0);
    client_send_req(st, "bb", 0);
    client_send_req(st, "ccc", 1);
    wait_closed(st);
    assert_int_equal(st->grpc_status, 0);
    struct msgs ms;
    decode(st, &grpc__health__v1__health_check_request__descriptor, &ms);
    assert_int_equal(ms.n, 3);
    assert_string_equal(((HcReq *)ms.m[0])->service, "a");
    assert_string_equal(((HcReq *)ms.m[1])->service, "bb");
    assert_string_equal(((HcReq *)ms.m[2])->service, "ccc");
    msgs_free(&ms);
}

static int pred_goaway(void) { return T.cl.goaway; }
static int pred_shutdown(void) { return T.shutdown_done && T.cl.eof; }

static void test_goaway_on_shutdown(void **state)
{
    client_connect(1);
    struct tstream *st = client_call("/grpc.health.v1.Health/Watch", "hang", NULL);
    run_until(pred_held, 2000);
    assert_int_equal(ldg_grpc_server_shutdown(T.srv, shutdown_cb, NULL), 0);
    assert_int_equal(ldg_grpc_server_shutdown(T.srv, shutdown_cb, NULL), LDG_EBUSY);
    run_until(pred_goaway, 2000);
    /* The in-flight call still finishes normally. */
    assert_int_equal(T.shutdown_done, 0);
    assert_int_equal(st->closed, 0);
    HcResp resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    assert_int_equal(ldg_grpc_call_send(T.held, &resp.base), 0);
    ldg_grpc_call_finish(T.held, LDG_GRPC_OK, NULL);
    T.held = NULL;
    run_until(pred_shutdown, 2000);
    assert_int_equal(st->grpc_status, 0);
    assert_int_equal(st->data.len, 5);
    assert_int_equal(T.cancels, 0);
}

static int pred_eof(void) { return T.cl.eof; }

static void test_random_bytes_closed(void **state)
{
    client_connect(0);
    const uint8_t junk[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0xfc, 0x03, 0x03};
    assert_int_equal(write(T.cl.fd, junk, sizeof junk), (ssize_t)sizeof junk);
    run_until(pred_eof, 2000);
    assert_int_equal(T.cl.raw.len, 0);
}

static void test_http1_gets_400(void **state)
{
    client_connect(0);
    const char *req = "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl\r\n\r\n";
    assert_int_equal(write(T.cl.fd, req, strlen(req)), (ssize_t)strlen(req));
    run_until(pred_eof, 3000);
    ldg_buf_u8(&T.cl.raw, 0);
    const char *got = (const char *)T.cl.raw.data;
    assert_true(strncmp(got, "HTTP/1.1 400", 12) == 0);
    assert_non_null(strstr(got, "use a gRPC client"));
}

static void test_handshake_timeout(void **state)
{
    client_connect(0);
    uint64_t t0 = uv_now(&T.loop);
    assert_int_equal(write(T.cl.fd, "PRI * HTTP/2.0\r\n", 16), 16); /* partial preface */
    run_until(pred_eof, 3000);
    uv_update_time(&T.loop);
    assert_true(uv_now(&T.loop) - t0 >= 250);
    assert_int_equal(T.cl.raw.len, 0);
}

/* At the connection limit (16 here), a new connection closes the oldest one
 * that never sent a byte instead of being refused. */
static void test_limit_evicts_oldest_silent(void **state)
{
    int silent[16];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)T.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 16; i++) {
        silent[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_int_equal(connect(silent[i], (struct sockaddr *)&a, sizeof a), 0);
    }
    client_connect(1); /* accepted after the 16 silent ones */
    struct tstream *st = client_call("/grpc.health.v1.Health/Check", "", NULL);
    wait_closed(st);
    assert_int_equal(st->grpc_status, 0);
    struct pollfd pf = {.fd = silent[0], .events = POLLIN};
    assert_int_equal(poll(&pf, 1, 2000), 1);
    char c;
    assert_int_equal(read(silent[0], &c, 1), 0); /* the oldest: closed */
    pf.fd = silent[15];
    assert_int_equal(poll(&pf, 1, 0), 0); /* the newest silent one: still open */
    for (int i = 0; i < 16; i++)
        close(silent[i]);
}

static void handed_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    static char buf[64];
    *b = uv_buf_init(buf, sizeof buf);
}
static void handed_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n > 0)
        ldg_buf_append(&T.handed_rest, b->base, (size_t)n);
}
static void handed_close(uv_handle_t *h) { ldg_free(h); }
static int pred_handed(void) { return T.handed != NULL; }
static int pred_rest(void) { return T.handed_rest.len == 5; }

static void test_registered_protocol_exact(void **state)
{
    assert_int_equal(ldg_listener_add_protocol(T.lst, (const uint8_t *)"RAFT", 4, handed_cb,
                                               NULL), 0);
    assert_int_equal(ldg_listener_add_protocol(T.lst, (const uint8_t *)"RAFT", 4, handed_cb,
                                               NULL), LDG_EEXIST);
    client_connect(0);
    assert_int_equal(write(T.cl.fd, "RAFT", 4), 4);
    run_until(pred_handed, 2000);
    assert_int_equal(T.handed_n, 4);
    assert_memory_equal(T.handed_prefix, "RAFT", 4);
    /* Nothing past the magic was consumed: the new owner reads the rest. */
    assert_int_equal(write(T.cl.fd, "hello", 5), 5);
    uv_read_start((uv_stream_t *)T.handed, handed_alloc, handed_read);
    run_until(pred_rest, 2000);
    assert_memory_equal(T.handed_rest.data, "hello", 5);
    uv_close((uv_handle_t *)T.handed, handed_close);
}

static void services_cb(const char *service, void *arg)
{
    struct ldg_buf *b = arg;
    ldg_buf_printf(b, "%s;", service);
}

static void test_services_introspection(void **state)
{
    struct ldg_buf b;
    ldg_buf_init(&b);
    ldg_grpc_server_services(T.srv, services_cb, &b);
    ldg_buf_u8(&b, 0);
    assert_string_equal((char *)b.data, "grpc.health.v1.Health;test.v1.Echo;");
    ldg_buf_close(&b);
    const struct ldg_grpc_method *m = ldg_grpc_server_find(T.srv, "/grpc.health.v1.Health/Watch");
    assert_non_null(m);
    assert_int_equal(m->kind, LDG_GRPC_SERVER_STREAM);
    assert_null(ldg_grpc_server_find(T.srv, "/grpc.health.v1.Health/Nope"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unary_ok_and_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_method_and_content_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_on_rst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bidi_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_goaway_on_shutdown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_bytes_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http1_gets_400, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_evicts_oldest_silent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registered_protocol_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_services_introspection, setup, teardown),
    };
    return cmocka_run_group_tests_name("h2_server", tests, NULL, NULL);
}
