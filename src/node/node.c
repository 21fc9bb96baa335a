/* Node lifecycle (see node.h).
 *
 * Happy path: start opens the data dir and arms SIGTERM/SIGINT; a signal
 * calls ldg_node_stop, which closes every handle the node owns; uv_run then
 * returns and the caller closes the node, which releases the lock and removes
 * an ephemeral directory. */
#include "node/node.h"
#include "node/notify.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "util/log.h"
#include "util/mem.h"

void ldg_node_setup_logging(const struct ldg_config *cfg)
{
    enum ldg_log_format fmt = cfg->log_format;
    if (cfg->log_format_auto)
        fmt = isatty(STDERR_FILENO) ? LDG_LOG_TEXT : LDG_LOG_JSON;
    ldg_log_set_format(fmt);
    ldg_log_set_level(cfg->log_level);
}

static void node_handle_closed_cb(uv_handle_t *h)
{
    struct ldg_node *node = h->data;
    node->open_handles--;
}

static void node_signal_cb(uv_signal_t *sig, int signum)
{
    struct ldg_node *node = sig->data;
    if (node->stopping)
        return;
    node->stop_signal = signum;
    LDG_LOG(LDG_LOG_INFO, "node", "stopping signal=%s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    ldg_node_stop(node);
}

static int arm_signal(struct ldg_node *node, uv_signal_t *sig, int signum, struct ldg_err *err)
{
    int rv = uv_signal_init(node->loop, sig);
    if (rv != 0)
        return ldg_err_set(err, ldg_err_from_uv(rv), "signal handler: %s", uv_strerror(rv));
    sig->data = node;
    node->open_handles++;
    rv = uv_signal_start(sig, node_signal_cb, signum);
    if (rv != 0)
        return ldg_err_set(err, ldg_err_from_uv(rv), "signal handler: %s", uv_strerror(rv));
    return 0;
}

static void boot_fail_cb(void *arg, const char *msg)
{
    struct ldg_node *node = arg;
    LDG_LOG(LDG_LOG_ERROR, "node", "startup failed: %s", msg);
    node->exit_status = 1;
    ldg_node_stop(node);
}

int ldg_node_start(struct ldg_node *node, uv_loop_t *loop, const struct ldg_config *cfg,
                   struct ldg_err *err)
{
    memset(node, 0, sizeof *node);
    node->loop = loop;
    node->cfg = cfg;
    node->datadir.lock_fd = -1;
    signal(SIGPIPE, SIG_IGN); /* peers closing sockets must not kill us */

    int rv = ldg_datadir_open(&node->datadir, cfg->data_dir, err);
    if (rv != 0)
        return rv;
    ldg_log_set_node(node->datadir.node_id);
    if (node->datadir.ephemeral)
        LDG_LOG(LDG_LOG_WARN, "node",
                "no data directory given: using ephemeral %s, removed at exit; all data is "
                "lost when the process stops (set --data to keep it)",
                node->datadir.path);

    rv = arm_signal(node, &node->sigterm, SIGTERM, err);
    if (rv == 0)
        rv = arm_signal(node, &node->sigint, SIGINT, err);
    if (rv != 0) {
        ldg_node_stop(node);
        uv_run(loop, UV_RUN_DEFAULT); /* let the close callbacks run */
        return rv;
    }
    rv = ldg_serve_start(&node->serve, loop, cfg, node->datadir.path, node->datadir.node_id,
                         err);
    if (rv != 0) {
        ldg_node_stop(node);
        uv_run(loop, UV_RUN_DEFAULT); /* let the close callbacks run */
        return rv;
    }
    node->serving = true;
    rv = ldg_bootstrap_start(&node->boot, loop, cfg, &node->serve, node->datadir.node_id,
                             node->datadir.path, boot_fail_cb, node, err);
    if (rv != 0) {
        ldg_node_stop(node);
        uv_run(loop, UV_RUN_DEFAULT);
        return rv;
    }
    node->started = true;
    ldg_backup_sched_start(&node->backups, loop, cfg, node->datadir.path, node->datadir.node_id,
                           (struct ldg_cluster *const *)&node->serve.rpc.cluster);
    LDG_LOG(LDG_LOG_INFO, "node",
            "starting version=%s node_id=%" PRIu64 " mode=%s cluster_size=%u listen=%s "
            "advertise=%s data=%s env_file=%s",
            LDG_VERSION, node->datadir.node_id, ldg_boot_mode_name(cfg->mode),
            (unsigned)cfg->cluster_size, cfg->listen, cfg->advertise, node->datadir.path,
            cfg->env_file ? cfg->env_file : "none");
    return 0;
}

static void close_handle(struct ldg_node *node, uv_handle_t *h)
{
    if (h->loop == NULL || uv_is_closing(h))
        return;
    uv_close(h, node_handle_closed_cb);
}

void ldg_node_stop(struct ldg_node *node)
{
    if (node->stopping)
        return;
    node->stopping = true;
    ldg_notify_stopping();
    ldg_bootstrap_stop(&node->boot);
    ldg_backup_sched_stop(&node->backups);
    if (node->serving) {
        node->serving = false;
        ldg_serve_stop(&node->serve, NULL, NULL);
    }
    close_handle(node, (uv_handle_t *)&node->sigterm);
    close_handle(node, (uv_handle_t *)&node->sigint);
}

void ldg_node_close(struct ldg_node *node)
{
    ldg_bootstrap_free(&node->boot);
    if (node->datadir.path != NULL) {
        bool ephemeral = node->datadir.ephemeral;
        ldg_datadir_close(&node->datadir);
        LDG_LOG(LDG_LOG_INFO, "node", "stopped%s",
                ephemeral ? " ephemeral_data=removed" : "");
    }
    node->started = false;
}

int ldg_node_inspect(const struct ldg_config *cfg, FILE *out, struct ldg_err *err)
{
    struct stat st;
    if (stat(cfg->data_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ldg_err_set(err, LDG_ENOTFOUND, "inspect %s: no such data directory",
                           cfg->data_dir);
    fprintf(out, "data_dir: %s\n", cfg->data_dir);
    uint64_t id;
    int rv = ldg_datadir_read_node_id(cfg->data_dir, &id, err);
    if (rv == 0)
        fprintf(out, "node_id: %" PRIu64 "\n", id);
    else if (rv == LDG_ENOTFOUND)
        fprintf(out, "node_id: none (never started)\n");
    else
        return rv;

    size_t n = strlen(cfg->data_dir) + sizeof "/cluster_id";
    char *p = ldg_malloc(n);
    snprintf(p, n, "%s/cluster_id", cfg->data_dir);
    FILE *f = fopen(p, "r");
    ldg_free(p);
    char line[128] = "";
    if (f != NULL) {
        if (fgets(line, sizeof line, f) == NULL)
            line[0] = '\0';
        fclose(f);
        line[strcspn(line, "\r\n")] = '\0';
    }
    fprintf(out, "cluster_id: %s\n", line[0] ? line : "none");
    return ldg_cluster_inspect(cfg->data_dir, out, err);
}
