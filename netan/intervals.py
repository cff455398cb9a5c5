"""Covered byte ranges of a stream: the one structure behind retransmission-proof
byte counts, reassembly of the payload sample, and the gaps we report.

A list of disjoint, sorted ``[start, end)`` pairs. The common case (in-order
data extending the last range) is O(1); the general case is linear in the
number of ranges, which ``MAX_RANGES`` bounds.
"""
from __future__ import annotations

__all__ = ["cover", "total", "holes", "MAX_RANGES"]

#: A hostile or badly damaged stream cannot grow the list past this: the two
#: closest ranges are then joined, and the joined-over bytes count as missed.
MAX_RANGES = 64


def cover(ranges: list[list[int]], start: int, end: int) -> list[tuple[int, int]]:
    """Add ``[start, end)`` to ``ranges`` in place; return the newly covered pieces."""
    if end <= start:
        return []
    if ranges:
        last = ranges[-1]
        if start == last[1]:  # in order: the hot case
            last[1] = end
            return [(start, end)]
        if last[0] <= start and end <= last[1]:  # plain retransmission of recent data
            return []
    else:
        ranges.append([start, end])
        return [(start, end)]
    new: list[tuple[int, int]] = []
    pos = start
    merged: list[list[int]] = []
    placed = False
    for r in ranges:
        if r[1] < start or placed:
            merged.append(r)
            continue
        if r[0] > end:
            if pos < end:
                new.append((pos, end))
            merged.append([start if not merged or merged[-1][1] < start else merged.pop()[0], end])
            merged.append(r)
            placed = True
            continue
        # r overlaps or touches [start, end)
        if r[0] > pos:
            new.append((pos, r[0]))
        pos = max(pos, r[1])
        start = min(start, r[0])
        end = max(end, r[1])
    if not placed:
        if pos < end:
            new.append((pos, end))
        merged.append([start, end])
    ranges[:] = merged
    if len(ranges) > MAX_RANGES:
        gaps = [(ranges[i + 1][0] - ranges[i][1], i) for i in range(len(ranges) - 1)]
        _, i = min(gaps)
        ranges[i][1] = ranges[i + 1][1]
        del ranges[i + 1]
    return new


def total(ranges: list[list[int]]) -> int:
    return sum(e - s for s, e in ranges)


def holes(ranges: list[list[int]], start: int, end: int) -> list[tuple[int, int]]:
    """The parts of ``[start, end)`` that ``ranges`` does not cover."""
    out: list[tuple[int, int]] = []
    pos = start
    for s, e in ranges:
        if e <= pos:
            continue
        if s >= end:
            break
        if s > pos:
            out.append((pos, min(s, end)))
        pos = max(pos, e)
        if pos >= end:
            break
    if pos < end:
        out.append((pos, end))
    return out
