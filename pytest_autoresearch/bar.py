"""The bar and the verdict for one benchmark, decided while the caller holds the ledger lock.

The bar is the best kept commit HEAD builds on; HEAD's value is the mean of every draw of it
under this identity (earlier re-runs included), so a re-run is another measurement, never a
second lottery ticket. With ``min_delta = auto`` (the default) the improvement must exceed k
standard errors of the noise floor of this host once one is known (draws made on other machines
say nothing of this one's noise); until then the verdict is strict. A verdict
in doubt is paired (``paired.py``): the bar commit ran again beside the candidate, and the paired
differences decide.
"""

from __future__ import annotations

import socket
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from . import adaptive, covariate, history, noise, paired, verdict
from .context import Context
from .ledger import Entry
from .settings import AUTO, Spec

NOISE_HINT = f"noise unknown on this host: {noise.CALIBRATE}"
AUTO_UNKNOWN = f"noise floor unknown on this host, judged strictly: measure it with {noise.CALIBRATE}"


@dataclass(frozen=True)
class Judged:
    verdict: verdict.Verdict
    value: float  # the mean of every draw of HEAD: earlier runs' first, then this run's
    earlier: tuple[float, ...]  # HEAD's draws from earlier runs
    sigma: float | None  # standard error of the delta, from the noise floor
    min_delta: float
    note: str
    hint: str
    now: int = 1  # this run's draws
    floor: noise.Noise | None = None  # the noise floor the verdict used
    needs: tuple[float, ...] = ()  # under min_delta auto: what the next idea needs at one draw, at three
    pairs: paired.Paired | None = None  # the paired differences that decided, when the verdict was paired
    pairing: str = ""  # what the verdict line says of it: the pairs, or why pairing was due and not done
    adjustment: covariate.Adjustment | None = None  # the correction for machine load, when it was on

    @property
    def n(self) -> int:
        return len(self.earlier) + self.now


def judge(ctx: Context, test: str, spec: Spec, current: Sequence[float],
          pairs: paired.Pairs | None = None, why_paired: str = "", loads: Sequence[float | None] = ()) -> Judged:
    """Judge HEAD's draws ``current`` (finite or not) against the threshold and the bar.

    With ``pairs`` (the bar commit's draws and HEAD's, made side by side) the paired means are
    judged, with the margin the paired differences give. ``loads``: each current draw's machine
    load (``covariate.KEY``); with the adjustment on, every value below is corrected for its load.
    """
    min_delta = spec.min_delta if spec.min_delta is not None else ctx.settings.min_delta
    notes = [ctx.note] if ctx.note else []
    best, floor, already, earlier = None, None, False, []
    runs, current, adjustment = _view(ctx, test, spec, current, loads)
    if ctx.head is not None and ctx.ledger is not None:
        best = history.best_before(runs, ctx.lineage, spec.goal)
        already = history.kept_at(runs, ctx.head.sha)
        earlier = history.draws(r for r in runs if r.sha == ctx.head.sha).get(ctx.head.sha, [])
        floor = _floor(history.noise_floor(runs, ctx.lineage, current, host=socket.gethostname()), adjustment)
        if best is None and not already and not ctx.note:
            notes.append(fresh_note(ctx, test, spec.metric))
    value = statistics.fmean([*earlier, *current])
    n = len(earlier) + len(current)
    sigma = floor.of_difference(n, best.n) if floor and best else None
    auto = min_delta == AUTO
    if auto:
        if floor is None and spec.min_delta == AUTO:  # the test asked for it: say why it cannot be had yet
            notes.append(AUTO_UNKNOWN)
        min_delta = noise.required_delta(floor, n, best.n, ctx.settings.noise_k) if floor and best else 0.0
    assert isinstance(min_delta, float)
    judged_pairs = None
    if pairs is not None and best is not None:
        fixed = spec.min_delta if spec.min_delta is not None else ctx.settings.min_delta
        moment = _floor(history.moment_floor(runs, ctx.lineage, current, host=socket.gethostname()), adjustment)
        pairs = adjustment.pairs(pairs) if adjustment is not None else pairs
        judged_pairs = paired.judge(pairs, k=ctx.settings.noise_k, floor=moment,
                                    min_delta=fixed if isinstance(fixed, float) else 0.0)
        best = verdict.Best(statistics.fmean(pairs.bar), best.commit, pairs.n, best.sha, best.description)
        value, earlier, sigma, min_delta = statistics.fmean(pairs.candidate), [], judged_pairs.se, judged_pairs.margin
        notes.append(f"paired because {why_paired}")
    outcome = verdict.judge(value, goal=spec.goal, threshold=spec.threshold, best=best,
                            min_delta=min_delta, already_kept=already)
    hint = NOISE_HINT if floor is None and ctx.ledger is not None else ""
    needs: tuple[float, ...] = ()
    if floor is not None and auto:  # against the bar the next idea faces: this commit's draws if kept
        needs = noise.margins(floor, n if outcome.keep or best is None else best.n, ctx.settings.noise_k)
    now = pairs.n if judged_pairs is not None and pairs is not None else len(current)
    pairing = judged_pairs.text() if judged_pairs is not None else why_paired  # else: why pairing was not done
    return Judged(outcome, value, tuple(earlier), sigma, min_delta, "; ".join(notes), hint, now,
                  floor=floor, needs=needs, pairs=judged_pairs, pairing=pairing, adjustment=adjustment)


def _view(ctx: Context, test: str, spec: Spec, current: Sequence[float],
          loads: Sequence[float | None]) -> tuple[list[Entry], list[float], covariate.Adjustment | None]:
    """The judged rows of this benchmark and HEAD's current draws, as the verdict reads them:
    corrected for machine load when the adjustment is on and theta is stable (``covariate.fit``:
    within-commit draws of HEAD's lineage on this host, as the noise floor pools them)."""
    if ctx.head is None or ctx.ledger is None:
        return [], list(current), None
    runs = ctx.runs(("keep", "discard"), test=test, metric=spec.metric, identity=ctx.identity)
    if not ctx.settings.adjust:
        return runs, list(current), None
    loads = [*loads, *[None] * (len(current) - len(loads))]
    adjustment = covariate.fit_runs(runs, ctx.lineage, socket.gethostname(), list(zip(current, loads)),
                                    ctx.head.sha)
    if adjustment is None:
        return runs, list(current), None
    return covariate.adjusted(runs, adjustment), [adjustment.value(y, x) for y, x in zip(current, loads)], adjustment


def _floor(floor: noise.Noise | None, adjustment: covariate.Adjustment | None) -> noise.Noise | None:
    return adjustment.floor(floor) if adjustment is not None else floor


def pairing(ctx: Context, test: str, spec: Spec, current: Sequence[float], device: str | None,
            loads: Sequence[float | None] = ()) -> tuple[str, verdict.Best | None]:
    """Why HEAD's verdict must be paired with its bar ("" when its draws decide), and the bar.

    Read without the lock, like :func:`repeat_step`: it decides what to run, not the verdict.
    """
    if ctx.settings.paired == paired.NEVER or ctx.head is None or ctx.ledger is None or not current:
        return "", None
    runs, current, adjustment = _view(ctx, test, spec, current, loads)
    best = history.best_before(runs, ctx.lineage, spec.goal)
    if best is None or history.kept_at(runs, ctx.head.sha):
        return "", None  # nothing to pair with, or a re-measurement of a kept commit
    earlier = history.draws(r for r in runs if r.sha == ctx.head.sha).get(ctx.head.sha, [])
    floor = _floor(history.noise_floor(runs, ctx.lineage, current, host=socket.gethostname()), adjustment)
    n = len(earlier) + len(current)
    mean = statistics.fmean([*earlier, *current])
    gain = best.value - mean if spec.goal == "min" else mean - best.value
    min_delta = spec.min_delta if spec.min_delta is not None else ctx.settings.min_delta
    se = floor.of_difference(n, best.n) if floor else None
    margin = (noise.required_delta(floor, n, best.n, ctx.settings.noise_k) if floor else 0.0) if min_delta == AUTO \
        else float(min_delta)
    why = paired.doubt(ctx.settings.paired, gain=gain, margin=margin, se=se, k=ctx.settings.noise_k,
                       bar_runs=[r for r in runs if r.sha == best.sha], host=socket.gethostname(), device=device)
    return why, best if why else None



def fresh_note(ctx: Context, test: str, metric: str) -> str:
    """Say plainly why there is nothing to compare with."""
    others = {r.identity for r in ctx.runs(("keep",), test=test, metric=metric)}
    others.discard(ctx.identity)
    if not others or ctx.ledger is None:
        return "first result for this test on this branch"
    changed: set[str] = set()
    for other in others:
        before = ctx.ledger.identity_parts(other)
        changed |= {k for k in ctx.identity_parts.keys() | before.keys() if before.get(k) != ctx.identity_parts.get(k)}
    what = ", ".join(sorted(changed)) or "the evaluation settings"
    return f"new leaderboard: {what} changed since the earlier results (identity {ctx.identity})"


def repeat_step(ctx: Context, test: str, spec: Spec, current: Sequence[float],
                loads: Sequence[float | None] = ()) -> adaptive.Step:
    """Under an adaptive repeat plan, after each draw: stop now, or run the commit again.

    The same bar and noise floor :func:`judge` will use (read without the lock: this only
    decides whether another run is worth its cost; the verdict is still ``judge``'s).
    """
    min_delta = spec.min_delta if spec.min_delta is not None else ctx.settings.min_delta
    best, floor = None, None
    runs, current, adjustment = _view(ctx, test, spec, current, loads)
    if ctx.head is not None and ctx.ledger is not None:
        best = history.best_before(runs, ctx.lineage, spec.goal)
        floor = _floor(history.noise_floor(runs, ctx.lineage, current, host=socket.gethostname()), adjustment)
    return adaptive.next_step(
        current, bar=best.value if best else None, n_bar=best.n if best else 1, goal=spec.goal,
        sigma=floor.sigma if floor else None, max_runs=ctx.settings.repeat, k=ctx.settings.noise_k,
        min_delta=None if min_delta == AUTO else float(min_delta),
    )
