"""Encodings of ciphertext (RFC 4648 / RFC 3986) found, decoded and bounded."""
from __future__ import annotations

import base64
import json
import random
import urllib.parse
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from netan.analyzers import encodings

KEY = bytes(range(32))
RNG = random.Random(4648)  # deterministic nonces and plaintexts: no 1-in-250 flakes


@pytest.fixture(autouse=True)
def _reseed(request: pytest.FixtureRequest) -> None:
    RNG.seed(request.node.nodeid)  # same bytes whatever order tests run in


def _ciphertext(n: int) -> bytes:
    nonce = RNG.randbytes(12)
    return nonce + AESGCM(KEY).encrypt(nonce, Path(__file__).read_bytes()[: max(0, n - 28)], None)


ENCODERS = {
    "base64": (base64.b64encode, "base64"),
    "base64-nopad": (lambda d: base64.b64encode(d).rstrip(b"="), "base64"),
    "base64-mime": (base64.encodebytes, "base64"),
    "base64url": (base64.urlsafe_b64encode, "base64url"),
    "base64url-nopad": (lambda d: base64.urlsafe_b64encode(d).rstrip(b"="), "base64url"),
    "base32": (base64.b32encode, "base32"),
    "hex": (lambda d: d.hex().encode(), "hex"),
    "HEX": (lambda d: d.hex().upper().encode(), "hex"),
    "percent": (lambda d: urllib.parse.quote_from_bytes(d).encode(), "percent"),
}


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize("size", [24, 100, 1000])
def test_whole_roundtrip(name: str, size: int) -> None:
    enc, expected = ENCODERS[name]
    ct = _ciphertext(size)
    d = encodings.detect_whole(enc(ct))
    if name.startswith("base64url") and b"-" not in enc(ct) and b"_" not in enc(ct):
        expected = "base64"  # no url-only character: indistinguishable, and the bytes are the same
    assert d is not None and d.encoding == expected
    assert d.data == ct


@pytest.mark.parametrize("name", ["base64", "base64-nopad", "base64url", "base32", "hex", "percent"])
def test_truncated_sample_decodes_prefix(name: str) -> None:
    enc, _ = ENCODERS[name]
    ct = _ciphertext(3000)
    text = enc(ct)
    cut = text[: 1001]  # the sample ends mid-quantum
    d = encodings.detect_whole(cut)
    assert d is not None and len(d.data) >= 390  # percent-encoding expands ~2.5x, hex 2x
    assert ct.startswith(d.data)


def test_bounded_decode() -> None:
    big = base64.b64encode(RNG.randbytes(200_000))
    d = encodings.detect_whole(big)
    assert d is not None and len(d.data) <= encodings.MAX_DECODE


@pytest.mark.parametrize("text", [
    b"The quick brown fox jumps over the lazy dog and keeps running",
    b"HelloWorldThisIsACamelCaseIdentifierWithoutDigitsOrSpacesAtAll",
    b"abc=def=ghi==jkl+mno",  # '=' inside: not base64
    b"%zz%%%41",
    b"{\"key\": \"value\"}",
    b"",
    b"\x00\x01\x02",
])
def test_not_encoded(text: bytes) -> None:
    assert encodings.detect_whole(text) is None


def test_malformed_base64_does_not_crash() -> None:
    for s in (b"QUJD" * 5 + b"=", b"QUJD=" * 5, b"====" * 8, b"Q" * 33, b"QUJ\x00" * 20):
        d = encodings.detect_whole(s)
        assert d is None or isinstance(d.data, bytes)


def test_embedded_in_json_and_form() -> None:
    ct = ChaCha20Poly1305(KEY).encrypt(b"\x00" * 12, RNG.randbytes(300), None)
    body = json.dumps({"device": "pixel", "ts": 1700000000, "blob": base64.b64encode(ct).decode()}).encode()
    d = encodings.find_embedded(body)
    assert d is not None and d.encoding == "base64" and d.data == ct
    assert body[d.start : d.end] == base64.b64encode(ct)
    form = b"id=42&data=" + base64.urlsafe_b64encode(ct).rstrip(b"=") + b"&v=2"
    d2 = encodings.find_embedded(form)
    assert d2 is not None and d2.data == ct
    assert encodings.find_embedded(Path(__file__).read_bytes()) is None
