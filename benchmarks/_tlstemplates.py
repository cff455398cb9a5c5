"""Real TLS handshakes, recorded in memory once per run, made deterministic.

A Python ``ssl`` client and server (OpenSSL underneath) shake hands over
``MemoryBIO`` pairs, no sockets: the recorded flights are the bytes OpenSSL
really sends (its ClientHello extension list, ServerHello, ChangeCipherSpec,
encrypted handshake, session tickets). Only the fields that are random by
design are then overwritten with seeded bytes of the same length, so the
generated capture is byte-identical for the same seed on the same OpenSSL
build: randoms and session ids (RFC 8446 §4.1.2-3), key_share entries
(§4.2.8), ECDHE parameters and signatures in TLS 1.2 ServerKeyExchange /
ClientKeyExchange (RFC 8422 §5.4, §5.7), session tickets (RFC 5077 §3.3) and
every record body after ChangeCipherSpec or of type application_data.
The certificate is deterministic: an Ed25519 key derived from the seed, fixed
serial and validity.
"""
from __future__ import annotations

import datetime as _dt
import logging
import random
import ssl
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Handshake", "record_handshakes"]

log = logging.getLogger(__name__)

CT_CCS, CT_ALERT, CT_HANDSHAKE, CT_APPDATA = 20, 21, 22, 23
HS_CLIENT_HELLO, HS_SERVER_HELLO, HS_NST, HS_SKE, HS_CKE = 1, 2, 4, 12, 16
EXT_KEY_SHARE = 51


@dataclass(frozen=True)
class Handshake:
    """Recorded flights ``(direction, bytes)``; direction 0 is client->server.

    ``client_random_at`` is the offset of the 32-byte client random inside
    flight 0 (5-byte record header + 4-byte handshake header + 2-byte
    legacy_version, RFC 8446 §4.1.2), ``sid_at`` of the legacy session id,
    so each flow can get its own.
    """

    sni: str
    version: str
    flights: tuple[tuple[int, bytes], ...]
    client_random_at: int
    sid_at: int
    sid_len: int


def _cert_files(tmp: Path, seed: int) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import NameOID

    # Ed25519 (RFC 8032): deterministic, fixed-length signatures, so the
    # server's CertificateVerify / ServerKeyExchange keep the same length run
    # to run and the scrubbed bytes line up.
    key = ed25519.Ed25519PrivateKey.from_private_bytes(random.Random(f"key:{seed}").randbytes(32))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench.netan.test")])
    t0 = _dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x5EED0000 + seed)
        .not_valid_before(t0)
        .not_valid_after(t0 + _dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.netan.test")]), critical=False)
        .sign(key, None)
    )
    cf, kf = tmp / "cert.pem", tmp / "key.pem"
    cf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kf.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    return cf, kf


def _shake(cf: Path, kf: Path, sni: str, tls12: bool, alpn: list[str]) -> list[tuple[int, bytes]]:
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(str(cf), str(kf))
    if alpn:
        sctx.set_alpn_protocols(alpn)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname = False
    cctx.verify_mode = ssl.CERT_NONE
    if tls12:
        cctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        cctx.set_alpn_protocols(alpn)
    cin, cout, sin, sout = (ssl.MemoryBIO() for _ in range(4))
    cli = cctx.wrap_bio(cin, cout, server_hostname=sni)
    srv = sctx.wrap_bio(sin, sout, server_side=True)
    flights: list[tuple[int, bytes]] = []
    done = [False, False]
    for _ in range(20):
        for side, obj, out, peer_in in ((0, cli, cout, sin), (1, srv, sout, cin)):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
            data = out.read()
            if data:
                flights.append((side, data))
                peer_in.write(data)
        if all(done) and not cout.pending and not sout.pending:
            break
    if not all(done):
        raise RuntimeError(f"in-memory TLS handshake for {sni} did not complete")
    return flights


def _scrub_hello(msg: bytearray, rng: random.Random) -> None:
    """Overwrite random, session id and key shares of a Client/ServerHello body in place."""
    typ = msg[0]
    p = 4 + 2
    msg[p:p + 32] = rng.randbytes(32)
    p += 32
    sl = msg[p]
    msg[p + 1:p + 1 + sl] = rng.randbytes(sl)
    p += 1 + sl
    if typ == HS_CLIENT_HELLO:
        (cl,) = struct.unpack_from("!H", msg, p)
        p += 2 + cl
        p += 1 + msg[p]
    else:
        p += 2 + 1  # cipher_suite, compression
    if p + 2 > len(msg):
        return
    (el,) = struct.unpack_from("!H", msg, p)
    p += 2
    end = min(len(msg), p + el)
    while p + 4 <= end:
        et, ln = struct.unpack_from("!HH", msg, p)
        body = p + 4
        if et == EXT_KEY_SHARE:
            q = body + (2 if typ == HS_CLIENT_HELLO else 0)
            while q + 4 <= body + ln:
                _grp, kl = struct.unpack_from("!HH", msg, q)
                msg[q + 4:q + 4 + kl] = rng.randbytes(kl)
                q += 4 + kl
        p = body + ln


def _scrub_kx(msg: bytearray, rng: random.Random) -> None:
    typ = msg[0]
    if typ == HS_CKE:  # ECDHE point: 1-byte length then the point
        pl = msg[4]
        msg[5:5 + pl] = rng.randbytes(pl)
        return
    if typ == HS_SKE:  # curve_type(1) named_curve(2) point<1> sigalg(2) sig<2>
        pl = msg[4 + 3]
        p = 4 + 4
        msg[p:p + pl] = rng.randbytes(pl)
        p += pl + 2
        if p + 2 <= len(msg):
            (sl,) = struct.unpack_from("!H", msg, p)
            msg[p + 2:p + 2 + sl] = rng.randbytes(sl)
        return
    if typ == HS_NST and len(msg) >= 10:  # lifetime(4) ticket<2>: the ticket is opaque (RFC 5077 §3.3)
        msg[10:] = rng.randbytes(len(msg) - 10)


def _scrub(flights: list[tuple[int, bytes]], rng: random.Random) -> list[tuple[int, bytes]]:
    encrypted = [False, False]
    out: list[tuple[int, bytes]] = []
    for d, data in flights:
        buf = bytearray(data)
        p = 0
        while p + 5 <= len(buf):
            ct, _v, ln = struct.unpack_from("!BHH", buf, p)
            body = p + 5
            if ct == CT_CCS:
                encrypted[d] = True
            elif ct == CT_APPDATA or encrypted[d]:
                buf[body:body + ln] = rng.randbytes(min(ln, len(buf) - body))
            elif ct == CT_HANDSHAKE:
                q = body
                while q + 4 <= body + ln:
                    hl = int.from_bytes(buf[q + 1:q + 4], "big")
                    msg = bytearray(buf[q:q + 4 + hl])
                    if msg[0] in (HS_CLIENT_HELLO, HS_SERVER_HELLO):
                        _scrub_hello(msg, rng)
                    elif msg[0] in (HS_SKE, HS_CKE, HS_NST):
                        _scrub_kx(msg, rng)
                    buf[q:q + 4 + hl] = msg
                    q += 4 + hl
            p = body + ln
        out.append((d, bytes(buf)))
    return out


def record_handshakes(snis: list[str], seed: int) -> list[Handshake]:
    """One TLS 1.3 and one TLS 1.2 handshake per SNI, scrubbed with ``seed``."""
    rng = random.Random(f"tls:{seed}")
    res: list[Handshake] = []
    with tempfile.TemporaryDirectory(prefix="netan-bench-") as td:
        cf, kf = _cert_files(Path(td), seed)
        for i, sni in enumerate(snis):
            alpn = [["h2", "http/1.1"], ["http/1.1"], []][i % 3]
            for tls12 in (False, True):
                fl = _scrub(_shake(cf, kf, sni, tls12, alpn), rng)
                ch = fl[0][1]
                sid_len = ch[5 + 4 + 2 + 32]
                res.append(Handshake(sni=sni, version="1.2" if tls12 else "1.3",
                                     flights=tuple(fl), client_random_at=11,
                                     sid_at=5 + 4 + 2 + 32 + 1, sid_len=sid_len))
    log.info("recorded %d TLS handshakes with %s", len(res), ssl.OPENSSL_VERSION)
    return res
