"""Run the per-flow analyzers in worker processes while the engine keeps reading.

The flow engine and everything stateful across flows (cross-flow findings, the
spool, the join) stay in the main process, in flow order; only the sans-IO
analyzers, which see one flow's sample at a time, move to workers. Batches are
double-buffered: while workers analyse batch k, the main process builds batch
k+1. Results come back in submission order, so the output is byte-for-byte the
one a single process writes (tests check it).
"""
from __future__ import annotations

import gc
import multiprocessing as mp
import os
from collections import Counter, deque
from typing import Any, Callable

from netan.analyzers import AnalyzerSet
from netan.sample import FlowSample

__all__ = ["AnalyzerRunner", "default_workers"]

BATCH = 256
_WORKER_SETS: dict[tuple[str, ...], AnalyzerSet] = {}  # per worker process: the sets it was asked for


def default_workers() -> int:
    """One worker per core beyond the one the engine uses, at least one; NETAN_WORKERS overrides."""
    env = os.environ.get("NETAN_WORKERS")
    if env is not None and env.strip().isdigit():
        return int(env)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores if cores > 1 else 0


def _analyze_batch(names: tuple[str, ...], items: list[tuple[dict[str, Any], FlowSample]]
                   ) -> tuple[list[dict[str, Any]], Counter]:
    """In a worker: the analyzers the parent selected (``names``) over one batch."""
    analyzers = _WORKER_SETS.get(names)
    if analyzers is None:
        analyzers = _WORKER_SETS[names] = AnalyzerSet(names)
    before = Counter(analyzers.failures)
    out = []
    for record, sample in items:
        fields: dict[str, Any] = {}
        analyzers.run(sample, fields)
        out.append(fields)
    return out, analyzers.failures - before


class AnalyzerRunner:
    """Feed (record, sample) pairs; ``finish`` is called for each, in order, once analysed."""

    def __init__(self, analyzers: AnalyzerSet, finish: Callable[[dict[str, Any], FlowSample], None],
                 workers: int | None = None, max_inflight: int = 1) -> None:
        """``max_inflight``: batches that may wait in the workers before ``add`` blocks. Replay
        uses 1 (double buffering); live uses more, so that a burst of finished flows queues
        in memory instead of stalling the loop that drains the capture pipe."""
        self.analyzers = analyzers
        self.finish = finish
        self.workers = default_workers() if workers is None else workers
        self.max_inflight = max(1, max_inflight)
        self.batch: list[tuple[dict[str, Any], FlowSample]] = []
        self.pending: deque[tuple[Any, list]] = deque()
        self.pool = None

    def add(self, record: dict[str, Any], sample: FlowSample | None) -> None:
        if self.workers <= 0:
            self.analyzers.run(sample, record)
            self.finish(record, sample)
            return
        self.batch.append((record, sample))
        if len(self.batch) >= BATCH:
            self._submit()

    def start(self) -> None:
        """Fork the workers now: before any thread starts (forking a threaded process can
        copy a lock some other thread holds) and before the flow table grows (a worker
        forked later starts with a copy of it in its resident set).

        The objects alive at the fork are frozen out of the cyclic collector meanwhile:
        a worker's collections would otherwise write to every inherited object's header
        and so copy the parent's pages one by one (gc.freeze's documented purpose)."""
        if self.pool is None and self.workers > 0:
            # fork: workers inherit the loaded analyzers; nothing is pickled but the batches
            gc.freeze()
            try:
                self.pool = mp.get_context("fork").Pool(self.workers)
            finally:
                gc.unfreeze()

    def _submit(self) -> None:
        if not self.batch:
            return
        self.start()
        job = self.pool.apply_async(_analyze_batch, (self.analyzers.names, self.batch))
        self.pending.append((job, self.batch))
        self.batch = []
        self._collect(keep=self.max_inflight)

    def _collect(self, keep: int = 0) -> None:
        """Finish batches in order: every ready one, and wait while more than ``keep`` are out."""
        while self.pending and (len(self.pending) > keep or self.pending[0][0].ready()):
            job, batch = self.pending.popleft()
            fields_list, failures = job.get()
            self.analyzers.failures.update(failures)
            for (record, sample), fields in zip(batch, fields_list):
                record.update(fields)
                self.finish(record, sample)

    def flush(self) -> None:
        """Send the partial batch now; finish whatever is ready (live mode's latency bound)."""
        self._submit()
        self._collect(keep=self.max_inflight)

    def abort(self) -> None:
        """Stop the workers without waiting for their results (the run is failing anyway)."""
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def close(self) -> None:
        """Analyse what is left and stop the workers."""
        try:
            self._submit()
            self._collect()
        finally:
            if self.pool is not None:
                self.pool.close()
                self.pool.join()
                self.pool = None
