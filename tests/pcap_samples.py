"""Test helper: a capture file in, one ``FlowSample`` per bidirectional flow out.

A thin wrapper over the real flow engine (``netan.engine``) with a larger sample
(64 KiB per direction) so whole TLS handshakes and certificate chains are there
for the analyzers under test. Flows come in first-packet order.
"""
from __future__ import annotations

from pathlib import Path

from netan.engine import flow_samples as engine_flow_samples
from netan.flows import FlowConfig
from netan.sample import FlowSample

__all__ = ["flow_samples"]

DEFAULT_CAP = 65536


def flow_samples(path: str | Path, cap: int = DEFAULT_CAP) -> list[FlowSample]:
    cfg = FlowConfig(sample_bytes=cap, max_marks=4096)
    pairs = engine_flow_samples([str(path)], cfg)
    pairs.sort(key=lambda p: p[0]["ts"])
    return [s for r, s in pairs if r["proto"] in ("tcp", "udp")]
