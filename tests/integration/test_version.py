import os
import subprocess

BIN = os.environ.get("LEDGER_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "inferadb-ledger"))


def test_version_prints_name_and_version():
    out = subprocess.run([BIN, "--version"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    assert out.stdout.startswith("inferadb-ledger ")
