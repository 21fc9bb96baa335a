"""Schema checks for proto/ledger/v1/ledger.proto (SPEC section 4).

Builds a descriptor set with protoc, loads it into a fresh descriptor pool and
checks the JSON shapes the disaster-recovery runbook relies on, the method
list, identifier naming and enum values. Needs no running server.
"""
import json
import os
import subprocess

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
PROTO_DIR = os.path.join(ROOT, "proto")


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    out = tmp_path_factory.mktemp("desc") / "ledger.pb"
    subprocess.run(["protoc", "-I", PROTO_DIR, "-I", "/usr/include", "--include_imports",
                    "--descriptor_set_out=%s" % out, "ledger/v1/ledger.proto"],
                   check=True, timeout=60)
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(out.read_bytes())
    p = descriptor_pool.DescriptorPool()
    for f in fds.file:
        p.Add(f)
    return p


def msg(pool, name):
    desc = pool.FindMessageTypeByName("ledger.v1." + name)
    return message_factory.MessageFactory(pool).GetPrototype(desc)()


RUNBOOK_REQUESTS = [
    ("CheckIntegrityRequest",
     '{"organization_slug": {"id": "1"}, "vault": {"slug": "7"}, "full_check": true}'),
    ("GetTipRequest", '{"organization_slug": {"id": "1"}, "vault": {"slug": "7"}}'),
    ("GetVaultRequest", '{"organization_slug": {"id": "1"}, "vault": {"slug": "7"}}'),
    ("RecoverVaultRequest", '{"organization_slug": {"id": "1"}, "vault": {"slug": "7"}}'),
    ("CreateSnapshotRequest", '{"organization_slug": {"id": "1"}, "vault": {"slug": "7"}}'),
]


@pytest.mark.parametrize("name,text", RUNBOOK_REQUESTS)
def test_runbook_vault_requests_parse(pool, name, text):
    m = json_format.Parse(text, msg(pool, name))
    assert m.organization_slug.id == 1
    assert m.vault.slug == 7
    if name == "CheckIntegrityRequest":
        assert m.full_check is True


def test_runbook_leave_cluster_parses(pool):
    m = json_format.Parse('{"node_id": {"id": "123"}}', msg(pool, "LeaveClusterRequest"))
    assert m.node_id.id == "123"


@pytest.mark.parametrize("name", ["ListVaultsRequest", "ListOrganizationsRequest",
                                  "GetClusterInfoRequest", "HealthCheckRequest"])
def test_runbook_empty_requests_parse(pool, name):
    json_format.Parse("{}", msg(pool, name))


def test_list_vaults_json_shape_matches_runbook_jq(pool):
    resp = msg(pool, "ListVaultsResponse")
    for slug in (7, 9):
        v = resp.vaults.add()
        v.organization_slug.id = 1
        v.vault.slug = slug
        v.height = 0
        v.status = pool.FindEnumTypeByName("ledger.v1.VaultStatus").values_by_name[
            "VAULT_STATUS_ACTIVE"].number
    data = json.loads(json_format.MessageToJson(resp, preserving_proto_field_name=True))
    # jq -r '.vaults[].vault.slug'
    assert [v["vault"]["slug"] for v in data["vaults"]] == ["7", "9"]
    assert data["vaults"][0]["height"] == "0"
    assert data["vaults"][0]["status"] == "VAULT_STATUS_ACTIVE"
    info = pool.FindMessageTypeByName("ledger.v1.VaultInfo")
    for f in ("organization_slug", "vault", "name", "height", "state_root", "status",
              "nodes", "leader", "retention_policy"):
        assert f in info.fields_by_name, f
    get_vault = pool.FindServiceByName("ledger.v1.AdminService").methods_by_name["GetVault"]
    assert get_vault.output_type is info


def test_get_tip_height_zero_is_printed_and_unset_is_not(pool):
    m = msg(pool, "GetTipResponse")
    assert json.loads(json_format.MessageToJson(m)) == {}
    m.height = 0
    assert m.HasField("height")
    assert json.loads(json_format.MessageToJson(m))["height"] == "0"
    # Same wire bytes as proto3 `optional uint64 height = 1` set to 0.
    assert m.SerializeToString() == b"\x08\x00"


SPEC_METHODS = {
    "ReadService": ["Read", "BatchRead", "VerifiedRead", "HistoricalRead", "GetTip",
                    "GetBlock", "GetBlockRange", "WatchBlocks", "ListEntities",
                    "ListRelationships", "ListResources", "GetClientState"],
    "WriteService": ["Write", "BatchWrite"],
    "AdminService": ["CreateOrganization", "GetOrganization", "ListOrganizations",
                     "DeleteOrganization", "CreateVault", "DeleteVault", "GetVault",
                     "ListVaults", "JoinCluster", "LeaveCluster", "GetClusterInfo",
                     "GetNodeInfo", "CreateSnapshot", "CheckIntegrity", "RecoverVault",
                     "SimulateDivergence", "CreateBackup", "ListBackups", "RestoreBackup",
                     "ForceGc", "GetConfig", "UpdateConfig"],
    "HealthService": ["Check"],
    "SystemDiscoveryService": ["GetPeers", "AnnouncePeer", "ExchangeNodeInfo"],
}


def test_every_spec_method_exists(pool):
    for svc, methods in SPEC_METHODS.items():
        s = pool.FindServiceByName("ledger.v1." + svc)
        assert sorted(s.methods_by_name) == sorted(methods), svc
        for name, m in s.methods_by_name.items():
            streaming = name == "WatchBlocks"
            mp = descriptor_pb2.MethodDescriptorProto()
            m.CopyToProto(mp)
            assert mp.server_streaming == streaming, name
            assert not mp.client_streaming, name


def test_identifier_messages_exact(pool):
    want = {"OrganizationSlug": ("id", "uint64"), "VaultSlug": ("slug", "uint64"),
            "NodeId": ("id", "string"), "Hash": ("value", "bytes"),
            "ClientId": ("id", "string"), "TxId": ("id", "bytes")}
    types = {4: "uint64", 9: "string", 12: "bytes"}
    for name, (field, typ) in want.items():
        d = pool.FindMessageTypeByName("ledger.v1." + name)
        assert [(f.name, f.number, types[f.type]) for f in d.fields] == [(field, 1, typ)]


def test_slug_fields_are_named_consistently(pool):
    fd = pool.FindFileByName("ledger/v1/ledger.proto")
    # Messages that name an organization they create or describe use `slug`.
    own_slug = {"CreateOrganizationRequest", "CreateOrganizationResponse", "OrganizationInfo"}
    for d in fd.message_types_by_name.values():
        for f in d.fields:
            if f.message_type is None:
                continue
            if f.message_type.full_name == "ledger.v1.OrganizationSlug":
                want = "slug" if d.name in own_slug else "organization_slug"
                assert f.name == want, (d.name, f.name)
            if f.message_type.full_name == "ledger.v1.VaultSlug":
                assert f.name == "vault", (d.name, f.name)


def test_enums(pool):
    fd = pool.FindFileByName("ledger/v1/ledger.proto")

    def names(e):
        return [v.name for v in pool.FindEnumTypeByName("ledger.v1." + e).values]
    assert names("VaultStatus") == [
        "VAULT_STATUS_UNSPECIFIED", "VAULT_STATUS_ACTIVE", "VAULT_STATUS_READ_ONLY",
        "VAULT_STATUS_DIVERGED", "VAULT_STATUS_RECOVERING", "VAULT_STATUS_DELETED"]
    assert names("HealthStatus") == [
        "HEALTH_STATUS_UNSPECIFIED", "HEALTH_STATUS_HEALTHY", "HEALTH_STATUS_DEGRADED",
        "HEALTH_STATUS_UNAVAILABLE"]
    for e in fd.enum_types_by_name.values():
        prefix = "".join("_" + c if c.isupper() else c for c in e.name).lstrip("_").upper()
        for v in e.values:
            assert v.name.startswith(prefix + "_"), v.name
        assert e.values[0].name == prefix + "_UNSPECIFIED" and e.values[0].number == 0


def test_block_header_has_every_hashed_field(pool):
    d = pool.FindMessageTypeByName("ledger.v1.BlockHeader")
    for f in ("height", "organization_slug", "vault", "previous_hash", "tx_merkle_root",
              "state_root", "timestamp", "term", "committed_index", "leader_id"):
        assert f in d.fields_by_name, f
    assert d.fields_by_name["timestamp"].message_type.full_name == "google.protobuf.Timestamp"


def test_write_request_and_response_round_trip(pool):
    req = json_format.Parse(json.dumps({
        "organization_slug": {"id": "1"},
        "client_id": {"id": "c1"},
        "idempotency_key": "AAECAwQFBgcICQoLDA0ODw==",
        "operations": [
            {"set_entity": {"key": "k", "value": "dg==", "expires_at": "0",
                            "condition": {"version": "0"}}},
            {"create_relationship": {"resource": "doc:1", "relation": "viewer",
                                     "subject": "user:a"}},
        ],
    }), msg(pool, "WriteRequest"))
    assert not req.HasField("vault")  # absent vault = organization chain
    assert len(req.idempotency_key) == 16
    se = req.operations[0].set_entity
    assert se.HasField("expires_at") and se.condition.WhichOneof("condition") == "version"
    resp = json_format.Parse(json.dumps({
        "error": {"code": "WRITE_ERROR_CODE_VERSION_MISMATCH", "key": "k",
                  "current_version": "0"}}), msg(pool, "WriteResponse"))
    assert resp.WhichOneof("result") == "error"
    assert resp.error.HasField("current_version")
