"""One contract for every back end: the same engine, the same answers, whether the index is a folder
(FAISS + BM25 + SQLite) or a Milvus collection on a live `milvus-lite server`."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from index.builder import DocIdTaken
from index.documents import Document
from index.stores.passages import Filters
from search.engine import Engine, NotFound
from search.evaluate import retrieval_metrics
from search.filters import parse_filters
from tests.backends.conftest import BACKENDS

ZQSB = "000_ad61b687c275495d.txt"  # 证券时报网, 2021-11-29
XINHUA = "003_07e0a4d71f185c6b.txt"
QUESTION = "到2025年长三角研发投入强度的目标是多少"
# The README tour's questions: both back ends must rank the same passages first.
README_QUERIES = [QUESTION, "长三角研发投入强度", "成都超算中心", "長三角研發投入強度目標", "固态电池"]

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("kind", BACKENDS)]


def _cites_exactly(engine: Engine, results: list) -> None:
    texts = {}
    for r in results:
        if r.doc_id not in texts:
            texts[r.doc_id] = engine.document(r.doc_id)["text"]
        assert texts[r.doc_id][r.start : r.end] == r.text
        for also in r.also_in:  # the other places cite passages of their own documents, to the character
            held = engine.passage(also.passage_id)["passage"]
            assert held["doc_id"] == also.doc_id
            if also.doc_id not in texts:
                texts[also.doc_id] = engine.document(also.doc_id)["text"]
            assert texts[also.doc_id][also.start : also.end] == held["text"]


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_every_mode_finds_the_cited_passage_with_its_fields(built, kind: str, mode: str) -> None:
    engine = built(kind)
    response = engine.search(QUESTION, k=5, mode=mode)
    assert response.mode == mode and response.total >= 5
    results = response.results
    hit = next(r for r in results[:3] if "超过3%" in r.text)
    assert hit.doc_id == ZQSB and hit.source == "证券时报网" and hit.date == "2021-11-29"
    assert [r.rank for r in results] == [1, 2, 3, 4, 5]
    _cites_exactly(engine, results)
    # the question's words are marked in the top passages (a dense neighbour may hold none of them)
    assert hit.highlights and (mode == "dense" or all(r.highlights for r in results[:3]))
    for r in results:
        if mode in ("dense", "hybrid"):
            assert r.dense_score is not None
        if mode == "dense":
            assert r.dense_rank is not None and r.keyword_score is None
        if mode == "keyword":
            assert r.keyword_rank is not None and r.keyword_score > 0
        if mode == "hybrid":
            assert r.word_share is not None and 0.0 <= r.word_share <= 1.0
        else:
            assert r.word_share is None
    if mode == "hybrid":
        assert hit.keyword_rank is not None and hit.dense_rank is not None and hit.word_share >= 0.5


def test_same_top_results_as_the_folder_index(built, kind: str) -> None:
    engine = built(kind)
    reference = built("faiss")
    assert engine.snapshot().sentences is not None  # both back ends keep sentence vectors by default
    for query in README_QUERIES:
        for mode in ("dense", "hybrid", "keyword"):
            got = [r.passage_id for r in engine.search(query, k=5, mode=mode).results]
            want = [r.passage_id for r in reference.search(query, k=5, mode=mode).results]
            got_text = [engine.passage(p)["passage"]["text"] for p in got[:3]]
            want_text = [reference.passage(p)["passage"]["text"] for p in want[:3]]
            assert got_text[0] == want_text[0], (query, mode)
            assert len(set(got_text) & set(want_text)) >= min(2, len(want_text)), (query, mode)


def test_word_rarity_is_the_folder_index_s(built, kind: str) -> None:
    """The hybrid ranking weighs a query's words and bigrams by their idf: every back end gives the same,
    in one read for all of a query's terms."""
    from index.analysis import query_grams, query_words

    engine, reference = built(kind), built("faiss")
    for query in README_QUERIES + ["陈光教授认为西部地区为什么创新资源富集", "冰川 PPR-9087 没有的词"]:
        terms = list(query_words(query)) + list(dict.fromkeys(t.term for t in query_grams(query)))
        got = engine.snapshot().keywords.idf(terms)
        np.testing.assert_allclose(got, reference.snapshot().keywords.idf(terms), rtol=1e-9, err_msg=query)


def test_sentence_evidence_matches_the_folder_index(built, kind: str) -> None:
    """The best sentence of each result scores the same in every back end (the same float16 vectors), and
    a passage's sentence vectors are those the folder index holds."""
    engine, reference = built(kind), built("faiss")
    compared = 0
    for query in README_QUERIES:
        by_text = {r.text: r.sentence_score for r in reference.search(query, k=5, mode="dense").results}
        for r in engine.search(query, k=5, mode="dense").results:
            if r.text in by_text:
                want = by_text[r.text]
                assert (r.sentence_score is None) == (want is None), r.text
                if want is not None:
                    assert r.sentence_score == pytest.approx(want, abs=1e-6), r.text
                    compared += 1
    assert compared >= len(README_QUERIES)
    snap, ref_snap = engine.snapshot(), reference.snapshot()
    first = engine.search(README_QUERIES[0], k=1, mode="dense").results[0]
    listed = reference.search(README_QUERIES[0], k=5, mode="dense").results
    twin = next(r for r in listed if r.text == first.text)
    got = snap.sentences.of([first.passage_id])[first.passage_id]
    want = ref_snap.sentences.of([twin.passage_id])[twin.passage_id]
    assert got.dtype == np.float16 and len(got) > 1
    np.testing.assert_array_equal(got, want)


def test_filters_apply_inside_retrieval(built, kind: str) -> None:
    engine = built(kind)
    only = engine.search("创新", k=5, filters=parse_filters(doc_ids=[XINHUA])).results
    assert len(only) == 5 and {r.doc_id for r in only} == {XINHUA}
    by_source = engine.search("科技创新", k=10, filters=parse_filters(sources=["政策网"])).results
    assert by_source and {r.source for r in by_source} == {"政策网"}
    by_cat = engine.search("电池", k=10, filters=parse_filters(categories=["经济"])).results
    assert by_cat and {r.doc_id for r in by_cat} == {"market-1"}
    dated = parse_filters(date_from="2023-01-01", date_to="2023-12-31")
    in_2023 = engine.search("政策", k=10, filters=dated).results
    assert {r.doc_id for r in in_2023} == {"policy-1"}  # not the undated document of the same source
    for mode in ("dense", "keyword", "hybrid"):
        filtered = engine.search("区域创新", k=8, mode=mode, filters=parse_filters(doc_ids=[ZQSB])).results
        assert len(filtered) == 8 and {r.doc_id for r in filtered} == {ZQSB}
    impossible = parse_filters(doc_ids=[ZQSB], date_from="2100-01-01")
    assert engine.search("人工智能", k=8, filters=impossible).results == []


def test_a_filter_value_matches_in_either_script_and_any_spacing(built, kind: str) -> None:
    """A source or category typed in traditional script, with stray spaces, or pasted with a zero-width
    space finds what the index holds in simplified script, as a query does; an unknown one finds nothing."""
    engine = built(kind)

    def docs(**given: list[str]) -> set[str]:
        return {r.doc_id for r in engine.search("政策", k=20, filters=parse_filters(**given)).results}

    assert docs(sources=["政策网"]) == {"policy-1", "undated-1"}
    assert docs(sources=["政策網"]) == docs(sources=[" 政策网\u200b "]) == {"policy-1", "undated-1"}
    assert docs(sources=["政策 网"]) == docs(sources=["政\u3000策网"]) == {"policy-1", "undated-1"}
    assert docs(categories=["經濟"]) == {"market-1"}
    assert docs(sources=["政策網", "財經網"]) == {"policy-1", "undated-1", "market-1"}
    assert docs(sources=["没有这个来源"]) == set()


def test_the_keyword_count_is_how_many_passages_a_search_without_limit_finds(built, kind: str) -> None:
    """A keyword search's total, where its page read only the first candidates: every passage holding
    a query word, in the filter too."""
    snap = built(kind).snapshot()
    ours = snap.passages.filter_ids(parse_filters(doc_ids=[ZQSB]))
    for query in ("区域创新", "长三角 研发 投入", "成都超算中心", "quantum"):
        for allowed in (None, ours):
            matching = len(snap.keywords.search(query, 100_000, allowed)[1])
            assert snap.keywords.count(query, allowed) == matching, (query, allowed is None)
    assert snap.keywords.count("区域创新", None) > snap.keywords.count("区域创新", ours) > 0


def test_similar_passages(built, kind: str) -> None:
    engine = built(kind)
    top = engine.search("成都超算中心", k=1).results[0]
    similar = engine.similar(passage_id=top.passage_id, k=5)
    assert len(similar) == 5 and all(r.passage_id != top.passage_id for r in similar)
    assert any("成渝" in r.text for r in engine.similar(text="成渝地区双城经济圈", k=3))
    kept = engine.similar(passage_id=top.passage_id, k=3, filters=parse_filters(doc_ids=[XINHUA]))
    assert kept and {r.doc_id for r in kept} == {XINHUA}
    with pytest.raises(NotFound):
        engine.similar(passage_id=10**9, k=3)


def test_a_quote_in_both_articles_is_shown_once_citing_both(built, kind: str) -> None:
    engine = built(kind)
    results = engine.search("陈光教授认为西部地区为什么创新资源富集", k=5).results
    (quote,) = [r for r in results if "创新资源富集" in r.text and "陈光" in r.text]
    assert {quote.doc_id, *(a.doc_id for a in quote.also_in)} == {ZQSB, XINHUA}
    _cites_exactly(engine, results)


def test_documents_passages_facets_and_info_agree(built, kind: str) -> None:
    engine, reference = built(kind), built("faiss")
    assert engine.documents(0, 50) == reference.documents(0, 50)
    facets, ref_facets = engine.facets(), reference.facets()
    assert facets["dates"] == ref_facets["dates"]
    for key in ("sources", "categories"):  # ties may come in any order
        counts = [f["documents"] for f in facets[key]]
        assert counts == sorted(counts, reverse=True)
        assert {(f["value"], f["documents"]) for f in facets[key]} == \
            {(f["value"], f["documents"]) for f in ref_facets[key]}
    info, ref = engine.info(), reference.info()
    for key in ("documents", "passages", "modes", "sentences"):
        assert info[key] == ref[key], key
    assert info["sentences"] > info["passages"]
    # where the index is: the folder, or the Milvus server and collection (not the local journal folder)
    assert info["index"] == str(engine.dir) and (kind == "faiss") == (info["index"] == str(engine.dir.root))
    doc = engine.document("policy-1")
    assert doc["categories"] == ["政策", "科技"] and doc["text"].startswith("国务院")
    first = doc["passages"][0]["passage_id"]
    around = engine.passage(first)
    assert around["passage"]["doc_id"] == "policy-1" and around["document"]["title"] == "科技创新政策解读"
    with pytest.raises(NotFound):
        engine.document("missing.txt")


def test_ask_answers_with_a_citation(built, kind: str) -> None:
    engine = built(kind)
    response = engine.ask(QUESTION, k=5)
    assert response.answer is not None and "3%" in response.answer
    cited = response.citations[0]
    assert engine.document(cited.doc_id)["text"][cited.start : cited.end] == response.answer


def test_eval_figures_match_the_folder_index(built, kind: str) -> None:
    queries = [
        {"question": QUESTION, "doc_id": ZQSB, "answers": ["超过3%"]},
        {"question": "固态电池研发进展", "doc_id": "market-1"},
        {"question": "基础研究经费占比目标", "doc_id": "policy-1", "answers": ["8%"]},
    ]
    got = retrieval_metrics(built(kind), queries, mode=None)
    want = retrieval_metrics(built("faiss"), queries, mode=None)
    assert got["recall@5"] == want["recall@5"] == 1.0
    assert got["mrr@10"] == pytest.approx(want["mrr@10"])


def test_add_update_delete_and_an_unchanged_reindex_writes_nothing(fresh, shared_embedder, kind: str,
                                                                   contract_corpus) -> None:
    location = fresh(kind)
    first = location.builder(embedder=shared_embedder).index_paths([contract_corpus])
    assert first.added == 5 and first.generation
    again = location.builder(embedder=shared_embedder).index_paths([contract_corpus])
    assert not again.changed and again.generation == first.generation and again.embedded == 0
    engine = Engine(location)
    engine._embedder = shared_embedder

    doc = Document.from_paragraphs("api-1", ["青藏高原冰川面积三十年减少了百分之十五。"], title="冰川")
    engine.add_documents([doc])
    top = engine.search("青藏高原冰川减少了多少", k=1).results[0]
    assert top.doc_id == "api-1" and "百分之十五" in top.text

    changed = Document.from_paragraphs("api-1", ["青藏高原冰川面积三十年减少了百分之二十。"], title="冰川")
    summary = engine.add_documents([changed])
    assert summary.updated == 1
    hits = engine.search("青藏高原冰川减少了多少", k=5).results
    from_doc = [r for r in hits if r.doc_id == "api-1"]
    assert len(from_doc) == 1 and "百分之二十" in from_doc[0].text  # one version, never both
    assert engine.info()["documents"] == 6

    engine.delete_documents(["api-1"])
    assert all(r.doc_id != "api-1" for r in engine.search("青藏高原冰川", k=10).results)
    with pytest.raises(NotFound):
        engine.document("api-1")
    assert engine.info()["documents"] == 5

    # The sentence count follows every write (a one-sentence passage has none of its own).
    base = engine.info()["sentences"]
    two = "冰川融化加快。湖泊面积随之扩大。"
    engine.add_documents([Document.from_paragraphs("api-2", [two], title="湖泊")])
    assert engine.info()["sentences"] == base + 2
    engine.add_documents([Document.from_paragraphs("api-2", [two + "牧场退化严重。"], title="湖泊")])
    assert engine.info()["sentences"] == base + 3
    top = engine.search("牧场退化", k=1, mode="dense").results[0]
    assert top.doc_id == "api-2" and top.sentence_score is not None
    engine.delete_documents(["api-2"])
    assert engine.info()["sentences"] == base

    # A paginated document (a PDF's) keeps where its pages start, and each passage cites its page.
    glaciers = "青藏高原的冰川在过去三十年里持续退缩，观测站记录了每年的变化。" * 12
    lakes = "与此同时，高原湖泊的面积扩大了三成，牧民的草场被湖水淹没。" * 12
    paged = Document.from_paragraphs("report.pdf", [glaciers, lakes], title="高原报告")
    paged.pages = [0, paged.paragraphs[1][0]]
    engine.add_documents([paged])
    assert engine.document("report.pdf")["pages"] == paged.pages
    assert {p["page"] for p in engine.document("report.pdf")["passages"]} == {1, 2}
    only = Filters(doc_ids=["report.pdf"])
    assert engine.search("高原湖泊的面积扩大了三成", k=1, filters=only).results[0].page == 2
    assert engine.search("冰川持续退缩", k=1, filters=only).results[0].page == 1
    engine.delete_documents(["report.pdf"])


def test_files_keep_their_documents_and_their_ids(fresh, shared_embedder, kind: str, tmp_path) -> None:
    """A file that fails to load in a folder moved since keeps its document; a document sent through the
    API cannot take a file's id (it would replace the file until the next sync, which would skip it)."""
    folder = tmp_path / "one" / "docs"
    folder.mkdir(parents=True)
    for name, text in [("a.txt", "成都超算中心自2020年投运以来，为西部地区产业发展提供了强大的算力支撑。"),
                       ("b.txt", "雅安大数据产业园是成渝地区双城经济圈明确合力打造的数字产业新高地。")]:
        (folder / name).write_text(f"标题\n\n{text}\n", encoding="utf-8")
    location = fresh(kind)
    location.builder(embedder=shared_embedder).index_paths([folder])
    moved = tmp_path / "two" / "docs"
    moved.parent.mkdir()
    folder.rename(moved)
    (moved / "a.txt").write_bytes(b"\x00\x01binary now\x00" * 40)
    summary = location.builder(embedder=shared_embedder).index_paths([moved])
    assert (summary.deleted, summary.kept) == (0, 1)
    engine = Engine(location)
    engine._embedder = shared_embedder
    assert engine.search("成都超算中心", k=1).results[0].doc_id == "a.txt"
    with pytest.raises(DocIdTaken, match="'b.txt' belongs to a file of an indexed folder"):
        engine.add_documents([Document.from_paragraphs("b.txt", ["另一个版本的乙。"], title="乙")])
    assert "雅安大数据产业园" in engine.document("b.txt")["text"]


def test_the_eval_command_gives_the_same_figures(kind: str, request: pytest.FixtureRequest, tmp_path,
                                                 monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import json

    from api.cli import main
    from tests.backends.conftest import EXTRA_DOCS

    folder = tmp_path / f"set-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    lines = [json.dumps(d, ensure_ascii=False) + "\n" for d in EXTRA_DOCS]
    (folder / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    queries = [{"question": "基础研究经费占比的目标", "doc_id": "policy-1", "answers": ["8%"]},
               {"question": "固态电池研发进展", "doc_id": "market-1"}]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries),
                                          encoding="utf-8")
    if kind == "milvus":
        monkeypatch.setenv("SEMSEARCH_STORE", "milvus")
        monkeypatch.setenv("SEMSEARCH_MILVUS_URI", request.getfixturevalue("milvus_uri"))
        monkeypatch.setenv("SEMSEARCH_MILVUS_COLLECTION", f"eval_{uuid.uuid4().hex[:8]}")
    assert main(["eval", str(folder), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["recall@1"] == figures["recall@5"] == 1.0
