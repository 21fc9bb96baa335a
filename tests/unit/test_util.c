#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/buf.h"
#include "util/err.h"

static void test_buf_encodings(void **state)
{
    (void)state;
    struct ldg_buf b;
    ldg_buf_init(&b);
    ldg_buf_u64be(&b, 0x0102030405060708ULL);
    ldg_buf_lenbytes(&b, "ab", 2);
    assert_int_equal(b.len, 8 + 4 + 2);
    const uint8_t want[] = {1, 2, 3, 4, 5, 6, 7, 8, 2, 0, 0, 0, 'a', 'b'};
    assert_memory_equal(b.data, want, sizeof want);
    assert_int_equal(ldg_get_u64be(b.data), 0x0102030405060708ULL);
    ldg_buf_consume(&b, 8);
    assert_int_equal(ldg_get_u32le(b.data), 2);
    ldg_buf_close(&b);
}

static void test_err_wrap(void **state)
{
    (void)state;
    struct ldg_err e = {0};
    ldg_err_set(&e, LDG_EIO, "No space left on device");
    assert_int_equal(ldg_err_wrap(&e, "open store %s", "/var/lib/ledger"), LDG_EIO);
    assert_string_equal(e.msg, "open store /var/lib/ledger: No space left on device");
    assert_string_equal(ldg_strerror(LDG_ENOTFOUND), "not found");
    assert_string_equal(ldg_strerror(12345), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_encodings),
        cmocka_unit_test(test_err_wrap),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
