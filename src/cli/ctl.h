/* ledgerctl internals (SPEC §10): the operator CLI, a client of the gRPC API.
 *
 * One struct ldg_ctl per run holds the global options, a libuv loop and one
 * gRPC client per address used. Calls are synchronous: ldg_ctl_call runs the
 * loop until the one call finishes. Output goes through struct ldg_ctl_table:
 * aligned text columns for people, JSON (--json) for scripts.
 *
 * Exit statuses: LDG_CTL_EXIT_OK, LDG_CTL_EXIT_FAIL (a call failed or a
 * check did not pass), LDG_CTL_EXIT_USAGE (bad command line). */
#ifndef LDG_CLI_CTL_H
#define LDG_CLI_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>
#include <uv.h>

#include "ledger/v1/ledger.pb-c.h"

#define LDG_CTL_EXIT_OK 0
#define LDG_CTL_EXIT_FAIL 1
#define LDG_CTL_EXIT_USAGE 2

#define LDG_CTL_DEFAULT_ADDR "127.0.0.1:50051"
#define LDG_CTL_DEFAULT_TIMEOUT_MS 10000
#define LDG_CTL_MAX_CLIENTS 64

struct ldg_grpc_client;

struct ldg_ctl {
    const char *addr;      /* --addr (borrowed from argv/env) */
    char *auth;            /* "Bearer <token>" or NULL (owned) */
    uint64_t timeout_ms;   /* per call */
    bool json;             /* --json */
    uv_loop_t loop;
    size_t n_clients;
    struct {
        char *addr; /* owned */
        struct ldg_grpc_client *cl;
    } clients[LDG_CTL_MAX_CLIENTS];
};

/* Outcome of one call. resp (owned; free with ldg_ctl_reply_clear) is set
 * when code is 0 (gRPC OK). */
struct ldg_ctl_reply {
    int code;                /* enum ldg_grpc_code */
    char *message;           /* owned, "" when none */
    ProtobufCMessage *resp;
};

/* Sets up the loop; ctl->addr/auth/timeout_ms/json are filled by the caller
 * afterwards. Returns 0 or a negative LDG_E* code. */
int ldg_ctl_init(struct ldg_ctl *ctl);
/* Closes every client and the loop; frees auth. */
void ldg_ctl_close(struct ldg_ctl *ctl);

/* Reads the bearer token from |path| (surrounding whitespace stripped) into
 * ctl->auth. Returns 0, or -1 after printing why to stderr. */
int ldg_ctl_load_token(struct ldg_ctl *ctl, const char *path);

/* Unary call of |method| ("AdminService/ListVaults"; the "/ledger.v1."
 * prefix is added) on |addr| (NULL = ctl->addr). Always fills |out|
 * (clear it with ldg_ctl_reply_clear) and returns out->code. */
int ldg_ctl_call(struct ldg_ctl *ctl, const char *addr, const char *method,
                 const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                 struct ldg_ctl_reply *out);
void ldg_ctl_reply_clear(struct ldg_ctl_reply *r);

/* ldg_ctl_call, and when it fails: print the error line (named after the
 * method, "GetClusterInfo") and clear |out|. Returns out->code. */
int ldg_ctl_call_checked(struct ldg_ctl *ctl, const char *addr, const char *method,
                         const ProtobufCMessage *req,
                         const ProtobufCMessageDescriptor *resp_desc, struct ldg_ctl_reply *out);

/* Prints "ledgerctl: <method>: <CODE>: <message>" to stderr. */
void ldg_ctl_report(const char *method, const struct ldg_ctl_reply *r);

/* Every organization (all pages) / every vault (optionally of |org|, 0 =
 * all). On failure prints the error line and returns -1; on success the
 * caller frees *out with protobuf_c_message_free_unpacked (organizations:
 * an array of *n unpacked ListOrganizationsResponse pages flattened into
 * *orgs which borrows from *pages). */
struct ldg_ctl_orgs {
    size_t n;
    Ledger__V1__OrganizationInfo **orgs; /* owned array, entries borrowed from pages */
    size_t n_pages;
    Ledger__V1__ListOrganizationsResponse **pages; /* owned */
};
int ldg_ctl_list_orgs(struct ldg_ctl *ctl, const char *addr, struct ldg_ctl_orgs *out);
void ldg_ctl_orgs_free(struct ldg_ctl_orgs *o);
int ldg_ctl_list_vaults(struct ldg_ctl *ctl, const char *addr, uint64_t org,
                        Ledger__V1__ListVaultsResponse **out);

/* HTTP/1.1 GET http://|addr||path| with a timeout. On 0 *status is the
 * HTTP status and *body (owned, NUL-terminated) the body; on -1 |err| says
 * why. */
int ldg_ctl_http_get(const char *addr, const char *path, uint64_t timeout_ms, int *status,
                     char **body, char *err, size_t err_len);

/* ---- output ---- */

enum ldg_ctl_kind { LDG_CTL_STR, LDG_CTL_NUM, LDG_CTL_BOOL };

struct ldg_ctl_col {
    const char *key;  /* JSON key, snake_case; upper-cased for the text header */
    enum ldg_ctl_kind kind;
};

struct ldg_ctl_table {
    size_t n_cols;
    const struct ldg_ctl_col *cols; /* borrowed */
    size_t n_rows, cap;
    char **cells; /* n_rows * n_cols, owned */
    size_t filled; /* cells filled in the current row */
};

void ldg_ctl_table_init(struct ldg_ctl_table *t, const struct ldg_ctl_col *cols, size_t n_cols);
void ldg_ctl_table_free(struct ldg_ctl_table *t);
/* Appends one cell to the current row (rows start implicitly). A NUM cell
 * must print as a JSON number, a BOOL cell as "true"/"false". */
void ldg_ctl_cell(struct ldg_ctl_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *ldg_ctl_table_get(const struct ldg_ctl_table *t, size_t row, size_t col);
/* Aligned columns with an upper-case header. */
void ldg_ctl_table_print(const struct ldg_ctl_table *t, FILE *f);
/* One "key: value" line per column of row |row| (for single-record output). */
void ldg_ctl_table_print_record(const struct ldg_ctl_table *t, size_t row, FILE *f);
/* JSON array of objects / one object for row |row|. */
void ldg_ctl_table_json(const struct ldg_ctl_table *t, FILE *f);
void ldg_ctl_table_json_row(const struct ldg_ctl_table *t, size_t row, FILE *f);
/* A JSON string literal. */
void ldg_ctl_json_str(FILE *f, const char *s);

/* Lower-case hex of a Hash (or "-" when absent) into |out| (>= 65 bytes). */
const char *ldg_ctl_hash_hex(const Ledger__V1__Hash *h, char *out);
/* Enum value name without |prefix| ("VAULT_STATUS_ACTIVE" -> "ACTIVE"). */
const char *ldg_ctl_enum_name(const ProtobufCEnumDescriptor *d, int value, const char *prefix);
/* "2026-11-26T02:00:30Z" or "-" into |out| (>= 32 bytes). */
const char *ldg_ctl_time(const Google__Protobuf__Timestamp *ts, char *out);

/* Chains to visit: (organization, vault), vault 0 = organization chain. */
struct ldg_ctl_chain {
    uint64_t org, vault;
    const char *name; /* borrowed from the listings below */
};
struct ldg_ctl_chains {
    size_t n;
    struct ldg_ctl_chain *v; /* owned */
    struct ldg_ctl_orgs orgs;
    Ledger__V1__ListVaultsResponse *lv; /* owned, may be NULL */
};
/* Every vault and (|with_orgs|) every live organization chain, ordered by
 * (organization, vault), organization chain first. Prints the failing
 * call's error line and returns -1 on failure. */
int ldg_ctl_all_chains(struct ldg_ctl *ctl, const char *addr, bool with_orgs,
                       struct ldg_ctl_chains *out);
void ldg_ctl_chains_add(struct ldg_ctl_chains *c, uint64_t org, uint64_t vault, const char *name);
void ldg_ctl_chains_free(struct ldg_ctl_chains *c);

/* ---- commands (argv holds the words after the command name, global flags
 * removed); each returns an exit status ---- */
int ldg_ctl_cmd_cluster_info(struct ldg_ctl *ctl, int argc, char **argv);
int ldg_ctl_cmd_node_info(struct ldg_ctl *ctl, int argc, char **argv);
int ldg_ctl_cmd_node_leave(struct ldg_ctl *ctl, int argc, char **argv);
int ldg_ctl_cmd_org_list(struct ldg_ctl *ctl, int argc, char **argv);
int ldg_ctl_cmd_vault_list(struct ldg_ctl *ctl, int argc, char **argv);
int ldg_ctl_cmd_tip(struct ldg_ctl *ctl, int argc, char **argv);
int ldg_ctl_cmd_integrity(struct ldg_ctl *ctl, int argc, char **argv);
int ldg_ctl_cmd_backup_create(struct ldg_ctl *ctl, int argc, char **argv);
int ldg_ctl_cmd_backup_list(struct ldg_ctl *ctl, int argc, char **argv);
int ldg_ctl_cmd_verify(struct ldg_ctl *ctl, int argc, char **argv);

/* Prints "ledgerctl: <msg>" and the command's usage line to stderr; returns
 * LDG_CTL_EXIT_USAGE. */
int ldg_ctl_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a decimal uint64 (whole string). */
bool ldg_ctl_parse_u64(const char *s, uint64_t *out);

#endif
