"""A config as dotted keys, the way ``--set`` names them; shared by resume, the comparison report and MLflow."""

from __future__ import annotations

from typing import Any


def flatten_config(data: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a config: sections by name, lists of sections by index (``preprocess.0.rescale.scale``);
    a list of plain values (``hidden_units``) stays one value."""
    if isinstance(data, dict) and (data or not prefix):
        return {key: value for name, item in data.items()
                for key, value in flatten_config(item, f"{prefix}{name}.").items()}
    if isinstance(data, list) and any(isinstance(item, (dict, list)) for item in data):
        return {key: value for index, item in enumerate(data)
                for key, value in flatten_config(item, f"{prefix}{index}.").items()}
    return {prefix.rstrip("."): data}
