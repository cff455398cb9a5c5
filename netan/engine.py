"""The flow engine: raw packets in, finished flows (state + sample) out.

Wires reader -> decoder -> flow table, and keeps the counts a user needs to
trust the result: packets read, decoded, not IP (by type), undecodable (in
``Problems`` with file and offset), fragments reassembled or given up on.
Used by PCAP replay, live capture and the tests alike.
"""
from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from netan.decode import DecodeError, Decoder, NotIP
from netan.flows import FlowConfig, FlowState, FlowTable
from netan.problems import InputError, Problems
from netan.sample import FlowSample
from netan.sources.pcap import CaptureInfo, RawPacket, open_input, read_packets

__all__ = ["Engine", "EngineStats", "merged_packets", "flow_states", "flow_samples"]


@dataclass
class EngineStats:
    packets: int = 0
    decoded: int = 0
    snaplen_truncated: int = 0
    non_ip: Counter = field(default_factory=Counter)
    first_ts: float | None = None
    last_ts: float | None = None

    def as_dict(self, decoder: Decoder, table: FlowTable) -> dict:
        return {
            "packets": self.packets, "decoded": self.decoded, "snaplen_truncated": self.snaplen_truncated,
            "non_ip": dict(sorted(self.non_ip.items())), "ip_fragments": decoder.fragments,
            "datagrams_reassembled": decoder.reassembled, "first_ts": self.first_ts, "last_ts": self.last_ts,
            "flows": table.stats["flows"], "flow_ends": {k: v for k, v in table.stats.items() if k != "flows"},
        }


class Engine:
    """Feed it raw packets in capture order; collect finished flows as you go."""

    def __init__(self, cfg: FlowConfig, problems: Problems) -> None:
        self.cfg = cfg
        self.problems = problems
        self.decoder = Decoder()
        self.table = FlowTable(cfg)
        self.stats = EngineStats()
        self._next_frag_check = 0.0

    def feed(self, raw: RawPacket) -> None:
        st = self.stats
        st.packets += 1
        if st.first_ts is None or raw.ts < st.first_ts:
            st.first_ts = raw.ts
        if st.last_ts is None or raw.ts > st.last_ts:
            st.last_ts = raw.ts
        if len(raw.data) < raw.wirelen:
            st.snaplen_truncated += 1
        try:
            pkt = self.decoder.decode(raw.ts, raw.data, raw.linktype)
        except NotIP as e:
            st.non_ip[e.what] += 1
            return
        except DecodeError as e:
            self.problems.skip(raw.file, f"offset {raw.offset}", e.reason)
            return
        except (IndexError, ValueError) as e:  # a header that lies about its own length
            self.problems.skip(raw.file, f"offset {raw.offset}", f"malformed packet ({type(e).__name__})")
            return
        if raw.ts >= self._next_frag_check:
            self.decoder.expire_fragments(raw.ts)
            self._next_frag_check = raw.ts + 1.0
            self._take_incomplete()
        if pkt is None:
            return
        st.decoded += 1
        self.table.add(pkt)

    def _take_incomplete(self) -> None:
        for pkt in self.decoder.incomplete:
            self.problems.skip("(reassembly)", f"time {pkt.ts:.6f}",
                               "fragmented datagram never completed (kept partially)")
            self.stats.decoded += 1
            self.table.add(pkt)
        self.decoder.incomplete.clear()

    def finish(self) -> None:
        """End of input: give up on open fragments, then end every flow."""
        self.decoder.flush_fragments()
        self._take_incomplete()
        self.table.flush()

    def pop_finished(self) -> list[FlowState]:
        return self.table.pop_finished()

    def summary(self) -> dict:
        return self.stats.as_dict(self.decoder, self.table)


def merged_packets(paths: Iterable[str], problems: Problems, infos: list[CaptureInfo],
                   unreadable: list[InputError]) -> Iterator[RawPacket]:
    """Every packet of several files as one capture, merged by timestamp.

    A file that cannot be opened at all goes to ``unreadable`` and the others
    are still read.
    """
    streams = []
    for path in paths:
        # the first packet is read now, so a file that cannot be opened is reported here
        opened = open_input(path, lambda info, path=path: _started(read_packets(path, problems, info)),
                            infos, unreadable)
        if opened is not None and opened[0] is not None:
            streams.append(_chain(*opened))
    if len(streams) == 1:
        yield from streams[0]
    else:
        yield from heapq.merge(*streams, key=lambda p: p.ts)


def _started(packets: Iterator[RawPacket]) -> tuple[RawPacket | None, Iterator[RawPacket]]:
    return next(packets, None), packets


def _chain(first: RawPacket, rest: Iterator[RawPacket]) -> Iterator[RawPacket]:
    yield first
    yield from rest


def flow_states(paths: Iterable[str], cfg: FlowConfig | None = None,
                problems: Problems | None = None) -> Iterator[FlowState]:
    """Finished flows of some captures, in the order they end."""
    problems = problems if problems is not None else Problems()
    engine = Engine(cfg or FlowConfig(), problems)
    infos: list[CaptureInfo] = []
    unreadable: list[InputError] = []
    for raw in merged_packets(paths, problems, infos, unreadable):
        engine.feed(raw)
        if engine.table.finished:
            yield from engine.pop_finished()
    engine.finish()
    yield from engine.pop_finished()
    if unreadable:
        raise unreadable[0]


def flow_samples(paths: Iterable[str], cfg: FlowConfig | None = None) -> list[tuple[dict, FlowSample]]:
    """(engine record, sample) for every flow: what the analyzers see. For tests and tools."""
    return [(fs.to_record(), fs.to_sample()) for fs in flow_states(paths, cfg)]
