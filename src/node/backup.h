/* Backups: manifest, archive, create, list, restore detection (docs/backups.md).
 *
 * A backup is BACKUP_DIR/<backup_id>/snapshot.tar.gz: a gzip'd tar whose top
 * level is a restorable data directory (backup.json + state/data.mdb), with a
 * sidecar copy of backup.json next to it; BACKUP_DIR/latest/ holds a copy of
 * the newest one, replaced atomically.
 *
 * Threading: the manifest, archive, list and restore functions are plain
 * blocking calls (any thread). ldg_backup_start runs the copy and packing on
 * the libuv thread pool and calls back on the loop thread. */
#ifndef LDG_NODE_BACKUP_H
#define LDG_NODE_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "crypto/sha256.h"
#include "node/config.h"
#include "util/buf.h"
#include "util/err.h"

#define LDG_BACKUP_FORMAT 1
#define LDG_BACKUP_ARCHIVE "snapshot.tar.gz"
#define LDG_BACKUP_MANIFEST "backup.json"
#define LDG_BACKUP_LATEST "latest"
#define LDG_BACKUP_MAX_FILES 8
#define LDG_BACKUP_ID_MAX 64

struct ldg_backup_vault {
    uint64_t org;
    uint64_t vault;            /* 0 = the organization's own chain */
    uint64_t height;
    int status;                /* chain status (1 active .. 5 deleted) */
    uint8_t tip_hash[LDG_HASH_LEN];
    uint8_t state_root[LDG_HASH_LEN];
};

struct ldg_backup_file {
    char path[64];             /* relative, e.g. "state/data.mdb" */
    uint64_t size;
    char sha256[LDG_HASH_HEX_LEN + 1];
};

/* Contents of backup.json. Strings are owned arrays; |tag| and |vaults| are
 * ldg_malloc'd (free with ldg_backup_manifest_free). */
struct ldg_backup_manifest {
    int format;
    char backup_id[LDG_BACKUP_ID_MAX];
    char *tag;                         /* never NULL after parse/fill ("" = none) */
    int64_t created_at;                /* Unix seconds */
    char tool_version[32];
    uint64_t source_node_id;
    char source_cluster_id[40];        /* UUID text ("" when unknown) */
    uint64_t log_id;                   /* applied position of the state */
    uint64_t applied_index;
    uint64_t applied_term;
    struct ldg_backup_vault *vaults;
    size_t nvaults;
    struct ldg_backup_file files[LDG_BACKUP_MAX_FILES];
    size_t nfiles;
};

void ldg_backup_manifest_free(struct ldg_backup_manifest *m);

/* Append the JSON text of |m| (docs/backups.md §2) to |out|. */
void ldg_backup_manifest_encode(const struct ldg_backup_manifest *m, struct ldg_buf *out);

/* Parse backup.json text |p[0..n)| into |m| (zeroed first). Returns 0 or
 * LDG_ECORRUPT with |err| naming what is wrong; on failure |m| holds nothing. */
int ldg_backup_manifest_parse(const char *p, size_t n, struct ldg_backup_manifest *m,
                              struct ldg_err *err);

/* Read and parse the file |path|. LDG_ENOTFOUND when it does not exist. */
int ldg_backup_manifest_load(const char *path, struct ldg_backup_manifest *m,
                             struct ldg_err *err);

/* Lowercase hex SHA-256 and size of the file |path|. */
int ldg_backup_file_sha256(const char *path, char hex[LDG_HASH_HEX_LEN + 1], uint64_t *size,
                           struct ldg_err *err);

/* Whether |name| (an archive member path) may be extracted: relative, no
 * "..", "." or empty component except a leading "./", and either
 * "backup.json" or under "state/". |*clean| gets the path without the
 * leading "./" (pointer into |name|); "" for the archive root itself. */
bool ldg_backup_member_ok(const char *name, const char **clean);

/* Pack |src_dir|/backup.json and |src_dir|/state/data.mdb into the gzip'd
 * tar |archive_path| (created, fsync'd). */
int ldg_backup_archive_write(const char *archive_path, const char *src_dir,
                             struct ldg_err *err);

/* Unpack |archive_path| into the existing directory |dest_dir|: regular files
 * and directories only, every member checked with ldg_backup_member_ok
 * (anything else refuses the whole archive with LDG_ECORRUPT). Files are
 * created with O_EXCL (an existing file is an error) and fsync'd. */
int ldg_backup_archive_extract(const char *archive_path, const char *dest_dir,
                               struct ldg_err *err);

/* Startup restore detection on a data directory without a Raft log
 * (SPEC §3.4): unpack a lone snapshot.tar.gz in place (then renamed to
 * restored-snapshot.tar.gz), and for a directory holding state/ +
 * backup.json verify every file's SHA-256. Returns 1 with |m| filled when
 * the directory is restored data, 0 when it is not (|m| empty), or a
 * negative code with |err| set (bad archive, checksum mismatch: the node
 * must refuse to start). */
int ldg_backup_restore_prepare(const char *data_dir, struct ldg_backup_manifest *m,
                               struct ldg_err *err);

/* BACKUP_DIR: cfg->backup_dir, else DATA/backups (ldg_malloc'd). */
char *ldg_backup_dir(const struct ldg_config *cfg, const char *data_dir);

/* One listed backup. */
struct ldg_backup_entry {
    struct ldg_backup_manifest m;
    char *archive_path;        /* ldg_malloc'd */
    uint64_t size_bytes;
};

/* Backups in |backup_dir| (not latest/, not temp dirs; entries whose sidecar
 * backup.json cannot be read are skipped), newest first (by id). A missing
 * directory is an empty list. Free with ldg_backup_list_free. */
int ldg_backup_list(const char *backup_dir, struct ldg_backup_entry **out, size_t *n,
                    struct ldg_err *err);
void ldg_backup_list_free(struct ldg_backup_entry *list, size_t n);

/* Remove the oldest backups tagged "periodic" beyond |keep|. Returns how
 * many were removed. */
int ldg_backup_prune(const char *backup_dir, uint32_t keep);

/* ---- asynchronous create (backup_job.c) ---- */

struct ldg_cluster;

struct ldg_backup_result {
    struct ldg_backup_manifest m;
    const char *archive_path;
    uint64_t size_bytes;
    char checksum[LDG_HASH_HEX_LEN + 1]; /* SHA-256 of the archive */
};

/* |status| 0 with |r| (borrowed for the call), or a negative code with |msg|. */
typedef void (*ldg_backup_done_cb)(void *arg, int status, const struct ldg_backup_result *r,
                                   const char *msg);

/* Start a backup of |cluster|'s state into |backup_dir| (copied). Loop
 * thread only. Returns 0 and later calls |cb| once on the loop thread, or
 * LDG_EBUSY (a backup is running; counted as result="busy") / LDG_EINVAL
 * without calling it. Counts ledger_backups_total{result} and sets
 * ledger_last_backup_timestamp_seconds. */
int ldg_backup_start(uv_loop_t *loop, struct ldg_cluster *cluster, const char *backup_dir,
                     uint64_t node_id, const char *tag, ldg_backup_done_cb cb, void *arg);

/* Whether a backup job is running (loop thread). */
bool ldg_backup_running(void);

/* Periodic backups (BACKUP_INTERVAL > 0): every interval, when |*cluster|
 * is set and this node leads, a backup tagged "periodic", then pruning to
 * BACKUP_KEEP. |cluster| is read at each tick (it is set by bootstrap). */
struct ldg_backup_sched {
    uv_timer_t timer;
    bool init;
    struct ldg_cluster *const *cluster;
    char *backup_dir;
    uint64_t node_id;
    uint32_t keep;
};
void ldg_backup_sched_start(struct ldg_backup_sched *s, uv_loop_t *loop,
                            const struct ldg_config *cfg, const char *data_dir,
                            uint64_t node_id, struct ldg_cluster *const *cluster);
/* Close the timer; the directory string is freed in the close callback. */
void ldg_backup_sched_stop(struct ldg_backup_sched *s);

#endif
