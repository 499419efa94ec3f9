"""Arguments of optimizers, losses and metrics are typed by `fmtrain validate`, without Keras.

Keras takes ``weight_decay: "abc"`` in its constructor and fails inside the compiled step, after the
run directory exists; the schema checks each argument against the signature recorded in
``keras_names`` (or the params fmtrain's own losses and metrics declare) and names the key's line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmtrain import components
from fmtrain.cli import app
from fmtrain.config import keras_names
from fmtrain.config.base import KIND_WORDS

ROOT = Path(__file__).resolve().parents[1]
BASE = "name: t\ndata: {source: digits}\nmodel: {type: mlp, hidden_units: [8]}\n"

# (what the config adds, the key whose line the error names, what the one line must say)
BAD = {
    "string_weight_decay": (
        "optimizer:\n  name: adam\n  weight_decay: abc\n", "weight_decay",
        "optimizer.weight_decay: adam's weight_decay is a number, found 'abc'"),
    "list_beta_1": (
        "optimizer:\n  name: adam\n  beta_1: [1]\n", "beta_1",
        "optimizer.beta_1: adam's beta_1 is a number, found [1]"),
    "bool_momentum": (
        "optimizer:\n  name: sgd\n  momentum: true\n", "momentum",
        "optimizer.momentum: sgd's momentum is a number, found True"),
    "nan_weight_decay": (
        "optimizer:\n  name: adamw\n  weight_decay: .nan\n", "weight_decay",
        "optimizer.weight_decay: adamw's weight_decay is a number, found nan"),
    "number_for_bool": (
        "optimizer:\n  name: rmsprop\n  centered: 1\n", "centered",
        "optimizer.centered: rmsprop's centered is true or false, found 1"),
    "misspelt_argument": (
        "optimizer:\n  name: adam\n  betaa_1: 0.9\n", "betaa_1",
        "optimizer.betaa_1: adam takes no argument 'betaa_1' (did you mean 'beta_1'?)"),
    "unknown_argument": (
        "optimizer:\n  name: sgd\n  turbo: true\n", "turbo",
        "optimizer.turbo: sgd takes no argument 'turbo'; it takes 'clipvalue', 'ema_momentum'"),
    "loss_argument_type": (
        "loss:\n  huber:\n    delta: x\n", "delta",
        "loss.huber.delta: huber's delta is a number, found 'x'"),
    "loss_without_arguments": (
        "loss:\n  mse:\n    from_logits: true\n", "from_logits",
        "loss.mse.from_logits: mse takes no argument 'from_logits'; it takes none"),
    "own_loss_argument": (
        "loss:\n  in_batch_softmax:\n    symmetric: 'yes'\n", "symmetric",
        "loss.in_batch_softmax.symmetric: Input should be a valid boolean, found 'yes'"),
    "keras_metric_argument": (
        "metrics:\n  - f1_score:\n      average: 3\n", "average",
        "metrics.0.f1_score.average: f1_score's average is a string, found 3"),
    "keras_metric_required_argument": (
        "metrics:\n  - io_u\n", "io_u",
        "metrics.0: io_u needs num_classes (a whole number) and target_class_ids (a list)"),
    "own_metric_whole_number": (
        "metrics:\n  - top_k:\n      k: 5.5\n", "k",
        "metrics.0.top_k.k: Input should be a valid integer, found 5.5"),
    "own_metric_choice": (
        "metrics:\n  - f1:\n      average: macr\n", "average",
        "metrics.0.f1.average: Input should be 'binary', 'macro', 'micro' or 'weighted' (did you mean 'macro'?)"),
    "own_metric_misspelt_argument": (
        "metrics:\n  - f1:\n      averag: macro\n", "averag",
        "metrics.0.f1.averag: f1 takes no argument 'averag' (did you mean 'average'?)"),
}

GOOD = {
    "adamw": "optimizer: {name: adamw, weight_decay: 0.0001, beta_1: 0.8, amsgrad: true}\n",
    "sgd": "optimizer: {name: sgd, momentum: 0.9, nesterov: true, weight_decay: null}\n",
    "int_for_float": "optimizer: {name: rmsprop, momentum: 0, clipvalue: 1}\n",
    "muon_list": "optimizer: {name: muon, exclude_layers: [embedding], ns_steps: 3}\n",
    "huber": "loss: {huber: {delta: 2}}\n",
    "auto_loss": "loss: {auto: {from_logits: true}}\n",
    "keras_metrics": "metrics: [{io_u: {num_classes: 10, target_class_ids: [0, 1]}}, {f1_score: {average: macro}}]\n",
    "own_metrics": "metrics: [{top_k: {k: 3}}, {f1: {average: weighted}}, {auc: {curve: PR}}, rmse]\n",
}


def _validate(tmp_path: Path, text: str, *extra: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path, CliRunner().invoke(app, ["validate", str(path), *extra])


@pytest.mark.parametrize("addition, key, expected", BAD.values(), ids=BAD.keys())
def test_a_bad_argument_is_one_line_at_its_key(tmp_path, addition, key, expected):
    text = BASE + addition
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.strip().lstrip("- ").startswith(key))

    path, result = _validate(tmp_path, text)

    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {path}:{line}:"), lines[0]
    assert expected in lines[0]


def test_a_bad_argument_from_set_names_the_override(tmp_path):
    path, result = _validate(tmp_path, BASE, "--set", "optimizer.weight_decay=abc")

    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: --set optimizer.weight_decay=abc: optimizer.weight_decay: "
                                     "adam's weight_decay is a number, found 'abc'")


@pytest.mark.parametrize("addition", GOOD.values(), ids=GOOD.keys())
def test_typed_arguments_validate(tmp_path, addition):
    _, result = _validate(tmp_path, BASE + addition)

    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_every_shipped_config_still_validates(config):
    result = CliRunner().invoke(app, ["validate", str(ROOT / "configs" / config)])

    assert result.exit_code == 0, result.output


def test_every_name_validate_accepts_has_its_arguments_recorded():
    assert set(keras_names.OPTIMIZER_ARGS) == set(keras_names.OPTIMIZERS)
    assert set(keras_names.LOSS_ARGS) == set(keras_names.LOSSES)
    assert set(keras_names.METRIC_ARGS) == set(keras_names.METRICS)
    tables = (keras_names.OPTIMIZER_ARGS, keras_names.LOSS_ARGS, keras_names.METRIC_ARGS)
    kinds = {kind for table in tables for arguments in table.values() for kind in arguments.values()}
    assert {part for kind in kinds for part in kind.split("|")} <= set(KIND_WORDS)
    for name in components.METRICS.names():  # fmtrain's own declare what they take
        assert components.metric_params(name).model_fields is not None
    for name in components.LOSSES.names():
        assert components.loss_params(name).model_fields is not None


@pytest.mark.tf
@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["optimizer.name=adamw", "optimizer.weight_decay=0.0001"], {"weight_decay": 0.0001}),
        (["optimizer.name=sgd", "optimizer.momentum=0.9", "optimizer.nesterov=true"],
         {"momentum": 0.9, "nesterov": True}),
    ],
    ids=["adamw", "sgd"],
)
def test_typed_optimizer_arguments_reach_keras_and_train(tmp_path, monkeypatch, overrides, expected):
    pytest.importorskip("tensorflow")
    import fmtrain.fit

    built = []

    def build_optimizer(cfg, total_steps):
        built.append(original(cfg, total_steps))
        return built[-1]

    original = fmtrain.fit.build_optimizer  # where fit looks it up
    monkeypatch.setattr(fmtrain.fit, "build_optimizer", build_optimizer)
    sets = [arg for override in ["train.epochs=1", *overrides] for arg in ("--set", override)]

    result = CliRunner().invoke(app, ["fit", str(ROOT / "configs/digits_mlp.yaml"), *sets,
                                      "--run-dir", str(tmp_path / "run"), "--quiet"])

    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "model.keras").is_file()
    assert {key: getattr(built[0], key) for key in expected} == pytest.approx(expected)
