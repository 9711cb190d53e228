"""cluster.yaml passes the checks `ray up` runs before it contacts the cloud; a broken copy fails."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER = Path(__file__).resolve().parents[1] / "cluster.yaml"


def _load() -> dict:
    return yaml.safe_load(CLUSTER.read_text())


def test_cluster_yaml_is_valid():
    config = prepare_config(_load())
    validate_config(config)
    types = config["available_node_types"]
    assert types["head"]["resources"]["GPU"] == 0 and types["gpu_worker"]["resources"]["GPU"] == 1
    assert types["gpu_worker"]["min_workers"] == 0 and config["max_workers"] >= 1
    assert "--dashboard-host=127.0.0.1" in " ".join(config["head_start_ray_commands"])
    assert any("scripts/install.sh" in c for c in config["setup_commands"])


@pytest.mark.parametrize("breakage,message", [
    ("unknown_field", "'max_wrokers' was unexpected"),
    ("head_type_missing", "`head_node_type` must be one of `available_node_types`"),
    ("bad_resources", "'one GPU' is not of type 'object'"),
])
def test_broken_cluster_yaml_is_rejected(breakage, message):
    config = copy.deepcopy(_load())
    if breakage == "unknown_field":
        config["max_wrokers"] = 3
    elif breakage == "head_type_missing":
        config["head_node_type"] = "no_such_type"
    else:
        config["available_node_types"]["gpu_worker"]["resources"] = "one GPU"
    with pytest.raises(Exception) as info:
        validate_config(prepare_config(config))
    assert type(info.value).__name__ in ("ValueError", "ValidationError")
    assert message in str(info.value)
