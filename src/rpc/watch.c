/* WatchBlocks: see watch.h.
 *
 * Happy path: validate, check the chain, subscribe (ldg_cluster_watch),
 * then pump history next..tip from a read txn, 256 blocks per loop turn
 * (uv timer with 0 timeout between slices). Once next > tip the stream is
 * live: each applied block of this chain with height == next is sent from
 * the watch callback. A gap (height > next) falls back to the pump.
 *
 * Failure modes: queue full while live -> RESOURCE_EXHAUSTED "resume from
 * N"; queue full for 30 s during history -> the same; chain deleted ->
 * NOT_FOUND; client cancel -> CANCELLED. Every end goes through
 * watch_end, which stops the timer and unsubscribes in the timer's close
 * callback (never from inside the cluster's own callback). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "cluster/cluster.h"
#include "ledger/v1/ledger.pb-c.h"
#include "rpc/common.h"
#include "rpc/convert.h"
#include "rpc/validate.h"
#include "rpc/watch.h"
#include "util/mem.h"

#define SLICE 256
#define RETRY_MS 20
#define STALL_MAX_MS 30000

struct watch {
    struct ldg_grpc_call *call;
    struct ldg_rpc_ctx *ctx;
    uint64_t org, vault;
    uint64_t next;                 /* next height to announce */
    struct ldg_cluster_watch *sub; /* NULL once unsubscribed */
    uv_timer_t timer;
    bool live;
    bool ended;
    uint64_t stall_since_ms;       /* 0: not stalled */
};

static void watch_pump(struct watch *w);

static void timer_close_cb(uv_handle_t *h)
{
    struct watch *w = LDG_CONTAINER_OF(h, struct watch, timer);
    if (w->sub)
        ldg_cluster_unwatch(w->ctx->cluster, w->sub);
    ldg_free(w);
}

static void watch_end(struct watch *w, int code, const char *msg)
{
    if (w->ended)
        return;
    w->ended = true;
    uv_timer_stop(&w->timer);
    ldg_grpc_call_finish(w->call, code, msg);
    uv_close((uv_handle_t *)&w->timer, timer_close_cb);
}

static void cancel_cb(struct ldg_grpc_call *call, void *arg)
{
    watch_end(arg, LDG_GRPC_CANCELLED, "cancelled by the client");
}

static void too_slow(struct watch *w)
{
    char msg[256];
    snprintf(msg, sizeof msg,
             "subscriber too slow: send queue full; resume WatchBlocks with start_height "
             "%" PRIu64, w->next);
    watch_end(w, LDG_GRPC_RESOURCE_EXHAUSTED, msg);
}

/* Send one announcement. Returns 0, LDG_EFULL or LDG_ECLOSED. */
static int announce(struct watch *w, const struct ldg_block_header *h,
                    const uint8_t hash[LDG_HASH_LEN])
{
    struct ldg_arena a;
    ldg_arena_init(&a);
    Ledger__V1__BlockAnnouncement m;
    ledger__v1__block_announcement__init(&m);
    m.organization_slug = ldg_rpc_org_slug(&a, w->org);
    m.vault = ldg_rpc_vault_slug(&a, w->vault);
    m.optional_height_case = LEDGER__V1__BLOCK_ANNOUNCEMENT__OPTIONAL_HEIGHT_HEIGHT;
    m.height = h->height;
    m.block_hash = ldg_rpc_hash(&a, hash);
    m.state_root = ldg_rpc_hash(&a, h->state_root);
    m.timestamp = ldg_rpc_timestamp(&a, h->timestamp_seconds, h->timestamp_nanos);
    int rv = ldg_grpc_call_send(w->call, &m.base);
    ldg_arena_free(&a);
    return rv;
}

static void timer_cb(uv_timer_t *t)
{
    watch_pump(LDG_CONTAINER_OF(t, struct watch, timer));
}

static void block_cb(void *arg, const struct ldg_block_made *b)
{
    struct watch *w = arg;
    if (w->ended || !w->live)
        return; /* the pump reads it from the store */
    if (b->header.organization_slug != w->org || b->header.vault_slug != w->vault)
        return;
    if (b->header.height < w->next)
        return;
    if (b->header.height > w->next) {
        w->live = false;
        uv_timer_start(&w->timer, timer_cb, 0, 0);
        return;
    }
    int rv = announce(w, &b->header, b->block_hash);
    if (rv == LDG_EFULL)
        too_slow(w);
    else if (rv == 0)
        w->next++;
    /* LDG_ECLOSED: the cancel callback ends the stream. */
}

static void watch_pump(struct watch *w)
{
    if (w->ended)
        return;
    struct ldg_rpc_read r;
    memset(&r, 0, sizeof r);
    r.ledger = ldg_cluster_ledger(w->ctx->cluster);
    int rv = ldg_store_txn_begin(r.ledger->store, true, &r.txn);
    if (rv != 0) {
        watch_end(w, LDG_GRPC_INTERNAL, "storage error reading blocks; see the server log");
        return;
    }
    rv = ldg_ledger_get_chain(r.ledger, r.txn, w->org, w->vault, &r.chain);
    if (rv != 0 || r.chain.status == LDG_STATUS_DELETED) {
        ldg_rpc_read_end(&r);
        watch_end(w, rv == 0 || rv == LDG_ENOTFOUND ? LDG_GRPC_NOT_FOUND : LDG_GRPC_INTERNAL,
                  "the watched chain no longer exists (deleted)");
        return;
    }
    uint64_t tip = r.chain.height;
    for (int i = 0; i < SLICE && w->next <= tip; i++) {
        struct ldg_block_header h;
        uint8_t hash[LDG_HASH_LEN];
        uint64_t leader;
        rv = ldg_ledger_get_header(r.ledger, r.txn, w->org, w->vault, w->next, &h, &leader, hash);
        if (rv != 0) {
            ldg_rpc_read_end(&r);
            watch_end(w, LDG_GRPC_INTERNAL, "storage error reading a block header");
            return;
        }
        rv = announce(w, &h, hash);
        if (rv == LDG_ECLOSED) {
            ldg_rpc_read_end(&r);
            return; /* cancel pending */
        }
        if (rv == LDG_EFULL) {
            ldg_rpc_read_end(&r);
            uint64_t now = uv_now(w->timer.loop);
            if (w->stall_since_ms == 0)
                w->stall_since_ms = now ? now : 1;
            if (now - w->stall_since_ms >= STALL_MAX_MS)
                too_slow(w);
            else
                uv_timer_start(&w->timer, timer_cb, RETRY_MS, 0);
            return;
        }
        w->stall_since_ms = 0;
        w->next++;
    }
    ldg_rpc_read_end(&r);
    if (w->next > tip)
        w->live = true;
    else
        uv_timer_start(&w->timer, timer_cb, 0, 0);
}

void ldg_rpc_watch_blocks(struct ldg_grpc_call *call, const ProtobufCMessage *reqm, void *ud)
{
    struct ldg_rpc_ctx *ctx = ud;
    const Ledger__V1__WatchBlocksRequest *req = (const Ledger__V1__WatchBlocksRequest *)reqm;
    char msg[256];
    uint64_t org, vault;
    if (ldg_rpc_check_chain(req->organization_slug, req->vault, &org, &vault, msg,
                            sizeof msg) != 0) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT, "%s", msg);
        return;
    }
    struct ldg_rpc_read r;
    if (ldg_rpc_chain_begin(call, ctx, org, vault, LDG_RPC_READ, &r) != 0)
        return;
    ldg_rpc_read_end(&r);
    if (ctx->loop == NULL) {
        ldg_grpc_call_fail(call, LDG_GRPC_UNAVAILABLE, "WatchBlocks is not available yet");
        return;
    }
    struct watch *w = ldg_calloc(1, sizeof *w);
    w->call = call;
    w->ctx = ctx;
    w->org = org;
    w->vault = vault;
    w->next = req->start_height;
    int rv = ldg_cluster_watch(ctx->cluster, block_cb, w, &w->sub);
    if (rv != 0) {
        ldg_free(w);
        ldg_rpc_fail_cluster(call, ctx, rv, "WatchBlocks");
        return;
    }
    uv_timer_init(ctx->loop, &w->timer);
    ldg_grpc_call_on_cancel(call, cancel_cb, w);
    watch_pump(w);
}
