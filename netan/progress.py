"""A progress line on stderr for long runs: files, bytes, packets/s.

Only on a terminal and without --quiet; it erases itself when the run ends,
so logs and redirected output never see it.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

__all__ = ["Progress"]


class Progress:
    def __init__(self, stream: TextIO, every_s: float = 0.5) -> None:
        self.stream = stream
        self.every_s = every_s
        self.started = time.monotonic()
        self.last = 0.0
        self.shown = False

    @classmethod
    def for_terminal(cls, quiet: bool = False, stream: TextIO | None = None) -> "Progress | None":
        stream = stream or sys.stderr
        if quiet or not stream.isatty() or os.environ.get("TERM") == "dumb":
            return None
        return cls(stream)

    def __call__(self, state: dict[str, Any]) -> None:
        now = time.monotonic()
        if state.get("done"):
            if self.shown:
                self.stream.write("\r\033[K")
                self.stream.flush()
            return
        if now - self.last < self.every_s:
            return
        self.last = now
        rate = state.get("packets", 0) / max(now - self.started, 1e-6)
        mb = state.get("bytes", 0) / 1e6
        line = (f"netan: file {state.get('file_index', 1)}/{state.get('files', 1)}  {mb:,.1f} MB  "
                f"{state.get('packets', 0):,} packets  {rate:,.0f} packets/s  {state.get('flows', 0):,} flows")
        self.stream.write("\r\033[K" + line)
        self.stream.flush()
        self.shown = True
