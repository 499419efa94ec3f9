"""Does the trained model do at inference what the epoch lines said it did in training?

The epoch line reports the training split in training mode (dropout on, batch-norm layers on the
batch's own statistics, augmentation applied), averaged over the epoch while the weights change;
the final table measures it again in inference mode, which is what the saved model does. The two
differ a little by nature. A large gap, with inference worse, means a layer behaves differently
at inference than in training (batch-norm statistics that have not caught up, heavy dropout) and
the epoch lines promised something the model does not do: that is said, not left to be noticed.
"""

from __future__ import annotations

SCORE_MARGIN = 0.1
"""A score in [0, 1] where higher is better (accuracy, precision, recall, F1, AUC) may be this much
lower in inference mode, absolute, before it is a warning..."""
LOSS_MARGIN = 0.5
"""...and the loss this much higher, relative (0.5: 50% higher)..."""
LOSS_FLOOR = 0.01
"""...and also higher by more than this, absolute, so near-zero losses (0.002 vs 0.004) stay quiet.
Both margins widen by the share of fill rows in the last epoch's batches (see :func:`mode_gap_warning`)."""
SCORE_WORDS = ("accuracy", "precision", "recall", "f1", "auc")
"""Metric names containing one of these are scores in [0, 1] where higher is better."""
BATCH_DEPENDENT_LOSSES = frozenset({"in_batch_softmax"})
"""Losses (and their metrics, such as ``recall_at_k``) that score each example against the rest of its
batch: training batches (e.g. 128) and evaluation batches (256) differ, so the two modes are not compared."""


def mode_gap_warning(epoch_logs: dict[str, float], epoch: int, final_train: dict[str, float], *,
                     examples: int, batch_size: int, precise_bn: bool) -> str | None:
    """A warning when the training split scores clearly worse in inference mode than in training mode.

    The last epoch's numbers count the fill rows of its last batch (copies of rows from the start
    of the epoch) as well, at most a share ``f = fill / (examples + fill)`` of the rows; they can
    move a score by up to ``f`` and lower a loss to ``1 - f`` of its value, so the margins are
    widened by that much and a small training set does not warn for its fill rows alone.

    Args:
        epoch_logs: the history row of the epoch whose weights were kept (loss and metrics, training mode).
        epoch: that epoch, 1-based, for the message.
        final_train: loss and metrics on the training split after training, in inference mode.
        examples: training examples; batch_size: the training batch size (for the share of fill rows).
        precise_bn: whether batch-norm statistics were recomputed after training.

    Returns:
        One sentence naming each metric that is out of its margin, or None.
    """
    batches = -(-examples // batch_size) if examples > 0 else 1
    fill_share = (batches * batch_size - examples) / (batches * batch_size)
    gaps = []
    for name, trained in epoch_logs.items():
        now = final_train.get(name)
        if now is None or name in ("lr", "seconds") or name.startswith("val_"):
            continue
        if name == "loss":
            bound = trained * (1 + LOSS_MARGIN) / (1 - fill_share)
            if now > bound and now - trained > LOSS_FLOOR:
                gaps.append((name, now, trained))
        elif any(word in name for word in SCORE_WORDS) and 0.0 <= trained <= 1.0 and 0.0 <= now <= 1.0:
            if trained - now > SCORE_MARGIN + fill_share:
                gaps.append((name, now, trained))
    if not gaps:
        return None
    scores = [gap for gap in gaps if gap[0] != "loss"]
    shown = scores or gaps  # the scores say it plainest; the loss alone when it is all there is
    inference = ", ".join(f"{name} {now:.4g}" for name, now, _ in shown)
    training = ", ".join(f"{name} {trained:.4g}" for name, _, trained in shown)
    cause = ("even with batch-norm statistics recomputed after training, a layer that behaves differently "
             "in training (Dropout, noise, augmentation, BatchNormalization) makes the saved model worse"
             if precise_bn else
             "a layer that behaves differently in training (BatchNormalization statistics that have not caught "
             "up in a short run, Dropout, noise, augmentation) makes the saved model worse")
    return (f"train {inference} in inference mode (what the saved model does) vs {training} in training mode "
            f"in epoch {epoch}: {cause} than the epoch lines say; trust the final metrics")
