"""Raft snapshots and log compaction on a real --single node: after enough
entries the log is compacted into a snapshot; a restart (graceful or kill -9)
comes back with every value and the same tip, and keeps accepting writes."""
import glob
import os

import grpc
import pytest

from ledger_api import b64, chain, messages, setup_vault, write


def grpc_writes(node, org, vault, n):
    """n writes, one Raft entry each, over one grpcio channel (fast)."""
    M = messages()
    with grpc.insecure_channel(node.addr) as ch:
        call = ch.unary_unary("/ledger.v1.WriteService/Write",
                              request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=M.WriteResponse.FromString)
        for i in range(n):
            req = M.WriteRequest()
            req.organization_slug.id = int(org)
            req.vault.slug = int(vault)
            req.client_id.id = "snap"
            op = req.operations.add()
            op.set_entity.key = "k%d" % i
            op.set_entity.value = ("v%d" % i).encode()
            resp = call(req, timeout=10)
            assert resp.WhichOneof("result") == "success", resp


def tip(node, org, vault):
    return node.call("ledger.v1.ReadService/GetTip", chain(org, vault))


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_restart_after_snapshot_and_compaction(ledger_factory, how):
    node = ledger_factory(extra_args=("--snapshot-threshold", "16", "--batch-delay", "0"))
    org, vault = setup_vault(node)
    grpc_writes(node, org, vault, 60)
    snaps = glob.glob(os.path.join(node.data_dir, "raft", "snapshot-*"))
    assert snaps, "no Raft snapshot after 60 entries with --snapshot-threshold 16: %s" % (
        os.listdir(os.path.join(node.data_dir, "raft")))
    before = tip(node, org, vault)
    assert before["height"] == "60"

    if how == "kill9":
        node.kill9()
        node.start()
    else:
        node.restart()

    assert tip(node, org, vault) == before
    for i in (0, 31, 59):
        r = node.call("ledger.v1.ReadService/Read", dict(chain(org, vault), key="k%d" % i))
        assert r["value"] == b64("v%d" % i)
    w = write(node, org, vault, [{"set_entity": {"key": "after", "value": b64("x")}}])
    assert w["success"]["blockHeight"] == "61"
