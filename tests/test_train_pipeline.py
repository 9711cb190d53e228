"""pipelines/train.py end to end on a tiny dataset in the official ML-20M format."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_movie

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "pipelines"))
import train  # noqa: E402

from mikgnn.config import MODELS, ModelConfig, TrainConfig, table1, train_for_model  # noqa: E402
from mikgnn.experiment import build, fit  # noqa: E402
from mikgnn.processed import load_processed  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.mark.parametrize("model", MODELS)
def test_train_writes_metrics(ray_local, tmp_path, model):
    write_movie(tmp_path / "raw", n_users=40)
    out = tmp_path / "run"
    code = train.main(["--dataset", "movie", "--data-root", str(tmp_path / "raw"), "--model", model,
                       "--processed", str(tmp_path / "processed"), "--output", str(out),
                       "--epochs", "3", "--set", "batch_size=64", "--set", "dim=8", "--set", "n_neighbours=4"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("valid/auc", "test/auc", "test/f1", "test/recall@20", "test/ndcg@100", "test/recall@2"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert 1 <= metrics["best_epoch"] <= 3 and len(metrics["epoch_seconds"]) == len(metrics["history"])
    valid = [h["valid/auc"] for h in metrics["history"]]
    assert metrics["best_epoch"] == 1 + valid.index(max(valid))  # the best epoch is the selected one
    assert metrics["valid/auc"] == max(valid)
    # The recorded configuration reproduces the run: the library's fit gives the same test metrics.
    cfg = metrics["config"]
    train_cfg = TrainConfig(**(cfg["train"] | {"ks": tuple(cfg["train"]["ks"])}))
    again = fit(build(load_processed(tmp_path / "processed"), ModelConfig(**cfg["model"]), train_cfg), train_cfg)
    def scores(m: dict) -> dict:
        return {k: v for k, v in m.items() if k.startswith("test/") and k != "test/seconds"}

    assert len(scores(metrics)) >= 12 and scores(again) == scores(metrics)
    assert metrics["config"]["model"]["model"] == model and metrics["config"]["model"]["dim"] == 8
    own = train_for_model(table1("movie").train, model)  # movie's Table 1 under the model's own defaults
    assert metrics["config"]["train"]["lr"] == own.lr and metrics["config"]["train"]["loss"] == own.loss
    origin = "model" if own.lr != table1("movie").train.lr else "table1"
    assert metrics["config"]["origin"]["train.lr"] == origin and metrics["config"]["origin"]["model.dim"] == "flag"
    assert "full ranking" in metrics["protocol"]["topk"]


def test_bad_configuration_is_reported(tmp_path, capsys):
    assert train.main(["--dataset", "music", "--set", "theta=2"]) == 2
    assert "theta must lie in [-1, 1], got 2.0" in capsys.readouterr().err
    config = tmp_path / "run.yaml"
    config.write_text("train: {learning_rate: 0.1}\n")
    assert train.main(["--dataset", "music", "--config", str(config)]) == 2
    assert f"{config}: unknown key train.learning_rate" in capsys.readouterr().err
    assert train.main(["--dataset", "music", "--variant", "w/o-neig-att", "--set", "theta=0.5"]) == 2
    assert "--variant w/o-neig-att fixes theta = 1.0" in capsys.readouterr().err


@pytest.mark.parametrize("argv,transform", [
    ([], "identity"), (["--set", "transform=learned"], "learned"),
    (["--model", "kgcn"], "learned"), (["--model", "kgcn-ls"], "learned"),
    (["--model", "kgcn", "--set", "transform=identity"], "identity"),
])
def test_transform_defaults_and_flag(argv, transform):
    model, _ = train.configs_from_args(train.build_parser().parse_args(["--dataset", "music", *argv]))
    assert model.transform == transform


def test_concat_without_a_learned_transform_is_reported(capsys):
    assert train.main(["--dataset", "music", "--set", "aggregator=concat"]) == 2
    assert "concat aggregator maps 2d to d features and has no identity transform" in capsys.readouterr().err
    model, _ = train.configs_from_args(train.build_parser().parse_args(
        ["--dataset", "music", "--set", "aggregator=concat", "--set", "transform=learned"]))
    assert (model.aggregator, model.transform) == ("concat", "learned")


def test_one_process_training_needs_neither_ray_nor_mlflow(tmp_path):
    """The library and pipelines/train.py without --workers run where Ray and MLflow cannot be
    imported: preparation runs in-process (``mikgnn.prepare``)."""
    write_movie(tmp_path / "raw", n_users=30)
    out = tmp_path / "run"
    argv = ["train.py", "--dataset", "movie", "--data-root", str(tmp_path / "raw"), "--epochs", "2",
            "--processed", str(tmp_path / "processed"), "--output", str(out),
            "--set", "dim=8", "--set", "n_neighbours=4"]
    script = ("import runpy, sys\n"
              "for name in ('ray', 'mlflow'):\n"
              "    sys.modules[name] = None  # import ray -> ImportError\n"
              f"sys.argv = {argv!r}\n"
              f"runpy.run_path({str(REPO / 'pipelines' / 'train.py')!r}, run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "wrote" in done.stdout and (tmp_path / "processed" / "manifest.json").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test/auc"] <= 1.0 and len(metrics["history"]) == 2


def test_a_diverged_run_fails_and_writes_nothing(tmp_path, capsys):
    """A NaN or infinite loss stops the run at once: exit 1, the reason, no metrics.json."""
    write_movie(tmp_path / "raw", n_users=30)
    out = tmp_path / "run"
    code = train.main(["--dataset", "movie", "--data-root", str(tmp_path / "raw"), "--epochs", "3",
                       "--processed", str(tmp_path / "processed"), "--output", str(out), "--set", "lr=1e38"])
    assert code == 1
    err = capsys.readouterr().err
    assert "training diverged" in err and "lr 1e+38" in err
    assert not out.exists()


def _interrupted(cmd: list[str], tmp_path: Path, ready, sig: int) -> tuple[int, str, str]:
    """Run ``cmd``, send ``sig`` once ``ready(stdout so far)`` holds; its exit code and output."""
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:  # files: a full pipe would stall it
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, cwd=tmp_path)
        deadline = time.time() + 300
        while proc.poll() is None and time.time() < deadline and not ready(out.read_text()):
            time.sleep(0.5)
        assert proc.poll() is None, f"ended before the signal: {err.read_text()[-3000:]}"
        proc.send_signal(sig)
        proc.wait(timeout=120)
    return proc.returncode, out.read_text(), err.read_text()


@pytest.mark.parametrize("workers", [None, 1])
def test_an_interrupted_run_says_so_and_writes_nothing(ray_local, tmp_path, workers):
    """Ctrl-C (one process) or SIGTERM (on Ray): exit 130 with what was and was not written, no
    traceback; with --workers, the --run-name that continues it. topk_every=0 prints epochs
    without validation's R@20."""
    write_movie(tmp_path / "raw", n_users=40)
    out = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "pipelines" / "train.py"), "--dataset", "movie", "--data-root",
           str(tmp_path / "raw"), "--processed", str(tmp_path / "processed"), "--output", str(out),
           "--epochs", "100000", "--set", "patience=100000", "--set", "dim=8", "--set", "n_neighbours=4",
           "--set", "topk_every=0"]
    if workers:
        cmd += ["--workers", str(workers), "--run-name", "stopped", "--storage-path", str(tmp_path / "ray"),
                "--address", ray_local.get_runtime_context().gcs_address]

        def ready(_: str) -> bool:
            return any((tmp_path / "ray" / "stopped").glob("checkpoint_*"))
    else:
        def ready(stdout: str) -> bool:
            return "epoch   2" in stdout

    code, stdout, stderr = _interrupted(cmd, tmp_path, ready, signal.SIGTERM if workers else signal.SIGINT)
    assert code == 130, stderr[-3000:]
    assert "interrupted after" in stderr and "no result written" in stderr and "Traceback" not in stderr
    assert not (out / "metrics.json").exists()
    if workers:  # and that rerun continues it
        assert "rerun with --run-name stopped to continue from its last checkpoint" in stderr
        states = sorted((tmp_path / "ray" / "stopped").glob("checkpoint_*/state.json"))  # time-stamped names
        first = [h["train/seconds"] for h in json.loads(states[0].read_text())["history"]]
        epochs = len(json.loads(states[-1].read_text())["history"]) + 2
        cmd[cmd.index("--epochs") + 1] = str(epochs)
        rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        seconds = json.loads((out / "metrics.json").read_text())["epoch_seconds"]
        assert len(seconds) == epochs and seconds[:len(first)] == first  # those epochs were not trained again
    else:
        assert "epoch   1" in stdout and "valid auc" in stdout and "R@20" not in stdout


def test_a_rerun_never_overwrites_and_tracking_uri_logs_the_run_as_a_trial(tmp_path, monkeypatch, capsys):
    """The default run folder gets -2 on a rerun; an --output that holds a run is refused before
    training; --tracking-uri logs the finished run (params under the paper's names, each epoch
    once, the best weights that recommend.py loads)."""
    from mlflow.tracking import MlflowClient

    from mikgnn.model_store import load_trained

    monkeypatch.chdir(tmp_path)
    write_movie(tmp_path / "raw", n_users=30)
    argv = ["--dataset", "movie", "--data-root", str(tmp_path / "raw"), "--epochs", "2", "--set", "dim=8",
            "--set", "n_neighbours=4", "--processed", str(tmp_path / "processed")]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert train.main([*argv, "--tracking-uri", uri]) == 0
    first = json.loads((tmp_path / "runs" / "movie-mikgnn-seed0" / "metrics.json").read_text())
    assert train.main(argv) == 0
    assert (tmp_path / "runs" / "movie-mikgnn-seed0-2" / "metrics.json").is_file()
    assert json.loads((tmp_path / "runs" / "movie-mikgnn-seed0" / "metrics.json").read_text()) == first
    capsys.readouterr()
    assert train.main([*argv, "--output", str(tmp_path / "runs" / "movie-mikgnn-seed0")]) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "movie-mikgnn-seed0-3").exists()

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("movie").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["mikgnn.kind"] == "train"
    assert {"theta", "n", "h", "lambda", "lr", "dataset", "model", "d"} <= set(run.data.params)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "valid/auc")] == [1, 2]
    assert run.data.metrics["test/auc"] == pytest.approx(first["test/auc"]) and len(run.data.metrics) <= 20
    best = client.download_artifacts(run.info.run_id, "best_checkpoint", str(tmp_path / "best"))
    assert load_trained(best).model_cfg.dim == 8


def test_a_ray_train_run_is_logged_from_its_last_checkpoint(ray_local, tmp_path):
    from mlflow.tracking import MlflowClient

    write_movie(tmp_path / "raw", n_users=30)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = train.main(["--dataset", "movie", "--data-root", str(tmp_path / "raw"), "--epochs", "2", "--set", "dim=8",
                       "--processed", str(tmp_path / "processed"), "--output", str(tmp_path / "run"), "--workers", "2",
                       "--storage-path", str(tmp_path / "ray"), "--tracking-uri", uri,
                       "--address", ray_local.get_runtime_context().gcs_address])
    assert code == 0
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("movie").experiment_id])
    assert run.data.params["workers"] == "2" and "test/auc" in run.data.metrics
    assert [m.step for m in client.get_metric_history(run.info.run_id, "valid/auc")] == [1, 2]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"best_checkpoint", "settings.json"}
