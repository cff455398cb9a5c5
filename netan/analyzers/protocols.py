"""The protocol dispatcher: which L7 protocol a flow speaks, by structure, and its framing.

Contract: ``analyze(sample) -> dict`` always returns the same keys:
``l7`` (tls, quic, dtls, http, http2, dns, ssh or unknown), ``framing`` (finding
names, docs/framing.md) and ``framing_evidence`` (one dict per finding, numbers
only), ``tls`` (from netan.analyzers.tls/quic/dtls when they recognise the flow,
else None), ``http``, ``dns``, ``ssh`` (each None unless that protocol was
seen). Identification is by structure, never by port alone (ports only relax
DNS checks). Payload bytes never appear in the result; strings are escaped.
"""
from __future__ import annotations

import importlib
import logging
from typing import Any

from netan.sample import IN, OUT, FlowSample

__all__ = ["analyze", "escape_text", "H2_PREFACE", "L7_NAMES"]

log = logging.getLogger(__name__)

#: RFC 9113 §3.4: the client connection preface of HTTP/2 over cleartext TCP.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
L7_NAMES = ("tls", "quic", "dtls", "http", "http2", "dns", "ssh", "unknown")
MAX_H2_FRAMES = 256


def escape_text(value: bytes | str, limit: int = 256) -> str:
    """Printable, bounded text: control characters as \\xNN, at most ``limit`` characters.

    Hostile values (terminal escapes, NULs, megabyte headers) reach logs and
    HTML reports through this; the "…" marks a cut.
    """
    if isinstance(value, bytes):
        value = value[: limit * 4].decode("utf-8", "backslashreplace")
    out: list[str] = []
    size = 0
    for ch in value:
        o = ord(ch)
        piece = f"\\x{o:02x}" if (o < 0x20 or 0x7F <= o < 0xA0) else ch
        if size + len(piece) > limit:
            out.append("…")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def _optional(module: str, sample: FlowSample) -> dict[str, Any] | None:
    """Run a sibling analyzer that may not exist yet or may fail on this flow."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    try:
        return mod.analyze(sample)
    except Exception:  # one analyzer's bug must not hide the others' results
        log.warning("%s failed on %s:%s -> %s:%s", module, sample.src_ip, sample.src_port, sample.dst_ip, sample.dst_port, exc_info=True)
        return None


def _h2_units(sample: FlowSample) -> tuple[dict[str, Any], list[Any]]:
    """HTTP/2 DATA frame payloads as framing units (RFC 9113 §4.1, §6.1).

    HPACK headers are not decoded; a gRPC length prefix (5 bytes,
    grpc/doc/PROTOCOL-HTTP2.md) is stripped so the message itself is judged.
    """
    from netan.analyzers.framing import Unit

    units: list[Unit] = []
    counts = {"out": 0, "in": 0}
    anomalies: list[str] = []
    for direction, data, start in ((OUT, sample.out, len(H2_PREFACE)), (IN, sample.inb, 0)):
        pos = start
        dname = "out" if direction == OUT else "in"
        for _ in range(MAX_H2_FRAMES):
            if pos + 9 > len(data):
                break
            length = int.from_bytes(data[pos : pos + 3], "big")
            ftype, flags = data[pos + 3], data[pos + 4]
            body = data[pos + 9 : pos + 9 + length]
            complete = len(body) == length
            counts[dname] += 1
            if ftype == 0:  # DATA
                if flags & 0x8 and body:  # PADDED
                    pad = body[0]
                    body = body[1 : max(1, len(body) - pad)]
                if len(body) >= 5 and body[0] in (0, 1) and int.from_bytes(body[1:5], "big") == len(body) - 5:
                    body = body[5:]
                if body:
                    units.append(Unit(direction, len(units), len(body), body, complete, pos, "h2_data"))
            elif ftype > 9:
                anomalies.append("unknown_frame_type")
            pos += 9 + length
    info = {"version": "2", "frames": counts, "data_frames": len(units), "anomalies": sorted(set(anomalies))}
    return info, units


def _detect_tcp(sample: FlowSample) -> str:
    from netan.analyzers import http as http_mod
    from netan.analyzers import ssh as ssh_mod

    if sample.out.startswith(H2_PREFACE):
        return "http2"
    if http_mod.is_http_request_start(sample.out) or http_mod.is_http_response_start(sample.inb):
        return "http"
    if sample.out.startswith(b"SSH-") or ssh_mod.is_ssh_start(sample.inb):
        return "ssh"
    return "unknown"


def analyze(sample: FlowSample) -> dict[str, Any]:
    """L7 protocol, protocol facts and ciphertext framing for one flow."""
    from netan.analyzers import dns as dns_mod
    from netan.analyzers import framing

    result: dict[str, Any] = {
        "l7": "unknown",
        "framing": [],
        "framing_evidence": [],
        "tls": None,
        "http": None,
        "dns": None,
        "ssh": None,
    }
    # The TLS family first: their analyzers recognise handshakes on any port.
    family = ("netan.analyzers.tls",) if sample.proto == "tcp" else ("netan.analyzers.quic", "netan.analyzers.dtls")
    if sample.proto in ("tcp", "udp"):
        for module in family:
            fields = _optional(module, sample)
            if fields:
                for key, value in fields.items():
                    if key not in ("framing", "framing_evidence"):
                        result[key] = value
                break
    l7 = result["l7"] if result["l7"] in L7_NAMES and result["l7"] != "unknown" else "unknown"

    units = None
    text_values: list[Any] = []
    if l7 == "unknown" and sample.proto == "tcp":
        l7 = _detect_tcp(sample)
        if l7 == "http":
            from netan.analyzers import http as http_mod

            result["http"], units, text_values = http_mod.summarize(sample)
        elif l7 == "http2":
            result["http"], units = _h2_units(sample)
        elif l7 == "ssh":
            from netan.analyzers import ssh as ssh_mod

            result["ssh"] = ssh_mod.summarize(sample)
    if l7 == "unknown" and sample.proto in ("tcp", "udp"):
        dns = dns_mod.summarize(sample)
        if dns is not None:
            l7 = "dns"
            result["dns"] = dns

    if l7 in ("tls", "dtls"):
        res = framing.analyze_units([u for u in framing.units_from_sample(sample) if u.index == 0])
        evidence = [e for e in res.evidence if e.finding == "tls_records"]
    elif l7 in ("quic", "ssh", "dns"):
        evidence = []  # encryption (or none) explained by the protocol itself
    else:
        res = framing.analyze_units(units if units is not None else framing.units_from_sample(sample), text_values=text_values)
        evidence = list(res.evidence)
        if l7 == "unknown" and any(e.finding == "tls_records" for e in evidence):
            l7 = "tls"  # records with no handshake in the sample: a flow seen mid-stream
            evidence = [e for e in evidence if e.finding == "tls_records"]
    result["l7"] = l7
    result["framing"] = framing.FramingResult(tuple(evidence)).findings
    result["framing_evidence"] = [e.to_dict() for e in evidence]
    return result
