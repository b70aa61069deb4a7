"""`mintkit run | reproduce | params | report | audit` (also `python -m mintkit ...`).

Exit status: 0 success, 1 some run failed or needs input (a missing dataset or checkpoint: the other runs ran),
2 bad input (unknown notebook, parameter, preset key, wrong type),
reported before any kernel starts, 130 interrupted (Ctrl-C: one line, the run folder says interrupted; the same
command again resumes: complete runs are skipped).
"""
from __future__ import annotations

import argparse
import importlib.metadata
import logging
import shlex
import sys
from pathlib import Path

from mintkit import __version__
from mintkit.audit import cli as audit_cli
from mintkit.batch import dryrun, estimate, executors, inputs, notebooks, report, runner
from mintkit.core.params import ParameterError, describe, parameters_source


INTERRUPTED = 130  # the shell's status for a process ended by SIGINT


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override one parameter (typed as YAML, then coerced to the schema type); repeatable")
    p.add_argument("--timeout", type=float, default=None, help="seconds a single cell may run (default: no limit)")
    p.add_argument("--notebooks", type=Path, default=runner.NOTEBOOKS,
                   help="folder holding <paper>.ipynb and params/<paper>/*.yaml (default: the repo's notebooks/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--engine", choices=runner.ENGINES, default="papermill",
                   help="papermill: a Jupyter kernel, writes executed.ipynb (default); exec: the code cells in a "
                        "plain Python subprocess, writes executed.log (machines without Jupyter)")


def version() -> str:
    """The installed distribution's version (pyproject.toml); the package's own when run from a bare checkout."""
    try:
        return importlib.metadata.version("mintkit")
    except importlib.metadata.PackageNotFoundError:
        return __version__


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mintkit", description="Membership Inference Test reproduction kit: run a "
                                 "notebook, reproduce a profile, check parameters, report, audit your own model "
                                 "(python -m mintkit works the same)")
    ap.add_argument("--version", action="version", version=f"mintkit {version()}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="{run,reproduce,params,report,audit}")

    r = sub.add_parser("run", help="one run of a notebook into one run folder")
    r.add_argument("notebook", help="paper name (mint, amint, gmint, factors) or path to an .ipynb")
    r.add_argument("-f", "--preset", action="append", default=[], type=Path, metavar="PRESET.yaml",
                   help="preset YAML (flat name: value); repeatable, later files win, -p wins over all")
    r.add_argument("--out", type=Path, default=None,
                   help="run folder (default runs/adhoc/<paper>/<presets>-<hash8>)")
    r.add_argument("--list-params", action="store_true", help="print the notebook's parameters and exit")
    r.add_argument("--force", action="store_true",
                   help="rerun into --out even when it holds a finished run (same parameters: skipped without it; "
                        "other parameters: refused without it)")
    _add_run_options(r)

    b = sub.add_parser("reproduce", help="every run of a profile, skipping complete ones")
    b.add_argument("--profile", choices=runner.PROFILES, default="quick",
                   help="quick: each notebook's defaults (CPU minutes); paper: every preset grid; mnist / cifar10: "
                        "every MNIST / CIFAR-10 cell of aMINT Tables 1-2 and gMINT Tables 1-3 / 2-3, 3 seeds, a "
                        "labelled stand-in when data_root lacks the dataset (docs/profiles.md)")
    b.add_argument("--paper", default=",".join(runner.PAPERS), help="comma-separated papers (default: all four)")
    b.add_argument("--preset", default=None, help="paper profile: only presets whose name matches (glob, e.g. table2)")
    b.add_argument("--seeds", default=None,
                   help="N: seeds 0..N-1 of every run; a list or ranges (1,2 or 1-2): those seeds, e.g. the rest "
                        "of a batch whose seed 0 ran earlier (quick default 1; paper default: as the presets say)")
    b.add_argument("--jobs", type=_jobs, default=0,
                   help="runs at once: N, or auto (default): one per visible GPU, else as many as the cores hold at "
                        "each run's threads (benchmarks/bench_threads.py)")
    b.add_argument("--out", type=Path, default=None, help="batch folder (default runs/<profile>)")
    b.add_argument("--dry-run", action="store_true",
                   help="print per paper and preset the runs (done / to run / needing input), data, sizes and a time "
                        "estimate, then the inputs the profile needs (which exist, which are missing), and exit")
    b.add_argument("--verbose", action="store_true", help="with --dry-run: also every run's injected parameters")
    _add_run_options(b)
    executors.add_arguments(b)

    pr = sub.add_parser("params", help="print, write or check each notebook's generated parameters cell")
    pr.add_argument("paper", nargs="*", help="papers (default: every paper with typed parameters)")
    mode = pr.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the notebooks' parameters cells from Params")
    mode.add_argument("--check", action="store_true", help="exit 1 when a notebook's cell differs from Params")
    pr.add_argument("--notebooks", type=Path, default=runner.NOTEBOOKS, help="folder holding <paper>.ipynb")

    rep = sub.add_parser("report", help="tables and figures: published vs reproduced, from run folders")
    rep.add_argument("--runs", type=Path, default=Path("runs"), help="a batch folder or a folder of batches")
    rep.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default figures/)")
    rep.add_argument("--paper", default=",".join(runner.PAPERS), help="comma-separated papers (default: all four)")
    rep.add_argument("--include-adhoc", action="store_true",
                     help="also report runs made outside a batch (a notebook's runs/scratch, `run`, an audit); "
                          "left out by default so that they never land in the committed figures")
    audit_cli.add_parser(sub)
    return ap


def _command_line(argv: list[str]) -> str:
    return "python -m mintkit " + " ".join(shlex.quote(a) for a in argv)


def cmd_run(args) -> int:
    nb = runner.Notebook.load(args.notebook, args.notebooks)
    if args.list_params:
        print(describe(nb.spec))
        return 0
    overrides = {name: runner.parse_cli_value(name, value, nb.spec) for name, value in args.parameter}
    spec = runner.plan_run(nb, args.preset, overrides, args.out)
    need = inputs.missing(spec)
    if need:
        raise ParameterError(f"{spec.name}: " + inputs.needs_input_error(need))
    if not args.force:
        refused = runner.finished_elsewise(spec)
        if refused:
            raise ParameterError(refused)
        if runner.is_complete(spec):
            print(f"complete: {spec.folder} already holds this run (same parameters); skipped (--force reruns it)")
            return 0
    print(f"run {spec.name} -> {spec.folder}")
    res = runner.execute(spec, args.timeout, progress=not args.no_progress, engine=args.engine)
    text, code = runner.summary([res])
    print(text)
    return code


def _jobs(text: str) -> int:
    """--jobs: 'auto' (0) or a count >= 1."""
    if text == "auto":
        return 0
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r}: give auto or a count >= 1")


def cmd_reproduce(args, argv: list[str]) -> int:
    papers = [p.strip() for p in args.paper.split(",") if p.strip()]
    out = args.out or Path("runs") / args.profile
    if args.status:
        return executors.cmd_status(out)
    runs, notes = runner.plan_batch(args.profile, papers, out, dict(args.parameter), args.seeds, args.preset,
                                    args.notebooks, args.notebooks / "params")
    for n in notes:
        print(f"note: {n}")
    if args.dry_run:
        print("\n".join(dryrun.summary(runs, out, args.profile, runner.is_complete)))
        if args.verbose:
            for s in runs:
                print(f"{'complete' if runner.is_complete(s) else 'todo':>8}  {s.folder}  {s.inject}")
        return 0
    if args.executor != "local" and args.engine != "papermill":
        raise ParameterError(f"--engine {args.engine} runs with --executor local only (cluster jobs use papermill)")
    # a run whose inputs are missing is marked 'needs input' and the others run: one file never stops the batch
    blocked = [s for s in runs if not runner.is_complete(s) and inputs.missing(s)]
    ready = [s for s in runs if s not in blocked]
    if args.executor == "local":  # a cluster job resolves `device: auto` on its own node
        # runs that need input count too: creating data_root must not be the step that reveals the CPU fallback
        refusal = estimate.cuda_refusal([s for s in runs if not runner.is_complete(s)], args.profile)
        if refusal:
            raise ParameterError(refusal)
        print(estimate.device_line([s for s in ready if not runner.is_complete(s)]))
    for line in inputs.missing_roots_lines(blocked):
        print(f"note: {line}")
    waiting = runner.mark_needs_input(blocked, out, args.profile, _command_line(argv))
    if waiting:
        print(f"note: {len(waiting)} run(s) need input and will not start (see the end); "
              f"`reproduce --dry-run` lists what is missing")
    if args.executor != "local":
        code = executors.cmd_reproduce(args, ready, out, _command_line(argv))
        if waiting:
            print(runner.summary(waiting)[0])
        return code or int(bool(waiting))
    results = runner.reproduce(ready, out, args.profile, jobs=args.jobs, timeout=args.timeout,
                               command=_command_line(argv), progress=not args.no_progress, engine=args.engine)
    text, code = runner.summary(results + waiting)
    print(text)
    return code


def cmd_params(args) -> int:
    """The parameters cell of each notebook is generated from its paper's Params dataclass."""
    papers = args.paper or list(notebooks.TYPED_NOTEBOOKS)
    stale = []
    for paper in papers:
        cls = notebooks.params_class(paper)
        if cls is None:
            raise ParameterError(f"{paper!r} has no typed Params; valid: "
                                 f"{', '.join(notebooks.TYPED_NOTEBOOKS)}")
        path = args.notebooks / f"{paper}.ipynb"
        source = parameters_source(cls)
        if args.write:
            changed = notebooks.write_parameters_cell(path, source)
            print(f"{path}: {'rewritten' if changed else 'up to date'}")
        elif args.check:
            if notebooks.parameters_cell_source(path) != source:
                stale.append(str(path))
        else:
            print(f"# {path}\n{describe(cls)}\n")
    for path in stale:
        print(f"{path}: parameters cell differs from its Params; run `python -m mintkit params --write`")
    return 1 if stale else 0


def cmd_report(args, argv: list[str]) -> int:
    papers = [p.strip() for p in args.paper.split(",") if p.strip()]
    written = report.build(args.runs, args.out, papers=papers, command=_command_line(argv),
                           include_adhoc=args.include_adhoc)
    print(f"report: {len(written)} file(s) under {args.out}; index {args.out / 'README.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "reproduce":
            return cmd_reproduce(args, argv)
        if args.command == "params":
            return cmd_params(args)
        if args.command == "audit":
            return audit_cli.main(args, argv)
        return cmd_report(args, argv)
    except ParameterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # papermill, asyncio and zmq would each print their part of the traceback; the run folder already says
        # interrupted (runner.execute), so one line is all a user needs. asyncio would still log the cancelled
        # cell's "Task exception was never retrieved" when the task is collected at exit.
        logging.getLogger("asyncio").disabled = True
        print("\ninterrupted: rerun the same command to resume", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
