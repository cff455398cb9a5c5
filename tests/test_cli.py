"""The CLI and the output contract, including bad input: every problem is named,
counted with file and offset, never a traceback; exit codes per CONTRACT.md."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import REPO
from crafted import write_pcap
from netan.cli import main
from test_engine import tcp_session, timed

CHECKER = REPO.parent / "shared" / "tools" / "check_contract.py"


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def check_contract(out_dir) -> None:
    if not CHECKER.exists():
        pytest.skip("shared/tools/check_contract.py is not present")
    res = subprocess.run([sys.executable, str(CHECKER), str(out_dir)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout


def summary(out_dir):
    return json.loads((out_dir / "summary.json").read_text())


def good_pcap(tmp_path):
    return write_pcap(tmp_path / "good.pcap", timed(tcp_session()))


def test_analyze_writes_contract_outputs(tmp_path):
    out = tmp_path / "out"
    res = run(["analyze", str(good_pcap(tmp_path)), "--out", str(out)])
    assert res.exit_code == 0, res.output
    check_contract(out)
    flows = [json.loads(x) for x in (out / "flows.jsonl").read_text().splitlines()]
    assert len(flows) == 1 and flows[0]["bytes_out"] == 5
    assert summary(out)["counts"]["packets"] == 8
    assert not [p for p in os.listdir(out) if p.startswith(".")], "temporary files left behind"


@pytest.mark.parametrize("name", ["foxio-ja4/pcap/latest.pcapng", "pcapdroid/pcap/metadata.pcap",
                                  "foxio-ja4/pcap/gre-erspan-vxlan.pcap", "pcapdroid/pcap/invalid_or_unsupported.pcap"])
def test_corpus_outputs_meet_contract(tmp_path, corpus, name):
    out = tmp_path / "o"
    res = run(["analyze", str(corpus / name), "--out", str(out)])
    assert res.exit_code == 0, res.output
    check_contract(out)


def test_truncated_file_keeps_what_it_can(tmp_path):
    raw = good_pcap(tmp_path).read_bytes()
    bad = tmp_path / "trunc.pcap"
    bad.write_bytes(raw[:-30])
    out = tmp_path / "o"
    res = run(["analyze", str(bad), "--out", str(out)])
    assert res.exit_code == 0
    s = summary(out)
    assert s["counts"]["packets"] == 7
    (ex,) = s["skipped"]["examples"]
    assert ex["file"] == str(bad) and ex["where"].startswith("offset ") and "truncated" in ex["reason"]
    assert "truncated" in res.output


def test_corrupt_record_length_resynchronises(tmp_path):
    raw = bytearray(good_pcap(tmp_path).read_bytes())
    # the third record's incl_len (offset 24 + two records) becomes absurd
    pos = 24
    for _ in range(2):
        incl = int.from_bytes(raw[pos + 8 : pos + 12], "little")
        pos += 16 + incl
    raw[pos + 8 : pos + 12] = (0x7FFFFFFF).to_bytes(4, "little")
    bad = tmp_path / "corrupt.pcap"
    bad.write_bytes(bytes(raw))
    out = tmp_path / "o"
    assert run(["analyze", str(bad), "--out", str(out)]).exit_code == 0
    s = summary(out)
    assert s["counts"]["packets"] == 7  # only the damaged record is lost
    assert any("corrupt record length" in r for r in s["skipped"]["by_reason"])
    assert s["skipped"]["examples"][0]["where"] == f"offset {pos}"


def test_snaplen_truncated_packet_counts_wire_bytes(tmp_path):
    frames = timed(tcp_session(data_out=b"x" * 1000))
    path = write_pcap(tmp_path / "snap.pcap", frames)
    raw = bytearray(path.read_bytes())
    # cut the 4th packet (the data packet) to 80 captured bytes, keep orig_len
    pos = 24
    for _ in range(3):
        pos += 16 + int.from_bytes(raw[pos + 8 : pos + 12], "little")
    incl = int.from_bytes(raw[pos + 8 : pos + 12], "little")
    raw[pos + 8 : pos + 12] = (80).to_bytes(4, "little")
    del raw[pos + 16 + 80 : pos + 16 + incl]
    path.write_bytes(bytes(raw))
    out = tmp_path / "o"
    assert run(["analyze", str(path), "--out", str(out)]).exit_code == 0
    flow = json.loads((out / "flows.jsonl").read_text())
    assert flow["bytes_out"] == 1000 and flow["payload"]["out"]["n"] == 80 - 54
    assert summary(out)["counts"]["snaplen_truncated"] == 1


def test_unknown_link_type_is_counted(tmp_path):
    path = write_pcap(tmp_path / "lt.pcap", timed(tcp_session()), linktype=147)  # USER0
    out = tmp_path / "o"
    assert run(["analyze", str(path), "--out", str(out)]).exit_code == 0
    s = summary(out)
    assert s["skipped"]["by_reason"] == {"unsupported link type 147": 8}


@pytest.mark.parametrize("content,reason", [(b"", "empty file"), (b"GIF89a......" * 4, "not a pcap or pcapng file"),
                                            (b"\x1f\x8b\x08\x00garbage", "gzip")])
def test_unreadable_inputs_exit_1_with_one_line(tmp_path, content, reason):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(content)
    res = subprocess.run([sys.executable, "-m", "netan.cli", "analyze", str(bad), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("netan: error:")]
    assert len(errors) == 1 and str(bad) in errors[0] and reason in errors[0]


def test_directory_and_missing_path(tmp_path):
    for target, reason in [(tmp_path, "is a directory"), (tmp_path / "nope.pcap", "no such file")]:
        res = subprocess.run([sys.executable, "-m", "netan.cli", "analyze", str(target), "--out",
                              str(tmp_path / "o")], capture_output=True, text=True)
        assert res.returncode == 1 and reason in res.stderr and "Traceback" not in res.stderr


def test_one_bad_file_among_good_ones_still_writes_output(tmp_path):
    bad = tmp_path / "empty.pcap"
    bad.write_bytes(b"")
    out = tmp_path / "o"
    res = run(["analyze", str(good_pcap(tmp_path)), str(bad), "--out", str(out)])
    assert res.exit_code == 1
    s = summary(out)
    assert s["unreadable"] == [{"file": str(bad), "reason": "empty file"}]
    assert s["counts"]["flows"] == 1
    check_contract(out)


def test_usage_error_exit_2(tmp_path):
    assert run(["analyze", "--out", str(tmp_path)]).exit_code == 2
    assert run(["analyze", str(good_pcap(tmp_path))]).exit_code == 2
    assert run(["analyze", str(good_pcap(tmp_path)), "--out", str(tmp_path / "o"), "--idle-timeout", "-1"]
               ).exit_code == 2


def test_worker_processes_change_nothing_in_the_output(tmp_path, corpus):
    """Analyzers in worker processes: flows and chains byte-identical to one process."""
    inputs = [str(corpus / "foxio-ja4/pcap/latest.pcapng"), str(corpus / "pcapdroid/pcap/metadata.pcap"),
              str(corpus / "foxio-ja4/pcap/tls-handshake.pcapng")]
    outs = []
    for workers in ("0", "2"):
        out = tmp_path / f"w{workers}"
        assert run(["analyze", *inputs, "--out", str(out), "--workers", workers]).exit_code == 0
        outs.append(out)
    for name in ("flows.jsonl", "chains.jsonl"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    assert summary(outs[1])["analyzers"]["workers"] == 2


def test_analyzers_option_selects_the_per_flow_analysis(tmp_path, corpus):
    """--analyzers none: the flow records alone (the nfstream-like export); a subset runs only those."""
    capture = str(corpus / "foxio-ja4/pcap/tls-handshake.pcapng")
    outs = {}
    for choice in ("all", "none", "payload"):
        out = tmp_path / choice
        res = run(["analyze", capture, "--out", str(out), "--analyzers", choice])
        assert res.exit_code == 0, res.output
        check_contract(out)
        outs[choice] = [json.loads(x) for x in (out / "flows.jsonl").read_text().splitlines()]
    assert summary(tmp_path / "none")["analyzers"]["selected"] == []
    assert summary(tmp_path / "none")["analyzers"]["workers"] == 0
    tls = [r for r in outs["all"] if r["tls"]]
    assert tls, "the capture has TLS flows"
    for full, bare, payload in zip(outs["all"], outs["none"], outs["payload"]):
        for key in ("flow_id", "bytes_out", "bytes_in", "pkts_out", "pkts_in", "sizes", "iats", "end_reason"):
            assert full[key] == bare[key] == payload[key], key  # the engine's part does not change
        assert bare["tls"] is None and bare["l7"] == "unknown"
        assert bare["payload"]["out"]["entropy"] is None
        assert payload["tls"] is None and payload["payload"] == full["payload"]
    res = run(["analyze", capture, "--out", str(tmp_path / "bad"), "--analyzers", "payload,nosuch"])
    assert res.exit_code == 2 and "nosuch" in res.output
