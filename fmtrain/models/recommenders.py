"""Recommender families on user/item ids: ``matrix_factorization`` and ``two_tower``.

Both take named integer inputs (``user`` and ``item`` by default); ``num_users``/``num_items: auto``
take the counts from ``build_model``'s ``vocab_sizes`` (the data layer's id vocabularies) or from a
lookup step in front of the input. This module also registers the
``in_batch_softmax`` loss and the ``recall_at_k`` metric that train and score ``two_tower``.

Limits of in-batch training and evaluation (``two_tower``): the model's output is the
``batch × batch`` score matrix of the batch's queries against the batch's candidates, and the
diagonal holds the observed pairs. So ``recall_at_k`` during fit/eval ranks each positive among
``batch_size - 1`` random other positives, not among all items: it rises with smaller batches,
is trivially 1 when ``k >= batch_size``, and treats a repeat of the same item in a batch as a
negative. Popular items are over-represented as negatives (no sampling-bias correction).
Evaluation pads the last batch with copies of the first example (weight 0), which are extra
negatives for the real rows. For a recall@k over the whole catalogue, take the towers with
:func:`retrieval_towers`, embed every item once and rank them per query.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fmtrain.config.base import KerasActivation
from fmtrain.errors import ConfigError
from fmtrain.losses import LOSSES
from fmtrain.metrics import METRICS, MetricContext
from fmtrain.models.registry import MODELS, ModelParams, OutputSpec
from fmtrain.registry import did_you_mean

IdCount = int | Literal["auto"]


def _id_input(inputs, name: str, key: str, family: str):
    """The named id input ``name`` (configured as ``model.<key>``)."""
    if not isinstance(inputs, dict):
        raise ConfigError(
            f"model.type: {family} needs named id inputs ('{name}' and another), but the data has a single input "
            f"of shape {tuple(inputs.shape[1:])}"
        )
    if name not in inputs:
        raise ConfigError(
            f"model.{key}: the data has no input '{name}'{did_you_mean(name, inputs)}; inputs: {sorted(inputs)}"
        )
    ids = inputs[name]
    if len(ids.shape) > 2 or (len(ids.shape) == 2 and ids.shape[1] != 1):
        raise ConfigError(
            f"model.{key}: input '{name}' must hold one id per example, found shape {tuple(ids.shape[1:])}"
        )
    return ids


def _count(value, tensor, key: str, what: str, known: int | None) -> int:
    from fmtrain.models.text import vocabulary_size

    return vocabulary_size(tensor, key, what, known) if value == "auto" else value


# --------------------------------------------------------------------------- matrix_factorization


class MatrixFactorizationParams(ModelParams):
    type: Literal["matrix_factorization"] = "matrix_factorization"
    uses_vocab_sizes = True
    num_users: IdCount = Field("auto")
    """Number of user ids (largest id + 1); auto takes the data's user vocabulary or a lookup step's size."""
    num_items: IdCount = Field("auto")
    """Number of item ids (largest id + 1); auto takes the data's item vocabulary or a lookup step's size."""
    embedding_dim: int = Field(32, ge=1)
    """Width of the user and item factors."""
    use_bias: bool = True
    """Learn a bias per user and per item, and a global bias."""
    global_bias: float = 0.0
    """Starting value of the global bias; the mean training rating makes the first epochs count."""
    l2: float = Field(0.05, ge=0.0)
    """L2 penalty on the user and item factors and biases each example looks up, averaged over the batch."""
    user_input: str = "user"
    """Name of the input holding user ids."""
    item_input: str = "item"
    """Name of the input holding item ids."""

    @model_validator(mode="after")
    def _counts(self) -> MatrixFactorizationParams:
        for key in ("num_users", "num_items"):
            value = getattr(self, key)
            if value != "auto" and value < 1:
                raise ValueError(f"{key} must be at least 1 or auto, found {value}")
        return self


@MODELS.register("matrix_factorization", params=MatrixFactorizationParams)
def build_matrix_factorization(params: MatrixFactorizationParams, inputs, output: OutputSpec,
                               vocab_sizes: dict[str, int] | None = None):
    """Matrix factorization: user · item factors + user, item and global biases → one rating."""
    import keras

    from fmtrain.models.layers import ScalarBias

    users = _id_input(inputs, params.user_input, "user_input", "matrix_factorization")
    items = _id_input(inputs, params.item_input, "item_input", "matrix_factorization")
    known = vocab_sizes or {}
    num_users = _count(params.num_users, users, "num_users", "user", known.get(params.user_input))
    num_items = _count(params.num_items, items, "num_items", "item", known.get(params.item_input))
    if output.units != 1:
        raise ConfigError(
            f"model.type: matrix_factorization predicts one score per (user, item) pair, but the task needs "
            f"{output.units} outputs; use a rating label (regression) or a 0/1 label with binary_crossentropy"
        )
    # Penalise the factors each example looks up (Keras divides by the batch size), as SGD matrix
    # factorization does; a penalty on whole tables would grow with the number of users and items.
    regularizer = keras.regularizers.L2(params.l2) if params.l2 else None
    # Ratings need float32 even under a mixed-precision policy (bfloat16 keeps ~3 digits), and the model is small.
    f32 = {"dtype": "float32"}

    def embed(ids, count: int, width: int, name: str, initializer):
        layer = keras.layers.Embedding(count, width, embeddings_initializer=initializer,
                                       activity_regularizer=regularizer, name=name, **f32)
        return keras.layers.Flatten(name=f"{name}_flat", **f32)(layer(ids))

    factors = keras.initializers.RandomNormal(stddev=0.1)
    score = keras.layers.Dot(axes=1, name="dot", **f32)([
        embed(users, num_users, params.embedding_dim, "user_factors", factors),
        embed(items, num_items, params.embedding_dim, "item_factors", factors),
    ])
    if params.use_bias:
        score = keras.layers.Add(name="add_biases", **f32)([
            score,
            embed(users, num_users, 1, "user_bias", "zeros"),
            embed(items, num_items, 1, "item_bias", "zeros"),
        ])
        score = ScalarBias(params.global_bias, name="global_bias", **f32)(score)
    if output.activation:
        score = keras.layers.Activation(output.activation, name="output", **f32)(score)
    return score


# --------------------------------------------------------------------------- two_tower


class TwoTowerParams(ModelParams):
    type: Literal["two_tower"] = "two_tower"
    # Its output is an in-batch score matrix: only this loss and these metrics make sense of it.
    default_loss = "in_batch_softmax"
    required_losses = ("in_batch_softmax",)
    default_metrics = ("recall_at_k",)
    uses_vocab_sizes = True
    num_users: IdCount = Field("auto")
    """Number of query (user) ids, largest id + 1; auto takes the data's vocabulary or a lookup step's size."""
    num_items: IdCount = Field("auto")
    """Number of candidate (item) ids, largest id + 1; auto takes the data's vocabulary or a lookup step's size."""
    embedding_dim: int = Field(32, ge=1)
    """Width of the id embeddings at the bottom of each tower."""
    tower_units: list[int] = Field(default_factory=lambda: [64])
    """Hidden Dense layers of each tower, after the id embedding."""
    output_dim: int = Field(32, ge=1)
    """Width of the L2-normalized query and candidate embeddings."""
    activation: KerasActivation = "relu"
    """Activation of the hidden tower layers."""
    temperature: float = Field(0.1, gt=0.0)
    """Scores are cosine similarities divided by this; lower is sharper."""
    l2: float = Field(0.0, ge=0.0)
    """L2 penalty on the id embeddings each example looks up, averaged over the batch."""
    query_input: str = "user"
    """Name of the input holding query (user) ids."""
    candidate_input: str = "item"
    """Name of the input holding candidate (item) ids."""

    @model_validator(mode="after")
    def _check(self) -> TwoTowerParams:
        for key in ("num_users", "num_items"):
            value = getattr(self, key)
            if value != "auto" and value < 1:
                raise ValueError(f"{key} must be at least 1 or auto, found {value}")
        if any(u < 1 for u in self.tower_units):
            raise ValueError(f"tower_units must be positive, found {self.tower_units}")
        return self


@MODELS.register("two_tower", params=TwoTowerParams)
def build_two_tower(params: TwoTowerParams, inputs, output: OutputSpec, vocab_sizes: dict[str, int] | None = None):
    """Two-tower retrieval: query and candidate towers, L2-normalized; in-batch scores (loss: in_batch_softmax)."""
    from fmtrain.models.layers import InBatchScores

    queries = _id_input(inputs, params.query_input, "query_input", "two_tower")
    candidates = _id_input(inputs, params.candidate_input, "candidate_input", "two_tower")
    known = vocab_sizes or {}
    num_users = _count(params.num_users, queries, "num_users", "user", known.get(params.query_input))
    num_items = _count(params.num_items, candidates, "num_items", "item", known.get(params.candidate_input))
    query_tower = _tower(params, queries, num_users, "query")
    candidate_tower = _tower(params, candidates, num_items, "candidate")
    # float32 scores: the softmax over the batch is the loss.
    return InBatchScores(params.temperature, dtype="float32", name="scores")(
        [query_tower(queries), candidate_tower(candidates)])


def _tower(params: TwoTowerParams, ids, count: int, name: str):
    """A nested model ``ids → unit-length embedding``, usable on its own after training."""
    import keras

    regularizer = keras.regularizers.L2(params.l2) if params.l2 else None
    tower_in = keras.Input(shape=tuple(ids.shape[1:]), dtype=ids.dtype, name=f"{name}_ids")
    x = keras.layers.Embedding(count, params.embedding_dim, activity_regularizer=regularizer,
                               name=f"{name}_embedding")(tower_in)
    x = keras.layers.Flatten(name=f"{name}_flat")(x)
    for index, units in enumerate(params.tower_units):
        x = keras.layers.Dense(units, activation=params.activation, name=f"{name}_hidden{index}")(x)
    x = keras.layers.Dense(params.output_dim, name=f"{name}_projection")(x)
    x = keras.layers.UnitNormalization(name=f"{name}_normalize")(x)
    return keras.Model(tower_in, x, name=f"{name}_tower")


def retrieval_towers(model):
    """The ``(query_tower, candidate_tower)`` sub-models of a trained (or reloaded) ``two_tower`` model.

    Each maps a batch of ids to unit-length embeddings; score every item for a query with
    ``query_tower(user_ids) @ candidate_tower(all_item_ids).T``.

    Raises:
        ConfigError: ``model`` was not built by ``two_tower``.
    """
    names = {layer.name for layer in model.layers}
    if not {"query_tower", "candidate_tower"} <= names:
        raise ConfigError(f"model '{model.name}' has no query_tower/candidate_tower; it was not built by two_tower")
    return model.get_layer("query_tower"), model.get_layer("candidate_tower")


# --------------------------------------------------------------------------- loss and metric


@LOSSES.register("in_batch_softmax")
def build_in_batch_softmax(symmetric: bool = False):
    """Softmax cross-entropy over a batch × batch score matrix whose diagonal holds the positives.

    Args:
        symmetric: also score each candidate against the batch's queries (columns), and average.

    Returns:
        ``fn(y_true, y_pred) -> per-row losses``; ``y_true`` is ignored (the pairing is the diagonal).
    """
    from keras import ops

    def in_batch_softmax(y_true, y_pred):
        scores = ops.convert_to_tensor(y_pred)
        rows, cols = scores.shape[0], scores.shape[-1]
        if len(scores.shape) != 2 or (rows is not None and cols is not None and rows != cols):
            raise ConfigError(
                f"loss: in_batch_softmax needs the batch × batch scores of a two_tower model, "
                f"but the model outputs shape {tuple(scores.shape)}"
            )
        labels = ops.arange(ops.shape(scores)[0])
        losses = _softmax_cross_entropy(labels, scores)
        if symmetric:
            losses = 0.5 * (losses + _softmax_cross_entropy(labels, ops.transpose(scores)))
        return losses

    return in_batch_softmax


def _softmax_cross_entropy(labels, logits):
    import keras

    return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


@METRICS.register("recall_at_k")
def build_recall_at_k(args: dict, ctx: MetricContext):
    """In-batch recall@k of a two_tower model: the positive ranks in the top k of its batch row (k: 10)."""
    from fmtrain.models.layers import InBatchRecall

    unknown = sorted(set(args) - {"k"})
    if unknown:
        raise ConfigError(f"metrics.recall_at_k: unknown argument '{unknown[0]}'; the only argument is k")
    k = args.get("k", 10)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"metrics.recall_at_k.k: expected a positive whole number, found {k!r}")
    return InBatchRecall(k=k)
