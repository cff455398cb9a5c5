"""PCAPdroid: pcap trailer, pcapng custom blocks / u-<uid> comments, and the connections CSV.

The trailer and pcapng inputs are built from the real packets of the PCAPdroid
corpus capture ``two_flows.pcap`` (frames 1-20 flow 1, 21-49 flow 2, per its
expected.json), wrapped exactly as PCAPdroid's pcap_dump.c does, with a
different uid per flow. dpkt (an independent parser) is the oracle for the
payload byte counts; tshark checks that the pcapng we write is valid.
"""
from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import dpkt
import pytest

from netan.context import pcapdroid
from netan.context.detect import detect
from netan.context.loader import load_context
from netan.context.model import PcapdroidConnection, Reject

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "pcapdroid"
TWO_FLOWS = CORPUS / "pcap" / "two_flows.pcap"

pytestmark = pytest.mark.skipif(not TWO_FLOWS.exists(), reason=f"corpus not present at {CORPUS}")

UIDS = {0: (10213, "Chrome"), 1: (10250, "Notes")}


def _ip_packets():
    """(ts, ip bytes, flow index) for each frame of two_flows.pcap."""
    out = []
    with open(TWO_FLOWS, "rb") as f:
        for i, (ts, buf) in enumerate(dpkt.pcap.Reader(f)):
            eth = dpkt.ethernet.Ethernet(buf)
            out.append((ts, bytes(eth.data), 0 if i < 20 else 1))
    return out


def trailer_frame(ip: bytes, uid: int, appname: str) -> bytes:
    """PCAPdroid's PCAP_DUMP_WITH_TRAILER framing (pcap_dump.c dump_packet_pcap)."""
    eth = b"\x00" * 12 + (b"\x08\x00" if ip[0] >> 4 == 4 else b"\x86\xdd")
    pad = b"\x00" * ((-(14 + len(ip))) % 4)
    body = eth + ip + pad + struct.pack(">Ii", pcapdroid.TRAILER_MAGIC, uid) + appname.encode()[:19].ljust(20, b"\x00")
    return body + struct.pack("<I", zlib.crc32(body))


def _write_trailer_pcap(path: Path, *, every_other_without_trailer: bool = False) -> None:
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f, linktype=1, snaplen=65535)
        for n, (ts, ip, flow) in enumerate(_ip_packets()):
            if every_other_without_trailer and n % 2:
                # snaplen too small for the trailer: PCAPdroid writes the frame without it
                w.writepkt(b"\x00" * 12 + b"\x08\x00" + ip, ts=ts)
                continue
            uid, name = UIDS[flow]
            w.writepkt(trailer_frame(ip, uid, name), ts=ts)


def _oracle():
    """Per flow: (dst, dport, payload out, payload in) from dpkt."""
    flows = {}
    for ts, ip, flow in _ip_packets():
        pkt = dpkt.ip.IP(ip)
        tcp = pkt.data
        src = dpkt.utils.inet_to_str(pkt.src)
        rec = flows.setdefault(flow, {"orig": None, "out": 0, "in": 0, "first": ts})
        if rec["orig"] is None:
            rec["orig"] = (src, tcp.sport)
            rec["dst"] = (dpkt.utils.inet_to_str(pkt.dst), tcp.dport)
        if (src, tcp.sport) == rec["orig"]:
            rec["out"] += len(tcp.data)
        else:
            rec["in"] += len(tcp.data)
    return flows


def test_parse_trailer_roundtrip():
    ts, ip, _ = _ip_packets()[0]
    frame = trailer_frame(ip, 10213, "Chrome")
    assert (len(frame) - 14 - 32 - len(ip)) in range(4)
    got_ip, uid, name = pcapdroid.parse_trailer(frame)
    assert (got_ip, uid, name) == (ip, 10213, "Chrome")
    assert pcapdroid.parse_trailer(b"\x00" * 12 + b"\x08\x00" + ip) is None
    assert pcapdroid.parse_trailer(frame[:-1]) is None
    neg = trailer_frame(ip, -1, "")
    assert pcapdroid.parse_trailer(neg)[1] == -1


@pytest.mark.parametrize("gaps", [False, True])
def test_trailer_pcap_against_expected(tmp_path, gaps):
    path = tmp_path / "capture"
    _write_trailer_pcap(path, every_other_without_trailer=gaps)
    assert detect(path.read_bytes()[:65536])[0] == "pcapdroid_pcap"
    ctx = load_context([str(path)])
    rep = ctx.report[0]
    assert rep["format"] == "pcapdroid_pcap" and rep["rejected_total"] == 0
    expected = json.loads((CORPUS / "expected.json").read_text())["two_flows.pcap"]["connections"]
    conns = sorted(ctx.pcapdroid, key=lambda c: c.ts_start)
    assert len(conns) == 2
    oracle = _oracle()
    for i, (conn, exp) in enumerate(zip(conns, expected)):
        assert (conn.proto, conn.src_ip, conn.src_port, conn.dst_ip, conn.dst_port) == (
            exp["proto"].lower(), exp["src"], exp["sport"], exp["dst"], exp["dport"])
        assert (conn.uid, conn.app) == UIDS[i]
        assert conn.syn and conn.bytes_unit == "payload"
        if not gaps:
            assert (conn.bytes_out, conn.bytes_in) == (oracle[i]["out"], oracle[i]["in"])
            assert conn.ts_start == pytest.approx(oracle[i]["first"])


def _opt(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


def _block(btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def write_pcapng(path: Path, *, with_map: bool = True) -> None:
    """PCAPdroid's pcapng: SHB (hardware/os/appl), IDB RAW, UID_MAP custom blocks, EPBs with u-<uid>."""
    shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _opt(2, b"Pixel 8") + _opt(3, b"Android 14") \
        + _opt(4, b"PCAPdroid v1.7") + _opt(0, b"")
    out = _block(0x0A0D0D0A, shb) + _block(1, struct.pack("<HHI", 101, 0, 65535))
    mapped = set()
    for ts, ip, flow in _ip_packets():
        uid, name = UIDS[flow]
        pkg = "com.android.chrome" if flow == 0 else "com.example.notes"
        if with_map and uid not in mapped:
            mapped.add(uid)
            body = struct.pack("<IHBBiBB", pcapdroid.PEN, 1, 1, 0, uid, len(pkg), len(name)) + pkg.encode() + name.encode()
            body += b"\x00" * (-len(body) % 4)
            out += _block(0x00000BAD, body)
        usec = int(round(ts * 1e6))
        epb = struct.pack("<IIIII", 0, usec >> 32, usec & 0xFFFFFFFF, len(ip), len(ip)) + ip + b"\x00" * (-len(ip) % 4)
        epb += _opt(1, f"u-{uid}".encode()) + _opt(0, b"")
        out += _block(6, epb)
    path.write_bytes(out)


def test_pcapng_uid_map_and_comments(tmp_path):
    path = tmp_path / "cap.pcapng"
    write_pcapng(path)
    if shutil.which("tshark"):
        # tshark as the oracle that the blocks we wrote are valid pcapng carrying the comments
        res = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.comment"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        comments = [ln for ln in res.stdout.splitlines() if ln]
        assert comments[:1] == ["u-10213"] and comments[-1] == "u-10250" and len(comments) == 49
    ctx = load_context([str(path)])
    assert ctx.report[0]["format"] == "pcapdroid_pcapng"
    conns = sorted(ctx.pcapdroid, key=lambda c: c.ts_start)
    assert [(c.uid, c.package, c.app, c.dst_ip, c.dst_port) for c in conns] == [
        (10213, "com.android.chrome", "Chrome", "216.58.208.164", 80),
        (10250, "com.example.notes", "Notes", "142.250.180.131", 443),
    ]
    oracle = _oracle()
    assert [(c.bytes_out, c.bytes_in) for c in conns] == [(oracle[i]["out"], oracle[i]["in"]) for i in (0, 1)]


def test_pcapng_comments_only_and_truncated(tmp_path):
    path = tmp_path / "cap.pcapng"
    write_pcapng(path, with_map=False)
    data = path.read_bytes()
    path.write_bytes(data[:-30])  # cut inside the last block
    ctx = load_context([str(path)])
    rep = ctx.report[0]
    assert rep["format"] == "pcapdroid_pcapng" and rep["rejected_total"] == 1
    assert "truncated" in rep["rejected"][0]["reason"]
    assert {c.uid for c in ctx.pcapdroid} == {10213, 10250} and all(c.package == "" for c in ctx.pcapdroid)


def test_plain_corpus_pcaps_are_not_context(tmp_path):
    for name in ("two_flows.pcap", "metadata.pcap", "invalid_or_unsupported.pcap"):
        fmt, why = detect((CORPUS / "pcap" / name).read_bytes()[:65536])
        assert fmt is None and "without PCAPdroid extensions" in why
    ctx = load_context([str(CORPUS / "pcap" / "two_flows.pcap")])
    assert ctx.report[0]["format"] is None and "not recognised" in ctx.report[0]["warnings"][0]


CSV = """\
IPProto,SrcIP,SrcPort,DstIp,DstPort,UID,App,PackageName,Proto,Status,Info,BytesSent,BytesRcvd,PktsSent,PktsRcvd,FirstSeen,LastSeen
6,10.215.173.1,40312,203.0.113.45,443,10213,Notes,com.example.notes,TLS,Closed,upload.example-cdn.net,5242880,8121,3602,41,2024-06-03T11:04:40.311+02:00,2024-06-03T11:04:52.870+02:00
17,10.215.173.1,51000,198.51.100.7,443,10250,Acme, Inc. Sync,com.acme.sync,QUIC,Active,a.example,b.example,1200,800,3,2,2024-06-03T09:05:00.000Z,2024-06-03T09:05:01.000Z
6,10.215.173.1,40313,203.0.113.46,443,10213,Notes,com.example.notes,TLS,Closed,x,1,2,3,4,2024-06-03 11:04:40,2024-06-03T11:04:52.870+02:00
6,10.215.173.1,40314,not-an-ip,443,10213,Notes,com.example.notes,TLS,Closed,x,1,2,3,4,2024-06-03T11:04:40.311+02:00,2024-06-03T11:04:52.870+02:00
6,10.215.173.1,40315
"""


def test_csv():
    out = list(pcapdroid.parse_csv(CSV.splitlines()))
    good = [c for c in out if isinstance(c, PcapdroidConnection)]
    bad = [r for r in out if isinstance(r, Reject)]
    a, b = good
    assert (a.dst_ip, a.dst_port, a.uid, a.package, a.app, a.info) == (
        "203.0.113.45", 443, 10213, "com.example.notes", "Notes", "upload.example-cdn.net")
    assert (a.bytes_out, a.bytes_in, a.pkts_out, a.pkts_in, a.bytes_unit) == (5242880, 8121, 3602, 41, "ip")
    assert a.ts_start == pytest.approx(1717405480.311)  # 11:04:40.311+02:00
    assert (b.proto, b.app, b.package, b.info) == ("udp", "Acme, Inc. Sync", "com.acme.sync", "a.example,b.example")
    assert [r.line for r in bad] == [4, 5, 6]
    assert detect(CSV.encode())[0] == "pcapdroid_csv"
    assert pcapdroid.parse_csv(io.StringIO(CSV)) is not None
