"""The search's console (``distributed.console``): the lines a user reads, driven by Tune's own
Trial objects and a clock the test moves."""

from __future__ import annotations

import io

from ray.tune.experiment import Trial

from mikgnn.distributed.console import SearchConsole, trial_table
from mikgnn.distributed.train_loop import FINAL, WARNING
from mikgnn.distributed.tuner import best_result

METRIC = "valid/recall@20"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _trial(trial_id: str) -> Trial:
    return Trial("run_trial", config={}, trial_id=trial_id, stub=True)


def _report(console: SearchConsole, trial: Trial, result: dict) -> None:
    trial.update_last_result(result)
    console.on_trial_result(0, [], trial, result)


def test_ended_trials_warnings_and_progress_with_an_eta():
    out, clock = io.StringIO(), Clock()
    console = SearchConsole(4, METRIC, every_s=30, out=out, clock=clock)
    a, b, c = _trial("a"), _trial("b"), _trial("c")
    for trial in (a, b, c):
        console.on_trial_start(0, [], trial)
    clock.now = 10
    _report(console, a, {"epoch": 1, METRIC: 0.25})  # an epoch above its final: not what Tune ranks it by
    _report(console, b, {"epoch": 1, METRIC: 0.05, WARNING: "not learning: validation AUC 0.51"})
    _report(console, b, {"epoch": 2, METRIC: 0.06, "done": True})  # ASHA stops it here
    console.on_trial_complete(0, [], b)
    clock.now = 40
    _report(console, a, {"epoch": 2, METRIC: 0.20})
    _report(console, a, {METRIC: 0.20, "epoch": 2, FINAL: True})
    console.on_trial_complete(0, [], a)
    console.on_trial_complete(0, [], c)  # stopped on the search's way out: not an ended trial
    lines = out.getvalue().splitlines()
    assert lines == [
        "warning: trial b: not learning: validation AUC 0.51",
        "trial b stopped by ASHA after epoch 2: valid/recall@20 0.0600; best so far 0.0600 (trial b)",
        "[1/4 trials done, 2 running, 10s elapsed, about 30s left]",
        "[1/4 trials done, 2 running, 40s elapsed, about 2m00s left]",  # 30 s after the last
        "trial a finished after epoch 2: valid/recall@20 0.2000; best so far 0.2000 (trial a)",
        "[2/4 trials done, 1 running, 40s elapsed, about 40s left]",
    ]


def test_cells_that_do_not_compete_show_no_best():
    out = io.StringIO()
    console = SearchConsole(1, "valid/auc", label=lambda trial: "cell MF|seed0", compare=False, out=out)
    trial = _trial("x")
    console.on_trial_start(0, [], trial)
    _report(console, trial, {"epoch": 3, "valid/auc": 0.8, FINAL: True})
    console.on_trial_complete(0, [], trial)
    assert out.getvalue().splitlines()[0] == "cell MF|seed0 finished after epoch 3: valid/auc 0.8000"


class _Result:
    def __init__(self, metrics: dict, config: dict, error=None):
        self.metrics, self.config, self.error = metrics, config, error


def test_the_final_table_lists_every_trial_best_first_with_readable_values():
    """Best first as the search ranks them: the trials that trained to their end, then those
    stopped early (t1, ASHA at epoch 3, reports a higher metric than the converged t2, which is
    the best configuration the search prints, logs and serves)."""
    results = [
        _Result({"trial_id": "t1", METRIC: 0.3, "valid/auc": 0.7, "epoch": 3, "done": True}, {"lambda": 8.26e-7}),
        _Result({"trial_id": "t2", METRIC: 0.2, "valid/auc": 0.8, FINAL: True}, {"lambda": 9.1e-5}),
        _Result({"trial_id": "t3"}, {"lambda": 1e-6}, error=RuntimeError("boom")),
        _Result({"trial_id": "t4", METRIC: 0.05, "valid/auc": 0.6, FINAL: True,
                 WARNING: "not converged: validation AUC still rising at epoch 20 of 20"}, {"lambda": 1e-5}),
    ]
    lines = trial_table(results, METRIC, ("lambda",))
    assert [line.split()[0] for line in lines] == ["trial", "t2", "t4", "t1", "t3"]
    assert lines[1].split() == ["t2", "finished", "9.10e-05", "0.2000", "0.8000"]
    assert lines[2].split()[:3] == ["t4", "not", "converged"]
    assert lines[3].split() == ["t1", "ASHA", "at", "epoch", "3", "8.26e-07", "0.3000", "0.7000"]
    assert lines[4].split() == ["t3", "failed", "1.00e-06", "-", "-"]
    assert best_result([r for r in results if METRIC in r.metrics]).metrics["trial_id"] == "t2"
