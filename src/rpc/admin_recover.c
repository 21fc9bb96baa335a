/* ledger.v1.AdminService: SimulateDivergence and RecoverVault (SPEC §6).
 *
 * Both act on this node's copy of one chain only, through the node-local
 * marker of ledger/local_health.h (never through Raft).
 *
 * SimulateDivergence (only with --allow-fault-injection) marks the copy
 * DIVERGED exactly as a detected mismatch would: marker written, counter
 * ledger_determinism_bug_total{organization,vault} incremented, height and
 * both roots logged.
 *
 * RecoverVault sets RECOVERING, runs the full integrity check (replay from
 * genesis into scratch state, ledger/integrity.h) on the libuv thread pool,
 * and in the after-work callback (loop thread) either clears the marker
 * (every block replays to its stored header: ACTIVE) or puts DIVERGED back
 * and answers success=false telling the operator to resync this node.
 *
 * Threads: handlers and after-work callbacks run on the loop thread; the
 * worker only opens its own read txn. The in-flight list is loop-thread only. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "cluster/cluster.h"
#include "crypto/sha256.h"
#include "ledger/integrity.h"
#include "ledger/local_health.h"
#include "ledger/v1/ledger.pb-c.h"
#include "node/config.h"
#include "rpc/common.h"
#include "rpc/convert.h"
#include "rpc/rpc.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/metrics.h"

/* ---- metrics ---- */

static struct ldg_metric_family *determinism_metric(void)
{
    static const char *const lbl[] = {"organization", "vault"};
    return ldg_metrics_counter("ledger_determinism_bug_total",
                               "Chains whose copy on this node was found to differ from the "
                               "cluster (marked DIVERGED here), by organization and vault",
                               2, lbl);
}

static struct ldg_metric_family *attempts_metric(void)
{
    return ldg_metrics_counter("ledger_vault_recovery_attempts_total",
                               "Vault recoveries started on this node (RecoverVault)", 0, NULL);
}

static struct ldg_metric_family *failures_metric(void)
{
    return ldg_metrics_counter("ledger_vault_recovery_failures_total",
                               "Vault recoveries on this node that left the vault DIVERGED", 0,
                               NULL);
}

static struct ldg_metric_family *vaults_metric(void)
{
    static const char *const lbl[] = {"status"};
    return ldg_metrics_gauge("ledger_vaults",
                             "Vaults by their status on this node (the node-local divergence "
                             "marker included)",
                             1, lbl);
}

static const char *status_label(int st)
{
    switch (st) {
    case LDG_STATUS_ACTIVE: return "active";
    case LDG_STATUS_READ_ONLY: return "read_only";
    case LDG_STATUS_DIVERGED: return "diverged";
    case LDG_STATUS_RECOVERING: return "recovering";
    case LDG_STATUS_DELETED: return "deleted";
    default: return NULL;
    }
}

struct vault_count {
    struct ldg_ledger *ledger;
    MDB_txn *txn;
    double n[LDG_STATUS_DELETED + 1];
};

static int count_vault_cb(const struct ldg_chain_info *c, void *arg)
{
    struct vault_count *vc = arg;
    struct ldg_chain_info eff = *c;
    int rv = ldg_local_health_apply(vc->ledger->store, vc->txn, &eff);
    if (rv != 0)
        return rv;
    if (eff.status >= LDG_STATUS_ACTIVE && eff.status <= LDG_STATUS_DELETED)
        vc->n[eff.status]++;
    return 0;
}

/* Collector: ledger_vaults{status} from one read txn at each scrape. */
static void vaults_collect(void *arg)
{
    struct ldg_rpc_ctx *ctx = arg;
    struct vault_count vc;
    memset(&vc, 0, sizeof vc);
    if (ctx->cluster != NULL) {
        vc.ledger = ldg_cluster_ledger(ctx->cluster);
        if (vc.ledger != NULL && ldg_store_txn_begin(vc.ledger->store, true, &vc.txn) == 0) {
            int rv = ldg_ledger_list_vaults(vc.ledger, vc.txn, 0, 0, 0, true, 0,
                                            count_vault_cb, &vc);
            ldg_store_txn_abort(vc.txn);
            if (rv != 0) {
                LDG_LOG(LDG_LOG_WARN, "metrics", "ledger_vaults not refreshed: %s",
                        ldg_strerror(rv));
                return;
            }
        }
    }
    struct ldg_metric_family *f = vaults_metric();
    for (int st = LDG_STATUS_ACTIVE; st <= LDG_STATUS_DELETED; st++)
        ldg_metrics_set(f, (const char *[]){status_label(st)}, vc.n[st]);
}

void ldg_rpc_divergence_init(struct ldg_rpc_ctx *ctx)
{
    determinism_metric();
    attempts_metric();
    failures_metric();
    vaults_metric();
    ldg_metrics_add_collector(vaults_collect, ctx);
}

void ldg_rpc_divergence_close(struct ldg_rpc_ctx *ctx)
{
    ldg_metrics_remove_collector(vaults_collect, ctx);
}

/* ---- marker writes (loop thread, short write txns) ---- */

struct marker_op {
    struct ldg_store *s;
    uint64_t org, vault;
    const struct ldg_local_health *h; /* NULL: clear */
};

static int marker_txn(MDB_txn *txn, void *arg)
{
    struct marker_op *op = arg;
    if (op->h == NULL)
        return ldg_local_health_clear(op->s, txn, op->org, op->vault);
    return ldg_local_health_put(op->s, txn, op->org, op->vault, op->h);
}

static int marker_write(struct ldg_ledger *l, uint64_t org, uint64_t vault,
                        const struct ldg_local_health *h)
{
    struct marker_op op = {l->store, org, vault, h};
    return ldg_store_write(l->store, marker_txn, &op);
}

static int64_t now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

/* ---- in-flight recoveries (loop thread only) ---- */

struct recover_work {
    uv_work_t req;
    struct recover_work *next;  /* in-flight list */
    struct ldg_rpc_ctx *ctx;    /* pending_work counts this job */
    struct ldg_grpc_call *call;
    struct ldg_ledger *ledger;  /* borrowed from the cluster */
    uint64_t org, vault;
    bool had_marker;            /* the chain was DIVERGED before the call */
    struct ldg_local_health mark; /* the marker as written at start (RECOVERING) */
    struct ldg_integrity_opts opts;
    char *scratch_dir;          /* owned (opts.scratch_dir points here) */
    /* worker results */
    int rv;
    struct ldg_integrity_report rep;
    struct ldg_chain_info chain; /* as of the check's txn (byte fields unused) */
};

static struct recover_work *inflight;

static bool recovery_running(uint64_t org, uint64_t vault)
{
    for (struct recover_work *w = inflight; w; w = w->next)
        if (w->org == org && w->vault == vault)
            return true;
    return false;
}

static void inflight_remove(struct recover_work *w)
{
    for (struct recover_work **p = &inflight; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            return;
        }
}

/* ---- SimulateDivergence ---- */

static void simulate_divergence(struct ldg_grpc_call *call, const ProtobufCMessage *reqm,
                                void *ud)
{
    const Ledger__V1__SimulateDivergenceRequest *req =
        (const Ledger__V1__SimulateDivergenceRequest *)reqm;
    struct ldg_rpc_ctx *ctx = ud;
    if (ctx->cfg == NULL || !ctx->cfg->allow_fault_injection) {
        ldg_grpc_call_fail(call, LDG_GRPC_FAILED_PRECONDITION,
                           "SimulateDivergence is a fault-injection hook and is disabled: start "
                           "the server with --allow-fault-injection "
                           "(INFERADB__LEDGER__ALLOW_FAULT_INJECTION=true) to use it");
        return;
    }
    struct ldg_rpc_read r;
    if (ldg_rpc_open_chain(call, ctx, req->organization_slug, req->vault, LDG_RPC_INSPECT,
                           &r) != 0)
        return;
    uint64_t org = r.chain.org, vault = r.chain.vault;
    if (r.chain.status == LDG_STATUS_DELETED) {
        ldg_rpc_read_end(&r);
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND,
                           "vault %" PRIu64 " of organization %" PRIu64 " not found (deleted)",
                           vault, org);
        return;
    }
    if (recovery_running(org, vault)) {
        ldg_rpc_read_end(&r);
        ldg_grpc_call_fail(call, LDG_GRPC_FAILED_PRECONDITION,
                           "a RecoverVault of vault %" PRIu64 " of organization %" PRIu64
                           " is running on this node; retry when it has finished",
                           vault, org);
        return;
    }
    struct ldg_local_health h;
    int rv = ldg_local_health_get(r.ledger->store, r.txn, org, vault, &h);
    if (rv == LDG_ENOTFOUND) {
        memset(&h, 0, sizeof h);
        h.since_seconds = now_seconds();
        rv = 0;
    }
    if (rv != 0) {
        ldg_rpc_read_end(&r);
        ldg_rpc_fail_storage(call, rv, "read this node's chain health");
        return;
    }
    h.status = LDG_STATUS_DIVERGED;
    h.diverged_height = r.chain.height;
    memcpy(h.expected_root, r.chain.state_root, LDG_HASH_LEN);
    /* What a buggy replay would have produced: any root but the right one. */
    struct ldg_buf b;
    ldg_buf_init(&b);
    ldg_buf_append(&b, "simulated divergence", 20);
    ldg_buf_append(&b, r.chain.state_root, LDG_HASH_LEN);
    ldg_sha256(b.data, b.len, h.computed_root);
    ldg_buf_close(&b);
    struct ldg_ledger *ledger = r.ledger;
    ldg_rpc_read_end(&r);

    rv = marker_write(ledger, org, vault, &h);
    if (rv != 0) {
        ldg_rpc_fail_storage(call, rv, "write this node's chain health");
        return;
    }
    char so[24], sv[24], exp[LDG_HASH_HEX_LEN + 1], got[LDG_HASH_HEX_LEN + 1];
    snprintf(so, sizeof so, "%" PRIu64, org);
    snprintf(sv, sizeof sv, "%" PRIu64, vault);
    ldg_metrics_inc(determinism_metric(), (const char *[]){so, sv}, 1);
    ldg_hash_to_hex(h.expected_root, exp);
    ldg_hash_to_hex(h.computed_root, got);
    LDG_LOG(LDG_LOG_ERROR, "divergence",
            "determinism bug: chain %" PRIu64 "/%" PRIu64 " DIVERGED on this node at height "
            "%" PRIu64 " expected_state_root=%s computed_state_root=%s (simulated by "
            "SimulateDivergence); reads of it are refused here, run RecoverVault",
            org, vault, h.diverged_height, exp, got);

    char msg[256];
    snprintf(msg, sizeof msg,
             "vault %" PRIu64 " of organization %" PRIu64 " marked DIVERGED on this node at "
             "height %" PRIu64 " (other replicas are not affected); run RecoverVault to "
             "rebuild it", vault, org, h.diverged_height);
    Ledger__V1__SimulateDivergenceResponse resp;
    ledger__v1__simulate_divergence_response__init(&resp);
    resp.status = ldg_rpc_vault_status(LDG_STATUS_DIVERGED);
    resp.message = msg;
    ldg_grpc_call_reply(call, &resp.base);
}

/* ---- RecoverVault ---- */

static void recover_reply(struct ldg_grpc_call *call, bool success, const char *msg, int status,
                          uint64_t height, const uint8_t root[LDG_HASH_LEN])
{
    struct ldg_arena a;
    ldg_arena_init(&a);
    Ledger__V1__RecoverVaultResponse resp;
    ledger__v1__recover_vault_response__init(&resp);
    resp.success = success;
    resp.message = (char *)msg;
    resp.status = ldg_rpc_vault_status(status);
    resp.optional_final_height_case =
        LEDGER__V1__RECOVER_VAULT_RESPONSE__OPTIONAL_FINAL_HEIGHT_FINAL_HEIGHT;
    resp.final_height = height;
    resp.final_state_root = ldg_rpc_hash(&a, root);
    ldg_grpc_call_reply(call, &resp.base);
    ldg_arena_free(&a);
}

static void recover_run(uv_work_t *req)
{
    struct recover_work *w = LDG_CONTAINER_OF(req, struct recover_work, req);
    MDB_txn *txn = NULL;
    w->rv = ldg_store_txn_begin(w->ledger->store, true, &txn);
    if (w->rv != 0)
        return;
    w->rv = ldg_ledger_get_chain(w->ledger, txn, w->org, w->vault, &w->chain);
    if (w->rv == 0)
        w->rv = ldg_integrity_check(w->ledger, txn, w->org, w->vault, &w->opts, &w->rep);
    memset(&w->chain.name, 0, sizeof w->chain.name); /* points into the map */
    ldg_store_txn_abort(txn);
}

#define RESYNC_HINT                                                                          \
    "resync this node from a healthy replica: LeaveCluster for this node, stop it, wipe "   \
    "its data directory, start it again with --join (docs/operations.md, \"Data "          \
    "corruption recovery\")"

static void recover_done(uv_work_t *req, int status)
{
    struct recover_work *w = LDG_CONTAINER_OF(req, struct recover_work, req);
    struct ldg_grpc_call *call = w->call;
    w->ctx->pending_work--;
    inflight_remove(w);
    char msg[512];
    int wrv;
    if (status != 0 || w->rv == LDG_ECANCELED) {
        /* Interrupted (shutdown): put back what was there before. */
        struct ldg_local_health back = w->mark;
        back.status = LDG_STATUS_DIVERGED;
        wrv = marker_write(w->ledger, w->org, w->vault, w->had_marker ? &back : NULL);
        if (wrv != 0)
            LDG_LOG(LDG_LOG_ERROR, "divergence", "chain %" PRIu64 "/%" PRIu64 ": could not "
                    "restore the health marker: %s", w->org, w->vault, ldg_strerror(wrv));
        ldg_grpc_call_fail(call, LDG_GRPC_UNAVAILABLE,
                           "recovery interrupted: the node is shutting down; run RecoverVault "
                           "again on the running node");
        goto out;
    }
    if (w->rv == 0 && w->rep.count == 0) {
        wrv = marker_write(w->ledger, w->org, w->vault, NULL);
        if (wrv != 0) {
            ldg_rpc_fail_storage(call, wrv, "clear this node's chain health");
            goto out;
        }
        char root[LDG_HASH_HEX_LEN + 1];
        ldg_hash_to_hex(w->chain.state_root, root);
        LDG_LOG(LDG_LOG_INFO, "divergence",
                "chain %" PRIu64 "/%" PRIu64 " recovered on this node: %" PRIu64 " block(s) "
                "replayed from genesis match the stored headers; height=%" PRIu64
                " state_root=%s", w->org, w->vault, w->rep.blocks_checked, w->chain.height,
                root);
        snprintf(msg, sizeof msg,
                 "vault rebuilt and verified on this node: %" PRIu64 " block(s) replayed from "
                 "genesis match the stored headers; it is %s again",
                 w->rep.blocks_checked,
                 w->chain.status == LDG_STATUS_ACTIVE ? "ACTIVE" : "served");
        recover_reply(call, true, msg, w->chain.status, w->chain.height, w->chain.state_root);
        goto out;
    }
    /* The local data cannot produce the stored roots (or could not be read). */
    ldg_metrics_inc(failures_metric(), NULL, 1);
    struct ldg_local_health h = w->mark;
    h.status = LDG_STATUS_DIVERGED;
    char what[300];
    if (w->rv != 0) {
        snprintf(what, sizeof what, "the rebuild failed: %s", ldg_strerror(w->rv));
    } else {
        const struct ldg_integrity_issue *is = &w->rep.issues[0];
        if (!w->had_marker)
            h.diverged_height = is->height;
        snprintf(what, sizeof what,
                 "the replay from genesis found %zu issue(s), first: %s at height %" PRIu64
                 " (%s)", w->rep.count + w->rep.dropped, ldg_issue_type_name(is->type),
                 is->height, is->description);
    }
    wrv = marker_write(w->ledger, w->org, w->vault, &h);
    if (wrv != 0)
        LDG_LOG(LDG_LOG_ERROR, "divergence", "chain %" PRIu64 "/%" PRIu64 ": could not "
                "write the health marker: %s", w->org, w->vault, ldg_strerror(wrv));
    LDG_LOG(LDG_LOG_ERROR, "divergence",
            "chain %" PRIu64 "/%" PRIu64 " recovery failed on this node, stays DIVERGED: %s",
            w->org, w->vault, what);
    snprintf(msg, sizeof msg,
             "recovery failed, vault stays DIVERGED on this node: %s. This node's data cannot "
             "rebuild it: " RESYNC_HINT, what);
    recover_reply(call, false, msg, LDG_STATUS_DIVERGED, w->chain.height, w->chain.state_root);
out:
    ldg_integrity_report_free(&w->rep);
    ldg_free(w->scratch_dir);
    ldg_free(w);
}

static void recover_vault(struct ldg_grpc_call *call, const ProtobufCMessage *reqm, void *ud)
{
    const Ledger__V1__RecoverVaultRequest *req = (const Ledger__V1__RecoverVaultRequest *)reqm;
    struct ldg_rpc_ctx *ctx = ud;
    struct ldg_rpc_read r;
    if (ldg_rpc_open_chain(call, ctx, req->organization_slug, req->vault, LDG_RPC_INSPECT,
                           &r) != 0)
        return;
    uint64_t org = r.chain.org, vault = r.chain.vault;
    if (r.chain.status == LDG_STATUS_DELETED) {
        ldg_rpc_read_end(&r);
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND,
                           "vault %" PRIu64 " of organization %" PRIu64 " not found (deleted)",
                           vault, org);
        return;
    }
    if (recovery_running(org, vault)) {
        ldg_rpc_read_end(&r);
        ldg_grpc_call_fail(call, LDG_GRPC_FAILED_PRECONDITION,
                           "a recovery of vault %" PRIu64 " of organization %" PRIu64
                           " is already running on this node; wait for its answer", vault, org);
        return;
    }
    struct ldg_local_health h;
    int rv = ldg_local_health_get(r.ledger->store, r.txn, org, vault, &h);
    bool had_marker = rv == 0;
    if (rv != 0 && rv != LDG_ENOTFOUND) {
        ldg_rpc_read_end(&r);
        ldg_rpc_fail_storage(call, rv, "read this node's chain health");
        return;
    }
    if (!had_marker && !req->force) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "nothing to recover: vault %" PRIu64 " of organization %" PRIu64 " is not "
                 "diverged on this node (use force to rebuild and verify it anyway)",
                 vault, org);
        recover_reply(call, true, msg, r.chain.status, r.chain.height, r.chain.state_root);
        ldg_rpc_read_end(&r);
        return;
    }
    struct ldg_ledger *ledger = r.ledger;
    ldg_rpc_read_end(&r);
    if (!had_marker) {
        memset(&h, 0, sizeof h);
        h.since_seconds = now_seconds();
    }
    h.status = LDG_STATUS_RECOVERING;
    h.attempts++;
    rv = marker_write(ledger, org, vault, &h);
    if (rv != 0) {
        ldg_rpc_fail_storage(call, rv, "write this node's chain health");
        return;
    }
    ldg_metrics_inc(attempts_metric(), NULL, 1);
    LDG_LOG(LDG_LOG_INFO, "divergence",
            "chain %" PRIu64 "/%" PRIu64 " RECOVERING on this node (attempt %" PRIu32
            "%s): full replay from genesis", org, vault, h.attempts,
            had_marker ? "" : ", forced on a healthy chain");

    struct recover_work *w = ldg_calloc(1, sizeof *w);
    w->call = call;
    w->ctx = ctx;
    w->ledger = ledger;
    w->org = org;
    w->vault = vault;
    w->had_marker = had_marker;
    w->mark = h;
    w->opts.full = true;
    w->opts.sample_slots = LDG_INTEGRITY_SLOTS;
    const char *tmp = getenv("TMPDIR");
    w->scratch_dir = ldg_strdup(tmp && tmp[0] ? tmp : "/tmp");
    w->opts.scratch_dir = w->scratch_dir;
    w->opts.cancel = &ctx->stop_work;
    rv = uv_queue_work(ctx->loop, &w->req, recover_run, recover_done);
    if (rv != 0) {
        struct ldg_local_health back = h;
        back.status = LDG_STATUS_DIVERGED;
        marker_write(ledger, org, vault, had_marker ? &back : NULL);
        ldg_free(w->scratch_dir);
        ldg_free(w);
        ldg_grpc_call_fail(call, LDG_GRPC_INTERNAL, "could not queue the recovery: %s",
                           uv_strerror(rv));
        return;
    }
    ctx->pending_work++;
    w->next = inflight;
    inflight = w;
}

const struct ldg_rpc_impl ldg_rpc_admin_recover_impls[] = {
    {"ledger.v1.AdminService", "SimulateDivergence", LDG_GRPC_UNARY, simulate_divergence},
    {"ledger.v1.AdminService", "RecoverVault", LDG_GRPC_UNARY, recover_vault},
    {NULL, NULL, 0, NULL},
};
