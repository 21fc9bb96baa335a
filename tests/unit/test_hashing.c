/* Hashing layer: every vector of docs/hashing.md, RFC 6962 against a naive
 * reference, audit paths for every leaf of trees up to 33 leaves, and
 * incremental bucket maintenance against full recomputation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/block.h"
#include "crypto/merkle.h"
#include "crypto/sha256.h"
#include "crypto/state.h"
#include "crypto/tx.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"

/* ---- helpers ---- */

static void check_hex(const uint8_t *got, size_t n, const char *want)
{
    char *hex = ldg_malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", got[i]);
    assert_string_equal(hex, want);
    ldg_free(hex);
}

static void from_hex(const char *hex, uint8_t out[LDG_HASH_LEN])
{
    assert_int_equal(strlen(hex), LDG_HASH_HEX_LEN);
    assert_int_equal(ldg_hash_from_hex(hex, out), 0);
}

#define S(s) ldg_bytes_str(s)

/* xorshift64*: deterministic test randomness. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

static void rnd_hash(uint8_t out[LDG_HASH_LEN])
{
    for (int i = 0; i < LDG_HASH_LEN; i += 8) {
        uint64_t v = rnd();
        memcpy(out + i, &v, 8);
    }
}

/* ---- docs/hashing.md data ---- */

static const char *const D_HEX[9] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "2dba5dbc339e7316aea2683faf839c1b7b1ee2313db792112588118df066aa35",
    "5310a330e8f970388503c73349d80b45cd764db615f1bced2801dcd4524a2ff4",
    "80d1bf4dd6c1f75bba022337a3f0842078f5c2e7f3f59dfd33ccbb8e963367b2",
    "1492e66e89e186840231850712161255d203b5bbf48d21242f0b51519b5eb3d4",
    "03a82289eea21de37e72ad6c07865dcab3f2cd681ad47c1cd0ea30e1751ad996",
    "35603b6278eb5d320c99eeb68354d448493e1ab9857cb0bddb9f7fa72250a3a8",
    "8ff9103704f4e7dfee6106551eb439d3ac6bc5cc4873ced8ec33eaf2d42f4c31",
    "259ca0ef3ecb66bb9f02e2ca9de6c7ff13951ad824ece4c680555cfef4321d17",
};
static const char EMPTY_STATE_ROOT_HEX[] =
    "43ea080da8ad1e02bd2c5ccc1a9f979854a3494c4b43bb233e29be5b40c78a6e";

static const uint8_t TX1_ID[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x46, 0x77,
                                   0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
static const uint8_t TX2_ID[16] = {0xf4, 0x7a, 0xc1, 0x0b, 0x58, 0xcc, 0x43, 0x72,
                                   0xa5, 0x67, 0x0e, 0x02, 0xb2, 0xc3, 0xd4, 0x79};

static void make_ops(struct ldg_op ops[9])
{
    memset(ops, 0, 9 * sizeof *ops);
    ops[0].type = LDG_OP_CREATE_RELATIONSHIP;
    ops[0].resource = S("doc:readme");
    ops[0].relation = S("viewer");
    ops[0].subject = S("user:alice");
    ops[1].type = LDG_OP_DELETE_RELATIONSHIP;
    ops[1].resource = S("doc:readme");
    ops[1].relation = S("editor");
    ops[1].subject = S("user:bob");
    ops[2].type = LDG_OP_SET_ENTITY;
    ops[2].key = S("user:alice");
    ops[2].value = S("{\"name\":\"Alice\"}");
    ops[3].type = LDG_OP_SET_ENTITY;
    ops[3].key = S("k1");
    ops[3].value = S("v1");
    ops[3].cond = LDG_COND_NOT_EXISTS;
    ops[3].expires_at = 1767229200;
    ops[4].type = LDG_OP_SET_ENTITY;
    ops[4].key = S("k2");
    ops[4].value = S("v2");
    ops[4].cond = LDG_COND_MUST_EXIST;
    ops[5].type = LDG_OP_SET_ENTITY;
    ops[5].key = S("k3");
    ops[5].value = S("v3");
    ops[5].cond = LDG_COND_VERSION;
    ops[5].cond_version = 7;
    ops[6].type = LDG_OP_SET_ENTITY;
    ops[6].key = S("k4");
    ops[6].value = S("v4");
    ops[6].cond = LDG_COND_VALUE_EQUALS;
    ops[6].cond_value = S("old");
    ops[7].type = LDG_OP_DELETE_ENTITY;
    ops[7].key = S("k5");
    ops[8].type = LDG_OP_EXPIRE_ENTITY;
    ops[8].key = S("session:42");
    ops[8].expired_at = 1767225600;
}

static void make_tx1(struct ldg_tx *tx, const struct ldg_op *ops)
{
    memset(tx, 0, sizeof *tx);
    memcpy(tx->tx_id, TX1_ID, 16);
    tx->client_id = S("client-1");
    tx->sequence = 3;
    tx->actor = S("client:client-1");
    tx->ops = ops;
    tx->op_count = 9;
    tx->timestamp_seconds = 1767225600;
    tx->timestamp_nanos = 123456000;
}

static void make_tx2(struct ldg_tx *tx, const struct ldg_op *ops)
{
    memset(tx, 0, sizeof *tx);
    memcpy(tx->tx_id, TX2_ID, 16);
    tx->client_id = S("");
    tx->sequence = 0;
    tx->actor = S("system:gc");
    tx->ops = &ops[8];
    tx->op_count = 1;
    tx->timestamp_seconds = 1767225601;
    tx->timestamp_nanos = 0;
}

static const char TX1_ENC_HEX[] =
    "00112233445546778899aabbccddeeff08000000636c69656e742d310000000000000003"
    "0f000000636c69656e743a636c69656e742d3109000000010a000000646f633a72656164"
    "6d65060000007669657765720a000000757365723a616c696365020a000000646f633a72"
    "6561646d6506000000656469746f7208000000757365723a626f62030a00000075736572"
    "3a616c696365100000007b226e616d65223a22416c696365227d00000000000000000003"
    "020000006b3102000000763101000000006955c71003020000006b320200000076320200"
    "0000000000000003020000006b3302000000763303000000000000000700000000000000"
    "0003020000006b3402000000763404030000006f6c64000000000000000004020000006b"
    "35050a00000073657373696f6e3a3432000000006955b900000000006955b900075bca00";
static const char TX1_HASH_HEX[] =
    "697e4a84d7c6b7fd4ecdf9fd61eb0825f9622940d62d95edbf5857666e52e0e3";
static const char TX2_ENC_HEX[] =
    "f47ac10b58cc4372a5670e02b2c3d4790000000000000000000000000900000073797374"
    "656d3a676301000000050a00000073657373696f6e3a3432000000006955b90000000000"
    "6955b90100000000";
static const char TX2_HASH_HEX[] =
    "762ca52bc84b9a1eef12ed51dece37081e077796b1a35533c4cbb49d5edbbdf4";

/* The six leaves of State B (the first three are State A). */
static void make_leaves(struct ldg_buf keys[6], struct ldg_leaf leaf[6])
{
    static const char *const vals[6] = {"{\"name\":\"Alice\"}", "token", "",
                                        "thirty-two", "ninety-eight", ""};
    static const uint64_t exp[6] = {0, 1767229200, 0, 0, 1767229200, 0};
    static const uint64_t ver[6] = {1, 1, 1, 2, 2, 3};
    for (int i = 0; i < 6; i++)
        ldg_buf_init(&keys[i]);
    ldg_leaf_key_entity(&keys[0], S("user:alice"));
    ldg_leaf_key_entity(&keys[1], S("session:42"));
    assert_int_equal(ldg_leaf_key_relationship(&keys[2], S("doc:readme"), S("viewer"),
                                               S("user:alice")),
                     0);
    ldg_leaf_key_entity(&keys[3], S("obj:32"));
    ldg_leaf_key_entity(&keys[4], S("obj:98"));
    ldg_leaf_key_entity(&keys[5], S("obj:139"));
    for (int i = 0; i < 6; i++) {
        leaf[i].key = ldg_bytes_of(keys[i].data, keys[i].len);
        ldg_sha256(vals[i], strlen(vals[i]), leaf[i].value_hash);
        leaf[i].expires_at = exp[i];
        leaf[i].version = ver[i];
    }
}

static void free_keys(struct ldg_buf keys[6])
{
    for (int i = 0; i < 6; i++)
        ldg_buf_close(&keys[i]);
}

/* ---- tests: constants and SHA-256 ---- */

static void test_constants(void **state)
{
    (void)state;
    uint8_t h[LDG_HASH_LEN], d[LDG_HASH_LEN];
    ldg_sha256("", 0, h);
    check_hex(h, 32, D_HEX[0]);
    check_hex(LDG_EMPTY_HASH, 32, D_HEX[0]);
    memcpy(d, LDG_EMPTY_HASH, 32);
    for (int i = 0; i <= 8; i++) {
        check_hex(LDG_EMPTY_SUBTREE[i], 32, D_HEX[i]);
        assert_memory_equal(LDG_EMPTY_SUBTREE[i], d, 32);
        ldg_sha256_pair(d, d, d);
    }
    uint8_t roots[256][32];
    for (int b = 0; b < 256; b++)
        memcpy(roots[b], LDG_EMPTY_SUBTREE[8], 32);
    ldg_state_root(roots, h);
    check_hex(h, 32, EMPTY_STATE_ROOT_HEX);
    check_hex(LDG_EMPTY_STATE_ROOT, 32, EMPTY_STATE_ROOT_HEX);
    assert_int_equal(ldg_state_root_from_leaves(NULL, 0, NULL, h), 0);
    check_hex(h, 32, EMPTY_STATE_ROOT_HEX);

    struct ldg_bucket_tree t;
    ldg_bucket_tree_init(&t);
    check_hex(ldg_bucket_tree_root(&t), 32, D_HEX[8]);
    assert_int_equal(ldg_bucket_tree_check(&t), 0);
}

static void test_sha256_api(void **state)
{
    (void)state;
    /* FIPS 180-2 "abc". */
    uint8_t h[32], h2[32];
    ldg_sha256("abc", 3, h);
    check_hex(h, 32, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    struct ldg_sha256_ctx c;
    ldg_sha256_init(&c);
    ldg_sha256_update(&c, "a", 1);
    ldg_sha256_update(&c, NULL, 0);
    ldg_sha256_update(&c, "bc", 2);
    ldg_sha256_final(&c, h2);
    assert_memory_equal(h, h2, 32);

    /* Integer and "len" appenders match ldg_buf's encoders. */
    struct ldg_buf b;
    ldg_buf_init(&b);
    ldg_buf_u8(&b, 7);
    ldg_buf_u32le(&b, 0x01020304);
    ldg_buf_u32be(&b, 0x01020304);
    ldg_buf_u64be(&b, 0x0102030405060708ULL);
    ldg_buf_lenbytes(&b, "xyz", 3);
    ldg_sha256(b.data, b.len, h);
    ldg_sha256_init(&c);
    ldg_sha256_u8(&c, 7);
    ldg_sha256_u32le(&c, 0x01020304);
    ldg_sha256_u32be(&c, 0x01020304);
    ldg_sha256_u64be(&c, 0x0102030405060708ULL);
    ldg_sha256_lenbytes(&c, "xyz", 3);
    ldg_sha256_final(&c, h2);
    assert_memory_equal(h, h2, 32);
    ldg_buf_close(&b);

    char hex[65];
    ldg_hash_to_hex(h, hex);
    assert_int_equal(strlen(hex), 64);
    assert_int_equal(ldg_hash_from_hex(hex, h2), 0);
    assert_memory_equal(h, h2, 32);
    assert_int_equal(ldg_hash_from_hex("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                                       h2),
                     0);
    assert_memory_equal(h2, LDG_EMPTY_HASH, 32);
    assert_int_equal(ldg_hash_from_hex("e3b0", h2), LDG_EINVAL);
    assert_int_equal(ldg_hash_from_hex("g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                                       h2),
                     LDG_EINVAL);
}

/* ---- tests: transactions ---- */

static void test_op_encodings(void **state)
{
    (void)state;
    static const char *const want[9] = {
        "010a000000646f633a726561646d65060000007669657765720a000000757365723a616c696365",
        "020a000000646f633a726561646d6506000000656469746f7208000000757365723a626f62",
        ("030a000000757365723a616c696365100000007b226e616d65223a22416c696365227d000000000000"
         "000000"),
        "03020000006b3102000000763101000000006955c710",
        "03020000006b32020000007632020000000000000000",
        "03020000006b330200000076330300000000000000070000000000000000",
        "03020000006b3402000000763404030000006f6c640000000000000000",
        "04020000006b35",
        "050a00000073657373696f6e3a3432000000006955b900",
    };
    struct ldg_op ops[9];
    struct ldg_buf b;
    make_ops(ops);
    ldg_buf_init(&b);
    for (int i = 0; i < 9; i++) {
        ldg_buf_reset(&b);
        assert_int_equal(ldg_op_encode(&ops[i], &b), 0);
        check_hex(b.data, b.len, want[i]);

        /* Decoding gives back an op that encodes identically. */
        struct ldg_op back;
        size_t off = 0;
        struct ldg_buf b2;
        assert_int_equal(ldg_op_decode(b.data, b.len, &off, &back), 0);
        assert_int_equal(off, b.len);
        ldg_buf_init(&b2);
        assert_int_equal(ldg_op_encode(&back, &b2), 0);
        assert_int_equal(b2.len, b.len);
        assert_memory_equal(b2.data, b.data, b.len);
        ldg_buf_close(&b2);
        /* Every truncation is rejected without moving the offset. */
        for (size_t cut = 0; cut < b.len; cut++) {
            off = 0;
            assert_int_equal(ldg_op_decode(b.data, cut, &off, &back), LDG_EINVAL);
            assert_int_equal(off, 0);
        }
    }

    /* Invalid ops. */
    struct ldg_op bad = ops[2];
    bad.type = 0x06;
    assert_int_equal(ldg_op_validate(&bad), LDG_EINVAL);
    bad = ops[2];
    bad.cond = 0x05;
    assert_int_equal(ldg_op_validate(&bad), LDG_EINVAL);
    bad = ops[2];
    bad.key.data = NULL;
    ldg_buf_reset(&b);
    assert_int_equal(ldg_op_encode(&bad, &b), LDG_EINVAL);
    assert_int_equal(b.len, 0);
    const uint8_t unknown_type[] = {0x09, 0, 0, 0, 0};
    const uint8_t unknown_cond[] = {0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0x07, 0, 0, 0, 0, 0, 0, 0, 0};
    size_t off = 0;
    struct ldg_op o;
    assert_int_equal(ldg_op_decode(unknown_type, sizeof unknown_type, &off, &o), LDG_EINVAL);
    assert_int_equal(ldg_op_decode(unknown_cond, sizeof unknown_cond, &off, &o), LDG_EINVAL);
    /* Fields of other op types are ignored. */
    struct ldg_op extra = ops[7];
    extra.value = S("ignored");
    extra.expires_at = 99;
    ldg_buf_reset(&b);
    assert_int_equal(ldg_op_encode(&extra, &b), 0);
    check_hex(b.data, b.len, want[7]);
    ldg_buf_close(&b);
}

static void test_tx_hashes(void **state)
{
    (void)state;
    struct ldg_op ops[9];
    struct ldg_tx tx1, tx2, back;
    struct ldg_op *back_ops = NULL;
    struct ldg_buf b;
    uint8_t h[32], h2[32];

    make_ops(ops);
    make_tx1(&tx1, ops);
    make_tx2(&tx2, ops);
    ldg_buf_init(&b);
    assert_int_equal(ldg_tx_encode(&tx1, &b), 0);
    assert_int_equal(b.len, 324);
    check_hex(b.data, b.len, TX1_ENC_HEX);
    assert_int_equal(ldg_tx_hash(&tx1, h), 0);
    check_hex(h, 32, TX1_HASH_HEX);
    ldg_sha256(b.data, b.len, h2);
    assert_memory_equal(h, h2, 32);

    /* Decode round trip: same fields, same hash. */
    assert_int_equal(ldg_tx_decode(b.data, b.len, &back, &back_ops), 0);
    assert_memory_equal(back.tx_id, TX1_ID, 16);
    assert_int_equal(back.sequence, 3);
    assert_int_equal(back.op_count, 9);
    assert_int_equal(back.timestamp_seconds, 1767225600);
    assert_int_equal(back.timestamp_nanos, 123456000);
    assert_int_equal(back.ops[5].cond_version, 7);
    assert_int_equal(ldg_tx_hash(&back, h2), 0);
    assert_memory_equal(h, h2, 32);
    ldg_free(back_ops);

    /* Every truncation, and trailing bytes, are rejected. */
    for (size_t cut = 0; cut < b.len; cut++)
        assert_int_equal(ldg_tx_decode(b.data, cut, &back, &back_ops), LDG_EINVAL);
    ldg_buf_u8(&b, 0);
    assert_int_equal(ldg_tx_decode(b.data, b.len, &back, &back_ops), LDG_EINVAL);
    /* A huge op_count cannot make the decoder allocate for it. */
    ldg_buf_reset(&b);
    assert_int_equal(ldg_tx_encode(&tx1, &b), 0);
    ldg_put_u32le(b.data + 16 + 4 + 8 + 8 + 4 + 15, 0xffffffffu);
    assert_int_equal(ldg_tx_decode(b.data, b.len, &back, &back_ops), LDG_EINVAL);

    ldg_buf_reset(&b);
    assert_int_equal(ldg_tx_encode(&tx2, &b), 0);
    check_hex(b.data, b.len, TX2_ENC_HEX);
    assert_int_equal(ldg_tx_hash(&tx2, h), 0);
    check_hex(h, 32, TX2_HASH_HEX);

    /* Each hashed field matters. */
    from_hex(TX1_HASH_HEX, h);
    tx1.sequence = 4;
    assert_int_equal(ldg_tx_hash(&tx1, h2), 0);
    assert_memory_not_equal(h, h2, 32);
    make_tx1(&tx1, ops);
    tx1.timestamp_nanos = 123457000;
    assert_int_equal(ldg_tx_hash(&tx1, h2), 0);
    assert_memory_not_equal(h, h2, 32);
    make_tx1(&tx1, ops);
    tx1.tx_id[15] ^= 1;
    assert_int_equal(ldg_tx_hash(&tx1, h2), 0);
    assert_memory_not_equal(h, h2, 32);

    /* Negative timestamps are two's complement i64be. */
    make_tx2(&tx2, ops);
    tx2.timestamp_seconds = -1;
    ldg_buf_reset(&b);
    assert_int_equal(ldg_tx_encode(&tx2, &b), 0);
    check_hex(b.data + b.len - 12, 12, "ffffffffffffffff00000000");
    assert_int_equal(ldg_tx_decode(b.data, b.len, &back, &back_ops), 0);
    assert_int_equal(back.timestamp_seconds, -1);
    ldg_free(back_ops);

    /* Invalid ops make the tx unhashable. */
    struct ldg_op bad[1] = {ops[0]};
    bad[0].type = 0;
    tx2.ops = bad;
    assert_int_equal(ldg_tx_hash(&tx2, h2), LDG_EINVAL);
    ldg_buf_close(&b);
}

static void test_payload_digest(void **state)
{
    (void)state;
    struct ldg_op ops[9];
    uint8_t h[32];
    make_ops(ops);
    assert_int_equal(ldg_tx_payload_digest(1, 42, ops, 9, h), 0);
    check_hex(h, 32, "9878b1a3e137e3fabb8fc6373ac02eaca4d48b3efe55a0d340dca68c8f10b67a");
    assert_int_equal(ldg_tx_payload_digest(1, 0, ops, 9, h), 0);
    check_hex(h, 32, "1d1c9dd79d1d54ab0ba6aa74e6eaddda894055cd5af8078b211d55fb5f761457");
    /* H(org ‖ vault ‖ ops) with no count. */
    struct ldg_buf b;
    uint8_t h2[32];
    ldg_buf_init(&b);
    ldg_buf_u64be(&b, 1);
    ldg_buf_u64be(&b, 0);
    assert_int_equal(ldg_ops_encode(ops, 9, &b), 0);
    ldg_sha256(b.data, b.len, h2);
    assert_memory_equal(h, h2, 32);
    ldg_buf_close(&b);
}

/* ---- tests: RFC 6962 ---- */

static void mth_ref(const uint8_t (*d)[32], size_t n, uint8_t out[32])
{
    if (n == 0) {
        ldg_sha256("", 0, out);
        return;
    }
    if (n == 1) {
        uint8_t in[33] = {0x00};
        memcpy(in + 1, d[0], 32);
        ldg_sha256(in, 33, out);
        return;
    }
    size_t k = 1;
    while (2 * k < n)
        k *= 2;
    uint8_t in[65] = {0x01};
    mth_ref(d, k, in + 1);
    mth_ref(d + k, n - k, in + 33);
    ldg_sha256(in, 65, out);
}

static void test_merkle_vectors(void **state)
{
    (void)state;
    static const char *const mth[6] = {
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "d9de27625445003d8a9739a851e3ff8d41c0683630b4d63a88327a6aaa37c409",
        "604d540f09268b91672ab011394d5266ccd7d4484d0d109411a55848126a1b2c",
        "d1f13800048f5909d4043fc0c152f6643280cba608b672715e56ce159a20629f",
        NULL,
        "6b313b611b40676b9e1dfd70c4503f2379f88f0f1c2740fb7e1cacc32c113465",
    };
    uint8_t d[5][32], h[32], path[LDG_MERKLE_MAX_PATH][32];
    size_t len;
    for (int i = 0; i < 5; i++) {
        uint8_t c = (uint8_t)i;
        ldg_sha256(&c, 1, d[i]);
    }
    check_hex(d[4], 32, "e52d9c508c502347344d8c07ad91cbd6068afc75ff6292f062a09ca381c89e71");
    for (size_t n = 0; n <= 5; n++) {
        if (!mth[n])
            continue;
        ldg_merkle_root((const uint8_t(*)[32])d, n, h);
        check_hex(h, 32, mth[n]);
    }
    assert_int_equal(ldg_merkle_path((const uint8_t(*)[32])d, 5, 2, path, 64, &len), 0);
    assert_int_equal(len, 3);
    check_hex(path[0], 32, "36e4970e7c84e559ed7290304c3c0672289a6918e7746d48397b0e122db7748f");
    check_hex(path[1], 32, mth[2]);
    check_hex(path[2], 32, "12d24297164ffddfd8febbd02275c3c5ff24916dc71d5f3476931480854b3113");
    assert_int_equal(ldg_merkle_path((const uint8_t(*)[32])d, 5, 4, path, 64, &len), 0);
    assert_int_equal(len, 1);
    check_hex(path[0], 32, "0dcc2b645c00dfa2338e1c7ac2c4b570beda5a476d58836e55e28bde55e6bee1");

    /* Real transactions. */
    struct ldg_op ops[9];
    struct ldg_tx tx;
    uint8_t txh[2][32];
    make_ops(ops);
    make_tx1(&tx, ops);
    ldg_tx_hash(&tx, txh[0]);
    make_tx2(&tx, ops);
    ldg_tx_hash(&tx, txh[1]);
    ldg_merkle_root((const uint8_t(*)[32])txh, 1, h);
    check_hex(h, 32, "11a0d229800c8ca2f9f5a7c1d61ef7cb912fa241ca7c5c4c78191c04d9e1b22f");
    ldg_merkle_root((const uint8_t(*)[32])txh, 2, h);
    check_hex(h, 32, "32d8d369d5dfa0497c8580995233328c8b5ee91c44d9bfbd8541d3ec2e88c9ef");

    /* Not the duplicate-last-node tree: [a, b, c] and [a, b, c, c] differ. */
    uint8_t four[4][32], r3[32], r4[32];
    memcpy(four, d, 3 * 32);
    memcpy(four[3], d[2], 32);
    ldg_merkle_root((const uint8_t(*)[32])four, 3, r3);
    ldg_merkle_root((const uint8_t(*)[32])four, 4, r4);
    assert_memory_not_equal(r3, r4, 32);
}

static void test_merkle_vs_reference(void **state)
{
    (void)state;
    enum { MAX = 130 };
    uint8_t (*d)[32] = ldg_malloc(MAX * 32);
    uint8_t a[32], b[32];
    for (size_t i = 0; i < MAX; i++)
        rnd_hash(d[i]);
    for (size_t n = 0; n <= MAX; n++) {
        ldg_merkle_root((const uint8_t(*)[32])d, n, a);
        mth_ref((const uint8_t(*)[32])d, n, b);
        assert_memory_equal(a, b, 32);
    }
    ldg_free(d);
}

static void test_merkle_paths(void **state)
{
    (void)state;
    uint8_t d[33][32], root[32], got[32], path[LDG_MERKLE_MAX_PATH][32];
    size_t len;
    for (size_t i = 0; i < 33; i++)
        rnd_hash(d[i]);
    for (size_t n = 1; n <= 33; n++) {
        const uint8_t(*dd)[32] = (const uint8_t(*)[32])d;
        ldg_merkle_root(dd, n, root);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(ldg_merkle_path(dd, n, i, path, LDG_MERKLE_MAX_PATH, &len), 0);
            size_t depth = 0;
            while (((size_t)1 << depth) < n)
                depth++;
            assert_true(len <= depth);
            assert_int_equal(ldg_merkle_path_verify(d[i], i, n, (const uint8_t(*)[32])path,
                                                    len, root),
                             0);
            assert_int_equal(ldg_merkle_path_root(d[i], i, n, (const uint8_t(*)[32])path, len,
                                                  got),
                             0);
            assert_memory_equal(got, root, 32);
            /* Wrong leaf, wrong index, tampered sibling, short or long path. */
            assert_int_not_equal(ldg_merkle_path_verify(d[(i + 1) % 33], i, n,
                                                        (const uint8_t(*)[32])path, len, root),
                                 0);
            if (n > 1)
                assert_int_not_equal(ldg_merkle_path_verify(d[i], (i + 1) % n, n,
                                                            (const uint8_t(*)[32])path, len,
                                                            root),
                                     0);
            if (len > 0) {
                path[len - 1][0] ^= 1;
                assert_int_equal(ldg_merkle_path_verify(d[i], i, n, (const uint8_t(*)[32])path,
                                                        len, root),
                                 LDG_ECORRUPT);
                path[len - 1][0] ^= 1;
                assert_int_equal(ldg_merkle_path_verify(d[i], i, n, (const uint8_t(*)[32])path,
                                                        len - 1, root),
                                 LDG_EINVAL);
                assert_int_equal(ldg_merkle_path(dd, n, i, path, len - 1, &len), LDG_ETOOBIG);
            }
            memcpy(path[len], root, 32);
            assert_int_equal(ldg_merkle_path_verify(d[i], i, n, (const uint8_t(*)[32])path,
                                                    len + 1, root),
                             LDG_EINVAL);
        }
        assert_int_equal(ldg_merkle_path(dd, n, n, path, 64, &len), LDG_EINVAL);
        assert_int_equal(ldg_merkle_path_verify(d[0], n, n, (const uint8_t(*)[32])path, 0, root),
                         LDG_EINVAL);
    }
}

/* ---- tests: state ---- */

static void test_state_vectors(void **state)
{
    (void)state;
    static const char *const keys_hex[6] = {
        "01757365723a616c696365",
        "0173657373696f6e3a3432",
        "020a000000646f633a726561646d65060000007669657765720a000000757365723a616c696365",
        "016f626a3a3332",
        "016f626a3a3938",
        "016f626a3a313339",
    };
    static const uint8_t loc[6][2] = {{130, 238}, {7, 65}, {231, 190},
                                      {216, 39},  {216, 76}, {216, 76}};
    static const char *const enc_hex[6] = {
        "0b00000001757365723a616c6963653cba1e3cf23c8ce24b7e08171d823fbd9a4929aafd9f27516e30"
        "699d3a42026a00000000000000000000000000000001",
        "0b0000000173657373696f6e3a34323c469e9d6c5875d37a43f353d4f88e61fcf812c66eee3457465a"
        "40b0da4153e0000000006955c7100000000000000001",
        "27000000020a000000646f633a726561646d65060000007669657765720a000000757365723a616c69"
        "6365e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85500000000000000"
        "000000000000000001",
        "07000000016f626a3a33327a78c7548928535f30e6d416cf6f76f1bec62995622eb508093459f3a7bf"
        "e73600000000000000000000000000000002",
        "07000000016f626a3a393860e6dda7a5e4d3feb6fd44b718aa7ca67b7af9920e04c5fba3f41e8fde6a"
        "d235000000006955c7100000000000000002",
        "08000000016f626a3a313339e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b78"
        "52b85500000000000000000000000000000003",
    };
    static const char *const slot1_hex[4] = {
        "4c329fdc5e9897578818a8177cdde7904b88d52d5e8a49e3ac31f3c9be5441d3",
        "0dcbe39d13a3c2e1eeea7d61648327454635b17d4fdeae0caf673676bed3e1c1",
        "dd7978af46effa2d786c7a23e9a09897e219264ec0c266d3da1c6a8bb73554d6",
        "e9efbd368183193fa1cdfc09869f9fcacf721e9f03b51dce22efad8d1e1fa189",
    };
    struct ldg_buf keys[6], b;
    struct ldg_leaf leaf[6];
    uint8_t h[32], roots[256][32];

    make_leaves(keys, leaf);
    ldg_buf_init(&b);
    for (int i = 0; i < 6; i++) {
        uint8_t bk, sl;
        check_hex(keys[i].data, keys[i].len, keys_hex[i]);
        ldg_leaf_key_locate(leaf[i].key, &bk, &sl);
        assert_int_equal(bk, loc[i][0]);
        assert_int_equal(sl, loc[i][1]);
        ldg_buf_reset(&b);
        assert_int_equal(ldg_leaf_encode(&leaf[i], &b), 0);
        check_hex(b.data, b.len, enc_hex[i]);
        if (i < 4) {
            assert_int_equal(ldg_slot_hash(&leaf[i], 1, h), 0);
            check_hex(h, 32, slot1_hex[i]);
        }
    }
    assert_int_equal(ldg_slot_hash(NULL, 0, h), 0);
    assert_memory_equal(h, LDG_EMPTY_HASH, 32);

    /* State A. */
    assert_int_equal(ldg_state_root_from_leaves(leaf, 3, roots, h), 0);
    check_hex(h, 32, "d33092e6547e97350e7ae1f4d744d3ec1441d40f12f031c08f613be9398abed4");
    for (int bk = 0; bk < 256; bk++) {
        if (bk == 7)
            check_hex(roots[bk], 32,
                      "2048305672f73953936429d35e2b1347446de2047119e71ec03905f099f0809a");
        else if (bk == 130)
            check_hex(roots[bk], 32,
                      "08e3a6fc1b15e6ce9d2fdb2c96438206b6727d91d026cf3938a18a5d85f6b3f9");
        else if (bk == 231)
            check_hex(roots[bk], 32,
                      "bed91797e13fd1b14d06855310280ed9fd1cd65305c8389b3313e4f96058f35d");
        else
            check_hex(roots[bk], 32, D_HEX[8]);
    }

    /* State B, in any input order. */
    assert_int_equal(ldg_state_root_from_leaves(leaf, 6, roots, h), 0);
    check_hex(h, 32, "4ef622dc40704d2b9b7c20bb90039ce69414d5bc34d609944962075762557a3f");
    check_hex(roots[216], 32, "3d38fe8eb94a3d3e2eb409300981fdd836a317452abdd1c7fb496c31146d63e8");
    struct ldg_leaf rev[6];
    for (int i = 0; i < 6; i++)
        rev[i] = leaf[5 - i];
    assert_int_equal(ldg_state_root_from_leaves(rev, 6, NULL, h), 0);
    check_hex(h, 32, "4ef622dc40704d2b9b7c20bb90039ce69414d5bc34d609944962075762557a3f");

    /* Slot 76: obj:139 sorts before obj:98; the reverse order is rejected. */
    struct ldg_leaf two[2] = {leaf[5], leaf[4]};
    assert_int_equal(ldg_slot_hash(two, 2, h), 0);
    check_hex(h, 32, "475ccb4c408452d771b6444d0618a59c1722036e5666a4856740c9744f843a01");
    struct ldg_leaf two_bad[2] = {leaf[4], leaf[5]};
    assert_int_equal(ldg_slot_hash(two_bad, 2, h), LDG_EINVAL);
    struct ldg_leaf dup[2] = {leaf[4], leaf[4]};
    assert_int_equal(ldg_slot_hash(dup, 2, h), LDG_EINVAL);
    struct ldg_leaf dup6[7];
    memcpy(dup6, leaf, sizeof leaf);
    dup6[6] = leaf[2];
    assert_int_equal(ldg_state_root_from_leaves(dup6, 7, NULL, h), LDG_EINVAL);

    /* Prefix sorts first. */
    assert_true(ldg_leaf_key_cmp(S("ab"), S("abc")) < 0);
    assert_true(ldg_leaf_key_cmp(S("abc"), S("ab")) > 0);
    assert_true(ldg_leaf_key_cmp(S("b"), S("abc")) > 0);
    assert_int_equal(ldg_leaf_key_cmp(S(""), S("")), 0);

    ldg_buf_close(&b);
    free_keys(keys);
}

/* Build the bucket tree of |bucket| from the leaves that fall in it. */
static void tree_from_leaves(struct ldg_bucket_tree *t, uint8_t bucket,
                             const struct ldg_leaf *leaves, size_t n)
{
    ldg_bucket_tree_init(t);
    for (unsigned s = 0; s < 256; s++) {
        struct ldg_leaf in[8];
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            uint8_t b, sl;
            ldg_leaf_key_locate(leaves[i].key, &b, &sl);
            if (b == bucket && sl == s) {
                /* insertion sort by leaf_key */
                size_t j = k++;
                while (j > 0 && ldg_leaf_key_cmp(in[j - 1].key, leaves[i].key) > 0) {
                    in[j] = in[j - 1];
                    j--;
                }
                in[j] = leaves[i];
            }
        }
        if (k > 0) {
            uint8_t h[32];
            assert_int_equal(ldg_slot_hash(in, k, h), 0);
            ldg_bucket_tree_set_slot(t, (uint8_t)s, h);
        }
    }
}

static void others_without(uint8_t roots[256][32], uint8_t bucket, uint8_t other[255][32])
{
    for (unsigned b = 0, j = 0; b < 256; b++) {
        if (b != bucket)
            memcpy(other[j++], roots[b], 32);
    }
}

static void test_verified_read(void **state)
{
    (void)state;
    struct ldg_buf keys[6];
    struct ldg_leaf leaf[6];
    struct ldg_bucket_tree t;
    uint8_t sib[8][32], roots[256][32], other[255][32], sr[32], got[32];

    make_leaves(keys, leaf);
    assert_int_equal(ldg_state_root_from_leaves(leaf, 6, roots, sr), 0);

    /* Bucket 216 and the path of slot 76 (docs §7.7). */
    tree_from_leaves(&t, 216, leaf, 6);
    check_hex(ldg_bucket_tree_root(&t), 32,
              "3d38fe8eb94a3d3e2eb409300981fdd836a317452abdd1c7fb496c31146d63e8");
    ldg_bucket_tree_path(&t, 76, sib);
    for (int i = 0; i < 8; i++) {
        if (i == 6)
            check_hex(sib[i], 32,
                      "1e128153feac4a5ed26530564e17d94f2c095a013d45d99b559cfc4ed2fc4df5");
        else
            check_hex(sib[i], 32, D_HEX[i]);
    }
    ldg_bucket_root_from_path(ldg_bucket_tree_slot(&t, 76), 76, (const uint8_t(*)[32])sib, got);
    assert_memory_equal(got, ldg_bucket_tree_root(&t), 32);
    others_without(roots, 216, other);

    struct ldg_state_proof p = {
        .leaf_key = leaf[4].key,
        .leaf = &leaf[4],
        .others = &leaf[5],
        .n_others = 1,
        .siblings = (const uint8_t(*)[32])sib,
        .other_bucket_roots = (const uint8_t(*)[32])other,
    };
    assert_int_equal(ldg_state_proof_verify(&p, sr), 0);
    assert_int_equal(ldg_state_proof_root(&p, got), 0);
    assert_memory_equal(got, sr, 32);
    /* obj:139, which sorts first in the slot. */
    struct ldg_state_proof p139 = p;
    p139.leaf_key = leaf[5].key;
    p139.leaf = &leaf[5];
    p139.others = &leaf[4];
    assert_int_equal(ldg_state_proof_verify(&p139, sr), 0);

    /* Tampering. */
    struct ldg_leaf forged = leaf[4];
    forged.version = 3;
    p.leaf = &forged;
    assert_int_equal(ldg_state_proof_verify(&p, sr), LDG_ECORRUPT);
    p.leaf = &leaf[4];
    sib[6][0] ^= 1;
    assert_int_equal(ldg_state_proof_verify(&p, sr), LDG_ECORRUPT);
    sib[6][0] ^= 1;
    other[0][0] ^= 1;
    assert_int_equal(ldg_state_proof_verify(&p, sr), LDG_ECORRUPT);
    other[0][0] ^= 1;
    p.n_others = 0; /* hiding a neighbour */
    assert_int_equal(ldg_state_proof_verify(&p, sr), LDG_ECORRUPT);
    p.n_others = 1;
    /* Malformed: neighbour from another slot, the key among the others, a
     * leaf for another key, unsorted others. */
    p.others = &leaf[3];
    assert_int_equal(ldg_state_proof_verify(&p, sr), LDG_EINVAL);
    p.others = &leaf[4];
    assert_int_equal(ldg_state_proof_verify(&p, sr), LDG_EINVAL);
    p.others = &leaf[5];
    p.leaf = &leaf[5];
    assert_int_equal(ldg_state_proof_verify(&p, sr), LDG_EINVAL);
    p.leaf = &leaf[4];
    struct ldg_leaf unsorted[2] = {leaf[5], leaf[5]};
    p.others = unsorted;
    p.n_others = 2;
    assert_int_equal(ldg_state_proof_verify(&p, sr), LDG_EINVAL);
    p.others = &leaf[5];
    p.n_others = 1;
    assert_int_equal(ldg_state_proof_verify(&p, sr), 0);

    /* Absence of obj:98 in State B minus obj:98. */
    struct ldg_leaf five[5] = {leaf[0], leaf[1], leaf[2], leaf[3], leaf[5]};
    uint8_t roots5[256][32], other5[255][32], sr5[32], sib5[8][32];
    assert_int_equal(ldg_state_root_from_leaves(five, 5, roots5, sr5), 0);
    tree_from_leaves(&t, 216, five, 5);
    ldg_bucket_tree_path(&t, 76, sib5);
    others_without(roots5, 216, other5);
    struct ldg_state_proof absent = {
        .leaf_key = leaf[4].key,
        .leaf = NULL,
        .others = &leaf[5],
        .n_others = 1,
        .siblings = (const uint8_t(*)[32])sib5,
        .other_bucket_roots = (const uint8_t(*)[32])other5,
    };
    assert_int_equal(ldg_state_proof_verify(&absent, sr5), 0);
    assert_int_equal(ldg_state_proof_verify(&absent, sr), LDG_ECORRUPT);

    /* user:alice, alone in bucket 130. */
    tree_from_leaves(&t, 130, leaf, 6);
    ldg_bucket_tree_path(&t, 238, sib);
    others_without(roots, 130, other);
    struct ldg_state_proof pa = {
        .leaf_key = leaf[0].key,
        .leaf = &leaf[0],
        .siblings = (const uint8_t(*)[32])sib,
        .other_bucket_roots = (const uint8_t(*)[32])other,
    };
    assert_int_equal(ldg_state_proof_verify(&pa, sr), 0);
    free_keys(keys);
}

/* ---- tests: blocks ---- */

static void test_block_vectors(void **state)
{
    (void)state;
    static const char GEN_ENC[] =
        "00000000000000000000000000000001000000000000002a000000000000000000000000"
        "0000000000000000000000000000000000000000e3b0c44298fc1c149afbf4c8996fb924"
        "27ae41e4649b934ca495991b7852b85543ea080da8ad1e02bd2c5ccc1a9f979854a3494c"
        "4b43bb233e29be5b40c78a6e000000006955b89c00000000000000000000000100000000"
        "00000005";
    static const char B1_ENC[] =
        "00000000000000010000000000000001000000000000002acd56f02e0a032155c701c973"
        "e864d7a883b68cafc827e0f9b6e0931a3e3a800d11a0d229800c8ca2f9f5a7c1d61ef7cb"
        "912fa241ca7c5c4c78191c04d9e1b22fd33092e6547e97350e7ae1f4d744d3ec1441d40f"
        "12f031c08f613be9398abed4000000006955b900075bca00000000000000000200000000"
        "00000007";
    struct ldg_block_header g, b1, back;
    uint8_t enc[LDG_BLOCK_HEADER_LEN], h[32];

    ldg_block_genesis(&g, 1, 42, 1767225500, 0, 1, 5);
    ldg_block_header_encode(&g, enc);
    check_hex(enc, sizeof enc, GEN_ENC);
    ldg_block_hash(&g, h);
    check_hex(h, 32, "cd56f02e0a032155c701c973e864d7a883b68cafc827e0f9b6e0931a3e3a800d");

    memset(&b1, 0, sizeof b1);
    b1.height = 1;
    b1.organization_slug = 1;
    b1.vault_slug = 42;
    memcpy(b1.previous_hash, h, 32);
    from_hex("11a0d229800c8ca2f9f5a7c1d61ef7cb912fa241ca7c5c4c78191c04d9e1b22f", b1.tx_merkle_root);
    from_hex("d33092e6547e97350e7ae1f4d744d3ec1441d40f12f031c08f613be9398abed4", b1.state_root);
    b1.timestamp_seconds = 1767225600;
    b1.timestamp_nanos = 123456000;
    b1.term = 2;
    b1.committed_index = 7;
    ldg_block_header_encode(&b1, enc);
    check_hex(enc, sizeof enc, B1_ENC);
    ldg_block_hash(&b1, h);
    check_hex(h, 32, "553fcced3abd671536f76782c63679eeb2d763959b8ecb42c99bde385579c43e");

    assert_int_equal(ldg_block_header_decode(enc, sizeof enc, &back), 0);
    assert_memory_equal(&back.previous_hash, b1.previous_hash, 32);
    assert_int_equal(back.height, 1);
    assert_int_equal(back.vault_slug, 42);
    assert_int_equal(back.timestamp_nanos, 123456000);
    assert_int_equal(back.committed_index, 7);
    ldg_block_hash(&back, h);
    check_hex(h, 32, "553fcced3abd671536f76782c63679eeb2d763959b8ecb42c99bde385579c43e");
    assert_int_equal(ldg_block_header_decode(enc, sizeof enc - 1, &back), LDG_EINVAL);
    ldg_put_u32be(enc + 128, 1000000000u);
    assert_int_equal(ldg_block_header_decode(enc, sizeof enc, &back), LDG_EINVAL);

    assert_int_equal(ldg_block_check_link(&g, &b1), 0);
    b1.previous_hash[31] ^= 1;
    assert_int_equal(ldg_block_check_link(&g, &b1), LDG_ECORRUPT);
    b1.previous_hash[31] ^= 1;
    b1.height = 2;
    assert_int_equal(ldg_block_check_link(&g, &b1), LDG_ECORRUPT);
    b1.height = 1;
    b1.vault_slug = 43;
    assert_int_equal(ldg_block_check_link(&g, &b1), LDG_ECORRUPT);

    /* Negative seconds are two's complement. */
    g.timestamp_seconds = -2;
    ldg_block_header_encode(&g, enc);
    check_hex(enc + 120, 8, "fffffffffffffffe");
    assert_int_equal(ldg_block_header_decode(enc, sizeof enc, &back), 0);
    assert_int_equal(back.timestamp_seconds, -2);
}

/* ---- tests: incremental buckets ---- */

static void test_bucket_flush_counts(void **state)
{
    (void)state;
    struct ldg_bucket_tree t, ref;
    uint8_t h[32];
    ldg_bucket_tree_init(&t);
    assert_int_equal(ldg_bucket_tree_flush(&t), 0);
    rnd_hash(h);
    ldg_bucket_tree_stage_slot(&t, 0, h);
    ldg_bucket_tree_stage_slot(&t, 1, h);
    assert_int_equal(ldg_bucket_tree_check(&t), LDG_ECORRUPT); /* staged, unflushed */
    assert_int_equal(ldg_bucket_tree_flush(&t), 8);          /* shared ancestors */
    ldg_bucket_tree_stage_slot(&t, 0, h);
    ldg_bucket_tree_stage_slot(&t, 255, h);
    assert_int_equal(ldg_bucket_tree_flush(&t), 15); /* only the root is shared */
    assert_int_equal(ldg_bucket_tree_check(&t), 0);
    ref = t;
    ldg_bucket_tree_rebuild(&ref);
    assert_memory_equal(ref.node, t.node, sizeof t.node);

    /* Store/load round trip, and a corrupted interior node is detected. */
    uint8_t *bytes = ldg_malloc(LDG_BUCKET_TREE_BYTES);
    ldg_bucket_tree_store(&t, bytes);
    assert_int_equal(ldg_bucket_tree_load(&ref, bytes, LDG_BUCKET_TREE_BYTES), 0);
    assert_memory_equal(ref.node, t.node, sizeof t.node);
    assert_int_equal(ldg_bucket_tree_load(&ref, bytes, LDG_BUCKET_TREE_BYTES - 1), LDG_EINVAL);
    bytes[100 * 32] ^= 1;
    assert_int_equal(ldg_bucket_tree_load(&ref, bytes, LDG_BUCKET_TREE_BYTES), 0);
    assert_int_equal(ldg_bucket_tree_check(&ref), LDG_ECORRUPT);
    ldg_free(bytes);
}

#define POOL 600
#define POOL_BUCKETS 4

struct pool_key {
    uint8_t key[48];
    size_t len;
    uint8_t bucket, slot;
    int present;
    uint8_t value_hash[32];
    uint64_t expires_at, version;
};

static struct ldg_leaf pool_leaf(const struct pool_key *k)
{
    struct ldg_leaf l;
    l.key = ldg_bytes_of(k->key, k->len);
    memcpy(l.value_hash, k->value_hash, 32);
    l.expires_at = k->expires_at;
    l.version = k->version;
    return l;
}

static void test_bucket_incremental_random(void **state)
{
    (void)state;
    struct pool_key *pool = ldg_calloc(POOL, sizeof *pool);
    struct ldg_bucket_tree *trees = ldg_malloc(POOL_BUCKETS * sizeof *trees);
    uint8_t(*stored)[LDG_BUCKET_TREE_BYTES] = ldg_malloc(POOL_BUCKETS * LDG_BUCKET_TREE_BYTES);
    struct ldg_leaf *all = ldg_malloc(POOL * sizeof *all);
    struct ldg_bucket_tree *ref = ldg_malloc(sizeof *ref);
    uint8_t roots[256][32], full_roots[256][32], inc[32], full[32];
    size_t max_slot_leaves = 0, changes = 0, rounds = 0;

    /* Keys (entities and relationships) that land in buckets 0..3, so slots
     * fill up and collide. */
    for (unsigned i = 0, n = 0; n < POOL; i++) {
        struct ldg_buf kb;
        char name[32];
        ldg_buf_init(&kb);
        snprintf(name, sizeof name, "key-%u", i);
        if (i % 2)
            ldg_leaf_key_entity(&kb, S(name));
        else
            ldg_leaf_key_relationship(&kb, S(name), S("viewer"), S("user:x"));
        uint8_t b, s;
        ldg_leaf_key_locate(ldg_bytes_of(kb.data, kb.len), &b, &s);
        if (b < POOL_BUCKETS) {
            assert_true(kb.len <= sizeof pool[n].key);
            memcpy(pool[n].key, kb.data, kb.len);
            pool[n].len = kb.len;
            pool[n].bucket = b;
            pool[n].slot = s;
            n++;
        }
        ldg_buf_close(&kb);
    }
    for (unsigned b = 0; b < POOL_BUCKETS; b++) {
        ldg_bucket_tree_init(&trees[b]);
        ldg_bucket_tree_store(&trees[b], stored[b]);
    }

    while (changes < 1000) {
        unsigned batch = (unsigned)(rnd() % 5) + 1;
        int staged = (int)(rnd() % 2);
        rounds++;
        /* Load each bucket as the ledger would, from its persisted bytes. */
        for (unsigned b = 0; b < POOL_BUCKETS; b++)
            assert_int_equal(ldg_bucket_tree_load(&trees[b], stored[b], LDG_BUCKET_TREE_BYTES), 0);
        for (unsigned c = 0; c < batch && changes < 1000; c++, changes++) {
            struct pool_key *k = &pool[rnd() % POOL];
            if (k->present && rnd() % 3 == 0) {
                k->present = 0;
            } else {
                k->present = 1;
                rnd_hash(k->value_hash);
                k->expires_at = rnd() % 2 ? 0 : 1767225600 + rnd() % 100000;
                k->version = changes + 1;
            }
            /* Rehash k's slot from its present leaves, in key order. */
            struct ldg_leaf in[POOL];
            size_t n = 0;
            for (unsigned i = 0; i < POOL; i++) {
                if (!pool[i].present || pool[i].bucket != k->bucket || pool[i].slot != k->slot)
                    continue;
                struct ldg_leaf l = pool_leaf(&pool[i]);
                size_t j = n++;
                while (j > 0 && ldg_leaf_key_cmp(in[j - 1].key, l.key) > 0) {
                    in[j] = in[j - 1];
                    j--;
                }
                in[j] = l;
            }
            if (n > max_slot_leaves)
                max_slot_leaves = n;
            uint8_t sh[32];
            assert_int_equal(ldg_slot_hash(in, n, sh), 0);
            if (staged)
                ldg_bucket_tree_stage_slot(&trees[k->bucket], k->slot, sh);
            else
                ldg_bucket_tree_set_slot(&trees[k->bucket], k->slot, sh);
        }
        for (unsigned b = 0; b < POOL_BUCKETS; b++) {
            unsigned hashes = ldg_bucket_tree_flush(&trees[b]);
            assert_true(hashes <= 8 * batch);
            /* Incremental tree == the same slots rebuilt from scratch. */
            *ref = trees[b];
            ldg_bucket_tree_rebuild(ref);
            assert_memory_equal(ref->node, trees[b].node, sizeof ref->node);
            ldg_bucket_tree_store(&trees[b], stored[b]);
        }
        /* Incremental state root == full recomputation from every leaf. */
        for (unsigned b = 0; b < 256; b++)
            memcpy(roots[b], b < POOL_BUCKETS ? ldg_bucket_tree_root(&trees[b])
                                              : LDG_EMPTY_SUBTREE[8],
                   32);
        ldg_state_root(roots, inc);
        size_t n_all = 0;
        for (unsigned i = 0; i < POOL; i++) {
            if (pool[i].present)
                all[n_all++] = pool_leaf(&pool[i]);
        }
        assert_int_equal(ldg_state_root_from_leaves(all, n_all, full_roots, full), 0);
        assert_memory_equal(full_roots, roots, sizeof roots);
        assert_memory_equal(inc, full, 32);
    }
    assert_int_equal(changes, 1000);
    assert_true(rounds > 100);
    assert_true(max_slot_leaves >= 2); /* multi-leaf slots were exercised */

    /* Every present leaf has a valid VerifiedRead proof against the root. */
    for (unsigned i = 0; i < POOL; i++) {
        if (!pool[i].present)
            continue;
        struct ldg_leaf me = pool_leaf(&pool[i]), others[POOL];
        size_t n = 0;
        for (unsigned j = 0; j < POOL; j++) {
            if (j == i || !pool[j].present || pool[j].bucket != pool[i].bucket ||
                pool[j].slot != pool[i].slot)
                continue;
            struct ldg_leaf l = pool_leaf(&pool[j]);
            size_t m = n++;
            while (m > 0 && ldg_leaf_key_cmp(others[m - 1].key, l.key) > 0) {
                others[m] = others[m - 1];
                m--;
            }
            others[m] = l;
        }
        uint8_t sib[8][32], other[255][32];
        ldg_bucket_tree_path(&trees[pool[i].bucket], pool[i].slot, sib);
        others_without(roots, pool[i].bucket, other);
        struct ldg_state_proof p = {
            .leaf_key = me.key,
            .leaf = &me,
            .others = others,
            .n_others = n,
            .siblings = (const uint8_t(*)[32])sib,
            .other_bucket_roots = (const uint8_t(*)[32])other,
        };
        assert_int_equal(ldg_state_proof_verify(&p, full), 0);
    }

    ldg_free(ref);
    ldg_free(all);
    ldg_free(stored);
    ldg_free(trees);
    ldg_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constants),
        cmocka_unit_test(test_sha256_api),
        cmocka_unit_test(test_op_encodings),
        cmocka_unit_test(test_tx_hashes),
        cmocka_unit_test(test_payload_digest),
        cmocka_unit_test(test_merkle_vectors),
        cmocka_unit_test(test_merkle_vs_reference),
        cmocka_unit_test(test_merkle_paths),
        cmocka_unit_test(test_state_vectors),
        cmocka_unit_test(test_verified_read),
        cmocka_unit_test(test_block_vectors),
        cmocka_unit_test(test_bucket_flush_counts),
        cmocka_unit_test(test_bucket_incremental_random),
    };
    return cmocka_run_group_tests_name("hashing", tests, NULL, NULL);
}
