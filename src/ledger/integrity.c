/* Chain integrity checks (integrity.h). */
#include "ledger/integrity.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/merkle.h"
#include "ledger/rows.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

static const uint8_t zero_hash[LDG_HASH_LEN];

const char *ldg_issue_type_name(int type)
{
    switch (type) {
    case LDG_ISSUE_CHAIN_BREAK: return "chain_break";
    case LDG_ISSUE_BLOCK_HASH_MISMATCH: return "block_hash_mismatch";
    case LDG_ISSUE_TX_ROOT_MISMATCH: return "tx_root_mismatch";
    case LDG_ISSUE_STATE_ROOT_MISMATCH: return "state_root_mismatch";
    case LDG_ISSUE_MISSING_BLOCK: return "missing_block";
    case LDG_ISSUE_TIP_MISMATCH: return "tip_mismatch";
    case LDG_ISSUE_LEAF_MISMATCH: return "leaf_mismatch";
    default: return "unknown";
    }
}

void ldg_integrity_report_free(struct ldg_integrity_report *r)
{
    ldg_free(r->issues);
    memset(r, 0, sizeof *r);
}

/* State of one check. */
struct ck {
    struct ldg_ledger *l;
    MDB_txn *txn;
    uint64_t org, vault;
    uint8_t chain[CHAIN_KEY_LEN];
    struct ldg_integrity_report *rep;
    /* full check */
    bool replay_on;          /* replay still in step with the stored chain */
    bool scratch_open;
    struct ldg_store scratch;
    struct ldg_ledger sl;
    char dir[PATH_MAX];
    uint64_t next_log;       /* log_id of the next synthesized entry */
    const atomic_int *cancel; /* opts->cancel */
};

static void issue(struct ck *c, uint64_t height, int type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void issue(struct ck *c, uint64_t height, int type, const char *fmt, ...)
{
    struct ldg_integrity_report *r = c->rep;
    if (r->count >= LDG_INTEGRITY_MAX_ISSUES) {
        r->dropped++;
        return;
    }
    if (r->issues == NULL)
        r->issues = ldg_calloc(LDG_INTEGRITY_MAX_ISSUES, sizeof *r->issues);
    struct ldg_integrity_issue *i = &r->issues[r->count++];
    i->height = height;
    i->type = type;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(i->description, sizeof i->description, fmt, ap);
    va_end(ap);
}

/* First 8 bytes of a hash in hex (enough to tell two hashes apart in a message). */
static const char *short_hex(const uint8_t *h, char out[17])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 15];
    }
    out[16] = '\0';
    return out;
}

/* Printable rendering of a leaf key (non-printable bytes as '.', cut at 48). */
static const char *leaf_text(const uint8_t *p, size_t n, char out[52])
{
    size_t m = n > 48 ? 48 : n, j = 0;
    for (size_t i = 0; i < m; i++)
        out[j++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '.';
    if (n > m) {
        out[j++] = '.';
        out[j++] = '.';
    }
    out[j] = '\0';
    return out;
}

/* ---- stored block rows ---- */

struct row {
    struct ldg_block_header hdr;
    uint64_t leader_id;
    uint8_t cached[LDG_HASH_LEN];
    uint32_t tx_count;
    const uint8_t *txs;  /* the tx section after tx_count (into the map) */
    size_t txs_len;
};

/* Header part of a blocks value; -1 when it cannot be read. */
static int parse_row(const MDB_val *v, struct row *r)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size < BLOCK_ROW_FIXED || p[0] != LDG_STORE_VALUE_V1)
        return -1;
    if (ldg_block_header_decode(p + 1, LDG_BLOCK_HEADER_LEN, &r->hdr) != 0)
        return -1;
    r->leader_id = ldg_get_u64be(p + 1 + LDG_BLOCK_HEADER_LEN);
    memcpy(r->cached, p + 1 + LDG_BLOCK_HEADER_LEN + 8, LDG_HASH_LEN);
    r->tx_count = ldg_get_u32be(p + BLOCK_ROW_FIXED - 4);
    r->txs = p + BLOCK_ROW_FIXED;
    r->txs_len = v->mv_size - BLOCK_ROW_FIXED;
    return 0;
}

/* Next stored transaction at |*off| of the tx section: -1 when truncated. */
static int next_tx(const struct row *r, size_t *off, const uint8_t **p, size_t *n)
{
    if (r->txs_len - *off < 4)
        return -1;
    uint32_t len = ldg_get_u32be(r->txs + *off);
    *off += 4;
    if (r->txs_len - *off < len)
        return -1;
    *p = r->txs + *off;
    *n = len;
    *off += len;
    return 0;
}

/* RFC 6962 root over H(stored tx bytes); -1 for a malformed tx section. */
static int tx_root(const struct row *r, uint8_t out[LDG_HASH_LEN])
{
    if (r->tx_count > r->txs_len / 4)
        return -1;
    uint8_t(*hs)[LDG_HASH_LEN] =
        r->tx_count ? ldg_malloc((size_t)r->tx_count * LDG_HASH_LEN) : NULL;
    size_t off = 0;
    int rv = 0;
    for (uint32_t i = 0; i < r->tx_count; i++) {
        const uint8_t *p;
        size_t n;
        if (next_tx(r, &off, &p, &n) != 0) {
            rv = -1;
            break;
        }
        ldg_sha256(p, n, hs[i]);
    }
    if (rv == 0 && off != r->txs_len)
        rv = -1;
    if (rv == 0)
        ldg_merkle_root((const uint8_t(*)[LDG_HASH_LEN])hs, r->tx_count, out);
    ldg_free(hs);
    return rv;
}

/* ---- replay (full check) ---- */

static void scratch_close(struct ck *c)
{
    if (!c->scratch_open)
        return;
    ldg_store_close(&c->scratch);
    c->scratch_open = false;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/data.mdb", c->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", c->dir);
    unlink(path);
    if (rmdir(c->dir) != 0)
        LDG_LOG(LDG_LOG_WARN, "integrity", "could not remove scratch dir %s", c->dir);
}

static int scratch_open(struct ck *c, const char *parent)
{
    snprintf(c->dir, sizeof c->dir, "%s/ldg-integrity-XXXXXX", parent ? parent : "/tmp");
    if (mkdtemp(c->dir) == NULL)
        return ldg_err_from_errno(errno);
    struct ldg_err err;
    memset(&err, 0, sizeof err);
    int rv = ldg_store_open(&c->scratch, c->dir, NULL, &err);
    if (rv != 0) {
        LDG_LOG(LDG_LOG_ERROR, "integrity", "scratch store: %s", err.msg);
        rmdir(c->dir);
        return rv;
    }
    c->scratch_open = true;
    /* Throw-away state: no fsync per replayed block. */
    mdb_env_set_flags(c->scratch.env, MDB_NOSYNC, 1);
    ldg_ledger_init(&c->sl, &c->scratch);
    c->next_log = 1;
    c->replay_on = true;
    return 0;
}

/* Apply one synthesized entry to the scratch store. */
static int replay_entry(struct ck *c, const struct ldg_block_header *h, uint64_t leader_id,
                        const struct ldg_cmd *cmds, size_t n, struct ldg_apply_result *res)
{
    struct ldg_entry e = {
        .log_id = c->next_log++, .index = h->committed_index, .term = h->term,
        .ts_seconds = h->timestamp_seconds, .ts_nanos = h->timestamp_nanos,
        .leader_id = leader_id, .cmds = cmds, .cmd_count = n,
    };
    return ldg_ledger_apply_entry(&c->sl, &e, res);
}

/* Compare a replayed header with the stored one at |h|. */
static void compare_roots(struct ck *c, uint64_t h, const struct ldg_block_header *stored,
                          const struct ldg_block_header *replayed)
{
    char a[17], b[17];
    if (memcmp(stored->tx_merkle_root, replayed->tx_merkle_root, LDG_HASH_LEN) != 0)
        issue(c, h, LDG_ISSUE_TX_ROOT_MISMATCH, "replay gives tx_merkle_root %s.., block has %s..",
              short_hex(replayed->tx_merkle_root, a), short_hex(stored->tx_merkle_root, b));
    if (memcmp(stored->state_root, replayed->state_root, LDG_HASH_LEN) != 0)
        issue(c, h, LDG_ISSUE_STATE_ROOT_MISMATCH,
              "replay gives state_root %s.., block has %s..", short_hex(replayed->state_root, a),
              short_hex(stored->state_root, b));
}

/* Genesis: create the organization, then the vault, as the original entries did. */
static int replay_genesis(struct ck *c, const struct row *r)
{
    struct ldg_block_header oh = r->hdr;
    uint64_t oleader = r->leader_id;
    if (c->vault != 0) {
        int rv = ldg_ledger_get_header(c->l, c->txn, c->org, 0, 0, &oh, &oleader, NULL);
        if (rv == LDG_ENOTFOUND || rv == LDG_ECORRUPT)
            oh = r->hdr; /* the org chain is not what is being checked */
        else if (rv != 0)
            return rv;
    }
    struct ldg_apply_result res;
    memset(&res, 0, sizeof res);
    struct ldg_cmd cmd = {.type = LDG_CMD_CREATE_ORG, .slug = c->org,
                          .name = ldg_bytes_str("integrity-replay")};
    int rv = replay_entry(c, &oh, oleader, &cmd, 1, &res);
    if (rv != 0)
        return rv;
    bool ok = res.count == 1 && res.results[0].code == LDG_RES_OK;
    struct ldg_block_header g = res.count == 1 ? res.results[0].genesis : oh;
    ldg_apply_result_free(&res);
    if (ok && c->vault != 0) {
        memset(&cmd, 0, sizeof cmd);
        cmd.type = LDG_CMD_CREATE_VAULT;
        cmd.org = c->org;
        cmd.slug = c->vault;
        cmd.name = ldg_bytes_str("integrity-replay");
        rv = replay_entry(c, &r->hdr, r->leader_id, &cmd, 1, &res);
        if (rv != 0)
            return rv;
        ok = res.count == 1 && res.results[0].code == LDG_RES_OK;
        if (ok)
            g = res.results[0].genesis;
        ldg_apply_result_free(&res);
    }
    if (!ok) {
        issue(c, 0, LDG_ISSUE_STATE_ROOT_MISMATCH,
              "replay could not recreate the chain's genesis; full replay skipped");
        c->replay_on = false;
        return 0;
    }
    compare_roots(c, 0, &r->hdr, &g);
    return 0;
}

/* Replay the transactions of stored block |r| at height |h| >= 1 as one entry. */
static int replay_block(struct ck *c, uint64_t h, const struct row *r)
{
    struct ldg_cmd *cmds = r->tx_count ? ldg_calloc(r->tx_count, sizeof *cmds) : NULL;
    struct ldg_op **ops = r->tx_count ? ldg_calloc(r->tx_count, sizeof *ops) : NULL;
    struct ldg_apply_result res;
    memset(&res, 0, sizeof res);
    int rv = 0;
    size_t off = 0;
    uint32_t n = 0;
    for (; n < r->tx_count; n++) {
        const uint8_t *p;
        size_t len;
        struct ldg_tx tx;
        if (next_tx(r, &off, &p, &len) != 0 || ldg_tx_decode(p, len, &tx, &ops[n]) != 0) {
            issue(c, h, LDG_ISSUE_TX_ROOT_MISMATCH,
                  "transaction %" PRIu32 " cannot be decoded; replay stopped here", n);
            c->replay_on = false;
            goto out;
        }
        struct ldg_cmd *cmd = &cmds[n];
        cmd->type = tx.client_id.len > 0 ? LDG_CMD_WRITE : LDG_CMD_EXPIRE;
        cmd->org = c->org;
        cmd->vault = c->vault;
        cmd->client_id = tx.client_id;
        memcpy(cmd->tx_id, tx.tx_id, LDG_TX_ID_LEN);
        cmd->ops = ops[n];
        cmd->op_count = tx.op_count;
    }
    rv = replay_entry(c, &r->hdr, r->leader_id, cmds, r->tx_count, &res);
    if (rv != 0)
        goto out;
    for (size_t i = 0; i < res.count; i++)
        if (res.results[i].code != LDG_RES_OK) {
            issue(c, h, LDG_ISSUE_TX_ROOT_MISMATCH,
                  "replayed transaction %zu fails with %s (it succeeded originally)", i,
                  ldg_result_code_name(res.results[i].code));
            break;
        }
    const struct ldg_block_made *made = NULL;
    for (size_t i = 0; i < res.block_count; i++)
        if (res.blocks[i].header.organization_slug == c->org &&
            res.blocks[i].header.vault_slug == c->vault)
            made = &res.blocks[i];
    if (made == NULL || made->header.height != h) {
        issue(c, h, LDG_ISSUE_TX_ROOT_MISMATCH,
              "replay did not produce block %" PRIu64 "; replay stopped here", h);
        c->replay_on = false;
        goto out;
    }
    compare_roots(c, h, &r->hdr, &made->header);
out:
    ldg_apply_result_free(&res);
    for (uint32_t i = 0; i < r->tx_count; i++)
        ldg_free(ops[i]);
    ldg_free(ops);
    ldg_free(cmds);
    return rv;
}

/* Byte-wise order with a prefix first (LMDB's default). */
static int val_cmp(const MDB_val *a, const MDB_val *b)
{
    size_t m = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;
    int r = m ? memcmp(a->mv_data, b->mv_data, m) : 0;
    if (r != 0)
        return r;
    return a->mv_size < b->mv_size ? -1 : a->mv_size > b->mv_size;
}

static void leaf_issue(struct ck *c, uint64_t h, const MDB_val *k, const char *what)
{
    char t[52];
    const uint8_t *p = k->mv_data;
    if (k->mv_size < CHAIN_KEY_LEN + 2)
        return;
    issue(c, h, LDG_ISSUE_LEAF_MISMATCH, "leaf %s (bucket %u slot %u): %s",
          leaf_text(p + CHAIN_KEY_LEN + 2, k->mv_size - CHAIN_KEY_LEN - 2, t),
          p[CHAIN_KEY_LEN], p[CHAIN_KEY_LEN + 1], what);
}

/* Every leaf of the stored chain against the replayed one, two cursors. */
static int compare_leaves(struct ck *c, uint64_t h)
{
    MDB_txn *st = NULL;
    int rv = ldg_store_txn_begin(&c->scratch, true, &st);
    if (rv != 0)
        return rv;
    struct ldg_store_iter a, b;
    rv = ldg_store_iter_init(&a, c->l->store, c->txn, LDG_T_SLOT_LEAVES, c->chain,
                             CHAIN_KEY_LEN, NULL, 0);
    if (rv != 0) {
        ldg_store_txn_abort(st);
        return rv;
    }
    rv = ldg_store_iter_init(&b, &c->scratch, st, LDG_T_SLOT_LEAVES, c->chain, CHAIN_KEY_LEN,
                             NULL, 0);
    if (rv != 0) {
        ldg_store_iter_close(&a);
        ldg_store_txn_abort(st);
        return rv;
    }
    int ra = ldg_store_iter_next(&a), rb = ldg_store_iter_next(&b);
    while (ra == 1 || rb == 1) {
        int cmp = (ra == 1 && rb == 1) ? val_cmp(&a.key, &b.key) : (ra == 1 ? -1 : 1);
        if (cmp == 0) {
            if (val_cmp(&a.val, &b.val) != 0)
                leaf_issue(c, h, &a.key, "stored value/version differs from the replay");
            ra = ldg_store_iter_next(&a);
            rb = ldg_store_iter_next(&b);
        } else if (cmp < 0) {
            leaf_issue(c, h, &a.key, "stored but absent after replay");
            ra = ldg_store_iter_next(&a);
        } else {
            leaf_issue(c, h, &b.key, "present after replay but not stored");
            rb = ldg_store_iter_next(&b);
        }
    }
    rv = ra < 0 ? ra : rb < 0 ? rb : 0;
    ldg_store_iter_close(&a);
    ldg_store_iter_close(&b);
    ldg_store_txn_abort(st);
    return rv;
}

/* ---- the live commitment tree ---- */

/* Recompute slot (b, s) from its stored leaves and compare with the tree. */
static int check_slot(struct ck *c, uint64_t h, uint8_t b, uint8_t s,
                      const struct ldg_bucket_tree *t)
{
    uint8_t prefix[CHAIN_KEY_LEN + 2];
    memcpy(prefix, c->chain, CHAIN_KEY_LEN);
    prefix[CHAIN_KEY_LEN] = b;
    prefix[CHAIN_KEY_LEN + 1] = s;
    struct ldg_store_iter it;
    int rv = ldg_store_iter_init(&it, c->l->store, c->txn, LDG_T_SLOT_LEAVES, prefix,
                                 sizeof prefix, NULL, 0);
    if (rv != 0)
        return rv;
    struct ldg_slot_hasher sh;
    ldg_slot_hasher_init(&sh);
    bool bad = false;
    while ((rv = ldg_store_iter_next(&it)) == 1) {
        const uint8_t *v = it.val.mv_data;
        struct ldg_leaf leaf;
        leaf.key = ldg_bytes_of((const uint8_t *)it.key.mv_data + sizeof prefix,
                                it.key.mv_size - sizeof prefix);
        uint8_t lb, ls;
        if (leaf.key.len == 0 || leaf.key.len > UINT32_MAX || it.val.mv_size != LEAF_ROW_LEN ||
            v[0] != LDG_STORE_VALUE_V1) {
            leaf_issue(c, h, &it.key, "malformed leaf row");
            bad = true;
            continue;
        }
        ldg_leaf_key_locate(leaf.key, &lb, &ls);
        if (lb != b || ls != s) {
            leaf_issue(c, h, &it.key, "stored under the wrong bucket/slot");
            bad = true;
            continue;
        }
        memcpy(leaf.value_hash, v + 1, LDG_HASH_LEN);
        leaf.expires_at = ldg_get_u64be(v + 1 + LDG_HASH_LEN);
        leaf.version = ldg_get_u64be(v + 1 + LDG_HASH_LEN + 8);
        ldg_slot_hasher_add(&sh, &leaf);
    }
    ldg_store_iter_close(&it);
    if (rv < 0)
        return rv;
    uint8_t got[LDG_HASH_LEN];
    ldg_slot_hasher_final(&sh, got);
    if (!bad && memcmp(got, ldg_bucket_tree_slot(t, s), LDG_HASH_LEN) != 0) {
        char x[17], y[17];
        issue(c, h, LDG_ISSUE_LEAF_MISMATCH,
              "bucket %u slot %u: %zu stored leaves hash to %s.., the tree has %s..", b, s,
              sh.count, short_hex(got, x), short_hex(ldg_bucket_tree_slot(t, s), y));
    }
    return 0;
}

static int check_tree(struct ck *c, uint64_t h, const uint8_t expect[LDG_HASH_LEN],
                      uint32_t start, uint32_t n)
{
    uint8_t(*roots)[LDG_HASH_LEN] = ldg_malloc(LDG_STATE_BUCKETS * LDG_HASH_LEN);
    struct ldg_bucket_tree *t = ldg_malloc(sizeof *t);
    int rv = 0;
    for (unsigned b = 0; b < LDG_STATE_BUCKETS; b++) {
        rv = ldg_ledger_load_bucket(c->l->store, c->txn, c->chain, (uint8_t)b, t);
        if (rv == LDG_ECORRUPT) {
            issue(c, h, LDG_ISSUE_STATE_ROOT_MISMATCH, "bucket %u: unreadable tree rows", b);
            ldg_bucket_tree_init(t);
            rv = 0;
        } else if (rv != 0) {
            goto out;
        } else if (ldg_bucket_tree_check(t) != 0) {
            issue(c, h, LDG_ISSUE_STATE_ROOT_MISMATCH,
                  "bucket %u: interior tree nodes do not hash to their children", b);
        }
        memcpy(roots[b], ldg_bucket_tree_root(t), LDG_HASH_LEN);
        for (unsigned s = 0; s < LDG_BUCKET_SLOTS; s++) {
            uint32_t idx = b * LDG_BUCKET_SLOTS + s;
            if (n < LDG_INTEGRITY_SLOTS && ((idx - start) & (LDG_INTEGRITY_SLOTS - 1)) >= n)
                continue;
            rv = check_slot(c, h, (uint8_t)b, (uint8_t)s, t);
            if (rv != 0)
                goto out;
        }
    }
    uint8_t sr[LDG_HASH_LEN];
    ldg_state_root((const uint8_t(*)[LDG_HASH_LEN])roots, sr);
    if (memcmp(sr, expect, LDG_HASH_LEN) != 0) {
        char x[17], y[17];
        issue(c, h, LDG_ISSUE_STATE_ROOT_MISMATCH,
              "the live tree's state root %s.. differs from the tip header's %s..",
              short_hex(sr, x), short_hex(expect, y));
    }
out:
    ldg_free(t);
    ldg_free(roots);
    return rv;
}

/* ---- the check ---- */

static int check_blocks(struct ck *c, const struct ldg_chain_info *ci, bool full,
                        struct row *tip, bool *have_tip)
{
    struct ldg_store *s = c->l->store;
    uint8_t prev[LDG_HASH_LEN];
    bool have_prev = false;
    char x[17], y[17];
    for (uint64_t h = 0; h <= ci->height; h++) {
        if (c->cancel != NULL && atomic_load(c->cancel))
            return LDG_ECANCELED; /* the node is stopping */
        uint8_t key[CHAIN_KEY_LEN + 8];
        block_key(key, c->org, c->vault, h);
        MDB_val v;
        int rv = ldg_store_get(s, c->txn, LDG_T_BLOCKS, key, sizeof key, &v);
        if (rv == LDG_ENOTFOUND) {
            issue(c, h, LDG_ISSUE_MISSING_BLOCK, "block %" PRIu64 " of %" PRIu64 " is missing",
                  h, ci->height);
            have_prev = false;
            c->replay_on = false;
            continue;
        }
        if (rv != 0)
            return rv;
        struct row r;
        if (parse_row(&v, &r) != 0) {
            issue(c, h, LDG_ISSUE_BLOCK_HASH_MISMATCH, "stored block row cannot be decoded");
            have_prev = false;
            c->replay_on = false;
            continue;
        }
        c->rep->blocks_checked++;
        uint8_t hh[LDG_HASH_LEN];
        ldg_block_hash(&r.hdr, hh);
        if (memcmp(hh, r.cached, LDG_HASH_LEN) != 0)
            issue(c, h, LDG_ISSUE_BLOCK_HASH_MISMATCH,
                  "header hashes to %s.., stored block_hash is %s..", short_hex(hh, x),
                  short_hex(r.cached, y));
        if (r.hdr.height != h || r.hdr.organization_slug != c->org ||
            r.hdr.vault_slug != c->vault)
            issue(c, h, LDG_ISSUE_CHAIN_BREAK,
                  "header names height %" PRIu64 " of chain %" PRIu64 "/%" PRIu64,
                  r.hdr.height, r.hdr.organization_slug, r.hdr.vault_slug);
        if (h == 0 && memcmp(r.hdr.previous_hash, zero_hash, LDG_HASH_LEN) != 0)
            issue(c, h, LDG_ISSUE_CHAIN_BREAK, "genesis previous_hash is not zero");
        else if (h > 0 && have_prev && memcmp(r.hdr.previous_hash, prev, LDG_HASH_LEN) != 0)
            issue(c, h, LDG_ISSUE_CHAIN_BREAK,
                  "previous_hash %s.. is not block %" PRIu64 "'s block_hash %s..",
                  short_hex(r.hdr.previous_hash, x), h - 1, short_hex(prev, y));
        uint8_t tr[LDG_HASH_LEN];
        if (tx_root(&r, tr) != 0) {
            issue(c, h, LDG_ISSUE_TX_ROOT_MISMATCH, "stored transactions are malformed");
            c->replay_on = false;
        } else if (memcmp(tr, r.hdr.tx_merkle_root, LDG_HASH_LEN) != 0) {
            issue(c, h, LDG_ISSUE_TX_ROOT_MISMATCH,
                  "%" PRIu32 " stored transactions give root %s.., header has %s..",
                  r.tx_count, short_hex(tr, x), short_hex(r.hdr.tx_merkle_root, y));
        }
        if (full && c->replay_on) {
            rv = h == 0 ? replay_genesis(c, &r) : replay_block(c, h, &r);
            if (rv != 0)
                return rv;
        }
        memcpy(prev, r.cached, LDG_HASH_LEN);
        have_prev = true;
        if (h == ci->height) {
            *tip = r;
            *have_tip = true;
        }
    }
    return 0;
}

int ldg_integrity_check(struct ldg_ledger *l, MDB_txn *txn, uint64_t org, uint64_t vault,
                        const struct ldg_integrity_opts *opts,
                        struct ldg_integrity_report *out)
{
    memset(out, 0, sizeof *out);
    struct ldg_chain_info ci;
    int rv = ldg_ledger_get_chain(l, txn, org, vault, &ci);
    if (rv != 0)
        return rv;
    struct ck c;
    memset(&c, 0, sizeof c);
    c.l = l;
    c.txn = txn;
    c.org = org;
    c.vault = vault;
    c.rep = out;
    c.cancel = opts->cancel;
    chain_key(c.chain, org, vault);
    uint32_t start = opts->sample_start & (LDG_INTEGRITY_SLOTS - 1);
    uint32_t n = opts->sample_slots ? opts->sample_slots : LDG_INTEGRITY_DEFAULT_SAMPLE;
    if (opts->full || n > LDG_INTEGRITY_SLOTS)
        n = LDG_INTEGRITY_SLOTS;
    if (opts->full) {
        rv = scratch_open(&c, opts->scratch_dir);
        if (rv != 0)
            return rv;
    }

    struct row tip;
    bool have_tip = false;
    rv = check_blocks(&c, &ci, opts->full, &tip, &have_tip);
    if (rv != 0)
        goto out;

    /* The tip against the chain row, and nothing above it. */
    char x[17], y[17];
    if (have_tip) {
        if (memcmp(tip.cached, ci.tip_hash, LDG_HASH_LEN) != 0)
            issue(&c, ci.height, LDG_ISSUE_TIP_MISMATCH,
                  "chain metadata tip hash %s.. is not block %" PRIu64 "'s hash %s..",
                  short_hex(ci.tip_hash, x), ci.height, short_hex(tip.cached, y));
        if (memcmp(tip.hdr.state_root, ci.state_root, LDG_HASH_LEN) != 0)
            issue(&c, ci.height, LDG_ISSUE_TIP_MISMATCH,
                  "chain metadata state root %s.. is not block %" PRIu64 "'s %s..",
                  short_hex(ci.state_root, x), ci.height, short_hex(tip.hdr.state_root, y));
    }
    uint8_t key[CHAIN_KEY_LEN + 8];
    block_key(key, org, vault, ci.height + 1);
    MDB_val v;
    rv = ldg_store_get(l->store, txn, LDG_T_BLOCKS, key, sizeof key, &v);
    if (rv == 0)
        issue(&c, ci.height + 1, LDG_ISSUE_TIP_MISMATCH,
              "block %" PRIu64 " exists above the chain metadata height %" PRIu64,
              ci.height + 1, ci.height);
    else if (rv != LDG_ENOTFOUND)
        goto out;

    rv = check_tree(&c, ci.height, have_tip ? tip.hdr.state_root : ci.state_root, start, n);
    if (rv != 0)
        goto out;
    out->next_sample_start = (start + n) & (LDG_INTEGRITY_SLOTS - 1);

    if (opts->full && c.replay_on) {
        rv = compare_leaves(&c, ci.height);
        if (rv != 0)
            goto out;
        out->replayed = true;
    }
out:
    scratch_close(&c);
    return rv;
}
