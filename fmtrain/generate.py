"""``fmtrain generate``: continue a prompt with a run's causal language model (KerasHub samplers).

The prompt is tokenized with the run's own tokenizer (rebuilt from its config and the vocabulary
saved in ``data_info.json``), placed at the start of a window as wide as ``--max-length`` and
continued token by token by KerasHub's greedy, top-k or top-p sampler; the model reads the whole
window each step (its attention is causal, so the empty tail does not matter). ``--seed`` fixes
the random samplers, so the same seed gives the same text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fmtrain.engine.device import configure
from fmtrain.errors import ConfigError

Sampler = Literal["greedy", "top_k", "top_p"]
SAMPLERS: tuple[str, ...] = ("greedy", "top_k", "top_p")


@dataclass(frozen=True)
class GenerateOptions:
    prompt: str
    max_length: int | None = None
    """Tokens in the result, the prompt included (default and most: the model's window)."""
    sampler: Sampler = "greedy"
    seed: int = 0
    top_k: int = 5
    """top_k: sample among the k most probable tokens."""
    top_p: float = 0.9
    """top_p: sample among the most probable tokens whose probabilities sum to p."""
    device: str = "auto"
    unsafe: bool = False
    verbose: bool = False


@dataclass(frozen=True)
class Generated:
    text: str
    """The prompt and its continuation, detokenized."""
    prompt_tokens: int
    new_tokens: int
    run: Path


def generate(run_dir: Path, options: GenerateOptions) -> Generated:
    """Continue ``options.prompt`` with the causal LM of ``run_dir``.

    Raises:
        RunDirError: no finished run there, or its model cannot be loaded.
        ConfigError: the run is not a hub causal_lm, the prompt is empty or fills the window.
    """
    import numpy as np

    from fmtrain.config import load_config
    from fmtrain.data import DataInfo
    from fmtrain.data.text_corpus import make_tokenizer
    from fmtrain.evaluate import load_run_model
    from fmtrain.runs import find_run

    run, _ = find_run(run_dir)
    cfg = load_config(run.config)
    if getattr(cfg.model, "task", None) != "causal_lm" or cfg.data.source != "text_corpus":
        raise ConfigError(f"{run.path}: generate needs a run of model.type: hub with task: causal_lm on "
                          f"data.source: text_corpus; this one is a {cfg.model.type} model")
    configure(options.device, options.seed, options.verbose)
    info = DataInfo.from_dict(run.read_json(run.data_info))
    tokenizer = make_tokenizer(cfg.data, info.encoders.label_classes)
    model = load_run_model(run, unsafe=options.unsafe)
    window = int(cfg.data.sequence_length)
    ids = [int(i) for i in np.asarray(tokenizer(options.prompt)).reshape(-1)]
    if not ids:
        raise ConfigError("--prompt: no tokens; give some text to continue")
    length = min(options.max_length or window, window)
    if options.max_length is not None and options.max_length > window:
        raise ConfigError(f"--max-length {options.max_length}: the model reads windows of {window} tokens "
                          f"(data.sequence_length); use at most {window}")
    if len(ids) >= length:
        raise ConfigError(f"--prompt: {len(ids)} tokens leave no room in --max-length {length}; shorten the prompt "
                          "or raise --max-length")
    tokens = _sample(model, ids, length, window, options, from_logits=cfg.loss.from_logits)
    text = tokenizer.detokenize(np.asarray(tokens, dtype=np.int32))
    text = text.numpy() if hasattr(text, "numpy") else text
    text = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)
    return Generated(text=text, prompt_tokens=len(ids), new_tokens=length - len(ids), run=run.path)


def make_sampler(name: str, seed: int, top_k: int = 5, top_p: float = 0.9):
    """KerasHub's sampler ``name`` (greedy, top_k, top_p), seeded."""
    import keras_hub

    if name == "greedy":
        return keras_hub.samplers.GreedySampler()
    if name == "top_k":
        return keras_hub.samplers.TopKSampler(k=top_k, seed=seed)
    if name == "top_p":
        return keras_hub.samplers.TopPSampler(p=top_p, seed=seed)
    raise ConfigError(f"--sampler: expected one of {', '.join(SAMPLERS)}, found '{name}'")


def _sample(model, ids: list[int], length: int, window: int, options: GenerateOptions, *, from_logits: bool):
    import numpy as np
    from keras import ops

    prompt = np.zeros((1, length), dtype=np.int32)
    prompt[0, : len(ids)] = ids
    mask = np.zeros((1, length), dtype=bool)
    mask[0, : len(ids)] = True

    def next_token_logits(tokens, cache, index):
        padded = ops.pad(tokens, [[0, 0], [0, window - length]])
        scores = model({"token_ids": padded, "padding_mask": ops.ones_like(padded)}, training=False)
        scores = ops.take(scores, index - 1, axis=1)  # what position index - 1 predicts comes next
        logits = scores if from_logits else ops.log(ops.maximum(ops.cast(scores, "float32"), 1e-12))
        return logits, None, cache

    sampler = make_sampler(options.sampler, options.seed, options.top_k, options.top_p)
    out = sampler(next_token_logits, ops.convert_to_tensor(prompt), index=len(ids), mask=ops.convert_to_tensor(mask))
    return np.asarray(out)[0].tolist()
