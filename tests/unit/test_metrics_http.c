/* Metrics HTTP endpoint: the pure request handler, and the libuv server over
 * real loopback sockets (client and server share one loop). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "net/metrics_http.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"
#include "util/metrics.h"

/* ---- readiness callback under test control ---- */

struct readiness {
    int ready;
    int calls;
};

static int ready_cb(void *arg, char *reason, size_t reason_len)
{
    struct readiness *r = arg;
    r->calls++;
    snprintf(reason, reason_len, "%s", r->ready ? "ready" : "no leader\nsecond line");
    return r->ready;
}

/* ---- the pure handler ---- */

static char *handle(const char *req, size_t len, struct readiness *r, int *rv)
{
    struct ldg_buf out;
    ldg_buf_init(&out);
    *rv = ldg_metrics_http_handle(req, len, r ? ready_cb : NULL, r, &out);
    ldg_buf_append(&out, "", 1);
    size_t n;
    return (char *)ldg_buf_steal(&out, &n);
}

static int status_of(const char *resp)
{
    if (strncmp(resp, "HTTP/1.1 ", 9) != 0)
        return -1;
    return atoi(resp + 9);
}

static const char *body_of(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");
    return p ? p + 4 : NULL;
}

static void test_handle_every_prefix_needs_more(void **state)
{
    (void)state;
    const char *req = "GET /healthz HTTP/1.1\r\nHost: localhost:9090\r\n"
                      "User-Agent: curl/8\r\nAccept: */*\r\n\r\n";
    size_t n = strlen(req);
    for (size_t i = 0; i < n; i++) {
        int rv;
        char *resp = handle(req, i, NULL, &rv);
        if (rv != LDG_METRICS_HTTP_NEED_MORE)
            fail_msg("prefix of %zu bytes answered: %s", i, resp);
        assert_string_equal(resp, "");
        free(resp);
    }
    int rv;
    char *resp = handle(req, n, NULL, &rv);
    assert_int_equal(rv, LDG_METRICS_HTTP_RESPONDED);
    assert_string_equal(resp, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                              "Content-Length: 3\r\nConnection: close\r\n\r\nok\n");
    free(resp);
}

static void test_handle_routes(void **state)
{
    (void)state;
    ldg_metrics_reset();
    struct ldg_metric_family *g = ldg_metrics_gauge("t_http_gauge", "G.", 0, NULL);
    ldg_metrics_set(g, NULL, 42);
    struct readiness r = {.ready = 0};
    int rv;

    char *resp = handle("GET /metrics?x=1 HTTP/1.0\n\n", 27, &r, &rv);
    assert_int_equal(rv, LDG_METRICS_HTTP_RESPONDED);
    assert_int_equal(status_of(resp), 200);
    assert_non_null(strstr(resp, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_string_equal(body_of(resp), "# HELP t_http_gauge G.\n# TYPE t_http_gauge gauge\n"
                                       "t_http_gauge 42\n");
    free(resp);

    resp = handle("HEAD /metrics HTTP/1.1\r\n\r\n", 26, &r, &rv);
    assert_int_equal(status_of(resp), 200);
    assert_string_equal(body_of(resp), ""); /* HEAD: headers only */
    assert_null(strstr(resp, "Content-Length: 0\r\n"));
    free(resp);

    resp = handle("GET /readyz HTTP/1.1\r\n\r\n", 24, &r, &rv);
    assert_int_equal(status_of(resp), 503);
    assert_string_equal(body_of(resp), "no leader second line\n");
    free(resp);
    r.ready = 1;
    resp = handle("GET /readyz HTTP/1.1\r\n\r\n", 24, &r, &rv);
    assert_int_equal(status_of(resp), 200);
    assert_string_equal(body_of(resp), "ready\n");
    free(resp);
    assert_int_equal(r.calls, 2);

    resp = handle("GET /readyz HTTP/1.1\r\n\r\n", 24, NULL, &rv);
    assert_int_equal(status_of(resp), 200); /* no callback: ready */
    free(resp);

    resp = handle("GET /nope HTTP/1.1\r\n\r\n", 22, &r, &rv);
    assert_int_equal(status_of(resp), 404);
    free(resp);
    resp = handle("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 46, &r, &rv);
    assert_int_equal(status_of(resp), 405);
    assert_non_null(strstr(resp, "\r\nAllow: GET, HEAD\r\n"));
    free(resp);
    ldg_metrics_reset();
}

static void test_handle_garbage_is_400_immediately(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* TLS ClientHello */
        "PRI * HTTP/2.0\r\n",                          /* HTTP/2 preface */
        "hello world\r\n",
        "GET  /metrics HTTP/1.1\r\n",                  /* double space */
        "GET /metrics HTTP/1.1\rX",                    /* bad line end */
        "GET /metrics\r\n\r\n",                        /* HTTP/0.9 */
        "GET /metrics HTTP/1.1\r\nNo colon here\r\n\r\n",
        "GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nX: a\x01b\r\n\r\n",
        "AVERYLONGMETHODNAMEWITHOUTSPACES",
    };
    for (size_t i = 0; i < LDG_ARRAY_SIZE(bad); i++) {
        int rv;
        char *resp = handle(bad[i], strlen(bad[i]), NULL, &rv);
        if (rv != LDG_METRICS_HTTP_RESPONDED || status_of(resp) != 400)
            fail_msg("case %zu: rv=%d resp=%s", i, rv, resp);
        free(resp);
    }
}

static void test_handle_header_limit(void **state)
{
    (void)state;
    struct ldg_buf req;
    ldg_buf_init(&req);
    ldg_buf_append_str(&req, "GET /metrics HTTP/1.1\r\n");
    while (req.len < LDG_METRICS_HTTP_MAX_HEADER - 100)
        ldg_buf_append_str(&req, "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    int rv;
    char *resp = handle((const char *)req.data, req.len, NULL, &rv);
    assert_int_equal(rv, LDG_METRICS_HTTP_NEED_MORE); /* under the limit: wait */
    free(resp);
    while (req.len < LDG_METRICS_HTTP_MAX_HEADER)
        ldg_buf_append_str(&req, "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    resp = handle((const char *)req.data, req.len, NULL, &rv);
    assert_int_equal(rv, LDG_METRICS_HTTP_RESPONDED);
    assert_int_equal(status_of(resp), 431);
    free(resp);
    ldg_buf_append_str(&req, "\r\n"); /* complete, but still too large */
    resp = handle((const char *)req.data, req.len, NULL, &rv);
    assert_int_equal(status_of(resp), 431);
    free(resp);
    ldg_buf_close(&req);
}

/* ---- a libuv client on the server's loop ---- */

struct client {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    struct ldg_buf resp;
    const char *req;
    size_t req_len;
    int eof;    /* server closed its side */
    int closed; /* our handle is closed */
};

static void client_closed_cb(uv_handle_t *h)
{
    struct client *c = h->data;
    c->closed = 1;
}

static void client_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = ldg_malloc(suggested);
    buf->len = suggested;
}

static void client_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct client *c = s->data;
    if (nread > 0)
        ldg_buf_append(&c->resp, buf->base, (size_t)nread);
    ldg_free(buf->base);
    if (nread < 0) {
        c->eof = 1;
        uv_close((uv_handle_t *)&c->tcp, client_closed_cb);
    }
}

static void client_write_cb(uv_write_t *w, int status)
{
    assert_int_equal(status, 0);
}

static void client_connect_cb(uv_connect_t *req, int status)
{
    struct client *c = req->data;
    assert_int_equal(status, 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, client_alloc_cb, client_read_cb), 0);
    if (c->req_len > 0) {
        uv_buf_t b = uv_buf_init((char *)c->req, (unsigned)c->req_len);
        assert_int_equal(uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, client_write_cb), 0);
    }
}

static void guard_cb(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Run |loop| until *flag is set or |ms| pass; returns *flag. */
static int run_until(uv_loop_t *loop, int *flag, uint64_t ms)
{
    uv_timer_t guard;
    int expired = 0;
    uv_timer_init(loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, guard_cb, ms, 0);
    while (!*flag && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *flag;
}

/* Send |req| to 127.0.0.1:|port| and read until the server closes. Returns the
 * response (caller frees). */
static char *http_exchange(uv_loop_t *loop, int port, const char *req, size_t req_len)
{
    struct client c = {.req = req, .req_len = req_len};
    ldg_buf_init(&c.resp);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", port, &sa);
    uv_tcp_init(loop, &c.tcp);
    c.tcp.data = &c;
    c.connect.data = &c;
    assert_int_equal(uv_tcp_connect(&c.connect, &c.tcp, (struct sockaddr *)&sa,
                                    client_connect_cb), 0);
    if (!run_until(loop, &c.closed, 5000))
        fail_msg("no complete response within 5 s (got %zu bytes)", c.resp.len);
    assert_true(c.eof);
    ldg_buf_append(&c.resp, "", 1);
    size_t n;
    return (char *)ldg_buf_steal(&c.resp, &n);
}

struct server_fixture {
    uv_loop_t loop;
    struct ldg_metrics_http *h;
    struct readiness ready;
    int closed;
};

static void server_closed_cb(void *arg)
{
    ((struct server_fixture *)arg)->closed++;
}

static int server_setup(void **state)
{
    struct server_fixture *f = ldg_calloc(1, sizeof *f);
    ldg_metrics_reset();
    assert_int_equal(uv_loop_init(&f->loop), 0);
    struct ldg_err err = {0};
    int rv = ldg_metrics_http_start(&f->loop, "127.0.0.1:0", 0, ready_cb, &f->ready, &f->h,
                                    &err);
    if (rv != 0)
        fail_msg("start: %s", err.msg);
    assert_non_null(f->h);
    assert_true(ldg_metrics_http_port(f->h) > 0);
    *state = f;
    return 0;
}

static int server_teardown(void **state)
{
    struct server_fixture *f = *state;
    ldg_metrics_http_close(f->h, server_closed_cb, f);
    assert_true(run_until(&f->loop, &f->closed, 5000));
    assert_int_equal(f->closed, 1);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* no leaked handles */
    ldg_free(f);
    ldg_metrics_reset();
    return 0;
}

static char *get(struct server_fixture *f, const char *req)
{
    return http_exchange(&f->loop, ldg_metrics_http_port(f->h), req, strlen(req));
}

static void test_server_metrics(void **state)
{
    struct server_fixture *f = *state;
    ldg_metrics_register_process();
    ldg_metrics_grpc_observe("ledger.v1.AdminService", "GetNodeInfo", "OK", 0.001);
    char *resp = get(f, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(status_of(resp), 200);
    assert_non_null(strstr(resp, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_non_null(strstr(resp, "\r\nConnection: close\r\n"));
    const char *body = body_of(resp);
    assert_non_null(body);
    /* Content-Length matches the body. */
    const char *cl = strstr(resp, "Content-Length: ");
    assert_non_null(cl);
    assert_int_equal((size_t)atol(cl + 16), strlen(body));
    assert_non_null(strstr(body, "\nledger_build_info{version=\"" LDG_VERSION "\"} 1\n"));
    assert_non_null(strstr(body, "\nledger_grpc_requests_total{service=\"ledger.v1.AdminService\","
                                 "method=\"GetNodeInfo\",code=\"OK\"} 1\n"));
    assert_non_null(strstr(body, "\nprocess_open_fds "));
    free(resp);
}

static void test_server_health_ready(void **state)
{
    struct server_fixture *f = *state;
    char *resp = get(f, "GET /healthz HTTP/1.1\r\n\r\n");
    assert_int_equal(status_of(resp), 200);
    assert_string_equal(body_of(resp), "ok\n");
    free(resp);

    f->ready.ready = 0;
    resp = get(f, "GET /readyz HTTP/1.1\r\n\r\n");
    assert_int_equal(status_of(resp), 503);
    assert_string_equal(body_of(resp), "no leader second line\n");
    free(resp);
    f->ready.ready = 1;
    resp = get(f, "GET /readyz HTTP/1.1\r\n\r\n");
    assert_int_equal(status_of(resp), 200);
    assert_string_equal(body_of(resp), "ready\n");
    free(resp);
}

static void test_server_errors(void **state)
{
    struct server_fixture *f = *state;
    char *resp = get(f, "GET /favicon.ico HTTP/1.1\r\n\r\n");
    assert_int_equal(status_of(resp), 404);
    free(resp);
    resp = get(f, "DELETE /metrics HTTP/1.1\r\n\r\n");
    assert_int_equal(status_of(resp), 405);
    free(resp);
    /* Garbage without any line end is answered at once, not after a timeout. */
    resp = get(f, "\x16\x03\x01garbage");
    assert_int_equal(status_of(resp), 400);
    free(resp);
    /* A client that keeps sending after the 400 still gets the response. */
    struct ldg_buf big;
    ldg_buf_init(&big);
    ldg_buf_append_str(&big, "BAD!");
    while (big.len < 64 * 1024)
        ldg_buf_append_str(&big, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    resp = http_exchange(&f->loop, ldg_metrics_http_port(f->h), (const char *)big.data, big.len);
    assert_int_equal(status_of(resp), 400);
    free(resp);
    ldg_buf_close(&big);
    /* Oversized headers. */
    struct ldg_buf req;
    ldg_buf_init(&req);
    ldg_buf_append_str(&req, "GET /metrics HTTP/1.1\r\n");
    while (req.len < 3 * LDG_METRICS_HTTP_MAX_HEADER)
        ldg_buf_append_str(&req, "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    resp = http_exchange(&f->loop, ldg_metrics_http_port(f->h), (const char *)req.data, req.len);
    assert_int_equal(status_of(resp), 431);
    free(resp);
    ldg_buf_close(&req);
}

static void test_server_idle_timeout(void **state)
{
    struct server_fixture *f = *state;
    ldg_metrics_http_set_timeout_ms(f->h, 100);
    uint64_t t0 = uv_now(&f->loop);
    /* Connect and send nothing: the server must close the connection. */
    char *resp = http_exchange(&f->loop, ldg_metrics_http_port(f->h), "GET /metr", 9);
    assert_string_equal(resp, "");
    uv_update_time(&f->loop);
    assert_true(uv_now(&f->loop) - t0 >= 90);
    free(resp);
}

static void test_server_close_with_open_connection(void **state)
{
    struct server_fixture *f = *state;
    /* A connection left half-sent when the server closes: teardown must still
     * free everything (uv_loop_close == 0) and call the close cb once. */
    struct client c = {.req = "GET /", .req_len = 5};
    ldg_buf_init(&c.resp);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", ldg_metrics_http_port(f->h), &sa);
    uv_tcp_init(&f->loop, &c.tcp);
    c.tcp.data = &c;
    c.connect.data = &c;
    assert_int_equal(uv_tcp_connect(&c.connect, &c.tcp, (struct sockaddr *)&sa,
                                    client_connect_cb), 0);
    for (int i = 0; i < 20; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    ldg_metrics_http_close(f->h, server_closed_cb, f);
    f->h = NULL; /* teardown's close is then a no-op */
    assert_true(run_until(&f->loop, &c.closed, 5000));
    assert_true(run_until(&f->loop, &f->closed, 5000));
    assert_int_equal(f->closed, 1); /* teardown checks it stays exactly 1 */
    ldg_buf_close(&c.resp);
}

/* ---- start: address handling ---- */

/* A listening socket on 127.0.0.1 with a kernel-chosen port. */
static int hold_port(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 1), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* Capture what is written to stderr while running start(). */
static int start_capturing(uv_loop_t *loop, const char *addr, int is_default,
                           struct ldg_metrics_http **out, struct ldg_err *err, char *log,
                           size_t log_len)
{
    char path[] = "/tmp/ldg_metrics_log_XXXXXX";
    int tmp = mkstemp(path);
    assert_true(tmp >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(tmp, 2);
    int rv = ldg_metrics_http_start(loop, addr, is_default, NULL, NULL, out, err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(tmp, log, log_len - 1, 0);
    log[n > 0 ? n : 0] = '\0';
    close(tmp);
    unlink(path);
    return rv;
}

static void test_start_default_taken_warns(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    int port;
    int fd = hold_port(&port);
    char addr[64], want[128], log[2048];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    snprintf(want, sizeof want, "metrics endpoint disabled: %s in use", addr);
    struct ldg_metrics_http *h = (void *)1;
    struct ldg_err err = {0};
    int rv = start_capturing(&loop, addr, 1, &h, &err, log, sizeof log);
    assert_int_equal(rv, 0);
    assert_null(h);
    if (strstr(log, want) == NULL || strstr(log, "WARN") == NULL)
        fail_msg("want WARN '%s' in log: %s", want, log);
    close(fd);
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_start_explicit_taken_fails(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    int port;
    int fd = hold_port(&port);
    char addr[64], log[2048];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    struct ldg_metrics_http *h = (void *)1;
    struct ldg_err err = {0};
    int rv = start_capturing(&loop, addr, 0, &h, &err, log, sizeof log);
    assert_int_equal(rv, LDG_EBUSY);
    assert_int_equal(err.code, LDG_EBUSY);
    assert_null(h);
    assert_non_null(strstr(err.msg, addr));
    assert_non_null(strstr(err.msg, "in use"));
    close(fd);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_start_off_and_invalid(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ldg_metrics_http *h = (void *)1;
    struct ldg_err err = {0};
    assert_int_equal(ldg_metrics_http_start(&loop, "off", 0, NULL, NULL, &h, &err), 0);
    assert_null(h);
    static const char *const bad[] = {"nonsense", "127.0.0.1", "127.0.0.1:", "1.2.3.4:x",
                                      "127.0.0.1:70000", "[::1:80"};
    for (size_t i = 0; i < LDG_ARRAY_SIZE(bad); i++) {
        h = (void *)1;
        int rv = ldg_metrics_http_start(&loop, bad[i], 0, NULL, NULL, &h, &err);
        if (rv != LDG_EINVAL)
            fail_msg("%s: rv=%d", bad[i], rv);
        assert_null(h);
        assert_non_null(strstr(err.msg, bad[i]));
    }
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handle_every_prefix_needs_more),
        cmocka_unit_test(test_handle_routes),
        cmocka_unit_test(test_handle_garbage_is_400_immediately),
        cmocka_unit_test(test_handle_header_limit),
        cmocka_unit_test_setup_teardown(test_server_metrics, server_setup, server_teardown),
        cmocka_unit_test_setup_teardown(test_server_health_ready, server_setup, server_teardown),
        cmocka_unit_test_setup_teardown(test_server_errors, server_setup, server_teardown),
        cmocka_unit_test_setup_teardown(test_server_idle_timeout, server_setup, server_teardown),
        cmocka_unit_test_setup_teardown(test_server_close_with_open_connection, server_setup,
                                        server_teardown),
        cmocka_unit_test(test_start_default_taken_warns),
        cmocka_unit_test(test_start_explicit_taken_fails),
        cmocka_unit_test(test_start_off_and_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
