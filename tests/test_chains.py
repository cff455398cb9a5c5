"""Chains: the score is the documented function of the evidence; beaconing per RITA;
baselines learn, load (hand-edited) and mitigate; the graph exports."""
from __future__ import annotations

import json

import networkx as nx
import pytest

from netan.chains.analytics import KINDS, score_chain, severity
from netan.chains.baseline import Baseline, learn_baseline
from netan.chains.beacon import beacon_score
from netan.chains.builder import ChainBuilder
from netan.problems import InputError
from netan.schema import new_flow_record


def ev(kind):
    k = KINDS[kind]
    return {"kind": kind, "source": k.source, "weight": k.weight, "detail": kind}


def test_score_is_sum_of_weights_for_matched_analytic():
    items = [ev("non_tls_encrypted_egress"), ev("block_aligned"), ev("repeated_blocks"), ev("background_state")]
    score, analytics, per = score_chain(items)
    assert per["AN1731"] == 30 + 15 + 25 + 10
    assert per["AN1716"] == 30 + 10
    assert analytics == ["AN1731", "AN1716"] and score == 80 and severity(score) == "high"


def test_no_core_evidence_caps_at_info():
    score, analytics, _ = score_chain([ev("background_state"), ev("no_user_interaction"), ev("upload_dominant"),
                                       ev("key_integrity_violation")])
    assert analytics == [] and score == 39 and severity(score) == "info"


def test_mitigation_lowers_and_clamps():
    score, _, per = score_chain([ev("non_tls_encrypted_egress"), ev("baseline_destination"),
                                 ev("foreground_with_interaction")])
    assert per["AN1716"] == 0 and score == 0


@pytest.mark.parametrize("bound,name", [(0, "info"), (39, "info"), (40, "low"), (54, "low"), (55, "medium"),
                                        (69, "medium"), (70, "high"), (84, "high"), (85, "critical"), (100, "critical")])
def test_severity_bounds(bound, name):
    assert severity(bound) == name


def test_beacon_regular_vs_random():
    import random

    rng = random.Random(1)
    regular = beacon_score([i * 60.0 for i in range(60)], [512] * 60)
    jittery = beacon_score(sorted(rng.uniform(0, 3600) for _ in range(60)), [rng.randint(10, 90000) for _ in range(60)])
    assert regular.score > 0.9 and regular.ts_score == 1.0 and regular.ds_score == 1.0
    assert jittery.score < regular.score - 0.3
    assert beacon_score([0, 1, 2], [1, 2, 3]) is None  # RITA's minimum: 4 connections


def flow(**kw):
    base = dict(flow_id="F1", community_id="1:x", ts=1000.0, ts_end=1001.0, proto="tcp", src_ip="10.0.0.5",
                src_port=40000, dst_ip="198.51.100.7", dst_port=7000, bytes_out=4000, bytes_in=100,
                pkts_out=5, pkts_in=3)
    base.update(kw)
    return new_flow_record(**base)


def encrypted(r, framing=()):
    r["payload"]["out"] = {"n": 2048, "entropy": 7.9, "class": "encrypted"}
    r["framing"] = list(framing)
    return r


def test_custom_crypto_without_context_scores_at_least_55():
    cb = ChainBuilder()
    for i in range(3):
        cb.observe(encrypted(flow(flow_id=f"F{i}", ts=1000.0 + 60 * i, ts_end=1001.0 + 60 * i),
                             ["length_prefixed", "block_aligned_16"]))
    (chain,) = cb.finalize()
    assert chain["score"] >= 55 and "AN1731" in chain["analytics"]
    assert chain["flows"] == ["F0", "F1", "F2"] and chain["app"] is None
    kinds = {e["kind"] for e in chain["evidence"]}
    assert {"non_tls_encrypted_egress", "block_aligned", "length_prefixed", "no_context"} <= kinds
    assert sum(e["weight"] for e in chain["evidence"] if "AN1731" in KINDS[e["kind"]].analytics) == \
        chain["analytic_scores"]["AN1731"]


def test_benign_tls_makes_no_chain():
    cb = ChainBuilder()
    r = flow(l7="tls", dst_port=443, dst_name="www.example.com", tls={"sni": "www.example.com", "version": "TLSv1.3"})
    r["payload"]["out"] = {"n": 1000, "entropy": 7.9, "class": "encrypted"}
    cb.observe(r)
    assert cb.finalize() == []


def test_baseline_learn_save_load_and_mitigate(tmp_path):
    normal = [encrypted(flow(flow_id=f"N{i}", dst_name="sync.example.net")) for i in range(3)]
    bl = learn_baseline(normal)
    path = tmp_path / "baseline.json"
    bl.save(str(path))
    data = json.loads(path.read_text())
    data["subjects"]["client:10.0.0.5"]["names"].append("added-by-hand.example.org")
    path.write_text(json.dumps(data))
    loaded = Baseline.load(str(path))
    cb = ChainBuilder(baseline=loaded)
    cb.observe(encrypted(flow(flow_id="K", dst_name="added-by-hand.example.org")))
    cb.observe(encrypted(flow(flow_id="U", dst_ip="203.0.113.9", dst_port=9999)))
    chains = {c["flows"][0]: c for c in ChainBuilder.finalize(cb)}
    assert "K" not in chains or chains["K"]["score"] < chains["U"]["score"]
    kinds_u = {e["kind"] for e in chains["U"]["evidence"]}
    assert "new_destination" in kinds_u


@pytest.mark.parametrize("content", ["{", '{"schema": "other"}', '{"schema": "netan-baseline/1", "subjects": 3}'])
def test_bad_baseline_is_an_input_error(tmp_path, content):
    p = tmp_path / "b.json"
    p.write_text(content)
    with pytest.raises(InputError):
        Baseline.load(str(p))


def test_graphml_export(tmp_path):
    cb = ChainBuilder()
    cb.observe(encrypted(flow(), ["repeated_blocks"]))
    assert cb.finalize()
    out = tmp_path / "g.graphml"
    cb.write_graphml(str(out))
    g = nx.read_graphml(out)
    kinds = {d["kind"] for _, d in g.nodes(data=True)}
    assert {"client", "flow", "destination"} <= kinds


def test_docs_evidence_table_is_current():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "gen_chain_docs.py"
    assert subprocess.run([sys.executable, str(script), "--check"]).returncode == 0, \
        "docs/chains.md is stale: run python scripts/gen_chain_docs.py"


def _run_cli(args):
    from click.testing import CliRunner

    from netan.cli import main

    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def test_empty_capture_gives_empty_outputs(tmp_path):
    import struct

    empty = tmp_path / "empty.pcap"
    empty.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # a header, no packet
    out = tmp_path / "o"
    _run_cli(["analyze", str(empty), "--out", str(out), "--report"])
    assert (out / "flows.jsonl").read_text() == "" and (out / "chains.jsonl").read_text() == ""
    assert (out / "report.html").exists()


def test_context_that_contradicts_the_capture(tmp_path):
    """Events for flows that never happened, and a device clock hours off: chains say what
    they are based on, nothing crashes, and no app is invented."""
    import json as _json

    from conftest import REPO

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    real = REPO / "context"
    for f in real.iterdir():
        if f.suffix in (".jsonl", ".json"):
            text = f.read_text()
            if "usageLogEvents" in text:  # shift every AMAPI event three hours
                batches = [_json.loads(line) for line in text.splitlines() if line.strip()]
                for b in batches:
                    for e in b.get("usageLogEvents", []):
                        e["eventTime"] = e["eventTime"].replace("T", "T", 1)
                        hh = int(e["eventTime"][11:13])
                        e["eventTime"] = e["eventTime"][:11] + f"{(hh + 3) % 24:02d}" + e["eventTime"][13:]
                text = "\n".join(_json.dumps(b) for b in batches) + "\n"
            (ctx / f.name).write_text(text)
    out = tmp_path / "o"
    pcaps = sorted(str(p) for p in (REPO / "captures").glob("*.pcap"))
    _run_cli(["analyze", *pcaps, "--context", str(ctx), "--out", str(out)])
    chains = [_json.loads(x) for x in (out / "chains.jsonl").read_text().splitlines()]
    for c in chains:
        assert set(c["based_on"]) == {"network", "context", "baseline"}
        assert c["evidence"]
    summary = _json.loads((out / "summary.json").read_text())
    assert "devices" in summary["context"]
