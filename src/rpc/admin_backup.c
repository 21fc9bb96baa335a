/* AdminService backups: CreateBackup, ListBackups, RestoreBackup (SPEC §7,
 * docs/backups.md).
 *
 * CreateBackup runs on the node that receives it (any member: the copy is of
 * this node's applied state) and answers when the archive is written.
 * ListBackups reads BACKUP_DIR. RestoreBackup validates its request
 * (confirm, known id) and then answers UNIMPLEMENTED with the offline
 * procedure: replacing a running node's state online is not implemented. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cluster/cluster.h"
#include "ledger/v1/ledger.pb-c.h"
#include "node/backup.h"
#include "rpc/convert.h"
#include "rpc/rpc.h"
#include "util/mem.h"

static char *backup_dir_of(const struct ldg_rpc_ctx *ctx)
{
    return ldg_backup_dir(ctx->cfg, ctx->data_path ? ctx->data_path : ".");
}

static Ledger__V1__BackupInfo *info_of(struct ldg_arena *a, const struct ldg_backup_manifest *m,
                                       const char *path, uint64_t size, const char *checksum)
{
    Ledger__V1__BackupInfo *bi = ldg_arena_alloc(a, sizeof *bi);
    ledger__v1__backup_info__init(bi);
    bi->backup_id = ldg_arena_strndup(a, m->backup_id, strlen(m->backup_id));
    bi->backup_path = ldg_arena_strndup(a, path, strlen(path));
    bi->applied_index = m->applied_index;
    bi->size_bytes = size;
    bi->checksum = ldg_arena_strndup(a, checksum, strlen(checksum));
    bi->created_at = ldg_rpc_timestamp(a, m->created_at, 0);
    bi->tag = ldg_arena_strndup(a, m->tag ? m->tag : "", m->tag ? strlen(m->tag) : 0);
    bi->cluster_id = ldg_arena_strndup(a, m->source_cluster_id, strlen(m->source_cluster_id));
    return bi;
}

/* ---- CreateBackup ---- */

static void create_done(void *arg, int status, const struct ldg_backup_result *r,
                        const char *msg)
{
    struct ldg_grpc_call *call = arg;
    if (status != 0) {
        ldg_grpc_call_fail(call, ldg_grpc_code_from_err(status), "backup failed: %s", msg);
        return;
    }
    struct ldg_arena a;
    ldg_arena_init(&a);
    Ledger__V1__BackupInfo *bi = info_of(&a, &r->m, r->archive_path, r->size_bytes, r->checksum);
    ldg_grpc_call_reply(call, &bi->base);
    ldg_arena_free(&a);
}

static void create_backup(struct ldg_grpc_call *call, const ProtobufCMessage *req, void *ud)
{
    struct ldg_rpc_ctx *ctx = ud;
    const Ledger__V1__CreateBackupRequest *r = (const Ledger__V1__CreateBackupRequest *)req;
    if (ctx->cluster == NULL) {
        ldg_grpc_call_fail(call, LDG_GRPC_UNAVAILABLE,
                           "this node has not joined a cluster yet: nothing to back up");
        return;
    }
    const char *tag = r->tag ? r->tag : "";
    if (strlen(tag) > 256) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT, "tag: at most 256 bytes");
        return;
    }
    char *dir = backup_dir_of(ctx);
    int rv = ldg_backup_start(ctx->loop, ctx->cluster, dir, ctx->node_id, tag, create_done,
                              call);
    ldg_free(dir);
    if (rv == LDG_EBUSY)
        ldg_grpc_call_fail(call, LDG_GRPC_ABORTED,
                           "another backup is running on this node; retry when it ends");
    else if (rv != 0)
        ldg_grpc_call_fail(call, ldg_grpc_code_from_err(rv), "backup: %s", ldg_strerror(rv));
}

/* ---- ListBackups ---- */

static void list_backups(struct ldg_grpc_call *call, const ProtobufCMessage *req, void *ud)
{
    struct ldg_rpc_ctx *ctx = ud;
    const Ledger__V1__ListBackupsRequest *r = (const Ledger__V1__ListBackupsRequest *)req;
    size_t limit = r->limit == 0 ? 100 : r->limit;
    if (limit > 1000)
        limit = 1000;
    const char *after = r->page_token ? r->page_token : "";
    char *dir = backup_dir_of(ctx);
    struct ldg_backup_entry *list = NULL;
    size_t n = 0;
    struct ldg_err err = {0};
    int rv = ldg_backup_list(dir, &list, &n, &err);
    ldg_free(dir);
    if (rv != 0) {
        ldg_grpc_call_fail(call, LDG_GRPC_INTERNAL, "list backups: %s", err.msg);
        return;
    }
    struct ldg_arena a;
    ldg_arena_init(&a);
    Ledger__V1__ListBackupsResponse resp = LEDGER__V1__LIST_BACKUPS_RESPONSE__INIT;
    resp.backups = ldg_arena_alloc(&a, (n ? n : 1) * sizeof *resp.backups);
    size_t i = 0;
    if (after[0] != '\0') /* newest first: skip ids >= the token */
        while (i < n && strcmp(list[i].m.backup_id, after) >= 0)
            i++;
    for (; i < n && resp.n_backups < limit; i++) {
        char hex[LDG_HASH_HEX_LEN + 1];
        if (ldg_backup_file_sha256(list[i].archive_path, hex, NULL, NULL) != 0)
            hex[0] = '\0';
        resp.backups[resp.n_backups++] =
            info_of(&a, &list[i].m, list[i].archive_path, list[i].size_bytes, hex);
    }
    if (i < n && resp.n_backups > 0) {
        const char *last = resp.backups[resp.n_backups - 1]->backup_id;
        resp.next_page_token = ldg_arena_strndup(&a, last, strlen(last));
    }
    ldg_grpc_call_reply(call, &resp.base);
    ldg_arena_free(&a);
    ldg_backup_list_free(list, n);
}

/* ---- RestoreBackup ---- */

static void restore_backup(struct ldg_grpc_call *call, const ProtobufCMessage *req, void *ud)
{
    struct ldg_rpc_ctx *ctx = ud;
    const Ledger__V1__RestoreBackupRequest *r = (const Ledger__V1__RestoreBackupRequest *)req;
    const char *id = r->backup_id ? r->backup_id : "";
    if (id[0] == '\0') {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT, "backup_id is required");
        return;
    }
    if (!r->confirm) {
        ldg_grpc_call_fail(call, LDG_GRPC_FAILED_PRECONDITION,
                           "RestoreBackup replaces this node's state and forces a new one-node "
                           "cluster: set confirm=true");
        return;
    }
    char *dir = backup_dir_of(ctx);
    struct ldg_backup_entry *list = NULL;
    size_t n = 0;
    (void)ldg_backup_list(dir, &list, &n, NULL);
    const struct ldg_backup_entry *found = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].m.backup_id, id) == 0)
            found = &list[i];
    if (found == NULL)
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND, "backup %s not found in %s", id, dir);
    else
        ldg_grpc_call_fail(call, LDG_GRPC_UNIMPLEMENTED,
                           "online restore is not implemented; restore offline: stop the node, "
                           "`tar -xzf %s -C NEWDIR`, then start `inferadb-ledger --single "
                           "--data NEWDIR` (docs/operations.md, Backups and restore)",
                           found->archive_path);
    ldg_backup_list_free(list, n);
    ldg_free(dir);
}

const struct ldg_rpc_impl ldg_rpc_admin_backup_impls[] = {
    {"ledger.v1.AdminService", "CreateBackup", LDG_GRPC_UNARY, create_backup},
    {"ledger.v1.AdminService", "ListBackups", LDG_GRPC_UNARY, list_backups},
    {"ledger.v1.AdminService", "RestoreBackup", LDG_GRPC_UNARY, restore_backup},
    {NULL, NULL, 0, NULL},
};
