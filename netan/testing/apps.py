"""Real traffic generators for the namespace lab: servers, and apps that return truth.

Contract: :func:`serve` runs in a server namespace (``Lab.spawn``) and hosts
DNS (dnslib), HTTP/1.1, HTTPS (Python ``ssl``, certificates made at run time
with ``cryptography``: a lab CA and CA-signed or self-signed leaves, SNI
chooses the certificate, ALPN is negotiated), a TLS framed-message service, a
plain length-prefixed message sink, and a UDP responder. The app functions
(:func:`resolve`, :func:`http_request`, :func:`https_request`,
:func:`udp_exchange`, :func:`tls_keepalive`, :func:`exfil_tcp`,
:func:`exfil_http`, :func:`hybrid_upload`) run in a device namespace (``Lab.call``/``Lab.spawn``)
and return lists of truth records (:mod:`netan.testing.truth`): the exact
5-tuple, start/end on the capture clock, and the bytes each socket really sent
and received, both on the wire (transport payload, TLS records included) and
at the application level. TLS goes through ``ssl.MemoryBIO`` so every wire
byte is counted by the code that sends it.

Every crypto operation is real (``cryptography``): AES-ECB/CBC/GCM, RC4,
RSA-OAEP hybrid envelopes; nothing is simulated with random bytes.
"""
from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import inspect
import ipaddress
import json
import logging
import os
import random
import select
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from netan.testing.truth import AppEventTruth, DnsTruth, FlowTruth

__all__ = [
    "LabPKI",
    "Service",
    "serve",
    "AppContext",
    "resolve",
    "http_request",
    "https_request",
    "udp_exchange",
    "tls_keepalive",
    "exfil_tcp",
    "exfil_http",
    "hybrid_upload",
    "collected_data",
    "encrypt_messages",
    "as_task",
    "EXFIL_MODES",
]

log = logging.getLogger(__name__)

IO_TIMEOUT = 10.0  #: seconds any socket operation may block in the lab
USER_AGENT = ("Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/124.0 Mobile Safari/537.36")


# ---------------------------------------------------------------------------- PKI
@dataclass(frozen=True)
class Leaf:
    hostname: str
    cert_pem: bytes
    key_pem: bytes
    self_signed: bool
    key_type: str


class LabPKI:
    """A lab CA and leaf certificates, generated at run time with ``cryptography``."""

    def __init__(self, ca_name: str = "netan lab root CA") -> None:
        self._now = dt.datetime.now(dt.timezone.utc)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "netan lab")])
        self.ca_cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(self._now - dt.timedelta(days=1)).not_valid_after(self._now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key()), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_pem = self.ca_cert.public_bytes(serialization.Encoding.PEM)
        self.leaves: dict[str, Leaf] = {}

    def leaf(self, hostname: str, *, self_signed: bool = False, key_type: str = "ec") -> Leaf:
        """The certificate for ``hostname`` (made once): CA-signed, or self-signed like a rogue server."""
        if hostname in self.leaves:
            return self.leaves[hostname]
        key: Any = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if key_type == "rsa"
                    else ec.generate_private_key(ec.SECP256R1()))
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
        builder = (
            x509.CertificateBuilder().subject_name(subject)
            .issuer_name(subject if self_signed else self.ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(self._now - dt.timedelta(days=1)).not_valid_after(self._now + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        )
        if not self_signed:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), critical=False)
        cert = builder.sign(key if self_signed else self.ca_key, hashes.SHA256())
        leaf = Leaf(hostname, cert.public_bytes(serialization.Encoding.PEM),
                    key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()), self_signed, key_type)
        self.leaves[hostname] = leaf
        return leaf

    def trust_for(self, hostname: str) -> bytes:
        """What a client trusts for ``hostname``: the CA, or the pinned self-signed certificate."""
        leaf = self.leaves.get(hostname)
        return leaf.cert_pem if leaf is not None and leaf.self_signed else self.ca_pem


# ----------------------------------------------------------------------- transports
class Transport(Protocol):
    wire_out: int
    wire_in: int
    app_out: int
    app_in: int

    def send(self, data: bytes) -> None: ...
    def recv(self, n: int = 65536) -> bytes: ...
    def finish(self) -> None: ...


class PlainTransport:
    """A TCP socket with byte counters (wire bytes == application bytes)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.wire_out = self.wire_in = self.app_out = self.app_in = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.wire_out += len(data)
        self.app_out += len(data)

    def recv(self, n: int = 65536) -> bytes:
        data = self.sock.recv(n)
        self.wire_in += len(data)
        self.app_in += len(data)
        return data

    def finish(self) -> None:
        """Half-close and read to EOF so the connection ends without a RST."""
        _half_close_and_drain(self.sock, self)


class TlsTransport:
    """TLS over a TCP socket through MemoryBIOs, so every wire byte is counted."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, *, server_side: bool,
                 server_hostname: str | None = None) -> None:
        self.sock = sock
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self._in, self._out, server_side=server_side, server_hostname=server_hostname)
        self.wire_out = self.wire_in = self.app_out = self.app_in = 0
        self.eof = False

    def _flush(self) -> None:
        data = self._out.read()
        if data:
            self.sock.sendall(data)
            self.wire_out += len(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            self._in.write_eof()
            self.eof = True
            return False
        self.wire_in += len(data)
        self._in.write(data)
        return True

    def handshake(self) -> None:
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                if not self._fill():
                    raise ConnectionError("peer closed during the TLS handshake") from None

    def send(self, data: bytes) -> None:
        self.obj.write(data)
        self._flush()
        self.app_out += len(data)

    def recv(self, n: int = 65536) -> bytes:
        """Application bytes; b"" on close_notify or TCP EOF."""
        while True:
            try:
                data = self.obj.read(n)
                self._flush()
                self.app_in += len(data)
                return data
            except ssl.SSLWantReadError:
                self._flush()
                if self.eof or not self._fill():
                    return b""
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                self._flush()
                return b""

    def close_notify(self) -> None:
        try:
            self.obj.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLError):
            pass
        self._flush()

    def finish(self) -> None:
        """Send close_notify, half-close, and read the peer's remaining records to EOF."""
        self.close_notify()
        _half_close_and_drain(self.sock, self)

    def info(self) -> dict[str, Any]:
        cipher = self.obj.cipher()
        return {"tls_version": self.obj.version(), "alpn": self.obj.selected_alpn_protocol(),
                "cipher": cipher[0] if cipher else None}


def _half_close_and_drain(sock: socket.socket, counter: Any) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        return
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            return
        if not data:
            return
        counter.wire_in += len(data)  # bytes after our close (e.g. a TLS close_notify) are still wire bytes


def _recv_exact(t: Transport, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = t.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def _read_http_message(t: Transport, limit: int = 64 << 20) -> tuple[bytes, dict[str, str], bytes]:
    """One HTTP/1.1 message: (start line, lower-cased headers, body by Content-Length or to EOF)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = t.recv()
        if not chunk:
            raise ConnectionError("EOF inside HTTP headers")
        buf += chunk
        if len(buf) > 65536 and b"\r\n\r\n" not in buf:
            raise ValueError("HTTP header section too large")
    head, first = buf.split(b"\r\n\r\n", 1)
    body = bytearray(first)
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        n = min(int(headers["content-length"]), limit)
        while len(body) < n:
            chunk = t.recv()
            if not chunk:
                raise ConnectionError("EOF inside HTTP body")
            body += chunk
    return lines[0], headers, bytes(body)


# -------------------------------------------------------------------------- server
@dataclass(frozen=True)
class Service:
    """One listening service of :func:`serve`.

    kinds: ``dns`` (udp), ``http``, ``https``, ``tls_frames`` (TLS, u16 frames
    answered with ``reply_size`` bytes), ``frames`` (plain TCP sink of
    length-prefixed messages, each acknowledged), ``udp`` (responder: a
    datagram's first two bytes, big-endian, give the reply size).
    """

    kind: str
    ip: str
    port: int
    options: dict[str, Any] = field(default_factory=dict)


def _body_for(kind: str, size: int, seed: str) -> bytes:
    """Deterministic response bodies: text/html, incompressible media, gzip packages."""
    if kind == "random":
        return hashlib.shake_256(seed.encode()).digest(size)
    rng = random.Random(seed)
    words = ["android", "network", "update", "weather", "news", "photo", "music", "the", "and", "with",
             "device", "market", "city", "today", "video", "report", "local", "sport", "science"]
    parts = ["<!doctype html><html><head><title>lab</title></head><body>"]
    n = len(parts[0])
    while n < size:
        w = "<p>" + " ".join(rng.choice(words) for _ in range(12)) + "</p>\n"
        parts.append(w)
        n += len(w)
    text = "".join(parts).encode()[:size]
    if kind == "gzip":
        # A compressed package: gzip of text 4x the requested size, mtime 0 for determinism.
        big = (text * 4)[: size * 4]
        return gzip.compress(big, compresslevel=6, mtime=0)
    return text


def _http_respond(t: Transport, req_line: bytes, headers: dict[str, str], body: bytes, opts: dict[str, Any]) -> dict:
    method, _, rest = req_line.decode("latin-1").partition(" ")
    path = rest.rsplit(" ", 1)[0]
    query = dict(p.split("=", 1) for p in path.partition("?")[2].split("&") if "=" in p)
    if method == "GET":
        size = min(int(query.get("size", opts.get("default_size", 2048))), 16 << 20)
        kind = query.get("type", "text")
        payload = _body_for(kind, size, f"{headers.get('host', '')}{path}")
        ctype = {"random": "application/octet-stream", "gzip": "application/gzip"}.get(kind, "text/html; charset=utf-8")
    else:
        payload = json.dumps({"status": "ok", "received": len(body)}, separators=(",", ":")).encode()
        ctype = "application/json"
    head = (f"HTTP/1.1 200 OK\r\nServer: netan-lab\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode()
    t.send(head + payload)
    keep = int(opts.get("keep_bytes", 1 << 16))
    # Request bodies are kept (bounded) so tests can open hybrid envelopes with the server key.
    return {"method": method, "path": path, "request_body": len(body), "response_body": len(payload),
            "request_data": body[:keep].hex()}


class _Server:
    def __init__(self, services: Sequence[Service], pki: LabPKI | None, zone: dict[str, Sequence[str]],
                 stop: threading.Event) -> None:
        self.services = services
        self.pki = pki
        self.zone = {k.rstrip(".").lower(): list(v) for k, v in zone.items()}
        self.stop = stop
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="netan-lab-tls-")
        self._contexts: dict[str, ssl.SSLContext] = {}

    def record(self, rec: dict[str, Any]) -> None:
        with self.lock:
            self.records.append(rec)

    # -- TLS contexts
    def _ctx_for(self, hostname: str, opts: dict[str, Any]) -> ssl.SSLContext:
        key = f"{hostname}|{opts.get('tls_max')}"
        if key in self._contexts:
            return self._contexts[key]
        assert self.pki is not None, "https services need a LabPKI"
        leaf = self.pki.leaf(hostname)
        cert = os.path.join(self._tmp.name, f"{len(self._contexts)}.pem")
        with open(cert, "wb") as fh:
            fh.write(leaf.cert_pem + leaf.key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if opts.get("tls_max") == "1.2":
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(list(opts.get("alpn", ["http/1.1"])))
        self._contexts[key] = ctx
        return ctx

    def _tls_context(self, svc: Service) -> ssl.SSLContext:
        # options: "hostnames" (certificates this address serves; the first is the
        # default when the client sends no or an unknown SNI), "tls_max", "alpn".
        hosts = [h.lower() for h in svc.options.get("hostnames") or [svc.options.get("hostname", "localhost")]]
        base = self._ctx_for(hosts[0], svc.options)
        for h in hosts[1:]:
            self._ctx_for(h, svc.options)

        def pick(obj: Any, name: str | None, _ctx: ssl.SSLContext) -> None:
            # RFC 6066 §3: choose the certificate by the client's server_name.
            if name and name.lower() in hosts:
                obj.context = self._ctx_for(name.lower(), svc.options)

        base.sni_callback = pick
        return base

    # -- listeners
    def start(self) -> None:
        for svc in self.services:
            fam = socket.AF_INET6 if ipaddress.ip_address(svc.ip).version == 6 else socket.AF_INET
            if svc.kind in ("dns", "udp"):
                s = socket.socket(fam, socket.SOCK_DGRAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((svc.ip, svc.port))
                target: Callable[..., None] = self._udp_loop
            else:
                s = socket.socket(fam, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((svc.ip, svc.port))
                s.listen(64)
                target = self._accept_loop
            ctx = self._tls_context(svc) if svc.kind in ("https", "tls_frames") else None
            th = threading.Thread(target=target, args=(svc, s, ctx), daemon=True)
            th.start()
            self.threads.append(th)

    def _udp_loop(self, svc: Service, s: socket.socket, _ctx: Any) -> None:
        while not self.stop.is_set():
            r, _, _ = select.select([s], [], [], 0.1)
            if not r:
                continue
            data, peer = s.recvfrom(65535)
            try:
                reply = self._dns_answer(data) if svc.kind == "dns" else self._udp_reply(data, svc)
            except Exception as exc:  # noqa: BLE001 - a bad datagram must not stop the service
                log.warning("%s %s:%d: bad datagram from %s: %s", svc.kind, svc.ip, svc.port, peer, exc)
                continue
            if reply:
                s.sendto(reply, peer)
            self.record({"service": svc.kind, "proto": "udp", "client": list(peer[:2]), "server": [svc.ip, svc.port],
                         "bytes_in": len(data), "bytes_out": len(reply or b"")})
        s.close()

    def _dns_answer(self, data: bytes) -> bytes | None:
        from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord  # test extra; imported where used

        req = DNSRecord.parse(data)
        reply = req.reply()
        qname = str(req.q.qname).rstrip(".").lower()
        addrs = self.zone.get(qname)
        if addrs is None:
            reply.header.rcode = RCODE.NXDOMAIN
        for a in addrs or []:
            v6 = ipaddress.ip_address(a).version == 6
            if req.q.qtype == QTYPE.A and not v6:
                reply.add_answer(RR(req.q.qname, QTYPE.A, rdata=A(a), ttl=300))
            elif req.q.qtype == QTYPE.AAAA and v6:
                reply.add_answer(RR(req.q.qname, QTYPE.AAAA, rdata=AAAA(a), ttl=300))
        return reply.pack()

    @staticmethod
    def _udp_reply(data: bytes, svc: Service) -> bytes:
        size = int.from_bytes(data[:2], "big") if len(data) >= 2 else len(data)
        size = min(size, int(svc.options.get("max_reply", 1400)))
        return hashlib.shake_256(data).digest(size)

    def _accept_loop(self, svc: Service, s: socket.socket, ctx: ssl.SSLContext | None) -> None:
        while not self.stop.is_set():
            r, _, _ = select.select([s], [], [], 0.1)
            if not r:
                continue
            conn, peer = s.accept()
            th = threading.Thread(target=self._handle, args=(svc, conn, peer, ctx), daemon=True)
            th.start()
            self.threads.append(th)
        s.close()

    def _handle(self, svc: Service, conn: socket.socket, peer: Any, ctx: ssl.SSLContext | None) -> None:
        conn.settimeout(IO_TIMEOUT)
        rec: dict[str, Any] = {"service": svc.kind, "proto": "tcp", "client": list(peer[:2]),
                               "server": [svc.ip, svc.port]}
        t: PlainTransport | TlsTransport
        try:
            if ctx is not None:
                t = TlsTransport(conn, ctx, server_side=True)
                t.handshake()
                rec.update(t.info())
            else:
                t = PlainTransport(conn)
            if svc.kind in ("http", "https"):
                line, headers, body = _read_http_message(t)
                rec.update(_http_respond(t, line, headers, body, svc.options))
                t.finish()
            elif svc.kind == "tls_frames":
                rec["messages"] = self._frames(t, svc, prefix=2, reply=int(svc.options.get("reply_size", 32)))
                if isinstance(t, TlsTransport):
                    t.close_notify()
                    conn.shutdown(socket.SHUT_WR)
            elif svc.kind == "frames":
                rec["messages"] = self._frames(t, svc, prefix=int(svc.options.get("prefix", 4)), reply=None)
                conn.shutdown(socket.SHUT_WR)
            rec.update(bytes_in=t.wire_in, bytes_out=t.wire_out, app_in=t.app_in, app_out=t.app_out)
        except (OSError, ssl.SSLError, ValueError, ConnectionError) as exc:
            rec["error"] = f"{type(exc).__name__}: {exc}"
            log.warning("%s %s:%d from %s: %s", svc.kind, svc.ip, svc.port, peer, exc)
        finally:
            conn.close()
            self.record(rec)

    def _frames(self, t: Transport, svc: Service, *, prefix: int, reply: int | None) -> list[dict[str, Any]]:
        """Read length-prefixed messages until EOF; answer each (ack or a reply frame)."""
        keep = int(svc.options.get("keep_bytes", 1 << 16))
        messages: list[dict[str, Any]] = []
        seq = 0
        while True:
            first = t.recv(prefix)
            if not first:
                return messages
            header = first + (_recv_exact(t, prefix - len(first)) if len(first) < prefix else b"")
            n = int.from_bytes(header, "big")
            if n > (16 << 20):
                raise ValueError(f"message length {n} too large")
            body = _recv_exact(t, n)
            seq += 1
            # Servers keep what they received (bounded) so tests can decrypt it
            # with the key from the truth and prove the ciphertext is real.
            messages.append({"length": n, "data": body[:keep].hex() if keep else ""})
            if reply is None:
                t.send(struct.pack(">II", 4, seq))  # ack: length 4, message sequence number
            else:
                t.send(reply.to_bytes(prefix, "big") + hashlib.shake_256(body).digest(reply))


def serve(services: Sequence[Service], *, pki: LabPKI | None = None, zone: dict[str, Sequence[str]] | None = None,
          ctl: Any) -> list[dict[str, Any]]:
    """Host ``services`` until stopped (``Lab.spawn(server, serve, ..., wait_ready=True)``).

    Returns one record per connection/datagram served (bytes, SNI/ALPN/TLS
    version, messages received) when the task is stopped.
    """
    stop = threading.Event()
    srv = _Server(services, pki, zone or {}, stop)
    srv.start()
    ctl.ready([(s.kind, s.ip, s.port) for s in services])
    while not ctl.wait(1.0):
        pass
    stop.set()
    deadline = time.monotonic() + 5
    for th in list(srv.threads):
        th.join(max(0.0, deadline - time.monotonic()))
    return list(srv.records)


# ---------------------------------------------------------------------------- apps
@dataclass(frozen=True)
class AppContext:
    """Who is talking: the lab device, the Android package, and its resolver."""

    device: str
    package: str
    dns_server: str | None = None
    #: True: lookups go through Android's system resolver and are logged as DnsEvents.
    system_resolver: bool = True
    #: True: look names up as AAAA and connect over IPv6.
    ipv6: bool = False


def as_task(fn: Callable[..., Any], *args: Any, ctl: Any, start_at: float | None = None, **kwargs: Any) -> Any:
    """Run an app function as a ``Lab.spawn`` task: ready at once, optionally start at an epoch time."""
    ctl.ready()
    if start_at is not None and ctl.wait(start_at - time.time()):
        return []
    if "ctl" in inspect.signature(fn).parameters:
        kwargs["ctl"] = ctl  # long-running apps stop early when the task is stopped
    return fn(*args, **kwargs)


def _bind_src(sock: socket.socket, src_port: int | None) -> None:
    if src_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0" if sock.family == socket.AF_INET else "::", src_port))


def resolve(ctx: AppContext, hostname: str, *, qtype: str = "A", src_port: int | None = None) -> tuple[list[str], list]:
    """A real DNS query (dnslib) to the lab resolver; returns (addresses, truth records)."""
    from dnslib import QTYPE, DNSRecord

    if ctx.dns_server is None:
        raise ValueError("AppContext.dns_server is not set")
    q = DNSRecord.question(hostname, qtype).pack()
    fam = socket.AF_INET6 if ipaddress.ip_address(ctx.dns_server).version == 6 else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(IO_TIMEOUT)
        _bind_src(s, src_port)
        start = time.time()
        s.connect((ctx.dns_server, 53))
        s.send(q)
        resp = s.recv(65535)
        end = time.time()
        src = s.getsockname()
    parsed = DNSRecord.parse(resp)
    want = getattr(QTYPE, qtype)
    addrs = [str(rr.rdata) for rr in parsed.rr if rr.rtype == want]
    flow = FlowTruth(ctx.device, ctx.package, "dns", "udp", src[0], src[1], ctx.dns_server, 53, start, end,
                     len(q), len(resp), len(q), len(resp), hostname=hostname,
                     details={"qtype": qtype, "answers": addrs, "system_resolver": ctx.system_resolver})
    return addrs, [DnsTruth(ctx.device, ctx.package, hostname, tuple(addrs), start, ctx.system_resolver,
                            ctx.dns_server), flow]


def _connect(ip: str, port: int, src_port: int | None) -> tuple[socket.socket, float, float]:
    fam = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(IO_TIMEOUT)
    _bind_src(s, src_port)
    start = time.time()
    s.connect((ip, port))
    return s, start, time.time()


def _target(ctx: AppContext, host: str, ip: str | None, truth: list,
            dns_src_port: int | None = None) -> tuple[str, bool]:
    if ip is not None:
        return ip, False
    addrs, recs = resolve(ctx, host, qtype="AAAA" if ctx.ipv6 else "A", src_port=dns_src_port)
    truth.extend(recs)
    if not addrs:
        raise ConnectionError(f"{host} did not resolve")
    return addrs[0], True


def _tcp_truth(ctx: AppContext, kind: str, src: tuple, dst: str, port: int, start: float, t: Transport,
               connected: float, host: str, via_dns: bool, info: dict[str, Any]) -> FlowTruth:
    """The truth record of one finished client TCP connection, byte counts from its transport."""
    return FlowTruth(ctx.device, ctx.package, kind, "tcp", src[0], src[1], dst, port, start, time.time(),
                     t.wire_out, t.wire_in, t.app_out, t.app_in, connected, host, via_dns, True, info)


def _client_tls_context(trust_pem: bytes | None, alpn: Sequence[str], tls_max: str | None,
                        verify: bool) -> ssl.SSLContext:
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls_max == "1.2":
        c.maximum_version = ssl.TLSVersion.TLSv1_2
    if verify and trust_pem:
        c.load_verify_locations(cadata=trust_pem.decode())
    else:  # an app with a trust-all TrustManager
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
    if alpn:
        c.set_alpn_protocols(list(alpn))
    return c


def _http_exchange(t: Transport, method: str, host: str, path: str, body: bytes, content_type: str,
                   user_agent: str) -> dict[str, Any]:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\n"
    if method != "GET":
        head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    head += "Connection: close\r\n\r\n"
    t.send(head.encode() + body)
    status, headers, resp = _read_http_message(t)
    return {"method": method, "path": path, "status": status.decode("latin-1"), "request_body": len(body),
            "response_body": len(resp), "content_type": headers.get("content-type")}


def http_request(ctx: AppContext, host: str, *, ip: str | None = None, port: int = 80, method: str = "GET",
                 path: str = "/", body: bytes = b"", content_type: str = "application/octet-stream",
                 src_port: int | None = None, user_agent: str = USER_AGENT, kind: str = "http",
                 via_dns: bool | None = None, dns_src_port: int | None = None) -> list:
    """One plain HTTP/1.1 request (GET, or POST/PUT with ``body``); truth records.

    ``ip`` skips the lookup (a hard-coded address, or one resolved earlier:
    then pass ``via_dns=True``).
    """
    truth: list = []
    dst, looked_up = _target(ctx, host, ip, truth, dns_src_port)
    via_dns = looked_up if via_dns is None else via_dns
    s, start, connected = _connect(dst, port, src_port)
    try:
        src = s.getsockname()
        t = PlainTransport(s)
        info = _http_exchange(t, method, host, path, body, content_type, user_agent)
        t.finish()
    finally:
        s.close()
    truth.append(_tcp_truth(ctx, kind, src, dst, port, start, t, connected, host, via_dns, info))
    return truth


def https_request(ctx: AppContext, host: str, *, trust_pem: bytes | None, ip: str | None = None, port: int = 443,
                  method: str = "GET", path: str = "/", body: bytes = b"",
                  content_type: str = "application/octet-stream", alpn: Sequence[str] = ("h2", "http/1.1"),
                  tls_max: str | None = None, verify: bool = True, sni: str | None = "", src_port: int | None = None,
                  user_agent: str = USER_AGENT, kind: str = "tls", dns_src_port: int | None = None) -> list:
    """One HTTP/1.1 request over a real TLS session (SNI, ALPN, certificate check)."""
    truth: list = []
    dst, via_dns = _target(ctx, host, ip, truth, dns_src_port)
    server_name = host if sni == "" else sni
    tctx = _client_tls_context(trust_pem, alpn, tls_max, verify and server_name is not None)
    s, start, connected = _connect(dst, port, src_port)
    try:
        src = s.getsockname()
        t = TlsTransport(s, tctx, server_side=False, server_hostname=server_name)
        t.handshake()
        info = {**t.info(), "sni": server_name, "verified": tctx.verify_mode == ssl.CERT_REQUIRED}
        info.update(_http_exchange(t, method, host, path, body, content_type, user_agent))
        # Read to EOF: the server's close_notify and FIN end the exchange cleanly.
        while t.recv():
            pass
        s.shutdown(socket.SHUT_WR)
        _half_close_and_drain(s, t)
    finally:
        s.close()
    truth.append(_tcp_truth(ctx, kind, src, dst, port, start, t, connected, host, via_dns, info))
    return truth


def udp_exchange(ctx: AppContext, ip: str, port: int, exchanges: Sequence[tuple[int, int]], *,
                 interval: float = 0.05, src_port: int | None = None, host: str | None = None,
                 kind: str = "udp") -> list:
    """Datagrams to the lab UDP responder: each (request size, reply size); one flow."""
    fam = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
    sent = received = 0
    rng = random.Random(f"{ctx.package}{port}")
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(IO_TIMEOUT)
        _bind_src(s, src_port)
        start = time.time()
        s.connect((ip, port))
        for i, (out_size, in_size) in enumerate(exchanges):
            if i:
                time.sleep(interval)
            out_size = max(out_size, 2)
            payload = in_size.to_bytes(2, "big") + rng.randbytes(out_size - 2)
            s.send(payload)
            sent += len(payload)
            if in_size:
                received += len(s.recv(65535))
        end = time.time()
        src = s.getsockname()
    return [FlowTruth(ctx.device, ctx.package, kind, "udp", src[0], src[1], ip, port, start, end, sent, received,
                      sent, received, None, host, False, False, {"datagrams_out": len(exchanges)})]


def tls_keepalive(ctx: AppContext, host: str, *, trust_pem: bytes | None, port: int = 443, ip: str | None = None,
                  pings: int = 5, interval: float = 2.0, ping_size: int = 48, alpn: Sequence[str] = (),
                  src_port: int | None = None, ctl: Any = None, kind: str = "keepalive",
                  dns_src_port: int | None = None) -> list:
    """A long-lived TLS connection with small framed heartbeats (a messenger's push channel)."""
    truth: list = []
    dst, via_dns = _target(ctx, host, ip, truth, dns_src_port)
    tctx = _client_tls_context(trust_pem, alpn, None, True)
    s, start, connected = _connect(dst, port, src_port)
    rng = random.Random(f"{ctx.package}-{port}")
    try:
        src = s.getsockname()
        t = TlsTransport(s, tctx, server_side=False, server_hostname=host)
        t.handshake()
        info = {**t.info(), "sni": host, "pings": 0}
        for i in range(pings):
            if i and (ctl.wait(interval) if ctl is not None else time.sleep(interval)):
                break
            t.send(ping_size.to_bytes(2, "big") + rng.randbytes(ping_size))
            n = int.from_bytes(_recv_exact(t, 2), "big")
            _recv_exact(t, n)
            info["pings"] += 1
        t.close_notify()
        s.shutdown(socket.SHUT_WR)
        while t.recv():
            pass
        _half_close_and_drain(s, t)
    finally:
        s.close()
    truth.append(_tcp_truth(ctx, kind, src, dst, port, start, t, connected, host, via_dns, info))
    return truth


# ------------------------------------------------------------ collected data + crypto
def collected_data(size: int, seed: str = "netan") -> bytes:
    """Deterministic "collected" device data: fixed-width 64-byte records (contacts,
    SMS, locations), space padded as a naive app would store them. The padding
    makes identical 16-byte plaintext blocks, which AES-ECB turns into
    identical ciphertext blocks (the AN1731 repeated-block signal)."""
    rng = random.Random(seed)
    first = ["Alice", "Bob", "Carol", "Dan", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy"]
    out = bytearray()
    i = 0
    while len(out) < size:
        k = i % 3
        if k == 0:
            rec = f"C|{rng.choice(first)} {rng.randint(1, 999):03d}|+1555{rng.randint(0, 9999999):07d}"
        elif k == 1:
            rec = f"S|{rng.randint(1700000000, 1800000000)}|ok see you at {rng.randint(1, 12)}"
        else:
            rec = f"L|{rng.uniform(-90, 90):.5f},{rng.uniform(-180, 180):.5f}"
        out += rec.encode()[:63].ljust(63) + b"\n"
        i += 1
    return bytes(out[:size])


#: Exfil encryption modes: what the ciphertext looks like on the wire.
EXFIL_MODES = {
    "ecb": "AES-128-ECB, PKCS#7; one key for every message (repeated blocks leak)",
    "cbc-static-iv": "AES-128-CBC, PKCS#7, the same key and a fixed IV for every message (AN1731)",
    "cbc": "AES-256-CBC, PKCS#7, random IV sent in front of each message",
    "gcm": "AES-256-GCM, random 12-byte nonce in front, 16-byte tag behind",
    "rc4": "RC4 restarted with the same key for every message (keystream reuse)",
}


def encrypt_messages(mode: str, key: bytes, plaintexts: Sequence[bytes], *, iv: bytes = bytes(16)) -> list[bytes]:
    """Encrypt each plaintext as a separate message, the way the exfil app does."""
    out = []
    for p in plaintexts:
        if mode in ("ecb", "cbc-static-iv", "cbc"):
            padder = padding.PKCS7(128).padder()
            data = padder.update(p) + padder.finalize()
            if mode == "ecb":
                enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
                out.append(enc.update(data) + enc.finalize())
            else:
                this_iv = iv if mode == "cbc-static-iv" else os.urandom(16)
                enc = Cipher(algorithms.AES(key), modes.CBC(this_iv)).encryptor()
                ct = enc.update(data) + enc.finalize()
                out.append(ct if mode == "cbc-static-iv" else this_iv + ct)
        elif mode == "gcm":
            nonce = os.urandom(12)
            out.append(nonce + AESGCM(key).encrypt(nonce, p, None))
        elif mode == "rc4":
            from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4

            enc = Cipher(ARC4(key), mode=None).encryptor()  # fresh state: the same keystream every time
            out.append(enc.update(p) + enc.finalize())
        else:
            raise ValueError(f"unknown mode {mode!r}; one of {sorted(EXFIL_MODES)}")
    return out


def _key_for(mode: str) -> bytes:
    return os.urandom(16 if mode in ("ecb", "cbc-static-iv", "rc4") else 32)


def _exfil_setup(ctx: AppContext, host: str, ip: str | None, mode: str, key_alias: str | None,
                 sizes: Sequence[int], seed: str, header: bytes, truth: list,
                 dns_src_port: int | None) -> tuple[bytes, str, bool, list[bytes]]:
    """What every exfil app does first: make its key (logged), find the server, collect the data.

    ``header``: the envelope a real app puts in front of each batch (format version,
    device id, record type); identical on every message, as serialised data is.
    """
    key = _key_for(mode)
    if key_alias:
        truth.append(AppEventTruth(ctx.device, ctx.package, "key_generated", time.time(),
                                   {"alias": key_alias, "algorithm": "RC4" if mode == "rc4" else "AES",
                                    "mode": mode}))
    dst, via_dns = _target(ctx, host, ip, truth, dns_src_port)
    return key, dst, via_dns, [header + collected_data(n, f"{seed}-{i}") for i, n in enumerate(sizes)]


def exfil_tcp(ctx: AppContext, host: str, *, port: int, sizes: Sequence[int], mode: str = "cbc-static-iv",
              ip: str | None = None, interval: float = 1.0, per_connection: bool = True, prefix: int = 4,
              key_alias: str | None = None, src_ports: Sequence[int] | None = None, seed: str = "exfil",
              ctl: Any = None, kind: str = "exfil", dns_src_port: int | None = None,
              header: bytes = b"") -> list:
    """The covert exfiltration app: make a key, encrypt collected data, send it as
    length-prefixed messages over plain TCP (each acknowledged with 8 bytes).

    ``per_connection``: one TCP connection per message (beacon-like), else one
    connection for all. ``key_alias`` adds a key_generated event to the truth
    (Android logs KEY_GENERATED when an app makes a Keystore key).
    """
    truth: list = []
    key, dst, via_dns, plaintexts = _exfil_setup(ctx, host, ip, mode, key_alias, sizes, seed, header, truth,
                                                 dns_src_port)
    messages = encrypt_messages(mode, key, plaintexts)
    groups = [[m] for m in messages] if per_connection else [messages]
    for gi, group in enumerate(groups):
        if gi and ctl is not None and ctl.wait(interval):
            break
        if gi and ctl is None:
            time.sleep(interval)
        sp = src_ports[gi] if src_ports and gi < len(src_ports) else None
        s, start, connected = _connect(dst, port, sp)
        try:
            src = s.getsockname()
            t = PlainTransport(s)
            for mi, m in enumerate(group):
                if mi:
                    time.sleep(interval)
                t.send(len(m).to_bytes(prefix, "big") + m)
                _recv_exact(t, 8)
            t.finish()
        finally:
            s.close()
        truth.append(_tcp_truth(ctx, kind, src, dst, port, start, t, connected, host, via_dns,
                                {"mode": mode, "prefix_bytes": prefix, "messages": [len(m) for m in group],
                                 "plaintext": [len(p) for p in plaintexts[gi:gi + len(group)]] if per_connection
                                 else [len(p) for p in plaintexts],
                                 "key_alias": key_alias, "key_hex": key.hex()}))
    return truth


def exfil_http(ctx: AppContext, host: str, *, sizes: Sequence[int], mode: str = "cbc-static-iv",
               encoding: str = "json_b64", port: int = 80, ip: str | None = None, path: str = "/api/v2/events",
               interval: float = 1.0, key_alias: str | None = None, seed: str = "exfil-http", ctl: Any = None,
               kind: str = "exfil_http", dns_src_port: int | None = None, header: bytes = b"") -> list:
    """Symmetric ciphertext POSTed over plain HTTP, one request per batch, one key for all.

    ``encoding``: ``raw`` (octet-stream), ``json_b64`` (``{"v":1,"data":"<base64>"}``,
    the "base64 ciphertext in JSON" case), or ``hex`` (text/plain hex).
    """
    truth: list = []
    key, dst, via_dns, plaintexts = _exfil_setup(ctx, host, ip, mode, key_alias, sizes, seed, header, truth,
                                                 dns_src_port)
    for i, ct in enumerate(encrypt_messages(mode, key, plaintexts)):
        if i and (ctl.wait(interval) if ctl is not None else time.sleep(interval)):
            break
        if encoding == "json_b64":
            body = json.dumps({"v": 1, "data": base64.b64encode(ct).decode()}).encode()
            ctype = "application/json"
        elif encoding == "hex":
            body, ctype = ct.hex().encode(), "text/plain"
        elif encoding == "raw":
            body, ctype = ct, "application/octet-stream"
        else:
            raise ValueError(f"unknown encoding {encoding!r}")
        recs = http_request(ctx, host, ip=dst, port=port, method="POST", path=path, body=body, content_type=ctype,
                            kind=kind, via_dns=via_dns)
        for r in recs:
            if isinstance(r, FlowTruth):
                r.details.update({"mode": mode, "encoding": encoding, "ciphertext": len(ct),
                                  "plaintext": len(plaintexts[i]), "key_alias": key_alias, "key_hex": key.hex()})
        truth.extend(recs)
    return truth


def hybrid_upload(ctx: AppContext, host: str, *, server_public_pem: bytes, sizes: Sequence[int], port: int = 80,
                  ip: str | None = None, path: str = "/v1/sync", encoding: str = "raw", interval: float = 1.0,
                  register_device_key: bool = True, key_alias: str | None = "device_identity_rsa",
                  seed: str = "hybrid", ctl: Any = None, kind: str = "hybrid_http",
                  dns_src_port: int | None = None) -> list:
    """RSA-OAEP hybrid envelopes over plain HTTP POSTs (AN1762).

    Each upload: a fresh AES-256-GCM key wrapped with the server's RSA key
    (OAEP, SHA-256), then nonce and ciphertext. ``encoding="raw"`` posts the
    bytes; ``"json_b64"`` posts them base64'd inside JSON. With
    ``register_device_key`` the app first makes its own RSA-2048 keypair
    (a KEY_GENERATED event) and posts the public key.
    """
    truth: list = []
    server_pub = serialization.load_pem_public_key(server_public_pem)
    dst, via_dns = _target(ctx, host, ip, truth, dns_src_port)
    if register_device_key:
        dev_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if key_alias:
            truth.append(AppEventTruth(ctx.device, ctx.package, "key_generated", time.time(),
                                       {"alias": key_alias, "algorithm": "RSA", "key_bits": 2048}))
        der = dev_key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        truth.extend(http_request(ctx, host, ip=dst, port=port, method="POST", path="/v1/register", body=der,
                                  kind=kind, via_dns=via_dns))
    for i, n in enumerate(sizes):
        if (i or register_device_key) and (ctl.wait(interval) if ctl is not None else time.sleep(interval)):
            break
        data = collected_data(n, f"{seed}-{i}")
        session_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(12)
        oaep = asym_padding.OAEP(mgf=asym_padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        wrapped = server_pub.encrypt(session_key, oaep)  # type: ignore[union-attr]
        ct = AESGCM(session_key).encrypt(nonce, data, None)
        if encoding == "json_b64":
            body = json.dumps({"k": base64.b64encode(wrapped).decode(), "n": base64.b64encode(nonce).decode(),
                               "d": base64.b64encode(ct).decode()}).encode()
            ctype = "application/json"
        else:
            body, ctype = wrapped + nonce + ct, "application/octet-stream"
        recs = http_request(ctx, host, ip=dst, port=port, method="POST", path=path, body=body,
                            content_type=ctype, kind=kind, via_dns=via_dns)
        for r in recs:
            if isinstance(r, FlowTruth):
                r.details.update({"envelope": "rsa-oaep-sha256+aes-256-gcm", "encoding": encoding,
                                  "wrapped_key_bytes": len(wrapped), "plaintext": n})
        truth.extend(recs)
    return truth


def flows_of(records: Iterable[Any]) -> list[FlowTruth]:
    """The FlowTruth records in a mixed truth list."""
    return [r for r in records if isinstance(r, FlowTruth)]
