"""Generated data sets with a known rule, so a model provably learns them offline.

Each source is seeded by its own ``options.seed`` (not the run's seed), so one data set serves
runs with different training seeds, and sized by ``data.options`` (defaults: a CPU minute or less).

- ``synthetic_sentiment``: sentences of filler words with one or two sentiment keywords; the
  label is the keywords' polarity (``label_noise`` flips a fraction).
- ``synthetic_ratings``: a low-rank user × item rating matrix plus Gaussian noise, sampled as
  interactions (user, item, rating, time), like the ``interactions`` source.
- ``synthetic_multimodal``: records of a small image, a sentence and numbers; the class is the
  number of "on" signals (a bright square somewhere in the image, the word "red" in the text,
  numeric[0] + numeric[1] > 0), so no single input predicts it better than one time in two. The
  image signal survives flips, rotations and zooms, so augmentation does not change labels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    pass
from pydantic import Field, model_validator

from fmtrain.config.base import StrictModel
from fmtrain.data.encoding import EncoderState
from fmtrain.data.interactions import interactions_loaded
from fmtrain.data.sources import SOURCES, Loaded, SourceConfig, fixed_task_reason

POSITIVE = ("good", "great", "excellent", "wonderful", "love", "enjoyed", "superb", "delightful")
NEGATIVE = ("bad", "awful", "terrible", "boring", "hate", "poor", "dreadful", "disappointing")
SENTIMENT_CLASSES = ["negative", "positive"]
COLOR_ON, COLOR_OFF = "red", "blue"
MULTIMODAL_CLASSES = ["0", "1", "2", "3"]
_SYLLABLES = ("ba", "de", "ki", "lo", "mu", "na", "pe", "ri", "so", "tu",
              "va", "xe", "yo", "zu", "fa", "gi", "ho", "je", "ko", "wa")


def filler_words(count: int) -> list[str]:
    """``count`` distinct pronounceable pseudo-words ("baba", "deba", …), none of them a keyword."""
    words = []
    for i in range(count):
        digits, k = [], i
        while True:
            digits.append(k % len(_SYLLABLES))
            k //= len(_SYLLABLES)
            if not k:
                break
        digits += [0] * (2 - len(digits))
        words.append("".join(_SYLLABLES[d] for d in digits))
    return words


class SentimentOptions(StrictModel):
    n: int = Field(1000, ge=20)
    """Number of sentences."""
    vocab_size: int = Field(200, ge=10, le=8000)
    """Distinct filler words, besides the 16 sentiment keywords."""
    min_words: int = Field(4, ge=1)
    """Fewest filler words in a sentence."""
    max_words: int = Field(12, ge=1)
    """Most filler words in a sentence."""
    label_noise: float = Field(0.0, ge=0.0, lt=0.5)
    """Fraction of labels flipped at random (0: the keyword rule is exact)."""
    seed: int = 0
    """Seeds the generator; the same options give the same sentences."""

    @model_validator(mode="after")
    def _lengths_ordered(self) -> SentimentOptions:
        if self.min_words > self.max_words:
            raise ValueError(f"min_words ({self.min_words}) is above max_words ({self.max_words})")
        return self


class SentimentSource(SourceConfig):
    """Generated sentences labelled by their sentiment keywords."""

    source: Literal["synthetic_sentiment"] = "synthetic_sentiment"
    """synthetic_sentiment: generated positive and negative sentences."""
    options: SentimentOptions = Field(default_factory=SentimentOptions)
    """How many sentences, how varied, how noisy; the resolved config lists every option."""

    @classmethod
    def fixed_task(cls, source: str) -> str | None:
        return "classification"


@SOURCES.register("synthetic_sentiment", params=SentimentSource)
def load_synthetic_sentiment(cfg: SentimentSource, saved: EncoderState) -> Loaded:
    """Generated sentences, positive or negative by their sentiment keywords (data.options: n, vocab_size, …)."""
    import numpy as np

    options = cfg.options
    rng = np.random.default_rng(options.seed)
    fillers = np.array(filler_words(options.vocab_size))
    polarity = rng.integers(0, 2, options.n)
    lengths = rng.integers(options.min_words, options.max_words + 1, options.n)
    texts = np.empty(options.n, dtype=object)
    for i in range(options.n):
        words = list(rng.choice(fillers, lengths[i]))
        keywords = POSITIVE if polarity[i] else NEGATIVE
        for _ in range(rng.integers(1, 3)):
            words.insert(int(rng.integers(0, len(words) + 1)), keywords[rng.integers(len(keywords))])
        texts[i] = " ".join(words)
    flipped = rng.random(options.n) < options.label_noise
    labels = np.where(flipped, 1 - polarity, polarity).astype(np.int32)
    return Loaded(texts, labels, f"synthetic_sentiment (generated, seed {options.seed})", "classification",
                  fixed_task_reason(cfg), class_names=list(SENTIMENT_CLASSES),
                  label_state=EncoderState(task="classification", num_classes=2,
                                           label_classes=list(SENTIMENT_CLASSES)))


class RatingsOptions(StrictModel):
    num_users: int = Field(200, ge=2)
    """Users in the rating matrix."""
    num_items: int = Field(100, ge=2)
    """Items in the rating matrix."""
    rank: int = Field(4, ge=1)
    """Rank of the true rating matrix (the embedding size a model needs)."""
    per_user: int = Field(20, ge=2)
    """Distinct items each user rated (at most num_items)."""
    noise: float = Field(0.1, ge=0.0)
    """Standard deviation of the Gaussian noise on each rating (the true ratings have std 1 around 3)."""
    choice: Literal["uniform", "preference"] = "uniform"
    """Which items a user rates: uniformly at random (rating prediction), or drawn with probability
    growing with the true rating (retrieval: which items a user picks carries the signal)."""
    seed: int = 0
    """Seeds the generator; the same options give the same ratings."""

    @model_validator(mode="after")
    def _items_to_rate(self) -> RatingsOptions:
        if self.per_user > self.num_items:
            raise ValueError(f"per_user ({self.per_user}) is above num_items ({self.num_items})")
        return self


class RatingsSource(SourceConfig):
    """Generated ratings of a low-rank user × item matrix, as interactions."""

    source: Literal["synthetic_ratings"] = "synthetic_ratings"
    """synthetic_ratings: generated (user, item, rating, time) rows."""
    options: RatingsOptions = Field(default_factory=RatingsOptions)
    """How many users and items, the matrix's rank, the noise; the resolved config lists every option."""

    per_user = True


@SOURCES.register("synthetic_ratings", params=RatingsSource)
def load_synthetic_ratings(cfg: RatingsSource, saved: EncoderState) -> Loaded:
    """Generated ratings from a low-rank user × item matrix plus noise, as interactions (data.options)."""
    import numpy as np

    options = cfg.options
    rng = np.random.default_rng(options.seed)
    # Factor entries with variance rank**-0.5 make each true rating's spread about 1.
    scale = options.rank ** -0.25
    user_factors = rng.normal(0.0, scale, (options.num_users, options.rank))
    item_factors = rng.normal(0.0, scale, (options.num_items, options.rank))
    users = np.repeat(np.arange(options.num_users), options.per_user)
    if options.choice == "preference":
        affinity = np.exp(3.0 * user_factors @ item_factors.T)  # sharper than the ratings themselves
        picks = [rng.choice(options.num_items, options.per_user, replace=False, p=row / row.sum()) for row in affinity]
    else:
        picks = [rng.choice(options.num_items, options.per_user, replace=False) for _ in range(options.num_users)]
    items = np.concatenate(picks)
    ratings = 3.0 + np.sum(user_factors[users] * item_factors[items], axis=1)
    ratings += rng.normal(0.0, options.noise, len(users))
    times = rng.permutation(len(users)).astype(np.float64)
    return interactions_loaded(
        np.char.add("u", users.astype(str)), np.char.add("i", items.astype(str)), ratings.astype(np.float32),
        times, f"synthetic_ratings (generated, seed {options.seed})", cfg.task, saved,
        where=lambda i: f"synthetic_ratings row {i}", rating="generated rating",
    )


class MultimodalOptions(StrictModel):
    n: int = Field(1000, ge=20)
    """Number of records."""
    image_size: int = Field(16, ge=8, le=128)
    """Height and width of the square RGB images."""
    numeric_features: int = Field(4, ge=2)
    """Numbers per record (the first two carry the signal)."""
    vocab_size: int = Field(50, ge=5, le=8000)
    """Distinct filler words in the sentences."""
    seed: int = 0
    """Seeds the generator; the same options give the same records."""


class MultimodalSource(SourceConfig):
    """Generated {image, text, numeric} records whose class needs all three inputs."""

    source: Literal["synthetic_multimodal"] = "synthetic_multimodal"
    """synthetic_multimodal: generated records of an image, a sentence and numbers."""
    options: MultimodalOptions = Field(default_factory=MultimodalOptions)
    """How many records, the image size, the numbers per record; the resolved config lists every option."""

    @classmethod
    def fixed_task(cls, source: str) -> str | None:
        return "classification"


@SOURCES.register("synthetic_multimodal", params=MultimodalSource)
def load_synthetic_multimodal(cfg: MultimodalSource, saved: EncoderState) -> Loaded:
    """Generated {image, text, numeric} records; the class counts signals spread over all three (data.options)."""
    import numpy as np

    options = cfg.options
    rng = np.random.default_rng(options.seed)
    n, size = options.n, options.image_size
    square, red = rng.integers(0, 2, (2, n))
    numeric = rng.normal(size=(n, options.numeric_features)).astype(np.float32)
    positive = (numeric[:, 0] + numeric[:, 1] > 0).astype(np.int64)

    images = rng.integers(0, 60, (n, size, size, 3), dtype=np.uint8)
    side = max(2, size // 4)
    for i in np.flatnonzero(square):
        row, col = rng.integers(0, size - side + 1, 2)
        images[i, row:row + side, col:col + side] = rng.integers(180, 256, 3, dtype=np.uint8)

    fillers = np.array(filler_words(options.vocab_size))
    texts = np.empty(n, dtype=object)
    for i in range(n):
        words = list(rng.choice(fillers, rng.integers(3, 9)))
        words.insert(int(rng.integers(0, len(words) + 1)), COLOR_ON if red[i] else COLOR_OFF)
        texts[i] = " ".join(words)

    labels = (square + red + positive).astype(np.int32)
    return Loaded({"image": images, "text": texts, "numeric": numeric}, labels,
                  f"synthetic_multimodal (generated, seed {options.seed})", "classification",
                  fixed_task_reason(cfg), class_names=list(MULTIMODAL_CLASSES),
                  label_state=EncoderState(task="classification", num_classes=4,
                                           label_classes=list(MULTIMODAL_CLASSES)))
