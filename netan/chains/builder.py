"""Crypto-to-egress chains: group evidence per app (or client) and destination, score it.

``observe`` sees every final flow record once (pass 2 of the pipeline) and keeps
a few numbers per flow in flat arrays (``BYTES_PER_FLOW`` bytes: start and end
time, bytes sent, its chain key as two interned ids, two flags, and a handle to
read the record back); ``finalize`` groups them per key, adds the cross-flow
evidence (beaconing, staging, one key over many egress flows), reads back the
records of the flows that make a chain (``netan.chains.store``) for their
evidence details and the context evidence from the device timelines, scores
each chain with ``analytics.score_chain`` and builds the evidence graph.
Chains below ``MIN_SCORE`` are counted, not written.

Why not a small object per flow: a million-flow run then held gigabytes and
spent its time in the garbage collector, while only the flows of a chain ever
need more than their time and size.
"""
from __future__ import annotations

import hashlib
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netan import SCHEMA
from netan.chains.analytics import KINDS, score_chain, severity
from netan.chains.baseline import Baseline, subject_of
from netan.chains.beacon import beacon_score
from netan.chains.evidence import ENCRYPTED_L7, context_evidence, item, network_evidence, network_kinds
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
_STRONG = frozenset(k for k, v in KINDS.items() if v.weight >= POSITIVE_WEIGHT)


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

    def __post_init__(self) -> None:
        self._ts, self._ts_end, self._bytes_out = array("d"), array("d"), array("q")
        self._key, self._handle, self._flags = array("Q"), array("Q"), array("B")
        #: values that do not fit their column (an int time, a float size), by flow index
        self._odd: dict[tuple[str, int], Any] = {}
        # chain keys as two interned parts: (device, app, subject, port) and the destination
        self._sides: dict[tuple, int] = {}
        self._dests: dict[Any, int] = {}
        self._spool: Spool | None = None

    @classmethod
    def for_run(cls, context: Any = None, baseline_path: str | None = None) -> "ChainBuilder":
        return cls(join=context, baseline=Baseline.load(baseline_path) if baseline_path else None)

    # ---- pass 2: one record at a time ----------------------------------------------------
    def observe(self, r: dict[str, Any], handle: int | None = None) -> None:
        """Note one final flow record; ``handle`` finds it again in ``store`` (else it is spooled)."""
        subject = subject_of(r)
        get = r.get
        dest = get("dst_name") or (get("tls") or {}).get("sni") or r["dst_ip"]
        device = get("device")
        side = (device, get("app"), subject, get("dst_port", 0))
        sid = self._sides.get(side)
        if sid is None:
            sid = self._sides[side] = len(self._sides)
        did = self._dests.get(dest)
        if did is None:
            did = self._dests[dest] = len(self._dests)
        flags = 0
        for kind in network_kinds(r, self.baseline, subject, bool(get("dst_name"))):
            if kind in _STRONG:
                flags = _POSITIVE
                break
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

    def _put(self, name: str, col: array, i: int, v: Any, kind: type) -> None:
        if type(v) is kind and (kind is float or _I64_MIN <= v <= _I64_MAX):
            col.append(v)
        else:  # kept as it was, so the chain says exactly what the record said
            self._odd[(name, i)] = v
            col.append(0)

    def _value(self, name: str, col: array, i: int) -> Any:
        return self._odd.get((name, i), col[i]) if self._odd else col[i]

    # ---- several processes: one builder's flows after another's ---------------------------
    def state(self) -> dict[str, Any]:
        """What ``absorb`` needs of this builder's flows (picklable; the columns as bytes)."""
        return {"sides": list(self._sides), "dests": list(self._dests), "odd": self._odd,
                **{name: getattr(self, f"_{name}").tobytes() for name in _NAMES}}

    def absorb(self, state: dict[str, Any], handle_base: int) -> None:
        """Take another builder's flows (``state()``) as if observed here after this builder's own;
        their handles move by ``handle_base`` (where that builder's records start in ``store``)."""
        if self._spool is not None:
            raise ValueError("a builder that spools its own records cannot take another's")
        side_ids = np.array([self._sides.setdefault(s, len(self._sides)) for s in state["sides"]] or [0],
                            dtype=np.uint64)
        dest_ids = np.array([self._dests.setdefault(d, len(self._dests)) for d in state["dests"]] or [0],
                            dtype=np.uint64)
        keys = np.frombuffer(state["key"], dtype=np.uint64)
        base = len(self._flags)
        remapped = side_ids[(keys >> np.uint64(32)).astype(np.int64)] << np.uint64(32) | \
            dest_ids[(keys & np.uint64(0xFFFFFFFF)).astype(np.int64)]
        self._key.frombytes(remapped.astype(np.uint64).tobytes())
        handles = np.frombuffer(state["handle"], dtype=np.uint64) + np.uint64(handle_base)
        self._handle.frombytes(handles.tobytes())
        for name in ("ts", "ts_end", "bytes_out", "flags"):
            getattr(self, f"_{name}").frombytes(state[name])
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
        order = np.argsort(keys, kind="stable")  # per key, flows stay in the order they came
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
        del sorted_keys
        ends = np.append(starts[1:], n)
        flags = np.frombuffer(self._flags, dtype=np.uint8)
        positive = np.maximum.reduceat(flags[order] & _POSITIVE, starts) > 0
        # A key makes no chain without a positive flow or the 4 flows beaconing needs.
        wanted = np.flatnonzero(positive | (ends - starts >= 4))
        wanted = wanted[np.argsort(order[starts[wanted]], kind="stable")]  # keys in order of first sight
        sides = list(self._sides)
        dests = list(self._dests)
        staging = _Staging(self, sides, flags)
        for g in wanted.tolist():
            idx = order[starts[g]:ends[g]]
            ts_of = np.array([float(self._value("ts", self._ts, i)) for i in idx.tolist()]) if self._odd else \
                np.frombuffer(self._ts, dtype=np.float64)[idx]
            idx = idx[np.argsort(ts_of, kind="stable")].tolist()
            sid, did = divmod(int(keys[idx[0]]), 1 << 32)
            device, app, subject, port = sides[sid]
            key = (device, app, subject, dests[did], port)
            for group in _split(idx, self._value_list("ts", self._ts, idx),
                                self._value_list("ts_end", self._ts_end, idx)):
                chain = self._candidate(key, group, flags, store, staging.of((device, subject)))
                if chain is None:
                    continue
                if chain["score"] < self.min_score:
                    self.below_threshold += 1
                    continue
                chains.append(chain)
        chains.sort(key=lambda c: (-c["score"], c["ts_start"], c["chain_id"]))
        return chains

    def _value_list(self, name: str, col: array, idx: list[int]) -> list[Any]:
        return [self._value(name, col, i) for i in idx]

    def _candidate(self, key: tuple, idx: list[int], flags: np.ndarray, store: RecordStore,
                   staging: dict[Any, list[dict]]) -> dict[str, Any] | None:
        """The chain of one time-split group of a key's flows, or None."""
        positive = [i for i in idx if flags[i] & _POSITIVE]
        beacon = beacon_score(self._value_list("ts", self._ts, idx), self._value_list("bytes_out", self._bytes_out, idx))
        if positive:
            records = store.get(self._handle[i] for i in positive)
            slims = [_slim(r) for r in records]
        elif beacon is not None and beacon.score >= 0.8:
            records = store.get(self._handle[i] for i in idx)  # regular contact alone is worth a chain (RITA's premise)
            slims = [_slim_flow(r) for r in records]
        else:
            return None
        subject = key[2]
        flows = [_Flow(r["flow_id"], r["ts"], r["ts_end"],
                       network_evidence(r, self.baseline, subject, bool(r.get("dst_name"))), slim)
                 for r, slim in zip(records, slims)]
        return self._chain(key, flows, beacon, staging)

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
        timeline = self.join.ctx.timeline(device) if self.join is not None and device else None
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
        first = suspicious[0]
        cid = "C" + hashlib.blake2b(f"{subject}|{dest}|{port}|{first.ts:.6f}".encode(), digest_size=8).hexdigest()
        chain = {
            "schema": SCHEMA, "chain_id": cid, "device": device, "app": app, "score": score,
            "severity": severity(score), "analytics": analytics,
            "ts_start": round(min(f.ts for f in suspicious), 6), "ts_end": round(max(f.ts_end for f in suspicious), 6),
            "flows": [f.flow_id for f in suspicious],
            "destinations": [f"{dest}:{port}" if port else str(dest)], "keys": sorted(keys), "evidence": items,
            "subject": subject, "analytic_scores": per,
            "based_on": {"network": True, "context": timeline is not None, "baseline": self.baseline is not None},
        }
        self.graph.add_chain(chain, [f.record for f in suspicious if f.record is not None])
        return chain

    def write_graphml(self, path: str) -> None:
        self.graph.write_graphml(path)


def _slim(r: dict[str, Any]) -> dict[str, Any]:
    """What context evidence needs of a record, so memory stays small."""
    return {k: r.get(k) for k in ("flow_id", "ts", "ts_end", "app", "device", "proto", "dst_ip", "dst_port",
                                  "dst_name", "l7", "bytes_out", "bytes_in", "app_state")}


def _slim_flow(r: dict[str, Any]) -> dict[str, Any]:
    """What a flow of a beaconing-only chain shows: its time and sizes (no app: no positive evidence named one)."""
    return {"flow_id": r["flow_id"], "ts": r["ts"], "ts_end": r["ts_end"], "proto": r.get("proto", ""),
            "bytes_out": r.get("bytes_out", 0), "bytes_in": r.get("bytes_in", 0)}


def _split(idx: list[int], ts: list[Any], ts_end: list[Any]) -> list[list[int]]:
    """A key's flows (in time order) cut where the previous flow ended more than ``CHAIN_WINDOW_S`` before."""
    groups: list[list[int]] = []
    last_end: Any = None
    for i, t, end in zip(idx, ts, ts_end):
        if groups and t - last_end <= CHAIN_WINDOW_S:
            groups[-1].append(i)
        else:
            groups.append([i])
        last_end = end
    return groups


class _Staging:
    """The staging evidence of each (device, subject), worked out the first time a chain asks for it."""

    def __init__(self, builder: ChainBuilder, sides: list[tuple], flags: np.ndarray) -> None:
        self.b = builder
        ids: dict[tuple, int] = {}
        side_ds = np.array([ids.setdefault((s[0], s[2]), len(ids)) for s in sides], dtype=np.int64)
        self.ids = ids
        up = np.flatnonzero(flags & _UPLOAD)
        ds = side_ds[(np.frombuffer(builder._key, dtype=np.uint64)[up] >> np.uint64(32)).astype(np.int64)]
        order = np.argsort(ds, kind="stable")  # per (device, subject), uploads stay in the order they came
        self.up = up[order]
        sorted_ds = ds[order]
        cuts = np.flatnonzero(np.concatenate(([True], sorted_ds[1:] != sorted_ds[:-1]))) if len(ds) else ds
        self.span = {int(sorted_ds[c]): (int(c), int(e)) for c, e in zip(cuts, np.append(cuts[1:], len(ds)))}
        self.done: dict[tuple, dict[Any, list[dict[str, Any]]]] = {}

    def of(self, ds: tuple) -> dict[Any, list[dict[str, Any]]]:
        got = self.done.get(ds)
        if got is None:
            lo, hi = self.span.get(self.ids.get(ds, -1), (0, 0))
            idx = self.up[lo:hi].tolist()
            b = self.b
            got = self.done[ds] = _staging(list(zip(b._value_list("ts", b._ts, idx),
                                                    b._value_list("bytes_out", b._bytes_out, idx))))
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


assert set(ENCRYPTED_L7) and KINDS  # both tables load at import: a typo fails fast
