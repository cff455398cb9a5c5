"""Load context files and directories into a ``ContextSet`` with a per-file report.

``load_context(paths)`` walks files and directories (sorted, recursive), opens
each file (gzip transparently), recognises it by content (``detect``), streams
it through its importer and keeps only the events. Memory grows with the
events kept, not with file size: JSON is read one top-level value at a time,
text line by line, captures packet by packet. Nothing raises on bad input;
every rejected record lands in the file's report with its line and reason.

Report entry per file (JSON-serialisable, for summary.json)::

    {"file", "format", "recognised_by", "events_read", "duplicates",
     "rejected": [{"line", "reason"}, ...]  # first MAX_REJECTS_LISTED
     "rejected_total", "rejected_by_reason", "devices", "unknown_event_types",
     "warnings": [...]}
"""
from __future__ import annotations

import zlib
import io
import logging
import os
import re
from collections import Counter
from dataclasses import fields as dc_fields
from datetime import tzinfo
from typing import Any, BinaryIO, Iterable, Iterator

from netan.context import (
    amapi_devices,
    amapi_usage_logs,
    dhcp_leases,
    dpm_logs,
    dumpsys_usagestats,
    intune,
    pcapdroid,
    usagestats,
    workspaceone,
)
from netan.context._util import bounded_lines, iter_json_values
from netan.context.detect import HEAD_BYTES, detect, text_encoding
from netan.context.model import (
    AddressBinding,
    AppStateEvent,
    CertEvent,
    ConnectEvent,
    DeviceStateEvent,
    DnsEvent,
    InventoryDevice,
    KeyEvent,
    PcapdroidConnection,
    ProcessStart,
    Reject,
    SecurityEvent,
    UnknownEvent,
)
from netan.context.timeline import BindingIndex, DeviceTimeline, Inventory

__all__ = ["load_context", "ContextSet", "MAX_REJECTS_LISTED"]

log = logging.getLogger(__name__)

MAX_REJECTS_LISTED = 200
_MAX_DEVICES_LISTED = 1000

_JSON_PARSERS = {
    amapi_usage_logs.FORMAT: amapi_usage_logs.parse_value,
    amapi_devices.FORMAT: amapi_devices.parse_value,
    intune.FORMAT: intune.parse_value,
    workspaceone.FORMAT: workspaceone.parse_value,
    usagestats.FORMAT: usagestats.parse_value,
    dpm_logs.FORMAT_SECURITY: dpm_logs.parse_value,
}
_DEVICE_EVENTS = (KeyEvent, ProcessStart, ConnectEvent, DnsEvent, AppStateEvent, DeviceStateEvent,
                  CertEvent, SecurityEvent, UnknownEvent)


class ContextSet:
    """Everything the context files said: inventory, bindings, timelines, PCAPdroid records.

    ``timelines`` maps canonical device id -> ``DeviceTimeline``. Events whose
    source names no device (dumpsys text, PCAPdroid) are bound to the only
    device when exactly one is known, else kept in ``unbound``.
    ``report`` is the per-file list for summary.json.
    """

    def __init__(self) -> None:
        self.inventory = Inventory()
        self.bindings = BindingIndex()
        self.timelines: dict[str, DeviceTimeline] = {}
        self.unbound = DeviceTimeline("")
        self.pcapdroid: list[PcapdroidConnection] = []
        self.report: list[dict[str, Any]] = []
        self.others: list[object] = []  # cert and other security events, by device
        self._pending: list[object] = []  # device events before inventory resolution
        self._unbound_events: list[object] = []
        self._dedup: set[tuple] = set()
        self.unknown_devices: Counter[str] = Counter()

    # -- building -------------------------------------------------------------

    def _accept(self, event: object, rep: dict[str, Any]) -> bool:
        """Dedup and stash one event; False when it is a duplicate."""
        key = _dedup_key(event)
        if key is not None:
            if key in self._dedup:
                rep["duplicates"] += 1
                return False
            self._dedup.add(key)
        if isinstance(event, InventoryDevice):
            self.inventory.add(event)
        elif isinstance(event, AddressBinding):
            self.bindings.add(event)
        elif isinstance(event, PcapdroidConnection):
            self.pcapdroid.append(event)
        else:
            self._pending.append(event)
        return True

    def _finish(self) -> None:
        """Resolve device names through the inventory and build the timelines."""
        pending, self._pending = self._pending, []
        for ev in pending:
            raw = getattr(ev, "device", None)
            if raw is None:
                self._unbound_events.append(ev)
                continue
            dev = self.inventory.resolve(raw)
            if dev is None:
                dev = raw
                if len(self.inventory):
                    self.unknown_devices[raw] += 1
            self._timeline(dev).add(ev)
            if isinstance(ev, (CertEvent, SecurityEvent)):
                self.others.append(ev)
        known = set(self.timelines) | set(self.inventory.devices)
        if self._unbound_events:
            if len(known) == 1:
                dev = next(iter(known))
                for ev in self._unbound_events:
                    self._timeline(dev).add(ev)
                self._note_unbound(f"events naming no device were bound to the only known device {dev}")
            else:
                for ev in self._unbound_events:
                    self.unbound.add(ev)
                self._note_unbound(f"events name no device and {len(known)} devices are known: "
                                   "kept unbound, not joined")
            self._unbound_events = []
        for tl in self.timelines.values():
            tl.build()
        self.unbound.build()
        if self.unknown_devices:
            for rep in self.report:
                unknown = [d for d in rep.get("devices", []) if self.inventory.resolve(d) is None]
                if unknown:
                    rep["devices_not_in_inventory"] = unknown[:_MAX_DEVICES_LISTED]

    def _note_unbound(self, text: str) -> None:
        for rep in self.report:
            if rep.get("unbound_events"):
                rep["warnings"].append(text)

    def _timeline(self, device: str) -> DeviceTimeline:
        tl = self.timelines.get(device)
        if tl is None:
            tl = self.timelines[device] = DeviceTimeline(device)
        return tl

    # -- public ---------------------------------------------------------------

    def add_events(self, events: Iterable[object], *, source: str = "api") -> int:
        """Add model events built elsewhere (e.g. PCAPdroid trailers read by the capture
        source, or tests); call ``finish()`` afterwards. Returns how many were new."""
        rep = _new_report(source)
        n = 0
        for ev in events:
            n += self._accept(ev, rep)
        return n

    def finish(self) -> None:
        """Resolve devices and (re)build the timelines after ``add_events``."""
        self._finish()

    def add_bindings(self, bindings: Iterable[object]) -> int:
        """Add IP<->MAC bindings seen elsewhere (e.g. DHCP exchanges in the capture):
        ``(ts, mac, ip, hostname)`` tuples, dicts, or AddressBindings. Returns how many."""
        return self.bindings.add_many(bindings)

    def timeline(self, device: str | None) -> DeviceTimeline | None:
        if device is None:
            return None
        dev = self.inventory.resolve(device) or device
        return self.timelines.get(dev)

    def device_for_mac(self, mac: str | None) -> str | None:
        return self.inventory.by_mac(mac)

    def device_for_ip(self, ip: str, t: float) -> tuple[str | None, str, str]:
        """(device, how, mac) for an address at capture time t via the bindings."""
        b = self.bindings.lookup(ip, t)
        if b is None:
            return None, "", ""
        dev = self.inventory.by_mac(b.mac)
        if dev is not None:
            return dev, f"binding:{b.source}:mac", b.mac
        if b.hostname:
            dev = self.inventory.resolve(b.hostname)
            if dev is not None:
                return dev, f"binding:{b.source}:hostname", b.mac
        return None, f"binding:{b.source}:mac_not_in_inventory", b.mac

    def devices(self) -> list[str]:
        return sorted(set(self.timelines) | set(self.inventory.devices))


def _dedup_key(event: object) -> tuple | None:
    if isinstance(event, (AddressBinding, InventoryDevice)):
        return None  # their indexes merge duplicates themselves
    eid = getattr(event, "event_id", "")
    dev = getattr(event, "device", None)
    if eid and getattr(event, "source", "") in ("amapi", "dpm"):
        # (device, family, eventId, eventTime): ids come from per-family counters that
        # reset on reboot, so the id alone is not unique (formats doc section 1.3).
        return (event.source, dev, amapi_usage_logs.event_family(event), eid, round(event.ts * 1e6))
    # everything else: identical content (minus where it was read) is the same event
    return tuple(getattr(event, f.name) for f in dc_fields(event) if f.name != "line") + (type(event).__name__,)


def _is_documentation(path: str) -> bool:
    name = os.path.basename(path).lower()
    return name.startswith("readme") or name.endswith((".md", ".rst"))


def _iter_files(paths: Iterable[str]) -> Iterator[str]:
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    yield os.path.join(root, name)
        else:
            yield p


class _GunzipReader(io.RawIOBase):
    """Streaming gunzip that treats a truncated member as the end of data.

    ``gzip.GzipFile`` raises at a cut-off end and drops what it decoded; a
    rotated log copied while written is cut exactly so. Concatenated members
    (RFC 1952 section 2.2) are read in turn.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._z = zlib.decompressobj(wbits=47)
        self._buf = b""
        self.truncated = False
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        while not self._buf and not self._eof:
            chunk = self._raw.read(1 << 16)
            if not chunk:
                self._eof = True
                self.truncated = self._started and not self._z.eof
                break
            self._started = True
            try:
                self._buf = self._z.decompress(chunk)
                while self._z.eof and self._z.unused_data:
                    rest = self._z.unused_data
                    self._z = zlib.decompressobj(wbits=47)
                    self._buf += self._z.decompress(rest)
            except zlib.error:
                self._eof = self.truncated = True
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    _started = False

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open(path: str) -> BinaryIO:
    raw = open(path, "rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return io.BufferedReader(_GunzipReader(raw))  # type: ignore[return-value]
    return raw


def _text(stream: BinaryIO, encoding: str = "utf-8") -> io.TextIOWrapper:
    # undecodable bytes become U+FFFD: the record then fails validation and is rejected;
    # utf-8-sig drops a UTF-8 byte-order mark, utf-16 reads the mark it starts with
    enc = "utf-8-sig" if encoding == "utf-8" else encoding
    return io.TextIOWrapper(stream, encoding=enc, errors="replace", newline=None)


def load_context(paths: list[str], *, local_tz: tzinfo | None = None) -> ContextSet:
    """Load every context file under ``paths`` (files or directories) into a ContextSet.

    ``local_tz`` is the devices' zone for sources that print local time without
    one (dumpsys usagestats); None means UTC, and the report says it was assumed.
    """
    ctx = ContextSet()
    explicit = {os.path.abspath(p) for p in paths if not os.path.isdir(p)}
    for path in _iter_files(paths):
        rep = _new_report(path)
        ctx.report.append(rep)
        if os.path.abspath(path) not in explicit and _is_documentation(path):
            # a README beside the logs of a directory: said in the report, not warned about
            rep["format"] = "documentation"
            rep["note"] = "skipped: documentation file in a context directory"
            _finalise_report(rep)
            continue
        try:
            _load_file(ctx, path, rep, local_tz)
        except (OSError, EOFError) as exc:
            # a file that cannot be read at all (permissions, truncated gzip): report and go on
            rep["error"] = f"{type(exc).__name__}: {exc}"[:200]
            log.warning("context file %s: %s", path, rep["error"])
        _finalise_report(rep)
    ctx._finish()
    return ctx


def _new_report(path: str) -> dict[str, Any]:
    return {
        "file": path, "format": None, "recognised_by": "", "events_read": 0, "duplicates": 0,
        "rejected": [], "rejected_total": 0, "rejected_by_reason": Counter(), "devices": set(),
        "unknown_event_types": Counter(), "unbound_events": 0, "warnings": [],
    }


def _finalise_report(rep: dict[str, Any]) -> None:
    rep["rejected_by_reason"] = dict(rep["rejected_by_reason"].most_common(50))
    rep["devices"] = sorted(rep["devices"])[:_MAX_DEVICES_LISTED]
    rep["unknown_event_types"] = dict(rep["unknown_event_types"])


def _reject(rep: dict[str, Any], r: Reject) -> None:
    rep["rejected_total"] += 1
    # group reasons without their variable parts (values, indexes) so counts stay few
    rep["rejected_by_reason"][re.sub(r"\[\d+\]|'[^']*'|\d+", "#", r.reason)[:80]] += 1
    if len(rep["rejected"]) < MAX_REJECTS_LISTED:
        rep["rejected"].append({"line": r.line, "reason": r.reason})


def _consume(ctx: ContextSet, rep: dict[str, Any], items: Iterable[object]) -> None:
    for item in items:
        if isinstance(item, Reject):
            _reject(rep, item)
            continue
        if not ctx._accept(item, rep):
            continue
        rep["events_read"] += 1
        if isinstance(item, InventoryDevice):
            rep["devices"].add(item.device_id)
        elif isinstance(item, _DEVICE_EVENTS):
            dev = item.device
            if dev is None:
                rep["unbound_events"] += 1
            elif len(rep["devices"]) < _MAX_DEVICES_LISTED:
                rep["devices"].add(dev)
            if isinstance(item, UnknownEvent):
                rep["unknown_event_types"][item.event_type or "(none)"] += 1


def _load_file(ctx: ContextSet, path: str, rep: dict[str, Any], local_tz: tzinfo | None) -> None:
    with _open(path) as stream:
        head = stream.read(HEAD_BYTES)
    fmt, why = detect(head)
    enc = text_encoding(head)
    rep["format"], rep["recognised_by"] = fmt, why
    if fmt is None:
        rep["warnings"].append(f"not recognised: {why}")
        log.warning("context file %s not recognised: %s", path, why)
        return
    with _open(path) as stream:
        if fmt in _JSON_PARSERS:
            parse = _JSON_PARSERS[fmt]
            _consume(ctx, rep, _json_events(_text(stream, enc), parse))
        elif fmt == dumpsys_usagestats.FORMAT:
            if local_tz is None:
                rep["warnings"].append("dumpsys prints device local time without a zone: UTC assumed")
            _consume(ctx, rep, dumpsys_usagestats.parse_lines(bounded_lines(_text(stream, enc)), local_tz))
        elif fmt == dpm_logs.FORMAT_NETWORK:
            _consume(ctx, rep, dpm_logs.parse_lines(bounded_lines(_text(stream, enc))))
        elif fmt == dhcp_leases.DNSMASQ:
            _consume(ctx, rep, dhcp_leases.parse_dnsmasq(bounded_lines(_text(stream, enc))))
        elif fmt == dhcp_leases.ISC:
            _consume(ctx, rep, dhcp_leases.parse_isc(bounded_lines(_text(stream, enc))))
        elif fmt == dhcp_leases.KEA:
            _consume(ctx, rep, dhcp_leases.parse_kea(bounded_lines(_text(stream, enc))))
        elif fmt == pcapdroid.FORMAT_CSV:
            _consume(ctx, rep, _tag_source(pcapdroid.parse_csv(bounded_lines(_text(stream, enc))), path))
        elif fmt in (pcapdroid.FORMAT_PCAP, pcapdroid.FORMAT_PCAPNG):
            agg = pcapdroid.Aggregator()
            reader = pcapdroid.parse_pcap if fmt == pcapdroid.FORMAT_PCAP else pcapdroid.parse_pcapng
            for r in reader(stream, agg):
                _reject(rep, r)
            if agg.dropped:
                rep["warnings"].append(f"{agg.dropped} packets of connections beyond the connection cap")
            _consume(ctx, rep, _tag_source(agg.connections(fmt), path))
        if getattr(getattr(stream, "raw", None), "truncated", False):
            rep["warnings"].append("gzip data truncated: read up to the cut")


def _tag_source(items: Iterable[object], path: str) -> Iterator[object]:
    """PCAPdroid records keep their file as ``source``: each file has its own clock."""
    for item in items:
        if isinstance(item, PcapdroidConnection):
            yield PcapdroidConnection(**{**{f.name: getattr(item, f.name) for f in dc_fields(item)},
                                         "source": path})
        else:
            yield item


def _json_events(text: io.TextIOBase, parse) -> Iterator[object]:
    for item in iter_json_values(text):
        if isinstance(item, Reject):
            yield item
            continue
        line, value = item
        yield from parse(value, line)

