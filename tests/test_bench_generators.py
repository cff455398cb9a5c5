"""The benchmark capture generators write valid, deterministic captures.

tshark is the independent reader: it must count the packets and the distinct
TCP/UDP conversations each generator's manifest claims, find no bad IPv4,
TCP, UDP or ICMP checksums, and dissect the recorded TLS handshakes and DNS
messages without malformed-packet errors. Same seed, same bytes; another
seed, other bytes.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def _gen(script: str, out: Path, *args: str) -> dict:
    r = subprocess.run([sys.executable, str(BENCH / script), str(out), *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(out.with_name(out.name + ".json").read_text())


def _tshark(f: Path, *args: str) -> str:
    r = subprocess.run(["tshark", "-n", "-r", str(f), *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    # tshark reports a cut-short or corrupt file on stderr but may still exit 0.
    assert "cut short" not in r.stderr and "appears to be damaged" not in r.stderr, r.stderr
    return r.stdout


def _conversations(f: Path, proto: str) -> list[str]:
    out = _tshark(f, "-q", "-z", f"conv,{proto}")
    return [ln.split()[0] + " " + ln.split()[2] for ln in out.splitlines() if "<->" in ln]


def _bad_checksums(f: Path) -> tuple[int, int]:
    """(bad, good) checksum verdicts with tshark's validation switched on."""
    prefs = ["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
             "-o", "udp.check_checksum:TRUE"]
    # Wireshark's checksum status: 0 bad, 1 good, 2 unverified (epan/proto.h).
    fields = ["ip.checksum.status", "tcp.checksum.status", "udp.checksum.status", "icmp.checksum.status",
              "icmpv6.checksum.status"]
    out = _tshark(f, *prefs, "-T", "fields", *sum((["-e", x] for x in fields), []), "-E", "separator=,")
    bad = good = 0
    for ln in out.splitlines():
        for v in ln.replace(",", " ").split():
            bad += v == "0"
            good += v == "1"
    return bad, good


@pytest.fixture(scope="module")
def bench_pcap(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("bench") / "b.pcap"
    return out, _gen("gen_capture.py", out, "--packets", "2000", "--seed", "7", "--span", "20")


@pytest.fixture(scope="module")
def flows_pcap(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("flows") / "f.pcap"
    return out, _gen("gen_flows_capture.py", out, "--flows", "2000", "--seed", "7")


def test_bench_capture_counts_match_tshark(bench_pcap: tuple[Path, dict]) -> None:
    f, m = bench_pcap
    assert m["packets"] == 2000
    assert len(_tshark(f, "-T", "fields", "-e", "frame.number").split()) == 2000
    tcp, udp = _conversations(f, "tcp"), _conversations(f, "udp")
    assert len(set(tcp)) == len(tcp) == m["flows"]["tcp"] > 0
    assert len(set(udp)) == len(udp) == m["flows"]["udp"] > 0
    assert m["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()


def test_bench_capture_checksums_and_dissection(bench_pcap: tuple[Path, dict]) -> None:
    f, _ = bench_pcap
    bad, good = _bad_checksums(f)
    assert bad == 0 and good > 2000
    # Out-of-order segments are part of the mix; with reassembly of those on,
    # tshark must dissect every TLS/DNS/HTTP byte without a malformed error.
    expert = _tshark(f, "-o", "tcp.reassemble_out_of_order:TRUE", "-q", "-z", "expert,error")
    assert "Malformed" not in expert, expert
    hellos = _tshark(f, "-Y", "tls.handshake.type == 1", "-T", "fields",
                     "-e", "tls.handshake.extensions_server_name").split()
    assert hellos and all(h.count(".") >= 2 for h in hellos)
    assert _tshark(f, "-Y", "tls.handshake.type == 2", "-T", "fields", "-e", "frame.number").split()
    assert _tshark(f, "-Y", "dns.flags.response == 1 && dns.count.answers > 0", "-T", "fields",
                   "-e", "dns.qry.name").split()
    assert _tshark(f, "-Y", "vlan", "-T", "fields", "-e", "frame.number").split()
    assert _tshark(f, "-Y", "ipv6", "-T", "fields", "-e", "frame.number").split()


def test_flows_capture_counts_match_tshark(flows_pcap: tuple[Path, dict]) -> None:
    f, m = flows_pcap
    assert m["flows"] == {"total": 2000, "tcp": 1500, "udp": 500, "icmp": 0}
    tcp, udp = _conversations(f, "tcp"), _conversations(f, "udp")
    assert len(set(tcp)) == len(tcp) == 1500
    assert len(set(udp)) == len(udp) == 500
    n = len(_tshark(f, "-T", "fields", "-e", "frame.number").split())
    assert n == m["packets"]
    bad, good = _bad_checksums(f)
    assert bad == 0 and good >= n


@pytest.mark.parametrize("script,size", [("gen_capture.py", ["--packets", "1500"]),
                                         ("gen_flows_capture.py", ["--flows", "1500"])])
def test_same_seed_same_bytes(tmp_path: Path, script: str, size: list[str]) -> None:
    a = _gen(script, tmp_path / "a.pcap", *size, "--seed", "3")
    b = _gen(script, tmp_path / "b.pcap", *size, "--seed", "3")
    c = _gen(script, tmp_path / "c.pcap", *size, "--seed", "4")
    ha = hashlib.sha256((tmp_path / "a.pcap").read_bytes()).hexdigest()
    assert ha == hashlib.sha256((tmp_path / "b.pcap").read_bytes()).hexdigest() == a["sha256"] == b["sha256"]
    assert c["sha256"] != a["sha256"]
