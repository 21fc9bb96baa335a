/* RFC 6962 Merkle Tree Hash, audit paths and their verification.
 *
 * The root is computed streaming: leaves are pushed on a stack of perfect
 * subtrees that merge while the two topmost have equal size; the leftover
 * subtrees (sizes = the set bits of n, decreasing) are folded right to left,
 * which is exactly the k = largest-power-of-two split of RFC 6962. */
#include "crypto/merkle.h"

#include <string.h>

#include "util/err.h"

void ldg_merkle_leaf_hash(const uint8_t d[LDG_HASH_LEN], uint8_t out[LDG_HASH_LEN])
{
    uint8_t in[1 + LDG_HASH_LEN];
    in[0] = 0x00;
    memcpy(in + 1, d, LDG_HASH_LEN);
    ldg_sha256(in, sizeof in, out);
}

void ldg_merkle_node_hash(const uint8_t l[LDG_HASH_LEN], const uint8_t r[LDG_HASH_LEN],
                          uint8_t out[LDG_HASH_LEN])
{
    uint8_t in[1 + 2 * LDG_HASH_LEN];
    in[0] = 0x01;
    memcpy(in + 1, l, LDG_HASH_LEN);
    memcpy(in + 1 + LDG_HASH_LEN, r, LDG_HASH_LEN);
    ldg_sha256(in, sizeof in, out);
}

void ldg_merkle_root(const uint8_t (*d)[LDG_HASH_LEN], size_t n, uint8_t out[LDG_HASH_LEN])
{
    uint8_t stack[LDG_MERKLE_MAX_PATH + 1][LDG_HASH_LEN];
    size_t size[LDG_MERKLE_MAX_PATH + 1];
    size_t top = 0; /* entries in use */

    if (n == 0) {
        memcpy(out, LDG_EMPTY_HASH, LDG_HASH_LEN);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ldg_merkle_leaf_hash(d[i], stack[top]);
        size[top++] = 1;
        while (top >= 2 && size[top - 2] == size[top - 1]) {
            ldg_merkle_node_hash(stack[top - 2], stack[top - 1], stack[top - 2]);
            size[top - 2] *= 2;
            top--;
        }
    }
    while (top >= 2) {
        ldg_merkle_node_hash(stack[top - 2], stack[top - 1], stack[top - 2]);
        top--;
    }
    memcpy(out, stack[0], LDG_HASH_LEN);
}

/* Largest power of two strictly below n (n >= 2). */
static size_t split_point(size_t n)
{
    size_t k = 1;
    while (k < n - k) /* k * 2 < n without overflow */
        k <<= 1;
    return k;
}

int ldg_merkle_path(const uint8_t (*d)[LDG_HASH_LEN], size_t n, size_t index,
                    uint8_t (*path)[LDG_HASH_LEN], size_t cap, size_t *path_len)
{
    uint8_t top_down[LDG_MERKLE_MAX_PATH][LDG_HASH_LEN];
    size_t len = 0;
    size_t lo = 0, sz = n, m = index;

    if (index >= n)
        return LDG_EINVAL;
    while (sz > 1) {
        size_t k = split_point(sz);
        if (m < k) {
            ldg_merkle_root(d + lo + k, sz - k, top_down[len++]);
            sz = k;
        } else {
            ldg_merkle_root(d + lo, k, top_down[len++]);
            lo += k;
            m -= k;
            sz -= k;
        }
    }
    if (len > cap)
        return LDG_ETOOBIG;
    for (size_t i = 0; i < len; i++)
        memcpy(path[i], top_down[len - 1 - i], LDG_HASH_LEN);
    *path_len = len;
    return 0;
}

int ldg_merkle_path_root(const uint8_t d[LDG_HASH_LEN], size_t index, size_t n,
                         const uint8_t (*path)[LDG_HASH_LEN], size_t path_len,
                         uint8_t root[LDG_HASH_LEN])
{
    uint8_t r[LDG_HASH_LEN];
    size_t fn = index, sn;

    if (index >= n)
        return LDG_EINVAL;
    sn = n - 1;
    ldg_merkle_leaf_hash(d, r);
    for (size_t i = 0; i < path_len; i++) {
        if (sn == 0)
            return LDG_EINVAL; /* path longer than the tree is deep */
        if ((fn & 1) || fn == sn) {
            ldg_merkle_node_hash(path[i], r, r);
            while (!(fn & 1) && fn != 0) { /* skip levels where we were promoted */
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            ldg_merkle_node_hash(r, path[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0)
        return LDG_EINVAL; /* path shorter than the tree is deep */
    memcpy(root, r, LDG_HASH_LEN);
    return 0;
}

int ldg_merkle_path_verify(const uint8_t d[LDG_HASH_LEN], size_t index, size_t n,
                           const uint8_t (*path)[LDG_HASH_LEN], size_t path_len,
                           const uint8_t root[LDG_HASH_LEN])
{
    uint8_t got[LDG_HASH_LEN];
    int rv = ldg_merkle_path_root(d, index, n, path, path_len, got);
    if (rv != 0)
        return rv;
    return memcmp(got, root, LDG_HASH_LEN) == 0 ? 0 : LDG_ECORRUPT;
}
