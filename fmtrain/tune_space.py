"""``fmtrain tune``'s search space: ``space.yaml`` read into :class:`SearchParam` entries, each key
checked against the config schema at its extremes before the first trial runs.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmtrain.config.yaml_marks import Mark, Marks, read_yaml
from fmtrain.errors import ConfigError
from fmtrain.registry import did_you_mean

if TYPE_CHECKING:
    from fmtrain.config.schema import Config

PARAM_TYPES = ("log_uniform", "uniform", "int", "categorical")


@dataclass(frozen=True)
class SearchParam:
    """One key of ``space.yaml``: the config key it sets and the range Optuna draws from."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    where: Mark | None = None
    """Where the key was written in the space file (for error messages)."""

    def suggest(self, trial) -> Any:
        """The value of this key for ``trial`` (an ``optuna.Trial``)."""
        if self.type == "log_uniform":
            return trial.suggest_float(self.key, self.low, self.high, log=True)
        if self.type == "uniform":
            return trial.suggest_float(self.key, self.low, self.high)
        if self.type == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high))
        # Optuna stores plain scalars only; a choice such as [128, 64] travels as its JSON text.
        if all(_scalar(choice) for choice in self.choices):
            return trial.suggest_categorical(self.key, list(self.choices))
        return json.loads(trial.suggest_categorical(self.key, [json.dumps(c) for c in self.choices]))

    def extremes(self) -> list[Any]:
        """The values checked against the schema before the search starts."""
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]


def read_space(path: Path) -> list[SearchParam]:
    """Read ``space.yaml``: ``config.key: {type: log_uniform|uniform|int|categorical, low, high, choices}``.

    Raises:
        ConfigError: naming the file:line of the entry and what would be right.
    """
    data, marks = read_yaml(Path(path))
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{marks.nearest(()) or path}: a search space maps config keys to ranges, e.g. "
                          "optimizer.learning_rate: {type: log_uniform, low: 1e-4, high: 1e-2}")
    params = []
    for key, spec in data.items():
        where = marks.get((key,))
        prefix = f"{where}: {key}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{prefix}: expected a mapping such as {{type: uniform, low: 0.0, high: 0.5}}")
        kind = spec.get("type")
        if kind not in PARAM_TYPES:
            raise ConfigError(f"{marks.nearest((key, 'type'))}: {key}.type: expected one of "
                              f"{', '.join(PARAM_TYPES)}, found {kind!r}{did_you_mean(str(kind), PARAM_TYPES)}")
        allowed = {"type", "choices"} if kind == "categorical" else {"type", "low", "high"}
        extra = sorted(set(spec) - allowed, key=str)
        if extra:
            raise ConfigError(f"{marks.nearest((key, extra[0]))}: {key}.{extra[0]}: not used by type {kind}; "
                              f"it takes {', '.join(sorted(allowed - {'type'}))}")
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{marks.nearest((key, 'choices'))}: {key}.choices: expected a non-empty list")
            params.append(SearchParam(str(key), kind, choices=tuple(choices), where=where))
            continue
        low, high = spec.get("low"), spec.get("high")
        number = int if kind == "int" else (int, float)
        for name, value in (("low", low), ("high", high)):
            if not isinstance(value, number) or isinstance(value, bool):
                raise ConfigError(f"{marks.nearest((key, name))}: {key}.{name}: expected "
                                  f"{'an integer' if kind == 'int' else 'a number'}, found {value!r}")
        if low > high:
            raise ConfigError(f"{marks.nearest((key, 'low'))}: {key}: low ({low}) is above high ({high})")
        if kind == "log_uniform" and low <= 0:
            raise ConfigError(f"{marks.nearest((key, 'low'))}: {key}.low: log_uniform needs low > 0, found {low}")
        params.append(SearchParam(str(key), kind, float(low) if kind != "int" else low,
                                  float(high) if kind != "int" else high, where=where))
    return params


def as_overrides(values: dict[str, Any]) -> list[str]:
    """``--set`` strings for ``values``; JSON is YAML 1.2, so the loader reads back exactly these values."""
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def check_space(params: list[SearchParam], config: Path, overrides: list[str]) -> Config:
    """Validate the base config, then each key at each of its extremes, as the trials will set it.

    Returns:
        The base config (``config`` with ``overrides``).

    Raises:
        ConfigError: the base config is invalid, or a key is not in the schema or a value out of its range
            (naming the space file's line and the key).
    """
    from fmtrain.config.loader import apply_override, load_data, validate_config

    data, marks = load_data(config, overrides)
    base = validate_config(data, marks)
    for param in params:
        # The base config is valid, so any problem is this key's: every error points at its line.
        here = Marks({(): param.where})
        for value in param.extremes():
            trial_data = copy.deepcopy(data)
            try:
                apply_override(trial_data, Marks(), as_overrides({param.key: value})[0])
            except ConfigError as exc:
                raise ConfigError(f"{param.where}: {param.key}: {exc}") from None
            try:
                validate_config(trial_data, here)
            except ConfigError as exc:
                raise ConfigError(f"{exc} (with {param.key}: {short(value)} in {config})") from None
    return base


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))



def short(value: Any) -> str:
    """A value as error messages and the summary show it."""
    return f"{value:.4g}" if isinstance(value, float) else json.dumps(value)
