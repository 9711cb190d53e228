"""--download against a real HTTP server on 127.0.0.1 that mirrors the official addresses
(``$MIKGNN_DOWNLOAD_MIRROR``): the real music files (checked against their recorded sha256),
a corrupt one, a server that is down; and every script the missing-files message names
takes --download."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import free_port

from mikgnn.datasets import get_dataset
from mikgnn.datasets.download import MIRROR_ENV, sha256_of

REPO = Path(__file__).resolve().parents[1]
MUSIC = "raw.githubusercontent.com/hwwang55/KGCN/master/data/music"
FILES = ("user_artists.dat", "kg.txt", "item_index2entity_id.txt")


@pytest.fixture
def mirror(shared_data, tmp_path):
    """A mirror folder of the official music files, served over HTTP; yields (folder, base URL)."""
    folder = tmp_path / "mirror"
    (folder / MUSIC).mkdir(parents=True)
    for name in FILES:
        shutil.copy(shared_data / "music" / name, folder / MUSIC / name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _script(name: str, args: list[str], mirror_url: str, cwd: Path, timeout: int = 300):
    env = dict(os.environ, **{MIRROR_ENV: mirror_url})
    env.pop("MIKGNN_DATA_ROOT", None)
    return subprocess.run([sys.executable, str(REPO / "pipelines" / f"{name}.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.ray
def test_download_fetches_checks_and_keeps_the_official_files_once(mirror, ray_local, tmp_path):
    folder, url = mirror
    root = tmp_path / "data"
    address = ray_local.get_runtime_context().gcs_address
    done = _script("prepare", ["--dataset", "music", "--data-root", str(root), "--download", "--output",
                               str(tmp_path / "processed"), "--address", address], url, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("downloading ") == 3
    spec = get_dataset("music", str(root))
    for remote in spec.remotes:
        assert sha256_of(root / "music" / remote.name) == remote.sha256
    assert not list((root / "music").glob(".download-*"))
    # once: with the files there, a second --download fetches nothing (the server is not asked)
    done = _script("prepare", ["--dataset", "music", "--data-root", str(root), "--download", "--output",
                               str(tmp_path / "processed"), "--address", address], "http://127.0.0.1:1", tmp_path)
    assert done.returncode == 0 and "downloading" not in done.stdout, done.stderr[-2000:]


@pytest.mark.parametrize("script", ["prepare", "train", "tune", "reproduce"])
def test_a_corrupt_file_is_refused_and_nothing_is_written(mirror, tmp_path, script):
    folder, url = mirror
    (folder / MUSIC / "kg.txt").write_text("not the KG\n")
    root = tmp_path / "data"
    done = _script(script, ["--dataset", "music", "--data-root", str(root), "--download"], url, tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "kg.txt has sha256" in error[0] and "not the official f62bbc8f" in error[0], error
    assert "Traceback" not in done.stderr
    assert not (root / "music" / "kg.txt").exists() and not list((root / "music").glob(".download-*"))


def test_a_server_that_is_down_is_named_and_nothing_is_written(tmp_path):
    root = tmp_path / "data"
    done = _script("prepare", ["--dataset", "music", "--data-root", str(root), "--download"],
                   f"http://127.0.0.1:{free_port()}", tmp_path)
    assert done.returncode == 2 and "error: could not download http://127.0.0.1:" in done.stderr, done.stderr
    assert "Connection refused" in done.stderr and "Traceback" not in done.stderr
    assert not [p for p in root.rglob("*") if p.is_file()]


def test_the_missing_files_message_suggests_only_flags_that_exist(tmp_path):
    done = _script("tune", ["--dataset", "movie", "--data-root", str(tmp_path / "empty")], "", tmp_path)
    assert done.returncode == 2
    assert "ml-20m.zip, unzipped: its ml-20m/ratings.csv" in done.stderr
    named = ("prepare.py", "train.py", "tune.py", "reproduce.py")
    assert all(name in done.stderr for name in named) and "add --download" in done.stderr
    for name in named:
        helped = subprocess.run([sys.executable, str(REPO / "pipelines" / name), "--help"], capture_output=True,
                                text=True, timeout=120)
        assert "--download" in helped.stdout, name
