"""Sans-IO analyzers: each takes a flow's sample and returns fields for its record.

Built-in analyzers are registered the same way a plugin would be (mitmproxy's
``default_addons()``): by module name, each module exposing
``analyze(sample: FlowSample) -> dict``. An analyzer that fails to import or
raises on one flow is reported (counted in summary.json) and skipped; it
never takes the run down.
"""
from __future__ import annotations

import importlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from netan.sample import FlowSample

__all__ = ["DEFAULT_ANALYZERS", "SELECTABLE", "AnalyzerSet", "analyzer_modules", "select_analyzers"]

log = logging.getLogger(__name__)

#: Each analyzer sees only the sample; their fields are merged into the record
#: in this order (a later analyzer's field wins on a clash).
DEFAULT_ANALYZERS: tuple[str, ...] = ("netan.analyzers.payload", "netan.analyzers.protocols")

#: What ``--analyzers`` can name: the per-flow analyzers, and ``crossflow`` (framing
#: pooled across the flows to one destination, a stage of the pipeline).
SELECTABLE: dict[str, str | None] = {"payload": "netan.analyzers.payload",
                                     "protocols": "netan.analyzers.protocols",
                                     "crossflow": None}

Analyzer = Callable[[FlowSample], dict]


def select_analyzers(spec: str) -> tuple[str, ...]:
    """``--analyzers`` text -> the short names chosen, in SELECTABLE's order.

    ``all`` (everything, the default) and ``none`` (flow records and payload
    sampling only: the nfstream-like flow export) or a comma list such as
    ``payload,protocols``. Raises ValueError naming an unknown analyzer.
    """
    words = {w.strip().lower() for w in spec.split(",") if w.strip()}
    if words == {"all"}:
        return tuple(SELECTABLE)
    if words in ({"none"}, set()):
        return ()
    unknown = sorted(words - set(SELECTABLE))
    if unknown:
        raise ValueError(f"unknown analyzer {', '.join(unknown)} (choose from all, none, {', '.join(SELECTABLE)})")
    return tuple(name for name in SELECTABLE if name in words)


def analyzer_modules(selected: tuple[str, ...]) -> tuple[str, ...]:
    """The per-flow analyzer modules among the selected short names."""
    return tuple(m for name in selected if (m := SELECTABLE[name]) is not None)


@dataclass
class AnalyzerSet:
    names: tuple[str, ...] = DEFAULT_ANALYZERS
    loaded: list[tuple[str, Analyzer]] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    failures: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for name in self.names:
            try:
                module = importlib.import_module(name)
                self.loaded.append((name, module.analyze))
            except Exception as e:  # a broken plugin is reported, not fatal
                self.unavailable[name] = f"{type(e).__name__}: {e}"
                log.error("analyzer %s unavailable: %s", name, e)

    def run(self, sample: FlowSample, record: dict[str, Any]) -> None:
        for name, analyze in self.loaded:
            try:
                fields = analyze(sample)
            except Exception as e:  # one hostile flow must not stop the run
                self.failures[f"{name}: {type(e).__name__}"] += 1
                log.debug("analyzer %s failed on %s", name, record.get("flow_id"), exc_info=True)
                continue
            if fields:
                record.update(fields)

    def summary(self) -> dict[str, Any]:
        return {"loaded": [n for n, _ in self.loaded], "unavailable": self.unavailable,
                "failures": dict(self.failures)}
