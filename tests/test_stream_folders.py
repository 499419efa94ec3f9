"""``image_folder`` and ``text_folder`` with ``stream: true``: the files are decoded inside tf.data — the same
splits and the same pixels/texts as in memory, order from (seed, epoch) only, exact resume, bad files refused
before training naming the file, ``validate`` reading the stream keys as ``fit`` does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

pytestmark = pytest.mark.tf

tf = pytest.importorskip("tensorflow")

from stream_checks import check_epochs_in_one_pipeline, check_resume_ends_equal  # noqa: E402

from fmtrain.cli import app  # noqa: E402
from fmtrain.config import load_config  # noqa: E402
from fmtrain.config.schema import data_config  # noqa: E402
from fmtrain.data import build  # noqa: E402
from fmtrain.fit import FitOptions, fit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ("train: {epochs: 3, early_stopping: null, jit_compile: false, deterministic: true, "
         "checkpoint: {keep_last: 50, every_steps: 4}}")
COLORS = {"blue": 2, "green": 1, "red": 0}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """Three classes of 30 noisy 8×8 PNGs each (a bright channel per class), a few grey, RGBA or JPEG."""
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    for name, channel in COLORS.items():
        (root / name).mkdir()
        for i in range(30):
            pixels = rng.integers(0, 90, (8, 8, 3), dtype=np.uint8)
            pixels[..., channel] += 140
            image = Image.fromarray(pixels)
            if i % 10 == 3:
                image.convert("RGBA").save(root / name / f"{i:02d}.png")
            elif i % 10 == 7:
                image.save(root / name / f"{i:02d}.jpg", quality=95)
            else:
                image.save(root / name / f"{i:02d}.png")
    return root


def _data(folder: Path, **extra) -> dict:
    return {"source": "image_folder", "path": str(folder), "test_split": 0.2, "validation_split": 0.2,
            "stratify": True, "split": "random", **extra}


def _config(tmp: Path, data: dict, name: str = "folder", extra: str = TRAIN) -> Path:
    path = tmp / f"{name}.yaml"
    body = {"name": name, "seed": 3, "data": {"batch_size": 8, **data},
            "preprocess": [{"rescale": {"scale": 1 / 255}}],
            "model": {"type": "mlp", "hidden_units": [16]}, "optimizer": {"name": "adam", "learning_rate": 0.01},
            "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
    path.write_text(yaml.safe_dump(body) + extra + "\n")
    return path


# --------------------------------------------------------------------------- the same examples


def _mixed(root: Path) -> Path:
    """Every kind of file the in-memory loader reads: PNG in each mode, palette, JPEG, GIF, BMP, two sizes."""
    rng = np.random.default_rng(1)

    def noise(shape):
        return rng.integers(0, 256, shape, dtype=np.uint8)

    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        rgba = noise((7, 9, 4))
        rgba[..., 3] = rng.choice([0, 17, 128, 255], (7, 9))
        Image.fromarray(noise((7, 9, 3))).save(root / name / "rgb.png")
        Image.fromarray(noise((7, 9))).save(root / name / "grey.png")
        Image.fromarray(rgba, "RGBA").save(root / name / "rgba.png")
        Image.fromarray(noise((7, 9, 2)), "LA").save(root / name / "la.png")
        Image.fromarray(noise((7, 9, 3))).quantize(16).save(root / name / "palette.png")
        Image.fromarray(noise((7, 9, 3))).save(root / name / "rgb.jpg", quality=90)
        Image.fromarray(noise((7, 9))).save(root / name / "grey.jpeg", quality=90)
        Image.fromarray(noise((7, 9, 3))).save(root / name / "gif.gif")
        Image.fromarray(noise((7, 9, 3))).save(root / name / "bmp.bmp")
    Image.fromarray(noise((13, 5, 3))).save(root / "b" / "tall.png")  # another size: with image_size only
    return root


@pytest.mark.parametrize("image_size, color_mode", [(None, "rgb"), (None, "grayscale"), (None, "rgba"),
                                                    ([7, 9], "rgb"), ([6, 11], "grayscale"),
                                                    ([10, 8], "rgba")])
def test_the_streamed_splits_hold_the_in_memory_pixels_in_the_in_memory_order(tmp_path, image_size, color_mode):
    root = _mixed(tmp_path / "mixed")
    if image_size is None:
        (root / "b" / "tall.png").unlink()
    keys = {"source": "image_folder", "path": str(root), "image_size": image_size, "color_mode": color_mode,
            "test_split": 0.2, "validation_split": 0.25, "split": "random"}
    memory = build(data_config(**keys), seed=5)
    streamed = build(data_config(**keys, stream=True), seed=5)
    assert streamed.info.input_shape == memory.info.input_shape
    assert streamed.info.class_names == memory.info.class_names and streamed.info.encoders == memory.info.encoders
    for split in ("train", "val", "test"):
        x, y = getattr(streamed, split).arrays(None)
        assert x.dtype == np.uint8
        np.testing.assert_array_equal(x, getattr(memory, split).x, err_msg=split)
        np.testing.assert_array_equal(y, getattr(memory, split).y, err_msg=split)
    # what training and evaluation read: the batches' pixels are the same too
    x, y, weights = next(iter(streamed.test.eval_batches(64)))
    n = len(memory.test)
    np.testing.assert_array_equal(x.numpy()[:n], memory.test.x)
    assert weights.numpy().tolist() == [1.0] * n + [0.0] * (64 - n)


def test_a_text_folder_streams_the_texts_the_in_memory_loader_reads(tmp_path):
    root = tmp_path / "texts"
    (root / "neg").mkdir(parents=True)
    (root / "pos").mkdir()
    texts = {"neg/1.txt": "\ufeffbad\r\nfilm\r\n", "neg/2.txt": "  \u3000awful\rplot\u00a0\n\x1c",
             "neg/3.txt": "dull", "pos/1.txt": "great  film\n\n", "pos/2.txt": "\tloved it 😀 ", "pos/3.txt": "fine"}
    for name, text in texts.items():
        (root / name).write_bytes(text.encode())
    keys = {"source": "text_folder", "path": str(root), "test_split": 0.34}
    memory = build(data_config(**keys), seed=1)
    streamed = build(data_config(**keys, stream=True, shuffle_buffer=4), seed=1)
    assert streamed.info.input_shape == () and streamed.info.class_names == ["neg", "pos"]
    for split in ("train", "test"):
        x, y = getattr(streamed, split).arrays(None)
        assert [t.decode() for t in x] == list(getattr(memory, split).x)
        np.testing.assert_array_equal(y, getattr(memory, split).y)
    assert "bad\nfilm" in memory.train.x.tolist() + memory.test.x.tolist()  # the case is covered


def test_a_streamed_text_folder_trains_with_a_vocabulary_from_the_training_files_only(tmp_path):
    from fmtrain.fit import _prepare

    root = tmp_path / "texts"
    for label, words in (("neg", "bad awful dull"), ("pos", "good great fine")):
        (root / label).mkdir(parents=True)
        for i in range(15):
            (root / label / f"{i:02d}.txt").write_text(f"{words} only{label}{i:02d}\n")
    data = {"source": "text_folder", "path": str(root), "stream": True, "test_split": 0.2, "validation_split": 0.2}
    config = tmp_path / "text.yaml"
    config.write_text(yaml.safe_dump({
        "name": "text", "seed": 1, "data": {**data, "batch_size": 4},
        "preprocess": [{"text_vectorize": {"output_mode": "multi_hot", "max_tokens": 100}}],
        "model": {"type": "mlp", "hidden_units": [8]}, "optimizer": {"name": "adam", "learning_rate": 0.05},
        "train": {"epochs": 4, "early_stopping": None}}))
    cfg = load_config(config)
    prepared = _prepare(cfg, FitOptions(), None, "float32")
    vocabulary = set(next(layer for layer in prepared.model.layers if "vectoriz" in type(layer).__name__.lower())
                     .get_vocabulary())
    held = {word for split in (prepared.splits.val, prepared.splits.test)
            for text in split.arrays(None)[0] for word in text.decode().split() if word.startswith("only")}
    trained = {word for text in prepared.splits.train.arrays(None)[0] for word in text.decode().split()}
    assert len(held) == 11 and not held & vocabulary and trained <= vocabulary
    run = fit(cfg, FitOptions(run_dir=tmp_path / "run", quiet=True))
    assert run.metrics.data == {"train": 19, "val": 5, "test": 6}
    assert run.metrics.final["test"]["accuracy"] == 1.0


def test_encoded_batches_give_every_example_once_in_split_order(tmp_path):
    """What ``fmtrain data pack`` reads of a streamed table (``encoded_batches``), a folder stream offers too."""
    root = _small(tmp_path / "folder")
    data = {"source": "image_folder", "path": str(root), "test_split": 0.25, "split": "random"}
    streamed, memory = build(data_config(**data, stream=True), seed=3), build(data_config(**data), seed=3)
    for split in ("train", "test"):
        blocks = list(getattr(streamed, split).encoded_batches())
        np.testing.assert_array_equal(np.concatenate([x for x, _ in blocks]), getattr(memory, split).x)
        np.testing.assert_array_equal(np.concatenate([y for _, y in blocks]), getattr(memory, split).y)


# --------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def streamed_run(shapes, tmp_path_factory):
    """fit streamed: 57 training images, 8 steps of 8 per epoch, 3 epochs, a checkpoint every 4 steps."""
    folder = tmp_path_factory.mktemp("streamed")
    config = _config(folder, _data(shapes, stream=True, shuffle_buffer=16))
    return config, fit(load_config(config), FitOptions(run_dir=folder / "run", quiet=True))


def test_a_streamed_image_folder_trains_like_the_in_memory_one_and_eval_streams_exactly(streamed_run, shapes,
                                                                                          tmp_path):
    config, streamed = streamed_run
    memory = fit(load_config(_config(tmp_path, _data(shapes), "memory")),
                 FitOptions(run_dir=tmp_path / "m", quiet=True))
    # the same examples in each split (tested pixel for pixel above), in another training order
    assert streamed.metrics.data == memory.metrics.data == {"train": 57, "val": 15, "test": 18}
    assert memory.metrics.final["test"]["accuracy"] > 0.8
    assert abs(streamed.metrics.final["test"]["accuracy"] - memory.metrics.final["test"]["accuracy"]) <= 0.12
    run = streamed.run.path
    info = yaml.safe_load((run / "data_info.json").read_text())
    assert info["streamed"]["counts"] == {"train": 57, "val": 15, "test": 18}
    result = CliRunner().invoke(app, ["eval", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    evaluated = yaml.safe_load((run / "eval-test.json").read_text())
    assert evaluated["n_samples"] == 18
    assert evaluated["metrics"]["accuracy"] == pytest.approx(streamed.metrics.final["test"]["accuracy"], abs=1e-6)


def test_the_order_depends_only_on_seed_and_epoch_and_a_start_skips_exactly(shapes, tmp_path):
    stream = build(load_config(_config(tmp_path, _data(shapes, stream=True, shuffle_buffer=16))).data, seed=3).train
    steps = -(-len(stream) // 8)

    def order(seed, epoch, start=0):
        batches = stream.train_batches(8, seed=seed, epoch=epoch, shuffle=True, start=start, steps=steps)
        return np.concatenate([x.numpy() for x, _ in batches])

    first = order(1, 0)
    assert len(first) == steps * 8
    tf.random.set_seed(12345)  # the global seed plays no part
    np.testing.assert_array_equal(order(1, 0), first)
    assert not np.array_equal(order(1, 1), first) and not np.array_equal(order(2, 0), first)
    np.testing.assert_array_equal(order(1, 0, start=3), first[3 * 8:])
    # the file list itself is shuffled (each file is one example), not only blocks of shuffle_buffer files
    head = {image.tobytes() for image in stream.arrays(16)[0]}
    assert not {image.tobytes() for image in first[:16]} <= head


def test_one_pipeline_covers_many_epochs_each_file_with_its_class(shapes, tmp_path):
    stream = build(load_config(_config(tmp_path, _data(shapes, stream=True, shuffle_buffer=16))).data, seed=3).train
    check_epochs_in_one_pipeline(stream, batch_size=8, start=3)


def test_a_streamed_run_stopped_mid_epoch_and_resumed_ends_equal_to_the_uninterrupted_one(streamed_run, tmp_path):
    config, whole = streamed_run
    check_resume_ends_equal(load_config(config), whole, tmp_path / "run", stop_at=11, steps=24)


def test_a_resumed_run_refuses_a_folder_whose_files_changed_even_when_as_many(tmp_path):
    from fmtrain.errors import DataError
    from fmtrain.fit import check_same_shards
    from fmtrain.runs import RunDir

    root = _small(tmp_path / "folder")
    keys = {"source": "image_folder", "path": str(root), "test_split": 0.25, "stream": True}
    started = build(data_config(**keys), seed=1).info
    (tmp_path / "run").mkdir()
    run = RunDir(tmp_path / "run")
    run.write_json(run.data_info, started.to_dict())
    check_same_shards(run, build(data_config(**keys), seed=1).info)  # the same files: nothing to say
    (root / "a" / "2.png").rename(root / "a" / "9.png")  # as many files, one of them another
    renamed = build(data_config(**keys), seed=1).info
    assert renamed.streamed["counts"] == started.streamed["counts"]
    with pytest.raises(DataError, match="a resumed run must read the same shards"):
        check_same_shards(run, renamed)


# --------------------------------------------------------------------------- bad files and keys


def _fit_error(tmp_path, data: dict) -> str:
    result = CliRunner().invoke(app, ["fit", str(_config(tmp_path, data)), "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()
    return " ".join(result.output.split())


def _small(root: Path) -> Path:
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (5, 4), (40 * i, 0, 0)).save(root / name / f"{i}.png")
    return root


def test_a_corrupt_image_a_non_image_and_another_size_exit_2_naming_the_file(tmp_path):
    root = _small(tmp_path / "bad")
    good = (root / "b" / "3.png").read_bytes()
    broken = root / "b" / "3.png"
    broken.write_bytes(good[:len(good) // 2])  # truncated: its header still says PNG
    assert f"error: {broken}: not a readable image" in _fit_error(tmp_path, _data(root, stream=True))
    broken.write_bytes(good)
    text = root / "a" / "5.png"
    text.write_text("not an image at all")
    assert f"error: {text}: not a readable image" in _fit_error(tmp_path, _data(root, stream=True,
                                                                                image_size=[4, 4]))
    Image.new("RGB", (6, 4)).save(text)
    assert (f"error: {text}: image is 6×4 pixels but {root / 'a' / '0.png'} is 5×4; set data.image_size"
            in _fit_error(tmp_path, _data(root, stream=True)))


def test_a_text_file_that_is_not_utf8_exits_2_naming_it(tmp_path):
    root = tmp_path / "texts"
    for name in ("neg", "pos"):
        (root / name).mkdir(parents=True)
        for i in range(4):
            (root / name / f"{i}.txt").write_text(f"{name} {i}")
    latin = root / "pos" / "2.txt"
    latin.write_bytes("café".encode("latin-1"))
    result = CliRunner().invoke(app, ["fit", str(_config(tmp_path, {"source": "text_folder", "path": str(root),
                                                                     "stream": True})),
                                      "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"error: {latin}: not UTF-8 text" in " ".join(result.output.split())


def test_validate_accepts_stream_true_and_refuses_the_stream_keys_without_it_with_fits_line(shapes, tmp_path):
    streamed = _config(tmp_path, _data(shapes, stream=True, shuffle_buffer=64, adapt_samples="all"))
    assert CliRunner().invoke(app, ["validate", str(streamed)]).exit_code == 0
    text = _config(tmp_path, {"source": "text_folder", "path": str(shapes), "stream": True, "adapt_samples": 5},
                   "text")
    assert CliRunner().invoke(app, ["validate", str(text)]).exit_code == 0
    for source, key in (("image_folder", "shuffle_buffer"), ("text_folder", "adapt_samples")):
        config = _config(tmp_path, {"source": source, "path": str(shapes), key: 10})
        line = next(i for i, text in enumerate(config.read_text().splitlines(), start=1) if f"{key}:" in text)
        refused = _fit_error(tmp_path, {"source": source, "path": str(shapes), key: 10})
        assert refused.startswith(f"error: {config}:{line}:")
        assert f"data.{key}: {key} is read with stream: true only; add stream: true or remove it" in refused
        validated = CliRunner().invoke(app, ["validate", str(config)])
        assert validated.exit_code == 2 and " ".join(validated.output.split()) == refused
