"""``interactions``: user–item rows (ratings or implicit feedback) for recommender models.

``x`` is ``{"user": ids, "item": ids}``: raw ids until :func:`fmtrain.data.build` fits one
vocabulary per column on the training rows and maps them to int32 (1..V, 0 for an id not seen
in training). ``DataInfo.vocab_sizes`` then holds ``{"user": U + 1, "item": I + 1}`` for the U users
and I items of the training rows (the unseen id 0 included), so ``Embedding(input_dim=vocab_sizes["user"])``
covers every id; the vocabularies themselves are ``DataInfo.encoders.vocabularies``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

from fmtrain.data import tabular
from fmtrain.data.encoding import EncoderState
from fmtrain.data.ids import IdEncoder
from fmtrain.data.labels import encode_labels
from fmtrain.data.sources import SOURCES, Loaded, SourceConfig
from fmtrain.errors import DataError

USER, ITEM, RATING, TIMESTAMP = "user", "item", "rating", "timestamp"


class InteractionsSource(SourceConfig):
    """A csv of user–item interactions: columns user, item[, rating][, timestamp]."""

    source: Literal["interactions"] = "interactions"
    """interactions: one row per (user, item) interaction."""
    path: str
    """The .csv file (relative to the config file)."""
    label: str | None = None
    """Rating column (default 'rating' when the file has one; without one every interaction is an implicit 1.0)."""

    per_user = True


def interactions_loaded(users: np.ndarray, items: np.ndarray, ratings: np.ndarray | None, times: np.ndarray,
                        source: str, task: str, saved: EncoderState, where, rating: str | None) -> Loaded:
    """Package raw interactions: ratings (or 1.0 each when None) as labels, ids for the id encoder.

    Args:
        users, items: raw ids per row (any values; compared as strings).
        ratings: the rating per row, or None for implicit feedback.
        times: sortable numbers per row (timestamps, or the row number).
        source: description for ``DataInfo.source``.
        task: ``cfg.task``; auto means regression on the ratings.
        saved: state of a previous run (label task, vocabularies).
        where: describes row ``i`` for label messages.
        rating: what the ratings are, for the task reason, e.g. ``"rating column 'stars'"``
            (None for implicit feedback).
    """
    import numpy as np

    values = np.ones(len(users), np.float32) if ratings is None else ratings
    labels = encode_labels(values, task="regression" if task == "auto" else task, saved=saved, where=where,
                           name=rating or "the implicit 1.0 of each interaction")
    reason = labels.task_reason
    if task == "auto" and saved.task is None:
        reason = (f"interactions predict the {rating} as a number (data.task: auto means regression for "
                  "interactions); set data.task: classification if the ratings are class ids" if rating else
                  "the interactions have no rating column, so each one is an implicit 1.0 to predict "
                  "(data.task: auto means regression for interactions)")
    vocab = saved.vocabularies
    encoder = IdEncoder([USER, ITEM], {k: vocab[k] for k in (USER, ITEM)} if vocab else None)
    x = {USER: np.asarray(users).astype(str), ITEM: np.asarray(items).astype(str)}
    return Loaded(x, labels.y, source, labels.task, reason, class_names=labels.class_names,
                  label_state=labels.state, feature_encoder=encoder, users=x[USER], times=times)


@SOURCES.register("interactions", params=InteractionsSource)
def load_interactions(cfg: InteractionsSource, saved: EncoderState) -> Loaded:
    """User–item csv (data.path): user, item[, rating][, timestamp] → {user, item} ids; y = rating or 1.0."""
    import numpy as np

    path = tabular.resolve_path(cfg.path, "interactions", "a .csv file with columns user,item[,rating][,timestamp]")
    table = tabular.read_csv(path)
    users = table.column(USER, "the interactions' user column")
    items = table.column(ITEM, "the interactions' item column")
    rating = cfg.label if cfg.label is not None else (RATING if RATING in table.header else None)
    ratings = None
    if rating is not None:
        if rating in (USER, ITEM, TIMESTAMP):
            raise DataError(f"{path}: data.label '{rating}' is the {rating} column; name the rating column")
        ratings = tabular.parse_numeric(table, rating, table.column(rating, "data.label"))
    if TIMESTAMP in table.header:
        times = _timestamps(table)
    else:
        times = np.arange(len(users), dtype=np.float64)  # file order
    return interactions_loaded(np.array(users, dtype=str), np.array(items, dtype=str), ratings, times,
                               f"interactions {path}", cfg.task, saved,
                               where=lambda i: f"{path}:{table.lines[i]}",
                               rating=f"rating column '{rating}'" if rating is not None else None)


def _timestamps(table: tabular.CsvRows) -> np.ndarray:
    """Numbers as they are; otherwise ISO 8601 dates/times (2024-05-01, 2024-05-01T12:00:00) as seconds."""
    import numpy as np

    cells = table.column(TIMESTAMP, "the interactions' timestamp column")
    if all(tabular.is_number(c) for c in cells):
        return np.array([float(c) for c in cells], dtype=np.float64)
    seconds = np.empty(len(cells), dtype=np.float64)
    for i, cell in enumerate(cells):
        try:
            seconds[i] = np.datetime64(cell, "s").astype(np.int64)
        except ValueError:
            raise DataError(
                f"{table.path}:{table.lines[i]}: timestamp '{cell}' is neither a number nor an ISO 8601 "
                "date/time (2024-05-01 or 2024-05-01T12:30:00)"
            ) from None
    return seconds
