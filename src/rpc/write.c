/* ledger.v1.WriteService (SPEC §4): Write and BatchWrite.
 *
 * Happy path: validate every limit, convert the operations, check on this
 * node that the chain exists and is writable, submit one LDG_CMD_WRITE to
 * the cluster with the client's remaining deadline as timeout, and answer
 * from the submit callback: WriteSuccess (tx_id, height, sequence,
 * outcomes; block_header and the RFC 6962 audit path of the tx when
 * include_tx_proof), or a WriteError in an OK response for condition and
 * idempotency results.
 *
 * Failure modes: bad input INVALID_ARGUMENT; unknown chain NOT_FOUND; chain
 * not ACTIVE FAILED_PRECONDITION; not leader / no leader UNAVAILABLE;
 * deadline DEADLINE_EXCEEDED. The call may be cancelled while the command
 * is queued: the cluster still calls back exactly once and the end is then
 * a no-op on the wire. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "cluster/cluster.h"
#include "crypto/merkle.h"
#include "ledger/v1/ledger.pb-c.h"
#include "rpc/common.h"
#include "rpc/convert.h"
#include "rpc/validate.h"
#include "util/log.h"
#include "util/mem.h"

struct write_req {
    struct ldg_grpc_call *call;
    struct ldg_rpc_ctx *ctx;
    uint64_t org, vault;
    bool include_proof;
    bool batch; /* BatchWriteResponse instead of WriteResponse */
    uint64_t start_ns; /* uv_hrtime at submit: ledger_write_latency_seconds */
};

/* Fill |s| with the tx proof of |res| from the stored block. Returns 0 or
 * an LDG_E* code. */
static int add_proof(struct ldg_arena *a, struct write_req *w, const struct ldg_cmd_result *res,
                     Ledger__V1__WriteSuccess *s)
{
    struct ldg_rpc_read r;
    memset(&r, 0, sizeof r);
    r.ledger = ldg_cluster_ledger(w->ctx->cluster);
    int rv = ldg_store_txn_begin(r.ledger->store, true, &r.txn);
    if (rv != 0)
        return rv;
    struct ldg_block b;
    memset(&b, 0, sizeof b);
    rv = ldg_ledger_get_block(r.ledger, r.txn, w->org, w->vault, res->height, &b);
    if (rv != 0)
        goto out;
    if (res->tx_index >= b.tx_count) {
        rv = LDG_ECORRUPT;
        goto out_block;
    }
    uint8_t(*hashes)[LDG_HASH_LEN] = ldg_malloc(b.tx_count * LDG_HASH_LEN);
    for (size_t i = 0; i < b.tx_count && rv == 0; i++)
        rv = ldg_tx_hash(&b.txs[i], hashes[i]);
    uint8_t path[LDG_MERKLE_MAX_PATH][LDG_HASH_LEN];
    size_t path_len = 0;
    if (rv == 0)
        rv = ldg_merkle_path((const uint8_t(*)[LDG_HASH_LEN])hashes, b.tx_count, res->tx_index,
                             path, LDG_MERKLE_MAX_PATH, &path_len);
    if (rv == 0) {
        s->block_header = ldg_rpc_header(a, &b.header, b.leader_id, b.block_hash);
        Ledger__V1__MerkleProof *mp = ldg_arena_alloc(a, sizeof *mp);
        ledger__v1__merkle_proof__init(mp);
        mp->leaf_index = res->tx_index;
        mp->tree_size = b.tx_count;
        mp->leaf_hash = ldg_rpc_hash(a, hashes[res->tx_index]);
        mp->n_siblings = path_len;
        mp->siblings = ldg_arena_alloc(a, path_len * sizeof *mp->siblings);
        for (size_t i = 0; i < path_len; i++)
            mp->siblings[i] = ldg_rpc_hash(a, path[i]);
        s->tx_proof = mp;
    }
    ldg_free(hashes);
out_block:
    ldg_block_clear(&b);
out:
    ldg_rpc_read_end(&r);
    return rv;
}

static Ledger__V1__TxId *tx_id_msg(struct ldg_arena *a, const uint8_t id[LDG_TX_ID_LEN])
{
    Ledger__V1__TxId *m = ldg_arena_alloc(a, sizeof *m);
    ledger__v1__tx_id__init(m);
    m->id.data = ldg_arena_dup(a, id, LDG_TX_ID_LEN);
    m->id.len = LDG_TX_ID_LEN;
    return m;
}

static Ledger__V1__WriteError *error_msg(struct ldg_arena *a, const struct ldg_cmd_result *res)
{
    Ledger__V1__WriteError *e = ldg_arena_alloc(a, sizeof *e);
    ledger__v1__write_error__init(e);
    e->code = ldg_rpc_write_error_code(res->code);
    char *key = ldg_arena_strndup(a, res->key, res->key_len);
    bool cond = res->code >= LDG_RES_KEY_EXISTS && res->code <= LDG_RES_VALUE_MISMATCH;
    if (cond) {
        e->key = key;
        e->optional_operation_index_case =
            LEDGER__V1__WRITE_ERROR__OPTIONAL_OPERATION_INDEX_OPERATION_INDEX;
        e->operation_index = res->failed_op;
        if (res->has_current) {
            e->optional_current_version_case =
                LEDGER__V1__WRITE_ERROR__OPTIONAL_CURRENT_VERSION_CURRENT_VERSION;
            e->current_version = res->current_version;
            if (res->code == LDG_RES_VALUE_MISMATCH || res->code == LDG_RES_VERSION_MISMATCH) {
                e->optional_current_value_case =
                    LEDGER__V1__WRITE_ERROR__OPTIONAL_CURRENT_VALUE_CURRENT_VALUE;
                e->current_value.data =
                    ldg_arena_dup(a, res->current_value, res->current_value_len);
                e->current_value.len = res->current_value_len;
            }
        }
    }
    switch (res->code) {
    case LDG_RES_KEY_EXISTS:
        e->message = ldg_arena_printf(a, "key \"%.200s\" already exists (not_exists condition of "
                                      "operation %u failed); nothing was applied",
                                      key, res->failed_op);
        break;
    case LDG_RES_KEY_NOT_FOUND:
        e->message = ldg_arena_printf(a, "key \"%.200s\" does not exist (condition of operation "
                                      "%u requires it); nothing was applied",
                                      key, res->failed_op);
        break;
    case LDG_RES_VERSION_MISMATCH:
        e->message = ldg_arena_printf(a, "key \"%.200s\" is at version %" PRIu64 " (version "
                                      "condition of operation %u failed); read it and retry; "
                                      "nothing was applied",
                                      key, res->current_version, res->failed_op);
        break;
    case LDG_RES_VALUE_MISMATCH:
        e->message = ldg_arena_printf(a, "key \"%.200s\" has another value (value_equals "
                                      "condition of operation %u failed); nothing was applied",
                                      key, res->failed_op);
        break;
    case LDG_RES_ALREADY_COMMITTED:
        e->message = ldg_arena_printf(a, "already committed: this client_id and idempotency_key "
                                      "were committed with the same operations at height "
                                      "%" PRIu64 "; nothing new was applied", res->height);
        e->committed_tx_id = tx_id_msg(a, res->tx_id);
        e->optional_committed_block_height_case =
            LEDGER__V1__WRITE_ERROR__OPTIONAL_COMMITTED_BLOCK_HEIGHT_COMMITTED_BLOCK_HEIGHT;
        e->committed_block_height = res->height;
        e->optional_assigned_sequence_case =
            LEDGER__V1__WRITE_ERROR__OPTIONAL_ASSIGNED_SEQUENCE_ASSIGNED_SEQUENCE;
        e->assigned_sequence = res->sequence;
        break;
    case LDG_RES_IDEMPOTENCY_KEY_REUSED:
        e->message = ldg_arena_printf(a, "idempotency_key was already used by this client with "
                                      "different operations or chain; use a new key for a new "
                                      "transaction; nothing was applied");
        break;
    default:
        e->message = ldg_arena_printf(a, "the chain stopped accepting writes before this "
                                      "transaction was applied (%s); nothing was applied",
                                      ldg_result_code_name(res->code));
        break;
    }
    return e;
}

static void write_done_cb(void *arg, int status, const struct ldg_cmd_result *res,
                          const struct ldg_block_made *block)
{
    struct write_req *w = arg;
    ldg_rpc_observe_write(w->start_ns, status == 0);
    struct ldg_arena a;
    ldg_arena_init(&a);
    if (status != 0) {
        ldg_rpc_fail_cluster(w->call, w->ctx, status, "the write");
        goto out;
    }
    if (res->code == LDG_RES_INVALID) {
        ldg_grpc_call_fail(w->call, LDG_GRPC_INVALID_ARGUMENT,
                           "the transaction was rejected as malformed by the state machine");
        goto out;
    }
    Ledger__V1__WriteSuccess *s = NULL;
    Ledger__V1__WriteError *e = NULL;
    if (res->code == LDG_RES_OK) {
        s = ldg_arena_alloc(&a, sizeof *s);
        ledger__v1__write_success__init(s);
        s->tx_id = tx_id_msg(&a, res->tx_id);
        s->optional_block_height_case =
            LEDGER__V1__WRITE_SUCCESS__OPTIONAL_BLOCK_HEIGHT_BLOCK_HEIGHT;
        s->block_height = res->height;
        s->assigned_sequence = res->sequence;
        s->n_outcomes = res->outcome_count;
        s->outcomes = ldg_arena_alloc(&a, res->outcome_count * sizeof *s->outcomes);
        for (size_t i = 0; i < res->outcome_count; i++)
            s->outcomes[i] = ldg_rpc_outcome(res->outcomes[i]);
        if (w->include_proof) {
            int rv = add_proof(&a, w, res, s);
            if (rv != 0) {
                /* Committed but the proof is unreadable: say so, do not hide
                 * the commit behind an error. */
                LDG_LOG(LDG_LOG_ERROR, "rpc", "tx proof unavailable height=%" PRIu64 " err=%s",
                        res->height, ldg_strerror(rv));
                if (block)
                    s->block_header = ldg_rpc_header(&a, &block->header, 0, block->block_hash);
            }
        }
    } else {
        e = error_msg(&a, res);
    }
    if (w->batch) {
        Ledger__V1__BatchWriteResponse resp;
        ledger__v1__batch_write_response__init(&resp);
        if (s) {
            resp.result_case = LEDGER__V1__BATCH_WRITE_RESPONSE__RESULT_SUCCESS;
            resp.success = s;
        } else {
            resp.result_case = LEDGER__V1__BATCH_WRITE_RESPONSE__RESULT_ERROR;
            resp.error = e;
        }
        ldg_grpc_call_reply(w->call, &resp.base);
    } else {
        Ledger__V1__WriteResponse resp;
        ledger__v1__write_response__init(&resp);
        if (s) {
            resp.result_case = LEDGER__V1__WRITE_RESPONSE__RESULT_SUCCESS;
            resp.success = s;
        } else {
            resp.result_case = LEDGER__V1__WRITE_RESPONSE__RESULT_ERROR;
            resp.error = e;
        }
        ldg_grpc_call_reply(w->call, &resp.base);
    }
out:
    ldg_arena_free(&a);
    ldg_free(w);
}

/* Common path of Write and BatchWrite once the ops are converted. */
static void submit_write(struct ldg_grpc_call *call, struct ldg_rpc_ctx *ctx, uint64_t org,
                         uint64_t vault, const Ledger__V1__ClientId *client,
                         const uint8_t idem[LDG_IDEMPOTENCY_KEY_LEN], const struct ldg_op *ops,
                         size_t n_ops, bool include_proof, bool batch)
{
    struct ldg_rpc_read r;
    if (ldg_rpc_chain_begin(call, ctx, org, vault, LDG_RPC_WRITE, &r) != 0)
        return;
    ldg_rpc_read_end(&r);
    uint64_t timeout_ms;
    if (ldg_rpc_timeout_ms(call, &timeout_ms) != 0)
        return;
    struct ldg_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = LDG_CMD_WRITE;
    cmd.org = org;
    cmd.vault = vault;
    cmd.client_id = ldg_bytes_str(client->id);
    memcpy(cmd.idempotency_key, idem, LDG_IDEMPOTENCY_KEY_LEN);
    cmd.ops = ops;
    cmd.op_count = n_ops;
    /* tx_id stays zero: the leader's batcher makes it (UUIDv4). */
    struct write_req *w = ldg_calloc(1, sizeof *w);
    w->call = call;
    w->ctx = ctx;
    w->org = org;
    w->vault = vault;
    w->include_proof = include_proof;
    w->batch = batch;
    w->start_ns = uv_hrtime();
    int rv = ldg_cluster_submit(ctx->cluster, &cmd, timeout_ms, write_done_cb, w);
    if (rv != 0) {
        ldg_free(w);
        ldg_rpc_fail_cluster(call, ctx, rv, "the write");
    }
}

static int write_common_check(const Ledger__V1__OrganizationSlug *o,
                              const Ledger__V1__VaultSlug *v, const Ledger__V1__ClientId *c,
                              ProtobufCBinaryData key, uint64_t *org, uint64_t *vault,
                              uint8_t idem[16], char *msg, size_t cap)
{
    if (ldg_rpc_check_chain(o, v, org, vault, msg, cap) != 0 ||
        ldg_rpc_check_client_id(c, msg, cap) != 0 ||
        ldg_rpc_check_idempotency_key(key, idem, msg, cap) != 0)
        return LDG_EINVAL;
    return 0;
}

static void write_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm, void *ud)
{
    const Ledger__V1__WriteRequest *req = (const Ledger__V1__WriteRequest *)reqm;
    char msg[256];
    uint64_t org, vault;
    uint8_t idem[16];
    if (write_common_check(req->organization_slug, req->vault, req->client_id,
                           req->idempotency_key, &org, &vault, idem, msg, sizeof msg) != 0) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT, "%s", msg);
        return;
    }
    if (req->n_operations == 0 || req->n_operations > LDG_RPC_MAX_OPS) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT,
                           "operations: %zu operations, a transaction needs 1..%d",
                           req->n_operations, LDG_RPC_MAX_OPS);
        return;
    }
    struct ldg_op *ops = ldg_malloc(req->n_operations * sizeof *ops);
    if (ldg_rpc_ops_from_proto(req->operations, req->n_operations, "operations", ops, msg,
                               sizeof msg) != 0)
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT, "%s", msg);
    else
        submit_write(call, ud, org, vault, req->client_id, idem, ops, req->n_operations,
                     req->include_tx_proof, false);
    ldg_free(ops);
}

static void batch_write_handler(struct ldg_grpc_call *call, const ProtobufCMessage *reqm,
                                void *ud)
{
    const Ledger__V1__BatchWriteRequest *req = (const Ledger__V1__BatchWriteRequest *)reqm;
    char msg[256];
    uint64_t org, vault;
    uint8_t idem[16];
    if (write_common_check(req->organization_slug, req->vault, req->client_id,
                           req->idempotency_key, &org, &vault, idem, msg, sizeof msg) != 0) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT, "%s", msg);
        return;
    }
    size_t total = 0;
    for (size_t g = 0; g < req->n_groups; g++) {
        total += req->groups[g]->n_operations;
        if (total > LDG_RPC_MAX_OPS)
            break;
    }
    if (total == 0 || total > LDG_RPC_MAX_OPS) {
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT,
                           "groups: %s%zu operations in total, a transaction needs 1..%d",
                           total > LDG_RPC_MAX_OPS ? "more than " : "", total > LDG_RPC_MAX_OPS
                                                                         ? (size_t)LDG_RPC_MAX_OPS
                                                                         : total,
                           LDG_RPC_MAX_OPS);
        return;
    }
    struct ldg_op *ops = ldg_malloc(total * sizeof *ops);
    size_t at = 0;
    int rv = 0;
    for (size_t g = 0; g < req->n_groups && rv == 0; g++) {
        char field[48];
        snprintf(field, sizeof field, "groups[%zu].operations", g);
        rv = ldg_rpc_ops_from_proto(req->groups[g]->operations, req->groups[g]->n_operations,
                                    field, ops + at, msg, sizeof msg);
        at += req->groups[g]->n_operations;
    }
    if (rv != 0)
        ldg_grpc_call_fail(call, LDG_GRPC_INVALID_ARGUMENT, "%s", msg);
    else
        submit_write(call, ud, org, vault, req->client_id, idem, ops, total,
                     req->include_tx_proof, true);
    ldg_free(ops);
}

const struct ldg_rpc_impl ldg_rpc_write_impls[] = {
    {"ledger.v1.WriteService", "Write", LDG_GRPC_UNARY, write_handler},
    {"ledger.v1.WriteService", "BatchWrite", LDG_GRPC_UNARY, batch_write_handler},
    {NULL, NULL, LDG_GRPC_UNARY, NULL},
};
