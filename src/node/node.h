/* Node lifecycle: what runs between configuration and exit.
 *
 *   ldg_node_setup_logging(&cfg);
 *   ldg_node_start(&node, &loop, &cfg, &err);   data dir, signals, startup log
 *   uv_run(&loop, UV_RUN_DEFAULT);              returns once ldg_node_stop closed all
 *   ldg_node_close(&node);                      release the data dir (ephemeral: removed)
 *
 * SIGTERM and SIGINT call ldg_node_stop, which begins a graceful stop; the
 * signal handlers are closed with it, so a second signal terminates the
 * process the default way. */
#ifndef LDG_NODE_NODE_H
#define LDG_NODE_NODE_H

#include <stdbool.h>
#include <stdio.h>

#include <uv.h>

#include "node/backup.h"
#include "node/bootstrap.h"
#include "node/config.h"
#include "node/datadir.h"
#include "node/serve.h"
#include "util/err.h"

struct ldg_node {
    uv_loop_t *loop;                /* borrowed */
    const struct ldg_config *cfg;   /* borrowed; must outlive the node */
    struct ldg_datadir datadir;     /* open while the node runs */
    uv_signal_t sigterm;            /* SIGTERM -> graceful stop */
    uv_signal_t sigint;             /* SIGINT -> graceful stop */
    int open_handles;               /* uv handles not yet closed */
    bool started;                   /* ldg_node_start succeeded */
    bool stopping;                  /* ldg_node_stop was called */
    int stop_signal;                /* signal that asked for the stop, 0 if none */
    struct ldg_serve serve;         /* gRPC + metrics endpoints */
    bool serving;                   /* serve was started and not yet stopped */
    struct ldg_bootstrap boot;      /* bootstrap / join (clustering) */
    int exit_status;                /* 1 after a runtime failure (bootstrap gave up) */
    struct ldg_backup_sched backups;/* periodic backups (BACKUP_INTERVAL) */
};

/* Apply cfg's log level and format (auto: text when stderr is a TTY, else
 * json) to the process logger. */
void ldg_node_setup_logging(const struct ldg_config *cfg);

/* Open the data directory (ephemeral with a warning when cfg->data_dir is NULL
 * in single mode), log the startup line, and install the signal handlers on
 * |loop|. Returns 0, or an LDG_E* code with |err| set (LDG_ELOCKED when the
 * data dir is in use); on failure nothing is left on the loop, and
 * ldg_node_close is still safe to call. */
int ldg_node_start(struct ldg_node *node, uv_loop_t *loop, const struct ldg_config *cfg,
                   struct ldg_err *err);

/* Begin a graceful stop: close the node's handles so uv_run returns. Safe to
 * call more than once and before start completed. */
void ldg_node_stop(struct ldg_node *node);

/* After uv_run returned: release the data directory. Safe on a node whose
 * start failed. */
void ldg_node_close(struct ldg_node *node);

/* --inspect: print what this data directory says about itself (path, node
 * id, cluster id when present) to |out| without locking or creating anything.
 * Returns 0, LDG_ENOTFOUND when the directory does not exist, or an LDG_E*
 * code with |err| set. */
int ldg_node_inspect(const struct ldg_config *cfg, FILE *out, struct ldg_err *err);

#endif
