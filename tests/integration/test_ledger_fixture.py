"""Tests of conftest.py's ledger fixture machinery, using fake_ledger.py in
place of the real binary (the real server is tested elsewhere)."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import LedgerStartError

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_ledger.py")
HERE = os.path.dirname(os.path.abspath(__file__))


def test_start_ready_metrics_restart_kill(ledger_factory):
    node = ledger_factory(bin=FAKE)
    assert node.running()
    assert node.health_check() == 1
    assert node.addr != node.metrics_addr
    assert "fake_ledger_up 1" in node.metrics()
    assert node.rss_kb() > 1000
    pid = node.pid
    node.restart()
    assert node.pid != pid and node.health_check() == 1
    assert node.kill9() == -9
    assert not node.running()
    node.start()
    assert node.stop() == 0
    with open(os.path.join(node.data_dir, "starts")) as fh:
        assert fh.read().count("start") == 3
    log = node.log_text()
    assert log.count("=== start:") == 3 and "msg=stopping" in log
    assert "--single --data %s --listen %s --metrics %s --log-format text" % (
        node.data_dir, node.addr, node.metrics_addr) in log


def test_two_nodes_get_distinct_ports(ledger_factory):
    a = ledger_factory(bin=FAKE)
    b = ledger_factory(bin=FAKE)
    assert len({a.port, a.metrics_port, b.port, b.metrics_port}) == 4
    assert a.data_dir != b.data_dir


def test_start_failure_reports_log(ledger_factory):
    with pytest.raises(LedgerStartError) as ei:
        ledger_factory(bin=FAKE, env={"FAKE_LEDGER_FAIL": "1"})
    assert "exited with status 3" in str(ei.value)
    assert "fake start-up failure" in str(ei.value)


def test_failing_test_gets_ledger_log_section(tmp_path):
    shutil.copy(os.path.join(HERE, "conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_inner.py").write_text(
        "def test_fails(ledger_factory):\n"
        "    ledger_factory(bin=%r)\n"
        "    assert False, 'deliberate'\n" % FAKE)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(tmp_path / "test_inner.py")],
                       capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "ledger log node0" in r.stdout
    assert "msg=ready" in r.stdout
