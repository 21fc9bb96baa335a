/* State commitments (SPEC §5 "State", "State root").
 *
 *   leaf_key  entity:       0x01 ‖ key
 *             relationship: 0x02 ‖ len resource ‖ len relation ‖ len subject
 *   leaf enc  len leaf_key ‖ H(value) ‖ expires_at u64be ‖ version u64be
 *   kh = H(leaf_key); bucket = kh[0]; slot = kh[1]
 *   slot_hash   = H(leaf encodings of the slot, ascending leaf_key, bytewise
 *                 with a prefix first), or EMPTY for an empty slot
 *   bucket_root = complete binary tree of depth 8 over the 256 slot hashes,
 *                 slot 0 leftmost, parent = H(left ‖ right), no prefixes
 *   state_root  = H(bucket_root[0] ‖ ... ‖ bucket_root[255])   (8 KiB input)
 * Empty subtrees: D0 = EMPTY, D(i+1) = H(Di ‖ Di); an empty bucket's root is D8.
 *
 * Incremental maintenance: a bucket is a struct ldg_bucket_tree, a flat array
 * of its 511 node hashes that the ledger loads from and stores to LMDB as one
 * 16352-byte value. Changing a leaf costs one slot rehash (the slot's leaves)
 * plus 8 node hashes, plus one 8 KiB state_root hash per block.
 *
 * Nothing here allocates except ldg_state_root_from_leaves. */
#ifndef LDG_CRYPTO_STATE_H
#define LDG_CRYPTO_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/bytes.h"
#include "crypto/sha256.h"
#include "util/buf.h"

#define LDG_STATE_BUCKETS 256
#define LDG_BUCKET_SLOTS 256
#define LDG_BUCKET_DEPTH 8
#define LDG_BUCKET_NODES 511                       /* 255 interior + 256 slots */
#define LDG_BUCKET_FIRST_SLOT 255                  /* node index of slot 0 */
#define LDG_BUCKET_TREE_BYTES (LDG_BUCKET_NODES * LDG_HASH_LEN) /* 16352 */

#define LDG_LEAF_ENTITY 0x01       /* leaf_key prefix of an entity */
#define LDG_LEAF_RELATIONSHIP 0x02 /* leaf_key prefix of a relationship */

/* D0..D8: root of an empty subtree of height i (D0 = EMPTY = empty slot,
 * D8 = empty bucket root). */
extern const uint8_t LDG_EMPTY_SUBTREE[LDG_BUCKET_DEPTH + 1][LDG_HASH_LEN];
/* H(D8 ‖ ... ‖ D8) (256 times): the state root of an empty chain. */
extern const uint8_t LDG_EMPTY_STATE_ROOT[LDG_HASH_LEN];

/* ---- leaves ---- */

/* Append the entity leaf key 0x01 ‖ key to |out|. */
void ldg_leaf_key_entity(struct ldg_buf *out, struct ldg_bytes key);

/* Append the relationship leaf key 0x02 ‖ len resource ‖ len relation ‖
 * len subject to |out|. Returns 0, or LDG_EINVAL (nothing appended) if a
 * length does not fit in u32. */
int ldg_leaf_key_relationship(struct ldg_buf *out, struct ldg_bytes resource,
                              struct ldg_bytes relation, struct ldg_bytes subject);

/* bucket = H(leaf_key)[0], slot = H(leaf_key)[1]. Either out-param may be NULL. */
void ldg_leaf_key_locate(struct ldg_bytes leaf_key, uint8_t *bucket, uint8_t *slot);

/* Bytewise order with a proper prefix first (memcmp, then shorter first; the
 * same as LMDB's default key order). Returns <0, 0, >0. */
int ldg_leaf_key_cmp(struct ldg_bytes a, struct ldg_bytes b);

/* One state leaf. value_hash = H(value): the empty value of a relationship
 * hashes to EMPTY. */
struct ldg_leaf {
    struct ldg_bytes key;               /* leaf_key (with its 0x01/0x02 prefix) */
    uint8_t value_hash[LDG_HASH_LEN];   /* H(value) */
    uint64_t expires_at;                /* Unix seconds, 0 = never */
    uint64_t version;                   /* height of the last set / the creation */
};

/* Append the leaf encoding to |out|. Returns 0 or LDG_EINVAL (key too long). */
int ldg_leaf_encode(const struct ldg_leaf *leaf, struct ldg_buf *out);

/* ---- slot hashes ---- */

/* Streaming slot hash: feed a slot's leaves in ascending leaf_key order
 * (caller's duty; e.g. an LMDB cursor over (bucket, slot, leaf_key) keys). */
struct ldg_slot_hasher {
    struct ldg_sha256_ctx ctx; /* running hash */
    size_t count;              /* leaves fed so far */
};

void ldg_slot_hasher_init(struct ldg_slot_hasher *h);
/* LDG_ASSERTs that the key fits in u32 (keys are validated on write). */
void ldg_slot_hasher_add(struct ldg_slot_hasher *h, const struct ldg_leaf *leaf);
/* EMPTY when no leaf was added. */
void ldg_slot_hasher_final(struct ldg_slot_hasher *h, uint8_t out[LDG_HASH_LEN]);

/* Slot hash of |leaves[0..n)|, which must be in strictly ascending leaf_key
 * order. Returns 0, or LDG_EINVAL if they are not (or a key is too long). */
int ldg_slot_hash(const struct ldg_leaf *leaves, size_t n, uint8_t out[LDG_HASH_LEN]);

/* ---- buckets ---- */

/* One bucket's tree in heap order: node[0] is the bucket root, the children
 * of node i are 2i+1 and 2i+2, slot s is node[255 + s]. The |node| array is
 * the persisted form (LDG_BUCKET_TREE_BYTES bytes, no header). Slots changed
 * with _stage_slot are marked in |dirty| until _flush. */
struct ldg_bucket_tree {
    uint8_t node[LDG_BUCKET_NODES][LDG_HASH_LEN]; /* node hashes */
    uint64_t dirty[LDG_BUCKET_SLOTS / 64];         /* staged, unflushed slots */
};

/* An empty bucket: every slot EMPTY, every level D(i). */
void ldg_bucket_tree_init(struct ldg_bucket_tree *t);

/* Load the persisted 511 node hashes (copied; |p| borrowed). Does not check
 * consistency: call ldg_bucket_tree_check when the bytes come from disk and
 * must be trusted. Returns 0, or LDG_EINVAL if n != LDG_BUCKET_TREE_BYTES. */
int ldg_bucket_tree_load(struct ldg_bucket_tree *t, const void *p, size_t n);

/* Copy the 511 node hashes (LDG_BUCKET_TREE_BYTES) to |out|. Flush first. */
void ldg_bucket_tree_store(const struct ldg_bucket_tree *t, void *out);

/* Set slot |slot|'s hash and rehash its 8 ancestors now. */
void ldg_bucket_tree_set_slot(struct ldg_bucket_tree *t, uint8_t slot,
                              const uint8_t h[LDG_HASH_LEN]);

/* Set slot |slot|'s hash and defer the ancestors to ldg_bucket_tree_flush,
 * which rehashes each dirty ancestor once (cheaper when a block changes many
 * slots of one bucket). */
void ldg_bucket_tree_stage_slot(struct ldg_bucket_tree *t, uint8_t slot,
                                const uint8_t h[LDG_HASH_LEN]);

/* Rehash the ancestors of staged slots. Returns the number of node hashes
 * computed (0 when nothing was staged). */
unsigned ldg_bucket_tree_flush(struct ldg_bucket_tree *t);

/* Recompute all 255 interior nodes from the slots (clears |dirty|). */
void ldg_bucket_tree_rebuild(struct ldg_bucket_tree *t);

/* Returns 0 if every interior node is H(left ‖ right) of its children and
 * nothing is staged, else LDG_ECORRUPT. Costs 255 hashes. */
int ldg_bucket_tree_check(const struct ldg_bucket_tree *t);

/* The bucket root, node[0] (stale while slots are staged). */
const uint8_t *ldg_bucket_tree_root(const struct ldg_bucket_tree *t);

/* The slot's current hash. */
const uint8_t *ldg_bucket_tree_slot(const struct ldg_bucket_tree *t, uint8_t slot);

/* The 8 sibling hashes from slot |slot| up to the root, bottom-up:
 * sib[0] is the neighbouring slot, sib[7] the other half of the bucket. */
void ldg_bucket_tree_path(const struct ldg_bucket_tree *t, uint8_t slot,
                          uint8_t sib[LDG_BUCKET_DEPTH][LDG_HASH_LEN]);

/* Bucket root implied by |slot_hash| at |slot| and its 8 siblings: at level
 * i, the running hash is the right child iff bit i of |slot| is set. */
void ldg_bucket_root_from_path(const uint8_t slot_hash[LDG_HASH_LEN], uint8_t slot,
                               const uint8_t sib[LDG_BUCKET_DEPTH][LDG_HASH_LEN],
                               uint8_t out[LDG_HASH_LEN]);

/* ---- state root ---- */

/* H(roots[0] ‖ ... ‖ roots[255]). */
void ldg_state_root(const uint8_t roots[LDG_STATE_BUCKETS][LDG_HASH_LEN],
                    uint8_t out[LDG_HASH_LEN]);

/* Full recomputation from an unordered set of leaves (integrity checks,
 * tests). Writes the state root and, if |bucket_roots| is not NULL, all 256
 * bucket roots. Allocates O(n) temporarily (sorting).
 * Returns 0, or LDG_EINVAL if two leaves share a leaf_key or a key is too long. */
int ldg_state_root_from_leaves(const struct ldg_leaf *leaves, size_t n,
                               uint8_t (*bucket_roots)[LDG_HASH_LEN],
                               uint8_t out[LDG_HASH_LEN]);

/* ---- proofs (VerifiedRead) ---- */

/* What VerifiedRead returns for one leaf_key, everything borrowed. */
struct ldg_state_proof {
    struct ldg_bytes leaf_key;        /* the key being proven */
    const struct ldg_leaf *leaf;      /* its leaf (key == leaf_key), or NULL to
                                       * prove absence */
    const struct ldg_leaf *others;    /* the slot's other leaves, ascending */
    size_t n_others;
    const uint8_t (*siblings)[LDG_HASH_LEN];           /* 8, bottom-up */
    const uint8_t (*other_bucket_roots)[LDG_HASH_LEN]; /* 255: buckets 0..255 in
                                                        * order, skipping the key's */
};

/* The state root the proof implies. Checks that every leaf lies in the key's
 * bucket and slot, that |others| ascend strictly and do not contain leaf_key,
 * and that leaf->key == leaf_key. The caller checks H(value) ==
 * leaf->value_hash for the value it was given.
 * Returns 0, or LDG_EINVAL for a malformed proof. */
int ldg_state_proof_root(const struct ldg_state_proof *p, uint8_t out[LDG_HASH_LEN]);

/* Returns 0 if the proof yields |state_root|, LDG_EINVAL if it is malformed,
 * LDG_ECORRUPT if it is well formed but yields another root. */
int ldg_state_proof_verify(const struct ldg_state_proof *p,
                           const uint8_t state_root[LDG_HASH_LEN]);

#endif
