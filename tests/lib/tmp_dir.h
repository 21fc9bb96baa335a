/* Temporary directories for unit tests: make_tmpdir creates
 * /tmp/ldg-<tag>-XXXXXX, rm_dir removes it with everything in it.
 *
 * Header-only (static inline) so that it is not linked into every test
 * binary as a .c file under tests/lib would be. Must be included after
 * <cmocka.h>. */
#ifndef LDG_TESTS_TMP_DIR_H
#define LDG_TESTS_TMP_DIR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A new, empty directory; the caller removes it with rm_dir. */
static inline char *make_tmpdir(const char *tag)
{
    char tmpl[128];
    int n = snprintf(tmpl, sizeof tmpl, "/tmp/ldg-%s-XXXXXX", tag);
    assert_true(n > 0 && (size_t)n < sizeof tmpl);
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

/* Remove |d| and all it holds; frees |d|. */
static inline void rm_dir(char *d)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
    free(d);
}

#endif
