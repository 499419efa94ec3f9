"""Tiny KerasHub presets for the hub tests, built offline: random weights, one or two layers, small
widths, a vocabulary computed from the test text, written with ``save_to_preset``.

Each builder imports Keras and KerasHub inside, so importing this module stays cheap; the
session-scoped fixtures that call them live in tests/conftest.py.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
POSITIVE = ["good", "great", "lovely", "superb", "fine"]
NEGATIVE = ["bad", "awful", "poor", "dull", "weak"]
FILLER = ["the", "film", "plot", "was", "actor", "story", "really", "quite", "a", "and", "music", "ending",
          "it", "very", "scene", "cast"]


def sentiment_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` generated (text, label) rows: a text is pos when it holds a positive word, neg when a negative one,
    among 4–9 filler words (classes balanced, order random)."""
    rng = random.Random(seed)
    rows = []
    for index in range(n):
        label = "pos" if index % 2 else "neg"
        words = [rng.choice(FILLER) for _ in range(rng.randint(4, 9))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label == "pos" else NEGATIVE))
        rows.append((" ".join(words), label))
    rng.shuffle(rows)
    return rows


def write_text_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def vocabulary(texts: list[str]) -> list[str]:
    """WordPiece vocabulary of every word in ``texts`` (whole words only), after BERT's special tokens."""
    words = sorted({word for text in texts for word in text.lower().split()})
    return SPECIAL_TOKENS + words


def bert_classifier_preset(path: Path, texts: list[str], *, sequence_length: int = 16, seed: int = 0) -> Path:
    """A one-layer, 32-wide BERT text classifier preset whose vocabulary holds every word of ``texts``."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary(texts), lowercase=True)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=1, num_heads=2, hidden_dim=32, intermediate_dim=64,
        max_sequence_length=32, dropout=0.0,
    )
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=sequence_length)
    task = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=preprocessor)
    task.save_to_preset(str(path))
    return path


def resnet_classifier_preset(path: Path, *, image_size: int = 8, channels: int = 1, seed: int = 0) -> Path:
    """A tiny ResNet image classifier preset (one basic block) for ``image_size`` square images."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64], stackwise_num_blocks=[1],
        stackwise_num_strides=[1], block_type="basic_block", use_pre_activation=False,
        image_shape=(image_size, image_size, channels),
    )
    converter = keras_hub.layers.ResNetImageConverter(image_size=(image_size, image_size), scale=1.0 / 16.0)
    preprocessor = keras_hub.models.ResNetImageClassifierPreprocessor(image_converter=converter)
    task = keras_hub.models.ResNetImageClassifier(backbone, num_classes=10, preprocessor=preprocessor)
    task.save_to_preset(str(path))
    return path


def vit_classifier_preset(path: Path, *, image_size: int = 8, seed: int = 0) -> Path:
    """A one-layer, 16-wide ViT image classifier preset for ``image_size`` square RGB images (4×4 patches),
    whose image converter scales 0..255 pixels to 0..1."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(image_size, image_size, 3), patch_size=4, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32,
    )
    converter = keras_hub.layers.ViTImageConverter(image_size=(image_size, image_size), scale=1.0 / 255.0)
    preprocessor = keras_hub.models.ViTImageClassifierPreprocessor(image_converter=converter)
    task = keras_hub.models.ViTImageClassifier(backbone, num_classes=10, preprocessor=preprocessor)
    task.save_to_preset(str(path))
    return path


def gpt2_lm_preset(path: Path, *, sequence_length: int = 32, seed: int = 0) -> Path:
    """A one-layer, 32-wide GPT-2 causal LM preset whose byte-pair tokenizer has the 256 byte symbols, one merge
    (" t"), and GPT-2's end-of-text token."""
    import keras
    import keras_hub
    from keras_hub.src.tokenizers.byte_pair_tokenizer import bytes_to_unicode

    keras.utils.set_random_seed(seed)
    _, symbols = bytes_to_unicode()
    vocabulary = {symbol: index for index, symbol in enumerate(symbols)}
    space = "\u0120"  # GPT-2's symbol for a space byte
    vocabulary[space + "t"] = len(vocabulary)
    vocabulary["<|endoftext|>"] = len(vocabulary)
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocabulary, merges=[f"{space} t"])
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=len(vocabulary), num_layers=1, num_heads=2, hidden_dim=32, intermediate_dim=64,
        max_sequence_length=sequence_length, dropout=0.0,
    )
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer, sequence_length=sequence_length)
    keras_hub.models.GPT2CausalLM(backbone, preprocessor=preprocessor).save_to_preset(str(path))
    return path
