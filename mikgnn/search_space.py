"""Search spaces for θ, n, h, λ and the learning rate: one readable YAML file per dataset.

    theta:  {type: uniform, low: -1.0, high: 1.0}
    n:      {type: choice, values: [2, 4, 8, 16, 32]}
    h:      {type: choice, values: [1, 2, 3, 4]}
    lambda: {type: loguniform, low: 1.0e-8, high: 1.0e-3}
    lr:     {type: loguniform, low: 1.0e-4, high: 1.0e-2}

Parameters left out of a file keep the dataset's Table 1 value.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from mikgnn.config import ModelConfig, TrainConfig

KINDS = ("uniform", "loguniform", "choice")
# name -> (check of one value, what it must be)
_RULES = {
    "theta": (lambda v: isinstance(v, (int, float)) and -1 <= v <= 1, "a number in [-1, 1]"),
    "n": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "h": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "lambda": (lambda v: isinstance(v, (int, float)) and v >= 0, "a number >= 0"),
    "lr": (lambda v: isinstance(v, (int, float)) and v > 0, "a number > 0"),
}


class SearchSpaceError(ValueError):
    pass


@dataclass(frozen=True)
class Dimension:
    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    values: tuple = ()


@dataclass(frozen=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...]
    source: Path

    def as_dict(self) -> dict:
        return {d.name: {"type": d.kind, **({"values": list(d.values)} if d.kind == "choice"
                                             else {"low": d.low, "high": d.high})} for d in self.dimensions}


def load_space(path: str | Path) -> SearchSpace:
    path = Path(path)
    if not path.is_file():
        raise SearchSpaceError(f"search space {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SearchSpaceError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or not raw:
        raise SearchSpaceError(f"{path}: expected a mapping of parameter -> distribution")
    return SearchSpace(tuple(_dimension(path, name, spec) for name, spec in raw.items()), path)


def _dimension(path: Path, name, spec) -> Dimension:
    where = f"{path}: '{name}'"
    if name not in _RULES:
        raise SearchSpaceError(f"{where}: unknown parameter; searchable: {sorted(_RULES)}")
    if not isinstance(spec, dict) or spec.get("type") not in KINDS:
        raise SearchSpaceError(f"{where}: needs 'type' one of {list(KINDS)}, got {spec!r}")
    check, must = _RULES[name]
    if spec["type"] == "choice":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise SearchSpaceError(f"{where}: 'choice' needs a non-empty list 'values'")
        bad = [v for v in values if not check(v)]
        if bad:
            raise SearchSpaceError(f"{where}: values {bad} are not {must}")
        return Dimension(name, "choice", values=tuple(values))
    low, high = spec.get("low"), spec.get("high")
    for bound, value in (("low", low), ("high", high)):
        if not check(value):
            raise SearchSpaceError(f"{where}: '{bound}' = {value!r} is not {must}")
    if name in ("n", "h"):
        raise SearchSpaceError(f"{where}: an integer parameter takes type 'choice'")
    if not low < high:
        raise SearchSpaceError(f"{where}: needs low < high, got {low} >= {high}")
    if spec["type"] == "loguniform" and low <= 0:
        raise SearchSpaceError(f"{where}: loguniform needs low > 0, got {low}")
    return Dimension(name, spec["type"], float(low), float(high))


def start_point(space: SearchSpace, model: ModelConfig, train: TrainConfig) -> dict | None:
    """The searched parameters as ``model`` and ``train`` set them (Table 1 in a search), or
    None when one of them lies outside its dimension. A search evaluates this point first,
    so its best trial is never worse than the paper's settings it starts from."""
    point = {"theta": model.theta, "n": model.n_neighbours, "h": model.hops, "lambda": train.l2, "lr": train.lr}
    point = {d.name: point[d.name] for d in space.dimensions}
    inside = all(point[d.name] in d.values if d.kind == "choice" else d.low <= point[d.name] <= d.high
                 for d in space.dimensions)
    return point if inside else None


def apply_params(model: ModelConfig, train: TrainConfig, params: dict) -> tuple[ModelConfig, TrainConfig]:
    """The configurations of one trial: Table 1 with the sampled θ, n, h, λ and lr."""
    model_fields = {"theta": "theta", "n": "n_neighbours", "h": "hops"}
    train_fields = {"lambda": "l2", "lr": "lr"}
    model = replace(model, **{model_fields[k]: v for k, v in params.items() if k in model_fields})
    train = replace(train, **{train_fields[k]: v for k, v in params.items() if k in train_fields})
    return model, train
