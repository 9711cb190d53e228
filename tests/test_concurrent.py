"""Two searches at once never share state: each gets its own name (so its own Tune folder and
search run), and two drivers that create a new sqlite store together both succeed."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "pipelines"))
import tune  # noqa: E402


def test_searches_started_in_the_same_second_get_different_names():
    args = argparse.Namespace(resume=None)
    names = {tune._search_name(args, "", "music", None) for _ in range(20)}
    assert len(names) == 20 and all(n.startswith(f"music-{time.strftime('%Y%m%d')}") for n in names)


def test_two_drivers_creating_a_new_store_together_both_open_their_search_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    go = tmp_path / "go"
    code = ("import sys, time\n"
            "from pathlib import Path\n"
            "from mikgnn.distributed.tracking import open_search_run\n"  # imported first: both start at once
            f"while not Path({str(go)!r}).exists():\n"
            "    time.sleep(0.005)\n"
            f"print(open_search_run({uri!r}, 'music', sys.argv[1], 'cmd', {{}}))\n")
    drivers = [subprocess.Popen([sys.executable, "-c", code, f"s{k}"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for k in range(2)]
    time.sleep(8)  # both past their imports, waiting
    go.touch()
    done = [d.communicate(timeout=120) for d in drivers]
    assert [d.returncode for d in drivers] == [0, 0], [err[-2000:] for _, err in done]
    client = MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "music"]
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["mikgnn.search"] for r in runs) == ["s0", "s1"]
