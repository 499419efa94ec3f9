"""TensorFlow process set-up: log noise, device choice and seeds.

``quiet_tensorflow_logs`` must run before TensorFlow is first imported; the rest imports it.
"""

from __future__ import annotations

import os
import platform
import sys
from contextlib import contextmanager

from fmtrain.errors import ConfigError


def quiet_tensorflow_logs(verbose: bool) -> None:
    """Silence TensorFlow's C++ and Python start-up chatter unless ``verbose``."""
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextmanager
def _native_stderr_silenced(active: bool):
    """Send file descriptor 2 to /dev/null: TensorFlow's C++ start-up lines (CUDA stubs, CPU
    features) are written there before any log level applies. Python exceptions still propagate."""
    if not active:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow(verbose: bool = False):
    """Import TensorFlow without its start-up noise (unless ``verbose``)."""
    quiet_tensorflow_logs(verbose)
    with _native_stderr_silenced(not verbose and "tensorflow" not in sys.modules):
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # probes CUDA, which logs too
    return tf


def configure(device: str, seed: int, verbose: bool = False, deterministic: bool = False) -> list[str]:
    """Select the device and seed everything; return the names of the devices in use.

    Raises:
        ConfigError: ``--device gpu`` on a machine without a visible GPU.
    """
    tf = import_tensorflow(verbose)
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
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return [d.name.replace("/physical_device:", "") for d in tf.config.get_visible_devices()]


def device_kind() -> str:
    """What compiled code runs on, for plan rules and the plan cache: ``gpu:<name>`` for the first
    visible GPU, else ``cpu:<model name>``."""
    import tensorflow as tf

    gpus = tf.config.get_visible_devices("GPU")
    if gpus:
        return "gpu:" + str(tf.config.experimental.get_device_details(gpus[0]).get("device_name", "unknown"))
    return "cpu:" + _cpu_model()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def set_mixed_precision(setting: str) -> str:
    """Set Keras's global dtype policy; return its name.

    ``auto`` picks bfloat16 on GPUs with compute capability 8.0 or newer and float32 elsewhere
    (CPUs gain nothing from it).
    """
    import keras
    import tensorflow as tf

    policy = {"off": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}.get(setting)
    if policy is None:
        policy = "float32"
        for gpu in tf.config.get_visible_devices("GPU"):
            capability = tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0)
            if tuple(capability) >= (8, 0):
                policy = "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)
    return policy
