"""Community ID v1 (seed 0) through the maintained ``communityid`` package.

One place computes it for every source (pcap, live, Zeek logs), so flows from
netan and from Zeek/Suricata join on the same string.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache

import communityid

__all__ = ["community_id_v1"]

_CID = communityid.CommunityID(seed=0)
_PORTED = {6, 17, 132}


@lru_cache(maxsize=1 << 16)
def community_id_v1(proto: int, src: bytes | str, sport: int, dst: bytes | str, dport: int) -> str:
    """The ID of a flow given as originator -> responder; addresses packed or text.

    For ICMP/ICMPv6, ``sport``/``dport`` are the message type and code, as the
    spec wants; for protocols without ports they are ignored.
    """
    saddr = src if isinstance(src, bytes) else ipaddress.ip_address(src).packed
    daddr = dst if isinstance(dst, bytes) else ipaddress.ip_address(dst).packed
    if proto in _PORTED:
        tpl = communityid.FlowTuple(proto, saddr, daddr, sport, dport)
    elif proto == 1:
        tpl = communityid.FlowTuple.make_icmp(saddr, daddr, sport, dport)
    elif proto == 58:
        tpl = communityid.FlowTuple.make_icmp6(saddr, daddr, sport, dport)
    else:
        tpl = communityid.FlowTuple.make_ip(saddr, daddr, proto)
    return _CID.calc(tpl)
