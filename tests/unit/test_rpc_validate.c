/* Request validation (SPEC §9 limits) and page tokens of the rpc layer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/page_token.h"
#include "rpc/validate.h"
#include "util/err.h"
#include "util/mem.h"

static char msg[256];

static char *repeat(char c, size_t n)
{
    char *s = ldg_malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_utf8(void **state)
{
    assert_true(ldg_rpc_utf8_valid((const uint8_t *)"abc", 3));
    assert_true(ldg_rpc_utf8_valid((const uint8_t *)"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    assert_false(ldg_rpc_utf8_valid((const uint8_t *)"\xc3", 1));            /* truncated */
    assert_false(ldg_rpc_utf8_valid((const uint8_t *)"\xc0\xaf", 2));        /* overlong */
    assert_false(ldg_rpc_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));    /* surrogate */
    assert_false(ldg_rpc_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(ldg_rpc_utf8_valid((const uint8_t *)"\xff", 1));
    assert_int_equal(ldg_rpc_utf8_chars((const uint8_t *)"\xc3\xa9x\xe2\x82\xac", 6), 3);
}

static void test_key_limits(void **state)
{
    char *k1024 = repeat('k', 1024), *k1025 = repeat('k', 1025);
    assert_int_equal(ldg_rpc_check_key("key", k1024, msg, sizeof msg), 0);
    assert_int_equal(ldg_rpc_check_key("key", k1025, msg, sizeof msg), LDG_EINVAL);
    assert_non_null(strstr(msg, "key: 1025 bytes"));
    assert_non_null(strstr(msg, "1024"));
    assert_int_equal(ldg_rpc_check_key("key", "", msg, sizeof msg), LDG_EINVAL);
    assert_non_null(strstr(msg, "key: must not be empty"));
    assert_int_equal(ldg_rpc_check_key("keys[3]", "\xff", msg, sizeof msg), LDG_EINVAL);
    assert_non_null(strstr(msg, "keys[3]: not valid UTF-8"));
    ldg_free(k1024);
    ldg_free(k1025);
    assert_int_equal(ldg_rpc_check_value("value", 1u << 20, msg, sizeof msg), 0);
    assert_int_equal(ldg_rpc_check_value("value", (1u << 20) + 1, msg, sizeof msg), LDG_EINVAL);
    assert_non_null(strstr(msg, "1 MiB"));
}

static void test_relationship_parts(void **state)
{
    assert_int_equal(ldg_rpc_check_resource("resource", "doc:1", msg, sizeof msg), 0);
    assert_int_equal(ldg_rpc_check_resource("resource", "doc", msg, sizeof msg), LDG_EINVAL);
    assert_non_null(strstr(msg, "type:id"));
    assert_int_equal(ldg_rpc_check_resource("resource", ":1", msg, sizeof msg), LDG_EINVAL);
    assert_int_equal(ldg_rpc_check_resource("resource", "doc:", msg, sizeof msg), LDG_EINVAL);
    assert_int_equal(ldg_rpc_check_resource("resource", "doc:1#x", msg, sizeof msg), LDG_EINVAL);
    assert_int_equal(ldg_rpc_check_subject("subject", "user:1", msg, sizeof msg), 0);
    assert_int_equal(ldg_rpc_check_subject("subject", "group:eng#member", msg, sizeof msg), 0);
    assert_int_equal(ldg_rpc_check_subject("subject", "group:eng#", msg, sizeof msg),
                     LDG_EINVAL);
    assert_int_equal(ldg_rpc_check_subject("subject", "groupeng#member", msg, sizeof msg),
                     LDG_EINVAL);
    /* 512 chars is the limit, counted in code points, not bytes. */
    char *id = repeat('a', 508);
    char buf[1200];
    snprintf(buf, sizeof buf, "doc:%s", id);
    assert_int_equal(ldg_rpc_check_resource("resource", buf, msg, sizeof msg), 0);
    snprintf(buf, sizeof buf, "doc:%sa", id);
    assert_int_equal(ldg_rpc_check_resource("resource", buf, msg, sizeof msg), LDG_EINVAL);
    assert_non_null(strstr(msg, "513 chars"));
    assert_non_null(strstr(msg, "512"));
    ldg_free(id);
    char multi[1200] = "doc:";
    for (int i = 0; i < 508; i++)
        strcat(multi, "\xc3\xa9"); /* 2 bytes, 1 char */
    assert_int_equal(ldg_rpc_check_resource("resource", multi, msg, sizeof msg), 0);

    char *r64 = repeat('r', 64), *r65 = repeat('r', 65);
    assert_int_equal(ldg_rpc_check_relation("relation", r64, msg, sizeof msg), 0);
    assert_int_equal(ldg_rpc_check_relation("relation", r65, msg, sizeof msg), LDG_EINVAL);
    assert_non_null(strstr(msg, "relation: 65 chars"));
    assert_int_equal(ldg_rpc_check_relation("relation", "", msg, sizeof msg), LDG_EINVAL);
    assert_int_equal(ldg_rpc_check_relation("relation", "a:b", msg, sizeof msg), LDG_EINVAL);
    ldg_free(r64);
    ldg_free(r65);
}

static void test_client_and_idempotency(void **state)
{
    Ledger__V1__ClientId c = LEDGER__V1__CLIENT_ID__INIT;
    assert_int_equal(ldg_rpc_check_client_id(NULL, msg, sizeof msg), LDG_EINVAL);
    assert_non_null(strstr(msg, "client_id: required"));
    c.id = "";
    assert_int_equal(ldg_rpc_check_client_id(&c, msg, sizeof msg), LDG_EINVAL);
    char *id256 = repeat('c', 256), *id257 = repeat('c', 257);
    c.id = id256;
    assert_int_equal(ldg_rpc_check_client_id(&c, msg, sizeof msg), 0);
    c.id = id257;
    assert_int_equal(ldg_rpc_check_client_id(&c, msg, sizeof msg), LDG_EINVAL);
    assert_non_null(strstr(msg, "256"));
    ldg_free(id256);
    ldg_free(id257);

    uint8_t out[16];
    uint8_t k16[16] = {1, 2, 3};
    ProtobufCBinaryData b = {0, NULL};
    assert_int_equal(ldg_rpc_check_idempotency_key(b, out, msg, sizeof msg), 0);
    for (int i = 0; i < 16; i++)
        assert_int_equal(out[i], 0);
    b.data = k16;
    b.len = 16;
    assert_int_equal(ldg_rpc_check_idempotency_key(b, out, msg, sizeof msg), 0);
    assert_memory_equal(out, k16, 16);
    b.len = 15;
    assert_int_equal(ldg_rpc_check_idempotency_key(b, out, msg, sizeof msg), LDG_EINVAL);
    assert_non_null(strstr(msg, "idempotency_key: 15 bytes, must be exactly 16"));
    uint8_t zero[16] = {0};
    b.data = zero;
    b.len = 16;
    assert_int_equal(ldg_rpc_check_idempotency_key(b, out, msg, sizeof msg), LDG_EINVAL);
}

static void test_limit_and_chain(void **state)
{
    size_t n;
    assert_int_equal(ldg_rpc_check_limit(0, 100, &n, msg, sizeof msg), 0);
    assert_int_equal(n, 100);
    assert_int_equal(ldg_rpc_check_limit(1000, 100, &n, msg, sizeof msg), 0);
    assert_int_equal(n, 1000);
    assert_int_equal(ldg_rpc_check_limit(1001, 100, &n, msg, sizeof msg), LDG_EINVAL);
    assert_non_null(strstr(msg, "limit: 1001"));

    uint64_t org = 9, vault = 9;
    Ledger__V1__OrganizationSlug o = LEDGER__V1__ORGANIZATION_SLUG__INIT;
    Ledger__V1__VaultSlug v = LEDGER__V1__VAULT_SLUG__INIT;
    assert_int_equal(ldg_rpc_check_chain(NULL, NULL, &org, &vault, msg, sizeof msg), LDG_EINVAL);
    assert_non_null(strstr(msg, "organization_slug"));
    assert_int_equal(ldg_rpc_check_chain(&o, NULL, &org, &vault, msg, sizeof msg), LDG_EINVAL);
    o.id = 3;
    assert_int_equal(ldg_rpc_check_chain(&o, NULL, &org, &vault, msg, sizeof msg), 0);
    assert_int_equal(org, 3);
    assert_int_equal(vault, 0);
    v.slug = 77;
    assert_int_equal(ldg_rpc_check_chain(&o, &v, &org, &vault, msg, sizeof msg), 0);
    assert_int_equal(vault, 77);
}

static void test_ops_conversion(void **state)
{
    Ledger__V1__SetCondition cond = LEDGER__V1__SET_CONDITION__INIT;
    cond.condition_case = LEDGER__V1__SET_CONDITION__CONDITION_VERSION;
    cond.version = 12;
    Ledger__V1__SetEntity se = LEDGER__V1__SET_ENTITY__INIT;
    se.key = "user:1";
    se.value.data = (uint8_t *)"v";
    se.value.len = 1;
    se.optional_expires_at_case = LEDGER__V1__SET_ENTITY__OPTIONAL_EXPIRES_AT_EXPIRES_AT;
    se.expires_at = 99;
    se.condition = &cond;
    Ledger__V1__CreateRelationship cr = LEDGER__V1__CREATE_RELATIONSHIP__INIT;
    cr.resource = "doc:1";
    cr.relation = "viewer";
    cr.subject = "group:eng#member";
    Ledger__V1__DeleteEntity de = LEDGER__V1__DELETE_ENTITY__INIT;
    de.key = "gone";
    Ledger__V1__Operation o[3];
    for (int i = 0; i < 3; i++)
        ledger__v1__operation__init(&o[i]);
    o[0].op_case = LEDGER__V1__OPERATION__OP_SET_ENTITY;
    o[0].set_entity = &se;
    o[1].op_case = LEDGER__V1__OPERATION__OP_CREATE_RELATIONSHIP;
    o[1].create_relationship = &cr;
    o[2].op_case = LEDGER__V1__OPERATION__OP_DELETE_ENTITY;
    o[2].delete_entity = &de;
    Ledger__V1__Operation *ptrs[3] = {&o[0], &o[1], &o[2]};
    struct ldg_op ops[3];
    assert_int_equal(ldg_rpc_ops_from_proto(ptrs, 3, "operations", ops, msg, sizeof msg), 0);
    assert_int_equal(ops[0].type, LDG_OP_SET_ENTITY);
    assert_int_equal(ops[0].cond, LDG_COND_VERSION);
    assert_int_equal(ops[0].cond_version, 12);
    assert_int_equal(ops[0].expires_at, 99);
    assert_int_equal(ops[0].key.len, 6);
    assert_int_equal(ops[1].type, LDG_OP_CREATE_RELATIONSHIP);
    assert_int_equal(ops[1].subject.len, strlen("group:eng#member"));
    assert_int_equal(ops[2].type, LDG_OP_DELETE_ENTITY);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ldg_op_validate(&ops[i]), 0);

    /* Errors name the exact field. */
    cr.relation = "";
    assert_int_equal(ldg_rpc_ops_from_proto(ptrs, 3, "groups[1].operations", ops, msg,
                                            sizeof msg), LDG_EINVAL);
    assert_non_null(strstr(msg, "groups[1].operations[1].create_relationship.relation"));
    cr.relation = "viewer";
    cond.condition_case = LEDGER__V1__SET_CONDITION__CONDITION_NOT_EXISTS;
    cond.not_exists = 0;
    assert_int_equal(ldg_rpc_ops_from_proto(ptrs, 3, "operations", ops, msg, sizeof msg),
                     LDG_EINVAL);
    assert_non_null(strstr(msg, "operations[0].set_entity.condition.not_exists"));
    cond.not_exists = 1;
    o[2].op_case = LEDGER__V1__OPERATION__OP__NOT_SET;
    assert_int_equal(ldg_rpc_ops_from_proto(ptrs, 3, "operations", ops, msg, sizeof msg),
                     LDG_EINVAL);
    assert_non_null(strstr(msg, "operations[2]: no operation set"));
}

/* ---- page tokens ---- */

static void test_base64url(void **state)
{
    const uint8_t in[] = {0xfb, 0xff, 0x00, 0x10, 0x83};
    for (size_t n = 0; n <= sizeof in; n++) {
        char *s = ldg_base64url_encode(in, n);
        assert_null(strchr(s, '='));
        assert_null(strchr(s, '+'));
        assert_null(strchr(s, '/'));
        uint8_t out[8];
        assert_int_equal(ldg_base64url_decode(s, strlen(s), out), (long)n);
        assert_memory_equal(out, in, n);
        ldg_free(s);
    }
    char *s = ldg_base64url_encode((const uint8_t *)"\xfb\xff", 2);
    assert_string_equal(s, "-_8");
    ldg_free(s);
    uint8_t out[8];
    assert_int_equal(ldg_base64url_decode("a+b/", 4, out), -1);
    assert_int_equal(ldg_base64url_decode("abcde", 5, out), -1);
    assert_int_equal(ldg_base64url_decode("-_9", 3, out), -1); /* non-zero pad bits */
}

static void query(uint8_t qh[LDG_HASH_LEN], const char *prefix)
{
    struct ldg_bytes parts[1] = {ldg_bytes_str(prefix)};
    ldg_page_query_hash(LDG_PAGE_ENTITIES, 1, 7, parts, 1, qh);
}

static void test_token_roundtrip(void **state)
{
    uint8_t qh[LDG_HASH_LEN];
    query(qh, "user:");
    char *tok = ldg_page_token_encode(LDG_PAGE_ENTITIES, qh, ldg_bytes_str("user:42"));
    uint8_t *cur;
    size_t cl;
    assert_int_equal(ldg_page_token_decode(tok, LDG_PAGE_ENTITIES, qh, &cur, &cl, msg,
                                           sizeof msg), 0);
    assert_int_equal(cl, 7);
    assert_memory_equal(cur, "user:42", 7);
    ldg_free(cur);
    /* The cursor is not readable in the token (it is base64 of more than it). */
    assert_null(strstr(tok, "user"));
    ldg_free(tok);
}

static void test_token_tampered(void **state)
{
    uint8_t qh[LDG_HASH_LEN];
    query(qh, "user:");
    char *tok = ldg_page_token_encode(LDG_PAGE_ENTITIES, qh, ldg_bytes_str("user:42"));
    size_t n = strlen(tok);
    uint8_t *cur;
    size_t cl;
    /* Flip every position in turn: each edit is rejected. */
    for (size_t i = 0; i < n; i++) {
        char *t = ldg_strdup(tok);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        int rv = ldg_page_token_decode(t, LDG_PAGE_ENTITIES, qh, &cur, &cl, msg, sizeof msg);
        assert_int_equal(rv, LDG_EINVAL);
        assert_null(cur);
        assert_memory_equal(msg, "page_token", 10);
        ldg_free(t);
    }
    /* Truncated and garbage tokens. */
    char *t = ldg_strdup(tok);
    t[n - 4] = '\0';
    assert_int_equal(ldg_page_token_decode(t, LDG_PAGE_ENTITIES, qh, &cur, &cl, msg, sizeof msg),
                     LDG_EINVAL);
    ldg_free(t);
    assert_int_equal(ldg_page_token_decode("not a token!", LDG_PAGE_ENTITIES, qh, &cur, &cl, msg,
                                           sizeof msg), LDG_EINVAL);
    assert_non_null(strstr(msg, "page_token"));
    ldg_free(tok);
}

static void test_token_other_query(void **state)
{
    uint8_t qh[LDG_HASH_LEN], other[LDG_HASH_LEN];
    query(qh, "user:");
    query(other, "doc:");
    char *tok = ldg_page_token_encode(LDG_PAGE_ENTITIES, qh, ldg_bytes_str("user:42"));
    uint8_t *cur;
    size_t cl;
    assert_int_equal(ldg_page_token_decode(tok, LDG_PAGE_ENTITIES, other, &cur, &cl, msg,
                                           sizeof msg), LDG_EINVAL);
    assert_non_null(strstr(msg, "page_token: issued for a different query"));
    assert_int_equal(ldg_page_token_decode(tok, LDG_PAGE_RESOURCES, qh, &cur, &cl, msg,
                                           sizeof msg), LDG_EINVAL);
    /* A new process key (restart) invalidates old tokens. */
    uint8_t key[32] = {42};
    ldg_page_token_set_key(key);
    assert_int_equal(ldg_page_token_decode(tok, LDG_PAGE_ENTITIES, qh, &cur, &cl, msg,
                                           sizeof msg), LDG_EINVAL);
    assert_non_null(strstr(msg, "page_token: invalid"));
    ldg_free(tok);
    /* Chain and filters all enter the query hash. */
    uint8_t a[LDG_HASH_LEN], b[LDG_HASH_LEN];
    struct ldg_bytes p1[2] = {ldg_bytes_str("ab"), ldg_bytes_str("c")};
    struct ldg_bytes p2[2] = {ldg_bytes_str("a"), ldg_bytes_str("bc")};
    ldg_page_query_hash(LDG_PAGE_RELATIONSHIPS, 1, 2, p1, 2, a);
    ldg_page_query_hash(LDG_PAGE_RELATIONSHIPS, 1, 2, p2, 2, b);
    assert_memory_not_equal(a, b, LDG_HASH_LEN);
    ldg_page_query_hash(LDG_PAGE_RELATIONSHIPS, 1, 3, p1, 2, b);
    assert_memory_not_equal(a, b, LDG_HASH_LEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_key_limits),
        cmocka_unit_test(test_relationship_parts),
        cmocka_unit_test(test_client_and_idempotency),
        cmocka_unit_test(test_limit_and_chain),
        cmocka_unit_test(test_ops_conversion),
        cmocka_unit_test(test_base64url),
        cmocka_unit_test(test_token_roundtrip),
        cmocka_unit_test(test_token_tampered),
        cmocka_unit_test(test_token_other_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
