/* Applying one Raft entry (SPEC §4, §5).
 *
 * Happy path: check the applied position, prune old idempotency records,
 * run each command in order (client transactions in nested LMDB txns so a
 * failed condition leaves nothing behind), then close one block per chain
 * that got a successful transaction: rehash dirty slots, their bucket paths
 * and the state root, hash the txs into the RFC 6962 root, write the block
 * and the new tip, and finally the applied position.
 *
 * Failure modes: client-level problems become results; any LMDB error is
 * returned as is and the caller aborts the whole txn. */
#include <string.h>

#include "crypto/merkle.h"
#include "ledger/ledger.h"
#include "ledger/rows.h"
#include "util/assert.h"
#include "util/mem.h"

#define DIRTY_WORDS (65536 / 64)

/* Per-chain state collected while applying one entry. */
struct chain_ctx {
    uint64_t org, vault;
    uint8_t chain[CHAIN_KEY_LEN];
    uint64_t base_height;             /* tip height before this entry */
    uint8_t tip_hash[LDG_HASH_LEN];
    struct ldg_buf txs;               /* block value tx section being built */
    uint8_t (*tx_hashes)[LDG_HASH_LEN];
    size_t ntx, cap;
    uint64_t *dirty;                  /* (bucket << 8 | slot) bitmap */
};

struct apply {
    struct ldg_ledger *l;
    struct ldg_store *s;
    MDB_txn *txn;
    const struct ldg_entry *e;
    struct ldg_apply_result *out;
    struct chain_ctx *chains;
    size_t nchains, chains_cap;
    size_t blocks_cap;
    struct ldg_buf k1, k2, v1;        /* scratch */
    /* slots dirtied by the running transaction (merged on success) */
    uint16_t *tx_dirty;
    size_t tx_ndirty, tx_dirty_cap;
};

const char *ldg_result_code_name(int code)
{
    switch (code) {
    case LDG_RES_OK: return "OK";
    case LDG_RES_KEY_EXISTS: return "KEY_EXISTS";
    case LDG_RES_KEY_NOT_FOUND: return "KEY_NOT_FOUND";
    case LDG_RES_VERSION_MISMATCH: return "VERSION_MISMATCH";
    case LDG_RES_VALUE_MISMATCH: return "VALUE_MISMATCH";
    case LDG_RES_ALREADY_COMMITTED: return "ALREADY_COMMITTED";
    case LDG_RES_IDEMPOTENCY_KEY_REUSED: return "IDEMPOTENCY_KEY_REUSED";
    case LDG_RES_ORG_NOT_FOUND: return "ORGANIZATION_NOT_FOUND";
    case LDG_RES_VAULT_NOT_FOUND: return "VAULT_NOT_FOUND";
    case LDG_RES_CHAIN_INACTIVE: return "VAULT_NOT_ACTIVE";
    case LDG_RES_INVALID: return "INVALID_ARGUMENT";
    case LDG_RES_SLUG_EXISTS: return "SLUG_EXISTS";
    case LDG_RES_HAS_VAULTS: return "HAS_VAULTS";
    default: return "UNKNOWN";
    }
}

void ldg_apply_result_free(struct ldg_apply_result *r)
{
    for (size_t i = 0; i < r->count; i++) {
        ldg_free(r->results[i].outcomes);
        ldg_free(r->results[i].key);
        ldg_free(r->results[i].current_value);
    }
    ldg_free(r->results);
    ldg_free(r->blocks);
    memset(r, 0, sizeof *r);
}

void ldg_ledger_init(struct ldg_ledger *l, struct ldg_store *s)
{
    l->store = s;
}

/* ---- small row helpers ---- */

static int meta_get_u64(struct apply *a, const char *name, uint64_t *v, uint64_t dflt)
{
    MDB_val val;
    int rv = ldg_store_get(a->s, a->txn, LDG_T_META, name, strlen(name), &val);
    if (rv == LDG_ENOTFOUND) {
        *v = dflt;
        return 0;
    }
    if (rv != 0)
        return rv;
    if (val.mv_size != 9 || ((uint8_t *)val.mv_data)[0] != LDG_STORE_VALUE_V1)
        return LDG_ECORRUPT;
    *v = ldg_get_u64be((uint8_t *)val.mv_data + 1);
    return 0;
}

static int meta_put_u64(struct apply *a, const char *name, uint64_t v)
{
    uint8_t b[9] = {LDG_STORE_VALUE_V1};
    ldg_put_u64be(b + 1, v);
    return ldg_store_put(a->s, a->txn, LDG_T_META, name, strlen(name), b, sizeof b);
}

static void add_block(struct apply *a, const struct ldg_block_header *h, uint32_t tx_count)
{
    struct ldg_apply_result *o = a->out;
    if (o->block_count == a->blocks_cap) {
        a->blocks_cap = a->blocks_cap ? a->blocks_cap * 2 : 4;
        o->blocks = ldg_realloc(o->blocks, a->blocks_cap * sizeof *o->blocks);
    }
    struct ldg_block_made *b = &o->blocks[o->block_count++];
    b->header = *h;
    ldg_block_hash(h, b->block_hash);
    b->tx_count = tx_count;
}

static int put_block(struct apply *a, const struct ldg_block_header *h,
                     const uint8_t hash[LDG_HASH_LEN], const struct ldg_buf *txs, uint32_t ntx)
{
    uint8_t k[CHAIN_KEY_LEN + 8];
    block_key(k, h->organization_slug, h->vault_slug, h->height);
    size_t len = BLOCK_ROW_FIXED + (txs ? txs->len : 0);
    uint8_t *p;
    int rv = ldg_store_reserve(a->s, a->txn, LDG_T_BLOCKS, k, sizeof k, len, (void **)&p);
    if (rv != 0)
        return rv;
    p[0] = LDG_STORE_VALUE_V1;
    ldg_block_header_encode(h, p + 1);
    ldg_put_u64be(p + 1 + 148, a->e->leader_id);
    memcpy(p + 1 + 148 + 8, hash, LDG_HASH_LEN);
    ldg_put_u32be(p + 1 + 148 + 8 + 32, ntx);
    if (txs && txs->len)
        memcpy(p + BLOCK_ROW_FIXED, txs->data, txs->len);
    return 0;
}

static int put_chain_row(struct apply *a, const struct ldg_chain_info *c)
{
    uint8_t k[CHAIN_KEY_LEN];
    chain_key(k, c->org, c->vault);
    ldg_buf_reset(&a->v1);
    ldg_buf_u8(&a->v1, LDG_STORE_VALUE_V1);
    ldg_buf_u8(&a->v1, (uint8_t)c->status);
    uint8_t ts[TS_LEN];
    put_ts(ts, c->created_seconds, c->created_nanos);
    ldg_buf_append(&a->v1, ts, TS_LEN);
    ldg_buf_u64be(&a->v1, c->height);
    ldg_buf_append(&a->v1, c->tip_hash, LDG_HASH_LEN);
    ldg_buf_append(&a->v1, c->state_root, LDG_HASH_LEN);
    put_ts(ts, c->last_seconds, c->last_nanos);
    ldg_buf_append(&a->v1, ts, TS_LEN);
    ldg_buf_lenbytes(&a->v1, c->name.data, c->name.len);
    return ldg_store_put(a->s, a->txn, LDG_T_CHAINS, k, sizeof k, a->v1.data, a->v1.len);
}

/* Copy a chain row into |c| with the name copied into |name_buf|. */
static int get_chain_copy(struct apply *a, uint64_t org, uint64_t vault,
                          struct ldg_chain_info *c, struct ldg_buf *name_buf)
{
    int rv = ldg_ledger_get_chain(a->l, a->txn, org, vault, c);
    if (rv != 0)
        return rv;
    ldg_buf_reset(name_buf);
    ldg_buf_append(name_buf, c->name.data, c->name.len);
    c->name.data = name_buf->data;
    return 0;
}

static int set_chain_status(struct apply *a, uint64_t org, uint64_t vault, int status)
{
    struct ldg_chain_info c;
    struct ldg_buf name;
    ldg_buf_init(&name);
    int rv = get_chain_copy(a, org, vault, &c, &name);
    if (rv == 0) {
        c.status = status;
        rv = put_chain_row(a, &c);
    }
    ldg_buf_close(&name);
    return rv;
}

/* Create a chain with its genesis block. */
static int create_chain(struct apply *a, uint64_t org, uint64_t vault, struct ldg_bytes name,
                        struct ldg_block_header *genesis)
{
    const struct ldg_entry *e = a->e;
    ldg_block_genesis(genesis, org, vault, e->ts_seconds, e->ts_nanos, e->term, e->index);
    struct ldg_chain_info c = {
        .org = org, .vault = vault, .status = LDG_STATUS_ACTIVE,
        .created_seconds = e->ts_seconds, .created_nanos = e->ts_nanos,
        .height = 0, .last_seconds = e->ts_seconds, .last_nanos = e->ts_nanos,
        .name = name,
    };
    ldg_block_hash(genesis, c.tip_hash);
    memcpy(c.state_root, genesis->state_root, LDG_HASH_LEN);
    int rv = put_chain_row(a, &c);
    if (rv == 0)
        rv = put_block(a, genesis, c.tip_hash, NULL, 0);
    if (rv == 0)
        add_block(a, genesis, 0);
    return rv;
}

/* Next free slug from counter |name| in |table| (8-byte key prefix). */
static int assign_slug(struct apply *a, const char *counter, enum ldg_table table,
                       uint64_t requested, uint64_t *slug, bool *taken)
{
    uint64_t next;
    int rv = meta_get_u64(a, counter, &next, 1);
    if (rv != 0)
        return rv;
    *taken = false;
    MDB_val v;
    uint8_t k[8];
    if (requested != 0) {
        ldg_put_u64be(k, requested);
        rv = ldg_store_get(a->s, a->txn, table, k, 8, &v);
        if (rv == 0) {
            *taken = true;
            return 0;
        }
        if (rv != LDG_ENOTFOUND)
            return rv;
        *slug = requested;
        if (requested >= next && requested != UINT64_MAX)
            return meta_put_u64(a, counter, requested + 1);
        return 0;
    }
    for (;;) {
        if (next == 0 || next == UINT64_MAX) { /* exhausted: cannot happen in practice */
            *taken = true;
            return 0;
        }
        ldg_put_u64be(k, next);
        rv = ldg_store_get(a->s, a->txn, table, k, 8, &v);
        if (rv == LDG_ENOTFOUND)
            break;
        if (rv != 0)
            return rv;
        next++;
    }
    *slug = next;
    return meta_put_u64(a, counter, next + 1);
}

/* ---- organization and vault commands ---- */

static int put_org_row(struct apply *a, uint64_t org, int status, int64_t s, uint32_t ns,
                       struct ldg_bytes name)
{
    uint8_t k[8];
    ldg_put_u64be(k, org);
    ldg_buf_reset(&a->v1);
    ldg_buf_u8(&a->v1, LDG_STORE_VALUE_V1);
    ldg_buf_u8(&a->v1, (uint8_t)status);
    uint8_t ts[TS_LEN];
    put_ts(ts, s, ns);
    ldg_buf_append(&a->v1, ts, TS_LEN);
    ldg_buf_lenbytes(&a->v1, name.data, name.len);
    return ldg_store_put(a->s, a->txn, LDG_T_ORGS, k, 8, a->v1.data, a->v1.len);
}

static int cmd_create_org(struct apply *a, const struct ldg_cmd *c, struct ldg_cmd_result *r)
{
    if (c->name.len > UINT32_MAX) {
        r->code = LDG_RES_INVALID;
        return 0;
    }
    uint64_t slug = 0;
    bool taken;
    int rv = assign_slug(a, "next_org", LDG_T_ORGS, c->slug, &slug, &taken);
    if (rv != 0)
        return rv;
    if (taken) {
        r->code = LDG_RES_SLUG_EXISTS;
        r->org = c->slug;
        return 0;
    }
    r->org = slug;
    rv = put_org_row(a, slug, LDG_STATUS_ACTIVE, a->e->ts_seconds, a->e->ts_nanos, c->name);
    if (rv != 0)
        return rv;
    return create_chain(a, slug, 0, (struct ldg_bytes){NULL, 0}, &r->genesis);
}

static int org_status(struct apply *a, uint64_t org, int *status)
{
    uint8_t k[8];
    ldg_put_u64be(k, org);
    MDB_val v;
    int rv = ldg_store_get(a->s, a->txn, LDG_T_ORGS, k, 8, &v);
    if (rv == LDG_ENOTFOUND) {
        *status = 0;
        return 0;
    }
    if (rv != 0)
        return rv;
    struct ldg_org_info o;
    rv = ldg_ledger_parse_org_row(org, v.mv_data, v.mv_size, &o);
    if (rv == 0)
        *status = o.status;
    return rv;
}

struct vault_list {
    uint64_t *v;
    size_t n, cap;
};

static int collect_vault_cb(const struct ldg_chain_info *c, void *arg)
{
    struct vault_list *vl = arg;
    if (vl->n == vl->cap) {
        vl->cap = vl->cap ? vl->cap * 2 : 8;
        vl->v = ldg_realloc(vl->v, vl->cap * sizeof *vl->v);
    }
    vl->v[vl->n++] = c->vault;
    return 0;
}

static int cmd_delete_org(struct apply *a, const struct ldg_cmd *c, struct ldg_cmd_result *r)
{
    r->org = c->org;
    struct ldg_org_info o;
    int rv = ldg_ledger_get_org(a->l, a->txn, c->org, &o);
    if (rv == LDG_ENOTFOUND || (rv == 0 && o.status == LDG_STATUS_DELETED)) {
        r->code = LDG_RES_ORG_NOT_FOUND;
        return 0;
    }
    if (rv != 0)
        return rv;
    struct vault_list vl = {0};
    rv = ldg_ledger_list_vaults(a->l, a->txn, c->org, c->org, 0, false, 0, collect_vault_cb, &vl);
    if (rv != 0)
        goto done;
    if (vl.n > 0 && !c->force) {
        r->code = LDG_RES_HAS_VAULTS;
        goto done;
    }
    for (size_t i = 0; i < vl.n && rv == 0; i++)
        rv = set_chain_status(a, c->org, vl.v[i], LDG_STATUS_DELETED);
    if (rv == 0)
        rv = set_chain_status(a, c->org, 0, LDG_STATUS_DELETED);
    if (rv == 0) {
        struct ldg_buf name;
        ldg_buf_init(&name);
        ldg_buf_append(&name, o.name.data, o.name.len);
        rv = put_org_row(a, c->org, LDG_STATUS_DELETED, o.created_seconds, o.created_nanos,
                         (struct ldg_bytes){name.data, name.len});
        ldg_buf_close(&name);
    }
done:
    ldg_free(vl.v);
    return rv;
}

static int cmd_create_vault(struct apply *a, const struct ldg_cmd *c, struct ldg_cmd_result *r)
{
    r->org = c->org;
    if (c->name.len > UINT32_MAX) {
        r->code = LDG_RES_INVALID;
        return 0;
    }
    int st;
    int rv = org_status(a, c->org, &st);
    if (rv != 0)
        return rv;
    if (st != LDG_STATUS_ACTIVE) {
        r->code = LDG_RES_ORG_NOT_FOUND;
        return 0;
    }
    uint64_t slug = 0;
    bool taken;
    rv = assign_slug(a, "next_vault", LDG_T_VAULT_SLUGS, c->slug, &slug, &taken);
    if (rv != 0)
        return rv;
    if (taken) {
        r->code = LDG_RES_SLUG_EXISTS;
        r->vault = c->slug;
        return 0;
    }
    r->vault = slug;
    uint8_t k[8], v[9] = {LDG_STORE_VALUE_V1};
    ldg_put_u64be(k, slug);
    ldg_put_u64be(v + 1, c->org);
    rv = ldg_store_put(a->s, a->txn, LDG_T_VAULT_SLUGS, k, 8, v, 9);
    if (rv != 0)
        return rv;
    return create_chain(a, c->org, slug, c->name, &r->genesis);
}

static int cmd_delete_vault(struct apply *a, const struct ldg_cmd *c, struct ldg_cmd_result *r)
{
    r->org = c->org;
    r->vault = c->vault;
    if (c->vault == 0) {
        r->code = LDG_RES_INVALID;
        return 0;
    }
    struct ldg_chain_info ci;
    int rv = ldg_ledger_get_chain(a->l, a->txn, c->org, c->vault, &ci);
    if (rv == LDG_ENOTFOUND || (rv == 0 && ci.status == LDG_STATUS_DELETED)) {
        r->code = LDG_RES_VAULT_NOT_FOUND;
        return 0;
    }
    if (rv != 0)
        return rv;
    return set_chain_status(a, c->org, c->vault, LDG_STATUS_DELETED);
}

/* ---- transactions ---- */

static bool has_nul(struct ldg_bytes b)
{
    return b.len > 0 && memchr(b.data, 0, b.len) != NULL;
}

/* Structural validity, fixed rules only (determinism). */
static bool tx_valid(const struct ldg_cmd *c)
{
    if (c->op_count == 0 || c->op_count > UINT32_MAX || c->ops == NULL)
        return false;
    if (c->type == LDG_CMD_WRITE && (c->client_id.len == 0 || c->client_id.len > UINT32_MAX))
        return false;
    for (size_t i = 0; i < c->op_count; i++) {
        const struct ldg_op *op = &c->ops[i];
        if (ldg_op_validate(op) != 0)
            return false;
        if (c->type == LDG_CMD_EXPIRE && op->type != LDG_OP_EXPIRE_ENTITY)
            return false;
        switch (op->type) {
        case LDG_OP_CREATE_RELATIONSHIP:
        case LDG_OP_DELETE_RELATIONSHIP:
            if (op->resource.len == 0 || op->relation.len == 0 || op->subject.len == 0 ||
                has_nul(op->resource) || has_nul(op->relation) || has_nul(op->subject))
                return false;
            break;
        case LDG_OP_SET_ENTITY:
        case LDG_OP_DELETE_ENTITY:
        case LDG_OP_EXPIRE_ENTITY:
            if (op->key.len == 0 || op->key.len > UINT32_MAX - 1)
                return false;
            break;
        default:
            return false;
        }
    }
    return true;
}

static struct chain_ctx *find_chain(struct apply *a, uint64_t org, uint64_t vault)
{
    for (size_t i = 0; i < a->nchains; i++)
        if (a->chains[i].org == org && a->chains[i].vault == vault)
            return &a->chains[i];
    return NULL;
}

/* Check the chain can take a write; load its context. Sets *code on a
 * client-level failure. */
static int load_chain(struct apply *a, uint64_t org, uint64_t vault, struct chain_ctx **out,
                      int *code)
{
    *out = NULL;
    *code = LDG_RES_OK;
    int st;
    int rv = org_status(a, org, &st);
    if (rv != 0)
        return rv;
    if (st != LDG_STATUS_ACTIVE) {
        *code = LDG_RES_ORG_NOT_FOUND;
        return 0;
    }
    struct ldg_chain_info ci;
    rv = ldg_ledger_get_chain(a->l, a->txn, org, vault, &ci);
    if (rv == LDG_ENOTFOUND || (rv == 0 && ci.status == LDG_STATUS_DELETED)) {
        *code = vault == 0 ? LDG_RES_ORG_NOT_FOUND : LDG_RES_VAULT_NOT_FOUND;
        return 0;
    }
    if (rv != 0)
        return rv;
    if (ci.status != LDG_STATUS_ACTIVE) {
        *code = LDG_RES_CHAIN_INACTIVE;
        return 0;
    }
    struct chain_ctx *cc = find_chain(a, org, vault);
    if (cc == NULL) {
        if (a->nchains == a->chains_cap) {
            a->chains_cap = a->chains_cap ? a->chains_cap * 2 : 4;
            a->chains = ldg_realloc(a->chains, a->chains_cap * sizeof *a->chains);
        }
        cc = &a->chains[a->nchains++];
        memset(cc, 0, sizeof *cc);
        cc->org = org;
        cc->vault = vault;
        chain_key(cc->chain, org, vault);
        cc->base_height = ci.height;
        memcpy(cc->tip_hash, ci.tip_hash, LDG_HASH_LEN);
        ldg_buf_init(&cc->txs);
        cc->dirty = ldg_calloc(DIRTY_WORDS, sizeof(uint64_t));
    }
    *out = cc;
    return 0;
}

static void tx_mark_dirty(struct apply *a, struct ldg_bytes leaf_key)
{
    uint8_t b, s;
    ldg_leaf_key_locate(leaf_key, &b, &s);
    if (a->tx_ndirty == a->tx_dirty_cap) {
        a->tx_dirty_cap = a->tx_dirty_cap ? a->tx_dirty_cap * 2 : 16;
        a->tx_dirty = ldg_realloc(a->tx_dirty, a->tx_dirty_cap * sizeof *a->tx_dirty);
    }
    a->tx_dirty[a->tx_ndirty++] = (uint16_t)(b << 8 | s);
}

/* Put or delete the slot_leaves row of |leaf_key| and mark its slot dirty. */
static int leaf_put(struct apply *a, MDB_txn *txn, const struct chain_ctx *cc,
                    struct ldg_bytes leaf_key, const uint8_t value_hash[LDG_HASH_LEN],
                    uint64_t expires_at, uint64_t version)
{
    uint8_t b, s;
    ldg_leaf_key_locate(leaf_key, &b, &s);
    ldg_buf_reset(&a->k2);
    ldg_buf_append(&a->k2, cc->chain, CHAIN_KEY_LEN);
    ldg_buf_u8(&a->k2, b);
    ldg_buf_u8(&a->k2, s);
    ldg_buf_append(&a->k2, leaf_key.data, leaf_key.len);
    tx_mark_dirty(a, leaf_key);
    if (value_hash == NULL) {
        int rv = ldg_store_del(a->s, txn, LDG_T_SLOT_LEAVES, a->k2.data, a->k2.len);
        return rv == LDG_ENOTFOUND ? 0 : rv;
    }
    uint8_t v[LEAF_ROW_LEN];
    v[0] = LDG_STORE_VALUE_V1;
    memcpy(v + 1, value_hash, LDG_HASH_LEN);
    ldg_put_u64be(v + 1 + 32, expires_at);
    ldg_put_u64be(v + 1 + 40, version);
    return ldg_store_put(a->s, txn, LDG_T_SLOT_LEAVES, a->k2.data, a->k2.len, v, sizeof v);
}

static int history_put(struct apply *a, MDB_txn *txn, const struct chain_ctx *cc,
                       struct ldg_bytes key, uint64_t height, int kind, uint64_t expires_at,
                       uint64_t version, struct ldg_bytes value)
{
    history_key(&a->k2, cc->chain, key, height);
    size_t len = HISTORY_ROW_FIXED + value.len;
    uint8_t *p;
    int rv = ldg_store_reserve(a->s, txn, LDG_T_HISTORY, a->k2.data, a->k2.len, len,
                               (void **)&p);
    if (rv != 0)
        return rv;
    p[0] = LDG_STORE_VALUE_V1;
    p[1] = (uint8_t)kind;
    ldg_put_u64be(p + 2, expires_at);
    ldg_put_u64be(p + 10, version);
    if (value.len)
        memcpy(p + HISTORY_ROW_FIXED, value.data, value.len);
    return 0;
}

/* Remove an entity (delete or expire). */
static int entity_remove(struct apply *a, MDB_txn *txn, const struct chain_ctx *cc,
                         struct ldg_bytes key, uint64_t height)
{
    ldg_buf_reset(&a->k1);
    ldg_buf_append(&a->k1, cc->chain, CHAIN_KEY_LEN);
    ldg_buf_append(&a->k1, key.data, key.len);
    int rv = ldg_store_del(a->s, txn, LDG_T_ENTITIES, a->k1.data, a->k1.len);
    if (rv != 0)
        return rv;
    struct ldg_buf lk;
    ldg_buf_init(&lk);
    ldg_leaf_key_entity(&lk, key);
    rv = leaf_put(a, txn, cc, (struct ldg_bytes){lk.data, lk.len}, NULL, 0, 0);
    ldg_buf_close(&lk);
    if (rv != 0)
        return rv;
    return history_put(a, txn, cc, key, height, HISTORY_REMOVED, 0, 0,
                       (struct ldg_bytes){NULL, 0});
}

static void fail_tx(struct ldg_cmd_result *r, int code, uint32_t op_index, struct ldg_bytes key,
                    bool live, uint64_t version, struct ldg_bytes value)
{
    r->code = code;
    r->failed_op = op_index;
    r->key = key.len ? ldg_memdup(key.data, key.len) : NULL;
    r->key_len = key.len;
    r->has_current = live;
    if (live) {
        r->current_version = version;
        r->current_value = value.len ? ldg_memdup(value.data, value.len) : NULL;
        r->current_value_len = value.len;
    }
}

/* Apply the ops of one transaction in |txn| (a child txn). Returns 0 with
 * r->code set (OK or a condition failure), or a storage error. */
static int run_ops(struct apply *a, MDB_txn *txn, struct chain_ctx *cc, const struct ldg_cmd *c,
                   struct ldg_cmd_result *r)
{
    const uint64_t height = cc->base_height + 1;
    const int64_t now = a->e->ts_seconds;
    int rv = 0;
    struct ldg_buf lk;
    ldg_buf_init(&lk);
    for (size_t i = 0; i < c->op_count && rv == 0; i++) {
        const struct ldg_op *op = &c->ops[i];
        uint8_t outcome = 0;
        switch (op->type) {
        case LDG_OP_SET_ENTITY:
        case LDG_OP_DELETE_ENTITY:
        case LDG_OP_EXPIRE_ENTITY: {
            ldg_buf_reset(&a->k1);
            ldg_buf_append(&a->k1, cc->chain, CHAIN_KEY_LEN);
            ldg_buf_append(&a->k1, op->key.data, op->key.len);
            MDB_val v;
            rv = ldg_store_get(a->s, txn, LDG_T_ENTITIES, a->k1.data, a->k1.len, &v);
            bool present = rv == 0;
            if (rv != 0 && rv != LDG_ENOTFOUND)
                break;
            rv = 0;
            uint64_t cur_version = 0, cur_expires = 0;
            struct ldg_bytes cur_value = {NULL, 0};
            if (present) {
                const uint8_t *p = v.mv_data;
                if (v.mv_size < ENTITY_ROW_FIXED || p[0] != LDG_STORE_VALUE_V1) {
                    rv = LDG_ECORRUPT;
                    break;
                }
                cur_version = ldg_get_u64be(p + 1);
                cur_expires = ldg_get_u64be(p + 9);
                cur_value.data = p + ENTITY_ROW_FIXED;
                cur_value.len = v.mv_size - ENTITY_ROW_FIXED;
            }
            bool live = present && !(cur_expires > 0 && now >= 0 &&
                                     cur_expires <= (uint64_t)now);
            if (op->type == LDG_OP_SET_ENTITY) {
                int fail = 0;
                switch (op->cond) {
                case LDG_COND_NOT_EXISTS:
                    if (live)
                        fail = LDG_RES_KEY_EXISTS;
                    break;
                case LDG_COND_MUST_EXIST:
                    if (!live)
                        fail = LDG_RES_KEY_NOT_FOUND;
                    break;
                case LDG_COND_VERSION:
                    if (!live)
                        fail = LDG_RES_KEY_NOT_FOUND;
                    else if (cur_version != op->cond_version)
                        fail = LDG_RES_VERSION_MISMATCH;
                    break;
                case LDG_COND_VALUE_EQUALS:
                    if (!live)
                        fail = LDG_RES_KEY_NOT_FOUND;
                    else if (cur_value.len != op->cond_value.len ||
                             (cur_value.len &&
                              memcmp(cur_value.data, op->cond_value.data, cur_value.len) != 0))
                        fail = LDG_RES_VALUE_MISMATCH;
                    break;
                default:
                    break;
                }
                if (fail) {
                    fail_tx(r, fail, (uint32_t)i, op->key, live, cur_version, cur_value);
                    goto out;
                }
                uint8_t *p;
                rv = ldg_store_reserve(a->s, txn, LDG_T_ENTITIES, a->k1.data, a->k1.len,
                                       ENTITY_ROW_FIXED + op->value.len, (void **)&p);
                if (rv != 0)
                    break;
                p[0] = LDG_STORE_VALUE_V1;
                ldg_put_u64be(p + 1, height);
                ldg_put_u64be(p + 9, op->expires_at);
                if (op->value.len)
                    memcpy(p + ENTITY_ROW_FIXED, op->value.data, op->value.len);
                uint8_t vh[LDG_HASH_LEN];
                ldg_sha256(op->value.data, op->value.len, vh);
                ldg_buf_reset(&lk);
                ldg_leaf_key_entity(&lk, op->key);
                rv = leaf_put(a, txn, cc, (struct ldg_bytes){lk.data, lk.len}, vh,
                              op->expires_at, height);
                if (rv == 0)
                    rv = history_put(a, txn, cc, op->key, height, HISTORY_SET, op->expires_at,
                                     height, op->value);
                outcome = live ? LDG_OUTCOME_UPDATED : LDG_OUTCOME_CREATED;
            } else if (op->type == LDG_OP_DELETE_ENTITY) {
                if (present) {
                    rv = entity_remove(a, txn, cc, op->key, height);
                    outcome = LDG_OUTCOME_DELETED;
                } else {
                    outcome = LDG_OUTCOME_NOT_FOUND;
                }
            } else {
                if (present && op->expired_at != 0 && cur_expires == op->expired_at &&
                    now >= 0 && op->expired_at <= (uint64_t)now) {
                    rv = entity_remove(a, txn, cc, op->key, height);
                    outcome = LDG_OUTCOME_DELETED;
                } else {
                    outcome = LDG_OUTCOME_NOT_FOUND;
                }
            }
            break;
        }
        case LDG_OP_CREATE_RELATIONSHIP:
        case LDG_OP_DELETE_RELATIONSHIP: {
            rel_index_key(&a->k1, cc->chain, op->resource, op->relation, op->subject);
            MDB_val v;
            rv = ldg_store_get(a->s, txn, LDG_T_RELS, a->k1.data, a->k1.len, &v);
            bool present = rv == 0;
            if (rv != 0 && rv != LDG_ENOTFOUND)
                break;
            rv = 0;
            bool create = op->type == LDG_OP_CREATE_RELATIONSHIP;
            if (present == create) {
                outcome = create ? LDG_OUTCOME_ALREADY_EXISTS : LDG_OUTCOME_NOT_FOUND;
                break;
            }
            ldg_buf_reset(&lk);
            rv = ldg_leaf_key_relationship(&lk, op->resource, op->relation, op->subject);
            if (rv != 0)
                break;
            struct ldg_buf sk;
            ldg_buf_init(&sk);
            rel_index_key(&sk, cc->chain, op->subject, op->resource, op->relation);
            if (create) {
                uint8_t rv9[9] = {LDG_STORE_VALUE_V1};
                ldg_put_u64be(rv9 + 1, height);
                uint8_t one = LDG_STORE_VALUE_V1;
                rv = ldg_store_put(a->s, txn, LDG_T_RELS, a->k1.data, a->k1.len, rv9, 9);
                if (rv == 0)
                    rv = ldg_store_put(a->s, txn, LDG_T_RELS_BY_SUBJECT, sk.data, sk.len, &one, 1);
                if (rv == 0)
                    rv = leaf_put(a, txn, cc, (struct ldg_bytes){lk.data, lk.len},
                                  LDG_EMPTY_HASH, 0, height);
                outcome = LDG_OUTCOME_CREATED;
            } else {
                rv = ldg_store_del(a->s, txn, LDG_T_RELS, a->k1.data, a->k1.len);
                if (rv == 0) {
                    rv = ldg_store_del(a->s, txn, LDG_T_RELS_BY_SUBJECT, sk.data, sk.len);
                    if (rv == LDG_ENOTFOUND)
                        rv = LDG_ECORRUPT; /* the indexes disagree */
                }
                if (rv == 0)
                    rv = leaf_put(a, txn, cc, (struct ldg_bytes){lk.data, lk.len}, NULL, 0, 0);
                outcome = LDG_OUTCOME_DELETED;
            }
            ldg_buf_close(&sk);
            break;
        }
        default:
            rv = LDG_EINTERNAL; /* tx_valid let an unknown op through */
        }
        if (rv == 0)
            r->outcomes[i] = outcome;
    }
out:
    ldg_buf_close(&lk);
    return rv;
}

/* Record a successful tx in its chain's pending block. */
static int block_add_tx(struct apply *a, struct chain_ctx *cc, const struct ldg_cmd *c,
                        uint64_t sequence, struct ldg_cmd_result *r)
{
    struct ldg_buf actor;
    ldg_buf_init(&actor);
    if (c->type == LDG_CMD_WRITE) {
        ldg_buf_append_str(&actor, "client:");
        ldg_buf_append(&actor, c->client_id.data, c->client_id.len);
    } else {
        ldg_buf_append_str(&actor, "system:gc");
    }
    struct ldg_tx tx = {
        .client_id = c->type == LDG_CMD_WRITE ? c->client_id : (struct ldg_bytes){NULL, 0},
        .sequence = sequence,
        .actor = {actor.data, actor.len},
        .ops = c->ops,
        .op_count = c->op_count,
        .timestamp_seconds = a->e->ts_seconds,
        .timestamp_nanos = a->e->ts_nanos,
    };
    memcpy(tx.tx_id, c->tx_id, LDG_TX_ID_LEN);
    size_t at = cc->txs.len;
    ldg_buf_u32be(&cc->txs, 0); /* length, patched below */
    int rv = ldg_tx_encode(&tx, &cc->txs);
    if (rv != 0) {
        cc->txs.len = at;
        ldg_buf_close(&actor);
        return LDG_EINTERNAL; /* validated before: cannot happen */
    }
    size_t len = cc->txs.len - at - 4;
    ldg_put_u32be(cc->txs.data + at, (uint32_t)len);
    if (cc->ntx == cc->cap) {
        cc->cap = cc->cap ? cc->cap * 2 : 8;
        cc->tx_hashes = ldg_realloc(cc->tx_hashes, cc->cap * LDG_HASH_LEN);
    }
    ldg_sha256(cc->txs.data + at + 4, len, cc->tx_hashes[cc->ntx]);
    r->tx_index = (uint32_t)cc->ntx;
    cc->ntx++;
    ldg_buf_close(&actor);
    return 0;
}

static int cmd_tx(struct apply *a, const struct ldg_cmd *c, struct ldg_cmd_result *r)
{
    r->org = c->org;
    r->vault = c->vault;
    memcpy(r->tx_id, c->tx_id, LDG_TX_ID_LEN);
    if (!tx_valid(c)) {
        r->code = LDG_RES_INVALID;
        return 0;
    }
    static const uint8_t zero_key[LDG_IDEMPOTENCY_KEY_LEN];
    bool idem = c->type == LDG_CMD_WRITE &&
                memcmp(c->idempotency_key, zero_key, LDG_IDEMPOTENCY_KEY_LEN) != 0;
    uint8_t digest[LDG_HASH_LEN];
    int rv;
    if (idem) {
        rv = ldg_tx_payload_digest(c->org, c->vault, c->ops, c->op_count, digest);
        if (rv != 0) {
            r->code = LDG_RES_INVALID;
            return 0;
        }
        struct ldg_idem_record rec;
        rv = ldg_ledger_idempotency_get(a->l, a->txn, c->client_id, c->idempotency_key, &rec);
        if (rv == 0) {
            if (memcmp(rec.digest, digest, LDG_HASH_LEN) == 0) {
                r->code = LDG_RES_ALREADY_COMMITTED;
                r->org = rec.org;
                r->vault = rec.vault;
                memcpy(r->tx_id, rec.tx_id, LDG_TX_ID_LEN);
                r->height = rec.height;
                r->sequence = rec.sequence;
            } else {
                r->code = LDG_RES_IDEMPOTENCY_KEY_REUSED;
            }
            return 0;
        }
        if (rv != LDG_ENOTFOUND)
            return rv;
    }
    struct chain_ctx *cc;
    int code;
    rv = load_chain(a, c->org, c->vault, &cc, &code);
    if (rv != 0)
        return rv;
    if (code != LDG_RES_OK) {
        r->code = code;
        return 0;
    }
    r->outcomes = ldg_calloc(c->op_count, 1);
    r->outcome_count = c->op_count;
    a->tx_ndirty = 0;
    MDB_txn *child;
    rv = ldg_store_txn_child(a->s, a->txn, &child);
    if (rv != 0)
        return rv;
    rv = run_ops(a, child, cc, c, r);
    if (rv != 0 || r->code != LDG_RES_OK) {
        ldg_store_txn_abort(child);
        if (r->code != LDG_RES_OK) {
            ldg_free(r->outcomes);
            r->outcomes = NULL;
            r->outcome_count = 0;
        }
        return rv;
    }
    uint64_t height = cc->base_height + 1;
    uint64_t seq = 0;
    if (c->type == LDG_CMD_WRITE) {
        ldg_buf_reset(&a->k1);
        ldg_buf_append(&a->k1, cc->chain, CHAIN_KEY_LEN);
        ldg_buf_append(&a->k1, c->client_id.data, c->client_id.len);
        MDB_val v;
        rv = ldg_store_get(a->s, child, LDG_T_CLIENTS, a->k1.data, a->k1.len, &v);
        if (rv == 0) {
            if (v.mv_size != 9 || ((uint8_t *)v.mv_data)[0] != LDG_STORE_VALUE_V1)
                rv = LDG_ECORRUPT;
            else
                seq = ldg_get_u64be((uint8_t *)v.mv_data + 1);
        } else if (rv == LDG_ENOTFOUND) {
            rv = 0;
        }
        seq++;
        uint8_t sv[9] = {LDG_STORE_VALUE_V1};
        ldg_put_u64be(sv + 1, seq);
        if (rv == 0)
            rv = ldg_store_put(a->s, child, LDG_T_CLIENTS, a->k1.data, a->k1.len, sv, 9);
    }
    if (rv == 0 && idem) {
        idem_key(&a->k1, c->client_id, c->idempotency_key);
        uint8_t iv[IDEM_ROW_LEN];
        iv[0] = LDG_STORE_VALUE_V1;
        memcpy(iv + 1, digest, LDG_HASH_LEN);
        put_ts(iv + 33, a->e->ts_seconds, a->e->ts_nanos);
        ldg_put_u64be(iv + 45, c->org);
        ldg_put_u64be(iv + 53, c->vault);
        memcpy(iv + 61, c->tx_id, LDG_TX_ID_LEN);
        ldg_put_u64be(iv + 77, height);
        ldg_put_u64be(iv + 85, seq);
        rv = ldg_store_put(a->s, child, LDG_T_IDEM, a->k1.data, a->k1.len, iv, sizeof iv);
        if (rv == 0) {
            ldg_buf_reset(&a->k2);
            uint8_t ts[TS_LEN];
            put_ts(ts, a->e->ts_seconds, a->e->ts_nanos);
            ldg_buf_append(&a->k2, ts, TS_LEN);
            ldg_buf_append(&a->k2, a->k1.data, a->k1.len);
            uint8_t one = LDG_STORE_VALUE_V1;
            rv = ldg_store_put(a->s, child, LDG_T_IDEM_BY_TIME, a->k2.data, a->k2.len, &one, 1);
        }
    }
    if (rv != 0) {
        ldg_store_txn_abort(child);
        return rv;
    }
    rv = ldg_store_txn_commit(child);
    if (rv != 0)
        return rv;
    for (size_t i = 0; i < a->tx_ndirty; i++) {
        uint16_t d = a->tx_dirty[i];
        cc->dirty[d / 64] |= (uint64_t)1 << (d % 64);
    }
    r->height = height;
    r->sequence = seq;
    return block_add_tx(a, cc, c, seq, r);
}

/* ---- closing blocks ---- */

static int slot_rehash(struct apply *a, const struct chain_ctx *cc, uint8_t b, uint8_t s,
                       uint8_t out[LDG_HASH_LEN])
{
    uint8_t prefix[CHAIN_KEY_LEN + 2];
    memcpy(prefix, cc->chain, CHAIN_KEY_LEN);
    prefix[CHAIN_KEY_LEN] = b;
    prefix[CHAIN_KEY_LEN + 1] = s;
    struct ldg_slot_hasher h;
    ldg_slot_hasher_init(&h);
    struct ldg_store_iter it;
    int rv = ldg_store_iter_init(&it, a->s, a->txn, LDG_T_SLOT_LEAVES, prefix, sizeof prefix,
                                 NULL, 0);
    if (rv != 0)
        return rv;
    while ((rv = ldg_store_iter_next(&it)) == 1) {
        const uint8_t *p = it.val.mv_data;
        if (it.val.mv_size != LEAF_ROW_LEN || p[0] != LDG_STORE_VALUE_V1) {
            rv = LDG_ECORRUPT;
            break;
        }
        struct ldg_leaf leaf = {
            .key = {(const uint8_t *)it.key.mv_data + sizeof prefix,
                    it.key.mv_size - sizeof prefix},
            .expires_at = ldg_get_u64be(p + 33),
            .version = ldg_get_u64be(p + 41),
        };
        memcpy(leaf.value_hash, p + 1, LDG_HASH_LEN);
        ldg_slot_hasher_add(&h, &leaf);
    }
    ldg_store_iter_close(&it);
    if (rv < 0)
        return rv;
    ldg_slot_hasher_final(&h, out);
    return 0;
}

int ldg_ledger_load_bucket(struct ldg_store *s, MDB_txn *txn, const uint8_t chain[16],
                           uint8_t b, struct ldg_bucket_tree *t)
{
    ldg_bucket_tree_init(t);
    uint8_t prefix[CHAIN_KEY_LEN + 1];
    memcpy(prefix, chain, CHAIN_KEY_LEN);
    prefix[CHAIN_KEY_LEN] = b;
    struct ldg_store_iter it;
    int rv = ldg_store_iter_init(&it, s, txn, LDG_T_TREE, prefix, sizeof prefix, NULL, 0);
    if (rv != 0)
        return rv;
    while ((rv = ldg_store_iter_next(&it)) == 1) {
        const uint8_t *k = it.key.mv_data;
        const uint8_t *p = it.val.mv_data;
        if (it.key.mv_size != CHAIN_KEY_LEN + 3 || it.val.mv_size != 1 + LDG_HASH_LEN ||
            p[0] != LDG_STORE_VALUE_V1) {
            rv = LDG_ECORRUPT;
            break;
        }
        unsigned node = (unsigned)k[CHAIN_KEY_LEN + 1] << 8 | k[CHAIN_KEY_LEN + 2];
        if (node >= LDG_BUCKET_NODES) {
            rv = LDG_ECORRUPT;
            break;
        }
        memcpy(t->node[node], p + 1, LDG_HASH_LEN);
    }
    ldg_store_iter_close(&it);
    return rv < 0 ? rv : 0;
}

/* Load only what rehashing the dirty slots |w| of bucket |b| needs: every
 * node on their paths and the siblings of those nodes (about 17 point reads
 * per dirty slot); other nodes keep their default value and are not
 * written back because they do not change. Falls back to a full bucket scan
 * when many slots are dirty. */
static int load_bucket_paths(struct apply *a, const struct chain_ctx *cc, uint8_t b,
                             const uint64_t w[4], struct ldg_bucket_tree *t)
{
    unsigned dirty = 0;
    for (int i = 0; i < 4; i++)
        dirty += (unsigned)__builtin_popcountll(w[i]);
    if (dirty > 24)
        return ldg_ledger_load_bucket(a->s, a->txn, cc->chain, b, t);
    ldg_bucket_tree_init(t);
    uint8_t need[LDG_BUCKET_NODES] = {0};
    for (unsigned s = 0; s < 256; s++) {
        if (!(w[s / 64] >> (s % 64) & 1))
            continue;
        for (unsigned n = LDG_BUCKET_FIRST_SLOT + s; n > 0; n = (n - 1) / 2) {
            need[n] = 1;
            need[(n & 1) ? n + 1 : n - 1] = 1;
        }
        need[0] = 1;
    }
    for (unsigned n = 0; n < LDG_BUCKET_NODES; n++) {
        if (!need[n])
            continue;
        uint8_t k[CHAIN_KEY_LEN + 3];
        tree_key(k, cc->chain, b, (uint16_t)n);
        MDB_val v;
        int rv = ldg_store_get(a->s, a->txn, LDG_T_TREE, k, sizeof k, &v);
        if (rv == LDG_ENOTFOUND)
            continue;
        if (rv != 0)
            return rv;
        if (v.mv_size != 1 + LDG_HASH_LEN || ((uint8_t *)v.mv_data)[0] != LDG_STORE_VALUE_V1)
            return LDG_ECORRUPT;
        memcpy(t->node[n], (uint8_t *)v.mv_data + 1, LDG_HASH_LEN);
    }
    return 0;
}

static int close_block(struct apply *a, struct chain_ctx *cc)
{
    const struct ldg_entry *e = a->e;
    int rv = 0;
    struct ldg_bucket_tree *t = ldg_malloc(sizeof *t);
    uint8_t(*before)[LDG_HASH_LEN] = ldg_malloc(LDG_BUCKET_TREE_BYTES);
    for (unsigned b = 0; b < LDG_STATE_BUCKETS && rv == 0; b++) {
        const uint64_t *w = &cc->dirty[b * 4];
        if ((w[0] | w[1] | w[2] | w[3]) == 0)
            continue;
        rv = load_bucket_paths(a, cc, (uint8_t)b, w, t);
        if (rv != 0)
            break;
        memcpy(before, t->node, LDG_BUCKET_TREE_BYTES);
        for (unsigned s = 0; s < 256 && rv == 0; s++) {
            if (!(w[s / 64] >> (s % 64) & 1))
                continue;
            uint8_t h[LDG_HASH_LEN];
            rv = slot_rehash(a, cc, (uint8_t)b, (uint8_t)s, h);
            if (rv == 0)
                ldg_bucket_tree_stage_slot(t, (uint8_t)s, h);
        }
        if (rv != 0)
            break;
        ldg_bucket_tree_flush(t);
        for (unsigned n = 0; n < LDG_BUCKET_NODES && rv == 0; n++) {
            if (memcmp(before[n], t->node[n], LDG_HASH_LEN) == 0)
                continue;
            uint8_t k[CHAIN_KEY_LEN + 3], v[1 + LDG_HASH_LEN];
            tree_key(k, cc->chain, (uint8_t)b, (uint16_t)n);
            v[0] = LDG_STORE_VALUE_V1;
            memcpy(v + 1, t->node[n], LDG_HASH_LEN);
            rv = ldg_store_put(a->s, a->txn, LDG_T_TREE, k, sizeof k, v, sizeof v);
        }
    }
    ldg_free(before);
    ldg_free(t);
    if (rv != 0)
        return rv;

    struct ldg_block_header h = {
        .height = cc->base_height + 1,
        .organization_slug = cc->org,
        .vault_slug = cc->vault,
        .timestamp_seconds = e->ts_seconds,
        .timestamp_nanos = e->ts_nanos,
        .term = e->term,
        .committed_index = e->index,
    };
    memcpy(h.previous_hash, cc->tip_hash, LDG_HASH_LEN);
    ldg_merkle_root((const uint8_t(*)[LDG_HASH_LEN])cc->tx_hashes, cc->ntx, h.tx_merkle_root);
    uint8_t(*roots)[LDG_HASH_LEN] = ldg_malloc(LDG_STATE_BUCKETS * LDG_HASH_LEN);
    rv = ldg_ledger_bucket_roots(a->l, a->txn, cc->org, cc->vault, roots);
    if (rv == 0)
        ldg_state_root((const uint8_t(*)[LDG_HASH_LEN])roots, h.state_root);
    ldg_free(roots);
    if (rv != 0)
        return rv;
    uint8_t hash[LDG_HASH_LEN];
    ldg_block_hash(&h, hash);
    rv = put_block(a, &h, hash, &cc->txs, (uint32_t)cc->ntx);
    if (rv != 0)
        return rv;
    struct ldg_chain_info ci;
    struct ldg_buf name;
    ldg_buf_init(&name);
    rv = get_chain_copy(a, cc->org, cc->vault, &ci, &name);
    if (rv == 0) {
        ci.height = h.height;
        memcpy(ci.tip_hash, hash, LDG_HASH_LEN);
        memcpy(ci.state_root, h.state_root, LDG_HASH_LEN);
        ci.last_seconds = e->ts_seconds;
        ci.last_nanos = e->ts_nanos;
        rv = put_chain_row(a, &ci);
    }
    ldg_buf_close(&name);
    if (rv == 0)
        add_block(a, &h, (uint32_t)cc->ntx);
    return rv;
}

/* ---- idempotency pruning ---- */

static int prune_idempotency(struct apply *a)
{
    int64_t now = a->e->ts_seconds;
    int rv = 0;
    for (int n = 0; n < LDG_IDEMPOTENCY_PRUNE_MAX; n++) {
        struct ldg_store_iter it;
        rv = ldg_store_iter_init(&it, a->s, a->txn, LDG_T_IDEM_BY_TIME, NULL, 0, NULL, 0);
        if (rv != 0)
            return rv;
        rv = ldg_store_iter_next(&it);
        if (rv <= 0) {
            ldg_store_iter_close(&it);
            return rv;
        }
        if (it.key.mv_size < TS_LEN) {
            ldg_store_iter_close(&it);
            return LDG_ECORRUPT;
        }
        int64_t s;
        uint32_t ns;
        get_ts(it.key.mv_data, &s, &ns);
        /* Keep records while entry_seconds + retention >= now. */
        if (!(s < now - LDG_IDEMPOTENCY_RETENTION_S)) {
            ldg_store_iter_close(&it);
            return 0;
        }
        ldg_buf_reset(&a->k1);
        ldg_buf_append(&a->k1, it.key.mv_data, it.key.mv_size);
        ldg_store_iter_close(&it);
        rv = ldg_store_del(a->s, a->txn, LDG_T_IDEM_BY_TIME, a->k1.data, a->k1.len);
        if (rv == 0) {
            rv = ldg_store_del(a->s, a->txn, LDG_T_IDEM, a->k1.data + TS_LEN, a->k1.len - TS_LEN);
            if (rv == LDG_ENOTFOUND)
                rv = 0;
        }
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* ---- entry ---- */

static int apply_position(struct apply *a, bool *skip)
{
    MDB_val v;
    *skip = false;
    int rv = ldg_store_get(a->s, a->txn, LDG_T_META, "applied", 7, &v);
    if (rv == LDG_ENOTFOUND)
        return 0; /* fresh store */
    if (rv != 0)
        return rv;
    struct ldg_applied ap;
    rv = ldg_ledger_applied(a->l, a->txn, &ap);
    if (rv != 0)
        return rv;
    *skip = ap.log_id == a->e->log_id && a->e->index <= ap.index;
    return 0;
}

int ldg_ledger_apply(struct ldg_ledger *l, MDB_txn *txn, const struct ldg_entry *e,
                     struct ldg_apply_result *out)
{
    memset(out, 0, sizeof *out);
    struct apply a = {.l = l, .s = l->store, .txn = txn, .e = e, .out = out};
    ldg_buf_init(&a.k1);
    ldg_buf_init(&a.k2);
    ldg_buf_init(&a.v1);
    bool skip = false;
    int rv = apply_position(&a, &skip);
    if (rv != 0 || skip) {
        out->skipped = skip;
        goto done;
    }
    rv = prune_idempotency(&a);
    if (rv != 0)
        goto done;
    out->results = e->cmd_count ? ldg_calloc(e->cmd_count, sizeof *out->results) : NULL;
    out->count = e->cmd_count;
    for (size_t i = 0; i < e->cmd_count && rv == 0; i++) {
        const struct ldg_cmd *c = &e->cmds[i];
        struct ldg_cmd_result *r = &out->results[i];
        r->type = c->type;
        switch (c->type) {
        case LDG_CMD_CREATE_ORG:
            rv = cmd_create_org(&a, c, r);
            break;
        case LDG_CMD_DELETE_ORG:
            rv = cmd_delete_org(&a, c, r);
            break;
        case LDG_CMD_CREATE_VAULT:
            rv = cmd_create_vault(&a, c, r);
            break;
        case LDG_CMD_DELETE_VAULT:
            rv = cmd_delete_vault(&a, c, r);
            break;
        case LDG_CMD_WRITE:
        case LDG_CMD_EXPIRE:
            rv = cmd_tx(&a, c, r);
            break;
        default:
            r->code = LDG_RES_INVALID;
        }
    }
    for (size_t i = 0; i < a.nchains && rv == 0; i++)
        if (a.chains[i].ntx > 0)
            rv = close_block(&a, &a.chains[i]);
    if (rv == 0) {
        uint8_t v[25] = {LDG_STORE_VALUE_V1};
        ldg_put_u64be(v + 1, e->log_id);
        ldg_put_u64be(v + 9, e->index);
        ldg_put_u64be(v + 17, e->term);
        rv = ldg_store_put(a.s, txn, LDG_T_META, "applied", 7, v, sizeof v);
    }
done:
    for (size_t i = 0; i < a.nchains; i++) {
        ldg_buf_close(&a.chains[i].txs);
        ldg_free(a.chains[i].tx_hashes);
        ldg_free(a.chains[i].dirty);
    }
    ldg_free(a.chains);
    ldg_free(a.tx_dirty);
    ldg_buf_close(&a.k1);
    ldg_buf_close(&a.k2);
    ldg_buf_close(&a.v1);
    if (rv != 0)
        ldg_apply_result_free(out);
    return rv;
}

struct apply_entry_arg {
    struct ldg_ledger *l;
    const struct ldg_entry *e;
    struct ldg_apply_result *out;
};

static int apply_entry_fn(MDB_txn *txn, void *arg)
{
    struct apply_entry_arg *x = arg;
    ldg_apply_result_free(x->out);
    return ldg_ledger_apply(x->l, txn, x->e, x->out);
}

int ldg_ledger_apply_entry(struct ldg_ledger *l, const struct ldg_entry *e,
                           struct ldg_apply_result *out)
{
    memset(out, 0, sizeof *out);
    struct apply_entry_arg x = {l, e, out};
    int rv = ldg_store_write(l->store, apply_entry_fn, &x);
    if (rv != 0)
        ldg_apply_result_free(out);
    return rv;
}
