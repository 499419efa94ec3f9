"""TensorBoard event files in every run: per-epoch scalars, and the profiler over chosen steps.

``<run>/tensorboard/train`` holds the training quantities of each epoch and the learning rate;
``<run>/tensorboard/validation`` holds the ``val_*`` ones under the same tags, so TensorBoard draws
a metric's two curves in one chart (Keras's ``TensorBoard`` callback lays them out the same way).
The step of each point is the epoch number as ``history.csv`` counts it (1, 2, …).
"""

from __future__ import annotations

from pathlib import Path

from fmtrain.engine.callbacks import Callback

TRAIN, VALIDATION = "train", "validation"


def scalar_tag(key: str) -> tuple[str, str]:
    """Where a history column goes: (event folder, tag). ``val_loss`` → (validation, epoch_loss),
    ``lr`` → (train, epoch_learning_rate), ``seconds`` → (train, epoch_seconds)."""
    if key.startswith("val_"):
        return VALIDATION, f"epoch_{key[4:]}"
    return TRAIN, "epoch_learning_rate" if key == "lr" else f"epoch_{key}"


class TensorBoardCallback(Callback):
    """Writes each epoch's logs as scalars; with ``profile=(start, stop)`` traces the compiled calls
    from global step ``start`` to ``stop`` with TensorFlow's profiler (into ``train/plugins/profile``).

    The profiler starts and stops between compiled calls, so the traced range is rounded out to
    whole calls: it starts before the call that may reach ``start`` (a call never crosses an
    epoch's end, and is taken to be as long as the longest so far) and stops after the call that
    reaches ``stop``; :attr:`profiled` says which global steps it covered.
    """

    def __init__(self, logdir: Path, profile: tuple[int, int] | None = None):
        self.logdir = Path(logdir)
        self.profile = profile
        self.profiled: tuple[int, int] | None = None
        self._writers: dict[str, object] = {}
        self._profiling_from: int | None = None
        self._boundary = 0
        self._longest_call = 0
        self._steps_per_epoch = 1
        self._end = 0

    def _writer(self, folder: str):
        import tensorflow as tf

        if folder not in self._writers:
            self._writers[folder] = tf.summary.create_file_writer(str(self.logdir / folder))
        return self._writers[folder]

    def on_train_begin(self, plan: dict) -> None:
        self._writer(TRAIN)
        self._boundary = self.trainer.global_step
        self._steps_per_epoch = max(plan["steps"], 1)
        self._end = plan["epochs"] * plan["steps"]  # the global step this phase ends on, unless stopped early
        self._profile_at(self.trainer.global_step)

    def on_steps_end(self, epoch: int, step: int, logs: dict[str, float]) -> None:
        self._profile_at(self.trainer.global_step)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        import tensorflow as tf

        for key, value in logs.items():
            folder, tag = scalar_tag(key)
            with self._writer(folder).as_default():
                tf.summary.scalar(tag, value, step=epoch + 1)
        for writer in self._writers.values():
            writer.flush()

    def on_interrupt(self, epoch: int, step: int) -> None:
        self._stop_profiler()
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, history: list[dict[str, float]]) -> None:
        # Fine-tuning trains a second phase with the same callbacks: it opens new writers.
        self._stop_profiler()
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def _profile_at(self, global_step: int) -> None:
        self._longest_call = max(self._longest_call, global_step - self._boundary)
        self._boundary = global_step
        if self.profile is None:
            return
        start, stop = self.profile
        if self._profiling_from is None and self.profiled is None:
            # The next call trains from global_step up to at most its epoch's end, and (its length
            # unknown) about as far as the longest call so far.
            epoch_end = (global_step // self._steps_per_epoch + 1) * self._steps_per_epoch
            reach = min(global_step + self._longest_call, epoch_end) if self._longest_call else epoch_end
            if global_step < min(stop, self._end) and reach > start:
                import tensorflow as tf

                tf.profiler.experimental.start(str(self.logdir / TRAIN))
                self._profiling_from = global_step
        elif self._profiling_from is not None and global_step >= stop:
            self._stop_profiler()

    def _stop_profiler(self) -> None:
        if self._profiling_from is None:
            return
        import tensorflow as tf

        tf.profiler.experimental.stop()
        self.profiled = (self._profiling_from, self.trainer.global_step)
        self._profiling_from = None
