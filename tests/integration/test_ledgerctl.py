"""ledgerctl (SPEC section 10) against real servers.

Every command runs against a --single node holding two organizations with
vaults; --json output is parsed and compared with what the API itself
answers (through grpcurl). `verify` passes on a healthy node and on a
3-node cluster and fails, naming the failing row, when the metrics address
or a node is wrong.
"""

import base64
import json
import os
import subprocess

import pytest

import conftest
from ledger_api import chain, set_op, write

CTL = os.environ.get("LEDGERCTL_BIN",
                     os.path.join(os.path.dirname(conftest.LEDGER_BIN), "ledgerctl"))


def ctl(*args, addr=None, env=None, timeout=60):
    argv = [CTL]
    if addr is not None:
        argv += ["--addr", addr]
    full_env = dict(os.environ)
    full_env.pop("LEDGERCTL_ADDR", None)
    if env:
        full_env.update(env)
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout,
                          env=full_env)


def ctl_json(node, *args):
    r = ctl("--json", *args, addr=node.addr)
    assert r.returncode == 0, "ledgerctl %s: exit %d\n%s%s" % (args, r.returncode, r.stdout,
                                                               r.stderr)
    return json.loads(r.stdout)


@pytest.fixture(scope="module", autouse=True)
def _binary():
    assert os.access(CTL, os.X_OK), "ledgerctl not built at %s" % CTL


@pytest.fixture
def populated(ledger_factory, tmp_path):
    """Single node, organizations acme (vaults main, audit) and globex (vault
    main, with one write so its height is 1)."""
    node = ledger_factory(extra_args=("--backup-dir", str(tmp_path / "backups")))
    orgs, vaults = {}, {}
    for name in ("acme", "globex"):
        orgs[name] = int(node.call("ledger.v1.AdminService/CreateOrganization",
                                   {"name": name})["slug"]["id"])
    for org, vname in (("acme", "main"), ("acme", "audit"), ("globex", "main")):
        v = node.call("ledger.v1.AdminService/CreateVault",
                      {"organization_slug": {"id": orgs[org]}, "name": vname})
        vaults[(org, vname)] = int(v["vault"]["slug"])
    w = write(node, orgs["globex"], vaults[("globex", "main")], [set_op("k", "v")])
    assert "success" in w
    return node, orgs, vaults


def test_help_usage_and_call_errors():
    r = ctl("--help")
    assert r.returncode == 0
    for cmd in ("cluster info", "node leave NODE_ID", "org list", "vault list", "tip",
                "integrity", "backup create", "backup list", "verify --metrics"):
        assert cmd in r.stdout
    r = ctl("verify", "--help")
    assert r.returncode == 0 and r.stdout.startswith("Usage: ledgerctl verify --metrics")
    assert ctl("frobnicate").returncode == 2
    assert ctl("verify").returncode == 2                     # --metrics is required
    assert ctl("vault", "list", "--org", "x").returncode == 2
    assert ctl("tip").returncode == 2                        # --all or --org
    assert ctl("--timeout", "soon", "org", "list").returncode == 2
    # A call that fails: one line naming the call, the gRPC code and message.
    dead = "127.0.0.1:%d" % conftest.free_port()
    r = ctl("org", "list", addr=dead, timeout=30)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "ListOrganizations: UNAVAILABLE:" in lines[0], r.stderr
    assert dead in lines[0]


def test_cluster_and_node_info(populated):
    node, _, _ = populated
    ni = ctl_json(node, "node", "info")
    assert ni["is_cluster_member"] is True and ni["is_leader"] is True
    assert ni["address"] == node.addr and ni["role"] == "VOTER"
    ci = ctl_json(node, "cluster", "info")
    assert ci["leader_id"] == ni["node_id"]
    assert [(m["node_id"], m["address"], m["leader"]) for m in ci["members"]] == \
        [(ni["node_id"], node.addr, True)]
    # LEDGERCTL_ADDR stands in for --addr; the text output is a table.
    r = ctl("cluster", "info", env={"LEDGERCTL_ADDR": node.addr})
    assert r.returncode == 0, r.stderr
    assert "NODE_ID" in r.stdout and "MATCH_INDEX" in r.stdout
    row = [l for l in r.stdout.splitlines() if l.startswith(ni["node_id"])]
    assert len(row) == 1 and row[0].split()[1:5] == [node.addr, "VOTER", "true", "true"]


def test_node_leave_unknown_node_fails(populated):
    node, _, _ = populated
    r = ctl("node", "leave", "12345", addr=node.addr)
    assert r.returncode == 1
    assert "LeaveCluster: NOT_FOUND:" in r.stderr
    assert ctl("node", "leave", addr=node.addr).returncode == 2


def test_org_and_vault_list(populated):
    node, orgs, vaults = populated
    ol = ctl_json(node, "org", "list")
    assert [(o["slug"], o["name"], o["vault_count"]) for o in ol] == \
        [(orgs["acme"], "acme", 2), (orgs["globex"], "globex", 1)]
    r = ctl("org", "list", addr=node.addr)
    assert r.returncode == 0 and "acme" in r.stdout and "globex" in r.stdout
    vl = ctl_json(node, "vault", "list")
    assert sorted((v["organization"], v["vault"], v["name"]) for v in vl) == sorted(
        (orgs[o], s, n) for (o, n), s in vaults.items())
    gm = [v for v in vl if v["vault"] == vaults[("globex", "main")]][0]
    assert gm["height"] == 1 and gm["status"] == "ACTIVE"
    only = ctl_json(node, "vault", "list", "--org", str(orgs["globex"]))
    assert [v["vault"] for v in only] == [vaults[("globex", "main")]]
    r = ctl("vault", "list", addr=node.addr)
    assert r.returncode == 0 and "audit" in r.stdout and "ORGANIZATION" in r.stdout


def test_tip_all_matches_get_tip(populated):
    node, orgs, vaults = populated
    tips = ctl_json(node, "tip", "--all")
    got = {(t["organization"], t["vault"]): t for t in tips}
    expected = {(orgs["acme"], 0), (orgs["globex"], 0)} | {
        (orgs[o], s) for (o, _), s in vaults.items()}
    assert set(got) == expected
    for (org, vault), t in got.items():
        api = node.call("ledger.v1.ReadService/GetTip", chain(org, vault or None))
        assert t["height"] == int(api["height"])
        assert t["block_hash"] == base64.b64decode(api["blockHash"]["value"]).hex()
    assert got[(orgs["globex"], vaults[("globex", "main")])]["height"] == 1
    r = ctl("tip", "--all", addr=node.addr)
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 1 + len(expected)
    one = ctl_json(node, "tip", "--org", str(orgs["globex"]), "--vault",
                   str(vaults[("globex", "main")]))
    assert len(one) == 1 and one[0]["height"] == 1
    r = ctl("tip", "--org", "99", addr=node.addr)
    assert r.returncode == 1 and "GetTip(organization 99, vault 0): NOT_FOUND" in r.stderr


def test_integrity_all_covers_every_organization(populated):
    node, orgs, vaults = populated
    for extra in ((), ("--full",)):
        rows = ctl_json(node, "integrity", *extra, "--all")
        pairs = {(r["organization"], r["vault"]) for r in rows}
        assert {(orgs[o], s) for (o, _), s in vaults.items()} <= pairs
        assert {orgs["acme"], orgs["globex"]} == {r["organization"] for r in rows}
        assert all(r["healthy"] for r in rows)
        gm = [r for r in rows if r["vault"] == vaults[("globex", "main")]][0]
        assert gm["blocks_checked"] >= 2          # genesis + the write's block
    r = ctl("integrity", "--all", addr=node.addr)
    assert r.returncode == 0 and "0 unhealthy" in r.stdout
    # A chain that cannot be checked counts as a failure (exit 1, call named).
    r = ctl("integrity", "--org", str(orgs["acme"]), "--vault", "999999", addr=node.addr)
    assert r.returncode == 1 and "CheckIntegrity(organization" in r.stderr


def test_backup_create_and_list(populated):
    node, _, _ = populated
    b = ctl_json(node, "backup", "create", "--tag", "pre-upgrade")
    assert b["tag"] == "pre-upgrade" and len(b["checksum"]) == 64 and b["size_bytes"] > 0
    assert os.path.isfile(b["backup_path"]) or os.path.isfile(
        os.path.join(node.workdir, b["backup_path"]))
    listed = ctl_json(node, "backup", "list")
    assert [(x["backup_id"], x["tag"]) for x in listed] == [(b["backup_id"], "pre-upgrade")]
    r = ctl("backup", "list", addr=node.addr)
    assert r.returncode == 0 and b["backup_id"] in r.stdout


def test_token_file_sends_bearer(ledger_factory, tmp_path):
    tok = tmp_path / "admin.token"
    tok.write_text("s3cret-token\n")
    node = ledger_factory(extra_args=("--admin-token-file", str(tok)))
    r = ctl("org", "list", addr=node.addr)
    assert r.returncode == 1 and "UNAUTHENTICATED" in r.stderr
    r = ctl("--token-file", str(tok), "org", "list", addr=node.addr)
    assert r.returncode == 0, r.stderr
    wrong = tmp_path / "wrong.token"
    wrong.write_text("nope")
    assert ctl("--token-file", str(wrong), "org", "list", addr=node.addr).returncode == 1


def verify_rows(out):
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        for i, p in enumerate(parts):
            if p in ("PASS", "FAIL") and i >= 2:
                rows.setdefault(" ".join(parts[:i - 1]), []).append(p)
                break
    return rows


def test_verify_passes_on_healthy_node(populated):
    node, _, _ = populated
    r = ctl("verify", "--metrics", node.metrics_addr, addr=node.addr)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = verify_rows(r.stdout)
    for check in ("node healthy", "leader elected", "vaults readable", "integrity", "write",
                  "read", "metrics"):
        assert rows.get(check) == ["PASS"], (check, r.stdout)
    # The scratch organization and vault now exist and are reused next time.
    orgs = ctl_json(node, "org", "list")
    scratch = [o for o in orgs if o["name"] == "ledgerctl-verify"]
    assert len(scratch) == 1 and scratch[0]["vault_count"] == 1
    v = ctl_json(node, "verify", "--metrics", node.metrics_addr)
    assert v["passed"] is True and all(c["result"] == "PASS" for c in v["checks"])
    assert len([o for o in ctl_json(node, "org", "list") if o["name"] == "ledgerctl-verify"]) == 1


def test_verify_fails_naming_the_failing_check(populated):
    node, _, _ = populated
    bad_metrics = "127.0.0.1:%d" % conftest.free_port()
    r = ctl("verify", "--metrics", bad_metrics, addr=node.addr)
    assert r.returncode == 1
    rows = verify_rows(r.stdout)
    assert rows["metrics"] == ["FAIL"] and rows["write"] == ["PASS"]
    assert "FAIL: 7 of 8 checks passed" in r.stdout
    v = json.loads(ctl("--json", "verify", "--metrics", bad_metrics, addr=node.addr).stdout)
    assert v["passed"] is False and v["failed_checks"] == 1
    assert [c["check"] for c in v["checks"] if c["result"] == "FAIL"] == ["metrics"]
    # A node that does not answer: its health row fails, and so does leader agreement.
    dead = "127.0.0.1:%d" % conftest.free_port()
    r = ctl("--timeout", "5", "verify", "--metrics", node.metrics_addr, "--nodes",
            "%s,%s" % (node.addr, dead), addr=node.addr)
    assert r.returncode == 1
    rows = verify_rows(r.stdout)
    assert rows["node healthy"] == ["PASS", "FAIL"] and rows["leader elected"] == ["FAIL"]
    assert [l for l in r.stdout.splitlines() if dead in l and "FAIL" in l]


def test_three_node_cluster_info_and_verify(cluster_factory):
    cl = cluster_factory(3)
    cl.wait_formed(voters=3)
    leader = cl.leader()
    follower = [n for n in cl.nodes if n is not leader][0]
    ci = ctl_json(follower, "cluster", "info")
    assert sorted(m["address"] for m in ci["members"]) == sorted(n.addr for n in cl.nodes)
    assert [m["address"] for m in ci["members"] if m["leader"]] == [leader.addr]
    assert all(m["role"] == "VOTER" for m in ci["members"])
    # verify from a follower: writes and linearizable reads are forwarded.
    r = ctl("verify", "--metrics", follower.metrics_addr, addr=follower.addr)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = verify_rows(r.stdout)
    assert rows["node healthy"] == ["PASS"] * 3 and rows["leader elected"] == ["PASS"]
    assert "agreed by 3 node(s)" in r.stdout
