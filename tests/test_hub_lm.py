"""A tiny GPT pretrained from scratch on a real text file (data.source: text_corpus, model.task: causal_lm),
evaluated, and continued by ``fmtrain generate``.

The text is Debian's copy of the GPL version 3 (/usr/share/common-licenses/GPL-3, ~35 kB), byte-level.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.tf

pytest.importorskip("keras_hub")

from typer.testing import CliRunner  # noqa: E402

from fmtrain.cli import app  # noqa: E402

GPL = Path("/usr/share/common-licenses/GPL-3")
if not GPL.is_file():
    pytest.skip(f"{GPL} is not on this machine", allow_module_level=True)


def _config(tmp_path: Path, name: str, *, epochs: int, **data) -> Path:
    config = {
        "name": name, "seed": 1,
        "data": {"source": "text_corpus", "path": str(GPL), "sequence_length": 64, "test_split": 0.1,
                 "validation_split": 0.1, "batch_size": 16, **data},
        "model": {"type": "hub", "task": "causal_lm", "backbone": "GPT2Backbone",
                  "backbone_args": {"num_layers": 1, "num_heads": 2, "hidden_dim": 64, "intermediate_dim": 128,
                                    "max_sequence_length": 64, "dropout": 0.0}},
        "optimizer": {"name": "adam", "learning_rate": 0.005},
        "train": {"epochs": epochs, "jit_compile": False},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _invoke(*args: str):
    result = CliRunner().invoke(app, [*args])
    assert result.exit_code == 0, result.output
    return result


def _unigram_perplexity(config: Path) -> float:
    """Perplexity on the validation tokens of the token frequencies of the training tokens (add-one)."""
    from fmtrain import data
    from fmtrain.config import load_config

    cfg = load_config(config)
    splits = data.build(cfg.data, seed=cfg.seed)
    counts = np.bincount(splits.train.y.reshape(-1), minlength=splits.info.num_classes) + 1.0
    log_p = np.log(counts / counts.sum())
    return math.exp(-float(np.mean(log_p[splits.val.y.reshape(-1)])))


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpt")
    config = _config(tmp, "gpt", epochs=14)
    _invoke("fit", str(config), "--run-dir", str(tmp / "run"), "--quiet")
    return config, tmp / "run"


def test_gpt_from_scratch_beats_the_unigram_baseline(gpt_run):
    config, run = gpt_run
    metrics = json.loads((run / "metrics.json").read_text())["final"]
    val = metrics["val"]
    assert set(val) == {"loss", "next_token_accuracy", "perplexity"}
    assert val["perplexity"] == pytest.approx(math.exp(val["loss"]), rel=1e-4)  # counted per token, not per window
    assert val["perplexity"] < 0.8 * _unigram_perplexity(config)

    _invoke("eval", str(run), "--quiet")  # the saved model and the windows rebuilt from the run's config
    evaluated = json.loads((run / "eval-test.json").read_text())
    assert evaluated["metrics"]["loss"] == pytest.approx(metrics["test"]["loss"], abs=1e-5)
    assert evaluated["classification"] is None  # no per-class table of 256 byte classes


def test_generate_continues_the_prompt_deterministically_by_seed(gpt_run):
    _, run = gpt_run

    def generate(*args: str) -> str:
        return _invoke("generate", str(run), "--prompt", "This License", "--max-length", "40", "--quiet", *args).stdout

    sampled = generate("--sampler", "top_k", "--seed", "7")
    assert sampled.startswith("this license")  # the prompt, lower-cased as the tokenizer was, then new bytes
    assert len(sampled.encode()) > len("this license\n")
    assert generate("--sampler", "top_k", "--seed", "7") == sampled
    assert generate("--sampler", "top_k", "--seed", "8") != sampled


def test_wordpiece_vocabulary_is_learned_and_saved_in_the_run(tmp_path):
    config = _config(tmp_path, "wordpiece", epochs=1, tokenizer="wordpiece", vocab_size=300, sequence_length=32)
    run = tmp_path / "run"
    _invoke("fit", str(config), "--run-dir", str(run), "--quiet")
    vocabulary = json.loads((run / "data_info.json").read_text())["class_names"]
    assert vocabulary[:2] == ["[PAD]", "[UNK]"] and 100 < len(vocabulary) <= 300 and "license" in vocabulary
    text = _invoke("generate", str(run), "--prompt", "the license", "--max-length", "8", "--quiet").stdout
    assert text.startswith("the license")


def test_a_preset_lm_fine_tunes_with_lora_and_its_own_tokenizer(tmp_path):
    from hub_presets import gpt2_lm_preset

    preset = str(gpt2_lm_preset(tmp_path / "gpt2_tiny", sequence_length=32))
    config = {
        "name": "gpt2_lora", "seed": 1,
        "data": {"source": "text_corpus", "path": str(GPL), "sequence_length": 32, "tokenizer": "preset",
                 "preset": preset, "test_split": 0.1, "batch_size": 32},
        "model": {"type": "hub", "task": "causal_lm", "preset": preset, "lora_rank": 2},
        "optimizer": {"name": "adam", "learning_rate": 0.01}, "train": {"epochs": 1, "jit_compile": False},
    }
    path = tmp_path / "gpt2.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    _invoke("fit", str(path), "--run-dir", str(run), "--quiet")
    assert len(json.loads((run / "data_info.json").read_text())["class_names"]) == 258  # the preset's vocabulary
    text = _invoke("generate", str(run), "--prompt", "This License", "--max-length", "16", "--quiet").stdout
    assert text.startswith("This License")  # the preset's tokenizer keeps the case

    # The data's tokenizer must be the backbone's: 256 byte ids cannot feed a 258-token embedding.
    config["data"].update(tokenizer="byte", preset=None)
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["fit", str(path), "--run-dir", str(tmp_path / "mismatch"), "--quiet"])
    assert result.exit_code == 2 and "the backbone has 258 token ids but the data's tokenizer has 256" in result.output
