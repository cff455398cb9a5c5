#!/usr/bin/env python3
"""Regenerate the evidence table in docs/chains.md from netan.chains.analytics (the one source).

usage: python scripts/gen_chain_docs.py [--check]
"""
from __future__ import annotations

import sys
from pathlib import Path

from netan.chains.analytics import ANALYTICS, CORE_COMBOS, KINDS

DOC = Path(__file__).resolve().parent.parent / "docs" / "chains.md"
BEGIN, END = "<!-- evidence-table:begin -->", "<!-- evidence-table:end -->"


def table() -> str:
    lines = ["| kind | source | weight | " + " | ".join(ANALYTICS) + " | why it counts |",
             "|---|---|---|" + "---|" * len(ANALYTICS) + "---|"]
    for k in KINDS.values():
        cells = ["core" if a in k.core_for else ("yes" if a in k.analytics else "") for a in ANALYTICS]
        lines.append(f"| `{k.name}` | {k.source} | {k.weight:g} | " + " | ".join(cells) + f" | {k.why} |")
    lines += ["", "Combinations that also make an analytic match:", ""]
    for a, combos in CORE_COMBOS.items():
        for combo in combos:
            lines.append(f"- {a}: " + " + ".join(f"`{c}`" for c in sorted(combo)))
    return "\n".join(lines)


def main() -> int:
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{table()}\n{END}{tail}"
    if "--check" in sys.argv:
        return 0 if new == text else 1
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
