"""The search's console: what a user reads while a search runs, instead of Tune's tables.

One line when a trial ends (finished, stopped at a rung, failed), with its best validation
metric and the search's best so far; a warning the moment a trial reports one; and, at most
every ``every_s`` seconds, a progress line: trials done and running, time elapsed, and an ETA
from the pace of the trials done so far. ``trial_table`` is the table printed at the end.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

from ray import tune

from mikgnn.distributed.train_loop import FINAL, WARNING

PROGRESS_EVERY_S = 30.0


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _value(value) -> str:
    """A searched value as a person reads it: λ = 8.3e-07, not 0.0000."""
    if isinstance(value, float):
        return f"{value:.2e}" if value != 0 and not 1e-2 <= abs(value) < 1e4 else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return str(value)


class SearchConsole(tune.Callback):
    """Prints the search's progress to ``out`` (stdout)."""

    def __init__(self, total: int, metric: str, label: Callable | None = None, compare: bool = True,
                 every_s: float = PROGRESS_EVERY_S, out=None, clock: Callable[[], float] = time.monotonic):
        """``label(trial)``: how a trial is named (its id by default); ``compare``: whether the
        trials compete (a search: the best so far is shown) or not (a reproduction's cells)."""
        self.total, self.metric, self.label, self.compare = total, metric, label, compare
        self.every_s, self.out, self.clock = every_s, out, clock
        self._reset()

    def _reset(self) -> None:
        self.start = self.last_progress = self.clock()
        self.best: tuple[float, str] | None = None
        self.done: set[str] = set()
        self.running: set[str] = set()
        self.epochs: dict[str, int] = {}
        self.stopped: set[str] = set()
        self.finished: set[str] = set()

    def __getstate__(self) -> dict:
        return {k: getattr(self, k) for k in ("total", "metric", "label", "compare", "every_s", "clock")}

    def __setstate__(self, state: dict) -> None:
        """A resumed search gets its callbacks back from Tune's state: its clock starts again."""
        self.__dict__.update(state, out=None)
        self._reset()

    def _print(self, line: str) -> None:
        print(line, file=self.out or sys.stdout, flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if WARNING in result:
            self._print(f"warning: {self._name(trial)}: {result[WARNING]}")
        self.epochs[trial.trial_id] = int(result.get("epoch", self.epochs.get(trial.trial_id, 0)))
        if result.get(FINAL):
            self.finished.add(trial.trial_id)
        elif result.get("done"):  # Tune stops it at this result: its scheduler's decision
            self.stopped.add(trial.trial_id)
        if self.clock() - self.last_progress >= self.every_s:
            self._progress()

    def on_trial_complete(self, iteration, trials, trial, **info):
        epoch = self.epochs.get(trial.trial_id, 0)
        if trial.trial_id in self.finished:
            self._ended(trial, f"finished after epoch {epoch}")
        elif trial.trial_id in self.stopped:
            self._ended(trial, f"stopped by ASHA after epoch {epoch}")
        else:  # stopped on the search's way out (an interrupt): the driver says so
            self.running.discard(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trial, f"FAILED after epoch {self.epochs.get(trial.trial_id, 0)} (its MLflow run says why)")

    def _ended(self, trial, how: str) -> None:
        self.running.discard(trial.trial_id)
        self.done.add(trial.trial_id)
        last = trial.last_result or {}
        value = last.get(self.metric)  # what Tune ranks the trial by: its last report (a finished one: its best epoch)
        if isinstance(value, (int, float)) and math.isfinite(value) and (self.best is None or value > self.best[0]):
            self.best = (float(value), trial.trial_id)
        mine = f"{self.metric} {value:.4f}" if isinstance(value, (int, float)) else f"no {self.metric}"
        self._print(f"{self._name(trial)} {how}: {mine}{self._best()}")
        self._progress()

    def _name(self, trial) -> str:
        return self.label(trial) if self.label else f"trial {trial.trial_id}"

    def _best(self) -> str:
        return f"; best so far {self.best[0]:.4f} (trial {self.best[1]})" if self.best and self.compare else ""

    def _progress(self) -> None:
        self.last_progress = now = self.clock()
        elapsed, done = now - self.start, len(self.done)
        eta = f", about {_duration(elapsed / done * (self.total - done))} left" if 0 < done < self.total else ""
        self._print(f"[{done}/{self.total} trials done, {len(self.running)} running, {_duration(elapsed)} "
                    f"elapsed{eta}]")


def trial_table(results, metric: str, searched: tuple[str, ...]) -> list[str]:
    """Every trial of a ResultGrid, best first, as ``tuner.best_result`` ranks them: those that
    trained to their end, then those stopped early, each by ``metric``; its searched values and
    validation metrics. A trial ASHA stopped at a rung reports that epoch's metric, and can lead
    the trial that went on to converge, which is the one the search logs and serves."""
    rows = []
    for result in results:
        metrics = result.metrics or {}
        value = metrics.get(metric)
        score = value if isinstance(value, (int, float)) and math.isfinite(value) else -math.inf
        epoch = metrics.get("epoch", 0)
        status = ("failed" if result.error else
                  "not converged" if metrics.get(FINAL) and str(metrics.get(WARNING, "")).startswith("not converged")
                  else "finished" if metrics.get(FINAL)
                  else f"ASHA at epoch {epoch}" if metrics.get("done") else f"stopped at epoch {epoch}")
        auc = metrics.get("valid/auc")
        rows.append((bool(metrics.get(FINAL)), score, [str(metrics.get("trial_id", "?")), status]
                     + [_value(result.config.get(k, "")) for k in searched]
                     + [f"{value:.4f}" if score > -math.inf else "-", f"{auc:.4f}" if isinstance(auc, float) else "-"]))
    header = ["trial", "status", *searched, metric, "valid/auc"]
    body = [cells for _, _, cells in sorted(rows, key=lambda r: (not r[0], -r[1]))]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *body]]
