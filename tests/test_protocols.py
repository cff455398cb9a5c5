"""The dispatcher: L7 by structure (not port), stable keys, optional TLS-family analyzers."""
from __future__ import annotations

import json
import os
import struct
import sys
import types

import pytest
from dnslib import DNSRecord

from framing_pcap import sample_from_messages
from netan.analyzers import protocols
from netan.sample import IN, OUT

KEYS = {"l7", "framing", "framing_evidence", "tls", "http", "dns", "ssh"}


@pytest.fixture
def no_tls_family(monkeypatch: pytest.MonkeyPatch) -> None:
    """Judge our own detection alone, whatever the TLS helper's modules do."""
    monkeypatch.setattr(protocols, "_optional", lambda module, sample: None)


@pytest.mark.parametrize(
    "convo,proto,port,l7",
    [
        ([(OUT, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), (IN, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")], "tcp", 8443, "http"),
        ([(OUT, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")], "tcp", 443, "http2"),
        ([(IN, b"SSH-2.0-OpenSSH_9.6\r\n"), (OUT, b"SSH-2.0-OpenSSH_9.6\r\n")], "tcp", 80, "ssh"),
        ([(OUT, DNSRecord.question("example.org").pack())], "udp", 40000, "dns"),
        ([(OUT, (lambda q: struct.pack(">H", len(q)) + q)(DNSRecord.question("example.org").pack()))], "tcp", 853, "dns"),
        ([(OUT, os.urandom(300)), (IN, os.urandom(200))], "tcp", 53, "unknown"),
        ([(OUT, os.urandom(300))], "udp", 53, "unknown"),
        ([(OUT, b"GET / HTTP/1.1\r\n")], "udp", 80, "unknown"),
    ],
)
def test_l7_by_structure(no_tls_family: None, convo, proto: str, port: int, l7: str) -> None:
    r = protocols.analyze(sample_from_messages(convo, proto=proto, dst=("192.0.2.1", port)))
    assert set(r) == KEYS
    assert r["l7"] == l7
    json.dumps(r)


def test_tls_records_mid_stream_without_handshake(no_tls_family: None) -> None:
    recs = lambda: b"".join(bytes([23, 3, 3]) + struct.pack(">H", n) + os.urandom(n) for n in (120, 400))
    r = protocols.analyze(sample_from_messages([(OUT, recs()), (IN, recs())], dst=("192.0.2.1", 5000)))
    assert r["l7"] == "tls" and r["framing"] == ["tls_records"]


def test_tls_family_result_is_merged(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("netan.analyzers.tls")
    fake.analyze = lambda sample: {"l7": "tls", "tls": {"version": "TLS 1.3", "sni": "x.example"}}
    monkeypatch.setitem(sys.modules, "netan.analyzers.tls", fake)
    r = protocols.analyze(sample_from_messages([(OUT, b"\x16\x03\x01\x00\x05hello")]))
    assert r["l7"] == "tls" and r["tls"] == {"version": "TLS 1.3", "sni": "x.example"}


def test_failing_tls_family_does_not_break(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("netan.analyzers.tls")

    def boom(sample):
        raise RuntimeError("bug")

    fake.analyze = boom
    monkeypatch.setitem(sys.modules, "netan.analyzers.tls", fake)
    r = protocols.analyze(sample_from_messages([(OUT, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")]))
    assert r["l7"] == "http" and r["http"]["host"] == "a"


def test_escape_text() -> None:
    assert protocols.escape_text(b"a\x00b\x1b\x7f\xc2\x85", 64) == "a\\x00b\\x1b\\x7f\\x85"
    assert protocols.escape_text("x" * 100, 10) == "x" * 9 + "…"
    assert protocols.escape_text(b"\xff\xfe", 64) == "\\xff\\xfe"


def test_h2c_data_frames_are_units(no_tls_family: None) -> None:
    def frame(ftype: int, payload: bytes, sid: int = 1, flags: int = 0) -> bytes:
        return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload

    body = os.urandom(100)
    grpc = b"\x00" + struct.pack(">I", len(body)) + body
    out = protocols.H2_PREFACE + frame(4, b"") + frame(1, b"\x82\x86", 1, 4) + frame(0, grpc, 1, 1)
    r = protocols.analyze(sample_from_messages([(OUT, out), (IN, frame(4, b""))]))
    assert r["l7"] == "http2" and r["http"]["data_frames"] == 1


def test_http_output_never_carries_body_bytes(no_tls_family: None) -> None:
    secret = b"lat=48.137154&lon=11.576124&sms=the+code+is+4471"
    req = b"POST /c HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" % len(secret) + secret
    text = json.dumps(protocols.analyze(sample_from_messages([(OUT, req)])))
    assert "48.137154" not in text and "4471" not in text
    assert '"body_class": "text"' in text


def _rtp(seq: int, ssrc: bytes, payload: bytes) -> bytes:
    return bytes([0x80, 111]) + seq.to_bytes(2, "big") + (seq * 960).to_bytes(4, "big") + ssrc + payload


def test_srtp_media_is_rtp_and_not_framed(no_tls_family: None) -> None:
    ssrc = os.urandom(4)
    grams = [(OUT, _rtp(1000 + i, ssrc, os.urandom(160) + os.urandom(10))) for i in range(20)]
    r = protocols.analyze(sample_from_messages(grams, proto="udp", dst=("192.0.2.1", 50000)))
    assert r["l7"] == "rtp" and r["framing"] == []


def test_stun_binding() -> None:
    body = b"\x00\x06\x00\x04abcd"  # USERNAME attribute
    msg = b"\x00\x01" + len(body).to_bytes(2, "big") + b"\x21\x12\xa4\x42" + os.urandom(12) + body
    r = protocols.analyze(sample_from_messages([(OUT, msg)], proto="udp", dst=("192.0.2.1", 3478)))
    assert r["l7"] == "stun"


def test_random_udp_is_not_rtp_or_stun(no_tls_family: None) -> None:
    for _ in range(50):
        grams = [(OUT, os.urandom(100 + i)) for i in range(10)]
        assert protocols.analyze(sample_from_messages(grams, proto="udp"))["l7"] == "unknown"


def test_wireguard_is_recognised_and_not_framed(no_tls_family: None) -> None:
    """WireGuard's own framing (16-byte padding) is explained, not a finding."""
    init = b"\x01\x00\x00\x00" + os.urandom(144)
    resp = b"\x02\x00\x00\x00" + os.urandom(88)
    data = [b"\x04\x00\x00\x00" + os.urandom(4) + (i).to_bytes(8, "little") + os.urandom(16 * (3 + i) + 16) for i in range(8)]
    grams = [(OUT, init), (IN, resp)] + [(OUT if i % 2 else IN, d) for i, d in enumerate(data)]
    r = protocols.analyze(sample_from_messages(grams, proto="udp", dst=("192.0.2.1", 51820)))
    assert r["l7"] == "wireguard" and r["framing"] == []
