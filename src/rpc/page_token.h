/* Opaque page tokens for paged list methods.
 *
 * A token is base64url (no padding) of
 *   'P' ‖ version 0x01 ‖ kind u8 ‖ query_hash[16] ‖ cursor_len u16be ‖ cursor ‖ mac[16]
 * where query_hash is the first 16 bytes of the caller's hash of the query
 * (method, chain and filters: a token only works for the same query) and
 * mac = HMAC-SHA256(process key, everything before it) truncated to 16 bytes.
 * The process key is 32 random bytes drawn at first use, so tokens do not
 * survive a restart (clients then get INVALID_ARGUMENT and start over) and
 * cannot be forged or edited. */
#ifndef LDG_RPC_PAGE_TOKEN_H
#define LDG_RPC_PAGE_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/bytes.h"
#include "crypto/sha256.h"

#define LDG_PAGE_TOKEN_MAX_CURSOR 4096

enum ldg_page_kind {
    LDG_PAGE_ENTITIES = 1,
    LDG_PAGE_RELATIONSHIPS = 2,
    LDG_PAGE_RESOURCES = 3,
    LDG_PAGE_ORGANIZATIONS = 4,
    LDG_PAGE_VAULTS = 5,
};

/* Query hash helper: H(kind ‖ org u64be ‖ vault u64be ‖ len part ...). */
void ldg_page_query_hash(uint8_t kind, uint64_t org, uint64_t vault,
                         const struct ldg_bytes *parts, size_t n_parts,
                         uint8_t out[LDG_HASH_LEN]);

/* Encode a token for |cursor| (at most LDG_PAGE_TOKEN_MAX_CURSOR bytes).
 * Returns a NUL-terminated string the caller frees with ldg_free. */
char *ldg_page_token_encode(uint8_t kind, const uint8_t query_hash[LDG_HASH_LEN],
                            struct ldg_bytes cursor);

/* Decode |token| made for the same |kind| and |query_hash|. On success
 * |*cursor| (caller frees with ldg_free; NULL when empty) and |*cursor_len|
 * are set. Returns 0, or LDG_EINVAL with a message starting "page_token"
 * in |msg| (bad encoding, forged or edited, other query). */
int ldg_page_token_decode(const char *token, uint8_t kind,
                          const uint8_t query_hash[LDG_HASH_LEN], uint8_t **cursor,
                          size_t *cursor_len, char *msg, size_t cap);

/* Replace the process key (tests). */
void ldg_page_token_set_key(const uint8_t key[32]);

/* base64url without padding (exposed for tests). Encode: caller frees.
 * Decode: returns the byte count, or -1 for a character outside the
 * alphabet or an impossible length; |out| needs (n * 3) / 4 bytes. */
char *ldg_base64url_encode(const uint8_t *p, size_t n);
long ldg_base64url_decode(const char *s, size_t n, uint8_t *out);

#endif
