/* Block headers and block hashes (SPEC §5 "Block header and block hash").
 *
 * Encoding, 148 bytes, all integers big-endian:
 *   off 0   height u64          off 88  state_root[32]
 *   off 8   organization_slug   off 120 timestamp_seconds i64
 *   off 16  vault_slug          off 128 timestamp_nanos u32
 *   off 24  previous_hash[32]   off 132 term u64
 *   off 56  tx_merkle_root[32]  off 140 committed_index u64
 * block_hash = H(encoding). leader_id is returned with headers but not hashed,
 * so it is not part of this struct. */
#ifndef LDG_CRYPTO_BLOCK_H
#define LDG_CRYPTO_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/sha256.h"

#define LDG_BLOCK_HEADER_LEN 148

struct ldg_block_header {
    uint64_t height;                         /* 0 = genesis */
    uint64_t organization_slug;              /* chain's organization */
    uint64_t vault_slug;                     /* 0 = the organization chain */
    uint8_t previous_hash[LDG_HASH_LEN];     /* block_hash(height - 1); zeros at genesis */
    uint8_t tx_merkle_root[LDG_HASH_LEN];    /* RFC 6962 MTH of tx hashes */
    uint8_t state_root[LDG_HASH_LEN];        /* state after this block */
    int64_t timestamp_seconds;               /* entry timestamp */
    uint32_t timestamp_nanos;                /* 0..999999999 */
    uint64_t term;                           /* proposing leader's Raft term */
    uint64_t committed_index;                /* Raft index of the producing entry */
};

/* Write the 148-byte encoding of |h| to |out|. */
void ldg_block_header_encode(const struct ldg_block_header *h,
                             uint8_t out[LDG_BLOCK_HEADER_LEN]);

/* Parse a 148-byte encoding. Returns 0, or LDG_EINVAL if n != 148 or
 * timestamp_nanos > 999999999. */
int ldg_block_header_decode(const uint8_t *p, size_t n, struct ldg_block_header *h);

/* block_hash = H(148-byte encoding). */
void ldg_block_hash(const struct ldg_block_header *h, uint8_t out[LDG_HASH_LEN]);

/* Fill |h| as the genesis block of a chain: height 0, previous_hash zeros,
 * tx_merkle_root EMPTY, state_root the empty state root, and the creating
 * entry's timestamp, term and index. */
void ldg_block_genesis(struct ldg_block_header *h, uint64_t organization_slug,
                       uint64_t vault_slug, int64_t timestamp_seconds,
                       uint32_t timestamp_nanos, uint64_t term, uint64_t committed_index);

/* Check that |next| chains onto |prev|: same organization and vault,
 * next->height == prev->height + 1 and next->previous_hash ==
 * block_hash(prev). Returns 0 or LDG_ECORRUPT. */
int ldg_block_check_link(const struct ldg_block_header *prev,
                         const struct ldg_block_header *next);

#endif
