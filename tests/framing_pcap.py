"""Test helpers: FlowSamples from a pcap (through the real engine) or from a list of messages."""
from __future__ import annotations

from pathlib import Path

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


def samples_from_pcap(path: Path, *, cap: int = 65536, midstream: bool = True) -> list[FlowSample]:
    """One FlowSample per TCP/UDP flow of a pcap, in first-packet order (netan.engine, larger sample).

    ``midstream=False`` drops TCP flows whose opening SYN the capture missed.
    """
    from netan.engine import flow_samples
    from netan.flows import FlowConfig

    pairs = flow_samples([str(path)], FlowConfig(sample_bytes=cap, max_marks=4096))
    pairs.sort(key=lambda p: p[0]["ts"])
    return [s for r, s in pairs if r["proto"] in ("tcp", "udp")
            and (midstream or r["proto"] != "tcp" or (r.get("tcp") or {}).get("syn"))]
