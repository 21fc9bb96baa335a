/* SHA-256 wrappers. See sha256.h for why the low-level OpenSSL API. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "crypto/sha256.h"

#include <string.h>

#include "util/assert.h"
#include "util/buf.h"
#include "util/err.h"

const uint8_t LDG_EMPTY_HASH[LDG_HASH_LEN] = {
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
    0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
    0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
};

void ldg_sha256_init(struct ldg_sha256_ctx *ctx)
{
    SHA256_Init(&ctx->c);
}

void ldg_sha256_update(struct ldg_sha256_ctx *ctx, const void *p, size_t n)
{
    if (n > 0)
        SHA256_Update(&ctx->c, p, n);
}

void ldg_sha256_final(struct ldg_sha256_ctx *ctx, uint8_t out[LDG_HASH_LEN])
{
    SHA256_Final(out, &ctx->c);
}

void ldg_sha256_u8(struct ldg_sha256_ctx *ctx, uint8_t v)
{
    SHA256_Update(&ctx->c, &v, 1);
}

void ldg_sha256_u32le(struct ldg_sha256_ctx *ctx, uint32_t v)
{
    uint8_t b[4];
    ldg_put_u32le(b, v);
    SHA256_Update(&ctx->c, b, sizeof b);
}

void ldg_sha256_u32be(struct ldg_sha256_ctx *ctx, uint32_t v)
{
    uint8_t b[4];
    ldg_put_u32be(b, v);
    SHA256_Update(&ctx->c, b, sizeof b);
}

void ldg_sha256_u64be(struct ldg_sha256_ctx *ctx, uint64_t v)
{
    uint8_t b[8];
    ldg_put_u64be(b, v);
    SHA256_Update(&ctx->c, b, sizeof b);
}

void ldg_sha256_lenbytes(struct ldg_sha256_ctx *ctx, const void *p, size_t n)
{
    LDG_ASSERT(n <= UINT32_MAX);
    ldg_sha256_u32le(ctx, (uint32_t)n);
    ldg_sha256_update(ctx, p, n);
}

void ldg_sha256(const void *p, size_t n, uint8_t out[LDG_HASH_LEN])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    if (n > 0)
        SHA256_Update(&c, p, n);
    SHA256_Final(out, &c);
}

void ldg_sha256_pair(const uint8_t a[LDG_HASH_LEN], const uint8_t b[LDG_HASH_LEN],
                     uint8_t out[LDG_HASH_LEN])
{
    uint8_t in[2 * LDG_HASH_LEN];
    memcpy(in, a, LDG_HASH_LEN);
    memcpy(in + LDG_HASH_LEN, b, LDG_HASH_LEN);
    ldg_sha256(in, sizeof in, out);
}

void ldg_hash_to_hex(const uint8_t h[LDG_HASH_LEN], char out[LDG_HASH_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < LDG_HASH_LEN; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 0xf];
    }
    out[LDG_HASH_HEX_LEN] = '\0';
}

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ldg_hash_from_hex(const char *hex, uint8_t out[LDG_HASH_LEN])
{
    uint8_t tmp[LDG_HASH_LEN];
    for (size_t i = 0; i < LDG_HASH_LEN; i++) {
        int hi = hex_nibble(hex[2 * i]);
        if (hi < 0)
            return LDG_EINVAL;
        int lo = hex_nibble(hex[2 * i + 1]);
        if (lo < 0)
            return LDG_EINVAL;
        tmp[i] = (uint8_t)(hi << 4 | lo);
    }
    memcpy(out, tmp, sizeof tmp);
    return 0;
}
