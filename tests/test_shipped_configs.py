"""Every config in configs/ runs the whole chain with --smoke, offline, in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.tf

pytest.importorskip("tensorflow")

from fmtrain.cli import app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def offline_files(tmp_path_factory):
    """Keras-layout stand-ins for the data sets that would be downloaded, and a run to transfer from."""
    tmp = tmp_path_factory.mktemp("offline")
    rng = np.random.default_rng(0)
    for name, shape in (("mnist", (28, 28)), ("cifar10", (32, 32, 3))):
        np.savez(tmp / f"{name}.npz", x_train=rng.integers(0, 256, (300, *shape), dtype=np.uint8),
                 y_train=rng.integers(0, 10, 300).astype(np.uint8),
                 x_test=rng.integers(0, 256, (100, *shape), dtype=np.uint8),
                 y_test=rng.integers(0, 10, 100).astype(np.uint8))
    source_run = tmp / "digits_run"
    assert invoke("fit", ROOT / "configs/digits_mlp.yaml", "--smoke", "--run-dir", source_run, "--quiet").exit_code == 0
    return {"mnist": tmp / "mnist.npz", "cifar10": tmp / "cifar10.npz", "run": source_run}


def test_every_config_is_covered():
    assert len(CONFIGS) >= 11


def _offline_extras(text: str, files: dict) -> list[str]:
    """What a config needs to run without a network: the README's "offline" column, as arguments."""
    extra = []
    for source in ("mnist", "cifar10"):
        if f"source: {source}" in text:
            extra += ["--set", f"data.path={files[source]}"]
    if "init_from" in text:
        extra += ["--set", f"model.init_from={files['run']}"]
    for preset, key in (("bert_tiny_en_uncased", "bert"), ("vit_base_patch16_224_imagenet", "vit")):
        if f"preset: {preset}" in text:  # a KerasHub preset by name: downloaded when online
            extra += ["--set", f"model.preset={files[key]}"]
    return extra


def test_the_readme_says_which_configs_need_something_offline():
    """The README's shipped-config table names, for each config, what the smoke test below passes it."""
    readme = (ROOT / "README.md").read_text()
    placeholders = {"mnist": "mnist.npz", "cifar10": "cifar10.npz", "run": "RUN_DIR", "bert": "DIR", "vit": "DIR"}
    for name in CONFIGS:
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}` |"))
        offline = row.rstrip(" |").rsplit("|", 1)[-1]
        extras = _offline_extras((ROOT / "configs" / name).read_text(), placeholders)
        if not extras:
            assert offline.strip() == "as is", row
        for flag in extras[1::2]:
            assert flag in offline, f"{name}: the README's offline column should say {flag}"


@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_config_smoke_runs(name, offline_files, hub_config_presets, tmp_path):
    text = (ROOT / "configs" / name).read_text()
    assert text.startswith("#"), "each config opens with a comment: what it trains, on what, what to expect"
    extra = _offline_extras(text, {**offline_files, **hub_config_presets})
    run_dir = tmp_path / "run"
    result = invoke("fit", ROOT / "configs" / name, "--smoke", "--run-dir", run_dir, "--quiet", *extra)
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    split = next(s for s in ("test", "val", "train") if metrics["final"].get(s))
    assert all(np.isfinite(v) for v in metrics["final"][split].values())
    assert (run_dir / f"eval-{split}.json").exists() and (run_dir / "report.html").exists()
