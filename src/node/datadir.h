/* The node's data directory (SPEC §2, §3.1).
 *
 * ldg_datadir_open creates DATA if needed (or an ephemeral
 * $TMPDIR/ledger-XXXXXX when no path is given), takes an exclusive lock on
 * DATA/LOCK (flock, so it is per open file description, and our pid is
 * written into the file so a refused process can name the holder), and loads
 * or creates DATA/node_id (random non-zero u64, decimal, created once).
 *
 * It creates nothing else: state/, raft/, snapshots/ and backups/ are made by
 * their owners through ldg_datadir_subdir, so "restored from a backup"
 * detection (SPEC §3.4: state/ + backup.json and no raft/) still works on a
 * directory we have opened. That detection must ignore LOCK and node_id. */
#ifndef LDG_NODE_DATADIR_H
#define LDG_NODE_DATADIR_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

struct ldg_datadir {
    char *path;       /* the data directory (owned) */
    bool ephemeral;   /* a temp dir we created; removed by ldg_datadir_close */
    int lock_fd;      /* open DATA/LOCK holding the flock, -1 when closed */
    uint64_t node_id; /* this node's identity, never 0 */
};

/* Open |path| (created with parents if missing), or, when |path| is NULL, a
 * fresh ephemeral directory under $TMPDIR (default /tmp). Fills |dd|.
 * Returns 0, or:
 *   LDG_ELOCKED   another process holds DATA/LOCK (message names its pid)
 *   LDG_ECORRUPT  DATA/node_id exists but is not a non-zero decimal u64
 *   LDG_EIO/LDG_EPERM/LDG_EFULL/... on filesystem errors (message names the path)
 * On failure nothing is left open (an ephemeral dir made here is removed).
 * Release with ldg_datadir_close. */
int ldg_datadir_open(struct ldg_datadir *dd, const char *path, struct ldg_err *err);

/* Release the lock and free |dd|; an ephemeral directory is removed
 * recursively. Safe to call twice, and on a zeroed or failed-to-open struct. */
void ldg_datadir_close(struct ldg_datadir *dd);

/* DATA/<name> as a new string (caller frees with ldg_free); when |create|,
 * the directory is created (mode 0700) if missing. Returns 0 and sets *out,
 * or an LDG_E* code with a message naming the path. */
int ldg_datadir_subdir(const struct ldg_datadir *dd, const char *name, bool create,
                       char **out, struct ldg_err *err);

/* Read DATA/node_id without creating or locking anything (for --inspect).
 * Returns 0, LDG_ENOTFOUND when the file does not exist, or LDG_ECORRUPT. */
int ldg_datadir_read_node_id(const char *path, uint64_t *node_id, struct ldg_err *err);

/* Remove |path| and everything under it (does not follow symlinks).
 * Returns 0 or an LDG_E* code. */
int ldg_rmtree(const char *path);

#endif
