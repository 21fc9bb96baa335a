/* Block header encoding and hashing (see block.h). */
#include "crypto/block.h"

#include <string.h>

#include "crypto/state.h"
#include "util/buf.h"
#include "util/err.h"

void ldg_block_header_encode(const struct ldg_block_header *h,
                             uint8_t out[LDG_BLOCK_HEADER_LEN])
{
    ldg_put_u64be(out + 0, h->height);
    ldg_put_u64be(out + 8, h->organization_slug);
    ldg_put_u64be(out + 16, h->vault_slug);
    memcpy(out + 24, h->previous_hash, LDG_HASH_LEN);
    memcpy(out + 56, h->tx_merkle_root, LDG_HASH_LEN);
    memcpy(out + 88, h->state_root, LDG_HASH_LEN);
    ldg_put_u64be(out + 120, (uint64_t)h->timestamp_seconds);
    ldg_put_u32be(out + 128, h->timestamp_nanos);
    ldg_put_u64be(out + 132, h->term);
    ldg_put_u64be(out + 140, h->committed_index);
}

int ldg_block_header_decode(const uint8_t *p, size_t n, struct ldg_block_header *h)
{
    if (n != LDG_BLOCK_HEADER_LEN || ldg_get_u32be(p + 128) > 999999999u)
        return LDG_EINVAL;
    h->height = ldg_get_u64be(p + 0);
    h->organization_slug = ldg_get_u64be(p + 8);
    h->vault_slug = ldg_get_u64be(p + 16);
    memcpy(h->previous_hash, p + 24, LDG_HASH_LEN);
    memcpy(h->tx_merkle_root, p + 56, LDG_HASH_LEN);
    memcpy(h->state_root, p + 88, LDG_HASH_LEN);
    h->timestamp_seconds = (int64_t)ldg_get_u64be(p + 120);
    h->timestamp_nanos = ldg_get_u32be(p + 128);
    h->term = ldg_get_u64be(p + 132);
    h->committed_index = ldg_get_u64be(p + 140);
    return 0;
}

void ldg_block_hash(const struct ldg_block_header *h, uint8_t out[LDG_HASH_LEN])
{
    uint8_t enc[LDG_BLOCK_HEADER_LEN];
    ldg_block_header_encode(h, enc);
    ldg_sha256(enc, sizeof enc, out);
}

void ldg_block_genesis(struct ldg_block_header *h, uint64_t organization_slug,
                       uint64_t vault_slug, int64_t timestamp_seconds,
                       uint32_t timestamp_nanos, uint64_t term, uint64_t committed_index)
{
    memset(h, 0, sizeof *h);
    h->organization_slug = organization_slug;
    h->vault_slug = vault_slug;
    memcpy(h->tx_merkle_root, LDG_EMPTY_HASH, LDG_HASH_LEN);
    memcpy(h->state_root, LDG_EMPTY_STATE_ROOT, LDG_HASH_LEN);
    h->timestamp_seconds = timestamp_seconds;
    h->timestamp_nanos = timestamp_nanos;
    h->term = term;
    h->committed_index = committed_index;
}

int ldg_block_check_link(const struct ldg_block_header *prev,
                         const struct ldg_block_header *next)
{
    uint8_t ph[LDG_HASH_LEN];
    if (next->organization_slug != prev->organization_slug ||
        next->vault_slug != prev->vault_slug || prev->height == UINT64_MAX ||
        next->height != prev->height + 1)
        return LDG_ECORRUPT;
    ldg_block_hash(prev, ph);
    return memcmp(ph, next->previous_hash, LDG_HASH_LEN) == 0 ? 0 : LDG_ECORRUPT;
}
