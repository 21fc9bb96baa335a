"""Every error mapping of SPEC §4/§9 reachable on a single node."""

import json

from ledger_api import b64, chain, err, set_op, setup_vault, write

R = "ledger.v1.ReadService/"
W = "ledger.v1.WriteService/"
A = "ledger.v1.AdminService/"


def body(org, vault, ops, **kw):
    b = dict(chain(org, vault), client_id={"id": "app-1"}, operations=ops)
    b.update(kw)
    return b


def test_invalid_argument_names_field_and_limit(ledger):
    org, vault = setup_vault(ledger)
    cases = [
        (R + "Read", dict(chain(org, vault), key="k" * 1025), "key: 1025 bytes"),
        (R + "Read", dict(chain(org, vault), key=""), "key: must not be empty"),
        (R + "Read", {"key": "a"}, "organization_slug"),
        (W + "Write", body(org, vault, [set_op("a", "v")] * 1001), "1000"),
        (W + "Write", body(org, vault, []), "operations"),
        (W + "Write", body(org, vault, [{"create_relationship": {
            "resource": "doc:1", "relation": "r" * 65, "subject": "user:1"}}]),
         "operations[0].create_relationship.relation: 65 chars"),
        (W + "Write", body(org, vault, [{"create_relationship": {
            "resource": "doc1", "relation": "viewer", "subject": "user:1"}}]),
         "operations[0].create_relationship.resource"),
        (W + "Write", body(org, vault, [{"create_relationship": {
            "resource": "doc:" + "x" * 509, "relation": "viewer", "subject": "user:1"}}]),
         "513 chars"),
        (W + "Write", body(org, vault, [set_op("a", "v")], idempotency_key=b64(b"x" * 15)),
         "idempotency_key: 15 bytes"),
        (W + "Write", dict(chain(org, vault), operations=[set_op("a", "v")]), "client_id"),
        (W + "Write", body(org, vault, [set_op("a", "v")], client_id={"id": "c" * 257}),
         "client_id: 257 bytes"),
        (R + "ListEntities", dict(chain(org, vault), limit=1001), "limit: 1001"),
        (R + "BatchRead", dict(chain(org, vault), keys=["k"] * 1001), "1000"),
        (R + "HistoricalRead", dict(chain(org, vault), key="a", at_height="5"), "at_height"),
        (R + "GetBlockRange", dict(chain(org, vault), start_height="3", end_height="1"),
         "start_height"),
        (R + "ListResources", chain(org, vault), "resource_type"),
    ]
    for method, b, needle in cases:
        code, msg = err(ledger, method, b)
        assert code == "InvalidArgument", (method, needle, code, msg)
        assert needle in msg, (method, needle, msg)


def test_value_over_one_mib(ledger):
    org, vault = setup_vault(ledger)
    big = body(org, vault, [set_op("big", "v" * ((1 << 20) + 1))])
    code, msg = err(ledger, W + "Write", stdin=json.dumps(big))
    assert code == "InvalidArgument" and "1 MiB" in msg
    ok = body(org, vault, [set_op("max", "v" * (1 << 20))])
    r = ledger.grpcurl(W + "Write", data="@", input=json.dumps(ok))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["success"]["blockHeight"] == "1"


def test_not_found(ledger):
    code, msg = err(ledger, R + "Read", dict(chain("9"), key="a"))
    assert code == "NotFound" and "organization 9" in msg
    org, vault = setup_vault(ledger)
    code, msg = err(ledger, R + "GetTip", chain(org, "4242"))
    assert code == "NotFound" and "vault 4242" in msg
    code, _ = err(ledger, W + "Write", body(org, "4242", [set_op("a", "v")]))
    assert code == "NotFound"
    code, msg = err(ledger, R + "GetBlock", dict(chain(org, vault), height="7"))
    assert code == "NotFound" and "block 7" in msg
    code, _ = err(ledger, A + "GetOrganization", {"organization_slug": {"id": "77"}})
    assert code == "NotFound"


def test_write_to_deleted_vault_is_failed_precondition(ledger):
    org, vault = setup_vault(ledger)
    ledger.call(A + "DeleteVault", chain(org, vault))
    code, msg = err(ledger, W + "Write", body(org, vault, [set_op("a", "v")]))
    assert code == "FailedPrecondition" and "writes refused" in msg
    code, _ = err(ledger, R + "Read", dict(chain(org, vault), key="a"))
    assert code == "NotFound"


def test_condition_failures_are_write_errors(ledger):
    org, vault = setup_vault(ledger)
    write(ledger, org, vault, [set_op("k", "v1")])
    e = write(ledger, org, vault, [set_op("other", "x"),
                                   set_op("k", "v2", condition={"not_exists": True})])["error"]
    assert e["code"] == "WRITE_ERROR_CODE_KEY_EXISTS"
    assert e["key"] == "k" and e["currentVersion"] == "1" and e["operationIndex"] == 1
    e = write(ledger, org, vault, [set_op("k", "v2", condition={"version": "9"})])["error"]
    assert e["code"] == "WRITE_ERROR_CODE_VERSION_MISMATCH"
    assert e["currentVersion"] == "1" and e["currentValue"] == b64("v1")
    e = write(ledger, org, vault, [set_op("k", "v2", condition={"value_equals": b64("no")})])
    assert e["error"]["code"] == "WRITE_ERROR_CODE_VALUE_MISMATCH"
    e = write(ledger, org, vault, [set_op("nope", "v", condition={"must_exist": True})])
    assert e["error"]["code"] == "WRITE_ERROR_CODE_KEY_NOT_FOUND"
    # nothing of a failed transaction was applied
    got = ledger.call(R + "Read", dict(chain(org, vault), key="other"))
    assert got.get("found", False) is False


def test_idempotency(ledger):
    org, vault = setup_vault(ledger)
    key = bytes(range(16))
    first = write(ledger, org, vault, [set_op("i", "x")], idem=key)["success"]
    again = write(ledger, org, vault, [set_op("i", "x")], idem=key)["error"]
    assert again["code"] == "WRITE_ERROR_CODE_ALREADY_COMMITTED"
    assert again["committedTxId"] == first["txId"]
    assert again["committedBlockHeight"] == first["blockHeight"]
    assert again["assignedSequence"] == first["assignedSequence"]
    other = write(ledger, org, vault, [set_op("i", "y")], idem=key)["error"]
    assert other["code"] == "WRITE_ERROR_CODE_IDEMPOTENCY_KEY_REUSED"
    assert ledger.call(R + "GetTip", chain(org, vault))["height"] == "1"
