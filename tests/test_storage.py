"""Paths and URIs through pyarrow filesystems: processed datasets and Ray Train results on S3.

S3 is a real S3 API served over HTTP on 127.0.0.1 by moto's server (no cloud reachable here);
the project reaches it through pyarrow's S3 filesystem exactly as it would reach AWS."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from conftest import free_port, tiny_data, write_custom, write_movie

from mikgnn.config import ModelConfig, TrainConfig
from mikgnn.datasets import get_dataset
from mikgnn.processed import MANIFEST, load_processed, read_manifest, save_processed
from mikgnn.storage import atomic_folder, resolve

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def s3_bucket():
    """A fresh bucket on a local S3 server; yields the URI of a folder in it."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("the local S3 server did not start") from None
                time.sleep(0.2)
        uri = f"s3://key:secret@bucket/mikgnn?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
        fs, _ = pafs.FileSystem.from_uri(uri + "&allow_bucket_creation=true")
        fs.create_dir("bucket")
        yield uri
    finally:
        server.terminate()
        server.wait(timeout=10)


def _at(uri: str, folder: str) -> str:
    base, query = uri.split("?")
    return f"{base}/{folder}?{query}"


def test_local_paths_are_absolute_and_uris_keep_their_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    local = resolve("processed/music")
    assert local.is_local and local.path == str(tmp_path / "processed" / "music")
    assert (local / "train").uri == str(tmp_path / "processed" / "music" / "train")
    remote = resolve("s3://k:s@bucket/a/b?endpoint_override=127.0.0.1:9&scheme=http")
    assert not remote.is_local and remote.path == "bucket/a/b"
    assert (remote / "c").uri == "s3://k:s@bucket/a/b/c?endpoint_override=127.0.0.1:9&scheme=http"
    assert (remote / "c").path == "bucket/a/b/c"
    with pytest.raises(ValueError, match="nosuch://x"):
        resolve("nosuch://x")


def test_processed_dataset_round_trips_through_s3(s3_bucket):
    data = tiny_data()
    uri = _at(s3_bucket, "processed/tiny")
    save_processed(data, uri)
    back = load_processed(uri)
    assert back.manifest == data.manifest
    for split in ("train", "valid", "test"):
        for column in ("user", "item", "label"):
            np.testing.assert_array_equal(back.splits[split][column], data.splits[split][column])
    np.testing.assert_array_equal(back.kg["tail"], data.kg["tail"])


def test_a_failed_write_to_s3_leaves_no_dataset_behind(s3_bucket):
    uri = _at(s3_bucket, "processed/failing")
    save_processed(tiny_data(), uri)
    final = resolve(uri)
    with pytest.raises(RuntimeError, match="crash"), atomic_folder(final, MANIFEST) as stage:
        (stage / "train").mkdir()
        assert read_manifest(uri) is None  # the marker goes first: readers already see no dataset
        raise RuntimeError("crash while writing")
    assert not final.exists()  # no half-written folder
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        load_processed(uri)


def test_a_failed_local_rebuild_keeps_the_previous_dataset(tmp_path):
    folder = tmp_path / "tiny"
    save_processed(tiny_data(seed=0), folder)
    with pytest.raises(RuntimeError), atomic_folder(resolve(folder), MANIFEST) as stage:
        (stage / "half").mkdir()
        raise RuntimeError("crash while writing")
    assert load_processed(folder).manifest == tiny_data(seed=0).manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no staging folder left


@pytest.mark.ray
def test_ray_train_reads_and_checkpoints_on_s3(ray_local, s3_bucket):
    from mikgnn.distributed.trainer import make_trainer

    processed = _at(s3_bucket, "processed/train-tiny")
    save_processed(tiny_data(n_users=80), processed)
    storage = _at(s3_bucket, "results")
    train = TrainConfig(lr=2e-2, batch_size=64, epochs=2, patience=2, protocol="full")
    result = make_trainer(processed, ModelConfig(dim=8, n_neighbours=4, hops=1), replace(train),
                          storage_path=storage, name="s3-run").fit()
    assert result.metrics["done"] and result.metrics["epoch"] == 2
    checkpoints = resolve(storage) / "s3-run"
    saved = [c for c in checkpoints.children() if c.name.startswith("checkpoint_")]
    assert saved and all((c / "state.pt").is_file() for c in saved)
    assert result.checkpoint.path.startswith("bucket/mikgnn/results/s3-run/checkpoint_")


@pytest.mark.ray
def test_prepare_builds_on_s3_once_and_then_reuses_it(ray_local, s3_bucket, tmp_path, capsys):
    from mikgnn.distributed.prepare import prepare

    write_movie(tmp_path / "raw")
    uri = _at(s3_bucket, "processed/movie")
    first = prepare(get_dataset("movie", tmp_path / "raw"), uri, seed=0)
    assert load_processed(uri).manifest == first
    assert sum(first["rows"].values()) == first["n_interactions"] > 0
    capsys.readouterr()
    assert prepare(get_dataset("movie", tmp_path / "raw"), uri, seed=0) == first
    assert "reusing" in capsys.readouterr().out


def test_a_killed_run_s_staging_folder_is_removed_by_the_next_run(tmp_path):
    """A run killed mid-write (SIGKILL) leaves its hidden staging folder; the next write of the
    same folder removes it, and never a folder of a process that is still alive."""
    import os
    from pathlib import Path

    from mikgnn.storage import atomic_folder, resolve

    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    stale = tmp_path / f".out.tmp-{host}-{dead.pid}-deadbeef"
    live = tmp_path / f".out.tmp-{host}-{os.getpid()}-cafecafe"
    for folder in (stale, live):
        (folder / "part").mkdir(parents=True)
    with atomic_folder(resolve(tmp_path / "out"), "manifest.json") as stage:
        (Path(stage.path) / "manifest.json").write_text("{}")
    assert (tmp_path / "out" / "manifest.json").is_file()
    assert not stale.exists() and live.exists()


@pytest.mark.ray
def test_recommendations_land_on_s3_whole_and_without_the_credentials(s3_bucket, ray_local, tmp_path):
    """recommend.py --output s3://…: the Parquet and its _SUCCESS marker on the object store;
    the key and secret in the URI appear in no printed line and no written summary."""
    folder = write_custom(tmp_path / "mine")
    done = subprocess.run([sys.executable, str(REPO / "pipelines" / "train.py"), "--dataset", str(folder),
                           "--processed", str(tmp_path / "processed"), "--output", str(tmp_path / "run"),
                           "--epochs", "1"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    target = _at(s3_bucket, "recs")
    done = subprocess.run([sys.executable, str(REPO / "pipelines" / "recommend.py"), "--checkpoint",
                           str(tmp_path / "run" / "checkpoint"), "--k", "3", "--output", target, "--address",
                           ray_local.get_runtime_context().gcs_address],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "secret" not in done.stdout + done.stderr
    location = resolve(target)
    summary = json.loads((location / "_SUCCESS").read_text())
    assert summary["rows"] == 30 and "secret" not in json.dumps(summary)
    parts = [f.path for f in location.files(suffix=".parquet")]
    table = pq.read_table(parts, filesystem=location.fs)
    assert table.num_rows == 30 and set(table.column("user").to_pylist()) == {f"u{u}" for u in range(10)}
