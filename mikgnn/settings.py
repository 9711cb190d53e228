"""What a run trains, resolved from layers: Table 1 < variant < job defaults < config file < flags.

A later layer overrides an earlier one key by key, with one exception: a key a variant fixes
(θ = 1 for w/o-neig-att, say) cannot be changed by a config file or a flag, since the run
would then not be that variant; that is an error naming both. ``Settings.origin`` says which
layer set every key; runs print it and record it.

A config file is YAML with the sections ``model``, ``train``, ``parallel`` and (for a search)
``search``, whose keys are the fields of ``ModelConfig``, ``TrainConfig``, ``ParallelConfig``
and ``SearchConfig``; an unknown section or key, or a value of the wrong type, is refused with
its name::

    model: {dim: 32, n_neighbours: 16}
    train: {lr: 0.001, l2_relations: false}

The same keys are flags too: ``--set dim=32 --set train.lr=0.001`` (``parse_overrides``); a
bare key names the one section that has it.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, fields, replace
from pathlib import Path

import yaml

from mikgnn.config import (
    TABLE1_MODEL_KEYS,
    TABLE1_TRAIN_KEYS,
    VARIANTS,
    ModelConfig,
    ParallelConfig,
    SearchConfig,
    TrainConfig,
    apply_variant,
    for_model,
    table1,
    table1_ls_weight,
    train_for_model,
)
from mikgnn.size_rule import SizeDefaults

SECTIONS = {"model": ModelConfig, "train": TrainConfig, "parallel": ParallelConfig, "search": SearchConfig}
RUN_SECTIONS = ("model", "train", "parallel")  # what one training run takes; a search adds "search"
CHOSEN_BY_FLAG = {"model.model": "--model", "train.seed": "--seed"}  # run identity: flags only


class ConfigError(ValueError):
    """A config file or an override that cannot be applied; the message names file and key."""


# The entry scripts' own flags (the rest are settings keys): flag -> (allowed, what it must be).
# Every entry point checks the flags it has, before Ray or MLflow start.
FLAG_RULES = {
    "num_samples": (lambda v: v >= 1, "an integer >= 1"),
    "epochs": (lambda v: v >= 1, "an integer >= 1"),
    "workers": (lambda v: v >= 1, "an integer >= 1"),
    "gpus_per_worker": (lambda v: 0 <= v <= 64, "a number of GPUs in [0, 64]"),
    "seed": (lambda v: 0 <= v < 2**32, "an integer in [0, 2^32)"),
}


def check_flags(args) -> None:
    """Each flag of ``args`` (an argparse namespace) that has a rule, or a ConfigError naming it."""
    for name, (allowed, must) in FLAG_RULES.items():
        value = getattr(args, name, None)
        if value is None:  # not given, or not a flag of this entry point
            continue
        if (isinstance(value, float) and value != value) or not allowed(value):
            raise ConfigError(f"--{name.replace('_', '-')} = {value}: must be {must}")


@dataclass(frozen=True)
class Settings:
    model: ModelConfig
    train: TrainConfig
    parallel: ParallelConfig
    search: SearchConfig
    origin: dict[str, str]  # "model.theta" -> table1 | model | variant | job | config | flag | default

    def describe(self) -> str:
        """One line per key that is not a dataclass default, ``model.theta = 0.9  (table1)``, and
        when a run stops."""
        lines = []
        for section in SECTIONS:
            values = getattr(self, section)
            for f in fields(values):
                key = f"{section}.{f.name}"
                if self.origin.get(key, "default") != "default":
                    lines.append(f"{key} = {getattr(values, f.name)!r}  ({self.origin[key]})")
        t = self.train
        lines.append(f"stops once converged: {t.patience} epochs without a validation {t.select_metric} gain above "
                     f"{t.min_delta:g}, or at the budget of {t.epochs} epochs (then with a warning)")
        return "\n".join(lines)


def _check_value(where: str, section: str, key: str, value):
    """``value`` as the field ``section.key`` takes it (a list as a tuple), else ConfigError."""
    hint = typing.get_type_hints(SECTIONS[section])[key]
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if isinstance(value, list):
        value = tuple(value)
    for kind in allowed:
        kind = typing.get_origin(kind) or kind
        if kind is type(None) and value is None:
            return value
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if kind is float and isinstance(value, str):  # YAML reads 1e-6 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if kind is not type(None) and isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
            return value
    names = " or ".join("None" if k is type(None) else getattr(typing.get_origin(k) or k, "__name__", str(k))
                        for k in allowed)
    raise ConfigError(f"{where}: {section}.{key} = {value!r}: expected {names}")


def _check_key(where: str, section: str, key: str, sections: tuple[str, ...]) -> None:
    if section not in sections:
        raise ConfigError(f"{where}: unknown section {section!r}: choose from {list(sections)}")
    known = {f.name for f in fields(SECTIONS[section])}
    if key not in known:
        raise ConfigError(f"{where}: unknown key {section}.{key}: {section} takes {sorted(known)}")
    if f"{section}.{key}" in CHOSEN_BY_FLAG:
        raise ConfigError(f"{where}: {section}.{key} is chosen with {CHOSEN_BY_FLAG[section + '.' + key]}")


def load_config_file(path: str | Path, sections: tuple[str, ...] = tuple(SECTIONS)) -> dict[str, dict]:
    """The sections of a config file, each key and value checked against its dataclass."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections {list(sections)}")
    out: dict[str, dict] = {}
    for section, values in raw.items():
        if section not in sections:
            raise ConfigError(f"{path}: unknown section {section!r}: choose from {list(sections)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: section {section!r} must be a mapping of keys to values")
        for key, value in values.items():
            _check_key(str(path), section, key, sections)
            out.setdefault(section, {})[key] = _check_value(str(path), section, key, value)
    return out


def parse_overrides(pairs: list[str] | None, sections: tuple[str, ...] = tuple(SECTIONS)) -> dict[str, dict]:
    """``--set`` values, ``key=value`` or ``section.key=value``, each value read as YAML
    (``0.5``, ``true``, ``[2, 10]``, ``null``): {section: {key: value}}."""
    out: dict[str, dict] = {}
    for pair in pairs or []:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set dim=32")
        if "." in name:
            section, key = name.split(".", 1)
        else:
            owners = [s for s in sections if name in {f.name for f in fields(SECTIONS[s])}]
            if len(owners) != 1:
                raise ConfigError(f"--set {pair!r}: " + (f"{name} is a key of {owners}: write section.{name}" if owners
                                  else f"unknown key {name!r}; the keys: {_all_keys(sections)}"))
            section, key = owners[0], name
        _check_key(f"--set {pair!r}", section, key, sections)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {pair!r}: the value is not valid YAML ({exc})") from None
        out.setdefault(section, {})[key] = _check_value(f"--set {pair!r}", section, key, value)
    return out


def _all_keys(sections: tuple[str, ...]) -> str:
    return "; ".join(f"{s}: {', '.join(f.name for f in fields(SECTIONS[s]))}" for s in sections)


def merge_flags(*layers: dict[str, dict]) -> dict[str, dict]:
    """Flag layers in order, later ones winning key by key; a value of None counts as not given."""
    out: dict[str, dict] = {}
    for layer in layers:
        for section, keys in layer.items():
            out.setdefault(section, {}).update({k: v for k, v in keys.items() if v is not None})
    return out


def resolve_settings(dataset: str, model: str = "mikgnn", variant: str = "mi-kgnn", kgcn_aggregator: str = "sum",
                     config_file: str | Path | None = None, flags: dict[str, dict] | None = None,
                     job_defaults: dict[str, dict] | None = None,
                     sections: tuple[str, ...] = RUN_SECTIONS, base: SizeDefaults | None = None) -> Settings:
    """The settings of a run on ``dataset`` (Table 1's name, else music's for a custom set).
    ``flags``: {section: {key: value}}, a value of None meaning the flag was not given.
    ``job_defaults``: an entry point's own defaults (a search's shorter epochs), a layer between
    the variant and the config file (origin "job"). ``sections``: what the entry point takes;
    a config file's other sections are refused. ``base``: the size rule's settings
    (``size_rule.size_defaults``, origin "size rule"), which then take Table 1's place."""
    t = base.table if base is not None else table1(Path(dataset).name)
    values = {"model": for_model(t.model, model, kgcn_aggregator), "parallel": ParallelConfig(),
              "search": SearchConfig(),
              "train": replace(train_for_model(t.train, model),
                               ls_weight=table1_ls_weight(Path(dataset).name) if model == "kgcn-ls" else 0.0)}
    origin = {f"{s}.{k}": "table1" for s, keys in (("model", TABLE1_MODEL_KEYS), ("train", TABLE1_TRAIN_KEYS))
              for k in keys}
    if base is not None:
        origin = {k: "size rule" for k in origin} | {k: "size rule" for k in base.keys}
    for section, table in (("model", t.model), ("train", t.train)):
        for f in fields(table):
            if f.name != "ls_weight" and getattr(values[section], f.name) != getattr(table, f.name):
                origin[f"{section}.{f.name}"] = "model"
    if model == "kgcn-ls":
        origin["train.ls_weight"] = "table1"
    if variant != "mi-kgnn":
        if model != "mikgnn":
            raise ConfigError(f"--variant {variant} is a variant of MI-KGNN (Tables 5-7); --model {model} has none")
        values["model"] = apply_variant(values["model"], variant)
        origin.update({f"model.{k}": "variant" for k in VARIANTS[variant]})
    config = load_config_file(config_file, sections) if config_file is not None else None
    given = {section: {k: v for k, v in keys.items() if v is not None} for section, keys in (flags or {}).items()}
    fixed = VARIANTS.get(variant, {})
    merged: dict[str, dict] = {}
    for layer, overrides, name in (("job", job_defaults, "the job's defaults"), ("config", config, str(config_file)),
                                   ("flag", given, "a flag")):
        for section, keys in (overrides or {}).items():
            for key, value in keys.items():
                if section == "model" and key in fixed and value != fixed[key]:
                    raise ConfigError(f"{name} sets model.{key} = {value!r}, but --variant {variant} fixes "
                                      f"{key} = {fixed[key]!r}: drop one of them")
                origin[f"{section}.{key}"] = layer
                merged.setdefault(section, {})[key] = value
    where = {"job": "the job's defaults", "config": str(config_file), "flag": "the flags"}
    for section, keys in merged.items():  # once per section: a check may need two keys (concat, learned)
        try:
            values[section] = replace(values[section], **keys)
        except (TypeError, ValueError) as exc:
            layers = sorted({where[origin[f"{section}.{k}"]] for k in keys})
            given = ", ".join(f"{section}.{k} = {v!r}" for k, v in keys.items())
            raise ConfigError(f"{' and '.join(layers)}: {exc} (given: {given})") from None
    return Settings(values["model"], values["train"], values["parallel"], values["search"], origin)
