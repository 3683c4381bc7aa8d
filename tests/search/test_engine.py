"""End to end on the default corpus with the real model: documents in, cited passages out."""

from __future__ import annotations

import re

import pytest

from search.engine import Engine, NotFound, QueryError
from search.filters import parse_filters

ZQSB = "000_ad61b687c275495d.txt"  # 证券时报网
XINHUA = "003_07e0a4d71f185c6b.txt"


def test_question_finds_the_cited_passage_with_offsets(engine: Engine) -> None:
    results = engine.search("到2025年长三角研发投入强度的目标是多少", k=3).results
    hit = next(r for r in results if "超过3%" in r.text)
    assert hit.doc_id == ZQSB
    assert hit.title == "多地布局_十四五_区域创新中心建设"
    assert hit.source == "证券时报网" and hit.date == "2021-11-29"
    doc = engine.document(hit.doc_id)
    assert doc["text"][hit.start : hit.end] == hit.text


def test_repaired_text_is_searchable_unbroken(engine: Engine) -> None:
    results = engine.search("新型智能算力供应中心", k=3).results
    assert any("新型智能算力供应中心" in r.text for r in results)
    results = engine.search("引导集群内企业联合开展产业共性技术研发和产业链创新合作", k=3).results
    assert any("产业共性技术研发、产业链创新合作" in r.text for r in results)


def test_every_result_cites_exact_offsets(engine: Engine) -> None:
    for r in engine.search("区域创新中心", k=10).results:
        assert engine.document(r.doc_id)["text"][r.start : r.end] == r.text
    ranks = [r.rank for r in engine.search("区域创新中心", k=3, offset=2).results]
    assert ranks == [3, 4, 5]


def test_similar_never_returns_the_given_passage(engine: Engine) -> None:
    top = engine.search("成都超算中心", k=1).results[0]
    similar = engine.similar(passage_id=top.passage_id, k=5)
    assert similar and all(r.passage_id != top.passage_id for r in similar)
    by_text = engine.similar(text="成渝地区双城经济圈", k=3)
    assert any("成渝" in r.text for r in by_text)


def test_filter_by_document(engine: Engine) -> None:
    only = engine.search("创新", k=5, filters=parse_filters(doc_ids=[XINHUA])).results
    assert len(only) == 5 and {r.doc_id for r in only} == {XINHUA}
    assert engine.search("创新", k=5, filters=parse_filters(doc_ids=["no-such-doc"])).results == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": "   "}, "empty"),
        ({"query": "\u200b\ufeff "}, "empty"),
        ({"query": "？！……"}, "holds no words"),
        ({"query": "x" * 1001}, "limit"),
        ({"query": "创新", "k": 0}, "k must be"),
        ({"query": "创新", "offset": -1}, "offset must be"),
        ({"query": "创新", "k": 10, "offset": 9_991}, "paged to the first 10000"),
        ({"query": "创新", "mode": "fuzzy"}, "unknown mode"),
    ],
)
def test_bad_queries_say_what_is_wrong(engine: Engine, kwargs: dict, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        engine.search(**kwargs)


def test_a_query_pasted_with_invisible_characters_finds_what_it_shows(engine: Engine) -> None:
    """Zero-width spaces and joiners copied from a web page inside a word: the indexed text has none, so
    the query drops them too, and finds and highlights what it finds without them."""
    plain = engine.search("区域创新中心", k=5, mode="keyword")
    pasted = engine.search("\ufeff区域\u200b创新\u200d中心\u2060", k=5, mode="keyword")
    assert pasted.query == "区域创新中心"
    assert [r.passage_id for r in pasted.results] == [r.passage_id for r in plain.results] != []
    assert pasted.results[0].highlights == plain.results[0].highlights != []


def test_unknown_ids(engine: Engine) -> None:
    with pytest.raises(NotFound):
        engine.passage(10**9)
    with pytest.raises(NotFound):
        engine.document("missing.txt")


# --- hybrid retrieval: the acceptance of the retrieval-quality issue --------------------------------------
def test_a_quote_in_both_articles_is_shown_once_citing_both(engine: Engine) -> None:
    results = engine.search("陈光教授认为西部地区为什么创新资源富集", k=5).results
    quoting = [r for r in results if "创新资源富集" in r.text and "陈光" in r.text]
    assert len(quoting) == 1, "the quote stands in both articles and must be shown once"
    (quote,) = quoting
    assert {quote.doc_id, *(a.doc_id for a in quote.also_in)} == {ZQSB, XINHUA}
    assert all("创新资源富集" not in r.text for r in results if r is not quote)


@pytest.mark.parametrize("mode", ["keyword", "dense", "hybrid"])
def test_traditional_query_finds_what_its_simplified_twin_finds(engine: Engine, mode: str) -> None:
    traditional = engine.search("長三角研發投入強度目標", k=3, mode=mode).results
    simplified = engine.search("长三角研发投入强度目标", k=3, mode=mode).results
    assert traditional[0].passage_id == simplified[0].passage_id
    assert "研发投入强度" in traditional[0].text
    if mode != "dense":  # highlights are the query's terms, matched across scripts
        start, end = traditional[0].highlights[0]
        assert traditional[0].text[start:end] in ("长三角", "研发投入", "研发", "投入", "强度")


def test_hybrid_results_show_why_they_ranked(engine: Engine) -> None:
    top = engine.search("到2025年长三角研发投入强度的目标是多少", k=3).results[0]
    assert top.dense_score is not None and top.keyword_score is not None
    assert top.dense_rank is not None and top.keyword_rank is not None
    assert 0.0 < top.score <= 1.0  # a convex combination of normalised scores
    # The question's words (2025, 长三角, 研发, 投入, 强度, 目标 …): the answer passage holds most of them.
    assert top.word_share is not None and 0.5 <= top.word_share <= 1.0
    for mode in ("dense", "keyword"):
        assert engine.search("长三角研发投入强度", k=1, mode=mode).results[0].word_share is None


def test_a_filtered_search_fills_k_and_an_impossible_one_is_empty(engine: Engine) -> None:
    only = engine.search("人工智能", k=8, filters=parse_filters(doc_ids=[ZQSB])).results
    assert len(only) == 8 and {r.doc_id for r in only} == {ZQSB}
    none = parse_filters(doc_ids=[ZQSB], date_from="2100-01-01")
    assert engine.search("人工智能", k=8, filters=none).results == []


def test_many_copies_of_a_passage_fold_into_one_and_the_page_still_fills(tmp_path) -> None:
    """A paragraph reprinted by 15 outlets is one result listing every copy, and the page is still full:
    folding reads further candidates when the first ones were all copies."""
    from index.builder import IndexBuilder
    from index.documents import Document

    quote = (
        "陈光教授认为，西部地区创新资源富集，高校和科研院所众多，成渝地区双城经济圈建设为区域创新中心"
        "提供了难得的机遇，应当加快建设具有全国影响力的科技创新中心。"
    )
    others = [
        "长三角国家技术创新中心日前在上海正式揭牌成立，坚持共需、共建、共享、共治理念。",
        "成都超算中心自2020年投运以来，为西部地区产业发展提供了强大的算力支撑。",
        "雅安大数据产业园是成渝地区双城经济圈建设规划纲要明确合力打造的数字产业新高地。",
        "武汉东湖高新区光电子信息产业集群规模持续扩大，创新主体不断增多。",
    ]
    docs = [Document.from_paragraphs(f"copy{i:02d}", [quote], title=f"转载{i}") for i in range(15)]
    docs += [Document.from_paragraphs(f"other{i}", [text], title=f"其他{i}") for i, text in enumerate(others)]
    IndexBuilder(tmp_path).upsert(docs)
    engine = Engine.open(tmp_path)
    page = engine.search("陈光 西部地区 创新资源富集", k=3)
    assert len(page.results) == 3
    first = page.results[0]
    copies = {first.doc_id} | {a.doc_id for a in first.also_in}
    assert copies == {f"copy{i:02d}" for i in range(15)}
    assert all(r.doc_id.startswith("other") for r in page.results[1:])
    # "More like this" on one copy shows other passages, not the 14 other copies of the same one.
    like = engine.similar(passage_id=first.passage_id, k=3)
    assert len(like) == 3 and all(r.doc_id.startswith("other") for r in like)
    assert [r.rank for r in like] == [1, 2, 3]
    # Like a text: its copies are one result, as in a search (also the batch form).
    for by_text in (engine.similar(text=quote, k=2), engine.similar_texts([quote], k=2)[0]):
        assert {by_text[0].doc_id} | {a.doc_id for a in by_text[0].also_in} == copies
        assert by_text[1].doc_id.startswith("other")


def test_the_python_api_refuses_arguments_that_mean_nothing(engine: Engine) -> None:
    """Arguments of the wrong kind are a QueryError naming what is wrong, never a wrong answer (a doc id
    given as a string split into characters filtered everything out; `k=True` was one result; a passage
    id as a string was "no passage with id 1") or a raw OverflowError."""
    cases = [
        (lambda: engine.search(123), "must be a string"),
        (lambda: engine.search("创新", k=True), "k must be"),
        (lambda: engine.search("创新", offset=True), "offset must be"),
        (lambda: engine.search("创新", filters={"doc_ids": [ZQSB]}), "parse_filters"),
        (lambda: parse_filters(doc_ids=ZQSB), "list of strings"),
        (lambda: parse_filters(doc_ids=[""]), "empty"),
        (lambda: engine.similar_texts("成渝"), "similar(text=...)"),
        (lambda: engine.passage("1"), "passage id"),
        (lambda: engine.passage(2**63), "passage id"),
        (lambda: engine.passage(1, neighbours=-1), "neighbours"),
        (lambda: engine.similar(passage_id=3.0), "passage id"),
        (lambda: engine.documents(limit=-1), "limit"),
        (lambda: engine.documents(offset=-5), "offset"),
    ]
    for call, says in cases:
        with pytest.raises(QueryError, match=re.escape(says)):
            call()
    assert engine.passage(1)["passage"]["passage_id"] == 1
