"""Ledger metrics of SPEC §8 that the single-node ledger feeds: write and read
latency histograms and the Raft batch size, in a promtool-clean exposition."""
import re
import subprocess

from ledger_api import b64, chain, setup_vault, write


def sample(text, name):
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def test_write_read_latency_and_batch_size(ledger):
    org, vault = setup_vault(ledger)
    for i in range(3):
        write(ledger, org, vault, [{"set_entity": {"key": "k%d" % i, "value": b64("v")}}])
    ledger.call("ledger.v1.ReadService/Read", dict(chain(org, vault), key="k0"))
    text = ledger.metrics()
    assert sample(text, 'ledger_write_latency_seconds_count{status="ok"}') >= 3
    assert sample(text, "ledger_read_latency_seconds_count") >= 1
    # org + vault creation and three writes: at least five proposed commands
    assert sample(text, "ledger_batch_size_sum") >= 5
    assert sample(text, "ledger_batch_size_count") >= 1
    out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
