"""The main job, as a library call: captures (+ context) in, an output directory out.

Two passes over finished flows. Pass 1 runs as flows end: engine record +
analyzers, cross-flow observation, and the context join's observation (SYN
times for clock skew); records spool to a temporary JSONL so memory does not
grow with the number of flows. Between the passes the join estimates clock
skew. Pass 2 streams the spool: cross-flow findings, device/app/state, chain
observation, and the final flows.jsonl. Chains and summary.json come last.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from netan import SCHEMA, __version__
from netan.analyzers import SELECTABLE, AnalyzerSet, analyzer_modules
from netan.analyzers.dhcp import bindings_from_sample
from netan.parallel import AnalyzerRunner
from netan.engine import Engine, merged_packets
from netan.fastpath import BatchEngine
from netan.fastpath_read import Chunk
from netan.flows import FlowConfig
from netan.problems import InputError, Problems
from netan.sinks.atomic import BUFFER, atomic_open, dumps, dumps_line, loads, reopen, write_json
from netan.sources.pcap import CaptureInfo

__all__ = ["RunOptions", "RunResult", "analyze_captures", "analyze_zeek_logs", "finish_run", "iter_records"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    out_dir: str
    context: tuple[str, ...] = ()
    baseline: str | None = None
    flow: FlowConfig = field(default_factory=FlowConfig)
    report: bool = False
    graph: str | None = None
    command: str = "analyze"
    workers: int | None = None  # analyzer processes; None: one per core (netan.parallel.default_workers)
    analyzers: tuple[str, ...] = tuple(SELECTABLE)  # short names (netan.analyzers.select_analyzers)


@dataclass
class RunResult:
    out_dir: str
    flows: int = 0
    chains: int = 0
    problems: Problems = field(default_factory=Problems)
    unreadable: list[InputError] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


class _Stages:
    """The optional enrichment stages after the analyzers, each loaded once."""

    def __init__(self, opts: RunOptions, problems: Problems, crossflow: bool = True) -> None:
        self.unavailable: dict[str, str] = {}
        self.crossflow = None
        try:
            if crossflow:  # not imported when not wanted: replay's start-up time counts
                from netan.analyzers.crossflow import CrossFlowAnalyzer

                self.crossflow = CrossFlowAnalyzer()
        except Exception as e:  # reported in summary.json, not fatal
            self.unavailable["crossflow"] = f"{type(e).__name__}: {e}"
        self.join = None
        self.context_report: Any = None
        #: the join observed every record already (else finish_run does it from the spool,
        #: after address bindings seen in the capture itself have been added)
        self.observed = False
        self.bindings: list = []
        if opts.context:
            from netan.context.loader import load_context
            from netan.join import ContextJoin

            ctx = load_context(list(opts.context))
            self.join = ContextJoin(ctx)
        self.chains = None
        try:
            from netan.chains import ChainBuilder

            self.chains = ChainBuilder.for_run(context=self.join, baseline_path=opts.baseline, graph=bool(opts.graph))
        except ImportError as e:
            self.unavailable["chains"] = f"{type(e).__name__}: {e}"


def analyze_captures(paths: list[str], opts: RunOptions,
                     progress: Callable[[dict], None] | None = None) -> RunResult:
    """`netan analyze`: PCAP replay of several files as one capture."""
    started = time.monotonic()
    problems = Problems()
    result = RunResult(opts.out_dir, problems=problems)
    # NETAN_ENGINE=packet selects the per-packet engine (the fast path's reference; see netan.fastpath).
    batch = os.environ.get("NETAN_ENGINE", "batch") != "packet"
    engine = BatchEngine(opts.flow, problems) if batch else Engine(opts.flow, problems)
    infos: list[CaptureInfo] = []
    analyzers = AnalyzerSet(analyzer_modules(opts.analyzers))
    droid = pcapdroid_inputs(paths)
    if droid:  # a PCAPdroid capture names the app of every packet: use it as context too
        opts = dataclasses.replace(opts, context=tuple(opts.context) + tuple(droid))
    stages = _Stages(opts, problems, crossflow="crossflow" in opts.analyzers)
    os.makedirs(opts.out_dir, exist_ok=True)
    spool_path = os.path.join(opts.out_dir, ".flows.spool.jsonl")
    t_read = time.monotonic()
    with open(spool_path, "w", encoding="utf-8") as spool:
        def finished(record: dict, sample) -> None:
            if stages.crossflow is not None:
                stages.crossflow.observe(record, sample)
            if _is_dhcp(record):
                stages.bindings.extend(bindings_from_sample(sample))
            spool.write(dumps(record))
            spool.write("\n")
            result.flows += 1

        # nothing to analyse: no worker processes to feed
        runner = AnalyzerRunner(analyzers, finished, workers=opts.workers if analyzers.loaded else 0)
        runner.start()  # while this process is small (see AnalyzerRunner.start)

        # Without analyzers only DHCP flows need their sample (address bindings): the rest skip it.
        every_sample = bool(analyzers.loaded) or stages.crossflow is not None

        def drain() -> None:
            for fs in engine.pop_finished():
                record = fs.to_record()
                runner.add(record, fs.to_sample() if every_sample or _is_dhcp(record) else None)

        try:
            _feed_engine(engine, paths, infos, result, problems, drain, progress)
        except BaseException:
            runner.abort()
            raise
        runner.close()
        if progress is not None:
            progress({"done": True})
    t_flows = time.monotonic()
    sources = {"engine": engine.summary(), "captures": [_capture_info(i) for i in infos],
               "analyzers": {**analyzers.summary(), "workers": runner.workers, "selected": list(opts.analyzers)}}
    finish_run(spool_path, opts, stages, result, sources, started, {"read_and_flows_s": t_flows - t_read})
    return result


def _feed_engine(engine, paths: list[str], infos: list[CaptureInfo], result: RunResult, problems: Problems,
                 drain: Callable[[], None], progress: Callable[[dict], None] | None) -> None:
    """Every packet of the captures through the engine; ``drain`` after each step that ends flows."""
    nbytes = 0
    if isinstance(engine, BatchEngine):
        def chunk_done(chunk: Chunk) -> None:
            nonlocal nbytes
            drain()
            if progress is not None:
                nbytes += int(chunk.caplen.sum())
                progress({"packets": engine.summary()["packets"], "flows": result.flows, "bytes": nbytes,
                          "files": len(paths), "file_index": len(infos)})

        engine.run(paths, infos, result.unreadable, chunk_done)
    else:
        for n, raw in enumerate(merged_packets(paths, problems, infos, result.unreadable)):
            engine.feed(raw)
            if engine.table.finished:
                drain()
            if progress is not None:
                nbytes += len(raw.data)
                if n % 8192 == 0:
                    progress({"packets": n, "flows": result.flows, "bytes": nbytes, "files": len(paths),
                              "file_index": len(infos)})
    engine.finish()
    drain()


def analyze_zeek_logs(paths: list[str], opts: RunOptions, zeek_json: bool = False,
                      workers: int | None = None) -> RunResult:
    """`netan zeek`: Zeek logs become the same flow records, then the same join, chains and sinks.

    Without ``--context`` no record waits for the others (there is no clock skew
    to learn first), so records go from the reader straight to flows.jsonl,
    netan_flows.log and the chain builder in one pass, with no spool, and a big
    conn.log is shared out among ``workers`` processes (default
    ``NETAN_ZEEK_WORKERS``, else ``zeek_workers``; the outputs are the same).
    With context the join observes every record first (pass 1, spooled), as in
    pcap mode.
    """
    from netan.sinks.zeek import ZeekLogs
    from netan.sources.zeek import ZeekRead

    started = time.monotonic()
    problems = Problems()
    result = RunResult(opts.out_dir, problems=problems)
    stages = _Stages(opts, problems, crossflow=False)  # it needs payload samples, which Zeek logs do not carry
    stages.observed = True
    os.makedirs(opts.out_dir, exist_ok=True)
    inputs = [{"path": p} for p in paths]
    analyzers = {"note": "payload and framing are not observable in Zeek logs"}
    t0 = time.monotonic()
    try:
        with ZeekLogs(opts.out_dir, zeek_json) as zeek_logs:
            zr = ZeekRead(list(paths), problems)
            if stages.join is None:
                def finish(count: int) -> None:
                    result.flows = count
                    sources = {"inputs": inputs, "engine": {"records": count}, "analyzers": analyzers}
                    _write_results(opts, stages, result, sources, started,
                                   {"read_and_write_s": time.monotonic() - t0}, {}, zeek_logs)

                _zeek_one_pass(zr, opts, stages, zeek_logs, zeek_json, _zeek_workers(zr, workers), finish)
                return result
            spool_path = os.path.join(opts.out_dir, ".flows.spool.jsonl")
            with open(spool_path, "wb") as spool:
                for record in itertools.chain(zr.conn(), zr.rest()):
                    stages.join.observe(record)
                    spool.write(dumps_line(record))
                    result.flows += 1
            sources = {"inputs": inputs, "engine": {"records": result.flows}, "analyzers": analyzers}
            finish_run(spool_path, opts, stages, result, sources, started, {"read_logs_s": time.monotonic() - t0},
                       sink=zeek_logs)
    except _ReadAgain:
        return analyze_zeek_logs(paths, opts, zeek_json, workers=1)
    return result


class _ReadAgain(Exception):
    """The segments of a shared-out read could not be joined exactly (repeated uids): read in one process."""


#: conn.log bytes (gzip'd: four times the size) below which one process reads it all.
ZEEK_SPLIT_MIN_BYTES = 32 << 20


def _zeek_workers(zr: Any, asked: int | None) -> int:
    """Processes for the conn lines: ``asked``, else ``NETAN_ZEEK_WORKERS``, else one per core (at most 4)
    when there are ``ZEEK_SPLIT_MIN_BYTES`` of them (a fork and the merge cost ~0.1 s)."""
    from netan.sources.zeek import fanout

    if not fanout.available():
        return 1
    env = os.environ.get("NETAN_ZEEK_WORKERS", "")
    if asked is None and env.strip().isdigit():
        asked = int(env)
    if asked is not None:
        return max(1, asked)
    size = sum(os.path.getsize(lf.path) * (4 if lf.gzipped else 1) for lf in zr.conn_files if os.path.exists(lf.path))
    return min(os.cpu_count() or 1, 4) if size >= ZEEK_SPLIT_MIN_BYTES else 1


#: The weight of this process's segment when a run is shared out (the children's are 1): the child
#: with the first segment ends a little earlier and its core then copies this process's part into
#: place while this process finishes it (``netan.sinks.placer``).
OWN_SEGMENT_WEIGHT = 1.1


def _zeek_one_pass(zr: Any, opts: RunOptions, stages: _Stages, zeek_logs: Any, zeek_json: bool, workers: int,
                   finish: Callable[[int], None]) -> None:
    """Every record of ``zr`` through pass 2 into the outputs, then ``finish(number of records)``
    (the chains and the summary); the conn lines shared out among ``workers`` processes when that
    makes more than one segment.

    Shared out (``netan.sources.zeek.fanout``), the child with the first segment writes it straight
    into flows.jsonl and netan_flows.log (it begins at their start); every other segment is written
    to part files, copied into place by a ``Placer`` thread here as soon as its place is known --
    this process's own, the last, while it is still being written. Then the segments' chain states
    are absorbed in order, the side-log leftovers written after them, and the chains scored (they
    read records from the still-open flows.jsonl, or from a part's own file); the outputs are
    committed once every part is in place.
    """
    from netan.chains.store import JsonlAt
    from netan.sinks.placer import Placer
    from netan.sinks.zeek import FlowRows
    from netan.sources.zeek import fanout

    segments = zr.plan(workers, (1.0,) * (workers - 1) + (OWN_SEGMENT_WEIGHT,)) if workers > 1 else []
    if len(segments) <= 1:
        finish(_write_flows(itertools.chain(zr.conn(), zr.rest()), opts, stages, zeek_logs.flow,
                            (zr.joiner, zeek_logs.flow_rows)))
        return
    flows_path = os.path.join(opts.out_dir, "flows.jsonl")
    last = len(segments) - 1

    def part_paths(k: int) -> tuple[str, str]:
        return tuple(os.path.join(opts.out_dir, f".part-{k}.{name}") for name in ("flows.jsonl", "flows.log"))

    def spill(k: int, what: str = "ids") -> str:
        """A file for segment k's state handed over (chain columns, flow-id hashes): not held in memory twice."""
        return os.path.join(opts.out_dir, f".part-{k}.{what}")

    try:
        with atomic_open(flows_path, "wb") as out:
            zeek_logs.flush()
            fds = (out.fileno(), zeek_logs.end()[0])
            starts = (0, zeek_logs.end()[1])
            placer = Placer(fds, starts, len(segments), sync=True)
            placer.follow(last, part_paths(last))

            def part(records: Iterator[dict], k: int) -> tuple[dict[str, Any], dict[str, Any]]:
                """One segment's part of the outputs (where it is: the head) and its own chain state and
                counts (the body); in a child, or here for the last."""
                # this process's own segment gets a builder of its own: its flows are absorbed after the children's
                chains = stages.chains.blank() if k == last and stages.chains is not None else stages.chains
                direct = _open_in_place(fds, starts) if k == 0 else None
                paths = part_paths(k) if direct is None else None
                with (direct[0] if direct else open(paths[0], "wb", buffering=BUFFER)) as jsonl, \
                        (direct[1] if direct else open(paths[1], "w", encoding="utf-8", buffering=BUFFER)) as fh:
                    rows = FlowRows(fh, zeek_json)
                    p2 = _Pass2(jsonl, stages, rows.flow, (zr.joiner, rows), chains=chains)
                    p2.run(records)
                    fh.flush()
                    sizes = (jsonl.tell(), fh.buffer.tell() - (starts[1] if direct else 0))
                chain_state = None
                if chains is not None:
                    chain_state = chains.state(spill(k, "chains"))
                    chains.forget_flows()  # the state is in its file
                return ({"paths": paths, "sizes": sizes},
                        {"count": p2.count, "rows": {"rows": rows.rows, "uid_differs": rows.uid_differs},
                         "chains": chain_state})

            def arrived(k: int, res: dict[str, Any]) -> None:
                if res["paths"] is None:
                    placer.in_place(k, res["sizes"])
                else:
                    placer.done(k, res["paths"], res["sizes"])

            try:
                results = fanout.run(zr, segments, zr.problems, part, arrived, spill)
                if results is None:
                    raise _ReadAgain
                count = 0
                parts = []  # (offset, length, part file) in flows.jsonl, for the chains
                for k, (head, res) in enumerate(results):
                    where = placer.where(k)
                    if head["paths"] is not None:
                        parts.append((where[0], head["sizes"][0], head["paths"][0]))
                    zeek_logs.count_rows(res["rows"])
                    if stages.chains is not None:
                        stages.chains.absorb(res["chains"], where[0])
                    res["chains"] = None  # absorbed
                    count += res["count"]
                end = placer.where(len(segments))
                out.seek(end[0])
                zeek_logs.skip_to(end[1])
                own = _Pass2(out, stages, zeek_logs.flow, (zr.joiner, zeek_logs.flow_rows))
                own.at, own.count = end[0], count
                own.run(zr.rest())
                out.flush()
                if stages.chains is not None:
                    stages.chains.store = JsonlAt(out.fileno(), parts)
                finish(own.count)
                placer.close()
            except BaseException:
                placer.abandon()
                raise
    finally:
        for k in range(len(segments)):
            for path in (*part_paths(k), spill(k), spill(k, "chains")):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)


def _open_in_place(fds: tuple[int, int], starts: tuple[int, int]) -> tuple[Any, Any] | None:
    """The two outputs opened again for writing from ``starts`` (flows.jsonl binary, netan_flows.log
    text), with positions of their own: for the child whose part begins where they begin. None
    where a file cannot be opened again (then its part goes through a part file)."""
    import io

    again = [reopen(fd) for fd in fds]
    if None in again:
        for fd in again:
            if fd is not None:
                os.close(fd)
        return None
    jsonl = os.fdopen(again[0], "wb", buffering=BUFFER)
    jsonl.seek(starts[0])
    raw = os.fdopen(again[1], "wb", buffering=BUFFER)
    raw.seek(starts[1])
    return jsonl, io.TextIOWrapper(raw, encoding="utf-8")


def _is_dhcp(record: dict) -> bool:
    """A DHCP exchange (UDP 67/68): its sample gives address bindings for the join."""
    return record["proto"] == "udp" and bool({record["src_port"], record["dst_port"]} & {67, 68})


def pcapdroid_inputs(paths: list[str]) -> list[str]:
    """The captures whose frames carry PCAPdroid's trailer or its pcapng blocks."""
    from netan.context import pcapdroid
    from netan.sources.pcap import open_capture

    found = []
    for path in paths:
        try:
            fh, kind = open_capture(path)
        except InputError:
            continue  # reported when the capture itself is read
        with fh:
            head = fh.read(1 << 20)
        if (kind == "pcap" and pcapdroid.sniff_pcap(head)) or (kind == "pcapng" and pcapdroid.sniff_pcapng(head)):
            found.append(path)
    return found


def _capture_info(info: CaptureInfo) -> dict[str, Any]:
    return {"path": info.path, "format": info.format, "packets": info.packets, "bytes": info.bytes,
            "linktypes": sorted(info.linktypes or ()), "first_ts": info.first_ts, "last_ts": info.last_ts}


def _read_spool(path: str) -> Iterator[dict]:
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                yield loads(line)


def finish_run(spool_path: str, opts: RunOptions, stages: _Stages, result: RunResult,
               sources: dict[str, Any], started: float, timings: dict[str, float], sink: Any = None) -> None:
    """Pass 2 over the spooled records and the outputs; shared by every mode that produces flow records.

    ``sink`` (optional, a ``netan.sinks.zeek.ZeekLogs``) also gets every final
    record and, at the end, the chains.
    """
    t0 = time.monotonic()
    if stages.join is not None and not stages.observed:
        if stages.bindings:
            stages.join.ctx.add_bindings([(b.ts, b.mac, b.ip, b.hostname) for b in stages.bindings])
        for record in _read_spool(spool_path):
            stages.join.observe(record)
    skew = stages.join.estimate_skew() if stages.join is not None else {}
    _write_flows(_read_spool(spool_path), opts, stages, sink.flow if sink is not None else None)
    os.unlink(spool_path)
    timings["join_and_write_s"] = time.monotonic() - t0
    _write_results(opts, stages, result, sources, started, timings, skew, sink)


_STAGES_CHAINS: Any = object()  # _Pass2's default: the run's chain builder


class _Pass2:
    """Pass 2's work on each record: made final (cross-flow findings, context), written to
    flows.jsonl (and ``sink``), seen by the chain builder with its offset there (the builder
    reads the records it needs back from flows.jsonl, so it keeps no copy)."""

    def __init__(self, out: Any, stages: _Stages, sink: Callable[[dict], None] | None,
                 plain: tuple[Any, Any] | None = None, chains: Any = _STAGES_CHAINS) -> None:
        """``plain``: (Zeek joiner, ``FlowRows`` that ``sink`` writes with) of a `netan zeek` run,
        whose plain conn records a C lane may then write whole (``netan.sources.zeek.lane``).
        ``chains``: the chain builder that sees the records (default: ``stages.chains``)."""
        self.out, self.stages, self.sink = out, stages, sink
        self.chains = stages.chains if chains is _STAGES_CHAINS else chains
        self.at = 0  # where the next line goes in the file
        self.count = 0
        self.lane = None
        if plain is not None and stages.crossflow is None and stages.join is None:
            from netan.sources.zeek.lane import open_lane

            self.lane = open_lane(plain[0], plain[1], self.chains, out.write, 0)

    def records(self, records: Iterable[dict]) -> Iterator[dict]:
        """The final records, each written as it passes (with a lane: the records it did not write)."""
        lane = self.lane
        if lane is None:
            yield from self._records(records)
            return
        lane.c.at = self.at
        lane.joiner.lane = lane.c  # the reader offers it each plain line
        try:
            for record in self._records(self._settled(records)):
                lane.c.at = self.at
                yield record
            self._settle()
        finally:
            lane.joiner.lane = None

    def _settled(self, records: Iterable[dict]) -> Iterator[dict]:
        """``records``, the lane's lines written out before each (the outputs keep the lines' order)."""
        for record in records:
            self._settle()
            yield record

    def _settle(self) -> None:
        lane = self.lane
        n = lane.c.flush()
        if n:
            self.count += n
            lane.rows.count(n)
        self.at = lane.c.at

    def _records(self, records: Iterable[dict]) -> Iterator[dict]:
        crossflow, join, chains, sink = self.stages.crossflow, self.stages.join, self.chains, self.sink
        write = self.out.write
        for record in records:
            if crossflow is not None:
                record.update(crossflow.finalize(record))
            if join is not None:
                record.update(join.annotate(record))
            line = dumps_line(record)
            if chains is not None:
                chains.observe(record, self.at)
            write(line)
            self.at += len(line)
            if sink is not None:
                sink(record)
            self.count += 1
            yield record

    def run(self, records: Iterable[dict]) -> None:
        collections.deque(self.records(records), maxlen=0)


def _write_flows(records: Iterable[dict], opts: RunOptions, stages: _Stages,
                 sink: Callable[[dict], None] | None, plain: tuple[Any, Any] | None = None) -> int:
    """Pass 2 into flows.jsonl (``_Pass2``); with a context join, timelines.json from the same
    records. Returns the number of records."""
    flows_path = os.path.join(opts.out_dir, "flows.jsonl")
    if stages.chains is not None:
        from netan.chains.store import JsonlLines

        stages.chains.store = JsonlLines(flows_path)
    with atomic_open(flows_path, "wb") as out:
        p2 = _Pass2(out, stages, sink, plain)
        if stages.join is not None:
            from netan.sinks.timelines import apps_by_device, export_timelines

            apps, span = apps_by_device(p2.records(records))
        else:
            p2.run(records)
    if stages.join is not None:
        export_timelines(os.path.join(opts.out_dir, "timelines.json"), stages.join, apps, span)
    return p2.count


def _write_results(opts: RunOptions, stages: _Stages, result: RunResult, sources: dict[str, Any],
                   started: float, timings: dict[str, float], skew: dict[str, Any], sink: Any = None) -> None:
    """chains.jsonl (and the graph, and ``sink``'s chains), then summary.json."""
    chains: list[dict] = []
    if stages.chains is not None:
        t1 = time.monotonic()
        chains = stages.chains.finalize()
        with atomic_open(os.path.join(opts.out_dir, "chains.jsonl")) as out:
            for chain in chains:
                out.write(dumps(chain))
                out.write("\n")
        if opts.graph:
            stages.chains.write_graphml(opts.graph)
        timings["chains_s"] = time.monotonic() - t1
    if sink is not None:
        sink.chains(chains)
    result.chains = len(chains)
    top_chains = [{k: c.get(k) for k in ("chain_id", "score", "severity", "analytics", "app", "subject",
                                          "destinations")} for c in chains[:5]]
    timings["total_s"] = time.monotonic() - started
    summary: dict[str, Any] = {
        "schema": SCHEMA,
        "netan_version": __version__,
        "command": opts.command,
        "inputs": sources.get("captures") or sources.get("inputs") or [],
        "unreadable": [{"file": e.path, "reason": e.reason} for e in result.unreadable],
        "counts": {"flows": result.flows, "chains": result.chains, **sources.get("engine", {})},
        "top_chains": top_chains,
        "skipped": result.problems.as_dict(),
        "analyzers": {**sources.get("analyzers", {}), "stages_unavailable": stages.unavailable},
        "context": stages.join.summary() if stages.join is not None else {"files": [], "note": "no --context given"},
        "clock_skew": skew,
        "config": {k: getattr(opts.flow, k) for k in opts.flow.__dataclass_fields__},
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    result.summary = summary
    write_json(os.path.join(opts.out_dir, "summary.json"), summary)


def iter_records(path: str) -> Iterable[dict]:
    """Read a flows.jsonl back (for report, explain and tests)."""
    return _read_spool(path)
