"""Read a run's conn.log lines in several processes at once, each segment through the same consumer.

Contract: ``run(zr, segments, problems, own, part, take, place)`` forks one
child per segment after the first (``multiprocessing``'s fork context, after
the side logs are loaded, so every child has them without reading them
again). Each child passes its segment's records to ``part(records, k)`` and
sends back what it returns, with its problems and what its conn lines took
from the side logs. This process meanwhile gives the first segment's records
to ``own(records)``, then, segment by segment and in order, merges the
problems and calls ``take(result, k)``, which answers *where* that child's
output goes; the child then calls ``place(result, where)`` itself (copying its
part into the shared output files while this process goes on: with the
rest of the records, the chains), and ``settle()``, which ``run`` returns,
waits until every child has. A child that dies before it has placed its part
is replaced by this process calling ``place`` for it.

The records are exactly those of one process reading everything
(``ZeekRead.segment`` starts each segment as a reader from the top would be
there), except where a uid repeats or two segments take the same side-log
entry: then ``run`` returns None and the caller must discard what it wrote and
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
Place = Callable[[Any, Any], None]


def available() -> bool:
    return "fork" in mp.get_all_start_methods()


def _child(zr: ZeekRead, seg: Segment, k: int, part: Callable[[Records, int], Any], place: Place,
           sync: Callable[[], None] | None, conn: Any) -> None:
    problems = Problems()
    try:
        result = part(zr.segment(seg, problems), k)
        conn.send(("ok", result, zr.joiner.segment_state(), problems))
        zr.joiner.track()  # what the segment took is sent: let go of its flow-id hashes
        try:
            kind, where = conn.recv()
        except EOFError:
            return  # the parent gave up on this run (it reads again in one process, or failed)
        if kind == "place":
            place(result, where)
            conn.send(("placed", None))
            if sync is not None:
                sync()  # after "placed": the parent reads the part back meanwhile (page cache)
    except BaseException as e:  # noqa: BLE001 -- reported by the parent, which raises it
        conn.send(("error", f"{type(e).__name__}: {e}", None, None))
    finally:
        conn.close()


def run(zr: ZeekRead, segments: list[Segment], problems: Problems, own: Callable[[Records], None],
        part: Callable[[Records, int], Any], take: Callable[[Any, int], Any],
        place: Place, sync: Callable[[], None] | None = None) -> Callable[[], None] | None:
    """See the module docstring. Raises RuntimeError if a child fails before its result is in.

    ``sync`` (optional) runs in each child after it has placed its part (and said so): writing
    the outputs back to disk there overlaps this process's work. The caller must call the
    returned ``settle()`` (or get an exception out of ``run``) before it commits its outputs;
    it returns once every part is placed and every child has ended.
    """
    ctx = mp.get_context("fork")
    zr.joiner.track()
    children = []
    settled = False
    try:
        for k, seg in enumerate(segments[1:], 1):
            conn, child_end = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=_child, args=(zr, seg, k, part, place, sync, child_end),
                               name=f"netan-zeek-{k}", daemon=True)
            proc.start()
            child_end.close()
            children.append((proc, conn))
        own(zr.segment(segments[0], problems))
        states = [zr.joiner.segment_state()]
        results = []
        for k, (proc, conn) in enumerate(children, 1):
            try:
                kind, result, state, child_problems = conn.recv()
            except EOFError:
                proc.join()
                raise RuntimeError(f"zeek reader process {k} ended without a result (exit status {proc.exitcode})")
            if kind == "error":
                raise RuntimeError(f"zeek reader process {k} failed: {result}")
            states.append(state)
            results.append((result, child_problems))
        joined = zr.joiner.absorb(states)
        del states  # the segments' flow-id hashes: checked, not needed any more
        if not joined:
            log.info("zeek: uids repeat across segments; reading again in one process")
            _stop(children, grace=0.0)
            return None
        placing = []
        for k, ((result, child_problems), (proc, conn)) in enumerate(zip(results, children), 1):
            problems.merge(child_problems)
            where = take(result, k)
            try:
                conn.send(("place", where))
            except OSError:  # the child is gone: settle() places its part here
                log.debug("zeek reader process %d is gone before placing its part", k)
            placing.append((result, where))
    except BaseException:
        _stop(children, grace=0.0)
        raise

    def settle() -> None:
        """Return once every child has placed its part (placing it here for a child that died) and ended."""
        nonlocal settled
        if settled:
            return
        settled = True
        try:
            for k, ((result, where), (proc, conn)) in enumerate(zip(placing, children), 1):
                try:
                    kind, *_ = conn.recv()
                except (EOFError, OSError):
                    kind = "lost"
                if kind != "placed":
                    log.warning("zeek reader process %d did not place its part (%s); placing it here", k, kind)
                    place(result, where)
        except BaseException:
            _stop(children, grace=0.0)
            raise
        _stop(children, grace=60.0)

    return settle


def _stop(children: list[tuple[Any, Any]], grace: float) -> None:
    """Close the pipes (a child waiting on one then ends), give the children ``grace`` seconds to
    exit, then terminate and reap them."""
    for proc, conn in children:
        conn.close()
    for proc, conn in children:
        proc.join(timeout=grace)
        if proc.is_alive():
            proc.terminate()
            proc.join()
