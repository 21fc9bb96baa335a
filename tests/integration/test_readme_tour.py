"""README's five-minute tour, run verbatim against a fresh --single node.

The shell block under "Five-minute tour" is extracted from README.md; only the
addresses are replaced with the test node's ports."""
import os
import re
import subprocess

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def tour_script():
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text[text.index("## Five-minute tour"):]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def test_readme_tour_runs_verbatim(ledger):
    script = tour_script()
    assert "CreateOrganization" in script and "WriteService/Write" in script
    script = script.replace("127.0.0.1:50051", ledger.addr)
    script = script.replace("127.0.0.1:9090", ledger.metrics_addr)
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    o = out.stdout
    assert "ledger.v1.WriteService" in o                      # list
    assert "HEALTH_STATUS_HEALTHY" in o                       # health
    assert '"blockHeight": "1"' in o                          # the write's block
    assert '"value": "eyJyb2xlIjoiYWRtaW4ifQ=="' in o          # the read
    assert '"subject": "user:alice"' in o                     # the relationship
    assert '"height": "1"' in o                               # the tip
    assert re.search(r"^1$", o, re.M)                         # ListVaults | jq
    assert 'ledger_grpc_requests_total{service="ledger.v1.WriteService",method="Write",code="OK"} 1' in o
