"""Inventory importers (Intune managedDevice, Workspace ONE device search) and cross-source merging."""
from __future__ import annotations

import json

from netan.context import intune, workspaceone
from netan.context.detect import detect
from netan.context.loader import load_context
from netan.context.model import InventoryDevice, Reject

# Graph GET /deviceManagement/managedDevices response (fields per intune-devices-manageddevice.md)
INTUNE = {
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#deviceManagement/managedDevices",
    "value": [
        {"@odata.type": "#microsoft.graph.managedDevice", "id": "705c034c-034c-705c-4c03-5c704c035c70",
         "userId": "u1", "deviceName": "Pixel-8-Alice", "managedDeviceOwnerType": "company",
         "operatingSystem": "Android", "managementAgent": "googleCloudDevicePolicyController",
         "azureADDeviceId": "b1b2b3b4-0000-0000-0000-000000000001", "serialNumber": "SER123",
         "imei": "356938035643809", "meid": None, "wiFiMacAddress": "7C1111111111",
         "ethernetMacAddress": None, "manufacturer": "Google", "model": "Pixel 8",
         "userPrincipalName": "alice@example.com", "managedDeviceName": "alice_Android_6/3/2024"},
        {"id": "", "deviceName": "broken", "managedDeviceOwnerType": "company", "azureADDeviceId": "x"},
    ],
}

# Workspace ONE GET /api/mdm/devices/search response (field names per the formats doc 6.1)
WS1 = {
    "Devices": [
        {"Id": {"Value": 1234}, "Uuid": "1c2d3e4f-aaaa-bbbb-cccc-000000000001", "Udid": "3f1c2b9e7a6d5c41aa",
         "SerialNumber": "SER555", "MacAddress": "02AABBCCDDEE", "Imei": "490154203237518",
         "DeviceFriendlyName": "Bob Pixel 7 Android 14.0.0 NYC", "Platform": "Android",
         "Model": "Pixel 7", "UserName": "bob", "Ownership": "C", "LastSeen": "2024-06-03T09:01:02.123"},
        {"SerialNumber": "nothing-else", "DeviceFriendlyName": "no ids"},
    ],
    "Page": 0, "PageSize": 500, "Total": 2,
}


def test_intune():
    assert intune.looks_like(INTUNE)
    out = list(intune.parse_value(INTUNE, 1))
    dev, rej = out
    assert isinstance(dev, InventoryDevice) and isinstance(rej, Reject)
    assert dev.device_id == "705c034c-034c-705c-4c03-5c704c035c70"
    assert dev.macs == ("7c:11:11:11:11:11",) and dev.serial == "SER123" and dev.imeis == ("356938035643809",)
    assert "Pixel-8-Alice" in dev.names and dev.model == "Google Pixel 8"


def test_workspaceone():
    assert workspaceone.looks_like(WS1)
    dev, rej = list(workspaceone.parse_value(WS1, 1))
    assert dev.device_id == "3f1c2b9e7a6d5c41aa" and dev.macs == ("02:aa:bb:cc:dd:ee",)
    assert "ws1:1234" in dev.aliases and "SER555" in dev.aliases
    assert isinstance(rej, Reject)


def test_detect_and_merge_across_sources(tmp_path):
    amapi = {"name": "enterprises/E/devices/D1", "hardwareInfo": {"serialNumber": "SER123"},
             "networkInfo": {"wifiMacAddress": "7c:11:11:11:11:11"}}
    files = {}
    for name, obj in (("i.json", INTUNE), ("w.json", WS1), ("a.json", amapi)):
        p = tmp_path / name
        p.write_text(json.dumps(obj, indent=1))
        files[name] = str(p)
    assert detect(json.dumps(INTUNE).encode())[0] == "intune"
    assert detect(json.dumps(WS1).encode())[0] == "workspaceone"
    ctx = load_context([files["a.json"], files["i.json"], files["w.json"]])
    assert [r["format"] for r in ctx.report] == ["amapi_devices", "intune", "workspaceone"]
    # AMAPI and Intune name the same phone (serial SER123): one device, AMAPI id canonical
    inv = ctx.inventory
    assert len(inv) == 2
    assert inv.resolve("705c034c-034c-705c-4c03-5c704c035c70") == "enterprises/E/devices/D1"
    assert inv.resolve("Pixel-8-Alice") == "enterprises/E/devices/D1"
    assert inv.resolve("D1") == "enterprises/E/devices/D1"
    assert inv.by_mac("7C-11-11-11-11-11") == "enterprises/E/devices/D1"
    assert inv.by_mac("02:aa:bb:cc:dd:ee") == "3f1c2b9e7a6d5c41aa"
    assert set(inv.devices["enterprises/E/devices/D1"]["sources"]) == {"amapi_devices", "intune"}
    assert [r["rejected_total"] for r in ctx.report] == [0, 1, 1]


def test_shared_names_and_placeholders_do_not_merge_devices():
    from netan.context.timeline import Inventory

    inv = Inventory()
    a = InventoryDevice("id-a", "intune", serial="unknown", macs=(), names=("Pixel 8",))
    b = InventoryDevice("id-b", "intune", serial="unknown", macs=(), names=("Pixel 8",))
    c = InventoryDevice("id-c", "intune", serial="SER-C", names=("Carol's phone",))
    assert [inv.add(x) for x in (a, b, c)] == ["id-a", "id-b", "id-c"]
    assert inv.resolve("Pixel 8") is None          # two devices share it: not guessed
    assert inv.resolve("carol's phone") == "id-c"  # unique name resolves
    assert inv.resolve("unknown") is None
    # Android's permission placeholder MAC is no MAC
    (d,) = intune.parse_value({"id": "id-d", "managedDeviceOwnerType": "company", "azureADDeviceId": "x",
                               "wiFiMacAddress": "02:00:00:00:00:00"}, 1)
    assert d.macs == ()


def test_utf16_powershell_export(tmp_path):
    """Windows PowerShell 5.1 `ConvertTo-Json | Out-File` writes UTF-16LE with a BOM."""
    p = tmp_path / "managedDevices.json"
    p.write_bytes(json.dumps(INTUNE, indent=4).encode("utf-16"))
    ctx = load_context([str(p)])
    assert ctx.report[0]["format"] == "intune" and ctx.report[0]["events_read"] == 1
    q = tmp_path / "bom8.json"
    q.write_bytes(b"\xef\xbb\xbf" + json.dumps(WS1).encode())
    assert load_context([str(q)]).report[0]["events_read"] == 1
