#!/usr/bin/env python3
"""Record netan's embedded demo from real traffic between network namespaces.

Writes ``captures/demo.pcap`` (tcpdump on the gateway's LAN bridge),
``captures/demo.truth.json`` (what really happened, capture clock) and
``context/`` (the MDM/device logs of the same session in the real formats:
AMAPI usage logs, AMAPI device inventory, UsageStats events, dnsmasq leases),
plus a README in each directory generated from the truth.

Re-record (root, ~25 s; needs iproute2, tcpdump, tshark, ethtool)::

    sudo .venv/bin/python scripts/record_demo.py            # into captures/ and context/
    sudo .venv/bin/python scripts/record_demo.py --out /tmp/demo   # somewhere else

Deterministic where the kernel lets it be: names, addresses, MACs, ports
(source ports are fixed), request and message sizes, response bodies. TLS
randomness, keys, ciphertext and timestamps differ on each run; packet
segmentation may differ slightly. Before anything is written, the capture is
checked against the truth with tshark (every flow present, payload bytes per
direction equal, no retransmission, no unexplained flow); the script records
again (up to 3 times) otherwise, and fails without writing anything if no
attempt was clean.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from netan.testing import apps
from netan.testing.apps import Service
from netan.testing.context_writer import usagestats_lines
from netan.testing.netns import Lab, LabUnavailable
from netan.testing.oracle import compare_with_truth, tshark_flows
from netan.testing.session import Session
from netan.testing.truth import SessionTruth

log = logging.getLogger("record_demo")

ROOT = Path(__file__).resolve().parents[1]

# ---- the cast --------------------------------------------------------------------
PIXEL = "pixel-7"
GALAXY = "galaxy-s23"
DEVICES = {
    PIXEL: dict(mac="3c:28:6d:77:01:0a", ipv4="10.77.1.10", skew=+37.0, model="Pixel 7",
                device_id="3f1c2b9e7a6d5c41", serial="28071FDH2001X7", hostname=None),
    GALAXY: dict(mac="5c:0a:5b:77:02:0b", ipv4="10.77.1.11", skew=-12.5, model="SM-S911B",
                 device_id="9a4e0c7b21d85f03", serial="R5CW31ABCDE", hostname="Galaxy-S23"),
}
CHROME = "com.android.chrome"
MESSENGER = "com.example.messenger"
EXFIL = "com.example.exfil"
WEATHER = "com.example.weather"
VOIP = "com.example.voip"
UPDATER = "com.example.updater"
STORE = "com.android.vending"

DNS_IP = "10.77.2.53"
WWW, CDN, CHAT, TELEMETRY, WEATHER_API, STORE_HOST = (
    "www.example-news.test", "cdn.example-news.test", "chat.example-messenger.test",
    "telemetry.example-analytics.test", "api.example-weather.test", "play.example-store.test")
ZONE = {WWW: ["10.77.2.10"], CDN: ["10.77.2.11"], CHAT: ["10.77.2.20"], TELEMETRY: ["10.77.2.66"],
        WEATHER_API: ["10.77.2.40"], STORE_HOST: ["10.77.2.12"]}
VOIP_RELAY = ("10.77.2.30", 5004)  # hard-coded media relay (UDP: never in connect events)
UPDATE_SERVER = ("10.77.2.77", 8080)  # hard-coded IP, no DNS lookup
EXFIL_PORT = 4443
SERVER_ADDRS = ["10.77.2.10", "10.77.2.11", "10.77.2.12", "10.77.2.20", "10.77.2.30", "10.77.2.40", DNS_IP,
                "10.77.2.66", "10.77.2.77"]
SERVICES = [
    Service("dns", DNS_IP, 53),
    Service("https", "10.77.2.10", 443, {"hostnames": [WWW]}),
    Service("http", "10.77.2.10", 80),
    Service("https", "10.77.2.11", 443, {"hostnames": [CDN], "tls_max": "1.2"}),
    Service("https", "10.77.2.12", 443, {"hostnames": [STORE_HOST]}),
    Service("tls_frames", "10.77.2.20", 443, {"hostnames": [CHAT], "reply_size": 32}),
    Service("udp", VOIP_RELAY[0], VOIP_RELAY[1]),
    Service("http", "10.77.2.40", 80),
    Service("frames", "10.77.2.66", EXFIL_PORT, {"prefix": 4}),
    Service("http", UPDATE_SERVER[0], UPDATE_SERVER[1]),
]
EXFIL_SIZES = [2048, 3072, 1536, 4096, 2560]  # plaintext bytes per batch
EXFIL_MODE = "ecb"
EXFIL_KEY_ALIAS = "exfil_sync_key"
MESSENGER_KEY_ALIAS = "messenger_identity_key"


def scenario(s: Session) -> None:
    """The demo session, second by second (offsets from the scenario start)."""
    # pixel-7 joins the Wi-Fi (a real DHCP exchange with the gateway's dnsmasq); both screens
    # are on and unlocked.
    s.sleep_until(0.0)
    s.join_network(PIXEL)
    s.screen_on(PIXEL)
    s.screen_on(GALAXY)

    # pixel-7: the user opens Chrome and reads the news (foreground, user interaction).
    s.start_app(PIXEL, CHROME)
    s.foreground(PIXEL, CHROME)
    chrome = s.ctx(PIXEL, CHROME)
    s.sleep_until(0.3)
    s.run(PIXEL, apps.https_request, chrome, WWW, trust_pem=s.pki.trust_for(WWW), path="/?size=24000",
          src_port=41001, dns_src_port=51001)

    # The messenger starts in the background, makes its identity key, keeps a push channel.
    s.sleep_until(1.0)
    s.start_app(PIXEL, MESSENGER)
    s.key_generated(PIXEL, MESSENGER, MESSENGER_KEY_ALIAS)
    s.spawn(PIXEL, apps.tls_keepalive, s.ctx(PIXEL, MESSENGER), CHAT, trust_pem=s.pki.trust_for(CHAT),
            pings=6, interval=3.0, ping_size=48, src_port=41101, dns_src_port=51101, start_at=1.2)

    s.sleep_until(1.8)
    s.interact(PIXEL, CHROME)
    s.run(PIXEL, apps.https_request, chrome, CDN, trust_pem=s.pki.trust_for(CDN),
          path="/img/hero.jpg?size=18000&type=random", src_port=41002, dns_src_port=51002)
    s.sleep_until(2.8)
    s.run(PIXEL, apps.http_request, chrome, WWW, path="/live/ticker?size=6000", src_port=41003, dns_src_port=51003)

    # The exfil app starts without any UI, makes a key, and ships collected data in
    # the background: AES-ECB, length-prefixed, one TCP connection per batch.
    s.sleep_until(4.0)
    s.start_app(PIXEL, EXFIL)
    s.spawn(PIXEL, apps.exfil_tcp, s.ctx(PIXEL, EXFIL), TELEMETRY, port=EXFIL_PORT, sizes=EXFIL_SIZES,
            mode=EXFIL_MODE, interval=3.0, per_connection=True, key_alias=EXFIL_KEY_ALIAS,
            src_ports=[42001 + i for i in range(len(EXFIL_SIZES))], dns_src_port=52001, start_at=4.2)

    # galaxy-s23: weather app in the foreground (plain HTTP), VoIP over UDP, Play Store over TLS,
    # and an updater that downloads a package from a hard-coded address (no DNS).
    s.sleep_until(4.4)
    s.join_network(GALAXY)  # galaxy-s23 comes into range and joins the Wi-Fi
    s.sleep_until(4.6)
    s.start_app(GALAXY, WEATHER)
    s.foreground(GALAXY, WEATHER)
    s.run(GALAXY, apps.http_request, s.ctx(GALAXY, WEATHER), WEATHER_API, path="/v1/forecast?size=3000",
          src_port=43001, dns_src_port=53001)
    s.sleep_until(5.5)
    s.start_app(GALAXY, VOIP)
    s.run(GALAXY, apps.udp_exchange, s.ctx(GALAXY, VOIP), *VOIP_RELAY, [(172, 172)] * 12, interval=0.05,
          src_port=43101)

    # pixel-7: the user leaves Chrome; later the screen turns off and the device locks.
    s.sleep_until(6.5)
    s.background(PIXEL, CHROME)
    s.sleep_until(7.0)
    s.start_app(GALAXY, UPDATER)
    s.run(GALAXY, apps.http_request, s.ctx(GALAXY, UPDATER), f"{UPDATE_SERVER[0]}:{UPDATE_SERVER[1]}",
          ip=UPDATE_SERVER[0], port=UPDATE_SERVER[1], path="/pkg/update.bin?size=60000&type=gzip", src_port=43201)
    s.sleep_until(8.5)
    s.screen_off(PIXEL)
    s.sleep_until(9.5)
    s.start_app(GALAXY, STORE)
    s.foreground(GALAXY, STORE)
    s.run(GALAXY, apps.https_request, s.ctx(GALAXY, STORE), STORE_HOST, trust_pem=s.pki.trust_for(STORE_HOST),
          path="/details?id=com.example.weather&size=8000", src_port=43301, dns_src_port=53301)
    s.sleep_until(11.0)
    s.background(GALAXY, STORE)
    s.usage(GALAXY, WEATHER, "ACTIVITY_STOPPED")
    # The background apps finish on their own (exfil by ~17 s, messenger by ~17 s).


def _fmt_time(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def captures_readme(truth: SessionTruth, pcap: Path, stats: dict) -> str:
    flows = sorted(truth.flows, key=lambda f: f.start)
    lines = [
        "# Demo capture",
        "",
        "`demo.pcap` is real traffic recorded by `scripts/record_demo.py` between Linux network",
        "namespaces: two phones (`pixel-7`, `galaxy-s23`) on a LAN bridge, a gateway routing to a",
        "server namespace that plays \"the internet\". tcpdump ran on the gateway's LAN bridge, so",
        "every frame carries the phone's own MAC as Ethernet source. Every TLS handshake, HTTP",
        "message, DNS answer and AES block in it was made by real libraries (Python `ssl`/OpenSSL,",
        "`cryptography`, `dnslib`); nothing is synthesised.",
        "",
        f"* recorded {dt.datetime.fromtimestamp(truth.start, dt.timezone.utc).isoformat(timespec='seconds')}"
        f", {truth.end - truth.start:.1f} s, {stats['packets']} packets, {pcap.stat().st_size} bytes"
        " (Ethernet, microsecond pcap)",
        "* `demo.truth.json`: the machine-readable truth (flows with 5-tuples, payload bytes per",
        "  direction, DNS lookups, DHCP leases, app events, device identities and clock skews);",
        "  capture clock.",
        "* both phones join the network inside the capture: a real DHCP exchange (udhcpc with",
        "  Android's vendor class `android-dhcp-14`, the Galaxy also sends its host name) with",
        "  dnsmasq on the gateway, whose own lease file is `../context/dnsmasq.leases`.",
        "* the device-context logs of the same session are in `../context/`.",
        "",
        "## What happened",
        "",
        "| device | app | what | flows |",
        "| --- | --- | --- | --- |",
        f"| pixel-7 | {CHROME} | user opens Chrome (foreground, interaction): HTTPS (TLS 1.3, ALPN h2/http1.1) "
        f"to {WWW}, HTTPS (TLS 1.2, certificate visible) to {CDN}, plain HTTP to {WWW} | 3 TCP + 3 DNS |",
        f"| pixel-7 | {MESSENGER} | background; generates key `{MESSENGER_KEY_ALIAS}`; one long TLS 1.3 connection "
        f"to {CHAT} with 6 small heartbeats every 3 s | 1 TCP + 1 DNS |",
        f"| pixel-7 | **{EXFIL}** | **background, never on screen, no user interaction; generates key "
        f"`{EXFIL_KEY_ALIAS}`, then sends collected data encrypted with AES-128-ECB (same key, PKCS#7) as "
        f"4-byte-length-prefixed messages over plain TCP to {TELEMETRY}:{EXFIL_PORT}, one connection every "
        f"3 s; 8-byte acks; the last three batches leave while the screen is off and the keyguard shown** "
        f"| {len(EXFIL_SIZES)} TCP + 1 DNS |",
        f"| galaxy-s23 | {WEATHER} | foreground; plain HTTP GET to {WEATHER_API} | 1 TCP + 1 DNS |",
        f"| galaxy-s23 | {VOIP} | background; 12 UDP datagrams each way with {VOIP_RELAY[0]}:{VOIP_RELAY[1]} "
        "(hard-coded relay: no DNS, and UDP never appears in Android connect events) | 1 UDP |",
        f"| galaxy-s23 | {UPDATER} | background; HTTP GET of a gzip package from the hard-coded "
        f"{UPDATE_SERVER[0]}:{UPDATE_SERVER[1]} (no DNS lookup, connect event only) | 1 TCP |",
        f"| galaxy-s23 | {STORE} | foreground; HTTPS (TLS 1.3) to {STORE_HOST} | 1 TCP + 1 DNS |",
        "",
        "All TLS servers present certificates from a lab CA generated at recording time (the",
        "clients verify them). Host names use the reserved `.test` TLD; addresses are 10.77.0.0/16",
        "inside the namespaces only. The `pixel-7` clock runs 37 s ahead of the capture clock,",
        "the `galaxy-s23` clock 12.5 s behind (see `../context/README.md`).",
        "",
        "## Flows (truth; bytes are transport payload, what `bytes_out`/`bytes_in` must say)",
        "",
        "| start (UTC) | device | app | kind | proto | originator | responder | host | bytes out | bytes in |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | ---: | ---: |",
    ]
    for f in flows:
        lines.append(f"| {_fmt_time(f.start)} | {f.device} | {f.package} | {f.kind} | {f.proto} | "
                     f"{f.src_ip}:{f.src_port} | {f.dst_ip}:{f.dst_port} | {f.hostname or ''} | "
                     f"{f.bytes_out} | {f.bytes_in} |")
    kinds = Counter(f.kind for f in flows)
    lines += [
        "",
        f"{len(flows)} flows: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + ". The capture also",
        f"holds {len(truth.dhcp)} DHCP exchanges (DISCOVER/OFFER/REQUEST/ACK, UDP 68/67) and ARP; nothing else",
        "(IPv6 and multicast are off in the lab, so there is no ND/MLD/IGMP noise).",
        "`scripts/record_demo.py` checks with tshark, before writing, that the capture holds exactly",
        "these TCP/UDP flows with these payload byte counts and no retransmission.",
        "",
        "## Expected findings",
        "",
        f"* the {len(EXFIL_SIZES)} flows of `{EXFIL}` to {TELEMETRY}:{EXFIL_PORT}: non-TLS, high-entropy, "
        "length-prefixed, 16-byte-aligned messages with repeated ciphertext blocks (ECB), upload-dominant,",
        "  periodic; attributed by connect events; app in the background, no user interaction, screen off for",
        "  the later ones; key generated by the same uid just before: an AN1716/AN1731 chain (alert).",
        f"* `{MESSENGER}` also generates a key and talks in the background, but over standard TLS with an SNI",
        "  that matches its DNS name and with tiny symmetric heartbeats: it should score well below the alert line.",
        "* everything else is benign foreground or ordinary traffic.",
        "",
        "Re-record: `sudo .venv/bin/python scripts/record_demo.py` (about 25 s; see the script's docstring).",
        "",
    ]
    return "\n".join(lines)


def context_readme(truth: SessionTruth, files: list[Path]) -> str:
    devs = sorted(truth.devices.values(), key=lambda d: d.name)
    lines = [
        "# Demo device context",
        "",
        "The MDM and device logs of the same recording session as `../captures/demo.pcap`, written by",
        "`scripts/record_demo.py` (via `netan/testing/context_writer.py`) from what really happened,",
        "in the real formats of `shared/formats/android-context.md`:",
        "",
        "| file | format | content |",
        "| --- | --- | --- |",
        "| `amapi-usage-logs.jsonl` | Android Management API `BatchUsageLogEvents`, one batch per line | "
        "per device a security batch (APP_PROCESS_START with uid and packageNames, KEY_GENERATED with "
        "applicationUid, KEYGUARD_SECURED/DISMISSED) and a network batch (CONNECT for every TCP connect, "
        "DNS for every system-resolver lookup; no UDP, no source ports, no bytes) |",
        "| `amapi-devices.json` | AMAPI `devices.list` response (`Device` resources) | name, serial, IMEI, "
        "`networkInfo.wifiMacAddress` (the MAC seen in the capture), application reports |",
        "| `usagestats.jsonl` | UsageStats export, `{\"device\",\"package\",\"eventType\",\"timeStamp\"}` | "
        "ACTIVITY_RESUMED/PAUSED/STOPPED, USER_INTERACTION, SCREEN_(NON_)INTERACTIVE, KEYGUARD_SHOWN/HIDDEN |",
        "| `dnsmasq.leases` | dnsmasq lease file, written by the real dnsmasq 2.90 that served the DHCP "
        "exchanges in the capture | IP <-> MAC (<-> host name) of both phones, expiry on the gateway clock |",
        "",
        "## Clocks",
        "",
        "AMAPI `eventTime`/`startTime`/`retrievalTime` and UsageStats `timeStamp` are on each device's",
        "clock: **device time = capture time + skew**. The join must estimate the skew (e.g. from",
        "connect events against TCP SYNs) and should find:",
        "",
        "| device | AMAPI name | Wi-Fi MAC | IPv4 | skew (device - capture) |",
        "| --- | --- | --- | --- | ---: |",
    ]
    for d in devs:
        lines.append(f"| {d.name} | `{d.amapi_name}` | {d.mac} | {d.ipv4} | {d.skew:+.1f} s |")
    lines += [
        "",
        "The lease file and the inventory are written by the gateway and the MDM server: no device skew.",
        "",
        "## Apps and uids",
        "",
        "| device | package | uid | key generated (alias) |",
        "| --- | --- | ---: | --- |",
    ]
    keys = {(e.device, e.package): e.detail.get("alias") for e in truth.events if e.kind == "key_generated"}
    for dev, pkgs in sorted(truth.uids.items()):
        for pkg, uid in sorted(pkgs.items(), key=lambda kv: kv[1]):
            lines.append(f"| {dev} | {pkg} | {uid} | {keys.get((dev, pkg)) or ''} |")
    n_usage = len(usagestats_lines(truth))
    connects = sum(1 for f in truth.flows if f.proto == "tcp" and f.connect_logged)
    dns = sum(1 for q in truth.dns if q.system_resolver)
    lines += [
        "",
        f"Counts: {connects} CONNECT events (one per TCP flow in the capture), {dns} DNS events, "
        f"{n_usage} UsageStats events, "
        f"{sum(1 for e in truth.events if e.kind == 'process_start')} process starts, "
        f"{sum(1 for e in truth.events if e.kind == 'key_generated')} keys generated.",
        "",
        "What the context deliberately cannot say (as on real devices): the UDP flow of",
        f"`{VOIP}` has no connect event; the DNS flows themselves are made by the resolver (no",
        f"connect event); the `{UPDATER}` connection has a connect event but no DNS event (hard-coded",
        "address); key *use* is never logged.",
        "",
        "Note for `--context context/`: this README is not a context file (a reader may report it as",
        "unrecognised).",
        "",
    ]
    return "\n".join(lines)


def record(out_captures: Path, out_context: Path, attempts: int = 3) -> int:
    """Record until the capture is clean (a loaded machine can cause a TCP retransmission)."""
    for attempt in range(1, attempts + 1):
        rc = _record_once(out_captures, out_context)
        if rc == 0:
            return 0
        log.warning("attempt %d of %d did not give a clean capture", attempt, attempts)
    return 1


def _record_once(out_captures: Path, out_context: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="netan-demo-") as tmp:
        pcap = Path(tmp) / "demo.pcap"
        with Lab(prefix="netandemo") as lab:
            s = Session(lab, enterprise="LC0netandemo")
            for name, spec in DEVICES.items():
                s.add_device(name, dhcp=True, **spec)
            s.add_server("internet", SERVER_ADDRS, SERVICES, zone=ZONE)
            with s.recording(pcap):
                scenario(s)
            stats = s.capture_stats
        assert stats is not None
        errors = [r for r in s.server_records if "error" in r]
        problems = compare_with_truth(pcap, s.truth.flows, allow_retransmissions=False)
        problems += [f"server error: {r}" for r in errors]
        if problems:
            for p in problems:
                log.error("%s", p)
            log.error("the capture does not match the truth; nothing written")
            return 1
        # Prove the exfil ciphertext is real: decrypt what the server received with the app's key.
        _check_exfil_ciphertext(s)
        out_captures.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pcap, out_captures / "demo.pcap")
        files = s.write_context(out_context)  # assigns the app uids, so before the truth is written
        truth_path = out_captures / "demo.truth.json"
        s.truth.write_json(truth_path)
        _strip_keys(truth_path)
        (out_captures / "README.md").write_text(
            captures_readme(s.truth, out_captures / "demo.pcap", {"packets": stats.captured}))
        (out_context / "README.md").write_text(context_readme(s.truth, files))
        n = len(tshark_flows(out_captures / "demo.pcap"))
        log.info("demo: %d packets, %d flows, %d bytes -> %s; context -> %s", stats.captured, n,
                 (out_captures / "demo.pcap").stat().st_size, out_captures, out_context)
    return 0


def _check_exfil_ciphertext(s: Session) -> None:
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    received = {tuple(r["client"]): r for r in s.server_records if r.get("service") == "frames"}
    for f in s.truth.flows:
        if f.kind != "exfil":
            continue
        rec = received[(f.src_ip, f.src_port)]
        key = bytes.fromhex(f.details["key_hex"])
        for msg, n in zip(rec["messages"], f.details["plaintext"]):
            dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
            unpad = padding.PKCS7(128).unpadder()
            plain = unpad.update(dec.update(bytes.fromhex(msg["data"])) + dec.finalize()) + unpad.finalize()
            if len(plain) != n:
                raise RuntimeError(f"exfil message of {f.five_tuple} does not decrypt to {n} bytes")


def _strip_keys(path: Path) -> None:
    """Keys stay out of the published truth (they are the app's secrets, not facts the analyzer sees)."""
    d = json.loads(path.read_text())
    for f in d["flows"]:
        f["details"].pop("key_hex", None)
    path.write_text(json.dumps(d, indent=1, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="write <out>/captures and <out>/context instead of the repo's")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base = args.out or ROOT
    try:
        return record(base / "captures", base / "context")
    except LabUnavailable as exc:
        log.error("cannot record: %s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
