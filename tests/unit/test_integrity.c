/* Chain integrity checks (src/ledger/integrity.h): a healthy chain passes
 * both checks; corruptions written straight into the LMDB tables are found
 * with the right issue type and height. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/block.h"
#include "ledger/integrity.h"
#include "ledger/ledger.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/mem.h"

#define T0 1700000000LL

struct fx {
    char dir[64];
    struct ldg_store store;
    struct ldg_ledger ledger;
    uint64_t index;
    int64_t ts;
    uint64_t org, vault, vault2;
    uint64_t height; /* of |vault| */
};

static struct ldg_bytes B(const char *s)
{
    return ldg_bytes_str(s);
}

static uint32_t tx_counter;

static void apply(struct fx *f, const struct ldg_cmd *cmds, size_t n, struct ldg_apply_result *res)
{
    struct ldg_entry e = {.log_id = 9, .index = ++f->index, .term = 2, .ts_seconds = f->ts,
                          .ts_nanos = 7000, .leader_id = 1, .cmds = cmds, .cmd_count = n};
    f->ts++;
    assert_int_equal(ldg_ledger_apply_entry(&f->ledger, &e, res), 0);
}

static struct ldg_cmd_result apply1(struct fx *f, struct ldg_cmd c)
{
    struct ldg_apply_result res;
    apply(f, &c, 1, &res);
    assert_int_equal(res.count, 1);
    struct ldg_cmd_result r = res.results[0];
    ldg_apply_result_free(&res);
    return r;
}

static struct ldg_cmd write_cmd(uint64_t org, uint64_t vault, const char *client,
                                const struct ldg_op *ops, size_t n)
{
    struct ldg_cmd c = {.type = LDG_CMD_WRITE, .org = org, .vault = vault,
                        .client_id = B(client), .ops = ops, .op_count = n};
    tx_counter++;
    memcpy(c.tx_id, &tx_counter, sizeof tx_counter);
    return c;
}

/* An org with two vaults; |vault| gets entities, relationships, deletes,
 * a TTL expiry and a failed transaction next to good ones. */
static struct fx *fx_new(void)
{
    struct fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/ldg-integ-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(ldg_store_open(&f->store, f->dir, NULL, NULL), 0);
    ldg_ledger_init(&f->ledger, &f->store);
    f->ts = T0;
    struct ldg_cmd_result r = apply1(f, (struct ldg_cmd){.type = LDG_CMD_CREATE_ORG,
                                                         .name = B("acme")});
    f->org = r.org;
    r = apply1(f, (struct ldg_cmd){.type = LDG_CMD_CREATE_VAULT, .org = f->org, .name = B("a")});
    f->vault = r.vault;
    r = apply1(f, (struct ldg_cmd){.type = LDG_CMD_CREATE_VAULT, .org = f->org, .name = B("b")});
    f->vault2 = r.vault;

    char keys[40][16], vals[40][16];
    for (int i = 0; i < 40; i++) {
        snprintf(keys[i], sizeof keys[i], "user:%d", i);
        snprintf(vals[i], sizeof vals[i], "v%d", i);
    }
    /* Blocks 1..4: ten entities each, plus a relationship. */
    for (int b = 0; b < 4; b++) {
        struct ldg_op ops[11];
        memset(ops, 0, sizeof ops);
        for (int i = 0; i < 10; i++) {
            ops[i].type = LDG_OP_SET_ENTITY;
            ops[i].key = B(keys[b * 10 + i]);
            ops[i].value = B(vals[b * 10 + i]);
        }
        ops[10].type = LDG_OP_CREATE_RELATIONSHIP;
        ops[10].resource = B("doc:1");
        ops[10].relation = B("viewer");
        ops[10].subject = B(keys[b]);
        struct ldg_cmd c = write_cmd(f->org, f->vault, "alice", ops, 11);
        assert_int_equal(apply1(f, c).code, LDG_RES_OK);
    }
    /* Block 5: two transactions in one entry, one failing (not_exists on a
     * live key), a TTL set and a delete; plus a write on vault2. */
    struct ldg_op good[] = {
        {.type = LDG_OP_SET_ENTITY, .key = B("ttl"), .value = B("x"), .expires_at = T0 + 20},
        {.type = LDG_OP_DELETE_ENTITY, .key = B("user:3")},
        {.type = LDG_OP_DELETE_RELATIONSHIP, .resource = B("doc:1"), .relation = B("viewer"),
         .subject = B("user:1")},
    };
    struct ldg_op bad[] = {{.type = LDG_OP_SET_ENTITY, .key = B("user:5"), .value = B("z"),
                            .cond = LDG_COND_NOT_EXISTS}};
    struct ldg_op other[] = {{.type = LDG_OP_SET_ENTITY, .key = B("k"), .value = B("v")}};
    struct ldg_cmd cmds[] = {
        write_cmd(f->org, f->vault, "bob", good, 3),
        write_cmd(f->org, f->vault, "bob", bad, 1),
        write_cmd(f->org, f->vault2, "bob", other, 1),
        write_cmd(f->org, f->vault, "alice", other, 1),
    };
    struct ldg_apply_result res;
    apply(f, cmds, 4, &res);
    assert_int_equal(res.results[0].code, LDG_RES_OK);
    assert_int_equal(res.results[1].code, LDG_RES_KEY_EXISTS);
    assert_int_equal(res.results[3].code, LDG_RES_OK);
    ldg_apply_result_free(&res);
    /* Block 6: TTL expiry (system:gc). */
    f->ts = T0 + 30;
    struct ldg_op ex[] = {{.type = LDG_OP_EXPIRE_ENTITY, .key = B("ttl"), .expired_at = T0 + 20}};
    struct ldg_cmd gc = {.type = LDG_CMD_EXPIRE, .org = f->org, .vault = f->vault, .ops = ex,
                         .op_count = 1};
    memset(gc.tx_id, 0x77, sizeof gc.tx_id);
    struct ldg_cmd_result gr = apply1(f, gc);
    assert_int_equal(gr.code, LDG_RES_OK);
    f->height = gr.height;
    assert_int_equal(f->height, 6);
    return f;
}

static void fx_free(struct fx *f)
{
    ldg_store_close(&f->store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
}

static void check(struct fx *f, uint64_t vault, bool full, uint32_t sample,
                  struct ldg_integrity_report *rep)
{
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
    struct ldg_integrity_opts o = {.full = full, .sample_slots = sample};
    assert_int_equal(ldg_integrity_check(&f->ledger, txn, f->org, vault, &o, rep), 0);
    ldg_store_txn_abort(txn);
}

static bool has_issue(const struct ldg_integrity_report *r, int type, uint64_t height)
{
    for (size_t i = 0; i < r->count; i++)
        if (r->issues[i].type == type && r->issues[i].height == height)
            return true;
    return false;
}

static void print_issues(const struct ldg_integrity_report *r)
{
    for (size_t i = 0; i < r->count; i++)
        printf("  issue h=%llu %s: %s\n", (unsigned long long)r->issues[i].height,
               ldg_issue_type_name(r->issues[i].type), r->issues[i].description);
}

/* Expect |type| at |height| from the quick check (all slots) and the full check. */
static void expect_issue(struct fx *f, int type, uint64_t height, bool quick_too)
{
    struct ldg_integrity_report rep;
    if (quick_too) {
        check(f, f->vault, false, LDG_INTEGRITY_SLOTS, &rep);
        print_issues(&rep);
        assert_true(has_issue(&rep, type, height));
        ldg_integrity_report_free(&rep);
    }
    check(f, f->vault, true, 0, &rep);
    print_issues(&rep);
    assert_true(has_issue(&rep, type, height));
    ldg_integrity_report_free(&rep);
    /* The other vault is untouched. */
    check(f, f->vault2, true, 0, &rep);
    assert_int_equal(rep.count, 0);
    ldg_integrity_report_free(&rep);
}

static void test_healthy(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    struct ldg_integrity_report rep;
    uint64_t vaults[] = {0, f->vault, f->vault2};
    for (size_t i = 0; i < 3; i++) {
        struct ldg_chain_info ci;
        MDB_txn *txn;
        assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
        assert_int_equal(ldg_ledger_get_chain(&f->ledger, txn, f->org, vaults[i], &ci), 0);
        ldg_store_txn_abort(txn);
        check(f, vaults[i], false, 0, &rep);
        print_issues(&rep);
        assert_int_equal(rep.count, 0);
        assert_int_equal(rep.blocks_checked, ci.height + 1);
        assert_int_equal(rep.next_sample_start, LDG_INTEGRITY_DEFAULT_SAMPLE);
        assert_false(rep.replayed);
        ldg_integrity_report_free(&rep);
        check(f, vaults[i], true, 0, &rep);
        print_issues(&rep);
        assert_int_equal(rep.count, 0);
        assert_true(rep.replayed);
        assert_int_equal(rep.blocks_checked, ci.height + 1);
        ldg_integrity_report_free(&rep);
    }
    /* The sample rotates and wraps. */
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
    struct ldg_integrity_opts o = {.sample_start = 65000, .sample_slots = 1000};
    assert_int_equal(ldg_integrity_check(&f->ledger, txn, f->org, f->vault, &o, &rep), 0);
    assert_int_equal(rep.next_sample_start, (65000 + 1000) % 65536);
    ldg_integrity_report_free(&rep);
    /* Unknown chain. */
    assert_int_equal(ldg_integrity_check(&f->ledger, txn, f->org, 999, &o, &rep),
                     LDG_ENOTFOUND);
    ldg_integrity_report_free(&rep);
    ldg_store_txn_abort(txn);
    fx_free(f);
}

/* ---- corruption helpers: write straight into the tables ---- */

static void block_key_of(uint8_t k[24], uint64_t org, uint64_t vault, uint64_t h)
{
    ldg_put_u64be(k, org);
    ldg_put_u64be(k + 8, vault);
    ldg_put_u64be(k + 16, h);
}

/* Flip byte |off| (negative: from the end) of the value at |key|. */
static void flip(struct fx *f, enum ldg_table t, const void *key, size_t klen, long off)
{
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&f->store, false, &txn), 0);
    MDB_val v;
    assert_int_equal(ldg_store_get(&f->store, txn, t, key, klen, &v), 0);
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    size_t at = off < 0 ? v.mv_size - (size_t)(-off) : (size_t)off;
    copy[at] ^= 0x01;
    assert_int_equal(ldg_store_put(&f->store, txn, t, key, klen, copy, v.mv_size), 0);
    free(copy);
    assert_int_equal(ldg_store_txn_commit(txn), 0);
}

/* First key of table |t| under the vault's chain prefix accepted by |pred|. */
static size_t find_key(struct fx *f, enum ldg_table t, bool (*pred)(const MDB_val *k),
                       uint8_t *out)
{
    uint8_t prefix[16];
    ldg_put_u64be(prefix, f->org);
    ldg_put_u64be(prefix + 8, f->vault);
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&f->store, true, &txn), 0);
    struct ldg_store_iter it;
    assert_int_equal(ldg_store_iter_init(&it, &f->store, txn, t, prefix, 16, NULL, 0), 0);
    size_t n = 0;
    while (ldg_store_iter_next(&it) == 1)
        if (pred(&it.key)) {
            n = it.key.mv_size;
            memcpy(out, it.key.mv_data, n);
            break;
        }
    ldg_store_iter_close(&it);
    ldg_store_txn_abort(txn);
    assert_true(n > 0);
    return n;
}

static unsigned node_of(const MDB_val *k)
{
    const uint8_t *p = k->mv_data;
    return (unsigned)p[17] << 8 | p[18];
}

static bool is_slot_node(const MDB_val *k)
{
    return node_of(k) >= 255;
}

static bool is_root_node(const MDB_val *k)
{
    return node_of(k) == 0;
}

static bool any_key(const MDB_val *k)
{
    (void)k;
    return true;
}

static void test_header_flip(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    uint8_t k[24];
    block_key_of(k, f->org, f->vault, 2);
    flip(f, LDG_T_BLOCKS, k, sizeof k, 1 + 88); /* state_root byte of the header */
    expect_issue(f, LDG_ISSUE_BLOCK_HASH_MISMATCH, 2, true);
    fx_free(f);
}

static void test_tx_flip(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    uint8_t k[24];
    block_key_of(k, f->org, f->vault, 3);
    flip(f, LDG_T_BLOCKS, k, sizeof k, -20); /* inside the last op of the last tx */
    expect_issue(f, LDG_ISSUE_TX_ROOT_MISMATCH, 3, true);
    fx_free(f);
}

static void test_leaf_flip(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    uint8_t k[512];
    size_t n = find_key(f, LDG_T_SLOT_LEAVES, any_key, k);
    flip(f, LDG_T_SLOT_LEAVES, k, n, 1); /* H(value) */
    expect_issue(f, LDG_ISSUE_LEAF_MISMATCH, f->height, true);
    fx_free(f);
}

static void test_slot_hash_flip(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    uint8_t k[64];
    size_t n = find_key(f, LDG_T_TREE, is_slot_node, k);
    flip(f, LDG_T_TREE, k, n, 5);
    expect_issue(f, LDG_ISSUE_LEAF_MISMATCH, f->height, true);
    fx_free(f);
}

static void test_bucket_node_flip(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    uint8_t k[64];
    size_t n = find_key(f, LDG_T_TREE, is_root_node, k);
    flip(f, LDG_T_TREE, k, n, 5);
    expect_issue(f, LDG_ISSUE_STATE_ROOT_MISMATCH, f->height, true);
    fx_free(f);
}

static void test_missing_block(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    uint8_t k[24];
    block_key_of(k, f->org, f->vault, 4);
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&f->store, false, &txn), 0);
    assert_int_equal(ldg_store_del(&f->store, txn, LDG_T_BLOCKS, k, sizeof k), 0);
    assert_int_equal(ldg_store_txn_commit(txn), 0);
    expect_issue(f, LDG_ISSUE_MISSING_BLOCK, 4, true);
    struct ldg_integrity_report rep;
    check(f, f->vault, false, 0, &rep);
    assert_int_equal(rep.blocks_checked, f->height); /* one fewer */
    ldg_integrity_report_free(&rep);
    fx_free(f);
}

static void test_tip_flip(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    uint8_t k[16];
    ldg_put_u64be(k, f->org);
    ldg_put_u64be(k + 8, f->vault);
    /* version ‖ status ‖ created ts(12) ‖ height(8) ‖ tip_hash */
    flip(f, LDG_T_CHAINS, k, sizeof k, 1 + 1 + 12 + 8 + 3);
    expect_issue(f, LDG_ISSUE_TIP_MISMATCH, f->height, true);
    fx_free(f);
}

/* Rewrite block |h|'s header with |edit| applied and re-link every block
 * above it and the chain row, so that the hash chain is consistent again:
 * only the replay can tell. */
static void rewrite_header(struct fx *f, uint64_t h, void (*edit)(struct ldg_block_header *))
{
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&f->store, false, &txn), 0);
    uint8_t prev[32];
    for (uint64_t i = h; i <= f->height; i++) {
        uint8_t k[24];
        block_key_of(k, f->org, f->vault, i);
        MDB_val v;
        assert_int_equal(ldg_store_get(&f->store, txn, LDG_T_BLOCKS, k, 24, &v), 0);
        uint8_t *c = malloc(v.mv_size);
        memcpy(c, v.mv_data, v.mv_size);
        struct ldg_block_header hd;
        assert_int_equal(ldg_block_header_decode(c + 1, 148, &hd), 0);
        if (i == h)
            edit(&hd);
        else
            memcpy(hd.previous_hash, prev, 32);
        ldg_block_header_encode(&hd, c + 1);
        ldg_block_hash(&hd, prev);
        memcpy(c + 1 + 148 + 8, prev, 32);
        assert_int_equal(ldg_store_put(&f->store, txn, LDG_T_BLOCKS, k, 24, c, v.mv_size), 0);
        free(c);
    }
    uint8_t ck[16];
    ldg_put_u64be(ck, f->org);
    ldg_put_u64be(ck + 8, f->vault);
    MDB_val v;
    assert_int_equal(ldg_store_get(&f->store, txn, LDG_T_CHAINS, ck, 16, &v), 0);
    uint8_t *c = malloc(v.mv_size);
    memcpy(c, v.mv_data, v.mv_size);
    memcpy(c + 1 + 1 + 12 + 8, prev, 32);
    assert_int_equal(ldg_store_put(&f->store, txn, LDG_T_CHAINS, ck, 16, c, v.mv_size), 0);
    free(c);
    assert_int_equal(ldg_store_txn_commit(txn), 0);
}

static void bump_state_root(struct ldg_block_header *h)
{
    h->state_root[0] ^= 0x80;
}

static void test_forged_state_root_needs_replay(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    rewrite_header(f, 2, bump_state_root);
    struct ldg_integrity_report rep;
    check(f, f->vault, false, LDG_INTEGRITY_SLOTS, &rep);
    print_issues(&rep);
    assert_int_equal(rep.count, 0); /* the hash chain is consistent */
    ldg_integrity_report_free(&rep);
    check(f, f->vault, true, 0, &rep);
    print_issues(&rep);
    assert_int_equal(rep.count, 1);
    assert_true(has_issue(&rep, LDG_ISSUE_STATE_ROOT_MISMATCH, 2));
    ldg_integrity_report_free(&rep);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthy),
        cmocka_unit_test(test_header_flip),
        cmocka_unit_test(test_tx_flip),
        cmocka_unit_test(test_leaf_flip),
        cmocka_unit_test(test_slot_hash_flip),
        cmocka_unit_test(test_bucket_node_flip),
        cmocka_unit_test(test_missing_block),
        cmocka_unit_test(test_tip_flip),
        cmocka_unit_test(test_forged_state_root_needs_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
