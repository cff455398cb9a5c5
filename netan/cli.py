"""The `netan` command line: subcommands parse options and call library functions.

Heavy imports happen inside the command that needs them. Exit status (CONTRACT.md):
0 when the run completed, even with skipped records (counted in summary.json);
2 for usage errors; 1 when an input could not be read at all, with one line
naming the file and the reason.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from netan import __version__

log = logging.getLogger("netan")

REPO_ROOT = Path(__file__).resolve().parent.parent


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="netan: %(levelname)s: %(message)s", stream=sys.stderr)


def _analyzers_option(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    from netan.analyzers import select_analyzers

    try:
        return select_analyzers(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _flow_options(f):
    f = click.option("--idle-timeout", type=click.FloatRange(min=0.001), default=120.0, show_default=True,
                     help="Seconds without packets that end a flow.")(f)
    f = click.option("--active-timeout", type=click.FloatRange(min=0.001), default=1800.0, show_default=True,
                     help="Seconds after which a long flow is cut and continued as a new one.")(f)
    f = click.option("--max-flows", type=click.IntRange(min=1), default=2_000_000, show_default=True,
                     help="Flow table bound; past it the oldest flows end early (counted in summary.json).")(f)
    f = click.option("--sample-bytes", type=click.IntRange(min=0, max=1 << 20), default=4096, show_default=True,
                     help="Payload bytes sampled per direction for the analyzers.")(f)
    f = click.option("--workers", type=click.IntRange(min=0, max=64), default=None,
                     help="Analyzer processes (default: one per core; 0 analyses in the main process).")(f)
    f = click.option("--analyzers", "analyzers", default="all", show_default=True, callback=_analyzers_option,
                     help="Per-flow analysis to run: all, none (flow records and payload sampling only), "
                          "or a comma list of payload, protocols, crossflow.")(f)
    f = click.option("--packets", "max_sizes", type=click.IntRange(min=0, max=10000), default=32,
                     show_default=True, help="First N packet sizes and inter-arrival times kept per flow.")(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="netan")
@click.option("-v", "--verbose", count=True, help="More log output on stderr.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr, no progress or summary.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """netan: find Android apps that encrypt collected data and send it out behind the user's back."""
    _setup_logging(verbose, quiet)
    ctx.obj = {"quiet": quiet}


@main.command()
@click.argument("pcaps", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--context", "context_paths", multiple=True, type=click.Path(path_type=str),
              help="Context file or directory (MDM, UsageStats, DHCP, PCAPdroid); repeatable.")
@click.option("--baseline", type=click.Path(dir_okay=False, path_type=str), help="Baseline file from `netan baseline`.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Output directory (flows.jsonl, chains.jsonl, summary.json).")
@click.option("--report", is_flag=True, help="Also write report.html.")
@click.option("--graph", type=click.Path(dir_okay=False, path_type=str), help="Write the evidence graph as GraphML.")
@_flow_options
@click.pass_context
def analyze(ctx: click.Context, pcaps: tuple[str, ...], context_paths: tuple[str, ...], baseline: str | None,
            out_dir: str, report: bool, graph: str | None, **flow_kw) -> None:
    """PCAP replay: several pcap/pcapng files (gzip'd or not) as one capture."""
    from netan.flows import FlowConfig
    from netan.pipeline import RunOptions, analyze_captures

    workers, analyzers = flow_kw.pop("workers"), flow_kw.pop("analyzers")
    opts = RunOptions(out_dir=out_dir, context=context_paths, baseline=baseline, flow=FlowConfig(**flow_kw),
                      report=report, graph=graph, command="analyze", workers=workers, analyzers=analyzers)
    result = _run(lambda: analyze_captures(list(pcaps), opts, progress=_progress(ctx)))
    _finish(ctx, result, report=report)


@main.command()
@click.argument("logs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--context", "context_paths", multiple=True, type=click.Path(path_type=str),
              help="Context file or directory; repeatable.")
@click.option("--baseline", type=click.Path(dir_okay=False, path_type=str), help="Baseline file from `netan baseline`.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=str))
@click.option("--zeek-json", is_flag=True, help="Write netan_flows.log/netan_chains.log as Zeek JSON, not TSV.")
@click.option("--report", is_flag=True, help="Also write report.html.")
@click.option("--graph", type=click.Path(dir_okay=False, path_type=str), help="Write the evidence graph as GraphML.")
@click.pass_context
def zeek(ctx: click.Context, logs: tuple[str, ...], context_paths: tuple[str, ...], baseline: str | None,
         out_dir: str, zeek_json: bool, report: bool, graph: str | None) -> None:
    """Zeek-log post-processing: conn/ssl/x509/dns/http/files logs (TSV or JSON, plain or .gz)."""
    from netan.pipeline import RunOptions, analyze_zeek_logs

    opts = RunOptions(out_dir=out_dir, context=context_paths, baseline=baseline, report=report, graph=graph,
                      command="zeek")
    result = _run(lambda: analyze_zeek_logs(list(logs), opts, zeek_json=zeek_json))
    _finish(ctx, result, report=report)


def _progress(ctx: click.Context):
    from netan.progress import Progress

    return Progress.for_terminal(quiet=ctx.obj.get("quiet", False))


def _run(job):
    from netan.problems import InputError

    try:
        return job()
    except InputError as e:
        click.echo(f"netan: error: {e.path}: {e.reason}", err=True)
        sys.exit(1)
    except OSError as e:  # the output directory cannot be written, etc.
        click.echo(f"netan: error: {e.filename or ''}: {e.strerror or e}", err=True)
        sys.exit(1)


def _finish(ctx: click.Context, result, report: bool = False) -> None:
    quiet = ctx.obj.get("quiet", False)
    if report:
        from netan.sinks.report import write_report

        path = write_report(result.out_dir)
        if not quiet:
            click.echo(f"netan: report: {path}", err=True)
    for err in result.unreadable:
        click.echo(f"netan: error: {err.path}: {err.reason}", err=True)
    if not quiet:
        for reason, n in result.problems.by_reason.items():
            click.echo(f"netan: skipped {n} record(s): {reason}", err=True)
        from netan.summary_text import render_summary

        click.echo(render_summary(result.summary, result.out_dir))
    if result.unreadable:
        sys.exit(1)


@main.command()
@click.option("-i", "--interface", "iface", required=True, help="Interface to capture on.")
@click.option("--bpf", default="", help="Capture filter (BPF syntax).")
@click.option("--context", "context_paths", multiple=True, type=click.Path(path_type=str),
              help="Context file or directory, watched for new files; repeatable.")
@click.option("--baseline", type=click.Path(dir_okay=False, path_type=str), help="Baseline file.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=str))
@click.option("--rotate-seconds", type=click.FloatRange(min=1), default=300.0, show_default=True)
@click.option("--rotate-mb", type=click.FloatRange(min=0.01), default=64.0, show_default=True)
@click.option("--rescore-seconds", type=click.FloatRange(min=1), default=60.0, show_default=True)
@click.option("--context-poll-seconds", type=click.FloatRange(min=0.2), default=10.0, show_default=True)
@click.option("--gzip", "compress", is_flag=True, help="Compress rotated flow files.")
@click.option("--exit-on-iface-loss", is_flag=True, help="Exit (status 1) instead of waiting for the interface.")
@click.option("--duration", type=click.FloatRange(min=0.1), default=None, help="Stop after this many seconds.")
@click.option("--report", is_flag=True, help="Also write report.html at exit.")
@_flow_options
@click.pass_context
def live(ctx: click.Context, iface: str, bpf: str, context_paths: tuple[str, ...], baseline: str | None,
         out_dir: str, rotate_seconds: float, rotate_mb: float, rescore_seconds: float,
         context_poll_seconds: float, compress: bool, exit_on_iface_loss: bool, duration: float | None,
         report: bool, **flow_kw) -> None:
    """Gateway sensor: capture on an interface, write flows continuously, re-score chains."""
    from netan.flows import FlowConfig
    from netan.live import LiveOptions, run_live

    workers, analyzers = flow_kw.pop("workers"), flow_kw.pop("analyzers")

    opts = LiveOptions(iface=iface, out_dir=out_dir, bpf=bpf, context=context_paths, baseline=baseline,
                       flow=FlowConfig(**flow_kw), rotate_seconds=rotate_seconds,
                       rotate_bytes=int(rotate_mb * (1 << 20)), rescore_seconds=rescore_seconds,
                       context_poll_seconds=context_poll_seconds, exit_on_iface_loss=exit_on_iface_loss,
                       compress=compress, duration=duration, workers=workers, analyzers=analyzers)
    runner = _run(lambda: run_live(opts))
    if runner.exit_status:
        click.echo(f"netan: error: {iface}: {getattr(runner, 'fatal', 'capture failed')}", err=True)
        sys.exit(runner.exit_status)
    if report:
        from netan.sinks.report import write_report

        write_report(out_dir)
    if not ctx.obj.get("quiet"):
        click.echo(f"netan live: {runner.engine.summary()['packets']} packets, {runner.flows_written} flows, "
                   f"{runner.chains} chains, drops: kernel {runner.capture_stats.dropped_by_kernel}, "
                   f"interface {runner.capture_stats.dropped_by_interface}; outputs in {out_dir}")


@main.command()
@click.argument("pcaps", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--context", "context_paths", multiple=True, type=click.Path(path_type=str),
              help="Context file or directory; repeatable.")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="Baseline JSON file to write.")
@_flow_options
@click.pass_context
def baseline(ctx: click.Context, pcaps: tuple[str, ...], context_paths: tuple[str, ...], out_file: str,
             **flow_kw) -> None:
    """Learn expected per-app behaviour from captures known to be normal."""
    import tempfile

    from netan.chains.baseline import learn_baseline
    from netan.flows import FlowConfig
    from netan.pipeline import RunOptions, analyze_captures, iter_records

    workers, analyzers = flow_kw.pop("workers"), flow_kw.pop("analyzers")
    with tempfile.TemporaryDirectory(prefix="netan-baseline-") as tmp:
        opts = RunOptions(out_dir=tmp, context=context_paths, flow=FlowConfig(**flow_kw), command="baseline",
                          workers=workers, analyzers=analyzers)
        result = _run(lambda: analyze_captures(list(pcaps), opts))
        learned = learn_baseline(iter_records(os.path.join(tmp, "flows.jsonl")))
    learned.save(out_file)
    if not ctx.obj.get("quiet"):
        click.echo(f"netan baseline: {len(learned.subjects)} subjects from {result.flows} flows -> {out_file}")
    if result.unreadable:
        sys.exit(1)


@main.command()
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Where to write the report (default: OUT_DIR/report.html).")
def report(out_dir: str, output: str | None) -> None:
    """Write the HTML report from an existing output directory."""
    from netan.sinks.report import write_report

    if not os.path.exists(os.path.join(out_dir, "flows.jsonl")):
        click.echo(f"netan: error: {out_dir}: no flows.jsonl (not a netan output directory)", err=True)
        sys.exit(1)
    click.echo(write_report(out_dir, output))


@main.command()
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.argument("chain_id")
def explain(out_dir: str, chain_id: str) -> None:
    """One chain's story in plain words."""
    import json

    from netan.explain import explain_chain
    from netan.pipeline import iter_records

    chains_path = os.path.join(out_dir, "chains.jsonl")
    if not os.path.exists(chains_path):
        click.echo(f"netan: error: {out_dir}: no chains.jsonl", err=True)
        sys.exit(1)
    with open(chains_path, encoding="utf-8") as fh:
        chain = next((c for c in map(json.loads, filter(str.strip, fh)) if c.get("chain_id") == chain_id), None)
    if chain is None:
        click.echo(f"netan: error: no chain {chain_id!r} in {chains_path}", err=True)
        sys.exit(1)
    wanted = set(chain.get("flows", []))
    flows = {r["flow_id"]: r for r in iter_records(os.path.join(out_dir, "flows.jsonl")) if r["flow_id"] in wanted}
    click.echo(explain_chain(chain, flows))


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Output directory (default: ./netan-demo-out).")
@click.pass_context
def demo(ctx: click.Context, out_dir: str | None) -> None:
    """The main job on the embedded demo (captures/ + context/)."""
    from netan.flows import FlowConfig
    from netan.pipeline import RunOptions, analyze_captures

    captures = sorted(str(p) for p in (REPO_ROOT / "captures").glob("*.pcap*"))
    if not captures:
        raise click.UsageError(f"no demo capture found in {REPO_ROOT / 'captures'}")
    context_dir = REPO_ROOT / "context"
    context = (str(context_dir),) if context_dir.is_dir() and any(
        p.name != "README.md" for p in context_dir.iterdir()) else ()
    out_dir = out_dir or os.path.join(os.getcwd(), "netan-demo-out")
    opts = RunOptions(out_dir=out_dir, context=context, flow=FlowConfig(), command="demo")
    result = _run(lambda: analyze_captures(captures, opts, progress=_progress(ctx)))
    _finish(ctx, result, report=True)
    click.echo(f"open the report: {os.path.join(out_dir, 'report.html')}")


if __name__ == "__main__":  # pragma: no cover
    main()
