"""Render context in the real formats: for tests, demos and recordings with known truth.

The end-to-end tests record traffic from client processes whose identity
exists only in context logs; these helpers write those logs exactly as the
real producers do (AMAPI ``BatchUsageLogEvents`` and its Pub/Sub push envelope,
AMAPI ``Device`` resources, UsageStats JSON lines, dnsmasq leases, PCAPdroid CSV).
Pure functions returning text; the importer unit tests use hand-written inputs
instead, so a writer bug cannot hide a parser bug.
"""
from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Iterable, Sequence

__all__ = [
    "rfc3339",
    "amapi_event",
    "amapi_batch",
    "pubsub_push",
    "amapi_device",
    "usagestats_line",
    "dnsmasq_line",
    "pcapdroid_csv",
]


def rfc3339(ts: float) -> str:
    """google-datetime: UTC, 'Z', millisecond precision (as AMAPI renders it)."""
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def amapi_event(event_id: int, ts: float, kind: str, **payload: object) -> dict:
    """One UsageLogEvent. ``kind``: connect, dns, key_generated, key_import,
    key_destruction, process_start, keyguard_secured, keyguard_dismissed."""
    base = {"eventId": str(event_id), "eventTime": rfc3339(ts)}
    if kind == "connect":
        return {**base, "eventType": "CONNECT", "connectEvent": {
            "destinationIpAddress": payload["ip"], "destinationPort": payload["port"],
            "packageName": payload["package"]}}
    if kind == "dns":
        ips = list(payload["ips"])  # type: ignore[arg-type]
        return {**base, "eventType": "DNS", "dnsEvent": {
            "hostname": payload["host"], "ipAddresses": ips[:10],
            "totalIpAddressesReturned": str(len(ips)), "packageName": payload["package"]}}
    if kind in ("key_generated", "key_import", "key_destruction"):
        etype = {"key_generated": ("KEY_GENERATED", "keyGeneratedEvent"),
                 "key_import": ("KEY_IMPORT", "keyImportEvent"),
                 "key_destruction": ("KEY_DESTRUCTION", "keyDestructionEvent")}[kind]
        body: dict = {"keyAlias": payload["alias"], "applicationUid": payload["uid"]}
        if payload.get("success", True):
            body["success"] = True  # proto3 JSON omits false
        return {**base, "eventType": etype[0], etype[1]: body}
    if kind == "process_start":
        return {**base, "eventType": "APP_PROCESS_START", "appProcessStartEvent": {"processInfo": {
            "processName": payload["package"], "startTime": rfc3339(ts), "uid": payload["uid"],
            "pid": payload.get("pid", 20000 + event_id), "seinfo": "default:targetSdkVersion=34:complete",
            "apkSha256Hash": "00" * 32, "packageNames": [payload["package"]]}}}
    if kind == "keyguard_secured":
        return {**base, "eventType": "KEYGUARD_SECURED", "keyguardSecuredEvent": {}}
    if kind == "keyguard_dismissed":
        return {**base, "eventType": "KEYGUARD_DISMISSED", "keyguardDismissedEvent": {}}
    raise ValueError(f"unknown kind {kind}")


def amapi_batch(device: str, events: Sequence[dict], retrieval_ts: float | None = None) -> dict:
    """A BatchUsageLogEvents; events are sorted chronologically as the API promises."""
    evs = sorted(events, key=lambda e: e["eventTime"])
    out: dict = {"device": device, "user": device.split("/devices/")[0] + "/users/1",
                 "usageLogEvents": evs}
    if retrieval_ts is not None:
        out["retrievalTime"] = rfc3339(retrieval_ts)
    return out


def pubsub_push(batch: dict, message_id: int, publish_ts: float,
                subscription: str = "projects/p/subscriptions/amapi-usage-logs") -> dict:
    """The Pub/Sub push envelope around a USAGE_LOGS notification."""
    data = base64.b64encode(json.dumps(batch, separators=(",", ":")).encode()).decode()
    return {"message": {"attributes": {"notificationType": "USAGE_LOGS"}, "data": data,
                        "messageId": str(message_id), "publishTime": rfc3339(publish_ts)},
            "subscription": subscription}


def amapi_device(name: str, serial: str, wifi_mac: str, imei: str = "",
                 packages: Iterable[str] = ()) -> dict:
    """An AMAPI Device resource with hardwareInfo and networkInfo."""
    dev: dict = {"name": name, "managementMode": "DEVICE_OWNER", "state": "ACTIVE",
                 "ownership": "COMPANY_OWNED",
                 "hardwareInfo": {"serialNumber": serial, "brand": "google", "model": "Pixel 8"},
                 "networkInfo": {"wifiMacAddress": wifi_mac}}
    if imei:
        dev["networkInfo"]["imei"] = imei
    pk = list(packages)
    if pk:
        dev["applicationReports"] = [{"packageName": p, "versionCode": 1} for p in pk]
    return dev


def usagestats_line(device: str | None, package: str, event_type: str | int, ts: float,
                    class_name: str = "", instance_id: int | None = None) -> str:
    obj: dict = {"package": package, "eventType": event_type, "timeStamp": int(round(ts * 1000))}
    if device is not None:
        obj["device"] = device
    if class_name:
        obj["className"] = class_name
    if instance_id is not None:
        obj["instanceId"] = instance_id
    return json.dumps(obj)


def dnsmasq_line(expiry: int, mac: str, ip: str, hostname: str = "*") -> str:
    return f"{expiry} {mac} {ip} {hostname or '*'} 01:{mac}"


def _pcapdroid_time(ts: float) -> str:
    """PCAPdroid's CSV time: ISO 8601 in UTC with milliseconds and a Z (Java's yyyy-MM-dd'T'HH:mm:ss.SSS + zone)."""
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def pcapdroid_csv(rows: Iterable[dict]) -> str:
    """PCAPdroid's connections CSV (no quoting, as the app writes it)."""
    header = ("IPProto,SrcIP,SrcPort,DstIp,DstPort,UID,App,PackageName,Proto,Status,Info,"
              "BytesSent,BytesRcvd,PktsSent,PktsRcvd,FirstSeen,LastSeen")
    lines = [header]
    for r in rows:
        lines.append(",".join(str(x) for x in (
            {"tcp": 6, "udp": 17}[r["proto"]], r.get("src_ip", "10.215.173.1"), r.get("src_port", 40000),
            r["dst_ip"], r["dst_port"], r["uid"], r.get("app", ""), r["package"], r.get("l7", "TLS"),
            r.get("status", "Closed"), r.get("info", ""), r["bytes_out"], r["bytes_in"], r["pkts_out"],
            r["pkts_in"], _pcapdroid_time(r["ts"]), _pcapdroid_time(r["ts_end"]))))
    return "\n".join(lines) + "\n"
