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

__all__ = ["DEFAULT_ANALYZERS", "AnalyzerSet"]

log = logging.getLogger(__name__)

#: Each analyzer sees only the sample; their fields are merged into the record
#: in this order (a later analyzer's field wins on a clash).
DEFAULT_ANALYZERS: tuple[str, ...] = ("netan.analyzers.payload", "netan.analyzers.protocols")

Analyzer = Callable[[FlowSample], dict]


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
