"""Server reflection (through tests/tools/grpcurl), the health services, the
gRPC deadline, and shutdown with calls in flight, against the real binary."""

import glob
import os
import re
import signal
import socket
import threading
import time

import grpc
import pytest

from conftest import REPO, LedgerNode, parse_json_stream
from h2raw import H2Conn, grpc_frame

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
SERVING, NOT_SERVING = b"\x08\x01", b"\x08\x02"
RUNBOOK_CHECK = '{"organization_slug": {"id": "1"}, "vault": {"slug": "7"}, "full_check": true}'


def proto_services():
    """Fully-qualified names of the services in proto/ledger/v1/*.proto."""
    out = set()
    for path in glob.glob(os.path.join(REPO, "proto", "ledger", "v1", "*.proto")):
        with open(path) as fh:
            text = fh.read()
        pkg = re.search(r"^package\s+([\w.]+);", text, re.M).group(1)
        out |= {"%s.%s" % (pkg, s) for s in re.findall(r"^service\s+(\w+)", text, re.M)}
    return out


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = LedgerNode(tmp_path_factory.mktemp("reflhealth"), name="reflhealth")
    n.start()
    yield n
    n.stop()


# --- reflection ---------------------------------------------------------------------

def test_list_shows_ledger_services_and_health(node):
    r = node.grpcurl("list")
    assert r.returncode == 0, r.stderr
    listed = set(r.stdout.split())
    expected = proto_services()
    assert len(expected) >= 5, expected  # Admin, Health, Read, Write, SystemDiscovery
    assert expected <= listed, expected - listed
    assert "grpc.health.v1.Health" in listed
    assert "grpc.reflection.v1.ServerReflection" in listed


def test_list_service_shows_its_methods(node):
    r = node.grpcurl("list", "ledger.v1.AdminService")
    assert r.returncode == 0, r.stderr
    methods = r.stdout.split()
    assert "ledger.v1.AdminService.CheckIntegrity" in methods
    assert all(m.startswith("ledger.v1.AdminService.") for m in methods)
    r = node.grpcurl("list", "grpc.health.v1.Health")
    assert r.stdout.split() == ["grpc.health.v1.Health.Check", "grpc.health.v1.Health.Watch"]


def test_describe_service_method_and_message(node):
    r = node.grpcurl("describe")
    assert r.returncode == 0, r.stderr
    for svc in proto_services() | {"grpc.health.v1.Health"}:
        assert "%s is a service:" % svc in r.stdout, svc
    r = node.grpcurl("describe", "ledger.v1.AdminService.CheckIntegrity")
    assert r.returncode == 0, r.stderr
    assert "rpc CheckIntegrity ( .ledger.v1.CheckIntegrityRequest )" in r.stdout
    r = node.grpcurl("describe", "ledger.v1.CheckIntegrityRequest")
    assert r.returncode == 0, r.stderr
    assert "ledger.v1.CheckIntegrityRequest is a message:" in r.stdout
    for field in ("organization_slug = 1", "vault = 2", "bool full_check = 3"):
        assert field in r.stdout, r.stdout
    r = node.grpcurl("describe", "grpc.health.v1.Health")
    assert "returns ( stream .grpc.health.v1.HealthCheckResponse )" in r.stdout
    r = node.grpcurl("describe", "ledger.v1.NoSuchThing")
    assert r.returncode != 0


def test_runbook_check_integrity_body_parses_and_reaches_the_handler(node):
    # An empty node has no organization 1: the handler answers NOT_FOUND.
    r = node.grpcurl("ledger.v1.AdminService/CheckIntegrity", data=RUNBOOK_CHECK)
    assert r.returncode == 69, (r.returncode, r.stdout, r.stderr)  # 64 + NOT_FOUND
    assert "Code: NotFound" in r.stderr
    assert "not found" in r.stderr
    # The body really was checked against the server's schema: a misspelled
    # field is refused by the client before any call.
    bad = RUNBOOK_CHECK.replace('"slug"', '"slugg"')
    r = node.grpcurl("ledger.v1.AdminService/CheckIntegrity", data=bad)
    assert r.returncode == 1 and "slugg" in r.stderr, (r.returncode, r.stderr)


def test_unknown_method_is_unimplemented(node):
    with grpc.insecure_channel(node.addr) as ch:
        for path in ("/ledger.v1.AdminService/NoSuchMethod", "/no.such.Service/X", "/"):
            with pytest.raises(grpc.RpcError) as ei:
                ch.unary_unary(path)(b"", timeout=5)
            assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED, path
            assert "unknown method" in ei.value.details()
        # not a valid :path at all: HTTP/2 stream error (RST_STREAM), seen as INTERNAL
        with pytest.raises(grpc.RpcError) as ei:
            ch.unary_unary("x")(b"", timeout=5)
        assert ei.value.code() == grpc.StatusCode.INTERNAL
        assert ch.unary_unary(HEALTH_CHECK)(b"", timeout=5) == SERVING


# --- health ------------------------------------------------------------------------------

def test_grpc_health_check(node):
    assert node.call("grpc.health.v1.Health/Check") == {"status": "SERVING"}
    for svc in sorted(proto_services()):
        assert node.call("grpc.health.v1.Health/Check", {"service": svc}) == {
            "status": "SERVING"}, svc
    r = node.grpcurl("grpc.health.v1.Health/Check", data={"service": "no.such.Service"})
    assert r.returncode == 64 + 5 and "Code: NotFound" in r.stderr, r.stderr


def test_ledger_health_service_check(node):
    resp = node.call("ledger.v1.HealthService/Check")
    assert resp["status"] == "HEALTH_STATUS_HEALTHY", resp
    assert resp["details"]["role"] == "leader"
    assert resp["details"]["disk_writable"] == "true"


def test_grpc_health_watch_first_message(node):
    with grpc.insecure_channel(node.addr) as ch:
        it = ch.unary_stream(HEALTH_WATCH)(b"", timeout=5)
        assert next(it) == SERVING
        it.cancel()
        with pytest.raises(grpc.RpcError) as ei:
            next(it)
        assert ei.value.code() == grpc.StatusCode.CANCELLED
    # unknown service: Watch still answers (SERVICE_UNKNOWN = 3) per the health protocol,
    # or refuses with NOT_FOUND; either way the stream does not hang
    with grpc.insecure_channel(node.addr) as ch:
        it = ch.unary_stream(HEALTH_WATCH)(b"\x0a\x03nop", timeout=3)
        try:
            first = next(it)
            assert first == b"\x08\x03", first
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e


# --- deadlines -----------------------------------------------------------------------------

@pytest.mark.parametrize("timeout_hdr,ms", [("250m", 250), ("300000u", 300), ("1S", 1000)])
def test_grpc_timeout_is_enforced_by_the_server(node, timeout_hdr, ms):
    """A Watch never ends on its own; with grpc-timeout the server ends it with
    DEADLINE_EXCEEDED after that long (measured on the wire, not client-side)."""
    c = H2Conn(node.addr)
    t0 = time.monotonic()
    c.send(c.request(1, HEALTH_WATCH, grpc_frame(b""), extra_headers=[("grpc-timeout",
                                                                         timeout_hdr)]))
    st = c.wait_stream(1, timeout=ms / 1000 + 3)
    elapsed = time.monotonic() - t0
    assert st.grpc_status == 4, (st.grpc_status, st.grpc_message)
    assert "deadline" in st.grpc_message
    assert st.messages() == [SERVING]
    assert ms / 1000 - 0.01 <= elapsed < ms / 1000 + 1.0, elapsed
    c.close()


def test_grpcio_deadline_on_watch(node):
    with grpc.insecure_channel(node.addr) as ch:
        it = ch.unary_stream(HEALTH_WATCH)(b"", timeout=0.3)
        t0 = time.monotonic()
        assert next(it) == SERVING
        with pytest.raises(grpc.RpcError) as ei:
            next(it)
        assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - t0 < 2
        # the channel is still usable
        assert ch.unary_unary(HEALTH_CHECK)(b"", timeout=5) == SERVING


# --- shutdown with calls in flight --------------------------------------------------------

def test_sigterm_ends_watch_stream_and_exits_0(ledger_factory):
    node = ledger_factory()
    got, errors = [], []
    first = threading.Event()
    done = threading.Event()

    def watch():
        with grpc.insecure_channel(node.addr) as ch:
            try:
                for msg in ch.unary_stream(HEALTH_WATCH)(b"", timeout=15):
                    got.append(msg)
                    first.set()
            except grpc.RpcError as e:
                errors.append(e.code())
            finally:
                first.set()
                done.set()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    assert first.wait(5) and got[:1] == [SERVING], got
    t0 = time.monotonic()
    node.proc.send_signal(signal.SIGTERM)
    assert done.wait(10), "Watch stream did not end after SIGTERM"
    stream_end = time.monotonic() - t0
    rc = node.proc.wait(10)
    exit_after = time.monotonic() - t0
    assert rc == 0, node.log_tail()
    # The stream ends with an error status (or closes); NOT_SERVING may come first.
    assert set(got[1:]) <= {NOT_SERVING}, got
    assert errors and errors[0] in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), errors
    assert exit_after < 10
    print("SIGTERM: watch ended after %.3f s (%s), exit 0 after %.3f s" % (
        stream_end, errors[0], exit_after))
    node.stop()


def test_sigterm_with_half_sent_request_exits_0_within_10s(ledger_factory):
    """A client that opened a call and never finished sending its request keeps
    the call in flight; the server still exits 0 within 10 s of SIGTERM (its
    shutdown grace period is 8 s), after sending GOAWAY."""
    node = ledger_factory()
    c = H2Conn(node.addr)
    c.send(c.request(1, HEALTH_CHECK, None, end_stream=False))
    c.send(c.request(3, HEALTH_CHECK, grpc_frame(b"")))
    assert c.wait_stream(3).grpc_status == 0  # the connection is live
    t0 = time.monotonic()
    node.proc.send_signal(signal.SIGTERM)
    assert c.read_until(lambda: c.goaway is not None, 3), "no GOAWAY after SIGTERM"
    assert c.goaway[1] == 0  # NO_ERROR: a graceful shutdown
    # new connections are refused while draining
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", node.port), timeout=2).close()
    assert c.wait_closed(10)
    rc = node.proc.wait(10)
    elapsed = time.monotonic() - t0
    assert rc == 0, node.log_tail()
    assert elapsed < 10, elapsed
    c.close()
    print("SIGTERM with a half-sent request: exit 0 after %.2f s" % elapsed)
    node.stop()


def test_sigterm_idle_server_exits_quickly(ledger_factory):
    node = ledger_factory()
    t0 = time.monotonic()
    assert node.stop() == 0
    assert time.monotonic() - t0 < 2
