#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/mem.h"

void ldg_buf_init(struct ldg_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void ldg_buf_close(struct ldg_buf *b)
{
    ldg_free(b->data);
    ldg_buf_init(b);
}

void ldg_buf_reset(struct ldg_buf *b)
{
    b->len = 0;
}

void ldg_buf_reserve(struct ldg_buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra)
        cap *= 2;
    b->data = ldg_realloc(b->data, cap);
    b->cap = cap;
}

void ldg_buf_append(struct ldg_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    ldg_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void ldg_buf_append_str(struct ldg_buf *b, const char *s)
{
    ldg_buf_append(b, s, strlen(s));
}

void ldg_buf_printf(struct ldg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    ldg_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ldg_buf_u8(struct ldg_buf *b, uint8_t v)
{
    ldg_buf_append(b, &v, 1);
}

void ldg_buf_u32le(struct ldg_buf *b, uint32_t v)
{
    uint8_t p[4];
    ldg_put_u32le(p, v);
    ldg_buf_append(b, p, 4);
}

void ldg_buf_u32be(struct ldg_buf *b, uint32_t v)
{
    uint8_t p[4];
    ldg_put_u32be(p, v);
    ldg_buf_append(b, p, 4);
}

void ldg_buf_u64be(struct ldg_buf *b, uint64_t v)
{
    uint8_t p[8];
    ldg_put_u64be(p, v);
    ldg_buf_append(b, p, 8);
}

void ldg_buf_lenbytes(struct ldg_buf *b, const void *p, size_t n)
{
    ldg_buf_u32le(b, (uint32_t)n);
    ldg_buf_append(b, p, n);
}

void ldg_buf_consume(struct ldg_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

uint8_t *ldg_buf_steal(struct ldg_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len)
        *len = b->len;
    ldg_buf_init(b);
    return p;
}
