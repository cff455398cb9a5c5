"""DTLS 1.0/1.2/1.3 over UDP: plaintext records and the hellos of one flow.

Contract: ``analyze(sample)`` returns ``None`` unless one of the client's first
datagrams starts with a DTLS handshake record carrying a ClientHello (found by
structure, so DTLS multiplexed with STUN/SRTP on one port (RFC 7983) is seen
too); else ``{"l7": "dtls", "tls": {...}}`` with ``version`` ("DTLSv1.2", ...),
``sni``, ``alpn``, ``cipher``, ``ja4`` (``d`` prefix), ``ja3``, ``ja3s``,
``cert`` (DTLS <= 1.2 only; 1.3 encrypts it), ``anomalies``.
Only epoch-0 records are plaintext (RFC 6347 §4.1, RFC 9147 §4); DTLS 1.3's
unified-header records are encrypted and only counted.
"""
from __future__ import annotations

import logging
from typing import Any

from netan.analyzers.tls import (
    ALERT_NAMES,
    HandshakeType,
    hello_summary,
    parse_client_hello,
    flag_anomaly,
    parse_server_hello,
    server_hello_fields,
)
from netan.analyzers.x509info import summarize
from netan.sample import IN, OUT, FlowSample

__all__ = ["analyze", "dtls_records", "reassemble_handshake"]

log = logging.getLogger(__name__)

MAX_DATAGRAMS = 32
MAX_RECORDS_PER_DATAGRAM = 16
MAX_MESSAGES = 32
MAX_MESSAGE_BYTES = 65536
MAX_CERTS = 10
#: DTLS record versions (RFC 6347 §4.1, RFC 9147 §5.3: 1.3 hellos use 1.2's).
DTLS_VERSIONS = (0xFEFF, 0xFEFD, 0xFEFC, 0x0100)  # 0x0100: OpenSSL's pre-RFC DTLS 1.0


def dtls_records(dgram: bytes, anomalies: list[str]) -> list[tuple[int, int, int, bytes]]:
    """(content type, version, epoch, fragment) of each record in one datagram.

    RFC 6347 §4.1 header: type(1) version(2) epoch(2) sequence(6) length(2).
    RFC 9147 §4 unified headers (first bits 001) are encrypted: reported with
    content type 23 and an empty fragment.
    """
    out: list[tuple[int, int, int, bytes]] = []
    pos = 0
    while pos < len(dgram) and len(out) < MAX_RECORDS_PER_DATAGRAM:
        first = dgram[pos]
        if first & 0xE0 == 0x20:  # DTLS 1.3 unified header
            if first & 0x10:  # connection ID of unknown length: cannot walk on
                out.append((23, 0xFEFC, -1, b""))
                break
            p = pos + 1 + (2 if first & 0x08 else 1)
            if first & 0x04:
                if p + 2 > len(dgram):
                    break
                length = int.from_bytes(dgram[p : p + 2], "big")
                p += 2
            else:
                length = len(dgram) - p
            out.append((23, 0xFEFC, -1, b""))
            pos = p + length
            continue
        if pos + 13 > len(dgram):
            flag_anomaly(anomalies, "record_header_truncated")
            break
        ctype = first
        version = int.from_bytes(dgram[pos + 1 : pos + 3], "big")
        epoch = int.from_bytes(dgram[pos + 3 : pos + 5], "big")
        length = int.from_bytes(dgram[pos + 11 : pos + 13], "big")
        if not 20 <= ctype <= 25 or version not in DTLS_VERSIONS:
            flag_anomaly(anomalies, "invalid_record_header")
            break
        frag = dgram[pos + 13 : pos + 13 + length]
        if len(frag) < length:
            flag_anomaly(anomalies, "record_length_past_datagram")
        out.append((ctype, version, epoch, frag))
        pos += 13 + length
    return out


def reassemble_handshake(fragments: list[bytes], anomalies: list[str]) -> list[tuple[int, int, bytes, bool]]:
    """Put DTLS handshake fragments back together (RFC 6347 §4.2.3).

    Each fragment has a 12-byte header: type, length(3), message_seq(2),
    fragment_offset(3), fragment_length(3). Returns (message_seq, type, body,
    complete) in message_seq order; retransmitted copies are ignored.
    """
    msgs: dict[int, tuple[int, bytearray, list[tuple[int, int]]]] = {}
    for frag in fragments:
        pos = 0
        while pos + 12 <= len(frag):
            mtype = frag[pos]
            total = int.from_bytes(frag[pos + 1 : pos + 4], "big")
            seq = int.from_bytes(frag[pos + 4 : pos + 6], "big")
            foff = int.from_bytes(frag[pos + 6 : pos + 9], "big")
            flen = int.from_bytes(frag[pos + 9 : pos + 12], "big")
            body = frag[pos + 12 : pos + 12 + flen]
            pos += 12 + flen
            if total > MAX_MESSAGE_BYTES or foff + flen > total:
                flag_anomaly(anomalies, "handshake_fragment_inconsistent")
                continue
            if seq not in msgs:
                if len(msgs) >= MAX_MESSAGES:
                    continue
                msgs[seq] = (mtype, bytearray(total), [])
            mt, buf, have = msgs[seq]
            if mt != mtype or len(buf) != total:
                flag_anomaly(anomalies, "handshake_fragment_inconsistent")
                continue
            buf[foff : foff + len(body)] = body
            have.append((foff, foff + len(body)))
    out = []
    for seq in sorted(msgs):
        mtype, buf, have = msgs[seq]
        covered = 0
        for start, end in sorted(have):
            if start > covered:
                break
            covered = max(covered, end)
        out.append((seq, mtype, bytes(buf[:covered]), covered >= len(buf)))
    return out


def _find_client_hello_datagram(dgrams: list[bytes]) -> int | None:
    for i, d in enumerate(dgrams):
        if (
            len(d) >= 25
            and d[0] == 22
            and int.from_bytes(d[1:3], "big") in DTLS_VERSIONS
            and int.from_bytes(d[3:5], "big") == 0
            and d[13] == HandshakeType.CLIENT_HELLO
        ):
            return i
    return None


def _side(dgrams: list[bytes], anomalies: list[str]) -> tuple[list[tuple[int, int, bytes, bool]], bool, list[tuple[int, int]]]:
    """(handshake messages, switched to protected records?, plaintext alerts) of one side."""
    frags: list[bytes] = []
    protected = False
    alerts: list[tuple[int, int]] = []
    for d in dgrams:
        if not d or not 20 <= d[0] <= 63:
            continue  # RFC 7983 §7: not DTLS (STUN, SRTP, ... share the port)
        for ctype, _v, epoch, frag in dtls_records(d, anomalies):
            if ctype == 22 and epoch == 0:
                frags.append(frag)
            elif ctype == 21 and epoch == 0 and len(frag) == 2 and len(alerts) < 16:
                alerts.append((frag[0], frag[1]))
            if ctype == 20 or epoch != 0:  # ChangeCipherSpec, or epoch >= 1 / DTLS 1.3 unified
                protected = True
    return reassemble_handshake(frags, anomalies), protected, alerts


def _handshake_of(dgrams: list[bytes], anomalies: list[str]) -> list[tuple[int, int, bytes, bool]]:
    return _side(dgrams, anomalies)[0]


def analyze(sample: FlowSample) -> dict[str, Any] | None:
    """DTLS facts of one UDP flow, or ``None`` if no DTLS ClientHello is found."""
    if sample.proto.lower() != "udp":
        return None
    client = [d for _, d in sample.datagrams(OUT)[:MAX_DATAGRAMS]]
    server = [d for _, d in sample.datagrams(IN)[:MAX_DATAGRAMS]]
    start = _find_client_hello_datagram(client)
    swapped = False
    if start is None:
        # WebRTC (RFC 8842): after ICE either peer may be the DTLS client, so
        # the flow's originator can be the DTLS server.
        start = _find_client_hello_datagram(server)
        if start is None:
            return None
        client, server, swapped = server, client, True
    anomalies: list[str] = []
    tls: dict[str, Any] = {
        "version": None, "sni": None, "alpn": [], "cipher": None,
        "ja4": None, "ja3": None, "ja3s": None, "cert": None,
    }
    ch = None
    client_msgs, client_protected, client_alerts = _side(client[start:], anomalies)
    server_msgs, server_protected, server_alerts = _side(server, anomalies)
    for _seq, mtype, body, complete in client_msgs:
        if mtype == HandshakeType.CLIENT_HELLO:
            ch = parse_client_hello(body, dtls=True, complete=complete)
            break
    if ch is not None:
        for a in ch.anomalies:
            flag_anomaly(anomalies, a)
        tls.update(hello_summary(ch, "d", anomalies))
    sh = None
    ske_curve: int | None = None
    for _seq, mtype, body, complete in server_msgs:
        if mtype == HandshakeType.SERVER_KEY_EXCHANGE and len(body) >= 3 and body[0] == 3:
            ske_curve = int.from_bytes(body[1:3], "big")  # RFC 8422 §5.4 named_curve
        elif mtype == HandshakeType.HELLO_VERIFY_REQUEST:
            tls["hello_verify"] = True
        elif mtype == HandshakeType.SERVER_HELLO and (sh is None or sh.is_hrr):
            sh = parse_server_hello(body, dtls=True, complete=complete)
        elif mtype == HandshakeType.CERTIFICATE and tls["cert"] is None and len(body) >= 6:
            # RFC 5246 §7.4.2 certificate_list; the leaf is the first entry.
            leaf_len = int.from_bytes(body[3:6], "big")
            if 6 + leaf_len <= len(body):
                leaf = summarize(body[6 : 6 + leaf_len])
                for a in leaf.pop("anomalies", []):
                    flag_anomaly(anomalies, f"cert_{a}")
                tls["cert"] = leaf
            else:
                flag_anomaly(anomalies, "certificate_truncated")
    if sh is not None:
        for a in sh.anomalies:
            flag_anomaly(anomalies, a)
        tls.update(server_hello_fields(sh, ske_curve, anomalies))
    alerts = [
        {"dir": "out" if (who == "client") != swapped else "in",
         "level": {1: "warning", 2: "fatal"}.get(level, str(level)), "description": ALERT_NAMES.get(desc, str(desc))}
        for who, lst in (("client", client_alerts), ("server", server_alerts)) for level, desc in lst
    ]
    tls["alerts"] = alerts
    fatal = any(a["level"] == "fatal" for a in alerts)
    # Both sides moved on to protected records (CCS / epoch >= 1 / DTLS 1.3
    # unified headers) after a ServerHello, and nobody sent a fatal alert.
    tls["established"] = bool(sh is not None and client_protected and server_protected and not fatal)
    tls["cert_visibility"] = (
        "visible" if tls["cert"] else "encrypted" if sh is not None and sh.version == 0xFEFC else "absent"
    )
    if swapped:
        tls["client_is_responder"] = True
    tls["anomalies"] = anomalies
    return {"l7": "dtls", "tls": tls}
