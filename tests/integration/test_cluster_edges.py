"""Cluster edge cases (ISSUE 4 follow-ups) against real processes:

- forged/truncated Raft preambles from raw sockets on a node's shared port;
- AdminService calls sent to a follower under --admin-token-file are
  forwarded with the caller's `authorization` metadata;
- writes never hang past their deadline when quorum is lost (on the
  survivor that was leader, and on a follower whose leader died);
- --peers given as DNS names (localhost:PORT entries; one name whose
  A records are several loopback nodes, in a private mount namespace)."""

import os
import shutil
import socket
import struct
import subprocess
import time
import uuid
import hashlib
import hmac

import grpc
import pytest

import cluster_api
import conftest
import h2raw
from cluster_api import Client, msg

SECRET = "0123456789abcdef0123456789abcdef"
MAGIC = b"LDGR"
ADDR_LEN = 128
PREAMBLE_LEN = 4 + 1 + 16 + 8 + ADDR_LEN + 16 + 32


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (AssertionError, grpc.RpcError) as e:
            last = e
        time.sleep(0.1)
    raise AssertionError("%s: not true after %.0f s (last: %r)" % (what, timeout, last))


# --- 1. forged preambles on the real port -----------------------------------

def preamble(cluster_id, node_id=999, addr=b"127.0.0.1:9", secret=SECRET, version=1,
             raw_addr=None):
    """SPEC §3.6 preamble built independently of the C code."""
    field = raw_addr if raw_addr is not None else addr.ljust(ADDR_LEN, b"\0")
    assert len(field) == ADDR_LEN
    body = MAGIC + bytes([version]) + cluster_id + struct.pack(">Q", node_id) + field + \
        os.urandom(16)
    mac = hmac.new(secret.encode(), body, hashlib.sha256).digest() if secret else bytes(32)
    return body + mac


def send_raw(addr, data, eof=True, timeout=10):
    """Send bytes, optionally half-close; returns (closed_by_server, bytes received)."""
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    try:
        if data:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                return True, b""

        if eof:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:  # already reset by the server (unread bytes)
                return True, b""
        return h2raw.wait_socket_closed(s, timeout)
    finally:
        s.close()


def test_forged_preambles_are_refused_on_the_real_port(cluster_factory, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n")
    cl = cluster_factory(3, env={"INFERADB__LEDGER__CLUSTER_SECRET_FILE": str(secret)})
    cl.wait_formed(voters=3)
    node = cl.nodes[1]
    cid = uuid.UUID(cl.info(node)["clusterId"]).bytes
    other_cid = bytes([cid[0] ^ 0xFF]) + cid[1:]

    def log_count(text):
        return node.log_text().count("refusing peer connection: " + text)

    # Positive control: our independent encoding is right (accept byte).
    host, port = node.addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(preamble(cid))
    assert s.recv(1) == b"\x01"
    s.close()

    cases = [
        ("different cluster id", preamble(other_cid)),
        ("bad HMAC", preamble(cid, secret="fedcba9876543210fedcba9876543210")),
        ("bad HMAC", preamble(cid, secret=None)),
        ("bad HMAC", preamble(cid)[:-1] + b"\x00"),
        ("connection closed inside the preamble", preamble(cid)[:100]),
        ("connection closed inside the preamble", MAGIC),
        ("unsupported preamble version", preamble(cid, version=9)),
        # an address field without NUL, and more "address" behind it
        ("bad sender address", preamble(cid, raw_addr=b"A" * ADDR_LEN) + b"A" * 4096),
    ]
    before = {why: log_count(why) for why, _ in cases}
    for why, data in cases:
        closed, got = send_raw(node.addr, data)
        assert closed, "connection left open after %s" % why
        assert got == b"", "%s: server sent %r" % (why, got)
    for why in before:
        n = sum(1 for w, _ in cases if w == why)
        wait_for(lambda: log_count(why) >= before[why] + n, 10, "%d x '%s' logged" % (n, why))
    # Wrong magic is not the transport's: closed by the listener.
    closed, got = send_raw(node.addr, b"LDGX" + preamble(cid)[4:])
    assert closed and got == b""

    # The node keeps serving gRPC and the cluster keeps working.
    assert node.health_check() == conftest.SERVING
    cl.wait_formed(voters=3)
    leader = cl.leader()
    cluster_api.write_api_available(leader.addr) or pytest.skip("no WriteService/Write")
    c = Client(node.addr)
    org = c.create_org("after-fuzz")
    assert org
    c.close()




# --- 2. forwarded AdminService calls keep the caller's authorization --------

TOKEN = "s3cr3t-admin-token"


def admin_call(addr, method, req, resp, token=None, timeout=10, **fields):
    ch = grpc.insecure_channel(addr)
    try:
        stub = ch.unary_unary("/ledger.v1.AdminService/" + method,
                              request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=msg(resp).FromString)
        md = [("authorization", token)] if token is not None else None
        return stub(msg(req)(**fields), timeout=timeout, metadata=md)
    finally:
        ch.close()


def test_admin_call_on_follower_is_forwarded_with_authorization(cluster_factory, tmp_path):
    tok = tmp_path / "admin-token"
    tok.write_text(TOKEN + "\n")
    cl = cluster_factory(3, env={"INFERADB__LEDGER__ADMIN_TOKEN_FILE": str(tok)})
    bearer = "Bearer " + TOKEN

    def formed():
        infos = [admin_call(n.addr, "GetNodeInfo", "GetNodeInfoRequest", "GetNodeInfoResponse",
                            bearer) for n in cl.nodes]
        leaders = {i.leader_id.id for i in infos}
        if len(leaders) != 1 or "" in leaders:
            return None
        ci = admin_call(cl.nodes[0].addr, "GetClusterInfo", "GetClusterInfoRequest",
                        "GetClusterInfoResponse", bearer)
        voters = [m for m in ci.members if m.role == 1]
        return infos if len(voters) == 3 else None

    infos = wait_for(formed, 30, "3-voter cluster with one leader")
    follower = next(n for n, i in zip(cl.nodes, infos) if not i.is_leader)

    def create(token, name):
        return admin_call(follower.addr, "CreateOrganization", "CreateOrganizationRequest",
                          "CreateOrganizationResponse", token, name=name)

    # The right token: the follower forwards to the leader, which checks it too.
    r = create(bearer, "acme")
    assert r.slug.id > 0
    # Without the token, a wrong one, or not in the Bearer form: refused.
    for token, name in ((None, "no-token"), ("Bearer wrong-token", "wrong"),
                        ("Basic " + TOKEN, "not-bearer"), (TOKEN, "no-scheme")):
        with pytest.raises(grpc.RpcError) as e:
            create(token, name)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED, (token, e.value.details())
    # Other metadata does not disturb forwarding; grpc-timeout is recomputed.
    ch = grpc.insecure_channel(follower.addr)
    stub = ch.unary_unary("/ledger.v1.AdminService/CreateOrganization",
                          request_serializer=lambda m: m.SerializeToString(),
                          response_deserializer=msg("CreateOrganizationResponse").FromString)
    r2 = stub(msg("CreateOrganizationRequest")(name="acme-2"), timeout=10,
              metadata=[("authorization", bearer), ("x-request-id", "abc-123")])
    ch.close()
    assert r2.slug.id > 0 and r2.slug.id != r.slug.id


# --- 3. writes never hang past their deadline --------------------------------

def raw_write(addr, org, vault, key, deadline_ms=2000, wait_s=8):
    """WriteService/Write over a hand-made HTTP/2 stream with grpc-timeout, so
    the time measured is the server's answer, not a client-side deadline.
    Returns (grpc status, message, seconds)."""
    op = msg("Operation")(set_entity=msg("SetEntity")(key=key, value=b"v"))
    req = msg("WriteRequest")(organization_slug=msg("OrganizationSlug")(id=org),
                              vault=msg("VaultSlug")(slug=vault),
                              client_id=msg("ClientId")(id="deadline"), operations=[op])
    c = h2raw.H2Conn(addr)
    try:
        t0 = time.monotonic()
        c.send(c.request(1, "/ledger.v1.WriteService/Write",
                         h2raw.grpc_frame(req.SerializeToString()),
                         extra_headers=[("grpc-timeout", "%dm" % deadline_ms)]))
        st = c.wait_stream(1, timeout=wait_s)
        return st.grpc_status, st.grpc_message, time.monotonic() - t0
    finally:
        c.close()


def write_eventually(node, org, vault, key, timeout=30):
    c = Client(node.addr)
    try:
        return wait_for(lambda: c.write(org, vault, key, b"ok", client="deadline-ok", timeout=3),
                        timeout, "a write through %s succeeds" % node.name)
    finally:
        c.close()


def assert_not_hung(addr, org, vault, key):
    code, message, took = raw_write(addr, org, vault, key)
    print("write to %s without quorum: status %s (%s) after %.2f s" % (addr, code, message, took))
    assert code in (4, 14), (code, message)  # DEADLINE_EXCEEDED or UNAVAILABLE
    assert took < 2.5, took


def test_writes_do_not_hang_past_deadline_without_quorum(cluster_factory):
    cl = cluster_factory(3)
    cl.wait_formed(voters=3)
    leader = cl.leader()
    if not cluster_api.write_api_available(leader.addr):
        pytest.skip("WriteService/Write is not implemented in this build")
    c = Client(leader.addr)
    org = c.create_org("acme")
    vault = c.create_vault(org, "main")
    c.write(org, vault, "before", b"x")
    c.close()
    followers = [n for n in cl.nodes if n is not leader]

    # Both followers die: the leader can append but never commit.
    for f in followers:
        f.kill9()
    assert_not_hung(leader.addr, org, vault, "a1")
    # ... and once it has noticed (stepped down or not), still no hang.
    time.sleep(1.0)
    assert_not_hung(leader.addr, org, vault, "a2")

    # Quorum back: writes succeed again.
    followers[0].start()
    write_eventually(leader, org, vault, "b1")
    live = [leader, followers[0]]
    new_leader = cl.leader(nodes=live)
    survivor = next(n for n in live if n is not new_leader)

    # The leader dies too (followers[1] still down): the survivor is a
    # follower whose leader is gone; forwarded or refused, never hung.
    new_leader.kill9()
    assert_not_hung(survivor.addr, org, vault, "c1")
    time.sleep(1.0)
    assert_not_hung(survivor.addr, org, vault, "c2")

    # Restart both: the cluster heals and accepts writes everywhere.
    new_leader.start(wait=False)
    followers[1].start(wait=False)
    new_leader.wait_ready(timeout=30)
    followers[1].wait_ready(timeout=30)
    cl.wait_formed(voters=3)
    for n in cl.nodes:
        write_eventually(n, org, vault, "d-" + n.name)


# --- 4. --peers as DNS names ----------------------------------------------------

def test_peers_as_localhost_names(cluster_factory):
    """PEERS entries `localhost:PORT` are resolved with getaddrinfo."""
    cl = cluster_factory(3, start=False)
    names = ",".join("localhost:%d" % n.port for n in cl.nodes)
    for n in cl.nodes:
        n.env["INFERADB__LEDGER__PEERS"] = names
    cl.start()
    info = cl.wait_formed(voters=3)
    assert sorted(m["address"] for m in info["members"]) == sorted(n.addr for n in cl.nodes)
    ids = {m["nodeId"]["id"] for m in info["members"]}
    assert len(ids) == 3


HOSTNAME = "ledger-peers.test"


def _namespace_hosts_usable(hosts_file):
    """True when `unshare -m` + a bind mount over /etc/hosts works here (root,
    CAP_SYS_ADMIN) and the name resolves to the three addresses inside."""
    if shutil.which("unshare") is None:
        return False, "no unshare(1)"
    try:
        r = subprocess.run(["unshare", "-m", "sh", "-c",
                            'mount --bind "$0" /etc/hosts && getent ahostsv4 ' + HOSTNAME,
                            hosts_file], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    if r.returncode != 0:
        return False, "unshare -m / mount --bind failed: %s" % r.stderr.strip()
    found = {line.split()[0] for line in r.stdout.splitlines() if line.strip()}
    if found != {"127.0.0.2", "127.0.0.3", "127.0.0.4"}:
        return False, "name resolved to %s" % sorted(found)
    return True, ""


def test_peers_as_one_dns_name_with_several_a_records(cluster_factory, tmp_path):
    """One name whose A records are the three nodes (127.0.0.2-4, same port).
    The name exists only inside each node's private mount namespace, where a
    hosts file is bind-mounted over /etc/hosts; the machine's /etc/hosts is
    not touched. Skipped where that is not possible (not root, no
    unshare)."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n" + "".join(
        "127.0.0.%d %s\n" % (i, HOSTNAME) for i in (2, 3, 4)))
    ok, why = _namespace_hosts_usable(str(hosts))
    if not ok:
        pytest.skip("cannot give the nodes a private /etc/hosts: " + why)
    port = conftest.free_port()
    for i in (2, 3, 4):  # the same port must be free on every loopback address
        s = socket.socket()
        try:
            s.bind(("127.0.0.%d" % i, port))
        except OSError as e:
            pytest.skip("port %d not free on 127.0.0.%d: %s" % (port, i, e))
        finally:
            s.close()
    wrapper = tmp_path / "ledger-in-ns"
    wrapper.write_text("#!/bin/sh\n"
                       "exec unshare -m sh -c 'mount --bind \"$0\" /etc/hosts && "
                       "exec \"$@\"' %s %s \"$@\"\n" % (hosts, conftest.LEDGER_BIN))
    wrapper.chmod(0o755)
    cl = cluster_factory(3, start=False)
    for i, n in enumerate(cl.nodes):
        n.bin = str(wrapper)
        n.port = port
        n.addr = "127.0.0.%d:%d" % (i + 2, port)
        n.env["INFERADB__LEDGER__PEERS"] = HOSTNAME + ":%d" % port
    for n in cl.nodes:
        n.start(wait=False)
    for n in cl.nodes:  # wait_ready probes 127.0.0.1; probe the node's own address
        wait_for(lambda: n.proc.poll() is None and n.health_check() == conftest.SERVING, 30,
                 "%s serving" % n.name)
    info = cl.wait_formed(voters=3)
    assert sorted(m["address"] for m in info["members"]) == sorted(n.addr for n in cl.nodes)
