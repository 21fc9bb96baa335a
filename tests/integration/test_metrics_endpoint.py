"""The metrics HTTP endpoint (/metrics, /healthz, /readyz), the --metrics
address rules, and the per-request log line, against the real binary."""

import os
import random
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request

import grpc
import pytest

from conftest import LedgerNode
from h2raw import H2Conn, grpc_frame, wait_socket_closed

PROMTOOL = "/usr/bin/promtool"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
LEDGER_HEALTH = "/ledger.v1.HealthService/Check"
CHECK_INTEGRITY = "/ledger.v1.AdminService/CheckIntegrity"
DEFAULT_METRICS = ("127.0.0.1", 9090)

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, frozenset(labels.items())): float} and {name: type}."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, "unparsable sample line: %r" % line
        labels = frozenset(_LABEL.findall(m.group(3) or ""))
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def http_get(addr, path, timeout=5):
    try:
        with urllib.request.urlopen("http://%s%s" % (addr, path), timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class NoMetricsFlagNode(LedgerNode):
    """Started without any --metrics flag (the default address applies)."""

    def argv(self):
        argv = super().argv()
        i = argv.index("--metrics")
        return argv[:i] + argv[i + 2:]


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))


# --- exposition -----------------------------------------------------------------------

def test_metrics_exposition_counts_and_promtool(ledger_factory):
    t_launch = time.time()
    node = ledger_factory(extra_args=["--log-level", "debug"])
    before, _ = parse(node.metrics())
    with grpc.insecure_channel(node.addr) as ch:
        for _ in range(3):
            assert ch.unary_unary(HEALTH_CHECK)(b"", timeout=5) == b"\x08\x01"
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as ei:
                ch.unary_unary(CHECK_INTEGRITY)(b"\x18\x01", timeout=5)  # no organization
            assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as ei:
            ch.unary_unary(LEDGER_HEALTH)(b"\xff\xff", timeout=5)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert ch.unary_unary(LEDGER_HEALTH)(b"", timeout=5)
    c = H2Conn(node.addr)
    c.send(c.request(1, HEALTH_WATCH, grpc_frame(b""), extra_headers=[("grpc-timeout", "50m")]))
    assert c.wait_stream(1).grpc_status == 4
    c.close()

    text = node.metrics()
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, "promtool check metrics failed:\n%s%s" % (r.stdout, r.stderr)

    after, types = parse(text)

    def delta(service, method, code):
        key = dict(service=service, method=method, code=code)
        return (value(after, "ledger_grpc_requests_total", **key) -
                value(before, "ledger_grpc_requests_total", **key))

    assert delta("grpc.health.v1.Health", "Check", "OK") == 3
    assert delta("ledger.v1.AdminService", "CheckIntegrity", "INVALID_ARGUMENT") == 2
    assert delta("ledger.v1.HealthService", "Check", "INVALID_ARGUMENT") == 1
    assert delta("ledger.v1.HealthService", "Check", "OK") == 1
    assert delta("grpc.health.v1.Health", "Watch", "DEADLINE_EXCEEDED") == 1
    assert delta("ledger.v1.AdminService", "CheckIntegrity", "OK") == 0

    assert types.get("ledger_grpc_requests_total") == "counter"
    assert types.get("ledger_grpc_request_duration_seconds") == "histogram"
    assert types.get("ledger_build_info") == "gauge"
    assert types.get("process_start_time_seconds") == "gauge"

    # histogram per service/method: cumulative buckets, +Inf == _count == all codes
    for service, method in (("grpc.health.v1.Health", "Check"),
                            ("ledger.v1.AdminService", "CheckIntegrity"),
                            ("ledger.v1.HealthService", "Check")):
        buckets = sorted(
            (float(dict(lbl)["le"]), v) for (name, lbl), v in after.items()
            if name == "ledger_grpc_request_duration_seconds_bucket" and
            dict(lbl).get("service") == service and dict(lbl).get("method") == method)
        assert len(buckets) >= 5 and buckets[-1][0] == float("inf"), buckets
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), buckets
        count = value(after, "ledger_grpc_request_duration_seconds_count", service=service,
                      method=method)
        assert buckets[-1][1] == count
        total = sum(v for (name, lbl), v in after.items()
                    if name == "ledger_grpc_requests_total" and
                    dict(lbl).get("service") == service and dict(lbl).get("method") == method)
        assert count == total, (service, method, count, total)
        assert value(after, "ledger_grpc_request_duration_seconds_sum", service=service,
                     method=method) >= 0

    version = subprocess.run([node.bin, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.split()[-1]
    assert value(after, "ledger_build_info", version=version) == 1, version
    start = value(after, "process_start_time_seconds")
    assert t_launch - 2 <= start <= time.time() + 1, (t_launch, start)


def test_request_log_line_at_debug_shows_method_and_status(ledger_factory):
    node = ledger_factory(extra_args=["--log-level", "debug"])
    with grpc.insecure_channel(node.addr) as ch:
        ch.unary_unary(LEDGER_HEALTH)(b"", timeout=5)
        with pytest.raises(grpc.RpcError):
            ch.unary_unary(CHECK_INTEGRITY)(b"", timeout=5)
    pat_ok = re.compile(r"DEBUG .*path=/ledger\.v1\.HealthService/Check code=OK "
                        r"latency_ms=[0-9.]+")
    pat_unimpl = re.compile(r"DEBUG .*path=/ledger\.v1\.AdminService/CheckIntegrity "
                            r"code=INVALID_ARGUMENT latency_ms=[0-9.]+")
    wait_for(lambda: pat_ok.search(node.log_text()) and pat_unimpl.search(node.log_text()), 5,
             "request log lines")
    # at the default level (info) requests are not logged
    quiet = ledger_factory()
    with grpc.insecure_channel(quiet.addr) as ch:
        ch.unary_unary(LEDGER_HEALTH)(b"", timeout=5)
    assert quiet.stop() == 0
    assert "path=/ledger.v1.HealthService/Check" not in quiet.log_text()


# --- health endpoints and HTTP hygiene ----------------------------------------------------

def test_healthz_and_readyz(ledger):
    assert http_get(ledger.metrics_addr, "/healthz") == (200, "ok\n")
    status, body = http_get(ledger.metrics_addr, "/readyz")
    assert status == 200 and "healthy" in body
    status, _ = http_get(ledger.metrics_addr, "/no-such-page")
    assert status == 404


def test_metrics_port_survives_junk(ledger):
    host, port = ledger.metrics_addr.rsplit(":", 1)
    for seed in range(3):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            try:
                s.sendall(random.Random(seed).randbytes(8192))
            except (ConnectionResetError, BrokenPipeError):
                pass
            closed, _ = wait_socket_closed(s, 5)
            assert closed
    with socket.create_connection((host, int(port)), timeout=5) as s:  # endless header
        try:
            s.sendall(b"GET /metrics HTTP/1.1\r\nX-Junk: " + b"a" * (256 * 1024))
        except (ConnectionResetError, BrokenPipeError):
            pass
        closed, got = wait_socket_closed(s, 5)
        assert closed
        assert got == b"" or got.startswith(b"HTTP/1.1 4"), got[:80]
    assert http_get(ledger.metrics_addr, "/healthz")[0] == 200
    assert "ledger_build_info" in ledger.metrics()


# --- --metrics address rules --------------------------------------------------------------

def test_default_metrics_address_taken_warns_and_serves_grpc(ledger_factory, tmp_path, request):
    blocker = socket.socket()
    try:
        blocker.bind(DEFAULT_METRICS)
    except OSError as e:
        blocker.close()
        pytest.skip("default metrics address 127.0.0.1:9090 is not free here (%s)" % e)
    try:
        blocker.listen(1)
        node = NoMetricsFlagNode(tmp_path / "nometrics", name="nometrics")
        request.node._ledger_nodes.append(node)  # stopped and logged by ledger_factory
        node.start()
        assert node.health_check() == 1
        log = node.log_text()
        assert re.search(r"WARN .*127\.0\.0\.1:9090", log), log
        assert node.stop() == 0
    finally:
        blocker.close()


def test_explicit_metrics_address_taken_is_fatal(ledger_factory):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    try:
        node = ledger_factory(start=False)
        node.metrics_port = blocker.getsockname()[1]
        node.metrics_addr = "127.0.0.1:%d" % node.metrics_port
        node.start(wait=False)
        rc = node.proc.wait(10)
        assert rc != 0
        log = node.log_text()
        assert node.metrics_addr in log, log
        assert "in use" in log, log
        node.stop()
    finally:
        blocker.close()


def test_metrics_off_serves_grpc_without_http(ledger_factory):
    node = ledger_factory(start=False)
    probe = socket.socket()
    probe.bind(("127.0.0.1", node.metrics_port))  # nobody else may take it meanwhile
    try:
        node.extra_args = ["--metrics", "off"]  # the later flag wins
        node.start()
        assert node.health_check() == 1
        assert "disabled" in node.log_text()
    finally:
        probe.close()
