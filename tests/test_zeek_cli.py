"""`netan zeek` end to end: Zeek's own logs in, the contract and Zeek-format logs out;
the same traffic logged as TSV and as JSON gives the same netan output."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

from click.testing import CliRunner

from conftest import REPO
from netan.cli import main

CHECKER = REPO.parent / "shared" / "tools" / "check_contract.py"


def test_zeek_logs_to_contract_and_zeek_outputs(tmp_path, corpus):
    logs = corpus / "stratosphere-security-datasets-for-testing" / "003-zeek-scenario-malicious"
    out = tmp_path / "o"
    res = CliRunner().invoke(main, ["zeek", str(logs), "--out", str(out), "--report"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert subprocess.run([sys.executable, str(CHECKER), str(out)]).returncode == 0
    flows = [json.loads(x) for x in (out / "flows.jsonl").read_text().splitlines()]
    assert len(flows) >= 300 and all(f["zeek_uid"] for f in flows)
    header = (out / "netan_flows.log").read_text().splitlines()[:8]
    assert header[0] == "#separator \\x09" and any(h.startswith("#fields\t") for h in header)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"] == "zeek" and summary["skipped"]["by_reason"].get("not_a_zeek_log") == 1  # README.md
    assert (out / "report.html").exists()


def test_tsv_and_json_logs_give_identical_output(tmp_path, corpus):
    base = corpus / "zeek-logs-wrccdc-brimdata"
    tsv, js = tmp_path / "tsv", tmp_path / "json"
    tsv.mkdir()
    js.mkdir()
    for name in ("ssl", "x509"):
        shutil.copy(base / "zeek-default" / f"{name}.log.gz", tsv / f"{name}.log.gz")
        shutil.copy(base / "zeek-json" / f"{name}.json.gz", js / f"{name}.json.gz")
    outs = []
    for src in (tsv, js):
        out = tmp_path / f"out-{src.name}"
        res = CliRunner().invoke(main, ["-q", "zeek", str(src), "--out", str(out)], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        outs.append(out)
    for name in ("flows.jsonl", "chains.jsonl", "netan_flows.log"):
        a, b = (o / name for o in outs)
        if name.endswith(".log"):  # the #open line carries the time of writing
            strip = lambda p: [x for x in p.read_text().splitlines() if not x.startswith(("#open", "#close"))]  # noqa
            assert strip(a) == strip(b)
        else:
            assert a.read_bytes() == b.read_bytes(), name
