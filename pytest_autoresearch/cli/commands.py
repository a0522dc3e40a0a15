"""The commands of ``autoresearch``: parse the command line and run one command.

``init`` makes the session branch; ``calibrate`` measures this host's noise floor through the
plugin; ``status``, ``log``, ``show`` and ``plot`` read the ledger the plugin writes; ``prune`` drops the run refs that keep judged commits. Every expected problem (no ledger, not a git repository, bad name) ends in
one ``autoresearch: ...`` line on stderr and exit code 1, except ``status`` before the first run
(no runs yet is where a session starts: exit 0, with the command to run); corrupt ledger lines are
warned about on stderr and skipped. Exit code 2 is a usage error, as with argparse.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import git

from .. import __version__, archive, chain, gitstate, history, trust
from ..ledger import STATUSES, Entry, Ledger
from ..settings import calibration_pairs
from . import digest, night, project, show, start, stats, suites, views
from .calibrate import DEFAULT_PAIRS, cmd_calibrate
from .night import strict
from .views import PROG
from .where import CliError, Where, empty, locate, on_head, read_runs

DEFAULT_SIZE = "1200x600"

LEDGER_HELP = (
    "Ledger to read, for runs made with --autoresearch-ledger PATH "
    "(default: autoresearch/ledger.tsv under the repository's git common dir)"
)
GOAL_HELP = "Whether lower (min) or higher (max) is better, for ledgers written before rows recorded it (default: as recorded, else min)"


# -- the parser ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Start an autoresearch session branch and read the results ledger "
        "that pytest --autoresearch writes.",
        epilog="Exit codes: 0 done, 1 nothing to show or a refused action (the message says why), 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")

    reading = argparse.ArgumentParser(add_help=False)
    reading.add_argument("--ledger", metavar="PATH", type=Path, help=LEDGER_HELP)

    init = commands.add_parser(
        "init", help="Start a session branch autoresearch/TAG from the current commit",
        description="Create and check out autoresearch/TAG from the current commit, keep the "
        "plugin's run folder and results.tsv out of git (.git/info/exclude), print the next step.",
    )
    init.add_argument("tag", metavar="TAG", help="Session name, e.g. nov25: the branch is autoresearch/TAG")
    init.set_defaults(func=start.cmd_init)

    worktrees = commands.add_parser(
        "worktrees", help="Start a round of K parallel experiments: K worktrees on K branches from one commit",
        description="Create K git worktrees beside the repository, on branches autoresearch/TAG-1..K, all at "
        "the same commit (default HEAD: the current best), for one idea each; print the recipe.",
    )
    worktrees.add_argument("count", metavar="K", type=_count, help="How many worktrees (parallel experiments)")
    worktrees.add_argument("--from", dest="base", metavar="REV", help="The commit they start from (default: HEAD)")
    worktrees.add_argument("--tag", metavar="TAG",
                           help="Branch names autoresearch/TAG-N (default: the session's tag, else round)")
    worktrees.set_defaults(func=start.cmd_worktrees)

    status = commands.add_parser(
        "status", parents=[reading], help="Best result, baseline, counts and last runs of this branch",
        description="Summarise this branch's runs (the commits HEAD builds on, and the runs "
        "recorded under its name): best and baseline per test and metric, ideas (commits) and draws (runs) "
        "counted apart, the noise floor and the margin an idea needs, suspected lucky draws, near misses "
        "(most promising first), a pytest-benchmark suite's verdicts, what the night cost, the last runs. "
        "The margin reads autoresearch_min_delta and autoresearch_noise_k from the project's ini file. "
        "Before the first run: 'no runs yet' and the command that makes it.",
    )
    status.add_argument("--all-branches", action="store_true",
                        help="One line per branch (the ledger's branch column), best first")
    status.add_argument("--last", metavar="N", type=_count, default=5, help="How many recent runs to list (default: 5)")
    status.add_argument("--goal", choices=("min", "max"), help=GOAL_HELP)
    status.add_argument("--since", metavar="AGE|DATE", type=_since,
                        help="A digest of the runs since then (8h, 90m, 2d, or a date such as 2026-12-01T22:00 "
                        "in UTC): runs by verdict, the best against where the window began, each kept idea with its "
                        "delta and sigma, near misses to retest, crashes with their reasons, wall time and cost")
    status.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                        help="How to print the status or the digest: text, json (as --json) or markdown, for a "
                        "chat message or a pull request (default: text)")
    status.add_argument("--json", action="store_true",
                        help="Print one JSON object: per benchmark best, baseline, ideas, draws, noise, the margin "
                        "an idea needs, near misses and lucky draws; all near misses; the cost")
    status.set_defaults(func=cmd_status)

    log = commands.add_parser(
        "log", parents=[reading], help="Every run as an aligned table, newest last",
        description="List the runs in the ledger (one line per run, newest last); a pytest-benchmark suite's "
        "verdict under the last of its members' rows.",
    )
    log.add_argument("--branch", metavar="NAME", help="Only runs recorded on this branch (default: every branch)")
    log.add_argument("--test", metavar="TEXT", help="Only tests whose node id contains TEXT (default: every test)")
    log.add_argument("--metric", metavar="NAME", help="Only this metric (default: every metric)")
    log.add_argument("--status", metavar="STATUS", action="append", type=_status,
                     help="Only runs with this status; repeat or comma-separate for several (default: all)")
    log.add_argument("--last", metavar="N", type=_count, help="Only the N newest matching runs (default: all)")
    log.add_argument("-v", "--verbose", action="store_true", help="Add each run's test, metric and verdict reason")
    log.add_argument("--json", action="store_true", help="Print the runs as a JSON list, every ledger field")
    log.set_defaults(func=cmd_log)

    shown = commands.add_parser(
        "show", parents=[reading], help="One run: verdict, value against its bar, the idea's diff, log tail",
        description="Show one run: its verdict and reason, its value against the bar it was judged "
        "against, the diff of the mutable files against the commit it was tried on (kept under "
        "refs/autoresearch/runs, so reset and gc lose nothing) and the tail of its log.",
    )
    shown.add_argument("target", metavar="RUN|COMMIT",
                       help="A run id or unique prefix (autoresearch log lists them), or a commit: its latest run")
    shown.add_argument("--mutable", metavar="GLOB", action="append",
                       help="Files whose diff to show, relative to the project folder; repeat for several "
                       "(default: autoresearch_mutable from the project's ini file, else train.py)")
    shown.add_argument("--tail", metavar="N", type=_count, default=show.DEFAULT_TAIL,
                       help=f"Lines of the log to show (default: {show.DEFAULT_TAIL})")
    shown.add_argument("--json", action="store_true", help="Print every field as one JSON object")
    shown.set_defaults(func=cmd_show)

    prune = commands.add_parser(
        "prune", parents=[reading], help="Drop the refs that keep judged commits, by age or status",
        description="Delete refs/autoresearch/runs/RUN refs chosen by --older-than, --status or both "
        "(both: a ref must match both), and print each one deleted. A commit goes at the next git gc "
        "once no branch or other ref holds it. Refuses to run with no selector.",
    )
    prune.add_argument("--older-than", metavar="AGE", type=_duration,
                       help="Only commits made longer ago than AGE: 90m, 12h, 30d or 2w")
    prune.add_argument("--status", metavar="STATUS", action="append", type=_status,
                       help="Only runs with this status, e.g. discard,crash,timeout; repeat or comma-separate")
    prune.set_defaults(func=cmd_prune)

    plot = commands.add_parser(
        "plot", parents=[reading], help="Draw the progress chart of this branch as a PNG",
        description="Draw this branch's judged runs (as status counts them): discarded runs faint, "
        "kept runs labelled, the running best as a step line; a pytest-benchmark suite's verdicts (each geomean "
        "against its bar) in a panel of their own (needs the plot extra).",
    )
    plot.add_argument("-o", "--output", metavar="PNG", type=Path, default=Path("progress.png"),
                      help="Where to write the chart (default: progress.png)")
    plot.add_argument("--size", metavar="WxH", type=_size, default=_size(DEFAULT_SIZE),
                      help=f"Image size in pixels (default: {DEFAULT_SIZE})")
    plot.add_argument("--dpi", metavar="DPI", type=_count, default=100, help="Dots per inch: the text size (default: 100)")
    plot.add_argument("--branch", metavar="NAME",
                      help="Plot the runs recorded on this branch instead of HEAD's history")
    plot.add_argument("--test", metavar="TEXT", help="Only tests whose node id contains TEXT (default: one panel per test and metric)")
    plot.add_argument("--metric", metavar="NAME", help="Only this metric (default: every metric)")
    plot.add_argument("--goal", choices=("min", "max"), help=GOAL_HELP)
    plot.set_defaults(func=cmd_plot)

    calibrate = commands.add_parser(
        "calibrate", parents=[reading], help="Measure this host's noise floor: the best commit against itself",
        description="Run pytest --autoresearch --autoresearch-calibrate N here: the branch's best commit (else "
        "the last judged one, said which) against itself in N pairs of draws, in a random order, through the "
        "runner, lease, budget and frozen scorer a verdict uses; every draw is recorded as a draw of that commit, "
        "so this host's noise floor learns from it. Then report the noise of one draw and of a paired difference, "
        "any order effect (first against second draw of a pair) and drift, and how many of N no-change "
        "candidates the current settings would have kept. Arguments after -- go to pytest: "
        "autoresearch calibrate 8 -- --autoresearch-noise-k 3",
    )
    calibrate.add_argument("pairs", metavar="N", nargs="?", type=_pairs, default=DEFAULT_PAIRS,
                           help=f"How many pairs (2 draws each; default: {DEFAULT_PAIRS})")
    calibrate.add_argument("--json", action="store_true",
                           help="Print the report as JSON (pytest's output goes to stderr)")
    calibrate.set_defaults(func=cmd_calibrate)

    verify = commands.add_parser(
        "verify", parents=[reading], help="Check the ledger's hash chain: rows edited, deleted or inserted",
        description="Walk the ledger's hash chain and report each row edited, deleted or inserted by "
        "anything but the plugin, and each run log changed since its row was written. Rows written "
        "before the chain existed are unchained history, not an error. Exit code 1 when the chain is broken.",
    )
    verify.add_argument("--json", action="store_true", help="Print the report as JSON")
    verify.set_defaults(func=cmd_verify)
    return parser


def _count(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {number}")
    return number


def _pairs(text: str) -> int:
    try:
        return calibration_pairs(text, "N")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels such as {DEFAULT_SIZE}, got {text!r}")
    width, height = (_count(p) for p in parts)
    if width < 100 or height < 100 or width > 10000 or height > 10000:
        raise argparse.ArgumentTypeError(f"each side must be 100 to 10000 pixels, got {text!r}")
    return width, height


def _duration(text: str) -> timedelta:
    try:
        return archive.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _since(text: str) -> datetime:
    try:
        return digest.parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _status(text: str) -> list[str]:
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STATUSES]
    if unknown or not wanted:
        raise argparse.ArgumentTypeError(f"status must be among {', '.join(sorted(STATUSES))}, got {text!r}")
    return wanted


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    cut = words.index("--") if "--" in words else len(words)  # what follows -- is pytest's (calibrate)
    args = parser.parse_args(words[:cut])
    args.pytest_args = words[cut + 1:]
    if args.pytest_args and args.command != "calibrate":
        parser.error(f"arguments after -- are pytest's, for calibrate only; {args.command} takes none")
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except CliError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except git.GitCommandError as exc:
        detail = exc.stderr.strip().removeprefix("stderr:").strip(" '\n") if isinstance(exc.stderr, str) else ""
        print(f"{PROG}: git {exc.command[1] if len(exc.command) > 1 else ''} failed: {detail}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `autoresearch log | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130


# -- status -------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    where = locate(args.ledger)
    runs = read_runs(where.ledger) if where.ledger.exists() else []  # none yet: a fresh project, a fresh branch
    if args.all_branches and runs:
        lines = views.all_branches(runs, args.goal, where.ledger)
        print("\n".join(lines[:2] + chain_alarm(where.ledger) + lines[2:]))
        return 0
    here, scope = on_head(where, runs)
    if not here:
        head = where.head
        lines = views.no_runs(runs, scope, where.ledger)
        print(json.dumps({"scope": scope, "branch": head.branch if head else None, "head": head.sha if head else None,
                          "ledger": str(where.ledger), "runs": 0, "next": views.NEXT}, indent=2)
              if args.json or args.format == "json" else "\n".join(lines))
        return 0
    alarm = chain_alarm(where.ledger)
    warning, lineage = alarm, None
    if where.repo is not None and where.head is not None:
        lineage = gitstate.lineage(where.repo, where.head.sha)
        last_kept = history.last_kept(here, lineage, {r.test for r in here})
        warning = alarm + views.head_state(here, where.head.sha, where.head.short, last_kept)
    settings = project.read()
    found = night.benchmarks(here, runs, args.goal, lineage)
    form = "json" if args.json else args.format
    if args.since is not None:
        night_digest = digest.digest(here, found, args.since, scope)
        print(json.dumps(strict(night_digest), indent=2, allow_nan=False) if form == "json"
              else "\n".join(digest.lines(night_digest, markdown=form == "markdown")))
        return 0
    if form == "markdown":
        raise CliError("--format markdown is the digest's: add --since 8h (or a date)")
    if form == "json":
        head = where.head
        payload = night.status_json(here, found, scope, where.ledger, head.branch if head else None,
                                    head.sha if head else None, warning, settings)
        print(json.dumps({**payload, "suites": [suites.to_json(s) for s in history.suites(here)],
                          "acceptances": trust.acceptances(here)}, indent=2, allow_nan=False))
        return 0
    more = [*suites.status_lines(history.suites(here), args.last), *night.lucky_lines(found),
            *night.near_miss_lines(found), *night.cost_lines(archive.night_cost(here)),
            *acceptance_lines(trust.acceptances(here))]
    print("\n".join(views.branch_status(here, found, scope, where.ledger, args.last, settings, warning, more)))
    return 0


# -- log ----------------------------------------------------------------------------------


def cmd_log(args: argparse.Namespace) -> int:
    where = locate(args.ledger)
    everything = read_runs(where.ledger)
    found = history.suites(everything)
    statuses = {s for group in args.status for s in group} if args.status else None
    runs = [
        r for r in everything
        if (args.branch is None or r.branch == args.branch)
        and (args.test is None or args.test in r.test)
        and (args.metric is None or r.metric == args.metric)
        and (statuses is None or r.status in statuses)
    ]
    if args.last:
        runs = runs[-args.last:]
    if args.json:
        member = {r.run_id: suites.to_json(s) for s in found for r in s.rows}
        print(json.dumps([{**views.run_json(r), **({"suite": member[r.run_id]} if r.run_id in member else {})}
                          for r in runs], indent=2, allow_nan=False))
        return 0
    if not runs:
        print(f"{PROG}: no runs match" if args.branch or args.test or args.metric or statuses
              else f"{PROG}: the ledger {where.ledger} has no runs yet", file=sys.stderr)
        return 0
    print("\n".join(suites.log_lines(runs, views.log_table(runs, verbose=args.verbose), found)))
    return 0


# -- show and prune -----------------------------------------------------------------------


def cmd_show(args: argparse.Namespace) -> int:
    where = locate(args.ledger)
    runs = read_runs(where.ledger)
    try:
        run = show.find_run(runs, args.target, where.repo)
    except show.NotFound as exc:
        raise CliError(str(exc)) from None
    settings = project.read()
    mutable = args.mutable or list(settings.mutable)
    shown = show.gather(run, runs, where.repo, mutable, show.log_places(where.repo, where.ledger), args.tail,
                        None if args.mutable else settings.rootdir)
    if args.json:
        print(json.dumps(shown.to_json(), indent=2, allow_nan=False))
    else:
        print("\n".join(show.lines(shown, args.tail)))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    if args.older_than is None and not args.status:
        raise CliError("prune needs --older-than AGE, --status STATUS, or both: it never drops every kept run unasked")
    where = locate(args.ledger)
    if where.repo is None:
        raise CliError("not inside a git repository: the run refs live in one")
    by_id: dict[str, Entry] = {}
    run_ids = None
    if args.status:
        wanted = {s for group in args.status for s in group}
        runs = read_runs(where.ledger) if where.ledger.exists() else []
        for r in runs:
            by_id.setdefault(r.run_id, r)
            by_id.setdefault(r.measurement, r)
        # a ref is named by its measurement's first run id; every run of a measurement has its status
        run_ids = {key for r in runs if r.status in wanted for key in (r.run_id, r.measurement)}
    elif where.ledger.exists():
        by_id = {key: r for r in read_runs(where.ledger) for key in (r.measurement, r.run_id)}
    deleted = archive.prune(where.repo, run_ids=run_ids, older_than=args.older_than)
    for kept in deleted:
        run = by_id.get(kept.run_id)
        about = f"  {run.status}  {run.description}" if run is not None else "  (not in the ledger)"
        print(f"deleted {kept.ref}  {kept.sha[:7]}  committed {kept.committed:%Y-%m-%d %H:%M}{about}")
    if deleted:
        print(f"{PROG}: deleted {views.plural(len(deleted), 'run ref')}; a commit no branch or other ref "
              "holds goes at the next git gc")
    else:
        print(f"{PROG}: no run ref matches; nothing deleted")
    return 0


# -- plot ---------------------------------------------------------------------------------


def cmd_plot(args: argparse.Namespace) -> int:
    from . import plot  # matplotlib itself is imported only when drawing

    try:
        plot.require()
    except plot.PlotUnavailable as exc:
        raise CliError(str(exc)) from None
    where = locate(args.ledger)
    runs = read_runs(where.ledger)
    if not runs:
        raise empty(where.ledger)
    if args.branch is not None:
        chosen, scope = [r for r in runs if r.branch == args.branch], f"branch {args.branch}"
    else:
        chosen, scope = on_head(where, runs)
    chosen = [r for r in chosen if (args.test is None or args.test in r.test)
              and (args.metric is None or r.metric == args.metric)]
    if not chosen:
        raise CliError(f"no runs to plot on {scope}" + (" matching --test/--metric" if args.test or args.metric else ""))
    lineage = (gitstate.lineage(where.repo, where.head.sha)
               if args.branch is None and where.repo is not None and where.head is not None else None)
    panels = [plot.Panel(s, stats.goal_of(runs, s, args.goal), stats.earlier_identity_runs(chosen, s),
                         night.floor_of(s, lineage))
              for s in stats.series(chosen)]
    width, height = args.size
    try:
        plot.draw(panels, args.output, width, height, args.dpi, history.suites(chosen) if args.test is None else ())
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    judged = sum(stats.finished(stats.draws(p.series.runs)) for p in panels)
    print(f"{PROG}: wrote {args.output} ({width}x{height}, {views.plural(judged, 'run')} of {scope})")
    return 0


# -- verify -------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    where = locate(args.ledger)
    if not where.ledger.is_file():
        read_runs(where.ledger)  # says why there is nothing to verify
    try:
        report = chain.verify(where.ledger)
    except OSError as exc:
        raise CliError(f"cannot read {where.ledger}: {exc.strerror or exc}") from None
    accepted = trust.acceptances(read_runs(where.ledger))
    if args.json:
        print(json.dumps({**report.to_json(), "acceptances": accepted}, indent=2))
    else:
        print(f"{PROG} verify: {report.summary()}")
        for line in report.details():
            print(f"  {line}")
        for line in acceptance_lines(accepted):
            print(line)
    return 0 if report.intact else 1


def acceptance_lines(accepted: Sequence[str]) -> list[str]:
    """What people accepted (a changed pytest surface or frozen files), when, who, where: a trust
    decision the ledger keeps, shown by status and verify."""
    if not accepted:
        return []
    return ["", "accepted by a person (changes to the pytest surface or to frozen files):",
            *(f"  {line}" for line in accepted)]


def chain_alarm(path: Path) -> list[str]:
    """The status line saying the ledger's chain is broken, if it is (run logs are left to verify)."""
    try:
        report = chain.verify(path, check_logs=False)
    except OSError:
        return []
    if report.intact:
        return []
    first, more = report.problems[0], len(report.problems) - 1
    also = f" and {views.plural(more, 'other place')}" if more else ""
    return [f"warning: the ledger's hash chain is broken at line {first.line} ({first.kind}){also}: {PROG} verify"]
