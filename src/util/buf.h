/* Growable byte buffer. Memory comes from ldg_malloc (aborts on OOM). */
#ifndef LDG_UTIL_BUF_H
#define LDG_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

struct ldg_buf {
    uint8_t *data; /* NULL until the first append */
    size_t len;    /* bytes used */
    size_t cap;    /* bytes allocated */
};

void ldg_buf_init(struct ldg_buf *b);
void ldg_buf_close(struct ldg_buf *b);            /* frees data; b is reusable */
void ldg_buf_reset(struct ldg_buf *b);            /* len = 0, keeps memory */
void ldg_buf_reserve(struct ldg_buf *b, size_t extra);
void ldg_buf_append(struct ldg_buf *b, const void *p, size_t n);
void ldg_buf_append_str(struct ldg_buf *b, const char *s);
void ldg_buf_printf(struct ldg_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ldg_buf_u8(struct ldg_buf *b, uint8_t v);
void ldg_buf_u32le(struct ldg_buf *b, uint32_t v);
void ldg_buf_u32be(struct ldg_buf *b, uint32_t v);
void ldg_buf_u64be(struct ldg_buf *b, uint64_t v);
/* u32 little-endian length followed by the bytes (SPEC §5 "len x"). */
void ldg_buf_lenbytes(struct ldg_buf *b, const void *p, size_t n);
/* Remove the first n bytes. */
void ldg_buf_consume(struct ldg_buf *b, size_t n);
/* Hand the memory to the caller (free with ldg_free); b becomes empty. */
uint8_t *ldg_buf_steal(struct ldg_buf *b, size_t *len);

static inline uint64_t ldg_get_u64be(const uint8_t *p)
{
    return ((uint64_t)p[0] << 56) | ((uint64_t)p[1] << 48) | ((uint64_t)p[2] << 40) |
           ((uint64_t)p[3] << 32) | ((uint64_t)p[4] << 24) | ((uint64_t)p[5] << 16) |
           ((uint64_t)p[6] << 8) | (uint64_t)p[7];
}
static inline uint32_t ldg_get_u32be(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint32_t ldg_get_u32le(const uint8_t *p)
{
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}
static inline void ldg_put_u64be(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}
static inline void ldg_put_u32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void ldg_put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

#endif
