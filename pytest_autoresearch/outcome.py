"""The outcome of one judged benchmark and its texts: the red message and the line an agent greps.

An :class:`Outcome` is plain data, so it can travel in ``user_properties`` from an xdist
worker to the controller and into junit-xml.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

PROPERTY = "autoresearch"
INTERRUPTED = "interrupted"  # Ctrl-C ended the run: no verdict, so neither kept nor reverted
UNJUDGED = ("crash", "timeout", INTERRUPTED)  # no value was judged against the bar
BASELINE_FAILED = ("no kept commit before this one to go back to (the baseline itself failed): fix it, "
                   "amend the commit (git commit --amend -a --no-edit) and run again")


@dataclass(frozen=True)
class Outcome:
    """What one benchmark came to: the verdict with its value, bar and reason, as reports show it."""

    test: str
    metric: str
    goal: str
    status: str
    value: float | None
    reason: str
    commit: str = ""
    identity: str = ""
    threshold: float | None = None
    best: float | None = None
    best_commit: str = ""
    best_n: int = 0
    delta: float | None = None
    n: int = 1  # draws behind value (their mean): this run's and earlier runs' of the same commit
    earlier: tuple[float, ...] = ()  # the draws of this commit from earlier runs: a re-measurement
    now: tuple[float, ...] = ()  # this run's draws
    spread: float | None = None  # standard deviation of those draws
    sigma: float | None = None  # noise: standard error of the delta (the σ of the delta's "-4.9σ")
    noise_sigma: float | None = None  # the noise floor: the standard deviation of one draw
    noise_draws: int = 0  # the draws behind it
    noise_commits: int = 0  # of how many commits measured more than once
    needs: tuple[float, ...] = ()  # min_delta auto: the improvement an idea needs at one draw, at three
    duration: float | None = None
    memory_gb: float | None = None
    log: str = ""
    note: str = ""
    target_note: str = ""  # what the target printed as `NOTE: ...` lines ("train.py: ..."): shown, never judged
    revert: str = ""  # the command that discards this commit (shown on red)
    hint: str = ""  # the next step worth taking, e.g. how to measure the noise
    self_report: float | None = None  # what the target printed, where it disagrees with the scored value
    runs: tuple[str, ...] = ()  # the run ids of this benchmark's ledger rows
    failed: tuple[str, ...] = ()  # the tests whose failure made this a discard (correct first)
    unsealed: bool = False  # the target ran outside the sandbox (autoresearch_isolation = none)
    paired: str = ""  # "paired: 3 pairs, delta -0.0042 +/- 0.0011" when the bar ran again beside this commit
    # (or "not paired: ..." when it was due and the bar could not run)
    adjusted: str = ""  # "adjusted for load: sigma 0.05 -> 0.01" when every value was corrected for machine load

    @property
    def green(self) -> bool:
        return self.status == "keep"

    def to_json(self) -> str:
        return json.dumps({k: jsonable(v) for k, v in asdict(self).items()}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Outcome:
        fields = {k: _from_jsonable(v) for k, v in json.loads(text).items()}
        for name in ("earlier", "now", "runs", "failed", "needs"):
            fields[name] = tuple(fields.get(name, ()))
        return cls(**fields)


def jsonable(value: Any) -> Any:
    """A number JSON can hold: non-finite floats as their text ("nan", "inf"), so JSON stays strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def _from_jsonable(value: Any) -> Any:
    return float(value) if value in ("nan", "inf", "-inf") else value


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if math.isfinite(value) else str(value)


def fmt_delta(value: float | None) -> str:
    return "-" if value is None else f"{value:+.6g}"


def value_text(o: Outcome) -> str:
    """The value, and for a repeated measurement its spread (two significant digits, as an
    uncertainty is written) and sample count."""
    if o.n > 1:
        spread = "-" if o.spread is None else f"{o.spread:.2g}"
        return f"{fmt(o.value)} ± {spread} (mean of {o.n})"
    return fmt(o.value)


def draws_text(o: Outcome) -> str:
    """A re-measurement's draws, earlier runs' and this run's: 'earlier 1.60949; now 1.61535'."""
    return f"earlier {', '.join(map(fmt, o.earlier))}; now {', '.join(map(fmt, o.now))}"


def delta_text(o: Outcome) -> str:
    """The delta, in units of the noise floor when it is known: '-0.0012 = -3.1σ'."""
    if o.delta is None:
        return "-"
    if o.sigma:
        return f"{fmt_delta(o.delta)} = {o.delta / o.sigma:+.1f}σ"
    return fmt_delta(o.delta)


def noise_text(o: Outcome) -> str:
    """'noise: sigma 0.043 from 6 draws of 3 commits; an idea needs -0.052 at one draw, -0.030 at three'."""
    if o.noise_sigma is None:
        return ""
    text = (f"noise: sigma {fmt(o.noise_sigma)} from {o.noise_draws} draws of {o.noise_commits} "
            f"commit{'' if o.noise_commits == 1 else 's'}")
    if len(o.needs) == 2:
        sign = -1 if o.goal == "min" else 1
        text += (f"; an idea needs {fmt_delta(sign * o.needs[0])} at one draw, "
                 f"{fmt_delta(sign * o.needs[1])} at three")
    return text


def bar_text(o: Outcome) -> str:
    parts = []
    if o.best is not None:
        runs = f" (mean of {o.best_n})" if o.best_n > 1 else ""
        parts.append(f"best {fmt(o.best)} at {o.best_commit}{runs}")
    if o.threshold is not None:
        parts.append(f"threshold {fmt(o.threshold)}")
    return ", ".join(parts) or "none"


def self_report_text(o: Outcome) -> str:
    """The target's own number beside the frozen scorer's: 'self-reported 0.01, scored 0.9431'."""
    return f"self-reported {fmt(o.self_report)}, scored {fmt(o.value)}"


def notes_text(o: Outcome) -> str:
    """The plugin's note and the target's, in one line: 'first result for this test on this branch; train.py: ...'."""
    return "; ".join(note for note in (o.note, o.target_note) if note)


def undo_text(o: Outcome) -> str:
    """How to leave a red commit: 'revert: git reset --hard abc1234', or, when nothing before it was
    kept, 'fix: ...' (resetting the baseline would delete it); "" when green or outside git."""
    if o.green or o.status == INTERRUPTED:
        return ""
    if o.revert:
        return f"revert: {o.revert}"
    return f"fix: {BASELINE_FAILED}" if o.commit else ""


def failure_message(o: Outcome, tail: str = "") -> str:
    """The whole red message: what, the bar and where it came from, and how to undo.

    Its lines do not start with ``autoresearch:``: the verdict line is the one an agent greps.
    """
    lines = [f"{o.status.upper()} {o.metric} = {value_text(o)} ({o.goal}) — {o.reason}"]
    if o.status not in UNJUDGED:
        lines.append(f"  bar:    {bar_text(o)}; delta {delta_text(o)}")
    if o.earlier:
        lines.append(f"  draws:  {draws_text(o)} (a re-measurement: every draw of {o.commit} counts)")
    if o.paired:
        lines.append(f"  {o.paired}")
    if o.adjusted:
        lines.append(f"  {o.adjusted} (values and bar; the ledger keeps the raw draws)")
    if o.self_report is not None:
        lines.append(f"  self:   {self_report_text(o)}")
    if notes := notes_text(o):
        lines.append(f"  note:   {notes}")
    if o.hint:
        lines.append(f"  hint:   {o.hint}")
    if o.commit:
        lines.append(f"  commit: {o.commit}{' (unsealed run)' if o.unsealed else ''}")
    if o.log:
        lines.append(f"  log:    {o.log}")
    label, _, how = undo_text(o).partition(": ")
    if how:
        lines.append(f"  {label + ':':<8}{how}")
    if tail:
        lines += ["", "---- last lines of the log ----", tail]
    return "\n".join(lines)


def verdict_line(o: Outcome) -> str:
    """The one line per benchmark an agent greps (``-q``): verdict, value, bar, delta, commit, on red
    the reason and the command to run, what the target asked to have said, and the next step."""
    n = f" n={o.n}" if o.n > 1 else ""
    again = f" (re-measured: {draws_text(o)})" if o.earlier else ""
    bar = f" best={fmt(o.best)}@{o.best_commit}" if o.best is not None else ""
    thr = f" threshold={fmt(o.threshold)}" if o.threshold is not None else ""
    delta = f" delta={fmt_delta(o.delta)}" if o.delta is not None else ""
    sigmas = f" ({o.delta / o.sigma:+.1f}σ)" if o.sigma and o.delta is not None else ""
    commit = f" commit={o.commit}" if o.commit else ""
    unsealed = " unsealed" if o.unsealed else ""
    line = f"autoresearch: {o.status} {o.test} {o.metric}={fmt(o.value)}{n}{again}{bar}{thr}{delta}{sigmas}{commit}{unsealed}"
    tail = [] if o.green else [o.reason]
    if o.paired:
        tail.append(o.paired)
    if o.adjusted:
        tail.append(o.adjusted)
    if o.self_report is not None:
        tail.append(self_report_text(o))
    if o.status in UNJUDGED and o.log:
        tail.append(f"log: {o.log}")
    if undo := undo_text(o):
        tail.append(undo)
    if o.target_note:
        tail.append(o.target_note)
    if o.hint:
        tail.append(o.hint)
    if len(o.now) > 1 and o.noise_sigma is not None:  # a repeat group: the noise it measured, in plain sight
        tail.append(noise_text(o))
    return " | ".join([line, *tail])
