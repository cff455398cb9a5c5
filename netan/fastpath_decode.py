"""Vectorized decode of a ``Chunk``: the common case in numpy, the rest per packet.

Contract: for every packet it marks ``FAST``, the fields here are exactly what
``netan.decode.Decoder.decode`` would put into its ``Decoded`` (the
differential test compares the two). The common case is Ethernet (with up to
two 802.1Q/802.1ad tags), Linux cooked v1/v2 and raw IP, carrying IPv4 (any
header length, not a fragment) or IPv6 without extension headers, carrying
TCP, UDP/UDP-Lite, ICMP/ICMPv6 or any other protocol, with every header the
decoder reads fully captured. Everything else -- other link types, non-IP,
IPv6 extension headers, fragments, truncated or lying headers -- is decoded
by a throwaway ``Decoder`` (pure for non-fragments, so the result is what the
engine's own decoder would return) or, for fragments, flagged so the engine
replays that stretch per packet with its stateful decoder.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netan.decode import (ETH_IPV4, ETH_IPV6, ETH_QINQ, ETH_VLAN, ETH_VLAN_OLD, ICMP, ICMP6, IPV6_AH, IPV6_EXT,
                          IPV6_FRAG, IPV6_NONE, LT_ETHERNET, LT_IPV4, LT_IPV6, LT_RAW, LT_SLL, LT_SLL2, TCP, UDP,
                          Decoded, DecodeError, Decoder, NotIP)
from netan.fastpath_read import Chunk

__all__ = ["Decodedv", "decode_chunk", "decoded_many", "FAST", "SLOW_OK", "NOT_IP", "BAD", "FRAG"]

#: Packet classes.
FAST, SLOW_OK, NOT_IP, BAD, FRAG = 0, 1, 2, 3, 4
_RAW_LT = (LT_RAW, 12, 14, LT_IPV4, LT_IPV6)
_V6_SLOW = np.array(sorted(IPV6_EXT | {IPV6_FRAG, IPV6_AH, IPV6_NONE}), np.int64)


@dataclass
class Decodedv:
    """Per-packet decode results of a chunk (arrays of the chunk's length)."""

    cls: np.ndarray  # FAST / SLOW_OK / NOT_IP / BAD / FRAG
    v6: np.ndarray  # bool
    proto: np.ndarray
    src_hi: np.ndarray  # uint64: IPv6 high half, 0 for IPv4
    src_lo: np.ndarray  # uint64: IPv6 low half, the IPv4 address
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    sport: np.ndarray  # as Decoded (ICMP: type)
    dport: np.ndarray  # as Decoded (ICMP: code)
    flags: np.ndarray
    seq: np.ndarray
    pay_off: np.ndarray  # start of the captured payload in chunk.buf
    pay_cap: np.ndarray  # captured payload length (len(Decoded.payload))
    plen: np.ndarray
    ip_len: np.ndarray
    l3: np.ndarray  # start of the IP header in chunk.buf
    mac_off: np.ndarray  # -1: no MAC
    nvlan: np.ndarray
    vlan0: np.ndarray
    vlan1: np.ndarray
    slow: dict[int, object]  # index -> Decoded, NotIP, or the problem reason (str)

    def decoded(self, chunk: Chunk, i: int) -> Decoded:
        """Packet i as a ``Decoded`` (built from the arrays, or the one kept for a slow packet)."""
        if self.cls[i] != FAST:
            d = self.slow[i]
            assert isinstance(d, Decoded)
            return d
        buf = chunk.buf
        l3 = int(self.l3[i])
        if self.v6[i]:
            src, dst = buf[l3 + 8 : l3 + 24], buf[l3 + 24 : l3 + 40]
        else:
            src, dst = buf[l3 + 12 : l3 + 16], buf[l3 + 16 : l3 + 20]
        m = int(self.mac_off[i])
        nv = int(self.nvlan[i])
        vlans = () if nv == 0 else (int(self.vlan0[i]),) if nv == 1 else (int(self.vlan0[i]), int(self.vlan1[i]))
        po = int(self.pay_off[i])
        return Decoded(float(chunk.ts[i]), src, dst, int(self.proto[i]), int(self.sport[i]), int(self.dport[i]),
                       int(self.flags[i]), int(self.seq[i]), buf[po : po + int(self.pay_cap[i])],
                       int(self.plen[i]), int(self.ip_len[i]), buf[m : m + 6] if m >= 0 else None, vlans)


def _window(arr: np.ndarray, pos: np.ndarray, width: int, cut: np.ndarray) -> np.ndarray:
    """``width`` bytes from each position, gathered through a strided view (fast).

    A window that would run past the buffer is read from an earlier place; such
    packets are marked in ``cut`` and go the per-packet way instead.
    """
    if len(arr) < width:
        cut[:] = True
        return np.zeros((len(pos), width), np.uint8)
    last = len(arr) - width
    over = pos > last
    if over.any():
        cut |= over
        pos = np.minimum(pos, last)
    view = np.lib.stride_tricks.as_strided(arr, shape=(last + 1, width), strides=(1, 1), writeable=False)
    return view[np.maximum(pos, 0)]


def _be(w: np.ndarray, i: int, n: int) -> np.ndarray:
    """Big-endian unsigned integer of n bytes (n <= 4) at column i of a window, as int64."""
    out = w[:, i].astype(np.int64)
    for k in range(1, n):
        out = (out << 8) | w[:, i + k]
    return out


def _be64(w: np.ndarray, i: int) -> np.ndarray:
    return np.ascontiguousarray(w[:, i : i + 8]).view(">u8").reshape(-1).astype(np.uint64)


def decoded_many(dv: Decodedv, chunk: Chunk, idx: list[int],
                 addrs: list[tuple[bytes, bytes]] | None = None) -> list[Decoded]:
    """``dv.decoded`` for many packets at once (one numpy gather per field).

    ``addrs`` (src, dst) per packet, equal to the packet's own, lets flows
    share the address objects of their key instead of holding copies.
    """
    if not idx:
        return []
    ia = np.array(idx, np.int64)
    buf = chunk.buf
    fast = (dv.cls[ia] == FAST).tolist()
    tsl = chunk.ts[ia].tolist()
    l3 = dv.l3[ia].tolist()
    v6 = dv.v6[ia].tolist()
    proto = dv.proto[ia].tolist()
    sport = dv.sport[ia].tolist()
    dport = dv.dport[ia].tolist()
    flags = dv.flags[ia].tolist()
    seq = dv.seq[ia].tolist()
    po = dv.pay_off[ia].tolist()
    pc = dv.pay_cap[ia].tolist()
    plen = dv.plen[ia].tolist()
    ipl = dv.ip_len[ia].tolist()
    mac = dv.mac_off[ia].tolist()
    nv = dv.nvlan[ia].tolist()
    v0 = dv.vlan0[ia].tolist()
    v1 = dv.vlan1[ia].tolist()
    out = []
    for k, i in enumerate(idx):
        if not fast[k]:
            out.append(dv.slow[i])
            continue
        if addrs is not None:
            src, dst = addrs[k]
        else:
            a = l3[k]
            if v6[k]:
                src, dst = buf[a + 8 : a + 24], buf[a + 24 : a + 40]
            else:
                src, dst = buf[a + 12 : a + 16], buf[a + 16 : a + 20]
        m = mac[k]
        n = nv[k]
        p = po[k]
        out.append(Decoded(tsl[k], src, dst, proto[k], sport[k], dport[k], flags[k], seq[k], buf[p : p + pc[k]],
                           plen[k], ipl[k], buf[m : m + 6] if m >= 0 else None,
                           () if n == 0 else (v0[k],) if n == 1 else (v0[k], v1[k])))
    return out


def decode_chunk(chunk: Chunk) -> Decodedv:
    n = len(chunk)
    arr = np.frombuffer(chunk.buf, np.uint8)
    start = chunk.doff
    cap = chunk.caplen
    end = start + cap  # end of the captured bytes
    lt = chunk.linktype
    cut = np.zeros(n, bool)
    lw = _window(arr, start, 22, cut)
    ok = np.zeros(n, bool)
    etype = np.zeros(n, np.int64)
    l3 = start.copy()
    mac_off = np.full(n, -1, np.int64)
    nvlan = np.zeros(n, np.int64)
    vlan0 = np.zeros(n, np.int64)
    vlan1 = np.zeros(n, np.int64)

    def is_tag(e: np.ndarray) -> np.ndarray:
        return (e == ETH_VLAN) | (e == ETH_QINQ) | (e == ETH_VLAN_OLD)

    # -- link layer
    eth = (lt == LT_ETHERNET) & (cap >= 14)
    if eth.any():
        e = _be(lw, 12, 2)
        vlan = is_tag(e)
        if vlan.any():
            okv = ~vlan | (cap >= 18)
            e1 = np.where(vlan, _be(lw, 16, 2), e)
            vlan2 = vlan & is_tag(e1)
            okv &= ~vlan2 | (cap >= 22)
            e2 = np.where(vlan2, _be(lw, 20, 2), e1)
            okv &= ~is_tag(e2)  # a third tag: per packet
            nv = vlan.astype(np.int64) + vlan2
            sel = eth & okv
            nvlan = np.where(sel, nv, nvlan)
            vlan0 = np.where(sel, _be(lw, 14, 2) & 0x0FFF, vlan0)
            vlan1 = np.where(sel, _be(lw, 18, 2) & 0x0FFF, vlan1)
        else:
            e2, nv, sel = e, 0, eth
        ok |= sel
        etype = np.where(sel, e2, etype)
        l3 = np.where(sel, start + 14 + 4 * nv, l3)
        mac_off = np.where(sel, start + 6, mac_off)
    sll = (lt == LT_SLL) & (cap >= 16)
    if sll.any():
        ok |= sll
        etype = np.where(sll, _be(lw, 14, 2), etype)
        l3 = np.where(sll, start + 16, l3)
        mac_off = np.where(sll & (_be(lw, 4, 2) == 6), start + 6, mac_off)
    sll2 = (lt == LT_SLL2) & (cap >= 20)
    if sll2.any():
        ok |= sll2
        etype = np.where(sll2, _be(lw, 0, 2), etype)
        l3 = np.where(sll2, start + 20, l3)
        mac_off = np.where(sll2 & (lw[:, 11] == 6), start + 12, mac_off)
    raw = np.isin(lt, _RAW_LT) & (cap >= 1)
    if raw.any():
        ver = lw[:, 0] >> 4
        ok |= raw
        etype = np.where(raw, np.where(ver == 4, ETH_IPV4, np.where(ver == 6, ETH_IPV6, 0)), etype)
        l3 = np.where(raw, start, l3)
    is4 = ok & (etype == ETH_IPV4)
    is6 = ok & (etype == ETH_IPV6)
    caprem = end - l3  # captured bytes from the IP header on
    nw = _window(arr, l3, 40, cut)
    # -- IPv4
    vihl = nw[:, 0].astype(np.int64)
    ihl = (vihl & 0x0F) * 4
    total = _be(nw, 2, 2)
    total = np.where(total == 0, caprem, total)  # TSO: length left to the NIC; trust the capture
    frag = _be(nw, 6, 2)
    pre4 = is4 & (caprem >= 20) & (vihl >> 4 == 4) & (ihl >= 20) & (total >= ihl)
    ok4 = pre4 & ((frag & 0x3FFF) == 0)
    frag4 = pre4 & ((frag & 0x3FFF) != 0)
    # -- IPv6
    any6 = bool(is6.any())
    plen6 = _be(nw, 4, 2)
    plen6 = np.where(plen6 == 0, caprem - 40, plen6)  # jumbogram or TSO: what was captured
    nxt6 = nw[:, 6].astype(np.int64)
    ok6 = (is6 & (caprem >= 40) & (vihl >> 4 == 6) & ~np.isin(nxt6, _V6_SLOW)) if any6 else is6
    proto = np.where(ok6, nxt6, nw[:, 9])
    bs = np.where(ok6, l3 + 40, l3 + ihl)  # transport header start
    ipend = np.where(ok6, l3 + 40 + plen6, l3 + total)
    body_wire = np.where(ok6, plen6, total - ihl)
    ip_len = np.where(ok6, 40 + plen6, total)
    bodycap = np.maximum(0, np.minimum(ipend, end) - bs)
    okip = ok4 | ok6
    if any6:
        src_hi = np.where(ok6, _be64(nw, 8), np.uint64(0))
        src_lo = np.where(ok6, _be64(nw, 16), _be(nw, 12, 4).astype(np.uint64))
        dst_hi = np.where(ok6, _be64(nw, 24), np.uint64(0))
        dst_lo = np.where(ok6, _be64(nw, 32), _be(nw, 16, 4).astype(np.uint64))
    else:
        src_hi = np.zeros(n, np.uint64)
        dst_hi = np.zeros(n, np.uint64)
        src_lo = _be(nw, 12, 4).astype(np.uint64)
        dst_lo = _be(nw, 16, 4).astype(np.uint64)
    # -- transport
    tw = _window(arr, bs, 14, cut)
    tcp = okip & (proto == TCP)
    udp = okip & ((proto == UDP) | (proto == 136))
    icmp = okip & ((proto == ICMP) | (proto == ICMP6))
    other = okip & ~tcp & ~udp & ~icmp
    doff_b = tw[:, 12].astype(np.int64)
    hl = (doff_b >> 4) * 4
    ok_tcp = tcp & (bodycap >= 20) & (hl >= 20)
    ulen = _be(tw, 4, 2)
    wire = np.where((ulen >= 8) & (ulen <= body_wire), ulen - 8, body_wire - 8)
    ok_udp = udp & (bodycap >= 8)
    ok_icmp = icmp & (bodycap >= 4)
    fast = (ok_tcp | ok_udp | ok_icmp | other) & ~cut
    ports = ok_tcp | ok_udp
    sport = np.where(ports, _be(tw, 0, 2), np.where(ok_icmp, tw[:, 0], 0))
    dport = np.where(ports, _be(tw, 2, 2), np.where(ok_icmp, tw[:, 1], 0))
    flags = np.where(ok_tcp, tw[:, 13] | ((doff_b & 1) << 8), 0)
    seq = np.where(ok_tcp, _be(tw, 4, 4), 0)
    pay_off = np.select([ok_tcp, ok_udp, ok_icmp], [bs + hl, bs + 8, bs + 4], bs)
    pay_cap = np.select([ok_tcp, ok_udp, ok_icmp],
                        [np.maximum(0, bodycap - hl), np.maximum(0, np.minimum(wire, bodycap - 8)),
                         np.maximum(0, bodycap - 4)], bodycap)
    plen = np.select([ok_tcp, ok_udp, ok_icmp],
                     [np.maximum(0, body_wire - hl), np.maximum(0, wire), np.maximum(0, body_wire - 4)], body_wire)
    cls = np.where(fast, FAST, SLOW_OK).astype(np.int8)
    out = Decodedv(cls, ok6.copy(), proto, src_hi, src_lo, dst_hi, dst_lo, sport, dport, flags, seq, pay_off,
                   pay_cap, plen, ip_len, l3, mac_off, nvlan, vlan0, vlan1, {})
    _decode_slow(chunk, out, np.flatnonzero(~fast), frag4)
    return out


def _decode_slow(chunk: Chunk, out: Decodedv, idx: np.ndarray, frag4: np.ndarray) -> None:
    """Everything the arrays do not cover, through a throwaway per-packet decoder."""
    scratch = Decoder()
    buf = chunk.buf
    for i in idx.tolist():
        if frag4[i]:
            out.cls[i] = FRAG
            continue
        s = int(chunk.doff[i])
        data = buf[s : s + int(chunk.caplen[i])]
        try:
            d = scratch.decode(float(chunk.ts[i]), data, int(chunk.linktype[i]))
        except NotIP as e:
            out.cls[i] = NOT_IP
            out.slow[i] = e
            continue
        except DecodeError as e:
            if scratch.fragments:
                out.cls[i] = FRAG
                scratch = Decoder()
            else:
                out.cls[i] = BAD
                out.slow[i] = e.reason
            continue
        except (IndexError, ValueError) as e:
            if scratch.fragments:
                out.cls[i] = FRAG
                scratch = Decoder()
            else:
                out.cls[i] = BAD
                out.slow[i] = f"malformed packet ({type(e).__name__})"
            continue
        if scratch.fragments or d is None:
            out.cls[i] = FRAG  # the engine's stateful decoder must see it, in order
            scratch = Decoder()
            continue
        out.slow[i] = d
        out.v6[i] = len(d.src) == 16
        out.proto[i] = d.proto
        a, b = int.from_bytes(d.src, "big"), int.from_bytes(d.dst, "big")
        out.src_hi[i], out.src_lo[i] = a >> 64, a & 0xFFFFFFFFFFFFFFFF
        out.dst_hi[i], out.dst_lo[i] = b >> 64, b & 0xFFFFFFFFFFFFFFFF
        out.sport[i], out.dport[i], out.flags[i], out.seq[i] = d.sport, d.dport, d.flags, d.seq
        out.pay_cap[i], out.plen[i], out.ip_len[i] = len(d.payload), d.plen, d.ip_len
        out.mac_off[i] = -1 if d.src_mac is None else 0  # only "has a MAC": read from the Decoded
