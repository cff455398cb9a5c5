"""tshark as an independent oracle over lab captures: flows and conversations.

Contract: :func:`tshark_flows` reads a capture with tshark (not netan's code)
and returns its TCP/UDP flows keyed by the originator's 5-tuple (TCP: the SYN
sender; UDP: the first packet's sender) with per-direction packet counts and
transport payload bytes (TCP retransmissions counted once, as CONTRACT.md
asks). :func:`tshark_conversations` parses ``tshark -z conv,tcp|udp``.
:func:`compare_with_truth` lists every difference between those flows and a
session's :class:`~netan.testing.truth.FlowTruth` records.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from netan.testing.truth import FlowTruth

__all__ = ["OracleFlow", "tshark_flows", "tshark_conversations", "compare_with_truth", "tshark_available"]

Key = tuple[str, str, int, str, int]  # proto, src_ip, src_port, dst_ip, dst_port


def tshark_available() -> bool:
    return shutil.which("tshark") is not None


@dataclass
class OracleFlow:
    key: Key
    first: float
    last: float
    pkts_out: int = 0
    pkts_in: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    retransmissions: int = 0
    syn: bool = False


def _tshark(pcap: Path, *args: str) -> str:
    proc = subprocess.run(["tshark", "-n", "-r", str(pcap), *args], capture_output=True, text=True, timeout=120,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"tshark failed on {pcap}: {proc.stderr.strip()}")
    return proc.stdout


def tshark_flows(pcap: str | Path) -> dict[Key, OracleFlow]:
    """TCP and UDP flows of ``pcap`` as tshark dissects them (one flow per tcp.stream / udp.stream)."""
    fields = ["frame.time_epoch", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.stream", "tcp.srcport",
              "tcp.dstport", "tcp.len", "tcp.flags.syn", "tcp.flags.ack", "tcp.analysis.retransmission",
              "tcp.analysis.spurious_retransmission",
              "udp.stream", "udp.srcport", "udp.dstport", "udp.length", "icmp.type", "icmpv6.type"]
    args = ["-T", "fields", "-E", "separator=|", "-E", "occurrence=f", "-Y", "(tcp or udp) and not icmp and not icmpv6"]
    for f in fields:
        args += ["-e", f]
    flows: dict[tuple[str, str], OracleFlow] = {}
    for line in _tshark(Path(pcap), *args).splitlines():
        v = dict(zip(fields, line.split("|")))
        src = v["ip.src"] or v["ipv6.src"]
        dst = v["ip.dst"] or v["ipv6.dst"]
        ts = float(v["frame.time_epoch"])
        if v["tcp.stream"]:
            proto, stream = "tcp", v["tcp.stream"]
            sport, dport = int(v["tcp.srcport"]), int(v["tcp.dstport"])
            n = int(v["tcp.len"] or 0)
        elif v["udp.stream"]:
            proto, stream = "udp", v["udp.stream"]
            sport, dport = int(v["udp.srcport"]), int(v["udp.dstport"])
            n = max(0, int(v["udp.length"] or 8) - 8)
        else:
            continue
        fl = flows.get((proto, stream))
        syn_only = v["tcp.flags.syn"] in ("1", "True") and v["tcp.flags.ack"] not in ("1", "True")
        if fl is None:
            fl = OracleFlow((proto, src, sport, dst, dport), ts, ts, syn=syn_only)
            flows[(proto, stream)] = fl
        elif syn_only and not fl.syn and (src, sport) != (fl.key[1], fl.key[2]):
            # The SYN sender is the originator even if a stray packet came first.
            fl.key = (proto, src, sport, dst, dport)
            fl.pkts_out, fl.pkts_in = fl.pkts_in, fl.pkts_out
            fl.bytes_out, fl.bytes_in = fl.bytes_in, fl.bytes_out
            fl.syn = True
        fl.last = ts
        out = (src, sport) == (fl.key[1], fl.key[2])
        retrans = bool(v["tcp.analysis.retransmission"] or v["tcp.analysis.spurious_retransmission"])
        if retrans:
            fl.retransmissions += 1
        if out:
            fl.pkts_out += 1
            fl.bytes_out += 0 if retrans else n
        else:
            fl.pkts_in += 1
            fl.bytes_in += 0 if retrans else n
    return {fl.key: fl for fl in flows.values()}


_CONV_RE = re.compile(r"^(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+(\d+)\s+(\d+ \S*bytes|\d+ [kMG]B)\s+(\d+)\s+")


def tshark_conversations(pcap: str | Path, proto: str = "tcp") -> dict[tuple[str, int, str, int], tuple[int, int]]:
    """``tshark -q -z conv,<proto>``: {(addr A, port A, addr B, port B): (frames B->A, frames A->B)}."""
    out = _tshark(Path(pcap), "-q", "-z", f"conv,{proto}")
    convs = {}
    for line in out.splitlines():
        m = _CONV_RE.match(line.strip())
        if m:
            convs[(m[1], int(m[2]), m[3], int(m[4]))] = (int(m[5]), int(m[7]))
    return convs


def compare_with_truth(pcap: str | Path, truth: Iterable[FlowTruth], *, exact_extra: bool = True,
                       flows: dict[Key, OracleFlow] | None = None,
                       allow_retransmissions: bool = True) -> list[str]:
    """Every disagreement between the capture (per tshark) and the truth; [] when they agree.

    Checks: each truth flow is in the capture with equal payload bytes per
    direction (retransmitted payload counted once; with
    ``allow_retransmissions=False`` any retransmission is a problem: on a
    loaded machine TCP's tail-loss probe can fire even on a lossless veth, so
    only the demo recorder insists); (``exact_extra``) the capture has no
    TCP/UDP flow the truth does not know (DHCP excepted), and no other IP
    packet (ARP and IPv6 neighbour discovery/MLD excepted). ``flows``: a :func:`tshark_flows`
    result to reuse.
    """
    flows = tshark_flows(pcap) if flows is None else flows
    problems = []
    seen = set()
    for t in truth:
        fl = flows.get(t.five_tuple)
        if fl is None:
            problems.append(f"missing from capture: {t.kind} {t.five_tuple}")
            continue
        seen.add(t.five_tuple)
        if (fl.bytes_out, fl.bytes_in) != (t.bytes_out, t.bytes_in):
            problems.append(f"bytes differ for {t.kind} {t.five_tuple}: capture out/in {fl.bytes_out}/{fl.bytes_in}"
                            f", truth {t.bytes_out}/{t.bytes_in}")
        if fl.retransmissions and not allow_retransmissions:
            problems.append(f"{fl.retransmissions} retransmissions in {t.five_tuple}")
        if t.proto == "tcp" and not fl.syn:
            problems.append(f"no SYN captured for {t.five_tuple}")
        if fl.first < t.start - 0.001 or fl.last > t.end + 1.0:
            problems.append(f"capture times {fl.first:.6f}-{fl.last:.6f} outside truth {t.start:.6f}-{t.end:.6f}"
                            f" for {t.five_tuple}")
    if exact_extra:
        for key in sorted(set(flows) - seen):
            if key[0] == "udp" and {key[2], key[4]} <= {67, 68}:
                continue  # DHCP: link infrastructure like ARP (DhcpTruth records it, not FlowTruth)
            problems.append(f"capture has a flow the truth does not: {key}")
        # ICMPv6 neighbour discovery and MLD are IPv6's ARP: link infrastructure, not flows.
        other = _tshark(Path(pcap), "-Y", "(ip or ipv6) and not tcp and not udp and not icmpv6.type in "
                        "{130,131,132,133,134,135,136,143}", "-T", "fields",
                        "-e", "frame.number", "-e", "_ws.col.Protocol").split("\n")
        for line in filter(None, other):
            problems.append(f"capture has an IP packet of no truth flow: frame {line.replace(chr(9), ' ')}")
    return problems
