/* grpc.health.v1.Health Check and Watch through the fake call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fake_grpc_call.h"
#include "grpc/health/v1/health.pb-c.h"
#include "net/health_v1.h"

/* A provider: "" and "ledger.v1.ReadService" are known. */
struct statuses {
    int server;   /* for "" */
    int read;     /* for "ledger.v1.ReadService"; LDG_ENOTFOUND: unknown */
    int calls;
};

static int provider(const char *service, void *arg)
{
    struct statuses *st = arg;
    st->calls++;
    if (service[0] == '\0')
        return st->server;
    if (strcmp(service, "ledger.v1.ReadService") == 0)
        return st->read;
    return LDG_ENOTFOUND;
}

static const struct ldg_grpc_method *method_of(const char *name)
{
    const struct ldg_grpc_method *m;
    size_t n;
    assert_int_equal(ldg_health_v1_methods(&m, &n), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m[i].method, name) == 0) {
            assert_string_equal(m[i].service, "grpc.health.v1.Health");
            return &m[i];
        }
    }
    fail_msg("no method %s", name);
    return NULL;
}

static int sent_status(const struct ldg_grpc_call *c, size_t i)
{
    assert_true(i < c->n_sent);
    Grpc__Health__V1__HealthCheckResponse *r =
        grpc__health__v1__health_check_response__unpack(NULL, c->sent[i].len, c->sent[i].data);
    assert_non_null(r);
    int st = (int)r->status;
    grpc__health__v1__health_check_response__free_unpacked(r, NULL);
    return st;
}

static void invoke(struct ldg_grpc_call *c, const char *service)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)service;
    fake_call_invoke(c, &req.base);
}

static int teardown(void **state)
{
    (void)state;
    ldg_health_v1_shutdown();
    ldg_health_v1_set_provider(NULL, NULL);
    return 0;
}

struct add_log {
    const struct ldg_grpc_method *m[4];
    size_t n;
};

static int add_method(void *server, const struct ldg_grpc_method *m)
{
    struct add_log *log = server;
    log->m[log->n++] = m;
    return 0;
}

static void test_register(void **state)
{
    (void)state;
    struct add_log log = {{0}, 0};
    assert_int_equal(ldg_health_v1_register(add_method, &log), 0);
    assert_int_equal(log.n, 2);
    assert_ptr_equal(log.m[0], method_of("Check"));
    assert_ptr_equal(log.m[1], method_of("Watch"));
    assert_ptr_equal(log.m[1]->request, &grpc__health__v1__health_check_request__descriptor);
}

static void test_check_default(void **state)
{
    (void)state;
    struct ldg_grpc_call c;
    fake_call_init(&c, method_of("Check"));
    assert_int_equal(c.method->kind, LDG_GRPC_UNARY);
    invoke(&c, "");
    assert_int_equal(c.end_count, 1);
    assert_int_equal(c.end_code, LDG_GRPC_OK);
    assert_int_equal(sent_status(&c, 0), LDG_HEALTH_V1_SERVING);
    fake_call_close(&c);

    fake_call_init(&c, method_of("Check"));
    invoke(&c, "ledger.v1.ReadService");
    assert_int_equal(c.n_sent, 0);
    assert_int_equal(c.end_code, LDG_GRPC_NOT_FOUND);
    assert_non_null(strstr(c.end_msg, "ledger.v1.ReadService"));
    fake_call_close(&c);
}

static void test_check_provider(void **state)
{
    (void)state;
    struct statuses st = {LDG_HEALTH_V1_NOT_SERVING, LDG_HEALTH_V1_SERVING, 0};
    ldg_health_v1_set_provider(provider, &st);
    struct ldg_grpc_call c;

    fake_call_init(&c, method_of("Check"));
    invoke(&c, "");
    assert_int_equal(c.end_code, LDG_GRPC_OK);
    assert_int_equal(sent_status(&c, 0), LDG_HEALTH_V1_NOT_SERVING);
    fake_call_close(&c);

    fake_call_init(&c, method_of("Check"));
    invoke(&c, "ledger.v1.ReadService");
    assert_int_equal(c.end_code, LDG_GRPC_OK);
    assert_int_equal(sent_status(&c, 0), LDG_HEALTH_V1_SERVING);
    fake_call_close(&c);

    fake_call_init(&c, method_of("Check"));
    invoke(&c, "no.Such");
    assert_int_equal(c.end_code, LDG_GRPC_NOT_FOUND);
    fake_call_close(&c);

    /* Unexpected provider values count as NOT_SERVING. */
    st.server = LDG_EIO;
    assert_int_equal(ldg_health_v1_status(""), LDG_HEALTH_V1_NOT_SERVING);
    assert_int_equal(ldg_health_v1_status("no.Such"), LDG_HEALTH_V1_SERVICE_UNKNOWN);
}

static void test_watch_changes(void **state)
{
    (void)state;
    struct statuses st = {LDG_HEALTH_V1_SERVING, LDG_HEALTH_V1_SERVING, 0};
    ldg_health_v1_set_provider(provider, &st);
    struct ldg_grpc_call a, b;
    fake_call_init(&a, method_of("Watch"));
    fake_call_init(&b, method_of("Watch"));
    assert_int_equal(a.method->kind, LDG_GRPC_SERVER_STREAM);
    invoke(&a, "");
    invoke(&b, "ledger.v1.ReadService");
    assert_int_equal(ldg_health_v1_watch_count(), 2);
    assert_int_equal(a.n_sent, 1);
    assert_int_equal(sent_status(&a, 0), LDG_HEALTH_V1_SERVING);
    assert_int_equal(b.n_sent, 1);
    assert_int_equal(a.end_count + b.end_count, 0);

    /* No change: nothing sent. */
    ldg_health_v1_notify();
    assert_int_equal(a.n_sent, 1);
    assert_int_equal(b.n_sent, 1);

    /* Only the server status changes: only its watcher hears. */
    st.server = LDG_HEALTH_V1_NOT_SERVING;
    ldg_health_v1_notify();
    assert_int_equal(a.n_sent, 2);
    assert_int_equal(sent_status(&a, 1), LDG_HEALTH_V1_NOT_SERVING);
    assert_int_equal(b.n_sent, 1);

    /* Back, and the read service goes down. */
    st.server = LDG_HEALTH_V1_SERVING;
    st.read = LDG_HEALTH_V1_NOT_SERVING;
    ldg_health_v1_notify();
    assert_int_equal(sent_status(&a, 2), LDG_HEALTH_V1_SERVING);
    assert_int_equal(sent_status(&b, 1), LDG_HEALTH_V1_NOT_SERVING);

    /* Cancel a: it ends CANCELLED and hears nothing more. */
    fake_call_cancel(&a);
    assert_int_equal(a.end_count, 1);
    assert_int_equal(a.end_code, LDG_GRPC_CANCELLED);
    assert_int_equal(ldg_health_v1_watch_count(), 1);
    st.server = LDG_HEALTH_V1_NOT_SERVING;
    st.read = LDG_HEALTH_V1_SERVING;
    ldg_health_v1_notify();
    assert_int_equal(a.n_sent, 3);
    assert_int_equal(b.n_sent, 3);
    assert_int_equal(sent_status(&b, 2), LDG_HEALTH_V1_SERVING);

    /* Shutdown ends the rest. */
    ldg_health_v1_shutdown();
    assert_int_equal(b.end_count, 1);
    assert_int_equal(b.end_code, LDG_GRPC_UNAVAILABLE);
    assert_int_equal(ldg_health_v1_watch_count(), 0);
    fake_call_close(&a);
    fake_call_close(&b);
}

static void test_watch_unknown_service(void **state)
{
    (void)state;
    struct statuses st = {LDG_HEALTH_V1_SERVING, LDG_ENOTFOUND, 0};
    ldg_health_v1_set_provider(provider, &st);
    struct ldg_grpc_call c;
    fake_call_init(&c, method_of("Watch"));
    invoke(&c, "ledger.v1.ReadService");
    /* SERVICE_UNKNOWN, and the call stays open. */
    assert_int_equal(c.n_sent, 1);
    assert_int_equal(sent_status(&c, 0), LDG_HEALTH_V1_SERVICE_UNKNOWN);
    assert_int_equal(c.end_count, 0);
    /* The service becomes known. */
    st.read = LDG_HEALTH_V1_SERVING;
    ldg_health_v1_notify();
    assert_int_equal(c.n_sent, 2);
    assert_int_equal(sent_status(&c, 1), LDG_HEALTH_V1_SERVING);
    fake_call_cancel(&c);
    assert_int_equal(c.end_code, LDG_GRPC_CANCELLED);
    fake_call_close(&c);
}

static void test_watch_slow_and_closed(void **state)
{
    (void)state;
    struct statuses st = {LDG_HEALTH_V1_SERVING, LDG_HEALTH_V1_SERVING, 0};
    ldg_health_v1_set_provider(provider, &st);
    struct ldg_grpc_call slow, gone, late;

    fake_call_init(&slow, method_of("Watch"));
    fake_call_init(&gone, method_of("Watch"));
    invoke(&slow, "");
    invoke(&gone, "");
    assert_int_equal(ldg_health_v1_watch_count(), 2);

    /* slow's queue is full, gone's stream closed (cancel pending). */
    slow.send_rv = LDG_EFULL;
    gone.send_rv = LDG_ECLOSED;
    st.server = LDG_HEALTH_V1_NOT_SERVING;
    ldg_health_v1_notify();
    assert_int_equal(slow.end_count, 1);
    assert_int_equal(slow.end_code, LDG_GRPC_RESOURCE_EXHAUSTED);
    assert_int_equal(gone.end_count, 0);
    assert_int_equal(ldg_health_v1_watch_count(), 1);
    fake_call_cancel(&gone);
    assert_int_equal(gone.end_code, LDG_GRPC_CANCELLED);
    assert_int_equal(ldg_health_v1_watch_count(), 0);

    /* A Watch arriving already cancelled ends at once. */
    fake_call_init(&late, method_of("Watch"));
    late.cancelled = 1;
    invoke(&late, "");
    assert_int_equal(late.n_sent, 0);
    assert_int_equal(late.end_code, LDG_GRPC_CANCELLED);
    assert_int_equal(ldg_health_v1_watch_count(), 0);

    fake_call_close(&slow);
    fake_call_close(&gone);
    fake_call_close(&late);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register),
        cmocka_unit_test_teardown(test_check_default, teardown),
        cmocka_unit_test_teardown(test_check_provider, teardown),
        cmocka_unit_test_teardown(test_watch_changes, teardown),
        cmocka_unit_test_teardown(test_watch_unknown_service, teardown),
        cmocka_unit_test_teardown(test_watch_slow_and_closed, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
