"""AdminService/CheckIntegrity and CreateSnapshot on the real binary (SPEC §6, §7):
the runbook's integrity loop (ListVaults | jq, then CheckIntegrity full_check per
vault) passes on a node with several vaults, before and after a restart and on
every node of a 3-node cluster; unknown chains are NOT_FOUND; CreateSnapshot
writes a self-verifying file under DATA/snapshots/ (docs/snapshots.md)."""

import hashlib
import json
import os
import re
import struct
import subprocess
import time

import conftest
from cluster_api import Client
from ledger_api import b64, chain, err, set_op, write

A = "ledger.v1.AdminService/"


def populate(node, vaults=3):
    """Organization 1 with |vaults| vaults holding entities, relationships and
    deletes; returns the vault slugs."""
    org = node.call(A + "CreateOrganization", {"name": "acme"})["slug"]["id"]
    assert org == "1"  # the runbook hard-codes organization 1
    slugs = []
    for v in range(vaults):
        vault = node.call(A + "CreateVault",
                          {"organization_slug": {"id": org}, "name": "v%d" % v})["vault"]["slug"]
        slugs.append(vault)
        for i in range(4 + v):
            ops = [set_op("user:%d" % j, "val-%d-%d" % (i, j)) for j in range(5)]
            ops.append({"create_relationship": {"resource": "doc:%d" % i, "relation": "viewer",
                                                "subject": "user:%d" % i}})
            write(node, org, vault, ops)
        write(node, org, vault, [{"delete_entity": {"key": "user:0"}}])
    return org, slugs


def runbook_loop(node, full=True):
    """The runbook's step 3 loop, run by a shell with grpcurl and jq (the -d
    flag before the address). Returns {vault: response}."""
    gc = conftest.GRPCURL
    full_json = ', \\"full_check\\": true' if full else ""
    script = (
        'for vault in $(%s -plaintext %s ledger.v1.AdminService/ListVaults | '
        "jq -r '.vaults[].vault.slug'); do\n"
        '  echo "VAULT $vault"\n'
        '  %s -plaintext \\\n'
        '    -d "{\\"organization_slug\\": {\\"id\\": \\"1\\"}, \\"vault\\": {\\"slug\\": '
        '\\"$vault\\"}%s}" \\\n'
        '    %s ledger.v1.AdminService/CheckIntegrity || exit 1\n'
        'done\n' % (gc, node.addr, gc, full_json, node.addr))
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = {}
    for part in r.stdout.split("VAULT ")[1:]:
        slug, _, body = part.partition("\n")
        out[slug.strip()] = json.loads(body)
    return out


def vault_heights(node):
    return {v["vault"]["slug"]: int(v.get("height", "0"))
            for v in node.call(A + "ListVaults", {})["vaults"]}


def assert_all_healthy(node, slugs, full=True):
    heights = vault_heights(node)
    res = runbook_loop(node, full)
    assert sorted(res) == sorted(slugs), res
    for slug, r in res.items():
        assert r.get("healthy") is True, r
        assert "issues" not in r, r
        assert int(r["blocksChecked"]) == heights[slug] + 1, (slug, r, heights)
    return res


def metric(text, name, labels=""):
    m = re.search(r"^%s%s ([0-9.e+]+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


def test_runbook_integrity_loop_single_node_and_restart(ledger_factory):
    node = ledger_factory()
    org, slugs = populate(node)
    assert vault_heights(node)[slugs[2]] == 7
    assert_all_healthy(node, slugs, full=True)
    assert_all_healthy(node, slugs, full=False)
    # The organization chain (vault 0) is checkable too.
    r = node.call(A + "CheckIntegrity", {"organization_slug": {"id": org},
                                         "vault": {"slug": "0"}, "full_check": True})
    assert r["healthy"] is True and r["blocksChecked"] == "1", r
    m = metric(node.metrics(), "ledger_integrity_checks_total", '{result="healthy"}')
    assert m == 2 * len(slugs) + 1, node.metrics()

    node.restart()
    assert_all_healthy(node, slugs, full=True)
    # Writes after the restart are covered as well.
    write(node, org, slugs[0], [set_op("late", "x")])
    assert_all_healthy(node, slugs, full=True)


def test_check_integrity_errors(ledger_factory):
    node = ledger_factory()
    org, slugs = populate(node, vaults=1)
    code, msg = err(node, A + "CheckIntegrity",
                    {"organization_slug": {"id": org}, "vault": {"slug": "999"},
                     "full_check": True})
    assert code == "NotFound" and "999" in msg, (code, msg)
    code, _ = err(node, A + "CheckIntegrity",
                  {"organization_slug": {"id": "77"}, "vault": {"slug": slugs[0]}})
    assert code == "NotFound"
    code, _ = err(node, A + "CheckIntegrity", {"vault": {"slug": slugs[0]}})
    assert code == "InvalidArgument"
    code, _ = err(node, A + "CreateSnapshot",
                  {"organization_slug": {"id": org}, "vault": {"slug": "999"}})
    assert code == "NotFound"


def parse_snapshot(path):
    """Verify a snapshot file as docs/snapshots.md says; returns its header."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"LDGSNAP1"
    version, header_len = struct.unpack(">II", data[8:16])
    assert version == 1
    end = 16 + header_len
    fields = data[16:end]
    assert hashlib.sha256(data[:end]).digest() == data[end:end + 32], "header checksum"
    secs, nanos, log_id, index, term, n = struct.unpack(">qIQQQI", fields[:40])
    vaults, off = [], 40
    for _ in range(n):
        o, v, h = struct.unpack(">QQQ", fields[off:off + 24])
        vaults.append({"org": o, "vault": v, "height": h,
                       "state_root": fields[off + 24:off + 56],
                       "tip": fields[off + 56:off + 88]})
        off += 88
    body_len, = struct.unpack(">Q", fields[off:off + 8])
    body_sha = fields[off + 8:off + 40]
    assert off + 40 == header_len
    body = data[end + 32:]
    assert len(body) == body_len, "file length"
    assert hashlib.sha256(body).digest() == body_sha, "body checksum"
    return {"created": secs, "applied_index": index, "term": term, "vaults": vaults,
            "body": body}


def test_create_snapshot(ledger_factory, tmp_path):
    node = ledger_factory()
    org, slugs = populate(node, vaults=2)
    info = {v["vault"]["slug"]: v for v in node.call(A + "ListVaults", {})["vaults"]}
    before = time.time()
    r = node.call(A + "CreateSnapshot", {"organization_slug": {"id": org},
                                         "vault": {"slug": slugs[1]}})
    assert r["blockHeight"] == info[slugs[1]]["height"]
    assert r["stateRoot"] == info[slugs[1]]["stateRoot"]
    path = r["snapshotPath"]
    snapdir = os.path.join(os.path.realpath(node.data_dir), "snapshots")
    assert os.path.dirname(os.path.realpath(path)) == snapdir, (path, snapdir)
    assert os.path.isfile(path)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert not [f for f in os.listdir(snapdir) if f.endswith(".tmp")]

    snap = parse_snapshot(path)
    assert abs(snap["created"] - before) < 60
    assert snap["applied_index"] > 0
    listed = {str(v["vault"]): v for v in snap["vaults"]}
    assert sorted(listed) == sorted(slugs)
    for s in slugs:
        assert listed[s]["org"] == int(org)
        assert listed[s]["height"] == int(info[s]["height"])
        assert b64(listed[s]["state_root"]) == info[s]["stateRoot"]["value"], info[s]
    # The body is a zstd frame holding the store dump ("LDSD", version 1).
    z = tmp_path / "body.zst"
    z.write_bytes(snap["body"])
    dump = subprocess.run(["zstd", "-d", "-c", str(z)], capture_output=True, check=True).stdout
    assert dump[:4] == b"LDSD" and dump[4] == 1
    assert hashlib.sha256(dump[:-32]).digest() == dump[-32:]

    # A flipped byte is detected by the checksums.
    bad = bytearray(open(path, "rb").read())
    bad[-5] ^= 1
    badp = tmp_path / "bad.ldgsnap"
    badp.write_bytes(bytes(bad))
    try:
        parse_snapshot(str(badp))
        raise AssertionError("corrupted snapshot passed the checksum")
    except AssertionError as e:
        assert "body checksum" in str(e)

    text = node.metrics()
    assert metric(text, "ledger_snapshots_created_total") == 1, text
    ts = metric(text, "ledger_snapshot_last_created_timestamp_seconds")
    assert ts is not None and abs(ts - before) < 60
    # A second snapshot gets its own file.
    write(node, org, slugs[0], [set_op("more", "x")])
    r2 = node.call(A + "CreateSnapshot", {"organization_slug": {"id": org},
                                          "vault": {"slug": slugs[0]}})
    assert r2["snapshotPath"] != path and os.path.isfile(r2["snapshotPath"])
    assert parse_snapshot(r2["snapshotPath"])["applied_index"] > snap["applied_index"]


def test_cluster_every_node_passes(cluster_factory):
    cl = cluster_factory(3)
    cl.wait_formed(voters=3)
    leader = cl.leader()
    c = Client(leader.addr)
    org = c.create_org("acme")
    vaults = [c.create_vault(org, "v%d" % i) for i in range(2)]
    for v in vaults:
        for i in range(5):
            c.write(org, v, "k%d" % i, b"v%d" % i)
    tips = {v: c.tip(org, v) for v in vaults}
    c.close()
    for node in cl.nodes:
        # Wait until this node has applied the last writes, then check.
        deadline = time.monotonic() + 30
        for v in vaults:
            while True:
                nc = Client(node.addr)
                try:
                    t = nc.tip(org, v)
                finally:
                    nc.close()
                if t == tips[v] or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert t == tips[v], (node.addr, t, tips[v])
            r = node.call(A + "CheckIntegrity", dict(chain(str(org), str(v)), full_check=True))
            assert r["healthy"] is True, (node.addr, r)
            assert int(r["blocksChecked"]) == 6, r
