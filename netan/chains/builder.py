"""Crypto-to-egress chains: group evidence per app (or client) and destination, score it.

``observe`` sees every final flow record once (pass 2 of the pipeline) and keeps
a few numbers per flow in flat arrays (``BYTES_PER_FLOW`` bytes: start and end
time, bytes sent, its chain key as two interned ids, two flags, and a handle to
read the record back); ``finalize`` groups them per key, adds the cross-flow
evidence (beaconing, staging, one key over many egress flows), reads back the
records of the flows that make a chain (``netan.chains.store``) for their
evidence details and the context evidence from the device timelines, scores
each chain with ``analytics.score_chain`` and builds the evidence graph.
Chains below ``MIN_SCORE`` are counted, not written: as a score depends on the
evidence kinds alone (``analytics.score_of_kinds``), such a candidate is decided
on its kinds, and its details and chain are never written (the graph, which
shows it too, gets only the few fields it draws).

Why not a small object per flow: a million-flow run then held gigabytes and
spent its time in the garbage collector, while only the flows of a chain ever
need more than their time and size.
"""
from __future__ import annotations

import contextlib
import hashlib
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from netan import SCHEMA, fastlane
from netan.chains.analytics import KINDS, score_chain, score_of_kinds, severity
from netan.chains.baseline import Baseline, subject_of
from netan.chains.beacon import beacon_score
from netan.chains.evidence import (DNS_PORTS, ENCRYPTED_L7, STANDARD_TLS_PORTS, context_evidence, item,
                                   network_evidence, network_kinds)
from netan.chains.graph import EvidenceGraph
from netan.chains.store import RecordStore, Spool

__all__ = ["ChainBuilder", "MIN_SCORE", "BYTES_PER_FLOW"]

MIN_SCORE = 20
SILENCE_S = 1800.0
#: A chain's flows are split when the subject is quiet for this long at that destination.
CHAIN_WINDOW_S = 6 * 3600.0
#: A flow starts or joins a chain only on network evidence of at least this weight.
POSITIVE_WEIGHT = 10

_POSITIVE = 1  # flag: network evidence of some weight (a reason for a chain)
_UPLOAD = 2  # flag: an upload for the staging analysis
#: The per-flow columns (array typecodes): ts, ts_end, bytes_out, key, handle, flags.
_COLUMNS = "ddqQQB"
#: What the builder keeps per observed flow, in bytes (the memory that grows with the flows).
BYTES_PER_FLOW = sum(array(c).itemsize for c in _COLUMNS)
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_NAMES = ("ts", "ts_end", "bytes_out", "key", "handle", "flags")
#: Flows remapped at a time when another builder's flows are absorbed.
_ABSORB_PIECE = 1 << 16
_DTYPES = {name: np.dtype(c) for name, c in zip(_NAMES, ("d", "d", "q", "Q", "Q", "B"))}
_STRONG = frozenset(k for k, v in KINDS.items() if v.weight >= POSITIVE_WEIGHT)
#: The record fields ``chain_observe`` reads, in the order of its ``N_*`` constants.
_OBSERVE_KEYS = ("app", "dst_port", "device", "src_ip", "dst_name", "tls", "sni", "dst_ip", "bytes_out", "l7", "ts",
                 "ts_end", "dns")
_C_OBSERVE = fastlane.C.chain_observe if fastlane.C is not None else None
#: The kinds the lane's rules give a conn-only record, and their bits there (``_fastlane.c``'s KB_*).
_LANE_KINDS = {"payload_not_observable": 1, "upload_dominant": 2, "direct_ip": 4, "tls_on_odd_port": 8,
               "non_tls_on_443": 16}


@dataclass
class _Flow:
    """One flow of a candidate chain, built in ``finalize`` only."""

    flow_id: str | None
    ts: float
    ts_end: float
    evidence: list[dict[str, Any]]
    record: dict[str, Any] | None  # what context evidence and the graph see of the flow


@dataclass
class ChainBuilder:
    join: Any = None
    baseline: Baseline | None = None
    min_score: int = MIN_SCORE
    #: where observed records are read back; None: the builder spools them itself
    store: RecordStore | None = None
    below_threshold: int = 0
    graph: EvidenceGraph = field(default_factory=EvidenceGraph)
    #: whether ``graph`` is kept (False: a run that writes no GraphML spends nothing on it)
    with_graph: bool = True

    def __post_init__(self) -> None:
        self.forget_flows()
        # chain keys as two interned parts: (device, app, subject, port) and the destination
        self._sides: dict[tuple, int] = {}
        self._dests: dict[Any, int] = {}
        #: side ids by what ``observe`` reads of a record (its subject follows from app and src_ip)
        self._who: dict[tuple, int] = {}
        self._subjects: list[str] = []  # by side id
        self._spool: Spool | None = None

    @classmethod
    def for_run(cls, context: Any = None, baseline_path: str | None = None, graph: bool = True) -> "ChainBuilder":
        return cls(join=context, baseline=Baseline.load(baseline_path) if baseline_path else None,
                   with_graph=graph)

    def blank(self) -> "ChainBuilder":
        """A builder with this one's settings and nothing observed: for a segment of the records read
        alongside, whose ``state()`` this one absorbs in its turn."""
        return ChainBuilder(join=self.join, baseline=self.baseline, min_score=self.min_score,
                            with_graph=self.with_graph)

    # ---- pass 2: one record at a time ----------------------------------------------------
    def observe(self, r: dict[str, Any], handle: int | None = None) -> None:
        """Note one final flow record; ``handle`` finds it again in ``store`` (else it is spooled).

        Runs once per flow, so it reads each field once and asks the evidence rules for
        kinds only (their wording waits for ``finalize``, and only for chain flows).
        """
        if handle is not None and _C_OBSERVE is not None:
            state = self._c_state
            if state is None or state[5] is not self.baseline:
                state = self._c_state = self._fast_state()
            if _C_OBSERVE(state, r, handle):  # the bookkeeping below, in C, for the plain case
                return
        get = r.get
        app, port = get("app"), get("dst_port", 0)
        # (device, app, src_ip, port) names the chain side and the subject without building the subject's text
        who = (get("device"), app, get("src_ip"), port)
        sid = self._who.get(who)
        if sid is None:
            sid = self._side_of(who[0], app, subject_of(r), port)
            self._who[who] = sid
        subject = self._subjects[sid]
        dns_named = get("dst_name")
        dest = dns_named or (get("tls") or {}).get("sni") or r["dst_ip"]
        did = self._dests.get(dest)
        if did is None:
            did = self._dests[dest] = len(self._dests)
        flags = 0 if _STRONG.isdisjoint(network_kinds(r, self.baseline, subject, bool(dns_named))) else _POSITIVE
        b_out = get("bytes_out", 0)
        if b_out >= 1024 and get("l7") not in ("dns",):
            flags |= _UPLOAD
        if handle is None:
            if self._spool is None:
                self._spool = Spool()
            handle = self._spool.put(r)
        ts, ts_end = r["ts"], r["ts_end"]
        if type(ts) is float and type(ts_end) is float and type(b_out) is int and _I64_MIN <= b_out <= _I64_MAX:
            self._ts.append(ts)
            self._ts_end.append(ts_end)
            self._bytes_out.append(b_out)
        else:
            i = len(self._flags)
            self._put("ts", self._ts, i, ts, float)
            self._put("ts_end", self._ts_end, i, ts_end, float)
            self._put("bytes_out", self._bytes_out, i, b_out, int)
        self._key.append(sid << 32 | did)
        self._handle.append(handle)
        self._flags.append(flags)

    def lane_state(self, device: Any, app: Any) -> tuple | None:
        """What ``netan._fastlane.Lane`` reads and updates of this builder for conn-only records of
        ``device`` and ``app`` (its ``chain`` tuple), or None when it cannot stand in for ``observe``:
        a baseline gives evidence the lane does not know."""
        if self.baseline is not None:
            return None
        strong = sum(bit for kind, bit in _LANE_KINDS.items() if kind in _STRONG)
        return (self._who, self._dests, self._new_side, device, app, frozenset(ENCRYPTED_L7), frozenset(DNS_PORTS),
                frozenset(STANDARD_TLS_PORTS), strong, "dns", "tls", "unknown")

    def _new_side(self, who: tuple) -> int:
        """The side id of a (device, app, src_ip, port) the lane meets first, registered as ``observe`` does."""
        device, app, src_ip, port = who
        sid = self._who[who] = self._side_of(device, app, subject_of({"app": app, "src_ip": src_ip}), port)
        return sid

    def extend_columns(self, *columns: bytes) -> None:
        """Flows noted elsewhere (the lane), as the raw bytes of each column in ``_NAMES`` order."""
        for name, raw in zip(_NAMES, columns):
            getattr(self, f"_{name}").frombytes(raw)

    def _fast_state(self) -> tuple:
        """What ``netan.fastlane``'s ``chain_observe`` reads and updates of this builder."""
        appends = tuple(getattr(self, f"_{name}").append for name in _NAMES)
        return (self._who, self._subjects, self._dests, _STRONG, network_kinds, self.baseline, appends, _OBSERVE_KEYS)

    def _side_of(self, device: Any, app: Any, subject: str, port: Any) -> int:
        """The id of a chain side (device, app, subject, port), a new one on first sight."""
        side = (device, app, subject, port)
        sid = self._sides.get(side)
        if sid is None:
            sid = self._sides[side] = len(self._sides)
            self._subjects.append(subject)
        return sid

    def _put(self, name: str, col: array, i: int, v: Any, kind: type) -> None:
        if type(v) is kind and (kind is float or _I64_MIN <= v <= _I64_MAX):
            col.append(v)
        else:  # kept as it was, so the chain says exactly what the record said
            self._odd[(name, i)] = v
            col.append(0)

    def _value(self, name: str, col: array, i: int) -> Any:
        return self._odd.get((name, i), col[i]) if self._odd else col[i]

    # ---- several processes: one builder's flows after another's ---------------------------
    def state(self, spill: str | None = None) -> dict[str, Any]:
        """What ``absorb`` needs of this builder's flows (picklable): the columns as bytes, or with
        ``spill`` written to that file (no copy in memory: a process handing its flows to another
        then holds them once, and the other reads them straight into its columns)."""
        head = {"sides": list(self._sides), "dests": list(self._dests), "odd": self._odd, "n": len(self._flags)}
        if spill is None:
            return {**head, **{name: getattr(self, f"_{name}").tobytes() for name in _NAMES}}
        with open(spill, "wb") as fh:
            for name in _NAMES:
                getattr(self, f"_{name}").tofile(fh)
        return {**head, "spill": spill}

    def forget_flows(self) -> None:
        """Empty per-flow columns: a new builder, or one whose ``state()`` went to another builder."""
        self._ts, self._ts_end, self._bytes_out = array("d"), array("d"), array("q")
        self._key, self._handle, self._flags = array("Q"), array("Q"), array("B")
        #: values that do not fit their column (an int time, a float size), by flow index
        self._odd: dict[tuple[str, int], Any] = {}
        self._c_state: tuple | None = None  # for chain_observe (``_fast_state``), bound to these columns

    def absorb(self, state: dict[str, Any], handle_base: int) -> None:
        """Take another builder's flows (``state()``) as if observed here after this builder's own;
        their handles move by ``handle_base`` (where that builder's records start in ``store``)."""
        if self._spool is not None:
            raise ValueError("a builder that spools its own records cannot take another's")
        side_ids = np.array([self._side_of(*s) for s in state["sides"]] or [0],
                            dtype=np.uint64)
        dest_ids = np.array([self._dests.setdefault(d, len(self._dests)) for d in state["dests"]] or [0],
                            dtype=np.uint64)
        base, n = len(self._flags), state["n"]
        with contextlib.ExitStack() as stack:
            fh = stack.enter_context(open(state["spill"], "rb")) if "spill" in state else None
            for name in _NAMES:
                col = getattr(self, f"_{name}")
                if name not in ("key", "handle"):
                    if fh is None:
                        col.frombytes(state[name])
                    else:
                        col.fromfile(fh, n)
                    continue
                # a piece at a time: the remapping's temporaries stay small
                raw = None if fh is not None else np.frombuffer(state[name], dtype=np.uint64)
                for at in range(0, n, _ABSORB_PIECE):
                    m = min(_ABSORB_PIECE, n - at)
                    v = np.fromfile(fh, dtype=np.uint64, count=m) if fh is not None else raw[at:at + m].copy()
                    if name == "key":
                        v = side_ids[(v >> np.uint64(32)).astype(np.int64)] << np.uint64(32) | \
                            dest_ids[(v & np.uint64(0xFFFFFFFF)).astype(np.int64)]
                    else:
                        v += np.uint64(handle_base)
                    col.frombytes(memoryview(v).cast("B"))
        for (name, i), v in state["odd"].items():
            self._odd[(name, base + i)] = v

    # ---- the end: chains --------------------------------------------------------------
    def finalize(self) -> list[dict[str, Any]]:
        chains: list[dict[str, Any]] = []
        n = len(self._flags)
        if not n:
            return chains
        store: RecordStore = self.store if self._spool is None else self._spool
        keys = np.frombuffer(self._key, dtype=np.uint64)
        # per key, flows stay in the order they came
        order, sorted_keys = _stable_argsort(keys >> np.uint64(32), len(self._sides), keys & np.uint64(0xFFFFFFFF),
                                             len(self._dests))
        starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
        del sorted_keys
        ends = np.append(starts[1:], n)
        flags = np.frombuffer(self._flags, dtype=np.uint8)
        positive = np.maximum.reduceat(flags[order] & _POSITIVE, starts) > 0
        # A key makes no chain without a positive flow or the 4 flows beaconing needs.
        wanted = np.flatnonzero(positive | (ends - starts >= 4))
        wanted = wanted[np.argsort(order[starts[wanted]], kind="stable")]  # keys in order of first sight
        all_flows, all_bounds = self._in_time_order(order, starts[wanted], ends[wanted])
        del order, starts, ends, wanted
        all_first_keys = keys[all_flows[all_bounds[:-1]]]
        sides = list(self._sides)
        dests = list(self._dests)
        staging = _Staging(self, sides, flags)
        for g0, g1 in _batches(all_bounds, _BATCH_FLOWS):
            # the columns of a batch of keys' flows as Python values (a batch at a time: memory stays flat)
            base = int(all_bounds[g0])
            flows = all_flows[base:int(all_bounds[g1])]
            ts, ts_end, b_out = (self._values(name, flows) for name in ("ts", "ts_end", "bytes_out"))
            is_positive = (flags[flows] & _POSITIVE).tolist()
            flows = flows.tolist()
            for k, lo, hi in zip(all_first_keys[g0:g1].tolist(), (all_bounds[g0:g1] - base).tolist(),
                                 (all_bounds[g0 + 1:g1 + 1] - base).tolist()):
                sid, did = divmod(k, 1 << 32)
                device, app, subject, port = sides[sid]
                key = (device, app, subject, dests[did], port)
                for a, b in _split(ts, ts_end, lo, hi):
                    chain = self._candidate(key, flows[a:b], is_positive[a:b], ts[a:b], b_out[a:b], store,
                                            staging, (device, subject))
                    if chain is None:
                        continue
                    if chain is _BELOW or chain["score"] < self.min_score:
                        self.below_threshold += 1
                        continue
                    chains.append(chain)
        chains.sort(key=lambda c: (-c["score"], c["ts_start"], c["chain_id"]))
        return chains

    def _in_time_order(self, order: np.ndarray, starts: np.ndarray,
                       ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The flows ``order[starts[g]:ends[g]]`` of each key g in turn, each key's sorted by start time
        (stably: equal times keep the order they came in), and where each key's flows begin and end.

        One sort for all keys instead of one per key: the time is the minor sort key under the
        key's place (``lexsort``), which orders exactly as a stable sort within each key would.
        """
        lens = ends - starts
        bounds = np.concatenate(([0], np.cumsum(lens)))
        total = int(bounds[-1])
        at = np.repeat(starts - bounds[:-1], lens)  # worked in place: few arrays of the flows' size at once
        at += np.arange(total)
        flows = order[at]
        del at
        if self._odd:
            times = np.array([float(self._value("ts", self._ts, i)) for i in flows.tolist()], dtype=np.float64)
        else:
            times = np.frombuffer(self._ts, dtype=np.float64)[flows]
        place = np.repeat(np.arange(len(lens), dtype=np.int32 if len(lens) < 1 << 31 else np.int64), lens)
        by_time = np.lexsort((times, place))
        del times, place
        return flows[by_time], bounds

    def _values(self, name: str, idx: np.ndarray) -> list[Any]:
        """Column ``name`` at ``idx`` as Python values, the odd ones as the record had them."""
        col = getattr(self, f"_{name}")
        if self._odd:
            return [self._value(name, col, i) for i in idx.tolist()]
        return np.frombuffer(col, dtype=_DTYPES[name])[idx].tolist()

    def _value_list(self, name: str, col: array, idx: list[int]) -> list[Any]:
        return [self._value(name, col, i) for i in idx]

    def _candidate(self, key: tuple, idx: list[int], is_positive: list[int], ts: list[Any], b_out: list[Any],
                   store: RecordStore, staging: _Staging, ds: tuple) -> dict[str, Any] | None:
        """The chain of one time-split group of a key's flows (``idx``, with their flags, start times
        and bytes sent), ``_BELOW`` when it scores under ``min_score``, or None.

        The score is decided on the evidence kinds first: most candidates end below the
        threshold, and for them no detail is worded and no chain is built (the graph, when
        kept, gets the few fields it draws).
        """
        positive = [i for i, p in zip(idx, is_positive) if p]
        beacon = beacon_score(ts, b_out)
        if positive:
            records = store.get(self._handle[i] for i in positive)
            slim = _slim
        elif beacon is not None and beacon.score >= 0.8:
            records = store.get(self._handle[i] for i in idx)  # regular contact alone is worth a chain (RITA's premise)
            slim = _slim_flow
        else:
            return None
        device, subject = key[0], key[2]
        timeline = self._timeline(device)
        on_ds = staging.of(ds)
        # context evidence sees the slim records; without a timeline it reads only the time, which a slim copies
        slims = [slim(r) for r in records] if self.with_graph or timeline is not None else None
        kinds, keys = evidence_kinds(records, records if slims is None else slims, self.baseline, subject, on_ds,
                                     beacon is not None and beacon.score >= 0.8, timeline)
        score = score_of_kinds(kinds)
        if score < self.min_score:
            if self.with_graph:
                self.graph.add_chain(_graph_view(key, records[0]["ts"], score, keys), slims)
            return _BELOW
        if slims is None:
            slims = [slim(r) for r in records]
        flows = [_Flow(r["flow_id"], r["ts"], r["ts_end"],
                       network_evidence(r, self.baseline, subject, bool(r.get("dst_name"))), s)
                 for r, s in zip(records, slims)]
        return self._chain(key, flows, beacon, on_ds)

    def _timeline(self, device: Any) -> Any:
        """The device's context timeline, or None (no context, or a flow no device was bound to)."""
        return self.join.ctx.timeline(device) if self.join is not None and device else None

    def _chain(self, key: tuple, suspicious: list[_Flow], beacon: Any,
               staging: dict[Any, list[dict]]) -> dict[str, Any]:
        device, app, subject, dest, port = key
        evidence: dict[str, dict[str, Any]] = {}
        counts: dict[str, int] = defaultdict(int)

        def add(e: dict[str, Any]) -> None:
            counts[e["kind"]] += 1
            if e["kind"] not in evidence:
                evidence[e["kind"]] = dict(e)

        for f in suspicious:
            for e in f.evidence:
                add(e)
            for e in staging.get(f.ts, []):
                add(e)
        b = beacon
        if b is not None and b.score >= 0.8:
            add(item("beaconing", f"{b.connections} connections to {dest}, every ~{b.median_interval_s:.0f} s, "
                                  f"RITA score {b.score:.2f}"))
        keys: set[str] = set()
        timeline = self._timeline(device)
        for f in suspicious:
            ctx_items, aliases = context_evidence(f.record, timeline)
            keys.update(aliases)
            for e in ctx_items:
                add(e)
        if keys and len(suspicious) >= 3 and "key_generated_before_egress" in evidence:
            add(item("same_key_many_egress", f"key(s) {', '.join(sorted(keys))} precede {len(suspicious)} egress flows"))
        # a mitigation or gap seen on some flows only still says something; keep one of each
        items = []
        for kind, e in evidence.items():
            n = counts[kind]
            if n > 1:
                e["detail"] += f" (and {n - 1} more flow{'s' if n > 2 else ''})"
            items.append(e)
        items.sort(key=lambda e: (-abs(e["weight"]), e["kind"]))
        score, analytics, per = score_chain(items)
        chain = {
            "schema": SCHEMA, "chain_id": _chain_id(subject, dest, port, suspicious[0].ts), "device": device,
            "app": app, "score": score, "severity": severity(score), "analytics": analytics,
            "ts_start": round(min(f.ts for f in suspicious), 6), "ts_end": round(max(f.ts_end for f in suspicious), 6),
            "flows": [f.flow_id for f in suspicious],
            "destinations": [_destination(dest, port)], "keys": sorted(keys), "evidence": items,
            "subject": subject, "analytic_scores": per,
            "based_on": {"network": True, "context": timeline is not None, "baseline": self.baseline is not None},
        }
        if self.with_graph:
            self.graph.add_chain(chain, [f.record for f in suspicious if f.record is not None])
        return chain

    def write_graphml(self, path: str) -> None:
        if not self.with_graph:
            raise ValueError("this builder keeps no graph (with_graph=False)")
        self.graph.write_graphml(path)


#: What ``ChainBuilder._candidate`` returns for a candidate that scores under ``min_score``.
_BELOW: dict[str, Any] = {}


def _chain_id(subject: str, dest: Any, port: Any, first_ts: Any) -> str:
    return "C" + hashlib.blake2b(f"{subject}|{dest}|{port}|{first_ts:.6f}".encode(), digest_size=8).hexdigest()


def _destination(dest: Any, port: Any) -> str:
    return f"{dest}:{port}" if port else str(dest)


def _graph_view(key: tuple, first_ts: Any, score: int, keys: set[str]) -> dict[str, Any]:
    """The fields of a chain the graph draws (``graph.GRAPH_FIELDS``), for a chain never written in full."""
    device, app, subject, dest, port = key
    return {"chain_id": _chain_id(subject, dest, port, first_ts), "device": device, "app": app,
            "subject": subject, "score": score, "destinations": [_destination(dest, port)], "keys": sorted(keys)}


def evidence_kinds(records: list[dict[str, Any]], contexts: list[dict[str, Any]], baseline: Baseline | None,
                   subject: str, staging: dict[Any, list[dict[str, Any]]], beaconing: bool,
                   timeline: Any) -> tuple[frozenset[str], set[str]]:
    """The kinds of the evidence ``ChainBuilder._chain`` lists for these flows (their records, and what
    context evidence sees of each), and the key aliases, without wording a network detail.

    The same rules in the same terms as ``_chain``: each flow's network kinds and staging at its
    start time, beaconing, each flow's context evidence, then one key over many egress flows.
    """
    kinds: set[str] = set()
    for r in records:
        kinds.update(network_kinds(r, baseline, subject, bool(r.get("dst_name"))))
        for e in staging.get(r["ts"], ()):
            kinds.add(e["kind"])
    if beaconing:
        kinds.add("beaconing")
    keys: set[str] = set()
    for c in contexts:
        ctx_items, aliases = context_evidence(c, timeline)
        keys.update(aliases)
        kinds.update(e["kind"] for e in ctx_items)
    if keys and len(records) >= 3 and "key_generated_before_egress" in kinds:
        kinds.add("same_key_many_egress")
    return frozenset(kinds), keys


#: Flows whose columns ``finalize`` holds as Python values at once (~150 bytes each).
_BATCH_FLOWS = 1 << 16


def _batches(bounds: np.ndarray, size: int) -> Iterator[tuple[int, int]]:
    """Runs [g0, g1) of the groups whose flows lie at ``bounds[g]:bounds[g + 1]``, about ``size``
    flows a run (a group is never split; one bigger than ``size`` is a run of its own)."""
    groups = len(bounds) - 1
    g0 = 0
    while g0 < groups:
        g1 = int(np.searchsorted(bounds, bounds[g0] + size, side="right")) - 1
        g1 = min(max(g1, g0 + 1), groups)
        yield g0, g1
        g0 = g1


def _slim(r: dict[str, Any]) -> dict[str, Any]:
    """What context evidence needs of a record, so memory stays small."""
    return {k: r.get(k) for k in ("flow_id", "ts", "ts_end", "app", "device", "proto", "dst_ip", "dst_port",
                                  "dst_name", "l7", "bytes_out", "bytes_in", "app_state")}


def _slim_flow(r: dict[str, Any]) -> dict[str, Any]:
    """What a flow of a beaconing-only chain shows: its time and sizes (no app: no positive evidence named one)."""
    return {"flow_id": r["flow_id"], "ts": r["ts"], "ts_end": r["ts_end"], "proto": r.get("proto", ""),
            "bytes_out": r.get("bytes_out", 0), "bytes_in": r.get("bytes_in", 0)}


def _stable_argsort(major: np.ndarray, major_bound: int, minor: np.ndarray | None = None,
                    minor_bound: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``argsort`` of the keys (major, minor) -- unsigned ints below their bounds -- that keeps equal
    keys in the order they came, and the sorted keys (one number per key, equal where the keys are).

    A stable sort of a million keys costs ten times a plain sort of numbers that are all
    different: when the key and the position fit in 64 bits together, sort those instead (as
    every number is distinct, any sort gives the stable order).
    """
    n = len(major)
    key_bits = max(major_bound - 1, 0).bit_length() + max(minor_bound - 1, 0).bit_length()
    pos_bits = max(n - 1, 0).bit_length()
    key = major.astype(np.uint64)  # one array worked in place: a million flows' sort holds few copies
    key <<= np.uint64(max(minor_bound - 1, 0).bit_length())
    if minor is not None:
        key |= minor.astype(np.uint64, copy=False)
    if key_bits + pos_bits > 64:
        order = np.argsort(key, kind="stable")
        return order, key[order]
    key <<= np.uint64(pos_bits)
    key |= np.arange(n, dtype=np.uint64)
    key.sort()
    order = (key & np.uint64((1 << pos_bits) - 1)).view(np.int64)
    key >>= np.uint64(pos_bits)
    return order, key


def _split(ts: list[Any], ts_end: list[Any], lo: int, hi: int) -> list[tuple[int, int]]:
    """A key's flows ``lo:hi`` (in time order) cut where the previous flow ended more than
    ``CHAIN_WINDOW_S`` before: the (start, end) of each part."""
    parts: list[tuple[int, int]] = []
    start = lo
    for i in range(lo + 1, hi):
        if not ts[i] - ts_end[i - 1] <= CHAIN_WINDOW_S:
            parts.append((start, i))
            start = i
    parts.append((start, hi))
    return parts


class _Staging:
    """The staging evidence of each (device, subject), worked out the first time a chain asks for it
    (so a run whose keys make no chain never groups its uploads)."""

    def __init__(self, builder: ChainBuilder, sides: list[tuple], flags: np.ndarray) -> None:
        self.b, self.sides, self.flags = builder, sides, flags
        self.span: dict[int, tuple[int, int]] | None = None
        self.done: dict[tuple, dict[Any, list[dict[str, Any]]]] = {}

    def _index(self) -> None:
        """Group the uploads per (device, subject), each group's in the order they came."""
        ids: dict[tuple, int] = {}
        side_ds = np.array([ids.setdefault((s[0], s[2]), len(ids)) for s in self.sides], dtype=np.uint64)
        self.ids = ids
        up = np.flatnonzero(self.flags & _UPLOAD)
        ds = side_ds[(np.frombuffer(self.b._key, dtype=np.uint64)[up] >> np.uint64(32)).astype(np.int64)]
        # per (device, subject), uploads stay in the order they came
        order, sorted_ds = _stable_argsort(ds, len(ids))
        self.up = up[order]
        cuts = np.flatnonzero(np.concatenate(([True], sorted_ds[1:] != sorted_ds[:-1]))) if len(ds) else ds
        self.span = {int(sorted_ds[c]): (int(c), int(e)) for c, e in zip(cuts, np.append(cuts[1:], len(ds)))}

    def of(self, ds: tuple) -> dict[Any, list[dict[str, Any]]]:
        got = self.done.get(ds)
        if got is None:
            if self.span is None:
                self._index()
            lo, hi = self.span.get(self.ids.get(ds, -1), (0, 0))
            b, idx = self.b, self.up[lo:hi]
            if b._odd:
                idx = idx.tolist()
                got = _staging(list(zip(b._value_list("ts", b._ts, idx), b._value_list("bytes_out", b._bytes_out, idx))))
            else:
                got = _staging_columns(np.frombuffer(b._ts, dtype=np.float64)[idx],
                                       np.frombuffer(b._bytes_out, dtype=np.int64)[idx])
            self.done[ds] = got
        return got


def _staging(uploads: list[tuple[float, int]]) -> dict[float, list[dict[str, Any]]]:
    """Staging seen from the network: a burst after silence; sizes growing with the gap."""
    ups = sorted(uploads)
    out: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for (t0, _), (t1, size) in zip(ups, ups[1:]):
        if t1 - t0 >= SILENCE_S and size >= 10_240:
            out[t1].append(item("upload_after_silence", f"{size} bytes sent after {t1 - t0:.0f} s of silence"))
    if len(ups) >= 4:
        gaps = [b[0] - a[0] for a, b in zip(ups, ups[1:])]
        sizes = [b[1] for b in ups[1:]]
        rho = _spearman(gaps, sizes)
        if rho >= 0.8:
            for t, _ in ups[1:]:
                out[t].append(item("accumulating_uploads",
                                   f"upload size follows the time since the previous upload (Spearman {rho:.2f}, "
                                   f"{len(ups)} uploads)"))
    return out


def _spearman(x: list[float], y: list[float]) -> float:
    def ranks(v: list[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        for rank, i in enumerate(order):
            r[i] = float(rank)
        return r

    rx, ry = ranks(x), ranks(y)
    n = len(x)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx = sum((a - mx) ** 2 for a in rx) ** 0.5
    vy = sum((b - my) ** 2 for b in ry) ** 0.5
    return cov / (vx * vy) if vx and vy else 0.0



#: Up to this many values, ``_spearman``'s float sums only ever hold exact quarter-integers (|sum| <= n**3 / 4
#: < 2**51), so the integer arithmetic of ``_spearman_exact`` gives the very same float.
_EXACT_SPEARMAN_N = 208_000


def _staging_columns(ts: np.ndarray, sizes: np.ndarray) -> dict[float, list[dict[str, Any]]]:
    """``_staging`` of uploads given as columns (float64 start times, int64 sizes), with numpy.

    Equal to ``_staging(list(zip(ts.tolist(), sizes.tolist())))`` item for item: the same order
    (``lexsort`` on (time, size) is the tuples' sort), the same float subtractions, and a Spearman
    worked out in exact integers (see ``_spearman_exact``). Where that could differ (a NaN or an
    infinite time, too many uploads for exact sums) it asks ``_staging`` itself.
    """
    n = len(ts)
    if n < 2 or n > _EXACT_SPEARMAN_N or not np.isfinite(ts).all():
        return _staging(list(zip(ts.tolist(), sizes.tolist())))
    t, size = ts, sizes
    gaps = t[1:] - t[:-1]
    if not (gaps > 0).all():  # uploads mostly come in time order: then they are sorted already
        order = np.lexsort((sizes, ts))
        t, size = ts[order], sizes[order]
        gaps = t[1:] - t[:-1]
    out: dict[float, list[dict[str, Any]]] = defaultdict(list)
    after = size[1:]
    for k in np.flatnonzero((gaps >= SILENCE_S) & (after >= 10_240)).tolist():
        out[float(t[k + 1])].append(item("upload_after_silence",
                                         f"{int(after[k])} bytes sent after {float(gaps[k]):.0f} s of silence"))
    if n >= 4:
        rho = _spearman_exact(gaps, after)
        if rho >= 0.8:
            for t1 in t[1:].tolist():
                out[t1].append(item("accumulating_uploads",
                                    f"upload size follows the time since the previous upload (Spearman {rho:.2f}, "
                                    f"{n} uploads)"))
    return out


def _spearman_exact(x: np.ndarray, y: np.ndarray) -> float:
    """``_spearman(x.tolist(), y.tolist())`` for up to ``_EXACT_SPEARMAN_N`` values without NaN.

    The ranks are a permutation of 0..n-1 (a stable argsort orders as ``sorted`` does), so the
    mean is (n-1)/2 and every term (a - m)(b - m) is an exact quarter-integer: ``_spearman``'s float
    sums are exact, and equal the integer sums here divided by 4. The spread of a permutation's
    ranks is a constant, sum (2k - (n-1))**2 = n(n**2 - 1)/3.
    """
    n = len(x)
    rx, ry = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    rx[np.argsort(x, kind="stable")] = np.arange(n)
    ry[np.argsort(y, kind="stable")] = np.arange(n)
    # sum (2a - (n-1)) (2b - (n-1)) = 4 sum ab - n (n-1)**2, as sum a = sum b = n (n-1) / 2
    cov = (4 * int(np.dot(rx, ry)) - n * (n - 1) ** 2) / 4
    vx = (n * (n * n - 1) // 3 / 4) ** 0.5
    return cov / (vx * vx) if vx else 0.0


assert set(ENCRYPTED_L7) and KINDS  # both tables load at import: a typo fails fast
