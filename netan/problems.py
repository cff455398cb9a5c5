"""Every record netan could not use, with where it was and why.

Bad input never stops a run and is never dropped silently: readers call
``Problems.skip`` for each record they pass over, the CLI prints one line per
problem kind, and ``summary.json`` carries the counts and the first examples.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Problems", "Problem", "InputError"]

log = logging.getLogger(__name__)

#: Keep this many individual problems verbatim; past it only counts grow, so a
#: hostile input with millions of bad records cannot exhaust memory.
MAX_KEPT = 1000


class InputError(Exception):
    """An input could not be read at all (exit status 1, one line naming the file)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    where: str  # "offset 1234", "line 17", "block 3", ...
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"file": self.file, "where": self.where, "reason": self.reason}


@dataclass
class Problems:
    """Collects skipped records; bounded in memory, exact in counts."""

    kept: list[Problem] = field(default_factory=list)
    by_reason: Counter = field(default_factory=Counter)
    by_file: Counter = field(default_factory=Counter)

    @property
    def count(self) -> int:
        return sum(self.by_reason.values())

    def skip(self, file: str, where: str, reason: str, n: int = 1) -> None:
        """Record ``n`` skipped records of one kind at ``where`` in ``file``."""
        if n <= 0:
            return
        self.by_reason[reason] += n
        self.by_file[file] += n
        if len(self.kept) < MAX_KEPT:
            self.kept.append(Problem(file, where, reason))
        if self.by_reason[reason] == n:  # first of its kind: say it once
            log.warning("%s: %s: %s", file, where, reason)

    def merge(self, other: "Problems") -> None:
        self.by_reason.update(other.by_reason)
        self.by_file.update(other.by_file)
        room = MAX_KEPT - len(self.kept)
        if room > 0:
            self.kept.extend(other.kept[:room])

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.count,
            "by_reason": dict(sorted(self.by_reason.items())),
            "by_file": dict(sorted(self.by_file.items())),
            "examples": [p.as_dict() for p in self.kept],
            "examples_truncated": self.count > len(self.kept),
        }
