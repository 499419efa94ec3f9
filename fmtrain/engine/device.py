"""TensorFlow process set-up: log noise, device choice and seeds.

``quiet_tensorflow_logs`` must run before TensorFlow is first imported; the rest imports it.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

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


def configure(device: str, seed: int, verbose: bool = False, deterministic: bool = False,
              cpu_devices: int | None = None) -> list[str]:
    """Select the device and seed everything; return the names of the devices in use.

    ``cpu_devices`` splits the CPU into that many logical devices (``distribute.cpu_devices``); it
    must come before anything initializes TensorFlow's devices, so once per process.

    Raises:
        ConfigError: ``--device gpu`` on a machine without a visible GPU; ``cpu_devices`` in a process
            whose devices are already initialized.
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
    if cpu_devices:
        _split_cpu(tf, cpu_devices)
    import keras

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return [d.name.replace("/physical_device:", "") for d in tf.config.get_visible_devices()]


def _split_cpu(tf, count: int) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:
        raise ConfigError(
            f"distribute.cpu_devices: {count} logical CPUs must be set before TensorFlow initializes its devices, "
            "and this process already did; run it in a fresh process (fmtrain fit does)"
        ) from None


INPUT_SHARDING = "data"
"""How a multi-worker run splits its input among workers: tf.data's auto-shard policy DATA. Every worker
reads the whole input in the one-device order and keeps its replicas' slices of each global batch, so the
batches trained depend only on (seed, epoch), as on one device, and every worker takes the same number of
steps. FILE sharding (TensorFlow's AUTO picks it for file sources) gives each worker other files: another
order than one device, and unequal shares when the files do not divide evenly among the workers (3 shards on 2
workers, in tests/test_distribute.py, failed in the first epoch with an InvalidArgumentError). The cost: every
worker reads all of the input."""


@dataclass
class Distribution:
    """How training is spread over devices: a tf.distribute strategy, or None for one device (the
    plain engine, unchanged)."""

    strategy_name: str
    """``one_device``, ``mirrored`` or ``multi_worker``."""
    replicas: int = 1
    workers: int = 1
    strategy: Any = None
    input_sharding: str | None = None
    """``INPUT_SHARDING`` under a strategy (each replica trains on its slice of every global batch);
    None on one device."""

    def scope(self):
        """Where the model, optimizer and metrics must be created (a no-op on one device)."""
        return self.strategy.scope() if self.strategy is not None else nullcontext()

    def check_batch(self, batch_size: int) -> None:
        """Raises ConfigError: the global batch does not divide evenly among the replicas."""
        if batch_size % self.replicas:
            lower = batch_size - batch_size % self.replicas
            raise ConfigError(
                f"data.batch_size: {batch_size} is the global batch and must divide evenly among the "
                f"{self.replicas} replicas of distribute.strategy {self.strategy_name}; use "
                f"{lower or self.replicas} or {lower + self.replicas}"
            )


@dataclass
class WorkerRole:
    """This process's place in a multi-worker cluster, as ``TF_CONFIG`` gives it (Kubeflow's TFJob,
    Vertex AI and ``fmtrain launch`` set it alike)."""

    task_type: str = "worker"
    index: int = 0
    workers: int = 1
    chief: bool = True
    """Writes the run directory: task type chief, or worker 0 when the cluster has no chief."""

    def describe(self) -> str:
        return f"{self.task_type} {self.index} of {self.workers}{' (chief)' if self.chief else ''}"


def worker_role() -> WorkerRole:
    """Read ``TF_CONFIG`` (no TensorFlow needed).

    Raises:
        ConfigError: TF_CONFIG is missing or not a cluster spec with this task in it.
    """
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError("distribute.strategy: multi_worker reads the cluster from the TF_CONFIG environment "
                          "variable, which is not set; start the workers with fmtrain launch or a cluster launcher")
    try:
        spec = json.loads(raw)
        cluster, task = spec["cluster"], spec["task"]
        task_type, index = str(task["type"]), int(task["index"])
        workers = sum(len(cluster.get(job, [])) for job in ("chief", "worker"))
        cluster[task_type][index]  # noqa: B018 - this task must be in the cluster
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ConfigError(f"TF_CONFIG: expected {{cluster: {{worker: [host:port, …]}}, task: {{type, index}}}} "
                          f"naming a task of the cluster ({type(exc).__name__}: {exc})") from None
    chief = task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in cluster)
    return WorkerRole(task_type, index, workers, chief)


def distribution(setting: str) -> Distribution:
    """The strategy ``distribute.strategy`` asks for, over the visible GPUs, or the logical CPUs
    when there is none (``auto``: mirrored when there is more than one such device)."""
    import tensorflow as tf

    if setting == "multi_worker":  # reads TF_CONFIG; before anything lists the devices
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        return Distribution("multi_worker", strategy.num_replicas_in_sync, worker_role().workers, strategy,
                            INPUT_SHARDING)
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    if setting == "auto":
        setting = "mirrored" if len(devices) > 1 else "one_device"
    if setting == "one_device":
        return Distribution("one_device")
    strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
    return Distribution("mirrored", strategy.num_replicas_in_sync, 1, strategy, INPUT_SHARDING)


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
