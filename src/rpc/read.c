/* ledger.v1.ReadService (SPEC §4): point reads, proofs, history, blocks,
 * paged lists, client state. WatchBlocks lives in watch.c.
 *
 * Every read runs in one LMDB read transaction of this node's applied
 * state; LINEARIZABLE first waits on the cluster barrier (leader only).
 * Replies are packed before the transaction ends, so values are sent
 * straight from the map without copies. Entities whose expires_at has
 * passed by this node's clock are hidden (HistoricalRead: by the block's
 * timestamp). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ledger/v1/ledger.pb-c.h"
#include "rpc/common.h"
#include "rpc/convert.h"
#include "rpc/page_token.h"
#include "rpc/validate.h"
#include "rpc/watch.h"
#include "util/buf.h"
#include "util/mem.h"

/* Responses listing values stop adding rows past this many bytes (the
 * gRPC message limit is 4 MiB); the page token continues after them. */
#define LIST_BYTES_SOFT_MAX (3u << 20)

#define INVALID(call, msg) ldg_grpc_call_fail((call), LDG_GRPC_INVALID_ARGUMENT, "%s", (msg))

/* Serve |reqm| with |fn| from this node's state: at once, or after the
 * linearizable barrier when |c| is LINEARIZABLE. */
static void read_at(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx,
                    const ProtobufCMessage *reqm, Ledger__V1__ReadConsistency c,
                    ldg_rpc_read_fn fn)
{
    if (c == LEDGER__V1__READ_CONSISTENCY__READ_CONSISTENCY_LINEARIZABLE)
        ldg_rpc_linearizable(call, ctx, reqm, fn);
    else
        fn(call, reqm, ctx);
}

static bool valid_consistency(Ledger__V1__ReadConsistency c, char *msg, size_t cap)
{
    if (c < 0 || c > LEDGER__V1__READ_CONSISTENCY__READ_CONSISTENCY_LINEARIZABLE) {
        snprintf(msg, cap, "consistency: unknown value %d (EVENTUAL or LINEARIZABLE)", (int)c);
        return false;
    }
    return true;
}

/* ---- Read ---- */

static int read_validate(const Ledger__V1__ReadRequest *req, uint64_t *org, uint64_t *vault,
                         char *msg, size_t cap)
{
    if (ldg_rpc_check_chain(req->organization_slug, req->vault, org, vault, msg, cap) != 0 ||
        ldg_rpc_check_key("key", req->key, msg, cap) != 0 ||
        !valid_consistency(req->consistency, msg, cap))
        return LDG_EINVAL;
    return 0;
}

static void read_do(struct ldg_grpc_call *call, const ProtobufCMessage *reqm,
                    struct ldg_rpc_ctx *ctx)
{
    const Ledger__V1__ReadRequest *req = (const Ledger__V1__ReadRequest *)reqm;
    char msg[256];
    uint64_t org, vault;
    if (read_validate(req, &org, &vault, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return;
    }
    struct ldg_rpc_read r;
    if (ldg_rpc_chain_begin(call, ctx, org, vault, LDG_RPC_READ, &r) != 0)
        return;
    struct ldg_entity e;
    int rv = ldg_ledger_get_entity(r.ledger, r.txn, org, vault, ldg_bytes_str(req->key),
                                   ldg_rpc_now_s(), &e);
    Ledger__V1__ReadResponse resp;
    ledger__v1__read_response__init(&resp);
    resp.block_height = r.chain.height;
    if (rv == 0) {
        resp.optional_value_case = LEDGER__V1__READ_RESPONSE__OPTIONAL_VALUE_VALUE;
        resp.value.data = (uint8_t *)e.value.data;
        resp.value.len = e.value.len;
        resp.found = 1;
        resp.expires_at = e.expires_at;
        resp.version = e.version;
    } else if (rv != LDG_ENOTFOUND) {
        ldg_rpc_fail_storage(call, rv, "read entity");
        ldg_rpc_read_end(&r);
        return;
    }
    ldg_grpc_call_reply(call, &resp.base);
    ldg_rpc_read_end(&r);
}

static void read_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm, void *ud)
{
    const Ledger__V1__ReadRequest *req = (const Ledger__V1__ReadRequest *)reqm;
    char msg[256];
    uint64_t org, vault;
    if (read_validate(req, &org, &vault, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return;
    }
    read_at(call, ud, reqm, req->consistency, read_do);
}

/* ---- BatchRead ---- */

static int batch_validate(const Ledger__V1__BatchReadRequest *req, uint64_t *org,
                          uint64_t *vault, char *msg, size_t cap)
{
    if (ldg_rpc_check_chain(req->organization_slug, req->vault, org, vault, msg, cap) != 0 ||
        !valid_consistency(req->consistency, msg, cap))
        return LDG_EINVAL;
    if (req->n_keys == 0) {
        snprintf(msg, cap, "keys: at least one key required (1..%d)", LDG_RPC_MAX_BATCH_KEYS);
        return LDG_EINVAL;
    }
    if (req->n_keys > LDG_RPC_MAX_BATCH_KEYS) {
        snprintf(msg, cap, "keys: %zu keys, at most %d allowed per BatchRead", req->n_keys,
                 LDG_RPC_MAX_BATCH_KEYS);
        return LDG_EINVAL;
    }
    for (size_t i = 0; i < req->n_keys; i++) {
        char f[32];
        snprintf(f, sizeof f, "keys[%zu]", i);
        if (ldg_rpc_check_key(f, req->keys[i], msg, cap) != 0)
            return LDG_EINVAL;
    }
    return 0;
}

static void batch_do(struct ldg_grpc_call *call, const ProtobufCMessage *reqm,
                     struct ldg_rpc_ctx *ctx)
{
    const Ledger__V1__BatchReadRequest *req = (const Ledger__V1__BatchReadRequest *)reqm;
    char msg[256];
    uint64_t org, vault;
    if (batch_validate(req, &org, &vault, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return;
    }
    struct ldg_rpc_read r;
    if (ldg_rpc_chain_begin(call, ctx, org, vault, LDG_RPC_READ, &r) != 0)
        return;
    int64_t now = ldg_rpc_now_s();
    Ledger__V1__BatchReadResult *results = ldg_calloc(req->n_keys, sizeof *results);
    Ledger__V1__BatchReadResult **ptrs = ldg_calloc(req->n_keys, sizeof *ptrs);
    for (size_t i = 0; i < req->n_keys; i++) {
        Ledger__V1__BatchReadResult *res = &results[i];
        ledger__v1__batch_read_result__init(res);
        ptrs[i] = res;
        res->key = req->keys[i];
        struct ldg_entity e;
        int rv = ldg_ledger_get_entity(r.ledger, r.txn, org, vault, ldg_bytes_str(req->keys[i]),
                                       now, &e);
        if (rv == 0) {
            res->optional_value_case = LEDGER__V1__BATCH_READ_RESULT__OPTIONAL_VALUE_VALUE;
            res->value.data = (uint8_t *)e.value.data;
            res->value.len = e.value.len;
            res->found = 1;
            res->expires_at = e.expires_at;
            res->version = e.version;
        } else if (rv != LDG_ENOTFOUND) {
            ldg_rpc_fail_storage(call, rv, "read entity");
            goto out;
        }
    }
    Ledger__V1__BatchReadResponse resp;
    ledger__v1__batch_read_response__init(&resp);
    resp.n_results = req->n_keys;
    resp.results = ptrs;
    resp.block_height = r.chain.height;
    if (protobuf_c_message_get_packed_size(&resp.base) > LDG_RPC_MAX_RESPONSE_BYTES)
        ldg_grpc_call_fail(call, LDG_GRPC_RESOURCE_EXHAUSTED,
                           "response would exceed %u bytes: read fewer keys per BatchRead",
                           LDG_RPC_MAX_RESPONSE_BYTES);
    else
        ldg_grpc_call_reply(call, &resp.base);
out:
    ldg_rpc_read_end(&r);
    ldg_free(ptrs);
    ldg_free(results);
}

static void batch_read_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm,
                               void *ud)
{
    const Ledger__V1__BatchReadRequest *req = (const Ledger__V1__BatchReadRequest *)reqm;
    char msg[256];
    uint64_t org, vault;
    if (batch_validate(req, &org, &vault, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return;
    }
    read_at(call, ud, reqm, req->consistency, batch_do);
}

/* ---- VerifiedRead ---- */

static int verified_validate(const Ledger__V1__VerifiedReadRequest *req, uint64_t *org,
                             uint64_t *vault, char *msg, size_t cap)
{
    if (ldg_rpc_check_chain(req->organization_slug, req->vault, org, vault, msg, cap) != 0 ||
        ldg_rpc_check_key("key", req->key, msg, cap) != 0 ||
        !valid_consistency(req->consistency, msg, cap))
        return LDG_EINVAL;
    return 0;
}

/* Header of |height| with its leader id and hash, as a message. */
static Ledger__V1__BlockHeader *header_msg(struct ldg_arena *a, struct ldg_rpc_read *r,
                                           uint64_t org, uint64_t vault, uint64_t height,
                                           int *rv)
{
    struct ldg_block_header h;
    uint64_t leader = 0;
    uint8_t hash[LDG_HASH_LEN];
    *rv = ldg_ledger_get_header(r->ledger, r->txn, org, vault, height, &h, &leader, hash);
    if (*rv != 0)
        return NULL;
    return ldg_rpc_header(a, &h, leader, hash);
}

static void verified_do(struct ldg_grpc_call *call, const ProtobufCMessage *reqm,
                        struct ldg_rpc_ctx *ctx)
{
    const Ledger__V1__VerifiedReadRequest *req = (const Ledger__V1__VerifiedReadRequest *)reqm;
    char msg[256];
    uint64_t org, vault;
    if (verified_validate(req, &org, &vault, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return;
    }
    struct ldg_rpc_read r;
    if (ldg_rpc_chain_begin(call, ctx, org, vault, LDG_RPC_READ, &r) != 0)
        return;
    bool want_chain = req->optional_trusted_height_case ==
                      LEDGER__V1__VERIFIED_READ_REQUEST__OPTIONAL_TRUSTED_HEIGHT_TRUSTED_HEIGHT;
    uint64_t tip = r.chain.height;
    if (want_chain && req->trusted_height > tip) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT,
                           "trusted_height: %" PRIu64 " is above the tip %" PRIu64,
                           req->trusted_height, tip);
        ldg_rpc_read_end(&r);
        return;
    }
    if (want_chain && tip - req->trusted_height > LDG_RPC_MAX_CHAIN_PROOF) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT,
                           "trusted_height: %" PRIu64 " is %" PRIu64 " blocks below the tip; a "
                           "chain proof spans at most %d headers (use GetBlockRange to catch up)",
                           req->trusted_height, tip - req->trusted_height,
                           LDG_RPC_MAX_CHAIN_PROOF);
        ldg_rpc_read_end(&r);
        return;
    }

    struct ldg_arena a;
    ldg_arena_init(&a);
    struct ldg_buf lk;
    ldg_buf_init(&lk);
    ldg_leaf_key_entity(&lk, ldg_bytes_str(req->key));
    struct ldg_proof p;
    memset(&p, 0, sizeof p);
    uint8_t roots[LDG_STATE_BUCKETS][LDG_HASH_LEN];
    int rv = ldg_ledger_prove(r.ledger, r.txn, org, vault, ldg_bytes_of(lk.data, lk.len), &p);
    if (rv != 0) {
        ldg_rpc_fail_storage(call, rv, "prove entity");
        goto out_noproof;
    }
    rv = ldg_ledger_bucket_roots(r.ledger, r.txn, org, vault, roots);
    if (rv != 0) {
        ldg_rpc_fail_storage(call, rv, "read bucket roots");
        goto out;
    }

    Ledger__V1__VerifiedReadResponse resp;
    ledger__v1__verified_read_response__init(&resp);
    resp.found = p.found;
    if (p.found) {
        struct ldg_entity e;
        rv = ldg_ledger_get_entity(r.ledger, r.txn, org, vault, ldg_bytes_str(req->key), 0, &e);
        if (rv != 0) {
            ldg_rpc_fail_storage(call, rv, "read entity");
            goto out;
        }
        resp.optional_value_case = LEDGER__V1__VERIFIED_READ_RESPONSE__OPTIONAL_VALUE_VALUE;
        resp.value.data = (uint8_t *)e.value.data;
        resp.value.len = e.value.len;
        resp.leaf = ldg_rpc_leaf(&a, &p.leaf);
    }
    resp.block_header = header_msg(&a, &r, org, vault, p.tip.height, &rv);
    if (resp.block_header == NULL) {
        ldg_rpc_fail_storage(call, rv, "read tip header");
        goto out;
    }
    resp.n_slot_leaves = p.n_others;
    resp.slot_leaves = ldg_arena_alloc(&a, p.n_others * sizeof *resp.slot_leaves);
    for (size_t i = 0; i < p.n_others; i++)
        resp.slot_leaves[i] = ldg_rpc_leaf(&a, &p.others[i]);
    resp.n_bucket_siblings = LDG_BUCKET_DEPTH;
    resp.bucket_siblings = ldg_arena_alloc(&a, LDG_BUCKET_DEPTH * sizeof *resp.bucket_siblings);
    for (size_t i = 0; i < LDG_BUCKET_DEPTH; i++)
        resp.bucket_siblings[i] = ldg_rpc_hash(&a, p.siblings[i]);
    resp.n_bucket_roots = LDG_STATE_BUCKETS;
    resp.bucket_roots = ldg_arena_alloc(&a, LDG_STATE_BUCKETS * sizeof *resp.bucket_roots);
    for (size_t i = 0; i < LDG_STATE_BUCKETS; i++)
        resp.bucket_roots[i] = ldg_rpc_hash(&a, roots[i]);
    resp.bucket_index = p.bucket;
    resp.slot_index = p.slot;
    if (want_chain) {
        Ledger__V1__ChainProof *cp = ldg_arena_alloc(&a, sizeof *cp);
        ledger__v1__chain_proof__init(cp);
        size_t n = (size_t)(p.tip.height - req->trusted_height);
        cp->n_headers = n;
        cp->headers = ldg_arena_alloc(&a, n * sizeof *cp->headers);
        for (size_t i = 0; i < n; i++) {
            cp->headers[i] = header_msg(&a, &r, org, vault, req->trusted_height + 1 + i, &rv);
            if (cp->headers[i] == NULL) {
                ldg_rpc_fail_storage(call, rv, "read chain proof header");
                goto out;
            }
        }
        resp.chain_proof = cp;
    }
    ldg_grpc_call_reply(call, &resp.base);
out:
    ldg_proof_clear(&p);
out_noproof:
    ldg_buf_close(&lk);
    ldg_arena_free(&a);
    ldg_rpc_read_end(&r);
}

static void verified_read_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm,
                                  void *ud)
{
    const Ledger__V1__VerifiedReadRequest *req = (const Ledger__V1__VerifiedReadRequest *)reqm;
    char msg[256];
    uint64_t org, vault;
    if (verified_validate(req, &org, &vault, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return;
    }
    read_at(call, ud, reqm, req->consistency, verified_do);
}

/* ---- HistoricalRead ---- */

static void historical_read_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm,
                                    void *ud)
{
    const Ledger__V1__HistoricalReadRequest *req =
        (const Ledger__V1__HistoricalReadRequest *)reqm;
    char msg[256];
    uint64_t org, vault;
    if (ldg_rpc_check_chain(req->organization_slug, req->vault, &org, &vault, msg,
                            sizeof msg) != 0 ||
        ldg_rpc_check_key("key", req->key, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return;
    }
    struct ldg_rpc_read r;
    if (ldg_rpc_chain_begin(call, ud, org, vault, LDG_RPC_READ, &r) != 0)
        return;
    struct ldg_arena a;
    ldg_arena_init(&a);
    if (req->at_height > r.chain.height) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT,
                           "at_height: %" PRIu64 " is above the tip %" PRIu64, req->at_height,
                           r.chain.height);
        goto out;
    }
    struct ldg_block_header h;
    uint64_t leader = 0;
    uint8_t hash[LDG_HASH_LEN];
    int rv = ldg_ledger_get_header(r.ledger, r.txn, org, vault, req->at_height, &h, &leader,
                                   hash);
    if (rv == LDG_ENOTFOUND) {
        ldg_grpc_call_fail(call, LDG_GRPC_FAILED_PRECONDITION,
                           "block %" PRIu64 " is no longer stored on this node", req->at_height);
        goto out;
    }
    if (rv != 0) {
        ldg_rpc_fail_storage(call, rv, "read header");
        goto out;
    }
    struct ldg_entity e;
    rv = ldg_ledger_get_entity_at(r.ledger, r.txn, org, vault, ldg_bytes_str(req->key),
                                  req->at_height, h.timestamp_seconds, &e);
    Ledger__V1__HistoricalReadResponse resp;
    ledger__v1__historical_read_response__init(&resp);
    resp.block_height = req->at_height;
    resp.block_header = ldg_rpc_header(&a, &h, leader, hash);
    if (rv == 0) {
        resp.optional_value_case = LEDGER__V1__HISTORICAL_READ_RESPONSE__OPTIONAL_VALUE_VALUE;
        resp.value.data = (uint8_t *)e.value.data;
        resp.value.len = e.value.len;
        resp.found = 1;
        resp.expires_at = e.expires_at;
        resp.version = e.version;
    } else if (rv != LDG_ENOTFOUND) {
        ldg_rpc_fail_storage(call, rv, "read entity history");
        goto out;
    }
    ldg_grpc_call_reply(call, &resp.base);
out:
    ldg_arena_free(&a);
    ldg_rpc_read_end(&r);
}

/* ---- GetTip ---- */

static void get_tip_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm, void *ud)
{
    const Ledger__V1__GetTipRequest *req = (const Ledger__V1__GetTipRequest *)reqm;
    struct ldg_rpc_read r;
    if (ldg_rpc_open_chain(call, ud, req->organization_slug, req->vault, LDG_RPC_READ, &r) != 0)
        return;
    struct ldg_arena a;
    ldg_arena_init(&a);
    Ledger__V1__GetTipResponse resp;
    ledger__v1__get_tip_response__init(&resp);
    resp.optional_height_case = LEDGER__V1__GET_TIP_RESPONSE__OPTIONAL_HEIGHT_HEIGHT;
    resp.height = r.chain.height;
    resp.block_hash = ldg_rpc_hash(&a, r.chain.tip_hash);
    resp.state_root = ldg_rpc_hash(&a, r.chain.state_root);
    resp.timestamp = ldg_rpc_timestamp(&a, r.chain.last_seconds, r.chain.last_nanos);
    ldg_grpc_call_reply(call, &resp.base);
    ldg_arena_free(&a);
    ldg_rpc_read_end(&r);
}

/* ---- GetBlock / GetBlockRange ---- */

static void get_block_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm, void *ud)
{
    const Ledger__V1__GetBlockRequest *req = (const Ledger__V1__GetBlockRequest *)reqm;
    struct ldg_rpc_read r;
    if (ldg_rpc_open_chain(call, ud, req->organization_slug, req->vault, LDG_RPC_READ, &r) != 0)
        return;
    uint64_t org = r.chain.org, vault = r.chain.vault;
    if (req->height > r.chain.height) {
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND,
                           "block %" PRIu64 " not found: the tip of this chain is %" PRIu64,
                           req->height, r.chain.height);
        ldg_rpc_read_end(&r);
        return;
    }
    struct ldg_block b;
    memset(&b, 0, sizeof b);
    int rv = ldg_ledger_get_block(r.ledger, r.txn, org, vault, req->height, &b);
    if (rv == LDG_ENOTFOUND) {
        ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND, "block %" PRIu64 " not found on this node",
                           req->height);
    } else if (rv != 0) {
        ldg_rpc_fail_storage(call, rv, "read block");
    } else {
        struct ldg_arena a;
        ldg_arena_init(&a);
        Ledger__V1__GetBlockResponse resp;
        ledger__v1__get_block_response__init(&resp);
        resp.block = ldg_rpc_block(&a, &b);
        ldg_grpc_call_reply(call, &resp.base);
        ldg_arena_free(&a);
        ldg_block_clear(&b);
    }
    ldg_rpc_read_end(&r);
}

static void get_block_range_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm,
                                    void *ud)
{
    const Ledger__V1__GetBlockRangeRequest *req = (const Ledger__V1__GetBlockRangeRequest *)reqm;
    char msg[256];
    uint64_t org, vault;
    if (ldg_rpc_check_chain(req->organization_slug, req->vault, &org, &vault, msg,
                            sizeof msg) != 0) {
        INVALID(call, msg);
        return;
    }
    if (req->start_height > req->end_height) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT,
                           "start_height %" PRIu64 " is above end_height %" PRIu64,
                           req->start_height, req->end_height);
        return;
    }
    struct ldg_rpc_read r;
    if (ldg_rpc_chain_begin(call, ud, org, vault, LDG_RPC_READ, &r) != 0)
        return;
    uint64_t end = req->end_height;
    if (end > r.chain.height)
        end = r.chain.height;
    if (end - req->start_height >= LDG_RPC_MAX_BLOCK_RANGE && end >= req->start_height)
        end = req->start_height + LDG_RPC_MAX_BLOCK_RANGE - 1;
    struct ldg_arena a;
    ldg_arena_init(&a);
    Ledger__V1__GetBlockRangeResponse resp;
    ledger__v1__get_block_range_response__init(&resp);
    resp.optional_current_tip_case =
        LEDGER__V1__GET_BLOCK_RANGE_RESPONSE__OPTIONAL_CURRENT_TIP_CURRENT_TIP;
    resp.current_tip = r.chain.height;
    size_t count = req->start_height <= end ? (size_t)(end - req->start_height + 1) : 0;
    resp.blocks = ldg_arena_alloc(&a, count * sizeof *resp.blocks);
    size_t bytes = 0;
    for (size_t i = 0; i < count; i++) {
        struct ldg_block b;
        memset(&b, 0, sizeof b);
        int rv = ldg_ledger_get_block(r.ledger, r.txn, org, vault, req->start_height + i, &b);
        if (rv != 0) {
            if (rv == LDG_ENOTFOUND)
                ldg_grpc_call_fail(call, LDG_GRPC_NOT_FOUND,
                                   "block %" PRIu64 " not found on this node",
                                   req->start_height + i);
            else
                ldg_rpc_fail_storage(call, rv, "read block");
            goto out;
        }
        Ledger__V1__Block *bm = ldg_rpc_block(&a, &b);
        ldg_block_clear(&b);
        size_t sz = protobuf_c_message_get_packed_size(&bm->base) + 8;
        /* Keep the response under the message limit: the client continues
         * from the last height returned + 1. */
        if (resp.n_blocks > 0 && bytes + sz > LIST_BYTES_SOFT_MAX)
            break;
        bytes += sz;
        resp.blocks[resp.n_blocks++] = bm;
    }
    ldg_grpc_call_reply(call, &resp.base);
out:
    ldg_arena_free(&a);
    ldg_rpc_read_end(&r);
}

/* ---- paged lists ---- */

/* Decode |token| (may be empty) for |kind|/|qh|; fails the call on a bad one. */
static int cursor_of(struct ldg_grpc_call *call, const char *token, uint8_t kind,
                     const uint8_t qh[LDG_HASH_LEN], uint8_t **cur, size_t *cur_len)
{
    *cur = NULL;
    *cur_len = 0;
    if (token == NULL || token[0] == '\0')
        return 0;
    char msg[256];
    if (ldg_page_token_decode(token, kind, qh, cur, cur_len, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return -1;
    }
    return 0;
}

/* What the paged lists share: the query hash, the cursor of the request's
 * page token, the read transaction on the chain and the arena of the rows. */
struct list_page {
    uint8_t kind;
    uint8_t qh[LDG_HASH_LEN];
    uint8_t *cur;
    size_t cur_len;
    struct ldg_rpc_read r;
    struct ldg_arena a;
};

/* Hash the query (|parts|), decode |token| and begin the read on (org,
 * vault). Returns non-zero after failing the call; on success the caller
 * ends with list_end. */
static int list_begin(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx, uint8_t kind,
                      uint64_t org, uint64_t vault, const struct ldg_bytes *parts,
                      size_t n_parts, const char *token, struct list_page *lp)
{
    lp->kind = kind;
    ldg_page_query_hash(kind, org, vault, parts, n_parts, lp->qh);
    if (cursor_of(call, token, kind, lp->qh, &lp->cur, &lp->cur_len) != 0)
        return -1;
    if (ldg_rpc_chain_begin(call, ctx, org, vault, LDG_RPC_READ, &lp->r) != 0) {
        ldg_free(lp->cur);
        return -1;
    }
    ldg_arena_init(&lp->a);
    return 0;
}

/* Reply |resp|; when |more|, with a token in |*next_page_token| that
 * continues after |last|. */
static void list_reply(struct ldg_grpc_call *call, const struct list_page *lp,
                       ProtobufCMessage *resp, char **next_page_token, bool more,
                       struct ldg_bytes last)
{
    char *tok = NULL;
    if (more) {
        tok = ldg_page_token_encode(lp->kind, lp->qh, last);
        *next_page_token = tok;
    }
    ldg_grpc_call_reply(call, resp);
    ldg_free(tok);
}

static void list_end(struct list_page *lp)
{
    ldg_arena_free(&lp->a);
    ldg_rpc_read_end(&lp->r);
    ldg_free(lp->cur);
}

struct ent_page {
    struct ldg_arena *a;
    Ledger__V1__Entity **rows;
    size_t n;
    size_t bytes;
    struct ldg_bytes last;
};

static int ent_row_cb(const struct ldg_entity *ent, void *arg)
{
    struct ent_page *pg = arg;
    size_t sz = ent->key.len + ent->value.len + 32;
    if (pg->n > 0 && pg->bytes + sz > LIST_BYTES_SOFT_MAX)
        return 1; /* stop: more remain */
    Ledger__V1__Entity *m = ldg_arena_alloc(pg->a, sizeof *m);
    ledger__v1__entity__init(m);
    m->key = ldg_arena_strndup(pg->a, ent->key.data, ent->key.len);
    m->value.data = (uint8_t *)ent->value.data; /* sent before the txn ends */
    m->value.len = ent->value.len;
    m->expires_at = ent->expires_at;
    m->version = ent->version;
    pg->rows[pg->n++] = m;
    pg->bytes += sz;
    pg->last = ent->key;
    return 0;
}

static void list_entities_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm,
                                  void *ud)
{
    const Ledger__V1__ListEntitiesRequest *req = (const Ledger__V1__ListEntitiesRequest *)reqm;
    char msg[256];
    uint64_t org, vault;
    size_t limit;
    if (ldg_rpc_check_chain(req->organization_slug, req->vault, &org, &vault, msg,
                            sizeof msg) != 0 ||
        ldg_rpc_check_limit(req->limit, LDG_RPC_DEFAULT_PAGE, &limit, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return;
    }
    if (strlen(req->key_prefix) > LDG_RPC_MAX_KEY_BYTES) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT,
                           "key_prefix: longer than %d bytes (key limit)", LDG_RPC_MAX_KEY_BYTES);
        return;
    }
    uint8_t inc = req->include_expired ? 1 : 0;
    struct ldg_bytes parts[2] = {ldg_bytes_str(req->key_prefix), ldg_bytes_of(&inc, 1)};
    struct list_page lp;
    if (list_begin(call, ud, LDG_PAGE_ENTITIES, org, vault, parts, 2, req->page_token, &lp) != 0)
        return;
    struct ent_page pg = {.a = &lp.a, .rows = ldg_arena_alloc(&lp.a, limit * sizeof *pg.rows)};
    bool more = false;
    int rv = ldg_ledger_list_entities(lp.r.ledger, lp.r.txn, org, vault, parts[0],
                                      ldg_bytes_of(lp.cur, lp.cur_len),
                                      req->include_expired ? 0 : ldg_rpc_now_s(), limit,
                                      ent_row_cb, &pg, &more);
    if (rv == 1) {
        more = true;
        rv = 0;
    }
    if (rv != 0) {
        ldg_rpc_fail_storage(call, rv, "list entities");
    } else {
        Ledger__V1__ListEntitiesResponse resp;
        ledger__v1__list_entities_response__init(&resp);
        resp.n_entities = pg.n;
        resp.entities = pg.rows;
        resp.block_height = lp.r.chain.height;
        list_reply(call, &lp, &resp.base, &resp.next_page_token, more && pg.n > 0, pg.last);
    }
    list_end(&lp);
}

struct rel_page {
    struct ldg_arena *a;
    Ledger__V1__Relationship **rows;
    size_t n;
    struct ldg_bytes last;
};

static int rel_row_cb(const struct ldg_relationship *rel, void *arg)
{
    struct rel_page *pg = arg;
    Ledger__V1__Relationship *m = ldg_arena_alloc(pg->a, sizeof *m);
    ledger__v1__relationship__init(m);
    m->resource = ldg_arena_strndup(pg->a, rel->resource.data, rel->resource.len);
    m->relation = ldg_arena_strndup(pg->a, rel->relation.data, rel->relation.len);
    m->subject = ldg_arena_strndup(pg->a, rel->subject.data, rel->subject.len);
    m->version = rel->version;
    pg->rows[pg->n++] = m;
    pg->last = rel->cursor;
    return 0;
}

static int check_filter(const char *field, const char *s,
                        int (*check)(const char *, const char *, char *, size_t), char *msg,
                        size_t cap)
{
    return s[0] == '\0' ? 0 : check(field, s, msg, cap);
}

static void list_relationships_handler(struct ldg_grpc_call *call,
                                       const ProtobufCMessage *reqm, void *ud)
{
    const Ledger__V1__ListRelationshipsRequest *req =
        (const Ledger__V1__ListRelationshipsRequest *)reqm;
    char msg[256];
    uint64_t org, vault;
    size_t limit;
    if (ldg_rpc_check_chain(req->organization_slug, req->vault, &org, &vault, msg,
                            sizeof msg) != 0 ||
        ldg_rpc_check_limit(req->limit, LDG_RPC_DEFAULT_PAGE, &limit, msg, sizeof msg) != 0 ||
        check_filter("resource", req->resource, ldg_rpc_check_resource, msg, sizeof msg) != 0 ||
        check_filter("relation", req->relation, ldg_rpc_check_relation, msg, sizeof msg) != 0 ||
        check_filter("subject", req->subject, ldg_rpc_check_subject, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return;
    }
    struct ldg_bytes parts[3] = {ldg_bytes_str(req->resource), ldg_bytes_str(req->relation),
                                 ldg_bytes_str(req->subject)};
    struct list_page lp;
    if (list_begin(call, ud, LDG_PAGE_RELATIONSHIPS, org, vault, parts, 3, req->page_token,
                   &lp) != 0)
        return;
    struct rel_page pg = {.a = &lp.a, .rows = ldg_arena_alloc(&lp.a, limit * sizeof *pg.rows)};
    bool more = false;
    int rv = ldg_ledger_list_relationships(lp.r.ledger, lp.r.txn, org, vault, parts[0],
                                           parts[1], parts[2], ldg_bytes_of(lp.cur, lp.cur_len),
                                           limit, rel_row_cb, &pg, &more);
    if (rv != 0) {
        ldg_rpc_fail_storage(call, rv, "list relationships");
    } else {
        Ledger__V1__ListRelationshipsResponse resp;
        ledger__v1__list_relationships_response__init(&resp);
        resp.n_relationships = pg.n;
        resp.relationships = pg.rows;
        resp.block_height = lp.r.chain.height;
        list_reply(call, &lp, &resp.base, &resp.next_page_token,
                   more && pg.n > 0 && pg.last.len <= LDG_PAGE_TOKEN_MAX_CURSOR, pg.last);
    }
    list_end(&lp);
}

struct res_page {
    struct ldg_arena *a;
    char **rows;
    size_t n;
    struct ldg_bytes last;
};

static int res_row_cb(struct ldg_bytes resource, void *arg)
{
    struct res_page *pg = arg;
    pg->rows[pg->n++] = ldg_arena_strndup(pg->a, resource.data, resource.len);
    pg->last = resource;
    return 0;
}

static void list_resources_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm,
                                   void *ud)
{
    const Ledger__V1__ListResourcesRequest *req = (const Ledger__V1__ListResourcesRequest *)reqm;
    char msg[256];
    uint64_t org, vault;
    size_t limit;
    if (ldg_rpc_check_chain(req->organization_slug, req->vault, &org, &vault, msg,
                            sizeof msg) != 0 ||
        ldg_rpc_check_limit(req->limit, LDG_RPC_DEFAULT_PAGE, &limit, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return;
    }
    size_t tl = strlen(req->resource_type);
    if (tl == 0 || tl > LDG_RPC_MAX_REF_CHARS || strpbrk(req->resource_type, ":#") != NULL ||
        !ldg_rpc_utf8_valid((const uint8_t *)req->resource_type, tl)) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT,
                           "resource_type: required, the part of a resource before ':' "
                           "(1..%d chars, no ':' or '#')", LDG_RPC_MAX_REF_CHARS);
        return;
    }
    struct ldg_bytes parts[1] = {ldg_bytes_str(req->resource_type)};
    struct list_page lp;
    if (list_begin(call, ud, LDG_PAGE_RESOURCES, org, vault, parts, 1, req->page_token, &lp) != 0)
        return;
    struct res_page pg = {.a = &lp.a, .rows = ldg_arena_alloc(&lp.a, limit * sizeof *pg.rows)};
    bool more = false;
    int rv = ldg_ledger_list_resources(lp.r.ledger, lp.r.txn, org, vault, parts[0],
                                       ldg_bytes_of(lp.cur, lp.cur_len), limit, res_row_cb, &pg,
                                       &more);
    if (rv != 0) {
        ldg_rpc_fail_storage(call, rv, "list resources");
    } else {
        Ledger__V1__ListResourcesResponse resp;
        ledger__v1__list_resources_response__init(&resp);
        resp.n_resources = pg.n;
        resp.resources = pg.rows;
        resp.block_height = lp.r.chain.height;
        list_reply(call, &lp, &resp.base, &resp.next_page_token, more && pg.n > 0, pg.last);
    }
    list_end(&lp);
}

/* ---- GetClientState ---- */

static void get_client_state_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm,
                                     void *ud)
{
    const Ledger__V1__GetClientStateRequest *req =
        (const Ledger__V1__GetClientStateRequest *)reqm;
    char msg[256];
    uint64_t org, vault;
    if (ldg_rpc_check_chain(req->organization_slug, req->vault, &org, &vault, msg,
                            sizeof msg) != 0 ||
        ldg_rpc_check_client_id(req->client_id, msg, sizeof msg) != 0) {
        INVALID(call, msg);
        return;
    }
    struct ldg_rpc_read r;
    if (ldg_rpc_chain_begin(call, ud, org, vault, LDG_RPC_READ, &r) != 0)
        return;
    uint64_t seq = 0;
    int rv = ldg_ledger_client_sequence(r.ledger, r.txn, org, vault,
                                        ldg_bytes_str(req->client_id->id), &seq);
    if (rv != 0 && rv != LDG_ENOTFOUND) {
        ldg_rpc_fail_storage(call, rv, "read client sequence");
    } else {
        Ledger__V1__GetClientStateResponse resp;
        ledger__v1__get_client_state_response__init(&resp);
        resp.optional_last_committed_sequence_case =
            LEDGER__V1__GET_CLIENT_STATE_RESPONSE__OPTIONAL_LAST_COMMITTED_SEQUENCE_LAST_COMMITTED_SEQUENCE;
        resp.last_committed_sequence = rv == 0 ? seq : 0;
        ldg_grpc_call_reply(call, &resp.base);
    }
    ldg_rpc_read_end(&r);
}

const struct ldg_rpc_impl ldg_rpc_read_impls[] = {
    {"ledger.v1.ReadService", "Read", LDG_GRPC_UNARY, read_handler},
    {"ledger.v1.ReadService", "BatchRead", LDG_GRPC_UNARY, batch_read_handler},
    {"ledger.v1.ReadService", "VerifiedRead", LDG_GRPC_UNARY, verified_read_handler},
    {"ledger.v1.ReadService", "HistoricalRead", LDG_GRPC_UNARY, historical_read_handler},
    {"ledger.v1.ReadService", "GetTip", LDG_GRPC_UNARY, get_tip_handler},
    {"ledger.v1.ReadService", "GetBlock", LDG_GRPC_UNARY, get_block_handler},
    {"ledger.v1.ReadService", "GetBlockRange", LDG_GRPC_UNARY, get_block_range_handler},
    {"ledger.v1.ReadService", "WatchBlocks", LDG_GRPC_SERVER_STREAM, ldg_rpc_watch_blocks},
    {"ledger.v1.ReadService", "ListEntities", LDG_GRPC_UNARY, list_entities_handler},
    {"ledger.v1.ReadService", "ListRelationships", LDG_GRPC_UNARY, list_relationships_handler},
    {"ledger.v1.ReadService", "ListResources", LDG_GRPC_UNARY, list_resources_handler},
    {"ledger.v1.ReadService", "GetClientState", LDG_GRPC_UNARY, get_client_state_handler},
    {NULL, NULL, LDG_GRPC_UNARY, NULL},
};
