"""Shannon entropy of byte samples, honest about sample size.

Contract: pure functions over bytes (or a 256-bin histogram) returning floats.
The plug-in (maximum-likelihood) entropy of ``n`` bytes is biased low: ``n``
uniformly random bytes cannot reach 8.0 bits/byte, and for ``n < 256`` they
cannot even exceed ``log2(n)``.  So next to the entropy we give the *expected*
entropy of ``n`` uniform random bytes and its standard deviation, computed
exactly from the multinomial distribution of the byte counts, which lets a
caller recognise a 200-byte ciphertext as random.  No I/O, no clocks; the only
state is a memo of the two pure functions of ``n``.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterable

import numpy as np

__all__ = [
    "byte_counts",
    "strip_gaps",
    "shannon_entropy",
    "entropy",
    "expected_random_entropy",
    "random_entropy_sd",
    "entropy_deficit_z",
]

_LN2 = math.log(2.0)
# Beyond this many bytes the exact sums are replaced by their asymptotic forms
# (Miller-Madow bias, second-order delta-method variance); both agree with the
# exact values to <1e-6 bits well before this point.
_EXACT_MAX_N = 1 << 16


def strip_gaps(data: bytes, gaps: Iterable[tuple[int, int]] = ()) -> bytes:
    """``data`` without the (offset, length) ranges that are zero-filled holes.

    The flow engine zero-fills TCP holes it never saw (netan.sample); counting
    those zeros would make ciphertext look like structured binary.
    """
    spans = sorted((max(0, int(o)), max(0, int(o) + int(ln))) for o, ln in gaps if ln > 0)
    if not spans:
        return data
    parts: list[bytes] = []
    pos = 0
    for start, end in spans:
        if start > pos:
            parts.append(data[pos:start])
        pos = max(pos, end)
        if pos >= len(data):
            break
    if pos < len(data):
        parts.append(data[pos:])
    return b"".join(parts)


def byte_counts(data: bytes) -> np.ndarray:
    """Histogram of byte values: int64 array of length 256."""
    if not data:
        return np.zeros(256, dtype=np.int64)
    return np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)


def shannon_entropy(counts: np.ndarray, total: int | None = None) -> float | None:
    """Plug-in Shannon entropy in bits per byte of a byte histogram; None if empty.

    ``total`` may pass ``counts.sum()`` when the caller knows it (the sample length).
    """
    if total is None:
        total = int(counts.sum())
    if total == 0:
        return None
    nz = counts[counts.nonzero()].astype(np.float64)
    # H = log2(n) - (1/n) * sum c*log2(c): one log per distinct value, no division per bin.
    return float(math.log2(total) - float(np.dot(nz, np.log2(nz))) / total)


def entropy(data: bytes) -> float | None:
    """Shannon entropy of ``data`` in bits per byte; None for empty input."""
    return shannon_entropy(byte_counts(data))


def _lgamma1(x: np.ndarray) -> np.ndarray:
    """log(x!) elementwise with math.lgamma's full precision; the variance below is a small
    difference of large terms, so a cheaper log-factorial table is not exact enough."""
    return np.fromiter((math.lgamma(v + 1.0) for v in x.tolist()), dtype=np.float64, count=x.size)


def _binom_logpmf(n: int, p: float, k: np.ndarray) -> np.ndarray:
    return math.lgamma(n + 1) - _lgamma1(k) - _lgamma1(n - k) + k * math.log(p) + (n - k) * math.log1p(-p)


def _k_range(n: int) -> np.ndarray:
    # Counts of one byte value are Binomial(n, 1/256); beyond mean + 14 sd the
    # mass is < 1e-40, so truncating there changes nothing at double precision.
    mean = n / 256.0
    hi = min(n, int(mean + 14.0 * math.sqrt(mean) + 16))
    return np.arange(0, hi + 1, dtype=np.float64)


@lru_cache(maxsize=4096)
def expected_random_entropy(n: int) -> float:
    """E[H] of the plug-in entropy of ``n`` i.i.d. uniform random bytes.

    Exact: H = -sum_i f(c_i) with c_i ~ Binomial(n, 1/256), so
    E[H] = -256 * sum_k P(c=k) * (k/n) * log2(k/n).
    """
    if n <= 0:
        return 0.0
    if n > _EXACT_MAX_N:
        # Miller-Madow: E[H] ~ log2(K) - (K-1)/(2 n ln 2).
        return 8.0 - 255.0 / (2.0 * n * _LN2)
    k = _k_range(n)[1:]
    pmf = np.exp(_binom_logpmf(n, 1.0 / 256.0, k))
    f = (k / n) * np.log2(k / n)
    return float(-256.0 * np.dot(pmf, f))


@lru_cache(maxsize=4096)
def random_entropy_sd(n: int) -> float:
    """Standard deviation of the plug-in entropy of ``n`` uniform random bytes.

    Exact for n <= 65536 from the joint law of two cells of the multinomial:
    Var H = 256 E[f(c)^2] + 256*255 E[f(c_i) f(c_j)] - (E H)^2, with
    (c_i, c_j, rest) ~ Multinomial(n; p, p, 1-2p).
    """
    if n <= 1:
        return 0.0
    if n > _EXACT_MAX_N:
        # Second-order delta method at the uniform point (first order vanishes).
        return math.sqrt(255.0 / 2.0) / (n * _LN2)
    p = 1.0 / 256.0
    k = _k_range(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(k > 0, -(k / n) * np.log2(np.where(k > 0, k / n, 1.0)), 0.0)
    lpmf = _binom_logpmf(n, p, k)
    e_f2 = float(np.dot(np.exp(lpmf), f * f))
    # Joint pmf of (a, b): n!/(a! b! (n-a-b)!) p^(a+b) (1-2p)^(n-a-b).
    lgk = _lgamma1(k)
    a = k[:, None]
    b = k[None, :]
    rest = n - a - b
    valid = rest >= 0
    rest_c = np.where(valid, rest, 0)
    # (n - a - b)! depends on a + b only: one lgamma per distinct sum, then indexing
    sums = np.arange(0, 2 * len(k) - 1, dtype=np.float64)
    lg_rest = _lgamma1(np.maximum(n - sums, 0.0))
    ljoint = (
        math.lgamma(n + 1)
        - lgk[:, None]
        - lgk[None, :]
        - lg_rest[(a + b).astype(np.int64)]
        + (a + b) * math.log(p)
        + rest_c * math.log1p(-2 * p)
    )
    joint = np.where(valid, np.exp(ljoint), 0.0)
    e_fifj = float(f @ joint @ f)
    mean = expected_random_entropy(n)
    var = 256.0 * e_f2 + 256.0 * 255.0 * e_fifj - mean * mean
    return math.sqrt(max(var, 0.0))


def entropy_deficit_z(h: float, n: int) -> float:
    """How many standard deviations ``h`` lies below random bytes of the same length.

    About N(0, 1) for random data; large and positive for anything structured.
    """
    if n <= 1:
        return 0.0
    sd = random_entropy_sd(n)
    if sd <= 0.0:
        return 0.0
    return (expected_random_entropy(n) - h) / sd
