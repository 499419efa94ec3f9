"""Keras metrics computed from a confusion matrix kept in the graph (imports Keras)."""

from __future__ import annotations

import keras
import tensorflow as tf


def class_ids(values, num_classes: int):
    """Sparse class ids from sparse labels, one-hot labels, probabilities or logits."""
    values = tf.convert_to_tensor(values)
    if values.shape.rank is not None and values.shape.rank >= 2 and values.shape[-1] == num_classes and num_classes > 1:
        return tf.argmax(values, axis=-1, output_type=tf.int32)
    if values.shape.rank is not None and values.shape.rank >= 2 and values.shape[-1] == 1 and values.dtype.is_floating:
        return tf.cast(tf.reshape(values, [-1]) > 0.5, tf.int32)
    if values.dtype.is_floating and num_classes == 2:
        return tf.cast(tf.reshape(values, [-1]) > 0.5, tf.int32)
    return tf.cast(tf.reshape(values, [-1]), tf.int32)


class ConfusionMetric(keras.metrics.Metric):
    """Precision, recall or F1 (binary, macro, micro or weighted) from a running confusion matrix."""

    def __init__(self, statistic: str, num_classes: int, average: str, name: str | None = None, **kwargs):
        super().__init__(name=name or statistic, **kwargs)
        self.statistic, self.num_classes, self.average = statistic, num_classes, average
        self.matrix = self.add_variable(shape=(num_classes, num_classes), initializer="zeros", name="matrix")

    def update_state(self, y_true, y_pred, sample_weight=None):
        truth = class_ids(y_true, self.num_classes)
        predicted = class_ids(y_pred, self.num_classes)
        weights = None if sample_weight is None else tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
        self.matrix.assign_add(
            tf.math.confusion_matrix(truth, predicted, self.num_classes, weights=weights, dtype=tf.float32)
        )

    def result(self):
        m = tf.convert_to_tensor(self.matrix)
        tp = tf.linalg.diag_part(m)
        actual, predicted = tf.reduce_sum(m, axis=1), tf.reduce_sum(m, axis=0)
        if self.average == "micro":
            tp, actual, predicted = tf.reduce_sum(tp), tf.reduce_sum(actual), tf.reduce_sum(predicted)
        precision = tf.math.divide_no_nan(tp, predicted)
        recall = tf.math.divide_no_nan(tp, actual)
        value = {"precision": precision, "recall": recall}.get(self.statistic)
        if value is None:
            value = tf.math.divide_no_nan(2.0 * precision * recall, precision + recall)
        if self.average == "binary":
            return value[1]
        if self.average == "weighted":
            return tf.math.divide_no_nan(tf.reduce_sum(value * actual), tf.reduce_sum(actual))
        return tf.reduce_mean(value)

    def reset_state(self):
        self.matrix.assign(tf.zeros_like(self.matrix))


class OneHotLabels(keras.metrics.Metric):
    """Feeds one-hot labels to a metric that needs them, from sparse class ids."""

    def __init__(self, inner, depth: int, name: str | None = None, **kwargs):
        super().__init__(name=name or inner.name, **kwargs)
        self.inner, self.depth = inner, depth

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), self.depth)
        self.inner.update_state(labels, y_pred, sample_weight=sample_weight)

    def result(self):
        return self.inner.result()

    def reset_state(self):
        self.inner.reset_state()
