"""What a run trains, resolved from four layers: Table 1 < variant < config file < flags.

A later layer overrides an earlier one key by key, with one exception: a key a variant fixes
(θ = 1 for w/o-neig-att, say) cannot be changed by a config file or a flag, since the run
would then not be that variant; that is an error naming both. ``Settings.origin`` says which
layer set every key; runs print it and record it.

A config file is YAML with the sections ``model``, ``train`` and ``parallel``, whose keys are
the fields of ``ModelConfig``, ``TrainConfig`` and ``ParallelConfig``; an unknown section or
key is refused with its name::

    model: {dim: 32, n_neighbours: 16}
    train: {lr: 0.001, l2_relations: false}
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

import yaml

from mikgnn.config import (
    TABLE1_MODEL_KEYS,
    TABLE1_TRAIN_KEYS,
    VARIANTS,
    ModelConfig,
    ParallelConfig,
    TrainConfig,
    apply_variant,
    for_model,
    table1,
    table1_ls_weight,
)

SECTIONS = {"model": ModelConfig, "train": TrainConfig, "parallel": ParallelConfig}
CHOSEN_BY_FLAG = {"model.model": "--model", "train.seed": "--seed"}  # run identity: flags only


class ConfigError(ValueError):
    """A config file or an override that cannot be applied; the message names file and key."""


@dataclass(frozen=True)
class Settings:
    model: ModelConfig
    train: TrainConfig
    parallel: ParallelConfig
    origin: dict[str, str]  # "model.theta" -> table1 | model | variant | job | config | flag | default

    def describe(self) -> str:
        """One line per key that is not a dataclass default: ``model.theta = 0.9  (table1)``."""
        lines = []
        for section in SECTIONS:
            values = getattr(self, section)
            for f in fields(values):
                key = f"{section}.{f.name}"
                if self.origin.get(key, "default") != "default":
                    lines.append(f"{key} = {getattr(values, f.name)!r}  ({self.origin[key]})")
        return "\n".join(lines)


def load_config_file(path: str | Path) -> dict[str, dict]:
    """The sections of a config file, each key checked against its dataclass."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections {list(SECTIONS)}")
    for section, values in raw.items():
        if section not in SECTIONS:
            raise ConfigError(f"{path}: unknown section {section!r}: choose from {list(SECTIONS)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: section {section!r} must be a mapping of keys to values")
        known = {f.name for f in fields(SECTIONS[section])}
        for key in values:
            if key not in known:
                raise ConfigError(f"{path}: unknown key {section}.{key}: {section} takes {sorted(known)}")
            if f"{section}.{key}" in CHOSEN_BY_FLAG:
                raise ConfigError(f"{path}: {section}.{key} is chosen with {CHOSEN_BY_FLAG[section + '.' + key]}")
    return {section: {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
            for section, values in raw.items()}


def resolve_settings(dataset: str, model: str = "mikgnn", variant: str = "mi-kgnn", kgcn_aggregator: str = "sum",
                     config_file: str | Path | None = None, flags: dict[str, dict] | None = None,
                     job_defaults: dict[str, dict] | None = None) -> Settings:
    """The settings of a run on ``dataset`` (Table 1's name, else music's for a custom set).
    ``flags``: {section: {key: value}}, a value of None meaning the flag was not given.
    ``job_defaults``: an entry point's own defaults (a search's shorter epochs), a layer between
    the variant and the config file (origin "job")."""
    t = table1(Path(dataset).name)
    values = {"model": for_model(t.model, model, kgcn_aggregator), "parallel": ParallelConfig(),
              "train": replace(t.train, ls_weight=table1_ls_weight(Path(dataset).name) if model == "kgcn-ls" else 0.0)}
    origin = {f"{s}.{k}": "table1" for s, keys in (("model", TABLE1_MODEL_KEYS), ("train", TABLE1_TRAIN_KEYS))
              for k in keys}
    for f in fields(ModelConfig):
        if getattr(values["model"], f.name) != getattr(t.model, f.name):
            origin[f"model.{f.name}"] = "model"
    if model == "kgcn-ls":
        origin["train.ls_weight"] = "table1"
    if variant != "mi-kgnn":
        if model != "mikgnn":
            raise ConfigError(f"--variant {variant} is a variant of MI-KGNN (Tables 5-7); --model {model} has none")
        values["model"] = apply_variant(values["model"], variant)
        origin.update({f"model.{k}": "variant" for k in VARIANTS[variant]})
    config = load_config_file(config_file) if config_file is not None else None
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
    for section, keys in merged.items():  # once per section: a check may need two keys (concat, learned)
        try:
            values[section] = replace(values[section], **keys)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{' and '.join(sorted({origin[f'{section}.{k}'] for k in keys}))}: {exc}") from None
    return Settings(values["model"], values["train"], values["parallel"], origin)
