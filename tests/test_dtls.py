"""DTLS 1.0/1.2/1.3: record walking, fragment reassembly, hellos, JA4 with ``d``, hostile input."""
from __future__ import annotations

import json
from pathlib import Path

import crafted
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_tls import (
    CH_EXTS,
    client_hello_body,
    ext,
    make_cert,
    server_hello_body,
    u16,
    u24,
)

from netan.analyzers import dtls, tls
from netan.analyzers import fingerprints as fp
from netan.sample import FlowSample

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
ILLUSTRATED = CORPUS / "illustrated-dtls" / "captures"


def dtls_record(ctype: int, payload: bytes, version: int = 0xFEFD, epoch: int = 0, seq: int = 0) -> bytes:
    """RFC 6347 §4.1 DTLSPlaintext."""
    return bytes([ctype]) + u16(version) + u16(epoch) + seq.to_bytes(6, "big") + u16(len(payload)) + payload


def dtls_fragment(mtype: int, body: bytes, msg_seq: int, offset: int, length: int) -> bytes:
    """RFC 6347 §4.2.2 handshake header + one fragment of the body."""
    return bytes([mtype]) + u24(len(body)) + u16(msg_seq) + u24(offset) + u24(length) + body[offset : offset + length]


def udp(client: list[bytes], server: list[bytes] = ()) -> FlowSample:
    return crafted.udp_sample(client, server, sport=5000, dport=4433, server_t0=0.5)


CH = client_hello_body(version=0xFEFD, ciphers=[0xC02B, 0xC02F, 0x00FF], extensions=CH_EXTS[:4], cookie=b"")


def test_fragmented_client_hello_with_retransmission_and_server_flight() -> None:
    half = len(CH) // 2
    d1 = dtls_record(22, dtls_fragment(1, CH, 0, 0, half), seq=0)
    d2 = dtls_record(22, dtls_fragment(1, CH, 0, half, len(CH) - half), seq=1)
    cert = make_cert("dtls.example.test")
    sh = server_hello_body(version=0xFEFD, cipher=0xC02B)
    cert_body = u24(len(cert) + 3) + u24(len(cert)) + cert
    s1 = dtls_record(22, dtls_fragment(2, sh, 1, 0, len(sh)))
    s1 += dtls_record(22, dtls_fragment(11, cert_body, 2, 0, len(cert_body)), seq=1)
    # d2 arrives first, then d1, then d2 again (a retransmission).
    r = dtls.analyze(udp([d2, d1, d2], [s1]))
    t = r["tls"]
    assert r["l7"] == "dtls"
    assert t["sni"] == "www.example.test" and t["version"] == "DTLSv1.2"
    assert t["cipher"] == "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
    assert t["ja4"] == fp.ja4(tls.parse_client_hello(CH, dtls=True), "d") and t["ja4"].startswith("dd2d03")
    assert t["cert"]["subject"] == "CN=dtls.example.test" and t["cert_visibility"] == "visible"
    assert t["anomalies"] == []


def test_hello_verify_request_and_stun_before_dtls() -> None:
    stun = bytes.fromhex("000100082112a442") + bytes(12) + bytes(8)  # RFC 5389 binding request
    ch1 = dtls_record(22, dtls_fragment(1, CH, 0, 0, len(CH)))
    hvr_body = u16(0xFEFF) + b"\x04abcd"
    hvr = dtls_record(22, dtls_fragment(3, hvr_body, 0, 0, len(hvr_body)), version=0xFEFF)
    t = dtls.analyze(udp([stun, ch1], [stun, hvr]))["tls"]
    assert t["hello_verify"] is True and t["sni"] == "www.example.test" and t["anomalies"] == []


def test_dtls13_server_hello_and_encrypted_records() -> None:
    ch = client_hello_body(version=0xFEFD, ciphers=[0x1301], extensions=[ext(43, b"\x02\xfe\xfc")], cookie=b"")
    sh = server_hello_body(version=0xFEFD, cipher=0x1301, extensions=[ext(43, u16(0xFEFC))])
    unified = bytes([0x2C]) + b"\x00\x01" + u16(20) + bytes(20)  # 001 0 1 1 00: seq16, length
    server = dtls_record(22, dtls_fragment(2, sh, 0, 0, len(sh))) + unified
    t = dtls.analyze(udp([dtls_record(22, dtls_fragment(1, ch, 0, 0, len(ch)))], [server]))["tls"]
    assert t["version"] == "DTLSv1.3" and t["cipher"] == "TLS_AES_128_GCM_SHA256"
    assert t["cert"] is None and t["cert_visibility"] == "encrypted"
    assert t["ja4"].startswith("dd3i0101")


@pytest.mark.skipif(not ILLUSTRATED.is_dir(), reason="illustrated-dtls corpus not present")
def test_illustrated_dtls13_capture() -> None:
    from pcap_samples import flow_samples

    (s,) = [s for s in flow_samples(ILLUSTRATED / "capture.pcap") if s.proto == "udp"]
    t = dtls.analyze(s)["tls"]
    # The published ClientHello record, parsed on its own, gives the same hello.
    rec = (ILLUSTRATED / "caps" / "record-chello").read_bytes()
    msgs = dtls.reassemble_handshake([f for _, _, _, f in dtls.dtls_records(rec, [])], [])
    ch = tls.parse_client_hello(msgs[0][2], dtls=True)
    assert t["ja4"] == fp.ja4(ch, "d") and t["version"] == "DTLSv1.3"
    assert t["cipher"] == "TLS_AES_128_GCM_SHA256"


def test_not_dtls() -> None:
    assert dtls.analyze(udp([b"\x00\x01hello", bytes(50)])) is None
    assert dtls.analyze(FlowSample("tcp", "a", 1, "b", 2, dtls_record(22, dtls_fragment(1, CH, 0, 0, len(CH))))) is None


def test_hostile_fragments_are_flagged() -> None:
    bad = bytes([1]) + u24(0xFFFFFF) + u16(0) + u24(0) + u24(10) + bytes(10)  # absurd total length
    over = bytes([1]) + u24(20) + u16(0) + u24(15) + u24(10) + bytes(10)  # past its own total
    r = dtls.analyze(udp([dtls_record(22, bad), dtls_record(22, over)]))
    assert r is not None and "handshake_fragment_inconsistent" in r["tls"]["anomalies"]
    assert r["tls"]["sni"] is None
    json.dumps(r)


def test_record_length_past_datagram() -> None:
    rec = dtls_record(22, dtls_fragment(1, CH, 0, 0, len(CH)))
    cut = rec[:5] + rec[5:11] + u16(len(CH) + 500) + rec[13:]
    t = dtls.analyze(udp([cut]))["tls"]
    assert "record_length_past_datagram" in t["anomalies"]
    assert t["sni"] == "www.example.test"  # what is there still parses


VALID = dtls_record(22, dtls_fragment(1, CH, 0, 0, len(CH)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=8),
       st.integers(1, len(VALID)), st.binary(max_size=200))
def test_fuzz(flips: list[tuple[int, int]], cut: int, server: bytes) -> None:
    data = bytearray(VALID)
    for pos, val in flips:
        data[pos] = val
    r = dtls.analyze(udp([bytes(data[:cut])], [b"\x16\xfe\xfd" + server]))
    if r is not None:
        json.dumps(r)


def test_established_and_alerts() -> None:
    ch = dtls_record(22, dtls_fragment(1, CH, 0, 0, len(CH)))
    sh = server_hello_body(version=0xFEFD, cipher=0xC02B)
    ske = b"\x03\x00\x1d\x20" + bytes(32)
    srv = dtls_record(22, dtls_fragment(2, sh, 1, 0, len(sh))) + dtls_record(22, dtls_fragment(12, ske, 2, 0, len(ske)), seq=1)
    ccs = dtls_record(20, b"\x01")
    fin = dtls_record(22, bytes(40), epoch=1)
    t = dtls.analyze(udp([ch, ccs + fin], [srv, ccs + fin]))["tls"]
    assert t["established"] is True and t["curve"] == "x25519" and t["alerts"] == []
    t = dtls.analyze(udp([ch], [srv, dtls_record(21, b"\x02\x28")]))["tls"]
    assert t["established"] is False
    assert t["alerts"] == [{"dir": "in", "level": "fatal", "description": "handshake_failure"}]
