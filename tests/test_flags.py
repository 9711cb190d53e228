"""One name for one thing across the entry scripts, read from each script's --help: a concept
every script that has it names the same way, and none of the retired synonyms is back."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ("prepare", "train", "tune", "reproduce", "recommend", "report")
# the flag of each concept, and the scripts that must take it
CONCEPTS = {
    "--dataset": {"prepare", "train", "tune", "reproduce"},
    "--data-root": {"prepare", "train", "tune", "reproduce", "report"},
    "--download": {"prepare", "train", "tune", "reproduce"},
    "--tracking-uri": {"train", "tune", "reproduce", "recommend", "report"},
    "--address": {"prepare", "train", "tune", "reproduce", "recommend"},
    "--workers": {"train", "tune"},
    "--gpus-per-worker": {"train", "tune", "reproduce"},
    "--storage-path": {"train", "tune", "reproduce"},
    "--set": {"train", "tune", "reproduce"},
}
# names that once meant one of the above, or a settings key (--set KEY=VALUE) spelt as a flag
RETIRED = {"--workers-per-trial", "--num-workers", "--max-field", "--mlflow-uri", "--data-dir", "--ray-address"}


@pytest.fixture(scope="module")
def flags() -> dict[str, set[str]]:
    out = {}
    for script in SCRIPTS:
        done = subprocess.run([sys.executable, str(REPO / "pipelines" / f"{script}.py"), "--help"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        options = done.stdout.split("options:", 1)[1]  # argparse's list, not the description's examples
        out[script] = set(re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z-]*)", options, re.M))
    return out


def test_each_concept_has_one_flag_wherever_it_is_taken(flags):
    for flag, scripts in CONCEPTS.items():
        missing = [s for s in scripts if flag not in flags[s]]
        assert not missing, f"{flag} missing from {missing}"


def test_no_retired_synonym_and_settings_keys_stay_keys(flags):
    for script, found in flags.items():
        assert not found & RETIRED, f"{script}: {found & RETIRED}"
    # the MLflow experiment of a run is a settings key (--set experiment=...) where settings exist
    assert "--experiment" not in flags["tune"] | flags["reproduce"]
