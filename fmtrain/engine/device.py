"""TensorFlow process set-up: log noise, device choice and seeds.

``quiet_tensorflow_logs`` must run before TensorFlow is first imported; the rest imports it.
"""

from __future__ import annotations

import os

from fmtrain.errors import ConfigError


def quiet_tensorflow_logs(verbose: bool) -> None:
    """Silence TensorFlow's C++ and Python start-up chatter unless ``verbose``."""
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def configure(device: str, seed: int, verbose: bool = False) -> list[str]:
    """Select the device and seed everything; return the names of the devices in use.

    Raises:
        ConfigError: ``--device gpu`` on a machine without a visible GPU.
    """
    quiet_tensorflow_logs(verbose)
    import tensorflow as tf

    if not verbose:
        tf.get_logger().setLevel("ERROR")
    gpus = tf.config.list_physical_devices("GPU")
    if device == "cpu" and gpus:
        tf.config.set_visible_devices([], "GPU")
        gpus = []
    elif device == "gpu" and not gpus:
        raise ConfigError("--device gpu: TensorFlow sees no GPU on this machine; use --device auto or cpu")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process
            pass
    import keras

    keras.utils.set_random_seed(seed)
    return [d.name.replace("/physical_device:", "") for d in tf.config.get_visible_devices()]
