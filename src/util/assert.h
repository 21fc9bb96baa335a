/* LDG_ASSERT stays on in release builds: for cheap invariants that protect
 * persisted state, where crashing beats corrupting. LDG_DASSERT is debug-only.
 * Never assert on input from the network or disk: return LDG_EINVAL/ECORRUPT. */
#ifndef LDG_UTIL_ASSERT_H
#define LDG_UTIL_ASSERT_H

void ldg_assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn));

#define LDG_ASSERT(e) ((e) ? (void)0 : ldg_assert_fail(#e, __FILE__, __LINE__))
#ifdef NDEBUG
#define LDG_DASSERT(e) ((void)0)
#else
#define LDG_DASSERT(e) LDG_ASSERT(e)
#endif

#endif
