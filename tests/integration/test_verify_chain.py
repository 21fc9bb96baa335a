"""Independent verification of a real chain (issue 3), using ONLY
ledger_verify.py (written from docs/hashing.md, hashlib only) and API
responses.

One server is started for the module and given a varied history on a vault
chain and on the organization chain (entities of many sizes, binary values and
UTF-8 keys, TTLs, every condition kind, deletes, relationships created and
deleted, BatchWrite with several groups, failed conditions, idempotent
retries, client and ForceGc expiry, concurrent writers so that blocks hold
several transactions). Responses are taken with grpcio and turned into JSON
with proto field names (the shape ledger_verify documents); one GetBlockRange
is also fetched through tests/tools/grpcurl (lowerCamelCase) and must verify
identically. Then:

* every block from genesis to the tip (GetBlockRange, paged) is re-hashed
  (148-byte header), every tx hash and RFC 6962 tx_merkle_root recomputed,
  every previous_hash link followed, GetTip compared with the last header;
* the tip's state root is recomputed from ListEntities(include_expired) +
  ListRelationships;
* VerifiedRead proofs (present and absent keys, shared slots) and every
  tx_proof (Write include_tx_proof) are checked against the headers' roots;
* determinism: the stored transactions are replayed from genesis into a
  scratch state machine (ledger_verify.ChainState) and every rebuilt header
  must be byte-identical to the stored one;
* tampering with any hashed field makes the verification fail.
"""

import base64
import copy
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import threading
import time

import grpc
import pytest
from google.protobuf import json_format

import conftest
import ledger_verify as lv
from ledger_api import messages

METHODS = {
    "CreateOrganization": "AdminService",
    "CreateVault": "AdminService",
    "ForceGc": "AdminService",
    "Write": "WriteService",
    "BatchWrite": "WriteService",
    "GetTip": "ReadService",
    "GetBlockRange": "ReadService",
    "ListEntities": "ReadService",
    "ListRelationships": "ReadService",
    "VerifiedRead": "ReadService",
    "GetClientState": "ReadService",
}


class Api:
    """grpcio client; requests and responses are proto-name JSON dicts."""

    def __init__(self, addr):
        self.channel = grpc.insecure_channel(addr)
        m = messages()
        self._stubs = {}
        for meth, svc in METHODS.items():
            req, resp = getattr(m, meth + "Request"), getattr(m, meth + "Response")
            stub = self.channel.unary_unary(
                "/ledger.v1.%s/%s" % (svc, meth),
                request_serializer=lambda msg: msg.SerializeToString(),
                response_deserializer=resp.FromString)
            self._stubs[meth] = (req, stub)

    def __call__(self, meth, body=None):
        req, stub = self._stubs[meth]
        msg = json_format.ParseDict(body or {}, req())
        return json_format.MessageToDict(stub(msg, timeout=30),
                                         preserving_proto_field_name=True)

    def close(self):
        self.channel.close()


def b64(b):
    return base64.b64encode(b if isinstance(b, bytes) else b.encode()).decode()


def chain(org, vault):
    c = {"organization_slug": {"id": org}}
    if vault is not None:
        c["vault"] = {"slug": vault}
    return c


def set_op(key, value, **kw):
    op = {"key": key, "value": b64(value)}
    op.update(kw)
    return {"set_entity": op}


def rel(kind, resource, relation, subject):
    return {kind: {"resource": resource, "relation": relation, "subject": subject}}


def same_bucket_keys(prefix, count, bucket=0x42):
    """count entity keys that all fall in one bucket (mostly distinct slots)."""
    out, i = [], 0
    while len(out) < count:
        k = "%s%d" % (prefix, i)
        if slot_of(k)[0] == bucket:
            out.append(k)
        i += 1
    return out


def slot_of(key):
    return lv.locate(lv.entity_leaf_key(key))


def colliding_keys(prefix, count=3):
    """count entity keys sharing one (bucket, slot), found by birthday search."""
    seen = {}
    i = 0
    while True:
        k = "%s%d" % (prefix, i)
        group = seen.setdefault(slot_of(k), [])
        group.append(k)
        if len(group) == count:
            return group
        i += 1


# ------------------------------------------------------------------ history

class History:
    """Drives writes on one chain and records what the checks need."""

    def __init__(self, api, org, vault, client):
        self.api, self.org, self.vault, self.client = api, org, vault, client
        self.c = chain(org, vault)
        self.proofs = []        # (tx_id, block_height, header, tx_proof)
        self.failed_markers = []
        self.batch_tx_ids = []
        self.seq = 0

    def tip(self):
        return int(self.api("GetTip", self.c)["height"])

    def write(self, ops, client=None, idem=None, proof=True, expect_error=None):
        body = dict(self.c, client_id={"id": client or self.client}, operations=ops,
                    include_tx_proof=proof)
        if idem is not None:
            body["idempotency_key"] = b64(idem)
        return self._done(self.api("Write", body), expect_error)

    def batch(self, groups, idem=None, expect_error=None):
        body = dict(self.c, client_id={"id": self.client},
                    groups=[{"operations": g} for g in groups], include_tx_proof=True)
        if idem is not None:
            body["idempotency_key"] = b64(idem)
        res = self._done(self.api("BatchWrite", body), expect_error)
        if expect_error is None:
            self.batch_tx_ids.append((res["tx_id"]["id"], [op for g in groups for op in g]))
        return res

    def _done(self, res, expect_error):
        if expect_error is not None:
            assert "error" in res, res
            assert res["error"]["code"] == "WRITE_ERROR_CODE_" + expect_error, res
            return res["error"]
        assert "success" in res, res
        s = res["success"]
        if "tx_proof" in s:
            self.proofs.append((s["tx_id"]["id"], int(s["block_height"]), s["block_header"],
                                s["tx_proof"]))
        return s

    def fail(self, ops, code, marker):
        """A write whose condition fails: an error, no block, marker nowhere."""
        before = self.tip()
        err = self.write(ops, expect_error=code)
        assert self.tip() == before
        self.failed_markers.append(marker)
        return err


def build_history(api, h, now, rnd, collide):
    """A varied history on h's chain (see the module docstring)."""
    # Values of many sizes, binary values, UTF-8 and odd keys.
    sizes = [0, 1, 31, 32, 33, 100, 1000, 4096, 65536, 300000]
    s = h.write([set_op("size:%d" % n, rnd.randbytes(n)) for n in sizes])
    assert s["outcomes"] == ["OPERATION_OUTCOME_CREATED"] * len(sizes)
    h.write([set_op("ключ:ü✓/ space", "unicode"), set_op("bin", b"\x00\xff\xfe\x80"),
             set_op("json", '{"name":"a"}')])
    # Keys sharing a slot (exercises slot ordering and proofs with neighbours).
    h.write([set_op(collide[0], "c0"), set_op(collide[1], "c1")])
    # TTLs: already expired, expiring far in the future, reset before GC.
    h.write([set_op("ttl:past", "p", expires_at=str(now - 60)),
             set_op("ttl:past2", "p2", expires_at=str(now - 50)),
             set_op("ttl:future", "f", expires_at=str(now + 86400)),
             set_op("ttl:reset", "r", expires_at=str(now - 40)),
             set_op("ttl:client", "x", expires_at=str(now - 30)),
             set_op("ttl:cond", "c", expires_at=str(now - 20))])
    h.write([set_op("ttl:reset", "r2")])  # no TTL any more: GC must leave it
    s = h.write([{"expire_entity": {"key": "ttl:client", "expired_at": str(now - 30)}},
                 {"expire_entity": {"key": "ttl:future", "expired_at": str(now + 1)}},
                 {"expire_entity": {"key": "json", "expired_at": "0"}}])
    assert s["outcomes"] == ["OPERATION_OUTCOME_DELETED", "OPERATION_OUTCOME_NOT_FOUND",
                             "OPERATION_OUTCOME_NOT_FOUND"]
    # Conditions that hold.
    s = h.write([set_op("cond:a", "1", condition={"not_exists": True})])
    ver = s["block_height"]
    h.write([set_op("cond:a", "2", condition={"must_exist": True})])
    h.write([set_op("cond:a", "3", condition={"version": str(h.tip())})])  # tip = its version
    h.write([set_op("cond:a", "4", condition={"value_equals": b64("3")})])
    # An expired entity counts as absent: not_exists holds although the leaf is there.
    h.write([set_op("ttl:cond", "again", condition={"not_exists": True})])
    # Conditions that fail: not in any block.
    h.fail([set_op("cond:a", "FAILED-1", condition={"not_exists": True})], "KEY_EXISTS",
           "FAILED-1")
    h.fail([set_op("cond:none", "FAILED-2", condition={"must_exist": True})], "KEY_NOT_FOUND",
           "FAILED-2")
    e = h.fail([set_op("cond:a", "FAILED-3", condition={"version": ver})], "VERSION_MISMATCH",
               "FAILED-3")
    assert e["key"] == "cond:a"
    h.fail([set_op("json", "FAILED-4", condition={"value_equals": b64("nope")})],
           "VALUE_MISMATCH", "FAILED-4")
    h.fail([set_op("ok:first", "v"), set_op("ttl:past", "FAILED-5",
                                            condition={"must_exist": True})],
           "KEY_NOT_FOUND", "FAILED-5")
    # Deletes: existing, missing (no-op, still a block), expired leaf.
    s = h.write([{"delete_entity": {"key": "size:1"}}, {"delete_entity": {"key": "never"}},
                 {"delete_entity": {"key": "ttl:past2"}}])
    assert s["outcomes"] == ["OPERATION_OUTCOME_DELETED", "OPERATION_OUTCOME_NOT_FOUND",
                             "OPERATION_OUTCOME_DELETED"]
    # Relationships: create, duplicate, delete, delete missing, re-create.
    h.write([rel("create_relationship", "doc:1", "viewer", "user:a"),
             rel("create_relationship", "doc:1", "editor", "group:eng#member"),
             rel("create_relationship", "dossier:ü", "viewer", "user:b"),
             rel("create_relationship", "doc:2", "owner", "user:a")])
    s = h.write([rel("create_relationship", "doc:1", "viewer", "user:a"),
                 rel("delete_relationship", "doc:2", "owner", "user:a"),
                 rel("delete_relationship", "doc:9", "owner", "user:z")])
    assert s["outcomes"] == ["OPERATION_OUTCOME_ALREADY_EXISTS", "OPERATION_OUTCOME_DELETED",
                             "OPERATION_OUTCOME_NOT_FOUND"]
    h.write([rel("create_relationship", "doc:2", "owner", "user:a")])
    # Several changes of one key inside one transaction.
    h.write([set_op("multi", "1"), set_op("multi", "2"), {"delete_entity": {"key": "multi"}},
             set_op("multi", "3")])
    # BatchWrite with several groups (one transaction).
    s = h.batch([[set_op("batch:a", "a"), rel("create_relationship", "doc:3", "viewer", "user:c")],
                 [set_op("batch:b", rnd.randbytes(2000)), {"delete_entity": {"key": "batch:a"}}],
                 [set_op("batch:c", "c", condition={"not_exists": True}),
                  rel("delete_relationship", "doc:1", "editor", "group:eng#member")]])
    assert len(s["outcomes"]) == 6
    # Idempotent retries.
    k1 = bytes(range(16))
    first = h.write([set_op("idem", "once")], idem=k1)
    before = h.tip()
    again = h.write([set_op("idem", "once")], idem=k1, expect_error="ALREADY_COMMITTED")
    assert again["committed_tx_id"] == first["tx_id"]
    assert again["committed_block_height"] == first["block_height"]
    assert again["assigned_sequence"] == first["assigned_sequence"]
    h.write([set_op("idem", "FAILED-6")], idem=k1, expect_error="IDEMPOTENCY_KEY_REUSED")
    h.failed_markers.append("FAILED-6")
    k2 = bytes(range(16, 32))
    b1 = h.batch([[set_op("idem:b", "1")], [set_op("idem:c", "2")]], idem=k2)
    h.batch([[set_op("idem:b", "1")], [set_op("idem:c", "2")]], idem=k2,
            expect_error="ALREADY_COMMITTED")
    assert h.tip() == before + 1 == int(b1["block_height"])
    # Edge encodings: empty value_equals, the largest expires_at.
    h.write([set_op("empty", "")])
    h.write([set_op("empty", "now set", condition={"value_equals": ""}),
             set_op("ttl:max", "m", expires_at="18446744073709551615")])
    # Many dirty slots of one bucket in one block (> 24), then half removed.
    crowd = same_bucket_keys("crowd:", 40)
    h.write([set_op(k, k) for k in crowd])
    h.write([{"delete_entity": {"key": k}} for k in crowd[::2]] + [set_op(crowd[1], "again")])
    # The largest transaction: 1000 operations.
    h.write([set_op("big:%d" % i, str(i)) for i in range(999)]
            + [rel("create_relationship", "doc:big", "viewer", "user:big")])
    # A key sharing a slot with a present key but absent itself (absence proof).
    h.write([set_op(collide[2], "c2")])
    h.write([{"delete_entity": {"key": collide[2]}}])


def concurrent_writes(api, hs, prefix, threads=12, min_rounds=3, max_rounds=10):
    """At least min_rounds rounds of simultaneous writers, more until some
    block of every chain in hs holds >= 3 transactions (at most max_rounds).
    Writer i writes to hs[i % len(hs)], so one Raft entry can carry
    transactions of several chains."""
    clients = ["%s-w%d" % (prefix, i) for i in range(threads)]
    seen_multi = set()
    for rnd_no in range(max_rounds):
        barrier = threading.Barrier(threads)
        results, errors = [None] * threads, []

        def worker(i):
            try:
                barrier.wait(10)
                ops = [set_op("%s:%d:%d" % (prefix, rnd_no, i), os.urandom(8 + i)),
                       rel("create_relationship", "team:%d" % rnd_no, "member",
                           "user:%d" % i)]
                if i % 3 == 0:
                    ops.append({"delete_entity": {"key": "%s:%d:%d" % (prefix, rnd_no - 1, i)}})
                results[i] = hs[i % len(hs)].write(ops, client=clients[i])
            except Exception as e:  # reported below, with the thread's index
                errors.append((i, e))

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        assert not errors, errors
        for j in range(len(hs)):
            heights = [int(r["block_height"]) for i, r in enumerate(results)
                       if i % len(hs) == j]
            if max(heights.count(x) for x in set(heights)) >= 3:
                seen_multi.add(j)
        if len(seen_multi) == len(hs) and rnd_no + 1 >= min_rounds:
            return rnd_no + 1
    pytest.fail("no block with >= 3 transactions on every chain after %d rounds of %d "
                "writers" % (max_rounds, threads))


# ------------------------------------------------------------------ fetch

def walk_blocks(api, c, page=1000):
    """GetBlockRange from 0 to the tip, `page` heights per request; each page
    is verified and linked to the previous page's last block."""
    blocks, start, previous = [], 0, None
    while True:
        end = start + page - 1
        res = api("GetBlockRange", dict(c, start_height=str(start), end_height=str(end)))
        got = res.get("blocks", [])
        assert 0 < len(got) <= min(page, 1000)
        verified = lv.verify_blocks(got, c["organization_slug"]["id"],
                                    c.get("vault", {}).get("slug", 0), previous)
        assert [v[0] for v in verified] == list(range(start, start + len(got)))
        blocks += got
        previous = verified[-1][:2]
        tip = int(res["current_tip"])
        if previous[0] >= tip:
            assert previous[0] == tip
            return blocks
        start = previous[0] + 1


def list_all(api, meth, c, field, **kw):
    items, token, heights = [], "", set()
    while True:
        res = api(meth, dict(c, limit=7, page_token=token, **kw))
        items += res.get(field, [])
        heights.add(int(res.get("block_height", 0)))
        token = res.get("next_page_token", "")
        if not token:
            break
    assert len(heights) == 1, heights  # one snapshot for the whole token chain
    return items, heights.pop()


def snapshot(api, h):
    """Everything the checks need from one chain, fetched after the writes."""
    c = h.c
    blocks = walk_blocks(api, c)
    assert walk_blocks(api, c, page=7) == blocks  # paging gives the same chain
    tip = api("GetTip", c)
    entities, eh = list_all(api, "ListEntities", c, "entities", include_expired=True)
    rels, rh = list_all(api, "ListRelationships", c, "relationships")
    return {"c": c, "blocks": blocks, "tip": tip, "entities": entities, "rels": rels,
            "list_heights": (eh, rh)}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    node = conftest.LedgerNode(tmp_path_factory.mktemp("verify"), name="verify")
    node.start()
    api = Api(node.addr)
    try:
        t0 = time.monotonic()
        rnd = random.Random(3)
        now = int(time.time())
        org = api("CreateOrganization", {"name": "verify"})["slug"]["id"]
        vault = api("CreateVault", {"organization_slug": {"id": org}, "name": "v"})["vault"]["slug"]
        hv = History(api, org, vault, "app-v")
        ho = History(api, org, None, "app-o")
        build_history(api, hv, now, rnd, colliding_keys("vslot:"))
        build_history(api, ho, now, rnd, colliding_keys("oslot:"))
        rounds_v = concurrent_writes(api, [hv], "cv")
        rounds_o = concurrent_writes(api, [ho], "co")
        # Restart: the persisted commitment tree must continue the same chain.
        api.close()
        node.restart()
        api = hv.api = ho.api = Api(node.addr)
        rounds_mixed = concurrent_writes(api, [hv, ho], "cm", threads=16)
        hv.write([{"delete_entity": {"key": k}} for k in same_bucket_keys("crowd:", 40)[1::4]])
        gc = api("ForceGc", {})
        # vault and org chain: ttl:past, ttl:cond's first value is overwritten
        # (and "again" has no TTL), ttl:past2/ttl:client are already gone.
        assert int(gc["expired_count"]) == 2, gc
        # An expired leaf that stays in the state (GC has run): listed with
        # include_expired, part of the state root, provable by VerifiedRead.
        hv.write([set_op("after-gc", "1"), {"delete_entity": {"key": "ttl:past"}},
                  set_op("ttl:late", "l", expires_at=str(now - 5))])
        ho.write([set_op("after-gc", "1"), set_op("ttl:late", "l", expires_at=str(now - 5))])
        data = {
            "vault": snapshot(api, hv), "org": snapshot(api, ho), "hv": hv, "ho": ho,
            "rounds": (rounds_v, rounds_o, rounds_mixed), "api": api, "node": node,
            "build_seconds": time.monotonic() - t0,
        }
        yield data
    finally:
        api.close()
        node.stop()


CHAINS = ["vault", "org"]


# ------------------------------------------------------------------ checks

def tx_index(blocks):
    """tx_id (base64) -> (height, index in block, tx dict)."""
    out = {}
    for b in blocks:
        height = int(b["header"].get("height", 0))
        for i, tx in enumerate(b.get("transactions", [])):
            out[tx["tx_id"]["id"]] = (height, i, tx)
    return out


def leaf_from_listing(entities, rels):
    return ([{"key": e["key"], "value": e.get("value", ""),
              "expires_at": e.get("expires_at", "0"), "version": e.get("version", "0")}
             for e in entities] +
            [{"resource": r["resource"], "relation": r["relation"], "subject": r["subject"],
              "version": r.get("version", "0")} for r in rels])


@pytest.mark.parametrize("which", CHAINS)
def test_chain_blocks_and_tip(world, which):
    snap, hist = world[which], world["hv" if which == "vault" else "ho"]
    blocks, tip = snap["blocks"], snap["tip"]
    verified = lv.verify_blocks(blocks, hist.org, hist.vault or 0)
    assert len(verified) == int(tip["height"]) + 1
    last_h, last_hash, last_hdr = verified[-1]
    assert lv._hash(tip["block_hash"]) == last_hash
    assert lv._hash(tip["state_root"]) == lv._hash(last_hdr["state_root"])
    assert tip["timestamp"] == last_hdr["timestamp"]
    # Raft inputs of successive blocks: one entry per block, in log order.
    idx = [int(b["header"]["committed_index"]) for b in blocks]
    assert idx == sorted(set(idx))
    # The history is as varied as intended.
    txs = [tx for b in blocks for tx in b.get("transactions", [])]
    per_block = [len(b.get("transactions", [])) for b in blocks]
    assert max(per_block) >= 3
    kinds = {lv._op_parts(op)[0] for tx in txs for op in tx["operations"]}
    assert kinds == {"create_relationship", "delete_relationship", "set_entity",
                     "delete_entity", "expire_entity"}
    conds = {next(iter(op["set_entity"]["condition"])) for tx in txs for op in tx["operations"]
             if "set_entity" in op and "condition" in op["set_entity"]}
    assert conds == {"not_exists", "must_exist", "version", "value_equals"}
    gc = [tx for tx in txs if tx["actor"] == "system:gc"]
    assert len(gc) == 1 and len(gc[0]["operations"]) == 1
    by_id = tx_index(blocks)
    for tid, ops in hist.batch_tx_ids:  # one tx: the groups' ops concatenated
        assert lv.ops_bytes(by_id[tid][2]["operations"]) == lv.ops_bytes(ops)
    # Failed / duplicate transactions are in no block.
    text = repr(txs)
    for marker in hist.failed_markers:
        assert b64(marker) not in text and marker not in text
    # Sequences per client: 1, 2, 3, ... in block order; GetClientState agrees.
    seqs = {}
    for tx in txs:
        if tx["actor"] != "system:gc":
            seqs.setdefault(tx["client_id"]["id"], []).append(int(tx["sequence"]))
    for client, got in seqs.items():
        assert got == list(range(1, len(got) + 1)), client
    st = world["api"]("GetClientState", dict(snap["c"], client_id={"id": hist.client}))
    assert int(st["last_committed_sequence"]) == len(seqs[hist.client])


@pytest.mark.parametrize("which", CHAINS)
def test_grpcurl_json_verifies_the_same(world, which, tmp_path):
    """The lowerCamelCase JSON of grpcurl verifies to the same hashes."""
    snap = world[which]
    res = world["node"].call("ledger.v1.ReadService/GetBlockRange",
                             dict(snap["c"], start_height="0", end_height="999"))
    assert "txMerkleRoot" in res["blocks"][0]["header"]
    assert lv.normalize(res["blocks"]) == snap["blocks"]
    mine = [v[:2] for v in lv.verify_blocks(res["blocks"])]
    assert mine == [v[:2] for v in lv.verify_blocks(snap["blocks"])]
    # The command line verifier on the same grpcurl output, then tampered.
    path = tmp_path / "blocks.json"
    path.write_text(json.dumps(res))
    cli = [sys.executable, os.path.join(os.path.dirname(__file__), "ledger_verify.py"), str(path)]
    r = subprocess.run(cli, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("ok: %d blocks" % len(mine)), r
    res["blocks"][3]["transactions"][0]["actor"] += "x"
    path.write_text(json.dumps(res))
    r = subprocess.run(cli, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "height 3" in r.stdout, r


@pytest.mark.parametrize("which", CHAINS)
def test_tip_state_root_from_listings(world, which):
    snap = world[which]
    tip_height = int(snap["tip"]["height"])
    assert snap["list_heights"] == (tip_height, tip_height)
    leaves = leaf_from_listing(snap["entities"], snap["rels"])
    assert lv.state_root(leaves) == lv._hash(snap["tip"]["state_root"])
    # GC removed ttl:past; ttl:reset lost its TTL before GC; ttl:late expired
    # after GC and stays (include_expired lists it, the root includes it).
    keys = {e["key"]: e for e in snap["entities"]}
    assert "ttl:past" not in keys and "ttl:reset" in keys and "ttl:future" in keys
    assert 0 < int(keys["ttl:late"]["expires_at"]) < time.time()


def _trusted(snap, height):
    b = snap["blocks"][height]
    return height, lv.block_hash(b["header"])


@pytest.mark.parametrize("which", CHAINS)
def test_verified_read_proofs(world, which):
    snap, api = world[which], world["api"]
    prefix = "vslot:" if which == "vault" else "oslot:"
    collide = colliding_keys(prefix)
    tip = int(snap["tip"]["height"])
    present = ["size:0", "size:300000", "ключ:ü✓/ space", "bin", "ttl:future", "ttl:late",
               "cond:a",
               collide[0], collide[1], "after-gc"]
    absent = ["size:1", "never-written", "ttl:past", "multi-x", collide[2], "batch:a"]
    state = {lv.leaf_key_of(l): l for l in leaf_from_listing(snap["entities"], snap["rels"])}
    neighbours = 0
    for i, key in enumerate(present + absent):
        trusted_h = (i * 7) % (tip + 1)
        r = api("VerifiedRead", dict(snap["c"], key=key, trusted_height=str(trusted_h)))
        assert int(r["block_header"]["height"]) == tip  # nothing written since
        lv.verify_verified_read_response(key, r, _trusted(snap, trusted_h))
        lk = lv.entity_leaf_key(key)
        assert r.get("found", False) == (key in present) == (lk in state)
        if key in present:
            assert lv.leaf_bytes(r["leaf"]) == lv.leaf_bytes(state[lk])
        neighbours += len(r.get("slot_leaves", []))
    assert neighbours >= 4  # the colliding keys' proofs carry their slot neighbours


@pytest.mark.parametrize("which", CHAINS)
def test_tx_proofs(world, which):
    snap, hist = world[which], world["hv" if which == "vault" else "ho"]
    hashes = {h: d for h, d, _ in lv.verify_blocks(snap["blocks"])}
    by_id = tx_index(snap["blocks"])
    sizes = set()
    for tid, height, header, proof in hist.proofs:
        assert int(header["height"]) == height
        assert lv.block_hash(header) == hashes[height]  # the header is in the chain
        h2, i, tx = by_id[tid]
        assert h2 == height
        assert int(proof.get("leaf_index", 0)) == i
        n = len(snap["blocks"][height]["transactions"])
        assert int(proof["tree_size"]) == n
        lv.verify_tx_proof(tx, proof, header, tree_size=n)
        sizes.add(n)
    assert len(hist.proofs) >= 50 and max(sizes) >= 3


@pytest.mark.parametrize("which", CHAINS)
def test_replay_gives_identical_headers(world, which):
    """SPEC §5 determinism: replaying the stored transactions from genesis in a
    scratch state machine rebuilds every header byte for byte."""
    snap = world[which]
    state = lv.ChainState()
    count = 0
    for height, rebuilt, stored in lv.replay_headers(snap["blocks"], state):
        want = lv.block_header_bytes(stored)
        assert rebuilt[88:120].hex() == want[88:120].hex(), "state_root at height %d" % height
        assert rebuilt == want, "header at height %d" % height
        assert hashlib.sha256(rebuilt).digest() == lv._hash(stored["block_hash"])
        count += 1
    assert count == len(snap["blocks"])
    # The replayed final state is exactly the listed state.
    listed = leaf_from_listing(snap["entities"], snap["rels"])
    assert sorted(lv.leaf_bytes(l) for l in listed) == \
        sorted(lv.leaf_bytes(l) for l in state.leaf_dicts())


def test_entries_shared_between_chains(world):
    """Some Raft entry produced a block on both chains (one per chain), with
    the same timestamp and term in both headers."""
    def by_index(snap):
        return {int(b["header"]["committed_index"]): b["header"] for b in snap["blocks"]}
    v, o = by_index(world["vault"]), by_index(world["org"])
    shared = set(v) & set(o)
    assert shared
    for i in shared:
        assert (v[i]["timestamp"], v[i]["term"]) == (o[i]["timestamp"], o[i]["term"])


def test_history_and_runtime_report(world):
    """Counts for the report; the whole module must stay fast."""
    for which in CHAINS:
        snap = world[which]
        txs = sum(len(b.get("transactions", [])) for b in snap["blocks"])
        print("%s chain: %d blocks, %d txs, %d entity + %d relationship leaves" % (
            which, len(snap["blocks"]), txs, len(snap["entities"]), len(snap["rels"])))
    print("concurrent rounds:", world["rounds"], "build %.1fs" % world["build_seconds"])
    assert world["build_seconds"] < 12


# ------------------------------------------------------------------ tampering

_B64_NAMES = {"value", "leaf_key", "value_equals"}
_TS = re.compile(r"^(.*\.)(\d+)Z$")


def _scalar_paths(doc, path=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _scalar_paths(v, path + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _scalar_paths(v, path + (i,))
    else:
        yield path


def _mutated(value, path):
    name = path[-1]
    parent = path[-2] if len(path) > 1 else None
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if name in _B64_NAMES or (parent == "tx_id" and name == "id"):
        raw = bytearray(base64.b64decode(value))
        if not raw:
            return b64(b"\x00")
        raw[len(raw) // 2] ^= 0x01
        return b64(bytes(raw))
    if name == "timestamp":
        m = _TS.match(value)
        if m:  # one more microsecond, still a multiple of 1000 ns
            digits = m.group(2).ljust(6, "0")
            return "%s%06dZ" % (m.group(1), (int(digits[:6]) + 1) % 1000000)
        return value[:-1] + ".000001Z"
    if re.fullmatch(r"\d+", value):
        return str(int(value) + 1)
    return value[:-1] + chr(ord(value[-1]) ^ 0x01) if value else "x"


def _set(doc, path, value):
    for p in path[:-1]:
        doc = doc[p]
    doc[path[-1]] = value


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


def _tamper_each(doc, check, skip=()):
    """Flip every scalar field of doc in turn; check(copy) must raise."""
    n = 0
    for path in list(_scalar_paths(doc)):
        if any(s in path for s in skip):
            continue
        bad = copy.deepcopy(doc)
        _set(bad, path, _mutated(_get(doc, path), path))
        with pytest.raises(ValueError):
            check(bad)
            raise AssertionError("tampering %r went unnoticed" % (path,))
        n += 1
    return n


def _strip_block_hash(b):
    b = copy.deepcopy(b)
    b["header"].pop("block_hash", None)
    return b


def test_tamper_blocks(world):
    """Flip each field of varied blocks (genesis, gc, batch, multi-tx, every op
    kind, the tip): verification of the chain around it fails."""
    snap, hist = world["vault"], world["hv"]
    blocks, tip_hash = snap["blocks"], lv._hash(snap["tip"]["block_hash"])
    by_id = tx_index(blocks)
    picks = {0, len(blocks) - 1, by_id[hist.batch_tx_ids[0][0]][0]}
    picks.add(max(range(len(blocks)), key=lambda i: len(blocks[i].get("transactions", []))))
    for i, b in enumerate(blocks):
        for tx in b.get("transactions", []):
            if tx["actor"] == "system:gc" or any("condition" in op.get("set_entity", {})
                                                 or "delete_relationship" in op
                                                 or "expire_entity" in op
                                                 for op in tx["operations"]):
                picks.add(i)
    total = 0
    for i in sorted(picks):
        window = [_strip_block_hash(b) for b in blocks[i:i + 2]]
        prev = None if i == 0 else (i - 1, lv.block_hash(blocks[i - 1]["header"]))

        def check(w, prev=prev, i=i):
            got = lv.verify_blocks(w, hist.org, hist.vault, prev)
            if i + len(w) == len(blocks) and got[-1][1] != tip_hash:
                raise lv.VerificationError("last block is not GetTip's")

        check(window)  # untampered: fine
        total += _tamper_each(window[0], lambda bad: check([bad] + window[1:]),
                              skip=("leader_id",))
    # The convenience block_hash field is checked too.
    bad = copy.deepcopy(blocks)
    _set(bad, (5, "header", "block_hash", "value"),
         _mutated(_get(bad, (5, "header", "block_hash", "value")), ("value",)))
    with pytest.raises(lv.VerificationError):
        lv.verify_blocks(bad)
    # Dropping, reordering or inserting a transaction breaks the Merkle root.
    big = max(range(len(blocks)), key=lambda i: len(blocks[i].get("transactions", [])))
    for change in (lambda t: t[1:], lambda t: t[::-1], lambda t: t + t[:1]):
        bad = copy.deepcopy(blocks[big])
        bad["transactions"] = change(bad["transactions"])
        with pytest.raises(lv.VerificationError):
            lv.verify_blocks([bad], previous=(big - 1, lv.block_hash(blocks[big - 1]["header"])))
    # Adding a hashed field that was absent (default) also changes hashes.
    gen = [tx for tx in by_id.values() if tx[2]["actor"] == "system:gc"][0]
    bad = copy.deepcopy(blocks[gen[0]])
    bad["transactions"][0]["sequence"] = "1"
    with pytest.raises(lv.VerificationError):
        lv.verify_blocks([bad], previous=(gen[0] - 1, lv.block_hash(blocks[gen[0] - 1]["header"])))
    print("block tampering: %d fields flipped in %d blocks, all caught" % (total, len(picks)))
    assert total >= 200, total


def test_tamper_state_listing(world):
    snap = world["vault"]
    root = lv._hash(snap["tip"]["state_root"])
    ents, rels = snap["entities"], snap["rels"]

    def check(e, r):
        if lv.state_root(leaf_from_listing(e, r)) != root:
            raise lv.VerificationError("state root mismatch")

    check(ents, rels)
    pick = [e for e in ents if e["key"] in ("size:300000", "ttl:future", "cond:a", "bin",
                                            "size:0")]
    total = 0
    for e in pick:
        i = ents.index(e)
        total += _tamper_each(e, lambda bad, i=i: check(ents[:i] + [bad] + ents[i + 1:], rels))
        if "expires_at" not in e:  # a default field given a value
            with pytest.raises(lv.VerificationError):
                check(ents[:i] + [dict(e, expires_at="1")] + ents[i + 1:], rels)
    for i, r in enumerate(rels[:3]):
        total += _tamper_each(r, lambda bad, i=i: check(ents, rels[:i] + [bad] + rels[i + 1:]))
    for drop in (lambda: check(ents[1:], rels), lambda: check(ents, rels[1:]),
                 lambda: check(ents + [{"key": "extra", "value": "", "version": "1"}], rels)):
        with pytest.raises(lv.VerificationError):
            drop()
    print("state listing tampering: %d fields flipped, all caught" % total)
    assert total >= 20


def test_tamper_verified_read_and_tx_proof(world):
    snap, hist, api = world["vault"], world["hv"], world["api"]
    collide = colliding_keys("vslot:")
    tip = int(snap["tip"]["height"])
    total = 0
    for key, trusted_h in ((collide[0], 3), (collide[2], tip - 4), ("size:4096", tip)):
        r = api("VerifiedRead", dict(snap["c"], key=key, trusted_height=str(trusted_h)))
        trusted = _trusted(snap, trusted_h)
        lv.verify_verified_read_response(key, r, trusted)
        total += _tamper_each(
            r, lambda bad: lv.verify_verified_read_response(key, bad, trusted),
            skip=("leader_id",))
        with pytest.raises(lv.VerificationError):  # proof of another key
            lv.verify_verified_read_response(key + "x", r, trusted)
        if r.get("slot_leaves"):
            bad = copy.deepcopy(r)
            bad["slot_leaves"].pop()
            with pytest.raises(lv.VerificationError):
                lv.verify_verified_read_response(key, bad, trusted)
    by_id = tx_index(snap["blocks"])
    multi = [p for p in hist.proofs if int(p[3]["tree_size"]) >= 3]
    for tid, height, header, proof in multi[:3]:
        tx = by_id[tid][2]
        n = len(snap["blocks"][height]["transactions"])
        lv.verify_tx_proof(tx, proof, header, n)
        total += _tamper_each(proof, lambda bad: lv.verify_tx_proof(tx, bad, header, n))
        total += _tamper_each(tx, lambda bad: lv.verify_tx_proof(bad, proof, header, n))
        bad = copy.deepcopy(header)
        bad["tx_merkle_root"]["value"] = b64(bytes(32))
        with pytest.raises(lv.VerificationError):
            lv.verify_tx_proof(tx, proof, bad)
    print("proof tampering: %d fields flipped, all caught" % total)
    assert total >= 300, total
