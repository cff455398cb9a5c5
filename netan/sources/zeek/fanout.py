"""Read a run's conn.log lines in several processes at once, each segment through the same consumer.

Contract: ``run(zr, segments, problems, own, part, take)`` forks one child
per segment after the first (``multiprocessing``'s fork context, after the
side logs are loaded, so every child has them without reading them again).
Each child passes its segment's records to ``part(records, k)`` and sends back
what it returns, with its problems and what its conn lines took from the side
logs. This process meanwhile gives the first segment's records to
``own(records)``, then, segment by segment and in order, merges the problems
and calls ``take(result, k)``. The caller then reads ``zr.rest()`` as usual.

The records are exactly those of one process reading everything
(``ZeekRead.segment`` starts each segment as a reader from the top would be
there), except where a uid repeats or two segments take the same side-log
entry: then ``run`` returns False and the caller must discard what it wrote and
read in one process (``Joiner.absorb``). Why processes: per record the work is
pure Python (parse, record, JSON, Zeek row, chain state), so threads would
hold one core.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
from typing import Any, Callable, Iterator

from netan.problems import Problems
from netan.sources.zeek.reader import ZeekRead
from netan.sources.zeek.split import Segment

__all__ = ["run", "available"]

log = logging.getLogger(__name__)

Records = Iterator[dict[str, Any]]


def available() -> bool:
    return "fork" in mp.get_all_start_methods()


def _child(zr: ZeekRead, seg: Segment, k: int, part: Callable[[Records, int], Any], conn: Any) -> None:
    problems = Problems()
    try:
        result = part(zr.segment(seg, problems), k)
        conn.send(("ok", result, zr.joiner.segment_state(), problems))
    except BaseException as e:  # noqa: BLE001 -- reported by the parent, which raises it
        conn.send(("error", f"{type(e).__name__}: {e}", None, None))
    finally:
        conn.close()


def run(zr: ZeekRead, segments: list[Segment], problems: Problems, own: Callable[[Records], None],
        part: Callable[[Records, int], Any], take: Callable[[Any, int], None]) -> bool:
    """See the module docstring. Raises RuntimeError if a child fails."""
    ctx = mp.get_context("fork")
    zr.joiner.track()
    children = []
    try:
        for k, seg in enumerate(segments[1:], 1):
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(zr, seg, k, part, send), name=f"netan-zeek-{k}", daemon=True)
            proc.start()
            send.close()
            children.append((proc, recv))
        own(zr.segment(segments[0], problems))
        states = [zr.joiner.segment_state()]
        results = []
        for k, (proc, recv) in enumerate(children, 1):
            try:
                kind, result, state, child_problems = recv.recv()
            except EOFError:
                proc.join()
                raise RuntimeError(f"zeek reader process {k} ended without a result (exit status {proc.exitcode})")
            if kind == "error":
                raise RuntimeError(f"zeek reader process {k} failed: {result}")
            states.append(state)
            results.append((result, child_problems))
        if not zr.joiner.absorb(states):
            log.info("zeek: uids repeat across segments; reading again in one process")
            return False
        for k, (result, child_problems) in enumerate(results, 1):
            problems.merge(child_problems)
            take(result, k)
        return True
    finally:
        for proc, recv in children:
            recv.close()
            if proc.is_alive():
                proc.terminate()
            proc.join()
