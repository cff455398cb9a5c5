"""UsageStats JSON lines, dumpsys usagestats text, and the app-state timeline derived from them."""
from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pytest

from netan.context import dumpsys_usagestats, usagestats
from netan.context.loader import load_context
from netan.context.model import AppStateEvent, DeviceStateEvent, Reject, UnknownEvent
from netan.context.timeline import DeviceTimeline

T0 = 1717405331.100  # 2024-06-03T09:02:11.100Z


def _parse(obj, line=1):
    return list(usagestats.parse_value(obj, line))


def test_names_and_codes_agree():
    by_name = _parse({"device": "d1", "package": "com.example.notes", "eventType": "ACTIVITY_RESUMED",
                      "timeStamp": 1717405331100, "className": "com.example.notes.MainActivity",
                      "instanceId": 91234567})
    by_code = _parse({"device": "d1", "package": "com.example.notes", "eventType": 1,
                      "timeStamp": 1717405331100, "className": "com.example.notes.MainActivity",
                      "instanceId": 91234567})
    assert by_name == by_code
    (ev,) = by_name
    assert isinstance(ev, AppStateEvent) and ev.event_type == 1 and ev.instance_id == 91234567
    assert ev.ts == pytest.approx(T0)


def test_companion_spelling_and_device_state():
    # formats doc section 3 example lines
    lines = [
        {"ts": 1717405331100, "type": 1, "type_name": "ACTIVITY_RESUMED", "package": "com.example.notes",
         "class": "com.example.notes.MainActivity", "instanceId": 91234567},
        {"ts": 1717405335020, "type": 16, "type_name": "SCREEN_NON_INTERACTIVE", "package": "android"},
        {"ts": 1717405479900, "type": 19, "type_name": "FOREGROUND_SERVICE_START",
         "package": "com.example.notes", "class": "com.example.notes.SyncService"},
    ]
    a, s, f = [_parse(x)[0] for x in lines]
    assert a.class_name == "com.example.notes.MainActivity"
    assert isinstance(s, DeviceStateEvent) and (s.kind, s.value) == ("screen", "non_interactive")
    assert f.event_type == 19 and f.class_name == "com.example.notes.SyncService"


@pytest.mark.parametrize("obj, fragment", [
    ({"package": "a.b", "eventType": "ACTIVITY_RESUMED", "timeStamp": 1717405331}, "looks like seconds"),
    ({"package": "a.b", "eventType": "ACTIVITY_RESUMED", "timeStamp": "2024-06-03T09:00:00Z"}, "epoch milliseconds"),
    ({"package": "a.b", "eventType": None, "timeStamp": 1717405331100}, "bad eventType"),
    ({"package": "a.b", "eventType": -3, "timeStamp": 1717405331100}, "bad eventType"),
    ({"package": "", "eventType": 1, "timeStamp": 1717405331100}, "without package"),
    ({"package": 5, "eventType": 1, "timeStamp": 1717405331100}, "not a string"),
    ([1, 2], "not a JSON object"),
])
def test_bad_lines(obj, fragment):
    (rej,) = _parse(obj, 4)
    assert isinstance(rej, Reject) and fragment in rej.reason and rej.line == 4


def test_unknown_name_is_counted_not_rejected():
    (ev,) = _parse({"package": "a.b", "eventType": "SOMETHING_NEW", "timeStamp": 1717405331100})
    assert isinstance(ev, UnknownEvent) and ev.event_type == "SOMETHING_NEW"


DUMPSYS = """\
  user=0
  In-memory daily stats
  timeRange="2024-06-03 00:00:00 - 2024-06-03 12:00:00"
    packages
      package=com.example.notes totalTimeUsed="00:02:11" lastTimeUsed="2024-06-03 11:04:22" totalTimeVisible="00:02:30" lastTimeVisible="2024-06-03 11:04:22" appLaunchCount=1
    events
      time="2024-06-03 11:02:11" type=ACTIVITY_RESUMED package=com.example.notes class=com.example.notes.MainActivity instanceId=91234567 taskRootPackage=com.example.notes taskRootClass=com.example.notes.MainActivity flags=0x0
      time="2024-06-03 11:02:11" type=USER_INTERACTION package=com.example.notes flags=0x0
      time="2024-06-03 11:03:55" type=SCREEN_NON_INTERACTIVE package=android flags=0x0
      time="2024-06-03 11:03:55" type=KEYGUARD_SHOWN package=android flags=0x0
      time="2024-06-03 11:03:56" type=ACTIVITY_PAUSED package=com.example.notes class=com.example.notes.MainActivity instanceId=91234567 flags=0x0
      time="2024-06-03 11:03:57" type=ACTIVITY_STOPPED package=com.example.notes class=com.example.notes.MainActivity instanceId=91234567 flags=0x0
      time="2024-06-03 11:04:00" type=FOREGROUND_SERVICE_START package=com.example.notes class=com.example.notes.SyncService flags=0x0
      time="2024-06-03 11:09:00" type=FOREGROUND_SERVICE_STOP package=com.example.notes class=com.example.notes.SyncService flags=0x0
      time="2024-06-03 11:10:00" type=UNKNOWN_TYPE_99 package=com.example.notes flags=0x0
      time=1717406000000 type=STANDBY_BUCKET_CHANGED package=com.example.notes standbyBucket=10 reason=main-usage flags=0x0
      time="06/03/2024 11:11" type=ACTIVITY_RESUMED package=com.example.notes flags=0x0
  event aggregations
      screen-interactive: 1x for 00:01:44
"""


def test_dumpsys_lines_and_zone():
    out = list(dumpsys_usagestats.parse_lines(DUMPSYS.splitlines(), ZoneInfo("Europe/Rome")))
    rejects = [r for r in out if isinstance(r, Reject)]
    evs = [e for e in out if not isinstance(e, Reject)]
    assert len(rejects) == 1 and rejects[0].line == 17
    assert len(evs) == 10
    first = evs[0]
    # 11:02:11 CEST (UTC+2) == 09:02:11Z
    assert first.ts == 1717405331.0 and first.event_type == 1 and first.instance_id == 91234567
    assert isinstance(evs[8], AppStateEvent) and evs[8].event_type == 99  # UNKNOWN_TYPE_<n> keeps n
    assert evs[9].event_type == 11 and evs[9].ts == 1717406000.0


def test_dumpsys_detected_and_unbound_device_gets_sole_inventory_device(tmp_path):
    dump = tmp_path / "usage.txt"
    dump.write_text(DUMPSYS)
    inv = tmp_path / "inv.json"
    inv.write_text(json.dumps({"name": "enterprises/E/devices/D1", "hardwareInfo": {"serialNumber": "S1"},
                               "networkInfo": {"wifiMacAddress": "02:00:00:00:00:01"}}))
    ctx = load_context([str(dump), str(inv)], local_tz=ZoneInfo("Europe/Rome"))
    rep = {r["file"]: r for r in ctx.report}[str(dump)]
    assert rep["format"] == "dumpsys_usagestats" and rep["rejected_total"] == 1
    assert any("only known device" in w for w in rep["warnings"])
    tl = ctx.timeline("enterprises/E/devices/D1")
    assert tl.app_state("com.example.notes", 1717405332.0) == "foreground"
    assert tl.app_state("com.example.notes", 1717405436.5) == "visible"       # paused, not stopped
    assert tl.app_state("com.example.notes", 1717405500.0) == "foreground_service"
    assert tl.app_state("com.example.notes", 1717405800.0) == "background"
    assert tl.screen_state(1717405400.0) == "interactive"        # inferred from the first transition
    assert tl.screen_state(1717405436.0) == "non_interactive"
    assert tl.keyguard_state(1717405436.0) == "shown"


def _tl(events, skew=0.0):
    tl = DeviceTimeline("d1")
    for e in events:
        tl.add(e)
    tl.skew_s = skew
    tl.build()
    return tl


def A(ts, code, pkg="p.a", cls="", inst=None):
    return AppStateEvent("d1", ts, pkg, code, cls, inst)


def test_app_state_multi_instance_and_coverage():
    tl = _tl([
        A(1000, 1, inst=1), A(1010, 1, inst=2), A(1020, 2, inst=1), A(1021, 23, inst=1),
        A(1030, 2, inst=2), A(1031, 23, inst=2),
        A(1100, 19, cls="Svc"), A(1200, 20, cls="Svc"),
        A(1300, 7, pkg="p.b"),
    ])
    assert tl.app_state("p.a", 999) == "unknown"            # before coverage
    assert tl.app_state("p.a", 1025) == "foreground"         # instance 2 still resumed
    assert tl.app_state("p.a", 1030.5) == "visible"
    assert tl.app_state("p.a", 1050) == "background"
    assert tl.app_state("p.a", 1150) == "foreground_service"
    assert tl.app_state("p.a", 1250) == "background"
    assert tl.app_state("p.c", 1250) == "background"          # no transitions at all inside coverage
    assert tl.app_state("p.a", 1300 + 61) == "unknown"        # past coverage + grace
    assert tl.foreground_service_intervals("p.a") == [(1100, 1200)]
    assert tl.last_user_interaction("p.a", 1500) == 1010
    assert tl.last_user_interaction("p.b", 1299) is None
    assert tl.last_user_interaction(None, 1400) == 1300
    ivs = tl.app_intervals("p.a")
    assert ivs[0] == (1000, 1030, "foreground") and ("foreground_service" in {s for _, _, s in ivs})


def test_first_event_pause_means_foreground_since_data_start():
    tl = _tl([A(500, 7, pkg="other"), A(600, 2, inst=9), A(601, 23, inst=9), A(700, 20, cls="S", pkg="p.b")])
    assert tl.app_state("p.a", 550) == "foreground"
    assert tl.app_state("p.a", 650) == "background"
    assert tl.app_state("p.b", 550) == "foreground_service"
    assert tl.app_state("p.b", 701) == "background"


def test_shutdown_resets_state_and_skew_applies():
    tl = _tl([A(1000, 1, inst=1), AppStateEvent("d1", 1100, "android", 26), A(1200, 7, pkg="x")], skew=-300)
    # capture time = device time - skew = device time + 300
    assert tl.app_state("p.a", 1350) == "foreground"
    assert tl.app_state("p.a", 1450) == "background"
    assert tl.last_user_interaction("p.a", 1400) == 1300


def test_snake_case_exporter_spelling():
    (ev,) = _parse({"device_id": "d9", "package_name": "a.b", "event_type": "FOREGROUND_SERVICE_START",
                    "timestamp": "1717405331100", "className": "a.b.Svc"})
    assert (ev.device, ev.package, ev.event_type, ev.ts) == ("d9", "a.b", 19, pytest.approx(T0))
    assert usagestats.looks_like({"package_name": "a", "event_type": 1, "timestamp": 1})
