"""TTL: reads hide expired entities by the server's clock; ForceGc records
their removal as an expire block by system:gc."""

import time

from ledger_api import chain, set_op, setup_vault, write

R = "ledger.v1.ReadService/"


def test_expired_hidden_then_force_gc(ledger):
    org, vault = setup_vault(ledger)
    expires = int(time.time()) + 2
    write(ledger, org, vault, [set_op("session", "s", expires_at=str(expires)),
                               set_op("keep", "k")])
    assert ledger.call(R + "Read", dict(chain(org, vault), key="session"))["found"] is True
    deadline = time.time() + 15
    while True:  # wait on the condition, not a fixed sleep
        got = ledger.call(R + "Read", dict(chain(org, vault), key="session"))
        if not got.get("found", False):
            break
        assert time.time() < deadline, "entity never expired"
        time.sleep(0.2)
    assert "value" not in got
    listed = ledger.call(R + "ListEntities", chain(org, vault))
    assert [e["key"] for e in listed["entities"]] == ["keep"]
    raw = ledger.call(R + "ListEntities", dict(chain(org, vault), include_expired=True))
    assert [e["key"] for e in raw["entities"]] == ["keep", "session"]
    assert raw["entities"][1]["expiresAt"] == str(expires)

    gc = ledger.call("ledger.v1.AdminService/ForceGc")
    assert gc["expiredCount"] == "1"
    assert int(gc["chainsScanned"]) == 2  # the organization chain and the vault
    tip = ledger.call(R + "GetTip", chain(org, vault))
    assert tip["height"] == "2"
    blk = ledger.call(R + "GetBlock", dict(chain(org, vault), height="2"))["block"]
    tx = blk["transactions"][0]
    assert tx["actor"] == "system:gc" and "clientId" not in tx and "sequence" not in tx
    assert tx["operations"] == [{"expireEntity": {"key": "session",
                                                  "expiredAt": str(expires)}}]
    raw = ledger.call(R + "ListEntities", dict(chain(org, vault), include_expired=True))
    assert [e["key"] for e in raw["entities"]] == ["keep"]
    again = ledger.call("ledger.v1.AdminService/ForceGc",
                        {"organization_slug": {"id": org}, "vault": {"slug": vault}})
    assert again.get("expiredCount", "0") == "0"
