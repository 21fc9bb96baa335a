/* Page tokens: see page_token.h. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "rpc/page_token.h"
#include "util/assert.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"

#define TOKEN_MAGIC 'P'
#define TOKEN_VERSION 1
#define QH_LEN 16
#define MAC_LEN 16
#define HEAD_LEN (3 + QH_LEN + 2)

static uint8_t token_key[32];
static bool token_key_set;

void ldg_page_token_set_key(const uint8_t key[32])
{
    memcpy(token_key, key, sizeof token_key);
    token_key_set = true;
}

static const uint8_t *key_get(void)
{
    if (!token_key_set) {
        /* OpenSSL seeds from getrandom(); failure means no entropy at all. */
        int ok = RAND_bytes(token_key, sizeof token_key);
        LDG_ASSERT(ok == 1);
        token_key_set = true;
    }
    return token_key;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *ldg_base64url_encode(const uint8_t *p, size_t n)
{
    char *out = ldg_malloc((n + 2) / 3 * 4 + 1);
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = B64[(v >> 6) & 63];
        out[o++] = B64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = B64[(v >> 6) & 63];
    }
    out[o] = '\0';
    return out;
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long ldg_base64url_decode(const char *s, size_t n, uint8_t *out)
{
    if (n % 4 == 1)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val(s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* Leftover bits must be zero (canonical encoding only). */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (long)o;
}

void ldg_page_query_hash(uint8_t kind, uint64_t org, uint64_t vault,
                         const struct ldg_bytes *parts, size_t n_parts,
                         uint8_t out[LDG_HASH_LEN])
{
    struct ldg_sha256_ctx c;
    ldg_sha256_init(&c);
    ldg_sha256_u8(&c, kind);
    ldg_sha256_u64be(&c, org);
    ldg_sha256_u64be(&c, vault);
    for (size_t i = 0; i < n_parts; i++)
        ldg_sha256_lenbytes(&c, parts[i].data, parts[i].len);
    ldg_sha256_final(&c, out);
}

static void mac_of(const uint8_t *p, size_t n, uint8_t out[MAC_LEN])
{
    uint8_t full[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    const uint8_t *key = key_get();
    uint8_t *r = HMAC(EVP_sha256(), key, 32, p, n, full, &len);
    LDG_ASSERT(r != NULL && len >= MAC_LEN);
    memcpy(out, full, MAC_LEN);
}

char *ldg_page_token_encode(uint8_t kind, const uint8_t query_hash[LDG_HASH_LEN],
                            struct ldg_bytes cursor)
{
    LDG_ASSERT(cursor.len <= LDG_PAGE_TOKEN_MAX_CURSOR);
    struct ldg_buf b;
    ldg_buf_init(&b);
    ldg_buf_u8(&b, TOKEN_MAGIC);
    ldg_buf_u8(&b, TOKEN_VERSION);
    ldg_buf_u8(&b, kind);
    ldg_buf_append(&b, query_hash, QH_LEN);
    uint8_t l[2] = {(uint8_t)(cursor.len >> 8), (uint8_t)cursor.len};
    ldg_buf_append(&b, l, 2);
    if (cursor.len)
        ldg_buf_append(&b, cursor.data, cursor.len);
    uint8_t mac[MAC_LEN];
    mac_of(b.data, b.len, mac);
    ldg_buf_append(&b, mac, MAC_LEN);
    char *s = ldg_base64url_encode(b.data, b.len);
    ldg_buf_close(&b);
    return s;
}

int ldg_page_token_decode(const char *token, uint8_t kind,
                          const uint8_t query_hash[LDG_HASH_LEN], uint8_t **cursor,
                          size_t *cursor_len, char *msg, size_t cap)
{
    *cursor = NULL;
    *cursor_len = 0;
    size_t n = strlen(token);
    size_t max_raw = HEAD_LEN + LDG_PAGE_TOKEN_MAX_CURSOR + MAC_LEN;
    if (n > (max_raw + 2) / 3 * 4) {
        snprintf(msg, cap, "page_token: too long (%zu chars); pass the next_page_token of "
                 "the previous response unchanged", n);
        return LDG_EINVAL;
    }
    uint8_t *raw = ldg_malloc(n * 3 / 4 + 1);
    int rv = LDG_EINVAL;
    long len = ldg_base64url_decode(token, n, raw);
    if (len < 0) {
        snprintf(msg, cap, "page_token: not a token issued by this server (bad encoding)");
        goto out;
    }
    size_t rl = (size_t)len;
    if (rl < HEAD_LEN + MAC_LEN || raw[0] != TOKEN_MAGIC) {
        snprintf(msg, cap, "page_token: not a token issued by this server");
        goto out;
    }
    if (raw[1] != TOKEN_VERSION) {
        snprintf(msg, cap, "page_token: unsupported token version %u; start again without a "
                 "page_token", raw[1]);
        goto out;
    }
    size_t cl = (size_t)raw[HEAD_LEN - 2] << 8 | raw[HEAD_LEN - 1];
    if (rl != HEAD_LEN + cl + MAC_LEN) {
        snprintf(msg, cap, "page_token: malformed (length mismatch)");
        goto out;
    }
    uint8_t mac[MAC_LEN];
    mac_of(raw, HEAD_LEN + cl, mac);
    if (CRYPTO_memcmp(mac, raw + HEAD_LEN + cl, MAC_LEN) != 0) {
        snprintf(msg, cap, "page_token: invalid (modified, or issued before this server "
                 "restarted); start again without a page_token");
        goto out;
    }
    if (raw[2] != kind || memcmp(raw + 3, query_hash, QH_LEN) != 0) {
        snprintf(msg, cap, "page_token: issued for a different query; repeat the same request "
                 "fields with the token, or start again without it");
        goto out;
    }
    if (cl) {
        *cursor = ldg_memdup(raw + HEAD_LEN, cl);
        *cursor_len = cl;
    }
    rv = 0;
out:
    ldg_free(raw);
    return rv;
}
