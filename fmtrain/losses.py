"""The loss: which one ``auto`` means, and a per-example loss function for it."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from fmtrain.errors import ConfigError
from fmtrain.registry import Registry, did_you_mean

# Losses fmtrain defines itself (e.g. in-batch softmax for retrieval); every other name goes to
# keras.losses.get. A builder takes the loss's args and returns fn(y_true, y_pred) -> per-example losses.
LOSSES: Registry[Callable[..., Any]] = Registry("loss")

CLASS_ID_LOSSES = {"sparse_categorical_crossentropy"}
ONE_HOT_LOSSES = {
    "categorical_crossentropy", "categorical_focal_crossentropy", "categorical_hinge", "kl_divergence", "kld",
}
BINARY_LOSSES = {"binary_crossentropy", "bce", "binary_focal_crossentropy", "hinge", "squared_hinge"}


def resolve_loss_name(name: str, task: str, one_hot_labels: bool) -> str:
    """The Keras loss ``auto`` stands for: cross-entropy for classes, MSE for regression."""
    if name != "auto":
        return name
    if task == "classification":
        return "categorical_crossentropy" if one_hot_labels else "sparse_categorical_crossentropy"
    return "mean_squared_error"


def check_loss_fits_labels(name: str, task: str, one_hot_labels: bool, num_classes: int | None) -> None:
    """Refuse loss/label pairings that would train on nonsense.

    Raises:
        ConfigError: e.g. sparse cross-entropy with one-hot labels, or cross-entropy on a regression.
    """
    if name in CLASS_ID_LOSSES and one_hot_labels:
        raise ConfigError(
            "loss: sparse_categorical_crossentropy expects class ids, but preprocess one_hot makes one-hot "
            "labels; use categorical_crossentropy or drop one_hot"
        )
    if name in ONE_HOT_LOSSES - {"kl_divergence", "kld"} and task == "classification" and not one_hot_labels:
        raise ConfigError(
            f"loss: {name} expects one-hot labels, but the labels are class ids; use "
            "sparse_categorical_crossentropy or add '- one_hot: {}' to preprocess"
        )
    if name in BINARY_LOSSES and task == "classification" and (num_classes or 2) > 2:
        raise ConfigError(
            f"loss: {name} is for two classes, but the data has {num_classes}; use sparse_categorical_crossentropy"
        )
    if task == "regression" and (name in CLASS_ID_LOSSES or name in ONE_HOT_LOSSES or name in BINARY_LOSSES):
        raise ConfigError(f"loss: {name} needs class labels, but the task is regression; use mse, mae or huber")


def build_loss(name: str, args: dict):
    """``fn(y_true, y_pred) -> per-example losses`` for a loss name and its arguments."""
    import keras

    if name in LOSSES:
        return LOSSES.get(name).build(**args)

    fn = keras.losses.get(name)
    if args:
        accepted = [p for p in inspect.signature(fn).parameters if p not in ("y_true", "y_pred")]
        for key in args:
            if key not in accepted:
                raise ConfigError(f"loss.{key}: {name} has no argument '{key}'{did_you_mean(key, accepted)}")
        fn = functools.partial(fn, **args)
    return fn
