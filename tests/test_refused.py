"""The catalogue of bad input: every entry point refuses it before Ray or MLflow start.

One case a line: the script, its arguments, and what the one-line message must name. Each
case must exit with code 2, print no traceback, write nothing (no processed folder, no runs/,
no MLflow store, no Ray results) and start no Ray (no session folder under its RAY_TMPDIR).
docs/benchmarks.md records the count.

Here: settings, search spaces, stores and URIs, data, disks and permissions, the cluster
(an address, a join, the resources). The faults that need a running job live beside the job:
signals (test_tune.py, test_cluster.py, test_train_pipeline.py, test_reproduce.py),
two searches at once (test_concurrent.py), a killed driver or worker (test_tune.py,
test_driver.py, test_ray_train.py), damaged state (test_checkpoint_safety.py, test_tune.py)
and the served model (test_recommend.py).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# (script, arguments, a part of the message); {data}: the real data root, {tmp}: the case's folder
CASES = [
    ("prepare", "--dataset nosuch", "unknown dataset 'nosuch': choose one of"),
    ("prepare", "--dataset music --seed -1", "--seed = -1: must be an integer in [0, 2^32)"),
    ("prepare", "--dataset music --data-root {tmp}/empty", "missing raw file(s) in"),
    ("prepare", "--dataset {tmp}/nofolder", "custom dataset folder"),
    ("train", "--dataset music --epochs 0", "--epochs = 0: must be an integer >= 1"),
    ("train", "--dataset music --seed -1", "--seed = -1"),
    ("train", "--dataset music --workers 0", "--workers = 0: must be an integer >= 1"),
    ("train", "--dataset music --workers 2 --gpus-per-worker -1", "--gpus-per-worker = -1.0"),
    ("train", "--dataset music --set theta=2", "theta must lie in [-1, 1], got 2"),
    ("train", "--dataset music --set dim=abc", "--set 'dim=abc': model.dim = 'abc': expected int"),
    ("train", "--dataset music --set dimm=3", "--set 'dimm=3': unknown key 'dimm'"),
    ("train", "--dataset music --set dim", "--set 'dim': expected KEY=VALUE"),
    ("train", "--dataset music --set seed=3", "train.seed is chosen with --seed"),
    ("train", "--dataset music --set scheduler=fifo", "unknown key 'scheduler'"),
    ("train", "--dataset music --variant w/o-neig-att --set theta=0.5", "--variant w/o-neig-att fixes theta = 1.0"),
    ("train", "--dataset music --model kgcn --variant fmk", "--variant fmk is a variant of MI-KGNN"),
    ("train", "--dataset music --set aggregator=concat", "concat aggregator maps 2d to d features"),
    ("train", "--dataset music --set select_metric=recall@7", "unknown select_metric 'recall@7'"),
    ("train", "--dataset music --set protocol=everyone", "unknown protocol 'everyone'"),
    ("train", "--dataset music --set l2=-1", "l2 and ls_weight must be >= 0"),
    ("train", "--dataset music --set topk_every=-1", "topk_every must be >= 0"),
    ("train", "--dataset music --set topk_every=2 --set select_metric=ndcg@10", "it needs topk_every 1, not 2"),
    ("train", "--dataset music --set lr=0", "lr > 0"),
    ("train", "--dataset music --set threads=100000", "threads must lie in [0, "),
    ("train", "--dataset music --set hops=10", "n <= 1024 and h <= 8 required"),
    ("train", "--dataset music --set hops=5 --set n_neighbours=32", "GiB a training step, more than half of"),
    ("train", "--dataset music --set dim=100000", "d (embedding dim) must lie in [1, 4096]"),
    ("train", "--dataset music --set batch_size=0", "batch_size must lie in [1, 1048576]"),
    ("train", "--dataset music --set eval_users=0", "eval_users must be >= 1"),
    ("train", "--dataset music --set eval_users=-3", "eval_users must be >= 1"),
    ("train", "--dataset music --set ks=[]", "ks must be a non-empty list of integers >= 1"),
    ("train", "--dataset music --set ks=[0]", "ks must be a non-empty list of integers >= 1"),
    ("tune", "--dataset music --set name=../../x", "a search's name is a folder under the storage path"),
    ("train", "--dataset music --set init_std=0", "init_std must be > 0"),
    ("train", "--dataset music --config {tmp}/absent.yaml", "absent.yaml: cannot be read"),
    ("train", "--dataset music --config {tmp}/badkey.yaml", "badkey.yaml: unknown key train.epoch: train takes"),
    ("train", "--dataset music --config {tmp}/search.yaml", "search.yaml: unknown section 'search'"),
    ("train", "--dataset nosuch", "unknown dataset 'nosuch'"),
    ("train", "--dataset music --data-root {tmp}/empty", "missing raw file(s) in"),
    ("train", "--dataset music --workers 1 --data-root {tmp}/empty", "missing raw file(s) in"),
    ("tune", "--dataset music --num-samples 0", "--num-samples = 0: must be an integer >= 1"),
    ("tune", "--dataset music --epochs 0", "--epochs = 0: must be an integer >= 1"),
    ("tune", "--dataset music --workers 0", "--workers = 0: must be an integer >= 1"),
    ("tune", "--dataset music --gpus-per-worker -1", "--gpus-per-worker = -1.0"),
    ("tune", "--dataset music --seed -1", "--seed = -1"),
    ("tune", "--dataset music --set cpus_per_worker=0", "cpus_per_worker must be > 0, got 0.0"),
    ("tune", "--dataset music --set max_concurrent=0", "max_concurrent must be >= 1, got 0"),
    ("tune", "--dataset music --set stall_timeout=-1", "stall_timeout must be >= 0 seconds"),
    ("tune", "--dataset music --set scheduler=hyperband", "unknown scheduler 'hyperband'"),
    ("tune", "--dataset music --set search=grid", "unknown search 'grid'"),
    ("tune", "--dataset music --set max_field=many", "search.max_field = 'many': expected int"),
    ("tune", "--dataset music --set placement_strategy=RANDOM", "unknown placement_strategy 'RANDOM'"),
    ("tune", "--dataset music --set sync_every=0", "sync_every must be >= 1, got 0"),
    ("tune", "--dataset music --set epoch=3", "--set 'epoch=3': unknown key 'epoch'"),
    ("tune", "--dataset music --set topk_every=0", "on the validation Recall@20 of every epoch"),
    ("tune", "--dataset music --tracking-uri http://127.0.0.1:9", "http://127.0.0.1:9: no MLflow server"),
    ("tune", "--dataset music --tracking-uri http://u:secret@127.0.0.1:9", "--tracking-uri http://***@127.0.0.1:9"),
    ("tune", "--dataset music --tracking-uri ftp://example.org/x", "MLflow does not track to a 'ftp' URI"),
    ("tune", "--dataset music --tracking-uri sqlite:///{tmp}", "is a folder; name a database file in it"),
    ("tune", "--dataset music --tracking-uri sqlite:///{tmp}/table.csv", "table.csv is not an SQLite database"),
    ("train", "--dataset music --tracking-uri sqlite:///{tmp}/table.csv", "table.csv is not an SQLite database"),
    ("tune", "--dataset music --space {tmp}/empty.yaml", "'n': 'choice' needs a non-empty list 'values'"),
    ("tune", "--dataset music --space {tmp}/inf.yaml", "'lambda': 'high' = inf is not a number >= 0 (finite)"),
    ("tune", "--dataset music --space {tmp}/misspelt.yaml", "unknown key(s) ['vaules'] for type 'choice'"),
    ("tune", "--dataset music --space {tmp}/bool.yaml", "'n': values [True] are not an integer >= 1"),
    ("tune", "--dataset music --space {tmp}/grid.yaml", "a 'grid' dimension is a sweep of every value"),
    ("tune", "--dataset music --space {tmp}/absent.yaml", "absent.yaml does not exist"),
    ("tune", "--dataset music --config {tmp}/badkey.yaml", "badkey.yaml: unknown key train.epoch"),
    ("tune", "--dataset music --resume nosuch", "--resume nosuch: no such search under --storage-path"),
    ("tune", "--dataset nosuch", "unknown dataset 'nosuch'"),
    ("tune", "--dataset music --data-root {tmp}/empty", "missing raw file(s) in"),
]
FILES = {
    "badkey.yaml": "train: {epoch: 3}\n",
    "search.yaml": "search: {scheduler: fifo}\n",
    "empty.yaml": "n: {type: choice, values: []}\n",
    "inf.yaml": "lambda: {type: loguniform, low: 1.0e-8, high: .inf}\n",
    "grid.yaml": "field: {type: grid, values: [[2, 1], [4, 1]]}\n",
    "misspelt.yaml": "n: {type: choice, vaules: [2, 4], values: [2]}\n",
    "bool.yaml": "n: {type: choice, values: [true, 2]}\n",
    "table.csv": "user,item\n1,2\n",
}
WRITTEN = ("processed", "runs", "mlflow.db", "mlruns", "ray_results")


def run(script: str, args: list[str], cwd: Path, ray_tmp: Path | None = None) -> subprocess.CompletedProcess:
    """The entry point; with ``ray_tmp``, Ray's temporary root: a Ray it started leaves a session
    folder there."""
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)} if ray_tmp else None
    return subprocess.run([sys.executable, str(REPO / "pipelines" / f"{script}.py"), *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


@pytest.mark.parametrize("script,args,named", CASES, ids=[f"{c[0]}:{c[1][10:]}" for c in CASES])
def test_refused_before_ray_starts(tmp_path, shared_data, script, args, named):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "empty").mkdir()
    argv = args.format(tmp=tmp_path).split()
    if "--data-root" not in argv:
        argv += ["--data-root", str(shared_data)]
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp")) / "ray"  # short: Ray's socket paths fit
    try:
        done = run(script, argv, tmp_path, ray_tmp)
        ray_started = ray_tmp.exists()
    finally:
        shutil.rmtree(ray_tmp.parent)
    assert done.returncode == 2, (done.stdout + done.stderr)[-2000:]
    assert named in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "secret" not in done.stdout + done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")], done.stderr
    assert not [w for w in WRITTEN if (tmp_path / w).exists()]  # no MLflow store, no Tune folder
    assert not ray_started


def _labelled(folder: Path, users: int = 12, items: int = 8) -> Path:
    """A custom folder of labelled rows whose KG heads are the item ids (no item map)."""
    folder.mkdir(parents=True)
    rows = [f"u{u},s{i},{(u + i) % 2}" for u in range(users) for i in range(items)]
    (folder / "ratings.csv").write_text("user,item,label\n" + "\n".join(rows) + "\n")
    (folder / "kg.csv").write_text("head,relation,tail\n" + "".join(f"s{i},genre,g{i % 3}\n" for i in range(items)))
    return folder


def _append(name: str, text: str):
    def damage(folder: Path) -> None:
        with open(folder / name, "a") as f:
            f.write(text)
    return damage


def _replace(name: str, data: bytes):
    def damage(folder: Path) -> None:
        (folder / name).write_bytes(data)
    return damage


def _a_folder(folder: Path) -> None:
    (folder / "ratings.csv").unlink()
    (folder / "ratings.csv").mkdir()


# The data family: a folder of one's own, damaged one way each (train.py prepares it in-process).
DATA_CASES = [
    ("a repeated header", _append("ratings.csv", "user,item,label\n"),
     "ratings.csv:98: column 'label' is not a number"),
    ("binary bytes", _replace("ratings.csv", bytes(range(256)) * 4), "ratings.csv:1: not CSV text"),
    ("an empty file", _replace("ratings.csv", b""), "ratings.csv:1: header [''] lacks the column(s) ['user', 'item']"),
    ("a header only", _replace("ratings.csv", b"user,item,label\n"), "ratings.csv: no usable row"),
    ("two rows", _replace("ratings.csv", b"user,item,label\nu1,s1,1\nu1,s2,0\n"), "leave the valid split empty"),
    ("an empty id", _append("ratings.csv", ",s1,1\n"), "ratings.csv:98: column 'user' is empty or NaN"),
    ("a label of 2", _append("ratings.csv", "u1,s1,2\n"), "ratings.csv:98: label must be 0 or 1, found 2.0"),
    ("one class", _replace("ratings.csv", b"user,item,label\n" + b"".join(b"u%d,s%d,1\n" % (u, u % 8)
                                                                          for u in range(40))),
     "ratings.csv: every label is 1"),
    ("a KG without its columns", _replace("kg.csv", b"h,r\n1,2\n"), "kg.csv:1: header ['h', 'r'] lacks the column(s)"),
    ("an item map not one-to-one", _replace("item_map.csv", b"item,entity\ns1,s1\ns1,s2\n"),
     "item_map.csv:3: duplicate item 's1'"),
    ("a folder for a file", _a_folder, "missing raw file(s) in"),
    ("a gzip file named .csv", _replace("ratings.csv", gzip.compress(b"user,item\n")),
     "ratings.csv: a gzip-compressed file, not CSV text"),
    ("an unclosed quote", _append("ratings.csv", 'u1,"s1,1\n'),
     'ratings.csv:98: a double quote (") opens a field that the line never closes'),
    ("an unclosed quote in the header", _replace("kg.csv", b'head,"relation,tail\ns1,genre,g1\n'),
     "kg.csv:1: a double quote"),
]


@pytest.mark.parametrize("damage,named", [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_bad_data_is_refused_naming_the_file_and_line(tmp_path, damage, named):
    """Exit 2, one error line naming the file (and line), no traceback, and nothing written: no
    processed/ folder (not even an empty one), no runs/, no staging folder."""
    folder = _labelled(tmp_path / "mine")
    damage(folder)
    done = run("train", ["--dataset", str(folder), "--epochs", "1"], tmp_path)
    assert done.returncode == 2, (done.stdout + done.stderr)[-2000:]
    assert named in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert [line for line in done.stderr.splitlines() if line.startswith("error:") and "mine" in line]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # nothing else, hidden stages included


@pytest.mark.ray
def test_bad_data_found_by_a_ray_data_task_is_one_line_too(tmp_path, ray_local):
    """prepare.py parses in Ray Data tasks: Ray Data logged the task's error with a traceback,
    and appended its retry advice to the message; the user reads the error line alone."""
    folder = _labelled(tmp_path / "mine")
    _append("ratings.csv", "user,item,label\n")(folder)
    done = run("prepare", ["--dataset", str(folder), "--address", ray_local.get_runtime_context().gcs_address],
               tmp_path)
    assert done.returncode == 2, (done.stdout + done.stderr)[-2000:]
    assert "error: " in done.stderr and "ratings.csv:98: column 'label' is not a number" in done.stderr
    assert "Traceback" not in done.stderr and "retry" not in done.stderr, done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


# as root, mode 000 still reads: the run drops the capabilities that let root read any file
UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]


@pytest.mark.parametrize("dataset", ["music", "mine"])
def test_a_file_this_user_cannot_read_is_named_with_its_cause(tmp_path, shared_data, dataset):
    """An official dataset's file or one's own, mode 000: a PermissionError traceback before."""
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: every file reads")
    if dataset == "music":
        shutil.copytree(shared_data / "music", tmp_path / "root" / "music")
        unreadable, argv = tmp_path / "root" / "music" / "user_artists.dat", ["--data-root", str(tmp_path / "root")]
    else:
        unreadable, argv = _labelled(tmp_path / "mine") / "ratings.csv", []
    unreadable.chmod(0)
    command = [sys.executable, str(REPO / "pipelines" / "train.py"), "--dataset", dataset if dataset == "music"
               else str(tmp_path / "mine"), "--epochs", "1", *argv]
    done = subprocess.run([*UNPRIVILEGED, *command] if os.geteuid() == 0 else command, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"error: {unreadable}: cannot be read (Permission denied)" in done.stderr
    assert "Traceback" not in done.stderr and not [w for w in WRITTEN if (tmp_path / w).exists()]


def test_a_folder_name_too_long_for_the_disk_is_refused_before_work(tmp_path):
    """A dataset folder of 250 characters: its processed folder, <name>-seed0, would be 256
    bytes, and its run folder, <name>-mikgnn-seed0, 263."""
    folder = _labelled(tmp_path / ("d" * 250))
    for argv in (["--output", str(tmp_path / "run")], []):
        done = run("train", ["--dataset", str(folder), "--epochs", "1", *argv], tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert re.search(r"a name in that path is 2(56|63) bytes, more than the 255 a file system takes", done.stderr)
        assert ("--processed" if argv else "--output") in done.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]


def test_debug_prints_the_traceback(tmp_path, shared_data):
    done = run("train", ["--dataset", "music", "--data-root", str(shared_data), "--epochs", "0", "--debug"], tmp_path)
    assert done.returncode == 2 and "Traceback" in done.stderr and "--epochs = 0" in done.stderr


def test_the_catalogue_covers_every_entry_point():
    scripts = {c[0] for c in CASES}
    assert scripts == {"prepare", "train", "tune"} and len(CASES) >= 30


@pytest.mark.ray
@pytest.mark.parametrize("script,args,named", [
    ("train", "--workers 1 --gpus-per-worker 1", "--workers 1 needs 1 GPUs (--gpus-per-worker 1), the cluster has 0"),
    ("tune", "--gpus-per-worker 1", "a trial needs 1 GPUs (--gpus-per-worker 1), the cluster has 0"),
    ("tune", "--workers 8", "a trial needs 8.25 CPUs plus 1 kept free for Ray Data"),
    ("reproduce", "--tables 9 --seeds 0 --gpus-per-worker 1", "a cell needs 1 GPUs (--gpus-per-worker 1), the "
                  "cluster has 0"),
])
def test_resources_the_cluster_lacks_are_refused_before_anything_runs(tmp_path, shared_data, ray_local, script,
                                                                     args, named):
    """Checked against what the cluster reports, before anything is scheduled (no hang). A local
    Ray has no autoscaler to ask: refused at once (the reproduction printed a traceback before,
    and left a KILLED search run)."""
    address = ray_local.get_runtime_context().gcs_address
    done = run(script, ["--dataset", "music", "--data-root", str(shared_data), "--address", address,
                        "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *args.split()]
               if script != "train" else ["--dataset", "music", "--data-root", str(shared_data),
                                          "--address", address, *args.split()], tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert named in done.stderr and "Traceback" not in done.stderr and "autoscaler" not in done.stdout
    assert not (tmp_path / "ray_results").exists() and not (tmp_path / "runs").exists()
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.ray
@pytest.mark.parametrize("script,args", [
    ("train", "--dataset music --workers 1"),
    ("tune", "--dataset music"),
    ("reproduce", "--dataset music --tables 9 --seeds 0"),
])
def test_an_address_where_no_ray_listens_is_refused_not_waited_on(tmp_path, shared_data, script, args):
    """ray.init retries an address where nothing listens for minutes (127.0.0.1:1 was still
    retrying after 4 min): the job would hang before its first trial. It is refused at once."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = run(script, [*args.split(), "--address", f"127.0.0.1:{port}", "--data-root", str(shared_data)], tmp_path)
    assert done.returncode == 1, (done.stdout + done.stderr)[-2000:]
    assert f"error: could not join the Ray cluster at 127.0.0.1:{port}: nothing answers there" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.ray
def test_an_address_where_something_else_listens_is_refused_not_waited_on(tmp_path, shared_data):
    """A plain HTTP server passes a port probe, and ray.init then retried it forever, deaf to
    SIGTERM: the address is refused because what answers there is not a gRPC server."""
    import http.server
    import threading
    import time

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        start = time.monotonic()
        done = run("tune", ["--dataset", "music", "--address", f"127.0.0.1:{server.server_address[1]}",
                            "--data-root", str(shared_data)], tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 1 and time.monotonic() - start < 120, (done.stdout + done.stderr)[-2000:]
    assert "something listens there, but it is not Ray" in done.stderr and "Traceback" not in done.stderr


def test_a_web_server_that_is_not_mlflow_is_refused_as_the_tracking_uri(tmp_path, shared_data):
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = run("tune", ["--dataset", "music", "--data-root", str(shared_data), "--tracking-uri",
                            f"http://127.0.0.1:{server.server_address[1]}"], tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 2 and "something answers there, but not an MLflow tracking server" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def mounts(tmp_path):
    """A read-only tmpfs and a full one (a real filesystem each), unmounted afterwards; the test
    is skipped where this machine does not let it mount."""
    import subprocess as sp

    ro, full = tmp_path / "ro", tmp_path / "full"
    ro.mkdir(), full.mkdir()
    made = []
    for folder, options in ((ro, "size=1m,ro"), (full, "size=64k")):
        if sp.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True).returncode:
            for done in made:
                sp.run(["umount", str(done)], capture_output=True)
            pytest.skip("this machine does not let the tests mount a tmpfs (not root, or no CAP_SYS_ADMIN)")
        made.append(folder)
    try:  # fill it: the next write finds no space
        with open(full / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass
    yield ro, full
    for folder in made:
        sp.run(["umount", str(folder)], capture_output=True)


@pytest.mark.parametrize("script,args,flag", [
    ("tune", "--dataset music --storage-path {dest}/results", "--storage-path"),
    ("tune", "--dataset music --tracking-uri sqlite:///{dest}/mlflow.db", "--tracking-uri"),
    ("tune", "--dataset music --processed {dest}/processed", "--processed"),
    ("train", "--dataset music --output {dest}/run", "--output"),
    ("prepare", "--dataset music --output {dest}/processed", "--output"),
    ("recommend", "--checkpoint {dest}/none --output {dest}/recs", "--output"),
])
@pytest.mark.parametrize("kind", ["read-only", "full"])
def test_a_destination_that_cannot_be_written_is_refused_before_work(mounts, tmp_path, shared_data, script, args,
                                                                    flag, kind):
    dest = mounts[0] if kind == "read-only" else mounts[1]
    done = run(script, [*args.format(dest=dest).split(), "--data-root", str(shared_data)] if script != "recommend"
               else args.format(dest=dest).split(), tmp_path)
    assert done.returncode == 2, (done.stdout + done.stderr)[-2000:]
    cause = "Read-only file system" if kind == "read-only" else "No space left on device"
    assert f"{flag} {dest}" in done.stderr and cause in done.stderr and "MiB free" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in dest.iterdir()) == ([] if kind == "read-only" else ["filler"])


@pytest.fixture
def small_disk(tmp_path):
    """A real 512 KiB tmpfs: room for the checks before work, not for a music model's weights."""
    folder = tmp_path / "small"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)],
                      capture_output=True).returncode:
        pytest.skip("this machine does not let the tests mount a tmpfs (not root, or no CAP_SYS_ADMIN)")
    yield folder
    subprocess.run(["umount", str(folder)], capture_output=True)


def test_a_disk_that_fills_while_the_run_is_written_leaves_nothing_torn(small_disk, tmp_path, shared_data):
    """The disk has room when the run starts and none when its weights are written: one error
    line with the path and the free space, exit 1, the test metrics printed before the write,
    and no truncated state.pt left as if it were a checkpoint (train.py left one, and a
    traceback)."""
    done = run("train", ["--dataset", "music", "--data-root", str(shared_data), "--epochs", "1", "--set",
                         "topk_every=0", "--output", str(small_disk / "run")], tmp_path)
    assert done.returncode == 1, (done.stdout + done.stderr)[-2000:]
    assert f"error: --output {small_disk / 'run'}: the run could not be written" in done.stderr
    assert "MiB free" in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert '"test/auc"' in done.stdout  # the result is on the console, not lost
    assert list(small_disk.iterdir()) == []


class _SilentGcs:
    """A server that answers a connection's HTTP/2 preface with SETTINGS, as Ray's GCS does, and
    then says nothing: the probe passes, and ray.init retries it every 30 s, forever."""

    def __init__(self):
        import threading

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0  # the probe's connection, then ray.init's
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        import threading

        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    @staticmethod
    def _answer(conn):
        from mikgnn.distributed.cluster import HTTP2_SETTINGS

        with conn:
            try:
                conn.recv(1024)
                conn.sendall(HTTP2_SETTINGS)
                while conn.recv(1024):
                    pass
            except OSError:
                pass


@pytest.mark.ray
def test_a_signal_ends_a_join_that_ray_would_retry_forever(tmp_path, shared_data):
    """SIGTERM while ray.init waits on a silent GCS: it waited for Ray's next 30 s retry to return
    before. Now the job ends within seconds, exit 130, one line, nothing written (Ctrl-C takes the
    same path: both reach the wakeup pipe)."""
    signum = signal.SIGTERM
    import time

    gcs = _SilentGcs()
    proc = subprocess.Popen([sys.executable, str(REPO / "pipelines" / "tune.py"), "--dataset", "music",
                             "--data-root", str(shared_data), "--address", f"127.0.0.1:{gcs.port}"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and gcs.accepted < 2:  # ray.init has connected
            time.sleep(0.2)
        time.sleep(3)  # inside Ray's C++ wait for the GCS
        sent = time.monotonic()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        proc.kill()
        gcs.listener.close()
    assert proc.returncode == 130 and took < 10, (proc.returncode, took, err[-2000:])
    assert f"error: interrupted ({signal.Signals(signum).name}) while joining the Ray cluster at 127.0.0.1:" in err
    assert "Traceback" not in err and not (tmp_path / "mlflow.db").exists() and not (tmp_path / "ray_results").exists()


def test_a_join_that_never_completes_ends_at_its_bound(tmp_path):
    """The whole join is bounded (JOIN_S, 120 s; 3 s here): exit 1 with one line, not a hang."""
    gcs = _SilentGcs()
    code = ("import sys; from mikgnn.distributed import cluster; cluster.JOIN_S = 3.0; "
            f"cluster.connect('127.0.0.1:{gcs.port}')")
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    finally:
        gcs.listener.close()
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"error: could not join the Ray cluster at 127.0.0.1:{gcs.port}: no answer in 3 s" in done.stderr
    assert "Traceback" not in done.stderr
