"""pytest infrastructure for integration tests against the real binary.

Fixtures
  ledger_factory  factory: ledger_factory(name=None, extra_args=(), env=None,
                  start=True, bin=None) -> LedgerNode; every node it made is
                  stopped at teardown (SIGTERM, SIGKILL after 10 s).
  ledger          one started single-node server (ledger_factory()).
  cluster_factory factory: cluster_factory(n, env=None, extra_args=(), peers="env"|"flag"|
                  "json", start=True) -> LedgerCluster of n nodes in coordinated
                  bootstrap mode (CLUSTER=n, PEERS = every node's address), each
                  with its own port pair; stopped at teardown.

LedgerCluster
  .nodes, .peers (comma list), .start(), .wait_formed(voters=n)
  .add_node(mode_args, env) -> a new LedgerNode sharing the PEERS list (not started)
  .info(node) / .node_info(node) (GetClusterInfo / GetNodeInfo dicts)
  .leader(timeout) -> the node every live node agrees is leader

LedgerNode
  .addr / .metrics_addr   "127.0.0.1:<port>" (free ports picked per node)
  .data_dir / .log_path   under the test's tmp_path
  .grpcurl(*args, input=None, flags=(), data=None, timeout=30)
        runs tests/tools/grpcurl -plaintext [flags] [-d data] ADDR *args
        -> subprocess.CompletedProcess (text)
  .call(method, body=None, flags=())      -> the one JSON response (dict);
        asserts exit status 0
  .call_stream(method, body=None, flags=()) -> list of JSON responses
  .metrics()        text of GET http://metrics_addr/metrics
  .kill9()          SIGKILL, wait for exit
  .stop()           SIGTERM, SIGKILL after 10 s; returns exit status
  .start() / .restart(wait=True)   same ports and data dir
  .rss_kb()         resident set size from /proc/<pid>/status
  .log_text()       whole log; the log is appended to the report of a
                    failing test automatically (pytest_runtest_makereport).

The server is started with
  --single --data DIR --listen 127.0.0.1:P --metrics 127.0.0.1:M --log-format text
and is ready when a TCP connect succeeds and grpc.health.v1.Health/Check
answers SERVING (20 s max).
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import grpc
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
LEDGER_BIN = os.environ.get("LEDGER_BIN", os.path.join(REPO, "build", "inferadb-ledger"))
GRPCURL = os.path.join(REPO, "tests", "tools", "grpcurl")
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
SERVING = 1


def free_port():
    """A currently free TCP port on 127.0.0.1 (bind port 0, then release)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_grpcurl(*argv, input=None, timeout=30):
    """Run tests/tools/grpcurl with argv exactly as given."""
    return subprocess.run([GRPCURL, *argv], input=input, capture_output=True, text=True,
                          timeout=timeout)


def parse_json_stream(text):
    """grpcurl prints one JSON document per response message."""
    dec = json.JSONDecoder()
    out, i, text = [], 0, text.strip()
    while i < len(text):
        obj, i = dec.raw_decode(text, i)
        out.append(obj)
        while i < len(text) and text[i].isspace():
            i += 1
    return out


def _health_status(raw):
    """status field (1, varint) of grpc.health.v1.HealthCheckResponse."""
    i = 0
    status = 0
    while i < len(raw):
        key, i = _varint(raw, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _varint(raw, i)
            if field == 1:
                status = val
        elif wire == 2:
            n, i = _varint(raw, i)
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError("bad wire type %d" % wire)
    return status


def _varint(raw, i):
    shift = result = 0
    while True:
        b = raw[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


class LedgerStartError(Exception):
    pass


class LedgerNode:
    def __init__(self, workdir, name="node0", extra_args=(), env=None, bin=None,
                 mode_args=("--single",)):
        self.name = name
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.data_dir = os.path.join(self.workdir, "data")
        self.log_path = os.path.join(self.workdir, "ledger.log")
        self.bin = bin or LEDGER_BIN
        self.port = free_port()
        self.metrics_port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.metrics_addr = "127.0.0.1:%d" % self.metrics_port
        self.extra_args = list(extra_args)
        self.mode_args = list(mode_args)
        self.env = dict(os.environ)
        if env:
            self.env.update(env)
        self.proc = None
        self._log = None

    # --- process control --------------------------------------------------
    def argv(self):
        return [self.bin, *self.mode_args, "--data", self.data_dir, "--listen", self.addr,
                "--metrics", self.metrics_addr, "--log-format", "text", *self.extra_args]

    def start(self, wait=True):
        if not os.access(self.bin, os.X_OK):
            raise LedgerStartError("ledger binary %s not found or not executable "
                                   "(build it or set LEDGER_BIN)" % self.bin)
        assert self.proc is None, "already running"
        os.makedirs(self.data_dir, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self._log.write(("=== start: %s\n" % " ".join(self.argv())).encode())
        self._log.flush()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=self.env, cwd=self.workdir)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Wait until TCP connect works and Health/Check says SERVING."""
        deadline = time.monotonic() + timeout
        last = "no attempt"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LedgerStartError("%s exited with status %s before becoming ready\n%s" % (
                    self.name, self.proc.returncode, self.log_tail()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                status = self.health_check(timeout=min(2.0, max(deadline - time.monotonic(), 0.1)))
                if status == SERVING:
                    return
                last = "health status %d" % status
            except (OSError, grpc.RpcError, ValueError) as e:
                last = "%s: %s" % (type(e).__name__, e)
            time.sleep(0.05)
        raise LedgerStartError("%s not ready after %.0f s (%s)\n%s" % (
            self.name, timeout, last, self.log_tail()))

    def health_check(self, service="", timeout=2.0):
        """Raw grpc.health.v1.Health/Check; returns the status number."""
        req = b""
        if service:
            enc = service.encode()
            req = b"\x0a" + _encode_varint(len(enc)) + enc
        with grpc.insecure_channel(self.addr) as ch:
            stub = ch.unary_unary("/grpc.health.v1.Health/Check")
            return _health_status(stub(req, timeout=timeout))

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after `timeout` seconds; returns exit status."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
                self._note("=== killed with SIGKILL after SIGTERM timeout")
        self._finish()
        return rc

    def kill9(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
        rc = self.proc.wait()
        self._finish()
        return rc

    def restart(self, wait=True):
        self.stop()
        return self.start(wait=wait)

    def _finish(self):
        if self._log is not None:
            self._log.close()
            self._log = None
        self.proc = None

    def _note(self, text):
        if self._log is not None:
            self._log.write((text + "\n").encode())
            self._log.flush()

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS for pid %d" % self.proc.pid)

    # --- logs -------------------------------------------------------------
    def log_text(self):
        try:
            with open(self.log_path, "rb") as fh:
                return fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, max_bytes=64 * 1024):
        text = self.log_text()
        if len(text) > max_bytes:
            text = "...(truncated)...\n" + text[-max_bytes:]
        return text

    # --- clients ----------------------------------------------------------
    def grpcurl(self, *args, input=None, flags=(), data=None, timeout=30):
        argv = ["-plaintext", *flags]
        if data is not None:
            argv += ["-d", data if isinstance(data, str) else json.dumps(data)]
        return run_grpcurl(*argv, self.addr, *args, input=input, timeout=timeout)

    def call_stream(self, method, body=None, flags=(), timeout=30):
        r = self.grpcurl(method, flags=flags, data=body, timeout=timeout)
        assert r.returncode == 0, "grpcurl %s failed (exit %d):\n%s%s" % (
            method, r.returncode, r.stdout, r.stderr)
        return parse_json_stream(r.stdout)

    def call(self, method, body=None, flags=(), timeout=30):
        out = self.call_stream(method, body, flags, timeout)
        assert len(out) == 1, "expected one response from %s, got %d" % (method, len(out))
        return out[0]

    def metrics(self, timeout=5):
        with urllib.request.urlopen("http://%s/metrics" % self.metrics_addr, timeout=timeout) as r:
            return r.read().decode()


def _encode_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


@pytest.fixture
def ledger_factory(request, tmp_path):
    nodes = []
    request.node._ledger_nodes = nodes

    def make(name=None, extra_args=(), env=None, start=True, bin=None, mode_args=("--single",)):
        name = name or "node%d" % len(nodes)
        node = LedgerNode(tmp_path / name, name=name, extra_args=extra_args, env=env, bin=bin,
                          mode_args=mode_args)
        nodes.append(node)
        if start:
            node.start()
        return node

    yield make
    sanitized = os.environ.get("LEDGER_SANITIZED") == "1"
    problems = []
    for node in nodes:
        rc = node.stop()
        if sanitized:
            # Under ASan/UBSan a report makes the process exit non-zero (or
            # abort): a clean stop and a clean log are part of every test.
            log = node.log_text()
            if rc not in (0, None, -signal.SIGKILL) or "Sanitizer" in log or \
                    "runtime error:" in log:
                problems.append("%s exited %s:\n%s" % (node.name, rc, node.log_tail()))
    assert not problems, "sanitizer run found problems:\n" + "\n".join(problems)


@pytest.fixture
def ledger(ledger_factory):
    return ledger_factory()


class LedgerCluster:
    """n nodes started in coordinated bootstrap mode on 127.0.0.1."""

    def __init__(self, make, n, env=None, extra_args=(), peers="env", workdir=None):
        self.make = make
        self.n = n
        self.nodes = [make(name="n%d" % i, start=False, mode_args=(), extra_args=extra_args)
                      for i in range(n)]
        self.peers = ",".join(node.addr for node in self.nodes)
        self.peers_mode = peers
        self.workdir = workdir
        base = {"INFERADB__LEDGER__CLUSTER": str(n), "INFERADB__LEDGER__PEERS_POLL": "0.2",
                "INFERADB__LEDGER__ENV_FILE": ""}
        if env:
            base.update(env)
        self.base_env = base
        for node in self.nodes:
            self._configure(node)

    def _configure(self, node, env=None):
        node.env.update(self.base_env)
        if env:
            node.env.update(env)
        if node.env.get("INFERADB__LEDGER__JOIN") or node.mode_args:
            node.env.pop("INFERADB__LEDGER__CLUSTER", None)
        if self.peers_mode == "env":
            node.env["INFERADB__LEDGER__PEERS"] = self.peers
        elif self.peers_mode == "flag":
            node.extra_args += ["--peers", self.peers]
        else:
            path = os.path.join(str(self.workdir), "peers.json")
            with open(path, "w") as fh:
                json.dump({"peers": [{"addr": a} for a in self.peers.split(",")]}, fh)
            node.env["INFERADB__LEDGER__PEERS"] = path

    def add_node(self, name, mode_args=(), env=None, extra_args=()):
        node = self.make(name=name, start=False, mode_args=mode_args, extra_args=extra_args)
        self._configure(node, env)
        return node

    def start(self):
        for node in self.nodes:
            node.start(wait=False)
        for node in self.nodes:
            node.wait_ready(timeout=30)
        return self

    def live(self):
        return [n for n in self.nodes if n.running()]

    @staticmethod
    def info(node, timeout=10):
        return node.call("ledger.v1.AdminService/GetClusterInfo", {}, timeout=timeout)

    @staticmethod
    def node_info(node, timeout=10):
        return node.call("ledger.v1.AdminService/GetNodeInfo", {}, timeout=timeout)

    def leader(self, timeout=15, nodes=None):
        """The node all live nodes agree is the leader (waits)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            live = nodes or self.live()
            try:
                ids = {self.node_info(n).get("leaderId", {}).get("id") for n in live}
                if len(ids) == 1 and None not in ids:
                    lid = ids.pop()
                    for n in live:
                        if self.node_info(n)["nodeId"]["id"] == lid:
                            return n
                last = ids
            except AssertionError as e:
                last = str(e)
            time.sleep(0.1)
        raise AssertionError("no agreed leader after %.0f s: %s" % (timeout, last))

    def wait_formed(self, voters=None, timeout=30, nodes=None):
        """Wait until every live node reports the same cluster id, leader and
        `voters` voters; returns GetClusterInfo of the first node."""
        voters = voters or self.n
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            infos = [self.info(n) for n in (nodes or self.live())]
            shapes = {(i.get("clusterId"), i.get("leaderId", {}).get("id"),
                       tuple(sorted((m["nodeId"]["id"], m.get("role")) for m in
                                    i.get("members", []))))
                      for i in infos}
            nv = [sum(1 for m in i.get("members", []) if m.get("role") == "NODE_ROLE_VOTER")
                  for i in infos]
            if len(shapes) == 1 and all(v == voters for v in nv) and \
                    infos[0].get("leaderId"):
                return infos[0]
            last = shapes
            time.sleep(0.2)
        raise AssertionError("cluster not formed after %.0f s: %s" % (timeout, last))


@pytest.fixture
def cluster_factory(ledger_factory, tmp_path):
    def make(n=3, env=None, extra_args=(), peers="env", start=True):
        cl = LedgerCluster(ledger_factory, n, env=env, extra_args=extra_args, peers=peers,
                           workdir=tmp_path)
        if start:
            cl.start()
        return cl

    return make


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for node in getattr(item, "_ledger_nodes", []):
            rep.sections.append(("ledger log %s (%s) [%s]" % (node.name, node.log_path, rep.when),
                                 node.log_tail()))
