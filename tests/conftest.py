"""Shared fixtures: the real model and an index of the default corpus, built once per test run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
EVAL = ROOT.parent / "shared" / "eval"

# Tests must never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def seed_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of data/ that tests may read (never modify data/ itself)."""
    folder = tmp_path_factory.mktemp("corpus")
    for f in DATA.iterdir():
        if f.is_file() and not f.name.startswith("."):
            shutil.copy(f, folder / f.name)
    return folder


@pytest.fixture(scope="session")
def seed_index(seed_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default corpus indexed with the real model (read-only for tests)."""
    from index.builder import IndexBuilder

    folder = tmp_path_factory.mktemp("index")
    IndexBuilder(folder).index_paths([seed_corpus])
    return folder


@pytest.fixture(scope="session")
def engine(seed_index: Path):
    from search.engine import Engine

    return Engine.open(seed_index)
