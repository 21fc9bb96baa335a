/* The Raft state machine adapter (struct raft_fsm, version 3).
 *
 * apply: decode the entry, check its index against raft_last_applied + 1,
 * ldg_ledger_apply in one LMDB write txn, commit; then hand the results to
 * the batcher (proposer only) and the blocks to watchers. Never a non-zero
 * return: client failures are results; a storage failure or an entry that
 * cannot be decoded is logged and the process aborts (libraft would retry
 * the entry forever; a restart replays it).
 *
 * Snapshots: snapshot opens an LMDB read txn (loop thread, cheap);
 * snapshot_async serialises it on the thread pool into one buffer:
 *   'L' 'D' 'G' 'F' ‖ version u8 (1) ‖ applied log_id u64be ‖ index u64be ‖
 *   term u64be ‖ store dump (store.h)
 * snapshot_finalize frees it. restore skips when LMDB is already at or past
 * the snapshot's applied position on the same log id, else replaces the
 * state with the dump. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/internal.h"
#include "util/log.h"
#include "util/mem.h"

static const uint8_t snap_magic[4] = {'L', 'D', 'G', 'F'};
#define SNAP_VERSION 1
#define SNAP_HEADER_LEN (4 + 1 + 8 + 8 + 8)

static void fatal(const char *what, int rv)
{
    LDG_LOG(LDG_LOG_ERROR, "raft", "state machine: %s: %s; stopping the process (a restart "
            "replays the Raft log)", what, ldg_strerror(rv));
    abort();
}

int ldg_cluster_frame(const uint8_t *p, size_t n, struct raft_buffer *out)
{
    size_t total = (n + 1 + 7) & ~(size_t)7;
    uint8_t *b = raft_malloc(total);
    if (b == NULL)
        return LDG_ENOMEM;
    memcpy(b, p, n);
    memset(b + n, 0, total - n);
    b[total - 1] = (uint8_t)(total - n);
    out->base = b;
    out->len = total;
    return 0;
}

int ldg_cluster_unframe(const void *p, size_t n, size_t *entry_len)
{
    if (n == 0 || n % 8 != 0)
        return LDG_ECORRUPT;
    uint8_t pad = ((const uint8_t *)p)[n - 1];
    if (pad < 1 || pad > 8)
        return LDG_ECORRUPT;
    *entry_len = n - pad;
    return 0;
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct ldg_cluster *c = fsm->data;
    *result = NULL;
    if (c->restore_snap_done) {
        c->restore_snap_done = false;
        raft_set_snapshot_threshold(&c->raft, c->opts.snapshot_threshold);
        raft_set_snapshot_trailing(&c->raft, c->opts.snapshot_trailing);
    }
    struct ldg_entry e;
    size_t len = 0;
    int rv = ldg_cluster_unframe(buf->base, buf->len, &len);
    if (rv == 0)
        rv = ldg_entry_decode(buf->base, len, &e);
    if (rv != 0)
        fatal("undecodable Raft entry", rv);
    raft_index want = raft_last_applied(&c->raft) + 1;
    if (e.index != want) {
        LDG_LOG(LDG_LOG_ERROR, "raft", "entry index %" PRIu64 " applied at Raft index %llu",
                e.index, (unsigned long long)want);
        fatal("entry index mismatch", LDG_EINTERNAL);
    }

    struct ldg_apply_result res;
    for (;;) {
        MDB_txn *txn;
        memset(&res, 0, sizeof res);
        rv = ldg_store_txn_begin(&c->store, false, &txn);
        if (rv != 0)
            fatal("begin write txn", rv);
        rv = ldg_ledger_apply(&c->ledger, txn, &e, &res);
        if (rv == 0)
            rv = ldg_store_txn_commit(txn);
        else
            ldg_store_txn_abort(txn);
        if (rv == 0)
            break;
        ldg_apply_result_free(&res);
        if (rv != LDG_EFULL)
            fatal("apply entry", rv);
        /* Growing the map needs no read txn open in this process: wait for
         * a snapshot being serialised or a backup copying the environment
         * (rare: only on map growth). */
        while (atomic_load(&c->snap_busy) || atomic_load(&c->ext_readers) > 0)
            usleep(1000);
        rv = ldg_store_grow(&c->store);
        if (rv != 0)
            fatal("grow the LMDB map", rv);
    }

    int64_t ts = ldg_entry_ts_us(&e);
    if (ts > c->last_ts_us)
        c->last_ts_us = ts;
    c->applied_entries++;
    if (!res.skipped)
        ldg_cluster_fsm_applied(c, &e, &res);
    ldg_apply_result_free(&res);
    ldg_entry_clear(&e);
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct ldg_cluster *c = fsm->data;
    *bufs = NULL;
    *n_bufs = 0;
    if (c->snap_txn != NULL || atomic_load(&c->snap_busy))
        return RAFT_BUSY;
    int rv = ldg_store_txn_begin(&c->store, true, &c->snap_txn);
    if (rv != 0) {
        c->snap_txn = NULL;
        LDG_LOG(LDG_LOG_WARN, "raft", "snapshot: read txn: %s", ldg_strerror(rv));
        return RAFT_IOERR;
    }
    atomic_store(&c->snap_busy, true);
    return 0;
}

/* Serialise the state seen by |txn| into |out| (header + dump). */
static int snapshot_encode(struct ldg_cluster *c, MDB_txn *txn, struct ldg_buf *out)
{
    struct ldg_applied ap;
    int rv = ldg_ledger_applied(&c->ledger, txn, &ap);
    if (rv != 0)
        return rv;
    ldg_buf_append(out, snap_magic, sizeof snap_magic);
    ldg_buf_u8(out, SNAP_VERSION);
    ldg_buf_u64be(out, ap.log_id);
    ldg_buf_u64be(out, ap.index);
    ldg_buf_u64be(out, ap.term);
    return ldg_store_dump(&c->store, txn, out);
}

/* Thread pool: no loop access, only the read txn and the store. */
static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                              unsigned *n_bufs)
{
    struct ldg_cluster *c = fsm->data;
    struct ldg_buf b;
    ldg_buf_init(&b);
    int rv = snapshot_encode(c, c->snap_txn, &b);
    ldg_store_txn_abort(c->snap_txn);
    c->snap_txn = NULL;
    atomic_store(&c->snap_busy, false);
    if (rv != 0) {
        ldg_buf_close(&b);
        return RAFT_IOERR;
    }
    struct raft_buffer *arr = ldg_malloc(sizeof *arr);
    arr->base = ldg_buf_steal(&b, &arr->len);
    *bufs = arr;
    *n_bufs = 1;
    return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                                 unsigned *n_bufs)
{
    struct ldg_cluster *c = fsm->data;
    if (c->restore_snap_pending) {
        c->restore_snap_pending = false;
        c->restore_snap_done = true; /* reset at the next apply, after the log is cut */
    }
    if (c->snap_txn != NULL) { /* snapshot_async never ran */
        ldg_store_txn_abort(c->snap_txn);
        c->snap_txn = NULL;
        atomic_store(&c->snap_busy, false);
    }
    if (*bufs != NULL) {
        for (unsigned i = 0; i < *n_bufs; i++)
            ldg_free((*bufs)[i].base);
        ldg_free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct ldg_cluster *c = fsm->data;
    const uint8_t *p = buf->base;
    if (buf->len < SNAP_HEADER_LEN || memcmp(p, snap_magic, 4) != 0 || p[4] != SNAP_VERSION) {
        LDG_LOG(LDG_LOG_ERROR, "raft", "snapshot restore: not a ledger snapshot");
        return RAFT_CORRUPT;
    }
    struct ldg_applied snap = {
        .log_id = ldg_get_u64be(p + 5),
        .index = ldg_get_u64be(p + 13),
        .term = ldg_get_u64be(p + 21),
    };
    struct ldg_applied cur;
    MDB_txn *txn;
    int rv = ldg_store_txn_begin(&c->store, true, &txn);
    if (rv == 0) {
        rv = ldg_ledger_applied(&c->ledger, txn, &cur);
        ldg_store_txn_abort(txn);
    }
    if (rv != 0) {
        LDG_LOG(LDG_LOG_ERROR, "raft", "snapshot restore: read applied position: %s",
                ldg_strerror(rv));
        return RAFT_IOERR;
    }
    if (cur.log_id == snap.log_id && cur.index >= snap.index) {
        LDG_LOG(LDG_LOG_INFO, "raft",
                "snapshot restore skipped: state already at index %" PRIu64
                " (snapshot %" PRIu64 ")", cur.index, snap.index);
        c->restore_skips++;
        raft_free(buf->base);
        return 0;
    }
    rv = ldg_store_load(&c->store, p + SNAP_HEADER_LEN, buf->len - SNAP_HEADER_LEN);
    if (rv != 0) {
        LDG_LOG(LDG_LOG_ERROR, "raft", "snapshot restore: load state: %s", ldg_strerror(rv));
        return rv == LDG_ECORRUPT ? RAFT_CORRUPT : RAFT_IOERR;
    }
    LDG_LOG(LDG_LOG_INFO, "raft",
            "snapshot restored: state replaced at log_id=%016" PRIx64 " index=%" PRIu64,
            snap.log_id, snap.index);
    c->restores++;
    raft_free(buf->base);
    return 0;
}

void ldg_cluster_fsm_init(struct ldg_cluster *c)
{
    memset(&c->fsm, 0, sizeof c->fsm);
    c->fsm.version = 3;
    c->fsm.data = c;
    c->fsm.apply = fsm_apply;
    c->fsm.snapshot = fsm_snapshot;
    c->fsm.snapshot_async = fsm_snapshot_async;
    c->fsm.snapshot_finalize = fsm_snapshot_finalize;
    c->fsm.restore = fsm_restore;
}
