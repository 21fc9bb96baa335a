#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/store.h"
#include "util/err.h"

#include "tmp_dir.h"

static void test_open_put_get_reopen(void **state)
{
    (void)state;
    char *dir = make_tmpdir("store");
    char path[512];
    snprintf(path, sizeof path, "%s/state", dir);
    struct ldg_store s;
    struct ldg_err e = {0};
    assert_int_equal(ldg_store_open(&s, path, NULL, &e), 0);
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&s, false, &txn), 0);
    assert_int_equal(ldg_store_put(&s, txn, LDG_T_META, "k", 1, "v1", 2), 0);
    assert_int_equal(ldg_store_txn_commit(txn), 0);
    ldg_store_close(&s);

    assert_int_equal(ldg_store_open(&s, path, NULL, &e), 0);
    assert_int_equal(ldg_store_txn_begin(&s, true, &txn), 0);
    MDB_val v;
    assert_int_equal(ldg_store_get(&s, txn, LDG_T_META, "k", 1, &v), 0);
    assert_int_equal(v.mv_size, 2);
    assert_memory_equal(v.mv_data, "v1", 2);
    assert_int_equal(ldg_store_get(&s, txn, LDG_T_META, "x", 1, &v), LDG_ENOTFOUND);
    /* Tables are separate namespaces. */
    assert_int_equal(ldg_store_get(&s, txn, LDG_T_ORGS, "k", 1, &v), LDG_ENOTFOUND);
    ldg_store_txn_abort(txn);

    /* Abort discards writes; delete of a missing key is NOTFOUND. */
    assert_int_equal(ldg_store_txn_begin(&s, false, &txn), 0);
    assert_int_equal(ldg_store_del(&s, txn, LDG_T_META, "k", 1), 0);
    assert_int_equal(ldg_store_del(&s, txn, LDG_T_META, "k", 1), LDG_ENOTFOUND);
    ldg_store_txn_abort(txn);
    assert_int_equal(ldg_store_txn_begin(&s, true, &txn), 0);
    assert_int_equal(ldg_store_get(&s, txn, LDG_T_META, "k", 1, &v), 0);
    ldg_store_txn_abort(txn);
    ldg_store_close(&s);

    /* A file in place of the directory is a clean error. */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/file", dir);
    FILE *f = fopen(bad, "w");
    fputs("x", f);
    fclose(f);
    assert_true(ldg_store_open(&s, bad, NULL, &e) < 0);
    assert_non_null(strstr(e.msg, "open store"));
    rm_dir(dir);
}

static void test_iter_prefix_and_start(void **state)
{
    (void)state;
    char *dir = make_tmpdir("store");
    struct ldg_store s;
    assert_int_equal(ldg_store_open(&s, dir, NULL, NULL), 0);
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&s, false, &txn), 0);
    const char *keys[] = {"a", "b", "b1", "b2", "b3", "c"};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(ldg_store_put(&s, txn, LDG_T_ENTITIES, keys[i], strlen(keys[i]), "", 0), 0);

    struct ldg_store_iter it;
    char got[16][8];
    int n = 0, rv;
    assert_int_equal(ldg_store_iter_init(&it, &s, txn, LDG_T_ENTITIES, "b", 1, NULL, 0), 0);
    while ((rv = ldg_store_iter_next(&it)) == 1) {
        memcpy(got[n], it.key.mv_data, it.key.mv_size);
        got[n][it.key.mv_size] = 0;
        n++;
    }
    ldg_store_iter_close(&it);
    assert_int_equal(rv, 0);
    assert_int_equal(n, 4);
    assert_string_equal(got[0], "b"); /* a prefix sorts first */
    assert_string_equal(got[3], "b3");

    /* Resume after "b1" (paging): start at "b1\0". */
    n = 0;
    assert_int_equal(ldg_store_iter_init(&it, &s, txn, LDG_T_ENTITIES, "b", 1, "b1\0", 3), 0);
    while ((rv = ldg_store_iter_next(&it)) == 1)
        n++;
    ldg_store_iter_close(&it);
    assert_int_equal(n, 2);

    /* Empty prefix walks everything. */
    n = 0;
    assert_int_equal(ldg_store_iter_init(&it, &s, txn, LDG_T_ENTITIES, "", 0, NULL, 0), 0);
    while (ldg_store_iter_next(&it) == 1)
        n++;
    ldg_store_iter_close(&it);
    assert_int_equal(n, 6);

    assert_int_equal(ldg_store_del_prefix(&s, txn, LDG_T_ENTITIES, "b", 1), 4);
    MDB_val v;
    assert_int_equal(ldg_store_get(&s, txn, LDG_T_ENTITIES, "a", 1, &v), 0);
    assert_int_equal(ldg_store_get(&s, txn, LDG_T_ENTITIES, "c", 1, &v), 0);
    assert_int_equal(ldg_store_get(&s, txn, LDG_T_ENTITIES, "b2", 2, &v), LDG_ENOTFOUND);
    assert_int_equal(ldg_store_del_prefix(&s, txn, LDG_T_ENTITIES, "", 0), 2);
    ldg_store_txn_abort(txn);
    ldg_store_close(&s);
    rm_dir(dir);
}

struct fill {
    struct ldg_store *s;
    int calls;
};

static int fill_fn(MDB_txn *txn, void *arg)
{
    struct fill *f = arg;
    f->calls++;
    static uint8_t val[4000];
    for (uint32_t i = 0; i < 1000; i++) {
        uint8_t k[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
        memset(val, (int)(i & 0xff), sizeof val);
        int rv = ldg_store_put(f->s, txn, LDG_T_BLOCKS, k, 4, val, sizeof val);
        if (rv != 0)
            return rv;
    }
    return 0;
}

static void test_map_growth(void **state)
{
    (void)state;
    char *dir = make_tmpdir("store");
    struct ldg_store s;
    struct ldg_store_opts o = {.map_size = 256 * 1024, .max_map_size = 64 * 1024 * 1024};
    assert_int_equal(ldg_store_open(&s, dir, &o, NULL), 0);
    struct fill f = {.s = &s};
    assert_int_equal(ldg_store_write(&s, fill_fn, &f), 0);
    assert_true(f.calls > 1); /* 4 MB does not fit in 256 KiB: it grew and retried */
    assert_true(s.map_size >= 4 * 1024 * 1024);
    MDB_txn *txn;
    assert_int_equal(ldg_store_txn_begin(&s, true, &txn), 0);
    MDB_val v;
    uint8_t k[4] = {0, 0, 3, 0xe7};
    assert_int_equal(ldg_store_get(&s, txn, LDG_T_BLOCKS, k, 4, &v), 0);
    assert_int_equal(((uint8_t *)v.mv_data)[0], 0xe7);
    ldg_store_txn_abort(txn);
    ldg_store_close(&s);

    /* With a limit too small the write fails cleanly with EFULL. */
    char *dir2 = make_tmpdir("store");
    struct ldg_store_opts o2 = {.map_size = 256 * 1024, .max_map_size = 512 * 1024};
    assert_int_equal(ldg_store_open(&s, dir2, &o2, NULL), 0);
    f.calls = 0;
    assert_int_equal(ldg_store_write(&s, fill_fn, &f), LDG_EFULL);
    ldg_store_close(&s);
    rm_dir(dir2);
    rm_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_put_get_reopen),
        cmocka_unit_test(test_iter_prefix_and_start),
        cmocka_unit_test(test_map_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
