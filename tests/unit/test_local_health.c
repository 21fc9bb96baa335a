/* Node-local chain health markers (ledger/local_health.h): persistence,
 * exclusion from dumps, effective status, bad rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ledger/local_health.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"

#include "tmp_dir.h"

static struct ldg_local_health sample(void)
{
    struct ldg_local_health h;
    memset(&h, 0, sizeof h);
    h.status = LDG_STATUS_DIVERGED;
    h.diverged_height = 42;
    memset(h.expected_root, 0xAA, LDG_HASH_LEN);
    memset(h.computed_root, 0xBB, LDG_HASH_LEN);
    h.attempts = 3;
    h.since_seconds = 1700000000;
    return h;
}

static void put_marker(struct ldg_store *s, uint64_t org, uint64_t vault,
                       const struct ldg_local_health *h)
{
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(s, false, &txn), 0);
    assert_int_equal(ldg_local_health_put(s, txn, org, vault, h), 0);
    assert_int_equal(ldg_store_txn_commit(txn), 0);
}

static int get_marker(struct ldg_store *s, uint64_t org, uint64_t vault,
                      struct ldg_local_health *out)
{
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(s, true, &txn), 0);
    int rv = ldg_local_health_get(s, txn, org, vault, out);
    ldg_store_txn_abort(txn);
    return rv;
}

static void test_marker_survives_restart(void **state)
{
    (void)state;
    char *dir = make_tmpdir("lhealth");
    struct ldg_store s;
    assert_int_equal(ldg_store_open(&s, dir, NULL, NULL), 0);
    struct ldg_local_health h = sample(), got;
    assert_int_equal(get_marker(&s, 1, 7, &got), LDG_ENOTFOUND);
    put_marker(&s, 1, 7, &h);
    ldg_store_close(&s);

    assert_int_equal(ldg_store_open(&s, dir, NULL, NULL), 0);
    assert_int_equal(get_marker(&s, 1, 7, &got), 0);
    assert_int_equal(got.status, LDG_STATUS_DIVERGED);
    assert_int_equal(got.diverged_height, 42);
    assert_memory_equal(got.expected_root, h.expected_root, LDG_HASH_LEN);
    assert_memory_equal(got.computed_root, h.computed_root, LDG_HASH_LEN);
    assert_int_equal(got.attempts, 3);
    assert_int_equal(got.since_seconds, 1700000000);
    /* Other chains are unaffected. */
    assert_int_equal(get_marker(&s, 1, 8, &got), LDG_ENOTFOUND);

    /* RECOVERING replaces it; clear removes it (twice is fine). */
    h.status = LDG_STATUS_RECOVERING;
    put_marker(&s, 1, 7, &h);
    assert_int_equal(get_marker(&s, 1, 7, &got), 0);
    assert_int_equal(got.status, LDG_STATUS_RECOVERING);
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&s, false, &txn), 0);
    assert_int_equal(ldg_local_health_clear(&s, txn, 1, 7), 0);
    assert_int_equal(ldg_local_health_clear(&s, txn, 1, 7), 0);
    assert_int_equal(ldg_store_txn_commit(txn), 0);
    ldg_store_close(&s);
    assert_int_equal(ldg_store_open(&s, dir, NULL, NULL), 0);
    assert_int_equal(get_marker(&s, 1, 7, &got), LDG_ENOTFOUND);
    ldg_store_close(&s);
    rm_dir(dir);
}

static void test_excluded_from_dumps(void **state)
{
    (void)state;
    char *da = make_tmpdir("lhealth");
    char *db = make_tmpdir("lhealth");
    struct ldg_store a, b;
    assert_int_equal(ldg_store_open(&a, da, NULL, NULL), 0);
    assert_int_equal(ldg_store_open(&b, db, NULL, NULL), 0);
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&a, false, &txn), 0);
    assert_int_equal(ldg_store_put(&a, txn, LDG_T_META, "k", 1, "v", 1), 0);
    assert_int_equal(ldg_store_txn_commit(txn), 0);

    struct ldg_buf before, after;
    ldg_buf_init(&before);
    ldg_buf_init(&after);
    assert_int_equal(ldg_store_txn_begin(&a, true, &txn), 0);
    assert_int_equal(ldg_store_dump(&a, txn, &before), 0);
    ldg_store_txn_abort(txn);

    struct ldg_local_health h = sample(), got;
    put_marker(&a, 1, 7, &h);
    assert_int_equal(ldg_store_txn_begin(&a, true, &txn), 0);
    assert_int_equal(ldg_store_dump(&a, txn, &after), 0);
    ldg_store_txn_abort(txn);
    /* The marker changes nothing in the dump (Raft snapshots never carry it). */
    assert_int_equal(before.len, after.len);
    assert_memory_equal(before.data, after.data, before.len);

    /* Loading a dump replaces the state: the target's own markers go. */
    put_marker(&b, 2, 9, &h);
    assert_int_equal(ldg_store_load(&b, after.data, after.len), 0);
    assert_int_equal(get_marker(&b, 2, 9, &got), LDG_ENOTFOUND);
    assert_int_equal(get_marker(&b, 1, 7, &got), LDG_ENOTFOUND);
    MDB_val v;
    assert_int_equal(ldg_store_txn_begin(&b, true, &txn), 0);
    assert_int_equal(ldg_store_get(&b, txn, LDG_T_META, "k", 1, &v), 0);
    ldg_store_txn_abort(txn);
    /* The source keeps its marker. */
    assert_int_equal(get_marker(&a, 1, 7, &got), 0);

    ldg_buf_close(&before);
    ldg_buf_close(&after);
    ldg_store_close(&a);
    ldg_store_close(&b);
    rm_dir(da);
    rm_dir(db);
}

static void test_effective_status(void **state)
{
    (void)state;
    char *dir = make_tmpdir("lhealth");
    struct ldg_store s;
    assert_int_equal(ldg_store_open(&s, dir, NULL, NULL), 0);
    struct ldg_local_health h = sample();
    put_marker(&s, 1, 7, &h);
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&s, true, &txn), 0);
    struct ldg_chain_info ci;
    memset(&ci, 0, sizeof ci);
    ci.org = 1;
    ci.vault = 7;
    ci.status = LDG_STATUS_ACTIVE;
    assert_int_equal(ldg_local_health_apply(&s, txn, &ci), 0);
    assert_int_equal(ci.status, LDG_STATUS_DIVERGED);
    ci.status = LDG_STATUS_DELETED; /* deleted cluster-wide wins */
    assert_int_equal(ldg_local_health_apply(&s, txn, &ci), 0);
    assert_int_equal(ci.status, LDG_STATUS_DELETED);
    ci.vault = 8; /* no marker: replicated status */
    ci.status = LDG_STATUS_READ_ONLY;
    assert_int_equal(ldg_local_health_apply(&s, txn, &ci), 0);
    assert_int_equal(ci.status, LDG_STATUS_READ_ONLY);
    ldg_store_txn_abort(txn);
    ldg_store_close(&s);
    rm_dir(dir);
}

static void test_bad_rows_and_args(void **state)
{
    (void)state;
    char *dir = make_tmpdir("lhealth");
    struct ldg_store s;
    assert_int_equal(ldg_store_open(&s, dir, NULL, NULL), 0);
    struct ldg_local_health h = sample(), got;
    h.status = LDG_STATUS_ACTIVE;
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&s, false, &txn), 0);
    assert_int_equal(ldg_local_health_put(&s, txn, 1, 7, &h), LDG_EINVAL);
    /* A short row and a row with an unknown status are corrupt, not asserted. */
    uint8_t key[16] = {0};
    key[7] = 1;
    key[15] = 7;
    assert_int_equal(ldg_store_put(&s, txn, LDG_T_LOCAL_HEALTH, key, 16, "\x01\x03", 2), 0);
    key[15] = 8;
    uint8_t row[LDG_LOCAL_HEALTH_VALUE_LEN] = {LDG_STORE_VALUE_V1, 9};
    assert_int_equal(ldg_store_put(&s, txn, LDG_T_LOCAL_HEALTH, key, 16, row, sizeof row), 0);
    assert_int_equal(ldg_store_txn_commit(txn), 0);
    assert_int_equal(get_marker(&s, 1, 7, &got), LDG_ECORRUPT);
    assert_int_equal(get_marker(&s, 1, 8, &got), LDG_ECORRUPT);
    ldg_store_close(&s);
    rm_dir(dir);
}

/* A store written before the node-local table existed opens read-only
 * (inspection tools) and simply has no markers. */
static void test_readonly_store_without_table(void **state)
{
    (void)state;
    char *dir = make_tmpdir("lhealth");
    struct ldg_store s;
    assert_int_equal(ldg_store_open(&s, dir, NULL, NULL), 0);
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&s, false, &txn), 0);
    assert_int_equal(mdb_drop(txn, s.dbi[LDG_T_LOCAL_HEALTH], 1), 0);
    assert_int_equal(ldg_store_txn_commit(txn), 0);
    ldg_store_close(&s);

    struct ldg_store_opts o = {.read_only = true};
    assert_int_equal(ldg_store_open(&s, dir, &o, NULL), 0);
    assert_true(s.local_missing);
    struct ldg_local_health got;
    assert_int_equal(get_marker(&s, 1, 7, &got), LDG_ENOTFOUND);
    ldg_store_close(&s);
    /* A normal open creates it again. */
    assert_int_equal(ldg_store_open(&s, dir, NULL, NULL), 0);
    assert_false(s.local_missing);
    struct ldg_local_health h = sample();
    put_marker(&s, 1, 7, &h);
    assert_int_equal(get_marker(&s, 1, 7, &got), 0);
    ldg_store_close(&s);
    rm_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_marker_survives_restart),
        cmocka_unit_test(test_excluded_from_dumps),
        cmocka_unit_test(test_effective_status),
        cmocka_unit_test(test_bad_rows_and_args),
        cmocka_unit_test(test_readonly_store_without_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
