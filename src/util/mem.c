#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
    abort();
}

void *ldg_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *ldg_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        oom(count * size);
    return p;
}

void *ldg_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *ldg_strdup(const char *s)
{
    return ldg_memdup(s, strlen(s) + 1);
}

void *ldg_memdup(const void *p, size_t n)
{
    void *q = ldg_malloc(n);
    if (n)
        memcpy(q, p, n);
    return q;
}

void ldg_free(void *p)
{
    free(p);
}
