/* ledger.v1.AdminService: CheckIntegrity and CreateSnapshot.
 *
 * Both do long, blocking work (reading every block, replaying a chain,
 * dumping the whole state), so they run on the libuv thread pool: the
 * handler validates and looks the chain up on the loop thread, hands a work
 * struct that owns its inputs to uv_queue_work, and the after-work callback
 * (loop thread) replies. The worker opens its own LMDB read txn (MDB_NOTLS),
 * so it sees one consistent point in time while writes go on.
 *
 * Snapshot file format: docs/snapshots.md. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>
#include <zstd.h>

#include "cluster/cluster.h"
#include "crypto/sha256.h"
#include "ledger/integrity.h"
#include "ledger/v1/ledger.pb-c.h"
#include "rpc/common.h"
#include "rpc/convert.h"
#include "rpc/validate.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/metrics.h"

/* ---- CheckIntegrity ---- */

/* Rotation of the quick check's slot sample, per chain (a small direct-mapped
 * table; a collision just restarts that chain's rotation). Loop thread only. */
#define SAMPLE_SLOTS 256
static struct {
    uint64_t org, vault;
    uint32_t next;
} sample_pos[SAMPLE_SLOTS];

static unsigned sample_index(uint64_t org, uint64_t vault)
{
    uint64_t h = org * 0x9e3779b97f4a7c15ULL ^ (vault + 0x632be59bd9b4e019ULL) * 0xbf58476d1ce4e5b9ULL;
    return (unsigned)(h >> 56) % SAMPLE_SLOTS;
}

static uint32_t sample_start(uint64_t org, uint64_t vault)
{
    unsigned i = sample_index(org, vault);
    if (sample_pos[i].org == org && sample_pos[i].vault == vault)
        return sample_pos[i].next;
    return 0;
}

static void sample_save(uint64_t org, uint64_t vault, uint32_t next)
{
    unsigned i = sample_index(org, vault);
    sample_pos[i].org = org;
    sample_pos[i].vault = vault;
    sample_pos[i].next = next;
}

static struct ldg_metric_family *integrity_metric(void)
{
    static const char *const lbl[] = {"result"};
    return ldg_metrics_counter("ledger_integrity_checks_total",
                               "CheckIntegrity runs by result (healthy, unhealthy, error)", 1,
                               lbl);
}

struct integrity_work {
    uv_work_t req;
    struct ldg_rpc_ctx *ctx;    /* pending_work counts this job */
    struct ldg_grpc_call *call;
    struct ldg_ledger *ledger;  /* borrowed from the cluster */
    uint64_t org, vault;
    struct ldg_integrity_opts opts;
    char *scratch_dir;          /* owned (opts.scratch_dir points here) */
    int rv;                     /* ldg_integrity_check result */
    struct ldg_integrity_report rep;
};

static void integrity_run(uv_work_t *req)
{
    struct integrity_work *w = LDG_CONTAINER_OF(req, struct integrity_work, req);
    MDB_txn *txn = NULL;
    w->rv = ldg_store_txn_begin(w->ledger->store, true, &txn);
    if (w->rv != 0)
        return;
    w->rv = ldg_integrity_check(w->ledger, txn, w->org, w->vault, &w->opts, &w->rep);
    ldg_store_txn_abort(txn);
}

static void integrity_done(uv_work_t *req, int status)
{
    struct integrity_work *w = LDG_CONTAINER_OF(req, struct integrity_work, req);
    struct ldg_grpc_call *call = w->call;
    w->ctx->pending_work--;
    if (status != 0) {
        ldg_metrics_inc(integrity_metric(), (const char *[]){"error"}, 1);
        ldg_grpc_call_fail(call, LDG_GRPC_CANCELLED, "integrity check canceled");
    } else if (w->rv == LDG_ECANCELED) {
        ldg_grpc_call_fail(call, LDG_GRPC_UNAVAILABLE,
                           "integrity check interrupted: the node is shutting down; run it "
                           "again on a running node");
    } else if (w->rv == LDG_ENOTFOUND) {
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND,
                           "vault %" PRIu64 " of organization %" PRIu64 " not found", w->vault,
                           w->org);
    } else if (w->rv != 0) {
        ldg_metrics_inc(integrity_metric(), (const char *[]){"error"}, 1);
        ldg_rpc_fail_storage(call, w->rv, "integrity check");
    } else {
        if (!w->opts.full)
            sample_save(w->org, w->vault, w->rep.next_sample_start);
        bool healthy = w->rep.count == 0;
        ldg_metrics_inc(integrity_metric(), (const char *[]){healthy ? "healthy" : "unhealthy"},
                        1);
        if (!healthy)
            LDG_LOG(LDG_LOG_WARN, "integrity",
                    "chain %" PRIu64 "/%" PRIu64 " failed the %s check: %zu issue(s), first: %s "
                    "at height %" PRIu64 " (%s)",
                    w->org, w->vault, w->opts.full ? "full" : "quick", w->rep.count,
                    ldg_issue_type_name(w->rep.issues[0].type), w->rep.issues[0].height,
                    w->rep.issues[0].description);
        struct ldg_arena a;
        ldg_arena_init(&a);
        Ledger__V1__CheckIntegrityResponse resp;
        ledger__v1__check_integrity_response__init(&resp);
        resp.healthy = healthy;
        resp.blocks_checked = w->rep.blocks_checked;
        resp.n_issues = w->rep.count;
        resp.issues = ldg_arena_alloc(&a, (w->rep.count + 1) * sizeof *resp.issues);
        for (size_t i = 0; i < w->rep.count; i++) {
            Ledger__V1__IntegrityIssue *m = ldg_arena_alloc(&a, sizeof *m);
            ledger__v1__integrity_issue__init(m);
            m->block_height = w->rep.issues[i].height;
            m->issue_type = (char *)ldg_issue_type_name(w->rep.issues[i].type);
            m->description = w->rep.issues[i].description;
            resp.issues[i] = m;
        }
        ldg_grpc_call_reply(call, &resp.base);
        ldg_arena_free(&a);
    }
    ldg_integrity_report_free(&w->rep);
    ldg_free(w->scratch_dir);
    ldg_free(w);
}

static void check_integrity(struct ldg_grpc_call *call, const ProtobufCMessage *reqm, void *ud)
{
    const Ledger__V1__CheckIntegrityRequest *req =
        (const Ledger__V1__CheckIntegrityRequest *)reqm;
    struct ldg_rpc_ctx *ctx = ud;
    char msg[256];
    uint64_t org, vault;
    if (ldg_rpc_check_chain(req->organization_slug, req->vault, &org, &vault, msg,
                            sizeof msg) != 0) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT, "%s", msg);
        return;
    }
    struct ldg_rpc_read r;
    if (ldg_rpc_txn_begin(call, ctx, &r) != 0)
        return;
    int rv = ldg_ledger_get_chain(r.ledger, r.txn, org, vault, &r.chain);
    ldg_rpc_read_end(&r);
    if (rv == LDG_ENOTFOUND) {
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND,
                           "vault %" PRIu64 " of organization %" PRIu64 " not found", vault, org);
        return;
    }
    if (rv != 0) {
        ldg_rpc_fail_storage(call, rv, "read vault");
        return;
    }
    struct integrity_work *w = ldg_calloc(1, sizeof *w);
    w->call = call;
    w->ledger = r.ledger;
    w->org = org;
    w->vault = vault;
    w->opts.full = req->full_check;
    w->opts.sample_start = sample_start(org, vault);
    const char *tmp = getenv("TMPDIR");
    w->scratch_dir = ldg_strdup(tmp && tmp[0] ? tmp : "/tmp");
    w->opts.scratch_dir = w->scratch_dir;
    w->opts.cancel = &ctx->stop_work;
    w->ctx = ctx;
    rv = uv_queue_work(ctx->loop, &w->req, integrity_run, integrity_done);
    if (rv == 0)
        ctx->pending_work++;
    if (rv != 0) {
        ldg_free(w->scratch_dir);
        ldg_free(w);
        ldg_grpc_call_fail(call, LDG_GRPC_INTERNAL, "could not queue the check: %s",
                           uv_strerror(rv));
    }
}

/* ---- CreateSnapshot ---- */

#define SNAP_MAGIC "LDGSNAP1"
#define SNAP_VERSION 1
#define SNAP_VAULT_LEN (8 + 8 + 8 + LDG_HASH_LEN + LDG_HASH_LEN)

struct snapshot_work {
    uv_work_t req;
    struct ldg_rpc_ctx *ctx;    /* pending_work counts this job */
    struct ldg_grpc_call *call;
    struct ldg_ledger *ledger;
    char *dir;                  /* owned: DATA/snapshots */
    uint64_t org, vault;
    /* results */
    int rv;
    char err[256];
    char *path;                 /* owned: final file */
    uint64_t height;
    uint8_t state_root[LDG_HASH_LEN];
    int64_t created_s;
};

struct vault_list {
    struct ldg_buf *b;
    uint32_t n;
};

static int vault_entry_cb(const struct ldg_chain_info *c, void *arg)
{
    struct vault_list *vl = arg;
    ldg_buf_u64be(vl->b, c->org);
    ldg_buf_u64be(vl->b, c->vault);
    ldg_buf_u64be(vl->b, c->height);
    ldg_buf_append(vl->b, c->state_root, LDG_HASH_LEN);
    ldg_buf_append(vl->b, c->tip_hash, LDG_HASH_LEN);
    vl->n++;
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return ldg_err_from_errno(errno);
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Build header + body in memory (from one read txn), then write the file. */
static int snapshot_build(struct snapshot_work *w, struct ldg_buf *head, struct ldg_buf *body)
{
    MDB_txn *txn = NULL;
    struct ldg_buf dump, vaults;
    ldg_buf_init(&dump);
    ldg_buf_init(&vaults);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    w->created_s = now.tv_sec;
    int rv = ldg_store_txn_begin(w->ledger->store, true, &txn);
    if (rv != 0)
        goto out;
    struct ldg_chain_info ci;
    rv = ldg_ledger_get_chain(w->ledger, txn, w->org, w->vault, &ci);
    if (rv != 0)
        goto out;
    w->height = ci.height;
    memcpy(w->state_root, ci.state_root, LDG_HASH_LEN);
    struct ldg_applied ap;
    rv = ldg_ledger_applied(w->ledger, txn, &ap);
    if (rv != 0)
        goto out;
    struct vault_list vl = {&vaults, 0};
    rv = ldg_ledger_list_vaults(w->ledger, txn, 0, 0, 0, false, 0, vault_entry_cb, &vl);
    if (rv != 0)
        goto out;
    rv = ldg_store_dump(w->ledger->store, txn, &dump);
    ldg_store_txn_abort(txn);
    txn = NULL;
    if (rv != 0)
        goto out;

    size_t cap = ZSTD_compressBound(dump.len);
    ldg_buf_reserve(body, cap);
    size_t z = ZSTD_compress(body->data, cap, dump.data, dump.len, 3);
    if (ZSTD_isError(z)) {
        snprintf(w->err, sizeof w->err, "zstd: %s", ZSTD_getErrorName(z));
        rv = LDG_EINTERNAL;
        goto out;
    }
    body->len = z;
    uint8_t body_hash[LDG_HASH_LEN];
    ldg_sha256(body->data, body->len, body_hash);

    ldg_buf_append(head, SNAP_MAGIC, 8);
    ldg_buf_u32be(head, SNAP_VERSION);
    size_t fields = 12 + 24 + 4 + vaults.len + 8 + LDG_HASH_LEN;
    ldg_buf_u32be(head, (uint32_t)fields);
    ldg_buf_u64be(head, (uint64_t)now.tv_sec);
    ldg_buf_u32be(head, (uint32_t)now.tv_nsec);
    ldg_buf_u64be(head, ap.log_id);
    ldg_buf_u64be(head, ap.index);
    ldg_buf_u64be(head, ap.term);
    ldg_buf_u32be(head, vl.n);
    ldg_buf_append(head, vaults.data, vaults.len);
    ldg_buf_u64be(head, body->len);
    ldg_buf_append(head, body_hash, LDG_HASH_LEN);
    uint8_t head_hash[LDG_HASH_LEN];
    ldg_sha256(head->data, head->len, head_hash);
    ldg_buf_append(head, head_hash, LDG_HASH_LEN);

    char name[96];
    snprintf(name, sizeof name, "snapshot-%020" PRIu64 "-%lld.ldgsnap", ap.index,
             (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    size_t plen = strlen(w->dir) + 1 + strlen(name) + 1;
    w->path = ldg_malloc(plen);
    snprintf(w->path, plen, "%s/%s", w->dir, name);
out:
    ldg_store_txn_abort(txn);
    ldg_buf_close(&dump);
    ldg_buf_close(&vaults);
    return rv;
}

static int snapshot_write(struct snapshot_work *w, const struct ldg_buf *head,
                          const struct ldg_buf *body)
{
    if (mkdir(w->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(w->err, sizeof w->err, "mkdir %s: %s", w->dir, strerror(errno));
        return ldg_err_from_errno(errno);
    }
    size_t tlen = strlen(w->dir) + 32;
    char *tmp = ldg_malloc(tlen);
    snprintf(tmp, tlen, "%s/.snapshot-XXXXXX.tmp", w->dir);
    int rv = 0;
    int fd = mkstemps(tmp, 4);
    if (fd < 0) {
        snprintf(w->err, sizeof w->err, "create %s: %s", tmp, strerror(errno));
        rv = ldg_err_from_errno(errno);
        goto out;
    }
    if (fchmod(fd, 0600) != 0 || (rv = write_all(fd, head->data, head->len)) != 0 ||
        (rv = write_all(fd, body->data, body->len)) != 0 || fsync(fd) != 0) {
        int e = errno;
        snprintf(w->err, sizeof w->err, "write %s: %s", tmp, strerror(e));
        if (rv == 0)
            rv = ldg_err_from_errno(e);
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) != 0 || rename(tmp, w->path) != 0) {
        int e = errno;
        snprintf(w->err, sizeof w->err, "rename to %s: %s", w->path, strerror(e));
        unlink(tmp);
        rv = ldg_err_from_errno(e);
        goto out;
    }
    int dfd = open(w->dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
out:
    ldg_free(tmp);
    return rv;
}

static void snapshot_run(uv_work_t *req)
{
    struct snapshot_work *w = LDG_CONTAINER_OF(req, struct snapshot_work, req);
    struct ldg_buf head, body;
    ldg_buf_init(&head);
    ldg_buf_init(&body);
    w->rv = snapshot_build(w, &head, &body);
    if (w->rv == 0)
        w->rv = snapshot_write(w, &head, &body);
    ldg_buf_close(&head);
    ldg_buf_close(&body);
}

static void snapshot_done(uv_work_t *req, int status)
{
    struct snapshot_work *w = LDG_CONTAINER_OF(req, struct snapshot_work, req);
    struct ldg_grpc_call *call = w->call;
    w->ctx->pending_work--;
    if (status != 0) {
        ldg_grpc_call_fail(call, LDG_GRPC_CANCELLED, "snapshot canceled");
    } else if (w->rv == LDG_ENOTFOUND) {
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND,
                           "vault %" PRIu64 " of organization %" PRIu64 " not found", w->vault,
                           w->org);
    } else if (w->rv != 0) {
        LDG_LOG(LDG_LOG_ERROR, "snapshot", "CreateSnapshot failed: %s (%s)", ldg_strerror(w->rv),
                w->err);
        ldg_grpc_call_fail(call, ldg_grpc_code_from_err(w->rv), "snapshot failed: %s%s%s",
                           ldg_strerror(w->rv), w->err[0] ? ": " : "", w->err);
    } else {
        ldg_metrics_inc(ldg_metrics_counter("ledger_snapshots_created_total",
                                            "Snapshot files written by CreateSnapshot", 0, NULL),
                        NULL, 1);
        ldg_metrics_set(ldg_metrics_gauge("ledger_snapshot_last_created_timestamp_seconds",
                                          "Unix time of the last CreateSnapshot file", 0, NULL),
                        NULL, (double)w->created_s);
        LDG_LOG(LDG_LOG_INFO, "snapshot", "snapshot written path=%s", w->path);
        struct ldg_arena a;
        ldg_arena_init(&a);
        Ledger__V1__CreateSnapshotResponse resp;
        ledger__v1__create_snapshot_response__init(&resp);
        resp.optional_block_height_case =
            LEDGER__V1__CREATE_SNAPSHOT_RESPONSE__OPTIONAL_BLOCK_HEIGHT_BLOCK_HEIGHT;
        resp.block_height = w->height;
        resp.state_root = ldg_rpc_hash(&a, w->state_root);
        resp.snapshot_path = w->path;
        ldg_grpc_call_reply(call, &resp.base);
        ldg_arena_free(&a);
    }
    ldg_free(w->path);
    ldg_free(w->dir);
    ldg_free(w);
}

static void create_snapshot(struct ldg_grpc_call *call, const ProtobufCMessage *reqm, void *ud)
{
    const Ledger__V1__CreateSnapshotRequest *req =
        (const Ledger__V1__CreateSnapshotRequest *)reqm;
    struct ldg_rpc_ctx *ctx = ud;
    char msg[256];
    uint64_t org, vault;
    if (ldg_rpc_check_chain(req->organization_slug, req->vault, &org, &vault, msg,
                            sizeof msg) != 0) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT, "%s", msg);
        return;
    }
    if (ctx->data_path == NULL) {
        ldg_grpc_call_fail(call, LDG_GRPC_FAILED_PRECONDITION,
                           "this node has no data directory to write snapshots to");
        return;
    }
    struct ldg_rpc_read r;
    if (ldg_rpc_txn_begin(call, ctx, &r) != 0)
        return;
    int rv = ldg_ledger_get_chain(r.ledger, r.txn, org, vault, &r.chain);
    ldg_rpc_read_end(&r);
    if (rv == LDG_ENOTFOUND) {
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND,
                           "vault %" PRIu64 " of organization %" PRIu64 " not found", vault, org);
        return;
    }
    if (rv != 0) {
        ldg_rpc_fail_storage(call, rv, "read vault");
        return;
    }
    struct snapshot_work *w = ldg_calloc(1, sizeof *w);
    w->call = call;
    w->ledger = r.ledger;
    w->org = org;
    w->vault = vault;
    size_t n = strlen(ctx->data_path) + sizeof "/snapshots";
    w->dir = ldg_malloc(n);
    snprintf(w->dir, n, "%s/snapshots", ctx->data_path);
    w->ctx = ctx;
    rv = uv_queue_work(ctx->loop, &w->req, snapshot_run, snapshot_done);
    if (rv == 0)
        ctx->pending_work++;
    if (rv != 0) {
        ldg_free(w->dir);
        ldg_free(w);
        ldg_grpc_call_fail(call, LDG_GRPC_INTERNAL, "could not queue the snapshot: %s",
                           uv_strerror(rv));
    }
}

const struct ldg_rpc_impl ldg_rpc_admin_integrity_impls[] = {
    {"ledger.v1.AdminService", "CheckIntegrity", LDG_GRPC_UNARY, check_integrity},
    {"ledger.v1.AdminService", "CreateSnapshot", LDG_GRPC_UNARY, create_snapshot},
    {NULL, NULL, 0, NULL},
};
