"""Public keys in the clear, made by real libraries; random bytes and certificates' look-alikes are not keys."""
from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

from netan.analyzers.pubkeys import find_public_keys
from netan.sample import OUT, FlowSample, PacketMark


def spki(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


KEYS = {
    "rsa": (rsa.generate_private_key(public_exponent=65537, key_size=2048), 2048),
    "ec": (ec.generate_private_key(ec.SECP256R1()), 256),
    "ed25519": (ed25519.Ed25519PrivateKey.generate(), 256),
    "x25519": (x25519.X25519PrivateKey.generate(), 256),
}


@pytest.mark.parametrize("name", sorted(KEYS))
@pytest.mark.parametrize("encoding", ["der", "pem", "base64"])
def test_finds_real_keys_in_every_encoding(name, encoding):
    key, bits = KEYS[name]
    der = spki(key)
    if encoding == "der":
        blob = der
    elif encoding == "pem":
        blob = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    else:
        blob = b'{"device_key":"' + base64.b64encode(der) + b'"}'
    data = b"POST /v1/register HTTP/1.1\r\nHost: x\r\n\r\n" + blob + os.urandom(64)
    (found,) = find_public_keys(data)
    assert (found.key_type, found.key_bits, found.encoding) == (name, bits, encoding)


def test_random_bytes_and_ciphertext_are_not_keys():
    for _ in range(200):
        assert find_public_keys(os.urandom(4096)) == []


def test_protocol_dispatcher_reports_public_key_framing():
    from netan.analyzers.protocols import analyze

    body = spki(KEYS["rsa"][0])
    req = (b"POST /v1/register HTTP/1.1\r\nHost: api.example\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    sample = FlowSample("tcp", "10.0.0.1", 40000, "10.0.0.2", 80, out=req,
                        packets=(PacketMark(OUT, 1.0, 0, len(req)),))
    res = analyze(sample)
    assert "public_key" in res["framing"]
    ev = [e for e in res["framing_evidence"] if e["finding"] == "public_key"]
    assert ev and ev[0]["key_type"] == "rsa" and ev[0]["key_bits"] == 2048
