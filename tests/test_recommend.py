"""Recommendations out: the library on a trained model, pipelines/recommend.py end to end (Ray
Data, Parquet in original ids), its refusals, and the best model of a search served over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import free_port, write_custom

from mikgnn.model_store import STATE_FILE, CheckpointError, load_trained
from mikgnn.recommend import Recommendations, resolve_users

REPO = Path(__file__).resolve().parents[1]
K = 3


def _script(name: str, args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "pipelines" / f"{name}.py"), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A custom dataset with string ids, and MI-KGNN trained on it by train.py: its checkpoint."""
    work = tmp_path_factory.mktemp("recommend")
    folder = write_custom(work / "mine")
    done = _script("train", ["--dataset", str(folder), "--processed", str(work / "processed"), "--output",
                             str(work / "run"), "--epochs", "2", "--set", "dim=8", "--set", "n_neighbours=4"], work)
    assert done.returncode == 0, done.stderr[-2000:]
    return work / "run" / "checkpoint"


def _train_positives(model) -> set[tuple[str, str]]:
    train, ids = model.data.splits["train"], model.ids
    positive = train["label"] == 1
    return set(zip(ids["users"][train["user"][positive]], ids["items"][train["item"][positive]]))


def test_every_user_gets_k_items_best_first_in_original_ids_none_it_trained_on(trained):
    model = load_trained(trained)
    rows = pd.DataFrame(Recommendations(model, K).block(np.arange(model.data.n_users)))
    assert len(rows) == model.data.n_users * K
    assert set(rows["user"]) == {f"u{u}" for u in range(10)} and set(rows["item"]) <= {f"song{i}" for i in range(12)}
    for _, group in rows.groupby("user"):
        assert group["rank"].tolist() == [1, 2, 3] and group["score"].is_monotonic_decreasing
        assert group["item"].is_unique
    assert not _train_positives(model) & set(zip(rows["user"], rows["item"]))
    kept = pd.DataFrame(Recommendations(model, 12, keep_seen=True).block(np.arange(model.data.n_users)))
    assert _train_positives(model) <= set(zip(kept["user"], kept["item"]))  # --keep-seen: nothing excluded


def test_the_scores_are_the_models_own(trained):
    model = load_trained(trained)
    rows = Recommendations(model, K).block(np.array([4]))
    index = {song: k for k, song in enumerate(model.ids["items"])}
    with torch.no_grad():
        logits = model.model(torch.tensor([4] * K), torch.tensor([index[i] for i in rows["item"]]))
    np.testing.assert_allclose(rows["score"], logits.numpy(), rtol=1e-5)


def test_explain_names_the_relations_and_entities_the_attention_weighted(trained):
    model = load_trained(trained)
    reasons = Recommendations(model, K, explain=True).block(np.array([0, 1]))["reason"]
    assert len(reasons) == 2 * K
    for reason in reasons:
        parts = reason.split("; ")
        assert 1 <= len(parts) <= 3 and all(p.split(":")[0] in {"by", "from", "self"} for p in parts)
        weights = [float(p.rsplit("(", 1)[1].rstrip(")")) for p in parts]
        assert weights == sorted(weights, reverse=True) and 0 < sum(weights) <= 1 + 1e-6


@pytest.mark.parametrize("k", [0, 13])
def test_k_outside_the_catalogue_is_refused(trained, k):
    with pytest.raises(ValueError, match=r"k = .*: must lie in \[1, 12\]"):
        Recommendations(load_trained(trained), k)


def test_a_request_of_no_known_user_gets_no_rows(trained):
    rows = pd.DataFrame(Recommendations(load_trained(trained), K, explain=True).block(np.zeros(0, np.int64)))
    assert rows.empty and list(rows.columns) == ["user", "rank", "item", "score", "reason"]


def test_unknown_users_are_listed_and_the_others_kept():
    request = resolve_users(["u3", "ghost", "u1", "nobody"], np.array(["u0", "u1", "u2", "u3"]))
    assert request.indices.tolist() == [3, 1] and request.unknown == ["ghost", "nobody"]


def test_a_planted_checkpoint_object_is_refused_and_never_runs(trained, tmp_path):
    copy = tmp_path / "checkpoint"
    copy.mkdir()
    for name in os.listdir(trained):
        (copy / name).write_bytes((trained / name).read_bytes())
    marker = tmp_path / "ran"

    class RunsCode:
        def __reduce__(self):
            return subprocess.call, (["touch", str(marker)],)

    state = torch.load(copy / STATE_FILE, weights_only=True)
    state["extra"] = RunsCode()
    torch.save(state, copy / STATE_FILE)
    with pytest.raises(CheckpointError, match="holds more than tensors"):
        load_trained(copy)
    assert not marker.exists()


@pytest.mark.ray
def test_recommend_writes_every_user_as_parquet_atomically(trained, ray_local, tmp_path):
    address = ray_local.get_runtime_context().gcs_address
    out = tmp_path / "recs"
    done = _script("recommend", ["--checkpoint", str(trained), "--k", str(K), "--output", str(out),
                                 "--batch-users", "4", "--concurrency", "2", "--address", address], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = pd.read_parquet(out)
    model = load_trained(trained)
    assert len(rows) == model.data.n_users * K and rows.groupby("user").size().eq(K).all()
    assert set(rows["user"]) == set(model.ids["users"])
    assert not _train_positives(model) & set(zip(rows["user"], rows["item"]))
    summary = json.loads((out / "_SUCCESS").read_text())
    assert summary["rows"] == len(rows) and summary["users"] == model.data.n_users
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recs"]  # no staging folder left


@pytest.mark.ray
def test_unknown_user_ids_are_reported_and_the_rest_served(trained, ray_local, tmp_path):
    (tmp_path / "users.txt").write_text("u2\nghost\nu5\n")
    done = _script("recommend", ["--checkpoint", str(trained), "--k", "2", "--users", str(tmp_path / "users.txt"),
                                 "--output", str(tmp_path / "recs"), "--address",
                                 ray_local.get_runtime_context().gcs_address], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 user id(s)" in done.stderr and "ghost" in done.stderr
    rows = pd.read_parquet(tmp_path / "recs")
    assert sorted(set(rows["user"])) == ["u2", "u5"] and len(rows) == 4
    assert json.loads((tmp_path / "recs" / "_SUCCESS").read_text())["unknown_users"] == ["ghost"]


@pytest.mark.parametrize("args,named", [
    ("--k 0", "--k = 0: must be an integer >= 1"),
    ("--k 13", "k = 13: must lie in [1, 12]"),
    ("--output {tmp}/exists", "exists already"),
    ("--k 2 --users {tmp}/absent.txt", "--users {tmp}/absent.txt: no such file"),
    ("--k 2 --users {tmp}/ghosts.txt", "none of its 2 ids is a user of the dataset"),
    ("--concurrency 0", "--concurrency = 0"),
])
def test_bad_input_is_refused_with_nothing_written(trained, tmp_path, args, named):
    (tmp_path / "exists").mkdir()
    (tmp_path / "ghosts.txt").write_text("ghost\nnobody\n")
    argv = ["--checkpoint", str(trained), "--output", str(tmp_path / "recs"), *args.format(tmp=tmp_path).split()]
    done = _script("recommend", argv, tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert named.format(tmp=tmp_path) in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "recs").exists() and not list((tmp_path / "exists").iterdir())


def test_a_folder_that_is_no_checkpoint_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    done = _script("recommend", ["--checkpoint", str(tmp_path / "empty"), "--output", str(tmp_path / "r")], tmp_path)
    assert done.returncode == 2 and "is not a model checkpoint: it needs state.pt and config.json" in done.stderr


def test_an_unknown_run_and_a_run_without_checkpoint_are_refused(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    bare = client.create_run(client.create_experiment("x")).info.run_id
    for run, named in (("0123456789abcdef", "--run 0123456789abcdef: no such run"),
                       (bare, f"--run {bare} has no checkpoint")):
        done = _script("recommend", ["--run", run, "--tracking-uri", uri, "--output", str(tmp_path / "r")], tmp_path)
        assert done.returncode == 2 and named in done.stderr, done.stderr[-2000:]
        assert not (tmp_path / "r").exists()


@pytest.mark.ray
@pytest.mark.slow
def test_the_best_model_of_a_search_is_registered_and_served_over_http(ray_local, tmp_path):
    """tune.py logs its best trial as a pyfunc model on that trial's run, registered under the
    dataset's name, and links the run from the search's description; a real
    `mlflow models serve` answers /invocations with what recommend() gives; recommend.py --run
    of the search writes the same model's Parquet and links it on the trial's run."""
    from mlflow.tracking import MlflowClient

    folder = write_custom(tmp_path / "mine")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    address = ray_local.get_runtime_context().gcs_address
    done = _script("tune", ["--dataset", str(folder), "--num-samples", "1", "--epochs", "2", "--set", "protocol=full",
                            "--processed", str(tmp_path / "processed"), "--storage-path", str(tmp_path / "ray"),
                            "--tracking-uri", uri, "--address", address], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "best model: models:/" in done.stdout
    client = MlflowClient(uri)
    version = client.search_model_versions("name = 'mine'")[0]
    trial = client.get_run(version.run_id)  # the model lives on the best trial's run
    assert trial.data.tags["mikgnn.kind"] == "trial" and trial.info.status == "FINISHED"
    (search,) = client.search_runs([trial.info.experiment_id], filter_string="tags.`mikgnn.kind` = 'search'")
    assert f"/runs/{trial.info.run_id})" in search.data.tags["mlflow.note.content"]  # its description links it
    assert f"pipelines/recommend.py --run {search.info.run_id}" in done.stdout  # the next command, printed
    checkpoint = client.download_artifacts(trial.info.run_id, "best_checkpoint", str(tmp_path / "dl"))
    expected = pd.DataFrame(Recommendations(load_trained(checkpoint), 2).block(np.array([1, 7])))

    port = free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/mine/latest",
                               "--host", "127.0.0.1", "--port", str(port), "--env-manager", "local"],
                              env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read().decode()[-3000:]
                time.sleep(1)
        body = {"dataframe_split": {"columns": ["user"], "data": [["u1"], ["u7"], ["ghost"]]}, "params": {"k": 2}}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        answer = pd.DataFrame(json.loads(urllib.request.urlopen(request, timeout=60).read())["predictions"])
        body["dataframe_split"]["data"] = [["ghost"]]  # only unknown users: 200, no rows
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as reply:
            assert reply.status == 200 and not json.loads(reply.read())["predictions"]
        for k, named in ((0, "params.k must be from 1 to"), (10**6, "got 1000000"), ("x", "'k'")):
            body = {"dataframe_split": {"columns": ["user"], "data": [["u1"]]}, "params": {"k": k}}
            request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", json.dumps(body).encode(),
                                             {"Content-Type": "application/json"})
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=60)
            error = json.loads(refused.value.read())
            assert refused.value.code == 400 and named in error["message"], error
            assert "stack_trace" not in error and "Traceback" not in error["message"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert answer[["user", "rank", "item"]].values.tolist() == expected[["user", "rank", "item"]].values.tolist()
    np.testing.assert_allclose(answer["score"], expected["score"], rtol=1e-5)

    done = _script("recommend", ["--run", search.info.run_id, "--tracking-uri", uri, "--k", "2", "--output",
                                 str(tmp_path / "recs"), "--address", address], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = pd.read_parquet(tmp_path / "recs")
    got = rows[rows["user"].isin(["u1", "u7"])].sort_values(["user", "rank"])
    assert got["item"].tolist() == expected["item"].tolist()
    assert client.get_run(trial.info.run_id).data.tags["mikgnn.recommendations"] == str(tmp_path / "recs")


@pytest.mark.ray
@pytest.mark.slow
def test_recommend_on_a_music_trial_covers_every_user_in_lastfm_ids(shared_data, ray_local, tmp_path):
    """Music (Last.FM): every one of its 1,872 users gets K rows, in Last.FM's userID / artistID."""
    done = _script("train", ["--dataset", "music", "--data-root", str(shared_data), "--processed",
                             str(tmp_path / "processed"), "--output", str(tmp_path / "run"), "--epochs", "1",
                             "--set", "protocol=sampled"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    done = _script("recommend", ["--checkpoint", str(tmp_path / "run" / "checkpoint"), "--k", "5", "--output",
                                 str(tmp_path / "recs"), "--address", ray_local.get_runtime_context().gcs_address],
                   tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = pd.read_parquet(tmp_path / "recs")
    raw = pd.read_csv(shared_data / "music" / "user_artists.dat", sep="\t", dtype=str)
    artists = set(pd.read_csv(shared_data / "music" / "item_index2entity_id.txt", sep="\t", header=None,
                              dtype=str)[0])
    assert len(rows) == 1872 * 5 and rows["user"].nunique() == 1872
    assert set(rows["user"]) <= set(raw["userID"]) and set(rows["item"]) <= artists
    model = load_trained(tmp_path / "run" / "checkpoint")
    assert not _train_positives(model) & set(zip(rows["user"], rows["item"]))
    liked = set(zip(raw["userID"], raw["artistID"]))
    train_pairs = _train_positives(model)
    assert train_pairs <= liked  # the training positives are Last.FM's own (user, artist) pairs


@pytest.mark.parametrize("script,argv", [("recommend", ["--run", "0123456789abcdef", "--output", "r"]),
                                         ("report", [])])
def test_a_reader_run_where_there_is_no_store_refuses_and_creates_none(tmp_path, script, argv):
    done = _script(script, argv, tmp_path)
    assert done.returncode == 2 and f"no MLflow store at {tmp_path / 'mlflow.db'}" in done.stderr, done.stderr[-2000:]
    assert not list(tmp_path.iterdir())  # no mlflow.db, no output
