"""``fmtrain export``: a run's model as a SavedModel, a TFLite file or an ONNX file, checked against Keras.

Every format starts from one serving function, ``serving_default``, whose inputs are named
(``inputs`` for a single input, the data's input names otherwise) and whose output is named
``output``. After writing, the exported file is loaded by its own runtime (TensorFlow,
``tf.lite.Interpreter``, onnxruntime) and run on a sample of the run's own examples; the largest
absolute difference from the Keras model is reported, and past ``--tolerance`` the command exits 1.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fmtrain.engine.device import configure, set_mixed_precision
from fmtrain.errors import FmtrainError, RunDirError, first_line
from fmtrain.export_options import ExportOptions, check_format

if TYPE_CHECKING:
    import numpy as np

DEFAULT_NAMES = {"saved_model": "saved_model", "tflite": "model.tflite", "onnx": "model.onnx"}
OUTPUT_NAME = "output"


class ParityFailed(FmtrainError):
    """The exported model's outputs differ from the Keras model's by more than the tolerance."""

    exit_code = 1


class ExportFailed(FmtrainError):
    """The converter refused the model (an op the format lacks, for example)."""

    exit_code = 1


@dataclass(frozen=True)
class ExportOutcome:
    path: Path
    format: str
    max_abs_diff: float
    tolerance: float
    samples: int
    split: str
    inputs: list[str]
    """The serving signature's input names."""


def export_run(run_dir: Path, options: ExportOptions) -> ExportOutcome:
    """Export the model of ``run_dir`` and check it against the Keras model.

    Returns:
        Where the export went and how far its outputs are from Keras's.

    Raises:
        ConfigError: an unknown format or a missing optional package.
        RunDirError: the run is missing or unfinished, or the output exists (without ``overwrite``).
        ParityFailed: the exported model's outputs differ by more than ``options.tolerance``.
        ExportFailed: the converter refused the model, or the format's runtime refused the file.
    """
    from fmtrain import data as data_layer
    from fmtrain.config import load_config
    from fmtrain.evaluate import load_run_model
    from fmtrain.runs import find_run

    format = check_format(options.format)
    run, note = find_run(run_dir)
    if note:
        print(note, file=sys.stderr, flush=True)
    path = Path(options.output) if options.output is not None else run.path / "export" / DEFAULT_NAMES[format]
    if path.exists() and not options.overwrite:
        raise RunDirError(f"{path} exists; pass --overwrite to replace it, or --output to write elsewhere")
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        raise RunDirError(f"{path} is a folder but not a SavedModel; --overwrite replaces only an earlier export, "
                          "so give --output a new path")
    cfg = load_config(run.config)
    info = data_layer.DataInfo.from_dict(run.read_json(run.data_info))
    configure(options.device, cfg.seed, options.verbose)
    set_mixed_precision("off")
    import tensorflow as tf

    # TFLite and onnxruntime compute in float32; a GPU's TF32 matmuls (Ampere and newer) would
    # differ from them by ~1e-3 and fail a 1e-4 tolerance that the exported file itself meets.
    tf.config.experimental.enable_tensor_float_32_execution(False)
    model = load_run_model(run, unsafe=options.unsafe)
    split, sample = _sample(cfg, info, options.samples)
    serving = ServingFunction.of(model, info)

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=path.parent) as tmp:
        try:
            written = _EXPORTERS[format](serving, Path(tmp))
        except ExportFailed as exc:
            raise ExportFailed(f"cannot export {run.model} to {format}: {exc}") from None
        except Exception as exc:  # converters raise their own types; the message is what helps
            raise ExportFailed(f"cannot export {run.model} to {format}: {first_line(exc, 300)}") from exc
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        shutil.move(written, path)
    feed = serving.feed(sample)
    expected = serving.keras_outputs(feed)
    try:
        got = _RUNNERS[format](path, feed)
    except Exception as exc:  # the runtime refuses the file: the export is not usable as it is
        raise ExportFailed(f"{path}: the {format} file does not run in its own runtime: {first_line(exc, 300)}; "
                           "the export is kept for inspection") from exc
    import numpy as np

    diff = float(np.max(np.abs(np.asarray(got, np.float64) - expected))) if expected.size else 0.0
    n = len(expected)
    if not diff <= options.tolerance:  # a NaN fails too
        raise ParityFailed(
            f"{path}: the {format} model's outputs differ from the Keras model's by up to {diff:.3g} on {n} "
            f"{split} examples, more than --tolerance {options.tolerance:g}; the export is kept for inspection"
        )
    return ExportOutcome(path, format, diff, options.tolerance, n, split, serving.names)


def _sample(cfg, info, samples: int):
    """The first ``samples`` examples of the run's test split (else validation, else training)."""
    from fmtrain import data as data_layer

    splits = data_layer.build(cfg.data, seed=cfg.seed, encoders=info.encoders)
    for name in ("test", "val", "train"):
        split = getattr(splits, name)
        if split is not None and len(split):
            return name, split.head(samples).x
    raise RunDirError("the run's data has no examples to check the export on")


@dataclass(frozen=True)
class ServingFunction:
    """The model behind named inputs: one TensorSpec per input, batch dimension left open."""

    model: object
    names: list[str]
    specs: list
    """``tf.TensorSpec`` per name, in order."""
    dict_inputs: bool

    @classmethod
    def of(cls, model, info) -> ServingFunction:
        import tensorflow as tf

        dict_inputs = isinstance(info.input_shape, dict)
        names = list(info.input_shape) if dict_inputs else ["inputs"]
        by_name = {t.name: t for t in model.inputs}
        tensors = [by_name.get(name, t) for name, t in zip(names, model.inputs, strict=True)]
        specs = [tf.TensorSpec((None, *t.shape[1:]), tf.as_dtype(t.dtype), name=name)
                 for name, t in zip(names, tensors, strict=True)]
        return cls(model, names, specs, dict_inputs)

    def call(self, *tensors):
        x = dict(zip(self.names, tensors, strict=True)) if self.dict_inputs else tensors[0]
        return {OUTPUT_NAME: self.model(x, training=False)}

    def tf_function(self):
        import tensorflow as tf

        return tf.function(self.call, input_signature=self.specs)

    def feed(self, x) -> dict[str, np.ndarray]:
        """The sample as the signature takes it: one array per input name, in the input's dtype."""
        import numpy as np

        arrays = [x[name] for name in self.names] if self.dict_inputs else [x]
        return {spec.name: np.asarray(a) if spec.dtype.name == "string" else np.asarray(a, spec.dtype.as_numpy_dtype)
                for spec, a in zip(self.specs, arrays, strict=True)}

    def keras_outputs(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        return np.asarray(self.call(*feed.values())[OUTPUT_NAME], np.float64)


# --------------------------------------------------------------------------- exporters


def _saved_model(serving: ServingFunction, tmp: Path) -> Path:
    import keras

    archive = keras.export.ExportArchive()
    archive.track(serving.model)
    archive.add_endpoint("serving_default", serving.tf_function(), input_signature=serving.specs)
    out = tmp / "saved_model"
    archive.write_out(str(out), verbose=False)
    return out


def _tflite(serving: ServingFunction, tmp: Path) -> Path:
    import tensorflow as tf

    # From a SavedModel: converting the function directly leaves Keras 3's variables as resources
    # the interpreter cannot read (READ_VARIABLE fails, or NaN outputs).
    saved = _saved_model(serving, tmp)
    out = tmp / "model.tflite"
    try:
        out.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert())
    except Exception as exc:  # ConverterError; its first line is MLIR's location of the first failure
        ops = sorted(set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", str(exc))))
        if not ops:
            raise
        raise ExportFailed(f"TFLite's built-in ops lack {', '.join(ops)}, which the model uses; "
                           "export --format saved_model instead") from None
    return out


def _onnx(serving: ServingFunction, tmp: Path) -> Path:
    import onnx
    import tf2onnx

    out = tmp / "model.onnx"
    proto, _ = tf2onnx.convert.from_function(serving.tf_function(), input_signature=serving.specs,
                                             output_path=str(out))
    # tf2onnx keeps an op it cannot convert as a node no ONNX runtime knows, and warns only.
    unknown = sorted({node.op_type for node in proto.graph.node if not onnx.defs.has(node.op_type, node.domain)})
    if unknown:
        raise ExportFailed(f"ONNX has no operator for {', '.join(unknown)}, which the model uses (tf2onnx "
                           "cannot convert them); export --format saved_model instead")
    return out


_EXPORTERS: dict[str, Callable[[ServingFunction, Path], Path]] = {
    "saved_model": _saved_model, "tflite": _tflite, "onnx": _onnx}


# --------------------------------------------------------------------------- runners: each format's own runtime


def _run_saved_model(path: Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    import tensorflow as tf

    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    return signature(**{name: tf.constant(a) for name, a in feed.items()})[OUTPUT_NAME].numpy()


def _run_tflite(path: Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter announces its move to ai_edge_litert
        interpreter = tf.lite.Interpreter(model_path=str(path))
    return interpreter.get_signature_runner("serving_default")(**feed)[OUTPUT_NAME]


def _run_onnx(path: Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], feed)[0]


_RUNNERS: dict[str, Callable[[Path, dict], np.ndarray]] = {
    "saved_model": _run_saved_model, "tflite": _run_tflite, "onnx": _run_onnx}
