/* SHA-256 (SPEC §5 "H") on OpenSSL's low-level API.
 *
 * Why the deprecated SHA256_Init/Update/Final: on OpenSSL 3.0 they dispatch
 * to the same SHA-NI/AVX2 block function as EVP but skip the provider
 * machinery. Measured on the build host for a 65-byte input (one Merkle
 * node): 92 ns low-level, 122 ns EVP with a pre-fetched EVP_MD and reused
 * context, 340 ns SHA256()/EVP_Digest. Inputs of 8 KiB cost the same (~4.6 us)
 * either way. The deprecation is confined to sha256.c.
 *
 * Nothing here allocates or fails. */
#ifndef LDG_CRYPTO_SHA256_H
#define LDG_CRYPTO_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/sha.h>

#define LDG_HASH_LEN 32
#define LDG_HASH_HEX_LEN 64 /* without the NUL */

/* SHA-256("") = e3b0c442...b855, SPEC's EMPTY. */
extern const uint8_t LDG_EMPTY_HASH[LDG_HASH_LEN];

/* Incremental hashing. Caller owns the storage; no close is needed. */
struct ldg_sha256_ctx {
    SHA256_CTX c; /* OpenSSL state; do not touch */
};

void ldg_sha256_init(struct ldg_sha256_ctx *ctx);
void ldg_sha256_update(struct ldg_sha256_ctx *ctx, const void *p, size_t n);
/* Write the digest to |out|. |ctx| must be re-initialized before reuse. */
void ldg_sha256_final(struct ldg_sha256_ctx *ctx, uint8_t out[LDG_HASH_LEN]);

/* Convenience appenders for the encodings of SPEC §5. */
void ldg_sha256_u8(struct ldg_sha256_ctx *ctx, uint8_t v);
void ldg_sha256_u32le(struct ldg_sha256_ctx *ctx, uint32_t v);
void ldg_sha256_u32be(struct ldg_sha256_ctx *ctx, uint32_t v);
void ldg_sha256_u64be(struct ldg_sha256_ctx *ctx, uint64_t v);
/* "len x": u32 little-endian byte length, then the bytes. |n| must fit in
 * 32 bits; callers validate untrusted lengths first (LDG_ASSERT otherwise). */
void ldg_sha256_lenbytes(struct ldg_sha256_ctx *ctx, const void *p, size_t n);

/* One-shot H(p[0..n)). |out| may alias the input. */
void ldg_sha256(const void *p, size_t n, uint8_t out[LDG_HASH_LEN]);

/* H(a ‖ b) of two 32-byte hashes (unprefixed bucket-tree parent). |out| may
 * alias |a| or |b|. */
void ldg_sha256_pair(const uint8_t a[LDG_HASH_LEN], const uint8_t b[LDG_HASH_LEN],
                     uint8_t out[LDG_HASH_LEN]);

/* Lower-case hex of |h| into |out| (65 bytes: 64 digits and a NUL). */
void ldg_hash_to_hex(const uint8_t h[LDG_HASH_LEN], char out[LDG_HASH_HEX_LEN + 1]);

/* Parse 64 hex digits (either case) from the start of |hex|; reading stops
 * at the first non-digit (a NUL included), characters after the 64th are not
 * looked at. |out| is written only on success.
 * Returns 0, or LDG_EINVAL if |hex| does not start with 64 hex digits. */
int ldg_hash_from_hex(const char *hex, uint8_t out[LDG_HASH_LEN]);

#endif
