"""The query tower (`search.query_tower`): what ships, and which questions it embeds: one in another
language than the text (keyword search covers under MIN_COVERAGE of it), never one keyword search covers;
a damaged tower leaves searches on e5's query vector."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from search import query_tower as QT
from search.engine import Engine
from search.hybrid import MIN_COVERAGE, keyword_hits

ENGLISH = "What is the target for the R&D investment intensity of the Yangtze River Delta by 2025?"
CHINESE = "到2025年长三角研发投入强度的目标是多少？"


def coverage(engine: Engine, query: str) -> float:
    snap = engine.snapshot()
    assert snap.keywords is not None
    return Engine._coverage(snap, query, keyword_hits(*snap.keywords.search(query, 3, None)))


def passage_cosines(engine: Engine, results: list, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The passage cosines the results show (dense_score is their mean with sentence_score), and the
    cosines of `vector` with those passages."""
    snap = engine.snapshot()
    shown = np.asarray([2 * r.dense_score - r.sentence_score for r in results])
    ids = np.asarray([r.passage_id for r in results], dtype=np.int64)
    return shown, snap.vectors.vectors(ids) @ vector


def test_the_shipped_tower_is_small_and_named() -> None:
    meta = json.loads((QT.WEIGHTS_DIR / QT.META_FILE).read_text(encoding="utf-8"))
    size = (QT.WEIGHTS_DIR / QT.WEIGHTS_FILE).stat().st_size
    assert size == meta["bytes"] <= 25 * 1024 * 1024
    assert meta["trained_layers"] == list(range(6, 12))
    assert any("cmrc2018" in t for t in meta["trained_on"]) and any("drcd" in t for t in meta["trained_on"])
    assert not any("xquad" in t or "news" in t or "PAWS" in t for t in meta["trained_on"])


def test_the_tower_is_e5_with_only_its_upper_layers_changed() -> None:
    from safetensors.numpy import load_file

    from index.embedders.e5_model import ensure_e5_model

    base = load_file(str(ensure_e5_model() / "model.safetensors"))
    tower = load_file(str(QT.ensure_tower_model() / "model.safetensors"))
    assert tower.keys() == base.keys()
    changed = {k for k in base if not np.array_equal(base[k], tower[k])}
    layers = {int(k.split(".")[2]) for k in changed}
    assert changed and layers <= set(range(6, 12)), sorted(changed)[:3]


def test_an_english_question_over_chinese_text_is_embedded_by_the_tower(engine: Engine) -> None:
    assert coverage(engine, ENGLISH) < MIN_COVERAGE
    tower = QT.query_tower(engine.settings.embedder)
    assert tower is not None
    by_tower = tower.encode_queries([ENGLISH])[0]
    by_e5 = engine.embedder.encode_queries([ENGLISH])[0]
    assert float(by_tower @ by_e5) < 0.99  # a different vector, not e5's again

    results = engine.search(ENGLISH, k=5).results
    shown, of_tower = passage_cosines(engine, results, by_tower)
    np.testing.assert_allclose(shown, of_tower, atol=1e-4)
    assert "3%" in results[0].text, [r.text[:60] for r in results]


def test_a_question_keyword_search_covers_keeps_e5s_vector(engine: Engine) -> None:
    assert coverage(engine, CHINESE) >= MIN_COVERAGE
    results = engine.search(CHINESE, k=5).results
    shown, of_e5 = passage_cosines(engine, results, engine.embedder.encode_queries([CHINESE])[0])
    np.testing.assert_allclose(shown, of_e5, atol=1e-4)


def test_without_the_tower_every_question_is_embedded_by_e5(
    seed_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEMSEARCH_QUERY_TOWER", "0")
    engine = Engine.open(seed_index)
    results = engine.search(ENGLISH, k=5).results
    shown, of_e5 = passage_cosines(engine, results, engine.embedder.encode_queries([ENGLISH])[0])
    np.testing.assert_allclose(shown, of_e5, atol=1e-4)


def test_a_damaged_tower_leaves_searches_on_e5(
    seed_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    copy = tmp_path / "weights"
    shutil.copytree(QT.WEIGHTS_DIR, copy)
    (copy / QT.WEIGHTS_FILE).write_bytes(b"not the weights")
    monkeypatch.setattr(QT, "WEIGHTS_DIR", copy)
    monkeypatch.setattr(QT, "_towers", {})
    monkeypatch.setattr(QT, "_failed", set())
    engine = Engine.open(seed_index)
    with caplog.at_level(logging.WARNING, logger="search.query_tower"):
        results = engine.search(ENGLISH, k=5).results
        engine.search(ENGLISH + " Please.", k=5)
    warnings = [r.getMessage() for r in caplog.records if "query tower is not used" in r.getMessage()]
    assert len(warnings) == 1 and "does not match its checksum" in warnings[0]  # said once, not per query
    shown, of_e5 = passage_cosines(engine, results, engine.embedder.encode_queries([ENGLISH])[0])
    np.testing.assert_allclose(shown, of_e5, atol=1e-4)
