"""Crypto-to-egress chains: group evidence per app (or client) and destination, score it.

``observe`` sees every final flow record once (pass 2 of the pipeline) and keeps
only a small summary per flow; ``finalize`` adds the cross-flow evidence
(beaconing, staging, one key over many egress flows), the context evidence from
the device timelines, scores each chain with ``analytics.score_chain`` and
builds the evidence graph. Chains below ``MIN_SCORE`` are counted, not written.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from netan import SCHEMA
from netan.chains.analytics import KINDS, score_chain, severity
from netan.chains.baseline import Baseline, subject_of
from netan.chains.beacon import beacon_score
from netan.chains.evidence import ENCRYPTED_L7, context_evidence, item, network_evidence
from netan.chains.graph import EvidenceGraph

__all__ = ["ChainBuilder", "MIN_SCORE"]

MIN_SCORE = 20
SILENCE_S = 1800.0
#: A chain's flows are split when the subject is quiet for this long at that destination.
CHAIN_WINDOW_S = 6 * 3600.0


@dataclass
class _Flow:
    flow_id: str
    ts: float
    ts_end: float
    bytes_out: int
    bytes_in: int
    proto: str
    evidence: list[dict[str, Any]]
    record: dict[str, Any] | None  # kept only for flows with evidence (context is queried in finalize)


@dataclass
class ChainBuilder:
    join: Any = None
    baseline: Baseline | None = None
    min_score: int = MIN_SCORE
    by_dest: dict[tuple, list[_Flow]] = field(default_factory=lambda: defaultdict(list))
    uploads: dict[tuple, list[tuple[float, int]]] = field(default_factory=lambda: defaultdict(list))
    dns_names: set[str] = field(default_factory=set)
    below_threshold: int = 0
    graph: EvidenceGraph = field(default_factory=EvidenceGraph)

    @classmethod
    def for_run(cls, context: Any = None, baseline_path: str | None = None) -> "ChainBuilder":
        return cls(join=context, baseline=Baseline.load(baseline_path) if baseline_path else None)

    # ---- pass 2: one record at a time ----------------------------------------------------
    def observe(self, r: dict[str, Any]) -> None:
        subject = subject_of(r)
        dest = r.get("dst_name") or (r.get("tls") or {}).get("sni") or r["dst_ip"]
        key = (r.get("device"), r.get("app"), subject, dest, r.get("dst_port", 0))
        named = bool(r.get("dst_name"))
        ev = network_evidence(r, self.baseline, subject, named)
        # A flow starts or joins a chain only on network evidence of some weight: a
        # direct-IP contact alone, or a gap, is context for a chain, not a reason for one.
        positive = [e for e in ev if e["weight"] >= 10]
        self.by_dest[key].append(_Flow(r["flow_id"], r["ts"], r["ts_end"], r.get("bytes_out", 0),
                                       r.get("bytes_in", 0), r.get("proto", ""), ev,
                                       _slim(r) if positive else None))
        if r.get("bytes_out", 0) >= 1024 and r.get("l7") not in ("dns",):
            self.uploads[(r.get("device"), subject)].append((r["ts"], r.get("bytes_out", 0)))

    # ---- the end: chains --------------------------------------------------------------
    def finalize(self) -> list[dict[str, Any]]:
        chains: list[dict[str, Any]] = []
        staging = {k: _staging(v) for k, v in self.uploads.items()}
        for key, flows in self.by_dest.items():
            for group in _split(sorted(flows, key=lambda f: f.ts)):
                chain = self._chain(key, group, staging.get((key[0], key[2]), {}))
                if chain is None:
                    continue
                if chain["score"] < self.min_score:
                    self.below_threshold += 1
                    continue
                chains.append(chain)
        chains.sort(key=lambda c: (-c["score"], c["ts_start"], c["chain_id"]))
        return chains

    def _chain(self, key: tuple, flows: list[_Flow], staging: dict[float, list[dict]]) -> dict[str, Any] | None:
        device, app, subject, dest, port = key
        suspicious = [f for f in flows if f.record is not None]
        beacon = beacon_score([f.ts for f in flows], [f.bytes_out for f in flows])
        if not suspicious and beacon is not None and beacon.score >= 0.8:
            suspicious = flows  # regular contact alone is worth a chain (RITA's premise)
            for f in flows:
                f.record = f.record or _slim_flow(f)
        if not suspicious:
            return None
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


def _slim_flow(f: _Flow) -> dict[str, Any]:
    return {"flow_id": f.flow_id, "ts": f.ts, "ts_end": f.ts_end, "proto": f.proto, "bytes_out": f.bytes_out,
            "bytes_in": f.bytes_in}


def _split(flows: list[_Flow]) -> list[list[_Flow]]:
    groups: list[list[_Flow]] = []
    for f in flows:
        if groups and f.ts - groups[-1][-1].ts_end <= CHAIN_WINDOW_S:
            groups[-1].append(f)
        else:
            groups.append([f])
    return groups


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
