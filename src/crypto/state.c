/* State commitments: leaves, slot hashes, bucket trees, state roots and
 * VerifiedRead proofs (see state.h). */
#include "crypto/state.h"

#include <stdlib.h>
#include <string.h>

#include "util/assert.h"
#include "util/err.h"
#include "util/mem.h"

/* D0..D8; test_hashing recomputes them. */
const uint8_t LDG_EMPTY_SUBTREE[LDG_BUCKET_DEPTH + 1][LDG_HASH_LEN] = {
    {0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
     0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55},
    {0x2d, 0xba, 0x5d, 0xbc, 0x33, 0x9e, 0x73, 0x16, 0xae, 0xa2, 0x68, 0x3f, 0xaf, 0x83, 0x9c, 0x1b,
     0x7b, 0x1e, 0xe2, 0x31, 0x3d, 0xb7, 0x92, 0x11, 0x25, 0x88, 0x11, 0x8d, 0xf0, 0x66, 0xaa, 0x35},
    {0x53, 0x10, 0xa3, 0x30, 0xe8, 0xf9, 0x70, 0x38, 0x85, 0x03, 0xc7, 0x33, 0x49, 0xd8, 0x0b, 0x45,
     0xcd, 0x76, 0x4d, 0xb6, 0x15, 0xf1, 0xbc, 0xed, 0x28, 0x01, 0xdc, 0xd4, 0x52, 0x4a, 0x2f, 0xf4},
    {0x80, 0xd1, 0xbf, 0x4d, 0xd6, 0xc1, 0xf7, 0x5b, 0xba, 0x02, 0x23, 0x37, 0xa3, 0xf0, 0x84, 0x20,
     0x78, 0xf5, 0xc2, 0xe7, 0xf3, 0xf5, 0x9d, 0xfd, 0x33, 0xcc, 0xbb, 0x8e, 0x96, 0x33, 0x67, 0xb2},
    {0x14, 0x92, 0xe6, 0x6e, 0x89, 0xe1, 0x86, 0x84, 0x02, 0x31, 0x85, 0x07, 0x12, 0x16, 0x12, 0x55,
     0xd2, 0x03, 0xb5, 0xbb, 0xf4, 0x8d, 0x21, 0x24, 0x2f, 0x0b, 0x51, 0x51, 0x9b, 0x5e, 0xb3, 0xd4},
    {0x03, 0xa8, 0x22, 0x89, 0xee, 0xa2, 0x1d, 0xe3, 0x7e, 0x72, 0xad, 0x6c, 0x07, 0x86, 0x5d, 0xca,
     0xb3, 0xf2, 0xcd, 0x68, 0x1a, 0xd4, 0x7c, 0x1c, 0xd0, 0xea, 0x30, 0xe1, 0x75, 0x1a, 0xd9, 0x96},
    {0x35, 0x60, 0x3b, 0x62, 0x78, 0xeb, 0x5d, 0x32, 0x0c, 0x99, 0xee, 0xb6, 0x83, 0x54, 0xd4, 0x48,
     0x49, 0x3e, 0x1a, 0xb9, 0x85, 0x7c, 0xb0, 0xbd, 0xdb, 0x9f, 0x7f, 0xa7, 0x22, 0x50, 0xa3, 0xa8},
    {0x8f, 0xf9, 0x10, 0x37, 0x04, 0xf4, 0xe7, 0xdf, 0xee, 0x61, 0x06, 0x55, 0x1e, 0xb4, 0x39, 0xd3,
     0xac, 0x6b, 0xc5, 0xcc, 0x48, 0x73, 0xce, 0xd8, 0xec, 0x33, 0xea, 0xf2, 0xd4, 0x2f, 0x4c, 0x31},
    {0x25, 0x9c, 0xa0, 0xef, 0x3e, 0xcb, 0x66, 0xbb, 0x9f, 0x02, 0xe2, 0xca, 0x9d, 0xe6, 0xc7, 0xff,
     0x13, 0x95, 0x1a, 0xd8, 0x24, 0xec, 0xe4, 0xc6, 0x80, 0x55, 0x5c, 0xfe, 0xf4, 0x32, 0x1d, 0x17},
};

const uint8_t LDG_EMPTY_STATE_ROOT[LDG_HASH_LEN] = {
    0x43, 0xea, 0x08, 0x0d, 0xa8, 0xad, 0x1e, 0x02, 0xbd, 0x2c, 0x5c, 0xcc, 0x1a, 0x9f, 0x97, 0x98,
    0x54, 0xa3, 0x49, 0x4c, 0x4b, 0x43, 0xbb, 0x23, 0x3e, 0x29, 0xbe, 0x5b, 0x40, 0xc7, 0x8a, 0x6e,
};

/* ---- leaves ---- */

void ldg_leaf_key_entity(struct ldg_buf *out, struct ldg_bytes key)
{
    ldg_buf_u8(out, LDG_LEAF_ENTITY);
    ldg_buf_append(out, key.data, key.len);
}

int ldg_leaf_key_relationship(struct ldg_buf *out, struct ldg_bytes resource,
                              struct ldg_bytes relation, struct ldg_bytes subject)
{
    if (resource.len > UINT32_MAX || relation.len > UINT32_MAX || subject.len > UINT32_MAX)
        return LDG_EINVAL;
    ldg_buf_u8(out, LDG_LEAF_RELATIONSHIP);
    ldg_buf_lenbytes(out, resource.data, resource.len);
    ldg_buf_lenbytes(out, relation.data, relation.len);
    ldg_buf_lenbytes(out, subject.data, subject.len);
    return 0;
}

void ldg_leaf_key_locate(struct ldg_bytes leaf_key, uint8_t *bucket, uint8_t *slot)
{
    uint8_t kh[LDG_HASH_LEN];
    ldg_sha256(leaf_key.data, leaf_key.len, kh);
    if (bucket)
        *bucket = kh[0];
    if (slot)
        *slot = kh[1];
}

int ldg_leaf_key_cmp(struct ldg_bytes a, struct ldg_bytes b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n > 0 ? memcmp(a.data, b.data, n) : 0;
    if (c != 0)
        return c;
    return a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}

/* len leaf_key ‖ H(value) ‖ expires_at u64be ‖ version u64be, key excluded
 * from |head| / |tail| so the key itself is never copied. */
static void leaf_parts(const struct ldg_leaf *leaf, uint8_t head[4],
                       uint8_t tail[LDG_HASH_LEN + 16])
{
    ldg_put_u32le(head, (uint32_t)leaf->key.len);
    memcpy(tail, leaf->value_hash, LDG_HASH_LEN);
    ldg_put_u64be(tail + LDG_HASH_LEN, leaf->expires_at);
    ldg_put_u64be(tail + LDG_HASH_LEN + 8, leaf->version);
}

int ldg_leaf_encode(const struct ldg_leaf *leaf, struct ldg_buf *out)
{
    uint8_t head[4], tail[LDG_HASH_LEN + 16];
    if (leaf->key.len > UINT32_MAX)
        return LDG_EINVAL;
    leaf_parts(leaf, head, tail);
    ldg_buf_append(out, head, sizeof head);
    ldg_buf_append(out, leaf->key.data, leaf->key.len);
    ldg_buf_append(out, tail, sizeof tail);
    return 0;
}

/* ---- slot hashes ---- */

void ldg_slot_hasher_init(struct ldg_slot_hasher *h)
{
    ldg_sha256_init(&h->ctx);
    h->count = 0;
}

void ldg_slot_hasher_add(struct ldg_slot_hasher *h, const struct ldg_leaf *leaf)
{
    uint8_t head[4], tail[LDG_HASH_LEN + 16];
    LDG_ASSERT(leaf->key.len <= UINT32_MAX);
    leaf_parts(leaf, head, tail);
    ldg_sha256_update(&h->ctx, head, sizeof head);
    ldg_sha256_update(&h->ctx, leaf->key.data, leaf->key.len);
    ldg_sha256_update(&h->ctx, tail, sizeof tail);
    h->count++;
}

void ldg_slot_hasher_final(struct ldg_slot_hasher *h, uint8_t out[LDG_HASH_LEN])
{
    if (h->count == 0) {
        memcpy(out, LDG_EMPTY_HASH, LDG_HASH_LEN);
        return;
    }
    ldg_sha256_final(&h->ctx, out);
}

int ldg_slot_hash(const struct ldg_leaf *leaves, size_t n, uint8_t out[LDG_HASH_LEN])
{
    struct ldg_slot_hasher h;
    for (size_t i = 0; i < n; i++) {
        if (leaves[i].key.len > UINT32_MAX)
            return LDG_EINVAL;
        if (i > 0 && ldg_leaf_key_cmp(leaves[i - 1].key, leaves[i].key) >= 0)
            return LDG_EINVAL;
    }
    ldg_slot_hasher_init(&h);
    for (size_t i = 0; i < n; i++)
        ldg_slot_hasher_add(&h, &leaves[i]);
    ldg_slot_hasher_final(&h, out);
    return 0;
}

/* ---- buckets ---- */

static void node_rehash(struct ldg_bucket_tree *t, unsigned i)
{
    ldg_sha256_pair(t->node[2 * i + 1], t->node[2 * i + 2], t->node[i]);
}

void ldg_bucket_tree_init(struct ldg_bucket_tree *t)
{
    /* Level d (root = 0) holds 2^d nodes from index 2^d - 1, each D(8 - d). */
    for (unsigned d = 0; d <= LDG_BUCKET_DEPTH; d++) {
        unsigned first = (1u << d) - 1;
        for (unsigned i = 0; i < (1u << d); i++)
            memcpy(t->node[first + i], LDG_EMPTY_SUBTREE[LDG_BUCKET_DEPTH - d], LDG_HASH_LEN);
    }
    memset(t->dirty, 0, sizeof t->dirty);
}

int ldg_bucket_tree_load(struct ldg_bucket_tree *t, const void *p, size_t n)
{
    if (n != LDG_BUCKET_TREE_BYTES)
        return LDG_EINVAL;
    memcpy(t->node, p, LDG_BUCKET_TREE_BYTES);
    memset(t->dirty, 0, sizeof t->dirty);
    return 0;
}

void ldg_bucket_tree_store(const struct ldg_bucket_tree *t, void *out)
{
    memcpy(out, t->node, LDG_BUCKET_TREE_BYTES);
}

void ldg_bucket_tree_set_slot(struct ldg_bucket_tree *t, uint8_t slot,
                              const uint8_t h[LDG_HASH_LEN])
{
    unsigned i = LDG_BUCKET_FIRST_SLOT + slot;
    memcpy(t->node[i], h, LDG_HASH_LEN);
    while (i > 0) {
        i = (i - 1) / 2;
        node_rehash(t, i);
    }
}

void ldg_bucket_tree_stage_slot(struct ldg_bucket_tree *t, uint8_t slot,
                                const uint8_t h[LDG_HASH_LEN])
{
    memcpy(t->node[LDG_BUCKET_FIRST_SLOT + slot], h, LDG_HASH_LEN);
    t->dirty[slot / 64] |= UINT64_C(1) << (slot % 64);
}

static int bit_get(const uint64_t *m, unsigned i)
{
    return (int)((m[i / 64] >> (i % 64)) & 1);
}

unsigned ldg_bucket_tree_flush(struct ldg_bucket_tree *t)
{
    uint64_t cur[LDG_BUCKET_SLOTS / 64];
    unsigned hashes = 0;

    memcpy(cur, t->dirty, sizeof cur);
    for (unsigned d = LDG_BUCKET_DEPTH; d >= 1; d--) {
        uint64_t up[LDG_BUCKET_SLOTS / 64] = {0};
        unsigned first = (1u << (d - 1)) - 1; /* first node of the parent level */
        for (unsigned pos = 0; pos < (1u << d); pos++) {
            if (bit_get(cur, pos))
                up[(pos / 2) / 64] |= UINT64_C(1) << ((pos / 2) % 64);
        }
        for (unsigned q = 0; q < (1u << (d - 1)); q++) {
            if (bit_get(up, q)) {
                node_rehash(t, first + q);
                hashes++;
            }
        }
        memcpy(cur, up, sizeof cur);
    }
    memset(t->dirty, 0, sizeof t->dirty);
    return hashes;
}

void ldg_bucket_tree_rebuild(struct ldg_bucket_tree *t)
{
    for (unsigned i = LDG_BUCKET_FIRST_SLOT; i-- > 0;)
        node_rehash(t, i);
    memset(t->dirty, 0, sizeof t->dirty);
}

int ldg_bucket_tree_check(const struct ldg_bucket_tree *t)
{
    uint8_t h[LDG_HASH_LEN];
    for (unsigned i = 0; i < LDG_BUCKET_SLOTS / 64; i++) {
        if (t->dirty[i] != 0)
            return LDG_ECORRUPT;
    }
    for (unsigned i = 0; i < LDG_BUCKET_FIRST_SLOT; i++) {
        ldg_sha256_pair(t->node[2 * i + 1], t->node[2 * i + 2], h);
        if (memcmp(h, t->node[i], LDG_HASH_LEN) != 0)
            return LDG_ECORRUPT;
    }
    return 0;
}

const uint8_t *ldg_bucket_tree_root(const struct ldg_bucket_tree *t)
{
    return t->node[0];
}

const uint8_t *ldg_bucket_tree_slot(const struct ldg_bucket_tree *t, uint8_t slot)
{
    return t->node[LDG_BUCKET_FIRST_SLOT + slot];
}

void ldg_bucket_tree_path(const struct ldg_bucket_tree *t, uint8_t slot,
                          uint8_t sib[LDG_BUCKET_DEPTH][LDG_HASH_LEN])
{
    unsigned i = LDG_BUCKET_FIRST_SLOT + slot;
    for (unsigned k = 0; k < LDG_BUCKET_DEPTH; k++) {
        unsigned s = (i & 1) ? i + 1 : i - 1; /* odd index = left child */
        memcpy(sib[k], t->node[s], LDG_HASH_LEN);
        i = (i - 1) / 2;
    }
}

void ldg_bucket_root_from_path(const uint8_t slot_hash[LDG_HASH_LEN], uint8_t slot,
                               const uint8_t sib[LDG_BUCKET_DEPTH][LDG_HASH_LEN],
                               uint8_t out[LDG_HASH_LEN])
{
    uint8_t h[LDG_HASH_LEN];
    memcpy(h, slot_hash, LDG_HASH_LEN);
    for (unsigned k = 0; k < LDG_BUCKET_DEPTH; k++) {
        if ((slot >> k) & 1)
            ldg_sha256_pair(sib[k], h, h);
        else
            ldg_sha256_pair(h, sib[k], h);
    }
    memcpy(out, h, LDG_HASH_LEN);
}

/* ---- state root ---- */

void ldg_state_root(const uint8_t roots[LDG_STATE_BUCKETS][LDG_HASH_LEN],
                    uint8_t out[LDG_HASH_LEN])
{
    ldg_sha256(roots, (size_t)LDG_STATE_BUCKETS * LDG_HASH_LEN, out);
}

struct located {
    const struct ldg_leaf *leaf;
    uint8_t bucket;
    uint8_t slot;
};

static int located_cmp(const void *pa, const void *pb)
{
    const struct located *a = pa, *b = pb;
    if (a->bucket != b->bucket)
        return a->bucket < b->bucket ? -1 : 1;
    if (a->slot != b->slot)
        return a->slot < b->slot ? -1 : 1;
    return ldg_leaf_key_cmp(a->leaf->key, b->leaf->key);
}

int ldg_state_root_from_leaves(const struct ldg_leaf *leaves, size_t n,
                               uint8_t (*bucket_roots)[LDG_HASH_LEN],
                               uint8_t out[LDG_HASH_LEN])
{
    uint8_t roots[LDG_STATE_BUCKETS][LDG_HASH_LEN];
    struct ldg_bucket_tree *tree = NULL;
    struct located *loc = NULL;
    int rv = LDG_EINVAL;

    for (size_t i = 0; i < n; i++) {
        if (leaves[i].key.len > UINT32_MAX)
            goto done;
    }
    if (n > 0) {
        loc = ldg_malloc(n * sizeof *loc);
        for (size_t i = 0; i < n; i++) {
            loc[i].leaf = &leaves[i];
            ldg_leaf_key_locate(leaves[i].key, &loc[i].bucket, &loc[i].slot);
        }
        qsort(loc, n, sizeof *loc, located_cmp);
    }
    for (size_t i = 1; i < n; i++) {
        if (ldg_leaf_key_cmp(loc[i - 1].leaf->key, loc[i].leaf->key) == 0)
            goto done;
    }
    tree = ldg_malloc(sizeof *tree);
    for (unsigned b = 0; b < LDG_STATE_BUCKETS; b++)
        memcpy(roots[b], LDG_EMPTY_SUBTREE[LDG_BUCKET_DEPTH], LDG_HASH_LEN);
    for (size_t i = 0; i < n;) {
        uint8_t b = loc[i].bucket;
        ldg_bucket_tree_init(tree);
        while (i < n && loc[i].bucket == b) {
            struct ldg_slot_hasher h;
            uint8_t s = loc[i].slot, sh[LDG_HASH_LEN];
            ldg_slot_hasher_init(&h);
            for (; i < n && loc[i].bucket == b && loc[i].slot == s; i++)
                ldg_slot_hasher_add(&h, loc[i].leaf);
            ldg_slot_hasher_final(&h, sh);
            ldg_bucket_tree_stage_slot(tree, s, sh);
        }
        ldg_bucket_tree_flush(tree);
        memcpy(roots[b], ldg_bucket_tree_root(tree), LDG_HASH_LEN);
    }
    ldg_state_root(roots, out);
    if (bucket_roots)
        memcpy(bucket_roots, roots, sizeof roots);
    rv = 0;
done:
    ldg_free(tree);
    ldg_free(loc);
    return rv;
}

/* ---- proofs ---- */

int ldg_state_proof_root(const struct ldg_state_proof *p, uint8_t out[LDG_HASH_LEN])
{
    struct ldg_slot_hasher h;
    struct ldg_sha256_ctx ctx;
    uint8_t bucket, slot, b2, s2;
    uint8_t slot_hash[LDG_HASH_LEN], bucket_root[LDG_HASH_LEN];
    int placed;

    if (p->leaf_key.len > UINT32_MAX || (p->leaf_key.len > 0 && !p->leaf_key.data) ||
        !p->siblings || !p->other_bucket_roots || (p->n_others > 0 && !p->others))
        return LDG_EINVAL;
    if (p->leaf && ldg_leaf_key_cmp(p->leaf->key, p->leaf_key) != 0)
        return LDG_EINVAL;
    ldg_leaf_key_locate(p->leaf_key, &bucket, &slot);
    for (size_t i = 0; i < p->n_others; i++) {
        const struct ldg_leaf *o = &p->others[i];
        if (o->key.len > UINT32_MAX || (o->key.len > 0 && !o->key.data))
            return LDG_EINVAL;
        if (i > 0 && ldg_leaf_key_cmp(p->others[i - 1].key, o->key) >= 0)
            return LDG_EINVAL;
        if (ldg_leaf_key_cmp(o->key, p->leaf_key) == 0)
            return LDG_EINVAL;
        ldg_leaf_key_locate(o->key, &b2, &s2);
        if (b2 != bucket || s2 != slot)
            return LDG_EINVAL;
    }

    /* Merge the proven leaf into the ascending others. */
    ldg_slot_hasher_init(&h);
    placed = p->leaf == NULL;
    for (size_t i = 0; i < p->n_others; i++) {
        if (!placed && ldg_leaf_key_cmp(p->leaf_key, p->others[i].key) < 0) {
            ldg_slot_hasher_add(&h, p->leaf);
            placed = 1;
        }
        ldg_slot_hasher_add(&h, &p->others[i]);
    }
    if (!placed)
        ldg_slot_hasher_add(&h, p->leaf);
    ldg_slot_hasher_final(&h, slot_hash);

    ldg_bucket_root_from_path(slot_hash, slot, p->siblings, bucket_root);

    ldg_sha256_init(&ctx);
    ldg_sha256_update(&ctx, p->other_bucket_roots, (size_t)bucket * LDG_HASH_LEN);
    ldg_sha256_update(&ctx, bucket_root, LDG_HASH_LEN);
    ldg_sha256_update(&ctx, p->other_bucket_roots + bucket,
                      (size_t)(LDG_STATE_BUCKETS - 1 - bucket) * LDG_HASH_LEN);
    ldg_sha256_final(&ctx, out);
    return 0;
}

int ldg_state_proof_verify(const struct ldg_state_proof *p,
                           const uint8_t state_root[LDG_HASH_LEN])
{
    uint8_t got[LDG_HASH_LEN];
    int rv = ldg_state_proof_root(p, got);
    if (rv != 0)
        return rv;
    return memcmp(got, state_root, LDG_HASH_LEN) == 0 ? 0 : LDG_ECORRUPT;
}
