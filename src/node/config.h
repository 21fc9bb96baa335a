/* Server configuration: flags, environment, environment file (SPEC §2).
 *
 * Every option is a flag `--name VALUE` / `--name=VALUE` and, unless it is
 * flag-only (--force, --inspect, --help, --version), a variable
 * INFERADB__LEDGER__<NAME>. Precedence: flag > process environment >
 * environment file > default. One option table (config.c) drives parsing,
 * validation and --help, so they cannot drift apart.
 *
 * Bootstrap mode (SINGLE, JOIN, CLUSTER) is resolved as a group: the highest
 * layer that sets a mode (SINGLE=true, JOIN=true or CLUSTER=N) decides it and
 * mode settings of lower layers are ignored, so `--single` wins over JOIN=true
 * in the environment. Two different modes in one layer are an error.
 * CLUSTER=1 means single. */
#ifndef LDG_NODE_CONFIG_H
#define LDG_NODE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "util/err.h"
#include "util/log.h"

#define LDG_CONFIG_ENV_PREFIX "INFERADB__LEDGER__"
#define LDG_CONFIG_DEFAULT_ENV_FILE "/etc/default/ledger"
#define LDG_CONFIG_DEFAULT_PORT 50051

enum ldg_boot_mode {
    LDG_MODE_CLUSTER = 0, /* coordinated bootstrap of cluster_size nodes (default) */
    LDG_MODE_SINGLE = 1,  /* one-node cluster (--single, SINGLE=true, CLUSTER=1) */
    LDG_MODE_JOIN = 2,    /* join an existing cluster through peers */
};

struct ldg_config {
    char *listen;                /* "host:port" to bind, as given */
    char *listen_host;           /* host part of listen, IPv6 brackets removed */
    uint16_t listen_port;        /* port part of listen */
    char *advertise;             /* "host:port" others use to reach us (always set) */
    char *data_dir;              /* data directory; NULL: not set (ephemeral, single only) */
    char *metrics;               /* "host:port" of /metrics; NULL when "off" */
    char *metrics_host;          /* host part of metrics (NULL when off) */
    uint16_t metrics_port;       /* port part of metrics (0 when off) */
    bool metrics_explicit;       /* set by the operator (bind failure is fatal) */
    enum ldg_boot_mode mode;     /* resolved bootstrap mode */
    bool mode_explicit;          /* some layer chose the mode (else default cluster) */
    uint32_t cluster_size;       /* N of CLUSTER (default 3; 1 in single mode) */
    char *peers;                 /* peer list / DNS name / JSON file; NULL: none */
    uint32_t batch_size;         /* max transactions per Raft entry, 1..10000 */
    double batch_delay_s;        /* max time a write waits for its batch */
    char *backup_dir;            /* NULL: DATA/backups */
    double backup_interval_s;    /* periodic backups; 0: off */
    uint32_t backup_keep;        /* periodic backups kept */
    enum ldg_log_format log_format; /* valid when !log_format_auto */
    bool log_format_auto;        /* text on a TTY, else json (decided by the caller) */
    enum ldg_log_level log_level;
    char *cluster_secret_file;   /* NULL: peer connections unauthenticated */
    bool allow_fault_injection;
    bool force;                  /* with single: force even if not a voter */
    bool inspect;                /* print data dir facts and exit */
    double peers_poll_s;         /* discovery poll interval */
    double peers_timeout_s;      /* discovery / join deadline */
    char *tls_cert;              /* PEM certificate; NULL: no TLS */
    char *tls_key;               /* PEM private key (set iff tls_cert is) */
    char *tls_ca;                /* CA bundle for mutual TLS; NULL: none */
    char *admin_token_file;      /* NULL: AdminService unrestricted */
    uint64_t snapshot_threshold; /* Raft entries between Raft snapshots */
    double scrub_interval_s;     /* background integrity scrubber; 0: off */
    uint64_t max_message_bytes;  /* largest gRPC message accepted */
    char *env_file;              /* environment file that was read; NULL: none */
    bool help;                   /* --help given: print help, exit 0 */
    bool version;                /* --version given: print version, exit 0 */
};

/* Parse |argv| (argv[0] is the program name and is skipped) and |envp|
 * (NULL-terminated "KEY=value" array, may be NULL) plus the environment file
 * into |cfg|, which is overwritten. Uses no global state: the process
 * environment is read only through |envp|.
 *
 * The environment file is --env-file, else INFERADB__LEDGER__ENV_FILE from
 * |envp|, else /etc/default/ledger (missing is fine only for the default;
 * an empty ENV_FILE means "no file").
 *
 * When --help or --version is present, sets cfg->help / cfg->version and
 * returns 0 without reading anything else.
 *
 * Returns 0, or LDG_EINVAL / LDG_ENOTFOUND / LDG_EIO with a message in |err|
 * naming the offending flag, variable or file line. On success the caller
 * frees with ldg_config_free; on failure |cfg| holds nothing to free (calling
 * ldg_config_free on it is still safe). */
int ldg_config_parse(struct ldg_config *cfg, int argc, char **argv, char **envp,
                     struct ldg_err *err);

/* Release the strings owned by |cfg| and zero it. Safe on a zeroed cfg. */
void ldg_config_free(struct ldg_config *cfg);

/* Write --help text (every option with its variable and default) to |out|. */
void ldg_config_print_help(FILE *out);

/* Split "host:port" or "[v6]:port" into |host| (brackets removed, at most
 * |host_cap|-1 bytes) and |port| (1..65535). Returns 0 or LDG_EINVAL. */
int ldg_config_split_addr(const char *addr, char *host, size_t host_cap, uint16_t *port);

/* Name of a mode: "single", "cluster", "join". */
const char *ldg_boot_mode_name(enum ldg_boot_mode mode);

#endif
