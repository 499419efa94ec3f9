"""Shared fixtures. TensorFlow tests import it themselves (and carry the ``tf`` marker)."""

from __future__ import annotations

import os

# Keep TensorFlow's C++ start-up chatter out of test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
