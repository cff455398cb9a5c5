"""AMAPI BatchUsageLogEvents and Device importers, on inputs written in the real formats.

The JSON below follows the androidmanagement v1 discovery doc field by field
(formats doc section 1.3's examples), including proto3 JSON habits: int64 as
strings, defaults omitted.
"""
from __future__ import annotations

import base64
import json

import pytest

from netan.context import amapi_devices, amapi_usage_logs
from netan.context.detect import detect
from netan.context.loader import load_context
from netan.context.model import (
    CertEvent,
    ConnectEvent,
    DeviceStateEvent,
    DnsEvent,
    KeyEvent,
    ProcessStart,
    Reject,
    SecurityEvent,
    UnknownEvent,
)

DEV = "enterprises/LC02abcd12/devices/3f1c2b9e7a6d5c41"

SECURITY_BATCH = {
    "device": DEV,
    "user": "enterprises/LC02abcd12/users/112233445566778899",
    "retrievalTime": "2024-06-03T09:15:02.481Z",
    "usageLogEvents": [
        {"eventId": "8812", "eventTime": "2024-06-03T09:02:11.204Z", "eventType": "APP_PROCESS_START",
         "appProcessStartEvent": {"processInfo": {
             "processName": "com.example.notes", "startTime": "2024-06-03T09:02:11.180Z",
             "uid": 10213, "pid": 23451, "seinfo": "default:targetSdkVersion=34:complete",
             "apkSha256Hash": "9f2c4b", "packageNames": ["com.example.notes"]}}},
        {"eventId": "8813", "eventTime": "2024-06-03T09:02:12.950Z", "eventType": "KEY_GENERATED",
         "keyGeneratedEvent": {"keyAlias": "_androidx_security_master_key_", "applicationUid": 10213,
                               "success": True}},
        {"eventId": "8814", "eventTime": "2024-06-03T09:03:55.002Z", "eventType": "KEYGUARD_SECURED",
         "keyguardSecuredEvent": {}},
    ],
}
NETWORK_BATCH = {
    "device": DEV,
    "retrievalTime": "2024-06-03T10:40:00.000Z",
    "usageLogEvents": [
        {"eventId": "4471", "eventTime": "2024-06-03T09:04:40.017Z", "eventType": "DNS",
         "dnsEvent": {"hostname": "upload.example-cdn.net", "ipAddresses": ["203.0.113.45"],
                      "totalIpAddressesReturned": "1", "packageName": "com.example.notes"}},
        {"eventId": "4472", "eventTime": "2024-06-03T09:04:40.311Z", "eventType": "CONNECT",
         "connectEvent": {"destinationIpAddress": "203.0.113.45", "destinationPort": 443,
                          "packageName": "com.example.notes"}},
    ],
}


def _events(value, line=1):
    return list(amapi_usage_logs.parse_value(value, line))


def _push(batch, ntype="USAGE_LOGS") -> dict:
    data = base64.b64encode(json.dumps(batch).encode()).decode()
    return {"message": {"attributes": {"notificationType": ntype}, "data": data,
                        "messageId": "9876543210123", "publishTime": "2024-06-03T09:15:03.112Z"},
            "subscription": "projects/acme-mdm/subscriptions/amapi-usage-logs"}


def test_security_batch_fields():
    evs = _events(SECURITY_BATCH)
    proc, key, guard = evs
    assert isinstance(proc, ProcessStart)
    assert (proc.uid, proc.pid, proc.packages, proc.device) == (10213, 23451, ("com.example.notes",), DEV)
    assert proc.ts == pytest.approx(1717405331.204)
    assert isinstance(key, KeyEvent)
    assert (key.op, key.alias, key.uid, key.success, key.event_id) == (
        "generate", "_androidx_security_master_key_", 10213, True, "8813")
    assert isinstance(guard, DeviceStateEvent) and (guard.kind, guard.value) == ("keyguard", "shown")


def test_network_batch_fields():
    dns, conn = _events(NETWORK_BATCH)
    assert isinstance(dns, DnsEvent)
    assert dns.hostname == "upload.example-cdn.net" and dns.addresses == ("203.0.113.45",)
    assert dns.total_addresses == 1 and dns.package == "com.example.notes"
    assert isinstance(conn, ConnectEvent)
    assert (conn.dst_ip, conn.dst_port, conn.package) == ("203.0.113.45", 443, "com.example.notes")
    assert conn.ts == pytest.approx(1717405480.311)


def test_proto3_defaults_omitted():
    """success:false and applicationUid:0 are omitted in proto3 JSON."""
    batch = {"device": DEV, "usageLogEvents": [
        {"eventId": "1", "eventTime": "2024-06-03T09:00:00Z", "eventType": "KEY_IMPORT",
         "keyImportEvent": {"keyAlias": "k1", "applicationUid": 10300}},
        {"eventId": "2", "eventTime": "2024-06-03T09:00:01Z", "eventType": "KEY_INTEGRITY_VIOLATION",
         "keyIntegrityViolationEvent": {"keyAlias": "k1", "applicationUid": -2147483640}},
        {"eventId": "3", "eventTime": "2024-06-03T09:00:02Z", "eventType": "KEY_DESTRUCTION",
         "keyDestructionEvent": {"keyAlias": "k1", "applicationUid": "10300", "success": True}},
    ]}
    imp, viol, dest = _events(batch)
    assert imp.op == "import" and imp.success is False
    assert viol.op == "integrity_violation" and viol.success is None and viol.owner_is_system
    assert dest.op == "destroy" and dest.uid == 10300 and dest.success is True


def test_other_types_and_unknown():
    batch = {"device": DEV, "usageLogEvents": [
        {"eventId": "5", "eventTime": "2024-06-03T09:00:00.123456789Z", "eventType": "CERT_AUTHORITY_INSTALLED",
         "certAuthorityInstalledEvent": {"certificate": "CN=Evil CA", "success": True, "userId": 0}},
        {"eventId": "6", "eventTime": "2024-06-03T09:00:01+02:00", "eventType": "OS_STARTUP",
         "osStartupEvent": {"verifiedBootState": "GREEN", "verityMode": "ENFORCING"}},
        {"eventId": "7", "eventTime": "2024-06-03T09:00:02Z", "eventType": "BACKUP_SERVICE_TOGGLED",
         "backupServiceToggledEvent": {"backupServiceState": "ENABLED"}},
        {"eventId": "8", "eventTime": "2024-06-03T09:00:03Z", "eventType": "KEYGUARD_DISMISS_AUTH_ATTEMPT",
         "keyguardDismissAuthAttemptEvent": {"success": True, "strongAuthMethodUsed": True}},
    ]}
    cert, boot, unknown, auth = _events(batch)
    assert isinstance(cert, CertEvent) and cert.subject == "CN=Evil CA" and cert.op == "installed"
    assert cert.ts == pytest.approx(1717405200.123456789)
    assert isinstance(boot, SecurityEvent) and ("verifiedBootState", "GREEN") in boot.fields
    # +02:00 is honoured: 09:00:01+02:00 == 07:00:01Z
    assert boot.ts == pytest.approx(1717398001.0)
    assert isinstance(unknown, UnknownEvent) and unknown.event_type == "BACKUP_SERVICE_TOGGLED"
    assert isinstance(auth, DeviceStateEvent) and auth.kind == "keyguard_auth" and auth.strong_auth


@pytest.mark.parametrize("event_time, fragment", [
    ("2024-06-03 09:00:00", "no time zone"),
    ("2024-06-03T09:00:00", "no time zone"),
    ("03/06/2024 09:00", "not RFC 3339"),
    (1717405200000, "expected RFC 3339"),
    ("2024-13-03T09:00:00Z", "month must be"),
    ("1969-06-03T09:00:00Z", "outside 2000..2100"),
    (None, "expected RFC 3339"),
])
def test_bad_timestamps_rejected(event_time, fragment):
    batch = {"device": DEV, "usageLogEvents": [
        {"eventId": "1", "eventTime": event_time, "eventType": "CONNECT",
         "connectEvent": {"destinationIpAddress": "203.0.113.45", "destinationPort": 443, "packageName": "a.b"}}]}
    (rej,) = _events(batch, line=7)
    assert isinstance(rej, Reject) and rej.line == 7
    assert fragment in rej.reason and "usageLogEvents[0]" in rej.reason


def test_bad_payloads_rejected():
    batch = {"device": DEV, "usageLogEvents": [
        {"eventId": "1", "eventTime": "2024-06-03T09:00:00Z", "eventType": "CONNECT",
         "connectEvent": {"destinationIpAddress": "not-an-ip", "destinationPort": 443}},
        {"eventId": "2", "eventTime": "2024-06-03T09:00:00Z", "eventType": "CONNECT",
         "connectEvent": {"destinationIpAddress": "1.2.3.4", "destinationPort": 70000}},
        {"eventId": "3", "eventTime": "2024-06-03T09:00:00Z", "eventType": "KEY_GENERATED"},
        "not an object",
        {"eventId": "4", "eventTime": "2024-06-03T09:00:00Z", "eventType": "DNS", "dnsEvent": "x"},
    ]}
    out = _events(batch)
    assert all(isinstance(r, Reject) for r in out) and len(out) == 5


def test_pubsub_push_envelope_and_bare_message():
    evs = _events(_push(NETWORK_BATCH))
    assert [type(e).__name__ for e in evs] == ["DnsEvent", "ConnectEvent"]
    evs2 = _events(_push(NETWORK_BATCH)["message"])  # a bare PubsubMessage (pull)
    assert evs2 == evs


def test_pubsub_urlsafe_and_unpadded():
    data = base64.urlsafe_b64encode(json.dumps(NETWORK_BATCH).encode()).decode().rstrip("=")
    env = {"message": {"attributes": {"notificationType": "USAGE_LOGS"}, "data": data, "messageId": "1"}}
    assert len(_events(env)) == 2


@pytest.mark.parametrize("data, fragment", [
    ("!!!not base64!!!", "not valid base64"),
    (base64.b64encode(b"\xff\xfe garbage").decode(), "UTF-8 JSON"),
    (base64.b64encode(b'{"foo": 1}').decode(), "not a BatchUsageLogEvents"),
])
def test_pubsub_bad_data(data, fragment):
    env = {"message": {"attributes": {"notificationType": "USAGE_LOGS"}, "data": data, "messageId": "1"}}
    (rej,) = _events(env, line=3)
    assert isinstance(rej, Reject) and fragment in rej.reason and rej.line == 3


def test_status_report_envelope_yields_device():
    device = {"name": DEV, "hardwareInfo": {"serialNumber": "SER123"},
              "networkInfo": {"wifiMacAddress": "7C:11:11:11:11:11", "imei": "356938035643809"}}
    (inv,) = _events(_push(device, "STATUS_REPORT"))
    assert inv.device_id == DEV and inv.macs == ("7c:11:11:11:11:11",) and inv.serial == "SER123"


def test_devices_list_response():
    resp = {"devices": [
        {"name": DEV, "managementMode": "DEVICE_OWNER",
         "hardwareInfo": {"serialNumber": "SER123", "brand": "google", "model": "Pixel 8",
                          "enterpriseSpecificId": "ESID-1"},
         "networkInfo": {"wifiMacAddress": "7c:11:11:11:11:11", "imei": "356938035643809", "meid": ""},
         "applicationReports": [{"packageName": "com.example.notes", "versionCode": 7}]},
        {"name": "enterprises/LC02abcd12/devices/aaaa", "state": "ACTIVE",
         "hardwareInfo": {"serialNumber": "SER999"}},
    ], "nextPageToken": "abc"}
    assert amapi_devices.looks_like(resp)
    a, b = amapi_devices.parse_value(resp, 1)
    assert a.device_id == DEV and a.imeis == ("356938035643809",) and a.packages == ("com.example.notes",)
    assert "3f1c2b9e7a6d5c41" in a.aliases and "ESID-1" in a.aliases and a.model == "google Pixel 8"
    assert b.macs == () and b.serial == "SER999"
    # one Device and a bare list are accepted as well
    assert len(list(amapi_devices.parse_value(resp["devices"][0], 1))) == 1
    assert len(list(amapi_devices.parse_value(resp["devices"], 1))) == 2


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_loader_forms_dedup_and_lines(tmp_path):
    # the same batches as: one object, an array, JSON lines, push envelopes (duplicated delivery)
    files = [
        _write(tmp_path, "a", json.dumps(SECURITY_BATCH, indent=2)),
        _write(tmp_path, "b", json.dumps([SECURITY_BATCH, NETWORK_BATCH])),
        _write(tmp_path, "c", json.dumps(NETWORK_BATCH) + "\n" + json.dumps(SECURITY_BATCH) + "\n"),
        _write(tmp_path, "d", json.dumps(_push(NETWORK_BATCH)) + "\n" + json.dumps(_push(NETWORK_BATCH)) + "\n"),
    ]
    ctx = load_context(files)
    reps = {r["file"]: r for r in ctx.report}
    assert all(r["format"] == "amapi_usage_logs" for r in ctx.report)
    assert reps[files[0]]["events_read"] == 3 and reps[files[0]]["duplicates"] == 0
    assert reps[files[1]]["events_read"] == 2 and reps[files[1]]["duplicates"] == 3
    assert reps[files[2]]["duplicates"] == 5
    assert reps[files[3]]["duplicates"] == 4
    tl = ctx.timeline(DEV)
    assert tl.counts()["connect_events"] == 1 and tl.counts()["key_events"] == 1
    assert reps[files[0]]["devices"] == [DEV]


def test_dedup_keeps_same_id_after_reboot(tmp_path):
    """Event ids restart at reboot: same id, different time is a different event."""
    b1 = {"device": DEV, "usageLogEvents": [
        {"eventId": "1", "eventTime": "2024-06-03T09:00:00Z", "eventType": "CONNECT",
         "connectEvent": {"destinationIpAddress": "1.2.3.4", "destinationPort": 443, "packageName": "a.b"}}]}
    b2 = json.loads(json.dumps(b1))
    b2["usageLogEvents"][0]["eventTime"] = "2024-06-03T11:00:00Z"
    # and the security family's id 1 is another event too
    b3 = {"device": DEV, "usageLogEvents": [
        {"eventId": "1", "eventTime": "2024-06-03T09:00:00Z", "eventType": "KEYGUARD_SECURED"}]}
    ctx = load_context([_write(tmp_path, "x", "\n".join(json.dumps(b) for b in (b1, b2, b3, b1)))])
    rep = ctx.report[0]
    assert rep["events_read"] == 3 and rep["duplicates"] == 1


def test_loader_malformed_lines_counted(tmp_path):
    good = json.dumps(NETWORK_BATCH)
    text = "\n".join([good, '{"device": "x", "usageLogEvents": [', "[1, 2", good.replace("4472", "4473"),
                      json.dumps({"message": {"attributes": {"notificationType": "USAGE_LOGS"},
                                              "data": "%%%", "messageId": "1"}}), "42"]) + "\n"
    ctx = load_context([_write(tmp_path, "bad.jsonl", text)])
    rep = ctx.report[0]
    assert rep["format"] == "amapi_usage_logs"
    lines = sorted(r["line"] for r in rep["rejected"])
    assert lines == [2, 3, 5, 6] and rep["rejected_total"] == 4
    assert rep["events_read"] == 3 and rep["duplicates"] == 1  # 4471 again, new 4473
    json.dumps(rep)  # serialisable


def test_detect_by_content_not_name(tmp_path):
    fmt, _ = detect(json.dumps(_push(NETWORK_BATCH)).encode())
    assert fmt == "amapi_usage_logs"
    fmt, _ = detect(json.dumps({"devices": [{"name": DEV, "hardwareInfo": {}}]}).encode())
    assert fmt == "amapi_devices"


def test_mixed_pubsub_dump_feeds_inventory_and_timeline(tmp_path):
    device = {"name": DEV, "hardwareInfo": {"serialNumber": "SER123"},
              "networkInfo": {"wifiMacAddress": "7c:11:11:11:11:11"}}
    lines = [_push(NETWORK_BATCH), _push(device, "STATUS_REPORT"), device,
             _push({"enterpriseName": "x"}, "COMMAND"), _push(SECURITY_BATCH)]
    ctx = load_context([_write(tmp_path, "dump.jsonl", "\n".join(json.dumps(x) for x in lines))])
    rep = ctx.report[0]
    assert rep["format"] == "amapi_usage_logs"
    assert [r["line"] for r in rep["rejected"]] == [4] and "COMMAND" in rep["rejected"][0]["reason"]
    assert ctx.device_for_mac("7c:11:11:11:11:11") == DEV
    assert ctx.timeline(DEV).counts()["connect_events"] == 1


def test_cert_and_auth_events_reach_the_timeline(tmp_path):
    batch = {"device": DEV, "usageLogEvents": [
        {"eventId": "5", "eventTime": "2024-06-03T09:00:00Z", "eventType": "CERT_AUTHORITY_INSTALLED",
         "certAuthorityInstalledEvent": {"certificate": "CN=Evil CA", "success": True}},
        {"eventId": "6", "eventTime": "2024-06-03T09:00:05Z", "eventType": "KEYGUARD_DISMISS_AUTH_ATTEMPT",
         "keyguardDismissAuthAttemptEvent": {"success": False}}]}
    tl = load_context([_write(tmp_path, "c.json", json.dumps(batch))]).timeline(DEV)
    (cert,) = tl.cert_events(1717405190.0, 1717405210.0)
    assert cert.subject == "CN=Evil CA" and tl.counts()["cert_events"] == 1
    (auth,) = tl.keyguard_auth_attempts(1717405200.0, 1717405206.0)
    assert auth.value == "failure"


def test_pubsub_with_already_decoded_data():
    env = {"message": {"attributes": {"notificationType": "USAGE_LOGS"}, "data": NETWORK_BATCH, "messageId": "1"}}
    assert [type(e).__name__ for e in _events(env)] == ["DnsEvent", "ConnectEvent"]


def test_gcloud_pull_output(tmp_path):
    """`gcloud pubsub subscriptions pull --format=json`: a list of {ackId, message}."""
    pulled = [{"ackId": "RUFeQBJMN", "message": _push(NETWORK_BATCH)["message"]},
              {"ackId": "RUFeQBJMO", "message": _push(SECURITY_BATCH)["message"]}]
    ctx = load_context([_write(tmp_path, "pull.json", json.dumps(pulled, indent=2))])
    assert ctx.report[0]["format"] == "amapi_usage_logs" and ctx.report[0]["events_read"] == 5
