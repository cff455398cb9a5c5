"""Test helpers: FlowSamples from a pcap (dpkt) or from a list of messages.

Stand-in for netan.engine until the lead's flow engine lands: it reassembles
each TCP direction by sequence number (first copy of a byte wins, as the
engine does), lays UDP datagrams end to end, and marks packets the way
netan.sample documents. Only for tests: the real engine replaces it.
"""
from __future__ import annotations

import gzip
import socket
from pathlib import Path

import dpkt

from netan.sample import IN, OUT, FlowSample, PacketMark

__all__ = ["samples_from_pcap", "sample_from_messages"]


def sample_from_messages(
    messages: list[tuple[int, bytes]],
    *,
    proto: str = "tcp",
    src: tuple[str, int] = ("10.0.0.2", 40000),
    dst: tuple[str, int] = ("192.0.2.10", 9000),
    cap: int = 1 << 20,
    segment: int = 1448,
    max_marks: int | None = None,
) -> FlowSample:
    """A sample whose direction runs are exactly ``messages`` (TCP cut into segments).

    ``cap`` and ``max_marks`` bound it the way netan.flows does (FlowConfig
    sample_bytes=4096 and max_marks=64 by default there): packets that start
    beyond the cap are not marked.
    """
    streams = {OUT: bytearray(), IN: bytearray()}
    marks: list[PacketMark] = []
    ts = 1_700_000_000.0
    for direction, data in messages:
        pieces = [data] if proto == "udp" else [data[i : i + segment] for i in range(0, len(data), segment)] or [b""]
        for piece in pieces:
            if not piece:
                continue
            ts += 0.001
            marks.append(PacketMark(direction, ts, len(streams[direction]), len(piece)))
            streams[direction] += piece
    marks = [m for m in marks if m.offset < cap][: max_marks if max_marks is not None else len(marks)]
    return FlowSample(proto, src[0], src[1], dst[0], dst[1], bytes(streams[OUT][:cap]), bytes(streams[IN][:cap]), packets=tuple(marks))


def _addr(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)


def _decode(link: int, buf: bytes) -> object:
    if link == dpkt.pcap.DLT_EN10MB:
        return dpkt.ethernet.Ethernet(buf).data
    if link == dpkt.pcap.DLT_LINUX_SLL:
        return dpkt.sll.SLL(buf).data
    if link in (0, 108):  # DLT_NULL / DLT_LOOP (BSD loopback)
        return dpkt.loopback.Loopback(buf).data
    return dpkt.ip.IP(buf) if buf[:1] and buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)


def samples_from_pcap(path: Path, *, cap: int = 65536, midstream: bool = True) -> list[FlowSample]:
    """One FlowSample per TCP/UDP flow of a pcap, in first-packet order."""
    flows: dict[tuple, dict] = {}
    order: list[tuple] = []
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        head = fh.read(4)
        fh.seek(0)
        reader = dpkt.pcapng.Reader(fh) if head == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(fh)
        link = reader.datalink()
        for ts, buf in reader:
            try:
                ip = _decode(link, buf)
            except (dpkt.UnpackError, ValueError, IndexError):
                continue
            if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                continue
            l4 = ip.data
            if isinstance(l4, dpkt.tcp.TCP):
                proto = "tcp"
            elif isinstance(l4, dpkt.udp.UDP):
                proto = "udp"
            else:
                continue
            sender = a = (_addr(ip.src), l4.sport)
            b = (_addr(ip.dst), l4.dport)
            key = (proto,) + tuple(sorted((a, b)))
            st = flows.get(key)
            if st is None:
                if proto == "tcp" and l4.flags & dpkt.tcp.TH_SYN and l4.flags & dpkt.tcp.TH_ACK:
                    a, b = b, a  # SYN/ACK first: the other side opened it
                elif proto == "tcp" and not l4.flags & dpkt.tcp.TH_SYN and not midstream:
                    continue
                st = {"proto": proto, "src": a, "dst": b, "isn": {}, "streams": {OUT: {}, IN: {}}, "marks": [], "udp": {OUT: bytearray(), IN: bytearray()}}
                flows[key] = st
                order.append(key)
            direction = OUT if sender == st["src"] else IN
            payload = bytes(l4.data)
            if proto == "tcp":
                if l4.flags & dpkt.tcp.TH_SYN:
                    st["isn"][direction] = (l4.seq + 1) & 0xFFFFFFFF
                    continue
                if not payload:
                    continue
                if direction not in st["isn"]:
                    if not midstream:
                        continue
                    st["isn"][direction] = l4.seq  # joined mid-stream: first seen byte is offset 0
                off = (l4.seq - st["isn"][direction]) & 0xFFFFFFFF
                chunks = st["streams"][direction]
                if off < cap and off not in chunks:
                    chunks[off] = payload
                    st["marks"].append(PacketMark(direction, float(ts), off, len(payload)))
            else:
                buf_ = st["udp"][direction]
                st["marks"].append(PacketMark(direction, float(ts), len(buf_), len(payload)))
                buf_ += payload
    samples = []
    for key in order:
        st = flows[key]
        data = {}
        if st["proto"] == "tcp":
            for d in (OUT, IN):
                buf_ = bytearray()
                for off in sorted(st["streams"][d]):
                    chunk = st["streams"][d][off]
                    if off >= len(buf_):
                        buf_ += b"\x00" * (off - len(buf_)) + chunk
                    elif off + len(chunk) > len(buf_):
                        buf_ += chunk[len(buf_) - off :]  # first copy of a byte wins
                data[d] = bytes(buf_[:cap])
        else:
            data = {d: bytes(st["udp"][d][:cap]) for d in (OUT, IN)}
        marks = tuple(m for m in st["marks"] if m.offset < cap)
        samples.append(FlowSample(st["proto"], st["src"][0], st["src"][1], st["dst"][0], st["dst"][1], data[OUT], data[IN], packets=marks))
    return samples
