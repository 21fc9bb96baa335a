/* A borrowed byte string, the currency of the hashing layer. */
#ifndef LDG_CRYPTO_BYTES_H
#define LDG_CRYPTO_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct ldg_bytes {
    const uint8_t *data; /* borrowed; may be NULL when len is 0 */
    size_t len;          /* bytes; must fit in u32 to be encodable */
};

/* A struct ldg_bytes over a NUL-terminated string (without the NUL). */
static inline struct ldg_bytes ldg_bytes_str(const char *s)
{
    struct ldg_bytes b = {(const uint8_t *)s, strlen(s)};
    return b;
}

static inline struct ldg_bytes ldg_bytes_of(const void *p, size_t n)
{
    struct ldg_bytes b = {(const uint8_t *)p, n};
    return b;
}

#endif
