"""QUIC Initial decryption: RFC test vectors, the illustrated-quic ground truth,
round trips through packets protected here with ``cryptography``, hostile input."""
from __future__ import annotations

import json
import os
from pathlib import Path

import crafted
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_tls import (
    CH_EXTS,
    alpn_ext,
    client_hello_body,
    ext,
    handshake,
    server_hello_body,
    sni_ext,
    u16,
)

from netan.analyzers import fingerprints as fp
from netan.analyzers import quic, tls
from netan.sample import FlowSample

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
ILLUSTRATED = CORPUS / "illustrated-quic" / "captures" / "caps"

RFC_DCID = bytes.fromhex("8394c8f03e515708")


@pytest.mark.parametrize("version,server,key,iv,hp", [
    # RFC 9001 Appendix A.1
    (0x00000001, False, "1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c", "9f50449e04a0e810283a1e9933adedd2"),
    (0x00000001, True, "cf3a5331653c364c88f0f379b6067e37", "0ac1493ca1905853b0bba03e", "c206b8d9b9f0f37644430b490eeaa314"),
    # RFC 9369 Appendix A.1
    (0x6B3343CF, False, "8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f", "45b95e15235d6f45a6b19cbcb0294ba9"),
    (0x6B3343CF, True, "82db637861d55e1d011f19ea71d5d2a7", "dd13c276499c0249d3310652", "edf6d05c83121201b436e16877593c3a"),
])
def test_initial_keys_rfc_vectors(version: int, server: bool, key: str, iv: str, hp: str) -> None:
    k = quic.initial_keys(RFC_DCID, quic.VERSIONS[version], server)
    assert (k.key.hex(), k.iv.hex(), k.hp.hex()) == (key, iv, hp)


@pytest.mark.skipif(not ILLUSTRATED.is_dir(), reason="illustrated-quic corpus not present")
def test_illustrated_quic_crypto_streams() -> None:
    """Decrypted CRYPTO bytes equal the published plaintext hellos byte for byte."""
    dgram_c = (ILLUSTRATED / "dgram01_c01").read_bytes()
    dgram_s = (ILLUSTRATED / "dgram02_s01").read_bytes()
    first = quic._first_initial([dgram_c])
    an: list[str] = []
    _, frames, _ = quic.decrypt_initials([dgram_c], [first.dcid], False, an)
    assert quic._reassemble(frames) == (ILLUSTRATED / "crypto_clienthello").read_bytes()
    _, sframes, _ = quic.decrypt_initials([dgram_s], [first.dcid], True, an)
    assert quic._reassemble(sframes) == (ILLUSTRATED / "crypto_serverhello").read_bytes()
    assert an == []


@pytest.mark.skipif(not ILLUSTRATED.is_dir(), reason="illustrated-quic corpus not present")
def test_illustrated_quic_flow() -> None:
    from pcap_samples import flow_samples

    (s,) = [s for s in flow_samples(ILLUSTRATED.parent / "capture.pcap") if s.proto == "udp"]
    r = quic.analyze(s)
    t = r["tls"]
    assert r["l7"] == "quic" and t["version"] == "quic-v1"
    assert t["sni"] == "example.ulfheim.net" and t["alpn"] == ["ping/1.0"]
    assert t["cipher"] == "TLS_AES_128_GCM_SHA256" and t["tls_version"] == "TLSv1.3"
    assert t["ja4"].startswith("q13d03")
    assert t["cert"] is None and t["cert_visibility"] == "encrypted"


# ---- protecting packets here (the inverse of what quic.py does) -------------------------
def varint(n: int) -> bytes:
    if n < 0x40:
        return bytes([n])
    if n < 0x4000:
        return (n | 0x4000).to_bytes(2, "big")
    return (n | 0x80000000).to_bytes(4, "big")


def protect_initial(version: int, dcid: bytes, scid: bytes, pn: int, payload: bytes, server: bool = False,
                    key_dcid: bytes | None = None) -> bytes:
    """Build one protected Initial packet (RFC 9001 §5.3, §5.4; RFC 9369 for v2)."""
    qv = quic.VERSIONS[version]
    keys = quic.initial_keys(key_dcid or dcid, qv, server)
    pn_len = 2
    first = 0xC0 | (qv.initial_type << 4) | (pn_len - 1)
    payload = payload + bytes(max(0, 20 - len(payload)))  # room for the header-protection sample
    length = pn_len + len(payload) + 16
    header = (bytes([first]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
              + varint(0) + varint(length) + pn.to_bytes(pn_len, "big"))
    nonce = (int.from_bytes(keys.iv, "big") ^ pn).to_bytes(12, "big")
    sealed = AESGCM(keys.key).encrypt(nonce, payload, header)
    pn_off = len(header) - pn_len
    sample = sealed[4 - pn_len : 4 - pn_len + 16]
    enc = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor()
    mask = enc.update(sample) + enc.finalize()
    prot = bytearray(header)
    prot[0] ^= mask[0] & 0x0F
    for i in range(pn_len):
        prot[pn_off + i] ^= mask[1 + i]
    return bytes(prot) + sealed


def crypto_frame(offset: int, data: bytes) -> bytes:
    return b"\x06" + varint(offset) + varint(len(data)) + data


def udp_sample(client: list[bytes], server: list[bytes] = ()) -> FlowSample:
    return crafted.udp_sample(client, server)


QUIC_CH = handshake(1, client_hello_body(
    ciphers=[0x1301, 0x1302, 0x1303],
    extensions=[sni_ext(b"quic.example.test"), alpn_ext([b"h3"]), ext(57, b"\x01\x02"), CH_EXTS[1], CH_EXTS[3],
                ext(43, b"\x02\x03\x04")],
))


@pytest.mark.parametrize("version,name", [(0x00000001, "quic-v1"), (0x6B3343CF, "quic-v2"), (0xFF00001D, "quic-draft29")])
def test_client_hello_spanning_datagrams_out_of_order(version: int, name: str) -> None:
    dcid, scid = os.urandom(8), os.urandom(5)
    cut1, cut2 = 50, 120
    # Packet 0 carries the middle and the start (reversed), packet 1 the tail.
    p0 = protect_initial(version, dcid, scid, 0, crypto_frame(cut1, QUIC_CH[cut1:cut2]) + b"\x00" * 3
                         + crypto_frame(0, QUIC_CH[:cut1]))
    p1 = protect_initial(version, dcid, scid, 1, b"\x01" + crypto_frame(cut2, QUIC_CH[cut2:]) + bytes(30))
    sh = handshake(2, server_hello_body(cipher=0x1302, extensions=[ext(43, u16(0x0304))]))
    ack = b"\x02" + varint(1) + varint(0) + varint(0) + varint(1)
    # The server's Initial is keyed by the client's first DCID (RFC 9001 §5.2);
    # its header carries the client's SCID as DCID, which must not matter.
    s_init = protect_initial(version, scid, os.urandom(8), 0, ack + crypto_frame(0, sh), server=True, key_dcid=dcid)
    r = quic.analyze(udp_sample([p0, p1], [s_init]))
    t = r["tls"]
    expected = tls.parse_client_hello(QUIC_CH[4:])
    assert t["version"] == name and t["sni"] == "quic.example.test" and t["alpn"] == ["h3"]
    assert t["ja4"] == fp.ja4(expected, "q") and t["ja4"].startswith("q13d0306h3_")
    assert t["cipher"] == "TLS_AES_256_GCM_SHA384" and t["tls_version"] == "TLSv1.3"
    assert t["client_initial_dcid"] == dcid.hex() and t["anomalies"] == []


def test_coalesced_packets_in_one_datagram() -> None:
    dcid, scid = os.urandom(8), os.urandom(8)
    p0 = protect_initial(1, dcid, scid, 0, crypto_frame(0, QUIC_CH[:60]))
    p1 = protect_initial(1, dcid, scid, 1, crypto_frame(60, QUIC_CH[60:]))
    t = quic.analyze(udp_sample([p0 + p1]))["tls"]
    assert t["sni"] == "quic.example.test"


def test_wrong_keys_are_flagged_not_fatal() -> None:
    dcid = os.urandom(8)
    pkt = bytearray(protect_initial(1, dcid, b"", 0, crypto_frame(0, QUIC_CH)))
    pkt[-1] ^= 0xFF  # break the AEAD tag
    t = quic.analyze(udp_sample([bytes(pkt)]))["tls"]
    assert t["sni"] is None and "initial_decrypt_failed" in t["anomalies"]


@pytest.mark.parametrize("dgram", [
    b"", b"\x00" * 40, b"\xc0\x00\x00\x00\x01", b"\xc0\x00\x00\x00\x01\xff" + bytes(60),
    b"\xc0\x00\x00\x00\x01\x08" + bytes(8) + b"\x00\xff\xff\xff\xff\xff\xff\xff\xff",
    bytes.fromhex("12340100000100000000000003777777076578616d706c6503636f6d0000010001"),  # DNS
])
def test_not_quic_or_malformed(dgram: bytes) -> None:
    r = quic.analyze(udp_sample([dgram]))
    assert r is None or (r["tls"]["sni"] is None and json.dumps(r))


def test_tcp_is_never_quic() -> None:
    p = protect_initial(1, os.urandom(8), b"", 0, crypto_frame(0, QUIC_CH))
    assert quic.analyze(FlowSample("tcp", "a", 1, "b", 2, p)) is None


VALID = protect_initial(1, bytes(range(8)), b"\x01\x02", 0, crypto_frame(0, QUIC_CH))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=6), st.integers(1, len(VALID)))
def test_fuzz_mutated_initials(flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(VALID)
    for pos, val in flips:
        data[pos] = val
    r = quic.analyze(udp_sample([bytes(data[:cut])]))
    if r is not None:
        json.dumps(r)


def _chlo(tags: list[tuple[bytes, bytes]], count: int | None = None) -> bytes:
    index, values, end = b"", b"", 0
    for tag, value in tags:
        end += len(value)
        index += tag.ljust(4, b"\x00") + end.to_bytes(4, "little")
        values += value
    n = len(tags) if count is None else count
    return b"CHLO" + n.to_bytes(2, "little") + b"\x00\x00" + index + values


def gquic_packet(chlo: bytes) -> bytes:
    # Q046 long header, 8-byte DCID, 4-byte packet number, 12-byte hash, STREAM frame.
    return b"\xc3Q046\x50" + bytes(8) + b"\x00\x00\x00\x01" + bytes(12) + b"\xa0\x01" + chlo


def test_gquic_chlo_sni_user_agent_and_cyu() -> None:
    chlo = _chlo([(b"PAD", b"-" * 20), (b"SNI", b"g.example.test"), (b"VER", b"Q046"), (b"UAID", b"Chrome/1\x1b")])
    t = quic.analyze(udp_sample([gquic_packet(chlo)]))["tls"]
    assert t["version"] == "gquic-Q046" and t["sni"] == "g.example.test"
    assert t["user_agent"] == "Chrome/1\\x1b" and "user_agent_control_chars" in t["anomalies"]
    assert t["cyu_string"] == "46,PAD-SNI-VER-UAID"
    import hashlib

    assert t["cyu"] == hashlib.md5(b"46,PAD-SNI-VER-UAID").hexdigest()


def test_gquic_hostile_chlo() -> None:
    # Offsets running backwards, then an absurd tag count: flagged, bounded.
    bad = b"CHLO" + (2).to_bytes(2, "little") + b"\x00\x00" + b"SNI\x00" + (50).to_bytes(4, "little") + b"VER\x00" + (
        10).to_bytes(4, "little") + bytes(60)
    t = quic.analyze(udp_sample([gquic_packet(bad)]))["tls"]
    assert "gquic_chlo_offsets_inconsistent" in t["anomalies"]
    many = _chlo([(b"PAD", b"")], count=60000)
    t = quic.analyze(udp_sample([gquic_packet(many)]))["tls"]
    assert "gquic_too_many_tags" in t["anomalies"]
    # A version-looking tag without any CHLO is not enough.
    assert quic.analyze(udp_sample([b"\xc3Q046" + bytes(40)])) is None
