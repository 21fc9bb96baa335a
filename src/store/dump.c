/* Whole-state dump and load (see store.h "whole-state dump").
 *
 * Happy path: dump walks every table with one cursor in the caller's txn and
 * appends rows, then a SHA-256 trailer; load checks the whole image first
 * (structure and checksum), then empties every table and refills it in one
 * write txn through ldg_store_write (map growth and retry).
 *
 * Failure modes: a bad image is LDG_ECORRUPT before anything is touched; a
 * storage error aborts the txn, so the previous state stays. */
#include <string.h>

#include "crypto/sha256.h"
#include "store/store.h"

static const uint8_t dump_magic[4] = {'L', 'D', 'S', 'D'};
#define DUMP_HEADER_LEN 6

int ldg_store_dump(struct ldg_store *s, MDB_txn *txn, struct ldg_buf *out)
{
    size_t start = out->len;
    ldg_buf_append(out, dump_magic, sizeof dump_magic);
    ldg_buf_u8(out, LDG_STORE_DUMP_VERSION);
    ldg_buf_u8(out, LDG_T_COUNT);
    for (int t = 0; t < LDG_T_COUNT; t++) {
        MDB_cursor *cur;
        int rc = mdb_cursor_open(txn, s->dbi[t], &cur);
        if (rc != 0)
            return ldg_err_from_mdb(rc);
        ldg_buf_u8(out, (uint8_t)t);
        size_t count_at = out->len;
        ldg_buf_u64be(out, 0);
        uint64_t rows = 0;
        MDB_val k, v;
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            ldg_buf_u32be(out, (uint32_t)k.mv_size);
            ldg_buf_append(out, k.mv_data, k.mv_size);
            ldg_buf_u32be(out, (uint32_t)v.mv_size);
            ldg_buf_append(out, v.mv_data, v.mv_size);
            rows++;
        }
        mdb_cursor_close(cur);
        if (rc != MDB_NOTFOUND)
            return ldg_err_from_mdb(rc);
        ldg_put_u64be(out->data + count_at, rows);
    }
    uint8_t sum[LDG_HASH_LEN];
    ldg_sha256(out->data + start, out->len - start, sum);
    ldg_buf_append(out, sum, sizeof sum);
    return 0;
}

/* Walk the rows of an image; |fn| (may be NULL) sees each row. */
typedef int (*row_fn)(void *arg, int table, MDB_val *k, MDB_val *v);

static int walk(const uint8_t *p, size_t n, row_fn fn, void *arg)
{
    if (n < DUMP_HEADER_LEN + LDG_HASH_LEN || memcmp(p, dump_magic, 4) != 0 ||
        p[4] != LDG_STORE_DUMP_VERSION || p[5] != LDG_T_COUNT)
        return LDG_ECORRUPT;
    size_t end = n - LDG_HASH_LEN;
    size_t off = DUMP_HEADER_LEN;
    for (int t = 0; t < LDG_T_COUNT; t++) {
        if (end - off < 9 || p[off] != t)
            return LDG_ECORRUPT;
        uint64_t rows = ldg_get_u64be(p + off + 1);
        off += 9;
        for (uint64_t r = 0; r < rows; r++) {
            MDB_val k, v;
            if (end - off < 4)
                return LDG_ECORRUPT;
            k.mv_size = ldg_get_u32be(p + off);
            off += 4;
            if (end - off < k.mv_size || k.mv_size == 0)
                return LDG_ECORRUPT;
            k.mv_data = (void *)(p + off);
            off += k.mv_size;
            if (end - off < 4)
                return LDG_ECORRUPT;
            v.mv_size = ldg_get_u32be(p + off);
            off += 4;
            if (end - off < v.mv_size)
                return LDG_ECORRUPT;
            v.mv_data = (void *)(p + off);
            off += v.mv_size;
            if (fn != NULL) {
                int rv = fn(arg, t, &k, &v);
                if (rv != 0)
                    return rv;
            }
        }
    }
    return off == end ? 0 : LDG_ECORRUPT;
}

int ldg_store_dump_check(const uint8_t *p, size_t n)
{
    if (n < DUMP_HEADER_LEN + LDG_HASH_LEN)
        return LDG_ECORRUPT;
    uint8_t sum[LDG_HASH_LEN];
    ldg_sha256(p, n - LDG_HASH_LEN, sum);
    if (memcmp(sum, p + n - LDG_HASH_LEN, LDG_HASH_LEN) != 0)
        return LDG_ECORRUPT;
    return walk(p, n, NULL, NULL);
}

struct load_ctx {
    struct ldg_store *s;
    MDB_txn *txn;
    const uint8_t *p;
    size_t n;
};

static int load_row(void *arg, int table, MDB_val *k, MDB_val *v)
{
    struct load_ctx *c = arg;
    /* Rows come in key order per table: append is the fast path. */
    int rc = mdb_put(c->txn, c->s->dbi[table], k, v, MDB_APPEND);
    if (rc == MDB_KEYEXIST)
        rc = mdb_put(c->txn, c->s->dbi[table], k, v, 0);
    if (rc == MDB_MAP_FULL)
        c->s->map_full = true;
    return rc == 0 ? 0 : ldg_err_from_mdb(rc);
}

static int load_txn(MDB_txn *txn, void *arg)
{
    struct load_ctx *c = arg;
    c->txn = txn;
    for (int t = 0; t < LDG_T_ALL; t++) {
        if (t >= LDG_T_COUNT && c->s->local_missing)
            continue;
        int rc = mdb_drop(txn, c->s->dbi[t], 0);
        if (rc != 0) {
            if (rc == MDB_MAP_FULL)
                c->s->map_full = true;
            return ldg_err_from_mdb(rc);
        }
    }
    return walk(c->p, c->n, load_row, c);
}

int ldg_store_load(struct ldg_store *s, const uint8_t *p, size_t n)
{
    int rv = ldg_store_dump_check(p, n);
    if (rv != 0)
        return rv;
    struct load_ctx c = {.s = s, .p = p, .n = n};
    return ldg_store_write(s, load_txn, &c);
}
