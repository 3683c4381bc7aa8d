"""The contract every vector store passes: each implementation and each FAISS layout (exact, IVF, HNSW,
and the automatic choice crossing its size threshold) runs the same tests.

No timings here: speed and recall at scale are measured by bench/scale.py, never in the test suite.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index.config import IndexSettings
from index.documents import Document
from index.stores import faiss_store
from index.stores.factory import VECTOR_STORES, create_vector_store, load_vector_store

DIM = 16

# (store name, options, score tolerance): 8-bit codes return cosines within ~1e-2, float16 within ~1e-3.
CONFIGS: list[tuple[str, dict[str, Any], float]] = [
    ("faiss", {"kind": "flat"}, 1e-4),
    ("faiss", {"kind": "ivf"}, 1e-3),  # float16 codes (the default)
    ("faiss", {"kind": "ivf", "codec": "sq8"}, 2e-2),
    ("faiss", {"kind": "hnsw", "codec": "sq8"}, 2e-2),
    ("faiss", {"kind": "hnsw", "codec": "flat"}, 1e-4),
    # auto, with a threshold the fixture's 200 vectors cross: starts flat, becomes ivf.
    ("faiss", {"kind": "auto", "exact_max": 120}, 2e-2),
]
assert {name for name, _, _ in CONFIGS} == set(VECTOR_STORES), "every registered store is in the contract"


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int = DIM, seed: int = 7) -> np.ndarray:
    """Unit vectors around a few centres (real embeddings are clustered, not uniform)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, dim))
    return unit(centres[rng.integers(0, 8, n)] + 0.3 * rng.normal(size=(n, dim)))


@pytest.fixture(params=CONFIGS, ids=lambda c: f"{c[0]}-" + "-".join(f"{v}" for v in c[1].values()))
def config(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any], float]:
    return request.param


@pytest.fixture
def store_name(config: tuple[str, dict[str, Any], float]) -> str:
    return config[0]


@pytest.fixture
def options(config: tuple[str, dict[str, Any], float]) -> dict[str, Any]:
    return config[1]


@pytest.fixture
def atol(config: tuple[str, dict[str, Any], float]) -> float:
    return config[2]


@pytest.fixture
def make(store_name: str, options: dict[str, Any]):
    def new(dim: int = DIM):
        return create_vector_store(store_name, dim, options)

    return new


@pytest.fixture
def filled(make):
    vectors = unit(np.random.default_rng(7).normal(size=(200, DIM)))
    ids = np.arange(1000, 1200, dtype=np.int64)
    store = make()
    store.add(ids[:100], vectors[:100])  # two adds: the auto layout changes on the second
    store.add(ids[100:], vectors[100:])
    return store, ids, vectors


def test_nearest_is_itself_with_cosine_one(filled, atol: float) -> None:
    store, ids, vectors = filled
    scores, found = store.search(vectors[:5], 3)
    assert found[:, 0].tolist() == ids[:5].tolist()
    assert np.allclose(scores[:, 0], 1.0, atol=atol)
    assert (np.diff(scores, axis=1) <= 1e-6).all(), "results must be best first"


def test_allowed_ids_restrict_inside_retrieval(filled) -> None:
    store, ids, vectors = filled
    allowed = ids[150:160]
    scores, found = store.search(vectors[:1], 10, allowed)
    assert sorted(found[0].tolist()) == sorted(allowed.tolist()), "k matching passages exist, k returned"
    _, none = store.search(vectors[:1], 10, np.zeros(0, dtype=np.int64))
    assert none.size == 0


def test_allowed_ids_through_the_index_walk(filled, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large allowed sets go through the index with a selector (not the exact path): still k results."""
    monkeypatch.setattr(faiss_store, "EXACT_FILTER_MAX", 0)
    store, ids, vectors = filled
    for allowed in (ids[::2], ids[::17], ids[-3:]):
        _, found = store.search(vectors[:4], 10, allowed)
        for row in found:
            got = row[row >= 0]
            assert len(got) == min(10, len(allowed)), "k matching passages exist, k returned"
            assert set(got.tolist()) <= set(allowed.tolist())


def test_allowed_ids_unknown_to_the_store_are_ignored(filled) -> None:
    store, ids, vectors = filled
    allowed = np.concatenate([ids[:3], np.arange(50_000, 50_020, dtype=np.int64)])
    _, found = store.search(vectors[:1], 10, allowed)
    assert set(found[0][found[0] >= 0].tolist()) == set(ids[:3].tolist())


def test_remove_and_vectors(filled, atol: float) -> None:
    store, ids, vectors = filled
    assert store.remove(ids[:10]) == 10
    assert store.remove(ids[:10]) == 0, "removing twice removes nothing"
    assert len(store) == 190
    _, found = store.search(vectors[:1], 5)
    assert ids[0] not in found[0]
    assert np.allclose(store.vectors(ids[20:22]), vectors[20:22], atol=max(atol, 1e-6) * 2)


def test_removed_ids_never_come_back_filtered_or_not(filled) -> None:
    store, ids, vectors = filled
    store.remove(ids[:100])
    _, found = store.search(vectors[:20], 50)
    assert not set(found.ravel().tolist()) & set(ids[:100].tolist())
    _, found = store.search(vectors[:5], 10, ids[90:110])
    assert set(found.ravel().tolist()) - {-1} <= set(ids[100:110].tolist())


def test_readding_removed_ids_is_the_builders_update_path(filled) -> None:
    """The builder removes every passage of a changed document, then adds them back (unchanged passages
    keep their id and vector, changed ones get a new id)."""
    store, ids, vectors = filled
    store.remove(ids[:30])
    store.add(ids[:20], vectors[:20])  # unchanged passages: same id, same vector
    moved = unit(np.random.default_rng(3).normal(size=(1, DIM)))
    store.add(ids[20:21], moved)  # same id, another vector
    assert len(store) == 191
    _, found = store.search(vectors[:20], 1)
    assert found[:, 0].tolist() == ids[:20].tolist()
    _, found = store.search(moved, 1)
    assert found[0, 0] == ids[20]
    _, found = store.search(vectors[25:26], 5)
    assert ids[25] not in found[0]


def test_save_and_load_round_trip(filled, store_name: str, tmp_path: Path) -> None:
    store, ids, vectors = filled
    store.remove(ids[:5])
    store.save(tmp_path)
    loaded = load_vector_store(store_name, tmp_path)
    assert len(loaded) == len(store)
    a = store.search(vectors[:3], 5)[1]
    b = loaded.search(vectors[:3], 5)[1]
    assert (a == b).all()
    assert ids[0] not in loaded.search(vectors[:1], 5)[1][0]


def test_batch_search_matches_single_queries(filled) -> None:
    store, _ids, vectors = filled
    batch = store.search(vectors[:8], 4)[1]
    single = np.vstack([store.search(v, 4)[1] for v in vectors[:8]])
    assert (batch == single).all()


def test_empty_store_answers_nothing(make) -> None:
    store = make()
    assert len(store) == 0
    scores, found = store.search(unit(np.ones((1, DIM))), 5)
    assert found.size == 0 or (found < 0).all()


def test_wrong_dimension_is_a_clear_error(make) -> None:
    store = make()
    with pytest.raises(ValueError, match="dimension"):
        store.add(np.arange(2, dtype=np.int64), np.ones((2, DIM + 1), dtype=np.float32))


def test_recall_against_exact_search(make) -> None:
    """Approximate layouts find most true neighbours on clustered data (quality, not speed)."""
    vectors = clustered(3000, dim=32)
    ids = np.arange(3000, dtype=np.int64) * 7
    store = make(32)
    store.add(ids, vectors)
    queries = clustered(50, dim=32, seed=11)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    _, found = store.search(queries, 10)
    hits = [len(set(f.tolist()) & set(ids[t].tolist())) for f, t in zip(found, truth, strict=True)]
    assert np.mean(hits) / 10 >= 0.8, "a sanity floor: broken indexes score near 0; bench/scale.py measures"



# --- FAISS layouts ----------------------------------------------------------------------------------


def test_auto_layout_follows_the_size() -> None:
    store = create_vector_store("faiss", DIM, {"kind": "auto", "exact_max": 300})
    vectors = clustered(1000)
    ids = np.arange(1000, dtype=np.int64)
    store.add(ids[:300], vectors[:300])
    assert store.describe()["kind"] == "flat"
    store.add(ids[300:], vectors[300:])
    info = store.describe()
    assert info["kind"] == "ivf" and info["nlist"] >= 1 and info["nprobe"] >= 1
    store.remove(ids[100:])  # far below the threshold: back to exact
    assert store.describe()["kind"] == "flat" and len(store) == 100
    _, found = store.search(vectors[:5], 1)
    assert found[:, 0].tolist() == ids[:5].tolist()


def test_unknown_layout_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="kind"):
        create_vector_store("faiss", DIM, {"kind": "annoy"})


def test_generations_without_layout_file_open_as_exact(tmp_path: Path) -> None:
    """Generations written before `vectors.json` existed hold a plain IndexIDMap2(IndexFlatIP)."""
    store = create_vector_store("faiss", DIM, {"kind": "flat"})
    vectors = clustered(50)
    store.add(np.arange(50, dtype=np.int64), vectors)
    store.save(tmp_path)
    (tmp_path / faiss_store.META_FILE).unlink()
    loaded = load_vector_store("faiss", tmp_path)
    assert loaded.describe()["kind"] == "flat"
    assert loaded.search(vectors[:1], 1)[1][0, 0] == 0


# --- through the builder: incremental generations on every layout ------------------------------------


class StubEmbedder:
    """A vector that depends only on the text (as a real model's does), with no model to load."""

    name = "stub"
    dim = DIM
    max_tokens = 512

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = [
            np.random.default_rng(int(hashlib.sha1(t.encode()).hexdigest()[:8], 16)).normal(size=DIM)
            for t in texts
        ]
        return unit(np.asarray(rows).reshape(-1, DIM))

    encode_queries = encode_passages = _encode

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t) for t in texts]


def docs(n: int, version: int = 0) -> list[Document]:
    """Documents of one short passage each."""
    return [
        Document.from_paragraphs(f"d{i}", [f"document {i} version {version}"], title=f"doc {i}")
        for i in range(n)
    ]


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw", "auto"])
def test_builder_generations_on_every_layout(kind: str, tmp_path: Path) -> None:
    from index.builder import IndexBuilder
    from search.engine import Engine

    settings = IndexSettings(keyword_store="none")
    settings.faiss.kind = kind
    settings.faiss.exact_max = 20  # auto: the second build crosses it
    embedder = StubEmbedder()
    builder = IndexBuilder(tmp_path, settings, embedder=embedder)
    builder.upsert(docs(10))
    builder.upsert(docs(30)[10:])
    builder.upsert(docs(5, version=1))  # five documents change: their passages are removed and re-added
    builder.delete(["d29"])
    engine = Engine(tmp_path)
    engine._embedder = embedder  # noqa: SLF001 - searching needs the same stub model
    snap = engine.snapshot()
    manifest = snap.manifest
    assert len(snap.vectors) == snap.passages.count_passages() == manifest.passages
    assert manifest.vector_index["kind"] == (kind if kind != "auto" else "ivf")
    assert manifest.settings["faiss"]["kind"] == kind
    results = engine.search("document 3 version 1", k=1, mode="dense").results
    assert results[0].text == "document 3 version 1"
    found = engine.search("document 29 version 0", k=5, mode="dense").results
    assert all(r.doc_id != "d29" for r in found)


def test_engine_answer_cache_follows_the_generation(tmp_path: Path) -> None:
    """Repeated searches are answered from the engine's cache; a new generation is never answered from
    an older one's entries (the generation name is part of the key)."""
    from index.builder import IndexBuilder
    from search.engine import Engine

    embedder = StubEmbedder()
    builder = IndexBuilder(tmp_path, IndexSettings(keyword_store="none"), embedder=embedder)
    builder.upsert(docs(5))
    engine = Engine(tmp_path)
    engine._embedder = embedder  # noqa: SLF001 - searching needs the same stub model
    first = engine.search("document 7 version 0", k=3, mode="dense")
    first.results[0].text = "changed by the caller"  # callers get copies: the cache stays intact
    again = engine.search("document 7 version 0", k=3, mode="dense")
    assert again.results[0].text != "changed by the caller"
    assert len(engine._answers) == 1  # noqa: SLF001
    builder.upsert(docs(10)[5:])
    fresh = engine.search("document 7 version 0", k=3, mode="dense")
    assert fresh.generation != first.generation
    assert fresh.results[0].text == "document 7 version 0"
