"""The batch flow engine: the per-packet engine's exact results, without per-packet Python.

Contract: for the same inputs and ``FlowConfig``, ``BatchEngine`` finishes the
same ``FlowState``s in the same order (same ``to_record()`` and
``to_sample()``), with the same ``summary()`` and the same ``Problems``, as
``netan.engine.Engine`` fed packet by packet. tests/test_fastpath.py checks
this differentially on the shared corpus and on generated traffic, including
configurations that force timeouts, port reuse and evictions.

How (docs/notes/fastpath.md has the long version):

1. ``netan.fastpath_read`` yields chunks of packets; ``netan.fastpath_decode``
   decodes the common case of a whole chunk in numpy.
2. A chunk is cut into *segments* at the packets where ``FlowTable.add``
   would run its expiry scan (once per second of capture time), so inside a
   segment the only table events are per-key ones.
3. A segment's packets are grouped by flow key. A group whose flow hits no
   boundary in the segment (idle/active timeout, a SYN after a close, more
   than one LRU re-order) is *simple*: its counters are applied in bulk and
   only the packets that change more than counters go through
   ``FlowState.update`` one by one -- the first packets of each direction
   (sample, marks, sequence origin), SYN/FIN/RST, out-of-order TCP segments.
   The TCP byte count follows ``netan.intervals.cover``'s two fast branches
   (in-order extension, retransmission inside the last range) vectorized;
   anything else is handed to ``cover`` itself.
4. Groups with a boundary, segments with IP fragments in flight, tiny
   segments and segments that could hit ``max_flows`` go through the
   per-packet code unchanged. The table's dict orders (LRU order for
   eviction and expiry, closing order) are rebuilt exactly after each segment.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable, Iterable, Iterator

import numpy as np

from netan.decode import ICMP, ICMP6, TCP, Decoded
from netan.engine import Engine
from netan.fastpath_decode import BAD, FAST, FRAG, NOT_IP, SLOW_OK, Decodedv, decode_chunk, decoded_many
from netan.fastpath_child import decoded_chunks
from netan.fastpath_read import Chunk, read_chunks
from netan.flows import ACK, FIN, RST, SYN, FlowConfig, FlowState
from netan.intervals import cover
from netan.problems import InputError, Problems
from netan.sample import FlowSample
from netan.sources.pcap import CaptureInfo, RawPacket

__all__ = ["BatchEngine", "flow_states_fast", "flow_samples_fast"]

log = logging.getLogger(__name__)

#: Segments with fewer packets than this go per packet: a fast segment costs about 0.2 ms of
#: numpy calls whatever its size, the per-packet path 5-8 µs a packet (break-even near 40).
SMALL_SEGMENT = 48
#: Segments with more flows than this share of their packets go per packet too: with one or
#: two packets per flow there is nothing to batch, and the per-flow bookkeeping costs more.
MAX_GROUP_SHARE = 0.4
_NONE = -(1 << 40)  # "no value" for the int64 model arrays (offsets stay within +-2**33)
_BIG = 1 << 41


class BatchEngine:
    """Feed it chunks (``feed_chunk``) or whole captures (``run``); same API as Engine otherwise."""

    def __init__(self, cfg: FlowConfig, problems: Problems) -> None:
        self.cfg = cfg
        self.cfg0 = replace(cfg, max_sizes=0)  # individual updates: sizes are done in bulk
        self.problems = problems
        self.engine = Engine(cfg, problems)
        #: where packets went: for tests and tuning (not part of the output contract)
        self.path_counts = {"fast_packets": 0, "per_packet": 0, "individual_updates": 0, "complex_groups": 0,
                            "segments": 0, "reclassified_runs": 0}

    # -- the Engine-like surface --------------------------------------------------------
    @property
    def table(self):  # noqa: ANN201
        return self.engine.table

    def finish(self) -> None:
        self.engine.finish()

    def pop_finished(self) -> list[FlowState]:
        return self.engine.pop_finished()

    def summary(self) -> dict:
        return self.engine.summary()

    def run(self, paths: list[str], infos: list[CaptureInfo], unreadable: list[InputError],
            on_chunk: Callable[[Chunk], None] | None = None) -> None:
        """Read and process every packet of ``paths``; call ``on_chunk`` after each chunk."""
        # read and decoded one chunk ahead in a child process (netan.fastpath_child)
        for chunk, dv in decoded_chunks(paths, infos, unreadable):
            self.feed_decoded(chunk, dv)
            if on_chunk is not None:
                on_chunk(chunk)

    # -- one chunk ------------------------------------------------------------------------
    def feed_chunk(self, chunk: Chunk) -> None:
        self.feed_decoded(chunk, decode_chunk(chunk) if len(chunk) else None)

    def feed_decoded(self, chunk: Chunk, dv: Decodedv | None) -> None:
        """A chunk and its ``decode_chunk`` result (None when the chunk is empty)."""
        n = len(chunk)
        self._events = chunk.events
        self._ev = 0
        if n and dv is not None:
            self._feed(chunk, dv)
        self._emit_events(n)

    def _emit_events(self, upto: int) -> None:
        """Reader problems that precede packet ``upto`` (the per-packet engine's order)."""
        ev = self._events
        while self._ev < len(ev) and ev[self._ev][0] <= upto:
            p = ev[self._ev][1]
            self.problems.skip(p.file, p.where, p.reason)
            self._ev += 1

    def _feed(self, chunk: Chunk, dv: Decodedv) -> None:
        n = len(chunk)
        cls = dv.cls
        ai = np.flatnonzero((cls == FAST) | (cls == SLOW_OK))
        ts_a = chunk.ts[ai]
        cm = np.maximum.accumulate(ts_a) if len(ai) else ts_a
        fragpos = np.flatnonzero(cls == FRAG)
        grp = _Groups(dv, ai)
        pos = k = 0
        na = len(ai)
        while pos < n:
            table = self.engine.table
            now0, ns = table.now, table.next_scan
            if now0 >= ns:
                t = int(np.searchsorted(cm[k:], now0, "right"))
            else:
                t = int(np.searchsorted(cm[k:], ns, "left"))
            if k + t < na:
                end, k1, trig = int(ai[k + t]) + 1, k + t + 1, float(ts_a[k + t])
            else:
                end, k1, trig = n, na, None
            f0 = int(np.searchsorted(fragpos, pos))
            has_frag = f0 < len(fragpos) and fragpos[f0] < end
            dec = self.engine.decoder
            self.path_counts["segments"] += 1
            if (has_frag or dec.pending or dec.incomplete or k1 - k < SMALL_SEGMENT
                    or not self._try_fast(chunk, dv, grp, pos, end, k, k1, trig, ts_a, cm)):
                self._per_packet(chunk, pos, end)
            pos, k = end, k1

    def _try_fast(self, chunk: Chunk, dv: Decodedv, grp: "_Groups", a: int, e: int, k: int, k1: int,
                  trig: float | None, ts_a: np.ndarray, cm: np.ndarray) -> bool:
        """The fast segment; a surprise while planning (nothing changed yet) falls back to per packet."""
        self._committing = False
        try:
            return self._fast_segment(chunk, dv, grp, a, e, k, k1, trig, ts_a, cm)
        except Exception:
            if self._committing:
                raise
            log.warning("fast path: segment at packet offset %d planned with an error; per packet instead",
                        int(chunk.roff[a]), exc_info=True)
            return False

    def _per_packet(self, chunk: Chunk, a: int, e: int) -> None:
        """Engine.feed for packets a..e-1, RawPackets built from plain lists (numpy scalars are slow)."""
        feed = self.engine.feed
        buf = chunk.buf
        files = chunk.files
        iface = chunk.iface[a:e].tolist() if chunk.iface is not None else [0] * (e - a)
        ev = self._events
        for i, ts, s, n, w, lt, f, off, ifc in zip(range(a, e), chunk.ts[a:e].tolist(), chunk.doff[a:e].tolist(),
                                                   chunk.caplen[a:e].tolist(), chunk.wirelen[a:e].tolist(),
                                                   chunk.linktype[a:e].tolist(), chunk.fidx[a:e].tolist(),
                                                   chunk.roff[a:e].tolist(), iface):
            if self._ev < len(ev) and ev[self._ev][0] <= i:
                self._emit_events(i)
            feed(RawPacket(ts, buf[s : s + n], w, lt, files[f], off, ifc))
        self.path_counts["per_packet"] += e - a

    # -- a segment without scans inside ------------------------------------------------
    def _fast_segment(self, chunk: Chunk, dv: Decodedv, grp: "_Groups", a: int, e: int, k: int, k1: int,
                      trig: float | None, ts_a: np.ndarray, cm: np.ndarray) -> bool:
        cfg = self.cfg
        eng = self.engine
        table = eng.table
        flows = table.flows
        I = grp.ai[k:k1]
        G = grp.gid[k:k1]
        M = len(I)
        order = np.argsort(G, kind="stable")
        P = I[order]  # chunk indices, grouped by flow, time order inside
        Gs = G[order]
        brk = np.flatnonzero(Gs[1:] != Gs[:-1]) + 1
        gs = np.concatenate(([0], brk))
        ge = np.concatenate((brk, [M]))
        ng = len(gs)
        if ng > M * MAX_GROUP_SHARE:
            return False  # mostly one- or two-packet flows (a scan): per packet is cheaper
        glen = ge - gs
        gi = np.repeat(np.arange(ng), glen)  # group of each sorted packet
        first = np.zeros(M, bool)
        first[gs] = True
        ug = Gs[gs].tolist()
        keys = [grp.keys[u] for u in ug]
        fss = [flows.get(key) for key in keys]
        new = np.array([fs is None for fs in fss], bool)
        # New flows: build their state from the first packet (not in the table yet).
        states: list[FlowState] = []
        src_a_l = grp.src_a[k:k1][order].tolist()
        gi_l = np.repeat(np.arange(ng), ge - gs).tolist()
        decs: dict[int, Decoded] = {}  # position in P -> Decoded, built once, on demand

        def decode(pos: list[int]) -> None:
            # packets share their flow key's address objects (as flow_key does per packet)
            want = [j for j in pos if j not in decs]
            addrs = [(keys[gi_l[j]][1], keys[gi_l[j]][3]) if src_a_l[j] else (keys[gi_l[j]][3], keys[gi_l[j]][1])
                     for j in want]
            decs.update(zip(want, decoded_many(dv, chunk, P[want].tolist() if want else [], addrs)))

        gs_l0 = gs.tolist()
        decode([gs_l0[g] for g, fs in enumerate(fss) if fs is None])
        for g, fs in enumerate(fss):
            if fs is None:
                fs = FlowState(keys[g], decs[gs_l0[g]])
            states.append(fs)
        ts = chunk.ts[P]
        proto_g = np.array([key[0] for key in keys], np.int64)
        is_tcp_g = proto_g == TCP
        rows = [(s.last_ts, s.first_ts, s.lru_ts, s.closed, s.dirs[0].flags, s.dirs[1].flags, len(s.sizes),
                 s.orig == (key[1], key[2]), (key[1], key[2]) == (key[3], key[4]))
                for s, key in zip(states, keys)]
        last0 = np.array([r[0] for r in rows], np.float64)
        first0 = np.array([r[1] for r in rows], np.float64)
        lru0 = np.array([r[2] for r in rows], np.float64)
        closed0 = np.array([r[3] for r in rows], bool)
        fl0 = np.array([r[4] for r in rows], np.int64)
        fl1 = np.array([r[5] for r in rows], np.int64)
        nsizes = np.array([r[6] for r in rows], np.int64)
        orig_a = np.array([r[7] for r in rows], bool)
        same_ep = np.array([r[8] for r in rows], bool)
        d = np.where(same_ep[gi], 0, grp.src_a[k:k1][order] != orig_a[gi]).astype(np.int64)
        flags = dv.flags[P]
        newfirst = first & new[gi]
        # -- timeouts and LRU order, as FlowTable.add sees them
        excl = _seg_excl_max(ts, gs, first, last0, gi)  # fs.last_ts before each packet
        idle = (ts - excl > cfg.idle_timeout) & ~newfirst
        active = (ts - first0[gi] > cfg.active_timeout) & ~newfirst
        tcp = is_tcp_g[gi]
        rst = tcp & (flags & RST != 0)
        fin = tcp & (flags & FIN != 0)
        seg_rst = _segcum(rst, gs, glen) > 0
        seen_f0 = ((fl0[gi] & FIN) != 0) | (_segcum(fin & (d == 0), gs, glen) > 0)
        seen_f1 = ((fl1[gi] & FIN) != 0) | (_segcum(fin & (d == 1), gs, glen) > 0)
        closed_after = closed0[gi] | (tcp & (seg_rst | (seen_f0 & seen_f1)))
        closed_before = np.where(first, closed0[gi], np.roll(closed_after, 1))
        reuse = tcp & closed_before & ((flags & (SYN | ACK)) == SYN) & ~newfirst
        cand = (ts - lru0[gi] >= 1.0) & ~newfirst
        ccum = _segcum(cand, gs, glen)
        r1 = cand & (ccum == 1)
        t_r1 = np.full(ng, np.nan)
        t_r1[gi[r1]] = ts[r1]
        again = (ccum >= 1) & ~r1 & (ts - t_r1[gi] >= 1.0)
        bad = idle | active | reuse | again
        complex_g = np.zeros(ng, bool)
        complex_g[gi[bad]] = True
        simple = ~complex_g[gi]
        n_complex_pkts = int((~simple).sum())
        if len(flows) + int((new & ~complex_g).sum()) + n_complex_pkts > cfg.max_flows:
            return False  # an eviction could happen inside: keep the per-packet order
        # -- the per-direction model (see the module docstring) for simple groups
        slow = dv.cls[P] != FAST
        plen = dv.plen[P]
        pay = plen > 0
        indiv = slow.copy()
        set_val = np.full(M, _NONE, np.int64)  # TCP: ranges[-1][1]; others: stream_pos, before an update
        run = gi * 2 + d
        bulk_bytes_src = np.zeros(M, np.int64)
        final_val = np.full(2 * ng, _NONE, np.int64)
        st_tcp = simple & tcp
        if st_tcp.any():
            self._tcp_model(np.flatnonzero(st_tcp), run, states, dv, P, flags, plen, pay, indiv, set_val,
                            bulk_bytes_src, final_val)
        st_oth = simple & ~tcp
        if st_oth.any():
            self._stream_model(np.flatnonzero(st_oth), run, states, dv, P, plen, pay, indiv, set_val,
                               bulk_bytes_src, final_val)
        # sizes and inter-arrival times of the first packets of each flow (FlowState.update)
        room = np.maximum(0, cfg.max_sizes - nsizes)
        pig = np.arange(M) - gs[gi]  # position in group
        need = simple & (pig < room[gi])
        ipl = dv.ip_len[P]
        bulk = simple & ~indiv
        # -- commit (nothing above touched the table)
        self._committing = True
        self.path_counts["fast_packets"] += int(simple.sum())
        self.path_counts["complex_groups"] += int(complex_g.sum())
        self._stats(chunk, dv, a, e, M)
        eng._next_frag_check = _frag_check(eng._next_frag_check, ts_a, cm, k, k1)
        moves: list[tuple[int, tuple]] = []
        closes: list[tuple[int, tuple, tuple, bool]] = []
        # aggregates per (group, direction)
        nrun = 2 * ng
        cnt = np.bincount(run[bulk], minlength=nrun).tolist()
        ipb = np.bincount(run[bulk], weights=ipl[bulk], minlength=nrun).astype(np.int64).tolist()
        byt = np.bincount(run[bulk], weights=bulk_bytes_src[bulk], minlength=nrun).astype(np.int64).tolist()
        flg = _or_by(run[bulk & tcp], flags[bulk & tcp], nrun).tolist()
        gmax = np.maximum.reduceat(ts, gs).tolist()
        mac_off = dv.mac_off[P]
        mcand = (d == 0) & (mac_off >= 0)
        mfirst = mcand & (_segcum(mcand, gs, glen) == 1) & ~slow  # a slow packet sets it in its own update
        mac_at = np.full(ng, -1, np.int64)
        mac_at[gi[mfirst]] = mac_off[mfirst]
        mac_at_l = mac_at.tolist()
        need_idx = np.flatnonzero(need)  # grouped, since P is
        sz_vals = np.where(d[need_idx] == 0, ipl[need_idx], -ipl[need_idx]).tolist()
        iat_raw = np.maximum(0.0, ts[need_idx] - excl[need_idx])
        iat_raw[newfirst[need_idx]] = 0.0  # a flow's first packet: FlowState.update appends 0.0
        iat_l = iat_raw.tolist()
        sz_g = gi[need_idx]
        sz_at = np.searchsorted(sz_g, np.arange(ng + 1)).tolist()
        ind_l = np.flatnonzero(indiv & simple).tolist()
        decode(ind_l)
        ind_by_g: dict[int, list[tuple[int, Decoded]]] = {}
        for j in ind_l:
            ind_by_g.setdefault(gi_l[j], []).append((j, decs[j]))
        r1_at = np.full(ng, -1, np.int64)
        r1_at[gi[r1]] = P[r1]
        r1_l = r1_at.tolist()
        t_r1_l = t_r1.tolist()
        close_first = closed_after & ~closed0[gi] & simple
        close_first &= _segcum(close_first, gs, glen) == 1
        close_at: dict[int, tuple[int, float]] = {g: (int(P[j]), float(ts[j]))
                                                  for j, g in zip(np.flatnonzero(close_first).tolist(),
                                                                  gi[close_first].tolist())}
        P_l = P.tolist()
        d_l = d.tolist()
        set_l = set_val.tolist()
        final_l = final_val.tolist()
        gs_l = gs.tolist()
        complex_l = complex_g.tolist()
        tcp_g_l = is_tcp_g.tolist()
        buf = chunk.buf
        cfg0 = self.cfg0
        n_ind = 0
        for g in range(ng):
            if complex_l[g]:
                continue
            fs = states[g]
            key = keys[g]
            if fss[g] is None:
                flows[key] = fs
                table.stats["flows"] += 1
                moves.append((P_l[gs_l[g]], key))
            if fs.src_mac is None and mac_at_l[g] >= 0:
                m = mac_at_l[g]
                fs.src_mac = buf[m : m + 6]
            za, zb = sz_at[g], sz_at[g + 1]
            if za < zb:
                fs.sizes.extend(sz_vals[za:zb])
                fs.iats.extend([round(x, 6) for x in iat_l[za:zb]])
            dirs = fs.dirs
            is_tcp = tcp_g_l[g]
            for j, pk in ind_by_g.get(g, ()):
                v = set_l[j]
                if v != _NONE:
                    if is_tcp:
                        dirs[d_l[j]].ranges[-1][1] = v
                    else:
                        dirs[d_l[j]].stream_pos = v
                fs.update(pk, cfg0)
                n_ind += 1
            for dd in (0, 1):
                r = 2 * g + dd
                sd = dirs[dd]
                sd.pkts += cnt[r]
                sd.ip_bytes += ipb[r]
                sd.bytes += byt[r]
                sd.flags |= flg[r]
                v = final_l[r]
                if v != _NONE:
                    if is_tcp:
                        sd.ranges[-1][1] = v
                    else:
                        sd.stream_pos = v
            if gmax[g] > fs.last_ts:
                fs.last_ts = gmax[g]
            if r1_l[g] >= 0:
                fs.lru_ts = t_r1_l[g]
                moves.append((r1_l[g], key))
            c = close_at.get(g)
            if c is not None:
                closes.append((c[0], key, (fs, c[1]), True))
        self.path_counts["individual_updates"] += n_ind
        if n_complex_pkts:
            self._complex(chunk, dv, grp, P[~simple], G[order][~simple], moves, closes)
        # Rebuild the table's orders: whatever moved in this segment goes last, in move order.
        moves.sort(key=lambda m: m[0])
        for _, key in moves:
            fs = flows.pop(key, None)
            if fs is not None:
                flows[key] = fs
        closes.sort(key=lambda c: c[0])
        closing = table.closing
        for _, key, entry, fresh in closes:
            if fresh:
                closing[key] = entry
            elif closing.get(key) is entry:
                del closing[key]
                closing[key] = entry
        seg_max = float(cm[k1 - 1])
        if seg_max > table.now:
            table.now = seg_max
        if trig is not None:
            table.expire(trig)
            table.next_scan = trig + table.scan_every
        return True

    def _complex(self, chunk: Chunk, dv: Decodedv, grp: "_Groups", idx: np.ndarray, gids: np.ndarray,
                 moves: list, closes: list) -> None:
        """Groups with a flow boundary inside: FlowTable.add per packet, in capture order."""
        table = self.engine.table
        flows, closing = table.flows, table.closing
        o = np.argsort(idx, kind="stable")
        pkts = decoded_many(dv, chunk, idx[o].tolist())
        saved = table.next_scan
        table.next_scan = float("inf")  # the segment's one scan runs after all of its packets
        last_move: dict[tuple, int] = {}
        try:
            for i, u, pk in zip(idx[o].tolist(), gids[o].tolist(), pkts):
                key = grp.keys[u]
                before = flows.get(key)
                lru = before.lru_ts if before is not None else None
                ce = closing.get(key)
                table.add(pk)
                after = flows.get(key)
                if after is not None and (after is not before or after.lru_ts != lru):
                    last_move[key] = i
                ce2 = closing.get(key)
                if ce2 is not None and ce2 is not ce:
                    closes.append((i, key, ce2, False))
        finally:
            table.next_scan = saved
        moves.extend((i, key) for key, i in last_move.items())

    def _stats(self, chunk: Chunk, dv: Decodedv, a: int, e: int, n_added: int) -> None:
        """Engine.feed's counters for a fast segment, and its problems in packet order."""
        st = self.engine.stats
        ts = chunk.ts[a:e]
        st.packets += e - a
        lo, hi = float(ts.min()), float(ts.max())
        if st.first_ts is None or lo < st.first_ts:
            st.first_ts = lo
        if st.last_ts is None or hi > st.last_ts:
            st.last_ts = hi
        st.snaplen_truncated += int((chunk.caplen[a:e] < chunk.wirelen[a:e]).sum())
        st.decoded += n_added
        cls = dv.cls[a:e]
        for i in (np.flatnonzero((cls == NOT_IP) | (cls == BAD)) + a).tolist():
            self._emit_events(i)
            what = dv.slow[i]
            if isinstance(what, str):
                self.problems.skip(chunk.files[int(chunk.fidx[i])], f"offset {int(chunk.roff[i])}", what)
            else:
                st.non_ip[what.what] += 1  # type: ignore[attr-defined]
        self._emit_events(e - 1)

    # -- the TCP model ----------------------------------------------------------------------
    def _tcp_model(self, sel: np.ndarray, run: np.ndarray, states: list[FlowState], dv: Decodedv, P: np.ndarray,
                   flags: np.ndarray, plen: np.ndarray, pay: np.ndarray, indiv: np.ndarray, set_val: np.ndarray,
                   bulk_bytes: np.ndarray, final_val: np.ndarray) -> None:
        """Which TCP packets only move counters (see intervals.cover's two fast branches)."""
        cfg = self.cfg
        o, rr, m, rs, rlen, ri = _by_run(sel, run)
        runs = rr[rs].tolist()
        init = []
        for r in runs:
            sd = states[r >> 1].dirs[r & 1]
            has = bool(sd.ranges)
            init.append((sd.isn if sd.isn is not None else _NONE, has, sd.ranges[-1][1] if has else _NONE,
                         sd.ranges[-1][0] if has else _NONE))
        isn0 = np.array([x[0] for x in init], np.int64)
        has0 = np.array([x[1] for x in init], bool)
        e0 = np.array([x[2] for x in init], np.int64)
        s00 = np.array([x[3] for x in init], np.int64)
        f = flags[o]
        seq = dv.seq[P[o]]
        pl = plen[o]
        py = pay[o]
        syn = (f & SYN) != 0
        cpay = _segcum(py, rs, rlen)
        p1 = py & (cpay == 1) & ~has0[ri]  # first payload of a direction with no ranges yet
        upto = (cpay - py) == 0  # no payload strictly before
        synb = syn & upto
        ar = np.arange(m)
        ff = np.maximum.accumulate(np.where(synb, ar, -1))
        p1i = np.flatnonzero(p1)
        isn_r = isn0.copy()
        if len(p1i):
            rp = ri[p1i]
            src = ff[p1i]
            from_syn = src >= rs[rp]
            v = np.where(from_syn, (seq[np.maximum(src, 0)] + 1) % (1 << 32),
                         np.where(isn0[rp] != _NONE, isn0[rp], seq[p1i]))
            isn_r[rp] = v
        isn_p = isn_r[ri]
        rel = (seq - isn_p) % (1 << 32)
        rel = np.where(rel >= (1 << 31), rel - (1 << 32), rel)
        ends = rel + pl
        started = has0[ri] | ((cpay - py) >= 1) | p1  # ranges non-empty after this packet's cover
        modeled = py & started  # payload packets the model follows (p1 included: it starts the range)
        vals = np.where(modeled, ends, _NONE) + ri * _BIG
        incl = np.maximum.accumulate(vals) - ri * _BIG
        excl = np.where(ar == rs[ri], _NONE, np.roll(incl, 1))
        e_before = np.maximum(excl, e0[ri])
        s0 = np.where(has0, s00, _NONE)
        if len(p1i):
            s0[ri[p1i]] = rel[p1i]
        s0p = s0[ri]
        rest = modeled & ~p1
        ext = rest & (rel == e_before)
        cont = rest & ~ext & (s0p <= rel) & (ends <= e_before)
        general = rest & ~ext & ~cont
        base = indiv[o] | ((f & (SYN | FIN | RST)) != 0)
        ind = base | p1 | general | (ext & (rel < cfg.sample_bytes))
        # ranges non-empty before this packet (model): set the in-order end before its update
        has_before = has0[ri] | ((cpay - py) >= 1)
        setv = np.where(ind & has_before, e_before, _NONE)
        bb = np.where(ext & ~ind, pl, 0)
        last = rs + rlen - 1
        fin_e = np.maximum(incl[last], e0)
        fin_e = np.where(has0 | (_segcum(py, rs, rlen)[last] > 0), fin_e, _NONE)
        gcum = _segcum(general, rs, rlen)
        broken_runs = np.flatnonzero(gcum[last] > 0)
        self.path_counts["reclassified_runs"] += len(broken_runs)
        for x in broken_runs.tolist():
            # After a segment that is neither in order nor a plain retransmission, the
            # last range is whatever cover() makes of it: replay cover() on a copy of
            # the ranges for those packets only, and re-classify the rest of the run.
            a0, a1 = int(rs[x]), int(rs[x] + rlen[x])
            jb = a0 + int(np.argmax(general[a0:a1]))
            r = runs[x]
            sim = [list(v) for v in states[r >> 1].dirs[r & 1].ranges]
            if sim:
                sim[-1][1] = int(e_before[jb])
            else:
                sim = [[int(s0p[jb]), int(e_before[jb])]]
            cover(sim, int(rel[jb]), int(ends[jb]))
            pos = jb + 1
            fin = sim[-1][1]
            while pos < a1:
                s0c, ec = sim[-1]
                sp, sr, se = py[pos:a1], rel[pos:a1], ends[pos:a1]
                cmx = np.maximum.accumulate(np.where(sp, se, _NONE))
                eb = np.maximum(np.concatenate(([_NONE], cmx[:-1])), ec)
                sx = sp & (sr == eb)
                sc = sp & ~sx & (s0c <= sr) & (se <= eb)
                sg = sp & ~sx & ~sc
                q = int(np.argmax(sg)) if sg.any() else a1 - pos
                w = slice(pos, pos + q)
                sind = base[w] | (sx[:q] & (sr[:q] < cfg.sample_bytes))
                ind[w] = sind
                setv[w] = np.where(sind, eb[:q], _NONE)
                bb[w] = np.where(sx[:q] & ~sind, pl[w], 0)
                if pos + q >= a1:
                    fin = max(ec, int(cmx[q - 1])) if q else ec
                    break
                g = pos + q  # the next general packet: looked at, then cover() on the copy
                ind[g] = True
                setv[g] = int(eb[q])
                bb[g] = 0
                sim[-1][1] = int(eb[q])
                cover(sim, int(sr[q]), int(se[q]))
                fin = sim[-1][1]
                pos = g + 1
            fin_e[x] = fin
        indiv[o] = ind
        set_val[o] = setv
        bulk_bytes[o] = bb
        final_val[rr[rs]] = fin_e

    def _stream_model(self, sel: np.ndarray, run: np.ndarray, states: list[FlowState], dv: Decodedv,
                      P: np.ndarray, plen: np.ndarray, pay: np.ndarray, indiv: np.ndarray, set_val: np.ndarray,
                      bulk_bytes: np.ndarray, final_val: np.ndarray) -> None:
        """Non-TCP: datagrams laid end to end; only those starting inside the sample are looked at."""
        cfg = self.cfg
        o, rr, m, rs, rlen, ri = _by_run(sel, run)
        sp0 = np.array([states[r >> 1].dirs[r & 1].stream_pos for r in rr[rs].tolist()], np.int64)
        py = pay[o]
        cap = np.where(py, dv.pay_cap[P[o]], 0)
        inc = _segcum(cap, rs, rlen)
        before = sp0[ri] + inc - cap
        ind = indiv[o] | (py & (before < cfg.sample_bytes))
        indiv[o] = ind
        set_val[o] = np.where(ind, before, _NONE)
        bulk_bytes[o] = np.where(py & ~ind, plen[o], 0)
        last = rs + rlen - 1
        final_val[rr[rs]] = sp0 + inc[last]


class _Groups:
    """Flow keys of a chunk's decoded packets: one id per distinct key, verified."""

    def __init__(self, dv: Decodedv, ai: np.ndarray) -> None:
        self.ai = ai
        proto = dv.proto[ai]
        icmp = (proto == ICMP) | (proto == ICMP6)
        sp = np.where(icmp, 0, dv.sport[ai])
        dp = np.where(icmp, 0, dv.dport[ai])
        shi, slo, dhi, dlo = dv.src_hi[ai], dv.src_lo[ai], dv.dst_hi[ai], dv.dst_lo[ai]
        # flow_key: (src, sport) <= (dst, dport), bytes compared as big-endian numbers
        src_a = (shi < dhi) | ((shi == dhi) & ((slo < dlo) | ((slo == dlo) & (sp <= dp))))
        self.src_a = src_a
        v6 = dv.v6[ai]
        cols = [v6.astype(np.uint64), proto.astype(np.uint64), np.where(src_a, shi, dhi), np.where(src_a, slo, dlo),
                np.where(src_a, sp, dp).astype(np.uint64), np.where(src_a, dhi, shi), np.where(src_a, dlo, slo),
                np.where(src_a, dp, sp).astype(np.uint64)]
        h = np.zeros(len(ai), np.uint64)
        with np.errstate(over="ignore"):
            for c in cols:
                h = (h ^ c) * np.uint64(0x100000001B3)
                h ^= h >> np.uint64(29)
        _, firsts, inv = np.unique(h, return_index=True, return_inverse=True)
        if any(not np.array_equal(c[firsts][inv], c) for c in cols):  # a hash collision: group exactly
            log.debug("flow key hash collision; grouping by full keys")
            _, firsts, inv = np.unique(np.stack(cols, 1), axis=0, return_index=True, return_inverse=True)
        self.gid = inv.reshape(-1).astype(np.int64)
        c = [x[firsts].tolist() for x in cols]
        keys = []
        for is6, pr, ahi, alo, ap, bhi, blo, bp in zip(*c):
            if is6:
                ka, kb = ((ahi << 64) | alo).to_bytes(16, "big"), ((bhi << 64) | blo).to_bytes(16, "big")
            else:
                ka, kb = alo.to_bytes(4, "big"), blo.to_bytes(4, "big")
            keys.append((pr, ka, ap, kb, bp))
        self.keys = keys


def _by_run(sel: np.ndarray, run: np.ndarray) -> tuple[np.ndarray, ...]:
    """The selected packets grouped by run (flow and direction), time order inside:
    ``(order, run of each, count, run starts, run lengths, run index of each)``."""
    o = sel[np.argsort(run[sel], kind="stable")]
    rr = run[o]
    m = len(o)
    rs = np.concatenate(([0], np.flatnonzero(rr[1:] != rr[:-1]) + 1))
    rlen = np.diff(np.concatenate((rs, [m])))
    return o, rr, m, rs, rlen, np.repeat(np.arange(len(rs)), rlen)


def _segcum(x: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Inclusive running sum of ``x`` restarting at each segment start."""
    c = np.cumsum(x, dtype=np.int64)
    base = c[starts] - np.asarray(x[starts], np.int64)
    return c - np.repeat(base, lens)


def _seg_excl_max(ts: np.ndarray, gs: np.ndarray, first: np.ndarray, init: np.ndarray,
                  gi: np.ndarray) -> np.ndarray:
    """Per packet: max(init of its group, times of the group's earlier packets)."""
    prev = np.roll(ts, 1)
    mono = bool(np.all((ts >= prev) | first))
    if mono:  # the usual case: time order inside each group
        out = np.where(first, -np.inf, prev)
    else:
        out = np.empty_like(ts)
        ge = np.concatenate((gs[1:], [len(ts)]))
        for s, e in zip(gs.tolist(), ge.tolist()):
            acc = np.maximum.accumulate(ts[s:e])
            out[s] = -np.inf
            out[s + 1 : e] = acc[:-1]
    return np.maximum(out, init[gi])


def _or_by(idx: np.ndarray, vals: np.ndarray, n: int) -> np.ndarray:
    """Bitwise OR of ``vals`` per index (TCP flags fit in 9 bits)."""
    out = np.zeros(n, np.int64)
    if len(idx) == 0:
        return out
    for bit in range(9):
        has = np.bincount(idx, weights=(vals >> bit) & 1, minlength=n) > 0
        out |= has.astype(np.int64) << bit
    return out


def _frag_check(nfc: float, ts_a: np.ndarray, cm: np.ndarray, k: int, k1: int) -> float:
    """Engine.feed's once-a-second fragment check time after packets k..k1 (none pending)."""
    while k < k1:
        t = k + int(np.searchsorted(cm[k:k1], nfc, "left"))
        if t >= k1:
            break
        nfc = float(ts_a[t]) + 1.0
        k = t + 1
    return nfc


def flow_states_fast(paths: Iterable[str], cfg: FlowConfig | None = None,
                     problems: Problems | None = None) -> Iterator[FlowState]:
    """``netan.engine.flow_states`` through the batch engine (same flows, same order)."""
    problems = problems if problems is not None else Problems()
    eng = BatchEngine(cfg or FlowConfig(), problems)
    infos: list[CaptureInfo] = []
    unreadable: list[InputError] = []
    for chunk in read_chunks(list(paths), infos, unreadable):
        eng.feed_chunk(chunk)
        yield from eng.pop_finished()
    eng.finish()
    yield from eng.pop_finished()
    if unreadable:
        raise unreadable[0]


def flow_samples_fast(paths: Iterable[str], cfg: FlowConfig | None = None) -> list[tuple[dict, FlowSample]]:
    return [(fs.to_record(), fs.to_sample()) for fs in flow_states_fast(paths, cfg)]
