/* inferadb-ledger: wiring only. Exit status: 0 clean stop, 1 startup or
 * runtime failure, 2 bad configuration. */
#include <stdio.h>
#include <unistd.h>

#include <uv.h>

#include "node/config.h"
#include "node/node.h"
#include "util/log.h"

extern char **environ;

int main(int argc, char **argv)
{
    struct ldg_config cfg;
    struct ldg_err err = {0};
    if (ldg_config_parse(&cfg, argc, argv, environ, &err) != 0) {
        fprintf(stderr, "inferadb-ledger: %s\n", err.msg);
        return 2;
    }
    if (cfg.help) {
        ldg_config_print_help(stdout);
        return 0;
    }
    if (cfg.version) {
        printf("inferadb-ledger %s\n", LDG_VERSION);
        return 0;
    }
    ldg_node_setup_logging(&cfg);

    int status = 0;
    if (cfg.inspect) {
        if (ldg_node_inspect(&cfg, stdout, &err) != 0) {
            fprintf(stderr, "inferadb-ledger: %s\n", err.msg);
            status = 1;
        }
        ldg_config_free(&cfg);
        return status;
    }

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ldg_node node;
    if (ldg_node_start(&node, &loop, &cfg, &err) != 0) {
        LDG_LOG(LDG_LOG_ERROR, "node", "startup failed: %s", err.msg);
        status = 1;
    } else {
        uv_run(&loop, UV_RUN_DEFAULT);
        status = node.exit_status;
    }
    ldg_node_close(&node);
    if (uv_loop_close(&loop) != 0)
        LDG_LOG(LDG_LOG_WARN, "node", "event loop closed with handles still open");
    ldg_config_free(&cfg);
    return status;
}
