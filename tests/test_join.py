"""Flows x timelines with known truth: skews of both signs, UDP, direct IP, ambiguity.

The scenario is built as a recording would be: flow records (netan.schema) on
the capture clock, and context files in the real formats (AMAPI usage logs as
Pub/Sub pushes and JSON lines, AMAPI Device inventory, dnsmasq leases,
UsageStats JSON lines, PCAPdroid CSV) on each device's own clock. The join
must reproduce the truth exactly where evidence allows, and say unknown or
ambiguous where it does not.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netan.testing import log_writers as w
from netan.context.loader import load_context
from netan.context.skew import estimate_offset
from netan.join import ANNOTATION_FIELDS, ContextJoin
from netan.schema import new_flow_record

T = 1717405200.0  # capture clock origin, 2024-06-03T09:00:00Z

D1, D2, D3 = "enterprises/E/devices/d1", "enterprises/E/devices/d2", "enterprises/E/devices/d3"
MAC1, MAC2, MAC3 = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"
IP1, IP2, IP3 = "10.0.0.11", "10.0.0.12", "10.0.0.13"
SKEW = {D1: +240.0, D2: -300.0, D3: 0.0}  # device clock minus capture clock
UID = {(D1, "com.example.notes"): 10213, (D1, "com.acme.sync"): 10250,
       (D2, "com.example.notes"): 10300, (D2, "org.game"): 10301}


@dataclass
class Scenario:
    flows: list[dict] = field(default_factory=list)
    truth: dict[str, tuple] = field(default_factory=dict)  # flow_id -> (device, app, attribution)
    amapi: dict[str, list[dict]] = field(default_factory=dict)
    dns: list[tuple] = field(default_factory=list)
    pcapdroid_rows: list[dict] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    next_id: int = 1

    def event(self, device: str, kind: str, t_capture: float, **kw) -> None:
        ids = self.amapi.setdefault(device, [])
        self.amapi[device].append(w.amapi_event(1000 + len(ids), t_capture + SKEW[device], kind, **kw))

    def flow(self, device: str | None, t: float, proto: str, dst: str, port: int, *, app: str | None,
             truth_attr: str | None, truth_app: str | None = None, log_connect: bool = True,
             src_mac: str | None = None, src_ip: str | None = None, dst_name: str | None = None,
             bytes_out: int = 1200, bytes_in: int = 800, pkts: tuple[int, int] = (6, 5)) -> str:
        fid = f"f{self.next_id}"
        self.next_id += 1
        ip = src_ip or {D1: IP1, D2: IP2, D3: IP3}.get(device or "", "10.0.0.99")
        mac = src_mac if src_mac is not None else {D1: MAC1, D2: None, D3: MAC3}.get(device or "", "02:00:00:00:00:99")
        rec = new_flow_record(
            flow_id=fid, ts=t, ts_end=t + 3.0, proto=proto, src_ip=ip, src_port=40000 + self.next_id,
            dst_ip=dst, dst_port=port, src_mac=mac, bytes_out=bytes_out, bytes_in=bytes_in,
            pkts_out=pkts[0], pkts_in=pkts[1], l7="tls" if port == 443 else "unknown",
            tcp={"syn": True} if proto == "tcp" else None,
        )
        if dst_name:
            rec["dst_name"] = dst_name
        self.flows.append(rec)
        if proto == "tcp" and app and log_connect and device:
            # the connect event is logged when connect() returns: after the SYN by an RTT + jitter
            self.event(device, "connect", t + self.rng.uniform(0.02, 0.15), ip=dst, port=port, package=app)
        self.truth[fid] = (device, truth_app if truth_attr else None, truth_attr)
        return fid


def build(tmp_path) -> tuple[Scenario, list[str]]:
    s = Scenario()
    for dev in (D1, D2):
        for (d, pkg), uid in UID.items():
            if d == dev:
                s.event(dev, "process_start", -100.0 + T, package=pkg, uid=uid)
    s.event(D1, "key_generated", T + 5, alias="_androidx_security_master_key_", uid=10213)
    s.event(D1, "keyguard_secured", T + 70)

    # ---- device 1, skew +4 min, identified by MAC
    s.event(D1, "dns", T + 9.9, host="upload.example-cdn.net", ips=["203.0.113.45"], package="com.example.notes")
    s.flow(D1, T + 10, "tcp", "203.0.113.45", 443, app="com.example.notes", truth_attr="connect_event",
           truth_app="com.example.notes")
    # direct IP, no DNS anywhere: only the connect event knows
    s.flow(D1, T + 20, "tcp", "198.51.100.7", 443, app="com.acme.sync", truth_attr="connect_event",
           truth_app="com.acme.sync")
    # UDP to the same direct IP: not in connect logs, nobody resolved it -> unknown
    s.flow(D1, T + 25, "udp", "198.51.100.7", 443, app=None, truth_attr=None)
    # UDP to an address notes resolved -> DNS attribution
    s.flow(D1, T + 30, "udp", "203.0.113.45", 443, app=None, truth_attr="dns_event", truth_app="com.example.notes")
    # two apps, same destination, 100 ms apart: the evidence cannot separate them
    s.flow(D1, T + 40.00, "tcp", "192.0.2.80", 443, app="com.example.notes", truth_attr="ambiguous")
    s.flow(D1, T + 40.10, "tcp", "192.0.2.80", 443, app="com.acme.sync", truth_attr="ambiguous")
    # same destination, seconds apart: separable
    s.flow(D1, T + 50, "tcp", "192.0.2.80", 443, app="com.example.notes", truth_attr="connect_event",
           truth_app="com.example.notes")
    s.flow(D1, T + 55, "tcp", "192.0.2.80", 443, app="com.acme.sync", truth_attr="connect_event",
           truth_app="com.acme.sync")
    # a TCP flow whose connect was never logged (e.g. the batch was lost)
    s.flow(D1, T + 60, "tcp", "192.0.2.99", 8443, app="com.acme.sync", truth_attr=None, log_connect=False)
    # more ordinary traffic through the session
    for i in range(12):
        app = "com.example.notes" if i % 2 else "com.acme.sync"
        s.flow(D1, T + 80 + 7 * i, "tcp", f"198.18.0.{i + 1}", 443, app=app, truth_attr="connect_event",
               truth_app=app)
    # connect events with no SYN at the gateway (cellular), decoys for the skew estimate
    for i in range(5):
        s.event(D1, "connect", T + 15 + 11 * i, ip=f"198.18.0.{i + 1}", port=443, package="com.acme.sync")

    # ---- device 2, skew -5 min, no MAC in the records: found by its DHCP lease
    s.event(D2, "dns", T + 11.5, host="upload.example-cdn.net", ips=["203.0.113.45"], package="com.example.notes")
    s.flow(D2, T + 12, "tcp", "203.0.113.45", 443, app="com.example.notes", truth_attr="connect_event",
           truth_app="com.example.notes")
    s.flow(D2, T + 15, "tcp", "192.0.2.50", 5222, app="org.game", truth_attr="connect_event", truth_app="org.game")
    s.event(D2, "dns", T + 16, host="stun.game.example", ips=["192.0.2.51", "192.0.2.52"], package="org.game")
    s.flow(D2, T + 17, "udp", "192.0.2.52", 3478, app=None, truth_attr="dns_event", truth_app="org.game")
    # UDP with neither DNS nor connect evidence, but PCAPdroid on the phone saw it
    s.flow(D2, T + 21, "udp", "192.0.2.60", 9000, app=None, truth_attr="pcapdroid", truth_app="org.game",
           bytes_out=3000, bytes_in=500, pkts=(3, 2))
    s.pcapdroid_rows.append({"proto": "udp", "dst_ip": "192.0.2.60", "dst_port": 9000, "uid": 10301,
                             "app": "Game", "package": "org.game", "bytes_out": 3000 + 28 * 3,
                             "bytes_in": 500 + 28 * 2, "pkts_out": 3, "pkts_in": 2,
                             "ts": T + 21 + 0.01 + SKEW[D2], "ts_end": T + 24 + SKEW[D2]})
    # the same destination from device 1 at the same moment: PCAPdroid ran on device 2 only
    s.flow(D1, T + 21.2, "udp", "192.0.2.60", 9000, app=None, truth_attr=None, bytes_out=3000, bytes_in=500,
           pkts=(3, 2))
    for i in range(8):
        app = "org.game" if i % 2 else "com.example.notes"
        t = T + 30 + 9 * i
        s.flow(D2, t, "tcp", f"198.19.0.{i + 1}", 443, app=app, truth_attr="connect_event", truth_app=app)
        s.pcapdroid_rows.append({"proto": "tcp", "dst_ip": f"198.19.0.{i + 1}", "dst_port": 443,
                                 "uid": UID[(D2, app)], "package": app, "bytes_out": 1200 + 52 * 6,
                                 "bytes_in": 800 + 52 * 5, "pkts_out": 6, "pkts_in": 5,
                                 "ts": t + 0.005 + SKEW[D2], "ts_end": t + 3 + SKEW[D2]})

    # ---- device 3: in the inventory, no logs at all
    s.flow(D3, T + 33, "tcp", "203.0.113.45", 443, app=None, truth_attr=None)
    # ---- a device nobody knows
    s.flow(None, T + 34, "tcp", "203.0.113.45", 443, app=None, truth_attr=None)

    # ---- files
    files = []
    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps({"devices": [
        w.amapi_device(D1, "SER1", MAC1), w.amapi_device(D2, "SER2", MAC2), w.amapi_device(D3, "SER3", MAC3)]}))
    files.append(str(inv))
    # device 1's logs arrive as Pub/Sub pushes, security and network in separate batches, one delivered twice
    push = tmp_path / "d1-pubsub.jsonl"
    sec = [e for e in s.amapi[D1] if e["eventType"] not in ("CONNECT", "DNS")]
    net = [e for e in s.amapi[D1] if e["eventType"] in ("CONNECT", "DNS")]
    bodies = [w.pubsub_push(w.amapi_batch(D1, sec), 1, T + 900),
              w.pubsub_push(w.amapi_batch(D1, net[:10]), 2, T + 900),
              w.pubsub_push(w.amapi_batch(D1, net[10:]), 3, T + 900),
              w.pubsub_push(w.amapi_batch(D1, net[:10]), 2, T + 901)]
    push.write_text("\n".join(json.dumps(b) for b in bodies) + "\n")
    files.append(str(push))
    d2 = tmp_path / "d2-batches.json"
    d2.write_text(json.dumps([w.amapi_batch(D2, s.amapi[D2])], indent=1))
    files.append(str(d2))
    leases = tmp_path / "dnsmasq.leases"
    leases.write_text(w.dnsmasq_line(int(T + 86400), MAC2, IP2, "pixel-d2") + "\n")
    files.append(str(leases))
    # app state for device 1 (its exporter names the device by serial)
    us = tmp_path / "usage.jsonl"
    d = SKEW[D1]
    us.write_text("\n".join([
        w.usagestats_line("SER1", "android", "SCREEN_INTERACTIVE", T - 100 + d),
        w.usagestats_line("SER1", "com.example.notes", "ACTIVITY_RESUMED", T + 0 + d, "N.Main", 1),
        w.usagestats_line("SER1", "com.example.notes", 2, T + 15 + d, "N.Main", 1),
        w.usagestats_line("SER1", "com.example.notes", "ACTIVITY_STOPPED", T + 15.5 + d, "N.Main", 1),
        w.usagestats_line("SER1", "com.acme.sync", "FOREGROUND_SERVICE_START", T + 18 + d, "S.Sync"),
        w.usagestats_line("SER1", "android", 16, T + 65 + d),
        w.usagestats_line("SER1", "com.acme.sync", 20, T + 200 + d, "S.Sync"),
    ]) + "\n")
    files.append(str(us))
    pd = tmp_path / "pcapdroid.csv"
    pd.write_text(w.pcapdroid_csv(s.pcapdroid_rows))
    files.append(str(pd))
    return s, files


def run_join(tmp_path):
    s, files = build(tmp_path)
    ctx = load_context(files)
    join = ContextJoin(ctx)
    for rec in s.flows:
        join.observe(rec)
    skew = join.estimate_skew()
    out = {rec["flow_id"]: join.annotate(rec) for rec in s.flows}
    return s, ctx, join, skew, out


def test_join_matches_truth(tmp_path):
    s, ctx, join, skew, out = run_join(tmp_path)
    assert all(r["rejected_total"] == 0 for r in ctx.report), ctx.report
    # skews of both signs found; the estimate includes the connect-report latency (20-150 ms)
    assert skew[D1]["status"] == "ok" and 240.02 <= skew[D1]["offset_s"] <= 240.15
    assert skew[D2]["status"] == "ok" and -299.98 <= skew[D2]["offset_s"] <= -299.85
    assert skew[D1]["spread_s"] < 0.1 and skew[D1]["matches"] >= 18
    got = {fid: (a["device"], a["app"], a["attribution"]) for fid, a in out.items()}
    assert got == s.truth
    for a in out.values():
        assert set(a) == set(ANNOTATION_FIELDS)
        json.dumps(a)


def test_join_details(tmp_path):
    s, ctx, join, skew, out = run_join(tmp_path)
    f = {fid: out[fid] for fid in out}
    # device 1, notes at T+10: foreground (resumed at T+0, paused at T+15), uid via process start
    assert f["f1"]["app_state"] == "foreground" and f["f1"]["app_uid"] == 10213
    # the skew estimate carries the connect-report latency (tens of ms): documented bias
    assert f["f1"]["user_interaction_s_before"] == pytest.approx(10.0, abs=0.2)
    assert f["f1"]["device_detail"] == "mac" and f["f1"]["screen"] == "interactive"
    # sync at T+20 runs a foreground service: contract says background, detail keeps FGS
    assert (f["f2"]["app_state"], f["f2"]["app_state_detail"]) == ("background", "foreground_service")
    assert f["f3"]["app"] is None and f["f3"]["app_state"] == "unknown"
    assert "not in connect logs" in f["f3"]["attribution_detail"]
    assert f["f4"]["app_state"] == "background" and "upload.example-cdn.net" in f["f4"]["attribution_detail"]
    assert sorted(f["f5"]["app_candidates"]) == ["com.acme.sync", "com.example.notes"]
    # the keyguard was secured at T+70 (AMAPI), the screen went off at T+65 (UsageStats)
    tl = ctx.timeline(D1)
    assert tl.keyguard_state(T + 75) == "shown" and tl.screen_state(T + 66) == "non_interactive"
    # device 2 found through its lease; no app-state data for it -> unknown
    d2 = [a for a in out.values() if a["device"] == D2]
    assert d2 and all(a["device_detail"] == "binding:dnsmasq_leases:mac" for a in d2)
    assert all(a["app_state"] == "unknown" for a in d2)
    pd = [a for a in d2 if a["attribution"] == "pcapdroid"]
    assert len(pd) == 1 and pd[0]["app_uid"] == 10301
    # queries for the chains stage, in capture time
    keys = tl.key_events("com.example.notes", T, T + 10)
    assert [(k.alias, tl.to_capture(k.ts)) for k in keys] == [("_androidx_security_master_key_", pytest.approx(T + 5))]
    assert tl.key_events("com.acme.sync", T, T + 10) == []
    assert tl.foreground_service_intervals("com.acme.sync") == [(pytest.approx(T + 18), pytest.approx(T + 200))]


def test_summary(tmp_path):
    s, ctx, join, skew, out = run_join(tmp_path)
    summ = join.summary()
    json.dumps(summ)
    n = len(s.flows)
    attributed = sum(1 for v in s.truth.values() if v[1] is not None)
    assert summ["flows_annotated"] == n and summ["flows_attributed"] == attributed
    assert summ["share_attributed"] == round(attributed / n, 4)
    assert summ["devices"][D1]["skew"]["offset_s"] == skew[D1]["offset_s"]
    assert summ["skew"][D2] == {k: skew[D2][k] for k in ("offset_s", "spread_s", "matches", "status")}
    assert summ["devices"][D3]["skew"] is None and summ["devices"][D3]["flows"] == 1
    assert summ["by_attribution"]["ambiguous"] == 2
    push = next(r for r in summ["context_files"] if r["file"].endswith("d1-pubsub.jsonl"))
    assert push["duplicates"] == 10 and push["format"] == "amapi_usage_logs"
    pd = next(iter(summ["pcapdroid_skew"].values()))
    assert pd["status"] == "ok" and pd["offset_s"] == pytest.approx(-299.995, abs=0.01)
    assert pd["device"] == D2  # the file's connections match device 2's SYNs


def test_without_skew_estimate_the_join_fails_honestly(tmp_path):
    """annotate() without observe(): clocks 4-5 minutes apart, connect events cannot match."""
    s, files = build(tmp_path)
    join = ContextJoin(load_context(files))
    out = [join.annotate(r) for r in s.flows]
    d1_tcp = [a for r, a in zip(s.flows, out) if a["device"] == D1 and r["proto"] == "tcp"]
    assert all(a["attribution"] != "connect_event" for a in d1_tcp)


def test_odd_records_do_not_crash(tmp_path):
    s, files = build(tmp_path)
    join = ContextJoin(load_context(files))
    for rec in ({}, {"ts": "x"}, {"ts": T, "proto": "tcp", "tcp": {"syn": True}},
                {"ts": T, "proto": "tcp", "src_ip": 5, "dst_ip": None, "dst_port": "443", "tcp": {"syn": 1}}):
        join.observe(rec)
        a = join.annotate(rec)
        assert set(a) == set(ANNOTATION_FIELDS) and a["app_state"] == "unknown"


@pytest.mark.parametrize("skew", [-900.0, -300.0, -5.0, 0.0, 4.0, 240.0, 300.0, 899.0])
def test_skew_estimator_range_and_decoys(skew):
    rng = random.Random(int(skew) + 11)
    syns: dict = {}
    events: dict = {}
    # a beacon to one address every 5 s (a comb of candidates), and real connects elsewhere
    for i in range(400):
        syns.setdefault(("192.0.2.1", 443), []).append(1000 + 5 * i)
        events.setdefault(("192.0.2.1", 443), []).append(1000 + 5 * i + skew + rng.uniform(0.02, 0.2))
    for i in range(30):
        key = (f"198.18.{i // 250}.{i % 250}", 443)
        t = 1000 + rng.uniform(0, 2000)
        syns.setdefault(key, []).append(t)
        events.setdefault(key, []).append(t + skew + rng.uniform(0.02, 0.2))
        # decoys: SYNs without events, events without SYNs
        syns.setdefault(key, []).append(t + rng.uniform(-800, 800))
        events.setdefault((f"203.0.113.{i}", 80), []).append(t + rng.uniform(-800, 800))
    est = estimate_offset(events, syns, max_skew_s=900.0)
    assert est.status == "ok", est
    assert est.offset_s == pytest.approx(skew + 0.11, abs=0.1)
    assert est.spread_s < 0.1


def test_skew_estimator_says_when_it_cannot():
    assert estimate_offset({}, {}).status == "no_data"
    assert estimate_offset({"k": [10.0]}, {"k": [5.0]}).status == "insufficient"
    # a pure comb: every offset k*5 s explains the data equally well
    comb = estimate_offset({"k": [1000 + 5 * i + 1.0 for i in range(20)]}, {"k": [1000 + 5 * i for i in range(20)]},
                           max_skew_s=900.0, max_candidates_per_event=1000)
    assert comb.status in ("ok", "ambiguous")
    assert comb.status == "ambiguous" or comb.offset_s == pytest.approx(1.0, abs=0.01)


def synthetic_load(n_flows: int, n_devices: int = 20, seed: int = 1):
    """Many devices with random skews (+-5 min), 30 apps, 10k destinations; 80 % TCP with
    a connect event each, half the flows with a DNS event of their own app. Returns
    (ctx, flows, truth, skews)."""
    from netan.context.loader import ContextSet
    from netan.context.model import ConnectEvent, DnsEvent, InventoryDevice

    rng = random.Random(seed)
    ctx = ContextSet()
    devs = {f"enterprises/E/devices/s{i}": (f"02:00:00:00:01:{i:02x}", rng.uniform(-300, 300))
            for i in range(n_devices)}
    ctx.add_events(InventoryDevice(d, "amapi_devices", macs=(mac,)) for d, (mac, _) in devs.items())
    events = []
    flows, truth = [], []
    for i in range(n_flows):
        d = rng.choice(list(devs))
        mac, sk = devs[d]
        t = T + rng.uniform(0, 86400 * n_flows / 100_000)
        dst = f"198.18.{rng.randrange(0, 40)}.{rng.randrange(1, 250)}"
        pkg = f"com.app{rng.randrange(30)}"
        proto = "tcp" if rng.random() < 0.8 else "udp"
        if proto == "tcp":
            events.append(ConnectEvent(d, t + sk + rng.uniform(0.02, 0.2), pkg, dst, 443, str(i)))
        if rng.random() < 0.5:
            events.append(DnsEvent(d, t + sk - 0.5, pkg, f"h{i}.example", (dst,), 1, str(i)))
        truth.append((d, pkg))
        flows.append(new_flow_record(flow_id=f"s{i}", ts=t, ts_end=t + 1, proto=proto, src_ip="10.0.0.1",
                                     src_port=1000, dst_ip=dst, dst_port=443, src_mac=mac,
                                     tcp={"syn": True} if proto == "tcp" else None))
    assert ctx.add_events(events) == len(events)
    ctx.finish()
    return ctx, flows, truth, {d: sk for d, (_, sk) in devs.items()}


@pytest.mark.slow
def test_join_at_scale_error_rates():
    ctx, flows, truth, skews = synthetic_load(20_000)
    join = ContextJoin(ctx)
    for r in flows:
        join.observe(r)
    est = join.estimate_skew()
    assert all(abs(est[d]["offset_s"] - skews[d] - 0.11) < 0.02 for d in skews)
    wrong = Counter()
    total = Counter()
    for (dev, pkg), r in zip(truth, flows):
        a = join.annotate(r)
        assert a["device"] == dev
        total[a["attribution"]] += 1
        if a["app"] is not None and a["app"] != pkg:
            wrong[a["attribution"]] += 1
    assert wrong["connect_event"] == 0 and total["connect_event"] > 0.78 * len(flows)
    # DNS says who resolved the address lately, not who sent: a small error rate remains
    assert wrong["dns_event"] <= 0.01 * total["dns_event"]


def test_randomised_mac_resolved_through_capture_dhcp_hostname(tmp_path):
    """The phone uses a per-SSID random MAC: only its DHCP hostname (seen in the capture)
    ties the address to the inventory (Intune deviceName)."""
    inv = tmp_path / "intune.json"
    inv.write_text(json.dumps({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#deviceManagement/managedDevices",
                               "value": [{"id": "guid-1", "deviceName": "Pixel-8-Alice", "serialNumber": "S9",
                                          "managedDeviceOwnerType": "company", "azureADDeviceId": "a-1",
                                          "wiFiMacAddress": "7c1111111111"}]}))
    ctx = load_context([str(inv)])
    assert ctx.add_bindings([(T - 60, "da:a1:19:00:00:01", "10.0.0.77", "Pixel-8-Alice"),
                             (T - 50, "da:a1:19:00:00:02", "10.0.0.78", "android-1234")]) == 2
    join = ContextJoin(ctx)
    rec = new_flow_record(flow_id="x", ts=T, ts_end=T + 1, proto="tcp", src_ip="10.0.0.77", src_port=5,
                          dst_ip="203.0.113.1", dst_port=443, src_mac="da:a1:19:00:00:01")
    a = join.annotate(rec)
    assert (a["device"], a["device_detail"]) == ("guid-1", "binding:capture_dhcp:hostname")
    rec2 = dict(rec, src_ip="10.0.0.78", src_mac="da:a1:19:00:00:02")
    b = join.annotate(rec2)
    assert b["device"] is None and b["device_detail"] == "binding:capture_dhcp:mac_not_in_inventory"
    # before the DHCP exchange the address belonged to nobody we know
    c = join.annotate(dict(rec, ts=T - 100))
    assert c["device"] is None and c["device_detail"] == "mac_not_in_inventory"


def test_resolver_queries_belong_to_the_asking_app(tmp_path):
    """DnsResolver tags its query sockets with the caller's uid and logs a DNS event for it."""
    inv = tmp_path / "inv.json"
    inv.write_text(json.dumps(w.amapi_device(D1, "SER1", MAC1)))
    logs = tmp_path / "logs.json"
    logs.write_text(json.dumps(w.amapi_batch(D1, [
        w.amapi_event(1, T + 0.02, "dns", host="a.example", ips=["192.0.2.1"], package="com.one"),
        w.amapi_event(2, T + 10.02, "dns", host="b.example", ips=["192.0.2.2"], package="com.one"),
        w.amapi_event(3, T + 10.03, "dns", host="b.example", ips=["192.0.2.2"], package="com.two"),
    ])))
    join = ContextJoin(load_context([str(inv), str(logs)]))

    def query(t, name, port=53):
        rec = new_flow_record(flow_id=f"q{t}", ts=t, ts_end=t + 0.02, proto="udp", src_ip=IP1, src_port=5353,
                              dst_ip="10.0.0.1", dst_port=port, src_mac=MAC1, l7="dns")
        rec["dns"] = {"queries": [{"name": name, "qtype": "A"}], "answers": []}
        return join.annotate(rec)

    a = query(T, "a.example")
    assert (a["app"], a["attribution"]) == ("com.one", "dns_event") and "resolver query" in a["attribution_detail"]
    b = query(T + 10, "B.example.")
    assert b["attribution"] == "ambiguous" and b["app_candidates"] == ["com.one", "com.two"]
    c = query(T + 100, "a.example")  # a later query of a cached name: no event near it
    assert c["app"] is None and c["attribution"] is None


REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not (REPO / "captures" / "demo.truth.json").exists(), reason="demo recording not present")
def test_demo_recording_against_its_truth(tmp_path):
    """The real recording (namespaces, two phones, skews +37 s / -12.5 s) through the whole
    pipeline: every flow with evidence gets its true device and app, the rest none."""
    from netan.pipeline import RunOptions, analyze_captures

    truth = json.loads((REPO / "captures" / "demo.truth.json").read_text())
    analyze_captures([str(REPO / "captures" / "demo.pcap")],
                     RunOptions(out_dir=str(tmp_path), context=(str(REPO / "context"),)))
    flows = {(r["proto"], r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"]): r
             for r in map(json.loads, (tmp_path / "flows.jsonl").read_text().splitlines())}
    names = {name: d["amapi_name"] for name, d in truth["devices"].items()}
    summary = json.loads((tmp_path / "summary.json").read_text())["context"]
    for name, d in truth["devices"].items():
        assert summary["devices"][d["amapi_name"]]["skew"]["offset_s"] == pytest.approx(d["skew"], abs=0.05)
    checked = 0
    for f in truth["flows"]:
        rec = flows[(f["proto"], f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"])]
        assert rec["device"] == names[f["device"]]
        evidence = f["connect_logged"] or f.get("kind") == "dns" and f["details"].get("system_resolver")
        if evidence:
            assert rec["app"] == f["package"], (f, rec["attribution_detail"])
            checked += 1
        else:
            assert rec["app"] is None and rec["app_state"] == "unknown", (f, rec["attribution_detail"])
    assert checked >= len(truth["flows"]) - 2


def test_busy_destination_nearest_clear_winner_and_honest_ambiguity():
    """Three apps to one destination; one connect has no SYN at the gateway (cellular).
    Counts differ, so matching is per flow: the nearest app wins only when the others
    are clearly further than clock jitter could move them."""
    from netan.context.loader import ContextSet
    from netan.context.model import ConnectEvent, InventoryDevice

    ctx = ContextSet()
    ctx.add_events([InventoryDevice(D1, "amapi_devices", macs=(MAC1,))])
    dst = ("192.0.2.80", 443)
    plan = [(T + 10.00, "com.a", True), (T + 10.70, "com.b", True), (T + 11.50, "com.c", False),
            (T + 20.00, "com.a", True), (T + 20.20, "com.b", True)]
    ctx.add_events([ConnectEvent(D1, t + 60 + 0.05, pkg, *dst, str(i)) for i, (t, pkg, _) in enumerate(plan)]
                   + [ConnectEvent(D1, T + 100 + i * 13 + 60.05, "com.z", f"198.18.1.{i}", 443, f"z{i}")
                      for i in range(6)])
    ctx.finish()
    flows = [new_flow_record(flow_id=f"b{i}", ts=t, ts_end=t + 1, proto="tcp", src_ip=IP1, src_port=1000 + i,
                             dst_ip=dst[0], dst_port=dst[1], src_mac=MAC1, tcp={"syn": True})
             for i, (t, _, seen) in enumerate(plan) if seen]
    flows += [new_flow_record(flow_id=f"z{i}", ts=T + 100 + i * 13, ts_end=T + 101 + i * 13, proto="tcp",
                              src_ip=IP1, src_port=2000 + i, dst_ip=f"198.18.1.{i}", dst_port=443, src_mac=MAC1,
                              tcp={"syn": True}) for i in range(6)]
    join = ContextJoin(ctx)
    for r in flows:
        join.observe(r)
    assert join.estimate_skew()[D1]["offset_s"] == pytest.approx(60.05, abs=0.01)
    got = {r["flow_id"]: join.annotate(r) for r in flows}
    assert (got["b0"]["app"], got["b1"]["app"]) == ("com.a", "com.b")
    assert "other apps'" in got["b0"]["attribution_detail"]
    # 0.2 s apart: inside the 0.25 s jitter margin, not separable
    assert got["b3"]["attribution"] == got["b4"]["attribution"] == "ambiguous"
    assert got["b3"]["app_candidates"] == ["com.a", "com.b"]


def test_zeek_history_counts_as_syn(tmp_path):
    """Flows read from Zeek logs carry conn.log's history instead of a tcp object."""
    s, files = build(tmp_path)
    join = ContextJoin(load_context(files))
    zeeky = []
    for r in s.flows:
        z = dict(r)
        z.pop("tcp")
        z["history"] = "ShADadFf" if r["proto"] == "tcp" else "Dd"
        zeeky.append(z)
    for r in zeeky:
        join.observe(r)
    assert join.estimate_skew()[D1]["status"] == "ok"
    got = {r["flow_id"]: (a["device"], a["app"], a["attribution"]) for r in zeeky for a in [join.annotate(r)]}
    assert got == s.truth


def test_capture_bindings_may_arrive_after_the_flows(tmp_path):
    """The engine feeds DHCP exchanges seen in the capture while pass 1 runs; flows
    observed before their binding arrived still get their device."""
    s, files = build(tmp_path)
    ctx = load_context([f for f in files if not f.endswith("dnsmasq.leases")])
    join = ContextJoin(ctx)
    for r in s.flows:
        join.observe(r)
    ctx.add_bindings([(T - 100, MAC2, IP2, "")])
    assert join.estimate_skew()[D2]["status"] == "ok"
    got = {r["flow_id"]: (a["device"], a["app"], a["attribution"]) for r in s.flows for a in [join.annotate(r)]}
    assert got == s.truth
    assert {join.annotate(r)["device_detail"] for r in s.flows if r["src_ip"] == IP2} == {"binding:capture_dhcp:mac"}


def test_pcapdroid_root_mode_exact_tuple_and_vpn_ambiguity():
    from netan.context.loader import ContextSet
    from netan.context.model import InventoryDevice, PcapdroidConnection

    def conn(src_ip, sport, uid, pkg):
        return PcapdroidConnection(T + 5.0, T + 6.0, "udp", src_ip, sport, "198.51.100.9", 3478, uid, "", pkg,
                                   100, 50, 1, 1, "", "payload", False, None, 0, "cap.pcapng")

    def flow(sport):
        return new_flow_record(flow_id=f"p{sport}", ts=T + 5.01, ts_end=T + 6, proto="udp", src_ip=IP1,
                               src_port=sport, dst_ip="198.51.100.9", dst_port=3478, src_mac=MAC1,
                               bytes_out=100, bytes_in=50, pkts_out=1, pkts_in=1)

    root = ContextSet()
    root.add_events([InventoryDevice(D1, "amapi_devices", macs=(MAC1,)),
                     conn(IP1, 40001, 10213, "com.a"), conn(IP1, 40002, 10250, "com.b")])
    root.finish()
    join = ContextJoin(root)
    assert join.annotate(flow(40002))["app"] == "com.b"
    assert join.annotate(flow(40001))["app"] == "com.a"
    vpn = ContextSet()
    vpn.add_events([InventoryDevice(D1, "amapi_devices", macs=(MAC1,)),
                    conn("10.215.173.1", 50001, 10213, "com.a"), conn("10.215.173.1", 50002, 10250, "com.b")])
    vpn.finish()
    a = ContextJoin(vpn).annotate(flow(40001))
    assert a["attribution"] == "ambiguous" and a["app_candidates"] == ["com.a", "com.b"]


@pytest.mark.netns
def test_fresh_recording_between_namespaces_skews_plus4_minus5_min(tmp_path):
    """Two phones in their own namespaces (own MACs), clocks +240 s and -300 s off,
    apps whose identity exists only in the context logs the session writes: TLS,
    direct-IP HTTP, custom-crypto TCP, UDP without DNS. The join must find both
    skews and every attributable flow's true device and app; UDP stays unknown."""
    try:
        from netan.testing import apps
        from netan.testing.apps import Service
        from netan.testing.netns import Lab, unavailable_reason
        from netan.testing.session import Session
    except ImportError as exc:  # the lab belongs to another module of the project
        pytest.skip(f"lab not available: {exc}")
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    from netan.pipeline import RunOptions, analyze_captures

    dns, pcap = "10.77.2.53", tmp_path / "lab.pcap"
    with Lab(prefix="netanjoin") as lab:
        s = Session(lab)
        s.add_device("phone-a", skew=240.0, mac="3c:28:6d:00:00:1a")
        s.add_device("phone-b", skew=-300.0)
        s.add_server("internet", ["10.77.2.10", "10.77.2.30", dns, "10.77.2.66"],
                     [Service("dns", dns, 53), Service("https", "10.77.2.10", 443, {"hostnames": ["www.lab.test"]}),
                      Service("http", "10.77.2.10", 80), Service("frames", "10.77.2.66", 4443),
                      Service("udp", "10.77.2.30", 5004)],
                     zone={"www.lab.test": ["10.77.2.10"], "c2.lab.test": ["10.77.2.66"]})
        with s.recording(pcap):
            s.screen_on("phone-a")
            s.start_app("phone-a", "com.android.chrome")
            s.foreground("phone-a", "com.android.chrome")
            chrome = s.ctx("phone-a", "com.android.chrome")
            s.run("phone-a", apps.https_request, chrome, "www.lab.test", trust_pem=s.pki.trust_for("www.lab.test"),
                  path="/?size=2000")
            s.background("phone-a", "com.android.chrome")
            s.start_app("phone-b", "com.example.exfil")
            ex = s.ctx("phone-b", "com.example.exfil")
            s.run("phone-b", apps.exfil_tcp, ex, "c2.lab.test", port=4443, sizes=[1100, 700], mode="gcm",
                  interval=0.02, key_alias="k1")
            s.run("phone-b", apps.http_request, ex, "10.77.2.10", ip="10.77.2.10", path="/x?size=100")
            s.start_app("phone-b", "com.example.voip")
            s.run("phone-b", apps.udp_exchange, s.ctx("phone-b", "com.example.voip"), "10.77.2.30", 5004,
                  [(100, 300), (2, 0)])
            s.start_app("phone-a", "com.example.exfil")
            s.run("phone-a", apps.exfil_tcp, s.ctx("phone-a", "com.example.exfil"), "c2.lab.test", port=4443,
                  sizes=[500], mode="cbc", interval=0.02, key_alias="k2")
    ctx_dir = tmp_path / "context"
    ctx_dir.mkdir()
    s.write_context(ctx_dir)
    analyze_captures([str(pcap)], RunOptions(out_dir=str(tmp_path / "out"), context=(str(ctx_dir),)))
    flows = {(r["proto"], r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"]): r
             for r in map(json.loads, (tmp_path / "out" / "flows.jsonl").read_text().splitlines())}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["context"]
    devices = s.truth.devices
    for d in devices.values():
        assert summary["skew"][d.amapi_name]["offset_s"] == pytest.approx(d.skew, abs=0.05)
    assert {d.skew for d in devices.values()} == {240.0, -300.0}
    kinds = set()
    for f in s.truth.flows:
        rec = flows[(f.proto, f.src_ip, f.src_port, f.dst_ip, f.dst_port)]
        kinds.add((f.proto, f.connect_logged, f.via_dns))
        assert rec["device"] == devices[f.device].amapi_name
        if f.connect_logged or f.kind == "dns":
            assert (rec["app"], rec["attribution"]) == (
                f.package, "connect_event" if f.connect_logged else "dns_event"), rec["attribution_detail"]
        else:
            assert rec["app"] is None and rec["app_state"] == "unknown", rec["attribution_detail"]
    # the evidence mix the test is about: direct-IP TCP, UDP without connect or DNS
    assert ("tcp", True, False) in kinds and ("udp", False, False) in kinds


from hypothesis import given, settings, strategies as st  # noqa: E402

_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 2**40), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from([IP1, IP2, MAC1, "tcp", "udp", "203.0.113.45", "::1"]),
                    st.dictionaries(st.sampled_from(["syn", "syn_ts", "sni", "queries"]),
                                    st.one_of(st.booleans(), st.floats(), st.text(max_size=5),
                                              st.lists(st.dictionaries(st.just("name"), st.text(max_size=5))))))
_RECORDS = st.dictionaries(st.sampled_from(["ts", "proto", "src_ip", "src_port", "dst_ip", "dst_port", "src_mac",
                                            "tcp", "tls", "dns", "dst_name", "history", "flow_id", "bytes_out",
                                            "bytes_in"]), _VALUES)


_FUZZ_CTX: list = []


@settings(max_examples=150, deadline=None)
@given(st.lists(_RECORDS, max_size=6))
def test_join_never_raises_on_odd_records(tmp_path_factory, records):
    if not _FUZZ_CTX:  # one context for all examples: the join is what is fuzzed
        _FUZZ_CTX.append(load_context(build(tmp_path_factory.mktemp("fuzz"))[1]))
    join = ContextJoin(_FUZZ_CTX[0])
    for r in records:
        join.observe(r)
    join.estimate_skew()
    for r in records:
        a = join.annotate(r)
        assert set(a) == set(ANNOTATION_FIELDS) and a["app_state"] in ("foreground", "background", "unknown")
    json.dumps(join.summary())
