"""The protocol dispatcher: which L7 protocol a flow speaks, by structure, and its framing.

Contract: ``analyze(sample) -> dict`` always returns the same keys:
``l7`` (tls, quic, dtls, http, http2, dns, ssh, rtp, stun, wireguard or unknown), ``framing`` (finding
names, docs/framing.md) and ``framing_evidence`` (one dict per finding, numbers
only), ``tls`` (from netan.analyzers.tls/quic/dtls when they recognise the flow,
else None), ``http``, ``dns``, ``ssh`` (each None unless that protocol was
seen). Identification is by structure, never by port alone (ports only relax
DNS checks). Payload bytes never appear in the result; strings are escaped.
"""
from __future__ import annotations

import importlib
import ipaddress
import logging
import re
from functools import lru_cache
from typing import Any

from netan.sample import IN, OUT, FlowSample

__all__ = ["analyze", "escape_text", "local_only", "H2_PREFACE", "L7_NAMES"]

log = logging.getLogger(__name__)

#: RFC 9113 §3.4: the client connection preface of HTTP/2 over cleartext TCP.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
L7_NAMES = ("tls", "quic", "dtls", "http", "http2", "dns", "ssh", "rtp", "stun", "wireguard", "unknown")
MAX_H2_FRAMES = 256


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def escape_text(value: bytes | str, limit: int = 256) -> str:
    """Printable, bounded text: control characters as \\xNN, at most ``limit`` characters.

    Hostile values (terminal escapes, NULs, megabyte headers) reach logs and
    HTML reports through this; a trailing "…" marks a cut (and counts in the limit).
    """
    if isinstance(value, bytes):
        value = value[: limit * 4].decode("utf-8", "backslashreplace")
    if len(value) < limit and not _CONTROL.search(value):
        return value  # nothing to escape or cut: the usual header or path
    out: list[str] = []
    size = 0
    for ch in value:
        o = ord(ch)
        piece = f"\\x{o:02x}" if (o < 0x20 or 0x7F <= o < 0xA0) else ch
        if size + len(piece) > limit - 1:
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
    from netan.analyzers.http import empty_info

    info = empty_info("2")
    info.update(frames=counts, data_frames=len(units), anomalies=sorted(set(anomalies)))
    return info, units


_GQUIC_VERSION = re.compile(rb"[QT]0[0-9]{2}")


def _quic_by_shape(sample: FlowSample) -> bool:
    """QUIC that the QUIC analyzer could not parse: gQUIC, other versions, mid-connection.

    Google QUIC puts "Q0nn"/"T0nn" in the long header (Q046+: bytes 1-4) or
    after the 8-byte connection id of the public header (Q043 and older,
    flag 0x01; draft-ietf-quic-invariants does not cover it). IETF QUIC
    (RFC 8999 invariants): long headers repeat one version and a connection
    id length of at most 20; short headers (0b01xxxxxx) repeat the
    destination connection id, which we require for 8 bytes in 3 datagrams
    (random datagrams match with probability below 2^-120).
    """
    grams = [d for _, d in sample.datagrams(OUT)[:16] if len(d) >= 13]
    if not grams:
        return False
    for d in grams[:4]:
        if d[0] & 0x80 and _GQUIC_VERSION.fullmatch(d[1:5]):
            return True
        if d[0] & 0x01 and not d[0] & 0x80 and _GQUIC_VERSION.fullmatch(d[9:13]):
            return True
    longs = [d for d in grams if d[0] & 0xC0 == 0xC0]
    if len(longs) >= 2 and len({d[1:5] for d in longs}) == 1 and all(d[5] <= 20 for d in longs) and longs[0][1:5] != b"\x00\x00\x00\x00":
        return True
    shorts = [d for d in grams if d[0] & 0xC0 == 0x40]
    if len(shorts) < 3 or len(shorts) * 2 < len(grams) or len({d[1:9] for d in shorts}) != 1:
        return False
    # A real connection id is random and the rest is ciphertext (RFC 9001 §5).
    from netan.analyzers.framing import looks_random

    return len(set(shorts[0][1:9])) >= 5 and sum(looks_random(d[9:]) for d in shorts) * 2 >= len(shorts)


def _is_stun(d: bytes) -> bool:
    """STUN/TURN message (RFC 8489 §5): top bits 00, magic cookie, length = rest, 4-aligned."""
    return len(d) >= 20 and d[0] < 0x40 and d[4:8] == b"\x21\x12\xa4\x42" and int.from_bytes(d[2:4], "big") == len(d) - 20 and len(d) % 4 == 0


def _rtp_stream(grams: list[bytes]) -> bool:
    """RTP (RFC 3550 §5.1): version 2, one SSRC, sequence numbers that advance by small steps.

    SRTP (RFC 3711) keeps this header in clear, so encrypted media is
    recognised too. Random datagrams share a 32-bit SSRC with probability 2^-32.
    """
    rtp = [d for d in grams if len(d) >= 12 and d[0] & 0xC0 == 0x80 and not 192 <= d[1] <= 223]
    if len(rtp) < 3 or len({d[8:12] for d in rtp}) != 1:
        return False
    seqs = [int.from_bytes(d[2:4], "big") for d in rtp]
    return all(0 < (b - a) % 65536 <= 64 for a, b in zip(seqs, seqs[1:]))


def _wireguard(sample: FlowSample) -> bool:
    """WireGuard (whitepaper §5.4): type 1-4, three zero bytes, fixed handshake sizes,
    transport data 16 header + 16k ciphertext + 16 tag bytes."""
    grams = [g for _, g in sample.datagrams()[:32]]
    if len(grams) < 2:
        return False
    sizes = {1: 148, 2: 92, 3: 64}
    for g in grams:
        if len(g) < 32 or g[0] not in (1, 2, 3, 4) or g[1:4] != b"\x00\x00\x00":
            return False
        if g[0] in sizes and len(g) != sizes[g[0]]:
            return False
        if g[0] == 4 and (len(g) - 32) % 16:
            return False
    return True


def _udp_media(sample: FlowSample) -> str | None:
    """WebRTC-style media flows (RFC 7983 demultiplexing): rtp, or stun alone."""
    by_dir = {d: [g for _, g in sample.datagrams(d)[:64]] for d in (OUT, IN)}
    if any(_rtp_stream(grams) for grams in by_dir.values()):
        return "rtp"
    grams = by_dir[OUT] + by_dir[IN]
    if grams and sum(_is_stun(g) for g in grams) * 2 >= len(grams):
        return "stun"
    return None


def local_only(sample: FlowSample) -> bool:
    """Multicast and broadcast: local discovery chatter, never egress."""
    return _local_address(sample.dst_ip)


@lru_cache(maxsize=4096)
def _local_address(text: str) -> bool:
    """Is ``text`` a multicast or the broadcast address?  Memoised: flows to
    one destination repeat it, and ipaddress parses in pure Python."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return False
    return addr.is_multicast or str(addr) == "255.255.255.255"


def _stream_encoded(units: list[Any]) -> list[Any]:
    """Encoded ciphertext inside the messages of a protocol we do not parse.

    Android RATs often write base64(AES(...)) lines to a raw socket. Random
    bytes hold a 43-character base64-alphabet run with probability ~4^-43,
    so binary ciphertext and compressed data never produce one.
    """
    from netan.analyzers.framing import MAX_TEXT, scan_encoded

    found: list[Any] = []
    budget = MAX_TEXT
    for u in units[:32]:
        if budget <= 0:
            break
        chunk = u.data[: min(len(u.data), budget)]
        budget -= len(chunk)
        found += scan_encoded(chunk, "out:stream" if u.direction == OUT else "in:stream")
    return found


def _detect_tcp(sample: FlowSample) -> str:
    from netan.analyzers import http as http_mod
    from netan.analyzers import ssh as ssh_mod

    if sample.out.startswith(H2_PREFACE):
        return "http2"
    if http_mod.is_http_request_start(sample.out) or http_mod.is_http_response_start(sample.inb):
        return "http"
    if http_mod.is_http_request_start(sample.inb) or http_mod.is_http_response_start(sample.out):
        return "http"  # joined mid-connection: the responder was taken for the originator
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
            if fields and fields.get("l7") in L7_NAMES and fields.get("l7") != "unknown":
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
    if l7 == "unknown" and sample.proto == "udp":
        if _quic_by_shape(sample):
            l7 = "quic"
        elif _wireguard(sample):
            l7 = "wireguard"
        else:
            l7 = _udp_media(sample) or l7

    if l7 in ("tls", "dtls"):
        evidence = framing.tls_findings(framing.first_units(sample))
    elif l7 in ("quic", "ssh", "dns", "rtp", "stun", "wireguard") or local_only(sample):
        evidence = []  # encryption (or none) explained by the protocol itself; or not egress
    else:
        if units is None:
            units = framing.units_from_sample(sample)
        if l7 in ("unknown", "http2"):
            text_values = _stream_encoded(units)
        res = framing.analyze_units(units, text_values=text_values)
        evidence = list(res.evidence)
        if l7 == "unknown" and any(e.finding == "tls_records" for e in evidence):
            # Records with no handshake in the sample: a flow seen mid-stream.
            l7 = "dtls" if sample.proto == "udp" else "tls"
            evidence = [e for e in evidence if e.finding == "tls_records"]
    result["l7"] = l7
    result["framing"] = framing.FramingResult(tuple(evidence)).findings
    result["framing_evidence"] = [e.to_dict() for e in evidence]
    if l7 not in ("tls", "dtls", "quic", "ssh", "dns") and sample.out:
        from netan.analyzers.pubkeys import find_public_keys

        keys = find_public_keys(sample.out)
        if keys:
            result["framing"] = sorted(set(result["framing"]) | {"public_key"})
            result["framing_evidence"] += [{
                "finding": "public_key", "direction": "out", "offset": k.offset, "encoding": k.encoding,
                "key_type": k.key_type, "key_bits": k.key_bits,
                "detail": f"{k.key_type.upper()}{'-' + str(k.key_bits) if k.key_bits else ''} public key "
                          f"({k.encoding}) sent in the clear at offset {k.offset}"} for k in keys[:4]]
    return result
