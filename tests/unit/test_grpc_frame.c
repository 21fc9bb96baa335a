#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "net/grpc.h"
#include "net/grpc_frame.h"
#include "util/err.h"
#include "util/mem.h"

struct got {
    size_t n;
    char msgs[8][64];
    size_t lens[8];
    int stop_after; /* return 1 from the cb after this many (0: never) */
};

static int collect_cb(void *arg, const uint8_t *msg, size_t len)
{
    struct got *g = arg;
    assert_true(g->n < 8 && len < 64);
    memcpy(g->msgs[g->n], msg, len);
    g->lens[g->n++] = len;
    return g->stop_after && g->n >= (size_t)g->stop_after ? 1 : 0;
}

static void wire(struct ldg_buf *b)
{
    ldg_buf_init(b);
    ldg_grpc_frame_append(b, (const uint8_t *)"hello", 5);
    ldg_grpc_frame_append(b, NULL, 0); /* empty message */
    ldg_grpc_frame_append(b, (const uint8_t *)"world!", 6);
}

static void test_deframe_every_split(void **state)
{
    (void)state;
    struct ldg_buf b;
    wire(&b);
    assert_int_equal(b.len, 5 + 5 + 5 + 0 + 5 + 6);
    /* Every two-way split, and byte by byte. */
    for (size_t cut = 0; cut <= b.len; cut++) {
        struct ldg_grpc_deframer d;
        struct got g = {0};
        ldg_grpc_deframer_init(&d, 100);
        assert_int_equal(ldg_grpc_deframer_feed(&d, b.data, cut, collect_cb, &g), 0);
        assert_int_equal(ldg_grpc_deframer_feed(&d, b.data + cut, b.len - cut, collect_cb, &g), 0);
        assert_int_equal(g.n, 3);
        assert_int_equal(g.lens[0], 5);
        assert_memory_equal(g.msgs[0], "hello", 5);
        assert_int_equal(g.lens[1], 0);
        assert_int_equal(g.lens[2], 6);
        assert_memory_equal(g.msgs[2], "world!", 6);
        assert_false(ldg_grpc_deframer_partial(&d));
        ldg_grpc_deframer_close(&d);
    }
    struct ldg_grpc_deframer d;
    struct got g = {0};
    ldg_grpc_deframer_init(&d, 100);
    for (size_t i = 0; i < b.len; i++) {
        assert_int_equal(ldg_grpc_deframer_feed(&d, b.data + i, 1, collect_cb, &g), 0);
        if (i == 7)
            assert_true(ldg_grpc_deframer_partial(&d));
    }
    assert_int_equal(g.n, 3);
    assert_memory_equal(g.msgs[2], "world!", 6);
    ldg_grpc_deframer_close(&d);
    ldg_buf_close(&b);
}

static void test_deframe_errors(void **state)
{
    (void)state;
    struct ldg_grpc_deframer d;
    struct got g = {0};
    /* Oversized: rejected from the 5-byte prefix alone, nothing buffered. */
    const uint8_t big[] = {0, 0x00, 0x10, 0x00, 0x01}; /* 1048577 bytes */
    ldg_grpc_deframer_init(&d, 1 << 20);
    assert_int_equal(ldg_grpc_deframer_feed(&d, big, 4, collect_cb, &g), 0);
    assert_int_equal(ldg_grpc_deframer_feed(&d, big + 4, 1, collect_cb, &g), LDG_ETOOBIG);
    assert_int_equal(d.msg_len, 1048577);
    assert_int_equal(d.msg.len, 0);
    assert_int_equal(ldg_grpc_deframer_feed(&d, big, 1, collect_cb, &g), LDG_EPROTO);
    ldg_grpc_deframer_close(&d);
    /* Exactly the limit is fine. */
    const uint8_t at[] = {0, 0, 0, 0, 3, 'a', 'b', 'c'};
    ldg_grpc_deframer_init(&d, 3);
    assert_int_equal(ldg_grpc_deframer_feed(&d, at, sizeof at, collect_cb, &g), 0);
    assert_int_equal(g.n, 1);
    ldg_grpc_deframer_close(&d);
    /* Compressed flag and an invalid flag byte. */
    const uint8_t comp[] = {1, 0, 0, 0, 1, 'x'};
    ldg_grpc_deframer_init(&d, 100);
    assert_int_equal(ldg_grpc_deframer_feed(&d, comp, sizeof comp, collect_cb, &g), LDG_EUNIMPL);
    ldg_grpc_deframer_close(&d);
    const uint8_t bad[] = {7, 0, 0, 0, 0};
    ldg_grpc_deframer_init(&d, 100);
    assert_int_equal(ldg_grpc_deframer_feed(&d, bad, sizeof bad, collect_cb, &g), LDG_EPROTO);
    ldg_grpc_deframer_close(&d);
    /* The callback can stop the feed. */
    struct ldg_buf b;
    wire(&b);
    struct got g2 = {.stop_after = 1};
    ldg_grpc_deframer_init(&d, 100);
    assert_int_equal(ldg_grpc_deframer_feed(&d, b.data, b.len, collect_cb, &g2), 1);
    assert_int_equal(g2.n, 1);
    ldg_grpc_deframer_close(&d);
    ldg_buf_close(&b);
}

static void test_percent_encoding(void **state)
{
    (void)state;
    struct ldg_buf b;
    ldg_buf_init(&b);
    ldg_grpc_percent_encode(&b, "50% done\n\xc3\xa9 ok");
    assert_string_equal((char *)b.data, "50%25 done%0A%C3%A9 ok");
    struct ldg_buf d;
    ldg_buf_init(&d);
    ldg_grpc_percent_decode(&d, (char *)b.data, b.len);
    assert_string_equal((char *)d.data, "50% done\n\xc3\xa9 ok");
    ldg_buf_reset(&d);
    ldg_grpc_percent_decode(&d, "bad %zz and %4", 14); /* malformed: kept literally */
    assert_string_equal((char *)d.data, "bad %zz and %4");
    ldg_buf_close(&b);
    ldg_buf_close(&d);
}

static void test_timeout_parse(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_int_equal(ldg_grpc_timeout_parse("1H", &ms), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(ldg_grpc_timeout_parse("2M", &ms), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(ldg_grpc_timeout_parse("3S", &ms), 0);
    assert_int_equal(ms, 3000);
    assert_int_equal(ldg_grpc_timeout_parse("250m", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(ldg_grpc_timeout_parse("1500u", &ms), 0);
    assert_int_equal(ms, 2); /* rounded up */
    assert_int_equal(ldg_grpc_timeout_parse("1n", &ms), 0);
    assert_int_equal(ms, 1);
    assert_int_equal(ldg_grpc_timeout_parse("0m", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(ldg_grpc_timeout_parse("99999999S", &ms), 0);
    assert_int_equal(ms, 99999999000LL);
    assert_int_equal(ldg_grpc_timeout_parse("123456789S", &ms), LDG_EINVAL); /* 9 digits */
    assert_int_equal(ldg_grpc_timeout_parse("S", &ms), LDG_EINVAL);
    assert_int_equal(ldg_grpc_timeout_parse("10x", &ms), LDG_EINVAL);
    assert_int_equal(ldg_grpc_timeout_parse("-1S", &ms), LDG_EINVAL);
    assert_int_equal(ldg_grpc_timeout_parse("", &ms), LDG_EINVAL);
    char buf[16];
    ldg_grpc_timeout_format(1500, buf, sizeof buf);
    assert_string_equal(buf, "1500m");
    ldg_grpc_timeout_format(200000000LL, buf, sizeof buf);
    assert_string_equal(buf, "200000S");
}

static void test_status_table(void **state)
{
    (void)state;
    assert_string_equal(ldg_grpc_code_name(LDG_GRPC_RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
    assert_string_equal(ldg_grpc_code_name(99), "UNKNOWN");
    assert_int_equal(ldg_grpc_code_from_err(0), LDG_GRPC_OK);
    assert_int_equal(ldg_grpc_code_from_err(LDG_ENOTLEADER), LDG_GRPC_UNAVAILABLE);
    assert_int_equal(ldg_grpc_code_from_err(LDG_EINVAL), LDG_GRPC_INVALID_ARGUMENT);
    assert_int_equal(ldg_grpc_code_from_err(LDG_ENOTFOUND), LDG_GRPC_NOT_FOUND);
    assert_int_equal(ldg_grpc_code_from_err(LDG_EFULL), LDG_GRPC_RESOURCE_EXHAUSTED);
    assert_int_equal(ldg_grpc_code_from_err(-999), LDG_GRPC_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deframe_every_split),
        cmocka_unit_test(test_deframe_errors),
        cmocka_unit_test(test_percent_encoding),
        cmocka_unit_test(test_timeout_parse),
        cmocka_unit_test(test_status_table),
    };
    return cmocka_run_group_tests_name("grpc_frame", tests, NULL, NULL);
}
