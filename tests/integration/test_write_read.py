"""Write-then-read through the real server: vault and organization chains,
entities and relationships, proofs, history, blocks, paging, persistence."""

import base64
import hashlib

from ledger_api import b64, chain, err, set_op, setup_vault, write

R = "ledger.v1.ReadService/"
W = "ledger.v1.WriteService/"


def test_write_then_read_on_vault_and_org_chain(ledger):
    org, vault = setup_vault(ledger)
    for v in (vault, None):  # the vault chain, then the organization chain
        res = write(ledger, org, v, [
            set_op("user:1", '{"name":"a"}', condition={"not_exists": True}),
            {"create_relationship": {"resource": "doc:1", "relation": "viewer",
                                     "subject": "user:1"}},
        ], proof=True)
        s = res["success"]
        assert s["blockHeight"] == "1"
        assert s["assignedSequence"] == "1"
        assert s["outcomes"] == ["OPERATION_OUTCOME_CREATED", "OPERATION_OUTCOME_CREATED"]
        # tx_proof: one tx, so the root is H(0x00 || tx hash)
        leaf = base64.b64decode(s["txProof"]["leafHash"]["value"])
        root = base64.b64decode(s["blockHeader"]["txMerkleRoot"]["value"])
        assert hashlib.sha256(b"\x00" + leaf).digest() == root

        got = ledger.call(R + "Read", dict(chain(org, v), key="user:1"))
        assert base64.b64decode(got["value"]) == b'{"name":"a"}'
        assert got["found"] is True and got["version"] == "1" and got["blockHeight"] == "1"
        lin = ledger.call(R + "Read", dict(chain(org, v), key="user:1",
                                           consistency="READ_CONSISTENCY_LINEARIZABLE"))
        assert lin["found"] is True
        rels = ledger.call(R + "ListRelationships", dict(chain(org, v), resource="doc:1"))
        assert rels["relationships"] == [{"resource": "doc:1", "relation": "viewer",
                                          "subject": "user:1", "version": "1"}]
        res_list = ledger.call(R + "ListResources", dict(chain(org, v), resource_type="doc"))
        assert res_list["resources"] == ["doc:1"]
        cs = ledger.call(R + "GetClientState", dict(chain(org, v), client_id={"id": "app-1"}))
        assert cs["lastCommittedSequence"] == "1"
        missing = ledger.call(R + "Read", dict(chain(org, v), key="nobody"))
        assert missing.get("found", False) is False and "value" not in missing


def test_batch_write_batch_read_history_blocks(ledger):
    org, vault = setup_vault(ledger)
    tip = ledger.call(R + "GetTip", chain(org, vault))
    assert tip["height"] == "0"  # printed even at genesis
    res = ledger.call(W + "BatchWrite", dict(
        chain(org, vault), client_id={"id": "app-1"},
        groups=[{"operations": [set_op("a", "1")]},
                {"operations": [set_op("b", "2"), {"delete_entity": {"key": "zz"}}]}]))
    assert res["success"]["outcomes"] == ["OPERATION_OUTCOME_CREATED",
                                          "OPERATION_OUTCOME_CREATED",
                                          "OPERATION_OUTCOME_NOT_FOUND"]
    write(ledger, org, vault, [set_op("a", "one")])
    br = ledger.call(R + "BatchRead", dict(chain(org, vault), keys=["a", "b", "c"]))
    assert [r.get("found", False) for r in br["results"]] == [True, True, False]
    assert base64.b64decode(br["results"][0]["value"]) == b"one"
    assert br["blockHeight"] == "2"
    hist = ledger.call(R + "HistoricalRead", dict(chain(org, vault), key="a", at_height="1"))
    assert base64.b64decode(hist["value"]) == b"1"
    assert hist["blockHeader"]["height"] == "1"
    blk = ledger.call(R + "GetBlock", dict(chain(org, vault), height="1"))["block"]
    tx = blk["transactions"][0]
    assert tx["actor"] == "client:app-1" and tx["clientId"] == {"id": "app-1"}
    assert len(tx["operations"]) == 3
    rng = ledger.call(R + "GetBlockRange", dict(chain(org, vault), start_height="0",
                                                end_height="99"))
    assert [b["header"].get("height", "0") for b in rng["blocks"]] == ["0", "1", "2"]
    assert rng["currentTip"] == "2"
    # VerifiedRead: recompute the state root from the proof
    v = ledger.call(R + "VerifiedRead", dict(chain(org, vault), key="a", trusted_height="0"))
    assert v["found"] is True
    assert len(v["bucketRoots"]) == 256 and len(v["bucketSiblings"]) == 8
    assert [h["height"] for h in v["chainProof"]["headers"]] == ["1", "2"]
    leaves = [v["leaf"]] + v.get("slotLeaves", [])

    def enc(l):
        k = base64.b64decode(l["leafKey"])
        return (len(k).to_bytes(4, "little") + k + base64.b64decode(l["valueHash"]["value"])
                + int(l.get("expiresAt", "0")).to_bytes(8, "big")
                + int(l.get("version", "0")).to_bytes(8, "big"))

    leaves.sort(key=lambda l: base64.b64decode(l["leafKey"]))
    h = hashlib.sha256(b"".join(enc(l) for l in leaves)).digest()
    slot = v.get("slotIndex", 0)
    for i, sib in enumerate(v["bucketSiblings"]):
        s = base64.b64decode(sib["value"])
        h = hashlib.sha256(s + h if (slot >> i) & 1 else h + s).digest()
    roots = [base64.b64decode(r["value"]) for r in v["bucketRoots"]]
    assert roots[v.get("bucketIndex", 0)] == h
    state_root = base64.b64decode(v["blockHeader"]["stateRoot"]["value"])
    assert hashlib.sha256(b"".join(roots)).digest() == state_root


def test_restart_keeps_acknowledged_write(ledger):
    org, vault = setup_vault(ledger)
    write(ledger, org, vault, [set_op("durable", "yes")])
    ledger.kill9()  # right after the acknowledgement
    ledger.start()
    got = ledger.call(R + "Read", dict(chain(org, vault), key="durable"))
    assert base64.b64decode(got["value"]) == b"yes"
    assert ledger.call(R + "GetTip", chain(org, vault))["height"] == "1"


def test_paging_and_tampered_token(ledger):
    org, vault = setup_vault(ledger)
    write(ledger, org, vault, [set_op("k%02d" % i, "v") for i in range(25)])
    keys, token, pages = [], "", 0
    while True:
        page = ledger.call(R + "ListEntities", dict(chain(org, vault), key_prefix="k", limit=10,
                                                    page_token=token))
        keys += [e["key"] for e in page["entities"]]
        pages += 1
        token = page.get("nextPageToken", "")
        if not token:
            break
    assert keys == ["k%02d" % i for i in range(25)] and pages == 3
    first = ledger.call(R + "ListEntities", dict(chain(org, vault), key_prefix="k", limit=10))
    tok = first["nextPageToken"]
    bad = tok[:5] + ("A" if tok[5] != "A" else "B") + tok[6:]
    code, msg = err(ledger, R + "ListEntities", dict(chain(org, vault), key_prefix="k",
                                                     limit=10, page_token=bad))
    assert code == "InvalidArgument" and msg.startswith("page_token")
    code, msg = err(ledger, R + "ListEntities", dict(chain(org, vault), key_prefix="x",
                                                     limit=10, page_token=tok))
    assert code == "InvalidArgument" and "different query" in msg
