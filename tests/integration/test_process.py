"""Process basics: configuration errors, data dir lock, signals, ephemeral data."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

BIN = os.environ.get("LEDGER_BIN", os.path.join(os.path.dirname(__file__), "..", "..",
                                                "build", "inferadb-ledger"))
PREFIX = "INFERADB__LEDGER__"


def clean_env(**extra):
    """The test's environment without ledger variables, with no env file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env[PREFIX + "ENV_FILE"] = ""
    env.update(extra)
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running inferadb-ledger whose stderr lines are collected by a thread."""

    def __init__(self, args, env=None):
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen([BIN] + args, env=env or clean_env(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_for(self, needle, timeout=10):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self.thread.is_alive():
                    raise AssertionError(f"no '{needle}' in stderr: {''.join(self.lines)}")
                self.cond.wait(min(left, 0.2))

    def stop(self, sig=signal.SIGTERM, timeout=10):
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        self.thread.join(timeout=5)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def servers():
    started = []
    yield lambda *a, **k: started.append(Server(*a, **k)) or started[-1]
    for s in started:
        s.kill()


def single_args(data=None):
    args = ["--single", "--listen", f"127.0.0.1:{free_port()}", "--metrics", "off"]
    if data is not None:
        args += ["--data", str(data)]
    return args


def test_second_process_on_same_data_dir_is_refused(tmp_path, servers):
    first = servers(single_args(tmp_path / "data"))
    first.wait_for("starting")
    second = subprocess.run([BIN] + single_args(tmp_path / "data"), env=clean_env(),
                            capture_output=True, text=True, timeout=10)
    assert second.returncode != 0
    assert f"pid {first.proc.pid}" in second.stderr
    assert "in use by another process" in second.stderr
    assert first.proc.poll() is None  # the holder is undisturbed
    assert first.stop() == 0


def test_unknown_flag_exits_2_naming_it():
    out = subprocess.run([BIN, "--single", "--no-such-flag"], env=clean_env(),
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 2
    assert "--no-such-flag" in out.stderr


def test_unknown_variable_exits_2_naming_it():
    out = subprocess.run([BIN, "--single"], env=clean_env(**{PREFIX + "LISTN": "x"}),
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 2
    assert PREFIX + "LISTN" in out.stderr


def test_env_file_supplies_settings(tmp_path, servers):
    port = free_port()
    envf = tmp_path / "ledger.env"
    envf.write_text(f"# node settings\nexport {PREFIX}DATA={tmp_path / 'd'}\n"
                    f"{PREFIX}LISTEN='127.0.0.1:{port}'\n{PREFIX}METRICS=off\n"
                    f"{PREFIX}CLUSTER=1\n")
    s = servers([], env=clean_env(**{PREFIX + "ENV_FILE": str(envf)}))
    line = s.wait_for("starting")
    assert f"listen=127.0.0.1:{port}" in line
    assert "mode=single" in line
    assert (tmp_path / "d" / "node_id").exists()
    assert s.stop() == 0


def test_missing_named_env_file_is_an_error(tmp_path):
    missing = tmp_path / "nope.env"
    out = subprocess.run([BIN, "--single"], env=clean_env(**{PREFIX + "ENV_FILE": str(missing)}),
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 2
    assert str(missing) in out.stderr


SPEC_VARIABLES = ["LISTEN", "ADVERTISE", "DATA", "METRICS", "SINGLE", "CLUSTER", "JOIN",
                  "PEERS", "BATCH_SIZE", "BATCH_DELAY", "BACKUP_DIR", "BACKUP_INTERVAL",
                  "LOG_FORMAT", "LOG_LEVEL", "CLUSTER_SECRET_FILE", "ALLOW_FAULT_INJECTION",
                  "PEERS_POLL", "PEERS_TIMEOUT", "BACKUP_KEEP", "TLS_CERT", "TLS_KEY",
                  "TLS_CA", "ADMIN_TOKEN_FILE", "ENV_FILE"]


def test_help_lists_every_variable():
    out = subprocess.run([BIN, "--help"], env=clean_env(), capture_output=True, text=True,
                         timeout=10)
    assert out.returncode == 0
    listed = set(re.findall(PREFIX + r"([A-Z0-9_]+)", out.stdout))
    assert set(SPEC_VARIABLES) <= listed
    for flag in ["--force", "--inspect", "--help", "--version", "--batch-size"]:
        assert re.search(rf"^  {flag}\b", out.stdout, re.M), flag
    assert "default: 127.0.0.1:50051" in out.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_gracefully(tmp_path, servers, sig):
    s = servers(single_args(tmp_path / "data"))
    s.wait_for("starting")
    t0 = time.monotonic()
    assert s.stop(sig, timeout=10) == 0
    assert time.monotonic() - t0 < 10
    s.wait_for("stopped")
    # the lock was released: a new process can use the directory
    s2 = servers(single_args(tmp_path / "data"))
    s2.wait_for("starting")
    assert s2.stop() == 0


def test_ephemeral_data_dir_warning_and_removal(tmp_path, servers):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    s = servers(single_args(), env=clean_env(TMPDIR=str(tmp), **{PREFIX + "LOG_FORMAT": "json"}))
    line = s.wait_for("ephemeral")
    rec = json.loads(line)
    assert rec["level"] == "warn"
    path = re.search(r"(/\S*/ledger-\w{6})", rec["msg"]).group(1)
    assert path.startswith(str(tmp))
    assert os.path.isdir(path)
    assert os.path.exists(os.path.join(path, "node_id"))
    s.wait_for("starting")
    assert s.stop() == 0
    assert not os.path.exists(path)
    assert os.listdir(tmp) == []


def test_multi_node_mode_without_data_is_an_error():
    out = subprocess.run([BIN, "--join", "--peers", "127.0.0.1:1"], env=clean_env(),
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 2
    assert "no data directory" in out.stderr


def test_node_id_is_stable_across_restarts(tmp_path, servers):
    ids = []
    for _ in range(2):
        s = servers(single_args(tmp_path / "data"))
        ids.append(re.search(r"node_id=(\d+)", s.wait_for("starting")).group(1))
        assert s.stop() == 0
    assert ids[0] == ids[1] != "0"
    assert (tmp_path / "data" / "node_id").read_text().strip() == ids[0]
    out = subprocess.run([BIN, "--inspect", "--data", str(tmp_path / "data")], env=clean_env(),
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    assert f"node_id: {ids[0]}" in out.stdout


def test_tls_options_are_refused_with_a_clear_message(tmp_path):
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    out = subprocess.run([BIN] + single_args(tmp_path / "d") + ["--tls-cert", str(cert),
                                                              "--tls-key", str(cert)],
                         env=clean_env(), capture_output=True, text=True, timeout=10)
    assert out.returncode == 1
    assert "TLS on the gRPC port is not supported" in out.stderr


def test_empty_admin_token_file_is_a_startup_error(tmp_path):
    tok = tmp_path / "token"
    tok.write_text("\n")
    out = subprocess.run([BIN] + single_args(tmp_path / "d") + ["--admin-token-file", str(tok)],
                         env=clean_env(), capture_output=True, text=True, timeout=10)
    assert out.returncode == 1
    assert "admin-token-file" in out.stderr and "empty" in out.stderr
