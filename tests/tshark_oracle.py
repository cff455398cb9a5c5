"""tshark as an independent oracle for flows: per 5-tuple packets and payload bytes.

Reads each packet's addresses, ports and transport payload length with
`tshark -T fields` and aggregates per direction-agnostic 5-tuple. tshark
reassembles IP fragments (only the reassembling frame carries the transport
layer), so its per-5-tuple counts are datagram counts, as netan's are.
Retransmitted TCP payload (tcp.analysis.retransmission / spurious) is not
counted in bytes, matching the contract.
"""
from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict

FIELDS = ["ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
          "tcp.len", "udp.length", "tcp.analysis.retransmission", "tcp.analysis.spurious_retransmission",
          "tcp.flags.syn", "tcp.flags.ack", "icmp.type", "icmpv6.type", "tcp.analysis.keep_alive",
          "tcp.analysis.out_of_order"]


def have_tshark() -> bool:
    return shutil.which("tshark") is not None


def tshark_flows(path: str) -> dict[tuple, dict]:
    """{(proto, (ip, port), (ip, port)) sorted: {"pkts": {endpoint: n}, "bytes": {endpoint: n}}}."""
    cmd = ["tshark", "-n", "-r", path, "-o", "tcp.desegment_tcp_streams:FALSE", "-T", "fields",
           "-E", "separator=|", "-E", "occurrence=l"] + sum((["-e", f] for f in FIELDS), [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    flows: dict[tuple, dict] = defaultdict(
        lambda: {"pkts": defaultdict(int), "bytes": defaultdict(int), "resent": defaultdict(int)})
    for line in out.splitlines():
        v = dict(zip(FIELDS, line.split("|")))
        src = v["ip.src"] or v["ipv6.src"]
        dst = v["ip.dst"] or v["ipv6.dst"]
        if not src or v["icmp.type"] or v["icmpv6.type"]:
            continue  # ICMP errors quote the packet they answer; they are ICMP flows, not that flow's
        if v["tcp.srcport"]:
            proto, sp, dp = "tcp", int(v["tcp.srcport"]), int(v["tcp.dstport"])
            n = int(v["tcp.len"] or 0)
            if (v["tcp.analysis.retransmission"] or v["tcp.analysis.spurious_retransmission"]
                    or v["tcp.analysis.keep_alive"]):
                flows[key_of(src, sp, dst, dp, proto)]["resent"][(src, sp)] += n
                n = 0
        elif v["udp.srcport"]:
            proto, sp, dp = "udp", int(v["udp.srcport"]), int(v["udp.dstport"])
            n = max(0, int(v["udp.length"] or 8) - 8)
        else:
            continue
        a = (src, sp)
        key = key_of(src, sp, dst, dp, proto)
        flows[key]["pkts"][a] += 1
        flows[key]["bytes"][a] += n
    return flows


def key_of(src: str, sp: int, dst: str, dp: int, proto: str) -> tuple:
    return (proto,) + tuple(sorted([(src, sp), (dst, dp)]))


def netan_flows(records: list[dict]) -> dict[tuple, dict]:
    flows: dict[tuple, dict] = defaultdict(lambda: {"pkts": defaultdict(int), "bytes": defaultdict(int)})
    for r in records:
        if r["proto"] not in ("tcp", "udp"):
            continue
        a, b = (r["src_ip"], r["src_port"]), (r["dst_ip"], r["dst_port"])
        key = (r["proto"],) + tuple(sorted([a, b]))
        flows[key]["pkts"][a] += r["pkts_out"]
        flows[key]["pkts"][b] += r["pkts_in"]
        flows[key]["bytes"][a] += r["bytes_out"]
        flows[key]["bytes"][b] += r["bytes_in"]
    return flows
