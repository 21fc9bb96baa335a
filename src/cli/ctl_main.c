/* ledgerctl: command-line entry point (SPEC §10). Global flags may appear
 * anywhere; the remaining words name the command and its own flags. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ctl.h"
#include "util/mem.h"

struct command {
    const char *w1, *w2; /* words; w2 NULL for one-word commands */
    int (*fn)(struct ldg_ctl *ctl, int argc, char **argv);
    const char *usage;   /* after "ledgerctl " */
    const char *help;
};

static const struct command commands[] = {
    {"cluster", "info", ldg_ctl_cmd_cluster_info, "cluster info",
     "Membership from GetClusterInfo: node id, address, role, leader, reachable, match index."},
    {"node", "info", ldg_ctl_cmd_node_info, "node info",
     "Facts about the --addr node (GetNodeInfo)."},
    {"node", "leave", ldg_ctl_cmd_node_leave, "node leave NODE_ID",
     "Remove NODE_ID from the cluster (LeaveCluster; forwarded to the leader)."},
    {"org", "list", ldg_ctl_cmd_org_list, "org list", "Every organization (ListOrganizations)."},
    {"vault", "list", ldg_ctl_cmd_vault_list, "vault list [--org N]",
     "Every vault, or the vaults of organization N (ListVaults)."},
    {"tip", NULL, ldg_ctl_cmd_tip, "tip (--all | --org N [--vault V])",
     "GetTip of every organization chain and vault (--all), or of one chain\n"
     "(vault 0 or no --vault = the organization chain)."},
    {"integrity", NULL, ldg_ctl_cmd_integrity, "integrity [--full] (--all | --org N [--vault V])",
     "CheckIntegrity of every (organization, vault) pair including organization\n"
     "chains (--all), or of one chain. --full replays every transaction.\n"
     "Exit status 1 when any chain is unhealthy or cannot be checked."},
    {"backup", "create", ldg_ctl_cmd_backup_create, "backup create [--tag T]",
     "Write a backup archive on the --addr node (CreateBackup)."},
    {"backup", "list", ldg_ctl_cmd_backup_list, "backup list",
     "Backups on the --addr node, newest first (ListBackups)."},
    {"verify", NULL, ldg_ctl_cmd_verify, "verify --metrics HOST:PORT [--nodes A,B,C]",
     "The runbook's post-recovery checklist: every node healthy (HealthService/Check on\n"
     "each of --nodes, default the members GetClusterInfo lists), a leader elected and\n"
     "agreed by every node, every vault readable (GetTip), integrity passes (quick\n"
     "CheckIntegrity of every chain), a write and a LINEARIZABLE read succeed in a\n"
     "scratch vault (organization \"ledgerctl-verify\", created when missing), and\n"
     "GET /metrics on --metrics answers with ledger_build_info. Prints a PASS/FAIL\n"
     "table; exit status 0 only when every check passes."},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const char global_help[] =
    "Global flags (anywhere on the command line):\n"
    "  --addr HOST:PORT    server to talk to (default $LEDGERCTL_ADDR, else 127.0.0.1:50051)\n"
    "  --token-file FILE   send \"authorization: Bearer <token>\" read from FILE\n"
    "  --timeout SECS      deadline of each call (default 10)\n"
    "  --json              machine-readable JSON output\n"
    "  -h, --help          help (after a command: that command's help)\n";

static void print_help(FILE *f)
{
    fprintf(f, "ledgerctl - operator CLI for InferaDB Ledger\n\nUsage: ledgerctl [flags] COMMAND\n\n"
               "Commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %s\n", commands[i].usage);
    fprintf(f, "\n%s\nExit status: 0 success, 1 a call failed or a check did not pass, "
               "2 usage error.\nSee docs/ledgerctl.md.\n",
            global_help);
}

static void print_command_help(const struct command *c, FILE *f)
{
    fprintf(f, "Usage: ledgerctl %s\n\n%s\n\n%s", c->usage, c->help, global_help);
}

static const struct command *find_command(const char *w1, const char *w2)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].w1, w1) == 0 &&
            (commands[i].w2 == NULL || (w2 != NULL && strcmp(commands[i].w2, w2) == 0)))
            return &commands[i];
    return NULL;
}

int ldg_ctl_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ledgerctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    for (size_t i = 0; cmd != NULL && i < N_COMMANDS; i++)
        if (strncmp(commands[i].usage, cmd, strlen(cmd)) == 0)
            fprintf(stderr, "usage: ledgerctl %s\n", commands[i].usage);
    fputs("Run 'ledgerctl --help' for the list of commands.\n", stderr);
    return LDG_CTL_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    struct ldg_ctl ctl;
    if (ldg_ctl_init(&ctl) != 0) {
        fprintf(stderr, "ledgerctl: cannot create event loop\n");
        return LDG_CTL_EXIT_FAIL;
    }
    const char *env_addr = getenv("LEDGERCTL_ADDR");
    ctl.addr = env_addr && env_addr[0] ? env_addr : LDG_CTL_DEFAULT_ADDR;
    const char *token_file = NULL;
    bool help = false;
    int rc = LDG_CTL_EXIT_USAGE;
    char **rest = ldg_malloc(((size_t)argc + 1) * sizeof *rest);
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        const char *flag = NULL;
        const char *global[] = {"--addr", "--token-file", "--timeout"};
        for (size_t g = 0; g < 3; g++) {
            size_t gl = strlen(global[g]);
            if (strcmp(a, global[g]) == 0) {
                flag = global[g];
                if (i + 1 >= argc) {
                    rc = ldg_ctl_usage_error(NULL, "%s needs a value", a);
                    goto done;
                }
                val = argv[++i];
            } else if (strncmp(a, global[g], gl) == 0 && a[gl] == '=') {
                flag = global[g];
                val = a + gl + 1;
            }
        }
        if (flag != NULL) {
            if (strcmp(flag, "--addr") == 0) {
                ctl.addr = val;
            } else if (strcmp(flag, "--token-file") == 0) {
                token_file = val;
            } else {
                char *end = NULL;
                double secs = strtod(val, &end);
                if (end == val || *end != '\0' || !(secs > 0) || secs > 86400) {
                    rc = ldg_ctl_usage_error(NULL, "--timeout wants seconds > 0, got \"%s\"", val);
                    goto done;
                }
                ctl.timeout_ms = (uint64_t)(secs * 1000.0 + 0.5);
                if (ctl.timeout_ms == 0)
                    ctl.timeout_ms = 1;
            }
        } else if (strcmp(a, "--json") == 0) {
            ctl.json = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "help") == 0) {
            help = true;
        } else {
            rest[n++] = argv[i];
        }
    }
    rest[n] = NULL;
    const struct command *cmd = n > 0 ? find_command(rest[0], n > 1 ? rest[1] : NULL) : NULL;
    if (help) {
        if (cmd != NULL)
            print_command_help(cmd, stdout);
        else
            print_help(stdout);
        rc = LDG_CTL_EXIT_OK;
        goto done;
    }
    if (n == 0) {
        print_help(stderr);
        goto done;
    }
    if (cmd == NULL) {
        rc = ldg_ctl_usage_error(rest[0], "unknown command \"%s%s%s\"", rest[0],
                                 n > 1 ? " " : "", n > 1 ? rest[1] : "");
        goto done;
    }
    if (token_file != NULL && ldg_ctl_load_token(&ctl, token_file) != 0) {
        rc = LDG_CTL_EXIT_USAGE;
        goto done;
    }
    int skip = cmd->w2 ? 2 : 1;
    rc = cmd->fn(&ctl, n - skip, rest + skip);
done:
    free(rest);
    fflush(stdout);
    ldg_ctl_close(&ctl);
    return rc;
}
