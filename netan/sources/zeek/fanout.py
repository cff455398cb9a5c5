"""Read a run's conn.log lines in several processes at once, each segment through the same consumer.

Contract: ``run(zr, segments, problems, part, arrived)`` forks one child per
segment but the last (``multiprocessing``'s fork context, after the side logs
are loaded, so every child has them without reading them again) and reads the
last segment here. Every segment's records go to ``part(records, k)``, which
writes that segment's part of the outputs and returns what the caller needs of
it as ``(head, body)``: a child sends the small head at once, then the body
with its problems and what its conn lines took from the side logs.
``arrived(k, head)`` hears of each head as soon as it is in (a child's from a
background thread, in segment order: so the caller can start placing the
parts while this process still reads its own segment). ``run`` returns every
``(head, body)`` in segment order once the joiner has absorbed the segments,
with the segments' problems merged in order.

The records are exactly those of one process reading everything
(``ZeekRead.segment`` starts each segment as a reader from the top would be
there), except where a uid repeats or two segments take the same side-log
entry (``Joiner.absorb``), or a child ends without its result: then ``run``
returns None and the caller must discard what it wrote and read in one process. Why processes: per record the work is
Python and C calls on Python objects, so threads would hold one core. Why this
process reads the last segment: the first can then be written straight into
the outputs by its child (it begins at their start), and this process's own
part is the one placed while it is still being written.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import threading
from typing import Any, Callable, Iterator

from netan.problems import Problems
from netan.sources.zeek.reader import ZeekRead
from netan.sources.zeek.split import Segment

__all__ = ["run", "available"]

log = logging.getLogger(__name__)

Records = Iterator[dict[str, Any]]


def available() -> bool:
    return "fork" in mp.get_all_start_methods()


def _child(zr: ZeekRead, seg: Segment, k: int, part: Callable[[Records, int], Any], conn: Any,
           spill: Callable[[int], str] | None = None) -> None:
    problems = Problems()
    try:
        head, body = part(zr.segment(seg, problems), k)
        conn.send(("head", head, None, None))  # small: its part can be placed while the body is sent
        conn.send(("ok", body, zr.joiner.segment_state(spill(k) if spill else None), problems))
    except BaseException as e:  # noqa: BLE001 -- reported by the parent, which raises it
        conn.send(("error", f"{type(e).__name__}: {e}", None, None))
    finally:
        conn.close()


class _Receiver(threading.Thread):
    """The children's results, in segment order, as they come in (each head handed to ``arrived``)."""

    def __init__(self, children: list[tuple[Any, Any]], arrived: Callable[[int, Any], None]) -> None:
        super().__init__(name="netan-zeek-results", daemon=True)
        self.children, self.arrived = children, arrived
        self.results: list[tuple[Any, Any, Problems]] = []
        self.error: str | None = None

    def run(self) -> None:
        for k, (proc, conn) in enumerate(self.children):
            head = None
            while True:
                try:
                    kind, result, state, child_problems = conn.recv()
                except (EOFError, OSError):
                    proc.join()
                    self.error = f"zeek reader process {k} ended without a result (exit status {proc.exitcode})"
                    return
                if kind == "error":
                    self.error = f"zeek reader process {k} failed: {result}"
                    return
                if kind == "ok":
                    break
                head = result
                try:
                    self.arrived(k, head)
                except BaseException as e:  # noqa: BLE001 -- raised by run()
                    self.error = f"placing part {k}: {type(e).__name__}: {e}"
                    return
            self.results.append(((head, result), state, child_problems))


def run(zr: ZeekRead, segments: list[Segment], problems: Problems, part: Callable[[Records, int], Any],
        arrived: Callable[[int, Any], None], spill: Callable[[int], str] | None = None) -> list[Any] | None:
    """See the module docstring. ``spill(k)``: a file for segment k's joiner state (its flow-id hashes,
    8 bytes a line), which then is not sent through the pipe."""
    ctx = mp.get_context("fork")
    zr.joiner.track()
    children: list[tuple[Any, Any]] = []
    last = len(segments) - 1
    try:
        for k, seg in enumerate(segments[:-1]):
            conn, child_end = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(zr, seg, k, part, child_end, spill), name=f"netan-zeek-{k}",
                               daemon=True)
            proc.start()
            child_end.close()
            children.append((proc, conn))
        receiver = _Receiver(children, arrived)
        receiver.start()
        own_problems = Problems()
        own = part(zr.segment(segments[-1], own_problems), last)
        own_state = zr.joiner.segment_state(spill(last) if spill else None)
        arrived(last, own[0])
        receiver.join()
        if receiver.error is not None:  # a child killed, out of memory, ...: nothing of this read is kept
            log.warning("%s; reading again in one process", receiver.error)
            return None
        if not zr.joiner.absorb([state for _, state, _ in receiver.results] + [own_state]):
            log.info("zeek: uids repeat across segments; reading again in one process")
            return None
        for _, _, child_problems in receiver.results:
            problems.merge(child_problems)
        problems.merge(own_problems)
        return [result for result, _, _ in receiver.results] + [own]
    except BaseException:
        _stop(children, failed=True)
        raise
    finally:
        _stop(children)


def _stop(children: list[tuple[Any, Any]], failed: bool = False) -> None:
    """Reap the children (each ends once it has sent its result; after a failure they are ended
    first, which also ends a receiver waiting on them), then close the pipes."""
    for proc, conn in children:
        if failed and proc.is_alive():
            proc.terminate()
        proc.join(timeout=60.0)
        if proc.is_alive():
            proc.terminate()
            proc.join()
    for proc, conn in children:
        conn.close()
