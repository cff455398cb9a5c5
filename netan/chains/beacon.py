"""Beaconing score of repeated connections, following RITA v5 (analysis/beacons.go).

Sub-scores in [0, 1]: timestamp regularity and data-size regularity (each the
mean of a Bowley-skewness score and a median-absolute-deviation score),
a histogram score (flatness of connections per hour bin over the span) and a
duration score (how much of the span the connections cover). The beacon score
is their equal-weight mean, as RITA's default config weighs them.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

__all__ = ["BeaconScore", "beacon_score"]


@dataclass(frozen=True)
class BeaconScore:
    score: float
    ts_score: float
    ds_score: float
    hist_score: float
    dur_score: float
    connections: int
    median_interval_s: float


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[1], q[2]


def _bowley_score(values: list[float]) -> float:
    """1 - |Bowley skewness|; skewness 0 when the IQR is under 10 or the median sits on a quartile."""
    if len(values) < 3:
        return 0.0
    q1, q2, q3 = _quartiles(values)
    den = q3 - q1
    skew = (q1 + q3 - 2 * q2) / den if den >= 10 and q2 != q1 and q2 != q3 else 0.0
    return max(0.0, 1.0 - abs(skew))


def _mad_score(values: list[float], default: float) -> float:
    med = statistics.median(values)
    mad = statistics.median([abs(v - med) for v in values])
    score = (med - mad) / med if med >= 1 else default
    return 0.0 if score < 0 or math.isnan(score) else score


def _stat_score(values: list[float], default_mad: float) -> float:
    return round((_bowley_score(values) + _mad_score(values, default_mad)) / 2.0, 3)


def beacon_score(timestamps: list[float], sizes: list[float], span: tuple[float, float] | None = None,
                 bins: int = 24) -> BeaconScore | None:
    """Score a series of connections (start times, bytes sent); None below RITA's minimum of 4."""
    ts = sorted(timestamps)
    if len(ts) < 4 or len(sizes) < 3:
        return None
    deltas = sorted(b - a for a, b in zip(ts, ts[1:]))
    nonzero = [d for d in deltas if d > 0]
    if len(nonzero) < 3:
        return None
    ts_score = _stat_score(nonzero, 1.0)
    ds_score = _stat_score(sorted(float(s) for s in sizes), 0.0)
    lo, hi = span if span else (ts[0], ts[-1])
    if hi <= lo:
        return None
    width = (hi - lo) / bins
    counts = [0] * bins
    for t in ts:
        counts[min(bins - 1, max(0, int((t - lo) / width)))] += 1
    mean = sum(counts) / bins
    cv = statistics.pstdev(counts) / mean if mean else 1.0
    hist_score = max(0.0, 1.0 - cv)
    seen = [c > 0 for c in counts]
    run = best = 0
    for s in seen + seen:  # RITA lets the run wrap around the span
        run = run + 1 if s else 0
        best = max(best, min(run, bins))
    coverage = min(1.0, (ts[-1] - ts[0]) / (hi - lo))
    dur_score = max(coverage, min(1.0, best / (bins / 2))) if sum(seen) >= bins // 4 else 0.0
    score = round((ts_score + ds_score + hist_score + dur_score) / 4.0, 3)
    return BeaconScore(score, ts_score, ds_score, round(hist_score, 3), round(dur_score, 3), len(ts),
                       statistics.median(nonzero))
