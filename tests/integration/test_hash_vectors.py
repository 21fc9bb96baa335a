"""docs/hashing.md test vectors, recomputed by the independent Python verifier.

tests/unit/test_hashing.c checks the same hex against the C code, and every
expected value here must also appear verbatim in docs/hashing.md, so C, Python
and the document agree. No server is needed."""

import hashlib
import os
import random

import pytest

import ledger_verify as lv

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "hashing.md")

OPS = [
    {"create_relationship": {"resource": "doc:readme", "relation": "viewer",
                             "subject": "user:alice"}},
    {"delete_relationship": {"resource": "doc:readme", "relation": "editor",
                             "subject": "user:bob"}},
    {"set_entity": {"key": "user:alice", "value": b'{"name":"Alice"}'}},
    {"set_entity": {"key": "k1", "value": b"v1", "condition": {"not_exists": True},
                    "expires_at": "1767229200"}},
    {"set_entity": {"key": "k2", "value": b"v2", "condition": {"must_exist": True}}},
    {"set_entity": {"key": "k3", "value": b"v3", "condition": {"version": "7"}}},
    {"set_entity": {"key": "k4", "value": b"v4", "condition": {"value_equals": b"old"}}},
    {"delete_entity": {"key": "k5"}},
    {"expire_entity": {"key": "session:42", "expired_at": 1767225600}},
]

TX1 = {"tx_id": "00112233-4455-4677-8899-aabbccddeeff", "client_id": "client-1",
       "sequence": "3", "actor": "client:client-1", "operations": OPS,
       "timestamp": "2026-01-01T00:00:00.123456Z"}
TX2 = {"tx_id": "f47ac10b-58cc-4372-a567-0e02b2c3d479", "client_id": "", "sequence": 0,
       "actor": "system:gc", "operations": [OPS[8]],
       "timestamp": {"seconds": 1767225601, "nanos": 0}}

STATE_A = [
    {"key": "user:alice", "value": b'{"name":"Alice"}', "expires_at": 0, "version": 1},
    {"key": "session:42", "value": b"token", "expires_at": 1767229200, "version": 1},
    {"resource": "doc:readme", "relation": "viewer", "subject": "user:alice", "version": 1},
]
STATE_B = STATE_A + [
    {"key": "obj:32", "value": b"thirty-two", "expires_at": 0, "version": 2},
    {"key": "obj:98", "value": b"ninety-eight", "expires_at": 1767229200, "version": 2},
    {"key": "obj:139", "value": b"", "expires_at": 0, "version": 3},
]

V = {
    "EMPTY": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "D": [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "2dba5dbc339e7316aea2683faf839c1b7b1ee2313db792112588118df066aa35",
        "5310a330e8f970388503c73349d80b45cd764db615f1bced2801dcd4524a2ff4",
        "80d1bf4dd6c1f75bba022337a3f0842078f5c2e7f3f59dfd33ccbb8e963367b2",
        "1492e66e89e186840231850712161255d203b5bbf48d21242f0b51519b5eb3d4",
        "03a82289eea21de37e72ad6c07865dcab3f2cd681ad47c1cd0ea30e1751ad996",
        "35603b6278eb5d320c99eeb68354d448493e1ab9857cb0bddb9f7fa72250a3a8",
        "8ff9103704f4e7dfee6106551eb439d3ac6bc5cc4873ced8ec33eaf2d42f4c31",
        "259ca0ef3ecb66bb9f02e2ca9de6c7ff13951ad824ece4c680555cfef4321d17",
    ],
    "EMPTY_STATE_ROOT": "43ea080da8ad1e02bd2c5ccc1a9f979854a3494c4b43bb233e29be5b40c78a6e",
    "OPS": [
        "010a000000646f633a726561646d65060000007669657765720a000000757365723a616c696365",
        "020a000000646f633a726561646d6506000000656469746f7208000000757365723a626f62",
        "030a000000757365723a616c696365100000007b226e616d65223a22416c696365227d"
        "000000000000000000",
        "03020000006b3102000000763101000000006955c710",
        "03020000006b32020000007632020000000000000000",
        "03020000006b330200000076330300000000000000070000000000000000",
        "03020000006b3402000000763404030000006f6c640000000000000000",
        "04020000006b35",
        "050a00000073657373696f6e3a3432000000006955b900",
    ],
    "TX1_HASH": "697e4a84d7c6b7fd4ecdf9fd61eb0825f9622940d62d95edbf5857666e52e0e3",
    "TX2_ENC": "f47ac10b58cc4372a5670e02b2c3d4790000000000000000000000000900000073797374"
               "656d3a676301000000050a00000073657373696f6e3a3432000000006955b90000000000"
               "6955b90100000000",
    "TX2_HASH": "762ca52bc84b9a1eef12ed51dece37081e077796b1a35533c4cbb49d5edbbdf4",
    "PAYLOAD_1_42": "9878b1a3e137e3fabb8fc6373ac02eaca4d48b3efe55a0d340dca68c8f10b67a",
    "PAYLOAD_1_0": "1d1c9dd79d1d54ab0ba6aa74e6eaddda894055cd5af8078b211d55fb5f761457",
    "MTH": {
        0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        1: "d9de27625445003d8a9739a851e3ff8d41c0683630b4d63a88327a6aaa37c409",
        2: "604d540f09268b91672ab011394d5266ccd7d4484d0d109411a55848126a1b2c",
        3: "d1f13800048f5909d4043fc0c152f6643280cba608b672715e56ce159a20629f",
        5: "6b313b611b40676b9e1dfd70c4503f2379f88f0f1c2740fb7e1cacc32c113465",
    },
    "PATH5_2": [
        "36e4970e7c84e559ed7290304c3c0672289a6918e7746d48397b0e122db7748f",
        "604d540f09268b91672ab011394d5266ccd7d4484d0d109411a55848126a1b2c",
        "12d24297164ffddfd8febbd02275c3c5ff24916dc71d5f3476931480854b3113",
    ],
    "PATH5_4": ["0dcc2b645c00dfa2338e1c7ac2c4b570beda5a476d58836e55e28bde55e6bee1"],
    "ROOT_TX1": "11a0d229800c8ca2f9f5a7c1d61ef7cb912fa241ca7c5c4c78191c04d9e1b22f",
    "ROOT_TX12": "32d8d369d5dfa0497c8580995233328c8b5ee91c44d9bfbd8541d3ec2e88c9ef",
    "LEAFKEYS": [
        "01757365723a616c696365",
        "0173657373696f6e3a3432",
        "020a000000646f633a726561646d65060000007669657765720a000000757365723a616c696365",
        "016f626a3a3332",
        "016f626a3a3938",
        "016f626a3a313339",
    ],
    "LOC": [(130, 238), (7, 65), (231, 190), (216, 39), (216, 76), (216, 76)],
    "LEAFENC": [
        "0b00000001757365723a616c6963653cba1e3cf23c8ce24b7e08171d823fbd9a4929aafd9f2751"
        "6e30699d3a42026a00000000000000000000000000000001",
        "0b0000000173657373696f6e3a34323c469e9d6c5875d37a43f353d4f88e61fcf812c66eee3457"
        "465a40b0da4153e0000000006955c7100000000000000001",
        "27000000020a000000646f633a726561646d65060000007669657765720a000000757365723a61"
        "6c696365e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855000000"
        "00000000000000000000000001",
        "07000000016f626a3a33327a78c7548928535f30e6d416cf6f76f1bec62995622eb508093459f3"
        "a7bfe73600000000000000000000000000000002",
        "07000000016f626a3a393860e6dda7a5e4d3feb6fd44b718aa7ca67b7af9920e04c5fba3f41e8f"
        "de6ad235000000006955c7100000000000000002",
        "08000000016f626a3a313339e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
        "1b7852b85500000000000000000000000000000003",
    ],
    "SLOT1": [
        "4c329fdc5e9897578818a8177cdde7904b88d52d5e8a49e3ac31f3c9be5441d3",
        "0dcbe39d13a3c2e1eeea7d61648327454635b17d4fdeae0caf673676bed3e1c1",
        "dd7978af46effa2d786c7a23e9a09897e219264ec0c266d3da1c6a8bb73554d6",
        "e9efbd368183193fa1cdfc09869f9fcacf721e9f03b51dce22efad8d1e1fa189",
    ],
    "A_BUCKETS": {
        7: "2048305672f73953936429d35e2b1347446de2047119e71ec03905f099f0809a",
        130: "08e3a6fc1b15e6ce9d2fdb2c96438206b6727d91d026cf3938a18a5d85f6b3f9",
        231: "bed91797e13fd1b14d06855310280ed9fd1cd65305c8389b3313e4f96058f35d",
    },
    "STATE_A": "d33092e6547e97350e7ae1f4d744d3ec1441d40f12f031c08f613be9398abed4",
    "SLOT_216_76": "475ccb4c408452d771b6444d0618a59c1722036e5666a4856740c9744f843a01",
    "B_B216": "3d38fe8eb94a3d3e2eb409300981fdd836a317452abdd1c7fb496c31146d63e8",
    "STATE_B": "4ef622dc40704d2b9b7c20bb90039ce69414d5bc34d609944962075762557a3f",
    "SIB": [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "2dba5dbc339e7316aea2683faf839c1b7b1ee2313db792112588118df066aa35",
        "5310a330e8f970388503c73349d80b45cd764db615f1bced2801dcd4524a2ff4",
        "80d1bf4dd6c1f75bba022337a3f0842078f5c2e7f3f59dfd33ccbb8e963367b2",
        "1492e66e89e186840231850712161255d203b5bbf48d21242f0b51519b5eb3d4",
        "03a82289eea21de37e72ad6c07865dcab3f2cd681ad47c1cd0ea30e1751ad996",
        "1e128153feac4a5ed26530564e17d94f2c095a013d45d99b559cfc4ed2fc4df5",
        "8ff9103704f4e7dfee6106551eb439d3ac6bc5cc4873ced8ec33eaf2d42f4c31",
    ],
    "GEN_HASH": "cd56f02e0a032155c701c973e864d7a883b68cafc827e0f9b6e0931a3e3a800d",
    "B1_HASH": "553fcced3abd671536f76782c63679eeb2d763959b8ecb42c99bde385579c43e",
}

D_LEAVES = [hashlib.sha256(bytes([i])).digest() for i in range(5)]


def _genesis():
    return {"height": 0, "organization_slug": {"id": "1"}, "vault": {"slug": "42"},
            "previous_hash": bytes(32), "tx_merkle_root": lv.EMPTY,
            "state_root": lv.EMPTY_STATE_ROOT, "timestamp_seconds": 1767225500,
            "timestamp_nanos": 0, "term": 1, "committed_index": 5}


def _block1():
    return {"height": "1", "organization_slug": "1", "vault_slug": "42",
            "previous_hash": V["GEN_HASH"], "tx_merkle_root": V["ROOT_TX1"],
            "state_root": V["STATE_A"], "timestamp": "2026-01-01T00:00:00.123456Z",
            "term": "2", "committed_index": "7"}


def _all_hex(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for x in v.values():
            yield from _all_hex(x)
    elif isinstance(v, list):
        for x in v:
            yield from _all_hex(x)


def test_every_vector_is_in_the_doc():
    with open(DOC) as f:
        doc = "".join(f.read().split())  # long hex is wrapped in the doc
    for h in _all_hex(V):
        assert h in doc, h


def test_constants():
    assert lv.EMPTY.hex() == V["EMPTY"]
    assert [d.hex() for d in lv.EMPTY_SUBTREES] == V["D"]
    assert lv.EMPTY_STATE_ROOT.hex() == V["EMPTY_STATE_ROOT"]
    assert lv.state_root([]).hex() == V["EMPTY_STATE_ROOT"]


def test_ops_and_tx_hashes():
    assert [lv.op_bytes(o).hex() for o in OPS] == V["OPS"]
    enc = lv.tx_bytes(TX1)
    assert len(enc) == 324
    assert lv.tx_hash(TX1).hex() == V["TX1_HASH"]
    assert lv.tx_bytes(TX2).hex() == V["TX2_ENC"]
    assert lv.tx_hash(TX2).hex() == V["TX2_HASH"]
    # Flat op dicts give the same bytes as the oneof style.
    flat = {"type": "set_entity", "key": "k3", "value": b"v3",
            "condition": {"version": 7}}
    assert lv.op_bytes(flat).hex() == V["OPS"][5]
    # Changing any hashed field changes the hash.
    assert lv.tx_hash(dict(TX1, sequence=4)).hex() != V["TX1_HASH"]
    assert lv.tx_hash(dict(TX1, timestamp="2026-01-01T00:00:00.123457Z")).hex() != V["TX1_HASH"]


def test_payload_digest():
    assert lv.payload_digest(1, 42, OPS).hex() == V["PAYLOAD_1_42"]
    assert lv.payload_digest({"id": "1"}, 0, OPS).hex() == V["PAYLOAD_1_0"]


def test_merkle_roots_and_paths():
    for n, want in V["MTH"].items():
        assert lv.mth(D_LEAVES[:n]).hex() == want
    assert [p.hex() for p in lv.audit_path(D_LEAVES, 2)] == V["PATH5_2"]
    assert [p.hex() for p in lv.audit_path(D_LEAVES, 4)] == V["PATH5_4"]
    assert lv.tx_merkle_root([TX1]).hex() == V["ROOT_TX1"]
    assert lv.tx_merkle_root([TX1, TX2]).hex() == V["ROOT_TX12"]
    root5 = bytes.fromhex(V["MTH"][5])
    assert lv.verify_audit_path(D_LEAVES[2], 2, 5, V["PATH5_2"], root5)
    assert not lv.verify_audit_path(D_LEAVES[3], 2, 5, V["PATH5_2"], root5)
    assert not lv.verify_audit_path(D_LEAVES[2], 3, 5, V["PATH5_2"], root5)
    assert not lv.verify_audit_path(D_LEAVES[2], 2, 5, V["PATH5_2"][:2], root5)


@pytest.mark.parametrize("n", range(1, 34))
def test_audit_paths_all_indices(n):
    rnd = random.Random(n)
    ds = [rnd.randbytes(32) for _ in range(n)]
    root = lv.mth(ds)
    for m in range(n):
        path = lv.audit_path(ds, m)
        assert lv.verify_audit_path(ds[m], m, n, path, root)
        if path:
            bad = list(path)
            bad[0] = bytes(32)
            assert not lv.verify_audit_path(ds[m], m, n, bad, root)


def test_state_leaves():
    for i, leaf in enumerate(STATE_B):
        key = lv.leaf_key_of(leaf)
        assert key.hex() == V["LEAFKEYS"][i]
        assert lv.locate(key) == V["LOC"][i]
        assert lv.leaf_bytes(leaf).hex() == V["LEAFENC"][i]
    for i in range(4):
        assert lv.slot_hash([STATE_B[i]]).hex() == V["SLOT1"][i]
    assert lv.slot_hash([]) == lv.EMPTY


def test_state_roots():
    roots = lv.bucket_roots(STATE_A)
    for b in range(256):
        assert roots[b].hex() == V["A_BUCKETS"].get(b, V["D"][8])
    assert lv.state_root(STATE_A).hex() == V["STATE_A"]
    # Slot order is bytewise on leaf_key: obj:139 before obj:98, either input order.
    assert lv.slot_hash([STATE_B[4], STATE_B[5]]).hex() == V["SLOT_216_76"]
    assert lv.slot_hash([STATE_B[5], STATE_B[4]]).hex() == V["SLOT_216_76"]
    assert lv.bucket_roots(STATE_B)[216].hex() == V["B_B216"]
    assert lv.state_root(STATE_B).hex() == V["STATE_B"]
    assert lv.state_root(list(reversed(STATE_B))).hex() == V["STATE_B"]


def test_verified_read():
    roots = lv.bucket_roots(STATE_B)
    others = roots[:216] + roots[217:]
    key = lv.entity_leaf_key("obj:98")
    leaf, other = STATE_B[4], STATE_B[5]
    root = V["STATE_B"]
    assert lv.verify_verified_read(key, leaf, [other], V["SIB"], others, root,
                                   value=b"ninety-eight")
    assert not lv.verify_verified_read(key, leaf, [other], V["SIB"], others, root,
                                       value=b"ninety-nine")
    tampered = dict(leaf, version=3)
    assert not lv.verify_verified_read(key, tampered, [other], V["SIB"], others, root)
    assert not lv.verify_verified_read(key, leaf, [], V["SIB"], others, root)
    bad_sib = list(V["SIB"])
    bad_sib[6] = V["D"][6]
    assert not lv.verify_verified_read(key, leaf, [other], bad_sib, others, root)
    # Absence: "obj:98" missing from a state that only has obj:139 in the slot.
    without = [l for l in STATE_B if l is not leaf]
    roots2 = lv.bucket_roots(without)
    assert lv.verify_verified_read(key, None, [other], V["SIB"], roots2[:216] + roots2[217:],
                                   lv.state_root(without))
    assert not lv.verify_verified_read(key, None, [other], V["SIB"], others, root)


def test_block_hashes():
    g = _genesis()
    assert lv.block_hash(g).hex() == V["GEN_HASH"]
    b1 = _block1()
    assert lv.block_header_bytes(b1)[120:132].hex() == "000000006955b900075bca00"
    assert lv.block_hash(b1).hex() == V["B1_HASH"]
    assert lv.verify_chain([g, b1]).hex() == V["B1_HASH"]
    with pytest.raises(ValueError):
        lv.verify_chain([g, dict(b1, previous_hash=bytes(32))])
    assert lv.block_hash(dict(b1, committed_index=8)).hex() != V["B1_HASH"]
