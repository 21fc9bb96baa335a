/* The gRPC client against our own server on 127.0.0.1:<ephemeral>, one loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "grpc/health/v1/health.pb-c.h"
#include "net/grpc.h"
#include "net/grpc_client.h"
#include "net/h2_server.h"
#include "net/listener.h"
#include "util/err.h"
#include "util/mem.h"

#include "loop_until.h"

typedef Grpc__Health__V1__HealthCheckRequest HcReq;
typedef Grpc__Health__V1__HealthCheckResponse HcResp;

struct result {
    int done;
    int code;
    char message[256];
    int status; /* decoded HealthCheckResponse.status, -1 if none */
    char trailer[32];
    char seen[256]; /* trailer x-seen of the "headers" service */
};

static struct {
    uv_loop_t loop;
    struct ldg_grpc_server *srv;
    struct ldg_listener *lst;
    struct ldg_grpc_client *cl;
    char addr[64];
    struct ldg_grpc_call *held;
    int cancels;
    int shutdown_done, listener_closed, client_closed;
} T;

static void hang_cancel_cb(struct ldg_grpc_call *call, void *arg)
{
    T.cancels++;
    ldg_grpc_call_fail(call, LDG_GRPC_CANCELLED, "cancelled");
    T.held = NULL;
}

static void check_handler(struct ldg_grpc_call *call, const ProtobufCMessage *req, void *ud)
{
    const HcReq *r = (const HcReq *)req;
    if (strcmp(r->service, "hang") == 0) {
        T.held = call;
        ldg_grpc_call_on_cancel(call, hang_cancel_cb, NULL);
        return;
    }
    if (strcmp(r->service, "leader") == 0) {
        ldg_grpc_call_add_trailer(call, "x-ledger-leader", "10.0.0.9:50051");
        ldg_grpc_call_fail(call, LDG_GRPC_UNAVAILABLE, "not the leader; 100%% sure");
        return;
    }
    if (strcmp(r->service, "headers") == 0) {
        /* Echo the request metadata the server kept, in order. */
        char seen[256] = "";
        const char *name, *value;
        for (size_t i = 0; ldg_grpc_call_header_at(call, i, &name, &value); i++) {
            if (strcmp(name, "user-agent") == 0 || strcmp(name, "te") == 0)
                continue;
            size_t n = strlen(seen);
            snprintf(seen + n, sizeof seen - n, "%s=%s;", name, value);
        }
        const char *tmo = ldg_grpc_call_header(call, "grpc-timeout");
        size_t n = strlen(seen);
        snprintf(seen + n, sizeof seen - n, "timeout=%s", tmo ? tmo : "none");
        ldg_grpc_call_add_trailer(call, "x-seen", seen);
        ldg_grpc_call_fail(call, LDG_GRPC_FAILED_PRECONDITION, "headers echoed");
        return;
    }
    HcResp resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    ldg_grpc_call_reply(call, &resp.base);
}

static void result_cb(const struct ldg_grpc_client_result *res, void *arg)
{
    struct result *r = arg;
    assert_int_equal(r->done, 0);
    r->done = 1;
    r->code = res->code;
    snprintf(r->message, sizeof r->message, "%s", res->message);
    r->status = res->resp ? (int)((HcResp *)res->resp)->status : -1;
    const char *t = ldg_grpc_client_result_trailer(res, "x-ledger-leader");
    snprintf(r->trailer, sizeof r->trailer, "%s", t ? t : "");
    const char *seen = ldg_grpc_client_result_trailer(res, "x-seen");
    snprintf(r->seen, sizeof r->seen, "%s", seen ? seen : "");
}

static struct result *wait_r;
static int pred_r(void) { return wait_r->done; }
static void wait_result(struct result *r)
{
    wait_r = r;
    loop_run_until(&T.loop, pred_r, 5000);
}

static void start(struct ldg_grpc_client *cl, const char *service, uint64_t timeout_ms,
                  struct result *r)
{
    HcReq req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)service;
    memset(r, 0, sizeof *r);
    assert_int_equal(ldg_grpc_client_call(cl, "/grpc.health.v1.Health/Check", &req.base,
                                          &grpc__health__v1__health_check_response__descriptor,
                                          timeout_ms, result_cb, r), 0);
}

static int setup(void **state)
{
    memset(&T, 0, sizeof T);
    uv_loop_init(&T.loop);
    struct ldg_grpc_server_opts o;
    ldg_grpc_server_opts_default(&o);
    o.idle_timeout_ms = 300;
    assert_int_equal(ldg_grpc_server_new(&T.loop, &o, &T.srv), 0);
    struct ldg_grpc_method m = {
        .service = "grpc.health.v1.Health", .method = "Check", .kind = LDG_GRPC_UNARY,
        .request = &grpc__health__v1__health_check_request__descriptor,
        .response = &grpc__health__v1__health_check_response__descriptor,
        .handler = check_handler,
    };
    assert_int_equal(ldg_grpc_server_add_method(T.srv, &m), 0);
    assert_int_equal(ldg_listener_new(&T.loop, "127.0.0.1:0", NULL, T.srv, &T.lst, NULL), 0);
    snprintf(T.addr, sizeof T.addr, "127.0.0.1:%d", ldg_listener_port(T.lst));
    assert_int_equal(ldg_grpc_client_new(&T.loop, T.addr, &T.cl), 0);
    return 0;
}

static void shutdown_cb(struct ldg_grpc_server *srv, void *arg) { T.shutdown_done = 1; }
static void listener_closed_cb(void *arg) { T.listener_closed = 1; }
static void client_closed_cb(void *arg) { T.client_closed = 1; }
static int pred_down(void) { return T.shutdown_done && T.listener_closed && T.client_closed; }

static int teardown(void **state)
{
    if (T.cl)
        ldg_grpc_client_close(T.cl, client_closed_cb, NULL);
    else
        T.client_closed = 1;
    if (T.held)
        ldg_grpc_call_fail(T.held, LDG_GRPC_UNAVAILABLE, "test over");
    ldg_grpc_server_shutdown(T.srv, shutdown_cb, NULL);
    ldg_listener_close(T.lst, listener_closed_cb, NULL);
    loop_run_until(&T.loop, pred_down, 5000);
    ldg_grpc_server_free(T.srv);
    uv_run(&T.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&T.loop), 0);
    return 0;
}

static void test_unary_and_reuse(void **state)
{
    struct result a, b, c;
    start(T.cl, "", 2000, &a);
    start(T.cl, "", 0, &b); /* queued behind the same connection attempt */
    wait_result(&a);
    wait_result(&b);
    assert_int_equal(a.code, LDG_GRPC_OK);
    assert_int_equal(a.status, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
    assert_int_equal(b.code, LDG_GRPC_OK);
    start(T.cl, "", 2000, &c);
    wait_result(&c);
    assert_int_equal(c.code, LDG_GRPC_OK);
    assert_int_equal(ldg_grpc_server_conn_count(T.srv), 1); /* one shared connection */
    assert_int_equal(ldg_grpc_client_pending(T.cl), 0);
}

static void test_error_status_and_trailer(void **state)
{
    struct result r;
    start(T.cl, "leader", 2000, &r);
    wait_result(&r);
    assert_int_equal(r.code, LDG_GRPC_UNAVAILABLE);
    assert_string_equal(r.message, "not the leader; 100% sure");
    assert_string_equal(r.trailer, "10.0.0.9:50051");
    assert_int_equal(r.status, -1);
}

static int pred_cancel(void) { return T.cancels == 1; }

static void test_deadline(void **state)
{
    struct result r;
    start(T.cl, "hang", 150, &r);
    wait_result(&r);
    assert_int_equal(r.code, LDG_GRPC_DEADLINE_EXCEEDED);
    loop_run_until(&T.loop, pred_cancel, 2000); /* the server saw the deadline or the reset */
}

static void test_connect_refused(void **state)
{
    /* A port that was just free: bind, note, close. */
    uv_tcp_t tmp;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&T.loop, &tmp);
    assert_int_equal(uv_tcp_bind(&tmp, (struct sockaddr *)&a, 0), 0);
    int len = sizeof a;
    uv_tcp_getsockname(&tmp, (struct sockaddr *)&a, &len);
    uv_close((uv_handle_t *)&tmp, NULL);
    uv_run(&T.loop, UV_RUN_NOWAIT);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
    struct ldg_grpc_client *cl;
    assert_int_equal(ldg_grpc_client_new(&T.loop, addr, &cl), 0);
    struct result r;
    start(cl, "", 2000, &r);
    wait_result(&r);
    assert_int_equal(r.code, LDG_GRPC_UNAVAILABLE);
    assert_non_null(strstr(r.message, "connect to 127.0.0.1:"));
    ldg_grpc_client_close(cl, NULL, NULL);
    assert_int_equal(ldg_grpc_client_new(&T.loop, "no-port", &cl), LDG_EINVAL);
}

static int pred_no_conns(void) { return ldg_grpc_server_conn_count(T.srv) == 0; }

static void test_reconnect_after_goaway(void **state)
{
    struct result r;
    start(T.cl, "", 2000, &r);
    wait_result(&r);
    assert_int_equal(r.code, LDG_GRPC_OK);
    /* The server's idle timeout (300 ms) sends GOAWAY and closes. */
    loop_run_until(&T.loop, pred_no_conns, 3000);
    start(T.cl, "", 2000, &r);
    wait_result(&r);
    assert_int_equal(r.code, LDG_GRPC_OK);
    assert_int_equal(ldg_grpc_server_conn_count(T.srv), 1);
}

static int pred_client_closed(void) { return T.client_closed; }

static void test_close_cancels_pending(void **state)
{
    struct result r;
    start(T.cl, "hang", 0, &r);
    ldg_grpc_client_close(T.cl, client_closed_cb, NULL);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.code, LDG_GRPC_CANCELLED);
    assert_int_equal(T.client_closed, 0); /* never synchronously */
    T.cl = NULL;
    loop_run_until(&T.loop, pred_client_closed, 2000);
}

static int call_hdrs(const char *const *hdrs, uint64_t timeout_ms, struct result *r)
{
    uint8_t req[] = {0x0a, 7, 'h', 'e', 'a', 'd', 'e', 'r', 's'}; /* service: "headers" */
    memset(r, 0, sizeof *r);
    return ldg_grpc_client_call_raw_ex(T.cl, "/grpc.health.v1.Health/Check", req, sizeof req,
                                       hdrs, &grpc__health__v1__health_check_response__descriptor,
                                       timeout_ms, result_cb, r);
}

static void test_request_headers(void **state)
{
    struct result r;
    /* Metadata reaches the server as sent, in order; grpc-timeout is the
     * call's own. */
    const char *ok[] = {"authorization", "Bearer t0ken", "x-request-id", "abc-1", NULL};
    assert_int_equal(call_hdrs(ok, 2000, &r), 0);
    wait_result(&r);
    assert_int_equal(r.code, LDG_GRPC_FAILED_PRECONDITION);
    assert_string_equal(r.seen, "authorization=Bearer t0ken;x-request-id=abc-1;timeout=2000m");
    /* No headers: only what the client sends itself. */
    assert_int_equal(call_hdrs(NULL, 0, &r), 0);
    wait_result(&r);
    assert_string_equal(r.seen, "timeout=none");

    /* Refused before anything is sent, callback never called. */
    const char *bad[][3] = {
        {":path", "/x", NULL},       {":authority", "h", NULL}, {"grpc-timeout", "1S", NULL},
        {"grpc-encoding", "gzip", NULL}, {"content-type", "text/plain", NULL},
        {"te", "gzip", NULL},        {"user-agent", "x", NULL}, {"connection", "close", NULL},
        {"host", "evil", NULL},      {"Authorization", "Bearer x", NULL},
        {"", "v", NULL},             {"bad name", "v", NULL},
        {"authorization", "Bearer x\r\nx-evil: 1", NULL},
        {"authorization", NULL, NULL},
    };
    for (size_t i = 0; i < LDG_ARRAY_SIZE(bad); i++) {
        const char *h[3] = {bad[i][0], bad[i][1], NULL};
        assert_int_equal(call_hdrs(h, 2000, &r), LDG_EINVAL);
    }
    const char *many[2 * LDG_GRPC_CLIENT_MAX_HEADERS + 3];
    for (size_t i = 0; i < LDG_GRPC_CLIENT_MAX_HEADERS + 1; i++) {
        many[2 * i] = "x-a";
        many[2 * i + 1] = "1";
    }
    many[2 * LDG_GRPC_CLIENT_MAX_HEADERS + 2] = NULL;
    assert_int_equal(call_hdrs(many, 2000, &r), LDG_EINVAL);
    many[2 * LDG_GRPC_CLIENT_MAX_HEADERS] = NULL; /* exactly the maximum is fine */
    assert_int_equal(call_hdrs(many, 2000, &r), 0);
    wait_result(&r);
    assert_int_equal(r.code, LDG_GRPC_FAILED_PRECONDITION);
    assert_int_equal(ldg_grpc_client_pending(T.cl), 0);
    assert_true(ldg_grpc_client_header_allowed("authorization"));
    assert_true(ldg_grpc_client_header_allowed("x-trace_id.v2"));
    assert_false(ldg_grpc_client_header_allowed("grpc-timeout"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unary_and_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_status_and_trailer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_after_goaway, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_cancels_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_headers, setup, teardown),
    };
    return cmocka_run_group_tests_name("grpc_client", tests, NULL, NULL);
}
