"""fmtrain: train and evaluate Keras models from YAML files."""

__version__ = "0.1.0"
