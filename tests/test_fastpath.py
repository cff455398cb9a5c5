"""The batch engine (netan.fastpath) against the per-packet engine, its oracle.

Differential: for every capture below and several flow configurations (the
defaults, and small timeouts / sample / table sizes that force idle and active
timeouts, port reuse, TCP close linger and evictions), the batch engine must
finish the same flows in the same order -- ``to_record()`` and ``to_sample()``
equal -- with the same engine summary and the same problems. Inputs: the
shared corpus (foxio-ja4, pcapdroid, a fixed sample of Zeek's traces), the
project's own fixtures, a generated benchmark capture, a seeded "torture"
capture crafted with scapy (reordering, retransmissions, overlaps, losses,
port reuse, VLANs, IPv6 extension headers, fragments, ARP, snaplen cuts,
clock steps backwards) and damaged copies of a capture (truncated, corrupt
record lengths, cut gzip).
"""
from __future__ import annotations

import gzip
import mmap
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

import netan.fastpath as fastpath
import netan.fastpath_read as fastpath_read
from netan.decode import Decoder
from netan.engine import Engine, merged_packets
from netan.fastpath import BatchEngine
from netan.fastpath_decode import FAST, SLOW_OK, decode_chunk
from netan.fastpath_read import read_chunks
from netan.flows import FlowConfig
from netan.problems import Problems

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"

CONFIGS = {
    "default": FlowConfig(),
    "tight": FlowConfig(idle_timeout=2.0, active_timeout=5.0, tcp_close_linger=0.5, max_flows=8, sample_bytes=300,
                        max_sizes=5, max_marks=4),
    "tight-no-limit": FlowConfig(idle_timeout=2.0, active_timeout=5.0, tcp_close_linger=0.5, sample_bytes=300,
                                 max_sizes=5, max_marks=4),
    "mid": FlowConfig(idle_timeout=4.0, active_timeout=20.0, tcp_close_linger=1.0, max_flows=100_000,
                      sample_bytes=1000, max_sizes=10, max_marks=8),
}


def run_packet(paths: list[str], cfg: FlowConfig) -> tuple[list, dict, dict]:
    problems = Problems()
    eng = Engine(cfg, problems)
    infos: list = []
    unreadable: list = []
    out = []
    for raw in merged_packets(paths, problems, infos, unreadable):
        eng.feed(raw)
        out += eng.pop_finished()
    eng.finish()
    out += eng.pop_finished()
    flows = [(fs.to_record(), fs.to_sample()) for fs in out]
    return flows, eng.summary(), {"problems": problems.as_dict(), "infos": [vars(i) for i in infos],
                                  "unreadable": [str(e) for e in unreadable]}


def run_batch(paths: list[str], cfg: FlowConfig) -> tuple[list, dict, dict, dict]:
    problems = Problems()
    eng = BatchEngine(cfg, problems)
    infos: list = []
    unreadable: list = []
    out = []
    for chunk in read_chunks(paths, infos, unreadable):
        eng.feed_chunk(chunk)
        out += eng.pop_finished()
    eng.finish()
    out += eng.pop_finished()
    flows = [(fs.to_record(), fs.to_sample()) for fs in out]
    return flows, eng.summary(), {"problems": problems.as_dict(), "infos": [vars(i) for i in infos],
                                  "unreadable": [str(e) for e in unreadable]}, eng.path_counts


def assert_same(paths: list[str], cfg: FlowConfig) -> dict:
    want, wsum, wmeta = run_packet(paths, cfg)
    got, gsum, gmeta, counts = run_batch(paths, cfg)
    assert len(got) == len(want), (paths, len(got), len(want))
    for i, (g, w) in enumerate(zip(got, want)):
        assert g[0] == w[0], (paths, i, {k: (g[0].get(k), v) for k, v in w[0].items() if g[0].get(k) != v})
        assert g[1] == w[1], (paths, i, "sample differs")
    assert gsum == wsum
    assert gmeta == wmeta
    return counts


@pytest.fixture(params=[False, True], ids=["segments>=12", "every-segment"])
def eager(request, monkeypatch):
    """Also run with the fast path taking every segment (corpus files are small)."""
    if request.param:
        monkeypatch.setattr(fastpath, "SMALL_SEGMENT", 1)
        monkeypatch.setattr(fastpath, "MAX_GROUP_SHARE", 1.0)
    return request.param


def _corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    files = sorted((CORPUS / "foxio-ja4" / "pcap").glob("*"))
    files += sorted((CORPUS / "pcapdroid" / "pcap").glob("*"))
    zeek = sorted(p for p in (CORPUS / "zeek" / "Traces").rglob("*") if p.suffix in (".pcap", ".pcapng", ".trace")
                  and p.is_file())
    files += zeek[:: max(1, len(zeek) // 30)]  # a fixed sample of about 30
    files += sorted(p for p in (REPO / "tests" / "data").rglob("*") if p.suffix in (".pcap", ".pcapng")
                    and p.is_file())
    return files


CORPUS_FILES = _corpus_files()


@pytest.mark.skipif(not CORPUS_FILES, reason=f"the shared corpus is not at {CORPUS}")
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_same_flows(path: Path, eager: bool) -> None:
    for cfg in CONFIGS.values():
        assert_same([str(path)], cfg)


# ---- generated and crafted captures ------------------------------------------------------


@pytest.fixture(scope="module")
def bench_capture(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "bench50k.pcap"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "gen_capture.py"), "--packets", "50000",
                    "--seed", "7", "--span", "40", str(out)], check=True, capture_output=True)
    return out


def test_generated_benchmark_capture(bench_capture: Path) -> None:
    counts = {}
    for name, cfg in CONFIGS.items():
        counts[name] = assert_same([str(bench_capture)], cfg)
    # the point of the exercise: nearly every packet took the batch path, few were looked at one by one
    c = counts["default"]
    assert c["fast_packets"] > 0.95 * 50000, c
    assert c["individual_updates"] < 0.3 * 50000, c


def _write_pcap(path: Path, rows: list[tuple[float, bytes, int]], linktype: int = 1) -> Path:
    """Classic pcap; rows are (ts, captured bytes, wire length)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)]
    for ts, data, wire in rows:
        sec = int(ts)
        out.append(struct.pack("<IIII", sec, round((ts - sec) * 1e6), len(data), wire) + data)
    path.write_bytes(b"".join(out))
    return path


def torture_rows(seed: int, n_conn: int = 60, frags: bool = True) -> list[tuple[float, bytes, int]]:
    """A seeded mix of everything the engine distinguishes, interleaved in time."""
    rnd = random.Random(seed)
    events: list[tuple[float, bytes, int]] = []
    hosts4 = [f"10.1.{i}.{j}" for i in range(2) for j in range(1, 4)]
    hosts6 = ["2001:db8::1", "2001:db8::2", "fe80::5"]

    def frame(pkt, vlan: int | None = None) -> bytes:
        if vlan is not None:
            return bytes(Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") / Dot1Q(vlan=vlan) / pkt)
        return bytes(Ether(src=f"02:00:00:00:00:{rnd.randrange(1, 3):02x}", dst="02:00:00:00:00:0b") / pkt)

    def add(t: float, pkt, vlan=None, snap: int | None = None) -> None:
        data = frame(pkt, vlan)
        wire = len(data)
        if snap is not None and snap < len(data):
            data = data[:snap]
        events.append((t, data, wire))

    for c in range(n_conn):
        v6 = rnd.random() < 0.25
        a, b = (rnd.sample(hosts6, 2) if v6 else rnd.sample(hosts4, 2))
        ip = (lambda s, d: IPv6(src=s, dst=d)) if v6 else (lambda s, d: IP(src=s, dst=d))
        vlan = rnd.choice([None, None, None, 7])
        t = rnd.uniform(0, 40)
        kind = rnd.random()
        if kind < 0.6:  # TCP conversation, maybe a reused port pair
            cport, sport = rnd.choice([(40000 + c, 443), (40001, 80)])
            for _conn in range(rnd.choice([1, 1, 2])):
                cs, ss = rnd.randrange(1 << 32), rnd.randrange(1 << 32)
                segs = []
                if rnd.random() < 0.85:
                    segs.append((0, ip(a, b) / TCP(sport=cport, dport=sport, flags="S", seq=cs)))
                    segs.append((1, ip(b, a) / TCP(sport=sport, dport=cport, flags="SA", seq=ss, ack=cs + 1)))
                    cs, ss = cs + 1, ss + 1
                for _ in range(rnd.randrange(2, 40)):
                    up = rnd.random() < 0.4
                    n = rnd.choice([0, 1, 10, 100, 536, 1200, 1448])
                    seq = cs if up else ss
                    p = (ip(a, b) / TCP(sport=cport, dport=sport, flags="PA", seq=seq % (1 << 32))
                         if up else ip(b, a) / TCP(sport=sport, dport=cport, flags="A", seq=seq % (1 << 32)))
                    if n:
                        p = p / Raw(bytes(rnd.randrange(256) for _ in range(n)))
                    segs.append((0 if up else 1, p))
                    if up:
                        cs += n
                    else:
                        ss += n
                    r = rnd.random()
                    if r < 0.08 and n:  # retransmission, sometimes overlapping differently
                        q = p.copy()
                        if rnd.random() < 0.5:
                            q[TCP].seq = (q[TCP].seq + n // 2) % (1 << 32)
                        segs.append((0 if up else 1, q))
                    elif r < 0.12 and len(segs) > 2:  # reorder the last two
                        segs[-1], segs[-2] = segs[-2], segs[-1]
                    elif r < 0.14:  # lost
                        segs.pop()
                end = rnd.random()
                if end < 0.5:
                    segs.append((0, ip(a, b) / TCP(sport=cport, dport=sport, flags="FA", seq=cs % (1 << 32))))
                    segs.append((1, ip(b, a) / TCP(sport=sport, dport=cport, flags="FA", seq=ss % (1 << 32))))
                    segs.append((0, ip(a, b) / TCP(sport=cport, dport=sport, flags="A", seq=(cs + 1) % (1 << 32))))
                elif end < 0.7:
                    segs.append((1, ip(b, a) / TCP(sport=sport, dport=cport, flags="R", seq=ss % (1 << 32))))
                gap = rnd.choice([0.001, 0.05, 0.3, 1.5])
                for _d, p in segs:
                    t += rnd.uniform(0, gap)
                    if rnd.random() < 0.03:
                        t += 3.0  # idle past the tight idle timeout
                    add(t, p, vlan, snap=80 if rnd.random() < 0.02 else None)
                t += rnd.uniform(0, 2)
        elif kind < 0.85:  # UDP exchange, sometimes fragmented, sometimes with IPv6 options
            sp, dp = rnd.randrange(1024, 65535), rnd.choice([53, 443, 5000])
            for _ in range(rnd.randrange(1, 30)):
                up = rnd.random() < 0.5
                n = rnd.choice([0, 20, 300, 1200, 3000])
                s, d, ps, pd = (a, b, sp, dp) if up else (b, a, dp, sp)
                pkt = ip(s, d) / UDP(sport=ps, dport=pd) / Raw(bytes(rnd.randrange(256) for _ in range(n)))
                t += rnd.uniform(0, 0.7)
                if not v6 and n > 1400 and frags:
                    for fr in fragment(pkt, fragsize=1000):
                        add(t, fr, vlan)
                elif v6 and rnd.random() < 0.2:
                    add(t, IPv6(src=s, dst=d) / IPv6ExtHdrHopByHop() / UDP(sport=ps, dport=pd) / Raw(b"x" * n))
                elif n <= 1400:
                    add(t, pkt, vlan)
        else:  # ICMP echo, ARP
            for i in range(rnd.randrange(1, 6)):
                t += rnd.uniform(0, 1)
                if v6:
                    add(t, ARP(psrc="10.1.0.1", pdst="10.1.0.2"))
                else:
                    add(t, IP(src=a, dst=b) / ICMP(type=8, id=c, seq=i) / Raw(b"ping" * 8))
                    add(t + 0.001, IP(src=b, dst=a) / ICMP(type=0, id=c, seq=i) / Raw(b"ping" * 8))
    events.sort(key=lambda e: e[0])
    # a few clock steps backwards, as captures from several interfaces have
    for _ in range(len(events) // 100):
        i = rnd.randrange(1, len(events))
        ts, data, wire = events[i]
        events[i] = (ts - rnd.uniform(0, 1.5), data, wire)
    base = 1_700_000_000.0
    return [(base + ts, data, wire) for ts, data, wire in events]


@pytest.fixture(scope="module")
def torture(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("torture")
    return [_write_pcap(d / f"torture{s}.pcap", torture_rows(s, n_conn=60 if s < 2 else 150, frags=s != 2))
            for s in range(3)]


def test_torture_captures(torture: list[Path], eager: bool) -> None:
    for path in torture:
        for cfg in CONFIGS.values():
            assert_same([str(path)], cfg)


def test_torture_small_chunks(torture: list[Path], monkeypatch) -> None:
    """Chunk and segment cuts everywhere: records held back, flows spanning chunks."""
    monkeypatch.setattr(fastpath_read, "CHUNK_BYTES", 3000)
    monkeypatch.setattr(fastpath, "SMALL_SEGMENT", 1)
    monkeypatch.setattr(fastpath, "MAX_GROUP_SHARE", 1.0)
    for cfg in CONFIGS.values():
        assert_same([str(torture[0])], cfg)


def test_several_files_merged(torture: list[Path]) -> None:
    paths = [str(p) for p in torture[:2]]
    for cfg in CONFIGS.values():
        assert_same(paths, cfg)


@pytest.mark.parametrize("chunk_bytes", [3000, 20000])
def test_damaged_copies(torture: list[Path], tmp_path: Path, monkeypatch, chunk_bytes: int) -> None:
    """Truncated files, corrupt record lengths and cut gzip streams: same packets, same problems."""
    monkeypatch.setattr(fastpath_read, "CHUNK_BYTES", chunk_bytes)
    src = torture[1].read_bytes()
    rnd = random.Random(chunk_bytes)
    for k in range(16):
        b = bytearray(src)
        kind = k % 4
        if kind == 0:
            b = b[: rnd.randrange(0, len(b))]
        elif kind == 1:
            for _ in range(2):
                i = rnd.randrange(24, len(b) - 4)
                b[i : i + 4] = struct.pack("<I", rnd.choice([0xFFFFFF, 70000, 5]))
            if k == 1:  # the very first record's length is impossible
                b[32:36] = struct.pack("<I", 0xFFFFFF)
        elif kind == 2:
            i = rnd.randrange(24, len(b) - 4)
            b[i] ^= 0xFF
        else:
            b = bytearray(gzip.compress(bytes(b)))
            b = b[: rnd.randrange(10, len(b))]
        p = tmp_path / (f"d{k}.pcap" + (".gz" if kind == 3 else ""))
        p.write_bytes(bytes(b))
        assert_same([str(p)], CONFIGS["default"])
        if chunk_bytes > 3000:
            assert_same([str(p)], CONFIGS["tight"])


def test_reader_same_packets(torture: list[Path], monkeypatch) -> None:
    monkeypatch.setattr(fastpath_read, "CHUNK_BYTES", 5000)
    for paths in ([str(torture[0])], [str(p) for p in torture]):
        want = list(merged_packets(paths, Problems(), [], []))
        got = [c.raw(i) for c in read_chunks(paths, [], []) for i in range(len(c))]
        assert got == want


def test_vectorized_decode_matches_decoder(torture: list[Path]) -> None:
    """Every packet the arrays decode is exactly what Decoder.decode returns."""
    paths = [str(torture[2])] + [str(p) for p in CORPUS_FILES[:20]]
    seen = 0
    for path in paths:
        for chunk in read_chunks([path], [], []):
            dv = decode_chunk(chunk)
            for i in range(len(chunk)):
                if dv.cls[i] not in (FAST, SLOW_OK):
                    continue
                raw = chunk.raw(i)
                want = Decoder().decode(raw.ts, raw.data, raw.linktype)
                assert dv.decoded(chunk, i) == want, (path, i)
                seen += dv.cls[i] == FAST
    assert seen > 1000


def test_pipeline_switch(torture: list[Path], tmp_path: Path, monkeypatch) -> None:
    """`netan analyze` writes the same flows.jsonl with either engine."""
    from netan.pipeline import RunOptions, analyze_captures

    outs = {}
    for engine in ("packet", "batch"):
        monkeypatch.setenv("NETAN_ENGINE", engine)
        out = tmp_path / engine
        res = analyze_captures([str(torture[0])], RunOptions(out_dir=str(out)))
        outs[engine] = ((out / "flows.jsonl").read_text(), res.summary["counts"], res.summary["skipped"])
    assert outs["packet"] == outs["batch"]
    assert outs["batch"][1]["flows"] > 50


def test_lru_order_after_two_moves_in_one_segment(tmp_path: Path, monkeypatch) -> None:
    """A flow re-ordered twice inside one segment must end up where its second move puts it.

    X moves at 101.5 and again at 102.6 (the scan trigger); W moves at 101.6 in
    between. The table's order is then [W, X], so the flow limit evicts W when
    Z arrives; keeping only X's first move would evict X instead.
    """
    monkeypatch.setattr(fastpath, "SMALL_SEGMENT", 1)
    monkeypatch.setattr(fastpath, "MAX_GROUP_SHARE", 1.0)

    def udp(sport: int) -> bytes:
        return bytes(Ether() / IP(src="10.9.0.1", dst="10.9.0.2") / UDP(sport=sport, dport=53) / Raw(b"q"))

    t0 = 1_700_000_000.0
    X, W, Z = 1001, 1002, 1003
    rows = [(t0 + t, udp(p), 0) for t, p in
            [(100.0, X), (100.1, W), (101.0, W), (101.5, X), (101.6, W), (102.6, X), (102.7, Z)]]
    path = _write_pcap(tmp_path / "lru.pcap", [(t, d, len(d)) for t, d, _ in rows])
    cfg = FlowConfig(max_flows=2)
    assert_same([str(path)], cfg)
    flows, _, _, counts = run_batch([str(path)], cfg)
    assert counts["fast_packets"] >= 3
    evicted = [r["src_port"] for r, _ in flows if r["end_reason"] == "flow_limit"]
    assert evicted == [W]


def _relink(rows: list[tuple[float, bytes, int]], linktype: int) -> list[tuple[float, bytes, int]]:
    """The torture capture's Ethernet frames under another link-layer header."""
    out = []
    for ts, data, wire in rows:
        if len(data) < 14:
            continue
        mac, etype, body = data[6:12], data[12:14], data[14:]
        if linktype == 101:  # raw IP: what has no IP header stays (a non-IP frame becomes a problem)
            new = body
        elif linktype == 113:  # Linux cooked v1: type, ARPHRD, address length, address, protocol
            new = struct.pack("!HHH", 0, 1, 6) + mac + b"\0\0" + etype + body
        else:  # 276, Linux cooked v2: protocol, reserved, ifindex, ARPHRD, type, address length, address
            new = etype + b"\0\0" + struct.pack("!IHBB", 2, 1, 0, 6) + mac + b"\0\0" + body
        out.append((ts, new, wire - len(data) + len(new)))
    return out


@pytest.mark.parametrize("linktype", [101, 113, 276])
def test_other_link_types(tmp_path: Path, linktype: int, monkeypatch) -> None:
    monkeypatch.setattr(fastpath, "SMALL_SEGMENT", 1)
    path = _write_pcap(tmp_path / f"lt{linktype}.pcap", _relink(torture_rows(2, n_conn=80, frags=False), linktype),
                       linktype=linktype)
    for cfg in (CONFIGS["default"], CONFIGS["tight-no-limit"]):
        counts = assert_same([str(path)], cfg)
    assert counts["fast_packets"] > 500, counts


def test_nanosecond_big_endian(tmp_path: Path) -> None:
    rows = torture_rows(1, frags=False)
    out = [struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)]
    for ts, data, wire in rows:
        sec = int(ts)
        out.append(struct.pack(">IIII", sec, round((ts - sec) * 1e9), len(data), wire) + data)
    path = tmp_path / "ns_be.pcap"
    path.write_bytes(b"".join(out))
    gz = tmp_path / "ns_be.pcap.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    for p in (path, gz):
        assert_same([str(p)], CONFIGS["default"])
        assert_same([str(p)], CONFIGS["tight-no-limit"])


def _write_pcapng(path: Path, rows: list[tuple[float, bytes, int]], spb_at: int | None = None) -> Path:
    """pcapng: an Ethernet interface in µs and a raw-IP one in ns (if_tsresol 9), statistics
    and name-resolution blocks in between, optionally one simple packet block."""
    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
           block(1, struct.pack("<HHI", 1, 0, 262144)),
           block(1, struct.pack("<HHI", 101, 0, 262144) + struct.pack("<HHB3x", 9, 1, 9) + b"\0" * 4)]
    for n, (ts, data, wire) in enumerate(rows):
        if n == spb_at:
            out.append(block(3, struct.pack("<I", wire) + data))
            continue
        ifid, frame = (1, data[14:]) if data[12:14] == b"\x08\x00" and n % 3 == 0 else (0, data)
        t = round(ts * (1e9 if ifid else 1e6))
        out.append(block(6, struct.pack("<IIIII", ifid, t >> 32, t & 0xFFFFFFFF, len(frame),
                                        wire - len(data) + len(frame)) + frame))
        if n % 97 == 0:
            out.append(block(5, struct.pack("<IIIII", 0, 0, 0, 0, 0)))  # interface statistics
    path.write_bytes(b"".join(out))
    return path


@pytest.mark.parametrize("variant", ["plain", "spb", "truncated", "bad-length", "bad-trailer"])
def test_pcapng(tmp_path: Path, variant: str, monkeypatch) -> None:
    monkeypatch.setattr(fastpath_read, "CHUNK_BYTES", 50000)
    rows = torture_rows(0, frags=False)
    path = _write_pcapng(tmp_path / f"{variant}.pcapng", rows, spb_at=400 if variant == "spb" else None)
    b = bytearray(path.read_bytes())
    if variant == "truncated":
        b = b[: len(b) * 2 // 3]
    elif variant in ("bad-length", "bad-trailer"):
        at = 0
        for _ in range(300):  # walk to the 300th block
            at += struct.unpack_from("<I", b, at + 4)[0]
        off = at + 4 if variant == "bad-length" else at + struct.unpack_from("<I", b, at + 4)[0] - 4
        b[off : off + 4] = struct.pack("<I", 0x7FFF_FFF0)
    path.write_bytes(bytes(b))
    for cfg in (CONFIGS["default"], CONFIGS["tight-no-limit"]):
        assert_same([str(path)], cfg)
    chunks = list(read_chunks([str(path)], [], []))
    assert isinstance(chunks[0].buf, mmap.mmap)  # the fast walk took the first packets at least


def test_planning_error_falls_back_per_packet(torture: list[Path], monkeypatch, caplog) -> None:
    """A bug met while planning a segment (nothing changed yet) costs speed, not results."""
    def boom(*_a, **_k):
        raise IndexError("planted")

    monkeypatch.setattr(BatchEngine, "_tcp_model", boom)
    monkeypatch.setattr(fastpath, "SMALL_SEGMENT", 1)
    counts = assert_same([str(torture[2])], CONFIGS["default"])
    assert counts["fast_packets"] == 0 or counts["per_packet"] > 0
    assert "per packet instead" in caplog.text


def test_several_files_mixed(torture: list[Path], tmp_path: Path, monkeypatch) -> None:
    """pcap, pcapng, gzip, a damaged file and a missing one, overlapping in time, as one capture."""
    monkeypatch.setattr(fastpath_read, "CHUNK_BYTES", 30000)
    ng = _write_pcapng(tmp_path / "b.pcapng", torture_rows(1, frags=False))
    gz = tmp_path / "c.pcap.gz"
    gz.write_bytes(gzip.compress(torture[2].read_bytes()))
    cut = tmp_path / "d.pcap"
    raw = bytearray(torture[0].read_bytes())
    raw[5000:5004] = struct.pack("<I", 0xFFFFFF)  # somewhere inside: a corrupt record or data
    cut.write_bytes(bytes(raw[: len(raw) * 3 // 4]))
    paths = [str(torture[0]), str(ng), str(tmp_path / "missing.pcap"), str(gz), str(cut)]
    for cfg in (CONFIGS["default"], CONFIGS["tight-no-limit"]):
        assert_same(paths, cfg)
    want = list(merged_packets(paths, Problems(), [], []))
    got = [c.raw(i) for c in read_chunks(paths, [], []) for i in range(len(c))]
    assert got == want


@pytest.mark.parametrize("chunk_bytes", [2000, 50000])
def test_several_damaged_files_problem_order(torture: list[Path], tmp_path: Path, monkeypatch,
                                             chunk_bytes: int) -> None:
    """Reader problems of several files interleave exactly where the per-packet merge meets them."""
    monkeypatch.setattr(fastpath_read, "CHUNK_BYTES", chunk_bytes)
    src = torture[0].read_bytes()
    offs, pos = [], 24
    while pos + 16 <= len(src):
        offs.append(pos)
        pos += 16 + struct.unpack_from("<I", src, pos + 8)[0]
    paths = []
    for k in range(3):
        rnd = random.Random(k)
        b = bytearray(src)
        for o in rnd.sample(offs[10:], 5):
            b[o + 8 : o + 12] = struct.pack("<I", rnd.choice([0xFFFFFF, 0x7FFFFFFF]))
        if k == 1:
            b = b[: len(b) - 7]
        p = tmp_path / f"m{k}.pcap"
        p.write_bytes(bytes(b))
        paths.append(str(p))
    assert_same(paths, CONFIGS["default"])
    problems = run_batch(paths, CONFIGS["default"])[2]["problems"]
    assert problems["total"] >= 10
