"""Findings across flows: keystream reuse and repeated blocks between connections, and passive DNS.

Contract: ``CrossFlowAnalyzer.observe(record, sample)`` is called once per
finished flow in flow-end order; ``finalize(record)`` once per record in a
second pass, returning the fields to add or update: always ``dst_name`` (the
name the client resolved for ``dst_ip``, from DNS answers seen in the
capture, or None), and ``framing``/``framing_evidence`` when a cross-flow
finding involves the flow. State is bounded by ``CrossFlowConfig`` (LRU caps)
whatever the capture size; it holds message heads, never writes them out.
"""
from __future__ import annotations

import logging
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from netan.analyzers import framing
from netan.sample import IN, OUT, FlowSample

__all__ = ["CrossFlowConfig", "CrossFlowAnalyzer"]

log = logging.getLogger(__name__)
#: a per-message header (length field, counter) in front of a repeated ciphertext prefix
MAX_HEADER = 8

# Flows whose encryption (or lack of it) the protocol explains: not compared.
_SKIP_L7 = frozenset(("tls", "quic", "dtls", "ssh", "dns", "rtp", "stun", "wireguard"))


@dataclass(frozen=True, slots=True)
class CrossFlowConfig:
    max_destinations: int = 4096  # (client, destination) pairs with stored heads
    heads_per_destination: int = 4  # recent flows remembered per pair
    head_bytes: int = 512  # bytes of each first message kept
    max_addresses: int = 65536  # passive-DNS addresses
    names_per_address: int = 4
    max_flagged_flows: int = 65536  # flows with pending cross-flow findings
    pooled_units: int = 16  # ciphertext-like message heads pooled per (client, destination)
    pooled_head: int = 64  # bytes kept of each pooled message (a length field is near its start)
    max_tunnel_groups: int = 4096  # (client, parent domain) pairs with encoded query names
    tunnel_queries: int = 3  # distinct encoded names under one parent before it counts
    evidence_per_flow: int = 8
    # A DNS answer can be logged just after the connection it explains
    # (resolver and flow timestamps come from different packets).
    dns_slack: float = 2.0


@dataclass(frozen=True, slots=True)
class _Head:
    flow_id: str
    ts: float
    direction: int
    data: bytes


@dataclass(slots=True)
class _Name:
    name: str
    first: float
    last: float
    ttl: int


class CrossFlowAnalyzer:
    """Bounded memory of recent flows per (client, destination) and of DNS answers."""

    def __init__(self, config: CrossFlowConfig | None = None) -> None:
        self.config = config or CrossFlowConfig()
        self._heads: OrderedDict[tuple[str, str, int, str], deque[_Head]] = OrderedDict()
        self._names: OrderedDict[str, list[_Name]] = OrderedDict()
        self._flagged: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        # (client, parent) -> (distinct encoded names, flow ids, decoded bytes, encodings)
        self._tunnels: OrderedDict[tuple[str, str], tuple[set[str], list[str], list[int], set[str]]] = OrderedDict()
        # (client, destination) -> recent ciphertext-like message heads: (flow id, unit),
        # and the latest verdict over them: flow id -> evidence.
        self._pools: OrderedDict[tuple[str, str, int, str], deque[tuple[str, framing.Unit]]] = OrderedDict()
        self._pooled: dict[tuple[str, str, int, str], dict[str, list[dict[str, Any]]]] = {}
        self.evicted = {"destinations": 0, "addresses": 0, "flagged": 0, "tunnel_groups": 0}

    # ---- passive DNS ---------------------------------------------------

    def _learn_name(self, address: str, name: str, ts: float, ttl: int) -> None:
        cfg = self.config
        entries = self._names.get(address)
        if entries is None:
            entries = []
            self._names[address] = entries
            if len(self._names) > cfg.max_addresses:
                self._names.popitem(last=False)
                self.evicted["addresses"] += 1
        else:
            self._names.move_to_end(address)
        for e in entries:
            if e.name == name:
                e.first, e.last, e.ttl = min(e.first, ts), max(e.last, ts), ttl
                return
        entries.append(_Name(name, ts, ts, ttl))
        if len(entries) > cfg.names_per_address:
            entries.sort(key=lambda e: e.last)
            del entries[0]

    def name_for(self, address: str, ts: float) -> str | None:
        """The name most recently resolved to ``address`` before ``ts`` (else the earliest after)."""
        entries = self._names.get(address)
        if not entries:
            return None
        before = [e for e in entries if e.first <= ts + self.config.dns_slack]
        if before:
            return max(before, key=lambda e: min(e.last, ts + self.config.dns_slack)).name
        return min(entries, key=lambda e: e.first).name

    # ---- cross-flow framing -------------------------------------------

    def _flag(self, flow_id: str, evidence: dict[str, Any]) -> None:
        cfg = self.config
        items = self._flagged.get(flow_id)
        if items is None:
            items = []
            self._flagged[flow_id] = items
            if len(self._flagged) > cfg.max_flagged_flows:
                self._flagged.popitem(last=False)
                self.evicted["flagged"] += 1
        if len(items) < cfg.evidence_per_flow and evidence not in items:
            items.append(evidence)

    def _units_of(self, record: dict[str, Any], sample: FlowSample) -> list[framing.Unit]:
        if record.get("l7", "unknown") == "http":
            from netan.analyzers import http as http_mod

            return http_mod.body_units(sample)
        return framing.units_from_sample(sample)

    def _heads_of(self, record: dict[str, Any], units: list[framing.Unit]) -> list[_Head]:
        """First ciphertext-like unit of each direction (bodies for HTTP)."""
        heads = []
        for direction in (OUT, IN):
            u = next((u for u in units if u.direction == direction and u.data), None)
            if u is None or framing.explained_format(u.data) is not None:
                continue
            data = u.data[: self.config.head_bytes]
            if framing.looks_random(data):
                heads.append(_Head(str(record.get("flow_id", "")), float(record.get("ts", 0.0)), direction, data))
        return heads

    def observe(self, record: dict[str, Any], sample: FlowSample) -> None:
        """Learn from one finished flow; compare it with earlier flows to the same place."""
        dns = record.get("dns")
        if isinstance(dns, dict):
            for r in (dns.get("resolved") or [])[:64]:
                if isinstance(r, dict) and isinstance(r.get("address"), str) and isinstance(r.get("name"), str):
                    self._learn_name(r["address"], r["name"], float(record.get("ts", 0.0)), int(r.get("ttl") or 0))
        if isinstance(dns, dict):
            self._observe_query_names(record, dns)
        if record.get("l7") in _SKIP_L7:
            return
        from netan.analyzers.protocols import local_only

        if local_only(sample):
            return  # multicast discovery repeats itself by design; it is not egress
        key = (str(record.get("src_ip", "")), str(record.get("dst_ip", "")), int(record.get("dst_port", 0) or 0), str(record.get("proto", "")))
        try:
            units = self._units_of(record, sample)
            heads = self._heads_of(record, units)
            self._pool(key, str(record.get("flow_id", "")), units)
        except Exception:  # never let one hostile flow stop the pass
            log.debug("cross-flow heads failed for %s", record.get("flow_id"), exc_info=True)
            return
        if not heads:
            return
        stored = self._heads.get(key)
        if stored is None:
            stored = deque(maxlen=self.config.heads_per_destination * 2)
            self._heads[key] = stored
            if len(self._heads) > self.config.max_destinations:
                self._heads.popitem(last=False)
                self.evicted["destinations"] += 1
        else:
            self._heads.move_to_end(key)
        for new in heads:
            for old in stored:
                if old.direction != new.direction or old.flow_id == new.flow_id:
                    continue
                self._compare(old, new, key)
        stored.extend(heads)

    def _observe_query_names(self, record: dict[str, Any], dns: dict[str, Any]) -> None:
        """DNS tunnelling / exfiltration: encoded random-looking data in query names.

        One name is weak evidence (hash-like CDN labels exist); several distinct
        names under one parent from one client, each carrying 20+ random-looking
        decoded bytes, is the shape of a tunnel (RFC-less, but see iodine,
        dnscat2, and the MITRE T1048/T1071.004 procedure examples).
        """
        from netan.analyzers.dns import encoded_subdomain

        client = str(record.get("src_ip", ""))
        flow_id = str(record.get("flow_id", ""))
        for q in (dns.get("queries") or [])[:16]:
            name = q.get("name") if isinstance(q, dict) else None
            if not isinstance(name, str):
                continue
            got = encoded_subdomain(name)
            if got is None:
                continue
            parent, encoding, raw = got
            if not (framing.looks_random(raw, min_len=20) or framing.distinct_enough(raw)):
                continue
            key = (client, parent)
            group = self._tunnels.get(key)
            if group is None:
                group = (set(), [], [], set())
                self._tunnels[key] = group
                if len(self._tunnels) > self.config.max_tunnel_groups:
                    self._tunnels.popitem(last=False)
                    self.evicted["tunnel_groups"] += 1
            else:
                self._tunnels.move_to_end(key)
            names, flows, sizes, encodings = group
            if len(names) < 64:
                names.add(name)
            if flow_id not in flows and len(flows) < 16:
                flows.append(flow_id)
            if len(sizes) < 64:
                sizes.append(len(raw))
            encodings.add(encoding)
            if len(names) >= self.config.tunnel_queries:
                ev = {
                    "finding": "encoded_ciphertext",
                    "direction": "out",
                    "detail": f"{len(names)} distinct query names under {parent} carry {'/'.join(sorted(encodings))}-encoded random-looking data (DNS tunnelling)",
                    "scope": "flows",
                    "parent_domain": parent,
                    "queries": len(names),
                    "decoded_bytes": sum(sizes),
                }
                for fid in flows:
                    self._flag(fid, ev)

    def _pool(self, key: tuple[str, str, int, str], flow_id: str, units: list[framing.Unit]) -> None:
        """Length-prefix and block-alignment tests over messages of separate flows."""
        cfg = self.config
        mine = []
        for direction in (framing.OUT, framing.IN):
            picked = [u for u in units if u.direction == direction and u.complete and u.data
                      and framing.explained_format(u.data) is None and framing.looks_random(u.data)][:2]
            mine += [framing.Unit(u.direction, 0, u.length, u.data[: cfg.pooled_head], True, 0, u.source) for u in picked]
        if not mine:
            return
        pool = self._pools.get(key)
        if pool is None:
            pool = deque(maxlen=cfg.pooled_units)
            self._pools[key] = pool
            if len(self._pools) > cfg.max_destinations:
                old_key, _ = self._pools.popitem(last=False)
                self._settle(old_key, set())
                self.evicted["destinations"] += 1
        else:
            self._pools.move_to_end(key)
        pool.extend((flow_id, u) for u in mine)
        # Flows that left the pool keep the last verdict that included them.
        self._settle(key, {fid for fid, _ in pool})
        verdict: dict[str, list[dict[str, Any]]] = {}
        for direction in (framing.OUT, framing.IN):
            entries = [(fid, u) for fid, u in pool if u.direction == direction]
            flows = list(dict.fromkeys(fid for fid, _ in entries))
            if len(flows) < 2:
                continue  # one flow alone: the per-flow analysis already judged it
            pooled = [framing.Unit(u.direction, i, u.length, u.data, True, 0, u.source) for i, (_, u) in enumerate(entries)]
            for ev in framing.pooled_findings(pooled):
                item = ev.to_dict()
                item.update(scope="flows", flows=len(flows), detail=f"{item['detail']} ({len(flows)} flows to {key[1]}:{key[2]}/{key[3]})")
                for fid in flows:
                    verdict.setdefault(fid, []).append(item)
        self._pooled[key] = verdict

    def _settle(self, key: tuple[str, str, int, str], still_pooled: set[str]) -> None:
        """Make the latest pooled verdict final for flows no longer in the pool."""
        verdict = self._pooled.get(key)
        if not verdict:
            if verdict is not None and not still_pooled:
                del self._pooled[key]
            return
        for fid in [f for f in verdict if f not in still_pooled]:
            for item in verdict.pop(fid):
                self._flag(fid, item)
        if not still_pooled:
            del self._pooled[key]

    def _compare(self, old: _Head, new: _Head, key: tuple[str, str, int, str]) -> None:
        dname = framing.direction_name(new.direction)
        where = f"{key[1]}:{key[2]}/{key[3]}"
        if old.data == new.data:
            return  # the same bytes sent again: a replay or cache, not a key or IV finding
        st = framing.keystream_test(old.data, new.data)
        if st:
            ev = {"finding": "keystream_reuse", "direction": dname, "detail": f"first message XORs to plaintext-like bytes with flow {old.flow_id} from the same client to {where} (keystream restarted)", "scope": "flows", "other_flow": old.flow_id, **st}
            self._flag(new.flow_id, ev)
            self._flag(old.flow_id, {**ev, "other_flow": new.flow_id})
            return
        # The run may start after a small header that differs per message (a length
        # field, a sequence number): look at the same offsets, up to MAX_HEADER, in both.
        run, at = max((framing.shared_prefix_run(old.data[k:], new.data[k:]), k) for k in range(MAX_HEADER + 1))
        # Across connections a static client token may repeat: ask for three blocks.
        if run >= 48:
            ev = {"finding": "repeated_blocks", "direction": dname, "detail": f"first message has the same {run} random-looking bytes at offset {at} as flow {old.flow_id} to {where} (static key and IV)", "scope": "flows", "shared_bytes": run, "offset": at, "other_flow": old.flow_id}
            self._flag(new.flow_id, ev)
            self._flag(old.flow_id, {**ev, "other_flow": new.flow_id})

    def finalize(self, record: dict[str, Any]) -> dict[str, Any]:
        """Fields to add or update on ``record`` (second pass)."""
        updates: dict[str, Any] = {"dst_name": self.name_for(str(record.get("dst_ip", "")), float(record.get("ts", 0.0)))}
        flow_id = str(record.get("flow_id", ""))
        key = (str(record.get("src_ip", "")), str(record.get("dst_ip", "")), int(record.get("dst_port", 0) or 0), str(record.get("proto", "")))
        items = list(self._flagged.get(flow_id) or []) + list(self._pooled.get(key, {}).get(flow_id) or [])
        if items:
            names = set(record.get("framing") or []) | {e["finding"] for e in items}
            updates["framing"] = [f for f in framing.FINDINGS if f in names]
            existing = list(record.get("framing_evidence") or [])
            updates["framing_evidence"] = existing + [e for e in items if e not in existing]
        return updates
