/* Network services of a node (see serve.h). */
#include "node/serve.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "net/h2_server.h"
#include "net/health_v1.h"
#include "net/listener.h"
#include "net/metrics_http.h"
#include "net/reflection.h"
#include "rpc/forward.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/metrics.h"

#define PROBE_INTERVAL_MS 5000
#define SHUTDOWN_GRACE_MS 8000 /* SPEC §2: exit within 10 s of SIGTERM */

/* Write, fsync and remove a small file in the data directory. */
static bool probe_disk(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/.write-probe", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    bool ok = write(fd, "ok\n", 3) == 3 && fsync(fd) == 0;
    close(fd);
    unlink(path);
    return ok;
}

static void probe_timer_cb(uv_timer_t *t)
{
    struct ldg_serve *s = LDG_CONTAINER_OF(t, struct ldg_serve, probe_timer);
    bool ok = probe_disk(s->data_path);
    if (ok != s->disk_writable) {
        if (ok)
            LDG_LOG(LDG_LOG_INFO, "node", "data directory writable again path=%s",
                    s->data_path);
        else
            LDG_LOG(LDG_LOG_ERROR, "node",
                    "data directory not writable path=%s: check disk space and permissions",
                    s->data_path);
        s->disk_writable = ok;
        ldg_health_v1_notify();
    }
}

void ldg_serve_node_status(void *arg, struct ldg_node_status *out)
{
    struct ldg_serve *s = arg;
    memset(out, 0, sizeof *out);
    out->node_id = s->node_id;
    out->disk_writable = s->disk_writable;
    out->shutting_down = s->shutting_down;
    out->role = "none";
    /* Multi-node modes have no cluster yet (clustering lands later). */
    if (s->rpc.cluster == NULL)
        return;
    struct ldg_cluster_status st;
    ldg_cluster_get_status(s->rpc.cluster, &st);
    out->is_member = st.is_member;
    /* A follower far behind its commit index (catching up) lags the leader. */
    out->lagging = !st.is_leader && st.commit_index > st.applied_index + 1000;
    out->has_leader = st.leader_id != 0;
    /* A leader that is still leader has had a majority within an election
     * timeout (libraft steps down otherwise); a follower trusts its leader. */
    out->has_quorum = st.leader_id != 0;
    out->role = st.is_leader ? "leader" : st.role == 2 ? "candidate"
                : st.role == 1 ? (st.is_voter ? "follower" : "learner") : "none";
    out->leader_id = st.leader_id;
    out->term = st.term;
    out->applied_index = st.applied_index;
    out->commit_index = st.commit_index;
}

static int health_provider(const char *service, void *arg)
{
    struct ldg_serve *s = arg;
    if (service[0] != '\0' && strncmp(service, "ledger.v1.", 10) != 0)
        return LDG_ENOTFOUND;
    struct ldg_node_status st;
    ldg_serve_node_status(s, &st);
    char msg[160];
    int h = ldg_rpc_node_health(&st, msg, sizeof msg);
    return h == 1 /* HEALTHY */ ? LDG_HEALTH_V1_SERVING : LDG_HEALTH_V1_NOT_SERVING;
}

static int readiness(void *arg, char *reason, size_t reason_len)
{
    struct ldg_serve *s = arg;
    struct ldg_node_status st;
    ldg_serve_node_status(s, &st);
    return ldg_rpc_node_health(&st, reason, reason_len) == 1;
}

static int add_method(void *server, const struct ldg_grpc_method *m)
{
    return ldg_grpc_server_add_method(server, m);
}

/* The admin token: the file's content without trailing whitespace. */
static int load_admin_token(const char *path, char **out, struct ldg_err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return ldg_err_set(err, LDG_ENOTFOUND, "--admin-token-file %s: cannot open", path);
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                     buf[n - 1] == '\t'))
        buf[--n] = '\0';
    if (n == 0)
        return ldg_err_set(err, LDG_EINVAL, "--admin-token-file %s: the file is empty", path);
    *out = ldg_strdup(buf);
    return 0;
}

static void grpc_free_cb(struct ldg_grpc_server *srv, void *arg)
{
    (void)arg;
    ldg_grpc_server_free(srv);
}

int ldg_serve_start(struct ldg_serve *s, uv_loop_t *loop, const struct ldg_config *cfg,
                    const char *data_path, uint64_t node_id, struct ldg_err *err)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->cfg = cfg;
    s->data_path = data_path;
    s->node_id = node_id;
    s->disk_writable = probe_disk(data_path);
    s->rpc.node_status = ldg_serve_node_status;
    s->rpc.node_status_arg = s;
    s->rpc.cfg = cfg;
    s->rpc.node_id = node_id;
    s->rpc.loop = loop;
    s->rpc.data_path = data_path;

    if (cfg->tls_cert != NULL || cfg->tls_key != NULL || cfg->tls_ca != NULL)
        return ldg_err_set(err, LDG_EUNIMPL,
                           "--tls-cert/--tls-key/--tls-ca: TLS on the gRPC port is not "
                           "supported by this version; terminate TLS in a proxy or mesh "
                           "sidecar and leave these options unset");

    int rv;
    if (cfg->admin_token_file != NULL) {
        rv = load_admin_token(cfg->admin_token_file, &s->rpc.admin_token, err);
        if (rv != 0)
            return rv;
    }
    ldg_metrics_register_process();
    rv = ldg_reflection_init(err);
    if (rv != 0) {
        ldg_rpc_ctx_close(&s->rpc);
        return rv;
    }

    struct ldg_grpc_server_opts gopts;
    ldg_grpc_server_opts_default(&gopts);
    gopts.max_recv_msg_bytes = cfg->max_message_bytes;
    gopts.shutdown_grace_ms = SHUTDOWN_GRACE_MS;
    rv = ldg_grpc_server_new(loop, &gopts, &s->grpc);
    if (rv != 0) {
        ldg_rpc_ctx_close(&s->rpc);
        return ldg_err_set(err, rv, "gRPC server: %s", ldg_strerror(rv));
    }

    ldg_health_v1_set_provider(health_provider, s);
    rv = ldg_reflection_register(add_method, s->grpc);
    if (rv == 0)
        rv = ldg_health_v1_register(add_method, s->grpc);
    if (rv == 0)
        rv = ldg_rpc_register_all(add_method, s->grpc, &s->rpc);
    if (rv != 0) {
        ldg_err_set(err, rv, "registering gRPC services: %s", ldg_strerror(rv));
        goto err_grpc;
    }

    /* cfg->metrics is NULL when the operator said "off". */
    rv = ldg_metrics_http_start(loop, cfg->metrics ? cfg->metrics : "off",
                                !cfg->metrics_explicit, readiness, s,
                                &s->metrics, err);
    if (rv != 0) {
        ldg_err_wrap(err, "--metrics");
        goto err_grpc;
    }

    rv = ldg_listener_new(loop, cfg->listen, NULL, s->grpc, &s->listener, err);
    if (rv != 0) {
        ldg_err_wrap(err, "--listen %s", cfg->listen);
        goto err_metrics;
    }

    s->rpc.pool = ldg_rpc_pool_new(loop);

    uv_timer_init(loop, &s->probe_timer);
    uv_timer_start(&s->probe_timer, probe_timer_cb, PROBE_INTERVAL_MS, PROBE_INTERVAL_MS);
    LDG_LOG(LDG_LOG_INFO, "node", "serving grpc=%s port=%d metrics=%s", cfg->listen,
            ldg_listener_port(s->listener), s->metrics ? cfg->metrics : "off");
    return 0;

err_metrics:
    ldg_metrics_http_close(s->metrics, NULL, NULL);
    s->metrics = NULL;
err_grpc:
    /* Nothing was accepted yet; the server is freed from the loop, so the
     * caller runs the loop once to let the close callbacks fire. */
    ldg_grpc_server_shutdown(s->grpc, grpc_free_cb, NULL);
    s->grpc = NULL;
    ldg_health_v1_set_provider(NULL, NULL);
    ldg_rpc_ctx_close(&s->rpc);
    return rv;
}

static void serve_maybe_done(struct ldg_serve *s);

static void closed_cb_fwd(void *arg)
{
    serve_maybe_done(arg);
}

static void cluster_stopped_cb(void *arg)
{
    struct ldg_serve *s = arg;
    s->rpc.cluster = NULL;
    serve_maybe_done(s);
}

static void drain_closed_cb(uv_handle_t *h)
{
    serve_maybe_done(LDG_CONTAINER_OF((uv_timer_t *)h, struct ldg_serve, drain_timer));
}

static void drain_timer_cb(uv_timer_t *t)
{
    struct ldg_serve *s = LDG_CONTAINER_OF(t, struct ldg_serve, drain_timer);
    if (s->rpc.pending_work > 0)
        return;
    uv_close((uv_handle_t *)t, drain_closed_cb);
}

static void serve_maybe_done(struct ldg_serve *s)
{
    if (--s->pending_closes > 0)
        return;
    /* Integrity checks and snapshots run on the thread pool and read the
     * store: the cluster (and its store) closes only after they ended. They
     * were told to stop early (rpc.stop_work) when the stop began. */
    if (s->rpc.pending_work > 0 && !uv_is_closing((uv_handle_t *)&s->drain_timer)) {
        LDG_LOG(LDG_LOG_INFO, "node", "waiting for background jobs=%u", s->rpc.pending_work);
        s->pending_closes++;
        uv_timer_init(s->loop, &s->drain_timer);
        uv_timer_start(&s->drain_timer, drain_timer_cb, 20, 20);
        return;
    }
    /* gRPC is closed and in-flight calls are done: now the peer clients,
     * then the cluster. */
    if (s->rpc.pool != NULL) {
        struct ldg_rpc_pool *p = s->rpc.pool;
        s->rpc.pool = NULL;
        s->pending_closes++;
        ldg_rpc_pool_close(p, closed_cb_fwd, s);
        return;
    }
    if (s->rpc.cluster != NULL) {
        s->pending_closes++;
        ldg_cluster_stop(s->rpc.cluster, cluster_stopped_cb, s);
        return;
    }
    ldg_reflection_close();
    ldg_health_v1_set_provider(NULL, NULL);
    ldg_rpc_ctx_close(&s->rpc);
    LDG_LOG(LDG_LOG_INFO, "node", "network services stopped");
    if (s->done)
        s->done(s->done_arg);
}

static void closed_cb(void *arg)
{
    serve_maybe_done(arg);
}

static void probe_closed_cb(uv_handle_t *h)
{
    serve_maybe_done(LDG_CONTAINER_OF((uv_timer_t *)h, struct ldg_serve, probe_timer));
}

static void grpc_shutdown_cb(struct ldg_grpc_server *srv, void *arg)
{
    struct ldg_serve *s = arg;
    ldg_grpc_server_free(srv);
    s->grpc = NULL;
    serve_maybe_done(s);
}

void ldg_serve_stop(struct ldg_serve *s, ldg_serve_done_cb done, void *arg)
{
    if (s->shutting_down)
        return;
    s->shutting_down = true;
    atomic_store(&s->rpc.stop_work, 1);
    s->done = done;
    s->done_arg = arg;
    s->pending_closes = 1; /* released at the end of this function */

    ldg_health_v1_notify();   /* watchers see NOT_SERVING */
    ldg_health_v1_shutdown(); /* then their streams end */
    if (s->listener) {
        if (s->rpc.cluster != NULL)
            ldg_cluster_listener_closing(s->rpc.cluster);
        s->pending_closes++;
        ldg_listener_close(s->listener, closed_cb, s);
        s->listener = NULL;
    }
    if (s->ttl_started) {
        s->ttl_started = false;
        s->pending_closes++;
        ldg_ttl_stop(&s->ttl, closed_cb, s);
    }
    if (s->metrics) {
        s->pending_closes++;
        ldg_metrics_http_close(s->metrics, closed_cb, s);
        s->metrics = NULL;
    }
    if (s->grpc) {
        s->pending_closes++;
        if (ldg_grpc_server_shutdown(s->grpc, grpc_shutdown_cb, s) != 0)
            s->pending_closes--;
    }
    s->pending_closes++;
    uv_close((uv_handle_t *)&s->probe_timer, probe_closed_cb);
    serve_maybe_done(s);
}
