"""Robust clock-offset estimation between a device log and the capture (pure).

Given, per destination key, the device-clock times of logged events (connect
events, PCAPdroid connection starts) and the capture-clock times of the TCP
SYNs seen for the same key, every pair within ``max_skew_s`` is a candidate
offset ``d = t_device - t_capture``. Pairs that belong together agree on one d;
unrelated pairs scatter. The estimate is the densest window of width
``window_s`` over all d (the mode of the candidate histogram), refined as the
median of the inliers around it; ``spread_s`` is the inliers' scaled MAD.

Events with too many candidates (a beacon every few seconds to the same
address) add only a comb of equal peaks, so they are left out, and a second
peak nearly as tall as the first makes the estimate ``ambiguous``.
"""
from __future__ import annotations

import bisect
import statistics
from dataclasses import dataclass
from typing import Mapping, Sequence

__all__ = ["SkewEstimate", "estimate_offset"]


@dataclass(frozen=True, slots=True)
class SkewEstimate:
    """``offset_s`` = device clock - capture clock (0.0 unless status is ``ok``)."""

    offset_s: float
    spread_s: float | None
    matches: int
    candidates: int
    second_peak: int
    status: str  # ok | ambiguous | insufficient | no_data

    def as_dict(self) -> dict:
        return {
            "offset_s": round(self.offset_s, 6),
            "spread_s": None if self.spread_s is None else round(self.spread_s, 6),
            "matches": self.matches,
            "candidates": self.candidates,
            "second_peak": self.second_peak,
            "status": self.status,
        }


def _densest(diffs: Sequence[float], width: float) -> tuple[int, int]:
    """(count, start index) of the window [d_i, d_i + width] holding most values."""
    best, best_i, j = 0, 0, 0
    for i in range(len(diffs)):
        while diffs[j] < diffs[i] - width:
            j += 1
        if i - j + 1 > best:
            best, best_i = i - j + 1, j
    return best, best_i


def estimate_offset(
    events: Mapping[object, Sequence[float]],
    syns: Mapping[object, Sequence[float]],
    *,
    max_skew_s: float = 900.0,
    window_s: float = 1.0,
    min_matches: int = 2,
    max_candidates_per_event: int = 32,
    max_pairs: int = 2_000_000,
) -> SkewEstimate:
    """Estimate device-minus-capture offset from keyed event and SYN times."""
    sorted_syns = {k: sorted(v) for k, v in syns.items() if v}
    diffs: list[float] = []
    for key, times in events.items():
        s = sorted_syns.get(key)
        if not s:
            continue
        for te in times:
            lo = bisect.bisect_left(s, te - max_skew_s)
            hi = bisect.bisect_right(s, te + max_skew_s)
            if hi == lo or hi - lo > max_candidates_per_event:
                continue
            diffs.extend(te - s[i] for i in range(lo, hi))
            if len(diffs) > max_pairs:
                break
    if not diffs:
        return SkewEstimate(0.0, None, 0, 0, 0, "no_data")
    diffs.sort()
    count, start = _densest(diffs, window_s)
    window = diffs[start:start + count]
    center = statistics.median(window)
    inliers = [d for d in diffs if abs(d - center) <= window_s]
    offset = statistics.median(inliers)
    inliers = [d for d in diffs if abs(d - offset) <= window_s]
    offset = statistics.median(inliers)
    mad = statistics.median(abs(d - offset) for d in inliers)
    spread = 1.4826 * mad
    # the tallest peak elsewhere (outside +-2 windows of the estimate)
    others = [d for d in diffs if abs(d - offset) > 2 * window_s]
    second = _densest(others, window_s)[0] if others else 0
    matches = len(inliers)
    if matches < min_matches:
        status = "insufficient"
    elif second >= matches:
        status = "ambiguous"
    else:
        status = "ok"
    return SkewEstimate(offset if status == "ok" else 0.0, spread, matches, len(diffs), second, status)
