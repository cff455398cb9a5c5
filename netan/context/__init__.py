"""Device context: MDM and device logs imported into per-device timelines.

``load_context(paths) -> ContextSet`` is the entry point (netan.context.loader);
``netan.join.ContextJoin`` joins flows with it. Importers are one module per
format, each sans-IO over decoded values or lines; ``detect`` recognises files
by content. Nothing happens at import time.
"""
from __future__ import annotations

__all__ = ["load_context", "ContextSet"]


def __getattr__(name: str):  # lazy: importing the package must stay free
    if name in ("load_context", "ContextSet"):
        from netan.context import loader

        return getattr(loader, name)
    raise AttributeError(name)
