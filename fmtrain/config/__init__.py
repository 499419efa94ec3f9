"""Config loading and validation. Never imports TensorFlow."""

from fmtrain.config.loader import load_config, locate, parse_config_text, validate_config

__all__ = ["load_config", "locate", "parse_config_text", "validate_config"]
