"""Byte-level tests of the TLS analyzer: records, hellos, certificates, hostile input.

The builders at the top write TLS structures by the RFCs' layouts (RFC 8446
§4.1.2/§4.1.3/§5.1, RFC 6066 §3, RFC 7301 §3.1) so every field is under the
test's control; real-library handshakes live in test_tls_real_handshakes.py.
"""
from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings, strategies as st

from netan.analyzers import tls
from netan.analyzers.x509info import safe_text, summarize
from netan.sample import IN, OUT, FlowSample, PacketMark


# ---- builders ---------------------------------------------------------------------
def u8(n: int) -> bytes:
    return n.to_bytes(1, "big")


def u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def u24(n: int) -> bytes:
    return n.to_bytes(3, "big")


def ext(etype: int, data: bytes) -> bytes:
    return u16(etype) + u16(len(data)) + data


def sni_ext(name: bytes) -> bytes:
    entry = u8(0) + u16(len(name)) + name
    return ext(0, u16(len(entry)) + entry)


def alpn_ext(protos: list[bytes]) -> bytes:
    body = b"".join(u8(len(p)) + p for p in protos)
    return ext(16, u16(len(body)) + body)


def u16_list_ext(etype: int, values: list[int], len_bytes: int = 2) -> bytes:
    body = b"".join(u16(v) for v in values)
    return ext(etype, len(body).to_bytes(len_bytes, "big") + body)


def client_hello_body(
    *, version: int = 0x0303, ciphers: list[int] | None = None, extensions: list[bytes] | None = None,
    session_id: bytes = b"", cookie: bytes | None = None, raw_ext_block: bytes | None = None,
) -> bytes:
    ciphers = [0x1301, 0x1302, 0xC02F] if ciphers is None else ciphers
    body = u16(version) + bytes(range(32)) + u8(len(session_id)) + session_id
    if cookie is not None:
        body += u8(len(cookie)) + cookie
    body += u16(2 * len(ciphers)) + b"".join(u16(c) for c in ciphers) + b"\x01\x00"
    if raw_ext_block is not None:
        return body + raw_ext_block
    exts = b"".join(extensions or [])
    return body + u16(len(exts)) + exts


def server_hello_body(*, version: int = 0x0303, cipher: int = 0xC02F, extensions: list[bytes] | None = None,
                      session_id: bytes = b"", random: bytes | None = None) -> bytes:
    exts = b"".join(extensions or [])
    return (u16(version) + (random or bytes(32)) + u8(len(session_id)) + session_id + u16(cipher) + b"\x00"
            + u16(len(exts)) + exts)


def handshake(msg_type: int, body: bytes) -> bytes:
    return u8(msg_type) + u24(len(body)) + body


def record(ctype: int, payload: bytes, version: int = 0x0303) -> bytes:
    return u8(ctype) + u16(version) + u16(len(payload)) + payload


def certificate_msg(ders: list[bytes]) -> bytes:
    lst = b"".join(u24(len(d)) + d for d in ders)
    return handshake(11, u24(len(lst)) + lst)


def sample(out: bytes, inb: bytes = b"", *, proto: str = "tcp", packets: tuple[PacketMark, ...] | None = None,
           gaps_out: tuple[tuple[int, int], ...] = ()) -> FlowSample:
    if packets is None:
        marks = []
        if out:
            marks.append(PacketMark(OUT, 1.0, 0, len(out)))
        if inb:
            marks.append(PacketMark(IN, 1.1, 0, len(inb)))
        packets = tuple(marks)
    return FlowSample(proto, "10.0.0.1", 40000, "10.0.0.2", 443, out, inb, gaps_out, (), packets)


def make_cert(cn: str = "example.test", sans: list[str] | None = None, key=None, self_signed: bool = True) -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
         .serial_number(0x8A07E08D4AB50A7B).not_valid_before(now).not_valid_after(now + dt.timedelta(days=30)))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    signer = key if self_signed else ec.generate_private_key(ec.SECP256R1())
    return b.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


CH_EXTS = [
    sni_ext(b"www.example.test"),
    u16_list_ext(10, [0x001D, 0x0017]),
    ext(11, b"\x01\x00"),
    u16_list_ext(13, [0x0403, 0x0804]),
    alpn_ext([b"h2", b"http/1.1"]),
    u16_list_ext(43, [0x0304, 0x0303], len_bytes=1),
]


def tls12_flow(cert: bytes | None = None) -> FlowSample:
    ch = record(22, handshake(1, client_hello_body(extensions=CH_EXTS)), version=0x0301)
    sh = handshake(2, server_hello_body(cipher=0xC02F, extensions=[alpn_ext([b"h2"])]))
    flight = sh + certificate_msg([cert or make_cert()]) + handshake(12, b"\x03\x00\x17\x41" + bytes(65)) + handshake(14, b"")
    inb = record(22, flight) + record(20, b"\x01") + record(22, bytes(40)) + record(23, bytes(30))
    out = ch + record(22, handshake(16, bytes(33))) + record(20, b"\x01") + record(22, bytes(40)) + record(23, bytes(50))
    return sample(out, inb)


# ---- the happy path -----------------------------------------------------------------
def test_tls12_flow_fields() -> None:
    r = tls.analyze(tls12_flow(make_cert("srv.example.test", ["srv.example.test", "alt.example.test"])))
    assert r is not None and r["l7"] == "tls"
    t = r["tls"]
    assert t["version"] == "TLSv1.2"
    assert t["sni"] == "www.example.test"
    assert t["alpn"] == ["h2", "http/1.1"] and t["alpn_negotiated"] == "h2"
    assert t["cipher"] == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert t["client_versions"] == ["TLSv1.3", "TLSv1.2"]
    assert t["curve"] == "secp256r1"  # from ServerKeyExchange named_curve 0x0017
    assert t["cert"]["subject"] == "CN=srv.example.test" and t["cert"]["self_signed"] is True
    assert (t["cert"]["key_type"], t["cert"]["key_bits"]) == ("ec", 256)
    assert t["cert"]["sans"] == ["srv.example.test", "alt.example.test"]
    assert t["cert"]["serial"] == "008A07E08D4AB50A7B"
    assert t["established"] is True and t["resumed"] is False
    assert t["ja4"].startswith("t13d0306h2_") and len(t["ja3"]) == 32 and len(t["ja3s"]) == 32
    assert t["anomalies"] == []
    json.dumps(r)  # JSON-ready


def test_record_list_like_joy_srlt() -> None:
    r = tls.analyze(tls12_flow())
    recs = r["tls_records"]
    assert [x["dir"] for x in recs[:1]] == ["out"]
    assert recs[0] == {"dir": "out", "ts": 1.0, "content_type": 22, "version": "0x0301",
                       "length": recs[0]["length"], "handshake": [1]}
    ins = [x for x in recs if x["dir"] == "in"]
    assert ins[0]["handshake"] == [2, 11, 12, 14]  # four messages in one record
    assert [x["content_type"] for x in ins] == [22, 20, 22, 23]
    assert "handshake" not in ins[2]  # encrypted Finished after CCS is not parsed


def test_record_times_follow_packets() -> None:
    ch = record(22, handshake(1, client_hello_body(extensions=CH_EXTS)))
    app = record(23, bytes(20))
    out = ch + app
    marks = (PacketMark(OUT, 5.0, 0, len(ch)), PacketMark(OUT, 7.5, len(ch), len(app)))
    r = tls.analyze(sample(out, packets=marks))
    assert [x["ts"] for x in r["tls_records"]] == [5.0, 7.5]


def test_handshake_fragmented_over_records_and_packets() -> None:
    body = handshake(1, client_hello_body(extensions=CH_EXTS))
    frags = [body[:10], body[10:57], body[57:]]
    out = b"".join(record(22, f) for f in frags)
    # TCP cut at odd places: one packet per 7 bytes.
    marks = tuple(PacketMark(OUT, 1.0 + i, off, min(7, len(out) - off)) for i, off in enumerate(range(0, len(out), 7)))
    r = tls.analyze(sample(out, packets=marks))
    assert r["tls"]["sni"] == "www.example.test" and r["tls"]["anomalies"] == []
    assert r["tls"]["ja4"] == tls.analyze(sample(record(22, body)))["tls"]["ja4"]


def test_tls_on_any_port_and_after_proxy_preamble() -> None:
    ch = record(22, handshake(1, client_hello_body(extensions=CH_EXTS)))
    connect = b"CONNECT www.example.test:443 HTTP/1.1\r\nHost: www.example.test\r\n\r\n"
    reply = b"HTTP/1.1 200 Connection established\r\n\r\n"
    sh = record(22, handshake(2, server_hello_body()))
    s = FlowSample("tcp", "10.0.0.1", 40000, "10.0.0.2", 8080, connect + ch, reply + sh)
    r = tls.analyze(s)
    assert r["tls"]["sni"] == "www.example.test"
    assert r["tls"]["preamble"] == {"out": len(connect), "in": len(reply)}
    assert r["tls"]["version"] == "TLSv1.2"


@pytest.mark.parametrize("out,inb", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n"),
    (b"SSH-2.0-OpenSSH_9.6\r\n", b"SSH-2.0-OpenSSH_9.6\r\n"),
    (bytes(range(256)) * 4, bytes(reversed(range(256))) * 4),
    (b"", b""),
    (b"\x16\x03\x01", b""),  # a record header fragment is not yet TLS
    (b"\x17\x03\x03\x00\x05hello", b""),  # one record alone is too little to call it TLS
])
def test_not_tls(out: bytes, inb: bytes) -> None:
    assert tls.analyze(sample(out, inb)) is None


def test_udp_is_never_tls() -> None:
    ch = record(22, handshake(1, client_hello_body(extensions=CH_EXTS)))
    assert tls.analyze(sample(ch, proto="udp")) is None


def test_mid_stream_capture_is_tls_without_handshake() -> None:
    out = record(23, bytes(40)) + record(23, bytes(100)) + record(23, bytes(7))
    inb = record(23, bytes(33)) + record(23, bytes(1000))
    r = tls.analyze(sample(out, inb))
    assert r["l7"] == "tls" and r["tls"]["handshake_seen"] is False and r["tls"]["version"] is None


def test_tls13_certificate_not_observable_and_resumption_by_psk() -> None:
    ch = record(22, handshake(1, client_hello_body(extensions=CH_EXTS + [ext(41, bytes(10))])), 0x0301)
    sh = record(22, handshake(2, server_hello_body(cipher=0x1301, session_id=b"", extensions=[
        ext(43, u16(0x0304)), ext(51, u16(0x001D) + u16(32) + bytes(32)), ext(41, u16(0))])))
    inb = sh + record(20, b"\x01") + record(23, bytes(90)) + record(23, bytes(60))
    out = ch + record(20, b"\x01") + record(23, bytes(53))
    t = tls.analyze(sample(out, inb))["tls"]
    assert t["version"] == "TLSv1.3" and t["cipher"] == "TLS_AES_128_GCM_SHA256"
    assert t["cert"] is None and t["cert_visibility"] == "encrypted"
    assert t["resumed"] is True and t["curve"] == "x25519" and t["established"] is True


def test_plaintext_and_encrypted_alerts() -> None:
    ch = record(22, handshake(1, client_hello_body(extensions=CH_EXTS)))
    inb = record(21, b"\x02\x28")  # fatal handshake_failure
    t = tls.analyze(sample(ch + record(21, b"\x01\x00"), inb))["tls"]
    assert {"dir": "in", "level": "fatal", "description": "handshake_failure"} in t["alerts"]
    assert {"dir": "out", "level": "warning", "description": "close_notify"} in t["alerts"]
    assert t["established"] is False
    flow = tls12_flow()
    enc = FlowSample("tcp", "a", 1, "b", 2, flow.out + record(21, bytes(26)), flow.inb)
    assert {"dir": "out", "encrypted": True} in tls.analyze(enc)["tls"]["alerts"]


def test_sslv2_client_hello() -> None:
    specs = bytes.fromhex("010080") + bytes.fromhex("000004")
    msg = b"\x01" + u16(0x0002) + u16(len(specs)) + u16(0) + u16(16) + specs + bytes(16)
    out = bytes([0x80 | (len(msg) >> 8), len(msg) & 0xFF]) + msg
    t = tls.analyze(sample(out))["tls"]
    assert t["sslv2_client_hello"] is True and t["client_versions"] == ["SSLv2"] and t["client_ciphers"] == 2


# ---- hostile and malformed input ------------------------------------------------------
def _ch_flow(body: bytes, *, rec_len: int | None = None) -> FlowSample:
    hs = handshake(1, body)
    if rec_len is not None:
        return sample(u8(22) + u16(0x0301) + u16(rec_len) + hs)
    # RFC 8446 §5.1: at most 2^14 bytes per record, so split big hellos.
    return sample(b"".join(record(22, hs[i : i + 16384], 0x0301) for i in range(0, len(hs), 16384)))


def test_hostile_sni_is_escaped_bounded_and_flagged() -> None:
    evil = b"\x1b[31mred\x00\r\nX-Injected: 1\xe2\x80\xaehidden" + b"a" * 600
    t = tls.analyze(_ch_flow(client_hello_body(extensions=[sni_ext(evil)])))["tls"]
    sni = t["sni"]
    assert len(sni) <= tls.MAX_SNI_CHARS
    assert all(ord(c) >= 0x20 and c not in "\x7f\u202e" for c in sni)
    assert sni.startswith("\\x1b[31mred\\x00\\x0d\\x0aX-Injected")
    for flag in ("sni_not_ascii", "sni_control_chars", "sni_truncated", "sni_too_long", "sni_invalid_chars"):
        assert flag in t["anomalies"]


def test_hostile_alpn_is_escaped() -> None:
    t = tls.analyze(_ch_flow(client_hello_body(extensions=[alpn_ext([b"\x00\xff\x1b", b"h2"])])))["tls"]
    assert t["alpn"] == ["\\x00\\xff\\x1b", "h2"]
    assert "alpn_non_printable" in t["anomalies"]
    assert t["ja4"][8:10] == "0b"  # JA4 spec: hex of the first ALPN's first/last byte


def test_record_length_past_end_is_truncation_not_crash() -> None:
    body = client_hello_body(extensions=CH_EXTS)
    s = _ch_flow(body, rec_len=5000)  # record claims more than the sample has
    t = tls.analyze(s)["tls"]
    assert t["sni"] == "www.example.test"


def test_nested_lengths_disagree() -> None:
    exts = b"".join(CH_EXTS)
    # Extensions block claims 40 bytes more than the message holds.
    body = client_hello_body(raw_ext_block=u16(len(exts) + 40) + exts)
    t = tls.analyze(_ch_flow(body))["tls"]
    assert "extensions_length_past_end" in t["anomalies"]
    assert t["sni"] == "www.example.test"  # parsed as far as valid
    # SNI list length that disagrees with its extension length.
    bad_sni = ext(0, u16(200) + u8(0) + u16(4) + b"evil")
    t = tls.analyze(_ch_flow(client_hello_body(extensions=[bad_sni])))["tls"]
    assert "sni_length_mismatch" in t["anomalies"]
    # Cipher suites vector longer than the whole message.
    body = u16(0x0303) + bytes(32) + b"\x00" + u16(60000) + b"\x13\x01"
    t = tls.analyze(_ch_flow(body))["tls"]
    assert "cipher_suites_past_end" in t["anomalies"] and t["sni"] is None


def test_absurd_extension_count_is_bounded() -> None:
    many = b"".join(ext(0x1234 + (i % 7), b"") for i in range(15000))
    body = client_hello_body(raw_ext_block=u16(len(many) % 65536) + many)
    start = time.perf_counter()
    t = tls.analyze(_ch_flow(body))["tls"]
    assert time.perf_counter() - start < 1.0
    assert "too_many_extensions" in t["anomalies"]
    assert "duplicate_extension" in t["anomalies"]


def test_record_flood_is_bounded() -> None:
    ch = record(22, handshake(1, client_hello_body(extensions=CH_EXTS)))
    out = ch + record(23, b"x") * 200000
    start = time.perf_counter()
    r = tls.analyze(sample(out))
    assert time.perf_counter() - start < 1.0
    assert len([x for x in r["tls_records"] if x["dir"] == "out"]) == tls.MAX_RECORDS_REPORTED
    assert "record_cap_reached" in r["tls"]["anomalies"]


def test_sample_gap_stops_parsing() -> None:
    flow = tls12_flow()
    gap_at = 5 + 30
    s = FlowSample("tcp", "a", 1, "b", 2, flow.out, flow.inb, ((gap_at, 10),), (), flow.packets)
    t = tls.analyze(s)["tls"]
    assert "sample_gap" in t["anomalies"]


def test_hostile_certificate_strings_and_san_flood() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = make_cert("evil\x1b[2J\u202egnp.exe", [f"h{i}.example.test" for i in range(200)], key=key)
    info = summarize(der)
    assert "\x1b" not in info["subject"] and "\\x1b" in info["subject"] and "\\u202e" in info["subject"]
    assert len(info["sans"]) == 64 and info["san_count"] == 200
    assert "subject_control_chars" in info["anomalies"] and "sans_truncated" in info["anomalies"]
    assert info["self_signed"] is True


def test_not_self_signed_when_signature_does_not_verify() -> None:
    info = summarize(make_cert("x", self_signed=False))
    assert info["self_signed"] is False and "self_issued_signature_invalid" in info["anomalies"]


def test_rsa_key_bits() -> None:
    info = summarize(make_cert("rsa", key=rsa.generate_private_key(public_exponent=65537, key_size=1024)))
    assert (info["key_type"], info["key_bits"]) == ("rsa", 1024)


@pytest.mark.parametrize("der", [b"", b"\x30\x03\x02\x01\x01", bytes(500), b"\x30\x82\xff\xff" + bytes(100)])
def test_garbage_certificate(der: bytes) -> None:
    info = summarize(der)
    assert "error" in info and info["sha1"] and "unparsable" in info["anomalies"]


def test_certificate_with_lazily_failing_field() -> None:
    """cryptography parses names lazily; a bad tag inside the issuer must not escape."""
    der = bytearray(make_cert("lazy.example.test"))
    name = x509.load_der_x509_certificate(bytes(der)).issuer.public_bytes()
    at = bytes(der).find(name)  # the issuer comes before the subject in the TBS
    tag_at = at + name.index(b"lazy") - 2  # the string tag of the CN value
    der[tag_at] = 0x5B  # an APPLICATION tag where a string belongs
    info = summarize(bytes(der))
    assert info["sha1"] and "issuer_unparsable" in info["anomalies"]
    assert info["subject"] == "CN=lazy.example.test"


def test_garbage_certificate_in_flow_is_flagged() -> None:
    ch = record(22, handshake(1, client_hello_body(extensions=CH_EXTS)))
    inb = record(22, handshake(2, server_hello_body()) + certificate_msg([b"\x30\x03junk"]))
    t = tls.analyze(sample(ch, inb))["tls"]
    assert t["cert"]["error"] and "cert_unparsable" in t["anomalies"]


@pytest.mark.parametrize("text,limit,expected,flags", [
    ("plain.example", 64, "plain.example", []),
    ("a\\b", 64, "a\\\\b", []),
    ("x\u202ey", 64, "x\\u202ey", ["control_chars"]),
    ("\x00" * 10, 12, "\\x00\\x00\\x00", ["control_chars", "truncated"]),
    ("é€", 64, "é€", []),
])
def test_safe_text(text: str, limit: int, expected: str, flags: list[str]) -> None:
    assert safe_text(text, limit) == (expected, flags)


# ---- fuzzing ----------------------------------------------------------------------------
VALID_OUT = tls12_flow().out
VALID_IN = tls12_flow().inb


def _check_output(r: dict | None) -> None:
    if r is None:
        return
    json.dumps(r)
    t = r["tls"]
    for key in ("version", "sni", "alpn", "cipher", "ja4", "ja3", "ja3s", "cert"):
        assert key in t
    if t["sni"] is not None:
        assert len(t["sni"]) <= tls.MAX_SNI_CHARS and all(ord(c) >= 0x20 and ord(c) != 0x7F for c in t["sni"])
    assert len(t["anomalies"]) <= tls.MAX_ANOMALIES


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(out=mutated(VALID_OUT), inb=mutated(VALID_IN))
def test_fuzz_mutated_handshakes_never_crash(out: bytes, inb: bytes) -> None:
    _check_output(tls.analyze(sample(out, inb)))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.binary(max_size=600))
def test_fuzz_random_bytes_never_crash(out: bytes, inb: bytes) -> None:
    _check_output(tls.analyze(sample(b"\x16\x03\x01" + out, inb)))
    tls.parse_client_hello(out)
    tls.parse_server_hello(inb)


def test_established_not_observable_when_sample_is_cut() -> None:
    """A TLS 1.2 server flight longer than the sample: say "unknown", not "failed"."""
    flow = tls12_flow(make_cert("big.example.test", [f"s{i}.example.test" for i in range(300)]))
    cap = 1500  # smaller than the server's certificate message
    inb = flow.inb[:cap]
    marks = (PacketMark(OUT, 1.0, 0, len(flow.out)), PacketMark(IN, 1.1, 0, len(flow.inb)))
    t = tls.analyze(FlowSample("tcp", "a", 1, "b", 2, flow.out, inb, (), (), marks))["tls"]
    assert t["established"] is None and t["version"] == "TLSv1.2"
    assert t["cert"] is None and t["cert_visibility"] == "truncated"
    # The same flow sampled whole is established.
    assert tls.analyze(flow)["tls"]["established"] is True


def test_roles_backwards_when_capture_missed_the_syn() -> None:
    flow = tls12_flow()
    backwards = FlowSample("tcp", "10.0.0.2", 443, "10.0.0.1", 40000, flow.inb, flow.out, (), (),
                           (PacketMark(OUT, 1.1, 0, len(flow.inb)), PacketMark(IN, 1.0, 0, len(flow.out))))
    r = tls.analyze(backwards)
    straight = tls.analyze(flow)
    assert r["tls"]["client_is_responder"] is True
    for key in ("version", "sni", "cipher", "ja4", "ja3", "ja3s", "cert"):
        assert r["tls"][key] == straight["tls"][key]
    # Records keep the flow's own directions: the ClientHello came from the responder.
    assert r["tls_records"][0]["dir"] == "in" and r["tls_records"][0]["handshake"] == [1]
