"""The typed configuration of a training or evaluation run: reading, overriding, saving it.

A :class:`Config` (its sections, keys, types and defaults: :mod:`dcal.config_schema`, re-exported
here) is built from, in order of precedence,

1. the defaults, which are the synthetic FGVC demo that ``dcal train`` runs with no arguments;
2. a YAML file (``--config``), nested by section;
3. ``key=value`` overrides with dotted keys (``optim.lr=1e-4``, ``model.glca=false``), whose values
   are parsed as YAML scalars.

Every key is checked: an unknown or misspelt key raises :class:`~dcal.errors.ConfigError` naming
the closest valid key, and a value of the wrong type raises one naming the key and the expected
type.  :func:`save_config` writes the resolved configuration (``config.yaml`` in the run folder);
:func:`config_from_dict` rebuilds it from a checkpoint.

The paper's settings per dataset (Sec. 4) live in ``configs/fgvc/*.yaml`` and
``configs/reid/*.yaml``.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import yaml

from dcal.config_checks import check_settings, coerce, key_hint
from dcal.config_schema import (
    Config,
    DataConfig,
    EvalConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    PaperConfig,
    SlurmConfig,
    TrainConfig,
    field_types,
    section_names,
    valid_keys,
)
from dcal.errors import ConfigError

__all__ = [
    "Config", "ModelConfig", "DataConfig", "OptimConfig", "TrainConfig", "LossConfig", "EvalConfig", "SlurmConfig",
    "PaperConfig", "valid_keys", "load_config", "read_yaml_file", "apply_overrides", "config_from_dict",
    "save_config", "config_value", "flat_settings",
]


def load_config(path=None, overrides=()) -> Config:
    """The defaults, updated by the YAML file at ``path`` (if any), then by ``key=value`` strings."""
    config = Config()
    if path is not None:
        path = Path(path)
        data = read_yaml_file(path)
        if data is None:
            raise ConfigError(f"config file {path} is empty (no settings); write the sections to change "
                              "(see configs/), or leave out --config to run the synthetic demo")
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path}: expected a mapping of sections, got {type(data).__name__}")
        config = _merge(config, data, source=str(path))
        if "name" not in data:
            config.name = path.stem
    return apply_overrides(config, overrides)


def read_yaml_file(path: Path):
    """The YAML document in ``path`` (None when it holds none), or a one-line :class:`ConfigError`
    naming the file: missing, a folder, not UTF-8 text, not valid YAML (with the line and column)."""
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; give a YAML file, e.g. configs/fgvc/cub200.yaml")
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {error.start} is {error.object[error.start]:#04x}); "
                          "a config is a YAML text file") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        context = getattr(error, "context", None)
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}"
                          + (f" ({context})" if context else "")) from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read: {error.strerror}") from None


def apply_overrides(config: Config, overrides=()) -> Config:
    """A copy of ``config`` with ``key=value`` strings applied (values parsed as YAML scalars)."""
    config = copy.deepcopy(config)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. optim.lr=1e-4")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            value = text
        config = _set(config, key.strip(), value, source="command line")
    check_settings(flat_settings(config))
    return config


def config_from_dict(data: dict, source: str = "checkpoint") -> Config:
    """Rebuild a :class:`Config` from :meth:`Config.to_dict` output (e.g. a checkpoint's ``config``)."""
    config = _merge(Config(), data, source=source)
    check_settings(flat_settings(config))
    return config


def save_config(config: Config, path) -> None:
    """Write the resolved configuration as YAML."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")


def _merge(config: Config, data: dict, source: str, prefix: str = "") -> Config:
    for key, value in data.items():
        dotted = prefix + str(key)
        if isinstance(value, dict) and dotted in section_names():
            config = _merge(config, value, source, dotted + ".")
        else:
            config = _set(config, dotted, value, source)
    return config


def config_value(config: Config, key: str):
    """The value of the dotted ``key`` (``"task"``, ``"model.glca_ratio"``)."""
    owner, name = _owner(config, key)
    return getattr(owner, name)


def flat_settings(config: Config) -> dict:
    """``{dotted key: value}`` of every setting; a dict-valued one (``model.timm_kwargs``) stays one value."""
    flat = {}
    for section, value in config.to_dict().items():
        if isinstance(value, dict) and section in section_names():
            flat.update({f"{section}.{name}": v for name, v in value.items()})
        else:
            flat[section] = value
    return flat


def _owner(config: Config, key: str):
    """The section object holding ``key`` and the field's name in it."""
    *sections, name = key.split(".")
    owner = config
    for section in sections:
        owner = getattr(owner, section)
    return owner, name


def _set(config: Config, key: str, value: Any, source: str) -> Config:
    if key not in valid_keys():
        raise ConfigError(f"{source}: unknown config key {key!r}; {key_hint(key, valid_keys())}")
    owner, name = _owner(config, key)
    if dataclasses.is_dataclass(field_types(type(owner))[name]):
        raise ConfigError(f"{source}: {key!r} is a section; set its keys, e.g. {key}.{dataclasses.fields(field_types(type(owner))[name])[0].name}=...")
    setattr(owner, name, coerce(value, field_types(type(owner))[name], key, source))
    return config
