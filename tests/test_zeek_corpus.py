"""The Zeek reader on logs Zeek itself wrote (../shared/corpus).

* brimdata WRCCDC 2018: the same traffic logged by Zeek 6.2 as TSV and as
  NDJSON (ISO timestamps, omitted unset fields): netan's output must be
  identical for the two.
* Zeek's own btest baselines: every conn/ssl/x509/dns/http/files log is read
  without a skipped line, and the flow fields are checked against an
  independent parse of the same file (parsezeeklogs, test extra).
* Stratosphere labeled logs (older Zeek layouts, relative timestamps,
  ``*.log.labeled`` names), FoxIO's JA4 plugin logs, and Zeek's logged
  Community ID.

Core-Zeek baselines canonicalise ``ts`` to ``XXXXXXXXXX.XXXXXX`` (not a
number, so the reader rightly refuses those lines); the tests copy them to a
temp dir with a line-numbered ``ts`` first and say so.
"""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from netan.problems import Problems
from netan.sinks.atomic import write_json, write_jsonl
from netan.sources.zeek import read_zeek
from netan.sources.zeek.convert import community_id, tls_version

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"shared corpus not found at {CORPUS}")
BRIM = CORPUS / "zeek-logs-wrccdc-brimdata"
BASELINE = CORPUS / "zeek" / "Baseline"
STRATO = CORPUS / "stratosphere-security-datasets-for-testing"
CHECK_CONTRACT = CORPUS.parent / "tools" / "check_contract.py"

#: Reasons that are not about bad input: logs of kinds netan does not use.
NOT_USED = "zeek_log_not_used:"
READ_KINDS = ("conn", "ssl", "x509", "dns", "http", "files")


def read(paths) -> tuple[list[dict], Problems]:
    p = Problems()
    return list(read_zeek([str(x) for x in paths], p)), p


def bad_input(p: Problems) -> dict[str, int]:
    return {k: v for k, v in p.as_dict()["by_reason"].items() if not k.startswith(NOT_USED)}


def decanonicalise(src: Path, dst: Path) -> None:
    """Copy a baseline file with its canonical ``XXXXXXXXXX.XXXXXX`` ts made numeric (line-numbered)."""
    out = []
    for n, line in enumerate(src.read_text(encoding="utf-8", errors="surrogateescape").splitlines(True)):
        if line.startswith("### BTest baseline"):
            continue  # btest's own marker line, not part of what Zeek wrote
        out.append(line.replace("XXXXXXXXXX.XXXXXX", f"{1600000000 + n}.{n % 1000000:06d}", 1))
    dst.write_text("".join(out), encoding="utf-8", errors="surrogateescape")


def zeek_kind(path: Path) -> str | None:
    for line in path.read_text(errors="replace").splitlines()[:12]:
        if line.startswith("#path"):
            return line.split("\t", 1)[1].strip()
    return None


# ------------------------------------------------------------------ brimdata TSV vs JSON


def _head_copy(src: Path, dst: Path, n: int) -> None:
    kept = 0
    with gzip.open(src, "rt") as fh, gzip.open(dst, "wt") as out:
        for line in fh:
            if not line.startswith("#"):
                if kept >= n:
                    continue
                kept += 1
            out.write(line)


def test_brim_tsv_and_json_give_identical_output_subset(tmp_path: Path) -> None:
    """Fast version: the first 3000 records of each log (whole header and #close kept)."""
    for fmt, ext in (("zeek-default", "log.gz"), ("zeek-json", "json.gz")):
        d = tmp_path / fmt
        d.mkdir()
        for kind in ("ssl", "x509", "dns"):
            _head_copy(BRIM / fmt / f"{kind}.{ext}", d / f"{kind}.{ext}", 3000 if kind != "x509" else 10**6)
    a, pa = read([tmp_path / "zeek-default"])
    b, pb = read([tmp_path / "zeek-json"])
    assert bad_input(pa) == bad_input(pb) == {}
    assert len(a) == len(b) > 1000
    assert a == b
    assert sum(1 for f in a if f["tls"] and f["tls"]["cert"]) > 100
    assert sum(1 for f in a if f["dst_name"]) > 100


@pytest.mark.slow
def test_brim_tsv_and_json_give_identical_output_full() -> None:
    a, pa = read([BRIM / "zeek-default"])
    b, pb = read([BRIM / "zeek-json"])
    assert bad_input(pa) == bad_input(pb) == {}
    # 49,474 ssl records; dns records share uids (query + retransmissions).
    assert sum(1 for f in a if "ssl" in f["zeek_logs"]) == 49474
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x == y


@pytest.mark.slow
def test_brim_values_against_independent_parser() -> None:
    pzl = pytest.importorskip("parsezeeklogs")
    flows, _ = read([BRIM / "zeek-default" / "ssl.log.gz", BRIM / "zeek-default" / "x509.log.gz"])
    by_uid = {f["zeek_uid"]: f for f in flows}
    certs = {r["fingerprint"]: r for r in pzl.read_zeek(str(BRIM / "zeek-default" / "x509.log.gz"))}
    seen = set()
    checked = 0
    for r in pzl.read_zeek(str(BRIM / "zeek-default" / "ssl.log.gz")):
        if r["uid"] in seen:
            continue
        seen.add(r["uid"])
        f = by_uid[r["uid"]]
        assert (f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"]) == (
            r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"])
        assert f["tls"]["version"] == tls_version(r["version"])
        assert f["tls"]["sni"] == (r["server_name"] or None)
        assert f["tls"]["cipher"] == r["cipher"]
        fps = r.get("cert_chain_fps") or []
        if fps and fps[0] in certs:
            assert f["tls"]["cert"]["subject"] == certs[fps[0]]["certificate.subject"]
            nva = datetime.fromtimestamp(certs[fps[0]]["certificate.not_valid_after"], tz=timezone.utc)
            assert f["tls"]["cert"]["not_after"] == nva.strftime("%Y-%m-%dT%H:%M:%SZ")
            assert f["tls"]["cert"]["sha256"] == fps[0]
            checked += 1
    assert checked > 1000


# ------------------------------------------------------------------ Zeek btest baselines


def _baseline_dirs() -> list[Path]:
    if not BASELINE.is_dir():
        return []
    out = []
    for d in sorted(BASELINE.iterdir()):
        if any(zeek_kind(f) in READ_KINDS for f in d.glob("*.log")):
            out.append(d)
    return out


@pytest.mark.parametrize("bdir", _baseline_dirs(), ids=lambda d: d.name)
def test_zeek_baseline(bdir: Path, tmp_path: Path) -> None:
    pzl = pytest.importorskip("parsezeeklogs")
    for f in bdir.glob("*.log"):
        if zeek_kind(f) is not None:  # some baselines are empty (only btest's marker line)
            decanonicalise(f, tmp_path / f.name)
    flows, problems = read([tmp_path])
    assert bad_input(problems) == {}, problems.as_dict()["examples"][:5]
    assert len({f["flow_id"] for f in flows}) == len(flows)

    rows: dict[str, list[dict]] = {k: [] for k in READ_KINDS}
    for f in sorted(tmp_path.glob("*.log")):
        kind = zeek_kind(f)
        if kind in rows:
            rows[kind].extend(pzl.read_zeek(str(f)))
    # Every conn.log line is a flow of its own.
    assert sum(1 for f in flows if "conn" in f["zeek_logs"]) == len(rows["conn"])
    # Baselines concatenate runs with deterministic uids; check the uids that are unique.
    uid_count = Counter(r["uid"] for k in ("conn", "ssl", "dns", "http") for r in rows[k] if r.get("uid"))
    per_kind = {k: Counter(r["uid"] for r in rows[k]) for k in ("conn", "ssl")}
    by_uid = {f["zeek_uid"]: f for f in flows}
    for r in rows["conn"]:
        if per_kind["conn"][r["uid"]] != 1:
            continue
        f = by_uid[r["uid"]]
        assert (f["src_ip"], f["dst_ip"]) == (r["id.orig_h"], r["id.resp_h"])
        if r["proto"] in ("tcp", "udp"):
            assert (f["src_port"], f["dst_port"]) == (r["id.orig_p"], r["id.resp_p"])
        assert (f["bytes_out"], f["bytes_in"]) == (r["orig_bytes"] or 0, r["resp_bytes"] or 0)
        assert (f["pkts_out"], f["pkts_in"]) == (r["orig_pkts"] or 0, r["resp_pkts"] or 0)
        assert (f["conn_state"], f["history"]) == (r["conn_state"], r["history"])
        assert f["community_id"].startswith("1:")
    certs = {}
    for r in rows["x509"]:
        for key in (r.get("fingerprint"), r.get("id")):
            if key and key not in certs:
                certs[key] = r
    for r in rows["ssl"]:
        if per_kind["ssl"][r["uid"]] != 1 or per_kind["conn"][r["uid"]] > 1:
            continue
        f = by_uid[r["uid"]]
        assert "ssl" in f["zeek_logs"]
        assert f["tls"]["version"] == tls_version(r["version"])
        assert f["tls"]["sni"] == (r.get("server_name") or None)
        assert f["tls"]["cipher"] == r.get("cipher")
        chain = r.get("cert_chain_fps") or r.get("cert_chain_fuids") or []
        if chain and chain[0] in certs:
            assert f["tls"]["cert"]["subject"] == certs[chain[0]]["certificate.subject"]
            assert f["tls"]["cert"]["key_bits"] == certs[chain[0]].get("certificate.key_length")
    assert uid_count is not None


def test_json_non_printable_escaping_pair(tmp_path: Path) -> None:
    """Zeek's own TSV/JSON pair of one http.log (non-printable and UTF-8 URIs)."""
    src = BASELINE / "scripts.base.frameworks.logging.json-non-printable-escaping"
    (tmp_path / "t").mkdir()
    (tmp_path / "j").mkdir()
    decanonicalise(src / "http.log.tsv", tmp_path / "t" / "http.log")
    decanonicalise(src / "http.log.json", tmp_path / "j" / "http.log")
    a, pa = read([tmp_path / "t"])
    b, pb = read([tmp_path / "j"])
    assert bad_input(pa) == {} and bad_input(pb) == {}
    # The json copy was numbered from line 1 and the tsv from line 8: align ts.
    for x, y in zip(a, b):
        x = dict(x, ts=0, ts_end=0)
        y = dict(y, ts=0, ts_end=0)
        assert x == y
    assert len(a) == 4 and all(f["http"]["user_agent"] == "Python-urllib/3.12" for f in a)


def test_zeek_logged_community_id() -> None:
    """Zeek's community-id-logging baseline: 5-tuple and Zeek's own Community ID."""
    cut = BASELINE / "scripts.policy.protocols.conn.community-id-logging" / "conn.log.cut"
    rows = [ln.split("\t") for ln in cut.read_text().splitlines() if not ln.startswith("#")]
    assert rows
    for oh, op, rh, rp, proto, _service, cid in rows:
        assert community_id({"tcp": 6, "udp": 17}[proto], oh, rh, int(op), int(rp)) == cid


# ------------------------------------------------------------------ Stratosphere, FoxIO


def test_stratosphere_labeled_logs() -> None:
    for scen, conn_name in (("001-zeek-scenario-malicious", "labeled-conn.log"),
                            ("003-zeek-scenario-malicious", "conn.log"),
                            ("006-zeek-scenario-ssh", "conn.log")):
        flows, problems = read([STRATO / scen])
        readme = {p["file"] for p in problems.as_dict()["examples"] if p["reason"] == "not_a_zeek_log"}
        assert all(f.endswith("README.md") for f in readme)  # reported, as every file we cannot use
        assert bad_input(problems) == ({"not_a_zeek_log": 1} if readme else {}), scen
        n_lines = sum(1 for ln in (STRATO / scen / conn_name).read_text().splitlines() if ln and ln[0] != "#")
        conn_flows = [f for f in flows if "conn" in f["zeek_logs"]]
        if scen.startswith("001"):
            # conn.log and labeled-conn.log are the same connections: the repeated
            # uids get their own flow ids, so both are there.
            assert len(conn_flows) == 2 * n_lines
        else:
            assert len(conn_flows) == n_lines
    # 003 is the Android RAT capture: DNS answers name the destinations.
    flows, _ = read([STRATO / "003-zeek-scenario-malicious"])
    named = {f["dst_name"] for f in flows if f["dst_name"]}
    assert "infinitedata-pa.googleapis.com" in named


def test_stratosphere_old_ssl_layout() -> None:
    """Zeek 2.5 ssl.log: cert_chain_fuids and the host cert's subject/issuer in ssl.log itself."""
    flows, problems = read([STRATO / "009-zeek-malicious" / "data"])
    assert bad_input(problems) == {}
    ssl = [f for f in flows if f["tls"]]
    assert ssl and all(f["tls"]["version"] in ("TLSv1.2", "TLSv1.0", "TLSv1.1") for f in ssl)
    ms = [f for f in ssl if f["tls"]["sni"] == "www.microsoft.com"]
    assert ms and ms[0]["tls"]["cert"]["subject"].startswith("CN=www.microsoft.com")
    assert ms[0]["tls"]["cert"]["issuer"].startswith("CN=Symantec Class 3")


def test_foxio_ja4_plugin_fields() -> None:
    d = CORPUS / "foxio-ja4" / "zeek" / "tests" / "Traces" / "Scripts.ja4-tls-handshake"
    flows, problems = read([d])
    assert bad_input(problems) == {}
    logged = [ln.split("\t") for ln in (d / "ssl.log").read_text().splitlines() if ln and ln[0] != "#"]
    fields = next(ln for ln in (d / "ssl.log").read_text().splitlines() if ln.startswith("#fields")).split("\t")[1:]
    want = {r[fields.index("uid")]: r[fields.index("ja4")] for r in logged}
    got = {f["zeek_uid"]: f["tls"]["ja4"] for f in flows}
    assert want and all(got[uid] == (ja4 if ja4 != "-" else None) for uid, ja4 in want.items())


# ------------------------------------------------------------------ the output contract


def test_contract_checker_accepts_zeek_flows(tmp_path: Path) -> None:
    """flows.jsonl built from real Zeek logs passes shared/tools/check_contract.py."""
    if not CHECK_CONTRACT.is_file():
        pytest.skip("check_contract.py not found")
    flows = []
    for d in (STRATO / "003-zeek-scenario-malicious", STRATO / "009-zeek-malicious" / "data",
              CORPUS / "foxio-ja4" / "zeek" / "tests" / "Traces"):
        flows.extend(read([d])[0])
    for f in BASELINE.glob("*/conn.log"):
        sub = tmp_path / "bl" / f.parent.name
        sub.mkdir(parents=True)
        decanonicalise(f, sub / "conn.log")
    more, _ = read([tmp_path / "bl"])
    flows.extend(more)
    # flow_id is unique per read; make it unique across these separate reads.
    for i, f in enumerate(flows):
        f["flow_id"] = f"{i}:{f['flow_id']}"
    out = tmp_path / "out"
    write_jsonl(str(out / "flows.jsonl"), flows)
    write_json(str(out / "summary.json"), {"flows": len(flows)})
    res = subprocess.run([sys.executable, str(CHECK_CONTRACT), str(out), "--quiet"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:]
    assert json.loads((out / "summary.json").read_text())["flows"] > 500


# ------------------------------------------------------------------ Zeek logs vs netan on the pcap

#: (baseline dir, trace): Zeek's logs of a trace next to the trace itself.
PCAP_PAIRS = [
    ("core.tcp.reassembly-known-ports", "http/get.pcap"),
    ("scripts.base.protocols.imap.starttls", "tls/imap-starttls.pcap"),
    ("scripts.base.protocols.irc.starttls", "tls/irc-starttls.pcap"),
    ("scripts.base.protocols.pop3.starttls", "tls/pop3-starttls.pcap"),
    ("scripts.base.protocols.xmpp.starttls", "tls/xmpp-starttls.pcap"),
    ("scripts.base.protocols.ssh.basic", "ssh/ssh.pcap"),
    ("scripts.base.frameworks.analyzer.request-analyzer", "wikipedia.pcap"),
]


@pytest.mark.parametrize("bdir, trace", PCAP_PAIRS, ids=[t for _, t in PCAP_PAIRS])
def test_zeek_logs_agree_with_netan_on_the_pcap(bdir: str, trace: str, tmp_path: Path) -> None:
    """`netan zeek` on Zeek's logs and `netan analyze` on the pcap: same flows, bytes, SNI, versions.

    Legitimate differences (docs/zeek.md): Zeek's ``service`` names the first
    analyzer (``imap`` for STARTTLS) where netan says ``tls``; Zeek leaves sizes
    it did not measure unset (flagged not observable, skipped here).
    """
    pipeline = pytest.importorskip("netan.pipeline")
    pcap = CORPUS / "zeek" / "Traces" / trace
    zdir = tmp_path / "zeek"
    zdir.mkdir()
    for f in (BASELINE / bdir).glob("*.log"):
        if zeek_kind(f) is not None:
            decanonicalise(f, zdir / f.name)
    zflows, problems = read([zdir])
    assert bad_input(problems) == {}
    res = pipeline.analyze_captures([str(pcap)], pipeline.RunOptions(out_dir=str(tmp_path / "out")))
    assert res.flows > 0
    pflows = {f["community_id"]: f for f in map(json.loads, open(tmp_path / "out" / "flows.jsonl"))}
    zconn = [f for f in zflows if "conn" in f["zeek_logs"]]
    assert zconn
    for z in zconn:
        p = pflows.get(z["community_id"])
        assert p is not None, f"Zeek flow {z['zeek_uid']} {z['src_ip']}->{z['dst_ip']}:{z['dst_port']} not in pcap flows"
        assert (p["src_ip"], p["src_port"], p["dst_ip"], p["dst_port"]) == (
            z["src_ip"], z["src_port"], z["dst_ip"], z["dst_port"])
        if "bytes" not in z["not_observable"]:
            assert (p["bytes_out"], p["bytes_in"]) == (z["bytes_out"], z["bytes_in"]), z["zeek_uid"]
        if "packets" not in z["not_observable"]:
            assert (p["pkts_out"], p["pkts_in"]) == (z["pkts_out"], z["pkts_in"]), z["zeek_uid"]
        if z["tls"] is not None and z["tls"]["version"]:
            assert p["tls"] is not None
            assert p["tls"]["version"] == z["tls"]["version"]
            assert p["tls"]["sni"] == z["tls"]["sni"]
            assert p["l7"] == "tls"
            zc, pc = z["tls"]["cert"], p["tls"].get("cert")
            if zc is not None and pc:
                for k in ("subject", "issuer", "subject_cn", "not_after", "key_type", "key_bits"):
                    assert zc[k] == pc.get(k), (k, zc[k], pc.get(k))
                # Same number; pcap mode keeps DER's leading 00 byte ("00F943..."), Zeek does not.
                assert int(zc["serial"], 16) == int(pc["serial"], 16)


def test_netan_zeek_outputs_identical_for_tsv_and_json(tmp_path: Path) -> None:
    """End to end (`netan zeek`'s pipeline): flows, chains and Zeek-format logs byte for byte."""
    pipeline = pytest.importorskip("netan.pipeline")
    if not hasattr(pipeline, "analyze_zeek_logs"):
        pytest.skip("netan.pipeline.analyze_zeek_logs not there")
    outs = {}
    for fmt, ext in (("zeek-default", "log.gz"), ("zeek-json", "json.gz")):
        d = tmp_path / fmt
        d.mkdir()
        for kind in ("ssl", "x509", "dns"):
            _head_copy(BRIM / fmt / f"{kind}.{ext}", d / f"{kind}.{ext}", 2000 if kind != "x509" else 10**6)
        out = tmp_path / f"out-{fmt}"
        pipeline.analyze_zeek_logs([str(d)], pipeline.RunOptions(out_dir=str(out), command="zeek"))
        outs[fmt] = out
    a, b = outs["zeek-default"], outs["zeek-json"]
    assert (a / "flows.jsonl").read_bytes() == (b / "flows.jsonl").read_bytes()
    if (a / "chains.jsonl").exists():
        assert (a / "chains.jsonl").read_bytes() == (b / "chains.jsonl").read_bytes()

    def rows(p: Path) -> list[str]:
        return [ln for ln in p.read_text().splitlines() if not ln.startswith(("#open", "#close"))]

    assert rows(a / "netan_flows.log") == rows(b / "netan_flows.log")
    assert len(rows(a / "netan_flows.log")) > 1000


def _quic_dirs() -> list[Path]:
    if not BASELINE.is_dir():
        return []
    return [d for d in sorted(BASELINE.iterdir()) if (d / "quic.log").is_file() and zeek_kind(d / "quic.log") == "quic"]


@pytest.mark.parametrize("bdir", _quic_dirs(), ids=lambda d: d.name)
def test_quic_log_marks_udp_without_conn_log(bdir: Path, tmp_path: Path) -> None:
    """Zeek's QUIC baselines have quic.log and ssl.log but no (TSV) conn.log: the flows are UDP/QUIC."""
    for f in bdir.glob("*.log"):
        if zeek_kind(f) is not None:
            decanonicalise(f, tmp_path / f.name)
    flows, problems = read([tmp_path])
    assert bad_input(problems) == {}
    quic = [f for f in flows if "quic" in f["zeek_logs"]]
    assert quic
    for f in quic:
        assert (f["proto"], f["l7"]) == ("udp", "quic")
        assert f["community_id"] == community_id(17, f["src_ip"], f["dst_ip"], f["src_port"], f["dst_port"])
    pzl = pytest.importorskip("parsezeeklogs")
    want: dict[str, str | None] = {}
    for r in pzl.read_zeek(str(tmp_path / "quic.log")):
        want.setdefault(r["uid"], r.get("server_name"))  # concatenated runs repeat uids: the first wins
    for f in quic:
        if f["zeek_uid"] in want and want[f["zeek_uid"]]:
            assert f["tls"]["sni"] == want[f["zeek_uid"]]
