"""The ``ent`` randomness battery and the GFW fully-encrypted-traffic features.

Contract: pure functions over bytes.  ``ent_battery(data)`` returns the five
statistics of John Walker's ``ent`` (https://www.fourmilab.ch/random/) computed
the way ``ent`` computes them, so its values match ``ent -t`` on the same bytes
(tests use Debian's ``/usr/bin/ent`` as the oracle).  ``fet_features(data)``
returns the exemption features of Wu et al., "How the Great Firewall of China
Detects and Blocks Fully Encrypted Traffic", USENIX Security 2023 (Ex1..Ex5).
Values are plain floats/ints/bools, rounded, never NaN or inf: where ``ent``
would print NaN (no Monte Carlo tuple) or "undefined" (serial correlation of a
constant), we return None.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from netan.analyzers.entropy import byte_counts, shannon_entropy

__all__ = [
    "EntBattery",
    "ent_battery",
    "chi2_sf",
    "FetFeatures",
    "fet_features",
    "POPCOUNT",
]

# Set bits in each byte value; with a byte histogram the mean popcount is one dot product.
POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)
_BYTE_VALUES = np.arange(256, dtype=np.int64)
_BYTE_SQUARES = _BYTE_VALUES * _BYTE_VALUES
# ent's Monte Carlo: consecutive 6-byte groups are two 24-bit coordinates; a hit
# is x^2 + y^2 <= (256^3 - 1)^2.  All of it is exact in float64 (max 2^49 < 2^53).
_MONTE_N = 6
_MONTE_R2 = (256**3 - 1) ** 2
# One matrix product gives both: x = b0*2^16 + b1*2^8 + b2, y likewise from b3..b5.
_MONTE_WEIGHTS = np.array([[1 << 16, 0], [1 << 8, 0], [1, 0], [0, 1 << 16], [0, 1 << 8], [0, 1]], dtype=np.float64)


def chi2_sf(x: float, df: int) -> float:
    """Upper tail P(X >= x) of the chi-square distribution with integer ``df``.

    Closed forms of the regularised upper incomplete gamma Q(df/2, x/2) for
    integer and half-integer shape (Abramowitz & Stegun 26.4.4/26.4.5), summed
    in log space so huge statistics (text gives chi-square ~ 1e5) underflow to 0
    cleanly.  This is the quantity ``ent`` prints as "would exceed this value N
    percent of the times" (ent uses Perlman's series for the same closed form).
    """
    if df < 1:
        raise ValueError("df must be >= 1")
    if not math.isfinite(x):
        return 0.0
    if x <= 0.0:
        return 1.0
    y = 0.5 * x
    powers, lgam = _series_terms(df)
    logs = powers * math.log(y) - y - lgam
    # odd df: Q(m + 1/2, y) = erfc(sqrt y) + e^-y * sum_{j=1}^{m} y^(j-1/2) / Gamma(j + 1/2)
    # even df: Q(m, y) = e^-y * sum_{j=0}^{m-1} y^j / j!
    head = math.erfc(math.sqrt(y)) if df % 2 else 0.0
    if logs.size == 0:
        return min(1.0, max(0.0, head))
    top = float(logs.max())
    total = head + math.exp(top) * float(np.exp(logs - top).sum()) if top > -745.0 else head
    return min(1.0, max(0.0, total))


def _tail_below(x: float, df: int, log_p: float) -> bool:
    """Is P(chi2_df >= x) certainly below e^log_p?  Chernoff's bound,
    P <= (r e^(1 - r))^(df/2) with r = x/df > 1, settles it without the series.

    ent's battery reports the tail to 6 decimals, so below e^-28 (~7e-13) it
    is 0.0 whatever the series would sum to: structured data lands there.
    """
    r = x / df
    return r > 1.0 and 0.5 * df * (math.log(r) + 1.0 - r) < log_p


@lru_cache(maxsize=16)
def _series_terms(df: int) -> tuple[np.ndarray, np.ndarray]:
    """Exponents and log-Gamma denominators of the closed-form series (memoised per df)."""
    if df % 2 == 0:
        js = np.arange(df // 2, dtype=np.float64)
        return js, np.array([math.lgamma(j + 1.0) for j in js])
    js = np.arange(1, df // 2 + 1, dtype=np.float64)
    return js - 0.5, np.array([math.lgamma(j + 0.5) for j in js])


@dataclass(frozen=True, slots=True)
class EntBattery:
    """``ent``'s statistics for one byte string (byte mode, not ``-b``).

    ``chi_p`` is a probability in [0, 1]; ``ent`` prints it times 100 as a
    percentage.  ``pi_error`` is a percentage, like ``ent``'s "error N percent".
    """

    n: int
    entropy: float | None
    chi_square: float | None
    chi_p: float | None
    mean: float | None
    monte_carlo_pi: float | None
    pi_error: float | None
    serial_corr: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "n": self.n,
            "entropy": self.entropy,
            "chi_square": self.chi_square,
            "chi_p": self.chi_p,
            "mean": self.mean,
            "monte_carlo_pi": self.monte_carlo_pi,
            "pi_error": self.pi_error,
            "serial_corr": self.serial_corr,
        }


def _round(x: float | None, digits: int) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(x, digits)


def ent_battery(data: bytes, counts: np.ndarray | None = None, *, entropy: float | None = None) -> EntBattery:
    """Compute ent's battery.  ``counts`` may pass a histogram already computed,
    ``entropy`` the plug-in entropy of ``data`` (netan.analyzers.entropy).

    Serial correlation is ent's circular lag-1 coefficient (the last byte pairs
    with the first): (n*sum(x_i x_{i+1}) - (sum x)^2) / (n*sum(x^2) - (sum x)^2).
    """
    n = len(data)
    if n == 0:
        return EntBattery(0, None, None, None, None, None, None, None)
    if counts is None:
        counts = byte_counts(data)
    if entropy is None:
        entropy = shannon_entropy(counts)
    expected = n / 256.0
    diff = counts - expected
    chisq = float(np.dot(diff, diff)) / expected
    total = int(np.dot(counts, _BYTE_VALUES))
    mean = total / n

    # Integer sums stay exact in float64 below 2^53 in any order (the serial
    # sum is below n * 255^2), so BLAS does the Monte Carlo coordinates and the
    # lag-1 products exactly.
    wide = np.frombuffer(data, dtype=np.uint8).astype(np.float64)
    mcount = n // _MONTE_N
    if mcount:
        xy = wide[: mcount * _MONTE_N].reshape(mcount, _MONTE_N) @ _MONTE_WEIGHTS
        xy *= xy
        inside = int(np.count_nonzero(xy[:, 0] + xy[:, 1] <= _MONTE_R2))
        mpi: float | None = 4.0 * inside / mcount
        pi_err: float | None = 100.0 * abs(math.pi - mpi) / math.pi
    else:
        mpi = pi_err = None

    t1 = int(np.dot(wide[:-1], wide[1:])) + int(wide[-1]) * int(wide[0])
    t3 = int(np.dot(counts, _BYTE_SQUARES))  # sum of x^2, read off the histogram
    den = n * t3 - total * total
    scc = None if den == 0 else (n * t1 - total * total) / den

    return EntBattery(
        n=n,
        entropy=_round(entropy, 6),
        chi_square=_round(chisq, 4),
        chi_p=0.0 if _tail_below(chisq, 255, -28.0) else _round(chi2_sf(chisq, 255), 6),
        mean=_round(mean, 4),
        monte_carlo_pi=_round(mpi, 6),
        pi_error=_round(pi_err, 4),
        serial_corr=_round(scc, 6),
    )


# --- Wu et al. 2023 (USENIX Security), "fully encrypted traffic" exemptions ---
# The GFW let a TCP connection's first client data packet through when any of
# these held (paper §4, Algorithm 1):
#   Ex1  average set bits per byte <= 3.4 or >= 4.6
#   Ex2  the first 6 bytes are all printable ASCII (0x20-0x7e)
#   Ex3  more than 50% of the bytes are printable
#   Ex4  more than 20 contiguous printable bytes
#   Ex5  the packet looks like TLS ([\x16-\x17]\x03[\x00-\x09]) or HTTP (a method)
# Everything else was treated as fully encrypted (and blocked with ~26% probability).
# Ex4 is tested as a substring of printable marks (bytes.translate, C speed):
# a regex for the run backtracks at every printable byte of a random packet.
_PRINTABLE_MARKS = bytes(1 if 0x20 <= b <= 0x7E else 0 for b in range(256))
_PRINTABLE_RUN = b"\x01" * 21
_ASCII_PRINTABLE = bytes(range(0x20, 0x7F))
# Columns: set bits per byte value, printable (0x20-0x7e): both sums from one product.
_FET_WEIGHTS = np.stack((POPCOUNT, (np.arange(256) >= 0x20) & (np.arange(256) < 0x7F)), axis=1).astype(np.int64)
_TLS_LOOK = re.compile(rb"[\x16\x17]\x03[\x00-\x09]")
_HTTP_LOOK = re.compile(rb"(?:GET|PUT|POST|HEAD|DELETE|OPTIONS|PATCH|CONNECT|TRACE) ")


@dataclass(frozen=True, slots=True)
class FetFeatures:
    popcount: float | None
    first6_printable: bool
    printable_frac: float | None
    printable_run_gt20: bool
    tls_or_http: bool
    exempt: tuple[str, ...]
    fully_encrypted: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "popcount": self.popcount,
            "first6_printable": self.first6_printable,
            "printable_frac": self.printable_frac,
            "printable_run_gt20": self.printable_run_gt20,
            "tls_or_http": self.tls_or_http,
            "exempt": list(self.exempt),
            "fully_encrypted": self.fully_encrypted,
        }


def fet_features(data: bytes, counts: np.ndarray | None = None) -> FetFeatures:
    """Wu et al. 2023 exemption features for one packet (or sample prefix)."""
    n = len(data)
    if n == 0:
        return FetFeatures(None, False, None, False, False, (), False)
    if counts is None:
        counts = byte_counts(data)
    set_bits, printable = (counts @ _FET_WEIGHTS).tolist()
    pop = set_bits / n
    pfrac = printable / n
    first6 = n >= 6 and not data[:6].translate(None, _ASCII_PRINTABLE)
    run = _PRINTABLE_RUN in data.translate(_PRINTABLE_MARKS)
    look = bool(_TLS_LOOK.match(data) or _HTTP_LOOK.match(data))
    exempt: list[str] = []
    if pop <= 3.4 or pop >= 4.6:
        exempt.append("ex1_popcount")
    if first6:
        exempt.append("ex2_first6_printable")
    if pfrac > 0.5:
        exempt.append("ex3_half_printable")
    if run:
        exempt.append("ex4_printable_run")
    if look:
        exempt.append("ex5_tls_http")
    return FetFeatures(
        popcount=round(pop, 4),
        first6_printable=first6,
        printable_frac=round(pfrac, 4),
        printable_run_gt20=run,
        tls_or_http=look,
        exempt=tuple(exempt),
        fully_encrypted=not exempt,
    )
