/* RFC 6962 Merkle Tree Hash over a block's transaction hashes (SPEC §5
 * "tx_merkle_root") and its audit paths ("tx_proof").
 *
 * Leaf inputs d[i] are the 32-byte transaction hashes. Then
 *   MTH({})   = EMPTY
 *   MTH({d0}) = H(0x00 ‖ d0)                      (leaf hash)
 *   MTH(d[0..n)) = H(0x01 ‖ MTH(d[0..k)) ‖ MTH(d[k..n)))   for n > 1,
 * k the largest power of two below n. An audit path lists sibling subtree
 * hashes bottom-up (RFC 6962 §2.1.1 PATH).
 *
 * Nothing here allocates. */
#ifndef LDG_CRYPTO_MERKLE_H
#define LDG_CRYPTO_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/sha256.h"

/* An audit path never has more entries than bits in size_t. */
#define LDG_MERKLE_MAX_PATH 64

/* H(0x00 ‖ d). */
void ldg_merkle_leaf_hash(const uint8_t d[LDG_HASH_LEN], uint8_t out[LDG_HASH_LEN]);

/* H(0x01 ‖ l ‖ r). |out| may alias |l| or |r|. */
void ldg_merkle_node_hash(const uint8_t l[LDG_HASH_LEN], const uint8_t r[LDG_HASH_LEN],
                          uint8_t out[LDG_HASH_LEN]);

/* MTH of the |n| leaf inputs |d| (n = 0 gives EMPTY). Streaming, O(n) hashes,
 * O(log n) stack. */
void ldg_merkle_root(const uint8_t (*d)[LDG_HASH_LEN], size_t n, uint8_t out[LDG_HASH_LEN]);

/* Audit path of leaf |index| in the tree over |d[0..n)|, written bottom-up to
 * |path| (room for |cap| hashes); |*path_len| gets its length (0 when n = 1;
 * at most ceil(log2 n)). Costs O(n) hashes.
 * Returns 0; LDG_EINVAL if index >= n; LDG_ETOOBIG if cap is too small. */
int ldg_merkle_path(const uint8_t (*d)[LDG_HASH_LEN], size_t n, size_t index,
                    uint8_t (*path)[LDG_HASH_LEN], size_t cap, size_t *path_len);

/* Root implied by leaf input |d| (a tx hash, hashed here as H(0x00 ‖ d)) at
 * |index| of a tree of |n| leaves with audit path |path[0..path_len)|
 * (RFC 9162 §2.1.3.2). Returns 0 and writes |root|; LDG_EINVAL if index >= n
 * or the path length does not fit the tree shape. */
int ldg_merkle_path_root(const uint8_t d[LDG_HASH_LEN], size_t index, size_t n,
                         const uint8_t (*path)[LDG_HASH_LEN], size_t path_len,
                         uint8_t root[LDG_HASH_LEN]);

/* Check that tx hash |d| is leaf |index| of the |n|-leaf tree with root
 * |root|. Returns 0 when it is; LDG_EINVAL for a malformed path (see above);
 * LDG_ECORRUPT when the path is well formed but yields another root. */
int ldg_merkle_path_verify(const uint8_t d[LDG_HASH_LEN], size_t index, size_t n,
                           const uint8_t (*path)[LDG_HASH_LEN], size_t path_len,
                           const uint8_t root[LDG_HASH_LEN]);

#endif
