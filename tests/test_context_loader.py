"""The loader on bad input: unrecognised files, broken encodings, unknown devices, huge files."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from netan.context.loader import MAX_REJECTS_LISTED, load_context

DEV = "enterprises/E/devices/D1"


def batch(device: str, first_id: int, n: int, t0: str = "2024-06-03T09:00") -> dict:
    return {"device": device, "usageLogEvents": [
        {"eventId": str(first_id + i), "eventTime": f"{t0}:{i % 60:02d}.{i:03d}Z", "eventType": "CONNECT",
         "connectEvent": {"destinationIpAddress": f"203.0.113.{i % 250}", "destinationPort": 443,
                          "packageName": "com.example.notes"}} for i in range(n)]}


def test_unrecognised_files_reported_by_name(tmp_path):
    files = {
        "empty": b"",
        "random.bin": bytes(range(256)) * 8,
        "notes.txt": b"hello world\nthis is not a context file\n",
        "other.json": json.dumps({"foo": 1, "bar": [1, 2]}).encode(),
        "broken.json": b'{"usageLogEvents": [',
        "image.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    ctx = load_context([str(tmp_path)])
    reps = {Path(r["file"]).name: r for r in ctx.report}
    assert set(reps) == set(files)
    for name in ("empty", "random.bin", "notes.txt", "other.json", "image.png"):
        assert reps[name]["format"] is None, name
        assert reps[name]["warnings"] and reps[name]["warnings"][0].startswith("not recognised"), name
    assert "bar, foo" in reps["other.json"]["warnings"][0]
    # a JSON file cut short is still recognised by its keys, and its one value is rejected
    assert reps["broken.json"]["format"] == "amapi_usage_logs"
    assert reps["broken.json"]["rejected_total"] == 1
    json.dumps(ctx.report)


def test_gzip_directories_and_bad_gzip(tmp_path):
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    with gzip.open(sub / "logs.gz", "wt") as f:
        f.write(json.dumps(batch(DEV, 1, 5)) + "\n")
    good = gzip.compress(json.dumps(batch(DEV, 100, 5)).encode())
    (tmp_path / "cut.gz").write_bytes(good[: len(good) // 2])
    ctx = load_context([str(tmp_path)])
    reps = {Path(r["file"]).name: r for r in ctx.report}
    assert reps["logs.gz"]["format"] == "amapi_usage_logs" and reps["logs.gz"]["events_read"] == 5
    # cut in the middle: recognised, the partial JSON rejected, the truncation said
    assert reps["cut.gz"]["format"] == "amapi_usage_logs"
    assert reps["cut.gz"]["rejected_total"] == 1
    assert any("truncated" in w for w in reps["cut.gz"]["warnings"])


def test_bad_utf8_and_mixed_lines(tmp_path):
    lines = [json.dumps(batch(DEV, 1, 2)).encode(), b'{"device": "\xff\xfe", "usageLogEvents": "x"}',
             b"\x00\x01 not json", json.dumps(batch(DEV, 10, 1)).encode()]
    p = tmp_path / "mixed"
    p.write_bytes(b"\n".join(lines) + b"\n")
    ctx = load_context([str(p)])
    rep = ctx.report[0]
    assert rep["format"] == "amapi_usage_logs"
    assert rep["events_read"] == 3 and [r["line"] for r in rep["rejected"]] == [2, 3]


def test_concatenated_pretty_values_and_unclosed_array(tmp_path):
    p = tmp_path / "pretty"
    p.write_text(json.dumps(batch(DEV, 1, 2), indent=2) + "\n" + json.dumps(batch(DEV, 5, 2), indent=2))
    q = tmp_path / "unclosed"
    q.write_text("[" + json.dumps(batch(DEV, 20, 2)) + ",\n" + json.dumps(batch(DEV, 30, 1)))
    ctx = load_context([str(p), str(q)])
    a, b = ctx.report
    assert a["events_read"] == 4 and a["rejected_total"] == 0
    assert b["events_read"] == 3 and b["rejected_total"] == 1 and "not closed" in b["rejected"][0]["reason"]


def test_devices_not_in_inventory_are_kept_and_reported(tmp_path):
    inv = tmp_path / "inv.json"
    inv.write_text(json.dumps([{"name": DEV, "hardwareInfo": {"serialNumber": "S1"},
                                "networkInfo": {"wifiMacAddress": "02:00:00:00:00:01"}}]))
    logs = tmp_path / "logs.jsonl"
    logs.write_text(json.dumps(batch(DEV, 1, 2)) + "\n" + json.dumps(batch("enterprises/E/devices/ZZ", 1, 3)) + "\n")
    ctx = load_context([str(inv), str(logs)])
    rep = ctx.report[1]
    assert rep["devices_not_in_inventory"] == ["enterprises/E/devices/ZZ"]
    assert ctx.unknown_devices["enterprises/E/devices/ZZ"] == 3
    assert ctx.timeline("enterprises/E/devices/ZZ").counts()["connect_events"] == 3


def test_reject_list_is_bounded_but_counted(tmp_path):
    p = tmp_path / "many_bad.jsonl"
    good = json.dumps(batch(DEV, 1, 1))
    p.write_text(good + "\n" + "\n".join("{bad" for _ in range(5000)) + "\n")
    ctx = load_context([str(p)])
    rep = ctx.report[0]
    assert rep["rejected_total"] == 5000 and len(rep["rejected"]) == MAX_REJECTS_LISTED
    assert sum(rep["rejected_by_reason"].values()) == 5000


_MEASURE = textwrap.dedent("""
    import json, resource, sys, time
    from netan.context.loader import load_context
    t = time.perf_counter()
    ctx = load_context([sys.argv[1]])
    rep = ctx.report[0]
    print(json.dumps({"rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "events": rep["events_read"], "dups": rep["duplicates"],
                      "rejected": rep["rejected_total"], "s": time.perf_counter() - t}))
""")


def _write_big(path: Path, n_batches: int, as_array: bool) -> None:
    """n_batches of 50 events; all but the first 20 batches repeat ids (duplicate deliveries),
    every 10th line is broken: the events kept stay constant while the file grows."""
    with open(path, "w") as f:
        if as_array:
            f.write("[\n")
        for i in range(n_batches):
            b = batch(DEV, (i % 20) * 1000, 50)
            text = json.dumps(b)
            if i % 10 == 9:
                text = text[: len(text) // 2] + "}" if not as_array else json.dumps({"message": {"data": "@@", "messageId": "1"}})
            f.write(text + (",\n" if as_array and i < n_batches - 1 else "\n"))
        if as_array:
            f.write("]\n")


def _measure(path: Path) -> dict:
    res = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("as_array", [False, True])
def test_large_file_streams_in_bounded_memory(tmp_path, as_array):
    small, big = tmp_path / "small", tmp_path / "big"
    _write_big(small, 300, as_array)
    _write_big(big, 3000, as_array)  # ~28 MB
    assert big.stat().st_size > 8 * small.stat().st_size
    s, b = _measure(small), _measure(big)
    # ids of batch slots 9 and 19 only ever come broken: 18 distinct batches are kept
    assert s["events"] == b["events"] == 18 * 50
    assert b["rejected"] == 300 and b["dups"] == (3000 - 300 - 18) * 50
    # the big file is 10x larger; peak memory may not follow it (a few MB of slack for the allocator)
    assert b["rss_kb"] - s["rss_kb"] < 12 * 1024, (s, b)


# ---- never crash: arbitrary JSON values and bytes through every importer
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from netan.context import (  # noqa: E402
    amapi_devices, amapi_usage_logs, dhcp_leases, dumpsys_usagestats, intune, pcapdroid, usagestats,
    workspaceone,
)
from netan.context.detect import detect  # noqa: E402

_KEYS = st.sampled_from(["device", "usageLogEvents", "eventType", "eventTime", "eventId", "connectEvent",
                         "destinationIpAddress", "destinationPort", "message", "data", "attributes",
                         "notificationType", "name", "hardwareInfo", "networkInfo", "devices", "value",
                         "Devices", "Udid", "id", "package", "timeStamp", "instanceId", "keyGeneratedEvent",
                         "applicationUid", "keyAlias", "processInfo", "packageNames", "dnsEvent", "x"])
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63), st.floats(allow_nan=True),
                     st.text(max_size=20), st.sampled_from(["CONNECT", "DNS", "KEY_GENERATED", "USAGE_LOGS",
                                                            "2024-06-03T09:00:00Z", "1.2.3.4", "!!", "AAAA"]))
_JSON = st.recursive(_SCALARS, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                      st.dictionaries(_KEYS, kids, max_size=6)), max_leaves=25)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_JSON)
def test_json_importers_never_raise(value):
    for mod in (amapi_usage_logs, amapi_devices, intune, workspaceone, usagestats):
        mod.looks_like(value)
        for item in mod.parse_value(value, 1):
            assert item is not None


@settings(max_examples=120, deadline=None)
@given(st.binary(max_size=600))
def test_byte_importers_never_raise(data):
    detect(data)
    text = data.decode("utf-8", "replace").splitlines()
    for parse in (dhcp_leases.parse_dnsmasq, dhcp_leases.parse_isc, dhcp_leases.parse_kea, pcapdroid.parse_csv,
                  dumpsys_usagestats.parse_lines):
        list(parse(text))
    import io as _io
    for reader in (pcapdroid.parse_pcap, pcapdroid.parse_pcapng):
        list(reader(_io.BytesIO(b"\xd4\xc3\xb2\xa1" + data), pcapdroid.Aggregator()))
        list(reader(_io.BytesIO(b"\x0a\x0d\x0d\x0a" + data), pcapdroid.Aggregator()))
    pcapdroid.parse_trailer(data)
    pcapdroid.parse_ip(data)


def test_missing_path_is_reported_not_raised(tmp_path):
    ctx = load_context([str(tmp_path / "does-not-exist.json")])
    (rep,) = ctx.report
    assert rep["format"] is None and rep["error"].startswith("FileNotFoundError")


def test_overlong_lines_are_cut_not_buffered(tmp_path):
    import io as _io

    from netan.context._util import bounded_lines, iter_json_values
    from netan.context.model import Reject as _Reject

    lines = list(bounded_lines(_io.StringIO("a" * 50 + "\nshort\n" + "b" * 10), max_chars=16))
    assert lines == ["a" * 16, "short\n", "b" * 10]
    good = json.dumps(batch(DEV, 1, 1))
    items = list(iter_json_values(_io.StringIO(good + "\n" + "[" * 5000 + "\n" + good + "\n"), max_value_chars=4096))
    assert isinstance(items[1], _Reject) and "longer than 4096" in items[1].reason and items[1].line == 2
    assert len(items) == 3 and items[2][0] == 3
    # a lease file whose second "line" is 3 MB without a newline
    p = tmp_path / "leases"
    p.write_text("1717430400 7c:11:11:11:11:11 192.168.1.23 pixel *\n" + "9" * (3 << 20))
    rep = load_context([str(p)]).report[0]
    assert rep["format"] == "dnsmasq_leases" and rep["events_read"] == 1 and rep["rejected_total"] == 1
