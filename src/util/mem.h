/* Allocation helpers. ldg_malloc and friends abort on OOM (redis zmalloc), so
 * callers do not check for NULL. ENOMEM from libraries still propagates. */
#ifndef LDG_UTIL_MEM_H
#define LDG_UTIL_MEM_H

#include <stddef.h>

void *ldg_malloc(size_t n);
void *ldg_calloc(size_t count, size_t size);
void *ldg_realloc(void *p, size_t n);
char *ldg_strdup(const char *s);
void *ldg_memdup(const void *p, size_t n);
void ldg_free(void *p);

#define LDG_CONTAINER_OF(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#define LDG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
