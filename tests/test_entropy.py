"""Entropy honest about sample size: exact expectations checked by simulation, Suricata as an oracle."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from netan.analyzers.entropy import (
    byte_counts,
    entropy,
    entropy_deficit_z,
    expected_random_entropy,
    random_entropy_sd,
    shannon_entropy,
    strip_gaps,
)

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"", None),
        (b"\x00" * 100, 0.0),
        (b"ab" * 50, 1.0),
        (b"abcd" * 25, 2.0),
        (bytes(range(256)), 8.0),
        (bytes(range(256)) * 3, 8.0),
    ],
)
def test_known_values(data: bytes, expected: float | None) -> None:
    got = entropy(data)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-12)


def test_matches_textbook_formula_on_real_file() -> None:
    data = Path(np.__file__).read_bytes()
    counts = byte_counts(data)
    p = counts[counts > 0] / len(data)
    assert shannon_entropy(counts) == pytest.approx(float(-(p * np.log2(p)).sum()), abs=1e-12)


@pytest.mark.parametrize("n", [16, 64, 200, 1024, 4096])
def test_expected_random_entropy_matches_simulation(n: int) -> None:
    rng = np.random.default_rng(n)
    sims = np.array([entropy(rng.bytes(n)) for _ in range(2000)])
    exp, sd = expected_random_entropy(n), random_entropy_sd(n)
    # the mean of 2000 draws has standard error sd/sqrt(2000)
    assert abs(sims.mean() - exp) < 4 * sd / math.sqrt(2000)
    assert sims.std() == pytest.approx(sd, rel=0.1)


def test_short_samples_cannot_reach_eight_bits() -> None:
    for n in (16, 64, 200, 255):
        assert expected_random_entropy(n) < math.log2(n)
    assert expected_random_entropy(4096) == pytest.approx(7.9546, abs=1e-3)
    # asymptotic branch continues the exact one smoothly
    assert expected_random_entropy(1 << 16) == pytest.approx(expected_random_entropy((1 << 16) + 1), abs=1e-5)
    assert random_entropy_sd(1 << 16) == pytest.approx(random_entropy_sd((1 << 16) + 1), rel=0.02)
    assert expected_random_entropy(0) == 0.0 and random_entropy_sd(1) == 0.0


def test_200_byte_ciphertext_is_recognised_as_random() -> None:
    key = AESGCM.generate_key(bit_length=128)
    ct = AESGCM(key).encrypt(b"\x00" * 12, b"lat=52.52;lon=13.40;" * 9, None)[:200]
    h = entropy(ct)
    assert h is not None and h < 7.2  # a naive "entropy > 7.5" rule would miss it
    assert entropy_deficit_z(h, len(ct)) < 4.0
    text = Path(__file__).read_bytes()[:200]
    assert entropy_deficit_z(entropy(text) or 0.0, 200) > 20.0


@pytest.mark.parametrize(
    "gaps, expected",
    [
        ((), b"0123456789"),
        (((2, 3),), b"0156789"),
        (((0, 2), (8, 5)), b"234567"),
        (((3, 2), (4, 3)), b"012789"),  # overlapping holes
        (((20, 4),), b"0123456789"),  # beyond the sample
        (((5, 0),), b"0123456789"),
    ],
)
def test_strip_gaps(gaps: tuple[tuple[int, int], ...], expected: bytes) -> None:
    assert strip_gaps(b"0123456789", gaps) == expected


def _http_response_body(pcap: Path) -> bytes:
    import dpkt

    segments: dict[int, bytes] = {}
    with pcap.open("rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            tcp = dpkt.ethernet.Ethernet(buf).data.data
            if tcp.sport == 80 and tcp.data:
                segments[tcp.seq] = tcp.data
    stream = b"".join(segments[k] for k in sorted(segments))
    return stream.split(b"\r\n\r\n", 1)[1]


def test_suricata_entropy_keyword_oracle() -> None:
    """suricata-verify tests/entropy: file_data entropy 4.137370175000773, at offset 10 4.150007324019584."""
    pcap = CORPUS / "suricata-verify" / "tests" / "entropy" / "entropy-01" / "input.pcap"
    if not pcap.exists():
        pytest.skip(f"shared corpus not present at {pcap}")
    body = _http_response_body(pcap)
    assert entropy(body) == pytest.approx(4.137370175000773, abs=1e-12)
    assert entropy(body[10:]) == pytest.approx(4.150007324019584, abs=1e-12)
