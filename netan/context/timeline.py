"""Per-device timelines and the queries the join and the chains stage ask of them.

A ``DeviceTimeline`` holds one device's context events on the **device clock**
and answers every query in **capture time**: ``t_device = t_capture + skew_s``
where ``skew_s`` (device minus capture) is set by the join's skew estimate
(DESIGN.md principle 6). Nothing here reads files or clocks.

App state follows the derivation of ../shared/formats/android-context.md
section 3: foreground while any activity instance of the package is resumed,
visible while paused but not stopped, foreground service while any FGS class
runs, background otherwise -- but only inside the span that app-state data
covers; outside it the answer is ``unknown``.

``Inventory`` merges MDM device records that name the same device (serial,
IMEI or MAC), and ``BindingIndex`` answers "which MAC held this IP at t".
"""
from __future__ import annotations

import bisect
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from netan.context._util import norm_ip, norm_mac
from netan.context.model import (
    AddressBinding,
    AppStateEvent,
    CertEvent,
    ConnectEvent,
    DeviceStateEvent,
    DnsEvent,
    InventoryDevice,
    KeyEvent,
    ProcessStart,
)

__all__ = ["DeviceTimeline", "Inventory", "BindingIndex", "APP_STATES", "contract_state"]

#: fine-grained app states; ``contract_state`` maps them onto CONTRACT.md's enum.
APP_STATES = ("foreground", "visible", "foreground_service", "background", "unknown")

# UsageEvents.Event codes (UsageEvents.java)
_RESUMED, _PAUSED, _END_OF_DAY, _CONTINUE_PREV = 1, 2, 3, 4
_USER_INTERACTION, _SHORTCUT, _CHOOSER = 7, 8, 9
_FGS_START, _FGS_STOP, _FGS_CONTINUE, _FGS_ROLLOVER = 19, 20, 21, 22
_STOPPED, _DESTROYED, _SHUTDOWN = 23, 24, 26
_INTERACTION_CODES = (_RESUMED, _USER_INTERACTION, _SHORTCUT, _CHOOSER)


def contract_state(state: str) -> str:
    """CONTRACT.md ``app_state``: a visible activity is foreground; an FGS is not
    something the user looks at, so it is background (the detail keeps FGS)."""
    if state in ("foreground", "visible"):
        return "foreground"
    if state in ("foreground_service", "background"):
        return "background"
    return "unknown"


def _state_label(resumed: set, visible: set, fgs: set) -> str:
    if resumed:
        return "foreground"
    if visible:
        return "visible"
    if fgs:
        return "foreground_service"
    return "background"


@dataclass
class _Changes:
    """A step function of time: sorted change points and the value from each on."""

    times: list[float] = field(default_factory=list)
    values: list[str] = field(default_factory=list)

    def add(self, ts: float, value: str) -> None:
        if self.values and self.values[-1] == value:
            return
        if self.times and self.times[-1] == ts:
            self.values[-1] = value
            return
        self.times.append(ts)
        self.values.append(value)

    def at(self, ts: float) -> str | None:
        i = bisect.bisect_right(self.times, ts) - 1
        return self.values[i] if i >= 0 else None

    def intervals(self, value: str, end: float) -> list[tuple[float, float]]:
        out = []
        for i, v in enumerate(self.values):
            if v == value:
                stop = self.times[i + 1] if i + 1 < len(self.times) else end
                out.append((self.times[i], stop))
        return out


class DeviceTimeline:
    """One device's context, device clock inside, capture clock at the interface."""

    def __init__(self, device: str, *, coverage_grace_s: float = 60.0) -> None:
        self.device = device
        #: device clock minus capture clock, seconds; set by the join's estimate.
        self.skew_s = 0.0
        self.coverage_grace_s = coverage_grace_s
        self._keys: list[KeyEvent] = []
        self._procs: list[ProcessStart] = []
        self._connects: dict[tuple[str, int], list[ConnectEvent]] = defaultdict(list)
        self._dns_by_addr: dict[str, list[DnsEvent]] = defaultdict(list)
        self._dns_by_host: dict[str, list[DnsEvent]] = defaultdict(list)
        self._app_events: dict[str, list[AppStateEvent]] = defaultdict(list)
        self._shutdowns: list[float] = []
        self._screen_events: list[tuple[float, str]] = []
        self._keyguard_events: list[tuple[float, str]] = []
        self._auth: list[DeviceStateEvent] = []
        self._certs: list[CertEvent] = []
        self._uid_pkgs: dict[int, set[str]] = defaultdict(set)
        self._pkg_uids: dict[str, set[int]] = defaultdict(set)
        self._app_cov: tuple[float, float] | None = None
        self._net_cov: tuple[float, float] | None = None
        self._built = False
        # derived
        self._app_changes: dict[str, _Changes] = {}
        self._fgs: dict[str, list[tuple[float, float]]] = {}
        self._interactions: dict[str, list[float]] = defaultdict(list)
        self._all_interactions: list[float] = []
        self._screen = _Changes()
        self._keyguard = _Changes()
        self._key_ts: list[float] = []
        self._connect_ts: dict[tuple[str, int], list[float]] = {}
        self._dns_addr_ts: dict[str, list[float]] = {}

    # ---------------------------------------------------------------- building

    def add(self, event: object) -> None:
        """Add one model event (device already resolved); call ``build()`` after the last."""
        self._built = False
        if isinstance(event, KeyEvent):
            self._keys.append(event)
        elif isinstance(event, ProcessStart):
            self._procs.append(event)
            for pkg in event.packages:
                self._uid_pkgs[event.uid].add(pkg)
                self._pkg_uids[pkg].add(event.uid)
        elif isinstance(event, ConnectEvent):
            self._connects[(event.dst_ip, event.dst_port)].append(event)
            self._net_cov = _widen(self._net_cov, event.ts)
        elif isinstance(event, DnsEvent):
            for addr in event.addresses:
                self._dns_by_addr[addr].append(event)
            self._dns_by_host[event.hostname].append(event)
            self._net_cov = _widen(self._net_cov, event.ts)
        elif isinstance(event, AppStateEvent):
            if event.event_type == _SHUTDOWN:
                self._shutdowns.append(event.ts)
            else:
                self._app_events[event.package].append(event)
            self._app_cov = _widen(self._app_cov, event.ts)
        elif isinstance(event, DeviceStateEvent):
            if event.kind == "screen":
                self._screen_events.append((event.ts, event.value))
                self._app_cov = _widen(self._app_cov, event.ts)
            elif event.kind == "keyguard":
                self._keyguard_events.append((event.ts, event.value))
            else:
                self._auth.append(event)
        elif isinstance(event, CertEvent):
            self._certs.append(event)

    def build(self) -> None:
        """Sort and derive intervals; idempotent."""
        if self._built:
            return
        self._keys.sort(key=lambda e: e.ts)
        self._key_ts = [e.ts for e in self._keys]
        self._procs.sort(key=lambda e: e.ts)
        for lst in self._connects.values():
            lst.sort(key=lambda e: e.ts)
        self._connect_ts = {k: [e.ts for e in v] for k, v in self._connects.items()}
        for lst in self._dns_by_addr.values():
            lst.sort(key=lambda e: e.ts)
        self._dns_addr_ts = {k: [e.ts for e in v] for k, v in self._dns_by_addr.items()}
        for lst in self._dns_by_host.values():
            lst.sort(key=lambda e: e.ts)
        self._shutdowns.sort()
        self._derive_app_state()
        self._screen = _derive_binary(self._screen_events, "interactive", "non_interactive", self._app_cov)
        self._keyguard = _derive_binary(self._keyguard_events, "shown", "hidden", self._app_cov)
        self._built = True

    def _derive_app_state(self) -> None:
        self._app_changes.clear()
        self._fgs.clear()
        self._interactions.clear()
        cov_start = self._app_cov[0] if self._app_cov else 0.0
        cov_end = self._app_cov[1] if self._app_cov else 0.0
        every: list[float] = []
        for pkg, events in self._app_events.items():
            events.sort(key=lambda e: (e.ts, e.line))
            resumed: set = set()
            visible: set = set()
            fgs: set = set()
            seen_inst: set = set()
            seen_fgs: set = set()
            changes = _Changes()
            changes.add(cov_start, "background")
            fgs_changes = _Changes()
            fgs_changes.add(cov_start, "off")
            shut_i = 0
            for ev in events:
                while shut_i < len(self._shutdowns) and self._shutdowns[shut_i] <= ev.ts:
                    # DEVICE_SHUTDOWN ends every activity and service
                    resumed.clear()
                    visible.clear()
                    fgs.clear()
                    changes.add(self._shutdowns[shut_i], "background")
                    fgs_changes.add(self._shutdowns[shut_i], "off")
                    shut_i += 1
                inst = ev.instance_id if ev.instance_id is not None else ev.class_name
                code = ev.event_type
                if code in (_RESUMED, _CONTINUE_PREV):
                    seen_inst.add(inst)
                    resumed.add(inst)
                    visible.discard(inst)
                elif code in (_PAUSED, _END_OF_DAY):
                    if inst not in seen_inst and not _changed_after(changes, cov_start):
                        # first word about this activity is a pause: it was resumed
                        # since before the data began (UsageStats only logs transitions)
                        changes.add(cov_start, "foreground")
                    seen_inst.add(inst)
                    resumed.discard(inst)
                    visible.add(inst)
                elif code in (_STOPPED, _DESTROYED):
                    seen_inst.add(inst)
                    resumed.discard(inst)
                    visible.discard(inst)
                elif code in (_FGS_START, _FGS_CONTINUE):
                    seen_fgs.add(ev.class_name)
                    fgs.add(ev.class_name)
                elif code in (_FGS_STOP, _FGS_ROLLOVER):
                    if ev.class_name not in seen_fgs and not fgs and not _changed_after(fgs_changes, cov_start):
                        fgs_changes.add(cov_start, "on")
                        if changes.at(cov_start) == "background":
                            changes.add(cov_start, "foreground_service")
                    seen_fgs.add(ev.class_name)
                    fgs.discard(ev.class_name)
                if code in _INTERACTION_CODES:
                    self._interactions[pkg].append(ev.ts)
                    every.append(ev.ts)
                changes.add(ev.ts, _state_label(resumed, visible, fgs))
                fgs_changes.add(ev.ts, "on" if fgs else "off")
            while shut_i < len(self._shutdowns):
                changes.add(self._shutdowns[shut_i], "background")
                fgs_changes.add(self._shutdowns[shut_i], "off")
                shut_i += 1
            self._app_changes[pkg] = changes
            self._fgs[pkg] = fgs_changes.intervals("on", cov_end + self.coverage_grace_s)
        every.sort()
        self._all_interactions = every

    # ---------------------------------------------------------------- clocks

    def to_device(self, t_capture: float) -> float:
        return t_capture + self.skew_s

    def to_capture(self, t_device: float) -> float:
        return t_device - self.skew_s

    # ---------------------------------------------------------------- queries (capture time)

    def has_app_state(self) -> bool:
        return self._app_cov is not None

    def app_state_coverage(self) -> tuple[float, float] | None:
        """Capture-time span that app-state data covers (grace included), or None."""
        if self._app_cov is None:
            return None
        return (self.to_capture(self._app_cov[0]), self.to_capture(self._app_cov[1] + self.coverage_grace_s))

    def app_state(self, package: str, t: float) -> str:
        """foreground | visible | foreground_service | background | unknown at capture time t."""
        self.build()
        td = self.to_device(t)
        if self._app_cov is None or not (self._app_cov[0] <= td <= self._app_cov[1] + self.coverage_grace_s):
            return "unknown"
        changes = self._app_changes.get(package)
        if changes is None:
            return "background"  # no transition of this package inside the covered span
        return changes.at(td) or "background"

    def app_intervals(self, package: str) -> list[tuple[float, float, str]]:
        """(start, end, state) in capture time over the covered span."""
        self.build()
        changes = self._app_changes.get(package)
        cov = self._app_cov
        if cov is None:
            return []
        end = cov[1] + self.coverage_grace_s
        if changes is None:
            return [(self.to_capture(cov[0]), self.to_capture(end), "background")]
        out = []
        for i, (ts, val) in enumerate(zip(changes.times, changes.values)):
            stop = changes.times[i + 1] if i + 1 < len(changes.times) else end
            if stop > ts:
                out.append((self.to_capture(ts), self.to_capture(stop), val))
        return out

    def foreground_service_intervals(self, package: str) -> list[tuple[float, float]]:
        self.build()
        return [(self.to_capture(a), self.to_capture(b)) for a, b in self._fgs.get(package, [])]

    def last_user_interaction(self, package: str | None, t: float) -> float | None:
        """Capture time of the last ACTIVITY_RESUMED / USER_INTERACTION (/ shortcut,
        chooser) of ``package`` (any package when None) at or before t, or None."""
        self.build()
        times = self._all_interactions if package is None else self._interactions.get(package, [])
        i = bisect.bisect_right(times, self.to_device(t)) - 1
        return self.to_capture(times[i]) if i >= 0 else None

    def interactions(self, package: str) -> list[float]:
        """Capture times of the package's user interactions (resumed, interaction, shortcut, chooser)."""
        self.build()
        return [self.to_capture(ts) for ts in self._interactions.get(package, [])]

    def screen_changes(self) -> list[tuple[float, str]]:
        """(capture time, interactive | non_interactive) at each change."""
        self.build()
        return [(self.to_capture(t), v) for t, v in zip(self._screen.times, self._screen.values)]

    def keyguard_changes(self) -> list[tuple[float, str]]:
        self.build()
        return [(self.to_capture(t), v) for t, v in zip(self._keyguard.times, self._keyguard.values)]

    def screen_state(self, t: float) -> str:
        """interactive | non_interactive | unknown."""
        self.build()
        return self._screen.at(self.to_device(t)) or "unknown"

    def keyguard_state(self, t: float) -> str:
        """shown | hidden | unknown (UsageStats KEYGUARD_* and AMAPI KEYGUARD_SECURED/DISMISSED)."""
        self.build()
        return self._keyguard.at(self.to_device(t)) or "unknown"

    def uids_for_package(self, package: str) -> set[int]:
        """Every uid APP_PROCESS_START tied to ``package`` (shared uids included)."""
        return set(self._pkg_uids.get(package, ()))

    def packages_for_uid(self, uid: int) -> set[str]:
        return set(self._uid_pkgs.get(uid, ()))

    def key_events(self, package: str | None, t0: float, t1: float, *, uid: int | None = None) -> list[KeyEvent]:
        """Key events in [t0, t1] (capture time) owned by the package's uids (or ``uid``).

        ``event.ts`` stays on the device clock; ``to_capture(event.ts)`` converts.
        """
        self.build()
        uids = {uid} if uid is not None else (self.uids_for_package(package) if package else None)
        lo = bisect.bisect_left(self._key_ts, self.to_device(t0))
        hi = bisect.bisect_right(self._key_ts, self.to_device(t1))
        return [e for e in self._keys[lo:hi] if uids is None or e.uid in uids]

    def cert_events(self, t0: float, t1: float) -> list[CertEvent]:
        """CA installed/removed and certificate validation failures in [t0, t1] (capture time)."""
        lo, hi = self.to_device(t0), self.to_device(t1)
        return sorted((e for e in self._certs if lo <= e.ts <= hi), key=lambda e: e.ts)

    def keyguard_auth_attempts(self, t0: float, t1: float) -> list[DeviceStateEvent]:
        """KEYGUARD_DISMISS_AUTH_ATTEMPT events (value success/failure) in [t0, t1]."""
        lo, hi = self.to_device(t0), self.to_device(t1)
        return sorted((e for e in self._auth if lo <= e.ts <= hi), key=lambda e: e.ts)

    def process_starts(self, package: str | None = None) -> list[ProcessStart]:
        self.build()
        return [p for p in self._procs if package is None or package in p.packages]

    def connects_to(self, dst_ip: str, dst_port: int) -> list[ConnectEvent]:
        """Connect events to one destination, device-clock order."""
        self.build()
        return self._connects.get((dst_ip, dst_port), [])

    def connects_between(self, dst_ip: str, dst_port: int, t0: float, t1: float) -> list[ConnectEvent]:
        """Connect events to one destination within [t0, t1] capture time."""
        self.build()
        times = self._connect_ts.get((dst_ip, dst_port))
        if not times:
            return []
        lo = bisect.bisect_left(times, self.to_device(t0))
        hi = bisect.bisect_right(times, self.to_device(t1))
        return self._connects[(dst_ip, dst_port)][lo:hi]

    def dns_for_address_between(self, addr: str, t0: float, t1: float) -> list[DnsEvent]:
        """DNS events whose answers include ``addr``, within [t0, t1] capture time."""
        self.build()
        times = self._dns_addr_ts.get(addr)
        if not times:
            return []
        lo = bisect.bisect_left(times, self.to_device(t0))
        hi = bisect.bisect_right(times, self.to_device(t1))
        return self._dns_by_addr[addr][lo:hi]

    def connect_keys(self) -> dict[tuple[str, int], list[ConnectEvent]]:
        self.build()
        return self._connects

    def dns_for_address(self, addr: str) -> list[DnsEvent]:
        self.build()
        return self._dns_by_addr.get(addr, [])

    def dns_for_host(self, host: str) -> list[DnsEvent]:
        self.build()
        return self._dns_by_host.get(host.rstrip(".").lower(), [])

    def has_network_logs(self) -> bool:
        return self._net_cov is not None

    def counts(self) -> dict[str, int]:
        return {
            "key_events": len(self._keys),
            "process_starts": len(self._procs),
            "connect_events": sum(len(v) for v in self._connects.values()),
            "dns_events": sum(len(v) for v in self._dns_by_host.values()),
            "app_state_events": sum(len(v) for v in self._app_events.values()),
            "screen_events": len(self._screen_events),
            "keyguard_events": len(self._keyguard_events),
            "cert_events": len(self._certs),
        }


def _changed_after(changes: _Changes, start: float) -> bool:
    """True when the step function changed after ``start`` (i.e. it has history)."""
    return bool(changes.times) and changes.times[-1] > start  # times are ascending


def _widen(cov: tuple[float, float] | None, ts: float) -> tuple[float, float]:
    return (ts, ts) if cov is None else (min(cov[0], ts), max(cov[1], ts))


def _derive_binary(events: list[tuple[float, str]], a: str, b: str, cov: tuple[float, float] | None) -> _Changes:
    out = _Changes()
    events.sort()
    if not events:
        return out
    first_ts, first_val = events[0]
    if cov is not None and cov[0] < first_ts:
        # the first transition tells what the state was before it, back to the data's start
        out.add(cov[0], b if first_val == a else a)
    for ts, val in events:
        out.add(ts, val)
    return out


# Build.SERIAL and friends when the real value is withheld
_PLACEHOLDER_IDS = {"unknown", "null", "none", "n/a", "-", "0", "serial", "000000000000000"}


class Inventory:
    """MDM devices merged across sources, with alias and MAC lookups."""

    def __init__(self) -> None:
        self.devices: dict[str, dict] = {}
        self._alias: dict[str, str] = {}
        self._names: dict[str, set[str]] = defaultdict(set)
        self._mac: dict[str, str] = {}

    def add(self, dev: InventoryDevice) -> str:
        """Merge ``dev``; returns the canonical id (first source id seen for that device).

        Records merge on unique identifiers only (ids, serial, IMEI, MAC); a
        placeholder serial such as Android's ``unknown`` is not one.
        """
        keys = [dev.device_id, *dev.aliases, *(m for m in dev.macs)]
        if dev.serial:
            keys.append(dev.serial)
        keys = [k for k in keys if k and k.strip().lower() not in _PLACEHOLDER_IDS and not set(k) <= {"0"}]
        canon = next((self._alias[k.lower()] for k in keys if k.lower() in self._alias), None)
        if canon is None:
            canon = dev.device_id
            self.devices[canon] = {
                "device": canon, "sources": {}, "serial": "", "imeis": [], "macs": [],
                "name": "", "model": "", "packages": [],
            }
        rec = self.devices[canon]
        rec["sources"][dev.source] = dev.device_id
        rec["serial"] = rec["serial"] or dev.serial
        rec["name"] = rec["name"] or dev.name
        rec["model"] = rec["model"] or dev.model
        for key, vals in (("imeis", dev.imeis), ("macs", dev.macs), ("packages", dev.packages)):
            for v in vals:
                if v not in rec[key]:
                    rec[key].append(v)
        for k in keys:
            self._alias.setdefault(k.lower(), canon)
        for m in dev.macs:
            self._mac.setdefault(m, canon)
        for n in dev.names:
            self._names[n.strip().lower()].add(canon)
        return canon

    def resolve(self, name: str | None) -> str | None:
        """Canonical id for any identifier the sources use, or None when unknown
        (a friendly name several devices share is unknown, not guessed)."""
        if not name:
            return None
        hit = self._alias.get(name.lower())
        if hit is None and "/" in name:
            hit = self._alias.get(name.rsplit("/", 1)[-1].lower())
        if hit is None:
            owners = self._names.get(name.strip().lower())
            if owners is not None and len(owners) == 1:
                hit = next(iter(owners))
        return hit

    def by_mac(self, mac: str | None) -> str | None:
        return self._mac.get(norm_mac(mac)) if mac else None

    def __len__(self) -> int:
        return len(self.devices)


class BindingIndex:
    """IP -> MAC bindings over time; the binding that started last wins."""

    def __init__(self) -> None:
        self._by_ip: dict[str, list[AddressBinding]] = defaultdict(list)
        self._seen: set[tuple] = set()
        self.count = 0

    def add(self, b: AddressBinding) -> None:
        key = (b.ip, b.mac, b.start, b.end)
        if key in self._seen:
            return
        self._seen.add(key)
        self._by_ip[b.ip].append(b)
        self.count += 1

    def add_many(self, items: Iterable[object]) -> int:
        """Accept AddressBindings, ``(ts, mac, ip, hostname)`` tuples (a DHCP ACK seen in
        the capture: valid from ts until superseded) or dicts with those keys (+ ``lease_s``)."""
        n = 0
        for item in items:
            b = _coerce_binding(item)
            if b is not None:
                self.add(b)
                n += 1
        return n

    def lookup(self, ip: str, t: float) -> AddressBinding | None:
        cands = [b for b in self._by_ip.get(norm_ip(ip) or ip, ()) if b.start <= t <= b.end]
        if not cands:
            return None
        best = max(c.start for c in cands)
        top = {c.mac for c in cands if c.start == best}
        if len(top) != 1:
            return None  # two clients claim the address from the same moment: do not guess
        return next(c for c in cands if c.start == best)


def _coerce_binding(item: object) -> AddressBinding | None:
    if isinstance(item, AddressBinding):
        return item
    lease = None
    if isinstance(item, dict):
        ts, mac, ip, host = item.get("ts"), item.get("mac"), item.get("ip"), item.get("hostname", "")
        lease = item.get("lease_s")
    elif isinstance(item, (tuple, list)) and len(item) >= 3:
        ts, mac, ip = item[0], item[1], item[2]
        host = item[3] if len(item) > 3 else ""
        lease = item[4] if len(item) > 4 else None
    else:
        return None
    mac_n, ip_n = norm_mac(mac), norm_ip(ip)
    if not mac_n or not ip_n or not isinstance(ts, (int, float)) or math.isnan(ts):
        return None
    end = float(ts) + float(lease) if isinstance(lease, (int, float)) and lease > 0 else math.inf
    return AddressBinding(ip_n, mac_n, float(ts), end, str(host or ""), "capture_dhcp", 0)
