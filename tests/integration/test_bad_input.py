"""Bad input on the gRPC port (issue 2, SPEC section 9).

One server for the whole module, so that its resident set size can be
compared between the first measurement after a warm-up and the end of the
suite: every kind of bad input below must get a clean error (a gRPC status,
an HTTP/1 error reply, RST_STREAM/GOAWAY) or a closed connection, the server
must keep answering, and RSS must grow by less than 32 MiB in total.

Tests run in file order; the last ones check the silent client opened by the
fixture (closed by the handshake timeout), a flood of silent connections past
the connection limit, and the memory budget.
"""

import random
import resource
import socket
import struct
import time
from collections import Counter

import grpc
import pytest

import h2raw
from conftest import LedgerNode, _encode_varint
from h2raw import (CANCEL, DATA, END_HEADERS, GOAWAY, HEADERS, PREFACE, PROTOCOL_ERROR,
                   REFUSED_STREAM, RST_STREAM, SETTINGS, H2Conn, frame, grpc_frame, settings,
                   wait_socket_closed)

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
LEDGER_HEALTH = "/ledger.v1.HealthService/Check"
REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
SERVING = b"\x08\x01"  # HealthCheckResponse{status: SERVING}
RSS_BUDGET_KB = 32 * 1024
HANDSHAKE_TIMEOUT_S = 10.0  # listener default (net/listener.c)

OK, DEADLINE_EXCEEDED, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL = \
    0, 4, 3, 8, 12, 13


class Server:
    """The module's node plus what the suite measured about it."""

    def __init__(self, node):
        self.node = node
        self.addr = node.addr
        self.host, port = node.addr.rsplit(":", 1)
        self.port = int(port)
        self.rss_start_kb = None
        self.silent = None         # socket that never sends a byte
        self.silent_opened = None  # time.monotonic() of its connect

    def connect(self):
        s = socket.create_connection((self.host, self.port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def assert_healthy(self):
        """Still answers both health services over a fresh connection."""
        assert self.node.running(), "server exited:\n" + self.node.log_tail()
        with grpc.insecure_channel(self.addr) as ch:
            assert ch.unary_unary(HEALTH_CHECK)(b"", timeout=5) == SERVING
            resp = ch.unary_unary(LEDGER_HEALTH)(b"", timeout=5)
        assert resp[:2] == b"\x08\x01", resp  # HealthStatus HEALTHY


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    node = LedgerNode(tmp_path_factory.mktemp("badinput"), name="badinput",
                      extra_args=["--log-level", "debug"])
    node.start()
    s = Server(node)
    try:
        # Warm-up: the normal paths once, so allocator arenas and lazily
        # built state exist before the first measurement.
        with grpc.insecure_channel(node.addr) as ch:
            check = ch.unary_unary(HEALTH_CHECK)
            for _ in range(50):
                assert check(b"", timeout=5) == SERVING
            assert ch.unary_unary(LEDGER_HEALTH)(b"", timeout=5)
        c = H2Conn(node.addr)
        c.send(c.request(1, HEALTH_CHECK, grpc_frame(b"")))
        assert c.wait_stream(1).grpc_status == OK
        c.close()
        s.rss_start_kb = node.rss_kb()
        s.silent = s.connect()
        s.silent_opened = time.monotonic()
        yield s
    finally:
        if s.silent:
            s.silent.close()
        node.stop()


def _health_req(service):
    enc = service.encode()
    return b"\x0a" + _encode_varint(len(enc)) + enc


# --- not HTTP/2 at all ----------------------------------------------------------

@pytest.mark.parametrize("seed", range(8))
def test_random_bytes_closed_without_reply(srv, seed):
    rnd = random.Random(seed)
    junk = rnd.randbytes(4096)
    s = srv.connect()
    try:
        try:
            s.sendall(junk)
        except (ConnectionResetError, BrokenPipeError):
            pass  # already refused
        closed, got = wait_socket_closed(s, 3)
    finally:
        s.close()
    assert closed, "connection left open after random bytes"
    assert got == b"", "unexpected reply to random bytes: %r" % got[:64]
    srv.assert_healthy()


def test_random_bytes_after_preface_get_goaway(srv):
    for seed in range(5):
        c = H2Conn(srv.addr, handshake=False)
        try:
            c.send(PREFACE + random.Random(100 + seed).randbytes(4096))
        except (ConnectionResetError, BrokenPipeError):
            pass
        assert c.wait_closed(3), "connection left open"
        assert c.goaway is not None and c.goaway[1] != 0, c.goaway
        c.close()
    srv.assert_healthy()


def test_json_over_http1_gets_400_and_close(srv):
    body = b'{"organization_slug": {"id": "1"}}'
    req = (b"POST /ledger.v1.HealthService/Check HTTP/1.1\r\nHost: %s\r\n"
           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
               srv.addr.encode(), len(body), body))
    s = srv.connect()
    try:
        s.sendall(req)
        closed, got = wait_socket_closed(s, 3)
    finally:
        s.close()
    assert closed
    head, _, text = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), got
    assert b"gRPC" in text and b"HTTP/2" in text, text
    srv.assert_healthy()


def test_http1_get_and_h2_upgrade_attempt_refused(srv):
    for req, status in ((b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
                        (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                         b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n", b"400"),
                        (b"PRI * HTTP/1.1\r\n\r\n", b"505")):
        s = srv.connect()
        try:
            s.sendall(req)
            closed, got = wait_socket_closed(s, 3)
        finally:
            s.close()
        assert closed and got.startswith(b"HTTP/1.1 " + status), (req, got)


def test_json_over_h2_wrong_content_type_is_refused(srv):
    c = H2Conn(srv.addr)
    hdrs = b"".join(h2raw.hpack_literal(n, v) for n, v in (
        (":method", "POST"), (":scheme", "http"), (":path", LEDGER_HEALTH),
        (":authority", "x"), ("content-type", "application/json")))
    c.send(frame(HEADERS, END_HEADERS, 1, hdrs) + frame(DATA, 1, 1, b"{}"))
    st = c.wait_stream(1)
    assert st.http_status == 415 and st.grpc_status == INTERNAL, st.headers
    assert "application/grpc" in st.grpc_message
    # GET is not a gRPC call either
    hdrs = b"".join(h2raw.hpack_literal(n, v) for n, v in (
        (":method", "GET"), (":scheme", "http"), (":path", LEDGER_HEALTH), (":authority", "x")))
    c.send(frame(HEADERS, END_HEADERS | 1, 3, hdrs))
    st = c.wait_stream(3)
    assert st.http_status == 405 and st.grpc_status == UNIMPLEMENTED
    # the connection is still good
    c.send(c.request(5, HEALTH_CHECK, grpc_frame(b"")))
    st = c.wait_stream(5)
    assert st.grpc_status == OK and st.messages() == [SERVING]
    c.close()


# --- truncated input --------------------------------------------------------------

def test_truncated_preface_then_eof_closed(srv):
    for cut in (1, 10, 23):
        s = srv.connect()
        try:
            s.sendall(PREFACE[:cut])
            s.shutdown(socket.SHUT_WR)
            closed, got = wait_socket_closed(s, 3)
        finally:
            s.close()
        assert closed and got == b"", (cut, got)
    srv.assert_healthy()


def test_truncated_http2_frame_then_eof_closed(srv):
    hdrs = h2raw.grpc_headers(HEALTH_CHECK)
    cases = [
        frame(HEADERS, END_HEADERS, 1, hdrs)[:9 + len(hdrs) // 2],    # half a HEADERS frame
        frame(HEADERS, END_HEADERS, 1, hdrs)[:5],                     # half a frame header
        frame(HEADERS, END_HEADERS, 1, hdrs) + frame(DATA, 1, 1, grpc_frame(b"x" * 50))[:20],
        frame(SETTINGS, 0, 0, b"\x00\x03\x00\x00")[:11],              # partial SETTINGS
    ]
    for i, tail in enumerate(cases):
        c = H2Conn(srv.addr)
        c.send(tail)
        c.sock.shutdown(socket.SHUT_WR)
        assert c.wait_closed(3), "case %d: connection not closed after EOF" % i
        assert not any(f[0] == HEADERS for f in c.frames), "case %d answered a partial frame" % i
        c.close()
    srv.assert_healthy()


def test_truncated_grpc_message_is_invalid_argument(srv):
    c = H2Conn(srv.addr)
    # the prefix says 100 bytes, the stream ends after 2
    c.send(c.request(1, HEALTH_CHECK, grpc_frame(b"\x0a\x00", length=100)))
    st = c.wait_stream(1)
    assert st.grpc_status == INVALID_ARGUMENT and "truncated" in st.grpc_message
    # only part of the 5-byte prefix
    c.send(c.request(3, HEALTH_CHECK, b"\x00\x00\x00"))
    st = c.wait_stream(3)
    assert st.grpc_status == INVALID_ARGUMENT and "truncated" in st.grpc_message
    # no message at all for a unary method
    c.send(c.request(5, HEALTH_CHECK))
    st = c.wait_stream(5)
    assert st.grpc_status == INVALID_ARGUMENT and "needs a request message" in st.grpc_message
    c.close()


# --- bad messages ------------------------------------------------------------------

def test_5mib_message_resource_exhausted(srv):
    n = 5 << 20
    msg = b"\x0a" + _encode_varint(n) + b"a" * n  # HealthCheckRequest{service: 5 MiB}
    with grpc.insecure_channel(srv.addr) as ch:
        check = ch.unary_unary(HEALTH_CHECK)
        for _ in range(3):
            t0 = time.monotonic()
            with pytest.raises(grpc.RpcError) as ei:
                check(msg, timeout=5)
            assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "exceeds the limit of 4194304 bytes" in ei.value.details()
            assert time.monotonic() - t0 < 3
        # just under the limit is accepted and parsed (an unknown service name)
        n = (4 << 20) - 64
        with pytest.raises(grpc.RpcError) as ei:
            check(b"\x0a" + _encode_varint(n) + b"b" * n, timeout=5)
        assert ei.value.code() == grpc.StatusCode.NOT_FOUND
        assert len(ei.value.details()) < 2048  # the message is not echoed whole


def test_5mib_declared_length_refused_at_prefix(srv):
    """The limit applies to the declared length; the body is never buffered."""
    c = H2Conn(srv.addr)
    c.send(c.request(1, HEALTH_CHECK, grpc_frame(b"\x0a" + b"z" * 1000, length=5 << 20),
                     end_stream=False))
    st = c.wait_stream(1)
    assert st.grpc_status == RESOURCE_EXHAUSTED, (st.headers, st.trailers)
    c.close()


@pytest.mark.parametrize("body", [b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x0b", b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"],
                         ids=["bad-tag", "short-string", "group-start", "huge-length"])
def test_not_protobuf_is_invalid_argument(srv, body):
    with grpc.insecure_channel(srv.addr) as ch:
        for path, name in ((HEALTH_CHECK, "grpc.health.v1.HealthCheckRequest"),
                           (LEDGER_HEALTH, "ledger.v1.HealthCheckRequest")):
            with pytest.raises(grpc.RpcError) as ei:
                ch.unary_unary(path)(body, timeout=5)
            assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "not a valid %s" % name in ei.value.details()
        # a streaming method too
        it = ch.unary_stream(HEALTH_WATCH)(body, timeout=5)
        with pytest.raises(grpc.RpcError) as ei:
            next(it)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_two_messages_on_unary_call(srv):
    c = H2Conn(srv.addr)
    c.send(c.request(1, HEALTH_CHECK, grpc_frame(b"") + grpc_frame(b"")))
    st = c.wait_stream(1)
    assert st.grpc_status == INVALID_ARGUMENT and "exactly one" in st.grpc_message
    c.close()


def test_compressed_message_refused_cleanly(srv):
    with grpc.insecure_channel(srv.addr) as ch:
        check = ch.unary_unary(HEALTH_CHECK)
        with pytest.raises(grpc.RpcError) as ei:
            check(_health_req("x" * 2000), timeout=5, compression=grpc.Compression.Gzip)
        assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "compress" in ei.value.details()
        assert check(b"", timeout=5) == SERVING  # same channel still works
    c = H2Conn(srv.addr)
    c.send(c.request(1, HEALTH_CHECK, grpc_frame(b"\x1f\x8b", compressed=True),
                     extra_headers=[("grpc-encoding", "gzip")]))
    st = c.wait_stream(1)
    assert st.grpc_status == UNIMPLEMENTED and "compressed" in st.grpc_message
    assert ("grpc-accept-encoding", "identity") in st.headers
    # a flags byte that is neither 0 nor 1
    c.send(c.request(3, HEALTH_CHECK, b"\x80\x00\x00\x00\x00"))
    st = c.wait_stream(3)
    assert st.grpc_status == INTERNAL and "compression flag" in st.grpc_message
    c.close()


@pytest.mark.parametrize("value", ["abc", "", "1", "123456789S", "-5m", "5x", "99999999H"])
def test_malformed_or_extreme_grpc_timeout(srv, value):
    c = H2Conn(srv.addr)
    c.send(c.request(1, HEALTH_CHECK, grpc_frame(b""), extra_headers=[("grpc-timeout", value)]))
    st = c.wait_stream(1)
    if value == "99999999H":  # valid (8 digits): a long deadline, the call just works
        assert st.grpc_status == OK
    else:
        assert st.grpc_status == INVALID_ARGUMENT and "grpc-timeout" in st.grpc_message
    c.close()


def test_oversized_headers_reset_stream(srv):
    c = H2Conn(srv.addr)
    big = [("x-junk-%d" % i, "v" * 4000) for i in range(12)]  # ~48 KiB > 32 KiB limit
    block = h2raw.grpc_headers(HEALTH_CHECK, big)
    # split across CONTINUATION frames (max frame size 16 KiB)
    chunks = [block[i:i + 16000] for i in range(0, len(block), 16000)]
    out = frame(HEADERS, 0, 1, chunks[0])
    for i, ch in enumerate(chunks[1:]):
        out += frame(h2raw.CONTINUATION, END_HEADERS if i == len(chunks) - 2 else 0, 1, ch)
    c.send(out + frame(DATA, 1, 1, grpc_frame(b"")))
    c.read_until(lambda: c.stream(1).done or c.closed, 3)
    st = c.stream(1)
    assert st.rst is not None or c.goaway is not None or st.grpc_status not in (None, OK), (
        st.headers, st.trailers, st.rst, c.goaway)
    c.close()
    srv.assert_healthy()


# --- floods ---------------------------------------------------------------------------

def test_1000_concurrent_streams_on_one_connection_raw(srv):
    """1000 requests written at once, before the server's SETTINGS are acknowledged:
    some are served, the rest refused with REFUSED_STREAM (retryable)."""
    c = H2Conn(srv.addr)
    ids = [1 + 2 * i for i in range(1000)]
    t0 = time.monotonic()
    c.send(b"".join(c.request(sid, HEALTH_CHECK, grpc_frame(b"")) for sid in ids))
    assert c.read_until(lambda: all(c.stream(s).done for s in ids) or c.closed, 5)
    elapsed = time.monotonic() - t0
    outcome = Counter("ok" if c.stream(s).grpc_status == OK and c.stream(s).messages() == [SERVING]
                      else "refused" if c.stream(s).rst == REFUSED_STREAM else "other" for s in ids)
    assert outcome["other"] == 0, outcome
    assert outcome["ok"] >= 100, outcome  # at least SETTINGS_MAX_CONCURRENT_STREAMS served
    # the connection survives and serves a new stream
    c.send(c.request(2001, HEALTH_CHECK, grpc_frame(b"")))
    assert c.wait_stream(2001).grpc_status == OK
    c.close()
    print("raw 1000 streams: %s in %.3f s" % (dict(outcome), elapsed))


def test_1000_streams_beyond_acknowledged_limit_goaway(srv):
    """After SETTINGS_MAX_CONCURRENT_STREAMS is acknowledged, exceeding it is a
    connection error: GOAWAY(PROTOCOL_ERROR), then the connection closes."""
    c = H2Conn(srv.addr)
    assert c.read_until(lambda: any(f[0] == SETTINGS and f[1] & 1 for f in c.frames), 3)
    ids = [1 + 2 * i for i in range(1000)]
    try:
        c.send(b"".join(c.request(sid, HEALTH_WATCH, grpc_frame(b"")) for sid in ids))
    except (ConnectionResetError, BrokenPipeError):
        pass
    assert c.wait_closed(5)
    assert c.goaway is not None and c.goaway[1] == PROTOCOL_ERROR, c.goaway
    c.close()
    srv.assert_healthy()


def test_1000_concurrent_calls_on_one_grpc_channel(srv):
    with grpc.insecure_channel(srv.addr) as ch:
        check = ch.unary_unary(HEALTH_CHECK)
        t0 = time.monotonic()
        futures = [check.future(b"", timeout=10) for _ in range(1000)]
        results = [f.result() for f in futures]
        elapsed = time.monotonic() - t0
    assert results == [SERVING] * 1000
    print("grpcio 1000 concurrent unary calls: %.3f s" % elapsed)


def test_100_concurrent_watch_streams_then_cancel(srv):
    with grpc.insecure_channel(srv.addr) as ch:
        watch = ch.unary_stream(HEALTH_WATCH)
        calls = [watch(b"", timeout=10) for _ in range(100)]
        assert [next(it) for it in calls] == [SERVING] * 100
        for it in calls:
            it.cancel()
    srv.assert_healthy()


def test_rapid_reset_flood(srv):
    """HEADERS immediately followed by RST_STREAM, 1000 times (CVE-2023-44487 pattern)."""
    c = H2Conn(srv.addr)
    out = b"".join(c.request(1 + 2 * i, HEALTH_WATCH, grpc_frame(b"")) +
                   frame(RST_STREAM, 0, 1 + 2 * i, struct.pack(">I", CANCEL)) for i in range(1000))
    try:
        c.send(out)
        c.send(c.request(2001, HEALTH_CHECK, grpc_frame(b"")))
    except (ConnectionResetError, BrokenPipeError):
        pass
    c.read_until(lambda: c.stream(2001).done or c.closed, 5)
    # either the server kept serving the connection or it sent GOAWAY and closed it
    assert c.stream(2001).grpc_status == OK or (c.goaway is not None and c.wait_closed(3))
    c.close()
    srv.assert_healthy()


def test_slow_reader_reflection_stream_bounded(srv):
    """A client that sends many reflection requests (within flow control) and
    never reads the answers: the server's per-stream send queue is bounded, so
    the call ends with RESOURCE_EXHAUSTED instead of buffering without limit."""
    c = H2Conn(srv.addr, auto_window=False)
    sym = b"ledger.v1.AdminService"
    req = grpc_frame(b"\x22" + _encode_varint(len(sym)) + sym)
    c.send(c.request(1, REFLECTION, None, end_stream=False))
    rss0 = srv.node.rss_kb()
    t0 = time.monotonic()
    nreq = 0
    st = c.stream(1)
    while nreq < 2000 and not st.done and not c.closed:
        c.send_data(1, req * 50)
        nreq += 50
    if not st.done and not c.closed:
        c.send_data(1, b"", end_stream=True)
    peak = srv.node.rss_kb() - rss0
    # now read everything
    big = struct.pack(">I", 1 << 30)
    c.auto_window = True
    c.send(frame(h2raw.WINDOW_UPDATE, 0, 0, big) + frame(h2raw.WINDOW_UPDATE, 0, 1, big))
    st = c.wait_stream(1, timeout=5)
    elapsed = time.monotonic() - t0
    assert st.grpc_status == RESOURCE_EXHAUSTED, (st.grpc_status, st.grpc_message)
    assert "not reading" in st.grpc_message or "queue" in st.grpc_message, st.grpc_message
    answers = st.messages()
    assert 0 < len(answers) < nreq
    assert peak < 24 * 1024, "RSS grew %d KiB for one slow reader" % peak
    c.close()
    print("slow reader: %d requests sent, %d answers queued (%d KiB), RSS peak +%d KiB, "
          "%.2f s" % (nreq, len(answers), len(st.data) // 1024, peak, elapsed))


# --- idle clients and the whole-suite checks --------------------------------------------

def test_many_silent_connections_do_not_block_service(srv):
    socks = [srv.connect() for _ in range(100)]
    try:
        srv.assert_healthy()
    finally:
        for s in socks:
            s.close()


def test_silent_client_is_closed_after_handshake_timeout(srv):
    """The socket the fixture opened before the suite never sent a byte; the
    listener closes it after its handshake timeout (10 s after connect)."""
    deadline = srv.silent_opened + HANDSHAKE_TIMEOUT_S + 3
    closed, got = wait_socket_closed(srv.silent, max(deadline - time.monotonic(), 0.1))
    waited = time.monotonic() - srv.silent_opened
    assert closed, "silent connection still open %.1f s after connect" % waited
    assert got == b""
    assert waited >= HANDSHAKE_TIMEOUT_S - 0.5, "closed too early (%.1f s)" % waited
    srv.silent.close()
    srv.silent = None
    print("silent client closed %.2f s after connect" % waited)


def test_connection_flood_of_silent_clients_does_not_lock_out(srv):
    """More silent connections than the server's limit (1024): at the limit the
    listener closes the oldest connection that never identified itself, so a
    real client still gets in at once instead of after the handshake timeout."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 1200
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, need))
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    socks = []
    try:
        for _ in range(1100):
            socks.append(srv.connect())
        t0 = time.monotonic()
        srv.assert_healthy()
        elapsed = time.monotonic() - t0
        assert elapsed < 2, elapsed
        # the oldest silent ones were closed to make room
        closed, _ = wait_socket_closed(socks[0], 2)
        assert closed
    finally:
        for s in socks:
            s.close()
        if soft < need:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    print("1100 silent connections: a real client served in %.3f s" % elapsed)


def test_zz_still_serving_and_rss_budget(srv):
    srv.assert_healthy()
    end_kb = srv.node.rss_kb()
    grown = end_kb - srv.rss_start_kb
    print("RSS after warm-up %d KiB, at end %d KiB, growth %d KiB" % (
        srv.rss_start_kb, end_kb, grown))
    assert grown < RSS_BUDGET_KB, "RSS grew by %d KiB over the bad-input suite" % grown
    # nothing the suite sent was logged as a crash-worthy event
    log = srv.node.log_text()
    assert "ERROR" not in log and "assert" not in log.lower(), log[-4000:]
