"""The MLflow screenshots of docs/: a search's runs list, the compare view of its trials, and a
trial's curves, taken with headless Chromium from a real `mlflow server` on a store.

    python pipelines/tune.py --dataset music          # writes ./mlflow.db
    python scripts/mlflow_screenshots.py --store sqlite:///mlflow.db --experiment music --out docs/figures

It takes the newest search run of the experiment. Needs Debian's chromium
(scripts/install_test_deps.sh installs it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from mlflow.tracking import MlflowClient


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(store: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--host",
                               "127.0.0.1", "--port", str(port), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=5)
            return server, base
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"error: mlflow server on {store} did not start") from None
            time.sleep(0.5)


def _shoot(chromium: str, profile: str, url: str, png: Path, size: str = "1500,900") -> None:
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    f"--user-data-dir={profile}", "--virtual-time-budget=30000", "--hide-scrollbars",
                    f"--window-size={size}", f"--screenshot={png}", url],
                   capture_output=True, timeout=180, check=True)
    print(f"wrote {png}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", default="sqlite:///mlflow.db")
    p.add_argument("--experiment", default="music")
    p.add_argument("--out", type=Path, default=Path("docs/figures"))
    args = p.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        print("error: chromium is not installed (scripts/install_test_deps.sh installs it)", file=sys.stderr)
        return 1
    client = MlflowClient(args.store)
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        print(f"error: no experiment {args.experiment!r} in {args.store}", file=sys.stderr)
        return 1
    exp = experiment.experiment_id
    search = client.search_runs([exp], "tags.`mikgnn.kind` = 'search'", order_by=["attributes.start_time DESC"])[0]
    trials = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{search.info.run_id}'")
    finished = [t for t in trials if "best/valid/recall_at_20" in t.data.metrics]
    best = max(finished, key=lambda t: t.data.metrics["best/valid/recall_at_20"])
    args.out.mkdir(parents=True, exist_ok=True)
    server, base = _server(args.store)
    try:
        with tempfile.TemporaryDirectory() as profile:
            _shoot(chromium, profile, f"{base}/#/experiments/{exp}/runs", args.out / "mlflow_runs.png")
            ids = urllib.parse.quote(json.dumps([t.info.run_id for t in trials]))
            _shoot(chromium, profile, f"{base}/#/compare-runs?runs={ids}&experiments=%5B%22{exp}%22%5D",
                   args.out / "mlflow_compare.png", "1500,1800")
            _shoot(chromium, profile, f"{base}/#/experiments/{exp}/runs/{best.info.run_id}/model-metrics",
                   args.out / "mlflow_trial_curves.png", "1500,1200")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(client.download_artifacts(search.info.run_id, "parallel_coordinates.png", tmp),
                    args.out / "parallel_coordinates.png")
    print(f"wrote {args.out / 'parallel_coordinates.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
