"""docs/configuration.md and `inferadb-ledger --help` describe the same options."""
import os
import re
import subprocess

BIN = os.environ.get("LEDGER_BIN", os.path.join(os.path.dirname(__file__), "..", "..",
                                                "build", "inferadb-ledger"))
DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "configuration.md")
PREFIX = "INFERADB__LEDGER__"


def help_options():
    """{flag: (variable or None, default or None)} from --help."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    out = subprocess.run([BIN, "--help"], env=env, capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    opts, cur = {}, None
    for line in out.stdout.splitlines():
        m = re.match(r"^  (--[a-z-]+)( \S+)?$", line)
        if m:
            cur = m.group(1)
            opts[cur] = [None, None]
            continue
        m = re.match(r"^      variable: (" + PREFIX + r"[A-Z0-9_]+)$", line)
        if m and cur:
            opts[cur][0] = m.group(1)
        m = re.match(r"^      default: (.*)$", line)
        if m and cur:
            opts[cur][1] = m.group(1)
    return opts


def doc_rows():
    """{flag: (variable or None, default cell)} from the reference table."""
    rows = {}
    with open(DOC) as f:
        for line in f:
            if not line.startswith("| `--"):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            flag = re.match(r"`(--[a-z-]+)", cells[0]).group(1)
            var = re.search(r"`(" + PREFIX + r"[A-Z0-9_]+)`", cells[1])
            rows[flag] = (var.group(1) if var else None, cells[2])
    return rows


def test_every_help_option_is_documented_and_vice_versa():
    opts, rows = help_options(), doc_rows()
    assert len(opts) > 25
    assert set(opts) == set(rows), (set(opts) ^ set(rows))
    for flag, (var, _) in opts.items():
        assert rows[flag][0] == var, flag


def test_documented_defaults_match_help():
    opts, rows = help_options(), doc_rows()
    for flag, (_, default) in opts.items():
        if default is None or " " in default:
            continue  # prose defaults are written for each medium
        assert f"`{default}`" in rows[flag][1] or default == "none" and "none" in rows[flag][1], \
            (flag, default, rows[flag][1])


def test_every_variable_named_in_the_doc_exists():
    known = {v for v, _ in help_options().values() if v}
    with open(DOC) as f:
        text = f.read()
    named = set(re.findall(PREFIX + r"[A-Z0-9_]*[A-Z0-9]", text)) - {PREFIX + "NAME"}
    unknown = named - known - {PREFIX + "FORCE"}  # named as an example of an error
    assert not unknown, unknown
