"""netan_flows.log / netan_chains.log in Zeek's TSV and JSON formats.

The oracle is an independent Zeek log parser (parsezeeklogs, in the test
extra): what we write must read back, value for value, through a reader we
did not write, and through our own reader's TSV layer.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from netan.problems import Problems
from netan.schema import new_flow_record
from netan.sinks.zeek import CHAIN_COLUMNS, CHAINS_LOG, FLOW_COLUMNS, FLOWS_LOG, escape_value, write_zeek_logs
from netan.sources.zeek.tsv import decoder, read_tsv

OPENED = 1700000000.0


def flow(i: int, **extra) -> dict:
    rec = new_flow_record(
        flow_id=f"f{i}", community_id="1:abc=", ts=1700000000.5 + i, ts_end=1700000002.25 + i, proto="tcp",
        src_ip="10.0.0.2", src_port=40000 + i, dst_ip="2001:db8::7", dst_port=443, bytes_out=1000 * i,
        bytes_in=7, pkts_out=3, pkts_in=2, l7="tls",
        payload={"out": {"n": 512, "entropy": 7.91, "class": "encrypted"}, "in": {"n": 0, "entropy": None,
                                                                             "class": "empty"}},
        framing=["tls_records", "block_aligned_16"],
        tls={"version": "TLSv1.3", "sni": "api.example", "alpn": "h2", "cipher": "TLS_AES_128_GCM_SHA256",
             "ja4": "t13d1516h2_8daaf6152771_e5627efa2ab1", "ja3": None, "ja3s": None,
             "cert": {"subject": "CN=api.example", "issuer": "CN=api.example", "self_signed": True, "key_type": "ec",
                      "key_bits": 256, "not_after": 1800000000.0}},
        app="com.example.app", app_state="background",
    )
    rec.update(extra)
    return rec


CHAIN = {
    "schema": "netan/1", "chain_id": "ch1", "device": "enterprises/E/devices/D", "app": "com.example.app",
    "score": 83, "severity": "high", "analytics": ["AN1716", "AN1762"], "ts_start": 1700000000.5,
    "ts_end": 1700000100.0, "flows": ["f1", "f2"], "destinations": ["api.example:443", "198.51.100.1:8443"],
    "keys": ["k,1"],
    "evidence": [
        {"kind": "keygen", "source": "context", "weight": 20, "detail": "RSA key generated, 2048 bits"},
        {"kind": "egress", "source": "network", "weight": 12.5, "detail": "tab\there and a - dash"},
    ],
}


def header_block(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln.startswith("#")]


def test_tsv_header_block_is_zeeks(tmp_path: Path) -> None:
    write_zeek_logs(str(tmp_path), [flow(1)], [CHAIN], opened=OPENED)
    head = header_block(tmp_path / FLOWS_LOG)
    assert head[:6] == ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-",
                        "#path\tnetan_flows", "#open\t2023-11-14-22-13-20"]
    assert head[6] == "#fields\t" + "\t".join(c[0] for c in FLOW_COLUMNS)
    assert head[7] == "#types\t" + "\t".join(c[1] for c in FLOW_COLUMNS)
    assert head[8] == "#close\t2023-11-14-22-13-20" and len(head) == 9
    chead = header_block(tmp_path / CHAINS_LOG)
    assert chead[4] == "#path\tnetan_chains"
    assert chead[7] == "#types\t" + "\t".join(c[1] for c in CHAIN_COLUMNS)


@pytest.mark.parametrize(
    "value, ztype, want",
    [
        (None, "string", "-"),
        ("", "string", "(empty)"),
        ("-", "string", "\\x2d"),
        ("(empty)", "string", "\\x28empty)"),
        ("a\tb", "string", "a\\x09b"),
        ("back\\slash", "string", "back\\\\slash"),
        ("bell\x07", "string", "bell\\x07"),
        ("😄", "string", "😄"),
        ([], "set[string]", "(empty)"),
        (None, "set[string]", "-"),
        (["a,b", "c"], "vector[string]", "a\\x2cb,c"),
        ([1.5, 2], "vector[double]", "1.5,2.0"),
        (True, "bool", "T"),
        (False, "bool", "F"),
        (1700000000.5, "time", "1700000000.500000"),
        (7.91, "double", "7.91"),
        (443, "port", "443"),
    ],
)
def test_escape_value(value, ztype, want) -> None:
    assert escape_value(value, ztype) == want


def test_round_trip_through_independent_parser(tmp_path: Path) -> None:
    pzl = pytest.importorskip("parsezeeklogs")
    flows = [flow(1), flow(2, zeek_uid="CZeek2", src_mac="02:00:00:00:00:01"),
             flow(3, tls=None, payload={"out": {"n": 0, "entropy": None, "class": "unknown"},
                                       "in": {"n": 0, "entropy": None, "class": "unknown"}}, framing=[])]
    write_zeek_logs(str(tmp_path), iter(flows), [CHAIN], opened=OPENED)
    rows = list(pzl.read_zeek(str(tmp_path / FLOWS_LOG)))
    assert len(rows) == 3
    r1, r2, r3 = rows
    assert r1["uid"] == "f1" and r2["uid"] == "CZeek2" and r2["flow_id"] == "f2"
    assert (r1["id.orig_h"], r1["id.orig_p"], r1["id.resp_h"], r1["id.resp_p"]) == ("10.0.0.2", 40001,
                                                                                    "2001:db8::7", 443)
    assert r1["ts"] == 1700000001.5 and r1["ts_end"] == 1700000003.25
    assert r1["payload.out.entropy"] == 7.91 and r1["payload.in.entropy"] is None
    assert sorted(r1["framing"]) == ["block_aligned_16", "tls_records"]
    assert r1["tls.version"] == "TLSv1.3" and r1["tls.cert.self_signed"] is True
    assert r1["tls.cert.not_after"] == 1800000000.0 and r1["tls.ja3"] is None
    assert r2["orig_l2_addr"] == "02:00:00:00:00:01"
    assert r3["tls.sni"] is None and r3["framing"] == []
    (c,) = list(pzl.read_zeek(str(tmp_path / CHAINS_LOG)))
    assert c["uids"] == ["f1", "CZeek2"]  # keyed by Zeek's uid where the flow had one
    assert c["flows"] == ["f1", "f2"] and c["keys"] == ["k,1"]
    assert c["evidence.detail"] == ["RSA key generated, 2048 bits", "tab\there and a - dash"]
    assert c["evidence.weight"] == [20.0, 12.5] and c["score"] == 83


def test_round_trip_through_our_reader(tmp_path: Path) -> None:
    write_zeek_logs(str(tmp_path), [flow(1)], [CHAIN], opened=OPENED)
    p = Problems()
    with open(tmp_path / CHAINS_LOG) as fh:
        ((header, _, parts),) = list(read_tsv(fh, "chains", p))
    row = decoder(header, [c[0] for c in CHAIN_COLUMNS])(parts)
    assert p.count == 0
    assert row["destinations"] == CHAIN["destinations"]
    assert row["evidence.detail"][0] == "RSA key generated, 2048 bits"
    # Our reader keeps a control character in Zeek's canonical \\xNN text form.
    assert row["evidence.detail"][1] == "tab\\x09here and a - dash"
    assert row["analytics"] == ["AN1716", "AN1762"]


def test_json_mode(tmp_path: Path) -> None:
    pzl = pytest.importorskip("parsezeeklogs")
    write_zeek_logs(str(tmp_path), [flow(1), flow(2, tls=None)], [CHAIN], json=True, opened=OPENED)
    lines = (tmp_path / FLOWS_LOG).read_text().splitlines()
    objs = [json.loads(ln) for ln in lines]
    assert len(objs) == 2 and all(o["_path"] == "netan_flows" for o in objs)
    assert "tls.sni" not in objs[1]  # unset fields are omitted, as Zeek's JSON writer does
    assert objs[0]["id.resp_p"] == 443 and objs[0]["framing"] == ["tls_records", "block_aligned_16"]
    assert objs[0]["tls.cert.self_signed"] is True
    rows = list(pzl.read_zeek(str(tmp_path / FLOWS_LOG)))
    assert rows[0]["tls.sni"] == "api.example"
    chain = json.loads((tmp_path / CHAINS_LOG).read_text())
    assert chain["uids"] == ["f1", "f2"] and chain["evidence.detail"][1] == "tab\there and a - dash"


def test_atomic_no_partial_files(tmp_path: Path) -> None:
    def broken():
        yield flow(1)
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError):
        write_zeek_logs(str(tmp_path), broken(), [CHAIN])
    assert os.listdir(tmp_path) == []  # neither log, no temp file left behind
    write_zeek_logs(str(tmp_path), [flow(1)], [])
    assert sorted(os.listdir(tmp_path)) == [CHAINS_LOG, FLOWS_LOG]


def test_counts_and_empty_inputs(tmp_path: Path) -> None:
    counts = write_zeek_logs(str(tmp_path / "out"), [], [], opened=OPENED)
    assert counts == {FLOWS_LOG: 0, CHAINS_LOG: 0}
    assert len(header_block(tmp_path / "out" / FLOWS_LOG)) == 9


def test_payload_bytes_never_written(tmp_path: Path) -> None:
    rec = flow(1)
    rec["sample"] = {"out": "c2VjcmV0IHBheWxvYWQ="}  # whatever a source attached, it is not a column
    write_zeek_logs(str(tmp_path), [rec], [], opened=OPENED)
    assert "c2VjcmV0" not in (tmp_path / FLOWS_LOG).read_text()
