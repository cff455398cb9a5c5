"""Device-context logs, in the real MDM/Android formats, rendered from session truth.

Contract: given a :class:`~netan.testing.truth.SessionTruth`, write exactly the
formats of ``shared/formats/android-context.md`` (and CONTRACT.md "Context
inputs"), telling the truth about the recorded session:

* Android Management API ``BatchUsageLogEvents`` (§1.1-1.3): security batches
  (APP_PROCESS_START with ``processInfo{uid, packageNames}``, KEY_GENERATED /
  KEY_IMPORT / KEY_DESTRUCTION with ``applicationUid``, KEYGUARD_*) and network
  batches (CONNECT for every logged TCP connect, DNS for system-resolver
  lookups; never UDP), separate ``eventId`` counters, at most 1200 events a batch;
  as JSON lines, a JSON array, or Pub/Sub push envelopes.
* AMAPI ``Device`` resources as a ``devices.list`` response (§1.4) with
  ``networkInfo.wifiMacAddress`` = the namespace interface's MAC.
* UsageStats JSON lines ``{"device","package","eventType","timeStamp"}`` with
  ``UsageEvents.Event`` names and epoch-ms times (§3, CONTRACT.md).
* A dnsmasq lease file (§6.2): ``<expiry> <mac> <ip> <hostname|*> <client-id|*>``.

Device-side timestamps (AMAPI eventTime, UsageStats timeStamp) run on the
device clock: capture time + the device's ``skew``. The lease file and the
inventory are written by the gateway and the MDM server: no device skew.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from netan.testing.truth import AppEventTruth, DeviceTruth, SessionTruth

__all__ = [
    "rfc3339",
    "assign_uids",
    "amapi_batches",
    "pubsub_envelope",
    "device_resources",
    "usagestats_lines",
    "dnsmasq_leases",
    "write_context",
    "USAGE_EVENT_TYPES",
    "MAX_EVENTS_PER_BATCH",
]

log = logging.getLogger(__name__)

#: NetworkLoggingHandler.MAX_EVENTS_PER_BATCH; AMAPI batches close at this size.
MAX_EVENTS_PER_BATCH = 1200

#: UsageEvents.Event constants (AOSP core/java/android/app/usage/UsageEvents.java).
USAGE_EVENT_TYPES = {
    "ACTIVITY_RESUMED": 1, "ACTIVITY_PAUSED": 2, "END_OF_DAY": 3, "CONTINUE_PREVIOUS_DAY": 4,
    "CONFIGURATION_CHANGE": 5, "SYSTEM_INTERACTION": 6, "USER_INTERACTION": 7, "SHORTCUT_INVOCATION": 8,
    "CHOOSER_ACTION": 9, "NOTIFICATION_SEEN": 10, "STANDBY_BUCKET_CHANGED": 11, "NOTIFICATION_INTERRUPTION": 12,
    "SLICE_PINNED_PRIV": 13, "SLICE_PINNED": 14, "SCREEN_INTERACTIVE": 15, "SCREEN_NON_INTERACTIVE": 16,
    "KEYGUARD_SHOWN": 17, "KEYGUARD_HIDDEN": 18, "FOREGROUND_SERVICE_START": 19, "FOREGROUND_SERVICE_STOP": 20,
    "CONTINUING_FOREGROUND_SERVICE": 21, "ROLLOVER_FOREGROUND_SERVICE": 22, "ACTIVITY_STOPPED": 23,
    "ACTIVITY_DESTROYED": 24, "FLUSH_TO_DISK": 25, "DEVICE_SHUTDOWN": 26, "DEVICE_STARTUP": 27,
    "USER_UNLOCKED": 28, "USER_STOPPED": 29, "LOCUS_ID_SET": 30, "APP_COMPONENT_USED": 31,
}

#: truth kind -> (AMAPI eventType, payload field)
_SECURITY_KINDS = {
    "process_start": ("APP_PROCESS_START", "appProcessStartEvent"),
    "key_generated": ("KEY_GENERATED", "keyGeneratedEvent"),
    "key_imported": ("KEY_IMPORT", "keyImportEvent"),
    "key_destroyed": ("KEY_DESTRUCTION", "keyDestructionEvent"),
    "keyguard_secured": ("KEYGUARD_SECURED", "keyguardSecuredEvent"),
    "keyguard_dismissed": ("KEYGUARD_DISMISSED", "keyguardDismissedEvent"),
}

_MODELS = {  # model -> (brand, manufacturer, hardware)
    "Pixel 7": ("google", "Google", "panther"),
    "Pixel 8": ("google", "Google", "shiba"),
    "SM-S911B": ("samsung", "samsung", "qcom"),
}


_DISPLAY_NAMES = {"com.android.chrome": "Chrome", "com.android.vending": "Google Play Store"}


def rfc3339(t: float) -> str:
    """google-datetime as AMAPI writes it: UTC, millisecond precision, 'Z'."""
    ms = int(round(t * 1000))
    base = dt.datetime.fromtimestamp(ms // 1000, dt.timezone.utc)
    return base.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def assign_uids(truth: SessionTruth) -> dict[str, dict[str, int]]:
    """Give every (device, package) an app uid (>= 10000, stable per package name) unless set."""
    packages: dict[str, set[str]] = {}
    for rec in [*truth.flows, *truth.dns, *truth.events]:
        if rec.package and rec.package != "android":
            packages.setdefault(rec.device, set()).add(rec.package)
    for device, pkgs in packages.items():
        uids = truth.uids.setdefault(device, {})
        used = set(uids.values())
        for pkg in sorted(pkgs):
            if pkg in uids:
                continue
            uid = 10100 + int.from_bytes(hashlib.sha256(pkg.encode()).digest()[:4], "big") % 800
            while uid in used:
                uid += 1
            uids[pkg] = uid
            used.add(uid)
    return truth.uids


def _dev(truth: SessionTruth, device: str) -> DeviceTruth:
    try:
        return truth.devices[device]
    except KeyError:
        raise KeyError(f"truth mentions device {device!r} that is not in truth.devices") from None


def _security_event(ev: AppEventTruth, d: DeviceTruth, uid: int | None) -> tuple[str, str, dict[str, Any]]:
    etype, field_name = _SECURITY_KINDS[ev.kind]
    if ev.kind == "process_start":
        pkg = ev.package or ""
        payload: dict[str, Any] = {"processInfo": {
            "processName": ev.detail.get("process_name", pkg),
            "startTime": rfc3339(ev.time + d.skew),
            "uid": uid,
            "pid": int(ev.detail.get("pid") or 2000 + int(hashlib.sha256(pkg.encode()).hexdigest()[:6], 16) % 28000),
            "seinfo": ev.detail.get("seinfo", "default:targetSdkVersion=34:complete"),
            "apkSha256Hash": ev.detail.get("apk_sha256", hashlib.sha256(f"apk:{pkg}".encode()).hexdigest()),
            "packageNames": list(ev.detail.get("package_names", [pkg])),
        }}
    elif ev.kind.startswith("key_"):
        payload = {"keyAlias": ev.detail.get("alias", "none"), "applicationUid": uid,
                   "success": bool(ev.detail.get("success", True))}
    else:
        payload = {}
    return etype, field_name, payload


def amapi_batches(truth: SessionTruth, *, enterprise: str = "LC0netanlab", upload_delay: float = 90.0,
                  security_first_id: int = 4100, network_first_id: int = 12000) -> list[dict[str, Any]]:
    """BatchUsageLogEvents per device: security batches, then network batches.

    ``retrievalTime`` is the device-clock time the batch was collected
    (``upload_delay`` seconds after the session's last event).
    """
    unknown = {r.device for r in [*truth.flows, *truth.dns, *truth.events]} - set(truth.devices)
    if unknown:
        raise KeyError(f"truth mentions devices that are not in truth.devices: {sorted(unknown)}")
    uids = assign_uids(truth)
    batches: list[dict[str, Any]] = []
    for name, d in sorted(truth.devices.items()):
        sec: list[tuple[float, str, str, dict[str, Any]]] = []
        net: list[tuple[float, str, str, dict[str, Any]]] = []
        for ev in truth.events:
            if ev.device != name or ev.kind not in _SECURITY_KINDS:
                continue
            # An explicit owner wins (e.g. a negative system-namespace owner, §2.1).
            uid = (int(ev.detail["uid"]) if "uid" in ev.detail
                   else uids.get(name, {}).get(ev.package) if ev.package else None)
            if uid is None and (ev.kind == "process_start" or ev.kind.startswith("key_")):
                raise ValueError(f"no uid for {ev.package} on {name}")
            etype, field_name, payload = _security_event(ev, d, uid)
            sec.append((ev.time, etype, field_name, payload))
        for f in truth.flows:
            if f.device == name and f.proto == "tcp" and f.connect_logged and f.package:
                # Android's ConnectEvent: destination and package only; no source port, no bytes.
                t = f.connect_time if f.connect_time is not None else f.start
                net.append((t, "CONNECT", "connectEvent", {"destinationIpAddress": f.dst_ip,
                                                            "destinationPort": f.dst_port,
                                                            "packageName": f.package}))
        for q in truth.dns:
            if q.device == name and q.system_resolver and q.package:
                net.append((q.time, "DNS", "dnsEvent", {"hostname": q.hostname,
                                                        "ipAddresses": list(q.addresses)[:10],
                                                        "totalIpAddressesReturned": str(len(q.addresses)),
                                                        "packageName": q.package}))
        user = f"enterprises/{enterprise}/users/{int(hashlib.sha256(name.encode()).hexdigest()[:15], 16)}"
        retrieval = rfc3339(max(truth.end, truth.start) + upload_delay + d.skew)
        for events, first_id in ((sec, security_first_id), (net, network_first_id)):
            events.sort(key=lambda e: e[0])  # "sorted chronologically by the event time"
            for chunk_start in range(0, len(events), MAX_EVENTS_PER_BATCH):
                chunk = events[chunk_start:chunk_start + MAX_EVENTS_PER_BATCH]
                batches.append({
                    "device": d.amapi_name,
                    "user": user,
                    "retrievalTime": retrieval,
                    "usageLogEvents": [
                        {"eventId": str(first_id + chunk_start + i), "eventTime": rfc3339(t + d.skew),
                         "eventType": etype, field_name: payload}
                        for i, (t, etype, field_name, payload) in enumerate(chunk)
                    ],
                })
    return batches


def pubsub_envelope(batch: dict[str, Any], *, message_id: int, publish_time: float,
                    subscription: str = "projects/netan-lab/subscriptions/amapi-usage-logs") -> dict[str, Any]:
    """A Pub/Sub push body carrying one BatchUsageLogEvents (notificationType USAGE_LOGS)."""
    data = base64.b64encode(json.dumps(batch, separators=(",", ":")).encode()).decode()
    return {"message": {"attributes": {"notificationType": "USAGE_LOGS"}, "data": data,
                        "messageId": str(message_id), "publishTime": rfc3339(publish_time)},
            "subscription": subscription}


def device_resources(truth: SessionTruth, *, enterprise: str = "LC0netanlab") -> dict[str, Any]:
    """A ``devices.list`` response: one AMAPI Device per lab device (MDM-server times, no skew)."""
    uids = assign_uids(truth)
    devices = []
    for name, d in sorted(truth.devices.items()):
        brand, manufacturer, hardware = _MODELS.get(d.model, ("google", "Google", "unknown"))
        reports = []
        for pkg in sorted(uids.get(name, {})):
            system = pkg.startswith(("com.android.", "com.google.android.", "android"))
            reports.append({
                "packageName": pkg,
                "displayName": _DISPLAY_NAMES.get(pkg, pkg.rsplit(".", 1)[-1].capitalize()),
                "versionName": "1.0",
                "versionCode": 1,
                "state": "INSTALLED",
                "applicationSource": "SYSTEM_APP_UPDATED_VERSION" if system else "INSTALLED_FROM_PLAY_STORE",
                "packageSha256Hash": base64.b64encode(hashlib.sha256(f"apk:{pkg}".encode()).digest()).decode(),
                "events": [{"eventType": "INSTALLED", "createTime": rfc3339(truth.start - 86400 * 7)}],
            })
        devices.append({
            "name": d.amapi_name,
            "managementMode": "DEVICE_OWNER",
            "ownership": "COMPANY_OWNED",
            "state": "ACTIVE",
            "appliedState": "ACTIVE",
            "enrollmentTime": rfc3339(truth.start - 86400 * 30),
            "lastStatusReportTime": rfc3339(truth.end),
            "userName": f"enterprises/{enterprise}/users/{int(hashlib.sha256(name.encode()).hexdigest()[:15], 16)}",
            "hardwareInfo": {"brand": brand, "hardware": hardware, "manufacturer": manufacturer,
                             "model": d.model, "serialNumber": d.serial},
            "softwareInfo": {"androidVersion": "14", "securityPatchLevel": "2024-05-05"},
            "networkInfo": {"imei": d.imei, "wifiMacAddress": d.mac},
            "applicationReports": reports,
        })
    return {"devices": devices}


def usagestats_lines(truth: SessionTruth) -> list[dict[str, Any]]:
    """UsageStats export lines, device clock, in time order."""
    lines = []
    for ev in sorted(truth.events, key=lambda e: e.time):
        if ev.kind != "usage":
            continue
        d = _dev(truth, ev.device)
        etype = ev.detail["eventType"]
        if etype not in USAGE_EVENT_TYPES:
            raise ValueError(f"unknown UsageEvents.Event name {etype!r}")
        lines.append({"device": d.amapi_name, "package": ev.package or "android", "eventType": etype,
                      "timeStamp": int(round((ev.time + d.skew) * 1000))})
    return lines


def dnsmasq_leases(truth: SessionTruth, *, lease_time: int = 3600, granted_before: float = 120.0) -> str:
    """dnsmasq's lease file, as dnsmasq 2.90 writes it (checked against the real one in tests/test_lab.py).

    Devices with a recorded DHCP exchange (``truth.dhcp``) get that lease;
    the others are said to have got theirs ``granted_before`` s before the
    session. dnsmasq lists the newest lease first, prints host names in lower
    case, ``*`` for none, and the client id (option 61: type 1 + MAC).
    """
    leases: dict[str, tuple[float, int, str, str, str | None]] = {}
    for d in truth.devices.values():
        leases[d.mac] = (truth.start - granted_before, lease_time, d.mac, d.ipv4, d.hostname)
    for x in truth.dhcp:
        leases[x.mac] = (x.time, x.lease_time, x.mac, x.ip, x.hostname)
    out = []
    for granted, lt, mac, ip, hostname in sorted(leases.values(), key=lambda v: -v[0]):
        out.append(f"{int(granted) + lt} {mac} {ip} {hostname.lower() if hostname else '*'} 01:{mac}")
    return "\n".join(out) + "\n"


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def _jsonl(objs: Iterable[Any]) -> str:
    return "".join(json.dumps(o, separators=(",", ":"), sort_keys=False) + "\n" for o in objs)


def write_context(truth: SessionTruth, outdir: str | Path, *, enterprise: str = "LC0netanlab",
                  amapi_format: str = "jsonl", upload_delay: float = 90.0) -> list[Path]:
    """Write every context file into ``outdir``; returns the paths.

    ``amapi_format``: ``jsonl`` (one batch a line), ``array`` (a JSON array of
    batches), ``pubsub`` (Pub/Sub push bodies, one a line).
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    batches = amapi_batches(truth, enterprise=enterprise, upload_delay=upload_delay)
    if amapi_format == "jsonl":
        amapi = _jsonl(batches)
    elif amapi_format == "array":
        amapi = json.dumps(batches, indent=1) + "\n"
    elif amapi_format == "pubsub":
        amapi = _jsonl(pubsub_envelope(b, message_id=9000000000000 + i,
                                       publish_time=max(truth.end, truth.start) + upload_delay + 1.5)
                       for i, b in enumerate(batches))
    else:
        raise ValueError(f"unknown amapi_format {amapi_format!r}")
    paths = [
        _write(out / ("amapi-usage-logs.json" if amapi_format == "array" else "amapi-usage-logs.jsonl"), amapi),
        _write(out / "amapi-devices.json", json.dumps(device_resources(truth, enterprise=enterprise), indent=1) + "\n"),
        _write(out / "usagestats.jsonl", _jsonl(usagestats_lines(truth))),
        _write(out / "dnsmasq.leases", dnsmasq_leases(truth)),
    ]
    log.info("wrote %d context files to %s", len(paths), out)
    return paths
