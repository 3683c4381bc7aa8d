"""The contract every vector store passes (chosen by name, like the stores themselves)."""

from __future__ import annotations

import numpy as np
import pytest

from index.stores.factory import VECTOR_STORES, create_vector_store, load_vector_store

DIM = 16


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(params=VECTOR_STORES)
def store_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def filled(store_name: str):
    rng = np.random.default_rng(7)
    vectors = unit(rng.normal(size=(200, DIM)))
    ids = np.arange(1000, 1200, dtype=np.int64)
    store = create_vector_store(store_name, DIM)
    store.add(ids, vectors)
    return store, ids, vectors


def test_nearest_is_itself_with_cosine_one(filled) -> None:
    store, ids, vectors = filled
    scores, found = store.search(vectors[:5], 3)
    assert found[:, 0].tolist() == ids[:5].tolist()
    assert np.allclose(scores[:, 0], 1.0, atol=1e-4)
    assert (np.diff(scores, axis=1) <= 1e-6).all(), "results must be best first"


def test_allowed_ids_restrict_inside_retrieval(filled) -> None:
    store, ids, vectors = filled
    allowed = ids[150:160]
    scores, found = store.search(vectors[:1], 10, allowed)
    assert sorted(found[0].tolist()) == sorted(allowed.tolist()), "k matching passages exist, k returned"
    _, none = store.search(vectors[:1], 10, np.zeros(0, dtype=np.int64))
    assert none.size == 0


def test_remove_and_vectors(filled) -> None:
    store, ids, vectors = filled
    assert store.remove(ids[:10]) == 10
    assert len(store) == 190
    _, found = store.search(vectors[:1], 5)
    assert ids[0] not in found[0]
    assert np.allclose(store.vectors(ids[20:22]), vectors[20:22], atol=1e-6)


def test_save_and_load_round_trip(filled, store_name: str, tmp_path) -> None:
    store, ids, vectors = filled
    store.save(tmp_path)
    loaded = load_vector_store(store_name, tmp_path)
    assert len(loaded) == len(store)
    a = store.search(vectors[:3], 5)[1]
    b = loaded.search(vectors[:3], 5)[1]
    assert (a == b).all()


def test_wrong_dimension_is_a_clear_error(store_name: str) -> None:
    store = create_vector_store(store_name, DIM)
    with pytest.raises(ValueError, match="dimension"):
        store.add(np.arange(2, dtype=np.int64), np.ones((2, DIM + 1), dtype=np.float32))
