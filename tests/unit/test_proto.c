/* Checks of the protoc-c code generated from proto/ledger/v1/ledger.proto:
 * presence fields written as one-member oneofs (protoc-c 1.4.1 has no proto3
 * `optional`) must encode a set zero value, exactly like proto3 `optional`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ledger/v1/ledger.pb-c.h"

extern const uint8_t ldg_descriptor_set[];
extern const size_t ldg_descriptor_set_len;

static void test_tip_height_zero_is_encoded(void **state)
{
    (void)state;
    Ledger__V1__GetTipResponse tip = LEDGER__V1__GET_TIP_RESPONSE__INIT;
    uint8_t out[16];

    /* Unset: nothing on the wire. */
    assert_int_equal(ledger__v1__get_tip_response__get_packed_size(&tip), 0);

    /* Set to 0: field 1 varint 0, as proto3 `optional uint64 height = 1`. */
    tip.optional_height_case = LEDGER__V1__GET_TIP_RESPONSE__OPTIONAL_HEIGHT_HEIGHT;
    tip.height = 0;
    size_t n = ledger__v1__get_tip_response__pack(&tip, out);
    const uint8_t want[] = {0x08, 0x00};
    assert_int_equal(n, sizeof want);
    assert_memory_equal(out, want, sizeof want);

    Ledger__V1__GetTipResponse *back = ledger__v1__get_tip_response__unpack(NULL, n, out);
    assert_non_null(back);
    assert_int_equal(back->optional_height_case,
                     LEDGER__V1__GET_TIP_RESPONSE__OPTIONAL_HEIGHT_HEIGHT);
    assert_int_equal(back->height, 0);
    ledger__v1__get_tip_response__free_unpacked(back, NULL);
}

static void test_runbook_check_integrity_decodes(void **state)
{
    (void)state;
    /* {"organization_slug":{"id":"1"},"vault":{"slug":"7"},"full_check":true} */
    const uint8_t wire[] = {0x0a, 0x02, 0x08, 0x01, 0x12, 0x02, 0x08, 0x07, 0x18, 0x01};
    Ledger__V1__CheckIntegrityRequest *r =
        ledger__v1__check_integrity_request__unpack(NULL, sizeof wire, wire);
    assert_non_null(r);
    assert_non_null(r->organization_slug);
    assert_int_equal(r->organization_slug->id, 1);
    assert_non_null(r->vault);
    assert_int_equal(r->vault->slug, 7);
    assert_true(r->full_check);
    ledger__v1__check_integrity_request__free_unpacked(r, NULL);
}

static int contains(const uint8_t *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return 1;
    return 0;
}

static void test_descriptor_set_embeds_ledger_api(void **state)
{
    (void)state;
    assert_true(contains(ldg_descriptor_set, ldg_descriptor_set_len, "ledger/v1/ledger.proto"));
    assert_true(contains(ldg_descriptor_set, ldg_descriptor_set_len, "SystemDiscoveryService"));
    assert_true(contains(ldg_descriptor_set, ldg_descriptor_set_len,
                         "google/protobuf/timestamp.proto"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tip_height_zero_is_encoded),
        cmocka_unit_test(test_runbook_check_integrity_decodes),
        cmocka_unit_test(test_descriptor_set_embeds_ledger_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
