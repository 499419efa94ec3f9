"""Shared fixtures. TensorFlow tests import it themselves (and carry the ``tf`` marker)."""

from __future__ import annotations

import os

# Keep TensorFlow's C++ start-up chatter out of test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _plan_cache_in_tmp(tmp_path_factory):
    """Plan caches (fmtrain/engine/plan_cache.py) go to a per-session folder, never ~/.cache;
    processes the tests start inherit it."""
    saved = os.environ.get("FMTRAIN_CACHE_DIR")
    os.environ["FMTRAIN_CACHE_DIR"] = str(tmp_path_factory.mktemp("fmtrain-cache"))
    yield
    if saved is None:
        os.environ.pop("FMTRAIN_CACHE_DIR", None)
    else:
        os.environ["FMTRAIN_CACHE_DIR"] = saved
