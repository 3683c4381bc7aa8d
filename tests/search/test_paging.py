"""Paging: every page of a query is a slice of one ranking, whatever the page size.

The corpus is the first contexts of CMRC 2018 dev (CC BY-SA 4.0, ../shared/eval; skipped where absent),
a couple of hundred passages: more than one tier of candidates, so later pages read deeper than the first.
"""

from __future__ import annotations

import pytest

from search.engine import Engine
from tests.conftest import EVAL

CORPUS = EVAL / "cmrc2018-dev" / "corpus.jsonl"
NEWS = EVAL / "news" / "antiterror-train" / "corpus.jsonl"
DOCS = 100
QUERIES = ("中国历史上的战争", "城市 大学 人口", "这款游戏是由哪家公司开发的？")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CORPUS.exists(), reason=f"no {CORPUS} (the development sets are not here)"),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    from index.builder import IndexBuilder

    folder = tmp_path_factory.mktemp("cmrc")
    lines = CORPUS.read_text(encoding="utf-8").splitlines(keepends=True)[:DOCS]
    (folder / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    index = tmp_path_factory.mktemp("cmrc-index")
    IndexBuilder(index).index_paths([folder])
    return Engine.open(index)


def pages(engine: Engine, query: str, mode: str, k: int, upto: int) -> list[int]:
    return [r.passage_id for offset in range(0, upto, k)
            for r in engine.search(query, k=k, mode=mode, offset=offset).results]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_pages_of_ten_read_as_pages_of_a_hundred(engine: Engine, mode: str) -> None:
    """Paging through with 10 a page shows each passage once, in the order pages of 100 show them, and
    the first result does not depend on how many were asked for."""
    everything = len(engine.snapshot().vectors)
    assert everything > 200, "the corpus should need more than one tier of candidates"
    for query in QUERIES:
        by_ten = pages(engine, query, mode, 10, everything + 10)
        by_hundred = pages(engine, query, mode, 100, everything + 100)
        assert len(by_ten) == len(set(by_ten)), f"{mode} {query!r}: a passage is on two pages"
        assert by_ten == by_hundred, f"{mode} {query!r}: pages of 10 and of 100 rank otherwise"
        assert engine.search(query, k=1, mode=mode).results[0].passage_id == by_ten[0]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_the_total_on_the_first_page_is_what_paging_finds(engine: Engine, mode: str) -> None:
    """The first page's total counts every passage paging can reach (less near-duplicates not yet
    compared), and the page past the last result says exactly how many there were."""
    everything = len(engine.snapshot().vectors)
    for query in QUERIES:
        found = pages(engine, query, mode, 100, everything + 100)
        first = engine.search(query, k=10, mode=mode)
        assert len(found) <= first.total <= len(found) + 10, f"{mode} {query!r}: {first.total}, {len(found)}"
        past = engine.search(query, k=10, mode=mode, offset=len(found))
        assert past.results == [] and past.total == len(found)


@pytest.fixture(scope="module")
def news(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """120 articles of the news set: outlets reprint each other's paragraphs, some ranked far apart."""
    from index.builder import IndexBuilder
    from index.config import IndexSettings

    if not NEWS.exists():
        pytest.skip(f"no {NEWS}")
    folder = tmp_path_factory.mktemp("news")
    lines = NEWS.read_text(encoding="utf-8").splitlines(keepends=True)[:120]
    (folder / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    settings = IndexSettings.from_env()
    settings.sentence_vectors = False  # not what is tested here, and it halves the build
    index = tmp_path_factory.mktemp("news-index")
    IndexBuilder(index, settings).index_paths([folder])
    return Engine.open(index)


def test_paging_to_the_end_shows_every_passage_with_the_same_copies(news: Engine) -> None:
    """Every passage is on some page, as a result or among the `also_in` of a result on that page, and a
    result lists the same copies in pages of 10 as in pages of 100. (A copy first read for a late page
    was folded into a result of an early one: it was on no page, and that article was never cited.)"""
    everything = len(news.snapshot().vectors)
    for query in ("恐怖袭击", "警方逮捕了嫌疑人"):
        walked = {}
        for k in (10, 100):
            shown = {r.passage_id: [a.passage_id for a in r.also_in]
                     for offset in range(0, everything + k, k)
                     for r in news.search(query, k=k, mode="dense", offset=offset).results}
            cover = set(shown) | {p for copies in shown.values() for p in copies}
            assert len(cover) == everything, f"{query!r}, pages of {k}: {everything - len(cover)} never shown"
            walked[k] = shown
        assert walked[10] == walked[100], f"{query!r}: also_in depends on the page size"
