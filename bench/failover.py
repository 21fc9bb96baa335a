#!/usr/bin/python3
"""Leader failover under write load on a 3-node cluster (called by bench/cluster.sh).

Starts three `inferadb-ledger --cluster 3 --peers ...` nodes on free 127.0.0.1
ports (data in a temp dir, --metrics off, INFERADB__LEDGER__ENV_FILE= so no
env file is read), waits until every node reports 3 voters and the same
leader, creates an organization and a vault, then for each round:

  * 4 writer threads send WriteService/Write (1 set_entity, 2 s deadline) to
    the nodes (writer i starts on node i % 3 and moves to the next node after
    a failed call);
  * after 2 s of load the leader is killed with SIGKILL;
  * measured: gap = first acknowledged write among the calls sent after the
    kill minus the last write acknowledged before it (calls in flight at the
    kill and answered after it, mostly replies the old leader had already
    sent, are counted apart as "drained"); election = kill until both
    survivors report the same new leader (GetClusterInfo polled every 50 ms);
  * the writers stop 1 s after writes resumed (at most 15 s after the kill),
    the killed node is restarted on its data dir and the script waits until
    all three nodes report 3 voters again.

Message classes come from the descriptor set the build writes
(BUILD/gen/descriptors.pb), as tests/integration/cluster_api.py does.
Progress goes to stderr; the last stdout line is one JSON object.

  /usr/bin/python3 bench/failover.py [--build build] [--rounds 3] [--keep DIR]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

WRITERS = 4
LOAD_BEFORE_KILL_S = 2.0
AFTER_RESUME_S = 1.0
MAX_WAIT_AFTER_KILL_S = 15.0
FORM_TIMEOUT_S = 60.0

_factory = None
_pool = None


def load_descriptors(path):
    global _pool, _factory
    with open(path, "rb") as f:
        fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    _pool = descriptor_pool.DescriptorPool()
    for fd in fds.file:
        _pool.Add(fd)
    _factory = message_factory.MessageFactory(_pool)


def msg(name):
    return _factory.GetPrototype(_pool.FindMessageTypeByName("ledger.v1." + name))


def log(text):
    sys.stderr.write("failover.py: %s\n" % text)
    sys.stderr.flush()


class Client:
    def __init__(self, addr):
        self.addr = addr
        self.ch = grpc.insecure_channel(addr)

    def close(self):
        self.ch.close()

    def call(self, service, method, req_name, resp_name, timeout, **fields):
        stub = self.ch.unary_unary("/ledger.v1.%s/%s" % (service, method),
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=msg(resp_name).FromString)
        return stub(msg(req_name)(**fields), timeout=timeout)

    def cluster_info(self, timeout=2):
        return self.call("AdminService", "GetClusterInfo", "GetClusterInfoRequest",
                         "GetClusterInfoResponse", timeout)

    def write(self, org, vault, key, value, client, timeout=2):
        op = msg("Operation")(set_entity=msg("SetEntity")(key=key, value=value))
        r = self.call("WriteService", "Write", "WriteRequest", "WriteResponse", timeout,
                      organization_slug=msg("OrganizationSlug")(id=org),
                      vault=msg("VaultSlug")(slug=vault),
                      client_id=msg("ClientId")(id=client), operations=[op])
        return r.WhichOneof("result") == "success"


def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Node:
    def __init__(self, binary, workdir, name, addr, peers):
        self.name = name
        self.addr = addr
        self.data = os.path.join(workdir, name, "data")
        self.log_path = os.path.join(workdir, name, "server.log")
        os.makedirs(self.data, exist_ok=True)
        self.argv = [binary, "--cluster", "3", "--peers", peers, "--peers-poll", "0.2",
                     "--data", self.data, "--listen", addr, "--metrics", "off"]
        self.env = dict(os.environ, INFERADB__LEDGER__ENV_FILE="")
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as lf:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=lf,
                                         stderr=subprocess.STDOUT, env=self.env)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self, timeout=10):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def wait_formed(nodes, clients, timeout=FORM_TIMEOUT_S):
    """Until every node reports 3 voters and the same leader; returns the leader Node."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        for n in nodes:
            if not n.alive():
                raise RuntimeError("%s exited (log: %s)" % (n.name, n.log_path))
        try:
            infos = [clients[n.addr].cluster_info() for n in nodes]
            leaders = {i.leader_id.id if i.HasField("leader_id") else None for i in infos}
            voter = _pool.FindEnumTypeByName("ledger.v1.NodeRole").values_by_name[
                "NODE_ROLE_VOTER"].number
            voters = [sum(1 for m in i.members if m.role == voter) for i in infos]
            if len(leaders) == 1 and None not in leaders and all(v == 3 for v in voters):
                addr = [m.address for m in infos[0].members if m.is_leader]
                for n in nodes:
                    if addr and n.addr == addr[0]:
                        return n
                last = "leader address %r not among the nodes" % addr
            else:
                last = "leaders %s voters %s" % (leaders, voters)
        except grpc.RpcError as e:
            last = "%s: %s" % (e.code(), e.details())
        time.sleep(0.2)
    raise RuntimeError("cluster not formed after %.0f s: %s" % (timeout, last))


def new_leader_agreed(survivors, clients, old_leader_id):
    try:
        ids = set()
        for n in survivors:
            i = clients[n.addr].cluster_info(timeout=0.5)
            ids.add(i.leader_id.id if i.HasField("leader_id") else None)
        return len(ids) == 1 and None not in ids and old_leader_id not in ids
    except grpc.RpcError:
        return False


def one_round(rnd, nodes, clients, org, vault):
    leader = wait_formed(nodes, clients)
    old_id = clients[leader.addr].cluster_info().leader_id.id
    survivors = [n for n in nodes if n is not leader]
    acks = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(idx):
        own = {n.addr: Client(n.addr) for n in nodes}
        pos = idx % len(nodes)
        k = 0
        while not stop.is_set():
            k += 1
            c = own[nodes[pos].addr]
            t_start = time.monotonic()
            try:
                ok = c.write(org, vault, "f%d-w%d-%d" % (rnd, idx, k), b"v" * 100,
                             "failover-%d-%d" % (rnd, idx))
            except grpc.RpcError:
                ok = False
            if ok:
                with lock:
                    acks.append((t_start, time.monotonic()))
            else:
                pos = (pos + 1) % len(nodes)
                time.sleep(0.01)
        for c in own.values():
            c.close()

    # Daemon threads: a SIGTERM (SystemExit in the main thread) must not wait for them.
    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(WRITERS)]
    for t in threads:
        t.start()
    try:
        time.sleep(LOAD_BEFORE_KILL_S)
        t_kill = time.monotonic()
        leader.kill9()
        election = None
        resumed_at = None
        while time.monotonic() - t_kill < MAX_WAIT_AFTER_KILL_S:
            now = time.monotonic()
            if election is None and new_leader_agreed(survivors, clients, old_id):
                election = time.monotonic() - t_kill
            with lock:
                if resumed_at is None and any(a[0] > t_kill for a in acks):
                    resumed_at = now
            if election is not None and resumed_at is not None and \
                    now - resumed_at >= AFTER_RESUME_S:
                break
            time.sleep(0.05)
    finally:
        stop.set()
    for t in threads:
        t.join()
    # acks are (call start, ack received). Calls started before the kill and
    # answered just after it are mostly the old leader's replies still in
    # flight (already committed): they are counted apart ("drained"), and
    # "after" means calls started after the kill, so the gap is not hidden.
    before = [end for start, end in acks if end <= t_kill]
    drained = [end for start, end in acks if start <= t_kill < end]
    after = [end for start, end in acks if start > t_kill]
    gap = (min(after) - max(before)) if before and after else None
    res = {"round": rnd, "killed": leader.name, "gap_s": gap and round(gap, 3),
           "kill_to_first_ack_s": round(min(after) - t_kill, 3) if after else None,
           "election_s": election and round(election, 3),
           "acks_before": len(before), "acks_drained": len(drained),
           "acks_after": len(after)}
    log("round %d: killed leader %s; gap %s s, kill->first ack %s s, new leader agreed "
        "after %s s (%d acks before, %d in flight at the kill, %d after)" % (
            rnd, leader.name, res["gap_s"], res["kill_to_first_ack_s"], res["election_s"],
            len(before), len(drained), len(after)))
    leader.start()
    wait_formed(nodes, clients)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", help="work directory to use and keep (default: a temp dir, "
                    "removed at exit)")
    args = ap.parse_args()
    binary = os.path.join(args.build, "inferadb-ledger")
    load_descriptors(os.path.join(args.build, "gen", "descriptors.pb"))

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    workdir = args.keep or tempfile.mkdtemp(prefix="ldg-failover.")
    os.makedirs(workdir, exist_ok=True)
    ports = free_ports(3)
    addrs = ["127.0.0.1:%d" % p for p in ports]
    peers = ",".join(addrs)
    nodes = [Node(binary, workdir, "n%d" % i, addrs[i], peers) for i in range(3)]
    clients = {a: Client(a) for a in addrs}
    rounds = []
    try:
        for n in nodes:
            n.start()
        leader = wait_formed(nodes, clients)
        lc = clients[leader.addr]
        org = lc.call("AdminService", "CreateOrganization", "CreateOrganizationRequest",
                      "CreateOrganizationResponse", 10, name="failover").slug.id
        vault = lc.call("AdminService", "CreateVault", "CreateVaultRequest",
                        "CreateVaultResponse", 10,
                        organization_slug=msg("OrganizationSlug")(id=org),
                        name="failover").vault.slug
        for rnd in range(1, args.rounds + 1):
            rounds.append(one_round(rnd, nodes, clients, org, vault))
    except RuntimeError as e:
        log("failed: %s" % e)
    finally:
        for c in clients.values():
            c.close()
        for n in nodes:
            n.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    gaps = [r["gap_s"] for r in rounds if r["gap_s"] is not None]
    out = {"rounds": rounds, "requested": args.rounds,
           "max_gap_s": max(gaps) if gaps else None,
           "mean_gap_s": round(sum(gaps) / len(gaps), 3) if gaps else None}
    print(json.dumps(out))
    return 0 if len(gaps) == args.rounds else 1


if __name__ == "__main__":
    sys.exit(main())
