#!/usr/bin/env python3
"""Detection and false-finding rates of the ciphertext-framing analyzers.

Three measurements, printed as the markdown tables that docs/framing.md quotes:

1. Synthetic flows from real `cryptography` ciphertext, many seeds per scheme
   (message counts, plaintext families and lengths vary): the share of flows
   where the scheme's expected finding appears (detection) and where any
   ciphertext finding appears.
2. Benign controls built the same way (JSON APIs, gzip'd HTTP, JPEG uploads,
   protobuf over h2c, DNS, length-prefixed protobuf and zlib, text
   protocols): the share of flows with any ciphertext finding (false findings).
3. Real captures from ../shared/corpus (TLS, QUIC, DNS, HTTP, SSH, ... from
   Zeek, Suricata, FoxIO, PCAPdroid): none of it is covert exfiltration, so
   every ciphertext finding there is counted as a false finding.

Run: .venv/bin/python benchmarks/framing_eval.py [--trials 200] [--json out.json] [--no-corpus]
"""
from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import logging
import os
import random
import struct
import sys
import time
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x25519
from cryptography.hazmat.primitives.asymmetric import padding as apadding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the test helpers build FlowSamples (until netan.engine is wired here)

from framing_pcap import sample_from_messages, samples_from_pcap  # noqa: E402

from netan.analyzers import framing, protocols  # noqa: E402
from netan.analyzers.crossflow import CrossFlowAnalyzer  # noqa: E402
from netan.sample import IN, OUT, FlowSample  # noqa: E402

log = logging.getLogger("framing_eval")
CIPHER = set(framing.FINDINGS) - {"tls_records"}
Convo = list[tuple[int, bytes]]


# ---------------------------------------------------------------- plaintext families


def pt_json(rng: random.Random, i: int) -> bytes:
    return json.dumps({"seq": i, "imei": f"35{rng.randrange(10**13):013d}", "loc": [rng.random() * 90, rng.random() * 180], "contacts": [f"+{rng.randrange(10**11)}" for _ in range(rng.randrange(0, 8))], "note": "x" * rng.randrange(0, 200)}).encode()


def pt_csv(rng: random.Random, i: int) -> bytes:
    return "\n".join(f"{rng.choice(['Alice', 'Bob', 'Carol', 'Dave'])},{rng.randrange(10**9)},{rng.choice(['home', 'work'])}" for _ in range(rng.randrange(1, 30))).encode()


def pt_binary(rng: random.Random, i: int) -> bytes:
    return b"".join(struct.pack("<IdH", i, rng.random(), rng.randrange(65536)) for _ in range(rng.randrange(2, 40)))


def pt_records(rng: random.Random, i: int) -> bytes:
    return b"".join(rng.choice([b"Alice", b"Bob", b"Carol"]).ljust(16) + b"status=active\x00\x00\x00" + struct.pack(">Q", rng.randrange(4)).rjust(16, b"\x00") for _ in range(rng.randrange(3, 12)))


FAMILIES = (pt_json, pt_csv, pt_binary)


def pkcs7(data: bytes, bits: int = 128) -> bytes:
    p = padding.PKCS7(bits).padder()
    return p.update(data) + p.finalize()


def exchange(messages: list[bytes], reply: bytes = b"OK") -> Convo:
    out: Convo = []
    for m in messages:
        out += [(OUT, m), (IN, reply)]
    return out


# ---------------------------------------------------------------- schemes


RSA_PUB = None


def rsa_pub() -> rsa.RSAPublicKey:
    global RSA_PUB
    if RSA_PUB is None:
        RSA_PUB = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return RSA_PUB


def oaep() -> apadding.OAEP:
    return apadding.OAEP(mgf=apadding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _n(rng: random.Random) -> int:
    return rng.randrange(3, 11)


def s_cbc_raw(rng: random.Random) -> list[Convo]:
    key, fam = os.urandom(16), rng.choice(FAMILIES)

    def enc(p: bytes) -> bytes:
        iv = os.urandom(16)
        e = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        return iv + e.update(pkcs7(p)) + e.finalize()

    return [exchange([enc(fam(rng, i)) for i in range(_n(rng))])]


def s_cbc_lp(rng: random.Random) -> list[Convo]:
    key, fam = os.urandom(16), rng.choice(FAMILIES)
    width, big = rng.choice([(2, True), (2, False), (4, True), (4, False)])

    def enc(p: bytes) -> bytes:
        iv = os.urandom(16)
        e = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        body = iv + e.update(pkcs7(p)) + e.finalize()
        return len(body).to_bytes(width, "big" if big else "little") + body

    return [exchange([enc(fam(rng, i)) for i in range(_n(rng))])]


def s_ecb(rng: random.Random) -> list[Convo]:
    key = os.urandom(16)

    def enc(p: bytes) -> bytes:
        e = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        return e.update(pkcs7(p)) + e.finalize()

    return [exchange([enc(pt_records(rng, i)) for i in range(_n(rng))])]


def s_ctr_static(rng: random.Random) -> list[Convo]:
    key, nonce, fam = os.urandom(16), os.urandom(16), rng.choice(FAMILIES)

    def enc(p: bytes) -> bytes:
        e = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
        return e.update(p) + e.finalize()

    return [exchange([enc(fam(rng, i)) for i in range(_n(rng))])]


def s_gcm_lp(rng: random.Random) -> list[Convo]:
    g, fam = AESGCM(AESGCM.generate_key(bit_length=256)), rng.choice(FAMILIES)
    width, big = rng.choice([(2, True), (2, False), (4, True), (4, False)])

    def enc(p: bytes) -> bytes:
        n = os.urandom(12)
        body = n + g.encrypt(n, p, None)
        return len(body).to_bytes(width, "big" if big else "little") + body

    return [exchange([enc(fam(rng, i)) for i in range(_n(rng))])]


def s_gcm_raw(rng: random.Random) -> list[Convo]:
    g, fam = AESGCM(AESGCM.generate_key(bit_length=256)), rng.choice(FAMILIES)
    return [exchange([(lambda n: n + g.encrypt(n, fam(rng, i), None))(os.urandom(12)) for i in range(_n(rng))])]


def s_chacha_lp(rng: random.Random) -> list[Convo]:
    c, fam = ChaCha20Poly1305(ChaCha20Poly1305.generate_key()), rng.choice(FAMILIES)

    def enc(p: bytes) -> bytes:
        n = os.urandom(12)
        body = n + c.encrypt(n, p, None)
        return struct.pack(">I", len(body)) + body

    return [exchange([enc(fam(rng, i)) for i in range(_n(rng))])]


def s_rc4_reused(rng: random.Random) -> list[Convo]:
    key, fam = os.urandom(16), rng.choice(FAMILIES)
    return [exchange([Cipher(ARC4(key), mode=None).encryptor().update(fam(rng, i))]) for i in range(3)]


def s_rsa_alone(rng: random.Random) -> list[Convo]:
    key = AESGCM.generate_key(bit_length=128)
    msgs = [rsa_pub().encrypt(key, oaep())]
    for i in range(_n(rng)):
        n = os.urandom(12)
        msgs.append(n + AESGCM(key).encrypt(n, rng.choice(FAMILIES)(rng, i), None))
    return [exchange(msgs)]


def s_rsa_envelope(rng: random.Random) -> list[Convo]:
    msgs = []
    for i in range(_n(rng)):
        key = AESGCM.generate_key(bit_length=128)
        n = os.urandom(12)
        w = rsa_pub().encrypt(key, oaep())
        msgs.append(struct.pack(">H", len(w)) + w + n + AESGCM(key).encrypt(n, rng.choice(FAMILIES)(rng, i), None))
    return [exchange(msgs)]


def s_ecies(rng: random.Random) -> list[Convo]:
    curve = rng.choice([ec.SECP256R1(), ec.SECP384R1(), ec.SECP256K1()])
    msgs = []
    for i in range(_n(rng)):
        point = ec.generate_private_key(curve).public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        n = os.urandom(12)
        msgs.append(point + n + AESGCM(AESGCM.generate_key(bit_length=128)).encrypt(n, rng.choice(FAMILIES)(rng, i), None))
    return [exchange(msgs)]


def s_x25519(rng: random.Random) -> list[Convo]:
    c = ChaCha20Poly1305(ChaCha20Poly1305.generate_key())
    convo: Convo = [(OUT, x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()), (IN, x25519.X25519PrivateKey.generate().public_key().public_bytes_raw())]
    for i in range(_n(rng)):
        n = os.urandom(12)
        convo += [(OUT, n + c.encrypt(n, rng.choice(FAMILIES)(rng, i), None)), (IN, b"\x00\x00")]
    return [convo]


def _post(path: bytes, ctype: bytes, body: bytes) -> bytes:
    return b"POST " + path + b" HTTP/1.1\r\nHost: c.example\r\nUser-Agent: okhttp/4.12\r\nContent-Type: " + ctype + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body


_HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"


def s_http_json_envelope(rng: random.Random) -> list[Convo]:
    msgs = []
    for i in range(rng.randrange(1, 4)):
        key = AESGCM.generate_key(bit_length=128)
        n = os.urandom(12)
        doc = {"k": base64.b64encode(rsa_pub().encrypt(key, oaep())).decode(), "iv": base64.b64encode(n).decode(), "d": base64.b64encode(AESGCM(key).encrypt(n, pt_json(rng, i), None)).decode()}
        msgs.append(_post(b"/sync", b"application/json", json.dumps(doc).encode()))
    return [exchange(msgs, _HTTP_OK)]


def s_http_octet_cbc(rng: random.Random) -> list[Convo]:
    key = os.urandom(16)
    msgs = []
    for i in range(_n(rng)):
        iv = os.urandom(16)
        e = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        msgs.append(_post(b"/up", b"application/octet-stream", iv + e.update(pkcs7(pt_json(rng, i))) + e.finalize()))
    return [exchange(msgs, _HTTP_OK)]


def s_http_query_encoded(rng: random.Random) -> list[Convo]:
    msgs = []
    for i in range(rng.randrange(1, 4)):
        n = os.urandom(12)
        ct = n + AESGCM(AESGCM.generate_key(bit_length=128)).encrypt(n, pt_json(rng, i), None)
        enc = ct.hex().encode() if rng.random() < 0.5 else base64.urlsafe_b64encode(ct).rstrip(b"=")
        msgs.append(b"GET /p.gif?id=%d&d=" % i + enc + b" HTTP/1.1\r\nHost: t.example\r\n\r\n")
    return [exchange(msgs, b"HTTP/1.1 204 No Content\r\n\r\n")]


def s_tcp_b64_lines(rng: random.Random) -> list[Convo]:
    """RAT-style text channel: base64(IV + AES-CBC) per line."""
    key, fam = os.urandom(16), rng.choice(FAMILIES)

    def enc(p: bytes) -> bytes:
        iv = os.urandom(16)
        e = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        return b"R " + base64.b64encode(iv + e.update(pkcs7(p)) + e.finalize()) + b"\n"

    return [exchange([enc(fam(rng, i)) for i in range(_n(rng))], b"ACK\n")]


def _dns_exchange(name: str) -> Convo:
    from dnslib import QTYPE, RR, A, DNSRecord

    q = DNSRecord.question(name, rng_choice_qtype(name))
    r = q.reply()
    r.add_answer(RR(name, QTYPE.A, rdata=A("192.0.2.1"), ttl=0))
    return [(OUT, bytes(q.pack())), (IN, bytes(r.pack()))]


def rng_choice_qtype(name: str) -> str:
    return "TXT" if len(name) % 2 else "A"


def s_dns_tunnel(rng: random.Random) -> list[Convo]:
    """Exfiltration in query names: AES-CTR chunks, hex or base32, one query per chunk."""
    key, nonce = os.urandom(16), os.urandom(16)
    data = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor().update(pt_json(rng, 0) * 3)
    enc_hex = rng.random() < 0.5
    parent = f"{rng.choice(['cdn', 'upd', 'x'])}{rng.randrange(100)}.example.net"
    convos = []
    for i in range(rng.randrange(3, 8)):
        chunk = data[i * 30 : i * 30 + 30] or os.urandom(30)
        text = chunk.hex() if enc_hex else base64.b32encode(chunk).decode().rstrip("=").lower()
        labels = [text[j : j + 50] for j in range(0, len(text), 50)]
        convos.append(_dns_exchange(".".join(labels + [f"s{i}", parent])))
    return convos


def ws_frame(payload: bytes, opcode: int = 1, masked: bool = True) -> bytes:
    n = len(payload)
    mb = 0x80 if masked else 0
    head = bytes([0x80 | opcode]) + (bytes([mb | n]) if n < 126 else bytes([mb | 126]) + n.to_bytes(2, "big"))
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


_WS_UP = b"GET /ws HTTP/1.1\r\nHost: push.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
_WS_101 = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


def _ws_convo(payloads: list[bytes], opcode: int) -> Convo:
    convo: Convo = [(OUT, _WS_UP), (IN, _WS_101)]
    for p in payloads:
        convo += [(OUT, ws_frame(p, opcode)), (IN, ws_frame(b'{"ok":1}', masked=False))]
    return convo


def s_ws_b64(rng: random.Random) -> list[Convo]:
    g = AESGCM(AESGCM.generate_key(bit_length=128))
    msgs = [json.dumps({"t": "r", "d": base64.b64encode((lambda n: n + g.encrypt(n, rng.choice(FAMILIES)(rng, i), None))(os.urandom(12))).decode()}).encode() for i in range(_n(rng))]
    return [_ws_convo(msgs, 1)]


def s_ws_binary_cbc(rng: random.Random) -> list[Convo]:
    key = os.urandom(16)

    def enc(p: bytes) -> bytes:
        iv = os.urandom(16)
        e = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        return iv + e.update(pkcs7(p)) + e.finalize()

    return [_ws_convo([enc(rng.choice(FAMILIES)(rng, i)) for i in range(_n(rng))], 2)]


def s_beacon_cbc(rng: random.Random) -> list[Convo]:
    """One [u32 len][AES-CBC, static IV] message per connection, 4-8 connections."""
    key, iv, fam = os.urandom(16), os.urandom(16), rng.choice(FAMILIES)
    convos = []
    for i in range(rng.randrange(4, 9)):
        e = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        ct = e.update(pkcs7(fam(rng, i))) + e.finalize()
        convos.append([(OUT, struct.pack(">I", len(ct)) + ct), (IN, b"\x00" * 8)])
    return convos


def s_beacon_gcm(rng: random.Random) -> list[Convo]:
    """One [u16 len][nonce][AES-GCM] message per connection, 4-8 connections."""
    g, fam = AESGCM(AESGCM.generate_key(bit_length=128)), rng.choice(FAMILIES)
    convos = []
    for i in range(rng.randrange(4, 9)):
        n = os.urandom(12)
        body = n + g.encrypt(n, fam(rng, i), None)
        convos.append([(OUT, struct.pack(">H", len(body)) + body), (IN, b"ok")])
    return convos


def s_udp_cbc(rng: random.Random) -> list[Convo]:
    return s_cbc_raw(rng)


SCHEMES: dict[str, tuple[Callable[[random.Random], list[Convo]], set[str], str]] = {
    "AES-CBC, IV + blocks (TCP)": (s_cbc_raw, {"block_aligned_16"}, "tcp"),
    "AES-CBC, length-prefixed": (s_cbc_lp, {"length_prefixed", "block_aligned_16"}, "tcp"),
    "AES-ECB, table rows": (s_ecb, {"repeated_blocks"}, "tcp"),
    "AES-CTR, static nonce": (s_ctr_static, {"keystream_reuse"}, "tcp"),
    "AES-GCM, length-prefixed": (s_gcm_lp, {"length_prefixed"}, "tcp"),
    "AES-GCM, unframed": (s_gcm_raw, set(CIPHER), "tcp"),
    "ChaCha20-Poly1305, length-prefixed": (s_chacha_lp, {"length_prefixed"}, "tcp"),
    "RC4, key reused per connection (3 flows)": (s_rc4_reused, {"keystream_reuse"}, "tcp"),
    "RSA-OAEP wrapped key, then AES-GCM": (s_rsa_alone, {"rsa_blob"}, "tcp"),
    "RSA-OAEP envelope [len][RSA][GCM]": (s_rsa_envelope, {"rsa_blob"}, "tcp"),
    "ECIES (P-256/P-384/secp256k1 point + GCM)": (s_ecies, {"ec_point"}, "tcp"),
    "X25519 exchange, then ChaCha20": (s_x25519, {"ec_point"}, "tcp"),
    "HTTP JSON {k: b64 RSA, d: b64 GCM}": (s_http_json_envelope, {"encoded_ciphertext"}, "tcp"),
    "HTTP octet-stream AES-CBC bodies": (s_http_octet_cbc, {"block_aligned_16"}, "tcp"),
    "HTTP URL parameter, hex/base64url GCM": (s_http_query_encoded, {"encoded_ciphertext"}, "tcp"),
    "UDP AES-CBC datagrams": (s_udp_cbc, {"block_aligned_16"}, "udp"),
    "raw TCP text lines, base64(AES-CBC)": (s_tcp_b64_lines, {"encoded_ciphertext"}, "tcp"),
    "DNS tunnel: hex/base32 AES-CTR chunks in query names": (s_dns_tunnel, {"encoded_ciphertext"}, "udp"),
    "WebSocket text frames, JSON with base64(AES-GCM)": (s_ws_b64, {"encoded_ciphertext"}, "tcp"),
    "WebSocket binary frames, AES-CBC": (s_ws_binary_cbc, {"block_aligned_16"}, "tcp"),
    "beacon: one [len][AES-CBC] per connection (4-8 flows)": (s_beacon_cbc, {"length_prefixed", "block_aligned_16"}, "tcp"),
    "beacon: one [len][AES-GCM] per connection (4-8 flows)": (s_beacon_gcm, {"length_prefixed"}, "tcp"),
}


# ---------------------------------------------------------------- benign controls


def b_json_api(rng: random.Random) -> list[Convo]:
    import hashlib
    import uuid

    msgs = []
    for i in range(_n(rng)):
        doc = {"id": str(uuid.uuid4()), "sha256": hashlib.sha256(os.urandom(8)).hexdigest(), "token": base64.urlsafe_b64encode(os.urandom(32)).decode(), "event": rng.choice(["open", "click"]), "ts": 1763769600 + i, "items": [{"sku": rng.randrange(10**6)} for _ in range(rng.randrange(6))]}
        body = json.dumps(doc).encode()
        msgs.append(b"POST /v2/e HTTP/1.1\r\nHost: api.example\r\nAuthorization: Bearer " + base64.b64encode(os.urandom(48)) + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    return [exchange(msgs, _HTTP_OK)]


def b_http_gzip(rng: random.Random) -> list[Convo]:
    convo: Convo = []
    for i in range(_n(rng)):
        body = gzip.compress(json.dumps([pt_json(rng, j).decode() for j in range(rng.randrange(1, 20))]).encode())
        convo += [(OUT, b"GET /feed?p=%d HTTP/1.1\r\nHost: n.example\r\nAccept-Encoding: gzip\r\n\r\n" % i), (IN, b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)]
    return [convo]


def _jpeg(rng: random.Random) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (rng.randrange(64, 200), rng.randrange(64, 200)))
    d = ImageDraw.Draw(img)
    for _ in range(60):
        x, y = rng.randrange(200), rng.randrange(200)
        d.ellipse((x, y, x + 30, y + 30), fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=rng.randrange(60, 95))
    return buf.getvalue()


def b_jpeg_upload(rng: random.Random) -> list[Convo]:
    msgs = []
    for _ in range(rng.randrange(1, 4)):
        if rng.random() < 0.5:
            msgs.append(_post(b"/photos", b"image/jpeg", _jpeg(rng)))
        else:
            bd = b"----b%d" % rng.randrange(10**6)
            part = b"--" + bd + b'\r\nContent-Disposition: form-data; name="f"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n' + _jpeg(rng) + b"\r\n--" + bd + b"--\r\n"
            msgs.append(_post(b"/photos", b"multipart/form-data; boundary=" + bd, part))
    return [exchange(msgs, _HTTP_OK)]


def _protobuf(rng: random.Random) -> bytes:
    from google.protobuf import struct_pb2

    s = struct_pb2.Struct()
    s.update({"user": f"u{rng.randrange(1000)}", "score": rng.random() * 100, "tags": ["a", "b", "c"][: rng.randrange(1, 4)], "on": True})
    return s.SerializeToString()


def _h2frame(ftype: int, payload: bytes, sid: int, flags: int = 0) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload


def b_h2c_protobuf(rng: random.Random) -> list[Convo]:
    out = protocols.H2_PREFACE + _h2frame(4, b"\x00\x03\x00\x00\x00\x64", 0)
    convo: Convo = []
    first = True
    for i in range(_n(rng)):
        sid = 2 * i + 1
        pb = _protobuf(rng)
        req = _h2frame(1, b"\x83\x86\x44\x8a" + os.urandom(4), sid, 4) + _h2frame(0, b"\x00" + struct.pack(">I", len(pb)) + pb, sid, 1)
        convo.append((OUT, (out if first else b"") + req))
        first = False
        pb = _protobuf(rng)
        convo.append((IN, _h2frame(1, b"\x88", sid, 4) + _h2frame(0, b"\x00" + struct.pack(">I", len(pb)) + pb, sid, 0) + _h2frame(1, b"\x40\x8b", sid, 5)))
    return [convo]


def b_h2c_heartbeats(rng: random.Random) -> list[Convo]:
    """gRPC heartbeats: the same protobuf message with a counter, again and again."""
    from google.protobuf import struct_pb2

    out = protocols.H2_PREFACE + _h2frame(4, b"", 0)
    convo: Convo = []
    base = {"device": f"d{rng.randrange(10**6)}", "battery": rng.random(), "tags": ["a", "b"]}
    for i in range(_n(rng)):
        st = struct_pb2.Struct()
        st.update({**base, "seq": i})
        pb = st.SerializeToString()
        sid = 2 * i + 1
        convo.append((OUT, (out if i == 0 else b"") + _h2frame(1, b"\x83\x86", sid, 4) + _h2frame(0, b"\x00" + struct.pack(">I", len(pb)) + pb, sid, 1)))
        convo.append((IN, _h2frame(1, b"\x88", sid, 5)))
    return [convo]


def b_dns(rng: random.Random) -> list[Convo]:
    from dnslib import QTYPE, RR, A, DNSRecord

    name = f"{rng.choice(['api', 'cdn', 'www'])}{rng.randrange(100)}.example.com"
    q = DNSRecord.question(name, "A")
    r = q.reply()
    for _ in range(rng.randrange(1, 5)):
        r.add_answer(RR(name, QTYPE.A, rdata=A(f"198.51.100.{rng.randrange(256)}"), ttl=60))
    return [[(OUT, bytes(q.pack())), (IN, bytes(r.pack()))]]


def b_dns_hashlike(rng: random.Random) -> list[Convo]:
    """Hash-like names: digest lookups (MD5/SHA-1/SHA-256 hex), CDN ids, measurement beacons."""
    import hashlib

    names = []
    for i in range(rng.randrange(3, 8)):
        h = hashlib.new(rng.choice(["md5", "sha1", "sha256"]), os.urandom(8)).hexdigest()
        h = ".".join(h[j : j + 32] for j in range(0, len(h), 32))  # labels are at most 63 octets
        names.append(rng.choice([
            f"{h}.clo.footprintdns.example",
            f"{h[:32]}.avqs.example-av.net",
            f"d{os.urandom(7).hex()}.cloudfront.example",
            f"e{rng.randrange(10**5)}.dscx.akamaiedge.example",
            f"r{rng.randrange(9)}---sn-{os.urandom(4).hex()}.googlevideo.example",
            f"ip-10-0-{rng.randrange(255)}-{rng.randrange(255)}.ec2.internal.example",
        ]))
    return [_dns_exchange(n) for n in names]


def b_protobuf_lp(rng: random.Random) -> list[Convo]:
    return [exchange([(lambda p: struct.pack(">I", len(p)) + p)(_protobuf(rng)) for _ in range(_n(rng))], b"\x00\x00\x00\x00")]


def b_zlib_lp(rng: random.Random) -> list[Convo]:
    return [exchange([(lambda z: struct.pack(">I", len(z)) + z)(zlib.compress(pt_json(rng, i) * 3)) for i in range(_n(rng))])]


def b_raw_deflate(rng: random.Random) -> list[Convo]:
    """Raw deflate (no magic) of similar JSON: the hardest compressed control."""
    msgs = []
    for i in range(_n(rng)):
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        msgs.append(c.compress(pt_json(rng, i)) + c.flush())
    return [exchange(msgs)]


def b_text(rng: random.Random) -> list[Convo]:
    return [exchange([f"CMD {rng.randrange(10**6)} {'arg ' * rng.randrange(1, 20)}\r\n".encode() for _ in range(_n(rng))], b"250 OK\r\n")]


def b_b64_json_lines(rng: random.Random) -> list[Convo]:
    """Base64 of cleartext JSON and of a JPEG over a text channel: encoded, not ciphertext."""
    msgs = [b"E " + base64.b64encode(pt_json(rng, i)) + b"\n" for i in range(_n(rng))]
    msgs.append(b"IMG " + base64.b64encode(_jpeg(rng)) + b"\n")
    return [exchange(msgs, b"ACK\n")]


def b_ws_chat(rng: random.Random) -> list[Convo]:
    return [_ws_convo([json.dumps({"room": "general", "msg": "hello " * rng.randrange(1, 9), "n": i}).encode() for i in range(_n(rng))], 1)]


def b_random_unstructured(rng: random.Random) -> list[Convo]:
    """Random bytes of random lengths: encrypted-looking but with no structure to claim."""
    return [exchange([os.urandom(rng.randrange(40, 1500)) for _ in range(_n(rng))])]


CONTROLS: dict[str, tuple[Callable[[random.Random], list[Convo]], str]] = {
    "plain JSON API (UUIDs, SHA-256, bearer tokens)": (b_json_api, "tcp"),
    "gzip'd HTTP responses": (b_http_gzip, "tcp"),
    "JPEG uploads (raw and multipart)": (b_jpeg_upload, "tcp"),
    "protobuf over HTTP/2 cleartext (gRPC)": (b_h2c_protobuf, "tcp"),
    "gRPC heartbeats over h2c (near-identical protobuf)": (b_h2c_heartbeats, "tcp"),
    "DNS": (b_dns, "udp"),
    "DNS with hash-like names (digest lookups, CDN ids, one client)": (b_dns_hashlike, "udp"),
    "length-prefixed protobuf": (b_protobuf_lp, "tcp"),
    "length-prefixed zlib": (b_zlib_lp, "tcp"),
    "raw deflate messages (no magic)": (b_raw_deflate, "tcp"),
    "line-based text protocol": (b_text, "tcp"),
    "text lines with base64 JSON and base64 JPEG": (b_b64_json_lines, "tcp"),
    "WebSocket JSON chat": (b_ws_chat, "tcp"),
}
# Random data is not benign (it is what ciphertext looks like); it is listed
# apart: the structural findings chance alone produces on it.
def b_random_beacons(rng: random.Random) -> list[Convo]:
    """One random message per connection, 4-12 connections: what the pool claims by chance."""
    return [[(OUT, os.urandom(rng.randrange(40, 1500))), (IN, b"ok")] for _ in range(rng.randrange(4, 13))]


CHANCE = {
    "random bytes, random lengths (chance findings)": (b_random_unstructured, "tcp"),
    "random bytes, one message per connection (pooled chance findings)": (b_random_beacons, "tcp"),
}


# ---------------------------------------------------------------- running


#: Sample bounds of netan.flows.FlowConfig (bytes per direction, marked packets): set by main().
SAMPLE = {"cap": 4096, "max_marks": 64}


def analyze_flows(convos: list[Convo], proto: str, rng: random.Random) -> list[dict]:
    cf = CrossFlowAnalyzer()
    recs = []
    client = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    for i, convo in enumerate(convos):
        s = sample_from_messages(convo, proto=proto, src=(client, 40000 + i), dst=("192.0.2.10", 9000), **SAMPLE)
        r = protocols.analyze(s)
        r.update(flow_id=f"F{i}", ts=float(i), src_ip=s.src_ip, dst_ip=s.dst_ip, dst_port=s.dst_port, proto=proto)
        cf.observe(r, s)
        recs.append(r)
    for r in recs:
        r.update(cf.finalize(r))
    return recs


def run_synthetic(trials: int, seed: int, chance_trials: int | None = None) -> dict:
    rng = random.Random(seed)
    results: dict = {"schemes": {}, "controls": {}, "chance": {}}
    for name, (fn, expected, proto) in SCHEMES.items():
        det = anyf = 0
        seen: Counter[str] = Counter()
        for _ in range(trials):
            recs = analyze_flows(fn(rng), proto, rng)
            found = set().union(*(set(r["framing"]) for r in recs))
            seen.update(found)
            det += bool(found & expected)
            anyf += bool(found & CIPHER)
        results["schemes"][name] = {"trials": trials, "detected": det / trials, "any_finding": anyf / trials, "expected": sorted(expected), "findings": dict(seen.most_common())}
    for group, table in (("controls", CONTROLS), ("chance", CHANCE)):
        n = trials if group == "controls" else (chance_trials or trials)
        for name, (fn, proto) in table.items():
            bad = 0
            seen = Counter()
            for _ in range(n):
                recs = analyze_flows(fn(rng), proto, rng)
                found = set().union(*(set(r["framing"]) for r in recs)) & CIPHER
                seen.update(found)
                bad += bool(found)
            results[group][name] = {"trials": n, "false_finding_rate": bad / n, "findings": dict(seen.most_common())}
    return results


def run_corpus(corpus: Path, cap: int = 4096) -> dict:
    """Every TCP/UDP flow of every capture in the shared corpus through both passes."""
    flows = 0
    flagged = 0
    by_l7: Counter[str] = Counter()
    by_finding: Counter[str] = Counter()
    examples: dict[str, list[str]] = defaultdict(list)
    times: list[float] = []
    captures = sorted(p for p in corpus.rglob("*") if p.suffix in (".pcap", ".pcapng") or p.name.endswith((".pcap.gz", ".pcapng.gz")))
    for path in captures:
        try:
            samples = samples_from_pcap(path, cap=cap)
        except Exception as e:  # the helper is small; rare link types are skipped and counted
            log.debug("skip %s: %s", path, e)
            by_l7["<unreadable capture>"] += 1
            continue
        cf = CrossFlowAnalyzer()
        recs = []
        for i, s in enumerate(samples):
            t = time.perf_counter()
            r = protocols.analyze(s)
            times.append(time.perf_counter() - t)
            r.update(flow_id=f"F{i}", ts=float(i), src_ip=s.src_ip, dst_ip=s.dst_ip, dst_port=s.dst_port, proto=s.proto)
            cf.observe(r, s)
            recs.append(r)
        for r in recs:
            r.update(cf.finalize(r))
            flows += 1
            by_l7[r["l7"]] += 1
            found = set(r["framing"]) & CIPHER
            if found:
                flagged += 1
                for f in found:
                    by_finding[f"{f} ({r['l7']}/{r['proto']})"] += 1
                    if len(examples[f]) < 5:
                        examples[f].append(f"{path.relative_to(corpus)} {r['src_ip']}:{r['src_port'] if 'src_port' in r else ''}->{r['dst_ip']}:{r['dst_port']}")
    times.sort()
    return {
        "captures": len(captures),
        "flows": flows,
        "flows_with_cipher_finding": flagged,
        "rate": flagged / flows if flows else None,
        "l7": dict(by_l7.most_common()),
        "findings": dict(by_finding.most_common()),
        "examples": dict(examples),
        "ms_per_flow_mean": 1000 * sum(times) / len(times) if times else None,
        "ms_per_flow_p99": 1000 * times[int(len(times) * 0.99)] if times else None,
    }


def query_names_from_zeek_json(path: Path) -> list[tuple[str, float, str]]:
    """(client, ts, query) from a Zeek dns.log in JSON lines (gzip'd or not)."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if isinstance(d.get("query"), str):
                rows.append((str(d.get("id.orig_h", "")), 0.0, d["query"].lower()))
    return rows


def run_dns_log(path: Path) -> dict:
    """Real query names through the cross-flow DNS-tunnel rule, one record per query."""
    cf = CrossFlowAnalyzer()
    recs = []
    for i, (client, ts, name) in enumerate(query_names_from_zeek_json(path)):
        r = {"flow_id": f"D{i}", "ts": ts, "src_ip": client, "l7": "dns", "proto": "udp", "dst_ip": "", "dst_port": 53, "dns": {"queries": [{"name": name}], "resolved": []}}
        cf.observe(r, FlowSample("udp", client, 0, "", 53))
        recs.append(r)
    flagged = [r["dns"]["queries"][0]["name"] for r in recs if cf.finalize(r).get("framing")]
    return {"queries": len(recs), "distinct": len({r["dns"]["queries"][0]["name"] for r in recs}), "flagged": len(flagged), "examples": flagged[:5]}


def markdown(res: dict) -> str:
    lines = ["| scheme | expected finding | detected | any ciphertext finding |", "| --- | --- | --- | --- |"]
    for name, r in res["schemes"].items():
        exp = "any" if len(r["expected"]) > 3 else ", ".join(f"`{e}`" for e in r["expected"])
        lines.append(f"| {name} | {exp} | {r['detected']:.1%} | {r['any_finding']:.1%} |")
    lines += ["", "| benign control | flows | false-finding rate | findings |", "| --- | --- | --- | --- |"]
    for group in ("controls", "chance"):
        for name, r in res[group].items():
            lines.append(f"| {name} | {r['trials']} | {r['false_finding_rate']:.2%} | {', '.join(f'{k}: {v}' for k, v in r['findings'].items()) or '-'} |")
    c = res.get("corpus")
    if c:
        lines += ["", f"Shared corpus: {c['captures']} captures, {c['flows']} flows, {c['flows_with_cipher_finding']} with a ciphertext finding ({c['rate']:.2%}); "
                  f"{c['ms_per_flow_mean']:.2f} ms/flow mean, {c['ms_per_flow_p99']:.2f} ms p99.", "",
                  "| finding (l7/proto) | flows |", "| --- | --- |"]
        lines += [f"| {k} | {v} |" for k, v in c["findings"].items()]
    d = res.get("dns_log")
    if d:
        lines += ["", f"Real DNS query names (WRCCDC dns.log): {d['queries']} queries, {d['distinct']} distinct names, {d['flagged']} claimed as tunnelling."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--chance-trials", type=int, default=2000, help="flows of random bytes for the chance row")
    ap.add_argument("--sample-bytes", type=int, default=4096, help="per-direction sample, as netan.flows.FlowConfig (default 4096)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-corpus", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    t = time.time()
    SAMPLE["cap"] = args.sample_bytes
    res = run_synthetic(args.trials, args.seed, args.chance_trials)
    res["sample_bytes"] = args.sample_bytes
    corpus = REPO.parent / "shared" / "corpus"
    if not args.no_corpus and corpus.is_dir():
        res["corpus"] = run_corpus(corpus, args.sample_bytes)
        dns_log = corpus / "zeek-logs-wrccdc-brimdata" / "zeek-json" / "dns.json.gz"
        if dns_log.is_file():
            res["dns_log"] = run_dns_log(dns_log)
    res["seconds"] = round(time.time() - t, 1)
    print(markdown(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
