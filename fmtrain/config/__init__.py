"""Config loading and validation. Never imports TensorFlow.

The names below load their module (:mod:`~fmtrain.config.loader` with pydantic, or
:mod:`~fmtrain.config.yaml_marks` with PyYAML) on first use, so a module of this package that needs
neither (``schema_cache``) is imported without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fmtrain.config.loader import load_config, locate, parse_config_text, validate_config
    from fmtrain.config.yaml_marks import dump_yaml

_MODULE_OF = {"load_config": "loader", "locate": "loader", "parse_config_text": "loader",
              "validate_config": "loader", "dump_yaml": "yaml_marks"}

__all__ = ["dump_yaml", "load_config", "locate", "parse_config_text", "validate_config"]


def __getattr__(name: str):
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"fmtrain.config.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module 'fmtrain.config' has no attribute '{name}'")
