"""`semsearch migrate`: a folder index moves to Milvus with its vectors, nothing embedded again."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.cli import main
from tests.backends.test_contract import README_QUERIES

pytestmark = pytest.mark.integration


def test_a_folder_index_moves_to_milvus_and_answers_as_before(
    built: Any, milvus_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], shared_embedder: Any
) -> None:
    from index.milvus_index import MilvusIndex
    from search.engine import Engine

    # Without sentence vectors: the collection made from it has none either (one with them: below).
    reference = built("faiss:passages")
    collection = f"moved_{uuid.uuid4().hex[:10]}"
    args = ["migrate", str(reference.dir.root), "--milvus-uri", milvus_uri, "--collection", collection,
            "--index", str(tmp_path / "local"), "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["embedded"] == 0 and summary["added"] == reference.info()["documents"]
    assert not (tmp_path / "local" / "embeddings.sqlite").exists()  # no vector came from the model

    moved = Engine(MilvusIndex(milvus_uri, collection, root=tmp_path / "reader"))
    moved._embedder = shared_embedder
    for query in README_QUERIES:
        for mode in ("dense", "hybrid"):
            got = moved.search(query, k=5, mode=mode).results
            want = reference.search(query, k=5, mode=mode).results
            if mode == "dense":  # the same vectors: the same ranking
                assert [r.text for r in got] == [r.text for r in want], query
            else:  # Milvus' BM25 (jieba) weighs words a little differently from the folder's
                assert got[0].text == want[0].text, query
                assert len({r.text for r in got[:3]} & {r.text for r in want[:3]}) >= min(2, len(want)), query
            assert got[0].dense_score == pytest.approx(want[0].dense_score, abs=1e-5)
    first = reference.search(README_QUERIES[0], k=1).results[0]
    same = moved.search(README_QUERIES[0], k=1).results[0]
    assert same.text == first.text
    a = reference.snapshot().vectors.vectors(np.asarray([first.passage_id]))
    b = moved.snapshot().vectors.vectors(np.asarray([same.passage_id]))
    np.testing.assert_allclose(a, b, atol=1e-6)

    assert main(args) == 0  # again: everything is there unchanged, nothing is written
    again = json.loads(capsys.readouterr().out)
    assert again["added"] == again["updated"] == 0 and again["generation"] == summary["generation"]


def test_an_index_with_sentence_vectors_moves_with_them(
    built: Any, milvus_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], shared_embedder: Any
) -> None:
    from index.milvus_index import MilvusIndex
    from search.engine import Engine

    source = built("faiss")
    assert source.snapshot().sentences is not None
    collection = f"moved_{uuid.uuid4().hex[:10]}"
    args = ["migrate", str(source.dir.root), "--milvus-uri", milvus_uri, "--collection", collection,
            "--index", str(tmp_path / "local"), "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["embedded"] == 0 and not summary["warnings"], summary
    assert not (tmp_path / "local" / "embeddings.sqlite").exists()  # nothing came from the model

    moved = Engine(MilvusIndex(milvus_uri, collection, root=tmp_path / "reader"))
    moved._embedder = shared_embedder
    assert moved.info()["sentences"] == source.info()["sentences"] > 0
    for query in README_QUERIES:
        got = moved.search(query, k=5, mode="dense").results
        want = source.search(query, k=5, mode="dense").results
        assert [r.text for r in got] == [r.text for r in want], query  # the same vectors: the same ranking
        assert [r.sentence_score for r in got] == pytest.approx([r.sentence_score for r in want], abs=1e-6)


def test_moving_into_a_collection_without_sentence_vectors_says_they_stay_behind(
    built: Any, milvus_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from index.config import IndexSettings
    from index.milvus_index import MilvusIndex

    # A collection created without them (as every collection before them was) keeps passage vectors only.
    collection = f"moved_{uuid.uuid4().hex[:10]}"
    settings = IndexSettings.from_env({})
    settings.sentence_vectors = False
    target = MilvusIndex(milvus_uri, collection, root=tmp_path / "first")
    target.builder(settings).copy_from(built("faiss:passages").snapshot())
    args = ["migrate", str(built("faiss").dir.root), "--milvus-uri", milvus_uri, "--collection", collection,
            "--index", str(tmp_path / "local"), "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert any("sentence vectors were not copied" in w for w in summary["warnings"]), summary
