"""Cluster formation, join, leave, failover and identity checks on real
processes (SPEC §3, runbook "Node Recovery"). Every node has its own port
pair on 127.0.0.1; no ledger writes are needed here (see
test_cluster_writes.py for those)."""

import os
import re
import subprocess
import time

import pytest

from conftest import LedgerStartError

A = "ledger.v1.AdminService/"


def voters(info):
    return sorted(m["nodeId"]["id"] for m in info.get("members", [])
                  if m.get("role") == "NODE_ROLE_VOTER")


def members(info):
    return {m["nodeId"]["id"]: m.get("role") for m in info.get("members", [])}


def grpc_error(node, method, body):
    r = node.grpcurl(method, data=body)
    assert r.returncode != 0, "%s unexpectedly succeeded: %s" % (method, r.stdout)
    code = re.search(r"Code: (\w+)", r.stderr)
    msg = re.search(r"Message: (.*)", r.stderr)
    return code.group(1), msg.group(1) if msg else ""


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except AssertionError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError("timed out after %.0f s waiting for %s (last: %r)" % (timeout, what, last))


def node_id(cl, node):
    return cl.node_info(node)["nodeId"]["id"]


@pytest.mark.parametrize("peers", ["env", "json"])
def test_three_nodes_form_one_cluster_and_late_node_joins(cluster_factory, peers):
    cl = cluster_factory(3, peers=peers)
    info = cl.wait_formed(voters=3)
    ids = {node_id(cl, n) for n in cl.nodes}
    assert set(members(info)) == ids
    cid = info["clusterId"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        cid)
    for n in cl.nodes:
        ni = cl.node_info(n)
        assert ni["clusterId"] == cid and ni["isClusterMember"] is True
        assert ni["role"] == "NODE_ROLE_VOTER"
    # Exactly one node bootstrapped: the one with the lowest node id.
    boots = [n for n in cl.nodes if "bootstrapped a new one-node cluster" in n.log_text()]
    assert len(boots) == 1
    assert node_id(cl, boots[0]) == str(min(int(i) for i in ids))
    for n in cl.nodes:
        if n is not boots[0]:
            assert "joined cluster %s" % cid in n.log_text()

    # A late --cluster 3 node with the same PEERS joins instead of bootstrapping;
    # the cluster already has 3 voters, so it stays a learner (standby).
    late = cl.add_node("late", mode_args=("--cluster", "3"))
    late.start(wait=False)
    late.wait_ready(timeout=30)
    lid = node_id(cl, late)
    wait_for(lambda: members(cl.info(cl.nodes[0])).get(lid) == "NODE_ROLE_LEARNER", 20,
             "late node as learner")
    assert cl.node_info(late)["clusterId"] == cid
    assert "bootstrapped a new" not in late.log_text()
    assert "joined cluster %s" % cid in late.log_text()
    assert len(voters(cl.info(cl.nodes[0]))) == 3


def test_peers_timeout_exits_with_clear_message(ledger_factory, tmp_path):
    from conftest import free_port
    node = ledger_factory("lonely", start=False, mode_args=("--cluster", "3"),
                          extra_args=["--peers", "127.0.0.1:%d,127.0.0.1:%d" % (
                              free_port(), free_port()),
                              "--peers-poll", "0.2", "--peers-timeout", "1.5"],
                          env={"INFERADB__LEDGER__ENV_FILE": ""})
    node.start(wait=False)
    rc = node.proc.wait(timeout=20)
    assert rc != 0
    log = node.log_text()
    assert "coordinated bootstrap through --peers" in log
    assert "gave up after PEERS_TIMEOUT" in log
    assert "only 1 of 3 nodes answered" in log


def test_join_mode_needs_a_member(ledger_factory):
    # --join against a node that is itself only waiting: no member -> gives up.
    a = ledger_factory("a", start=False, mode_args=("--cluster", "3"),
                       env={"INFERADB__LEDGER__ENV_FILE": ""})
    a.extra_args += ["--peers", a.addr, "--peers-timeout", "30"]
    a.start(wait=False)
    j = ledger_factory("j", start=False, mode_args=("--join",),
                       extra_args=["--peers", a.addr, "--peers-poll", "0.2",
                                   "--peers-timeout", "1.5"],
                       env={"INFERADB__LEDGER__ENV_FILE": ""})
    j.start(wait=False)
    assert j.proc.wait(timeout=20) != 0
    assert "joining a cluster through --peers" in j.log_text()
    assert "no reachable peer is a cluster member" in j.log_text()


def test_runbook_replace_failed_node(cluster_factory):
    """Runbook "Node Recovery" / single-node replacement: LeaveCluster the dead
    node's id on a healthy node, start a fresh node with JOIN=true
    PEERS=<healthy>, it ends a voter."""
    cl = cluster_factory(3)
    cl.wait_formed(voters=3)
    leader = cl.leader()
    dead = next(n for n in cl.nodes if n is not leader)
    dead_id = node_id(cl, dead)
    dead.kill9()
    healthy = next(n for n in cl.nodes if n is not dead and n is not leader)
    # The runbook's command with -d before the address (SPEC §4 note).
    r = healthy.grpcurl(A + "LeaveCluster", data={"node_id": {"id": dead_id}})
    assert r.returncode == 0, r.stderr
    assert '"success": true' in r.stdout
    info = cl.info(healthy)
    assert dead_id not in members(info) and len(voters(info)) == 2

    fresh = cl.add_node("fresh", mode_args=(), env={
        "INFERADB__LEDGER__JOIN": "true", "INFERADB__LEDGER__PEERS": healthy.addr})
    fresh.start(wait=False)
    fresh.wait_ready(timeout=30)
    fid = node_id(cl, fresh)
    live = [leader, healthy, fresh]
    info = cl.wait_formed(voters=3, nodes=live)
    assert fid in voters(info)
    assert cl.node_info(fresh)["clusterId"] == info["clusterId"]


def test_leave_leader_steps_down_first_and_last_voter_refused(cluster_factory):
    cl = cluster_factory(3)
    cl.wait_formed(voters=3)
    leader = cl.leader()
    lid = node_id(cl, leader)
    follower = next(n for n in cl.nodes if n is not leader)
    out = follower.call(A + "LeaveCluster", {"node_id": {"id": lid}})
    assert out["success"] is True
    rest = [n for n in cl.nodes if n is not leader]
    info = cl.wait_formed(voters=2, nodes=rest)
    assert lid not in members(info)
    assert info["leaderId"]["id"] != lid
    assert "transferring leadership first" in leader.log_text()

    # Remove one more voter, then the last one is refused.
    new_leader = cl.leader(nodes=rest)
    other = next(n for n in rest if n is not new_leader)
    assert new_leader.call(A + "LeaveCluster",
                           {"node_id": {"id": node_id(cl, other)}})["success"] is True
    code, msg = grpc_error(new_leader, A + "LeaveCluster",
                           {"node_id": {"id": node_id(cl, new_leader)}})
    assert code == "FailedPrecondition" and "last voter" in msg
    code, msg = grpc_error(new_leader, A + "LeaveCluster", {"node_id": {"id": "12345"}})
    assert code == "NotFound"


def test_removed_node_restart_logs_and_serves_no_writes(cluster_factory):
    cl = cluster_factory(3)
    cl.wait_formed(voters=3)
    leader = cl.leader()
    victim = next(n for n in cl.nodes if n is not leader)
    vid = node_id(cl, victim)
    victim.stop()
    assert leader.call(A + "LeaveCluster", {"node_id": {"id": vid}})["success"] is True
    victim.start(wait=False)
    rest = [n for n in cl.nodes if n is not victim]
    wait_for(lambda: "no longer a member" in victim.log_text() or
             "not a member of cluster" in victim.log_text(), 20, "removed-node log line")
    # The rest is undisturbed: same leader, two voters.
    info = cl.wait_formed(voters=2, nodes=rest)
    assert info["leaderId"]["id"] == node_id(cl, leader)
    # Writes through it are refused (not a member), never applied locally.
    code, msg = grpc_error(victim, A + "JoinCluster",
                           {"node_id": {"id": "42"}, "address": "127.0.0.1:1"})
    assert code == "Unavailable"


def test_kill9_leader_new_leader_elected_quickly(cluster_factory):
    cl = cluster_factory(3)
    cl.wait_formed(voters=3)
    leader = cl.leader()
    old = node_id(cl, leader)
    rest = [n for n in cl.nodes if n is not leader]
    t0 = time.monotonic()
    leader.kill9()
    new = cl.leader(nodes=rest, timeout=10)
    gap = time.monotonic() - t0
    print("leader election after kill -9: %.3f s" % gap)
    assert node_id(cl, new) != old
    assert gap < 10
    # The restarted old leader rejoins as a follower.
    leader.start(wait=False)
    leader.wait_ready(timeout=30)
    cl.wait_formed(voters=3)


def test_sigterm_on_leader_transfers_leadership(cluster_factory):
    cl = cluster_factory(3)
    cl.wait_formed(voters=3)
    leader = cl.leader()
    rest = [n for n in cl.nodes if n is not leader]
    t0 = time.monotonic()
    assert leader.stop() == 0
    new = cl.leader(nodes=rest, timeout=10)
    gap = time.monotonic() - t0
    print("leadership after SIGTERM of the leader: %.3f s" % gap)
    assert "stopping: transferring leadership" in leader.log_text()
    assert new is not leader


def test_foreign_cluster_is_refused(cluster_factory):
    """A node whose data was forced into a new cluster (--single on a member's
    data, runbook split-brain warning) refuses Raft traffic of its old cluster,
    and logs why."""
    cl = cluster_factory(3)
    cl.wait_formed(voters=3)
    leader = cl.leader()
    stray = next(n for n in cl.nodes if n is not leader)
    old_cid = cl.info(leader)["clusterId"]
    stray.stop()
    stray.mode_args = ["--single"]
    stray.start(wait=False)
    stray.wait_ready(timeout=30)
    ni = cl.node_info(stray)
    assert ni["clusterId"] != old_cid
    log = stray.log_text()
    assert "FORCING A NEW ONE-NODE CLUSTER" in log and old_cid in log
    assert len(cl.info(stray)["members"]) == 1
    # The old cluster's leader still lists it and keeps dialing it: refused.
    wait_for(lambda: "refusing peer connection: different cluster id" in stray.log_text(), 15,
             "refusal logged")
    assert old_cid in cl.info(leader)["clusterId"]
    assert len(cl.info(stray)["members"]) == 1


def test_single_on_member_data_rules(cluster_factory):
    cl = cluster_factory(3)
    cl.wait_formed(voters=3)
    late = cl.add_node("late", mode_args=("--cluster", "3"))
    late.start(wait=False)
    late.wait_ready(timeout=30)
    lid = node_id(cl, late)
    wait_for(lambda: members(cl.info(cl.nodes[0])).get(lid) == "NODE_ROLE_LEARNER", 20,
             "learner")
    for n in cl.nodes + [late]:
        n.stop()
    # A learner's data: refused without --force.
    late.mode_args = ["--single"]
    late.start(wait=False)
    assert late.proc.wait(timeout=20) != 0
    assert "--single refused: this node was not a voter" in late.log_text()
    late._finish()
    # A voter's data: forced into a one-node cluster with a new id.
    v = cl.nodes[0]
    v.mode_args = ["--single"]
    v.start()
    cid1 = cl.node_info(v)["clusterId"]
    assert len(cl.info(v)["members"]) == 1
    assert "FORCING A NEW ONE-NODE CLUSTER" in v.log_text()
    # --single again on a one-node cluster: plain restart, same cluster id.
    v.restart()
    assert cl.node_info(v)["clusterId"] == cid1
    assert v.log_text().count("FORCING A NEW ONE-NODE CLUSTER") == 1


def test_cluster_metrics_and_health(cluster_factory):
    cl = cluster_factory(3)
    cl.wait_formed(voters=3)
    leader = cl.leader()
    follower = next(n for n in cl.nodes if n is not leader)

    def metric(node, name):
        for line in node.metrics().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError("%s missing" % name)

    assert metric(leader, "ledger_is_leader") == 1
    assert metric(follower, "ledger_is_leader") == 0
    for n in (leader, follower):
        assert metric(n, "ledger_cluster_members") == 3
        assert metric(n, "ledger_cluster_quorum_status") == 1
        assert metric(n, "ledger_raft_term") >= 1
        assert metric(n, "ledger_raft_commit_index") >= 1
        assert metric(n, "ledger_raft_applied_index") >= 1
        assert metric(n, "ledger_leader_elections_total") >= 1
    h = follower.call("ledger.v1.HealthService/Check", {})
    assert h["status"] == "HEALTH_STATUS_HEALTHY"
    assert h["details"]["role"] == "follower"


def test_runbook_quorum_recovery_then_scale_back(cluster_factory):
    """Runbook "Quorum Recovery": 1 of 3 survives; --single on it forces a new
    one-node cluster from its data; restarted with CLUSTER=3 and PEERS it stays
    writable and admits two fresh nodes (empty data, same PEERS) as voters."""
    import shutil
    cl = cluster_factory(3)
    old = cl.wait_formed(voters=3)
    survivor = cl.nodes[0]
    for n in cl.nodes[1:]:
        n.kill9()
    survivor.stop()
    survivor.mode_args = ["--single"]
    survivor.start()
    forced = cl.info(survivor)
    assert forced["clusterId"] != old["clusterId"] and len(forced["members"]) == 1
    survivor.stop()
    survivor.mode_args = []  # back to INFERADB__LEDGER__CLUSTER=3 + PEERS
    survivor.env["INFERADB__LEDGER__CLUSTER"] = "3"
    for n in cl.nodes[1:]:
        shutil.rmtree(n.data_dir)
    survivor.start(wait=False)
    for n in cl.nodes[1:]:
        n.start(wait=False)
    for n in cl.nodes:
        n.wait_ready(timeout=30)
    info = cl.wait_formed(voters=3)
    assert info["clusterId"] == forced["clusterId"]
    assert "rejoining its cluster as a member" in survivor.log_text()


def test_cluster_secret_forms_and_refuses_a_wrong_secret(cluster_factory, tmp_path):
    good = tmp_path / "secret"
    good.write_text("0123456789abcdef0123456789abcdef\n")
    bad = tmp_path / "bad-secret"
    bad.write_text("fedcba9876543210fedcba9876543210\n")
    cl = cluster_factory(3, env={"INFERADB__LEDGER__CLUSTER_SECRET_FILE": str(good)})
    cl.wait_formed(voters=3)
    assert "no --cluster-secret-file" not in cl.nodes[0].log_text()
    # A node with another secret gets added by JoinCluster (gRPC), but its
    # Raft connections are refused both ways: it never catches up or votes.
    intruder = cl.add_node("intruder", env={
        "INFERADB__LEDGER__JOIN": "true", "INFERADB__LEDGER__PEERS": cl.nodes[0].addr,
        "INFERADB__LEDGER__CLUSTER_SECRET_FILE": str(bad)})
    intruder.start(wait=False)
    wait_for(lambda: "refusing peer connection: bad HMAC" in intruder.log_text(), 20,
             "HMAC refusal in the intruder's log")
    iid = node_id(cl, intruder)
    time.sleep(1)
    assert members(cl.info(cl.nodes[0])).get(iid) != "NODE_ROLE_VOTER"
    assert cl.node_info(intruder).get("leaderId") is None
