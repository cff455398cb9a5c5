"""Shannon entropy of byte samples, honest about sample size.

Contract: pure functions over bytes (or a 256-bin histogram) returning floats.
The plug-in (maximum-likelihood) entropy of ``n`` bytes is biased low: ``n``
uniformly random bytes cannot reach 8.0 bits/byte, and for ``n < 256`` they
cannot even exceed ``log2(n)``.  So next to the entropy we give the *expected*
entropy of ``n`` uniform random bytes and its standard deviation, computed
exactly from the multinomial distribution of the byte counts, which lets a
caller recognise a 200-byte ciphertext as random.  No I/O, no clocks; the only
state is a memo of the two pure functions of ``n`` and of the log-factorials
they sum over.
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
    "deficit_z_exceeds",
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


# log(k!) = math.lgamma(k + 1) for k = 0, 1, ...: grown on demand, never past
# _EXACT_MAX_N + 1 entries (the largest argument the exact sums use).
_log_factorial_memo = np.zeros(0, dtype=np.float64)


def _log_factorial_table(upto: int) -> np.ndarray:
    """The memo of log(k!) for k = 0..upto at least (a pure function of k, bounded)."""
    global _log_factorial_memo
    have = _log_factorial_memo.size
    if upto >= have:
        size = min(max(upto + 1, 2 * have, 1024), max(upto + 1, _EXACT_MAX_N + 1))
        more = np.fromiter((math.lgamma(k + 1.0) for k in range(have, size)), dtype=np.float64, count=size - have)
        _log_factorial_memo = np.concatenate((_log_factorial_memo, more))
    return _log_factorial_memo


def _lgamma1(x: np.ndarray) -> np.ndarray:
    """log(x!) elementwise for integer-valued ``x``, with math.lgamma's full precision.

    The variance below is a small difference of large terms, so the values must
    be math.lgamma's own: they are, read from a memo of math.lgamma(k + 1) instead
    of recomputed for every ``n`` (one lgamma call per table entry, ever).
    """
    if x.size == 0:
        return np.zeros(0, dtype=np.float64)
    return _log_factorial_table(int(x.max()))[x.astype(np.intp)]


def _log_factorials(lo: int, hi: int) -> np.ndarray:
    """log(k!) for k = lo..hi: a view into the memo (no gather for a run of consecutive k)."""
    return _log_factorial_table(hi)[lo : hi + 1]


def _binom_logpmf(n: int, p: float, k: np.ndarray) -> np.ndarray:
    """log P(Binomial(n, p) = k) for ``k`` a run of consecutive integers (see _k_range)."""
    lo, hi = int(k[0]), int(k[-1])
    return (
        math.lgamma(n + 1) - _log_factorials(lo, hi) - _log_factorials(n - hi, n - lo)[::-1]
        + k * math.log(p) + (n - k) * math.log1p(-p)
    )


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


def _hankel(v: np.ndarray) -> np.ndarray:
    """Read-only (m, m) view ``H[a, b] = v[a + b]`` of a vector of length 2m - 1."""
    m = (v.size + 1) // 2
    step = v.strides[0]
    return np.lib.stride_tricks.as_strided(v, shape=(m, m), strides=(step, step), writeable=False)


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
    lgk = _log_factorials(0, len(k) - 1)
    # Every term but a! and b! depends on a + b only: computed once per sum and
    # read as Hankel-matrix views (no copies), in the same order of operations.
    sums = np.arange(0, 2 * len(k) - 1, dtype=np.float64)
    rest = np.maximum(n - sums, 0.0)  # (n - a - b), 0 where a + b > n (masked below)
    lg_rest = _lgamma1(rest)
    ljoint = (
        (math.lgamma(n + 1) - lgk[:, None])
        - lgk[None, :]
        - _hankel(lg_rest)
        + _hankel(sums * math.log(p))
        + _hankel(rest * math.log1p(-2 * p))
    )
    joint = np.exp(ljoint)
    if sums[-1] > n:
        joint = np.where(_hankel(sums <= n), joint, 0.0)
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


# Bounds on random_entropy_sd(n), checked against the exact value for every n
# up to _EXACT_MAX_N (exhaustively to 4096 in tests/test_analyzer_shortcuts.py):
# sd rises to 0.083 at n = 16 and then falls, staying above 0.052 below 256
# bytes; from there on it is within [0.82, 1.11] times the asymptotic
# sqrt(255/2) / (n ln 2).  The limits below keep a few percent of slack.
_SD_MAX = 0.085
_SD_MIN_SMALL = 0.045
_ASYMPTOTIC_SD = math.sqrt(255.0 / 2.0) / _LN2
_SLACK = 1e-9  # far above the rounding error of one division


def _sd_bounds(n: int) -> tuple[float, float]:
    """(lower, upper) bound on random_entropy_sd(n) for n >= 2."""
    asymptotic = _ASYMPTOTIC_SD / n
    return (_SD_MIN_SMALL if n < 256 else 0.75 * asymptotic), min(_SD_MAX, 1.25 * asymptotic)


def deficit_z_exceeds(h: float, n: int, limit: float) -> bool:
    """``entropy_deficit_z(h, n) > limit`` for ``limit > 0``, exactly, mostly without sd(n).

    The exact sd of a length not seen before costs a 2-D sum over the joint
    law of two byte counts; a test that only compares z with a limit rarely
    needs it: random bytes sit near z = 0 and structured bytes far above, so
    bounds on sd decide, and only a deficit near ``limit`` falls back to the
    exact z (the same float entropy_deficit_z returns).
    """
    if n <= 1:
        return entropy_deficit_z(h, n) > limit
    deficit = expected_random_entropy(n) - h
    lower, upper = _sd_bounds(n)
    if deficit < limit * lower * (1.0 - _SLACK):
        return False
    if deficit > limit * upper * (1.0 + _SLACK):
        return True
    return entropy_deficit_z(h, n) > limit
