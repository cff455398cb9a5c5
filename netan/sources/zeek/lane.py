"""Pass 2 of plain conn records in one C call, for `netan zeek` (``netan._fastlane.Lane``).

Per conn line, making the record dict and handing it to the pass's Python steps
(the flows.jsonl line, the chain builder's rules and bookkeeping, the
netan_flows.log row) cost about 10 us, most of it the same few steps on the same
shape of record: a conn-only flow, no side-log entry, no context (a DNS name for
its destination, when DNS answers were read, is looked up by the joiner's own
``dst_name``, called from C).
For those records the lane writes the line and the row from templates, notes the
flow for the chains and keeps every counter, without making the record; every
other record (and every other run: context, a baseline) goes the Python way, which remains the one definition. The templates are cut from
what that Python writes of a record (``netan.fastlane.lane_plan``), and the
lane's rules are held to the Python rules by tests/test_lane.py.

Used by ``netan.pipeline._Pass2``: the reader (``reader._conn_tsv``,
``reader._conn_json``) offers each parsed line to ``joiner.lane`` first; the
pass flushes the lane before it writes a record itself, so the outputs keep the
order of the lines.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from netan import fastlane
from netan.sinks.atomic import dumps_line

__all__ = ["PlainLane", "open_lane"]

#: A conn tuple (``CONN_FIELDS`` order) the plan's sample record is made of.
_SAMPLE = (1.5, "CNetanLane0", "10.0.0.1", 1, "10.0.0.2", 2, "tcp", None, 1.0, 1, 1, "SF", 0, "D", 1, 1, None, None, 6)


@dataclass
class PlainLane:
    c: Any  # the C Lane
    joiner: Any  # netan.sources.zeek.convert.Joiner, whose ``lane`` it is while a pass runs
    rows: Any  # netan.sinks.zeek.FlowRows, whose rows it writes


def _sample_record(ctx: tuple) -> dict[str, Any] | None:
    """A plain record as ``conn_record`` makes it, from a copy of the joiner's context (nothing of
    the joiner changes)."""
    template, keys, _recent, limit, _sides, _l7, _w, _t, side = ctx
    private = (template, keys, set(), limit, (), {None: ("unknown", "unknown")}, None, None, side)
    return fastlane.C.conn_record(_SAMPLE, private)


def _conn_only(r: dict[str, Any]) -> bool:
    """Whether plain records look as the lane's chain rules assume (``_fastlane.c``, plain_flags)."""
    side = (r.get("payload") or {}).get("out") or {}
    return (r.get("dst_name") is None and r.get("tls") is None and not r.get("http") and r.get("framing") == []
            and side.get("observable") is False and side.get("class") == "unknown" and "decoded" not in side)


def open_lane(joiner: Any, rows: Any, chains: Any, out_write: Callable[[bytes], Any], at: int) -> PlainLane | None:
    """A lane writing to ``out_write`` (flows.jsonl, next line at byte ``at``) and ``rows``
    (a ``FlowRows``), noting flows in ``chains`` (a ChainBuilder or None); None where it cannot
    stand in for the Python pass."""
    context = joiner.lane_context() if fastlane.C is not None else None
    outputs = rows.lane_outputs()
    if context is None or outputs is None:
        return None
    ctx, names = context
    record = _sample_record(ctx)
    if record is None or not _conn_only(record):
        return None
    chain = chains.lane_state(record.get("device"), record.get("app")) if chains is not None else None
    if chains is not None and chain is None:
        return None
    row_write, row = outputs
    not_observable = joiner.lane_not_observable()
    plan = fastlane.lane_plan(record, dumps_line, row, not_observable, json_rows=rows.json)
    if plan is None:
        return None
    sink = chains.extend_columns if chains is not None else None
    lane = fastlane.C.Lane(plan[0], plan[1], chain, out_write, row_write, sink, rows.uid_differs, not_observable, at,
                           names)
    return PlainLane(lane, joiner, rows)
