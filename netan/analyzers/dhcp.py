"""DHCP (RFC 2131/2132) messages in a flow's datagrams -> address bindings.

A DHCPACK names the client hardware address (``chaddr``), the address it got
(``yiaddr``), the lease time and often the host name the client sent; the
context join uses these as IP <-> MAC bindings over time, exactly like a lease
file read from the gateway.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from netan.sample import FlowSample

__all__ = ["DhcpBinding", "parse_dhcp", "bindings_from_sample"]

MAGIC = b"\x63\x82\x53\x63"
ACK, REQUEST = 5, 3
OPT_HOSTNAME, OPT_MSGTYPE, OPT_LEASE, OPT_REQUESTED_IP, OPT_END, OPT_PAD = 12, 53, 51, 50, 255, 0


@dataclass(frozen=True, slots=True)
class DhcpBinding:
    ts: float
    mac: str
    ip: str
    hostname: str | None
    lease_s: int | None


def parse_dhcp(data: bytes) -> dict | None:
    """The fields of one BOOTP/DHCP message, or None when it is not one."""
    if len(data) < 240 or data[236:240] != MAGIC or data[0] not in (1, 2):
        return None
    htype, hlen = data[1], data[2]
    chaddr = data[28 : 28 + min(hlen, 16)]
    msg: dict = {"op": data[0], "xid": struct.unpack_from("!I", data, 4)[0],
                 "yiaddr": str(ipaddress.IPv4Address(data[16:20])),
                 "ciaddr": str(ipaddress.IPv4Address(data[12:16])),
                 "mac": ":".join(f"{b:02x}" for b in chaddr) if htype == 1 and hlen == 6 else None}
    pos = 240
    while pos < len(data):
        code = data[pos]
        if code == OPT_END:
            break
        if code == OPT_PAD:
            pos += 1
            continue
        if pos + 2 > len(data):
            break
        length = data[pos + 1]
        value = data[pos + 2 : pos + 2 + length]
        if len(value) < length:
            break  # truncated option: keep what was read
        if code == OPT_MSGTYPE and length == 1:
            msg["type"] = value[0]
        elif code == OPT_HOSTNAME:
            msg["hostname"] = "".join(ch if ch.isprintable() else "?" for ch in value[:64].decode("ascii", "replace"))
        elif code == OPT_LEASE and length == 4:
            msg["lease_s"] = struct.unpack("!I", value)[0]
        elif code == OPT_REQUESTED_IP and length == 4:
            msg["requested_ip"] = str(ipaddress.IPv4Address(value))
        pos += 2 + length
    return msg


def bindings_from_sample(sample: FlowSample) -> list[DhcpBinding]:
    """Bindings from every DHCPACK in a UDP 67/68 flow (host names taken from the REQUEST)."""
    if sample.proto != "udp" or not ({sample.src_port, sample.dst_port} & {67, 68}):
        return []
    names: dict[tuple[int, str], str] = {}
    out: list[DhcpBinding] = []
    for mark, data in sample.datagrams():
        msg = parse_dhcp(data)
        if msg is None or msg.get("mac") is None:
            continue
        if msg.get("type") == REQUEST and msg.get("hostname"):
            names[(msg["xid"], msg["mac"])] = msg["hostname"]
        if msg.get("type") == ACK and msg["yiaddr"] != "0.0.0.0":
            host = msg.get("hostname") or names.get((msg["xid"], msg["mac"]))
            out.append(DhcpBinding(mark.ts, msg["mac"], msg["yiaddr"], host, msg.get("lease_s")))
    return out
