/* grpc.health.v1.Health.
 *
 * Check: ask the provider, reply (NOT_FOUND for an unknown name).
 * Watch: ask the provider, send the status, keep the call in a list of
 * watchers. ldg_health_v1_notify re-asks the provider for every watcher and
 * sends only changes. A watcher leaves the list when the client cancels (the
 * cancel callback ends the call), when its send queue is full (ended with
 * RESOURCE_EXHAUSTED) or at ldg_health_v1_shutdown (ended with UNAVAILABLE). */
#include "net/health_v1.h"

#include <stdbool.h>

#include "grpc/health/v1/health.pb-c.h"
#include "util/err.h"
#include "util/mem.h"

struct watcher {
    struct ldg_grpc_call *call;
    char *service;   /* owned copy of the request's service name */
    int last_status; /* enum ldg_health_v1_status last sent; -1 before the first */
    struct watcher *prev, *next;
};

static ldg_health_v1_provider_fn g_provider;
static void *g_provider_arg;
static struct watcher *g_watchers;
static size_t g_n_watchers;

void ldg_health_v1_set_provider(ldg_health_v1_provider_fn fn, void *arg)
{
    g_provider = fn;
    g_provider_arg = arg;
}

int ldg_health_v1_status(const char *service)
{
    if (service == NULL)
        service = "";
    if (g_provider == NULL)
        return service[0] == '\0' ? LDG_HEALTH_V1_SERVING : LDG_HEALTH_V1_SERVICE_UNKNOWN;
    int rv = g_provider(service, g_provider_arg);
    if (rv == LDG_ENOTFOUND)
        return LDG_HEALTH_V1_SERVICE_UNKNOWN;
    if (rv == LDG_HEALTH_V1_SERVING)
        return LDG_HEALTH_V1_SERVING;
    return LDG_HEALTH_V1_NOT_SERVING;
}

static void watcher_unlink(struct watcher *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        g_watchers = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    g_n_watchers--;
}

static void watcher_end(struct watcher *w, int code, const char *msg)
{
    struct ldg_grpc_call *call = w->call;
    watcher_unlink(w);
    ldg_free(w->service);
    ldg_free(w);
    ldg_grpc_call_finish(call, code, msg);
}

/* Send |status| to |w|. Returns false when |w| was ended (and freed). */
static bool watcher_send(struct watcher *w, int status)
{
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
    int rv = ldg_grpc_call_send(w->call, &resp.base);
    if (rv == LDG_EFULL) {
        watcher_end(w, LDG_GRPC_RESOURCE_EXHAUSTED, "health watcher is not reading");
        return false;
    }
    /* 0, or LDG_ECLOSED: the cancel callback will end the call. */
    w->last_status = status;
    return true;
}

static void watch_cancel_cb(struct ldg_grpc_call *call, void *arg)
{
    watcher_end(arg, LDG_GRPC_CANCELLED, "cancelled");
}

static void health_check(struct ldg_grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    const Grpc__Health__V1__HealthCheckRequest *req =
        (const Grpc__Health__V1__HealthCheckRequest *)msg;
    const char *service = req != NULL && req->service != NULL ? req->service : "";
    int status = ldg_health_v1_status(service);
    if (status == LDG_HEALTH_V1_SERVICE_UNKNOWN) {
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND, "unknown service: %s", service);
        return;
    }
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
    ldg_grpc_call_reply(call, &resp.base);
}

static void health_watch(struct ldg_grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    const Grpc__Health__V1__HealthCheckRequest *req =
        (const Grpc__Health__V1__HealthCheckRequest *)msg;
    if (ldg_grpc_call_is_cancelled(call)) {
        ldg_grpc_call_finish(call, LDG_GRPC_CANCELLED, "cancelled");
        return;
    }
    struct watcher *w = ldg_calloc(1, sizeof *w);
    w->call = call;
    w->service = ldg_strdup(req != NULL && req->service != NULL ? req->service : "");
    w->last_status = -1;
    w->next = g_watchers;
    if (g_watchers != NULL)
        g_watchers->prev = w;
    g_watchers = w;
    g_n_watchers++;
    ldg_grpc_call_on_cancel(call, watch_cancel_cb, w);
    watcher_send(w, ldg_health_v1_status(w->service));
}

void ldg_health_v1_notify(void)
{
    struct watcher *w = g_watchers;
    while (w != NULL) {
        struct watcher *next = w->next;
        int status = ldg_health_v1_status(w->service);
        if (status != w->last_status)
            watcher_send(w, status);
        w = next;
    }
}

size_t ldg_health_v1_watch_count(void)
{
    return g_n_watchers;
}

void ldg_health_v1_shutdown(void)
{
    while (g_watchers != NULL)
        watcher_end(g_watchers, LDG_GRPC_UNAVAILABLE, "server shutting down");
}

static const struct ldg_grpc_method health_methods[] = {
    {
        .service = "grpc.health.v1.Health",
        .method = "Check",
        .kind = LDG_GRPC_UNARY,
        .request = &grpc__health__v1__health_check_request__descriptor,
        .response = &grpc__health__v1__health_check_response__descriptor,
        .handler = health_check,
    },
    {
        .service = "grpc.health.v1.Health",
        .method = "Watch",
        .kind = LDG_GRPC_SERVER_STREAM,
        .request = &grpc__health__v1__health_check_request__descriptor,
        .response = &grpc__health__v1__health_check_response__descriptor,
        .handler = health_watch,
    },
};

int ldg_health_v1_methods(const struct ldg_grpc_method **out, size_t *n)
{
    *out = health_methods;
    *n = LDG_ARRAY_SIZE(health_methods);
    return 0;
}

int ldg_health_v1_register(int (*add)(void *server, const struct ldg_grpc_method *m),
                           void *server)
{
    int rv = 0;
    for (size_t i = 0; rv == 0 && i < LDG_ARRAY_SIZE(health_methods); i++)
        rv = add(server, &health_methods[i]);
    return rv;
}
