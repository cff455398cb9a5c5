"""Test helpers: FlowSamples from a pcap (dpkt) or from a list of messages.

Stand-in for netan.engine until the lead's flow engine lands: it reassembles
each TCP direction by sequence number (first copy of a byte wins, as the
engine does), lays UDP datagrams end to end, and marks packets the way
netan.sample documents. Only for tests: the real engine replaces it.
"""
from __future__ import annotations

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
) -> FlowSample:
    """A sample whose direction runs are exactly ``messages`` (TCP cut into segments)."""
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
    return FlowSample(proto, src[0], src[1], dst[0], dst[1], bytes(streams[OUT][:cap]), bytes(streams[IN][:cap]), packets=tuple(marks))


def _addr(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)


def samples_from_pcap(path: Path, *, cap: int = 65536) -> list[FlowSample]:
    """One FlowSample per TCP/UDP flow of a pcap, in first-packet order."""
    flows: dict[tuple, dict] = {}
    order: list[tuple] = []
    with open(path, "rb") as fh:
        reader = dpkt.pcap.Reader(fh)
        link = reader.datalink()
        for ts, buf in reader:
            if link == dpkt.pcap.DLT_EN10MB:
                ip = dpkt.ethernet.Ethernet(buf).data
            elif link in (dpkt.pcap.DLT_LINUX_SLL,):
                ip = dpkt.sll.SLL(buf).data
            elif link == 0:  # DLT_NULL (BSD loopback)
                ip = dpkt.loopback.Loopback(buf).data
            else:
                ip = dpkt.ip.IP(buf)
            if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                continue
            l4 = ip.data
            if isinstance(l4, dpkt.tcp.TCP):
                proto = "tcp"
            elif isinstance(l4, dpkt.udp.UDP):
                proto = "udp"
            else:
                continue
            a = (_addr(ip.src), l4.sport)
            b = (_addr(ip.dst), l4.dport)
            key = (proto,) + tuple(sorted((a, b)))
            st = flows.get(key)
            if st is None:
                if proto == "tcp" and not (l4.flags & dpkt.tcp.TH_SYN and not l4.flags & dpkt.tcp.TH_ACK):
                    continue  # tests record whole connections; ignore mid-stream starts
                st = {"proto": proto, "src": a, "dst": b, "isn": {}, "streams": {OUT: {}, IN: {}}, "marks": [], "udp": {OUT: bytearray(), IN: bytearray()}}
                flows[key] = st
                order.append(key)
            direction = OUT if a == st["src"] else IN
            payload = bytes(l4.data)
            if proto == "tcp":
                if l4.flags & dpkt.tcp.TH_SYN:
                    st["isn"][direction] = (l4.seq + 1) & 0xFFFFFFFF
                    continue
                if not payload or direction not in st["isn"]:
                    continue
                off = (l4.seq - st["isn"][direction]) & 0xFFFFFFFF
                chunks = st["streams"][direction]
                if off not in chunks:
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
                    if off > len(buf_):
                        buf_ += b"\x00" * (off - len(buf_))
                    buf_[off : off + len(chunk)] = chunk if off == len(buf_) else buf_[off : off + len(chunk)] + chunk[len(buf_) - off :] if off + len(chunk) > len(buf_) else buf_[off : off + len(chunk)]
                data[d] = bytes(buf_[:cap])
        else:
            data = {d: bytes(st["udp"][d][:cap]) for d in (OUT, IN)}
        marks = tuple(m for m in st["marks"] if m.offset < cap)
        samples.append(FlowSample(st["proto"], st["src"][0], st["src"][1], st["dst"][0], st["dst"][1], data[OUT], data[IN], packets=marks))
    return samples
