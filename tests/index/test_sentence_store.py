"""Sentence vectors (`index.stores.sentence_store`): the store, and how the builder and the engine use it,
on the real model with small corpora."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from index.builder import IndexBuilder
from index.config import IndexSettings
from index.documents import text_hash
from index.embedding_cache import EmbeddingCache
from index.generations import IndexDamaged, IndexDir
from index.stores.sentence_store import SentenceStore, passage_sentences
from search.engine import Engine

# Three articles on one topic: each passage's sentences say much the same, one sentence tells them apart.
OPENING, CLOSING = "成渝地区加快建设科技创新中心。", "两地共建实验室和研发平台。"
ARTICLES = {
    "a.txt": OPENING + "重庆两江新区今年新增高新技术企业三百家。" + CLOSING,
    "b.txt": OPENING + "四川雅安大数据产业园已投运机柜一万个。" + CLOSING,
    "c.txt": OPENING + "成都超算中心的算力服务覆盖西部十二个省份。" + CLOSING,
}


def write_corpus(folder: Path, articles: dict[str, str] = ARTICLES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in articles.items():
        (folder / name).write_text(f"科技创新\n\n{text}\n", encoding="utf-8")


def settings(sentences: bool = True) -> IndexSettings:
    chosen = IndexSettings.from_env({})
    chosen.sentence_vectors = sentences
    return chosen


def current_folder(index: Path) -> Path:
    folder = IndexDir(index)
    return folder.path(folder.current())


# --- the store ---------------------------------------------------------------------------------------
def test_a_passage_is_cut_into_the_sentences_that_say_something() -> None:
    assert passage_sentences("只有一句话的段落。") == [], "a one-sentence passage is its own sentence"
    pieces = passage_sentences("第一句说了一件事。（完）\n第二句说另一件事！")
    assert pieces == ["第一句说了一件事。", "第二句说另一件事！"], "（完） says nothing on its own"


def test_the_best_sentence_of_each_passage_and_none_for_others(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    unit = rng.standard_normal((5, 8)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    store = SentenceStore.build(8, [(20, unit[2:5]), (7, unit[:2]), (9, np.zeros((0, 8)))])
    store.save(tmp_path)
    loaded = SentenceStore.load(tmp_path)
    assert len(loaded) == 3 and loaded.sentence_count == 5
    query = unit[3]
    best = loaded.best([7, 9, 20, 99], query)
    assert best[0] == pytest.approx(float(np.max(unit[:2] @ query)), abs=2e-3)
    assert np.isnan(best[1]) and np.isnan(best[3]), "no sentences of its own, and an id it does not hold"
    assert best[2] == pytest.approx(1.0, abs=2e-3), "the passage holding the query's own sentence"
    assert set(loaded.of([9, 20, 5])) == {9, 20}


# --- the builder -------------------------------------------------------------------------------------
def test_every_passage_gets_its_sentences_and_only_new_text_is_embedded(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus)
    first = IndexBuilder(index, settings()).index_paths([corpus])
    engine = Engine.open(index)
    snap = engine.snapshot()
    assert snap.sentences is not None and len(snap.sentences) == snap.stats["passages"]
    texts = {pid: row.text for pid, row in snap.passages.passages(list(snap.sentences.ids)).items()}
    expected = {pid: passage_sentences(t) for pid, t in texts.items()}
    assert snap.sentences.sentence_count == sum(len(v) for v in expected.values())
    assert engine.info()["sentences"] == snap.sentences.sentence_count
    distinct = {s for v in expected.values() for s in v}
    assert first.sentences_embedded == len(distinct), "a sentence the articles share is embedded once"
    # Each stored vector is its sentence embedded alone, as a passage of that text would be.
    pid, sentences = next((p, s) for p, s in expected.items() if s)
    alone = engine.embedder.encode_passages(sentences)
    np.testing.assert_allclose(np.asarray(snap.sentences.of([pid])[pid], np.float32), alone, atol=2e-3)

    again = IndexBuilder(index, settings()).index_paths([corpus])
    assert again.generation == first.generation and again.sentences_embedded == 0

    changed = dict(ARTICLES, **{"b.txt": ARTICLES["b.txt"].replace("一万个", "两万个")})
    write_corpus(corpus, changed)
    update = IndexBuilder(index, settings()).index_paths([corpus])
    assert update.updated == 1 and update.embedded == 1
    assert update.sentences_embedded == 1, "only the changed sentence; its neighbours come from the cache"
    # The cache keeps the sentences the index holds and forgets the replaced one.
    cache = EmbeddingCache(index, engine.embedder.name, engine.embedder.dim)
    try:
        live = [text_hash(s) for t in changed.values() for s in passage_sentences(t)]
        assert set(cache.get(live)) == set(live)
        gone = text_hash("四川雅安大数据产业园已投运机柜一万个。")
        assert cache.get([gone]) == {}
    finally:
        cache.close()


def test_an_index_without_sentence_vectors_searches_and_gets_them_on_the_next_index_run(
    tmp_path: Path,
) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus)
    plain = IndexBuilder(index, settings(sentences=False)).index_paths([corpus])
    assert plain.sentences_embedded == 0 and not (current_folder(index) / "sentences").exists()
    manifest = json.loads((current_folder(index) / "manifest.json").read_text())
    assert manifest["settings"]["sentence_vectors"] is False and Engine.open(index).info()["sentences"] == 0
    top = Engine.open(index).search("雅安的机柜", k=1).results[0]
    assert top.sentence_score is None and top.doc_id == "b.txt"

    upgrade = IndexBuilder(index, settings()).index_paths([corpus])
    assert upgrade.generation != plain.generation, "nothing changed, but the sentences are added"
    assert upgrade.embedded == 0 and upgrade.sentences_embedded > 0
    top = Engine.open(index).search("雅安的机柜", k=1).results[0]
    assert top.doc_id == "b.txt" and top.sentence_score is not None


def test_a_damaged_sentence_file_is_named_and_the_next_run_rebuilds_it_from_the_cache(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus)
    IndexBuilder(index, settings()).index_paths([corpus])
    vectors = current_folder(index) / "sentences" / "vectors.npy"
    vectors.write_bytes(vectors.read_bytes()[:-64])
    with pytest.raises(IndexDamaged, match="sentences/vectors.npy"):
        Engine.open(index).search("雅安的机柜")
    repair = IndexBuilder(index, settings()).index_paths([corpus])
    assert repair.repaired and repair.embedded == 0 and repair.sentences_embedded == 0
    assert Engine.open(index).search("雅安的机柜", k=1).results[0].doc_id == "b.txt"


# --- the engine --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_the_dense_side_scores_a_passage_by_its_best_sentence_too(tmp_path: Path, mode: str) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus)
    IndexBuilder(index, settings()).index_paths([corpus])
    engine = Engine.open(index)
    results = engine.search("成都超算中心的算力服务覆盖多少个省份", k=3, mode=mode).results
    assert [r.doc_id for r in results][0] == "c.txt"
    query = engine.embedder.encode_queries(["成都超算中心的算力服务覆盖多少个省份"])[0]
    for r in results:
        cosine = float(engine.embedder.encode_passages([r.text])[0] @ query)
        sentences = passage_sentences(r.text)
        best = max(float(v @ query) for v in engine.embedder.encode_passages(sentences))
        assert r.sentence_score == pytest.approx(best, abs=3e-3)
        assert r.dense_score == pytest.approx((cosine + best) / 2, abs=3e-3)
