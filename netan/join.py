"""Flows x device timelines: which device, which app, in which state.

Two passes over the flow records (dicts per netan/schema.py):

1. ``observe(record)`` for every record: resolves the originating device and
   remembers each TCP SYN (``record["ts"]``, capture clock) per device and
   destination.
2. ``estimate_skew()`` once: per device, the offset between its clock and the
   capture's from its connect events vs the SYNs it sent (netan.context.skew);
   per PCAPdroid file likewise. Then connect events are assigned to flows.
3. ``annotate(record)`` per record: returns the fields to set (``device``,
   ``app``, ``attribution``, ``app_state`` and extras). Never raises on odd records.

Rules (issue 5): device by originator MAC against the inventory, else by IP and
time against address bindings. App by connect event (destination and port,
nearest in time on the skew-corrected clock), else PCAPdroid record
(destination, port, protocol, time and bytes: its source side is rewritten in
VPN mode), else DNS event (flow destination among the addresses the app
resolved, or the flow's name). Several apps fitting equally is reported as
``attribution="ambiguous"`` with ``app_candidates``, never guessed. UDP is not
in connect logs (Android logs TCP connect() only), so UDP flows rely on DNS or
PCAPdroid, and say nothing when neither covers them.
"""
from __future__ import annotations

import bisect
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from netan.context._util import norm_ip
from netan.context.loader import ContextSet
from netan.context.model import PcapdroidConnection
from netan.context.skew import SkewEstimate, estimate_offset
from netan.context.timeline import DeviceTimeline, contract_state

__all__ = ["ContextJoin", "ANNOTATION_FIELDS"]

log = logging.getLogger(__name__)

#: every key annotate() returns, always present (None when not known)
ANNOTATION_FIELDS = (
    "device", "app", "attribution", "app_state",
    "device_detail", "attribution_detail", "app_candidates", "app_uid", "app_state_detail",
    "context_skew_s", "user_interaction_s_before", "screen", "keyguard",
)


@dataclass(frozen=True, slots=True)
class _Match:
    """A precomputed connect-event verdict for one flow."""

    packages: tuple[str, ...]  # one = attributed, several = ambiguous
    dt: float | None  # event minus SYN after skew correction, seconds
    how: str


def _fkey(record: dict[str, Any]) -> tuple:
    fid = record.get("flow_id")
    if fid:
        return ("id", fid)
    return (record.get("ts"), record.get("src_ip"), record.get("src_port"), record.get("dst_ip"),
            record.get("dst_port"), record.get("proto"))


_ip = lru_cache(maxsize=65536)(norm_ip)


_FIELD_TYPES = (("src_ip", str), ("dst_ip", str), ("src_mac", str), ("proto", str), ("flow_id", str),
                ("src_port", int), ("dst_port", int))


def _normalised(record: dict[str, Any]) -> dict[str, Any]:
    """The record with canonical address text (as the context importers write it);
    a key field of the wrong type reads as absent, so odd records cost nothing."""
    fixes: dict[str, Any] = {}
    for name, kind in _FIELD_TYPES:
        v = record.get(name)
        if v is not None and (not isinstance(v, kind) or isinstance(v, bool)):
            fixes[name] = None
    for name in ("src_ip", "dst_ip"):
        v = fixes.get(name, record.get(name))
        if isinstance(v, str):
            n = _ip(v)
            if n and n != v:
                fixes[name] = n
    return {**record, **fixes} if fixes else record


def _is_syn(record: dict[str, Any]) -> bool:
    """The originator's SYN was seen: the engine's ``tcp.syn``, or for flows read from
    Zeek a conn.log ``history`` that starts with ``S`` (a SYN without ACK from the
    originator was the first packet, so ``ts`` is its time)."""
    if record.get("proto") != "tcp":
        return False
    tcp = record.get("tcp")
    if isinstance(tcp, dict):
        return bool(tcp.get("syn"))
    history = record.get("history")
    return isinstance(history, str) and history.startswith("S")


def _syn_time(record: dict[str, Any]) -> Any:
    """The SYN's capture time: ``tcp.syn_ts`` when the engine gives it, else the flow start."""
    tcp = record.get("tcp")
    syn_ts = tcp.get("syn_ts") if isinstance(tcp, dict) else None
    return syn_ts if isinstance(syn_ts, (int, float)) and not isinstance(syn_ts, bool) else record.get("ts")


def _query_names(record: dict[str, Any]) -> list[str]:
    """Names asked in a DNS flow (``record["dns"]["queries"][].name``)."""
    dns = record.get("dns")
    queries = dns.get("queries") if isinstance(dns, dict) else None
    if not isinstance(queries, list):
        return []
    out = []
    for q in queries[:16]:
        name = q.get("name") if isinstance(q, dict) else None
        if isinstance(name, str) and name:
            out.append(name.rstrip(".").lower())
    return sorted(set(out))


def _names(record: dict[str, Any]) -> list[str]:
    out: list[str] = []
    name = record.get("dst_name")
    if isinstance(name, str):
        out.append(name)
    elif isinstance(name, (list, tuple)):
        out.extend(n for n in name if isinstance(n, str))
    tls = record.get("tls")
    if isinstance(tls, dict) and isinstance(tls.get("sni"), str):
        out.append(tls["sni"])
    return [n.rstrip(".").lower() for n in out if n]


class ContextJoin:
    """Joins flow records with a ContextSet; see the module docstring for the passes."""

    def __init__(
        self,
        ctx: ContextSet,
        *,
        connect_tolerance_s: float = 2.0,
        dns_window_s: float = 900.0,
        pcapdroid_tolerance_s: float = 3.0,
        max_skew_s: float = 900.0,
    ) -> None:
        self.ctx = ctx
        self.connect_tolerance_s = connect_tolerance_s
        self.dns_window_s = dns_window_s
        self.pcapdroid_tolerance_s = pcapdroid_tolerance_s
        self.max_skew_s = max_skew_s
        self._syns: dict[str, dict[tuple[str, int], list[tuple[float, tuple]]]] = defaultdict(
            lambda: defaultdict(list))
        self._all_syns: dict[tuple[str, int], list[float]] = defaultdict(list)
        self._observed = 0
        self._skew: dict[str, SkewEstimate] = {}
        self._pd_skew: dict[str, SkewEstimate] = {}
        self._pd_device: dict[str, str] = {}
        self._assign: dict[tuple, _Match] = {}
        self._estimated = False
        self._syn_count = 0
        self._syn_count_at_estimate = 0
        self._pending_syns: list[tuple] = []
        # (proto, dst, port) -> source file -> connections sorted by start (device clock of that file)
        self._pd_index: dict[tuple, dict[str, tuple[list[float], list[PcapdroidConnection]]]] = {}
        grouped: dict[tuple, dict[str, list[PcapdroidConnection]]] = defaultdict(lambda: defaultdict(list))
        for conn in ctx.pcapdroid:
            grouped[(conn.proto, conn.dst_ip, conn.dst_port)][conn.source].append(conn)
        for key, by_src in grouped.items():
            self._pd_index[key] = {}
            for src, conns in by_src.items():
                conns.sort(key=lambda c: c.ts_start)
                self._pd_index[key][src] = ([c.ts_start for c in conns], conns)
        self._stats: Counter[str] = Counter()
        self._per_device: dict[str, Counter[str]] = defaultdict(Counter)

    # ------------------------------------------------------------------ pass 1

    def _device(self, record: dict[str, Any]) -> tuple[str | None, str]:
        mac = record.get("src_mac")
        dev = self.ctx.device_for_mac(mac) if mac else None
        if dev is not None:
            return dev, "mac"
        ip, ts = record.get("src_ip"), record.get("ts")
        if isinstance(ip, str) and isinstance(ts, (int, float)):
            dev, how, _ = self.ctx.device_for_ip(ip, float(ts))
            if dev is not None:
                return dev, how
            if how:
                return None, how
        return None, "mac_not_in_inventory" if mac else "no_binding"

    def observe(self, record: dict[str, Any]) -> None:
        """First pass: remember SYN times per device and destination."""
        self._observed += 1
        record = _normalised(record)
        if not _is_syn(record):
            return
        ts, dst, port = _syn_time(record), record.get("dst_ip"), record.get("dst_port")
        if not isinstance(ts, (int, float)) or not isinstance(dst, str) or not isinstance(port, int):
            return
        self._all_syns[(dst, port)].append(float(ts))
        self._syn_count += 1
        # the device is resolved at estimate time: DHCP bindings from the capture
        # (ContextSet.add_bindings) may arrive after flows that need them
        self._pending_syns.append((float(ts), record.get("src_mac"), record.get("src_ip"), record.get("ts"),
                                   (dst, port), _fkey(record)))
        # interleaved observe/annotate (live): re-estimate lazily, only when the
        # evidence has grown by a quarter, so the cost stays amortised linear
        if self._syn_count > max(64, 1.25 * self._syn_count_at_estimate):
            self._estimated = False

    # ------------------------------------------------------------------ skew

    def estimate_skew(self) -> dict[str, dict[str, Any]]:
        """Per device {offset_s, spread_s, matches, ...}; applies offsets to the timelines."""
        out: dict[str, dict[str, Any]] = {}
        self._assign.clear()
        still: list[tuple] = []
        for item in self._pending_syns:
            syn_ts, mac, ip, ts, key, fk = item
            dev, _ = self._device({"src_mac": mac, "src_ip": ip, "ts": ts})
            if dev is not None:
                self._syns[dev][key].append((syn_ts, fk))
            else:
                still.append(item)  # a binding may still come (live mode)
        self._pending_syns = still
        for keys in self._syns.values():
            for lst in keys.values():
                lst.sort(key=lambda x: x[0])  # flows end (and are observed) out of SYN order
        for dev, tl in self.ctx.timelines.items():
            keys = tl.connect_keys()
            if not keys:
                continue
            syns = self._syns.get(dev, {})
            est = estimate_offset(
                {k: [e.ts for e in evs] for k, evs in keys.items()},
                {k: [t for t, _ in v] for k, v in syns.items()},
                max_skew_s=self.max_skew_s,
            )
            self._skew[dev] = est
            if est.status == "ok":
                tl.skew_s = est.offset_s
            out[dev] = est.as_dict()
            self._assign_connects(tl, syns, est)
        by_source: dict[str, list[PcapdroidConnection]] = defaultdict(list)
        for conn in self.ctx.pcapdroid:
            if conn.proto == "tcp":
                by_source[conn.source].append(conn)
        for source, conns in by_source.items():
            events: dict[tuple[str, int], list[float]] = defaultdict(list)
            for c in conns:
                events[(c.dst_ip, c.dst_port)].append(c.ts_start)
            est = estimate_offset(events, self._all_syns, max_skew_s=self.max_skew_s)
            self._pd_skew[source] = est
            if est.status == "ok":
                self._bind_pcapdroid_source(source, conns, est)
        self._estimated = True
        self._syn_count_at_estimate = self._syn_count
        return out

    def _bind_pcapdroid_source(self, source: str, conns: list[PcapdroidConnection], est: SkewEstimate) -> None:
        """A PCAPdroid file names no device; the device whose SYNs its connections
        match (90 % or more of at least two) is the phone it ran on."""
        tol = self._tolerance(est)
        hits: Counter[str] = Counter()
        for c in conns:
            t = c.ts_start - est.offset_s
            for dev, keys in self._syns.items():
                times = keys.get((c.dst_ip, c.dst_port))
                if times and any(abs(ts - t) <= tol for ts, _ in times[bisect.bisect_left(times, t - tol, key=lambda x: x[0]):][:8]):
                    hits[dev] += 1
        total = sum(hits.values())
        if total >= 2:
            dev, n = hits.most_common(1)[0]
            if n >= 0.9 * total:
                self._pd_device[source] = dev

    def _tolerance(self, est: SkewEstimate | None) -> float:
        spread = est.spread_s if est is not None and est.spread_s is not None else 0.0
        return self.connect_tolerance_s + 3.0 * spread

    def _assign_connects(self, tl: DeviceTimeline, syns: dict, est: SkewEstimate) -> None:
        """Match connect events to SYNs per destination, in time components.

        Within a component (items closer than the tolerance), one package means
        every SYN near an event belongs to it; several packages are matched one to
        one in time order only when counts agree and their events are far enough
        apart that clock jitter cannot swap them; otherwise the flows are ambiguous.
        """
        tol = self._tolerance(est)
        margin = max(0.25, 3.0 * (est.spread_s or 0.0))
        for key, flows in syns.items():
            events = tl.connects_to(*key)
            if not events:
                continue
            items = sorted([(tl.to_capture(e.ts), 0, e.package) for e in events]
                           + [(t, 1, fk) for t, fk in flows], key=lambda x: (x[0], x[1]))
            comp: list = []
            for item in items + [None]:
                if item is not None and (not comp or item[0] - comp[-1][0] <= tol):
                    comp.append(item)
                    continue
                self._resolve_component(comp, tol, margin)
                comp = [item] if item is not None else []

    def _resolve_component(self, comp: list, tol: float, margin: float) -> None:
        evs = [(t, pkg) for t, kind, pkg in comp if kind == 0]
        fls = [(t, fk) for t, kind, fk in comp if kind == 1]
        if not evs or not fls:
            return
        pkgs = {p for _, p in evs}
        if len(pkgs) > 1 and len(evs) == len(fls):
            safe = all(b[0] - a[0] > margin for a, b in zip(evs, evs[1:]) if a[1] != b[1])
            if safe and all(abs(e[0] - f[0]) <= tol for e, f in zip(evs, fls)):
                for (te, pkg), (tf, fk) in zip(evs, fls):
                    self._assign[fk] = _Match((pkg,), te - tf, f"order-matched among {len(evs)} connects")
                return
        for tf, fk in fls:
            near = [(abs(te - tf), te - tf, pkg) for te, pkg in evs if abs(te - tf) <= tol]
            m = _verdict(near, margin)
            if m is not None:
                self._assign[fk] = m

    # ------------------------------------------------------------------ pass 2

    def annotate(self, record: dict[str, Any]) -> dict[str, Any]:
        """The context fields for one flow record (see ANNOTATION_FIELDS)."""
        if not self._estimated and self._observed:
            self.estimate_skew()
        out: dict[str, Any] = dict.fromkeys(ANNOTATION_FIELDS)
        out["app_state"] = "unknown"
        try:
            self._annotate(_normalised(record), out)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:  # odd record: say so, go on
            log.debug("context join skipped a record: %s", exc)
            self._stats["records_skipped"] += 1
        self._count(out)
        return out

    def _annotate(self, record: dict[str, Any], out: dict[str, Any]) -> None:
        ts = record.get("ts")
        if not isinstance(ts, (int, float)):
            out["device_detail"] = "record without ts"
            return
        t = float(ts)
        dev, how = self._device(record)
        out["device"], out["device_detail"] = dev, how
        tl = self.ctx.timeline(dev) if dev is not None else None
        if tl is not None:
            out["context_skew_s"] = round(tl.skew_s, 6)
        app, attribution, detail, cands, uid = self._attribute(record, t, dev, tl)
        out["app"], out["attribution"], out["attribution_detail"] = app, attribution, detail
        out["app_candidates"] = cands or None
        out["app_uid"] = uid
        if tl is not None:
            out["screen"] = tl.screen_state(t)
            out["keyguard"] = tl.keyguard_state(t)
            if app is not None:
                state = tl.app_state(app, t)
                out["app_state_detail"] = state
                out["app_state"] = contract_state(state)
                last = tl.last_user_interaction(app, t)
                out["user_interaction_s_before"] = None if last is None else round(t - last, 3)
                if uid is None:
                    uids = tl.uids_for_package(app)
                    out["app_uid"] = next(iter(uids)) if len(uids) == 1 else None

    def _attribute(self, record: dict[str, Any], t: float, dev: str | None, tl: DeviceTimeline | None):
        """(app, attribution, detail, candidates, uid)."""
        connect_cands: list[str] = []
        if tl is not None and record.get("proto") == "tcp":
            m = self._assign.get(_fkey(record)) if _is_syn(record) else None
            if m is None:
                m = self._connect_nearest(tl, record, t)
            if m is not None:
                if len(m.packages) == 1:
                    return (m.packages[0], "connect_event",
                            f"{m.how}, dt={m.dt:+.3f}s on the skew-corrected clock", [], None)
                connect_cands = list(m.packages)
        pd = self._pcapdroid(record, t, dev, tl)
        if pd is not None:
            return pd
        if tl is not None and not connect_cands:
            q = self._resolver_query(tl, record, t)
            if q is not None:
                return q
        if tl is not None:
            dns_cands, dns_detail = self._dns(tl, record, t)
            if connect_cands and dns_cands:
                both = sorted(set(connect_cands) & set(dns_cands))
                if len(both) == 1:
                    return both[0], "dns_event", f"connect events ambiguous; {dns_detail}", [], None
            if not connect_cands and len(dns_cands) == 1:
                return dns_cands[0], "dns_event", dns_detail, [], None
            if not connect_cands and len(dns_cands) > 1:
                return None, "ambiguous", f"DNS: {dns_detail}", dns_cands, None
        if connect_cands:
            return None, "ambiguous", "connect events of several apps match", connect_cands, None
        return None, None, self._why_not(record, dev, tl), [], None

    def _why_not(self, record: dict[str, Any], dev: str | None, tl: DeviceTimeline | None) -> str:
        if dev is None:
            return "device unknown"
        if tl is None:
            return "no device logs for this device"
        if record.get("proto") != "tcp":
            return f"{record.get('proto')} is not in connect logs; no DNS or PCAPdroid evidence"
        if not tl.has_network_logs():
            return "no network activity logs for this device"
        return "no connect, DNS or PCAPdroid evidence within tolerance"

    def _connect_nearest(self, tl: DeviceTimeline, record: dict[str, Any], t: float) -> _Match | None:
        dst, port = record.get("dst_ip"), record.get("dst_port")
        if not isinstance(dst, str) or not isinstance(port, int):
            return None
        tol = self._tolerance(self._skew.get(tl.device))
        near = [(abs(tl.to_capture(e.ts) - t), tl.to_capture(e.ts) - t, e.package)
                for e in tl.connects_between(dst, port, t - tol, t + tol)]
        est = self._skew.get(tl.device)
        return _verdict(near, max(0.25, 3.0 * (est.spread_s or 0.0 if est is not None else 0.0)))

    def _resolver_query(self, tl: DeviceTimeline, record: dict[str, Any], t: float):
        """A DNS query flow sent by the system resolver on an app's behalf.

        Android's DnsResolver sends plaintext queries from a socket tagged and
        fchown()ed to the requesting app's uid (AOSP packages/modules/DnsResolver
        res_send.cpp: ``uid = enforce_dns_uid ? AID_DNS : statp->uid;
        resolv_tag_socket(...)``) and the DNS event names that app: a query for the
        same name within the tolerance belongs to it. Private DNS (DoT) runs as
        AID_DNS and shows no query names, so it never matches here.
        """
        names = _query_names(record)
        if not names:
            return None
        tol = self._tolerance(self._skew.get(tl.device))
        pkgs: dict[str, float] = {}
        for name in names:
            for e in tl.dns_for_host(name):
                dt = tl.to_capture(e.ts) - t
                if abs(dt) <= tol and e.package:
                    pkgs[e.package] = min(pkgs.get(e.package, 1e18), abs(dt))
        if not pkgs:
            return None
        cands = sorted(pkgs)
        if len(cands) > 1:
            return None, "ambiguous", f"resolver query for {', '.join(names)[:120]} logged for several apps", cands, None
        return (cands[0], "dns_event",
                f"resolver query for {', '.join(names)[:120]}, DNS event {pkgs[cands[0]]:.3f}s away", [], None)

    def _dns(self, tl: DeviceTimeline, record: dict[str, Any], t: float) -> tuple[list[str], str]:
        tol = self._tolerance(self._skew.get(tl.device))
        lo, hi = t - self.dns_window_s, t + tol
        pkgs: dict[str, float] = {}
        dst = record.get("dst_ip")
        hosts = set()
        if isinstance(dst, str):
            for e in tl.dns_for_address_between(dst, lo, hi):
                tc = tl.to_capture(e.ts)
                if e.package:
                    pkgs[e.package] = max(pkgs.get(e.package, -1e18), tc)
                    hosts.add(e.hostname)
        for name in _names(record):
            for e in tl.dns_for_host(name):
                tc = tl.to_capture(e.ts)
                if lo <= tc <= hi and e.package:
                    pkgs[e.package] = max(pkgs.get(e.package, -1e18), tc)
                    hosts.add(e.hostname)
        if not pkgs:
            return [], ""
        order = sorted(pkgs, key=lambda p: -pkgs[p])
        last = max(pkgs.values())
        return order, f"resolved {', '.join(sorted(hosts))[:200]} {t - last:.1f}s before the flow"

    def _pcapdroid(self, record: dict[str, Any], t: float, dev: str | None, tl: DeviceTimeline | None):
        key = (record.get("proto"), record.get("dst_ip"), record.get("dst_port"))
        by_src = self._pd_index.get(key)
        if not by_src:
            return None
        near = []
        for source, (times, conns) in by_src.items():
            bound = self._pd_device.get(source)
            if bound is not None and dev is not None and bound != dev:
                continue  # this file was recorded on another phone
            est = self._pd_skew.get(source)
            # the file's own clock estimate; else the flow device's (same phone, same clock)
            off = est.offset_s if est is not None and est.status == "ok" else (tl.skew_s if tl else 0.0)
            spread = est.spread_s if est is not None and est.spread_s is not None else 0.0
            tol = self.pcapdroid_tolerance_s + 3.0 * spread
            lo = bisect.bisect_left(times, t + off - tol)
            hi = bisect.bisect_right(times, t + off + tol)
            for c in conns[lo:hi]:
                dt = (c.ts_start - off) - t
                near.append((abs(dt), dt, c))
        if not near:
            return None
        fitting = [x for x in near if _bytes_fit(record, x[2])]
        bytes_note = ""
        if not fitting:
            # an "Active" CSV row is a snapshot with partial counters: time still decides
            fitting, bytes_note = near, "; byte counts disagree"
        # root mode keeps the real source address and port: an exact tuple settles it
        exact = [x for x in fitting if x[2].src_port == record.get("src_port") and x[2].src_ip == record.get("src_ip")]
        fitting = exact or fitting
        idents = {(c.uid, c.package) for _, _, c in fitting}
        if len(idents) > 1:
            pkgs = sorted({c.package or f"uid:{c.uid}" for _, _, c in fitting})
            return None, "ambiguous", "PCAPdroid connections of several apps match", pkgs, None
        _, dt, c = min(fitting, key=lambda x: x[0])
        package = c.package
        if not package and tl is not None and c.uid >= 0:
            owners = tl.packages_for_uid(c.uid)
            package = next(iter(owners)) if len(owners) == 1 else ""
        label = f" (label {c.app!r})" if c.app else ""
        detail = f"PCAPdroid uid {c.uid}{label}, dt={dt:+.3f}s, {c.source}{bytes_note}"
        if not package:
            return None, None, detail + "; package not known for this uid", [], c.uid if c.uid >= 0 else None
        return package, "pcapdroid", detail, [], c.uid

    # ------------------------------------------------------------------ summary

    def _count(self, out: dict[str, Any]) -> None:
        self._stats["annotated"] += 1
        if out["device"] is not None:
            self._stats["with_device"] += 1
        if out["app"] is not None:
            self._stats["attributed"] += 1
        self._stats[f"attribution:{out['attribution']}"] += 1
        self._stats[f"app_state:{out['app_state']}"] += 1
        if out["device"] is not None:
            c = self._per_device[out["device"]]
            c["flows"] += 1
            if out["app"] is not None:
                c["attributed"] += 1

    def summary(self) -> dict[str, Any]:
        """summary.json's context section: files, skew per device, share attributed."""
        n = self._stats["annotated"]
        by_attr = {k.split(":", 1)[1]: v for k, v in self._stats.items() if k.startswith("attribution:")}
        by_state = {k.split(":", 1)[1]: v for k, v in self._stats.items() if k.startswith("app_state:")}
        devices = {}
        for dev in sorted(set(self.ctx.timelines) | set(self.ctx.inventory.devices) | set(self._per_device)):
            tl = self.ctx.timelines.get(dev)
            devices[dev] = {
                "skew": self._skew[dev].as_dict() if dev in self._skew else None,
                "flows": self._per_device[dev]["flows"],
                "flows_attributed": self._per_device[dev]["attributed"],
                "events": tl.counts() if tl else {},
                "in_inventory": dev in self.ctx.inventory.devices,
            }
        return {
            "context_files": self.ctx.report,
            "skew": {dev: {k: est.as_dict()[k] for k in ("offset_s", "spread_s", "matches", "status")}
                     for dev, est in sorted(self._skew.items())},
            "devices": devices,
            "pcapdroid_skew": {src: {**est.as_dict(), "device": self._pd_device.get(src)}
                               for src, est in self._pd_skew.items()},
            "flows_observed": self._observed,
            "flows_annotated": n,
            "flows_with_device": self._stats["with_device"],
            "flows_attributed": self._stats["attributed"],
            "share_attributed": round(self._stats["attributed"] / n, 4) if n else 0.0,
            "by_attribution": {("none" if k == "None" else k): v for k, v in sorted(by_attr.items())},
            "by_app_state": dict(sorted(by_state.items())),
            "records_skipped": self._stats["records_skipped"],
            "unknown_devices": dict(self.ctx.unknown_devices.most_common(100)),
        }


def _verdict(near: list[tuple[float, float, str]], margin: float) -> _Match | None:
    """The connect verdict for one flow from (|dt|, dt, package) within tolerance.

    One package: it. Several: the nearest wins only when it is within ``margin``
    (clock jitter after skew correction) and every other package's nearest event
    is more than twice that away -- otherwise the jitter could have swapped them,
    and the flow is ambiguous.
    """
    if not near:
        return None
    best = min(near)
    cands = sorted({p for _, _, p in near})
    if len(cands) == 1:
        return _Match((cands[0],), best[1], "nearest connect event")
    others = min(a for a, _, p in near if p != best[2])
    if best[0] <= margin and others > 2 * margin:
        return _Match((best[2],), best[1], f"nearest connect event; other apps' {others:.2f}s away")
    return _Match(tuple(cands), best[1], "connect events of several apps")


def _bytes_fit(record: dict[str, Any], c: PcapdroidConnection) -> bool:
    """Whether the flow's payload byte counts can be the PCAPdroid connection's.

    Capture-derived counts are payload bytes and must agree closely; the CSV's
    are IP-level, so they exceed payload by a per-packet header overhead
    (20-60 B IP + 8-60 B transport) and never fall below it.
    """
    out_b, in_b = record.get("bytes_out"), record.get("bytes_in")
    if not isinstance(out_b, int) or not isinstance(in_b, int):
        return True
    if c.bytes_unit == "payload":
        return abs(out_b - c.bytes_out) <= max(64, 0.02 * c.bytes_out) and \
            abs(in_b - c.bytes_in) <= max(64, 0.02 * c.bytes_in)

    def fits(payload: int, ip_bytes: int, pkts: int) -> bool:
        if ip_bytes == 0 and pkts == 0:
            return True  # counters absent
        slack = 0.05 * ip_bytes + 256
        return payload - slack <= ip_bytes - 28 * pkts and ip_bytes - 120 * pkts <= payload + slack

    return fits(out_b, c.bytes_out, c.pkts_out) and fits(in_b, c.bytes_in, c.pkts_in)
