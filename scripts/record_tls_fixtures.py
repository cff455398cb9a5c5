#!/usr/bin/env python3
"""Record real TLS handshakes on loopback into tests/data/tls/*.pcap (+ a JSON sidecar).

Each scenario runs a real server and client (Python's ``ssl`` module or the
``openssl s_server``/``s_client`` binaries), captured by ``tcpdump`` on ``lo``.
The sidecar ``<name>.json`` records what the *endpoints* said about the session
(negotiated version, cipher, ALPN, SNI sent, client certificate used), so the
tests compare netan's passive view against the libraries' own view, and against
tshark on the same pcap.

Usage (root, needs tcpdump and openssl):  python scripts/record_tls_fixtures.py [OUTDIR]
The functions are importable so tests can record fresh captures too.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

log = logging.getLogger("record_tls_fixtures")

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "tls"


# ---- certificates ----------------------------------------------------------------
@dataclass
class Pki:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    info: dict[str, Any] = field(default_factory=dict)


def _name(cn: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "netan test"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def make_pki(directory: Path) -> Pki:
    """A CA, an RSA-2048 server certificate (with SANs) and an EC P-256 client certificate."""
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = _name("netan test CA")
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    srv_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    srv = (
        x509.CertificateBuilder().subject_name(_name("server.netan.test")).issuer_name(ca_name)
        .public_key(srv_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3000))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("server.netan.test"), x509.DNSName("tls12.netan.test"),
            x509.DNSName("tls13.netan.test"), x509.DNSName("localhost"),
        ]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cli_key = ec.generate_private_key(ec.SECP256R1())
    cli = (
        x509.CertificateBuilder().subject_name(_name("netan-client")).issuer_name(ca_name)
        .public_key(cli_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3000))
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    nokey = serialization.NoEncryption()
    pk8 = serialization.PrivateFormat.PKCS8
    return Pki(
        directory,
        _write(directory / "ca.pem", ca.public_bytes(pem)),
        _write(directory / "server.pem", srv.public_bytes(pem) + ca.public_bytes(pem)),
        _write(directory / "server.key", srv_key.private_bytes(pem, pk8, nokey)),
        _write(directory / "client.pem", cli.public_bytes(pem)),
        _write(directory / "client.key", cli_key.private_bytes(pem, pk8, nokey)),
        info={
            "server_subject": srv.subject.rfc4514_string(),
            "server_issuer": srv.issuer.rfc4514_string(),
            "server_not_after": srv.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "server_sha1": srv.fingerprint(hashes.SHA1()).hex(),
            "client_subject": cli.subject.rfc4514_string(),
            "client_sha1": cli.fingerprint(hashes.SHA1()).hex(),
        },
    )


# ---- capture ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Capture:
    """tcpdump on loopback for one TCP port, as a context manager."""

    def __init__(self, pcap: Path, port: int) -> None:
        self.pcap, self.port = pcap, port
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Capture":
        self.proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-s", "0", "-n", "-w", str(self.pcap), f"tcp port {self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        # tcpdump prints "listening on lo" once the filter is attached; without
        # --immediate-mode some kernels hand it nothing from lo before exit.
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 10
        line = b""
        while time.monotonic() < deadline and b"listening" not in line:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError("tcpdump exited early")
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.4)  # let the last packets reach the file
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---- Python ssl scenarios ---------------------------------------------------------
def _py_server(ctx: ssl.SSLContext, port: int, conns: int, ready: threading.Event, result: dict[str, Any]) -> None:
    with socket.create_server(("127.0.0.1", port)) as srv:
        srv.settimeout(10)
        ready.set()
        for _ in range(conns):
            raw, _ = srv.accept()
            try:
                with ctx.wrap_socket(raw, server_side=True) as tls:
                    data = tls.recv(64)
                    tls.sendall(b"pong:" + data)
                    peer = tls.getpeercert()
                    result.setdefault("server_saw_client_cert", []).append(bool(peer))
            except (ssl.SSLError, OSError) as exc:
                result.setdefault("server_errors", []).append(type(exc).__name__)


def py_session(
    pcap: Path, pki: Pki, *, max_version: ssl.TLSVersion, client_cert: bool = False, sni: str,
    alpn: list[str] | None = None, ciphers: str | None = None, resume: bool = False, bad_ca: bool = False,
) -> dict[str, Any]:
    """One (or, with ``resume``, two) Python-ssl handshakes captured to ``pcap``."""
    port = free_port()
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(pki.server_cert, pki.server_key)
    sctx.maximum_version = max_version
    if client_cert:
        sctx.verify_mode = ssl.CERT_REQUIRED
        sctx.load_verify_locations(pki.ca)
    if alpn:
        sctx.set_alpn_protocols(alpn[-1:])  # server picks the last one the client offers
    if ciphers:
        sctx.set_ciphers(ciphers)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.maximum_version = max_version
    if bad_ca:
        cctx.load_verify_locations(pki.client_cert)  # the wrong anchor: verification fails
    else:
        cctx.load_verify_locations(pki.ca)
    if client_cert:
        cctx.load_cert_chain(pki.client_cert, pki.client_key)
    if alpn:
        cctx.set_alpn_protocols(alpn)
    result: dict[str, Any] = {"tool": "python-ssl", "openssl": ssl.OPENSSL_VERSION, "sni": sni, "port": port}
    ready = threading.Event()
    server = threading.Thread(target=_py_server, args=(sctx, port, 2 if resume else 1, ready, result), daemon=True)
    with Capture(pcap, port):
        server.start()
        ready.wait(5)
        session = None
        sessions = []
        for i in range(2 if resume else 1):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                    with cctx.wrap_socket(raw, server_hostname=sni, session=session) as tls:
                        tls.sendall(b"ping")
                        tls.recv(64)
                        sessions.append({
                            "version": tls.version(),
                            "cipher": tls.cipher()[0],
                            "alpn": tls.selected_alpn_protocol(),
                            "session_reused": tls.session_reused,
                            "client_port": tls.getsockname()[1],
                        })
                        session = tls.session
                        if max_version == ssl.TLSVersion.TLSv1_3:
                            time.sleep(0.05)  # let the ticket arrive before closing
            except (ssl.SSLError, OSError) as exc:
                sessions.append({"error": type(exc).__name__, "detail": str(exc)[:200]})
        server.join(10)
    result["sessions"] = sessions
    return result


# ---- openssl binary scenarios ------------------------------------------------------
def openssl_session(
    pcap: Path, pki: Pki, *, version_flag: str, client_cert: bool, sni: str,
    server_groups: str | None = None, alpn: str | None = None,
) -> dict[str, Any]:
    """One ``openssl s_client`` handshake against ``openssl s_server``, captured."""
    port = free_port()
    srv_cmd = ["openssl", "s_server", "-accept", str(port), "-naccept", "1", "-cert", str(pki.server_cert),
               "-key", str(pki.server_key), version_flag]
    if client_cert:
        srv_cmd += ["-Verify", "1", "-CAfile", str(pki.ca)]
    if server_groups:
        srv_cmd += ["-groups", server_groups]
    if alpn:
        srv_cmd += ["-alpn", alpn.split(",")[-1]]
    cli_cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", sni, version_flag,
               "-CAfile", str(pki.ca), "-verify_return_error"]
    if client_cert:
        cli_cmd += ["-cert", str(pki.client_cert), "-key", str(pki.client_key)]
    if alpn:
        cli_cmd += ["-alpn", alpn]
    result: dict[str, Any] = {"tool": "openssl-cli", "sni": sni, "port": port}
    with Capture(pcap, port):
        srv = subprocess.Popen(srv_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            # s_server prints "ACCEPT" once it listens (stdout, without -quiet).
            assert srv.stdout is not None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                line = srv.stdout.readline()
                if not line or b"ACCEPT" in line:
                    break
            out = subprocess.run(cli_cmd, input=b"ping\n", capture_output=True, timeout=15)
        finally:
            srv.kill()
            srv.wait()
    text = out.stdout.decode("utf-8", "replace")
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Protocol  :") or line.startswith("Protocol :"):
            result["version"] = line.split(":", 1)[1].strip()
        elif line.startswith("Cipher    :") or line.startswith("Cipher :"):
            result["cipher"] = line.split(":", 1)[1].strip()
        elif line.startswith("New, ") and "Cipher is" in line:
            # "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384": printed right
            # after the handshake, unlike the SSL-Session block, which a TLS
            # 1.3 client may skip when it exits before the ticket arrives.
            result["version_line"] = line
            result.setdefault("version", line.split(",")[1].strip())
            result.setdefault("cipher", line.rsplit(" ", 1)[-1])
        elif line.startswith("ALPN protocol:"):
            result["alpn"] = line.split(":", 1)[1].strip()
    result["returncode"] = out.returncode
    return result


# ---- the scenario table ---------------------------------------------------------------
def scenarios(pki: Pki) -> dict[str, Callable[[Path], dict[str, Any]]]:
    v12, v13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3
    return {
        "py-tls13": lambda p: py_session(p, pki, max_version=v13, sni="tls13.netan.test", alpn=["h2", "http/1.1"]),
        "py-tls12": lambda p: py_session(p, pki, max_version=v12, sni="tls12.netan.test", alpn=["http/1.1"],
                                         ciphers="ECDHE-RSA-AES128-GCM-SHA256"),
        "py-tls12-mtls": lambda p: py_session(p, pki, max_version=v12, sni="tls12.netan.test", client_cert=True),
        "py-tls13-mtls": lambda p: py_session(p, pki, max_version=v13, sni="tls13.netan.test", client_cert=True),
        "py-tls12-resume": lambda p: py_session(p, pki, max_version=v12, sni="tls12.netan.test", resume=True),
        "py-tls12-badca": lambda p: py_session(p, pki, max_version=v12, sni="tls12.netan.test", bad_ca=True),
        "openssl-tls12-mtls": lambda p: openssl_session(p, pki, version_flag="-tls1_2", client_cert=True,
                                                        sni="server.netan.test", alpn="h2,http/1.1"),
        "openssl-tls13": lambda p: openssl_session(p, pki, version_flag="-tls1_3", client_cert=False,
                                                   sni="server.netan.test"),
        "openssl-tls13-hrr": lambda p: openssl_session(p, pki, version_flag="-tls1_3", client_cert=False,
                                                       sni="server.netan.test", server_groups="P-384"),
    }


def record(outdir: Path, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Record the named scenarios (all by default) into ``outdir``; returns the sidecars."""
    outdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp))
        for name, run in scenarios(pki).items():
            if names and name not in names:
                continue
            pcap = outdir / f"{name}.pcap"
            info = run(pcap)
            info["pki"] = pki.info
            (outdir / f"{name}.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
            results[name] = info
            log.info("recorded %s: %d bytes", pcap.name, pcap.stat().st_size)
    return results


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if os.geteuid() != 0 or not shutil.which("tcpdump"):
        log.error("needs root and tcpdump to capture on lo")
        return 2
    outdir = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    record(outdir, argv[2:] or None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
