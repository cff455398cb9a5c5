"""The HTML report: self-contained, renders in headless Chromium without console
errors, and nothing attacker-controlled executes."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from netan.cli import main
from netan.explain import explain_chain
from netan.sinks.report import write_report
from netan.summary_text import render_summary

HOSTILE = [
    "<script>document.title='PWNED'</script>",
    "\"><img src=x onerror=\"document.title='PWNED'\">",
    "</script><script>document.title='PWNED'</script>",
    "javascript:document.title='PWNED'",
    "<svg onload=\"document.title='PWNED'\">",
    "{{7*7}}<b id=injected>x</b>",
]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("Chromium is not installed (scripts/install-system-deps.sh installs it)")
    return path


def hostile_outputs(tmp: Path) -> Path:
    out = tmp / "hostile"
    out.mkdir()
    flows, chains = [], []
    for i, bad in enumerate(HOSTILE):
        fid = f"F{i}"
        flows.append({
            "schema": "netan/1", "flow_id": fid, "community_id": "1:x", "ts": 1700000000.0 + i, "ts_end": 1700000001.0 + i,
            "proto": "tcp", "src_ip": "10.0.0.1", "src_port": 1000 + i, "dst_ip": "10.0.0.2", "dst_port": 443,
            "src_mac": None, "bytes_out": 1000, "bytes_in": 10, "pkts_out": 3, "pkts_in": 2, "l7": bad,
            "payload": {"out": {"n": 100, "entropy": 7.9, "class": "encrypted"}, "in": {"n": 0, "entropy": None,
                                                                                        "class": "empty"}},
            "framing": [bad], "tls": {"sni": bad, "cert": {"subject": bad}}, "device": bad, "app": bad,
            "attribution": bad, "app_state": "background", "dst_name": bad,
            "http": {"host": bad, "path": bad, "user_agent": bad},
        })
        chains.append({
            "schema": "netan/1", "chain_id": f"C{i}", "device": bad, "app": bad, "score": 80, "severity": "high",
            "analytics": ["AN1716"], "ts_start": 1700000000.0, "ts_end": 1700000001.0, "flows": [fid],
            "destinations": [bad], "keys": [bad], "subject": bad,
            "evidence": [{"kind": "non_tls_encrypted_egress", "source": "network", "weight": 30, "detail": bad}],
        })
    (out / "flows.jsonl").write_text("".join(json.dumps(f) + "\n" for f in flows))
    (out / "chains.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chains))
    (out / "summary.json").write_text(json.dumps({"schema": "netan/1", "netan_version": HOSTILE[0],
                                                  "command": HOSTILE[1], "counts": {"packets": 10},
                                                  "skipped": {"total": 1, "by_reason": {HOSTILE[2]: 1}}}))
    (out / "timelines.json").write_text(json.dumps({"devices": {HOSTILE[0]: {
        "apps": {HOSTILE[1]: [[1700000000.0, 1700000003.0, "background"]]},
        "interactions": {HOSTILE[1]: [1700000000.5]}, "keys": [{"ts": 1700000000.2, "alias": HOSTILE[3],
                                                                 "packages": [HOSTILE[1]]}],
        "screen": [[1700000001.0, "non_interactive"]]}}}))
    return out


def test_hostile_strings_are_escaped(tmp_path):
    out = hostile_outputs(tmp_path)
    html = Path(write_report(str(out))).read_text()
    for bad in HOSTILE:
        if "<" in bad or '"' in bad:
            assert bad not in html, bad
    assert "<b id=injected>" not in html
    for ref in ('src="http', "src='http", 'href="http', "url(http", "@import"):
        assert ref not in html, f"the report must not load anything from the network: {ref}"


def test_report_renders_in_chromium_and_nothing_executes(tmp_path):
    exe = chromium()
    out = hostile_outputs(tmp_path)
    report = Path(write_report(str(out)))
    profile = tmp_path / "profile"
    res = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr",
                          "--v=0", "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120)
    dom = res.stdout
    assert "<title>netan report</title>" in dom and "PWNED" not in dom.split("</title>")[0]
    assert 'id="injected"' not in dom
    console = [ln for ln in res.stderr.splitlines() if "CONSOLE" in ln]
    assert not console, console


def test_demo_report_screenshot_is_not_blank_and_has_no_console_errors(tmp_path):
    exe = chromium()
    out = tmp_path / "o"
    res = CliRunner().invoke(main, ["demo", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert str(out / "report.html") in res.output  # the demo says where its report is
    console = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'p1'}", "--enable-logging=stderr",
                              "--v=0", "--dump-dom", (out / "report.html").as_uri()], capture_output=True, text=True,
                             timeout=120)
    assert not [ln for ln in console.stderr.splitlines() if "CONSOLE" in ln]
    assert "com.example.exfil" in console.stdout  # the demo's chain is on the page
    shot = tmp_path / "shot.png"
    subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'p2'}", "--window-size=1280,1600",
                    f"--screenshot={shot}", (out / "report.html").as_uri()], capture_output=True, timeout=120)
    from PIL import Image

    img = Image.open(shot).convert("L")
    lo, hi = img.getextrema()
    colours = len(img.getcolors(1 << 16) or [])
    assert hi - lo > 100 and colours > 20, "screenshot looks blank"


def test_explain_and_summary_text():
    chain = {"chain_id": "C1", "score": 83, "severity": "high", "analytics": ["AN1731"], "app": "com.x\x1b[2J",
             "device": "enterprises/E/devices/D", "destinations": ["c2.example:4443"], "keys": ["k1"],
             "ts_start": 1700000000.0, "ts_end": 1700000060.0, "flows": ["F1"],
             "evidence": [{"kind": "repeated_blocks", "source": "network", "weight": 25, "detail": "ECB"},
                          {"kind": "baseline_destination", "source": "network", "weight": -25, "detail": "known"}],
             "based_on": {"network": True, "context": True, "baseline": False}}
    text = explain_chain(chain, {})
    assert "score 83 (high)" in text and "AN1731" in text and "+   25  repeated_blocks" in text
    assert "-25" in text and "\x1b" not in text and "\\x1b" in text
    summary = {"command": "analyze", "counts": {"packets": 5, "flows": 2, "chains": 1},
               "skipped": {"total": 3, "by_reason": {"truncated packet": 3}},
               "context": {"share_attributed": 0.5}, "top_chains": [chain], "timings": {"total_s": 1.0}}
    text = render_summary(summary, "/tmp/x")
    assert "flows attributed to an app: 50%" in text and "skipped 3: truncated packet" in text
    assert "83" in text and "\x1b" not in text


def test_progress_line_only_on_a_terminal_and_erased_at_the_end():
    import io

    from netan.progress import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert Progress.for_terminal(stream=io.StringIO()) is None  # redirected: no progress at all
    assert Progress.for_terminal(quiet=True, stream=Tty()) is None
    tty = Tty()
    p = Progress.for_terminal(stream=tty)
    p.every_s = 0.0
    p({"packets": 1000, "flows": 3, "bytes": 2_000_000, "files": 2, "file_index": 1})
    shown = tty.getvalue()
    assert "file 1/2" in shown and "2.0 MB" in shown and "packets/s" in shown
    p({"done": True})
    assert tty.getvalue().endswith("\r\x1b[K")  # the line is erased when the run ends
