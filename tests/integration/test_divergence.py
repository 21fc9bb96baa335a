"""SPEC §6 divergence and recovery on the real binary: the runbook's "Data
Corruption Recovery / Vault State Divergence" procedure (curl /metrics | grep
determinism_bug, GetVault shows DIVERGED, RecoverVault, CheckIntegrity) on a
--single node started with --allow-fault-injection, the flag being required,
and on a 3-node cluster the divergence staying local to the node it hit."""

import pathlib
import re
import subprocess
import time

import conftest
from cluster_api import Client
from ledger_api import b64, chain, err, set_op, write

A = "ledger.v1.AdminService/"
READ = "ledger.v1.ReadService/Read"
HEALTH = "ledger.v1.HealthService/Check"


def populate(node):
    org = node.call(A + "CreateOrganization", {"name": "acme"})["slug"]["id"]
    vaults = []
    for name in ("affected", "other"):
        v = node.call(A + "CreateVault",
                      {"organization_slug": {"id": org}, "name": name})["vault"]["slug"]
        for i in range(3):
            write(node, org, v, [set_op("user:%d" % i, "%s-%d" % (name, i))])
        vaults.append(v)
    return org, vaults


def grep_determinism(node):
    """The runbook's step 1, verbatim but for the port."""
    r = subprocess.run(["bash", "-c", "curl -s %s/metrics | grep determinism_bug"
                        % node.metrics_addr], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def series(text, name, labels):
    m = re.search(r"^%s%s ([0-9.e+]+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


def vault_status(node, org, vault):
    return node.call(A + "GetVault", chain(org, vault))["status"]


def read(node, org, vault, key):
    return node.call(READ, dict(chain(org, vault), key=key))


def test_runbook_divergence_procedure_single_node(ledger_factory):
    node = ledger_factory(extra_args=("--allow-fault-injection",))
    org, (bad, good) = populate(node)
    # Before anything: the metric family is listed, no vault has a bug.
    out = grep_determinism(node)
    assert "ledger_determinism_bug_total" in out, out
    assert series(out, "ledger_determinism_bug_total",
                  '{organization="%s",vault="%s"}' % (org, bad)) is None, out
    text = node.metrics()
    assert series(text, "ledger_vaults", '{status="active"}') == 2, text
    assert series(text, "ledger_vaults", '{status="diverged"}') == 0, text

    r = node.call(A + "SimulateDivergence", chain(org, bad))
    assert r["status"] == "VAULT_STATUS_DIVERGED", r
    assert "DIVERGED" in r["message"], r

    # Step 1: the metric names the affected vault.
    out = grep_determinism(node)
    assert series(out, "ledger_determinism_bug_total",
                  '{organization="%s",vault="%s"}' % (org, bad)) == 1, out
    assert ('vault="%s"' % good) not in out, out
    # The log has the height and both roots.
    log = node.log_text()
    assert re.search(r"determinism bug: chain %s/%s DIVERGED on this node at height 3 "
                     r"expected_state_root=[0-9a-f]{64} computed_state_root=[0-9a-f]{64}"
                     % (org, bad), log), node.log_tail()
    # Step 2: GetVault shows DIVERGED (ListVaults too); the other vault is ACTIVE.
    assert vault_status(node, org, bad) == "VAULT_STATUS_DIVERGED"
    assert vault_status(node, org, good) == "VAULT_STATUS_ACTIVE"
    listed = {v["vault"]["slug"]: v["status"] for v in node.call(A + "ListVaults", {})["vaults"]}
    assert listed == {bad: "VAULT_STATUS_DIVERGED", good: "VAULT_STATUS_ACTIVE"}, listed
    text = node.metrics()
    assert series(text, "ledger_vaults", '{status="diverged"}') == 1, text
    assert series(text, "ledger_vaults", '{status="active"}') == 1, text
    # Reads of the diverged vault are refused here; the other vault is served.
    code, msg = err(node, READ, dict(chain(org, bad), key="user:1"))
    assert code == "Unavailable" and "DIVERGED" in msg, (code, msg)
    assert read(node, org, good, "user:1")["value"] == b64("other-1")
    # Writes to it on this node are refused (not ACTIVE here).
    code, msg = err(node, "ledger.v1.WriteService/Write",
                    dict(chain(org, bad), client_id={"id": "w"},
                         operations=[set_op("x", "y")]))
    assert code == "FailedPrecondition" and "DIVERGED" in msg, (code, msg)
    # HealthService vault check.
    h = node.call(HEALTH, chain(org, bad))
    assert h["status"] == "HEALTH_STATUS_UNAVAILABLE", h
    assert node.call(HEALTH, chain(org, good))["status"] == "HEALTH_STATUS_HEALTHY"

    # The marker is this node's state: it survives a restart.
    node.restart()
    assert vault_status(node, org, bad) == "VAULT_STATUS_DIVERGED"
    code, _ = err(node, READ, dict(chain(org, bad), key="user:1"))
    assert code == "Unavailable"

    # Step 3: RecoverVault (the -d before the address, as in the runbook).
    tip_before = node.call(A + "GetVault", chain(org, bad))
    r = node.call(A + "RecoverVault", chain(org, bad))
    assert r["success"] is True, r
    assert r["status"] == "VAULT_STATUS_ACTIVE", r
    assert r["finalHeight"] == "3", r
    assert r["finalStateRoot"] == tip_before["stateRoot"], (r, tip_before)
    assert vault_status(node, org, bad) == "VAULT_STATUS_ACTIVE"
    assert read(node, org, bad, "user:1")["value"] == b64("affected-1")
    assert node.call(HEALTH, chain(org, bad))["status"] == "HEALTH_STATUS_HEALTHY"
    # Writes work again.
    write(node, org, bad, [set_op("after", "recovery")])
    # Then CheckIntegrity (full) on the node.
    for v in (bad, good):
        c = node.call(A + "CheckIntegrity", dict(chain(org, v), full_check=True))
        assert c["healthy"] is True, c
    text = node.metrics()
    assert series(text, "ledger_vault_recovery_attempts_total", "") == 1, text
    assert series(text, "ledger_vault_recovery_failures_total", "") == 0, text
    assert series(text, "ledger_vaults", '{status="active"}') == 2, text
    assert series(text, "ledger_vaults", '{status="diverged"}') == 0, text

    # A healthy vault: nothing to recover without force; force runs the check.
    r = node.call(A + "RecoverVault", chain(org, good))
    assert r["success"] is True and "nothing to recover" in r["message"], r
    assert series(node.metrics(), "ledger_vault_recovery_attempts_total", "") == 1
    r = node.call(A + "RecoverVault", dict(chain(org, good), force=True))
    assert r["success"] is True and "verified" in r["message"], r
    assert r["status"] == "VAULT_STATUS_ACTIVE"
    assert series(node.metrics(), "ledger_vault_recovery_attempts_total", "") == 2

    # Unknown vault.
    code, _ = err(node, A + "RecoverVault", chain(org, "999"))
    assert code == "NotFound"
    code, _ = err(node, A + "SimulateDivergence", chain(org, "999"))
    assert code == "NotFound"


def test_simulate_divergence_needs_the_flag(ledger_factory):
    node = ledger_factory()
    org, (bad, _) = populate(node)
    code, msg = err(node, A + "SimulateDivergence", chain(org, bad))
    assert code == "FailedPrecondition", (code, msg)
    assert "--allow-fault-injection" in msg, msg
    assert vault_status(node, org, bad) == "VAULT_STATUS_ACTIVE"
    assert "determinism_bug" in grep_determinism(node)


def wait_tip(node, org, vault, tip, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        c = Client(node.addr)
        try:
            t = c.tip(org, vault)
        finally:
            c.close()
        if t == tip or time.monotonic() > deadline:
            return t
        time.sleep(0.1)


def test_divergence_is_local_to_one_node(cluster_factory):
    cl = cluster_factory(3, extra_args=("--allow-fault-injection",))
    cl.wait_formed(voters=3)
    leader = cl.leader()
    c = Client(leader.addr)
    org = c.create_org("acme")
    vault = c.create_vault(org, "v")
    for i in range(3):
        c.write(org, vault, "k%d" % i, b"v%d" % i)
    tip = c.tip(org, vault)
    c.close()
    org, vault = str(org), str(vault)
    for node in cl.nodes:
        assert wait_tip(node, int(org), int(vault), tip) == tip, node.addr
    victim = [n for n in cl.nodes if n is not leader][0]
    others = [n for n in cl.nodes if n is not victim]

    r = victim.call(A + "SimulateDivergence", chain(org, vault))
    assert r["status"] == "VAULT_STATUS_DIVERGED", r
    assert vault_status(victim, org, vault) == "VAULT_STATUS_DIVERGED"
    code, _ = err(victim, READ, dict(chain(org, vault), key="k1"))
    assert code == "Unavailable"
    assert series(grep_determinism(victim), "ledger_determinism_bug_total",
                  '{organization="%s",vault="%s"}' % (org, vault)) == 1
    for n in others:
        assert vault_status(n, org, vault) == "VAULT_STATUS_ACTIVE", n.addr
        assert read(n, org, vault, "k1")["value"] == b64("v1"), n.addr
        assert n.call(HEALTH, chain(org, vault))["status"] == "HEALTH_STATUS_HEALTHY"
        assert series(grep_determinism(n), "ledger_determinism_bug_total",
                      '{organization="%s",vault="%s"}' % (org, vault)) is None

    # The cluster keeps accepting writes to the vault (through the leader).
    c = Client(leader.addr)
    c.write(int(org), int(vault), "k9", b"v9")
    tip = c.tip(int(org), int(vault))
    c.close()
    for n in others:
        assert wait_tip(n, int(org), int(vault), tip) == tip
        assert read(n, org, vault, "k9")["value"] == b64("v9")
    # The victim still applies the log (docs/storage.md §5: its copy stays
    # consistent with the log) and, once recovered, matches the healthy replicas.
    deadline = time.monotonic() + 30
    while int(victim.call(A + "GetVault", chain(org, vault)).get("height", "0")) < tip[0]:
        assert time.monotonic() < deadline, "victim did not apply the last write"
        time.sleep(0.1)
    r = victim.call(A + "RecoverVault", chain(org, vault))
    assert r["success"] is True and r["status"] == "VAULT_STATUS_ACTIVE", r
    assert read(victim, org, vault, "k9")["value"] == b64("v9")
    ref = others[0].call(A + "GetVault", chain(org, vault))
    mine = victim.call(A + "GetVault", chain(org, vault))
    assert mine["stateRoot"] == ref["stateRoot"] and mine["height"] == ref["height"], (mine, ref)
    assert vault_status(victim, org, vault) == "VAULT_STATUS_ACTIVE"


def test_recover_vault_fails_on_damaged_local_data(ledger_factory):
    """A copy the local data cannot rebuild (a transaction's bytes damaged on
    disk) stays DIVERGED and RecoverVault tells the operator to resync."""
    node = ledger_factory(extra_args=("--allow-fault-injection",))
    org, (bad, good) = populate(node)
    write(node, org, bad, [set_op("victim", "PAYLOAD-TO-DAMAGE-0123456789")])
    node.stop()
    path = pathlib.Path(node.data_dir) / "state" / "data.mdb"
    data = path.read_bytes()
    assert data.count(b"PAYLOAD-TO-DAMAGE-0123456789") >= 1
    path.write_bytes(data.replace(b"PAYLOAD-TO-DAMAGE-0123456789",
                                  b"PAYLOAD-TO-DAMAGE-9876543210"))
    node.start()

    node.call(A + "SimulateDivergence", chain(org, bad))
    r = node.call(A + "RecoverVault", chain(org, bad))
    assert r.get("success", False) is False, r
    assert r["status"] == "VAULT_STATUS_DIVERGED", r
    assert "resync this node from a healthy replica" in r["message"], r
    assert "--join" in r["message"] and "LeaveCluster" in r["message"], r
    assert "tx_root_mismatch" in r["message"] or "leaf_mismatch" in r["message"], r
    assert vault_status(node, org, bad) == "VAULT_STATUS_DIVERGED"
    code, _ = err(node, READ, dict(chain(org, bad), key="user:1"))
    assert code == "Unavailable"
    text = node.metrics()
    assert series(text, "ledger_vault_recovery_attempts_total", "") == 1, text
    assert series(text, "ledger_vault_recovery_failures_total", "") == 1, text
    # The other vault is untouched.
    assert read(node, org, good, "user:1")["value"] == b64("other-1")

    # force on a damaged chain that was never marked finds it too and marks it.
    r = node.call(A + "RecoverVault", dict(chain(org, bad), force=True))
    assert r.get("success", False) is False and r["status"] == "VAULT_STATUS_DIVERGED", r
    assert series(node.metrics(), "ledger_vault_recovery_failures_total", "") == 2
