"""The BM25 keyword store: ranking, filters inside retrieval, persistence and incremental builds."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import bm25s
import numpy as np
import pytest

from index import analysis
from index.stores import bm25_store
from index.stores.base import KeywordStore
from index.stores.bm25_store import BM25Store
from index.stores.factory import create_keyword_store, load_keyword_store

CORPUS = {
    1: "长三角国家技术创新中心日前在上海正式揭牌成立。",
    2: "长三角研发投入强度超过3%，长三角一体化发展加速。",
    3: "成都超算中心自2020年投运以来，为西部地区产业发展提供了强大的算力支撑。",
    4: "雅安大数据产业园是成渝地区双城经济圈建设规划纲要明确合力打造的数字产业新高地。",
    5: "The Yangtze River Delta aims for research spending above 3% of GDP by 2025.",
    6: "Indexing news articles makes them searchable; indexed policies are easier to find.",
    7: "據本報記者林曉颯報道，驍颯科技發佈新品。",
    8: "",
}


def build(corpus: dict[int, str] = CORPUS, previous: BM25Store | None = None) -> BM25Store:
    store = BM25Store()
    store.build(np.fromiter(corpus, np.int64), list(corpus.values()), previous)
    return store


def ids_of(result: tuple[np.ndarray, np.ndarray]) -> list[int]:
    return result[1].tolist()


@pytest.fixture(scope="module")
def store() -> BM25Store:
    return build()


def test_is_a_keyword_store(store: BM25Store) -> None:
    assert isinstance(store, KeywordStore)
    assert isinstance(create_keyword_store("bm25"), BM25Store)
    assert len(store) == len(CORPUS)


def test_exact_terms_rank_first(store: BM25Store) -> None:
    scores, ids = store.search("长三角", 10)
    assert ids.tolist() == [2, 1]  # 2 says 长三角 twice
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    assert scores[0] > scores[1] > 0
    assert ids_of(store.search("成渝 双城经济圈", 10))[0] == 4
    assert ids_of(store.search("超算 算力", 3)) == [3]


def test_only_matching_passages_are_returned(store: BM25Store) -> None:
    scores, ids = store.search("上海", 10)
    assert ids.tolist() == [1]
    assert np.all(scores > 0)


def test_traditional_script_english_stems_and_numbers(store: BM25Store) -> None:
    assert ids_of(store.search("长三角研發投入", 1)) == [2]
    assert ids_of(store.search("林晓飒", 1)) == [7]  # an out-of-vocabulary name, matched by bigrams
    assert ids_of(store.search("index policy", 10)) == [6]
    assert ids_of(store.search("2025", 10)) == [5]


def test_k_limits_and_order_is_best_first(store: BM25Store) -> None:
    scores, ids = store.search("长三角 中心 发展 产业", 2)
    assert len(ids) == 2
    assert np.all(np.diff(scores) <= 0)
    all_scores, all_ids = store.search("长三角 中心 发展 产业", 100)
    assert ids.tolist() == all_ids[:2].tolist()


def test_empty_and_unknown_queries(store: BM25Store) -> None:
    for query in ("", "   ", "的", "完全无关的词汇组合", "zzzyyyxxx"):
        scores, ids = store.search(query, 5)
        assert len(scores) == len(ids) == 0 and scores.dtype == np.float32 and ids.dtype == np.int64
    assert len(store.search("长三角", 0)[1]) == 0


def test_empty_corpus(tmp_path: Path) -> None:
    empty = build({})
    assert len(empty) == 0
    assert len(empty.search("长三角", 5)[1]) == 0
    empty.save(tmp_path)
    loaded = BM25Store.load(tmp_path)
    assert len(loaded) == 0 and len(loaded.search("长三角", 5)[1]) == 0
    assert len(build(CORPUS, previous=loaded)) == len(CORPUS)


@pytest.mark.parametrize("padding", [0, 500], ids=["many-allowed", "few-allowed"])
def test_filtered_search_returns_k_when_k_allowed_passages_match(padding: int) -> None:
    # 40 passages mention 研发; the strongest matches are not allowed, so a top-k-then-filter search
    # would find few or none of the allowed ones. `padding` passages make the allowed ids few compared
    # with the corpus, which takes the store's other way of finding their rows.
    corpus = {i: "研发" * (1 + i % 5) + f"第{i}篇" for i in range(1, 41)}
    corpus.update({100 + i: f"无关内容{i}" for i in range(20 + padding)})
    store = build(corpus)
    allowed = np.array([i for i in range(1, 41) if i % 5 == 0] + [100, 101, 99999], np.int64)
    scores, ids = store.search("研发", 5, allowed)
    assert len(ids) == 5
    assert set(ids.tolist()) <= set(allowed.tolist())
    assert set(ids.tolist()) <= set(range(1, 41))
    # fewer allowed matches than k: all of them, and no non-matching allowed passage
    scores, ids = store.search("研发", 20, allowed)
    assert sorted(ids.tolist()) == [i for i in range(1, 41) if i % 5 == 0]
    assert len(store.search("研发", 5, np.array([], np.int64))[1]) == 0
    assert len(store.search("研发", 5, np.array([99999], np.int64))[1]) == 0
    # duplicates and a plain list are fine
    assert store.search("研发", 3, [5, 5, 10])[1].tolist() == [5, 10]


def test_equal_scores_are_ordered_by_id() -> None:
    store = build({i: "同样的文本内容" for i in (9, 3, 7, 1, 5)})
    scores, ids = store.search("文本", 3)
    assert ids.tolist() == [1, 3, 5]
    assert scores[0] == scores[1] == scores[2]


def test_filtered_scores_equal_unfiltered_scores(store: BM25Store) -> None:
    scores, ids = store.search("长三角 发展", 10)
    f_scores, f_ids = store.search("长三角 发展", 10, np.array([ids[-1]], np.int64))
    assert f_ids.tolist() == [ids[-1]]
    assert f_scores[0] == pytest.approx(scores[-1])


def test_scores_are_bm25s_lucene_on_a_words_only_corpus() -> None:
    # Without CJK there are no bigrams: one field, which must score exactly like bm25s itself.
    texts = [
        "the river delta aims for research spending",
        "research research spending policies",
        "news articles about rivers and deltas",
        "a short one",
    ]
    store = BM25Store()
    store.build(np.arange(10, 14), texts)
    reference = bm25s.BM25(method="lucene", k1=bm25_store.K1, b=bm25_store.B)
    reference.index([analysis.tokenize(t) for t in texts], show_progress=False)
    query = "research spending in river deltas"
    expected = reference.get_scores(analysis.tokenize(query))
    scores, ids = store.search(query, 10)
    got = np.zeros(len(texts))
    got[ids - 10] = scores
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_save_load_round_trip(store: BM25Store, tmp_path: Path) -> None:
    store.save(tmp_path)
    assert (tmp_path / "keywords" / "meta.json").is_file()
    loaded = load_keyword_store("bm25", tmp_path)
    assert isinstance(loaded, BM25Store) and len(loaded) == len(store)
    allowed = np.array([1, 3, 5, 7], np.int64)
    for query in ("长三角 研发", "产业 发展", "indexed policies", "林晓飒", "3%", "无关"):
        for filt in (None, allowed):
            expected, got = store.search(query, 5, filt), loaded.search(query, 5, filt)
            assert got[1].tolist() == expected[1].tolist()
            np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)
    # the folder is a bm25s index too
    model = bm25s.BM25.load(tmp_path / "keywords")
    assert model.get_scores(analysis.tokenize("上海")).argmax() == 0  # passage 1 is row 0
    # a loaded store saves again
    loaded.save(tmp_path / "again")
    again = BM25Store.load(tmp_path / "again")
    assert again.search("长三角", 5)[1].tolist() == store.search("长三角", 5)[1].tolist()


def test_incremental_build_reuses_previous_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build().save(tmp_path)
    previous = BM25Store.load(tmp_path)  # reuse works from what is on disk
    corpus = {k: v for k, v in CORPUS.items() if k != 3}  # 3 deleted
    corpus[2] = CORPUS[2]
    corpus[9] = "珠三角制造业研发投入持续增长。"  # new
    corpus[10] = "New indexing rules for 2026."  # new

    calls: list[str] = []
    real = analysis.tokenize

    def counting(text: str) -> list[str]:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(analysis, "tokenize", counting)
    store = build(corpus, previous)
    assert sorted(calls) == sorted([corpus[9], corpus[10]])  # not one reused passage analysed again

    calls.clear()
    fresh = build(corpus)
    assert len(calls) == len(corpus)
    monkeypatch.setattr(analysis, "tokenize", real)
    for query in ("长三角 研发投入", "研发", "indexing", "超算", "林晓飒", "发展"):
        got, expected = store.search(query, 10), fresh.search(query, 10)
        assert got[1].tolist() == expected[1].tolist()
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-5)
    assert 3 not in store.search("超算", 10)[1].tolist()


def test_previous_of_another_analyser_is_not_reused(
    store: BM25Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "_analyzer", "some older analyser")
    calls = []
    real = analysis.tokenize
    monkeypatch.setattr(analysis, "tokenize", lambda text: calls.append(text) or real(text))
    build(CORPUS, previous=store)
    assert len(calls) == len(CORPUS)


def test_a_store_saved_by_another_analyser_is_outdated_and_still_answers(
    store: BM25Store, tmp_path: Path
) -> None:
    assert not store.outdated
    store.save(tmp_path)
    meta_file = tmp_path / bm25_store.FOLDER / "meta.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    meta_file.write_text(json.dumps(meta | {"analyzer": "2/an older analyser"}), encoding="utf-8")
    old = BM25Store.load(tmp_path)
    assert old.outdated  # the builder analyses it again on its next run
    assert ids_of(old.search("长三角 研发投入", 3)) == ids_of(store.search("长三角 研发投入", 3))


def test_build_rejects_mismatched_input() -> None:
    with pytest.raises(ValueError):
        BM25Store().build(np.array([1, 2], np.int64), ["only one"])
    with pytest.raises(ValueError):
        BM25Store().build(np.array([1, 1], np.int64), ["a", "b"])


def test_concurrent_searches_on_a_loaded_store(store: BM25Store, tmp_path: Path) -> None:
    store.save(tmp_path)
    loaded = BM25Store.load(tmp_path)
    queries = ["长三角", "产业 发展", "indexed", "林晓飒", "2025", "研发投入"] * 10
    expected = [loaded.search(q, 3)[1].tolist() for q in queries]
    results: list[list[int] | None] = [None] * len(queries)

    def work(i: int) -> None:
        results[i] = loaded.search(queries[i], 3)[1].tolist()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(queries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected


def test_idf_weighs_rare_terms_above_common_ones(store: BM25Store) -> None:
    """The hybrid word share weighs each query word by the idf the ranking uses: 长三角 (2 passages) weighs
    less than 上海 (1), and a word no passage holds weighs the most."""
    common, rare, absent = store.idf(["长三角", "上海", "量子"]).tolist()
    assert 0.0 < common < rare < absent
    assert store.idf([]).shape == (0,)
    empty = BM25Store().idf(["长三角", "上海"])
    assert empty[0] == empty[1] > 0.0


def test_matched_terms_reads_the_index_not_the_text(store: BM25Store) -> None:
    """The hybrid coverage check asks which query words the top keyword hits contain; the answer must be
    the same as analysing each passage again (it comes from the postings)."""
    words = [t for t in analysis.tokenize("长三角研发投入强度 算力 index 上海") if not analysis.is_gram(t)]
    ids = [2, 3, 6, 1, 99, 8]  # 99 is unknown, 8 is empty
    found = store.matched_terms(words, ids)
    expected = [set(words) & set(analysis.tokenize(CORPUS[i])) if i in CORPUS else set() for i in ids]
    assert found == expected
    assert found[0] >= {"长三角", "研发", "强度"} and "上海" in found[3] and "index" in found[2]
    assert found[4] == set() and found[5] == set()
    assert store.matched_terms([], ids) == [set()] * len(ids)
    assert store.matched_terms(words, []) == []
    assert BM25Store().matched_terms(words, [1]) == [set()]
