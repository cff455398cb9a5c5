"""`netan live`: the gateway sensor. Real capture process -> the same flow engine as replay.

One reader thread turns the capture pipe into chunks of packets; the main thread
feeds the engine, writes finished flows to an open chunk that is renamed into
``flows-<UTC>.jsonl`` (atomically) when it rotates by time or size, re-joins
context and re-scores chains periodically, and keeps ``summary.json`` and a
Prometheus text file (``metrics.prom``) current. SIGTERM/SIGINT flush every
active flow and exit cleanly; SIGHUP reloads baseline and context. Capture
drops come from tcpdump's own counters and are never hidden. If the interface
goes away, netan says so and waits for it (or exits with status 1 under
``--exit-on-iface-loss``).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from netan import SCHEMA, __version__
from netan.analyzers import SELECTABLE, AnalyzerSet, analyzer_modules
from netan.parallel import AnalyzerRunner, default_workers
from netan.fastpath import BatchEngine
from netan.fastpath_read import Chunk, pipe_chunks
from netan.flows import FlowConfig
from netan.problems import InputError, Problems
from netan.sinks.atomic import atomic_open, dumps, write_json
from netan.sources.live import CaptureProcess, CaptureStats, interface_exists

__all__ = ["LiveOptions", "LiveRunner", "run_live"]

log = logging.getLogger(__name__)
OPEN_CHUNK = ".flows.open.jsonl"


@dataclass(frozen=True)
class LiveOptions:
    iface: str
    out_dir: str
    bpf: str = ""
    context: tuple[str, ...] = ()
    baseline: str | None = None
    flow: FlowConfig = field(default_factory=FlowConfig)
    rotate_seconds: float = 300.0
    rotate_bytes: int = 64 << 20
    rescore_seconds: float = 60.0
    context_poll_seconds: float = 10.0
    metrics_seconds: float = 5.0
    exit_on_iface_loss: bool = False
    compress: bool = False
    buffer_kib: int = 65536
    duration: float | None = None  # stop by itself after this many seconds (tests, timed runs)
    workers: int | None = None  # analyzer processes (None: netan.parallel.default_workers)
    analyzers: tuple[str, ...] = tuple(SELECTABLE)  # short names (netan.analyzers.select_analyzers)


def _context_files(paths: tuple[str, ...]) -> list[tuple[str, float, int]]:
    out = []
    for p in paths:
        base = Path(p)
        files = [base] if base.is_file() else sorted(x for x in base.rglob("*") if x.is_file()) if base.is_dir() else []
        for f in files:
            if f.name.startswith(".") or f.name.lower() == "readme.md":
                continue
            st = f.stat()
            out.append((str(f), st.st_mtime, st.st_size))
    return out


def context_version(paths: tuple[str, ...]) -> str | None:
    files = _context_files(paths)
    if not files:
        return None
    return hashlib.blake2b(repr(files).encode(), digest_size=6).hexdigest()


#: libpcap's read timeout as tcpdump sets it (1 s), plus a margin: the longest a packet waits
#: in the kernel before tcpdump sees it.
BLOCK_TIMEOUT_S = 1.2


class _Reader(threading.Thread):
    """Capture pipe -> chunks on a bounded queue (back-pressure, not loss: if netan falls
    behind, the pipe and then the kernel buffer fill, and the kernel's drop counter says so).

    Chunks come straight from the pipe's bytes (netan.fastpath_read.pipe_chunks: records
    walked in C, no per-packet objects); reader problems travel inside them."""

    def __init__(self, fd: int, name: str, out: queue.Queue) -> None:
        super().__init__(daemon=True)
        self.fd, self.name, self.out = fd, name, out

    def run(self) -> None:
        try:
            for chunk in pipe_chunks(self.fd, self.name):
                self.out.put(chunk)
        finally:
            self.out.put(None)  # end of this capture stream


class LiveRunner:
    def __init__(self, opts: LiveOptions) -> None:
        self.opts = opts
        self.out = Path(opts.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.problems = Problems()
        # the batch engine: the same flows as the per-packet one (tests/test_fastpath.py), a
        # fraction of the CPU per packet, which is what keeps the kernel's buffer from filling
        self.engine = BatchEngine(opts.flow, self.problems)
        self.analyzers = AnalyzerSet(analyzer_modules(opts.analyzers))
        # Analyzers in worker processes only when cores are left over: the capture process and
        # netan's own loop need one each (on 2 cores a worker made kernel drops worse, measured
        # with benchmarks/live_rate.py). Many batches may wait, so bursts queue, not stall.
        workers = opts.workers if opts.workers is not None else max(0, (default_workers() or 1) - 2)
        self.runner = AnalyzerRunner(self.analyzers, self._write_record, workers=workers, max_inflight=64)
        self.crossflow = self._crossflow() if "crossflow" in opts.analyzers else None
        self.queue: queue.Queue = queue.Queue(maxsize=64)  # chunks of up to 8 MB
        self.capture = CaptureProcess(opts.iface, opts.bpf, buffer_kib=opts.buffer_kib)
        self.capture_stats = CaptureStats()
        self.stop_requested = False
        self.reload_requested = False
        self.flows_written = 0
        self.max_backlog = 0  # the reader's queue at its fullest: how far behind the engine fell
        self.chains = 0
        self.chunk = None
        self.chunk_opened = 0.0
        self.chunk_bytes = 0
        self.chunks: list[str] = []
        self.ctx_version: str | None = None
        self.ctx_loaded_at: float | None = None
        self.join = None
        self.iface_events: list[dict[str, Any]] = []
        self.started = time.time()
        self.exit_status = 0

    @staticmethod
    def _crossflow():
        try:
            from netan.analyzers.crossflow import CrossFlowAnalyzer

            return CrossFlowAnalyzer()
        except Exception as e:  # reported in the summary, not fatal
            log.error("cross-flow analysis unavailable: %s", e)
            return None

    # ---- signals ----------------------------------------------------------------------
    def install_signals(self) -> None:
        def stop(signum, _frame):
            log.warning("signal %s: flushing flows and stopping", signal.Signals(signum).name)
            self.stop_requested = True

        def hup(_signum, _frame):
            self.reload_requested = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)

    # ---- the loop ---------------------------------------------------------------------
    def run(self) -> int:
        if not interface_exists(self.opts.iface):
            if self.opts.exit_on_iface_loss:
                raise InputError(self.opts.iface, "no such network interface")
            log.warning("interface %s does not exist yet; waiting for it", self.opts.iface)
        self._load_context()
        self._open_chunk()
        self.runner.start()
        capturing = self._start_capture() if interface_exists(self.opts.iface) else False
        next_tick = time.monotonic()
        deadline = time.monotonic() + self.opts.duration if self.opts.duration else None
        timers = {"rescore": time.monotonic() + self.opts.rescore_seconds,
                  "context": time.monotonic() + self.opts.context_poll_seconds,
                  "metrics": time.monotonic()}
        while not self.stop_requested:
            if deadline is not None and time.monotonic() >= deadline:
                break
            try:
                chunk = self.queue.get(timeout=0.2)
            except queue.Empty:
                chunk = False
            if chunk is None:  # the capture process ended without being asked to
                capturing = False
                self._capture_lost()
                if self.exit_status:
                    break
                continue
            if chunk:
                self.max_backlog = max(self.max_backlog, self.queue.qsize() + 1)
                self._feed(chunk)
            self._emit()
            now = time.monotonic()
            if not capturing and interface_exists(self.opts.iface):
                log.warning("interface %s is back; capturing again", self.opts.iface)
                self.iface_events.append({"ts": time.time(), "event": "interface_back"})
                capturing = self._start_capture()
            if now >= next_tick:
                self.engine.table.expire(max(time.time(), self.engine.table.now))
                self._emit()
                self.runner.flush()  # a quiet network still gets its flows written within a second
                next_tick = now + 1.0
            if now - self.chunk_opened >= self.opts.rotate_seconds or self.chunk_bytes >= self.opts.rotate_bytes:
                self._rotate()
            if self.reload_requested or now >= timers["context"]:
                self._maybe_reload_context(force=self.reload_requested)
                self.reload_requested = False
                timers["context"] = now + self.opts.context_poll_seconds
            if now >= timers["rescore"]:
                self._rescore()
                timers["rescore"] = now + self.opts.rescore_seconds
            if now >= timers["metrics"]:
                self.capture.request_stats()
                self._write_metrics()
                self._write_summary()
                timers["metrics"] = now + self.opts.metrics_seconds
        self._shutdown(capturing)
        return self.exit_status

    def _start_capture(self) -> bool:
        try:
            fd = self.capture.start()
        except OSError as e:
            raise InputError(self.capture.binary, f"cannot start the capture process ({e.strerror or e})") from None
        _Reader(fd, f"live:{self.opts.iface}", self.queue).start()
        return True

    def _capture_lost(self) -> None:
        stats = self.capture.stop()
        self.capture_stats.add(stats)
        reason = self.capture.error_line()
        gone = not interface_exists(self.opts.iface)
        what = f"interface {self.opts.iface} went away" if gone else f"capture stopped: {reason}"
        log.error("%s", what)
        self.iface_events.append({"ts": time.time(), "event": "capture_lost", "detail": what})
        if self.opts.exit_on_iface_loss or not gone:
            # Without --exit-on-iface-loss we only wait for an interface that disappeared;
            # a capture that fails while the interface exists is an error (bad filter, no permission).
            self.exit_status = 1
            self.stop_requested = True
            self.fatal = what
        else:
            log.warning("waiting for %s to come back", self.opts.iface)

    def _shutdown(self, capturing: bool) -> None:
        if capturing and self.capture.running():
            # The kernel hands packets to tcpdump in blocks, each at most BLOCK_TIMEOUT_S
            # late: keep reading that long, so packets that arrived before the signal count.
            self._feed_for(BLOCK_TIMEOUT_S)
            stats = self.capture.stop()
            self.capture_stats.add(stats)
            while True:  # drain what tcpdump flushed before it exited
                chunk = self.queue.get(timeout=30)
                if chunk is None:
                    break
                self._feed(chunk)
        else:
            while not self.queue.empty():
                self._feed(self.queue.get_nowait())
        self.engine.finish()
        self._emit()
        self.runner.close()
        self._rotate(final=True)
        self._rescore()
        self._write_all_flows()
        self._write_summary()
        self._write_metrics()

    def _feed_for(self, seconds: float) -> None:
        due = time.monotonic() + seconds
        while (left := due - time.monotonic()) > 0:
            try:
                chunk = self.queue.get(timeout=left)
            except queue.Empty:
                return
            if chunk is None:  # the capture ended by itself: nothing more will come
                self.queue.put(None)
                return
            self._feed(chunk)

    def _feed(self, chunk: Chunk | None) -> None:
        if chunk is not None:
            self.engine.feed_chunk(chunk)

    # ---- flows out --------------------------------------------------------------------
    def _emit(self) -> None:
        for fs in self.engine.pop_finished():
            self.runner.add(fs.to_record(), fs.to_sample())

    def _write_record(self, record: dict, sample) -> None:
        """A flow back from the analyzers, in order: cross-flow, context, out to the open chunk."""
        if self.crossflow is not None:
            self.crossflow.observe(record, sample)
            record.update(self.crossflow.finalize(record))
        if self.join is not None:
            self.join.observe(record)
            record.update(self.join.annotate(record))
        record["context_version"] = self.ctx_version
        line = dumps(record) + "\n"
        self.chunk.write(line)
        self.chunk.flush()
        self.chunk_bytes += len(line)
        self.flows_written += 1

    def _open_chunk(self) -> None:
        self.chunk = open(self.out / OPEN_CHUNK, "w", encoding="utf-8")
        self.chunk_opened = time.monotonic()
        self.chunk_bytes = 0

    def _rotate(self, final: bool = False) -> None:
        """Close the open chunk and give it its final name in one atomic rename."""
        self.chunk.close()
        src = self.out / OPEN_CHUNK
        if self.chunk_bytes:
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
            name = f"flows-{stamp}.jsonl" + (".gz" if self.opts.compress else "")
            dst = self.out / name
            if self.opts.compress:
                with atomic_open(str(dst), "wb") as fh, open(src, "rb") as raw:
                    fh.write(gzip.compress(raw.read()))
                src.unlink()
            else:
                os.replace(src, dst)
            self.chunks.append(str(dst))
        else:
            src.unlink(missing_ok=True)
        if not final:
            self._open_chunk()
        self._write_summary()

    def _records(self) -> list[dict]:
        out = []
        for path in self.chunks:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as fh:
                out.extend(json.loads(line) for line in fh if line.strip())
        return out

    def _write_all_flows(self) -> None:
        """At exit, flows.jsonl holds every flow of the run (the rotated chunks stay too)."""
        with atomic_open(str(self.out / "flows.jsonl")) as fh:
            for path in self.chunks:
                opener = gzip.open if path.endswith(".gz") else open
                with opener(path, "rt", encoding="utf-8") as src:
                    for line in src:
                        fh.write(line)

    # ---- context and chains -----------------------------------------------------------
    def _load_context(self) -> None:
        self.ctx_version = context_version(self.opts.context)
        self.join = None
        if self.ctx_version is None:
            return
        from netan.context.loader import load_context
        from netan.join import ContextJoin

        self.join = ContextJoin(load_context(list(self.opts.context)))
        self.ctx_loaded_at = time.time()

    def _maybe_reload_context(self, force: bool = False) -> None:
        if not self.opts.context:
            return
        version = context_version(self.opts.context)
        if version == self.ctx_version and not force:
            return
        log.warning("context changed (version %s -> %s): re-joining flows", self.ctx_version, version)
        self._load_context()
        self._rejoin_written()
        self._rescore()
        self._write_summary()

    def _rejoin_written(self) -> None:
        """Flows already written are joined again with the new context (chunks rewritten atomically)."""
        if self.join is None:
            return
        per_chunk = []
        for path in self.chunks:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as fh:
                per_chunk.append([json.loads(line) for line in fh if line.strip()])
        for records in per_chunk:
            for r in records:
                self.join.observe(r)
        self.join.estimate_skew()
        for path, records in zip(self.chunks, per_chunk):
            body = "".join(dumps({**r, **self.join.annotate(r), "context_version": self.ctx_version}) + "\n"
                           for r in records)
            if path.endswith(".gz"):
                with atomic_open(path, "wb") as fh:
                    fh.write(gzip.compress(body.encode()))
            else:
                with atomic_open(path) as fh:
                    fh.write(body)

    def _rescore(self) -> None:
        try:
            from netan.chains import ChainBuilder
        except ImportError as e:
            log.error("chains unavailable: %s", e)
            return
        builder = ChainBuilder.for_run(context=self.join, baseline_path=self.opts.baseline, graph=False)
        for r in self._records():
            builder.observe(r)
        chains = builder.finalize()
        with atomic_open(str(self.out / "chains.jsonl")) as fh:
            for c in chains:
                c["context_version"] = self.ctx_version
                fh.write(dumps(c) + "\n")
        self.chains = len(chains)

    # ---- state for people and machines --------------------------------------------------
    def _write_summary(self) -> None:
        eng = self.engine.summary()
        write_json(str(self.out / "summary.json"), {
            "schema": SCHEMA, "netan_version": __version__, "command": "live",
            "inputs": [{"interface": self.opts.iface, "bpf": self.opts.bpf}],
            "counts": {"flows": self.flows_written, "chains": self.chains, **eng},
            "capture": {"tool": "tcpdump", **vars(self.capture_stats),
                        # chunks read from the pipe but not yet processed, at most (queue of 64)
                        "max_backlog_chunks": self.max_backlog},
            "interface_events": self.iface_events,
            "skipped": self.problems.as_dict(),
            "analyzers": self.analyzers.summary(),
            "context": {"version": self.ctx_version, "loaded_at": self.ctx_loaded_at,
                        **(self.join.summary() if self.join is not None else {"files": []})},
            "outputs": {"flow_chunks": [os.path.basename(p) for p in self.chunks]},
            "uptime_s": round(time.time() - self.started, 3),
        })

    def _write_metrics(self) -> None:
        from netan.sources.live import parse_tcpdump_stats

        live_stats = parse_tcpdump_stats(self.capture.stderr_text)
        kernel = self.capture_stats.dropped_by_kernel + live_stats.dropped_by_kernel
        iface = self.capture_stats.dropped_by_interface + live_stats.dropped_by_interface
        lines = [
            "# HELP netan_packets_total Packets read from the capture process.",
            "# TYPE netan_packets_total counter", f"netan_packets_total {self.engine.summary()['packets']}",
            "# TYPE netan_flows_total counter", f"netan_flows_total {self.flows_written}",
            "# TYPE netan_active_flows gauge", f"netan_active_flows {len(self.engine.table.flows)}",
            "# TYPE netan_capture_dropped_total counter",
            f'netan_capture_dropped_total{{by="kernel"}} {kernel}',
            f'netan_capture_dropped_total{{by="interface"}} {iface}',
            "# TYPE netan_chains gauge", f"netan_chains {self.chains}",
            "# HELP netan_backlog_chunks Chunks read from the capture pipe, not yet processed.",
            "# TYPE netan_backlog_chunks gauge", f"netan_backlog_chunks {self.queue.qsize()}",
            "# TYPE netan_skipped_records_total counter", f"netan_skipped_records_total {self.problems.count}",
            "# TYPE netan_last_context_load_timestamp_seconds gauge",
            f"netan_last_context_load_timestamp_seconds {self.ctx_loaded_at or 0}",
        ]
        with atomic_open(str(self.out / "metrics.prom")) as fh:
            fh.write("\n".join(lines) + "\n")


def run_live(opts: LiveOptions) -> LiveRunner:
    runner = LiveRunner(opts)
    runner.install_signals()
    runner.run()
    return runner
