"""Bidirectional flows: key, per-direction state, and a bounded flow table.

Per packet the table does almost nothing (DESIGN.md principle 2): find the
flow, bump counters, extend a covered-range list, and copy payload only while
the direction's bounded sample (first ``sample_bytes``, in TCP sequence order)
is not full. Everything expensive happens once per flow on the sample.

Flow state is mergeable (principle 3): ``FlowState.merge`` combines two partial
states of the same flow (two files of a rotated capture, two workers) into the
state one pass would have built, as long as the flow did not hit a timeout at
the seam (the table, which sees the seam, applies those).
"""
from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Iterator

from netan.decode import ICMP, ICMP6, PROTO_NAMES, TCP, UDP, Decoded
from netan.intervals import cover, holes, total
from netan.sample import FlowSample, PacketMark

__all__ = ["FlowConfig", "FlowState", "FlowTable", "flow_key"]

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
FLAG_LETTERS = ((SYN, "S"), (ACK, "A"), (PSH, "P"), (FIN, "F"), (RST, "R"), (URG, "U"), (ECE, "E"), (CWR, "C"))
SEQ_MOD = 1 << 32
HALF_SEQ = 1 << 31


@dataclass(frozen=True)
class FlowConfig:
    """One validated config object travels instead of long parameter chains."""

    idle_timeout: float = 120.0  # nfstream's default idle timeout
    active_timeout: float = 1800.0  # nfstream's default active timeout
    tcp_close_linger: float = 10.0  # keep a closed TCP flow this long for late ACKs/retransmissions
    max_flows: int = 2_000_000
    sample_bytes: int = 4096
    max_sizes: int = 32  # first N packet sizes and inter-arrival times
    max_marks: int = 64  # payload packets located in the sample

    def __post_init__(self) -> None:
        if self.idle_timeout <= 0 or self.active_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_flows < 1 or self.sample_bytes < 0 or self.max_sizes < 0 or self.max_marks < 0:
            raise ValueError("limits must be non-negative (max_flows at least 1)")


def key_ports(pkt: Decoded) -> tuple[int, int]:
    """The ports that identify a flow: ICMP's type/code do not (a reply has another type)."""
    return (0, 0) if pkt.proto in (ICMP, ICMP6) else (pkt.sport, pkt.dport)


def flow_key(proto: int, src: bytes, sport: int, dst: bytes, dport: int) -> tuple:
    """Direction-agnostic key: the lower endpoint first."""
    if (src, sport) <= (dst, dport):
        return (proto, src, sport, dst, dport)
    return (proto, dst, dport, src, sport)


class DirState:
    """One direction of a flow: counters, covered sequence space, payload sample."""

    __slots__ = ("pkts", "bytes", "ip_bytes", "flags", "isn", "ranges", "sample", "filled", "sample_end",
                 "stream_pos")

    def __init__(self) -> None:
        self.pkts = 0
        self.bytes = 0  # payload bytes, each byte once
        self.ip_bytes = 0
        self.flags = 0
        self.isn: int | None = None  # TCP: absolute sequence number of stream offset 0
        self.ranges: list[list[int]] = []  # TCP: covered stream offsets
        self.sample: bytearray | None = None
        self.filled: list[list[int]] = []  # sample offsets that hold real bytes
        self.sample_end = 0
        self.stream_pos = 0  # non-TCP: payload bytes laid end to end


class FlowState:
    """A bidirectional flow being built. Direction 0 is the originator's."""

    __slots__ = ("key", "proto", "orig", "resp", "first_ts", "last_ts", "dirs", "src_mac", "vlans", "sizes",
                 "iats", "marks", "end_reason", "lru_ts", "closed", "syn_ts", "icmp")

    def __init__(self, key: tuple, pkt: Decoded) -> None:
        self.key = key
        self.proto = pkt.proto
        # Originator: TCP SYN sender; a SYN-ACK's receiver; else the first packet's sender.
        sport, dport = key_ports(pkt)
        if pkt.proto == TCP and pkt.flags & (SYN | ACK) == SYN | ACK:
            self.orig, self.resp = (pkt.dst, dport), (pkt.src, sport)
        else:
            self.orig, self.resp = (pkt.src, sport), (pkt.dst, dport)
        # ICMP has no ports; its first message's type and code feed the Community ID.
        self.icmp = (pkt.sport, pkt.dport) if pkt.proto in (ICMP, ICMP6) else None
        self.first_ts = self.last_ts = self.lru_ts = pkt.ts
        self.dirs = (DirState(), DirState())
        self.src_mac: bytes | None = None
        self.vlans = pkt.vlans
        self.sizes: list[int] = []
        self.iats: list[float] = []
        self.marks: list[PacketMark] = []
        self.end_reason = ""
        self.closed = False
        self.syn_ts: float | None = None

    # ---- the per-packet path ------------------------------------------------------------
    def update(self, pkt: Decoded, cfg: FlowConfig) -> None:
        d = 0 if (pkt.src, key_ports(pkt)[0]) == self.orig else 1
        st = self.dirs[d]
        ts = pkt.ts
        if len(self.sizes) < cfg.max_sizes:
            self.iats.append(round(max(0.0, ts - self.last_ts), 6) if self.sizes else 0.0)
            self.sizes.append(pkt.ip_len if d == 0 else -pkt.ip_len)
        if ts > self.last_ts:
            self.last_ts = ts
        st.pkts += 1
        st.ip_bytes += pkt.ip_len
        if d == 0 and self.src_mac is None and pkt.src_mac is not None:
            self.src_mac = pkt.src_mac
        if pkt.proto == TCP:
            self._tcp(st, d, pkt, cfg)
        elif pkt.plen:
            st.bytes += pkt.plen
            self._place(st, d, ts, st.stream_pos, pkt.payload, len(pkt.payload), cfg)
            st.stream_pos += len(pkt.payload)

    def _tcp(self, st: DirState, d: int, pkt: Decoded, cfg: FlowConfig) -> None:
        flags = pkt.flags
        st.flags |= flags
        if flags & SYN:
            if st.isn is None or not st.ranges:
                st.isn = (pkt.seq + 1) % SEQ_MOD  # SYN consumes one sequence number
            if d == 0 and not flags & ACK and self.syn_ts is None:
                self.syn_ts = pkt.ts
        if flags & RST or (self.dirs[0].flags & FIN and self.dirs[1].flags & FIN):
            self.closed = True
        if not pkt.plen:
            return
        if st.isn is None:
            st.isn = pkt.seq
        rel = (pkt.seq - st.isn) % SEQ_MOD
        if rel >= HALF_SEQ:  # before the first sequence number we saw (reordered start)
            rel -= SEQ_MOD
        new = cover(st.ranges, rel, rel + pkt.plen)
        if not new:
            return  # a retransmission: counted as a packet, not as bytes or sample
        st.bytes += sum(e - s for s, e in new)
        self._place(st, d, pkt.ts, rel, pkt.payload, pkt.plen, cfg)

    def _place(self, st: DirState, d: int, ts: float, offset: int, payload: bytes, length: int,
               cfg: FlowConfig, mark: bool = True) -> None:
        """Copy the part of a payload that falls inside the sample, filling holes only."""
        if mark and len(self.marks) < cfg.max_marks and offset < cfg.sample_bytes:
            self.marks.append(PacketMark(d, ts, offset, length))
        if offset >= cfg.sample_bytes or offset + len(payload) <= 0:
            return
        lo = max(0, offset)
        hi = min(cfg.sample_bytes, offset + len(payload))
        # The sample grows as bytes arrive (holes zero-filled) instead of reserving the
        # whole cap up front: most flows never fill it, and a million of them must fit.
        if st.sample is None:
            st.sample = bytearray(hi)
        elif hi > len(st.sample):
            st.sample.extend(bytes(hi - len(st.sample)))
        for s, e in cover(st.filled, lo, hi):
            st.sample[s:e] = payload[s - offset : e - offset]
        st.sample_end = max(st.sample_end, hi)

    # ---- merging partial states (DESIGN.md principle 3) ---------------------------------
    def merge(self, other: "FlowState", cfg: FlowConfig) -> None:
        """Fold ``other`` (the same flow, seen elsewhere) into this state."""
        if other.first_ts < self.first_ts:
            # Keep the earlier partial's view of who the originator is.
            self.orig, self.resp = other.orig, other.resp
            self.src_mac = other.src_mac or self.src_mac
            self.vlans = other.vlans
        else:
            self.src_mac = self.src_mac or other.src_mac
        flip = other.orig != self.orig
        self._merge_sizes(other, flip, cfg)
        marks = list(self.marks)
        for i, (mine, theirs) in enumerate(zip(self.dirs, other.dirs[::-1] if flip else other.dirs)):
            mine.pkts += theirs.pkts
            mine.ip_bytes += theirs.ip_bytes
            mine.flags |= theirs.flags
            seen_before = [list(r) for r in mine.ranges]
            if self.proto == TCP:
                shift = 0
                if mine.isn is None:
                    mine.isn = theirs.isn
                elif theirs.isn is not None:
                    shift = (theirs.isn - mine.isn) % SEQ_MOD
                    if shift >= HALF_SEQ:
                        shift -= SEQ_MOD
                for s, e in theirs.ranges:
                    cover(mine.ranges, s + shift, e + shift)
                mine.bytes = total(mine.ranges)
            else:
                shift = mine.stream_pos
                mine.bytes += theirs.bytes
                mine.stream_pos += theirs.stream_pos
            if theirs.sample is not None:
                for s, e in theirs.filled:
                    self._place(mine, i, 0.0, s + shift, bytes(theirs.sample[s:e]), e - s, cfg, mark=False)
            for m in other.marks:
                start = m.offset + shift
                # A packet that only resent what this side already had is no mark in one pass.
                if (m.direction ^ flip) == i and not (self.proto == TCP and m.length and not holes(
                        seen_before, start, start + m.length)):
                    marks.append(PacketMark(i, m.ts, start, m.length))
        self.marks = sorted(marks, key=lambda m: m.ts)[: cfg.max_marks]
        self.marks = [m for m in self.marks if m.offset < cfg.sample_bytes]
        self.first_ts = min(self.first_ts, other.first_ts)
        self.last_ts = max(self.last_ts, other.last_ts)
        self.closed = self.closed or other.closed
        if other.syn_ts is not None and (self.syn_ts is None or other.syn_ts < self.syn_ts):
            self.syn_ts = other.syn_ts

    def _merge_sizes(self, other: "FlowState", flip: bool, cfg: FlowConfig) -> None:
        def timeline(fs: FlowState, sign: int) -> list[tuple[float, int]]:
            t, out = fs.first_ts, []
            for gap, size in zip(fs.iats, fs.sizes):
                t += gap
                out.append((t, size * sign))
            return out

        both = sorted(timeline(self, 1) + timeline(other, -1 if flip else 1), key=lambda p: p[0])[: cfg.max_sizes]
        self.sizes = [s for _, s in both]
        self.iats = [0.0] + [round(max(0.0, both[i][0] - both[i - 1][0]), 6) for i in range(1, len(both))]
        self.iats = self.iats[: len(self.sizes)]

    # ---- outputs ----------------------------------------------------------------------
    def to_sample(self) -> FlowSample:
        out, inb = (self._sample_bytes(st) for st in self.dirs)
        gaps = tuple(tuple(holes(st.filled, 0, st.sample_end)) for st in self.dirs)
        return FlowSample(
            proto=proto_name(self.proto), src_ip=ip_text(self.orig[0]), src_port=self.orig[1],
            dst_ip=ip_text(self.resp[0]), dst_port=self.resp[1], out=out, inb=inb,
            gaps_out=gaps[0], gaps_in=gaps[1], packets=tuple(self.marks),
        )

    @staticmethod
    def _sample_bytes(st: DirState) -> bytes:
        return bytes(st.sample[: st.sample_end]) if st.sample is not None else b""

    def to_record(self) -> dict:
        """The engine's part of the flow record (netan.schema); analyzers add the rest."""
        from netan.schema import empty_payload_side, new_flow_record

        src_ip, dst_ip = ip_text(self.orig[0]), ip_text(self.resp[0])
        has_ports = self.proto in (TCP, UDP, 132, 136)
        sport, dport = (self.orig[1], self.resp[1]) if has_ports else (0, 0)
        ptype, pcode = self.icmp if self.icmp is not None else (self.orig[1], self.resp[1])
        cid = community_id(self.proto, self.orig[0], ptype, self.resp[0], pcode)
        o, i = self.dirs
        record = new_flow_record(
            flow_id=flow_id(cid, self.first_ts), community_id=cid, ts=round(self.first_ts, 6),
            ts_end=round(self.last_ts, 6), proto=proto_name(self.proto), src_ip=src_ip, src_port=sport,
            dst_ip=dst_ip, dst_port=dport, src_mac=mac_text(self.src_mac), bytes_out=o.bytes, bytes_in=i.bytes,
            pkts_out=o.pkts, pkts_in=i.pkts,
            payload={"out": empty_payload_side(o.sample_end), "in": empty_payload_side(i.sample_end)},
            end_reason=self.end_reason or "end_of_capture", sizes=list(self.sizes), iats=list(self.iats),
            vlan=list(self.vlans),
            sample={"out": _sample_info(o), "in": _sample_info(i)},
            tcp=self._tcp_info() if self.proto == TCP else None,
        )
        if self.icmp is not None:
            record["icmp"] = {"type": self.icmp[0], "code": self.icmp[1]}
        return record

    def _tcp_info(self) -> dict:
        o, i = self.dirs
        missed = sum(max(0, (st.ranges[-1][1] - st.ranges[0][0]) - total(st.ranges)) for st in self.dirs if st.ranges)
        return {
            "flags_out": flag_text(o.flags), "flags_in": flag_text(i.flags),
            "syn": self.syn_ts is not None, "syn_ts": self.syn_ts,
            "handshake": bool(o.flags & SYN and i.flags & SYN and i.flags & ACK and o.flags & ACK),
            "state": conn_state(o.flags, i.flags, o.pkts, i.pkts), "missed_bytes": missed,
        }


def _sample_info(st: DirState) -> dict:
    gaps = holes(st.filled, 0, st.sample_end)
    return {"bytes": st.sample_end, "gaps": [list(g) for g in gaps]}


def conn_state(fo: int, fi: int, po: int, pi: int) -> str:
    """Zeek's conn_state, from the flags each side sent (base/protocols/conn/main.zeek)."""
    syn_o, syn_i = bool(fo & SYN), bool(fi & SYN)  # the responder's SYN is its SYN-ACK
    if syn_o and not pi:
        return "S0"
    if syn_o and fi & RST and not syn_i:
        return "REJ"
    if syn_o and syn_i:
        if fo & RST:
            return "RSTO"
        if fi & RST:
            return "RSTR"
        if fo & FIN and fi & FIN:
            return "SF"
        if fo & FIN:
            return "S2"
        if fi & FIN:
            return "S3"
        return "S1"
    if syn_o and fo & FIN and not pi:
        return "SH"
    if syn_i and not syn_o:
        return "SHR" if fi & FIN else "OTH"
    return "OTH"


def flag_text(flags: int) -> str:
    return "".join(letter for bit, letter in FLAG_LETTERS if flags & bit)


_IP_TEXT: dict[bytes, str] = {}
_IP_TEXT_MAX = 1 << 16


def ip_text(addr: bytes) -> str:
    """The address as ipaddress writes it; remembered, since a network has few addresses
    and every flow record and sample writes two (bounded: a scan must not grow it forever)."""
    text = _IP_TEXT.get(addr)
    if text is None:
        if len(_IP_TEXT) >= _IP_TEXT_MAX:
            _IP_TEXT.clear()
        text = _IP_TEXT[addr] = str(ipaddress.ip_address(addr))
    return text


def mac_text(mac: bytes | None) -> str | None:
    return None if mac is None else mac.hex(":")


def proto_name(proto: int) -> str:
    return PROTO_NAMES.get(proto, str(proto))


def community_id(proto: int, src: bytes, sport: int, dst: bytes, dport: int) -> str:
    """Community ID v1, seed 0 (https://github.com/corelight/community-id-spec)."""
    from netan.community import community_id_v1

    return community_id_v1(proto, src, sport, dst, dport)


def flow_id(cid: str, first_ts: float) -> str:
    """Stable for the same input: the 5-tuple's Community ID and the flow's first packet time."""
    return "F" + hashlib.blake2b(f"{cid}|{first_ts:.6f}".encode(), digest_size=9).hexdigest()


def end_reason(fs: FlowState, reason: str) -> str:
    """A closed TCP flow ended by its close, whatever noticed it (timeout, reuse, end of input)."""
    if fs.closed and reason in ("idle_timeout", "port_reuse", "end_of_capture"):
        return "rst" if (fs.dirs[0].flags | fs.dirs[1].flags) & RST else "fin"
    return reason


class FlowTable:
    """Flows by key, with idle/active timeouts, TCP close, and a memory bound.

    ``add`` returns nothing; finished flows collect in ``self.finished`` and the
    caller drains them with ``pop_finished``. Expiry scans are coarse (every
    ``scan_every`` seconds of capture time) and walk flows oldest first: the dict
    is re-ordered when a flow's activity moves by a second or more.
    """

    def __init__(self, cfg: FlowConfig) -> None:
        self.cfg = cfg
        self.flows: dict[tuple, FlowState] = {}
        self.closing: dict[tuple, tuple[FlowState, float]] = {}  # closed TCP flows, in closing order
        self.finished: list[FlowState] = []
        self.now = 0.0
        self.next_scan = 0.0
        self.scan_every = 1.0
        # flows started, and how each one ended (flow_limit: ended early by --max-flows)
        self.stats = {"flows": 0, "idle_timeout": 0, "active_timeout": 0, "fin": 0, "rst": 0, "flow_limit": 0,
                      "end_of_capture": 0}

    def add(self, pkt: Decoded) -> None:
        cfg = self.cfg
        sport, dport = key_ports(pkt)
        key = flow_key(pkt.proto, pkt.src, sport, pkt.dst, dport)
        fs = self.flows.get(key)
        ts = pkt.ts
        if fs is not None:
            reason = ""
            if ts - fs.last_ts > cfg.idle_timeout:
                reason = "idle_timeout"
            elif ts - fs.first_ts > cfg.active_timeout:
                reason = "active_timeout"
            elif fs.closed and pkt.flags & (SYN | ACK) == SYN and pkt.proto == TCP:
                reason = "port_reuse"
            if reason:
                self._finish(key, fs, reason)
                fs = None
        if fs is None:
            fs = FlowState(key, pkt)
            self.flows[key] = fs
            self.stats["flows"] += 1
            if len(self.flows) > cfg.max_flows:
                self._evict_oldest()
        elif ts - fs.lru_ts >= 1.0:
            del self.flows[key]  # re-insert: the dict's order is (coarse) activity order
            self.flows[key] = fs
            fs.lru_ts = ts
        fs.update(pkt, cfg)
        if fs.closed and key not in self.closing:
            self.closing[key] = (fs, ts)
        if ts > self.now:
            self.now = ts
            if ts >= self.next_scan:
                self.expire(ts)
                self.next_scan = ts + self.scan_every

    def _finish(self, key: tuple, fs: FlowState, reason: str) -> None:
        reason = end_reason(fs, reason)
        fs.end_reason = reason
        self.stats[reason] += 1
        if self.flows.get(key) is fs:
            del self.flows[key]
        entry = self.closing.get(key)
        if entry is not None and entry[0] is fs:
            del self.closing[key]
        self.finished.append(fs)

    def _evict_oldest(self) -> None:
        key = next(iter(self.flows))
        self._finish(key, self.flows[key], "flow_limit")

    def expire(self, now: float) -> None:
        """Finish flows idle past their timeout (closed TCP flows after a short linger)."""
        cfg = self.cfg
        idle_cut = now - cfg.idle_timeout
        linger_cut = now - cfg.tcp_close_linger
        stale: list[tuple[tuple, FlowState]] = []
        for key, fs in self.flows.items():
            if fs.lru_ts > idle_cut:
                break
            if fs.last_ts < idle_cut:
                stale.append((key, fs))
        revisit: list[tuple[tuple, FlowState]] = []
        for key, (fs, closed_at) in self.closing.items():
            if closed_at > linger_cut:
                break
            (stale if fs.last_ts < linger_cut else revisit).append((key, fs))
        for key, fs in revisit:  # still talking after the close: look again later
            del self.closing[key]
            self.closing[key] = (fs, fs.last_ts)
        for key, fs in stale:
            if self.flows.get(key) is fs:
                self._finish(key, fs, "idle_timeout")

    def flush(self) -> None:
        """End of input: every flow still open finishes."""
        for key, fs in list(self.flows.items()):
            # A flow already idle past its timeout ended by that, whether or not a scan noticed.
            idle = self.now - fs.last_ts > self.cfg.idle_timeout
            self._finish(key, fs, "idle_timeout" if idle else "end_of_capture")

    def pop_finished(self) -> list[FlowState]:
        done, self.finished = self.finished, []
        return done

    def __iter__(self) -> Iterator[FlowState]:
        return iter(self.flows.values())


def continue_flows(earlier: FlowTable, later: FlowTable) -> list[FlowState]:
    """Join two tables that saw consecutive parts of one capture (neither flushed).

    Every flow still open in ``earlier`` is merged with the first flow of the same
    key in ``later`` when a single pass would have kept them together (within the
    idle timeout, inside the active timeout, not a new TCP connection after a
    close). Returns all flows, finished, in end order: what one pass yields.
    """
    cfg = earlier.cfg
    out = earlier.pop_finished()
    pending = dict(earlier.flows)
    later_states = later.pop_finished() + list(later.flows.values())
    later_states.sort(key=lambda fs: fs.first_ts)
    for fs in later_states:
        head = pending.pop(fs.key, None)
        if head is None:
            out.append(fs)
            continue
        new_conn = fs.proto == TCP and head.closed and fs.syn_ts is not None and fs.syn_ts <= fs.first_ts
        if (fs.first_ts - head.last_ts > cfg.idle_timeout or fs.last_ts - head.first_ts > cfg.active_timeout
                or new_conn):
            head.end_reason = end_reason(head, "idle_timeout")
            out.extend([head, fs])
            continue
        head.merge(fs, cfg)
        head.end_reason = fs.end_reason
        out.append(head)
    for fs in pending.values():  # no continuation: the later part's clock decides
        fs.end_reason = end_reason(fs, "idle_timeout" if later.now - fs.last_ts > cfg.idle_timeout
                                   else "end_of_capture")
        out.append(fs)
    for fs in out:
        fs.end_reason = end_reason(fs, fs.end_reason or "end_of_capture")
    return out
