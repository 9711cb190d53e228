"""Search spaces for θ, n, h, λ and the learning rate: one readable YAML file per dataset.

    theta:  {type: uniform, low: -1.0, high: 1.0}
    n:      {type: choice, values: [2, 4, 8, 16, 32]}
    h:      {type: choice, values: [1, 2, 3, 4]}
    lambda: {type: loguniform, low: 1.0e-8, high: 1.0e-3}
    lr:     {type: loguniform, low: 1.0e-4, high: 1.0e-2}

or, instead of n and h, their joint choice (the (n, h) pairs a search may propose, so a space
can hold the paper's sweeps, Tables 8 and 9, without their whole cross product):

    field:  {type: choice, values: [[2, 1], [4, 1], [8, 1], [8, 2], [8, 3]]}

``type: grid`` takes the same list as ``choice`` but trains every value (with ``search:
random``; a space of grid dimensions is a sweep, their cross product times --num-samples):

    field:  {type: grid, values: [[2, 1], [4, 1], [8, 1], [16, 1], [32, 1]]}     # Table 8

Parameters left out of a file keep the dataset's Table 1 value. A trial whose receptive field
n^h is larger than the search allows is still trained for real, with the paper's receptive-field
adjustment (FMK r, ``field_adjusted``); no point of a space is ever skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from mikgnn.config import FIELD_MODELS, ModelConfig, TrainConfig

KINDS = ("uniform", "loguniform", "choice", "grid")
LISTS = ("choice", "grid")  # the kinds that take a list of values
# name -> (check of one value, what it must be)
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # YAML's true is not the integer 1


def _is_number(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


_RULES = {
    "theta": (lambda v: _is_number(v) and -1 <= v <= 1, "a number in [-1, 1]"),
    "n": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "h": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "lambda": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "lr": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "field": (lambda v: isinstance(v, list) and len(v) == 2 and all(_is_int(x) and x >= 1 for x in v),
              "a pair [n, h] of integers >= 1"),
}
_KEYS = {"list": {"type", "values"}, "range": {"type", "low", "high"}}


def _as_number(v):
    """A YAML value as a number where it reads as one: YAML 1.1 leaves 1e-4 (no dot) a string."""
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


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
        return {d.name: {"type": d.kind, **({"values": list(d.values)} if d.kind in LISTS
                                             else {"low": d.low, "high": d.high})} for d in self.dimensions}

    @property
    def grid_size(self) -> int:
        """Trials of one sample: the product of the grid dimensions' sizes (1 without any)."""
        return math.prod(len(d.values) for d in self.dimensions if d.kind == "grid")


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
    if "field" in raw and ({"n", "h"} & set(raw)):
        raise SearchSpaceError(f"{path}: 'field' is the joint choice of n and h; give either it or 'n'/'h'")
    return SearchSpace(tuple(_dimension(path, name, spec) for name, spec in raw.items()), path)


def _dimension(path: Path, name, spec) -> Dimension:
    where = f"{path}: '{name}'"
    if name not in _RULES:
        raise SearchSpaceError(f"{where}: unknown parameter; searchable: {sorted(_RULES)}")
    if not isinstance(spec, dict) or spec.get("type") not in KINDS:
        raise SearchSpaceError(f"{where}: needs 'type' one of {list(KINDS)}, got {spec!r}")
    check, must = _RULES[name]
    allowed = _KEYS["list" if spec["type"] in LISTS else "range"]
    if set(spec) - allowed:
        raise SearchSpaceError(f"{where}: unknown key(s) {sorted(set(spec) - allowed)} for type '{spec['type']}'; "
                               f"it takes {sorted(allowed)}")
    if spec["type"] in LISTS:
        values = spec.get("values")
        if isinstance(values, list) and name not in ("n", "h", "field"):
            values = [_as_number(v) for v in values]
        if not isinstance(values, list) or not values:
            raise SearchSpaceError(f"{where}: '{spec['type']}' needs a non-empty list 'values'")
        bad = [v for v in values if not check(v)]
        if bad:
            raise SearchSpaceError(f"{where}: values {bad} are not {must}")
        if name == "field":
            values = [field_label(*v) for v in values]
        if len(set(values)) < len(values):
            raise SearchSpaceError(f"{where}: 'values' repeats a value: {values}")
        return Dimension(name, spec["type"], values=tuple(values))
    low, high = _as_number(spec.get("low")), _as_number(spec.get("high"))
    for bound, value in (("low", low), ("high", high)):
        if not check(value):
            raise SearchSpaceError(f"{where}: '{bound}' = {value!r} is not {must} (finite)")
    if name in ("n", "h", "field"):
        raise SearchSpaceError(f"{where}: an integer parameter takes type 'choice' or 'grid'")
    if not low < high:
        raise SearchSpaceError(f"{where}: needs low < high, got {low} >= {high}")
    if spec["type"] == "loguniform" and low <= 0:
        raise SearchSpaceError(f"{where}: loguniform needs low > 0, got {low}")
    return Dimension(name, spec["type"], float(low), float(high))


def space_file(folder: Path, dataset: str, model: str = "mikgnn") -> tuple[Path, bool]:
    """The shipped space under ``folder`` (tune_spaces/): a baseline's own
    ``model-<name>.yaml`` (its lr, λ and layers, the same for every dataset), else the dataset's
    ``<dataset>.yaml``, else the generic ``default.yaml`` (a custom folder); True for the last."""
    for path in (folder / f"model-{model}.yaml", folder / f"{dataset}.yaml"):
        if path.is_file():
            return path, False
    return folder / "default.yaml", True


def check_sampler(space: SearchSpace, search: str) -> None:
    """A sweep (a 'grid' dimension) trains every value, which only random search's grid does."""
    if space.grid_size > 1 and search != "random":
        raise SearchSpaceError(f"{space.source}: a 'grid' dimension is a sweep of every value; run it with "
                               f"--set search=random (search {search!r} samples, it cannot sweep)")


def field_label(n: int, h: int) -> str:
    """A joint (n, h) choice as a search sees it: '8x2' is n = 8 neighbours, h = 2 hops."""
    return f"{n}x{h}"


def parse_field(label: str) -> tuple[int, int]:
    n, h = label.split("x")
    return int(n), int(h)


def paper_values(model: ModelConfig, train: TrainConfig) -> dict:
    """θ, n, h, λ and lr under the paper's names, as a search and a run's params name them."""
    return {"theta": model.theta, "n": model.n_neighbours, "h": model.hops, "lambda": train.l2, "lr": train.lr}


def start_point(space: SearchSpace, model: ModelConfig, train: TrainConfig) -> dict | None:
    """The searched parameters as ``model`` and ``train`` set them (Table 1 in a search), or
    None when one of them lies outside its dimension. A search evaluates this point first,
    so its best trial is never worse than the paper's settings it starts from."""
    point = paper_values(model, train) | {"field": field_label(model.n_neighbours, model.hops)}
    point = {d.name: point[d.name] for d in space.dimensions}
    inside = all(point[d.name] in d.values if d.kind in LISTS else d.low <= point[d.name] <= d.high
                 for d in space.dimensions)
    return point if inside else None


def apply_params(model: ModelConfig, train: TrainConfig, params: dict) -> tuple[ModelConfig, TrainConfig]:
    """The configurations of one trial: Table 1 with the sampled θ, n, h, λ and lr."""
    model_fields = {"theta": "theta", "n": "n_neighbours", "h": "hops"}
    train_fields = {"lambda": "l2", "lr": "lr"}
    if "field" in params:
        params = dict(params, **dict(zip(("n", "h"), parse_field(params["field"]))))
    model = replace(model, **{model_fields[k]: v for k, v in params.items() if k in model_fields})
    train = replace(train, **{train_fields[k]: v for k, v in params.items() if k in train_fields})
    return model, train




def fit_field(model: ModelConfig, max_field: int | None) -> ModelConfig:
    """``model`` as a search trains it: with the receptive-field adjustment (FMK r) when its
    full field n^h has more than ``max_field`` entities, else unchanged."""
    if (max_field is None or model.model not in FIELD_MODELS or model.adjusted_field
            or model.n_neighbours ** model.hops <= max_field):
        return model
    return replace(model, adjusted_field=True)
